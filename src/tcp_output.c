/* Segments leaving a TCB: what to send (tcp_output), and how each segment is built. */
#include <string.h>
#include "internal.h"
#include "cc.h"

void tcp_trace_seg(struct tern_stack *st, enum tern_trace_kind kind, const struct tern_seg_info *h,
		   int fd, const char *reason)
{
	struct tern_trace ev = {.kind = kind, .fd = fd, .reason = reason};
	ev.u.seg = *h;
	stack_trace(st, &ev);
}

/* The unit windows are rounded to: our own MSS, as Linux's tcp_select_initial_window (a
 * 128 KiB buffer gives the familiar 64240). Linux rounds later windows to the peer's segment
 * size but also caps them by rcv_ssthresh, which starts at that initial window: rounding to
 * our MSS gives the same offers without tracking it. */
static uint32_t window_unit(const struct tern_tcb *tcb)
{
	return tcb->advmss;
}

/*
 * The window to advertise (Linux's __tcp_select_window without window scaling):
 *  - it is the free receive buffer, cut to the 16-bit field;
 *  - receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): while less than half the
 *    buffer is free, a free space under one MSS (or under 1/16 of the buffer) is offered as
 *    zero, so the window opens again only by a worthwhile amount;
 *  - it is rounded down to whole segments, unless the current offer is within one MSS;
 *  - it never moves the right edge left (RFC 9293 §3.8.6.2.2 "SHOULD NOT shrink").
 */
uint32_t tcp_window_now(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	uint32_t cap = tcb->rcvq ? TERN_MIN(tcb->rcvq->cap, tcb_rcvbuf(st, tcb)) : tcb_rcvbuf(st, tcb);
	uint32_t used = ring_len(tcb->rcvq);
	uint32_t full = TERN_MIN(cap, TERN_MAX_WINDOW);
	uint32_t free_space = cap > used ? cap - used : 0;
	if (free_space > full)
		free_space = full;
	uint32_t mss = TERN_MIN(window_unit(tcb), full);
	int32_t promised = (int32_t)(tcb->rcv_wup + tcb->rcv_wnd - tcb->rcv_nxt);
	uint32_t cur = promised > 0 ? (uint32_t)promised : 0;
	uint32_t win;
	if (mss < full && free_space >= full / 2 && tcb->rcv_wnd <= free_space &&
	    tcb->rcv_wnd + mss > free_space)
		return tcb->rcv_wnd; /* the common case: the offer stands (and covers cur) */
	if (free_space < full / 2 && (free_space < cap / 16 || free_space < mss)) {
		win = 0;
	} else {
		win = tcb->rcv_wnd; /* the last offer stands while within one MSS of the space */
		if (free_space < mss || win + mss <= free_space || win > free_space)
			win = mss ? free_space - free_space % mss : free_space;
		else if (mss == full && free_space > win + full / 2)
			win = free_space; /* a buffer under one segment: offer it whole again */
	}
	return win < cur ? cur : win;
}

uint32_t tcp_select_window(struct tern_stack *st, struct tern_tcb *tcb)
{
	/* Linux's __tcp_select_window(): with less than half the buffer free, quick ACKs stop
	 * (the application is not keeping up; ACKs may as well wait). */
	uint32_t cap = tcb->rcvq ? TERN_MIN(tcb->rcvq->cap, tcb_rcvbuf(st, tcb)) : tcb_rcvbuf(st, tcb);
	uint32_t used = ring_len(tcb->rcvq);
	if (used && cap - TERN_MIN(used, cap) < TERN_MIN(cap, TERN_MAX_WINDOW) / 2)
		tcb->h.spare = 0;
	uint32_t win = tcp_window_now(st, tcb);
	tcb->rcv_wnd = win;
	tcb->rcv_wup = tcb->rcv_nxt;
	return win;
}

/* Linux's tcp_send_delayed_ack(): the delay is ato, and once ato has grown beyond
 * delack_min, at most delack_max and at most the smoothed RTT. */
uint32_t tcb_ato(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	/* Before any data has arrived ato is 0, as Linux's icsk_ack.ato, which its first data
	 * sets to delack_min (event_data_recv): an ACK owed by then (a FIN that comes first)
	 * leaves at the next tick, not 40 ms later. */
	uint32_t ato = tcb->tn.user;
	if (ato > st->set.delack_min_ms) {
		uint32_t cap = st->set.delack_max_ms;
		uint32_t rtt = tcb->srtt_us / 1000;
		if (tcb->srtt_us && TERN_MAX(rtt, st->set.delack_min_ms) < cap)
			cap = TERN_MAX(rtt, st->set.delack_min_ms);
		ato = TERN_MIN(ato, cap);
	}
	return ato;
}

/* Checksum, trace and hand to IPv4: the transport header is at st->txbuf + 20. */
static void tcp_emit(struct tern_stack *st, const struct tern_seg_info *h, struct tern_iovec *iov,
		     unsigned n, size_t hlen, const struct tern_tcb *tcb, int fd)
{
	uint32_t pseudo = tern_csum_pseudo(h->src, h->dst, TERN_IPPROTO_TCP_, (uint16_t)(hlen + h->len));
	uint16_t c = tern_csum_iov(pseudo, iov, n);
	memcpy(st->txbuf + 20 + 16, &c, 2);
	if (stack_tracing(st)) {
		struct tern_trace ev = {.kind = TERN_TRACE_SEND, .fd = fd};
		ev.u.seg = *h;
		if (tcb) {
			ev.cwnd = tcb->cwnd;
			ev.ssthresh = tcb->ssthresh;
		}
		stack_trace(st, &ev);
	}
	st->stats.tcp_out++;
	if (h->flags & TERN_TH_RST)
		st->stats.tcp_rst_out++;
	ip_output(st, h->src, h->dst, TERN_IPPROTO_TCP_, iov, n, hlen + h->len);
}

/* RFC 6093 / Linux: the urgent pointer of a segment, if urgent data lies ahead of it. */
static uint16_t urgent_pointer(const struct tern_tcb *tcb, uint32_t seq)
{
	if (!(tcb->tf & TF_URG_SEND) || !tcb->xo || !seq_gt(tcb->xo->snd_up, seq))
		return 0;
	uint32_t off = tcb->xo->snd_up - seq;
	return off > 0xffff ? 0xffff : (uint16_t)off;
}

/*
 * Build and send one segment of the TCB (off/len address the send queue). The header is
 * written in place, right after room for the IPv4 header, and the payload is handed to the
 * link straight from the send ring: the stack copies no payload on output.
 */
static void tcp_xmit(struct tern_stack *st, struct tern_tcb *tcb, uint32_t seq, uint16_t flags,
		     uint32_t off, uint32_t len)
{
	uint8_t *th = st->txbuf + 20;
	uint32_t ack = (flags & TERN_TH_ACK) ? tcb->rcv_nxt : 0;
	uint16_t win = (uint16_t)tcp_select_window(st, tcb);
	uint16_t urp = 0;
	size_t hlen = TERN_TCP_HLEN;
	if (flags & TERN_TH_SYN) {
		/* RFC 9293 §3.7.1: the MSS option goes on SYNs, and only there. */
		th[20] = TERN_TCPOPT_MSS;
		th[21] = 4;
		wr16(th + 22, tcb->advmss);
		hlen += 4;
	} else if (!(flags & TERN_TH_RST) && (urp = urgent_pointer(tcb, seq)) != 0) {
		flags |= TERN_TH_URG;
	}
	wr16(th, tcb->h.lport);
	wr16(th + 2, tcb->h.rport);
	wr32(th + 4, seq);
	wr32(th + 8, ack);
	th[12] = (uint8_t)((hlen / 4) << 4);
	th[13] = (uint8_t)flags;
	wr16(th + 14, win);
	th[16] = th[17] = 0;
	wr16(th + 18, urp);
	struct tern_iovec iov[3];
	iov[0].base = th;
	iov[0].len = hlen;
	unsigned n = 1;
	if (len)
		n += ring_peek(tcb->sndq, off, len, iov + 1);
	tcb->segs_out++;
	if (flags & TERN_TH_ACK) {
		/* Every segment carries the ACK: nothing is owed any more, and one quick ACK is
		 * spent (Linux's tcp_event_ack_sent). */
		tcb->tf &= ~(TF_ACKNOW | TF_DACK);
		if (tcb->timers & (1u << T_DACK))
			tcb_timer_clear(st, tcb, T_DACK);
		if (tcb->h.spare && !--tcb->h.spare)
			tcb->tn.user = (uint16_t)st->set.delack_min_ms;
	}
	uint32_t pseudo = tern_csum_pseudo(tcb->h.laddr, tcb->h.raddr, TERN_IPPROTO_TCP_,
					   (uint16_t)(hlen + len));
	/* With offload, the link finishes the sum from the pseudo-header's (Linux's
	 * CHECKSUM_PARTIAL); otherwise the whole checksum is computed here. */
	uint16_t c = (st->link.flags & TERN_LINK_CSUM_TX) ? (uint16_t)pseudo
							  : tern_csum_iov(pseudo, iov, n);
	memcpy(th + 16, &c, 2);
	if (stack_tracing(st)) {
		struct tern_trace ev = {.kind = TERN_TRACE_SEND, .fd = tcb->fd};
		struct tern_seg_info *h = &ev.u.seg;
		h->src = tcb->h.laddr;
		h->dst = tcb->h.raddr;
		h->sport = tcb->h.lport;
		h->dport = tcb->h.rport;
		h->seq = seq;
		h->ack = ack;
		h->flags = flags;
		h->win = win;
		h->urp = urp;
		h->len = len;
		if (flags & TERN_TH_SYN) {
			h->opts.has = TERN_OPT_MSS;
			h->opts.mss = tcb->advmss;
		}
		ev.cwnd = tcb->cwnd;
		ev.ssthresh = tcb->ssthresh;
		stack_trace(st, &ev);
	}
	st->stats.tcp_out++;
	if (flags & TERN_TH_RST)
		st->stats.tcp_rst_out++;
	ip_output(st, tcb->h.laddr, tcb->h.raddr, TERN_IPPROTO_TCP_, iov, n, hlen + len);
}

void tcp_send_syn(struct tern_stack *st, struct tern_tcb *tcb)
{
	/* SYN-ACK whenever the peer's SYN is in: SYN_RCVD, or FIN_WAIT_1 reached from it. */
	uint16_t flags = TERN_TH_SYN;
	if (tcb->h.state != TERN_STATE_SYN_SENT)
		flags |= TERN_TH_ACK;
	if (tcb->snd_max != tcb->iss) {
		st->stats.tcp_retrans++;
		tcb->total_retrans++;
	} else if (!(tcb->tf & TF_SYN_RTX)) {
		tcb->rtt_seq = tcb->iss + 1;
		tcb->rtt_start = (uint32_t)st->now_us;
		tcb->tf |= TF_RTT_VALID;
	}
	tcp_xmit(st, tcb, tcb->iss, flags, 0, 0);
	tcb->snd_nxt = tcb->iss + 1;
	if (seq_gt(tcb->snd_nxt, tcb->snd_max))
		tcb->snd_max = tcb->snd_nxt;
	if (!tcb_timer_armed(tcb, T_RTX))
		tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
}

/* The sequence number for a segment that carries no data: SND.NXT, or the window's right
 * edge if SND.NXT lies beyond it (Linux's tcp_acceptable_seq). */
static uint32_t acceptable_seq(const struct tern_tcb *tcb)
{
	uint32_t edge = tcb->snd_una + tcb->snd_wnd;
	return seq_le(tcb->snd_max, edge) || !tcb->snd_wnd ? tcb->snd_max : edge;
}

void tcp_send_ack(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (tcb->h.state == TERN_STATE_SYN_SENT || tcb->h.state == TERN_STATE_CLOSED ||
	    tcb->h.state == TERN_STATE_LISTEN)
		return;
	tcp_xmit(st, tcb, acceptable_seq(tcb), TERN_TH_ACK, 0, 0);
}

void tcp_send_probe(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcp_xmit(st, tcb, tcb->snd_una - 1, TERN_TH_ACK, 0, 0);
}

void tcp_send_active_reset(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcp_xmit(st, tcb, acceptable_seq(tcb), TERN_TH_RST | TERN_TH_ACK, 0, 0);
}

/* Arm the retransmission timer as the persist timer (RFC 9293 §3.8.6.1): the window keeps
 * the queued data back and nothing is in flight, so no ACK would ever say it opened.
 * Linux's tcp_probe0_when(): max(RTO, rto_min) doubled per probe, up to rto_max. */
void tcp_persist_arm(struct tern_stack *st, struct tern_tcb *tcb)
{
	uint64_t base = TERN_MAX(tcb->rto_ms, st->set.rto_min_ms);
	uint64_t when = base << (tcb->backoff < 31 ? tcb->backoff : 31);
	when = TERN_MIN(when, (uint64_t)st->set.rto_max_ms);
	const struct tcb_opts *xo = tcb->xo;
	if (xo && xo->user_timeout_ms && xo->probing) {
		/* The probe that would come after the user timeout comes at it instead (Linux's
		 * tcp_clamp_probe0_to_user_timeout). */
		int32_t left = (int32_t)(xo->user_timeout_ms - (st->now - xo->probes_tstamp));
		when = TERN_MIN(when, (uint64_t)(left > 1 ? left : 1));
	}
	tcb->tf |= TF_PERSIST;
	tcb_timer_set(st, tcb, T_RTX, (uint32_t)when);
}

/* Start (or keep) the retransmission timer for data now in flight. */
static void rtx_arm(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (tcb->tf & TF_PERSIST) {
		tcb->tf &= ~TF_PERSIST;
		tcb->backoff = 0;
		tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
	} else if (!tcb_timer_armed(tcb, T_RTX)) {
		tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
	}
}

/* A FIN is owed once the application shut down, until it is acknowledged (it is the last
 * thing sent, so "all sent is acked" means it was). */
static bool fin_owed(const struct tern_tcb *tcb)
{
	return (tcb->tf & TF_SHUT_WR) && !((tcb->tf & TF_FIN_SENT) && tcb->snd_una == tcb->snd_max);
}

/* Send the segment at SND.UNA again, at most max_len bytes, whatever the window (it was sent
 * inside an earlier window; with no window at all max_len is 1: a window probe). */
static void xmit_head(struct tern_stack *st, struct tern_tcb *tcb, uint32_t max_len)
{
	if (!(tcb->tf & TF_SYN_ACKED)) {
		tcp_send_syn(st, tcb);
		return;
	}
	/* Only what was sent before goes again: bytes past SND.MAX were never offered to this
	 * window, and a retransmission must not carry them. */
	uint32_t sent = tcb->snd_max - tcb->snd_una;
	bool fin_out = (tcb->tf & TF_FIN_SENT) && fin_owed(tcb);
	if (fin_out)
		sent--;
	uint32_t len = TERN_MIN(TERN_MIN(sent, (uint32_t)tcb->mss), max_len);
	bool fin = fin_out && len == sent;
	if (!len && !fin)
		return;
	uint32_t queued = ring_len(tcb->sndq);
	uint16_t flags = TERN_TH_ACK;
	if (fin)
		flags |= TERN_TH_FIN;
	if (len && len == queued)
		flags |= TERN_TH_PSH;
	st->stats.tcp_retrans++;
	tcb->total_retrans++;
	tcb->tf &= ~TF_RTT_VALID; /* Karn */
	tcp_xmit(st, tcb, tcb->snd_una, flags, 0, len);
	uint32_t end = tcb->snd_una + len + fin;
	if (seq_lt(tcb->snd_nxt, end))
		tcb->snd_nxt = end;
	rtx_arm(st, tcb);
}

void tcp_retransmit_head(struct tern_stack *st, struct tern_tcb *tcb)
{
	xmit_head(st, tcb, tcb->mss);
}

static void output(struct tern_stack *st, struct tern_tcb *tcb);

void tcp_output(struct tern_stack *st, struct tern_tcb *tcb)
{
	stack_tx_begin(st);
	output(st, tcb);
	stack_tx_end(st);
}

static void output(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	if (s == TERN_STATE_SYN_SENT || s == TERN_STATE_SYN_RCVD) {
		if (tcb->snd_nxt == tcb->iss)
			tcp_send_syn(st, tcb);
		else if (tcb->tf & TF_ACKNOW)
			tcp_send_ack(st, tcb);
		return;
	}
	if (s == TERN_STATE_CLOSED || s == TERN_STATE_LISTEN || s == TERN_STATE_TIME_WAIT)
		return;
	bool sent = false;
	if (!(tcb->tf & TF_SYN_ACKED) && tcb->snd_nxt == tcb->iss) {
		/* Closed while the SYN-ACK of a simultaneous open is unacknowledged: it goes
		 * (again) first, and the FIN may follow it. */
		tcp_send_syn(st, tcb);
		sent = true;
	}
	if (seq_gt(tcb->snd_nxt, tcb->iss) || (tcb->tf & TF_SYN_ACKED)) {
		/* The send queue starts right after the SYN until the SYN is acknowledged. */
		uint32_t start = tcb->snd_una + ((tcb->tf & TF_SYN_ACKED) ? 0 : 1);
		uint32_t end = start + ring_len(tcb->sndq);
		bool fin_due = fin_owed(tcb);
		if (!seq_lt(tcb->snd_nxt, end) && !(fin_due && tcb->snd_nxt == end))
			goto ack_only; /* nothing (new or again) to send: the common case of a receiver */
		if (tcb->snd_una == tcb->snd_max && seq_lt(tcb->snd_nxt, end) &&
		    st->now - tcb->lsndtime > tcb->rto_ms)
			tcb_cc(tcb)->on_idle_restart(st, tcb); /* RFC 5681 §4.1 */
		uint32_t cwnd = tcb->cwnd;
		if (!(tcb->tf & TF_RECOVERY) && tcb->dupacks && tcb->dupacks < 3)
			cwnd += tcb->dupacks * (uint32_t)tcb->mss; /* limited transmit, RFC 3042 */
		uint32_t edge = tcb->snd_una + TERN_MIN(tcb->snd_wnd, cwnd);
		bool blocked = false;
		for (;;) {
			uint32_t nxt = tcb->snd_nxt;
			uint32_t avail = seq_lt(nxt, end) ? end - nxt : 0;
			uint32_t room = seq_lt(nxt, edge) ? edge - nxt : 0;
			uint32_t len = TERN_MIN(TERN_MIN(avail, (uint32_t)tcb->mss), room);
			bool retrans = seq_lt(nxt, tcb->snd_max);
			/* The FIN rides on the segment that ends the data, if the window has
			 * room for its sequence number (as Linux's tcp_snd_wnd_test). */
			bool fin = fin_due && nxt + len == end && room > len;
			if (!len && !fin) {
				blocked = avail || (fin_due && nxt == end);
				break;
			}
			if (!retrans && !fin && len < tcb->mss) {
				if (len < avail) {
					/* Sender-side silly window avoidance (RFC 9293 §3.8.6.2.1):
					 * a window too small for a segment is used only when it is
					 * at least half the largest the peer has offered. */
					if (len < tcb->max_snd_wnd / 2) {
						blocked = true;
						break;
					}
				} else if (tcb->tf & TF_CORK) {
					/* Corked: partial segments wait for more data, but with
					 * nothing in flight the persist timer sends them after
					 * max(RTO, 200 ms), the ceiling of tcp(7) (Linux's
					 * tcp_check_probe_timer). */
					blocked = true;
					break;
				} else if (!(tcb->tf & TF_NODELAY) && seq_gt(tcb->snd_sml, tcb->snd_una) &&
					   seq_le(tcb->snd_sml, tcb->snd_nxt)) {
					/* Nagle (RFC 896) in Minshall's form, as Linux: one small
					 * segment at a time may be unacknowledged. */
					break;
				}
			}
			uint16_t flags = TERN_TH_ACK;
			if (fin)
				flags |= TERN_TH_FIN;
			if (len && nxt + len == end)
				flags |= TERN_TH_PSH; /* the last byte the application gave */
			if (retrans) {
				st->stats.tcp_retrans++;
				tcb->total_retrans++;
			} else {
				if (!(tcb->tf & TF_RTT_VALID)) {
					tcb->rtt_seq = nxt + len + fin;
					tcb->rtt_start = (uint32_t)st->now_us;
					tcb->tf |= TF_RTT_VALID;
				}
				if (len < tcb->mss)
					tcb->snd_sml = nxt + len;
				if (len) {
					/* A reply within ato of the last segment in: interactive,
					 * its ACKs ride on data (Linux's pingpong mode). Before any
					 * data has come, ato is 0 and nothing is within it. */
					if (st->now - tcb->last_rcv < tcb_ato(st, tcb))
						tcb->tf |= TF_PINGPONG;
					tcb->lsndtime = st->now;
				}
			}
			tcp_xmit(st, tcb, nxt, flags, nxt - start, len);
			tcb->snd_nxt = nxt + len + fin;
			if (seq_gt(tcb->snd_nxt, tcb->snd_max))
				tcb->snd_max = tcb->snd_nxt;
			if (fin)
				tcb->tf |= TF_FIN_SENT;
			sent = true;
			rtx_arm(st, tcb);
			if (fin)
				break;
		}
		if (blocked && !sent && tcb->snd_una == tcb->snd_max && !tcb_timer_armed(tcb, T_RTX))
			tcp_persist_arm(st, tcb);
	}
ack_only:
	if (!sent && (tcb->tf & TF_ACKNOW))
		tcp_send_ack(st, tcb);
}

/* After a retransmission timeout: go back to the oldest unacknowledged byte; the congestion
 * window (one segment now) decides how much goes out again. If the peer's window is shut,
 * one byte goes, as a window probe (RFC 9293 §3.8.6.1). */
void tcp_retransmit(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	if (s == TERN_STATE_SYN_SENT || s == TERN_STATE_SYN_RCVD) {
		tcp_send_syn(st, tcb);
		return;
	}
	tcb->snd_nxt = tcb->snd_una;
	if (!tcb->snd_wnd && (tcb->tf & TF_SYN_ACKED)) {
		/* A window probe: the byte goes beyond the window and the receiver drops it, so
		 * sending resumes at SND.UNA when the window opens (as Linux, which marks the
		 * whole flight lost and starts again from its head). */
		xmit_head(st, tcb, 1);
		tcb->snd_nxt = tcb->snd_una;
		return;
	}
	tcp_output(st, tcb);
}

/* Persist timer (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17, Linux's tcp_write_wakeup): send
 * what the window allows if it has any room (silly-window avoidance aside: we waited long
 * enough), else a probe the peer must answer with its window. */
void tcp_persist_probe(struct tern_stack *st, struct tern_tcb *tcb)
{
	uint32_t start = tcb->snd_una + ((tcb->tf & TF_SYN_ACKED) ? 0 : 1);
	uint32_t end = start + ring_len(tcb->sndq);
	uint32_t edge = tcb->snd_una + TERN_MIN(tcb->snd_wnd, tcb->cwnd);
	uint32_t nxt = tcb->snd_nxt;
	uint32_t room = seq_lt(nxt, edge) ? edge - nxt : 0;
	uint32_t avail = seq_lt(nxt, end) ? end - nxt : 0;
	uint32_t len = TERN_MIN(TERN_MIN(avail, room), (uint32_t)tcb->mss);
	if (!len) {
		st->stats.tcp_window_probes++; /* only data-less probes (Linux's TCPWinProbe) */
		tcp_send_probe(st, tcb);
		return;
	}
	uint16_t flags = TERN_TH_ACK | (nxt + len == end ? TERN_TH_PSH : 0);
	if (seq_ge(nxt, tcb->snd_max) && !(tcb->tf & TF_RTT_VALID)) {
		/* New data, never sent: its ACK is a valid RTT sample (RFC 6298 §3). */
		tcb->rtt_seq = nxt + len;
		tcb->rtt_start = (uint32_t)st->now_us;
		tcb->tf |= TF_RTT_VALID;
	}
	tcp_xmit(st, tcb, nxt, flags, nxt - start, len);
	tcb->snd_nxt = nxt + len;
	if (seq_gt(tcb->snd_nxt, tcb->snd_max))
		tcb->snd_max = tcb->snd_nxt;
	tcb->lsndtime = st->now;
}

void tcp_send_raw(struct tern_stack *st, uint32_t src, uint32_t dst, uint16_t sport,
		  uint16_t dport, uint32_t seq, uint32_t ack, uint16_t flags, uint16_t win,
		  const struct tern_tcp_opts *opts, int fd)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = src;
	h.dst = dst;
	h.sport = sport;
	h.dport = dport;
	h.seq = seq;
	h.ack = ack;
	h.flags = flags;
	h.win = win;
	if (opts)
		h.opts = *opts;
	size_t hlen = tern_tcp_build(st->txbuf + 20, &h);
	struct tern_iovec iov[1] = {{st->txbuf + 20, hlen}};
	tcp_emit(st, &h, iov, 1, hlen, NULL, fd);
}

/*
 * RFC 9293 §3.10.7.1 (and Linux's tcp_v4_send_reset): never answer a RST; if the offending
 * segment has an ACK, the reset takes its sequence number from that ACK, otherwise it is
 * RST|ACK with sequence 0 acknowledging everything the segment occupied.
 */
void tcp_send_reset_for(struct tern_stack *st, const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *in = &seg->h;
	if (in->flags & TERN_TH_RST)
		return;
	if (in->flags & TERN_TH_ACK) {
		tcp_send_raw(st, in->dst, in->src, in->dport, in->sport, in->ack, 0, TERN_TH_RST, 0,
			     NULL, -1);
	} else {
		uint32_t ack = in->seq + in->len + !!(in->flags & TERN_TH_SYN) +
			       !!(in->flags & TERN_TH_FIN);
		tcp_send_raw(st, in->dst, in->src, in->dport, in->sport, 0, ack,
			     TERN_TH_RST | TERN_TH_ACK, 0, NULL, -1);
	}
}
