/* A pcap writer: the 24-byte file header, then a 16-byte record header before each packet
 * (https://wiki.wireshark.org/Development/LibpcapFileFormat), written in host byte order with
 * the magic number that tells readers which order that is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tern/pcap.h"

#define PCAP_MAGIC 0xa1b2c3d4u
#define LINKTYPE_RAW 101u
#define PCAP_SNAPLEN 65535u

struct tern_pcap {
	FILE *f;
};

static int put32(FILE *f, uint32_t v) { return fwrite(&v, 4, 1, f) == 1 ? 0 : -1; }
static int put16(FILE *f, uint16_t v) { return fwrite(&v, 2, 1, f) == 1 ? 0 : -1; }

struct tern_pcap *tern_pcap_open(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return NULL;
	int bad = put32(f, PCAP_MAGIC) | put16(f, 2) | put16(f, 4) | put32(f, 0) | put32(f, 0) |
		  put32(f, PCAP_SNAPLEN) | put32(f, LINKTYPE_RAW);
	struct tern_pcap *p = bad ? NULL : malloc(sizeof(*p));
	if (!p) {
		fclose(f);
		return NULL;
	}
	p->f = f;
	return p;
}

int tern_pcap_write(struct tern_pcap *p, uint64_t t_us, const struct tern_iovec *iov,
		    unsigned n, size_t total)
{
	if (!p)
		return -EINVAL;
	uint32_t caplen = total > PCAP_SNAPLEN ? PCAP_SNAPLEN : (uint32_t)total;
	if (put32(p->f, (uint32_t)(t_us / 1000000)) || put32(p->f, (uint32_t)(t_us % 1000000)) ||
	    put32(p->f, caplen) || put32(p->f, (uint32_t)total))
		return -EIO;
	size_t left = caplen;
	for (unsigned i = 0; i < n && left; i++) {
		size_t k = iov[i].len < left ? iov[i].len : left;
		if (k && fwrite(iov[i].base, 1, k, p->f) != k)
			return -EIO;
		left -= k;
	}
	return 0;
}

int tern_pcap_flush(struct tern_pcap *p)
{
	return p && fflush(p->f) == 0 ? 0 : -EIO;
}

int tern_pcap_close(struct tern_pcap *p)
{
	if (!p)
		return 0;
	int rc = fclose(p->f) == 0 ? 0 : -EIO;
	free(p);
	return rc;
}
