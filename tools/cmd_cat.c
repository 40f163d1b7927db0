/*
 * `tern cat`: netcat over tern on a TUN device. Standard input goes out on the connection and
 * what arrives goes to standard output, each byte copied once between the file descriptor and
 * the socket's buffer (tern_send_zc / tern_recv_zc). End of input shuts down the sending side
 * (a half-close, RFC 9293 §3.6); the command exits when both directions are finished.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "commands.h"
#include "netopts.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern cat [options] --addr A.B.C.D/NN HOST PORT    connect\n"
		"       tern cat [options] --addr A.B.C.D/NN -l PORT      listen, serve one\n"
		"\n"
		"netcat over tern on a TUN device: standard input goes to the peer, what the peer\n"
		"sends goes to standard output. End of input shuts down the sending side; the\n"
		"command exits when both directions are done (status 0), or with status 1 and a\n"
		"message when the connection is refused, reset or times out.\n"
		"\n"
		"options:\n"
		"  -l PORT              listen on PORT and serve the first connection\n"
		"  -u                   UDP: each read of standard input is one datagram\n"
		"  -w SECS              UDP: exit SECS after input ends and nothing arrives\n"
		"                       (default 1); TCP: give up connecting after SECS\n");
	net_opts_usage(f);
}

static const char *errtext(int err)
{
	switch (err) {
	case ECONNREFUSED: return "connection refused";
	case ECONNRESET: return "connection reset by peer";
	case ETIMEDOUT: return "connection timed out";
	case EHOSTUNREACH: return "no route to host";
	case ENETUNREACH: return "network unreachable";
	case EPIPE: return "broken pipe";
	default: return strerror(err);
	}
}

struct cat {
	struct net n;
	struct net_opts *o;
	int fd;
	bool in_eof, peer_eof, out_blocked, shut;
	uint64_t bytes_in, bytes_out;
	char peer[24];
};

static int sock_error(struct cat *c)
{
	int err = 0;
	size_t len = sizeof(err);
	tern_getsockopt(c->n.st, c->fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &len);
	return err;
}

static int fail(struct cat *c, const char *what, int err)
{
	fprintf(stderr, "tern cat: %s %s: %s\n", what, c->peer, errtext(err));
	return 1;
}

/* Standard input into the send buffer, as much as there is room for. */
static int pump_in(struct cat *c)
{
	struct tern_wiovec w[2];
	unsigned n;
	long room = tern_send_zc(c->n.st, c->fd, w, &n);
	if (room == -EAGAIN || room == 0)
		return 0;
	if (room < 0)
		return (int)room;
	struct iovec v[2];
	for (unsigned i = 0; i < n; i++) {
		v[i].iov_base = w[i].base;
		v[i].iov_len = w[i].len;
	}
	ssize_t r = readv(STDIN_FILENO, v, (int)n);
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (r == 0) {
		c->in_eof = true;
		c->shut = true;
		return tern_shutdown(c->n.st, c->fd, TERN_SHUT_WR);
	}
	c->bytes_out += (uint64_t)r;
	return tern_send_commit(c->n.st, c->fd, (size_t)r, 0);
}

/* The receive buffer out to standard output, as much as it takes. */
static int pump_out(struct cat *c)
{
	c->out_blocked = false;
	while (!c->peer_eof) {
		struct tern_iovec r[2];
		unsigned n;
		long len = tern_recv_zc(c->n.st, c->fd, r, &n);
		if (len == -EAGAIN)
			return 0;
		if (len < 0)
			return (int)len;
		if (len == 0) {
			c->peer_eof = true;
			return 0;
		}
		struct iovec v[2];
		for (unsigned i = 0; i < n; i++) {
			v[i].iov_base = (void *)(uintptr_t)r[i].base;
			v[i].iov_len = r[i].len;
		}
		ssize_t w = writev(STDOUT_FILENO, v, (int)n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				c->out_blocked = true;
				return 0;
			}
			return -errno;
		}
		c->bytes_in += (uint64_t)w;
		tern_recv_consume(c->n.st, c->fd, (size_t)w);
		if (w < len) {
			c->out_blocked = true;
			return 0;
		}
	}
	return 0;
}

static int run_stream(struct cat *c)
{
	for (;;) {
		int rc = pump_out(c);
		if (rc == -EPIPE || rc == -EBADF || rc == -EIO) {
			fprintf(stderr, "tern cat: standard output: %s\n", strerror(-rc));
			tern_abort(c->n.st, c->fd);
			return 1;
		}
		if (rc < 0)
			return fail(c, "connection with", -rc);
		int ev = tern_sock_events(c->n.st, c->fd);
		if (ev & TERN_EV_ERR)
			return fail(c, "connection with", sock_error(c));
		int state = tern_sock_state(c->n.st, c->fd);
		if (c->in_eof && c->peer_eof &&
		    (state == TERN_STATE_TIME_WAIT || state == TERN_STATE_CLOSED))
			return 0;
		struct pollfd p[2];
		unsigned np = 0;
		if (!c->in_eof && (ev & TERN_EV_OUT))
			p[np++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		if (c->out_blocked)
			p[np++] = (struct pollfd){.fd = STDOUT_FILENO, .events = POLLOUT};
		rc = tern_tun_wait(c->n.tun, p, np, -1);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "tern cat: waiting: %s\n", strerror(-rc));
			return 1;
		}
		for (unsigned i = 0; i < np; i++) {
			if (p[i].fd == STDIN_FILENO && p[i].revents) {
				rc = pump_in(c);
				if (rc < 0 && rc != -EPIPE)
					return fail(c, "connection with", -rc);
				if (rc < 0) {
					fprintf(stderr, "tern cat: standard input: %s\n", strerror(-rc));
					return 1;
				}
			}
			if (p[i].fd == STDOUT_FILENO && (p[i].revents & (POLLERR | POLLHUP))) {
				fprintf(stderr, "tern cat: standard output closed\n");
				tern_abort(c->n.st, c->fd);
				return 1;
			}
		}
	}
}

/* Wait for fd to be connected; 0, or the error. */
static int wait_connected(struct cat *c, int timeout_s)
{
	uint64_t deadline = timeout_s ? tern_tun_clock() + (uint64_t)timeout_s * 1000000u : 0;
	for (;;) {
		int ev = tern_sock_events(c->n.st, c->fd);
		if (ev & TERN_EV_ERR)
			return sock_error(c);
		if (ev & TERN_EV_OUT)
			return 0;
		uint64_t now = tern_tun_clock();
		if (deadline && now >= deadline)
			return ETIMEDOUT;
		int rc = tern_tun_wait(c->n.tun, NULL, 0,
				       deadline ? (int)((deadline - now + 999) / 1000) : -1);
		if (rc < 0 && rc != -EINTR)
			return -rc;
	}
}

static int wait_accept(struct cat *c, int lfd)
{
	for (;;) {
		struct tern_sockaddr peer;
		int fd = tern_accept(c->n.st, lfd, &peer);
		if (fd >= 0) {
			fmt_ep(c->peer, sizeof(c->peer), peer.addr, peer.port);
			if (c->o->verbose)
				fprintf(stderr, "tern cat: connection from %s\n", c->peer);
			return fd;
		}
		if (fd != -EAGAIN)
			return fd;
		int rc = tern_tun_wait(c->n.tun, NULL, 0, -1);
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
}

static void linger(struct cat *c)
{
	uint64_t end = tern_tun_clock() + (uint64_t)c->o->linger_ms * 1000u;
	for (uint64_t now = tern_tun_clock(); now < end; now = tern_tun_clock())
		tern_tun_wait(c->n.tun, NULL, 0, (int)((end - now + 999) / 1000));
}

/* Write all of buf to standard output, waiting (with the stack running) when it is full. */
static int out_all(struct net *n, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(STDOUT_FILENO, buf, len);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (w > 0) {
			buf += w;
			len -= (size_t)w;
			continue;
		}
		struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
		tern_tun_wait(n->tun, &p, 1, -1);
	}
	return 0;
}

/*
 * UDP: each read of standard input is one datagram (at most what one packet carries), each
 * datagram received is written out as it is. Connecting sends to HOST PORT and takes only its
 * answers (an ICMP port unreachable ends the command: connection refused); listening takes
 * any sender and answers the last one, reading input only once someone has spoken. After
 * input ends (or, listening, after the first datagram), wait_s seconds without a datagram
 * end the command.
 */
static int cmd_udp_cat(struct net *n, struct net_opts *o, bool listen, uint32_t host,
		       uint16_t port, int wait_s)
{
	char who[24];
	int fd = tern_socket(n->st, TERN_SOCK_DGRAM);
	struct tern_sockaddr peer = {host, port};
	bool have_peer = !listen, in_eof = false;
	int rc;
	if (listen) {
		struct tern_sockaddr any = {0, port};
		rc = tern_bind(n->st, fd, &any);
		snprintf(who, sizeof(who), "port %u", port);
	} else {
		rc = tern_connect(n->st, fd, &peer);
		fmt_ep(who, sizeof(who), host, port);
	}
	if (rc < 0) {
		fprintf(stderr, "tern cat: %s: %s\n", who, strerror(-rc));
		tern_close(n->st, fd);
		return 1;
	}
	size_t max = o->set.mtu - 28;
	static uint8_t buf[65536];
	uint64_t last = tern_tun_clock();
	int status = 0;
	for (;;) {
		struct tern_sockaddr from;
		long r;
		while ((r = tern_recvfrom(n->st, fd, buf, sizeof(buf), 0, &from)) >= 0) {
			if (listen) {
				char src[24];
				if (!have_peer && o->verbose)
					fprintf(stderr, "tern cat: datagram from %s\n",
						fmt_ep(src, sizeof(src), from.addr, from.port));
				peer = from;
				have_peer = true;
			}
			last = tern_tun_clock();
			rc = out_all(n, buf, (size_t)r);
			if (rc < 0) {
				fprintf(stderr, "tern cat: standard output: %s\n", strerror(-rc));
				status = 1;
				goto out;
			}
		}
		if (r != -EAGAIN) {
			fprintf(stderr, "tern cat: %s: %s\n", who, errtext((int)-r));
			status = 1;
			goto out;
		}
		uint64_t now = tern_tun_clock();
		if (in_eof && have_peer && now - last >= (uint64_t)wait_s * 1000000u)
			break;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		bool want_in = !in_eof && have_peer;
		int timeout = in_eof && have_peer
				      ? (int)(((uint64_t)wait_s * 1000000u - (now - last) + 999) / 1000)
				      : -1;
		rc = tern_tun_wait(n->tun, &p, want_in ? 1 : 0, timeout);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "tern cat: waiting: %s\n", strerror(-rc));
			status = 1;
			break;
		}
		if (want_in && p.revents) {
			ssize_t k = read(STDIN_FILENO, buf, max);
			if (k < 0 && errno != EINTR && errno != EAGAIN) {
				fprintf(stderr, "tern cat: standard input: %s\n", strerror(errno));
				status = 1;
				break;
			}
			if (k == 0) {
				in_eof = true;
				last = tern_tun_clock();
			} else if (k > 0) {
				long w = listen ? tern_sendto(n->st, fd, buf, (size_t)k, 0, &peer)
						: tern_send(n->st, fd, buf, (size_t)k, 0);
				if (w < 0) {
					fprintf(stderr, "tern cat: %s: %s\n", who, errtext((int)-w));
					status = 1;
					break;
				}
			}
		}
	}
out:
	tern_close(n->st, fd);
	return status;
}

int cmd_cat(int argc, char **argv)
{
	struct net_opts o;
	net_opts_init(&o);
	bool listen = false, udp = false;
	uint16_t port = 0;
	int wait_s = -1;
	const char *pos[2];
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc = net_opt("tern cat", argc, argv, &i, &o);
		if (rc < 0)
			return 2;
		if (rc)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-u")) {
			udp = true;
		} else if (!strcmp(a, "-l") || !strcmp(a, "-w")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "tern cat: %s needs a value\n", a);
				return 2;
			}
			const char *v = argv[++i];
			if (a[1] == 'l') {
				if (parse_port(v, &port) < 0) {
					fprintf(stderr, "tern cat: bad port '%s'\n", v);
					return 2;
				}
				listen = true;
			} else {
				char *end;
				long s = strtol(v, &end, 10);
				if (end == v || *end || s < 0 || s > 86400) {
					fprintf(stderr, "tern cat: -w takes seconds (0..86400)\n");
					return 2;
				}
				wait_s = (int)s;
			}
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "tern cat: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "tern cat: too many arguments\n");
			return 2;
		}
	}
	uint32_t host = 0;
	if (listen ? npos != 0 : npos != 2) {
		fprintf(stderr, listen ? "tern cat: -l PORT takes no HOST PORT\n"
				       : "tern cat: give HOST PORT, or -l PORT\n");
		usage(stderr);
		return 2;
	}
	if (!listen && (parse_ip4(pos[0], &host) < 0 || parse_port(pos[1], &port) < 0)) {
		fprintf(stderr, "tern cat: HOST is A.B.C.D and PORT 1..65535\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct cat c;
	memset(&c, 0, sizeof(c));
	c.o = &o;
	int opened = net_open("tern cat", &o, &c.n);
	if (opened < 0)
		return opened == -2 ? 2 : 1; /* usage errors exit 2, as the others do */
	/* Standard output may be a pipe shared with nothing else: writes to it must not block
	 * the stack, whose timers run in this thread. */
	struct stat sb;
	int out_flags = fcntl(STDOUT_FILENO, F_GETFL);
	bool restore = false;
	if (out_flags >= 0 && fstat(STDOUT_FILENO, &sb) == 0 &&
	    (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)) && !(out_flags & O_NONBLOCK))
		restore = fcntl(STDOUT_FILENO, F_SETFL, out_flags | O_NONBLOCK) == 0;
	int status;
	if (udp) {
		status = cmd_udp_cat(&c.n, &o, listen, host, port, wait_s < 0 ? 1 : wait_s);
		goto out;
	}
	if (listen) {
		int lfd = tern_socket(c.n.st, TERN_SOCK_STREAM);
		int one = 1;
		tern_setsockopt(c.n.st, lfd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
		struct tern_sockaddr any = {0, port};
		int rc = tern_bind(c.n.st, lfd, &any);
		if (rc >= 0)
			rc = tern_listen(c.n.st, lfd, 1);
		if (rc >= 0)
			rc = c.fd = wait_accept(&c, lfd);
		tern_close(c.n.st, lfd);
		if (rc < 0) {
			fprintf(stderr, "tern cat: listening on port %u: %s\n", port, strerror(-rc));
			status = 1;
			goto out;
		}
	} else {
		fmt_ep(c.peer, sizeof(c.peer), host, port);
		c.fd = tern_socket(c.n.st, TERN_SOCK_STREAM);
		struct tern_sockaddr to = {host, port};
		int rc = tern_connect(c.n.st, c.fd, &to);
		int err = rc == -EINPROGRESS || rc >= 0 ? wait_connected(&c, wait_s < 0 ? 0 : wait_s)
							: -rc;
		if (err) {
			status = fail(&c, "connect to", err);
			goto out;
		}
		if (o.verbose)
			fprintf(stderr, "tern cat: connected to %s\n", c.peer);
	}
	status = run_stream(&c);
	if (o.verbose)
		fprintf(stderr, "tern cat: %llu bytes sent, %llu received\n",
			(unsigned long long)c.bytes_out, (unsigned long long)c.bytes_in);
	if (!status)
		linger(&c);
	tern_close(c.n.st, c.fd);
	if (o.verbose > 1) {
		fprintf(stderr, "tern cat: counters:\n");
		net_print_counters(stderr, &c.n, false);
	}
out:
	if (restore)
		fcntl(STDOUT_FILENO, F_SETFL, out_flags);
	net_close(&c.n);
	return status;
}
