/*
 * tern on a real network: a TUN device (Linux, IFF_TUN | IFF_NO_PI) as the stack's link. The
 * kernel sees the device as a network interface; packets it routes there reach tern, and
 * what tern sends appears to the kernel as received on the interface. The link reads the
 * clock and waits for the device and the stack's next timer, so the protocol core stays
 * sans-IO: this file is one of its drivers, like the simulated wire.
 *
 *   struct tern_tun_config cfg = {.addr = TERN_IP4(10,7,0,2), .prefix_len = 24,
 *                                 .host_addr = TERN_IP4(10,7,0,1)};
 *   struct tern_tun *tun = tern_tun_open(&cfg, err, sizeof(err));
 *   settings.mtu = tern_tun_mtu(tun);
 *   struct tern_stack *st = tern_stack_new(&settings, tern_tun_clock());
 *   tern_tun_attach(tun, st);
 *   for (;;) { tern_tun_wait(tun, NULL, 0, -1); ...sockets calls... }
 */
#ifndef TERN_TUN_H
#define TERN_TUN_H

#include <poll.h>
#include <stdint.h>
#include "tern/tern.h"
#include "tern/impair.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tern_tun;

/* Rules (struct tern_sim_rule) on a TUN link name its two ends with these. */
#define TERN_TUN_TERN 0   /* tern: rules from it act on what tern sends */
#define TERN_TUN_KERNEL 1 /* the kernel: rules from it act on what tern receives */

struct tern_tun_config {
	const char *ifname;          /* an existing device to attach to (ip tuntap add), or the
				      * name for a new one; NULL or "": a new one the kernel
				      * names (tun0, tun1, ...) */
	uint32_t addr;               /* tern's address on the link (required) */
	unsigned prefix_len;         /* the link's prefix length, 1..30 (0: 24) */
	uint32_t host_addr;          /* not 0: give the kernel's side this address with the
				      * prefix and bring the device up; 0: leave it as it is */
	unsigned mtu;                /* not 0: set the device's MTU; 0: use the device's */
	struct tern_impair impair_in;  /* what the kernel sends to tern */
	struct tern_impair impair_out; /* what tern sends to the kernel */
	const struct tern_sim_rule *rules; /* exact impairments (copied), from/to TERN_TUN_* */
	unsigned nrules;
	uint64_t seed;               /* the impairments' randomness */
	const char *pcap_path;       /* not NULL: write every packet tern receives (after the
				      * impairments) and sends (before them) to this file */
	unsigned batch;              /* packets read per wake-up, 1..1024 (0: 64) */
	unsigned max_held;           /* packets held back for delay at once (0: 65536); more
				      * are dropped and counted */
	unsigned tx_io;              /* how sent datagrams reach the device: TERN_TUN_IO_* */
};

/* TERN_TUN_IO_AUTO: a burst of datagrams (all the stack sends while handling one batch of
 * input, one timer run or one socket call) goes in one io_uring system call when the kernel
 * offers io_uring, else one writev each. TERN_TUN_IO_WRITEV: always one writev each.
 * TERN_TUN_IO_URING: io_uring or tern_tun_open fails. */
#define TERN_TUN_IO_AUTO 0
#define TERN_TUN_IO_WRITEV 1
#define TERN_TUN_IO_URING 2

/* Open (or create) the device and configure it. NULL on failure, with a message in err. */
struct tern_tun *tern_tun_open(const struct tern_tun_config *cfg, char *err, size_t errlen);
/* Detach from the stack (tern_tun_attach) first, or free the stack first. */
void tern_tun_close(struct tern_tun *t);

const char *tern_tun_name(const struct tern_tun *t);
/* The device's MTU: give it to the stack's settings ("mtu") so that MSS follows it. */
unsigned tern_tun_mtu(const struct tern_tun *t);
int tern_tun_fd(const struct tern_tun *t);
/* "io_uring" or "writev": how this link writes (TERN_TUN_IO_AUTO picks; a ring that fails
 * later falls back to writev). */
const char *tern_tun_tx_io(const struct tern_tun *t);

/* The clock every TUN-driven stack runs on: CLOCK_MONOTONIC in microseconds. */
uint64_t tern_tun_clock(void);

/* Make the device the stack's link and give the stack the configured address. */
int tern_tun_attach(struct tern_tun *t, struct tern_stack *st);

/*
 * One turn of the event loop: wait until the device has packets, a timer of the stack or of
 * the impairments is due, one of fds[] (poll(2) semantics; revents filled in) is ready, or
 * timeout_ms passes (-1: no limit); then feed the stack what arrived, in batches, and run its
 * timers. Never busy-waits. Returns how many of fds[] are ready (0 if none), or -errno
 * (-EINTR when a signal arrived, so a caller can look at its flags).
 */
int tern_tun_wait(struct tern_tun *t, struct pollfd *fds, unsigned nfds, int timeout_ms);

/* Run the stack's due timers and release due held packets without waiting. */
void tern_tun_poll(struct tern_tun *t);

struct tern_tun_stats {
	uint64_t rx_packets, rx_bytes;      /* read from the device */
	uint64_t tx_packets, tx_bytes;      /* written to the device */
	uint64_t rx_impair_drops, tx_impair_drops; /* lost on purpose */
	uint64_t rx_corrupted, tx_corrupted, rx_duplicated, tx_duplicated;
	uint64_t rx_held, tx_held;          /* delayed beyond the plain delay (reordered) */
	uint64_t held_overflow;             /* delayed packets dropped: max_held reached */
	uint64_t tx_errors;                 /* writes the device refused */
	uint64_t tx_bursts;                 /* io_uring calls that wrote more than one datagram */
	uint64_t tx_ring_failures;          /* io_uring itself failed: writev from then on */
	uint64_t wakeups;                   /* tern_tun_wait calls that found work */
};
const struct tern_tun_stats *tern_tun_stats(const struct tern_tun *t);

/* Parse a rule "[in:|out:]CLASS[#N[-M]]" (in: what tern receives, out: what it sends;
 * neither: both) with the given action. Returns 0 or -EINVAL. */
int tern_tun_parse_rule(const char *text, enum tern_sim_action action, struct tern_sim_rule *out);

#ifdef __cplusplus
}
#endif
#endif
