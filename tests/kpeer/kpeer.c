/*
 * kpeer: the Linux kernel's TCP and UDP as the peer in tern's interop tests
 * (tests/test_interop.c). Plain BSD sockets and poll, nothing but libc, so that whatever
 * goes wrong on the wire is tern's doing or the kernel's, never a helper library's.
 *
 *   kpeer [options] connect HOST PORT     connect, then transfer
 *   kpeer [options] listen PORT           listen on 0.0.0.0:PORT, accept one, transfer
 *   kpeer [options] udp HOST PORT         send one datagram, wait for one back
 *   kpeer [options] udp-listen PORT       wait for one datagram, answer its sender
 *
 * A TCP transfer sends --send FILE and writes what arrives to --recv FILE at the same
 * time (both directions at once, one poll loop). When everything is sent the sending side
 * is shut down (a half-close) and reception goes on until the peer's end of stream.
 *
 * Exit status: 0 done, 1 other error, 2 usage, 3 ECONNREFUSED, 4 ECONNRESET (or EPIPE:
 * the peer reset the connection), 5 the --timeout passed. One line on stderr says why.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EX_OK, EX_ERR, EX_USAGE, EX_REFUSED, EX_RESET, EX_TIMEOUT };

struct opts {
	const char *send_path, *recv_path, *ready_path;
	bool after_eof; /* send only once the peer has finished sending */
	bool no_shut;   /* no shutdown after sending: close (FIN) after the peer's end */
	bool abort;     /* after sending (and its acknowledgement) close with SO_LINGER 0 */
	int timeout_ms;
};

static uint64_t deadline_ms;
static uint64_t sent, received;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What is left of the --timeout, for poll. */
static int remaining_ms(void)
{
	uint64_t n = now_ms();
	return n >= deadline_ms ? 0 : (int)(deadline_ms - n);
}

/* Every failure ends here: a line on stderr and the exit status the errno maps to. */
static int fail(const char *what, int err)
{
	fprintf(stderr, "kpeer: %s: %s (sent %llu, received %llu)\n", what, strerror(err),
		(unsigned long long)sent, (unsigned long long)received);
	switch (err) {
	case ECONNREFUSED: return EX_REFUSED;
	case ECONNRESET: case EPIPE: return EX_RESET;
	case ETIMEDOUT: return EX_TIMEOUT;
	default: return EX_ERR;
	}
}

static int timed_out(const char *what)
{
	fprintf(stderr, "kpeer: %s: timed out (sent %llu, received %llu)\n", what,
		(unsigned long long)sent, (unsigned long long)received);
	return EX_TIMEOUT;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: kpeer [options] connect HOST PORT | listen PORT | udp HOST PORT |"
		" udp-listen PORT\n"
		"  --send FILE    send FILE (UDP: as one datagram)\n"
		"  --recv FILE    write what arrives to FILE (default: count and drop)\n"
		"  --after-eof    send only after the peer's end of stream\n"
		"  --no-shut      do not shut down after sending; close after the peer's end\n"
		"  --abort        once everything sent is acknowledged, reset (SO_LINGER 0)\n"
		"  --ready FILE   create FILE once listening\n"
		"  --timeout SECS give up after SECS (default 60; exit status 5)\n");
	return EX_USAGE;
}

static int parse_ep(const char *host, const char *port, struct sockaddr_in *sa)
{
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)p);
	if (end == port || *end || p > 65535)
		return -1;
	if (!host)
		return 0;
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* The readiness signal for a listener: the file appears (created whole, by rename). */
static int mark_ready(const char *path)
{
	if (!path)
		return 0;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || close(fd) < 0 || rename(tmp, path) < 0)
		return fail(path, errno);
	return 0;
}

static bool write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

/* ---- TCP ---- */

static int tcp_connect(const struct sockaddr_in *to, int *out)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("socket", errno);
	if (connect(s, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS)
		return fail("connect", errno);
	struct pollfd p = {s, POLLOUT, 0};
	int rc;
	do
		rc = poll(&p, 1, remaining_ms());
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return timed_out("connect");
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return fail("connect", err);
	*out = s;
	return 0;
}

static int tcp_accept(const struct sockaddr_in *at, const char *ready, int *out)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (l < 0)
		return fail("socket", errno);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (const struct sockaddr *)at, sizeof(*at)) < 0)
		return fail("bind", errno);
	if (listen(l, 1) < 0)
		return fail("listen", errno);
	int rc = mark_ready(ready);
	if (rc)
		return rc;
	/* The listener's readiness, bounded by the timeout: a peer that never comes fails. */
	struct pollfd p = {l, POLLIN, 0};
	do
		rc = poll(&p, 1, remaining_ms());
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return timed_out("accept");
	int s = accept(l, NULL, NULL);
	if (s < 0 || fcntl(s, F_SETFL, O_NONBLOCK) < 0 || fcntl(s, F_SETFD, FD_CLOEXEC) < 0)
		return fail("accept", errno);
	close(l); /* one connection only: later SYNs are refused */
	*out = s;
	return 0;
}

/* Wait until the peer has acknowledged everything sent (the send queue is empty), so that
 * an abort resets an established connection whose data all arrived. */
static int wait_acked(int s)
{
	for (;;) {
		int unacked = 0;
		if (ioctl(s, SIOCOUTQ, &unacked) < 0)
			return fail("SIOCOUTQ", errno);
		if (!unacked)
			return 0;
		if (!remaining_ms())
			return timed_out("waiting for the acknowledgement");
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int tcp_transfer(int s, const struct opts *o)
{
	int in = -1, out = -1;
	if (o->send_path && (in = open(o->send_path, O_RDONLY | O_CLOEXEC)) < 0)
		return fail(o->send_path, errno);
	if (o->recv_path &&
	    (out = open(o->recv_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return fail(o->recv_path, errno);
	static char sbuf[1 << 16], rbuf[1 << 16];
	size_t soff = 0, slen = 0;
	bool send_done = in < 0, shut = false, peer_eof = false;
	for (;;) {
		bool may_send = !send_done && (!o->after_eof || peer_eof);
		if (may_send && soff == slen) {
			ssize_t r = read(in, sbuf, sizeof(sbuf));
			if (r < 0)
				return fail(o->send_path, errno);
			soff = 0;
			slen = (size_t)r;
			if (r == 0)
				send_done = true;
		}
		if (send_done && o->abort && (!o->after_eof || peer_eof)) {
			int rc = wait_acked(s);
			if (rc)
				return rc;
			struct linger lg = {1, 0};
			if (setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
				return fail("SO_LINGER", errno);
			close(s);
			fprintf(stderr, "kpeer: aborted (sent %llu, received %llu)\n",
				(unsigned long long)sent, (unsigned long long)received);
			return EX_OK;
		}
		if (send_done && !shut && !o->no_shut && (!o->after_eof || peer_eof)) {
			if (shutdown(s, SHUT_WR) < 0)
				return fail("shutdown", errno);
			shut = true;
		}
		if (send_done && peer_eof && (shut || o->no_shut))
			break;
		may_send = !send_done && (!o->after_eof || peer_eof);
		struct pollfd p = {s, (short)((peer_eof ? 0 : POLLIN) | (may_send ? POLLOUT : 0)), 0};
		int rc = poll(&p, 1, remaining_ms());
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return fail("poll", errno);
		if (rc == 0)
			return timed_out("transfer");
		if (p.revents & POLLERR) {
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				return fail("connection", err);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(s, rbuf, sizeof(rbuf), 0);
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				return fail("recv", errno);
			if (r == 0)
				peer_eof = true;
			if (r > 0) {
				received += (uint64_t)r;
				if (out >= 0 && !write_all(out, rbuf, (size_t)r))
					return fail(o->recv_path, errno);
			}
		}
		if (may_send && (p.revents & POLLOUT) && soff < slen) {
			ssize_t w = send(s, sbuf + soff, slen - soff, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return fail("send", errno);
			if (w > 0) {
				soff += (size_t)w;
				sent += (uint64_t)w;
			}
		}
	}
	if (out >= 0 && close(out) < 0)
		return fail(o->recv_path, errno);
	if (in >= 0)
		close(in);
	if (close(s) < 0)
		return fail("close", errno);
	fprintf(stderr, "kpeer: done (sent %llu, received %llu)\n", (unsigned long long)sent,
		(unsigned long long)received);
	return EX_OK;
}

/* ---- UDP ---- */

static int read_file(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(path, errno);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0)
			return fail(path, errno);
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			fprintf(stderr, "kpeer: %s: more than one datagram holds\n", path);
			return EX_ERR;
		}
	}
	close(fd);
	*len = n;
	return 0;
}

/* One datagram into buf, waiting at most for the timeout; the sender in *from. */
static int udp_receive(int s, char *buf, size_t cap, size_t *len, struct sockaddr_in *from)
{
	struct pollfd p = {s, POLLIN, 0};
	int rc;
	do
		rc = poll(&p, 1, remaining_ms());
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return timed_out("waiting for a datagram");
	socklen_t fl = sizeof(*from);
	ssize_t r = recvfrom(s, buf, cap, 0, (struct sockaddr *)from, &fl);
	if (r < 0)
		return fail("recvfrom", errno);
	*len = (size_t)r;
	received += (uint64_t)r;
	return 0;
}

static int save(const char *path, const char *buf, size_t len)
{
	if (!path)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !write_all(fd, buf, len) || close(fd) < 0)
		return fail(path, errno);
	return 0;
}

static int udp_run(bool listen_mode, const struct sockaddr_in *ep, const struct opts *o)
{
	static char dgram[65536], reply[65536];
	size_t dlen = 0, rlen = 0;
	int rc;
	if (o->send_path && (rc = read_file(o->send_path, dgram, sizeof(dgram), &dlen)))
		return rc;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("socket", errno);
	struct sockaddr_in from;
	if (listen_mode) {
		if (bind(s, (const struct sockaddr *)ep, sizeof(*ep)) < 0)
			return fail("bind", errno);
		if ((rc = mark_ready(o->ready_path)))
			return rc;
		if ((rc = udp_receive(s, reply, sizeof(reply), &rlen, &from)) ||
		    (rc = save(o->recv_path, reply, rlen)))
			return rc;
		if (o->send_path) {
			if (sendto(s, dgram, dlen, 0, (struct sockaddr *)&from, sizeof(from)) < 0)
				return fail("sendto", errno);
			sent += dlen;
		}
	} else {
		/* Connected, so that an ICMP port unreachable comes back as ECONNREFUSED. */
		if (connect(s, (const struct sockaddr *)ep, sizeof(*ep)) < 0)
			return fail("connect", errno);
		if (send(s, dgram, dlen, 0) < 0)
			return fail("send", errno);
		sent += dlen;
		if (o->recv_path && ((rc = udp_receive(s, reply, sizeof(reply), &rlen, &from)) ||
				     (rc = save(o->recv_path, reply, rlen))))
			return rc;
	}
	close(s);
	fprintf(stderr, "kpeer: done (sent %llu, received %llu)\n", (unsigned long long)sent,
		(unsigned long long)received);
	return EX_OK;
}

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 60000;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		bool takes = !strcmp(a, "--send") || !strcmp(a, "--recv") || !strcmp(a, "--ready") ||
			     !strcmp(a, "--timeout");
		if (takes && i + 1 >= argc)
			return usage();
		if (!strcmp(a, "--send"))
			o.send_path = argv[++i];
		else if (!strcmp(a, "--recv"))
			o.recv_path = argv[++i];
		else if (!strcmp(a, "--ready"))
			o.ready_path = argv[++i];
		else if (!strcmp(a, "--timeout")) {
			char *end;
			long t = strtol(argv[++i], &end, 10);
			if (*end || t < 1 || t > 86400)
				return usage();
			o.timeout_ms = (int)t * 1000;
		} else if (!strcmp(a, "--after-eof"))
			o.after_eof = true;
		else if (!strcmp(a, "--no-shut"))
			o.no_shut = true;
		else if (!strcmp(a, "--abort"))
			o.abort = true;
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	const char *mode = argv[i++];
	int nargs = argc - i;
	bool two = !strcmp(mode, "connect") || !strcmp(mode, "udp");
	bool one = !strcmp(mode, "listen") || !strcmp(mode, "udp-listen");
	struct sockaddr_in ep;
	if (!(two && nargs == 2) && !(one && nargs == 1))
		return usage();
	if (parse_ep(two ? argv[i] : NULL, argv[i + nargs - 1], &ep) < 0) {
		fprintf(stderr, "kpeer: bad address or port\n");
		return EX_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	deadline_ms = now_ms() + (uint64_t)o.timeout_ms;
	if (!strcmp(mode, "udp") || !strcmp(mode, "udp-listen"))
		return udp_run(one, &ep, &o);
	int s = -1, rc = one ? tcp_accept(&ep, o.ready_path, &s) : tcp_connect(&ep, &s);
	return rc ? rc : tcp_transfer(s, &o);
}
