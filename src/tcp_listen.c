/*
 * Listeners: the passive open (RFC 9293 §3.10.7.2), the half-open connections it creates,
 * and the accept queue bounded by the backlog.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

bool listen_has_room(const struct tern_stack *st, const struct tern_tcb *child)
{
	(void)st;
	const struct tern_tcb *l = child->parent;
	/* Linux's sk_acceptq_is_full() is "more than backlog", so backlog + 1 fit. */
	return l && l->acc_len <= l->backlog;
}

void listen_input(struct tern_stack *st, struct tern_tcb *l, const struct tern_tcp_seg *seg,
		  uint32_t isn)
{
	const struct tern_seg_info *h = &seg->h;
	if (h->flags & TERN_TH_RST)
		return; /* RFC 9293: an incoming RST in LISTEN is ignored */
	if (h->flags & TERN_TH_ACK) {
		/* Nothing was sent from LISTEN, so any ACK is bad: reset. */
		tcp_send_reset_for(st, seg);
		return;
	}
	if (!(h->flags & TERN_TH_SYN) || (h->flags & TERN_TH_FIN))
		return;
	if (l->syn_len >= st->set.max_syn_backlog) {
		st->stats.tcp_listen_drops++; /* SYN cookies will answer here (a later release) */
		return;
	}
	if (l->acc_len > l->backlog) {
		/* Linux drops SYNs while the accept queue is full: the client retries. */
		st->stats.tcp_listen_overflows++;
		st->stats.tcp_listen_drops++;
		return;
	}
	struct tern_tcb *c = tcb_new(st);
	if (!c) {
		st->stats.tcp_listen_drops++;
		return;
	}
	c->h.laddr = h->dst;
	c->h.raddr = h->src;
	c->h.lport = h->dport;
	c->h.rport = h->sport;
	c->h.state = TERN_STATE_LISTEN; /* so the trace shows LISTEN -> SYN_RCVD */
	c->tf = TF_PASSIVE | TF_USED |
		(l->tf & (TF_NODELAY | TF_KEEPALIVE | TF_REUSEADDR | TF_LINGER | TF_CORK));
	if (l->xo) {
		c->xo = malloc(sizeof(*c->xo));
		if (c->xo)
			*c->xo = *l->xo;
	}
	c->advmss = l->advmss; /* TCP_MAXSEG on the listener (Linux clamps the SYN-ACK's MSS) */
	c->h.flags = l->h.flags; /* the congestion control module */
	c->parent = l;
	c->irs = h->seq;
	c->rcv_nxt = h->seq + 1;
	c->rcv_wup = c->rcv_nxt;
	c->iss = isn ? isn : tcb_isn(st, c->h.laddr, c->h.lport, c->h.raddr, c->h.rport);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->snd_wnd = h->win; /* RFC 7323 §2.2: unscaled in a SYN */
	c->max_snd_wnd = h->win;
	c->snd_wl1 = h->seq;
	tcb_set_peer_mss(c, &h->opts);
	if (bind_add(st, c, c->h.lport) < 0) {
		tcb_free(st, c);
		st->stats.tcp_listen_drops++;
		return;
	}
	conn_insert(st, &c->h);
	c->tf |= TF_HASHED;
	l->syn_len++;
	st->stats.tcp_passive_opens++;
	tcb_set_state(st, c, TERN_STATE_SYN_RCVD);
	/* Data on a SYN is not taken (no TCP Fast Open); the SYN-ACK acknowledges the SYN. */
	tcp_output(st, c);
}

bool listen_child_established(struct tern_stack *st, struct tern_tcb *c)
{
	struct tern_tcb *l = c->parent;
	if (!l)
		return false;
	l->syn_len--;
	c->tf |= TF_ACCEPTQ;
	c->qnext = NULL;
	if (l->acc_tail)
		l->acc_tail->qnext = c;
	else
		l->acc_head = c;
	l->acc_tail = c;
	l->acc_len++;
	stack_notify(st, l);
	return true;
}

/* A child ends before accept(): one fewer half-open connection. A child already queued
 * stays in the queue, closed, and accept() hands it over as Linux does. */
void listen_child_gone(struct tern_stack *st, struct tern_tcb *c)
{
	(void)st;
	struct tern_tcb *l = c->parent;
	if (!(c->tf & TF_ACCEPTQ)) {
		if (l && l->syn_len)
			l->syn_len--;
		c->parent = NULL;
	}
}

void listen_close(struct tern_stack *st, struct tern_tcb *l)
{
	/* Queued connections the application never accepted are reset (Linux's
	 * inet_csk_listen_stop); half-open ones just go. */
	struct tern_tcb *c = l->acc_head;
	l->acc_head = l->acc_tail = NULL;
	l->acc_len = 0;
	while (c) {
		struct tern_tcb *next = c->qnext;
		c->tf &= ~TF_ACCEPTQ;
		c->parent = NULL;
		c->qnext = NULL;
		int s = c->h.state;
		if (s == TERN_STATE_ESTABLISHED || s == TERN_STATE_CLOSE_WAIT)
			tcp_send_active_reset(st, c);
		if (s == TERN_STATE_CLOSED)
			tcb_free(st, c);
		else
			tcb_done(st, c);
		c = next;
	}
	if (l->syn_len) {
		for (uint32_t i = 0; i <= st->cmask && l->syn_len; i++) {
			struct conn_hdr *h = st->ctab[i];
			while (h) {
				struct conn_hdr *next = h->hnext;
				struct tern_tcb *t = (struct tern_tcb *)h;
				if (h->kind == CK_TCB && t->parent == l)
					tcb_done(st, t);
				h = next;
			}
		}
	}
	listener_remove(st, l);
}
