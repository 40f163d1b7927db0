/*
 * TCP timers. Each TCB owns one wheel node armed at its earliest deadline; the deadlines of
 * the three timer kinds live in the TCB. Pushing a deadline later (the retransmission timer
 * restarted by every ACK) touches no wheel at all: the node fires early, finds nothing due,
 * and moves itself. Only an earlier deadline moves the node at once.
 */
#include "internal.h"
#include "cc.h"

static uint32_t deadline_after(const struct tern_stack *st, uint32_t ms)
{
	/* Round up to the next whole tick so that a timer never fires early. */
	if (ms > TW_MAX_DELTA - 1)
		ms = TW_MAX_DELTA - 1;
	return st->now + ms + (st->now_us % 1000 ? 1 : 0);
}

static void node_arm(struct tern_stack *st, struct tern_tcb *tcb, uint32_t when)
{
	if (!tw_armed(&tcb->tn) || tw_tick_before(when, tcb->tn.expires))
		tw_arm(&st->wheel, &tcb->tn, when);
}

void tcb_timer_set(struct tern_stack *st, struct tern_tcb *tcb, enum tcb_timer k, uint32_t ms)
{
	uint32_t when = deadline_after(st, ms);
	tcb->t_exp[k] = when;
	tcb->timers |= (uint8_t)(1u << k);
	node_arm(st, tcb, when);
}

void tcb_timer_clear(struct tern_stack *st, struct tern_tcb *tcb, enum tcb_timer k)
{
	tcb->timers &= (uint8_t)~(1u << k);
	if (!tcb->timers)
		tw_cancel(&st->wheel, &tcb->tn);
}

void tcb_timer_clear_all(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb->timers = 0;
	tw_cancel(&st->wheel, &tcb->tn);
}

/* ---- RFC 6298 ---- */

static uint32_t rto_from_estimate(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	if (!tcb->srtt_us)
		return st->set.rto_initial_ms;
	/* RTO = SRTT + max(G, K*RTTVAR) (RFC 6298 §2.3), with G = rto_min: this is the
	 * formula Linux uses (srtt + max(rttvar, rto_min)), so short paths get RTOs just
	 * above rto_min rather than the RFC's conservative 1 s floor (§2.4 "SHOULD"). */
	uint32_t var = 4 * tcb->rttvar_us;
	uint32_t g = st->set.rto_min_ms * 1000;
	uint64_t rto_us = (uint64_t)tcb->srtt_us + (var > g ? var : g);
	uint64_t rto = (rto_us + 999) / 1000;
	if (rto < st->set.rto_min_ms)
		rto = st->set.rto_min_ms;
	if (rto > st->set.rto_max_ms)
		rto = st->set.rto_max_ms;
	return (uint32_t)rto;
}

void tcb_rtt_sample(struct tern_stack *st, struct tern_tcb *tcb, uint32_t r)
{
	if (r == 0)
		r = 1;
	if (!tcb->srtt_us) {
		/* §2.2: the first measurement */
		tcb->srtt_us = r;
		tcb->rttvar_us = r / 2;
	} else {
		/* §2.3: beta = 1/4, alpha = 1/8; RTTVAR first, with the old SRTT */
		uint32_t delta = tcb->srtt_us > r ? tcb->srtt_us - r : r - tcb->srtt_us;
		tcb->rttvar_us = tcb->rttvar_us - tcb->rttvar_us / 4 + delta / 4;
		tcb->srtt_us = tcb->srtt_us - tcb->srtt_us / 8 + r / 8;
		if (!tcb->srtt_us)
			tcb->srtt_us = 1;
	}
	tcb->rto_ms = rto_from_estimate(st, tcb);
}

void tcb_rto_reset(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb->backoff = 0;
	tcb->rto_ms = rto_from_estimate(st, tcb);
}

/*
 * Linux's tcp_model_timeout(): how long `boundary` retransmissions take when the timeout
 * starts at rto_base and doubles up to rto_max. The abort decision compares this with the
 * time since the first retransmitted segment was sent, so the limit is a duration (924.6 s
 * for retries2 = 15) whatever the RTO actually was.
 */
static uint64_t model_timeout_ms(const struct tern_stack *st, uint32_t boundary, uint32_t base)
{
	uint32_t thresh = 0;
	while (thresh < 31 && ((uint64_t)base << (thresh + 1)) <= st->set.rto_max_ms)
		thresh++;
	if (boundary <= thresh)
		return (((uint64_t)2 << boundary) - 1) * base;
	return (((uint64_t)2 << thresh) - 1) * base + (uint64_t)(boundary - thresh) * st->set.rto_max_ms;
}

static bool retransmits_timed_out(struct tern_stack *st, struct tern_tcb *tcb, uint32_t boundary)
{
	if (!tcb->retransmits)
		return false;
	uint64_t limit;
	if (tcb->xo && tcb->xo->user_timeout_ms)
		limit = tcb->xo->user_timeout_ms;
	else
		limit = model_timeout_ms(st, boundary, st->set.rto_min_ms);
	uint32_t elapsed = st->now - tcb->retrans_stamp;
	return elapsed >= limit;
}

/* With TCP_USER_TIMEOUT the next retransmission timer ends no later than the user timeout
 * does, so the abort comes on time rather than at the next backed-off RTO (Linux's
 * tcp_clamp_rto_to_user_timeout). */
static uint32_t rto_within_user_timeout(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	if (!tcb->xo || !tcb->xo->user_timeout_ms)
		return tcb->rto_ms;
	int32_t remaining = (int32_t)(tcb->xo->user_timeout_ms - (st->now - tcb->retrans_stamp));
	if (remaining <= 0)
		return 1;
	return TERN_MIN(tcb->rto_ms, (uint32_t)remaining);
}

/* Returns false when the connection ended (the TCB may be freed). */
static bool rtx_timeout(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	if (s == TERN_STATE_SYN_SENT || s == TERN_STATE_SYN_RCVD) {
		/* Counted, not timed (Linux: icsk_retransmits >= retry_until): SYNs at 0, 1,
		 * 3, 7, 15, 31 s and failure at 63 s with five retries. */
		uint32_t limit = (tcb->tf & TF_PASSIVE) ? st->set.synack_retries
							: tcb_syn_retries(st, tcb);
		if (tcb->retransmits >= limit) {
			st->stats.tcp_timeouts++;
			if (tcb->tf & TF_PASSIVE) {
				tcb_done(st, tcb); /* a half-open connection just goes */
			} else {
				st->stats.tcp_attempt_fails++;
				tcb_drop(st, tcb, ETIMEDOUT);
			}
			return false;
		}
		tcb->retransmits++;
		tcb->backoff++;
		tcb->tf |= TF_SYN_RTX;
		tcb->tf &= ~TF_RTT_VALID;
		tcb->rto_ms = TERN_MIN(tcb->rto_ms * 2, st->set.rto_max_ms);
		tcp_retransmit(st, tcb);
		tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
		return true;
	}
	uint32_t boundary = st->set.retries2;
	if (tcb->tf & TF_ORPHAN) {
		/* Linux's tcp_orphan_retries(): 0 means 8 while the RTO still grows. */
		boundary = st->set.orphan_retries;
		if (!boundary && tcb->rto_ms < st->set.rto_max_ms)
			boundary = 8;
	}
	if (tcb->tf & TF_PERSIST) {
		/* The persist timer (Linux's tcp_probe_timer): probes continue for as long as
		 * the peer answers them, since every answer resets the count (RFC 1122
		 * §4.2.2.17); a peer that stays silent for `boundary` probes is given up. */
		bool timed_out = tcb->probes >= boundary;
		if (tcb->xo && tcb->xo->user_timeout_ms) {
			/* A user timeout counts from the first probe, answered or not, until the
			 * window opens (Linux's icsk_probes_tstamp). */
			struct tcb_opts *xo = tcb->xo;
			if (!xo->probing) {
				xo->probing = true;
				xo->probes_tstamp = st->now;
			} else if ((uint32_t)(st->now - xo->probes_tstamp) >= xo->user_timeout_ms) {
				timed_out = true;
			}
		}
		if (timed_out) {
			st->stats.tcp_timeouts++;
			tcb_drop(st, tcb, ETIMEDOUT);
			return false;
		}
		tcb->probes++;
		if (tcb->backoff < st->set.retries2)
			tcb->backoff++;
		tcb->tf &= ~TF_PERSIST;
		tcp_persist_probe(st, tcb);
		if (tcb->snd_una != tcb->snd_max) {
			/* The probe carried data: the retransmission timer takes over. */
			tcb->probes = 0;
			tcb->backoff = 0;
			tcb_timer_set(st, tcb, T_RTX, tcb->rto_ms);
		} else {
			tcp_persist_arm(st, tcb);
		}
		return true;
	}
	if (tcb->snd_una == tcb->snd_max)
		return true; /* everything was acknowledged meanwhile */
	if (tcb->retransmits == 0)
		tcb->retrans_stamp = st->now - tcb->rto_ms; /* when this attempt began */
	if (!tcb->snd_wnd && !(tcb->tf & TF_ORPHAN)) {
		/* The peer shrank its window to zero: these retransmissions are window probes
		 * and must not time out a peer that still answers; only one silent for
		 * rto_max gives up (Linux's tcp_retransmit_timer; RFC 9293 §3.8.6.1). A user
		 * timeout bounds it whatever the peer says: answers that keep the window shut
		 * are no progress (Linux's tcp_rtx_probe0_timed_out). */
		uint32_t ut = tcb->xo ? tcb->xo->user_timeout_ms : 0;
		uint32_t silence = st->now - tcb->last_rcv, limit = st->set.rto_max_ms;
		if (ut)
			limit = TERN_MIN(limit, ut);
		if ((ut && (uint32_t)(st->now - tcb->retrans_stamp) > ut) || silence > limit) {
			st->stats.tcp_timeouts++;
			tcb_drop(st, tcb, ETIMEDOUT);
			return false;
		}
	} else if (retransmits_timed_out(st, tcb, boundary)) {
		st->stats.tcp_timeouts++;
		if (tcb->h.state == TERN_STATE_ESTABLISHED || tcb->h.state == TERN_STATE_CLOSE_WAIT)
			st->stats.tcp_estab_resets++;
		tcb_drop(st, tcb, ETIMEDOUT);
		return false;
	}
	st->stats.tcp_rtos++;
	/* RFC 5681 §3.1: ssthresh from equation (4) when a segment first times out (not again
	 * while the same one backs off), cwnd the loss window; recovery ends, and duplicate
	 * ACKs for what was sent before now must not start another (RFC 6582 "recover"). */
	if (tcb->retransmits == 0)
		tcb->ssthresh = tcb_cc(tcb)->ssthresh(st, tcb);
	tcb_cc(tcb)->on_rto(st, tcb);
	tcb->tf &= ~TF_RECOVERY;
	tcb->dupacks = 0;
	tcb->snd_recover = tcb->snd_max;
	/* Saturating: a long TCP_USER_TIMEOUT at rto_max outlasts 255 timeouts, and a count
	 * that wrapped to 0 would restart retrans_stamp above, so the connection would
	 * retransmit for ever instead of timing out (found by tests/fuzz). */
	if (tcb->retransmits < UINT8_MAX)
		tcb->retransmits++;
	if (tcb->backoff < UINT8_MAX)
		tcb->backoff++;
	tcb->tf &= ~TF_RTT_VALID; /* Karn: no sample from a retransmitted segment */
	tcb->rto_ms = TERN_MIN(tcb->rto_ms * 2, st->set.rto_max_ms);
	tcp_retransmit(st, tcb);
	tcb_timer_set(st, tcb, T_RTX, rto_within_user_timeout(st, tcb));
	return true;
}

/* Linux's tcp_delack_timer_handler(): the delayed ACK goes out. If the connection was not
 * interactive, the timeout was too short for the peer's pace: double ato (up to the RTO);
 * if it was, leave interactive mode and start again from delack_min. */
static void dack_timeout(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & (TF_DACK | TF_ACKNOW)))
		return;
	uint32_t ato = tcb->tn.user ? tcb->tn.user : st->set.delack_min_ms;
	if (!(tcb->tf & TF_PINGPONG)) {
		ato = TERN_MIN(TERN_MIN(ato * 2, tcb->rto_ms), st->set.delack_max_ms);
	} else {
		tcb->tf &= ~TF_PINGPONG;
		ato = st->set.delack_min_ms;
	}
	tcb->tn.user = (uint16_t)TERN_MAX(ato, st->set.delack_min_ms);
	st->stats.tcp_delayed_acks++;
	tcp_send_ack(st, tcb);
}

/* Keepalive (RFC 1122 §4.2.3.6, Linux's tcp_keepalive_timer): after keepidle without a
 * segment from the peer, a probe every keepintvl; keepcnt unanswered probes (or, with
 * TCP_USER_TIMEOUT, that long without an answer) reset the connection with ETIMEDOUT. The
 * timer is not moved per segment: when it fires it measures the silence since the last
 * segment (last_rcv) and sleeps again for whatever of keepidle is left. */
static bool keep_timeout(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	if (!(tcb->tf & TF_KEEPALIVE) || s == TERN_STATE_CLOSED || s == TERN_STATE_LISTEN ||
	    s == TERN_STATE_SYN_SENT || s == TERN_STATE_SYN_RCVD)
		return true;
	uint32_t keepidle = tcb_keepidle(st, tcb);
	if (tcb->snd_una != tcb->snd_max || ring_len(tcb->sndq)) {
		/* Data is in flight or waiting: the retransmission or persist timer watches
		 * the peer; look again a whole idle period from now. */
		tcb_timer_set(st, tcb, T_KEEP, keepidle);
		return true;
	}
	uint32_t idle = st->now - tcb->last_rcv;
	if (idle < keepidle) {
		tcb_timer_set(st, tcb, T_KEEP, keepidle - idle); /* the peer spoke meanwhile */
		return true;
	}
	uint32_t ut = tcb->xo ? tcb->xo->user_timeout_ms : 0;
	if ((ut && idle >= ut && tcb->probes) || (!ut && tcb->probes >= tcb_keepcnt(st, tcb))) {
		st->stats.tcp_timeouts++;
		st->stats.tcp_keepalive_drops++;
		tcp_send_active_reset(st, tcb);
		if (s == TERN_STATE_ESTABLISHED || s == TERN_STATE_CLOSE_WAIT)
			st->stats.tcp_estab_resets++;
		tcb_drop(st, tcb, ETIMEDOUT);
		return false;
	}
	st->stats.tcp_keepalive_probes++;
	tcp_send_probe(st, tcb);
	if (tcb->probes < 255)
		tcb->probes++;
	tcb_timer_set(st, tcb, T_KEEP, tcb_keepintvl(st, tcb));
	return true;
}

/* The wheel calls this for TCB and TIME_WAIT nodes alike; the header says which. */
void timer_fire(void *ctx, struct tw_node *n)
{
	struct tern_stack *st = ctx;
	struct conn_hdr *h = (struct conn_hdr *)((char *)n - offsetof(struct tern_tcb, tn));
	if (h->kind == CK_TW) {
		tw_expire(st, (struct tern_tw *)h);
		return;
	}
	struct tern_tcb *tcb = (struct tern_tcb *)h;
	for (int k = 0; k < T_COUNT; k++) {
		if (!tcb_timer_armed(tcb, (enum tcb_timer)k) ||
		    tick_before(st->now, tcb->t_exp[k]))
			continue;
		tcb->timers &= (uint8_t)~(1u << k);
		bool open = true;
		switch (k) {
		case T_RTX: open = rtx_timeout(st, tcb); break;
		case T_DACK: dack_timeout(st, tcb); break;
		case T_KEEP: open = keep_timeout(st, tcb); break;
		}
		/* An ended connection's TCB may be freed already: touch nothing more. */
		if (!open)
			return;
	}
	if (!tcb->timers)
		return;
	uint32_t first = 0;
	bool any = false;
	for (int k = 0; k < T_COUNT; k++) {
		if (!tcb_timer_armed(tcb, (enum tcb_timer)k))
			continue;
		uint32_t d = tcb->t_exp[k];
		if (!any || tw_tick_before(d, first))
			first = d;
		any = true;
	}
	node_arm(st, tcb, first);
}

/* SO_KEEPALIVE on an open connection: the first look comes keepidle from now (Linux's
 * tcp_set_keepalive). Off: stop. */
void tcb_keepalive_reset(struct tern_stack *st, struct tern_tcb *tcb)
{
	int s = tcb->h.state;
	bool on = (tcb->tf & TF_KEEPALIVE) && s != TERN_STATE_CLOSED && s != TERN_STATE_LISTEN &&
		  s != TERN_STATE_SYN_SENT && s != TERN_STATE_SYN_RCVD;
	if (!on) {
		if (tcb_timer_armed(tcb, T_KEEP))
			tcb_timer_clear(st, tcb, T_KEEP);
		return;
	}
	tcb->probes = 0;
	tcb_timer_set(st, tcb, T_KEEP, tcb_keepidle(st, tcb));
}

/* TCP_KEEPIDLE changed on a watched connection: the next look comes when the new idle time
 * has passed since the last segment, or now if it already has (Linux's
 * tcp_sock_set_keepidle_locked). */
void tcb_keepidle_changed(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!tcb_timer_armed(tcb, T_KEEP))
		return;
	uint32_t idle = st->now - tcb->last_rcv, keepidle = tcb_keepidle(st, tcb);
	tcb_timer_set(st, tcb, T_KEEP, keepidle > idle ? keepidle - idle : 0);
}
