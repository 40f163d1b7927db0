/*
 * Reno congestion control, RFC 5681: slow start and congestion avoidance with appropriate
 * byte counting (RFC 3465), the initial window of RFC 6928, ssthresh halving on loss, and the
 * restart window after idle (§4.1). Combined with the core's NewReno recovery (RFC 6582) this
 * is what Linux calls "reno".
 */
#include <string.h>
#include "cc.h"

static uint32_t initial_window(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return st->set.initial_cwnd * tcb->mss;
}

static void reno_init(struct tern_stack *st, struct tern_tcb *tcb)
{
	tcb->cwnd = initial_window(st, tcb);
	tcb->ssthresh = UINT32_MAX; /* RFC 5681 §3.1: arbitrarily high */
	tcb->ca_acked = 0;
}

static void reno_on_ack(struct tern_stack *st, struct tern_tcb *tcb, uint32_t acked)
{
	(void)st;
	uint32_t mss = tcb->mss;
	if (tcb->cwnd < tcb->ssthresh) {
		/* Slow start, RFC 3465 §2.2 with L = 2*SMSS: an ACK covering two segments (a
		 * delayed ACK) grows cwnd by both, so delayed ACKs do not slow slow start. */
		uint32_t inc = acked < 2 * mss ? acked : 2 * mss;
		tcb->cwnd += inc;
		if (tcb->cwnd > tcb->ssthresh)
			tcb->cwnd = tcb->ssthresh;
		return;
	}
	/* Congestion avoidance, RFC 3465 §2.1: one SMSS per cwnd bytes acknowledged. */
	tcb->ca_acked += acked;
	if (tcb->ca_acked >= tcb->cwnd) {
		tcb->ca_acked -= tcb->cwnd;
		tcb->cwnd += mss;
	}
}

/* RFC 5681 §3.1, equation (4): ssthresh = max(FlightSize / 2, 2*SMSS), where FlightSize
 * must not count segments sent by limited transmit (§3.2 note, RFC 3042). Those are the
 * only way the flight exceeds cwnd, so min(cwnd, flight) is that FlightSize (and cwnd / 2,
 * what Linux's reno uses, whenever the sender was not application-limited). */
static uint32_t reno_ssthresh(struct tern_stack *st, struct tern_tcb *tcb)
{
	(void)st;
	uint32_t flight = tcb->snd_max - tcb->snd_una;
	uint32_t half = (flight < tcb->cwnd ? flight : tcb->cwnd) / 2;
	return half > 2u * tcb->mss ? half : 2u * tcb->mss;
}

/* RFC 6582 §3.2 step 3, option (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS). */
static void reno_on_recovery_end(struct tern_stack *st, struct tern_tcb *tcb)
{
	(void)st;
	uint32_t flight = tcb->snd_max - tcb->snd_una;
	uint32_t alt = (flight > tcb->mss ? flight : tcb->mss) + tcb->mss;
	tcb->cwnd = tcb->ssthresh < alt ? tcb->ssthresh : alt;
	tcb->ca_acked = 0;
}

/* RFC 5681 §3.1: after a timeout cwnd is the loss window, one segment. */
static void reno_on_rto(struct tern_stack *st, struct tern_tcb *tcb)
{
	(void)st;
	tcb->cwnd = tcb->mss;
	tcb->ca_acked = 0;
}

/* RFC 5681 §4.1: cwnd = min(RW, cwnd), RW = the initial window. */
static void reno_on_idle_restart(struct tern_stack *st, struct tern_tcb *tcb)
{
	uint32_t rw = initial_window(st, tcb);
	if (tcb->cwnd > rw)
		tcb->cwnd = rw;
}

const struct tern_cc_ops tern_cc_reno = {
	.name = "reno",
	.init = reno_init,
	.on_ack = reno_on_ack,
	.ssthresh = reno_ssthresh,
	.on_recovery_end = reno_on_recovery_end,
	.on_rto = reno_on_rto,
	.on_idle_restart = reno_on_idle_restart,
};

static const struct tern_cc_ops *const modules[TERN_CC_COUNT] = {&tern_cc_reno};

const struct tern_cc_ops *cc_ops(unsigned id)
{
	return id < TERN_CC_COUNT ? modules[id] : modules[TERN_CC_RENO];
}

int cc_find(const char *name)
{
	for (unsigned i = 0; i < TERN_CC_COUNT; i++)
		if (strcmp(modules[i]->name, name) == 0)
			return (int)i;
	/* Linux's "reno" is NewReno in the core; accept the RFC's name too. */
	if (strcmp(name, "newreno") == 0)
		return TERN_CC_RENO;
	return -ENOENT;
}
