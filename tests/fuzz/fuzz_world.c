/*
 * The harness the stack targets share (see fuzz.h): a stack with a listener, connections in
 * most states and UDP sockets, set up by a scripted peer; records of the input turned into
 * datagrams, socket calls and clock steps; and the checks made on everything the stack does.
 *
 * The scripted peer keeps, per connection, what it has seen the stack send (the highest
 * sequence number, the last ACK, timestamps, the window), so that a record can name a
 * connection and an offset and get a segment near what the stack expects: mutations then
 * land in the interesting part of the sequence space instead of being dropped at the
 * first check. Connections the stack opens while running (a SYN-ACK for a fuzzed SYN, a SYN
 * of a fuzzed connect()) join the list when their first segment leaves.
 *
 * Everything is deterministic: the stack's seed is fixed, time is virtual, and the only
 * state outside the world is a few static buffers that every input rewrites before use.
 */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/tern.h"
#include "internal.h" /* the counters checked after a drain (n_tcb, mem_bufs, ...) */
#include "wire.h"

const char *fuzz_current_input;

void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz invariant broken at %s:%d", file, line);
	if (fuzz_current_input)
		fprintf(stderr, " (input %s)", fuzz_current_input);
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

/* ---- reference codecs, written from the RFCs rather than shared with src/ ---- */

uint32_t fz_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	/* RFC 1071: 16-bit big-endian words, an odd last byte padded with zero. Carries are
	 * folded as they come so the 32-bit sum cannot overflow whatever n is. */
	for (size_t i = 0; i + 1 < n; i += 2) {
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
		sum = (sum & 0xffff) + (sum >> 16);
	}
	if (n & 1) {
		sum += (uint32_t)p[n - 1] << 8;
		sum = (sum & 0xffff) + (sum >> 16);
	}
	return sum;
}

uint16_t fz_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t fz_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len)
{
	uint8_t ph[12] = {(uint8_t)(src >> 24), (uint8_t)(src >> 16), (uint8_t)(src >> 8),
			  (uint8_t)src, (uint8_t)(dst >> 24), (uint8_t)(dst >> 16),
			  (uint8_t)(dst >> 8), (uint8_t)dst, 0, proto, (uint8_t)(len >> 8),
			  (uint8_t)len};
	return fz_sum(ph, sizeof(ph), 0);
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* ---- the world ---- */

#define FZ_T0 ((uint64_t)1000000)  /* the stack's creation time, us */
#define FZ_MAX_CONNS 48
#define FZ_MAX_FDS 64
#define FZ_RING 8
#define FZ_RING_BYTES 96
#define FZ_PKT_CAP 65536
#define FZ_TIMER_BUDGET 3000 /* timer runs per input (clock steps only) */
#define FZ_DRAIN_RUNS 20000  /* timer runs a drain may take before it is called endless */

/* What the scripted peer knows of one connection (addresses from the stack's view). */
struct fz_conn {
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t snd_nxt;    /* the peer's next sequence number (the stack's RCV.NXT) */
	uint32_t rcv_nxt;    /* the end of the highest segment the stack sent */
	uint32_t last_ack;   /* the last ACK the peer sent, for duplicates */
	uint32_t iss, irs;   /* the stack's ISN, the peer's */
	uint32_t ts_recent;  /* the stack's last TSval */
	uint16_t win;        /* the stack's last window, as on the wire */
	uint8_t ws;          /* the stack's window shift, from its SYN */
	bool ts;             /* the stack's segments carry timestamps */
	bool seen;           /* the stack has sent something on it */
};

struct fz_world {
	struct tern_stack *st;
	struct tern_settings set;
	uint64_t now;
	struct fz_conn conns[FZ_MAX_CONNS];
	unsigned nconns;
	int fds[FZ_MAX_FDS];
	unsigned nfds;
	int lfd; /* the listener of the setup */
	/* The last datagrams the stack sent (their first bytes), for ICMP errors to quote. */
	uint8_t ring[FZ_RING][FZ_RING_BYTES];
	size_t ring_len[FZ_RING];
	unsigned ring_next, ring_count;
	unsigned link_fail;   /* transmissions still to refuse */
	unsigned timer_budget;
	unsigned link_flags;
	uint32_t peer_ts;     /* the peer's timestamp clock offset */
};

/* Buffers every input rewrites before reading: outgoing datagrams gathered, the datagrams
 * being built (eight for a batch), payload and receive space. */
static uint8_t g_tx[FZ_PKT_CAP + 64];
static uint8_t g_pkt[8][FZ_PKT_CAP + 64];
static uint8_t g_data[FZ_PKT_CAP];
static uint8_t g_rx[FZ_PKT_CAP];

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7u);
}

static struct fz_conn *conn_find(struct fz_world *w, uint32_t laddr, uint16_t lport,
				 uint32_t raddr, uint16_t rport)
{
	for (unsigned i = 0; i < w->nconns; i++) {
		struct fz_conn *c = &w->conns[i];
		if (c->laddr == laddr && c->lport == lport && c->raddr == raddr &&
		    c->rport == rport)
			return c;
	}
	return NULL;
}

static struct fz_conn *conn_add(struct fz_world *w, uint32_t laddr, uint16_t lport,
				uint32_t raddr, uint16_t rport)
{
	if (w->nconns == FZ_MAX_CONNS)
		return NULL;
	struct fz_conn *c = &w->conns[w->nconns];
	memset(c, 0, sizeof(*c));
	c->laddr = laddr;
	c->lport = lport;
	c->raddr = raddr;
	c->rport = rport;
	/* An ISN for the peer's side of an active open, distinct per connection. */
	c->irs = 0x70000000u + (w->nconns << 20);
	c->snd_nxt = c->irs;
	c->last_ack = 0;
	c->win = 65535;
	w->nconns++;
	return c;
}

/* A descriptor the harness now holds; with no room left to remember it, it is closed at
 * once, since one left open would be a leak of the harness's own making. */
static void fds_add(struct fz_world *w, int fd)
{
	if (fd < 0)
		return;
	if (w->nfds < FZ_MAX_FDS)
		w->fds[w->nfds++] = fd;
	else
		tern_close(w->st, fd);
}

static void fds_remove(struct fz_world *w, int fd)
{
	for (unsigned i = 0; i < w->nfds; i++) {
		if (w->fds[i] == fd) {
			memmove(w->fds + i, w->fds + i + 1, (w->nfds - i - 1) * sizeof(int));
			w->nfds--;
			return;
		}
	}
}

/* ---- what the stack sends: checked, remembered, and learnt from ---- */

/* Walk an option list the way RFC 9293 §3.1 lays it out; the stack must only send lists a
 * receiver can walk, with the known kinds at their fixed lengths. */
static void check_out_opts(const uint8_t *o, size_t n, struct fz_conn *c, uint16_t flags)
{
	size_t i = 0;
	while (i < n) {
		uint8_t kind = o[i];
		if (kind == TERN_TCPOPT_EOL)
			break;
		if (kind == TERN_TCPOPT_NOP) {
			i++;
			continue;
		}
		FZ_CHECK(n - i >= 2 && o[i + 1] >= 2 && o[i + 1] <= n - i,
			 "sent option %u with a bad length", kind);
		uint8_t len = o[i + 1];
		switch (kind) {
		case TERN_TCPOPT_MSS:
			FZ_CHECK(len == 4 && (flags & TERN_TH_SYN), "sent MSS len %u flags %#x", len,
				 flags);
			break;
		case TERN_TCPOPT_WSCALE:
			FZ_CHECK(len == 3 && (flags & TERN_TH_SYN) && o[i + 2] <= 14,
				 "sent WSCALE len %u shift %u", len, o[i + 2]);
			if (c)
				c->ws = o[i + 2];
			break;
		case TERN_TCPOPT_SACK_PERM:
			FZ_CHECK(len == 2 && (flags & TERN_TH_SYN), "sent SACK_PERM len %u", len);
			break;
		case TERN_TCPOPT_TS:
			FZ_CHECK(len == 10, "sent TS len %u", len);
			if (c)
				c->ts_recent = get32(o + i + 2);
			break;
		case TERN_TCPOPT_SACK:
			FZ_CHECK(len >= 10 && (len - 2) % 8 == 0, "sent SACK len %u", len);
			break;
		default:
			FZ_CHECK(0, "sent unknown option kind %u", kind);
		}
		i += len;
	}
}

static bool has_ts(const uint8_t *o, size_t n)
{
	size_t i = 0;
	while (i < n && o[i] != TERN_TCPOPT_EOL) {
		if (o[i] == TERN_TCPOPT_NOP) {
			i++;
			continue;
		}
		if (n - i < 2 || o[i + 1] < 2)
			return false;
		if (o[i] == TERN_TCPOPT_TS)
			return true;
		i += o[i + 1];
	}
	return false;
}

/* A TCP or UDP checksum is right as it stands, or (with TERN_LINK_CSUM_TX) once the link
 * completes it: the field then holds the folded pseudo-header sum and the link stores the
 * complement of the sum over the transport bytes in it, 0 going out as 0xffff for UDP. */
static bool l4_sum_ok(struct fz_world *w, uint8_t *l4, size_t n, size_t field, uint32_t src,
		      uint32_t dst, uint8_t proto)
{
	uint32_t ph = fz_pseudo(src, dst, proto, (uint32_t)n);
	if (fz_fold(fz_sum(l4, n, ph)) == 0)
		return true;
	if (!(w->link_flags & TERN_LINK_CSUM_TX))
		return false;
	uint16_t c = fz_fold(fz_sum(l4, n, 0));
	if (proto == TERN_IPPROTO_UDP && c == 0)
		c = 0xffff;
	uint8_t save[2] = {l4[field], l4[field + 1]};
	put16(l4 + field, c);
	bool ok = fz_fold(fz_sum(l4, n, ph)) == 0;
	l4[field] = save[0];
	l4[field + 1] = save[1];
	return ok;
}

static void learn_tcp(struct fz_world *w, uint32_t src, uint32_t dst, const uint8_t *t,
		      size_t n, size_t hl, uint16_t flags)
{
	uint16_t sport = get16(t), dport = get16(t + 2);
	struct fz_conn *c = conn_find(w, src, sport, dst, dport);
	if (!c) {
		/* Only a SYN or a SYN-ACK starts a connection worth naming. */
		if (!(flags & TERN_TH_SYN) || (flags & TERN_TH_RST))
			return;
		c = conn_add(w, src, sport, dst, dport);
		if (!c)
			return;
	}
	uint32_t seq = get32(t + 4), ack = get32(t + 8);
	uint32_t end = seq + (uint32_t)(n - hl) + !!(flags & TERN_TH_SYN) + !!(flags & TERN_TH_FIN);
	if (flags & TERN_TH_RST)
		return; /* a reset tells nothing of the sequence space the peer should use */
	if (flags & TERN_TH_SYN) {
		c->iss = seq;
		c->rcv_nxt = end;
		c->ws = 0;
		if (flags & TERN_TH_ACK) {
			c->irs = ack - 1;
			c->snd_nxt = ack;
		}
	} else if (!c->seen || seq_gt(end, c->rcv_nxt)) {
		c->rcv_nxt = end;
	}
	if ((flags & TERN_TH_ACK) && !(flags & TERN_TH_SYN && !c->seen))
		c->snd_nxt = ack;
	c->win = get16(t + 14);
	c->seen = true;
	/* A pure SYN says what the stack offers, not what was agreed. */
	if (!((flags & TERN_TH_SYN) && !(flags & TERN_TH_ACK)) || !c->ts)
		c->ts = has_ts(t + 20, hl - 20);
	check_out_opts(t + 20, hl - 20, c, flags);
}

static void check_out(struct fz_world *w, uint8_t *b, size_t n)
{
	FZ_CHECK(n >= 20, "sent a datagram of %zu bytes", n);
	FZ_CHECK(b[0] == 0x45, "sent version/IHL %#x", b[0]);
	FZ_CHECK(get16(b + 2) == n, "sent total length %u for %zu bytes", get16(b + 2), n);
	FZ_CHECK(fz_fold(fz_sum(b, 20, 0)) == 0, "sent a bad IPv4 header checksum");
	FZ_CHECK((get16(b + 6) & 0xbfff) == 0, "sent a fragment (%#x)", get16(b + 6));
	FZ_CHECK(b[8] != 0, "sent TTL 0");
	uint32_t src = get32(b + 12), dst = get32(b + 16);
	FZ_CHECK(src == FZ_LOCAL || src == FZ_LOCAL2, "sent from %08x, not a stack address", src);
	/* RFC 1122 §3.2.1.3: nothing goes to 0.0.0.0, broadcast or multicast (the harness
	 * never asks for such a destination itself). */
	FZ_CHECK(dst != 0 && dst < 0xe0000000u, "sent protocol %u to %08x (%02x %02x)", b[9], dst,
		 n > 20 ? b[20] : 0, n > 33 ? b[33] : 0);

	uint8_t *l4 = b + 20;
	size_t ln = n - 20;
	switch (b[9]) {
	case TERN_IPPROTO_TCP_: {
		FZ_CHECK(n <= w->set.mtu, "sent a %zu-byte TCP datagram, MTU %u", n, w->set.mtu);
		FZ_CHECK(ln >= 20, "sent a %zu-byte TCP segment", ln);
		size_t hl = (size_t)(l4[12] >> 4) * 4;
		FZ_CHECK(hl >= 20 && hl <= ln, "sent data offset %zu of %zu", hl, ln);
		FZ_CHECK((l4[12] & 0x0e) == 0, "sent reserved bits %#x", l4[12]);
		uint16_t flags = (uint16_t)(((l4[12] & 1) << 8) | l4[13]);
		/* Replies go to whatever port a segment came from, 0 included, as Linux's do;
		 * but a connection's own port is never 0. */
		FZ_CHECK((flags & TERN_TH_RST) || get16(l4) != 0, "sent from port 0");
		FZ_CHECK(l4_sum_ok(w, l4, ln, 16, src, dst, TERN_IPPROTO_TCP_),
			 "sent a bad TCP checksum");
		FZ_CHECK(!((flags & TERN_TH_SYN) && (flags & (TERN_TH_RST | TERN_TH_FIN))),
			 "sent flags %#x", flags);
		FZ_CHECK(!(flags & (TERN_TH_SYN | TERN_TH_RST)) || ln == hl,
			 "sent %zu data bytes with flags %#x", ln - hl, flags);
		learn_tcp(w, src, dst, l4, ln, hl, flags);
		break;
	}
	case TERN_IPPROTO_UDP:
		FZ_CHECK(n <= w->set.mtu, "sent a %zu-byte UDP datagram, MTU %u", n, w->set.mtu);
		FZ_CHECK(ln >= 8 && get16(l4 + 4) == ln, "sent UDP length %u in %zu bytes",
			 ln >= 8 ? get16(l4 + 4) : 0, ln);
		/* To port 0 is allowed: a socket connected to ADDR:0 sends there, as Linux's
		 * does (only sendto() refuses port 0). */
		FZ_CHECK(get16(l4) != 0, "sent UDP from port 0");
		FZ_CHECK(get16(l4 + 6) != 0 || (w->link_flags & TERN_LINK_CSUM_TX),
			 "sent UDP without a checksum");
		FZ_CHECK(l4_sum_ok(w, l4, ln, 6, src, dst, TERN_IPPROTO_UDP),
			 "sent a bad UDP checksum");
		break;
	case TERN_IPPROTO_ICMP:
		FZ_CHECK(ln >= 8, "sent a %zu-byte ICMP message", ln);
		FZ_CHECK(fz_fold(fz_sum(l4, ln, 0)) == 0, "sent a bad ICMP checksum");
		FZ_CHECK(l4[0] == 0 || l4[0] == 3, "sent ICMP type %u", l4[0]);
		if (l4[0] == 3) {
			/* An error quotes a datagram that came to the stack from where the error
			 * goes (RFC 792, RFC 1122 §3.2.2), and never another ICMP error. */
			FZ_CHECK(ln >= 28, "sent an ICMP error quoting %zu bytes", ln - 8);
			const uint8_t *q = l4 + 8;
			FZ_CHECK(get32(q + 12) == dst, "ICMP error quotes a datagram from %08x",
				 get32(q + 12));
			if (q[9] == TERN_IPPROTO_ICMP) {
				size_t qh = (size_t)(q[0] & 15) * 4;
				FZ_CHECK(ln >= 8 + qh + 1 && (q[qh] == 0 || q[qh] == 8 ||
							       q[qh] == 13 || q[qh] == 15 ||
							       q[qh] == 17),
					 "sent an ICMP error about an ICMP error");
			}
		}
		break;
	default:
		FZ_CHECK(0, "sent protocol %u", b[9]);
	}
	memcpy(w->ring[w->ring_next], b, n < FZ_RING_BYTES ? n : FZ_RING_BYTES);
	w->ring_len[w->ring_next] = n < FZ_RING_BYTES ? n : FZ_RING_BYTES;
	w->ring_next = (w->ring_next + 1) % FZ_RING;
	if (w->ring_count < FZ_RING)
		w->ring_count++;
}

static int fz_transmit(void *ctx, const struct tern_iovec *iov, unsigned iovcnt, size_t total)
{
	struct fz_world *w = ctx;
	size_t off = 0;
	FZ_CHECK(iovcnt >= 1 && total <= FZ_PKT_CAP, "transmit of %u pieces, %zu bytes", iovcnt,
		 total);
	for (unsigned i = 0; i < iovcnt; i++) {
		FZ_CHECK(off + iov[i].len <= total, "transmit pieces longer than total %zu", total);
		if (iov[i].len)
			memcpy(g_tx + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	FZ_CHECK(off == total, "transmit pieces %zu bytes, total %zu", off, total);
	check_out(w, g_tx, total);
	if (w->link_fail) {
		w->link_fail--;
		return -ENOBUFS;
	}
	return 0;
}

static void fz_trace(void *user, const struct tern_trace *ev)
{
	struct fz_world *w = user;
	FZ_CHECK(ev->t_us <= w->now, "trace at %llu after now %llu",
		 (unsigned long long)ev->t_us, (unsigned long long)w->now);
	switch (ev->kind) {
	case TERN_TRACE_STATE:
		FZ_CHECK(ev->u.state.from >= 0 && ev->u.state.from < TERN_STATE_MAX &&
				 ev->u.state.to > 0 && ev->u.state.to < TERN_STATE_MAX,
			 "state change %d -> %d", ev->u.state.from, ev->u.state.to);
		break;
	case TERN_TRACE_DISCARD:
		FZ_CHECK(ev->reason != NULL, "discard without a reason");
		break;
	case TERN_TRACE_ERROR:
		FZ_CHECK(ev->u.error > 0, "error %d", ev->u.error);
		break;
	case TERN_TRACE_SEND:
	case TERN_TRACE_RECV:
	case TERN_TRACE_ICMP:
		break;
	default:
		FZ_CHECK(0, "trace kind %d", (int)ev->kind);
	}
}

/* ---- building datagrams ---- */

static void ip_header(uint8_t *b, uint32_t src, uint32_t dst, uint8_t proto, size_t total)
{
	memset(b, 0, 20);
	b[0] = 0x45;
	put16(b + 2, (uint16_t)total);
	put16(b + 6, 0x4000);
	b[8] = 64;
	b[9] = proto;
	put32(b + 12, src);
	put32(b + 16, dst);
}

/* Checksums and lengths after the edits, unless the fix-up byte says to leave them. */
static void fix_up(uint8_t *b, size_t n, uint8_t fix)
{
	if (n < 20)
		return;
	size_t ihl = (size_t)(b[0] & 15) * 4;
	if (!(fix & FZ_FIX_KEEP_TOTLEN))
		put16(b + 2, (uint16_t)n);
	if (ihl >= 20 && ihl <= n && !(fix & FZ_FIX_KEEP_L4SUM)) {
		uint8_t *l4 = b + ihl;
		size_t ln = n - ihl;
		uint32_t src = get32(b + 12), dst = get32(b + 16);
		switch (b[9]) {
		case TERN_IPPROTO_TCP_:
			if (ln >= 18) {
				put16(l4 + 16, 0);
				put16(l4 + 16, fz_fold(fz_sum(l4, ln, fz_pseudo(src, dst, 6,
										 (uint32_t)ln))));
			}
			break;
		case TERN_IPPROTO_UDP:
			if (ln >= 8) {
				put16(l4 + 6, 0);
				if (!(fix & FZ_FIX_UDP_NOSUM)) {
					uint16_t c = fz_fold(
						fz_sum(l4, ln, fz_pseudo(src, dst, 17, (uint32_t)ln)));
					put16(l4 + 6, c ? c : 0xffff);
				}
			}
			break;
		case TERN_IPPROTO_ICMP:
			if (ln >= 4) {
				put16(l4 + 2, 0);
				put16(l4 + 2, fz_fold(fz_sum(l4, ln, 0)));
			}
			break;
		}
	}
	if (ihl >= 20 && ihl <= n && !(fix & FZ_FIX_KEEP_IPSUM)) {
		put16(b + 10, 0);
		put16(b + 10, fz_fold(fz_sum(b, ihl, 0)));
	}
}

static const uint16_t flag_table[] = {
	TERN_TH_ACK,
	TERN_TH_ACK | TERN_TH_PSH,
	TERN_TH_ACK | TERN_TH_FIN,
	TERN_TH_SYN,
	TERN_TH_SYN | TERN_TH_ACK,
	TERN_TH_RST,
	TERN_TH_RST | TERN_TH_ACK,
	TERN_TH_ACK | TERN_TH_PSH | TERN_TH_FIN,
	TERN_TH_ACK | TERN_TH_URG,
	TERN_TH_ACK | TERN_TH_URG | TERN_TH_PSH,
	0,
	TERN_TH_FIN,
	TERN_TH_SYN | TERN_TH_FIN,
	TERN_TH_SYN | TERN_TH_RST,
	TERN_TH_ACK | TERN_TH_ECE | TERN_TH_CWR,
	TERN_TH_SYN | TERN_TH_ECE | TERN_TH_CWR,
	TERN_TH_ACK | TERN_TH_AE,
	TERN_TH_ACK | TERN_TH_RST | TERN_TH_FIN,
};

static uint16_t read_flags(struct fz_rd *r)
{
	uint8_t f = fz_u8(r);
	if (f < FZ_FLAGS_TABLE)
		return flag_table[f % (sizeof(flag_table) / sizeof(flag_table[0]))];
	return f;
}

static uint32_t peer_tsval(const struct fz_world *w)
{
	return (uint32_t)(w->now / 1000) + w->peer_ts;
}

/* Options per the selector byte (see FZ_OPTS_RAW); c may be NULL. Returns their length,
 * padded to a multiple of 4. */
static size_t read_opts(struct fz_world *w, struct fz_rd *r, struct fz_conn *c, bool syn,
			uint8_t *o)
{
	uint8_t sel = fz_u8(r);
	struct tern_tcp_opts t;
	memset(&t, 0, sizeof(t));
	if (sel >= FZ_OPTS_RAW) {
		size_t n = fz_u8(r) % 41, got;
		const uint8_t *p = fz_bytes(r, n, &got);
		memcpy(o, p, got);
		memset(o + got, 0, 44 - got);
		return (n + 3) & ~(size_t)3;
	}
	if (sel == 0) {
		/* What the connection uses: a SYN offers everything, later segments carry
		 * timestamps once they were agreed. */
		if (syn) {
			t.has = TERN_OPT_MSS | TERN_OPT_WSCALE | TERN_OPT_SACK_PERM | TERN_OPT_TS;
			t.mss = 1460;
			t.wscale = 7;
			t.ts_val = peer_tsval(w);
		} else if (c && c->ts) {
			t.has = TERN_OPT_TS;
			t.ts_val = peer_tsval(w);
			t.ts_ecr = c->ts_recent;
		}
		return tern_tcp_opts_build(o, &t);
	}
	if (sel & FZ_O_MSS) {
		t.has |= TERN_OPT_MSS;
		t.mss = (uint16_t)(fz_u16(r) ^ 1460);
	}
	if (sel & FZ_O_WS) {
		t.has |= TERN_OPT_WSCALE;
		t.wscale = fz_u8(r);
	}
	if (sel & FZ_O_SACKP)
		t.has |= TERN_OPT_SACK_PERM;
	if ((sel & FZ_O_TS) || (!(sel & FZ_O_NOTS) && c && c->ts)) {
		t.has |= TERN_OPT_TS;
		t.ts_val = peer_tsval(w) + (uint32_t)(int8_t)fz_u8(r) * 1000u;
		t.ts_ecr = (c ? c->ts_recent : 0) + (uint32_t)(int8_t)fz_u8(r);
	}
	if (sel & FZ_O_SACK) {
		/* Blocks near what the stack has sent: the base is its highest sequence
		 * number, so that some of them cover data in flight. */
		uint32_t base = c ? c->rcv_nxt : fz_u32(r);
		t.has |= TERN_OPT_SACK;
		t.nsack = (uint8_t)(fz_u8(r) % 5);
		for (unsigned i = 0; i < t.nsack; i++) {
			t.sack[i].left = base - fz_u16(r);
			t.sack[i].right = t.sack[i].left + fz_u16(r);
		}
	}
	return tern_tcp_opts_build(o, &t);
}

static size_t tcp_seg(uint8_t *b, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
		      uint32_t seq, uint32_t ack, uint16_t flags, uint16_t win, uint16_t urp,
		      const uint8_t *opts, size_t optlen, size_t paylen, uint8_t pat)
{
	uint8_t *t = b + 20;
	memset(t, 0, 20);
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)((((20 + optlen) / 4) << 4) | ((flags >> 8) & 1));
	t[13] = (uint8_t)flags;
	put16(t + 14, win);
	put16(t + 18, urp);
	memcpy(t + 20, opts, optlen);
	fill_pattern(t + 20 + optlen, paylen, pat);
	size_t n = 20 + 20 + optlen + paylen;
	ip_header(b, src, dst, TERN_IPPROTO_TCP_, n);
	return n;
}

static uint32_t read_seq(struct fz_rd *r, const struct fz_conn *c, bool *exact)
{
	uint8_t m = fz_u8(r) % 8;
	*exact = m == FZ_SEQ_EXACT;
	switch (m) {
	case FZ_SEQ_NEAR:
		return c->snd_nxt + (uint32_t)(int8_t)fz_u8(r);
	case FZ_SEQ_AHEAD:
		return c->snd_nxt + fz_u16(r);
	case FZ_SEQ_BEHIND:
		return c->snd_nxt - fz_u16(r);
	case FZ_SEQ_ABS:
		return fz_u32(r);
	case FZ_SEQ_WIN_EDGE:
		return c->snd_nxt + ((uint32_t)c->win << c->ws) + (uint32_t)(int8_t)fz_u8(r);
	case FZ_SEQ_MINUS1:
		return c->snd_nxt - 1;
	case FZ_SEQ_ISN:
		return c->irs;
	default:
		return c->snd_nxt;
	}
}

static uint32_t read_ack(struct fz_rd *r, const struct fz_conn *c)
{
	switch (fz_u8(r) % 8) {
	case FZ_ACK_NEAR:
		return c->rcv_nxt + (uint32_t)(int8_t)fz_u8(r);
	case FZ_ACK_BEHIND16:
		return c->rcv_nxt - fz_u16(r);
	case FZ_ACK_BEHIND8:
		return c->rcv_nxt - fz_u8(r);
	case FZ_ACK_ABS:
		return fz_u32(r);
	case FZ_ACK_ISN:
		return c->iss + fz_u8(r);
	case FZ_ACK_AHEAD:
		return c->rcv_nxt + fz_u16(r);
	case FZ_ACK_DUP:
		return c->last_ack;
	default:
		return c->rcv_nxt;
	}
}

static uint32_t read_remote(struct fz_rd *r)
{
	switch (fz_u8(r) % 4) {
	case 1:
		return FZ_PEER2;
	case 2:
		return 0x0a0000feu; /* a router on the way */
	case 3:
		return fz_u32(r);
	default:
		return FZ_PEER;
	}
}

static uint32_t read_local(struct fz_rd *r)
{
	switch (fz_u8(r) % 3) {
	case 1:
		return FZ_LOCAL2;
	case 2:
		return fz_u32(r);
	default:
		return FZ_LOCAL;
	}
}

/* One datagram of the input into b; returns its length. */
static size_t read_dgram(struct fz_world *w, struct fz_rd *r, uint8_t *b)
{
	uint8_t opts[48];
	size_t n = 0;
	uint8_t t = fz_u8(r) % FZ_T_COUNT;

	if (t == FZ_T_CONN && w->nconns == 0)
		t = FZ_T_TCP_OTHER;
	switch (t) {
	case FZ_T_CONN: {
		struct fz_conn *c = &w->conns[fz_u8(r) % w->nconns];
		uint16_t flags = read_flags(r);
		bool exact;
		uint32_t seq = read_seq(r, c, &exact);
		uint32_t ack = read_ack(r, c);
		uint16_t win = (uint16_t)(65535 - fz_u16(r));
		uint16_t urp = (flags & TERN_TH_URG) ? fz_u16(r) : 0;
		size_t ol = read_opts(w, r, c, flags & TERN_TH_SYN, opts);
		uint16_t pl = fz_u16(r) % 2049;
		n = tcp_seg(b, c->raddr, c->laddr, c->rport, c->lport, seq, ack, flags, win, urp,
			    opts, ol, pl, (uint8_t)pl);
		/* Assume the stack takes what was sent in order; its next ACK corrects this. */
		if (exact)
			c->snd_nxt += pl + !!(flags & TERN_TH_SYN) + !!(flags & TERN_TH_FIN);
		if (flags & TERN_TH_ACK)
			c->last_ack = ack;
		break;
	}
	case FZ_T_SYN: {
		uint16_t port = (uint16_t)(FZ_PEER_PORT_BASE + 100 + fz_u8(r));
		uint8_t f = fz_u8(r);
		uint16_t flags = f ? f : TERN_TH_SYN;
		uint32_t seq = fz_u32(r);
		uint16_t win = (uint16_t)(65535 - fz_u16(r));
		size_t ol = read_opts(w, r, NULL, true, opts);
		n = tcp_seg(b, FZ_PEER, FZ_LOCAL, port, FZ_LISTEN_PORT, seq, 0, flags, win, 0, opts,
			    ol, 0, 0);
		break;
	}
	case FZ_T_TCP_OTHER: {
		uint32_t src = read_remote(r), dst = read_local(r);
		uint16_t sport = (uint16_t)(fz_u16(r) ^ 40999), dport = (uint16_t)(fz_u16(r) ^ 80);
		uint16_t flags = read_flags(r);
		uint32_t seq = fz_u32(r), ack = fz_u32(r);
		uint16_t win = (uint16_t)(65535 - fz_u16(r));
		size_t ol = read_opts(w, r, NULL, flags & TERN_TH_SYN, opts);
		uint16_t pl = fz_u16(r) % 1461;
		n = tcp_seg(b, src, dst, sport, dport, seq, ack, flags, win, 0, opts, ol, pl,
			    (uint8_t)pl);
		break;
	}
	case FZ_T_UDP: {
		uint32_t src = read_remote(r), dst = read_local(r);
		uint16_t sport = (uint16_t)(fz_u16(r) ^ FZ_UDP_PEER_PORT), dport;
		switch (fz_u8(r) % 4) {
		case 1: dport = FZ_UDP_PORT1; break;
		case 2: dport = 6000; break; /* nobody's */
		case 3: dport = fz_u16(r); break;
		default: dport = FZ_UDP_PORT0; break;
		}
		uint16_t pl = fz_u16(r) % 1601;
		uint8_t *u = b + 20;
		put16(u, sport);
		put16(u + 2, dport);
		put16(u + 4, (uint16_t)(8 + pl));
		put16(u + 6, 0);
		fill_pattern(u + 8, pl, (uint8_t)pl);
		n = 28u + pl;
		ip_header(b, src, dst, TERN_IPPROTO_UDP, n);
		break;
	}
	case FZ_T_ECHO: {
		uint32_t src = read_remote(r), dst = read_local(r);
		uint8_t *m = b + 20;
		uint16_t pl = fz_u16(r) % 2049;
		m[0] = 8;
		m[1] = fz_u8(r);
		put16(m + 2, 0);
		put32(m + 4, fz_u32(r));
		fill_pattern(m + 8, pl, (uint8_t)pl);
		n = 28u + pl;
		ip_header(b, src, dst, TERN_IPPROTO_ICMP, n);
		b[6] = 0; /* pings need no DF */
		break;
	}
	case FZ_T_ICMP_ERR: {
		static const uint8_t types[] = {3, 3, 3, 11, 12, 4, 5, 0};
		uint32_t src = read_remote(r);
		uint8_t ty = types[fz_u8(r) % 8], code = fz_u8(r);
		if (ty == 3 && code == 0)
			code = 3; /* the plain case: port unreachable */
		uint32_t rest = fz_u32(r);
		uint8_t q = fz_u8(r);
		uint8_t *m = b + 20;
		m[0] = ty;
		m[1] = code;
		put16(m + 2, 0);
		put32(m + 4, rest);
		size_t ql;
		if (w->ring_count && q < 0xf0) {
			/* A datagram the stack sent, coming back: its header and some of what
			 * follows (RFC 792 asks for 8 bytes, RFC 1812 allows more). */
			unsigned i = (w->ring_next + FZ_RING - 1 - q % w->ring_count) % FZ_RING;
			ql = w->ring_len[i];
			if (ql > 28 && !(q & 0x80))
				ql = 28;
			memcpy(m + 8, w->ring[i], ql);
		} else {
			size_t got;
			const uint8_t *p = fz_bytes(r, fz_u8(r) % 64, &got);
			memcpy(m + 8, p, got);
			ql = got;
		}
		n = 28 + ql;
		ip_header(b, src, FZ_LOCAL, TERN_IPPROTO_ICMP, n);
		break;
	}
	case FZ_T_IP: {
		size_t olen = (fz_u8(r) % 11) * 4, got;
		uint8_t proto = (uint8_t)(fz_u8(r) ^ TERN_IPPROTO_TCP_);
		uint32_t src = read_remote(r), dst = read_local(r);
		uint16_t frag = fz_u16(r);
		uint8_t ttl = fz_u8(r);
		size_t pl = fz_u16(r) % 2049;
		ip_header(b, src, dst, proto, 20 + olen + pl);
		b[0] = (uint8_t)(0x40 | (5 + olen / 4));
		b[1] = fz_u8(r);
		put16(b + 6, frag);
		b[8] = (uint8_t)(64 ^ ttl);
		const uint8_t *p = fz_bytes(r, olen + pl, &got);
		memcpy(b + 20, p, got);
		memset(b + 20 + got, 0, olen + pl - got);
		n = 20 + olen + pl;
		break;
	}
	default: { /* FZ_T_RAW */
		size_t got;
		const uint8_t *p = fz_bytes(r, fz_u16(r), &got);
		memcpy(b, p, got);
		n = got;
		break;
	}
	}

	unsigned edits = fz_u8(r) % 8;
	for (unsigned i = 0; i < edits; i++) {
		uint16_t off = fz_u16(r);
		uint8_t op = fz_u8(r) % FZ_E_COUNT, v = fz_u8(r);
		switch (op) {
		case FZ_E_SET:
			if (n)
				b[off % n] = v;
			break;
		case FZ_E_XOR:
			if (n)
				b[off % n] ^= (uint8_t)(v ? v : 1);
			break;
		case FZ_E_ADD:
			if (n)
				b[off % n] = (uint8_t)(b[off % n] + v);
			break;
		case FZ_E_TRUNC:
			n = off % (n + 1);
			break;
		default: /* FZ_E_GROW */
			if (n + v <= FZ_PKT_CAP) {
				fill_pattern(b + n, v, v);
				n += v;
			}
			break;
		}
	}
	fix_up(b, n, fz_u8(r));
	return n;
}

/* ---- socket calls ---- */

static int read_fd(struct fz_world *w, struct fz_rd *r)
{
	uint8_t s = fz_u8(r);
	if (s == 0xff)
		return 4242; /* never handed out */
	if (s == 0xfe)
		return -1;
	return w->nfds ? w->fds[s % w->nfds] : -1;
}

static struct tern_sockaddr read_addr(struct fz_rd *r)
{
	struct tern_sockaddr a;
	switch (fz_u8(r) % 7) {
	case 1: a.addr = FZ_PEER2; break;
	case 2: a.addr = FZ_LOCAL; break;
	case 3: a.addr = FZ_LOCAL2; break;
	case 4: a.addr = 0; break;
	case 5: a.addr = fz_u32(r) & 0xdfffffffu; break; /* no multicast: see check_out */
	case 6: a.addr = 0xffffffffu; break;
	default: a.addr = FZ_PEER; break;
	}
	a.port = (uint16_t)(fz_u16(r) ^ 80);
	return a;
}

static const struct {
	int level, name;
} sockopts[] = {
	{TERN_SOL_SOCKET, TERN_SO_REUSEADDR}, {TERN_SOL_SOCKET, TERN_SO_ERROR},
	{TERN_SOL_SOCKET, TERN_SO_SNDBUF},    {TERN_SOL_SOCKET, TERN_SO_RCVBUF},
	{TERN_SOL_SOCKET, TERN_SO_KEEPALIVE}, {TERN_SOL_SOCKET, TERN_SO_LINGER},
	{TERN_IPPROTO_TCP, TERN_TCP_NODELAY}, {TERN_IPPROTO_TCP, TERN_TCP_MAXSEG},
	{TERN_IPPROTO_TCP, TERN_TCP_CORK},    {TERN_IPPROTO_TCP, TERN_TCP_KEEPIDLE},
	{TERN_IPPROTO_TCP, TERN_TCP_KEEPINTVL}, {TERN_IPPROTO_TCP, TERN_TCP_KEEPCNT},
	{TERN_IPPROTO_TCP, TERN_TCP_SYNCNT},  {TERN_IPPROTO_TCP, TERN_TCP_LINGER2},
	{TERN_IPPROTO_TCP, TERN_TCP_INFO},    {TERN_IPPROTO_TCP, TERN_TCP_CONGESTION},
	{TERN_IPPROTO_TCP, TERN_TCP_USER_TIMEOUT}, {TERN_IPPROTO_TCP, TERN_TCP_STATE},
	{TERN_IPPROTO_TCP, 99},               {7, 1},
};
#define N_SOCKOPTS (sizeof(sockopts) / sizeof(sockopts[0]))

static void check_info(int rc, const struct tern_tcp_info *ti)
{
	if (rc != 0)
		return;
	FZ_CHECK(ti->state >= 1 && ti->state < TERN_STATE_MAX, "tcp_info state %u", ti->state);
	FZ_CHECK(seq_le(ti->snd_una, ti->snd_nxt), "snd_una %u after snd_nxt %u", ti->snd_una,
		 ti->snd_nxt);
	FZ_CHECK(ti->snd_queue <= (1u << 30) && ti->rcv_queue <= (1u << 30),
		 "queues %u %u", ti->snd_queue, ti->rcv_queue);
}

static void do_api(struct fz_world *w, struct fz_rd *r)
{
	struct tern_stack *st = w->st;
	uint8_t call = fz_u8(r) % FZ_API_COUNT;
	int fd = read_fd(w, r);
	long rc;

	switch (call) {
	case FZ_API_RECV: {
		size_t len = fz_u16(r);
		uint8_t f = fz_u8(r);
		int flags = ((f & 1) ? TERN_MSG_PEEK : 0) | ((f & 2) ? TERN_MSG_TRUNC : 0);
		if (f & 4) {
			struct tern_sockaddr from;
			rc = tern_recvfrom(st, fd, g_rx, len, flags, &from);
		} else {
			rc = tern_recv(st, fd, g_rx, len, flags);
		}
		FZ_CHECK(rc < 0 || (size_t)rc <= len || (flags & TERN_MSG_TRUNC),
			 "recv of %zu returned %ld", len, rc);
		break;
	}
	case FZ_API_SEND: {
		size_t len = fz_u16(r);
		uint8_t f = fz_u8(r);
		fill_pattern(g_data, len, f);
		rc = tern_send(st, fd, g_data, len, (f & 1) ? TERN_MSG_OOB : 0);
		FZ_CHECK(rc < 0 || (size_t)rc <= len, "send of %zu returned %ld", len, rc);
		break;
	}
	case FZ_API_CLOSE:
		if (tern_close(st, fd) == 0)
			fds_remove(w, fd);
		break;
	case FZ_API_ABORT:
		if (tern_abort(st, fd) == 0)
			fds_remove(w, fd);
		break;
	case FZ_API_SHUTDOWN:
		tern_shutdown(st, fd, fz_u8(r) % 4);
		break;
	case FZ_API_ACCEPT: {
		struct tern_sockaddr peer;
		int nfd = tern_accept(st, fd, (fz_u8(r) & 1) ? NULL : &peer);
		if (nfd >= 0)
			fds_add(w, nfd);
		break;
	}
	case FZ_API_SOCKET: {
		fds_add(w, tern_socket(st, fz_u8(r) % 3 + 1));
		break;
	}
	case FZ_API_CONNECT: {
		struct tern_sockaddr a = read_addr(r);
		tern_connect(st, fd, &a);
		break;
	}
	case FZ_API_BIND: {
		struct tern_sockaddr a = read_addr(r);
		if (a.addr == FZ_PEER)
			a.addr = 0; /* mostly the wildcard, which read_addr does not favour */
		tern_bind(st, fd, &a);
		break;
	}
	case FZ_API_LISTEN:
		tern_listen(st, fd, (int8_t)fz_u8(r));
		break;
	case FZ_API_SETSOCKOPT: {
		unsigned o = fz_u8(r) % N_SOCKOPTS;
		uint32_t v = fz_u32(r);
		uint8_t lsel = fz_u8(r);
		union {
			int i;
			struct tern_linger l;
			char s[16];
		} val;
		size_t len = sizeof(int);
		memset(&val, 0, sizeof(val));
		if (sockopts[o].name == TERN_SO_LINGER && sockopts[o].level == TERN_SOL_SOCKET) {
			val.l.l_onoff = (int)(v & 1);
			val.l.l_linger = (int)((v >> 1) % 200);
			len = sizeof(val.l);
		} else if (sockopts[o].name == TERN_TCP_CONGESTION &&
			   sockopts[o].level == TERN_IPPROTO_TCP) {
			memcpy(val.s, (v & 1) ? "reno" : "cubic\xff", (v & 1) ? 5 : 7);
			len = (v & 1) ? 4 : 7;
		} else if (sockopts[o].name == TERN_TCP_USER_TIMEOUT &&
			   sockopts[o].level == TERN_IPPROTO_TCP) {
			/* Up to 4000 s: enough for more than 255 timeouts at rto_max (the
			 * regression input user-timeout-past-255-rtos), while a timeout of days
			 * would only be thousands more retransmissions before the drain ends. */
			val.i = (int)(v % 4000000);
		} else {
			val.i = (int)v;
		}
		if (lsel)
			len = lsel % (sizeof(val) + 1);
		tern_setsockopt(st, fd, sockopts[o].level, sockopts[o].name, &val, len);
		break;
	}
	case FZ_API_GETSOCKOPT: {
		unsigned o = fz_u8(r) % N_SOCKOPTS;
		uint8_t lsel = fz_u8(r);
		union {
			int i;
			struct tern_tcp_info ti;
			char s[16];
		} val;
		size_t len = lsel ? (size_t)lsel % (sizeof(val) + 1) : sizeof(val);
		size_t cap = len;
		memset(&val, 0, sizeof(val));
		int grc = tern_getsockopt(st, fd, sockopts[o].level, sockopts[o].name, &val, &len);
		FZ_CHECK(grc < 0 || len <= cap, "getsockopt wrote %zu bytes in %zu", len, cap);
		break;
	}
	case FZ_API_RECV_ZC: {
		struct tern_iovec iov[2];
		unsigned n = 0;
		rc = tern_recv_zc(st, fd, iov, &n);
		uint16_t take = fz_u16(r);
		if (rc > 0) {
			FZ_CHECK(n >= 1 && n <= 2 && iov[0].len + (n > 1 ? iov[1].len : 0) ==
							     (size_t)rc,
				 "recv_zc %ld in %u pieces", rc, n);
			/* Read every byte: ASan catches pieces that point outside the ring. */
			uint8_t x = 0;
			for (unsigned i = 0; i < n; i++)
				for (size_t k = 0; k < iov[i].len; k++)
					x ^= ((const uint8_t *)iov[i].base)[k];
			g_rx[0] = x;
		}
		tern_recv_consume(st, fd, take);
		break;
	}
	case FZ_API_SEND_ZC: {
		struct tern_wiovec iov[2];
		unsigned n = 0;
		rc = tern_send_zc(st, fd, iov, &n);
		uint16_t put = fz_u16(r);
		uint8_t f = fz_u8(r);
		if (rc > 0) {
			FZ_CHECK(n >= 1 && n <= 2, "send_zc in %u pieces", n);
			for (unsigned i = 0; i < n; i++)
				fill_pattern(iov[i].base, iov[i].len, f);
		}
		tern_send_commit(st, fd, put, (f & 1) ? TERN_MSG_OOB : 0);
		break;
	}
	case FZ_API_QUERY: {
		struct tern_tcp_info ti;
		struct tern_sockaddr a;
		int s = tern_sock_state(st, fd);
		FZ_CHECK(s < 0 || (s >= 1 && s < TERN_STATE_MAX), "sock_state %d", s);
		check_info(tern_sock_info(st, fd, &ti), &ti);
		tern_getsockname(st, fd, &a);
		tern_getpeername(st, fd, &a);
		tern_sockatmark(st, fd);
		tern_sock_events(st, fd);
		break;
	}
	case FZ_API_EVENTS: {
		struct tern_event ev[16];
		int max = fz_u8(r) % 17;
		int n = tern_stack_events(st, ev, max);
		FZ_CHECK(n >= 0 && n <= max, "stack_events %d of %d", n, max);
		for (int i = 0; i < n; i++)
			FZ_CHECK(ev[i].fd >= 0, "event for fd %d", ev[i].fd);
		break;
	}
	case FZ_API_SENDTO: {
		struct tern_sockaddr a = read_addr(r);
		size_t len = fz_u16(r) % 1601;
		uint8_t f = fz_u8(r);
		fill_pattern(g_data, len, f);
		tern_sendto(st, fd, g_data, len, (f & 1) ? TERN_MSG_OOB : 0, (f & 2) ? NULL : &a);
		break;
	}
	default: /* FZ_API_LINK_FAIL */
		w->link_fail = fz_u8(r) % 16;
		break;
	}
}

/* ---- time ---- */

static void clock_to(struct fz_world *w, uint64_t t)
{
	if (t > w->now)
		w->now = t;
	tern_stack_poll(w->st, w->now);
}

/* Every timer due up to t, each at its own deadline while the budget lasts, then t. */
static void run_until(struct fz_world *w, uint64_t t)
{
	while (w->timer_budget) {
		uint64_t nt = tern_stack_next_timer(w->st);
		if (nt == TERN_TIME_NEVER || nt > t)
			break;
		w->timer_budget--;
		clock_to(w, nt);
	}
	clock_to(w, t);
}

static void do_time(struct fz_world *w, struct fz_rd *r)
{
	uint64_t nt;
	switch (fz_u8(r) % FZ_TIME_COUNT) {
	case FZ_TIME_US:
		clock_to(w, w->now + fz_u8(r));
		break;
	case FZ_TIME_MS:
		run_until(w, w->now + 1000u * fz_u8(r));
		break;
	case FZ_TIME_MS16:
		run_until(w, w->now + 1000u * fz_u16(r));
		break;
	case FZ_TIME_S:
		run_until(w, w->now + 1000000u * fz_u8(r));
		break;
	case FZ_TIME_S16_JUMP:
		clock_to(w, w->now + 1000000ull * fz_u16(r));
		break;
	case FZ_TIME_NEXT:
		nt = tern_stack_next_timer(w->st);
		if (nt != TERN_TIME_NEVER)
			clock_to(w, nt);
		break;
	case FZ_TIME_BEFORE:
		nt = tern_stack_next_timer(w->st);
		if (nt != TERN_TIME_NEVER && nt > 0)
			clock_to(w, nt - 1);
		break;
	default: { /* FZ_TIME_TIMERS */
		unsigned k = fz_u8(r);
		while (k-- && w->timer_budget) {
			nt = tern_stack_next_timer(w->st);
			if (nt == TERN_TIME_NEVER)
				break;
			w->timer_budget--;
			clock_to(w, nt);
		}
		break;
	}
	}
}

/* ---- records ---- */

void fz_world_step(struct fz_world *w, struct fz_rd *r, bool allow_time)
{
	switch (fz_u8(r) % FZ_OP_COUNT) {
	case FZ_OP_BATCH: {
		struct tern_iovec iov[8];
		unsigned n = fz_u8(r) % 8 + 1;
		for (unsigned i = 0; i < n; i++) {
			iov[i].base = g_pkt[i];
			iov[i].len = read_dgram(w, r, g_pkt[i]);
		}
		tern_stack_input_batch(w->st, iov, n, w->now);
		break;
	}
	case FZ_OP_API:
		do_api(w, r);
		break;
	case FZ_OP_TIME:
		if (allow_time) {
			do_time(w, r);
		} else {
			/* Read the step all the same, so that one input means the same
			 * records to both targets. */
			uint8_t kind = fz_u8(r) % FZ_TIME_COUNT;
			if (kind == FZ_TIME_MS16 || kind == FZ_TIME_S16_JUMP)
				fz_u16(r);
			else if (kind != FZ_TIME_NEXT && kind != FZ_TIME_BEFORE)
				fz_u8(r);
		}
		break;
	default: { /* FZ_OP_DGRAM, FZ_OP_DGRAM2 */
		size_t n = read_dgram(w, r, g_pkt[0]);
		tern_stack_input(w->st, g_pkt[0], n, w->now);
		break;
	}
	}
}

/* ---- invariants ---- */

struct walk {
	size_t n;
};

static void walk_cb(void *user, const struct tern_conn_info *c)
{
	struct walk *k = user;
	k->n++;
	FZ_CHECK(c->state >= 1 && c->state < TERN_STATE_MAX, "connection %u in state %d", c->id,
		 c->state);
	FZ_CHECK(c->fd >= -1, "connection %u with fd %d", c->id, c->fd);
	FZ_CHECK(c->snd_queue <= (1u << 30) && c->rcv_queue <= (1u << 30),
		 "connection %u queues %u %u", c->id, c->snd_queue, c->rcv_queue);
	FZ_CHECK(c->state != TERN_STATE_LISTEN || c->raddr == 0, "listener with a peer");
}

void fz_world_check(struct fz_world *w)
{
	struct tern_stack *st = w->st;
	struct walk k = {0};
	size_t n = tern_stack_foreach(st, walk_cb, &k);
	FZ_CHECK(n == k.n, "foreach said %zu, called %zu times", n, k.n);
	FZ_CHECK(st->n_tcb <= w->set.max_connections, "%u control blocks, max_connections %u",
		 st->n_tcb, w->set.max_connections);
	FZ_CHECK(st->n_tw <= w->set.max_tw_buckets, "%u TIME_WAIT records, max %u", st->n_tw,
		 w->set.max_tw_buckets);
	/* A socket that is neither bound nor connected holds a control block but is not
	 * listed, so foreach may list fewer. */
	FZ_CHECK(n <= (size_t)st->n_tcb + st->n_tw, "foreach lists %zu, stack holds %u + %u", n,
		 st->n_tcb, st->n_tw);
	FZ_CHECK(tern_stack_now(st) == w->now, "stack clock %llu, world %llu",
		 (unsigned long long)tern_stack_now(st), (unsigned long long)w->now);
	for (unsigned i = 0; i < w->nfds; i++) {
		int ev = tern_sock_events(st, w->fds[i]);
		FZ_CHECK(ev >= 0, "held fd %d: events %d", w->fds[i], ev);
	}
}

/* ---- life cycle and the setup ---- */

static struct fz_conn *last_conn(struct fz_world *w)
{
	return w->nconns ? &w->conns[w->nconns - 1] : NULL;
}

/* A segment from the peer on c, in order, acknowledging everything. */
static void seg_conn(struct fz_world *w, struct fz_conn *c, uint16_t flags, size_t len,
		     uint32_t ack_back)
{
	uint8_t opts[48];
	size_t ol = 0;
	if (!c)
		return;
	if (c->ts) {
		struct tern_tcp_opts t;
		memset(&t, 0, sizeof(t));
		t.has = TERN_OPT_TS;
		t.ts_val = peer_tsval(w);
		t.ts_ecr = c->ts_recent;
		ol = tern_tcp_opts_build(opts, &t);
	}
	size_t n = tcp_seg(g_pkt[0], c->raddr, c->laddr, c->rport, c->lport, c->snd_nxt,
			   c->rcv_nxt - ack_back, flags, 65535, 0, opts, ol, len, 0x41);
	fix_up(g_pkt[0], n, 0);
	c->snd_nxt += (uint32_t)len + !!(flags & TERN_TH_SYN) + !!(flags & TERN_TH_FIN);
	tern_stack_input(w->st, g_pkt[0], n, w->now);
}

/* The peer's SYN to the listener from rport; the SYN-ACK registers the connection. */
static struct fz_conn *syn_in(struct fz_world *w, uint16_t rport, bool every_option)
{
	uint8_t opts[48];
	struct tern_tcp_opts t;
	memset(&t, 0, sizeof(t));
	t.has = TERN_OPT_MSS;
	t.mss = 1460;
	if (every_option) {
		t.has |= TERN_OPT_WSCALE | TERN_OPT_SACK_PERM | TERN_OPT_TS;
		t.wscale = 7;
		t.ts_val = peer_tsval(w);
	}
	size_t ol = tern_tcp_opts_build(opts, &t);
	uint32_t irs = 0x10000000u * (rport % 16) + 12345;
	size_t n = tcp_seg(g_pkt[0], FZ_PEER, FZ_LOCAL, rport, FZ_LISTEN_PORT, irs, 0,
			   TERN_TH_SYN, 65535, 0, opts, ol, 0, 0);
	fix_up(g_pkt[0], n, 0);
	tern_stack_input(w->st, g_pkt[0], n, w->now);
	return conn_find(w, FZ_LOCAL, FZ_LISTEN_PORT, FZ_PEER, rport);
}

static struct fz_conn *open_passive(struct fz_world *w, unsigned idx, bool every_option,
				    int *fd)
{
	struct fz_conn *c = syn_in(w, (uint16_t)(FZ_PEER_PORT_BASE + idx), every_option);
	seg_conn(w, c, TERN_TH_ACK, 0, 0);
	*fd = tern_accept(w->st, w->lfd, NULL);
	fds_add(w, *fd);
	return c;
}

static void apply_settings(struct tern_settings *s, uint8_t b)
{
	tern_settings_default(s);
	s->seed = 0x7465726e66757a7aull;
	if (b & FZ_SET_SMALL_BUFS) {
		s->rmem_default = 2048;
		s->wmem_default = 2048;
	}
	if (b & FZ_SET_TIGHT) {
		s->max_tw_buckets = 2;
		s->max_orphans = 2;
		s->max_syn_backlog = 2;
		s->somaxconn = 4;
		s->mem_max = 96 * 1024;
		s->max_connections = 10;
		s->max_sockets = 12;
		s->port_range_lo = 50000;
		s->port_range_hi = 50003;
	}
	if (b & FZ_SET_FAST) {
		s->msl_ms = 1000;
		s->fin_timeout_ms = 2000;
		s->keepalive_time_ms = 5000;
		s->keepalive_intvl_ms = 1000;
		s->keepalive_probes = 2;
		s->syn_retries = 2;
		s->synack_retries = 1;
		s->retries2 = 3;
		s->orphan_retries = 1;
		s->rto_max_ms = 4000;
		s->rto_min_ms = 50;
		s->rto_initial_ms = 300;
	}
	if (b & FZ_SET_OVERFLOW) {
		s->abort_on_overflow = 1;
		s->icmp_ratelimit_ms = 10;
		s->icmp_msgs_per_sec = 2;
		s->icmp_msgs_burst = 2;
	}
	if (b & FZ_SET_SMALL_MTU)
		s->mtu = 576;
	if (b & FZ_SET_NO_OPTS) {
		s->timestamps = 0;
		s->sack = 0;
		s->window_scaling = 0;
	}
}

static void dump_cb(void *user, const struct tern_conn_info *c)
{
	(void)user;
	fprintf(stderr, "  left: id %u fd %d %s %08x:%u -> %08x:%u\n", c->id, c->fd,
		tern_state_name(c->state), c->laddr, c->lport, c->raddr, c->rport);
}

struct fz_world *fz_world_new(uint8_t settings)
{
	struct fz_world *w = calloc(1, sizeof(*w));
	FZ_CHECK(w != NULL, "out of memory");
	apply_settings(&w->set, settings);
	w->now = FZ_T0;
	w->timer_budget = FZ_TIMER_BUDGET;
	w->peer_ts = 0x1000;
	w->st = tern_stack_new(&w->set, w->now);
	FZ_CHECK(w->st != NULL, "tern_stack_new failed");
	w->set = *tern_stack_settings(w->st);
	w->link_flags = ((settings & FZ_SET_CSUM_RX) ? TERN_LINK_CSUM_RX : 0) |
			((settings & FZ_SET_CSUM_TX) ? TERN_LINK_CSUM_TX : 0);
	struct tern_link link = {.transmit = fz_transmit, .ctx = w, .flags = w->link_flags};
	tern_stack_set_link(w->st, &link);
	tern_stack_set_trace(w->st, fz_trace, w);
	tern_stack_add_addr(w->st, FZ_LOCAL);
	tern_stack_add_addr(w->st, FZ_LOCAL2);

	struct tern_stack *st = w->st;
	struct tern_sockaddr a = {0, FZ_LISTEN_PORT};
	w->lfd = tern_socket(st, TERN_SOCK_STREAM);
	tern_bind(st, w->lfd, &a);
	tern_listen(st, w->lfd, 16);
	fds_add(w, w->lfd);
	int u = tern_socket(st, TERN_SOCK_DGRAM);
	a.port = FZ_UDP_PORT0;
	tern_bind(st, u, &a);
	fds_add(w, u);
	u = tern_socket(st, TERN_SOCK_DGRAM);
	a.addr = FZ_LOCAL;
	a.port = FZ_UDP_PORT1;
	tern_bind(st, u, &a);
	a.addr = FZ_PEER;
	a.port = FZ_UDP_PEER_PORT;
	tern_connect(st, u, &a);
	fds_add(w, u);

	struct fz_conn *c;
	int fd;
	fill_pattern(g_data, 20000, 3);

	/* FZ_C_ESTAB: data unread, data in flight. */
	c = open_passive(w, FZ_C_ESTAB, true, &fd);
	seg_conn(w, c, TERN_TH_ACK | TERN_TH_PSH, 300, 0);
	tern_send(st, fd, g_data, 3000, 0);

	/* FZ_C_ESTAB_ACTIVE: the peer answers without options and with a small window, then
	 * sends data past a hole. */
	fd = tern_socket(st, TERN_SOCK_STREAM);
	fds_add(w, fd);
	a.addr = FZ_PEER;
	a.port = 8080;
	tern_connect(st, fd, &a);
	c = last_conn(w);
	if (c && c->rport == 8080) {
		uint8_t opts[8];
		struct tern_tcp_opts t;
		memset(&t, 0, sizeof(t));
		t.has = TERN_OPT_MSS;
		t.mss = 536;
		size_t ol = tern_tcp_opts_build(opts, &t);
		size_t n = tcp_seg(g_pkt[0], c->raddr, c->laddr, c->rport, c->lport, c->irs,
				   c->rcv_nxt, TERN_TH_SYN | TERN_TH_ACK, 4000, 0, opts, ol, 0, 0);
		fix_up(g_pkt[0], n, 0);
		c->snd_nxt = c->irs + 1;
		tern_stack_input(st, g_pkt[0], n, w->now);
		n = tcp_seg(g_pkt[0], c->raddr, c->laddr, c->rport, c->lport, c->snd_nxt + 100,
			    c->rcv_nxt, TERN_TH_ACK | TERN_TH_PSH, 4000, 0, opts, 0, 200, 9);
		fix_up(g_pkt[0], n, 0);
		tern_stack_input(st, g_pkt[0], n, w->now);
		tern_send(st, fd, g_data, 20000, 0);
	}

	/* FZ_C_FIN_WAIT_2 */
	c = open_passive(w, FZ_C_FIN_WAIT_2, true, &fd);
	tern_shutdown(st, fd, TERN_SHUT_WR);
	seg_conn(w, c, TERN_TH_ACK, 0, 0);
	/* FZ_C_FW2_ORPHAN */
	c = open_passive(w, FZ_C_FW2_ORPHAN, false, &fd);
	if (tern_close(st, fd) == 0)
		fds_remove(w, fd);
	seg_conn(w, c, TERN_TH_ACK, 0, 0);
	/* FZ_C_CLOSE_WAIT */
	c = open_passive(w, FZ_C_CLOSE_WAIT, true, &fd);
	seg_conn(w, c, TERN_TH_ACK | TERN_TH_PSH | TERN_TH_FIN, 100, 0);
	/* FZ_C_SYN_RCVD */
	syn_in(w, FZ_PEER_PORT_BASE + FZ_C_SYN_RCVD, true);
	/* FZ_C_TIME_WAIT */
	c = open_passive(w, FZ_C_TIME_WAIT, true, &fd);
	if (tern_close(st, fd) == 0)
		fds_remove(w, fd);
	seg_conn(w, c, TERN_TH_ACK | TERN_TH_FIN, 0, 0);
	/* FZ_C_FIN_WAIT_1 */
	c = open_passive(w, FZ_C_FIN_WAIT_1, false, &fd);
	tern_send(st, fd, g_data, 2000, 0);
	if (tern_close(st, fd) == 0)
		fds_remove(w, fd);
	/* FZ_C_SYN_SENT */
	fd = tern_socket(st, TERN_SOCK_STREAM);
	fds_add(w, fd);
	a.addr = FZ_PEER2;
	a.port = 9;
	tern_connect(st, fd, &a);
	/* FZ_C_LAST_ACK */
	c = open_passive(w, FZ_C_LAST_ACK, true, &fd);
	seg_conn(w, c, TERN_TH_ACK | TERN_TH_FIN, 0, 0);
	if (tern_close(st, fd) == 0)
		fds_remove(w, fd);
	/* FZ_C_CLOSING: the peer's FIN crosses ours (it does not acknowledge it). */
	c = open_passive(w, FZ_C_CLOSING, true, &fd);
	tern_shutdown(st, fd, TERN_SHUT_WR);
	seg_conn(w, c, TERN_TH_ACK | TERN_TH_FIN, 0, 1);
	/* FZ_C_ACCEPTQ */
	c = syn_in(w, FZ_PEER_PORT_BASE + FZ_C_ACCEPTQ, false);
	seg_conn(w, c, TERN_TH_ACK, 0, 0);

	clock_to(w, w->now + 1000);
	if (getenv("FUZZ_DEBUG_SETUP")) {
		for (unsigned i = 0; i < w->nconns; i++) {
			struct fz_conn *k = &w->conns[i];
			fprintf(stderr, "conn %u: :%u -> %08x:%u ts %d ws %u\n", i, k->lport,
				k->raddr, k->rport, k->ts, k->ws);
		}
		tern_stack_foreach(w->st, dump_cb, NULL);
	}
	fz_world_check(w);
	return w;
}

void fz_world_free(struct fz_world *w)
{
	if (!w)
		return;
	tern_stack_free(w->st);
	free(w);
}


void fz_world_drain(struct fz_world *w, struct fz_rd *r)
{
	struct tern_stack *st = w->st;
	while (w->nfds) {
		int fd = w->fds[w->nfds - 1];
		int rc = (fz_u8(r) & 1) ? tern_abort(st, fd) : tern_close(st, fd);
		FZ_CHECK(rc == 0, "closing held fd %d: %d", fd, rc);
		w->nfds--;
	}
	w->link_fail = 0;
	unsigned runs = 0;
	for (; runs < FZ_DRAIN_RUNS; runs++) {
		uint64_t nt = tern_stack_next_timer(st);
		if (nt == TERN_TIME_NEVER)
			break;
		if (getenv("FUZZ_DEBUG_DRAIN") && (runs < 40 || runs % 1000 == 0))
			fprintf(stderr, "drain run %u at %llu\n", runs, (unsigned long long)nt);
		clock_to(w, nt);
	}
	struct walk k = {0};
	size_t left = tern_stack_foreach(st, walk_cb, &k);
	if (left || runs == FZ_DRAIN_RUNS)
		tern_stack_foreach(st, dump_cb, NULL);
	FZ_CHECK(runs < FZ_DRAIN_RUNS, "timers still armed after %u runs", runs);
	FZ_CHECK(left == 0, "%zu connections left after everything was closed", left);
	FZ_CHECK(st->n_tcb == 0 && st->n_tw == 0 && st->n_orphans == 0 && st->n_udp == 0,
		 "left: %u control blocks, %u TIME_WAIT, %u orphans, %u UDP sockets", st->n_tcb,
		 st->n_tw, st->n_orphans, st->n_udp);
	FZ_CHECK(st->mem_bufs == 0, "%zu bytes of buffers left", st->mem_bufs);
	FZ_CHECK(st->ccount == 0 && st->ucount == 0 && st->bcount == 0,
		 "tables still hold %u connections, %u UDP sockets, %u ports", st->ccount,
		 st->ucount, st->bcount);
}

void fz_world_run(const uint8_t *data, size_t size, bool allow_time)
{
	struct fz_rd r = {data, size};
	struct fz_world *w = fz_world_new(fz_u8(&r));
	for (unsigned i = 0; i < FZ_MAX_RECORDS && fz_more(&r); i++) {
		fz_world_step(w, &r, allow_time);
		fz_world_check(w);
	}
	fz_world_drain(w, &r);
	fz_world_free(w);
}
