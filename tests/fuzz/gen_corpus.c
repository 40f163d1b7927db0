/*
 * Writes the seed corpus of the fuzz targets: `make fuzz-corpus` (or
 * build/fuzz_gen_corpus DIR) fills DIR/input, DIR/sequence and DIR/options. The files are
 * committed; this program says how they were made and remakes them when the input format
 * (fuzz.h) changes.
 *
 * Each seed is a small, readable scenario in the targets' format: a segment of each kind on
 * each connection, a handshake to the listener, UDP to each socket, ICMP errors quoting what
 * the stack sent, socket calls, and for fuzz_sequence the clock steps that make every timer
 * fire. libFuzzer starts from these instead of discovering the format byte by byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

struct buf {
	uint8_t b[4096];
	size_t n;
};

static void u8(struct buf *b, unsigned v) { b->b[b->n++] = (uint8_t)v; }
static void u16(struct buf *b, unsigned v)
{
	u8(b, v >> 8);
	u8(b, v);
}
static void u32(struct buf *b, uint32_t v)
{
	u16(b, v >> 16);
	u16(b, v & 0xffff);
}
static void bytes(struct buf *b, const void *p, size_t n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static const char *outdir;
static unsigned nfiles;

static void write_seed(const char *target, const char *name, const struct buf *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	nfiles++;
}

/* ---- records of the stack targets ---- */

/* Indexes into flag_table of fuzz_world.c. */
enum { F_ACK, F_ACK_PSH, F_ACK_FIN, F_SYN, F_SYN_ACK, F_RST, F_RST_ACK, F_ACK_PSH_FIN,
       F_ACK_URG, F_ACK_URG_PSH, F_NONE, F_FIN, F_SYN_FIN, F_SYN_RST, F_ACK_ECE_CWR,
       F_SYN_ECE_CWR, F_ACK_AE, F_ACK_RST_FIN };

/* A segment on connection c: flags from the table, the sequence and acknowledgment modes
 * with one argument byte each where the mode takes one, a payload length. */
static void conn_seg(struct buf *b, unsigned c, unsigned flag, unsigned seqm, unsigned seqarg,
		     unsigned ackm, unsigned ackarg, unsigned paylen)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_CONN);
	u8(b, c);
	u8(b, flag);
	u8(b, seqm);
	if (seqm == FZ_SEQ_NEAR || seqm == FZ_SEQ_WIN_EDGE)
		u8(b, seqarg);
	else if (seqm == FZ_SEQ_AHEAD || seqm == FZ_SEQ_BEHIND)
		u16(b, seqarg);
	else if (seqm == FZ_SEQ_ABS)
		u32(b, seqarg);
	u8(b, ackm);
	if (ackm == FZ_ACK_NEAR || ackm == FZ_ACK_BEHIND8 || ackm == FZ_ACK_ISN)
		u8(b, ackarg);
	else if (ackm == FZ_ACK_BEHIND16 || ackm == FZ_ACK_AHEAD)
		u16(b, ackarg);
	else if (ackm == FZ_ACK_ABS)
		u32(b, ackarg);
	u16(b, 0); /* window 65535 */
	if (flag == F_ACK_URG || flag == F_ACK_URG_PSH)
		u16(b, paylen ? paylen - 1 : 0);
	u8(b, 0); /* the connection's own options */
	u16(b, paylen);
	u8(b, 0); /* no edits */
	u8(b, 0); /* every repair */
}

/* The same with SACK blocks covering the stack's data in flight. */
static void conn_sack(struct buf *b, unsigned c, unsigned nblocks)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_CONN);
	u8(b, c);
	u8(b, F_ACK);
	u8(b, FZ_SEQ_EXACT);
	u8(b, FZ_ACK_BEHIND16);
	u16(b, 2000);
	u16(b, 0);
	u8(b, FZ_O_SACK);
	u8(b, nblocks);
	for (unsigned i = 0; i < nblocks; i++) {
		u16(b, 1500 - 300 * i); /* left = highest - this */
		u16(b, 200);
	}
	u16(b, 0);
	u8(b, 0);
	u8(b, 0);
}

/* A zero window from the peer on c, acknowledging everything. */
static void conn_zero_window(struct buf *b, unsigned c)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_CONN);
	u8(b, c);
	u8(b, F_ACK);
	u8(b, FZ_SEQ_EXACT);
	u8(b, FZ_ACK_ALL);
	u16(b, 65535); /* 65535 - 65535: window 0 */
	u8(b, 0);
	u16(b, 0);
	u8(b, 0);
	u8(b, 0);
}

static void syn(struct buf *b, unsigned port, uint32_t isn, unsigned optsel)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_SYN);
	u8(b, port);
	u8(b, 0); /* SYN */
	u32(b, isn);
	u16(b, 0);
	u8(b, optsel);
	if (optsel & FZ_O_MSS)
		u16(b, 1460 ^ 536);
	if (optsel & FZ_O_WS)
		u8(b, 14);
	if (optsel & FZ_O_TS) {
		u8(b, 0);
		u8(b, 0);
	}
	u8(b, 0);
	u8(b, 0);
}

/* A SYN with raw option bytes. */
static void syn_raw_opts(struct buf *b, unsigned port, const uint8_t *o, size_t n)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_SYN);
	u8(b, port);
	u8(b, 0);
	u32(b, 0x01020304);
	u16(b, 0);
	u8(b, FZ_OPTS_RAW);
	u8(b, (unsigned)n);
	bytes(b, o, n);
	u8(b, 0);
	u8(b, 0);
}

static void udp(struct buf *b, unsigned portsel, unsigned paylen, unsigned fix)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_UDP);
	u8(b, 0); /* from the peer */
	u8(b, 0); /* to FZ_LOCAL */
	u16(b, 0); /* from FZ_UDP_PEER_PORT */
	u8(b, portsel);
	u16(b, paylen);
	u8(b, 0);
	u8(b, fix);
}

static void echo(struct buf *b, unsigned paylen)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_ECHO);
	u8(b, 0);
	u8(b, 0);
	u16(b, paylen);
	u8(b, 0);
	u32(b, 0x12340001);
	u8(b, 0);
	u8(b, 0);
}

/* An ICMP error of a type index (3 x3, 11, 12, 4, 5, 0) quoting the q-th last datagram. */
static void icmp_err(struct buf *b, unsigned typesel, unsigned code, uint32_t rest, unsigned q)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_ICMP_ERR);
	u8(b, 0);
	u8(b, typesel);
	u8(b, code);
	u32(b, rest);
	u8(b, q);
	u8(b, 0);
	u8(b, 0);
}

static void ip_opts(struct buf *b, unsigned words, unsigned proto_xor, unsigned frag)
{
	u8(b, FZ_OP_DGRAM);
	u8(b, FZ_T_IP);
	u8(b, words);
	u8(b, proto_xor);
	u8(b, 0);
	u8(b, 0);
	u16(b, frag);
	u8(b, 0);
	u16(b, 24);
	u8(b, 0);
	/* Options (NOP ... EOL), then a TCP-looking payload. */
	for (unsigned i = 0; i < words * 4; i++)
		u8(b, i + 1 == words * 4 ? 0 : 1);
	for (unsigned i = 0; i < 24; i++)
		u8(b, i);
	u8(b, 0);
	u8(b, 0);
}

static void api(struct buf *b, unsigned call, unsigned fdsel)
{
	u8(b, FZ_OP_API);
	u8(b, call);
	u8(b, fdsel);
}

static void time_step(struct buf *b, unsigned kind, unsigned amount)
{
	u8(b, FZ_OP_TIME);
	u8(b, kind);
	if (kind == FZ_TIME_MS16 || kind == FZ_TIME_S16_JUMP)
		u16(b, amount);
	else if (kind != FZ_TIME_NEXT && kind != FZ_TIME_BEFORE)
		u8(b, amount);
}

/* Descriptors as the setup leaves them (fuzz_world.c): 0 listener, 1 and 2 UDP, 3 ESTAB,
 * 4 ESTAB_ACTIVE, 5 FIN_WAIT_2, 6 CLOSE_WAIT, 7 SYN_SENT, 8 CLOSING. */
enum { D_LISTEN, D_UDP0, D_UDP1, D_ESTAB, D_ACTIVE, D_FW2, D_CLOSE_WAIT, D_SYN_SENT, D_CLOSING };

static void stack_seeds(const char *target, bool timed)
{
	struct buf b;
	char name[64];
	static const uint8_t settings[] = {0, FZ_SET_SMALL_BUFS, FZ_SET_CSUM_RX | FZ_SET_CSUM_TX,
					   FZ_SET_TIGHT, FZ_SET_FAST, FZ_SET_OVERFLOW,
					   FZ_SET_SMALL_MTU, FZ_SET_NO_OPTS};

	/* Every connection: in-order data, a FIN, a RST, a SYN, an old duplicate, data at
	 * the window's edge, an ACK of nothing sent, urgent data. */
	for (unsigned c = 0; c < FZ_C_COUNT; c++) {
		b.n = 0;
		u8(&b, settings[c % 8]);
		conn_seg(&b, c, F_ACK_PSH, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 100);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_BEHIND16, 1000, 0);
		conn_seg(&b, c, F_ACK_FIN, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
		if (timed)
			time_step(&b, FZ_TIME_S, 2);
		snprintf(name, sizeof(name), "conn%02u-data-fin", c);
		write_seed(target, name, &b);

		b.n = 0;
		u8(&b, 0);
		conn_seg(&b, c, F_RST, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
		conn_seg(&b, c, F_RST_ACK, FZ_SEQ_NEAR, 5, FZ_ACK_ALL, 0, 0);
		snprintf(name, sizeof(name), "conn%02u-rst", c);
		write_seed(target, name, &b);

		b.n = 0;
		u8(&b, 0);
		conn_seg(&b, c, F_SYN, FZ_SEQ_ISN, 0, FZ_ACK_ALL, 0, 0);
		conn_seg(&b, c, F_SYN_ACK, FZ_SEQ_ISN, 0, FZ_ACK_ALL, 0, 0);
		conn_seg(&b, c, F_ACK, FZ_SEQ_BEHIND, 3000, FZ_ACK_AHEAD, 5000, 10);
		conn_seg(&b, c, F_ACK_PSH, FZ_SEQ_WIN_EDGE, 0xff, FZ_ACK_ALL, 0, 50);
		conn_seg(&b, c, F_ACK_URG_PSH, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 20);
		if (timed)
			time_step(&b, FZ_TIME_NEXT, 0);
		snprintf(name, sizeof(name), "conn%02u-odd", c);
		write_seed(target, name, &b);
	}

	/* Out of order data filling a hole, with SACK, then duplicate ACKs for fast
	 * retransmit on the connections with data in flight. */
	for (unsigned c = 0; c < 2; c++) {
		b.n = 0;
		u8(&b, 0);
		conn_seg(&b, c, F_ACK_PSH, FZ_SEQ_AHEAD, 1000, FZ_ACK_ALL, 0, 500);
		conn_seg(&b, c, F_ACK_PSH, FZ_SEQ_AHEAD, 300, FZ_ACK_ALL, 0, 500);
		conn_seg(&b, c, F_ACK_PSH, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 1000);
		conn_sack(&b, c, 3);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_BEHIND16, 2000, 0);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_DUP, 0, 0);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_DUP, 0, 0);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_DUP, 0, 0);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_BEHIND16, 500, 0);
		if (timed)
			time_step(&b, FZ_TIME_MS16, 3000);
		conn_seg(&b, c, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
		snprintf(name, sizeof(name), "reorder-sack-%u", c);
		write_seed(target, name, &b);
	}

	/* A zero window: persist probes (with time), then the window opens. */
	b.n = 0;
	u8(&b, FZ_SET_SMALL_BUFS);
	conn_zero_window(&b, FZ_C_ESTAB);
	api(&b, FZ_API_SEND, D_ESTAB);
	u16(&b, 4000);
	u8(&b, 0);
	if (timed) {
		time_step(&b, FZ_TIME_S, 3);
		time_step(&b, FZ_TIME_TIMERS, 6);
	}
	conn_seg(&b, FZ_C_ESTAB, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
	write_seed(target, "zero-window", &b);

	/* New connections to the listener: options of every kind, odd options. */
	b.n = 0;
	u8(&b, 0);
	syn(&b, 1, 0x11111111, 0);
	syn(&b, 2, 0x22222222, FZ_O_MSS | FZ_O_WS | FZ_O_SACKP | FZ_O_TS);
	syn(&b, 3, 0x33333333, FZ_O_NOTS);
	conn_seg(&b, FZ_C_COUNT, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
	conn_seg(&b, FZ_C_COUNT + 1, F_ACK_PSH, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 10);
	api(&b, FZ_API_ACCEPT, D_LISTEN);
	u8(&b, 0);
	if (timed)
		time_step(&b, FZ_TIME_S, 70);
	write_seed(target, "syn-flood-small", &b);
	{
		static const uint8_t odd[][12] = {
			{2, 4, 0, 0, 1, 1, 3, 3, 15, 0},      /* MSS 0, shift 15 */
			{5, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0},   /* SACK on a SYN */
			{8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0},   /* TS with ecr 0 */
			{1, 1, 1, 99, 2, 0},                  /* unknown kind, length 2 */
			{2, 0, 0, 0},                         /* length 0: malformed */
			{2, 5, 1, 1},                         /* length past the end */
			{4, 2, 4, 2, 3, 3, 7, 0},             /* SACK_PERM twice */
		};
		static const size_t oddlen[] = {10, 11, 11, 6, 4, 4, 8};
		for (unsigned i = 0; i < 7; i++) {
			b.n = 0;
			u8(&b, 0);
			syn_raw_opts(&b, 10 + i, odd[i], oddlen[i]);
			conn_seg(&b, FZ_C_COUNT, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
			snprintf(name, sizeof(name), "syn-odd-options-%u", i);
			write_seed(target, name, &b);
		}
	}

	/* UDP to each socket and a closed port, with and without checksum, with the
	 * socket calls that read and answer. */
	b.n = 0;
	u8(&b, 0);
	udp(&b, 0, 100, 0);
	udp(&b, 1, 0, FZ_FIX_UDP_NOSUM);
	udp(&b, 2, 10, 0);
	udp(&b, 2, 10, 0);
	api(&b, FZ_API_RECV, D_UDP0);
	u16(&b, 50);
	u8(&b, 6); /* TRUNC, recvfrom */
	api(&b, FZ_API_RECV, D_UDP1);
	u16(&b, 1000);
	u8(&b, 1);
	api(&b, FZ_API_SENDTO, D_UDP0);
	u8(&b, 0);
	u16(&b, 5353 ^ 80);
	u16(&b, 64);
	u8(&b, 0);
	api(&b, FZ_API_SEND, D_UDP1);
	u16(&b, 32);
	u8(&b, 0);
	write_seed(target, "udp", &b);

	/* ICMP: echo, then errors quoting what the stack sent (port unreachable, fragmentation
	 * needed with an MTU, time exceeded, parameter problem). */
	b.n = 0;
	u8(&b, 0);
	echo(&b, 56);
	udp(&b, 2, 10, 0);
	icmp_err(&b, 0, 3, 0, 0);
	icmp_err(&b, 1, 4, 576, 1);
	icmp_err(&b, 2, 1, 0, 2);
	icmp_err(&b, 3, 0, 0, 3);
	icmp_err(&b, 4, 0, 0x14000000, 0x84);
	icmp_err(&b, 5, 0, 0, 5);
	write_seed(target, "icmp", &b);
	b.n = 0;
	u8(&b, FZ_SET_SMALL_MTU);
	api(&b, FZ_API_SEND, D_ACTIVE);
	u16(&b, 3000);
	u8(&b, 0);
	icmp_err(&b, 1, 4, 296, 0);
	icmp_err(&b, 0, 2, 0, 0x80);
	icmp_err(&b, 0, 1, 0, 1);
	write_seed(target, "icmp-errors-on-connections", &b);

	/* IPv4 oddities: options, another protocol, fragments. */
	b.n = 0;
	u8(&b, 0);
	ip_opts(&b, 3, 0, 0);
	ip_opts(&b, 10, 17 ^ 6, 0);
	ip_opts(&b, 1, 47 ^ 6, 0);
	ip_opts(&b, 0, 0, 0x2000);
	ip_opts(&b, 0, 0, 0x0010);
	write_seed(target, "ip-options-frags", &b);

	/* A batch of in-order segments on one connection and mixed ones. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, FZ_OP_BATCH);
	u8(&b, 4); /* 5 datagrams */
	for (unsigned i = 0; i < 5; i++) {
		struct buf one = {.n = 0};
		conn_seg(&one, i < 3 ? FZ_C_ESTAB : FZ_C_ESTAB_ACTIVE, F_ACK_PSH, FZ_SEQ_EXACT, 0,
			 FZ_ACK_ALL, 0, 300);
		bytes(&b, one.b + 1, one.n - 1); /* without the opcode */
	}
	if (timed)
		time_step(&b, FZ_TIME_MS, 200);
	write_seed(target, "batch", &b);

	/* Socket calls on every descriptor, then closes of each kind. */
	b.n = 0;
	u8(&b, 0);
	for (unsigned fd = 0; fd < 9; fd++) {
		api(&b, FZ_API_QUERY, fd);
		api(&b, FZ_API_RECV, fd);
		u16(&b, 4096);
		u8(&b, 0);
		api(&b, FZ_API_RECV_ZC, fd);
		u16(&b, 10);
		api(&b, FZ_API_SEND_ZC, fd);
		u16(&b, 100);
		u8(&b, 0);
		api(&b, FZ_API_GETSOCKOPT, fd);
		u8(&b, 14); /* TCP_INFO */
		u8(&b, 0);
	}
	api(&b, FZ_API_SHUTDOWN, D_ESTAB);
	u8(&b, 2); /* SHUT_RDWR */
	api(&b, FZ_API_ABORT, D_ACTIVE);
	api(&b, FZ_API_CLOSE, D_CLOSE_WAIT);
	api(&b, FZ_API_EVENTS, 0);
	u8(&b, 16);
	write_seed(target, "api-every-fd", &b);

	/* A new active connection: socket, options, bind, connect; the peer answers. */
	b.n = 0;
	u8(&b, 0);
	api(&b, FZ_API_SOCKET, 0);
	u8(&b, 0);
	api(&b, FZ_API_SETSOCKOPT, 9);
	u8(&b, 4); /* SO_KEEPALIVE */
	u32(&b, 1);
	u8(&b, 0);
	api(&b, FZ_API_SETSOCKOPT, 9);
	u8(&b, 6); /* TCP_NODELAY */
	u32(&b, 1);
	u8(&b, 0);
	api(&b, FZ_API_SETSOCKOPT, 9);
	u8(&b, 9); /* TCP_KEEPIDLE */
	u32(&b, 2);
	u8(&b, 0);
	api(&b, FZ_API_BIND, 9);
	u8(&b, 2); /* FZ_LOCAL */
	u16(&b, 0 ^ 80);
	api(&b, FZ_API_CONNECT, 9);
	u8(&b, 0);
	u16(&b, 0); /* FZ_PEER:80 */
	conn_seg(&b, FZ_C_COUNT, F_SYN_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
	api(&b, FZ_API_SEND, 9);
	u16(&b, 5000);
	u8(&b, 0);
	conn_seg(&b, FZ_C_COUNT, F_ACK_PSH, FZ_SEQ_EXACT, 0, FZ_ACK_BEHIND16, 2000, 100);
	if (timed) {
		time_step(&b, FZ_TIME_S, 5);
		time_step(&b, FZ_TIME_S16_JUMP, 8000);
		time_step(&b, FZ_TIME_TIMERS, 20);
	}
	write_seed(target, "active-open", &b);

	/* A second listener, SO_LINGER 0, SO_RCVBUF, a self-connect. */
	b.n = 0;
	u8(&b, FZ_SET_TIGHT);
	api(&b, FZ_API_SOCKET, 0);
	u8(&b, 0);
	api(&b, FZ_API_BIND, 9);
	u8(&b, 3);
	u16(&b, 8080 ^ 80);
	api(&b, FZ_API_LISTEN, 9);
	u8(&b, 2);
	api(&b, FZ_API_SETSOCKOPT, D_ESTAB);
	u8(&b, 5); /* SO_LINGER */
	u32(&b, 1);
	u8(&b, 0);
	api(&b, FZ_API_SETSOCKOPT, D_ESTAB);
	u8(&b, 3); /* SO_RCVBUF */
	u32(&b, 300);
	u8(&b, 0);
	api(&b, FZ_API_CLOSE, D_ESTAB);
	api(&b, FZ_API_SOCKET, 0);
	u8(&b, 0);
	api(&b, FZ_API_CONNECT, 9);
	u8(&b, 2);
	u16(&b, 0);
	api(&b, FZ_API_LINK_FAIL, 0);
	u8(&b, 3);
	api(&b, FZ_API_SEND, D_ACTIVE);
	u16(&b, 1000);
	u8(&b, 1); /* OOB */
	write_seed(target, "listen-linger-selfconnect", &b);

	/* Raw bytes: a TCP/IPv4 header as such, and nothing. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, FZ_OP_DGRAM);
	u8(&b, FZ_T_RAW);
	u16(&b, 40);
	static const uint8_t raw[40] = {0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2,
					10, 0, 0, 1, 0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0,
					0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};
	bytes(&b, raw, sizeof(raw));
	u8(&b, 0);
	u8(&b, 0);
	write_seed(target, "raw-syn", &b);

	/* Settings alone (the drain after the setup, under each). */
	for (unsigned i = 0; i < 8; i++) {
		b.n = 0;
		u8(&b, settings[i] | (i == 7 ? 0xff : 0));
		snprintf(name, sizeof(name), "settings-%02x", b.b[0]);
		write_seed(target, name, &b);
	}

	if (!timed)
		return;
	/* Time alone: every timer of the setup fires, at its deadline and in a jump. */
	for (unsigned i = 0; i < 4; i++) {
		b.n = 0;
		u8(&b, i == 0 ? 0 : i == 1 ? FZ_SET_FAST : i == 2 ? FZ_SET_FAST | FZ_SET_TIGHT
								 : FZ_SET_SMALL_BUFS);
		time_step(&b, FZ_TIME_MS, 40);
		time_step(&b, FZ_TIME_MS16, 1500);
		time_step(&b, FZ_TIME_BEFORE, 0);
		time_step(&b, FZ_TIME_NEXT, 0);
		time_step(&b, FZ_TIME_S, 30);
		time_step(&b, FZ_TIME_TIMERS, 50);
		time_step(&b, FZ_TIME_S16_JUMP, 7300);
		time_step(&b, FZ_TIME_US, 200);
		snprintf(name, sizeof(name), "timers-%u", i);
		write_seed(target, name, &b);
	}
	/* Keepalive on an idle connection the peer answers. */
	b.n = 0;
	u8(&b, FZ_SET_FAST);
	api(&b, FZ_API_SETSOCKOPT, D_ACTIVE);
	u8(&b, 4);
	u32(&b, 1);
	u8(&b, 0);
	api(&b, FZ_API_RECV, D_ACTIVE);
	u16(&b, 1000);
	u8(&b, 0);
	time_step(&b, FZ_TIME_S, 6);
	conn_seg(&b, FZ_C_ESTAB_ACTIVE, F_ACK, FZ_SEQ_EXACT, 0, FZ_ACK_ALL, 0, 0);
	time_step(&b, FZ_TIME_S, 6);
	time_step(&b, FZ_TIME_S, 6);
	write_seed(target, "keepalive", &b);
}

/* ---- fuzz_options ---- */

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i < n; i++)
		sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void options_seeds(void)
{
	struct buf b;
	char name[64];
	static const uint8_t lists[][40] = {
		{2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7},
		{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
		 0, 3, 0, 0, 0, 4},
		{5, 34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0,
		 0, 0, 7, 0, 0, 0, 8},
		{2, 0},
		{2, 4, 1},
		{3, 3, 200, 0, 1, 1, 1, 1},
		{99, 2, 254, 6, 1, 2, 3, 4, 0},
		{0, 2, 0, 0},
		{2, 3, 0, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0},
	};
	static const size_t lens[] = {20, 32, 34, 2, 3, 8, 9, 4, 13};
	for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		b.n = 0;
		u8(&b, 0); /* FZ_OPT_PARSE */
		bytes(&b, lists[i], lens[i]);
		snprintf(name, sizeof(name), "opts-%u", i);
		write_seed("options", name, &b);
	}
	/* TCP segments with right and wrong checksums and offsets. */
	for (unsigned i = 0; i < 4; i++) {
		uint8_t seg[64] = {0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
				   0, 0, 0, 0};
		size_t n = 20;
		if (i >= 1) {
			seg[12] = 0x80; /* 12 bytes of options */
			memcpy(seg + 20, lists[0], 12);
			n = 32;
		}
		if (i == 3)
			seg[12] = 0xf0; /* past the segment */
		memcpy(seg + n, "hello", 5);
		n += 5;
		uint32_t src = 0x0a000002, dst = 0x0a000001;
		uint32_t ph = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 +
			      (uint32_t)n;
		uint16_t c = csum(seg, n, ph);
		if (i != 2) {
			seg[16] = (uint8_t)(c >> 8);
			seg[17] = (uint8_t)c;
		}
		b.n = 0;
		u8(&b, 1);
		u32(&b, src);
		u32(&b, dst);
		bytes(&b, seg, n);
		snprintf(name, sizeof(name), "tcp-%u", i);
		write_seed("options", name, &b);
	}
	/* IPv4 headers: plain, with options, a fragment, short total length. */
	for (unsigned i = 0; i < 4; i++) {
		uint8_t h[40] = {0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1};
		size_t n = 28;
		if (i == 1) {
			h[0] = 0x47;
			h[3] = 36;
			h[20] = 1;
			h[21] = 0;
			n = 36;
		}
		if (i == 2)
			h[6] = 0x20;
		if (i == 3)
			h[3] = 10;
		size_t hl = (size_t)(h[0] & 15) * 4;
		uint16_t c = csum(h, hl, 0);
		h[10] = (uint8_t)(c >> 8);
		h[11] = (uint8_t)c;
		b.n = 0;
		u8(&b, 2);
		bytes(&b, h, n);
		snprintf(name, sizeof(name), "ip4-%u", i);
		write_seed("options", name, &b);
	}
	/* Checksums over pieces at odd offsets. */
	b.n = 0;
	u8(&b, 3);
	u32(&b, 0x0a000002);
	u32(&b, 0x0a000001);
	u8(&b, 6);
	u8(&b, 3);
	u8(&b, 7);
	u8(&b, 1);
	for (unsigned i = 0; i < 45; i++)
		u8(&b, 0xf0 + i);
	write_seed("options", "csum-pieces", &b);
	/* Builders: every option, SACK blocks past what fits, a shift past 14. */
	b.n = 0;
	u8(&b, 4);
	u8(&b, 0x1f);
	u16(&b, 1460);
	u8(&b, 20);
	u32(&b, 1);
	u32(&b, 2);
	u8(&b, 7);
	for (unsigned i = 0; i < 8; i++)
		u32(&b, 1000 * i);
	write_seed("options", "build-all", &b);
	b.n = 0;
	u8(&b, 5);
	u16(&b, 80);
	u16(&b, 40000);
	u32(&b, 1);
	u32(&b, 2);
	u16(&b, 0x1ff);
	u16(&b, 1000);
	u16(&b, 5);
	u8(&b, 0x18);
	for (unsigned i = 0; i < 9; i++)
		u32(&b, 7 * i);
	write_seed("options", "tcp-build", &b);
	b.n = 0;
	u8(&b, 6);
	u32(&b, 0x0a000001);
	u32(&b, 0x0a000002);
	u8(&b, 6);
	u8(&b, 64);
	u16(&b, 7);
	u16(&b, 1480);
	u8(&b, 1);
	write_seed("options", "ip4-build", &b);
}

static void make_dir(const char *sub)
{
	char path[512];
	snprintf(path, sizeof(path), "%s%s%s", outdir, sub[0] ? "/" : "", sub);
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	make_dir("");
	make_dir("input");
	make_dir("sequence");
	make_dir("options");
	stack_seeds("input", false);
	stack_seeds("sequence", true);
	options_seeds();
	printf("%u seeds written to %s\n", nfiles, outdir);
	return 0;
}
