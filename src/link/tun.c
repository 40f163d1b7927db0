/*
 * The TUN link: a Linux TUN device (IFF_TUN | IFF_NO_PI, one IPv4 datagram per read or
 * write) driving a stack on the monotonic clock. Packets are read in batches and handed to
 * tern_stack_input_batch; what the stack sends is written straight from its gather list
 * (writev), so an unimpaired link copies nothing. Where io_uring is there, what the stack
 * sends in one burst (struct tern_link's flush) leaves in one system call instead of one
 * writev per datagram: the link copies the headers, keeps the payload pieces by reference
 * and writes them all at the flush. Impairments go through the engine the simulated wire
 * uses; packets held back for delay wait in a heap ordered by due time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "tern/tun.h"
#include "tern/pcap.h"
#include "impair.h"
#include "uring.h"

#define DIR_IN 0  /* kernel -> tern */
#define DIR_OUT 1 /* tern -> kernel */

struct held {
	uint64_t t, order;
	uint8_t *data;
	uint32_t len;
	uint8_t dir;
};

/* A datagram kept for the end of the stack's burst: its headers copied, its payload pieces
 * by reference. */
#define TX_HDR_MAX 128
#define TX_PIECES 4
#define TX_BURST 64
struct tx_slot {
	uint8_t hdr[TX_HDR_MAX];
	struct iovec v[TX_PIECES];
	unsigned nv;
	size_t total;
};

struct tern_tun {
	int fd;
	char name[IFNAMSIZ];
	unsigned mtu, batch, max_held;
	uint32_t addr;
	struct tern_stack *st;

	/* Read buffers, one per packet of a batch, and the list handed to the stack. */
	uint8_t *rxbuf;
	size_t rxbuf_size;
	struct tern_iovec *rxv;

	bool impaired[2];
	struct tern_impair imp[2];
	struct impair_rule *rules;
	int nrules;
	struct tern_rng rng;
	struct held *heap;
	size_t nheap, capheap;
	uint64_t order;
	uint8_t *txcopy;           /* an outgoing packet gathered for the impairments */

	struct uring *ring;        /* NULL: every datagram its own writev */
	struct tx_slot *txq;       /* TX_BURST datagrams waiting for the stack's flush */
	struct uring_write *txw;
	unsigned ntx;

	struct tern_pcap *pcap;
	int64_t pcap_offset_us;    /* wall clock minus monotonic, for the pcap stamps */
	uint64_t pcap_flushed;

	struct tern_tun_stats stats;
};

uint64_t tern_tun_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t n, const char *fmt, ...)
{
	if (!err || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* ---- held packets: a binary heap by (due time, arrival order) ---- */

static bool held_before(const struct held *a, const struct held *b)
{
	return a->t < b->t || (a->t == b->t && a->order < b->order);
}

static bool held_push(struct tern_tun *t, const uint8_t *pkt, size_t len, uint64_t due, int dir)
{
	if (t->nheap >= t->max_held) {
		t->stats.held_overflow++;
		return false;
	}
	if (t->nheap == t->capheap) {
		size_t n = t->capheap ? t->capheap * 2 : 64;
		struct held *h = realloc(t->heap, n * sizeof(*h));
		if (!h) {
			t->stats.held_overflow++;
			return false;
		}
		t->heap = h;
		t->capheap = n;
	}
	struct held it = {due, t->order++, malloc(len ? len : 1), (uint32_t)len, (uint8_t)dir};
	if (!it.data) {
		t->stats.held_overflow++;
		return false;
	}
	memcpy(it.data, pkt, len);
	size_t i = t->nheap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!held_before(&it, &t->heap[parent]))
			break;
		t->heap[i] = t->heap[parent];
		i = parent;
	}
	t->heap[i] = it;
	return true;
}

static struct held held_pop(struct tern_tun *t)
{
	struct held top = t->heap[0];
	struct held last = t->heap[--t->nheap];
	size_t i = 0, n = t->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && held_before(&t->heap[c + 1], &t->heap[c]))
			c++;
		if (!held_before(&t->heap[c], &last))
			break;
		t->heap[i] = t->heap[c];
		i = c;
	}
	if (n)
		t->heap[i] = last;
	return top;
}

/* ---- the device ---- */

static void pcap_packet(struct tern_tun *t, uint64_t now, const struct tern_iovec *iov,
			unsigned n, size_t total)
{
	if (t->pcap)
		tern_pcap_write(t->pcap, (uint64_t)((int64_t)now + t->pcap_offset_us), iov, n, total);
}

static void tx_count(struct tern_tun *t, ssize_t w, size_t total)
{
	if (w < 0 || (size_t)w != total) {
		t->stats.tx_errors++;
		return;
	}
	t->stats.tx_packets++;
	t->stats.tx_bytes += total;
}

/* One datagram, one writev. */
static void write_one(struct tern_tun *t, const struct iovec *v, unsigned n, size_t total)
{
	ssize_t w;
	do
		w = writev(t->fd, v, (int)n);
	while (w < 0 && errno == EINTR);
	tx_count(t, w, total);
}

/* Everything kept, in order: one io_uring_enter for the lot, or one writev when alone. */
static void tx_flush(struct tern_tun *t)
{
	unsigned n = t->ntx, done = 0;
	if (!n)
		return;
	t->ntx = 0;
	if (n > 1) {
		for (unsigned i = 0; i < n; i++) {
			t->txw[i].iov = t->txq[i].v;
			t->txw[i].iovcnt = t->txq[i].nv;
			t->txw[i].res = -ECANCELED;
		}
		int rc = uring_writev(t->ring, t->txw, n, &done);
		for (unsigned i = 0; i < done; i++)
			tx_count(t, t->txw[i].res, t->txq[i].total);
		t->stats.tx_bursts++;
		if (rc < 0) {
			/* The ring failed (not a write): the rest, and all later bursts, by writev. */
			t->stats.tx_ring_failures++;
			uring_close(t->ring);
			t->ring = NULL;
		}
	}
	for (unsigned i = done; i < n; i++)
		write_one(t, t->txq[i].v, t->txq[i].nv, t->txq[i].total);
}

static void device_write(struct tern_tun *t, const struct tern_iovec *iov, unsigned n,
			 size_t total)
{
	if (t->ntx)
		tx_flush(t); /* what waits goes first */
	struct iovec v[8];
	if (n > 8)
		n = 8;
	for (unsigned i = 0; i < n; i++) {
		v[i].iov_base = (void *)(uintptr_t)iov[i].base;
		v[i].iov_len = iov[i].len;
	}
	write_one(t, v, n, total);
}

static void tun_flush(void *ctx)
{
	tx_flush(ctx);
}

/* Keep a datagram for the flush: the headers (which the stack reuses) copied, the payload
 * by reference. False when it does not fit a slot. */
static bool tx_keep(struct tern_tun *t, const struct tern_iovec *iov, unsigned n, size_t total)
{
	if (n > TX_PIECES || iov[0].len > TX_HDR_MAX)
		return false;
	if (t->ntx == TX_BURST)
		tx_flush(t);
	struct tx_slot *s = &t->txq[t->ntx++];
	memcpy(s->hdr, iov[0].base, iov[0].len);
	s->v[0].iov_base = s->hdr;
	s->v[0].iov_len = iov[0].len;
	for (unsigned i = 1; i < n; i++) {
		s->v[i].iov_base = (void *)(uintptr_t)iov[i].base;
		s->v[i].iov_len = iov[i].len;
	}
	s->nv = n;
	s->total = total;
	return true;
}

/* The stack's link: straight to the device unless this direction is impaired. */
static int tun_transmit(void *ctx, const struct tern_iovec *iov, unsigned n, size_t total)
{
	struct tern_tun *t = ctx;
	uint64_t now = tern_stack_now(t->st);
	pcap_packet(t, now, iov, n, total);
	if (!t->impaired[DIR_OUT]) {
		if (!t->ring || !tx_keep(t, iov, n, total))
			device_write(t, iov, n, total);
		return 0;
	}
	if (total > t->mtu)
		return -EMSGSIZE;
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(t->txcopy + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	struct impair_verdict v;
	impair_judge(&t->rng, t->rules, t->nrules, TERN_TUN_TERN, TERN_TUN_KERNEL, &t->imp[DIR_OUT],
		     t->txcopy, total, &v);
	t->stats.tx_corrupted += v.corrupted;
	if (v.drop) {
		t->stats.tx_impair_drops++;
		return 0;
	}
	t->stats.tx_held += v.held;
	struct tern_iovec one = {t->txcopy, total};
	if (v.delay_us)
		held_push(t, t->txcopy, total, now + v.delay_us, DIR_OUT);
	else
		device_write(t, &one, 1, total);
	if (v.dup) {
		t->stats.tx_duplicated++;
		held_push(t, t->txcopy, total, now + v.dup_delay_us, DIR_OUT);
	}
	return 0;
}

/* Write or deliver every held packet that is due. */
static void release_held(struct tern_tun *t, uint64_t now)
{
	while (t->nheap && t->heap[0].t <= now) {
		struct held h = held_pop(t);
		struct tern_iovec one = {h.data, h.len};
		if (h.dir == DIR_OUT)
			device_write(t, &one, 1, h.len);
		else if (t->st) {
			pcap_packet(t, now, &one, 1, h.len);
			tern_stack_input(t->st, h.data, h.len, now);
		}
		free(h.data);
	}
}

/* Read up to a batch of packets and give the stack those that are not lost or held back. */
static unsigned device_read(struct tern_tun *t, uint64_t now)
{
	unsigned n = 0, got = 0;
	while (got < t->batch) {
		uint8_t *buf = t->rxbuf + (size_t)n * t->rxbuf_size;
		ssize_t r = read(t->fd, buf, t->rxbuf_size);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: drained */
		}
		got++;
		t->stats.rx_packets++;
		t->stats.rx_bytes += (uint64_t)r;
		if (t->impaired[DIR_IN]) {
			struct impair_verdict v;
			impair_judge(&t->rng, t->rules, t->nrules, TERN_TUN_KERNEL, TERN_TUN_TERN,
				     &t->imp[DIR_IN], buf, (size_t)r, &v);
			t->stats.rx_corrupted += v.corrupted;
			if (v.drop) {
				t->stats.rx_impair_drops++;
				continue;
			}
			t->stats.rx_held += v.held;
			if (v.dup) {
				t->stats.rx_duplicated++;
				held_push(t, buf, (size_t)r, now + v.dup_delay_us, DIR_IN);
			}
			if (v.delay_us) {
				held_push(t, buf, (size_t)r, now + v.delay_us, DIR_IN);
				continue;
			}
		}
		t->rxv[n].base = buf;
		t->rxv[n].len = (size_t)r;
		pcap_packet(t, now, &t->rxv[n], 1, (size_t)r);
		n++;
	}
	if (n && t->st)
		tern_stack_input_batch(t->st, t->rxv, n, now);
	return got;
}

/* ---- configuration ---- */

static int if_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *name)
{
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
	return ioctl(s, req, ifr) < 0 ? -errno : 0;
}

static void set_sin(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(addr);
	memcpy(sa, &sin, sizeof(sin));
}

static uint32_t prefix_mask(unsigned plen) { return plen ? ~0u << (32 - plen) : 0; }

/* Is tern's address already reached through another interface of this namespace, by a
 * prefix at least as long as the link's? Then the kernel would route to tern through that
 * one (longest match; between equals, the older route), and nothing would reach this
 * device: most often a second tern started on the same prefix. 0, or -1 with err set. */
static int check_route_free(const char *self, uint32_t tern_addr, unsigned plen, char *err,
			    size_t errlen)
{
	struct ifaddrs *all;
	if (getifaddrs(&all) < 0)
		return 0; /* cannot tell: the kernel will have the last word */
	int rc = 0;
	for (struct ifaddrs *i = all; i && !rc; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !i->ifa_netmask ||
		    !strcmp(i->ifa_name, self))
			continue;
		struct sockaddr_in a, m;
		memcpy(&a, i->ifa_addr, sizeof(a));
		memcpy(&m, i->ifa_netmask, sizeof(m));
		uint32_t mask = ntohl(m.sin_addr.s_addr);
		if (mask < prefix_mask(plen) || ((ntohl(a.sin_addr.s_addr) ^ tern_addr) & mask))
			continue;
		char mine[INET_ADDRSTRLEN], theirs[INET_ADDRSTRLEN];
		struct in_addr ta = {htonl(tern_addr)};
		inet_ntop(AF_INET, &ta, mine, sizeof(mine));
		inet_ntop(AF_INET, &a.sin_addr, theirs, sizeof(theirs));
		errf(err, errlen,
		     "%s lies in %s/%d on %s: the kernel would send tern's packets there, not to %s "
		     "(another tern on the same prefix?); choose another --addr",
		     mine, theirs, __builtin_popcount(mask), i->ifa_name, self);
		rc = -1;
	}
	freeifaddrs(all);
	return rc;
}

/* Address, netmask, MTU and up on the kernel's side, the way `ip addr add` and `ip link set
 * up` would; then read back the MTU. */
static int configure(struct tern_tun *t, const struct tern_tun_config *cfg, char *err,
		     size_t errlen)
{
	unsigned plen = cfg->prefix_len ? cfg->prefix_len : 24;
	if (cfg->host_addr && check_route_free(t->name, cfg->addr, plen, err, errlen))
		return -1;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		errf(err, errlen, "socket(AF_INET): %s", strerror(errno));
		return -1;
	}
	struct ifreq ifr;
	int rc = 0;
	const char *what = "";
	memset(&ifr, 0, sizeof(ifr));
	if (cfg->mtu) {
		ifr.ifr_mtu = (int)cfg->mtu;
		what = "set the MTU of";
		rc = if_ioctl(s, SIOCSIFMTU, &ifr, t->name);
	}
	if (!rc && cfg->host_addr) {
		/* tern speaks IPv4 only: keep the kernel from sending router solicitations and
		 * neighbour discovery on the link (best effort; IPv6 may be off already). */
		char path[96];
		snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", t->name);
		int pf = open(path, O_WRONLY | O_CLOEXEC);
		if (pf >= 0) {
			ssize_t w = write(pf, "1", 1);
			(void)w;
			close(pf);
		}
		memset(&ifr, 0, sizeof(ifr));
		set_sin(&ifr.ifr_addr, cfg->host_addr);
		what = "give an address to";
		rc = if_ioctl(s, SIOCSIFADDR, &ifr, t->name);
		if (!rc) {
			memset(&ifr, 0, sizeof(ifr));
			set_sin(&ifr.ifr_netmask, prefix_mask(plen));
			what = "set the netmask of";
			rc = if_ioctl(s, SIOCSIFNETMASK, &ifr, t->name);
		}
		if (!rc) {
			memset(&ifr, 0, sizeof(ifr));
			what = "bring up";
			rc = if_ioctl(s, SIOCGIFFLAGS, &ifr, t->name);
			if (!rc) {
				ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
				rc = if_ioctl(s, SIOCSIFFLAGS, &ifr, t->name);
			}
		}
	}
	if (!rc) {
		memset(&ifr, 0, sizeof(ifr));
		what = "read the MTU of";
		rc = if_ioctl(s, SIOCGIFMTU, &ifr, t->name);
		t->mtu = (unsigned)ifr.ifr_mtu;
	}
	close(s);
	if (rc) {
		errf(err, errlen, "cannot %s %s: %s", what, t->name, strerror(-rc));
		return -1;
	}
	if (t->mtu < 576 || t->mtu > 65535) {
		errf(err, errlen, "%s has MTU %u; tern needs 576..65535", t->name, t->mtu);
		return -1;
	}
	return 0;
}

struct tern_tun *tern_tun_open(const struct tern_tun_config *cfg, char *err, size_t errlen)
{
	if (!cfg->addr) {
		errf(err, errlen, "no address for tern on the TUN link");
		return NULL;
	}
	if (cfg->prefix_len > 30 || (cfg->ifname && strlen(cfg->ifname) >= IFNAMSIZ)) {
		errf(err, errlen, cfg->prefix_len > 30 ? "prefix length %u: use 1..30"
						       : "interface name too long (%u)",
		     cfg->prefix_len > 30 ? cfg->prefix_len : (unsigned)IFNAMSIZ - 1);
		return NULL;
	}
	if (cfg->batch > 1024 || (cfg->mtu && (cfg->mtu < 576 || cfg->mtu > 65535))) {
		errf(err, errlen, "batch above 1024 or MTU outside 576..65535");
		return NULL;
	}
	struct tern_tun *t = calloc(1, sizeof(*t));
	if (!t) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd = -1;
	t->addr = cfg->addr;
	t->batch = cfg->batch ? cfg->batch : 64;
	t->max_held = cfg->max_held ? cfg->max_held : 65536;
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;
		errf(err, errlen, "cannot open /dev/net/tun: %s%s", strerror(e),
		     e == ENOENT ? " (is the tun module loaded?)"
		     : e == EACCES || e == EPERM ? " (tern needs CAP_NET_ADMIN: run it as root)" : "");
		goto fail;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (cfg->ifname && *cfg->ifname)
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", cfg->ifname);
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		errf(err, errlen, "cannot attach to TUN device %s: %s%s",
		     cfg->ifname && *cfg->ifname ? cfg->ifname : "(new)", strerror(e),
		     e == EPERM ? " (tern needs CAP_NET_ADMIN: run it as root)"
		     : e == EBUSY ? " (another program has it open)"
		     : e == EINVAL ? " (is it a TAP device, or a TUN device with other flags?)" : "");
		goto fail;
	}
	snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
	if (configure(t, cfg, err, errlen) < 0)
		goto fail;
	/* A read buffer holds the largest packet the device can carry. */
	t->rxbuf_size = (t->mtu + 63u) & ~(size_t)63;
	t->rxbuf = malloc(t->rxbuf_size * t->batch);
	t->rxv = calloc(t->batch, sizeof(*t->rxv));
	t->txcopy = malloc(t->mtu);
	if (!t->rxbuf || !t->rxv || !t->txcopy) {
		errf(err, errlen, "out of memory");
		goto fail;
	}
	t->imp[DIR_IN] = cfg->impair_in;
	t->imp[DIR_OUT] = cfg->impair_out;
	if (cfg->nrules) {
		t->rules = calloc(cfg->nrules, sizeof(*t->rules));
		if (!t->rules) {
			errf(err, errlen, "out of memory");
			goto fail;
		}
		for (unsigned i = 0; i < cfg->nrules; i++)
			t->rules[i].r = cfg->rules[i];
		t->nrules = (int)cfg->nrules;
	}
	for (int d = 0; d < 2; d++) {
		const struct tern_impair *m = &t->imp[d];
		t->impaired[d] = m->loss > 0 || m->dup > 0 || m->reorder > 0 || m->corrupt > 0 ||
				 m->delay_us || m->jitter_us;
		for (int i = 0; i < t->nrules; i++) {
			int from = t->rules[i].r.from;
			t->impaired[d] |= from < 0 || from == (d == DIR_OUT ? TERN_TUN_TERN : TERN_TUN_KERNEL);
		}
	}
	rng_seed(&t->rng, cfg->seed);
	if (cfg->tx_io != TERN_TUN_IO_WRITEV) {
		t->ring = uring_open(t->fd, TX_BURST);
		if (t->ring) {
			t->txq = malloc(TX_BURST * sizeof(*t->txq));
			t->txw = malloc(TX_BURST * sizeof(*t->txw));
			if (!t->txq || !t->txw) {
				errf(err, errlen, "out of memory");
				goto fail;
			}
		} else if (cfg->tx_io == TERN_TUN_IO_URING) {
			errf(err, errlen, "io_uring is not available: %s%s", strerror(errno),
			     errno == EPERM ? " (kernel.io_uring_disabled, or a seccomp filter)" : "");
			goto fail;
		}
	}
	if (cfg->pcap_path) {
		t->pcap = tern_pcap_open(cfg->pcap_path);
		if (!t->pcap) {
			errf(err, errlen, "cannot write %s: %s", cfg->pcap_path, strerror(errno));
			goto fail;
		}
		struct timespec rt;
		clock_gettime(CLOCK_REALTIME, &rt);
		uint64_t wall = (uint64_t)rt.tv_sec * 1000000u + (uint64_t)rt.tv_nsec / 1000u;
		t->pcap_offset_us = (int64_t)(wall - tern_tun_clock());
	}
	return t;
fail:
	tern_tun_close(t);
	return NULL;
}

void tern_tun_close(struct tern_tun *t)
{
	if (!t)
		return;
	if (t->st)
		tern_stack_set_link(t->st, NULL);
	uring_close(t->ring);
	free(t->txq);
	free(t->txw);
	if (t->fd >= 0)
		close(t->fd);
	while (t->nheap)
		free(held_pop(t).data);
	free(t->heap);
	free(t->rules);
	free(t->rxbuf);
	free(t->rxv);
	free(t->txcopy);
	tern_pcap_close(t->pcap);
	free(t);
}

const char *tern_tun_name(const struct tern_tun *t) { return t->name; }
unsigned tern_tun_mtu(const struct tern_tun *t) { return t->mtu; }
int tern_tun_fd(const struct tern_tun *t) { return t->fd; }
const char *tern_tun_tx_io(const struct tern_tun *t) { return t->ring ? "io_uring" : "writev"; }
const struct tern_tun_stats *tern_tun_stats(const struct tern_tun *t) { return &t->stats; }

int tern_tun_attach(struct tern_tun *t, struct tern_stack *st)
{
	int rc = tern_stack_add_addr(st, t->addr);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	struct tern_link link = {.transmit = tun_transmit, .ctx = t, .flags = 0,
				 .flush = t->ring ? tun_flush : NULL};
	t->st = st;
	tern_stack_set_link(st, &link);
	return 0;
}

/* ---- the event loop ---- */

void tern_tun_poll(struct tern_tun *t)
{
	uint64_t now = tern_tun_clock();
	release_held(t, now);
	if (t->st)
		tern_stack_poll(t->st, now);
	if (t->pcap && now - t->pcap_flushed >= 100000) {
		tern_pcap_flush(t->pcap);
		t->pcap_flushed = now;
	}
}

int tern_tun_wait(struct tern_tun *t, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
	struct pollfd local[16];
	struct pollfd *p = local;
	if (nfds + 1 > sizeof(local) / sizeof(local[0])) {
		p = malloc((nfds + 1) * sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	uint64_t now = tern_tun_clock();
	release_held(t, now);
	if (t->st)
		tern_stack_poll(t->st, now);
	/* Busy: packets already wait (the answers to what was just written often do, since
	 * the kernel processes a written packet within the write). Take them without sleeping,
	 * and look at the caller's descriptors without a timeout, which spares the timer a
	 * sleeping poll arms. */
	int rc = 0;
	if (device_read(t, now)) {
		t->stats.wakeups++;
		if (nfds) {
			rc = poll(fds, nfds, 0);
			if (rc < 0) {
				int err = errno;
				for (unsigned i = 0; i < nfds; i++)
					fds[i].revents = 0;
				return -err;
			}
		}
		release_held(t, now);
		if (t->st)
			tern_stack_poll(t->st, now);
		if (p != local)
			free(p);
		return rc;
	}
	/* Idle: sleep until the first of the caller's limit, the stack's next timer, the next
	 * held packet. The stack's timers have millisecond ticks; ppoll sleeps to the
	 * microsecond. */
	uint64_t due = t->st ? tern_stack_next_timer(t->st) : TERN_TIME_NEVER;
	if (t->nheap && t->heap[0].t < due)
		due = t->heap[0].t;
	if (timeout_ms >= 0 && now + (uint64_t)timeout_ms * 1000u < due)
		due = now + (uint64_t)timeout_ms * 1000u;
	struct timespec ts, *tsp = NULL;
	if (due != TERN_TIME_NEVER) {
		uint64_t wait = due > now ? due - now : 0;
		ts.tv_sec = (time_t)(wait / 1000000u);
		ts.tv_nsec = (long)(wait % 1000000u) * 1000;
		tsp = &ts;
	}
	p[0].fd = t->fd;
	p[0].events = POLLIN;
	p[0].revents = 0;
	for (unsigned i = 0; i < nfds; i++) {
		p[i + 1] = fds[i];
		p[i + 1].revents = 0;
	}
	rc = ppoll(p, nfds + 1, tsp, NULL);
	int err = rc < 0 ? errno : 0;
	now = tern_tun_clock();
	if (rc > 0 && (p[0].revents & POLLIN)) {
		t->stats.wakeups++;
		device_read(t, now);
	}
	release_held(t, now);
	if (t->st)
		tern_stack_poll(t->st, now);
	int ready = 0;
	for (unsigned i = 0; i < nfds; i++) {
		fds[i].revents = rc > 0 ? p[i + 1].revents : 0;
		ready += fds[i].revents != 0;
	}
	if (p != local)
		free(p);
	if (t->pcap && now - t->pcap_flushed >= 100000) {
		tern_pcap_flush(t->pcap);
		t->pcap_flushed = now;
	}
	if (rc < 0)
		return -err;
	return ready;
}

int tern_tun_parse_rule(const char *text, enum tern_sim_action action, struct tern_sim_rule *out)
{
	memset(out, 0, sizeof(*out));
	out->from = out->to = -1;
	out->action = action;
	if (!strncmp(text, "in:", 3)) {
		out->from = TERN_TUN_KERNEL;
		out->to = TERN_TUN_TERN;
		text += 3;
	} else if (!strncmp(text, "out:", 4)) {
		out->from = TERN_TUN_TERN;
		out->to = TERN_TUN_KERNEL;
		text += 4;
	}
	return tern_impair_parse_class(text, out);
}
