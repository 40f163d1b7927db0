/*
 * The simulated network: stacks joined by an in-memory wire, on a virtual clock that jumps
 * from one event to the next, so a 63-second timeout takes microseconds to run. Each
 * direction between two hosts can lose, duplicate, reorder, delay (with jitter) and corrupt
 * packets, at random or exactly (the Nth segment matching a class). Everything random comes
 * from the seed: the same seed, settings and script give the same run, event for event.
 */
#ifndef TERN_SIM_H
#define TERN_SIM_H

#include <stdbool.h>
#include "tern/tern.h"
#include "tern/impair.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tern_sim;

#define TERN_SIM_MAX_HOSTS 8

struct tern_sim *tern_sim_new(uint64_t seed);
void tern_sim_free(struct tern_sim *sim);

/* Add a host owning addr; its stack gets the settings (NULL: defaults) with a seed derived
 * from the simulation's. Returns the host's index (0, 1, ...) or a negative errno. */
int tern_sim_add_host(struct tern_sim *sim, const char *name, uint32_t addr,
		      const struct tern_settings *settings);
struct tern_stack *tern_sim_stack(struct tern_sim *sim, int host);
const char *tern_sim_host_name(const struct tern_sim *sim, int host);
uint32_t tern_sim_host_addr(const struct tern_sim *sim, int host);
int tern_sim_host_by_name(const struct tern_sim *sim, const char *name);
int tern_sim_nhosts(const struct tern_sim *sim);
/* The host loses every connection at once, without a word on the wire (a crash and
 * reboot): its stack is replaced by a fresh one with the same address and settings. */
void tern_sim_reboot(struct tern_sim *sim, int host);

uint64_t tern_sim_now(const struct tern_sim *sim);

/* Random impairments of the packets going from one host to another (-1: any host). */
void tern_sim_set_impair(struct tern_sim *sim, int from, int to, const struct tern_impair *imp);

/* Exact impairments (struct tern_sim_rule: tern/impair.h) in one direction between hosts. */
int tern_sim_add_rule(struct tern_sim *sim, const struct tern_sim_rule *rule);
/* Parse "[FROM>TO:]CLASS[#N[-M]]" (e.g. "syn", "fin#2", "b>a:synack#1-3", "a>b:data#5").
 * CLASS is any|syn|synack|ack|data|fin|rst. Returns 0 or -EINVAL. */
int tern_sim_parse_rule(const struct tern_sim *sim, const char *text, enum tern_sim_action action,
			struct tern_sim_rule *out);

/* Put a raw IPv4 datagram on the wire from host `from`, arriving after delay_us. It bypasses
 * rules and impairments (an old duplicate from the past, a spoofed packet). */
int tern_sim_inject(struct tern_sim *sim, int from, const void *pkt, size_t len, uint64_t delay_us);

/* Run fn(sim, arg) at virtual time t_us. */
typedef void (*tern_sim_fn)(struct tern_sim *sim, void *arg);
int tern_sim_at(struct tern_sim *sim, uint64_t t_us, tern_sim_fn fn, void *arg);

/* Readiness events of every host are handed to fn after each step of that host. */
typedef void (*tern_sim_event_fn)(struct tern_sim *sim, int host, const struct tern_event *ev,
				  void *user);
void tern_sim_on_event(struct tern_sim *sim, tern_sim_event_fn fn, void *user);

/* Run every event up to and including t_us; the clock ends at t_us. Returns the number of
 * events processed. */
uint64_t tern_sim_run_until(struct tern_sim *sim, uint64_t t_us);
/* Run until nothing is left to happen (no packet in flight, no timer, no callback) or
 * until limit_us. Returns the time of the last event. */
uint64_t tern_sim_run_idle(struct tern_sim *sim, uint64_t limit_us);
/* Is anything left to happen? */
bool tern_sim_idle(const struct tern_sim *sim);

/* What happened, host by host and on the wire. */
enum tern_sim_ev_kind {
	TERN_SIM_EV_SEND = 1, /* a host sent a TCP segment (tr.u.seg) */
	TERN_SIM_EV_RECV,     /* a host accepted a TCP segment for processing */
	TERN_SIM_EV_DROP,     /* the wire lost it (host: sender, peer: receiver) */
	TERN_SIM_EV_DUP,      /* the wire duplicated it */
	TERN_SIM_EV_CORRUPT,  /* the wire flipped a bit in it */
	TERN_SIM_EV_DELAY,    /* the wire held it back (reordering, or a DELAY rule) */
	TERN_SIM_EV_DISCARD,  /* a host's stack dropped a packet (tr.reason) */
	TERN_SIM_EV_STATE,    /* a connection changed state (tr.u.state) */
	TERN_SIM_EV_ERROR,    /* an error was posted to the application (tr.u.error) */
	TERN_SIM_EV_ICMP,
	TERN_SIM_EV_APP,      /* a note from the application (text) */
	TERN_SIM_EV_INJECT,   /* a packet put on the wire by tern_sim_inject (host: its sender) */
};
struct tern_sim_ev {
	enum tern_sim_ev_kind kind;
	uint64_t t_us;
	int host;
	int peer;                /* wire events: the receiving host, or -1 */
	int seg_valid;           /* tr.u.seg describes a TCP segment */
	struct tern_trace tr;
	const char *text;        /* TERN_SIM_EV_APP; valid during the callback only */
};
typedef void (*tern_sim_trace_fn)(void *user, const struct tern_sim_ev *ev);
void tern_sim_set_trace(struct tern_sim *sim, tern_sim_trace_fn fn, void *user);
/* An application note, stamped with the current time. */
void tern_sim_note(struct tern_sim *sim, int host, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write every packet put on the wire to a pcap file (LINKTYPE_RAW). */
int tern_sim_pcap(struct tern_sim *sim, const char *path);

#ifdef __cplusplus
}
#endif
#endif
