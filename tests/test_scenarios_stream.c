/*
 * The byte-stream scenarios of `tern sim` (tools/scenario.c): zero-window, keepalive,
 * keepalive-live, peer-vanished, close-wait-leak and transfer, each asserted against
 * SCENARIOS.md, RFC 9293, RFC 1122, RFC 5681, RFC 6298 and Linux: what each host sent and
 * when, every state change, every error the applications got, what is left on each stack,
 * and for the transfers that every byte arrived once and in order.
 *
 * Every expected number is derived from a rule, never copied from a run:
 *   - the one-way delay is 10 ms (scn_run's default), so a round trip is 20 ms;
 *   - the window is 64240: rmem_default (128 KiB) cut to the unscaled 16-bit field and rounded
 *     down to whole segments of MSS 1460 (mtu 1500 - 40), as Linux's __tcp_select_window;
 *   - RFC 6298: after one RTT sample R = 20 ms, SRTT = R and RTTVAR = R/2 (§2.2), RTO = SRTT +
 *     max(rto_min 200 ms, 4*RTTVAR = 40 ms) = 220 ms; it doubles on each timeout (§5.5) up
 *     to rto_max 120 s; further samples of 20 ms leave it at 220 ms (RTTVAR only shrinks);
 *   - the ACK of a received FIN is delayed by delack_min = 40 ms (Linux's pingpong mode), data
 *     having come first in every scenario here (before any data, ato is 0 and it leaves at once);
 *   - TIME_WAIT lasts 2*MSL = 60 s; an orphaned FIN_WAIT_2 lasts fin_timeout = 60 s;
 *   - keepalive: 7200 s idle, a probe every 75 s, 9 probes (Linux's tcp_keepalive_*).
 *
 * Behaviour believed wrong is asserted correctly inside #ifdef TERN_KNOWN_BUG.
 */
#include "test.h"
#include "scn_check.h"

#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#define OWD MS(10)              /* one-way delay */
#define RTT (2 * OWD)
#define MSS 1460u               /* mtu 1500 - 40 (IPv4 and TCP headers) */
#define WIN ((uint16_t)((65535u / MSS) * MSS)) /* 64240 */
#define DELACK MS(40)           /* delack_min */
#define RTO_MIN MS(200)         /* Linux's rto_min, the G of RFC 6298 */
#define RTO_MAX SECS(120)       /* Linux's rto_max */
/* RFC 6298 §2.2 after a first sample of one RTT: SRTT + max(G, 4 * RTTVAR), RTTVAR = RTT/2. */
#define RTO_1 (RTT + (RTO_MIN > 4 * (RTT / 2) ? RTO_MIN : 4 * (RTT / 2))) /* 220 ms */
#define MSL SECS(30)
#define TWAIT (2 * MSL)         /* TIME_WAIT */
#define FIN_TIMEOUT SECS(60)    /* orphaned FIN_WAIT_2 */
#define KEEPIDLE SECS(7200)     /* keepalive_time */
#define KEEPINTVL SECS(75)      /* keepalive_intvl */
#define KEEPCNT 9u              /* keepalive_probes */
#define OOW_LIMIT MS(500)       /* invalid_ratelimit: one out-of-window ACK per 500 ms */
#define MAX_QUICKACKS 16u       /* Linux's TCP_MAX_QUICKACKS */
#define SNDBUF 16384u           /* wmem_default (Linux's tcp_wmem[1]) */
#define IW (10u * MSS)          /* initial cwnd, RFC 6928: 10 segments */

/* The handshake every scenario with a listener starts with (RFC 9293 §3.5 figure 6): the
 * SYN takes the ISN, the SYN-ACK acknowledges ISN + 1 and the third segment consumes none.
 * The server's SYN-ACK offers its receive window (bwin). */
#define HS_A_SEGS {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0}
#define HS_B_SEGS_W(bwin) {OWD, F_SYN | F_ACK, ib, ia + 1, 0, (bwin), 0}
#define HS_B_SEGS HS_B_SEGS_W(WIN)
#define HS_A_STATES {0, CLOSED, SYN_SENT}, {RTT, SYN_SENT, ESTABLISHED}
#define HS_B_STATES                                                                           \
	{0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD}, {3 * OWD, SYN_RCVD, ESTABLISHED}

static const struct tern_stats *stats(const struct run *r, int h)
{
	return tern_stack_stats(tern_sim_stack(r->s->sim, h));
}

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Sequence numbers compare modulo 2^32 (RFC 9293 §3.4). */
static bool seq_after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

/* ---- expected lists built in code, for exchanges whose length follows from a rule ---- */

struct xlist {
	struct xseg x[512];
	size_t n;
};

static void xpush(struct xlist *l, uint64_t t, uint16_t flags, uint32_t seq, uint32_t ack,
		  uint32_t len, uint16_t win, unsigned fate)
{
	REQUIRE(l->n < sizeof(l->x) / sizeof(l->x[0]));
	l->x[l->n++] = (struct xseg){t, flags, seq, ack, len, win, fate};
}
#define CHECK_SENT_LIST(r, h, l) check_sent_(__FILE__, __LINE__, (r), (h), (l)->x, (l)->n)

struct xstlist {
	struct xstate x[128];
	size_t n;
};

static void stpush(struct xstlist *l, uint64_t t, int from, int to)
{
	REQUIRE(l->n < sizeof(l->x) / sizeof(l->x[0]));
	l->x[l->n++] = (struct xstate){t, from, to};
}
#define CHECK_STATES_LIST(r, h, l) check_states_(__FILE__, __LINE__, (r), (h), (l)->x, (l)->n)

/* Connections of a host counted by state, as `netstat | awk '{++S[$NF]}'` does. */
struct by_state {
	unsigned n[TERN_STATE_MAX];
	unsigned total, with_fd;
	uint32_t rcv_queue, snd_queue; /* connections' buffers (a listener's are its queues) */
	uint32_t accept_queue;         /* listeners: connections waiting for accept() */
};

static void tally_one(void *user, const struct tern_conn_info *c)
{
	struct by_state *b = user;
	if (c->state > 0 && c->state < TERN_STATE_MAX)
		b->n[c->state]++;
	b->total++;
	b->with_fd += c->fd >= 0;
	if (c->state == TERN_STATE_LISTEN) {
		b->accept_queue += c->rcv_queue; /* as ss shows Recv-Q for a listener */
	} else {
		b->rcv_queue += c->rcv_queue;
		b->snd_queue += c->snd_queue;
	}
}

static struct by_state tally(const struct run *r, int h)
{
	struct by_state b;
	memset(&b, 0, sizeof(b));
	size_t n = tern_stack_foreach(tern_sim_stack(r->s->sim, h), tally_one, &b);
	CHECK_EQ(n, b.total);
	return b;
}

/* Run a scenario without run_index(): for the transfers, whose thousands of segments go past
 * struct run's per-host index (RUN_MAX) and would trip its wire-event bookkeeping. */
static struct run *run_raw(const char *name, const struct scn_opts *o)
{
	struct run *r = calloc(1, sizeof(*r));
	REQUIRE(r);
	r->opts = *o;
	const struct scenario *sc = scenario_find(name);
	REQUIRE(sc != NULL);
	REQUIRE_EQ(scn_run(sc, &r->opts, &r->log, NULL, NULL, &r->s), 0);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* zero-window                                                                                 */
/* ------------------------------------------------------------------------------------------ */

#define ZW_RCVBUF 4096u                     /* SO_RCVBUF of b's listener (inherited) */
#define ZW_WIN ((ZW_RCVBUF / MSS) * MSS)    /* 2920: the buffer in whole segments */
#define ZW_BYTES 20000u                     /* what a sends */
#define ZW_T_SEND MS(100)                   /* b stops reading and a sends at 0.1 s */
#define ZW_T_READ SECS(10)                  /* b reads again */
#define ZW_T_CLOSE SECS(12)                 /* a closes */

/* The persist probes. The window closes when b's second ACK reaches a: b sends it one
 * delayed-ACK timeout after the data arrives, because its quick-ACK budget (half the 2920-byte
 * window in segments: one) went on the first. The first probe follows max(RTO, rto_min) later
 * (Linux's tcp_probe0_base), and the wait doubles with each probe (RFC 1122 §4.2.2.17, RFC
 * 9293 §3.8.6.1). An answer that leaves the window shut starts the current wait over from its
 * arrival (Linux's tcp_ack_probe); b answers a probe unless it answered one less than
 * invalid_ratelimit ago (Linux's tcp_oow_rate_limited). The last probe is the one before b's
 * window update (sent at 10 s) arrives. Returns how many; times in p[], whether b answered
 * in answered[]. */
static unsigned zw_probes(uint64_t p[16], bool answered[16])
{
	uint64_t base = max_u64(RTO_1, RTO_MIN); /* 220 ms */
	uint64_t t = ZW_T_SEND + OWD + DELACK + OWD + base;
	uint64_t last_answer = 0;
	unsigned n = 0;
	while (t < ZW_T_READ + OWD && n < 16) {
		uint64_t arr = t + OWD;
		bool ans = n == 0 || arr - last_answer >= OOW_LIMIT;
		if (ans)
			last_answer = arr;
		p[n] = t;
		answered[n] = ans;
		n++;
		t = (ans ? arr + OWD : t) + (base << n);
	}
	return n;
}

static unsigned zw_probe_times(uint64_t p[16])
{
	bool answered[16];
	return zw_probes(p, answered);
}

/* Build the whole exchange of the zero-window scenario from the rules. */
static void zw_expected(uint32_t ia, uint32_t ib, struct xlist *xa, struct xlist *xb)
{
	xpush(xa, 0, F_SYN, ia, 0, 0, WIN, 0);
	xpush(xa, RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0);
	/* b offers its 4 KiB buffer in whole segments: 2920 (Linux's tcp_select_initial_window). */
	xpush(xb, OWD, F_SYN | F_ACK, ib, ia + 1, 0, ZW_WIN, 0);
	/* a's 20000 bytes fill the offered window: two full segments (neither ends the write,
	 * so no PSH). b's application does not read: its first ACK keeps the right edge where
	 * it was (1460 left, RFC 9293 §3.8.6.2.2: never shrink), the second closes the window. */
	for (uint32_t off = 0; off < ZW_WIN; off += MSS)
		xpush(xa, ZW_T_SEND, F_ACK, ia + 1 + off, ib + 1, MSS, WIN, 0);
	xpush(xb, ZW_T_SEND + OWD, F_ACK, ib + 1, ia + 1 + MSS, 0, ZW_WIN - MSS, 0);
	xpush(xb, ZW_T_SEND + OWD + DELACK, F_ACK, ib + 1, ia + 1 + ZW_WIN, 0, 0, 0);
	/* Probes: ACK with SND.UNA - 1 and no data (Linux's tcp_xmit_probe_skb); b answers with
	 * its ACK and window 0 (out of window: RFC 9293 §3.10.7.4) those zw_probes() says. */
	uint64_t p[16];
	bool answered[16];
	unsigned np = zw_probes(p, answered);
	for (unsigned k = 0; k < np; k++) {
		xpush(xa, p[k], F_ACK, ia + ZW_WIN, ib + 1, 0, WIN, 0);
		if (answered[k])
			xpush(xb, p[k] + OWD, F_ACK, ib + 1, ia + 1 + ZW_WIN, 0, 0, 0);
	}
	/* b reads the 2920 bytes: the window opens from 0 to 2920, at least doubling, so b
	 * says so at once (Linux's tcp_cleanup_rbuf). */
	xpush(xb, ZW_T_READ, F_ACK, ib + 1, ia + 1 + ZW_WIN, 0, ZW_WIN, 0);
	/* From the update on, each round trip moves one window: a sends two segments as soon
	 * as the window allows; b reads each segment as it arrives. The first data after a
	 * silence longer than the RTO restarts quick-ACK mode (Linux's tcp_event_data_recv) with
	 * a budget of half the window in segments (one): the first segment draws an immediate
	 * ACK (its window still the old right edge) and, once read, a window update. After that
	 * only the update goes (the window doubles from 1460 to 2920); the last, short segment
	 * does not double it (1900 -> 2920), so its ACK waits delack_min. */
	uint32_t sent = ZW_WIN;
	unsigned quick = ZW_WIN / (2 * MSS);
	for (uint64_t t = ZW_T_READ + OWD; sent < ZW_BYTES; t += RTT) {
		for (uint32_t k = 0; k < ZW_WIN / MSS && sent < ZW_BYTES; k++) {
			uint32_t len = ZW_BYTES - sent < MSS ? ZW_BYTES - sent : MSS;
			uint16_t flags = F_ACK | (sent + len == ZW_BYTES ? F_PSH : 0);
			uint32_t end = ia + 1 + sent + len;
			xpush(xa, t, flags, ia + 1 + sent, ib + 1, len, WIN, 0);
			if (quick) {
				xpush(xb, t + OWD, F_ACK, ib + 1, end, 0, (uint16_t)(ZW_WIN - len), 0);
				xpush(xb, t + OWD, F_ACK, ib + 1, end, 0, ZW_WIN, 0);
				quick = quick > 2 ? quick - 2 : 0;
			} else if (ZW_WIN >= 2 * (ZW_WIN - len)) {
				xpush(xb, t + OWD, F_ACK, ib + 1, end, 0, ZW_WIN, 0);
			} else {
				xpush(xb, t + OWD + DELACK, F_ACK, ib + 1, end, 0, ZW_WIN, 0);
			}
			sent += len;
		}
	}
	/* a closes at 12 s; b's application closes at end of stream at once, so its FIN
	 * carries the ACK (three segments), and a goes from FIN_WAIT_1 straight to TIME_WAIT. */
	xpush(xa, ZW_T_CLOSE, F_FIN | F_ACK, ia + 1 + ZW_BYTES, ib + 1, 0, WIN, 0);
	xpush(xb, ZW_T_CLOSE + OWD, F_FIN | F_ACK, ib + 1, ia + 2 + ZW_BYTES, 0, ZW_WIN, 0);
	xpush(xa, ZW_T_CLOSE + RTT, F_ACK, ia + 2 + ZW_BYTES, ib + 2, 0, WIN, 0);
}

static uint32_t rd32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Rebuild from a pcap file the bytes host src sent, at their distance from base (the first
 * data sequence number). Returns the length of the stream covered from 0 without a hole;
 * *conflicts counts bytes sent twice with different values. */
static size_t pcap_stream(const char *path, uint32_t src, uint32_t base, uint8_t *buf,
			  bool *have, size_t cap, size_t *conflicts)
{
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	uint8_t hdr[24], rec[16];
	static uint8_t pkt[65536];
	*conflicts = 0;
	memset(have, 0, cap);
	REQUIRE_EQ(fread(hdr, 1, 24, f), 24);
	uint32_t magic;
	memcpy(&magic, hdr, 4);
	CHECK_EQ(magic, 0xa1b2c3d4u);
	while (fread(rec, 1, 16, f) == 16) {
		uint32_t caplen;
		memcpy(&caplen, rec + 8, 4);
		REQUIRE(caplen <= sizeof(pkt));
		REQUIRE_EQ(fread(pkt, 1, caplen, f), caplen);
		if (caplen < 40 || rd32be(pkt + 12) != src || pkt[9] != 6)
			continue;
		size_t ihl = (size_t)(pkt[0] & 15) * 4;
		size_t total = (size_t)pkt[2] << 8 | pkt[3];
		const uint8_t *tcp = pkt + ihl;
		size_t doff = (size_t)(tcp[12] >> 4) * 4;
		if (ihl + doff > total || total > caplen)
			continue;
		size_t len = total - ihl - doff;
		uint32_t off = rd32be(tcp + 4) - base;
		for (size_t i = 0; i < len; i++) {
			if (off + i >= cap)
				break;
			uint8_t v = tcp[doff + i];
			if (have[off + i] && buf[off + i] != v)
				(*conflicts)++;
			buf[off + i] = v;
			have[off + i] = true;
		}
	}
	fclose(f);
	size_t n = 0;
	while (n < cap && have[n])
		n++;
	return n;
}

TEST(scenario_zero_window)
{
	char dir[] = "/tmp/tern-zw-XXXXXX", pcap[64];
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(pcap, sizeof(pcap), "%s/zw.pcap", dir);
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	o.pcap = pcap;
	struct run *r = run_scn_opts("zero-window", &o);
	uint32_t ia = r->isn[A], ib = r->isn[B];
	static struct xlist xa, xb;
	zw_expected(ia, ib, &xa, &xb);
	CHECK_SENT_LIST(r, A, &xa);
	CHECK_SENT_LIST(r, B, &xb);
	/* Persist timing in plain numbers: probes at 0.38, 0.84, 1.72, 3.50 and 7.04 s (the
	 * waits 220, 440, 880, 1760, 3520 ms, each from the previous probe or its answer). */
	uint64_t p[16];
	unsigned np = zw_probe_times(p);
	CHECK_EQ(np, 5);
	static const uint64_t want_p[5] = {MS(380), MS(840), MS(1720), MS(3500), MS(7040)};
	for (unsigned k = 0; k < np && k < 5; k++)
		CHECK_EQ(p[k], want_p[k]);
	/* The second probe reaches b 460 ms after b's first answer: inside the 500 ms limit,
	 * so b leaves it unanswered and a waits the full 880 ms from the probe. */
	CHECK(p[1] - p[0] < OOW_LIMIT);
	CHECK_STATES(r, A, HS_A_STATES, {ZW_T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {ZW_T_CLOSE + RTT, FIN_WAIT_1, TIME_WAIT},
		     {ZW_T_CLOSE + RTT + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {ZW_T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {ZW_T_CLOSE + OWD, CLOSE_WAIT, LAST_ACK},
		     {ZW_T_CLOSE + 3 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, ZW_BYTES);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	/* Counters: five probes, five segments out of b's window (one unanswered), nothing
	 * retransmitted (a probe is not a retransmission), nothing dropped for lack of room. */
	CHECK_EQ(stats(r, A)->tcp_window_probes, np);
	CHECK_EQ(stats(r, B)->tcp_out_of_window, np);
	CHECK_EQ(stats(r, A)->tcp_retrans, 0);
	CHECK_EQ(stats(r, A)->tcp_timeouts, 0);
	CHECK_EQ(stats(r, B)->tcp_rcvbuf_drops, 0);
	CHECK_QUIET(r);
	run_free(r); /* closes the pcap file */

	/* Byte for byte: the stream a put on the wire is the pattern the scenario sends, each
	 * byte once (every segment above arrived one delay later, in order, and b's
	 * application counted all 20000 bytes and then end of stream). */
	static uint8_t got[ZW_BYTES + 64];
	static bool have[ZW_BYTES + 64];
	size_t conflicts;
	size_t n = pcap_stream(pcap, SCN_ADDR_A, ia + 1, got, have, sizeof(got), &conflicts);
	CHECK_EQ(n, ZW_BYTES);
	CHECK_EQ(conflicts, 0);
	size_t bad = 0;
	for (size_t i = 0; i < ZW_BYTES; i++)
		bad += got[i] != scn_pattern(0, i);
	CHECK_EQ(bad, 0);
	CHECK_EQ(unlink(pcap), 0);
	CHECK_EQ(rmdir(dir), 0);
}

/* The quick-ACK budget is rcv_wnd / (2 * rcv_mss) segments, 2 only when that is 0 (Linux's
 * tcp_incr_quickack), and it is cancelled when less than half the buffer is free
 * (__tcp_select_window). With b's 2920-byte window that budget is one ACK: the first segment
 * is ACKed at once, the second (one segment beyond rcv_wup, not more than one, RFC 1122
 * §4.2.3.2) waits delack_min. */
TEST(scenario_zero_window_quick_ack_budget_as_linux)
{
	struct run *r = run_scn("zero-window");
	REQUIRE(r->nsent[B] >= 3);
	CHECK_EQ(r->sent[B][1].t, ZW_T_SEND + OWD);          /* quick ACK: 1461, window 1460 */
	CHECK_EQ(r->sent[B][2].t, ZW_T_SEND + OWD + DELACK); /* delayed: 2921, window 0 */
	CHECK_EQ(r->sent[B][2].seg.win, 0);
	/* a learns of the zero window one delayed ACK later; the first probe follows RTO. */
	REQUIRE(r->nsent[A] >= 5);
	CHECK_EQ(r->sent[A][4].t, ZW_T_SEND + RTT + DELACK + RTO_1);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* keepalive                                                                                   */
/* ------------------------------------------------------------------------------------------ */

TEST(scenario_keepalive)
{
	/* The server vanishes at 1 s (the wire loses everything). a last heard from b at RTT
	 * (the SYN-ACK): the first probe goes KEEPIDLE after that, then one every KEEPINTVL,
	 * 9 in all, each an ACK with SND.UNA - 1 and no data (RFC 1122 §4.2.3.6; Linux's
	 * tcp_keepalive_timer). One interval after the ninth, unanswered, a resets the
	 * connection (RST|ACK at SND.NXT, Linux's tcp_send_active_reset) and the application
	 * gets ETIMEDOUT. b, which never hears of it, keeps its connection. */
	struct run *r = run_scn("keepalive");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t first = RTT + KEEPIDLE; /* 7200.02 */
	const uint64_t abort_t = first + KEEPCNT * KEEPINTVL; /* 7875.02 */
	static struct xlist xa;
	xpush(&xa, 0, F_SYN, ia, 0, 0, WIN, 0);
	xpush(&xa, RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0);
	for (unsigned k = 0; k < KEEPCNT; k++)
		xpush(&xa, first + k * KEEPINTVL, F_ACK, ia, ib + 1, 0, WIN, FATE_DROP);
	xpush(&xa, abort_t, F_RST | F_ACK, ia + 1, ib + 1, 0, WIN, FATE_DROP);
	CHECK_SENT_LIST(r, A, &xa);
	CHECK_SENT(r, B, HS_B_SEGS);
	CHECK_EQ(abort_t, SECS(7875) + RTT);
	CHECK_STATES(r, A, HS_A_STATES, {abort_t, ESTABLISHED, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES);
	CHECK_ERRORS(r, A, {abort_t, ETIMEDOUT});
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, KEEPCNT + 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	const struct tern_stats *sa = stats(r, A);
	CHECK_EQ(sa->tcp_keepalive_probes, KEEPCNT);
	CHECK_EQ(sa->tcp_keepalive_drops, 1);
	CHECK_EQ(sa->tcp_timeouts, 1);
	CHECK_EQ(sa->tcp_estab_resets, 1);
	CHECK_EQ(sa->tcp_rst_out, 1);
	CHECK_EQ(sa->tcp_retrans, 0);
	CHECK_EQ(tern_sim_now(r->s->sim), abort_t);
	/* b's idle connection has no timer (no keepalive there): nothing more happens. */
	CHECK_QUIET(r);
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	run_free(r);
}

/* keepalive-live as far as t: a probes KEEPIDLE after the last segment it received, b answers
 * (the probe is below its window: an ACK, RFC 9293 §3.10.7.4), and the answer starts the
 * idle time over, so probe k+1 goes KEEPIDLE after answer k arrived. */
static void check_keepalive_live(struct run *r, unsigned probes)
{
	uint32_t ia = r->isn[A], ib = r->isn[B];
	static struct xlist xa, xb;
	xa.n = xb.n = 0;
	xpush(&xa, 0, F_SYN, ia, 0, 0, WIN, 0);
	xpush(&xa, RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0);
	xpush(&xb, OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0);
	uint64_t heard = RTT; /* the SYN-ACK */
	for (unsigned k = 0; k < probes; k++) {
		uint64_t t = heard + KEEPIDLE;
		xpush(&xa, t, F_ACK, ia, ib + 1, 0, WIN, 0);
		xpush(&xb, t + OWD, F_ACK, ib + 1, ia + 1, 0, WIN, 0);
		heard = t + RTT;
	}
	CHECK_SENT_LIST(r, A, &xa);
	CHECK_SENT_LIST(r, B, &xb);
	CHECK_STATES(r, A, HS_A_STATES);
	CHECK_STATES(r, B, HS_B_STATES);
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_CONNS(r, A, {ESTABLISHED, 0, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	CHECK_EQ(stats(r, A)->tcp_keepalive_probes, probes);
	CHECK_EQ(stats(r, A)->tcp_keepalive_drops, 0);
	CHECK_EQ(stats(r, B)->tcp_out_of_window, probes);
	struct tern_tcp_info info;
	int fd = scn_accepted_fd(r->s, A);
	REQUIRE(fd >= 0);
	REQUIRE_EQ(tern_sock_info(tern_sim_stack(r->s->sim, A), fd, &info), 0);
	CHECK_EQ(info.state, TERN_STATE_ESTABLISHED);
	CHECK_EQ(info.probes, 0); /* every probe was answered */
}

TEST(scenario_keepalive_live)
{
	/* The scenario runs to 15000 s: probes at 7200.02 and 14400.04 (the first answer came
	 * in at 7200.04), each answered. */
	struct run *r = run_scn("keepalive-live");
	CHECK_EQ(tern_sim_now(r->s->sim), SECS(15000));
	check_keepalive_live(r, 2);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	/* Run on: the third probe at 21600.06, answered too; the connection stays. */
	tern_sim_run_until(r->s->sim, SECS(21700));
	run_index(r);
	check_keepalive_live(r, 3);
	run_free(r);
}

/* b's out-of-window ACK rate limit keeps the time of its last such ACK as a 16-bit count of
 * milliseconds (struct tern_tcb.last_oow_ack), which wraps every 65.536 s; a probe that comes
 * k * 65.536 s + less than 500 ms after the last answered one must still be answered (the
 * connection's own silence since its previous segment tells the wrap apart), as Linux's
 * 32-bit stamp does. With keepalive_time 66 s, and with a probe interval of exactly
 * 65.536 s, every probe is answered and the connection lives. */
TEST(scenario_keepalive_live_probes_66s_apart_are_answered)
{
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	o.sets[0].name = "keepalive_time";
	o.sets[0].value = "66s";
	o.nsets = 1;
	struct run *r = run_scn_opts("keepalive-live", &o);
	/* Every probe a sent was answered by b, one delay later. */
	unsigned probes = 0, unanswered = 0;
	uint64_t first_unanswered = 0;
	for (size_t k = 2; k < r->nsent[A]; k++) {
		const struct sent *s = &r->sent[A][k];
		if (s->seg.flags != F_ACK || s->seg.seq != r->isn[A])
			continue;
		probes++;
		bool answered = false;
		for (size_t j = 0; j < r->nsent[B]; j++)
			answered |= r->sent[B][j].t == s->t + OWD;
		if (!answered && !unanswered++)
			first_unanswered = s->t;
	}
	CHECK(probes > 10);
	if (unanswered)
		test_fail(__FILE__, __LINE__, "%u of %u probes unanswered, the first at %.6f s",
			  unanswered, probes, (double)first_unanswered / 1e6);
	CHECK_NO_ERRORS(r, A);
	run_free(r);

	o.sets[1].name = "keepalive_intvl";
	o.sets[1].value = "65536ms";
	o.nsets = 2;
	r = run_scn_opts("keepalive-live", &o);
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_CONNS(r, A, {ESTABLISHED, 0, 80});
	CHECK_EQ(stats(r, A)->tcp_keepalive_drops, 0);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* peer-vanished                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Linux's tcp_model_timeout(): the time `boundary` retransmissions take when the timeout
 * starts at rto_min and doubles up to rto_max. 924.6 s for retries2 = 15. */
static uint64_t model_timeout(unsigned boundary)
{
	unsigned thresh = 0; /* ilog2(rto_max / rto_min) = 9 */
	while ((RTO_MIN << (thresh + 1)) <= RTO_MAX)
		thresh++;
	if (boundary <= thresh)
		return ((2ull << boundary) - 1) * RTO_MIN;
	return ((2ull << thresh) - 1) * RTO_MIN + (uint64_t)(boundary - thresh) * RTO_MAX;
}

/* a sends "hello" at 1 s into a dead wire: the segment goes again at each RTO expiry, the RTO
 * doubling from 220 ms up to rto_max (RFC 6298 §5.5), until an expiry finds that the model
 * time of retries2 retransmissions has passed since the first transmission: ETIMEDOUT
 * (Linux's retransmits_timed_out). No RST: Linux's tcp_write_err just ends it. */
static void check_vanished(struct run *r, unsigned retries2)
{
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t t0 = SECS(1);
	const uint64_t limit = model_timeout(retries2);
	static struct xlist xa;
	xa.n = 0;
	xpush(&xa, 0, F_SYN, ia, 0, 0, WIN, 0);
	xpush(&xa, RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0);
	uint64_t t = t0, rto = RTO_1;
	unsigned retrans = 0;
	for (;;) {
		xpush(&xa, t, F_PSH | F_ACK, ia + 1, ib + 1, 5, WIN, FATE_DROP);
		t += rto; /* the next expiry */
		rto = rto * 2 < RTO_MAX ? rto * 2 : RTO_MAX;
		if (t - t0 >= limit)
			break;
		retrans++;
	}
	const uint64_t abort_t = t;
	CHECK_SENT_LIST(r, A, &xa);
	CHECK_SENT(r, B, HS_B_SEGS);
	CHECK_STATES(r, A, HS_A_STATES, {abort_t, ESTABLISHED, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES);
	CHECK_ERRORS(r, A, {abort_t, ETIMEDOUT});
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, retrans + 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	const struct tern_stats *sa = stats(r, A);
	CHECK_EQ(sa->tcp_retrans, retrans);
	CHECK_EQ(sa->tcp_rtos, retrans);
	CHECK_EQ(sa->tcp_timeouts, 1);
	CHECK_EQ(sa->tcp_estab_resets, 1);
	CHECK_EQ(sa->tcp_rst_out, 0);
	CHECK_EQ(tern_sim_now(r->s->sim), abort_t);
	CHECK_QUIET(r);
}

TEST(scenario_peer_vanished)
{
	struct run *r = run_scn("peer-vanished");
	check_vanished(r, 15);
	/* In numbers: the model time is 924.6 s; the 15th retransmission goes at 826.06 s (the
	 * RTO reached rto_max with the 11th), the next expiry at 946.06 s is the first past
	 * 1 s + 924.6 s, and it ends the connection. */
	CHECK_EQ(model_timeout(15), MS(924600));
	CHECK_EQ(r->nsent[A], 2 + 1 + 15);
	if (r->nsent[A] == 18) {
		CHECK_EQ(r->sent[A][3].t - r->sent[A][2].t, RTO_1);
		CHECK_EQ(r->sent[A][12].t - r->sent[A][11].t, RTO_1 << 9); /* 112.64 s */
		CHECK_EQ(r->sent[A][13].t - r->sent[A][12].t, RTO_MAX);     /* capped */
		CHECK_EQ(r->sent[A][17].t, MS(826060));
		CHECK(r->sent[A][17].t - SECS(1) < MS(924600));
	}
	CHECK_ERRORS(r, A, {MS(946060), ETIMEDOUT});
	run_free(r);
}

TEST(scenario_peer_vanished_retries2)
{
	/* With an RTO of 220 ms (> rto_min) the N-th retransmission's expiry is 220*(2^(N+1)-1)
	 * ms after the first transmission, past the model 200*(2^(N+1)-1) ms, while the one
	 * before is not: retries2 = N gives exactly N retransmissions while the RTO is below
	 * rto_max. */
	for (unsigned n = 1; n <= 8; n++) {
		char val[8];
		snprintf(val, sizeof(val), "%u", n);
		struct scn_opts o;
		memset(&o, 0, sizeof(o));
		o.seed = 1;
		o.sets[0].name = "retries2";
		o.sets[0].value = val;
		o.nsets = 1;
		struct run *r = run_scn_opts("peer-vanished", &o);
		check_vanished(r, n);
		CHECK_EQ(stats(r, A)->tcp_retrans, n);
		CHECK_EQ(r->nsent[A], 2 + 1 + n);
		CHECK_ERRORS(r, A, {SECS(1) + RTO_1 * ((2ull << n) - 1), ETIMEDOUT});
		run_free(r);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* close-wait-leak                                                                             */
/* ------------------------------------------------------------------------------------------ */

#define CWL_CONNS 5u
#define CWL_REQ 18u /* "GET / HTTP/1.0\r\n\r\n" */

TEST(scenario_close_wait_leak)
{
	/* Client k (k = 0..4) connects at k s, sends its request at k + 0.2 s and closes at
	 * k + 0.5 s. b's application reads the request and end of stream but never closes:
	 * each of its connections stays in CLOSE_WAIT (RFC 9293: only the application's CLOSE
	 * leaves it), with no timer. b ACKs the request at once (the first data starts quick-ACK
	 * mode) and the FIN after delack_min (pingpong). Each of a's orphaned connections waits
	 * in FIN_WAIT_2 for a FIN that never comes, fin_timeout = 60 s, then goes. */
	struct run *r = run_scn("close-wait-leak");
	uint32_t ia[CWL_CONNS], ib[CWL_CONNS];
	uint16_t port[CWL_CONNS];
	REQUIRE_EQ(r->nsent[A], 4 * CWL_CONNS);
	REQUIRE_EQ(r->nsent[B], 3 * CWL_CONNS);
	for (unsigned k = 0; k < CWL_CONNS; k++) {
		ia[k] = r->sent[A][4 * k].seg.seq;
		ib[k] = r->sent[B][3 * k].seg.seq;
		port[k] = r->sent[A][4 * k].seg.sport;
		CHECK(port[k] >= 32768 && port[k] <= 60999);
		CHECK_EQ(r->sent[B][3 * k].seg.dport, port[k]);
		for (unsigned j = 0; j < k; j++) {
			CHECK(port[j] != port[k]); /* five 4-tuples */
			CHECK(ia[j] != ia[k]);
		}
	}
	static struct xlist xa, xb;
	static struct xstlist sa, sb;
	stpush(&sb, 0, CLOSED, LISTEN);
	for (unsigned k = 0; k < CWL_CONNS; k++) {
		uint64_t t = SECS(k);
		uint64_t req = t + MS(200), fin = t + MS(500);
		xpush(&xa, t, F_SYN, ia[k], 0, 0, WIN, 0);
		xpush(&xa, t + RTT, F_ACK, ia[k] + 1, ib[k] + 1, 0, WIN, 0);
		xpush(&xa, req, F_PSH | F_ACK, ia[k] + 1, ib[k] + 1, CWL_REQ, WIN, 0);
		xpush(&xa, fin, F_FIN | F_ACK, ia[k] + 1 + CWL_REQ, ib[k] + 1, 0, WIN, 0);
		xpush(&xb, t + OWD, F_SYN | F_ACK, ib[k], ia[k] + 1, 0, WIN, 0);
		xpush(&xb, req + OWD, F_ACK, ib[k] + 1, ia[k] + 1 + CWL_REQ, 0, WIN, 0);
		xpush(&xb, fin + OWD + DELACK, F_ACK, ib[k] + 1, ia[k] + 2 + CWL_REQ, 0, WIN, 0);
		stpush(&sa, t, CLOSED, SYN_SENT);
		stpush(&sa, t + RTT, SYN_SENT, ESTABLISHED);
		stpush(&sa, fin, ESTABLISHED, FIN_WAIT_1);
		stpush(&sa, fin + RTT + DELACK, FIN_WAIT_1, FIN_WAIT_2);
		stpush(&sb, t + OWD, LISTEN, SYN_RCVD);
		stpush(&sb, t + 3 * OWD, SYN_RCVD, ESTABLISHED);
		stpush(&sb, fin + OWD, ESTABLISHED, CLOSE_WAIT);
	}
	for (unsigned k = 0; k < CWL_CONNS; k++)
		stpush(&sa, SECS(k) + MS(500) + RTT + DELACK + FIN_TIMEOUT, FIN_WAIT_2, CLOSED);
	CHECK_SENT_LIST(r, A, &xa);
	CHECK_SENT_LIST(r, B, &xb);
	CHECK_STATES_LIST(r, A, &sa);
	CHECK_STATES_LIST(r, B, &sb);
	CHECK_EQ(sa.x[sa.n - 1].t, MS(64560)); /* the last FIN_WAIT_2 ends at 4.56 + 60 s */
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, CWL_CONNS, 0, 0, 0);
	CHECK_APP(r, B, 0, CWL_CONNS, CWL_CONNS, CWL_CONNS * CWL_REQ);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);

	/* The listing at the end: b holds one LISTEN and five CLOSE_WAIT (the leak: each still
	 * held by a descriptor of the application, its data read), a holds nothing. */
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {CLOSE_WAIT, 80, port[0]}, {CLOSE_WAIT, 80, port[1]},
		    {CLOSE_WAIT, 80, port[2]}, {CLOSE_WAIT, 80, port[3]}, {CLOSE_WAIT, 80, port[4]});
	struct by_state tb = tally(r, B), ta = tally(r, A);
	CHECK_EQ(tb.n[TERN_STATE_CLOSE_WAIT], CWL_CONNS);
	CHECK_EQ(tb.n[TERN_STATE_LISTEN], 1);
	CHECK_EQ(tb.total, CWL_CONNS + 1);
	CHECK_EQ(tb.with_fd, CWL_CONNS + 1);
	CHECK_EQ(tb.rcv_queue, 0);
	CHECK_EQ(tb.snd_queue, 0);
	CHECK_EQ(tb.accept_queue, 0); /* every connection was accepted */
	CHECK_EQ(ta.total, 0);
	CHECK_EQ(tern_sim_now(r->s->sim), SECS(120));
	/* CLOSE_WAIT has no timer: ten more minutes change nothing. */
	CHECK_QUIET(r);
	tb = tally(r, B);
	CHECK_EQ(tb.n[TERN_STATE_CLOSE_WAIT], CWL_CONNS);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* transfer                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define XFER_BYTES 1000000u

/* The k-th event of a kind sent by host h with a given flag, scanning the whole log. */
static const struct tern_sim_ev *find_send(const struct run *r, int h, uint16_t flag, unsigned k)
{
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind == TERN_SIM_EV_SEND && ev->host == h && (ev->tr.u.seg.flags & flag) &&
		    !k--)
			return ev;
	}
	return NULL;
}

/* What both applications of a transfer saw: everything, once, as sent; no error. */
static void check_transfer_done(const char *file, int line, const struct run *r,
				uint64_t a_to_b, uint64_t b_to_a)
{
	const struct scn *s = r->s;
	if (s->bulk_bad || s->bulk_error)
		test_fail(file, line, "bulk_bad %llu, bulk_error %d", (unsigned long long)s->bulk_bad,
			  s->bulk_error);
	if (s->app[A].rx_bytes != b_to_a || s->app[B].rx_bytes != a_to_b)
		test_fail(file, line, "a received %llu (want %llu), b received %llu (want %llu)",
			  (unsigned long long)s->app[A].rx_bytes, (unsigned long long)b_to_a,
			  (unsigned long long)s->app[B].rx_bytes, (unsigned long long)a_to_b);
	if (s->app[A].connected != 1 || s->app[B].accepted != 1 || s->app[A].eofs != 1 ||
	    s->app[B].eofs != 1)
		test_fail(file, line, "connected %u accepted %u eofs %u/%u", s->app[A].connected,
			  s->app[B].accepted, s->app[A].eofs, s->app[B].eofs);
	if (s->app[A].nerrors || s->app[B].nerrors)
		test_fail(file, line, "errors: a %u, b %u", s->app[A].nerrors, s->app[B].nerrors);
	for (size_t i = 0; i < r->log.n; i++)
		if (r->log.ev[i].ev.kind == TERN_SIM_EV_ERROR)
			test_fail(file, line, "error event %s on %s at %.6f",
				  tern_errno_name(r->log.ev[i].ev.tr.u.error),
				  host_str(r->log.ev[i].ev.host), (double)r->log.ev[i].ev.t_us / 1e6);
	/* Both ends closed: nothing left but b's listener, nothing left to happen. */
	struct conn_list la, lb;
	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	size_t na = tern_stack_foreach(tern_sim_stack(s->sim, A), conn_collect, &la);
	size_t nb = tern_stack_foreach(tern_sim_stack(s->sim, B), conn_collect, &lb);
	if (na != 0 || nb != 1 || lb.c[0].state != TERN_STATE_LISTEN)
		test_fail(file, line, "left: a %zu connections, b %zu", na, nb);
	if (!tern_sim_idle(s->sim))
		test_fail(file, line, "the simulation is not idle");
}
#define CHECK_TRANSFER_DONE(r, ab, ba) check_transfer_done(__FILE__, __LINE__, (r), (ab), (ba))

TEST(scenario_transfer)
{
	/* 1000000 bytes each way at once, no impairment. Each side's application keeps its
	 * 16 KiB send buffer (wmem_default; the scenario sets wmem_max to it, so the buffer
	 * does not grow with cwnd) full. The first flight is the initial window, 10
	 * segments (RFC 6928); after one round trip the whole buffer is in flight and every
	 * round trip acknowledges and refills it, so by round k the application has queued
	 * IW + k * SNDBUF bytes: the last byte is queued in round ceil((N - IW) / SNDBUF) = 61,
	 * at 0.02 + 61 * 0.02 = 1.24 s for a (connected at one RTT), 1.25 s for b (at 3 OWD).
	 * Each then shuts down its sending side: the FINs cross (RFC 9293 figure 14):
	 * FIN_WAIT_1 -> CLOSING -> TIME_WAIT on both sides, gone 2*MSL later. */
	struct run *r = run_scn("transfer");
	const uint32_t rounds = (XFER_BYTES - IW + SNDBUF - 1) / SNDBUF;
	CHECK_EQ(rounds, 61);
	const uint64_t a_last = RTT + rounds * RTT, b_last = 3 * OWD + rounds * RTT;
	CHECK_EQ(a_last, MS(1240));
	/* a's FIN rides on its last data (1.24 s) and reaches b at 1.25 s, just after b's own
	 * shutdown (a's ACKs left before its data and freed b's buffer first). b's FIN reaches a
	 * at 1.26 s, with b's ACK of a's FIN right behind: CLOSING, then TIME_WAIT, at once;
	 * a's ACK of b's FIN takes b to TIME_WAIT at 1.27 s. */
	CHECK_STATES(r, A, HS_A_STATES, {a_last, ESTABLISHED, FIN_WAIT_1},
		     {b_last + OWD, FIN_WAIT_1, CLOSING}, {b_last + OWD, CLOSING, TIME_WAIT},
		     {b_last + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {b_last, ESTABLISHED, FIN_WAIT_1},
		     {a_last + OWD, FIN_WAIT_1, CLOSING}, {b_last + RTT, CLOSING, TIME_WAIT},
		     {b_last + RTT + TWAIT, TIME_WAIT, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 1, XFER_BYTES);
	CHECK_APP(r, B, 0, 1, 1, XFER_BYTES);
	CHECK_EQ(r->s->bulk_bad, 0);
	CHECK_EQ(r->s->bulk_error, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_TRANSFER_DONE(r, XFER_BYTES, XFER_BYTES);
	uint32_t ia = r->isn[A], ib = r->isn[B];
	/* The first flight: 10 full segments at RTT, then nothing until the first ACK. */
	unsigned first = 0;
	for (size_t k = 0; k < r->nsent[A]; k++)
		if (r->sent[A][k].t == RTT && r->sent[A][k].seg.len)
			first++;
	CHECK_EQ(first, IW / MSS);
	/* Each FIN closes exactly N bytes: it comes right after the last byte; the last ACKs
	 * cover both FINs. */
	const struct tern_sim_ev *fa = find_send(r, A, F_FIN, 0), *fb = find_send(r, B, F_FIN, 0);
	REQUIRE(fa && fb);
	CHECK_EQ(fa->tr.u.seg.seq + fa->tr.u.seg.len, ia + 1 + XFER_BYTES);
	CHECK_EQ(fb->tr.u.seg.seq + fb->tr.u.seg.len, ib + 1 + XFER_BYTES);
	CHECK_EQ(fa->t_us, a_last);
	CHECK_EQ(fb->t_us, b_last);
	CHECK(find_send(r, A, F_FIN, 1) == NULL); /* no FIN retransmission */
	CHECK(find_send(r, B, F_FIN, 1) == NULL);
	for (int h = 0; h < 2; h++) {
		const struct tern_stats *st = stats(r, h);
		CHECK_EQ(st->tcp_retrans, 0);
		CHECK_EQ(st->tcp_rtos, 0);
		CHECK_EQ(st->tcp_bad_checksum, 0);
		CHECK_EQ(st->tcp_rcvbuf_drops, 0);
		CHECK_EQ(st->tcp_ofo_queued, 0);
	}
	/* Every segment a connection sends carries its congestion state; ssthresh is never set
	 * without a loss (RFC 5681 §3.1: "arbitrarily high"). The send buffer bounds what is
	 * ever in flight. */
	uint32_t max_flight[2] = {0, 0}, una[2] = {ia + 1, ib + 1};
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind == TERN_SIM_EV_RECV && (ev->tr.u.seg.flags & F_ACK) &&
		    seq_after(ev->tr.u.seg.ack, una[ev->host]))
			una[ev->host] = ev->tr.u.seg.ack;
		if (ev->kind != TERN_SIM_EV_SEND)
			continue;
		if (ev->tr.cwnd == 0 || ev->tr.ssthresh != UINT32_MAX)
			test_fail(__FILE__, __LINE__, "%s's send at %.6f: cwnd %u ssthresh %u",
				  host_str(ev->host), (double)ev->t_us / 1e6, ev->tr.cwnd, ev->tr.ssthresh);
		if (ev->tr.u.seg.len) {
			uint32_t fl = ev->tr.u.seg.seq + ev->tr.u.seg.len - una[ev->host];
			if (fl > max_flight[ev->host])
				max_flight[ev->host] = fl;
		}
	}
	CHECK(max_flight[A] <= SNDBUF);
	CHECK(max_flight[B] <= SNDBUF);
	CHECK_QUIET(r);
	run_free(r);
}

/* cwnd grows only while the connection is limited by it (Linux's tcp_is_cwnd_limited: in
 * slow start, while cwnd < 2 * what was in flight; RFC 7661's congestion window validation).
 * Here the 16 KiB send buffer bounds the flight to 12 segments, so cwnd stays near 24
 * segments instead of growing to a window never used, which would go out as one burst if
 * the application suddenly had more to send. */
TEST(scenario_transfer_cwnd_stays_validated)
{
	struct run *r = run_scn("transfer");
	uint32_t max_cwnd = 0;
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind == TERN_SIM_EV_SEND && ev->host == A && ev->tr.cwnd > max_cwnd)
			max_cwnd = ev->tr.cwnd;
	}
	CHECK(max_cwnd <= 2 * SNDBUF + 2 * MSS);
	run_free(r);
}

/* What the wire did to the packets host h sent, and what that left for the receiver. */
struct wire_tally {
	unsigned sent, dropped, duplicated, delayed, corrupted;
	unsigned dropped_data;     /* lost segments that carried data or a FIN */
	unsigned corrupt_arrivals; /* corrupted copies that reached the receiver */
	unsigned discarded;        /* the receiver's checksum/header discards */
};

static struct wire_tally tally_wire(const struct scn_log *log, int h)
{
	struct wire_tally t;
	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < log->n; i++) {
		const struct tern_sim_ev *ev = &log->ev[i].ev;
		if (ev->kind == TERN_SIM_EV_DISCARD && ev->host == !h && ev->tr.reason &&
		    (!strcmp(ev->tr.reason, "ip checksum") || !strcmp(ev->tr.reason, "ip header") ||
		     !strcmp(ev->tr.reason, "tcp checksum") || !strcmp(ev->tr.reason, "tcp header")))
			t.discarded++;
		if (ev->kind != TERN_SIM_EV_SEND || ev->host != h)
			continue;
		t.sent++;
		/* The wire's verdicts on a packet follow its SEND at once. */
		bool drop = false, dup = false, corrupt = false;
		size_t j = i + 1;
		for (; j < log->n; j++) {
			const struct tern_sim_ev *w = &log->ev[j].ev;
			if (w->host != h || w->t_us != ev->t_us)
				break;
			if (w->kind == TERN_SIM_EV_DROP)
				drop = true, t.dropped++;
			else if (w->kind == TERN_SIM_EV_DUP)
				dup = true, t.duplicated++;
			else if (w->kind == TERN_SIM_EV_DELAY)
				t.delayed++;
			else if (w->kind == TERN_SIM_EV_CORRUPT)
				corrupt = true, t.corrupted++;
			else
				break;
		}
		if (corrupt && !drop)
			t.corrupt_arrivals += 1 + dup; /* a duplicate copies the damage */
		if ((drop || corrupt) && (ev->tr.u.seg.len || (ev->tr.u.seg.flags & F_FIN)))
			t.dropped_data++;
	}
	return t;
}

/* A transfer under loss, duplication, reordering and corruption (scn_opts.imp, both ways):
 * every byte still arrives once and in order, and every corrupted packet that arrived was
 * thrown away by a checksum (or, for a flipped version/length bit, the header check) and
 * counted there, never delivered. */
static void check_impaired_transfer(struct run *r, uint64_t a_to_b, uint64_t b_to_a)
{
	CHECK_TRANSFER_DONE(r, a_to_b, b_to_a);
	unsigned corrupt_total = 0, loss_total = 0;
	for (int h = 0; h < 2; h++) {
		struct wire_tally w = tally_wire(&r->log, h);
		const struct tern_stats *rx = stats(r, !h);
		uint64_t bad = rx->ip_bad_checksum + rx->ip_bad_header + rx->tcp_bad_checksum +
			       rx->tcp_bad_header;
		CHECK_EQ(w.corrupt_arrivals, bad);
		CHECK_EQ(w.discarded, bad);
		CHECK(rx->ip_bad_checksum + rx->tcp_bad_checksum >= rx->ip_bad_header + rx->tcp_bad_header);
		CHECK(w.dropped > 0);
		CHECK(w.delayed > 0);
		corrupt_total += w.corrupt_arrivals;
		loss_total += w.dropped;
		/* Data lost (or thrown away) was repaired by retransmission. */
		if (w.dropped_data)
			CHECK(stats(r, h)->tcp_retrans > 0);
	}
	CHECK(corrupt_total > 0);
	CHECK(loss_total > 0);
}

static struct scn_opts impaired_opts(uint64_t seed)
{
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = seed;
	o.imp.loss = 0.05;
	o.imp.dup = 0.02;
	o.imp.reorder = 0.05;
	o.imp.corrupt = 0.01;
	return o;
}

TEST(scenario_transfer_impaired)
{
	uint64_t bad_csum = 0;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct scn_opts o = impaired_opts(seed);
		struct run *r = run_raw("transfer", &o);
		check_impaired_transfer(r, XFER_BYTES, XFER_BYTES);
		bad_csum += stats(r, A)->tcp_bad_checksum + stats(r, B)->tcp_bad_checksum;
		run_free(r);
	}
	/* Most of a packet is TCP: the TCP checksum catches most of the damage. */
	CHECK(bad_csum > 0);
}

/* A pseudo-random file of n bytes (xorshift), written to path. */
static void write_random_file(const char *path, size_t n, uint64_t seed)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		REQUIRE(fputc((int)(x >> 32) & 255, f) != EOF);
	}
	REQUIRE_EQ(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = malloc(cap);
	REQUIRE(buf);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			uint8_t *b = realloc(buf, cap);
			REQUIRE(b);
			buf = b;
		}
		size_t k = fread(buf + len, 1, cap - len, f);
		if (!k)
			break;
		len += k;
	}
	fclose(f);
	*n = len;
	return buf;
}

TEST(scenario_transfer_files)
{
	/* --in/--out: a sends the file's bytes, b writes what arrives; the output is the input
	 * byte for byte, with and without impairments. Without --bytes b sends back as many
	 * bytes as the file has; with it, that many. */
	char dir[] = "/tmp/tern-xfer-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	char in[64], out[64];
	snprintf(in, sizeof(in), "%s/in.bin", dir);
	snprintf(out, sizeof(out), "%s/out.bin", dir);
	const size_t size = 300007; /* not a multiple of anything the stack uses */
	write_random_file(in, size, 0x5eed);
	size_t in_len;
	uint8_t *want = read_file(in, &in_len);
	REQUIRE_EQ(in_len, size);
	for (int variant = 0; variant < 3; variant++) {
		struct scn_opts o = variant ? impaired_opts((uint64_t)variant + 10) : impaired_opts(1);
		if (!variant)
			memset(&o.imp, 0, sizeof(o.imp));
		o.in_file = in;
		o.out_file = out;
		if (variant == 2)
			o.bytes = 12345;
		uint64_t back = variant == 2 ? 12345 : size;
		struct run *r = run_raw("transfer", &o);
		CHECK_TRANSFER_DONE(r, size, back);
		CHECK_EQ(r->s->app[B].rx_bytes, size);
		if (variant)
			check_impaired_transfer(r, size, back);
		run_free(r); /* closes the output file */
		size_t got_len;
		uint8_t *got = read_file(out, &got_len);
		CHECK_EQ(got_len, size);
		if (got_len == size)
			CHECK_MEM(got, want, size);
		free(got);
		CHECK_EQ(unlink(out), 0);
	}
	/* An input file that cannot be opened is refused before anything runs. */
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	char missing[80];
	snprintf(missing, sizeof(missing), "%s/missing.bin", dir);
	o.in_file = missing;
	struct scn *s = NULL;
	CHECK_EQ(scn_run(scenario_find("transfer"), &o, NULL, NULL, NULL, &s), -ENOENT);
	CHECK(s == NULL);
	free(want);
	CHECK_EQ(unlink(in), 0);
	CHECK_EQ(rmdir(dir), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* determinism                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static const char *const stream_names[] = {"zero-window",   "keepalive",       "keepalive-live",
					   "peer-vanished", "close-wait-leak", "transfer"};

TEST(scenario_stream_scenarios_are_deterministic)
{
	/* Same seed (and options), same log, event for event; another seed changes the ISNs
	 * (RFC 6528) but not the length of the exchange. */
	for (size_t i = 0; i < sizeof(stream_names) / sizeof(stream_names[0]); i++) {
		const struct scenario *sc = scenario_find(stream_names[i]);
		REQUIRE(sc != NULL);
		CHECK(sc->summary && sc->summary[0]);
		CHECK_EQ(sc->bulk, !strcmp(stream_names[i], "transfer"));
		struct scn_opts o;
		memset(&o, 0, sizeof(o));
		o.seed = 77;
		struct scn_log x = {0}, y = {0}, z = {0};
		REQUIRE_EQ(scn_run(sc, &o, &x, NULL, NULL, NULL), 0);
		REQUIRE_EQ(scn_run(sc, &o, &y, NULL, NULL, NULL), 0);
		o.seed = 78;
		REQUIRE_EQ(scn_run(sc, &o, &z, NULL, NULL, NULL), 0);
		CHECK(x.n > 0);
		CHECK_SAME_LOG(&x, &y, stream_names[i]);
		CHECK_EQ(x.n, z.n);
		uint32_t isn_x = 0, isn_z = 0;
		for (size_t k = 0; k < x.n && !isn_x; k++)
			if (x.ev[k].ev.kind == TERN_SIM_EV_SEND && (x.ev[k].ev.tr.u.seg.flags & F_SYN))
				isn_x = x.ev[k].ev.tr.u.seg.seq;
		for (size_t k = 0; k < z.n && !isn_z; k++)
			if (z.ev[k].ev.kind == TERN_SIM_EV_SEND && (z.ev[k].ev.tr.u.seg.flags & F_SYN))
				isn_z = z.ev[k].ev.tr.u.seg.seq;
		CHECK(isn_x != isn_z);
		scn_log_free(&x);
		scn_log_free(&y);
		scn_log_free(&z);
	}
}

TEST(scenario_transfer_impaired_is_deterministic)
{
	for (uint64_t seed = 3; seed <= 4; seed++) {
		struct scn_opts o = impaired_opts(seed);
		o.imp.jitter_us = 2000;
		struct scn_log x = {0}, y = {0};
		REQUIRE_EQ(scn_run(scenario_find("transfer"), &o, &x, NULL, NULL, NULL), 0);
		REQUIRE_EQ(scn_run(scenario_find("transfer"), &o, &y, NULL, NULL, NULL), 0);
		CHECK_SAME_LOG(&x, &y, "transfer with impairments");
		scn_log_free(&x);
		scn_log_free(&y);
	}
}
