/*
 * Impairments of a link, the same on the simulated wire (tern/sim.h) and on a TUN device
 * (tern/tun.h): random loss, duplication, reordering, delay with jitter and corruption, and
 * exact rules that act on the Nth packet of a class. All randomness comes from a seed.
 */
#ifndef TERN_IMPAIR_H
#define TERN_IMPAIR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Random impairments of one direction of a link. */
struct tern_impair {
	double loss, dup, reorder, corrupt; /* probabilities, 0..1 */
	uint32_t delay_us;                  /* one-way delay */
	uint32_t jitter_us;                 /* plus a uniform random 0..jitter */
};

/* Exact impairments: act on the Nth..(N+count-1)th segment of a class in one direction. The
 * names come from the simulated wire, where they began. */
enum tern_sim_class {
	TERN_SIM_ANY = 0, /* every packet */
	TERN_SIM_SYN,     /* SYN without ACK */
	TERN_SIM_SYNACK,  /* SYN with ACK */
	TERN_SIM_ACK,     /* a pure ACK: ACK only, no data */
	TERN_SIM_DATA,    /* carries payload */
	TERN_SIM_FIN,     /* FIN set */
	TERN_SIM_RST,     /* RST set */
};
enum tern_sim_action {
	TERN_SIM_DROP = 0,
	TERN_SIM_DUP,     /* deliver twice */
	TERN_SIM_DELAY,   /* add delay_us */
	TERN_SIM_CORRUPT, /* flip one bit */
};
struct tern_sim_rule {
	int from, to;               /* host indices (on a TUN link 0: tern, 1: the kernel), -1: any */
	enum tern_sim_class cls;
	uint32_t nth;               /* first match acted on, 1-based; 0: every match */
	uint32_t count;             /* how many consecutive matches from nth (0 counts as 1) */
	enum tern_sim_action action;
	uint32_t delay_us;          /* TERN_SIM_DELAY: added delay; TERN_SIM_DUP: the copy's */
};

/* Parse "loss=0.02,dup=0.01,reorder=0.01,corrupt=0.001,delay=10ms,jitter=2ms" (any subset;
 * probabilities in 0..1 or as percentages "3%", times with a unit us/ms/s) into *imp, which
 * keeps the fields not named. Returns 0, or -EINVAL with *bad (when not NULL) pointing at the
 * item that failed. */
int tern_impair_parse(const char *text, struct tern_impair *imp, const char **bad);

/* Parse "CLASS[#N[-M]]" (CLASS: any|syn|synack|ack|data|fin|rst) into rule->cls, nth and
 * count. Returns 0 or -EINVAL. */
int tern_impair_parse_class(const char *text, struct tern_sim_rule *rule);
const char *tern_sim_class_name(enum tern_sim_class c);

#ifdef __cplusplus
}
#endif
#endif
