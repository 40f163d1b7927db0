/*
 * Tests for the hierarchical timing wheel. Besides black-box checks of when timers fire, a
 * structural checker (check_wheel) verifies the invariants the wheel's O(1) claims rest on:
 * exact occupancy bitmaps, consistent links, and every timer filed where it will be cascaded
 * or fired in time. A randomized test compares the wheel with a brute-force model.
 */
#include "test.h"
#include "timer_wheel.h"

#include <stddef.h>
#include <stdlib.h>

static const uint32_t deltas[] = {
	0, 1, 63, 64, 65, 4095, 4096, 262143, 262144, UINT32_C(1) << 24, TW_MAX_DELTA,
};
#define NDELTAS (sizeof(deltas) / sizeof(deltas[0]))

/* Starting clocks: aligned, just before the 2^32 wrap, just before the signed boundary. */
static const uint32_t starts[] = {
	0, 0xFFFFFF00u, 0xFFFFFFFFu, 0x7FFFFFC0u, 0x12345678u,
};
#define NSTARTS (sizeof(starts) / sizeof(starts[0]))

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: good enough and reproducible from a single seed */
	uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static uint32_t rng_range(uint64_t *s, uint32_t n) /* [0, n) ; n > 0 */
{
	return (uint32_t)(rng_next(s) % n);
}

/* ---- a timer owner and a recording fire callback ---- */

struct ctx;
struct tn {
	struct tw_node tw;
	int id;
	int fires;
	uint32_t last_at;
	void (*on_fire)(struct ctx *c, struct tn *t);
};

#define TN(p) ((struct tn *)(void *)((char *)(p) - offsetof(struct tn, tw)))

#define REC_MAX 4096
struct ctx {
	struct tw_wheel *w;
	int n;
	int id[REC_MAX];
	uint32_t at[REC_MAX];
	int bad_armed; /* fire() saw a node still armed */
	/* for callbacks that act on other timers */
	struct tn *others;
	uint32_t period;
	int budget;
};

static void on_fire(void *vctx, struct tw_node *n)
{
	struct ctx *c = vctx;
	struct tn *t = TN(n);
	if (tw_armed(n))
		c->bad_armed++;
	t->fires++;
	t->last_at = c->w->now;
	if (c->n < REC_MAX) {
		c->id[c->n] = t->id;
		c->at[c->n] = c->w->now;
	}
	c->n++;
	if (t->on_fire)
		t->on_fire(c, t);
}

static void ctx_init(struct ctx *c, struct tw_wheel *w)
{
	memset(c, 0, sizeof(*c));
	c->w = w;
}

static void tn_init(struct tn *t, int id)
{
	memset(t, 0, sizeof(*t));
	tw_node_init(&t->tw);
	t->id = id;
}

/*
 * Structural invariants, reported through test_fail. Returns nonzero when all hold.
 * Level 0 nodes expire in [now, now + 63] (now only in the "due now" slot now & 63); a node in
 * level L >= 1 is cascaded at c = expires with its low 6L bits cleared, which must lie in
 * (now, now + 64^(L+1)] so that the slot's next visit is the right one.
 */
static int check_wheel(const struct tw_wheel *w, const char *where)
{
	uint32_t total = 0;
	int ok = 1;
	for (unsigned l = 0; l < TW_LEVELS; l++) {
		for (unsigned i = 0; i < TW_LEVEL_SIZE; i++) {
			const struct tw_node *h = &w->slots[l][i];
			int bit = (int)((w->occupied[l] >> i) & 1u);
			if (bit != (h->next != h)) {
				test_fail(__FILE__, __LINE__, "%s: occupied[%u] bit %u = %d, list %s",
					  where, l, i, bit, h->next != h ? "non-empty" : "empty");
				ok = 0;
			}
			const struct tw_node *p = h;
			for (const struct tw_node *n = h->next; n != h; p = n, n = n->next) {
				total++;
				if (n->prev != p || n->slot != l * TW_LEVEL_SIZE + i) {
					test_fail(__FILE__, __LINE__, "%s: bad links/slot in %u/%u",
						  where, l, i);
					return 0;
				}
				uint32_t d = n->expires - w->now;
				if (d > TW_MAX_DELTA) {
					test_fail(__FILE__, __LINE__,
						  "%s: expires %#x beyond horizon (now %#x)", where,
						  n->expires, w->now);
					ok = 0;
				}
				unsigned sh = 6 * l;
				if (((n->expires >> sh) & 63u) != i) {
					test_fail(__FILE__, __LINE__, "%s: expires %#x in wrong slot %u/%u",
						  where, n->expires, l, i);
					ok = 0;
				}
				if (l == 0) {
					if (d >= 64 || (d == 0) != (i == (w->now & 63u))) {
						test_fail(__FILE__, __LINE__,
							  "%s: level-0 expires %#x stale (now %#x)", where,
							  n->expires, w->now);
						ok = 0;
					}
				} else {
					uint32_t c = n->expires & ~((UINT32_C(1) << sh) - 1u);
					uint32_t dc = c - w->now;
					uint64_t span = UINT64_C(1) << (sh + 6);
					if (dc == 0 || dc > span) {
						test_fail(__FILE__, __LINE__,
							  "%s: level-%u expires %#x cascades late/early "
							  "(now %#x)",
							  where, l, n->expires, w->now);
						ok = 0;
					}
				}
				if (total > 4000000u) {
					test_fail(__FILE__, __LINE__, "%s: list cycle", where);
					return 0;
				}
			}
		}
	}
	if (total != w->count) {
		test_fail(__FILE__, __LINE__, "%s: count %u but %u nodes linked", where, w->count,
			  total);
		ok = 0;
	}
	return ok;
}

static int wheel_empty_bits(const struct tw_wheel *w)
{
	for (unsigned l = 0; l < TW_LEVELS; l++)
		if (w->occupied[l])
			return 0;
	return 1;
}

/* ---- basics ---- */

TEST(tw_init_empty)
{
	struct tw_wheel w;
	int ok = 7;
	tw_init(&w, 0xDEADBEEFu);
	CHECK_EQ(w.now, 0xDEADBEEFu);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
	CHECK_EQ(tw_next(&w, &ok), 0);
	CHECK_EQ(ok, 0);
	struct ctx c;
	ctx_init(&c, &w);
	tw_advance(&w, 0xDEADBEEFu + 1000000u, on_fire, &c);
	CHECK_EQ(w.now, 0xDEADBEEFu + 1000000u);
	CHECK_EQ(c.n, 0);
	CHECK(check_wheel(&w, "empty"));
}

/* Arm one timer at start + d; advance to just before, then to the tick itself. */
static void single_jump(uint32_t start, uint32_t d)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t;
	tw_init(&w, start);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	uint32_t e = start + d;
	tw_arm(&w, &t.tw, e);
	CHECK(tw_armed(&t.tw));
	CHECK(check_wheel(&w, "armed"));
	if (d > 0) {
		tw_advance(&w, e - 1, on_fire, &c);
		if (t.fires != 0)
			test_fail(__FILE__, __LINE__, "start %#x delta %u: fired early at %#x", start,
				  d, t.last_at);
		CHECK(check_wheel(&w, "before"));
	}
	tw_advance(&w, e, on_fire, &c);
	if (t.fires != 1 || t.last_at != e)
		test_fail(__FILE__, __LINE__, "start %#x delta %u: fires %d at %#x, want 1 at %#x",
			  start, d, t.fires, t.last_at, e);
	CHECK(!tw_armed(&t.tw));
	CHECK_EQ(w.now, e);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
	CHECK_EQ(c.bad_armed, 0);
}

/* The same in one single advance call from the start, landing on or past the tick. */
static void single_one_call(uint32_t start, uint32_t d, uint32_t overshoot)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t;
	tw_init(&w, start);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	uint32_t e = start + d;
	tw_arm(&w, &t.tw, e);
	tw_advance(&w, e + overshoot, on_fire, &c);
	if (t.fires != 1 || t.last_at != e)
		test_fail(__FILE__, __LINE__,
			  "start %#x delta %u overshoot %u: fires %d at %#x, want 1 at %#x", start, d,
			  overshoot, t.fires, t.last_at, e);
	CHECK_EQ(w.now, e + overshoot);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
}

TEST(tw_single_deltas_jump)
{
	for (size_t s = 0; s < NSTARTS; s++)
		for (size_t i = 0; i < NDELTAS; i++) {
			single_jump(starts[s], deltas[i]);
			single_one_call(starts[s], deltas[i], 0);
			single_one_call(starts[s], deltas[i], 1);
			single_one_call(starts[s], deltas[i], 777777);
		}
}

/* Every level boundary, from clocks at every alignment of the low digits. */
TEST(tw_single_boundaries_all_alignments)
{
	static const uint32_t offs[] = {0, 1, 31, 62, 63, 64, 4095, 4096, 262143, 16777215};
	for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++) {
		uint32_t start = 0xFF000000u + offs[o];
		for (unsigned l = 1; l < TW_LEVELS; l++) {
			uint32_t b = UINT32_C(1) << (6 * l);
			uint32_t ds[] = {b - 2, b - 1, b, b + 1, 2 * b - 1, 63 * b, 64 * b - 1};
			for (size_t k = 0; k < sizeof(ds) / sizeof(ds[0]); k++) {
				if (ds[k] > TW_MAX_DELTA)
					continue;
				single_jump(start, ds[k]);
				single_one_call(start, ds[k], 0);
			}
		}
	}
}

TEST(tw_single_deltas_small_random_steps)
{
	uint64_t seed = test_seed(0x5eed0001u);
	uint64_t rng = seed;
	for (size_t s = 0; s < NSTARTS; s++) {
		for (size_t i = 0; i < NDELTAS; i++) {
			struct tw_wheel w;
			struct ctx c;
			struct tn t;
			uint32_t start = starts[s], d = deltas[i], e = start + d;
			tw_init(&w, start);
			ctx_init(&c, &w);
			tn_init(&t, 1);
			tw_arm(&w, &t.tw, e);
			uint32_t maxstep = d / 1500 + 2;
			int guard = 0;
			while (t.fires == 0 && guard++ < 100000) {
				uint32_t left = e - w.now;
				uint32_t step = left < 200 ? rng_range(&rng, 4)
							   : 1 + rng_range(&rng, maxstep);
				uint32_t before = w.now;
				tw_advance(&w, w.now + step, on_fire, &c);
				if (t.fires && (tw_tick_before(e, before) ||
						tw_tick_before(w.now, e) || t.last_at != e)) {
					test_fail(__FILE__, __LINE__,
						  "seed %#llx start %#x delta %u: fired at %#x in "
						  "(%#x, %#x], want %#x",
						  (unsigned long long)seed, start, d, t.last_at, before,
						  w.now, e);
				}
			}
			if (t.fires != 1)
				test_fail(__FILE__, __LINE__, "seed %#llx start %#x delta %u: fires %d",
					  (unsigned long long)seed, start, d, t.fires);
			CHECK(check_wheel(&w, "steps"));
		}
	}
}

/* ---- past and present ---- */

TEST(tw_past_fires_at_next_advance)
{
	static const uint32_t backs[] = {1, 5, 63, 64, 100000, 0x7FFFFFFFu, 0x80000000u};
	for (size_t s = 0; s < NSTARTS; s++) {
		for (size_t b = 0; b < sizeof(backs) / sizeof(backs[0]); b++) {
			struct tw_wheel w;
			struct ctx c;
			struct tn t;
			uint32_t start = starts[s];
			tw_init(&w, start);
			ctx_init(&c, &w);
			tn_init(&t, 1);
			tw_arm(&w, &t.tw, start - backs[b]);
			CHECK_EQ(w.count, 1);
			int ok = 0;
			CHECK_EQ(tw_next(&w, &ok), start);
			CHECK_EQ(ok, 1);
			CHECK(check_wheel(&w, "past"));
			/* even an advance that does not move the clock fires it */
			tw_advance(&w, start, on_fire, &c);
			CHECK_EQ(t.fires, 1);
			CHECK_EQ(t.last_at, start);
			CHECK_EQ(w.now, start);
			CHECK_EQ(w.count, 0);
			CHECK(wheel_empty_bits(&w));
		}
	}
}

TEST(tw_past_never_waits_a_revolution)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t, u;
	tw_init(&w, 1000);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	tn_init(&u, 2);
	tw_arm(&w, &t.tw, 999);
	tw_arm(&w, &u.tw, 1001);
	tw_advance(&w, 1000 + 5000, on_fire, &c);
	REQUIRE_EQ(c.n, 2);
	CHECK_EQ(c.id[0], 1);
	CHECK_EQ(c.at[0], 1000);
	CHECK_EQ(c.id[1], 2);
	CHECK_EQ(c.at[1], 1001);
	/* and at the current tick after the clock moved */
	tw_arm(&w, &t.tw, w.now);
	tw_advance(&w, w.now + 64, on_fire, &c);
	CHECK_EQ(t.fires, 2);
	CHECK_EQ(t.last_at, 6000);
}

TEST(tw_overdue_fire_in_expiry_order)
{
	/* Overdue timers all count as due at the clock, so they fire in arming order and before
	 * anything later; none is lost even when the clock does not move. */
	struct tw_wheel w;
	struct ctx c;
	struct tn t[4];
	tw_init(&w, 500);
	ctx_init(&c, &w);
	for (int i = 0; i < 4; i++)
		tn_init(&t[i], i);
	tw_arm(&w, &t[0].tw, 501);
	tw_arm(&w, &t[1].tw, 100);
	tw_arm(&w, &t[2].tw, 500);
	tw_arm(&w, &t[3].tw, 499);
	tw_advance(&w, 500, on_fire, &c);
	REQUIRE_EQ(c.n, 3);
	CHECK_EQ(c.id[0], 1);
	CHECK_EQ(c.id[1], 2);
	CHECK_EQ(c.id[2], 3);
	CHECK_EQ(t[0].fires, 0);
	tw_advance(&w, 501, on_fire, &c);
	CHECK_EQ(t[0].fires, 1);
}

/* ---- cancel, re-arm, count ---- */

TEST(tw_cancel_never_fires)
{
	enum { N = 200 };
	static struct tn t[N];
	struct tw_wheel w;
	struct ctx c;
	uint64_t rng = test_seed(0xCA11CE1u);
	tw_init(&w, 0xFFFFF000u);
	ctx_init(&c, &w);
	uint32_t maxe = 0;
	for (int i = 0; i < N; i++) {
		tn_init(&t[i], i);
		uint32_t d = deltas[i % NDELTAS] + (uint32_t)(i / NDELTAS);
		if (d > TW_MAX_DELTA)
			d = TW_MAX_DELTA;
		tw_arm(&w, &t[i].tw, w.now + d);
		if (d > maxe)
			maxe = d;
	}
	for (int i = 0; i < N; i += 2)
		tw_cancel(&w, &t[i].tw);
	CHECK_EQ(w.count, N / 2);
	CHECK(check_wheel(&w, "after cancel"));
	uint32_t end = 0xFFFFF000u + maxe;
	while (w.now != end) {
		uint32_t step = 1 + rng_range(&rng, 1u << 24);
		if (end - w.now < step)
			step = end - w.now;
		tw_advance(&w, w.now + step, on_fire, &c);
	}
	for (int i = 0; i < N; i++) {
		if (i % 2 == 0)
			CHECK_EQ(t[i].fires, 0);
		else
			CHECK_EQ(t[i].fires, 1);
	}
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
}

TEST(tw_cancel_unarmed_harmless)
{
	struct tw_wheel w;
	struct tn t, u;
	tw_init(&w, 0);
	tn_init(&t, 1);
	tn_init(&u, 2);
	tw_cancel(&w, &t.tw);
	CHECK_EQ(w.count, 0);
	tw_arm(&w, &u.tw, 70);
	tw_arm(&w, &t.tw, 70);
	tw_cancel(&w, &t.tw);
	tw_cancel(&w, &t.tw);
	CHECK_EQ(w.count, 1);
	CHECK(!tw_armed(&t.tw));
	CHECK(tw_armed(&u.tw));
	CHECK(check_wheel(&w, "double cancel"));
	tw_cancel(&w, &u.tw);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
}

TEST(tw_occupied_exact)
{
	/* Two timers share a slot: the bit stays until the last one leaves it. */
	struct tw_wheel w;
	struct tn a, b, x;
	tw_init(&w, 0);
	tn_init(&a, 1);
	tn_init(&b, 2);
	tn_init(&x, 3);
	tw_arm(&w, &a.tw, 3000);
	tw_arm(&w, &b.tw, 3001); /* same level-1 slot: 3000 >> 6 == 3001 >> 6 */
	tw_arm(&w, &x.tw, 10);
	CHECK_EQ(a.tw.slot, b.tw.slot);
	CHECK(check_wheel(&w, "shared"));
	tw_cancel(&w, &a.tw);
	CHECK(check_wheel(&w, "one left"));
	CHECK(w.occupied[1] != 0);
	tw_cancel(&w, &b.tw);
	CHECK_EQ(w.occupied[1], 0);
	CHECK(w.occupied[0] != 0);
	tw_arm(&w, &x.tw, 20000000u); /* moving to level 4 clears level 0 */
	CHECK_EQ(w.occupied[0], 0);
	CHECK(w.occupied[4] != 0);
	CHECK(check_wheel(&w, "moved"));
	tw_cancel(&w, &x.tw);
	CHECK(wheel_empty_bits(&w));
}

TEST(tw_rearm_moves)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t;
	tw_init(&w, 0);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	tw_arm(&w, &t.tw, 100);
	tw_arm(&w, &t.tw, 5000); /* later, other level */
	CHECK_EQ(w.count, 1);
	CHECK(check_wheel(&w, "rearm later"));
	tw_advance(&w, 4999, on_fire, &c);
	CHECK_EQ(t.fires, 0);
	tw_arm(&w, &t.tw, 6000000); /* from level 0 (now) to level 3 */
	tw_advance(&w, 5000, on_fire, &c);
	CHECK_EQ(t.fires, 0);
	tw_arm(&w, &t.tw, 5010); /* earlier again */
	CHECK_EQ(w.count, 1);
	CHECK(check_wheel(&w, "rearm earlier"));
	tw_advance(&w, 7000000, on_fire, &c);
	CHECK_EQ(t.fires, 1);
	CHECK_EQ(t.last_at, 5010);
	CHECK_EQ(w.count, 0);
	/* re-arm the same expiry: still exactly one fire */
	tw_arm(&w, &t.tw, w.now + 300);
	tw_arm(&w, &t.tw, w.now + 300);
	CHECK_EQ(w.count, 1);
	tw_advance(&w, w.now + 1000, on_fire, &c);
	CHECK_EQ(t.fires, 2);
}

TEST(tw_count_tracks_arm_cancel_fire)
{
	enum { N = 64 };
	struct tw_wheel w;
	struct ctx c;
	struct tn t[N];
	tw_init(&w, 77);
	ctx_init(&c, &w);
	for (int i = 0; i < N; i++) {
		tn_init(&t[i], i);
		tw_arm(&w, &t[i].tw, 77 + 1 + (uint32_t)i * 1000u);
		CHECK_EQ(w.count, i + 1);
	}
	for (int i = 0; i < N; i += 4)
		tw_arm(&w, &t[i].tw, 77 + 50000); /* re-arm: no change */
	CHECK_EQ(w.count, N);
	for (int i = 1; i < N; i += 4)
		tw_cancel(&w, &t[i].tw);
	CHECK_EQ(w.count, N - N / 4);
	tw_advance(&w, 77 + 10000, on_fire, &c); /* fires i = 2,3,6,7,10 at 1001..10001 etc. */
	CHECK_EQ(w.count, N - N / 4 - c.n);
	CHECK(check_wheel(&w, "count"));
	tw_advance(&w, 77 + 100000, on_fire, &c);
	CHECK_EQ(w.count, 0);
	CHECK_EQ(c.n, N - N / 4);
}

/* ---- ordering ---- */

TEST(tw_fire_order_across_levels)
{
	enum { N = 3000 };
	static struct tn t[N];
	static uint32_t exp[N];
	struct tw_wheel w;
	static struct ctx c;
	uint64_t seed = test_seed(0x0dde7u), rng = seed;
	uint32_t start = 0xFFFFFF00u;
	tw_init(&w, start);
	ctx_init(&c, &w);
	uint32_t maxd = 0;
	for (int i = 0; i < N; i++) {
		tn_init(&t[i], i);
		unsigned l = rng_range(&rng, TW_LEVELS);
		uint32_t d = 1 + rng_range(&rng, (uint32_t)((UINT64_C(1) << (6 * l + 6)) - 1));
		if (i % 10 == 0 && i > 0)
			d = exp[i - 1] - start; /* duplicates */
		exp[i] = start + d;
		if (d > maxd)
			maxd = d;
		tw_arm(&w, &t[i].tw, exp[i]);
	}
	tw_advance(&w, start + maxd, on_fire, &c);
	REQUIRE_EQ(c.n, N);
	for (int k = 0; k < N; k++) {
		int id = c.id[k];
		if (c.at[k] != exp[id])
			test_fail(__FILE__, __LINE__, "seed %#llx: timer %d fired at %#x, due %#x",
				  (unsigned long long)seed, id, c.at[k], exp[id]);
		if (k > 0 && tw_tick_before(c.at[k], c.at[k - 1]))
			test_fail(__FILE__, __LINE__, "seed %#llx: out of order at %d",
				  (unsigned long long)seed, k);
		if (t[id].fires != 1)
			test_fail(__FILE__, __LINE__, "timer %d fired %d times", id, t[id].fires);
	}
	CHECK_EQ(c.bad_armed, 0);
}

/* Ties fire in the same order every time; timers filed into one slot fire first-in first-out. */
static void tie_run(int *order, int *n)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t[12];
	tw_init(&w, 0);
	ctx_init(&c, &w);
	for (int i = 0; i < 12; i++)
		tn_init(&t[i], i);
	/* same expiry 300000, reached via level 3, level 2, level 1, level 0 */
	tw_arm(&w, &t[0].tw, 300000);
	tw_arm(&w, &t[1].tw, 300000);
	tw_advance(&w, 300000 - 10000, on_fire, &c);
	tw_arm(&w, &t[2].tw, 300000);
	tw_advance(&w, 300000 - 1000, on_fire, &c);
	tw_arm(&w, &t[3].tw, 300000);
	tw_arm(&w, &t[4].tw, 300000);
	tw_advance(&w, 300000 - 10, on_fire, &c);
	tw_arm(&w, &t[5].tw, 300000);
	tw_arm(&w, &t[6].tw, 300000);
	tw_advance(&w, 400000, on_fire, &c);
	*n = c.n;
	for (int i = 0; i < c.n && i < 12; i++) {
		order[i] = c.id[i];
		if (c.at[i] != 300000)
			test_fail(__FILE__, __LINE__, "tie fired at %u", c.at[i]);
	}
}

TEST(tw_ties_deterministic)
{
	int a[12], b[12], na = 0, nb = 0;
	tie_run(a, &na);
	tie_run(b, &nb);
	REQUIRE_EQ(na, 7);
	REQUIRE_EQ(nb, 7);
	for (int i = 0; i < 7; i++)
		CHECK_EQ(a[i], b[i]);
	/* directly armed into one level-0 slot: arming order */
	struct tw_wheel w;
	struct ctx c;
	struct tn t[5];
	tw_init(&w, 0);
	ctx_init(&c, &w);
	for (int i = 0; i < 5; i++) {
		tn_init(&t[i], 4 - i);
		tw_arm(&w, &t[i].tw, 40);
	}
	tw_advance(&w, 40, on_fire, &c);
	REQUIRE_EQ(c.n, 5);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(c.id[i], 4 - i);
}

/* ---- callbacks that arm and cancel ---- */

static void periodic(struct ctx *c, struct tn *t)
{
	tw_arm(c->w, &t->tw, c->w->now + c->period);
}

static void periodic_run(uint32_t start, uint32_t period, int stepped, uint64_t seed)
{
	struct tw_wheel w;
	static struct ctx c;
	struct tn t;
	uint64_t rng = seed;
	tw_init(&w, start);
	ctx_init(&c, &w);
	c.period = period;
	tn_init(&t, 1);
	t.on_fire = periodic;
	tw_arm(&w, &t.tw, start + period);
	uint32_t end = start + 50 * period;
	if (!stepped) {
		tw_advance(&w, end, on_fire, &c);
	} else {
		while (w.now != end) {
			uint32_t step = 1 + rng_range(&rng, period < 10 ? 3 : period / 3);
			if (end - w.now < step)
				step = end - w.now;
			tw_advance(&w, w.now + step, on_fire, &c);
		}
	}
	if (c.n != 50)
		test_fail(__FILE__, __LINE__, "start %#x period %u stepped %d: %d fires", start,
			  period, stepped, c.n);
	for (int k = 0; k < c.n && k < 50; k++)
		if (c.at[k] != start + (uint32_t)(k + 1) * period)
			test_fail(__FILE__, __LINE__, "start %#x period %u: fire %d at %#x", start,
				  period, k, c.at[k]);
	CHECK(tw_armed(&t.tw));
	CHECK_EQ(t.tw.expires, end + period);
	CHECK_EQ(w.count, 1);
	CHECK(check_wheel(&w, "periodic"));
}

TEST(tw_periodic_rearm_from_callback)
{
	uint64_t seed = test_seed(0x9e71);
	static const uint32_t periods[] = {200, 1, 63, 64, 65, 4096, 262144, 3000017};
	for (size_t s = 0; s < NSTARTS; s++)
		for (size_t p = 0; p < sizeof(periods) / sizeof(periods[0]); p++) {
			periodic_run(starts[s], periods[p], 0, seed);
			periodic_run(starts[s], periods[p], 1, seed + p);
		}
}

TEST(tw_periodic_200_for_10000)
{
	struct tw_wheel w;
	static struct ctx c;
	struct tn t;
	tw_init(&w, 0);
	ctx_init(&c, &w);
	c.period = 200;
	tn_init(&t, 1);
	t.on_fire = periodic;
	tw_arm(&w, &t.tw, 200);
	tw_advance(&w, 10000, on_fire, &c);
	REQUIRE_EQ(c.n, 50);
	for (int k = 0; k < 50; k++)
		CHECK_EQ(c.at[k], 200 * (k + 1));
	CHECK_EQ(w.now, 10000);
}

/* A periodic timer carried right round the 32-bit clock, past the wrap. */
TEST(tw_full_clock_revolution)
{
	struct tw_wheel w;
	struct tn t;
	static struct ctx c;
	uint32_t period = 1u << 20;
	tw_init(&w, 0x80000123u);
	ctx_init(&c, &w);
	c.period = period;
	tn_init(&t, 1);
	t.on_fire = periodic;
	tw_arm(&w, &t.tw, w.now + period);
	/* 2^33 ticks in steps of 2^30 - 7: each step well under the 2^31 limit */
	uint64_t total = 0, want = UINT64_C(1) << 33;
	uint32_t expect_next = 0x80000123u + period;
	int bad = 0, fires_before = 0;
	while (total < want) {
		uint32_t step = (1u << 30) - 7;
		if (want - total < step)
			step = (uint32_t)(want - total);
		c.n = 0;
		tw_advance(&w, w.now + step, on_fire, &c);
		total += step;
		for (int k = 0; k < c.n && k < REC_MAX; k++) {
			if (c.at[k] != expect_next)
				bad++;
			expect_next += period;
		}
		fires_before += c.n;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(fires_before, 8192);
	CHECK_EQ(w.now, 0x80000123u);
}

static void act_a(struct ctx *c, struct tn *t)
{
	struct tw_wheel *w = c->w;
	struct tn *o = c->others;
	(void)t;
	tw_cancel(w, &o[1].tw);             /* B at 60: never fires */
	tw_cancel(w, &o[6].tw);             /* X at 50, behind A in the same slot */
	tw_arm(w, &o[7].tw, 70);            /* Y at 50, behind A: moved later */
	tw_arm(w, &o[2].tw, 55);            /* C */
	tw_arm(w, &o[3].tw, w->now);        /* D: due now, fires in this call */
	tw_arm(w, &o[4].tw, w->now - 10);   /* E: overdue, fires in this call */
	tw_arm(w, &o[5].tw, w->now + 2950); /* F: level 1 from here */
	tw_arm(w, &o[8].tw, 100);           /* G: exactly the advance target */
	tw_arm(w, &o[9].tw, 101);           /* H: just past it */
}

TEST(tw_callback_cancels_and_arms_others)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t[10];
	tw_init(&w, 0);
	ctx_init(&c, &w);
	c.others = t;
	for (int i = 0; i < 10; i++)
		tn_init(&t[i], i);
	t[0].on_fire = act_a;
	tw_arm(&w, &t[0].tw, 50); /* A */
	tw_arm(&w, &t[6].tw, 50); /* X */
	tw_arm(&w, &t[7].tw, 50); /* Y */
	tw_arm(&w, &t[1].tw, 60); /* B */
	tw_advance(&w, 100, on_fire, &c);
	static const int want_id[] = {0, 3, 4, 2, 7, 8};
	static const uint32_t want_at[] = {50, 50, 50, 55, 70, 100};
	REQUIRE_EQ(c.n, 6);
	for (int k = 0; k < 6; k++) {
		CHECK_EQ(c.id[k], want_id[k]);
		CHECK_EQ(c.at[k], want_at[k]);
	}
	CHECK_EQ(w.count, 2); /* F and H */
	CHECK(check_wheel(&w, "after callbacks"));
	tw_advance(&w, 5000, on_fire, &c);
	REQUIRE_EQ(c.n, 8);
	CHECK_EQ(c.id[6], 9);
	CHECK_EQ(c.at[6], 101);
	CHECK_EQ(c.id[7], 5);
	CHECK_EQ(c.at[7], 3000);
	CHECK_EQ(t[1].fires, 0);
	CHECK_EQ(t[6].fires, 0);
	CHECK_EQ(c.bad_armed, 0);
}

/* A callback re-arming its own timer in the past a bounded number of times. */
static void rearm_past(struct ctx *c, struct tn *t)
{
	if (c->budget-- > 0)
		tw_arm(c->w, &t->tw, c->w->now - 1);
}

TEST(tw_callback_rearm_past_fires_same_call)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t, u;
	tw_init(&w, 0xFFFFFFF0u);
	ctx_init(&c, &w);
	c.budget = 3;
	tn_init(&t, 1);
	tn_init(&u, 2);
	t.on_fire = rearm_past;
	tw_arm(&w, &t.tw, 0xFFFFFFF8u);
	tw_arm(&w, &u.tw, 0xFFFFFFF9u);
	tw_advance(&w, 0x10, on_fire, &c);
	REQUIRE_EQ(c.n, 5);
	for (int k = 0; k < 4; k++) {
		CHECK_EQ(c.id[k], 1);
		CHECK_EQ(c.at[k], 0xFFFFFFF8u);
	}
	CHECK_EQ(c.id[4], 2);
	CHECK_EQ(c.at[4], 0xFFFFFFF9u);
	CHECK_EQ(w.count, 0);
}

/* A timer cancelling itself or disarming others from inside fire() is fine. */
static void cancel_self(struct ctx *c, struct tn *t)
{
	tw_cancel(c->w, &t->tw); /* already disarmed: harmless */
	tw_cancel(c->w, &c->others[1].tw);
}

TEST(tw_node_disarmed_in_callback)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t[2];
	tw_init(&w, 0);
	ctx_init(&c, &w);
	c.others = t;
	tn_init(&t[0], 0);
	tn_init(&t[1], 1);
	t[0].on_fire = cancel_self;
	tw_arm(&w, &t[0].tw, 262144 + 5);
	tw_arm(&w, &t[1].tw, 262144 + 5 + 4096);
	tw_advance(&w, 1u << 20, on_fire, &c);
	CHECK_EQ(c.n, 1);
	CHECK_EQ(c.bad_armed, 0);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
}

/* ---- wrap-around and horizon ---- */

TEST(tw_wraparound)
{
	struct tw_wheel w;
	static struct ctx c;
	static struct tn t[NDELTAS * 3];
	uint32_t start = 0xFFFFFF00u;
	uint32_t exp[NDELTAS * 3];
	tw_init(&w, start);
	ctx_init(&c, &w);
	int n = 0;
	for (size_t i = 0; i < NDELTAS; i++)
		for (uint32_t j = 0; j < 3; j++) {
			uint32_t d = deltas[i] + j * 0x100u; /* j = 1 and 2 cross the wrap */
			if (d > TW_MAX_DELTA)
				d = TW_MAX_DELTA - j;
			tn_init(&t[n], n);
			exp[n] = start + d;
			tw_arm(&w, &t[n].tw, exp[n]);
			n++;
		}
	/* before the wrap: 0xFFFFFFF0 is earlier than 0x10 */
	struct tn a, b;
	tn_init(&a, 100);
	tn_init(&b, 101);
	tw_arm(&w, &b.tw, 0x10);
	tw_arm(&w, &a.tw, 0xFFFFFFF0u);
	tw_advance(&w, 0x20, on_fire, &c);
	CHECK_EQ(a.fires, 1);
	CHECK_EQ(b.fires, 1);
	CHECK_EQ(a.last_at, 0xFFFFFFF0u);
	CHECK_EQ(b.last_at, 0x10);
	int ia = -1, ib = -1;
	for (int k = 0; k < c.n; k++) {
		if (c.id[k] == 100)
			ia = k;
		if (c.id[k] == 101)
			ib = k;
	}
	CHECK(ia >= 0 && ib > ia);
	CHECK(check_wheel(&w, "after wrap"));
	tw_advance(&w, start + TW_MAX_DELTA, on_fire, &c);
	for (int k = 0; k < n; k++) {
		if (t[k].fires != 1 || t[k].last_at != exp[k])
			test_fail(__FILE__, __LINE__, "timer %d due %#x: fires %d at %#x", k, exp[k],
				  t[k].fires, t[k].last_at);
	}
	CHECK_EQ(w.count, 0);
}

TEST(tw_clamp_beyond_horizon)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t, u, v;
	uint32_t start = 0xFFFFFF00u;
	tw_init(&w, start);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	tn_init(&u, 2);
	tn_init(&v, 3);
	tw_arm(&w, &t.tw, start + TW_MAX_DELTA + 1);
	tw_arm(&w, &u.tw, start + 0x7FFFFFFFu); /* furthest "future" tick: clamped too */
	tw_arm(&w, &v.tw, start + 0x80000000u); /* half a revolution: counts as past */
	CHECK_EQ(t.tw.expires, start + TW_MAX_DELTA);
	CHECK_EQ(u.tw.expires, start + TW_MAX_DELTA);
	CHECK(check_wheel(&w, "clamped"));
	tw_advance(&w, start, on_fire, &c);
	CHECK_EQ(v.fires, 1);
	CHECK_EQ(t.fires + u.fires, 0);
	tw_advance(&w, start + TW_MAX_DELTA - 1, on_fire, &c);
	CHECK_EQ(t.fires + u.fires, 0);
	tw_advance(&w, start + 0x7FFFFFFFu, on_fire, &c); /* one call far beyond */
	CHECK_EQ(t.fires, 1);
	CHECK_EQ(u.fires, 1);
	CHECK_EQ(t.last_at, start + TW_MAX_DELTA);
	CHECK_EQ(u.last_at, start + TW_MAX_DELTA);
	CHECK_EQ(w.now, start + 0x7FFFFFFFu);
}

TEST(tw_backwards_advance_keeps_clock)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t, u;
	tw_init(&w, 1000);
	ctx_init(&c, &w);
	tn_init(&t, 1);
	tn_init(&u, 2);
	tw_arm(&w, &t.tw, 1001);
	tw_arm(&w, &u.tw, 3);
	tw_advance(&w, 900, on_fire, &c); /* behind the clock: only the overdue one */
	CHECK_EQ(w.now, 1000);
	CHECK_EQ(u.fires, 1);
	CHECK_EQ(t.fires, 0);
	CHECK(check_wheel(&w, "backwards"));
	tw_advance(&w, 1001, on_fire, &c);
	CHECK_EQ(t.fires, 1);
}

/* ---- tw_next ---- */

TEST(tw_next_exact_in_level0)
{
	struct tw_wheel w;
	struct ctx c;
	struct tn t[4];
	int ok = 0;
	for (size_t s = 0; s < NSTARTS; s++) {
		uint32_t st = starts[s];
		tw_init(&w, st);
		ctx_init(&c, &w);
		for (int i = 0; i < 4; i++)
			tn_init(&t[i], i);
		tw_arm(&w, &t[0].tw, st + 17);
		tw_arm(&w, &t[1].tw, st + 5);
		tw_arm(&w, &t[2].tw, st + 63);
		CHECK_EQ(tw_next(&w, &ok), st + 5);
		CHECK_EQ(ok, 1);
		tw_advance(&w, st + 5, on_fire, &c);
		CHECK_EQ(tw_next(&w, &ok), st + 17);
		tw_advance(&w, st + 40, on_fire, &c);
		CHECK_EQ(tw_next(&w, &ok), st + 63);
		/* a later timer elsewhere whose cascade comes later does not disturb it */
		tw_arm(&w, &t[3].tw, st + 40 + 1000000);
		CHECK_EQ(tw_next(&w, &ok), st + 63);
		tw_advance(&w, st + 63, on_fire, &c);
		CHECK_EQ(c.n, 3);
		uint32_t nx = tw_next(&w, &ok);
		CHECK_EQ(ok, 1);
		CHECK(tw_tick_before(w.now, nx));
		CHECK(!tw_tick_before(st + 40 + 1000000, nx));
		tw_cancel(&w, &t[3].tw);
		tw_next(&w, &ok);
		CHECK_EQ(ok, 0);
	}
}

/* Following tw_next from any delta reaches the expiry in at most one step per level. */
TEST(tw_next_lower_bound_walk)
{
	uint64_t seed = test_seed(0x4e7u), rng = seed;
	for (int iter = 0; iter < 2000; iter++) {
		struct tw_wheel w;
		struct ctx c;
		struct tn t;
		uint32_t start = (uint32_t)rng_next(&rng);
		uint32_t d = iter < (int)NDELTAS ? deltas[iter]
						 : 1 + rng_range(&rng, TW_MAX_DELTA);
		uint32_t e = start + d;
		tw_init(&w, start);
		ctx_init(&c, &w);
		tn_init(&t, 1);
		tw_arm(&w, &t.tw, e);
		int steps = 0, ok = 0;
		while (t.fires == 0 && steps <= TW_LEVELS + 1) {
			uint32_t nx = tw_next(&w, &ok);
			if (!ok || (d > 0 && !tw_tick_before(w.now, nx)) ||
			    (uint32_t)(nx - w.now) > (uint32_t)(e - w.now)) {
				test_fail(__FILE__, __LINE__,
					  "seed %#llx start %#x delta %u: next %#x ok %d at now %#x",
					  (unsigned long long)seed, start, d, nx, ok, w.now);
				break;
			}
			tw_advance(&w, nx, on_fire, &c);
			steps++;
		}
		if (t.fires != 1 || t.last_at != e || steps > TW_LEVELS)
			test_fail(__FILE__, __LINE__,
				  "seed %#llx start %#x delta %u: fires %d at %#x after %d steps",
				  (unsigned long long)seed, start, d, t.fires, t.last_at, steps);
	}
}

/* ---- randomized comparison with a brute-force model ---- */

#define MN 384
struct mnode {
	struct tw_node tw;
	int armed;
	uint32_t exp; /* the tick at which the model expects it to fire */
};

struct model {
	struct tw_wheel w;
	struct mnode n[MN];
	uint64_t seed, rng;
	long op;
	uint32_t call_from, target, last_fire;
	int in_call;
	int budget; /* same-tick re-arms left in this call, so fire() cannot loop */
	long fired;
};

#define MN_OF(p) ((struct mnode *)(void *)((char *)(p) - offsetof(struct mnode, tw)))

#define MREQ(m, cond)                                                                         \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			test_fail(__FILE__, __LINE__, "seed %#llx op %ld: %s (now %#x)",      \
				  (unsigned long long)(m)->seed, (m)->op, #cond, (m)->w.now);   \
			test_abort();                                                         \
		}                                                                             \
	} while (0)

static uint32_t model_expected(uint32_t now, uint32_t e)
{
	uint32_t d = e - now;
	if (d == 0 || tw_tick_before(e, now))
		return now;
	return d > TW_MAX_DELTA ? now + TW_MAX_DELTA : e;
}

static uint32_t model_delta(struct model *m)
{
	uint32_t r = rng_range(&m->rng, 16);
	switch (r) {
	case 0: /* in the past, possibly by half a revolution */
		return 0u - (1u + rng_range(&m->rng, 0x80000000u));
	case 1:
		return 0;
	case 2: /* beyond the horizon */
		return TW_MAX_DELTA + 1 + rng_range(&m->rng, 0x7FFFFFFFu - TW_MAX_DELTA);
	case 3: { /* a level boundary, give or take one */
		unsigned l = 1 + rng_range(&m->rng, TW_LEVELS);
		uint32_t b = l == TW_LEVELS ? TW_MAX_DELTA : UINT32_C(1) << (6 * l);
		return b - 1 + rng_range(&m->rng, 3);
	}
	default: {
		unsigned l = rng_range(&m->rng, TW_LEVELS);
		return rng_range(&m->rng, (uint32_t)(UINT64_C(1) << (6 * l + 6)));
	}
	}
}

static uint32_t model_count(const struct model *m)
{
	uint32_t k = 0;
	for (int i = 0; i < MN; i++)
		k += (uint32_t)m->n[i].armed;
	return k;
}

static void model_arm(struct model *m, struct mnode *x, uint32_t delta)
{
	uint32_t e = m->w.now + delta;
	if (m->in_call && (delta == 0 || tw_tick_before(e, m->w.now))) {
		if (m->budget <= 0)
			e = m->w.now + 1 + (delta & 0xFFFu);
		else
			m->budget--;
	}
	tw_arm(&m->w, &x->tw, e);
	x->armed = 1;
	x->exp = model_expected(m->w.now, e);
}

static void model_fire(void *vctx, struct tw_node *tn)
{
	struct model *m = vctx;
	struct mnode *x = MN_OF(tn);
	MREQ(m, m->in_call);
	MREQ(m, x->armed);
	MREQ(m, !tw_armed(tn));
	MREQ(m, m->w.now == x->exp); /* neither early nor late */
	MREQ(m, !tw_tick_before(m->w.now, m->last_fire));
	MREQ(m, (uint32_t)(m->w.now - m->call_from) <= (uint32_t)(m->target - m->call_from));
	m->last_fire = m->w.now;
	x->armed = 0;
	m->fired++;
	MREQ(m, m->w.count == model_count(m));
	uint32_t r = rng_range(&m->rng, 16);
	if (r < 4)
		model_arm(m, x, model_delta(m));
	else if (r < 6)
		model_arm(m, &m->n[rng_range(&m->rng, MN)], model_delta(m));
	else if (r < 8) {
		struct mnode *y = &m->n[rng_range(&m->rng, MN)];
		tw_cancel(&m->w, &y->tw);
		y->armed = 0;
	}
}

/*
 * tw_next must be a lower bound on the earliest expiry, and (white-box) exactly the first tick
 * at which a filed timer fires or cascades: so it is the exact expiry whenever that first
 * event is a level-0 timer.
 */
static void model_check_next(struct model *m)
{
	int ok = 7;
	uint32_t nx = tw_next(&m->w, &ok);
	uint32_t k = model_count(m);
	MREQ(m, (k != 0) == (ok != 0));
	if (!k)
		return;
	uint32_t best = 0xFFFFFFFFu, ev = 0xFFFFFFFFu;
	for (int i = 0; i < MN; i++) {
		const struct mnode *x = &m->n[i];
		if (!x->armed)
			continue;
		if (x->exp - m->w.now < best)
			best = x->exp - m->w.now;
		unsigned l = x->tw.slot / TW_LEVEL_SIZE;
		uint32_t c = x->exp & ~((UINT32_C(1) << (6 * l)) - 1u);
		if (c - m->w.now < ev)
			ev = c - m->w.now;
	}
	uint32_t dn = nx - m->w.now;
	MREQ(m, dn <= best);
	MREQ(m, best == 0 ? dn == 0 : dn > 0);
	MREQ(m, dn == ev);
}

static void model_run(uint64_t seed, long ops)
{
	static struct model m;
	memset(&m, 0, sizeof(m));
	m.seed = m.rng = seed;
	static const uint32_t mstarts[] = {0, 0xFFFFFF00u, 0x7FFFFF00u, 0xFFFFFFFFu};
	uint32_t start = (seed & 4) ? (uint32_t)rng_next(&m.rng) : mstarts[seed & 3];
	tw_init(&m.w, start);
	for (int i = 0; i < MN; i++)
		tw_node_init(&m.n[i].tw);
	for (m.op = 0; m.op < ops; m.op++) {
		uint32_t r = rng_range(&m.rng, 100);
		if (r < 40) {
			model_arm(&m, &m.n[rng_range(&m.rng, MN)], model_delta(&m));
		} else if (r < 55) {
			struct mnode *x = &m.n[rng_range(&m.rng, MN)];
			tw_cancel(&m.w, &x->tw);
			x->armed = 0;
		} else if (r < 92) {
			uint32_t k = rng_range(&m.rng, 64), step;
			if (k == 0)
				step = 0u - (1 + rng_range(&m.rng, 1000)); /* backwards */
			else if (k < 4)
				step = 0;
			else if (k < 24)
				step = rng_range(&m.rng, 64);
			else if (k < 44)
				step = rng_range(&m.rng, 4096);
			else if (k < 56)
				step = rng_range(&m.rng, 1u << 20);
			else if (k < 63)
				step = rng_range(&m.rng, 1u << 30);
			else
				step = 0x7FFFFFFFu;
			uint32_t from = m.w.now, target = from + step;
			int back = tw_tick_before(target, from);
			m.in_call = 1;
			m.call_from = m.last_fire = from;
			m.target = back ? from : target;
			m.budget = 8;
			tw_advance(&m.w, target, model_fire, &m);
			m.in_call = 0;
			MREQ(&m, m.w.now == m.target);
			for (int i = 0; i < MN; i++)
				if (m.n[i].armed)
					MREQ(&m, m.n[i].exp - m.w.now - 1u < TW_MAX_DELTA); /* > now */
		} else {
			model_check_next(&m);
		}
		MREQ(&m, m.w.count == model_count(&m));
		for (int i = 0; i < MN; i++)
			MREQ(&m, tw_armed(&m.n[i].tw) == m.n[i].armed);
		if (!check_wheel(&m.w, "model")) {
			test_fail(__FILE__, __LINE__, "seed %#llx op %ld", (unsigned long long)seed,
				  m.op);
			test_abort();
		}
	}
	CHECK(m.fired > 0);
}

TEST(tw_model_random)
{
	uint64_t base = test_seed(0x7e2a11ce5eedULL);
	for (uint64_t i = 0; i < 16; i++)
		model_run(base + i, 20000);
}

/* ---- scale ---- */

struct big_ctx {
	struct tw_wheel *w;
	long fired, bad;
	uint32_t last;
};

static void big_fire(void *vctx, struct tw_node *n)
{
	struct big_ctx *c = vctx;
	if (n->expires != c->w->now || tw_tick_before(c->w->now, c->last))
		c->bad++;
	c->last = c->w->now;
	c->fired++;
}

TEST(tw_million_idle_timers_cost_nothing)
{
	enum { N = 1000000 };
	const uint32_t hour = 3600u * 1000u;
	struct tw_node *nodes = calloc(N, sizeof(*nodes));
	REQUIRE(nodes != NULL);
	static struct tw_wheel w;
	struct big_ctx c = {&w, 0, 0, 0};
	uint32_t start = 0xFFFFFF00u;
	tw_init(&w, start);
	for (uint32_t i = 0; i < N; i++) {
		tw_node_init(&nodes[i]);
		tw_arm(&w, &nodes[i], start + 2 * hour + (i % 100000u));
	}
	CHECK_EQ(w.count, N);
	tw_advance(&w, start + hour, big_fire, &c);
	CHECK_EQ(c.fired, 0);
	CHECK_EQ(w.now, start + hour);
	CHECK_EQ(w.count, N);
	int ok = 0;
	uint32_t nx = tw_next(&w, &ok);
	CHECK(ok && tw_tick_before(w.now, nx) && !tw_tick_before(start + 2 * hour, nx));
	c.last = w.now;
	tw_advance(&w, start + 2 * hour + 100000u, big_fire, &c);
	CHECK_EQ(c.fired, N);
	CHECK_EQ(c.bad, 0);
	CHECK_EQ(w.count, 0);
	CHECK(wheel_empty_bits(&w));
	free(nodes);
}
