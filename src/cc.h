/*
 * Congestion control modules (RFC 5681 and successors). A module decides how cwnd grows
 * and what ssthresh becomes after a loss; detecting losses and recovering from them (fast
 * retransmit, NewReno partial ACKs, RTO) belongs to the core, as in gVisor's split and
 * Linux's tcp_congestion_ops. Modules keep their state in the TCB's cwnd, ssthresh and
 * ca_acked.
 */
#ifndef TERN_CC_H
#define TERN_CC_H

#include "internal.h"

struct tern_cc_ops {
	const char *name;
	/* The connection is established: set the initial window. */
	void (*init)(struct tern_stack *st, struct tern_tcb *tcb);
	/* acked bytes of new data were acknowledged outside loss recovery. */
	void (*on_ack)(struct tern_stack *st, struct tern_tcb *tcb, uint32_t acked);
	/* A loss was detected (third duplicate ACK or RTO): the new ssthresh. */
	uint32_t (*ssthresh)(struct tern_stack *st, struct tern_tcb *tcb);
	/* Loss recovery ended with a full ACK: set cwnd to resume with. */
	void (*on_recovery_end)(struct tern_stack *st, struct tern_tcb *tcb);
	/* The retransmission timer expired (after ssthresh was taken): set cwnd. */
	void (*on_rto)(struct tern_stack *st, struct tern_tcb *tcb);
	/* The connection sat idle longer than an RTO and is about to send again. */
	void (*on_idle_restart)(struct tern_stack *st, struct tern_tcb *tcb);
};

#define TERN_CC_RENO 0
#define TERN_CC_COUNT 1

extern const struct tern_cc_ops tern_cc_reno;

/* The module with this id (TERN_CC_*), or the default one. */
const struct tern_cc_ops *cc_ops(unsigned id);
/* The id of the module named name, or -ENOENT. */
int cc_find(const char *name);

static inline const struct tern_cc_ops *tcb_cc(const struct tern_tcb *tcb)
{
	return cc_ops(tcb->h.flags);
}

#endif
