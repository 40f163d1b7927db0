/*
 * Tests for the byte-level codecs (src/wire.h): the Internet checksum, IPv4 and TCP headers.
 *
 * Parsers are fed buffers allocated at their exact length (dup_exact) so that AddressSanitizer
 * reports any read past the end. Checksums are checked against known packets and against a
 * deliberately naive reference (ref_sum) that shares no code with the fast one.
 */
#include "test.h"
#include "wire.h"

#include <stdlib.h>

/* ---- helpers ---- */

/* RFC 1071 in its plainest form: big-endian 16-bit words, odd byte padded on the right,
 * carries folded at the end. Returns the folded sum (not complemented) as a number. */
static uint16_t ref_sum(uint32_t init, const uint8_t *p, size_t len)
{
	uint64_t s = init;

	for (size_t i = 0; i < len; i++)
		s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The big-endian value of a checksum as tern stores it (native order, memcpy). */
static uint16_t stored(uint16_t c)
{
	uint8_t b[2];

	memcpy(b, &c, sizeof(b));
	return rd16(b);
}

/* A folded native-order running sum as a big-endian number, for comparison with ref_sum. */
static uint16_t sum_value(uint32_t sum)
{
	return (uint16_t)~stored(tern_csum_fold(sum));
}

/* One's-complement values are equal when they agree modulo 0xffff (0 and 0xffff are both
 * zero). */
static int ones_eq(uint32_t a, uint32_t b) { return a % 0xffff == b % 0xffff; }

static uint8_t *dup_exact(const void *p, size_t len)
{
	uint8_t *d = calloc(len ? len : 1, 1);

	if (!d)
		abort();
	if (len)
		memcpy(d, p, len);
	return d;
}

/* splitmix64: a small deterministic generator for reproducible random tests. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rnd_fill(uint64_t *s, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rnd_next(s);
}

/* The pseudo-header (RFC 9293 §3.1) as bytes, for the reference checksum. */
static uint16_t ref_tcp_csum_value(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	uint8_t ph[12];

	wr32(ph, src);
	wr32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = 6;
	wr16(ph + 10, (uint16_t)len);
	return ref_sum(ref_sum(0, ph, sizeof(ph)), seg, len);
}

/* Store a correct TCP checksum into seg, computed with the reference. */
static void tcp_fix_csum(uint8_t *seg, size_t len, uint32_t src, uint32_t dst)
{
	wr16(seg + 16, 0);
	wr16(seg + 16, (uint16_t)~ref_tcp_csum_value(src, dst, seg, len));
}

/* Store a correct IPv4 header checksum over IHL*4 bytes, computed with the reference. */
static void ip4_fix_csum(uint8_t *h)
{
	size_t hlen = (size_t)(h[0] & 0x0f) * 4;

	wr16(h + 10, 0);
	wr16(h + 10, (uint16_t)~ref_sum(0, h, hlen));
}

static int ip4_parse_exact(const uint8_t *p, size_t len, struct tern_ip4 *ip)
{
	uint8_t *d = dup_exact(p, len);
	int r = tern_ip4_parse(d, len, ip);

	free(d);
	return r;
}

static int tcp_parse_exact(const uint8_t *p, size_t len, uint32_t src, uint32_t dst,
			   struct tern_tcp_seg *s)
{
	uint8_t *d = dup_exact(p, len);
	int r = tern_tcp_parse(d, len, src, dst, s);

	free(d);
	return r;
}

static int opts_parse_exact(const uint8_t *p, size_t len, struct tern_tcp_opts *o)
{
	uint8_t *d = dup_exact(p, len);
	int r = tern_tcp_opts_parse(d, len, o);

	free(d);
	return r;
}

/* A TCP segment with the given options bytes (padded by the caller to a multiple of 4) and
 * payload, a correct checksum, into buf. Returns its length. */
static size_t mk_tcp(uint8_t *buf, const uint8_t *opts, size_t optlen, const uint8_t *data,
		     size_t dlen, uint32_t src, uint32_t dst)
{
	memset(buf, 0, TERN_TCP_HLEN);
	wr16(buf, 1234);
	wr16(buf + 2, 80);
	wr32(buf + 4, 1000);
	wr32(buf + 8, 2000);
	buf[12] = (uint8_t)(((TERN_TCP_HLEN + optlen) / 4) << 4);
	buf[13] = TERN_TH_ACK;
	wr16(buf + 14, 65535);
	if (optlen)
		memcpy(buf + TERN_TCP_HLEN, opts, optlen);
	if (dlen)
		memcpy(buf + TERN_TCP_HLEN + optlen, data, dlen);
	tcp_fix_csum(buf, TERN_TCP_HLEN + optlen + dlen, src, dst);
	return TERN_TCP_HLEN + optlen + dlen;
}

#define SRC TERN_IP4(10, 0, 0, 1)
#define DST TERN_IP4(10, 0, 0, 2)

/* ---- checksum ---- */

TEST(wire_csum_rfc1071_example)
{
	/* RFC 1071 §3: these bytes sum to 0xddf2 (big-endian), so the checksum is 0x220d. */
	static const uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	uint16_t c = tern_csum_fold(tern_csum_add(0, b, sizeof(b), 0));
	uint8_t out[2];

	memcpy(out, &c, 2);
	CHECK_EQ(out[0], 0x22);
	CHECK_EQ(out[1], 0x0d);
	CHECK_EQ(sum_value(tern_csum_add(0, b, sizeof(b), 0)), 0xddf2);
	/* §2(A): any split and order gives the same sum. */
	uint32_t s = tern_csum_add(0, b + 4, 4, 0);
	s = tern_csum_add(s, b, 4, 0);
	CHECK_EQ(stored(tern_csum_fold(s)), 0x220d);
}

TEST(wire_csum_known_ip4_header)
{
	/* A UDP datagram's IPv4 header, 192.168.0.1 -> 192.168.0.199. By hand, the words
	 * 4500+0073+0000+4000+4011+c0a8+0001+c0a8+00c7 = 0x2479c; folded 0x479e; complemented
	 * 0xb861. */
	uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};

	CHECK_EQ(stored(tern_csum_fold(tern_csum_add(0, h, 20, 0))), 0xb861);
	h[10] = 0xb8;
	h[11] = 0x61;
	CHECK_EQ(tern_csum_fold(tern_csum_add(0, h, 20, 0)), 0);
	/* tern_ip4_build writes the same bytes for the same fields. */
	uint8_t built[20];
	tern_ip4_build(built, TERN_IP4(192, 168, 0, 1), TERN_IP4(192, 168, 0, 199),
		       TERN_IPPROTO_UDP, 64, 0, 1, 0x73 - 20);
	CHECK_MEM(built, h, 20);
}

TEST(wire_csum_known_tcp_segment)
{
	/* A SYN 10.0.0.1:40000 -> 10.0.0.2:80, options MSS 1460, SACK_PERM, TS 123456/0, WS 7.
	 * Pseudo-header words 0a00+0001+0a00+0002+0006+0028 plus the segment's words sum to
	 * 0x3ae6e; folded 0xae71; complemented 0x518e (checked independently in Python). */
	static const uint8_t syn[40] = {
		0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
		0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
		0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07};
	uint32_t ps = tern_csum_pseudo(SRC, DST, 6, sizeof(syn));
	struct tern_iovec iov = {syn, sizeof(syn)};

	CHECK_EQ(stored(tern_csum_iov(ps, &iov, 1)), 0x518e);

	/* The same segment, built by tern, checksummed and parsed back. */
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.sport = 40000;
	h.dport = 80;
	h.seq = 0x12345678;
	h.flags = TERN_TH_SYN;
	h.win = 64240;
	h.opts.has = TERN_OPT_MSS | TERN_OPT_SACK_PERM | TERN_OPT_TS | TERN_OPT_WSCALE;
	h.opts.mss = 1460;
	h.opts.ts_val = 123456;
	h.opts.wscale = 7;
	uint8_t buf[60];
	size_t n = tern_tcp_build(buf, &h);
	REQUIRE_EQ(n, sizeof(syn));
	CHECK_MEM(buf, syn, sizeof(syn));
	iov.base = buf;
	uint16_t c = tern_csum_iov(ps, &iov, 1);
	memcpy(buf + 16, &c, 2);
	CHECK_EQ(buf[16], 0x51);
	CHECK_EQ(buf[17], 0x8e);
	struct tern_tcp_seg s;
	CHECK_EQ(tcp_parse_exact(buf, n, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.csum, 0x518e);

	/* An odd-length data segment: ACK|PSH with TS and "hello"; 0xb853 from Python. */
	static const uint8_t dat[37] = {
		0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x79, 0xab, 0xcd, 0xef, 0x01, 0x80,
		0x18, 0x01, 0xf6, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x01,
		0xe2, 0x41, 0x00, 0x01, 0xe2, 0x40, 'h',  'e',  'l',  'l',  'o'};
	ps = tern_csum_pseudo(SRC, DST, 6, sizeof(dat));
	iov.base = dat;
	iov.len = sizeof(dat);
	CHECK_EQ(stored(tern_csum_iov(ps, &iov, 1)), 0xb853);
}

TEST(wire_csum_matches_reference_all_lengths_and_alignments)
{
	uint64_t seed = test_seed(0x5eed0001);
	uint8_t buf[300 + 8];

	rnd_fill(&seed, buf, sizeof(buf));
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 300; len++) {
			uint32_t got = tern_csum_add(0, buf + off, len, 0);
			if (!ones_eq(sum_value(got), ref_sum(0, buf + off, len))) {
				test_fail(__FILE__, __LINE__, "off %zu len %zu: %04x != %04x", off,
					  len, sum_value(got), ref_sum(0, buf + off, len));
				return;
			}
		}
}

TEST(wire_csum_odd_lengths)
{
	/* An odd final byte is the high byte of a word padded with zero (RFC 9293 §3.1). */
	static const uint8_t one[1] = {0xab};
	static const uint8_t three[3] = {0x12, 0x34, 0x56};

	CHECK_EQ(sum_value(tern_csum_add(0, one, 1, 0)), 0xab00);
	CHECK_EQ(sum_value(tern_csum_add(0, three, 3, 0)), 0x1234 + 0x5600);
	/* Starting at an odd stream offset, the byte is the low half of its word. */
	CHECK_EQ(sum_value(tern_csum_add(0, one, 1, 1)), 0x00ab);
	CHECK_EQ(sum_value(tern_csum_add(0, three, 3, 1)), 0x0012 + 0x3456);
	/* Zero length changes nothing, even with odd set. */
	CHECK_EQ(tern_csum_add(0x1234, one, 0, 1), 0x1234);
}

TEST(wire_csum_carries)
{
	/* All-ones data maximizes carries; the sum of n words 0xffff is 0xffff (negative zero). */
	size_t n = 65536 + 7;
	uint8_t *b = malloc(n);
	REQUIRE(b);
	memset(b, 0xff, n);
	for (size_t len = 1; len <= n; len = len * 3 + 1)
		CHECK(ones_eq(sum_value(tern_csum_add(0, b, len, 0)), ref_sum(0, b, len)));
	CHECK(ones_eq(sum_value(tern_csum_add(0, b, n, 0)), ref_sum(0, b, n)));
	free(b);

	/* A running sum near the top of 32 bits must keep its carries. The running sum is in
	 * native order, so the reference starts from its big-endian meaning. */
	static const uint8_t w[2] = {0xff, 0xfe};
	for (uint32_t init = 0xfffffff0u; init != 0; init++) {
		uint32_t s = tern_csum_add(init, w, 2, 0);
		CHECK(ones_eq(sum_value(s), ref_sum(sum_value(init), w, 2)));
	}
	/* Fold of the extremes: 0 and all ones are both zero in one's complement. */
	CHECK_EQ(tern_csum_fold(0), 0xffff);
	CHECK_EQ(tern_csum_fold(0xffffffffu), 0);
	CHECK_EQ(tern_csum_fold(0xffff), 0);
	CHECK_EQ(tern_csum_fold(0x10000), 0xfffe);
}

TEST(wire_csum_random_pieces_and_sums)
{
	uint64_t seed = test_seed(0x5eed0002), s0 = seed;
	uint8_t buf[2048 + 8];

	for (int it = 0; it < 2000; it++) {
		size_t len = (size_t)(rnd_next(&seed) % 2049);
		size_t off = (size_t)(rnd_next(&seed) % 8);
		uint32_t init = (uint32_t)rnd_next(&seed);
		int odd = (int)(rnd_next(&seed) & 1);
		rnd_fill(&seed, buf, sizeof(buf));

		/* The reference sums the piece as if preceded by one byte when odd is set, and
		 * starts from the big-endian meaning of the native-order running sum. */
		uint8_t *shifted = malloc(len + 1);
		REQUIRE(shifted);
		shifted[0] = 0;
		memcpy(shifted + 1, buf + off, len);
		uint16_t want = odd ? ref_sum(sum_value(init), shifted, len + 1)
				    : ref_sum(sum_value(init), buf + off, len);
		free(shifted);
		uint32_t got = tern_csum_add(init, buf + off, len, odd);
		if (!ones_eq(sum_value(got), want)) {
			test_fail(__FILE__, __LINE__,
				  "TERN_SEED=0x%" PRIx64 " it %d len %zu off %zu odd %d "
				  "init %08" PRIx32 ": %04x != %04x",
				  s0, it, len, off, odd, init, sum_value(got), want);
			return;
		}
	}
}

TEST(wire_csum_iov_every_split)
{
	uint64_t seed = test_seed(0x5eed0003);
	enum { N = 1461 };
	uint8_t *b = malloc(N);
	REQUIRE(b);
	rnd_fill(&seed, b, N);
	uint32_t ps = tern_csum_pseudo(SRC, DST, 6, N);
	struct tern_iovec one = {b, N};
	uint16_t whole = tern_csum_iov(ps, &one, 1);

	CHECK_EQ(stored(whole), (uint16_t)~ref_tcp_csum_value(SRC, DST, b, N));
	for (size_t k = 0; k <= N; k++) {
		struct tern_iovec two[2] = {{b, k}, {b + k, N - k}};
		uint16_t c = tern_csum_iov(ps, two, 2);
		if (c != whole) {
			test_fail(__FILE__, __LINE__, "split at %zu: %04x != %04x", k, c, whole);
			break;
		}
	}
	/* Three pieces at every pair of cut points of a shorter buffer, with empty (NULL)
	 * pieces mixed in. */
	enum { M = 41 };
	struct tern_iovec m1 = {b, M};
	uint16_t want = tern_csum_iov(ps, &m1, 1);
	for (size_t i = 0; i <= M; i++)
		for (size_t j = i; j <= M; j++) {
			struct tern_iovec v[5] = {
				{b, i}, {NULL, 0}, {b + i, j - i}, {b + j, M - j}, {NULL, 0}};
			uint16_t c = tern_csum_iov(ps, v, 5);
			if (c != want) {
				test_fail(__FILE__, __LINE__, "cuts %zu,%zu: %04x != %04x", i, j, c,
					  want);
				i = M + 1;
				break;
			}
		}
	/* Every piece one byte long: every other piece is at an odd offset. */
	struct tern_iovec bytes[M];
	for (size_t i = 0; i < M; i++)
		bytes[i] = (struct tern_iovec){b + i, 1};
	CHECK_EQ(tern_csum_iov(ps, bytes, M), want);
	CHECK_EQ(tern_csum_iov(ps, NULL, 0), tern_csum_fold(ps));
	free(b);
}

TEST(wire_csum_verify_gives_zero)
{
	uint64_t seed = test_seed(0x5eed0004);
	uint8_t seg[20 + 1461];

	rnd_fill(&seed, seg, sizeof(seg));
	for (size_t len = 20; len <= sizeof(seg); len += 37) {
		uint32_t ps = tern_csum_pseudo(SRC, DST, 6, (uint16_t)len);
		wr16(seg + 16, 0);
		struct tern_iovec v[2] = {{seg, 20}, {seg + 20, len - 20}};
		uint16_t c = tern_csum_iov(ps, v, 2);
		memcpy(seg + 16, &c, 2);
		CHECK_EQ(tern_csum_iov(ps, v, 2), 0);
		CHECK_EQ(tern_csum_fold(tern_csum_add(ps, seg, len, 0)), 0);
		CHECK_EQ((uint16_t)~ref_tcp_csum_value(SRC, DST, seg, len), 0);
	}
}

TEST(wire_csum_pseudo_layout)
{
	/* RFC 9293 §3.1: src, dst, zero, protocol, length, all big-endian. */
	static const uint8_t ph[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0, 6, 0x05, 0xdc};
	uint32_t s = tern_csum_pseudo(TERN_IP4(192, 0, 2, 1), TERN_IP4(198, 51, 100, 7), 6, 1500);

	CHECK_EQ(tern_csum_fold(s), tern_csum_fold(tern_csum_add(0, ph, 12, 0)));
	CHECK_EQ(sum_value(s), ref_sum(0, ph, 12));
	CHECK(tern_csum_fold(tern_csum_pseudo(1, 2, 6, 3)) !=
	      tern_csum_fold(tern_csum_pseudo(1, 2, 17, 3)));
}

/* ---- IPv4 ---- */

TEST(wire_ip4_round_trip)
{
	uint64_t seed = test_seed(0x5eed0005);

	for (int it = 0; it < 200; it++) {
		uint32_t src = (uint32_t)rnd_next(&seed), dst = (uint32_t)rnd_next(&seed);
		uint8_t proto = (uint8_t)rnd_next(&seed), ttl = (uint8_t)rnd_next(&seed);
		uint16_t id = (uint16_t)rnd_next(&seed);
		int df = it & 1;
		uint16_t plen = (uint16_t)(rnd_next(&seed) % 200);
		uint8_t pkt[20 + 200 + 3];

		rnd_fill(&seed, pkt, sizeof(pkt));
		tern_ip4_build(pkt, src, dst, proto, ttl, id, df, plen);
		CHECK_EQ(pkt[0], 0x45);
		CHECK_EQ(pkt[1], 0);
		CHECK_EQ(rd16(pkt + 6), df ? 0x4000 : 0);
		CHECK_EQ(ref_sum(0, pkt, 20), 0xffff);

		struct tern_ip4 ip;
		/* Link padding after the datagram (3 extra bytes) is ignored. */
		size_t extra = (size_t)(it % 4);
		REQUIRE_EQ(ip4_parse_exact(pkt, 20u + plen + extra, &ip), TERN_IP4_OK);
		CHECK_EQ(ip.src, src);
		CHECK_EQ(ip.dst, dst);
		CHECK_EQ(ip.proto, proto);
		CHECK_EQ(ip.ttl, ttl);
		CHECK_EQ(ip.tos, 0);
		CHECK_EQ(ip.hlen, 20);
		CHECK_EQ(ip.id, id);
		CHECK_EQ(ip.total_len, 20 + plen);
		CHECK_EQ(ip.frag, df ? 0x4000 : 0);
		CHECK_EQ(ip.payload_len, plen);

		REQUIRE_EQ(tern_ip4_parse(pkt, 20u + plen + extra, &ip), TERN_IP4_OK);
		CHECK(ip.payload == pkt + 20);
		if (test_failed())
			break;
	}
}

TEST(wire_ip4_known_header_fields)
{
	uint8_t pkt[0x73] = {0x45, 0x10, 0x00, 0x73, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x11,
			     0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	struct tern_ip4 ip;

	ip4_fix_csum(pkt);
	REQUIRE_EQ(tern_ip4_parse(pkt, sizeof(pkt), &ip), TERN_IP4_OK);
	CHECK_EQ(ip.tos, 0x10);
	CHECK_EQ(ip.total_len, 0x73);
	CHECK_EQ(ip.id, 0xbeef);
	CHECK_EQ(ip.frag, 0x4000);
	CHECK_EQ(ip.ttl, 64);
	CHECK_EQ(ip.proto, TERN_IPPROTO_UDP);
	CHECK_EQ(ip.src, TERN_IP4(192, 168, 0, 1));
	CHECK_EQ(ip.dst, TERN_IP4(192, 168, 0, 199));
	CHECK_EQ(ip.hlen, 20);
	CHECK(ip.payload == pkt + 20);
	CHECK_EQ(ip.payload_len, 0x73 - 20);
}

TEST(wire_ip4_options_skipped)
{
	/* IHL 7: 8 bytes of options (a NOP-padded record-route-ish blob), covered by the
	 * checksum. */
	uint8_t pkt[28 + 4] = {0x47, 0, 0, 32, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
			       0x07, 0x07, 0x04, 0, 0, 0, 0, 1, 'd', 'a', 't', 'a'};
	struct tern_ip4 ip;

	ip4_fix_csum(pkt);
	REQUIRE_EQ(ip4_parse_exact(pkt, sizeof(pkt), &ip), TERN_IP4_OK);
	CHECK_EQ(ip.hlen, 28);
	CHECK_EQ(ip.payload_len, 4);
	REQUIRE_EQ(tern_ip4_parse(pkt, sizeof(pkt), &ip), TERN_IP4_OK);
	CHECK(ip.payload == pkt + 28);
	/* The checksum covers the options: one changed option byte must fail it. */
	pkt[25] ^= 1;
	CHECK_EQ(ip4_parse_exact(pkt, sizeof(pkt), &ip), TERN_IP4_CSUM);
	/* A checksum computed over 20 bytes only is wrong for IHL 7. */
	pkt[25] ^= 1;
	wr16(pkt + 10, 0);
	wr16(pkt + 10, (uint16_t)~ref_sum(0, pkt, 20));
	CHECK_EQ(ip4_parse_exact(pkt, sizeof(pkt), &ip), TERN_IP4_CSUM);
	/* IHL 15: a 60-byte header is the largest. */
	uint8_t big[60] = {0x4f, 0, 0, 60, 0, 1, 0, 0, 64, 6};
	memset(big + 20, 1, 40);
	ip4_fix_csum(big);
	CHECK_EQ(ip4_parse_exact(big, 60, &ip), TERN_IP4_OK);
	CHECK_EQ(ip.hlen, 60);
	CHECK_EQ(ip.payload_len, 0);
}

TEST(wire_ip4_malformed)
{
	uint8_t good[40];
	struct tern_ip4 ip;

	memset(good, 0xa5, sizeof(good));
	tern_ip4_build(good, SRC, DST, 6, 64, 7, 1, 20);
	REQUIRE_EQ(ip4_parse_exact(good, 40, &ip), TERN_IP4_OK);

	uint8_t p[64] = {0};
#define RESET() memcpy(p, good, sizeof(good))

	/* SHORT: under 20 bytes, whatever they hold. */
	for (size_t len = 0; len < 20; len++)
		CHECK_EQ(ip4_parse_exact(good, len, &ip), TERN_IP4_SHORT);

	/* VERSION: anything but 4, checked before IHL. */
	for (unsigned v = 0; v < 16; v++) {
		if (v == 4)
			continue;
		RESET();
		p[0] = (uint8_t)(v << 4 | 5);
		ip4_fix_csum(p);
		CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_VERSION);
		p[0] = (uint8_t)(v << 4 | 2);
		CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_VERSION);
	}

	/* IHL below 5. */
	for (unsigned ihl = 0; ihl < 5; ihl++) {
		RESET();
		p[0] = (uint8_t)(0x40 | ihl);
		CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_IHL);
	}

	/* SHORT: the buffer holds 20 bytes but not IHL*4. */
	RESET();
	p[0] = 0x46;
	wr16(p + 2, 24);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 24, &ip), TERN_IP4_OK);
	for (size_t len = 20; len < 24; len++)
		CHECK_EQ(ip4_parse_exact(p, len, &ip), TERN_IP4_SHORT);
	RESET();
	p[0] = 0x4f;
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 59, &ip), TERN_IP4_SHORT);

	/* TOTLEN: below the header, or beyond the buffer. */
	RESET();
	wr16(p + 2, 19);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	wr16(p + 2, 0);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	wr16(p + 2, 41);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	wr16(p + 2, 0xffff);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	RESET();
	p[0] = 0x46;
	wr16(p + 2, 23);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	/* total_len equal to the header (no payload) and to the buffer are both fine. */
	RESET();
	wr16(p + 2, 20);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_OK);
	CHECK_EQ(ip.payload_len, 0);
	wr16(p + 2, 40);
	ip4_fix_csum(p);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_OK);
	CHECK_EQ(ip.payload_len, 20);

	/* CSUM: every single-bit flip in the header is caught. Flips that first trip an
	 * earlier check (version, IHL, total length) report that one instead. */
	for (int bit = 0; bit < 160; bit++) {
		RESET();
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = ip4_parse_exact(p, 40, &ip);
		if (bit < 8) /* IHL 7 still fits in 40 bytes and fails the checksum */
			CHECK(r == TERN_IP4_VERSION || r == TERN_IP4_IHL || r == TERN_IP4_SHORT ||
			      r == TERN_IP4_CSUM);
		else if (bit >= 16 && bit < 32)
			CHECK(r == TERN_IP4_TOTLEN || r == TERN_IP4_CSUM);
		else
			CHECK_EQ(r, TERN_IP4_CSUM);
	}
	/* Payload bytes are not covered by the header checksum. */
	RESET();
	p[30] ^= 0xff;
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_OK);

	/* FRAG: MF, any offset, or both. DF alone and the reserved bit are not fragments. */
	static const uint16_t frags[] = {0x2000, 0x0001, 0x1fff, 0x2001, 0x6000, 0x4001, 0x8001};
	for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		RESET();
		wr16(p + 6, frags[i]);
		ip4_fix_csum(p);
		CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_FRAG);
	}
	static const uint16_t whole[] = {0x0000, 0x4000, 0x8000, 0xc000};
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		RESET();
		wr16(p + 6, whole[i]);
		ip4_fix_csum(p);
		CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_OK);
		CHECK_EQ(ip.frag, whole[i]);
	}

	/* Order: SHORT, VERSION, IHL, SHORT, TOTLEN, CSUM, FRAG. */
	RESET();
	p[0] = 0x64; /* version 6 and IHL 4 */
	CHECK_EQ(ip4_parse_exact(p, 19, &ip), TERN_IP4_SHORT);
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_VERSION);
	RESET();
	p[0] = 0x43;
	wr16(p + 2, 0); /* IHL and total length both bad */
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_IHL);
	RESET();
	p[0] = 0x4f;
	wr16(p + 2, 0); /* short for IHL and total length bad */
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_SHORT);
	RESET();
	wr16(p + 2, 1000); /* total length and checksum both bad */
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_TOTLEN);
	RESET();
	wr16(p + 6, 0x2000); /* fragment and checksum both bad */
	CHECK_EQ(ip4_parse_exact(p, 40, &ip), TERN_IP4_CSUM);
#undef RESET
}

/* ---- TCP ---- */

TEST(wire_tcp_round_trip_fields)
{
	uint64_t seed = test_seed(0x5eed0006);

	for (int it = 0; it < 300; it++) {
		struct tern_seg_info h;
		uint8_t seg[60 + 100];
		memset(&h, 0, sizeof(h));
		h.sport = (uint16_t)rnd_next(&seed);
		h.dport = (uint16_t)rnd_next(&seed);
		h.seq = (uint32_t)rnd_next(&seed);
		h.ack = (uint32_t)rnd_next(&seed);
		h.flags = (uint16_t)(rnd_next(&seed) & 0x1ff);
		h.win = (uint16_t)rnd_next(&seed);
		h.urp = (uint16_t)rnd_next(&seed);
		h.opts.has = (uint8_t)(rnd_next(&seed) & 0x1f);
		h.opts.mss = (uint16_t)rnd_next(&seed);
		h.opts.wscale = (uint8_t)(rnd_next(&seed) % 15);
		h.opts.ts_val = (uint32_t)rnd_next(&seed);
		h.opts.ts_ecr = (uint32_t)rnd_next(&seed);
		h.opts.nsack = (uint8_t)(1 + rnd_next(&seed) % 4);
		for (int b = 0; b < 4; b++) {
			h.opts.sack[b].left = (uint32_t)rnd_next(&seed);
			h.opts.sack[b].right = (uint32_t)rnd_next(&seed);
		}
		size_t dlen = (size_t)(rnd_next(&seed) % 101);

		memset(seg, 0xee, sizeof(seg));
		size_t hlen = tern_tcp_build(seg, &h);
		REQUIRE(hlen >= 20 && hlen <= 60 && hlen % 4 == 0);
		CHECK_EQ(seg[12] >> 4, hlen / 4);
		CHECK_EQ(rd16(seg + 16), 0);
		rnd_fill(&seed, seg + hlen, dlen);
		size_t len = hlen + dlen;
		struct tern_iovec v[2] = {{seg, hlen}, {seg + hlen, dlen}};
		uint16_t c = tern_csum_iov(tern_csum_pseudo(SRC, DST, 6, (uint16_t)len), v, 2);
		memcpy(seg + 16, &c, 2);

		struct tern_tcp_seg s;
		REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
		CHECK_EQ(s.h.src, SRC);
		CHECK_EQ(s.h.dst, DST);
		CHECK_EQ(s.h.sport, h.sport);
		CHECK_EQ(s.h.dport, h.dport);
		CHECK_EQ(s.h.seq, h.seq);
		CHECK_EQ(s.h.ack, h.ack);
		CHECK_EQ(s.h.flags, h.flags);
		CHECK_EQ(s.h.win, h.win);
		CHECK_EQ(s.h.urp, h.urp);
		CHECK_EQ(s.h.len, dlen);
		CHECK_EQ(s.hlen, hlen);
		CHECK_EQ(s.csum, stored(c));
		CHECK_EQ(s.h.opts.has, h.opts.has);
		if (h.opts.has & TERN_OPT_MSS)
			CHECK_EQ(s.h.opts.mss, h.opts.mss);
		if (h.opts.has & TERN_OPT_WSCALE)
			CHECK_EQ(s.h.opts.wscale, h.opts.wscale);
		if (h.opts.has & TERN_OPT_TS) {
			CHECK_EQ(s.h.opts.ts_val, h.opts.ts_val);
			CHECK_EQ(s.h.opts.ts_ecr, h.opts.ts_ecr);
		}
		if (h.opts.has & TERN_OPT_SACK) {
			CHECK(s.h.opts.nsack >= 1 && s.h.opts.nsack <= h.opts.nsack);
			for (unsigned b = 0; b < s.h.opts.nsack; b++) {
				CHECK_EQ(s.h.opts.sack[b].left, h.opts.sack[b].left);
				CHECK_EQ(s.h.opts.sack[b].right, h.opts.sack[b].right);
			}
		}
		REQUIRE_EQ(tern_tcp_parse(seg, len, SRC, DST, &s), TERN_TCP_OK);
		CHECK(s.data == seg + hlen);
		/* The checksum covers the addresses: another source fails it. */
		CHECK_EQ(tcp_parse_exact(seg, len, SRC + 1, DST, &s), TERN_TCP_CSUM);
		if (test_failed())
			break;
	}
}

TEST(wire_tcp_all_flags)
{
	static const uint16_t bits[9] = {TERN_TH_FIN, TERN_TH_SYN, TERN_TH_RST,
					 TERN_TH_PSH, TERN_TH_ACK, TERN_TH_URG,
					 TERN_TH_ECE, TERN_TH_CWR, TERN_TH_AE};
	struct tern_seg_info h;
	struct tern_tcp_seg s;
	uint8_t seg[60];

	memset(&h, 0, sizeof(h));
	h.sport = 1;
	h.dport = 2;
	/* Each flag alone lands at its wire position: bits 0-7 in octet 13, AE in octet 12. */
	for (int i = 0; i < 9; i++) {
		h.flags = bits[i];
		REQUIRE_EQ(tern_tcp_build(seg, &h), 20);
		CHECK_EQ(seg[12], 0x50 | (i == 8 ? 1 : 0));
		CHECK_EQ(seg[13], i == 8 ? 0 : 1 << i);
		tcp_fix_csum(seg, 20, SRC, DST);
		CHECK_EQ(tcp_parse_exact(seg, 20, SRC, DST, &s), TERN_TCP_OK);
		CHECK_EQ(s.h.flags, bits[i]);
	}
	/* Every combination survives a round trip. */
	for (unsigned f = 0; f < 512; f++) {
		h.flags = (uint16_t)f;
		tern_tcp_build(seg, &h);
		tcp_fix_csum(seg, 20, SRC, DST);
		CHECK_EQ(tcp_parse_exact(seg, 20, SRC, DST, &s), TERN_TCP_OK);
		CHECK_EQ(s.h.flags, f);
	}
	/* The three reserved bits beside AE are ignored on input. */
	h.flags = TERN_TH_SYN;
	tern_tcp_build(seg, &h);
	seg[12] |= 0x0e;
	tcp_fix_csum(seg, 20, SRC, DST);
	CHECK_EQ(tcp_parse_exact(seg, 20, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.h.flags, TERN_TH_SYN);
	CHECK_EQ(s.hlen, 20);
}

TEST(wire_tcp_opts_linux_layouts)
{
	struct tern_tcp_opts o;
	uint8_t b[64];

#define LAYOUT(...)                                                                           \
	do {                                                                                  \
		static const uint8_t want_[] = {__VA_ARGS__};                                 \
		memset(b, 0xee, sizeof(b));                                                   \
		size_t n_ = tern_tcp_opts_build(b, &o);                                       \
		CHECK_EQ(n_, sizeof(want_));                                                  \
		if (n_ == sizeof(want_))                                                      \
			CHECK_MEM(b, want_, sizeof(want_));                                   \
		CHECK_EQ(b[n_], 0xee);                                                        \
	} while (0)

	memset(&o, 0, sizeof(o));
	b[0] = 0xee;
	CHECK_EQ(tern_tcp_opts_build(b, &o), 0);

	/* Linux's SYN: MSS 1460, SACK_PERM, TS, WS 7. */
	o.has = TERN_OPT_MSS | TERN_OPT_SACK_PERM | TERN_OPT_TS | TERN_OPT_WSCALE;
	o.mss = 1460;
	o.ts_val = 0xdeadbeef;
	o.wscale = 7;
	LAYOUT(0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
	       0x00, 0x00, 0x01, 0x03, 0x03, 0x07);
	/* Without timestamps. */
	o.has = TERN_OPT_MSS | TERN_OPT_SACK_PERM | TERN_OPT_WSCALE;
	LAYOUT(0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x07);
	/* Timestamps without SACK_PERM. */
	o.has = TERN_OPT_MSS | TERN_OPT_TS | TERN_OPT_WSCALE;
	o.ts_ecr = 0x01020304;
	LAYOUT(0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x08, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02,
	       0x03, 0x04, 0x01, 0x03, 0x03, 0x07);
	/* A data segment with timestamps only. */
	o.has = TERN_OPT_TS;
	LAYOUT(0x01, 0x01, 0x08, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04);
	/* Each option alone. */
	o.has = TERN_OPT_MSS;
	o.mss = 536;
	LAYOUT(0x02, 0x04, 0x02, 0x18);
	o.has = TERN_OPT_SACK_PERM;
	LAYOUT(0x01, 0x01, 0x04, 0x02);
	o.has = TERN_OPT_WSCALE;
	o.wscale = 14;
	LAYOUT(0x01, 0x03, 0x03, 0x0e);

	/* SACK blocks: NOP, NOP, SACK, 2+8n. */
	for (int i = 0; i < 4; i++) {
		o.sack[i].left = 0x11111111u * (uint32_t)(2 * i + 1);
		o.sack[i].right = 0x11111111u * (uint32_t)(2 * i + 2);
	}
	o.has = TERN_OPT_SACK;
	o.nsack = 1;
	LAYOUT(0x01, 0x01, 0x05, 0x0a, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22);
	o.nsack = 4;
	LAYOUT(0x01, 0x01, 0x05, 0x22, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x33, 0x33,
	       0x33, 0x33, 0x44, 0x44, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x66, 0x66, 0x66, 0x66,
	       0x77, 0x77, 0x77, 0x77, 0x88, 0x88, 0x88, 0x88);
	/* With timestamps, 4 blocks do not fit in 40 bytes: 3 are kept (RFC 2018 §3). */
	o.has = TERN_OPT_SACK | TERN_OPT_TS;
	o.ts_val = 1;
	o.ts_ecr = 2;
	LAYOUT(0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2, 0x01, 0x01, 0x05, 0x1a, 0x11, 0x11,
	       0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x33, 0x33, 0x33, 0x33, 0x44, 0x44, 0x44, 0x44,
	       0x55, 0x55, 0x55, 0x55, 0x66, 0x66, 0x66, 0x66);
	/* Every option: 20 bytes of others leave room for 2 blocks. */
	o.has = 0x1f;
	o.mss = 1460;
	o.wscale = 7;
	LAYOUT(0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2, 0x01, 0x03,
	       0x03, 0x07, 0x01, 0x01, 0x05, 0x12, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22,
	       0x33, 0x33, 0x33, 0x33, 0x44, 0x44, 0x44, 0x44);
	/* A SACK bit with no blocks writes nothing; a count above 4 is treated as 4. */
	o.has = TERN_OPT_SACK;
	o.nsack = 0;
	CHECK_EQ(tern_tcp_opts_build(b, &o), 0);
	o.nsack = 200;
	CHECK_EQ(tern_tcp_opts_build(b, &o), 36);
#undef LAYOUT
}

TEST(wire_tcp_opts_build_always_aligned)
{
	struct tern_tcp_opts o;
	uint8_t b[64];

	memset(&o, 0, sizeof(o));
	for (unsigned has = 0; has < 32; has++)
		for (unsigned ns = 0; ns <= 5; ns++) {
			o.has = (uint8_t)has;
			o.nsack = (uint8_t)ns;
			memset(b, 0xee, sizeof(b));
			size_t n = tern_tcp_opts_build(b, &o);
			CHECK(n % 4 == 0 && n <= TERN_TCP_MAX_OPTLEN);
			CHECK_EQ(b[n], 0xee);
			CHECK_EQ(b[40], 0xee);
			/* The list parses back to the same set (SACK only when blocks fit). */
			struct tern_tcp_opts back;
			CHECK_EQ(opts_parse_exact(b, n, &back), TERN_TCP_OK);
			uint8_t want = (uint8_t)(ns ? has : has & ~TERN_OPT_SACK);
			CHECK_EQ(back.has, want);
		}
}

TEST(wire_tcp_opts_round_trip_values)
{
	struct tern_tcp_opts o, back;
	uint8_t b[64];

	memset(&o, 0, sizeof(o));
	o.has = TERN_OPT_MSS | TERN_OPT_WSCALE | TERN_OPT_SACK_PERM | TERN_OPT_TS;
	o.mss = 0xfedc;
	o.wscale = 0;
	o.ts_val = 0xffffffff;
	o.ts_ecr = 0x80000001;
	size_t n = tern_tcp_opts_build(b, &o);
	REQUIRE_EQ(opts_parse_exact(b, n, &back), TERN_TCP_OK);
	CHECK_EQ(back.has, o.has);
	CHECK_EQ(back.mss, 0xfedc);
	CHECK_EQ(back.wscale, 0);
	CHECK_EQ(back.ts_val, 0xffffffff);
	CHECK_EQ(back.ts_ecr, 0x80000001);
	CHECK_EQ(back.nsack, 0);

	for (unsigned ns = 1; ns <= 4; ns++) {
		memset(&o, 0, sizeof(o));
		o.has = TERN_OPT_SACK;
		o.nsack = (uint8_t)ns;
		for (unsigned i = 0; i < 4; i++) {
			o.sack[i].left = 0xfffffff0u + i * 100;
			o.sack[i].right = o.sack[i].left + 50;
		}
		n = tern_tcp_opts_build(b, &o);
		CHECK_EQ(n, 4 + 8 * ns);
		REQUIRE_EQ(opts_parse_exact(b, n, &back), TERN_TCP_OK);
		CHECK_EQ(back.has, TERN_OPT_SACK);
		CHECK_EQ(back.nsack, ns);
		for (unsigned i = 0; i < ns; i++) {
			CHECK_EQ(back.sack[i].left, o.sack[i].left);
			CHECK_EQ(back.sack[i].right, o.sack[i].right);
		}
	}
}

TEST(wire_tcp_opts_parse_edge_cases)
{
	struct tern_tcp_opts o;

	/* An empty list, and one of NOPs only. */
	CHECK_EQ(opts_parse_exact(NULL, 0, &o), TERN_TCP_OK);
	CHECK_EQ(o.has, 0);
	static const uint8_t nops[] = {1, 1, 1, 1};
	CHECK_EQ(opts_parse_exact(nops, 4, &o), TERN_TCP_OK);
	CHECK_EQ(o.has, 0);

	/* EOL ends the list: what follows, even garbage, is not read. */
	static const uint8_t eol[] = {1, 0, 2, 4, 5, 0xb4};
	CHECK_EQ(opts_parse_exact(eol, sizeof(eol), &o), TERN_TCP_OK);
	CHECK_EQ(o.has, 0);
	static const uint8_t eol_garbage[] = {2, 4, 5, 0xb4, 0, 2, 0, 9};
	CHECK_EQ(opts_parse_exact(eol_garbage, sizeof(eol_garbage), &o), TERN_TCP_OK);
	CHECK_EQ(o.has, TERN_OPT_MSS);
	CHECK_EQ(o.mss, 1460);

	/* Unknown kinds are skipped by their length, whatever it is. */
	static const uint8_t unknown[] = {30, 6, 1, 2, 3, 4, 254, 2, 2, 4, 0x05, 0xb4, 99, 3, 0};
	CHECK_EQ(opts_parse_exact(unknown, sizeof(unknown), &o), TERN_TCP_OK);
	CHECK_EQ(o.has, TERN_OPT_MSS);
	CHECK_EQ(o.mss, 1460);
	/* ...including one whose body would look like options. */
	static const uint8_t hiding[] = {200, 6, 2, 4, 0x12, 0x34, 1, 1};
	CHECK_EQ(opts_parse_exact(hiding, sizeof(hiding), &o), TERN_TCP_OK);
	CHECK_EQ(o.has, 0);

	/* Known kinds with the wrong length are ignored, and parsing goes on after them. */
	static const struct {
		uint8_t b[16];
		size_t len;
		uint8_t ignored, kept;
	} wrong[] = {
		{{2, 3, 5, 4, 2}, 5, TERN_OPT_MSS, TERN_OPT_SACK_PERM},
		{{2, 6, 5, 0xb4, 0, 0, 4, 2}, 8, TERN_OPT_MSS, TERN_OPT_SACK_PERM},
		{{3, 2, 2, 4, 5, 0xb4}, 6, TERN_OPT_WSCALE, TERN_OPT_MSS},
		{{3, 4, 7, 0, 2, 4, 5, 0xb4}, 8, TERN_OPT_WSCALE, TERN_OPT_MSS},
		{{4, 3, 0, 3, 3, 9}, 6, TERN_OPT_SACK_PERM, TERN_OPT_WSCALE},
		{{4, 4, 0, 0, 3, 3, 9}, 7, TERN_OPT_SACK_PERM, TERN_OPT_WSCALE},
		{{8, 8, 1, 2, 3, 4, 5, 6, 3, 3, 9}, 11, TERN_OPT_TS, TERN_OPT_WSCALE},
		{{8, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 3, 9}, 15, TERN_OPT_TS, TERN_OPT_WSCALE},
		{{5, 2, 3, 3, 9}, 5, TERN_OPT_SACK, TERN_OPT_WSCALE},
		{{5, 9, 1, 2, 3, 4, 5, 6, 7, 3, 3, 9}, 12, TERN_OPT_SACK, TERN_OPT_WSCALE},
		{{5, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 3, 9}, 14, TERN_OPT_SACK, TERN_OPT_WSCALE},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		int r = opts_parse_exact(wrong[i].b, wrong[i].len, &o);
		if (r != TERN_TCP_OK || (o.has & wrong[i].ignored) || o.has != wrong[i].kept)
			test_fail(__FILE__, __LINE__, "case %zu: r %d has %#x", i, r, o.has);
		if (o.has & TERN_OPT_MSS)
			CHECK_EQ(o.mss, 1460);
		if (o.has & TERN_OPT_WSCALE)
			CHECK_EQ(o.wscale, 9);
		CHECK_EQ(o.nsack, 0);
	}

	/* WSCALE above 14 is used as 14 (RFC 7323 §2.3). */
	static const uint8_t ws_in[] = {0, 13, 14, 15, 16, 100, 255};
	static const uint8_t ws_out[] = {0, 13, 14, 14, 14, 14, 14};
	for (size_t i = 0; i < sizeof(ws_in); i++) {
		uint8_t ws[3] = {3, 3, ws_in[i]};
		CHECK_EQ(opts_parse_exact(ws, 3, &o), TERN_TCP_OK);
		CHECK_EQ(o.has, TERN_OPT_WSCALE);
		CHECK_EQ(o.wscale, ws_out[i]);
	}

	/* A SACK option with 5 blocks (a list longer than a header can hold): 4 kept. */
	uint8_t sack5[42] = {5, 42};
	for (int i = 0; i < 10; i++)
		wr32(sack5 + 2 + 4 * i, 1000u * (uint32_t)(i + 1));
	CHECK_EQ(opts_parse_exact(sack5, sizeof(sack5), &o), TERN_TCP_OK);
	CHECK_EQ(o.has, TERN_OPT_SACK);
	CHECK_EQ(o.nsack, 4);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(o.sack[i].left, 1000u * (uint32_t)(2 * i + 1));
		CHECK_EQ(o.sack[i].right, 1000u * (uint32_t)(2 * i + 2));
	}

	/* The struct is cleared first: stale fields do not survive a parse. */
	memset(&o, 0xff, sizeof(o));
	CHECK_EQ(opts_parse_exact(nops, 4, &o), TERN_TCP_OK);
	CHECK_EQ(o.has, 0);
	CHECK_EQ(o.nsack, 0);
	CHECK_EQ(o.mss, 0);
	CHECK_EQ(o.ts_val, 0);
}

TEST(wire_tcp_opts_malformed)
{
	struct tern_tcp_opts o;
	static const struct {
		uint8_t b[8];
		size_t len;
	} bad[] = {
		{{2}, 1},                       /* truncated at the length byte */
		{{1, 1, 1, 8}, 4},              /* the same after NOPs */
		{{99}, 1},                      /* unknown kind, truncated */
		{{2, 0, 5, 0xb4}, 4},           /* length 0 */
		{{30, 0, 1, 1}, 4},             /* unknown kind, length 0 */
		{{2, 1, 5, 0xb4}, 4},           /* length 1 */
		{{30, 1, 1, 1}, 4},             /* length 1, NOPs after it */
		{{1, 1, 8, 1}, 4},              /* length 1 as the last option */
		{{2, 5, 5, 0xb4}, 4},           /* length past the end */
		{{8, 10, 0, 0, 0, 0, 0, 0}, 8}, /* TS cut short */
		{{1, 1, 30, 7, 0, 0}, 6},       /* unknown kind past the end */
		{{2, 4, 5, 0xb4, 3, 3, 7, 3}, 8}, /* valid options, then a cut WSCALE */
		{{5, 255, 0, 0}, 4},            /* SACK length far past the end */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = opts_parse_exact(bad[i].b, bad[i].len, &o);
		if (r != TERN_TCP_OPTS)
			test_fail(__FILE__, __LINE__, "case %zu: %d != TERN_TCP_OPTS", i, r);
	}
	/* A length exactly reaching the end is fine. */
	static const uint8_t exact[] = {1, 2, 4, 5, 0xb4};
	CHECK_EQ(opts_parse_exact(exact, sizeof(exact), &o), TERN_TCP_OK);
	CHECK_EQ(o.mss, 1460);
}

TEST(wire_tcp_malformed)
{
	uint8_t seg[128], opt[40];
	struct tern_tcp_seg s;
	size_t len;

	/* SHORT: fewer than 20 bytes. */
	len = mk_tcp(seg, NULL, 0, NULL, 0, SRC, DST);
	REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
	for (size_t l = 0; l < 20; l++)
		CHECK_EQ(tcp_parse_exact(seg, l, SRC, DST, &s), TERN_TCP_SHORT);

	/* DOFF below 5. */
	for (unsigned d = 0; d < 5; d++) {
		len = mk_tcp(seg, NULL, 0, (const uint8_t *)"abcdefgh", 8, SRC, DST);
		seg[12] = (uint8_t)(d << 4);
		tcp_fix_csum(seg, len, SRC, DST);
		CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_DOFF);
	}
	/* DOFF past the end of the segment. */
	len = mk_tcp(seg, (const uint8_t *)"\x01\x01\x01\x01", 4, NULL, 0, SRC, DST);
	CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
	for (size_t l = 20; l < 24; l++)
		CHECK_EQ(tcp_parse_exact(seg, l, SRC, DST, &s), TERN_TCP_DOFF);
	memset(opt, TERN_TCPOPT_NOP, sizeof(opt));
	len = mk_tcp(seg, opt, 40, NULL, 0, SRC, DST);
	CHECK_EQ(tcp_parse_exact(seg, 60, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.hlen, 60);
	CHECK_EQ(tcp_parse_exact(seg, 59, SRC, DST, &s), TERN_TCP_DOFF);

	/* OPTS: every malformed option form, inside a correctly checksummed segment. */
	static const uint8_t bad_opts[][4] = {
		{2, 0, 5, 0xb4}, /* length 0 */
		{2, 1, 5, 0xb4}, /* length 1 */
		{30, 1, 1, 1},   /* length 1, what follows it would parse */
		{2, 5, 5, 0xb4}, /* length past the end of the header */
		{1, 1, 1, 2},    /* truncated at the length byte */
		{1, 1, 1, 77},   /* the same, unknown kind */
		{77, 0, 0, 0},   /* unknown kind, length 0 */
	};
	for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
		/* Payload bytes after the header must not be taken for option bytes. */
		len = mk_tcp(seg, bad_opts[i], 4, (const uint8_t *)"\x04\xb4\x01\x01", 4, SRC,
			     DST);
		int r = tcp_parse_exact(seg, len, SRC, DST, &s);
		if (r != TERN_TCP_OPTS)
			test_fail(__FILE__, __LINE__, "bad option %zu: %d", i, r);
	}

	/* CSUM: every single-bit flip anywhere in a segment is caught, and the header fields
	 * are still filled in for tracing. */
	static const uint8_t data[] = "odd-length payload";
	len = mk_tcp(seg, NULL, 0, data, sizeof(data), SRC, DST);
	REQUIRE_EQ(len % 2, 1);
	for (size_t bit = 0; bit < len * 8; bit++) {
		if (bit / 8 == 12)
			continue; /* data offset changes are DOFF or OPTS errors first */
		seg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = tcp_parse_exact(seg, len, SRC, DST, &s);
		seg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (r != TERN_TCP_CSUM) {
			test_fail(__FILE__, __LINE__, "bit %zu: %d != TERN_TCP_CSUM", bit, r);
			break;
		}
	}
	seg[4] ^= 0x80;
	REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_CSUM);
	CHECK_EQ(s.h.sport, 1234);
	CHECK_EQ(s.h.dport, 80);
	CHECK_EQ(s.h.seq, 1000u ^ 0x80000000u);
	CHECK_EQ(s.h.ack, 2000);
	CHECK_EQ(s.h.flags, TERN_TH_ACK);
	CHECK_EQ(s.h.win, 65535);
	CHECK_EQ(s.h.len, sizeof(data));
	CHECK_EQ(s.hlen, 20);
	seg[4] ^= 0x80;
	/* Wrong addresses or a truncated segment fail the checksum too. */
	CHECK_EQ(tcp_parse_exact(seg, len, DST, SRC + 1, &s), TERN_TCP_CSUM);
	CHECK_EQ(tcp_parse_exact(seg, len - 1, SRC, DST, &s), TERN_TCP_CSUM);
	CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);

	/* Beyond 65535 bytes the pseudo-header's 16-bit length cannot describe the segment, so
	 * no checksum verifies, not even one that would with the length cut to 16 bits. */
	size_t huge = 0x10000 + 20;
	uint8_t *h = calloc(huge, 1);
	REQUIRE(h);
	memcpy(h, seg, 20);
	tcp_fix_csum(h, huge, SRC, DST);
	CHECK_EQ(tcp_parse_exact(h, huge, SRC, DST, &s), TERN_TCP_CSUM);
	CHECK_EQ(s.h.len, 0x10000);
	free(h);

	/* Order: SHORT, DOFF, CSUM, OPTS (a damaged segment is reported as damaged). */
	len = mk_tcp(seg, bad_opts[0], 4, NULL, 0, SRC, DST);
	CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OPTS);
	seg[17] ^= 1;
	CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_CSUM);
	seg[12] = 0x40;
	CHECK_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_DOFF);
	CHECK_EQ(tcp_parse_exact(seg, 19, SRC, DST, &s), TERN_TCP_SHORT);
}

TEST(wire_tcp_parse_option_cases)
{
	uint8_t seg[128];
	struct tern_tcp_seg s;

	/* Known kind with a wrong length, unknown kind and EOL padding: all OK. */
	static const uint8_t o1[] = {2, 3, 9, 1, 200, 4, 1, 2, 3, 3, 20, 0};
	size_t len = mk_tcp(seg, o1, sizeof(o1), (const uint8_t *)"x", 1, SRC, DST);
	REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.h.opts.has, TERN_OPT_WSCALE);
	CHECK_EQ(s.h.opts.wscale, 14);
	CHECK_EQ(s.hlen, 32);
	CHECK_EQ(s.h.len, 1);

	/* 4 SACK blocks, the most a header holds. */
	uint8_t o2[36] = {1, 1, 5, 34};
	for (int i = 0; i < 8; i++)
		wr32(o2 + 4 + 4 * i, 0xfffffff0u + (uint32_t)i);
	len = mk_tcp(seg, o2, sizeof(o2), NULL, 0, SRC, DST);
	REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.h.opts.has, TERN_OPT_SACK);
	CHECK_EQ(s.h.opts.nsack, 4);
	CHECK_EQ(s.h.opts.sack[3].right, 0xfffffff7u);

	/* Option bytes are bounded by the data offset, not by the segment. */
	static const uint8_t o3[] = {1, 1, 1, 1};
	len = mk_tcp(seg, o3, sizeof(o3), (const uint8_t *)"\x02\x04\x05\xb4", 4, SRC, DST);
	REQUIRE_EQ(tcp_parse_exact(seg, len, SRC, DST, &s), TERN_TCP_OK);
	CHECK_EQ(s.h.opts.has, 0);
	CHECK_EQ(s.h.len, 4);
}

TEST(wire_seq_arithmetic_wraps)
{
	/* RFC 1982 / RFC 9293 §3.4: comparisons are modulo 2^32. */
	CHECK(seq_lt(0xfffffff0u, 0x10));
	CHECK(!seq_lt(0x10, 0xfffffff0u));
	CHECK(seq_gt(0x10, 0xfffffff0u));
	CHECK(seq_le(0xffffffffu, 0));
	CHECK(seq_ge(0, 0xffffffffu));
	CHECK(seq_lt(0xffffffffu, 0));
	CHECK(seq_gt(0, 0xffffffffu));
	CHECK(seq_le(5, 5) && seq_ge(5, 5) && !seq_lt(5, 5) && !seq_gt(5, 5));
	CHECK(seq_le(0xffffffffu, 0xffffffffu));
	CHECK(seq_lt(1, 2) && seq_gt(2, 1));
	CHECK(seq_lt(0x7fffffffu, 0x80000000u));
	CHECK(seq_lt(0x80000000u, 0x80000001u));
	/* Just under half the space ahead is "after"; just over is "before". */
	CHECK(seq_gt(0x7fffffffu, 0));
	CHECK(seq_lt(0x80000001u, 0));
	CHECK_EQ(seq_max(0xfffffff0u, 0x10), 0x10);
	CHECK_EQ(seq_min(0xfffffff0u, 0x10), 0xfffffff0u);
	CHECK_EQ(seq_max(0x10, 0xfffffff0u), 0x10);
	CHECK_EQ(seq_min(0x10, 0xfffffff0u), 0xfffffff0u);
	CHECK_EQ(seq_max(7, 7), 7);
	/* A window that straddles the wrap. */
	uint32_t lo = 0xffffff00u, hi = lo + 0x200;
	for (uint32_t x = lo; x != hi; x++)
		if (!(seq_ge(x, lo) && seq_lt(x, hi))) {
			test_fail(__FILE__, __LINE__, "%08" PRIx32 " not in window", x);
			break;
		}
	CHECK(!seq_ge(lo - 1, lo));
	CHECK(!seq_lt(hi, hi));
}

/* ---- randomized ---- */

TEST(wire_random_bytes_never_fool_the_parsers)
{
	uint64_t seed0 = test_seed(0x5eed0007), seed = seed0;
	uint8_t raw[128];
	int oks_ip = 0, oks_tcp = 0;

	for (int it = 0; it < 200000; it++) {
		size_t len = (size_t)(rnd_next(&seed) % sizeof(raw));
		unsigned shape = (unsigned)(rnd_next(&seed) % 8);
		rnd_fill(&seed, raw, len);
		uint32_t src = (uint32_t)rnd_next(&seed), dst = (uint32_t)rnd_next(&seed);

		/* Bias some inputs past the early checks so the deep ones see random bytes. */
		if (len >= 20 && (shape & 1)) {
			raw[0] = (uint8_t)(0x45 + (shape & 2 ? raw[0] % 11 : 0));
			raw[6] &= 0x40;
			raw[7] = 0;
			if (shape & 4)
				wr16(raw + 2, (uint16_t)(len - raw[1] % 3));
			if ((size_t)(raw[0] & 15) * 4 <= len)
				ip4_fix_csum(raw);
		}
		uint8_t *d = dup_exact(raw, len);
		struct tern_ip4 ip;
		int r = tern_ip4_parse(d, len, &ip);
		if (r == TERN_IP4_OK) {
			oks_ip++;
			size_t hl = (size_t)(d[0] & 15) * 4;
			if (ref_sum(0, d, hl) != 0xffff || ip.hlen != hl || ip.total_len > len ||
			    ip.payload != d + hl || ip.hlen + ip.payload_len != ip.total_len ||
			    (ip.frag & 0x3fff) || (d[0] >> 4) != 4) {
				test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64
					  " it %d: IPv4 OK for a bad header", seed0, it);
				free(d);
				return;
			}
		} else if (r < TERN_IP4_FRAG || r > TERN_IP4_OK) {
			test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64 " it %d: ip4 %d",
				  seed0, it, r);
			free(d);
			return;
		}
		free(d);

		if (len >= 20 && (shape & 1)) {
			/* A plausible data offset and a correct checksum, options left random. */
			size_t maxd = len / 4 > 15 ? 15 : len / 4;
			raw[12] = (uint8_t)((5 + raw[12] % (maxd - 4)) << 4 | (raw[12] & 15));
			if (shape & 2)
				tcp_fix_csum(raw, len, src, dst);
		}
		d = dup_exact(raw, len);
		struct tern_tcp_seg s;
		r = tern_tcp_parse(d, len, src, dst, &s);
		if (r == TERN_TCP_OK) {
			oks_tcp++;
			size_t hl = (size_t)(d[12] >> 4) * 4;
			if (ref_tcp_csum_value(src, dst, d, len) != 0xffff || s.hlen != hl ||
			    hl > len || s.data != d + hl || s.h.len != len - hl ||
			    s.h.opts.nsack > 4 || s.h.opts.wscale > 14) {
				test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64
					  " it %d: TCP OK for a bad segment", seed0, it);
				free(d);
				return;
			}
			/* Whatever parsed must build and parse back to the same options. */
			uint8_t b[64];
			struct tern_tcp_opts back;
			size_t n = tern_tcp_opts_build(b, &s.h.opts);
			if (n > 40 || n % 4 || tern_tcp_opts_parse(b, n, &back) != TERN_TCP_OK ||
			    back.has != (s.h.opts.has & (s.h.opts.nsack ? 0x1f : 0x0f)) ||
			    back.mss != s.h.opts.mss || back.wscale != s.h.opts.wscale ||
			    back.ts_val != s.h.opts.ts_val || back.ts_ecr != s.h.opts.ts_ecr) {
				test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64
					  " it %d: options do not round-trip", seed0, it);
				free(d);
				return;
			}
		} else if (r < TERN_TCP_CSUM || r > TERN_TCP_OK) {
			test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64 " it %d: tcp %d",
				  seed0, it, r);
			free(d);
			return;
		}
		free(d);

		/* The option parser alone, on lists of any length. */
		struct tern_tcp_opts o;
		size_t olen = len > 44 ? 44 : len;
		d = dup_exact(raw, olen);
		r = tern_tcp_opts_parse(d, olen, &o);
		free(d);
		if ((r != TERN_TCP_OK && r != TERN_TCP_OPTS) || o.nsack > 4 || o.wscale > 14 ||
		    (r == TERN_TCP_OK && !(o.has & TERN_OPT_SACK) && o.nsack)) {
			test_fail(__FILE__, __LINE__, "TERN_SEED=0x%" PRIx64 " it %d: opts %d",
				  seed0, it, r);
			return;
		}
	}
	/* The biasing must actually reach the accepting paths, or the test proves little. */
	CHECK(oks_ip > 1000);
	CHECK(oks_tcp > 1000);
}
