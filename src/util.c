/* Small pieces the rest of the stack leans on: the random source, SipHash, byte rings, and
 * the names of states and errors. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* ---- xoshiro256** (Blackman & Vigna), seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rng_seed(struct tern_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(struct tern_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* ---- SipHash-2-4: the keyed hash RFC 6528 and RFC 6056 ask for ---- */

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND                                                                              \
	do {                                                                                  \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);                 \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                                      \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                                      \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);                 \
	} while (0)

uint64_t siphash24(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- rings ---- */

#define RING_CACHE_MAX (256u * 1024)

/*
 * Buffers exist only while they hold data, so an idle connection costs its TCB alone. A ring
 * of each default size is kept back when freed so that a connection whose buffer empties and
 * fills again (request/response, or a receiver that keeps up) does not call malloc per
 * segment.
 */
struct ring *ring_get(struct tern_stack *st, uint32_t cap)
{
	for (int i = 0; i < 2; i++) {
		struct ring *r = st->ring_cache[i];
		if (r && r->cap == cap) {
			st->ring_cache[i] = NULL;
			r->head = r->len = 0;
			r->nooo = 0;
			r->ooo_fin = 0;
			st->mem_bufs += cap;
			return r;
		}
	}
	if (st->set.mem_max && st->mem_bufs + cap > st->set.mem_max) {
		st->stats.mem_failures++;
		return NULL;
	}
	struct ring *r = malloc(sizeof(*r) + cap);
	if (!r) {
		st->stats.mem_failures++;
		return NULL;
	}
	r->cap = cap;
	r->head = r->len = 0;
	r->nooo = 0;
	r->ooo_fin = 0;
	st->mem_bufs += cap;
	return r;
}

void ring_put(struct tern_stack *st, struct ring *r)
{
	if (!r)
		return;
	/* A send buffer's bytes may still be on their way out by reference. */
	stack_link_flush(st);
	st->mem_bufs -= r->cap;
	/* A send buffer grown with cwnd keeps its size from one response to the next. */
	int slot = r->cap == st->set.rmem_default ? 1 : r->cap <= RING_CACHE_MAX ? 0 : -1;
	if (slot >= 0 && !st->ring_cache[slot]) {
		st->ring_cache[slot] = r;
		return;
	}
	free(r);
}

uint32_t ring_write(struct ring *r, const void *src, uint32_t n)
{
	uint32_t room = r->cap - r->len;
	if (n > room)
		n = room;
	uint32_t tail = r->head + r->len;
	if (tail >= r->cap)
		tail -= r->cap;
	uint32_t first = TERN_MIN(n, r->cap - tail);
	memcpy(r->data + tail, src, first);
	memcpy(r->data, (const uint8_t *)src + first, n - first);
	r->len += n;
	return n;
}

unsigned ring_peek(const struct ring *r, uint32_t off, uint32_t n, struct tern_iovec iov[2])
{
	if (!r || off >= r->len || n == 0)
		return 0;
	if (n > r->len - off)
		n = r->len - off;
	uint32_t start = r->head + off;
	if (start >= r->cap)
		start -= r->cap;
	uint32_t first = TERN_MIN(n, r->cap - start);
	iov[0].base = r->data + start;
	iov[0].len = first;
	if (first == n)
		return 1;
	iov[1].base = r->data;
	iov[1].len = n - first;
	return 2;
}

void ring_consume(struct ring *r, uint32_t n)
{
	if (n > r->len)
		n = r->len;
	r->head += n;
	if (r->head >= r->cap)
		r->head -= r->cap;
	r->len -= n;
	if (r->len == 0 && r->nooo == 0)
		r->head = 0; /* out-of-order data sits at fixed distances from head: keep it */
}

void ring_write_at(struct ring *r, uint32_t off, const void *src, uint32_t n)
{
	uint32_t pos = r->head + off;
	if (pos >= r->cap)
		pos -= r->cap;
	uint32_t first = TERN_MIN(n, r->cap - pos);
	memcpy(r->data + pos, src, first);
	memcpy(r->data, (const uint8_t *)src + first, n - first);
}

uint32_t ring_read(struct ring *r, void *dst, uint32_t n, int consume)
{
	struct tern_iovec iov[2];
	unsigned k = ring_peek(r, 0, n, iov);
	uint32_t done = 0;
	for (unsigned i = 0; i < k; i++) {
		memcpy((uint8_t *)dst + done, iov[i].base, iov[i].len);
		done += (uint32_t)iov[i].len;
	}
	if (consume)
		ring_consume(r, done);
	return done;
}

/* ---- names ---- */

const char *tern_state_name(int state)
{
	static const char *const names[TERN_STATE_MAX] = {
		[TERN_STATE_ESTABLISHED] = "ESTABLISHED", [TERN_STATE_SYN_SENT] = "SYN_SENT",
		[TERN_STATE_SYN_RCVD] = "SYN_RCVD",       [TERN_STATE_FIN_WAIT_1] = "FIN_WAIT_1",
		[TERN_STATE_FIN_WAIT_2] = "FIN_WAIT_2",   [TERN_STATE_TIME_WAIT] = "TIME_WAIT",
		[TERN_STATE_CLOSED] = "CLOSED",           [TERN_STATE_CLOSE_WAIT] = "CLOSE_WAIT",
		[TERN_STATE_LAST_ACK] = "LAST_ACK",       [TERN_STATE_LISTEN] = "LISTEN",
		[TERN_STATE_CLOSING] = "CLOSING",
	};
	if (state <= 0 || state >= TERN_STATE_MAX || !names[state])
		return "?";
	return names[state];
}

const char *tern_errno_name(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0: return "OK";
	case EAGAIN: return "EAGAIN";
	case EINPROGRESS: return "EINPROGRESS";
	case EALREADY: return "EALREADY";
	case EISCONN: return "EISCONN";
	case ENOTCONN: return "ENOTCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case ECONNABORTED: return "ECONNABORTED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EPIPE: return "EPIPE";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case ENOBUFS: return "ENOBUFS";
	case EMFILE: return "EMFILE";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENETUNREACH: return "ENETUNREACH";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENOENT: return "ENOENT";
	case ENOSYS: return "ENOSYS";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case EMSGSIZE: return "EMSGSIZE";
	case EFAULT: return "EFAULT";
	default: return "E?";
	}
}
