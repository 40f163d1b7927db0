/* The stack instance: creation, the IPv4 input and output paths, ICMP, time, readiness
 * events. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* ICMP types and codes (RFC 792). */
#define ICMP_ECHO_REPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_NR_TYPES 18           /* the highest type Linux knows (address mask reply) */
#define ICMP_FRAG_NEEDED 4
#define ICMP_HLEN 8
/* Linux's XRLIM_BURST_FACTOR: a destination's bucket holds this many messages. */
#define ICMP_BURST_FACTOR 6

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
	/* Every destination starts with a full bucket, as a new inet_peer does in Linux; the
	 * stack-wide credit fills at the first message, as Linux's does at boot. */
	for (unsigned i = 0; i < ICMP_RL_BUCKETS; i++) {
		st->icmp_rl[i].tokens = ICMP_BURST_FACTOR * st->set.icmp_ratelimit_ms;
		st->icmp_rl[i].last = st->now;
	}
	st->icmp_stamp = st->now - 1000;
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
	stack_link_flush(st);
	/* Every TCB is reachable from a descriptor, the 4-tuple table, or (once reset before
	 * accept()) only from its listener's accept queue; TIME_WAIT records only from the
	 * table. Free each exactly once, queues first while everything is still alive. */
	for (uint32_t fd = 0; fd < st->fd_cap; fd++) {
		struct conn_hdr *h = st->fds[fd];
		if (!h || h->kind != CK_TCB || h->state != TERN_STATE_LISTEN)
			continue;
		struct tern_tcb *t = (struct tern_tcb *)h;
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
	for (uint32_t fd = 0; fd < st->fd_cap; fd++) {
		struct conn_hdr *h = st->fds[fd];
		if (h && h->kind == CK_UDP)
			udp_free(st, (struct tern_udp *)h);
		else if (h)
			tcb_release(st, (struct tern_tcb *)h);
	}
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
	free(st->utab);
	free(st->fds);
	free(st->fd_used);
	free(st->evq);
	free(st->batchq);
	free(st);
}

void tern_stack_set_link(struct tern_stack *st, const struct tern_link *link)
{
	stack_link_flush(st);
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
	/* A SEND or ICMP event comes while its headers wait in txbuf for ip_output; a hook that
	 * sends (a UDP datagram, a segment on another connection) builds its own headers there. */
	uint8_t hdr[sizeof(st->txbuf)];
	memcpy(hdr, st->txbuf, sizeof(hdr));
	st->trace(st->trace_user, ev);
	memcpy(st->txbuf, hdr, sizeof(hdr));
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
	if (!tw_nothing_due(&st->wheel, st->now)) {
		stack_tx_begin(st);
		tw_advance(&st->wheel, st->now, timer_fire, st);
		stack_tx_end(st);
	}
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

static bool ip4_not_one_host(uint32_t a);

static void stack_input(struct tern_stack *st, const void *pkt, size_t len, uint64_t now_us);

void tern_stack_input(struct tern_stack *st, const void *pkt, size_t len, uint64_t now_us)
{
	stack_tx_begin(st);
	stack_input(st, pkt, len, now_us);
	stack_tx_end(st);
}

static void stack_input(struct tern_stack *st, const void *pkt, size_t len, uint64_t now_us)
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
	/* RFC 1122 §3.2.1.3: a source that is not one host cannot be answered, and TCP and
	 * ICMP would answer (a SYN-ACK, a RST, an echo reply to 0.0.0.0 or a multicast group),
	 * so the datagram is discarded here. UDP still takes it: nothing is sent back
	 * (icmp_send_error() refuses such a source) and udp_no_port counts it. */
	if ((ip.proto == TERN_IPPROTO_TCP_ || ip.proto == TERN_IPPROTO_ICMP) &&
	    ip4_not_one_host(ip.src)) {
		st->stats.ip_bad_header++;
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = -1,
						.reason = "ip source"};
			stack_trace(st, &ev);
		}
		return;
	}
	switch (ip.proto) {
	case TERN_IPPROTO_TCP_:
		tcp_input(st, &ip);
		break;
	case TERN_IPPROTO_UDP:
		udp_input(st, &ip);
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
	stack_tx_begin(st);
	st->batching = true;
	for (unsigned i = 0; i < n; i++)
		stack_input(st, pkts[i].base, pkts[i].len, now_us);
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
	stack_tx_end(st);
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

void stack_link_flush(struct tern_stack *st)
{
	if (!st->link_held)
		return;
	st->link_held = false;
	if (st->link.flush)
		st->link.flush(st->link.ctx);
}

int ip_output(struct tern_stack *st, uint32_t src, uint32_t dst, uint8_t proto,
	      const struct tern_iovec *iov, unsigned n, size_t len)
{
	/* iov[0] is the transport header, written at txbuf + 20 so that the IPv4 header
	 * goes right before it and the two leave as one piece. */
	struct tern_iovec out[4];
	if (n > 3 || len + 20 > 65535)
		return -EMSGSIZE;
	/* TCP segments and UDP datagrams leave with DF set: tern does not fragment, and a
	 * datagram larger than the MTU is refused before it gets here (Linux sets DF on what
	 * fits, IP_PMTUDISC_WANT). RFC 6864 §4.1: an atomic datagram may carry any ID; 0 tells
	 * nothing. */
	int df = proto != TERN_IPPROTO_ICMP;
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
	if (st->link.flush) {
		if (st->tx_depth)
			st->link_held = true;
		else
			st->link.flush(st->link.ctx);
	}
	if (rc < 0) {
		st->stats.link_tx_errors++;
		return rc;
	}
	st->stats.ip_out++;
	return 0;
}

/* ---- ICMP (RFC 792): echo, so that ping works; errors sent and received ---- */

static void trace_icmp_out(struct tern_stack *st, uint8_t type, uint8_t code, uint32_t src,
			   uint32_t dst)
{
	if (!stack_tracing(st))
		return;
	struct tern_trace ev = {.kind = TERN_TRACE_ICMP, .fd = -1};
	ev.u.icmp.type = type;
	ev.u.icmp.code = code;
	ev.u.icmp.src = src;
	ev.u.icmp.dst = dst;
	ev.u.icmp.out = 1;
	stack_trace(st, &ev);
}

static void icmp_echo_reply(struct tern_stack *st, const struct tern_ip4 *ip)
{
	const uint8_t *p = ip->payload;
	size_t len = ip->payload_len;
	uint8_t *h = st->txbuf + 20;
	h[0] = ICMP_ECHO_REPLY;
	h[1] = 0;
	h[2] = h[3] = 0;
	memcpy(h + 4, p + 4, 4); /* identifier and sequence number */
	struct tern_iovec iov[2] = {{h, ICMP_HLEN}, {p + ICMP_HLEN, len - ICMP_HLEN}};
	uint16_t c = tern_csum_iov(0, iov, 2);
	memcpy(h + 2, &c, 2);
	if (ip_output(st, ip->dst, ip->src, TERN_IPPROTO_ICMP, iov, len > ICMP_HLEN ? 2 : 1,
		      len) == 0) {
		st->stats.icmp_out++;
		st->stats.icmp_echo_replies++;
		trace_icmp_out(st, ICMP_ECHO_REPLY, 0, ip->dst, ip->src);
	}
}

/* Linux's icmp_err_convert: the errno of each destination-unreachable code, and whether RFC
 * 1122 §3.2.2.1 makes it a hard error (net and host unreachable, source route failed and
 * the TOS variants are transient). Fragmentation needed is left out: tern does no path MTU
 * discovery yet, so it acts on none. */
static const struct {
	uint8_t err, fatal;
} unreach_err[16] = {
	{ENETUNREACH, 0}, {EHOSTUNREACH, 0}, {ENOPROTOOPT, 1}, {ECONNREFUSED, 1},
	{0, 0},           {EOPNOTSUPP, 0},   {ENETUNREACH, 1}, {EHOSTDOWN, 1},
#ifdef ENONET
	{ENONET, 1},
#else
	{EHOSTUNREACH, 1},
#endif
	{ENETUNREACH, 1}, {EHOSTUNREACH, 1}, {ENETUNREACH, 0}, {EHOSTUNREACH, 0},
	{EHOSTUNREACH, 1}, {EHOSTUNREACH, 1}, {EHOSTUNREACH, 1},
};

/* An error message quotes the datagram it is about (RFC 792: its IPv4 header and at least
 * 8 data bytes): find the transport that sent it and tell it. */
static void icmp_error_input(struct tern_stack *st, const uint8_t *p, size_t len)
{
	int err = 0;
	bool fatal = false;
	if (p[0] == ICMP_DEST_UNREACH && p[1] < 16) {
		err = unreach_err[p[1]].err;
		fatal = unreach_err[p[1]].fatal;
	} else if (p[0] == ICMP_PARAMETERPROB) {
		err = EPROTO;
		fatal = true;
	}
	if (!err)
		return;
	const uint8_t *q = p + ICMP_HLEN;
	size_t qlen = len - ICMP_HLEN;
	size_t ihl = qlen >= 20 ? (size_t)(q[0] & 0x0f) * 4 : 0;
	if (qlen < 20 || (q[0] >> 4) != 4 || ihl < 20 || qlen < ihl + 8) {
		st->stats.icmp_bad++; /* too little quoted to tell which datagram */
		return;
	}
	uint32_t src = rd32(q + 12), dst = rd32(q + 16);
	const uint8_t *th = q + ihl;
	switch (q[9]) {
	case TERN_IPPROTO_UDP:
		udp_err(st, src, rd16(th), dst, rd16(th + 2), err, fatal);
		break;
	default:
		break; /* TCP does not act on ICMP errors yet */
	}
}

void icmp_input(struct tern_stack *st, const struct tern_ip4 *ip)
{
	const uint8_t *p = ip->payload;
	size_t len = ip->payload_len;
	st->stats.icmp_in++;
	struct tern_iovec whole = {p, len};
	if (len < ICMP_HLEN || tern_csum_iov(0, &whole, 1) != 0) {
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
	switch (p[0]) {
	case ICMP_ECHO:
		if (p[1] == 0)
			icmp_echo_reply(st, ip);
		break;
	case ICMP_DEST_UNREACH:
	case ICMP_PARAMETERPROB:
		icmp_error_input(st, p, len);
		break;
	default:
		break;
	}
}

/* Not one host's address (RFC 1122 §3.2.1.3): 0.0.0.0, multicast (224/4), and class E with
 * the limited broadcast (240/4). tern knows no netmask, so a subnet's broadcast address
 * cannot be told apart; it is not a stack address either, so nothing arrives for it. */
static bool ip4_not_one_host(uint32_t a)
{
	return a == 0 || a >= TERN_IP4(224, 0, 0, 0);
}

static bool icmp_is_error_type(uint8_t type)
{
	return type > ICMP_NR_TYPES || type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH ||
	       type == ICMP_REDIRECT || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* Linux's inet_peer_xrlim_allow(): a bucket of milliseconds refilled one per ms elapsed and
 * holding ICMP_BURST_FACTOR messages' worth; a message costs icmp_ratelimit. Linux keeps one
 * per destination (inet_peer); tern hashes destinations, with a secret key, into a fixed set
 * of buckets so memory stays bounded, and two that share one share its rate. */
static bool icmp_peer_allow(struct tern_stack *st, uint32_t dst)
{
	uint32_t cost = st->set.icmp_ratelimit_ms;
	if (!cost)
		return true;
	uint64_t x = ((uint64_t)dst ^ st->hash_key[0]) * 0x9e3779b97f4a7c15ull;
	unsigned i = (unsigned)(x >> 32) & (ICMP_RL_BUCKETS - 1);
	uint32_t cap = ICMP_BURST_FACTOR * cost;
	uint32_t tokens = st->icmp_rl[i].tokens + TERN_MIN(st->now - st->icmp_rl[i].last, cap);
	st->icmp_rl[i].last = st->now;
	tokens = TERN_MIN(tokens, cap);
	bool ok = tokens >= cost;
	st->icmp_rl[i].tokens = ok ? tokens - cost : tokens;
	return ok;
}

/* Linux's icmp_global_allow() (6.11 on): while credit is left any message may go; once it is
 * spent, a refill of icmp_msgs_per_sec for the time since the last one (at least 20 ms, at
 * most a second's worth), capped at icmp_msgs_burst. */
static bool icmp_global_allow(struct tern_stack *st)
{
	if (st->icmp_credit > 0)
		return true;
	uint32_t delta = TERN_MIN(st->now - st->icmp_stamp, 1000u);
	if (delta < 20)
		return false;
	uint64_t incr = (uint64_t)st->set.icmp_msgs_per_sec * delta / 1000;
	if (!incr)
		return false;
	st->icmp_stamp = st->now;
	int64_t credit = TERN_MIN((int64_t)st->icmp_credit + (int64_t)incr,
				  (int64_t)st->set.icmp_msgs_burst);
	st->icmp_credit = (int32_t)credit;
	return true;
}

/*
 * RFC 1812 §4.3.2.8, RFC 1122 §3.2.2: error messages are rate-limited, as Linux does it: the
 * types in icmp_ratemask only; none towards the stack itself (Linux's loopback exemption);
 * the stack-wide budget checked first but spent last, after the destination's bucket
 * agreed, so that one destination cannot learn another's use from the shared budget.
 * Each message spends 0, 1 or 2 credits at random, one on average, as Linux's
 * icmp_global_consume() does against the side channel of CVE-2020-25705.
 */
static bool icmp_rate_allow(struct tern_stack *st, uint8_t type, uint8_t code, uint32_t dst)
{
	if (type > ICMP_NR_TYPES || (type == ICMP_DEST_UNREACH && code == ICMP_FRAG_NEEDED) ||
	    !((1u << type) & st->set.icmp_ratemask))
		return true;
	if (stack_is_local(st, dst))
		return true;
	if (!icmp_global_allow(st)) {
		st->stats.icmp_ratelimit_global++;
		return false;
	}
	if (!icmp_peer_allow(st, dst)) {
		st->stats.icmp_ratelimit_host++;
		return false;
	}
	st->icmp_credit -= (int32_t)(rng_next(&st->rng) % 3);
	return true;
}

bool icmp_send_error(struct tern_stack *st, const struct tern_ip4 *ip, uint8_t type,
		     uint8_t code)
{
	/* RFC 1122 §3.2.2: never about an ICMP error, a datagram to a broadcast or multicast
	 * address, or one whose source is not a single host (fragments never get here). */
	if (ip4_not_one_host(ip->dst) || ip4_not_one_host(ip->src))
		return false;
	if (ip->proto == TERN_IPPROTO_ICMP &&
	    (ip->payload_len < 1 || icmp_is_error_type(ip->payload[0])))
		return false;
	if (!icmp_rate_allow(st, type, code, ip->src))
		return false;
	uint8_t *h = st->txbuf + 20;
	h[0] = type;
	h[1] = code;
	memset(h + 2, 0, 6); /* checksum, then 4 unused bytes (RFC 792) */
	struct tern_iovec iov[2];
	iov[0].base = h;
	iov[0].len = ICMP_HLEN;
	iov[1].base = ip->payload - ip->hlen;
	iov[1].len = ip->hlen + TERN_MIN((size_t)ip->payload_len, (size_t)8);
	uint16_t c = tern_csum_iov(0, iov, 2);
	memcpy(h + 2, &c, 2);
	if (ip_output(st, ip->dst, ip->src, TERN_IPPROTO_ICMP, iov, 2, ICMP_HLEN + iov[1].len) != 0)
		return false;
	st->stats.icmp_out++;
	trace_icmp_out(st, type, code, ip->dst, ip->src);
	return true;
}

/* ---- readiness ---- */

/* Room for one more descriptor in the readiness list (the rare path: a doubling). */
static bool evq_grow(struct tern_stack *st)
{
	uint32_t ncap = st->evq_cap ? st->evq_cap * 2 : 16;
	int *n = realloc(st->evq, ncap * sizeof(*n));
	if (!n) {
		st->stats.mem_failures++;
		return false;
	}
	st->evq = n;
	st->evq_cap = ncap;
	return true;
}

static void evq_remove(struct tern_stack *st, int fd)
{
	for (uint32_t i = 0; i < st->evq_len; i++) {
		if (st->evq[i] == fd) {
			memmove(st->evq + i, st->evq + i + 1, (st->evq_len - i - 1) * sizeof(int));
			st->evq_len--;
			return;
		}
	}
}

void stack_notify(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (tcb->fd < 0 || (tcb->tf & TF_EVQ))
		return;
	if (st->evq_len == st->evq_cap && !evq_grow(st))
		return;
	st->evq[st->evq_len++] = tcb->fd;
	tcb->tf |= TF_EVQ;
}

void stack_unnotify(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & TF_EVQ))
		return;
	tcb->tf &= ~TF_EVQ;
	evq_remove(st, tcb->fd);
}

void udp_notify(struct tern_stack *st, struct tern_udp *u)
{
	if (u->uf & UF_EVQ)
		return;
	if (st->evq_len == st->evq_cap && !evq_grow(st))
		return;
	st->evq[st->evq_len++] = u->fd;
	u->uf |= UF_EVQ;
}

void udp_unnotify(struct tern_stack *st, struct tern_udp *u)
{
	if (!(u->uf & UF_EVQ))
		return;
	u->uf &= ~UF_EVQ;
	evq_remove(st, u->fd);
}

int tern_stack_events(struct tern_stack *st, struct tern_event *out, int max)
{
	int n = 0;
	uint32_t i = 0;
	for (; i < st->evq_len && n < max; i++) {
		int fd = st->evq[i];
		struct conn_hdr *h = fd_get(st, fd);
		if (!h)
			continue;
		out[n].fd = fd;
		if (h->kind == CK_UDP) {
			struct tern_udp *u = (struct tern_udp *)h;
			u->uf &= ~UF_EVQ;
			out[n].events = udp_events(u);
		} else {
			struct tern_tcb *t = (struct tern_tcb *)h;
			t->tf &= ~TF_EVQ;
			out[n].events = tcb_events(st, t);
		}
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
		struct conn_hdr *h = st->fds[fd];
		if (!h || h->kind != CK_TCB)
			continue;
		struct tern_tcb *t = (struct tern_tcb *)h;
		if (t->tf & TF_HASHED)
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
	m += (size_t)st->n_udp * sizeof(struct tern_udp);
	if (st->utab)
		m += (size_t)(st->umask + 1) * sizeof(*st->utab);
	m += st->mem_bufs;
	for (int i = 0; i < 2; i++)
		if (st->ring_cache[i])
			m += sizeof(struct ring) + st->ring_cache[i]->cap;
	return m;
}
