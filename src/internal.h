/*
 * The stack's internal structures: the transmission control block (RFC 9293 §3.3.1), the
 * TIME_WAIT record, the UDP socket, and the stack instance that owns them. Shared by every
 * file in src/.
 */
#ifndef TERN_INTERNAL_H
#define TERN_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "tern/tern.h"
#include "wire.h"
#include "timer_wheel.h"

#define TERN_MAX_ADDRS 8
#define TERN_DEFAULT_MSS 536        /* RFC 9293 §3.7.1: assumed when no MSS option arrives */
#define TERN_MIN_SND_MSS 48         /* smallest peer MSS honoured (Linux tcp_min_snd_mss) */
#define TERN_MAX_WINDOW 65535u      /* unscaled window field (window scaling comes later) */
#define ICMP_RL_BUCKETS 64          /* per-destination ICMP rate buckets (shared on collision) */
#define UDP_HLEN 8

/* ---- random source and keyed hashes ---- */

struct tern_rng {
	uint64_t s[4]; /* xoshiro256** */
};
void rng_seed(struct tern_rng *r, uint64_t seed);
uint64_t rng_next(struct tern_rng *r);
/* SipHash-2-4 (Aumasson & Bernstein) with a 128-bit key. */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t len);

/* ---- byte ring: a send or receive buffer, allocated only while it holds data ---- */

/*
 * A receive ring also holds out-of-order data in place, at its distance from RCV.NXT, with
 * the ranges it covers listed here (absolute sequence numbers, sorted, disjoint). Data that
 * fills the hole before the first range joins it without another copy. At most RING_OOO
 * ranges: a segment that would need one more is dropped (and counted).
 */
#define RING_OOO 8
struct ring {
	uint32_t cap, head, len;
	uint8_t nooo;             /* out-of-order ranges held */
	uint8_t ooo_fin;          /* a FIN arrived out of order at ooo_fin_seq */
	uint16_t pad_;
	uint32_t ooo_fin_seq;
	struct {
		uint32_t left, right;
	} ooo[RING_OOO];
	uint8_t data[];
};

/* ---- connection table entries ---- */

enum conn_kind { CK_TCB = 1, CK_TW = 2, CK_UDP = 3 };

/* The head of every entry in the 4-tuple table (a TCB or a TIME_WAIT record), of every UDP
 * socket, and so of whatever a descriptor names: kind tells which. */
struct conn_hdr {
	struct conn_hdr *hnext;
	uint32_t laddr, raddr;  /* host order */
	uint16_t lport, rport;
	uint8_t kind;           /* enum conn_kind */
	uint8_t state;          /* enum tern_state */
	uint8_t flags;          /* TIME_WAIT records: TWF_*; TCBs: the congestion control module */
	uint8_t spare;          /* TCBs: quick ACKs left (Linux's icsk_ack.quick) */
};

/*
 * A connection that reached TIME_WAIT (or an orphaned FIN_WAIT_2, kept the way Linux keeps
 * it) shrinks to this record: enough to re-acknowledge a retransmitted FIN, answer or accept
 * a new SYN for the 4-tuple (RFC 9293 §3.6.1, RFC 6191), and expire. 64 bytes on LP64.
 */
#define TWF_REUSE 0x01          /* the socket had SO_REUSEADDR */
struct tern_tw {
	struct conn_hdr h;      /* h.state: TIME_WAIT, or FIN_WAIT_2 for an orphan */
	struct tw_node tn;      /* tn.user: the window we advertise in its ACKs */
	uint32_t snd_nxt, rcv_nxt;
	uint32_t ts_recent;
	uint16_t ts_recent_stamp; /* seconds, modulo 2^16: a record lives minutes, not hours */
	uint16_t last_oow_ack;    /* tick of the last out-of-window ACK, modulo 2^16 */
};

/* Timer kinds multiplexed on one wheel node per TCB (Linux keeps three; one node suffices:
 * it fires at the earliest armed deadline and the handler re-arms the rest). The keepalive
 * deadline is not stored: it follows from the last segment received and the probes sent. */
enum tcb_timer {
	T_RTX = 0,     /* retransmission (RFC 6298) incl. SYN, SYN-ACK, FIN; or persist */
	T_DACK,        /* delayed ACK */
	T_KEEP,        /* keepalive */
	T_COUNT
};

/* TCB flags. */
#define TF_ACKNOW      0x00000001u /* send an ACK when this event is done */
#define TF_DACK        0x00000002u /* an ACK is owed (delayed) */
#define TF_SHUT_WR     0x00000004u /* the application will send no more: FIN follows the data */
#define TF_SHUT_RD     0x00000008u /* the application will read no more */
#define TF_FIN_RCVD    0x00000010u /* the peer's FIN is in: end of stream after queued data */
#define TF_ORPHAN      0x00000020u /* no descriptor and no listener: finishing on its own */
#define TF_PASSIVE     0x00000040u /* opened by a listener (RFC 9293: "from a passive OPEN") */
#define TF_ACCEPTQ     0x00000080u /* in its listener's accept queue, not yet accepted */
#define TF_REUSEADDR   0x00000100u
#define TF_BOUND       0x00000200u /* bound by bind() or listen(), not by connect() */
#define TF_HASHED      0x00000400u /* in the 4-tuple table */
#define TF_NODELAY     0x00000800u
#define TF_CORK        0x00001000u
#define TF_KEEPALIVE   0x00002000u
#define TF_LINGER      0x00004000u /* SO_LINGER on (time in xo) */
#define TF_EVQ         0x00008000u /* queued in the stack's readiness list */
#define TF_FIN_SENT    0x00010000u /* our FIN has been sent: snd_max counts it */
#define TF_PINGPONG    0x00020000u /* interactive: delay the ACK of a FIN (Linux pingpong) */
#define TF_RTT_VALID   0x00040000u /* rtt_seq/rtt_start time a segment (Karn's rule) */
#define TF_SYN_RTX     0x00080000u /* the SYN or SYN-ACK was retransmitted */
#define TF_CONNECTING  0x00100000u /* connect() in progress: report its outcome */
#define TF_INBOUND     0x00200000u /* a bound socket is in its port's bind bucket */
#define TF_EOF_SEEN    0x00400000u /* recv() has reported end of stream */
#define TF_SYN_ACKED   0x00800000u /* our SYN is acknowledged: the send queue starts at snd_una */
#define TF_USED        0x01000000u /* connect() was called or it came from accept() */
#define TF_RECOVERY    0x02000000u /* in NewReno fast recovery (RFC 6582) */
#define TF_PERSIST     0x04000000u /* the retransmission timer is the persist timer */
#define TF_URG_SEEN    0x08000000u /* an urgent mark lies ahead in the receive stream */
#define TF_URG_SEND    0x10000000u /* urgent data lies ahead in the send stream */
#define TF_BATCHQ      0x20000000u /* waits for the end of an input batch */

/* Per-socket settings and rarely used state, allocated only when a socket needs them (most
 * never do). 0: the stack's default. */
struct tcb_opts {
	uint32_t keepidle_ms, keepintvl_ms, keepcnt;
	uint32_t syn_retries;
	int32_t linger2_ms;     /* TCP_LINGER2; <0: reset instead of FIN_WAIT_2 */
	uint32_t user_timeout_ms;
	uint32_t linger_s;      /* SO_LINGER time */
	uint32_t maxseg;        /* TCP_MAXSEG */
	uint32_t sndbuf, rcvbuf;/* SO_SNDBUF, SO_RCVBUF */
	uint32_t snd_up;        /* SND.UP: just past the last urgent byte sent (Linux, BSD) */
	uint32_t rcv_up;        /* the urgent byte received (RCV.UP - 1 in BSD's reading) */
	uint32_t probes_tstamp; /* tick of the first zero-window probe (for the user timeout) */
	bool probing;           /* probes_tstamp is set: the window has stayed shut since */
};

struct tern_tcb {
	struct conn_hdr h;      /* tuple and state; in the 4-tuple or listener table */
	struct tw_node tn;      /* the TCB's one timer; tn.user: delayed-ACK timeout (ato), ms */
	int32_t fd;             /* -1 when the application holds no descriptor */
	uint32_t tf;            /* TF_* */
	uint8_t timers;         /* bit (1 << T_*): armed */
	uint8_t err;            /* error posted for the application (positive errno), 0: none */
	uint8_t retransmits;    /* consecutive retransmission timeouts */
	uint8_t backoff;        /* exponent applied to the RTO */
	uint8_t probes;         /* keepalive probes unanswered */
	uint8_t dupacks;
	uint8_t snd_wscale, rcv_wscale;
	union {
		struct {
			/* Send sequence space, RFC 9293 §3.3.1. snd_max (BSD) is the highest
			 * sequence number sent; snd_nxt falls back to snd_una on a timeout. */
			uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1;
			uint32_t max_snd_wnd; /* MAX.SND.WND, RFC 5961 §5.2 */
			uint32_t snd_recover; /* "recover" of RFC 6582: snd_max when recovery began */
			/* Receive sequence space. rcv_wup is rcv_nxt when the window was last
			 * advertised, so rcv_wup + rcv_wnd is the right edge we promised. */
			uint32_t irs, rcv_nxt, rcv_wnd, rcv_wup;
		};
		struct {
			/* A listener's queues. */
			struct tern_tcb *acc_head, *acc_tail;
			uint32_t backlog, acc_len, syn_len;
		};
	};
	uint16_t mss;           /* effective send MSS: min(peer's MSS, ours) */
	uint16_t advmss;        /* the MSS we advertise */
	/* RFC 6298 estimator, in microseconds; srtt_us == 0 means no sample yet. */
	uint32_t srtt_us, rttvar_us;
	uint32_t rto_ms;
	uint32_t rtt_seq, rtt_start; /* the timed segment's end and its send tick */
	uint32_t retrans_stamp; /* tick the oldest unacknowledged segment was first sent */
	uint32_t t_exp[T_COUNT];/* each timer's deadline when armed (ticks) */
	uint32_t cwnd, ssthresh;/* bytes */
	uint32_t ca_acked;      /* congestion avoidance: bytes acked towards the next MSS (RFC 3465) */
	uint32_t snd_sml;       /* end of the last small segment sent (Minshall's Nagle) */
	uint32_t lsndtime;      /* tick of the last data sent (cwnd restart after idle) */
	uint32_t last_rcv;      /* tick of the last segment received (keepalive idle time) */
	uint16_t last_oow_ack;  /* tick (mod 2^16) of the last ACK for an out-of-window segment */
	uint16_t rcv_mss;       /* the peer's segment size as seen (Linux's icsk_ack.rcv_mss) */
	uint32_t total_retrans;
	struct ring *sndq, *rcvq;
	struct tern_tcb *parent;/* passive open: the listener, until accepted */
	struct tern_tcb *qnext; /* listener's accept queue */
	struct tern_tcb *bnext; /* port's bind bucket */
	struct tcb_opts *xo;    /* per-socket settings, NULL: the stack's */
	uint32_t segs_in, segs_out;
	uint64_t bytes_acked, bytes_received; /* RFC 4898 / tcp_info, 64-bit as Linux's */
};

/* ---- UDP (RFC 768) ---- */

/* A datagram waiting in a socket's receive queue: its sender and its payload, copied once
 * from the packet. */
struct udp_dgram {
	struct udp_dgram *next;
	uint32_t src;
	uint16_t sport;
	uint16_t len;
	uint8_t data[];
};

/* UDP socket flags. BOUND_ADDR and BOUND_PORT are Linux's SOCK_BINDADDR_LOCK and
 * SOCK_BINDPORT_LOCK: what bind() named survives a disconnect, what connect() or an autobind
 * chose does not. */
#define UF_REUSEADDR   0x01
#define UF_BOUND_ADDR  0x02 /* bind() named the local address */
#define UF_BOUND_PORT  0x04 /* bind() named the local port */
#define UF_HASHED      0x08 /* in the port table (it has a local port) */
#define UF_EVQ         0x10 /* queued in the stack's readiness list */
#define UF_SHUT_RD     0x20
#define UF_SHUT_WR     0x40

/*
 * A UDP socket. h.state is ESTABLISHED while connect() has set a peer (h.raddr, h.rport)
 * and CLOSED otherwise, Linux's TCP_ESTABLISHED and TCP_CLOSE for datagram sockets; h.hnext
 * chains it in the port table. 64 bytes on LP64.
 */
struct tern_udp {
	struct conn_hdr h;
	int32_t fd;
	uint32_t rq_bytes;        /* charged to SO_RCVBUF: each queued datagram's record + payload */
	struct udp_dgram *rq_head, *rq_tail;
	uint32_t rcvbuf, sndbuf;  /* SO_RCVBUF, SO_SNDBUF; 0: the stack's default */
	uint16_t uf;              /* UF_* */
	uint8_t err;              /* pending error (positive errno) from an ICMP message, 0: none */
};

/* A port's owners, for bind() conflicts and ephemeral port choice (RFC 6056). */
struct bind_bucket {
	struct bind_bucket *next;
	struct tern_tcb *owners;  /* TCBs bound to the port (listeners, bound, connected) */
	uint32_t n_explicit;      /* owners bound by bind()/listen() or accepted from a listener */
	uint32_t n_tw;            /* TIME_WAIT records on the port */
	uint32_t n_tw_noreuse;    /* ... whose socket lacked SO_REUSEADDR */
	uint16_t port;
};

/* ---- the stack ---- */

struct tern_stack {
	struct tern_settings set;
	struct tern_link link;
	uint64_t now_us;
	uint32_t now;              /* ticks (ms) */
	struct tern_rng rng;
	uint8_t isn_key[16], port_key[16];
	uint64_t hash_key[2];

	uint32_t addrs[TERN_MAX_ADDRS];
	unsigned naddrs;

	/* 4-tuple table: TCBs in synchronized and SYN states, and TIME_WAIT records. */
	struct conn_hdr **ctab;
	uint32_t cmask, ccount;
	struct conn_hdr *clast;    /* the entry the last lookup found (most segments repeat it) */
	/* Listeners by local port. */
	struct tern_tcb **ltab;
	uint32_t lmask;
	/* Bind buckets by port. */
	struct bind_bucket **btab;
	uint32_t bmask, bcount;
	/* RFC 6056 Algorithm 4 perturbation table. */
	uint16_t port_perturb[256];

	/* UDP sockets with a local port, hashed by it (allocated at the first bind). */
	struct tern_udp **utab;
	uint32_t umask, ucount;

	/* Descriptors: fds[i] is a TCB or a UDP socket (h.kind), a bitmap marks the ones in use
	 * (lowest free first). */
	struct conn_hdr **fds;
	uint64_t *fd_used;
	uint32_t fd_cap, fd_hint;

	struct tw_wheel wheel;

	/* Connections to finish at the end of an input batch (tern_stack_input_batch). */
	struct tern_tcb **batchq;
	uint32_t nbatch, capbatch;
	bool batching;
	/* Bursts (stack_tx_begin/end) nest; while one is open a link with flush() may hold
	 * what it was given, and link_held says that it might. */
	unsigned tx_depth;
	bool link_held;

	/* Descriptors whose readiness changed, for tern_stack_events(). */
	int *evq;
	uint32_t evq_len, evq_cap;

	struct tern_stats stats;
	tern_trace_fn trace;
	void *trace_user;

	uint32_t n_tcb, n_tw, n_orphans, n_udp;
	size_t mem_bufs;           /* bytes held by send/receive rings and queued datagrams */

	/* ICMP error rate limits (Linux's icmp_ratelimit): a token bucket per destination,
	 * hashed into ICMP_RL_BUCKETS shared buckets; and the stack-wide icmp_msgs_per_sec
	 * credit, which may go negative as Linux's does. */
	struct {
		uint32_t tokens, last; /* ms of credit; tick of the last refill */
	} icmp_rl[ICMP_RL_BUCKETS];
	int32_t icmp_credit;
	uint32_t icmp_stamp;
	struct ring *ring_cache[2];/* spare rings: [0] a send ring (any size up to
				    * RING_CACHE_MAX), [1] one of rmem_default bytes */

	uint16_t ip_id;            /* IPv4 identification for datagrams that may fragment */
	uint32_t seg_gap_ms;       /* input scratch: time since the connection's previous segment */
	uint8_t txbuf[20 + 60];    /* IPv4 + TCP header scratch for output */
};

/* ---- time ---- */
static inline uint32_t ms_to_ticks(uint32_t ms) { return ms; }
static inline int tick_before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int tick_after_eq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

/* ---- util.c ---- */
struct ring *ring_get(struct tern_stack *st, uint32_t cap);
void ring_put(struct tern_stack *st, struct ring *r);
uint32_t ring_write(struct ring *r, const void *src, uint32_t n);
uint32_t ring_read(struct ring *r, void *dst, uint32_t n, int consume);
void ring_consume(struct ring *r, uint32_t n);
/* Copy n bytes to off bytes past the head (off + n <= cap), leaving len alone. */
void ring_write_at(struct ring *r, uint32_t off, const void *src, uint32_t n);
/* Reassembly (tcp_reass.c): place len bytes of sequence number seq (>= rcv_nxt, inside the
 * ring) and return how far RCV.NXT moves: the bytes now in order, out-of-order data they
 * reach included. Data that would need one range too many is refused (*refused = true). */
uint32_t reass_insert(struct ring *r, uint32_t rcv_nxt, uint32_t seq, const uint8_t *data,
		      uint32_t len, bool *refused);
static inline bool ring_idle(const struct ring *r)
{
	return r->len == 0 && r->nooo == 0 && !r->ooo_fin;
}
/* Up to two pieces covering n bytes starting off bytes into the ring. Returns pieces used. */
unsigned ring_peek(const struct ring *r, uint32_t off, uint32_t n, struct tern_iovec iov[2]);
static inline uint32_t ring_len(const struct ring *r) { return r ? r->len : 0; }

/* ---- stack.c ---- */
bool stack_is_local(const struct tern_stack *st, uint32_t addr);
uint32_t stack_source_addr(const struct tern_stack *st, uint32_t dst);
/* Hand one datagram to the link: IPv4 header built here, TCP/ICMP header and payload given. */
int ip_output(struct tern_stack *st, uint32_t src, uint32_t dst, uint8_t proto,
	      const struct tern_iovec *iov, unsigned n, size_t len);
/* A burst: what is transmitted inside may stay with the link (struct tern_link's flush)
 * until the outermost one ends. */
static inline void stack_tx_begin(struct tern_stack *st) { st->tx_depth++; }
void stack_link_flush(struct tern_stack *st);
static inline void stack_tx_end(struct tern_stack *st)
{
	if (--st->tx_depth == 0 && st->link_held)
		stack_link_flush(st);
}
void stack_trace(struct tern_stack *st, struct tern_trace *ev);
static inline bool stack_tracing(const struct tern_stack *st) { return st->trace != NULL; }
void stack_notify(struct tern_stack *st, struct tern_tcb *tcb);
void stack_unnotify(struct tern_stack *st, struct tern_tcb *tcb);
void udp_notify(struct tern_stack *st, struct tern_udp *u);
void udp_unnotify(struct tern_stack *st, struct tern_udp *u);
void icmp_input(struct tern_stack *st, const struct tern_ip4 *ip);
/* Answer the datagram ip with an ICMP error (RFC 792), quoting its header and first 8 data
 * bytes, unless RFC 1122 §3.2.2 forbids an answer or the rate limits hold it back. Returns
 * true when the message went out. */
bool icmp_send_error(struct tern_stack *st, const struct tern_ip4 *ip, uint8_t type,
		     uint8_t code);

/* ---- tables.c ---- */
struct conn_hdr *conn_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport,
			     uint32_t raddr, uint16_t rport);
void conn_insert(struct tern_stack *st, struct conn_hdr *h);
void conn_remove(struct tern_stack *st, struct conn_hdr *h);
struct tern_tcb *listener_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport);
void listener_insert(struct tern_stack *st, struct tern_tcb *l);
void listener_remove(struct tern_stack *st, struct tern_tcb *l);
struct bind_bucket *bind_find(struct tern_stack *st, uint16_t port);
/* Can tcb bind to (addr, port)? 0 or -EADDRINUSE. */
int bind_check(struct tern_stack *st, const struct tern_tcb *tcb, uint32_t addr, uint16_t port);
int bind_add(struct tern_stack *st, struct tern_tcb *tcb, uint16_t port);
void bind_del(struct tern_stack *st, struct tern_tcb *tcb);
void bind_tw_add(struct tern_stack *st, uint16_t port, bool reuse);
void bind_tw_del(struct tern_stack *st, uint16_t port, bool reuse);
/* RFC 6056 Algorithm 4: a local port for a connection to (raddr, rport), or 0. */
uint16_t port_choose(struct tern_stack *st, uint32_t laddr, uint32_t raddr, uint16_t rport);
int fd_alloc(struct tern_stack *st, struct conn_hdr *sock);
void fd_free(struct tern_stack *st, int fd);
struct conn_hdr *fd_get(struct tern_stack *st, int fd);
/* UDP port table. The best socket for a datagram (laddr:lport from raddr:rport), scored as
 * Linux's compute_score does: a matching bound address, peer address and peer port each
 * count; a mismatch rules the socket out; on a tie the socket bound last wins. */
struct tern_udp *udp_lookup(struct tern_stack *st, uint32_t laddr, uint16_t lport,
			    uint32_t raddr, uint16_t rport);
int udp_hash_insert(struct tern_stack *st, struct tern_udp *u);
void udp_hash_remove(struct tern_stack *st, struct tern_udp *u);
/* Can u bind to (addr, port)? 0 or -EADDRINUSE (Linux's udp_lib_lport_inuse). */
int udp_bind_check(struct tern_stack *st, const struct tern_udp *u, uint32_t addr, uint16_t port);
/* An ephemeral port no UDP socket holds (RFC 6056 §3.3.1), or 0. */
uint16_t udp_port_choose(struct tern_stack *st);

/* ---- tcp_subr.c: TCB life cycle ---- */
struct tern_tcb *tcb_new(struct tern_stack *st);
void tcb_set_state(struct tern_stack *st, struct tern_tcb *tcb, int state);
void trace_state(struct tern_stack *st, const struct conn_hdr *h, int from, int to, int fd);
/* The connection is over (RFC 9293 "enter CLOSED, delete the TCB"): timers stop, buffers go,
 * the tuple leaves the table; the TCB itself is freed unless a descriptor still holds it. */
void tcb_done(struct tern_stack *st, struct tern_tcb *tcb);
/* Post err for the application and end the connection. */
void tcb_drop(struct tern_stack *st, struct tern_tcb *tcb, int err);
void tcb_free(struct tern_stack *st, struct tern_tcb *tcb);
/* Enter TIME_WAIT (or keep an orphaned FIN_WAIT_2) as a small record; frees the TCB's
 * connection state. timeout_ms 0: 2*MSL. */
void tcb_time_wait(struct tern_stack *st, struct tern_tcb *tcb, int state, uint32_t timeout_ms);
uint32_t tcb_isn(struct tern_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
		 uint16_t rport);
/* Effective per-socket values. */
uint32_t tcb_keepidle(const struct tern_stack *st, const struct tern_tcb *tcb);
uint32_t tcb_keepintvl(const struct tern_stack *st, const struct tern_tcb *tcb);
uint32_t tcb_keepcnt(const struct tern_stack *st, const struct tern_tcb *tcb);
uint32_t tcb_syn_retries(const struct tern_stack *st, const struct tern_tcb *tcb);
/*
 * The send buffer: SO_SNDBUF when the application set it; otherwise, as Linux's
 * tcp_sndbuf_expand() grows it, room for twice the larger of the congestion window and the
 * initial window (ten segments) — enough to keep the window full through fast recovery and
 * while the application refills — between wmem_default and wmem_max. Linux counts each
 * segment's whole memory and tern payload bytes, so the rule gives the same segment count.
 * Derived rather than stored: after a loss it shrinks with cwnd, but the data already queued
 * stays and still exceeds what the smaller window can send. Before the handshake the MSS is
 * the 536-byte default, so the rule gives less than wmem_default.
 */
static inline uint32_t tcb_sndbuf(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	if (tcb->xo && tcb->xo->sndbuf)
		return tcb->xo->sndbuf;
	uint32_t iw = 10u * tcb->mss;
	uint64_t w = 2 * (uint64_t)(tcb->cwnd > iw ? tcb->cwnd : iw);
	if (w > st->set.wmem_max)
		w = st->set.wmem_max;
	return w > st->set.wmem_default ? (uint32_t)w : st->set.wmem_default;
}
static inline uint32_t tcb_rcvbuf(const struct tern_stack *st, const struct tern_tcb *tcb)
{
	return tcb->xo && tcb->xo->rcvbuf ? tcb->xo->rcvbuf : st->set.rmem_default;
}
static inline uint32_t udp_rcvbuf(const struct tern_stack *st, const struct tern_udp *u)
{
	return u->rcvbuf ? u->rcvbuf : st->set.rmem_default;
}
int32_t tcb_fin_timeout(const struct tern_stack *st, const struct tern_tcb *tcb);
struct tcb_opts *tcb_opts(struct tcb_opts **xo);
/* The send MSS from the peer's SYN options (RFC 9293 §3.7.1). */
void tcb_set_peer_mss(struct tern_tcb *tcb, const struct tern_tcp_opts *o);
/* Bytes the application has queued but the peer has not acknowledged, SYN/FIN excluded. */
static inline uint32_t tcb_snd_queued(const struct tern_tcb *tcb) { return ring_len(tcb->sndq); }
/* Sequence number just past the last byte the application queued (FIN goes here). */
uint32_t tcb_snd_end(const struct tern_tcb *tcb);
uint32_t tcb_events(const struct tern_stack *st, const struct tern_tcb *tcb);

/* ---- tcp_timer.c ---- */
void tcb_timer_set(struct tern_stack *st, struct tern_tcb *tcb, enum tcb_timer k, uint32_t ms);
void tcb_timer_clear(struct tern_stack *st, struct tern_tcb *tcb, enum tcb_timer k);
void tcb_timer_clear_all(struct tern_stack *st, struct tern_tcb *tcb);
static inline bool tcb_timer_armed(const struct tern_tcb *tcb, enum tcb_timer k)
{
	return (tcb->timers >> k) & 1;
}
void timer_fire(void *ctx, struct tw_node *n);
void tcb_rto_reset(struct tern_stack *st, struct tern_tcb *tcb);
void tcb_rtt_sample(struct tern_stack *st, struct tern_tcb *tcb, uint32_t rtt_us);
void tcb_keepalive_reset(struct tern_stack *st, struct tern_tcb *tcb);
void tcb_keepidle_changed(struct tern_stack *st, struct tern_tcb *tcb);

/* ---- tcp_output.c ---- */
/* Send what the state, windows and queues allow; an owed ACK goes out if nothing else does. */
void tcp_output(struct tern_stack *st, struct tern_tcb *tcb);
void tcp_send_ack(struct tern_stack *st, struct tern_tcb *tcb);
void tcp_send_syn(struct tern_stack *st, struct tern_tcb *tcb);
/* Retransmit the oldest unacknowledged segment (SYN, SYN-ACK, data or FIN). */
void tcp_retransmit(struct tern_stack *st, struct tern_tcb *tcb);
/* RST|ACK from the current state (abort, RFC 9293 §3.10.5; unread data at close). */
void tcp_send_active_reset(struct tern_stack *st, struct tern_tcb *tcb);
/* A segment for a tuple with no TCB (or a TIME_WAIT record); RFC 9293 §3.10.7.1. */
void tcp_send_reset_for(struct tern_stack *st, const struct tern_tcp_seg *seg);
void tcp_send_raw(struct tern_stack *st, uint32_t src, uint32_t dst, uint16_t sport,
		  uint16_t dport, uint32_t seq, uint32_t ack, uint16_t flags, uint16_t win,
		  const struct tern_tcp_opts *opts, int fd);
/* The window to advertise now, never moving the right edge left (RFC 9293 §3.8.6.2.2), and
 * recorded as advertised (rcv_wnd, rcv_wup). */
uint32_t tcp_select_window(struct tern_stack *st, struct tern_tcb *tcb);
/* The window tcp_select_window() would choose, without recording it. */
uint32_t tcp_window_now(const struct tern_stack *st, const struct tern_tcb *tcb);
/* Resend the oldest unacknowledged segment (fast retransmit, NewReno partial ACK). */
void tcp_retransmit_head(struct tern_stack *st, struct tern_tcb *tcb);
/* A probe: an ACK with sequence number SND.UNA - 1 and no data, which the peer must answer
 * with its current ACK and window (keepalive; zero-window probe as Linux sends it). */
void tcp_send_probe(struct tern_stack *st, struct tern_tcb *tcb);
/* The persist timer fired: send what the window allows, or a probe. */
void tcp_persist_probe(struct tern_stack *st, struct tern_tcb *tcb);
void tcp_persist_arm(struct tern_stack *st, struct tern_tcb *tcb);
/* The delayed-ACK timeout to use now, ms. */
uint32_t tcb_ato(const struct tern_stack *st, const struct tern_tcb *tcb);
void tcp_trace_seg(struct tern_stack *st, enum tern_trace_kind kind, const struct tern_seg_info *h,
		   int fd, const char *reason);

/* ---- tcp_input.c ---- */
void tcp_input(struct tern_stack *st, const struct tern_ip4 *ip);
/* What follows a segment: the ACK decision and output (deferred to here in a batch). */
void tcb_after_input(struct tern_stack *st, struct tern_tcb *tcb);
void stack_batch_add(struct tern_stack *st, struct tern_tcb *tcb);
void stack_batch_remove(struct tern_stack *st, struct tern_tcb *tcb);

/* ---- tcp_timewait.c ---- */
/* Returns true when the segment was consumed; false means: a new SYN that may open a new
 * connection through a listener, with *isn the ISN to use (RFC 6191 / Linux tw_isn). The
 * caller then ends the record (tw_kill) if a listener takes the SYN, or else calls
 * tw_send_ack. */
bool tw_input(struct tern_stack *st, struct tern_tw *tw, const struct tern_tcp_seg *seg,
	      uint32_t *isn);
void tw_send_ack(struct tern_stack *st, struct tern_tw *tw);
void tw_expire(struct tern_stack *st, struct tern_tw *tw);
void tw_kill(struct tern_stack *st, struct tern_tw *tw);

/* ---- listener (tcp_listen.c) ---- */
void listen_input(struct tern_stack *st, struct tern_tcb *l, const struct tern_tcp_seg *seg,
		  uint32_t isn);
/* A passive child finished its handshake: queue it for accept(), or refuse it when full. */
bool listen_child_established(struct tern_stack *st, struct tern_tcb *child);
/* Is there room in the accept queue for one more? */
bool listen_has_room(const struct tern_stack *st, const struct tern_tcb *child);
void listen_child_gone(struct tern_stack *st, struct tern_tcb *child);
void listen_close(struct tern_stack *st, struct tern_tcb *l);

/* ---- udp.c ---- */
int udp_socket(struct tern_stack *st);
void udp_input(struct tern_stack *st, const struct tern_ip4 *ip);
/* An ICMP error about a datagram sent from laddr:lport to raddr:rport: err (a positive
 * errno) for the socket that sent it; fatal says whether RFC 1122 §3.2.2.1 calls it a hard
 * error, the only kind a socket hears of without IP_RECVERR. */
void udp_err(struct tern_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
	     uint16_t rport, int err, bool fatal);
int udp_bind(struct tern_stack *st, struct tern_udp *u, const struct tern_sockaddr *addr);
int udp_connect(struct tern_stack *st, struct tern_udp *u, const struct tern_sockaddr *addr);
long udp_sendto(struct tern_stack *st, struct tern_udp *u, const void *buf, size_t len,
		int flags, const struct tern_sockaddr *to);
long udp_recvfrom(struct tern_stack *st, struct tern_udp *u, void *buf, size_t len, int flags,
		  struct tern_sockaddr *from);
int udp_shutdown(struct tern_stack *st, struct tern_udp *u, int how);
/* Release the descriptor and the socket. */
void udp_close(struct tern_stack *st, struct tern_udp *u);
/* Free the socket and its queue (the descriptor is the caller's business). */
void udp_free(struct tern_stack *st, struct tern_udp *u);
uint32_t udp_events(const struct tern_udp *u);
static inline int udp_take_error(struct tern_udp *u)
{
	int e = u->err;
	u->err = 0;
	return e;
}

#define TRACE_STATE_EVENT 1

#define TERN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TERN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#endif
