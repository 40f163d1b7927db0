/*
 * Byte-level codecs: the Internet checksum, IPv4 headers and TCP headers with their options.
 * Everything here reads untrusted bytes: every length and offset is checked against the buffer
 * before it is used, and a malformed header is reported, never half-parsed.
 */
#ifndef TERN_WIRE_H
#define TERN_WIRE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "tern/tern.h"

/* Big-endian loads and stores on unaligned bytes: one load or store and a byte swap where the
 * compiler tells the byte order, byte by byte elsewhere. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
	__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && (defined(__GNUC__) || defined(__clang__))
static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return __builtin_bswap16(v);
}
static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}
static inline void wr16(uint8_t *p, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(p, &v, 2);
}
static inline void wr32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}
#else
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
#endif

/* ---- Internet checksum (RFC 1071): a one's-complement sum of 16-bit words ---- */

/* Add len bytes at buf to a running sum. The sum is kept in native byte order, so the final
 * value is stored with memcpy, not wr16. odd says the bytes start at an odd offset of the
 * checksummed stream (their words straddle the previous piece). Returns the new sum. */
uint32_t tern_csum_add(uint32_t sum, const void *buf, size_t len, int odd);
/* Fold a running sum to 16 bits and complement it: the value to store in a header. */
uint16_t tern_csum_fold(uint32_t sum);
/* Sum of the TCP/UDP pseudo-header (RFC 9293 §3.1): addresses in host order. */
uint32_t tern_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);
/* The checksum of a 20-byte IPv4 header (its own checksum field included as it stands),
 * ready to store with memcpy. */
uint16_t tern_csum_hdr20(const void *hdr);
/* Checksum over a pseudo-header and a gather list (pieces of any length). The result is
 * ready to store with memcpy; over data that includes a correct checksum it is 0. */
uint16_t tern_csum_iov(uint32_t pseudo_sum, const struct tern_iovec *iov, unsigned n);

/* ---- IPv4 (RFC 791) ---- */

#define TERN_IPPROTO_ICMP 1
#define TERN_IPPROTO_TCP_ 6
#define TERN_IPPROTO_UDP 17

enum tern_ip4_err {
	TERN_IP4_OK = 0,
	TERN_IP4_SHORT = -1,    /* fewer than 20 bytes, or fewer than IHL*4 */
	TERN_IP4_VERSION = -2,  /* version is not 4 */
	TERN_IP4_IHL = -3,      /* IHL below 5 */
	TERN_IP4_TOTLEN = -4,   /* total length below the header or beyond the buffer */
	TERN_IP4_CSUM = -5,     /* header checksum wrong */
	TERN_IP4_FRAG = -6,     /* MF set or fragment offset non-zero */
};

struct tern_ip4 {
	uint32_t src, dst;      /* host order */
	uint8_t proto, ttl, tos, hlen; /* hlen: header bytes (IHL*4) */
	uint16_t id, total_len, frag; /* frag: flags and offset field as on the wire */
	const uint8_t *payload; /* right after the header */
	uint16_t payload_len;   /* total_len - hlen; bytes past total_len (link padding) ignored */
};

/* Parse and validate an IPv4 header. Returns TERN_IP4_OK or a negative tern_ip4_err; on
 * error *ip is unspecified. Options (IHL > 5) are skipped, not interpreted. */
int tern_ip4_parse(const uint8_t *pkt, size_t len, struct tern_ip4 *ip);
/* Write a 20-byte header (no options) with its checksum. df sets Don't Fragment. */
void tern_ip4_build(uint8_t hdr[20], uint32_t src, uint32_t dst, uint8_t proto, uint8_t ttl,
		    uint16_t id, int df, uint16_t payload_len);

/* ---- TCP (RFC 9293 §3.1) ---- */

#define TERN_TCP_HLEN 20
#define TERN_TCP_MAX_OPTLEN 40

/* Option kinds. */
#define TERN_TCPOPT_EOL 0
#define TERN_TCPOPT_NOP 1
#define TERN_TCPOPT_MSS 2
#define TERN_TCPOPT_WSCALE 3
#define TERN_TCPOPT_SACK_PERM 4
#define TERN_TCPOPT_SACK 5
#define TERN_TCPOPT_TS 8

enum tern_tcp_err {
	TERN_TCP_OK = 0,
	TERN_TCP_SHORT = -1,    /* fewer than 20 bytes */
	TERN_TCP_DOFF = -2,     /* data offset below 5 or past the segment */
	TERN_TCP_OPTS = -3,     /* an option's length byte missing, below 2, or past the header */
	TERN_TCP_CSUM = -4,     /* checksum wrong (checked before the options) */
};

struct tern_tcp_seg {
	struct tern_seg_info h; /* addresses, ports, seq, ack, flags, win, urp, len, opts */
	const uint8_t *data;    /* payload (h.len bytes) */
	uint8_t hlen;           /* header bytes, options included */
	uint16_t csum;          /* as on the wire */
};

/*
 * Parse options (RFC 9293 §3.2, RFC 7323, RFC 2018). EOL ends the list; NOP is skipped; any
 * other kind must have a length byte >= 2 that stays inside the list, or the whole segment is
 * malformed (TERN_TCP_OPTS). A known option with the wrong length is ignored, as Linux does,
 * and so are unknown kinds. WSCALE above 14 is kept as 14 (RFC 7323 §2.3). SACK keeps at most
 * 4 blocks. Returns TERN_TCP_OK or TERN_TCP_OPTS.
 */
int tern_tcp_opts_parse(const uint8_t *opt, size_t len, struct tern_tcp_opts *o);
/*
 * Write the options in o->has in Linux's order and layout:
 *   MSS; then TS: SACK_PERM+TS packed (4,2,8,10) when SACK_PERM is also present, else NOP,NOP,TS;
 *   SACK_PERM without TS: NOP,NOP,SACK_PERM; WSCALE: NOP,WSCALE; SACK blocks: NOP,NOP,SACK.
 * The result is a multiple of 4 bytes and at most 40 (SACK blocks are cut to fit).
 * Returns the bytes written.
 */
size_t tern_tcp_opts_build(uint8_t *buf, const struct tern_tcp_opts *o);
/*
 * Parse and validate a TCP segment that arrived from src to dst. Checks the length, the data
 * offset, the checksum (over the pseudo-header), then the options. Returns TERN_TCP_OK or a
 * negative tern_tcp_err; on TERN_TCP_CSUM and TERN_TCP_OPTS the fixed header fields are
 * filled in (for tracing).
 */
int tern_tcp_parse(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
		   struct tern_tcp_seg *s);
/* The same, trusting the checksum (the link verified it): every other check is made. */
int tern_tcp_parse_trusted(const uint8_t *seg, size_t len, uint32_t src, uint32_t dst,
			   struct tern_tcp_seg *s);
/* Write a TCP header with h's ports, seq, ack, flags, win, urp and options (h->opts), checksum
 * field zero. buf needs 60 bytes. Returns the header length. */
size_t tern_tcp_build(uint8_t *buf, const struct tern_seg_info *h);

/* Serial-number arithmetic on sequence numbers (RFC 1982, RFC 9293 §3.4): modulo 2^32. */
static inline int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline int seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int seq_ge(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }
static inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
static inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }

/* Linux's tcp_in_window(): does [seq, end_seq) touch the window [s_win, e_win)? The test a
 * half-open connection and an orphaned FIN_WAIT_2 record apply. */
static inline int tcp_in_window(uint32_t seq, uint32_t end_seq, uint32_t s_win, uint32_t e_win)
{
	if (seq == s_win)
		return 1;
	if (seq_gt(end_seq, s_win) && seq_lt(seq, e_win))
		return 1;
	return seq == e_win && seq == end_seq;
}

#endif
