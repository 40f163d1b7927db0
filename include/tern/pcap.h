/* pcap files (the classic libpcap format) that tcpdump and Wireshark read. Packets are raw
 * IPv4 datagrams (LINKTYPE_RAW), stamped with the caller's clock. */
#ifndef TERN_PCAP_H
#define TERN_PCAP_H

#include "tern/tern.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tern_pcap;

/* Create (truncate) path and write the file header. NULL on failure (errno tells why). */
struct tern_pcap *tern_pcap_open(const char *path);
/* Append one packet given as a gather list of total bytes. Returns 0 or -errno. */
int tern_pcap_write(struct tern_pcap *p, uint64_t t_us, const struct tern_iovec *iov,
		    unsigned n, size_t total);
/* Push buffered packets to the file, so that a reader sees them now. */
int tern_pcap_flush(struct tern_pcap *p);
int tern_pcap_close(struct tern_pcap *p);

#ifdef __cplusplus
}
#endif
#endif
