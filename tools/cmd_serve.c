/*
 * `tern serve`: long-running servers over tern on a TUN device, any number of connections at
 * once in one thread: echo (RFC 862), discard (RFC 863), source (chargen's pattern, RFC 864,
 * N bytes then close) and http (GET and HEAD of files under a directory). The loop learns
 * which sockets changed from tern_stack_events and moves each as far as it can; file bytes
 * go from the file straight into the send buffer (tern_send_zc), echoed bytes from the
 * receive buffer straight into the send buffer.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "commands.h"
#include "http.h"
#include "netopts.h"

enum svc { SVC_ECHO, SVC_DISCARD, SVC_SOURCE, SVC_HTTP, SVC_COUNT };
static const struct {
	const char *name;
	uint16_t port;
} svc_info[SVC_COUNT] = {{"echo", 7}, {"discard", 9}, {"source", 19}, {"http", 80}};

#define MAX_LISTENERS 8

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern serve [options] --addr A.B.C.D/NN SERVICE[:PORT]...\n"
		"\n"
		"Servers over tern on a TUN device, many connections at once. SERVICE is\n"
		"  echo     sends back what it receives (port 7)\n"
		"  discard  reads and drops everything (port 9)\n"
		"  source   sends --bytes N bytes of chargen's pattern, then closes (port 19)\n"
		"  http     GET and HEAD of the files under --dir, keep-alive (port 80)\n"
		"SIGINT or SIGTERM closes every connection cleanly, prints a summary and exits;\n"
		"SIGUSR1 prints the connections, a count per state and the counters.\n"
		"\n"
		"options:\n"
		"  --dir DIR            http: the directory served (default: the current one)\n"
		"  --bytes N            source: bytes per connection (default 1048576)\n"
		"  --stats SECS         print the connections and counters every SECS seconds\n"
		"  --max-conns N        connections served at once (default 1024); more wait\n"
		"  --idle SECS          close a connection idle this long (default 60; 0: never)\n"
		"  --grace MS           on SIGINT/SIGTERM, wait this long for connections to\n"
		"                       finish before resetting them (default 3000)\n");
	net_opts_usage(f);
}

struct conn {
	int fd, svc;
	uint64_t id, t0, last_active;
	char peer[24];
	uint64_t bytes_in, bytes_out;
	bool peer_eof, draining;
	/* source */
	uint64_t left, pos;
	/* http */
	char *req;
	size_t req_len;
	bool in_response, keep_alive, head_only;
	char hdr[512];
	size_t hdr_len, hdr_off;
	struct http_file file;
	uint64_t body_off;
	int status;
	unsigned requests;
};

struct server {
	struct net n;
	struct net_opts *o;
	struct { int fd, svc; uint16_t port; } ls[MAX_LISTENERS];
	int nls;
	struct conn **conns; /* by descriptor */
	size_t capconns, live;
	uint64_t next_id;
	char root[PATH_MAX];
	uint64_t source_bytes;
	unsigned max_conns, idle_s;
	/* what was served */
	uint64_t accepted, bytes_in, bytes_out, resets, timeouts;
	uint64_t aborted;          /* reset by tern at the end of the grace period */
	uint64_t now;              /* the loop's clock, read once per turn */
	uint64_t status_count[6]; /* by status / 100 */
};

static volatile sig_atomic_t got_stop, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_stop++;
}

static void vlog(struct server *s, struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void vlog(struct server *s, struct conn *c, const char *fmt, ...)
{
	if (!s->o->verbose)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "tern serve: %s #%llu %s: %s\n", svc_info[c->svc].name,
		(unsigned long long)c->id, c->peer, msg);
}

/* ---- connections ---- */

static void conn_free(struct server *s, struct conn *c)
{
	s->conns[c->fd] = NULL;
	s->live--;
	http_file_close(&c->file);
	free(c->req);
	free(c);
}

/* The application is done with the connection: drop unread bytes (so the close is a FIN,
 * not the RST that unread data calls for) and close it; tern finishes it in the background. */
static void conn_close(struct server *s, struct conn *c, const char *why)
{
	struct tern_iovec v[2];
	unsigned n;
	long len;
	while ((len = tern_recv_zc(s->n.st, c->fd, v, &n)) > 0) {
		c->bytes_in += (uint64_t)len;
		tern_recv_consume(s->n.st, c->fd, (size_t)len);
	}
	tern_close(s->n.st, c->fd);
	s->bytes_in += c->bytes_in;
	s->bytes_out += c->bytes_out;
	vlog(s, c, "%s (%llu bytes in, %llu out, %.3f s)", why, (unsigned long long)c->bytes_in,
	     (unsigned long long)c->bytes_out, (double)(tern_tun_clock() - c->t0) / 1e6);
	conn_free(s, c);
}

static const char *errtext(int err)
{
	switch (err) {
	case ECONNRESET: return "reset by the peer";
	case ETIMEDOUT: return "timed out";
	case EPIPE: return "broken";
	default: return strerror(err);
	}
}

/* An error on the socket ends the connection. Returns true if it did. */
static bool conn_error(struct server *s, struct conn *c, int err)
{
	if (!err) {
		size_t len = sizeof(err);
		if (!(tern_sock_events(s->n.st, c->fd) & TERN_EV_ERR))
			return false;
		tern_getsockopt(s->n.st, c->fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &len);
		if (!err)
			return false;
	}
	if (err == ECONNRESET)
		s->resets++;
	if (err == ETIMEDOUT)
		s->timeouts++;
	char why[64];
	snprintf(why, sizeof(why), "%s", errtext(err));
	s->bytes_in += c->bytes_in;
	s->bytes_out += c->bytes_out;
	vlog(s, c, "%s (%llu bytes in, %llu out)", why, (unsigned long long)c->bytes_in,
	     (unsigned long long)c->bytes_out);
	tern_close(s->n.st, c->fd);
	conn_free(s, c);
	return true;
}

/* Read and drop what waits; true at end of stream. Negative: an error. */
static int drain_input(struct server *s, struct conn *c)
{
	struct tern_iovec v[2];
	unsigned n;
	for (;;) {
		long len = tern_recv_zc(s->n.st, c->fd, v, &n);
		if (len == -EAGAIN)
			return 0;
		if (len < 0)
			return (int)len;
		if (len == 0)
			return 1;
		c->bytes_in += (uint64_t)len;
		c->last_active = s->now;
		tern_recv_consume(s->n.st, c->fd, (size_t)len);
	}
}

static void step_discard(struct server *s, struct conn *c)
{
	int rc = drain_input(s, c);
	if (rc < 0)
		conn_error(s, c, -rc);
	else if (rc > 0)
		conn_close(s, c, "closed by the peer");
}

/* Received bytes go back out: from the receive buffer into the send buffer, as much as
 * there is room for; the rest waits in the receive buffer (and its window). */
static void step_echo(struct server *s, struct conn *c)
{
	if (c->draining) {
		step_discard(s, c);
		return;
	}
	for (;;) {
		struct tern_iovec v[2];
		unsigned n;
		long len = tern_recv_zc(s->n.st, c->fd, v, &n);
		if (len == -EAGAIN)
			return;
		if (len < 0) {
			conn_error(s, c, (int)-len);
			return;
		}
		if (len == 0) {
			conn_close(s, c, "closed by the peer");
			return;
		}
		size_t moved = 0;
		for (unsigned i = 0; i < n; i++) {
			long k = tern_send(s->n.st, c->fd, v[i].base, v[i].len, 0);
			if (k < 0 && k != -EAGAIN) {
				conn_error(s, c, (int)-k);
				return;
			}
			if (k > 0)
				moved += (size_t)k;
			if (k < (long)v[i].len)
				break;
		}
		if (!moved)
			return; /* the send buffer is full: wait for room */
		tern_recv_consume(s->n.st, c->fd, moved);
		c->bytes_in += moved;
		c->bytes_out += moved;
		c->last_active = s->now;
	}
}

/* RFC 864's pattern: lines of 72 printable characters, each starting one character later
 * than the line before, ended by CRLF. It repeats every 95 lines; two periods in a row let
 * any stretch up to a period long be copied from one place. */
#define CHARGEN_PERIOD (95 * 74)
static uint8_t chargen_buf[2 * CHARGEN_PERIOD];

static void chargen_init(void)
{
	for (size_t off = 0; off < sizeof(chargen_buf); off++) {
		size_t line = (off / 74) % 95, col = off % 74;
		chargen_buf[off] = col == 72 ? '\r' : col == 73 ? '\n' : (uint8_t)(' ' + (line + col) % 95);
	}
}

static void chargen(uint8_t *dst, uint64_t off, size_t n)
{
	while (n) {
		size_t start = (size_t)(off % CHARGEN_PERIOD);
		size_t k = n < CHARGEN_PERIOD ? n : CHARGEN_PERIOD;
		memcpy(dst, chargen_buf + start, k);
		dst += k;
		off += k;
		n -= k;
	}
}

static void step_source(struct server *s, struct conn *c)
{
	int rc = drain_input(s, c);
	if (rc < 0) {
		conn_error(s, c, -rc);
		return;
	}
	while (c->left && !c->draining) {
		struct tern_wiovec w[2];
		unsigned n;
		long room = tern_send_zc(s->n.st, c->fd, w, &n);
		if (room == -EAGAIN)
			return;
		if (room < 0) {
			conn_error(s, c, (int)-room);
			return;
		}
		size_t k = 0;
		for (unsigned i = 0; i < n && c->left > k; i++) {
			size_t m = w[i].len < c->left - k ? w[i].len : (size_t)(c->left - k);
			chargen(w[i].base, c->pos + k, m);
			k += m;
		}
		if (tern_send_commit(s->n.st, c->fd, k, 0) < 0) {
			conn_error(s, c, 0);
			return;
		}
		c->pos += k;
		c->left -= k;
		c->bytes_out += k;
		c->last_active = s->now;
	}
	conn_close(s, c, c->draining ? "closed: shutting down" : "sent everything");
}

/* ---- http ---- */

static void http_start(struct server *s, struct conn *c, int status, const struct http_req *rq)
{
	c->status = status;
	c->in_response = true;
	c->hdr_off = 0;
	c->body_off = 0;
	c->requests++;
	s->status_count[status / 100 < 6 ? status / 100 : 5]++;
	if (status != 200) {
		/* An error says so in a small body of its own and ends a connection whose
		 * request could not be read (the next one's start is unknown). */
		char body[128];
		int bl = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
		c->keep_alive = c->keep_alive && status != 400 && status != 431 && status != 414 &&
				status != 505;
		c->file.fd = -1;
		c->file.body = strdup(body);
		c->file.size = c->file.body ? (uint64_t)bl : 0;
		c->hdr_len = http_head(c->hdr, sizeof(c->hdr), status, c->file.size,
				       "text/plain; charset=utf-8", c->keep_alive);
	} else {
		c->hdr_len = http_head(c->hdr, sizeof(c->hdr), 200, c->file.size, c->file.type,
				       c->keep_alive);
	}
	if (c->head_only) {
		http_file_close(&c->file);
		c->file.size = 0;
	}
	vlog(s, c, "%s %s: %d", rq ? (rq->head ? "HEAD" : "GET") : "-", rq ? rq->path : "-", status);
}

/* Send what the response still owes; true when it is all in the send buffer. */
static int http_pump(struct server *s, struct conn *c)
{
	while (c->hdr_off < c->hdr_len) {
		long k = tern_send(s->n.st, c->fd, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off,
				   0);
		if (k == -EAGAIN)
			return 0;
		if (k < 0)
			return (int)k;
		c->hdr_off += (size_t)k;
		c->bytes_out += (uint64_t)k;
	}
	while (c->body_off < c->file.size) {
		struct tern_wiovec w[2];
		unsigned n;
		long room = tern_send_zc(s->n.st, c->fd, w, &n);
		if (room == -EAGAIN)
			return 0;
		if (room < 0)
			return (int)room;
		uint64_t want = c->file.size - c->body_off;
		size_t got = 0;
		if (c->file.body) {
			for (unsigned i = 0; i < n && got < want; i++) {
				size_t m = w[i].len < want - got ? w[i].len : (size_t)(want - got);
				memcpy(w[i].base, c->file.body + c->body_off + got, m);
				got += m;
			}
		} else {
			struct iovec v[2];
			unsigned vn = 0;
			uint64_t left = want;
			for (unsigned i = 0; i < n && left; i++, vn++) {
				v[i].iov_base = w[i].base;
				v[i].iov_len = w[i].len < left ? w[i].len : (size_t)left;
				left -= v[i].iov_len;
			}
			ssize_t r = preadv(c->file.fd, v, (int)vn, (off_t)c->body_off);
			if (r <= 0)
				return -EIO; /* the file shrank or failed: the length is a lie now */
			got = (size_t)r;
		}
		int rc = tern_send_commit(s->n.st, c->fd, got, 0);
		if (rc < 0)
			return rc;
		c->body_off += got;
		c->bytes_out += got;
	}
	return 1;
}

static void step_http(struct server *s, struct conn *c)
{
	for (;;) {
		if (c->in_response) {
			int rc = http_pump(s, c);
			if (rc < 0) {
				if (rc == -EIO) {
					vlog(s, c, "file read failed");
					tern_abort(s->n.st, c->fd);
					conn_free(s, c);
				} else {
					conn_error(s, c, -rc);
				}
				return;
			}
			if (!rc)
				return;
			c->last_active = s->now;
			c->in_response = false;
			http_file_close(&c->file);
			if (!c->keep_alive || c->draining) {
				conn_close(s, c, "response done, closed");
				return;
			}
			continue;
		}
		/* A request: from what is buffered, else read more. */
		struct http_req rq;
		int used = http_parse_request(c->req, c->req_len, &rq);
		if (used == 0 && !c->peer_eof && c->req_len < HTTP_MAX_HEAD) {
			long k = tern_recv(s->n.st, c->fd, c->req + c->req_len,
					   HTTP_MAX_HEAD - c->req_len, 0);
			if (k == -EAGAIN) {
				if (c->draining && !c->req_len)
					conn_close(s, c, "closed: shutting down");
				return;
			}
			if (k < 0) {
				conn_error(s, c, (int)-k);
				return;
			}
			if (k == 0)
				c->peer_eof = true;
			c->req_len += (size_t)k;
			c->bytes_in += (uint64_t)k;
			c->last_active = s->now;
			continue;
		}
		if (used == 0) {
			if (c->req_len && !c->peer_eof) {
				used = -431;
			} else {
				conn_close(s, c, c->req_len ? "closed mid-request" : "closed by the peer");
				return;
			}
		}
		c->head_only = used > 0 && rq.head;
		c->keep_alive = used > 0 && rq.keep_alive && !c->peer_eof;
		if (used < 0) {
			c->req_len = 0;
			http_start(s, c, -used, NULL);
			continue;
		}
		memmove(c->req, c->req + used, c->req_len - (size_t)used);
		c->req_len -= (size_t)used;
		int rc = http_open(s->root, rq.path, &c->file);
		http_start(s, c, rc < 0 ? -rc : 200, &rq);
	}
}

static void conn_step(struct server *s, struct conn *c)
{
	switch (c->svc) {
	case SVC_ECHO: step_echo(s, c); break;
	case SVC_DISCARD: step_discard(s, c); break;
	case SVC_SOURCE: step_source(s, c); break;
	case SVC_HTTP: step_http(s, c); break;
	}
}

static void accept_all(struct server *s, int li)
{
	while (s->live < s->max_conns) {
		struct tern_sockaddr peer;
		int fd = tern_accept(s->n.st, s->ls[li].fd, &peer);
		if (fd < 0)
			return;
		if ((size_t)fd >= s->capconns) {
			size_t cap = s->capconns ? s->capconns : 64;
			while (cap <= (size_t)fd)
				cap *= 2;
			struct conn **r = realloc(s->conns, cap * sizeof(*r));
			if (!r) {
				tern_abort(s->n.st, fd);
				return;
			}
			memset(r + s->capconns, 0, (cap - s->capconns) * sizeof(*r));
			s->conns = r;
			s->capconns = cap;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (c && s->ls[li].svc == SVC_HTTP && !(c->req = malloc(HTTP_MAX_HEAD))) {
			free(c);
			c = NULL;
		}
		if (!c) {
			tern_abort(s->n.st, fd);
			return;
		}
		c->fd = fd;
		c->svc = s->ls[li].svc;
		c->id = ++s->next_id;
		c->t0 = c->last_active = s->now;
		c->left = s->source_bytes;
		c->file.fd = -1;
		fmt_ep(c->peer, sizeof(c->peer), peer.addr, peer.port);
		s->conns[fd] = c;
		s->live++;
		s->accepted++;
		vlog(s, c, "connected to port %u", s->ls[li].port);
		conn_step(s, c);
	}
}

/* ---- listing ---- */

struct listing {
	FILE *f;
	unsigned by_state[16];
	size_t n;
};

static void list_one(void *user, const struct tern_conn_info *ci)
{
	struct listing *l = user;
	char a[24], b[24];
	fmt_ep(a, sizeof(a), ci->laddr, ci->lport);
	fmt_ep(b, sizeof(b), ci->raddr, ci->rport);
	fprintf(l->f, "  %-12s %-21s %-21s sendq %-7u recvq %-7u rtt %.3f ms\n",
		tern_state_name(ci->state), a, b, ci->snd_queue, ci->rcv_queue,
		(double)ci->srtt_us / 1000.0);
	if ((unsigned)ci->state < 16)
		l->by_state[ci->state]++;
	l->n++;
}

static void print_listing(struct server *s, FILE *f)
{
	struct listing l;
	memset(&l, 0, sizeof(l));
	l.f = f;
	fprintf(f, "connections:\n");
	tern_stack_foreach(s->n.st, list_one, &l);
	fprintf(f, "by state:");
	for (int i = 0; i < 16; i++)
		if (l.by_state[i])
			fprintf(f, " %s %u", tern_state_name(i), l.by_state[i]);
	fprintf(f, "%s\ncounters:\n", l.n ? "" : " none");
	net_print_counters(f, &s->n, false);
	fflush(f);
}

static void count_active(void *user, const struct tern_conn_info *ci)
{
	size_t *n = user;
	if (ci->state != TERN_STATE_LISTEN && ci->state != TERN_STATE_TIME_WAIT)
		(*n)++;
}

/* ---- the command ---- */

static int parse_services(struct server *s, const char *arg)
{
	char name[32];
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
	if (n >= sizeof(name))
		return -1;
	memcpy(name, arg, n);
	name[n] = 0;
	for (int i = 0; i < SVC_COUNT; i++) {
		if (strcmp(name, svc_info[i].name))
			continue;
		uint16_t port = svc_info[i].port;
		if (colon && parse_port(colon + 1, &port) < 0)
			return -1;
		if (s->nls >= MAX_LISTENERS)
			return -1;
		s->ls[s->nls].svc = i;
		s->ls[s->nls].port = port;
		s->nls++;
		return 0;
	}
	return -1;
}

int cmd_serve(int argc, char **argv)
{
	struct net_opts o;
	net_opts_init(&o);
	struct server s;
	memset(&s, 0, sizeof(s));
	s.o = &o;
	s.source_bytes = 1u << 20;
	s.max_conns = 1024;
	s.idle_s = 60;
	unsigned stats_s = 0, grace_ms = 3000;
	const char *dir = ".";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc = net_opt("tern serve", argc, argv, &i, &o);
		if (rc < 0)
			return 2;
		if (rc)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		bool takes = !strcmp(a, "--dir") || !strcmp(a, "--bytes") || !strcmp(a, "--stats") ||
			     !strcmp(a, "--max-conns") || !strcmp(a, "--idle") || !strcmp(a, "--grace");
		if (takes) {
			if (i + 1 >= argc) {
				fprintf(stderr, "tern serve: %s needs a value\n", a);
				return 2;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--dir")) {
				dir = v;
				continue;
			}
			char *end;
			unsigned long long n = strtoull(v, &end, 10);
			bool bad = end == v || *end || *v == '-';
			if (!strcmp(a, "--bytes") && !bad)
				s.source_bytes = n;
			else if (!strcmp(a, "--stats") && !bad && n <= 86400)
				stats_s = (unsigned)n;
			else if (!strcmp(a, "--max-conns") && !bad && n >= 1 && n <= 1000000)
				s.max_conns = (unsigned)n;
			else if (!strcmp(a, "--idle") && !bad && n <= 86400)
				s.idle_s = (unsigned)n;
			else if (!strcmp(a, "--grace") && !bad && n <= 600000)
				grace_ms = (unsigned)n;
			else {
				fprintf(stderr, "tern serve: bad value for %s: '%s'\n", a, v);
				return 2;
			}
		} else if (a[0] == '-') {
			fprintf(stderr, "tern serve: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		} else if (parse_services(&s, a) < 0) {
			fprintf(stderr, "tern serve: '%s' is not SERVICE[:PORT] (echo, discard, source, "
					"http; at most %d)\n", a, MAX_LISTENERS);
			return 2;
		}
	}
	if (!s.nls) {
		fprintf(stderr, "tern serve: name at least one service\n");
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < s.nls; i++)
		for (int j = 0; j < i; j++)
			if (s.ls[i].port == s.ls[j].port) {
				fprintf(stderr, "tern serve: two services on port %u\n", s.ls[i].port);
				return 2;
			}
	struct stat dst;
	if (!realpath(dir, s.root) || stat(s.root, &dst) < 0) {
		fprintf(stderr, "tern serve: --dir %s: %s\n", dir, strerror(errno));
		return 2;
	}
	if (!S_ISDIR(dst.st_mode)) {
		fprintf(stderr, "tern serve: --dir %s: %s\n", dir, strerror(ENOTDIR));
		return 2;
	}
	chargen_init();
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	int opened = net_open("tern serve", &o, &s.n);
	if (opened < 0)
		return opened == -2 ? 2 : 1; /* usage errors exit 2, as the others do */
	int status = 0;
	for (int i = 0; i < s.nls; i++) {
		int fd = tern_socket(s.n.st, TERN_SOCK_STREAM);
		int one = 1;
		tern_setsockopt(s.n.st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
		struct tern_sockaddr any = {0, s.ls[i].port};
		int rc = fd < 0 ? fd : tern_bind(s.n.st, fd, &any);
		if (rc >= 0)
			rc = tern_listen(s.n.st, fd, 128);
		if (rc < 0) {
			fprintf(stderr, "tern serve: port %u: %s\n", s.ls[i].port, strerror(-rc));
			net_close(&s.n);
			return 1;
		}
		s.ls[i].fd = fd;
		if (o.verbose)
			fprintf(stderr, "tern serve: %s on port %u\n", svc_info[s.ls[i].svc].name,
				s.ls[i].port);
	}
	uint64_t now = s.now = tern_tun_clock();
	uint64_t next_stats = stats_s ? now + (uint64_t)stats_s * 1000000u : UINT64_MAX;
	/* With --idle 0 there is nothing to sweep: no wake-up for it at all. */
	uint64_t next_sweep = s.idle_s ? now + 1000000u : UINT64_MAX, deadline = UINT64_MAX;
	bool draining = false;
	struct tern_event ev[256];
	for (;;) {
		int n;
		while ((n = tern_stack_events(s.n.st, ev, 256)) > 0) {
			for (int i = 0; i < n; i++) {
				int li = -1;
				for (int k = 0; k < s.nls; k++)
					if (s.ls[k].fd == ev[i].fd && !draining)
						li = k;
				if (li >= 0) {
					accept_all(&s, li);
				} else if (ev[i].fd >= 0 && (size_t)ev[i].fd < s.capconns &&
					   s.conns[ev[i].fd]) {
					struct conn *c = s.conns[ev[i].fd];
					if (!conn_error(&s, c, 0))
						conn_step(&s, c);
				}
			}
		}
		now = s.now;
		if (got_usr1) {
			got_usr1 = 0;
			print_listing(&s, stdout);
		}
		if (now >= next_stats) {
			print_listing(&s, stdout);
			next_stats = now + (uint64_t)stats_s * 1000000u;
		}
		if (got_stop && !draining) {
			/* Stop listening, let every connection finish what it is doing, close. */
			draining = true;
			deadline = now + (uint64_t)grace_ms * 1000u;
			if (o.verbose)
				fprintf(stderr, "tern serve: shutting down\n");
			for (int k = 0; k < s.nls; k++)
				tern_close(s.n.st, s.ls[k].fd);
			for (size_t fd = 0; fd < s.capconns; fd++) {
				struct conn *c = s.conns[fd];
				if (!c)
					continue;
				c->draining = true;
				/* echo and discard: a FIN now; the connection ends when the
				 * peer's FIN comes back (what arrives meanwhile is read and
				 * dropped, so nothing unread turns the close into a RST). */
				if (c->svc == SVC_ECHO || c->svc == SVC_DISCARD)
					tern_shutdown(s.n.st, c->fd, TERN_SHUT_WR);
				if (c->svc == SVC_HTTP && !c->in_response)
					conn_close(&s, c, "closed: shutting down");
				else if (c->svc == SVC_SOURCE)
					conn_close(&s, c, "closed: shutting down");
				else
					conn_step(&s, c);
			}
		}
		if (draining) {
			size_t active = 0;
			tern_stack_foreach(s.n.st, count_active, &active);
			if (!active)
				break;
			if (now >= deadline || got_stop > 1) {
				if (o.verbose)
					fprintf(stderr, "tern serve: %zu connections left: reset\n",
						active);
				for (size_t fd = 0; fd < s.capconns; fd++)
					if (s.conns[fd]) {
						tern_abort(s.n.st, (int)fd);
						s.aborted++;
						conn_free(&s, s.conns[fd]);
					}
				break;
			}
		}
		if (now >= next_sweep) {
			for (size_t fd = 0; fd < s.capconns; fd++) {
				struct conn *c = s.conns[fd];
				if (c && !c->in_response && now - c->last_active > s.idle_s * 1000000ull)
					conn_close(&s, c, "idle, closed");
			}
			next_sweep = now + 1000000u;
		}
		/* Accepting may have stopped at max_conns: look again once there is room. */
		if (!draining && s.live < s.max_conns)
			for (int k = 0; k < s.nls; k++)
				accept_all(&s, k);
		uint64_t wake = next_stats < next_sweep ? next_stats : next_sweep;
		if (deadline < wake)
			wake = deadline;
		int timeout = wake > now ? (int)((wake - now + 999) / 1000) : 0;
		int rc = tern_tun_wait(s.n.tun, NULL, 0, timeout);
		s.now = tern_tun_clock();
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "tern serve: waiting: %s\n", strerror(-rc));
			status = 1;
			break;
		}
	}
	/* Let the last FINs and ACKs out. */
	uint64_t end = tern_tun_clock() + (uint64_t)o.linger_ms * 1000u;
	for (now = tern_tun_clock(); now < end; now = tern_tun_clock())
		tern_tun_wait(s.n.tun, NULL, 0, (int)((end - now + 999) / 1000));
	printf("tern serve: %llu connections, %llu bytes in, %llu bytes out", 
	       (unsigned long long)s.accepted, (unsigned long long)s.bytes_in,
	       (unsigned long long)s.bytes_out);
	if (s.status_count[2] + s.status_count[4] + s.status_count[5])
		printf("; http responses 2xx %llu, 4xx %llu, 5xx %llu",
		       (unsigned long long)s.status_count[2], (unsigned long long)s.status_count[4],
		       (unsigned long long)s.status_count[5]);
	printf("; %llu reset, %llu timed out", (unsigned long long)s.resets,
	       (unsigned long long)s.timeouts);
	if (s.aborted)
		printf(", %llu reset by tern after the grace period", (unsigned long long)s.aborted);
	printf("\n");
	print_listing(&s, stdout);
	for (size_t fd = 0; fd < s.capconns; fd++)
		if (s.conns[fd])
			conn_free(&s, s.conns[fd]);
	free(s.conns);
	net_close(&s.n);
	return status;
}
