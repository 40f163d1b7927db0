/*
 * A raw-peer test harness: one tern stack (10.0.0.1) whose link copies every outgoing IPv4
 * datagram into a FIFO, and a scripted remote peer (10.0.0.2) that writes segments byte by
 * byte with the codec in src/wire.h and hands them to tern_stack_input().
 *
 * Time is virtual. The stack is created at PEER_T0; peer_advance_to() runs every timer that
 * falls due on the way, each at its own deadline, so a captured segment carries the exact
 * time the stack sent it (peer->last_t after a pop).
 *
 * One connection is "under test" at a time: its ports (lport on the stack, rport on the
 * peer), the stack's ISN (iss, read from its SYN or SYN-ACK), the peer's ISN (irs, chosen by
 * the test or left at PEER_IRS) and the two running sequence numbers the peer keeps:
 *   snd_nxt  the peer's next sequence number     == the stack's RCV.NXT
 *   rcv_nxt  what the peer acknowledges           == the stack's SND.NXT
 * The state helpers (peer_open_passive() ...) keep these up to date; peer_inject() does not
 * touch them, so tests say exactly what they send.
 *
 * Expectation helpers compare every field and report mismatches against the caller's line:
 *   PEER_EXPECT(p, TERN_TH_ACK, p->rcv_nxt, p->snd_nxt, PEER_STACK_WIN, 0);
 *   PEER_EXPECT_NONE(p);
 * Any expected field may be PEER_ANY to leave it unchecked.
 */
#ifndef TERN_TEST_PEER_H
#define TERN_TEST_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tern/tern.h"
#include "wire.h"

#define PEER_LOCAL TERN_IP4(10, 0, 0, 1)  /* the stack under test */
#define PEER_REMOTE TERN_IP4(10, 0, 0, 2) /* the scripted peer */
#define PEER_SERVER_PORT 80               /* listener port; also the port connect() targets */
#define PEER_CLIENT_PORT 40000            /* the peer's port in a passive open */
#define PEER_MSS 1460                     /* MSS the peer offers; also the stack's advmss */
#define PEER_WIN 65535                    /* window the peer advertises by default */
#define PEER_STACK_WIN 64240              /* window the stack advertises (128 KiB buffer) */
#define PEER_IRS 1000000000u              /* default peer ISN */
#define PEER_T0 ((uint64_t)1000000)               /* virtual time when the stack is created, us */
#define PEER_MS ((uint64_t)1000)                 /* one millisecond in us */
#define PEER_S ((uint64_t)1000000)              /* one second in us */
#define PEER_ANY (-1LL)                   /* an expected field that is not checked */
#define PEER_NONE 0                       /* peer_conn_state(): no such connection */

/* A datagram the stack transmitted. */
struct peer_pkt {
	uint8_t *buf;
	size_t len;
	uint64_t t_us; /* the stack's clock when it sent it */
};

/* A state change reported through the trace hook. */
struct peer_trans {
	int from, to;
	uint16_t lport, rport;
	uint64_t t_us;
};

#define PEER_MAX_TRANS 256

/* How a state helper ends the application's sending side. */
enum peer_how {
	PEER_SHUT_WR = 1, /* shutdown(SHUT_WR): the application keeps its descriptor */
	PEER_SHUT_RDWR,   /* shutdown(SHUT_RDWR): keeps it, but has shut its reading side */
	PEER_CLOSE,       /* close(): the connection is orphaned, p->fd becomes -1 */
};

struct peer {
	struct tern_stack *st;
	uint64_t now;              /* virtual time, us */

	/* Captured datagrams, oldest first. */
	struct peer_pkt *q;
	size_t qhead, qlen, qcap;
	uint8_t *last;             /* the datagram last popped (last_seg.data points into it) */
	uint64_t last_t;           /* when it was sent */
	struct tern_tcp_seg last_seg;

	/* State changes seen since peer_new() (or peer_clear_trans()). */
	struct peer_trans trans[PEER_MAX_TRANS];
	size_t ntrans;
	int last_error;            /* last TERN_TRACE_ERROR errno, 0 if none */

	/* The connection under test. */
	int lfd;                   /* listener descriptor, -1 if none */
	int fd;                    /* the connection's descriptor, -1 if none (or orphaned) */
	uint16_t lport, rport;     /* the stack's port and the peer's port */
	uint32_t iss;              /* the stack's ISN */
	uint32_t irs;              /* the peer's ISN */
	uint32_t snd_nxt;          /* peer's SND.NXT == stack's RCV.NXT */
	uint32_t rcv_nxt;          /* peer's RCV.NXT == stack's SND.NXT */
	uint16_t win;              /* window the peer advertises */
	uint16_t stack_win;        /* window the helpers expect from the stack (PEER_STACK_WIN) */
	uint16_t mss;              /* MSS option the peer puts on its SYNs (0: none) */
	bool active;               /* the stack opened the connection (connect()) */
};

/* ---- life cycle ---- */

/* A stack at PEER_T0 with address PEER_LOCAL. settings NULL: defaults; seed replaces
 * settings->seed. Never returns NULL (fails the test instead). */
struct peer *peer_new(const struct tern_settings *settings, uint64_t seed);
void peer_free(struct peer *p);

/* ---- time ---- */

/* Run every timer due up to t_us (each at its own deadline), then set the clock to t_us. */
void peer_advance_to(struct peer *p, uint64_t t_us);
void peer_advance(struct peer *p, uint64_t dt_us);
/* Run timers in order until one of them makes the stack transmit (the clock stops at that
 * timer's time) or until t_us. Returns true when a segment is waiting. */
bool peer_run_timers_until(struct peer *p, uint64_t t_us);

/* ---- injection ---- */

/* A TCP segment from PEER_REMOTE:rport to PEER_LOCAL:lport at the current time. opts may be
 * NULL (no options). */
void peer_inject(struct peer *p, uint16_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		 const void *data, size_t len, const struct tern_tcp_opts *opts);
/* The same with explicit addresses and ports. */
void peer_inject_from(struct peer *p, uint32_t src, uint16_t sport, uint32_t dst,
		      uint16_t dport, uint16_t flags, uint32_t seq, uint32_t ack, uint16_t win,
		      const void *data, size_t len, const struct tern_tcp_opts *opts);
/* Build the datagram peer_inject() would send into out (cap bytes; 20 + 60 + len always
 * suffice) without sending it, e.g. to corrupt it for peer_inject_raw(). Returns its length. */
size_t peer_build(const struct peer *p, uint8_t *out, size_t cap, uint16_t flags, uint32_t seq,
		  uint32_t ack, uint16_t win, const void *data, size_t len,
		  const struct tern_tcp_opts *opts);
/* Bytes as they are: a whole IPv4 datagram. */
void peer_inject_raw(struct peer *p, const void *bytes, size_t len);
/* Options with just an MSS (mss 0: an MSS option carrying 0). */
struct tern_tcp_opts peer_mss_opt(uint16_t mss);

/* ---- capture ---- */

/* Segments waiting. */
size_t peer_pending(const struct peer *p);
/* Take the next captured datagram and parse it (IPv4 then TCP). Returns false when none is
 * waiting. A datagram that does not parse, or is not TCP from PEER_LOCAL to PEER_REMOTE,
 * ends the test. out->data stays valid until the next pop. */
bool peer_pop(struct peer *p, struct tern_tcp_seg *out);
/* Drop everything captured so far. */
void peer_discard(struct peer *p);

bool peer_expect_(struct peer *p, const char *file, int line, struct tern_tcp_seg *out,
		  long long flags, long long seq, long long ack, long long win, long long len);
bool peer_expect_none_(struct peer *p, const char *file, int line);
/* Pop the next segment and check its flags, seq, ack, window and payload length exactly
 * (and that it belongs to the connection under test: ports lport -> rport). */
#define PEER_EXPECT(p, flags, seq, ack, win, len) \
	peer_expect_((p), __FILE__, __LINE__, NULL, (flags), (seq), (ack), (win), (len))
/* The same, keeping the parsed segment in *out (for options, data, p->last_t). */
#define PEER_EXPECT_SEG(p, out, flags, seq, ack, win, len) \
	peer_expect_((p), __FILE__, __LINE__, (out), (flags), (seq), (ack), (win), (len))
/* Nothing was transmitted. */
#define PEER_EXPECT_NONE(p) peer_expect_none_((p), __FILE__, __LINE__)

/* ---- UDP and raw capture ---- */

/* A whole IPv4 + UDP datagram from src:sport to dst:dport into out (cap bytes; 28 + len
 * suffice): IPv4 header with ID 0 and DF, UDP length 8 + len, checksum computed (or 0 when
 * csum is false). Returns its length. */
size_t peer_build_udp(uint8_t *out, size_t cap, uint32_t src, uint16_t sport, uint32_t dst,
		      uint16_t dport, const void *data, size_t len, bool csum);
/* A UDP datagram from PEER_REMOTE:sport to PEER_LOCAL:dport at the current time. */
void peer_inject_udp(struct peer *p, uint16_t sport, uint16_t dport, const void *data,
		     size_t len);
/* Take the next captured datagram as it is, whatever its protocol (nothing is checked).
 * Returns false when none is waiting; the bytes stay valid until the next pop. */
bool peer_pop_raw(struct peer *p, const uint8_t **pkt, size_t *len);

/* "SYN|ACK" etc. into buf. */
const char *peer_flags_str(uint16_t flags, char *buf, size_t len);

/* ---- connection inspection ---- */

/* State of the tuple (PEER_LOCAL:lport, PEER_REMOTE:rport) among the stack's connections and
 * TIME_WAIT records (tern_stack_foreach), or PEER_NONE. Covers orphans and records that have
 * no descriptor. */
int peer_conn_state(struct peer *p);
int peer_conn_state_of(struct peer *p, uint16_t lport, uint16_t rport);
/* Connections and records for that tuple (listeners excluded). */
size_t peer_conn_count_of(struct peer *p, uint16_t lport, uint16_t rport);
/* Every connection and record the stack holds, listeners excluded. */
size_t peer_conn_total(struct peer *p);
/* SO_ERROR of fd (read and cleared), or a negative errno from getsockopt. */
int peer_so_error(struct peer *p, int fd);
/* Whether the connection under test went from -> to (either may be -1: any). */
bool peer_saw_trans(const struct peer *p, int from, int to);
void peer_clear_trans(struct peer *p);

/* ---- getting into a state ---- */

/* A listener on PEER_SERVER_PORT (p->lfd). */
void peer_listen(struct peer *p, int backlog);
/* Passive open up to SYN_RCVD: listener (if none yet), the peer's SYN from rport with MSS
 * p->mss, the SYN-ACK captured and checked; iss recorded. */
void peer_to_syn_rcvd_passive(struct peer *p);
/* Passive open to ESTABLISHED: ... then the third ACK and accept() (p->fd). */
void peer_open_passive(struct peer *p);
/* connect() to PEER_REMOTE:80 and the SYN captured; iss and lport recorded. */
void peer_to_syn_sent(struct peer *p);
/* Active open to ESTABLISHED: SYN, the peer's SYN-ACK, the stack's ACK. */
void peer_open_active(struct peer *p);
/* Simultaneous open: after connect() the peer sends a bare SYN; the SYN-ACK is captured. */
void peer_to_syn_rcvd_simultaneous(struct peer *p);
/* From ESTABLISHED (opened passively first when no connection exists yet). */
void peer_to_fin_wait_1(struct peer *p, enum peer_how how);
void peer_to_fin_wait_2(struct peer *p, enum peer_how how);
void peer_to_closing(struct peer *p, enum peer_how how);
void peer_to_time_wait(struct peer *p, enum peer_how how);
/* The peer's FIN and the stack's delayed ACK of it are both done (at once when no data came
 * first, ato being 0 then; 40 ms later after data). */
void peer_to_close_wait(struct peer *p);
void peer_to_last_ack(struct peer *p, enum peer_how how);

#endif
