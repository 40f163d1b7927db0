/*
 * Matchers for scenario logs (struct scn_log): a run is indexed into what each host sent (with
 * what the wire did to it), the state changes of each host and the errors posted to each
 * application, so that a test reads like the specification:
 *
 *     CHECK_SENT(r, A, {0, F_SYN, ia, 0, 0, WIN, 0}, {RTT, F_ACK, ia + 1, ib + 1, 0, WIN, 0});
 *     CHECK_STATES(r, A, {0, CLOSED, SYN_SENT}, {RTT, SYN_SENT, ESTABLISHED});
 *
 * Every CHECK_* compares the whole ordered list, so an extra or a missing event fails too.
 * Only tests/test_scenarios.c includes this header.
 */
#ifndef TERN_SCN_CHECK_H
#define TERN_SCN_CHECK_H

#include <stdlib.h>
#include "test.h"
#include "scenario.h"

/* Hosts as scn_run() creates them: a (10.0.0.1) is the client, b (10.0.0.2) the server. */
enum { A = 0, B = 1 };

#define MS(x) ((uint64_t)(x) * 1000u)
#define SECS(x) ((uint64_t)(x) * 1000000u)

#define F_SYN TERN_TH_SYN
#define F_ACK TERN_TH_ACK
#define F_FIN TERN_TH_FIN
#define F_RST TERN_TH_RST
#define F_PSH TERN_TH_PSH

/* What the wire did to a segment (attached to the SEND it followed). */
#define FATE_DROP 1u
#define FATE_DUP 2u
#define FATE_DELAY 4u
#define FATE_CORRUPT 8u

#define CLOSED TERN_STATE_CLOSED
#define LISTEN TERN_STATE_LISTEN
#define SYN_SENT TERN_STATE_SYN_SENT
#define SYN_RCVD TERN_STATE_SYN_RCVD
#define ESTABLISHED TERN_STATE_ESTABLISHED
#define FIN_WAIT_1 TERN_STATE_FIN_WAIT_1
#define FIN_WAIT_2 TERN_STATE_FIN_WAIT_2
#define CLOSE_WAIT TERN_STATE_CLOSE_WAIT
#define CLOSING TERN_STATE_CLOSING
#define LAST_ACK TERN_STATE_LAST_ACK
#define TIME_WAIT TERN_STATE_TIME_WAIT


#define RUN_MAX 256

struct sent {
	uint64_t t;
	struct tern_seg_info seg;
	unsigned fate;
	size_t ev; /* index of the SEND (or INJECT) event in the log */
};

struct stchange {
	uint64_t t;
	int from, to;
	uint16_t lport, rport;
};

struct apperr {
	uint64_t t;
	int err, fd;
};

struct run {
	struct scn_log log;
	struct scn *s;
	struct scn_opts opts;
	struct sent sent[2][RUN_MAX];
	size_t nsent[2];
	struct sent inject[8];
	size_t ninject;
	struct stchange st[2][RUN_MAX];
	size_t nst[2];
	struct apperr err[2][16];
	size_t nerr[2];
	uint32_t isn[2]; /* the sequence number of the first SYN each host sent */
	size_t nwire[16]; /* wire events by kind (DROP, DUP, CORRUPT, DELAY) */
};

/* Expected segment: time, flags, seq, ack, payload bytes, window, wire fate. */
struct xseg {
	uint64_t t;
	uint16_t flags;
	uint32_t seq, ack, len;
	uint16_t win;
	unsigned fate;
};

struct xstate {
	uint64_t t;
	int from, to;
};

struct xerr {
	uint64_t t;
	int err;
};

struct xconn {
	int state;
	uint16_t lport, rport; /* 0: any */
};

static const char *host_str(int h) { return h == A ? "a" : h == B ? "b" : "?"; }

static void flag_str(char *buf, uint16_t f)
{
	static const struct {
		uint16_t bit;
		const char *name;
	} m[] = {{F_SYN, "SYN"}, {F_FIN, "FIN"}, {F_RST, "RST"}, {F_PSH, "PSH"}, {F_ACK, "ACK"}};
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (f & m[i].bit) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, m[i].name);
		}
	if (!buf[0])
		strcpy(buf, "none");
}

static void run_index(struct run *r)
{
	r->nsent[0] = r->nsent[1] = r->nst[0] = r->nst[1] = r->nerr[0] = r->nerr[1] = 0;
	r->ninject = 0;
	memset(r->nwire, 0, sizeof(r->nwire));
	r->isn[0] = r->isn[1] = 0;
	bool have_isn[2] = {false, false};
	struct sent *last[2] = {NULL, NULL};
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		int h = ev->host;
		if (h < 0 || h > 1)
			continue;
		switch (ev->kind) {
		case TERN_SIM_EV_SEND:
			if (r->nsent[h] < RUN_MAX) {
				struct sent *s = &r->sent[h][r->nsent[h]++];
				s->t = ev->t_us;
				s->seg = ev->tr.u.seg;
				s->fate = 0;
				s->ev = i;
				last[h] = s;
				if ((s->seg.flags & F_SYN) && !have_isn[h]) {
					r->isn[h] = s->seg.seq;
					have_isn[h] = true;
				}
			}
			break;
		case TERN_SIM_EV_INJECT:
			if (r->ninject < 8) {
				struct sent *s = &r->inject[r->ninject++];
				s->t = ev->t_us;
				s->seg = ev->tr.u.seg;
				s->fate = 0;
				s->ev = i;
				last[h] = s;
			}
			break;
		case TERN_SIM_EV_DROP:
		case TERN_SIM_EV_DUP:
		case TERN_SIM_EV_DELAY:
		case TERN_SIM_EV_CORRUPT: {
			r->nwire[ev->kind]++;
			unsigned f = ev->kind == TERN_SIM_EV_DROP	 ? FATE_DROP
				     : ev->kind == TERN_SIM_EV_DUP   ? FATE_DUP
				     : ev->kind == TERN_SIM_EV_DELAY ? FATE_DELAY
								     : FATE_CORRUPT;
			/* The wire's verdict follows the SEND of the same packet at once. */
			if (last[h] && last[h]->t == ev->t_us &&
			    (!ev->seg_valid || last[h]->seg.seq == ev->tr.u.seg.seq))
				last[h]->fate |= f;
			else
				test_fail(__FILE__, __LINE__, "log event %zu: %s's wire event follows no send",
					  i, host_str(h));
			break;
		}
		case TERN_SIM_EV_STATE:
			if (r->nst[h] < RUN_MAX)
				r->st[h][r->nst[h]++] = (struct stchange){ev->t_us, ev->tr.u.state.from,
									ev->tr.u.state.to,
									ev->tr.u.state.lport,
									ev->tr.u.state.rport};
			break;
		case TERN_SIM_EV_ERROR:
			if (r->nerr[h] < 16)
				r->err[h][r->nerr[h]++] = (struct apperr){ev->t_us, ev->tr.u.error, ev->tr.fd};
			break;
		default:
			break;
		}
	}
}

/* Run a scenario by name with options (NULL: the defaults, seed 1). Keeps the finished
 * simulation for inspection. */
static struct run *run_scn_opts(const char *name, const struct scn_opts *o)
{
	struct run *r = calloc(1, sizeof(*r));
	REQUIRE(r);
	if (o)
		r->opts = *o;
	else
		r->opts.seed = 1;
	const struct scenario *sc = scenario_find(name);
	if (!sc) {
		test_fail(__FILE__, __LINE__, "no scenario '%s'", name);
		test_abort();
	}
	int rc = scn_run(sc, &r->opts, &r->log, NULL, NULL, &r->s);
	if (rc != 0) {
		test_fail(__FILE__, __LINE__, "scn_run(%s) = %d", name, rc);
		test_abort();
	}
	run_index(r);
	return r;
}

static struct run *run_scn(const char *name) { return run_scn_opts(name, NULL); }

static void run_free(struct run *r)
{
	scn_finish(r->s);
	scn_log_free(&r->log);
	free(r);
}

static void seg_desc(char *buf, size_t n, uint64_t t, uint16_t flags, uint32_t seq, uint32_t ack,
		     uint32_t len, uint16_t win, unsigned fate)
{
	char f[64];
	flag_str(f, flags);
	snprintf(buf, n, "t=%.6f %s seq=%u ack=%u len=%u win=%u%s%s%s%s", (double)t / 1e6, f, seq,
		 ack, len, win, fate & FATE_DROP ? " dropped" : "", fate & FATE_DUP ? " duplicated" : "",
		 fate & FATE_DELAY ? " delayed" : "", fate & FATE_CORRUPT ? " corrupted" : "");
}

/* The ordered list of segments host h sent is exactly x[0..n). SYNs carry exactly one option,
 * MSS 1460 (RFC 9293 §3.7.1: the MSS option goes on SYNs only); nothing else carries one. */
static void check_sent_(const char *file, int line, const struct run *r, int h,
			const struct xseg *x, size_t n)
{
	char got[160], want[160];
	size_t have = r->nsent[h];
	for (size_t k = 0; k < n || k < have; k++) {
		if (k < have)
			seg_desc(got, sizeof(got), r->sent[h][k].t, r->sent[h][k].seg.flags,
				 r->sent[h][k].seg.seq, r->sent[h][k].seg.ack, r->sent[h][k].seg.len,
				 r->sent[h][k].seg.win, r->sent[h][k].fate);
		if (k < n)
			seg_desc(want, sizeof(want), x[k].t, x[k].flags, x[k].seq, x[k].ack, x[k].len,
				 x[k].win, x[k].fate);
		if (k >= have) {
			test_fail(file, line, "%s sent no segment #%zu (want %s)", host_str(h), k, want);
			continue;
		}
		if (k >= n) {
			test_fail(file, line, "%s sent an extra segment #%zu: %s", host_str(h), k, got);
			continue;
		}
		const struct tern_seg_info *s = &r->sent[h][k].seg;
		if (strcmp(got, want) != 0)
			test_fail(file, line, "%s segment #%zu:\n        got  %s\n        want %s",
				  host_str(h), k, got, want);
		if (s->flags & F_SYN) {
			if (s->opts.has != TERN_OPT_MSS || s->opts.mss != 1460)
				test_fail(file, line, "%s segment #%zu: SYN options %#x mss %u, want MSS 1460 only",
					  host_str(h), k, s->opts.has, s->opts.mss);
		} else if (s->opts.has) {
			test_fail(file, line, "%s segment #%zu: options %#x on a segment without SYN",
				  host_str(h), k, s->opts.has);
		}
		if (s->urp)
			test_fail(file, line, "%s segment #%zu: urgent pointer %u", host_str(h), k, s->urp);
	}
}
#define CHECK_SENT(r, h, ...)                                                                 \
	check_sent_(__FILE__, __LINE__, (r), (h), (const struct xseg[]){__VA_ARGS__},         \
		    sizeof((const struct xseg[]){__VA_ARGS__}) / sizeof(struct xseg))

/* The ordered list of state changes of host h (all its connections) is exactly x[0..n). */
static void check_states_(const char *file, int line, const struct run *r, int h,
			  const struct xstate *x, size_t n)
{
	size_t have = r->nst[h];
	for (size_t k = 0; k < n || k < have; k++) {
		if (k >= have) {
			test_fail(file, line, "%s: no state change #%zu (want %s -> %s at %.6f)",
				  host_str(h), k, tern_state_name(x[k].from), tern_state_name(x[k].to),
				  (double)x[k].t / 1e6);
			continue;
		}
		const struct stchange *c = &r->st[h][k];
		if (k >= n) {
			test_fail(file, line, "%s: extra state change #%zu: %s -> %s at %.6f", host_str(h),
				  k, tern_state_name(c->from), tern_state_name(c->to), (double)c->t / 1e6);
			continue;
		}
		if (c->from != x[k].from || c->to != x[k].to || c->t != x[k].t)
			test_fail(file, line,
				  "%s state change #%zu: got %s -> %s at %.6f, want %s -> %s at %.6f",
				  host_str(h), k, tern_state_name(c->from), tern_state_name(c->to),
				  (double)c->t / 1e6, tern_state_name(x[k].from), tern_state_name(x[k].to),
				  (double)x[k].t / 1e6);
	}
}
#define CHECK_STATES(r, h, ...)                                                               \
	check_states_(__FILE__, __LINE__, (r), (h), (const struct xstate[]){__VA_ARGS__},     \
		      sizeof((const struct xstate[]){__VA_ARGS__}) / sizeof(struct xstate))

/* The errors posted to host h's application (TERN_SIM_EV_ERROR) are exactly x[0..n), and
 * the application saw the same ones (struct scn_app). */
static void check_errors_(const char *file, int line, const struct run *r, int h,
			  const struct xerr *x, size_t n)
{
	if (r->nerr[h] != n)
		test_fail(file, line, "%s: %zu error events, want %zu", host_str(h), r->nerr[h], n);
	for (size_t k = 0; k < n && k < r->nerr[h]; k++)
		if (r->err[h][k].err != x[k].err || r->err[h][k].t != x[k].t)
			test_fail(file, line, "%s error #%zu: got %s at %.6f, want %s at %.6f", host_str(h),
				  k, tern_errno_name(r->err[h][k].err), (double)r->err[h][k].t / 1e6,
				  tern_errno_name(x[k].err), (double)x[k].t / 1e6);
	const struct scn_app *app = &r->s->app[h];
	if (app->nerrors != n)
		test_fail(file, line, "%s: the application saw %u errors, want %zu", host_str(h),
			  app->nerrors, n);
	for (size_t k = 0; k < n && k < app->nerrors; k++)
		if (app->errors[k] != x[k].err)
			test_fail(file, line, "%s: the application's error #%zu is %s, want %s",
				  host_str(h), k, tern_errno_name(app->errors[k]), tern_errno_name(x[k].err));
}
#define CHECK_ERRORS(r, h, ...)                                                               \
	check_errors_(__FILE__, __LINE__, (r), (h), (const struct xerr[]){__VA_ARGS__},       \
		      sizeof((const struct xerr[]){__VA_ARGS__}) / sizeof(struct xerr))
#define CHECK_NO_ERRORS(r, h) check_errors_(__FILE__, __LINE__, (r), (h), NULL, 0)

/* What the application of host h counted. */
static void check_app_(const char *file, int line, const struct run *r, int h, unsigned connected,
		       unsigned accepted, unsigned eofs, uint64_t rx_bytes)
{
	const struct scn_app *a = &r->s->app[h];
	if (a->connected != connected || a->accepted != accepted || a->eofs != eofs ||
	    a->rx_bytes != rx_bytes)
		test_fail(file, line,
			  "%s's application: connected %u accepted %u eofs %u rx %llu, want %u %u %u %llu",
			  host_str(h), a->connected, a->accepted, a->eofs, (unsigned long long)a->rx_bytes,
			  connected, accepted, eofs, (unsigned long long)rx_bytes);
}
#define CHECK_APP(r, h, connected, accepted, eofs, rx)                                        \
	check_app_(__FILE__, __LINE__, (r), (h), (connected), (accepted), (eofs), (rx))

/* ---- what is left on each stack (tern_stack_foreach) ---- */

struct conn_list {
	struct tern_conn_info c[32];
	size_t n;
};

static void conn_collect(void *user, const struct tern_conn_info *c)
{
	struct conn_list *l = user;
	if (l->n < 32)
		l->c[l->n++] = *c;
}

/* Host h's stack holds exactly the connections x[0..n) (in any order). */
static void check_conns_(const char *file, int line, const struct run *r, int h,
			 const struct xconn *x, size_t n)
{
	struct conn_list l;
	memset(&l, 0, sizeof(l));
	size_t cnt = tern_stack_foreach(tern_sim_stack(r->s->sim, h), conn_collect, &l);
	if (cnt != n)
		test_fail(file, line, "%s holds %zu connections, want %zu", host_str(h), cnt, n);
	bool used[32] = {false};
	for (size_t k = 0; k < n; k++) {
		bool found = false;
		for (size_t i = 0; i < l.n && !found; i++) {
			if (used[i] || l.c[i].state != x[k].state)
				continue;
			if ((x[k].lport && l.c[i].lport != x[k].lport) ||
			    (x[k].rport && l.c[i].rport != x[k].rport))
				continue;
			used[i] = found = true;
		}
		if (!found)
			test_fail(file, line, "%s holds no %s connection %u > %u", host_str(h),
				  tern_state_name(x[k].state), x[k].lport, x[k].rport);
	}
	for (size_t i = 0; i < l.n; i++)
		if (!used[i])
			test_fail(file, line, "%s holds an unexpected %s connection %u > %u", host_str(h),
				  tern_state_name(l.c[i].state), l.c[i].lport, l.c[i].rport);
}
#define CHECK_CONNS(r, h, ...)                                                                \
	check_conns_(__FILE__, __LINE__, (r), (h), (const struct xconn[]){__VA_ARGS__},       \
		     sizeof((const struct xconn[]){__VA_ARGS__}) / sizeof(struct xconn))
#define CHECK_NO_CONNS(r, h) check_conns_(__FILE__, __LINE__, (r), (h), NULL, 0)

/* ---- the wire ---- */

static bool seg_same(const struct tern_seg_info *a, const struct tern_seg_info *b)
{
	return a->src == b->src && a->dst == b->dst && a->sport == b->sport && a->dport == b->dport &&
	       a->seq == b->seq && a->ack == b->ack && a->flags == b->flags && a->len == b->len &&
	       a->win == b->win;
}

static bool take_recv(const struct run *r, bool *used, int to, const struct tern_seg_info *seg,
		      uint64_t t_min, uint64_t t_exact)
{
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (used[i] || ev->kind != TERN_SIM_EV_RECV || ev->host != to)
			continue;
		if (!seg_same(&ev->tr.u.seg, seg))
			continue;
		if (t_exact ? ev->t_us != t_exact : ev->t_us < t_min)
			continue;
		used[i] = true;
		return true;
	}
	return false;
}

/* Every segment that was not lost arrived exactly one one-way delay later (a held-back one
 * later than that, a duplicated one twice); a lost or corrupted one never entered TCP; and
 * no host received anything that was not sent. */
static void check_delivery_(const char *file, int line, const struct run *r, uint64_t owd)
{
	bool *used = calloc(r->log.n + 1, 1);
	REQUIRE(used);
	char d[160];
	for (int h = 0; h < 3; h++) {
		size_t n = h < 2 ? r->nsent[h] : r->ninject;
		for (size_t k = 0; k < n; k++) {
			const struct sent *s = h < 2 ? &r->sent[h][k] : &r->inject[k];
			int to = s->seg.dst == SCN_ADDR_A ? A : B;
			seg_desc(d, sizeof(d), s->t, s->seg.flags, s->seg.seq, s->seg.ack, s->seg.len,
				 s->seg.win, s->fate);
			if (s->fate & (FATE_DROP | FATE_CORRUPT))
				continue;
			/* INJECT events carry their own delay: any time after sending. */
			bool exact = h < 2 && !(s->fate & FATE_DELAY);
			if (!take_recv(r, used, to, &s->seg, s->t + owd, exact ? s->t + owd : 0))
				test_fail(file, line, "%s's segment %s never arrived%s", h < 2 ? host_str(h) : "injected",
					  d, exact ? " one delay later" : "");
			if ((s->fate & FATE_DUP) && !take_recv(r, used, to, &s->seg, s->t + owd, 0))
				test_fail(file, line, "the copy of %s's segment %s never arrived",
					  host_str(h), d);
		}
	}
	for (size_t i = 0; i < r->log.n; i++) {
		const struct tern_sim_ev *ev = &r->log.ev[i].ev;
		if (ev->kind == TERN_SIM_EV_RECV && !used[i]) {
			seg_desc(d, sizeof(d), ev->t_us, ev->tr.u.seg.flags, ev->tr.u.seg.seq,
				 ev->tr.u.seg.ack, ev->tr.u.seg.len, ev->tr.u.seg.win, 0);
			test_fail(file, line, "%s received %s, which nobody sent", host_str(ev->host), d);
		}
	}
	free(used);
}
#define CHECK_DELIVERY(r, owd) check_delivery_(__FILE__, __LINE__, (r), (owd))

/* The wire did exactly this much: drops, duplicates, held-back and corrupted packets. */
#define CHECK_WIRE(r, drops, dups, delays, corrupts)                                          \
	do {                                                                                  \
		CHECK_EQ((r)->nwire[TERN_SIM_EV_DROP], (drops));                              \
		CHECK_EQ((r)->nwire[TERN_SIM_EV_DUP], (dups));                                \
		CHECK_EQ((r)->nwire[TERN_SIM_EV_DELAY], (delays));                            \
		CHECK_EQ((r)->nwire[TERN_SIM_EV_CORRUPT], (corrupts));                        \
	} while (0)

/* Nothing is left to happen: no packet in flight, no timer, and running the clock on another
 * ten minutes adds no event (no stray retransmission, no forgotten timer). */
static void check_quiet_(const char *file, int line, struct run *r)
{
	if (!tern_sim_idle(r->s->sim))
		test_fail(file, line, "the simulation is not idle at %.6f s",
			  (double)tern_sim_now(r->s->sim) / 1e6);
	size_t n = r->log.n;
	tern_sim_run_until(r->s->sim, tern_sim_now(r->s->sim) + SECS(600));
	if (r->log.n != n)
		test_fail(file, line, "%zu more events after the scenario ended (the first at %.6f s)",
			  r->log.n - n, (double)r->log.ev[n].ev.t_us / 1e6);
	run_index(r);
}
#define CHECK_QUIET(r) check_quiet_(__FILE__, __LINE__, (r))

/* Two logs are the same, event for event and field for field. */
static bool ev_equal(const struct scn_event *x, const struct scn_event *y)
{
	const struct tern_sim_ev *a = &x->ev, *b = &y->ev;
	if (a->kind != b->kind || a->t_us != b->t_us || a->host != b->host || a->peer != b->peer ||
	    a->seg_valid != b->seg_valid || a->tr.kind != b->tr.kind || a->tr.t_us != b->tr.t_us ||
	    a->tr.conn != b->tr.conn || a->tr.fd != b->tr.fd)
		return false;
	if ((a->tr.reason == NULL) != (b->tr.reason == NULL) ||
	    (a->tr.reason && strcmp(a->tr.reason, b->tr.reason) != 0))
		return false;
	if (strcmp(x->text, y->text) != 0)
		return false;
	switch (a->kind) {
	case TERN_SIM_EV_STATE:
		return a->tr.u.state.from == b->tr.u.state.from && a->tr.u.state.to == b->tr.u.state.to &&
		       a->tr.u.state.laddr == b->tr.u.state.laddr &&
		       a->tr.u.state.raddr == b->tr.u.state.raddr &&
		       a->tr.u.state.lport == b->tr.u.state.lport &&
		       a->tr.u.state.rport == b->tr.u.state.rport;
	case TERN_SIM_EV_ERROR:
		return a->tr.u.error == b->tr.u.error;
	case TERN_SIM_EV_ICMP:
		return a->tr.u.icmp.type == b->tr.u.icmp.type && a->tr.u.icmp.code == b->tr.u.icmp.code &&
		       a->tr.u.icmp.src == b->tr.u.icmp.src && a->tr.u.icmp.dst == b->tr.u.icmp.dst &&
		       a->tr.u.icmp.out == b->tr.u.icmp.out;
	case TERN_SIM_EV_APP:
		return true;
	default: {
		const struct tern_seg_info *s = &a->tr.u.seg, *t = &b->tr.u.seg;
		if (!seg_same(s, t) || s->urp != t->urp)
			return false;
		const struct tern_tcp_opts *o = &s->opts, *p = &t->opts;
		if (o->has != p->has || o->mss != p->mss || o->wscale != p->wscale ||
		    o->ts_val != p->ts_val || o->ts_ecr != p->ts_ecr || o->nsack != p->nsack)
			return false;
		for (int i = 0; i < o->nsack && i < 4; i++)
			if (o->sack[i].left != p->sack[i].left || o->sack[i].right != p->sack[i].right)
				return false;
		return true;
	}
	}
}

static void check_same_log_(const char *file, int line, const struct scn_log *x,
			    const struct scn_log *y, const char *what)
{
	if (x->n != y->n)
		test_fail(file, line, "%s: %zu events vs %zu", what, x->n, y->n);
	for (size_t i = 0; i < x->n && i < y->n; i++)
		if (!ev_equal(&x->ev[i], &y->ev[i])) {
			test_fail(file, line, "%s: event %zu differs (kind %d at %.6f vs kind %d at %.6f)",
				  what, i, x->ev[i].ev.kind, (double)x->ev[i].ev.t_us / 1e6, y->ev[i].ev.kind,
				  (double)y->ev[i].ev.t_us / 1e6);
			return;
		}
}
#define CHECK_SAME_LOG(x, y, what) check_same_log_(__FILE__, __LINE__, (x), (y), (what))

#endif
