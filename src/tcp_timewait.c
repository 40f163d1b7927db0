/*
 * Segments for a TIME_WAIT record (RFC 9293 §3.10.7.4 TIME-WAIT, RFC 6191, and Linux's
 * tcp_timewait_state_process(), whose choices these are), and for an orphaned FIN_WAIT_2
 * kept in the same small record.
 */
#include "internal.h"

void tw_send_ack(struct tern_stack *st, struct tern_tw *tw)
{
	tcp_send_raw(st, tw->h.laddr, tw->h.raddr, tw->h.lport, tw->h.rport, tw->snd_nxt,
		     tw->rcv_nxt, TERN_TH_ACK, tw->tn.user, NULL, -1);
}

static void tw_restart(struct tern_stack *st, struct tern_tw *tw)
{
	tw_arm(&st->wheel, &tw->tn,
	       st->now + 2 * st->set.msl_ms + (st->now_us % 1000 ? 1 : 0));
}

/* Linux's tcp_timewait_check_oow_rate_limit(): ACKs for out-of-window pure ACKs and SYNs at
 * most once per invalid_ratelimit (RFC 5961 §10); a segment with data or a FIN is always
 * answered. The record keeps the last time in 16 bits of milliseconds. */
static void tw_oow_ack(struct tern_stack *st, struct tern_tw *tw, const struct tern_tcp_seg *seg)
{
	const struct tern_seg_info *h = &seg->h;
	bool limited_kind = !(h->len || (h->flags & TERN_TH_FIN)) || (h->flags & TERN_TH_SYN);
	if (limited_kind) {
		if (tw->last_oow_ack) {
			uint16_t elapsed = (uint16_t)((uint16_t)st->now - tw->last_oow_ack);
			if (elapsed < st->set.invalid_ratelimit_ms)
				return;
		}
		tw->last_oow_ack = (uint16_t)st->now ? (uint16_t)st->now : 1;
	}
	tw_send_ack(st, tw);
}

bool tw_input(struct tern_stack *st, struct tern_tw *tw, const struct tern_tcp_seg *seg,
	      uint32_t *isn)
{
	const struct tern_seg_info *h = &seg->h;
	uint16_t f = h->flags;
	uint32_t end = h->seq + h->len + !!(f & TERN_TH_SYN) + !!(f & TERN_TH_FIN);

	if (tw->h.state == TERN_STATE_FIN_WAIT_2) {
		/* An orphan waiting for the peer's FIN: the checks of the full machine. */
		if (!tcp_in_window(h->seq, end, tw->rcv_nxt, tw->rcv_nxt + tw->tn.user)) {
			if (!(f & TERN_TH_RST))
				tw_oow_ack(st, tw, seg);
			return true;
		}
		if (f & TERN_TH_RST) {
			st->stats.tcp_rst_in++;
			tw_kill(st, tw);
			return true;
		}
		if ((f & TERN_TH_SYN) && seq_ge(h->seq, tw->rcv_nxt)) {
			tcp_send_reset_for(st, seg);
			tw_kill(st, tw);
			return true;
		}
		if (!(f & TERN_TH_ACK) || seq_le(end, tw->rcv_nxt) || end == h->seq)
			return true; /* a duplicate or a bare ACK */
		if (!(f & TERN_TH_FIN) || end != tw->rcv_nxt + 1) {
			/* New data after the application closed: reset (RFC 1122 §4.2.2.13). */
			st->stats.tcp_abort_on_data++;
			tcp_send_reset_for(st, seg);
			tw_kill(st, tw);
			return true;
		}
		/* The FIN: the real TIME_WAIT begins. */
		trace_state(st, &tw->h, TERN_STATE_FIN_WAIT_2, TERN_STATE_TIME_WAIT, -1);
		tw->h.state = TERN_STATE_TIME_WAIT;
		tw->rcv_nxt = end;
		tw_restart(st, tw);
		tw_send_ack(st, tw);
		return true;
	}

	/* TIME_WAIT proper. An in-window bare ACK or RST: RFC 1337's hazard; Linux (with
	 * tcp_rfc1337 = 0) lets the RST end TIME_WAIT, and a bare ACK restarts it. */
	if (h->seq == tw->rcv_nxt && (end == h->seq || (f & TERN_TH_RST))) {
		if (f & TERN_TH_RST) {
			st->stats.tcp_rst_in++;
			tw_kill(st, tw);
		} else {
			tw_restart(st, tw);
		}
		return true;
	}
	/* A new SYN with a sequence number above the old connection's may open a new
	 * incarnation at once (RFC 9293 §3.10.7.4 note, RFC 6191 without timestamps); its
	 * ISN continues past the old sequence space, as Linux's tw_isn. */
	if ((f & TERN_TH_SYN) && !(f & (TERN_TH_RST | TERN_TH_ACK)) && seq_gt(h->seq, tw->rcv_nxt)) {
		uint32_t n = tw->snd_nxt + 65535 + 2;
		*isn = n ? n : 1;
		return false;
	}
	if (!(f & TERN_TH_RST)) {
		/* Anything else, a retransmitted FIN above all: ACK it again and restart the
		 * 2*MSL wait (RFC 9293: "Restart the 2 MSL time-wait timeout"). */
		if (f & TERN_TH_ACK)
			tw_restart(st, tw);
		tw_oow_ack(st, tw, seg);
	}
	return true;
}
