/*
 * libtern_packetdrill.so: tern behind packetdrill's shared-object interface
 * (pd_interface.h), so that packetdrill scripts run against tern in virtual time.
 *
 * The stack runs on a virtual clock that only this adapter moves: packetdrill's usleep()
 * advances it (running tern's timers at their own deadlines, in order), every
 * gettimeofday() moves it one microsecond (packetdrill spins on the clock while it waits for
 * an event's time), and netdev_receive(), asked for a packet tern has not sent yet, jumps it
 * to the next timer. A script that takes a minute of timeouts therefore runs in
 * milliseconds, and runs the same way every time.
 *
 * Threads. packetdrill makes a call the script gives a time range ("0...0.2 accept(...)") on
 * a second thread and waits until that thread is asleep in the kernel before it goes on
 * injecting packets from the main thread. So every call runs under one mutex, and a call
 * that would block waits on a condition variable (a futex: the thread shows as sleeping in
 * /proc) until input, a timer or a move of the clock may have changed its answer. The thread
 * that moves the clock or injects a packet then waits until every woken call has looked
 * again ("settled"), so that a call completes at the virtual time its cause happened. A
 * call that would block on the main thread (no range in the script) cannot be woken by
 * anyone else, so it drives the clock itself, timer by timer.
 *
 * Descriptors. Each socket (and each epoll instance) is backed by a real eventfd whose
 * number is the descriptor packetdrill sees, because packetdrill closes the sockets a script
 * leaves open with the real close() and uses the numbers as keys. Descriptors that are not
 * ours (pipes) go to libc.
 *
 * --so_flags: space- or comma-separated words: local=A.B.C.D (tern's address; default
 * 192.168.0.1), remote=A.B.C.D (the scripted peer's, informational), trace (print tern's
 * segments and state changes on stderr), horizon=SECONDS (how far netdev_receive may move
 * the clock looking for a packet; default 7500), idle_real_ms=MS and idle_step_ms=MS (the
 * idle watchdog, pd_watchdog: 20 and 10; 0 turns it off), and NAME=VALUE for any tern
 * setting (tern settings --list), e.g. rto_min=200ms syn_retries=3. Buffer sizes start at
 * packetdrill's defaults.sh values (rmem_default 540000, wmem_default 262144).
 */
#define _GNU_SOURCE
#include "pd_interface.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>

#include <tern/tern.h>

/* The clock packetdrill sees is tern's clock plus this (an arbitrary date, so that
 * timestamps print like real ones). */
#define PD_EPOCH_US 1700000000000000ull
/* Real time a thread waits for woken calls to settle before it goes on without them. */
#define PD_SETTLE_REAL_MS 2000
/* Bytes of tern's output kept for netdev_receive before newer packets are dropped. */
#define PD_QUEUE_MAX_BYTES (64u << 20)

enum pd_kind { PD_NONE, PD_SOCK, PD_EPOLL };

struct pd_ep_item {
	int fd;
	uint32_t events;
	uint64_t data;
	bool pending;  /* edge-triggered: readiness may have changed since the last report */
	bool disabled; /* EPOLLONESHOT reported, waiting for EPOLL_CTL_MOD */
};

struct pd_epoll {
	struct pd_ep_item *items;
	int n, cap;
};

struct pd_fd {
	enum pd_kind kind;
	bool nonblock;
	int tfd;  /* tern's descriptor */
	int type; /* SOCK_STREAM or SOCK_DGRAM */
	struct pd_epoll *ep;
};

struct pd_pkt {
	struct pd_pkt *next;
	uint64_t t_us;
	size_t len;
	uint8_t data[];
};

/* A call blocked in pd_wait(). */
struct pd_waiter {
	struct pd_waiter *next;
	uint64_t deadline; /* TERN_TIME_NEVER: none */
	uint64_t seen_gen;
};

struct pd {
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* blocked calls wait here */
	pthread_cond_t settled; /* ... and the thread that woke them waits here */
	pthread_t main_thread;

	struct tern_stack *st;
	struct tern_settings set;
	uint64_t now; /* virtual time, tern's clock */
	uint64_t horizon_us;
	bool trace;

	struct pd_pkt *q_head, *q_tail;
	size_t q_bytes;
	uint64_t q_dropped;

	struct pd_waiter *waiters;
	int n_blocked;
	int unsettled;
	uint64_t wake_gen;
	bool closing;

	/* The thread whose blocked call just completed reads the clock next (packetdrill takes
	 * a blocking call's end time at once): it gets the completion time, whatever the main
	 * thread did to the clock meanwhile. */
	bool completed;
	pthread_t completer;
	uint64_t completed_at;

	/* The idle watchdog (pd_watchdog). */
	pthread_t wd_thread;
	pthread_cond_t wd_cv;
	bool wd_running;
	uint64_t idle_real_us;   /* quiet real time before it acts (0: never) */
	uint64_t idle_step_us;   /* the farthest it moves the virtual clock */
	uint64_t last_activity;  /* real time of the last call, CLOCK_MONOTONIC us */

	struct pd_fd *fds; /* by real descriptor */
	int nfds;
	int *t2r; /* tern descriptor -> real descriptor */
	int nt2r;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static int fail(int err)
{
	errno = err;
	return -1;
}

static ssize_t ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

static struct pd_fd *pd_get(struct pd *pd, int fd)
{
	if (fd < 0 || fd >= pd->nfds || pd->fds[fd].kind == PD_NONE)
		return NULL;
	return &pd->fds[fd];
}

static struct pd_fd *pd_sock(struct pd *pd, int fd)
{
	struct pd_fd *f = pd_get(pd, fd);
	return f && f->kind == PD_SOCK ? f : NULL;
}

static int grow_int(int **a, int *n, int need, int fill)
{
	if (need < *n)
		return 0;
	int m = *n ? *n : 64;
	while (m <= need)
		m *= 2;
	int *b = realloc(*a, (size_t)m * sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (int i = *n; i < m; i++)
		b[i] = fill;
	*a = b;
	*n = m;
	return 0;
}

static int pd_fd_add(struct pd *pd, int fd)
{
	if (fd >= pd->nfds) {
		int m = pd->nfds ? pd->nfds : 64;
		while (m <= fd)
			m *= 2;
		struct pd_fd *b = realloc(pd->fds, (size_t)m * sizeof(*b));
		if (!b)
			return -ENOMEM;
		memset(b + pd->nfds, 0, (size_t)(m - pd->nfds) * sizeof(*b));
		pd->fds = b;
		pd->nfds = m;
	}
	memset(&pd->fds[fd], 0, sizeof(pd->fds[fd]));
	return 0;
}

static int to_tern_addr(const struct sockaddr *sa, socklen_t len, struct tern_sockaddr *out)
{
	if (!sa || len < sizeof(sa_family_t))
		return -EINVAL;
	if (sa->sa_family == AF_UNSPEC) {
		*out = (struct tern_sockaddr){0, 0};
		return 0;
	}
	if (sa->sa_family != AF_INET)
		return -EAFNOSUPPORT;
	if (len < sizeof(struct sockaddr_in))
		return -EINVAL;
	struct sockaddr_in sin;
	memcpy(&sin, sa, sizeof(sin));
	out->addr = ntohl(sin.sin_addr.s_addr);
	out->port = ntohs(sin.sin_port);
	return 0;
}

static void from_tern_addr(const struct tern_sockaddr *a, struct sockaddr *sa, socklen_t *len)
{
	if (!sa || !len)
		return;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(a->addr);
	sin.sin_port = htons(a->port);
	size_t n = *len < sizeof(sin) ? *len : sizeof(sin);
	memcpy(sa, &sin, n);
	*len = sizeof(sin);
}

/* Linux's poll bits from tern's readiness (tcp_poll adds the RDNORM/WRNORM twins). */
static uint32_t to_poll_bits(int ev)
{
	uint32_t r = 0;
	if (ev & TERN_EV_IN)
		r |= POLLIN | POLLRDNORM;
	if (ev & TERN_EV_PRI)
		r |= POLLPRI;
	if (ev & TERN_EV_OUT)
		r |= POLLOUT | POLLWRNORM;
	if (ev & TERN_EV_ERR)
		r |= POLLERR;
	if (ev & TERN_EV_HUP)
		r |= POLLHUP;
	if (ev & TERN_EV_RDHUP)
		r |= POLLRDHUP;
	return r;
}

/* ---- the clock, the output queue, and waking blocked calls ------------------------------- */

static uint64_t real_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}


static int link_transmit(void *ctx, const struct tern_iovec *iov, unsigned iovcnt, size_t total)
{
	struct pd *pd = ctx;
	if (pd->q_bytes + total > PD_QUEUE_MAX_BYTES) {
		pd->q_dropped++;
		return -ENOBUFS;
	}
	struct pd_pkt *p = malloc(sizeof(*p) + total);
	if (!p)
		return -ENOBUFS;
	p->next = NULL;
	p->t_us = tern_stack_now(pd->st);
	p->len = total;
	size_t off = 0;
	for (unsigned i = 0; i < iovcnt; i++) {
		memcpy(p->data + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	if (pd->q_tail)
		pd->q_tail->next = p;
	else
		pd->q_head = p;
	pd->q_tail = p;
	pd->q_bytes += total;
	return 0;
}

static void trace_hook(void *user, const struct tern_trace *ev)
{
	(void)user;
	if (ev->kind == TERN_TRACE_SEND || ev->kind == TERN_TRACE_RECV ||
	    ev->kind == TERN_TRACE_DISCARD) {
		const struct tern_seg_info *s = &ev->u.seg;
		fprintf(stderr, "tern %10.6f %s %u:%u flags 0x%x seq %u ack %u win %u len %u%s%s\n",
			(double)ev->t_us / 1e6,
			ev->kind == TERN_TRACE_SEND ? "out" : ev->kind == TERN_TRACE_RECV ? "in " : "drop",
			s->sport, s->dport, s->flags, s->seq, s->ack, s->win, s->len,
			ev->reason ? " " : "", ev->reason ? ev->reason : "");
	} else if (ev->kind == TERN_TRACE_STATE) {
		fprintf(stderr, "tern %10.6f conn %u %s -> %s\n", (double)ev->t_us / 1e6, ev->conn,
			tern_state_name(ev->u.state.from), tern_state_name(ev->u.state.to));
	}
}

/* After anything that may have changed readiness: mark edge-triggered epoll registrations
 * of the descriptors tern names, and wake every blocked call to look again. */
static void pd_changed(struct pd *pd)
{
	struct tern_event evs[64];
	int n;
	while ((n = tern_stack_events(pd->st, evs, 64)) > 0) {
		for (int i = 0; i < n; i++) {
			int tfd = evs[i].fd;
			int rfd = tfd >= 0 && tfd < pd->nt2r ? pd->t2r[tfd] : -1;
			if (rfd < 0)
				continue;
			for (int e = 0; e < pd->nfds; e++) {
				struct pd_epoll *ep = pd->fds[e].kind == PD_EPOLL ? pd->fds[e].ep : NULL;
				for (int k = 0; ep && k < ep->n; k++)
					if (ep->items[k].fd == rfd)
						ep->items[k].pending = true;
			}
		}
		if (n < 64)
			break;
	}
	if (pd->n_blocked > 0) {
		pd->wake_gen++;
		pd->unsettled = pd->n_blocked;
		pthread_cond_broadcast(&pd->wake);
	}
}

/* Wait (in real time, bounded) until every call woken by pd_changed() has looked again. */
static void pd_settle(struct pd *pd)
{
	if (pd->unsettled <= 0)
		return;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PD_SETTLE_REAL_MS / 1000;
	until.tv_nsec += (long)(PD_SETTLE_REAL_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (pd->unsettled > 0)
		if (pthread_cond_timedwait(&pd->settled, &pd->mu, &until) == ETIMEDOUT) {
			pd->unsettled = 0;
			break;
		}
}

/* The next moment something is due: a tern timer or a blocked call's timeout. */
static uint64_t pd_next_event(struct pd *pd)
{
	uint64_t e = tern_stack_next_timer(pd->st);
	for (struct pd_waiter *w = pd->waiters; w; w = w->next)
		if (w->deadline > pd->now && w->deadline < e)
			e = w->deadline;
	return e;
}

/* Move the virtual clock to t, stopping at every timer and timeout on the way so that each
 * runs at its own time and the calls it wakes complete then. */
static void pd_advance(struct pd *pd, uint64_t t)
{
	for (;;) {
		uint64_t e = pd_next_event(pd);
		if (e > t)
			break;
		if (e > pd->now)
			pd->now = e;
		tern_stack_poll(pd->st, pd->now);
		pd_changed(pd);
		pd_settle(pd);
		if (e <= pd->now && tern_stack_next_timer(pd->st) <= pd->now)
			break; /* a timer that stays due would loop forever; the clock moves on */
	}
	if (t > pd->now)
		pd->now = t;
	tern_stack_poll(pd->st, pd->now);
	pd_changed(pd);
	pd_settle(pd);
}

/*
 * Block the calling thread until something may have changed, or until deadline. Returns 0
 * to look again, -ETIMEDOUT once the deadline has passed, -EINTR when the adapter is being
 * freed, -EDEADLK when the main thread would wait for something nothing can bring.
 */
static int pd_wait(struct pd *pd, uint64_t deadline)
{
	if (pd->closing)
		return -EINTR;
	if (deadline != TERN_TIME_NEVER && pd->now >= deadline)
		return -ETIMEDOUT;
	if (pthread_equal(pthread_self(), pd->main_thread)) {
		/* Nobody else injects packets or moves the clock: move it ourselves. */
		uint64_t e = pd_next_event(pd);
		if (deadline < e)
			e = deadline;
		if (e == TERN_TIME_NEVER || e - pd->now > pd->horizon_us)
			return -EDEADLK;
		pd_advance(pd, e);
		return 0;
	}
	struct pd_waiter w = {.next = pd->waiters, .deadline = deadline, .seen_gen = pd->wake_gen};
	pd->waiters = &w;
	pd->n_blocked++;
	pthread_cond_wait(&pd->wake, &pd->mu);
	pd->last_activity = real_now_us();
	pd->n_blocked--;
	for (struct pd_waiter **pp = &pd->waiters; *pp; pp = &(*pp)->next)
		if (*pp == &w) {
			*pp = w.next;
			break;
		}
	if (w.seen_gen != pd->wake_gen && pd->unsettled > 0 && --pd->unsettled == 0)
		pthread_cond_broadcast(&pd->settled);
	if (pd->closing)
		return -EINTR;
	return 0;
}

/* Called when a call that blocked returns: see struct pd's completed. */
static void pd_completed(struct pd *pd, bool blocked)
{
	if (!blocked || pthread_equal(pthread_self(), pd->main_thread))
		return;
	pd->completed = true;
	pd->completer = pthread_self();
	pd->completed_at = pd->now;
}

/*
 * Virtual time stands still while every thread waits: a call blocked in pd_wait() for a
 * timer a fraction of a millisecond ahead (tern's timers fire on a 1 ms wheel, as a kernel's
 * on its tick), and packetdrill's main thread waiting, outside the adapter, for that call to
 * finish before its next event. Against a kernel, real time would pass and the timer fire;
 * here the watchdog plays that part: after idle_real_us of real time without any call, while
 * a call is blocked, it moves the clock to the next event if that is at most idle_step_us
 * ahead. A main thread that is merely busy calls gettimeofday() all the time, so the
 * watchdog does not act under it.
 */
static void *pd_watchdog(void *arg)
{
	struct pd *pd = arg;
	pthread_mutex_lock(&pd->mu);
	while (!pd->closing) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)(pd->idle_real_us / 4) * 1000L;
		while (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pd->wd_cv, &pd->mu, &until);
		if (pd->closing)
			break;
		if (pd->n_blocked == 0 || real_now_us() - pd->last_activity < pd->idle_real_us)
			continue;
		uint64_t e = pd_next_event(pd);
		if (e != TERN_TIME_NEVER && e - pd->now <= pd->idle_step_us)
			pd_advance(pd, e);
		pd->last_activity = real_now_us();
	}
	pthread_mutex_unlock(&pd->mu);
	return NULL;
}

/* Every entry point takes the adapter's lock and ends through pd_leave. */
static void pd_enter(struct pd *pd)
{
	pthread_mutex_lock(&pd->mu);
	pd->last_activity = real_now_us();
	if (pd->completed && pthread_equal(pthread_self(), pd->completer) &&
	    !pthread_equal(pthread_self(), pd->main_thread))
		pd->completed = false;
}

static void pd_leave(struct pd *pd)
{
	pd_changed(pd);
	pthread_mutex_unlock(&pd->mu);
}

#define ENTER(ud) struct pd *pd = (ud); pd_enter(pd)
/* x is evaluated under the lock, before it is released. */
#define LEAVE_RET(x)                       \
	do {                               \
		__typeof__(x) leave_r_ = (x); \
		pd_leave(pd);              \
		return leave_r_;           \
	} while (0)

/* ---- sockets ------------------------------------------------------------------------------ */

/* Bytes written but not yet sent (Linux's SIOCOUTQNSD, tcpi_notsent_bytes): the send buffer
 * holds the unacknowledged bytes too. */
static uint32_t notsent_bytes(const struct tern_tcp_info *t)
{
	uint32_t inflight = t->snd_nxt - t->snd_una;
	return t->snd_queue > inflight ? t->snd_queue - inflight : 0;
}

/* Back tern's descriptor tfd with a new real one (see "Descriptors" above). Returns it, or
 * -errno; the caller then still owns tfd. */
static int pd_sock_new(struct pd *pd, int tfd, int type, bool nonblock)
{
	int rfd = eventfd(0, EFD_CLOEXEC);
	if (rfd < 0)
		return -errno;
	if (pd_fd_add(pd, rfd) < 0 || grow_int(&pd->t2r, &pd->nt2r, tfd, -1) < 0) {
		close(rfd);
		return -ENOMEM;
	}
	pd->fds[rfd] = (struct pd_fd){.kind = PD_SOCK, .nonblock = nonblock, .tfd = tfd, .type = type};
	pd->t2r[tfd] = rfd;
	return rfd;
}

/* A blocking call's wait on its socket fd: 0 to look again, with *f read afresh (the table
 * may have moved, the socket may have been closed), or the error the call returns, stuck
 * being the one for a main-thread call that nothing could complete. */
static int pd_block(struct pd *pd, int fd, struct pd_fd **f, bool *blocked, int stuck)
{
	int w = pd_wait(pd, TERN_TIME_NEVER);
	if (w < 0)
		return w == -EDEADLK ? stuck : w;
	*blocked = true;
	*f = pd_sock(pd, fd);
	return *f ? 0 : -EBADF;
}

static int pd_socket(void *ud, int domain, int type, int protocol)
{
	ENTER(ud);
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (domain != AF_INET)
		LEAVE_RET(fail(EAFNOSUPPORT));
	if (base != SOCK_STREAM && base != SOCK_DGRAM)
		LEAVE_RET(fail(EPROTONOSUPPORT));
	if (protocol != 0 && !(base == SOCK_STREAM && protocol == IPPROTO_TCP) &&
	    !(base == SOCK_DGRAM && protocol == IPPROTO_UDP))
		LEAVE_RET(fail(EPROTONOSUPPORT));
	int tfd = tern_socket(pd->st, base == SOCK_STREAM ? TERN_SOCK_STREAM : TERN_SOCK_DGRAM);
	if (tfd < 0)
		LEAVE_RET(fail(-tfd));
	int rfd = pd_sock_new(pd, tfd, base, !!(type & SOCK_NONBLOCK));
	if (rfd < 0)
		tern_close(pd->st, tfd);
	LEAVE_RET((int)ret(rfd));
}

static int pd_bind(void *ud, int fd, const struct sockaddr *addr, socklen_t len)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	struct tern_sockaddr a;
	if (!f)
		LEAVE_RET(fail(pd_get(pd, fd) ? ENOTSOCK : EBADF));
	int r = to_tern_addr(addr, len, &a);
	if (r == 0)
		r = tern_bind(pd->st, f->tfd, &a);
	LEAVE_RET((int)ret(r));
}

static int pd_listen(void *ud, int fd, int backlog)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		LEAVE_RET(fail(EBADF));
	LEAVE_RET((int)ret(tern_listen(pd->st, f->tfd, backlog)));
}

static int pd_accept(void *ud, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		LEAVE_RET(fail(EBADF));
	struct tern_sockaddr peer;
	bool blocked = false;
	int r;
	for (;;) {
		r = tern_accept(pd->st, f->tfd, &peer);
		if (r != -EAGAIN || f->nonblock)
			break;
		if ((r = pd_block(pd, fd, &f, &blocked, -EAGAIN)) < 0)
			break;
	}
	pd_completed(pd, blocked);
	if (r < 0)
		LEAVE_RET(fail(-r));
	int rfd = pd_sock_new(pd, r, SOCK_STREAM, false);
	if (rfd < 0)
		tern_abort(pd->st, r);
	else
		from_tern_addr(&peer, addr, addrlen);
	LEAVE_RET((int)ret(rfd));
}

static int pd_connect(void *ud, int fd, const struct sockaddr *addr, socklen_t len)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	struct tern_sockaddr a;
	if (!f)
		LEAVE_RET(fail(EBADF));
	int r = to_tern_addr(addr, len, &a);
	if (r < 0)
		LEAVE_RET(fail(-r));
	r = tern_connect(pd->st, f->tfd, &a);
	if (r != -EINPROGRESS || f->nonblock)
		LEAVE_RET((int)ret(r));
	/* A blocking connect returns when the handshake ends, one way or the other. */
	bool blocked = false;
	for (;;) {
		int ev = tern_sock_events(pd->st, f->tfd);
		if (ev < 0) {
			r = ev;
			break;
		}
		if (ev & (TERN_EV_OUT | TERN_EV_ERR | TERN_EV_HUP)) {
			int err = 0;
			size_t n = sizeof(err);
			tern_getsockopt(pd->st, f->tfd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &n);
			r = err ? -err : 0;
			break;
		}
		if ((r = pd_block(pd, fd, &f, &blocked, -EINPROGRESS)) < 0)
			break;
	}
	pd_completed(pd, blocked);
	LEAVE_RET((int)ret(r));
}

/* Linux's MSG_* bits that tern's calls take as they are. */
#define PD_MSG_TERN (MSG_OOB | MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT | MSG_NOSIGNAL)

/* Receive into the iovecs: blocks (unless non-blocking) until something arrives; then fills
 * as much as is there without blocking again (all of len with MSG_WAITALL). */
static long pd_do_recv(struct pd *pd, int fd, const struct iovec *iov, int iovcnt, int flags,
		       struct tern_sockaddr *from)
{
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		return pd_get(pd, fd) ? -ENOTSOCK : -EBADF;
	size_t want = 0;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	bool nonblock = f->nonblock || (flags & MSG_DONTWAIT);
	bool blocked = false;
	long got = 0;
	long r = 0;
	int i = 0;
	size_t off = 0;
	int tflags = flags & PD_MSG_TERN;
	for (;;) {
		while (i < iovcnt && off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		if (i == iovcnt && want > 0)
			break;
		void *buf = i < iovcnt ? (char *)iov[i].iov_base + off : NULL;
		size_t room = i < iovcnt ? iov[i].iov_len - off : 0;
		r = tern_recvfrom(pd->st, f->tfd, buf, room, tflags, got ? NULL : from);
		if (r > 0) {
			got += r;
			if (f->type == SOCK_DGRAM || (flags & MSG_PEEK))
				break;
			off += (size_t)r;
			continue;
		}
		if (r == 0 || r != -EAGAIN)
			break;
		/* Nothing more now. */
		if (got && !((flags & MSG_WAITALL) && !nonblock))
			break;
		if (nonblock)
			break;
		if ((r = pd_block(pd, fd, &f, &blocked, -EAGAIN)) < 0)
			break;
	}
	pd_completed(pd, blocked);
	return got ? got : r;
}

/* Send everything (a blocking socket waits for room, as Linux's sendmsg does), or what
 * fits (non-blocking). */
static long pd_do_send(struct pd *pd, int fd, const struct iovec *iov, int iovcnt, int flags,
		       const struct tern_sockaddr *to)
{
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		return pd_get(pd, fd) ? -ENOTSOCK : -EBADF;
	bool nonblock = f->nonblock || (flags & MSG_DONTWAIT);
	int tflags = flags & PD_MSG_TERN;
	if (f->type == SOCK_DGRAM) {
		/* One datagram: gather it first. */
		size_t n = 0;
		for (int i = 0; i < iovcnt; i++)
			n += iov[i].iov_len;
		uint8_t *b = malloc(n ? n : 1);
		if (!b)
			return -ENOMEM;
		size_t off = 0;
		for (int i = 0; i < iovcnt; i++) {
			memcpy(b + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		long r = tern_sendto(pd->st, f->tfd, b, n, tflags, to);
		free(b);
		return r;
	}
	bool blocked = false;
	long sent = 0, r = 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t off = 0;
		while (off < iov[i].iov_len) {
			/* MSG_OOB marks the last byte of the whole call urgent, not of each piece. */
			int fl = tflags;
			if (i != iovcnt - 1)
				fl &= ~MSG_OOB;
			r = tern_send(pd->st, f->tfd, (const char *)iov[i].iov_base + off,
				      iov[i].iov_len - off, fl);
			if (r > 0) {
				off += (size_t)r;
				sent += r;
				continue;
			}
			if (r != -EAGAIN || nonblock)
				goto out;
			if ((r = pd_block(pd, fd, &f, &blocked, -EAGAIN)) < 0)
				goto out;
		}
	}
out:
	pd_completed(pd, blocked);
	return sent ? sent : r;
}

static ssize_t pd_read(void *ud, int fd, void *buf, size_t count)
{
	ENTER(ud);
	if (!pd_get(pd, fd)) {
		pthread_mutex_unlock(&pd->mu);
		return read(fd, buf, count);
	}
	struct iovec v = {buf, count};
	LEAVE_RET(ret(pd_do_recv(pd, fd, &v, 1, 0, NULL)));
}

static ssize_t pd_readv(void *ud, int fd, const struct iovec *iov, int iovcnt)
{
	ENTER(ud);
	if (!pd_get(pd, fd)) {
		pthread_mutex_unlock(&pd->mu);
		return readv(fd, iov, iovcnt);
	}
	if (iovcnt < 0)
		LEAVE_RET(fail(EINVAL));
	LEAVE_RET(ret(pd_do_recv(pd, fd, iov, iovcnt, 0, NULL)));
}

static ssize_t pd_recv(void *ud, int fd, void *buf, size_t len, int flags)
{
	ENTER(ud);
	struct iovec v = {buf, len};
	LEAVE_RET(ret(pd_do_recv(pd, fd, &v, 1, flags, NULL)));
}

static ssize_t pd_recvfrom(void *ud, int fd, void *buf, size_t len, int flags,
			   struct sockaddr *src, socklen_t *srclen)
{
	ENTER(ud);
	struct iovec v = {buf, len};
	struct tern_sockaddr from = {0, 0};
	long r = pd_do_recv(pd, fd, &v, 1, flags, &from);
	if (r >= 0)
		from_tern_addr(&from, src, srclen);
	LEAVE_RET(ret(r));
}

static ssize_t pd_recvmsg(void *ud, int fd, struct msghdr *msg, int flags)
{
	ENTER(ud);
	if (!msg || msg->msg_iovlen > 1024)
		LEAVE_RET(fail(EINVAL));
	struct tern_sockaddr from = {0, 0};
	long r = pd_do_recv(pd, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, &from);
	if (r >= 0) {
		if (msg->msg_name) {
			socklen_t l = msg->msg_namelen;
			from_tern_addr(&from, msg->msg_name, &l);
			msg->msg_namelen = l;
		}
		msg->msg_controllen = 0;
		msg->msg_flags = 0;
	}
	LEAVE_RET(ret(r));
}

static ssize_t pd_write(void *ud, int fd, const void *buf, size_t count)
{
	ENTER(ud);
	if (!pd_get(pd, fd)) {
		pthread_mutex_unlock(&pd->mu);
		return write(fd, buf, count);
	}
	struct iovec v = {(void *)buf, count};
	LEAVE_RET(ret(pd_do_send(pd, fd, &v, 1, 0, NULL)));
}

static ssize_t pd_writev(void *ud, int fd, const struct iovec *iov, int iovcnt)
{
	ENTER(ud);
	if (!pd_get(pd, fd)) {
		pthread_mutex_unlock(&pd->mu);
		return writev(fd, iov, iovcnt);
	}
	if (iovcnt < 0)
		LEAVE_RET(fail(EINVAL));
	LEAVE_RET(ret(pd_do_send(pd, fd, iov, iovcnt, 0, NULL)));
}

static ssize_t pd_send(void *ud, int fd, const void *buf, size_t len, int flags)
{
	ENTER(ud);
	struct iovec v = {(void *)buf, len};
	LEAVE_RET(ret(pd_do_send(pd, fd, &v, 1, flags, NULL)));
}

static ssize_t pd_sendto(void *ud, int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *dst, socklen_t dstlen)
{
	ENTER(ud);
	struct iovec v = {(void *)buf, len};
	struct tern_sockaddr to;
	if (dst) {
		int r = to_tern_addr(dst, dstlen, &to);
		if (r < 0)
			LEAVE_RET(fail(-r));
	}
	LEAVE_RET(ret(pd_do_send(pd, fd, &v, 1, flags, dst ? &to : NULL)));
}

static ssize_t pd_sendmsg(void *ud, int fd, const struct msghdr *msg, int flags)
{
	ENTER(ud);
	if (!msg || msg->msg_iovlen > 1024)
		LEAVE_RET(fail(EINVAL));
	struct tern_sockaddr to;
	if (msg->msg_name) {
		int r = to_tern_addr(msg->msg_name, msg->msg_namelen, &to);
		if (r < 0)
			LEAVE_RET(fail(-r));
	}
	LEAVE_RET(ret(pd_do_send(pd, fd, msg->msg_iov, (int)msg->msg_iovlen, flags,
				 msg->msg_name ? &to : NULL)));
}

static int pd_fcntl(void *ud, int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long arg = va_arg(ap, long);
	va_end(ap);
	ENTER(ud);
	struct pd_fd *f = pd_get(pd, fd);
	if (!f) {
		pthread_mutex_unlock(&pd->mu);
		return fcntl(fd, cmd, arg);
	}
	switch (cmd) {
	case F_GETFL:
		LEAVE_RET(O_RDWR | (f->nonblock ? O_NONBLOCK : 0));
	case F_SETFL:
		f->nonblock = !!(arg & O_NONBLOCK);
		LEAVE_RET(0);
	case F_GETFD:
	case F_SETFD:
		/* The backing eventfd carries the close-on-exec flag. */
		pthread_mutex_unlock(&pd->mu);
		return fcntl(fd, cmd, arg);
	default:
		LEAVE_RET(fail(EINVAL));
	}
}

static int pd_ioctl(void *ud, int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	int *argp = va_arg(ap, int *);
	va_end(ap);
	ENTER(ud);
	struct pd_fd *f = pd_get(pd, fd);
	if (!f) {
		pthread_mutex_unlock(&pd->mu);
		return ioctl(fd, request, argp);
	}
	if (request == FIONBIO) {
		if (!argp)
			LEAVE_RET(fail(EFAULT));
		f->nonblock = *argp != 0;
		LEAVE_RET(0);
	}
	if (f->kind != PD_SOCK)
		LEAVE_RET(fail(ENOTTY));
	if (!argp)
		LEAVE_RET(fail(EFAULT));
	int state = tern_sock_state(pd->st, f->tfd);
	if (request == SIOCATMARK) {
		int r = tern_sockatmark(pd->st, f->tfd);
		if (r < 0)
			LEAVE_RET(fail(-r));
		*argp = r;
		LEAVE_RET(0);
	}
	if (f->type == SOCK_DGRAM) {
		if (request == SIOCINQ) {
			/* The next datagram's length, as Linux's udp_ioctl. */
			long r = tern_recv(pd->st, f->tfd, NULL, 0, TERN_MSG_PEEK | TERN_MSG_TRUNC);
			*argp = r > 0 ? (int)r : 0;
			LEAVE_RET(0);
		}
		if (request == SIOCOUTQ) {
			*argp = 0;
			LEAVE_RET(0);
		}
		LEAVE_RET(fail(ENOTTY));
	}
	if (request == SIOCINQ || request == SIOCOUTQ || request == SIOCOUTQNSD) {
		/* Linux answers EINVAL on a listener (tcp_ioctl). */
		if (state == TERN_STATE_LISTEN)
			LEAVE_RET(fail(EINVAL));
		struct tern_tcp_info ti;
		if (tern_sock_info(pd->st, f->tfd, &ti) < 0) {
			*argp = 0;
			LEAVE_RET(0);
		}
		if (request == SIOCINQ) {
			*argp = (int)ti.rcv_queue;
		} else if (request == SIOCOUTQ) {
			*argp = (int)ti.snd_queue;
		} else {
			*argp = (int)notsent_bytes(&ti);
		}
		LEAVE_RET(0);
	}
	LEAVE_RET(fail(ENOTTY));
}

static void ep_forget_fd(struct pd *pd, int rfd)
{
	for (int e = 0; e < pd->nfds; e++) {
		struct pd_epoll *ep = pd->fds[e].kind == PD_EPOLL ? pd->fds[e].ep : NULL;
		for (int k = 0; ep && k < ep->n; k++)
			if (ep->items[k].fd == rfd) {
				ep->items[k] = ep->items[--ep->n];
				break;
			}
	}
}

static int pd_close(void *ud, int fd)
{
	ENTER(ud);
	struct pd_fd *f = pd_get(pd, fd);
	if (!f) {
		pthread_mutex_unlock(&pd->mu);
		return close(fd);
	}
	int r = 0;
	if (f->kind == PD_SOCK) {
		r = tern_close(pd->st, f->tfd);
		if (f->tfd < pd->nt2r)
			pd->t2r[f->tfd] = -1;
	} else if (f->kind == PD_EPOLL) {
		free(f->ep->items);
		free(f->ep);
	}
	f->kind = PD_NONE;
	ep_forget_fd(pd, fd);
	close(fd);
	LEAVE_RET((int)ret(r));
}

static int pd_shutdown(void *ud, int fd, int how)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		LEAVE_RET(fail(pd_get(pd, fd) ? ENOTSOCK : EBADF));
	LEAVE_RET((int)ret(tern_shutdown(pd->st, f->tfd, how)));
}

/* Linux's struct tcp_info, filled from tern's. */
static void linux_tcp_info(const struct tern_tcp_info *t, struct tcp_info *l)
{
	memset(l, 0, sizeof(*l));
	l->tcpi_state = t->state;
	l->tcpi_ca_state = t->ca_state;
	l->tcpi_retransmits = t->retransmits;
	l->tcpi_probes = t->probes;
	l->tcpi_backoff = t->backoff;
	l->tcpi_options = t->options;
	l->tcpi_snd_wscale = t->snd_wscale & 0xf;
	l->tcpi_rcv_wscale = t->rcv_wscale & 0xf;
	l->tcpi_rto = t->rto_us;
	l->tcpi_ato = t->ato_us;
	l->tcpi_snd_mss = t->snd_mss;
	l->tcpi_rcv_mss = t->rcv_mss;
	l->tcpi_unacked = t->unacked;
	l->tcpi_retrans = t->retrans;
	l->tcpi_last_data_sent = t->last_data_sent_ms;
	l->tcpi_last_data_recv = t->last_data_recv_ms;
	l->tcpi_last_ack_recv = t->last_ack_recv_ms;
	l->tcpi_pmtu = t->pmtu;
	l->tcpi_rcv_ssthresh = t->rcv_ssthresh;
	l->tcpi_rtt = t->rtt_us;
	l->tcpi_rttvar = t->rttvar_us;
	l->tcpi_snd_ssthresh = t->snd_ssthresh;
	l->tcpi_snd_cwnd = t->snd_cwnd;
	l->tcpi_advmss = t->advmss;
	l->tcpi_reordering = 3;
	l->tcpi_rcv_space = t->rcv_wnd;
	l->tcpi_total_retrans = t->total_retrans;
	l->tcpi_bytes_acked = t->bytes_acked;
	l->tcpi_bytes_received = t->bytes_received;
	l->tcpi_segs_out = t->segs_out;
	l->tcpi_segs_in = t->segs_in;
	l->tcpi_notsent_bytes = notsent_bytes(t);
	l->tcpi_snd_wnd = t->snd_wnd;
}

static int pd_getsockopt(void *ud, int fd, int level, int name, void *val, socklen_t *len)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		LEAVE_RET(fail(pd_get(pd, fd) ? ENOTSOCK : EBADF));
	if (!len || (int)*len < 0)
		LEAVE_RET(fail(EINVAL));
	if (level == SOL_SOCKET && (name == SO_TYPE || name == SO_DOMAIN || name == SO_PROTOCOL)) {
		int v = name == SO_TYPE ? f->type : name == SO_DOMAIN ? AF_INET
			: f->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
		if (*len < sizeof(int))
			LEAVE_RET(fail(EINVAL));
		memcpy(val, &v, sizeof(v));
		*len = sizeof(v);
		LEAVE_RET(0);
	}
	if (level == IPPROTO_TCP && name == TCP_INFO && f->type == SOCK_STREAM) {
		struct tern_tcp_info ti;
		struct tcp_info li;
		int r = tern_sock_info(pd->st, f->tfd, &ti);
		if (r < 0)
			LEAVE_RET(fail(-r));
		linux_tcp_info(&ti, &li);
		size_t n = *len < sizeof(li) ? *len : sizeof(li);
		memcpy(val, &li, n);
		*len = (socklen_t)n;
		LEAVE_RET(0);
	}
	size_t n = *len;
	int r = tern_getsockopt(pd->st, f->tfd, level, name, val, &n);
	if (r < 0)
		LEAVE_RET(fail(-r));
	*len = (socklen_t)n;
	LEAVE_RET(0);
}

static int pd_setsockopt(void *ud, int fd, int level, int name, const void *val, socklen_t len)
{
	ENTER(ud);
	struct pd_fd *f = pd_sock(pd, fd);
	if (!f)
		LEAVE_RET(fail(pd_get(pd, fd) ? ENOTSOCK : EBADF));
	LEAVE_RET((int)ret(tern_setsockopt(pd->st, f->tfd, level, name, val, len)));
}

/* ---- readiness: poll and epoll -------------------------------------------------------------- */

static uint64_t deadline_ms(struct pd *pd, int timeout_ms)
{
	return timeout_ms < 0 ? TERN_TIME_NEVER : pd->now + (uint64_t)timeout_ms * 1000u;
}

static int pd_poll(void *ud, struct pollfd *fds, nfds_t nfds, int timeout)
{
	ENTER(ud);
	if (nfds > 4096)
		LEAVE_RET(fail(EINVAL));
	uint64_t deadline = deadline_ms(pd, timeout);
	bool blocked = false;
	int n;
	for (;;) {
		n = 0;
		for (nfds_t i = 0; i < nfds; i++) {
			fds[i].revents = 0;
			if (fds[i].fd < 0)
				continue;
			struct pd_fd *f = pd_get(pd, fds[i].fd);
			uint32_t ev;
			if (!f) {
				/* Not ours (a pipe): ask the kernel without waiting. */
				struct pollfd one = {fds[i].fd, fds[i].events, 0};
				ev = poll(&one, 1, 0) > 0 ? (uint32_t)one.revents : 0;
			} else if (f->kind != PD_SOCK) {
				ev = 0;
			} else {
				int e = tern_sock_events(pd->st, f->tfd);
				ev = e < 0 ? POLLNVAL : to_poll_bits(e);
			}
			fds[i].revents = (short)(ev & ((uint32_t)(uint16_t)fds[i].events |
						      POLLERR | POLLHUP | POLLNVAL));
			if (fds[i].revents)
				n++;
		}
		if (n || timeout == 0)
			break;
		int w = pd_wait(pd, deadline);
		if (w == -ETIMEDOUT)
			break;
		if (w < 0) {
			n = w == -EDEADLK ? 0 : -1;
			if (n < 0)
				errno = -w;
			break;
		}
		blocked = true;
	}
	pd_completed(pd, blocked);
	pd_leave(pd);
	return n;
}

static int pd_epoll_create(void *ud, int size)
{
	ENTER(ud);
	if (size <= 0)
		LEAVE_RET(fail(EINVAL));
	struct pd_epoll *ep = calloc(1, sizeof(*ep));
	int rfd = ep ? eventfd(0, EFD_CLOEXEC) : -1;
	if (rfd < 0 || pd_fd_add(pd, rfd) < 0) {
		int err = ep && rfd < 0 ? errno : ENOMEM;
		if (rfd >= 0)
			close(rfd);
		free(ep);
		LEAVE_RET(fail(err));
	}
	pd->fds[rfd] = (struct pd_fd){.kind = PD_EPOLL, .ep = ep};
	LEAVE_RET(rfd);
}

static int pd_epoll_ctl(void *ud, int epfd, int op, int fd, struct epoll_event *event)
{
	ENTER(ud);
	struct pd_fd *e = pd_get(pd, epfd);
	if (!e)
		LEAVE_RET(fail(EBADF));
	if (e->kind != PD_EPOLL || epfd == fd)
		LEAVE_RET(fail(EINVAL));
	if (!pd_sock(pd, fd))
		LEAVE_RET(fail(pd_get(pd, fd) ? EPERM : EBADF));
	struct pd_epoll *ep = e->ep;
	int k = 0;
	while (k < ep->n && ep->items[k].fd != fd)
		k++;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (k < ep->n)
			LEAVE_RET(fail(EEXIST));
		if (!event)
			LEAVE_RET(fail(EFAULT));
		if (ep->n == ep->cap) {
			int m = ep->cap ? ep->cap * 2 : 8;
			struct pd_ep_item *b = realloc(ep->items, (size_t)m * sizeof(*b));
			if (!b)
				LEAVE_RET(fail(ENOMEM));
			ep->items = b;
			ep->cap = m;
		}
		ep->items[ep->n++] = (struct pd_ep_item){fd, event->events, event->data.u64, true, false};
		LEAVE_RET(0);
	case EPOLL_CTL_MOD:
		if (k == ep->n)
			LEAVE_RET(fail(ENOENT));
		if (!event)
			LEAVE_RET(fail(EFAULT));
		ep->items[k] = (struct pd_ep_item){fd, event->events, event->data.u64, true, false};
		LEAVE_RET(0);
	case EPOLL_CTL_DEL:
		if (k == ep->n)
			LEAVE_RET(fail(ENOENT));
		ep->items[k] = ep->items[--ep->n];
		LEAVE_RET(0);
	default:
		LEAVE_RET(fail(EINVAL));
	}
}

static int pd_epoll_wait(void *ud, int epfd, struct epoll_event *events, int maxevents,
			 int timeout)
{
	ENTER(ud);
	struct pd_fd *e = pd_get(pd, epfd);
	if (!e)
		LEAVE_RET(fail(EBADF));
	if (e->kind != PD_EPOLL || maxevents <= 0)
		LEAVE_RET(fail(EINVAL));
	uint64_t deadline = deadline_ms(pd, timeout);
	bool blocked = false;
	int n;
	for (;;) {
		n = 0;
		struct pd_epoll *ep = e->ep;
		for (int k = 0; k < ep->n && n < maxevents; k++) {
			struct pd_ep_item *it = &ep->items[k];
			struct pd_fd *f = pd_sock(pd, it->fd);
			if (!f || it->disabled)
				continue;
			int ev = tern_sock_events(pd->st, f->tfd);
			uint32_t ready = ev < 0 ? 0 : to_poll_bits(ev) &
				(it->events | EPOLLERR | EPOLLHUP);
			if (!ready)
				continue;
			if ((it->events & EPOLLET) && !it->pending)
				continue;
			it->pending = false;
			if (it->events & EPOLLONESHOT)
				it->disabled = true;
			events[n].events = ready;
			events[n].data.u64 = it->data;
			n++;
		}
		if (n || timeout == 0)
			break;
		int w = pd_wait(pd, deadline);
		if (w == -ETIMEDOUT)
			break;
		if (w < 0) {
			n = w == -EDEADLK ? 0 : -1;
			if (n < 0)
				errno = -w;
			break;
		}
		blocked = true;
		if (!(e = pd_get(pd, epfd)) || e->kind != PD_EPOLL) {
			n = fail(EBADF);
			break;
		}
	}
	pd_completed(pd, blocked);
	pd_leave(pd);
	return n;
}

static int pd_pipe(void *ud, int pipefd[2])
{
	(void)ud;
	return pipe(pipefd);
}

static int pd_splice(void *ud, int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
		     size_t len, unsigned int flags)
{
	(void)ud, (void)fd_in, (void)off_in, (void)fd_out, (void)off_out, (void)len, (void)flags;
	return fail(ENOSYS);
}

/* ---- the link and the clock ----------------------------------------------------------------- */

static int pd_netdev_send(void *ud, const void *buf, size_t count)
{
	ENTER(ud);
	tern_stack_input(pd->st, buf, count, pd->now);
	pd_changed(pd);
	pd_settle(pd);
	pthread_mutex_unlock(&pd->mu);
	return 0;
}

static int pd_netdev_receive(void *ud, void *buf, size_t *count, long long *time_usecs)
{
	ENTER(ud);
	for (;;) {
		pd_settle(pd);
		struct pd_pkt *p = pd->q_head;
		if (p) {
			pd->q_head = p->next;
			if (!pd->q_head)
				pd->q_tail = NULL;
			pd->q_bytes -= p->len;
			size_t n = p->len < *count ? p->len : *count;
			memcpy(buf, p->data, n);
			*count = n;
			*time_usecs = (long long)(PD_EPOCH_US + p->t_us);
			free(p);
			break;
		}
		/* Nothing sent yet: run the clock to the next thing that may send. */
		uint64_t e = pd_next_event(pd);
		if (e == TERN_TIME_NEVER || e - pd->now > pd->horizon_us || pd->closing) {
			/* Nothing can come: an empty answer ends the script with an error
			 * (packetdrill calls it an IP header overflowing a 0-byte packet). */
			fprintf(stderr, "tern packetdrill adapter: a packet was expected, but tern "
				"has nothing to send and no timer due within %" PRIu64 " s (at %.6f s)\n",
				pd->horizon_us / 1000000u, (double)pd->now / 1e6);
			*count = 0;
			*time_usecs = (long long)(PD_EPOCH_US + pd->now);
			break;
		}
		pd_advance(pd, e);
	}
	pthread_mutex_unlock(&pd->mu);
	return 0;
}

static int pd_usleep(void *ud, useconds_t usec)
{
	ENTER(ud);
	pd_settle(pd);
	pd_advance(pd, pd->now + usec);
	pthread_mutex_unlock(&pd->mu);
	return 0;
}

static int pd_gettimeofday(void *ud, struct timeval *tv, void *tz)
{
	(void)tz;
	struct pd *pd = ud;
	pthread_mutex_lock(&pd->mu);
	pd->last_activity = real_now_us();
	uint64_t t;
	if (pd->completed && pthread_equal(pthread_self(), pd->completer)) {
		pd->completed = false;
		t = pd->completed_at;
	} else {
		pd_advance(pd, pd->now + 1);
		t = pd->now;
	}
	pthread_mutex_unlock(&pd->mu);
	if (tv) {
		tv->tv_sec = (time_t)((PD_EPOCH_US + t) / 1000000u);
		tv->tv_usec = (suseconds_t)((PD_EPOCH_US + t) % 1000000u);
	}
	return 0;
}

static void pd_free(void *ud)
{
	struct pd *pd = ud;
	pthread_mutex_lock(&pd->mu);
	pd->closing = true;
	if (pd->wd_running) {
		pthread_cond_broadcast(&pd->wd_cv);
		pthread_mutex_unlock(&pd->mu);
		pthread_join(pd->wd_thread, NULL);
		pthread_mutex_lock(&pd->mu);
		pd->wd_running = false;
	}
	/* Let calls still blocked (a script that ended inside one) leave first. */
	for (int tries = 0; pd->n_blocked > 0 && tries < 100; tries++) {
		pthread_cond_broadcast(&pd->wake);
		pthread_mutex_unlock(&pd->mu);
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&pd->mu);
	}
	if (pd->n_blocked > 0) {
		/* Freeing now would pull the lock from under them. */
		fprintf(stderr, "tern packetdrill adapter: %d calls still blocked; not freed\n",
			pd->n_blocked);
		pthread_mutex_unlock(&pd->mu);
		return;
	}
	if (pd->q_dropped)
		fprintf(stderr, "tern packetdrill adapter: %" PRIu64 " packets dropped (queue full)\n",
			pd->q_dropped);
	tern_stack_free(pd->st);
	while (pd->q_head) {
		struct pd_pkt *p = pd->q_head;
		pd->q_head = p->next;
		free(p);
	}
	/* Descriptors still ours were closed by packetdrill with the real close(); closing
	 * them again could close something else that reused the number. */
	for (int i = 0; i < pd->nfds; i++)
		if (pd->fds[i].kind == PD_EPOLL) {
			free(pd->fds[i].ep->items);
			free(pd->fds[i].ep);
		}
	free(pd->fds);
	free(pd->t2r);
	pthread_mutex_unlock(&pd->mu);
	pthread_mutex_destroy(&pd->mu);
	pthread_cond_destroy(&pd->wake);
	pthread_cond_destroy(&pd->settled);
	pthread_cond_destroy(&pd->wd_cv);
	free(pd);
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "tern packetdrill adapter: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(EXIT_FAILURE);
}

static uint32_t parse_ip(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		die("bad IPv4 address \"%s\"", s);
	return ntohl(a.s_addr);
}

void packetdrill_interface_init(const char *flags, struct packetdrill_interface *ifc)
{
	struct pd *pd = calloc(1, sizeof(*pd));
	if (!pd)
		die("%s", "out of memory");
	pthread_mutex_init(&pd->mu, NULL);
	pthread_cond_init(&pd->wake, NULL);
	pthread_cond_init(&pd->settled, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pd->wd_cv, &ca);
	pthread_condattr_destroy(&ca);
	pd->main_thread = pthread_self();
	pd->horizon_us = 7500ull * 1000000u;
	pd->idle_real_us = 20000;
	pd->idle_step_us = 10000;
	tern_settings_default(&pd->set);
	/* The buffer sizes of packetdrill's defaults.sh (tcp_rmem and tcp_wmem defaults),
	 * which upstream's scripts assume. */
	tern_settings_set(&pd->set, "rmem_default", "540000");
	tern_settings_set(&pd->set, "wmem_default", "262144");
	uint32_t local = TERN_IP4(192, 168, 0, 1);

	char *copy = strdup(flags ? flags : "");
	char *save = NULL;
	for (char *w = strtok_r(copy, " ,\t\n", &save); w; w = strtok_r(NULL, " ,\t\n", &save)) {
		char *eq = strchr(w, '=');
		if (!strcmp(w, "trace")) {
			pd->trace = true;
			continue;
		}
		if (!eq)
			die("--so_flags word \"%s\" is not NAME=VALUE", w);
		*eq = '\0';
		const char *v = eq + 1;
		if (!strcmp(w, "local")) {
			local = parse_ip(v);
		} else if (!strcmp(w, "remote")) {
			(void)parse_ip(v);
		} else if (!strcmp(w, "horizon")) {
			pd->horizon_us = strtoull(v, NULL, 10) * 1000000u;
		} else if (!strcmp(w, "idle_real_ms")) {
			pd->idle_real_us = strtoull(v, NULL, 10) * 1000u;
		} else if (!strcmp(w, "idle_step_ms")) {
			pd->idle_step_us = strtoull(v, NULL, 10) * 1000u;
		} else {
			int r = tern_settings_set(&pd->set, w, v);
			if (r == -ENOENT)
				die("unknown setting \"%s\" in --so_flags (tern settings --list)", w);
			if (r < 0)
				die("bad value for setting \"%s\" in --so_flags", w);
		}
	}
	free(copy);

	pd->now = 0;
	pd->st = tern_stack_new(&pd->set, pd->now);
	if (!pd->st)
		die("%s", "cannot create the stack");
	struct tern_link lk = {.transmit = link_transmit, .ctx = pd};
	tern_stack_set_link(pd->st, &lk);
	tern_stack_add_addr(pd->st, local);
	if (pd->trace)
		tern_stack_set_trace(pd->st, trace_hook, pd);
	pd->last_activity = real_now_us();
	if (pd->idle_real_us && pd->idle_step_us)
		pd->wd_running = pthread_create(&pd->wd_thread, NULL, pd_watchdog, pd) == 0;

	memset(ifc, 0, sizeof(*ifc));
	ifc->userdata = pd;
	ifc->free = pd_free;
	ifc->socket = pd_socket;
	ifc->bind = pd_bind;
	ifc->listen = pd_listen;
	ifc->accept = pd_accept;
	ifc->connect = pd_connect;
	ifc->read = pd_read;
	ifc->readv = pd_readv;
	ifc->recv = pd_recv;
	ifc->recvfrom = pd_recvfrom;
	ifc->recvmsg = pd_recvmsg;
	ifc->write = pd_write;
	ifc->writev = pd_writev;
	ifc->send = pd_send;
	ifc->sendto = pd_sendto;
	ifc->sendmsg = pd_sendmsg;
	ifc->fcntl = pd_fcntl;
	ifc->ioctl = pd_ioctl;
	ifc->close = pd_close;
	ifc->shutdown = pd_shutdown;
	ifc->getsockopt = pd_getsockopt;
	ifc->setsockopt = pd_setsockopt;
	ifc->poll = pd_poll;
	ifc->netdev_send = pd_netdev_send;
	ifc->netdev_receive = pd_netdev_receive;
	ifc->usleep = pd_usleep;
	ifc->gettimeofday = pd_gettimeofday;
	ifc->epoll_create = pd_epoll_create;
	ifc->epoll_ctl = pd_epoll_ctl;
	ifc->epoll_wait = pd_epoll_wait;
	ifc->pipe = pd_pipe;
	ifc->splice = pd_splice;
}
