/*
 * A hierarchical timing wheel (Varghese & Lauck): arming and cancelling a timer cost O(1),
 * and advancing the clock costs O(1) per timer that fires or cascades, not per tick, so a
 * million idle timers cost nothing while time passes and a jump of an hour is cheap.
 *
 * Time is in ticks of 1 ms held in 32 bits; comparisons are modulo 2^32, so a wheel runs for
 * ever as long as no timer is set more than 2^30 ticks (12 days) ahead: longer ones are
 * clamped to that horizon and their owner re-arms them when they fire early.
 */
#ifndef TERN_TIMER_WHEEL_H
#define TERN_TIMER_WHEEL_H

#include <stdint.h>

#define TW_LEVEL_BITS 6
#define TW_LEVEL_SIZE (1u << TW_LEVEL_BITS)  /* 64 slots a level */
#define TW_LEVELS 5                           /* 64^5 ticks = 2^30 ms */
#define TW_MAX_DELTA ((1u << (TW_LEVEL_BITS * TW_LEVELS)) - 1)
#define TW_SLOT_NONE 0xffffu

/* Embedded in whatever owns the timer. The wheel touches only these fields. */
struct tw_node {
	struct tw_node *next, *prev;
	uint32_t expires;   /* tick at which it fires */
	uint16_t slot;      /* level * 64 + index while armed, TW_SLOT_NONE when not */
	uint16_t user;      /* free for the owner */
};

struct tw_wheel {
	uint32_t now;                 /* every timer with expires <= now has fired */
	uint32_t count;               /* armed timers */
	uint64_t occupied[TW_LEVELS]; /* bit i: slot i of that level is non-empty */
	struct tw_node slots[TW_LEVELS][TW_LEVEL_SIZE]; /* sentinels of circular lists */
};

static inline int tw_tick_before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline void tw_node_init(struct tw_node *n) { n->next = n->prev = 0; n->slot = TW_SLOT_NONE; }
static inline int tw_armed(const struct tw_node *n) { return n->slot != TW_SLOT_NONE; }

void tw_init(struct tw_wheel *w, uint32_t now);
/* Arm (or move) n to fire at expires. A time at or before now fires at the next advance.
 * Timers due at the same tick fire in a deterministic order. */
void tw_arm(struct tw_wheel *w, struct tw_node *n, uint32_t expires);
/* Disarm n; harmless if it is not armed. */
void tw_cancel(struct tw_wheel *w, struct tw_node *n);
/*
 * A lower bound on the next tick at which something is due (a timer fires or must move to a
 * finer level), or 0 with *ok = 0 when no timer is armed. Advancing to that tick is always
 * correct; it is exact whenever the earliest timer sits in the finest level.
 */
uint32_t tw_next(const struct tw_wheel *w, int *ok);
/*
 * Move the wheel's clock to now, calling fire(ctx, n) for every timer with expires <= now in
 * order of expiry (ties in a deterministic order). n is disarmed before fire is called, and fire may
 * arm or cancel any timer, n included. Cost: O(timers fired + timers cascaded + levels),
 * independent of how many ticks pass.
 */
void tw_advance(struct tw_wheel *w, uint32_t now, void (*fire)(void *ctx, struct tw_node *n),
		void *ctx);
/* True when tw_advance(w, now, ...) would do nothing: the clock is already at now and no
 * timer is due at it. For callers on the per-packet path. */
static inline int tw_nothing_due(const struct tw_wheel *w, uint32_t now)
{
	return now == w->now && !((w->occupied[0] >> (now & (TW_LEVEL_SIZE - 1))) & 1);
}

#endif
