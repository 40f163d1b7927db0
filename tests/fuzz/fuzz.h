/*
 * Fuzz targets for tern (libFuzzer), and the harness they share.
 *
 * Each target is a function fuzz_<name>_one(data, size) that runs one input and returns 0;
 * it aborts (after saying why on stderr) when tern crashes, breaks an invariant, or emits a
 * packet that is not a valid datagram. Compiled with -DFUZZ_LIBFUZZER a target file also
 * defines LLVMFuzzerTestOneInput, so the same body runs under libFuzzer (make fuzz) and in
 * the ordinary test binary, which replays the corpus (tests/test_fuzz_replay.c).
 *
 *   fuzz_input     datagrams, raw or built from templates for live connections and then
 *                  mutated, and socket calls, against a stack holding a listener,
 *                  connections in most states and UDP sockets (tests/fuzz/fuzz_input.c)
 *   fuzz_sequence  the same with time passing between the records, so that every timer
 *                  fires (tests/fuzz/fuzz_sequence.c)
 * After the records both close everything, run the clock until no timer is left, and
 * check that nothing is left either.
 *   fuzz_options   the codecs on their own: TCP options, the TCP header, the IPv4 header
 *                  and the checksum, against small reference implementations written here
 *                  from the RFCs (tests/fuzz/fuzz_options.c)
 *
 * The input format of the two stack targets is a stream of records read by struct fz_rd;
 * a reader that runs dry yields zeros, and zeros everywhere mean "the plain valid case", so
 * short inputs already reach deep paths. tests/fuzz/gen_corpus.c writes the seed corpus in
 * this format (the FZ_* constants below are its vocabulary).
 */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int fuzz_input_one(const uint8_t *data, size_t size);
int fuzz_sequence_one(const uint8_t *data, size_t size);
int fuzz_options_one(const uint8_t *data, size_t size);

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

/* The name of the input being replayed (set by the replay test), for failure messages. */
extern const char *fuzz_current_input;

/* Report a broken expectation and abort: libFuzzer saves the input, a replay test fails. */
void fuzz_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
#define FZ_CHECK(cond, ...)                                                                   \
	do {                                                                                  \
		if (!(cond))                                                                  \
			fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                           \
	} while (0)

/* ---- input reader: bytes in order, zeros once they run out ---- */

struct fz_rd {
	const uint8_t *p;
	size_t n;
};
static inline bool fz_more(const struct fz_rd *r) { return r->n > 0; }
static inline uint8_t fz_u8(struct fz_rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}
static inline uint16_t fz_u16(struct fz_rd *r)
{
	uint16_t hi = fz_u8(r);
	return (uint16_t)((hi << 8) | fz_u8(r));
}
static inline uint32_t fz_u32(struct fz_rd *r)
{
	uint32_t hi = fz_u16(r);
	return (hi << 16) | fz_u16(r);
}
/* Up to want bytes of the input; *got says how many there were. */
static inline const uint8_t *fz_bytes(struct fz_rd *r, size_t want, size_t *got)
{
	const uint8_t *p = r->p;
	*got = want < r->n ? want : r->n;
	r->p += *got;
	r->n -= *got;
	return p;
}

/* ---- the vocabulary of the stack targets' inputs ---- */

/*
 * An input starts with one settings byte (FZ_SET_*), then records, each introduced by an
 * opcode byte taken modulo FZ_OP_COUNT:
 *   FZ_OP_DGRAM  one datagram (see below), handed to tern_stack_input()
 *   FZ_OP_BATCH  a count byte (mod 8, plus 1) and that many datagrams, to
 *                tern_stack_input_batch()
 *   FZ_OP_API    a socket call (FZ_API_*), its descriptor selector, then its arguments
 *   FZ_OP_TIME   a clock step (FZ_TIME_*) and its amount; fuzz_input reads it and ignores it
 * A datagram is a template byte (FZ_T_*, modulo FZ_T_COUNT) and its fields, then an edit
 * count (mod 8) with that many edits (offset u16, op byte, value byte), then a fix-up byte
 * whose bits turn off the repairs made after the edits (FZ_FIX_*).
 */
enum {
	FZ_SET_SMALL_BUFS = 0x01, /* 2 KiB send and receive buffers: zero windows, persist */
	FZ_SET_CSUM_RX = 0x02,    /* the link vouches for checksums: bad sums go deeper */
	FZ_SET_CSUM_TX = 0x04,    /* the link completes checksums of connections' segments */
	FZ_SET_TIGHT = 0x08,      /* small limits: TIME_WAIT, orphans, backlog, memory */
	FZ_SET_FAST = 0x10,       /* short timers: MSL, fin_timeout, keepalive, retries */
	FZ_SET_OVERFLOW = 0x20,   /* abort_on_overflow, and a tiny ICMP rate budget */
	FZ_SET_SMALL_MTU = 0x40,  /* MTU 576 */
	FZ_SET_NO_OPTS = 0x80,    /* timestamps, SACK and window scaling off */
};

enum { FZ_OP_DGRAM, FZ_OP_BATCH, FZ_OP_API, FZ_OP_TIME, FZ_OP_DGRAM2, FZ_OP_COUNT };

enum {
	FZ_T_CONN,      /* a TCP segment on one of the connections: conn, flags, seq, ack, ... */
	FZ_T_SYN,       /* a SYN to the listener from a chosen port */
	FZ_T_TCP_OTHER, /* a TCP segment with chosen addresses and ports */
	FZ_T_UDP,       /* a UDP datagram to one of the UDP sockets or a closed port */
	FZ_T_ECHO,      /* an ICMP echo request */
	FZ_T_ICMP_ERR,  /* an ICMP error quoting a datagram tern sent (or garbage) */
	FZ_T_IP,        /* an IPv4 header with options, any protocol, bytes after it */
	FZ_T_RAW,       /* bytes as they are: a length u16, then the datagram */
	FZ_T_COUNT
};

/* Fix-up bits: set means "leave it broken". */
enum {
	FZ_FIX_KEEP_TOTLEN = 0x01, /* IPv4 total length as the template and edits left it */
	FZ_FIX_KEEP_IPSUM = 0x02,  /* IPv4 header checksum likewise */
	FZ_FIX_KEEP_L4SUM = 0x04,  /* TCP, UDP or ICMP checksum likewise */
	FZ_FIX_UDP_NOSUM = 0x08,   /* UDP: checksum 0, "none" (RFC 768) */
};

/* Edits after a template: op % FZ_E_COUNT at offset % length. */
enum { FZ_E_SET, FZ_E_XOR, FZ_E_ADD, FZ_E_TRUNC, FZ_E_GROW, FZ_E_COUNT };

/* Flags of a TCP template: a byte below FZ_FLAGS_TABLE picks a common combination from a
 * table (0: ACK), others are the flag byte as it is. */
#define FZ_FLAGS_TABLE 192

/* Sequence and acknowledgment numbers of FZ_T_CONN: a mode byte (% 8) picks the base
 * (0: the next in-order value, so zeros make an acceptable segment) and its offset. */
enum { FZ_SEQ_EXACT, FZ_SEQ_NEAR, FZ_SEQ_AHEAD, FZ_SEQ_BEHIND, FZ_SEQ_ABS, FZ_SEQ_WIN_EDGE,
       FZ_SEQ_MINUS1, FZ_SEQ_ISN };
enum { FZ_ACK_ALL, FZ_ACK_NEAR, FZ_ACK_BEHIND16, FZ_ACK_BEHIND8, FZ_ACK_ABS, FZ_ACK_ISN,
       FZ_ACK_AHEAD, FZ_ACK_DUP };
/* Options of a TCP template: 0 what the connection uses (timestamps when negotiated);
 * below FZ_OPTS_RAW a mask of FZ_O_* each followed by its values; from FZ_OPTS_RAW on a
 * length byte (% 41) and the option bytes as they are. */
enum { FZ_O_MSS = 0x01, FZ_O_WS = 0x02, FZ_O_SACKP = 0x04, FZ_O_TS = 0x08, FZ_O_SACK = 0x10,
       FZ_O_NOTS = 0x20 };
#define FZ_OPTS_RAW 0xe0

/* Socket calls (FZ_OP_API): call % FZ_API_COUNT, then a descriptor selector byte (modulo
 * the descriptors held; 0xff: a descriptor that does not exist). */
enum {
	FZ_API_RECV, FZ_API_SEND, FZ_API_CLOSE, FZ_API_ABORT, FZ_API_SHUTDOWN, FZ_API_ACCEPT,
	FZ_API_SOCKET, FZ_API_CONNECT, FZ_API_BIND, FZ_API_LISTEN, FZ_API_SETSOCKOPT,
	FZ_API_GETSOCKOPT, FZ_API_RECV_ZC, FZ_API_SEND_ZC, FZ_API_QUERY, FZ_API_EVENTS,
	FZ_API_SENDTO, FZ_API_LINK_FAIL, FZ_API_COUNT
};

/* Clock steps (FZ_OP_TIME): kind % FZ_TIME_COUNT, then its amount. */
enum {
	FZ_TIME_US,        /* u8 microseconds */
	FZ_TIME_MS,        /* u8 milliseconds, timers run at their own deadlines */
	FZ_TIME_MS16,      /* u16 milliseconds, likewise */
	FZ_TIME_S,         /* u8 seconds, likewise */
	FZ_TIME_S16_JUMP,  /* u16 seconds in one tern_stack_poll() */
	FZ_TIME_NEXT,      /* to the next timer */
	FZ_TIME_BEFORE,    /* to 1 us before the next timer */
	FZ_TIME_TIMERS,    /* u8: run that many timers, each at its deadline */
	FZ_TIME_COUNT
};

/* The connections the stack targets set up, in this order (FZ_T_CONN picks one modulo the
 * connections known; connections the stack opens later are added after these). Settings
 * such as FZ_SET_TIGHT may keep some from reaching their state: they are used as they are. */
enum {
	FZ_C_ESTAB,        /* passive, every option, data unread and data in flight */
	FZ_C_ESTAB_ACTIVE, /* active, no options, a hole in the received data, data queued */
	FZ_C_FIN_WAIT_2,   /* shutdown(SHUT_WR) and the FIN acknowledged, descriptor held */
	FZ_C_FW2_ORPHAN,   /* close() and the FIN acknowledged: orphaned FIN_WAIT_2 */
	FZ_C_CLOSE_WAIT,   /* the peer's data and FIN, unread */
	FZ_C_SYN_RCVD,     /* a SYN with every option, no third ACK */
	FZ_C_TIME_WAIT,
	FZ_C_FIN_WAIT_1,   /* data and FIN in flight, orphaned */
	FZ_C_SYN_SENT,     /* connect() unanswered */
	FZ_C_LAST_ACK,
	FZ_C_CLOSING,
	FZ_C_ACCEPTQ,      /* handshake done, not accepted */
	FZ_C_COUNT
};

/* Addresses: the stack owns FZ_LOCAL and FZ_LOCAL2; FZ_PEER and FZ_PEER2 are remote. */
#define FZ_LOCAL 0x0a000001u  /* 10.0.0.1 */
#define FZ_LOCAL2 0x0a000003u /* 10.0.0.3 */
#define FZ_PEER 0x0a000002u   /* 10.0.0.2 */
#define FZ_PEER2 0xc0a80107u  /* 192.168.1.7 */
#define FZ_LISTEN_PORT 80
#define FZ_UDP_PORT0 53       /* bound to 0.0.0.0, unconnected */
#define FZ_UDP_PORT1 5000     /* bound to FZ_LOCAL, connected to FZ_PEER:FZ_UDP_PEER_PORT */
#define FZ_UDP_PEER_PORT 5353
#define FZ_PEER_PORT_BASE 40000 /* connection i's peer port in a passive open: base + i */
#define FZ_MAX_RECORDS 400      /* records run per input, to bound an execution's time */

/* ---- the stack harness (tests/fuzz/fuzz_world.c) ---- */

struct fz_world;

/* A stack at a fixed time with the connections and sockets above, from the settings byte.
 * Every packet the stack emits is checked as it leaves. */
struct fz_world *fz_world_new(uint8_t settings);
void fz_world_free(struct fz_world *w);
/* Run one record of the input. allow_time: FZ_OP_TIME moves the clock (else it is read and
 * ignored). */
void fz_world_step(struct fz_world *w, struct fz_rd *r, bool allow_time);
/* Check every invariant of the stack's state that must hold between calls. */
void fz_world_check(struct fz_world *w);
/* Close every descriptor (close() or abort() as the reader says), run the clock ahead until
 * no timer is left, and check that nothing is left either. */
void fz_world_drain(struct fz_world *w, struct fz_rd *r);
/* Run a whole input of a stack target: settings byte, records, drain. */
void fz_world_run(const uint8_t *data, size_t size, bool allow_time);

/* ---- reference codecs shared by the targets (tests/fuzz/fuzz_world.c) ---- */

/* RFC 1071 one's-complement sum of big-endian words over p, starting from sum; not folded. */
uint32_t fz_sum(const uint8_t *p, size_t n, uint32_t sum);
/* Fold and complement: the checksum field's value. */
uint16_t fz_fold(uint32_t sum);
/* The TCP/UDP pseudo-header's sum (RFC 9293 §3.1, RFC 768). */
uint32_t fz_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len);

#endif
