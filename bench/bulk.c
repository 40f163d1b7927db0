/*
 * Bulk throughput between two tern stacks on one core, measured the way
 * ../shared/anchors/lwip/lwipbench.c measures lwIP: stack A (10.0.0.1) sends to stack B
 * (10.0.0.2) over an in-memory wire that copies each packet once into a slot of the peer's
 * receive queue (as a NIC's DMA would); the application copies data in on send (tern_send)
 * and out on receive (tern_recv); TCP and IP checksums are computed and verified in software.
 * Virtual time moves 1 us per loop pass, so no clock is read inside the loop.
 *
 *   bulk [--mib N] [--mtu M] [--zc] [--nobatch] [--offload] [--verify]
 *
 * The receiving side takes what the wire holds in batches (tern_stack_input_batch), as from
 * a NIC's receive ring; --nobatch hands packets in one at a time. --zc uses the zero-copy
 * calls (tern_send_zc / tern_recv_zc): the application fills and reads the stack's buffers
 * in place. --offload declares the wire checksum-offloading (TERN_LINK_CSUM_TX|RX), as Linux's
 * loopback is: no TCP checksums at all. Prints one RESULT line.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tern/tern.h"

#define SLOTS 2048

struct wire {
	uint8_t *buf;        /* SLOTS slots of slot_size bytes */
	uint32_t *len;
	size_t slot_size;
	unsigned head, count;
	uint64_t packets;
};

static int wire_transmit(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	struct wire *w = ctx;
	if (w->count == SLOTS || total > w->slot_size)
		return -ENOBUFS;
	unsigned slot = (w->head + w->count) % SLOTS;
	uint8_t *dst = w->buf + (size_t)slot * w->slot_size;
	for (unsigned i = 0; i < n; i++) {
		memcpy(dst, iov[i].base, iov[i].len);
		dst += iov[i].len;
	}
	w->len[slot] = (uint32_t)total;
	w->count++;
	w->packets++;
	return 0;
}

static int wire_init(struct wire *w, size_t slot_size)
{
	w->slot_size = slot_size;
	w->buf = malloc(SLOTS * slot_size);
	w->len = calloc(SLOTS, sizeof(*w->len));
	w->head = w->count = 0;
	w->packets = 0;
	return w->buf && w->len ? 0 : -1;
}

static int batch = 1;

/* Hand every queued packet to the receiving stack, as a NIC's receive ring would: in one
 * batch (tern_stack_input_batch), or one by one with --nobatch. */
static unsigned wire_deliver(struct wire *w, struct tern_stack *to, uint64_t now)
{
	unsigned n = 0;
	struct tern_iovec pkts[64];
	while (w->count) {
		unsigned k = 0;
		while (w->count && k < 64) {
			unsigned slot = w->head;
			w->head = (w->head + 1) % SLOTS;
			w->count--;
			pkts[k].base = w->buf + (size_t)slot * w->slot_size;
			pkts[k].len = w->len[slot];
			k++;
		}
		if (batch) {
			tern_stack_input_batch(to, pkts, k, now);
		} else {
			for (unsigned i = 0; i < k; i++)
				tern_stack_input(to, pkts[i].base, pkts[i].len, now);
		}
		n += k;
	}
	return n;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static uint8_t src[65536], dst[65536];

/* n bytes of the source pattern, from stream offset off, as the application would write. */
static void fill(uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		size_t o = (size_t)(off & 0x7fff), m = 32768 - o;
		if (m > n)
			m = n;
		memcpy(p, src + o, m);
		p += m;
		off += m;
		n -= m;
	}
}

/* The measured loop: its own function so that callgrind can count it alone
 * (--toggle-collect=bench_loop). */
uint64_t bench_loop(struct tern_stack *a, struct tern_stack *b, struct wire *ab, struct wire *ba, int cfd,
		    int sfd, uint64_t total, int zc, int verify, uint64_t *now_io) __attribute__((noinline));
uint64_t bench_loop(struct tern_stack *a, struct tern_stack *b, struct wire *ab,
			   struct wire *ba, int cfd, int sfd, uint64_t total, int zc, int verify,
			   uint64_t *now_io)
{
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 131 + 7);
	uint64_t sent = 0, rcvd = 0, now = *now_io, bad = 0;
	while (rcvd < total) {
		now++;
		/* The application writes as much as the send buffer takes. */
		while (sent < total) {
			long n;
			if (zc) {
				struct tern_wiovec iov[2];
				unsigned k;
				long room = tern_send_zc(a, cfd, iov, &k);
				if (room <= 0)
					break;
				size_t want = (size_t)(total - sent < (uint64_t)room ? total - sent : (uint64_t)room);
				size_t done = 0;
				for (unsigned i = 0; i < k && done < want; i++) {
					size_t m = iov[i].len < want - done ? iov[i].len : want - done;
					fill(iov[i].base, m, sent + done);
					done += m;
				}
				tern_send_commit(a, cfd, done, 0);
				n = (long)done;
			} else {
				size_t chunk = total - sent < 32768 ? (size_t)(total - sent) : 32768;
				n = tern_send(a, cfd, src + (sent & 0x7fff), chunk, 0);
			}
			if (n <= 0)
				break;
			sent += (uint64_t)n;
		}
		wire_deliver(ab, b, now);
		/* The application reads everything that arrived. */
		for (;;) {
			long n;
			if (zc) {
				struct tern_iovec iov[2];
				unsigned k;
				n = tern_recv_zc(b, sfd, iov, &k);
				if (n <= 0)
					break;
				if (verify)
					for (unsigned i = 0; i < k; i++)
						bad += ((const uint8_t *)iov[i].base)[0] == 0xff;
				tern_recv_consume(b, sfd, (size_t)n);
			} else {
				n = tern_recv(b, sfd, dst, sizeof(dst), 0);
				if (n <= 0)
					break;
			}
			rcvd += (uint64_t)n;
		}
		wire_deliver(ba, a, now);
		tern_stack_poll(a, now);
		tern_stack_poll(b, now);
	}
	*now_io = now;
	return bad;
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024;
	unsigned mtu = 1500;
	int zc = 0, verify = 0, offload = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--mtu") && i + 1 < argc)
			mtu = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--zc"))
			zc = 1;
		else if (!strcmp(argv[i], "--verify"))
			verify = 1;
		else if (!strcmp(argv[i], "--nobatch"))
			batch = 0;
		else if (!strcmp(argv[i], "--offload"))
			offload = 1;
		else {
			fprintf(stderr, "usage: bulk [--mib N] [--mtu M] [--zc] [--nobatch] [--offload] [--verify]\n");
			return 2;
		}
	}
	struct tern_settings set;
	tern_settings_default(&set);
	set.mtu = mtu;
	set.wmem_default = 262144;
	set.rmem_default = 131072;
	uint64_t now = 1;
	set.seed = 1;
	struct tern_stack *a = tern_stack_new(&set, now);
	set.seed = 2;
	struct tern_stack *b = tern_stack_new(&set, now);
	struct wire ab, ba;
	if (!a || !b || wire_init(&ab, mtu) || wire_init(&ba, mtu)) {
		fprintf(stderr, "bulk: out of memory\n");
		return 1;
	}
	tern_stack_add_addr(a, TERN_IP4(10, 0, 0, 1));
	tern_stack_add_addr(b, TERN_IP4(10, 0, 0, 2));
	/* --offload: the wire is memory, which cannot damage a packet, and says so (as Linux's
	 * loopback does): no TCP checksums are computed or verified. */
	unsigned lf = offload ? TERN_LINK_CSUM_TX | TERN_LINK_CSUM_RX : 0;
	struct tern_link la = {.transmit = wire_transmit, .ctx = &ab, .flags = lf},
			lb = {.transmit = wire_transmit, .ctx = &ba, .flags = lf};
	tern_stack_set_link(a, &la);
	tern_stack_set_link(b, &lb);
	int l = tern_socket(b, TERN_SOCK_STREAM);
	struct tern_sockaddr any = {0, 5001};
	tern_bind(b, l, &any);
	tern_listen(b, l, 16);
	int c = tern_socket(a, TERN_SOCK_STREAM);
	struct tern_sockaddr to = {TERN_IP4(10, 0, 0, 2), 5001};
	tern_connect(a, c, &to);
	for (int i = 0; i < 10; i++) {
		now++;
		wire_deliver(&ab, b, now);
		wire_deliver(&ba, a, now);
	}
	int s = tern_accept(b, l, NULL);
	if (s < 0 || tern_sock_state(a, c) != TERN_STATE_ESTABLISHED) {
		fprintf(stderr, "bulk: no connection\n");
		return 1;
	}
	uint64_t total = mib << 20;
	uint64_t segs0 = tern_stack_stats(a)->tcp_out, acks0 = tern_stack_stats(b)->tcp_out;
	struct timespec w0, w1, c0, c1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	uint64_t bad = bench_loop(a, b, &ab, &ba, c, s, total, zc, verify, &now);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	uint64_t segs = tern_stack_stats(a)->tcp_out - segs0;
	uint64_t acks = tern_stack_stats(b)->tcp_out - acks0;
	double wall = secs(&w0, &w1), cpu = secs(&c0, &c1);
	printf("RESULT mode=tern-bulk%s%s%s mtu=%u bytes=%llu secs=%.3f gbps=%.3f cpu_secs=%.3f "
	       "segs_AtoB=%llu segs_BtoA=%llu ns_per_data_seg=%.1f retrans=%llu%s\n",
	       zc ? "-zc" : "", batch ? "" : "-nobatch", offload ? "-offload" : "", mtu, (unsigned long long)total, wall, (double)total * 8 / wall / 1e9,
	       cpu, (unsigned long long)segs, (unsigned long long)acks, cpu * 1e9 / (double)segs,
	       (unsigned long long)tern_stack_stats(a)->tcp_retrans, bad ? " VERIFY-FAILED" : "");
	tern_close(a, c);
	tern_close(b, s);
	tern_stack_free(a);
	tern_stack_free(b);
	free(ab.buf);
	free(ab.len);
	free(ba.buf);
	free(ba.len);
	return 0;
}
