/*
 * Impairments: classifying a packet for the exact rules, judging its fate, and parsing the
 * text forms of both.
 */
#include <stdlib.h>
#include <string.h>
#include "impair.h"
#include "../wire.h"

struct pkt_class {
	bool tcp;
	uint16_t flags;
	uint32_t payload;
};

/* Only as much parsing as the classes need, none of it trusting the packet. */
static struct pkt_class classify(const uint8_t *p, size_t len)
{
	struct pkt_class c = {false, 0, 0};
	if (len < 20 || (p[0] >> 4) != 4)
		return c;
	size_t ihl = (size_t)(p[0] & 15) * 4;
	size_t tot = rd16(p + 2);
	if (p[9] != TERN_IPPROTO_TCP_ || ihl < 20 || tot > len || tot < ihl + 20)
		return c;
	const uint8_t *t = p + ihl;
	size_t doff = (size_t)(t[12] >> 4) * 4;
	if (doff < 20 || ihl + doff > tot)
		return c;
	c.tcp = true;
	c.flags = (uint16_t)(t[13] | ((t[12] & 1) << 8));
	c.payload = (uint32_t)(tot - ihl - doff);
	return c;
}

static bool class_match(enum tern_sim_class cls, struct pkt_class c)
{
	if (cls == TERN_SIM_ANY)
		return true;
	if (!c.tcp)
		return false;
	uint16_t f = c.flags;
	switch (cls) {
	case TERN_SIM_SYN: return (f & TERN_TH_SYN) && !(f & TERN_TH_ACK);
	case TERN_SIM_SYNACK: return (f & TERN_TH_SYN) && (f & TERN_TH_ACK);
	case TERN_SIM_ACK:
		return (f & TERN_TH_ACK) && !(f & (TERN_TH_SYN | TERN_TH_FIN | TERN_TH_RST)) &&
		       c.payload == 0;
	case TERN_SIM_DATA: return c.payload > 0;
	case TERN_SIM_FIN: return f & TERN_TH_FIN;
	case TERN_SIM_RST: return f & TERN_TH_RST;
	default: return false;
	}
}

static double rnd01(struct tern_rng *rng)
{
	return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

static void flip_bit(struct tern_rng *rng, uint8_t *pkt, size_t len, struct impair_verdict *v)
{
	size_t bit = (size_t)(rng_next(rng) % (len * 8));
	pkt[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	v->corrupted++;
}

void impair_judge(struct tern_rng *rng, struct impair_rule *rules, int nrules, int from, int to,
		  const struct tern_impair *imp, uint8_t *pkt, size_t len, struct impair_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (!len)
		return;
	uint64_t extra = 0;
	if (nrules) {
		struct pkt_class c = classify(pkt, len);
		for (int i = 0; i < nrules; i++) {
			struct impair_rule *r = &rules[i];
			if ((r->r.from >= 0 && r->r.from != from) || (r->r.to >= 0 && r->r.to != to))
				continue;
			if (!class_match(r->r.cls, c))
				continue;
			uint32_t n = ++r->seen;
			uint32_t count = r->r.count ? r->r.count : 1;
			if (r->r.nth && (n < r->r.nth || n >= r->r.nth + count))
				continue;
			switch (r->r.action) {
			case TERN_SIM_DROP:
				v->drop = true;
				return;
			case TERN_SIM_DUP:
				v->dup = true;
				v->dup_delay_us += r->r.delay_us;
				break;
			case TERN_SIM_DELAY:
				extra += r->r.delay_us;
				break;
			case TERN_SIM_CORRUPT:
				flip_bit(rng, pkt, len, v);
				break;
			}
		}
	}
	if (imp->loss > 0 && rnd01(rng) < imp->loss) {
		v->drop = true;
		return;
	}
	if (imp->corrupt > 0 && rnd01(rng) < imp->corrupt)
		flip_bit(rng, pkt, len, v);
	if (imp->dup > 0 && rnd01(rng) < imp->dup)
		v->dup = true;
	uint64_t delay = imp->delay_us + extra;
	if (imp->jitter_us)
		delay += rng_next(rng) % ((uint64_t)imp->jitter_us + 1);
	if (imp->reorder > 0 && rnd01(rng) < imp->reorder) {
		/* Held back long enough for the packets behind it to overtake. */
		extra = 2 * (uint64_t)imp->delay_us + imp->jitter_us + 1000;
		delay += extra;
	}
	v->held = extra != 0;
	v->delay_us = delay;
	if (v->dup) {
		uint64_t d2 = imp->delay_us;
		if (imp->jitter_us)
			d2 += rng_next(rng) % ((uint64_t)imp->jitter_us + 1);
		v->dup_delay_us += d2 + 1;
	}
}

/* ---- text forms ---- */

static const char *const class_names[] = {"any", "syn", "synack", "ack", "data", "fin", "rst"};

const char *tern_sim_class_name(enum tern_sim_class c)
{
	return (unsigned)c < sizeof(class_names) / sizeof(class_names[0]) ? class_names[c] : "?";
}

int tern_impair_parse_class(const char *text, struct tern_sim_rule *rule)
{
	char cls[16];
	const char *hash = strchr(text, '#');
	size_t n = hash ? (size_t)(hash - text) : strlen(text);
	if (n >= sizeof(cls))
		return -EINVAL;
	memcpy(cls, text, n);
	cls[n] = 0;
	rule->nth = 0;
	rule->count = 0;
	if (hash) {
		char *end;
		unsigned long first = strtoul(hash + 1, &end, 10);
		if (end == hash + 1 || first == 0 || first > 1000000 || hash[1] == '-' || hash[1] == '+')
			return -EINVAL;
		rule->nth = (uint32_t)first;
		rule->count = 1;
		if (*end == '-') {
			char *e2;
			unsigned long last = strtoul(end + 1, &e2, 10);
			if (e2 == end + 1 || *e2 || end[1] == '-' || end[1] == '+' || last < first ||
			    last > 1000000)
				return -EINVAL;
			rule->count = (uint32_t)(last - first + 1);
		} else if (*end) {
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++) {
		if (strcmp(cls, class_names[i]) == 0) {
			rule->cls = (enum tern_sim_class)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A probability: 0..1, or a percentage "3%". */
static int parse_prob(const char *s, size_t n, double *out)
{
	char buf[32];
	if (!n || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *end;
	double v = strtod(buf, &end);
	if (end == buf)
		return -EINVAL;
	if (*end == '%') {
		v /= 100.0;
		end++;
	}
	if (*end || !(v >= 0.0 && v <= 1.0))
		return -EINVAL;
	*out = v;
	return 0;
}

/* A time: a number with us, ms (the default) or s; at most an hour. */
static int parse_time_us(const char *s, size_t n, uint32_t *out)
{
	char buf[32];
	if (!n || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *end;
	double v = strtod(buf, &end);
	if (end == buf || !(v >= 0.0))
		return -EINVAL;
	double mult = 1000.0;
	if (!strcmp(end, "us"))
		mult = 1.0;
	else if (!strcmp(end, "s"))
		mult = 1e6;
	else if (*end && strcmp(end, "ms"))
		return -EINVAL;
	v *= mult;
	if (v > 3600e6)
		return -EINVAL;
	*out = (uint32_t)(v + 0.5);
	return 0;
}

int tern_impair_parse(const char *text, struct tern_impair *imp, const char **bad)
{
	struct tern_impair r = *imp;
	const char *p = text;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		int rc = -EINVAL;
		if (eq) {
			size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
#define KEY(k) (klen == sizeof(k) - 1 && !memcmp(p, k, klen))
			if (KEY("loss"))
				rc = parse_prob(eq + 1, vlen, &r.loss);
			else if (KEY("dup"))
				rc = parse_prob(eq + 1, vlen, &r.dup);
			else if (KEY("reorder"))
				rc = parse_prob(eq + 1, vlen, &r.reorder);
			else if (KEY("corrupt"))
				rc = parse_prob(eq + 1, vlen, &r.corrupt);
			else if (KEY("delay"))
				rc = parse_time_us(eq + 1, vlen, &r.delay_us);
			else if (KEY("jitter"))
				rc = parse_time_us(eq + 1, vlen, &r.jitter_us);
#undef KEY
		}
		if (rc < 0) {
			if (bad)
				*bad = p;
			return -EINVAL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*imp = r;
	return 0;
}
