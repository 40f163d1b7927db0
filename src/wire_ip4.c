/* IPv4 header codec (RFC 791 §3.1). */
#include "wire.h"

#define IP4_MIN_HLEN 20
#define IP4_FLAG_DF 0x4000
#define IP4_FLAG_MF 0x2000
#define IP4_FRAG_OFFSET 0x1fff

int tern_ip4_parse(const uint8_t *pkt, size_t len, struct tern_ip4 *ip)
{
	size_t hlen, total_len;
	uint16_t frag;

	if (len < IP4_MIN_HLEN)
		return TERN_IP4_SHORT;
	if ((pkt[0] >> 4) != 4)
		return TERN_IP4_VERSION;
	hlen = (size_t)(pkt[0] & 0x0f) * 4;
	if (hlen < IP4_MIN_HLEN)
		return TERN_IP4_IHL;
	if (len < hlen)
		return TERN_IP4_SHORT;
	/* Bytes beyond total_len are the link layer's padding (an Ethernet frame has at least 46
	 * bytes of payload), so the buffer may be longer than the datagram but never shorter. */
	total_len = rd16(pkt + 2);
	if (total_len < hlen || total_len > len)
		return TERN_IP4_TOTLEN;
	/* The checksum covers the header only, options included (RFC 791 §3.1); over a correct
	 * header, its own checksum field included, the sum is all ones and folds to 0. */
	uint16_t bad = hlen == IP4_MIN_HLEN ? tern_csum_hdr20(pkt)
					     : tern_csum_fold(tern_csum_add(0, pkt, hlen, 0));
	if (bad != 0)
		return TERN_IP4_CSUM;
	frag = rd16(pkt + 6);
	/* tern does not reassemble: a datagram is whole only when it is its own first and last
	 * fragment (offset 0, MF clear). DF and the reserved bit do not matter here. */
	if (frag & (IP4_FLAG_MF | IP4_FRAG_OFFSET))
		return TERN_IP4_FRAG;

	ip->tos = pkt[1];
	ip->total_len = (uint16_t)total_len;
	ip->id = rd16(pkt + 4);
	ip->frag = frag;
	ip->ttl = pkt[8];
	ip->proto = pkt[9];
	ip->src = rd32(pkt + 12);
	ip->dst = rd32(pkt + 16);
	ip->hlen = (uint8_t)hlen;
	ip->payload = pkt + hlen;
	ip->payload_len = (uint16_t)(total_len - hlen);
	return TERN_IP4_OK;
}

void tern_ip4_build(uint8_t hdr[20], uint32_t src, uint32_t dst, uint8_t proto, uint8_t ttl,
		    uint16_t id, int df, uint16_t payload_len)
{
	uint16_t csum;

	hdr[0] = 0x45; /* version 4, IHL 5: no options */
	hdr[1] = 0;
	wr16(hdr + 2, (uint16_t)(IP4_MIN_HLEN + payload_len));
	wr16(hdr + 4, id);
	wr16(hdr + 6, df ? IP4_FLAG_DF : 0);
	hdr[8] = ttl;
	hdr[9] = proto;
	wr16(hdr + 10, 0);
	wr32(hdr + 12, src);
	wr32(hdr + 16, dst);
	csum = tern_csum_hdr20(hdr);
	memcpy(hdr + 10, &csum, sizeof(csum));
}
