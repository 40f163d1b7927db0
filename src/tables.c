/*
 * Lookup structures: the 4-tuple table (O(1) demultiplexing), listeners by port, bind buckets
 * (who holds a local port), ephemeral port choice (RFC 6056), the UDP port table and the
 * descriptor table.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* A keyed mix of the 4-tuple. The key is secret and per stack, so a peer cannot aim many
 * connections at one chain (the reason Linux keys inet_ehashfn). */
static inline uint32_t tuple_hash(const struct tern_stack *st, uint32_t la, uint16_t lp,
				  uint32_t ra, uint16_t rp)
{
	uint64_t x = (((uint64_t)la << 32) | ra) ^ st->hash_key[0];
	uint64_t y = (((uint64_t)lp << 16) | rp) ^ st->hash_key[1];
	x ^= y * 0x9e3779b97f4a7c15ull;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ull;
	x ^= x >> 32;
	return (uint32_t)x;
}

static inline uint32_t port_hash(const struct tern_stack *st, uint16_t port)
{
	uint64_t x = (port ^ st->hash_key[1]) * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(x >> 32);
}

/* ---- 4-tuple table: chained, doubled when the load passes one ---- */

static void conn_grow(struct tern_stack *st)
{
	uint32_t nsize = (st->cmask + 1) * 2;
	struct conn_hdr **n = calloc(nsize, sizeof(*n));
	if (!n)
		return; /* keep the longer chains; still correct */
	for (uint32_t i = 0; i <= st->cmask; i++) {
		struct conn_hdr *h = st->ctab[i];
		while (h) {
			struct conn_hdr *next = h->hnext;
			uint32_t b = tuple_hash(st, h->laddr, h->lport, h->raddr, h->rport) & (nsize - 1);
			h->hnext = n[b];
			n[b] = h;
			h = next;
		}
	}
	free(st->ctab);
	st->ctab = n;
	st->cmask = nsize - 1;
}

struct conn_hdr *conn_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport,
			     uint32_t raddr, uint16_t rport)
{
	struct conn_hdr *h = st->clast;
	if (h && h->lport == lport && h->rport == rport && h->laddr == laddr && h->raddr == raddr)
		return h;
	uint32_t b = tuple_hash(st, laddr, lport, raddr, rport) & st->cmask;
	for (h = st->ctab[b]; h; h = h->hnext) {
		if (h->lport == lport && h->rport == rport && h->laddr == laddr && h->raddr == raddr) {
			st->clast = h;
			return h;
		}
	}
	return NULL;
}

void conn_insert(struct tern_stack *st, struct conn_hdr *h)
{
	if (st->ccount >= st->cmask + 1)
		conn_grow(st);
	uint32_t b = tuple_hash(st, h->laddr, h->lport, h->raddr, h->rport) & st->cmask;
	h->hnext = st->ctab[b];
	st->ctab[b] = h;
	st->ccount++;
}

void conn_remove(struct tern_stack *st, struct conn_hdr *h)
{
	if (st->clast == h)
		st->clast = NULL;
	uint32_t b = tuple_hash(st, h->laddr, h->lport, h->raddr, h->rport) & st->cmask;
	for (struct conn_hdr **pp = &st->ctab[b]; *pp; pp = &(*pp)->hnext) {
		if (*pp == h) {
			*pp = h->hnext;
			h->hnext = NULL;
			st->ccount--;
			return;
		}
	}
}

/* ---- listeners: few, by local port; a specific address wins over the wildcard ---- */

struct tern_tcb *listener_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport)
{
	struct tern_tcb *any = NULL;
	for (struct tern_tcb *l = st->ltab[port_hash(st, lport) & st->lmask]; l;
	     l = (struct tern_tcb *)l->h.hnext) {
		if (l->h.lport != lport)
			continue;
		if (l->h.laddr == laddr)
			return l;
		if (l->h.laddr == 0 && !any)
			any = l;
	}
	return any;
}

void listener_insert(struct tern_stack *st, struct tern_tcb *l)
{
	uint32_t b = port_hash(st, l->h.lport) & st->lmask;
	l->h.hnext = (struct conn_hdr *)st->ltab[b];
	st->ltab[b] = l;
}

void listener_remove(struct tern_stack *st, struct tern_tcb *l)
{
	uint32_t b = port_hash(st, l->h.lport) & st->lmask;
	for (struct conn_hdr **pp = (struct conn_hdr **)&st->ltab[b]; *pp; pp = &(*pp)->hnext) {
		if (*pp == &l->h) {
			*pp = l->h.hnext;
			l->h.hnext = NULL;
			return;
		}
	}
}

/* ---- bind buckets ---- */

static void bind_grow(struct tern_stack *st)
{
	uint32_t nsize = (st->bmask + 1) * 2;
	struct bind_bucket **n = calloc(nsize, sizeof(*n));
	if (!n)
		return;
	for (uint32_t i = 0; i <= st->bmask; i++) {
		struct bind_bucket *b = st->btab[i];
		while (b) {
			struct bind_bucket *next = b->next;
			uint32_t k = port_hash(st, b->port) & (nsize - 1);
			b->next = n[k];
			n[k] = b;
			b = next;
		}
	}
	free(st->btab);
	st->btab = n;
	st->bmask = nsize - 1;
}

struct bind_bucket *bind_find(struct tern_stack *st, uint16_t port)
{
	for (struct bind_bucket *b = st->btab[port_hash(st, port) & st->bmask]; b; b = b->next)
		if (b->port == port)
			return b;
	return NULL;
}

static struct bind_bucket *bind_get(struct tern_stack *st, uint16_t port)
{
	struct bind_bucket *b = bind_find(st, port);
	if (b)
		return b;
	if (st->bcount >= st->bmask + 1)
		bind_grow(st);
	b = calloc(1, sizeof(*b));
	if (!b) {
		st->stats.mem_failures++;
		return NULL;
	}
	b->port = port;
	uint32_t k = port_hash(st, port) & st->bmask;
	b->next = st->btab[k];
	st->btab[k] = b;
	st->bcount++;
	return b;
}

static void bind_put(struct tern_stack *st, struct bind_bucket *b)
{
	if (b->owners || b->n_tw)
		return;
	for (struct bind_bucket **pp = &st->btab[port_hash(st, b->port) & st->bmask]; *pp;
	     pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			st->bcount--;
			free(b);
			return;
		}
	}
}

/*
 * Linux's rule (inet_csk_bind_conflict): two sockets may share a port when their local
 * addresses differ (neither being the wildcard), or when both set SO_REUSEADDR and neither is
 * listening. TIME_WAIT records on the port block a bind() unless the new socket sets
 * SO_REUSEADDR and the old one had it too; their addresses are not kept, so any counts.
 */
int bind_check(struct tern_stack *st, const struct tern_tcb *tcb, uint32_t addr, uint16_t port)
{
	struct bind_bucket *b = bind_find(st, port);
	if (!b)
		return 0;
	bool reuse = tcb->tf & TF_REUSEADDR;
	for (const struct tern_tcb *o = b->owners; o; o = o->bnext) {
		if (o == tcb)
			continue;
		if (o->h.laddr && addr && o->h.laddr != addr)
			continue;
		if (reuse && (o->tf & TF_REUSEADDR) && o->h.state != TERN_STATE_LISTEN &&
		    tcb->h.state != TERN_STATE_LISTEN)
			continue;
		return -EADDRINUSE;
	}
	if (b->n_tw && (!reuse || b->n_tw_noreuse))
		return -EADDRINUSE;
	return 0;
}

int bind_add(struct tern_stack *st, struct tern_tcb *tcb, uint16_t port)
{
	struct bind_bucket *b = bind_get(st, port);
	if (!b)
		return -ENOBUFS;
	tcb->bnext = b->owners;
	b->owners = tcb;
	if (tcb->tf & (TF_BOUND | TF_PASSIVE))
		b->n_explicit++;
	tcb->tf |= TF_INBOUND;
	return 0;
}

void bind_del(struct tern_stack *st, struct tern_tcb *tcb)
{
	if (!(tcb->tf & TF_INBOUND))
		return;
	struct bind_bucket *b = bind_find(st, tcb->h.lport);
	tcb->tf &= ~TF_INBOUND;
	if (!b)
		return;
	for (struct tern_tcb **pp = &b->owners; *pp; pp = &(*pp)->bnext) {
		if (*pp == tcb) {
			*pp = tcb->bnext;
			break;
		}
	}
	tcb->bnext = NULL;
	if (tcb->tf & (TF_BOUND | TF_PASSIVE))
		b->n_explicit--;
	bind_put(st, b);
}

void bind_tw_add(struct tern_stack *st, uint16_t port, bool reuse)
{
	struct bind_bucket *b = bind_get(st, port);
	if (!b)
		return;
	b->n_tw++;
	if (!reuse)
		b->n_tw_noreuse++;
}

void bind_tw_del(struct tern_stack *st, uint16_t port, bool reuse)
{
	struct bind_bucket *b = bind_find(st, port);
	if (!b || !b->n_tw)
		return;
	b->n_tw--;
	if (!reuse && b->n_tw_noreuse)
		b->n_tw_noreuse--;
	bind_put(st, b);
}

/*
 * RFC 6056 §3.3.4, Algorithm 4 (double-hash port selection): the starting point depends on
 * the destination through a keyed hash, so ports are unpredictable to an off-path attacker,
 * yet successive connections to one destination walk through the range instead of colliding.
 * A port is usable when no bind() or listener holds it and the full 4-tuple is free.
 */
uint16_t port_choose(struct tern_stack *st, uint32_t laddr, uint32_t raddr, uint16_t rport)
{
	uint32_t lo = st->set.port_range_lo, hi = st->set.port_range_hi;
	if (hi < lo)
		return 0;
	uint32_t num = hi - lo + 1;
	uint8_t in[10];
	wr32(in, laddr);
	wr32(in + 4, raddr);
	wr16(in + 8, rport);
	uint64_t h = siphash24(st->port_key, in, sizeof(in));
	uint32_t offset = (uint32_t)h;
	uint32_t index = (uint32_t)(h >> 56);
	for (uint32_t count = num; count > 0; count--) {
		uint32_t port = lo + (offset + st->port_perturb[index]) % num;
		st->port_perturb[index]++;
		struct bind_bucket *b = bind_find(st, (uint16_t)port);
		if (b && b->n_explicit)
			continue;
		if (conn_lookup(st, laddr, (uint16_t)port, raddr, rport))
			continue;
		return (uint16_t)port;
	}
	return 0;
}

/* ---- UDP sockets by local port: chained, doubled when the load passes one ---- */

static inline uint32_t udp_bucket(const struct tern_stack *st, uint16_t port)
{
	return port_hash(st, port) & st->umask;
}

static void udp_grow(struct tern_stack *st)
{
	uint32_t nsize = (st->umask + 1) * 2;
	struct tern_udp **n = calloc(nsize, sizeof(*n));
	if (!n)
		return; /* keep the longer chains; still correct */
	/* Walk each chain into a list first so that sockets sharing a port keep their order
	 * (the newest first wins a tie in udp_lookup). */
	for (uint32_t i = 0; i <= st->umask; i++) {
		struct tern_udp *rev = NULL;
		for (struct tern_udp *u = st->utab[i], *next; u; u = next) {
			next = (struct tern_udp *)u->h.hnext;
			u->h.hnext = (struct conn_hdr *)rev;
			rev = u;
		}
		for (struct tern_udp *u = rev, *next; u; u = next) {
			next = (struct tern_udp *)u->h.hnext;
			uint32_t b = port_hash(st, u->h.lport) & (nsize - 1);
			u->h.hnext = (struct conn_hdr *)n[b];
			n[b] = u;
		}
	}
	free(st->utab);
	st->utab = n;
	st->umask = nsize - 1;
}

int udp_hash_insert(struct tern_stack *st, struct tern_udp *u)
{
	if (!st->utab) {
		st->utab = calloc(64, sizeof(*st->utab));
		if (!st->utab) {
			st->stats.mem_failures++;
			return -ENOBUFS;
		}
		st->umask = 63;
	}
	if (st->ucount >= st->umask + 1)
		udp_grow(st);
	uint32_t b = udp_bucket(st, u->h.lport);
	u->h.hnext = (struct conn_hdr *)st->utab[b];
	st->utab[b] = u;
	st->ucount++;
	u->uf |= UF_HASHED;
	return 0;
}

void udp_hash_remove(struct tern_stack *st, struct tern_udp *u)
{
	if (!(u->uf & UF_HASHED))
		return;
	u->uf &= ~UF_HASHED;
	for (struct conn_hdr **pp = (struct conn_hdr **)&st->utab[udp_bucket(st, u->h.lport)]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == &u->h) {
			*pp = u->h.hnext;
			u->h.hnext = NULL;
			st->ucount--;
			return;
		}
	}
}

struct tern_udp *udp_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport,
			    uint32_t raddr, uint16_t rport)
{
	if (!st->utab)
		return NULL;
	struct tern_udp *best = NULL;
	int best_score = -1;
	for (struct tern_udp *u = st->utab[udp_bucket(st, lport)]; u;
	     u = (struct tern_udp *)u->h.hnext) {
		if (u->h.lport != lport)
			continue;
		int score = 0;
		if (u->h.laddr) {
			if (u->h.laddr != laddr)
				continue;
			score += 4;
		}
		if (u->h.raddr) {
			if (u->h.raddr != raddr)
				continue;
			score += 4;
		}
		if (u->h.rport) {
			if (u->h.rport != rport)
				continue;
			score += 4;
		}
		if (score > best_score) {
			best = u;
			best_score = score;
		}
	}
	return best;
}

/*
 * Linux's udp_lib_lport_inuse: two UDP sockets may share a port when both set SO_REUSEADDR,
 * or when their local addresses differ and neither is the wildcard. There is no listening
 * socket in UDP, so unlike TCP's rule nothing else matters.
 */
int udp_bind_check(struct tern_stack *st, const struct tern_udp *u, uint32_t addr, uint16_t port)
{
	if (!st->utab)
		return 0;
	for (const struct tern_udp *o = st->utab[udp_bucket(st, port)]; o;
	     o = (const struct tern_udp *)o->h.hnext) {
		if (o == u || o->h.lport != port)
			continue;
		if ((u->uf & UF_REUSEADDR) && (o->uf & UF_REUSEADDR))
			continue;
		if (o->h.laddr && addr && o->h.laddr != addr)
			continue;
		return -EADDRINUSE;
	}
	return 0;
}

static bool udp_port_used(const struct tern_stack *st, uint16_t port)
{
	if (!st->utab)
		return false;
	for (const struct tern_udp *o = st->utab[udp_bucket(st, port)]; o;
	     o = (const struct tern_udp *)o->h.hnext)
		if (o->h.lport == port)
			return true;
	return false;
}

/*
 * RFC 6056 §3.3.1, Algorithm 1 (a random start, then the next port up), as tern_bind() does
 * for TCP and Linux for a UDP autobind: a datagram socket has no single destination for
 * Algorithm 4 to hash. The port must be free of every UDP socket, SO_REUSEADDR or not.
 */
uint16_t udp_port_choose(struct tern_stack *st)
{
	uint32_t lo = st->set.port_range_lo, hi = st->set.port_range_hi;
	if (hi < lo)
		return 0;
	uint32_t span = hi - lo + 1, start = (uint32_t)(rng_next(&st->rng) % span);
	for (uint32_t i = 0; i < span; i++) {
		uint16_t p = (uint16_t)(lo + (start + i) % span);
		if (!udp_port_used(st, p))
			return p;
	}
	return 0;
}

/* ---- descriptors: the lowest free number first, as POSIX does for files ---- */

int fd_alloc(struct tern_stack *st, struct conn_hdr *sock)
{
	uint32_t words = st->fd_cap / 64;
	for (uint32_t w = st->fd_hint / 64; w < words; w++) {
		uint64_t free_bits = ~st->fd_used[w];
		if (!free_bits)
			continue;
		uint32_t fd = w * 64 + (uint32_t)__builtin_ctzll(free_bits);
		if (fd >= st->set.max_sockets)
			return -EMFILE;
		st->fd_used[w] |= 1ull << (fd % 64);
		st->fds[fd] = sock;
		st->fd_hint = fd;
		return (int)fd;
	}
	if (st->fd_cap >= st->set.max_sockets)
		return -EMFILE;
	uint32_t ncap = st->fd_cap ? st->fd_cap * 2 : 64;
	struct conn_hdr **nf = realloc(st->fds, ncap * sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	st->fds = nf;
	uint64_t *nu = realloc(st->fd_used, ncap / 64 * sizeof(*nu));
	if (!nu)
		return -ENOMEM;
	st->fd_used = nu;
	memset(nf + st->fd_cap, 0, (ncap - st->fd_cap) * sizeof(*nf));
	memset(nu + st->fd_cap / 64, 0, (ncap - st->fd_cap) / 64 * sizeof(*nu));
	st->fd_cap = ncap;
	return fd_alloc(st, sock);
}

void fd_free(struct tern_stack *st, int fd)
{
	if (fd < 0 || (uint32_t)fd >= st->fd_cap)
		return;
	st->fds[fd] = NULL;
	st->fd_used[fd / 64] &= ~(1ull << (fd % 64));
	if ((uint32_t)fd < st->fd_hint)
		st->fd_hint = (uint32_t)fd;
}

struct conn_hdr *fd_get(struct tern_stack *st, int fd)
{
	if (fd < 0 || (uint32_t)fd >= st->fd_cap)
		return NULL;
	return st->fds[fd];
}
