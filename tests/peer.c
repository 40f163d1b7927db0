/* The raw-peer harness (see peer.h). */
#include "peer.h"
#include "test.h"

#include <stdlib.h>

#define FATAL(...)                                              \
	do {                                                    \
		test_fail(__FILE__, __LINE__, __VA_ARGS__);     \
		test_abort();                                   \
	} while (0)

static void *xmalloc(size_t n)
{
	void *m = malloc(n ? n : 1);
	if (!m)
		FATAL("out of memory");
	return m;
}

/* ---- the link: copy each datagram into the FIFO ---- */

static int peer_transmit(void *ctx, const struct tern_iovec *iov, unsigned iovcnt, size_t total)
{
	struct peer *p = ctx;
	if (p->qhead + p->qlen == p->qcap) {
		if (p->qhead > 0) {
			memmove(p->q, p->q + p->qhead, p->qlen * sizeof(*p->q));
			p->qhead = 0;
		} else {
			size_t ncap = p->qcap ? p->qcap * 2 : 16;
			struct peer_pkt *n = realloc(p->q, ncap * sizeof(*n));
			if (!n)
				FATAL("out of memory");
			p->q = n;
			p->qcap = ncap;
		}
	}
	uint8_t *buf = xmalloc(total);
	size_t off = 0;
	for (unsigned i = 0; i < iovcnt; i++) {
		if (off + iov[i].len > total)
			FATAL("transmit: gather list longer than total (%zu)", total);
		if (iov[i].len)
			memcpy(buf + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	if (off != total)
		FATAL("transmit: gather list has %zu bytes, total says %zu", off, total);
	struct peer_pkt *pk = &p->q[p->qhead + p->qlen++];
	pk->buf = buf;
	pk->len = total;
	pk->t_us = tern_stack_now(p->st);
	return 0;
}

static void peer_trace(void *user, const struct tern_trace *ev)
{
	struct peer *p = user;
	if (ev->kind == TERN_TRACE_STATE) {
		if (p->ntrans < PEER_MAX_TRANS) {
			struct peer_trans *t = &p->trans[p->ntrans++];
			t->from = ev->u.state.from;
			t->to = ev->u.state.to;
			t->lport = ev->u.state.lport;
			t->rport = ev->u.state.rport;
			t->t_us = ev->t_us;
		}
	} else if (ev->kind == TERN_TRACE_ERROR) {
		p->last_error = ev->u.error;
	}
}

/* ---- life cycle ---- */

struct peer *peer_new(const struct tern_settings *settings, uint64_t seed)
{
	struct peer *p = calloc(1, sizeof(*p));
	if (!p)
		FATAL("out of memory");
	struct tern_settings s;
	if (settings)
		s = *settings;
	else
		tern_settings_default(&s);
	s.seed = seed;
	p->now = PEER_T0;
	p->st = tern_stack_new(&s, p->now);
	if (!p->st)
		FATAL("tern_stack_new failed");
	if (tern_stack_add_addr(p->st, PEER_LOCAL) != 0)
		FATAL("tern_stack_add_addr failed");
	struct tern_link link = {.transmit = peer_transmit, .ctx = p, .flags = 0};
	tern_stack_set_link(p->st, &link);
	tern_stack_set_trace(p->st, peer_trace, p);
	p->lfd = -1;
	p->fd = -1;
	p->lport = PEER_SERVER_PORT;
	p->rport = PEER_CLIENT_PORT;
	p->irs = PEER_IRS;
	p->snd_nxt = p->irs;
	p->win = PEER_WIN;
	p->stack_win = PEER_STACK_WIN;
	p->mss = PEER_MSS;
	return p;
}

void peer_free(struct peer *p)
{
	if (!p)
		return;
	tern_stack_free(p->st);
	for (size_t i = 0; i < p->qlen; i++)
		free(p->q[p->qhead + i].buf);
	free(p->q);
	free(p->last);
	free(p);
}

/* ---- time ---- */

/* One step: poll at the next timer if it is due by t_us. Returns false when none is. */
static bool step_timer(struct peer *p, uint64_t t_us, unsigned *guard)
{
	uint64_t nt = tern_stack_next_timer(p->st);
	if (nt == TERN_TIME_NEVER || nt > t_us)
		return false;
	if (nt < p->now)
		nt = p->now;
	if (++*guard > 10000000u)
		FATAL("timers keep firing at t=%" PRIu64 " us", nt);
	p->now = nt;
	tern_stack_poll(p->st, nt);
	return true;
}

void peer_advance_to(struct peer *p, uint64_t t_us)
{
	if (t_us < p->now)
		FATAL("peer_advance_to: time goes backwards (%" PRIu64 " < %" PRIu64 ")", t_us,
		      p->now);
	unsigned guard = 0;
	while (step_timer(p, t_us, &guard))
		;
	p->now = t_us;
	tern_stack_poll(p->st, t_us);
}

void peer_advance(struct peer *p, uint64_t dt_us) { peer_advance_to(p, p->now + dt_us); }

bool peer_run_timers_until(struct peer *p, uint64_t t_us)
{
	unsigned guard = 0;
	if (p->qlen)
		return true;
	while (step_timer(p, t_us, &guard))
		if (p->qlen)
			return true;
	if (t_us > p->now) {
		p->now = t_us;
		tern_stack_poll(p->st, t_us);
	}
	return p->qlen > 0;
}

/* ---- injection ---- */

struct tern_tcp_opts peer_mss_opt(uint16_t mss)
{
	struct tern_tcp_opts o;
	memset(&o, 0, sizeof(o));
	o.has = TERN_OPT_MSS;
	o.mss = mss;
	return o;
}

static size_t build(uint8_t *pkt, size_t cap, uint32_t src, uint16_t sport, uint32_t dst,
		    uint16_t dport, uint16_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		    const void *data, size_t len, const struct tern_tcp_opts *opts)
{
	if (len > 65535 - 20 - 60 || cap < 20 + 60 + len)
		FATAL("peer: payload too long (%zu) or buffer too small (%zu)", len, cap);
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = src;
	h.dst = dst;
	h.sport = sport;
	h.dport = dport;
	h.seq = seq;
	h.ack = ack;
	h.flags = flags;
	h.win = win;
	h.len = (uint32_t)len;
	if (opts)
		h.opts = *opts;
	size_t hl = tern_tcp_build(pkt + 20, &h);
	if (len)
		memcpy(pkt + 20 + hl, data, len);
	uint16_t tcp_len = (uint16_t)(hl + len);
	struct tern_iovec iov = {pkt + 20, tcp_len};
	uint16_t c = tern_csum_iov(tern_csum_pseudo(src, dst, TERN_IPPROTO_TCP_, tcp_len), &iov, 1);
	memcpy(pkt + 20 + 16, &c, 2);
	tern_ip4_build(pkt, src, dst, TERN_IPPROTO_TCP_, 64, 0, 1, tcp_len);
	/* Sanity: what we built must parse as what we meant. */
	struct tern_ip4 ip;
	struct tern_tcp_seg s;
	if (tern_ip4_parse(pkt, 20u + tcp_len, &ip) != TERN_IP4_OK ||
	    tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s) != TERN_TCP_OK ||
	    s.h.seq != seq || s.h.ack != ack || s.h.flags != flags || s.h.len != len)
		FATAL("peer: built a segment that does not parse back");
	return 20u + tcp_len;
}

size_t peer_build(const struct peer *p, uint8_t *out, size_t cap, uint16_t flags, uint32_t seq,
		  uint32_t ack, uint16_t win, const void *data, size_t len,
		  const struct tern_tcp_opts *opts)
{
	return build(out, cap, PEER_REMOTE, p->rport, PEER_LOCAL, p->lport, flags, seq, ack, win,
		     data, len, opts);
}

void peer_inject_from(struct peer *p, uint32_t src, uint16_t sport, uint32_t dst,
		      uint16_t dport, uint16_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		      const void *data, size_t len, const struct tern_tcp_opts *opts)
{
	size_t cap = 20 + 60 + len;
	uint8_t *pkt = xmalloc(cap);
	size_t n = build(pkt, cap, src, sport, dst, dport, flags, seq, ack, win, data, len, opts);
	tern_stack_input(p->st, pkt, n, p->now);
	free(pkt);
}

void peer_inject(struct peer *p, uint16_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		 const void *data, size_t len, const struct tern_tcp_opts *opts)
{
	peer_inject_from(p, PEER_REMOTE, p->rport, PEER_LOCAL, p->lport, flags, seq, ack, win,
			 data, len, opts);
}

void peer_inject_raw(struct peer *p, const void *bytes, size_t len)
{
	/* An exact-size copy, so that a read past the end shows under AddressSanitizer. */
	uint8_t *b = xmalloc(len);
	if (len)
		memcpy(b, bytes, len);
	tern_stack_input(p->st, b, len, p->now);
	free(b);
}

/* ---- capture ---- */

size_t peer_pending(const struct peer *p) { return p->qlen; }

bool peer_pop(struct peer *p, struct tern_tcp_seg *out)
{
	if (!p->qlen)
		return false;
	struct peer_pkt pk = p->q[p->qhead++];
	if (--p->qlen == 0)
		p->qhead = 0;
	free(p->last);
	p->last = pk.buf;
	p->last_t = pk.t_us;
	struct tern_ip4 ip;
	int rc = tern_ip4_parse(pk.buf, pk.len, &ip);
	if (rc != TERN_IP4_OK)
		FATAL("captured datagram does not parse as IPv4 (%d)", rc);
	if (ip.proto != TERN_IPPROTO_TCP_)
		FATAL("captured datagram is not TCP (protocol %u)", ip.proto);
	if (ip.src != PEER_LOCAL || ip.dst != PEER_REMOTE)
		FATAL("captured datagram %08x -> %08x, not 10.0.0.1 -> 10.0.0.2", ip.src, ip.dst);
	if (ip.ttl != 64 || !(ip.frag & 0x4000))
		FATAL("captured datagram: TTL %u, DF %d", ip.ttl, !!(ip.frag & 0x4000));
	if (ip.total_len != pk.len)
		FATAL("captured datagram: total length %u, transmitted %zu", ip.total_len, pk.len);
	struct tern_tcp_seg s;
	rc = tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s);
	if (rc != TERN_TCP_OK)
		FATAL("captured segment does not parse as TCP (%d)", rc);
	p->last_seg = s;
	if (out)
		*out = s;
	return true;
}

size_t peer_build_udp(uint8_t *out, size_t cap, uint32_t src, uint16_t sport, uint32_t dst,
		      uint16_t dport, const void *data, size_t len, bool csum)
{
	if (len > 65535 - 28 || cap < 28 + len)
		FATAL("peer: UDP payload too long (%zu) or buffer too small (%zu)", len, cap);
	uint8_t *uh = out + 20;
	uint16_t ulen = (uint16_t)(8 + len);
	wr16(uh, sport);
	wr16(uh + 2, dport);
	wr16(uh + 4, ulen);
	wr16(uh + 6, 0);
	if (len)
		memcpy(uh + 8, data, len);
	if (csum) {
		struct tern_iovec iov = {uh, ulen};
		uint16_t c = tern_csum_iov(tern_csum_pseudo(src, dst, TERN_IPPROTO_UDP, ulen), &iov, 1);
		if (c == 0)
			c = 0xffff; /* RFC 768: zero would mean "no checksum" */
		memcpy(uh + 6, &c, 2);
	}
	tern_ip4_build(out, src, dst, TERN_IPPROTO_UDP, 64, 0, 1, ulen);
	return 20u + ulen;
}

void peer_inject_udp(struct peer *p, uint16_t sport, uint16_t dport, const void *data,
		     size_t len)
{
	size_t cap = 28 + len;
	uint8_t *pkt = xmalloc(cap);
	size_t n = peer_build_udp(pkt, cap, PEER_REMOTE, sport, PEER_LOCAL, dport, data, len, true);
	tern_stack_input(p->st, pkt, n, p->now);
	free(pkt);
}

bool peer_pop_raw(struct peer *p, const uint8_t **pkt, size_t *len)
{
	if (!p->qlen)
		return false;
	struct peer_pkt pk = p->q[p->qhead++];
	if (--p->qlen == 0)
		p->qhead = 0;
	free(p->last);
	p->last = pk.buf;
	p->last_t = pk.t_us;
	*pkt = pk.buf;
	*len = pk.len;
	return true;
}

void peer_discard(struct peer *p)
{
	while (peer_pop(p, NULL))
		;
}

const char *peer_flags_str(uint16_t flags, char *buf, size_t len)
{
	static const struct {
		uint16_t bit;
		const char *name;
	} names[] = {
		{TERN_TH_SYN, "SYN"}, {TERN_TH_RST, "RST"}, {TERN_TH_FIN, "FIN"},
		{TERN_TH_PSH, "PSH"}, {TERN_TH_ACK, "ACK"}, {TERN_TH_URG, "URG"},
		{TERN_TH_ECE, "ECE"}, {TERN_TH_CWR, "CWR"}, {TERN_TH_AE, "AE"},
	};
	size_t n = 0;
	if (!len)
		return buf;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? "|" : "", names[i].name);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	if (!n)
		snprintf(buf, len, "none");
	return buf;
}

static void describe(const struct peer *p, char *buf, size_t len, long long flags,
		     long long seq, long long ack, long long win, long long plen)
{
	char fb[64], sb[48], ab[48], wb[24], lb[24];
	if (flags == PEER_ANY)
		snprintf(fb, sizeof(fb), "*");
	else
		peer_flags_str((uint16_t)flags, fb, sizeof(fb));
	if (seq == PEER_ANY)
		snprintf(sb, sizeof(sb), "*");
	else
		snprintf(sb, sizeof(sb), "%u (ISS%+d)", (uint32_t)seq,
			 (int32_t)((uint32_t)seq - p->iss));
	if (ack == PEER_ANY)
		snprintf(ab, sizeof(ab), "*");
	else
		snprintf(ab, sizeof(ab), "%u (IRS%+d)", (uint32_t)ack,
			 (int32_t)((uint32_t)ack - p->irs));
	if (win == PEER_ANY)
		snprintf(wb, sizeof(wb), "*");
	else
		snprintf(wb, sizeof(wb), "%lld", win);
	if (plen == PEER_ANY)
		snprintf(lb, sizeof(lb), "*");
	else
		snprintf(lb, sizeof(lb), "%lld", plen);
	snprintf(buf, len, "%s seq=%s ack=%s win=%s len=%s", fb, sb, ab, wb, lb);
}

bool peer_expect_(struct peer *p, const char *file, int line, struct tern_tcp_seg *out,
		  long long flags, long long seq, long long ack, long long win, long long len)
{
	char want[256], got[256];
	describe(p, want, sizeof(want), flags, seq, ack, win, len);
	struct tern_tcp_seg s;
	if (!peer_pop(p, &s)) {
		test_fail(file, line, "expected %s at t=+%" PRIu64 " us, but nothing was sent", want,
			  p->now - PEER_T0);
		if (out)
			memset(out, 0, sizeof(*out));
		return false;
	}
	if (out)
		*out = s;
	bool ok = (flags == PEER_ANY || s.h.flags == flags) &&
		  (seq == PEER_ANY || s.h.seq == (uint32_t)seq) &&
		  (ack == PEER_ANY || s.h.ack == (uint32_t)ack) &&
		  (win == PEER_ANY || s.h.win == win) && (len == PEER_ANY || s.h.len == len);
	bool ports = s.h.sport == p->lport && s.h.dport == p->rport;
	if (!ok || !ports) {
		describe(p, got, sizeof(got), s.h.flags, s.h.seq, s.h.ack, s.h.win, s.h.len);
		test_fail(file, line, "expected %s\n        got      %s (ports %u -> %u%s, t=+%" PRIu64
			  " us)", want, got, s.h.sport, s.h.dport,
			  ports ? "" : ", wrong connection", p->last_t - PEER_T0);
		return false;
	}
	return true;
}

bool peer_expect_none_(struct peer *p, const char *file, int line)
{
	struct tern_tcp_seg s;
	if (!peer_pop(p, &s))
		return true;
	char got[256];
	describe(p, got, sizeof(got), s.h.flags, s.h.seq, s.h.ack, s.h.win, s.h.len);
	test_fail(file, line, "expected no segment, got %s (ports %u -> %u, t=+%" PRIu64 " us)",
		  got, s.h.sport, s.h.dport, p->last_t - PEER_T0);
	peer_discard(p);
	return false;
}

/* ---- connection inspection ---- */

struct find_ctx {
	uint16_t lport, rport;
	int state;
	size_t count, total;
};

static void find_cb(void *user, const struct tern_conn_info *c)
{
	struct find_ctx *f = user;
	if (c->state == TERN_STATE_LISTEN)
		return;
	f->total++;
	if (c->laddr == PEER_LOCAL && c->raddr == PEER_REMOTE && c->lport == f->lport &&
	    c->rport == f->rport) {
		if (!f->count)
			f->state = c->state;
		f->count++;
	}
}

static struct find_ctx find(struct peer *p, uint16_t lport, uint16_t rport)
{
	struct find_ctx f = {lport, rport, PEER_NONE, 0, 0};
	tern_stack_foreach(p->st, find_cb, &f);
	return f;
}

int peer_conn_state_of(struct peer *p, uint16_t lport, uint16_t rport)
{
	return find(p, lport, rport).state;
}

int peer_conn_state(struct peer *p) { return peer_conn_state_of(p, p->lport, p->rport); }

size_t peer_conn_count_of(struct peer *p, uint16_t lport, uint16_t rport)
{
	return find(p, lport, rport).count;
}

size_t peer_conn_total(struct peer *p) { return find(p, 0, 0).total; }

int peer_so_error(struct peer *p, int fd)
{
	int v = 0;
	size_t len = sizeof(v);
	int rc = tern_getsockopt(p->st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &v, &len);
	return rc < 0 ? rc : v;
}

bool peer_saw_trans(const struct peer *p, int from, int to)
{
	for (size_t i = 0; i < p->ntrans; i++) {
		const struct peer_trans *t = &p->trans[i];
		if (t->lport != p->lport || t->rport != p->rport)
			continue;
		if ((from < 0 || t->from == from) && (to < 0 || t->to == to))
			return true;
	}
	return false;
}

void peer_clear_trans(struct peer *p) { p->ntrans = 0; }

/* ---- getting into a state ---- */

/* Pop a segment that a helper needs, checking it fully; ends the test otherwise. */
static void need(struct peer *p, const char *what, uint16_t flags, uint32_t seq, uint32_t ack)
{
	if (!peer_expect_(p, __FILE__, __LINE__, NULL, flags, seq, ack, p->stack_win, 0))
		FATAL("state helper: %s not as expected", what);
}

static void need_none(struct peer *p, const char *what)
{
	if (!peer_expect_none_(p, __FILE__, __LINE__))
		FATAL("state helper: unexpected segment after %s", what);
}

static void need_state(struct peer *p, int state, bool held)
{
	int s = held ? tern_sock_state(p->st, p->fd) : peer_conn_state(p);
	if (s != state)
		FATAL("state helper: state %s (%d), wanted %s", tern_state_name(s), s,
		      tern_state_name(state));
}

void peer_listen(struct peer *p, int backlog)
{
	int fd = tern_socket(p->st, TERN_SOCK_STREAM);
	if (fd < 0)
		FATAL("tern_socket: %d", fd);
	struct tern_sockaddr a = {0, PEER_SERVER_PORT};
	int rc = tern_bind(p->st, fd, &a);
	if (rc < 0)
		FATAL("tern_bind: %d", rc);
	rc = tern_listen(p->st, fd, backlog);
	if (rc < 0)
		FATAL("tern_listen: %d", rc);
	p->lfd = fd;
}

void peer_to_syn_rcvd_passive(struct peer *p)
{
	if (p->lfd < 0)
		peer_listen(p, 16);
	p->active = false;
	p->lport = PEER_SERVER_PORT;
	struct tern_tcp_opts o = peer_mss_opt(p->mss);
	peer_inject(p, TERN_TH_SYN, p->irs, 0, p->win, NULL, 0, p->mss ? &o : NULL);
	struct tern_tcp_seg s;
	if (!peer_pop(p, &s))
		FATAL("state helper: no SYN-ACK for the peer's SYN");
	p->iss = s.h.seq;
	p->last_seg = s;
	if (s.h.flags != (TERN_TH_SYN | TERN_TH_ACK) || s.h.ack != p->irs + 1 ||
	    s.h.win != p->stack_win || s.h.len != 0 || s.h.sport != p->lport ||
	    s.h.dport != p->rport)
		FATAL("state helper: bad SYN-ACK (flags %#x ack %u win %u)", s.h.flags, s.h.ack,
		      s.h.win);
	p->snd_nxt = p->irs + 1;
	p->rcv_nxt = p->iss + 1;
	need_none(p, "SYN-ACK");
	need_state(p, TERN_STATE_SYN_RCVD, false);
}

void peer_open_passive(struct peer *p)
{
	peer_to_syn_rcvd_passive(p);
	peer_inject(p, TERN_TH_ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	need_none(p, "third ACK");
	struct tern_sockaddr peer_addr;
	int fd = tern_accept(p->st, p->lfd, &peer_addr);
	if (fd < 0)
		FATAL("tern_accept: %d", fd);
	if (peer_addr.addr != PEER_REMOTE || peer_addr.port != p->rport)
		FATAL("tern_accept: peer %08x:%u", peer_addr.addr, peer_addr.port);
	p->fd = fd;
	need_state(p, TERN_STATE_ESTABLISHED, true);
}

void peer_to_syn_sent(struct peer *p)
{
	int fd = tern_socket(p->st, TERN_SOCK_STREAM);
	if (fd < 0)
		FATAL("tern_socket: %d", fd);
	struct tern_sockaddr a = {PEER_REMOTE, PEER_SERVER_PORT};
	int rc = tern_connect(p->st, fd, &a);
	if (rc != -EINPROGRESS)
		FATAL("tern_connect: %d", rc);
	p->fd = fd;
	p->active = true;
	struct tern_tcp_seg s;
	if (!peer_pop(p, &s))
		FATAL("state helper: connect() sent no SYN");
	if (s.h.flags != TERN_TH_SYN || s.h.dport != PEER_SERVER_PORT)
		FATAL("state helper: bad SYN (flags %#x, port %u)", s.h.flags, s.h.dport);
	p->iss = s.h.seq;
	p->lport = s.h.sport;
	p->rport = PEER_SERVER_PORT;
	p->rcv_nxt = p->iss + 1;
	p->snd_nxt = p->irs;
	need_none(p, "SYN");
	need_state(p, TERN_STATE_SYN_SENT, true);
}

void peer_open_active(struct peer *p)
{
	peer_to_syn_sent(p);
	struct tern_tcp_opts o = peer_mss_opt(p->mss);
	peer_inject(p, TERN_TH_SYN | TERN_TH_ACK, p->irs, p->iss + 1, p->win, NULL, 0,
		    p->mss ? &o : NULL);
	p->snd_nxt = p->irs + 1;
	need(p, "ACK of the SYN-ACK", TERN_TH_ACK, p->iss + 1, p->irs + 1);
	need_none(p, "ACK of the SYN-ACK");
	need_state(p, TERN_STATE_ESTABLISHED, true);
}

void peer_to_syn_rcvd_simultaneous(struct peer *p)
{
	peer_to_syn_sent(p);
	struct tern_tcp_opts o = peer_mss_opt(p->mss);
	peer_inject(p, TERN_TH_SYN, p->irs, 0, p->win, NULL, 0, p->mss ? &o : NULL);
	p->snd_nxt = p->irs + 1;
	need(p, "SYN-ACK of a simultaneous open", TERN_TH_SYN | TERN_TH_ACK, p->iss, p->irs + 1);
	need_none(p, "SYN-ACK");
	need_state(p, TERN_STATE_SYN_RCVD, true);
}

static void ensure_established(struct peer *p)
{
	if (p->fd < 0)
		peer_open_passive(p);
	need_state(p, TERN_STATE_ESTABLISHED, true);
}

/* The application ends its sending side; the FIN is captured. */
static void app_close(struct peer *p, enum peer_how how, int state_after)
{
	int rc;
	switch (how) {
	case PEER_SHUT_WR:
		rc = tern_shutdown(p->st, p->fd, TERN_SHUT_WR);
		break;
	case PEER_SHUT_RDWR:
		rc = tern_shutdown(p->st, p->fd, TERN_SHUT_RDWR);
		break;
	case PEER_CLOSE:
		rc = tern_close(p->st, p->fd);
		p->fd = -1;
		break;
	default:
		FATAL("bad peer_how %d", (int)how);
	}
	if (rc != 0)
		FATAL("shutdown/close: %d", rc);
	need(p, "FIN", TERN_TH_FIN | TERN_TH_ACK, p->rcv_nxt, p->snd_nxt);
	p->rcv_nxt++;
	need_none(p, "FIN");
	need_state(p, state_after, p->fd >= 0);
}

void peer_to_fin_wait_1(struct peer *p, enum peer_how how)
{
	ensure_established(p);
	app_close(p, how, TERN_STATE_FIN_WAIT_1);
}

void peer_to_fin_wait_2(struct peer *p, enum peer_how how)
{
	peer_to_fin_wait_1(p, how);
	peer_inject(p, TERN_TH_ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	need_none(p, "ACK of the FIN");
	need_state(p, TERN_STATE_FIN_WAIT_2, p->fd >= 0);
}

void peer_to_closing(struct peer *p, enum peer_how how)
{
	peer_to_fin_wait_1(p, how);
	/* The peer's FIN crosses ours: it does not acknowledge our FIN. */
	peer_inject(p, TERN_TH_FIN | TERN_TH_ACK, p->snd_nxt, p->rcv_nxt - 1, p->win, NULL, 0,
		    NULL);
	p->snd_nxt++;
	need(p, "ACK of the crossing FIN", TERN_TH_ACK, p->rcv_nxt, p->snd_nxt);
	need_none(p, "ACK of the crossing FIN");
	need_state(p, TERN_STATE_CLOSING, p->fd >= 0);
}

void peer_to_time_wait(struct peer *p, enum peer_how how)
{
	peer_to_fin_wait_2(p, how);
	peer_inject(p, TERN_TH_FIN | TERN_TH_ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	need(p, "ACK of the peer's FIN", TERN_TH_ACK, p->rcv_nxt, p->snd_nxt);
	need_none(p, "ACK of the peer's FIN");
	need_state(p, TERN_STATE_TIME_WAIT, false);
}

void peer_to_close_wait(struct peer *p)
{
	ensure_established(p);
	peer_inject(p, TERN_TH_FIN | TERN_TH_ACK, p->snd_nxt, p->rcv_nxt, p->win, NULL, 0, NULL);
	p->snd_nxt++;
	need_none(p, "the peer's FIN (its ACK waits for the delayed-ACK timer)");
	need_state(p, TERN_STATE_CLOSE_WAIT, true);
	if (!peer_run_timers_until(p, p->now + 40 * PEER_MS))
		FATAL("state helper: no delayed ACK of the FIN within 40 ms");
	need(p, "delayed ACK of the FIN", TERN_TH_ACK, p->rcv_nxt, p->snd_nxt);
	need_none(p, "delayed ACK");
	need_state(p, TERN_STATE_CLOSE_WAIT, true);
}

void peer_to_last_ack(struct peer *p, enum peer_how how)
{
	peer_to_close_wait(p);
	app_close(p, how, TERN_STATE_LAST_ACK);
}
