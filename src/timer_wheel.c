/*
 * Hierarchical timing wheel: scheme 7 of Varghese & Lauck, "Hashed and Hierarchical Timing
 * Wheels" (SOSP 1987), with the cascading layout of the classic BSD/Linux timer code, plus
 * occupancy bitmaps so that time can jump over empty ticks.
 *
 * Placement. Relative to the wheel's clock, a timer with delta = expires - now lies in level L
 * when delta is in [64^L, 64^(L+1)) (level 0: [0, 64)), in slot (expires >> 6L) & 63: the
 * slot is named by the expiry's own digits, so it stays right while the clock moves and only
 * the level becomes stale. A timer in level L >= 1 is moved ("cascaded") at the tick
 * c = expires with its low 6L bits cleared, the one tick whose low 6L bits are zero and
 * whose digit L equals the slot. Because delta >= 64^L, c > now; because the previous tick
 * with that digit is c - 64^(L+1) <= expires - 64^(L+1) < now, no earlier visit of that slot
 * can take the timer too soon. At c the remaining delta, expires - c, is below 64^L, so the
 * timer lands in a finer level and, by the same argument, is moved again exactly in time,
 * reaching level 0 by its expiry. Every timer is therefore touched at most TW_LEVELS times.
 *
 * Level 0 timers thus always expire in (now, now + 63], so their slot names a unique tick.
 * The one level-0 slot that names no future tick, now & 63, is used for timers that are due
 * now: those armed at or before the clock, and those cascaded into the tick being processed.
 */
#include "timer_wheel.h"

#include <stddef.h>

#define LEVEL_MASK (TW_LEVEL_SIZE - 1u)

static inline uint64_t rotr64(uint64_t x, unsigned r)
{
	r &= 63u;
	return r ? (x >> r) | (x << (64u - r)) : x;
}

static inline unsigned level_shift(unsigned level)
{
	return level * TW_LEVEL_BITS;
}

static inline void list_init(struct tw_node *h)
{
	h->next = h->prev = h;
	h->expires = 0;
	h->slot = TW_SLOT_NONE;
	h->user = 0;
}

/* Insert an unlinked node whose expires is already within [now, now + TW_MAX_DELTA]. */
static void insert(struct tw_wheel *w, struct tw_node *n)
{
	uint32_t delta = n->expires - w->now;
	unsigned level = delta < TW_LEVEL_SIZE
				 ? 0
				 : (unsigned)(31 - __builtin_clz(delta)) / TW_LEVEL_BITS;
	unsigned idx = (n->expires >> level_shift(level)) & LEVEL_MASK;
	struct tw_node *h = &w->slots[level][idx];

	/* Appending keeps ties in arrival order, which makes the firing order deterministic. */
	n->next = h;
	n->prev = h->prev;
	h->prev->next = n;
	h->prev = n;
	n->slot = (uint16_t)(level * TW_LEVEL_SIZE + idx);
	w->occupied[level] |= UINT64_C(1) << idx;
}

static void unlink_node(struct tw_wheel *w, struct tw_node *n)
{
	unsigned level = n->slot / TW_LEVEL_SIZE, idx = n->slot % TW_LEVEL_SIZE;
	struct tw_node *h = &w->slots[level][idx];

	n->prev->next = n->next;
	n->next->prev = n->prev;
	if (h->next == h)
		w->occupied[level] &= ~(UINT64_C(1) << idx);
	n->next = n->prev = NULL;
	n->slot = TW_SLOT_NONE;
}

void tw_init(struct tw_wheel *w, uint32_t now)
{
	w->now = now;
	w->count = 0;
	for (unsigned l = 0; l < TW_LEVELS; l++) {
		w->occupied[l] = 0;
		for (unsigned i = 0; i < TW_LEVEL_SIZE; i++)
			list_init(&w->slots[l][i]);
	}
}

void tw_arm(struct tw_wheel *w, struct tw_node *n, uint32_t expires)
{
	uint32_t delta = expires - w->now;

	if (tw_armed(n))
		unlink_node(w, n);
	else
		w->count++;
	/*
	 * A time at or before the clock is pinned to the clock itself: it then sits in the "due
	 * now" slot, fires at the very next advance (not a revolution later), and ties with other
	 * overdue timers resolve in arming order, so firing stays in order of the stored expiry.
	 */
	if (delta == 0 || tw_tick_before(expires, w->now))
		expires = w->now;
	else if (delta > TW_MAX_DELTA)
		expires = w->now + TW_MAX_DELTA;
	n->expires = expires;
	insert(w, n);
}

void tw_cancel(struct tw_wheel *w, struct tw_node *n)
{
	if (!tw_armed(n))
		return;
	unlink_node(w, n);
	w->count--;
}

/*
 * Distance from the clock to the next tick at which some non-empty slot must be processed:
 * a level-0 slot firing, or a level L >= 1 slot cascading. Returns 0 when every slot is empty
 * (a real distance is never 0).
 *
 * Level L visits its slots only at ticks whose low 6L bits are zero, one slot per visit in
 * increasing digit order; the visits after the clock are at ((now >> 6L) + m) << 6L for
 * m = 1..64, and visit m reads slot ((now >> 6L) + m) & 63. Rotating the bitmap right by
 * ((now >> 6L) + 1) puts visit m at bit m - 1, so one count-trailing-zeros finds the first
 * visit that has work. m = 64 is the slot of the clock's own digit, which can legitimately
 * hold a timer for the next revolution of that level (delta close to 64^(L+1)). For level 0
 * that bit is the "due now" slot, which callers drain before asking.
 */
static uint32_t next_event(const struct tw_wheel *w)
{
	uint32_t best = 0;

	for (unsigned l = 0; l < TW_LEVELS; l++) {
		uint64_t occ = w->occupied[l];
		if (!occ)
			continue;
		unsigned sh = level_shift(l);
		uint32_t digit = w->now >> sh;
		unsigned m = (unsigned)__builtin_ctzll(rotr64(occ, (digit + 1u) & LEVEL_MASK)) + 1u;
		/* Unsigned arithmetic wraps modulo 2^32, which is exactly the tick arithmetic. */
		uint32_t dist = ((digit + m) << sh) - w->now;
		if (best == 0 || dist < best)
			best = dist;
	}
	return best;
}

uint32_t tw_next(const struct tw_wheel *w, int *ok)
{
	if (w->count == 0) {
		if (ok)
			*ok = 0;
		return 0;
	}
	if (ok)
		*ok = 1;
	if (w->occupied[0] & (UINT64_C(1) << (w->now & LEVEL_MASK)))
		return w->now;
	/*
	 * A level-0 event is the exact expiry of the timers there; a cascade tick is no later than
	 * the expiry of anything it moves, so the minimum is a lower bound on the next firing.
	 */
	return w->now + next_event(w);
}

/*
 * Re-file the timers of every slot that the clock's tick has just reached, coarsest level
 * first. A timer leaving level L has delta < 64^L and lands in a finer level, never in a slot
 * still to be cascaded at this tick: its digit at the finer level differs from the clock's
 * (which is zero there), except in level 0, where delta 0 means the "due now" slot.
 */
static void cascade(struct tw_wheel *w)
{
	uint32_t t = w->now;

	for (unsigned l = TW_LEVELS - 1; l >= 1; l--) {
		unsigned sh = level_shift(l);
		if (t & ((UINT32_C(1) << sh) - 1u))
			continue;
		unsigned idx = (t >> sh) & LEVEL_MASK;
		if (!(w->occupied[l] & (UINT64_C(1) << idx)))
			continue;
		struct tw_node *h = &w->slots[l][idx];
		/* Detach the whole list first so the walk cannot meet re-filed nodes. */
		struct tw_node tmp;
		tmp.next = h->next;
		tmp.prev = h->prev;
		tmp.next->prev = &tmp;
		tmp.prev->next = &tmp;
		h->next = h->prev = h;
		w->occupied[l] &= ~(UINT64_C(1) << idx);
		while (tmp.next != &tmp) {
			struct tw_node *n = tmp.next;
			tmp.next = n->next;
			n->next->prev = &tmp;
			insert(w, n);
		}
	}
}

/*
 * Fire everything in the "due now" slot. Timers that fire() arms at or before the clock join
 * the tail of this same slot and fire in this loop; a callback that keeps re-arming a timer at
 * the current tick therefore never lets the loop end, which is the caller's bug.
 */
static void run_due(struct tw_wheel *w, void (*fire)(void *ctx, struct tw_node *n), void *ctx)
{
	struct tw_node *h = &w->slots[0][w->now & LEVEL_MASK];

	while (h->next != h) {
		struct tw_node *n = h->next;
		unlink_node(w, n);
		w->count--;
		fire(ctx, n);
	}
}

/*
 * Rather than stepping tick by tick, the clock jumps straight to the next tick that has work
 * (next_event), so the loop runs once per tick at which some timer fires or cascades. Each
 * such tick moves at least one timer and every timer moves at most TW_LEVELS times, which
 * bounds the cost independently of how far the clock travels.
 *
 * Ticks are compared modulo 2^32, so a target that lies behind the clock (or 2^31 or more
 * ahead, which is indistinguishable) does not move it: only overdue timers fire. fire() may
 * arm and cancel timers but must not call tw_advance on the same wheel.
 */
void tw_advance(struct tw_wheel *w, uint32_t now, void (*fire)(void *ctx, struct tw_node *n),
		void *ctx)
{
	run_due(w, fire, ctx);
	if (tw_tick_before(now, w->now))
		return;
	while (w->now != now) {
		uint32_t dist = next_event(w);
		if (dist == 0 || dist > now - w->now) {
			/* Nothing happens in the skipped ticks, so every invariant carries over. */
			w->now = now;
			break;
		}
		w->now += dist;
		cascade(w);
		run_due(w, fire, ctx);
	}
}
