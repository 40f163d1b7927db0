/*
 * fuzz_options: the byte-level codecs of src/wire_tcp.c, src/wire_ip4.c and src/checksum.c
 * against small reference implementations written here from the RFCs: the TCP option list
 * (RFC 9293 §3.1-3.2, RFC 7323 §2-3, RFC 2018 §3), the TCP header (RFC 9293 §3.1), the
 * IPv4 header (RFC 791 §3.1) and the Internet checksum (RFC 1071). The references favour
 * plainness over speed: a byte loop where tern sums 64 bits at a time, a walk that stops at
 * each rule where tern's switch folds cases.
 *
 * The first byte picks the codec (modulo FZ_OPT_COUNT); the rest is its input.
 */
#include "fuzz.h"

#include <string.h>

#include "wire.h"

enum { FZ_OPT_PARSE, FZ_OPT_TCP, FZ_OPT_IP4, FZ_OPT_CSUM, FZ_OPT_BUILD, FZ_OPT_TCP_BUILD,
       FZ_OPT_IP4_BUILD, FZ_OPT_COUNT };

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- the reference option parser ---- */

/*
 * RFC 9293 §3.1: kind 0 ends the list, kind 1 is one byte of padding, every other kind has a
 * length byte that counts the kind byte and itself, so a length below 2 or past the end of
 * the list leaves the rest unwalkable (MUST-7: survive it; tern drops the segment). Known
 * kinds with another length than their own are ignored as Linux does; a later occurrence of
 * a kind replaces an earlier one. RFC 7323 §2.3: a shift above 14 counts as 14. RFC 2018 §3:
 * SACK is 2 + 8n bytes, n >= 1; tern keeps the first 4 blocks.
 */
static int ref_opts(const uint8_t *p, size_t n, struct tern_tcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	size_t i = 0;
	while (i < n) {
		if (p[i] == 0)
			return 0;
		if (p[i] == 1) {
			i += 1;
			continue;
		}
		if (i + 1 >= n)
			return -1; /* no length byte */
		size_t len = p[i + 1];
		if (len < 2 || i + len > n)
			return -1;
		const uint8_t *v = p + i + 2;
		if (p[i] == 2 && len == 4) {
			o->has |= TERN_OPT_MSS;
			o->mss = get16(v);
		} else if (p[i] == 3 && len == 3) {
			o->has |= TERN_OPT_WSCALE;
			o->wscale = v[0] < 14 ? v[0] : 14;
		} else if (p[i] == 4 && len == 2) {
			o->has |= TERN_OPT_SACK_PERM;
		} else if (p[i] == 8 && len == 10) {
			o->has |= TERN_OPT_TS;
			o->ts_val = get32(v);
			o->ts_ecr = get32(v + 4);
		} else if (p[i] == 5 && len >= 10 && (len - 2) % 8 == 0) {
			size_t blocks = (len - 2) / 8;
			o->has |= TERN_OPT_SACK;
			o->nsack = (uint8_t)(blocks < 4 ? blocks : 4);
			for (size_t b = 0; b < o->nsack; b++) {
				o->sack[b].left = get32(v + 8 * b);
				o->sack[b].right = get32(v + 8 * b + 4);
			}
		}
		i += len;
	}
	return 0;
}

static void same_opts(const struct tern_tcp_opts *a, const struct tern_tcp_opts *b,
		      const char *what)
{
	FZ_CHECK(a->has == b->has, "%s: options %#x, reference %#x", what, a->has, b->has);
	FZ_CHECK(a->mss == b->mss, "%s: MSS %u, reference %u", what, a->mss, b->mss);
	FZ_CHECK(a->wscale == b->wscale, "%s: shift %u, reference %u", what, a->wscale,
		 b->wscale);
	FZ_CHECK(a->ts_val == b->ts_val && a->ts_ecr == b->ts_ecr, "%s: timestamps differ", what);
	FZ_CHECK(a->nsack == b->nsack, "%s: %u SACK blocks, reference %u", what, a->nsack,
		 b->nsack);
	for (unsigned i = 0; i < a->nsack && i < 4; i++)
		FZ_CHECK(a->sack[i].left == b->sack[i].left && a->sack[i].right == b->sack[i].right,
			 "%s: SACK block %u differs", what, i);
}

/*
 * Build o with tern, then check the bytes: a multiple of 4, at most 40, a list the reference
 * walks, and the options o asked for with the values it gave, except what the rules change:
 * a shift is clamped on reading, and SACK blocks are cut to what fits in the room left
 * (RFC 2018 §3), none at all when none fits.
 */
static void build_roundtrip(const struct tern_tcp_opts *o)
{
	uint8_t buf[64];
	memset(buf, 0xee, sizeof(buf));
	size_t n = tern_tcp_opts_build(buf, o);
	FZ_CHECK(n % 4 == 0 && n <= TERN_TCP_MAX_OPTLEN, "built %zu option bytes", n);
	FZ_CHECK(buf[n] == 0xee, "built past its length");
	struct tern_tcp_opts back;
	FZ_CHECK(ref_opts(buf, n, &back) == 0, "built a list the reference cannot walk");

	struct tern_tcp_opts want;
	memset(&want, 0, sizeof(want));
	want.has = o->has & (TERN_OPT_MSS | TERN_OPT_WSCALE | TERN_OPT_SACK_PERM | TERN_OPT_TS);
	want.mss = (o->has & TERN_OPT_MSS) ? o->mss : 0;
	want.wscale = (o->has & TERN_OPT_WSCALE) ? (o->wscale < 14 ? o->wscale : 14) : 0;
	if (o->has & TERN_OPT_TS) {
		want.ts_val = o->ts_val;
		want.ts_ecr = o->ts_ecr;
	}
	if ((o->has & TERN_OPT_SACK) && o->nsack) {
		/* The room the other options leave: 4 each for MSS, SACK_PERM alone and
		 * WSCALE (with its NOP), 12 for TS with SACK_PERM or its NOPs. */
		size_t used = ((o->has & TERN_OPT_MSS) ? 4 : 0) + ((o->has & TERN_OPT_WSCALE) ? 4 : 0);
		if (o->has & TERN_OPT_TS)
			used += 12;
		else if (o->has & TERN_OPT_SACK_PERM)
			used += 4;
		size_t fit = (TERN_TCP_MAX_OPTLEN - used - 4) / 8;
		size_t k = o->nsack < 4 ? o->nsack : 4;
		if (k > fit)
			k = fit;
		if (k) {
			want.has |= TERN_OPT_SACK;
			want.nsack = (uint8_t)k;
			for (size_t i = 0; i < k; i++)
				want.sack[i] = o->sack[i];
		}
	}
	same_opts(&back, &want, "build and parse");
}

static void t_parse(const uint8_t *p, size_t n)
{
	struct tern_tcp_opts got, ref;
	int rc = tern_tcp_opts_parse(p, n, &got);
	int rrc = ref_opts(p, n, &ref);
	FZ_CHECK((rc == TERN_TCP_OK) == (rrc == 0), "option parse returned %d, reference %d", rc,
		 rrc);
	FZ_CHECK(rc == TERN_TCP_OK || rc == TERN_TCP_OPTS, "option parse returned %d", rc);
	if (rc != TERN_TCP_OK)
		return;
	same_opts(&got, &ref, "parse");
	build_roundtrip(&got);
}

/* RFC 9293 §3.1, in the order tern documents its checks: length, data offset, checksum
 * (verified before the options), options. */
static int ref_tcp(const uint8_t *s, size_t n, uint32_t src, uint32_t dst, bool verify,
		   struct tern_tcp_opts *o)
{
	if (n < 20)
		return TERN_TCP_SHORT;
	size_t hl = (size_t)(s[12] >> 4) * 4;
	if (hl < 20 || hl > n)
		return TERN_TCP_DOFF;
	bool sum_ok = n <= 0xffff &&
		      (!verify || fz_fold(fz_sum(s, n, fz_pseudo(src, dst, 6, (uint32_t)n))) == 0);
	int orc = ref_opts(s + 20, hl - 20, o);
	if (!sum_ok)
		return TERN_TCP_CSUM;
	return orc ? TERN_TCP_OPTS : TERN_TCP_OK;
}

static void t_tcp(const uint8_t *p, size_t n)
{
	if (n < 8)
		return;
	uint32_t src = get32(p), dst = get32(p + 4);
	p += 8;
	n -= 8;
	for (int verify = 0; verify < 2; verify++) {
		struct tern_tcp_seg s;
		struct tern_tcp_opts ro;
		int rc = verify ? tern_tcp_parse(p, n, src, dst, &s)
				: tern_tcp_parse_trusted(p, n, src, dst, &s);
		int rrc = ref_tcp(p, n, src, dst, verify, &ro);
		FZ_CHECK(rc == rrc, "tcp parse (verify %d) returned %d, reference %d", verify, rc,
			 rrc);
		if (rc == TERN_TCP_SHORT || rc == TERN_TCP_DOFF)
			continue;
		size_t hl = (size_t)(p[12] >> 4) * 4;
		FZ_CHECK(s.h.src == src && s.h.dst == dst && s.h.sport == get16(p) &&
				 s.h.dport == get16(p + 2) && s.h.seq == get32(p + 4) &&
				 s.h.ack == get32(p + 8) && s.h.win == get16(p + 14) &&
				 s.h.urp == get16(p + 18) && s.csum == get16(p + 16),
			 "tcp parse: header fields differ");
		FZ_CHECK(s.h.flags == (((p[12] & 1) << 8) | p[13]), "tcp parse: flags %#x",
			 s.h.flags);
		FZ_CHECK(s.hlen == hl && s.h.len == n - hl && s.data == p + hl,
			 "tcp parse: lengths differ");
		if (rc == TERN_TCP_OK)
			same_opts(&s.h.opts, &ro, "tcp parse");
	}
}

/* RFC 791 §3.1, in tern's documented order of checks. */
static void t_ip4(const uint8_t *p, size_t n)
{
	int ref;
	size_t hl = n ? (size_t)(p[0] & 15) * 4 : 0;
	if (n < 20)
		ref = TERN_IP4_SHORT;
	else if (p[0] >> 4 != 4)
		ref = TERN_IP4_VERSION;
	else if (hl < 20)
		ref = TERN_IP4_IHL;
	else if (n < hl)
		ref = TERN_IP4_SHORT;
	else if (get16(p + 2) < hl || get16(p + 2) > n)
		ref = TERN_IP4_TOTLEN;
	else if (fz_fold(fz_sum(p, hl, 0)) != 0)
		ref = TERN_IP4_CSUM;
	else if (get16(p + 6) & 0x3fff)
		ref = TERN_IP4_FRAG;
	else
		ref = TERN_IP4_OK;
	struct tern_ip4 ip;
	int rc = tern_ip4_parse(p, n, &ip);
	FZ_CHECK(rc == ref, "ip4 parse returned %d, reference %d", rc, ref);
	if (rc != TERN_IP4_OK)
		return;
	FZ_CHECK(ip.src == get32(p + 12) && ip.dst == get32(p + 16) && ip.proto == p[9] &&
			 ip.ttl == p[8] && ip.tos == p[1] && ip.id == get16(p + 4) &&
			 ip.frag == get16(p + 6) && ip.hlen == hl && ip.total_len == get16(p + 2),
		 "ip4 parse: fields differ");
	FZ_CHECK(ip.payload == p + hl && ip.payload_len == get16(p + 2) - hl,
		 "ip4 parse: payload differs");
}

/* The checksum of the bytes cut into up to four pieces at chosen points, through
 * tern_csum_add (with the odd flag) and through tern_csum_iov with a pseudo-header. */
static void t_csum(const uint8_t *p, size_t n)
{
	if (n < 12)
		return;
	uint32_t src = get32(p), dst = get32(p + 4);
	uint8_t proto = p[8];
	size_t cut[3] = {p[9], p[10], p[11]};
	p += 12;
	n -= 12;
	struct tern_iovec iov[4];
	size_t at = 0;
	unsigned k = 0;
	for (unsigned i = 0; i < 3; i++) {
		size_t len = cut[i] % (n - at + 1);
		iov[k].base = len ? p + at : NULL;
		iov[k++].len = len;
		at += len;
	}
	iov[k].base = p + at;
	iov[k++].len = n - at;

	uint32_t sum = 0;
	size_t off = 0;
	for (unsigned i = 0; i < k; i++) {
		sum = tern_csum_add(sum, iov[i].base, iov[i].len, (int)(off & 1));
		off += iov[i].len;
	}
	uint16_t c = tern_csum_fold(sum), want = fz_fold(fz_sum(p, n, 0));
	uint8_t be[2];
	memcpy(be, &c, 2);
	FZ_CHECK(get16(be) == want, "csum_add over %u pieces: %04x, reference %04x", k,
		 get16(be), want);

	uint16_t plen = (uint16_t)n;
	c = tern_csum_iov(tern_csum_pseudo(src, dst, proto, plen), iov, k);
	memcpy(be, &c, 2);
	want = fz_fold(fz_sum(p, n, fz_pseudo(src, dst, proto, plen)));
	FZ_CHECK(get16(be) == want, "csum_iov: %04x, reference %04x", get16(be), want);

	if (n >= 20) {
		c = tern_csum_hdr20(p);
		memcpy(be, &c, 2);
		want = fz_fold(fz_sum(p, 20, 0));
		FZ_CHECK(get16(be) == want, "csum_hdr20: %04x, reference %04x", get16(be), want);
	}
}

static void read_opts_struct(struct fz_rd *r, struct tern_tcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->has = fz_u8(r) & 0x1f;
	o->mss = fz_u16(r);
	o->wscale = fz_u8(r);
	o->ts_val = fz_u32(r);
	o->ts_ecr = fz_u32(r);
	o->nsack = fz_u8(r) % 8; /* past 4 too: the builder must clamp */
	for (unsigned i = 0; i < 4; i++) {
		o->sack[i].left = fz_u32(r);
		o->sack[i].right = fz_u32(r);
	}
}

static void t_tcp_build(struct fz_rd *r)
{
	struct tern_seg_info h;
	memset(&h, 0, sizeof(h));
	h.sport = fz_u16(r);
	h.dport = fz_u16(r);
	h.seq = fz_u32(r);
	h.ack = fz_u32(r);
	h.flags = fz_u16(r) & 0x1ff;
	h.win = fz_u16(r);
	h.urp = fz_u16(r);
	read_opts_struct(r, &h.opts);
	uint8_t buf[80];
	memset(buf, 0xee, sizeof(buf));
	size_t hl = tern_tcp_build(buf, &h);
	FZ_CHECK(hl >= 20 && hl <= 60 && hl % 4 == 0 && buf[hl] == 0xee, "built a %zu-byte header",
		 hl);
	FZ_CHECK((size_t)(buf[12] >> 4) * 4 == hl && (buf[12] & 0x0e) == 0,
		 "built data offset byte %#x for %zu", buf[12], hl);
	FZ_CHECK(get16(buf) == h.sport && get16(buf + 2) == h.dport && get32(buf + 4) == h.seq &&
			 get32(buf + 8) == h.ack && get16(buf + 14) == h.win &&
			 get16(buf + 16) == 0 && get16(buf + 18) == h.urp,
		 "built header fields differ");
	FZ_CHECK((((buf[12] & 1) << 8) | buf[13]) == h.flags, "built flags differ");
	build_roundtrip(&h.opts);
}

static void t_ip4_build(struct fz_rd *r)
{
	uint32_t src = fz_u32(r), dst = fz_u32(r);
	uint8_t proto = fz_u8(r), ttl = fz_u8(r);
	uint16_t id = fz_u16(r), pl = fz_u16(r) % (65535 - 20 + 1);
	int df = fz_u8(r) & 1;
	uint8_t h[20];
	tern_ip4_build(h, src, dst, proto, ttl, id, df, pl);
	FZ_CHECK(h[0] == 0x45 && h[1] == 0 && get16(h + 2) == 20 + pl && get16(h + 4) == id &&
			 get16(h + 6) == (df ? 0x4000 : 0) && h[8] == ttl && h[9] == proto &&
			 get32(h + 12) == src && get32(h + 16) == dst,
		 "ip4 build: fields differ");
	FZ_CHECK(fz_fold(fz_sum(h, 20, 0)) == 0, "ip4 build: bad checksum");
}

int fuzz_options_one(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	struct fz_rd r = {p, n};
	switch (data[0] % FZ_OPT_COUNT) {
	case FZ_OPT_PARSE:
		t_parse(p, n);
		break;
	case FZ_OPT_TCP:
		t_tcp(p, n);
		break;
	case FZ_OPT_IP4:
		t_ip4(p, n);
		break;
	case FZ_OPT_CSUM:
		t_csum(p, n);
		break;
	case FZ_OPT_BUILD: {
		struct tern_tcp_opts o;
		read_opts_struct(&r, &o);
		build_roundtrip(&o);
		break;
	}
	case FZ_OPT_TCP_BUILD:
		t_tcp_build(&r);
		break;
	default:
		t_ip4_build(&r);
		break;
	}
	return 0;
}

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_options_one(data, size);
}
#endif
