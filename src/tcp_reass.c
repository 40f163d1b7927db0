/*
 * Reassembly of out-of-order data (RFC 9293 §3.10.7.4, seventh: segments beyond RCV.NXT are
 * held for later processing). The data goes straight into the receive ring at its distance
 * from RCV.NXT, so it is copied once whether it arrives in order or not; the ring lists the
 * ranges it holds. Overlapping and duplicate data merge into the ranges, so nothing is
 * delivered twice.
 */
#include <string.h>
#include "internal.h"

static void ooo_remove(struct ring *r, unsigned i)
{
	memmove(&r->ooo[i], &r->ooo[i + 1], (r->nooo - i - 1) * sizeof(r->ooo[0]));
	r->nooo--;
}

/* Add [left, right) to the sorted, disjoint list, merging what it touches. */
static bool ooo_add(struct ring *r, uint32_t left, uint32_t right)
{
	unsigned i = 0;
	while (i < r->nooo && seq_lt(r->ooo[i].right, left))
		i++;
	/* Ranges from i on end at or after left. Merge every one that starts at or before
	 * right (adjacent ranges merge too). */
	unsigned j = i;
	while (j < r->nooo && seq_le(r->ooo[j].left, right)) {
		left = seq_min(left, r->ooo[j].left);
		right = seq_max(right, r->ooo[j].right);
		j++;
	}
	if (j > i) {
		r->ooo[i].left = left;
		r->ooo[i].right = right;
		while (j > i + 1)
			ooo_remove(r, --j);
		return true;
	}
	if (r->nooo == RING_OOO)
		return false;
	memmove(&r->ooo[i + 1], &r->ooo[i], (r->nooo - i) * sizeof(r->ooo[0]));
	r->ooo[i].left = left;
	r->ooo[i].right = right;
	r->nooo++;
	return true;
}

uint32_t reass_insert(struct ring *r, uint32_t rcv_nxt, uint32_t seq, const uint8_t *data,
		      uint32_t len, bool *refused)
{
	*refused = false;
	if (!len)
		return 0;
	if (seq != rcv_nxt) {
		if (!ooo_add(r, seq, seq + len)) {
			*refused = true;
			return 0;
		}
		ring_write_at(r, r->len + (seq - rcv_nxt), data, len);
		return 0;
	}
	ring_write_at(r, r->len, data, len);
	r->len += len;
	uint32_t nxt = rcv_nxt + len;
	/* The hole before the first held range may be filled now. */
	while (r->nooo && seq_le(r->ooo[0].left, nxt)) {
		if (seq_gt(r->ooo[0].right, nxt)) {
			r->len += r->ooo[0].right - nxt;
			nxt = r->ooo[0].right;
		}
		ooo_remove(r, 0);
	}
	return nxt - rcv_nxt;
}
