/*
 * The Internet checksum (RFC 1071).
 *
 * The sum is computed over native-order loads. RFC 1071 §2(B) shows the one's-complement sum
 * is independent of byte order: summing byte-swapped words yields the byte-swapped sum. So the
 * words never need swapping, and the folded result, stored with memcpy, lands in memory as the
 * correct big-endian field on either kind of machine.
 *
 * Wider words work for the same reason (RFC 1071 §2(C)): 2^16 ≡ 1 modulo 0xffff, so a sum of
 * 64-bit words with end-around carry, folded down to 16 bits, equals the 16-bit sum.
 */
#include "wire.h"

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v)); /* unaligned and strict-aliasing safe; compiles to one load */
	return v;
}

static inline uint32_t load32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint16_t load16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* Fold a 64-bit one's-complement accumulator to 16 bits, keeping every end-around carry
 * (RFC 1071 §4.1). The result is in 0..0xffff. */
static inline uint32_t fold64(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (uint32_t)s;
}

/* *s += v, with the carry out of bit 63 counted in *carry: the shape compilers turn into
 * add/adc. */
static inline void add64(uint64_t *s, uint64_t *carry, uint64_t v)
{
	*s += v;
	*carry += *s < v;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(TERN_NO_ASM)
/*
 * The 64-byte blocks as one add-with-carry chain (RFC 1071 §4.1's "add with carry" loop, on
 * 64-bit words): each adc folds in a load and the previous carry, one instruction per 8
 * bytes, where portable C needs two or three. Returns the running 64-bit sum with every
 * carry added back.
 */
static inline uint64_t sum_blocks64(const uint8_t *p, size_t blocks, uint64_t s)
{
	if (!blocks)
		return s;
	__asm__("1:\n\t"
		"addq 0(%[p]), %[s]\n\t"
		"adcq 8(%[p]), %[s]\n\t"
		"adcq 16(%[p]), %[s]\n\t"
		"adcq 24(%[p]), %[s]\n\t"
		"adcq 32(%[p]), %[s]\n\t"
		"adcq 40(%[p]), %[s]\n\t"
		"adcq 48(%[p]), %[s]\n\t"
		"adcq 56(%[p]), %[s]\n\t"
		"adcq $0, %[s]\n\t"
		"addq $64, %[p]\n\t"
		"decq %[n]\n\t"
		"jnz 1b"
		: [s] "+r"(s), [p] "+r"(p), [n] "+r"(blocks)
		:
		: "cc", "memory");
	return s;
}
#define HAVE_SUM_BLOCKS64 1
#endif

/*
 * One's-complement sum of len bytes as if they started at an even stream offset, as a 64-bit
 * accumulator. Carries out of bit 63 are counted apart and added back at the end (RFC 1071
 * §2(D), deferred carries): about 2.5 instructions per 8 bytes in portable C at -O2.
 */
static uint64_t sum_bytes(const uint8_t *p, size_t len)
{
	uint64_t s = 0, carry = 0;

#ifdef HAVE_SUM_BLOCKS64
	s = sum_blocks64(p, len / 64, 0);
	p += len & ~(size_t)63;
	len &= 63;
#endif
	for (; len >= 64; len -= 64, p += 64) {
		add64(&s, &carry, load64(p));
		add64(&s, &carry, load64(p + 8));
		add64(&s, &carry, load64(p + 16));
		add64(&s, &carry, load64(p + 24));
		add64(&s, &carry, load64(p + 32));
		add64(&s, &carry, load64(p + 40));
		add64(&s, &carry, load64(p + 48));
		add64(&s, &carry, load64(p + 56));
	}
	for (; len >= 8; len -= 8, p += 8)
		add64(&s, &carry, load64(p));
	/* The tail in 4-, 2- and 1-byte steps: each starts at an even offset, so each is whole
	 * 16-bit words in native order, like the wide loads. A variable-length memcpy here
	 * would become a library call. */
	if (len & 4) {
		add64(&s, &carry, load32(p));
		p += 4;
	}
	if (len & 2) {
		add64(&s, &carry, load16(p));
		p += 2;
	}
	if (len & 1) {
		/* An odd final byte is the first byte of a word whose second byte is 0, the
		 * padding RFC 9293 §3.1 prescribes for odd lengths. */
		const uint8_t last[2] = {p[0], 0};
		add64(&s, &carry, load16(last));
	}
	s += carry;
	s += s < carry;
	return s;
}

uint32_t tern_csum_add(uint32_t sum, const void *buf, size_t len, int odd)
{
	uint32_t piece;
	uint64_t r;

	if (len == 0)
		return sum;
	piece = fold64(sum_bytes(buf, len));
	/* A piece at an odd stream offset has each byte in the other half of its 16-bit word
	 * from the one sum_bytes assumed; swapping the bytes of its sum moves them all back
	 * (RFC 1071 §2(B)). */
	if (odd)
		piece = ((piece & 0xffu) << 8) | (piece >> 8);
	r = (uint64_t)sum + piece;
	return (uint32_t)((r & 0xffffffffu) + (r >> 32));
}

uint16_t tern_csum_fold(uint32_t sum)
{
	return (uint16_t)~fold64(sum);
}

uint32_t tern_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	/* RFC 9293 §3.1: source, destination, zero, protocol, TCP length. Summed as host-order
	 * 16-bit values, then put in the running sum's byte order: native loads of big-endian
	 * words are byte-swapped on a little-endian machine, and by RFC 1071 §2(B) so is the
	 * sum of them. */
	uint32_t h = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
	h = (h & 0xffff) + (h >> 16);
	h = (h & 0xffff) + (h >> 16);
	const uint8_t be[2] = {(uint8_t)(h >> 8), (uint8_t)h};
	uint16_t native;
	memcpy(&native, be, 2);
	return native;
}

uint16_t tern_csum_hdr20(const void *hdr)
{
	/* Five 32-bit words with end-around carry (RFC 1071 §2(C)): a 20-byte IPv4 header. */
	const uint8_t *p = hdr;
	uint64_t s = (uint64_t)load32(p) + load32(p + 4) + load32(p + 8) + load32(p + 12) +
		     load32(p + 16);
	return (uint16_t)~fold64(s);
}

uint16_t tern_csum_iov(uint32_t pseudo_sum, const struct tern_iovec *iov, unsigned n)
{
	/* One 64-bit accumulator across the pieces, folded once at the end; only a piece at an
	 * odd stream offset is folded on its own, to swap its bytes (RFC 1071 §2(B)). */
	uint64_t acc = pseudo_sum;
	int odd = 0;

	for (unsigned i = 0; i < n; i++) {
		if (iov[i].len == 0)
			continue; /* base may be NULL; nothing to read */
		uint64_t piece = sum_bytes(iov[i].base, iov[i].len);
		if (odd) {
			uint32_t f = fold64(piece);
			piece = ((f & 0xffu) << 8) | (f >> 8);
		}
		acc += piece;
		acc += acc < piece; /* end-around carry */
		odd ^= (int)(iov[i].len & 1);
	}
	return (uint16_t)~fold64(acc);
}
