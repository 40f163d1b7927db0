/*
 * Byte-stream tests: what happens to data once a connection is open. The raw peer
 * (tests/peer.h) plays the other end with exact segments and exact times, and every test
 * asserts the segments, windows, timings and bytes a mechanism must produce, so that each
 * one fails when the mechanism is missing or wrong. A few whole-path tests run two stacks in
 * the simulator (tern/sim.h).
 *
 * Groups, each with the rule it checks:
 *   1. RTT estimation and RTO (RFC 6298, Karn)       7. flow control, persist timer
 *   2. retransmission timeout, backoff, abort        8. congestion control (RFC 5681/6582)
 *   3. reassembly of out-of-order data               9. keepalive (RFC 1122 §4.2.3.6)
 *   4. delayed ACK (Linux's quick-ACK and ato)      10. urgent data (RFC 9293 §3.8.5, RFC 6093)
 *   5. receiver SWS avoidance and window updates    11. zero-copy send and receive
 *   6. Nagle (Minshall), NODELAY, CORK, sender SWS  12. whole-path transfers in the simulator
 *
 * Sequence numbers are written relative to the stream: byte k of what the stack sends has
 * sequence number p->iss + 1 + k, byte k of what the peer sends p->irs + 1 + k. Payloads
 * follow pat(k), so any range can be checked wherever it arrives.
 *
 * A test asserting behaviour that tern gets wrong is kept inside #ifdef TERN_KNOWN_BUG, so
 * that `make test` stays green, until the stack is fixed (none at the moment).
 */
#include "test.h"
#include "peer.h"
#include "tern/sim.h"

#include <stdlib.h>

#define W PEER_STACK_WIN
#define ACK TERN_TH_ACK
#define SYN TERN_TH_SYN
#define FIN TERN_TH_FIN
#define RST TERN_TH_RST
#define PSH TERN_TH_PSH
#define URG TERN_TH_URG
#define MSS 1460u
#define MS PEER_MS
#define SEC PEER_S

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The byte at stream offset k (either direction). */
static uint8_t pat(uint32_t k) { return (uint8_t)(k * 131u + (k >> 9) * 7u + 1u); }

static void fill_pat(uint8_t *buf, uint32_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(off + (uint32_t)i);
}

static bool is_pat(const uint8_t *buf, uint32_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + (uint32_t)i))
			return false;
	return true;
}

static const struct tern_stats *stats(struct peer *p) { return tern_stack_stats(p->st); }

static struct tern_tcp_info info(struct peer *p)
{
	struct tern_tcp_info i;
	memset(&i, 0, sizeof(i));
	CHECK_EQ(tern_sock_info(p->st, p->fd, &i), 0);
	return i;
}

/* Sequence numbers of stream offsets. */
static uint32_t sseq(const struct peer *p, uint32_t k) { return p->iss + 1 + k; } /* ours */
static uint32_t pseq(const struct peer *p, uint32_t k) { return p->irs + 1 + k; } /* peer's */

/* The peer sends stream bytes [k, k+n) with the given flags (ACK added). The peer's own
 * snd_nxt is not touched: tests say where the stream stands. */
static void pdata(struct peer *p, uint16_t flags, uint32_t k, uint32_t n)
{
	uint8_t *buf = malloc(n ? n : 1);
	REQUIRE(buf != NULL);
	fill_pat(buf, k, n);
	peer_inject(p, (uint16_t)(ACK | flags), pseq(p, k), p->rcv_nxt, p->win, buf, n, NULL);
	free(buf);
}

/* The peer acknowledges our stream up to offset k with window win. */
static void pack(struct peer *p, uint32_t k, uint16_t win)
{
	peer_inject(p, ACK, p->snd_nxt, sseq(p, k), win, NULL, 0, NULL);
}

/* The application sends stream bytes [k, k+n); returns what tern_send took. */
static long app_send(struct peer *p, uint32_t k, uint32_t n, int flags)
{
	uint8_t *buf = malloc(n ? n : 1);
	REQUIRE(buf != NULL);
	fill_pat(buf, k, n);
	long r = tern_send(p->st, p->fd, buf, n, flags);
	free(buf);
	return r;
}

/* The application reads up to n bytes, which must be the stream from offset k on. Returns
 * what tern_recv returned. */
static long app_recv(struct peer *p, uint32_t k, uint32_t n)
{
	uint8_t *buf = malloc(n ? n : 1);
	REQUIRE(buf != NULL);
	long r = tern_recv(p->st, p->fd, buf, n, 0);
	if (r > 0 && !is_pat(buf, k, (size_t)r))
		test_fail(__FILE__, __LINE__, "recv: %ld bytes from offset %u are not the stream", r, k);
	free(buf);
	return r;
}

/* A data segment of ours at stream offset k, n bytes, checked byte for byte; the ACK field
 * is what the peer has sent (p->snd_nxt), the window the stack's W unless given. */
#define EXPECT_DATA_W(p, flags, k, n, win)                                                       \
	do {                                                                                     \
		struct tern_tcp_seg s_;                                                          \
		if (PEER_EXPECT_SEG((p), &s_, (flags), sseq((p), (k)), (p)->snd_nxt, (win), (n)) && \
		    !is_pat(s_.data, (k), (n)))                                                  \
			test_fail(__FILE__, __LINE__, "payload at offset %u is not the stream",  \
				  (unsigned)(k));                                                \
	} while (0)
#define EXPECT_DATA(p, flags, k, n) EXPECT_DATA_W(p, flags, k, n, W)
/* A pure ACK from the stack acknowledging the peer's stream up to k, with window win. */
#define EXPECT_ACK(p, k, win) PEER_EXPECT((p), ACK, sseq_now(p), pseq((p), (k)), (win), 0)

/* The sequence number of the stack's pure ACKs: its SND.NXT, which tests keep in
 * p->rcv_nxt (the peer's RCV.NXT). */
static uint32_t sseq_now(const struct peer *p) { return p->rcv_nxt; }

/* Passive open whose SYN-ACK is acknowledged rtt_us later (the first RTT sample). */
static void open_passive_rtt(struct peer *p, uint64_t rtt_us)
{
	peer_to_syn_rcvd_passive(p);
	peer_advance(p, rtt_us);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	p->fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(p->fd >= 0);
	REQUIRE_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
}

/* Active open whose SYN-ACK arrives rtt_us after the SYN, from a peer offering win. */
static void open_active_rtt_win(struct peer *p, uint64_t rtt_us, uint16_t win)
{
	peer_to_syn_sent(p);
	peer_advance(p, rtt_us);
	struct tern_tcp_opts o = peer_mss_opt(p->mss);
	p->win = win;
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, win, NULL, 0, p->mss ? &o : NULL);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	REQUIRE_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
}

static void open_active_rtt(struct peer *p, uint64_t rtt_us)
{
	open_active_rtt_win(p, rtt_us, PEER_WIN);
}

static int setopt_int(struct peer *p, int level, int name, int v)
{
	return tern_setsockopt(p->st, p->fd, level, name, &v, sizeof(v));
}

static int getopt_int(struct peer *p, int level, int name)
{
	int v = -12345;
	size_t len = sizeof(v);
	int rc = tern_getsockopt(p->st, p->fd, level, name, &v, &len);
	return rc < 0 ? rc : v;
}

/* SO_KEEPALIVE on, with TCP_KEEPIDLE/KEEPINTVL (seconds) and TCP_KEEPCNT. */
static void keepalive_on(struct peer *p, int idle, int intvl, int cnt)
{
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE, idle), 0);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPINTVL, intvl), 0);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPCNT, cnt), 0);
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
}

/* A stack with one setting changed. */
static struct peer *peer_with(const char *name, const char *value)
{
	struct tern_settings s;
	tern_settings_default(&s);
	REQUIRE_EQ(tern_settings_set(&s, name, value), 0);
	return peer_new(&s, 1);
}

/* A listener whose accepted sockets get receive buffer rcvbuf, and a passive open with it.
 * Returns the window the SYN-ACK offered. */
static uint16_t open_passive_rcvbuf(struct peer *p, int rcvbuf)
{
	peer_listen(p, 16);
	int v = rcvbuf;
	REQUIRE_EQ(tern_setsockopt(p->st, p->lfd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, sizeof(v)), 0);
	uint32_t full = (uint32_t)rcvbuf < 65535u ? (uint32_t)rcvbuf : 65535u;
	uint32_t unit = full < MSS ? full : MSS;
	p->stack_win = (uint16_t)(full - full % unit);
	peer_open_passive(p);
	return p->stack_win;
}

/* Run the timers until the stack sends something, at most until deadline; false if not. */
static bool next_seg_by(struct peer *p, uint64_t deadline)
{
	return peer_run_timers_until(p, deadline);
}

/* ========================================================================================== */
/* 1. RTT estimation: RFC 6298 §2 and §3 (tcp_timer.c tcb_rtt_sample), Karn's rule, and §5.7.  */
/*    First sample R: SRTT = R, RTTVAR = R/2. Then RTTVAR = 3/4 RTTVAR + |SRTT - R|/4 (old     */
/*    SRTT), SRTT = 7/8 SRTT + R/8, in integer microseconds. RTO = SRTT + max(rto_min,         */
/*    4 RTTVAR), rounded up to a millisecond, within [rto_min, rto_max].                       */
/* ========================================================================================== */

struct rtt_model {
	uint32_t srtt, rttvar;
};

static void model_sample(struct rtt_model *m, uint32_t r)
{
	if (!m->srtt) {
		m->srtt = r;
		m->rttvar = r / 2;
		return;
	}
	uint32_t d = m->srtt > r ? m->srtt - r : r - m->srtt;
	m->rttvar = m->rttvar - m->rttvar / 4 + d / 4;
	m->srtt = m->srtt - m->srtt / 8 + r / 8;
}

static uint32_t model_rto_us(const struct rtt_model *m, uint32_t rto_min_ms, uint32_t rto_max_ms)
{
	uint64_t var = 4ull * m->rttvar, g = rto_min_ms * 1000ull;
	uint64_t us = m->srtt + (var > g ? var : g);
	uint64_t ms = (us + 999) / 1000;
	if (ms < rto_min_ms)
		ms = rto_min_ms;
	if (ms > rto_max_ms)
		ms = rto_max_ms;
	return (uint32_t)(ms * 1000);
}

/* Send n bytes at stream offset *k, have the peer acknowledge them r_us later. */
static void timed_exchange(struct peer *p, uint32_t *k, uint32_t n, uint64_t r_us)
{
	CHECK_EQ(app_send(p, *k, n, 0), n);
	EXPECT_DATA(p, ACK | PSH, *k, n);
	peer_advance(p, r_us);
	PEER_EXPECT_NONE(p);
	*k += n;
	pack(p, *k, PEER_WIN);
	p->rcv_nxt = sseq(p, *k);
	PEER_EXPECT_NONE(p);
}

TEST(stream_rtt_first_sample_from_syn_ack_active)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 100000);
	CHECK_EQ(i.rttvar_us, 50000);
	CHECK_EQ(i.rto_us, 300000); /* 100 + max(200, 4 * 50) */
	peer_free(p);
}

TEST(stream_rtt_first_sample_from_third_ack_passive)
{
	struct peer *p = peer_new(NULL, 1);
	open_passive_rtt(p, 37 * MS + 250);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 37250);
	CHECK_EQ(i.rttvar_us, 18625);
	CHECK_EQ(i.rto_us, 238000); /* 37.25 + 200 = 237.25 ms, rounded up */
	peer_free(p);
}

TEST(stream_rtt_hand_computed_sequence)
{
	/* R0 = 100 ms (handshake), then 200 ms, 50 ms, 50 ms. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint32_t k = 0;
	timed_exchange(p, &k, 100, 200 * MS);
	/* RTTVAR = 50000 - 12500 + 100000/4 = 62500; SRTT = 100000 - 12500 + 25000 = 112500 */
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rttvar_us, 62500);
	CHECK_EQ(i.rtt_us, 112500);
	CHECK_EQ(i.rto_us, 363000); /* 112.5 + 4 * 62.5 = 362.5 ms, rounded up */
	timed_exchange(p, &k, 100, 50 * MS);
	/* RTTVAR = 62500 - 15625 + 62500/4 = 62500; SRTT = 112500 - 14062 + 6250 = 104688 */
	i = info(p);
	CHECK_EQ(i.rttvar_us, 62500);
	CHECK_EQ(i.rtt_us, 104688);
	CHECK_EQ(i.rto_us, 355000); /* 104.688 + 250 */
	timed_exchange(p, &k, 100, 50 * MS);
	/* RTTVAR = 62500 - 15625 + 54688/4 = 60547; SRTT = 104688 - 13086 + 6250 = 97852 */
	i = info(p);
	CHECK_EQ(i.rttvar_us, 60547);
	CHECK_EQ(i.rtt_us, 97852);
	CHECK_EQ(i.rto_us, 341000); /* 97.852 + 4 * 60.547 = 340.04 ms, rounded up */
	peer_free(p);
}

TEST(stream_rtt_long_sequence_matches_model)
{
	static const uint32_t r[] = {80000, 81000, 79000, 150000, 20000, 20000, 20000, 20001,
				     90000, 5000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000,
				     1000, 1000, 1000, 1000, 1000, 1000, 1000, 150000, 1};
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 80 * MS);
	struct rtt_model m = {0, 0};
	model_sample(&m, 80000);
	uint32_t k = 0;
	for (size_t n = 1; n < sizeof(r) / sizeof(r[0]); n++) {
		timed_exchange(p, &k, 10, r[n]);
		model_sample(&m, r[n]);
		struct tern_tcp_info i = info(p);
		CHECK_EQ(i.rtt_us, m.srtt);
		CHECK_EQ(i.rttvar_us, m.rttvar);
		CHECK_EQ(i.rto_us, model_rto_us(&m, 200, 120000));
		if (test_failed())
			break;
	}
	/* Small, steady RTTs bring the RTO down to just over rto_min, never below it. */
	CHECK(info(p).rto_us >= 200000);
	peer_free(p);
}

TEST(stream_rtt_rto_min_is_the_floor_of_the_variance_term)
{
	/* RTO = SRTT + max(G, 4 RTTVAR) with G = rto_min (Linux's form): a 10.001 ms path
	 * gets 10.001 + 200 ms, rounded up to 211 ms. With rto_min 50 ms: 10.001 + 50 -> 61. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS + 1);
	CHECK_EQ(info(p).rto_us, 211000);
	peer_free(p);
	p = peer_with("rto_min", "50ms");
	open_active_rtt(p, 10 * MS + 1);
	CHECK_EQ(info(p).rto_us, 61000);
	peer_free(p);
}

TEST(stream_rtt_rto_clamped_to_rto_max)
{
	/* A 50 s round trip (measured on a handshake whose initial RTO is longer): RTO would be
	 * 50 + 4 * 25 = 150 s; it is clamped to rto_max (120 s). */
	struct peer *p = peer_with("rto_initial", "100s");
	open_active_rtt(p, 50 * SEC);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 50000000u);
	CHECK_EQ(i.rto_us, 120000000u);
	peer_free(p);
}

TEST(stream_rtt_only_one_segment_timed_at_a_time)
{
	/* RFC 6298 §3: one segment is timed per round trip. Two segments leave at t; the ACK
	 * of the first at t+80 ms gives a sample; the ACK of the second, at t+150 ms, does not
	 * (it was sent while the first was being timed). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	EXPECT_DATA(p, ACK, 0, MSS);
	EXPECT_DATA(p, ACK | PSH, MSS, MSS);
	peer_advance(p, 80 * MS);
	pack(p, MSS, PEER_WIN);
	struct rtt_model m = {0, 0};
	model_sample(&m, 100000);
	model_sample(&m, 80000);
	CHECK_EQ(info(p).rtt_us, m.srtt);
	CHECK_EQ(info(p).rttvar_us, m.rttvar);
	peer_advance(p, 70 * MS);
	pack(p, 2 * MSS, PEER_WIN);
	CHECK_EQ(info(p).rtt_us, m.srtt);
	CHECK_EQ(info(p).rttvar_us, m.rttvar);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_rtt_karn_no_sample_from_retransmitted_segment)
{
	/* Karn's rule (RFC 6298 §3): the ACK of a segment that was retransmitted is ambiguous
	 * and gives no sample. The segment leaves at t, is retransmitted at t+300 ms, and the
	 * ACK comes at t+350 ms: SRTT and RTTVAR stay as the handshake set them. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK_EQ(p->last_t, t + 300 * MS);
	peer_advance_to(p, t + 350 * MS);
	pack(p, 100, PEER_WIN);
	p->rcv_nxt = sseq(p, 100);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 100000);
	CHECK_EQ(i.rttvar_us, 50000);
	/* The next segment, never retransmitted, is timed again. */
	uint32_t k = 100;
	timed_exchange(p, &k, 100, 60 * MS);
	struct rtt_model m = {0, 0};
	model_sample(&m, 100000);
	model_sample(&m, 60000);
	CHECK_EQ(info(p).rtt_us, m.srtt);
	CHECK_EQ(info(p).rttvar_us, m.rttvar);
	peer_free(p);
}

TEST(stream_rtt_karn_backed_off_rto_kept_until_valid_sample)
{
	/* Karn and Partridge's algorithm, as RFC 6298 §5 describes it ("once a new RTT
	 * measurement is obtained ... the computations of Section 2 are performed, including
	 * the computation of RTO, which may result in collapsing RTO back down"), Linux's
	 * tcp_ack_update_rtt() ("RFC6298: only reset backoff on valid RTT measurement") and
	 * BSD's tcp_xmit_timer(): the ACK of a retransmitted segment gives no sample, so the
	 * backed-off RTO stays for the next segment instead of collapsing on the first ACK. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK | PSH, 0, 100); /* at 300 ms; the RTO is 600 ms now */
	peer_advance_to(p, t + 350 * MS);
	pack(p, 100, PEER_WIN);
	p->rcv_nxt = sseq(p, 100);
	CHECK_EQ(info(p).rto_us, 600000);
	uint64_t t2 = p->now;
	CHECK_EQ(app_send(p, 100, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 100, 100);
	REQUIRE(next_seg_by(p, t2 + 10 * SEC));
	EXPECT_DATA(p, ACK | PSH, 100, 100);
	CHECK_EQ(p->last_t, t2 + 600 * MS);
	peer_free(p);
}

TEST(stream_rtt_karn_no_sample_from_fast_retransmitted_segment)
{
	/* The segment timed was sent once, but the ACK that finally covers it follows a fast
	 * retransmission of an earlier segment: no sample either (the timing is cancelled). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 5 * MSS, 0), 5 * MSS);
	for (uint32_t s = 0; s < 5; s++)
		EXPECT_DATA(p, s == 4 ? ACK | PSH : ACK, s * MSS, MSS);
	for (int d = 0; d < 3; d++)
		pack(p, 0, PEER_WIN);
	EXPECT_DATA(p, ACK, 0, MSS); /* fast retransmit */
	peer_advance(p, 30 * MS);
	pack(p, 5 * MSS, PEER_WIN);
	CHECK_EQ(info(p).rtt_us, 100000);
	CHECK_EQ(info(p).rttvar_us, 50000);
	peer_free(p);
}

TEST(stream_rtt_retransmitted_syn_gives_no_sample_and_rto_3s)
{
	/* RFC 6298 §5.7: the SYN was retransmitted (at 1 s) and the SYN-ACK came at 1.1 s: no
	 * sample (Karn), and the RTO once established is 3 s. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	uint64_t t0 = p->now;
	REQUIRE(next_seg_by(p, t0 + 5 * SEC));
	PEER_EXPECT(p, SYN, p->iss, 0, W, 0);
	CHECK_EQ(p->last_t, t0 + 1 * SEC);
	peer_advance_to(p, t0 + 1100 * MS);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, p->win, NULL, 0, &o);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 0);
	CHECK_EQ(i.rto_us, 3000000);
	/* Data sent now is retransmitted 3 s later. */
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 10, 0), 10);
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	CHECK_EQ(p->last_t, t + 3 * SEC);
	peer_free(p);
}

TEST(stream_rtt_retransmitted_syn_ack_gives_no_sample_and_rto_3s)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	uint64_t t0 = p->now;
	REQUIRE(next_seg_by(p, t0 + 5 * SEC));
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, t0 + 1 * SEC);
	peer_advance(p, 50 * MS);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(p->fd >= 0);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.rtt_us, 0);
	CHECK_EQ(i.rto_us, 3000000);
	peer_free(p);
}

/* ========================================================================================== */
/* 2. Retransmission timeout: RFC 6298 §5 (back off, go back to SND.UNA), RFC 5681 §3.1        */
/*    (ssthresh and the loss window), Linux's tcp_retransmit_timer(), tcp_write_timeout() and  */
/*    tcp_model_timeout() (abort after retries2, measured in time), TCP_USER_TIMEOUT with     */
/*    tcp_clamp_rto_to_user_timeout().                                                         */
/* ========================================================================================== */

TEST(stream_rto_go_back_n_with_loss_window)
{
	/* Five segments in flight time out: the oldest goes again alone (cwnd one segment),
	 * ssthresh = FlightSize/2 = 3650. Its ACK grows cwnd to two segments (slow start) and
	 * the next two, already sent once, go again: SND.NXT had fallen back to SND.UNA. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 5 * MSS, 0), 5 * MSS);
	for (uint32_t s = 0; s < 5; s++)
		EXPECT_DATA(p, s == 4 ? ACK | PSH : ACK, s * MSS, MSS);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK, 0, MSS);
	CHECK_EQ(p->last_t, t + 300 * MS);
	PEER_EXPECT_NONE(p);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.snd_cwnd, 1);
	CHECK_EQ(i.snd_ssthresh, 2); /* 3650 bytes */
	CHECK_EQ(i.rto_us, 600000);
	CHECK_EQ(i.retransmits, 1);
	CHECK_EQ(stats(p)->tcp_rtos, 1);
	peer_advance(p, 10 * MS);
	pack(p, MSS, PEER_WIN);
	EXPECT_DATA(p, ACK, MSS, MSS);
	EXPECT_DATA(p, ACK, 2 * MSS, MSS);
	PEER_EXPECT_NONE(p);
	i = info(p);
	CHECK_EQ(i.snd_cwnd, 2);
	CHECK_EQ(i.retransmits, 0);
	CHECK_EQ(i.total_retrans, 3);
	CHECK_EQ(stats(p)->tcp_retrans, 3);
	/* The next ACK covers two segments: slow start adds 2920 but stops at ssthresh (3650
	 * bytes), which lets the last two segments go again. */
	pack(p, 3 * MSS, PEER_WIN);
	EXPECT_DATA(p, ACK, 3 * MSS, MSS);
	EXPECT_DATA(p, ACK | PSH, 4 * MSS, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 5 * MSS, PEER_WIN);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_rto_second_timeout_keeps_ssthresh)
{
	/* RFC 5681 §3.1: ssthresh is set when a segment first times out, not again while the
	 * same segment backs off (FlightSize is one segment by then). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 8 * MSS, 0), 8 * MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK, 0, MSS);
	CHECK_EQ(info(p).snd_ssthresh, 4);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK, 0, MSS);
	CHECK_EQ(p->last_t, t + 900 * MS);
	CHECK_EQ(info(p).snd_ssthresh, 4);
	CHECK_EQ(info(p).snd_cwnd, 1);
	CHECK_EQ(info(p).backoff, 2);
	peer_free(p);
}

TEST(stream_rto_doubles_up_to_rto_max)
{
	struct peer *p = peer_with("rto_max", "2s");
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 10, 0), 10);
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	static const uint64_t at[] = {300, 900, 2100, 4100, 6100, 8100};
	static const uint32_t rto[] = {600, 1200, 2000, 2000, 2000, 2000};
	for (size_t n = 0; n < 6; n++) {
		REQUIRE(next_seg_by(p, t + 60 * SEC));
		EXPECT_DATA(p, ACK | PSH, 0, 10);
		CHECK_EQ(p->last_t, t + at[n] * MS);
		CHECK_EQ(info(p).rto_us, rto[n] * 1000);
	}
	peer_free(p);
}

/* Step from timer to timer while the connection lives (at most until limit), popping what
 * it sends, which must be retransmissions of stream offset 0. Returns how many; *end is when
 * the connection died (0 if it did not). */
static unsigned run_to_abort(struct peer *p, uint64_t limit, uint64_t *end)
{
	unsigned n = 0;
	*end = 0;
	while (tern_sock_state(p->st, p->fd) == TERN_STATE_ESTABLISHED && p->now < limit) {
		uint64_t nt = tern_stack_next_timer(p->st);
		if (nt == TERN_TIME_NEVER || nt > limit)
			break;
		peer_advance_to(p, nt);
		struct tern_tcp_seg s;
		while (peer_pop(p, &s)) {
			CHECK_EQ(s.h.flags & (RST | SYN | FIN), 0);
			CHECK_EQ(s.h.seq, sseq(p, 0));
			n++;
		}
	}
	if (tern_sock_state(p->st, p->fd) == TERN_STATE_CLOSED)
		*end = p->now;
	return n;
}

TEST(stream_rto_abort_after_retries2_is_time_based)
{
	/* Linux's tcp_write_timeout(): retries2 = 15 means "as long as 15 backed-off RTOs
	 * starting at rto_min would take": 924.6 s. Checked when the RTO fires: with RTO
	 * 300 ms they fire at 0.3, 0.9, 2.1, ... 873.3 s (15 retransmissions) and 993.3 s, when
	 * 993.3 >= 924.6 and the connection is dropped with ETIMEDOUT, silently (no RST). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	/* Step from timer to timer, popping the retransmissions, until the state changes. */
	unsigned n = 0;
	uint64_t last = 0;
	while (tern_sock_state(p->st, p->fd) == TERN_STATE_ESTABLISHED &&
	       p->now < t + 2000 * SEC) {
		uint64_t nt = tern_stack_next_timer(p->st);
		REQUIRE(nt != TERN_TIME_NEVER);
		peer_advance_to(p, nt);
		struct tern_tcp_seg s;
		while (peer_pop(p, &s)) {
			CHECK_EQ(s.h.flags, ACK | PSH);
			CHECK_EQ(s.h.seq, sseq(p, 0));
			n++;
			last = p->last_t;
		}
	}
	CHECK_EQ(n, 15);
	CHECK_EQ(last, t + 873300 * MS);
	CHECK_EQ(p->now, t + 993300 * MS);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	CHECK_EQ(stats(p)->tcp_timeouts, 1);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_rto_abort_small_retries2)
{
	/* retries2 = 3: limit (2^4 - 1) * 200 ms = 3 s. RTO 300 ms: retransmissions at 0.3,
	 * 0.9, 2.1 s, abort when the timer fires at 4.5 s. With RTO 1 s (a 333.333 ms RTT)
	 * the same limit allows a single retransmission (at 1 s; abort at 3 s): time, not
	 * count. */
	struct peer *p = peer_with("retries2", "3");
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now, end;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK_EQ(run_to_abort(p, t + 100 * SEC, &end), 3);
	CHECK_EQ(end, t + 4500 * MS);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);

	p = peer_with("retries2", "3");
	open_active_rtt(p, 333333);
	CHECK_EQ(info(p).rto_us, 1000000);
	peer_advance_to(p, p->now - p->now % MS + MS); /* timers run in whole milliseconds */
	t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK_EQ(run_to_abort(p, t + 100 * SEC, &end), 1);
	CHECK_EQ(end, t + 3000 * MS);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_rto_user_timeout_aborts_on_time)
{
	/* TCP_USER_TIMEOUT 5000 ms: retransmissions at 0.3, 0.9, 2.1, 4.5 s; the next RTO
	 * (4.8 s) is clamped to the 0.5 s left, and the connection ends at exactly 5 s. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 5000), 0);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT), 5000);
	uint64_t t = p->now, end;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK_EQ(run_to_abort(p, t + 100 * SEC, &end), 4);
	CHECK_EQ(end, t + 5000 * MS);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_rto_user_timeout_outlasts_255_timeouts)
{
	/* With rto_max 1 s a 400 s user timeout takes 401 timeouts: retransmissions at 0.3,
	 * 0.9, then every second from 1.9 to 399.9 s, and the abort at exactly 400 s. The
	 * connection's count of consecutive timeouts stops at 255 (tcp_info's 8 bits); were
	 * it to wrap to 0, the timeout's start would be taken again and the connection would
	 * retransmit for ever. */
	struct peer *p = peer_with("rto_max", "1000ms");
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 400000), 0);
	uint64_t t = p->now, end;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK_EQ(run_to_abort(p, t + 1000 * SEC, &end), 401);
	CHECK_EQ(end, t + 400 * SEC);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_rto_ack_restarts_timer)
{
	/* RFC 6298 §5.3: an ACK of new data restarts the timer for what is still in flight. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	peer_discard(p);
	peer_advance_to(p, t + 250 * MS);
	pack(p, MSS, PEER_WIN); /* RTT sample 250 ms: RTO = 250 + max(200, 4*...) */
	uint32_t rto = info(p).rto_us;
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK | PSH, MSS, MSS);
	CHECK_EQ(p->last_t, t + 250 * MS + rto);
	peer_free(p);
}

/* ========================================================================================== */
/* 3. Out-of-order data: RFC 9293 §3.10.7.4 (seventh: keep segments beyond RCV.NXT, trim to   */
/*    the window), RFC 5681 §4.2 (ACK out-of-order data and hole fills at once); tern keeps   */
/*    at most 8 separate ranges in the receive ring (tcp_reass.c), a 9th is refused.          */
/* ========================================================================================== */

/* The peer's view of which stream bytes the stack holds, for the expected ACK. */
struct cover {
	uint8_t got[16384];
};

static uint32_t cover_add(struct cover *c, uint32_t k, uint32_t n)
{
	for (uint32_t i = k; i < k + n; i++)
		c->got[i] = 1;
	uint32_t a = 0;
	while (c->got[a])
		a++;
	return a;
}

struct seg_spec {
	uint32_t k, n;
};

/* Deliver segs in the order given; each one must draw one immediate ACK for the in-order
 * prefix; then the application reads exactly total bytes of the stream. */
static void reass_run(const struct seg_spec *segs, const unsigned *order, unsigned nseg,
		      uint32_t total)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	struct cover c;
	memset(&c, 0, sizeof(c));
	for (unsigned i = 0; i < nseg; i++) {
		const struct seg_spec *s = &segs[order[i]];
		pdata(p, 0, s->k, s->n);
		uint32_t a = cover_add(&c, s->k, s->n);
		if (!PEER_EXPECT(p, ACK, p->rcv_nxt, pseq(p, a), W, 0) ||
		    !PEER_EXPECT_NONE(p)) {
			char b[128];
			int w = 0;
			for (unsigned j = 0; j <= i && w < 100; j++)
				w += snprintf(b + w, sizeof(b) - (size_t)w, " %u", order[j]);
			test_fail(__FILE__, __LINE__, "arrival order:%s", b);
			break;
		}
	}
	CHECK_EQ(app_recv(p, 0, total + 100), total);
	CHECK_EQ(tern_recv(p->st, p->fd, (uint8_t[4]){0}, 4, 0), -EAGAIN);
	CHECK_EQ(info(p).bytes_received, total);
	CHECK_EQ(info(p).rcv_nxt, pseq(p, total));
	peer_free(p);
}

static bool next_perm(unsigned *a, unsigned n)
{
	int i = (int)n - 2;
	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	int j = (int)n - 1;
	while (a[j] <= a[i])
		j--;
	unsigned t = a[i];
	a[i] = a[j];
	a[j] = t;
	for (unsigned l = (unsigned)i + 1, r = n - 1; l < r; l++, r--) {
		t = a[l];
		a[l] = a[r];
		a[r] = t;
	}
	return true;
}

TEST(stream_reass_gap_at_start)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, PSH, 1000, 1000);
	EXPECT_ACK(p, 0, W); /* duplicate ACK: where the hole starts */
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_recv(p->st, p->fd, (uint8_t[8]){0}, 8, 0), -EAGAIN);
	CHECK_EQ(tern_sock_events(p->st, p->fd) & TERN_EV_IN, 0);
	CHECK_EQ(stats(p)->tcp_ofo_queued, 1);
	CHECK_EQ(info(p).rcv_queue, 0);
	pdata(p, 0, 0, 1000);
	EXPECT_ACK(p, 2000, W);
	PEER_EXPECT_NONE(p);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_IN);
	CHECK_EQ(app_recv(p, 0, 5000), 2000);
	peer_free(p);
}

TEST(stream_reass_gap_in_the_middle)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, 0, 0, 1000);
	EXPECT_ACK(p, 1000, W);
	pdata(p, 0, 2000, 1000);
	EXPECT_ACK(p, 1000, W);
	CHECK_EQ(app_recv(p, 0, 5000), 1000); /* what is in order can be read already */
	pdata(p, 0, 1000, 1000);
	EXPECT_ACK(p, 3000, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 1000, 5000), 2000);
	peer_free(p);
}

TEST(stream_reass_three_holes_every_fill_order)
{
	/* Ranges 1000-2000, 3000-4000, 5000-6000 held; the holes before them filled in all
	 * six orders. */
	static const struct seg_spec segs[] = {
		{1000, 1000}, {3000, 1000}, {5000, 1000}, {0, 1000}, {2000, 1000}, {4000, 1000},
	};
	unsigned holes[3] = {3, 4, 5};
	do {
		unsigned order[6] = {0, 1, 2, holes[0], holes[1], holes[2]};
		reass_run(segs, order, 6, 6000);
	} while (next_perm(holes, 3) && !test_failed());
}

TEST(stream_reass_every_arrival_order_of_overlapping_segments)
{
	/* Overlapping retransmissions and duplicates in every order: each segment is ACKed at
	 * once with the in-order prefix, and the bytes come out once, exactly. */
	static const struct seg_spec segs[] = {
		{0, 700}, {500, 1000}, {1400, 1600}, {2000, 500}, {2900, 1100}, {3999, 1},
	};
	unsigned order[6] = {0, 1, 2, 3, 4, 5};
	unsigned runs = 0;
	do {
		reass_run(segs, order, 6, 4000);
		runs++;
	} while (next_perm(order, 6) && !test_failed());
	CHECK(test_failed() || runs == 720);
}

TEST(stream_reass_segment_covering_several_ranges)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, 0, 1000, 500);
	pdata(p, 0, 2000, 500);
	pdata(p, 0, 3000, 500);
	for (int i = 0; i < 3; i++)
		EXPECT_ACK(p, 0, W);
	/* 800-3800: over all three ranges and the holes between them, still out of order. */
	pdata(p, 0, 800, 3000);
	EXPECT_ACK(p, 0, W);
	pdata(p, 0, 0, 800);
	EXPECT_ACK(p, 3800, W);
	/* In order and over everything held: the old part is trimmed. */
	pdata(p, 0, 0, 4000);
	EXPECT_ACK(p, 4000, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 10000), 4000);
	CHECK_EQ(info(p).bytes_received, 4000);
	peer_free(p);
}

TEST(stream_reass_ninth_range_is_refused)
{
	/* Ranges i = [200i+100, 200i+200): eight are kept, the ninth is refused (counted in
	 * tcp_ofo_drops) but still draws its duplicate ACK. A segment that only extends a held
	 * range is taken; one that joins two ranges makes room for another. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	for (uint32_t i = 0; i < 8; i++) {
		pdata(p, 0, 200 * i + 100, 100);
		EXPECT_ACK(p, 0, W);
	}
	CHECK_EQ(stats(p)->tcp_ofo_queued, 8);
	pdata(p, 0, 1700, 100);
	EXPECT_ACK(p, 0, W);
	CHECK_EQ(stats(p)->tcp_ofo_drops, 1);
	CHECK_EQ(stats(p)->tcp_ofo_queued, 8);
	pdata(p, 0, 1600, 50); /* extends range 7 */
	EXPECT_ACK(p, 0, W);
	CHECK_EQ(stats(p)->tcp_ofo_drops, 1);
	CHECK_EQ(stats(p)->tcp_ofo_queued, 9);
	pdata(p, 0, 200, 100); /* joins ranges 0 and 1: seven ranges */
	EXPECT_ACK(p, 0, W);
	pdata(p, 0, 1700, 100); /* now it fits */
	EXPECT_ACK(p, 0, W);
	CHECK_EQ(stats(p)->tcp_ofo_drops, 1);
	/* Fill the remaining holes from the left. */
	pdata(p, 0, 0, 100);
	EXPECT_ACK(p, 400, W);
	for (uint32_t i = 2; i < 8; i++) {
		pdata(p, 0, 200 * i, 100);
		EXPECT_ACK(p, i == 7 ? 1650 : 200 * i + 200, W);
	}
	pdata(p, 0, 1650, 50);
	EXPECT_ACK(p, 1800, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 5000), 1800);
	peer_free(p);
}

TEST(stream_reass_refused_range_is_taken_when_retransmitted)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	for (uint32_t i = 0; i < 9; i++) {
		pdata(p, 0, 200 * i + 100, 100);
		EXPECT_ACK(p, 0, W);
	}
	CHECK_EQ(stats(p)->tcp_ofo_drops, 1);
	/* Every hole up to the refused range: in order to 1600 only. */
	for (uint32_t i = 0; i < 8; i++) {
		pdata(p, 0, 200 * i, 100);
		EXPECT_ACK(p, 200 * i + 200, W);
	}
	pdata(p, 0, 1600, 200); /* the hole and the refused range, again */
	EXPECT_ACK(p, 1800, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 5000), 1800);
	peer_free(p);
}

TEST(stream_reass_fin_out_of_order_with_data)
{
	/* The FIN rides on out-of-order data: it waits with it, and when the hole fills the
	 * connection moves to CLOSE_WAIT and the hole-filling segment is ACKed at once,
	 * FIN included. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, FIN | PSH, 1000, 1000);
	EXPECT_ACK(p, 0, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_recv(p->st, p->fd, (uint8_t[8]){0}, 8, 0), -EAGAIN);
	CHECK_EQ(tern_sock_events(p->st, p->fd) & (TERN_EV_IN | TERN_EV_RDHUP), 0);
	pdata(p, 0, 0, 1000);
	EXPECT_ACK(p, 2001, W);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_RDHUP);
	CHECK_EQ(app_recv(p, 0, 5000), 2000);
	CHECK_EQ(app_recv(p, 2000, 5000), 0);
	peer_free(p);
}

TEST(stream_reass_fin_out_of_order_then_hole_across_two_ranges)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, FIN, 3000, 500);
	EXPECT_ACK(p, 0, W);
	pdata(p, 0, 1000, 1000);
	EXPECT_ACK(p, 0, W);
	pdata(p, 0, 0, 1000);
	EXPECT_ACK(p, 2000, W); /* the second hole is still open: no FIN yet */
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	pdata(p, 0, 2000, 1000);
	EXPECT_ACK(p, 3501, W);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK_EQ(app_recv(p, 0, 5000), 3500);
	CHECK_EQ(app_recv(p, 3500, 5000), 0);
	peer_free(p);
}

TEST(stream_reass_bare_fin_out_of_order_hole_fill_acked_at_once)
{
	/* RFC 5681 §4.2 and Linux's tcp_data_queue() (ICSK_ACK_NOW once the out-of-order
	 * queue empties): a FIN without data held out of order is part of that queue; the
	 * segment that fills the hole before it is ACKed at once, not after the 40 ms a
	 * delayed ACK would wait. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | FIN, pseq(p, 500), p->rcv_nxt, p->win, NULL, 0, NULL);
	EXPECT_ACK(p, 0, W);
	/* A window change keeps the segment off the header-prediction path (see the test
	 * above for what happens there); 500 bytes keep it under one full segment. */
	uint8_t buf[500];
	fill_pat(buf, 0, sizeof(buf));
	peer_inject(p, ACK, pseq(p, 0), p->rcv_nxt, p->win - 1, buf, sizeof(buf), NULL);
	EXPECT_ACK(p, 501, W);
	CHECK_EQ(p->last_t, p->now);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_free(p);
}

TEST(stream_reass_bare_fin_out_of_order_is_processed_when_hole_fills)
{
	/* A FIN without data, held out of order (ring->ooo_fin), must be processed when the
	 * hole before it fills. The hole-filling segment here is a plain in-order ACK segment,
	 * the kind header prediction takes, which must give way to the full machine while a
	 * FIN is held (else the FIN waits for the peer to send it again). */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | FIN, pseq(p, 1000), p->rcv_nxt, p->win, NULL, 0, NULL);
	EXPECT_ACK(p, 0, W);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	pdata(p, 0, 0, 1000);
	REQUIRE(next_seg_by(p, p->now + 200 * MS));
	EXPECT_ACK(p, 1001, W);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK_EQ(app_recv(p, 0, 5000), 1000);
	CHECK_EQ(app_recv(p, 1000, 5000), 0);
	peer_free(p);
}

TEST(stream_reass_bare_fin_out_of_order_slow_path_hole_fill)
{
	/* The same with the hole filled by a segment header prediction does not take (its
	 * window differs): FIN processed, CLOSE_WAIT. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | FIN, pseq(p, 1000), p->rcv_nxt, p->win, NULL, 0, NULL);
	EXPECT_ACK(p, 0, W);
	uint8_t buf[1000];
	fill_pat(buf, 0, sizeof(buf));
	peer_inject(p, ACK | PSH, pseq(p, 0), p->rcv_nxt, p->win - 1, buf, sizeof(buf), NULL);
	REQUIRE(next_seg_by(p, p->now + 200 * MS));
	EXPECT_ACK(p, 1001, W);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK_EQ(app_recv(p, 0, 5000), 1000);
	CHECK_EQ(app_recv(p, 1000, 5000), 0);
	peer_free(p);
}

TEST(stream_reass_in_order_data_beyond_window_is_trimmed)
{
	/* Receive buffer 4000: window 2920. A 4000-byte segment: 2920 bytes are taken, the
	 * rest dropped (counted); the ACK says 2920 with a window now shut. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 4000), 2920);
	pdata(p, PSH, 0, 4000);
	EXPECT_ACK(p, 2920, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_rcvbuf_drops, 1);
	CHECK_EQ(info(p).rcv_queue, 2920);
	CHECK_EQ(app_recv(p, 0, 5000), 2920);
	EXPECT_ACK(p, 2920, 2920); /* the window update */
	pdata(p, PSH, 2920, 1080);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, 4000, 2920); /* the right edge stays at 2920 + 2920 */
	CHECK_EQ(app_recv(p, 2920, 5000), 1080);
	peer_free(p);
}

TEST(stream_reass_out_of_order_data_beyond_window_is_trimmed)
{
	/* Receive buffer 8760: window 8760. Out-of-order bytes 8000-9000 keep 8000-8760 only;
	 * when 0-8000 arrives, everything to the window's edge is in. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 8760), 8760);
	pdata(p, 0, 8000, 1000);
	EXPECT_ACK(p, 0, 8760);
	CHECK_EQ(stats(p)->tcp_rcvbuf_drops, 1);
	pdata(p, 0, 0, 8000);
	EXPECT_ACK(p, 8760, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 10000), 8760);
	peer_free(p);
}

TEST(stream_reass_segment_past_right_edge_is_not_kept)
{
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 8760), 8760);
	pdata(p, 0, 8761, 100); /* starts past RCV.NXT + RCV.WND */
	EXPECT_ACK(p, 0, 8760);
	CHECK_EQ(stats(p)->tcp_ofo_queued, 0);
	CHECK_EQ(stats(p)->tcp_out_of_window, 1);
	pdata(p, 0, 0, 100);
	EXPECT_ACK(p, 100, 8660); /* the right edge stays where it was */
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 10000), 100);
	peer_free(p);
}

/* ========================================================================================== */
/* 4. Delayed ACK, Linux's model (tcp_event_data_recv, __tcp_ack_snd_check,                    */
/*    tcp_send_delayed_ack, tcp_delack_timer_handler): quick ACKs first, min(rcv_wnd /        */
/*    (2 rcv_mss), 16) of them; then an ACK for every second full segment (more than rcv_mss */
/*    unacknowledged) and otherwise after ato, which starts at delack_min and doubles when  */
/*    the timer fires (at most delack_max and the RTO; capped by max(SRTT, 40 ms) when used). */
/*    Quick ACKs end while less than half the receive buffer is free (__tcp_select_window).   */
/* ========================================================================================== */

/* Passive open, then 16 one-byte segments to spend the quick ACKs; returns the next offset. */
static uint32_t spend_quick_acks(struct peer *p)
{
	uint32_t k = 0;
	for (int i = 0; i < 16; i++, k++) {
		pdata(p, PSH, k, 1);
		EXPECT_ACK(p, k + 1, W);
	}
	return k;
}

TEST(stream_delack_sixteen_quick_acks_then_delayed)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	PEER_EXPECT_NONE(p);
	uint64_t t = p->now;
	pdata(p, PSH, k, 100);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_ACK(p, k + 100, W);
	CHECK_EQ(p->last_t, t + 40 * MS);
	CHECK_EQ(stats(p)->tcp_delayed_acks, 1);
	peer_free(p);
}

TEST(stream_delack_quick_ack_count_follows_window)
{
	/* Receive buffer 8760 (window 8760) and full-sized segments: 8760 / (2 * 1460) = 3
	 * quick ACKs. The windows show the buffer filling (right edge fixed at 8760); the
	 * fourth segment's ACK is delayed, and the fifth and sixth do not force it because
	 * the window would not keep its edge (Linux's __tcp_ack_snd_check). */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 10000), 8760);
	pdata(p, 0, 0, MSS);
	EXPECT_ACK(p, 1460, 7300);
	pdata(p, 0, 1460, MSS);
	EXPECT_ACK(p, 2920, 5840);
	pdata(p, 0, 2920, MSS);
	EXPECT_ACK(p, 4380, 4380);
	uint64_t t = p->now;
	pdata(p, 0, 4380, MSS);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, 5840, MSS);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, 7300, MSS);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_ACK(p, 8760, 0);
	CHECK_EQ(p->last_t, t + 40 * MS);
	peer_free(p);
}

TEST(stream_delack_one_quick_ack_when_window_allows_one)
{
	/* Linux's tcp_incr_quickack(): quickacks = rcv_wnd / (2 * rcv_mss), 2 only when that
	 * is 0. Receive buffer 4096: window 2920, a full segment makes it 1 quick ACK; the
	 * next small segment waits for the delayed-ACK timer. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 4096), 2920);
	pdata(p, 0, 0, MSS);
	EXPECT_ACK(p, 1460, 1460);
	uint64_t t = p->now;
	pdata(p, PSH, 1460, 100);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_ACK(p, 1560, 1460);
	CHECK_EQ(p->last_t, t + 40 * MS);
	peer_free(p);
}

TEST(stream_delack_no_quick_acks_with_buffer_half_full)
{
	/* Linux's __tcp_select_window(): with less than half the buffer free, quick-ACK mode
	 * ends. Buffer 20000 (window 18980) holding 10220 unread bytes: an old segment is ACKed
	 * at once and restarts quick ACKs (window / (2 * rcv_mss) = 3 of them), but that ACK's
	 * window computation cancels them: the next small segment's ACK is delayed. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 20000), 18980);
	for (uint32_t s = 0; s < 7; s++)
		pdata(p, 0, s * MSS, MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, 7 * MSS, PEER_ANY);
	peer_advance(p, 100 * MS);
	pdata(p, 0, 7 * MSS - 100, 100); /* old, ending at RCV.NXT */
	EXPECT_ACK(p, 7 * MSS, PEER_ANY);
	uint64_t t = p->now;
	pdata(p, PSH, 7 * MSS, 100);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_ACK(p, 7 * MSS + 100, PEER_ANY);
	CHECK_EQ(p->last_t, t + 40 * MS);
	peer_free(p);
}

TEST(stream_delack_every_second_full_segment)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	for (int pair = 0; pair < 4; pair++) {
		pdata(p, 0, k, MSS);
		PEER_EXPECT_NONE(p);
		pdata(p, 0, k + MSS, MSS);
		EXPECT_ACK(p, k + 2 * MSS, W);
		PEER_EXPECT_NONE(p);
		k += 2 * MSS;
	}
	/* An odd one out waits for the timer. */
	uint64_t t = p->now;
	pdata(p, 0, k, MSS);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_ACK(p, k + MSS, W);
	CHECK_EQ(p->last_t, t + 40 * MS);
	peer_free(p);
}

TEST(stream_delack_rcv_mss_starts_at_536_and_grows)
{
	/* rcv_mss starts at min(advmss, mss, 536) = 536: 300 + 300 bytes is more than one
	 * "full" segment (ACK now), 300 + 200 is not. A 1000-byte segment raises rcv_mss to
	 * 1000: then 1000 bytes unacknowledged wait, 1001 do not. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, 0, k, 300);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, k + 300, 300);
	EXPECT_ACK(p, k + 600, W);
	k += 600;
	pdata(p, 0, k, 300);
	pdata(p, 0, k + 300, 200);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, k + 500, W);
	k += 500;
	pdata(p, 0, k, 1000);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, k + 1000, W);
	k += 1000;
	pdata(p, 0, k, 600);
	pdata(p, 0, k + 600, 400);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, k + 1000, 1);
	EXPECT_ACK(p, k + 1001, W);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_delack_rcv_mss_starts_at_small_peer_mss)
{
	/* The peer's MSS is 300: rcv_mss starts at 300, so two 200-byte segments are more than
	 * a full one. */
	struct peer *p = peer_new(NULL, 1);
	p->mss = 300;
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, 0, k, 200);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, k + 200, 200);
	EXPECT_ACK(p, k + 400, W);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

/* After the quick ACKs: one small segment every gap, each ACK delayed; the delays seen. */
static void delack_series(struct peer *p, uint64_t gap, const uint32_t *want_ms, int n)
{
	uint32_t k = spend_quick_acks(p);
	uint64_t t = p->now;
	for (int i = 0; i < n; i++) {
		if (i)
			peer_advance_to(p, t + gap);
		t = p->now;
		pdata(p, PSH, k, 10);
		k += 10;
		PEER_EXPECT_NONE(p);
		REQUIRE(next_seg_by(p, t + 2 * SEC));
		EXPECT_ACK(p, k, W);
		CHECK_EQ((p->last_t - t) / MS, want_ms[i]);
	}
	CHECK_EQ(stats(p)->tcp_delayed_acks, (uint64_t)n);
}

TEST(stream_delack_ato_doubles_to_delack_max)
{
	/* SRTT 300 ms, RTO 900 ms. Each time the timer fires without pingpong ato doubles:
	 * 40, 80, 160, then 200 (delack_max) for good. Segments 500 ms apart leave ato alone
	 * (the gap is above ato and below the RTO). */
	static const uint32_t want[] = {40, 80, 160, 200, 200};
	struct peer *p = peer_new(NULL, 1);
	open_passive_rtt(p, 300 * MS);
	delack_series(p, 500 * MS, want, 5);
	peer_free(p);
}

TEST(stream_delack_ato_capped_by_srtt)
{
	/* SRTT 100 ms: a grown ato is used at most max(SRTT, 40 ms) = 100 ms. */
	static const uint32_t want[] = {40, 80, 100, 100};
	struct peer *p = peer_new(NULL, 1);
	open_passive_rtt(p, 100 * MS);
	delack_series(p, 250 * MS, want, 4);
	peer_free(p);
}

TEST(stream_delack_tiny_srtt_keeps_40ms)
{
	static const uint32_t want[] = {40, 40, 40, 40};
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	delack_series(p, 100 * MS, want, 4);
	peer_free(p);
}

TEST(stream_delack_delack_min_setting)
{
	static const uint32_t want[] = {100};
	struct peer *p = peer_with("delack_min", "100ms");
	peer_open_passive(p);
	delack_series(p, 0, want, 1);
	peer_free(p);
}

TEST(stream_delack_long_silence_restarts_quick_acks)
{
	/* Linux's tcp_event_data_recv(): data after a silence longer than the RTO starts
	 * quick-ACK mode again. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, PSH, k, 10);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 5 * SEC);
	EXPECT_ACK(p, k + 10, W);
	pdata(p, PSH, k + 10, 10);
	EXPECT_ACK(p, k + 20, W);
	pdata(p, PSH, k + 20, 10);
	EXPECT_ACK(p, k + 30, W);
	peer_free(p);
}

TEST(stream_delack_immediate_while_out_of_order_data_is_held)
{
	/* After the quick ACKs: in-order data while a hole remains is ACKed at once, and so is
	 * the small segment that fills the hole (less than a full segment unacknowledged, so
	 * nothing else would send it now); afterwards ACKs are delayed again. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, 0, k + 200, 100);
	EXPECT_ACK(p, k, W);
	pdata(p, 0, k, 100); /* in order, but a hole remains: ACK now */
	EXPECT_ACK(p, k + 100, W);
	pdata(p, 0, k + 100, 100); /* fills the hole */
	EXPECT_ACK(p, k + 300, W);
	pdata(p, 0, k + 300, 100); /* nothing held any more: delayed */
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, k + 400, W);
	peer_free(p);
}

TEST(stream_delack_old_segment_acked_at_once)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, 0, 0, 10);
	EXPECT_ACK(p, k, W);
	PEER_EXPECT_NONE(p);
	pdata(p, 0, k - 1, 1);
	EXPECT_ACK(p, k, W);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_delack_ack_rides_on_a_quick_reply)
{
	/* A request whose ACK is delayed, and a reply written within ato: the reply carries
	 * the ACK, and no pure ACK follows. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint32_t k = spend_quick_acks(p);
	pdata(p, PSH, k, 20);
	p->snd_nxt = pseq(p, k + 20);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 10 * MS);
	CHECK_EQ(app_recv(p, 0, 100), k + 20);
	CHECK_EQ(app_send(p, 0, 30, 0), 30);
	EXPECT_DATA(p, ACK | PSH, 0, 30);
	pack(p, 30, PEER_WIN);
	peer_advance(p, 1 * SEC);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_delayed_acks, 0);
	peer_free(p);
}

TEST(stream_delack_fin_ack_delayed_then_rides_on_our_fin)
{
	/* Linux's pingpong after a FIN: the ACK waits 40 ms; a close within that time sends a
	 * FIN that carries it (three segments to close instead of four). */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, FIN | PSH, 0, 10);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_advance(p, 39 * MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 0, 100), 10);
	CHECK_EQ(tern_shutdown(p->st, p->fd, TERN_SHUT_WR), 0);
	PEER_EXPECT(p, FIN | ACK, sseq(p, 0), pseq(p, 11), W, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_delack_tcp_info_reports_rcv_mss_and_ato)
{
	/* Linux's tcp_get_info(): tcpi_rcv_mss is icsk_ack.rcv_mss (the receiver's estimate of
	 * the peer's segment size, 536 until data shows more) and tcpi_ato the delayed-ACK
	 * timeout. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(info(p).rcv_mss, 536);
	pdata(p, PSH, 0, 1000);
	CHECK_EQ(info(p).rcv_mss, 1000);
	CHECK_EQ(info(p).ato_us, 40000);
	peer_free(p);
}

/* ========================================================================================== */
/* 5. The receive window: RFC 9293 §3.8.6.2.2 (receiver SWS avoidance; do not shrink), Linux's */
/*    __tcp_select_window() (free space rounded down to MSS, kept while within one MSS, zero  */
/*    while under half the buffer is free and the space is under an MSS or 1/16 of the buffer)*/
/*    and tcp_cleanup_rbuf() (a window update after reading when the window at least doubles).*/
/* ========================================================================================== */

TEST(stream_window_fills_and_reopens_in_whole_segments)
{
	/* Buffer 10000: window 8760 (6 segments). After 8760 bytes the free 1240 bytes are
	 * less than an MSS: window 0. Reads then announce the window only when it is worth it
	 * (at least twice the one on offer, and that one small). */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 10000), 8760);
	for (uint32_t s = 0; s < 6; s++)
		pdata(p, 0, s * MSS, MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, 8760, 0);
	uint32_t r = 0;
	static const struct {
		uint32_t n;
		int32_t win; /* window update expected, -1 none */
	} steps[] = {
		{100, -1},   /* free 1340 < MSS: still 0 */
		{1000, 1460}, /* free 2340: 1460 >= 2 * 0 */
		{500, -1},   /* free 2840: the offer stays 1460 (within one MSS) */
		{200, 2920}, /* free 3040: 2920 >= 2 * 1460 */
		{1500, -1},  /* free 4540: 4380 < 2 * 2920 */
		{2000, 5840}, /* free 6540: 5840 >= 2 * 2920 */
		{3460, -1},  /* window 5840 is not small: 2 * 5840 > 10000 */
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CHECK_EQ(app_recv(p, r, steps[i].n), steps[i].n);
		r += steps[i].n;
		if (steps[i].win >= 0)
			EXPECT_ACK(p, 8760, steps[i].win);
		PEER_EXPECT_NONE(p);
	}
	CHECK_EQ(r, 8760);
	CHECK_EQ(info(p).rcv_queue, 0);
	peer_free(p);
}

TEST(stream_window_zero_below_one_sixteenth_of_buffer)
{
	/* Buffer 60000 (window 59860, 41 segments): with the buffer full, reading 3000 bytes
	 * frees 3140, more than an MSS but less than 60000/16 = 3750: the window stays 0 (no
	 * update). 700 more make 3840 free: window 2920, announced. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 60000), 59860);
	pdata(p, PSH, 0, 59860);
	EXPECT_ACK(p, 59860, 0);
	CHECK_EQ(app_recv(p, 0, 3000), 3000);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(app_recv(p, 3000, 700), 700);
	EXPECT_ACK(p, 59860, 2920);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_window_right_edge_never_moves_left)
{
	/* The receive buffer shrinks under an offer of 64240 (SO_RCVBUF 8000): the window
	 * offered afterwards keeps the right edge where it was promised. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_RCVBUF, 8000), 0);
	pdata(p, 0, 0, 100);
	EXPECT_ACK(p, 100, 64140);
	pdata(p, 0, 100, MSS);
	EXPECT_ACK(p, 1560, 62680);
	CHECK_EQ(app_recv(p, 0, 1560), 1560);
	PEER_EXPECT_NONE(p); /* 62680 is not a small window: no update */
	pdata(p, 0, 1560, MSS);
	EXPECT_ACK(p, 3020, 61220);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

/* A tiny deterministic random source for scripted tests. */
static uint32_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

TEST(stream_window_properties_under_random_reads)
{
	/* Buffer 6000 (window 5840). The peer fills whatever window it was last offered, in
	 * random pieces; the application reads random amounts at random times. Every ACK:
	 * the right edge never moves left; a window that moves it right is at least one MSS
	 * (SWS avoidance); the window never exceeds the free buffer unless it is what remains
	 * of an earlier offer. And the bytes come out in order. */
	uint64_t seed = test_seed(5);
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 6000), 5840);
	uint32_t sent = 0, rd = 0, edge = 5840, ack = 0, last_win = 5840;
	for (int step = 0; step < 3000 && !test_failed(); step++) {
		uint32_t a = lcg(&seed) % 10;
		if (a < 5 && edge > sent) {
			uint32_t room = edge - sent;
			uint32_t n = 1 + lcg(&seed) % (room < 2000 ? room : 2000);
			pdata(p, 0, sent, n);
			sent += n;
		} else if (a < 8) {
			uint32_t n = 1 + lcg(&seed) % 3000;
			long got = app_recv(p, rd, n);
			if (got > 0)
				rd += (uint32_t)got;
		} else {
			peer_advance(p, (1 + lcg(&seed) % 60) * MS);
		}
		struct tern_tcp_seg s;
		while (peer_pop(p, &s)) {
			REQUIRE(s.h.flags == ACK);
			uint32_t a_k = s.h.ack - pseq(p, 0);
			uint32_t e = a_k + s.h.win;
			CHECK(a_k >= ack && a_k <= sent);
			CHECK(e >= edge);
			uint32_t unread = info(p).rcv_queue;
			/* The edge moves right by at least an MSS, or because the last offer
			 * is kept while within one MSS of the free space (Linux). */
			if (e > edge)
				CHECK(s.h.win >= MSS || s.h.win == last_win);
			last_win = s.h.win;
			if (s.h.win > 6000 - unread)
				CHECK_EQ(e, edge);
			if (test_failed())
				test_fail(__FILE__, __LINE__, "step %d: ack %u win %u, edge was %u, unread %u",
					  step, a_k, s.h.win, edge, unread);
			edge = e;
			ack = a_k;
		}
	}
	CHECK(rd > 100000);
	peer_free(p);
}

/* ========================================================================================== */
/* 6. Sending: Nagle in Minshall's form (RFC 896; Linux tcp_nagle_check/tcp_minshall_check),  */
/*    TCP_NODELAY, TCP_CORK, sender SWS avoidance (RFC 9293 §3.8.6.2.1: a window under one     */
/*    segment is used only if at least half the largest offered), PSH on the last byte,      */
/*    segments of at most one MSS.                                                             */
/* ========================================================================================== */

TEST(stream_nagle_one_small_segment_in_flight)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(app_send(p, 0, 10, 0), 10);
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	CHECK_EQ(app_send(p, 10, 10, 0), 10);
	CHECK_EQ(app_send(p, 20, 10, 0), 10);
	PEER_EXPECT_NONE(p); /* a small segment is unacknowledged: wait */
	pack(p, 10, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, 10, 20); /* both writes in one segment */
	PEER_EXPECT_NONE(p);
	/* Full segments are never held; the small tail is, while [10, 30) is unacknowledged. */
	CHECK_EQ(app_send(p, 30, 3000, 0), 3000);
	EXPECT_DATA(p, ACK, 30, MSS);
	EXPECT_DATA(p, ACK, 1490, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 30, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, 2950, 80);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_nagle_small_segment_acked_releases_next)
{
	/* Minshall: what matters is whether the last small segment is acknowledged, not
	 * whether everything is. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(app_send(p, 0, MSS + 10, 0), MSS + 10);
	EXPECT_DATA(p, ACK, 0, MSS);
	EXPECT_DATA(p, ACK | PSH, MSS, 10);
	CHECK_EQ(app_send(p, MSS + 10, 5, 0), 5);
	PEER_EXPECT_NONE(p);
	pack(p, MSS, PEER_WIN); /* the full one: the small one is still out */
	PEER_EXPECT_NONE(p);
	pack(p, MSS + 10, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, MSS + 10, 5);
	peer_free(p);
}

TEST(stream_nodelay_sends_at_once_and_pushes_held_data)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_NODELAY), 0);
	CHECK_EQ(app_send(p, 0, 10, 0), 10);
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	CHECK_EQ(app_send(p, 10, 10, 0), 10);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, 1), 0);
	EXPECT_DATA(p, ACK | PSH, 10, 10); /* setting it pushes what Nagle held */
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_NODELAY), 1);
	CHECK_EQ(app_send(p, 20, 7, 0), 7);
	EXPECT_DATA(p, ACK | PSH, 20, 7);
	CHECK_EQ(app_send(p, 27, 7, 0), 7);
	EXPECT_DATA(p, ACK | PSH, 27, 7);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_cork_holds_partial_segments)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_CORK, 1), 0);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_CORK), 1);
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	PEER_EXPECT_NONE(p); /* even with nothing in flight */
	CHECK_EQ(app_send(p, 100, MSS, 0), MSS);
	EXPECT_DATA(p, ACK, 0, MSS); /* a full segment goes */
	PEER_EXPECT_NONE(p);
	pack(p, MSS, PEER_WIN);
	peer_advance(p, 150 * MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_CORK, 0), 0);
	EXPECT_DATA(p, ACK | PSH, MSS, 100); /* uncorking sends the rest */
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_cork_ceiling_200ms)
{
	/* tcp(7): "there is a 200 millisecond ceiling on the time for which output is corked
	 * by TCP_CORK" - Linux's probe timer (tcp_check_probe_timer, armed when nothing is in
	 * flight and data waits; tcp_write_wakeup sends it) flushes corked data after
	 * max(RTO, 200 ms). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_CORK, 1), 0);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	REQUIRE(next_seg_by(p, t + 1 * SEC));
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	CHECK(p->last_t <= t + 210 * MS);
	peer_free(p);
}

TEST(stream_segments_at_most_peer_mss_with_psh_on_last)
{
	/* No MSS option from the peer: 536 (RFC 9293 §3.7.1). 2000 bytes: 536, 536, 536,
	 * 392, PSH on the last. */
	struct peer *p = peer_new(NULL, 1);
	p->mss = 0;
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(app_send(p, 0, 2000, 0), 2000);
	EXPECT_DATA(p, ACK, 0, 536);
	EXPECT_DATA(p, ACK, 536, 536);
	EXPECT_DATA(p, ACK, 1072, 536);
	EXPECT_DATA(p, ACK | PSH, 1608, 392);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_mss, 536);
	peer_free(p);
}

TEST(stream_sender_sws_small_window_waits_unless_half_of_max)
{
	/* The peer's SYN offers 2000 (the largest window it will offer). Of 3000 bytes, one
	 * segment fits; the 540 left of the window is under half of 2000: wait. An ACK with
	 * window 1000 (exactly half) lets 1000 bytes go. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt_win(p, 10 * MS, 2000);
	CHECK_EQ(app_send(p, 0, 3000, 0), 3000);
	EXPECT_DATA(p, ACK, 0, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, MSS, 1000);
	EXPECT_DATA(p, ACK, MSS, 1000);
	PEER_EXPECT_NONE(p);
	pack(p, MSS + 1000, 2000);
	EXPECT_DATA(p, ACK | PSH, MSS + 1000, 540); /* the end of the data: not silly */
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_sender_sws_window_under_half_waits_for_persist_timer)
{
	/* Window 900 < 2000 / 2 and nothing in flight: nothing goes until the persist timer
	 * (max(RTO, 200 ms)), which sends the 900 bytes the window allows
	 * rather than a probe (Linux's tcp_write_wakeup). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt_win(p, 10 * MS, 2000);
	CHECK_EQ(info(p).rto_us, 210000);
	CHECK_EQ(app_send(p, 0, 3000, 0), 3000);
	EXPECT_DATA(p, ACK, 0, MSS);
	pack(p, MSS, 900);
	PEER_EXPECT_NONE(p);
	uint64_t t = p->now;
	uint64_t rto = info(p).rto_us; /* 209 ms: that ACK was an RTT sample of ~0 */
	CHECK_EQ(rto, 209000);
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK, MSS, 900);
	CHECK_EQ(p->last_t, t + rto);
	PEER_EXPECT_NONE(p);
	/* Data, not a probe: tcp_window_probes counts only data-less probes (TCPWinProbe). */
	CHECK_EQ(stats(p)->tcp_window_probes, 0);
	/* The data is in flight now: the retransmission timer watches it. */
	REQUIRE(next_seg_by(p, t + 10 * SEC));
	EXPECT_DATA(p, ACK, MSS, 900);
	CHECK_EQ(p->last_t, t + 2 * rto);
	CHECK_EQ(stats(p)->tcp_rtos, 1);
	peer_free(p);
}

/* ========================================================================================== */
/* 7. Flow control and the persist timer: RFC 9293 §3.8.6.1 (never beyond the window; probe a */
/*    zero window), RFC 1122 §4.2.2.17 (probe for as long as the peer answers), Linux's       */
/*    tcp_probe_timer()/tcp_probe0_when() (first after max(RTO, 200 ms), then doubling up to  */
/*    rto_max; retries2 unanswered probes abort) and tcp_write_wakeup() (data if the window   */
/*    has room), tcp_retransmit_timer() (a zero window turns retransmissions into probes) and */
/*    tcp_oow_rate_limited() (answers to out-of-window ACKs, one per 500 ms).                  */
/* ========================================================================================== */

TEST(stream_flow_never_beyond_peer_window)
{
	/* Window 3000: two segments, then the 80 bytes left of the window wait (less than
	 * half of the largest window); each ACK moves the window and lets exactly what fits
	 * go. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt_win(p, 10 * MS, 3000);
	CHECK_EQ(app_send(p, 0, 10000, 0), 10000);
	EXPECT_DATA(p, ACK, 0, MSS);
	EXPECT_DATA(p, ACK, 1460, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 1460, 3000);
	EXPECT_DATA(p, ACK, 2920, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 4380, 3000);
	EXPECT_DATA(p, ACK, 4380, MSS);
	EXPECT_DATA(p, ACK, 5840, MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 7300, 3000);
	EXPECT_DATA(p, ACK, 7300, MSS);
	EXPECT_DATA(p, ACK | PSH, 8760, 1240);
	PEER_EXPECT_NONE(p);
	pack(p, 10000, 3000);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_queue, 0);
	peer_free(p);
}

/* Our data [0, MSS) acknowledged with window 0, then n more bytes queued: the persist timer
 * is armed. Returns max(RTO, 200 ms) in microseconds. */
static uint64_t zero_window_setup(struct peer *p, uint32_t n)
{
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, MSS, 0), MSS);
	EXPECT_DATA(p, ACK | PSH, 0, MSS);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	p->rcv_nxt = sseq(p, MSS);
	CHECK_EQ(app_send(p, MSS, n, 0), n);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_wnd, 0);
	uint64_t rto = info(p).rto_us;
	return rto > 200000 ? rto : 200000;
}

#define EXPECT_PROBE(p) PEER_EXPECT((p), ACK, sseq((p), MSS) - 1, (p)->snd_nxt, W, 0)

TEST(stream_persist_probes_double_and_answers_reset_count)
{
	struct peer *p = peer_new(NULL, 1);
	uint64_t base = zero_window_setup(p, 500);
	CHECK_EQ(base, 300000); /* RTO 300 ms: samples 100 ms, 100 ms */
	uint64_t t = p->now;
	static const uint64_t at[] = {1, 3, 7, 15, 31};
	for (size_t i = 0; i < 5; i++) {
		REQUIRE(next_seg_by(p, t + 60 * SEC));
		EXPECT_PROBE(p);
		CHECK_EQ(p->last_t, t + at[i] * base);
		PEER_EXPECT_NONE(p);
		CHECK_EQ(info(p).probes, 1);
		pack(p, MSS, 0); /* the answer: still shut */
		PEER_EXPECT_NONE(p);
		CHECK_EQ(info(p).probes, 0);
	}
	CHECK_EQ(stats(p)->tcp_window_probes, 5);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	/* The window opens: the data goes at once. */
	peer_advance(p, 1 * SEC);
	pack(p, MSS, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, MSS, 500);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_persist_answer_restarts_the_wait)
{
	/* Linux's tcp_ack_probe(): an answer that leaves the window shut restarts the wait for
	 * the next probe from now, with the backoff reached (first probe at 300 ms, answered at
	 * 400 ms: the next at 400 + 600 ms). */
	struct peer *p = peer_new(NULL, 1);
	uint64_t base = zero_window_setup(p, 10);
	uint64_t t = p->now;
	REQUIRE(next_seg_by(p, t + 60 * SEC));
	EXPECT_PROBE(p);
	CHECK_EQ(p->last_t, t + base);
	peer_advance_to(p, t + base + 100 * MS);
	pack(p, MSS, 0);
	REQUIRE(next_seg_by(p, t + 60 * SEC));
	EXPECT_PROBE(p);
	CHECK_EQ(p->last_t, t + base + 100 * MS + 2 * base);
	peer_free(p);
}

TEST(stream_persist_interval_capped_at_rto_max)
{
	struct peer *p = peer_with("rto_max", "1s");
	uint64_t base = zero_window_setup(p, 10);
	uint64_t t = p->now;
	static const uint64_t at[] = {300, 900, 1900, 2900, 3900};
	CHECK_EQ(base, 300000);
	for (size_t i = 0; i < 5; i++) {
		REQUIRE(next_seg_by(p, t + 60 * SEC));
		EXPECT_PROBE(p);
		CHECK_EQ(p->last_t, t + at[i] * MS);
		pack(p, MSS, 0);
	}
	peer_free(p);
}

TEST(stream_persist_silent_peer_aborts_after_retries2_probes)
{
	struct peer *p = peer_with("retries2", "3");
	uint64_t base = zero_window_setup(p, 10);
	uint64_t t = p->now;
	for (uint64_t i = 1; i <= 3; i++) {
		REQUIRE(next_seg_by(p, t + 60 * SEC));
		EXPECT_PROBE(p);
		CHECK_EQ(p->last_t, t + ((1u << i) - 1) * base);
	}
	peer_advance_to(p, t + 15 * base - 1);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_advance_to(p, t + 15 * base);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	PEER_EXPECT_NONE(p); /* no RST */
	peer_free(p);
}

TEST(stream_persist_answering_peer_is_never_given_up)
{
	struct peer *p = peer_with("retries2", "3");
	zero_window_setup(p, 10);
	for (int i = 0; i < 12; i++) {
		REQUIRE(next_seg_by(p, p->now + 600 * SEC));
		EXPECT_PROBE(p);
		pack(p, MSS, 0);
	}
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_window_probes, 12);
	peer_free(p);
}

TEST(stream_persist_user_timeout_aborts)
{
	/* TCP_USER_TIMEOUT bounds the wait for a zero window too (Linux's tcp_probe_timer()
	 * since "tcp: fix TCP_USER_TIMEOUT with zero window": abort once the probes have gone
	 * on for the user timeout; the probe timer is clamped to it). With 5 s and a silent
	 * peer the connection must be gone well before the ~15 min that retries2 probes take. */
	struct peer *p = peer_new(NULL, 1);
	zero_window_setup(p, 100);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 5000), 0);
	uint64_t t = p->now;
	peer_advance_to(p, t + 4 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_advance_to(p, t + 12 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_persist_small_window_sends_data_not_probe)
{
	/* The window opens to 100 bytes, too little to send at once (under half the largest
	 * window); when the persist timer fires, those 100 bytes go instead of a probe. */
	struct peer *p = peer_new(NULL, 1);
	uint64_t base = zero_window_setup(p, 500);
	uint64_t t = p->now;
	peer_advance(p, 50 * MS);
	pack(p, MSS, 100);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 60 * SEC));
	EXPECT_DATA(p, ACK, MSS, 100);
	CHECK_EQ(p->last_t, t + base);
	PEER_EXPECT_NONE(p);
	/* Acknowledged with the window open: the rest follows. */
	p->rcv_nxt = sseq(p, MSS + 100);
	pack(p, MSS + 100, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, MSS + 100, 400);
	peer_free(p);
}

TEST(stream_zero_window_rto_retransmits_one_byte)
{
	/* Two segments in flight; the peer acknowledges the first and shuts its window. The
	 * second is beyond the window now: its RTO sends one byte of it (a window probe), and
	 * again with backoff; a peer that keeps answering is not given up. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	EXPECT_DATA(p, ACK, 0, MSS);
	EXPECT_DATA(p, ACK | PSH, MSS, MSS);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	uint32_t rto = info(p).rto_us;
	REQUIRE(next_seg_by(p, t + 60 * SEC));
	EXPECT_DATA(p, ACK, MSS, 1);
	CHECK_EQ(p->last_t, t + 100 * MS + rto);
	PEER_EXPECT_NONE(p);
	for (int i = 0; i < 20; i++) {
		pack(p, MSS, 0);
		REQUIRE(next_seg_by(p, p->now + 600 * SEC));
		EXPECT_DATA(p, ACK, MSS, 1);
		PEER_EXPECT_NONE(p);
	}
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK(p->now - t > 925 * SEC);
	peer_free(p);
}

TEST(stream_zero_window_rto_probe_byte_is_sent_again_when_window_opens)
{
	/* The one-byte retransmission into a zero window is dropped by the receiver (no room:
	 * RFC 9293 §3.10.7.4), so when the window opens sending must resume at SND.UNA, as
	 * Linux does (tcp_enter_loss() marks everything lost and retransmission starts at the
	 * head). Resuming at SND.UNA + 1 would leave the byte at SND.UNA to three duplicate
	 * ACKs or another RTO. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	peer_discard(p);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	REQUIRE(next_seg_by(p, p->now + 60 * SEC));
	EXPECT_DATA(p, ACK, MSS, 1);
	pack(p, MSS, PEER_WIN); /* the byte was not taken; the window is open now */
	EXPECT_DATA(p, ACK | PSH, MSS, MSS);
	peer_free(p);
}

TEST(stream_zero_window_rto_silent_peer_aborts_after_rto_max)
{
	/* Linux's tcp_retransmit_timer() with a zero window: the retransmissions are probes and
	 * do not count towards retries2; a peer silent for longer than rto_max (120 s) is given
	 * up at the next RTO. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	peer_discard(p);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	uint64_t last = p->now;
	peer_advance_to(p, last + 120 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_advance_to(p, last + 400 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	struct tern_tcp_seg s;
	while (peer_pop(p, &s))
		CHECK_EQ(s.h.len, 1);
	peer_free(p);
}

TEST(stream_zero_window_rto_silent_peer_aborts_with_keepalive_on)
{
	/* The same silent peer behind a zero window, on a socket with keepalive (idle 10 s).
	 * Keepalive must not keep the connection alive: it sends nothing while data is in
	 * flight, and it must not make the peer look less silent than it is: the zero-window
	 * retransmissions still give up after rto_max of silence. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	keepalive_on(p, 10, 10, 3);
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	peer_discard(p);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	uint64_t last = p->now;
	peer_advance_to(p, last + 1000 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_discard(p);
	peer_free(p);
}

TEST(stream_zero_window_rto_user_timeout_aborts)
{
	/* Linux's tcp_rtx_probe0_timed_out(): "If user application specified a
	 * TCP_USER_TIMEOUT, it does not want win 0 packets to 'reset the timer' while
	 * retransmits are not making progress": the zero-window retransmissions end after
	 * the user timeout even though the peer answers each. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 5000), 0);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 2 * MSS, 0), 2 * MSS);
	peer_discard(p);
	peer_advance(p, 100 * MS);
	pack(p, MSS, 0);
	/* In 10 ms steps, so that the clock stops near the abort (which sends nothing). */
	while (p->now < t + 20 * SEC && tern_sock_state(p->st, p->fd) == TERN_STATE_ESTABLISHED) {
		peer_advance(p, 10 * MS);
		if (peer_pending(p)) {
			peer_discard(p);
			pack(p, MSS, 0); /* every probe answered: still shut */
		}
	}
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK(p->now <= t + 10 * SEC);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_zero_window_receiver_rate_limits_probe_answers)
{
	/* The stack's window is 0 (buffer 4000 full); the peer's probes (ACK, SEQ = RCV.NXT - 1)
	 * are out of window: answered with ACK and window 0, at most once per 500 ms. A probe
	 * carrying a byte is acceptable at RCV.NXT, not taken, and always answered. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 4000), 2920);
	pdata(p, PSH, 0, 2920);
	EXPECT_ACK(p, 2920, 0);
	peer_advance(p, 1 * SEC);
	peer_inject(p, ACK, pseq(p, 2920) - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	EXPECT_ACK(p, 2920, 0);
	peer_advance(p, 100 * MS);
	peer_inject(p, ACK, pseq(p, 2920) - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 399 * MS);
	peer_inject(p, ACK, pseq(p, 2920) - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 1 * MS);
	peer_inject(p, ACK, pseq(p, 2920) - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	EXPECT_ACK(p, 2920, 0);
	pdata(p, 0, 2920, 1);
	EXPECT_ACK(p, 2920, 0);
	pdata(p, 0, 2920, 1);
	EXPECT_ACK(p, 2920, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).rcv_queue, 2920);
	peer_free(p);
}

/* ========================================================================================== */
/* 8. Congestion control: RFC 5681 (slow start, congestion avoidance, fast retransmit, the    */
/*    duplicate-ACK definition of §2, restart after idle §4.1), RFC 3465 (byte counting,      */
/*    L = 2), RFC 6928 (IW10), RFC 3042 (limited transmit), RFC 6582 (NewReno), RFC 7661 and  */
/*    Linux's tcp_is_cwnd_limited() (cwnd grows only while it limits); cc_reno.c.             */
/* ========================================================================================== */

static void big_sndbuf(struct peer *p)
{
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_SNDBUF, 1 << 20), 0);
}

/* Pop every segment waiting: all must be data; returns how many, *end the highest stream
 * offset they reach. */
static unsigned drain_data(struct peer *p, uint32_t *end)
{
	unsigned n = 0;
	struct tern_tcp_seg s;
	while (peer_pop(p, &s)) {
		CHECK(s.h.len > 0);
		uint32_t e = s.h.seq + s.h.len - sseq(p, 0);
		if (e > *end)
			*end = e;
		n++;
	}
	return n;
}

TEST(stream_cc_initial_window_ten_segments)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	big_sndbuf(p);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.snd_cwnd, 10);
	CHECK_EQ(i.snd_ssthresh, 0x7fffffff);
	CHECK_EQ(app_send(p, 0, 20 * MSS, 0), 20 * MSS);
	for (uint32_t s = 0; s < 10; s++)
		EXPECT_DATA(p, ACK, s * MSS, MSS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).unacked, 10);
	peer_free(p);
}

TEST(stream_cc_slow_start_byte_counting_l2)
{
	/* RFC 3465 with L = 2 SMSS: an ACK of one segment grows cwnd by one, of two by two, of
	 * four still by two. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	big_sndbuf(p);
	CHECK_EQ(app_send(p, 0, 60 * MSS, 0), 60 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	pack(p, 1 * MSS, PEER_WIN); /* cwnd 11: up to 12 */
	CHECK_EQ(info(p).snd_cwnd, 11);
	CHECK_EQ(drain_data(p, &end), 2);
	CHECK_EQ(end, 12 * MSS);
	pack(p, 3 * MSS, PEER_WIN); /* 13: up to 16 */
	CHECK_EQ(info(p).snd_cwnd, 13);
	CHECK_EQ(drain_data(p, &end), 4);
	CHECK_EQ(end, 16 * MSS);
	pack(p, 7 * MSS, PEER_WIN); /* four segments: still +2 = 15: up to 22 */
	CHECK_EQ(info(p).snd_cwnd, 15);
	CHECK_EQ(drain_data(p, &end), 6);
	CHECK_EQ(end, 22 * MSS);
	pack(p, 7 * MSS + 100, PEER_WIN); /* 100 bytes: +100 */
	CHECK_EQ(info(p).snd_cwnd, 15);
	peer_free(p);
}

TEST(stream_cc_no_growth_while_application_limited)
{
	/* RFC 7661 / Linux's tcp_is_cwnd_limited(): cwnd grows only while it limits the sender
	 * (in slow start: while it is under twice what was in flight). One segment at a time,
	 * each acknowledged: cwnd stays at the initial window. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, 1), 0);
	uint32_t k = 0;
	for (int i = 0; i < 30; i++) {
		CHECK_EQ(app_send(p, k, MSS, 0), MSS);
		EXPECT_DATA(p, ACK | PSH, k, MSS);
		k += MSS;
		peer_advance(p, 10 * MS);
		pack(p, k, PEER_WIN);
		p->rcv_nxt = sseq(p, k);
	}
	CHECK_EQ(info(p).snd_cwnd, 10);
	/* Five segments at a time (flight 5, cwnd 10 = 2 x 5): still no growth; six: growth. */
	CHECK_EQ(app_send(p, k, 5 * MSS, 0), 5 * MSS);
	peer_discard(p);
	k += 5 * MSS;
	pack(p, k, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 10);
	CHECK_EQ(app_send(p, k, 6 * MSS, 0), 6 * MSS);
	peer_discard(p);
	k += 6 * MSS;
	pack(p, k, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 12);
	peer_free(p);
}

TEST(stream_cc_congestion_avoidance_one_mss_per_cwnd)
{
	/* RTO with 10 segments out: ssthresh 5 segments, cwnd 1. Slow start back up to 5 (cwnd
	 * stops at ssthresh), then congestion avoidance: +1 segment per cwnd bytes acked. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	big_sndbuf(p);
	CHECK_EQ(app_send(p, 0, 100 * MSS, 0), 100 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	EXPECT_DATA(p, ACK, 0, MSS);
	CHECK_EQ(info(p).snd_ssthresh, 5);
	CHECK_EQ(info(p).snd_cwnd, 1);
	uint32_t una = MSS;
	pack(p, una, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 2);
	una = 3 * MSS;
	pack(p, una, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 4);
	una = 7 * MSS;
	pack(p, una, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 5); /* 6 would pass ssthresh */
	peer_discard(p);
	/* Now 5 segments' worth of ACKs (7300 bytes) add one segment. */
	for (int i = 0; i < 4; i++) {
		una += MSS;
		pack(p, una, PEER_WIN);
		CHECK_EQ(info(p).snd_cwnd, 5);
	}
	una += MSS;
	pack(p, una, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 6);
	for (int i = 0; i < 5; i++) {
		una += MSS;
		pack(p, una, PEER_WIN);
		CHECK_EQ(info(p).snd_cwnd, 6);
	}
	una += MSS;
	pack(p, una, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 7);
	CHECK_EQ(info(p).snd_ssthresh, 5);
	peer_free(p);
}

TEST(stream_cc_fast_retransmit_and_newreno_recovery)
{
	/* Ten segments, exactly what is queued; segments 0 and 3 are lost. Duplicate ACKs for
	 * 1, 2 (no new data for limited transmit), then the third (for 4) retransmits 0:
	 * ssthresh = 14600 / 2, cwnd = ssthresh + 3 SMSS. Five more duplicates inflate cwnd by
	 * 5 SMSS. The retransmission's ACK is partial (up to 3): 3 is resent at once, cwnd
	 * deflated by the 3 segments acked and grown by one. The full ACK ends recovery with
	 * cwnd = min(ssthresh, FlightSize + SMSS) = 2 segments. No RTO anywhere. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 10 * MSS, 0), 10 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	pack(p, 0, PEER_WIN);
	pack(p, 0, PEER_WIN);
	PEER_EXPECT_NONE(p);
	pack(p, 0, PEER_WIN);
	EXPECT_DATA(p, ACK, 0, MSS);
	PEER_EXPECT_NONE(p);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.snd_ssthresh, 5);
	CHECK_EQ(i.snd_cwnd, 8); /* 7300 + 4380 = 11680 */
	CHECK_EQ(stats(p)->tcp_fast_retrans, 1);
	for (int d = 0; d < 5; d++)
		pack(p, 0, PEER_WIN);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_cwnd, 13); /* 18980 */
	CHECK_EQ(stats(p)->tcp_dupacks_in, 8);
	pack(p, 3 * MSS, PEER_WIN);
	EXPECT_DATA(p, ACK, 3 * MSS, MSS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_cwnd, 11); /* 18980 - 4380 + 1460 = 16060 */
	CHECK_EQ(stats(p)->tcp_partial_acks, 1);
	pack(p, 10 * MSS, PEER_WIN);
	PEER_EXPECT_NONE(p);
	i = info(p);
	CHECK_EQ(i.snd_cwnd, 2);
	CHECK_EQ(i.snd_ssthresh, 5);
	CHECK_EQ(stats(p)->tcp_rtos, 0);
	CHECK_EQ(stats(p)->tcp_retrans, 2);
	peer_free(p);
}

TEST(stream_cc_recovery_inflation_releases_new_data)
{
	/* With more data queued, each duplicate ACK beyond the third inflates cwnd by one SMSS,
	 * and new segments go once cwnd exceeds what is outstanding; the full ACK ends it. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	big_sndbuf(p);
	CHECK_EQ(app_send(p, 0, 10 * MSS, 0), 10 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	CHECK_EQ(app_send(p, 10 * MSS, 30 * MSS, 0), 30 * MSS);
	PEER_EXPECT_NONE(p);
	pack(p, 0, PEER_WIN);
	EXPECT_DATA(p, ACK, 10 * MSS, MSS); /* limited transmit */
	pack(p, 0, PEER_WIN);
	EXPECT_DATA(p, ACK, 11 * MSS, MSS);
	pack(p, 0, PEER_WIN);
	EXPECT_DATA(p, ACK, 0, MSS); /* fast retransmit */
	PEER_EXPECT_NONE(p);
	uint32_t cwnd = info(p).snd_cwnd * MSS, flight = 12 * MSS;
	/* Duplicates until cwnd passes the 12 segments outstanding: each one after that sends
	 * one new segment. */
	uint32_t next = 12;
	for (int d = 0; d < 8; d++) {
		pack(p, 0, PEER_WIN);
		cwnd += MSS;
		if (cwnd >= flight + MSS) {
			EXPECT_DATA(p, ACK, next * MSS, MSS);
			next++;
			flight += MSS;
		}
		PEER_EXPECT_NONE(p);
	}
	CHECK(next > 12);
	/* The full ACK: nothing outstanding, cwnd = min(ssthresh, SMSS + SMSS). */
	pack(p, next * MSS, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 2);
	CHECK_EQ(stats(p)->tcp_fast_retrans, 1);
	peer_free(p);
}

TEST(stream_cc_ssthresh_excludes_limited_transmit)
{
	/* RFC 5681 §3.2 step 2: "When [RFC3042] is in use, additional data sent in limited
	 * transmit MUST NOT be included in this calculation" (FlightSize for ssthresh). Ten
	 * segments out, two more by limited transmit: ssthresh = 10 / 2 = 5 segments (Linux's
	 * tcp_reno_ssthresh, cwnd / 2, agrees), not 12 / 2 = 6. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	big_sndbuf(p);
	CHECK_EQ(app_send(p, 0, 20 * MSS, 0), 20 * MSS);
	peer_discard(p);
	for (int d = 0; d < 3; d++)
		pack(p, 0, PEER_WIN);
	CHECK_EQ(stats(p)->tcp_fast_retrans, 1);
	CHECK_EQ(info(p).snd_ssthresh, 5);
	CHECK_EQ(info(p).snd_cwnd, 8);
	peer_free(p);
}

TEST(stream_cc_duplicate_ack_definition)
{
	/* RFC 5681 §2: an ACK is a duplicate only if it carries no data, no SYN/FIN, acks
	 * SND.UNA with data outstanding, and repeats the last window. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt_win(p, 100 * MS, 60000);
	CHECK_EQ(app_send(p, 0, 10 * MSS, 0), 10 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	pack(p, 0, 61000); /* a window update */
	CHECK_EQ(stats(p)->tcp_dupacks_in, 0);
	CHECK_EQ(info(p).snd_wnd, 61000);
	pdata(p, PSH, 0, 10); /* carries data */
	p->snd_nxt = pseq(p, 10);
	peer_discard(p);
	CHECK_EQ(stats(p)->tcp_dupacks_in, 0);
	pack(p, 0, 61000);
	pack(p, 0, 61000);
	CHECK_EQ(stats(p)->tcp_dupacks_in, 2);
	pack(p, 0, 60500); /* a different window */
	CHECK_EQ(stats(p)->tcp_dupacks_in, 2);
	PEER_EXPECT_NONE(p);
	pack(p, 0, 61000);
	CHECK_EQ(stats(p)->tcp_dupacks_in, 3);
	EXPECT_DATA(p, ACK, 0, MSS);
	CHECK_EQ(stats(p)->tcp_fast_retrans, 1);
	peer_free(p);
}

TEST(stream_cc_no_duplicate_acks_without_outstanding_data)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	peer_discard(p);
	pack(p, 100, PEER_WIN);
	for (int i = 0; i < 5; i++)
		pack(p, 100, PEER_WIN);
	CHECK_EQ(stats(p)->tcp_dupacks_in, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_cc_no_fast_retransmit_below_recover_after_rto)
{
	/* RFC 6582 §3.2 step 1 / "recover": after an RTO, duplicate ACKs for data sent before
	 * it do not start fast retransmit (the head is not sent again, ssthresh stays). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 10 * MSS, 0), 10 * MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	EXPECT_DATA(p, ACK, 0, MSS);
	uint32_t ssthresh = info(p).snd_ssthresh;
	for (int d = 0; d < 6; d++)
		pack(p, 0, PEER_WIN);
	struct tern_tcp_seg s;
	while (peer_pop(p, &s))
		CHECK(s.h.seq != sseq(p, 0));
	CHECK_EQ(stats(p)->tcp_fast_retrans, 0);
	CHECK_EQ(info(p).snd_ssthresh, ssthresh);
	peer_free(p);
}

TEST(stream_cc_restart_after_idle)
{
	/* RFC 5681 §4.1: after more than an RTO without sending, cwnd restarts at min(cwnd,
	 * IW). A shorter pause keeps cwnd. The sender stays window-limited throughout, so that
	 * cwnd grows on every ACK. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	big_sndbuf(p);
	CHECK_EQ(app_send(p, 0, 30 * MSS, 0), 30 * MSS);
	uint32_t end = 0;
	CHECK_EQ(drain_data(p, &end), 10);
	for (uint32_t s = 1; s <= 10; s++) {
		pack(p, s * MSS, PEER_WIN); /* one more segment of cwnd: two new ones go */
		CHECK_EQ(drain_data(p, &end), 2);
	}
	CHECK_EQ(info(p).snd_cwnd, 20);
	pack(p, 30 * MSS, PEER_WIN); /* 20 segments at once: +2 (L = 2) */
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_cwnd, 22);
	peer_advance(p, 150 * MS);
	CHECK(info(p).rto_us > 150000);
	uint32_t k = 30 * MSS;
	CHECK_EQ(app_send(p, k, 22 * MSS, 0), 22 * MSS);
	CHECK_EQ(drain_data(p, &end), 22); /* a short pause: cwnd kept */
	k += 22 * MSS;
	pack(p, k, PEER_WIN);
	CHECK_EQ(info(p).snd_cwnd, 24);
	peer_advance(p, info(p).rto_us + 1 * MS);
	CHECK_EQ(app_send(p, k, 30 * MSS, 0), 30 * MSS);
	CHECK_EQ(drain_data(p, &end), 10); /* idle longer than the RTO: the initial window */
	CHECK_EQ(info(p).snd_cwnd, 10);
	peer_free(p);
}

struct cc_trace {
	unsigned n;
	uint32_t seq[64], cwnd[64], ssthresh[64];
};

static void cc_trace_fn(void *user, const struct tern_trace *ev)
{
	struct cc_trace *c = user;
	if (ev->kind == TERN_TRACE_SEND && ev->u.seg.len && c->n < 64) {
		c->seq[c->n] = ev->u.seg.seq;
		c->cwnd[c->n] = ev->cwnd;
		c->ssthresh[c->n] = ev->ssthresh;
		c->n++;
	}
}

TEST(stream_cc_trace_reports_cwnd_and_ssthresh)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	struct cc_trace c;
	memset(&c, 0, sizeof(c));
	tern_stack_set_trace(p->st, cc_trace_fn, &c);
	CHECK_EQ(app_send(p, 0, 4 * MSS, 0), 4 * MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	peer_discard(p);
	REQUIRE_EQ(c.n, 5);
	CHECK_EQ(c.cwnd[0], 10 * MSS);
	CHECK_EQ(c.ssthresh[0], UINT32_MAX);
	CHECK_EQ(c.seq[4], sseq(p, 0));
	CHECK_EQ(c.cwnd[4], MSS);
	CHECK_EQ(c.ssthresh[4], 2 * MSS); /* max(4 SMSS / 2, 2 SMSS) */
	peer_free(p);
}

TEST(stream_cc_congestion_option)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	char name[16];
	size_t len = sizeof(name);
	CHECK_EQ(tern_getsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, name, &len), 0);
	CHECK_STR(name, "reno");
	CHECK_EQ(len, 5);
	CHECK_EQ(tern_setsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, "newreno", 7), 0);
	CHECK_EQ(tern_setsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, "reno", 4), 0);
	CHECK_EQ(tern_setsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, "cubic", 5),
		 -ENOENT);
	CHECK_EQ(tern_setsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, "ren", 3),
		 -ENOENT);
	len = sizeof(name);
	CHECK_EQ(tern_getsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, name, &len), 0);
	CHECK_STR(name, "reno");
	len = 3;
	CHECK_EQ(tern_getsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_CONGESTION, name, &len),
		 -EINVAL);
	peer_free(p);
}

TEST(stream_cc_initial_window_one_segment_after_syn_retransmissions)
{
	/* RFC 5681 §3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender
	 * after a correctly transmitted SYN MUST be one segment". Linux (tcp_init_transfer)
	 * does it after more than one SYN retransmission; two here. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	peer_discard(p);
	CHECK_EQ(info(p).total_retrans, 2);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, p->win, NULL, 0, &o);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(info(p).snd_cwnd, 1);
	peer_free(p);
}

TEST(stream_cc_initial_window_kept_after_one_syn_retransmission)
{
	/* Linux's threshold: a single lost SYN leaves the initial window at ten segments. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	peer_discard(p);
	CHECK_EQ(info(p).total_retrans, 1);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, p->win, NULL, 0, &o);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(info(p).snd_cwnd, 10);
	peer_free(p);
}

/* ========================================================================================== */
/* 9. Keepalive: RFC 1122 §4.2.3.6, Linux's tcp_keepalive_timer(): SO_KEEPALIVE with          */
/*    TCP_KEEPIDLE/KEEPINTVL/KEEPCNT (defaults 7200 s, 75 s, 9); the probe is an ACK with     */
/*    SEQ = SND.UNA - 1 and no data; keepcnt unanswered probes: RST|ACK and ETIMEDOUT.         */
/* ========================================================================================== */

#define EXPECT_KEEPALIVE(p, k) PEER_EXPECT((p), ACK, sseq((p), (k)) - 1, (p)->snd_nxt, W, 0)

TEST(stream_keepalive_defaults)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(getopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE), 0);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE), 7200);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPINTVL), 75);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPCNT), 9);
	/* On with the defaults: the first probe two hours after the last segment, then every
	 * 75 s; the ninth unanswered one is followed by a reset 75 s later (2h 11m 15s). */
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
	CHECK_EQ(getopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE), 1);
	peer_advance(p, 600 * SEC);
	uint64_t t = p->now;
	pdata(p, PSH, 0, 1); /* the last segment from the peer */
	p->snd_nxt = pseq(p, 1);
	EXPECT_ACK(p, 1, W);
	for (uint64_t i = 0; i < 9; i++) {
		REQUIRE(next_seg_by(p, t + 3 * 3600 * SEC));
		EXPECT_KEEPALIVE(p, 0);
		CHECK_EQ(p->last_t, t + (7200 + 75 * i) * SEC);
	}
	REQUIRE(next_seg_by(p, t + 3 * 3600 * SEC));
	PEER_EXPECT(p, RST | ACK, sseq(p, 0), p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + (7200 + 75 * 9) * SEC);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_keepalive_off_by_default_sends_nothing)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_advance(p, 86400 * SEC);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(stream_keepalive_enabled_on_long_idle_connection_is_paced)
{
	/* SO_KEEPALIVE turned on after a day of silence. Linux (tcp_set_keepalive) arms the
	 * timer keepidle from now; at the latest a first probe may go at once. Either way the
	 * probes are keepintvl apart and the peer gets keepcnt chances: deadlines counted from
	 * the last segment received would all be past, and nine probes would go at once
	 * followed by a reset. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_advance(p, 86400 * SEC);
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
	peer_advance(p, 74 * SEC);
	size_t n = peer_pending(p);
	CHECK(n <= 1);
	peer_discard(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(stream_keepalive_lower_keepidle_on_idle_connection_is_paced)
{
	/* The same through TCP_KEEPIDLE: keepalive on (idle 7200 s), an hour of silence, then
	 * TCP_KEEPIDLE 60. Linux (keepalive_time_when - elapsed, at least 0) probes at once,
	 * then every keepintvl, not a burst and a reset. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
	peer_advance(p, 3600 * SEC);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE, 60), 0);
	peer_advance(p, 1 * MS);
	EXPECT_KEEPALIVE(p, 0);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, p->now + 600 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 3600 * SEC + 75 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(stream_keepalive_unanswered_probes_reset)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now; /* the third ACK: the last segment received */
	keepalive_on(p, 10, 2, 3);
	static const uint64_t at[] = {10, 12, 14};
	for (size_t i = 0; i < 3; i++) {
		REQUIRE(next_seg_by(p, t + 100 * SEC));
		EXPECT_KEEPALIVE(p, 0);
		CHECK_EQ(p->last_t, t + at[i] * SEC);
		CHECK_EQ(info(p).probes, i + 1);
	}
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	PEER_EXPECT(p, RST | ACK, sseq(p, 0), p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + 16 * SEC);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	CHECK_EQ(stats(p)->tcp_keepalive_probes, 3);
	CHECK_EQ(stats(p)->tcp_keepalive_drops, 1);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_keepalive_answer_resets_the_count)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	keepalive_on(p, 10, 2, 3);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	peer_advance_to(p, t + 12500 * MS);
	pack(p, 0, PEER_WIN); /* the answer */
	CHECK_EQ(info(p).probes, 0);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	CHECK_EQ(p->last_t, t + 22500 * MS);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	PEER_EXPECT(p, RST | ACK, sseq(p, 0), p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + 28500 * MS);
	peer_free(p);
}

TEST(stream_keepalive_any_segment_restarts_idle_time)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	keepalive_on(p, 10, 2, 3);
	peer_advance_to(p, t + 5 * SEC);
	pdata(p, PSH, 0, 5);
	p->snd_nxt = pseq(p, 5);
	EXPECT_ACK(p, 5, W);
	CHECK_EQ(app_recv(p, 0, 5), 5);
	peer_advance_to(p, t + 14 * SEC);
	PEER_EXPECT_NONE(p);
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	CHECK_EQ(p->last_t, t + 15 * SEC);
	peer_free(p);
}

TEST(stream_keepalive_rebooted_peer_answers_rst)
{
	/* A peer that lost the connection answers the probe with RST (SEQ = the probe's ACK):
	 * ECONNRESET. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	keepalive_on(p, 10, 2, 3);
	REQUIRE(next_seg_by(p, p->now + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	peer_inject(p, RST, p->snd_nxt, 0, 0, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ECONNRESET);
	peer_free(p);
}

TEST(stream_keepalive_no_probes_while_data_in_flight)
{
	/* Unacknowledged data: the retransmission timer watches the peer, keepalive sends
	 * nothing (every segment seen is a retransmission of the data). */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	keepalive_on(p, 1, 1, 2);
	uint64_t t = p->now;
	CHECK_EQ(app_send(p, 0, 100, 0), 100);
	EXPECT_DATA(p, ACK | PSH, 0, 100);
	peer_advance_to(p, t + 30 * SEC);
	struct tern_tcp_seg s;
	unsigned n = 0;
	while (peer_pop(p, &s)) {
		CHECK_EQ(s.h.seq, sseq(p, 0));
		CHECK_EQ(s.h.len, 100);
		n++;
	}
	CHECK_EQ(n, 6); /* 0.3, 0.9, 2.1, 4.5, 9.3, 18.9 s */
	CHECK_EQ(stats(p)->tcp_keepalive_probes, 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	/* Once it is acknowledged, idleness counts again. */
	pack(p, 100, PEER_WIN);
	uint64_t t2 = p->now;
	REQUIRE(next_seg_by(p, t2 + 10 * SEC));
	EXPECT_KEEPALIVE(p, 100);
	CHECK_EQ(p->last_t, t2 + 1 * SEC);
	peer_free(p);
}

TEST(stream_keepalive_user_timeout_replaces_keepcnt)
{
	/* Linux's tcp_keepalive_timer(): with TCP_USER_TIMEOUT the connection goes when it has
	 * been idle that long and at least one probe is unanswered, whatever keepcnt says. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	keepalive_on(p, 10, 2, 9);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 13000), 0);
	static const uint64_t at[] = {10, 12};
	for (size_t i = 0; i < 2; i++) {
		REQUIRE(next_seg_by(p, t + 100 * SEC));
		EXPECT_KEEPALIVE(p, 0);
		CHECK_EQ(p->last_t, t + at[i] * SEC);
	}
	REQUIRE(next_seg_by(p, t + 100 * SEC));
	PEER_EXPECT(p, RST | ACK, sseq(p, 0), p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + 14 * SEC);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	peer_free(p);
}

TEST(stream_keepalive_off_stops_probes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	keepalive_on(p, 10, 2, 3);
	REQUIRE(next_seg_by(p, p->now + 100 * SEC));
	EXPECT_KEEPALIVE(p, 0);
	CHECK_EQ(setopt_int(p, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 0), 0);
	peer_advance(p, 1000 * SEC);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(stream_keepalive_option_ranges)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE, 0), -EINVAL);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPINTVL, 32768), -EINVAL);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPCNT, 128), -EINVAL);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE, 32767), 0);
	CHECK_EQ(getopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE), 32767);
	peer_free(p);
}

/* ========================================================================================== */
/* 10. Urgent data: RFC 9293 §3.8.5 and RFC 6093 (the pointer as BSD and Linux set it: just   */
/*     past the urgent byte), Linux's tcp_urg()/tcp_check_urg() and SO_OOBINLINE reads,       */
/*     SIOCATMARK, EPOLLPRI.                                                                   */
/* ========================================================================================== */

TEST(stream_urgent_send_marks_last_byte)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(app_send(p, 0, 3, TERN_MSG_OOB), 3);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, ACK | PSH | URG, sseq(p, 0), p->snd_nxt, W, 3);
	CHECK_EQ(s.h.urp, 3);
	/* After it is acknowledged, plain data carries no URG. */
	pack(p, 3, PEER_WIN);
	CHECK_EQ(app_send(p, 3, 5, 0), 5);
	PEER_EXPECT_SEG(p, &s, ACK | PSH, sseq(p, 3), p->snd_nxt, W, 5);
	CHECK_EQ(s.h.urp, 0);
	peer_free(p);
}

TEST(stream_urgent_pointer_in_every_segment_before_it)
{
	/* 3000 bytes sent with MSG_OOB: the urgent byte is the last; each segment before it
	 * says how far ahead the mark is (SND.UP - SEG.SEQ); retransmissions too. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100 * MS);
	CHECK_EQ(app_send(p, 0, 3000, TERN_MSG_OOB), 3000);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, ACK | URG, sseq(p, 0), p->snd_nxt, W, MSS);
	CHECK_EQ(s.h.urp, 3000);
	PEER_EXPECT_SEG(p, &s, ACK | URG, sseq(p, MSS), p->snd_nxt, W, MSS);
	CHECK_EQ(s.h.urp, 3000 - MSS);
	PEER_EXPECT_SEG(p, &s, ACK | PSH | URG, sseq(p, 2 * MSS), p->snd_nxt, W, 80);
	CHECK_EQ(s.h.urp, 80);
	REQUIRE(next_seg_by(p, p->now + 10 * SEC));
	PEER_EXPECT_SEG(p, &s, ACK | URG, sseq(p, 0), p->snd_nxt, W, MSS);
	CHECK_EQ(s.h.urp, 3000);
	/* Bytes queued after the urgent send come after the mark: no URG on them. */
	pack(p, 3000, PEER_WIN);
	peer_discard(p);
	CHECK_EQ(app_send(p, 3000, 10, 0), 10);
	PEER_EXPECT_SEG(p, &s, ACK | PSH, sseq(p, 3000), p->snd_nxt, W, 10);
	peer_free(p);
}

TEST(stream_urgent_later_send_moves_pointer)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	CHECK_EQ(setopt_int(p, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, 1), 0);
	CHECK_EQ(app_send(p, 0, 10, TERN_MSG_OOB), 10);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, ACK | PSH | URG, sseq(p, 0), p->snd_nxt, W, 10);
	CHECK_EQ(s.h.urp, 10);
	CHECK_EQ(app_send(p, 10, 10, TERN_MSG_OOB), 10);
	PEER_EXPECT_SEG(p, &s, ACK | PSH | URG, sseq(p, 10), p->snd_nxt, W, 10);
	CHECK_EQ(s.h.urp, 10);
	peer_free(p);
}

TEST(stream_urgent_recv_oob_is_einval_and_no_mark)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	char b[4];
	CHECK_EQ(tern_recv(p->st, p->fd, b, sizeof(b), TERN_MSG_OOB), -EINVAL);
	CHECK_EQ(tern_sockatmark(p->st, p->fd), 0);
	pdata(p, PSH, 0, 10);
	CHECK_EQ(tern_sockatmark(p->st, p->fd), 0);
	CHECK_EQ(tern_sock_events(p->st, p->fd) & TERN_EV_PRI, 0);
	CHECK_EQ(tern_recv(p->st, p->fd, b, sizeof(b), TERN_MSG_OOB), -EINVAL);
	CHECK_EQ(app_recv(p, 0, 100), 10);
	CHECK_EQ(tern_sockatmark(p->st, -1), -EBADF);
	peer_free(p);
}

TEST(stream_urgent_receive_sets_the_mark)
{
	/* Receiving URG (Linux's tcp_check_urg): the urgent byte is SEG.SEQ + urp - 1. Data
	 * stays inline; a read stops before the mark when bytes come before it; at the mark
	 * sockatmark() is 1; EV_PRI is set while the urgent byte is unread. */
	uint8_t buf[10];
	fill_pat(buf, 0, sizeof(buf));
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	/* URG with urgent pointer 4: the urgent byte is stream offset 3. */
	uint8_t pkt[20 + 60 + 10];
	size_t n = peer_build(p, pkt, sizeof(pkt), ACK | PSH | URG, pseq(p, 0), p->rcv_nxt,
			      p->win, buf, 10, NULL);
	pkt[20 + 18] = 0;
	pkt[20 + 19] = 4;
	pkt[20 + 16] = pkt[20 + 17] = 0;
	/* Recompute the TCP checksum with the urgent pointer set. */
	struct tern_iovec iov = {pkt + 20, n - 20};
	uint16_t c = tern_csum_iov(tern_csum_pseudo(PEER_REMOTE, PEER_LOCAL, TERN_IPPROTO_TCP_,
						    (uint16_t)(n - 20)), &iov, 1);
	memcpy(pkt + 20 + 16, &c, 2);
	peer_inject_raw(p, pkt, n);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_PRI);
	CHECK_EQ(tern_sockatmark(p->st, p->fd), 0);
	CHECK_EQ(app_recv(p, 0, 10), 3); /* stops before the mark */
	CHECK_EQ(tern_sockatmark(p->st, p->fd), 1);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_PRI);
	CHECK_EQ(app_recv(p, 3, 10), 7); /* the urgent byte and what follows */
	CHECK_EQ(tern_sockatmark(p->st, p->fd), 0);
	CHECK_EQ(tern_sock_events(p->st, p->fd) & TERN_EV_PRI, 0);
	peer_free(p);
}

/* ========================================================================================== */
/* 11. Zero-copy: tern_recv_zc/tern_recv_consume and tern_send_zc/tern_send_commit give the   */
/*     bytes and the behaviour of recv and send (window updates, Nagle, PSH, urgent mark).    */
/* ========================================================================================== */

TEST(stream_zc_recv_two_pieces_across_the_ring_end)
{
	/* Buffer 4096: 2920 in, 2000 consumed, 2000 more in: the unread 2920 bytes wrap around
	 * the end of the ring and come as two pieces. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 4096), 2920);
	pdata(p, PSH, 0, 2920);
	peer_discard(p);
	struct tern_iovec iov[2];
	unsigned n = 9;
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 2920);
	CHECK_EQ(n, 1);
	CHECK_EQ(iov[0].len, 2920);
	CHECK(is_pat(iov[0].base, 0, 2920));
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 2000), 0);
	peer_discard(p);
	uint32_t wnd = info(p).rcv_wnd;
	CHECK(wnd >= 2000);
	pdata(p, PSH, 2920, 2000);
	peer_discard(p);
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 2920);
	REQUIRE_EQ(n, 2);
	CHECK_EQ(iov[0].len + iov[1].len, 2920);
	CHECK_EQ(iov[0].len, 4096 - 2000);
	CHECK(is_pat(iov[0].base, 2000, iov[0].len));
	CHECK(is_pat(iov[1].base, 2000 + (uint32_t)iov[0].len, iov[1].len));
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 2921), -EINVAL);
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 2920), 0);
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), -EAGAIN);
	CHECK_EQ(n, 0);
	peer_free(p);
}

TEST(stream_zc_consume_sends_window_update_like_recv)
{
	/* The sequence of stream_window_fills_and_reopens_in_whole_segments, consumed through
	 * the zero-copy calls: the same window updates. */
	struct peer *p = peer_new(NULL, 1);
	CHECK_EQ(open_passive_rcvbuf(p, 10000), 8760);
	for (uint32_t s = 0; s < 6; s++)
		pdata(p, 0, s * MSS, MSS);
	peer_discard(p);
	REQUIRE(next_seg_by(p, p->now + 1 * SEC));
	EXPECT_ACK(p, 8760, 0);
	struct tern_iovec iov[2];
	unsigned n;
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 8760);
	CHECK(is_pat(iov[0].base, 0, iov[0].len));
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 100), 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 1000), 0);
	EXPECT_ACK(p, 8760, 1460);
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 8760 - 1100);
	CHECK(is_pat(iov[0].base, 1100, iov[0].len));
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 8760 - 1100), 0);
	EXPECT_ACK(p, 8760, 8760);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(stream_zc_recv_end_of_stream)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	pdata(p, PSH | FIN, 0, 10);
	struct tern_iovec iov[2];
	unsigned n;
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 10);
	CHECK_EQ(tern_recv_consume(p->st, p->fd, 10), 0);
	CHECK_EQ(tern_recv_zc(p->st, p->fd, iov, &n), 0);
	CHECK_EQ(n, 0);
	peer_free(p);
}

/* SO_SNDBUF set, so the send buffer stays this size instead of growing with cwnd. */
static void pin_sndbuf(struct peer *p, int bytes)
{
	REQUIRE_EQ(tern_setsockopt(p->st, p->fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &bytes,
				   sizeof(bytes)),
		   0);
}

TEST(stream_zc_send_same_segments_as_send)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	pin_sndbuf(p, 16384); /* these arrangements assume a ring of 16384 bytes */
	struct tern_wiovec w[2];
	unsigned n = 9;
	long room = tern_send_zc(p->st, p->fd, w, &n);
	CHECK_EQ(room, 16384);
	REQUIRE_EQ(n, 1);
	fill_pat(w[0].base, 0, 10);
	CHECK_EQ(tern_send_commit(p->st, p->fd, 10, 0), 0);
	EXPECT_DATA(p, ACK | PSH, 0, 10);
	/* Nagle holds a second small write, as with send. */
	room = tern_send_zc(p->st, p->fd, w, &n);
	CHECK_EQ(room, 16384 - 10);
	fill_pat(w[0].base, 10, 10);
	CHECK_EQ(tern_send_commit(p->st, p->fd, 10, 0), 0);
	PEER_EXPECT_NONE(p);
	pack(p, 10, PEER_WIN);
	EXPECT_DATA(p, ACK | PSH, 10, 10);
	/* Committing more than the room is refused. */
	room = tern_send_zc(p->st, p->fd, w, &n);
	CHECK_EQ(tern_send_commit(p->st, p->fd, (size_t)room + 1, 0), -EINVAL);
	/* An urgent commit marks its last byte. */
	pack(p, 20, PEER_WIN);
	room = tern_send_zc(p->st, p->fd, w, &n);
	fill_pat(w[0].base, 20, 5);
	CHECK_EQ(tern_send_commit(p->st, p->fd, 5, TERN_MSG_OOB), 0);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, ACK | PSH | URG, sseq(p, 20), p->snd_nxt, W, 5);
	CHECK_EQ(s.h.urp, 5);
	CHECK(is_pat(s.data, 20, 5));
	peer_free(p);
}

TEST(stream_zc_commit_after_shutdown_is_refused)
{
	/* Room taken with tern_send_zc(), then shutdown(SHUT_WR): the FIN has gone, so a
	 * commit must fail as send() would (EPIPE) and queue nothing: queued, the bytes would
	 * go after the FIN (data at and beyond the FIN's sequence number). */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	struct tern_wiovec w[2];
	unsigned n;
	CHECK(tern_send_zc(p->st, p->fd, w, &n) > 0);
	fill_pat(w[0].base, 0, 10);
	CHECK_EQ(tern_shutdown(p->st, p->fd, TERN_SHUT_WR), 0);
	PEER_EXPECT(p, FIN | ACK, sseq(p, 0), p->snd_nxt, W, 0);
	CHECK_EQ(tern_send_commit(p->st, p->fd, 10, 0), -EPIPE);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_queue, 0);
	peer_free(p);
}

TEST(stream_zc_send_two_pieces_across_the_ring_end)
{
	/* 16000 bytes sent, 12000 acknowledged: the free room is 384 bytes at the ring's end
	 * and 12000 at its start. 5000 bytes written there go out intact. */
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 10 * MS);
	pin_sndbuf(p, 16384); /* these arrangements assume a ring of 16384 bytes */
	CHECK_EQ(app_send(p, 0, 16000, 0), 16000);
	peer_discard(p);
	pack(p, 12000, PEER_WIN);
	peer_discard(p);
	struct tern_wiovec w[2];
	unsigned n;
	CHECK_EQ(tern_send_zc(p->st, p->fd, w, &n), 16384 - 4000);
	REQUIRE_EQ(n, 2);
	CHECK_EQ(w[0].len, 384);
	CHECK_EQ(w[1].len, 12000);
	fill_pat(w[0].base, 16000, 384);
	fill_pat(w[1].base, 16384, 5000 - 384);
	CHECK_EQ(tern_send_commit(p->st, p->fd, 5000, 0), 0);
	pack(p, 16000, PEER_WIN);
	uint32_t k = 16000;
	struct tern_tcp_seg s;
	while (peer_pop(p, &s)) {
		CHECK_EQ(s.h.seq, sseq(p, k));
		CHECK(is_pat(s.data, k, s.h.len));
		k += s.h.len;
	}
	CHECK_EQ(k, 21000);
	peer_free(p);
}

/* ========================================================================================== */
/* 12. Whole paths in the simulator: a bulk transfer through exact losses (fast retransmit,   */
/*     never an RTO, every byte once), and the sender never beyond the window the receiver    */
/*     advertised (RFC 9293 §3.8.6; the allowed exceptions: the persist probe and the one-byte */
/*     retransmission into a zero window), nor the receiver's right edge moving left.        */
/* ========================================================================================== */

#define HOST_A TERN_IP4(10, 0, 0, 1)
#define HOST_B TERN_IP4(10, 0, 0, 2)

struct xfer {
	struct tern_sim *sim;
	struct tern_stack *a, *b;
	int cfd, lfd, sfd;
	uint32_t total, sent, rcvd;
	bool shut, eof, bad;
	bool timed_reads;   /* read on a timer instead of on readiness */
	uint32_t read_chunk;
	uint8_t scratch[65536];
	/* window check */
	uint32_t edge;      /* highest ack + win a has received from b */
	bool edge_valid;
	uint32_t last_win;  /* window of the latest segment a received from b */
	uint32_t b_edge;    /* highest ack + win b has sent */
	bool b_edge_valid;
	unsigned beyond, beyond_allowed, b_shrinks, data_segs;
};

static void xfer_pump_send(struct xfer *x)
{
	while (x->sent < x->total) {
		uint32_t n = x->total - x->sent;
		if (n > sizeof(x->scratch))
			n = sizeof(x->scratch);
		fill_pat(x->scratch, x->sent, n);
		long r = tern_send(x->a, x->cfd, x->scratch, n, 0);
		if (r <= 0)
			break;
		x->sent += (uint32_t)r;
	}
	if (x->sent == x->total && !x->shut) {
		x->shut = true;
		CHECK_EQ(tern_shutdown(x->a, x->cfd, TERN_SHUT_WR), 0);
	}
}

static void xfer_read(struct xfer *x, uint32_t max)
{
	while (x->sfd >= 0 && !x->eof && max) {
		uint32_t want = max < sizeof(x->scratch) ? max : (uint32_t)sizeof(x->scratch);
		long r = tern_recv(x->b, x->sfd, x->scratch, want, 0);
		if (r == 0) {
			x->eof = true;
			tern_close(x->b, x->sfd);
			x->sfd = -1;
			break;
		}
		if (r < 0)
			break;
		if (!is_pat(x->scratch, x->rcvd, (size_t)r))
			x->bad = true;
		x->rcvd += (uint32_t)r;
		max -= (uint32_t)r;
	}
}

static void xfer_event(struct tern_sim *sim, int host, const struct tern_event *ev, void *user)
{
	(void)sim;
	struct xfer *x = user;
	if (host == 0 && ev->fd == x->cfd && (ev->events & TERN_EV_OUT))
		xfer_pump_send(x);
	if (host == 1 && ev->fd == x->lfd && (ev->events & TERN_EV_IN) && x->sfd < 0 && !x->eof)
		x->sfd = tern_accept(x->b, x->lfd, NULL);
	if (host == 1 && x->sfd >= 0 && ev->fd == x->sfd && (ev->events & TERN_EV_IN) &&
	    !x->timed_reads)
		xfer_read(x, UINT32_MAX);
}

static void xfer_timed_read(struct tern_sim *sim, void *arg)
{
	struct xfer *x = arg;
	xfer_read(x, x->read_chunk);
	if (!x->eof)
		tern_sim_at(sim, tern_sim_now(sim) + 20 * MS, xfer_timed_read, x);
}

static void xfer_trace(void *user, const struct tern_sim_ev *ev)
{
	struct xfer *x = user;
	if (!ev->seg_valid)
		return;
	const struct tern_seg_info *h = &ev->tr.u.seg;
	if (ev->kind == TERN_SIM_EV_RECV && ev->host == 0 && (h->flags & TERN_TH_ACK)) {
		uint32_t e = h->ack + h->win;
		if (!x->edge_valid || seq_gt(e, x->edge))
			x->edge = e;
		x->edge_valid = true;
		x->last_win = h->win;
	} else if (ev->kind == TERN_SIM_EV_SEND && ev->host == 0 && h->len) {
		x->data_segs++;
		if (x->edge_valid && seq_gt(h->seq + h->len, x->edge)) {
			x->beyond++;
			/* A one-byte probe into a shut window is the only excuse. */
			if (h->len == 1 && x->last_win == 0 && h->seq == x->edge)
				x->beyond_allowed++;
		}
	} else if (ev->kind == TERN_SIM_EV_SEND && ev->host == 1 && (h->flags & TERN_TH_ACK) &&
		   !(h->flags & (TERN_TH_SYN | TERN_TH_RST))) {
		uint32_t e = h->ack + h->win;
		if (x->b_edge_valid && seq_lt(e, x->b_edge))
			x->b_shrinks++;
		if (!x->b_edge_valid || seq_gt(e, x->b_edge))
			x->b_edge = e;
		x->b_edge_valid = true;
	}
}

static void xfer_setup(struct xfer *x, uint64_t seed, uint32_t total, int rcvbuf)
{
	memset(x, 0, sizeof(*x));
	x->sim = tern_sim_new(seed);
	REQUIRE_EQ(tern_sim_add_host(x->sim, "a", HOST_A, NULL), 0);
	REQUIRE_EQ(tern_sim_add_host(x->sim, "b", HOST_B, NULL), 1);
	x->a = tern_sim_stack(x->sim, 0);
	x->b = tern_sim_stack(x->sim, 1);
	struct tern_impair imp = {0, 0, 0, 0, (uint32_t)(5 * MS), 0};
	tern_sim_set_impair(x->sim, -1, -1, &imp);
	x->total = total;
	x->sfd = -1;
	x->lfd = tern_socket(x->b, TERN_SOCK_STREAM);
	if (rcvbuf)
		REQUIRE_EQ(tern_setsockopt(x->b, x->lfd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &rcvbuf,
					   sizeof(rcvbuf)), 0);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(x->b, x->lfd, &sa), 0);
	REQUIRE_EQ(tern_listen(x->b, x->lfd, 4), 0);
	tern_sim_on_event(x->sim, xfer_event, x);
	tern_sim_set_trace(x->sim, xfer_trace, x);
	x->cfd = tern_socket(x->a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {HOST_B, 80};
	REQUIRE_EQ(tern_connect(x->a, x->cfd, &to), -EINPROGRESS);
}

static void drop_data_segment(struct xfer *x, uint32_t nth)
{
	struct tern_sim_rule r = {0, 1, TERN_SIM_DATA, nth, 1, TERN_SIM_DROP, 0};
	REQUIRE_EQ(tern_sim_add_rule(x->sim, &r), 0);
}

TEST(stream_sim_megabyte_with_exact_losses_fast_retransmits_only)
{
	/* 1 MB from a to b (5 ms each way); data segments 50, 300 and 600 are lost. Each loss
	 * is repaired by one fast retransmission (three duplicate ACKs arrive: the losses are
	 * far apart and plenty follows each), never by an RTO; the receiver reads every byte
	 * once and in order. */
	static struct xfer x;
	xfer_setup(&x, test_seed(11), 1u << 20, 0);
	drop_data_segment(&x, 50);
	drop_data_segment(&x, 300);
	drop_data_segment(&x, 600);
	tern_sim_run_until(x.sim, 30 * SEC);
	CHECK(x.eof);
	CHECK(!x.bad);
	CHECK_EQ(x.rcvd, 1u << 20);
	const struct tern_stats *sa = tern_stack_stats(x.a), *sb = tern_stack_stats(x.b);
	CHECK_EQ(sa->tcp_fast_retrans, 3);
	CHECK_EQ(sa->tcp_rtos, 0);
	CHECK_EQ(sa->tcp_retrans, 3);
	CHECK_EQ(sa->tcp_timeouts, 0);
	CHECK(sb->tcp_ofo_queued >= 3);
	CHECK_EQ(sb->tcp_ofo_drops, 0);
	CHECK_EQ(x.beyond, 0);
	CHECK_EQ(x.b_shrinks, 0);
	CHECK(x.data_segs >= (1u << 20) / MSS + 1 + 3);
	tern_sim_free(x.sim);
}

TEST(stream_sim_two_losses_in_one_window_newreno_partial_ack)
{
	/* Segments 100 and 103 lost in the same window: one fast retransmit, then a partial
	 * ACK retransmits the second hole at once (RFC 6582); still no RTO. */
	static struct xfer x;
	xfer_setup(&x, test_seed(12), 256 * 1024, 0);
	drop_data_segment(&x, 100);
	drop_data_segment(&x, 103);
	tern_sim_run_until(x.sim, 30 * SEC);
	CHECK(x.eof);
	CHECK(!x.bad);
	CHECK_EQ(x.rcvd, 256 * 1024);
	const struct tern_stats *sa = tern_stack_stats(x.a);
	CHECK_EQ(sa->tcp_fast_retrans, 1);
	CHECK_EQ(sa->tcp_partial_acks, 1);
	CHECK_EQ(sa->tcp_rtos, 0);
	CHECK_EQ(sa->tcp_retrans, 2);
	CHECK_EQ(x.beyond, 0);
	tern_sim_free(x.sim);
}

TEST(stream_sim_sender_never_exceeds_advertised_window)
{
	/* A small receive buffer (6000) read slowly (3000 bytes every 20 ms), with random loss
	 * both ways: the window shuts and opens all the time, probes and RTOs happen. Every
	 * data segment a sends ends within the last right edge b advertised to it, except a
	 * one-byte probe into a shut window; b's edge never moves left; the bytes arrive. */
	for (uint64_t seed = 1; seed <= 8 && !test_failed(); seed++) {
		static struct xfer x;
		xfer_setup(&x, test_seed(100 + seed), 300000, 5000);
		/* ACKs (window updates among them) are lost more often than data. */
		struct tern_impair ab = {0.03, 0, 0, 0, (uint32_t)(5 * MS), (uint32_t)(2 * MS)};
		struct tern_impair ba = {0.25, 0, 0, 0, (uint32_t)(5 * MS), (uint32_t)(2 * MS)};
		tern_sim_set_impair(x.sim, 0, 1, &ab);
		tern_sim_set_impair(x.sim, 1, 0, &ba);
		x.timed_reads = true;
		x.read_chunk = 700;
		tern_sim_at(x.sim, 50 * MS, xfer_timed_read, &x);
		tern_sim_run_until(x.sim, 300 * SEC);
		CHECK(x.eof);
		CHECK(!x.bad);
		CHECK_EQ(x.rcvd, 300000);
		CHECK_EQ(x.beyond, x.beyond_allowed);
		CHECK_EQ(x.b_shrinks, 0);
		CHECK(x.data_segs > 300000 / MSS);
		const struct tern_stats *sa = tern_stack_stats(x.a);
		if (getenv("STREAM_DEBUG"))
			printf("seed %d: segs %u beyond %u/%u probes %llu rtos %llu fr %llu t %llu\n",
			       (int)seed, x.data_segs, x.beyond, x.beyond_allowed,
			       (unsigned long long)sa->tcp_window_probes,
			       (unsigned long long)sa->tcp_rtos, (unsigned long long)sa->tcp_fast_retrans,
			       (unsigned long long)tern_sim_now(x.sim));
		if (test_failed())
			test_fail(__FILE__, __LINE__, "seed %" PRIu64 ": %u beyond (%u allowed), "
				  "%u shrinks, %u bytes", seed, x.beyond, x.beyond_allowed,
				  x.b_shrinks, x.rcvd);
		tern_sim_free(x.sim);
	}
}
