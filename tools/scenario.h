/*
 * Named scenarios: short scripts that drive two simulated hosts, a (10.0.0.1, the client) and
 * b (10.0.0.2, the server), through one behaviour of TCP. `tern sim` prints them; the tests
 * run the same scripts and assert the exchange event by event.
 */
#ifndef TERN_SCENARIO_H
#define TERN_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include "tern/tern.h"
#include "tern/sim.h"

#define SCN_ADDR_A TERN_IP4(10, 0, 0, 1)
#define SCN_ADDR_B TERN_IP4(10, 0, 0, 2)
#define SCN_MAX_SOCKS 64
#define SCN_MAX_SETS 32
#define SCN_MAX_RULES 16

/* How to run: everything `tern sim` takes on its command line. */
struct scn_opts {
	uint64_t seed;
	bool delay_set;               /* otherwise the scenario's own (10 ms) */
	struct tern_impair imp;       /* both directions */
	const char *pcap;
	struct {
		const char *name, *value;
	} sets[SCN_MAX_SETS];
	int nsets;
	struct {
		const char *text;
		enum tern_sim_action action;
		uint32_t delay_us;
	} rules[SCN_MAX_RULES];
	int nrules;
	uint64_t bytes;               /* transfer size, where a scenario moves data */
	const char *in_file;          /* transfer: a sends this file's bytes */
	const char *out_file;         /* transfer: b writes what arrives here */
};

/* One recorded event (a copy of the simulator's, with the note text owned). */
struct scn_event {
	struct tern_sim_ev ev;
	char text[160];
};

struct scn_log {
	struct scn_event *ev;
	size_t n, cap;
};

/* The application's view of one descriptor. */
struct scn_sock {
	bool used, listener, connecting, eof;
	int close_on_eof_ms;          /* -1: never; 0: at once; N: N ms after end of stream */
	int child_close_on_eof_ms;    /* listeners: given to accepted sockets */
	uint8_t *rx;                  /* every byte received */
	size_t rx_len, rx_cap;
	const uint8_t *tx;            /* bytes still to send */
	size_t tx_len;
	int err;                      /* last error the application saw (positive errno) */
	bool paused;                  /* the application does not read for now */
	/* Bulk transfer: send bulk_total bytes (from bulk_in, else a pattern), then shut down
	 * the sending side; check what arrives against the peer's pattern, or write it to
	 * bulk_out; close once both directions are done. */
	bool bulk;
	int bulk_dir;                 /* which pattern this socket sends (0 a->b, 1 b->a) */
	uint64_t bulk_total, bulk_sent, bulk_rcvd, bulk_bad;
	FILE *bulk_in, *bulk_out;
};

struct scn_delayed_close {
	struct scn *s;
	int host, fd;
};

/* What one host's application saw, in sum. */
struct scn_app {
	unsigned connected, accepted, eofs;
	uint64_t rx_bytes;
	int errors[8]; /* positive errno values, in the order seen */
	unsigned nerrors;
};

struct scn {
	struct tern_sim *sim;
	struct scn_app app[2];
	int bulk_error;               /* transfer: a file could not be read or written (errno) */
	uint64_t bulk_b_bytes;        /* transfer: what an accepted socket on b sends back (0: none) */
	bool bulk_accept;             /* transfer: accepted sockets on b are bulk sockets */
	uint64_t bulk_bad;            /* transfer: bytes that differed from what was sent */
	FILE *in_fp, *out_fp;
	uint64_t in_size;
	struct scn_delayed_close closes[64]; /* pending "close N ms after end of stream" */
	unsigned nclose;
	int a, b;
	struct scn_sock socks[2][SCN_MAX_SOCKS];
	struct scn_log *log;
	void (*sink)(void *user, const struct scn_event *e);
	void *sink_user;
	const struct scn_opts *opts;
	uint64_t limit_us;
};

struct scenario {
	const char *name;
	const char *summary;
	void (*run)(struct scn *s);
	const char *defaults;         /* settings the scenario starts from, "name=value ..." */
	bool bulk;                    /* moves much data: the ladder shows no segments by default */
};

/* The bulk-transfer pattern: byte i of direction dir. */
uint8_t scn_pattern(int dir, uint64_t i);

const struct scenario *scenario_all(size_t *n);
const struct scenario *scenario_find(const char *name);

/* Run a scenario. Every event goes to sink (if any) as it happens and into log (if any).
 * Returns 0, or a negative errno for bad options. On return *out (if given) holds the
 * finished simulation for inspection; free it with scn_finish(). */
int scn_run(const struct scenario *sc, const struct scn_opts *o, struct scn_log *log,
	    void (*sink)(void *user, const struct scn_event *e), void *sink_user, struct scn **out);
void scn_finish(struct scn *s);
void scn_log_free(struct scn_log *log);

/* Script steps, for scenario bodies and tests. */
double scn_now(const struct scn *s);
void scn_run_to(struct scn *s, double t_s);
void scn_run_idle(struct scn *s, double limit_s);
int scn_listen(struct scn *s, int host, uint16_t port, int child_close_on_eof_ms);
int scn_connect(struct scn *s, int host, int peer, uint16_t port, uint16_t lport);
void scn_send(struct scn *s, int host, int fd, const void *data, size_t len);
void scn_close(struct scn *s, int host, int fd);
void scn_shutdown(struct scn *s, int host, int fd, int how);
void scn_abort(struct scn *s, int host, int fd);
/* The first connected (accepted) descriptor of a host other than the listener. */
int scn_accepted_fd(const struct scn *s, int host);

#endif
