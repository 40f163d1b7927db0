/*
 * The link interface's extras: checksum offload (TERN_LINK_CSUM_TX / TERN_LINK_CSUM_RX) and
 * batched input (tern_stack_input_batch). One stack at 10.0.0.1 with a capturing link; the
 * test plays the peer at 10.0.0.2 with hand-built segments.
 */
#include "test.h"
#include "wire.h"
#include "tern/tern.h"

#include <stdlib.h>

#define ME TERN_IP4(10, 0, 0, 1)
#define PEER TERN_IP4(10, 0, 0, 2)

struct cap {
	uint8_t pkt[64][2048];
	size_t len[64];
	unsigned n;
};

static int cap_tx(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	struct cap *c = ctx;
	if (c->n == 64 || total > 2048)
		return -ENOBUFS;
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(c->pkt[c->n] + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	c->len[c->n++] = total;
	return 0;
}

struct io {
	struct tern_stack *st;
	struct cap cap;
	int lfd, fd;
	uint32_t iss, irs, nxt; /* nxt: the peer's next sequence number */
	uint64_t now;
};

/* A TCP segment from the peer (port 40000 -> 80), checksum right unless bad. */
static size_t build(uint8_t *pkt, uint16_t flags, uint32_t seq, uint32_t ack, const void *data,
		    size_t len, int bad)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.src = PEER;
	h.dst = ME;
	h.sport = 40000;
	h.dport = 80;
	h.seq = seq;
	h.ack = ack;
	h.flags = flags;
	h.win = 65535;
	h.len = (uint32_t)len;
	if (flags & TERN_TH_SYN) {
		h.opts.has = TERN_OPT_MSS;
		h.opts.mss = 1460;
	}
	size_t hl = tern_tcp_build(pkt + 20, &h);
	if (len)
		memcpy(pkt + 20 + hl, data, len);
	struct tern_iovec iov = {pkt + 20, hl + len};
	uint16_t c = tern_csum_iov(tern_csum_pseudo(PEER, ME, 6, (uint16_t)(hl + len)), &iov, 1);
	if (bad)
		c ^= 0x0101;
	memcpy(pkt + 20 + 16, &c, 2);
	tern_ip4_build(pkt, PEER, ME, 6, 64, 0, 1, (uint16_t)(hl + len));
	return 20 + hl + len;
}

static void inject(struct io *io, uint16_t flags, uint32_t seq, const void *data, size_t len, int bad)
{
	uint8_t pkt[2048];
	size_t n = build(pkt, flags, seq, io->iss + 1, data, len, bad);
	tern_stack_input(io->st, pkt, n, io->now);
}

static struct tern_tcp_seg parse(const struct io *io, unsigned i)
{
	struct tern_ip4 ip;
	struct tern_tcp_seg s;
	memset(&s, 0, sizeof(s));
	REQUIRE_EQ(tern_ip4_parse(io->cap.pkt[i], io->cap.len[i], &ip), TERN_IP4_OK);
	/* Sent with TX offload the checksum is partial, so parse without verifying it. */
	REQUIRE_EQ(tern_tcp_parse_trusted(ip.payload, ip.payload_len, ip.src, ip.dst, &s), TERN_TCP_OK);
	return s;
}

/* An established passive connection: the listener on 80, the handshake from the peer. */
static void open_io(struct io *io, unsigned flags)
{
	memset(io, 0, sizeof(*io));
	io->now = 1000000;
	io->st = tern_stack_new(NULL, io->now);
	REQUIRE(io->st);
	tern_stack_add_addr(io->st, ME);
	struct tern_link l = {.transmit = cap_tx, .ctx = &io->cap, .flags = flags};
	tern_stack_set_link(io->st, &l);
	io->lfd = tern_socket(io->st, TERN_SOCK_STREAM);
	struct tern_sockaddr a = {0, 80};
	REQUIRE_EQ(tern_bind(io->st, io->lfd, &a), 0);
	REQUIRE_EQ(tern_listen(io->st, io->lfd, 8), 0);
	io->irs = 5000;
	uint8_t pkt[2048];
	size_t n = build(pkt, TERN_TH_SYN, io->irs, 0, NULL, 0, 0);
	tern_stack_input(io->st, pkt, n, io->now);
	REQUIRE_EQ(io->cap.n, 1);
	struct tern_tcp_seg synack = parse(io, 0);
	io->iss = synack.h.seq;
	io->nxt = io->irs + 1;
	io->cap.n = 0;
	inject(io, TERN_TH_ACK, io->nxt, NULL, 0, 0);
	io->fd = tern_accept(io->st, io->lfd, NULL);
	REQUIRE(io->fd >= 0);
	REQUIRE_EQ(io->cap.n, 0);
}

TEST(io_csum_rx_offload_trusts_the_link)
{
	/* Without TERN_LINK_CSUM_RX a damaged checksum drops the segment (counted); with it,
	 * the link vouches for the packet and the data is taken. */
	static const char data[] = "0123456789";
	struct io io;
	open_io(&io, 0);
	inject(&io, TERN_TH_ACK | TERN_TH_PSH, io.nxt, data, 10, 1);
	CHECK_EQ(tern_stack_stats(io.st)->tcp_bad_checksum, 1);
	char buf[16];
	CHECK_EQ(tern_recv(io.st, io.fd, buf, sizeof(buf), 0), -EAGAIN);
	tern_stack_free(io.st);

	open_io(&io, TERN_LINK_CSUM_RX);
	inject(&io, TERN_TH_ACK | TERN_TH_PSH, io.nxt, data, 10, 1);
	CHECK_EQ(tern_stack_stats(io.st)->tcp_bad_checksum, 0);
	CHECK_EQ(tern_recv(io.st, io.fd, buf, sizeof(buf), 0), 10);
	CHECK_MEM(buf, data, 10);
	tern_stack_free(io.st);
}

TEST(io_csum_tx_offload_leaves_the_pseudo_header_sum)
{
	/* With TERN_LINK_CSUM_TX the checksum field holds the folded pseudo-header sum (Linux's
	 * CHECKSUM_PARTIAL): a link that sums the TCP segment from its first byte, field as it
	 * stands, and stores the complement, produces the right checksum. */
	static const char data[] = "hello, offload";
	struct io io;
	open_io(&io, TERN_LINK_CSUM_TX);
	REQUIRE_EQ(tern_send(io.st, io.fd, data, sizeof(data) - 1, 0), (long)sizeof(data) - 1);
	REQUIRE_EQ(io.cap.n, 1);
	uint8_t *pkt = io.cap.pkt[0];
	size_t tcp_len = io.cap.len[0] - 20;
	uint16_t field;
	memcpy(&field, pkt + 36, 2);
	uint16_t pseudo = (uint16_t)tern_csum_pseudo(ME, PEER, 6, (uint16_t)tcp_len);
	CHECK_EQ(field, pseudo);
	/* Complete it as the link would. */
	struct tern_iovec seg = {pkt + 20, tcp_len};
	uint16_t done = tern_csum_iov(0, &seg, 1);
	memcpy(pkt + 36, &done, 2);
	struct tern_ip4 ip;
	struct tern_tcp_seg s;
	REQUIRE_EQ(tern_ip4_parse(pkt, io.cap.len[0], &ip), TERN_IP4_OK);
	CHECK_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s), TERN_TCP_OK);
	CHECK_EQ(s.h.len, sizeof(data) - 1);
	/* Without the flag the stack's own checksum verifies as it is. */
	tern_stack_free(io.st);
	open_io(&io, 0);
	REQUIRE_EQ(tern_send(io.st, io.fd, data, sizeof(data) - 1, 0), (long)sizeof(data) - 1);
	REQUIRE_EQ(tern_ip4_parse(io.cap.pkt[0], io.cap.len[0], &ip), TERN_IP4_OK);
	CHECK_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &s), TERN_TCP_OK);
	tern_stack_free(io.st);
}

/* Build n in-order segments of len bytes from the peer into pkts (bufs hold the bytes). */
static void build_run(struct io *io, uint8_t (*bufs)[2048], struct tern_iovec *pkts, unsigned n,
		      uint32_t seq, size_t len)
{
	uint8_t data[1460];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	for (unsigned i = 0; i < n; i++) {
		pkts[i].base = bufs[i];
		pkts[i].len = build(bufs[i], TERN_TH_ACK, seq + (uint32_t)(i * len), io->iss + 1, data,
				    len, 0);
	}
}

TEST(io_batch_acknowledges_a_burst_once)
{
	/* Ten in-order segments handed in as one batch: one ACK, at the end, for all of them
	 * (as Linux acknowledges what GRO merged). One by one, the same ten draw an ACK at once
	 * for each (quick-ACK mode at the start of a connection). */
	static uint8_t bufs[16][2048];
	struct tern_iovec pkts[16];
	struct io io;
	open_io(&io, 0);
	build_run(&io, bufs, pkts, 10, io.nxt, 1000);
	tern_stack_input_batch(io.st, pkts, 10, io.now);
	REQUIRE_EQ(io.cap.n, 1);
	struct tern_tcp_seg a = parse(&io, 0);
	CHECK_EQ(a.h.flags, TERN_TH_ACK);
	CHECK_EQ(a.h.ack, io.nxt + 10000);
	CHECK_EQ(a.h.len, 0);
	tern_stack_free(io.st);

	open_io(&io, 0);
	build_run(&io, bufs, pkts, 10, io.nxt, 1000);
	for (unsigned i = 0; i < 10; i++)
		tern_stack_input(io.st, pkts[i].base, pkts[i].len, io.now);
	CHECK_EQ(io.cap.n, 10);
	tern_stack_free(io.st);
}

TEST(io_batch_keeps_duplicate_acks_per_segment)
{
	/* A batch that starts after a hole: each out-of-order segment still draws its own
	 * duplicate ACK at once (three of them start the sender's fast retransmit), so batching
	 * leaves loss recovery as it is. */
	static uint8_t bufs[16][2048];
	struct tern_iovec pkts[16];
	struct io io;
	open_io(&io, 0);
	build_run(&io, bufs, pkts, 4, io.nxt + 1000, 1000);
	tern_stack_input_batch(io.st, pkts, 4, io.now);
	REQUIRE_EQ(io.cap.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		struct tern_tcp_seg d = parse(&io, i);
		CHECK_EQ(d.h.ack, io.nxt);
		CHECK_EQ(d.h.len, 0);
	}
	/* The hole filled in a batch of its own: one ACK covering all five. */
	io.cap.n = 0;
	build_run(&io, bufs, pkts, 1, io.nxt, 1000);
	tern_stack_input_batch(io.st, pkts, 1, io.now);
	REQUIRE_EQ(io.cap.n, 1);
	CHECK_EQ(parse(&io, 0).h.ack, io.nxt + 5000);
	char buf[8000];
	CHECK_EQ(tern_recv(io.st, io.fd, buf, sizeof(buf), 0), 5000);
	tern_stack_free(io.st);
}

TEST(io_batch_connection_ended_inside_the_batch)
{
	/* A RST inside a batch ends the connection; the batch's end must not touch it again
	 * (AddressSanitizer would see a freed TCB). Here the socket is closed first, so the
	 * reset frees the TCB at once. */
	static uint8_t bufs[4][2048];
	struct tern_iovec pkts[4];
	struct io io;
	open_io(&io, 0);
	build_run(&io, bufs, pkts, 2, io.nxt, 100);
	tern_stack_input_batch(io.st, pkts, 1, io.now); /* queued data, an ACK owed */
	io.cap.n = 0;
	char buf[200];
	CHECK_EQ(tern_recv(io.st, io.fd, buf, sizeof(buf), 0), 100);
	CHECK_EQ(tern_close(io.st, io.fd), 0); /* FIN sent: an orphan in FIN_WAIT_1 */
	pkts[0].len = build(bufs[0], TERN_TH_ACK, io.nxt + 100, io.iss + 1, "x", 1, 0);
	pkts[1].len = build(bufs[1], TERN_TH_RST, io.nxt + 101, 0, NULL, 0, 0);
	pkts[0].base = bufs[0];
	pkts[1].base = bufs[1];
	tern_stack_input_batch(io.st, pkts, 2, io.now);
	size_t conns = tern_stack_foreach(io.st, NULL, NULL);
	CHECK_EQ(conns, 1); /* the listener alone */
	tern_stack_free(io.st);
}
