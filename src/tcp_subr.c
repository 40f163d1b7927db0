/* The TCB's life: creation, state changes, the end of a connection, TIME_WAIT hand-over. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

_Static_assert(offsetof(struct tern_tcb, tn) == offsetof(struct tern_tw, tn),
	       "timer_fire finds the owner's header at the same offset in both");
_Static_assert(sizeof(struct tern_tw) <= 64, "a TIME_WAIT record fits in 64 bytes");
_Static_assert(sizeof(struct tern_tcb) <= 256, "an idle TCB fits in 256 bytes");

struct tern_tcb *tcb_new(struct tern_stack *st)
{
	if (st->n_tcb >= st->set.max_connections) {
		st->stats.mem_failures++;
		return NULL;
	}
	struct tern_tcb *t = calloc(1, sizeof(*t));
	if (!t) {
		st->stats.mem_failures++;
		return NULL;
	}
	t->h.kind = CK_TCB;
	t->h.state = TERN_STATE_CLOSED;
	tw_node_init(&t->tn);
	t->fd = -1;
	t->h.flags = (uint8_t)st->set.congestion_control;
	t->rto_ms = st->set.rto_initial_ms;
	t->advmss = (uint16_t)(st->set.mtu - 40);
	t->mss = TERN_DEFAULT_MSS;
	t->cwnd = st->set.initial_cwnd * TERN_DEFAULT_MSS; /* set again once established */
	t->ssthresh = UINT32_MAX;
	t->last_rcv = st->now;
	st->n_tcb++;
	return t;
}

void tcb_free(struct tern_stack *st, struct tern_tcb *tcb)
{
	stack_batch_remove(st, tcb);
	tw_cancel(&st->wheel, &tcb->tn);
	bind_del(st, tcb);
	ring_put(st, tcb->sndq);
	ring_put(st, tcb->rcvq);
	free(tcb->xo);
	st->n_tcb--;
	free(tcb);
}

void trace_state(struct tern_stack *st, const struct conn_hdr *h, int from, int to, int fd)
{
	if (!stack_tracing(st))
		return;
	struct tern_trace ev = {.kind = TERN_TRACE_STATE, .fd = fd};
	ev.u.state.from = from;
	ev.u.state.to = to;
	ev.u.state.laddr = h->laddr;
	ev.u.state.raddr = h->raddr;
	ev.u.state.lport = h->lport;
	ev.u.state.rport = h->rport;
	stack_trace(st, &ev);
}

void tcb_set_state(struct tern_stack *st, struct tern_tcb *tcb, int state)
{
	int from = tcb->h.state;
	if (from == state)
		return;
	tcb->h.state = (uint8_t)state;
	trace_state(st, &tcb->h, from, state, tcb->fd);
	stack_notify(st, tcb);
}

/* Take the TCB out of the 4-tuple table, its port and the timer wheel. */
static void tcb_unlink(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb_timer_clear_all(st, tcb);
	if (tcb->tf & TF_HASHED) {
		conn_remove(st, &tcb->h);
		tcb->tf &= ~TF_HASHED;
	}
	/* An explicitly bound socket keeps its port while the application holds it, as
	 * Linux does (SOCK_BINDPORT_LOCK); a port taken by connect() is given back. */
	if (!((tcb->tf & TF_BOUND) && tcb->fd >= 0))
		bind_del(st, tcb);
	if (tcb->parent)
		listen_child_gone(st, tcb);
	if (tcb->tf & TF_ORPHAN) {
		tcb->tf &= ~TF_ORPHAN;
		st->n_orphans--;
	}
	ring_put(st, tcb->sndq);
	tcb->sndq = NULL;
}

void tcb_done(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb_set_state(st, tcb, TERN_STATE_CLOSED);
	tcb_unlink(st, tcb);
	if (tcb->fd < 0 && !(tcb->tf & TF_ACCEPTQ))
		tcb_free(st, tcb);
	else
		stack_notify(st, tcb);
}

void tcb_drop(struct tern_stack *st, struct tern_tcb *tcb, int err)
{
	if (err && (tcb->fd >= 0 || (tcb->tf & TF_ACCEPTQ))) {
		tcb->err = (uint8_t)err;
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_ERROR, .fd = tcb->fd};
			ev.u.error = err;
			stack_trace(st, &ev);
		}
	}
	tcb_done(st, tcb);
}

void tcb_time_wait(struct tern_stack *st, struct tern_tcb *tcb, int state, uint32_t timeout_ms)
{
	if (state == TERN_STATE_TIME_WAIT)
		tcb_set_state(st, tcb, TERN_STATE_TIME_WAIT);
	struct tern_tw *tw = NULL;
	if (st->n_tw < st->set.max_tw_buckets)
		tw = malloc(sizeof(*tw));
	if (!tw) {
		/* Linux: "time wait bucket table overflow": the connection just ends. */
		st->stats.tcp_tw_overflow++;
		tcb_done(st, tcb);
		return;
	}
	memset(tw, 0, sizeof(*tw));
	tw->h = tcb->h;
	tw->h.hnext = NULL;
	tw->h.kind = CK_TW;
	tw->h.state = (uint8_t)state;
	tw->h.flags = (tcb->tf & TF_REUSEADDR) ? TWF_REUSE : 0;
	tw->snd_nxt = tcb->snd_max;
	tw->rcv_nxt = tcb->rcv_nxt;
	tw_node_init(&tw->tn);
	tw->tn.user = (uint16_t)TERN_MIN(tcp_select_window(st, tcb), TERN_MAX_WINDOW);
	uint16_t port = tcb->h.lport;
	bool reuse = tcb->tf & TF_REUSEADDR;

	/* The record takes over the tuple; the TCB leaves quietly (an application still
	 * holding it sees CLOSED, as a Linux socket does once its timewait sock exists). */
	tcb_unlink(st, tcb);
	tcb->h.state = TERN_STATE_CLOSED;
	conn_insert(st, &tw->h);
	bind_tw_add(st, port, reuse);
	st->n_tw++;
	if (!timeout_ms)
		timeout_ms = 2 * st->set.msl_ms;
	tw_arm(&st->wheel, &tw->tn, st->now + timeout_ms + (st->now_us % 1000 ? 1 : 0));
	if (tcb->fd < 0 && !(tcb->tf & TF_ACCEPTQ))
		tcb_free(st, tcb);
	else
		stack_notify(st, tcb);
}

void tw_kill(struct tern_stack *st, struct tern_tw *tw)
{
	trace_state(st, &tw->h, tw->h.state, TERN_STATE_CLOSED, -1);
	tw_cancel(&st->wheel, &tw->tn);
	conn_remove(st, &tw->h);
	bind_tw_del(st, tw->h.lport, tw->h.flags & TWF_REUSE);
	st->n_tw--;
	free(tw);
}

void tw_expire(struct tern_stack *st, struct tern_tw *tw) { tw_kill(st, tw); }

/*
 * RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
 * timer ticking every 4 microseconds and F a keyed hash (SipHash, as Linux uses). The hash
 * keeps ISNs of different connections unpredictable; the clock keeps successive incarnations
 * of one 4-tuple moving forward, so old duplicates fall outside the new window.
 */
uint32_t tcb_isn(struct tern_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
		 uint16_t rport)
{
	uint8_t in[12];
	wr32(in, laddr);
	wr32(in + 4, raddr);
	wr16(in + 8, lport);
	wr16(in + 10, rport);
	uint32_t f = (uint32_t)siphash24(st->isn_key, in, sizeof(in));
	return f + (uint32_t)(st->now_us >> 2);
}

/* RFC 9293 §3.7.1: without an MSS option the peer takes 536. Never above our own MSS or
 * TCP_MAXSEG, never below 48 (Linux's tcp_min_snd_mss, a guard against tiny-MSS floods). */
void tcb_set_peer_mss(struct tern_tcb *tcb, const struct tern_tcp_opts *o)
{
	uint32_t mss = (o->has & TERN_OPT_MSS) && o->mss ? o->mss : TERN_DEFAULT_MSS; /* Linux ignores MSS 0 */
	if (mss > tcb->advmss)
		mss = tcb->advmss;
	if (tcb->xo && tcb->xo->maxseg && mss > tcb->xo->maxseg)
		mss = tcb->xo->maxseg;
	if (mss < TERN_MIN_SND_MSS)
		mss = TERN_MIN_SND_MSS;
	tcb->mss = (uint16_t)mss;
}

struct tcb_opts *tcb_opts(struct tcb_opts **xo)
{
	if (!*xo)
		*xo = calloc(1, sizeof(**xo));
	return *xo;
}

uint32_t tcb_keepidle(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return tcb->xo && tcb->xo->keepidle_ms ? tcb->xo->keepidle_ms : st->set.keepalive_time_ms;
}

uint32_t tcb_keepintvl(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return tcb->xo && tcb->xo->keepintvl_ms ? tcb->xo->keepintvl_ms
						 : st->set.keepalive_intvl_ms;
}

uint32_t tcb_keepcnt(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return tcb->xo && tcb->xo->keepcnt ? tcb->xo->keepcnt : st->set.keepalive_probes;
}

uint32_t tcb_syn_retries(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return tcb->xo && tcb->xo->syn_retries ? tcb->xo->syn_retries : st->set.syn_retries;
}

/* Linux's tcp_fin_time(): the per-socket TCP_LINGER2 or fin_timeout, never under 3.5 RTO. */
int32_t tcb_fin_timeout(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	int32_t t = tcb->xo && tcb->xo->linger2_ms ? tcb->xo->linger2_ms
						   : (int32_t)st->set.fin_timeout_ms;
	if (t < 0)
		return t;
	int32_t floor = (int32_t)((tcb->rto_ms << 2) - (tcb->rto_ms >> 1));
	return t < floor ? floor : t;
}

uint32_t tcb_snd_end(const struct tern_tcb *tcb)
{
	uint32_t start = tcb->snd_una + ((tcb->tf & TF_SYN_ACKED) ? 0 : 1);
	return start + ring_len(tcb->sndq);
}

/* Readiness as Linux's tcp_poll() reports it. */
uint32_t tcb_events(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	uint32_t m = 0;
	int s = tcb->h.state;
	if (s == TERN_STATE_LISTEN)
		return tcb->acc_head ? TERN_EV_IN : 0;
	/* A connection that has ended counts as shut down both ways (Linux's tcp_done()); a
	 * socket never connected is CLOSED without being shut down. */
	bool ended = s == TERN_STATE_CLOSED && (tcb->tf & TF_USED);
	bool rcv_shut = ended || (tcb->tf & (TF_FIN_RCVD | TF_SHUT_RD));
	bool snd_shut = ended || (tcb->tf & TF_SHUT_WR);
	if ((rcv_shut && snd_shut) || s == TERN_STATE_CLOSED)
		m |= TERN_EV_HUP;
	if (rcv_shut)
		m |= TERN_EV_IN | TERN_EV_RDHUP;
	if (s != TERN_STATE_SYN_SENT && s != TERN_STATE_SYN_RCVD) {
		if (ring_len(tcb->rcvq))
			m |= TERN_EV_IN;
		if (!snd_shut) {
			if (ring_len(tcb->sndq) < tcb_sndbuf(st, tcb))
				m |= TERN_EV_OUT;
		} else {
			m |= TERN_EV_OUT;
		}
	}
	if (tcb->err)
		m |= TERN_EV_ERR;
	/* Urgent data has arrived and is still ahead of the reader (Linux's EPOLLPRI). */
	if ((tcb->tf & TF_URG_SEEN) && tcb->xo && seq_lt(tcb->xo->rcv_up, tcb->rcv_nxt))
		m |= TERN_EV_PRI;
	return m;
}
