/*
 * Per-state TCP tests in the manner of smoltcp's: put the stack into one state with the raw
 * peer (tests/peer.h), send it acceptable and unacceptable segments, and assert the exact
 * reply (flags, seq, ack, window, length) or that there is none, and the state that follows.
 *
 * Where RFC 9293 leaves a choice, the behaviour asserted is Linux's (tern follows it). Each
 * group names the RFC section or Linux function it checks. Sequence numbers are relative:
 * p->iss is the stack's ISN, p->irs the peer's; p->snd_nxt is what the stack must have as
 * RCV.NXT and p->rcv_nxt what it must have as SND.NXT.
 *
 * Tests for behaviour that tern gets wrong are kept, asserting the correct behaviour, inside
 * #ifdef TERN_KNOWN_BUG until the stack is fixed (none at the moment).
 */
#include "test.h"
#include "peer.h"

#define W PEER_STACK_WIN
#define ACK TERN_TH_ACK
#define SYN TERN_TH_SYN
#define FIN TERN_TH_FIN
#define RST TERN_TH_RST
#define PSH TERN_TH_PSH

static const char msg[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static const struct tern_stats *stats(struct peer *p) { return tern_stack_stats(p->st); }

/* The state of the connection under test: through its descriptor while the application
 * holds one, else from the stack's table (orphans, TIME_WAIT records). */
static int cur_state(struct peer *p)
{
	return p->fd >= 0 ? tern_sock_state(p->st, p->fd) : peer_conn_state(p);
}

static struct tern_tcp_info info(struct peer *p)
{
	struct tern_tcp_info i;
	memset(&i, 0, sizeof(i));
	int rc = tern_sock_info(p->st, p->fd, &i);
	CHECK_EQ(rc, 0);
	return i;
}

/* The peer sends len bytes of msg as the next in-order data segment (ACK|PSH). */
static void send_data(struct peer *p, size_t len)
{
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt, p->win, msg, len, NULL);
}

/* On an established connection with a descriptor: the peer's first data, len bytes,
 * acknowledged at once (quick-ACK mode) and read by the application. Data having arrived,
 * ato is now delack_min (40 ms), as Linux's tcp_event_data_recv() sets icsk_ack.ato; until
 * then it is 0, and the ACK of a FIN leaves at once. Tests of the delayed ACK of a FIN
 * start with this. */
static void data_then_read(struct peer *p, size_t len)
{
	char buf[64];
	REQUIRE(len <= sizeof(buf));
	send_data(p, len);
	p->snd_nxt += (uint32_t)len;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), len);
	PEER_EXPECT_NONE(p);
}

/* Active open with a round-trip time of rtt_ms (the SYN-ACK arrives that much later), so the
 * RTO is known: with one sample R, RTO = R + max(4 * R/2, 200 ms). */
static void open_active_rtt(struct peer *p, uint64_t rtt_ms)
{
	peer_to_syn_sent(p);
	peer_advance(p, rtt_ms * PEER_MS);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, p->win, NULL, 0, &o);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	REQUIRE_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
}

/* A passive connection completed but not accepted, from peer port rport. */
static void complete_unaccepted(struct peer *p, uint16_t rport)
{
	p->rport = rport;
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	REQUIRE_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
}

/* ========================================================================================== */
/* CLOSED, no socket and no listener: RFC 9293 §3.10.7.1; Linux tcp_v4_send_reset().          */
/* With ACK: <SEQ=SEG.ACK><CTL=RST>. Without: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.      */
/* A RST is never answered. Window 0.                                                          */
/* ========================================================================================== */

TEST(states_closed_ack_draws_rst_with_seq_from_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_inject(p, ACK, 1000, 5000, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, 5000, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_no_port, 1);
	CHECK_EQ(stats(p)->tcp_rst_out, 1);
	peer_free(p);
}

TEST(states_closed_ack_with_data_draws_rst_with_seq_from_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_inject(p, ACK | PSH, 1000, 77, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT(p, RST, 77, 0, 0, 0);
	peer_inject(p, FIN | ACK, 1000, 0xfffffffeu, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, 0xfffffffeu, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_closed_syn_draws_rst_ack)
{
	struct peer *p = peer_new(NULL, 1);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN, 1000, 0, PEER_WIN, NULL, 0, &o);
	PEER_EXPECT(p, RST | ACK, 0, 1001, 0, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_closed_rst_ack_counts_data_syn_and_fin)
{
	struct peer *p = peer_new(NULL, 1);
	peer_inject(p, FIN, 1000, 0, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 1011, 0, 0);
	peer_inject(p, SYN | FIN, 2000, 0, PEER_WIN, msg, 5, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 2007, 0, 0);
	peer_inject(p, 0, 3000, 0, PEER_WIN, msg, 3, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 3003, 0, 0);
	peer_inject(p, 0, 4000, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 4000, 0, 0);
	/* Sequence arithmetic wraps. */
	peer_inject(p, SYN, 0xffffffffu, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_closed_rst_is_never_answered)
{
	struct peer *p = peer_new(NULL, 1);
	peer_inject(p, RST, 1000, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | ACK, 1000, 5000, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | SYN, 1000, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | FIN | ACK, 1000, 5000, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_rst_out, 0);
	peer_free(p);
}

TEST(states_closed_bad_checksum_is_not_answered)
{
	/* A segment that fails its checksum is dropped before any state is looked at. */
	struct peer *p = peer_new(NULL, 1);
	uint8_t pkt[20 + 60];
	size_t n = peer_build(p, pkt, sizeof(pkt), SYN, 1000, 0, PEER_WIN, NULL, 0, NULL);
	pkt[20 + 16] ^= 0x01;
	peer_inject_raw(p, pkt, n);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_bad_checksum, 1);
	CHECK_EQ(stats(p)->tcp_no_port, 0);
	pkt[20 + 16] ^= 0x01; /* the intact datagram is answered */
	peer_inject_raw(p, pkt, n);
	PEER_EXPECT(p, RST | ACK, 0, 1001, 0, 0);
	peer_free(p);
}

TEST(states_closed_other_address_is_not_answered)
{
	struct peer *p = peer_new(NULL, 1);
	peer_inject_from(p, PEER_REMOTE, 40000, TERN_IP4(10, 0, 0, 3), 80, SYN, 1000, 0,
			 PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->ip_not_ours, 1);
	CHECK_EQ(stats(p)->tcp_in, 0);
	peer_free(p);
}

TEST(states_closed_port_after_listener_closed)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	REQUIRE_EQ(tern_close(p->st, p->lfd), 0);
	p->lfd = -1;
	peer_inject(p, SYN, 1000, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST | ACK, 0, 1001, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_closed_other_tuple_of_a_connected_port)
{
	/* A connection exists on the local port, but not with this peer port: no TCB. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_active(p);
	uint16_t rport = p->rport;
	p->rport = 81;
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	p->rport = rport;
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

/* ========================================================================================== */
/* LISTEN: RFC 9293 §3.10.7.2; Linux tcp_rcv_state_process(TCP_LISTEN), tcp_conn_request(). */
/* ========================================================================================== */

TEST(states_listen_rst_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	peer_inject(p, RST, 1000, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | ACK, 1000, 5000, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | SYN, 1000, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_sock_state(p->st, p->lfd), TERN_STATE_LISTEN);
	peer_free(p);
}

TEST(states_listen_any_ack_draws_rst)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	peer_inject(p, ACK, 123, 456, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, 456, 0, 0, 0);
	peer_inject(p, ACK | PSH, 123, 789, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT(p, RST, 789, 0, 0, 0);
	peer_inject(p, FIN | ACK, 123, 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, 1, 0, 0, 0);
	peer_inject(p, SYN | ACK, 123, 777, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, 777, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_sock_state(p->st, p->lfd), TERN_STATE_LISTEN);
	peer_free(p);
}

TEST(states_listen_syn_opens_syn_rcvd_with_syn_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	struct tern_tcp_seg s;
	REQUIRE(peer_pop(p, &s));
	p->iss = s.h.seq;
	CHECK_EQ(s.h.flags, SYN | ACK);
	CHECK_EQ(s.h.ack, p->irs + 1);
	CHECK_EQ(s.h.win, W);
	CHECK_EQ(s.h.len, 0);
	CHECK_EQ(s.h.sport, 80);
	CHECK_EQ(s.h.dport, PEER_CLIENT_PORT);
	CHECK_EQ(s.h.opts.has, TERN_OPT_MSS);
	CHECK_EQ(s.h.opts.mss, 1460);
	CHECK_EQ(s.hlen, 24);
	CHECK_EQ(p->last_t, PEER_T0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	CHECK(peer_saw_trans(p, TERN_STATE_LISTEN, TERN_STATE_SYN_RCVD));
	CHECK_EQ(tern_sock_state(p->st, p->lfd), TERN_STATE_LISTEN);
	CHECK_EQ(tern_accept(p->st, p->lfd, NULL), -EAGAIN);
	CHECK_EQ(stats(p)->tcp_passive_opens, 1);
	peer_free(p);
}

TEST(states_listen_syn_fin_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	peer_inject(p, SYN | FIN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_listen_segment_without_syn_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	peer_inject(p, FIN, 1000, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, 0, 1000, 0, PEER_WIN, msg, 10, NULL);
	peer_inject(p, PSH, 1000, 0, PEER_WIN, msg, 10, NULL);
	peer_inject(p, 0, 1000, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_listen_data_on_syn_is_not_acknowledged)
{
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 4);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, msg, 10, NULL);
	struct tern_tcp_seg s;
	REQUIRE(peer_pop(p, &s));
	p->iss = s.h.seq;
	CHECK_EQ(s.h.flags, SYN | ACK);
	CHECK_EQ(s.h.ack, p->irs + 1);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_listen_full_accept_queue_drops_syn)
{
	/* Linux's sk_acceptq_is_full(): more than backlog waiting. backlog 1 holds two. */
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 1);
	complete_unaccepted(p, 40000);
	complete_unaccepted(p, 40001);
	p->rport = 40002;
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(stats(p)->tcp_listen_overflows, 1);
	/* Once one is accepted, the retried SYN gets through. */
	int fd = tern_accept(p->st, p->lfd, NULL);
	CHECK(fd >= 0);
	peer_advance(p, 1 * PEER_S);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, SYN | ACK, PEER_ANY, p->irs + 1, W, 0);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_free(p);
}

TEST(states_listen_full_accept_queue_drops_third_ack)
{
	/* Linux tcp_check_req() with tcp_abort_on_overflow = 0: the ACK is dropped and the
	 * SYN-ACK timer retries. backlog 0 holds one. */
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 0);
	p->rport = 40000;
	peer_to_syn_rcvd_passive(p);
	uint32_t iss_a = p->iss, snd_a = p->snd_nxt;
	p->rport = 40001;
	peer_to_syn_rcvd_passive(p);
	uint32_t iss_b = p->iss;
	p->rport = 40000;
	peer_inject(p, ACK, snd_a, iss_a + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
	p->rport = 40001;
	peer_inject(p, ACK, p->irs + 1, iss_b + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	CHECK_EQ(stats(p)->tcp_listen_overflows, 1);
	/* B's SYN-ACK is retransmitted on its timer. */
	REQUIRE(peer_run_timers_until(p, PEER_T0 + 2 * PEER_S));
	PEER_EXPECT(p, SYN | ACK, iss_b, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 1 * PEER_S);
	/* With room again, B's next ACK completes it. */
	CHECK(tern_accept(p->st, p->lfd, NULL) >= 0);
	peer_inject(p, ACK, p->irs + 1, iss_b + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_listen_abort_on_overflow_resets_third_ack)
{
	struct tern_settings set;
	tern_settings_default(&set);
	set.abort_on_overflow = 1;
	struct peer *p = peer_new(&set, 1);
	peer_listen(p, 0);
	p->rport = 40000;
	peer_to_syn_rcvd_passive(p);
	uint32_t iss_a = p->iss, snd_a = p->snd_nxt;
	p->rport = 40001;
	peer_to_syn_rcvd_passive(p);
	p->rport = 40000;
	peer_inject(p, ACK, snd_a, iss_a + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	p->rport = 40001;
	peer_inject(p, ACK, p->irs + 1, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 1, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_listen_syn_backlog_limit_drops_syn)
{
	struct tern_settings set;
	tern_settings_default(&set);
	set.max_syn_backlog = 1;
	struct peer *p = peer_new(&set, 1);
	peer_listen(p, 8);
	p->rport = 40000;
	peer_to_syn_rcvd_passive(p);
	p->rport = 40001;
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(stats(p)->tcp_listen_drops, 1);
	peer_free(p);
}

TEST(states_listen_close_resets_unaccepted_and_drops_half_open)
{
	/* Linux inet_csk_listen_stop(): children waiting in the accept queue are disconnected
	 * (tcp_disconnect(): RST|ACK from ESTABLISHED), half-open requests just vanish. */
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 8);
	complete_unaccepted(p, 40000);
	uint32_t iss_a = p->iss;
	p->rport = 40001;
	peer_to_syn_rcvd_passive(p);
	CHECK_EQ(tern_close(p->st, p->lfd), 0);
	p->lfd = -1;
	p->rport = 40000;
	p->iss = iss_a;
	PEER_EXPECT(p, RST | ACK, iss_a + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p); /* no SYN-ACK retransmission for the half-open one */
	peer_free(p);
}

TEST(states_listen_connection_reset_in_accept_queue_is_still_accepted)
{
	/* Linux keeps a child reset before accept() in the queue: accept() returns it and the
	 * error shows on the new descriptor. */
	struct peer *p = peer_new(NULL, 1);
	peer_listen(p, 8);
	complete_unaccepted(p, 40000);
	peer_inject(p, RST, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_CLOSED);
	int fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(fd >= 0);
	CHECK_EQ(tern_sock_state(p->st, fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, fd), ECONNRESET);
	CHECK_EQ(tern_accept(p->st, p->lfd, NULL), -EAGAIN);
	peer_free(p);
}

/* ========================================================================================== */
/* SYN_SENT: RFC 9293 §3.10.7.3; Linux tcp_rcv_synsent_state_process().                       */
/* ========================================================================================== */

TEST(states_syn_sent_syn_fields)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	const struct tern_tcp_seg *s = &p->last_seg;
	CHECK_EQ(s->h.flags, SYN);
	CHECK_EQ(s->h.seq, p->iss);
	CHECK_EQ(s->h.ack, 0);
	CHECK_EQ(s->h.win, W);
	CHECK_EQ(s->h.len, 0);
	CHECK_EQ(s->h.opts.has, TERN_OPT_MSS);
	CHECK_EQ(s->h.opts.mss, 1460);
	CHECK_EQ(s->hlen, 24);
	CHECK_EQ(p->last_t, PEER_T0);
	CHECK(p->lport >= 32768 && p->lport <= 60999);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	CHECK_EQ(tern_sock_events(p->st, p->fd) & TERN_EV_OUT, 0);
	CHECK_EQ(stats(p)->tcp_active_opens, 1);
	peer_free(p);
}

TEST(states_syn_sent_unacceptable_ack_draws_rst)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, ACK, p->irs, p->iss, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss, 0, 0, 0);
	peer_inject(p, ACK, p->irs, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 2, 0, 0, 0);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 2, 0, 0, 0);
	peer_inject(p, SYN | ACK, p->irs, p->iss - 100000, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss - 100000, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	/* The attempt goes on: a proper SYN-ACK still completes it. */
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_syn_sent_rst_with_unacceptable_ack_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, RST | ACK, 0, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST | ACK, 0, p->iss, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	CHECK_EQ(peer_so_error(p, p->fd), 0);
	peer_free(p);
}

TEST(states_syn_sent_rst_with_acceptable_ack_refuses)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, RST | ACK, 0, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK((tern_sock_events(p->st, p->fd) & (TERN_EV_ERR | TERN_EV_HUP)) ==
	      (TERN_EV_ERR | TERN_EV_HUP));
	CHECK_EQ(peer_so_error(p, p->fd), ECONNREFUSED);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(stats(p)->tcp_attempt_fails, 1);
	/* Nothing is retransmitted any more. */
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_sent_rst_without_ack_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, RST, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST, 0, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	CHECK_EQ(peer_so_error(p, p->fd), 0);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_syn_sent_syn_ack_establishes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, &o);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(s.h.opts.has, 0);
	CHECK_EQ(s.hlen, 20);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK(peer_saw_trans(p, TERN_STATE_SYN_SENT, TERN_STATE_ESTABLISHED));
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_OUT);
	CHECK_EQ(peer_so_error(p, p->fd), 0);
	struct tern_sockaddr a;
	CHECK_EQ(tern_getpeername(p->st, p->fd, &a), 0);
	CHECK_EQ(a.addr, PEER_REMOTE);
	CHECK_EQ(a.port, 80);
	/* No timer is left running on an idle established connection. */
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_syn_sent_data_on_syn_ack_is_not_taken)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[16];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	peer_free(p);
}

TEST(states_syn_sent_bare_syn_is_simultaneous_open)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(s.h.opts.has, TERN_OPT_MSS);
	CHECK_EQ(s.h.opts.mss, 1460);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_RCVD);
	CHECK(peer_saw_trans(p, TERN_STATE_SYN_SENT, TERN_STATE_SYN_RCVD));
	peer_free(p);
}

TEST(states_syn_sent_segment_without_syn_or_rst_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, ACK | PSH, p->irs, p->iss + 1, PEER_WIN, msg, 10, NULL);
	peer_inject(p, FIN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, FIN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, 0, p->irs, 0, PEER_WIN, msg, 10, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	/* Nothing was taken: the SYN-ACK is acknowledged as if nothing had come before. */
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	peer_free(p);
}

/* The send MSS: RFC 9293 §3.7.1 (536 without the option), capped by our own 1460, never below
 * Linux's tcp_min_snd_mss 48 (and an MSS of 0 ignored, as Linux's tcp_parse_options). */
static void check_peer_mss(const struct tern_tcp_opts *o, uint32_t want)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, o);
	p->snd_nxt = p->irs + 1;
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(info(p).snd_mss, want);
	static uint8_t big[3000];
	CHECK_EQ(tern_send(p->st, p->fd, big, sizeof(big), 0), (long)sizeof(big));
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, want);
	peer_free(p);
}

TEST(states_syn_sent_mss_option_is_used)
{
	struct tern_tcp_opts o = peer_mss_opt(1000);
	check_peer_mss(&o, 1000);
}

TEST(states_syn_sent_mss_absent_means_536)
{
	check_peer_mss(NULL, 536);
}

TEST(states_syn_sent_mss_zero_means_536)
{
	struct tern_tcp_opts o = peer_mss_opt(0);
	check_peer_mss(&o, 536);
}

TEST(states_syn_sent_mss_capped_at_our_1460)
{
	struct tern_tcp_opts o = peer_mss_opt(9000);
	check_peer_mss(&o, 1460);
}

TEST(states_syn_sent_mss_never_below_48)
{
	struct tern_tcp_opts o = peer_mss_opt(10);
	check_peer_mss(&o, 48);
}

TEST(states_syn_sent_mss_47_rounds_up_to_48)
{
	struct tern_tcp_opts o = peer_mss_opt(47);
	check_peer_mss(&o, 48);
}

TEST(states_syn_sent_mss_49_is_kept)
{
	struct tern_tcp_opts o = peer_mss_opt(49);
	check_peer_mss(&o, 49);
}

TEST(states_listen_syn_without_mss_means_536)
{
	struct peer *p = peer_new(NULL, 1);
	p->mss = 0;
	peer_open_passive(p);
	CHECK_EQ(info(p).snd_mss, 536);
	static uint8_t big[1000];
	CHECK_EQ(tern_send(p->st, p->fd, big, sizeof(big), 0), (long)sizeof(big));
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 536);
	PEER_EXPECT(p, ACK | PSH, p->iss + 1 + 536, p->irs + 1, W, 1000 - 536);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_sent_close_ends_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	/* The tuple is free: the peer's SYN-ACK now meets no TCB. */
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 1, 0, 0, 0);
	peer_free(p);
}

TEST(states_syn_sent_abort_ends_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	CHECK_EQ(tern_abort(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_advance(p, 10 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

/* ========================================================================================== */
/* SYN_RCVD of a passive open: Linux tcp_check_req() (RFC 9293 §3.10.7.4 for SYN-RECEIVED).  */
/* ========================================================================================== */

TEST(states_syn_rcvd_passive_ack_establishes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, ACK, p->irs + 1, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
	CHECK(tern_sock_events(p->st, p->lfd) & TERN_EV_IN);
	int fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(fd >= 0);
	CHECK_EQ(tern_sock_state(p->st, fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_ack_with_data_establishes_and_acks)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, ACK | PSH, p->irs + 1, p->iss + 1, PEER_WIN, msg, 5, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 6, W, 0);
	PEER_EXPECT_NONE(p);
	int fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(fd >= 0);
	char buf[16];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 5);
	CHECK_MEM(buf, msg, 5);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_fin_on_third_ack_goes_to_close_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->irs + 1, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p); /* scheduled on the delayed-ACK timer, not sent inline */
	CHECK_EQ(peer_conn_state(p), TERN_STATE_CLOSE_WAIT);
	/* No data came before the FIN, so ato is 0 (Linux's icsk_ack.ato): the ACK leaves
	 * when the timers next run, at the same instant. */
	REQUIRE(peer_run_timers_until(p, t + 100 * PEER_MS));
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 2, W, 0);
	CHECK_EQ(p->last_t, t);
	peer_advance_to(p, t + 100 * PEER_MS);
	PEER_EXPECT_NONE(p);
	int fd = tern_accept(p->st, p->lfd, NULL);
	REQUIRE(fd >= 0);
	CHECK_EQ(tern_sock_state(p->st, fd), TERN_STATE_CLOSE_WAIT);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 0);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_retransmitted_syn_gets_syn_ack)
{
	/* ... rate limited like any out-of-window ACK (Linux tcp_check_req, tcp_oow_rate_limited). */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_advance(p, 200 * PEER_MS);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(s.h.opts.mss, 1460);
	peer_advance(p, 100 * PEER_MS);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 400 * PEER_MS); /* 500 ms after the last answer */
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	CHECK_EQ(peer_conn_total(p), 1);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_bad_ack_draws_rst_and_keeps_connection)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, ACK, p->irs + 1, p->iss, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss, 0, 0, 0);
	peer_inject(p, ACK, p->irs + 1, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 2, 0, 0, 0);
	/* With RST set as well: the listener's rule, a RST is ignored (and never answered). */
	peer_inject(p, RST | ACK, p->irs + 1, p->iss + 5, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_inject(p, ACK, p->irs + 1, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_exact_rst_drops_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, RST, p->irs + 1, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_accept(p->st, p->lfd, NULL), -EAGAIN);
	/* No SYN-ACK retransmission follows. */
	peer_advance(p, 70 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_in_window_rst_drops_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, RST | ACK, p->irs + 1000, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_out_of_window_rst_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, RST, p->irs + 1 + W + 1, 0, PEER_WIN, NULL, 0, NULL);
	peer_inject(p, RST, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_new_syn_in_window_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, SYN, p->irs + 10, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST | ACK, 0, p->irs + 11, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_out_of_window_segment_gets_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, ACK, p->irs + 1 + 70000, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	peer_inject(p, ACK, p->irs + 1 + 70000, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p); /* rate limited */
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_syn_ack_retransmission_schedule)
{
	/* synack_retries 5: SYN-ACKs at 0, 1, 3, 7, 15, 31 s, the half-open connection
	 * dropped at 63 s without a RST (Linux inet_csk_reqsk_queue_drop). */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	static const uint64_t at[] = {1, 3, 7, 15, 31};
	for (size_t i = 0; i < 5; i++) {
		REQUIRE(peer_run_timers_until(p, PEER_T0 + 100 * PEER_S));
		PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
		CHECK_EQ(p->last_t, PEER_T0 + at[i] * PEER_S);
		CHECK_EQ(p->last_seg.h.opts.mss, 1460);
	}
	peer_advance_to(p, PEER_T0 + 63 * PEER_S - PEER_MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_advance_to(p, PEER_T0 + 63 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_sock_state(p->st, p->lfd), TERN_STATE_LISTEN);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_rcvd_passive_retransmitted_syn_restarts_syn_ack_timer)
{
	/* Linux tcp_check_req(): a retransmitted SYN is answered with the SYN-ACK at once and
	 * the SYN-ACK timer restarts from then with the backoff reached (timeout <<
	 * num_timeout); the answer is not a timeout, so it neither doubles the interval nor
	 * counts toward synack_retries. SYN-ACKs at 0 and 1 s (timer), 1.5 s (the answer),
	 * then 1.5 + 2 = 3.5, 7.5, 15.5, 31.5 s (timer), and the half-open connection is
	 * dropped at 63.5 s, after the fifth timer retransmission's 32 s (reqsk_timer_handler:
	 * num_timeout reaches synack_retries), without a RST. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_passive(p);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	REQUIRE(peer_run_timers_until(p, PEER_T0 + 100 * PEER_S));
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 1 * PEER_S);
	peer_advance_to(p, PEER_T0 + 1500 * PEER_MS);
	PEER_EXPECT_NONE(p);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, &o);
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 1500 * PEER_MS);
	PEER_EXPECT_NONE(p);
	/* Not at 3 s, where the timer armed at 1 s would have fired. */
	static const uint64_t at_ms[] = {3500, 7500, 15500, 31500};
	for (size_t i = 0; i < 4; i++) {
		peer_advance_to(p, PEER_T0 + at_ms[i] * PEER_MS - PEER_MS);
		PEER_EXPECT_NONE(p);
		REQUIRE(peer_run_timers_until(p, PEER_T0 + 100 * PEER_S));
		PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
		CHECK_EQ(p->last_t, PEER_T0 + at_ms[i] * PEER_MS);
		PEER_EXPECT_NONE(p);
	}
	peer_advance_to(p, PEER_T0 + 63500 * PEER_MS - PEER_MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	peer_advance_to(p, PEER_T0 + 63500 * PEER_MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_sock_state(p->st, p->lfd), TERN_STATE_LISTEN);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

/* ========================================================================================== */
/* SYN_RCVD of a simultaneous open: RFC 9293 §3.5 figure 8; Linux tcp_validate_incoming()     */
/* (the crossing SYN-ACK passes) and tcp_rcv_state_process(TCP_SYN_RECV).                    */
/* ========================================================================================== */

TEST(states_syn_rcvd_simultaneous_ack_establishes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, ACK, p->irs + 1, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_OUT);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_crossing_syn_ack_establishes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 0);
	/* Whatever the immediate reply, the connection is synchronized: data flows with
	 * the right numbers. */
	peer_discard(p);
	CHECK_EQ(tern_send(p->st, p->fd, msg, 4, 0), 4);
	PEER_EXPECT(p, ACK | PSH, p->iss + 1, p->irs + 1, W, 4);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_crossing_syn_ack_acked)
{
	/* The crossing SYN-ACK occupies IRS..IRS+1, all of it below RCV.NXT once its ACK part
	 * has established the connection. Its SYN, repeated in a synchronized state, is
	 * answered with an ACK at once (RFC 5961 §4); Linux sends the same ACK (tcp_data_queue()
	 * sees a retransmission, `. 1:1(0) ack 1`). Exactly one ACK, and it is not counted as a
	 * challenge ACK; the connection is ESTABLISHED. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	uint64_t t = p->now;
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, t);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 0);
	/* Nothing more: no retransmission, no second ACK. */
	peer_advance(p, 10 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_shutdown_sends_fin)
{
	/* RFC 9293 §3.10.4 CLOSE in SYN-RECEIVED: with nothing queued, "form a FIN segment and
	 * send it, and enter FIN-WAIT-1" (Linux tcp_shutdown() -> tcp_send_fin()). tern enters
	 * FIN_WAIT_1 but sends nothing: tcp_output() waits for the SYN to be acknowledged and
	 * the FIN_WAIT_1 retransmission path no longer resends the SYN-ACK, so the handshake
	 * stalls until the peer happens to send something. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	CHECK_EQ(tern_shutdown(p->st, p->fd, TERN_SHUT_WR), 0);
	PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_1);
	/* The peer acknowledges SYN and FIN together. */
	peer_inject(p, ACK, p->irs + 1, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_exact_rst_refuses)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, RST, p->irs + 1, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), ECONNREFUSED);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_in_window_rst_gets_challenge_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, RST, p->irs + 2, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_RCVD);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 1);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_bad_ack_draws_rst)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, ACK, p->irs + 1, p->iss + 2, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss + 2, 0, 0, 0);
	peer_inject(p, ACK, p->irs + 1, p->iss, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->iss, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_RCVD);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_syn_gets_challenge_ack)
{
	/* RFC 9293 SYN-RECEIVED from an active OPEN: handled as in the synchronized states,
	 * i.e. RFC 5961 §4.2. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_rcvd_simultaneous(p);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_RCVD);
	peer_free(p);
}

TEST(states_syn_rcvd_simultaneous_syn_ack_keeps_syn_timer)
{
	/* The SYN-ACK of a simultaneous open is retransmitted on the SYN's timer. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	peer_advance(p, 100 * PEER_MS);
	peer_inject(p, SYN, p->irs, 0, PEER_WIN, NULL, 0, NULL);
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 100 * PEER_MS);
	REQUIRE(peer_run_timers_until(p, PEER_T0 + 10 * PEER_S));
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 1 * PEER_S);
	REQUIRE(peer_run_timers_until(p, PEER_T0 + 10 * PEER_S));
	PEER_EXPECT(p, SYN | ACK, p->iss, p->irs + 1, W, 0);
	CHECK_EQ(p->last_t, PEER_T0 + 3 * PEER_S);
	peer_free(p);
}

/* ========================================================================================== */
/* ESTABLISHED, sequence acceptability: Linux tcp_sequence() (left edge RCV.WUP, right edge   */
/* RCV.NXT + window, inclusive) instead of RFC 9293 §3.10.7.4's table; unacceptable segments  */
/* get <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, pure ACKs and SYNs at most once per 500 ms        */
/* (RFC 5961 §10, Linux tcp_oow_rate_limited()).                                               */
/* ========================================================================================== */

TEST(states_established_idle_has_no_timer)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_advance(p, 3600 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_established_in_window_pure_ack_is_silent)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	peer_inject(p, ACK, p->snd_nxt + 100, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 0);
	peer_free(p);
}

TEST(states_established_right_edge_is_acceptable)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK, p->snd_nxt + W, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 0);
	peer_inject(p, ACK, p->snd_nxt + W + 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 1);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_established_left_edge_pure_ack_gets_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 1);
	peer_free(p);
}

TEST(states_established_out_of_window_acks_are_rate_limited)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	uint32_t bad = p->snd_nxt + 70000;
	peer_inject(p, ACK, bad, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_advance_to(p, t + 100 * PEER_MS);
	peer_inject(p, ACK, bad, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 499 * PEER_MS);
	peer_inject(p, ACK, bad, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 500 * PEER_MS);
	peer_inject(p, ACK, bad, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 4);
	peer_free(p);
}

TEST(states_established_invalid_ratelimit_setting_is_used)
{
	struct tern_settings set;
	tern_settings_default(&set);
	set.invalid_ratelimit_ms = 0;
	struct peer *p = peer_new(&set, 1);
	peer_open_passive(p);
	for (int i = 0; i < 3; i++) {
		peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
		PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	}
	peer_free(p);
}

TEST(states_established_out_of_window_data_is_always_answered)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	for (int i = 0; i < 3; i++) {
		peer_inject(p, ACK | PSH, p->snd_nxt + 70000, p->rcv_nxt, p->win, msg, 10, NULL);
		PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	}
	for (int i = 0; i < 2; i++) {
		peer_inject(p, FIN | ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
		PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	}
	PEER_EXPECT_NONE(p);
	char buf[16];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_established_rst_outside_window_edges_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, RST, p->snd_nxt + W + 1, 0, p->win, NULL, 0, NULL);
	peer_inject(p, RST, p->snd_nxt - 1, 0, p->win, NULL, 0, NULL);
	peer_inject(p, RST | ACK, p->snd_nxt - 1000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_rst_in, 0);
	peer_free(p);
}

TEST(states_established_retransmitted_syn_ack_gets_challenge_ack)
{
	/* Our third ACK was lost and the server repeats its SYN-ACK: the SYN draws the RFC 5961
	 * §4.2 challenge ACK, which is exactly the ACK the server needs. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_active(p);
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN | ACK, p->irs, p->iss + 1, PEER_WIN, NULL, 0, &o);
	PEER_EXPECT(p, ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 1);
	peer_free(p);
}

TEST(states_established_zero_window_acceptability)
{
	/* A 2920-byte receive buffer fills after two full segments. The quick-ACK budget
	 * (Linux's tcp_incr_quickack: half the window in segments) is one ACK, so the first
	 * segment is ACKed at once and the second, which closes the window, after the
	 * delayed-ACK timeout. With the window closed only SEG.SEQ == RCV.NXT is acceptable; a
	 * probe byte there is refused for want of room and answered at once; reading reopens
	 * the window with an update. */
	struct tern_settings set;
	tern_settings_default(&set);
	set.rmem_default = 2920;
	struct peer *p = peer_new(&set, 1);
	p->stack_win = 2920;
	peer_open_passive(p);
	static uint8_t big[1460];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, big, 1460, NULL);
	p->snd_nxt += 1460;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, 1460, 0);
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt, p->win, big, 1460, NULL);
	p->snd_nxt += 1460;
	PEER_EXPECT_NONE(p);
	uint64_t t = p->now;
	CHECK(peer_run_timers_until(p, t + 1000000));
	CHECK_EQ(p->now - t, (uint64_t)set.delack_min_ms * 1000);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, 0, 0);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 0);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, msg, 1, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, 0, 0);
	CHECK_EQ(stats(p)->tcp_rcvbuf_drops, 1);
	CHECK_EQ(stats(p)->tcp_out_of_window, 0);
	peer_inject(p, ACK, p->snd_nxt + 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, 0, 0);
	CHECK_EQ(stats(p)->tcp_out_of_window, 1);
	PEER_EXPECT_NONE(p);
	uint8_t buf[1460];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 1460);
	CHECK_MEM(buf, big, 1460);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, 1460, 0); /* window update */
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_established_segment_without_ack_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, PSH, p->snd_nxt, 0, p->win, msg, 10, NULL);
	peer_inject(p, FIN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	peer_inject(p, 0, p->snd_nxt + 70000, 0, p->win, msg, 10, NULL);
	PEER_EXPECT_NONE(p);
	char buf[16];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

/* ========================================================================================== */
/* RST in a synchronized state: RFC 5961 §3.2 (exact RCV.NXT resets, the rest of the window   */
/* draws a challenge ACK); Linux tcp_validate_incoming(), tcp_reset() for the errno.          */
/* ========================================================================================== */

TEST(states_established_exact_rst_resets_and_frees_the_tuple)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, RST, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK((tern_sock_events(p->st, p->fd) & (TERN_EV_ERR | TERN_EV_HUP)) ==
	      (TERN_EV_ERR | TERN_EV_HUP));
	CHECK_EQ(peer_so_error(p, p->fd), ECONNRESET);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(stats(p)->tcp_estab_resets, 1);
	CHECK_EQ(stats(p)->tcp_rst_in, 1);
	/* The tuple is gone: the next segment meets no TCB. */
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	peer_free(p);
}

TEST(states_established_exact_rst_ack_resets_recv_reports_it)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_active(p);
	peer_inject(p, RST | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -ECONNRESET);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	peer_free(p);
}

TEST(states_established_in_window_rst_challenge_is_rate_limited)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	peer_inject(p, RST, p->snd_nxt + 1, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 1);
	/* Rate limited. */
	peer_advance_to(p, t + 300 * PEER_MS);
	peer_inject(p, RST, p->snd_nxt + 2, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 500 * PEER_MS);
	peer_inject(p, RST, p->snd_nxt + 3, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 2);
	peer_free(p);
}

TEST(states_established_rst_at_right_edge_gets_challenge_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, RST, p->snd_nxt + W, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_established_challenge_and_out_of_window_acks_share_the_limit)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	uint64_t t = p->now;
	peer_inject(p, RST, p->snd_nxt + 1, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	peer_inject(p, SYN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 500 * PEER_MS);
	peer_inject(p, SYN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

/* ========================================================================================== */
/* The same checks in every synchronized state, generated per state:                           */
/*  - SYN (in window or not): RFC 5961 §4.2 challenge ACK, state unchanged;                    */
/*  - RST in window but not at RCV.NXT: RFC 5961 §3.2 challenge ACK;                           */
/*  - RST at RCV.NXT: reset, with Linux tcp_reset()'s errno for a descriptor still held;       */
/*  - out-of-window pure ACK: ACK (RFC 9293 §3.10.7.4 first check);                            */
/*  - out-of-window RST: dropped;                                                              */
/*  - ACK of unsent data: dropped in ESTABLISHED (Linux tcp_ack()), challenge ACK elsewhere   */
/*    (Linux tcp_rcv_state_process(): "accept old ack during closing" path).                   */
/* ========================================================================================== */

static void check_syn_challenge(struct peer *p, int state)
{
	peer_inject(p, SYN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(cur_state(p), state);
	/* An out-of-window SYN, half a second later (the limit), the same. */
	peer_advance(p, 500 * PEER_MS);
	peer_discard(p); /* a retransmission timer may fire meanwhile */
	peer_inject(p, SYN | ACK, p->snd_nxt + 100000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(cur_state(p), state);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 2);
}

static void check_rst_in_window(struct peer *p, int state)
{
	peer_inject(p, RST, p->snd_nxt + 1, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(cur_state(p), state);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 1);
}

static void check_rst_exact(struct peer *p, int err)
{
	peer_inject(p, RST, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	if (p->fd >= 0) {
		CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
		CHECK_EQ(peer_so_error(p, p->fd), err);
	} else {
		CHECK_EQ(peer_conn_total(p), 0);
	}
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
}

static void check_oow_ack(struct peer *p, int state)
{
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, ACK, p->snd_nxt - 2, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p); /* rate limited */
	CHECK_EQ(cur_state(p), state);
}

static void check_oow_rst(struct peer *p, int state)
{
	peer_inject(p, RST, p->snd_nxt + 70000, 0, p->win, NULL, 0, NULL);
	peer_inject(p, RST | ACK, p->snd_nxt - 2, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(cur_state(p), state);
}

static void check_ack_unsent(struct peer *p, int state)
{
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt + 1, p->win, msg, 5, NULL);
	if (state == TERN_STATE_ESTABLISHED)
		PEER_EXPECT_NONE(p);
	else
		PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(cur_state(p), state);
	CHECK_EQ(stats(p)->tcp_ack_unsent, 1);
	if (p->fd >= 0) {
		char buf[8];
		long n = tern_recv(p->st, p->fd, buf, sizeof(buf), 0);
		CHECK(n == -EAGAIN || n == 0); /* the data was not taken */
	}
}

static void setup_established(struct peer *p) { peer_open_passive(p); }
static void setup_established_active(struct peer *p) { peer_open_active(p); }
static void setup_fin_wait_1(struct peer *p) { peer_to_fin_wait_1(p, PEER_SHUT_WR); }
static void setup_fin_wait_1_orphan(struct peer *p) { peer_to_fin_wait_1(p, PEER_CLOSE); }
static void setup_fin_wait_2(struct peer *p) { peer_to_fin_wait_2(p, PEER_SHUT_WR); }
static void setup_close_wait(struct peer *p) { peer_to_close_wait(p); }
static void setup_closing(struct peer *p) { peer_to_closing(p, PEER_SHUT_WR); }
static void setup_closing_orphan(struct peer *p) { peer_to_closing(p, PEER_CLOSE); }
static void setup_last_ack(struct peer *p) { peer_to_last_ack(p, PEER_SHUT_WR); }
static void setup_last_ack_orphan(struct peer *p) { peer_to_last_ack(p, PEER_CLOSE); }

#define STATE_TESTS(tag, setup, state, rst_err)                                  \
	TEST(states_##tag##_syn_gets_challenge_ack)                              \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_syn_challenge(p, state);                                   \
		peer_free(p);                                                    \
	}                                                                        \
	TEST(states_##tag##_in_window_rst_gets_challenge_ack)                    \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_rst_in_window(p, state);                                   \
		peer_free(p);                                                    \
	}                                                                        \
	TEST(states_##tag##_exact_rst_resets)                                    \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_rst_exact(p, rst_err);                                     \
		peer_free(p);                                                    \
	}                                                                        \
	TEST(states_##tag##_out_of_window_ack_gets_ack)                          \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_oow_ack(p, state);                                         \
		peer_free(p);                                                    \
	}                                                                        \
	TEST(states_##tag##_out_of_window_rst_is_dropped)                        \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_oow_rst(p, state);                                         \
		peer_free(p);                                                    \
	}                                                                        \
	TEST(states_##tag##_ack_of_unsent_data)                                  \
	{                                                                        \
		struct peer *p = peer_new(NULL, 1);                              \
		setup(p);                                                        \
		check_ack_unsent(p, state);                                      \
		peer_free(p);                                                    \
	}

STATE_TESTS(established, setup_established, TERN_STATE_ESTABLISHED, ECONNRESET)
STATE_TESTS(established_active, setup_established_active, TERN_STATE_ESTABLISHED, ECONNRESET)
STATE_TESTS(fin_wait_1, setup_fin_wait_1, TERN_STATE_FIN_WAIT_1, ECONNRESET)
STATE_TESTS(fin_wait_1_orphan, setup_fin_wait_1_orphan, TERN_STATE_FIN_WAIT_1, 0)
STATE_TESTS(fin_wait_2, setup_fin_wait_2, TERN_STATE_FIN_WAIT_2, ECONNRESET)
STATE_TESTS(close_wait, setup_close_wait, TERN_STATE_CLOSE_WAIT, EPIPE)
STATE_TESTS(closing, setup_closing, TERN_STATE_CLOSING, ECONNRESET)
STATE_TESTS(closing_orphan, setup_closing_orphan, TERN_STATE_CLOSING, 0)
STATE_TESTS(last_ack, setup_last_ack, TERN_STATE_LAST_ACK, ECONNRESET)
STATE_TESTS(last_ack_orphan, setup_last_ack_orphan, TERN_STATE_LAST_ACK, 0)

/* Linux tcp_reset_check(): once the peer's FIN is in (CLOSE_WAIT, CLOSING, LAST_ACK), a RST
 * may carry the FIN's own sequence number, RCV.NXT - 1, and still resets. Not in ESTABLISHED
 * or FIN_WAIT_x. */
static void check_rst_fin_seq(struct peer *p, bool resets, int state, int err)
{
	peer_inject(p, RST, p->snd_nxt - 1, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	if (resets) {
		CHECK_EQ(peer_conn_state(p), PEER_NONE);
		if (p->fd >= 0)
			CHECK_EQ(peer_so_error(p, p->fd), err);
	} else {
		CHECK_EQ(cur_state(p), state);
	}
}

TEST(states_close_wait_rst_at_fin_seq_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_close_wait(p);
	check_rst_fin_seq(p, true, 0, EPIPE);
	peer_free(p);
}

TEST(states_close_wait_rst_at_fin_seq_resets_before_delayed_ack)
{
	/* Before the delayed ACK goes out RCV.WUP still lies before the FIN. (Data first, so
	 * that ato is 40 ms and the ACK of the FIN is delayed.) */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	data_then_read(p, 10);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT_NONE(p);
	check_rst_fin_seq(p, true, 0, EPIPE);
	peer_free(p);
}

TEST(states_closing_rst_at_fin_seq_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_closing(p, PEER_SHUT_WR);
	check_rst_fin_seq(p, true, 0, ECONNRESET);
	peer_free(p);
}

TEST(states_last_ack_rst_at_fin_seq_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_last_ack(p, PEER_CLOSE);
	check_rst_fin_seq(p, true, 0, 0);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_established_rst_at_rcv_nxt_minus_1_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	check_rst_fin_seq(p, false, TERN_STATE_ESTABLISHED, 0);
	peer_free(p);
}

TEST(states_fin_wait_2_rst_at_rcv_nxt_minus_1_is_dropped)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	check_rst_fin_seq(p, false, TERN_STATE_FIN_WAIT_2, 0);
	peer_free(p);
}

/* ========================================================================================== */
/* The ACK field: RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5.2; Linux tcp_ack().            */
/* ========================================================================================== */

TEST(states_established_ack_older_than_max_window_gets_challenge_ack)
{
	/* SND.UNA - MAX.SND.WND is the oldest acceptable ACK; the peer's largest window was
	 * 65535. The segment is dropped, its data with it. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt - 65536, p->win, msg, 5, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 1);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_established_old_ack_is_ignored_and_data_taken)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt - 65535, p->win, msg, 5, NULL);
	p->snd_nxt += 5;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 5);
	CHECK_MEM(buf, msg, 5);
	CHECK_EQ(stats(p)->tcp_challenge_acks, 0);
	peer_free(p);
}

TEST(states_established_ack_of_sent_data_frees_it)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(tern_send(p->st, p->fd, msg, 20, 0), 20);
	PEER_EXPECT(p, ACK | PSH, p->rcv_nxt, p->snd_nxt, W, 20);
	CHECK_EQ(info(p).snd_queue, 20);
	/* A partial ACK leaves the rest queued and the timer running. */
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt + 5, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).snd_queue, 15);
	CHECK(tern_stack_next_timer(p->st) != TERN_TIME_NEVER);
	p->rcv_nxt += 20;
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	struct tern_tcp_info i = info(p);
	CHECK_EQ(i.snd_queue, 0);
	CHECK_EQ(i.snd_una, p->rcv_nxt);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_advance(p, 10 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

/* ========================================================================================== */
/* Segment text: RFC 9293 §3.10.7.4 seventh; Linux tcp_data_queue() (immediate ACK of data,    */
/* duplicate ACK for out-of-order data, ACK of retransmissions) and tcp_rcv_state_process()    */
/* step 7 (data after FIN ignored; data after the application closed: RST, RFC 1122 4.2.2.13). */
/* ========================================================================================== */

TEST(states_established_in_order_data_is_queued_and_acked)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_IN);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	CHECK_MEM(buf, msg, 10);
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	peer_free(p);
}

TEST(states_established_out_of_order_data_gets_duplicate_ack)
{
	/* RFC 5681 §4.2: out-of-order data is ACKed at once (a duplicate ACK) and kept; the
	 * segment that fills the hole is ACKed at once too, and the ACK covers both. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, ACK | PSH, p->snd_nxt + 20, p->rcv_nxt, p->win, msg + 20, 10, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[64];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(stats(p)->tcp_ofo_queued, 1);
	send_data(p, 20);
	p->snd_nxt += 30;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 30);
	CHECK_MEM(buf, msg, 30);
	peer_free(p);
}

TEST(states_established_retransmitted_data_gets_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt + 10, W, 0);
	send_data(p, 10); /* the same segment again */
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt + 10, W, 0);
	PEER_EXPECT_NONE(p);
	p->snd_nxt += 10;
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), -EAGAIN);
	peer_free(p);
}

TEST(states_established_partly_old_data_takes_the_new_part)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt + 10, W, 0);
	/* Bytes 5..14 of msg. */
	peer_inject(p, ACK | PSH, p->snd_nxt + 5, p->rcv_nxt, p->win, msg + 5, 10, NULL);
	p->snd_nxt += 15;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 15);
	CHECK_MEM(buf, msg, 15);
	peer_free(p);
}

TEST(states_established_sequence_numbers_wrap)
{
	struct peer *p = peer_new(NULL, 1);
	p->irs = 0xfffffff0u;
	peer_open_passive(p);
	send_data(p, 30); /* crosses 2^32 */
	p->snd_nxt += 30;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(p->snd_nxt, 0x0000000fu);
	peer_inject(p, ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0); /* old: left of RCV.WUP */
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 30);
	CHECK_MEM(buf, msg, 30);
	peer_free(p);
}

TEST(states_close_wait_data_after_fin_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_close_wait(p);
	send_data(p, 10);
	PEER_EXPECT_NONE(p);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_free(p);
}

TEST(states_close_wait_retransmitted_fin_gets_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_close_wait(p);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0); /* a FIN is never rate limited */
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_free(p);
}

TEST(states_close_wait_acceptability_starts_at_rcv_wup)
{
	/* Linux tcp_sequence(): the left edge is RCV.WUP, RCV.NXT when the window was last
	 * advertised. Before the delayed ACK of the FIN that is still before the FIN, so a
	 * pure ACK at the FIN's sequence number is acceptable (no reply); after it, not. Data
	 * comes first, so that ato is 40 ms and the ACK of the FIN waits that long. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	data_then_read(p, 10);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	uint32_t fin_seq = p->snd_nxt;
	p->snd_nxt++;
	PEER_EXPECT_NONE(p);
	peer_advance(p, 10 * PEER_MS);
	peer_inject(p, ACK, fin_seq, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(stats(p)->tcp_out_of_window, 0);
	REQUIRE(peer_run_timers_until(p, p->now + 100 * PEER_MS));
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0); /* the delayed ACK */
	CHECK_EQ(p->last_t, t + 40 * PEER_MS);
	peer_inject(p, ACK, fin_seq, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(stats(p)->tcp_out_of_window, 1);
	peer_free(p);
}

TEST(states_fin_wait_1_half_close_still_receives)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_WR);
	/* Data that does not acknowledge our FIN. */
	peer_inject(p, ACK | PSH, p->snd_nxt, p->rcv_nxt - 1, p->win, msg, 10, NULL);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_1);
	peer_free(p);
}

TEST(states_fin_wait_2_half_close_still_receives)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	send_data(p, 10);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	CHECK_MEM(buf, msg, 10);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

/* New data from the peer; ack_fin says whether the segment also acknowledges our FIN. */
static void check_data_resets(struct peer *p, bool ack_fin)
{
	uint32_t ack = ack_fin ? p->rcv_nxt : p->rcv_nxt - 1;
	peer_inject(p, ACK | PSH, p->snd_nxt, ack, p->win, msg, 10, NULL);
	PEER_EXPECT(p, RST, ack, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	if (p->fd >= 0) {
		CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
		CHECK_EQ(peer_so_error(p, p->fd), ECONNRESET);
	}
	CHECK_EQ(stats(p)->tcp_abort_on_data, 1);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
}

TEST(states_fin_wait_1_data_after_shut_rd_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_RDWR);
	check_data_resets(p, false);
	peer_free(p);
}

TEST(states_fin_wait_1_data_after_shut_rd_acking_our_fin_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_RDWR);
	check_data_resets(p, true);
	peer_free(p);
}

TEST(states_fin_wait_1_orphan_data_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_CLOSE);
	check_data_resets(p, false);
	peer_free(p);
}

TEST(states_fin_wait_1_orphan_data_acking_our_fin_resets)
{
	/* Linux tcp_rcv_state_process(), TCP_FIN_WAIT1 on a dead socket: a segment that
	 * acknowledges our FIN and carries new data ("after(end_seq - fin, rcv_nxt)") ends the
	 * connection with tcp_done() and a RST. tern moves to the orphaned FIN_WAIT_2 record
	 * first and never looks at the data: no reply, and the record stays. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_CLOSE);
	check_data_resets(p, true);
	peer_free(p);
}

TEST(states_fin_wait_2_data_after_shut_rd_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_RDWR);
	check_data_resets(p, true);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_data_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	check_data_resets(p, true);
	peer_free(p);
}

TEST(states_fin_wait_1_orphan_old_data_acking_our_fin_is_consumed)
{
	/* Old data on the segment that acknowledges our FIN: the orphan moves to its
	 * FIN_WAIT_2 record and, as Linux (tcp_time_wait(); goto consume), sends nothing. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	peer_to_fin_wait_1(p, PEER_CLOSE);
	peer_inject(p, ACK | PSH, p->snd_nxt - 10, p->rcv_nxt, p->win, msg, 10, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

TEST(states_fin_wait_1_orphan_old_data_gets_ack_not_rst)
{
	/* Only new data resets (Linux: after(end_seq - fin, rcv_nxt)). */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	peer_to_fin_wait_1(p, PEER_CLOSE);
	peer_inject(p, ACK | PSH, p->snd_nxt - 10, p->rcv_nxt - 1, p->win, msg, 10, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_1);
	peer_free(p);
}

/* ========================================================================================== */
/* FIN: RFC 9293 §3.10.7.4 eighth; Linux tcp_fin() (the ACK of a FIN in ESTABLISHED is        */
/* delayed, pingpong, by ato: 0 before any data, delack_min after) and                         */
/* tcp_rcv_state_process() for FIN_WAIT_x, CLOSING and LAST_ACK.                               */
/* ========================================================================================== */

TEST(states_established_fin_before_any_data_is_acked_at_once)
{
	/* Linux's icsk_ack.ato is 0 until the first data arrives (tcp_event_data_recv() then
	 * sets it to TCP_ATO_MIN): the delayed ACK of a FIN that comes first is scheduled 0 ms
	 * out and leaves at the next tick (one jiffy on Linux), not 40 ms later. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(info(p).ato_us, 0);
	peer_advance(p, 100 * PEER_MS);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT_NONE(p); /* scheduled on the delayed-ACK timer, not sent inline */
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK_EQ(tern_stack_next_timer(p->st), t);
	REQUIRE(peer_run_timers_until(p, t + 100 * PEER_MS));
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t);
	peer_advance_to(p, t + 10 * PEER_S);
	PEER_EXPECT_NONE(p);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_free(p);
}

TEST(states_established_fin_is_acked_after_delack_min)
{
	/* After data, ato is delack_min (40 ms): the ACK of a FIN alone waits that long
	 * (Linux's tcp_fin() enters pingpong mode, so no quick ACK). */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	data_then_read(p, 10);
	CHECK_EQ(info(p).ato_us, 40 * PEER_MS);
	peer_advance(p, 5 * PEER_MS);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	CHECK(tern_sock_events(p->st, p->fd) & TERN_EV_RDHUP);
	peer_advance_to(p, t + 39 * PEER_MS);
	PEER_EXPECT_NONE(p);
	REQUIRE(peer_run_timers_until(p, t + 100 * PEER_MS));
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + 40 * PEER_MS);
	peer_advance_to(p, t + 10 * PEER_S);
	PEER_EXPECT_NONE(p);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	peer_free(p);
}

TEST(states_established_fin_ack_rides_on_our_fin_when_closed_quickly)
{
	/* After data (ato 40 ms), an application that closes within the delayed-ACK time of the
	 * peer's FIN sends one FIN+ACK: a three-segment close. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	data_then_read(p, 10);
	peer_advance(p, 5 * PEER_MS);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 10 * PEER_MS);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, FIN | ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(p->last_t, t + 10 * PEER_MS);
	p->rcv_nxt++;
	peer_advance_to(p, t + 100 * PEER_MS);
	PEER_EXPECT_NONE(p); /* no separate ACK at +40 ms */
	CHECK_EQ(peer_conn_state(p), TERN_STATE_LAST_ACK);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_established_data_with_fin_is_acked_after_delack_min)
{
	/* Linux's tcp_fin() enters pingpong mode, which ends quick-ACK mode: data and FIN in
	 * one segment are ACKed after the delayed-ACK time (40 ms), like a FIN alone. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, FIN | ACK | PSH, p->snd_nxt, p->rcv_nxt, p->win, msg, 10, NULL);
	p->snd_nxt += 11;
	PEER_EXPECT_NONE(p);
	peer_advance(p, 40 * PEER_MS - 1);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 1);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_advance(p, 100 * PEER_MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSE_WAIT);
	char buf[32];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 10);
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	peer_free(p);
}

TEST(states_established_out_of_order_fin_gets_duplicate_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, FIN | ACK, p->snd_nxt + 5, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_ESTABLISHED);
	peer_free(p);
}

TEST(states_fin_wait_1_fin_acking_ours_goes_straight_to_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_WR);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK(peer_saw_trans(p, TERN_STATE_FIN_WAIT_1, TERN_STATE_TIME_WAIT));
	CHECK(!peer_saw_trans(p, -1, TERN_STATE_FIN_WAIT_2));
	CHECK(!peer_saw_trans(p, -1, TERN_STATE_CLOSING));
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	peer_free(p);
}

TEST(states_fin_wait_1_orphan_fin_acking_ours_goes_to_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_CLOSE);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK(!peer_saw_trans(p, -1, TERN_STATE_FIN_WAIT_2));
	peer_free(p);
}

TEST(states_fin_wait_1_fin_not_acking_ours_goes_to_closing)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_WR);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSING);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	peer_free(p);
}

TEST(states_fin_wait_1_ack_of_fin_goes_to_fin_wait_2)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_WR);
	/* An ACK short of the FIN changes nothing. */
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_1);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_2);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_fin_wait_2_held_has_no_timeout)
{
	/* fin_timeout applies to orphans only (Linux tcp_close()); an application that holds
	 * the descriptor waits for the peer's FIN as long as it likes. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	peer_advance(p, 600 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

TEST(states_fin_wait_2_fin_goes_to_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, p->fd, buf, sizeof(buf), 0), 0);
	peer_free(p);
}

TEST(states_closing_ack_of_fin_goes_to_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_closing(p, PEER_SHUT_WR);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSING);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK(peer_saw_trans(p, TERN_STATE_CLOSING, TERN_STATE_TIME_WAIT));
	peer_free(p);
}

TEST(states_closing_orphan_ack_of_fin_goes_to_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_closing(p, PEER_CLOSE);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_free(p);
}

TEST(states_close_wait_shutdown_sends_fin_and_enters_last_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_close_wait(p);
	CHECK_EQ(tern_shutdown(p->st, p->fd, TERN_SHUT_WR), 0);
	PEER_EXPECT(p, FIN | ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_LAST_ACK);
	peer_free(p);
}

TEST(states_last_ack_ack_of_fin_closes)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_last_ack(p, PEER_SHUT_WR);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_LAST_ACK);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, p->fd), 0);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK(peer_saw_trans(p, TERN_STATE_LAST_ACK, TERN_STATE_CLOSED));
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_last_ack_orphan_ack_of_fin_frees_everything)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_last_ack(p, PEER_CLOSE);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	/* The tuple is free again. */
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	peer_free(p);
}

/* ========================================================================================== */
/* TIME_WAIT: RFC 9293 §3.10.7.4 (TIME-WAIT), RFC 6191, Linux tcp_timewait_state_process()   */
/* and tcp_v4_rcv()'s TCP_TW_SYN handling. 2*MSL = 60 s.                                     */
/* ========================================================================================== */

TEST(states_time_wait_expires_after_2msl_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	CHECK(tern_stack_next_timer(p->st) <= t + 60 * PEER_S); /* a lower bound */
	peer_advance_to(p, t + 60 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_advance_to(p, t + 60 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	/* Later segments meet no TCB. */
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	peer_free(p);
}

TEST(states_time_wait_retransmitted_fin_is_acked_and_restarts_timer)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	peer_advance_to(p, t + 30 * PEER_S);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 90 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_advance_to(p, t + 90 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_time_wait_in_window_bare_ack_is_silent_and_restarts_timer)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	peer_advance_to(p, t + 30 * PEER_S);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance_to(p, t + 90 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_advance_to(p, t + 90 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_time_wait_other_segments_get_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	send_data(p, 10);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, ACK, p->snd_nxt + 5, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_free(p);
}

TEST(states_time_wait_exact_rst_ends_it)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	peer_inject(p, RST, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_time_wait_other_rst_is_ignored)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	peer_inject(p, RST, p->snd_nxt + 1, 0, p->win, NULL, 0, NULL);
	peer_inject(p, RST | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_free(p);
}

TEST(states_time_wait_new_syn_reopens_through_listener)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR); /* passive: the listener on 80 is still there */
	uint32_t old_snd_nxt = p->rcv_nxt;
	uint32_t new_irs = p->snd_nxt + 1000;
	struct tern_tcp_opts o = peer_mss_opt(PEER_MSS);
	peer_inject(p, SYN, new_irs, 0, p->win, NULL, 0, &o);
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, SYN | ACK, old_snd_nxt + 65537, new_irs + 1, W, 0);
	CHECK_EQ(s.h.opts.mss, 1460);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_SYN_RCVD);
	CHECK_EQ(peer_conn_count_of(p, p->lport, p->rport), 1);
	CHECK_EQ(stats(p)->tcp_tw_recycled, 1);
	peer_inject(p, ACK, new_irs + 1, old_snd_nxt + 65538, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_ESTABLISHED);
	CHECK(tern_accept(p->st, p->lfd, NULL) >= 0);
	peer_free(p);
}

TEST(states_time_wait_old_syn_gets_ack_without_restart)
{
	/* A SYN at or below RCV.NXT may be an old duplicate: ACK, and (no ACK bit) no restart
	 * of the timer ("Do not reschedule in the last case"). */
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	peer_advance_to(p, t + 30 * PEER_S);
	peer_inject(p, SYN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	/* Spaced past invalid_ratelimit (500 ms): each SYN may draw its ACK. */
	peer_advance(p, 600 * PEER_MS);
	peer_inject(p, SYN, p->irs, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_advance(p, 600 * PEER_MS);
	/* A SYN|ACK is never a new connection. */
	peer_inject(p, SYN | ACK, p->snd_nxt + 1000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK_EQ(stats(p)->tcp_tw_recycled, 0);
	peer_advance_to(p, t + 90 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT); /* the SYN|ACK restarted it */
	peer_free(p);
}

TEST(states_time_wait_bare_syn_does_not_restart_timer)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	peer_advance_to(p, t + 30 * PEER_S);
	peer_inject(p, SYN, p->snd_nxt - 5, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_advance_to(p, t + 60 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_time_wait_new_syn_without_listener_gets_ack)
{
	/* Linux tcp_v4_rcv(): TCP_TW_SYN with no listener falls through to TCP_TW_ACK; the
	 * TIME_WAIT record stays. tern drops the record before looking for a listener and
	 * then answers RST|ACK as for a closed port. */
	struct peer *p = peer_new(NULL, 1);
	peer_open_active(p); /* nobody listens on the stack's ephemeral port */
	peer_to_time_wait(p, PEER_SHUT_WR);
	peer_inject(p, SYN, p->snd_nxt + 1000, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK_EQ(stats(p)->tcp_tw_recycled, 0);
	peer_free(p);
}

TEST(states_time_wait_out_of_window_acks_are_rate_limited)
{
	/* Linux tcp_timewait_check_oow_rate_limit(): like the full state machine, a TIME_WAIT
	 * record answers out-of-window pure ACKs and SYNs at most once per invalid_ratelimit
	 * (RFC 5961 §10); a FIN or data is always answered. tern answers every one. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_time_wait(p, PEER_SHUT_WR);
	peer_inject(p, ACK, p->snd_nxt + 5, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, ACK, p->snd_nxt + 5, p->rcv_nxt, p->win, NULL, 0, NULL);
	peer_inject(p, SYN, p->snd_nxt - 5, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_advance(p, 500 * PEER_MS);
	peer_inject(p, ACK, p->snd_nxt + 5, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_time_wait_reached_through_closing_acks_retransmitted_fin)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_closing(p, PEER_SHUT_WR);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	REQUIRE_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_free(p);
}

TEST(states_time_wait_skipped_without_buckets)
{
	/* max_tw_buckets exhausted: Linux "TCP: time wait bucket table overflow", the
	 * connection closes at once (its last ACK still goes out). */
	struct tern_settings set;
	tern_settings_default(&set);
	set.max_tw_buckets = 0;
	struct peer *p = peer_new(&set, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(stats(p)->tcp_tw_overflow, 1);
	peer_inject(p, FIN | ACK, p->snd_nxt - 1, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	peer_free(p);
}

/* ========================================================================================== */
/* Orphaned FIN_WAIT_2 (closed by the application): kept as a small record for fin_timeout   */
/* (60 s); Linux tcp_close()/tcp_fin_time() and tcp_timewait_state_process(FIN_WAIT2).        */
/* ========================================================================================== */

TEST(states_fin_wait_2_orphan_expires_after_fin_timeout_silently)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	uint64_t t = p->now;
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_advance_to(p, t + 60 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_advance_to(p, t + 60 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	PEER_EXPECT_NONE(p);
	/* The peer's late FIN meets no TCB. */
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_lifetime_is_fin_timeout_not_2msl)
{
	struct tern_settings set;
	tern_settings_default(&set);
	set.fin_timeout_ms = 20000;
	struct peer *p = peer_new(&set, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	uint64_t t = p->now;
	peer_advance_to(p, t + 20 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_advance_to(p, t + 20 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_fin_enters_time_wait)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_advance(p, 10 * PEER_S);
	uint64_t t = p->now;
	peer_inject(p, FIN | ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	CHECK(peer_saw_trans(p, TERN_STATE_FIN_WAIT_2, TERN_STATE_TIME_WAIT));
	peer_advance_to(p, t + 60 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_advance_to(p, t + 60 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_fin_with_data_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, FIN | ACK | PSH, p->snd_nxt, p->rcv_nxt, p->win, msg, 5, NULL);
	PEER_EXPECT(p, RST, p->rcv_nxt, 0, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_exact_rst_ends_it)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, RST, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(tern_stack_next_timer(p->st), TERN_TIME_NEVER);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_out_of_window_gets_ack)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	/* Old data is out of window too: ACK, not RST. */
	peer_inject(p, ACK | PSH, p->snd_nxt - 10, p->rcv_nxt, p->win, msg, 10, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_out_of_window_acks_are_rate_limited)
{
	/* Linux tcp_timewait_state_process(), FIN_WAIT2 substate: out-of-window segments go
	 * through tcp_timewait_check_oow_rate_limit() (LINUX_MIB_TCPACKSKIPPEDFINWAIT2), as in
	 * the full state machine. tern answers every out-of-window pure ACK. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	peer_advance(p, 500 * PEER_MS);
	peer_inject(p, ACK, p->snd_nxt + 70000, p->rcv_nxt, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_duplicate_ack_is_silent)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	peer_inject(p, ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_free(p);
}

TEST(states_fin_wait_2_orphan_syn_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_CLOSE);
	peer_inject(p, SYN, p->snd_nxt, 0, p->win, NULL, 0, NULL);
	PEER_EXPECT(p, RST | ACK, 0, p->snd_nxt + 1, 0, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	peer_free(p);
}

TEST(states_fin_wait_2_close_later_becomes_orphan_record)
{
	/* An application in FIN_WAIT_2 that then closes leaves the same record. */
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	uint64_t t = p->now;
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_advance_to(p, t + 60 * PEER_S - PEER_MS);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_2);
	peer_advance_to(p, t + 60 * PEER_S);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_fin_wait_2_close_with_negative_linger2_resets)
{
	/* TCP_LINGER2 < 0: no orphaned FIN_WAIT_2 at all (Linux tcp_close(): active reset). */
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_2(p, PEER_SHUT_WR);
	int v = -1;
	REQUIRE_EQ(tern_setsockopt(p->st, p->fd, TERN_IPPROTO_TCP, TERN_TCP_LINGER2, &v,
				   sizeof(v)), 0);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

/* ========================================================================================== */
/* Retransmission timing: RFC 6298 §5 (doubling), §2.1 (1 s initial), Linux syn_retries /     */
/* synack_retries (SYN at 0, 1, 3, 7, 15, 31 s; failure at 63 s) and tcp_retransmit_timer().   */
/* ========================================================================================== */

TEST(states_syn_sent_retransmission_schedule)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_syn_sent(p);
	static const uint64_t at[] = {1, 3, 7, 15, 31};
	for (size_t i = 0; i < 5; i++) {
		REQUIRE(peer_run_timers_until(p, PEER_T0 + 100 * PEER_S));
		struct tern_tcp_seg s;
		PEER_EXPECT_SEG(p, &s, SYN, p->iss, 0, W, 0);
		CHECK_EQ(p->last_t, PEER_T0 + at[i] * PEER_S);
		CHECK_EQ(s.h.opts.mss, 1460);
		CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	}
	peer_advance_to(p, PEER_T0 + 63 * PEER_S - PEER_MS);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_SYN_SENT);
	CHECK_EQ(p->last_error, 0);
	peer_advance_to(p, PEER_T0 + 63 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSED);
	CHECK_EQ(p->last_error, ETIMEDOUT);
	CHECK_EQ(peer_so_error(p, p->fd), ETIMEDOUT);
	CHECK_EQ(peer_conn_state(p), PEER_NONE);
	CHECK_EQ(stats(p)->tcp_attempt_fails, 1);
	peer_advance(p, 1000 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_syn_sent_syncnt_limits_retries)
{
	struct peer *p = peer_new(NULL, 1);
	int fd = tern_socket(p->st, TERN_SOCK_STREAM);
	int two = 2;
	REQUIRE_EQ(tern_setsockopt(p->st, fd, TERN_IPPROTO_TCP, TERN_TCP_SYNCNT, &two,
				   sizeof(two)), 0);
	struct tern_sockaddr a = {PEER_REMOTE, 80};
	REQUIRE_EQ(tern_connect(p->st, fd, &a), -EINPROGRESS);
	p->fd = fd;
	struct tern_tcp_seg s;
	REQUIRE(peer_pop(p, &s));
	p->iss = s.h.seq;
	p->lport = s.h.sport;
	p->rport = 80;
	static const uint64_t at[] = {1, 3};
	for (size_t i = 0; i < 2; i++) {
		REQUIRE(peer_run_timers_until(p, PEER_T0 + 100 * PEER_S));
		PEER_EXPECT(p, SYN, p->iss, 0, W, 0);
		CHECK_EQ(p->last_t, PEER_T0 + at[i] * PEER_S);
	}
	peer_advance_to(p, PEER_T0 + 7 * PEER_S - PEER_MS);
	CHECK_EQ(tern_sock_state(p->st, fd), TERN_STATE_SYN_SENT);
	peer_advance_to(p, PEER_T0 + 7 * PEER_S);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, fd), TERN_STATE_CLOSED);
	CHECK_EQ(peer_so_error(p, fd), ETIMEDOUT);
	peer_free(p);
}

TEST(states_established_rto_doubles_per_retransmission)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100); /* RTO = 100 + max(4 * 50, 200) = 300 ms */
	CHECK_EQ(info(p).rto_us, 300000);
	uint64_t t = p->now;
	CHECK_EQ(tern_send(p->st, p->fd, msg, 20, 0), 20);
	PEER_EXPECT(p, ACK | PSH, p->iss + 1, p->irs + 1, W, 20);
	CHECK_EQ(p->last_t, t);
	static const uint64_t at[] = {300, 900, 2100, 4500, 9300};
	for (size_t i = 0; i < 5; i++) {
		REQUIRE(peer_run_timers_until(p, t + 100 * PEER_S));
		PEER_EXPECT(p, ACK | PSH, p->iss + 1, p->irs + 1, W, 20);
		CHECK_EQ(p->last_t, t + at[i] * PEER_MS);
		PEER_EXPECT_NONE(p);
		CHECK_EQ(info(p).rto_us, 300000u << (i + 1));
		CHECK_EQ(info(p).retransmits, i + 1);
	}
	/* The ACK of a retransmitted segment is no RTT sample (Karn): the backed-off RTO
	 * stays (RFC 6298 §5 note) and times the next new segment too. */
	peer_inject(p, ACK, p->snd_nxt, p->iss + 21, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).rto_us, 9600000);
	CHECK_EQ(info(p).retransmits, 0);
	CHECK_EQ(tern_send(p->st, p->fd, msg, 5, 0), 5);
	PEER_EXPECT(p, ACK | PSH, p->iss + 21, p->irs + 1, W, 5);
	/* That segment's ACK after 100 ms is a sample: the estimate's RTO is back. */
	peer_advance(p, 100 * PEER_MS);
	peer_inject(p, ACK, p->snd_nxt, p->iss + 26, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(info(p).rto_us, 300000);
	uint64_t t3 = p->now;
	CHECK_EQ(tern_send(p->st, p->fd, msg, 5, 0), 5);
	PEER_EXPECT(p, ACK | PSH, p->iss + 26, p->irs + 1, W, 5);
	REQUIRE(peer_run_timers_until(p, t3 + 100 * PEER_S));
	PEER_EXPECT(p, ACK | PSH, p->iss + 26, p->irs + 1, W, 5);
	CHECK_EQ(p->last_t, t3 + 300 * PEER_MS);
	peer_free(p);
}

TEST(states_fin_wait_1_fin_is_retransmitted_on_rto)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100);
	uint64_t t = p->now;
	CHECK_EQ(tern_shutdown(p->st, p->fd, TERN_SHUT_WR), 0);
	PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 1, W, 0);
	static const uint64_t at[] = {300, 900, 2100};
	for (size_t i = 0; i < 3; i++) {
		REQUIRE(peer_run_timers_until(p, t + 100 * PEER_S));
		PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 1, W, 0);
		CHECK_EQ(p->last_t, t + at[i] * PEER_MS);
		CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_1);
	}
	peer_inject(p, ACK, p->snd_nxt, p->iss + 2, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_FIN_WAIT_2);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_closing_fin_is_retransmitted_on_rto)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100);
	uint64_t t = p->now;
	peer_to_closing(p, PEER_SHUT_WR);
	REQUIRE(peer_run_timers_until(p, t + 100 * PEER_S));
	PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 2, W, 0);
	CHECK_EQ(p->last_t, t + 300 * PEER_MS);
	CHECK_EQ(tern_sock_state(p->st, p->fd), TERN_STATE_CLOSING);
	peer_inject(p, ACK, p->irs + 2, p->iss + 2, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_TIME_WAIT);
	peer_free(p);
}

TEST(states_last_ack_fin_is_retransmitted_on_rto)
{
	struct peer *p = peer_new(NULL, 1);
	open_active_rtt(p, 100);
	peer_to_close_wait(p);
	uint64_t t = p->now;
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 2, W, 0);
	static const uint64_t at[] = {300, 900};
	for (size_t i = 0; i < 2; i++) {
		REQUIRE(peer_run_timers_until(p, t + 100 * PEER_S));
		PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 2, W, 0);
		CHECK_EQ(p->last_t, t + at[i] * PEER_MS);
	}
	CHECK_EQ(peer_conn_state(p), TERN_STATE_LAST_ACK);
	peer_inject(p, ACK, p->irs + 2, p->iss + 2, p->win, NULL, 0, NULL);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

/* ========================================================================================== */
/* close() and abort: RFC 9293 §3.10.4 CLOSE and §3.10.5 ABORT, RFC 2525 §2.17 (unread data   */
/* at close resets), Linux tcp_close() and tcp_disconnect() (SO_LINGER {1, 0}).               */
/* ========================================================================================== */

TEST(states_established_close_sends_fin_and_orphans)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	struct tern_tcp_seg s;
	PEER_EXPECT_SEG(p, &s, FIN | ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_1);
	peer_free(p);
}

TEST(states_established_close_with_unread_data_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	send_data(p, 10);
	p->snd_nxt += 10;
	PEER_EXPECT(p, ACK, p->rcv_nxt, p->snd_nxt, W, 0);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 1, p->irs + 11, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	CHECK_EQ(stats(p)->tcp_abort_on_data, 1);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_close_wait_close_with_unread_data_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	peer_inject(p, FIN | ACK | PSH, p->snd_nxt, p->rcv_nxt, p->win, msg, 10, NULL);
	p->snd_nxt += 11;
	PEER_EXPECT_NONE(p); /* the ACK is delayed (pingpong after the FIN) */
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 1, p->irs + 12, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_established_close_with_linger_zero_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	struct tern_linger lg = {1, 0};
	REQUIRE_EQ(tern_setsockopt(p->st, p->fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg)),
		   0);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_established_close_with_linger_nonzero_sends_fin)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_passive(p);
	struct tern_linger lg = {1, 5};
	REQUIRE_EQ(tern_setsockopt(p->st, p->fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg)),
		   0);
	CHECK_EQ(tern_close(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, FIN | ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_state(p), TERN_STATE_FIN_WAIT_1);
	peer_free(p);
}

TEST(states_established_abort_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_open_active(p);
	CHECK_EQ(tern_abort(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 1, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_advance(p, 100 * PEER_S);
	PEER_EXPECT_NONE(p);
	peer_free(p);
}

TEST(states_close_wait_abort_resets)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_close_wait(p);
	CHECK_EQ(tern_abort(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 1, p->irs + 2, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}

TEST(states_fin_wait_1_abort_resets_after_fin)
{
	struct peer *p = peer_new(NULL, 1);
	peer_to_fin_wait_1(p, PEER_SHUT_WR);
	CHECK_EQ(tern_abort(p->st, p->fd), 0);
	p->fd = -1;
	PEER_EXPECT(p, RST | ACK, p->iss + 2, p->irs + 1, W, 0);
	PEER_EXPECT_NONE(p);
	CHECK_EQ(peer_conn_total(p), 0);
	peer_free(p);
}
