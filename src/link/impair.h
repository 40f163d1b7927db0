/*
 * The impairment engine behind tern/impair.h, shared by the simulated wire and the TUN link:
 * given a packet and the direction it travels, the rules and the random impairments decide
 * whether it is lost, corrupted (in place), duplicated or held back, and for how long.
 */
#ifndef TERN_LINK_IMPAIR_H
#define TERN_LINK_IMPAIR_H

#include <stdbool.h>
#include "tern/impair.h"
#include "../internal.h"

struct impair_rule {
	struct tern_sim_rule r;
	uint32_t seen;          /* packets of its class and direction so far */
};

struct impair_verdict {
	bool drop;
	unsigned corrupted;     /* bits flipped in the packet (by rules, then at random) */
	bool dup;               /* deliver a second copy */
	bool held;              /* delayed beyond the plain delay (reordering or a DELAY rule) */
	uint64_t delay_us;      /* the packet's delay */
	uint64_t dup_delay_us;  /* the copy's */
};

/* Judge a packet going from host `from` to `to`: the rules in order (a DROP rule ends it),
 * then loss, corruption, duplication, delay and reordering at random. Corruption flips bits
 * of pkt in place. Draws from rng only where a probability or jitter is non-zero, so a link
 * without impairments consumes no randomness. */
void impair_judge(struct tern_rng *rng, struct impair_rule *rules, int nrules, int from, int to,
		  const struct tern_impair *imp, uint8_t *pkt, size_t len, struct impair_verdict *v);

#endif
