/* The sockets API: BSD calls, non-blocking, returning negative errno values. Each call finds
 * the descriptor's socket and hands a UDP one to src/udp.c; the rest is TCP's. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "cc.h"

static struct conn_hdr *sock_get(struct tern_stack *st, int fd)
{
	return fd_get(st, fd);
}

/* What a TCP-only call returns for h, which is not a TCB: no such descriptor, or UDP. */
static int not_tcp(const struct conn_hdr *h)
{
	return h ? -EOPNOTSUPP : -EBADF;
}

static struct tern_udp *as_udp(struct conn_hdr *h)
{
	return h && h->kind == CK_UDP ? (struct tern_udp *)h : NULL;
}

int tern_socket(struct tern_stack *st, int type)
{
	if (type == TERN_SOCK_DGRAM)
		return udp_socket(st);
	if (type != TERN_SOCK_STREAM)
		return -EPROTONOSUPPORT;
	struct tern_tcb *t = tcb_new(st);
	if (!t)
		return -ENOBUFS;
	int fd = fd_alloc(st, &t->h);
	if (fd < 0) {
		tcb_free(st, t);
		return fd;
	}
	t->fd = fd;
	return fd;
}

int tern_bind(struct tern_stack *st, int fd, const struct tern_sockaddr *addr)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_bind(st, (struct tern_udp *)h, addr);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (!addr)
		return -EINVAL;
	if (t->h.state != TERN_STATE_CLOSED || (t->tf & (TF_INBOUND | TF_USED)))
		return -EINVAL;
	if (addr->addr && !stack_is_local(st, addr->addr))
		return -EADDRNOTAVAIL;
	uint16_t port = addr->port;
	if (!port) {
		/* Any free port of the ephemeral range that bind() may take. */
		uint32_t lo = st->set.port_range_lo, hi = st->set.port_range_hi;
		uint32_t span = hi - lo + 1, start = (uint32_t)(rng_next(&st->rng) % span);
		for (uint32_t i = 0; i < span; i++) {
			uint16_t p = (uint16_t)(lo + (start + i) % span);
			if (!bind_find(st, p) && bind_check(st, t, addr->addr, p) == 0) {
				port = p;
				break;
			}
		}
		if (!port)
			return -EADDRINUSE;
	} else {
		int rc = bind_check(st, t, addr->addr, port);
		if (rc < 0)
			return rc;
	}
	t->h.laddr = addr->addr;
	t->h.lport = port;
	t->tf |= TF_BOUND;
	return bind_add(st, t, port);
}

int tern_listen(struct tern_stack *st, int fd, int backlog)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (backlog < 0)
		backlog = 0;
	if ((uint32_t)backlog > st->set.somaxconn)
		backlog = (int)st->set.somaxconn;
	if (t->h.state == TERN_STATE_LISTEN) {
		t->backlog = (uint32_t)backlog;
		return 0;
	}
	if (t->h.state != TERN_STATE_CLOSED || (t->tf & TF_USED))
		return -EINVAL;
	if (!(t->tf & TF_INBOUND)) {
		struct tern_sockaddr any = {0, 0};
		int rc = tern_bind(st, fd, &any);
		if (rc < 0)
			return rc;
	}
	/* A listener may not share its port with another socket, SO_REUSEADDR or not,
	 * unless the addresses differ (Linux's bind-conflict rule with state LISTEN). */
	t->h.state = TERN_STATE_LISTEN;
	int rc = bind_check(st, t, t->h.laddr, t->h.lport);
	t->h.state = TERN_STATE_CLOSED;
	if (rc < 0)
		return rc;
	memset(&t->acc_head, 0, sizeof(t->acc_head) + sizeof(t->acc_tail));
	t->backlog = (uint32_t)backlog;
	t->acc_len = t->syn_len = 0;
	listener_insert(st, t);
	tcb_set_state(st, t, TERN_STATE_LISTEN);
	return 0;
}

int tern_accept(struct tern_stack *st, int fd, struct tern_sockaddr *peer)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *l = (struct tern_tcb *)h;
	if (l->h.state != TERN_STATE_LISTEN)
		return -EINVAL;
	struct tern_tcb *c = l->acc_head;
	if (!c)
		return -EAGAIN;
	int nfd = fd_alloc(st, &c->h);
	if (nfd < 0)
		return nfd;
	l->acc_head = c->qnext;
	if (!l->acc_head)
		l->acc_tail = NULL;
	l->acc_len--;
	c->qnext = NULL;
	c->parent = NULL;
	c->tf &= ~TF_ACCEPTQ;
	c->fd = nfd;
	if (peer) {
		peer->addr = c->h.raddr;
		peer->port = c->h.rport;
	}
	stack_notify(st, c);
	return nfd;
}

int tern_connect(struct tern_stack *st, int fd, const struct tern_sockaddr *addr)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_connect(st, (struct tern_udp *)h, addr);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (!addr)
		return -EINVAL;
	switch (t->h.state) {
	case TERN_STATE_SYN_SENT:
	case TERN_STATE_SYN_RCVD:
		return -EALREADY;
	case TERN_STATE_CLOSED:
		break;
	default:
		return -EISCONN;
	}
	if (t->err) {
		/* The outcome of the previous attempt, once (as a repeated connect() gives). */
		int e = t->err;
		t->err = 0;
		return -e;
	}
	if (t->tf & TF_USED)
		return -EISCONN;
	if (!addr->addr || !addr->port)
		return -EADDRNOTAVAIL;
	/* TCP talks to one host: a broadcast, multicast or class E destination is refused as
	 * Linux's tcp_v4_connect() does (found by tests/fuzz: a SYN went to 255.255.255.255). */
	if (addr->addr >= TERN_IP4(224, 0, 0, 0))
		return -ENETUNREACH;
	uint32_t laddr = t->h.laddr ? t->h.laddr : stack_source_addr(st, addr->addr);
	if (!laddr)
		return -EADDRNOTAVAIL;
	uint16_t lport = t->h.lport;
	if (lport) {
		if (conn_lookup(st, laddr, lport, addr->addr, addr->port))
			return -EADDRNOTAVAIL;
	} else {
		lport = port_choose(st, laddr, addr->addr, addr->port);
		if (!lport)
			return -EADDRNOTAVAIL;
	}
	if (!(t->tf & TF_INBOUND)) {
		int rc = bind_add(st, t, lport);
		if (rc < 0)
			return rc;
	}
	t->h.laddr = laddr;
	t->h.lport = lport;
	t->h.raddr = addr->addr;
	t->h.rport = addr->port;
	t->iss = tcb_isn(st, laddr, lport, addr->addr, addr->port);
	t->snd_una = t->snd_nxt = t->snd_max = t->iss;
	t->rcv_wnd = 0;
	t->rto_ms = st->set.rto_initial_ms;
	conn_insert(st, &t->h);
	t->tf |= TF_HASHED | TF_CONNECTING | TF_USED;
	st->stats.tcp_active_opens++;
	tcb_set_state(st, t, TERN_STATE_SYN_SENT);
	tcp_output(st, t);
	return -EINPROGRESS;
}

/* Take a pending error (SO_ERROR semantics: reported once). */
static int take_error(struct tern_tcb *t)
{
	int e = t->err;
	t->err = 0;
	return e;
}

/* Whether the socket may take data to send now: 0, or the error a send gets. */
static int send_state(struct tern_tcb *t)
{
	if (t->err)
		return -take_error(t);
	if (t->tf & TF_SHUT_WR)
		return -EPIPE;
	switch (t->h.state) {
	case TERN_STATE_ESTABLISHED:
	case TERN_STATE_CLOSE_WAIT:
		return 0;
	case TERN_STATE_SYN_SENT:
	case TERN_STATE_SYN_RCVD:
		return -EAGAIN; /* as Linux for a non-blocking socket still connecting */
	case TERN_STATE_LISTEN:
		return -ENOTCONN;
	case TERN_STATE_CLOSED:
		return (t->tf & TF_USED) ? -EPIPE : -ENOTCONN;
	default:
		return -EPIPE;
	}
}

/* The send ring, taken when the first byte needs it, and moved to a larger one when the
 * buffer has grown (tcp_sndbuf_expand) and this one is full. Returns its free room (0: full). */
static long send_room(struct tern_stack *st, struct tern_tcb *t)
{
	uint32_t want = tcb_sndbuf(st, t);
	if (!t->sndq) {
		t->sndq = ring_get(st, want);
		if (!t->sndq)
			return -ENOBUFS;
	} else if (want > t->sndq->cap && t->sndq->len == t->sndq->cap) {
		struct ring *r = ring_get(st, want);
		if (r) {
			/* Rare (the size doubles at most with cwnd), so the copy is amortized. */
			r->len = ring_read(t->sndq, r->data, t->sndq->len, 0);
			ring_put(st, t->sndq);
			t->sndq = r;
		}
	}
	uint32_t cap = TERN_MIN(t->sndq->cap, want);
	return cap > t->sndq->len ? cap - t->sndq->len : 0;
}

/* RFC 9293 §3.8.5 urgent data, the way Linux (and BSD) place the pointer: just past the last
 * byte of the urgent send, which is the urgent byte. */
static int mark_urgent(struct tern_tcb *t)
{
	if (!tcb_opts(&t->xo))
		return -ENOMEM;
	t->xo->snd_up = tcb_snd_end(t);
	t->tf |= TF_URG_SEND;
	return 0;
}

long tern_send(struct tern_stack *st, int fd, const void *buf, size_t len, int flags)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_sendto(st, (struct tern_udp *)h, buf, len, flags, NULL);
	struct tern_tcb *t = (struct tern_tcb *)h;
	int rc = send_state(t);
	if (rc < 0)
		return rc;
	if (len == 0)
		return 0;
	if (!buf)
		return -EFAULT;
	long room = send_room(st, t);
	if (room <= 0)
		return room < 0 ? room : -EAGAIN;
	uint32_t n = ring_write(t->sndq, buf, (uint32_t)TERN_MIN(len, (size_t)room));
	if ((flags & TERN_MSG_OOB) && mark_urgent(t) < 0)
		return -ENOMEM;
	tcp_output(st, t);
	return n;
}

long tern_send_zc(struct tern_stack *st, int fd, struct tern_wiovec iov[2], unsigned *n)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (!iov || !n)
		return -EINVAL;
	*n = 0;
	int rc = send_state(t);
	if (rc < 0)
		return rc;
	long room = send_room(st, t);
	if (room <= 0)
		return room < 0 ? room : -EAGAIN;
	struct ring *r = t->sndq;
	uint32_t tail = r->head + r->len;
	if (tail >= r->cap)
		tail -= r->cap;
	uint32_t first = TERN_MIN((uint32_t)room, r->cap - tail);
	iov[0].base = r->data + tail;
	iov[0].len = first;
	*n = 1;
	if ((uint32_t)room > first) {
		iov[1].base = r->data;
		iov[1].len = (uint32_t)room - first;
		*n = 2;
	}
	return room;
}

int tern_send_commit(struct tern_stack *st, int fd, size_t len, int flags)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	/* The connection may have moved on since tern_send_zc (shut down, reset): the same
	 * checks as a send. */
	int rc = send_state(t);
	if (rc < 0)
		return rc;
	if (!len)
		return 0;
	if (!t->sndq || len > t->sndq->cap - t->sndq->len)
		return -EINVAL;
	t->sndq->len += (uint32_t)len;
	if ((flags & TERN_MSG_OOB) && mark_urgent(t) < 0)
		return -ENOMEM;
	tcp_output(st, t);
	return 0;
}

/* After the application reads, tell the peer about the space if it at least doubled the
 * window on offer (Linux's tcp_cleanup_rbuf rule), so a full receiver does not wait for the
 * sender's probe. */
static void window_update(struct tern_stack *st, struct tern_tcb *t)
{
	if (t->tf & TF_FIN_RCVD)
		return;
	int s = t->h.state;
	if (s != TERN_STATE_ESTABLISHED && s != TERN_STATE_FIN_WAIT_1 && s != TERN_STATE_FIN_WAIT_2)
		return;
	int32_t now_wnd = (int32_t)(t->rcv_wup + t->rcv_wnd - t->rcv_nxt);
	if (now_wnd < 0)
		now_wnd = 0;
	if ((uint32_t)now_wnd * 2 > TERN_MIN(tcb_rcvbuf(st, t), TERN_MAX_WINDOW))
		return;
	uint32_t w = tcp_window_now(st, t);
	if (w && w >= 2 * (uint32_t)now_wnd)
		tcp_send_ack(st, t);
}

/* The sequence number of the next byte the application will read. */
static uint32_t copied_seq(const struct tern_tcb *t)
{
	return t->rcv_nxt - ring_len(t->rcvq);
}

/* The urgent mark: bytes readable before it (reads stop there, so that tern_sockatmark()
 * turns true), or -1 when there is none ahead. */
static long bytes_to_mark(const struct tern_tcb *t)
{
	if (!(t->tf & TF_URG_SEEN) || !t->xo)
		return -1;
	uint32_t cs = copied_seq(t);
	if (seq_lt(t->xo->rcv_up, cs))
		return -1;
	return (long)(t->xo->rcv_up - cs);
}

/* Bytes are gone from the receive buffer: free it when empty, pass the urgent mark, and
 * perhaps announce the window. */
static void consumed(struct tern_stack *st, struct tern_tcb *t, uint32_t n)
{
	ring_consume(t->rcvq, n);
	if (ring_idle(t->rcvq)) {
		ring_put(st, t->rcvq);
		t->rcvq = NULL;
	}
	if ((t->tf & TF_URG_SEEN) && t->xo && seq_gt(copied_seq(t), t->xo->rcv_up))
		t->tf &= ~TF_URG_SEEN;
	window_update(st, t);
	stack_notify(st, t);
}

/* What a read returns when no data is ready: an error, end of stream, or -EAGAIN. */
static long recv_empty(struct tern_tcb *t, size_t len)
{
	if (t->err)
		return -take_error(t);
	if (t->tf & (TF_FIN_RCVD | TF_SHUT_RD))
		return 0;
	if (t->h.state == TERN_STATE_CLOSED)
		return (t->tf & TF_USED) ? 0 : -ENOTCONN;
	if (len == 0)
		return 0;
	return -EAGAIN;
}

long tern_recv(struct tern_stack *st, int fd, void *buf, size_t len, int flags)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_recvfrom(st, (struct tern_udp *)h, buf, len, flags, NULL);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (t->h.state == TERN_STATE_LISTEN)
		return -ENOTCONN;
	if (flags & TERN_MSG_OOB)
		return -EINVAL; /* urgent data stays inline (SO_OOBINLINE): see tern_sockatmark() */
	uint32_t avail = ring_len(t->rcvq);
	if (avail && len) {
		if (!buf)
			return -EFAULT;
		/* Linux stops a read at the urgent mark when bytes come before it. */
		long mark = bytes_to_mark(t);
		if (mark > 0 && (uint32_t)mark < avail)
			avail = (uint32_t)mark;
		bool peek = flags & TERN_MSG_PEEK;
		uint32_t n = ring_read(t->rcvq, buf, (uint32_t)TERN_MIN(len, (size_t)avail), 0);
		if (!peek)
			consumed(st, t, n);
		return n;
	}
	return recv_empty(t, len);
}

long tern_recv_zc(struct tern_stack *st, int fd, struct tern_iovec iov[2], unsigned *n)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (!iov || !n)
		return -EINVAL;
	*n = 0;
	if (t->h.state == TERN_STATE_LISTEN)
		return -ENOTCONN;
	uint32_t avail = ring_len(t->rcvq);
	if (!avail)
		return recv_empty(t, 1);
	long mark = bytes_to_mark(t);
	if (mark > 0 && (uint32_t)mark < avail)
		avail = (uint32_t)mark;
	*n = ring_peek(t->rcvq, 0, avail, iov);
	return avail;
}

int tern_recv_consume(struct tern_stack *st, int fd, size_t len)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (len > ring_len(t->rcvq))
		return -EINVAL;
	if (len)
		consumed(st, t, (uint32_t)len);
	return 0;
}

int tern_sockatmark(struct tern_stack *st, int fd)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	return bytes_to_mark(t) == 0 && seq_lt(t->xo->rcv_up, t->rcv_nxt);
}

int tern_shutdown(struct tern_stack *st, int fd, int how)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_shutdown(st, (struct tern_udp *)h, how);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (how < TERN_SHUT_RD || how > TERN_SHUT_RDWR)
		return -EINVAL;
	switch (t->h.state) {
	case TERN_STATE_CLOSED:
	case TERN_STATE_LISTEN:
		return -ENOTCONN;
	case TERN_STATE_SYN_SENT:
		/* Linux: shutting down a connection still opening abandons it. */
		tcb_done(st, t);
		return 0;
	default:
		break;
	}
	if (how != TERN_SHUT_WR)
		t->tf |= TF_SHUT_RD;
	if (how != TERN_SHUT_RD && !(t->tf & TF_SHUT_WR)) {
		t->tf |= TF_SHUT_WR;
		/* RFC 9293 §3.10.4 CLOSE: the FIN follows the queued data. */
		switch (t->h.state) {
		case TERN_STATE_ESTABLISHED:
		case TERN_STATE_SYN_RCVD:
			tcb_set_state(st, t, TERN_STATE_FIN_WAIT_1);
			break;
		case TERN_STATE_CLOSE_WAIT:
			tcb_set_state(st, t, TERN_STATE_LAST_ACK);
			break;
		default:
			break;
		}
		tcp_output(st, t);
	}
	stack_notify(st, t);
	return 0;
}

/* Close without a descriptor: reset it (an abort), or finish it in the background. */
static int sock_release(struct tern_stack *st, struct tern_tcb *t, bool abort)
{
	int fd = t->fd;
	stack_unnotify(st, t);
	fd_free(st, fd);
	t->fd = -1;
	int s = t->h.state;
	if (s == TERN_STATE_LISTEN) {
		listen_close(st, t);
		t->h.state = TERN_STATE_CLOSED;
		trace_state(st, &t->h, TERN_STATE_LISTEN, TERN_STATE_CLOSED, -1);
		tcb_free(st, t);
		return 0;
	}
	if (s == TERN_STATE_CLOSED) {
		tcb_free(st, t);
		return 0;
	}
	bool unread = ring_len(t->rcvq) > 0;
	bool linger0 = (t->tf & TF_LINGER) && t->xo && t->xo->linger_s == 0;
	if (unread || abort || linger0) {
		/* RFC 9293 §3.10.5 ABORT, and RFC 2525 §2.17: closing with unread data resets
		 * the connection so the peer knows it was not delivered. SYN_SENT just ends. */
		if (unread)
			st->stats.tcp_abort_on_data++;
		if (s != TERN_STATE_SYN_SENT && s != TERN_STATE_CLOSED)
			tcp_send_active_reset(st, t);
		if (s == TERN_STATE_ESTABLISHED || s == TERN_STATE_CLOSE_WAIT)
			st->stats.tcp_estab_resets++;
		tcb_done(st, t);
		return 0;
	}
	t->tf |= TF_ORPHAN | TF_SHUT_RD;
	st->n_orphans++;
	switch (s) {
	case TERN_STATE_SYN_SENT:
		tcb_done(st, t);
		return 0;
	case TERN_STATE_ESTABLISHED:
	case TERN_STATE_SYN_RCVD:
		t->tf |= TF_SHUT_WR;
		tcb_set_state(st, t, TERN_STATE_FIN_WAIT_1);
		break;
	case TERN_STATE_CLOSE_WAIT:
		t->tf |= TF_SHUT_WR;
		tcb_set_state(st, t, TERN_STATE_LAST_ACK);
		break;
	default:
		break;
	}
	if (st->n_orphans > st->set.max_orphans) {
		st->stats.tcp_orphan_overflow++;
		tcp_send_active_reset(st, t);
		tcb_done(st, t);
		return 0;
	}
	if (t->h.state == TERN_STATE_FIN_WAIT_2) {
		int32_t tmo = tcb_fin_timeout(st, t);
		if (tmo < 0) {
			tcp_send_active_reset(st, t);
			tcb_done(st, t);
		} else {
			tcb_time_wait(st, t, TERN_STATE_FIN_WAIT_2, (uint32_t)tmo);
		}
		return 0;
	}
	tcp_output(st, t);
	return 0;
}

static int sock_close(struct tern_stack *st, int fd, bool abort)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP) {
		udp_close(st, (struct tern_udp *)h);
		return 0;
	}
	return sock_release(st, (struct tern_tcb *)h, abort);
}

int tern_close(struct tern_stack *st, int fd)
{
	return sock_close(st, fd, false);
}

int tern_abort(struct tern_stack *st, int fd)
{
	return sock_close(st, fd, true);
}

long tern_sendto(struct tern_stack *st, int fd, const void *buf, size_t len, int flags,
		 const struct tern_sockaddr *to)
{
	struct tern_udp *u = as_udp(sock_get(st, fd));
	if (u)
		return udp_sendto(st, u, buf, len, flags, to);
	/* A connection's peer is fixed: Linux's TCP ignores the address. */
	return tern_send(st, fd, buf, len, flags);
}

long tern_recvfrom(struct tern_stack *st, int fd, void *buf, size_t len, int flags,
		   struct tern_sockaddr *from)
{
	struct tern_udp *u = as_udp(sock_get(st, fd));
	if (u)
		return udp_recvfrom(st, u, buf, len, flags, from);
	if (from) {
		/* Linux's TCP returns no address (msg_namelen 0). */
		from->addr = 0;
		from->port = 0;
	}
	return tern_recv(st, fd, buf, len, flags);
}

/* Both kinds keep their addresses in the header; a UDP socket is CLOSED until connected. */
int tern_getsockname(struct tern_stack *st, int fd, struct tern_sockaddr *addr)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (!addr)
		return -EINVAL;
	addr->addr = h->laddr;
	addr->port = h->lport;
	return 0;
}

int tern_getpeername(struct tern_stack *st, int fd, struct tern_sockaddr *addr)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (!addr)
		return -EINVAL;
	int s = h->state;
	if (s == TERN_STATE_LISTEN || s == TERN_STATE_CLOSED || s == TERN_STATE_SYN_SENT)
		return -ENOTCONN;
	addr->addr = h->raddr;
	addr->port = h->rport;
	return 0;
}

static int get_int(const void *val, size_t len, int *out)
{
	if (!val || len < sizeof(int))
		return -EINVAL;
	memcpy(out, val, sizeof(int));
	return 0;
}

static int put_int(void *val, size_t *len, int v)
{
	if (!val || !len || *len < sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}

static void set_flag(struct tern_tcb *t, uint32_t flag, int on)
{
	if (on)
		t->tf |= flag;
	else
		t->tf &= ~flag;
}

/* A UDP socket's options: the socket-level ones that mean something for datagrams. */
static int udp_setsockopt(struct tern_stack *st, struct tern_udp *u, int level, int name,
			  const void *val, size_t len)
{
	int v;
	if (level != TERN_SOL_SOCKET)
		return -ENOPROTOOPT;
	if (get_int(val, len, &v) < 0)
		return -EINVAL;
	switch (name) {
	case TERN_SO_REUSEADDR:
		if (v)
			u->uf |= UF_REUSEADDR;
		else
			u->uf &= (uint16_t)~UF_REUSEADDR;
		return 0;
	case TERN_SO_SNDBUF:
		u->sndbuf = TERN_MIN((uint32_t)TERN_MAX(v, 256), st->set.wmem_max);
		return 0;
	case TERN_SO_RCVBUF:
		u->rcvbuf = TERN_MIN((uint32_t)TERN_MAX(v, 256), st->set.rmem_max);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

static int udp_getsockopt(struct tern_stack *st, struct tern_udp *u, int level, int name,
			  void *val, size_t *len)
{
	if (level != TERN_SOL_SOCKET)
		return -ENOPROTOOPT;
	switch (name) {
	case TERN_SO_REUSEADDR: return put_int(val, len, !!(u->uf & UF_REUSEADDR));
	case TERN_SO_SNDBUF: return put_int(val, len, (int)(u->sndbuf ? u->sndbuf : st->set.wmem_default));
	case TERN_SO_RCVBUF: return put_int(val, len, (int)udp_rcvbuf(st, u));
	case TERN_SO_ERROR: return put_int(val, len, udp_take_error(u));
	default: return -ENOPROTOOPT;
	}
}

int tern_setsockopt(struct tern_stack *st, int fd, int level, int name, const void *val,
		    size_t len)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return udp_setsockopt(st, (struct tern_udp *)h, level, name, val, len);
	struct tern_tcb *t = (struct tern_tcb *)h;
	int v = 0;
	if (level == TERN_SOL_SOCKET) {
		if (name == TERN_SO_LINGER) {
			struct tern_linger lg;
			if (!val || len < sizeof(lg))
				return -EINVAL;
			memcpy(&lg, val, sizeof(lg));
			if (!tcb_opts(&t->xo))
				return -ENOMEM;
			set_flag(t, TF_LINGER, lg.l_onoff);
			t->xo->linger_s = lg.l_linger < 0 ? 0 : (uint32_t)lg.l_linger;
			return 0;
		}
		if (get_int(val, len, &v) < 0)
			return -EINVAL;
		switch (name) {
		case TERN_SO_REUSEADDR:
			set_flag(t, TF_REUSEADDR, v);
			return 0;
		case TERN_SO_KEEPALIVE:
			set_flag(t, TF_KEEPALIVE, v);
			tcb_keepalive_reset(st, t);
			return 0;
		case TERN_SO_SNDBUF:
			if (!tcb_opts(&t->xo))
				return -ENOMEM;
			t->xo->sndbuf = TERN_MIN((uint32_t)TERN_MAX(v, 256), st->set.wmem_max);
			stack_notify(st, t);
			return 0;
		case TERN_SO_RCVBUF:
			if (!tcb_opts(&t->xo))
				return -ENOMEM;
			t->xo->rcvbuf = TERN_MIN((uint32_t)TERN_MAX(v, 256), st->set.rmem_max);
			return 0;
		default:
			return -ENOPROTOOPT;
		}
	}
	if (level != TERN_IPPROTO_TCP)
		return -ENOPROTOOPT;
	if (name == TERN_TCP_CONGESTION) {
		char nm[16];
		if (!val || !len)
			return -EINVAL;
		size_t k = TERN_MIN(len, sizeof(nm) - 1);
		memcpy(nm, val, k);
		nm[k] = 0;
		int id = cc_find(nm);
		if (id < 0)
			return -ENOENT;
		t->h.flags = (uint8_t)id;
		return 0;
	}
	if (get_int(val, len, &v) < 0)
		return -EINVAL;
	switch (name) {
	case TERN_TCP_NODELAY:
		set_flag(t, TF_NODELAY, v);
		if (v)
			tcp_output(st, t); /* Linux pushes what Nagle held back */
		return 0;
	case TERN_TCP_CORK:
		set_flag(t, TF_CORK, v);
		if (!v)
			tcp_output(st, t);
		return 0;
	case TERN_TCP_MAXSEG:
		if (v < TERN_MIN_SND_MSS || v > 65535 - 40)
			return -EINVAL;
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		t->xo->maxseg = (uint32_t)v;
		t->advmss = (uint16_t)TERN_MIN((uint32_t)v, st->set.mtu - 40);
		return 0;
	case TERN_TCP_KEEPIDLE:
	case TERN_TCP_KEEPINTVL:
		if (v < 1 || v > 32767)
			return -EINVAL;
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		if (name == TERN_TCP_KEEPIDLE)
			t->xo->keepidle_ms = (uint32_t)v * 1000;
		else
			t->xo->keepintvl_ms = (uint32_t)v * 1000;
		if (name == TERN_TCP_KEEPIDLE)
			tcb_keepidle_changed(st, t);
		return 0;
	case TERN_TCP_KEEPCNT:
		if (v < 1 || v > 127)
			return -EINVAL;
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		t->xo->keepcnt = (uint32_t)v;
		return 0;
	case TERN_TCP_SYNCNT:
		if (v < 1 || v > 127)
			return -EINVAL;
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		t->xo->syn_retries = (uint32_t)v;
		return 0;
	case TERN_TCP_LINGER2:
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		if (v < 0)
			t->xo->linger2_ms = -1;
		else
			t->xo->linger2_ms = (int32_t)TERN_MIN((uint32_t)v, 86400u) * 1000;
		return 0;
	case TERN_TCP_USER_TIMEOUT:
		if (v < 0)
			return -EINVAL;
		if (!tcb_opts(&t->xo))
			return -ENOMEM;
		t->xo->user_timeout_ms = (uint32_t)v;
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

int tern_sock_info(struct tern_stack *st, int fd, struct tern_tcp_info *i)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h || h->kind != CK_TCB)
		return not_tcp(h);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (!i)
		return -EINVAL;
	memset(i, 0, sizeof(*i));
	i->state = t->h.state;
	if (t->h.state == TERN_STATE_LISTEN) {
		i->unacked = t->acc_len;
		i->snd_ssthresh = t->backlog;
		return 0;
	}
	i->retransmits = t->retransmits;
	i->probes = t->probes;
	i->backoff = t->backoff;
	i->rto_us = t->rto_ms * 1000;
	i->snd_mss = t->mss;
	i->rcv_mss = t->rcv_mss;
	i->ato_us = (uint32_t)t->tn.user * 1000;
	i->advmss = t->advmss;
	i->unacked = t->mss ? (t->snd_max - t->snd_una + t->mss - 1) / t->mss : 0;
	i->rtt_us = t->srtt_us;
	i->rttvar_us = t->rttvar_us;
	i->snd_ssthresh = t->ssthresh == UINT32_MAX ? 0x7fffffff : t->ssthresh / TERN_MAX(t->mss, 1);
	i->snd_cwnd = t->cwnd / TERN_MAX(t->mss, 1);
	i->total_retrans = t->total_retrans;
	i->bytes_acked = t->bytes_acked;
	i->bytes_received = t->bytes_received;
	i->segs_in = t->segs_in;
	i->segs_out = t->segs_out;
	i->pmtu = st->set.mtu;
	i->snd_una = t->snd_una;
	i->snd_nxt = t->snd_max;
	i->snd_wnd = t->snd_wnd;
	i->iss = t->iss;
	i->rcv_nxt = t->rcv_nxt;
	i->rcv_wnd = t->rcv_wnd;
	i->irs = t->irs;
	i->snd_queue = ring_len(t->sndq);
	i->rcv_queue = ring_len(t->rcvq);
	return 0;
}

int tern_getsockopt(struct tern_stack *st, int fd, int level, int name, void *val, size_t *len)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (!len)
		return -EINVAL;
	if (h->kind == CK_UDP)
		return udp_getsockopt(st, (struct tern_udp *)h, level, name, val, len);
	struct tern_tcb *t = (struct tern_tcb *)h;
	if (level == TERN_SOL_SOCKET) {
		switch (name) {
		case TERN_SO_REUSEADDR: return put_int(val, len, !!(t->tf & TF_REUSEADDR));
		case TERN_SO_KEEPALIVE: return put_int(val, len, !!(t->tf & TF_KEEPALIVE));
		case TERN_SO_SNDBUF: return put_int(val, len, (int)tcb_sndbuf(st, t));
		case TERN_SO_RCVBUF: return put_int(val, len, (int)tcb_rcvbuf(st, t));
		case TERN_SO_ERROR: return put_int(val, len, take_error(t));
		case TERN_SO_LINGER: {
			struct tern_linger lg = {!!(t->tf & TF_LINGER), t->xo ? (int)t->xo->linger_s : 0};
			if (!val || *len < sizeof(lg))
				return -EINVAL;
			memcpy(val, &lg, sizeof(lg));
			*len = sizeof(lg);
			return 0;
		}
		default: return -ENOPROTOOPT;
		}
	}
	if (level != TERN_IPPROTO_TCP)
		return -ENOPROTOOPT;
	if (name == TERN_TCP_CONGESTION) {
		const char *nm = tcb_cc(t)->name;
		size_t k = strlen(nm) + 1;
		if (!val || *len < k)
			return -EINVAL;
		memcpy(val, nm, k);
		*len = k;
		return 0;
	}
	switch (name) {
	case TERN_TCP_NODELAY: return put_int(val, len, !!(t->tf & TF_NODELAY));
	case TERN_TCP_CORK: return put_int(val, len, !!(t->tf & TF_CORK));
	case TERN_TCP_MAXSEG: return put_int(val, len, t->h.state == TERN_STATE_ESTABLISHED ? t->mss : t->advmss);
	case TERN_TCP_KEEPIDLE: return put_int(val, len, (int)(tcb_keepidle(st, t) / 1000));
	case TERN_TCP_KEEPINTVL: return put_int(val, len, (int)(tcb_keepintvl(st, t) / 1000));
	case TERN_TCP_KEEPCNT: return put_int(val, len, (int)tcb_keepcnt(st, t));
	case TERN_TCP_SYNCNT: return put_int(val, len, (int)tcb_syn_retries(st, t));
	case TERN_TCP_LINGER2: {
		int32_t l2 = t->xo && t->xo->linger2_ms ? t->xo->linger2_ms : (int32_t)st->set.fin_timeout_ms;
		return put_int(val, len, l2 < 0 ? -1 : l2 / 1000);
	}
	case TERN_TCP_USER_TIMEOUT: return put_int(val, len, t->xo ? (int)t->xo->user_timeout_ms : 0);
	case TERN_TCP_STATE: return put_int(val, len, t->h.state);
	case TERN_TCP_INFO: {
		struct tern_tcp_info info;
		tern_sock_info(st, fd, &info);
		size_t n = TERN_MIN(*len, sizeof(info));
		if (!val)
			return -EINVAL;
		memcpy(val, &info, n);
		*len = n;
		return 0;
	}
	default: return -ENOPROTOOPT;
	}
}

int tern_sock_state(struct tern_stack *st, int fd)
{
	struct conn_hdr *h = sock_get(st, fd);
	return h ? h->state : -EBADF;
}

int tern_sock_events(struct tern_stack *st, int fd)
{
	struct conn_hdr *h = sock_get(st, fd);
	if (!h)
		return -EBADF;
	if (h->kind == CK_UDP)
		return (int)udp_events((struct tern_udp *)h);
	return (int)tcb_events(st, (struct tern_tcb *)h);
}
