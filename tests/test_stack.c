/*
 * The stack as a whole: structure sizes, determinism, initial sequence numbers (RFC 6528),
 * ICMP echo, the handling of malformed datagrams, independence of stacks, scale (100,000
 * connections, 10,000 TIME_WAIT records) and the memory each costs, and zero windows.
 *
 * Bare stacks are driven directly with hand-built datagrams and a link that captures what
 * they send; pairs of stacks are joined by a small wire the test drives, or by the simulator.
 */
#include "test.h"
#include "internal.h"
#include "wire.h"
#include "tern/tern.h"
#include "tern/sim.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define ADDR_A TERN_IP4(10, 0, 0, 1)
#define ADDR_B TERN_IP4(10, 0, 0, 2)
#define MSEC(x) ((uint64_t)(x) * 1000u)
#define SEC(x) ((uint64_t)(x) * 1000000u)

/* ---- a link that keeps what a stack sends ---- */

#define CAP_MAX 64
struct cap {
	int n;                   /* packets sent (even beyond CAP_MAX) */
	size_t len[CAP_MAX];
	uint8_t pkt[CAP_MAX][2048];
};

static int cap_tx(void *ctx, const struct tern_iovec *iov, unsigned cnt, size_t total)
{
	struct cap *c = ctx;
	if (c->n < CAP_MAX && total <= sizeof(c->pkt[0])) {
		size_t off = 0;
		for (unsigned i = 0; i < cnt; i++) {
			memcpy(c->pkt[c->n] + off, iov[i].base, iov[i].len);
			off += iov[i].len;
		}
		c->len[c->n] = total;
	}
	c->n++;
	return 0;
}

static struct tern_stack *bare_stack(struct cap *c, uint64_t seed, uint64_t now)
{
	struct tern_settings s;
	tern_settings_default(&s);
	s.seed = seed;
	struct tern_stack *st = tern_stack_new(&s, now);
	REQUIRE(st != NULL);
	REQUIRE_EQ(tern_stack_add_addr(st, ADDR_A), 0);
	memset(c, 0, sizeof(*c));
	struct tern_link l = {.transmit = cap_tx, .ctx = c, .flags = 0};
	tern_stack_set_link(st, &l);
	return st;
}

/* The TCP header of a captured packet. */
static struct tern_tcp_seg cap_tcp(const struct cap *c, int i)
{
	struct tern_ip4 ip;
	struct tern_tcp_seg seg;
	memset(&seg, 0, sizeof(seg));
	REQUIRE(i < c->n && i < CAP_MAX);
	REQUIRE_EQ(tern_ip4_parse(c->pkt[i], c->len[i], &ip), TERN_IP4_OK);
	REQUIRE_EQ(ip.proto, TERN_IPPROTO_TCP_);
	REQUIRE_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &seg), TERN_TCP_OK);
	return seg;
}

/* ---- building datagrams by hand ---- */

static void fix_ip_csum(uint8_t *p)
{
	size_t ihl = (size_t)(p[0] & 15) * 4;
	p[10] = p[11] = 0;
	uint16_t c = tern_csum_fold(tern_csum_add(0, p, ihl, 0));
	memcpy(p + 10, &c, 2);
}

static void fix_tcp_csum(uint8_t *p, size_t len)
{
	size_t ihl = (size_t)(p[0] & 15) * 4;
	uint8_t *t = p + ihl;
	size_t tl = len - ihl;
	t[16] = t[17] = 0;
	uint32_t ps = tern_csum_pseudo(rd32(p + 12), rd32(p + 16), TERN_IPPROTO_TCP_, (uint16_t)tl);
	struct tern_iovec iov = {t, tl};
	uint16_t c = tern_csum_iov(ps, &iov, 1);
	memcpy(t + 16, &c, 2);
}

/* A TCP segment in an IPv4 datagram (no IP options), checksums right. Returns its length. */
static size_t build_tcp(uint8_t *pkt, uint32_t src, uint32_t dst, const struct tern_seg_info *h,
			const void *payload, size_t plen)
{
	size_t hl = tern_tcp_build(pkt + 20, h);
	if (plen)
		memcpy(pkt + 20 + hl, payload, plen);
	size_t tl = hl + plen;
	tern_ip4_build(pkt, src, dst, TERN_IPPROTO_TCP_, 64, 0, 1, (uint16_t)tl);
	fix_tcp_csum(pkt, 20 + tl);
	return 20 + tl;
}

static size_t build_syn(uint8_t *pkt, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
			uint32_t seq)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.sport = sport;
	h.dport = dport;
	h.seq = seq;
	h.flags = TERN_TH_SYN;
	h.win = 65535;
	h.opts.has = TERN_OPT_MSS;
	h.opts.mss = 1460;
	return build_tcp(pkt, src, dst, &h, NULL, 0);
}

/* ---- two bare stacks and a wire the test drives; every packet is logged ---- */

struct wpkt {
	int to;
	size_t len;
	uint8_t data[2048];
};

struct wire {
	struct tern_stack *st[2];
	struct wend {
		struct wire *w;
		int idx;
	} end[2];
	struct wpkt *q;
	size_t head, n, cap;
	uint64_t now;
	uint8_t *log; /* every packet as [from][len16][bytes] */
	size_t log_len, log_cap;
	int c, l, s;  /* the exchange's descriptors */
};

static int wire_tx(void *ctx, const struct tern_iovec *iov, unsigned cnt, size_t total)
{
	struct wend *e = ctx;
	struct wire *w = e->w;
	if (total > sizeof(w->q[0].data))
		return -EMSGSIZE;
	if (w->head + w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->q = realloc(w->q, w->cap * sizeof(*w->q));
		if (!w->q)
			abort();
	}
	struct wpkt *p = &w->q[w->head + w->n++];
	p->to = !e->idx;
	p->len = 0;
	for (unsigned i = 0; i < cnt; i++) {
		memcpy(p->data + p->len, iov[i].base, iov[i].len);
		p->len += iov[i].len;
	}
	if (w->log_len + total + 3 > w->log_cap) {
		w->log_cap = (w->log_cap + total + 3) * 2;
		w->log = realloc(w->log, w->log_cap);
		if (!w->log)
			abort();
	}
	w->log[w->log_len++] = (uint8_t)e->idx;
	wr16(w->log + w->log_len, (uint16_t)total);
	w->log_len += 2;
	memcpy(w->log + w->log_len, p->data, total);
	w->log_len += total;
	return 0;
}

static void wire_init(struct wire *w, uint64_t seed_a, uint64_t seed_b)
{
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < 2; i++) {
		struct tern_settings s;
		tern_settings_default(&s);
		s.seed = i ? seed_b : seed_a;
		w->st[i] = tern_stack_new(&s, 0);
		REQUIRE(w->st[i] != NULL);
		REQUIRE_EQ(tern_stack_add_addr(w->st[i], i ? ADDR_B : ADDR_A), 0);
		w->end[i] = (struct wend){w, i};
		struct tern_link l = {.transmit = wire_tx, .ctx = &w->end[i], .flags = 0};
		tern_stack_set_link(w->st[i], &l);
	}
}

static void wire_pump(struct wire *w)
{
	while (w->n) {
		struct wpkt p = w->q[w->head];
		w->head++;
		w->n--;
		if (!w->n)
			w->head = 0;
		tern_stack_input(w->st[p.to], p.data, p.len, w->now);
	}
}

static void wire_at(struct wire *w, uint64_t t)
{
	w->now = t;
	tern_stack_poll(w->st[0], t);
	tern_stack_poll(w->st[1], t);
	wire_pump(w);
}

static void wire_free(struct wire *w)
{
	tern_stack_free(w->st[0]);
	tern_stack_free(w->st[1]);
	free(w->q);
	free(w->log);
}

/* A scripted exchange in steps (so that several can be interleaved): handshake, 3000 bytes
 * one way and 100 the other, a close from a, and TIME_WAIT running out. */
#define EXCHANGE_STEPS 6
static void exchange_step(struct wire *w, int step)
{
	struct tern_stack *a = w->st[0], *b = w->st[1];
	static uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	uint8_t buf[4096];
	switch (step) {
	case 0: {
		wire_at(w, MSEC(3));
		w->l = tern_socket(b, TERN_SOCK_STREAM);
		struct tern_sockaddr sa = {0, 80};
		REQUIRE_EQ(tern_bind(b, w->l, &sa), 0);
		REQUIRE_EQ(tern_listen(b, w->l, 8), 0);
		w->c = tern_socket(a, TERN_SOCK_STREAM);
		struct tern_sockaddr to = {ADDR_B, 80};
		REQUIRE_EQ(tern_connect(a, w->c, &to), -EINPROGRESS);
		wire_pump(w);
		break;
	}
	case 1:
		wire_at(w, MSEC(5) + 123);
		w->s = tern_accept(b, w->l, NULL);
		REQUIRE(w->s >= 0);
		REQUIRE_EQ(tern_send(a, w->c, data, sizeof(data), 0), (long)sizeof(data));
		REQUIRE_EQ(tern_send(b, w->s, data, 100, 0), 100);
		wire_pump(w);
		break;
	case 2:
		wire_at(w, MSEC(7));
		CHECK_EQ(tern_recv(b, w->s, buf, sizeof(buf), 0), (long)sizeof(data));
		CHECK_EQ(tern_recv(a, w->c, buf, sizeof(buf), 0), 100);
		CHECK_EQ(tern_close(a, w->c), 0);
		wire_pump(w);
		break;
	case 3:
		wire_at(w, MSEC(300));
		CHECK_EQ(tern_recv(b, w->s, buf, sizeof(buf), 0), 0);
		CHECK_EQ(tern_close(b, w->s), 0);
		wire_pump(w);
		break;
	case 4:
		wire_at(w, SEC(10));
		break;
	case 5:
		wire_at(w, SEC(70));
		CHECK_EQ(tern_stack_foreach(a, NULL, NULL), 0);
		CHECK_EQ(tern_stack_foreach(b, NULL, NULL), 1);
		break;
	}
}

static void exchange(struct wire *w)
{
	for (int i = 0; i < EXCHANGE_STEPS; i++)
		exchange_step(w, i);
}

/* ========================================================================================= */
/* Sizes                                                                                      */
/* ========================================================================================= */

TEST(stack_struct_sizes)
{
	CHECK(sizeof(struct tern_tcb) <= 256);
	CHECK_EQ(sizeof(struct tern_tw), 64);
}

/* ========================================================================================= */
/* Determinism                                                                                */
/* ========================================================================================= */

TEST(stack_deterministic_bytes)
{
	uint64_t seed = test_seed(42);
	struct wire w1, w2;
	wire_init(&w1, seed, seed + 1);
	wire_init(&w2, seed, seed + 1);
	exchange(&w1);
	exchange(&w2);
	CHECK(w1.log_len > 3000);
	CHECK_EQ(w1.log_len, w2.log_len);
	if (w1.log_len == w2.log_len)
		CHECK_MEM(w1.log, w2.log, w1.log_len);
	wire_free(&w1);
	wire_free(&w2);
}

TEST(stack_different_seeds_different_isns)
{
	uint64_t seed = test_seed(42);
	struct wire w1, w2;
	wire_init(&w1, seed, seed + 1);
	wire_init(&w2, seed + 100, seed + 101);
	exchange(&w1);
	exchange(&w2);
	/* The first packet of each log is a's SYN: its sequence number is the ISN. */
	REQUIRE(w1.log_len > 3 + 40 && w2.log_len > 3 + 40);
	uint32_t isn1 = rd32(w1.log + 3 + 20 + 4), isn2 = rd32(w2.log + 3 + 20 + 4);
	CHECK(isn1 != isn2);
	CHECK(w1.log_len != w2.log_len || memcmp(w1.log, w2.log, w1.log_len) != 0);
	wire_free(&w1);
	wire_free(&w2);
}

/* The whole simulator too: the same seed replays the same run, packet for packet. */
struct sim_log {
	uint64_t n, hash;
};

static void sim_log_ev(void *user, const struct tern_sim_ev *ev)
{
	struct sim_log *l = user;
	if (!ev->seg_valid)
		return;
	const struct tern_seg_info *g = &ev->tr.u.seg;
	uint64_t v[6] = {ev->t_us, (uint64_t)ev->kind << 32 | (uint32_t)ev->host, g->seq, g->ack,
			 (uint64_t)g->flags << 32 | g->len, (uint64_t)g->sport << 16 | g->dport};
	for (int i = 0; i < 6; i++) {
		l->hash ^= v[i];
		l->hash *= 0x100000001b3ull;
		l->hash ^= l->hash >> 29;
	}
	l->n++;
}

static struct tern_sim *lossy_sim(uint64_t seed, struct sim_log *log, int *c, int *l)
{
	struct tern_sim *sim = tern_sim_new(seed);
	REQUIRE_EQ(tern_sim_add_host(sim, "a", ADDR_A, NULL), 0);
	REQUIRE_EQ(tern_sim_add_host(sim, "b", ADDR_B, NULL), 1);
	struct tern_impair imp = {0.05, 0.05, 0.05, 0.05, MSEC(5), MSEC(5)};
	tern_sim_set_impair(sim, -1, -1, &imp);
	memset(log, 0, sizeof(*log));
	tern_sim_set_trace(sim, sim_log_ev, log);
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	*l = tern_socket(b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(b, *l, &sa), 0);
	REQUIRE_EQ(tern_listen(b, *l, 8), 0);
	*c = tern_socket(a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	REQUIRE_EQ(tern_connect(a, *c, &to), -EINPROGRESS);
	return sim;
}

static void lossy_finish(struct tern_sim *sim, int c, int l)
{
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	static uint8_t data[8000];
	tern_sim_run_until(sim, SEC(3));
	int s = tern_accept(b, l, NULL);
	REQUIRE(s >= 0);
	REQUIRE_EQ(tern_send(a, c, data, sizeof(data), 0), (long)sizeof(data));
	tern_sim_run_until(sim, SEC(30));
	uint8_t buf[9000];
	CHECK_EQ(tern_recv(b, s, buf, sizeof(buf), 0), (long)sizeof(data));
}

TEST(stack_deterministic_simulation)
{
	uint64_t seed = test_seed(9);
	struct sim_log l1, l2;
	int c1, c2, s1, s2;
	struct tern_sim *x = lossy_sim(seed, &l1, &c1, &s1);
	struct tern_sim *y = lossy_sim(seed, &l2, &c2, &s2);
	lossy_finish(x, c1, s1);
	lossy_finish(y, c2, s2);
	CHECK(l1.n > 10);
	CHECK_EQ(l1.n, l2.n);
	CHECK(l1.hash == l2.hash);
	tern_sim_free(x);
	tern_sim_free(y);
}

/* ========================================================================================= */
/* Initial sequence numbers (RFC 6528)                                                        */
/* ========================================================================================= */

/* The ISN of a connection from a's port lport to b:80 made at time now. */
static uint32_t isn_at(uint64_t seed, uint64_t now, uint16_t lport)
{
	struct cap c;
	struct tern_stack *st = bare_stack(&c, seed, now);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr me = {0, lport}, to = {ADDR_B, 80};
	REQUIRE_EQ(tern_bind(st, fd, &me), 0);
	REQUIRE_EQ(tern_connect(st, fd, &to), -EINPROGRESS);
	REQUIRE_EQ(c.n, 1);
	struct tern_tcp_seg seg = cap_tcp(&c, 0);
	CHECK_EQ(seg.h.flags, TERN_TH_SYN);
	tern_stack_free(st);
	return seg.h.seq;
}

TEST(stack_isn_clock_advances)
{
	/* RFC 6528: ISN = M + F(4-tuple, key), M a 4-microsecond clock. One stack, one tuple,
	 * one second apart: 250,000 further on (modulo 2^32). */
	uint64_t seed = test_seed(5);
	struct cap c;
	struct tern_stack *st = bare_stack(&c, seed, SEC(1));
	struct tern_sockaddr me = {0, 5000}, to = {ADDR_B, 80};
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	REQUIRE_EQ(tern_bind(st, fd, &me), 0);
	REQUIRE_EQ(tern_connect(st, fd, &to), -EINPROGRESS);
	uint32_t isn1 = cap_tcp(&c, 0).h.seq;
	REQUIRE_EQ(tern_close(st, fd), 0);
	tern_stack_poll(st, SEC(2));
	fd = tern_socket(st, TERN_SOCK_STREAM);
	REQUIRE_EQ(tern_bind(st, fd, &me), 0);
	REQUIRE_EQ(tern_connect(st, fd, &to), -EINPROGRESS);
	REQUIRE_EQ(c.n, 2);
	uint32_t isn2 = cap_tcp(&c, 1).h.seq;
	CHECK_EQ((uint32_t)(isn2 - isn1), 250000u);
	tern_stack_free(st);
	/* Over an hour: still the clock, with wrap-around. */
	uint32_t i0 = isn_at(seed, SEC(10), 5000), i1 = isn_at(seed, SEC(10) + SEC(3600), 5000);
	CHECK_EQ((uint32_t)(i1 - i0), (uint32_t)(SEC(3600) / 4));
	/* Within 4 µs the clock does not move. */
	CHECK_EQ(isn_at(seed, SEC(10) + 1, 5000), isn_at(seed, SEC(10) + 3, 5000));
}

TEST(stack_isn_tuples_unrelated)
{
	uint64_t seed = test_seed(5);
	enum { N = 256 };
	uint32_t isn[N];
	for (int i = 0; i < N; i++)
		isn[i] = isn_at(seed, SEC(1), (uint16_t)(6000 + i));
	/* All different, with no visible pattern from one port to the next... */
	int same_step = 0;
	for (int i = 0; i < N; i++) {
		for (int k = i + 1; k < N; k++)
			CHECK(isn[i] != isn[k]);
		if (i >= 2 && isn[i] - isn[i - 1] == isn[i - 1] - isn[i - 2])
			same_step++;
	}
	CHECK_EQ(same_step, 0);
	/* ... and every bit about half the time. */
	for (int b = 0; b < 32; b++) {
		int ones = 0;
		for (int i = 0; i < N; i++)
			ones += (isn[i] >> b) & 1;
		CHECK(ones > N / 4 && ones < 3 * N / 4);
	}
	/* The secret depends on the seed: the same tuple gets another ISN in another stack. */
	CHECK(isn_at(seed, SEC(1), 6000) != isn_at(seed + 1, SEC(1), 6000));
}

TEST(stack_isn_same_on_retransmitted_syn_and_synack)
{
	struct cap c;
	struct tern_stack *st = bare_stack(&c, test_seed(3), 0);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	REQUIRE_EQ(tern_connect(st, fd, &to), -EINPROGRESS);
	tern_stack_poll(st, SEC(1));
	tern_stack_poll(st, SEC(3));
	REQUIRE_EQ(c.n, 3);
	uint32_t isn = cap_tcp(&c, 0).h.seq;
	CHECK_EQ(cap_tcp(&c, 1).h.seq, isn);
	CHECK_EQ(cap_tcp(&c, 2).h.seq, isn);
	CHECK_EQ(cap_tcp(&c, 2).h.flags, TERN_TH_SYN);
	CHECK_EQ(tern_stack_stats(st)->tcp_retrans, 2);
	tern_stack_free(st);

	/* The passive side: a SYN-ACK retransmitted keeps its ISN too. */
	st = bare_stack(&c, test_seed(3), 0);
	int l = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(st, l, &sa), 0);
	REQUIRE_EQ(tern_listen(st, l, 8), 0);
	uint8_t pkt[128];
	size_t len = build_syn(pkt, ADDR_B, ADDR_A, 40000, 80, 12345);
	tern_stack_input(st, pkt, len, 0);
	tern_stack_poll(st, SEC(1));
	REQUIRE_EQ(c.n, 2);
	struct tern_tcp_seg sa1 = cap_tcp(&c, 0), sa2 = cap_tcp(&c, 1);
	CHECK_EQ(sa1.h.flags, TERN_TH_SYN | TERN_TH_ACK);
	CHECK_EQ(sa1.h.ack, 12346);
	CHECK_EQ(sa2.h.seq, sa1.h.seq);
	CHECK_EQ(sa2.h.flags, TERN_TH_SYN | TERN_TH_ACK);
	/* A retransmitted SYN from the peer is answered with the same SYN-ACK. */
	tern_stack_input(st, pkt, len, SEC(2));
	REQUIRE_EQ(c.n, 3);
	CHECK_EQ(cap_tcp(&c, 2).h.seq, sa1.h.seq);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* ICMP echo                                                                                  */
/* ========================================================================================= */

static size_t build_echo(uint8_t *pkt, uint32_t src, uint32_t dst, uint8_t type, uint16_t id,
			 uint16_t seq, const void *payload, size_t plen)
{
	uint8_t *m = pkt + 20;
	m[0] = type;
	m[1] = 0;
	m[2] = m[3] = 0;
	wr16(m + 4, id);
	wr16(m + 6, seq);
	memcpy(m + 8, payload, plen);
	struct tern_iovec iov = {m, 8 + plen};
	uint16_t c = tern_csum_iov(0, &iov, 1);
	memcpy(m + 2, &c, 2);
	tern_ip4_build(pkt, src, dst, TERN_IPPROTO_ICMP, 64, 777, 0, (uint16_t)(8 + plen));
	return 20 + 8 + plen;
}

TEST(stack_icmp_echo_reply)
{
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	static const char payload[] = "tern ping, odd length!"; /* 22 bytes + NUL = 23: odd */
	uint8_t pkt[256];
	size_t len = build_echo(pkt, ADDR_B, ADDR_A, 8, 0x1234, 7, payload, sizeof(payload));
	tern_stack_input(st, pkt, len, 0);
	REQUIRE_EQ(c.n, 1);
	struct tern_ip4 ip;
	REQUIRE_EQ(tern_ip4_parse(c.pkt[0], c.len[0], &ip), TERN_IP4_OK);
	CHECK_EQ(c.len[0], len);
	CHECK_EQ(ip.proto, TERN_IPPROTO_ICMP);
	CHECK_EQ(ip.src, ADDR_A);
	CHECK_EQ(ip.dst, ADDR_B);
	CHECK_EQ(ip.ttl, 64);
	REQUIRE_EQ(ip.payload_len, 8 + sizeof(payload));
	const uint8_t *m = ip.payload;
	CHECK_EQ(m[0], 0); /* echo reply */
	CHECK_EQ(m[1], 0);
	CHECK_EQ(rd16(m + 4), 0x1234);
	CHECK_EQ(rd16(m + 6), 7);
	CHECK_MEM(m + 8, payload, sizeof(payload));
	struct tern_iovec iov = {m, ip.payload_len};
	CHECK_EQ(tern_csum_iov(0, &iov, 1), 0); /* a valid checksum */
	const struct tern_stats *s = tern_stack_stats(st);
	CHECK_EQ(s->icmp_in, 1);
	CHECK_EQ(s->icmp_out, 1);
	CHECK_EQ(s->icmp_echo_replies, 1);
	CHECK_EQ(s->ip_out, 1);
	/* Empty payload, and an even one. */
	len = build_echo(pkt, ADDR_B, ADDR_A, 8, 1, 2, "", 0);
	tern_stack_input(st, pkt, len, 0);
	len = build_echo(pkt, ADDR_B, ADDR_A, 8, 1, 3, "ab", 2);
	tern_stack_input(st, pkt, len, 0);
	REQUIRE_EQ(c.n, 3);
	for (int i = 1; i < 3; i++) {
		REQUIRE_EQ(tern_ip4_parse(c.pkt[i], c.len[i], &ip), TERN_IP4_OK);
		struct tern_iovec v = {ip.payload, ip.payload_len};
		CHECK_EQ(tern_csum_iov(0, &v, 1), 0);
		CHECK_EQ(rd16(ip.payload + 6), 1 + i);
	}
	tern_stack_free(st);
}

TEST(stack_icmp_not_answered)
{
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	uint8_t pkt[256];
	/* To another address: dropped before ICMP, counted. */
	size_t len = build_echo(pkt, ADDR_B, TERN_IP4(10, 0, 0, 99), 8, 1, 1, "x", 1);
	tern_stack_input(st, pkt, len, 0);
	CHECK_EQ(c.n, 0);
	CHECK_EQ(tern_stack_stats(st)->ip_not_ours, 1);
	CHECK_EQ(tern_stack_stats(st)->icmp_in, 0);
	/* An echo reply or another type: no answer. */
	len = build_echo(pkt, ADDR_B, ADDR_A, 0, 1, 1, "x", 1);
	tern_stack_input(st, pkt, len, 0);
	len = build_echo(pkt, ADDR_B, ADDR_A, 13, 1, 1, "xxxxxxxxxxxx", 12); /* timestamp */
	tern_stack_input(st, pkt, len, 0);
	CHECK_EQ(c.n, 0);
	CHECK_EQ(tern_stack_stats(st)->icmp_in, 2);
	/* A bad ICMP checksum, or a message shorter than 8 bytes. */
	len = build_echo(pkt, ADDR_B, ADDR_A, 8, 1, 1, "x", 1);
	pkt[20 + 8] ^= 1;
	tern_stack_input(st, pkt, len, 0);
	len = build_echo(pkt, ADDR_B, ADDR_A, 8, 1, 1, "", 0);
	wr16(pkt + 2, 20 + 4);
	fix_ip_csum(pkt);
	tern_stack_input(st, pkt, 24, 0);
	CHECK_EQ(c.n, 0);
	CHECK_EQ(tern_stack_stats(st)->icmp_bad, 2);
	CHECK_EQ(tern_stack_stats(st)->icmp_echo_replies, 0);
	tern_stack_free(st);
}

TEST(stack_tcp_and_icmp_from_no_single_host_dropped)
{
	/* RFC 1122 §3.2.1.3: a source that is not one host (0.0.0.0, multicast, class E,
	 * broadcast) cannot be answered; an echo request or a SYN from one is dropped and
	 * counted, not answered to that address. */
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	int l = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr any = {0, 80};
	REQUIRE_EQ(tern_bind(st, l, &any), 0);
	REQUIRE_EQ(tern_listen(st, l, 8), 0);
	const uint32_t bad[] = {0, TERN_IP4(224, 0, 0, 1), TERN_IP4(239, 1, 2, 3),
				TERN_IP4(240, 0, 0, 1), TERN_IP4(255, 255, 255, 255)};
	uint8_t pkt[256];
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = build_echo(pkt, bad[i], ADDR_A, 8, 1, 1, "x", 1);
		tern_stack_input(st, pkt, len, 0);
		len = build_syn(pkt, bad[i], ADDR_A, 40000, 80, 1000);
		tern_stack_input(st, pkt, len, 0);
	}
	CHECK_EQ(c.n, 0);
	CHECK_EQ(tern_stack_stats(st)->ip_bad_header, 10);
	CHECK_EQ(tern_stack_stats(st)->icmp_echo_replies, 0);
	CHECK_EQ(tern_stack_stats(st)->tcp_passive_opens, 0);
	/* The same from one host is answered. */
	size_t len = build_echo(pkt, ADDR_B, ADDR_A, 8, 1, 1, "x", 1);
	tern_stack_input(st, pkt, len, 0);
	len = build_syn(pkt, ADDR_B, ADDR_A, 40000, 80, 1000);
	tern_stack_input(st, pkt, len, 0);
	REQUIRE_EQ(c.n, 2);
	CHECK_EQ(cap_tcp(&c, 1).h.flags, TERN_TH_SYN | TERN_TH_ACK);
	CHECK_EQ(tern_stack_stats(st)->ip_bad_header, 10);
	tern_stack_free(st);
}

TEST(stack_tcp_connect_to_no_single_host_refused)
{
	/* TCP talks to one host: connect() to broadcast, multicast or class E fails with
	 * ENETUNREACH (Linux's tcp_v4_connect) and sends nothing. */
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	const uint32_t bad[] = {TERN_IP4(224, 0, 0, 1), TERN_IP4(240, 0, 0, 1),
				TERN_IP4(255, 255, 255, 255)};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = tern_socket(st, TERN_SOCK_STREAM);
		struct tern_sockaddr to = {bad[i], 80};
		CHECK_EQ(tern_connect(st, fd, &to), -ENETUNREACH);
		CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_CLOSED);
		tern_close(st, fd);
	}
	CHECK_EQ(c.n, 0);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {TERN_IP4(223, 255, 255, 254), 80};
	CHECK_EQ(tern_connect(st, fd, &to), -EINPROGRESS);
	REQUIRE_EQ(c.n, 1);
	CHECK_EQ(cap_tcp(&c, 0).h.flags, TERN_TH_SYN);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* Malformed input                                                                            */
/* ========================================================================================= */

enum ctr { C_IP_HDR, C_IP_CSUM, C_FRAG, C_NOT_OURS, C_PROTO, C_TCP_HDR, C_TCP_OPTS, C_TCP_CSUM };

static uint64_t *counter(struct tern_stats *s, enum ctr c)
{
	switch (c) {
	case C_IP_HDR: return &s->ip_bad_header;
	case C_IP_CSUM: return &s->ip_bad_checksum;
	case C_FRAG: return &s->ip_fragments;
	case C_NOT_OURS: return &s->ip_not_ours;
	case C_PROTO: return &s->ip_bad_proto;
	case C_TCP_HDR: return &s->tcp_bad_header;
	case C_TCP_OPTS: return &s->tcp_bad_options;
	case C_TCP_CSUM: return &s->tcp_bad_checksum;
	}
	return NULL;
}

struct bad_case {
	const char *name;
	enum ctr ctr;
	/* Turn the valid SYN (len bytes, IHL 5, 24-byte TCP header with the MSS option) in p
	 * into the malformed datagram; returns the new length. */
	size_t (*make)(uint8_t *p, size_t len);
};

static size_t mk_empty(uint8_t *p, size_t len) { (void)p; (void)len; return 0; }
static size_t mk_short(uint8_t *p, size_t len) { (void)p; (void)len; return 19; }
static size_t mk_version(uint8_t *p, size_t len) { p[0] = 0x65; fix_ip_csum(p); return len; }
static size_t mk_version0(uint8_t *p, size_t len) { p[0] = 0x05; return len; }
static size_t mk_ihl4(uint8_t *p, size_t len) { p[0] = 0x44; return len; }
static size_t mk_ihl0(uint8_t *p, size_t len) { p[0] = 0x40; return len; }
static size_t mk_ihl_past(uint8_t *p, size_t len) { p[0] = 0x4f; return len; } /* 60 > 44 */
static size_t mk_totlen_small(uint8_t *p, size_t len) { wr16(p + 2, 19); fix_ip_csum(p); return len; }
static size_t mk_totlen_big(uint8_t *p, size_t len)
{
	wr16(p + 2, (uint16_t)(len + 1));
	fix_ip_csum(p);
	return len;
}
static size_t mk_truncated(uint8_t *p, size_t len) { (void)p; return len - 1; }
static size_t mk_ip_csum(uint8_t *p, size_t len) { p[10] ^= 0x40; return len; }
static size_t mk_mf(uint8_t *p, size_t len) { wr16(p + 6, 0x2000); fix_ip_csum(p); return len; }
static size_t mk_offset(uint8_t *p, size_t len) { wr16(p + 6, 0x0001); fix_ip_csum(p); return len; }
static size_t mk_df_offset(uint8_t *p, size_t len) { wr16(p + 6, 0x4000 | 0x1fff); fix_ip_csum(p); return len; }
static size_t mk_not_ours(uint8_t *p, size_t len)
{
	wr32(p + 16, TERN_IP4(10, 0, 0, 99));
	fix_ip_csum(p);
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_proto_sctp(uint8_t *p, size_t len) { p[9] = 132; fix_ip_csum(p); return len; }
static size_t mk_proto_99(uint8_t *p, size_t len) { p[9] = 99; fix_ip_csum(p); return len; }
static size_t mk_tcp_short(uint8_t *p, size_t len)
{
	(void)len;
	wr16(p + 2, 20 + 19);
	fix_ip_csum(p);
	return 20 + 19;
}
static size_t mk_tcp_empty(uint8_t *p, size_t len)
{
	(void)len;
	wr16(p + 2, 20);
	fix_ip_csum(p);
	return 20;
}
static size_t mk_doff4(uint8_t *p, size_t len)
{
	p[20 + 12] = (uint8_t)((4 << 4) | (p[20 + 12] & 15));
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_doff0(uint8_t *p, size_t len)
{
	p[20 + 12] = (uint8_t)(p[20 + 12] & 15);
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_doff_past(uint8_t *p, size_t len)
{
	p[20 + 12] = (uint8_t)((7 << 4) | (p[20 + 12] & 15)); /* 28 > 24 */
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_opt_len0(uint8_t *p, size_t len)
{
	p[20 + 21] = 0; /* the MSS option's length */
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_opt_len1(uint8_t *p, size_t len)
{
	p[20 + 21] = 1;
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_opt_past(uint8_t *p, size_t len)
{
	p[20 + 21] = 5; /* 5 bytes in a 4-byte list */
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_opt_unknown_len0(uint8_t *p, size_t len)
{
	p[20 + 20] = 30; /* an unknown kind: its length must still be sane */
	p[20 + 21] = 0;
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_opt_no_len(uint8_t *p, size_t len)
{
	p[20 + 20] = 1; /* NOP, NOP, NOP, then a kind without its length byte */
	p[20 + 21] = 1;
	p[20 + 22] = 1;
	p[20 + 23] = 30;
	fix_tcp_csum(p, len);
	return len;
}
static size_t mk_tcp_csum(uint8_t *p, size_t len) { p[20 + 17] ^= 0x01; return len; }
static size_t mk_tcp_payload_flip(uint8_t *p, size_t len)
{
	/* A SYN with data, one bit of the data flipped after the checksum. */
	(void)len;
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.sport = 40000;
	h.dport = 80;
	h.seq = 1000;
	h.flags = TERN_TH_SYN;
	h.win = 1000;
	size_t n = build_tcp(p, ADDR_B, ADDR_A, &h, "payload", 7);
	p[n - 1] ^= 0x10;
	return n;
}

TEST(stack_malformed_input_dropped_and_counted)
{
	static const struct bad_case cases[] = {
		{"empty", C_IP_HDR, mk_empty},
		{"19 bytes", C_IP_HDR, mk_short},
		{"version 6", C_IP_HDR, mk_version},
		{"version 0", C_IP_HDR, mk_version0},
		{"IHL 4", C_IP_HDR, mk_ihl4},
		{"IHL 0", C_IP_HDR, mk_ihl0},
		{"IHL past the buffer", C_IP_HDR, mk_ihl_past},
		{"total length below the header", C_IP_HDR, mk_totlen_small},
		{"total length past the buffer", C_IP_HDR, mk_totlen_big},
		{"buffer one byte short", C_IP_HDR, mk_truncated},
		{"IPv4 header checksum", C_IP_CSUM, mk_ip_csum},
		{"MF set", C_FRAG, mk_mf},
		{"fragment offset", C_FRAG, mk_offset},
		{"DF with an offset", C_FRAG, mk_df_offset},
		{"another address", C_NOT_OURS, mk_not_ours},
		{"protocol SCTP", C_PROTO, mk_proto_sctp},
		{"protocol 99", C_PROTO, mk_proto_99},
		{"TCP 19 bytes", C_TCP_HDR, mk_tcp_short},
		{"TCP 0 bytes", C_TCP_HDR, mk_tcp_empty},
		{"data offset 4", C_TCP_HDR, mk_doff4},
		{"data offset 0", C_TCP_HDR, mk_doff0},
		{"data offset past the segment", C_TCP_HDR, mk_doff_past},
		{"option length 0", C_TCP_OPTS, mk_opt_len0},
		{"option length 1", C_TCP_OPTS, mk_opt_len1},
		{"option past the header", C_TCP_OPTS, mk_opt_past},
		{"unknown option, length 0", C_TCP_OPTS, mk_opt_unknown_len0},
		{"option without a length byte", C_TCP_OPTS, mk_opt_no_len},
		{"TCP checksum field", C_TCP_CSUM, mk_tcp_csum},
		{"TCP payload bit", C_TCP_CSUM, mk_tcp_payload_flip},
	};
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	uint8_t pkt[256];
	/* The valid datagram first: a SYN to a closed port, answered with RST. */
	size_t len = build_syn(pkt, ADDR_B, ADDR_A, 40000, 80, 1000);
	REQUIRE_EQ(len, 44);
	tern_stack_input(st, pkt, len, 0);
	REQUIRE_EQ(c.n, 1);
	CHECK_EQ(cap_tcp(&c, 0).h.flags, TERN_TH_RST | TERN_TH_ACK);
	CHECK_EQ(tern_stack_stats(st)->tcp_no_port, 1);
	/* ... and with link padding after it (an Ethernet minimum frame): the same. */
	uint8_t padded[128];
	memset(padded, 0xee, sizeof(padded));
	memcpy(padded, pkt, len);
	tern_stack_input(st, padded, len + 20, 0);
	CHECK_EQ(c.n, 2);
	size_t mem = tern_stack_memory(st);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *k = &cases[i];
		uint8_t *p = malloc(256);
		REQUIRE(p != NULL);
		size_t n0 = build_syn(p, ADDR_B, ADDR_A, 40000, 80, 1000);
		size_t n = k->make(p, n0);
		/* An exact-length copy, so that a read past the end shows under ASan. */
		uint8_t *exact = malloc(n ? n : 1);
		REQUIRE(exact != NULL);
		memcpy(exact, p, n);
		struct tern_stats want = *tern_stack_stats(st);
		want.ip_in++;
		if (k->ctr >= C_TCP_HDR)
			want.tcp_in++;
		(*counter(&want, k->ctr))++;
		int sent = c.n;
		tern_stack_input(st, exact, n, 0);
		struct tern_stats got = *tern_stack_stats(st);
		if (memcmp(&got, &want, sizeof(got)) != 0 || c.n != sent) {
			test_fail(__FILE__, __LINE__,
				  "%s: counter %" PRIu64 " (want %" PRIu64 "), sent %d; ip_bad_header %" PRIu64
				  " ip_bad_checksum %" PRIu64 " frag %" PRIu64 " not_ours %" PRIu64
				  " proto %" PRIu64 " tcp_hdr %" PRIu64 " opts %" PRIu64 " tcp_csum %" PRIu64,
				  k->name, *counter(&got, k->ctr), *counter(&want, k->ctr), c.n - sent,
				  got.ip_bad_header, got.ip_bad_checksum, got.ip_fragments, got.ip_not_ours,
				  got.ip_bad_proto, got.tcp_bad_header, got.tcp_bad_options,
				  got.tcp_bad_checksum);
		}
		CHECK_EQ(tern_stack_memory(st), mem);
		free(exact);
		free(p);
	}
	CHECK_EQ(tern_stack_foreach(st, NULL, NULL), 0);
	tern_stack_free(st);
}

TEST(stack_ip_options_accepted)
{
	/* IHL 6 (one word of options: NOPs): the options are skipped, the segment handled. */
	struct cap c;
	struct tern_stack *st = bare_stack(&c, 1, 0);
	uint8_t syn[128], pkt[128];
	size_t len = build_syn(syn, ADDR_B, ADDR_A, 40000, 80, 1000);
	memcpy(pkt, syn, 20);
	memset(pkt + 20, 1, 4);
	memcpy(pkt + 24, syn + 20, len - 20);
	pkt[0] = 0x46;
	wr16(pkt + 2, (uint16_t)(len + 4));
	fix_ip_csum(pkt);
	tern_stack_input(st, pkt, len + 4, 0);
	CHECK_EQ(c.n, 1);
	CHECK_EQ(tern_stack_stats(st)->tcp_no_port, 1);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* Many stacks in one process                                                                 */
/* ========================================================================================= */

TEST(stack_many_stacks_independent)
{
	uint64_t seed = test_seed(42);
	struct wire alone;
	wire_init(&alone, seed, seed + 1);
	exchange(&alone);
	/* Eight pairs, four with the same seeds and four with others, step by step in turn. */
	enum { N = 8 };
	struct wire *w = calloc(N, sizeof(*w));
	REQUIRE(w != NULL);
	for (int i = 0; i < N; i++)
		wire_init(&w[i], (i & 1) ? seed + 1000 + (uint64_t)i : seed, seed + 1 + (uint64_t)(i & 1) * 77);
	for (int step = 0; step < EXCHANGE_STEPS; step++)
		for (int i = 0; i < N; i++)
			exchange_step(&w[i], step);
	for (int i = 0; i < N; i++) {
		bool same = w[i].log_len == alone.log_len &&
			    memcmp(w[i].log, alone.log, alone.log_len) == 0;
		if (i & 1)
			CHECK(!same);
		else
			CHECK(same);
	}
	for (int i = 0; i < N; i++)
		wire_free(&w[i]);
	free(w);
	wire_free(&alone);
}

/* ========================================================================================= */
/* Scale                                                                                      */
/* ========================================================================================= */

static void scale_report(const char *what, double v)
{
	if (getenv("TERN_TEST_VERBOSE"))
		fprintf(stderr, "    %s: %.1f\n", what, v);
}

struct scale {
	struct tern_sim *sim;
	struct tern_stack *a, *b;
	int lfd[4];
	int *cfd;       /* client descriptor of connection i */
	int *sfd;       /* server descriptor of connection i */
	int32_t *by_port; /* [server port index][client port] -> i */
	int n;
};

static void scale_open(struct scale *k, int total, int batch)
{
	for (int i = k->n; i < total; i += batch) {
		int end = i + batch < total ? i + batch : total;
		for (int j = i; j < end; j++) {
			int fd = tern_socket(k->a, TERN_SOCK_STREAM);
			REQUIRE(fd >= 0);
			struct tern_sockaddr to = {ADDR_B, (uint16_t)(80 + j % 4)};
			REQUIRE_EQ(tern_connect(k->a, fd, &to), -EINPROGRESS);
			struct tern_sockaddr me;
			REQUIRE_EQ(tern_getsockname(k->a, fd, &me), 0);
			k->cfd[j] = fd;
			k->by_port[(j % 4) * 65536 + me.port] = j;
		}
		tern_sim_run_until(k->sim, tern_sim_now(k->sim));
		for (int p = 0; p < 4; p++) {
			for (;;) {
				struct tern_sockaddr peer;
				int s = tern_accept(k->b, k->lfd[p], &peer);
				if (s == -EAGAIN)
					break;
				REQUIRE(s >= 0);
				int j = k->by_port[p * 65536 + peer.port];
				REQUIRE(j >= i && j < end);
				k->sfd[j] = s;
			}
		}
		for (int j = i; j < end; j++)
			REQUIRE(k->sfd[j] >= 0);
	}
	k->n = total;
}

TEST(stack_scale_100k)
{
	enum { N = 100000, BATCH = 500 };
	struct tern_settings sa, sb;
	tern_settings_default(&sa);
	tern_settings_default(&sb);
	REQUIRE_EQ(tern_settings_set(&sa, "port_range_lo", "1024"), 0);
	REQUIRE_EQ(tern_settings_set(&sa, "port_range_hi", "65535"), 0);
	struct scale k;
	memset(&k, 0, sizeof(k));
	k.sim = tern_sim_new(test_seed(11));
	REQUIRE_EQ(tern_sim_add_host(k.sim, "a", ADDR_A, &sa), 0);
	REQUIRE_EQ(tern_sim_add_host(k.sim, "b", ADDR_B, &sb), 1);
	k.a = tern_sim_stack(k.sim, 0);
	k.b = tern_sim_stack(k.sim, 1);
	k.cfd = malloc(N * sizeof(int));
	k.sfd = malloc(N * sizeof(int));
	k.by_port = malloc(4 * 65536 * sizeof(int32_t));
	REQUIRE(k.cfd && k.sfd && k.by_port);
	memset(k.sfd, 0xff, N * sizeof(int));
	for (int p = 0; p < 4; p++) {
		k.lfd[p] = tern_socket(k.b, TERN_SOCK_STREAM);
		struct tern_sockaddr sa80 = {0, (uint16_t)(80 + p)};
		REQUIRE_EQ(tern_bind(k.b, k.lfd[p], &sa80), 0);
		REQUIRE_EQ(tern_listen(k.b, k.lfd[p], 4096), 0);
	}
	tern_sim_run_until(k.sim, 0);
	size_t ma0 = tern_stack_memory(k.a), mb0 = tern_stack_memory(k.b);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	scale_open(&k, N / 2, BATCH);
	size_t ma50 = tern_stack_memory(k.a), mb50 = tern_stack_memory(k.b);
	scale_open(&k, N, BATCH);
	size_t ma100 = tern_stack_memory(k.a), mb100 = tern_stack_memory(k.b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	scale_report("seconds to open 100k connections",
		     (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

	/* Every connection is there, in both tables. */
	CHECK_EQ(tern_stack_foreach(k.a, NULL, NULL), N);
	CHECK_EQ(tern_stack_foreach(k.b, NULL, NULL), N + 4);
	CHECK_EQ(tern_stack_stats(k.b)->tcp_listen_drops, 0);

	/* Memory grows linearly: half the connections cost about half. */
	double per_a = (double)(ma100 - ma0) / N, per_b = (double)(mb100 - mb0) / N;
	double half_a = (double)(ma50 - ma0) / (double)(ma100 - ma0);
	double half_b = (double)(mb50 - mb0) / (double)(mb100 - mb0);
	scale_report("client bytes per idle established connection", per_a);
	scale_report("server bytes per idle established connection", per_b);
	scale_report("sizeof(struct tern_tcb)", (double)sizeof(struct tern_tcb));
	CHECK(per_a >= (double)sizeof(struct tern_tcb) && per_a < 400);
	CHECK(per_b >= (double)sizeof(struct tern_tcb) && per_b < 400);
	CHECK(half_a > 0.4 && half_a < 0.6);
	CHECK(half_b > 0.4 && half_b < 0.6);

	/* Traffic finds every connection: 4 bytes each way per connection, checked. */
	for (int i = 0; i < N; i += BATCH) {
		int end = i + BATCH < N ? i + BATCH : N;
		for (int j = i; j < end; j++) {
			uint32_t v = (uint32_t)j;
			REQUIRE_EQ(tern_send(k.a, k.cfd[j], &v, 4, 0), 4);
		}
		tern_sim_run_until(k.sim, tern_sim_now(k.sim));
		for (int j = i; j < end; j++) {
			uint32_t v = 0;
			long r = tern_recv(k.b, k.sfd[j], &v, 4, 0);
			if (r != 4 || v != (uint32_t)j) {
				test_fail(__FILE__, __LINE__, "connection %d: recv %ld, value %u", j, r, v);
				break;
			}
			v = ~v;
			REQUIRE_EQ(tern_send(k.b, k.sfd[j], &v, 4, 0), 4);
		}
		tern_sim_run_until(k.sim, tern_sim_now(k.sim));
		for (int j = i; j < end; j++) {
			uint32_t v = 0;
			long r = tern_recv(k.a, k.cfd[j], &v, 4, 0);
			if (r != 4 || v != ~(uint32_t)j) {
				test_fail(__FILE__, __LINE__, "connection %d: reply %ld, value %u", j, r, v);
				break;
			}
		}
		if (test_failed())
			break;
	}
	/* Idle again: buffers are gone but for the spare rings a stack keeps (counted by
	 * tern_stack_memory): a send ring of the size the send buffer grew to (twice the initial
	 * window of ten 1460-byte segments) and a receive ring of rmem_default; no timer is
	 * armed for an idle connection. */
	tern_sim_run_until(k.sim, tern_sim_now(k.sim) + SEC(1));
	size_t spares = 2 * sizeof(struct ring) + 2 * 10 * 1460 + 131072;
	CHECK_EQ(tern_stack_memory(k.a), ma100 + spares);
	CHECK_EQ(tern_stack_memory(k.b), mb100 + spares);
	CHECK(tern_stack_next_timer(k.a) == TERN_TIME_NEVER);
	CHECK(tern_stack_next_timer(k.b) == TERN_TIME_NEVER);
	/* An hour passes: nothing to do. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t events = tern_sim_run_until(k.sim, tern_sim_now(k.sim) + SEC(3600));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	scale_report("seconds for an idle hour", secs);
	CHECK_EQ(events, 0);
	CHECK(secs < 0.5);
	CHECK_EQ(tern_sock_state(k.a, k.cfd[N - 1]), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_stack_foreach(k.b, NULL, NULL), N + 4);
	tern_sim_free(k.sim);
	free(k.cfd);
	free(k.sfd);
	free(k.by_port);
}

struct tw_count {
	size_t tw, listen, other;
};

static void count_states(void *user, const struct tern_conn_info *ci)
{
	struct tw_count *c = user;
	if (ci->state == TERN_STATE_TIME_WAIT)
		c->tw++;
	else if (ci->state == TERN_STATE_LISTEN)
		c->listen++;
	else
		c->other++;
}

TEST(stack_timewait_10k)
{
	enum { N = 10000, BATCH = 500 };
	struct tern_sim *sim = tern_sim_new(test_seed(12));
	REQUIRE_EQ(tern_sim_add_host(sim, "a", ADDR_A, NULL), 0);
	REQUIRE_EQ(tern_sim_add_host(sim, "b", ADDR_B, NULL), 1);
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	int l = tern_socket(b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(b, l, &sa), 0);
	REQUIRE_EQ(tern_listen(b, l, 4096), 0);
	tern_sim_run_until(sim, 0);
	size_t m_listener = tern_stack_memory(b);
	int *cfd = malloc(N * sizeof(int)), *sfd = malloc(N * sizeof(int));
	REQUIRE(cfd && sfd);
	int ns = 0;
	for (int i = 0; i < N; i += BATCH) {
		for (int j = i; j < i + BATCH; j++) {
			cfd[j] = tern_socket(a, TERN_SOCK_STREAM);
			struct tern_sockaddr to = {ADDR_B, 80};
			REQUIRE_EQ(tern_connect(a, cfd[j], &to), -EINPROGRESS);
		}
		tern_sim_run_until(sim, tern_sim_now(sim));
		int s;
		while ((s = tern_accept(b, l, NULL)) >= 0)
			sfd[ns++] = s;
		REQUIRE_EQ(s, -EAGAIN);
	}
	REQUIRE_EQ(ns, N);
	size_t m_open = tern_stack_memory(b);
	/* The server closes first; each client closes on end of stream. */
	for (int i = 0; i < N; i++)
		REQUIRE_EQ(tern_close(b, sfd[i]), 0);
	tern_sim_run_until(sim, tern_sim_now(sim));
	char ch;
	for (int i = 0; i < N; i++) {
		REQUIRE_EQ(tern_recv(a, cfd[i], &ch, 1, 0), 0);
		REQUIRE_EQ(tern_close(a, cfd[i]), 0);
	}
	tern_sim_run_until(sim, tern_sim_now(sim));
	uint64_t t_tw = tern_sim_now(sim);
	struct tw_count cb = {0, 0, 0}, ca = {0, 0, 0};
	tern_stack_foreach(b, count_states, &cb);
	tern_stack_foreach(a, count_states, &ca);
	CHECK_EQ(cb.tw, N);
	CHECK_EQ(cb.listen, 1);
	CHECK_EQ(cb.other, 0);
	CHECK_EQ(ca.tw + ca.listen + ca.other, 0); /* the passive closer keeps nothing */
	size_t m_tw = tern_stack_memory(b);
	/* Still there just before 2*MSL, all gone just after. */
	tern_sim_run_until(sim, t_tw + SEC(60) - MSEC(2));
	CHECK_EQ(tern_stack_foreach(b, NULL, NULL), N + 1);
	tern_sim_run_until(sim, t_tw + SEC(60) + MSEC(2));
	CHECK_EQ(tern_stack_foreach(b, NULL, NULL), 1);
	size_t m_gone = tern_stack_memory(b);
	/* The records cost 64 bytes each; the tables they grew stay (and are reported). */
	CHECK_EQ(m_tw - m_gone, (size_t)N * sizeof(struct tern_tw));
	CHECK_EQ(sizeof(struct tern_tw), 64);
	scale_report("server bytes per TIME_WAIT record (records only)", (double)(m_tw - m_gone) / N);
	scale_report("server bytes per TIME_WAIT record (with the tables grown)",
		     (double)(m_tw - m_listener) / N);
	scale_report("server bytes per established connection (same run)",
		     (double)(m_open - m_listener) / N);
	CHECK(m_tw < m_open);
	CHECK((double)(m_tw - m_listener) / N < 128);
	CHECK(tern_stack_next_timer(b) == TERN_TIME_NEVER);
	tern_sim_free(sim);
	free(cfd);
	free(sfd);
}

/* ========================================================================================= */
/* Zero windows                                                                               */
/* ========================================================================================= */

struct zw {
	struct tern_sim *sim;
	struct tern_stack *a, *b;
	int c, s, l;
};

/* a connected to b, whose socket has a 1000-byte receive buffer. */
static void zw_setup(struct zw *z)
{
	z->sim = tern_sim_new(test_seed(21));
	REQUIRE_EQ(tern_sim_add_host(z->sim, "a", ADDR_A, NULL), 0);
	REQUIRE_EQ(tern_sim_add_host(z->sim, "b", ADDR_B, NULL), 1);
	z->a = tern_sim_stack(z->sim, 0);
	z->b = tern_sim_stack(z->sim, 1);
	struct tern_impair imp = {0, 0, 0, 0, MSEC(5), 0};
	tern_sim_set_impair(z->sim, -1, -1, &imp);
	z->l = tern_socket(z->b, TERN_SOCK_STREAM);
	int rcv = 1000;
	REQUIRE_EQ(tern_setsockopt(z->b, z->l, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &rcv, sizeof(rcv)), 0);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(z->b, z->l, &sa), 0);
	REQUIRE_EQ(tern_listen(z->b, z->l, 4), 0);
	z->c = tern_socket(z->a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	REQUIRE_EQ(tern_connect(z->a, z->c, &to), -EINPROGRESS);
	tern_sim_run_until(z->sim, MSEC(100));
	z->s = tern_accept(z->b, z->l, NULL);
	REQUIRE(z->s >= 0);
}

TEST(stack_zero_window_plain)
{
	/* The receiver's window closes and opens again as the application reads. */
	struct zw z;
	zw_setup(&z);
	static uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	REQUIRE_EQ(tern_send(z.a, z.c, data, sizeof(data), 0), (long)sizeof(data));
	tern_sim_run_until(z.sim, MSEC(200));
	uint8_t got[4000];
	size_t have = 0;
	for (int round = 0; round < 10 && have < sizeof(data); round++) {
		long r = tern_recv(z.b, z.s, got + have, sizeof(got) - have, 0);
		if (r > 0)
			have += (size_t)r;
		tern_sim_run_until(z.sim, tern_sim_now(z.sim) + MSEC(100));
	}
	CHECK_EQ(have, sizeof(data));
	CHECK_MEM(got, data, sizeof(data));
	tern_sim_free(z.sim);
}

TEST(stack_zero_window_probe_after_lost_update)
{
	/* RFC 9293 §3.8.6.1 (MUST-36), RFC 1122 §4.2.2.17, Linux's tcp_probe_timer(): a sender
	 * facing a zero window probes it, so a lost window update cannot stall the connection.
	 * Here a fills b's 1000-byte window, b reads it all at 1 s, and the ACK that reopens
	 * the window is lost. */
	struct zw z;
	zw_setup(&z);
	static uint8_t data[1500];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	REQUIRE_EQ(tern_send(z.a, z.c, data, sizeof(data), 0), (long)sizeof(data));
	tern_sim_run_until(z.sim, SEC(1));
	struct tern_tcp_info ia;
	REQUIRE_EQ(tern_sock_info(z.a, z.c, &ia), 0);
	CHECK_EQ(ia.snd_wnd, 0);
	CHECK_EQ(ia.snd_queue, 500);
	/* The next pure ACK from b, the window update, is lost. */
	struct tern_sim_rule r = {1, 0, TERN_SIM_ACK, 1, 1, TERN_SIM_DROP, 0};
	REQUIRE_EQ(tern_sim_add_rule(z.sim, &r), 0);
	uint8_t got[2000];
	CHECK_EQ(tern_recv(z.b, z.s, got, sizeof(got), 0), 1000);
	tern_sim_run_until(z.sim, SEC(120));
	long n = tern_recv(z.b, z.s, got + 1000, sizeof(got) - 1000, 0);
	CHECK_EQ(n, 500);
	if (n == 500)
		CHECK_MEM(got, data, sizeof(data));
	tern_sim_free(z.sim);
}

TEST(stack_zero_window_rto_still_retransmits)
{
	/* Linux's tcp_retransmit_timer(): when the peer's window is zero "our retransmits
	 * become zero probes" - the oldest segment is sent again whatever the window. Here a
	 * data segment is lost and a reordered old ACK (same sequence and acknowledgment
	 * numbers, window 0) arrives before the retransmission timeout. */
	struct zw z;
	zw_setup(&z);
	struct tern_tcp_info ia, ib;
	REQUIRE_EQ(tern_sock_info(z.a, z.c, &ia), 0);
	REQUIRE_EQ(tern_sock_info(z.b, z.s, &ib), 0);
	struct tern_sockaddr me;
	REQUIRE_EQ(tern_getsockname(z.a, z.c, &me), 0);
	struct tern_sim_rule drop = {0, 1, TERN_SIM_DATA, 1, 1, TERN_SIM_DROP, 0};
	REQUIRE_EQ(tern_sim_add_rule(z.sim, &drop), 0);
	REQUIRE_EQ(tern_send(z.a, z.c, "hello", 5, 0), 5);
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.sport = 80;
	h.dport = me.port;
	h.seq = ib.snd_nxt;
	h.ack = ia.snd_una;
	h.flags = TERN_TH_ACK;
	h.win = 0;
	uint8_t pkt[64];
	size_t len = build_tcp(pkt, ADDR_B, ADDR_A, &h, NULL, 0);
	REQUIRE_EQ(tern_sim_inject(z.sim, 1, pkt, len, MSEC(10)), 0);
	tern_sim_run_until(z.sim, tern_sim_now(z.sim) + SEC(60));
	char got[8];
	long n = tern_recv(z.b, z.s, got, sizeof(got), 0);
	CHECK_EQ(n, 5);
	CHECK_EQ(tern_sock_state(z.a, z.c), TERN_STATE_ESTABLISHED);
	tern_sim_free(z.sim);
}

/* ========================================================================================= */
/* Readiness list of a stack that never had a socket                                          */
/* ========================================================================================= */

TEST(stack_events_on_fresh_stack)
{
	/* A stack whose readiness list was never allocated (the simulator asks a host with no
	 * socket yet, e.g. right after tern_sim_reboot()): no event, and no memmove() from a
	 * null pointer (undefined behaviour, which UBSan reports). */
	struct tern_stack *st = tern_stack_new(NULL, 0);
	REQUIRE(st != NULL);
	struct tern_event ev[4];
	CHECK_EQ(tern_stack_events(st, ev, 4), 0);
	CHECK_EQ(tern_stack_events(st, ev, 0), 0);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* Limits on TIME_WAIT records and orphans                                                    */
/* ========================================================================================= */

/* n connections from a to b:80 in the simulator; b's accepted descriptors in sfd. */
static struct tern_sim *sim_pairs(const struct tern_settings *sb, int n, int *cfd, int *sfd)
{
	struct tern_sim *sim = tern_sim_new(test_seed(31));
	REQUIRE_EQ(tern_sim_add_host(sim, "a", ADDR_A, NULL), 0);
	REQUIRE_EQ(tern_sim_add_host(sim, "b", ADDR_B, sb), 1);
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	int l = tern_socket(b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(b, l, &sa), 0);
	REQUIRE_EQ(tern_listen(b, l, 64), 0);
	for (int i = 0; i < n; i++) {
		cfd[i] = tern_socket(a, TERN_SOCK_STREAM);
		struct tern_sockaddr to = {ADDR_B, 80};
		REQUIRE_EQ(tern_connect(a, cfd[i], &to), -EINPROGRESS);
	}
	tern_sim_run_until(sim, MSEC(1));
	for (int i = 0; i < n; i++) {
		sfd[i] = tern_accept(b, l, NULL);
		REQUIRE(sfd[i] >= 0);
	}
	return sim;
}

TEST(stack_max_tw_buckets)
{
	/* Linux: past tcp_max_tw_buckets a closing connection skips TIME_WAIT ("time wait
	 * bucket table overflow"). */
	struct tern_settings sb;
	tern_settings_default(&sb);
	REQUIRE_EQ(tern_settings_set(&sb, "max_tw_buckets", "2"), 0);
	int cfd[3], sfd[3];
	struct tern_sim *sim = sim_pairs(&sb, 3, cfd, sfd);
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	for (int i = 0; i < 3; i++)
		REQUIRE_EQ(tern_close(b, sfd[i]), 0);
	tern_sim_run_until(sim, MSEC(2));
	for (int i = 0; i < 3; i++)
		REQUIRE_EQ(tern_close(a, cfd[i]), 0);
	tern_sim_run_until(sim, MSEC(3));
	struct tw_count cnt = {0, 0, 0};
	tern_stack_foreach(b, count_states, &cnt);
	CHECK_EQ(cnt.tw, 2);
	CHECK_EQ(cnt.other, 0);
	CHECK_EQ(tern_stack_stats(b)->tcp_tw_overflow, 1);
	CHECK_EQ(tern_stack_foreach(a, NULL, NULL), 0);
	tern_sim_free(sim);
}

TEST(stack_max_orphans)
{
	/* Linux: past tcp_max_orphans a connection closed by its application is reset. */
	struct tern_settings sb;
	tern_settings_default(&sb);
	REQUIRE_EQ(tern_settings_set(&sb, "max_orphans", "1"), 0);
	int cfd[2], sfd[2];
	struct tern_sim *sim = sim_pairs(&sb, 2, cfd, sfd);
	struct tern_stack *a = tern_sim_stack(sim, 0), *b = tern_sim_stack(sim, 1);
	/* Both closed before their FINs are acknowledged: the second is one orphan too many. */
	REQUIRE_EQ(tern_close(b, sfd[0]), 0);
	REQUIRE_EQ(tern_close(b, sfd[1]), 0);
	CHECK_EQ(tern_stack_stats(b)->tcp_orphan_overflow, 1);
	tern_sim_run_until(sim, MSEC(2));
	char ch;
	CHECK_EQ(tern_recv(a, cfd[0], &ch, 1, 0), 0);             /* FIN */
	CHECK_EQ(tern_recv(a, cfd[1], &ch, 1, 0), -ECONNRESET);   /* RST */
	tern_sim_free(sim);
}
