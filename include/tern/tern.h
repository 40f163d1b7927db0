/*
 * tern: a TCP/IPv4 stack (with UDP beside TCP) that runs in user space.
 *
 * The core is sans-IO and deterministic. A stack instance (struct tern_stack) owns its
 * connections, settings and a seeded random source. The caller hands it packets and the
 * current time; the stack hands packets out through a link (struct tern_link) and says when
 * its next timer is due. Nothing inside reads a clock, sleeps, spawns a thread or touches a
 * global, so any number of stacks live in one process and a run replays exactly from its seed.
 *
 * Conventions
 *   - Time is a uint64_t count of microseconds on the caller's clock (any origin, monotonic).
 *   - IPv4 addresses and ports are in host byte order in this API (TERN_IP4(10,0,0,1)).
 *   - Calls return >= 0 on success and a negative errno value on failure (-EAGAIN, ...).
 *   - Socket calls act at the stack's current time: the latest time given to
 *     tern_stack_input() or tern_stack_poll().
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_VERSION "0.1.0"

#define TERN_IP4(a, b, c, d) \
	(((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))
#define TERN_TIME_NEVER UINT64_MAX

struct tern_stack;

/* ------------------------------------------------------------------------------------------ */
/* Settings                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * Per-stack settings. Names follow Linux's sysctls (net.ipv4.tcp_*) without the prefix; the
 * defaults are Linux's. Durations are stored in milliseconds and the field name says so.
 * tern_settings_set() takes text ("syn_retries", "3"; "msl", "30s"; "rto_min", "200ms"), and
 * tern_settings_describe() lists every setting with its unit, range and meaning.
 * Where Linux allows a per-socket override, a socket option exists too (see TERN_TCP_*).
 */
struct tern_settings {
	/* Connection establishment */
	uint32_t syn_retries;        /* SYN retransmissions before connect() fails (5: 63 s) */
	uint32_t synack_retries;     /* SYN-ACK retransmissions before a half-open conn is dropped */
	uint32_t max_syn_backlog;    /* half-open connections per listener */
	uint32_t somaxconn;          /* cap on the backlog given to listen() */
	uint32_t abort_on_overflow;  /* full accept queue: 0 drop the third ACK, 1 answer RST */
	/* Retransmission (RFC 6298) */
	uint32_t rto_initial_ms;     /* 1000 */
	uint32_t rto_min_ms;         /* 200 */
	uint32_t rto_max_ms;         /* 120000 */
	uint32_t retries2;           /* data retransmissions before an established conn aborts */
	uint32_t orphan_retries;     /* FIN retransmissions once orphaned; 0 means 8 */
	/* Closing */
	uint32_t msl_ms;             /* maximum segment lifetime; TIME_WAIT lasts 2*MSL */
	uint32_t fin_timeout_ms;     /* orphaned FIN_WAIT_2 lifetime */
	uint32_t max_tw_buckets;     /* TIME_WAIT records kept at most; beyond, closed at once */
	uint32_t max_orphans;        /* orphaned connections kept at most; beyond, reset */
	/* Keepalive */
	uint32_t keepalive_time_ms;  /* idle time before the first probe (7200 s) */
	uint32_t keepalive_intvl_ms; /* gap between probes (75 s) */
	uint32_t keepalive_probes;   /* unanswered probes before abort (9) */
	/* Acknowledgments */
	uint32_t delack_min_ms;      /* 40 */
	uint32_t delack_max_ms;      /* 200 */
	uint32_t invalid_ratelimit_ms; /* min gap between ACKs sent for out-of-window segments */
	/* Options offered and accepted (RFC 7323, RFC 2018) */
	uint32_t timestamps;
	uint32_t sack;
	uint32_t window_scaling;
	uint32_t syncookies;
	uint32_t tw_reuse;
	/* Sizes */
	uint32_t mtu;                /* link MTU; advertised MSS = mtu - 40 */
	uint32_t rmem_default;       /* receive buffer per socket (SO_RCVBUF), bytes */
	uint32_t wmem_default;       /* send buffer per socket (SO_SNDBUF), bytes */
	uint32_t rmem_max;           /* largest SO_RCVBUF a socket may ask for */
	uint32_t wmem_max;           /* largest SO_SNDBUF a socket may ask for */
	uint32_t initial_cwnd;       /* segments (RFC 6928) */
	uint32_t congestion_control; /* module of new sockets: 0 reno (NewReno recovery) */
	/* Limits */
	uint32_t max_sockets;        /* descriptors a stack hands out */
	uint32_t max_connections;    /* control blocks (all states but TIME_WAIT) */
	uint32_t mem_max;            /* bytes of send/receive buffer a stack may hold in all */
	uint32_t port_range_lo;      /* ephemeral ports (ip_local_port_range), TCP and UDP */
	uint32_t port_range_hi;
	uint32_t ip_default_ttl;
	/* ICMP errors sent (net.ipv4.icmp_*): port unreachable answers UDP to a closed port */
	uint32_t icmp_ratelimit_ms;  /* per destination: ms of credit each message costs (1000);
				      * a bucket holds 6 messages' worth; 0: no per-destination limit */
	uint32_t icmp_ratemask;      /* types limited, bit (1 << type): 0x1818 (3, 4, 11, 12) */
	uint32_t icmp_msgs_per_sec;  /* the whole stack's limited messages per second (1000) */
	uint32_t icmp_msgs_burst;    /* ... and its burst (50) */
	uint64_t seed;               /* random source: ISN key, port selection, hash keys */
};

/* Fill with Linux's defaults. */
void tern_settings_default(struct tern_settings *s);

/* Set one setting by name from text. Durations accept "ms", "s", "us" suffixes; a bare
 * number is in the unit the setting's description gives. Returns 0, -ENOENT for an unknown
 * name, -EINVAL for a malformed or out-of-range value. */
int tern_settings_set(struct tern_settings *s, const char *name, const char *value);

/* Read a setting back as text in its natural unit. Returns the length or -ENOENT. */
int tern_settings_get(const struct tern_settings *s, const char *name, char *buf, size_t len);

struct tern_setting_desc {
	const char *name;
	/* The unit of a bare number: "ms", "s", "bytes", "count", "bool", "segments", "port",
	 * "number". Durations are stored in ms whatever their unit: min, max and def too. */
	const char *unit;
	uint64_t min, max, def;
	const char *doc;
};
/* The i-th setting's description, or NULL past the end. */
const struct tern_setting_desc *tern_settings_describe(unsigned i);

/* ------------------------------------------------------------------------------------------ */
/* Links                                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct tern_iovec {
	const void *base;
	size_t len;
};

/*
 * Where a stack's packets go. transmit() receives one complete IPv4 datagram as a gather
 * list (header, then payload pieces straight from the send buffer) and must copy what it
 * keeps before returning. Return 0, or a negative errno to report the packet dropped
 * (counted; TCP's retransmission recovers).
 *
 * flush (optional) lets a link send a burst of packets with one system call: with it,
 * transmit() may keep the payload pieces iov[1..] by reference (iov[0], the headers, it must
 * still copy: the stack reuses that buffer) and hand them to the device later, and must have
 * sent everything it kept when flush returns. The stack calls flush before it returns from
 * the call that transmitted (tern_stack_input, tern_stack_input_batch, tern_stack_poll, a
 * socket call), and before memory a kept piece points to can change or be freed.
 */
struct tern_link {
	int (*transmit)(void *ctx, const struct tern_iovec *iov, unsigned iovcnt, size_t total);
	void *ctx;
	unsigned flags;  /* TERN_LINK_*: what the link does for the stack */
	void (*flush)(void *ctx);
};

/* Checksum offload, as a NIC or Linux's loopback provides it. With CSUM_TX the link completes
 * the checksums of outgoing TCP segments and UDP datagrams: tern leaves the folded
 * pseudo-header sum in the field (Linux's CHECKSUM_PARTIAL, what a virtio-net header asks the
 * other side to finish; for UDP a result of 0 must go out as 0xffff, RFC 768). Segments tern
 * sends outside a connection (RST, ACKs of TIME_WAIT) and ICMP messages are always summed in
 * full. With CSUM_RX the link hands in only packets it verified (or that cannot be damaged,
 * such as an in-memory wire): tern does not verify TCP or UDP checksums. IPv4 header and ICMP
 * checksums are always done. */
#define TERN_LINK_CSUM_TX 0x1u
#define TERN_LINK_CSUM_RX 0x2u

/* ------------------------------------------------------------------------------------------ */
/* Stack                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Counters, in the spirit of Linux's SNMP MIBs. Every dropped packet is counted somewhere. */
struct tern_stats {
	uint64_t ip_in, ip_out;
	uint64_t ip_bad_header;     /* version, IHL, total length; TCP or ICMP from a source
				     * that is not one host (0.0.0.0, 224/4, 240/4) */
	uint64_t ip_bad_checksum;
	uint64_t ip_fragments;      /* dropped: fragments are not reassembled */
	uint64_t ip_not_ours;       /* destination is not one of the stack's addresses */
	uint64_t ip_bad_proto;      /* protocol tern does not serve */
	uint64_t icmp_in, icmp_out, icmp_bad, icmp_echo_replies;
	uint64_t tcp_in, tcp_out;
	uint64_t tcp_bad_header;    /* short header, data offset out of range */
	uint64_t tcp_bad_options;   /* option length zero, one, or past the header */
	uint64_t tcp_bad_checksum;
	uint64_t tcp_retrans;       /* segments retransmitted */
	uint64_t tcp_rst_out, tcp_rst_in;
	uint64_t tcp_no_port;       /* segments for no connection and no listener */
	uint64_t tcp_active_opens, tcp_passive_opens;
	uint64_t tcp_attempt_fails; /* connection attempts that failed */
	uint64_t tcp_estab_resets;  /* established connections reset */
	uint64_t tcp_timeouts;      /* connections aborted by a retransmission limit */
	uint64_t tcp_listen_overflows; /* accept queue full */
	uint64_t tcp_listen_drops;  /* SYNs or third ACKs dropped at a listener */
	uint64_t tcp_out_of_window; /* unacceptable segments (sequence check) */
	uint64_t tcp_ack_unsent;    /* ACKs of data never sent, discarded */
	uint64_t tcp_challenge_acks;
	uint64_t tcp_rcvbuf_drops;  /* data dropped for want of receive buffer */
	uint64_t tcp_tw_recycled;   /* TIME_WAIT records replaced by a new SYN */
	uint64_t tcp_tw_overflow;   /* connections closed without TIME_WAIT: max_tw_buckets */
	uint64_t tcp_orphan_overflow;
	uint64_t tcp_abort_on_data; /* data after close() answered with RST */
	uint64_t tcp_ofo_queued;    /* out-of-order segments kept for reassembly */
	uint64_t tcp_ofo_drops;     /* out-of-order segments refused: too many holes */
	uint64_t tcp_dupacks_in;    /* duplicate ACKs received (RFC 5681 §2) */
	uint64_t tcp_fast_retrans;  /* fast retransmits (third duplicate ACK) */
	uint64_t tcp_partial_acks;  /* NewReno partial ACKs, each a retransmission (RFC 6582) */
	uint64_t tcp_rtos;          /* retransmission timeouts */
	uint64_t tcp_delayed_acks;  /* ACKs sent by the delayed-ACK timer */
	uint64_t tcp_window_probes; /* persist-timer probes (zero window) */
	uint64_t tcp_keepalive_probes, tcp_keepalive_drops;
	/* UDP, as Linux's Udp: lines in /proc/net/snmp. Each datagram that reaches UDP is
	 * counted once in udp_in, udp_no_port or udp_in_errors. */
	uint64_t udp_in;            /* datagrams queued for a socket (InDatagrams) */
	uint64_t udp_out;           /* datagrams sent (OutDatagrams) */
	uint64_t udp_no_port;       /* datagrams for a port no socket takes (NoPorts) */
	uint64_t udp_in_errors;     /* datagrams dropped otherwise (InErrors): short header, bad
				     * length, bad checksum, full receive buffer */
	uint64_t udp_csum_errors;   /* ... of them, bad checksums (InCsumErrors) */
	uint64_t udp_rcvbuf_errors; /* ... of them, no room in SO_RCVBUF or mem_max (RcvbufErrors) */
	uint64_t udp_sndbuf_errors; /* datagrams the link refused with -ENOBUFS (SndbufErrors) */
	uint64_t icmp_port_unreach_out; /* port unreachable messages sent */
	uint64_t icmp_ratelimit_host;   /* ICMP errors held back by icmp_ratelimit (RateLimitHost) */
	uint64_t icmp_ratelimit_global; /* ... by icmp_msgs_per_sec and _burst (RateLimitGlobal) */
	uint64_t link_tx_errors;
	uint64_t mem_failures;      /* allocations refused: mem_max, max_connections or malloc */
};

/* Events a stack reports to a trace hook (struct tern_trace). */
enum tern_trace_kind {
	TERN_TRACE_SEND = 1, /* a TCP segment left the stack */
	TERN_TRACE_RECV,     /* a TCP segment passed the checks and entered TCP processing */
	TERN_TRACE_DISCARD,  /* a packet was dropped by the stack: reason says why */
	TERN_TRACE_STATE,    /* a connection changed state */
	TERN_TRACE_ERROR,    /* an error was posted for the application (errno in error) */
	TERN_TRACE_ICMP,     /* an ICMP message left or entered (UDP datagrams are not traced,
			      * only their discards) */
};

/* TCP header flags, bit values as on the wire (the 9th bit, AE, above). */
#define TERN_TH_FIN 0x01
#define TERN_TH_SYN 0x02
#define TERN_TH_RST 0x04
#define TERN_TH_PSH 0x08
#define TERN_TH_ACK 0x10
#define TERN_TH_URG 0x20
#define TERN_TH_ECE 0x40
#define TERN_TH_CWR 0x80
#define TERN_TH_AE 0x100

/* TCP options as parsed or built. has says which are present. */
#define TERN_OPT_MSS 0x01
#define TERN_OPT_WSCALE 0x02
#define TERN_OPT_SACK_PERM 0x04
#define TERN_OPT_TS 0x08
#define TERN_OPT_SACK 0x10
struct tern_tcp_opts {
	uint8_t has;
	uint8_t wscale;
	uint8_t nsack;
	uint16_t mss;
	uint32_t ts_val, ts_ecr;
	struct {
		uint32_t left, right;
	} sack[4];
};

/* A TCP segment's header fields, host byte order. */
struct tern_seg_info {
	uint32_t src, dst;     /* IPv4 addresses */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint16_t flags;        /* TERN_TH_* */
	uint16_t win;          /* as on the wire (unscaled) */
	uint16_t urp;
	uint32_t len;          /* payload bytes */
	struct tern_tcp_opts opts;
};

struct tern_trace {
	enum tern_trace_kind kind;
	uint64_t t_us;
	uint32_t conn;         /* connection id, unique per stack (0: none) */
	int fd;                /* descriptor the application holds, or -1 */
	union {
		struct tern_seg_info seg;          /* SEND, RECV, DISCARD when it is TCP */
		struct {
			int from, to;                  /* TERN_STATE_* */
			uint32_t laddr, raddr;
			uint16_t lport, rport;
		} state;
		int error;                         /* ERROR: positive errno */
		struct {
			uint8_t type, code;
			uint32_t src, dst;
			int out;                       /* 1 sent, 0 received */
		} icmp;
	} u;
	const char *reason;    /* DISCARD: why; others: NULL or a short note */
	uint32_t cwnd, ssthresh; /* SEND of a connection's segment: congestion state, bytes
				  * (ssthresh UINT32_MAX: not set yet); 0 for other segments */
};

typedef void (*tern_trace_fn)(void *user, const struct tern_trace *ev);

/* Create a stack. Settings are copied (NULL: defaults). now is the caller's current time. */
struct tern_stack *tern_stack_new(const struct tern_settings *settings, uint64_t now_us);

/* Free a stack and everything it owns, silently (no segments are sent). */
void tern_stack_free(struct tern_stack *st);

/* Where the stack's packets go. */
void tern_stack_set_link(struct tern_stack *st, const struct tern_link *link);

/* Addresses the stack owns. The first one added is the default source address. */
int tern_stack_add_addr(struct tern_stack *st, uint32_t addr);

/* Hand in one IPv4 datagram that arrived at the current time. The stack reads it during the
 * call only; it never keeps the pointer. Malformed datagrams are dropped and counted. */
void tern_stack_input(struct tern_stack *st, const void *pkt, size_t len, uint64_t now_us);

/* Hand in n datagrams that arrived together (a batch read from a NIC or a TUN device). The
 * ACKs and data their connections may send wait for the end of the batch and go once per
 * connection, as Linux acknowledges what GRO merged; ACKs due at once (duplicate ACKs for
 * out-of-order data) still go segment by segment. */
void tern_stack_input_batch(struct tern_stack *st, const struct tern_iovec *pkts, unsigned n,
			    uint64_t now_us);

/* Move the stack's clock to now and run every timer that is due. */
void tern_stack_poll(struct tern_stack *st, uint64_t now_us);

/* When the next timer is due (absolute, microseconds), or TERN_TIME_NEVER. Calling
 * tern_stack_poll() at that time (or later) runs it. */
uint64_t tern_stack_next_timer(const struct tern_stack *st);

/* The stack's current time. */
uint64_t tern_stack_now(const struct tern_stack *st);

const struct tern_settings *tern_stack_settings(const struct tern_stack *st);
const struct tern_stats *tern_stack_stats(const struct tern_stack *st);

/* Install a trace hook (NULL to remove). Called synchronously from inside the stack, so it
 * sees each event as it happens. The hook may read anything (socket info, counters) and may
 * send on other sockets, UDP or TCP; it must not close, abort, shut down or send on the
 * connection the event is about, nor call tern_stack_input, _input_batch, _poll or _free. */
void tern_stack_set_trace(struct tern_stack *st, tern_trace_fn fn, void *user);

/* ------------------------------------------------------------------------------------------ */
/* Sockets                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Connection states. The numbers are Linux's (TCP_ESTABLISHED = 1 ...). */
enum tern_state {
	TERN_STATE_ESTABLISHED = 1,
	TERN_STATE_SYN_SENT = 2,
	TERN_STATE_SYN_RCVD = 3,
	TERN_STATE_FIN_WAIT_1 = 4,
	TERN_STATE_FIN_WAIT_2 = 5,
	TERN_STATE_TIME_WAIT = 6,
	TERN_STATE_CLOSED = 7,
	TERN_STATE_CLOSE_WAIT = 8,
	TERN_STATE_LAST_ACK = 9,
	TERN_STATE_LISTEN = 10,
	TERN_STATE_CLOSING = 11,
};
#define TERN_STATE_MAX 12

/* "SYN_SENT", "FIN_WAIT_1", ... (RFC 9293 names, underscores); "?" for anything else. */
const char *tern_state_name(int state);
/* "ECONNREFUSED", ...; the errno's name for positive or negative errno values. */
const char *tern_errno_name(int err);

struct tern_sockaddr {
	uint32_t addr; /* 0: any */
	uint16_t port; /* 0: any / choose */
};

/* Socket types (Linux's numbers). */
#define TERN_SOCK_STREAM 1 /* TCP */
#define TERN_SOCK_DGRAM 2  /* UDP (RFC 768) */

/*
 * UDP sockets (TERN_SOCK_DGRAM) behave as Linux's do without IP_RECVERR:
 *   - tern_bind(): port 0 takes a free ephemeral port at random (RFC 6056 §3.3.1); a port
 *     held by another UDP socket whose address equals ours or either is 0.0.0.0 gives
 *     -EADDRINUSE unless both set TERN_SO_REUSEADDR (then the socket bound last receives).
 *     UDP and TCP ports are separate spaces. A second bind gives -EINVAL.
 *   - tern_connect() sets (or changes) the default peer at once and returns 0; the socket
 *     then takes datagrams from that peer only and tern_send() may be used. {0, 0} undoes
 *     it (as AF_UNSPEC does): the peer goes, and so do a local address and port that
 *     connect() or a send chose rather than bind(). An unbound socket is bound to an
 *     ephemeral port first by connect() or by its first send (-EAGAIN if none is free).
 *   - A datagram goes to the socket with the most specific match: bound address, then the
 *     connected peer's address and port.
 *   - Each tern_recv()/tern_recvfrom() returns one datagram. A shorter buffer gets its first
 *     len bytes and the rest is discarded; TERN_MSG_TRUNC makes the call return the
 *     datagram's real length. TERN_MSG_PEEK leaves it queued. Datagrams queue while the
 *     bytes queued (payload plus a 16-byte record each, on LP64) do not exceed SO_RCVBUF,
 *     so one datagram may overshoot it (Linux's rule); past that, or past the stack's
 *     mem_max, they are dropped and counted (udp_rcvbuf_errors). A receive finding an empty
 *     queue returns -EAGAIN.
 *   - A datagram must fit one IPv4 packet on the link: at most mtu - 28 bytes, else
 *     -EMSGSIZE (tern does not fragment, and drops fragments it receives). Sending to
 *     255.255.255.255 gives -EACCES (no SO_BROADCAST). A datagram leaves with DF set and
 *     its checksum (see TERN_LINK_CSUM_TX); one arriving with checksum 0 (none) is taken.
 *   - A datagram for a port no socket takes is answered with ICMP port unreachable, rate
 *     limited by the icmp_* settings (udp_no_port, icmp_port_unreach_out).
 *   - An ICMP port unreachable (or another hard error, RFC 1122 §3.2.2.1) quoting a datagram
 *     that a connected socket sent to its peer posts ECONNREFUSED (EHOSTUNREACH, ...) on it:
 *     the next send or receive call returns it once (so does TERN_SO_ERROR), and the socket
 *     shows TERN_EV_ERR until then. Unconnected sockets ignore ICMP errors.
 *   - Readiness: TERN_EV_IN while a datagram waits, TERN_EV_OUT always (nothing is held
 *     for sending: a datagram goes to the link within the call), TERN_EV_ERR while an error
 *     is pending.
 *   - tern_shutdown() records the directions (-ENOTCONN when not connected, as Linux, but
 *     recorded all the same): after TERN_SHUT_WR sends give -EPIPE; after TERN_SHUT_RD the
 *     socket shows TERN_EV_IN | TERN_EV_RDHUP and a receive finding no datagram returns 0
 *     (what a blocked Linux reader gets); both give TERN_EV_HUP. No packet is sent.
 *   - tern_listen(), tern_accept(), tern_sockatmark(), the zero-copy calls and
 *     tern_sock_info() return -EOPNOTSUPP. Options: TERN_SO_REUSEADDR, TERN_SO_RCVBUF,
 *     TERN_SO_SNDBUF (kept and reported; nothing waits in a send buffer), TERN_SO_ERROR;
 *     any other gives -ENOPROTOOPT.
 *   - tern_sock_state() says TERN_STATE_ESTABLISHED when connected, TERN_STATE_CLOSED
 *     otherwise. tern_close() (or tern_abort()) frees the socket and its queue at once.
 */

/* Create a socket of a type above. Returns a descriptor (>= 0). */
int tern_socket(struct tern_stack *st, int type);
int tern_bind(struct tern_stack *st, int fd, const struct tern_sockaddr *addr);
int tern_listen(struct tern_stack *st, int fd, int backlog);
/* Returns a new descriptor, or -EAGAIN when no connection is waiting. peer may be NULL. */
int tern_accept(struct tern_stack *st, int fd, struct tern_sockaddr *peer);
/* TCP: starts the handshake and returns -EINPROGRESS; completion shows as TERN_EV_OUT (and
 * TERN_EV_ERR with the error in TERN_SO_ERROR on failure); a broadcast or multicast address
 * gives -ENETUNREACH. UDP: sets the peer, returns 0. */
int tern_connect(struct tern_stack *st, int fd, const struct tern_sockaddr *addr);

#define TERN_MSG_OOB 0x01  /* send: the last byte is urgent (RFC 9293 §3.8.5); it stays inline.
			    * UDP: -EOPNOTSUPP */
#define TERN_MSG_PEEK 0x02
#define TERN_MSG_TRUNC 0x20    /* UDP receive: return the datagram's length, not the bytes
				* copied (Linux's MSG_TRUNC); TCP ignores it */
#define TERN_MSG_DONTWAIT 0x40 /* accepted for compatibility: every call is non-blocking */
#define TERN_MSG_NOSIGNAL 0x4000
/* TCP: returns bytes queued (may be fewer than len), -EAGAIN when the send buffer is full.
 * UDP: sends one datagram to the connected peer (-EDESTADDRREQ when there is none) and
 * returns len. */
long tern_send(struct tern_stack *st, int fd, const void *buf, size_t len, int flags);
/* TCP: returns bytes read, 0 at end of stream, -EAGAIN when nothing is ready. A read stops at
 * the urgent mark when bytes come before it (see tern_sockatmark). UDP: one datagram (see
 * above), -EAGAIN when none waits. */
long tern_recv(struct tern_stack *st, int fd, void *buf, size_t len, int flags);
/* UDP: one datagram to `to` (NULL: the connected peer, else -EDESTADDRREQ; address or port 0:
 * -EINVAL), whether connected or not. Returns len. TCP: tern_send(), `to` ignored. */
long tern_sendto(struct tern_stack *st, int fd, const void *buf, size_t len, int flags,
		 const struct tern_sockaddr *to);
/* UDP: tern_recv() that also says who sent the datagram (from may be NULL). TCP:
 * tern_recv(), with *from set to {0, 0}. */
long tern_recvfrom(struct tern_stack *st, int fd, void *buf, size_t len, int flags,
		   struct tern_sockaddr *from);

/* Urgent data is delivered inline, in order (what SO_OOBINLINE gives): this says whether the
 * next byte to read is the urgent one (SIOCATMARK). 1, 0, or a negative errno. */
int tern_sockatmark(struct tern_stack *st, int fd);

/* Zero-copy receive: the in-order bytes waiting in the receive buffer, as up to two pieces
 * (*n of them) valid until the next call on the socket. Returns their length, 0 at end of
 * stream, -EAGAIN when nothing is ready. tern_recv_consume() then releases len of them. */
long tern_recv_zc(struct tern_stack *st, int fd, struct tern_iovec iov[2], unsigned *n);
int tern_recv_consume(struct tern_stack *st, int fd, size_t len);

/* Zero-copy send: the free room of the send buffer, as up to two pieces to write into;
 * tern_send_commit() then queues the first len bytes written (flags: TERN_MSG_OOB). */
struct tern_wiovec {
	void *base;
	size_t len;
};
long tern_send_zc(struct tern_stack *st, int fd, struct tern_wiovec iov[2], unsigned *n);
int tern_send_commit(struct tern_stack *st, int fd, size_t len, int flags);

#define TERN_SHUT_RD 0
#define TERN_SHUT_WR 1
#define TERN_SHUT_RDWR 2
int tern_shutdown(struct tern_stack *st, int fd, int how);
/* Release the descriptor. The connection closes gracefully in the background (or with RST
 * when unread data remains or SO_LINGER is on with a zero timeout). */
int tern_close(struct tern_stack *st, int fd);
/* Reset the connection at once (RST) and release the descriptor. */
int tern_abort(struct tern_stack *st, int fd);

int tern_getsockname(struct tern_stack *st, int fd, struct tern_sockaddr *addr);
int tern_getpeername(struct tern_stack *st, int fd, struct tern_sockaddr *addr);

/* Socket options. Levels and names carry Linux's numbers so programs port easily. */
#define TERN_SOL_SOCKET 1
#define TERN_SO_REUSEADDR 2
#define TERN_SO_ERROR 4        /* int, read and cleared */
#define TERN_SO_SNDBUF 7
#define TERN_SO_RCVBUF 8
#define TERN_SO_KEEPALIVE 9
#define TERN_SO_LINGER 13      /* struct tern_linger */
#define TERN_IPPROTO_TCP 6
#define TERN_TCP_NODELAY 1
#define TERN_TCP_MAXSEG 2
#define TERN_TCP_CORK 3
#define TERN_TCP_KEEPIDLE 4    /* seconds */
#define TERN_TCP_KEEPINTVL 5   /* seconds */
#define TERN_TCP_KEEPCNT 6
#define TERN_TCP_SYNCNT 7      /* per-socket syn_retries */
#define TERN_TCP_LINGER2 8     /* per-socket fin_timeout, seconds */
#define TERN_TCP_INFO 11       /* struct tern_tcp_info */
#define TERN_TCP_CONGESTION 13 /* the module's name, a string ("reno") */
#define TERN_TCP_USER_TIMEOUT 18 /* ms */
#define TERN_TCP_STATE 0x7401  /* int, enum tern_state (tern's own) */

struct tern_linger {
	int l_onoff;
	int l_linger; /* seconds */
};

/* Like Linux's struct tcp_info, plus tern's own sequence-space fields at the end. */
struct tern_tcp_info {
	uint8_t state;
	uint8_t ca_state;
	uint8_t retransmits;  /* consecutive timeouts of the current segment */
	uint8_t probes;       /* keepalive or zero-window probes unanswered */
	uint8_t backoff;
	uint8_t options;      /* 1 timestamps, 2 sack, 4 window scale */
	uint8_t snd_wscale, rcv_wscale;
	uint32_t rto_us, ato_us;
	uint32_t snd_mss, rcv_mss;
	uint32_t unacked;     /* segments in flight */
	uint32_t retrans;
	uint32_t last_data_sent_ms, last_data_recv_ms, last_ack_recv_ms;
	uint32_t pmtu, rcv_ssthresh;
	uint32_t rtt_us, rttvar_us;
	uint32_t snd_ssthresh, snd_cwnd; /* cwnd in segments */
	uint32_t advmss;
	uint32_t total_retrans;
	uint64_t bytes_acked, bytes_received;
	uint32_t segs_out, segs_in;
	/* tern's own */
	uint32_t snd_una, snd_nxt, snd_wnd, iss;
	uint32_t rcv_nxt, rcv_wnd, irs;
	uint32_t snd_queue, rcv_queue; /* bytes waiting in the send / receive buffers */
};

int tern_setsockopt(struct tern_stack *st, int fd, int level, int name, const void *val,
		    size_t len);
/* *len is the buffer size in, the value's size out. */
int tern_getsockopt(struct tern_stack *st, int fd, int level, int name, void *val, size_t *len);

/* The connection's state (enum tern_state), or a negative errno. */
int tern_sock_state(struct tern_stack *st, int fd);
int tern_sock_info(struct tern_stack *st, int fd, struct tern_tcp_info *info);

/* ------------------------------------------------------------------------------------------ */
/* Readiness                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Readiness bits, with epoll's values. */
#define TERN_EV_IN 0x001    /* data to read, end of stream, or a connection to accept */
#define TERN_EV_PRI 0x002   /* urgent data has arrived and is not yet read past */
#define TERN_EV_OUT 0x004   /* connected and room in the send buffer */
#define TERN_EV_ERR 0x008   /* an error is pending (TERN_SO_ERROR) */
#define TERN_EV_HUP 0x010   /* both directions are finished, or the connection is reset */
#define TERN_EV_RDHUP 0x2000 /* the peer closed its sending side */

/* Current readiness of a descriptor (a mask of TERN_EV_*), or a negative errno. */
int tern_sock_events(struct tern_stack *st, int fd);

struct tern_event {
	int fd;
	uint32_t events; /* readiness at the time of the call */
};

/* Descriptors whose readiness may have changed since the last call (each at most once, in
 * the order they changed), with their current readiness. Returns the number filled in. */
int tern_stack_events(struct tern_stack *st, struct tern_event *out, int max);

/* ------------------------------------------------------------------------------------------ */
/* Listing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

struct tern_conn_info {
	uint32_t id;
	int fd;               /* -1: orphaned, waiting in an accept queue, or TIME_WAIT */
	int state;
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t snd_queue, rcv_queue;
	uint32_t srtt_us;
};

/* Call fn for every listener, connection and TIME_WAIT record (TCP only: UDP sockets are
 * not listed). Returns how many. */
size_t tern_stack_foreach(struct tern_stack *st,
			  void (*fn)(void *user, const struct tern_conn_info *c), void *user);

/* Memory the stack holds now, in bytes: control blocks, TIME_WAIT records, UDP sockets,
 * buffers, queued datagrams, tables. */
size_t tern_stack_memory(const struct tern_stack *st);

#ifdef __cplusplus
}
#endif
#endif
