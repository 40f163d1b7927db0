/* The scenarios of SCENARIOS.md that the engine can show, and the little application that
 * runs on each simulated host (accept, read everything, close on end of stream). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "scenario.h"
#include "../src/wire.h"

#define SEC(x) ((uint64_t)((x) * 1e6 + 0.5))

/* ---- the event log ---- */

static void log_push(struct scn_log *log, const struct scn_event *e)
{
	if (log->n == log->cap) {
		size_t n = log->cap ? log->cap * 2 : 256;
		struct scn_event *ev = realloc(log->ev, n * sizeof(*ev));
		if (!ev)
			return;
		log->ev = ev;
		log->cap = n;
	}
	log->ev[log->n] = *e;
	log->ev[log->n].ev.text = log->ev[log->n].text;
	log->n++;
}

void scn_log_free(struct scn_log *log)
{
	free(log->ev);
	log->ev = NULL;
	log->n = log->cap = 0;
}

static void on_trace(void *user, const struct tern_sim_ev *ev)
{
	struct scn *s = user;
	struct scn_event e;
	memset(&e, 0, sizeof(e));
	e.ev = *ev;
	if (ev->text)
		snprintf(e.text, sizeof(e.text), "%s", ev->text);
	e.ev.text = e.text;
	if (s->log)
		log_push(s->log, &e);
	if (s->sink)
		s->sink(s->sink_user, &e);
}

/* ---- the application ---- */

static struct scn_sock *sock_of(struct scn *s, int host, int fd)
{
	if (host < 0 || host > 1 || fd < 0 || fd >= SCN_MAX_SOCKS)
		return NULL;
	return &s->socks[host][fd];
}

static void sock_reset(struct scn_sock *k)
{
	free(k->rx);
	memset(k, 0, sizeof(*k));
	k->close_on_eof_ms = -1;
	k->child_close_on_eof_ms = -1;
}

static void app_error(struct scn *s, int host, int err)
{
	struct scn_app *a = &s->app[host];
	if (a->nerrors < 8)
		a->errors[a->nerrors++] = err;
}

uint8_t scn_pattern(int dir, uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull + (uint64_t)(dir + 1) * 0xbf58476d1ce4e5b9ull;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 29;
	return (uint8_t)(x >> (8 * (i & 7)));
}

/* Bulk sending writes straight into the send buffer (tern_send_zc): one copy per byte. */
static void bulk_flush(struct scn *s, int host, int fd)
{
	struct scn_sock *k = sock_of(s, host, fd);
	struct tern_stack *st = tern_sim_stack(s->sim, host);
	while (k->bulk_sent < k->bulk_total) {
		struct tern_wiovec iov[2];
		unsigned n;
		long room = tern_send_zc(st, fd, iov, &n);
		if (room <= 0) {
			if (room < 0 && room != -EAGAIN) {
				k->err = (int)-room;
				app_error(s, host, k->err);
				tern_sim_note(s->sim, host, "fd %d: send failed: %s", fd, tern_errno_name((int)room));
				k->bulk_total = k->bulk_sent;
			}
			return;
		}
		size_t done = 0;
		for (unsigned i = 0; i < n; i++) {
			uint64_t left = k->bulk_total - k->bulk_sent - done;
			size_t want = iov[i].len < left ? iov[i].len : (size_t)left;
			uint8_t *dst = iov[i].base;
			if (k->bulk_in) {
				size_t got = fread(dst, 1, want, k->bulk_in);
				if (got < want) {
					s->bulk_error = EIO;
					k->bulk_total = k->bulk_sent + done + got;
				}
				done += got;
				if (got < want)
					break;
			} else {
				for (size_t j = 0; j < want; j++)
					dst[j] = scn_pattern(k->bulk_dir, k->bulk_sent + done + j);
				done += want;
			}
		}
		tern_send_commit(st, fd, done, 0);
		k->bulk_sent += done;
		if (!done)
			break;
	}
	if (k->bulk_sent == k->bulk_total) {
		tern_sim_note(s->sim, host, "fd %d: all %llu bytes queued; shutdown(SHUT_WR)", fd,
			      (unsigned long long)k->bulk_total);
		tern_shutdown(st, fd, TERN_SHUT_WR);
		k->bulk_total = UINT64_MAX; /* done: nothing more to flush */
		if (k->eof)
			scn_close(s, host, fd); /* both directions done */
	}
}

static void bulk_start(struct scn *s, int host, int fd, int dir, uint64_t total, FILE *in,
		       FILE *out)
{
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k)
		return;
	k->bulk = true;
	k->bulk_dir = dir;
	k->bulk_total = total;
	k->bulk_in = in;
	k->bulk_out = out;
}

static void app_flush(struct scn *s, int host, int fd)
{
	struct scn_sock *k = sock_of(s, host, fd);
	struct tern_stack *st = tern_sim_stack(s->sim, host);
	if (k && k->bulk && k->bulk_total != UINT64_MAX) {
		bulk_flush(s, host, fd);
		return;
	}
	while (k && k->tx_len) {
		long n = tern_send(st, fd, k->tx, k->tx_len, 0);
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			k->err = (int)-n;
			app_error(s, host, k->err);
			tern_sim_note(s->sim, host, "send() on fd %d failed: %s", fd, tern_errno_name((int)n));
			k->tx_len = 0;
			return;
		}
		k->tx += n;
		k->tx_len -= (size_t)n;
	}
}

static void do_delayed_close(struct tern_sim *sim, void *arg)
{
	(void)sim;
	struct scn_delayed_close *d = arg;
	scn_close(d->s, d->host, d->fd);
}

/* Bulk receiving reads in place (tern_recv_zc): what arrives is checked or written out. */
static long bulk_read(struct scn *s, struct scn_sock *k, struct tern_stack *st, int fd)
{
	struct tern_iovec iov[2];
	unsigned n;
	long avail = tern_recv_zc(st, fd, iov, &n);
	if (avail <= 0)
		return avail;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = iov[i].base;
		if (k->bulk_out) {
			if (fwrite(p, 1, iov[i].len, k->bulk_out) != iov[i].len)
				s->bulk_error = EIO;
		} else {
			for (size_t j = 0; j < iov[i].len; j++)
				if (p[j] != scn_pattern(!k->bulk_dir, k->bulk_rcvd + j)) {
					k->bulk_bad++;
					s->bulk_bad++;
				}
		}
		k->bulk_rcvd += iov[i].len;
	}
	tern_recv_consume(st, fd, (size_t)avail);
	return avail;
}

static void app_read(struct scn *s, int host, int fd)
{
	struct scn_sock *k = sock_of(s, host, fd);
	struct tern_stack *st = tern_sim_stack(s->sim, host);
	uint8_t buf[4096];
	size_t got = 0;
	if (k->paused)
		return;
	for (;;) {
		long n = k->bulk ? bulk_read(s, k, st, fd) : tern_recv(st, fd, buf, sizeof(buf), 0);
		if (n > 0 && k->bulk) {
			s->app[host].rx_bytes += (uint64_t)n;
			continue;
		}
		if (n > 0) {
			if (k->rx_len + (size_t)n > k->rx_cap) {
				size_t cap = k->rx_cap ? k->rx_cap * 2 : 4096;
				while (cap < k->rx_len + (size_t)n)
					cap *= 2;
				uint8_t *rx = realloc(k->rx, cap);
				if (!rx)
					break;
				k->rx = rx;
				k->rx_cap = cap;
			}
			memcpy(k->rx + k->rx_len, buf, (size_t)n);
			k->rx_len += (size_t)n;
			got += (size_t)n;
			continue;
		}
		if (got) {
			s->app[host].rx_bytes += got;
			tern_sim_note(s->sim, host, "fd %d: received %zu bytes", fd, got);
		}
		got = 0;
		if (n == 0 && !k->eof) {
			k->eof = true;
			s->app[host].eofs++;
			if (k->bulk)
				tern_sim_note(s->sim, host, "fd %d: end of stream after %llu bytes%s", fd,
					      (unsigned long long)k->bulk_rcvd,
					      k->bulk_out ? " (written out)"
					      : k->bulk_bad ? ", SOME DIFFER from what was sent"
					      : ", every byte as sent");
			else
				tern_sim_note(s->sim, host, "fd %d: end of stream", fd);
			if (k->bulk && k->bulk_total == UINT64_MAX) {
				scn_close(s, host, fd); /* both directions done */
				return;
			}
			if (k->close_on_eof_ms == 0) {
				scn_close(s, host, fd);
			} else if (k->close_on_eof_ms > 0) {
				struct scn_delayed_close *d = &s->closes[s->nclose++ % 64];
				*d = (struct scn_delayed_close){s, host, fd};
				tern_sim_at(s->sim, tern_sim_now(s->sim) + (uint64_t)k->close_on_eof_ms * 1000,
					    do_delayed_close, d);
			}
		} else if (n < 0 && n != -EAGAIN) {
			k->err = (int)-n;
			app_error(s, host, k->err);
			tern_sim_note(s->sim, host, "fd %d: recv() failed: %s", fd, tern_errno_name((int)n));
		}
		break;
	}
}

static void app_event(struct tern_sim *sim, int host, const struct tern_event *ev, void *user)
{
	struct scn *s = user;
	struct scn_sock *k = sock_of(s, host, ev->fd);
	struct tern_stack *st = tern_sim_stack(sim, host);
	if (!k || !k->used)
		return;
	if (k->listener) {
		for (;;) {
			struct tern_sockaddr peer;
			int fd = tern_accept(st, ev->fd, &peer);
			if (fd < 0)
				break;
			struct scn_sock *c = sock_of(s, host, fd);
			if (!c) {
				tern_close(st, fd);
				continue;
			}
			sock_reset(c);
			c->used = true;
			c->close_on_eof_ms = k->child_close_on_eof_ms;
			if (s->bulk_accept)
				bulk_start(s, host, fd, 1, s->bulk_b_bytes, NULL, s->out_fp);
			s->app[host].accepted++;
			tern_sim_note(sim, host, "accepted fd %d from %u.%u.%u.%u:%u", fd,
				      peer.addr >> 24, (peer.addr >> 16) & 255, (peer.addr >> 8) & 255,
				      peer.addr & 255, peer.port);
			app_read(s, host, fd);
			if (c->bulk)
				app_flush(s, host, fd);
		}
		return;
	}
	if (k->connecting && (ev->events & (TERN_EV_OUT | TERN_EV_ERR | TERN_EV_HUP))) {
		int state = tern_sock_state(st, ev->fd);
		if (state == TERN_STATE_SYN_SENT || state == TERN_STATE_SYN_RCVD)
			return;
		k->connecting = false;
		if (state == TERN_STATE_CLOSED) {
			int err = 0;
			size_t len = sizeof(err);
			tern_getsockopt(st, ev->fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &err, &len);
			k->err = err;
			app_error(s, host, err);
			tern_sim_note(sim, host, "fd %d: connect() failed: %s", ev->fd, tern_errno_name(err));
			return;
		}
		s->app[host].connected++;
		tern_sim_note(sim, host, "fd %d: connected", ev->fd);
		if (k->bulk) {
			app_flush(s, host, ev->fd);
			if (!k->used)
				return;
		}
	}
	if (ev->events & (TERN_EV_IN | TERN_EV_ERR | TERN_EV_HUP))
		app_read(s, host, ev->fd);
	if (k->used && (ev->events & TERN_EV_OUT))
		app_flush(s, host, ev->fd);
}

/* ---- script steps ---- */

double scn_now(const struct scn *s) { return (double)tern_sim_now(s->sim) / 1e6; }

void scn_run_to(struct scn *s, double t_s) { tern_sim_run_until(s->sim, SEC(t_s)); }

void scn_run_idle(struct scn *s, double limit_s)
{
	uint64_t lim = SEC(limit_s);
	if (s->limit_us && s->limit_us < lim)
		lim = s->limit_us;
	tern_sim_run_idle(s->sim, lim);
}

static struct tern_stack *stack_of(struct scn *s, int host) { return tern_sim_stack(s->sim, host); }

int scn_listen(struct scn *s, int host, uint16_t port, int child_close_on_eof_ms)
{
	struct tern_stack *st = stack_of(s, host);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k)
		return -1;
	int one = 1;
	tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
	struct tern_sockaddr a = {0, port};
	if (tern_bind(st, fd, &a) < 0 || tern_listen(st, fd, 128) < 0)
		return -1;
	sock_reset(k);
	k->used = k->listener = true;
	k->child_close_on_eof_ms = child_close_on_eof_ms;
	return fd;
}

int scn_connect(struct scn *s, int host, int peer, uint16_t port, uint16_t lport)
{
	struct tern_stack *st = stack_of(s, host);
	int fd = tern_socket(st, TERN_SOCK_STREAM);
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k)
		return -1;
	sock_reset(k);
	k->used = k->connecting = true;
	if (lport) {
		int one = 1;
		tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one));
		struct tern_sockaddr me = {0, lport};
		int rc = tern_bind(st, fd, &me);
		if (rc < 0)
			tern_sim_note(s->sim, host, "bind() to port %u failed: %s", lport, tern_errno_name(rc));
	}
	struct tern_sockaddr to = {tern_sim_host_addr(s->sim, peer), port};
	int rc = tern_connect(st, fd, &to);
	if (rc != -EINPROGRESS && rc < 0) {
		k->connecting = false;
		k->err = -rc;
		app_error(s, host, k->err);
		tern_sim_note(s->sim, host, "connect() failed at once: %s", tern_errno_name(rc));
	}
	return fd;
}

void scn_send(struct scn *s, int host, int fd, const void *data, size_t len)
{
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k)
		return;
	k->tx = data;
	k->tx_len = len;
	tern_sim_note(s->sim, host, "fd %d: send %zu bytes", fd, len);
	app_flush(s, host, fd);
}

void scn_close(struct scn *s, int host, int fd)
{
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k || !k->used)
		return;
	tern_sim_note(s->sim, host, "fd %d: close()", fd);
	tern_close(stack_of(s, host), fd);
	sock_reset(k);
}

void scn_shutdown(struct scn *s, int host, int fd, int how)
{
	tern_sim_note(s->sim, host, "fd %d: shutdown(%s)", fd,
		      how == TERN_SHUT_WR ? "SHUT_WR" : how == TERN_SHUT_RD ? "SHUT_RD" : "SHUT_RDWR");
	tern_shutdown(stack_of(s, host), fd, how);
}

void scn_abort(struct scn *s, int host, int fd)
{
	struct scn_sock *k = sock_of(s, host, fd);
	if (!k || !k->used)
		return;
	struct tern_stack *st = stack_of(s, host);
	struct tern_linger lg = {1, 0};
	tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_LINGER, &lg, sizeof(lg));
	tern_sim_note(s->sim, host, "fd %d: close() with SO_LINGER {on, 0 s}", fd);
	tern_close(st, fd);
	sock_reset(k);
}

int scn_accepted_fd(const struct scn *s, int host)
{
	for (int fd = 0; fd < SCN_MAX_SOCKS; fd++) {
		const struct scn_sock *k = &s->socks[host][fd];
		if (k->used && !k->listener)
			return fd;
	}
	return -1;
}

/* ---- the scenarios ---- */

static const char hello[] = "hello";

/* Handshake, then the scripted close; the server app waits half a second after end of
 * stream before closing, so the close takes four segments: FIN, ACK, FIN, ACK. (No data
 * comes before the client's FIN, so ato is still 0 and its ACK leaves at once, as Linux's
 * does; after data it would wait delack_min, 40 ms, still well within the half second.) */
static int setup_pair(struct scn *s, int server_close_ms)
{
	scn_listen(s, s->b, 80, server_close_ms);
	return scn_connect(s, s->a, s->b, 80, 0);
}

static void sc_handshake(struct scn *s)
{
	setup_pair(s, -1);
	scn_run_to(s, 1.0);
}

static void sc_close(struct scn *s)
{
	int c = setup_pair(s, 500);
	scn_run_to(s, 1.0);
	scn_close(s, s->a, c);
	scn_run_idle(s, 300);
}

static void sc_close_three_way(struct scn *s)
{
	int c = setup_pair(s, 0);
	scn_run_to(s, 1.0);
	scn_close(s, s->a, c);
	scn_run_idle(s, 300);
}

static void sc_half_close(struct scn *s)
{
	static const char part1[] = "first half of the answer, ";
	static const char part2[] = "second half of the answer";
	int c = setup_pair(s, -1);
	s->socks[0][c].close_on_eof_ms = 0;
	scn_run_to(s, 1.0);
	scn_shutdown(s, s->a, c, TERN_SHUT_WR);
	scn_run_to(s, 1.2);
	int sfd = scn_accepted_fd(s, s->b);
	scn_send(s, s->b, sfd, part1, sizeof(part1) - 1);
	scn_run_to(s, 1.4);
	scn_send(s, s->b, sfd, part2, sizeof(part2) - 1);
	scn_run_to(s, 1.6);
	scn_close(s, s->b, sfd);
	scn_run_idle(s, 300);
}

/* Both connect at once (fixed ports, so that the SYNs cross): four segments carry SYN, each
 * side's SYN until the other's SYN-ACK acknowledges it; that SYN-ACK establishes its
 * receiver, which answers the repeated SYN with an ACK (RFC 5961 §4, as Linux does). */
static void sc_simultaneous_open(struct scn *s)
{
	scn_connect(s, s->a, s->b, 6000, 5000);
	scn_connect(s, s->b, s->a, 5000, 6000);
	scn_run_to(s, 1.0);
}

static void sc_simultaneous_close(struct scn *s)
{
	int c = setup_pair(s, -1);
	scn_run_to(s, 1.0);
	int sfd = scn_accepted_fd(s, s->b);
	scn_close(s, s->a, c);
	scn_close(s, s->b, sfd);
	scn_run_idle(s, 300);
}

static void sc_syn_lost(struct scn *s)
{
	setup_pair(s, -1);
	scn_run_idle(s, 600);
}

static void sc_synack_lost(struct scn *s)
{
	setup_pair(s, -1);
	scn_run_idle(s, 600);
}

static void sc_ack_lost(struct scn *s)
{
	setup_pair(s, -1);
	scn_run_to(s, 3.0);
}

static void sc_ack_lost_data(struct scn *s)
{
	int c = setup_pair(s, -1);
	scn_run_to(s, 0.5);
	scn_send(s, s->a, c, hello, sizeof(hello) - 1);
	scn_run_to(s, 3.0);
}

/* A SYN of an earlier incarnation (sequence number far below the new ISN) reaches the server
 * first; the client's own SYN is held back 40 ms on the wire. */
static void sc_old_duplicate_syn(struct scn *s)
{
	scn_listen(s, s->b, 80, -1);
	int c = scn_connect(s, s->a, s->b, 80, 40000);
	struct tern_tcp_info info;
	tern_sock_info(tern_sim_stack(s->sim, s->a), c, &info);
	uint8_t pkt[60];
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = SCN_ADDR_A;
	h.dst = SCN_ADDR_B;
	h.sport = 40000;
	h.dport = 80;
	h.seq = info.iss - 1000000;
	h.flags = TERN_TH_SYN;
	h.win = 64240;
	h.opts.has = TERN_OPT_MSS;
	h.opts.mss = 1460;
	size_t hl = tern_tcp_build(pkt + 20, &h);
	struct tern_iovec iov = {pkt + 20, hl};
	uint16_t csum = tern_csum_iov(tern_csum_pseudo(h.src, h.dst, 6, (uint16_t)hl), &iov, 1);
	memcpy(pkt + 20 + 16, &csum, 2);
	tern_ip4_build(pkt, h.src, h.dst, 6, 64, 0, 1, (uint16_t)hl);
	tern_sim_note(s->sim, s->a, "an old SYN for the same ports (seq = the new ISN - 1000000) is still in the network");
	tern_sim_inject(s->sim, s->a, pkt, 20 + hl, 10000);
	scn_run_to(s, 1.0);
}

static void sc_fin_close(struct scn *s)
{
	int c = setup_pair(s, 500);
	scn_run_to(s, 1.0);
	scn_close(s, s->a, c);
	scn_run_idle(s, 600);
}

/* The server closes first (as an HTTP/1.0 server does), so the TIME_WAIT is the server's. A
 * copy of the client's FIN arrives 20 s late: it is ACKed again and 2*MSL starts over. (The
 * client, long closed, answers that ACK with RST, which would end the TIME_WAIT as Linux
 * allows, RFC 1337; the wire loses that RST.) At 70 s, past the first 2*MSL but inside the
 * restarted one, the client reconnects from the same port and its SYN meets the record. */
static void sc_time_wait(struct scn *s)
{
	scn_listen(s, s->b, 80, -1);
	int c = scn_connect(s, s->a, s->b, 80, 40000);
	s->socks[0][c].close_on_eof_ms = 500;
	scn_run_to(s, 1.0);
	scn_close(s, s->b, scn_accepted_fd(s, s->b));
	scn_run_to(s, 70.0);
	scn_connect(s, s->a, s->b, 80, 40000);
	scn_run_to(s, 71.0);
	int sfd = scn_accepted_fd(s, s->b);
	if (sfd >= 0)
		scn_send(s, s->b, sfd, hello, sizeof(hello) - 1);
	scn_run_idle(s, 300);
}

static void sc_rst_closed_port(struct scn *s)
{
	scn_connect(s, s->a, s->b, 81, 0);
	scn_run_to(s, 1.0);
}

static void sc_rst_abort(struct scn *s)
{
	int c = setup_pair(s, -1);
	scn_run_to(s, 0.5);
	scn_send(s, s->a, c, hello, sizeof(hello) - 1);
	scn_run_to(s, 1.0);
	scn_abort(s, s->a, c);
	scn_run_idle(s, 300);
}

static void sc_peer_reboot(struct scn *s)
{
	int c = setup_pair(s, -1);
	scn_run_to(s, 1.0);
	tern_sim_note(s->sim, s->b, "crash and reboot: every connection is forgotten");
	for (int fd = 0; fd < SCN_MAX_SOCKS; fd++)
		sock_reset(&s->socks[1][fd]);
	tern_sim_reboot(s->sim, s->b);
	scn_listen(s, s->b, 80, -1);
	scn_run_to(s, 2.0);
	scn_send(s, s->a, c, hello, sizeof(hello) - 1);
	scn_run_idle(s, 300);
}

/* The peer's socket reads nothing until t_s. */
struct resume_reads {
	struct scn *s;
	int host;
};
static struct resume_reads resume_arg;

static void do_resume_reads(struct tern_sim *sim, void *arg)
{
	struct resume_reads *r = arg;
	for (int fd = 0; fd < SCN_MAX_SOCKS; fd++) {
		struct scn_sock *k = &r->s->socks[r->host][fd];
		if (k->used && k->paused) {
			k->paused = false;
			tern_sim_note(sim, r->host, "fd %d: the application reads again", fd);
			app_read(r->s, r->host, fd);
		}
	}
}

/* b's application stops reading; its 4 KiB receive buffer fills and the window closes. a
 * probes the zero window with the persist timer, each probe twice as late as the one
 * before, until b reads again at 10 s and the window opens. */
static void sc_zero_window(struct scn *s)
{
	static uint8_t data[20000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = scn_pattern(0, i);
	int l = scn_listen(s, s->b, 80, 0);
	int small = 4096;
	tern_setsockopt(tern_sim_stack(s->sim, s->b), l, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &small,
			sizeof(small));
	int c = scn_connect(s, s->a, s->b, 80, 0);
	scn_run_to(s, 0.1);
	int sfd = scn_accepted_fd(s, s->b);
	s->socks[1][sfd].paused = true;
	tern_sim_note(s->sim, s->b, "fd %d: the application stops reading (4 KiB receive buffer)", sfd);
	scn_send(s, s->a, c, data, sizeof(data));
	scn_run_to(s, 10.0);
	resume_arg = (struct resume_reads){s, s->b};
	do_resume_reads(s->sim, &resume_arg);
	scn_run_to(s, 12.0);
	scn_close(s, s->a, c);
	scn_run_idle(s, 300);
}

static void cut_the_cable(struct scn *s)
{
	struct tern_impair lost = {1.0, 0, 0, 0, 10000, 0};
	tern_sim_set_impair(s->sim, -1, -1, &lost);
	tern_sim_note(s->sim, s->b, "vanishes: from now on the wire between a and b loses everything");
}

static int keepalive_client(struct scn *s)
{
	int c = setup_pair(s, -1);
	int one = 1;
	tern_setsockopt(tern_sim_stack(s->sim, s->a), c, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, &one,
			sizeof(one));
	tern_sim_note(s->sim, s->a, "fd %d: SO_KEEPALIVE on (idle 7200 s, every 75 s, 9 probes)", c);
	return c;
}

/* The connection goes idle and the server vanishes: after keepalive_time a probes, every
 * keepalive_intvl, and after keepalive_probes unanswered probes gives up with ETIMEDOUT. */
static void sc_keepalive(struct scn *s)
{
	keepalive_client(s);
	scn_run_to(s, 1.0);
	cut_the_cable(s);
	scn_run_idle(s, 20000);
}

/* The same idle connection with a live server: each probe is answered and the connection
 * stays, probed again keepalive_time after the answer. */
static void sc_keepalive_live(struct scn *s)
{
	keepalive_client(s);
	scn_run_to(s, 15000.0);
}

/* The server vanishes while a has data to send: retransmissions back off (RTO doubling up to
 * rto_max) until retries2's time is spent (924.6 s with the defaults): ETIMEDOUT. */
static void sc_peer_vanished(struct scn *s)
{
	int c = setup_pair(s, -1);
	scn_run_to(s, 1.0);
	cut_the_cable(s);
	scn_send(s, s->a, c, hello, sizeof(hello) - 1);
	scn_run_idle(s, 5000);
}

/* A server application that never closes: each client sends a request and closes; the
 * server's side of every connection stays in CLOSE_WAIT for good, while the clients' orphaned
 * FIN_WAIT_2 ends after fin_timeout. The listing at the end counts them by state. */
static void sc_close_wait_leak(struct scn *s)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	scn_listen(s, s->b, 80, -1);
	int c[5];
	for (int i = 0; i < 5; i++) {
		c[i] = scn_connect(s, s->a, s->b, 80, 0);
		scn_run_to(s, i + 0.2);
		scn_send(s, s->a, c[i], req, sizeof(req) - 1);
		scn_run_to(s, i + 0.5);
		scn_close(s, s->a, c[i]);
		scn_run_to(s, i + 1.0);
	}
	scn_run_to(s, 120.0);
}

/* A bulk transfer both ways at once: a sends --bytes (or the --in file), b sends --bytes
 * back; each side shuts down its sending side when done and closes once the other's data
 * is in. Every byte is checked against what was sent (or b writes it to --out). */
static void sc_transfer(struct scn *s)
{
	const struct scn_opts *o = s->opts;
	uint64_t n = o->bytes ? o->bytes : 1000000;
	uint64_t a_bytes = n;
	if (s->in_fp) {
		a_bytes = s->in_size;
		if (!o->bytes)
			n = a_bytes;
	}
	s->bulk_accept = true;
	s->bulk_b_bytes = n;
	scn_listen(s, s->b, 80, -1);
	int c = scn_connect(s, s->a, s->b, 80, 0);
	bulk_start(s, s->a, c, 0, a_bytes, s->in_fp, NULL);
	tern_sim_note(s->sim, s->a, "transfer: a sends %llu bytes%s, b sends %llu back",
		      (unsigned long long)a_bytes, s->in_fp ? " of the input file" : "",
		      (unsigned long long)n);
	scn_run_idle(s, 1e6);
}

static const struct scenario scenarios[] = {
	{"handshake", "three-way handshake: SYN, SYN-ACK, ACK", sc_handshake, "", false},
	{"close", "four-way close: FIN, ACK, FIN, ACK, then TIME_WAIT for 2*MSL", sc_close, "", false},
	{"close-three-way", "the passive side closes at once: its ACK and FIN leave together",
	 sc_close_three_way, "", false},
	{"half-close", "the client shuts down its sending side; the server keeps sending, then closes",
	 sc_half_close, "", false},
	{"simultaneous-open", "both ends send SYN at once: SYN, SYN, SYN-ACK, SYN-ACK, then each ACKs the other's SYN-ACK; SYN_SENT -> SYN_RCVD -> ESTABLISHED",
	 sc_simultaneous_open, "", false},
	{"simultaneous-close", "both ends send FIN at once: FIN_WAIT_1 -> CLOSING -> TIME_WAIT",
	 sc_simultaneous_close, "", false},
	{"syn-lost", "every SYN is lost: retransmissions at 1, 3, 7, 15, 31 s, ETIMEDOUT at 63 s",
	 sc_syn_lost, "", false},
	{"synack-lost", "every SYN-ACK is lost: both ends retransmit on their own timers",
	 sc_synack_lost, "syn_retries=1 synack_retries=2", false},
	{"ack-lost", "the third handshake segment is lost: the SYN-ACK is retransmitted and re-ACKed",
	 sc_ack_lost, "", false},
	{"ack-lost-data", "the third segment is lost, but the client's data carries the ACK",
	 sc_ack_lost_data, "", false},
	{"old-duplicate-syn", "a stale SYN arrives first: RST answers its SYN-ACK, the new connection completes",
	 sc_old_duplicate_syn, "", false},
	{"fin-lost", "the first FIN is lost: the closer retransmits it", sc_fin_close, "", false},
	{"fin-ack-lost", "the ACK of the first FIN is lost: FIN retransmitted from FIN_WAIT_1, ACKed again",
	 sc_fin_close, "", false},
	{"peer-fin-lost", "the passive side's FIN is lost: it retransmits from LAST_ACK", sc_fin_close, "", false},
	{"fin-wait-2-timeout", "every FIN of the passive side is lost for a while: the orphaned FIN_WAIT_2 gives up after fin_timeout, and the late FIN draws RST",
	 sc_fin_close, "fin_timeout=5s", false},
	{"last-ack-lost", "the final ACK is lost: the FIN is retransmitted, TIME_WAIT re-ACKs and restarts 2*MSL",
	 sc_fin_close, "", false},
	{"time-wait", "2*MSL; a late duplicate FIN re-ACKed; a new SYN for the same 4-tuple accepted",
	 sc_time_wait, "", false},
	{"rst-closed-port", "a SYN to a port nobody listens on: RST, connect() fails with ECONNREFUSED",
	 sc_rst_closed_port, "", false},
	{"rst-abort", "close with SO_LINGER 0 sends RST and skips TIME_WAIT; the peer sees ECONNRESET",
	 sc_rst_abort, "", false},
	{"peer-reboot", "the server forgets the connection; the client's next segment draws RST (ECONNRESET)",
	 sc_peer_reboot, "", false},
	{"zero-window", "the receiver stops reading: window 0, persist probes with backoff, sending resumes when it reads",
	 sc_zero_window, "", false},
	{"keepalive", "an idle connection whose peer vanished: probes after keepalive_time, every keepalive_intvl, ETIMEDOUT after keepalive_probes",
	 sc_keepalive, "", false},
	{"keepalive-live", "an idle connection with a live peer: each keepalive probe is answered and it stays",
	 sc_keepalive_live, "", false},
	{"peer-vanished", "the peer vanishes with data outstanding: retransmissions back off until retries2, then ETIMEDOUT",
	 sc_peer_vanished, "", false},
	{"close-wait-leak", "a server that never closes: its connections pile up in CLOSE_WAIT (listed by state at the end)",
	 sc_close_wait_leak, "", false},
	{"transfer", "a bulk transfer both ways at once (--bytes N, --in FILE, --out FILE): every byte arrives once, in order; send buffers held at 16 KiB so each round trip refills one",
	 sc_transfer, "wmem_max=16384", true},
};

/* Wire rules each scenario starts with. */
struct scn_rule_def {
	const char *scenario, *rule;
	enum tern_sim_action action;
	uint32_t delay_us;
};
static const struct scn_rule_def scenario_rules[] = {
	{"syn-lost", "a>b:syn", TERN_SIM_DROP, 0},
	{"synack-lost", "b>a:synack", TERN_SIM_DROP, 0},
	{"ack-lost", "a>b:ack#1", TERN_SIM_DROP, 0},
	{"ack-lost-data", "a>b:ack#1", TERN_SIM_DROP, 0},
	{"old-duplicate-syn", "a>b:syn#1", TERN_SIM_DELAY, 40000},
	{"fin-lost", "a>b:fin#1", TERN_SIM_DROP, 0},
	{"fin-ack-lost", "b>a:ack#1", TERN_SIM_DROP, 0},
	{"peer-fin-lost", "b>a:fin#1", TERN_SIM_DROP, 0},
	{"fin-wait-2-timeout", "b>a:fin#1-5", TERN_SIM_DROP, 0},
	{"last-ack-lost", "a>b:ack#2", TERN_SIM_DROP, 0},
	{"time-wait", "a>b:fin#1", TERN_SIM_DUP, 20000000},
	{"time-wait", "a>b:rst#1", TERN_SIM_DROP, 0},
};

const struct scenario *scenario_all(size_t *n)
{
	*n = sizeof(scenarios) / sizeof(scenarios[0]);
	return scenarios;
}

const struct scenario *scenario_find(const char *name)
{
	size_t n;
	const struct scenario *all = scenario_all(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0)
			return &all[i];
	return NULL;
}

static int apply_defaults(struct tern_settings *set, const char *defaults)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", defaults);
	for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return -EINVAL;
		*eq = 0;
		int rc = tern_settings_set(set, tok, eq + 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int scn_run(const struct scenario *sc, const struct scn_opts *o, struct scn_log *log,
	    void (*sink)(void *user, const struct scn_event *e), void *sink_user, struct scn **out)
{
	static const struct scn_opts none;
	if (!o)
		o = &none;
	struct tern_settings set;
	tern_settings_default(&set);
	int rc = apply_defaults(&set, sc->defaults);
	for (int i = 0; rc == 0 && i < o->nsets; i++)
		rc = tern_settings_set(&set, o->sets[i].name, o->sets[i].value);
	if (rc < 0)
		return rc;
	struct scn *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (int h = 0; h < 2; h++)
		for (int fd = 0; fd < SCN_MAX_SOCKS; fd++)
			sock_reset(&s->socks[h][fd]);
	s->log = log;
	s->sink = sink;
	s->sink_user = sink_user;
	s->opts = o;
	s->sim = tern_sim_new(o->seed);
	if (!s->sim) {
		free(s);
		return -ENOMEM;
	}
	tern_sim_set_trace(s->sim, on_trace, s);
	tern_sim_on_event(s->sim, app_event, s);
	s->a = tern_sim_add_host(s->sim, "a", SCN_ADDR_A, &set);
	s->b = tern_sim_add_host(s->sim, "b", SCN_ADDR_B, &set);
	struct tern_impair imp = o->imp;
	if (!o->delay_set)
		imp.delay_us = 10000;
	tern_sim_set_impair(s->sim, -1, -1, &imp);
	for (size_t i = 0; i < sizeof(scenario_rules) / sizeof(scenario_rules[0]); i++) {
		const struct scn_rule_def *d = &scenario_rules[i];
		if (strcmp(d->scenario, sc->name) != 0)
			continue;
		struct tern_sim_rule r;
		if (tern_sim_parse_rule(s->sim, d->rule, d->action, &r) == 0) {
			r.delay_us = d->delay_us;
			tern_sim_add_rule(s->sim, &r);
		}
	}
	for (int i = 0; i < o->nrules; i++) {
		struct tern_sim_rule r;
		rc = tern_sim_parse_rule(s->sim, o->rules[i].text, o->rules[i].action, &r);
		if (rc < 0) {
			scn_finish(s);
			return rc;
		}
		r.delay_us = o->rules[i].delay_us;
		tern_sim_add_rule(s->sim, &r);
	}
	if (o->pcap && (rc = tern_sim_pcap(s->sim, o->pcap)) < 0) {
		scn_finish(s);
		return rc;
	}
	if (o->in_file) {
		/* A regular file, whose size says how much a sends. */
		struct stat sb;
		if (!(s->in_fp = fopen(o->in_file, "rb"))) {
			rc = -errno;
			scn_finish(s);
			return rc;
		}
		if (fstat(fileno(s->in_fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
			scn_finish(s);
			return -EINVAL;
		}
		s->in_size = (uint64_t)sb.st_size;
	}
	if (o->out_file && !(s->out_fp = fopen(o->out_file, "wb"))) {
		rc = -errno;
		scn_finish(s);
		return rc;
	}
	sc->run(s);
	if (out)
		*out = s;
	else
		scn_finish(s);
	return 0;
}

void scn_finish(struct scn *s)
{
	if (!s)
		return;
	for (int h = 0; h < 2; h++)
		for (int fd = 0; fd < SCN_MAX_SOCKS; fd++)
			free(s->socks[h][fd].rx);
	if (s->in_fp)
		fclose(s->in_fp);
	if (s->out_fp && fclose(s->out_fp) != 0)
		s->bulk_error = EIO;
	tern_sim_free(s->sim);
	free(s);
}
