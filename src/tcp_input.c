/*
 * Segments arriving (RFC 9293 §3.10.7 "SEGMENT ARRIVES"), processed in the RFC's order: the
 * sequence number, RST, SYN, ACK, then the text and the FIN. Where the RFC leaves a choice
 * the choice is Linux's, and each place says so (RFC 5961 challenge ACKs, tcp_sequence's
 * acceptance bounds, the silent drop of an ACK for unsent data in ESTABLISHED).
 */
#include <string.h>
#include "internal.h"
#include "cc.h"

static void trace_recv(struct tern_stack *st, const struct tern_tcp_seg *seg, int fd)
{
	if (stack_tracing(st))
		tcp_trace_seg(st, TERN_TRACE_RECV, &seg->h, fd, NULL);
}

/* Linux's tcp_oow_rate_limited(): ACKs sent in reply to out-of-window pure ACKs and SYNs are
 * limited per connection (RFC 5961 §10), so two confused ends cannot loop at wire speed.
 * Segments carrying data or a FIN are always answered. */
static bool oow_rate_limited(struct tern_stack *st, struct tern_tcb *tcb,
			     const struct tern_tcp_seg *seg, bool always_limit)
{
	if (!always_limit && (seg->h.len || (seg->h.flags & TERN_TH_FIN)) &&
	    !(seg->h.flags & TERN_TH_SYN))
		return false;
	uint16_t now16 = (uint16_t)st->now;
	/* The last such ACK answered a segment no later than the connection's previous one, so
	 * a gap since that segment of at least the limit clears it; within 65 s the 16-bit
	 * clock is exact. */
	if (tcb->last_oow_ack && st->seg_gap_ms < st->set.invalid_ratelimit_ms) {
		uint16_t elapsed = (uint16_t)(now16 - tcb->last_oow_ack);
		if (elapsed < st->set.invalid_ratelimit_ms)
			return true;
	}
	tcb->last_oow_ack = now16 ? now16 : 1; /* 0 means "never", as in Linux */
	return false;
}

/* RFC 5961 §3.2, §4.2, §5.2: answer a suspicious RST, SYN or ACK with an ACK for what we
 * actually expect, rather than acting on it. */
static void challenge_ack(struct tern_stack *st, struct tern_tcb *tcb, const struct tern_tcp_seg *seg)
{
	if (oow_rate_limited(st, tcb, seg, true))
		return;
	st->stats.tcp_challenge_acks++;
	tcp_send_ack(st, tcb);
}

static void establish(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb_cc(tcb)->init(st, tcb);
	/* RFC 5681 §3.1: after a lost SYN or SYN-ACK the initial window is one segment; Linux
	 * (tcp_init_transfer) applies it once more than one was retransmitted. */
	if (tcb->total_retrans > 1)
		tcb->cwnd = tcb->mss;
	tcb->snd_recover = tcb->snd_una;
	tcb->lsndtime = st->now;
	/* Linux's tcp_initialize_rcv_mss(): a guess at the peer's segments, refined as they
	 * arrive; it decides when two full segments have come in (delayed ACK). */
	uint32_t rmss = TERN_MIN(TERN_MIN((uint32_t)tcb->advmss, (uint32_t)tcb->mss),
				 (uint32_t)TERN_DEFAULT_MSS);
	tcb->rcv_mss = (uint16_t)TERN_MAX(rmss, 88u);
	tcb->tf &= ~TF_CONNECTING;
	tcb_set_state(st, tcb, TERN_STATE_ESTABLISHED);
	tcb_keepalive_reset(st, tcb);
	stack_notify(st, tcb);
}

/* Linux's tcp_reset(): the error an application sees depends on where the RST found us. */
static void tcp_reset(struct tern_stack *st, struct tern_tcb *tcb)
{
	int err;
	switch (tcb->h.state) {
	case TERN_STATE_SYN_SENT:
		err = ECONNREFUSED;
		st->stats.tcp_attempt_fails++;
		break;
	case TERN_STATE_SYN_RCVD:
		err = (tcb->tf & TF_PASSIVE) ? 0 : ECONNREFUSED;
		st->stats.tcp_attempt_fails++;
		break;
	case TERN_STATE_CLOSE_WAIT:
		err = EPIPE;
		st->stats.tcp_estab_resets++;
		break;
	case TERN_STATE_ESTABLISHED:
		st->stats.tcp_estab_resets++;
		err = ECONNRESET;
		break;
	default:
		err = ECONNRESET;
		break;
	}
	tcb_drop(st, tcb, err);
}

/* The FIN we sent is acknowledged: everything sent is, and the FIN was the last of it. */
static bool fin_acked(const struct tern_tcb *tcb)
{
	return (tcb->tf & TF_FIN_SENT) && tcb->snd_una == tcb->snd_max;
}

/* RFC 9293 FIN-WAIT-1 → FIN-WAIT-2. An orphan (closed by the application) is given
 * fin_timeout to hear the peer's FIN and waits as a small record, as Linux does. Returns
 * false when the TCB is gone. */
static bool enter_fin_wait_2(struct tern_stack *st, struct tern_tcb *tcb,
			     const struct tern_tcp_seg *seg)
{
	tcb_set_state(st, tcb, TERN_STATE_FIN_WAIT_2);
	if (!(tcb->tf & TF_ORPHAN))
		return true;
	int32_t tmo = tcb_fin_timeout(st, tcb);
	if (tmo < 0) {
		/* TCP_LINGER2 < 0: no FIN_WAIT_2 at all; the segment that acked our FIN is
		 * answered with RST, as Linux does. */
		tcp_send_reset_for(st, seg);
		tcb_done(st, tcb);
		return false;
	}
	tcb_time_wait(st, tcb, TERN_STATE_FIN_WAIT_2, (uint32_t)tmo);
	return false;
}

/* An acceptable ACK that acknowledges new data (RFC 9293 §3.10.7.4, fifth, ESTABLISHED),
 * with loss recovery as RFC 6582 (NewReno) describes it. */
static void new_ack(struct tern_stack *st, struct tern_tcb *tcb, uint32_t ack)
{
	uint32_t prior_una = tcb->snd_una, prior_max = tcb->snd_max;
	uint32_t acked = ack - tcb->snd_una;
	uint32_t seq_acked = acked;
	if (!(tcb->tf & TF_SYN_ACKED)) {
		acked--; /* the SYN's sequence number */
		tcb->tf |= TF_SYN_ACKED;
	}
	uint32_t queued = ring_len(tcb->sndq);
	uint32_t data = TERN_MIN(acked, queued);
	tcb->bytes_acked += data;
	if (data) {
		ring_consume(tcb->sndq, data);
		if (!tcb->sndq->len) {
			ring_put(st, tcb->sndq);
			tcb->sndq = NULL;
		}
	}
	tcb->snd_una = ack;
	if (seq_lt(tcb->snd_nxt, ack))
		tcb->snd_nxt = ack;
	/* RFC 6298 §3 with Karn's rule: only a segment never retransmitted is timed, and a
	 * backed-off RTO stays until such a sample comes (§5 note; Linux resets icsk_backoff
	 * only in tcp_ack_update_rtt). */
	if ((tcb->tf & TF_RTT_VALID) && seq_ge(ack, tcb->rtt_seq)) {
		tcb->tf &= ~TF_RTT_VALID;
		tcb_rtt_sample(st, tcb, (uint32_t)st->now_us - tcb->rtt_start);
		tcb->backoff = 0;
	}
	tcb->retransmits = 0;
	if (tcb->tf & TF_RECOVERY) {
		if (seq_ge(ack, tcb->snd_recover)) {
			/* RFC 6582 §3.2 step 3: a full acknowledgment ends recovery. */
			tcb->tf &= ~TF_RECOVERY;
			tcb->dupacks = 0;
			tcb_cc(tcb)->on_recovery_end(st, tcb);
		} else {
			/* Step 4, a partial acknowledgment: the next hole is lost too. Resend it at
			 * once and deflate cwnd by what left the network, keeping one SMSS. */
			st->stats.tcp_partial_acks++;
			tcp_retransmit_head(st, tcb);
			tcb->cwnd -= TERN_MIN(seq_acked, tcb->cwnd);
			if (seq_acked >= tcb->mss)
				tcb->cwnd += tcb->mss;
			if (tcb->cwnd < tcb->mss)
				tcb->cwnd = tcb->mss;
		}
	} else {
		tcb->dupacks = 0;
		/* RFC 7661 / Linux's tcp_is_cwnd_limited(): the window grows only while it limits
		 * the sender: in slow start up to twice what was in flight, after it while what
		 * was in flight filled it (to within a segment). */
		uint32_t flight = prior_max - prior_una;
		bool limited = tcb->cwnd < tcb->ssthresh ? tcb->cwnd < 2 * flight
							: flight + tcb->mss >= tcb->cwnd;
		if (data && limited)
			tcb_cc(tcb)->on_ack(st, tcb, data);
	}
	if (tcb->snd_una == tcb->snd_max) {
		if (!(tcb->tf & TF_PERSIST))
			tcb_timer_clear(st, tcb, T_RTX);
	} else {
		tcb->tf &= ~TF_PERSIST;
		tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms); /* RFC 6298 §5.3 */
	}
	if (data)
		stack_notify(st, tcb);
}

/*
 * RFC 5681 §2: a duplicate ACK acknowledges nothing new while data is outstanding, carries
 * no data, no SYN or FIN, and leaves the window as it was. The third starts fast retransmit
 * and NewReno fast recovery (RFC 5681 §3.2, RFC 6582 §3.2); the first two may each release
 * one new segment (limited transmit, RFC 3042, applied in tcp_output); during recovery each
 * one inflates cwnd by a segment that has left the network.
 */
static void dup_ack(struct tern_stack *st, struct tern_tcb *tcb)
{
	st->stats.tcp_dupacks_in++;
	if (tcb->dupacks < 255)
		tcb->dupacks++;
	if (tcb->tf & TF_RECOVERY) {
		tcb->cwnd += tcb->mss;
		return;
	}
	/* Step 2 of RFC 6582: after a timeout, duplicate ACKs for data sent before it (below
	 * "recover") must not trigger another reduction. */
	if (tcb->dupacks != 3 || seq_lt(tcb->snd_una, tcb->snd_recover))
		return;
	st->stats.tcp_fast_retrans++;
	tcb->ssthresh = tcb_cc(tcb)->ssthresh(st, tcb);
	tcb->snd_recover = tcb->snd_max;
	tcb->tf |= TF_RECOVERY;
	tcb->tf &= ~TF_RTT_VALID; /* Karn */
	tcp_retransmit_head(st, tcb);
	tcb->cwnd = tcb->ssthresh + 3u * tcb->mss;
}

/* Linux's tcp_reset_check(): once the peer's FIN is in, its RST may carry the FIN's own
 * sequence number (rcv_nxt - 1); accept that in the states that follow a received FIN. */
static bool reset_check(const struct tern_tcb *tcb, const struct tern_tcp_seg *seg)
{
	int s = tcb->h.state;
	return seg->h.seq == tcb->rcv_nxt - 1 &&
	       (s == TERN_STATE_CLOSE_WAIT || s == TERN_STATE_LAST_ACK || s == TERN_STATE_CLOSING);
}

/* Linux's tcp_incr_quickack(): quick ACKs enough for half the window in segments (2 when that
 * rounds to none), at most 16. */
static void quickack_add(struct tern_tcb *tcb)
{
	uint32_t q = tcb->rcv_wnd / (2u * tcb->rcv_mss);
	if (!q)
		q = 2;
	if (q > 16)
		q = 16;
	if (q > tcb->h.spare)
		tcb->h.spare = (uint8_t)q;
}

/*
 * Linux's tcp_event_data_recv(): the delayed-ACK engine learns from arriving data. The peer's
 * segment size (rcv_mss) grows with what is seen; the first data starts quick-ACK mode (an
 * ACK for every segment while the peer's slow start needs them, up to 16); the ACK timeout
 * (ato) follows the gaps between segments, within delack_min..delack_max.
 */
static void event_data_recv(struct tern_stack *st, struct tern_tcb *tcb, uint32_t len)
{
	if (len >= tcb->rcv_mss)
		tcb->rcv_mss = (uint16_t)TERN_MIN(len, (uint32_t)tcb->advmss);
	uint32_t ato = tcb->tn.user;
	uint32_t min = st->set.delack_min_ms;
	if (!ato) {
		quickack_add(tcb);
		ato = min;
	} else {
		uint32_t m = st->seg_gap_ms;
		if (m <= min / 2)
			ato = ato / 2 + min / 2;
		else if (m < ato)
			ato = TERN_MIN(ato / 2 + m, tcb->rto_ms);
		else if (m > tcb->rto_ms)
			quickack_add(tcb); /* a long silence: ACK quickly again */
	}
	tcb->tn.user = (uint16_t)TERN_MIN(TERN_MAX(ato, min), st->set.delack_max_ms);
}

/* Queue data at seq (>= rcv_nxt) inside the window (RFC 9293 §3.10.7.4, seventh), in order or
 * not. Returns how far RCV.NXT moved. */
static uint32_t data_queue(struct tern_stack *st, struct tern_tcb *tcb, uint32_t seq,
			   const uint8_t *data, uint32_t len, bool fin)
{
	int32_t wnd = (int32_t)(tcb->rcv_wup + tcb->rcv_wnd - tcb->rcv_nxt);
	uint32_t off = seq - tcb->rcv_nxt;
	uint32_t room = wnd > 0 && (uint32_t)wnd > off ? (uint32_t)wnd - off : 0;
	uint32_t take = TERN_MIN(len, room);
	if ((take || (fin && off)) && !tcb->rcvq) {
		tcb->rcvq = ring_get(st, tcb_rcvbuf(st, tcb));
		if (!tcb->rcvq)
			take = 0;
	}
	struct ring *r = tcb->rcvq;
	if (!r) {
		tcb->tf |= TF_ACKNOW;
		return 0;
	}
	if (take && r->len + off + take > r->cap)
		take = r->len + off < r->cap ? r->cap - r->len - off : 0;
	if (take < len) {
		st->stats.tcp_rcvbuf_drops++;
		fin = false; /* the FIN lies beyond what fits */
	}
	if (!take && !fin) {
		tcb->tf |= TF_ACKNOW; /* a full window: say so at once */
		return 0;
	}
	bool had_holes = r && (r->nooo || r->ooo_fin);
	bool refused = false;
	uint32_t moved = take ? reass_insert(r, tcb->rcv_nxt, seq, data, take, &refused) : 0;
	if (off) {
		/* Out of order: kept, and an immediate duplicate ACK tells the sender where
		 * the hole is (RFC 5681 §4.2). */
		if (refused)
			st->stats.tcp_ofo_drops++;
		else if (take)
			st->stats.tcp_ofo_queued++;
		if (fin && !refused) {
			r->ooo_fin = 1;
			r->ooo_fin_seq = seq + take;
		}
		tcb->tf |= TF_ACKNOW;
		return 0;
	}
	if (take)
		event_data_recv(st, tcb, take);
	tcb->rcv_nxt += moved;
	tcb->bytes_received += moved;
	if (moved) {
		tcb->tf |= TF_DACK;
		stack_notify(st, tcb);
	}
	/* RFC 5681 §4.2: ACK at once when the data fills a hole. */
	if (had_holes)
		tcb->tf |= TF_ACKNOW;
	return moved;
}

/* A FIN held out of order becomes due once the data before it is in. */
static bool ooo_fin_due(const struct tern_tcb *tcb)
{
	const struct ring *r = tcb->rcvq;
	return r && r->ooo_fin && r->ooo_fin_seq == tcb->rcv_nxt;
}

/* Every state from SYN_RCVD on. Returns false when the TCB may be gone. */
static bool synchronized_input(struct tern_stack *st, struct tern_tcb *tcb,
			       const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *h = &seg->h;
	uint16_t f = h->flags;
	uint32_t seq = h->seq, len = h->len;
	const uint8_t *data = seg->data;
	bool fin = f & TERN_TH_FIN;
	uint32_t seg_end = seq + len + !!(f & TERN_TH_SYN) + fin;

	if (!(f & (TERN_TH_ACK | TERN_TH_RST | TERN_TH_SYN)))
		return true;

	/* First, the sequence number. Linux's tcp_sequence(): acceptable unless it ends
	 * before the left edge last advertised or starts past the right edge. A segment that
	 * ends exactly at RCV.NXT passes (RFC 9293's test would refuse it), which is what lets
	 * the crossing SYN-ACK of a simultaneous open through. */
	int32_t rwin = (int32_t)(tcb->rcv_wup + tcb->rcv_wnd - tcb->rcv_nxt);
	uint32_t right = tcb->rcv_nxt + (rwin > 0 ? (uint32_t)rwin : 0);
	if (seq_lt(seg_end, tcb->rcv_wup) || seq_gt(seq, right)) {
		st->stats.tcp_out_of_window++;
		if (f & TERN_TH_RST) {
			if (reset_check(tcb, seg))
				goto reset;
			return true;
		}
		if (f & TERN_TH_SYN) {
			challenge_ack(st, tcb, seg);
			return true;
		}
		if (!oow_rate_limited(st, tcb, seg, false))
			tcp_send_ack(st, tcb);
		return true;
	}

	/* Second, RST: RFC 5961 §3.2, exact match resets, the rest of the window draws a
	 * challenge ACK. */
	if (f & TERN_TH_RST) {
		if (seq == tcb->rcv_nxt || reset_check(tcb, seg)) {
reset:
			st->stats.tcp_rst_in++;
			tcp_reset(st, tcb);
			return false;
		}
		challenge_ack(st, tcb, seg);
		return true;
	}

	/* Fourth, SYN in a synchronized state: RFC 5961 §4.2 challenge ACK. One exception
	 * (Linux, tcp_validate_incoming): in a simultaneous open the peer's SYN-ACK repeats
	 * its SYN; the SYN part is old and the ACK completes our handshake. */
	if (f & TERN_TH_SYN) {
		if (tcb->h.state == TERN_STATE_SYN_RCVD && !(tcb->tf & TF_PASSIVE) &&
		    (f & TERN_TH_ACK) && len == 0 && !fin && seq + 1 == tcb->rcv_nxt &&
		    h->ack == tcb->snd_max) {
			/* The SYN is already counted; its repetition is still answered with an
			 * ACK at once, as RFC 5961 §4 asks for a SYN in a synchronized state
			 * and as Linux does (tcp_data_queue sees an old segment). */
			seq++;
			tcb->tf |= TF_ACKNOW;
		} else {
			challenge_ack(st, tcb, seg);
			return true;
		}
	}

	/* Fifth, the ACK field. */
	if (!(f & TERN_TH_ACK))
		return true;
	uint32_t ack = h->ack;
	if (tcb->h.state == TERN_STATE_SYN_RCVD) {
		if (seq_le(ack, tcb->snd_una) || seq_gt(ack, tcb->snd_max)) {
			tcp_send_reset_for(st, seg);
			return true;
		}
		tcb->snd_wnd = h->win;
		tcb->max_snd_wnd = TERN_MAX(tcb->max_snd_wnd, tcb->snd_wnd);
		tcb->snd_wl1 = h->seq;
		new_ack(st, tcb, ack);
		if (tcb->tf & TF_SYN_RTX && !tcb->srtt_us)
			tcb->rto_ms = TERN_MAX(3000u, st->set.rto_min_ms); /* RFC 6298 §5.7 */
		establish(st, tcb);
		if (tcb->tf & TF_PASSIVE)
			listen_child_established(st, tcb);
	} else if (seq_gt(ack, tcb->snd_max)) {
		/* An ACK for data never sent. RFC 9293 says answer with an ACK; Linux drops
		 * it silently in ESTABLISHED (no ACK war with a confused peer) and sends a
		 * challenge ACK in the other states. */
		st->stats.tcp_ack_unsent++;
		if (tcb->h.state != TERN_STATE_ESTABLISHED)
			challenge_ack(st, tcb, seg);
		return true;
	} else if (seq_lt(ack, tcb->snd_una)) {
		/* An old ACK: ignored, unless older than any window we ever offered, which
		 * RFC 5961 §5.2 treats as a blind injection attempt. */
		if (seq_lt(ack, tcb->snd_una - tcb->max_snd_wnd)) {
			challenge_ack(st, tcb, seg);
			return true;
		}
	} else {
		/* The window is taken from a segment that acknowledges something new or is
		 * newer than the one that last set it (RFC 9293 §3.10.7.4 with Linux's
		 * tcp_may_update_window(), which lets an equal segment open the window but not
		 * shrink it short of zero). Judged before the ACK moves SND.UNA. */
		bool win_update = seq_gt(ack, tcb->snd_una) || seq_gt(h->seq, tcb->snd_wl1) ||
				  (h->seq == tcb->snd_wl1 && (h->win > tcb->snd_wnd || !h->win));
		bool dup = ack == tcb->snd_una && seq_lt(tcb->snd_una, tcb->snd_max) && !len &&
			   !(f & (TERN_TH_SYN | TERN_TH_FIN)) && h->win == tcb->snd_wnd;
		tcb->probes = 0; /* the peer answers: keepalive and window probes start over */
		if (seq_gt(ack, tcb->snd_una))
			new_ack(st, tcb, ack);
		else if (dup)
			dup_ack(st, tcb);
		if (win_update) {
			bool opened = h->win > tcb->snd_wnd;
			tcb->snd_wnd = h->win;
			tcb->max_snd_wnd = TERN_MAX(tcb->max_snd_wnd, tcb->snd_wnd);
			tcb->snd_wl1 = h->seq;
			if (opened)
				stack_notify(st, tcb);
			if (tcb->snd_wnd && tcb->xo)
				tcb->xo->probing = false;
		}
		/* Linux's tcp_ack_probe(): an answer to a window probe that leaves the window
		 * shut starts the next probe's wait over, from now (with the backoff reached);
		 * if the window opened, output below sends and the timer becomes the RTO's. */
		if ((tcb->tf & TF_PERSIST) && !tcb->snd_wnd)
			tcp_persist_arm(st, tcb);
	}
	switch (tcb->h.state) {
	case TERN_STATE_FIN_WAIT_1:
		if (!fin_acked(tcb))
			break;
		if ((tcb->tf & TF_ORPHAN) && len && seq_gt(seq + len, tcb->rcv_nxt)) {
			/* New data for an application that has closed (Linux's FIN_WAIT1 case
			 * for a dead socket; RFC 1122 §4.2.2.13): reset. */
			st->stats.tcp_abort_on_data++;
			tcp_send_reset_for(st, seg);
			tcb_done(st, tcb);
			return false;
		}
		/* With a FIN in this segment, the FIN step decides (straight to TIME_WAIT). */
		if (!fin && !enter_fin_wait_2(st, tcb, seg))
			return false;
		break;
	case TERN_STATE_CLOSING:
		if (fin_acked(tcb)) {
			tcb_time_wait(st, tcb, TERN_STATE_TIME_WAIT, 0);
			return false;
		}
		break;
	case TERN_STATE_LAST_ACK:
		if (fin_acked(tcb)) {
			tcb_done(st, tcb);
			return false;
		}
		break;
	default:
		break;
	}

	/* Seventh, the segment text. */
	int s = tcb->h.state;
	if (s == TERN_STATE_CLOSE_WAIT || s == TERN_STATE_CLOSING || s == TERN_STATE_LAST_ACK) {
		/* The peer's FIN is in: new text cannot be, but a retransmission of old text or
		 * of the FIN still deserves an ACK. */
		if (!seq_lt(seq, tcb->rcv_nxt))
			return true;
	}
	if ((s == TERN_STATE_FIN_WAIT_1 || s == TERN_STATE_FIN_WAIT_2) &&
	    (tcb->tf & (TF_SHUT_RD | TF_ORPHAN)) && len && seq_gt(seq + len, tcb->rcv_nxt)) {
		/* RFC 9293 §3.10.4 / RFC 1122 §4.2.2.13: data for an application that has
		 * closed its reading side is answered with RST. */
		st->stats.tcp_abort_on_data++;
		tcp_send_reset_for(st, seg);
		tcb_drop(st, tcb, ECONNRESET);
		return false;
	}
	/* Sixth, the URG bit (RFC 9293 §3.10.7.4; the pointer marks the byte after the urgent
	 * one, RFC 6093). The data stays inline: remember where the mark is, unless it was
	 * read already or is no newer than the one known (Linux's tcp_check_urg). */
	if ((h->flags & TERN_TH_URG) && h->urp &&
	    (s == TERN_STATE_ESTABLISHED || s == TERN_STATE_FIN_WAIT_1 ||
	     s == TERN_STATE_FIN_WAIT_2)) {
		uint32_t ptr = h->seq + h->urp - 1;
		if (!seq_lt(ptr, tcb->rcv_nxt) &&
		    !((tcb->tf & TF_URG_SEEN) && tcb->xo && !seq_gt(ptr, tcb->xo->rcv_up)) &&
		    tcb_opts(&tcb->xo)) {
			tcb->xo->rcv_up = ptr;
			tcb->tf |= TF_URG_SEEN;
			stack_notify(st, tcb);
		}
	}
	bool fin_in = false;
	if (len || fin) {
		if (seq_lt(seq, tcb->rcv_nxt)) {
			uint32_t skip = tcb->rcv_nxt - seq;
			if (skip >= len + fin) {
				/* Entirely old: a retransmission. ACK at once, and keep ACKing
				 * quickly (Linux's tcp_enter_quickack_mode). */
				tcb->tf |= TF_ACKNOW;
				tcb->tf &= ~TF_PINGPONG;
				quickack_add(tcb);
				len = 0;
				fin = false;
			} else if (skip > len) {
				len = 0; /* only the FIN is new */
			} else {
				data += skip;
				len -= skip;
			}
			seq = tcb->rcv_nxt;
		}
		if (len || (fin && seq != tcb->rcv_nxt))
			data_queue(st, tcb, seq, data, len, fin);
		fin_in = (fin && seq + len == tcb->rcv_nxt) || ooo_fin_due(tcb);
		if (ooo_fin_due(tcb))
			tcb->rcvq->ooo_fin = 0;
	}

	/* Eighth, the FIN. */
	if (fin_in) {
		tcb->rcv_nxt++;
		tcb->tf |= TF_FIN_RCVD;
		stack_notify(st, tcb);
		switch (tcb->h.state) {
		case TERN_STATE_SYN_RCVD:
		case TERN_STATE_ESTABLISHED:
			tcb_set_state(st, tcb, TERN_STATE_CLOSE_WAIT);
			/* Linux delays the ACK of a FIN (pingpong): if the application closes
			 * within the delayed-ACK time, its FIN carries the ACK and the close
			 * takes three segments instead of four. */
			tcb->tf |= TF_PINGPONG | TF_DACK;
			break;
		case TERN_STATE_FIN_WAIT_1:
			tcp_send_ack(st, tcb);
			if (fin_acked(tcb)) {
				/* RFC 9293: FIN-WAIT-1 with our FIN acknowledged (perhaps by this
				 * very segment) goes straight to TIME-WAIT. */
				tcb_time_wait(st, tcb, TERN_STATE_TIME_WAIT, 0);
				return false;
			}
			tcb_set_state(st, tcb, TERN_STATE_CLOSING);
			break;
		case TERN_STATE_FIN_WAIT_2:
			tcp_send_ack(st, tcb);
			tcb_time_wait(st, tcb, TERN_STATE_TIME_WAIT, 0);
			return false;
		default:
			break;
		}
	} else if (tcb->h.state == TERN_STATE_FIN_WAIT_1 && fin_acked(tcb)) {
		/* The FIN step did not run (the FIN was out of order): FIN_WAIT_2 after all. */
		if (!enter_fin_wait_2(st, tcb, seg))
			return false;
	}
	return true;
}

/* SYN-SENT (RFC 9293 §3.10.7.3). Returns false when the TCB may be gone. */
static bool syn_sent_input(struct tern_stack *st, struct tern_tcb *tcb,
			   const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *h = &seg->h;
	uint16_t f = h->flags;
	if (f & TERN_TH_ACK) {
		/* Only an ACK of exactly our SYN is acceptable. */
		if (seq_le(h->ack, tcb->snd_una) || seq_gt(h->ack, tcb->snd_max)) {
			if (!(f & TERN_TH_RST))
				tcp_send_reset_for(st, seg);
			return true;
		}
	}
	if (f & TERN_TH_RST) {
		if (!(f & TERN_TH_ACK))
			return true; /* RFC 9293: no ACK, drop (it could be blind) */
		st->stats.tcp_rst_in++;
		tcp_reset(st, tcb);
		return false;
	}
	if (!(f & TERN_TH_SYN))
		return true;
	tcb->irs = h->seq;
	tcb->rcv_nxt = h->seq + 1;
	tcb->rcv_wup = tcb->rcv_nxt;
	tcb_set_peer_mss(tcb, &h->opts);
	/* RFC 7323 §2.2: the window of a SYN is never scaled. */
	tcb->snd_wnd = h->win;
	tcb->max_snd_wnd = h->win;
	tcb->snd_wl1 = h->seq;
	if (f & TERN_TH_ACK) {
		new_ack(st, tcb, h->ack);
		if ((tcb->tf & TF_SYN_RTX) && !tcb->srtt_us)
			tcb->rto_ms = TERN_MAX(3000u, st->set.rto_min_ms); /* RFC 6298 §5.7 */
		establish(st, tcb);
		/* Data on a SYN-ACK is not taken (no TCP Fast Open): only the SYN is ACKed. */
		tcb->tf |= TF_ACKNOW;
		return true;
	}
	/* A SYN without ACK: both ends opened at once (RFC 9293 §3.5, figure 8). Answer with
	 * SYN-ACK carrying the same ISN; the retransmission timer keeps running. */
	tcb_set_state(st, tcb, TERN_STATE_SYN_RCVD);
	tcb->snd_nxt = tcb->iss;
	return true;
}

/*
 * SYN-RCVD of a passive open: the checks Linux's tcp_check_req() makes on a half-open
 * connection before the full state machine runs. A retransmitted SYN gets the SYN-ACK again;
 * an ACK of anything but our SYN draws a RST; an in-window RST or SYN ends the attempt; and
 * the handshake completes only when the accept queue has room.
 */
static bool syn_rcvd_passive_input(struct tern_stack *st, struct tern_tcb *tcb,
				   const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *h = &seg->h;
	uint16_t flg = h->flags & (TERN_TH_SYN | TERN_TH_RST | TERN_TH_ACK);
	uint32_t seg_end = h->seq + h->len + !!(h->flags & TERN_TH_SYN) + !!(h->flags & TERN_TH_FIN);
	if (flg == TERN_TH_SYN && h->seq == tcb->irs) {
		if (!oow_rate_limited(st, tcb, seg, false)) {
			tcb->snd_nxt = tcb->iss;
			tcp_send_syn(st, tcb);
			/* Linux restarts the SYN-ACK timer from now with the backoff reached
			 * (tcp_check_req: timeout << num_timeout), so the next SYN-ACK comes one
			 * full interval after this one. */
			tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
		}
		return true;
	}
	if ((flg & TERN_TH_ACK) && h->ack != tcb->iss + 1) {
		tcp_send_reset_for(st, seg);
		return true;
	}
	if (!tcp_in_window(h->seq, seg_end, tcb->rcv_nxt, tcb->rcv_nxt + tcb->rcv_wnd)) {
		if (!(flg & TERN_TH_RST) && !oow_rate_limited(st, tcb, seg, false))
			tcp_send_ack(st, tcb);
		return true;
	}
	if (flg & (TERN_TH_RST | TERN_TH_SYN)) {
		st->stats.tcp_attempt_fails++;
		if (flg & TERN_TH_RST)
			st->stats.tcp_rst_in++;
		else
			tcp_send_reset_for(st, seg);
		tcb_done(st, tcb);
		return false;
	}
	if (!(flg & TERN_TH_ACK))
		return true;
	if (!listen_has_room(st, tcb)) {
		/* Accept queue full: drop the ACK and let the SYN-ACK timer retry (the
		 * client, already established, answers each SYN-ACK with another ACK), or
		 * with abort_on_overflow refuse the connection outright. */
		st->stats.tcp_listen_overflows++;
		st->stats.tcp_listen_drops++;
		if (st->set.abort_on_overflow) {
			tcp_send_reset_for(st, seg);
			tcb_done(st, tcb);
			return false;
		}
		return true;
	}
	return synchronized_input(st, tcb, seg);
}

/* Linux's __tcp_ack_snd_check(): an ACK is owed for data that came in. Send it now when more
 * than one full segment is unacknowledged (and the window keeps its right edge), in
 * quick-ACK mode, or while out-of-order data is held; otherwise within ato (RFC 9293
 * §3.8.6.3: at most 500 ms, here delack_max). */
static void ack_snd_check(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & TF_DACK) || (tcb->tf & TF_ACKNOW))
		return;
	bool quick = tcb->h.spare && !(tcb->tf & TF_PINGPONG);
	bool ooo = tcb->rcvq && (tcb->rcvq->nooo || tcb->rcvq->ooo_fin);
	bool two_segs = tcb->rcv_nxt - tcb->rcv_wup > tcb->rcv_mss &&
			tcp_window_now(st, tcb) >= tcb->rcv_wnd;
	if (two_segs || quick || ooo) {
		tcb->tf |= TF_ACKNOW;
		return;
	}
	if (!tcb_timer_armed(tcb, T_DACK))
		tcb_timer_set(st, tcb, T_DACK, tcb_ato(st, tcb));
}

/*
 * After a segment: decide about the ACK and send what can be sent. Inside a batch
 * (tern_stack_input_batch) that waits for the batch's end, once per connection, unless an
 * ACK is due at once (out-of-order data, a filled hole, an old segment): the way Linux
 * acknowledges what GRO merged, while its duplicate ACKs still go one by one.
 */
static void segment_done(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (st->batching && !(tcb->tf & TF_ACKNOW)) {
		stack_batch_add(st, tcb);
		return;
	}
	ack_snd_check(st, tcb);
	tcp_output(st, tcb);
}

/*
 * Header prediction (Van Jacobson's, as Linux's tcp_rcv_established fast path): in
 * ESTABLISHED, a segment with only ACK (and perhaps PSH), no options, the expected sequence
 * number, the window unchanged and an ACK that is new or carries in-order data that fits
 * needs none of the checks of the full machine: every one of them would pass. The two cases
 * of a bulk transfer, a data segment and the ACK that clocks out the next, take this path.
 * Returns false, having done nothing, for anything else.
 */
static bool fast_path(struct tern_stack *st, struct tern_tcb *tcb, const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *h = &seg->h;
	uint32_t len = h->len, ack = h->ack;
	if (tcb->h.state != TERN_STATE_ESTABLISHED || h->seq != tcb->rcv_nxt || h->opts.has ||
	    (h->flags & (TERN_TH_SYN | TERN_TH_FIN | TERN_TH_RST | TERN_TH_URG | TERN_TH_ACK)) != TERN_TH_ACK ||
	    h->win != tcb->snd_wnd || (tcb->tf & (TF_RECOVERY | TF_PERSIST | TF_URG_SEEN)) ||
	    tcb->dupacks || seq_lt(ack, tcb->snd_una) || seq_gt(ack, tcb->snd_max))
		return false;
	struct ring *r = tcb->rcvq;
	if (len) {
		uint32_t wnd = tcb->rcv_wup + tcb->rcv_wnd - tcb->rcv_nxt;
		if ((int32_t)wnd < (int32_t)len ||
		    (r && (r->nooo || r->ooo_fin || r->len + len > r->cap)))
			return false;
		if (!r && !(r = tcb->rcvq = ring_get(st, tcb_rcvbuf(st, tcb))))
			return false;
		if (r->len + len > r->cap)
			return false;
	} else if (ack == tcb->snd_una) {
		return false; /* duplicate ACK or window probe answer: the full machine counts it */
	}
	tcb->segs_in++;
	st->seg_gap_ms = st->now - tcb->last_rcv;
	tcb->last_rcv = st->now;
	tcb->probes = 0;
	tcb->snd_wl1 = h->seq;
	if (ack != tcb->snd_una)
		new_ack(st, tcb, ack);
	if (len) {
		ring_write_at(r, r->len, seg->data, len);
		r->len += len;
		tcb->rcv_nxt += len;
		tcb->bytes_received += len;
		event_data_recv(st, tcb, len);
		tcb->tf |= TF_DACK;
		stack_notify(st, tcb);
	}
	segment_done(st, tcb);
	return true;
}

static void tcb_input(struct tern_stack *st, struct tern_tcb *tcb, const struct tern_tcp_seg *seg)
{
	if (fast_path(st, tcb, seg))
		return;
	tcb->segs_in++;
	st->seg_gap_ms = st->now - tcb->last_rcv;
	tcb->last_rcv = st->now;
	bool alive;
	if (tcb->h.state == TERN_STATE_SYN_SENT)
		alive = syn_sent_input(st, tcb, seg);
	else if (tcb->h.state == TERN_STATE_SYN_RCVD && (tcb->tf & TF_PASSIVE))
		alive = syn_rcvd_passive_input(st, tcb, seg);
	else
		alive = synchronized_input(st, tcb, seg);
	if (alive)
		segment_done(st, tcb);
}

void tcb_after_input(struct tern_stack *st, struct tern_tcb *tcb)
{
	ack_snd_check(st, tcb);
	tcp_output(st, tcb);
}

void tcp_input(struct tern_stack *st, const struct tern_ip4 *ip)
{
	struct tern_tcp_seg seg;
	st->stats.tcp_in++;
	int rc = (st->link.flags & TERN_LINK_CSUM_RX)
			 ? tern_tcp_parse_trusted(ip->payload, ip->payload_len, ip->src, ip->dst, &seg)
			 : tern_tcp_parse(ip->payload, ip->payload_len, ip->src, ip->dst, &seg);
	if (rc != TERN_TCP_OK) {
		const char *why;
		switch (rc) {
		case TERN_TCP_CSUM:
			st->stats.tcp_bad_checksum++;
			why = "tcp checksum";
			break;
		case TERN_TCP_OPTS:
			st->stats.tcp_bad_options++;
			why = "tcp options";
			break;
		default:
			st->stats.tcp_bad_header++;
			why = "tcp header";
			break;
		}
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = -1, .reason = why};
			if (rc == TERN_TCP_CSUM)
				ev.u.seg = seg.h;
			stack_trace(st, &ev);
		}
		return;
	}
	struct conn_hdr *h = conn_lookup(st, ip->dst, seg.h.dport, ip->src, seg.h.sport);
	uint32_t isn = 0;
	if (h && h->kind == CK_TW) {
		struct tern_tw *tw = (struct tern_tw *)h;
		trace_recv(st, &seg, -1);
		if (tw_input(st, tw, &seg, &isn))
			return;
		/* A new SYN for the tuple: a listener takes it and the record goes; with no
		 * listener the record stays and answers with an ACK (Linux's TCP_TW_SYN). */
		struct tern_tcb *l = listener_lookup(st, ip->dst, seg.h.dport);
		if (!l) {
			tw_send_ack(st, tw);
			return;
		}
		st->stats.tcp_tw_recycled++;
		tw_kill(st, tw);
		listen_input(st, l, &seg, isn);
		return;
	}
	if (h) {
		struct tern_tcb *tcb = (struct tern_tcb *)h;
		trace_recv(st, &seg, tcb->fd);
		tcb_input(st, tcb, &seg);
		return;
	}
	struct tern_tcb *l = listener_lookup(st, ip->dst, seg.h.dport);
	trace_recv(st, &seg, l ? l->fd : -1);
	if (l) {
		listen_input(st, l, &seg, isn);
		return;
	}
	st->stats.tcp_no_port++;
	tcp_send_reset_for(st, &seg);
}
