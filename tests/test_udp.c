/*
 * UDP (RFC 768) beside TCP: the datagrams tern sends, byte for byte; what it accepts, drops
 * and counts; ICMP port unreachable out (contents, RFC 1122 §3.2.2 exclusions, Linux's rate
 * limits in virtual time) and in (ECONNREFUSED on a connected socket); the socket calls;
 * and two stacks on the simulated wire.
 */
#include "test.h"
#include "peer.h"
#include "internal.h"
#include "wire.h"
#include "tern/tern.h"
#include "tern/sim.h"

#include <stdlib.h>

#define LPORT 5000
#define RPORT 7000
#define CLOSED_PORT 9
#define OTHER_LOCAL TERN_IP4(10, 0, 0, 3)

/* ---- a reference Internet checksum, byte by byte (RFC 1071 §4.1), apart from the stack's ---- */

static uint32_t ref_add(uint32_t acc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t ref_fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

static uint32_t ref_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

/* The UDP checksum field for header (its checksum bytes taken as 0) and data, as sent. */
static uint16_t ref_udp_csum(uint32_t src, uint32_t dst, const uint8_t *udp, size_t len)
{
	uint8_t hdr[8];
	memcpy(hdr, udp, 8);
	hdr[6] = hdr[7] = 0;
	uint32_t acc = ref_pseudo(src, dst, 17, (uint16_t)len);
	acc = ref_add(acc, hdr, 8);
	acc = ref_add(acc, udp + 8, len - 8);
	uint16_t c = (uint16_t)~ref_fold(acc);
	return c ? c : 0xffff;
}

static void fix_ip_csum(uint8_t *p)
{
	size_t hl = (size_t)(p[0] & 15) * 4;
	p[10] = p[11] = 0;
	uint16_t c = (uint16_t)~ref_fold(ref_add(0, p, hl));
	wr16(p + 10, c);
}

/* ---- helpers ---- */

static struct peer *udp_peer(const struct tern_settings *s)
{
	return peer_new(s, test_seed(0x5eed));
}

static int udp_sock(struct peer *p)
{
	int fd = tern_socket(p->st, TERN_SOCK_DGRAM);
	REQUIRE(fd >= 0);
	return fd;
}

static int udp_bound(struct peer *p, uint32_t addr, uint16_t port)
{
	int fd = udp_sock(p);
	struct tern_sockaddr a = {addr, port};
	REQUIRE_EQ(tern_bind(p->st, fd, &a), 0);
	return fd;
}

static void set_reuse(struct tern_stack *st, int fd)
{
	int one = 1;
	REQUIRE_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &one, sizeof(one)), 0);
}

/* A captured datagram, parsed. */
struct cap {
	const uint8_t *pkt;
	size_t len;
	struct tern_ip4 ip;
};

static bool pop(struct peer *p, struct cap *c)
{
	if (!peer_pop_raw(p, &c->pkt, &c->len))
		return false;
	REQUIRE_EQ(tern_ip4_parse(c->pkt, c->len, &c->ip), TERN_IP4_OK);
	REQUIRE_EQ(c->ip.total_len, c->len);
	return true;
}

static size_t drain(struct peer *p)
{
	struct cap c;
	size_t n = 0;
	while (pop(p, &c))
		n++;
	return n;
}

/* An ICMP error from src to dst quoting qlen bytes at quote. */
static size_t build_icmp(uint8_t *out, uint32_t src, uint32_t dst, uint8_t type, uint8_t code,
			 const uint8_t *quote, size_t qlen)
{
	uint8_t *ic = out + 20;
	memset(ic, 0, 8);
	ic[0] = type;
	ic[1] = code;
	memcpy(ic + 8, quote, qlen);
	wr16(ic + 2, (uint16_t)~ref_fold(ref_add(0, ic, 8 + qlen)));
	tern_ip4_build(out, src, dst, TERN_IPPROTO_ICMP, 64, 0, 0, (uint16_t)(8 + qlen));
	return 28 + qlen;
}

static const struct tern_stats *stats(struct peer *p) { return tern_stack_stats(p->st); }

/* The stack's memory less its readiness list, which the first event allocates. */
static size_t mem_of(struct peer *p)
{
	return tern_stack_memory(p->st) - p->st->evq_cap * sizeof(int);
}

/* ========================================================================================= */
/* Output                                                                                     */
/* ========================================================================================= */

TEST(udp_send_exact_bytes)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "hello", 5, 0, &to), 5);
	struct cap c;
	REQUIRE(pop(p, &c));
	REQUIRE_EQ(c.len, 33);
	/* IPv4: no options, length 33, ID 0 with DF (RFC 6864 §4.1), TTL 64, protocol 17. */
	uint8_t ip[20] = {0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
	fix_ip_csum(ip);
	CHECK_MEM(c.pkt, ip, 20);
	/* UDP: ports, length 8 + 5, checksum over the pseudo-header, then the payload. */
	const uint8_t *u = c.pkt + 20;
	const uint8_t hdr[6] = {0x13, 0x88, 0x1b, 0x58, 0, 13};
	CHECK_MEM(u, hdr, 6);
	CHECK_EQ(rd16(u + 6), ref_udp_csum(PEER_LOCAL, PEER_REMOTE, u, 13));
	CHECK_MEM(u + 8, "hello", 5);
	CHECK(!pop(p, &c));
	CHECK_EQ(stats(p)->udp_out, 1);
	CHECK_EQ(stats(p)->ip_out, 1);
	/* An empty datagram is a header alone. */
	CHECK_EQ(tern_sendto(p->st, fd, NULL, 0, 0, &to), 0);
	REQUIRE(pop(p, &c));
	REQUIRE_EQ(c.len, 28);
	CHECK_EQ(rd16(c.pkt + 24), 8);
	CHECK_EQ(rd16(c.pkt + 26), ref_udp_csum(PEER_LOCAL, PEER_REMOTE, c.pkt + 20, 8));
	CHECK_EQ(stats(p)->udp_out, 2);
	peer_free(p);
}

/* A payload word that makes the one's-complement sum all ones, so the checksum computes to 0. */
static uint16_t zero_sum_word(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport)
{
	uint8_t u[10] = {0};
	wr16(u, sport);
	wr16(u + 2, dport);
	wr16(u + 4, 10);
	uint16_t s0 = ref_fold(ref_add(ref_pseudo(src, dst, 17, 10), u, 10));
	return (uint16_t)(0xffff - s0);
}

TEST(udp_checksum_zero_sent_as_ffff)
{
	/* RFC 768: a computed checksum of zero is sent as all ones; zero means "none". */
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	uint16_t w = zero_sum_word(PEER_LOCAL, PEER_REMOTE, LPORT, RPORT);
	uint8_t data[2] = {(uint8_t)(w >> 8), (uint8_t)w};
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, data, 2, 0, &to), 2);
	struct cap c;
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 26), 0xffff);
	/* All ones verifies: the whole sum folds to all ones. */
	CHECK_EQ(ref_fold(ref_add(ref_pseudo(PEER_LOCAL, PEER_REMOTE, 17, 10), c.pkt + 20, 10)),
		 0xffff);
	/* ... and such a datagram is accepted on input. */
	uint16_t w2 = zero_sum_word(PEER_REMOTE, PEER_LOCAL, RPORT, LPORT);
	uint8_t d2[2] = {(uint8_t)(w2 >> 8), (uint8_t)w2};
	uint8_t pkt[64];
	size_t n = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, d2, 2, true);
	REQUIRE_EQ(rd16(pkt + 26), 0xffff);
	peer_inject_raw(p, pkt, n);
	uint8_t buf[8];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 2);
	CHECK_EQ(stats(p)->udp_csum_errors, 0);
	peer_free(p);
}

TEST(udp_autobind_on_send)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_sock(p);
	struct tern_sockaddr a;
	REQUIRE_EQ(tern_getsockname(p->st, fd, &a), 0);
	CHECK_EQ(a.addr, 0);
	CHECK_EQ(a.port, 0);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, &to), 1);
	REQUIRE_EQ(tern_getsockname(p->st, fd, &a), 0);
	CHECK_EQ(a.addr, 0); /* an unconnected send picks the source per datagram */
	CHECK(a.port >= 32768 && a.port <= 60999);
	struct cap c;
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd32(c.pkt + 12), PEER_LOCAL);
	CHECK_EQ(rd16(c.pkt + 20), a.port);
	/* The port stays: the next datagram leaves from it, and it receives there. */
	CHECK_EQ(tern_sendto(p->st, fd, "y", 1, 0, &to), 1);
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 20), a.port);
	peer_inject_udp(p, RPORT, a.port, "z", 1);
	char buf[4];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 1);
	peer_free(p);
}

TEST(udp_emsgsize_at_the_mtu)
{
	/* No fragmentation: a datagram must fit one packet (mtu - 20 - 8 bytes of data). */
	struct tern_settings s;
	tern_settings_default(&s);
	for (int round = 0; round < 2; round++) {
		uint32_t mtu = round ? 576 : 1500;
		s.mtu = mtu;
		struct peer *p = udp_peer(&s);
		int fd = udp_bound(p, 0, LPORT);
		static uint8_t big[1500];
		struct tern_sockaddr to = {PEER_REMOTE, RPORT};
		CHECK_EQ(tern_sendto(p->st, fd, big, mtu - 27, 0, &to), -EMSGSIZE);
		CHECK_EQ(tern_sendto(p->st, fd, big, 70000, 0, &to), -EMSGSIZE);
		CHECK_EQ(peer_pending(p), 0);
		CHECK_EQ(tern_sendto(p->st, fd, big, mtu - 28, 0, &to), (long)(mtu - 28));
		struct cap c;
		REQUIRE(pop(p, &c));
		CHECK_EQ(c.len, mtu);
		CHECK_EQ(stats(p)->udp_out, 1);
		peer_free(p);
	}
}

TEST(udp_send_errors)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_send(p->st, fd, "x", 1, 0), -EDESTADDRREQ);
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, NULL), -EDESTADDRREQ);
	struct tern_sockaddr port0 = {PEER_REMOTE, 0}, addr0 = {0, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, &port0), -EINVAL);
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, &addr0), -EINVAL);
	struct tern_sockaddr bcast = {TERN_IP4(255, 255, 255, 255), RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, &bcast), -EACCES);
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, TERN_MSG_OOB, &to), -EOPNOTSUPP);
	CHECK_EQ(tern_sendto(p->st, fd, NULL, 1, 0, &to), -EFAULT);
	CHECK_EQ(peer_pending(p), 0);
	CHECK_EQ(stats(p)->udp_out, 0);
	/* A link that reports itself out of buffers loses the datagram quietly (Linux without
	 * IP_RECVERR); any other link error is the caller's. */
	tern_stack_set_link(p->st, NULL);
	CHECK_EQ(tern_sendto(p->st, fd, "x", 1, 0, &to), -ENETUNREACH);
	CHECK_EQ(stats(p)->link_tx_errors, 1);
	CHECK_EQ(stats(p)->udp_out, 0);
	/* A stack without an address has no source to send from. */
	struct tern_stack *bare = tern_stack_new(NULL, 0);
	REQUIRE(bare);
	int b = tern_socket(bare, TERN_SOCK_DGRAM);
	CHECK_EQ(tern_sendto(bare, b, "x", 1, 0, &to), -ENETUNREACH);
	CHECK_EQ(tern_connect(bare, b, &to), -ENETUNREACH);
	tern_stack_free(bare);
	peer_free(p);
}

static int nobufs_link(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	(void)iov;
	(void)n;
	(void)total;
	++*(int *)ctx;
	return -ENOBUFS;
}

TEST(udp_link_out_of_buffers)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	int calls = 0;
	struct tern_link l = {.transmit = nobufs_link, .ctx = &calls, .flags = 0};
	tern_stack_set_link(p->st, &l);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "abc", 3, 0, &to), 3);
	CHECK_EQ(calls, 1);
	CHECK_EQ(stats(p)->udp_sndbuf_errors, 1);
	CHECK_EQ(stats(p)->udp_out, 0);
	CHECK_EQ(stats(p)->link_tx_errors, 1);
	peer_free(p);
}

/* ========================================================================================= */
/* Input                                                                                      */
/* ========================================================================================= */

TEST(udp_receive_and_readiness)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	struct tern_event ev[4];
	CHECK_EQ(tern_stack_events(p->st, ev, 4), 0);
	CHECK_EQ(tern_sock_events(p->st, fd), TERN_EV_OUT); /* always writable */
	peer_inject_udp(p, RPORT, LPORT, "ping", 4);
	CHECK_EQ(peer_pending(p), 0);
	REQUIRE_EQ(tern_stack_events(p->st, ev, 4), 1);
	CHECK_EQ(ev[0].fd, fd);
	CHECK_EQ(ev[0].events, TERN_EV_IN | TERN_EV_OUT);
	/* A second datagram changes no readiness: no event. */
	peer_inject_udp(p, RPORT + 1, LPORT, "second", 6);
	CHECK_EQ(tern_stack_events(p->st, ev, 4), 0);
	char buf[16];
	struct tern_sockaddr from = {0, 0};
	CHECK_EQ(tern_recvfrom(p->st, fd, buf, sizeof(buf), 0, &from), 4);
	CHECK_MEM(buf, "ping", 4);
	CHECK_EQ(from.addr, PEER_REMOTE);
	CHECK_EQ(from.port, RPORT);
	CHECK_EQ(tern_stack_events(p->st, ev, 4), 0); /* still readable */
	CHECK_EQ(tern_recvfrom(p->st, fd, buf, sizeof(buf), 0, &from), 6);
	CHECK_MEM(buf, "second", 6);
	CHECK_EQ(from.port, RPORT + 1);
	REQUIRE_EQ(tern_stack_events(p->st, ev, 4), 1);
	CHECK_EQ(ev[0].events, TERN_EV_OUT);
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), -EAGAIN);
	/* Empty datagrams and source port 0 (RFC 768: "no port") are delivered too. */
	peer_inject_udp(p, 0, LPORT, NULL, 0);
	from.port = 1;
	CHECK_EQ(tern_recvfrom(p->st, fd, buf, sizeof(buf), 0, &from), 0);
	CHECK_EQ(from.port, 0);
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(stats(p)->udp_in, 3);
	CHECK_EQ(stats(p)->udp_in_errors, 0);
	peer_free(p);
}

TEST(udp_trailing_bytes_ignored)
{
	/* The UDP length says 11; the IPv4 payload holds 14. The checksum covers the 11 and the
	 * 3 bytes past them are not the datagram's (Linux trims them). */
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	uint8_t pkt[64];
	size_t n = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, "abc", 3, true);
	memcpy(pkt + n, "def", 3);
	wr16(pkt + 2, (uint16_t)(n + 3));
	fix_ip_csum(pkt);
	peer_inject_raw(p, pkt, n + 3);
	char buf[16];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), TERN_MSG_TRUNC), 3);
	CHECK_MEM(buf, "abc", 3);
	CHECK_EQ(stats(p)->udp_in, 1);
	CHECK_EQ(stats(p)->udp_in_errors, 0);
	peer_free(p);
}

TEST(udp_zero_checksum_accepted)
{
	/* RFC 768: checksum 0 means the sender computed none; IPv4 accepts that. */
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	uint8_t pkt[64];
	size_t n = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, "nosum", 5,
				  false);
	REQUIRE_EQ(rd16(pkt + 26), 0);
	peer_inject_raw(p, pkt, n);
	char buf[8];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 5);
	CHECK_EQ(stats(p)->udp_csum_errors, 0);
	peer_free(p);
}

enum bad_kind { BAD_HEADER, BAD_CSUM };

struct bad_udp {
	const char *name;
	enum bad_kind kind;
	/* Turn the valid datagram (28 + 4 bytes, "data" to LPORT) into the bad one. */
	size_t (*make)(uint8_t *p, size_t len);
};

static size_t mk_ip_payload7(uint8_t *p, size_t len)
{
	(void)len;
	wr16(p + 2, 27);
	fix_ip_csum(p);
	return 27;
}
static size_t mk_ip_payload0(uint8_t *p, size_t len)
{
	(void)len;
	wr16(p + 2, 20);
	fix_ip_csum(p);
	return 20;
}
static size_t mk_ulen7(uint8_t *p, size_t len) { wr16(p + 24, 7); return len; }
static size_t mk_ulen0(uint8_t *p, size_t len) { wr16(p + 24, 0); return len; }
static size_t mk_ulen_past(uint8_t *p, size_t len) { wr16(p + 24, 13); return len; }
static size_t mk_ulen_max(uint8_t *p, size_t len) { wr16(p + 24, 0xffff); return len; }
static size_t mk_csum_field(uint8_t *p, size_t len) { p[27] ^= 0x01; return len; }
static size_t mk_payload_bit(uint8_t *p, size_t len) { p[len - 1] ^= 0x80; return len; }
static size_t mk_port_bit(uint8_t *p, size_t len) { p[20] ^= 0x01; return len; }
static size_t mk_shorter_ulen(uint8_t *p, size_t len)
{
	/* The length shrinks to 10 without a new checksum: the sum over 10 bytes fails. */
	wr16(p + 24, 10);
	return len;
}

TEST(udp_malformed_dropped_and_counted)
{
	static const struct bad_udp cases[] = {
		{"IPv4 payload of 7 bytes", BAD_HEADER, mk_ip_payload7},
		{"IPv4 payload of 0 bytes", BAD_HEADER, mk_ip_payload0},
		{"UDP length 7", BAD_HEADER, mk_ulen7},
		{"UDP length 0", BAD_HEADER, mk_ulen0},
		{"UDP length past the payload", BAD_HEADER, mk_ulen_past},
		{"UDP length 65535", BAD_HEADER, mk_ulen_max},
		{"checksum field", BAD_CSUM, mk_csum_field},
		{"payload bit", BAD_CSUM, mk_payload_bit},
		{"port bit", BAD_CSUM, mk_port_bit},
		{"shorter length, old checksum", BAD_CSUM, mk_shorter_ulen},
	};
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	/* The valid datagram first: delivered. */
	uint8_t pkt[64];
	size_t n0 = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, "data", 4, true);
	REQUIRE_EQ(n0, 32);
	peer_inject_raw(p, pkt, n0);
	char buf[8];
	REQUIRE_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 4);
	size_t mem = mem_of(p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_udp *k = &cases[i];
		uint8_t bad[64];
		peer_build_udp(bad, sizeof(bad), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, "data", 4, true);
		size_t n = k->make(bad, n0);
		struct tern_stats want = *stats(p);
		want.ip_in++;
		want.udp_in_errors++;
		if (k->kind == BAD_CSUM)
			want.udp_csum_errors++;
		peer_inject_raw(p, bad, n);
		struct tern_stats got = *stats(p);
		if (memcmp(&got, &want, sizeof(got)) != 0)
			test_fail(__FILE__, __LINE__,
				  "%s: udp_in %" PRIu64 " in_errors %" PRIu64 " (want %" PRIu64
				  ") csum %" PRIu64 " (want %" PRIu64 ") no_port %" PRIu64,
				  k->name, got.udp_in, got.udp_in_errors, want.udp_in_errors,
				  got.udp_csum_errors, want.udp_csum_errors, got.udp_no_port);
		if (peer_pending(p))
			test_fail(__FILE__, __LINE__, "%s: answered", k->name);
		drain(p);
		if (tern_recv(p->st, fd, buf, sizeof(buf), 0) != -EAGAIN)
			test_fail(__FILE__, __LINE__, "%s: delivered", k->name);
		CHECK_EQ(mem_of(p), mem);
	}
	/* Malformed datagrams to a closed port are dropped, not answered. */
	uint8_t bad[64];
	peer_build_udp(bad, sizeof(bad), PEER_REMOTE, RPORT, PEER_LOCAL, CLOSED_PORT, "data", 4, true);
	bad[27] ^= 1;
	peer_inject_raw(p, bad, n0);
	CHECK_EQ(peer_pending(p), 0);
	CHECK_EQ(stats(p)->udp_no_port, 0);
	CHECK_EQ(stats(p)->icmp_out, 0);
	peer_free(p);
}

TEST(udp_checksum_offload)
{
	/* TERN_LINK_CSUM_TX: the field holds the folded pseudo-header sum for the link to
	 * finish; TERN_LINK_CSUM_RX: the link vouches for what it hands in. */
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	struct tern_link l = {.transmit = NULL, .ctx = NULL, .flags = 0};
	/* Keep the peer's capture, add the flags. */
	l = p->st->link;
	l.flags = TERN_LINK_CSUM_TX | TERN_LINK_CSUM_RX;
	tern_stack_set_link(p->st, &l);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(p->st, fd, "hello", 5, 0, &to), 5);
	struct cap c;
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 26), ref_fold(ref_pseudo(PEER_LOCAL, PEER_REMOTE, 17, 13)));
	/* Finishing the sum as the link would gives the full checksum. */
	uint8_t u[13];
	memcpy(u, c.pkt + 20, 13);
	u[6] = u[7] = 0;
	uint16_t done = (uint16_t)~ref_fold(ref_add(ref_fold(ref_pseudo(PEER_LOCAL, PEER_REMOTE, 17, 13)), u, 13));
	CHECK_EQ(done, ref_udp_csum(PEER_LOCAL, PEER_REMOTE, c.pkt + 20, 13));
	/* A damaged checksum passes with CSUM_RX. */
	uint8_t pkt[64];
	size_t n = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, PEER_LOCAL, LPORT, "ok", 2, true);
	pkt[27] ^= 1;
	peer_inject_raw(p, pkt, n);
	char buf[4];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 2);
	CHECK_EQ(stats(p)->udp_csum_errors, 0);
	peer_free(p);
}

/* ========================================================================================= */
/* Receive queue: truncation, peeking, the buffer's bound                                     */
/* ========================================================================================= */

TEST(udp_truncation_peek_and_trunc_flag)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	peer_inject_udp(p, RPORT, LPORT, "0123456789", 10);
	peer_inject_udp(p, RPORT, LPORT, "next", 4);
	char buf[16];
	memset(buf, 0, sizeof(buf));
	struct tern_sockaddr from;
	/* PEEK leaves it queued; TRUNC reports its length. */
	CHECK_EQ(tern_recvfrom(p->st, fd, buf, 4, TERN_MSG_PEEK, &from), 4);
	CHECK_MEM(buf, "0123", 4);
	CHECK_EQ(from.port, RPORT);
	CHECK_EQ(tern_recvfrom(p->st, fd, buf, 4, TERN_MSG_PEEK | TERN_MSG_TRUNC, NULL), 10);
	/* A short buffer takes the first bytes; the rest of the datagram is gone. */
	memset(buf, 'z', sizeof(buf));
	CHECK_EQ(tern_recv(p->st, fd, buf, 4, 0), 4);
	CHECK_MEM(buf, "0123z", 5);
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 4);
	CHECK_MEM(buf, "next", 4);
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), -EAGAIN);
	/* TRUNC with a short buffer: the real length, the bytes that fit. */
	peer_inject_udp(p, RPORT, LPORT, "abcdef", 6);
	memset(buf, 'z', sizeof(buf));
	CHECK_EQ(tern_recv(p->st, fd, buf, 2, TERN_MSG_TRUNC), 6);
	CHECK_MEM(buf, "abz", 3);
	/* A zero-length read consumes a datagram too. */
	peer_inject_udp(p, RPORT, LPORT, "gone", 4);
	CHECK_EQ(tern_recv(p->st, fd, NULL, 0, 0), 0);
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), -EAGAIN);
	peer_inject_udp(p, RPORT, LPORT, "x", 1);
	CHECK_EQ(tern_recv(p->st, fd, NULL, 1, 0), -EFAULT);
	CHECK_EQ(tern_recv(p->st, fd, buf, 1, TERN_MSG_OOB), -EOPNOTSUPP);
	CHECK_EQ(tern_recv(p->st, fd, buf, 1, 0), 1);
	peer_free(p);
}

TEST(udp_rcvbuf_full_drops_and_counts)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_bound(p, 0, LPORT);
	int v = 256;
	REQUIRE_EQ(tern_setsockopt(p->st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, sizeof(v)), 0);
	size_t len = sizeof(v);
	REQUIRE_EQ(tern_getsockopt(p->st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, &len), 0);
	CHECK_EQ(v, 256);
	/* Each 100-byte datagram costs 116 (16 for its record). Linux's rule: refused only once
	 * what is queued exceeds the buffer: 0, 116, 232 <= 256 queue; at 348 the fourth goes. */
	REQUIRE_EQ(sizeof(struct udp_dgram), 16);
	static uint8_t d[100];
	size_t mem0 = mem_of(p);
	for (int i = 0; i < 4; i++) {
		d[0] = (uint8_t)i;
		peer_inject_udp(p, RPORT, LPORT, d, sizeof(d));
	}
	CHECK_EQ(stats(p)->udp_in, 3);
	CHECK_EQ(stats(p)->udp_rcvbuf_errors, 1);
	CHECK_EQ(stats(p)->udp_in_errors, 1);
	CHECK_EQ(stats(p)->udp_no_port, 0);
	CHECK_EQ(peer_pending(p), 0); /* no ICMP for a full buffer */
	CHECK_EQ(mem_of(p), mem0 + 3 * 116);
	/* Reading one makes room for one more. */
	uint8_t buf[128];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 100);
	CHECK_EQ(buf[0], 0);
	d[0] = 9;
	peer_inject_udp(p, RPORT, LPORT, d, sizeof(d));
	peer_inject_udp(p, RPORT, LPORT, d, sizeof(d));
	CHECK_EQ(stats(p)->udp_in, 4);
	CHECK_EQ(stats(p)->udp_rcvbuf_errors, 2);
	int order[] = {1, 2, 9};
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 100);
		CHECK_EQ(buf[0], order[i]);
	}
	CHECK_EQ(mem_of(p), mem0);
	/* A buffer smaller than a datagram still takes one. */
	static uint8_t big[1000];
	peer_inject_udp(p, RPORT, LPORT, big, sizeof(big));
	peer_inject_udp(p, RPORT, LPORT, big, sizeof(big));
	CHECK_EQ(stats(p)->udp_in, 5);
	CHECK_EQ(stats(p)->udp_rcvbuf_errors, 3);
	uint8_t bigbuf[1000];
	CHECK_EQ(tern_recv(p->st, fd, bigbuf, sizeof(bigbuf), 0), 1000);
	/* Exactly full is not over: two 112-byte datagrams queue 256, and a third still goes
	 * in; the fourth does not. */
	static uint8_t d112[112];
	for (int i = 0; i < 4; i++)
		peer_inject_udp(p, RPORT, LPORT, d112, sizeof(d112));
	CHECK_EQ(stats(p)->udp_in, 8);
	CHECK_EQ(stats(p)->udp_rcvbuf_errors, 4);
	peer_free(p);
}

TEST(udp_mem_max_bounds_queues)
{
	/* Queued datagrams count against the stack's mem_max like TCP's buffers. */
	struct tern_settings s;
	tern_settings_default(&s);
	s.mem_max = 300;
	struct peer *p = udp_peer(&s);
	int fd = udp_bound(p, 0, LPORT);
	static uint8_t d[100];
	for (int i = 0; i < 3; i++)
		peer_inject_udp(p, RPORT, LPORT, d, sizeof(d));
	CHECK_EQ(stats(p)->udp_in, 2); /* 2 * 116 fit in 300, a third does not */
	CHECK_EQ(stats(p)->udp_rcvbuf_errors, 1);
	CHECK_EQ(stats(p)->udp_in_errors, 1);
	CHECK_EQ(stats(p)->mem_failures, 1);
	uint8_t buf[128];
	CHECK_EQ(tern_recv(p->st, fd, buf, sizeof(buf), 0), 100);
	peer_inject_udp(p, RPORT, LPORT, d, sizeof(d));
	CHECK_EQ(stats(p)->udp_in, 3);
	peer_free(p);
}

TEST(udp_close_frees_everything)
{
	struct peer *p = udp_peer(NULL);
	int fd = udp_sock(p);
	size_t mem1 = mem_of(p);
	/* A socket costs its control block (64 bytes), nothing more until bound. */
	int other = udp_sock(p);
	CHECK_EQ(mem_of(p), mem1 + sizeof(struct tern_udp));
	CHECK_EQ(sizeof(struct tern_udp), 64);
	CHECK_EQ(tern_close(p->st, other), 0);
	CHECK_EQ(mem_of(p), mem1);
	/* The first bind brings the port table. */
	struct tern_sockaddr a = {0, LPORT};
	REQUIRE_EQ(tern_bind(p->st, fd, &a), 0);
	size_t table = 64 * sizeof(struct tern_udp *);
	CHECK_EQ(mem_of(p), mem1 + table);
	peer_inject_udp(p, RPORT, LPORT, "0123456789", 10);
	peer_inject_udp(p, RPORT, LPORT, "abc", 3);
	CHECK_EQ(mem_of(p), mem1 + table + 16 + 10 + 16 + 3);
	CHECK_EQ(tern_close(p->st, fd), 0);
	CHECK_EQ(mem_of(p), mem1 - sizeof(struct tern_udp) + table);
	struct tern_event ev[4];
	CHECK_EQ(tern_stack_events(p->st, ev, 4), 0); /* its pending event went with it */
	CHECK_EQ(tern_sock_events(p->st, fd), -EBADF);
	CHECK_EQ(tern_close(p->st, fd), -EBADF);
	/* The port is free again; a datagram for it now gets port unreachable. */
	peer_inject_udp(p, RPORT, LPORT, "late", 4);
	CHECK_EQ(stats(p)->udp_no_port, 1);
	CHECK_EQ(drain(p), 1);
	int fd2 = udp_bound(p, 0, LPORT);
	CHECK_EQ(fd2, fd); /* the lowest free descriptor */
	/* tern_abort frees the same way, and a stack freed with datagrams queued leaks none
	 * (AddressSanitizer's leak check). */
	peer_inject_udp(p, RPORT, LPORT, "kept", 4);
	int fd3 = udp_bound(p, 0, LPORT + 1);
	CHECK_EQ(tern_abort(p->st, fd3), 0);
	peer_free(p);
}

/* ========================================================================================= */
/* Demultiplexing                                                                             */
/* ========================================================================================= */

static int recv_on(struct peer *p, int fd, const char *want)
{
	char buf[32];
	long n = tern_recv(p->st, fd, buf, sizeof(buf), 0);
	if (n < 0)
		return 0;
	return (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

TEST(udp_connected_socket_filters_and_wins)
{
	struct peer *p = udp_peer(NULL);
	REQUIRE_EQ(tern_stack_add_addr(p->st, OTHER_LOCAL), 0);
	/* A connected socket takes datagrams from its peer only. */
	int c = udp_sock(p);
	set_reuse(p->st, c);
	struct tern_sockaddr a = {0, LPORT}, peer = {PEER_REMOTE, RPORT};
	REQUIRE_EQ(tern_bind(p->st, c, &a), 0);
	REQUIRE_EQ(tern_connect(p->st, c, &peer), 0);
	peer_inject_udp(p, RPORT, LPORT, "from peer", 9);
	CHECK(recv_on(p, c, "from peer"));
	peer_inject_udp(p, RPORT + 1, LPORT, "stranger", 8);
	CHECK_EQ(tern_recv(p->st, c, NULL, 0, 0), -EAGAIN);
	CHECK_EQ(stats(p)->udp_no_port, 1); /* nobody took it: as Linux, port unreachable */
	CHECK_EQ(drain(p), 1);
	/* An unconnected socket on the same port (bound later, so it would win a tie) takes
	 * the others; the connected one still wins its peer's. */
	int u = udp_sock(p);
	set_reuse(p->st, u);
	REQUIRE_EQ(tern_bind(p->st, u, &a), 0);
	peer_inject_udp(p, RPORT, LPORT, "to c", 4);
	peer_inject_udp(p, RPORT + 1, LPORT, "to u", 4);
	CHECK(recv_on(p, c, "to c"));
	CHECK(recv_on(p, u, "to u"));
	/* A connected socket's peer address counts as well as its port. */
	uint8_t pkt[64];
	size_t n = peer_build_udp(pkt, sizeof(pkt), TERN_IP4(10, 0, 0, 9), RPORT, PEER_LOCAL, LPORT,
				  "far", 3, true);
	peer_inject_raw(p, pkt, n);
	CHECK(recv_on(p, u, "far"));
	CHECK_EQ(tern_recv(p->st, c, NULL, 0, 0), -EAGAIN);
	/* A socket bound to the address wins over a wildcard one, whichever came first. */
	int w = udp_sock(p), s = udp_sock(p);
	set_reuse(p->st, w);
	set_reuse(p->st, s);
	struct tern_sockaddr aw = {0, LPORT + 1}, as = {PEER_LOCAL, LPORT + 1};
	REQUIRE_EQ(tern_bind(p->st, s, &as), 0);
	REQUIRE_EQ(tern_bind(p->st, w, &aw), 0);
	peer_inject_udp(p, RPORT, LPORT + 1, "specific", 8);
	CHECK(recv_on(p, s, "specific"));
	n = peer_build_udp(pkt, sizeof(pkt), PEER_REMOTE, RPORT, OTHER_LOCAL, LPORT + 1, "other", 5, true);
	peer_inject_raw(p, pkt, n);
	CHECK(recv_on(p, w, "other"));
	/* Between equals the socket bound last wins (Linux, without SO_REUSEPORT). */
	int e1 = udp_sock(p), e2 = udp_sock(p);
	set_reuse(p->st, e1);
	set_reuse(p->st, e2);
	struct tern_sockaddr ae = {0, LPORT + 2};
	REQUIRE_EQ(tern_bind(p->st, e1, &ae), 0);
	REQUIRE_EQ(tern_bind(p->st, e2, &ae), 0);
	peer_inject_udp(p, RPORT, LPORT + 2, "newest", 6);
	CHECK(recv_on(p, e2, "newest"));
	CHECK_EQ(tern_recv(p->st, e1, NULL, 0, 0), -EAGAIN);
	CHECK_EQ(tern_close(p->st, e2), 0);
	peer_inject_udp(p, RPORT, LPORT + 2, "older", 5);
	CHECK(recv_on(p, e1, "older"));
	peer_free(p);
}

TEST(udp_lookup_survives_table_growth)
{
	/* More sockets than buckets: the table doubles and every socket still gets its own. */
	struct peer *p = udp_peer(NULL);
	enum { N = 200 };
	static int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = udp_bound(p, 0, (uint16_t)(10000 + i));
	/* Two sockets sharing a port keep their order through the growth. */
	int a = udp_sock(p), b = udp_sock(p);
	set_reuse(p->st, a);
	set_reuse(p->st, b);
	struct tern_sockaddr sh = {0, 20000};
	REQUIRE_EQ(tern_bind(p->st, a, &sh), 0);
	REQUIRE_EQ(tern_bind(p->st, b, &sh), 0);
	for (int i = 0; i < N; i++) {
		uint8_t tag[2] = {(uint8_t)(i >> 8), (uint8_t)i};
		peer_inject_udp(p, RPORT, (uint16_t)(10000 + i), tag, 2);
	}
	for (int i = 0; i < N; i++) {
		uint8_t buf[4];
		if (tern_recv(p->st, fds[i], buf, sizeof(buf), 0) != 2 || buf[0] != (uint8_t)(i >> 8) ||
		    buf[1] != (uint8_t)i) {
			test_fail(__FILE__, __LINE__, "socket %d did not get its datagram", i);
			break;
		}
	}
	REQUIRE(p->st->umask + 1 == 256);
	for (int i = 0; i < 60; i++)
		udp_bound(p, 0, (uint16_t)(11000 + i)); /* grow again past the shared pair */
	CHECK_EQ(p->st->umask + 1, 512);
	peer_inject_udp(p, RPORT, 20000, "b", 1);
	CHECK(recv_on(p, b, "b"));
	CHECK_EQ(stats(p)->udp_no_port, 0);
	peer_free(p);
}

/* ========================================================================================= */
/* Ports: bind, conflicts, ephemeral choice                                                   */
/* ========================================================================================= */

TEST(udp_bind_conflicts)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	REQUIRE_EQ(tern_stack_add_addr(st, OTHER_LOCAL), 0);
	struct tern_sockaddr any5 = {0, LPORT}, loc5 = {PEER_LOCAL, LPORT};
	int s1 = udp_bound(p, 0, LPORT);
	int s2 = udp_sock(p);
	CHECK_EQ(tern_bind(st, s2, &any5), -EADDRINUSE);
	CHECK_EQ(tern_bind(st, s2, &loc5), -EADDRINUSE); /* wildcard covers every address */
	struct tern_sockaddr a;
	REQUIRE_EQ(tern_getsockname(st, s2, &a), 0);
	CHECK_EQ(a.port, 0); /* a failed bind leaves it unbound */
	/* Different specific addresses share a port; the same one does not. */
	struct tern_sockaddr loc6 = {PEER_LOCAL, 6000}, oth6 = {OTHER_LOCAL, 6000}, any6 = {0, 6000};
	int s3 = udp_sock(p), s4 = udp_sock(p), s5 = udp_sock(p);
	CHECK_EQ(tern_bind(st, s3, &loc6), 0);
	CHECK_EQ(tern_bind(st, s4, &oth6), 0);
	CHECK_EQ(tern_bind(st, s5, &loc6), -EADDRINUSE);
	CHECK_EQ(tern_bind(st, s5, &any6), -EADDRINUSE);
	/* SO_REUSEADDR on both sides shares a port; on one side does not. */
	struct tern_sockaddr any7 = {0, 7100};
	int r1 = udp_sock(p), r2 = udp_sock(p), r3 = udp_sock(p);
	set_reuse(st, r1);
	set_reuse(st, r2);
	CHECK_EQ(tern_bind(st, r1, &any7), 0);
	CHECK_EQ(tern_bind(st, r2, &any7), 0);
	CHECK_EQ(tern_bind(st, r3, &any7), -EADDRINUSE);
	struct tern_sockaddr any8 = {0, 7200};
	int n1 = udp_sock(p), r4 = udp_sock(p);
	set_reuse(st, r4);
	CHECK_EQ(tern_bind(st, n1, &any8), 0);
	CHECK_EQ(tern_bind(st, r4, &any8), -EADDRINUSE);
	int v = 0;
	size_t len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, r4, TERN_SOL_SOCKET, TERN_SO_REUSEADDR, &v, &len), 0);
	CHECK_EQ(v, 1);
	/* Bound once is bound; the address must be ours; TCP's ports are another space. */
	CHECK_EQ(tern_bind(st, s1, &oth6), -EINVAL);
	struct tern_sockaddr foreign = {TERN_IP4(10, 9, 9, 9), 7300};
	CHECK_EQ(tern_bind(st, s2, &foreign), -EADDRNOTAVAIL);
	CHECK_EQ(tern_bind(st, s2, NULL), -EINVAL);
	int t = tern_socket(st, TERN_SOCK_STREAM);
	CHECK_EQ(tern_bind(st, t, &any5), 0);
	/* Closing the holder frees the port. */
	CHECK_EQ(tern_close(st, s1), 0);
	CHECK_EQ(tern_bind(st, s2, &any5), 0);
	REQUIRE_EQ(tern_getsockname(st, s2, &a), 0);
	CHECK_EQ(a.addr, 0);
	CHECK_EQ(a.port, LPORT);
	peer_free(p);
}

static uint16_t bound_port(struct tern_stack *st, int fd)
{
	struct tern_sockaddr a;
	REQUIRE_EQ(tern_getsockname(st, fd, &a), 0);
	return a.port;
}

TEST(udp_ephemeral_port_choice)
{
	/* Port 0 takes a port at random from the range and the next free one up from there
	 * (RFC 6056 §3.3.1), exactly as tern_bind() does for TCP with the same random source. */
	uint64_t seed = test_seed(0x5eed);
	for (int round = 0; round < 8; round++) {
		struct tern_settings s;
		tern_settings_default(&s);
		s.seed = seed + (uint64_t)round;
		struct tern_sockaddr any = {0, 0};
		struct tern_stack *tcp = tern_stack_new(&s, 0), *udp = tern_stack_new(&s, 0),
				  *busy = tern_stack_new(&s, 0);
		REQUIRE(tcp && udp && busy);
		int tf = tern_socket(tcp, TERN_SOCK_STREAM), uf = tern_socket(udp, TERN_SOCK_DGRAM);
		REQUIRE_EQ(tern_bind(tcp, tf, &any), 0);
		REQUIRE_EQ(tern_bind(udp, uf, &any), 0);
		uint16_t pt = bound_port(tcp, tf), pu = bound_port(udp, uf);
		CHECK_EQ(pu, pt);
		CHECK(pu >= s.port_range_lo && pu <= s.port_range_hi);
		/* With that port taken by a UDP socket, the choice moves to the next one up
		 * (wrapping); a TCP socket on it does not count. */
		int holder = tern_socket(busy, TERN_SOCK_DGRAM), t2 = tern_socket(busy, TERN_SOCK_STREAM);
		struct tern_sockaddr taken = {0, pu};
		REQUIRE_EQ(tern_bind(busy, holder, &taken), 0);
		REQUIRE_EQ(tern_bind(busy, t2, &taken), 0);
		int next = tern_socket(busy, TERN_SOCK_DGRAM);
		REQUIRE_EQ(tern_bind(busy, next, &any), 0);
		CHECK_EQ(bound_port(busy, next), pu == s.port_range_hi ? s.port_range_lo : pu + 1u);
		tern_stack_free(tcp);
		tern_stack_free(udp);
		tern_stack_free(busy);
	}
}

TEST(udp_ephemeral_range_exhausted)
{
	struct tern_settings s;
	tern_settings_default(&s);
	s.port_range_lo = 40000;
	s.port_range_hi = 40002;
	struct peer *p = udp_peer(&s);
	struct tern_stack *st = p->st;
	struct tern_sockaddr any = {0, 0};
	int fds[3];
	unsigned seen = 0;
	for (int i = 0; i < 3; i++) {
		fds[i] = udp_sock(p);
		REQUIRE_EQ(tern_bind(st, fds[i], &any), 0);
		uint16_t port = bound_port(st, fds[i]);
		REQUIRE(port >= 40000 && port <= 40002);
		seen |= 1u << (port - 40000);
	}
	CHECK_EQ(seen, 7);
	int more = udp_sock(p);
	CHECK_EQ(tern_bind(st, more, &any), -EADDRINUSE);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	CHECK_EQ(tern_sendto(st, more, "x", 1, 0, &to), -EAGAIN); /* Linux's failed autobind */
	CHECK_EQ(tern_connect(st, more, &to), -EAGAIN);
	CHECK_EQ(peer_pending(p), 0);
	uint16_t freed = bound_port(st, fds[1]);
	CHECK_EQ(tern_close(st, fds[1]), 0);
	CHECK_EQ(tern_sendto(st, more, "x", 1, 0, &to), 1);
	struct cap c;
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 20), freed);
	peer_free(p);
}

/* ========================================================================================= */
/* connect(), shutdown(), options, the calls UDP does not have                                */
/* ========================================================================================= */

TEST(udp_connect_and_disconnect)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	int fd = udp_sock(p);
	struct tern_sockaddr peer = {PEER_REMOTE, RPORT}, a;
	CHECK_EQ(tern_getpeername(st, fd, &a), -ENOTCONN);
	CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_CLOSED);
	CHECK_EQ(tern_connect(st, fd, &peer), 0); /* at once: nothing goes on the wire */
	CHECK_EQ(peer_pending(p), 0);
	CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_ESTABLISHED);
	REQUIRE_EQ(tern_getsockname(st, fd, &a), 0);
	CHECK_EQ(a.addr, PEER_LOCAL); /* connect() chose the source */
	uint16_t port = a.port;
	CHECK(port >= 32768 && port <= 60999);
	REQUIRE_EQ(tern_getpeername(st, fd, &a), 0);
	CHECK_EQ(a.addr, PEER_REMOTE);
	CHECK_EQ(a.port, RPORT);
	CHECK_EQ(tern_send(st, fd, "one", 3, 0), 3);
	struct cap c;
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd32(c.pkt + 16), PEER_REMOTE);
	CHECK_EQ(rd16(c.pkt + 20), port);
	CHECK_EQ(rd16(c.pkt + 22), RPORT);
	/* connect() again changes the peer; sendto() may still name another. */
	struct tern_sockaddr peer2 = {PEER_REMOTE, RPORT + 5}, elsewhere = {TERN_IP4(10, 0, 0, 7), 53};
	CHECK_EQ(tern_connect(st, fd, &peer2), 0);
	CHECK_EQ(tern_send(st, fd, "two", 3, 0), 3);
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 22), RPORT + 5);
	CHECK_EQ(rd16(c.pkt + 20), port);
	CHECK_EQ(tern_sendto(st, fd, "three", 5, 0, &elsewhere), 5);
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd32(c.pkt + 16), TERN_IP4(10, 0, 0, 7));
	CHECK_EQ(rd16(c.pkt + 22), 53);
	/* Bad peers. */
	struct tern_sockaddr addr0 = {0, RPORT}, bcast = {TERN_IP4(255, 255, 255, 255), RPORT};
	CHECK_EQ(tern_connect(st, fd, &addr0), -EADDRNOTAVAIL);
	CHECK_EQ(tern_connect(st, fd, &bcast), -EACCES);
	CHECK_EQ(tern_connect(st, fd, NULL), -EINVAL);
	REQUIRE_EQ(tern_getpeername(st, fd, &a), 0);
	CHECK_EQ(a.port, RPORT + 5);
	/* {0, 0} disconnects (AF_UNSPEC): the peer goes, and the port and address connect()
	 * chose go with it. */
	struct tern_sockaddr unspec = {0, 0};
	CHECK_EQ(tern_connect(st, fd, &unspec), 0);
	CHECK_EQ(tern_sock_state(st, fd), TERN_STATE_CLOSED);
	CHECK_EQ(tern_getpeername(st, fd, &a), -ENOTCONN);
	REQUIRE_EQ(tern_getsockname(st, fd, &a), 0);
	CHECK_EQ(a.addr, 0);
	CHECK_EQ(a.port, 0);
	CHECK_EQ(tern_send(st, fd, "x", 1, 0), -EDESTADDRREQ);
	peer_inject_udp(p, RPORT + 5, port, "late", 4);
	CHECK_EQ(stats(p)->udp_no_port, 1);
	drain(p);
	/* What bind() named stays through a disconnect. */
	int b = udp_bound(p, PEER_LOCAL, LPORT);
	CHECK_EQ(tern_connect(st, b, &peer), 0);
	CHECK_EQ(tern_connect(st, b, &unspec), 0);
	REQUIRE_EQ(tern_getsockname(st, b, &a), 0);
	CHECK_EQ(a.addr, PEER_LOCAL);
	CHECK_EQ(a.port, LPORT);
	peer_inject_udp(p, RPORT + 9, LPORT, "any peer", 8);
	CHECK(recv_on(p, b, "any peer"));
	/* bind(addr, 0): the address stays, the chosen port does not (Linux's bind locks). */
	int h = udp_bound(p, PEER_LOCAL, 0);
	CHECK_EQ(tern_connect(st, h, &peer), 0);
	CHECK_EQ(tern_connect(st, h, &unspec), 0);
	REQUIRE_EQ(tern_getsockname(st, h, &a), 0);
	CHECK_EQ(a.addr, PEER_LOCAL);
	CHECK_EQ(a.port, 0);
	peer_free(p);
}

TEST(udp_shutdown_as_linux)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	int fd = udp_bound(p, 0, LPORT);
	struct tern_sockaddr to = {PEER_REMOTE, RPORT};
	/* Unconnected: ENOTCONN, yet recorded. */
	CHECK_EQ(tern_shutdown(st, fd, TERN_SHUT_WR), -ENOTCONN);
	CHECK_EQ(tern_sendto(st, fd, "x", 1, 0, &to), -EPIPE);
	CHECK_EQ(tern_sock_events(st, fd), TERN_EV_OUT);
	CHECK_EQ(tern_shutdown(st, fd, 7), -EINVAL);
	/* Reading side: datagrams still queue and are read; then receive returns 0. */
	int c = udp_sock(p);
	REQUIRE_EQ(tern_connect(st, c, &to), 0);
	uint16_t port = bound_port(st, c);
	struct tern_event ev[4];
	tern_stack_events(st, ev, 4);
	CHECK_EQ(tern_shutdown(st, c, TERN_SHUT_RD), 0);
	REQUIRE_EQ(tern_stack_events(st, ev, 4), 1);
	CHECK_EQ(ev[0].fd, c);
	CHECK_EQ(ev[0].events, TERN_EV_IN | TERN_EV_RDHUP | TERN_EV_OUT);
	peer_inject_udp(p, RPORT, port, "still", 5);
	CHECK(recv_on(p, c, "still"));
	char buf[8];
	CHECK_EQ(tern_recv(st, c, buf, sizeof(buf), 0), 0);
	CHECK_EQ(tern_send(st, c, "ok", 2, 0), 2);
	CHECK_EQ(tern_shutdown(st, c, TERN_SHUT_RDWR), 0);
	CHECK_EQ(tern_sock_events(st, c), TERN_EV_IN | TERN_EV_RDHUP | TERN_EV_OUT | TERN_EV_HUP);
	CHECK_EQ(tern_send(st, c, "no", 2, 0), -EPIPE);
	CHECK_EQ(drain(p), 1);
	peer_free(p);
}

TEST(udp_tcp_only_calls_refused)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	int fd = udp_bound(p, 0, LPORT);
	struct tern_iovec iov[2];
	struct tern_wiovec wiov[2];
	unsigned n;
	struct tern_tcp_info info;
	CHECK_EQ(tern_listen(st, fd, 5), -EOPNOTSUPP);
	CHECK_EQ(tern_accept(st, fd, NULL), -EOPNOTSUPP);
	CHECK_EQ(tern_sockatmark(st, fd), -EOPNOTSUPP);
	CHECK_EQ(tern_recv_zc(st, fd, iov, &n), -EOPNOTSUPP);
	CHECK_EQ(tern_recv_consume(st, fd, 0), -EOPNOTSUPP);
	CHECK_EQ(tern_send_zc(st, fd, wiov, &n), -EOPNOTSUPP);
	CHECK_EQ(tern_send_commit(st, fd, 1, 0), -EOPNOTSUPP);
	CHECK_EQ(tern_sock_info(st, fd, &info), -EOPNOTSUPP);
	/* No such descriptor is still EBADF. */
	CHECK_EQ(tern_listen(st, 99, 5), -EBADF);
	CHECK_EQ(tern_sendto(st, 99, "x", 1, 0, NULL), -EBADF);
	CHECK_EQ(tern_recvfrom(st, 99, NULL, 0, 0, NULL), -EBADF);
	/* Options: socket-level ones that mean something for datagrams. */
	int v = 1;
	size_t len = sizeof(v);
	CHECK_EQ(tern_setsockopt(st, fd, TERN_IPPROTO_TCP, TERN_TCP_NODELAY, &v, sizeof(v)), -ENOPROTOOPT);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_IPPROTO_TCP, TERN_TCP_INFO, &info, &len), -ENOPROTOOPT);
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_KEEPALIVE, &v, sizeof(v)), -ENOPROTOOPT);
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, 1), -EINVAL);
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &v, &len), 0);
	CHECK_EQ(v, 16384);
	v = 100000;
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &v, sizeof(v)), 0);
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_SNDBUF, &v, &len), 0);
	CHECK_EQ(v, 100000);
	v = 1 << 30;
	CHECK_EQ(tern_setsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, sizeof(v)), 0);
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_RCVBUF, &v, &len), 0);
	CHECK_EQ(v, 6291456); /* clamped to rmem_max */
	len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &v, &len), 0);
	CHECK_EQ(v, 0);
	/* On a TCP socket the datagram calls are send and receive: the address is ignored
	 * on the way out and comes back empty. */
	int t = tern_socket(st, TERN_SOCK_STREAM);
	struct tern_sockaddr from = {1, 1}, to = {PEER_REMOTE, RPORT};
	char buf[4];
	CHECK_EQ(tern_recvfrom(st, t, buf, sizeof(buf), 0, &from), -ENOTCONN);
	CHECK_EQ(from.addr, 0);
	CHECK_EQ(from.port, 0);
	CHECK_EQ(tern_sendto(st, t, "x", 1, 0, &to), -ENOTCONN);
	CHECK_EQ(peer_pending(p), 0);
	/* Listing is TCP's: the UDP socket is not a connection. */
	CHECK_EQ(tern_stack_foreach(st, NULL, NULL), 0);
	peer_free(p);
}

/* ========================================================================================= */
/* ICMP port unreachable out                                                                  */
/* ========================================================================================= */

TEST(udp_no_port_answered_with_icmp_exact_bytes)
{
	struct peer *p = udp_peer(NULL);
	uint8_t dg[64];
	size_t n = peer_build_udp(dg, sizeof(dg), PEER_REMOTE, RPORT, PEER_LOCAL, CLOSED_PORT,
				  "0123456789", 10, true);
	peer_inject_raw(p, dg, n);
	struct cap c;
	REQUIRE(pop(p, &c));
	/* IPv4: 20 + ICMP 8 + quoted header 20 + 8 bytes of the datagram. */
	REQUIRE_EQ(c.len, 56);
	CHECK_EQ(c.pkt[0], 0x45);
	CHECK_EQ(c.pkt[1], 0);
	CHECK_EQ(rd16(c.pkt + 2), 56);
	CHECK_EQ(rd16(c.pkt + 6), 0); /* no DF: ICMP may be fragmented (Linux's PMTUDISC_DONT) */
	CHECK_EQ(c.pkt[8], 64);
	CHECK_EQ(c.pkt[9], TERN_IPPROTO_ICMP);
	CHECK_EQ(ref_fold(ref_add(0, c.pkt, 20)), 0xffff);
	CHECK_EQ(rd32(c.pkt + 12), PEER_LOCAL);
	CHECK_EQ(rd32(c.pkt + 16), PEER_REMOTE);
	/* ICMP: type 3, code 3, checksum, 4 unused bytes of zero (RFC 792). */
	const uint8_t *ic = c.pkt + 20;
	CHECK_EQ(ic[0], 3);
	CHECK_EQ(ic[1], 3);
	CHECK_EQ(ref_fold(ref_add(0, ic, 36)), 0xffff);
	const uint8_t zero[4] = {0};
	CHECK_MEM(ic + 4, zero, 4);
	/* The quote: the datagram's IPv4 header and its first 8 bytes, the UDP header. */
	CHECK_MEM(ic + 8, dg, 28);
	uint16_t id = rd16(c.pkt + 4);
	CHECK(!pop(p, &c));
	CHECK_EQ(stats(p)->udp_no_port, 1);
	CHECK_EQ(stats(p)->icmp_out, 1);
	CHECK_EQ(stats(p)->icmp_port_unreach_out, 1);
	CHECK_EQ(stats(p)->udp_in, 0);
	CHECK_EQ(stats(p)->udp_in_errors, 0);
	/* The next message carries the next IPv4 identification. */
	peer_inject_raw(p, dg, n);
	REQUIRE(pop(p, &c));
	CHECK_EQ(rd16(c.pkt + 4), (uint16_t)(id + 1));
	/* With IPv4 options the quoted header is the whole of it (IHL 6 here). */
	uint8_t opt[64];
	memcpy(opt, dg, 20);
	memset(opt + 20, 1, 4); /* NOPs */
	memcpy(opt + 24, dg + 20, n - 20);
	opt[0] = 0x46;
	wr16(opt + 2, (uint16_t)(n + 4));
	fix_ip_csum(opt);
	peer_inject_raw(p, opt, n + 4);
	REQUIRE(pop(p, &c));
	REQUIRE_EQ(c.len, 60);
	CHECK_MEM(c.pkt + 28, opt, 32);
	CHECK_EQ(ref_fold(ref_add(0, c.pkt + 20, 40)), 0xffff);
	peer_free(p);
}

static size_t inject_closed(struct peer *p, uint32_t src, uint32_t dst, int count)
{
	uint8_t dg[64];
	size_t n = peer_build_udp(dg, sizeof(dg), src, RPORT, dst, CLOSED_PORT, "q", 1, true);
	for (int i = 0; i < count; i++)
		peer_inject_raw(p, dg, n);
	return drain(p);
}

TEST(udp_icmp_rate_limited_per_destination)
{
	/* Linux's defaults: a destination's bucket holds 6 messages and refills one per
	 * icmp_ratelimit (1000 ms). */
	struct peer *p = udp_peer(NULL);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 10), 6);
	CHECK_EQ(stats(p)->udp_no_port, 10);
	CHECK_EQ(stats(p)->icmp_port_unreach_out, 6);
	CHECK_EQ(stats(p)->icmp_ratelimit_host, 4);
	CHECK_EQ(stats(p)->icmp_ratelimit_global, 0);
	peer_advance(p, 999 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 1), 0);
	peer_advance(p, 1 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 1), 1);
	peer_advance(p, 1000 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 2), 1);
	/* A long silence refills the bucket, never past 6. */
	peer_advance(p, 60 * PEER_S);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 10), 6);
	CHECK_EQ(stats(p)->icmp_port_unreach_out, 14);
	CHECK_EQ(stats(p)->udp_no_port, 24);
	/* Datagrams from the stack's own address are never limited (Linux's loopback). */
	CHECK_EQ(inject_closed(p, PEER_LOCAL, PEER_LOCAL, 10), 10);
	peer_free(p);
}

TEST(udp_icmp_ratelimit_settings)
{
	struct tern_settings s;
	tern_settings_default(&s);
	/* Types outside icmp_ratemask are not limited at all. */
	REQUIRE_EQ(tern_settings_set(&s, "icmp_ratemask", "0"), 0);
	struct peer *p = udp_peer(&s);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 20), 20);
	CHECK_EQ(stats(p)->icmp_ratelimit_host + stats(p)->icmp_ratelimit_global, 0);
	peer_free(p);
	/* icmp_ratelimit 250 ms: a refill every quarter second. */
	tern_settings_default(&s);
	REQUIRE_EQ(tern_settings_set(&s, "icmp_ratelimit", "250ms"), 0);
	p = udp_peer(&s);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 8), 6);
	peer_advance(p, 249 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 1), 0);
	peer_advance(p, 1 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 2), 1);
	peer_free(p);
	/* icmp_ratelimit 0: no per-destination limit; the stack-wide bucket (burst 5 here)
	 * still holds: about 5 go, each costing 0, 1 or 2 credits at random. */
	tern_settings_default(&s);
	REQUIRE_EQ(tern_settings_set(&s, "icmp_ratelimit", "0"), 0);
	REQUIRE_EQ(tern_settings_set(&s, "icmp_msgs_burst", "5"), 0);
	p = udp_peer(&s);
	size_t sent = inject_closed(p, PEER_REMOTE, PEER_LOCAL, 100);
	CHECK(sent >= 3 && sent <= 20);
	CHECK_EQ(stats(p)->icmp_ratelimit_global, 100 - sent);
	CHECK_EQ(stats(p)->icmp_ratelimit_host, 0);
	/* The stack-wide refill waits 20 ms, then grants icmp_msgs_per_sec's share. */
	peer_advance(p, 19 * PEER_MS);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 10), 0);
	peer_advance(p, 1 * PEER_MS);
	size_t again = inject_closed(p, PEER_REMOTE, PEER_LOCAL, 10);
	CHECK(again >= 1 && again <= 10);
	peer_free(p);
	/* Settings read back under Linux's names and defaults. */
	tern_settings_default(&s);
	char buf[32];
	CHECK(tern_settings_get(&s, "icmp_ratelimit", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "1000ms");
	CHECK(tern_settings_get(&s, "icmp_ratemask", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "6168"); /* 0x1818 */
	CHECK(tern_settings_get(&s, "icmp_msgs_per_sec", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "1000");
	CHECK(tern_settings_get(&s, "icmp_msgs_burst", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "50");
	CHECK_EQ(tern_settings_set(&s, "icmp_ratemask", "0x1818"), 0);
	CHECK_EQ(s.icmp_ratemask, 0x1818);
}

TEST(udp_no_icmp_for_broadcast_multicast_or_bad_sources)
{
	/* RFC 1122 §3.2.2: no error about a datagram to a broadcast or multicast address, or
	 * from an address that is not one host's. */
	struct peer *p = udp_peer(NULL);
	REQUIRE_EQ(tern_stack_add_addr(p->st, TERN_IP4(224, 0, 0, 9)), 0);
	REQUIRE_EQ(tern_stack_add_addr(p->st, TERN_IP4(255, 255, 255, 255)), 0);
	REQUIRE_EQ(tern_stack_add_addr(p->st, TERN_IP4(240, 0, 0, 1)), 0);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, TERN_IP4(224, 0, 0, 9), 1), 0);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, TERN_IP4(255, 255, 255, 255), 1), 0);
	CHECK_EQ(inject_closed(p, PEER_REMOTE, TERN_IP4(240, 0, 0, 1), 1), 0);
	CHECK_EQ(inject_closed(p, 0, PEER_LOCAL, 1), 0);
	CHECK_EQ(inject_closed(p, TERN_IP4(230, 1, 2, 3), PEER_LOCAL, 1), 0);
	CHECK_EQ(inject_closed(p, TERN_IP4(255, 255, 255, 255), PEER_LOCAL, 1), 0);
	CHECK_EQ(stats(p)->udp_no_port, 6);
	CHECK_EQ(stats(p)->icmp_out, 0);
	CHECK_EQ(stats(p)->icmp_ratelimit_host, 0); /* refused before the limiter */
	/* The control: an ordinary source is answered. */
	CHECK_EQ(inject_closed(p, PEER_REMOTE, PEER_LOCAL, 1), 1);
	peer_free(p);
}

TEST(icmp_error_never_answers_an_icmp_error)
{
	/* icmp_send_error() itself: never about an ICMP error message (nor an unknown type),
	 * while an informational message may draw one. */
	struct peer *p = udp_peer(NULL);
	uint8_t pkt[64], quote[28] = {0x45};
	static const struct {
		uint8_t type;
		bool answered;
	} cases[] = {{3, false}, {4, false}, {5, false}, {11, false}, {12, false}, {200, false},
		     {8, true},  {0, true},  {13, true}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = build_icmp(pkt, PEER_REMOTE, PEER_LOCAL, cases[i].type, 0, quote, sizeof(quote));
		struct tern_ip4 ip;
		REQUIRE_EQ(tern_ip4_parse(pkt, n, &ip), TERN_IP4_OK);
		bool sent = icmp_send_error(p->st, &ip, 3, 3);
		if (sent != cases[i].answered || drain(p) != (size_t)cases[i].answered)
			test_fail(__FILE__, __LINE__, "type %u: answered %d", cases[i].type, sent);
	}
	peer_free(p);
}

/* ========================================================================================= */
/* ICMP errors in: the connected socket hears of them                                         */
/* ========================================================================================= */

/* Send "x" on fd (to `to`, or the peer) and answer it with an ICMP error quoting qlen bytes. */
static void bounce(struct peer *p, int fd, const struct tern_sockaddr *to, uint8_t type,
		   uint8_t code, size_t qlen)
{
	REQUIRE_EQ(tern_sendto(p->st, fd, "x", 1, 0, to), 1);
	struct cap c;
	REQUIRE(pop(p, &c));
	uint8_t sent[64];
	memcpy(sent, c.pkt, c.len);
	uint8_t icmp[128];
	size_t n = build_icmp(icmp, PEER_REMOTE, PEER_LOCAL, type, code, sent, qlen);
	peer_inject_raw(p, icmp, n);
}

TEST(udp_econnrefused_after_port_unreachable)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	int fd = udp_sock(p);
	struct tern_sockaddr peer = {PEER_REMOTE, RPORT};
	REQUIRE_EQ(tern_connect(st, fd, &peer), 0);
	uint16_t port = bound_port(st, fd);
	struct tern_event ev[4];
	tern_stack_events(st, ev, 4);
	bounce(p, fd, NULL, 3, 3, 28);
	CHECK_EQ(peer_pending(p), 0);
	REQUIRE_EQ(tern_stack_events(st, ev, 4), 1);
	CHECK_EQ(ev[0].fd, fd);
	CHECK_EQ(ev[0].events, TERN_EV_ERR | TERN_EV_OUT);
	CHECK_EQ(p->last_error, ECONNREFUSED);
	/* The next send reports it, once. */
	CHECK_EQ(tern_send(st, fd, "y", 1, 0), -ECONNREFUSED);
	CHECK_EQ(tern_sock_events(st, fd), TERN_EV_OUT);
	CHECK_EQ(tern_send(st, fd, "y", 1, 0), 1);
	CHECK_EQ(drain(p), 1);
	/* ... or the next receive, before a datagram that waits. */
	bounce(p, fd, NULL, 3, 3, 28);
	peer_inject_udp(p, RPORT, port, "data", 4);
	CHECK_EQ(tern_sock_events(st, fd), TERN_EV_ERR | TERN_EV_IN | TERN_EV_OUT);
	char buf[8];
	CHECK_EQ(tern_recv(st, fd, buf, sizeof(buf), 0), -ECONNREFUSED);
	CHECK(recv_on(p, fd, "data"));
	/* ... or TERN_SO_ERROR, which clears it. */
	bounce(p, fd, NULL, 3, 3, 28);
	int v = 0;
	size_t len = sizeof(v);
	CHECK_EQ(tern_getsockopt(st, fd, TERN_SOL_SOCKET, TERN_SO_ERROR, &v, &len), 0);
	CHECK_EQ(v, ECONNREFUSED);
	CHECK_EQ(tern_send(st, fd, "z", 1, 0), 1);
	CHECK_EQ(drain(p), 1);
	/* A quote longer than 8 bytes of the datagram works as well. */
	bounce(p, fd, NULL, 3, 3, 29);
	CHECK_EQ(tern_recv(st, fd, buf, sizeof(buf), 0), -ECONNREFUSED);
	peer_free(p);
}

TEST(udp_icmp_errors_ignored_unless_connected_and_hard)
{
	struct peer *p = udp_peer(NULL);
	struct tern_stack *st = p->st;
	struct tern_sockaddr peer = {PEER_REMOTE, RPORT}, other = {PEER_REMOTE, RPORT + 1};
	/* Unconnected: Linux without IP_RECVERR says nothing. */
	int u = udp_bound(p, 0, LPORT);
	bounce(p, u, &peer, 3, 3, 28);
	CHECK_EQ(tern_sock_events(st, u), TERN_EV_OUT);
	CHECK_EQ(tern_sendto(st, u, "x", 1, 0, &peer), 1);
	CHECK_EQ(drain(p), 1);
	/* Connected, but the quoted datagram went to another peer (sendto with an address). */
	int c = udp_sock(p);
	REQUIRE_EQ(tern_connect(st, c, &peer), 0);
	bounce(p, c, &other, 3, 3, 28);
	CHECK_EQ(tern_sock_events(st, c), TERN_EV_OUT);
	/* Transient codes (RFC 1122 §3.2.2.1: net and host unreachable, ...) are not reported;
	 * neither is fragmentation needed (no path MTU discovery yet) nor time exceeded. */
	static const uint8_t soft[][2] = {{3, 0}, {3, 1}, {3, 4}, {3, 5}, {3, 11}, {3, 12}, {3, 16}, {11, 0}, {4, 0}};
	for (size_t i = 0; i < sizeof(soft) / sizeof(soft[0]); i++) {
		bounce(p, c, NULL, soft[i][0], soft[i][1], 28);
		if (tern_sock_events(st, c) != TERN_EV_OUT)
			test_fail(__FILE__, __LINE__, "type %u code %u reported", soft[i][0], soft[i][1]);
	}
	/* Hard ones are, with Linux's errno. */
	static const struct {
		uint8_t type, code;
		int err;
	} hard[] = {{3, 2, ENOPROTOOPT}, {3, 3, ECONNREFUSED}, {3, 6, ENETUNREACH},
		    {3, 7, EHOSTDOWN},   {3, 10, EHOSTUNREACH}, {3, 13, EHOSTUNREACH},
		    {12, 0, EPROTO}};
	for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
		bounce(p, c, NULL, hard[i].type, hard[i].code, 28);
		long rc = tern_send(st, c, "y", 1, 0);
		if (rc != -hard[i].err)
			test_fail(__FILE__, __LINE__, "type %u code %u: %ld, want %d", hard[i].type,
				  hard[i].code, rc, -hard[i].err);
	}
	/* Too little quoted to tell the datagram: counted as a bad ICMP message. */
	uint64_t bad = stats(p)->icmp_bad;
	bounce(p, c, NULL, 3, 3, 27);
	CHECK_EQ(tern_sock_events(st, c), TERN_EV_OUT);
	CHECK_EQ(stats(p)->icmp_bad, bad + 1);
	peer_free(p);
}

/* ========================================================================================= */
/* Two stacks on the simulated wire                                                           */
/* ========================================================================================= */

#define SIM_A TERN_IP4(10, 1, 0, 1)
#define SIM_B TERN_IP4(10, 1, 0, 2)
#define ECHO_PORT 7

struct echo {
	int host, fd;
	int echoed;
	uint64_t got_at;
	int cfd;
	int client;
};

static void on_event(struct tern_sim *sim, int host, const struct tern_event *ev, void *user)
{
	struct echo *e = user;
	struct tern_stack *st = tern_sim_stack(sim, host);
	if (host == e->host && ev->fd == e->fd && (ev->events & TERN_EV_IN)) {
		/* The echo server: each datagram back to whoever sent it. */
		char buf[64];
		struct tern_sockaddr from;
		long n;
		while ((n = tern_recvfrom(st, e->fd, buf, sizeof(buf), 0, &from)) >= 0) {
			if (tern_sendto(st, e->fd, buf, (size_t)n, 0, &from) == n)
				e->echoed++;
		}
	}
	if (host == e->client && ev->fd == e->cfd && (ev->events & TERN_EV_IN) && !e->got_at)
		e->got_at = tern_sim_now(sim);
}

TEST(udp_sim_round_trip)
{
	struct tern_sim *sim = tern_sim_new(test_seed(11));
	REQUIRE(sim);
	int a = tern_sim_add_host(sim, "a", SIM_A, NULL), b = tern_sim_add_host(sim, "b", SIM_B, NULL);
	REQUIRE(a >= 0 && b >= 0);
	struct tern_impair imp;
	memset(&imp, 0, sizeof(imp));
	imp.delay_us = 1000;
	tern_sim_set_impair(sim, -1, -1, &imp);
	struct tern_stack *sa = tern_sim_stack(sim, a), *sb = tern_sim_stack(sim, b);
	struct echo e = {b, tern_socket(sb, TERN_SOCK_DGRAM), 0, 0, -1, a};
	REQUIRE(e.fd >= 0);
	struct tern_sockaddr echo_addr = {0, ECHO_PORT};
	REQUIRE_EQ(tern_bind(sb, e.fd, &echo_addr), 0);
	tern_sim_on_event(sim, on_event, &e);
	e.cfd = tern_socket(sa, TERN_SOCK_DGRAM);
	REQUIRE(e.cfd >= 0);
	struct tern_sockaddr to = {SIM_B, ECHO_PORT};
	uint64_t t0 = tern_sim_now(sim);
	CHECK_EQ(tern_sendto(sa, e.cfd, "hello, b", 8, 0, &to), 8);
	/* One millisecond each way: nothing back before 2 ms. */
	tern_sim_run_until(sim, t0 + 1999);
	char buf[32];
	CHECK_EQ(tern_recv(sa, e.cfd, buf, sizeof(buf), 0), -EAGAIN);
	CHECK_EQ(e.echoed, 1);
	tern_sim_run_until(sim, t0 + 2000);
	struct tern_sockaddr from;
	CHECK_EQ(tern_recvfrom(sa, e.cfd, buf, sizeof(buf), 0, &from), 8);
	CHECK_MEM(buf, "hello, b", 8);
	CHECK_EQ(from.addr, SIM_B);
	CHECK_EQ(from.port, ECHO_PORT);
	CHECK_EQ(e.got_at, t0 + 2000);
	CHECK_EQ(tern_stack_stats(sa)->udp_out, 1);
	CHECK_EQ(tern_stack_stats(sa)->udp_in, 1);
	CHECK_EQ(tern_stack_stats(sb)->udp_in, 1);
	CHECK_EQ(tern_stack_stats(sb)->udp_out, 1);
	/* A connected socket aimed at a closed port hears ECONNREFUSED one round trip later. */
	int c = tern_socket(sa, TERN_SOCK_DGRAM);
	struct tern_sockaddr closed = {SIM_B, 4444};
	REQUIRE_EQ(tern_connect(sa, c, &closed), 0);
	uint64_t t1 = tern_sim_now(sim);
	CHECK_EQ(tern_send(sa, c, "anyone?", 7, 0), 7);
	tern_sim_run_until(sim, t1 + 1999);
	CHECK_EQ(tern_sock_events(sa, c), TERN_EV_OUT);
	tern_sim_run_until(sim, t1 + 2000);
	CHECK_EQ(tern_sock_events(sa, c), TERN_EV_OUT | TERN_EV_ERR);
	CHECK_EQ(tern_send(sa, c, "again", 5, 0), -ECONNREFUSED);
	CHECK_EQ(tern_stack_stats(sb)->udp_no_port, 1);
	CHECK_EQ(tern_stack_stats(sb)->icmp_port_unreach_out, 1);
	CHECK_EQ(tern_stack_stats(sa)->icmp_in, 1);
	/* No TCP was involved. */
	CHECK_EQ(tern_stack_stats(sa)->tcp_out + tern_stack_stats(sb)->tcp_out, 0);
	tern_sim_free(sim);
}
