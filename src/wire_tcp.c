/* TCP header and option codec (RFC 9293 §3.1-3.2, RFC 7323, RFC 2018). */
#include <stdbool.h>
#include "wire.h"

#define TCPOLEN_MSS 4
#define TCPOLEN_WSCALE 3
#define TCPOLEN_SACK_PERM 2
#define TCPOLEN_TS 10
#define TCPOLEN_SACK_BASE 2
#define TCPOLEN_SACK_BLOCK 8
#define TCP_MAX_WSCALE 14 /* RFC 7323 §2.3 */
#define TCP_MAX_SACK 4    /* blocks struct tern_tcp_opts holds; a 40-byte list fits no more */

int tern_tcp_opts_parse(const uint8_t *opt, size_t len, struct tern_tcp_opts *o)
{
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < len) {
		uint8_t kind = opt[i];
		size_t olen;

		if (kind == TERN_TCPOPT_EOL)
			break; /* the rest of the header is padding (RFC 9293 §3.2) */
		if (kind == TERN_TCPOPT_NOP) {
			i++;
			continue;
		}
		/* Every other kind, known or not, has a length octet that counts the kind and
		 * itself (RFC 9293 §3.1). Without a sane one the rest of the list cannot be
		 * walked; RFC 9293 §3.1 (MUST-7) names a zero length as the case to survive. */
		if (len - i < 2)
			return TERN_TCP_OPTS;
		olen = opt[i + 1];
		if (olen < 2 || olen > len - i)
			return TERN_TCP_OPTS;

		const uint8_t *v = opt + i + 2;
		switch (kind) {
		case TERN_TCPOPT_MSS:
			if (olen == TCPOLEN_MSS) {
				o->has |= TERN_OPT_MSS;
				o->mss = rd16(v);
			}
			break;
		case TERN_TCPOPT_WSCALE:
			if (olen == TCPOLEN_WSCALE) {
				/* RFC 7323 §2.3: a shift above 14 is used as 14 (and logged). */
				o->has |= TERN_OPT_WSCALE;
				o->wscale = v[0] > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : v[0];
			}
			break;
		case TERN_TCPOPT_SACK_PERM:
			if (olen == TCPOLEN_SACK_PERM)
				o->has |= TERN_OPT_SACK_PERM;
			break;
		case TERN_TCPOPT_TS:
			if (olen == TCPOLEN_TS) {
				o->has |= TERN_OPT_TS;
				o->ts_val = rd32(v);
				o->ts_ecr = rd32(v + 4);
			}
			break;
		case TERN_TCPOPT_SACK:
			/* RFC 2018 §3: 2 + 8n bytes, n >= 1. More blocks than we keep can come
			 * only from a list longer than 40 bytes; the first ones are the most
			 * recent (RFC 2018 §4), so those are kept. */
			if (olen >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_BLOCK &&
			    (olen - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_BLOCK == 0) {
				size_t n = (olen - TCPOLEN_SACK_BASE) / TCPOLEN_SACK_BLOCK;

				if (n > TCP_MAX_SACK)
					n = TCP_MAX_SACK;
				o->has |= TERN_OPT_SACK;
				o->nsack = (uint8_t)n;
				for (size_t b = 0; b < n; b++) {
					o->sack[b].left = rd32(v + b * TCPOLEN_SACK_BLOCK);
					o->sack[b].right = rd32(v + b * TCPOLEN_SACK_BLOCK + 4);
				}
			}
			break;
		default:
			/* Unknown kinds are skipped by their length (RFC 9293 §3.1, MUST-6). */
			break;
		}
		i += olen;
	}
	return TERN_TCP_OK;
}

/*
 * The layout is Linux's tcp_options_write(): every option padded with NOPs to a 4-byte
 * boundary (RFC 7323 Appendix A recommends this alignment for TS), SACK_PERM folded into the
 * two bytes TS's padding would waste. Matching it byte for byte keeps captures comparable.
 */
size_t tern_tcp_opts_build(uint8_t *buf, const struct tern_tcp_opts *o)
{
	uint8_t *p = buf;

	if (o->has & TERN_OPT_MSS) {
		*p++ = TERN_TCPOPT_MSS;
		*p++ = TCPOLEN_MSS;
		wr16(p, o->mss);
		p += 2;
	}
	if (o->has & TERN_OPT_TS) {
		if (o->has & TERN_OPT_SACK_PERM) {
			*p++ = TERN_TCPOPT_SACK_PERM;
			*p++ = TCPOLEN_SACK_PERM;
		} else {
			*p++ = TERN_TCPOPT_NOP;
			*p++ = TERN_TCPOPT_NOP;
		}
		*p++ = TERN_TCPOPT_TS;
		*p++ = TCPOLEN_TS;
		wr32(p, o->ts_val);
		wr32(p + 4, o->ts_ecr);
		p += 8;
	} else if (o->has & TERN_OPT_SACK_PERM) {
		*p++ = TERN_TCPOPT_NOP;
		*p++ = TERN_TCPOPT_NOP;
		*p++ = TERN_TCPOPT_SACK_PERM;
		*p++ = TCPOLEN_SACK_PERM;
	}
	if (o->has & TERN_OPT_WSCALE) {
		*p++ = TERN_TCPOPT_NOP;
		*p++ = TERN_TCPOPT_WSCALE;
		*p++ = TCPOLEN_WSCALE;
		*p++ = o->wscale;
	}
	if ((o->has & TERN_OPT_SACK) && o->nsack > 0) {
		/* The 40-byte limit (RFC 9293 §3.1, data offset of 15 words) bounds the blocks:
		 * 4 alone, 3 with timestamps, 2 beside everything a SYN carries (RFC 2018 §3).
		 * The options above take at most 20 bytes, so room never drops below 20. The
		 * first blocks are the most recent and are the ones kept (RFC 2018 §4). */
		size_t room = TERN_TCP_MAX_OPTLEN - (size_t)(p - buf);
		size_t n = o->nsack > TCP_MAX_SACK ? TCP_MAX_SACK : o->nsack;

		if (n > (room - 4) / TCPOLEN_SACK_BLOCK)
			n = (room - 4) / TCPOLEN_SACK_BLOCK;
		if (n > 0) {
			*p++ = TERN_TCPOPT_NOP;
			*p++ = TERN_TCPOPT_NOP;
			*p++ = TERN_TCPOPT_SACK;
			*p++ = (uint8_t)(TCPOLEN_SACK_BASE + n * TCPOLEN_SACK_BLOCK);
			for (size_t b = 0; b < n; b++) {
				wr32(p, o->sack[b].left);
				wr32(p + 4, o->sack[b].right);
				p += TCPOLEN_SACK_BLOCK;
			}
		}
	}
	return (size_t)(p - buf);
}

static int tcp_parse(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
		     struct tern_tcp_seg *s, bool verify);

int tern_tcp_parse(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
		   struct tern_tcp_seg *s)
{
	return tcp_parse(seg, len, src, dst, s, true);
}

int tern_tcp_parse_trusted(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
			   struct tern_tcp_seg *s)
{
	return tcp_parse(seg, len, src, dst, s, false);
}

static int tcp_parse(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
		     struct tern_tcp_seg *s, bool verify)
{
	size_t hlen;
	uint32_t sum;
	int err;

	if (len < TERN_TCP_HLEN)
		return TERN_TCP_SHORT;
	hlen = (size_t)(seg[12] >> 4) * 4;
	if (hlen < TERN_TCP_HLEN || hlen > len)
		return TERN_TCP_DOFF;

	s->h.src = src;
	s->h.dst = dst;
	s->h.sport = rd16(seg);
	s->h.dport = rd16(seg + 2);
	s->h.seq = rd32(seg + 4);
	s->h.ack = rd32(seg + 8);
	/* AE is the last of the bits RFC 9293 §3.1 shows as reserved beside the data offset:
	 * once ECN-nonce's NS (RFC 3540), now AccECN's AE. The other three are ignored. */
	s->h.flags = (uint16_t)(((seg[12] & 0x01) << 8) | seg[13]);
	s->h.win = rd16(seg + 14);
	s->csum = rd16(seg + 16);
	s->h.urp = rd16(seg + 18);
	s->h.len = (uint32_t)(len - hlen);
	s->hlen = (uint8_t)hlen;
	s->data = seg + hlen;

	/* The checksum before the options, as Linux does: a corrupted segment is reported as
	 * corrupted, whatever bytes the damage hit. The pseudo-header's TCP length is 16 bits
	 * (RFC 9293 §3.1): a longer segment cannot have come in an IPv4 datagram and has no
	 * checksum that could verify. */
	bool csum_ok = len <= 0xffff;
	if (csum_ok && verify) {
		sum = tern_csum_pseudo(src, dst, TERN_IPPROTO_TCP_, (uint16_t)len);
		struct tern_iovec whole = {seg, len};
		csum_ok = tern_csum_iov(sum, &whole, 1) == 0;
	}
	if (hlen == TERN_TCP_HLEN) {
		memset(&s->h.opts, 0, sizeof(s->h.opts)); /* no options: nothing to parse */
		err = TERN_TCP_OK;
	} else {
		err = tern_tcp_opts_parse(seg + TERN_TCP_HLEN, hlen - TERN_TCP_HLEN, &s->h.opts);
	}
	if (!csum_ok)
		return TERN_TCP_CSUM; /* options as far as they parsed, for tracing */
	return err;
}

size_t tern_tcp_build(uint8_t *buf, const struct tern_seg_info *h)
{
	size_t hlen = TERN_TCP_HLEN + tern_tcp_opts_build(buf + TERN_TCP_HLEN, &h->opts);

	wr16(buf, h->sport);
	wr16(buf + 2, h->dport);
	wr32(buf + 4, h->seq);
	wr32(buf + 8, h->ack);
	buf[12] = (uint8_t)(((hlen / 4) << 4) | ((h->flags >> 8) & 0x01));
	buf[13] = (uint8_t)h->flags;
	wr16(buf + 14, h->win);
	wr16(buf + 16, 0);
	wr16(buf + 18, h->urp);
	return hlen;
}
