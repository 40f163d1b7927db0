/*
 * A minimal io_uring for bursts of writes (see uring.h). The rings are the kernel's shared
 * memory layout (io_uring_setup(2)): we fill submission entries, publish the new tail, and
 * one io_uring_enter both starts every write and waits for all of them. A device that is
 * always writable, as a TUN device is, takes each write inline, in submission order, inside
 * that one call.
 */
#define _GNU_SOURCE
#include "uring.h"
#include <errno.h>
#include <stdbool.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

struct uring {
	int ring_fd, fd;
	bool fixed;                 /* fd registered: submissions name it as index 0 */
	unsigned entries;
	unsigned *sq_tail, *sq_mask, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len, sqes_len;
};

static long sys_setup(unsigned entries, struct io_uring_params *p)
{
	return syscall(__NR_io_uring_setup, entries, p);
}

static long sys_enter(int fd, unsigned submit, unsigned complete, unsigned flags)
{
	return syscall(__NR_io_uring_enter, fd, submit, complete, flags, NULL, 0);
}

void uring_close(struct uring *u)
{
	if (!u)
		return;
	if (u->sqes && u->sqes != MAP_FAILED)
		munmap(u->sqes, u->sqes_len);
	if (u->cq_map && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
		munmap(u->cq_map, u->cq_map_len);
	if (u->sq_map && u->sq_map != MAP_FAILED)
		munmap(u->sq_map, u->sq_map_len);
	if (u->ring_fd >= 0)
		close(u->ring_fd);
	free(u);
}

struct uring *uring_open(int fd, unsigned entries)
{
	if (entries == 0 || entries > 4096 || (entries & (entries - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct uring *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->fd = fd;
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	u->ring_fd = (int)sys_setup(entries, &p);
	if (u->ring_fd < 0) {
		int e = errno;
		free(u);
		errno = e;
		return NULL;
	}
	u->entries = p.sq_entries;
	u->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	u->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	/* Since 5.4 both rings live in one mapping. */
	bool single = p.features & IORING_FEAT_SINGLE_MMAP;
	if (single && u->cq_map_len > u->sq_map_len)
		u->sq_map_len = u->cq_map_len;
	u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 u->ring_fd, IORING_OFF_SQ_RING);
	if (u->sq_map == MAP_FAILED)
		goto fail;
	u->cq_map = single ? u->sq_map
			   : mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_POPULATE, u->ring_fd, IORING_OFF_CQ_RING);
	if (u->cq_map == MAP_FAILED)
		goto fail;
	u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       u->ring_fd, IORING_OFF_SQES);
	if (u->sqes == MAP_FAILED)
		goto fail;
	uint8_t *sq = u->sq_map, *cq = u->cq_map;
	u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	u->cq_head = (unsigned *)(cq + p.cq_off.head);
	u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	/* Entries are always filled at tail & mask, so the indirection array is the identity. */
	unsigned *array = (unsigned *)(sq + p.sq_off.array);
	for (unsigned i = 0; i < p.sq_entries; i++)
		array[i] = i;
	/* A registered file spares the kernel looking the descriptor up on every write. */
	u->fixed = syscall(__NR_io_uring_register, u->ring_fd, IORING_REGISTER_FILES, &u->fd, 1) == 0;
	return u;
fail: {
	int e = errno;
	uring_close(u);
	errno = e;
	return NULL;
}
}

/* Take every completion there is, noting results by index. */
static unsigned reap(struct uring *u, struct uring_write *w, unsigned n)
{
	unsigned head = *u->cq_head, got = 0;
	unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
	for (; head != tail; head++, got++) {
		const struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
		if (c->user_data < n)
			w[c->user_data].res = c->res;
	}
	__atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
	return got;
}

/* At most the ring's size at a time: fill the entries, then one io_uring_enter submits them
 * all and waits for all of them. Only EINTR is tried again; on any other failure the entries
 * not yet taken are withdrawn (the kernel reads them only inside io_uring_enter), those taken
 * are waited for, and the caller writes the rest another way. */
int uring_writev(struct uring *u, struct uring_write *w, unsigned n, unsigned *done)
{
	unsigned finished = 0;
	while (finished < n) {
		unsigned k = n - finished;
		if (k > u->entries)
			k = u->entries;
		unsigned tail = *u->sq_tail, mask = *u->sq_mask;
		for (unsigned i = 0; i < k; i++) {
			struct io_uring_sqe *e = &u->sqes[(tail + i) & mask];
			memset(e, 0, sizeof(*e));
			e->opcode = IORING_OP_WRITEV;
			e->fd = u->fixed ? 0 : u->fd;
			e->flags = u->fixed ? IOSQE_FIXED_FILE : 0;
			e->addr = (uint64_t)(uintptr_t)w[finished + i].iov;
			e->len = w[finished + i].iovcnt;
			e->off = (uint64_t)-1;
			e->user_data = finished + i;
		}
		__atomic_store_n(u->sq_tail, tail + k, __ATOMIC_RELEASE);
		unsigned submitted = 0, reaped = 0;
		int err = 0;
		while (reaped < submitted || (submitted < k && !err)) {
			unsigned sub = err ? 0 : k - submitted;
			long rc = sys_enter(u->ring_fd, sub, submitted + sub - reaped,
					    IORING_ENTER_GETEVENTS);
			if (rc == 0 && sub) {
				rc = -1; /* took nothing, said nothing: do not spin */
				errno = EAGAIN;
			}
			if (rc > 0)
				submitted += (unsigned)rc;
			else if (rc < 0 && errno != EINTR) {
				if (err)
					break; /* cannot even wait: give the ring up */
				err = errno;
				__atomic_store_n(u->sq_tail, tail + submitted, __ATOMIC_RELEASE);
			}
			reaped += reap(u, w, n);
		}
		if (err) {
			*done = finished + reaped;
			return -err;
		}
		finished += k;
	}
	*done = n;
	return (int)n;
}
