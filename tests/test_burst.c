/*
 * Bursts of transmission (struct tern_link's flush), the send buffer that grows with the
 * congestion window (tcb_sndbuf, as Linux's tcp_sndbuf_expand), and the minimal io_uring the
 * TUN link writes bursts with (src/link/uring.c). One stack at 10.0.0.1 with a capturing
 * link; the test plays the peer at 10.0.0.2 with hand-built segments, as tests/test_io.c does.
 */
#include "test.h"
#include "wire.h"
#include "tern/tern.h"
#include "link/uring.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ME TERN_IP4(10, 0, 0, 1)
#define PEER TERN_IP4(10, 0, 0, 2)
#define MSS 1460

/* ---- the link ---- */

#define BL_MAX 512   /* packets captured */
#define BL_HELD 128  /* packets held by reference at once */
#define BL_FLUSHES 256

struct held {
	const uint8_t *base[4]; /* the payload pieces, iov[1..], by reference */
	size_t len[4], off[4];  /* ... and where each starts in the private copy */
	unsigned np;
	unsigned pkt;           /* index of the private copy in pkt[] */
};

struct blink {
	struct tern_stack *st;
	int lfd;                   /* the listener on port 80 */
	uint8_t pkt[BL_MAX][1600]; /* every packet, as it was at transmit (the private copy) */
	size_t len[BL_MAX];
	unsigned n;
	struct held held[BL_HELD];
	unsigned nheld;
	unsigned flushes;
	unsigned flush_pkts[BL_FLUSHES]; /* packets each flush found held */
	size_t flush_mem[BL_FLUSHES];    /* tern_stack_memory() at each flush */
	unsigned mismatches;             /* held pieces changed before their flush */
	unsigned transmits;
	unsigned payload_pieces;         /* transmits with iov[1..] (payload by reference) */
	unsigned max_iov;
};

/* Copy the whole packet (the private copy); with by_ref, keep iov[1..] by reference too. */
static int bl_tx(struct blink *b, const struct tern_iovec *iov, unsigned n, size_t total, int by_ref)
{
	b->transmits++;
	if (n > b->max_iov)
		b->max_iov = n;
	if (b->n == BL_MAX || total > sizeof(b->pkt[0]) || n > 4 || b->nheld == BL_HELD) {
		test_fail(__FILE__, __LINE__, "link capacity exceeded (n=%u total=%zu)", n, total);
		return -ENOBUFS;
	}
	size_t off = 0;
	struct held *h = by_ref ? &b->held[b->nheld++] : NULL;
	if (h)
		h->np = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(b->pkt[b->n] + off, iov[i].base, iov[i].len);
		if (h && i > 0) {
			h->base[h->np] = iov[i].base;
			h->len[h->np] = iov[i].len;
			h->off[h->np] = off;
			h->np++;
		}
		off += iov[i].len;
	}
	if (n > 1)
		b->payload_pieces++;
	REQUIRE_EQ(off, total);
	if (h)
		h->pkt = b->n;
	b->len[b->n++] = total;
	return 0;
}

static int ref_tx(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	return bl_tx(ctx, iov, n, total, 1);
}

static int copy_tx(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	return bl_tx(ctx, iov, n, total, 0);
}

/* Every held piece must still hold what it held at transmit (a freed or reused buffer shows
 * here, and AddressSanitizer sees a freed one read). */
static void ref_flush(void *ctx)
{
	struct blink *b = ctx;
	for (unsigned i = 0; i < b->nheld; i++) {
		const struct held *h = &b->held[i];
		for (unsigned k = 0; k < h->np; k++)
			if (memcmp(h->base[k], b->pkt[h->pkt] + h->off[k], h->len[k]) != 0)
				b->mismatches++;
	}
	if (b->flushes < BL_FLUSHES) {
		b->flush_pkts[b->flushes] = b->nheld;
		b->flush_mem[b->flushes] = b->st ? tern_stack_memory(b->st) : 0;
	}
	b->flushes++;
	b->nheld = 0;
}

/* ---- the peer ---- */

struct conn {
	int fd;
	uint16_t sport;
	uint32_t iss, irs, nxt; /* nxt: the peer's next sequence number */
	uint32_t got;           /* bytes the peer has in order */
	uint32_t retrans;       /* data segments seen again (checked against the pattern too) */
	unsigned scan;          /* captured packets examined */
};

static uint8_t pattern[512 * 1024];

static void pattern_init(void)
{
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < sizeof(pattern); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pattern[i] = (uint8_t)x;
	}
}

static size_t build(uint8_t *pkt, uint16_t sport, uint16_t flags, uint32_t seq, uint32_t ack,
		    const void *data, size_t len)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = PEER;
	h.dst = ME;
	h.sport = sport;
	h.dport = 80;
	h.seq = seq;
	h.ack = ack;
	h.flags = flags;
	h.win = 65535;
	h.len = (uint32_t)len;
	if (flags & TERN_TH_SYN) {
		h.opts.has = TERN_OPT_MSS;
		h.opts.mss = MSS;
	}
	size_t hl = tern_tcp_build(pkt + 20, &h);
	if (len)
		memcpy(pkt + 20 + hl, data, len);
	struct tern_iovec iov = {pkt + 20, hl + len};
	uint16_t c = tern_csum_iov(tern_csum_pseudo(PEER, ME, 6, (uint16_t)(hl + len)), &iov, 1);
	memcpy(pkt + 20 + 16, &c, 2);
	tern_ip4_build(pkt, PEER, ME, 6, 64, 0, 1, (uint16_t)(hl + len));
	return 20 + hl + len;
}

static struct tern_tcp_seg parse(const struct blink *b, unsigned i)
{
	struct tern_ip4 ip;
	struct tern_tcp_seg s;
	memset(&s, 0, sizeof(s));
	REQUIRE_EQ(tern_ip4_parse(b->pkt[i], b->len[i], &ip), TERN_IP4_OK);
	REQUIRE_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s), TERN_TCP_OK);
	return s;
}

/* A segment from the peer on c acknowledging ack (0 for the flags that carry none). */
static void seg_in(struct tern_stack *st, const struct conn *c, uint16_t flags, uint32_t seq,
		   uint32_t ack, const void *data, size_t len)
{
	uint8_t pkt[2048];
	size_t n = build(pkt, c->sport, flags, seq, ack, data, len);
	tern_stack_input(st, pkt, n, tern_stack_now(st));
}

/* The peer acknowledges the first `bytes` of the stream. */
static void ack_to(struct tern_stack *st, const struct conn *c, uint32_t bytes)
{
	seg_in(st, c, TERN_TH_ACK, c->nxt, c->iss + 1 + bytes, NULL, 0);
}

/* What the stack sent on c since the last look: each data segment must carry the pattern at
 * its offset and continue the stream (or repeat part of it). Returns data segments seen. */
static unsigned drain(struct blink *b, struct conn *c)
{
	unsigned segs = 0;
	for (; c->scan < b->n; c->scan++) {
		struct tern_ip4 ip;
		struct tern_tcp_seg s;
		REQUIRE_EQ(tern_ip4_parse(b->pkt[c->scan], b->len[c->scan], &ip), TERN_IP4_OK);
		if (ip.proto != 6)
			continue;
		REQUIRE_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s), TERN_TCP_OK);
		if (s.h.dport != c->sport || !s.h.len)
			continue;
		segs++;
		uint32_t off = s.h.seq - (c->iss + 1);
		REQUIRE(off <= c->got); /* no hole */
		REQUIRE(off + s.h.len <= sizeof(pattern));
		CHECK_MEM(s.data, pattern + off, s.h.len);
		if (off + s.h.len <= c->got)
			c->retrans++;
		else
			c->got = off + s.h.len;
	}
	return segs;
}

static struct tern_stack *new_stack(struct blink *b, const struct tern_settings *set, int by_ref)
{
	memset(b, 0, sizeof(*b));
	struct tern_stack *st = tern_stack_new(set, 1000000);
	REQUIRE(st);
	REQUIRE_EQ(tern_stack_add_addr(st, ME), 0);
	struct tern_link l = {.transmit = by_ref ? ref_tx : copy_tx, .ctx = b, .flags = 0,
			      .flush = by_ref ? ref_flush : NULL};
	tern_stack_set_link(st, &l);
	b->st = st;
	int lfd = tern_socket(st, TERN_SOCK_STREAM);
	REQUIRE(lfd >= 0);
	struct tern_sockaddr a = {0, 80};
	REQUIRE_EQ(tern_bind(st, lfd, &a), 0);
	REQUIRE_EQ(tern_listen(st, lfd, 8), 0);
	b->lfd = lfd;
	pattern_init();
	return st;
}

/* A passive open from the peer's port sport to the listener. */
static void open_conn(struct tern_stack *st, struct blink *b, struct conn *c, uint16_t sport)
{
	memset(c, 0, sizeof(*c));
	c->sport = sport;
	c->irs = 5000u + sport;
	unsigned first = b->n;
	seg_in(st, c, TERN_TH_SYN, c->irs, 0, NULL, 0);
	REQUIRE_EQ(b->n, first + 1);
	struct tern_tcp_seg synack = parse(b, first);
	REQUIRE_EQ(synack.h.flags, TERN_TH_SYN | TERN_TH_ACK);
	c->iss = synack.h.seq;
	c->nxt = c->irs + 1;
	seg_in(st, c, TERN_TH_ACK, c->nxt, c->iss + 1, NULL, 0);
	c->fd = tern_accept(st, b->lfd, NULL);
	REQUIRE(c->fd >= 0);
	REQUIRE_EQ(b->n, first + 1);
	c->scan = b->n;
}

static int sndbuf_of(struct tern_stack *st, int fd)
{
	int v = -1;
	size_t len = sizeof(v);
	REQUIRE_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &v, &len), 0);
	return v;
}

static uint32_t cwnd_of(struct tern_stack *st, int fd)
{
	struct tern_tcp_info ti;
	REQUIRE_EQ(tern_sock_info(st, fd, &ti), 0);
	REQUIRE_EQ(ti.snd_mss, MSS);
	return ti.snd_cwnd * ti.snd_mss;
}

/* ========================================================================================= */
/* Bursts                                                                                     */
/* ========================================================================================= */

TEST(burst_header_only_packets_flushed_per_call)
{
	/* A SYN-ACK, a pure ACK, a RST: each call that sends one flushes once, before it
	 * returns, and the link holds nothing after. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	memset(&c, 0, sizeof(c));
	c.sport = 40000;
	c.irs = 7000;
	seg_in(st, &c, TERN_TH_SYN, c.irs, 0, NULL, 0);
	CHECK_EQ(b.n, 1);
	CHECK_EQ(b.flushes, 1);
	CHECK_EQ(b.flush_pkts[0], 1);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.max_iov, 1); /* headers only */
	c.iss = parse(&b, 0).h.seq;
	c.nxt = c.irs + 1;
	/* The handshake's ACK sends nothing: no flush. */
	seg_in(st, &c, TERN_TH_ACK, c.nxt, c.iss + 1, NULL, 0);
	c.fd = tern_accept(st, b.lfd, NULL);
	REQUIRE(c.fd >= 0);
	CHECK_EQ(b.n, 1);
	CHECK_EQ(b.flushes, 1);
	/* Data at the start of a connection is acknowledged at once (quick ACK). */
	seg_in(st, &c, TERN_TH_ACK | TERN_TH_PSH, c.nxt, c.iss + 1, "hi", 2);
	c.nxt += 2;
	REQUIRE_EQ(b.n, 2);
	CHECK_EQ(parse(&b, 1).h.flags, TERN_TH_ACK);
	CHECK_EQ(parse(&b, 1).h.len, 0);
	CHECK_EQ(b.flushes, 2);
	CHECK_EQ(b.flush_pkts[1], 1);
	CHECK_EQ(b.nheld, 0);
	/* A RST from a socket call. */
	CHECK_EQ(tern_abort(st, c.fd), 0);
	REQUIRE_EQ(b.n, 3);
	CHECK(parse(&b, 2).h.flags & TERN_TH_RST);
	CHECK_EQ(b.flushes, 3);
	CHECK_EQ(b.flush_pkts[2], 1);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	tern_stack_free(st);
}

TEST(burst_send_leaves_in_one_flush)
{
	/* tern_send of ten segments: all ten leave in one flush, payload by reference
	 * (unchanged when flushed), nothing held when tern_send returns. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	unsigned f0 = b.flushes;
	CHECK_EQ(tern_send(st, c.fd, pattern, 10 * MSS, 0), 10 * MSS);
	CHECK_EQ(b.flushes, f0 + 1);
	CHECK_EQ(b.flush_pkts[f0], 10);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	CHECK_EQ(drain(&b, &c), 10);
	CHECK_EQ(c.got, 10 * MSS);
	CHECK_EQ(b.payload_pieces, 10);
	tern_stack_free(st);
}

TEST(burst_batch_of_acks_flushes_once_at_the_end)
{
	/* 29200 bytes queued, ten segments out. Five ACKs of one segment each in one batch
	 * let nine more go: one flush, at the end of the batch, holding all nine; nothing held
	 * afterwards. (Output waits for the batch's end, so the flight shrinks under the ACKs
	 * and RFC 7661's cwnd-limited test lets the first four grow cwnd: 14 segments, 5 in
	 * flight.) */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 20 * MSS, 0), 20 * MSS);
	CHECK_EQ(drain(&b, &c), 10);
	static uint8_t bufs[5][2048];
	struct tern_iovec pkts[5];
	for (unsigned i = 0; i < 5; i++) {
		pkts[i].base = bufs[i];
		pkts[i].len = build(bufs[i], c.sport, TERN_TH_ACK, c.nxt, c.iss + 1 + (i + 1) * MSS,
				    NULL, 0);
	}
	unsigned f0 = b.flushes;
	tern_stack_input_batch(st, pkts, 5, tern_stack_now(st));
	CHECK_EQ(b.flushes, f0 + 1);
	CHECK_EQ(b.flush_pkts[f0], 9);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	CHECK_EQ(drain(&b, &c), 9);
	CHECK_EQ(c.got, 19 * MSS);
	CHECK_EQ(cwnd_of(st, c.fd), 14 * MSS);
	tern_stack_free(st);
}

TEST(burst_one_flush_for_several_connections)
{
	/* A batch that lets two connections send: one flush for both (the batch is one
	 * burst, not one per connection). Then both retransmission timers fire in one
	 * tern_stack_poll: one flush for both retransmissions. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c1, c2;
	open_conn(st, &b, &c1, 40001);
	open_conn(st, &b, &c2, 40002);
	CHECK_EQ(tern_send(st, c1.fd, pattern, 20 * MSS, 0), 20 * MSS);
	CHECK_EQ(tern_send(st, c2.fd, pattern, 20 * MSS, 0), 20 * MSS);
	CHECK_EQ(drain(&b, &c1), 10);
	CHECK_EQ(drain(&b, &c2), 10);
	static uint8_t bufs[2][2048];
	struct tern_iovec pkts[2] = {{bufs[0], 0}, {bufs[1], 0}};
	pkts[0].len = build(bufs[0], c1.sport, TERN_TH_ACK, c1.nxt, c1.iss + 1 + MSS, NULL, 0);
	pkts[1].len = build(bufs[1], c2.sport, TERN_TH_ACK, c2.nxt, c2.iss + 1 + MSS, NULL, 0);
	unsigned f0 = b.flushes;
	tern_stack_input_batch(st, pkts, 2, tern_stack_now(st));
	CHECK_EQ(b.flushes, f0 + 1);
	CHECK_EQ(b.flush_pkts[f0], 4); /* each: one acknowledged, cwnd 11, 9 in flight: two */
	CHECK_EQ(drain(&b, &c1), 2);
	CHECK_EQ(drain(&b, &c2), 2);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	/* Nothing more acknowledged: both retransmission timers, armed at the same moment,
	 * fire together. */
	unsigned n0 = b.n;
	for (int i = 0; i < 100 && b.n == n0; i++) {
		uint64_t due = tern_stack_next_timer(st);
		REQUIRE(due != TERN_TIME_NEVER);
		f0 = b.flushes;
		tern_stack_poll(st, due);
	}
	CHECK_EQ(b.flushes, f0 + 1);
	CHECK_EQ(b.n - n0, 2);
	CHECK_EQ(b.flush_pkts[f0], 2);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	CHECK_EQ(drain(&b, &c1), 1);
	CHECK_EQ(drain(&b, &c2), 1);
	tern_stack_free(st);
}

TEST(burst_flushed_before_a_reset_frees_the_send_buffer)
{
	/* One batch: an ACK that lets seven segments go (it carries a byte out of order, so
	 * they go at once, not at the batch's end), then a RST. The reset frees the send ring;
	 * the held segments must be flushed before that: their bytes intact at the flush and
	 * the ring still counted in the stack's memory then. Connection a's emptied ring sits
	 * in the ring cache first, so b's is really freed (AddressSanitizer would see it). */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn cb, ca;
	open_conn(st, &b, &cb, 40001);
	CHECK_EQ(tern_send(st, cb.fd, pattern, 20 * MSS, 0), 20 * MSS);
	CHECK_EQ(drain(&b, &cb), 10);
	open_conn(st, &b, &ca, 40002);
	CHECK_EQ(tern_send(st, ca.fd, pattern, 1000, 0), 1000);
	CHECK_EQ(drain(&b, &ca), 1);
	ack_to(st, &ca, 1000); /* a's ring, empty, goes to the cache */
	CHECK_EQ(b.nheld, 0);

	static uint8_t bufs[2][2048];
	struct tern_iovec pkts[2] = {{bufs[0], 0}, {bufs[1], 0}};
	pkts[0].len = build(bufs[0], cb.sport, TERN_TH_ACK, cb.nxt + 10, cb.iss + 1 + 5 * MSS, "x", 1);
	pkts[1].len = build(bufs[1], cb.sport, TERN_TH_RST, cb.nxt, 0, NULL, 0);
	unsigned f0 = b.flushes;
	tern_stack_input_batch(st, pkts, 2, tern_stack_now(st));
	size_t mem_after = tern_stack_memory(st);
	CHECK_EQ(b.flushes, f0 + 1);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	/* Seven new segments (cwnd 10 + 2 segments, 5 in flight) and nothing else. */
	CHECK_EQ(b.flush_pkts[f0], 7);
	CHECK_EQ(drain(&b, &cb), 7);
	CHECK_EQ(cb.got, 17 * MSS);
	/* At the flush the 29200-byte send ring was still there. */
	CHECK_EQ((long long)(b.flush_mem[f0] - mem_after), 20 * MSS);
	CHECK_EQ(tern_sock_state(st, cb.fd), TERN_STATE_CLOSED);
	tern_stack_free(st);
}

/* The UDP socket's datagram, sent from inside the stack (a trace hook) from a buffer on the
 * hook's stack that is overwritten as soon as tern_sendto returns. */
struct udp_hook {
	struct blink *b;
	struct tern_stack *st;
	int ufd;
	int fired;
	unsigned flushes_before, flushes_after, held_after;
	long rc;
};

static void udp_from_trace(void *user, const struct tern_trace *ev)
{
	struct udp_hook *u = user;
	if (ev->kind != TERN_TRACE_STATE || u->fired)
		return;
	u->fired = 1;
	char buf[64];
	memcpy(buf, pattern, sizeof(buf));
	struct tern_sockaddr to = {PEER, 9999};
	u->flushes_before = u->b->flushes;
	u->rc = tern_sendto(u->st, u->ufd, buf, sizeof(buf), 0, &to);
	u->flushes_after = u->b->flushes;
	u->held_after = u->b->nheld;
	memset(buf, 0xee, sizeof(buf));
}

TEST(burst_udp_sendto_flushes_before_returning)
{
	/* A UDP datagram from a caller's buffer: flushed before tern_sendto returns, from a
	 * socket call and from inside the stack's own burst alike. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	int ufd = tern_socket(st, TERN_SOCK_DGRAM);
	REQUIRE(ufd >= 0);
	struct tern_sockaddr me = {0, 5353};
	REQUIRE_EQ(tern_bind(st, ufd, &me), 0);
	char buf[100];
	memcpy(buf, pattern + 1000, sizeof(buf));
	struct tern_sockaddr to = {PEER, 9999};
	CHECK_EQ(tern_sendto(st, ufd, buf, sizeof(buf), 0, &to), 100);
	CHECK_EQ(b.flushes, 1);
	CHECK_EQ(b.flush_pkts[0], 1);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	REQUIRE_EQ(b.n, 1);
	CHECK_EQ(b.len[0], 20 + 8 + 100);
	CHECK_MEM(b.pkt[0] + 28, pattern + 1000, 100);
	memset(buf, 0, sizeof(buf));

	/* Inside a burst: the hook runs within tern_stack_input (the handshake's state
	 * change) and overwrites its buffer at once; the datagram must be gone by then. */
	struct udp_hook u = {&b, st, ufd, 0, 0, 0, 0, 0};
	tern_stack_set_trace(st, udp_from_trace, &u);
	struct conn c;
	memset(&c, 0, sizeof(c));
	c.sport = 40000;
	c.irs = 9000;
	seg_in(st, &c, TERN_TH_SYN, c.irs, 0, NULL, 0); /* LISTEN -> SYN_RCVD: the hook */
	CHECK_EQ(u.fired, 1);
	CHECK_EQ(u.rc, 64);
	CHECK_EQ(u.flushes_after, u.flushes_before + 1);
	CHECK_EQ(u.held_after, 0);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	tern_stack_free(st);
}

/* A hook that answers every TCP segment tern sends on port 80 with a UDP datagram. */
struct udp_echo_hook {
	struct tern_stack *st;
	int ufd;
	unsigned sent;
};

static void udp_on_send(void *user, const struct tern_trace *ev)
{
	struct udp_echo_hook *u = user;
	if (ev->kind != TERN_TRACE_SEND || ev->u.seg.sport != 80)
		return;
	struct tern_sockaddr to = {PEER, 9999};
	if (tern_sendto(u->st, u->ufd, pattern + 7, 33, 0, &to) == 33)
		u->sent++;
}

TEST(burst_udp_from_send_trace_keeps_segment_intact)
{
	/* The SEND event comes while the segment's headers wait in the stack's scratch buffer;
	 * a datagram sent by the hook builds its headers in the same place. Each TCP segment
	 * must still leave as traced (right ports, flags and checksum), after its datagram. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	int ufd = tern_socket(st, TERN_SOCK_DGRAM);
	REQUIRE(ufd >= 0);
	struct tern_sockaddr me = {0, 5353};
	REQUIRE_EQ(tern_bind(st, ufd, &me), 0);
	struct udp_echo_hook u = {st, ufd, 0};
	tern_stack_set_trace(st, udp_on_send, &u);
	struct conn c;
	memset(&c, 0, sizeof(c));
	c.sport = 40000;
	c.irs = 9000;
	seg_in(st, &c, TERN_TH_SYN, c.irs, 0, NULL, 0);
	REQUIRE_EQ(b.n, 2);
	CHECK_EQ(u.sent, 1);
	struct tern_ip4 ip;
	REQUIRE_EQ(tern_ip4_parse(b.pkt[0], b.len[0], &ip), TERN_IP4_OK);
	CHECK_EQ(ip.proto, 17);
	CHECK_EQ(b.len[0], 20 + 8 + 33);
	CHECK_MEM(b.pkt[0] + 28, pattern + 7, 33);
	struct tern_tcp_seg synack = parse(&b, 1); /* parse checks the checksum */
	CHECK_EQ(synack.h.flags, TERN_TH_SYN | TERN_TH_ACK);
	CHECK_EQ(synack.h.sport, 80);
	CHECK_EQ(synack.h.dport, 40000);
	CHECK_EQ(synack.h.ack, c.irs + 1);
	CHECK_EQ(synack.h.opts.mss, MSS);
	c.iss = synack.h.seq;
	c.nxt = c.irs + 1;
	seg_in(st, &c, TERN_TH_ACK, c.nxt, c.iss + 1, NULL, 0);
	c.fd = tern_accept(st, b.lfd, NULL);
	REQUIRE(c.fd >= 0);
	c.scan = b.n;
	/* Three data segments in one burst, each after its datagram, each intact. */
	CHECK_EQ(tern_send(st, c.fd, pattern, 3 * MSS, 0), 3 * MSS);
	CHECK_EQ(u.sent, 4);
	REQUIRE_EQ(b.n, 2 + 6);
	for (unsigned i = 2; i < b.n; i += 2) {
		REQUIRE_EQ(tern_ip4_parse(b.pkt[i], b.len[i], &ip), TERN_IP4_OK);
		CHECK_EQ(ip.proto, 17);
		struct tern_tcp_seg d = parse(&b, i + 1);
		CHECK_EQ(d.h.sport, 80);
		CHECK_EQ(d.h.seq, c.iss + 1 + (i - 2) / 2 * MSS);
		CHECK_EQ(d.h.len, MSS);
	}
	CHECK_EQ(drain(&b, &c), 3);
	CHECK_EQ(c.got, 3 * MSS);
	CHECK_EQ(b.mismatches, 0);
	tern_stack_free(st);
}

/* A hook that sends 100 more bytes of the pattern on connection `other` for each data
 * segment tern sends on connection `on` (port `on_port`). */
struct tcp_hook {
	struct tern_stack *st;
	int other;
	uint16_t on_port;
	uint32_t sent;
};

static void tcp_on_send(void *user, const struct tern_trace *ev)
{
	struct tcp_hook *u = user;
	if (ev->kind != TERN_TRACE_SEND || ev->u.seg.dport != u->on_port || !ev->u.seg.len)
		return;
	long n = tern_send(u->st, u->other, pattern + u->sent, 100, 0);
	if (n > 0)
		u->sent += (uint32_t)n;
}

TEST(burst_tcp_from_send_trace_keeps_segment_intact)
{
	/* The same with a segment on another connection sent from the hook, in the middle of
	 * the first connection's burst: both streams arrive whole and in order. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn a, o;
	open_conn(st, &b, &a, 40000);
	open_conn(st, &b, &o, 40001);
	a.scan = o.scan = b.n;
	int one = 1; /* each 100 bytes its own segment at once, not held by Nagle */
	REQUIRE_EQ(tern_setsockopt(st, o.fd, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, &one,
				   sizeof(one)), 0);
	struct tcp_hook u = {st, o.fd, 40000, 0};
	tern_stack_set_trace(st, tcp_on_send, &u);
	CHECK_EQ(tern_send(st, a.fd, pattern, 3 * MSS, 0), 3 * MSS);
	CHECK_EQ(u.sent, 300);
	REQUIRE_EQ(b.n, o.scan + 6);
	for (unsigned i = o.scan; i < b.n; i += 2) {
		struct tern_tcp_seg x = parse(&b, i), y = parse(&b, i + 1);
		CHECK_EQ(x.h.dport, 40001);
		CHECK_EQ(x.h.len, 100);
		CHECK_EQ(y.h.dport, 40000);
		CHECK_EQ(y.h.len, MSS);
	}
	CHECK_EQ(drain(&b, &a), 3);
	CHECK_EQ(a.got, 3 * MSS);
	CHECK_EQ(drain(&b, &o), 3);
	CHECK_EQ(o.got, 300);
	CHECK_EQ(b.mismatches, 0);
	tern_stack_free(st);
}

TEST(burst_link_without_flush_unchanged)
{
	/* No flush: the link copies at transmit, as before; the same ten segments, intact. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 0);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 10 * MSS, 0), 10 * MSS);
	CHECK_EQ(drain(&b, &c), 10);
	CHECK_EQ(c.got, 10 * MSS);
	CHECK_EQ(b.flushes, 0);
	CHECK_EQ(b.nheld, 0);
	/* A batch of ACKs then a RST, as above, with nothing held anywhere. */
	CHECK_EQ(tern_send(st, c.fd, pattern + 10 * MSS, 10 * MSS, 0), 10 * MSS);
	static uint8_t bufs[2][2048];
	struct tern_iovec pkts[2] = {{bufs[0], 0}, {bufs[1], 0}};
	pkts[0].len = build(bufs[0], c.sport, TERN_TH_ACK, c.nxt, c.iss + 1 + 5 * MSS, NULL, 0);
	pkts[1].len = build(bufs[1], c.sport, TERN_TH_ACK, c.nxt, c.iss + 1 + 10 * MSS, NULL, 0);
	tern_stack_input_batch(st, pkts, 2, tern_stack_now(st));
	CHECK_EQ(drain(&b, &c), 10);
	CHECK_EQ(c.got, 20 * MSS);
	CHECK_EQ(b.flushes, 0);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* The send buffer grows with cwnd                                                           */
/* ========================================================================================= */

TEST(burst_sndbuf_starts_at_twice_the_initial_window)
{
	/* Established with MSS 1460: 2 * 10 * 1460 = 29200, above wmem_default (16384). */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(sndbuf_of(st, c.fd), 29200);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 29200);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), -EAGAIN);
	CHECK_EQ(drain(&b, &c), 10);
	tern_stack_free(st);
}

TEST(burst_sndbuf_set_by_the_application_stays)
{
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	int v = 20000;
	REQUIRE_EQ(tern_setsockopt(st, c.fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &v, sizeof(v)), 0);
	CHECK_EQ(sndbuf_of(st, c.fd), 20000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 20000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), -EAGAIN);
	/* cwnd grows (until the sender is application-limited); the buffer does not. */
	CHECK_EQ(drain(&b, &c), 10);
	for (unsigned i = 1; i <= 10; i++)
		ack_to(st, &c, i * MSS);
	uint32_t cwnd = cwnd_of(st, c.fd);
	CHECK(2 * cwnd > 29200); /* autotuned, the buffer would be 2 * cwnd by now */
	CHECK_EQ(sndbuf_of(st, c.fd), 20000);
	CHECK_EQ(tern_send(st, c.fd, pattern + 20000, 100000, 0), 14600);
	CHECK_EQ(tern_send(st, c.fd, pattern + 34600, 100000, 0), -EAGAIN);
	tern_stack_free(st);
}

TEST(burst_sndbuf_capped_by_wmem_max)
{
	struct tern_settings set;
	tern_settings_default(&set);
	REQUIRE_EQ(tern_settings_set(&set, "wmem_max", "20000"), 0);
	static struct blink b;
	struct tern_stack *st = new_stack(&b, &set, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(sndbuf_of(st, c.fd), 20000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 20000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), -EAGAIN);
	tern_stack_free(st);

	/* Below wmem_default, wmem_default still holds. */
	REQUIRE_EQ(tern_settings_set(&set, "wmem_max", "10000"), 0);
	st = new_stack(&b, &set, 1);
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(sndbuf_of(st, c.fd), 16384);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 16384);
	tern_stack_free(st);

	/* The cap also stops growth: wmem_max 40000 while cwnd reaches 20 segments. */
	REQUIRE_EQ(tern_settings_set(&set, "wmem_max", "40000"), 0);
	st = new_stack(&b, &set, 1);
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(sndbuf_of(st, c.fd), 29200);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 29200);
	drain(&b, &c);
	for (unsigned i = 1; i <= 10; i++)
		ack_to(st, &c, i * MSS);
	CHECK_EQ(cwnd_of(st, c.fd), 20 * MSS);
	CHECK_EQ(sndbuf_of(st, c.fd), 40000);
	/* 14600 unacknowledged in a full 29200 ring: room up to its size, then the move. */
	CHECK_EQ(tern_send(st, c.fd, pattern + 29200, 100000, 0), 14600);
	CHECK_EQ(tern_send(st, c.fd, pattern + 43800, 100000, 0), 40000 - 29200);
	CHECK_EQ(tern_send(st, c.fd, pattern + 54600, 100000, 0), -EAGAIN);
	tern_stack_free(st);
}

TEST(burst_sndbuf_grows_with_cwnd_and_keeps_the_queue)
{
	/* Slow start: each ACK of one segment adds one to cwnd. The buffer follows at 2*cwnd;
	 * a full ring moves to a larger one and what it held (sent and unsent) survives: the
	 * peer receives the whole stream in order and intact, a retransmission from the moved
	 * ring included. */
	static struct blink b;
	struct tern_stack *st = new_stack(&b, NULL, 1);
	struct conn c;
	open_conn(st, &b, &c, 40000);
	CHECK_EQ(tern_send(st, c.fd, pattern, 100000, 0), 29200);
	CHECK_EQ(drain(&b, &c), 10);
	CHECK_EQ(cwnd_of(st, c.fd), 10 * MSS);
	for (unsigned i = 1; i <= 10; i++) {
		ack_to(st, &c, i * MSS);
		CHECK_EQ(cwnd_of(st, c.fd), (10 + i) * MSS);
		CHECK_EQ(sndbuf_of(st, c.fd), 2 * (10 + i) * MSS > 29200 ? 2 * (10 + i) * MSS : 29200);
	}
	CHECK_EQ(drain(&b, &c), 10); /* the other ten, clocked out by the ACKs */
	CHECK_EQ(c.got, 29200);
	CHECK_EQ(sndbuf_of(st, c.fd), 58400);
	/* 14600 in flight in a 29200 ring: it fills first (and ten more segments go)... */
	CHECK_EQ(tern_send(st, c.fd, pattern + 29200, 100000, 0), 14600);
	CHECK_EQ(drain(&b, &c), 10);
	CHECK_EQ(c.got, 43800);
	/* ... then, full, it moves to a 58400-byte one with 29200 more of room. */
	CHECK_EQ(tern_send(st, c.fd, pattern + 43800, 100000, 0), 29200);
	CHECK_EQ(tern_send(st, c.fd, pattern + 73000, 100000, 0), -EAGAIN);
	CHECK_EQ(drain(&b, &c), 0); /* cwnd full */
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	/* Three duplicate ACKs: the head (offset 14600, copied into the new ring) again. */
	for (int i = 0; i < 3; i++)
		ack_to(st, &c, 10 * MSS);
	uint32_t before = c.retrans;
	unsigned scan0 = c.scan;
	drain(&b, &c);
	CHECK(c.retrans > before);
	int found = 0;
	for (unsigned i = scan0; i < b.n; i++) {
		struct tern_tcp_seg s = parse(&b, i);
		if (s.h.len && s.h.seq == c.iss + 1 + 10 * MSS) {
			CHECK_EQ(s.h.len, MSS);
			CHECK_MEM(s.data, pattern + 10 * MSS, MSS); /* (drain checked it too) */
			found = 1;
		}
	}
	CHECK_EQ(found, 1);
	/* Acknowledge everything as it arrives until the stream is through. */
	for (int round = 0; round < 100 && c.got < 73000; round++) {
		ack_to(st, &c, c.got);
		drain(&b, &c);
	}
	CHECK_EQ(c.got, 73000);
	ack_to(st, &c, c.got);
	CHECK_EQ(drain(&b, &c), 0);
	struct tern_tcp_info ti;
	REQUIRE_EQ(tern_sock_info(st, c.fd, &ti), 0);
	CHECK_EQ(ti.snd_queue, 0);
	CHECK_EQ(ti.bytes_acked, 73000);
	CHECK_EQ(b.nheld, 0);
	CHECK_EQ(b.mismatches, 0);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* io_uring                                                                                   */
/* ========================================================================================= */

TEST(burst_uring_writes_in_order)
{
	int p[2];
	REQUIRE_EQ(pipe(p), 0);
	struct uring *u = uring_open(p[1], 8);
	if (!u) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		if (e == ENOSYS || e == EPERM || e == EACCES) {
			fprintf(stderr, "burst_uring_writes_in_order: no io_uring here (%s), skipped\n",
				strerror(e));
			return;
		}
		test_fail(__FILE__, __LINE__, "uring_open: %s", strerror(e));
		return;
	}
	pattern_init();
	struct iovec v[20][3];
	struct uring_write w[20];
	size_t off = 0, lens[20];
	for (unsigned i = 0; i < 20; i++) {
		unsigned pieces = 2 + i % 2;
		lens[i] = 0;
		for (unsigned k = 0; k < pieces; k++) {
			size_t len = 1 + (i * 37 + k * 11) % 90;
			v[i][k].iov_base = pattern + off;
			v[i][k].iov_len = len;
			off += len;
			lens[i] += len;
		}
		w[i].iov = v[i];
		w[i].iovcnt = pieces;
		w[i].res = -12345;
	}
	unsigned done = 0;
	CHECK_EQ(uring_writev(u, w, 20, &done), 20);
	CHECK_EQ(done, 20);
	for (unsigned i = 0; i < 20; i++)
		CHECK_EQ(w[i].res, (long long)lens[i]);
	uring_close(u);
	close(p[1]);
	static uint8_t got[8192];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(p[0], got + n, sizeof(got) - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(p[0]);
	CHECK_EQ(n, off);
	CHECK_MEM(got, pattern, off);
}
