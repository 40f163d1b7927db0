/* The settings table: one row per tunable, with Linux's name, unit, range and default. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

enum unit { U_COUNT, U_BOOL, U_MS, U_S, U_BYTES, U_SEG, U_U64 };

struct setting {
	struct tern_setting_desc d;
	size_t off;
	enum unit unit;
};

#define F(field) offsetof(struct tern_settings, field)
#define ROW(nm, field, u, ustr, lo, hi, dflt, doc) \
	{ { nm, ustr, lo, hi, dflt, doc }, F(field), u }

/* Durations are stored in ms; min/max/def of U_MS and U_S rows are in ms as well. */
static const struct setting table[] = {
	ROW("syn_retries", syn_retries, U_COUNT, "count", 1, 127, 5,
	    "SYN retransmissions before connect() fails with ETIMEDOUT (5: SYNs at 0,1,3,7,15,31 s, failure at 63 s)"),
	ROW("synack_retries", synack_retries, U_COUNT, "count", 1, 255, 5,
	    "SYN-ACK retransmissions before a half-open connection is dropped"),
	ROW("max_syn_backlog", max_syn_backlog, U_COUNT, "count", 1, 1u << 24, 1024,
	    "half-open (SYN_RCVD) connections a listener keeps"),
	ROW("somaxconn", somaxconn, U_COUNT, "count", 0, 1u << 24, 4096,
	    "upper bound on the accept-queue length given to listen()"),
	ROW("abort_on_overflow", abort_on_overflow, U_BOOL, "bool", 0, 1, 0,
	    "when the accept queue is full: 0 drop the third ACK (the client retransmits), 1 answer RST"),
	ROW("rto_initial", rto_initial_ms, U_MS, "ms", 1, 600000, 1000,
	    "retransmission timeout before any RTT sample (RFC 6298 §2.1)"),
	ROW("rto_min", rto_min_ms, U_MS, "ms", 1, 600000, 200,
	    "lower bound of the retransmission timeout"),
	ROW("rto_max", rto_max_ms, U_MS, "ms", 1, 3600000, 120000,
	    "upper bound of the retransmission timeout after backoff"),
	ROW("retries2", retries2, U_COUNT, "count", 1, 255, 15,
	    "retransmissions before an established connection is aborted (time-based, as Linux: 924.6 s with rto_min 200 ms)"),
	ROW("orphan_retries", orphan_retries, U_COUNT, "count", 0, 255, 0,
	    "retransmissions for a connection the application has closed; 0 means 8"),
	ROW("msl", msl_ms, U_S, "s", 1, 86400000, 30000,
	    "maximum segment lifetime; TIME_WAIT lasts twice this"),
	ROW("fin_timeout", fin_timeout_ms, U_S, "s", 1, 86400000, 60000,
	    "how long an orphaned FIN_WAIT_2 connection waits for the peer's FIN"),
	ROW("max_tw_buckets", max_tw_buckets, U_COUNT, "count", 0, 1u << 30, 262144,
	    "TIME_WAIT records kept at most; past this a closing connection skips TIME_WAIT"),
	ROW("max_orphans", max_orphans, U_COUNT, "count", 0, 1u << 30, 65536,
	    "orphaned connections (closed by the application, still finishing) kept at most"),
	ROW("keepalive_time", keepalive_time_ms, U_S, "s", 1, 32767000, 7200000,
	    "idle time before the first keepalive probe"),
	ROW("keepalive_intvl", keepalive_intvl_ms, U_S, "s", 1, 32767000, 75000,
	    "time between keepalive probes"),
	ROW("keepalive_probes", keepalive_probes, U_COUNT, "count", 1, 127, 9,
	    "unanswered keepalive probes before the connection is aborted"),
	ROW("delack_min", delack_min_ms, U_MS, "ms", 1, 10000, 40,
	    "shortest delayed-ACK timeout"),
	ROW("delack_max", delack_max_ms, U_MS, "ms", 1, 10000, 200,
	    "longest delayed-ACK timeout"),
	ROW("invalid_ratelimit", invalid_ratelimit_ms, U_MS, "ms", 0, 60000, 500,
	    "minimum time between ACKs sent in reply to out-of-window segments (RFC 5961 §10)"),
	ROW("timestamps", timestamps, U_BOOL, "bool", 0, 1, 1,
	    "offer and accept RFC 7323 timestamps (parsed today; negotiated in a later release)"),
	ROW("sack", sack, U_BOOL, "bool", 0, 1, 1,
	    "offer and accept selective acknowledgments, RFC 2018 (parsed today; negotiated later)"),
	ROW("window_scaling", window_scaling, U_BOOL, "bool", 0, 1, 1,
	    "offer and accept window scaling, RFC 7323 (parsed today; negotiated later)"),
	ROW("syncookies", syncookies, U_COUNT, "count", 0, 2, 1,
	    "SYN cookies when the SYN queue overflows (a later release)"),
	ROW("tw_reuse", tw_reuse, U_COUNT, "count", 0, 2, 2,
	    "reuse a TIME_WAIT tuple for a new outgoing connection when timestamps prove it safe (a later release)"),
	ROW("mtu", mtu, U_BYTES, "bytes", 576, 65535, 1500,
	    "link MTU; the MSS advertised is this minus 40"),
	ROW("rmem_default", rmem_default, U_BYTES, "bytes", 256, 1u << 30, 131072,
	    "receive buffer of a new socket (SO_RCVBUF)"),
	ROW("wmem_default", wmem_default, U_BYTES, "bytes", 256, 1u << 30, 16384,
	    "send buffer of a new socket (SO_SNDBUF); unless the application sets one, it grows to twice max(cwnd, 10 segments), as Linux's tcp_sndbuf_expand"),
	ROW("rmem_max", rmem_max, U_BYTES, "bytes", 256, 1u << 30, 6291456,
	    "largest receive buffer a socket may ask for"),
	ROW("wmem_max", wmem_max, U_BYTES, "bytes", 256, 1u << 30, 4194304,
	    "largest send buffer a socket may ask for, and the most it grows to by itself"),
	ROW("initial_cwnd", initial_cwnd, U_SEG, "segments", 1, 1000, 10,
	    "initial congestion window (RFC 6928)"),
	ROW("congestion_control", congestion_control, U_COUNT, "number", 0, 0, 0,
	    "congestion control of new sockets: 0 reno (RFC 5681 with NewReno recovery); CUBIC comes later"),
	ROW("max_sockets", max_sockets, U_COUNT, "count", 1, 1u << 30, 1048576,
	    "descriptors a stack hands out"),
	ROW("max_connections", max_connections, U_COUNT, "count", 1, 1u << 30, 1048576,
	    "control blocks in every state but TIME_WAIT"),
	ROW("mem_max", mem_max, U_BYTES, "bytes", 0, 0xffffffffu, 536870912,
	    "bytes of send and receive buffers a stack may hold in all (0: no limit)"),
	ROW("port_range_lo", port_range_lo, U_COUNT, "port", 1, 65535, 32768,
	    "lowest ephemeral port (ip_local_port_range)"),
	ROW("port_range_hi", port_range_hi, U_COUNT, "port", 1, 65535, 60999,
	    "highest ephemeral port"),
	ROW("ip_default_ttl", ip_default_ttl, U_COUNT, "count", 1, 255, 64,
	    "TTL of outgoing datagrams"),
	ROW("icmp_ratelimit", icmp_ratelimit_ms, U_MS, "ms", 0, 86400000, 1000,
	    "ICMP errors of the types in icmp_ratemask to one destination: a token bucket refilled 1 ms a ms, each message costing this much, holding 6 (0: no per-destination limit)"),
	ROW("icmp_ratemask", icmp_ratemask, U_COUNT, "number", 0, 0xffffffffu, 0x1818,
	    "ICMP types rate-limited, bit (1 << type): 0x1818 is destination unreachable, source quench, time exceeded, parameter problem"),
	ROW("icmp_msgs_per_sec", icmp_msgs_per_sec, U_COUNT, "count", 0, 1u << 30, 1000,
	    "rate-limited ICMP errors the whole stack sends per second (a token bucket refilled at most every 20 ms)"),
	ROW("icmp_msgs_burst", icmp_msgs_burst, U_COUNT, "count", 0, 1u << 30, 50,
	    "the burst of that stack-wide bucket"),
	ROW("seed", seed, U_U64, "number", 0, UINT64_MAX, 0,
	    "seed of the stack's random source (ISN key, port choice, hash keys); give real deployments a random one"),
};

#define NSETTINGS (sizeof(table) / sizeof(table[0]))

static uint64_t get_raw(const struct tern_settings *s, const struct setting *r)
{
	const char *p = (const char *)s + r->off;
	if (r->unit == U_U64) {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		return v;
	}
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void put_raw(struct tern_settings *s, const struct setting *r, uint64_t v)
{
	char *p = (char *)s + r->off;
	if (r->unit == U_U64) {
		memcpy(p, &v, sizeof(v));
	} else {
		uint32_t w = (uint32_t)v;
		memcpy(p, &w, sizeof(w));
	}
}

void tern_settings_default(struct tern_settings *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < NSETTINGS; i++)
		put_raw(s, &table[i], table[i].d.def);
}

static const struct setting *find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(table[i].d.name, name) == 0)
			return &table[i];
	return NULL;
}

/* Durations: "1500", "1.5s", "200ms", "250us"; a bare number is in the row's unit. */
static int parse_value(const struct setting *r, const char *text, uint64_t *out)
{
	char *end;
	if (!text || !*text)
		return -EINVAL;
	if (r->unit == U_MS || r->unit == U_S) {
		double v = strtod(text, &end);
		if (end == text || !(v >= 0) || v > 1e18) /* !(v >= 0) also refuses NaN */
			return -EINVAL;
		double scale = r->unit == U_S ? 1000.0 : 1.0;
		if (*end == 0)
			;
		else if (strcmp(end, "ms") == 0)
			scale = 1.0;
		else if (strcmp(end, "s") == 0)
			scale = 1000.0;
		else if (strcmp(end, "us") == 0)
			scale = 0.001;
		else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
			scale = 60000.0;
		else
			return -EINVAL;
		double ms = v * scale + 0.5;
		if (ms > 18446744073709551615.0)
			return -EINVAL;
		*out = (uint64_t)ms;
		return 0;
	}
	if (r->unit == U_BOOL) {
		if (!strcmp(text, "on") || !strcmp(text, "true") || !strcmp(text, "yes")) {
			*out = 1;
			return 0;
		}
		if (!strcmp(text, "off") || !strcmp(text, "false") || !strcmp(text, "no")) {
			*out = 0;
			return 0;
		}
	}
	if (text[0] == '-' || text[0] == '+' || text[0] == ' ')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 0);
	if (errno == ERANGE)
		return -EINVAL;
	uint64_t mult = 1;
	if (r->unit == U_BYTES && *end) {
		if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB"))
			mult = 1024;
		else if (!strcmp(end, "m") || !strcmp(end, "M") || !strcmp(end, "MiB"))
			mult = 1024 * 1024;
		else
			return -EINVAL;
	} else if (end == text || *end) {
		return -EINVAL;
	}
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

int tern_settings_set(struct tern_settings *s, const char *name, const char *value)
{
	const struct setting *r = find(name);
	if (!r)
		return -ENOENT;
	uint64_t v;
	if (parse_value(r, value, &v) < 0)
		return -EINVAL;
	if (v < r->d.min || v > r->d.max)
		return -EINVAL;
	put_raw(s, r, v);
	return 0;
}

int tern_settings_get(const struct tern_settings *s, const char *name, char *buf, size_t len)
{
	const struct setting *r = find(name);
	if (!r)
		return -ENOENT;
	uint64_t v = get_raw(s, r);
	int n;
	if (r->unit == U_S && v % 1000 == 0)
		n = snprintf(buf, len, "%llus", (unsigned long long)(v / 1000));
	else if (r->unit == U_MS || r->unit == U_S)
		n = snprintf(buf, len, "%llums", (unsigned long long)v);
	else
		n = snprintf(buf, len, "%llu", (unsigned long long)v);
	return n;
}

const struct tern_setting_desc *tern_settings_describe(unsigned i)
{
	return i < NSETTINGS ? &table[i].d : NULL;
}
