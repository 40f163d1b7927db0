/* The stack instance: creation, the IPv4 input and output paths, time, readiness events. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct tern_stack *tern_stack_new(const struct tern_settings *settings, uint64_t now_us)
{
	struct tern_stack *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	if (settings)
		st->set = *settings;
	else
		tern_settings_default(&st->set);
	if (st->set.port_range_hi < st->set.port_range_lo)
		st->set.port_range_hi = st->set.port_range_lo;
	st->now_us = now_us;
	st->now = (uint32_t)(now_us / 1000);
	rng_seed(&st->rng, st->set.seed);
	for (int i = 0; i < 16; i += 8) {
		uint64_t a = rng_next(&st->rng), b = rng_next(&st->rng);
		memcpy(st->isn_key + i, &a, 8);
		memcpy(st->port_key + i, &b, 8);
	}
	st->hash_key[0] = rng_next(&st->rng);
	st->hash_key[1] = rng_next(&st->rng);
	st->ip_id = (uint16_t)rng_next(&st->rng);
	st->cmask = 255;
	st->lmask = 63;
	st->bmask = 63;
	st->ctab = calloc(st->cmask + 1, sizeof(*st->ctab));
	st->ltab = calloc(st->lmask + 1, sizeof(*st->ltab));
	st->btab = calloc(st->bmask + 1, sizeof(*st->btab));
	if (!st->ctab || !st->ltab || !st->btab) {
		tern_stack_free(st);
		return NULL;
	}
	tw_init(&st->wheel, st->now);
	return st;
}

static void tcb_release(struct tern_stack *st, struct tern_tcb *t)
{
	ring_put(st, t->sndq);
	ring_put(st, t->rcvq);
	free(t->xo);
	free(t);
}

void tern_stack_free(struct tern_stack *st)
{
	if (!st)
		return;
	/* Every TCB is reachable from a descriptor, the 4-tuple table, or (once reset before
	 * accept()) only from its listener's accept queue; TIME_WAIT records only from the
	 * table. Free each exactly once, queues first while everything is still alive. */
	for (uint32_t fd = 0; fd < st->fd_cap; fd++) {
		struct tern_tcb *t = st->fds[fd];
		if (!t || t->h.state != TERN_STATE_LISTEN)
			continue;
		for (struct tern_tcb *c = t->acc_head, *nx; c; c = nx) {
			nx = c->qnext;
			if (!(c->tf & TF_HASHED))
				tcb_release(st, c);
		}
	}
	for (uint32_t i = 0; st->ctab && i <= st->cmask; i++) {
		struct conn_hdr *h = st->ctab[i];
		while (h) {
			struct conn_hdr *next = h->hnext;
			if (h->kind == CK_TW)
				free(h);
			else if (((struct tern_tcb *)h)->fd < 0)
				tcb_release(st, (struct tern_tcb *)h);
			h = next;
		}
	}
	for (uint32_t fd = 0; fd < st->fd_cap; fd++)
		if (st->fds[fd])
			tcb_release(st, st->fds[fd]);
	for (uint32_t i = 0; st->btab && i <= st->bmask; i++) {
		struct bind_bucket *b = st->btab[i];
		while (b) {
			struct bind_bucket *next = b->next;
			free(b);
			b = next;
		}
	}
	for (int i = 0; i < 2; i++)
		free(st->ring_cache[i]);
	free(st->ctab);
	free(st->ltab);
	free(st->btab);
	free(st->fds);
	free(st->fd_used);
	free(st->evq);
	free(st->batchq);
	free(st);
}

void tern_stack_set_link(struct tern_stack *st, const struct tern_link *link)
{
	if (link)
		st->link = *link;
	else
		memset(&st->link, 0, sizeof(st->link));
}

int tern_stack_add_addr(struct tern_stack *st, uint32_t addr)
{
	if (addr == 0)
		return -EINVAL;
	if (stack_is_local(st, addr))
		return 0;
	if (st->naddrs >= TERN_MAX_ADDRS)
		return -ENOBUFS;
	st->addrs[st->naddrs++] = addr;
	return 0;
}

bool stack_is_local(const struct tern_stack *st, uint32_t addr)
{
	for (unsigned i = 0; i < st->naddrs; i++)
		if (st->addrs[i] == addr)
			return true;
	return false;
}

uint32_t stack_source_addr(const struct tern_stack *st, uint32_t dst)
{
	if (stack_is_local(st, dst))
		return dst; /* talking to ourselves */
	return st->naddrs ? st->addrs[0] : 0;
}

uint64_t tern_stack_now(const struct tern_stack *st) { return st->now_us; }
const struct tern_settings *tern_stack_settings(const struct tern_stack *st) { return &st->set; }
const struct tern_stats *tern_stack_stats(const struct tern_stack *st) { return &st->stats; }

void tern_stack_set_trace(struct tern_stack *st, tern_trace_fn fn, void *user)
{
	st->trace = fn;
	st->trace_user = user;
}

void stack_trace(struct tern_stack *st, struct tern_trace *ev)
{
	if (!st->trace)
		return;
	ev->t_us = st->now_us;
	st->trace(st->trace_user, ev);
}

static void clock_to(struct tern_stack *st, uint64_t now_us)
{
	if (now_us > st->now_us) {
		st->now_us = now_us;
		st->now = (uint32_t)(now_us / 1000);
	}
}

void tern_stack_poll(struct tern_stack *st, uint64_t now_us)
{
	clock_to(st, now_us);
	if (!tw_nothing_due(&st->wheel, st->now))
		tw_advance(&st->wheel, st->now, timer_fire, st);
}

uint64_t tern_stack_next_timer(const struct tern_stack *st)
{
	int ok;
	uint32_t next = tw_next(&st->wheel, &ok);
	if (!ok)
		return TERN_TIME_NEVER;
	if (!tick_before(st->now, next))
		return st->now_us;
	uint64_t tick_start = st->now_us - st->now_us % 1000;
	return tick_start + (uint64_t)(uint32_t)(next - st->now) * 1000;
}

/* ---- IPv4 ---- */

void tern_stack_input(struct tern_stack *st, const void *pkt, size_t len, uint64_t now_us)
{
	struct tern_ip4 ip;
	clock_to(st, now_us);
	/* Timers due before this packet fire first, so events keep their order. */
	if (!tw_nothing_due(&st->wheel, st->now))
		tw_advance(&st->wheel, st->now, timer_fire, st);
	st->stats.ip_in++;
	int rc = tern_ip4_parse(pkt, len, &ip);
	if (rc != TERN_IP4_OK) {
		const char *why;
		switch (rc) {
		case TERN_IP4_CSUM:
			st->stats.ip_bad_checksum++;
			why = "ip checksum";
			break;
		case TERN_IP4_FRAG:
			st->stats.ip_fragments++;
			why = "ip fragment";
			break;
		default:
			st->stats.ip_bad_header++;
			why = "ip header";
			break;
		}
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = -1, .reason = why};
			stack_trace(st, &ev);
		}
		return;
	}
	if (!stack_is_local(st, ip.dst)) {
		st->stats.ip_not_ours++;
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = -1,
						.reason = "not our address"};
			stack_trace(st, &ev);
		}
		return;
	}
	switch (ip.proto) {
	case TERN_IPPROTO_TCP_:
		tcp_input(st, &ip);
		break;
	case TERN_IPPROTO_ICMP:
		icmp_input(st, &ip);
		break;
	default:
		st->stats.ip_bad_proto++;
		break;
	}
}

void tern_stack_input_batch(struct tern_stack *st, const struct tern_iovec *pkts, unsigned n,
			    uint64_t now_us)
{
	st->batching = true;
	for (unsigned i = 0; i < n; i++)
		tern_stack_input(st, pkts[i].base, pkts[i].len, now_us);
	st->batching = false;
	/* Each connection the batch touched: its ACK decision and output, once. Finishing one
	 * may end another's connection (never add one), so the list is walked by index. */
	for (uint32_t i = 0; i < st->nbatch; i++) {
		struct tern_tcb *t = st->batchq[i];
		if (!t)
			continue;
		st->batchq[i] = NULL;
		t->tf &= ~TF_BATCHQ;
		tcb_after_input(st, t);
	}
	st->nbatch = 0;
}

void stack_batch_add(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (tcb->tf & TF_BATCHQ)
		return;
	if (st->nbatch == st->capbatch) {
		uint32_t ncap = st->capbatch ? st->capbatch * 2 : 16;
		struct tern_tcb **q = realloc(st->batchq, ncap * sizeof(*q));
		if (!q) {
			tcb_after_input(st, tcb); /* no room to wait: finish it now */
			return;
		}
		st->batchq = q;
		st->capbatch = ncap;
	}
	st->batchq[st->nbatch++] = tcb;
	tcb->tf |= TF_BATCHQ;
}

void stack_batch_remove(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & TF_BATCHQ))
		return;
	tcb->tf &= ~TF_BATCHQ;
	for (uint32_t i = 0; i < st->nbatch; i++)
		if (st->batchq[i] == tcb)
			st->batchq[i] = NULL;
}

int ip_output(struct tern_stack *st, uint32_t src, uint32_t dst, uint8_t proto,
	      const struct tern_iovec *iov, unsigned n, size_t len)
{
	/* iov[0] is the transport header, written at txbuf + 20 so that the IPv4 header
	 * goes right before it and the two leave as one piece. */
	struct tern_iovec out[4];
	if (n > 3 || len + 20 > 65535)
		return -EMSGSIZE;
	int df = proto == TERN_IPPROTO_TCP_;
	/* RFC 6864 §4.1: an atomic datagram (DF set) may carry any ID; 0 tells nothing. */
	uint16_t id = df ? 0 : st->ip_id++;
	tern_ip4_build(st->txbuf, src, dst, proto, (uint8_t)st->set.ip_default_ttl, id, df,
		       (uint16_t)len);
	out[0].base = st->txbuf;
	out[0].len = 20 + iov[0].len;
	for (unsigned i = 1; i < n; i++)
		out[i] = iov[i];
	if (!st->link.transmit) {
		st->stats.link_tx_errors++;
		return -ENETUNREACH;
	}
	int rc = st->link.transmit(st->link.ctx, out, n, len + 20);
	if (rc < 0) {
		st->stats.link_tx_errors++;
		return rc;
	}
	st->stats.ip_out++;
	return 0;
}

/* ---- ICMP: echo (RFC 792), so that ping works ---- */

void icmp_input(struct tern_stack *st, const struct tern_ip4 *ip)
{
	const uint8_t *p = ip->payload;
	size_t len = ip->payload_len;
	st->stats.icmp_in++;
	struct tern_iovec whole = {p, len};
	if (len < 8 || tern_csum_iov(0, &whole, 1) != 0) {
		st->stats.icmp_bad++;
		return;
	}
	if (stack_tracing(st)) {
		struct tern_trace ev = {.kind = TERN_TRACE_ICMP, .fd = -1};
		ev.u.icmp.type = p[0];
		ev.u.icmp.code = p[1];
		ev.u.icmp.src = ip->src;
		ev.u.icmp.dst = ip->dst;
		stack_trace(st, &ev);
	}
	if (p[0] != 8 || p[1] != 0)
		return; /* only echo requests get an answer */
	uint8_t *h = st->txbuf + 20;
	h[0] = 0; /* echo reply */
	h[1] = 0;
	h[2] = h[3] = 0;
	memcpy(h + 4, p + 4, 4); /* identifier and sequence number */
	struct tern_iovec iov[2] = {{h, 8}, {p + 8, len - 8}};
	uint16_t c = tern_csum_iov(0, iov, 2);
	memcpy(h + 2, &c, 2);
	if (ip_output(st, ip->dst, ip->src, TERN_IPPROTO_ICMP, iov, len > 8 ? 2 : 1, len) == 0) {
		st->stats.icmp_out++;
		st->stats.icmp_echo_replies++;
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_ICMP, .fd = -1};
			ev.u.icmp.type = 0;
			ev.u.icmp.src = ip->dst;
			ev.u.icmp.dst = ip->src;
			ev.u.icmp.out = 1;
			stack_trace(st, &ev);
		}
	}
}

/* ---- readiness ---- */

void stack_notify(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (tcb->fd < 0 || (tcb->tf & TF_EVQ))
		return;
	if (st->evq_len == st->evq_cap) {
		uint32_t ncap = st->evq_cap ? st->evq_cap * 2 : 16;
		int *n = realloc(st->evq, ncap * sizeof(*n));
		if (!n) {
			st->stats.mem_failures++;
			return;
		}
		st->evq = n;
		st->evq_cap = ncap;
	}
	st->evq[st->evq_len++] = tcb->fd;
	tcb->tf |= TF_EVQ;
}

void stack_unnotify(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & TF_EVQ))
		return;
	tcb->tf &= ~TF_EVQ;
	for (uint32_t i = 0; i < st->evq_len; i++) {
		if (st->evq[i] == tcb->fd) {
			memmove(st->evq + i, st->evq + i + 1, (st->evq_len - i - 1) * sizeof(int));
			st->evq_len--;
			return;
		}
	}
}

int tern_stack_events(struct tern_stack *st, struct tern_event *out, int max)
{
	int n = 0;
	uint32_t i = 0;
	for (; i < st->evq_len && n < max; i++) {
		int fd = st->evq[i];
		struct tern_tcb *t = fd_get(st, fd);
		if (!t)
			continue;
		t->tf &= ~TF_EVQ;
		out[n].fd = fd;
		out[n].events = tcb_events(st, t);
		n++;
	}
	if (i) {
		memmove(st->evq, st->evq + i, (st->evq_len - i) * sizeof(int));
		st->evq_len -= i;
	}
	return n;
}

/* ---- listing ---- */

static void info_of(const struct tern_tcb *t, struct tern_conn_info *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = t->fd;
	c->state = t->h.state;
	c->laddr = t->h.laddr;
	c->raddr = t->h.raddr;
	c->lport = t->h.lport;
	c->rport = t->h.rport;
	if (t->h.state == TERN_STATE_LISTEN) {
		c->rcv_queue = t->acc_len;
		c->snd_queue = t->backlog;
	} else {
		c->snd_queue = ring_len(t->sndq);
		c->rcv_queue = ring_len(t->rcvq);
		c->srtt_us = t->srtt_us;
	}
}

size_t tern_stack_foreach(struct tern_stack *st,
			  void (*fn)(void *user, const struct tern_conn_info *c), void *user)
{
	size_t n = 0;
	struct tern_conn_info c;
	/* Listeners and unconnected sockets hold descriptors and are not in the table. */
	for (uint32_t fd = 0; fd < st->fd_cap; fd++) {
		struct tern_tcb *t = st->fds[fd];
		if (!t || (t->tf & TF_HASHED))
			continue;
		if (t->h.state == TERN_STATE_CLOSED)
			continue;
		info_of(t, &c);
		n++;
		if (fn)
			fn(user, &c);
		if (t->h.state == TERN_STATE_LISTEN) {
			for (struct tern_tcb *q = t->acc_head; q; q = q->qnext) {
				if (q->tf & TF_HASHED)
					continue; /* listed with the table */
				info_of(q, &c);
				n++;
				if (fn)
					fn(user, &c);
			}
		}
	}
	for (uint32_t i = 0; i <= st->cmask; i++) {
		for (struct conn_hdr *h = st->ctab[i]; h; h = h->hnext) {
			if (h->kind == CK_TW) {
				memset(&c, 0, sizeof(c));
				c.fd = -1;
				c.state = h->state;
				c.laddr = h->laddr;
				c.raddr = h->raddr;
				c.lport = h->lport;
				c.rport = h->rport;
			} else {
				info_of((struct tern_tcb *)h, &c);
			}
			n++;
			if (fn)
				fn(user, &c);
		}
	}
	return n;
}

size_t tern_stack_memory(const struct tern_stack *st)
{
	size_t m = sizeof(*st);
	m += (size_t)(st->cmask + 1) * sizeof(*st->ctab);
	m += (size_t)(st->lmask + 1) * sizeof(*st->ltab);
	m += (size_t)(st->bmask + 1) * sizeof(*st->btab) + st->bcount * sizeof(struct bind_bucket);
	m += (size_t)st->fd_cap * sizeof(*st->fds) + st->fd_cap / 8;
	m += (size_t)st->evq_cap * sizeof(int);
	m += (size_t)st->n_tcb * sizeof(struct tern_tcb);
	m += (size_t)st->n_tw * sizeof(struct tern_tw);
	m += st->mem_bufs;
	for (int i = 0; i < 2; i++)
		if (st->ring_cache[i])
			m += sizeof(struct ring) + st->ring_cache[i]->cap;
	return m;
}
