/*
 * Many writes in one system call: a minimal io_uring (Linux 5.1 and later), through the raw
 * system calls so that the library needs nothing beyond libc. The TUN link uses it to hand
 * the kernel a burst of datagrams at once, where writev(2) would cost one call each.
 */
#ifndef TERN_LINK_URING_H
#define TERN_LINK_URING_H

#include <stdint.h>
#include <sys/uio.h>

struct uring;

/* One write of a burst: a gather list, and what came of it (bytes written or -errno). */
struct uring_write {
	const struct iovec *iov;
	unsigned iovcnt;
	int32_t res;
};

/* A ring of `entries` (a power of two, 1..4096) writes to fd. NULL with errno set when this
 * kernel or its configuration offers no io_uring (ENOSYS, EPERM under a seccomp filter or
 * kernel.io_uring_disabled, ENOMEM). */
struct uring *uring_open(int fd, unsigned entries);
void uring_close(struct uring *u);

/* Write w[0..n) in order and wait until every one has finished, filling in each res.
 * Returns n, or -errno when the ring itself failed after the first k writes finished (k is
 * then in *done): the caller writes the rest another way. */
int uring_writev(struct uring *u, struct uring_write *w, unsigned n, unsigned *done);

#endif
