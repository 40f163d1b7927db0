/*
 * The named scenarios of `tern sim` (tools/scenario.c), each asserted segment by segment
 * against SCENARIOS.md and RFC 9293: what each host sent and when, what the wire did, every
 * state change, every error the applications got, and what is left on each stack. Then the
 * simulator itself (include/tern/sim.h): rules, duplication, corruption, random loss,
 * determinism and pcap output.
 *
 * Every expected number is derived from a rule, never copied from a run:
 *   - the one-way delay is 10 ms (scn_run's default), so a round trip is 20 ms;
 *   - the window is 64240: rmem_default (128 KiB) cut to the unscaled 16-bit field and rounded
 *     down to whole segments of MSS 1460 (mtu 1500 - 40), as Linux's __tcp_select_window;
 *   - RFC 6298: the first RTO is 1 s and doubles on each timeout (§5.5); after one RTT sample
 *     R = 20 ms, SRTT = R and RTTVAR = R/2 (§2.2), RTO = SRTT + max(rto_min 200 ms,
 *     4*RTTVAR = 40 ms) = 220 ms;
 *   - the ACK of a received FIN is delayed by ato (Linux's pingpong mode), which is 0 until
 *     the first data arrives (Linux's icsk_ack.ato): in the close scenarios, where no data
 *     comes before the FIN, it leaves at once; after data it waits delack_min = 40 ms;
 *   - TIME_WAIT lasts 2*MSL = 60 s (MSL 30 s);
 *   - the server application of the close scenarios closes 500 ms after end of stream
 *     (tools/scenario.c), and the client closes at 1 s.
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
#define DELACK MS(40)           /* delack_min: ato once data has arrived */
#define RTO_INIT SECS(1)        /* RFC 6298 §2.1 */
#define RTO_MIN MS(200)         /* Linux's rto_min, the G of RFC 6298 */
/* RFC 6298 §2.2 after a first sample of one RTT: SRTT + max(G, 4 * RTTVAR), RTTVAR = RTT/2. */
#define RTO_1 (RTT + (RTO_MIN > 4 * (RTT / 2) ? RTO_MIN : 4 * (RTT / 2))) /* 220 ms */
#define MSL SECS(30)
#define TWAIT (2 * MSL)         /* TIME_WAIT */
#define T_CLOSE SECS(1)         /* the closer closes at 1 s */
#define APP_CLOSE MS(500)       /* the server application closes 500 ms after end of stream */
#define T_DATA MS(500)          /* scenarios that send "hello" do it at 0.5 s */
#define HELLO_LEN 5u            /* "hello" */

/* The handshake every scenario with a listener starts with (RFC 9293 §3.5 figure 6): the
 * SYN takes the ISN, the SYN-ACK acknowledges ISN + 1 (the SYN consumes one number) and
 * the third segment consumes none, so the next segment reuses ISN + 1. */
#define HS_A_SEGS {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0}
#define HS_B_SEGS {OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0}
#define HS_A_STATES {0, CLOSED, SYN_SENT}, {RTT, SYN_SENT, ESTABLISHED}
/* The server's child connection starts from its listener (LISTEN -> SYN_RCVD). */
#define HS_B_STATES                                                                           \
	{0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD}, {3 * OWD, SYN_RCVD, ESTABLISHED}

static const struct tern_stats *stats(const struct run *r, int h)
{
	return tern_stack_stats(tern_sim_stack(r->s->sim, h));
}

/* The connection info of host h's first connected descriptor. */
static struct tern_tcp_info conn_info(const struct run *r, int h)
{
	struct tern_tcp_info info;
	memset(&info, 0, sizeof(info));
	int fd = scn_accepted_fd(r->s, h);
	CHECK(fd >= 0);
	if (fd >= 0)
		CHECK_EQ(tern_sock_info(tern_sim_stack(r->s->sim, h), fd, &info), 0);
	return info;
}

/* The time host h received the k-th segment with these flags (0 when it did not). */
static uint64_t recv_time(const struct run *r, int h, uint16_t flags, unsigned k)
{
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind == TERN_SIM_EV_RECV && ev->host == h && ev->tr.u.seg.flags == flags && !k--)
			return ev->t_us;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Opening                                                                                      */
/* ------------------------------------------------------------------------------------------ */

TEST(scenario_handshake)
{
	struct run *r = run_scn("handshake");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_CONNS(r, A, {ESTABLISHED, 0, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	CHECK_QUIET(r); /* an idle established connection has no timer */
	CHECK_SENT(r, A, HS_A_SEGS);
	CHECK_SENT(r, B, HS_B_SEGS);
	CHECK_STATES(r, A, HS_A_STATES);
	CHECK_STATES(r, B, HS_B_STATES);
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	/* The client's port is ephemeral (ip_local_port_range 32768..60999) and the same on
	 * both sides. */
	uint16_t port = r->sent[A][0].seg.sport;
	CHECK(port >= 32768 && port <= 60999);
	CHECK_EQ(r->sent[B][0].seg.dport, port);
	CHECK_EQ(r->sent[A][0].seg.dport, 80);
	CHECK_EQ(r->sent[A][0].seg.src, SCN_ADDR_A);
	CHECK_EQ(r->sent[A][0].seg.dst, SCN_ADDR_B);
	CHECK_EQ(stats(r, A)->tcp_active_opens, 1);
	CHECK_EQ(stats(r, B)->tcp_passive_opens, 1);
	CHECK_EQ(stats(r, A)->tcp_retrans + stats(r, B)->tcp_retrans, 0);
	/* Each side timed its SYN: one sample of 20 ms, SRTT 20 ms, RTTVAR 10 ms, RTO 220 ms. */
	for (int h = 0; h < 2; h++) {
		struct tern_tcp_info info = conn_info(r, h);
		CHECK_EQ(info.rtt_us, RTT);
		CHECK_EQ(info.rttvar_us, RTT / 2);
		CHECK_EQ(info.rto_us, RTO_1);
		CHECK_EQ(info.state, TERN_STATE_ESTABLISHED);
		CHECK_EQ(info.snd_mss, MSS);
		CHECK_EQ(info.iss, r->isn[h]);
		CHECK_EQ(info.irs, r->isn[!h]);
		CHECK_EQ(info.snd_nxt, r->isn[h] + 1);
		CHECK_EQ(info.rcv_nxt, r->isn[!h] + 1);
	}
	run_free(r);
}

TEST(scenario_simultaneous_open)
{
	/* RFC 9293 figure 8: both send SYN; each answers the other's SYN with SYN-ACK carrying
	 * its own ISN again (a SYN is repeated until it is acknowledged): four segments carry
	 * SYN. Each crossing SYN-ACK establishes its receiver, which answers the repeated SYN
	 * with exactly one ACK (RFC 5961 §4; Linux sends `. 1:1(0) ack 1`): six segments. */
	struct run *r = run_scn("simultaneous-open");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_CONNS(r, A, {ESTABLISHED, 5000, 6000});
	CHECK_CONNS(r, B, {ESTABLISHED, 6000, 5000});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {OWD, F_SYN | F_ACK, ia, ib + 1, 0, WIN, 0},
		   {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0});
	CHECK_SENT(r, B, {0, F_SYN, ib, 0, 0, WIN, 0}, {OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0},
		   {RTT, F_ACK, ib + 1, ia + 1, 0, WIN, 0});
	CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {OWD, SYN_SENT, SYN_RCVD}, {RTT, SYN_RCVD, ESTABLISHED});
	CHECK_STATES(r, B, {0, CLOSED, SYN_SENT}, {OWD, SYN_SENT, SYN_RCVD}, {RTT, SYN_RCVD, ESTABLISHED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 1, 0, 0, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK(ia != ib);
	for (int h = 0; h < 2; h++)
		CHECK_EQ(stats(r, h)->tcp_challenge_acks, 0); /* an answer, not a challenge */
	run_free(r);
}

/* SYNs at 2^k - 1 s (k = 0..retries: the RTO starts at 1 s and doubles, RFC 6298 §5.5),
 * all with the same ISN; the last waits its full RTO, so connect() fails with ETIMEDOUT
 * at 2^(retries+1) - 1 s: 63 s for the default 5. */
static void check_syn_lost(struct run *r, unsigned retries)
{
	uint32_t ia = r->isn[A];
	CHECK_EQ(r->nsent[A], retries + 1);
	for (unsigned k = 0; k < r->nsent[A] && k <= retries; k++) {
		const struct sent *s = &r->sent[A][k];
		CHECK_EQ(s->t, SECS((1u << k) - 1));
		CHECK_EQ(s->seg.flags, F_SYN);
		CHECK_EQ(s->seg.seq, ia); /* a retransmitted SYN keeps its ISN */
		CHECK_EQ(s->seg.ack, 0);
		CHECK_EQ(s->seg.win, WIN);
		CHECK_EQ(s->seg.opts.has, TERN_OPT_MSS);
		CHECK_EQ(s->seg.opts.mss, MSS);
		CHECK_EQ(s->fate, FATE_DROP);
	}
	uint64_t fail = SECS((2u << retries) - 1);
	CHECK_ERRORS(r, A, {fail, ETIMEDOUT});
	CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {fail, SYN_SENT, CLOSED});
	CHECK_STATES(r, B, {0, CLOSED, LISTEN});
	CHECK_EQ(r->nsent[B], 0);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 0, 0, 0, 0);
	CHECK_APP(r, B, 0, 0, 0, 0);
	CHECK_WIRE(r, retries + 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_EQ(tern_sim_now(r->s->sim), fail);
	const struct tern_stats *sa = stats(r, A);
	CHECK_EQ(sa->tcp_retrans, retries);
	CHECK_EQ(sa->tcp_timeouts, 1);
	CHECK_EQ(sa->tcp_attempt_fails, 1);
	CHECK_QUIET(r);
}

TEST(scenario_syn_lost)
{
	struct run *r = run_scn("syn-lost");
	check_syn_lost(r, 5); /* 0, 1, 3, 7, 15, 31 s; ETIMEDOUT at 63 s */
	CHECK_SENT(r, A, {SECS(0), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP},
		   {SECS(1), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP},
		   {SECS(3), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP},
		   {SECS(7), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP},
		   {SECS(15), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP},
		   {SECS(31), F_SYN, r->isn[A], 0, 0, WIN, FATE_DROP});
	CHECK_ERRORS(r, A, {SECS(63), ETIMEDOUT});
	run_free(r);
}

TEST(scenario_syn_lost_syn_retries_3)
{
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	o.sets[0].name = "syn_retries";
	o.sets[0].value = "3";
	o.nsets = 1;
	struct run *r = run_scn_opts("syn-lost", &o);
	check_syn_lost(r, 3); /* 0, 1, 3, 7 s; ETIMEDOUT at 15 s */
	CHECK_ERRORS(r, A, {SECS(15), ETIMEDOUT});
	run_free(r);
}

TEST(scenario_syn_lost_every_retry_count)
{
	char val[8];
	for (unsigned n = 1; n <= 6; n++) {
		struct scn_opts o;
		memset(&o, 0, sizeof(o));
		o.seed = n;
		snprintf(val, sizeof(val), "%u", n);
		o.sets[0].name = "syn_retries";
		o.sets[0].value = val;
		o.nsets = 1;
		struct run *r = run_scn_opts("syn-lost", &o);
		check_syn_lost(r, n);
		run_free(r);
	}
}

TEST(scenario_synack_lost)
{
	/* The scenario's settings: syn_retries 1, synack_retries 2. Every SYN-ACK is lost. */
	struct run *r = run_scn("synack-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	/* The client: SYN at 0 and 1 s (one retry), fails at 1 + 2 = 3 s. */
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {SECS(1), F_SYN, ia, 0, 0, WIN, 0});
	CHECK_ERRORS(r, A, {SECS(3), ETIMEDOUT});
	CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {SECS(3), SYN_SENT, CLOSED});
	/* The server, on its own timer from OWD: SYN-ACK at OWD, OWD + 1 s, OWD + 3 s (two
	 * retries), and the half-open connection goes after the last RTO, at OWD + 7 s. The
	 * retransmitted SYN (arriving at 1 s + OWD) is answered with the SYN-ACK again
	 * (Linux's tcp_check_req), which does not count as a timeout. */
	CHECK_SENT(r, B, {OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, FATE_DROP},
		   {SECS(1) + OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, FATE_DROP},
		   {SECS(1) + OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, FATE_DROP},
		   {SECS(3) + OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, FATE_DROP});
	CHECK_STATES(r, B, {0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD},
		     {SECS(7) + OWD, SYN_RCVD, CLOSED});
	CHECK_NO_ERRORS(r, B); /* nobody had accepted the half-open connection */
	CHECK_APP(r, A, 0, 0, 0, 0);
	CHECK_APP(r, B, 0, 0, 0, 0);
	CHECK_WIRE(r, 4, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, B)->tcp_timeouts, 1);
	CHECK_EQ(stats(r, A)->tcp_timeouts, 1);
	run_free(r);
}

TEST(scenario_ack_lost)
{
	/* The third segment is lost. The server's SYN-ACK timer (1 s: no RTT sample yet)
	 * retransmits; the client, already established, acknowledges it again; nothing else
	 * is sent (an ACK is never retransmitted by itself). */
	struct run *r = run_scn("ack-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_CONNS(r, A, {ESTABLISHED, 0, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, FATE_DROP},
		   {OWD + RTO_INIT + OWD, F_ACK, ia + 1, ib + 1, 0, WIN, 0});
	CHECK_SENT(r, B, {OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0},
		   {OWD + RTO_INIT, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES);
	CHECK_STATES(r, B, {0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD},
		     {OWD + RTO_INIT + 2 * OWD, SYN_RCVD, ESTABLISHED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	/* The client timed its SYN (20 ms): RTO 220 ms. The server's SYN-ACK was retransmitted,
	 * so Karn's rule leaves it without a sample, and RFC 6298 §5.7 sets its RTO to 3 s
	 * once the handshake completes. */
	CHECK_EQ(conn_info(r, A).rto_us, RTO_1);
	CHECK_EQ(conn_info(r, B).rto_us, SECS(3));
	CHECK_EQ(conn_info(r, B).rtt_us, 0);
	run_free(r);
}

TEST(scenario_ack_lost_data)
{
	/* The third segment is lost, but the client's data at 0.5 s carries the same ACK: it
	 * completes the server's handshake, and the SYN-ACK is never retransmitted. */
	struct run *r = run_scn("ack-lost-data");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	int sfd = scn_accepted_fd(r->s, B);
	REQUIRE(sfd >= 0);
	CHECK_EQ(r->s->socks[B][sfd].rx_len, HELLO_LEN);
	if (r->s->socks[B][sfd].rx_len == HELLO_LEN)
		CHECK_MEM(r->s->socks[B][sfd].rx, "hello", HELLO_LEN);
	CHECK_CONNS(r, A, {ESTABLISHED, 0, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, FATE_DROP},
		   {T_DATA, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, 0});
	/* Data is acknowledged at once (tern ACKs every data segment, like Linux's quick-ACK
	 * mode at the start of a connection). */
	CHECK_SENT(r, B, {OWD, F_SYN | F_ACK, ib, ia + 1, 0, WIN, 0},
		   {T_DATA + OWD, F_ACK, ib + 1, ia + 1 + HELLO_LEN, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES);
	CHECK_STATES(r, B, {0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD},
		     {T_DATA + OWD, SYN_RCVD, ESTABLISHED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, HELLO_LEN);
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_old_duplicate_syn)
{
	/* RFC 9293 §3.5 figure 9. A SYN of an earlier incarnation (seq = ISN - 1000000) arrives
	 * at OWD; the client's own SYN is held back 40 ms on the wire. */
	struct run *r = run_scn("old-duplicate-syn");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	uint32_t old = ia - 1000000;
	const uint64_t HOLD = MS(40);
	REQUIRE_EQ(r->ninject, 1);
	CHECK_EQ(r->inject[0].t, 0);
	CHECK_EQ(r->inject[0].seg.flags, F_SYN);
	CHECK_EQ(r->inject[0].seg.seq, old);
	CHECK_EQ(r->inject[0].seg.sport, 40000);
	CHECK_EQ(recv_time(r, B, F_SYN, 0), OWD);         /* the old SYN first */
	CHECK_EQ(recv_time(r, B, F_SYN, 1), OWD + HOLD);  /* then the new one */
	/* RFC 6528: ISN = M + F(4-tuple, key) with M a 4 µs clock. Both SYN-ACKs are for the
	 * same 4-tuple, 40 ms apart: the second ISN is the first plus 40000/4. */
	uint32_t ib2 = ib + (uint32_t)(HOLD / 4);
	CHECK_CONNS(r, A, {ESTABLISHED, 40000, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 40000});
	CHECK_QUIET(r);
	/* The SYN-ACK acknowledges old + 1, which is not our SYN (SYN_SENT: SEG.ACK =< ISS):
	 * the client answers <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.3), with no ACK and a
	 * zero window (Linux's tcp_v4_send_reset). */
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, FATE_DELAY}, {2 * OWD, F_RST, old + 1, 0, 0, 0, 0},
		   {OWD + HOLD + OWD, F_ACK, ia + 1, ib2 + 1, 0, WIN, 0});
	CHECK_SENT(r, B, {OWD, F_SYN | F_ACK, ib, old + 1, 0, WIN, 0},
		   {OWD + HOLD, F_SYN | F_ACK, ib2, ia + 1, 0, WIN, 0});
	/* The RST returns the half-open connection (RFC 9293: "return this connection to
	 * LISTEN state"): here the child goes and the listener stays. */
	CHECK_STATES(r, B, {0, CLOSED, LISTEN}, {OWD, LISTEN, SYN_RCVD}, {3 * OWD, SYN_RCVD, CLOSED},
		     {OWD + HOLD, LISTEN, SYN_RCVD}, {3 * OWD + HOLD, SYN_RCVD, ESTABLISHED});
	CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {2 * OWD + HOLD, SYN_SENT, ESTABLISHED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, 0, 0, 1, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, B)->tcp_rst_in, 1);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing                                                                                      */
/* ------------------------------------------------------------------------------------------ */

TEST(scenario_close)
{
	/* RFC 9293 figure 13: FIN, ACK, FIN, ACK. No data came before the client's FIN, so the
	 * server's ACK of it leaves at once (ato 0), not after delack_min. */
	struct run *r = run_scn("close");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t b_fin = T_CLOSE + OWD + APP_CLOSE; /* 1.510 */
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {b_fin + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2},
		     {b_fin + OWD, FIN_WAIT_2, TIME_WAIT}, {b_fin + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {b_fin, CLOSE_WAIT, LAST_ACK}, {b_fin + 2 * OWD, LAST_ACK, CLOSED});
	/* TIME_WAIT lasted exactly 2*MSL. */
	REQUIRE_EQ(r->nst[A], 6);
	CHECK_EQ(r->st[A][5].t - r->st[A][4].t, SECS(60));
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_close_three_way)
{
	/* The server closes as soon as it reads end of stream, within the delayed-ACK time of
	 * the FIN: its FIN carries the ACK, and the client goes from FIN_WAIT_1 straight to
	 * TIME_WAIT (RFC 9293: FIN received and our FIN acknowledged). */
	struct run *r = run_scn("close-three-way");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {T_CLOSE + 2 * OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, TIME_WAIT},
		     {T_CLOSE + 2 * OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {T_CLOSE + OWD, CLOSE_WAIT, LAST_ACK}, {T_CLOSE + 3 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_half_close)
{
	/* The client shuts down its sending side at 1 s; the server sends two pieces (1.2 s,
	 * 1.4 s) that are delivered and acknowledged, then closes at 1.6 s. */
	static const char part1[] = "first half of the answer, ";
	static const char part2[] = "second half of the answer";
	const uint32_t L1 = sizeof(part1) - 1, L2 = sizeof(part2) - 1;
	const uint64_t t1 = MS(1200), t2 = MS(1400), tc = MS(1600);
	struct run *r = run_scn("half-close");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {t1 + OWD, F_ACK, ia + 2, ib + 1 + L1, 0, WIN, 0},
		   {t2 + OWD, F_ACK, ia + 2, ib + 1 + L1 + L2, 0, WIN, 0},
		   {tc + OWD, F_ACK, ia + 2, ib + 1 + L1 + L2 + 1, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {t1, F_PSH | F_ACK, ib + 1, ia + 2, L1, WIN, 0},
		   {t2, F_PSH | F_ACK, ib + 1 + L1, ia + 2, L2, WIN, 0},
		   {tc, F_FIN | F_ACK, ib + 1 + L1 + L2, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2},
		     {tc + OWD, FIN_WAIT_2, TIME_WAIT}, {tc + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {tc, CLOSE_WAIT, LAST_ACK}, {tc + 2 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 1, L1 + L2); /* every byte sent after the half-close arrived */
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_simultaneous_close)
{
	/* RFC 9293 figure 14: both FINs cross; each is acknowledged at once from FIN_WAIT_1
	 * (-> CLOSING), and each ACK takes its receiver to TIME_WAIT. */
	struct run *r = run_scn("simultaneous-close");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {T_CLOSE + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE, F_FIN | F_ACK, ib + 1, ia + 1, 0, WIN, 0},
		   {T_CLOSE + OWD, F_ACK, ib + 2, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + OWD, FIN_WAIT_1, CLOSING}, {T_CLOSE + 2 * OWD, CLOSING, TIME_WAIT},
		     {T_CLOSE + 2 * OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + OWD, FIN_WAIT_1, CLOSING}, {T_CLOSE + 2 * OWD, CLOSING, TIME_WAIT},
		     {T_CLOSE + 2 * OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_fin_lost)
{
	/* The client's FIN is lost and retransmitted after RTO_1 = 220 ms (its RTT sample:
	 * the handshake's 20 ms); the close then runs as in "close", shifted by 220 ms. */
	struct run *r = run_scn("fin-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t fin2 = T_CLOSE + RTO_1, arr = fin2 + OWD, b_fin = arr + APP_CLOSE;
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, FATE_DROP},
		   {fin2, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {b_fin + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {arr, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {arr + OWD, FIN_WAIT_1, FIN_WAIT_2}, {b_fin + OWD, FIN_WAIT_2, TIME_WAIT},
		     {b_fin + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {arr, ESTABLISHED, CLOSE_WAIT}, {b_fin, CLOSE_WAIT, LAST_ACK},
		     {b_fin + 2 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, A)->tcp_retrans, 1);
	run_free(r);
}

TEST(scenario_fin_ack_lost)
{
	/* The ACK of the client's FIN (sent at once: no data came first) is lost: the client,
	 * still in FIN_WAIT_1, retransmits the FIN after RTO_1; the server re-acknowledges the
	 * duplicate at once. */
	struct run *r = run_scn("fin-ack-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t fin2 = T_CLOSE + RTO_1, b_fin = T_CLOSE + OWD + APP_CLOSE;
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {fin2, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {b_fin + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin2 + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {fin2 + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2}, {b_fin + OWD, FIN_WAIT_2, TIME_WAIT},
		     {b_fin + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {b_fin, CLOSE_WAIT, LAST_ACK}, {b_fin + 2 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0); /* the duplicate FIN is not a second end of stream */
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_peer_fin_lost)
{
	/* The server's FIN is lost; it retransmits from LAST_ACK after its own RTO_1 (its RTT
	 * sample: SYN-ACK at 10 ms, ACK at 30 ms). */
	struct run *r = run_scn("peer-fin-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t b_fin = T_CLOSE + OWD + APP_CLOSE, fin2 = b_fin + RTO_1;
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {fin2 + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin2, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2},
		     {fin2 + OWD, FIN_WAIT_2, TIME_WAIT}, {fin2 + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {b_fin, CLOSE_WAIT, LAST_ACK}, {fin2 + 2 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, B)->tcp_retrans, 1);
	run_free(r);
}

TEST(scenario_fin_wait_2_timeout)
{
	/* fin_timeout = 5 s; the server's first five FINs are lost. The client closed its
	 * descriptor, so its FIN_WAIT_2 is an orphan: it gives up fin_timeout after entering
	 * FIN_WAIT_2 (Linux's tcp_fin_time; the 3.5 * RTO floor, 770 ms, is below 5 s). The
	 * server backs off 220, 440, 880, 1760, 3520 ms; its sixth FIN finds nothing and draws
	 * <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1), which ends its LAST_ACK. */
	struct run *r = run_scn("fin-wait-2-timeout");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t fw2 = T_CLOSE + 2 * OWD, b_fin = T_CLOSE + OWD + APP_CLOSE;
	uint64_t fin[6];
	for (int k = 0; k < 6; k++)
		fin[k] = b_fin + RTO_1 * ((1u << k) - 1); /* 1.51 1.73 2.17 3.05 4.81 8.33 */
	CHECK_EQ(fin[5], MS(8330));
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {fin[5] + OWD, F_RST, ia + 2, 0, 0, 0, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {fin[0], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin[1], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin[2], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin[3], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin[4], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin[5], F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {fw2, FIN_WAIT_1, FIN_WAIT_2}, {fw2 + SECS(5), FIN_WAIT_2, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {b_fin, CLOSE_WAIT, LAST_ACK}, {fin[5] + 2 * OWD, LAST_ACK, CLOSED});
	/* Both applications had closed their descriptors: no error reaches anyone. */
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 5, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, A)->tcp_no_port, 1);
	CHECK_EQ(stats(r, B)->tcp_rst_in, 1);
	run_free(r);
}

TEST(scenario_last_ack_lost)
{
	/* The final ACK is lost: the server retransmits its FIN after RTO_1; the client in
	 * TIME_WAIT acknowledges it again and restarts 2*MSL from then (RFC 9293). */
	struct run *r = run_scn("last-ack-lost");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t b_fin = T_CLOSE + OWD + APP_CLOSE, fin2 = b_fin + RTO_1;
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {b_fin + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, FATE_DROP},
		   {fin2 + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {fin2, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2},
		     {b_fin + OWD, FIN_WAIT_2, TIME_WAIT},
		     /* restarted by the retransmitted FIN: not b_fin + OWD + 2*MSL */
		     {fin2 + OWD + TWAIT, TIME_WAIT, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {b_fin, CLOSE_WAIT, LAST_ACK}, {fin2 + 2 * OWD, LAST_ACK, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 1, 0);
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	run_free(r);
}

TEST(scenario_time_wait)
{
	/* The server closes first (at 1 s), so the TIME_WAIT is the server's. The client's FIN
	 * (at 1.51 s) is duplicated, the copy held back 20 s: the TIME_WAIT acknowledges it
	 * again and restarts 2*MSL. The client (long closed) answers that ACK with RST, which
	 * the wire loses. At 70 s, after the first 2*MSL would have ended (61.52 s) but inside
	 * the restarted one, the client reconnects from the same port. */
	struct run *r = run_scn("time-wait");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t a_fin = T_CLOSE + OWD + APP_CLOSE;
	/* The simulator delivers a copy 1 µs after the original (so that the two never arrive
	 * at the same instant), plus the rule's 20 s. */
	const uint64_t dup_arr = a_fin + OWD + SECS(20) + 1;
	const uint64_t t_re = SECS(70);
	CHECK_CONNS(r, A, {ESTABLISHED, 40000, 80});
	CHECK_CONNS(r, B, {LISTEN, 80, 0}, {ESTABLISHED, 80, 40000});
	CHECK_QUIET(r);
	REQUIRE_EQ(r->nsent[A], 8);
	REQUIRE_EQ(r->nsent[B], 6);
	/* RFC 6528: same 4-tuple, same key, 70 s later: the ISN moved on by 70e6 / 4. */
	uint32_t ia2 = ia + (uint32_t)(t_re / 4);
	/* The SYN is above the TIME_WAIT's rcv_nxt (RFC 6191 without timestamps, Linux's
	 * tcp_timewait_state_process): a new incarnation, whose ISN continues past the old
	 * sequence space, old snd_nxt (ISN + SYN + FIN) + 65535 + 2 (Linux's tw_isn). */
	uint32_t ib2 = ib + 2 + 65535 + 2;
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE + OWD, F_ACK, ia + 1, ib + 2, 0, WIN, 0},
		   {a_fin, F_FIN | F_ACK, ia + 1, ib + 2, 0, WIN, FATE_DUP},
		   {dup_arr + OWD, F_RST, ia + 2, 0, 0, 0, FATE_DROP},
		   {t_re, F_SYN, ia2, 0, 0, WIN, 0}, {t_re + RTT, F_ACK, ia2 + 1, ib2 + 1, 0, WIN, 0},
		   {SECS(71) + OWD, F_ACK, ia2 + 1, ib2 + 1 + HELLO_LEN, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE, F_FIN | F_ACK, ib + 1, ia + 1, 0, WIN, 0},
		   {a_fin + OWD, F_ACK, ib + 2, ia + 2, 0, WIN, 0},
		   {dup_arr, F_ACK, ib + 2, ia + 2, 0, WIN, 0},
		   {t_re + OWD, F_SYN | F_ACK, ib2, ia2 + 1, 0, WIN, 0},
		   {SECS(71), F_PSH | F_ACK, ib2 + 1, ia2 + 1, HELLO_LEN, WIN, 0});
	CHECK_EQ(recv_time(r, B, F_FIN | F_ACK, 1), dup_arr);
	CHECK_STATES(r, A, HS_A_STATES, {T_CLOSE + OWD, ESTABLISHED, CLOSE_WAIT},
		     {a_fin, CLOSE_WAIT, LAST_ACK}, {a_fin + 2 * OWD, LAST_ACK, CLOSED},
		     {t_re, CLOSED, SYN_SENT}, {t_re + RTT, SYN_SENT, ESTABLISHED});
	/* The TIME_WAIT record was still there at 70.01 s: without the restart at 21.52 s
	 * it would have ended at 61.52 s. */
	CHECK(a_fin + OWD + TWAIT < t_re + OWD);
	CHECK(dup_arr + TWAIT > t_re + OWD);
	CHECK_STATES(r, B, HS_B_STATES, {T_CLOSE, ESTABLISHED, FIN_WAIT_1},
		     {T_CLOSE + 2 * OWD, FIN_WAIT_1, FIN_WAIT_2},
		     {a_fin + OWD, FIN_WAIT_2, TIME_WAIT}, {t_re + OWD, TIME_WAIT, CLOSED},
		     {t_re + OWD, LISTEN, SYN_RCVD}, {t_re + 3 * OWD, SYN_RCVD, ESTABLISHED});
	CHECK_NO_ERRORS(r, A);
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 2, 0, 1, HELLO_LEN);
	CHECK_APP(r, B, 0, 2, 0, 0);
	CHECK_WIRE(r, 1, 1, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, B)->tcp_tw_recycled, 1);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Resets                                                                                       */
/* ------------------------------------------------------------------------------------------ */

TEST(scenario_rst_closed_port)
{
	/* Nobody listens on port 81: the SYN (no ACK) is answered <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
	 * <CTL=RST,ACK> (RFC 9293 §3.10.7.1; the SYN counts in SEG.LEN), window 0; the client
	 * accepts it (it acknowledges its SYN) and connect() fails with ECONNREFUSED. */
	struct run *r = run_scn("rst-closed-port");
	uint32_t ia = r->isn[A];
	CHECK_NO_CONNS(r, A);
	CHECK_NO_CONNS(r, B);
	CHECK_QUIET(r);
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0});
	CHECK_EQ(r->sent[A][0].seg.dport, 81);
	CHECK_SENT(r, B, {OWD, F_RST | F_ACK, 0, ia + 1, 0, 0, 0});
	CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {RTT, SYN_SENT, CLOSED});
	CHECK_EQ(r->nst[B], 0);
	CHECK_ERRORS(r, A, {RTT, ECONNREFUSED});
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 0, 0, 0, 0);
	CHECK_APP(r, B, 0, 0, 0, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, B)->tcp_no_port, 1);
	CHECK_EQ(stats(r, B)->tcp_rst_out, 1);
	CHECK_EQ(stats(r, A)->tcp_rst_in, 1);
	CHECK_EQ(stats(r, A)->tcp_attempt_fails, 1);
	run_free(r);
}

TEST(scenario_rst_abort)
{
	/* close() with SO_LINGER {on, 0} at 1 s: RST (with ACK, at SND.NXT, after the 5 bytes
	 * sent at 0.5 s), no FIN, no TIME_WAIT; the peer's application gets ECONNRESET. */
	struct run *r = run_scn("rst-abort");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t t_abort = SECS(1);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {T_DATA, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, 0},
		   {t_abort, F_RST | F_ACK, ia + 1 + HELLO_LEN, ib + 1, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_DATA + OWD, F_ACK, ib + 1, ia + 1 + HELLO_LEN, 0, WIN, 0});
	CHECK_STATES(r, A, HS_A_STATES, {t_abort, ESTABLISHED, CLOSED});
	CHECK_STATES(r, B, HS_B_STATES, {t_abort + OWD, ESTABLISHED, CLOSED});
	CHECK_NO_ERRORS(r, A);
	CHECK_ERRORS(r, B, {t_abort + OWD, ECONNRESET});
	if (r->nerr[B] == 1)
		CHECK(r->err[B][0].fd >= 0); /* posted to the accepted descriptor */
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, HELLO_LEN);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, A)->tcp_rst_out, 1);
	CHECK_EQ(stats(r, B)->tcp_rst_in, 1);
	CHECK_EQ(stats(r, B)->tcp_estab_resets, 1);
	run_free(r);
}

TEST(scenario_peer_reboot)
{
	/* The server crashes at 1 s and comes back with a listener but no memory of the
	 * connection. The client's data at 2 s meets the listener: an ACK in LISTEN is bad,
	 * <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.2); its sequence number is exactly the
	 * client's RCV.NXT, so the client accepts it and reports ECONNRESET. */
	struct run *r = run_scn("peer-reboot");
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t t_send = SECS(2);
	CHECK_NO_CONNS(r, A);
	CHECK_CONNS(r, B, {LISTEN, 80, 0});
	CHECK_QUIET(r);
	CHECK_SENT(r, A, HS_A_SEGS, {t_send, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {t_send + OWD, F_RST, ib + 1, 0, 0, 0, 0});
	CHECK_STATES(r, A, HS_A_STATES, {t_send + RTT, ESTABLISHED, CLOSED});
	/* The old stack vanishes without a word; the new one opens its listener at 1 s. */
	CHECK_STATES(r, B, HS_B_STATES, {SECS(1), CLOSED, LISTEN});
	CHECK_ERRORS(r, A, {t_send + RTT, ECONNRESET});
	CHECK_NO_ERRORS(r, B);
	CHECK_APP(r, A, 1, 0, 0, 0);
	CHECK_APP(r, B, 0, 1, 0, 0);
	CHECK_WIRE(r, 0, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(stats(r, A)->tcp_rst_in, 1);
	CHECK_EQ(stats(r, A)->tcp_estab_resets, 1);
	run_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Every scenario                                                                              */
/* ------------------------------------------------------------------------------------------ */

static const char *const spec_names[] = {
	"handshake",	     "close",		  "close-three-way", "half-close",
	"simultaneous-open", "simultaneous-close", "syn-lost",	     "synack-lost",
	"ack-lost",	     "ack-lost-data",	  "old-duplicate-syn", "fin-lost",
	"fin-ack-lost",	     "peer-fin-lost",	  "fin-wait-2-timeout", "last-ack-lost",
	"time-wait",	     "rst-closed-port",	  "rst-abort",	     "peer-reboot",
};

TEST(scenario_all_named_scenarios_exist)
{
	size_t n;
	const struct scenario *all = scenario_all(&n);
	CHECK(n >= sizeof(spec_names) / sizeof(spec_names[0]));
	for (size_t i = 0; i < sizeof(spec_names) / sizeof(spec_names[0]); i++) {
		const struct scenario *sc = scenario_find(spec_names[i]);
		if (!sc) {
			test_fail(__FILE__, __LINE__, "no scenario '%s'", spec_names[i]);
			continue;
		}
		CHECK(sc->summary && sc->summary[0]);
		CHECK(sc->run != NULL);
	}
	for (size_t i = 0; i < n; i++)
		CHECK(scenario_find(all[i].name) == &all[i]);
	CHECK(scenario_find("no-such-scenario") == NULL);
}

/* Every scenario, run twice with the same seed, gives the same log event for event; each
 * ends with every connection of the scenario accounted for (no leaks under ASan). */
TEST(scenario_every_scenario_is_deterministic)
{
	size_t n;
	const struct scenario *all = scenario_all(&n);
	for (size_t i = 0; i < n; i++) {
		struct scn_opts o;
		memset(&o, 0, sizeof(o));
		o.seed = 1234;
		struct scn_log x = {0}, y = {0};
		REQUIRE_EQ(scn_run(&all[i], &o, &x, NULL, NULL, NULL), 0);
		REQUIRE_EQ(scn_run(&all[i], &o, &y, NULL, NULL, NULL), 0);
		CHECK(x.n > 0);
		CHECK_SAME_LOG(&x, &y, all[i].name);
		scn_log_free(&x);
		scn_log_free(&y);
	}
}

TEST(scenario_determinism_with_random_impairments)
{
	/* Loss, duplication, reordering, corruption and jitter all come from the seed. */
	static const char *const names[] = {"close", "half-close", "rst-abort", "time-wait"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (uint64_t seed = 1; seed <= 3; seed++) {
			struct scn_opts o;
			memset(&o, 0, sizeof(o));
			o.seed = seed;
			o.imp.loss = 0.1;
			o.imp.dup = 0.1;
			o.imp.reorder = 0.1;
			o.imp.corrupt = 0.1;
			o.imp.jitter_us = 5000;
			struct scn_log x = {0}, y = {0};
			REQUIRE_EQ(scn_run(scenario_find(names[i]), &o, &x, NULL, NULL, NULL), 0);
			REQUIRE_EQ(scn_run(scenario_find(names[i]), &o, &y, NULL, NULL, NULL), 0);
			CHECK_SAME_LOG(&x, &y, names[i]);
			scn_log_free(&x);
			scn_log_free(&y);
		}
	}
}

TEST(scenario_seed_changes_isns)
{
	/* RFC 6528: the ISN's hash is keyed by a secret, here derived from the seed. Eight seeds
	 * give eight different ISNs on each side; the exchange keeps its shape. */
	uint32_t isn[2][8];
	for (int k = 0; k < 8; k++) {
		struct scn_opts o;
		memset(&o, 0, sizeof(o));
		o.seed = (uint64_t)k + 1;
		struct run *r = run_scn_opts("handshake", &o);
		uint32_t ia = r->isn[A], ib = r->isn[B];
		CHECK_SENT(r, A, HS_A_SEGS);
		CHECK_SENT(r, B, HS_B_SEGS);
		isn[A][k] = ia;
		isn[B][k] = ib;
		run_free(r);
	}
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 8; i++)
			for (int j = i + 1; j < 8; j++)
				if (isn[h][i] == isn[h][j])
					test_fail(__FILE__, __LINE__, "%s: seeds %d and %d give the same ISN %u",
						  host_str(h), i + 1, j + 1, isn[h][i]);
	/* And a different seed gives a different log. */
	struct scn_opts o1, o2;
	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	o1.seed = 1;
	o2.seed = 2;
	struct scn_log x = {0}, y = {0};
	REQUIRE_EQ(scn_run(scenario_find("close"), &o1, &x, NULL, NULL, NULL), 0);
	REQUIRE_EQ(scn_run(scenario_find("close"), &o2, &y, NULL, NULL, NULL), 0);
	bool differ = x.n != y.n;
	for (size_t i = 0; !differ && i < x.n; i++)
		differ = !ev_equal(&x.ev[i], &y.ev[i]);
	CHECK(differ);
	scn_log_free(&x);
	scn_log_free(&y);
}

TEST(scenario_bad_options_are_refused)
{
	struct scn_opts o;
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	o.sets[0].name = "no_such_setting";
	o.sets[0].value = "1";
	o.nsets = 1;
	CHECK_EQ(scn_run(scenario_find("close"), &o, NULL, NULL, NULL, NULL), -ENOENT);
	o.sets[0].name = "syn_retries";
	o.sets[0].value = "many";
	CHECK_EQ(scn_run(scenario_find("close"), &o, NULL, NULL, NULL, NULL), -EINVAL);
	o.nsets = 0;
	o.rules[0].text = "x>b:syn";
	o.rules[0].action = TERN_SIM_DROP;
	o.nrules = 1;
	CHECK_EQ(scn_run(scenario_find("close"), &o, NULL, NULL, NULL, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* The simulator, directly                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Two hosts (a client, b server) on the tern_sim_* API alone, every event logged into a
 * struct run (whose scn part stays NULL). */
struct dsim {
	struct tern_sim *sim;
	struct run *r;
	int a, b, lfd, cfd, sfd;
};

static void dsim_trace(void *user, const struct tern_sim_ev *ev)
{
	struct scn_log *log = user;
	if (log->n == log->cap) {
		size_t n = log->cap ? log->cap * 2 : 256;
		struct scn_event *e = realloc(log->ev, n * sizeof(*e));
		if (!e)
			abort();
		log->ev = e;
		log->cap = n;
	}
	struct scn_event *e = &log->ev[log->n++];
	memset(e, 0, sizeof(*e));
	e->ev = *ev;
	if (ev->text)
		snprintf(e->text, sizeof(e->text), "%s", ev->text);
	e->ev.text = NULL;
}

static struct dsim *dsim_new(uint64_t seed, const struct tern_impair *imp)
{
	struct dsim *d = calloc(1, sizeof(*d));
	REQUIRE(d);
	d->r = calloc(1, sizeof(*d->r));
	REQUIRE(d->r);
	d->sim = tern_sim_new(seed);
	REQUIRE(d->sim);
	d->a = tern_sim_add_host(d->sim, "a", SCN_ADDR_A, NULL);
	d->b = tern_sim_add_host(d->sim, "b", SCN_ADDR_B, NULL);
	REQUIRE_EQ(d->a, A);
	REQUIRE_EQ(d->b, B);
	CHECK_EQ(tern_sim_nhosts(d->sim), 2);
	CHECK_EQ(tern_sim_host_by_name(d->sim, "b"), B);
	CHECK_EQ(tern_sim_host_addr(d->sim, A), SCN_ADDR_A);
	CHECK_STR(tern_sim_host_name(d->sim, B), "b");
	CHECK_EQ(tern_sim_add_host(d->sim, "c", SCN_ADDR_B, NULL), -EADDRINUSE);
	struct tern_impair none = {.delay_us = (uint32_t)OWD};
	tern_sim_set_impair(d->sim, -1, -1, imp ? imp : &none);
	tern_sim_set_trace(d->sim, dsim_trace, &d->r->log);
	d->lfd = d->cfd = d->sfd = -1;
	return d;
}

static struct tern_stack *dst(struct dsim *d, int h) { return tern_sim_stack(d->sim, h); }

static void dsim_rule(struct dsim *d, const char *text, enum tern_sim_action action,
		      uint32_t delay_us)
{
	struct tern_sim_rule rule;
	REQUIRE_EQ(tern_sim_parse_rule(d->sim, text, action, &rule), 0);
	rule.delay_us = delay_us;
	REQUIRE_EQ(tern_sim_add_rule(d->sim, &rule), 0);
}

/* b listens on port 80, a connects at 0; at until_us b accepts (if it can). */
static void dsim_connect(struct dsim *d, uint64_t until_us)
{
	d->lfd = tern_socket(dst(d, B), TERN_SOCK_STREAM);
	REQUIRE(d->lfd >= 0);
	struct tern_sockaddr any = {0, 80};
	REQUIRE_EQ(tern_bind(dst(d, B), d->lfd, &any), 0);
	REQUIRE_EQ(tern_listen(dst(d, B), d->lfd, 16), 0);
	d->cfd = tern_socket(dst(d, A), TERN_SOCK_STREAM);
	REQUIRE(d->cfd >= 0);
	struct tern_sockaddr to = {SCN_ADDR_B, 80};
	REQUIRE_EQ(tern_connect(dst(d, A), d->cfd, &to), -EINPROGRESS);
	tern_sim_run_until(d->sim, until_us);
	d->sfd = tern_accept(dst(d, B), d->lfd, NULL);
}

static void dsim_free(struct dsim *d)
{
	tern_sim_free(d->sim);
	scn_log_free(&d->r->log);
	free(d->r);
	free(d);
}

TEST(sim_parse_rule)
{
	struct dsim *d = dsim_new(1, NULL);
	struct tern_sim_rule r;

	REQUIRE_EQ(tern_sim_parse_rule(d->sim, "syn", TERN_SIM_DROP, &r), 0);
	CHECK_EQ(r.from, -1);
	CHECK_EQ(r.to, -1);
	CHECK_EQ(r.cls, TERN_SIM_SYN);
	CHECK_EQ(r.nth, 0); /* every match */
	CHECK_EQ(r.action, TERN_SIM_DROP);
	CHECK_EQ(r.delay_us, 0);

	REQUIRE_EQ(tern_sim_parse_rule(d->sim, "fin#2", TERN_SIM_DUP, &r), 0);
	CHECK_EQ(r.from, -1);
	CHECK_EQ(r.to, -1);
	CHECK_EQ(r.cls, TERN_SIM_FIN);
	CHECK_EQ(r.nth, 2);
	CHECK_EQ(r.count, 1);
	CHECK_EQ(r.action, TERN_SIM_DUP);

	REQUIRE_EQ(tern_sim_parse_rule(d->sim, "b>a:synack#1-3", TERN_SIM_CORRUPT, &r), 0);
	CHECK_EQ(r.from, B);
	CHECK_EQ(r.to, A);
	CHECK_EQ(r.cls, TERN_SIM_SYNACK);
	CHECK_EQ(r.nth, 1);
	CHECK_EQ(r.count, 3);
	CHECK_EQ(r.action, TERN_SIM_CORRUPT);

	REQUIRE_EQ(tern_sim_parse_rule(d->sim, "a>b:data#5", TERN_SIM_DELAY, &r), 0);
	CHECK_EQ(r.from, A);
	CHECK_EQ(r.to, B);
	CHECK_EQ(r.cls, TERN_SIM_DATA);
	CHECK_EQ(r.nth, 5);
	CHECK_EQ(r.count, 1);

	static const struct {
		const char *text;
		enum tern_sim_class cls;
	} classes[] = {{"any", TERN_SIM_ANY}, {"syn", TERN_SIM_SYN},   {"synack", TERN_SIM_SYNACK},
		       {"ack", TERN_SIM_ACK}, {"data", TERN_SIM_DATA}, {"fin", TERN_SIM_FIN},
		       {"rst", TERN_SIM_RST}};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		CHECK_EQ(tern_sim_parse_rule(d->sim, classes[i].text, TERN_SIM_DROP, &r), 0);
		CHECK_EQ(r.cls, classes[i].cls);
		CHECK_STR(tern_sim_class_name(classes[i].cls), classes[i].text);
	}

	static const char *const bad[] = {
		"x>b:syn",  /* no host x */
		"a>x:syn",  /* no host x */
		"syn#0",    /* counts start at 1 */
		"foo",      /* no such class */
		"",         /* no class */
		"a>b:",     /* no class */
		"a:syn",    /* FROM without >TO */
		"syn#",     /* # without a number */
		"syn#2x",   /* trailing junk */
		"syn#3-2",  /* an empty range */
		"syn#1-",   /* a range without its end */
		"SYN",      /* classes are lower case */
		"syn ",     /* trailing blank */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (tern_sim_parse_rule(d->sim, bad[i], TERN_SIM_DROP, &r) != -EINVAL)
			test_fail(__FILE__, __LINE__, "rule \"%s\" was accepted", bad[i]);
	dsim_free(d);
}

TEST(sim_drop_rule_drops_exactly_the_second_fin)
{
	/* "fin#2" counts FINs in both directions: the client's FIN (at 1 s) is the first and
	 * passes; the server's (at 1.2 s) is the second and is lost; its retransmission after
	 * RTO_1 is the third and passes. */
	struct dsim *d = dsim_new(7, NULL);
	dsim_rule(d, "fin#2", TERN_SIM_DROP, 0);
	dsim_connect(d, SECS(1));
	REQUIRE(d->sfd >= 0);
	REQUIRE_EQ(tern_close(dst(d, A), d->cfd), 0);
	tern_sim_run_until(d->sim, MS(1200));
	char buf[8];
	CHECK_EQ(tern_recv(dst(d, B), d->sfd, buf, sizeof(buf), 0), 0); /* end of stream */
	REQUIRE_EQ(tern_close(dst(d, B), d->sfd), 0);
	uint64_t end = tern_sim_run_idle(d->sim, SECS(300));
	struct run *r = d->r;
	run_index(r);
	uint32_t ia = r->isn[A], ib = r->isn[B];
	const uint64_t b_fin = MS(1200), fin2 = b_fin + RTO_1;
	CHECK_SENT(r, A, HS_A_SEGS, {T_CLOSE, F_FIN | F_ACK, ia + 1, ib + 1, 0, WIN, 0},
		   {fin2 + OWD, F_ACK, ia + 2, ib + 2, 0, WIN, 0});
	CHECK_SENT(r, B, HS_B_SEGS, {T_CLOSE + OWD, F_ACK, ib + 1, ia + 2, 0, WIN, 0},
		   {b_fin, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, FATE_DROP},
		   {fin2, F_FIN | F_ACK, ib + 1, ia + 2, 0, WIN, 0});
	CHECK_WIRE(r, 1, 0, 0, 0);
	CHECK_DELIVERY(r, OWD);
	CHECK_EQ(end, fin2 + OWD + TWAIT); /* the client's TIME_WAIT is the last thing */
	CHECK_EQ(tern_stack_foreach(dst(d, A), NULL, NULL), 0);
	CHECK_EQ(tern_stack_foreach(dst(d, B), NULL, NULL), 1); /* the listener */
	dsim_free(d);
}

TEST(sim_rule_range_drops_exactly_three_synacks)
{
	/* "b>a:synack#1-3": the first three SYN-ACKs (OWD, and two at 1 s + OWD: the timer's
	 * and the answer to the retransmitted SYN) are lost; the fourth (3 s + OWD) gets
	 * through, and the handshake completes. Other classes and directions are untouched. */
	struct dsim *d = dsim_new(3, NULL);
	dsim_rule(d, "b>a:synack#1-3", TERN_SIM_DROP, 0);
	dsim_connect(d, SECS(10));
	struct run *r = d->r;
	run_index(r);
	CHECK_WIRE(r, 3, 0, 0, 0);
	unsigned dropped = 0;
	for (size_t k = 0; k < r->nsent[B]; k++) {
		const struct sent *s = &r->sent[B][k];
		CHECK_EQ(s->seg.flags, F_SYN | F_ACK);
		if (k < 3)
			CHECK_EQ(s->fate, FATE_DROP);
		else
			CHECK_EQ(s->fate, 0);
		dropped += s->fate == FATE_DROP;
	}
	CHECK_EQ(dropped, 3);
	CHECK(r->nsent[B] >= 4);
	if (r->nsent[B] >= 4) {
		CHECK_EQ(r->sent[B][0].t, OWD);
		CHECK_EQ(r->sent[B][1].t, SECS(1) + OWD);
		CHECK_EQ(r->sent[B][2].t, SECS(1) + OWD);
		CHECK_EQ(r->sent[B][3].t, SECS(3) + OWD);
	}
	CHECK_EQ(tern_sock_state(dst(d, A), d->cfd), TERN_STATE_ESTABLISHED);
	CHECK(d->sfd >= 0);
	CHECK_DELIVERY(r, OWD);
	dsim_free(d);
}

TEST(sim_dup_rule_delivers_twice)
{
	/* The client's data is duplicated: the server receives it twice (the copy 1 µs
	 * later), acknowledges both at once (the second is entirely old, RFC 9293 §3.10.7.4),
	 * and hands the bytes to the application once. */
	struct dsim *d = dsim_new(5, NULL);
	dsim_rule(d, "a>b:data#1", TERN_SIM_DUP, 0);
	dsim_connect(d, T_DATA);
	REQUIRE(d->sfd >= 0);
	CHECK_EQ(tern_send(dst(d, A), d->cfd, "hello", HELLO_LEN, 0), (long)HELLO_LEN);
	tern_sim_run_until(d->sim, SECS(1));
	struct run *r = d->r;
	run_index(r);
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_SENT(r, A, HS_A_SEGS, {T_DATA, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, FATE_DUP});
	CHECK_SENT(r, B, HS_B_SEGS, {T_DATA + OWD, F_ACK, ib + 1, ia + 1 + HELLO_LEN, 0, WIN, 0},
		   {T_DATA + OWD + 1, F_ACK, ib + 1, ia + 1 + HELLO_LEN, 0, WIN, 0});
	CHECK_EQ(recv_time(r, B, F_PSH | F_ACK, 0), T_DATA + OWD);
	CHECK_EQ(recv_time(r, B, F_PSH | F_ACK, 1), T_DATA + OWD + 1);
	CHECK_WIRE(r, 0, 1, 0, 0);
	CHECK_DELIVERY(r, OWD);
	char buf[32];
	CHECK_EQ(tern_recv(dst(d, B), d->sfd, buf, sizeof(buf), 0), (long)HELLO_LEN);
	CHECK_MEM(buf, "hello", HELLO_LEN);
	CHECK_EQ(tern_recv(dst(d, B), d->sfd, buf, sizeof(buf), 0), -EAGAIN);
	dsim_free(d);
}

TEST(sim_delay_rule_holds_back)
{
	/* A DELAY rule adds its delay to the one-way delay of exactly the matching segment. */
	struct dsim *d = dsim_new(5, NULL);
	dsim_rule(d, "a>b:ack#1", TERN_SIM_DELAY, 25000);
	dsim_connect(d, SECS(1));
	struct run *r = d->r;
	run_index(r);
	uint32_t ia = r->isn[A], ib = r->isn[B];
	CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, FATE_DELAY});
	CHECK_EQ(recv_time(r, B, F_ACK, 0), RTT + OWD + MS(25));
	CHECK_WIRE(r, 0, 0, 1, 0);
	CHECK_DELIVERY(r, OWD);
	dsim_free(d);
}

TEST(sim_corrupt_rule_fails_a_checksum)
{
	/* One bit of the client's data segment is flipped on the wire (where depends on the
	 * seed). The receiver's stack discards it and counts it; a flip anywhere in the TCP
	 * segment fails the TCP checksum (a single-bit error always changes a one's-complement
	 * sum), one in the IP header fails the header checksum (or the header's own checks).
	 * The data arrives with the retransmission after RTO_1. */
	unsigned tcp_cases = 0, ip_cases = 0;
	for (uint64_t seed = 1; seed <= 24; seed++) {
		struct dsim *d = dsim_new(seed, NULL);
		dsim_rule(d, "a>b:data#1", TERN_SIM_CORRUPT, 0);
		dsim_connect(d, T_DATA);
		REQUIRE(d->sfd >= 0);
		CHECK_EQ(tern_send(dst(d, A), d->cfd, "hello", HELLO_LEN, 0), (long)HELLO_LEN);
		tern_sim_run_until(d->sim, SECS(2));
		struct run *r = d->r;
		run_index(r);
		uint32_t ia = r->isn[A], ib = r->isn[B];
		CHECK_SENT(r, A, HS_A_SEGS,
			   {T_DATA, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, FATE_CORRUPT},
			   {T_DATA + RTO_1, F_PSH | F_ACK, ia + 1, ib + 1, HELLO_LEN, WIN, 0});
		CHECK_SENT(r, B, HS_B_SEGS,
			   {T_DATA + RTO_1 + OWD, F_ACK, ib + 1, ia + 1 + HELLO_LEN, 0, WIN, 0});
		CHECK_WIRE(r, 0, 0, 0, 1);
		CHECK_DELIVERY(r, OWD); /* the corrupted copy never entered TCP */
		const struct tern_sim_ev *corrupt = NULL, *discard = NULL;
		unsigned ndiscard = 0;
		for (size_t i = 0; i < r->log.n; i++) {
			const struct tern_sim_ev *ev = &r->log.ev[i].ev;
			if (ev->kind == TERN_SIM_EV_CORRUPT)
				corrupt = ev;
			if (ev->kind == TERN_SIM_EV_DISCARD) {
				discard = ev;
				ndiscard++;
			}
		}
		REQUIRE(corrupt && discard);
		CHECK_EQ(ndiscard, 1);
		CHECK_EQ(discard->host, B);
		CHECK_EQ(discard->t_us, T_DATA + OWD);
		const struct tern_stats *sb = tern_stack_stats(dst(d, B));
		uint64_t bad = sb->ip_bad_checksum + sb->ip_bad_header + sb->tcp_bad_checksum +
			       sb->tcp_bad_header + sb->tcp_bad_options;
		CHECK_EQ(bad, 1);
		if (corrupt->seg_valid) {
			/* The IP header survived and the TCP header still parses: the flip is in
			 * the TCP segment, and only its checksum can have caught it. */
			CHECK_EQ(sb->tcp_bad_checksum, 1);
			CHECK_STR(discard->tr.reason, "tcp checksum");
			tcp_cases++;
		} else if (sb->ip_bad_checksum) {
			CHECK_STR(discard->tr.reason, "ip checksum");
			ip_cases++;
		}
		char buf[16];
		CHECK_EQ(tern_recv(dst(d, B), d->sfd, buf, sizeof(buf), 0), (long)HELLO_LEN);
		CHECK_MEM(buf, "hello", HELLO_LEN);
		dsim_free(d);
	}
	CHECK(tcp_cases > 0);
	CHECK(ip_cases > 0);
}

/* A small exchange under 30% random loss both ways: connect, 5 bytes, close both. */
static struct dsim *lossy_run(uint64_t seed)
{
	struct tern_impair imp = {.loss = 0.3, .delay_us = (uint32_t)OWD};
	struct dsim *d = dsim_new(seed, &imp);
	dsim_connect(d, SECS(20));
	if (tern_sock_state(dst(d, A), d->cfd) == TERN_STATE_ESTABLISHED)
		tern_send(dst(d, A), d->cfd, "hello", HELLO_LEN, 0);
	tern_close(dst(d, A), d->cfd);
	tern_sim_run_until(d->sim, SECS(40));
	if (d->sfd < 0)
		d->sfd = tern_accept(dst(d, B), d->lfd, NULL);
	if (d->sfd >= 0) {
		char buf[16];
		while (tern_recv(dst(d, B), d->sfd, buf, sizeof(buf), 0) > 0)
			;
		tern_close(dst(d, B), d->sfd);
	}
	tern_sim_run_idle(d->sim, SECS(2000));
	return d;
}

TEST(sim_random_loss_is_reproducible)
{
	for (uint64_t seed = 11; seed <= 14; seed++) {
		struct dsim *x = lossy_run(seed), *y = lossy_run(seed);
		CHECK_SAME_LOG(&x->r->log, &y->r->log, "same seed, 30% loss");
		run_index(x->r);
		CHECK(x->r->nwire[TERN_SIM_EV_DROP] > 0);
		CHECK_EQ(x->r->nwire[TERN_SIM_EV_DUP] + x->r->nwire[TERN_SIM_EV_CORRUPT], 0);
		CHECK_EQ(tern_sim_now(x->sim), tern_sim_now(y->sim));
		dsim_free(x);
		dsim_free(y);
	}
	/* Another seed loses other packets. */
	struct dsim *x = lossy_run(21), *y = lossy_run(22);
	bool differ = x->r->log.n != y->r->log.n;
	for (size_t i = 0; !differ && i < x->r->log.n; i++)
		differ = !ev_equal(&x->r->log.ev[i], &y->r->log.ev[i]);
	CHECK(differ);
	dsim_free(x);
	dsim_free(y);
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

TEST(sim_pcap_file_is_valid)
{
	char dir[] = "/tmp/tern-test-pcap-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/run.pcap", dir);

	struct dsim *d = dsim_new(9, NULL);
	dsim_rule(d, "a>b:fin#1", TERN_SIM_DROP, 0); /* a lost packet is still on the wire */
	REQUIRE_EQ(tern_sim_pcap(d->sim, path), 0);
	dsim_connect(d, T_DATA);
	REQUIRE(d->sfd >= 0);
	CHECK_EQ(tern_send(dst(d, A), d->cfd, "hello", HELLO_LEN, 0), (long)HELLO_LEN);
	tern_sim_run_until(d->sim, SECS(1));
	tern_close(dst(d, A), d->cfd);
	tern_sim_run_until(d->sim, SECS(2));
	tern_close(dst(d, B), d->sfd);
	tern_sim_run_idle(d->sim, SECS(300));
	struct run *r = d->r;
	run_index(r);
	/* The SENDs of both hosts in log order: the order packets went on the wire. */
	size_t nsend = 0;
	for (size_t i = 0; i < r->log.n; i++)
		nsend += r->log.ev[i].ev.kind == TERN_SIM_EV_SEND;
	CHECK(nsend >= 9);
	tern_sim_free(d->sim); /* closes the capture */
	d->sim = NULL;

	FILE *f = fopen(path, "rb");
	if (!f) {
		test_fail(__FILE__, __LINE__, "no capture at %s", path);
		rmdir(dir);
		dsim_free(d);
		return;
	}
	uint8_t hdr[24];
	memset(hdr, 0, sizeof(hdr));
	CHECK_EQ(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	uint32_t magic, snaplen, linktype, zone, sigfigs;
	uint16_t major, minor;
	memcpy(&magic, hdr, 4);
	memcpy(&major, hdr + 4, 2);
	memcpy(&minor, hdr + 6, 2);
	memcpy(&zone, hdr + 8, 4);
	memcpy(&sigfigs, hdr + 12, 4);
	memcpy(&snaplen, hdr + 16, 4);
	memcpy(&linktype, hdr + 20, 4);
	CHECK_EQ(magic, 0xa1b2c3d4u); /* microsecond timestamps, written in host order */
	CHECK_EQ(major, 2);
	CHECK_EQ(minor, 4);
	CHECK_EQ(zone, 0);
	CHECK_EQ(sigfigs, 0);
	CHECK(snaplen >= 65535);
	CHECK_EQ(linktype, 101); /* LINKTYPE_RAW: raw IPv4 */

	size_t rec = 0;
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind != TERN_SIM_EV_SEND)
			continue;
		uint8_t rh[16], pkt[2048];
		if (fread(rh, 1, sizeof(rh), f) != sizeof(rh)) {
			test_fail(__FILE__, __LINE__, "the capture ends after %zu records of %zu", rec, nsend);
			break;
		}
		uint32_t sec, usec, incl, orig;
		memcpy(&sec, rh, 4);
		memcpy(&usec, rh + 4, 4);
		memcpy(&incl, rh + 8, 4);
		memcpy(&orig, rh + 12, 4);
		const struct tern_seg_info *s = &ev->tr.u.seg;
		CHECK_EQ((uint64_t)sec * 1000000 + usec, ev->t_us);
		CHECK(usec < 1000000);
		CHECK_EQ(incl, orig);
		if (incl < 40 || incl > sizeof(pkt) || fread(pkt, 1, incl, f) != incl) {
			test_fail(__FILE__, __LINE__, "record %zu: bad length %u", rec, incl);
			break;
		}
		CHECK_EQ(pkt[0], 0x45); /* IPv4, 20-byte header */
		CHECK_EQ((uint32_t)(pkt[2] << 8 | pkt[3]), incl);
		CHECK_EQ(pkt[9], 6);
		CHECK_EQ(rd_be32(pkt + 12), s->src);
		CHECK_EQ(rd_be32(pkt + 16), s->dst);
		const uint8_t *t = pkt + 20;
		uint32_t thl = (uint32_t)(t[12] >> 4) * 4;
		/* IP header + TCP header (20, or 24 with the MSS option) + payload */
		CHECK_EQ(thl, (s->flags & F_SYN) ? 24u : 20u);
		CHECK_EQ(incl, 20 + thl + s->len);
		CHECK_EQ((uint32_t)(t[0] << 8 | t[1]), s->sport);
		CHECK_EQ((uint32_t)(t[2] << 8 | t[3]), s->dport);
		CHECK_EQ(rd_be32(t + 4), s->seq);
		CHECK_EQ(rd_be32(t + 8), s->ack);
		CHECK_EQ(t[13], s->flags);
		CHECK_EQ((uint32_t)(t[14] << 8 | t[15]), s->win);
		if (s->len == HELLO_LEN)
			CHECK_MEM(t + thl, "hello", HELLO_LEN);
		rec++;
	}
	CHECK_EQ(rec, nsend);
	uint8_t extra;
	CHECK_EQ(fread(&extra, 1, 1, f), 0); /* one record per packet, nothing after */
	fclose(f);
	CHECK_EQ(unlink(path), 0);
	CHECK_EQ(rmdir(dir), 0);
	dsim_free(d);
}

TEST(sim_pcap_bad_path_fails)
{
	struct tern_sim *sim = tern_sim_new(1);
	REQUIRE(sim);
	CHECK(tern_sim_pcap(sim, "/nonexistent-tern-dir/x/run.pcap") < 0);
	tern_sim_free(sim);
}

TEST(sim_stack_events_without_sockets)
{
	/* A stack that never had a socket has no readiness events (and, under UBSan, hands no
	 * null pointer to memmove: it once did). */
	struct tern_stack *st = tern_stack_new(NULL, 0);
	REQUIRE(st);
	struct tern_event ev[4];
	CHECK_EQ(tern_stack_events(st, ev, 4), 0);
	CHECK_EQ(tern_stack_events(st, ev, 4), 0);
	tern_stack_free(st);
}

TEST(sim_idle_and_run_until)
{
	/* The clock jumps: a 63-second SYN timeout with nothing else runs in a handful of
	 * events and ends exactly where asked. */
	struct dsim *d = dsim_new(2, NULL);
	dsim_rule(d, "a>b:syn", TERN_SIM_DROP, 0);
	CHECK(tern_sim_idle(d->sim));
	dsim_connect(d, SECS(62));
	CHECK_EQ(tern_sim_now(d->sim), SECS(62));
	CHECK(!tern_sim_idle(d->sim));
	CHECK_EQ(tern_sock_state(dst(d, A), d->cfd), TERN_STATE_SYN_SENT);
	CHECK_EQ(tern_sim_run_idle(d->sim, SECS(600)), SECS(63));
	CHECK(tern_sim_idle(d->sim));
	CHECK_EQ(tern_sock_state(dst(d, A), d->cfd), TERN_STATE_CLOSED);
	int err = 0;
	size_t len = sizeof(err);
	CHECK_EQ(tern_getsockopt(dst(d, A), d->cfd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &len), 0);
	CHECK_EQ(err, ETIMEDOUT);
	dsim_free(d);
}
