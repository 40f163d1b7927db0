/*
 * UDP (RFC 768) beside TCP: datagram sockets, their input and output, and the ICMP errors
 * that concern them. Where the RFCs leave a choice, tern does what Linux does without
 * IP_RECVERR; include/tern/tern.h lists the behaviour an application sees.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

_Static_assert(sizeof(struct tern_udp) <= 64, "a UDP socket fits in 64 bytes");

#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define IP4_HLEN 20
#define IP4_BROADCAST 0xffffffffu

int udp_socket(struct tern_stack *st)
{
	struct tern_udp *u = calloc(1, sizeof(*u));
	if (!u) {
		st->stats.mem_failures++;
		return -ENOBUFS;
	}
	u->h.kind = CK_UDP;
	u->h.state = TERN_STATE_CLOSED;
	int fd = fd_alloc(st, &u->h);
	if (fd < 0) {
		free(u);
		return fd;
	}
	u->fd = fd;
	st->n_udp++;
	return fd;
}

void udp_free(struct tern_stack *st, struct tern_udp *u)
{
	udp_hash_remove(st, u);
	for (struct udp_dgram *d = u->rq_head, *next; d; d = next) {
		next = d->next;
		free(d);
	}
	st->mem_bufs -= u->rq_bytes;
	st->n_udp--;
	free(u);
}

void udp_close(struct tern_stack *st, struct tern_udp *u)
{
	udp_unnotify(st, u);
	fd_free(st, u->fd);
	udp_free(st, u);
}

/* ---- input ---- */

static void udp_drop(struct tern_stack *st, const char *why, int fd)
{
	st->stats.udp_in_errors++;
	if (stack_tracing(st)) {
		struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = fd, .reason = why};
		stack_trace(st, &ev);
	}
}

/* Queue a datagram for the application: its payload copied here, once, and charged with its
 * record to SO_RCVBUF (the record counts too, so empty datagrams cannot queue without end). */
static void udp_enqueue(struct tern_stack *st, struct tern_udp *u, uint32_t src, uint16_t sport,
			const uint8_t *data, uint16_t len)
{
	size_t charge = sizeof(struct udp_dgram) + len;
	/* Linux's __udp_enqueue_schedule_skb: a datagram is refused only once what is queued
	 * already exceeds the buffer, so a buffer smaller than one datagram still takes one. */
	if (u->rq_bytes > udp_rcvbuf(st, u)) {
		st->stats.udp_rcvbuf_errors++;
		udp_drop(st, "udp receive buffer full", u->fd);
		return;
	}
	struct udp_dgram *d = NULL;
	if (!st->set.mem_max || st->mem_bufs + charge <= st->set.mem_max)
		d = malloc(charge);
	if (!d) {
		st->stats.mem_failures++;
		st->stats.udp_rcvbuf_errors++;
		udp_drop(st, "udp memory", u->fd);
		return;
	}
	d->next = NULL;
	d->src = src;
	d->sport = sport;
	d->len = len;
	if (len)
		memcpy(d->data, data, len);
	if (u->rq_tail)
		u->rq_tail->next = d;
	else
		u->rq_head = d;
	u->rq_tail = d;
	u->rq_bytes += (uint32_t)charge;
	st->mem_bufs += charge;
	st->stats.udp_in++;
	if (u->rq_head == d)
		udp_notify(st, u);
}

void udp_input(struct tern_stack *st, const struct tern_ip4 *ip)
{
	const uint8_t *uh = ip->payload;
	if (ip->payload_len < UDP_HLEN) {
		udp_drop(st, "udp header", -1);
		return;
	}
	/* RFC 768: the length counts header and data. Bytes past it are not the datagram's and
	 * are ignored, as Linux trims them; a length below the header or past the IPv4 payload
	 * is malformed. */
	uint16_t ulen = rd16(uh + 4);
	if (ulen < UDP_HLEN || ulen > ip->payload_len) {
		udp_drop(st, "udp length", -1);
		return;
	}
	/* RFC 768, RFC 1122 §4.1.3.4: a zero checksum field says the sender computed none,
	 * which IPv4 allows; any other value must verify over the pseudo-header and the
	 * datagram. A link with TERN_LINK_CSUM_RX has verified it already. */
	if ((uh[6] | uh[7]) && !(st->link.flags & TERN_LINK_CSUM_RX)) {
		struct tern_iovec whole = {uh, ulen};
		uint32_t pseudo = tern_csum_pseudo(ip->src, ip->dst, TERN_IPPROTO_UDP, ulen);
		if (tern_csum_iov(pseudo, &whole, 1) != 0) {
			st->stats.udp_csum_errors++;
			udp_drop(st, "udp checksum", -1);
			return;
		}
	}
	uint16_t sport = rd16(uh), dport = rd16(uh + 2);
	struct tern_udp *u = udp_lookup(st, ip->dst, dport, ip->src, sport);
	if (!u) {
		st->stats.udp_no_port++;
		if (stack_tracing(st)) {
			struct tern_trace ev = {.kind = TERN_TRACE_DISCARD, .fd = -1,
						.reason = "udp no port"};
			stack_trace(st, &ev);
		}
		/* RFC 1122 §4.1.3.1: a datagram for a port nobody listens on SHOULD be answered
		 * with ICMP port unreachable. */
		if (icmp_send_error(st, ip, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH))
			st->stats.icmp_port_unreach_out++;
		return;
	}
	udp_enqueue(st, u, ip->src, sport, uh + UDP_HLEN, (uint16_t)(ulen - UDP_HLEN));
}

/*
 * Linux's __udp4_lib_err without IP_RECVERR: only a hard error (RFC 1122 §3.2.2.1), and only
 * for a connected socket, whose peer the quoted datagram went to. An unconnected socket could
 * not tell which of its datagrams the message is about, so it hears nothing.
 */
void udp_err(struct tern_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
	     uint16_t rport, int err, bool fatal)
{
	struct tern_udp *u = udp_lookup(st, laddr, lport, raddr, rport);
	if (!u || !fatal || u->h.state != TERN_STATE_ESTABLISHED)
		return;
	u->err = (uint8_t)err;
	if (stack_tracing(st)) {
		struct tern_trace ev = {.kind = TERN_TRACE_ERROR, .fd = u->fd};
		ev.u.error = err;
		stack_trace(st, &ev);
	}
	udp_notify(st, u);
}

/* ---- the socket calls ---- */

/* A free ephemeral port for a socket that sends or connects before any bind(); Linux's
 * inet_autobind, whose failure the calls report as -EAGAIN. */
static int udp_autobind(struct tern_stack *st, struct tern_udp *u)
{
	uint16_t port = udp_port_choose(st);
	if (!port)
		return -EAGAIN;
	u->h.lport = port;
	if (udp_hash_insert(st, u) < 0) {
		u->h.lport = 0;
		return -EAGAIN;
	}
	return 0;
}

int udp_bind(struct tern_stack *st, struct tern_udp *u, const struct tern_sockaddr *addr)
{
	if (!addr)
		return -EINVAL;
	if (u->h.lport)
		return -EINVAL;
	if (addr->addr && !stack_is_local(st, addr->addr))
		return -EADDRNOTAVAIL;
	uint16_t port = addr->port;
	if (port) {
		int rc = udp_bind_check(st, u, addr->addr, port);
		if (rc < 0)
			return rc;
	} else {
		port = udp_port_choose(st);
		if (!port)
			return -EADDRINUSE;
	}
	uint32_t old_laddr = u->h.laddr;
	u->h.laddr = addr->addr;
	u->h.lport = port;
	if (udp_hash_insert(st, u) < 0) {
		u->h.laddr = old_laddr;
		u->h.lport = 0;
		return -ENOBUFS;
	}
	u->uf &= (uint16_t)~(UF_BOUND_ADDR | UF_BOUND_PORT);
	if (addr->addr)
		u->uf |= UF_BOUND_ADDR;
	if (addr->port)
		u->uf |= UF_BOUND_PORT;
	return 0;
}

/* Linux's __udp_disconnect (connect() with AF_UNSPEC): the peer goes, and so do a local
 * address and port that bind() did not name. */
static void udp_disconnect(struct tern_stack *st, struct tern_udp *u)
{
	u->h.state = TERN_STATE_CLOSED;
	u->h.raddr = 0;
	u->h.rport = 0;
	if (!(u->uf & UF_BOUND_ADDR))
		u->h.laddr = 0;
	if (!(u->uf & UF_BOUND_PORT)) {
		udp_hash_remove(st, u);
		u->h.lport = 0;
	}
}

int udp_connect(struct tern_stack *st, struct tern_udp *u, const struct tern_sockaddr *addr)
{
	if (!addr)
		return -EINVAL;
	if (!addr->addr && !addr->port) {
		udp_disconnect(st, u);
		return 0;
	}
	if (!addr->addr)
		return -EADDRNOTAVAIL;
	if (addr->addr == IP4_BROADCAST)
		return -EACCES; /* Linux, without SO_BROADCAST */
	if (!u->h.lport) {
		int rc = udp_autobind(st, u);
		if (rc < 0)
			return rc;
	}
	uint32_t laddr = u->h.laddr ? u->h.laddr : stack_source_addr(st, addr->addr);
	if (!laddr)
		return -ENETUNREACH;
	/* The port table is keyed by port alone, so a new local address needs no rehash. */
	u->h.laddr = laddr;
	u->h.raddr = addr->addr;
	u->h.rport = addr->port;
	u->h.state = TERN_STATE_ESTABLISHED;
	return 0;
}

long udp_sendto(struct tern_stack *st, struct tern_udp *u, const void *buf, size_t len,
		int flags, const struct tern_sockaddr *to)
{
	/* Linux binds a socket that has no port before looking at anything else. */
	if (!u->h.lport && udp_autobind(st, u) < 0)
		return -EAGAIN;
	if (flags & TERN_MSG_OOB)
		return -EOPNOTSUPP;
	uint32_t daddr;
	uint16_t dport;
	if (to) {
		if (!to->addr || !to->port)
			return -EINVAL;
		daddr = to->addr;
		dport = to->port;
	} else if (u->h.state == TERN_STATE_ESTABLISHED) {
		daddr = u->h.raddr;
		dport = u->h.rport;
	} else {
		return -EDESTADDRREQ;
	}
	if (daddr == IP4_BROADCAST)
		return -EACCES;
	/* tern does not fragment (yet): the datagram must fit one packet on the link. */
	if (len > st->set.mtu - IP4_HLEN - UDP_HLEN)
		return -EMSGSIZE;
	if (len && !buf)
		return -EFAULT;
	if (u->err)
		return -udp_take_error(u);
	if (u->uf & UF_SHUT_WR)
		return -EPIPE;
	uint32_t saddr = u->h.laddr ? u->h.laddr : stack_source_addr(st, daddr);
	if (!saddr)
		return -ENETUNREACH;
	uint16_t ulen = (uint16_t)(UDP_HLEN + len);
	uint8_t *uh = st->txbuf + IP4_HLEN;
	wr16(uh, u->h.lport);
	wr16(uh + 2, dport);
	wr16(uh + 4, ulen);
	uh[6] = uh[7] = 0;
	struct tern_iovec iov[2] = {{uh, UDP_HLEN}, {buf, len}};
	unsigned n = len ? 2 : 1;
	uint32_t pseudo = tern_csum_pseudo(saddr, daddr, TERN_IPPROTO_UDP, ulen);
	uint16_t c;
	if (st->link.flags & TERN_LINK_CSUM_TX) {
		c = (uint16_t)pseudo; /* the link finishes it (CHECKSUM_PARTIAL) */
	} else {
		/* RFC 768: a sum that comes to zero is sent as all ones, zero meaning "none". */
		c = tern_csum_iov(pseudo, iov, n);
		if (c == 0)
			c = 0xffff;
	}
	memcpy(uh + 6, &c, 2);
	int rc = ip_output(st, saddr, daddr, TERN_IPPROTO_UDP, iov, n, ulen);
	/* The payload is the caller's: it must be gone before this returns, even from within
	 * a burst (a trace callback may send). */
	stack_link_flush(st);
	if (rc == -ENOBUFS) {
		/* Linux (udp_send_skb): a link out of buffers loses the datagram quietly, as the
		 * network might, unless IP_RECVERR asks to hear of it. */
		st->stats.udp_sndbuf_errors++;
		return (long)len;
	}
	if (rc < 0)
		return rc;
	st->stats.udp_out++;
	return (long)len;
}

long udp_recvfrom(struct tern_stack *st, struct tern_udp *u, void *buf, size_t len, int flags,
		  struct tern_sockaddr *from)
{
	if (flags & TERN_MSG_OOB)
		return -EOPNOTSUPP;
	/* A pending error comes first, before queued datagrams (Linux's __skb_recv_udp). */
	if (u->err)
		return -udp_take_error(u);
	struct udp_dgram *d = u->rq_head;
	if (!d)
		return (u->uf & UF_SHUT_RD) ? 0 : -EAGAIN;
	if (len && !buf)
		return -EFAULT;
	size_t n = TERN_MIN(len, (size_t)d->len);
	if (n)
		memcpy(buf, d->data, n);
	if (from) {
		from->addr = d->src;
		from->port = d->sport;
	}
	long ret = (flags & TERN_MSG_TRUNC) ? (long)d->len : (long)n;
	if (!(flags & TERN_MSG_PEEK)) {
		/* One datagram per call: what did not fit is gone (Linux, POSIX recvfrom). */
		size_t charge = sizeof(struct udp_dgram) + d->len;
		u->rq_head = d->next;
		if (!u->rq_head) {
			u->rq_tail = NULL;
			udp_notify(st, u);
		}
		u->rq_bytes -= (uint32_t)charge;
		st->mem_bufs -= charge;
		free(d);
	}
	return ret;
}

int udp_shutdown(struct tern_stack *st, struct tern_udp *u, int how)
{
	if (how < TERN_SHUT_RD || how > TERN_SHUT_RDWR)
		return -EINVAL;
	if (how != TERN_SHUT_WR)
		u->uf |= UF_SHUT_RD;
	if (how != TERN_SHUT_RD)
		u->uf |= UF_SHUT_WR;
	udp_notify(st, u);
	/* Linux's inet_shutdown records it either way but says ENOTCONN when unconnected. */
	return u->h.state == TERN_STATE_ESTABLISHED ? 0 : -ENOTCONN;
}

uint32_t udp_events(const struct tern_udp *u)
{
	/* Linux's datagram_poll: a datagram socket is always writable here, since every
	 * datagram reaches the link within its send call. */
	uint32_t ev = TERN_EV_OUT;
	if (u->rq_head)
		ev |= TERN_EV_IN;
	if (u->err)
		ev |= TERN_EV_ERR;
	if (u->uf & UF_SHUT_RD)
		ev |= TERN_EV_IN | TERN_EV_RDHUP;
	if ((u->uf & (UF_SHUT_RD | UF_SHUT_WR)) == (UF_SHUT_RD | UF_SHUT_WR))
		ev |= TERN_EV_HUP;
	return ev;
}
