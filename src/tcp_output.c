/* Segments leaving a TCB: what to send (tcp_output), and how each segment is built. */
#include <string.h>
#include "internal.h"

void tcp_trace_seg(struct tern_stack *st, enum tern_trace_kind kind, const struct tern_seg_info *h,
		   int fd, const char *reason)
{
	struct tern_trace ev = {.kind = kind, .fd = fd, .reason = reason};
	ev.u.seg = *h;
	stack_trace(st, &ev);
}

/*
 * The window to advertise (RFC 9293 §3.8.6.2.2 and §3.10.7.4 "the window should never
 * shrink"): the free receive buffer, cut to the unscaled 16-bit field and to a whole number
 * of MSS when it is large (as Linux's __tcp_select_window does; an initial buffer of 128 KiB
 * gives the familiar 64240), but never less than what was already promised.
 */
uint32_t tcp_select_window(struct tern_stack *st, struct tern_tcb *tcb)
{
	(void)st;
	uint32_t used = ring_len(tcb->rcvq);
	uint32_t free_space = tcb->rcvbuf > used ? tcb->rcvbuf - used : 0;
	if (free_space > TERN_MAX_WINDOW)
		free_space = TERN_MAX_WINDOW;
	uint32_t win = free_space;
	if (win >= tcb->advmss)
		win -= win % tcb->advmss;
	int32_t promised = (int32_t)(tcb->rcv_wup + tcb->rcv_wnd - tcb->rcv_nxt);
	if (promised > 0 && (uint32_t)promised > win)
		win = (uint32_t)promised;
	tcb->rcv_wnd = win;
	tcb->rcv_wup = tcb->rcv_nxt;
	return win;
}

/* Checksum, trace and hand to IPv4: the transport header is at st->txbuf + 20. */
static void tcp_emit(struct tern_stack *st, const struct tern_seg_info *h, struct tern_iovec *iov,
		     unsigned n, size_t hlen, int fd)
{
	uint32_t pseudo = tern_csum_pseudo(h->src, h->dst, TERN_IPPROTO_TCP_, (uint16_t)(hlen + h->len));
	uint16_t c = tern_csum_iov(pseudo, iov, n);
	memcpy(st->txbuf + 20 + 16, &c, 2);
	if (stack_tracing(st))
		tcp_trace_seg(st, TERN_TRACE_SEND, h, fd, NULL);
	st->stats.tcp_out++;
	if (h->flags & TERN_TH_RST)
		st->stats.tcp_rst_out++;
	ip_output(st, h->src, h->dst, TERN_IPPROTO_TCP_, iov, n, hlen + h->len);
}

/* Build and send one segment of the TCB: off/len address the send queue. */
static void tcp_xmit(struct tern_stack *st, struct tern_tcb *tcb, uint32_t seq, uint16_t flags,
		     uint32_t off, uint32_t len)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = tcb->h.laddr;
	h.dst = tcb->h.raddr;
	h.sport = tcb->h.lport;
	h.dport = tcb->h.rport;
	h.seq = seq;
	h.flags = flags;
	if (flags & TERN_TH_ACK)
		h.ack = tcb->rcv_nxt;
	h.win = (uint16_t)tcp_select_window(st, tcb);
	if (flags & TERN_TH_SYN) {
		/* RFC 9293 §3.7.1: the MSS option goes on SYNs, and only there. */
		h.opts.has = TERN_OPT_MSS;
		h.opts.mss = tcb->advmss;
	}
	h.len = len;
	size_t hlen = tern_tcp_build(st->txbuf + 20, &h);
	struct tern_iovec iov[3];
	iov[0].base = st->txbuf + 20;
	iov[0].len = hlen;
	unsigned n = 1;
	if (len)
		n += ring_peek(tcb->sndq, off, len, iov + 1);
	tcb->segs_out++;
	if (flags & TERN_TH_ACK) {
		/* Every segment carries the ACK: nothing is owed any more. */
		tcb->tf &= ~(TF_ACKNOW | TF_DACK);
		if (tcb_timer_armed(tcb, T_DACK))
			tcb_timer_clear(st, tcb, T_DACK);
	}
	tcp_emit(st, &h, iov, n, hlen, tcb->fd);
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

void tcp_send_active_reset(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcp_xmit(st, tcb, acceptable_seq(tcb), TERN_TH_RST | TERN_TH_ACK, 0, 0);
}

void tcp_output(struct tern_stack *st, struct tern_tcb *tcb)
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
		uint32_t wnd = TERN_MIN(tcb->snd_wnd, tcb->cwnd);
		/* A retransmission of the oldest segment goes out whatever the window says (a
		 * window that closed, or an old ACK that said so, would otherwise stall the
		 * connection until it times out): it is then also a window probe, as in Linux's
		 * tcp_retransmit_timer. */
		if (tcb->snd_nxt == tcb->snd_una && seq_lt(tcb->snd_una, tcb->snd_max) && wnd < tcb->mss)
			wnd = tcb->mss;
		uint32_t edge = tcb->snd_una + wnd;
		/* A FIN is owed once the application shut down, until it is acknowledged (it is
		 * the last thing sent, so "all sent is acked" means it was). */
		bool fin_owed = (tcb->tf & TF_SHUT_WR) &&
				!((tcb->tf & TF_FIN_SENT) && tcb->snd_una == tcb->snd_max);
		for (;;) {
			uint32_t nxt = tcb->snd_nxt;
			uint32_t avail = seq_lt(nxt, end) ? end - nxt : 0;
			uint32_t room = seq_lt(nxt, edge) ? edge - nxt : 0;
			uint32_t len = TERN_MIN(TERN_MIN(avail, tcb->mss), room);
			/* The FIN rides on the segment that ends the data, if the window has
			 * room for its sequence number (as Linux's tcp_snd_wnd_test). */
			bool fin = fin_owed && nxt + len == end && room > len;
			if (!len && !fin)
				break;
			uint16_t flags = TERN_TH_ACK;
			if (fin)
				flags |= TERN_TH_FIN;
			if (len && nxt + len == end)
				flags |= TERN_TH_PSH; /* the last byte the application gave */
			if (seq_lt(nxt, tcb->snd_max)) {
				st->stats.tcp_retrans++;
				tcb->total_retrans++;
			} else if (!(tcb->tf & TF_RTT_VALID)) {
				tcb->rtt_seq = nxt + len + fin;
				tcb->rtt_start = (uint32_t)st->now_us;
				tcb->tf |= TF_RTT_VALID;
			}
			tcp_xmit(st, tcb, nxt, flags, nxt - start, len);
			tcb->snd_nxt = nxt + len + fin;
			if (seq_gt(tcb->snd_nxt, tcb->snd_max))
				tcb->snd_max = tcb->snd_nxt;
			if (fin)
				tcb->tf |= TF_FIN_SENT;
			sent = true;
			if (!tcb_timer_armed(tcb, T_RTX))
				tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
			if (fin)
				break;
		}
	}
	if (!sent && (tcb->tf & TF_ACKNOW))
		tcp_send_ack(st, tcb);
}

void tcp_retransmit(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	if (s == TERN_STATE_SYN_SENT || s == TERN_STATE_SYN_RCVD) {
		tcp_send_syn(st, tcb);
		return;
	}
	/* Go back to the oldest unacknowledged byte (the SYN, if it is still out); the
	 * congestion window (one segment after a timeout) decides how much goes out again. */
	tcb->snd_nxt = tcb->snd_una;
	tcp_output(st, tcb);
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
	tcp_emit(st, &h, iov, 1, hlen, fd);
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
