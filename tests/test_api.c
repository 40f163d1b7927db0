/*
 * The sockets API contract, one behaviour per test: return values and errno codes, readiness
 * masks, socket options, limits, ephemeral ports and the settings table. Where a peer is
 * needed the tests use the simulator with two hosts and no delay (a = 10.0.0.1 the client,
 * b = 10.0.0.2 the server); otherwise a bare stack, or two bare stacks joined by a little
 * in-test wire where the simulator's own event dispatch would get in the way.
 *
 * The reference behaviour is Linux's unless tern.h documents otherwise.
 */
#include "test.h"
#include "tern/tern.h"
#include "tern/sim.h"

#include <stdbool.h>
#include <stdlib.h>

#define ADDR_A TERN_IP4(10, 0, 0, 1)
#define ADDR_B TERN_IP4(10, 0, 0, 2)
#define MSEC(x) ((uint64_t)(x) * 1000u)
#define SEC(x) ((uint64_t)(x) * 1000000u)

/* ---- helpers: the simulator with two hosts ---- */

struct net {
	struct tern_sim *sim;
	struct tern_stack *a, *b;
	/* segments sent, as the trace saw them */
	struct sent {
		uint64_t t;
		int host;
		struct tern_seg_info seg;
	} sent[256];
	unsigned nsent;
};

static void net_trace(void *user, const struct tern_sim_ev *ev)
{
	struct net *n = user;
	if (ev->kind != TERN_SIM_EV_SEND || n->nsent >= 256)
		return;
	n->sent[n->nsent].t = ev->t_us;
	n->sent[n->nsent].host = ev->host;
	n->sent[n->nsent].seg = ev->tr.u.seg;
	n->nsent++;
}

static struct net *net_new2(const struct tern_settings *sa, const struct tern_settings *sb)
{
	struct net *n = calloc(1, sizeof(*n));
	REQUIRE(n != NULL);
	n->sim = tern_sim_new(test_seed(1));
	REQUIRE(n->sim != NULL);
	REQUIRE_EQ(tern_sim_add_host(n->sim, "a", ADDR_A, sa), 0);
	REQUIRE_EQ(tern_sim_add_host(n->sim, "b", ADDR_B, sb), 1);
	n->a = tern_sim_stack(n->sim, 0);
	n->b = tern_sim_stack(n->sim, 1);
	tern_sim_set_trace(n->sim, net_trace, n);
	return n;
}

static struct net *net_new(void) { return net_new2(NULL, NULL); }

static void net_free(struct net *n)
{
	tern_sim_free(n->sim);
	free(n);
}

/* Let ms of virtual time pass (0: deliver what is due now). */
static void net_run(struct net *n, uint64_t ms)
{
	tern_sim_run_until(n->sim, tern_sim_now(n->sim) + MSEC(ms));
}

static int listen_on(struct tern_stack *st, uint16_t port, int reuse)
{
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	REQUIRE(fd >= 0);
	if (reuse)
		REQUIRE_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &reuse,
					   sizeof(reuse)), 0);
	struct tern_sockaddr sa = {0, port};
	REQUIRE_EQ(tern_bind(st, fd, &sa), 0);
	REQUIRE_EQ(tern_listen(st, fd, 16), 0);
	return fd;
}

static int connect_to(struct net *n, uint16_t port)
{
	int fd = tern_socket(n->a, TERN_SOCK_STREAM);
	REQUIRE(fd >= 0);
	struct tern_sockaddr to = {ADDR_B, port};
	REQUIRE_EQ(tern_connect(n->a, fd, &to), -EINPROGRESS);
	return fd;
}

/* An established connection: *cfd on a, *sfd on b (accepted from listener *lfd). */
static void pair(struct net *n, uint16_t port, int *cfd, int *sfd, int *lfd)
{
	*lfd = listen_on(n->b, port, 0);
	*cfd = connect_to(n, port);
	net_run(n, 1);
	REQUIRE_EQ(tern_sock_state(n->a, *cfd), TERN_STATE_ESTABLISHED);
	*sfd = tern_accept(n->b, *lfd, NULL);
	REQUIRE(*sfd >= 0);
}

static int so_error(struct tern_stack *st, int fd)
{
	int e = -1;
	size_t len = sizeof(e);
	REQUIRE_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &e, &len), 0);
	return e;
}

static int get_int(struct tern_stack *st, int fd, int level, int name)
{
	int v = -12345;
	size_t len = sizeof(v);
	int rc = tern_getsockopt(st, fd, level, name, &v, &len);
	CHECK_EQ(rc, 0);
	CHECK_EQ(len, sizeof(int));
	return v;
}

static int set_int(struct tern_stack *st, int fd, int level, int name, int v)
{
	return tern_setsockopt(st, fd, level, name, &v, sizeof(v));
}

static struct tern_stack *bare(const struct tern_settings *s)
{
	struct tern_stack *st = tern_stack_new(s, 0);
	REQUIRE(st != NULL);
	REQUIRE_EQ(tern_stack_add_addr(st, ADDR_A), 0);
	return st;
}

/* The first segment host sent with all of the flags in `with` and none of `without`. */
static const struct tern_seg_info *find_sent(const struct net *n, int host, uint16_t with,
					     uint16_t without)
{
	for (unsigned i = 0; i < n->nsent; i++) {
		const struct tern_seg_info *g = &n->sent[i].seg;
		if (n->sent[i].host == host && (g->flags & with) == with && !(g->flags & without))
			return g;
	}
	return NULL;
}

/* ---- helpers: two bare stacks and a wire the test drives ---- */

struct wpkt {
	int to;
	size_t len;
	uint8_t data[2048];
};

struct wire {
	struct tern_stack *st[2];
	struct wend {
		struct wire *w;
		int idx;
	} end[2];
	struct wpkt *q;
	size_t head, n, cap;
	uint64_t now;
};

static int wire_tx(void *ctx, const struct tern_iovec *iov, unsigned cnt, size_t total)
{
	struct wend *e = ctx;
	struct wire *w = e->w;
	if (total > sizeof(w->q[0].data))
		return -EMSGSIZE;
	if (w->head + w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->q = realloc(w->q, w->cap * sizeof(*w->q));
		if (!w->q)
			abort();
	}
	struct wpkt *p = &w->q[w->head + w->n++];
	p->to = !e->idx;
	p->len = 0;
	for (unsigned i = 0; i < cnt; i++) {
		memcpy(p->data + p->len, iov[i].base, iov[i].len);
		p->len += iov[i].len;
	}
	return 0;
}

static void wire_init(struct wire *w)
{
	memset(w, 0, sizeof(*w));
	for (int i = 0; i < 2; i++) {
		struct tern_settings s;
		tern_settings_default(&s);
		s.seed = test_seed(7) + (uint64_t)i;
		w->st[i] = tern_stack_new(&s, 0);
		REQUIRE(w->st[i] != NULL);
		REQUIRE_EQ(tern_stack_add_addr(w->st[i], i ? ADDR_B : ADDR_A), 0);
		w->end[i] = (struct wend){w, i};
		struct tern_link l = {.transmit = wire_tx, .ctx = &w->end[i], .flags = 0};
		tern_stack_set_link(w->st[i], &l);
	}
}

/* Deliver everything in flight (and whatever it causes). */
static void wire_pump(struct wire *w)
{
	while (w->n) {
		struct wpkt p = w->q[w->head];
		w->head++;
		w->n--;
		if (!w->n)
			w->head = 0;
		tern_stack_input(w->st[p.to], p.data, p.len, w->now);
	}
}

static void wire_free(struct wire *w)
{
	tern_stack_free(w->st[0]);
	tern_stack_free(w->st[1]);
	free(w->q);
}

/* ========================================================================================= */
/* Descriptors and addresses                                                                 */
/* ========================================================================================= */

TEST(api_socket_bad_type)
{
	struct tern_stack *st = bare(NULL);
	CHECK_EQ(tern_socket(st, 0), -EPROTONOSUPPORT);
	CHECK_EQ(tern_socket(st, 3), -EPROTONOSUPPORT); /* SOCK_RAW */
	CHECK_EQ(tern_socket(st, -1), -EPROTONOSUPPORT);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(fd, 0); /* the lowest free descriptor */
	tern_stack_free(st);
}

TEST(api_lowest_free_descriptor)
{
	struct tern_stack *st = bare(NULL);
	CHECK_EQ(tern_socket(st, TERN_SOCK_STREAM), 0);
	CHECK_EQ(tern_socket(st, TERN_SOCK_STREAM), 1);
	CHECK_EQ(tern_socket(st, TERN_SOCK_STREAM), 2);
	CHECK_EQ(tern_close(st, 1), 0);
	CHECK_EQ(tern_socket(st, TERN_SOCK_STREAM), 1);
	CHECK_EQ(tern_socket(st, TERN_SOCK_STREAM), 3);
	tern_stack_free(st);
}

TEST(api_unknown_fd_ebadf)
{
	struct tern_stack *st = bare(NULL);
	int closed = tern_socket(st, TERN_SOCK_STREAM);
	REQUIRE(closed >= 0);
	REQUIRE_EQ(tern_close(st, closed), 0);
	const int bad[] = {-1, -1000, 5, 64, 1 << 20, closed};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = bad[i];
		struct tern_sockaddr sa = {ADDR_B, 80};
		char buf[8] = {0};
		int v = 1;
		size_t len = sizeof(v);
		struct tern_tcp_info info;
		CHECK_EQ(tern_bind(st, fd, &sa), -EBADF);
		CHECK_EQ(tern_listen(st, fd, 1), -EBADF);
		CHECK_EQ(tern_accept(st, fd, NULL), -EBADF);
		CHECK_EQ(tern_connect(st, fd, &sa), -EBADF);
		CHECK_EQ(tern_send(st, fd, buf, 1, 0), -EBADF);
		CHECK_EQ(tern_recv(st, fd, buf, sizeof(buf), 0), -EBADF);
		CHECK_EQ(tern_shutdown(st, fd, TERN_SHUT_WR), -EBADF);
		CHECK_EQ(tern_close(st, fd), -EBADF);
		CHECK_EQ(tern_abort(st, fd), -EBADF);
		CHECK_EQ(tern_getsockname(st, fd, &sa), -EBADF);
		CHECK_EQ(tern_getpeername(st, fd, &sa), -EBADF);
		CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &v, sizeof(v)), -EBADF);
		CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &v, &len), -EBADF);
		CHECK_EQ(tern_sock_state(st, fd), -EBADF);
		CHECK_EQ(tern_sock_info(st, fd, &info), -EBADF);
		CHECK_EQ(tern_sock_events(st, fd), -EBADF);
	}
	tern_stack_free(st);
}

TEST(api_bind_twice_einval)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 5000}, sb = {0, 5001};
	CHECK_EQ(tern_bind(st, fd, &sa), 0);
	CHECK_EQ(tern_bind(st, fd, &sb), -EINVAL);
	CHECK_EQ(tern_bind(st, fd, &sa), -EINVAL);
	struct tern_sockaddr got;
	CHECK_EQ(tern_getsockname(st, fd, &got), 0);
	CHECK_EQ(got.port, 5000);
	tern_stack_free(st);
}

TEST(api_bind_nonlocal_eaddrnotavail)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr other = {ADDR_B, 5000};
	CHECK_EQ(tern_bind(st, fd, &other), -EADDRNOTAVAIL);
	/* The socket is still unbound: a local address works afterwards. */
	struct tern_sockaddr mine = {ADDR_A, 5000};
	CHECK_EQ(tern_bind(st, fd, &mine), 0);
	tern_stack_free(st);
}

TEST(api_bind_same_port_eaddrinuse)
{
	struct tern_stack *st = bare(NULL);
	int a = tern_socket(st, TERN_SOCK_STREAM), b = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr any = {0, 5000}, mine = {ADDR_A, 5000};
	CHECK_EQ(tern_bind(st, a, &any), 0);
	CHECK_EQ(tern_bind(st, b, &any), -EADDRINUSE);
	CHECK_EQ(tern_bind(st, b, &mine), -EADDRINUSE); /* the wildcard covers it */
	/* SO_REUSEADDR on one of them only is not enough. */
	CHECK_EQ(set_int(st, b, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(tern_bind(st, b, &any), -EADDRINUSE);
	/* Once the first is closed, the port is free. */
	CHECK_EQ(tern_close(st, a), 0);
	CHECK_EQ(tern_bind(st, b, &any), 0);
	tern_stack_free(st);
}

TEST(api_bind_same_port_reuseaddr_both)
{
	struct tern_stack *st = bare(NULL);
	int a = tern_socket(st, TERN_SOCK_STREAM), b = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(st, a, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(set_int(st, b, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	struct tern_sockaddr any = {0, 5000};
	CHECK_EQ(tern_bind(st, a, &any), 0);
	CHECK_EQ(tern_bind(st, b, &any), 0);
	tern_stack_free(st);
}

TEST(api_bind_same_port_different_addresses)
{
	/* Linux: two specific, different local addresses never conflict. */
	struct tern_stack *st = bare(NULL);
	REQUIRE_EQ(tern_stack_add_addr(st, TERN_IP4(10, 0, 0, 9)), 0);
	int a = tern_socket(st, TERN_SOCK_STREAM), b = tern_socket(st, TERN_SOCK_STREAM);
	int c = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr one = {ADDR_A, 5000}, two = {TERN_IP4(10, 0, 0, 9), 5000};
	struct tern_sockaddr any = {0, 5000};
	CHECK_EQ(tern_bind(st, a, &one), 0);
	CHECK_EQ(tern_bind(st, b, &two), 0);
	CHECK_EQ(tern_bind(st, c, &any), -EADDRINUSE);
	CHECK_EQ(tern_listen(st, a, 1), 0);
	CHECK_EQ(tern_listen(st, b, 1), 0);
	tern_stack_free(st);
}

TEST(api_listener_port_not_shared_with_reuseaddr)
{
	struct tern_stack *st = bare(NULL);
	struct tern_sockaddr any = {0, 5000};
	/* A listener holds its port even against SO_REUSEADDR on both sides. */
	int l = tern_socket(st, TERN_SOCK_STREAM), b = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(st, l, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(set_int(st, b, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(tern_bind(st, l, &any), 0);
	CHECK_EQ(tern_listen(st, l, 4), 0);
	CHECK_EQ(tern_bind(st, b, &any), -EADDRINUSE);
	/* Two sockets sharing a port with SO_REUSEADDR: neither may then listen. */
	struct tern_sockaddr p2 = {0, 5001};
	int x = tern_socket(st, TERN_SOCK_STREAM), y = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(st, x, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(set_int(st, y, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(tern_bind(st, x, &p2), 0);
	CHECK_EQ(tern_bind(st, y, &p2), 0);
	CHECK_EQ(tern_listen(st, x, 4), -EADDRINUSE);
	CHECK_EQ(tern_sock_state(st, x), TERN_STATE_CLOSED);
	CHECK_EQ(tern_close(st, y), 0);
	CHECK_EQ(tern_listen(st, x, 4), 0);
	tern_stack_free(st);
}

/* A connection on b's port 8080 closed by b first leaves a TIME_WAIT record there. The
 * listener had SO_REUSEADDR = reuse (its child inherits it). */
static struct net *timewait_on_8080(int reuse)
{
	struct net *n = net_new();
	int l = listen_on(n->b, 8080, reuse);
	int cfd = connect_to(n, 8080);
	net_run(n, 1);
	int sfd = tern_accept(n->b, l, NULL);
	REQUIRE(sfd >= 0);
	REQUIRE_EQ(tern_close(n->b, sfd), 0); /* b closes first: b gets TIME_WAIT */
	net_run(n, 1);
	char ch;
	REQUIRE_EQ(tern_recv(n->a, cfd, &ch, 1, 0), 0);
	REQUIRE_EQ(tern_close(n->a, cfd), 0);
	net_run(n, 1);
	REQUIRE_EQ(tern_close(n->b, l), 0);
	REQUIRE_EQ(tern_stack_foreach(n->b, NULL, NULL), 1); /* the TIME_WAIT record alone */
	return n;
}

TEST(api_bind_timewait_needs_reuseaddr)
{
	struct net *n = timewait_on_8080(1);
	struct tern_sockaddr p = {0, 8080};
	int s1 = tern_socket(n->b, TERN_SOCK_STREAM);
	CHECK_EQ(tern_bind(n->b, s1, &p), -EADDRINUSE);
	int s2 = tern_socket(n->b, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(n->b, s2, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(tern_bind(n->b, s2, &p), 0);
	CHECK_EQ(tern_listen(n->b, s2, 4), 0);
	/* After 2*MSL the record is gone and any socket may bind. */
	CHECK_EQ(tern_close(n->b, s2), 0);
	net_run(n, 60001);
	CHECK_EQ(tern_stack_foreach(n->b, NULL, NULL), 0);
	CHECK_EQ(tern_bind(n->b, s1, &p), 0);
	net_free(n);
}

TEST(api_bind_timewait_without_reuseaddr_blocks_everyone)
{
	/* The old socket lacked SO_REUSEADDR: the new one's is not enough (both must have it). */
	struct net *n = timewait_on_8080(0);
	struct tern_sockaddr p = {0, 8080};
	int s = tern_socket(n->b, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(n->b, s, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(tern_bind(n->b, s, &p), -EADDRINUSE);
	net_free(n);
}

TEST(api_listen_unbound_picks_port)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {1, 1};
	CHECK_EQ(tern_getsockname(st, fd, &sa), 0);
	CHECK_EQ(sa.addr, 0);
	CHECK_EQ(sa.port, 0);
	CHECK_EQ(tern_listen(st, fd, 8), 0);
	CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_LISTEN);
	CHECK_EQ(tern_getsockname(st, fd, &sa), 0);
	CHECK_EQ(sa.addr, 0);
	CHECK(sa.port >= 32768 && sa.port <= 60999);
	/* listen() again only changes the backlog. */
	CHECK_EQ(tern_listen(st, fd, 2), 0);
	struct tern_sockaddr again;
	CHECK_EQ(tern_getsockname(st, fd, &again), 0);
	CHECK_EQ(again.port, sa.port);
	tern_stack_free(st);
}

TEST(api_accept_errors)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_accept(st, fd, NULL), -EINVAL); /* not listening */
	struct tern_sockaddr sa = {0, 80};
	CHECK_EQ(tern_bind(st, fd, &sa), 0);
	CHECK_EQ(tern_accept(st, fd, NULL), -EINVAL); /* bound, still not listening */
	CHECK_EQ(tern_listen(st, fd, 8), 0);
	struct tern_sockaddr peer = {7, 7};
	CHECK_EQ(tern_accept(st, fd, &peer), -EAGAIN); /* nothing queued */
	tern_stack_free(st);
}

TEST(api_listen_on_connected_einval)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_listen(n->a, c, 4), -EINVAL);
	CHECK_EQ(tern_listen(n->b, s, 4), -EINVAL);
	/* connect() on a listener: Linux says EISCONN */
	struct tern_sockaddr to = {ADDR_A, 80};
	CHECK_EQ(tern_connect(n->b, l, &to), -EISCONN);
	net_free(n);
}

/* ========================================================================================= */
/* connect()                                                                                 */
/* ========================================================================================= */

TEST(api_connect_inprogress_already_isconn)
{
	struct net *n = net_new();
	int l = listen_on(n->b, 80, 0);
	int fd = tern_socket(n->a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	CHECK_EQ(tern_connect(n->a, fd, &to), -EINPROGRESS);
	CHECK_EQ(tern_sock_state(n->a, fd), TERN_STATE_SYN_SENT);
	CHECK_EQ(tern_connect(n->a, fd, &to), -EALREADY);
	net_run(n, 1);
	CHECK_EQ(tern_sock_state(n->a, fd), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_connect(n->a, fd, &to), -EISCONN);
	struct tern_sockaddr other = {ADDR_B, 81};
	CHECK_EQ(tern_connect(n->a, fd, &other), -EISCONN);
	CHECK_EQ(so_error(n->a, fd), 0);
	int s = tern_accept(n->b, l, NULL);
	CHECK(s >= 0);
	net_free(n);
}

TEST(api_connect_refused_so_error_and_err_event)
{
	struct net *n = net_new();
	int fd = connect_to(n, 81); /* nobody listens on 81 */
	net_run(n, 1);
	CHECK_EQ(tern_sock_state(n->a, fd), TERN_STATE_CLOSED);
	int ev = tern_sock_events(n->a, fd);
	CHECK(ev & TERN_EV_ERR);
	CHECK(ev & TERN_EV_HUP);
	CHECK_EQ(so_error(n->a, fd), ECONNREFUSED);
	/* SO_ERROR is read and cleared. */
	CHECK_EQ(so_error(n->a, fd), 0);
	CHECK(!(tern_sock_events(n->a, fd) & TERN_EV_ERR));
	CHECK_EQ(tern_stack_stats(n->a)->tcp_attempt_fails, 1);
	CHECK_EQ(tern_stack_stats(n->b)->tcp_no_port, 1);
	CHECK_EQ(tern_stack_stats(n->b)->tcp_rst_out, 1);
	net_free(n);
}

TEST(api_connect_failure_reported_by_next_connect)
{
	struct net *n = net_new();
	int fd = connect_to(n, 81);
	net_run(n, 1);
	struct tern_sockaddr to = {ADDR_B, 81};
	/* The outcome of the attempt, as a second connect() on Linux reports it. */
	CHECK_EQ(tern_connect(n->a, fd, &to), -ECONNREFUSED);
	CHECK_EQ(so_error(n->a, fd), 0); /* reported once */
	net_free(n);
}

TEST(api_connect_needs_address_and_port)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr noport = {ADDR_B, 0}, noaddr = {0, 80};
	CHECK(tern_connect(st, fd, &noport) < 0);
	CHECK(tern_connect(st, fd, &noaddr) < 0);
	CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_CLOSED);
	CHECK_EQ(tern_connect(st, fd, NULL), -EINVAL);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* send() and recv()                                                                         */
/* ========================================================================================= */

TEST(api_send_before_connect_enotconn)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_send(st, fd, "x", 1, 0), -ENOTCONN);
	struct tern_sockaddr sa = {0, 80};
	CHECK_EQ(tern_bind(st, fd, &sa), 0);
	CHECK_EQ(tern_send(st, fd, "x", 1, 0), -ENOTCONN);
	CHECK_EQ(tern_listen(st, fd, 1), 0);
	CHECK_EQ(tern_send(st, fd, "x", 1, 0), -ENOTCONN);
	tern_stack_free(st);
}

TEST(api_send_while_connecting_eagain)
{
	struct net *n = net_new();
	listen_on(n->b, 80, 0);
	int fd = connect_to(n, 80);
	CHECK_EQ(tern_send(n->a, fd, "x", 1, 0), -EAGAIN);
	net_run(n, 1);
	CHECK_EQ(tern_send(n->a, fd, "x", 1, 0), 1);
	net_free(n);
}

TEST(api_send_after_shutdown_epipe)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_shutdown(n->a, c, TERN_SHUT_WR), 0);
	CHECK_EQ(tern_send(n->a, c, "x", 1, 0), -EPIPE);
	CHECK_EQ(tern_send(n->a, c, "x", 1, TERN_MSG_NOSIGNAL), -EPIPE);
	/* The other direction still works. */
	CHECK_EQ(tern_send(n->b, s, "yz", 2, 0), 2);
	net_run(n, 1);
	char buf[4];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 2);
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), 0), 0); /* a's FIN */
	net_free(n);
}

TEST(api_send_full_buffer_eagain)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(set_int(n->a, c, TERN_SOL_SOCKET, TERN_SO_SNDBUF, 1000), 0);
	CHECK_EQ(get_int(n->a, c, TERN_SOL_SOCKET, TERN_SO_SNDBUF), 1000);
	static uint8_t big[5000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	CHECK_EQ(tern_send(n->a, c, big, sizeof(big), 0), 1000); /* a partial write */
	CHECK(!(tern_sock_events(n->a, c) & TERN_EV_OUT));
	CHECK_EQ(tern_send(n->a, c, big, sizeof(big), 0), -EAGAIN);
	net_run(n, 1); /* acknowledged: room again */
	CHECK(tern_sock_events(n->a, c) & TERN_EV_OUT);
	CHECK_EQ(tern_send(n->a, c, big + 1000, sizeof(big) - 1000, 0), 1000);
	net_run(n, 1);
	uint8_t got[4000];
	CHECK_EQ(tern_recv(n->b, s, got, sizeof(got), 0), 2000);
	CHECK_MEM(got, big, 2000);
	net_free(n);
}

TEST(api_send_zero_bytes)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	uint64_t out = tern_stack_stats(n->a)->tcp_out;
	CHECK_EQ(tern_send(n->a, c, "", 0, 0), 0);
	net_run(n, 1);
	CHECK_EQ(tern_stack_stats(n->a)->tcp_out, out); /* nothing sent */
	net_free(n);
}

TEST(api_recv_nothing_eagain)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	char buf[16];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), TERN_MSG_DONTWAIT), -EAGAIN);
	/* Before connecting, and on a listener: not connected. */
	int fresh = tern_socket(n->a, TERN_SOCK_STREAM);
	CHECK_EQ(tern_recv(n->a, fresh, buf, sizeof(buf), 0), -ENOTCONN);
	CHECK_EQ(tern_recv(n->b, l, buf, sizeof(buf), 0), -ENOTCONN);
	net_free(n);
}

TEST(api_recv_after_fin_zero)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_send(n->b, s, "hello", 5, 0), 5);
	CHECK_EQ(tern_shutdown(n->b, s, TERN_SHUT_WR), 0);
	net_run(n, 1);
	char buf[16];
	/* The data first, then end of stream, and again end of stream. */
	CHECK_EQ(tern_recv(n->a, c, buf, 3, 0), 3);
	CHECK_EQ(tern_recv(n->a, c, buf + 3, sizeof(buf), 0), 2);
	CHECK_MEM(buf, "hello", 5);
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_CLOSE_WAIT);
	net_free(n);
}

TEST(api_recv_after_rst_econnreset_once)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_abort(n->b, s), 0);
	net_run(n, 1);
	char buf[16];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), -ECONNRESET);
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(so_error(n->a, c), 0);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_CLOSED);
	/* Sending on a reset connection: EPIPE (the error was taken). */
	CHECK_EQ(tern_send(n->a, c, "x", 1, 0), -EPIPE);
	net_free(n);
}

TEST(api_send_after_rst_reports_econnreset)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_abort(n->b, s), 0);
	net_run(n, 1);
	CHECK_EQ(tern_send(n->a, c, "x", 1, 0), -ECONNRESET);
	CHECK_EQ(tern_send(n->a, c, "x", 1, 0), -EPIPE);
	net_free(n);
}

TEST(api_recv_peek)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_send(n->a, c, "abcdef", 6, 0), 6);
	net_run(n, 1);
	char buf[16];
	CHECK_EQ(tern_recv(n->b, s, buf, 4, TERN_MSG_PEEK), 4);
	CHECK_MEM(buf, "abcd", 4);
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), TERN_MSG_PEEK), 6);
	struct tern_tcp_info info;
	CHECK_EQ(tern_sock_info(n->b, s, &info), 0);
	CHECK_EQ(info.rcv_queue, 6);
	CHECK(tern_sock_events(n->b, s) & TERN_EV_IN);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), 0), 6);
	CHECK_MEM(buf, "abcdef", 6);
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), TERN_MSG_PEEK), -EAGAIN);
	net_free(n);
}

TEST(api_shutdown_errors)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_shutdown(st, fd, TERN_SHUT_WR), -ENOTCONN);
	CHECK_EQ(tern_shutdown(st, fd, TERN_SHUT_RDWR), -ENOTCONN);
	CHECK_EQ(tern_shutdown(st, fd, 3), -EINVAL);
	CHECK_EQ(tern_shutdown(st, fd, -1), -EINVAL);
	CHECK_EQ(tern_listen(st, fd, 1), 0);
	CHECK_EQ(tern_shutdown(st, fd, TERN_SHUT_RD), -ENOTCONN);
	tern_stack_free(st);
}

TEST(api_shutdown_rd_then_recv_zero)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_shutdown(n->a, c, TERN_SHUT_RD), 0);
	char buf[4];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_ESTABLISHED); /* nothing sent */
	CHECK_EQ(tern_send(n->a, c, "x", 1, 0), 1); /* writing still works */
	net_free(n);
}

/* ========================================================================================= */
/* Readiness                                                                                 */
/* ========================================================================================= */

TEST(api_events_fresh_socket_hup_out)
{
	/* Linux's tcp_poll(): an unconnected socket is TCP_CLOSE, hence HUP, and writable. */
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_sock_events(st, fd), TERN_EV_HUP | TERN_EV_OUT);
	tern_stack_free(st);
}

TEST(api_events_connecting_none)
{
	struct net *n = net_new();
	int fd = connect_to(n, 80);
	CHECK_EQ(tern_sock_events(n->a, fd), 0);
	net_free(n);
}

TEST(api_events_established_data_fin_hup)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_sock_events(n->a, c), TERN_EV_OUT);
	CHECK_EQ(tern_sock_events(n->b, s), TERN_EV_OUT);
	CHECK_EQ(tern_send(n->b, s, "data", 4, 0), 4);
	net_run(n, 1);
	CHECK_EQ(tern_sock_events(n->a, c), TERN_EV_IN | TERN_EV_OUT);
	char buf[8];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), 4);
	CHECK_EQ(tern_sock_events(n->a, c), TERN_EV_OUT);
	CHECK_EQ(tern_shutdown(n->b, s, TERN_SHUT_WR), 0);
	net_run(n, 1);
	/* Peer FIN: readable (end of stream) and RDHUP; still writable. */
	CHECK_EQ(tern_sock_events(n->a, c), TERN_EV_IN | TERN_EV_RDHUP | TERN_EV_OUT);
	/* Both directions done: HUP. */
	CHECK_EQ(tern_shutdown(n->a, c, TERN_SHUT_WR), 0);
	CHECK(tern_sock_events(n->a, c) & TERN_EV_HUP);
	net_run(n, 1);
	CHECK(tern_sock_events(n->a, c) & TERN_EV_HUP);
	CHECK(tern_sock_events(n->b, s) & TERN_EV_HUP);
	net_free(n);
}

TEST(api_events_reset_err_hup)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_abort(n->b, s), 0);
	net_run(n, 1);
	int ev = tern_sock_events(n->a, c);
	CHECK_EQ(ev & (TERN_EV_ERR | TERN_EV_HUP), TERN_EV_ERR | TERN_EV_HUP);
	net_free(n);
}

TEST(api_events_listener_in)
{
	struct net *n = net_new();
	int l = listen_on(n->b, 80, 0);
	CHECK_EQ(tern_sock_events(n->b, l), 0);
	connect_to(n, 80);
	net_run(n, 1);
	CHECK_EQ(tern_sock_events(n->b, l), TERN_EV_IN);
	int s = tern_accept(n->b, l, NULL);
	CHECK(s >= 0);
	CHECK_EQ(tern_sock_events(n->b, l), 0);
	net_free(n);
}

static int count_fd(const struct tern_event *ev, int n, int fd)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += ev[i].fd == fd;
	return k;
}

TEST(api_stack_events_once_per_call)
{
	struct wire w;
	wire_init(&w);
	struct tern_stack *a = w.st[0], *b = w.st[1];
	int l = tern_socket(b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(b, l, &sa), 0);
	REQUIRE_EQ(tern_listen(b, l, 8), 0);
	int c = tern_socket(a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	REQUIRE_EQ(tern_connect(a, c, &to), -EINPROGRESS);
	wire_pump(&w);
	struct tern_event ev[16];
	int n = tern_stack_events(a, ev, 16);
	CHECK_EQ(count_fd(ev, n, c), 1); /* SYN_SENT then ESTABLISHED: one entry */
	for (int i = 0; i < n; i++)
		if (ev[i].fd == c)
			CHECK_EQ(ev[i].events, TERN_EV_OUT);
	CHECK_EQ(tern_stack_events(a, ev, 16), 0); /* nothing new */
	n = tern_stack_events(b, ev, 16);
	CHECK_EQ(count_fd(ev, n, l), 1);
	int s = tern_accept(b, l, NULL);
	REQUIRE(s >= 0);
	tern_stack_events(b, ev, 16);
	/* Several changes to one socket between two calls: reported once, as it is now. */
	CHECK_EQ(tern_send(b, s, "one", 3, 0), 3);
	wire_pump(&w);
	CHECK_EQ(tern_send(b, s, "two", 3, 0), 3);
	wire_pump(&w);
	CHECK_EQ(tern_shutdown(b, s, TERN_SHUT_WR), 0);
	wire_pump(&w);
	n = tern_stack_events(a, ev, 16);
	CHECK_EQ(n, 1);
	CHECK_EQ(count_fd(ev, n, c), 1);
	CHECK_EQ(ev[0].events, TERN_EV_IN | TERN_EV_RDHUP | TERN_EV_OUT);
	/* A short output array: the rest comes with the next call, none lost or repeated. */
	int fds[6];
	for (int i = 0; i < 6; i++) {
		fds[i] = tern_socket(a, TERN_SOCK_STREAM);
		REQUIRE_EQ(tern_connect(a, fds[i], &to), -EINPROGRESS);
	}
	wire_pump(&w);
	int seen[6] = {0};
	int total = 0;
	while ((n = tern_stack_events(a, ev, 4)) > 0) {
		CHECK(n <= 4);
		for (int i = 0; i < n; i++)
			for (int k = 0; k < 6; k++)
				seen[k] += ev[i].fd == fds[k];
		total += n;
	}
	CHECK_EQ(total, 6);
	for (int k = 0; k < 6; k++)
		CHECK_EQ(seen[k], 1);
	/* A closed descriptor is not reported. */
	CHECK_EQ(tern_send(a, c, "x", 1, 0), 1);
	wire_pump(&w);
	CHECK_EQ(tern_close(a, c), 0);
	n = tern_stack_events(a, ev, 16);
	CHECK_EQ(count_fd(ev, n, c), 0);
	wire_free(&w);
}

/* ========================================================================================= */
/* Socket options                                                                            */
/* ========================================================================================= */

TEST(api_sockopt_socket_level_round_trip)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR), 0);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 1), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR), 1);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, 0), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR), 0);

	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE), 0);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE), 1);

	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF), 16384); /* wmem_default */
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF), 131072); /* rmem_default */
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, 4096), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF), 4096);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, 8192), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF), 8192);
	/* Clamped to wmem_max / rmem_max and to a minimum, never refused. */
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, 1 << 30), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF), 4194304);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, 1 << 30), 0);
	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF), 6291456);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, 1), 0);
	CHECK(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF) >= 1);

	struct tern_linger lg = {1, 5}, out = {-1, -1};
	size_t len = sizeof(out);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &out, &len), 0);
	CHECK_EQ(out.l_onoff, 0);
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg)), 0);
	len = sizeof(out);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &out, &len), 0);
	CHECK_EQ(len, sizeof(out));
	CHECK_EQ(out.l_onoff, 1);
	CHECK_EQ(out.l_linger, 5);
	lg.l_onoff = 0;
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg)), 0);
	len = sizeof(out);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &out, &len), 0);
	CHECK_EQ(out.l_onoff, 0);

	CHECK_EQ(get_int(st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR), 0);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR, 1), -ENOPROTOOPT); /* read-only */
	tern_stack_free(st);
}

TEST(api_sockopt_tcp_level_round_trip)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	const int lvl = TERN_IPPROTO_TCP;
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_NODELAY), 0);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_NODELAY, 1), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_NODELAY), 1);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_CORK), 0);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_CORK, 1), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_CORK), 1);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_CORK, 0), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_CORK), 0);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_MAXSEG), 1460); /* mtu - 40 */
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_MAXSEG, 1000), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_MAXSEG), 1000);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPIDLE), 7200);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPINTVL), 75);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPCNT), 9);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPIDLE, 60), 0);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPINTVL, 10), 0);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPCNT, 3), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPIDLE), 60);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPINTVL), 10);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPCNT), 3);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_SYNCNT), 5);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_SYNCNT, 2), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_SYNCNT), 2);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_LINGER2), 60); /* fin_timeout */
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_LINGER2, 30), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_LINGER2), 30);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_LINGER2, -1), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_LINGER2), -1);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_LINGER2, 0), 0); /* 0: the stack's default */
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_LINGER2), 60);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_USER_TIMEOUT), 0);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_USER_TIMEOUT, 5000), 0);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_USER_TIMEOUT), 5000);

	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_STATE), TERN_STATE_CLOSED);
	struct tern_tcp_info info;
	memset(&info, 0xff, sizeof(info));
	size_t len = sizeof(info);
	CHECK_EQ(tern_getsockopt(st, fd, lvl, TERN_TCP_INFO, &info, &len), 0);
	CHECK_EQ(len, sizeof(info));
	CHECK_EQ(info.state, TERN_STATE_CLOSED);
	/* A shorter buffer gets the start of the structure, as on Linux. */
	uint8_t head[4];
	len = sizeof(head);
	CHECK_EQ(tern_getsockopt(st, fd, lvl, TERN_TCP_INFO, head, &len), 0);
	CHECK_EQ(len, 4);
	CHECK_EQ(head[0], TERN_STATE_CLOSED);
	/* Read-only options. */
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_INFO, 1), -ENOPROTOOPT);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_STATE, 1), -ENOPROTOOPT);
	tern_stack_free(st);
}

TEST(api_sockopt_invalid_values)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	const int lvl = TERN_IPPROTO_TCP;
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_MAXSEG, 10), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_MAXSEG, 70000), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPIDLE, 0), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPIDLE, 32768), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPINTVL, 0), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPINTVL, -5), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPCNT, 0), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_KEEPCNT, 128), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_SYNCNT, 0), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_SYNCNT, 128), -EINVAL);
	CHECK_EQ(set_int(st, fd, lvl, TERN_TCP_USER_TIMEOUT, -1), -EINVAL);
	/* The values stayed as they were. */
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_MAXSEG), 1460);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_KEEPIDLE), 7200);
	CHECK_EQ(get_int(st, fd, lvl, TERN_TCP_SYNCNT), 5);
	/* Too short a value, or none. */
	char one = 1;
	CHECK_EQ(tern_setsockopt(st, fd, lvl, TERN_TCP_NODELAY, &one, 1), -EINVAL);
	CHECK_EQ(tern_setsockopt(st, fd, lvl, TERN_TCP_NODELAY, NULL, sizeof(int)), -EINVAL);
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, 1), -EINVAL);
	struct tern_linger lg = {1, 1};
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(int)), -EINVAL);
	int v;
	size_t len = 1;
	CHECK_EQ(tern_getsockopt(st, fd, lvl, TERN_TCP_NODELAY, &v, &len), -EINVAL);
	CHECK_EQ(tern_getsockopt(st, fd, lvl, TERN_TCP_NODELAY, &v, NULL), -EINVAL);
	len = sizeof(int);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &v, &len), -EINVAL);
	tern_stack_free(st);
}

TEST(api_sockopt_unknown_enoprotoopt)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	int v = 1;
	size_t len = sizeof(v);
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, 999, 1), -ENOPROTOOPT);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, 999, &v, &len), -ENOPROTOOPT);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, 999, 1), -ENOPROTOOPT);
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_IPPROTO_TCP, 999, &v, &len), -ENOPROTOOPT);
	CHECK_EQ(set_int(st, fd, 17 /* IPPROTO_UDP */, TERN_TCP_NODELAY, 1), -ENOPROTOOPT);
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, 17, TERN_TCP_NODELAY, &v, &len), -ENOPROTOOPT);
	tern_stack_free(st);
}

TEST(api_sockopt_maxseg_raise_again)
{
	/* Linux keeps TCP_MAXSEG as the user's value: raising it after lowering it takes effect
	 * and getsockopt() on an unconnected socket returns it. */
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG, 1000), 0);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG, 1200), 0);
	CHECK_EQ(get_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG), 1200);
	tern_stack_free(st);
}

TEST(api_syncnt_per_socket)
{
	struct net *n = net_new();
	struct tern_sim_rule r;
	REQUIRE_EQ(tern_sim_parse_rule(n->sim, "a>b:syn", TERN_SIM_DROP, &r), 0);
	REQUIRE_EQ(tern_sim_add_rule(n->sim, &r), 0);
	int two = tern_socket(n->a, TERN_SOCK_STREAM), dflt = tern_socket(n->a, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(n->a, two, TERN_IPPROTO_TCP, TERN_TCP_SYNCNT, 2), 0);
	struct tern_sockaddr to = {ADDR_B, 80};
	CHECK_EQ(tern_connect(n->a, two, &to), -EINPROGRESS);
	CHECK_EQ(tern_connect(n->a, dflt, &to), -EINPROGRESS);
	tern_sim_run_until(n->sim, SEC(7) - 1);
	CHECK_EQ(tern_sock_state(n->a, two), TERN_STATE_SYN_SENT);
	tern_sim_run_until(n->sim, SEC(7));
	CHECK_EQ(tern_sock_state(n->a, two), TERN_STATE_CLOSED);
	CHECK_EQ(so_error(n->a, two), ETIMEDOUT);
	/* Its SYNs went out at 0, 1 and 3 s, all with the same ISN. */
	struct tern_sockaddr me;
	REQUIRE_EQ(tern_getsockname(n->a, two, &me), 0);
	uint64_t times[8];
	uint32_t isn = 0;
	int k = 0;
	for (unsigned i = 0; i < n->nsent; i++) {
		const struct tern_seg_info *g = &n->sent[i].seg;
		if (n->sent[i].host != 0 || !(g->flags & TERN_TH_SYN) || g->sport != me.port)
			continue;
		if (k == 0)
			isn = g->seq;
		CHECK_EQ(g->seq, isn);
		if (k < 8)
			times[k] = n->sent[i].t;
		k++;
	}
	CHECK_EQ(k, 3);
	if (k == 3) {
		CHECK_EQ(times[0], 0);
		CHECK_EQ(times[1], SEC(1));
		CHECK_EQ(times[2], SEC(3));
	}
	/* The other socket and the stack keep the default of 5: failure at 63 s. */
	CHECK_EQ(tern_stack_settings(n->a)->syn_retries, 5);
	CHECK_EQ(get_int(n->a, dflt, TERN_IPPROTO_TCP, TERN_TCP_SYNCNT), 5);
	tern_sim_run_until(n->sim, SEC(63) - 1);
	CHECK_EQ(tern_sock_state(n->a, dflt), TERN_STATE_SYN_SENT);
	tern_sim_run_until(n->sim, SEC(63));
	CHECK_EQ(so_error(n->a, dflt), ETIMEDOUT);
	CHECK_EQ(tern_stack_stats(n->a)->tcp_attempt_fails, 2);
	net_free(n);
}

TEST(api_maxseg_lowers_syn_mss)
{
	struct net *n = net_new();
	int l = listen_on(n->b, 80, 0);
	int fd = tern_socket(n->a, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(n->a, fd, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG, 1000), 0);
	struct tern_sockaddr to = {ADDR_B, 80};
	CHECK_EQ(tern_connect(n->a, fd, &to), -EINPROGRESS);
	net_run(n, 1);
	const struct tern_seg_info *syn = find_sent(n, 0, TERN_TH_SYN, TERN_TH_ACK);
	REQUIRE(syn != NULL);
	CHECK(syn->opts.has & TERN_OPT_MSS);
	CHECK_EQ(syn->opts.mss, 1000);
	const struct tern_seg_info *synack = find_sent(n, 1, TERN_TH_SYN | TERN_TH_ACK, 0);
	REQUIRE(synack != NULL);
	CHECK_EQ(synack->opts.mss, 1460);
	/* Both ends send segments of at most 1000 bytes. */
	int s = tern_accept(n->b, l, NULL);
	REQUIRE(s >= 0);
	CHECK_EQ(get_int(n->a, fd, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG), 1000);
	CHECK_EQ(get_int(n->b, s, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG), 1000);
	struct tern_tcp_info ia, ib;
	CHECK_EQ(tern_sock_info(n->a, fd, &ia), 0);
	CHECK_EQ(tern_sock_info(n->b, s, &ib), 0);
	CHECK_EQ(ia.snd_mss, 1000);
	CHECK_EQ(ib.snd_mss, 1000);
	net_free(n);
}

TEST(api_maxseg_on_listener_lowers_synack_mss)
{
	/* Linux: a listener's TCP_MAXSEG is inherited, and the SYN-ACK advertises it. */
	struct net *n = net_new();
	int l = tern_socket(n->b, TERN_SOCK_STREAM);
	CHECK_EQ(set_int(n->b, l, TERN_IPPROTO_TCP, TERN_TCP_MAXSEG, 700), 0);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(n->b, l, &sa), 0);
	REQUIRE_EQ(tern_listen(n->b, l, 4), 0);
	int fd = connect_to(n, 80);
	net_run(n, 1);
	int s = tern_accept(n->b, l, NULL);
	REQUIRE(s >= 0);
	struct tern_tcp_info ib;
	CHECK_EQ(tern_sock_info(n->b, s, &ib), 0);
	CHECK_EQ(ib.snd_mss, 700); /* what b sends is limited */
	const struct tern_seg_info *synack = find_sent(n, 1, TERN_TH_SYN | TERN_TH_ACK, 0);
	REQUIRE(synack != NULL);
	/* ... and so is what a may send to b */
	CHECK_EQ(synack->opts.mss, 700);
	struct tern_tcp_info ia;
	CHECK_EQ(tern_sock_info(n->a, fd, &ia), 0);
	CHECK_EQ(ia.snd_mss, 700);
	net_free(n);
}

/* ========================================================================================= */
/* Names and information                                                                     */
/* ========================================================================================= */

TEST(api_getpeername_getsockname)
{
	struct net *n = net_new();
	struct tern_sockaddr sa;
	int fresh = tern_socket(n->a, TERN_SOCK_STREAM);
	CHECK_EQ(tern_getpeername(n->a, fresh, &sa), -ENOTCONN);
	int l = listen_on(n->b, 80, 0);
	CHECK_EQ(tern_getpeername(n->b, l, &sa), -ENOTCONN);
	int c = connect_to(n, 80);
	CHECK_EQ(tern_getpeername(n->a, c, &sa), -ENOTCONN); /* still connecting */
	struct tern_sockaddr cn;
	CHECK_EQ(tern_getsockname(n->a, c, &cn), 0);
	CHECK_EQ(cn.addr, ADDR_A);
	CHECK(cn.port >= 32768 && cn.port <= 60999);
	net_run(n, 1);
	CHECK_EQ(tern_getpeername(n->a, c, &sa), 0);
	CHECK_EQ(sa.addr, ADDR_B);
	CHECK_EQ(sa.port, 80);
	struct tern_sockaddr peer;
	int s = tern_accept(n->b, l, &peer);
	REQUIRE(s >= 0);
	CHECK_EQ(peer.addr, ADDR_A);
	CHECK_EQ(peer.port, cn.port);
	CHECK_EQ(tern_getpeername(n->b, s, &sa), 0);
	CHECK_EQ(sa.addr, ADDR_A);
	CHECK_EQ(sa.port, cn.port);
	CHECK_EQ(tern_getsockname(n->b, s, &sa), 0);
	CHECK_EQ(sa.addr, ADDR_B); /* the wildcard listener's child has a real address */
	CHECK_EQ(sa.port, 80);
	net_free(n);
}

TEST(api_sock_info_fields)
{
	struct net *n = net_new();
	struct tern_impair imp = {0, 0, 0, 0, MSEC(10), 0};
	tern_sim_set_impair(n->sim, -1, -1, &imp);
	int l = listen_on(n->b, 80, 0);
	int c = connect_to(n, 80);
	struct tern_tcp_info i;
	CHECK_EQ(tern_sock_info(n->a, c, &i), 0);
	CHECK_EQ(i.state, TERN_STATE_SYN_SENT);
	CHECK_EQ(i.rto_us, 1000000); /* rto_initial */
	CHECK_EQ(i.rtt_us, 0);
	net_run(n, 100);
	int s = tern_accept(n->b, l, NULL);
	REQUIRE(s >= 0);
	const struct tern_seg_info *syn = find_sent(n, 0, TERN_TH_SYN, TERN_TH_ACK);
	const struct tern_seg_info *synack = find_sent(n, 1, TERN_TH_SYN | TERN_TH_ACK, 0);
	REQUIRE(syn && synack);
	CHECK_EQ(tern_sock_info(n->a, c, &i), 0);
	CHECK_EQ(i.state, TERN_STATE_ESTABLISHED);
	CHECK_EQ(i.iss, syn->seq);
	CHECK_EQ(i.irs, synack->seq);
	CHECK_EQ(i.snd_una, syn->seq + 1);
	CHECK_EQ(i.snd_nxt, syn->seq + 1);
	CHECK_EQ(i.rcv_nxt, synack->seq + 1);
	CHECK_EQ(i.snd_mss, 1460);
	CHECK_EQ(i.advmss, 1460);
	CHECK_EQ(i.pmtu, 1500);
	CHECK_EQ(i.snd_cwnd, 10); /* initial_cwnd */
	/* One RTT sample from the handshake: 20 ms; RTO = SRTT + max(4 RTTVAR, rto_min). */
	CHECK_EQ(i.rtt_us, 20000);
	CHECK_EQ(i.rttvar_us, 10000);
	CHECK_EQ(i.rto_us, 220000);
	CHECK_EQ(i.unacked, 0);
	CHECK_EQ(i.snd_wnd, synack->win);
	struct tern_tcp_info j;
	CHECK_EQ(tern_sock_info(n->b, s, &j), 0);
	CHECK_EQ(j.iss, synack->seq);
	CHECK_EQ(j.irs, syn->seq);
	CHECK_EQ(j.rtt_us, 20000);
	/* Data both ways. */
	CHECK_EQ(tern_send(n->a, c, "0123456789", 10, 0), 10);
	CHECK_EQ(tern_sock_info(n->a, c, &i), 0);
	CHECK_EQ(i.unacked, 1);
	CHECK_EQ(i.snd_queue, 10);
	CHECK_EQ(i.snd_nxt, syn->seq + 11);
	net_run(n, 100);
	CHECK_EQ(tern_sock_info(n->a, c, &i), 0);
	CHECK_EQ(i.unacked, 0);
	CHECK_EQ(i.snd_queue, 0);
	CHECK_EQ(i.snd_una, syn->seq + 11);
	CHECK_EQ(i.total_retrans, 0);
	CHECK(i.segs_out >= 3);
	CHECK(i.segs_in >= 2);
	CHECK_EQ(tern_sock_info(n->b, s, &j), 0);
	CHECK_EQ(j.rcv_queue, 10);
	CHECK_EQ(j.rcv_nxt, syn->seq + 11);
	/* The listener: state and queue. */
	CHECK_EQ(tern_sock_info(n->b, l, &j), 0);
	CHECK_EQ(j.state, TERN_STATE_LISTEN);
	net_free(n);
}

TEST(api_sock_info_byte_counters)
{
	/* Linux fills tcpi_bytes_acked and tcpi_bytes_received; tern's tcp_info says it is
	 * "like Linux's struct tcp_info". */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_send(n->a, c, "0123456789", 10, 0), 10);
	net_run(n, 1);
	struct tern_tcp_info i, j;
	CHECK_EQ(tern_sock_info(n->a, c, &i), 0);
	CHECK_EQ(tern_sock_info(n->b, s, &j), 0);
	CHECK_EQ(i.bytes_acked, 10);
	CHECK_EQ(j.bytes_received, 10);
	net_free(n);
}

/* ========================================================================================= */
/* Limits and ports                                                                          */
/* ========================================================================================= */

TEST(api_max_sockets_emfile)
{
	struct tern_settings set;
	tern_settings_default(&set);
	REQUIRE_EQ(tern_settings_set(&set, "max_sockets", "4"), 0);
	struct net *n = net_new2(NULL, &set);
	int l = listen_on(n->b, 80, 0);
	int fds[3];
	for (int i = 0; i < 3; i++) {
		fds[i] = tern_socket(n->b, TERN_SOCK_STREAM);
		CHECK(fds[i] >= 0);
	}
	CHECK_EQ(tern_socket(n->b, TERN_SOCK_STREAM), -EMFILE);
	/* accept() too: the connection waits in the queue until a descriptor is free. */
	connect_to(n, 80);
	net_run(n, 1);
	CHECK_EQ(tern_accept(n->b, l, NULL), -EMFILE);
	CHECK_EQ(tern_sock_events(n->b, l), TERN_EV_IN);
	CHECK_EQ(tern_close(n->b, fds[1]), 0);
	int s = tern_accept(n->b, l, NULL);
	CHECK_EQ(s, fds[1]);
	CHECK_EQ(tern_sock_state(n->b, s), TERN_STATE_ESTABLISHED);
	net_free(n);
}

TEST(api_max_connections_limit)
{
	struct tern_settings set;
	tern_settings_default(&set);
	REQUIRE_EQ(tern_settings_set(&set, "max_connections", "2"), 0);
	struct net *n = net_new2(NULL, &set);
	/* b: the listener and one connection fill the quota. */
	int l = listen_on(n->b, 80, 0);
	int c1 = connect_to(n, 80);
	net_run(n, 1);
	int s1 = tern_accept(n->b, l, NULL);
	REQUIRE(s1 >= 0);
	CHECK(tern_socket(n->b, TERN_SOCK_STREAM) < 0);
	uint64_t drops = tern_stack_stats(n->b)->tcp_listen_drops;
	int c2 = connect_to(n, 80);
	net_run(n, 1);
	CHECK_EQ(tern_sock_state(n->a, c2), TERN_STATE_SYN_SENT); /* its SYN was dropped */
	CHECK_EQ(tern_stack_stats(n->b)->tcp_listen_drops, drops + 1);
	CHECK(tern_stack_stats(n->b)->mem_failures >= 1);
	/* The first connection closes (b first, so b keeps a TIME_WAIT record, which does not
	 * count): the retransmitted SYN then gets in. */
	CHECK_EQ(tern_close(n->b, s1), 0);
	net_run(n, 1);
	CHECK_EQ(tern_close(n->a, c1), 0);
	net_run(n, 2000);
	CHECK_EQ(tern_sock_state(n->a, c2), TERN_STATE_ESTABLISHED);
	CHECK(tern_accept(n->b, l, NULL) >= 0);
	net_free(n);
}

TEST(api_ephemeral_ports_in_range_and_distinct)
{
	struct tern_settings set;
	tern_settings_default(&set);
	REQUIRE_EQ(tern_settings_set(&set, "port_range_lo", "40000"), 0);
	REQUIRE_EQ(tern_settings_set(&set, "port_range_hi", "40007"), 0);
	struct net *n = net_new2(&set, NULL);
	listen_on(n->b, 80, 0);
	int used[8] = {0};
	for (int i = 0; i < 8; i++) {
		int fd = connect_to(n, 80);
		struct tern_sockaddr me;
		CHECK_EQ(tern_getsockname(n->a, fd, &me), 0);
		CHECK(me.port >= 40000 && me.port <= 40007);
		if (me.port >= 40000 && me.port <= 40007)
			used[me.port - 40000]++;
	}
	for (int i = 0; i < 8; i++)
		CHECK_EQ(used[i], 1);
	/* The range is exhausted for this destination... */
	int fd = tern_socket(n->a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {ADDR_B, 80};
	CHECK_EQ(tern_connect(n->a, fd, &to), -EADDRNOTAVAIL);
	/* ... but not for another one (the 4-tuple differs). */
	listen_on(n->b, 81, 0);
	struct tern_sockaddr to81 = {ADDR_B, 81};
	int fd2 = tern_socket(n->a, TERN_SOCK_STREAM);
	CHECK_EQ(tern_connect(n->a, fd2, &to81), -EINPROGRESS);
	net_free(n);
}

TEST(api_ephemeral_ports_successive_differ)
{
	/* RFC 6056: successive connections to one destination do not reuse the port at once,
	 * even when the previous one is gone. */
	struct net *n = net_new();
	listen_on(n->b, 80, 0);
	uint16_t ports[50];
	for (int i = 0; i < 50; i++) {
		int fd = connect_to(n, 80);
		struct tern_sockaddr me;
		CHECK_EQ(tern_getsockname(n->a, fd, &me), 0);
		ports[i] = me.port;
		CHECK(me.port >= 32768 && me.port <= 60999);
		CHECK_EQ(tern_abort(n->a, fd), 0);
		net_run(n, 1);
	}
	for (int i = 0; i < 50; i++)
		for (int k = i + 1; k < 50; k++)
			CHECK(ports[i] != ports[k]);
	net_free(n);
}

TEST(api_bind_port_zero_picks_ephemeral)
{
	struct tern_stack *st = bare(NULL);
	struct tern_sockaddr any = {0, 0};
	uint16_t seen[20];
	for (int i = 0; i < 20; i++) {
		int fd = tern_socket(st, TERN_SOCK_STREAM);
		CHECK_EQ(tern_bind(st, fd, &any), 0);
		struct tern_sockaddr me;
		CHECK_EQ(tern_getsockname(st, fd, &me), 0);
		CHECK(me.port >= 32768 && me.port <= 60999);
		seen[i] = me.port;
		for (int k = 0; k < i; k++)
			CHECK(seen[k] != me.port);
	}
	tern_stack_free(st);
}

/* ========================================================================================= */
/* Settings                                                                                  */
/* ========================================================================================= */

TEST(api_settings_defaults_are_linux)
{
	struct tern_settings s;
	memset(&s, 0xa5, sizeof(s));
	tern_settings_default(&s);
	CHECK_EQ(s.syn_retries, 5);
	CHECK_EQ(s.synack_retries, 5);
	CHECK_EQ(s.rto_initial_ms, 1000);
	CHECK_EQ(s.rto_min_ms, 200);
	CHECK_EQ(s.rto_max_ms, 120000);
	CHECK_EQ(s.retries2, 15);
	CHECK_EQ(s.msl_ms, 30000); /* TIME_WAIT 60 s */
	CHECK_EQ(s.fin_timeout_ms, 60000);
	CHECK_EQ(s.keepalive_time_ms, 7200000);
	CHECK_EQ(s.keepalive_intvl_ms, 75000);
	CHECK_EQ(s.keepalive_probes, 9);
	CHECK_EQ(s.somaxconn, 4096);
	CHECK_EQ(s.initial_cwnd, 10);
	CHECK_EQ(s.mtu, 1500);
	CHECK_EQ(s.delack_min_ms, 40);
	CHECK_EQ(s.delack_max_ms, 200);
	CHECK_EQ(s.max_syn_backlog, 1024);
	CHECK_EQ(s.port_range_lo, 32768);
	CHECK_EQ(s.port_range_hi, 60999);
	CHECK_EQ(s.ip_default_ttl, 64);
	CHECK_EQ(s.invalid_ratelimit_ms, 500);
	CHECK_EQ(s.orphan_retries, 0);
	CHECK_EQ(s.max_tw_buckets, 262144);
	/* A stack made with NULL settings has exactly these. */
	struct tern_stack *st = tern_stack_new(NULL, 0);
	CHECK_MEM(tern_stack_settings(st), &s, sizeof(s));
	tern_stack_free(st);
}

/* The text a value reads back as: "30s", "200ms", or a bare number. */
static void expect_text(char *buf, size_t n, const struct tern_setting_desc *d, uint64_t v)
{
	if (!strcmp(d->unit, "s") && v % 1000 == 0)
		snprintf(buf, n, "%llus", (unsigned long long)(v / 1000));
	else if (!strcmp(d->unit, "s") || !strcmp(d->unit, "ms"))
		snprintf(buf, n, "%llums", (unsigned long long)v);
	else
		snprintf(buf, n, "%llu", (unsigned long long)v);
}

static bool is_duration(const struct tern_setting_desc *d)
{
	return !strcmp(d->unit, "s") || !strcmp(d->unit, "ms");
}

static void value_text(char *buf, size_t n, const struct tern_setting_desc *d, uint64_t v)
{
	snprintf(buf, n, "%llu%s", (unsigned long long)v, is_duration(d) ? "ms" : "");
}

TEST(api_settings_every_row)
{
	struct tern_settings def;
	tern_settings_default(&def);
	unsigned rows = 0;
	for (unsigned i = 0;; i++) {
		const struct tern_setting_desc *d = tern_settings_describe(i);
		if (!d)
			break;
		rows++;
		CHECK(d->name && *d->name);
		CHECK(d->unit && *d->unit);
		CHECK(d->doc && *d->doc);
		CHECK(d->min <= d->def && d->def <= d->max);
		/* The default reads back in the row's natural unit, and sets back unchanged. */
		char got[64], want[64];
		int len = tern_settings_get(&def, d->name, got, sizeof(got));
		CHECK(len > 0);
		expect_text(want, sizeof(want), d, d->def);
		CHECK_STR(got, want);
		struct tern_settings s = def;
		CHECK_EQ(tern_settings_set(&s, d->name, got), 0);
		CHECK_MEM(&s, &def, sizeof(s));
		/* Both bounds are accepted and read back; one past either is refused. */
		char v[64];
		value_text(v, sizeof(v), d, d->min);
		CHECK_EQ(tern_settings_set(&s, d->name, v), 0);
		tern_settings_get(&s, d->name, got, sizeof(got));
		expect_text(want, sizeof(want), d, d->min);
		CHECK_STR(got, want);
		value_text(v, sizeof(v), d, d->max);
		CHECK_EQ(tern_settings_set(&s, d->name, v), 0);
		tern_settings_get(&s, d->name, got, sizeof(got));
		expect_text(want, sizeof(want), d, d->max);
		CHECK_STR(got, want);
		struct tern_settings before = s;
		if (d->min > 0) {
			value_text(v, sizeof(v), d, d->min - 1);
			CHECK_EQ(tern_settings_set(&s, d->name, v), -EINVAL);
		}
		if (d->max < UINT64_MAX) {
			value_text(v, sizeof(v), d, d->max + 1);
			CHECK_EQ(tern_settings_set(&s, d->name, v), -EINVAL);
		}
		/* Malformed text is refused and changes nothing. */
		CHECK_EQ(tern_settings_set(&s, d->name, ""), -EINVAL);
		CHECK_EQ(tern_settings_set(&s, d->name, "x"), -EINVAL);
		CHECK_EQ(tern_settings_set(&s, d->name, "12abc"), -EINVAL);
		CHECK_EQ(tern_settings_set(&s, d->name, "-1"), -EINVAL);
		CHECK_EQ(tern_settings_set(&s, d->name, NULL), -EINVAL);
		CHECK_MEM(&s, &before, sizeof(s));
		if (test_failed()) {
			fprintf(stderr, "    (row %s)\n", d->name);
			break;
		}
	}
	CHECK(rows >= 30);
}

TEST(api_settings_units)
{
	struct tern_settings s;
	tern_settings_default(&s);
	char buf[32];
	/* Seconds: a bare number is seconds; suffixes convert. */
	CHECK_EQ(tern_settings_set(&s, "msl", "30s"), 0);
	CHECK_EQ(s.msl_ms, 30000);
	CHECK_EQ(tern_settings_set(&s, "msl", "10"), 0);
	CHECK_EQ(s.msl_ms, 10000);
	CHECK_EQ(tern_settings_set(&s, "msl", "1500ms"), 0);
	CHECK_EQ(s.msl_ms, 1500);
	CHECK(tern_settings_get(&s, "msl", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "1500ms");
	CHECK_EQ(tern_settings_set(&s, "msl", "2m"), 0);
	CHECK_EQ(s.msl_ms, 120000);
	CHECK(tern_settings_get(&s, "msl", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "120s");
	CHECK_EQ(tern_settings_set(&s, "fin_timeout", "0.5s"), 0);
	CHECK_EQ(s.fin_timeout_ms, 500);
	/* Milliseconds: a bare number is milliseconds. */
	CHECK_EQ(tern_settings_set(&s, "rto_min", "200ms"), 0);
	CHECK_EQ(s.rto_min_ms, 200);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "300"), 0);
	CHECK_EQ(s.rto_min_ms, 300);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "1s"), 0);
	CHECK_EQ(s.rto_min_ms, 1000);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "5000us"), 0);
	CHECK_EQ(s.rto_min_ms, 5);
	CHECK(tern_settings_get(&s, "rto_min", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "5ms");
	CHECK_EQ(tern_settings_set(&s, "rto_min", "5 ms"), -EINVAL);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "5h"), -EINVAL);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "nan"), -EINVAL);
	CHECK_EQ(tern_settings_set(&s, "rto_min", "inf"), -EINVAL);
	/* Counts, booleans, bytes. */
	CHECK_EQ(tern_settings_set(&s, "syn_retries", "3"), 0);
	CHECK_EQ(s.syn_retries, 3);
	CHECK_EQ(tern_settings_set(&s, "syn_retries", "3s"), -EINVAL);
	CHECK(tern_settings_get(&s, "syn_retries", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "3");
	CHECK_EQ(tern_settings_set(&s, "sack", "off"), 0);
	CHECK_EQ(s.sack, 0);
	CHECK_EQ(tern_settings_set(&s, "sack", "on"), 0);
	CHECK_EQ(s.sack, 1);
	CHECK_EQ(tern_settings_set(&s, "sack", "2"), -EINVAL);
	CHECK_EQ(tern_settings_set(&s, "wmem_default", "64k"), 0);
	CHECK_EQ(s.wmem_default, 65536);
	CHECK_EQ(tern_settings_set(&s, "seed", "18446744073709551615"), 0);
	CHECK(s.seed == UINT64_MAX);
	/* The length of the text is returned, even when the buffer is too small. */
	char tiny[3];
	CHECK_EQ(tern_settings_get(&s, "keepalive_time", tiny, sizeof(tiny)), 5); /* "7200s" */
	CHECK_EQ(strlen(tiny), 2);
}

TEST(api_settings_unknown_enoent)
{
	struct tern_settings s;
	tern_settings_default(&s);
	char buf[16];
	CHECK_EQ(tern_settings_set(&s, "no_such_setting", "1"), -ENOENT);
	CHECK_EQ(tern_settings_set(&s, "tcp_syn_retries", "1"), -ENOENT); /* no prefix */
	CHECK_EQ(tern_settings_set(&s, "", "1"), -ENOENT);
	CHECK_EQ(tern_settings_get(&s, "no_such_setting", buf, sizeof(buf)), -ENOENT);
	unsigned n = 0;
	while (tern_settings_describe(n))
		n++;
	CHECK(tern_settings_describe(n) == NULL);
	CHECK(tern_settings_describe(n + 1000) == NULL);
	CHECK(tern_settings_describe(UINT32_MAX) == NULL);
}

TEST(api_settings_overflow_refused)
{
	/* A number too large for 64 bits must not turn into UINT64_MAX. */
	struct tern_settings s;
	tern_settings_default(&s);
	uint64_t before = s.seed;
	CHECK_EQ(tern_settings_set(&s, "seed", "18446744073709551616"), -EINVAL);
	CHECK(s.seed == before);
	CHECK_EQ(tern_settings_set(&s, "syn_retries", "18446744073709551616"), -EINVAL);
}

/* ========================================================================================= */
/* close(), abort() and the accept queue                                                     */
/* ========================================================================================= */

TEST(api_close_with_unread_data_resets)
{
	/* RFC 2525 §2.17, Linux: closing with unread data sends RST, not FIN. */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_send(n->a, c, "unread", 6, 0), 6);
	net_run(n, 1);
	CHECK_EQ(tern_close(n->b, s), 0);
	net_run(n, 1);
	char buf[8];
	CHECK_EQ(tern_recv(n->a, c, buf, sizeof(buf), 0), -ECONNRESET);
	CHECK_EQ(tern_stack_stats(n->b)->tcp_abort_on_data, 1);
	CHECK_EQ(tern_stack_foreach(n->b, NULL, NULL), 1); /* the listener only */
	net_free(n);
}

TEST(api_linger_zero_close_resets)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	struct tern_linger lg = {1, 0};
	CHECK_EQ(tern_setsockopt(n->a, c, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg)), 0);
	CHECK_EQ(tern_close(n->a, c), 0);
	net_run(n, 1);
	CHECK_EQ(tern_sock_state(n->b, s), TERN_STATE_CLOSED);
	CHECK_EQ(so_error(n->b, s), ECONNRESET);
	CHECK_EQ(tern_stack_foreach(n->a, NULL, NULL), 0); /* no TIME_WAIT either */
	net_free(n);
}

TEST(api_close_graceful_then_timewait)
{
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(tern_send(n->a, c, "bye", 3, 0), 3);
	CHECK_EQ(tern_close(n->a, c), 0); /* data, then FIN, in the background */
	CHECK_EQ(tern_sock_state(n->a, c), -EBADF);
	net_run(n, 1);
	char buf[8];
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), 0), 3);
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_close(n->b, s), 0);
	net_run(n, 1);
	/* a, the active closer, keeps a TIME_WAIT record for 60 s; b keeps nothing. */
	CHECK_EQ(tern_stack_foreach(n->a, NULL, NULL), 1);
	CHECK_EQ(tern_stack_foreach(n->b, NULL, NULL), 1); /* the listener */
	net_run(n, 59998);
	CHECK_EQ(tern_stack_foreach(n->a, NULL, NULL), 1);
	net_run(n, 3);
	CHECK_EQ(tern_stack_foreach(n->a, NULL, NULL), 0);
	net_free(n);
}

TEST(api_shutdown_while_connecting_abandons)
{
	struct net *n = net_new();
	int fd = connect_to(n, 80);
	CHECK_EQ(tern_shutdown(n->a, fd, TERN_SHUT_RDWR), 0);
	CHECK_EQ(tern_sock_state(n->a, fd), TERN_STATE_CLOSED);
	net_run(n, 100000);
	CHECK_EQ(tern_stack_next_timer(n->a), TERN_TIME_NEVER);
	net_free(n);
}

TEST(api_close_listener_resets_queued)
{
	/* Linux's inet_csk_listen_stop: connections never accepted are reset. */
	struct net *n = net_new();
	int l = listen_on(n->b, 80, 0);
	int c1 = connect_to(n, 80), c2 = connect_to(n, 80);
	net_run(n, 1);
	CHECK_EQ(tern_sock_state(n->a, c1), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_sock_state(n->a, c2), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_close(n->b, l), 0);
	net_run(n, 1);
	CHECK_EQ(so_error(n->a, c1), ECONNRESET);
	CHECK_EQ(so_error(n->a, c2), ECONNRESET);
	CHECK_EQ(tern_stack_foreach(n->b, NULL, NULL), 0);
	/* The port is free again. */
	int l2 = tern_socket(n->b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	CHECK_EQ(tern_bind(n->b, l2, &sa), 0);
	net_free(n);
}

TEST(api_accept_returns_reset_connection)
{
	/* A queued connection reset before accept() is still handed over, with its error. */
	struct net *n = net_new();
	int l = listen_on(n->b, 80, 0);
	int c = connect_to(n, 80);
	net_run(n, 1);
	CHECK_EQ(tern_abort(n->a, c), 0);
	net_run(n, 1);
	struct tern_sockaddr peer;
	int s = tern_accept(n->b, l, &peer);
	CHECK(s >= 0);
	CHECK_EQ(peer.addr, ADDR_A);
	CHECK_EQ(tern_sock_state(n->b, s), TERN_STATE_CLOSED);
	CHECK(tern_sock_events(n->b, s) & TERN_EV_ERR);
	char buf[4];
	CHECK_EQ(tern_recv(n->b, s, buf, sizeof(buf), 0), -ECONNRESET);
	CHECK_EQ(tern_close(n->b, s), 0);
	CHECK_EQ(tern_stack_foreach(n->b, NULL, NULL), 1);
	net_free(n);
}

TEST(api_backlog_holds_backlog_plus_one)
{
	/* Linux's sk_acceptq_is_full() is "more than backlog": listen(fd, 1) queues two. */
	struct net *n = net_new();
	int l = tern_socket(n->b, TERN_SOCK_STREAM);
	struct tern_sockaddr sa = {0, 80};
	REQUIRE_EQ(tern_bind(n->b, l, &sa), 0);
	REQUIRE_EQ(tern_listen(n->b, l, 1), 0);
	int c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = connect_to(n, 80);
		net_run(n, 1);
	}
	struct tern_tcp_info li;
	CHECK_EQ(tern_sock_info(n->b, l, &li), 0);
	CHECK_EQ(li.unacked, 2); /* queued, as Linux's tcpi_unacked for a listener */
	CHECK(tern_stack_stats(n->b)->tcp_listen_overflows >= 1);
	CHECK(tern_accept(n->b, l, NULL) >= 0);
	CHECK(tern_accept(n->b, l, NULL) >= 0);
	CHECK_EQ(tern_accept(n->b, l, NULL), -EAGAIN);
	/* The third gets in once there is room (its SYN is retried at 1 s). */
	net_run(n, 1500);
	CHECK(tern_accept(n->b, l, NULL) >= 0);
	CHECK_EQ(tern_sock_state(n->a, c[2]), TERN_STATE_ESTABLISHED);
	net_free(n);
}

/* ========================================================================================= */
/* Giving up                                                                                  */
/* ========================================================================================= */

/* a sends data that never arrives; returns when the connection ended (µs), or 0. */
static uint64_t data_blackhole(struct net *n, int c, uint64_t limit_us)
{
	struct tern_sim_rule r = {0, 1, TERN_SIM_DATA, 0, 0, TERN_SIM_DROP, 0};
	REQUIRE_EQ(tern_sim_add_rule(n->sim, &r), 0);
	uint64_t t0 = tern_sim_now(n->sim);
	REQUIRE_EQ(tern_send(n->a, c, "lost", 4, 0), 4);
	for (uint64_t t = t0; t < t0 + limit_us; t += MSEC(100)) {
		tern_sim_run_until(n->sim, t);
		if (tern_sock_state(n->a, c) == TERN_STATE_CLOSED)
			return t - t0;
	}
	return 0;
}

TEST(api_retries2_gives_up_after_924s)
{
	/* Linux: tcp_retries2 = 15 with rto_min 200 ms gives up once 924.6 s have passed since
	 * the first transmission (tcp_model_timeout), at the retransmission timeout that
	 * follows: with an RTO of 201 ms doubling to 120 s, the 16th, at 925.6 s. */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	uint64_t t = data_blackhole(n, c, SEC(1000));
	CHECK(t >= MSEC(924600) && t <= MSEC(926000));
	CHECK_EQ(so_error(n->a, c), ETIMEDOUT);
	CHECK_EQ(tern_stack_stats(n->a)->tcp_timeouts, 1);
	CHECK_EQ(tern_stack_stats(n->a)->tcp_retrans, 15);
	net_free(n);
}

TEST(api_retries2_setting_shortens)
{
	struct tern_settings set;
	tern_settings_default(&set);
	REQUIRE_EQ(tern_settings_set(&set, "retries2", "3"), 0);
	struct net *n = net_new2(&set, NULL);
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	/* 3 retransmissions: (2^4 - 1) * 200 ms = 3 s. */
	uint64_t t = data_blackhole(n, c, SEC(100));
	CHECK(t >= MSEC(3000) && t <= MSEC(3100));
	CHECK_EQ(so_error(n->a, c), ETIMEDOUT);
	net_free(n);
}

TEST(api_user_timeout_aborts)
{
	/* TCP_USER_TIMEOUT (RFC 5482, Linux): data unacknowledged this long ends the
	 * connection; Linux clamps the retransmission timer so that it does not overshoot
	 * (tcp_clamp_rto_to_user_timeout). */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	CHECK_EQ(set_int(n->a, c, TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT, 5000), 0);
	uint64_t t = data_blackhole(n, c, SEC(100));
	CHECK(t >= MSEC(5000));
	CHECK(t > 0 && t <= MSEC(7000));
	CHECK(t <= MSEC(5100)); /* the RTO is clamped to the user timeout (once it was 6.2 s) */
	CHECK_EQ(so_error(n->a, c), ETIMEDOUT);
	net_free(n);
}

TEST(api_null_pointers)
{
	struct tern_stack *st = bare(NULL);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_bind(st, fd, NULL), -EINVAL);
	CHECK_EQ(tern_connect(st, fd, NULL), -EINVAL);
	CHECK_EQ(tern_listen(st, fd, 1), 0);
	CHECK_EQ(tern_accept(st, fd, NULL), -EAGAIN); /* peer may be NULL */
	/* Today these dereference the pointer (a crash); bind() and connect() say EINVAL. */
	CHECK(tern_getsockname(st, fd, NULL) < 0);
	CHECK(tern_getpeername(st, fd, NULL) < 0);
	CHECK(tern_sock_info(st, fd, NULL) < 0);
	tern_stack_free(st);
}

/* ========================================================================================= */
/* Keepalive                                                                                  */
/* ========================================================================================= */

static void keepalive_on(struct tern_stack *st, int fd, int idle, int intvl, int cnt)
{
	CHECK_EQ(set_int(st, fd, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, 1), 0);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE, idle), 0);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_KEEPINTVL, intvl), 0);
	CHECK_EQ(set_int(st, fd, TERN_IPPROTO_TCP, TERN_TCP_KEEPCNT, cnt), 0);
}

TEST(api_keepalive_detects_crashed_peer)
{
	/* RFC 1122 §4.2.3.6, Linux's tcp_keepalive_timer(): after TCP_KEEPIDLE of silence a
	 * probe goes out; a peer that crashed and came back answers it with RST. */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	keepalive_on(n->a, c, 10, 5, 3);
	tern_sim_reboot(n->sim, 1);
	n->b = tern_sim_stack(n->sim, 1);
	net_run(n, 30000);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_CLOSED);
	CHECK_EQ(so_error(n->a, c), ECONNRESET);
	net_free(n);
}

TEST(api_keepalive_gives_up_on_silent_peer)
{
	/* No answer at all: ETIMEDOUT after idle + count * interval (10 + 3 * 5 s). */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	keepalive_on(n->a, c, 10, 5, 3);
	struct tern_sim_rule r = {0, 1, TERN_SIM_ANY, 0, 0, TERN_SIM_DROP, 0};
	REQUIRE_EQ(tern_sim_add_rule(n->sim, &r), 0);
	net_run(n, 24000);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_ESTABLISHED);
	net_run(n, 2000);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_CLOSED);
	CHECK_EQ(so_error(n->a, c), ETIMEDOUT);
	net_free(n);
}

TEST(api_keepalive_live_peer_stays)
{
	/* Probes to a live peer are answered; the connection stays, and without SO_KEEPALIVE an
	 * idle connection sends nothing at all. */
	struct net *n = net_new();
	int c, s, l;
	pair(n, 80, &c, &s, &l);
	int c2 = connect_to(n, 80);
	net_run(n, 1);
	int s2 = tern_accept(n->b, l, NULL);
	REQUIRE(s2 >= 0);
	keepalive_on(n->a, c, 10, 5, 3);
	uint64_t out_b = tern_stack_stats(n->b)->tcp_out;
	unsigned sent_before = n->nsent;
	net_run(n, 100000);
	CHECK_EQ(tern_sock_state(n->a, c), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_sock_state(n->b, s), TERN_STATE_ESTABLISHED);
	CHECK_EQ(tern_sock_state(n->a, c2), TERN_STATE_ESTABLISHED);
	struct tern_sockaddr me2;
	REQUIRE_EQ(tern_getsockname(n->a, c2, &me2), 0);
	for (unsigned i = sent_before; i < n->nsent; i++)
		CHECK(n->sent[i].seg.sport != me2.port && n->sent[i].seg.dport != me2.port);
	CHECK(tern_stack_stats(n->b)->tcp_out >= out_b + 9); /* about one answer per 10 s */
	net_free(n);
}
