/*
 * A randomized soak on the simulator. Each seed builds a small network of two or three hosts
 * with every impairment on (loss, duplication, reordering, corruption, delay with jitter),
 * opens several connections at random times, has both ends send random little messages,
 * closes them in every way (client first, server first, both at once, or an abort by either
 * end) and then checks, exactly:
 *   - every byte a receiver got is the byte its sender sent at that offset, in order, once;
 *   - every connection that was not aborted ends with both applications at end of stream;
 *   - once everything has run out (TIME_WAIT included) nothing is left on any host but its
 *     listener, and tern_stack_memory() is what it was with the listener alone;
 *   - the counters add up (every packet sent is received, lost, or duplicated; every
 *     corrupted packet is dropped by a checksum or header check).
 * The applications vary too: some read lazily (a while after being told), some have a small
 * send buffer, some connections come back on the port of an earlier one (SO_REUSEADDR and
 * bind(), meeting that one's TIME_WAIT on either side), and now and then a host connects to
 * itself. The reboot variant crashes a server host mid-run (it comes back at once or a while
 * later); its peers must learn it (ECONNRESET), and nothing may hang or leak.
 *
 * A third of the listeners get small receive buffers (256 to 3000 bytes), so windows close
 * and open all the time and the persist timer is exercised.
 *
 * Each seed runs in a child process, so a crash or a leak names its seed. A failure prints
 * "seed N"; TERN_SEED=N replays that one seed exactly; TERN_SOAK=N runs N seeds instead of the
 * default (from TERN_SEED, when both are given); TERN_SOAK_VERBOSE=1 prints a summary line per
 * seed, TERN_SOAK_TRACE=1 every event.
 */
#include "test.h"
#include "internal.h"
#include "tern/tern.h"
#include "tern/sim.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOAK_DEFAULT_SEEDS 300
#define REBOOT_DEFAULT_SEEDS 200
#define SEC(x) ((uint64_t)((x) * 1000000.0))
#define MS(x) ((uint64_t)(x) * 1000u)

#define MAX_HOSTS 3
#define MAX_CONNS 20
#define MAX_MSGS 12
#define MAX_FDS 256
#define MAX_ACTIONS 1024
#define SERVER_PORT 80
#define PROBE_LEN 17

/* ---- deterministic randomness for the test itself (splitmix64) ---- */

struct rnd {
	uint64_t s;
};

static uint64_t rnd_next(struct rnd *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(struct rnd *r, uint32_t n) { return n ? (uint32_t)(rnd_next(r) % n) : 0; }
static double rnd_unit(struct rnd *r) { return (double)(rnd_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static uint64_t rnd_range(struct rnd *r, uint64_t lo, uint64_t hi) /* inclusive */
{
	return lo + rnd_next(r) % (hi - lo + 1);
}

/* The byte a sender puts at offset off of a stream: a keyed hash, 8 bytes per evaluation. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	x ^= x >> 33;
	return x;
}

static void stream_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t o = off + i;
		uint64_t w = mix64(key ^ ((o >> 3) * 0x9e3779b97f4a7c15ull));
		unsigned b = (unsigned)(o & 7);
		for (; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(w >> (8 * b));
	}
}

/* ---- the model ---- */

enum close_mode { CM_CLIENT, CM_SERVER, CM_BOTH, CM_ABORT_CLIENT, CM_ABORT_SERVER, CM_COUNT };
static const char *const mode_names[] = {"client-first", "server-first", "both", "abort-by-client",
					 "abort-by-server"};

struct run;
struct conn;

enum act_kind { A_OPEN, A_MSG, A_SHUT, A_ABORT, A_READ, A_REBOOT, A_RELISTEN, A_PROBE, A_GIVEUP };

struct action {
	struct run *run;
	enum act_kind kind;
	struct conn *c;
	int dir, idx;
};

struct side {
	struct conn *c;
	int dir;                    /* 0 client, 1 server */
	int host;
	int fd;                     /* -1: none (yet, or any more) */
	bool active;                /* shuts its sending side when its script is done */
	bool close_direct;          /* passive: close() at once instead of shutdown() then close() */
	int nmsgs, released;
	uint64_t msg_off[MAX_MSGS]; /* µs after the side starts */
	uint32_t msg_len[MAX_MSGS];
	uint64_t shut_off;          /* active: when it wants to shut down, µs after start */
	uint64_t tx_total, tx_target, tx_queued, rx_got;
	uint64_t key;               /* stream key of what this side sends */
	bool started, connected, want_shut, shut, eof, closed, crashed, aborted, abort_pending;
	uint32_t lazy_us;           /* reads this long after being told data is there (0: at once) */
	bool read_pending;
	struct action read_act;
	int err;                    /* first error the application saw (positive errno) */
	int err_state;              /* state the socket was in when the error showed */
};

struct conn {
	int id;
	int chost, shost;
	uint16_t cport;
	enum close_mode mode;
	uint64_t t_open, t_abort;
	bool abort_issued, accepted, reboot_affected, gave_up;
	int state_at_reboot;
	/* A follow-up opens after the client side of conns[follow_of] is closed, from the same
	 * port if it can (SO_REUSEADDR and bind()): TIME_WAIT on either side is in its way. */
	int follow_of, follower;
	bool reuse, follow_scheduled, bind_refused, connect_refused;
	uint64_t opened_at;
	struct side s[2];
};

struct host_app {
	int listen_fd;
	size_t mem_base;
	struct side *fdmap[MAX_FDS];
	uint64_t connects, accepts;
	struct tern_stats acc;      /* counters of stacks lost to a reboot */
};

struct run {
	uint64_t seed;
	struct rnd r;
	struct tern_sim *sim;
	int nhosts;
	bool reboot;
	int reboot_host;
	uint64_t t_reboot, t_relisten;
	struct host_app h[MAX_HOSTS];
	struct conn conns[MAX_CONNS];
	int nconns;
	struct action acts[MAX_ACTIONS];
	int nacts;
	/* the wire, as the trace saw it */
	uint64_t sends, drops, dups, corrupt_deliveries;
	bool last_corrupt;
	/* The last segment a host took in or RST it sent, to tell a close they caused from one
	 * a timer caused. */
	int cause_host;
	uint64_t cause_t;
	uint16_t cause_lport, cause_rport;
	uint64_t orphan_timeouts;
	int failures;
	bool print; /* TERN_SOAK_TRACE: print every event (one seed at a time) */
	bool cleaning;
};

static void rfail(struct run *run, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void rfail(struct run *run, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	run->failures++;
	if (run->failures <= 20)
		test_fail(file, line, "seed %" PRIu64 "%s: %s", run->seed,
			  run->reboot ? " (reboot)" : "", msg);
}

#define RCHECK(run, cond, ...)                                                                \
	do {                                                                                  \
		if (!(cond))                                                                  \
			rfail((run), __FILE__, __LINE__, __VA_ARGS__);                        \
	} while (0)

static struct tern_stack *stk(struct run *run, int host) { return tern_sim_stack(run->sim, host); }

static void schedule(struct run *run, uint64_t t, enum act_kind kind, struct conn *c, int dir, int idx);
static void on_action(struct tern_sim *sim, void *arg);

/* ---- one side of a connection: the application ---- */

static void side_unmap(struct run *run, struct side *s)
{
	if (s->fd >= 0 && s->fd < MAX_FDS && run->h[s->host].fdmap[s->fd] == s)
		run->h[s->host].fdmap[s->fd] = NULL;
}

static void maybe_follow(struct run *run, struct conn *c)
{
	if (c->follower < 0 || run->cleaning)
		return;
	struct conn *f = &run->conns[c->follower];
	if (f->follow_scheduled)
		return;
	f->follow_scheduled = true;
	f->t_open = tern_sim_now(run->sim) + rnd_range(&run->r, MS(500), MS(2000));
	schedule(run, f->t_open, A_OPEN, f, 0, 0);
}

static void side_close(struct run *run, struct side *s)
{
	int rc = tern_close(stk(run, s->host), s->fd);
	RCHECK(run, rc == 0, "conn %d %s: close(%d) = %s", s->c->id, s->dir ? "server" : "client",
	       s->fd, tern_errno_name(rc));
	side_unmap(run, s);
	s->closed = true;
	if (s->dir == 0)
		maybe_follow(run, s->c);
}

static bool side_open(const struct side *s)
{
	return s->started && s->fd >= 0 && !s->closed && !s->crashed;
}

/* Errors are expected only where a peer vanished: an abort, or the crashed host. */
static bool error_allowed(const struct conn *c, int err)
{
	if (c->reboot_affected)
		return err == ECONNRESET || err == EPIPE || err == ECONNREFUSED;
	if (c->abort_issued)
		return err == ECONNRESET || err == EPIPE;
	return false;
}

static void side_error(struct run *run, struct side *s, int err)
{
	struct conn *c = s->c;
	if (!s->err) {
		s->err = err;
		s->err_state = tern_sock_state(stk(run, s->host), s->fd);
	}
	RCHECK(run, error_allowed(c, err),
	       "conn %d (%s, host %d -> %d) %s side: unexpected error %s (state %s)", c->id,
	       mode_names[c->mode], c->chost, c->shost, s->dir ? "server" : "client",
	       tern_errno_name(err), tern_state_name(s->err_state));
	side_close(run, s);
}

static void side_verify(struct run *run, struct side *s, const uint8_t *buf, size_t n)
{
	struct side *peer = &s->c->s[!s->dir];
	uint8_t want[8192];
	stream_fill(peer->key, s->rx_got, want, n);
	if (memcmp(want, buf, n) != 0) {
		size_t i = 0;
		while (i < n && want[i] == buf[i])
			i++;
		rfail(run, __FILE__, __LINE__,
		      "conn %d %s side: byte %" PRIu64 " is 0x%02x, sender sent 0x%02x", s->c->id,
		      s->dir ? "server" : "client", s->rx_got + i, buf[i], want[i]);
	}
	RCHECK(run, s->rx_got + n <= peer->tx_queued,
	       "conn %d %s side: received %" PRIu64 " bytes, more than the %" PRIu64 " sent",
	       s->c->id, s->dir ? "server" : "client", s->rx_got + n, peer->tx_queued);
	s->rx_got += n;
}

static bool side_all_sent(const struct side *s)
{
	return s->released == s->nmsgs && s->tx_queued == s->tx_total;
}

static void side_progress(struct run *run, struct side *s, bool may_read)
{
	if (!side_open(s))
		return;
	struct tern_stack *st = stk(run, s->host);
	int ev = tern_sock_events(st, s->fd);
	RCHECK(run, ev >= 0, "conn %d: events(%d) = %d", s->c->id, s->fd, ev);
	if (ev < 0)
		return;
	if (ev & TERN_EV_ERR) {
		int err = 0;
		size_t len = sizeof(err);
		int rc = tern_getsockopt(st, s->fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &len);
		RCHECK(run, rc == 0 && err > 0, "conn %d: ERR event but SO_ERROR = %d (rc %d)",
		       s->c->id, err, rc);
		if (err > 0) {
			side_error(run, s, err);
			return;
		}
	}
	if (!s->connected) {
		int state = tern_sock_state(st, s->fd);
		if (state == TERN_STATE_SYN_SENT || state == TERN_STATE_SYN_RCVD)
			return;
		s->connected = true;
	}
	/* Read everything there is; a lazy reader comes back for it later. */
	if (!may_read && (ev & TERN_EV_IN) && !s->read_pending) {
		/* One callback slot per side, used again and again. */
		s->read_pending = true;
		s->read_act = (struct action){run, A_READ, s->c, s->dir, 0};
		tern_sim_at(run->sim, tern_sim_now(run->sim) + s->lazy_us, on_action, &s->read_act);
	}
	for (; may_read;) {
		uint8_t buf[8192];
		long n = tern_recv(st, s->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			side_verify(run, s, buf, (size_t)n);
			continue;
		}
		if (n == 0) {
			if (!s->eof) {
				s->eof = true;
				struct side *peer = &s->c->s[!s->dir];
				/* The peer shut down only after queueing all it had. */
				RCHECK(run, s->c->abort_issued || s->c->reboot_affected ||
						    s->rx_got == peer->tx_total,
				       "conn %d %s side: end of stream after %" PRIu64
				       " bytes, peer sent %" PRIu64,
				       s->c->id, s->dir ? "server" : "client", s->rx_got, peer->tx_total);
			}
			break;
		}
		if (n == -EAGAIN)
			break;
		side_error(run, s, (int)-n);
		return;
	}
	/* Send what the script released. */
	while (!s->shut && s->tx_queued < s->tx_target) {
		uint8_t buf[8192];
		uint64_t want = s->tx_target - s->tx_queued;
		size_t len = want < sizeof(buf) ? (size_t)want : sizeof(buf);
		stream_fill(s->key, s->tx_queued, buf, len);
		long n = tern_send(st, s->fd, buf, len, 0);
		if (n > 0) {
			RCHECK(run, (size_t)n <= len, "send returned %ld of %zu", n, len);
			s->tx_queued += (uint64_t)n;
			continue;
		}
		if (n == -EAGAIN)
			break;
		RCHECK(run, n != 0, "conn %d: send() returned 0 for %zu bytes", s->c->id, len);
		if (n == 0)
			break;
		side_error(run, s, (int)-n);
		return;
	}
	/* Close as the mode says. */
	bool done = side_all_sent(s);
	if (s->want_shut && done && !s->shut) {
		int rc = tern_shutdown(st, s->fd, TERN_SHUT_WR);
		RCHECK(run, rc == 0, "conn %d: shutdown = %s", s->c->id, tern_errno_name(rc));
		s->shut = true;
	}
	if (s->shut && s->eof) {
		side_close(run, s);
		return;
	}
	if (!s->active && s->eof && done) {
		if (!s->close_direct) {
			int rc = tern_shutdown(st, s->fd, TERN_SHUT_WR);
			RCHECK(run, rc == 0, "conn %d: shutdown = %s", s->c->id, tern_errno_name(rc));
			s->shut = true;
		}
		side_close(run, s);
	}
}

/* The side starts (connect() called, or accept() returned): its script begins now. */
static void side_start(struct run *run, struct side *s, int fd)
{
	uint64_t now = tern_sim_now(run->sim);
	s->fd = fd;
	s->started = true;
	if (fd >= 0 && fd < MAX_FDS)
		run->h[s->host].fdmap[fd] = s;
	else
		RCHECK(run, false, "descriptor %d out of the test's range", fd);
	for (int i = 0; i < s->nmsgs; i++)
		schedule(run, now + s->msg_off[i], A_MSG, s->c, s->dir, i);
	if (s->active)
		schedule(run, now + s->shut_off, A_SHUT, s->c, s->dir, 0);
}

static void side_abort(struct run *run, struct side *s, bool linger0)
{
	struct tern_stack *st = stk(run, s->host);
	int rc;
	if (linger0) {
		struct tern_linger lg = {1, 0};
		rc = tern_setsockopt(st, s->fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg));
		RCHECK(run, rc == 0, "SO_LINGER = %s", tern_errno_name(rc));
		rc = tern_close(st, s->fd);
	} else {
		rc = tern_abort(st, s->fd);
	}
	RCHECK(run, rc == 0, "conn %d: abort = %s", s->c->id, tern_errno_name(rc));
	side_unmap(run, s);
	s->closed = true;
	s->aborted = true;
	s->c->abort_issued = true;
	if (s->dir == 0)
		maybe_follow(run, s->c);
}

/* ---- scheduled actions ---- */

static int client_socket(struct run *run, struct conn *c, uint16_t port)
{
	struct tern_stack *st = stk(run, c->chost);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	RCHECK(run, fd >= 0, "socket() = %s", tern_errno_name(fd));
	if (fd < 0)
		return fd;
	/* Some client sockets get a small send buffer (partial sends, EAGAIN, OUT events). */
	uint32_t pick = rnd_below(&run->r, 4);
	if (pick == 1 || pick == 2) {
		int sz = pick == 1 ? 1024 : 3000;
		int rc = tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &sz, sizeof(sz));
		RCHECK(run, rc == 0, "SO_SNDBUF = %s", tern_errno_name(rc));
	}
	if (rnd_below(&run->r, 2)) {
		int one = 1;
		tern_setsockopt(st, fd, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, &one, sizeof(one));
	}
	if (c->reuse) {
		int one = 1;
		int rc = tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
		RCHECK(run, rc == 0, "SO_REUSEADDR = %s", tern_errno_name(rc));
	}
	if (port) {
		struct tern_sockaddr me = {0, port};
		int rc = tern_bind(st, fd, &me);
		if (rc == -EADDRINUSE)
			c->bind_refused = true; /* the old socket, or its TIME_WAIT, still holds it */
		else
			RCHECK(run, rc == 0, "conn %d: bind(%u) = %s", c->id, port, tern_errno_name(rc));
	}
	return fd;
}

static void open_conn(struct run *run, struct conn *c)
{
	struct tern_stack *st = stk(run, c->chost);
	struct side *s = &c->s[0];
	uint16_t port = c->follow_of >= 0 ? run->conns[c->follow_of].cport : 0;
	int fd = client_socket(run, c, port);
	if (fd < 0)
		return;
	struct tern_sockaddr to = {tern_sim_host_addr(run->sim, c->shost), SERVER_PORT};
	int rc = tern_connect(st, fd, &to);
	if (rc == -EADDRNOTAVAIL && port && !c->bind_refused) {
		/* The 4-tuple is still in use here (our TIME_WAIT): another port, then. */
		c->connect_refused = true;
		RCHECK(run, tern_close(st, fd) == 0, "close");
		fd = client_socket(run, c, 0);
		if (fd < 0)
			return;
		rc = tern_connect(st, fd, &to);
	}
	RCHECK(run, rc == -EINPROGRESS, "conn %d: connect() = %s", c->id, tern_errno_name(rc));
	if (rc == -EINPROGRESS)
		run->h[c->chost].connects++;
	c->opened_at = tern_sim_now(run->sim);
	struct tern_sockaddr me;
	rc = tern_getsockname(st, fd, &me);
	RCHECK(run, rc == 0 && me.port != 0 && me.addr == tern_sim_host_addr(run->sim, c->chost),
	       "getsockname after connect");
	c->cport = me.port;
	if (run->print)
		tern_sim_note(run->sim, c->chost, "conn %d (%s): fd %d port %u connects to host %d",
			      c->id, mode_names[c->mode], fd, c->cport, c->shost);
	side_start(run, s, fd);
	if (s->abort_pending) {
		s->abort_pending = false;
		side_abort(run, s, rnd_below(&run->r, 2));
		return;
	}
	side_progress(run, s, !s->lazy_us);
}

static void listen_on(struct run *run, int host)
{
	struct tern_stack *st = stk(run, host);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	RCHECK(run, fd >= 0, "listener socket() = %s", tern_errno_name(fd));
	if (rnd_below(&run->r, 2)) {
		int one = 1;
		tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
	}
	/* Small receive buffers close the window: the persist timer must keep things going. */
	if (rnd_below(&run->r, 3) == 0) {
		static const int sizes[] = {256, 700, 3000};
		int sz = sizes[rnd_below(&run->r, 3)];
		tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &sz, sizeof(sz));
	}
	struct tern_sockaddr a = {rnd_below(&run->r, 2) ? tern_sim_host_addr(run->sim, host) : 0,
				  SERVER_PORT};
	int rc = tern_bind(st, fd, &a);
	RCHECK(run, rc == 0, "host %d: bind(80) = %s", host, tern_errno_name(rc));
	rc = tern_listen(st, fd, 64);
	RCHECK(run, rc == 0, "host %d: listen = %s", host, tern_errno_name(rc));
	run->h[host].listen_fd = fd;
	run->h[host].mem_base = tern_stack_memory(st);
}

static void accumulate(struct tern_stats *acc, const struct tern_stats *s)
{
	const uint64_t *src = (const uint64_t *)s;
	uint64_t *dst = (uint64_t *)acc;
	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static void do_reboot(struct run *run)
{
	int b = run->reboot_host;
	struct host_app *ha = &run->h[b];
	accumulate(&ha->acc, tern_stack_stats(stk(run, b)));
	for (int i = 0; i < run->nconns; i++) {
		struct conn *c = &run->conns[i];
		if (c->shost != b)
			continue;
		struct side *srv = &c->s[1], *cli = &c->s[0];
		if (srv->started && !srv->closed) {
			/* Whatever it had not yet read is lost with the host. */
			srv->crashed = true;
			srv->fd = -1;
			c->reboot_affected = true;
		}
		if (side_open(cli)) {
			c->reboot_affected = true;
			c->state_at_reboot = tern_sock_state(stk(run, c->chost), cli->fd);
		}
		/* A server side that had not been accepted never will be on this host's
		 * old stack; a pending abort there has nothing left to act on. */
		srv->abort_pending = false;
	}
	memset(ha->fdmap, 0, sizeof(ha->fdmap));
	ha->listen_fd = -1;
	tern_sim_reboot(run->sim, b);
}

static void do_accept(struct run *run, int host)
{
	struct host_app *ha = &run->h[host];
	struct tern_stack *st = stk(run, host);
	for (;;) {
		struct tern_sockaddr peer = {0, 0};
		int fd = tern_accept(st, ha->listen_fd, &peer);
		if (fd == -EAGAIN)
			return;
		RCHECK(run, fd >= 0, "host %d: accept() = %s", host, tern_errno_name(fd));
		if (fd < 0)
			return;
		ha->accepts++;
		/* Which connection is it? The latest one from that address and port. */
		struct conn *found = NULL;
		for (int i = 0; i < run->nconns; i++) {
			struct conn *c = &run->conns[i];
			if (c->shost == host && !c->accepted && c->s[0].started &&
			    tern_sim_host_addr(run->sim, c->chost) == peer.addr && c->cport == peer.port &&
			    (!found || c->opened_at > found->opened_at))
				found = c;
		}
		RCHECK(run, found != NULL, "host %d accepted an unknown connection from port %u", host,
		       peer.port);
		if (!found) {
			tern_close(st, fd);
			continue;
		}
		struct tern_sockaddr me;
		int rc = tern_getsockname(st, fd, &me);
		RCHECK(run, rc == 0 && me.port == SERVER_PORT &&
				    me.addr == tern_sim_host_addr(run->sim, host),
		       "accepted socket's name");
		found->accepted = true;
		struct side *s = &found->s[1];
		side_start(run, s, fd);
		if (s->abort_pending) {
			s->abort_pending = false;
			side_abort(run, s, rnd_below(&run->r, 2));
			continue;
		}
		side_progress(run, s, !s->lazy_us);
	}
}

static void on_action(struct tern_sim *sim, void *arg)
{
	(void)sim;
	struct action *a = arg;
	struct run *run = a->run;
	struct conn *c = a->c;
	struct side *s = c ? &c->s[a->dir] : NULL;
	switch (a->kind) {
	case A_OPEN:
		open_conn(run, c);
		break;
	case A_MSG:
		if (!side_open(s) || s->shut)
			break;
		s->released = a->idx + 1;
		s->tx_target += s->msg_len[a->idx];
		side_progress(run, s, !s->lazy_us);
		break;
	case A_READ:
		s->read_pending = false;
		side_progress(run, s, true);
		break;
	case A_SHUT:
		if (!side_open(s))
			break;
		s->want_shut = true;
		side_progress(run, s, !s->lazy_us);
		break;
	case A_ABORT:
		if (side_open(s))
			side_abort(run, s, rnd_below(&run->r, 2));
		else if (!s->started && !s->crashed)
			s->abort_pending = true;
		break;
	case A_REBOOT:
		do_reboot(run);
		if (run->t_relisten == run->t_reboot)
			listen_on(run, run->reboot_host);
		break;
	case A_RELISTEN:
		listen_on(run, run->reboot_host);
		break;
	case A_PROBE:
		/* Every connection to the crashed host that can still send says something, so
		 * that it learns of the crash (an idle one would wait for ever, as on Linux). */
		for (int i = 0; i < run->nconns; i++) {
			struct conn *k = &run->conns[i];
			struct side *cl = &k->s[0];
			if (!k->reboot_affected || !side_open(cl) || cl->shut || cl->want_shut)
				continue;
			cl->tx_total += PROBE_LEN;
			cl->tx_target += PROBE_LEN;
			side_progress(run, cl, !cl->lazy_us);
		}
		break;
	case A_GIVEUP:
		/* Whatever is still waiting on the crashed host now must be a FIN_WAIT_2 that
		 * hears nothing more (no timer runs there while the application holds it). */
		for (int i = 0; i < run->nconns; i++) {
			struct conn *k = &run->conns[i];
			struct side *cl = &k->s[0];
			if (!k->reboot_affected || !side_open(cl))
				continue;
			int state = tern_sock_state(stk(run, k->chost), cl->fd);
			RCHECK(run, state == TERN_STATE_FIN_WAIT_2,
			       "conn %d to the rebooted host still in %s %.1f s after the reboot "
			       "(was %s at the reboot)",
			       k->id, tern_state_name(state),
			       (double)(tern_sim_now(run->sim) - run->t_reboot) / 1e6,
			       tern_state_name(k->state_at_reboot));
			k->gave_up = true;
			side_close(run, cl);
		}
		break;
	}
}

static void schedule(struct run *run, uint64_t t, enum act_kind kind, struct conn *c, int dir, int idx)
{
	if (run->nacts >= MAX_ACTIONS) {
		rfail(run, __FILE__, __LINE__, "out of action slots");
		return;
	}
	struct action *a = &run->acts[run->nacts++];
	*a = (struct action){run, kind, c, dir, idx};
	tern_sim_at(run->sim, t, on_action, a);
}

static void on_event(struct tern_sim *sim, int host, const struct tern_event *ev, void *user)
{
	(void)sim;
	struct run *run = user;
	struct host_app *ha = &run->h[host];
	if (ev->fd == ha->listen_fd) {
		if (ev->events & TERN_EV_IN)
			do_accept(run, host);
		return;
	}
	if (ev->fd < 0 || ev->fd >= MAX_FDS)
		return;
	struct side *s = ha->fdmap[ev->fd];
	if (s)
		side_progress(run, s, !s->lazy_us);
}

/* Count what the wire did, to balance the counters at the end. A corrupted packet is
 * recognised by the CORRUPT event right after its SEND; its duplicate is corrupted too. */
static void print_ev(const struct tern_sim_ev *ev)
{
	static const char *const kinds[] = {"?", "send", "recv", "DROP", "DUP", "CORRUPT", "delay",
					    "discard", "state", "error", "icmp", "app", "inject"};
	fprintf(stderr, "%10.6f h%d", (double)ev->t_us / 1e6, ev->host);
	fprintf(stderr, " %-7s", (unsigned)ev->kind < 13 ? kinds[ev->kind] : "?");
	if (ev->kind == TERN_SIM_EV_STATE) {
		fprintf(stderr, " %u->%u fd %d %s -> %s\n", ev->tr.u.state.lport, ev->tr.u.state.rport,
			ev->tr.fd, tern_state_name(ev->tr.u.state.from), tern_state_name(ev->tr.u.state.to));
		return;
	}
	if (ev->kind == TERN_SIM_EV_ERROR) {
		fprintf(stderr, " fd %d %s\n", ev->tr.fd, tern_errno_name(ev->tr.u.error));
		return;
	}
	if (ev->seg_valid) {
		const struct tern_seg_info *g = &ev->tr.u.seg;
		fprintf(stderr, " %u->%u [%s%s%s%s%s] seq %u ack %u win %u len %u", g->sport, g->dport,
			g->flags & TERN_TH_SYN ? "S" : "", g->flags & TERN_TH_FIN ? "F" : "",
			g->flags & TERN_TH_RST ? "R" : "", g->flags & TERN_TH_PSH ? "P" : "",
			g->flags & TERN_TH_ACK ? "." : "", g->seq, g->ack, g->win, g->len);
	}
	if (ev->kind == TERN_SIM_EV_APP && ev->text)
		fprintf(stderr, " %s", ev->text);
	if (ev->tr.reason)
		fprintf(stderr, " (%s)", ev->tr.reason);
	fprintf(stderr, "\n");
}

/* A segment in, or an RST out, on host's connection lport-rport at time t: what may close
 * it then, other than a timer. */
static void seen_cause(struct run *run, int host, uint64_t t, uint16_t lport, uint16_t rport)
{
	run->cause_host = host;
	run->cause_t = t;
	run->cause_lport = lport;
	run->cause_rport = rport;
}

static void on_trace(void *user, const struct tern_sim_ev *ev)
{
	struct run *run = user;
	if (run->print)
		print_ev(ev);
	switch (ev->kind) {
	case TERN_SIM_EV_SEND:
		run->sends++;
		run->last_corrupt = false;
		if (ev->tr.u.seg.flags & TERN_TH_RST) /* an abort: the close is the application's */
			seen_cause(run, ev->host, ev->t_us, ev->tr.u.seg.sport, ev->tr.u.seg.dport);
		break;
	case TERN_SIM_EV_DROP:
		run->drops++;
		break;
	case TERN_SIM_EV_DUP:
		run->dups++;
		if (run->last_corrupt)
			run->corrupt_deliveries++;
		break;
	case TERN_SIM_EV_CORRUPT:
		run->last_corrupt = true;
		run->corrupt_deliveries++;
		break;
	case TERN_SIM_EV_RECV:
		seen_cause(run, ev->host, ev->t_us, ev->tr.u.seg.dport, ev->tr.u.seg.sport);
		break;
	case TERN_SIM_EV_STATE: {
		/* A connection the application has closed (no descriptor) that ends in LAST_ACK,
		 * FIN_WAIT_1 or CLOSING with no segment of its own arriving and no RST sent: its
		 * retransmissions ran out (orphan_retries). Rare, and right when the impairment
		 * keeps eating the last ACKs: the peer's application has all its bytes (checked
		 * elsewhere), and the peer itself may be long gone. */
		int from = ev->tr.u.state.from;
		if (ev->tr.u.state.to == TERN_STATE_CLOSED && ev->tr.fd < 0 &&
		    (from == TERN_STATE_LAST_ACK || from == TERN_STATE_FIN_WAIT_1 ||
		     from == TERN_STATE_CLOSING) &&
		    !(run->cause_host == ev->host && run->cause_t == ev->t_us &&
		      run->cause_lport == ev->tr.u.state.lport &&
		      run->cause_rport == ev->tr.u.state.rport))
			run->orphan_timeouts++;
		break;
	}
	default:
		break;
	}
}

/* ---- building a run ---- */

static void make_script(struct run *run, struct side *s)
{
	struct rnd *r = &run->r;
	s->nmsgs = (int)rnd_below(r, MAX_MSGS + 1);
	uint64_t t = 0;
	for (int i = 0; i < s->nmsgs; i++) {
		t += rnd_range(r, 0, MS(400));
		s->msg_off[i] = t;
		uint32_t k = rnd_below(r, 100), len;
		if (k < 65)
			len = (uint32_t)rnd_range(r, 1, 200);
		else if (k < 95)
			len = (uint32_t)rnd_range(r, 200, 2000);
		else
			len = (uint32_t)rnd_range(r, 2000, 6000);
		s->msg_len[i] = len;
		s->tx_total += len;
	}
	s->shut_off = t + rnd_range(r, 0, MS(600));
	if (rnd_below(r, 4) == 0)
		s->lazy_us = (uint32_t)rnd_range(r, MS(1), MS(300));
	s->close_direct = rnd_below(r, 2);
}

static void run_setup(struct run *run, uint64_t seed, bool reboot)
{
	memset(run, 0, sizeof(*run));
	run->cause_host = -1;
	run->seed = seed;
	run->reboot = reboot;
	run->r.s = seed * 0x2545f4914f6cdd1dull + (reboot ? 0x5eed : 0);
	struct rnd *r = &run->r;
	run->print = getenv("TERN_SOAK_TRACE") != NULL;
	run->sim = tern_sim_new(seed);
	run->nhosts = reboot ? 3 : 2 + (int)rnd_below(r, 2);
	static const char *const names[] = {"a", "b", "c"};
	for (int i = 0; i < run->nhosts; i++) {
		struct tern_settings set;
		tern_settings_default(&set);
		static const uint32_t cwnds[] = {1, 2, 4, 10};
		static const uint32_t mtus[] = {576, 1000, 1500, 1500};
		set.initial_cwnd = cwnds[rnd_below(r, 4)];
		set.mtu = mtus[rnd_below(r, 4)];
		int h = tern_sim_add_host(run->sim, names[i], TERN_IP4(10, 0, 0, i + 1), &set);
		RCHECK(run, h == i, "add_host = %d", h);
	}
	/* Every direction gets its own impairments; a few runs go without any. */
	bool clean = rnd_below(r, 20) == 0;
	for (int f = 0; f < run->nhosts; f++) {
		for (int t = 0; t < run->nhosts; t++) {
			if (f == t)
				continue;
			struct tern_impair imp = {0, 0, 0, 0, 0, 0};
			if (!clean) {
				imp.loss = rnd_unit(r) * 0.05;
				imp.dup = rnd_unit(r) * 0.05;
				imp.reorder = rnd_unit(r) * 0.05;
				imp.corrupt = rnd_unit(r) * 0.05;
			}
			imp.delay_us = (uint32_t)rnd_range(r, MS(1), MS(20));
			imp.jitter_us = (uint32_t)rnd_range(r, 0, imp.delay_us);
			tern_sim_set_impair(run->sim, f, t, &imp);
		}
	}
	tern_sim_set_trace(run->sim, on_trace, run);
	tern_sim_on_event(run->sim, on_event, run);
	for (int i = 0; i < run->nhosts; i++)
		listen_on(run, i);

	if (reboot) {
		run->reboot_host = 1;
		run->t_reboot = rnd_range(r, MS(300), MS(4000));
		/* The server comes back at once or a while after the crash (until then its fresh
		 * stack has no socket at all: SYNs get RST, nothing else to do). */
		run->t_relisten = run->t_reboot;
		if (rnd_below(r, 3))
			run->t_relisten += rnd_range(r, MS(1), MS(2000));
		schedule(run, run->t_reboot, A_REBOOT, NULL, 0, 0);
		if (run->t_relisten != run->t_reboot)
			schedule(run, run->t_relisten, A_RELISTEN, NULL, 0, 0);
		schedule(run, run->t_reboot + SEC(1), A_PROBE, NULL, 0, 0);
		schedule(run, run->t_reboot + SEC(200), A_GIVEUP, NULL, 0, 0);
	}

	run->nconns = 1 + (int)rnd_below(r, MAX_CONNS);
	for (int i = 0; i < run->nconns; i++) {
		struct conn *c = &run->conns[i];
		c->id = i;
		if (reboot) {
			/* The rebooting host only serves. */
			static const int clients[] = {0, 2};
			c->chost = clients[rnd_below(r, 2)];
		} else {
			c->chost = (int)rnd_below(r, (uint32_t)run->nhosts);
		}
		/* Now and then a host connects to itself (its own address, a lossless loop). */
		bool self = !reboot && rnd_below(r, 12) == 0;
		do
			c->shost = (int)rnd_below(r, (uint32_t)run->nhosts);
		while (self ? c->shost != c->chost : c->shost == c->chost);
		c->mode = (enum close_mode)rnd_below(r, CM_COUNT);
		c->t_open = rnd_range(r, 0, MS(3000));
		c->reuse = rnd_below(r, 2);
		c->follow_of = c->follower = -1;
		if (!reboot && i > 0 && rnd_below(r, 3) == 0) {
			int j = (int)rnd_below(r, (uint32_t)i);
			if (run->conns[j].follower < 0) {
				c->follow_of = j;
				run->conns[j].follower = i;
				c->chost = run->conns[j].chost;
				c->shost = run->conns[j].shost;
			}
		}
		if (reboot && c->shost == run->reboot_host && c->t_open >= run->t_reboot &&
		    c->t_open <= run->t_relisten + MS(1))
			c->t_open = run->t_relisten + MS(1) + rnd_range(r, 0, MS(500));
		for (int d = 0; d < 2; d++) {
			struct side *s = &c->s[d];
			s->c = c;
			s->dir = d;
			s->host = d ? c->shost : c->chost;
			s->fd = -1;
			s->key = mix64(seed ^ ((uint64_t)i << 8) ^ (uint64_t)d ^ 0xabcdef);
			make_script(run, s);
		}
		c->s[0].active = c->mode == CM_CLIENT || c->mode == CM_BOTH || c->mode >= CM_ABORT_CLIENT;
		c->s[1].active = c->mode == CM_SERVER || c->mode == CM_BOTH || c->mode >= CM_ABORT_CLIENT;
		if (c->follow_of < 0)
			schedule(run, c->t_open, A_OPEN, c, 0, 0);
		if (c->mode == CM_ABORT_CLIENT || c->mode == CM_ABORT_SERVER) {
			/* (A follow-up's abort time counts from its predecessor's opening.) */
			c->t_abort = c->t_open + rnd_range(r, 0, MS(3000));
			if (c->follow_of >= 0)
				c->t_abort += SEC(5);
			schedule(run, c->t_abort, A_ABORT, c, c->mode == CM_ABORT_SERVER, 0);
		}
	}
}

/* ---- the checks at the end ---- */

struct leftovers {
	struct run *run;
	int host;
	size_t listeners, others;
};

static void count_left(void *user, const struct tern_conn_info *ci)
{
	struct leftovers *l = user;
	if (ci->state == TERN_STATE_LISTEN && ci->fd == l->run->h[l->host].listen_fd) {
		l->listeners++;
		return;
	}
	l->others++;
	if (l->others <= 5)
		rfail(l->run, __FILE__, __LINE__,
		      "host %d: left over: fd %d %s %u -> port %u (snd_queue %u, rcv_queue %u)",
		      l->host, ci->fd, tern_state_name(ci->state), ci->lport, ci->rport, ci->snd_queue,
		      ci->rcv_queue);
}

static void check_outcomes(struct run *run)
{
	for (int i = 0; i < run->nconns; i++) {
		struct conn *c = &run->conns[i];
		struct side *cl = &c->s[0];
		if (c->abort_issued || c->reboot_affected)
			continue;
		if (c->follow_of >= 0 && !c->follow_scheduled)
			continue; /* its predecessor's client never closed (a peer that was reset) */
		const char *m = mode_names[c->mode];
		RCHECK(run, cl->started && cl->connected,
		       "conn %d (%s, host %d -> %d, opened at %.3f s): never connected (err %s)", c->id,
		       m, c->chost, c->shost, (double)c->t_open / 1e6, tern_errno_name(cl->err));
		RCHECK(run, c->accepted, "conn %d (%s): never accepted", c->id, m);
		for (int d = 0; d < 2; d++) {
			struct side *s = &c->s[d], *p = &c->s[!d];
			const char *who = d ? "server" : "client";
			const char *state = s->fd >= 0 && !s->closed
						    ? tern_state_name(tern_sock_state(stk(run, s->host), s->fd))
						    : "closed";
			RCHECK(run, s->eof,
			       "conn %d (%s) %s: no end of stream (got %" PRIu64 " of %" PRIu64
			       " bytes, state %s, err %s)",
			       c->id, m, who, s->rx_got, p->tx_total, state, tern_errno_name(s->err));
			RCHECK(run, s->rx_got == p->tx_total,
			       "conn %d (%s) %s: received %" PRIu64 " bytes, peer sent %" PRIu64, c->id,
			       m, who, s->rx_got, p->tx_total);
			RCHECK(run, s->closed && !s->err, "conn %d (%s) %s: not closed cleanly (err %s)",
			       c->id, m, who, tern_errno_name(s->err));
		}
	}
	if (run->reboot) {
		for (int i = 0; i < run->nconns; i++) {
			struct conn *c = &run->conns[i];
			if (!c->reboot_affected)
				continue;
			struct side *cl = &c->s[0];
			RCHECK(run, cl->closed, "conn %d to the rebooted host (%s at the reboot) never ended",
			       c->id, tern_state_name(c->state_at_reboot));
			/* Something that could still speak must have learnt of the crash. */
			if (c->state_at_reboot == TERN_STATE_ESTABLISHED && !c->abort_issued && !cl->eof)
				RCHECK(run, cl->err == ECONNRESET || cl->err == EPIPE || c->gave_up,
				       "conn %d: established at the reboot, ended with %s", c->id,
				       tern_errno_name(cl->err));
		}
	}
}

static void check_empty(struct run *run)
{
	for (int h = 0; h < run->nhosts; h++) {
		struct tern_stack *st = stk(run, h);
		struct leftovers l = {run, h, 0, 0};
		tern_stack_foreach(st, count_left, &l);
		RCHECK(run, l.listeners == 1 && l.others == 0, "host %d: %zu listeners, %zu others left",
		       h, l.listeners, l.others);
		/* Everything is given back but the spare rings a stack keeps for its next
		 * connection (counted by tern_stack_memory): one of rmem_default bytes, and one
		 * other ring of up to 256 KiB (a send buffer grown with cwnd, or a receive buffer
		 * of a size SO_RCVBUF chose). */
		size_t mem = tern_stack_memory(st), base = run->h[h].mem_base;
		const struct tern_settings *set = tern_stack_settings(st);
		size_t rcv_spare = sizeof(struct ring) + set->rmem_default;
		bool ok = false;
		for (int with_rcv = 0; with_rcv < 2 && !ok && mem >= base; with_rcv++) {
			size_t spare = with_rcv ? rcv_spare : 0;
			if (mem - base < spare)
				continue;
			size_t snd = mem - base - spare;
			ok = snd == 0 || (snd > sizeof(struct ring) &&
					  snd <= sizeof(struct ring) + 256 * 1024);
		}
		RCHECK(run, ok, "host %d: memory %zu at the end, %zu with the listener alone", h,
		       mem, base);
		RCHECK(run, tern_stack_next_timer(st) == TERN_TIME_NEVER, "host %d: a timer is armed", h);
	}
}

static void check_stats(struct run *run)
{
	struct tern_stats t;
	memset(&t, 0, sizeof(t));
	for (int h = 0; h < run->nhosts; h++) {
		struct tern_stats s = run->h[h].acc;
		accumulate(&s, tern_stack_stats(stk(run, h)));
		accumulate(&t, &s);
		RCHECK(run, s.tcp_active_opens == run->h[h].connects,
		       "host %d: tcp_active_opens %" PRIu64 ", connect() called %" PRIu64, h,
		       s.tcp_active_opens, run->h[h].connects);
		RCHECK(run, s.tcp_passive_opens >= run->h[h].accepts,
		       "host %d: tcp_passive_opens %" PRIu64 " < accepted %" PRIu64, h,
		       s.tcp_passive_opens, run->h[h].accepts);
	}
	RCHECK(run, t.tcp_out == run->sends, "tcp_out %" PRIu64 " != segments traced %" PRIu64,
	       t.tcp_out, run->sends);
	RCHECK(run, t.ip_out == run->sends, "ip_out %" PRIu64 " != segments traced %" PRIu64,
	       t.ip_out, run->sends);
	RCHECK(run, t.ip_in == run->sends - run->drops + run->dups,
	       "ip_in %" PRIu64 " != sent %" PRIu64 " - lost %" PRIu64 " + duplicated %" PRIu64,
	       t.ip_in, run->sends, run->drops, run->dups);
	uint64_t ip_drops = t.ip_bad_header + t.ip_bad_checksum + t.ip_fragments + t.ip_not_ours +
			    t.ip_bad_proto;
	uint64_t malformed = ip_drops + t.tcp_bad_header + t.tcp_bad_options + t.tcp_bad_checksum;
	RCHECK(run, malformed == run->corrupt_deliveries,
	       "malformed drops %" PRIu64 " (ip hdr %" PRIu64 " ip csum %" PRIu64 " frag %" PRIu64
	       " tcp hdr %" PRIu64 " opts %" PRIu64 " tcp csum %" PRIu64
	       ") != corrupted packets delivered %" PRIu64,
	       malformed, t.ip_bad_header, t.ip_bad_checksum, t.ip_fragments, t.tcp_bad_header,
	       t.tcp_bad_options, t.tcp_bad_checksum, run->corrupt_deliveries);
	if (run->corrupt_deliveries)
		RCHECK(run, malformed > 0, "corruption never caught");
	RCHECK(run, t.tcp_in == t.ip_in - ip_drops - t.icmp_in,
	       "tcp_in %" PRIu64 " != ip_in %" PRIu64 " - ip drops %" PRIu64, t.tcp_in, t.ip_in,
	       ip_drops);
	RCHECK(run, t.icmp_in == 0 && t.icmp_out == 0, "icmp traffic");
	RCHECK(run, t.link_tx_errors == 0, "link_tx_errors %" PRIu64, t.link_tx_errors);
	RCHECK(run, t.mem_failures == 0, "mem_failures %" PRIu64, t.mem_failures);
	RCHECK(run, t.tcp_timeouts == run->orphan_timeouts,
	       "tcp_timeouts %" PRIu64 ", of closed connections out of retries %" PRIu64,
	       t.tcp_timeouts, run->orphan_timeouts);
	RCHECK(run, t.tcp_rst_in <= t.tcp_rst_out, "more RSTs in (%" PRIu64 ") than out (%" PRIu64 ")",
	       t.tcp_rst_in, t.tcp_rst_out);
}

static int run_seed(uint64_t seed, bool reboot)
{
	struct run *run = calloc(1, sizeof(*run));
	if (!run)
		abort();
	run_setup(run, seed, reboot);
	/* Everything, TIME_WAIT and the give-up timer included, ends well within this. */
	tern_sim_run_idle(run->sim, SEC(1000));
	RCHECK(run, tern_sim_idle(run->sim), "still busy after 1000 s");
	check_outcomes(run);
	/* Release what the applications still hold (peers of aborted connections that heard
	 * nothing), then let the stacks finish. */
	run->cleaning = true;
	for (int i = 0; i < run->nconns; i++)
		for (int d = 0; d < 2; d++)
			if (side_open(&run->conns[i].s[d]))
				side_close(run, &run->conns[i].s[d]);
	tern_sim_run_idle(run->sim, tern_sim_now(run->sim) + SEC(1000));
	RCHECK(run, tern_sim_idle(run->sim), "still busy after the clean-up");
	check_empty(run);
	check_stats(run);
	if (getenv("TERN_SOAK_VERBOSE")) {
		unsigned normal = 0, aborted = 0, affected = 0, resets = 0, gave_up = 0;
		unsigned follows = 0, same_port = 0, bind_refused = 0, connect_refused = 0;
		uint64_t recycled = 0;
		for (int h = 0; h < run->nhosts; h++)
			recycled += tern_stack_stats(stk(run, h))->tcp_tw_recycled;
		uint64_t bytes = 0;
		for (int i = 0; i < run->nconns; i++) {
			const struct conn *c = &run->conns[i];
			if (c->reboot_affected) {
				affected++;
				resets += c->s[0].err == ECONNRESET || c->s[0].err == EPIPE;
				gave_up += c->gave_up;
			}
			else if (c->abort_issued)
				aborted++;
			else
				normal++;
			bytes += c->s[0].rx_got + c->s[1].rx_got;
			if (c->follow_of >= 0 && c->follow_scheduled) {
				follows++;
				same_port += c->cport == run->conns[c->follow_of].cport;
				bind_refused += c->bind_refused;
				connect_refused += c->connect_refused;
			}
		}
		fprintf(stderr,
			"seed %" PRIu64 "%s: %d hosts, %d conns (%u normal, %u aborted, %u hit by "
			"the reboot: %u reset, %u gave up), %" PRIu64 " bytes delivered, %" PRIu64 " segments, %" PRIu64
			" lost, %" PRIu64 " duplicated, %" PRIu64 " corrupted, ended at %.1f s; "
			"%u follow-ups (%u on the same port, %u bind refused, %u connect refused), "
			"%" PRIu64 " TIME_WAIT recycled\n",
			seed, reboot ? " (reboot)" : "", run->nhosts, run->nconns, normal, aborted,
			affected, resets, gave_up, bytes, run->sends, run->drops, run->dups, run->corrupt_deliveries,
			(double)tern_sim_now(run->sim) / 1e6, follows, same_port, bind_refused,
			connect_refused, recycled);
	}
	int failed = run->failures;
	tern_sim_free(run->sim);
	free(run);
	return failed;
}

/* ---- the driver: one child per seed ---- */

static unsigned soak_count(unsigned def)
{
	const char *s = getenv("TERN_SOAK");
	if (s && *s) {
		unsigned long n = strtoul(s, NULL, 0);
		if (n > 0)
			return (unsigned)n;
	}
	return def;
}

static void soak(bool reboot, unsigned def_seeds)
{
	const char *one = getenv("TERN_SEED");
	uint64_t first = test_seed(1);
	const char *many = getenv("TERN_SOAK");
	unsigned n = soak_count(one && *one && !(many && *many) ? 1 : def_seeds);
	bool nofork = getenv("TERN_TEST_NOFORK") != NULL;
	unsigned failed = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t seed = first + i;
		if (nofork) {
			if (run_seed(seed, reboot))
				failed++;
			continue;
		}
		fflush(NULL);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			if (failed >= 3) {
				/* Enough detail printed: later failures say only their seed. */
				FILE *f = freopen("/dev/null", "w", stderr);
				(void)f;
			}
			alarm(60);
			int f = run_seed(seed, reboot);
			/* exit(), not _exit(): LeakSanitizer checks each seed at exit. */
			exit(f ? 1 : 0);
		}
		int status = 0;
		REQUIRE(waitpid(pid, &status, 0) == pid);
		const char *test = reboot ? "random_soak_reboot" : "random_soak";
		if (WIFSIGNALED(status)) {
			failed++;
			test_fail(__FILE__, __LINE__,
				  "seed %" PRIu64 ": killed by signal %d%s (replay: TERN_SEED=%" PRIu64
				  " build/tern_tests %s)",
				  seed, WTERMSIG(status), WTERMSIG(status) == SIGALRM ? ", a hang" : "",
				  seed, test);
		} else if (WEXITSTATUS(status) != 0) {
			failed++;
			test_fail(__FILE__, __LINE__,
				  "seed %" PRIu64 " failed (replay: TERN_SEED=%" PRIu64
				  " build/tern_tests %s)", seed, seed, test);
		}
	}
	if (failed)
		test_fail(__FILE__, __LINE__, "%u of %u seeds failed, from seed %" PRIu64, failed, n,
			  first);
}

TEST(random_soak)
{
	soak(false, SOAK_DEFAULT_SEEDS);
}

TEST(random_soak_reboot)
{
	soak(true, REBOOT_DEFAULT_SEEDS);
}
