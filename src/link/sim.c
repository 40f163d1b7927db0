/*
 * The simulated wire and its virtual clock. Packets in flight and scheduled callbacks wait in
 * one binary heap ordered by (time, insertion number); the clock jumps to whichever comes
 * first, the heap's head or a host's next timer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tern/sim.h"
#include "tern/pcap.h"
#include "../internal.h"
#include "impair.h"

struct sim_host {
	char name[16];
	uint32_t addr;
	struct tern_settings set;
	struct tern_stack *st;
	struct tern_sim *sim;
	int index;
	uint32_t reboots;
};

struct sim_item {
	uint64_t t, order;
	int kind;                /* 0 packet, 1 callback */
	int from, to;
	uint8_t *data;
	size_t len;
	tern_sim_fn fn;
	void *arg;
};

struct tern_sim {
	uint64_t now, order, seed;
	struct tern_rng rng;
	struct sim_host hosts[TERN_SIM_MAX_HOSTS];
	int nhosts;
	struct tern_impair imp[TERN_SIM_MAX_HOSTS][TERN_SIM_MAX_HOSTS];
	struct impair_rule *rules;
	int nrules, caprules;
	struct sim_item *heap;
	size_t nheap, capheap;
	tern_sim_event_fn on_event;
	void *on_event_user;
	tern_sim_trace_fn trace;
	void *trace_user;
	struct tern_pcap *pcap;
};

/* ---- heap ---- */

static bool item_before(const struct sim_item *a, const struct sim_item *b)
{
	return a->t < b->t || (a->t == b->t && a->order < b->order);
}

static int heap_push(struct tern_sim *sim, struct sim_item *it)
{
	if (sim->nheap == sim->capheap) {
		size_t n = sim->capheap ? sim->capheap * 2 : 64;
		struct sim_item *h = realloc(sim->heap, n * sizeof(*h));
		if (!h)
			return -ENOMEM;
		sim->heap = h;
		sim->capheap = n;
	}
	it->order = sim->order++;
	size_t i = sim->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!item_before(it, &sim->heap[p]))
			break;
		sim->heap[i] = sim->heap[p];
		i = p;
	}
	sim->heap[i] = *it;
	return 0;
}

static struct sim_item heap_pop(struct tern_sim *sim)
{
	struct sim_item top = sim->heap[0];
	struct sim_item last = sim->heap[--sim->nheap];
	size_t i = 0, n = sim->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && item_before(&sim->heap[c + 1], &sim->heap[c]))
			c++;
		if (!item_before(&sim->heap[c], &last))
			break;
		sim->heap[i] = sim->heap[c];
		i = c;
	}
	if (n)
		sim->heap[i] = last;
	return top;
}

/* ---- tracing ---- */

static void emit(struct tern_sim *sim, struct tern_sim_ev *ev)
{
	if (sim->trace)
		sim->trace(sim->trace_user, ev);
}

static void host_trace(void *user, const struct tern_trace *tr)
{
	struct sim_host *h = user;
	struct tern_sim_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.t_us = tr->t_us;
	ev.host = h->index;
	ev.peer = -1;
	ev.tr = *tr;
	switch (tr->kind) {
	case TERN_TRACE_SEND: ev.kind = TERN_SIM_EV_SEND; ev.seg_valid = 1; break;
	case TERN_TRACE_RECV: ev.kind = TERN_SIM_EV_RECV; ev.seg_valid = 1; break;
	case TERN_TRACE_DISCARD:
		ev.kind = TERN_SIM_EV_DISCARD;
		ev.seg_valid = tr->u.seg.sport != 0 || tr->u.seg.dport != 0;
		break;
	case TERN_TRACE_STATE: ev.kind = TERN_SIM_EV_STATE; break;
	case TERN_TRACE_ERROR: ev.kind = TERN_SIM_EV_ERROR; break;
	case TERN_TRACE_ICMP: ev.kind = TERN_SIM_EV_ICMP; break;
	}
	emit(h->sim, &ev);
}

/* Describe a packet on the wire for a wire event (it may be corrupt: parse without trust). */
static void wire_event(struct tern_sim *sim, enum tern_sim_ev_kind kind, int from, int to,
		       const uint8_t *pkt, size_t len)
{
	if (!sim->trace)
		return;
	struct tern_sim_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.t_us = sim->now;
	ev.host = from;
	ev.peer = to;
	ev.tr.fd = -1;
	struct tern_ip4 ip;
	if (tern_ip4_parse(pkt, len, &ip) == TERN_IP4_OK && ip.proto == TERN_IPPROTO_TCP_) {
		struct tern_tcp_seg s;
		int rc = tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s);
		if (rc == TERN_TCP_OK || rc == TERN_TCP_CSUM) {
			ev.tr.u.seg = s.h;
			ev.seg_valid = 1;
		}
	}
	emit(sim, &ev);
}

void tern_sim_note(struct tern_sim *sim, int host, const char *fmt, ...)
{
	if (!sim->trace)
		return;
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	struct tern_sim_ev ev;
	memset(&ev, 0, sizeof(ev));
	ev.kind = TERN_SIM_EV_APP;
	ev.t_us = sim->now;
	ev.host = host;
	ev.peer = -1;
	ev.tr.fd = -1;
	ev.text = buf;
	emit(sim, &ev);
}

/* ---- the wire ---- */

static int find_host_by_addr(const struct tern_sim *sim, uint32_t addr)
{
	for (int i = 0; i < sim->nhosts; i++)
		if (sim->hosts[i].addr == addr)
			return i;
	return -1;
}

static void enqueue(struct tern_sim *sim, int from, int to, const uint8_t *data, size_t len,
		    uint64_t delay)
{
	struct sim_item it;
	memset(&it, 0, sizeof(it));
	it.t = sim->now + delay;
	it.kind = 0;
	it.from = from;
	it.to = to;
	it.data = malloc(len ? len : 1);
	if (!it.data)
		return;
	memcpy(it.data, data, len);
	it.len = len;
	if (heap_push(sim, &it) < 0)
		free(it.data);
}

/* A packet leaves host `from`: the rules, then the random impairments, then the queue. */
static void wire_send(struct tern_sim *sim, int from, uint8_t *pkt, size_t len)
{
	if (len < 20)
		return;
	int to = find_host_by_addr(sim, rd32(pkt + 16));
	if (to < 0)
		return; /* no such host: the packet vanishes */
	struct impair_verdict v;
	impair_judge(&sim->rng, sim->rules, sim->nrules, from, to, &sim->imp[from][to], pkt, len, &v);
	for (unsigned i = 0; i < v.corrupted; i++)
		wire_event(sim, TERN_SIM_EV_CORRUPT, from, to, pkt, len);
	if (v.drop) {
		wire_event(sim, TERN_SIM_EV_DROP, from, to, pkt, len);
		return;
	}
	if (v.held)
		wire_event(sim, TERN_SIM_EV_DELAY, from, to, pkt, len);
	enqueue(sim, from, to, pkt, len, v.delay_us);
	if (v.dup) {
		wire_event(sim, TERN_SIM_EV_DUP, from, to, pkt, len);
		enqueue(sim, from, to, pkt, len, v.dup_delay_us);
	}
}

static int host_transmit(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	struct sim_host *h = ctx;
	struct tern_sim *sim = h->sim;
	uint8_t stackbuf[2048];
	uint8_t *buf = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
	if (!buf)
		return -ENOBUFS;
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(buf + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	if (sim->pcap) {
		struct tern_iovec one = {buf, total};
		tern_pcap_write(sim->pcap, sim->now, &one, 1, total);
	}
	wire_send(sim, h->index, buf, total);
	if (buf != stackbuf)
		free(buf);
	return 0;
}

/* ---- hosts ---- */

static uint64_t host_seed(const struct tern_sim *sim, int host, uint32_t reboots)
{
	uint64_t x = sim->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(host + 1)) ^
		     ((uint64_t)reboots << 48);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int host_boot(struct tern_sim *sim, struct sim_host *h)
{
	struct tern_settings s = h->set;
	s.seed = host_seed(sim, h->index, h->reboots);
	h->st = tern_stack_new(&s, sim->now);
	if (!h->st)
		return -ENOMEM;
	tern_stack_add_addr(h->st, h->addr);
	struct tern_link link = {.transmit = host_transmit, .ctx = h, .flags = 0};
	tern_stack_set_link(h->st, &link);
	tern_stack_set_trace(h->st, host_trace, h);
	return 0;
}

struct tern_sim *tern_sim_new(uint64_t seed)
{
	struct tern_sim *sim = calloc(1, sizeof(*sim));
	if (!sim)
		return NULL;
	sim->seed = seed;
	rng_seed(&sim->rng, seed ^ 0x5349d0ull);
	return sim;
}

void tern_sim_free(struct tern_sim *sim)
{
	if (!sim)
		return;
	for (int i = 0; i < sim->nhosts; i++)
		tern_stack_free(sim->hosts[i].st);
	for (size_t i = 0; i < sim->nheap; i++)
		free(sim->heap[i].data);
	free(sim->heap);
	free(sim->rules);
	tern_pcap_close(sim->pcap);
	free(sim);
}

int tern_sim_add_host(struct tern_sim *sim, const char *name, uint32_t addr,
		      const struct tern_settings *settings)
{
	if (sim->nhosts >= TERN_SIM_MAX_HOSTS)
		return -ENOBUFS;
	if (find_host_by_addr(sim, addr) >= 0)
		return -EADDRINUSE;
	struct sim_host *h = &sim->hosts[sim->nhosts];
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->addr = addr;
	if (settings)
		h->set = *settings;
	else
		tern_settings_default(&h->set);
	h->sim = sim;
	h->index = sim->nhosts;
	int rc = host_boot(sim, h);
	if (rc < 0)
		return rc;
	return sim->nhosts++;
}

struct tern_stack *tern_sim_stack(struct tern_sim *sim, int host)
{
	return host >= 0 && host < sim->nhosts ? sim->hosts[host].st : NULL;
}

const char *tern_sim_host_name(const struct tern_sim *sim, int host)
{
	return host >= 0 && host < sim->nhosts ? sim->hosts[host].name : "?";
}

uint32_t tern_sim_host_addr(const struct tern_sim *sim, int host)
{
	return host >= 0 && host < sim->nhosts ? sim->hosts[host].addr : 0;
}

int tern_sim_host_by_name(const struct tern_sim *sim, const char *name)
{
	for (int i = 0; i < sim->nhosts; i++)
		if (strcmp(sim->hosts[i].name, name) == 0)
			return i;
	return -1;
}

int tern_sim_nhosts(const struct tern_sim *sim) { return sim->nhosts; }

void tern_sim_reboot(struct tern_sim *sim, int host)
{
	if (host < 0 || host >= sim->nhosts)
		return;
	struct sim_host *h = &sim->hosts[host];
	tern_stack_free(h->st);
	h->st = NULL;
	h->reboots++;
	host_boot(sim, h);
}

uint64_t tern_sim_now(const struct tern_sim *sim) { return sim->now; }

void tern_sim_set_impair(struct tern_sim *sim, int from, int to, const struct tern_impair *imp)
{
	for (int f = 0; f < TERN_SIM_MAX_HOSTS; f++)
		for (int t = 0; t < TERN_SIM_MAX_HOSTS; t++)
			if ((from < 0 || from == f) && (to < 0 || to == t))
				sim->imp[f][t] = *imp;
}

int tern_sim_add_rule(struct tern_sim *sim, const struct tern_sim_rule *rule)
{
	if (sim->nrules == sim->caprules) {
		int n = sim->caprules ? sim->caprules * 2 : 8;
		struct impair_rule *r = realloc(sim->rules, (size_t)n * sizeof(*r));
		if (!r)
			return -ENOMEM;
		sim->rules = r;
		sim->caprules = n;
	}
	sim->rules[sim->nrules].r = *rule;
	sim->rules[sim->nrules].seen = 0;
	sim->nrules++;
	return 0;
}

int tern_sim_parse_rule(const struct tern_sim *sim, const char *text, enum tern_sim_action action,
			struct tern_sim_rule *out)
{
	char buf[64];
	if (!text || strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	memset(out, 0, sizeof(*out));
	out->from = out->to = -1;
	out->action = action;
	char *cls = buf;
	char *colon = strchr(buf, ':');
	if (colon) {
		*colon = 0;
		cls = colon + 1;
		char *gt = strchr(buf, '>');
		if (!gt)
			return -EINVAL;
		*gt = 0;
		out->from = tern_sim_host_by_name(sim, buf);
		out->to = tern_sim_host_by_name(sim, gt + 1);
		if (out->from < 0 || out->to < 0)
			return -EINVAL;
	}
	return tern_impair_parse_class(cls, out);
}

int tern_sim_inject(struct tern_sim *sim, int from, const void *pkt, size_t len, uint64_t delay_us)
{
	if (len < 20)
		return -EINVAL;
	int to = find_host_by_addr(sim, rd32((const uint8_t *)pkt + 16));
	if (to < 0)
		return -EHOSTUNREACH;
	if (sim->pcap) {
		struct tern_iovec one = {pkt, len};
		tern_pcap_write(sim->pcap, sim->now, &one, 1, len);
	}
	wire_event(sim, TERN_SIM_EV_INJECT, from, to, pkt, len);
	enqueue(sim, from, to, pkt, len, delay_us);
	return 0;
}

int tern_sim_at(struct tern_sim *sim, uint64_t t_us, tern_sim_fn fn, void *arg)
{
	struct sim_item it;
	memset(&it, 0, sizeof(it));
	it.t = t_us < sim->now ? sim->now : t_us;
	it.kind = 1;
	it.fn = fn;
	it.arg = arg;
	return heap_push(sim, &it);
}

void tern_sim_on_event(struct tern_sim *sim, tern_sim_event_fn fn, void *user)
{
	sim->on_event = fn;
	sim->on_event_user = user;
}

void tern_sim_set_trace(struct tern_sim *sim, tern_sim_trace_fn fn, void *user)
{
	sim->trace = fn;
	sim->trace_user = user;
}

int tern_sim_pcap(struct tern_sim *sim, const char *path)
{
	tern_pcap_close(sim->pcap);
	sim->pcap = tern_pcap_open(path);
	return sim->pcap ? 0 : -errno;
}

/* ---- the clock ---- */

static void dispatch(struct tern_sim *sim, int host)
{
	struct tern_event evs[32];
	for (int guard = 0; guard < 1000; guard++) {
		struct tern_stack *st = sim->hosts[host].st;
		int n = tern_stack_events(st, evs, 32);
		if (n <= 0)
			return;
		if (!sim->on_event)
			continue;
		for (int i = 0; i < n; i++)
			sim->on_event(sim, host, &evs[i], sim->on_event_user);
	}
}

static uint64_t next_time(const struct tern_sim *sim)
{
	uint64_t t = sim->nheap ? sim->heap[0].t : TERN_TIME_NEVER;
	for (int i = 0; i < sim->nhosts; i++) {
		uint64_t n = tern_stack_next_timer(sim->hosts[i].st);
		if (n < t)
			t = n;
	}
	return t;
}

bool tern_sim_idle(const struct tern_sim *sim) { return next_time(sim) == TERN_TIME_NEVER; }

uint64_t tern_sim_run_until(struct tern_sim *sim, uint64_t t_end)
{
	uint64_t events = 0;
	for (;;) {
		uint64_t t = next_time(sim);
		if (t == TERN_TIME_NEVER || t > t_end)
			break;
		if (t > sim->now)
			sim->now = t;
		/* Every stack's clock moves with the simulation's, so that whatever a callback
		 * or a script does to a stack happens at the right time; due timers fire. */
		for (int i = 0; i < sim->nhosts; i++) {
			bool due = tern_stack_next_timer(sim->hosts[i].st) <= sim->now;
			tern_stack_poll(sim->hosts[i].st, sim->now);
			dispatch(sim, i);
			events += due;
		}
		while (sim->nheap && sim->heap[0].t <= sim->now) {
			struct sim_item it = heap_pop(sim);
			if (it.kind == 0) {
				tern_stack_input(sim->hosts[it.to].st, it.data, it.len, sim->now);
				free(it.data);
				dispatch(sim, it.to);
			} else {
				it.fn(sim, it.arg);
				for (int i = 0; i < sim->nhosts; i++)
					dispatch(sim, i);
			}
			events++;
		}
	}
	if (t_end != TERN_TIME_NEVER && t_end > sim->now)
		sim->now = t_end;
	for (int i = 0; i < sim->nhosts; i++) {
		tern_stack_poll(sim->hosts[i].st, sim->now);
		dispatch(sim, i);
	}
	return events;
}

uint64_t tern_sim_run_idle(struct tern_sim *sim, uint64_t limit_us)
{
	for (;;) {
		uint64_t t = next_time(sim);
		if (t == TERN_TIME_NEVER || t > limit_us)
			break;
		tern_sim_run_until(sim, t);
	}
	return sim->now;
}
