/*
 * `tern sim` for the byte-stream scenarios, run as a new user runs it: the built binary
 * (TERN_BIN, default build/tern) through the shell with popen, its ladder and JSON Lines read
 * back. A bulk transfer under every impairment with --in/--out files compared byte for byte,
 * the CLOSE_WAIT listing, the zero-window probes and congestion fields in JSON, and what
 * --verbose changes.
 *
 * Behaviour believed wrong is asserted correctly inside #ifdef TERN_KNOWN_BUG.
 */
#include "test.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- running the binary ---- */

struct result {
	char *out, *err;
	size_t out_len;
	int status; /* exit status, or 128 + signal */
};

static const char *tern_path(void)
{
	const char *b = getenv("TERN_BIN");
	return b && *b ? b : "build/tern";
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	REQUIRE(buf);
	for (;;) {
		if (n + 4096 > cap) {
			cap *= 2;
			char *b = realloc(buf, cap);
			REQUIRE(b);
			buf = b;
		}
		size_t k = fread(buf + n, 1, cap - n - 1, f);
		if (k == 0)
			break;
		n += k;
	}
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* Run PREFIX 'tern' ARGS through the shell (PREFIX: e.g. a `timeout`), stdout and stderr
 * kept apart. */
static void run_with(struct result *c, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void run_with(struct result *c, const char *prefix, const char *fmt, ...)
{
	char args[1024], dir[] = "/tmp/tern-clis-XXXXXX", errpath[64], line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	snprintf(line, sizeof(line), "%s'%s' %s 2>'%s'", prefix, tern_path(), args, errpath);
	fflush(NULL);
	FILE *p = popen(line, "r");
	REQUIRE(p);
	c->out = read_all(p, &c->out_len);
	int st = pclose(p);
	c->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
	FILE *e = fopen(errpath, "r");
	REQUIRE(e);
	c->err = read_all(e, NULL);
	fclose(e);
	unlink(errpath);
	rmdir(dir);
}
#define run_tern(c, ...) run_with((c), "", __VA_ARGS__)

static void result_free(struct result *c)
{
	free(c->out);
	free(c->err);
	c->out = c->err = NULL;
}

static bool have_command(const char *name)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* How many times needle occurs in s. */
static unsigned count_of(const char *s, const char *needle)
{
	unsigned n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- JSON Lines: tern prints flat objects (one nested "opts" or "states"); these read a
 * top-level field of one line by its exact "key": spelling ---- */

static bool jnum(const char *line, const char *key, double *v)
{
	char pat[48];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(line, pat);
	if (!p)
		return false;
	p += strlen(pat);
	char *end;
	*v = strtod(p, &end);
	return end != p;
}

static bool jhas(const char *line, const char *key)
{
	char pat[48];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	return strstr(line, pat) != NULL;
}

static bool jis(const char *line, const char *key, const char *want)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "\"%s\":\"%s\"", key, want);
	return strstr(line, pat) != NULL;
}

static int64_t jt_us(const char *line)
{
	double t;
	return jnum(line, "t", &t) ? (int64_t)llround(t * 1e6) : -1;
}

static uint32_t ju32(const char *line, const char *key)
{
	double v = -1;
	if (!jnum(line, key, &v) || v < 0 || v > 4294967295.0)
		test_fail(__FILE__, __LINE__, "no number \"%s\" in %.200s", key, line);
	return v < 0 ? 0 : (uint32_t)v;
}

/* The lines of an output, split in a private copy. */
struct lines {
	char *buf;
	char **v;
	size_t n;
};

static struct lines split_lines(const char *out)
{
	struct lines l = {strdup(out), NULL, 0};
	REQUIRE(l.buf);
	size_t cap = 0;
	for (char *p = l.buf; *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		if (l.n == cap) {
			cap = cap ? 2 * cap : 256;
			char **v = realloc(l.v, cap * sizeof(*v));
			REQUIRE(v);
			l.v = v;
		}
		l.v[l.n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	return l;
}

static void lines_free(struct lines *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

#define FOR_EACH_LINE(l, line)                                                                \
	for (size_t i_ = 0; i_ < (l)->n; i_++)                                                \
		for (const char *line = (l)->v[i_]; line; line = NULL)

/* The "by state:" tally of one host's part of the summary: NAME COUNT pairs, on one line or
 * one a line, up to the application's line. Written as "NAME=COUNT ..." into buf. */
static void state_tally(const char *summary, const char *host, char *buf, size_t len)
{
	char head[64], tail[64];
	snprintf(head, sizeof(head), "  %s: connections\n", host);
	snprintf(tail, sizeof(tail), "  %s: the application saw", host);
	buf[0] = 0;
	const char *p = strstr(summary, head), *end = p ? strstr(p, tail) : NULL;
	const char *by = p ? strstr(p, "by state:") : NULL;
	if (!by || !end || by > end)
		return;
	size_t k = 0;
	for (p = by + strlen("by state:"); p < end;) {
		char name[32];
		unsigned count;
		int used = 0;
		if (sscanf(p, " %31[A-Z_0-9] %u%n", name, &count, &used) != 2 || p + used > end)
			break;
		k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "%s%s=%u", k ? " " : "", name, count);
		p += used;
	}
}

/* ---- transfer ---- */

static void write_random(const char *path, size_t n, uint64_t seed)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		REQUIRE(fputc((int)(x >> 24) & 255, f) != EOF);
	}
	REQUIRE_EQ(fclose(f), 0);
}

static char *load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *data = read_all(f, len);
	fclose(f);
	return data;
}

TEST(cli_stream_transfer_files_under_impairments)
{
	/* a sends a file of 1999993 random bytes (--in), b sends --bytes 2000000 back, under
	 * 5% loss, 5% reordering, 2% duplication and 1% corruption both ways; b writes what
	 * arrives (--out). The run reports success and the output is the input. */
	char dir[] = "/tmp/tern-clis-xfer-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	char in[80], out[80];
	snprintf(in, sizeof(in), "%s/in.bin", dir);
	snprintf(out, sizeof(out), "%s/out.bin", dir);
	const size_t size = 1999993;
	write_random(in, size, 0xc0ffee);
	struct result c;
	run_tern(&c, "sim transfer --bytes 2000000 --loss 0.05 --reorder 0.05 --dup 0.02 "
		     "--corrupt 0.01 --in '%s' --out '%s'", in, out);
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	CHECK(strstr(c.out, "\ntransfer: b received 1999993 bytes, a received 2000000 bytes: "
			    "complete, every byte once and in order\n") != NULL);
	CHECK(strstr(c.out, "FAILED") == NULL);
	/* The applications' accounts: each got everything and end of stream, no error. */
	CHECK(strstr(c.out, "a: the application saw 1 connected, 0 accepted, 2000000 bytes "
			    "received, 1 end-of-stream\n") != NULL);
	CHECK(strstr(c.out, "b: the application saw 0 connected, 1 accepted, 1999993 bytes "
			    "received, 1 end-of-stream\n") != NULL);
	CHECK(strstr(c.out, "errors:") == NULL);
	size_t in_len = 0, out_len = 0;
	char *want = load(in, &in_len), *got = load(out, &out_len);
	REQUIRE(want != NULL);
	CHECK(got != NULL);
	CHECK_EQ(in_len, size);
	CHECK_EQ(out_len, size);
	if (got && out_len == in_len)
		CHECK_MEM(got, want, size);
	free(want);
	free(got);
	if (have_command("cmp")) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", in, out);
		CHECK_EQ(system(cmd), 0);
	}
	result_free(&c);
	CHECK_EQ(unlink(in), 0);
	CHECK_EQ(unlink(out), 0);
	CHECK_EQ(rmdir(dir), 0);
}

TEST(cli_stream_transfer_unopenable_files)
{
	/* An --in that cannot be opened, or an --out that cannot be created: a non-zero exit
	 * status and a message on stderr; no claim of success. */
	char dir[] = "/tmp/tern-clis-bad-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	struct result c;
	run_tern(&c, "sim transfer --in '%s/missing.bin'", dir);
	CHECK(c.status != 0);
	CHECK(c.err[0] != 0);
	CHECK(strstr(c.err, "tern sim") != NULL);
	CHECK(strstr(c.out, "complete") == NULL);
	result_free(&c);
	run_tern(&c, "sim transfer --bytes 1000 --out '%s/no/such/dir/out.bin'", dir);
	CHECK(c.status != 0);
	CHECK(c.err[0] != 0);
	CHECK(strstr(c.out, "complete") == NULL);
	result_free(&c);
	CHECK_EQ(rmdir(dir), 0);
}

/* A directory given to --in opens (fopen "rb" succeeds on Linux) and ftell would report
 * 2^63 - 1 for it on ext4: --in must refuse what is not a regular file and exit non-zero at
 * once, with a message, instead of sending that many bytes. */
TEST(cli_stream_transfer_directory_input_fails)
{
	if (!have_command("timeout"))
		return;
	char dir[] = "/tmp/tern-clis-dir-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	struct result c;
	run_with(&c, "timeout 10 ", "sim transfer --in '%s'", dir);
	CHECK(c.status != 124); /* timeout's status: still running after 10 s */
	CHECK(c.status != 0);
	CHECK(c.err[0] != 0);
	result_free(&c);
	CHECK_EQ(rmdir(dir), 0);
}

TEST(cli_stream_transfer_verbose_prints_segments)
{
	/* A transfer is a bulk scenario: by default its ladder shows state changes and the
	 * applications' notes but no segment; --verbose adds every segment. */
	struct result q, v;
	run_tern(&q, "sim transfer --bytes 30000");
	run_tern(&v, "sim transfer --bytes 30000 --verbose");
	CHECK_EQ(q.status, 0);
	CHECK_EQ(v.status, 0);
	CHECK_STR(q.err, "");
	CHECK_STR(v.err, "");
	static const char done[] = "transfer: b received 30000 bytes, a received 30000 bytes: "
				   "complete, every byte once and in order\n";
	CHECK(strstr(q.out, done) != NULL);
	CHECK(strstr(v.out, done) != NULL);
	CHECK_EQ(count_of(q.out, "--> b"), 0);
	CHECK_EQ(count_of(q.out, "a <--"), 0);
	CHECK(strstr(q.out, "ESTABLISHED -> FIN_WAIT_1") != NULL);
	CHECK(strstr(q.out, "all 30000 bytes queued") != NULL);
	/* 30000 bytes each way are at least 21 full segments each; every one is shown, the
	 * handshake too. */
	CHECK(count_of(v.out, "--> b") >= 21);
	CHECK(count_of(v.out, "a <--") >= 21);
	CHECK(strstr(v.out, " SYN seq=0 win=64240 len=0 <mss 1460> ") != NULL);
	CHECK(strstr(v.out, "len=1460") != NULL);
	CHECK(strstr(v.out, "FIN,") != NULL);
	/* Everything else is the same: the verbose ladder has more lines, not other ones. */
	CHECK(v.out_len > q.out_len);
	struct lines ql = split_lines(q.out);
	FOR_EACH_LINE(&ql, line)
	{
		if (!strstr(v.out, line))
			test_fail(__FILE__, __LINE__, "--verbose lost the line: %s", line);
	}
	lines_free(&ql);
	result_free(&q);
	result_free(&v);
}

/* ---- close-wait-leak ---- */

TEST(cli_stream_close_wait_leak_listing)
{
	struct result c;
	run_tern(&c, "sim close-wait-leak");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	const char *end = strstr(c.out, "\nat the end (t = 120.000000 s):\n");
	REQUIRE(end != NULL);
	/* a holds nothing; b holds its listener and five connections in CLOSE_WAIT, counted
	 * by state as `netstat -n | awk '/^tcp/{++S[$NF]}'` would. */
	CHECK(strstr(end, "  a: connections\n    (none)\n") != NULL);
	const char *b = strstr(end, "  b: connections\n");
	REQUIRE(b != NULL);
	char tallied[128];
	state_tally(end, "b", tallied, sizeof(tallied));
	CHECK_STR(tallied, "CLOSE_WAIT=5 LISTEN=1");
	CHECK_EQ(count_of(b, "    tcp  10.0.0.2:80 "), 5);
	CHECK_EQ(count_of(b, " CLOSE_WAIT\n"), 5);
	CHECK_EQ(count_of(b, "    tcp  0.0.0.0:80 "), 1);
	CHECK(strstr(b, "b: the application saw 0 connected, 5 accepted, 90 bytes received, "
			"5 end-of-stream\n") != NULL);
	CHECK(strstr(end, "a: the application saw 5 connected, 0 accepted, 0 bytes received, "
			  "0 end-of-stream\n") != NULL);
	/* The exchange: five client FIN_WAIT_2 give up fin_timeout (60 s) after they began
	 * (the FIN's ACK arrives 0.56 s into each second). */
	CHECK_EQ(count_of(c.out, "ESTABLISHED -> CLOSE_WAIT"), 5);
	CHECK_EQ(count_of(c.out, "CLOSE_WAIT -> LAST_ACK"), 0);
	for (int k = 0; k < 5; k++) {
		char line[64];
		snprintf(line, sizeof(line), "\n  %d.560000  FIN_WAIT_2 -> CLOSED\n", 60 + k);
		if (!strstr(c.out, line))
			test_fail(__FILE__, __LINE__, "no line%s", line);
	}
	result_free(&c);

	/* The same listing in JSON: one "conn" line per connection, a summary per host. */
	run_tern(&c, "sim close-wait-leak --format json");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	unsigned conns = 0, cw = 0, summaries = 0;
	struct lines jl = split_lines(c.out);
	FOR_EACH_LINE(&jl, line)
	{
		if (jis(line, "ev", "conn")) {
			conns++;
			CHECK(jis(line, "host", "b"));
			cw += jis(line, "state", "CLOSE_WAIT");
		}
		if (jis(line, "ev", "summary")) {
			summaries++;
			if (jis(line, "host", "b"))
				CHECK(strstr(line, "\"states\":{\"CLOSE_WAIT\":5,\"LISTEN\":1}") != NULL);
			else
				CHECK(strstr(line, "\"states\":{}") != NULL);
		}
	}
	lines_free(&jl);
	CHECK_EQ(conns, 6);
	CHECK_EQ(cw, 5);
	CHECK_EQ(summaries, 2);
	result_free(&c);
}

/* ---- zero-window and the congestion fields ---- */

TEST(cli_stream_zero_window_json_probes)
{
	/* a's persist probes are ACKs with no data one below the point b acknowledged; the
	 * first comes one RTO (220 ms) after the zero window reached a, and each wait doubles
	 * the one before (RFC 1122 §4.2.2.17). An answer that leaves the window shut starts
	 * the wait over from its arrival, 20 ms after the probe; b leaves the second probe
	 * unanswered (less than 500 ms after its first answer), so that wait runs from the
	 * probe. */
	struct result c;
	run_tern(&c, "sim zero-window --format json");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	uint32_t acked = 0;
	bool have_ack = false;
	int64_t zero_at = -1, probe[16];
	unsigned nprobe = 0, sends = 0, zero_wins = 0;
	struct lines zl = split_lines(c.out);
	FOR_EACH_LINE(&zl, line)
	{
		bool send = jis(line, "ev", "send");
		if (send) {
			sends++;
			/* Every segment of a connection says its congestion window; ssthresh
			 * appears once set, and nothing is lost here, so it never is. */
			double cwnd = 0;
			if (!jnum(line, "cwnd", &cwnd) || cwnd <= 0)
				test_fail(__FILE__, __LINE__, "send without cwnd: %.200s", line);
			if (jhas(line, "ssthresh"))
				test_fail(__FILE__, __LINE__, "ssthresh without a loss: %.200s", line);
		}
		if (send && jis(line, "host", "b") && strstr(line, "\"flags\":\"A\"")) {
			acked = ju32(line, "ack");
			have_ack = true;
			zero_wins += ju32(line, "win") == 0;
		}
		if (jis(line, "ev", "recv") && jis(line, "host", "a") && zero_at < 0 &&
		    jhas(line, "win") && ju32(line, "win") == 0)
			zero_at = jt_us(line);
		if (send && jis(line, "host", "a") && jis(line, "flags", "A") && ju32(line, "len") == 0 &&
		    have_ack && ju32(line, "seq") == acked - 1) {
			if (nprobe < 16)
				probe[nprobe] = jt_us(line);
			nprobe++;
		}
	}
	lines_free(&zl);
	CHECK(sends > 40);
	CHECK(zero_wins >= 5); /* the ACK that closed the window and the answers to probes */
	/* 0.1 s + one round trip + delack_min: b's quick-ACK budget (half its 2920-byte window
	 * in segments) went on the first segment. */
	CHECK_EQ(zero_at, 160000);
	CHECK_EQ(nprobe, 5);
	if (nprobe == 5) {
		CHECK_EQ(probe[0] - zero_at, 220000);
		static const int64_t gap[5] = {0, 440000 + 20000, 880000, 1760000 + 20000,
					       3520000 + 20000};
		for (unsigned k = 1; k < nprobe; k++)
			CHECK_EQ(probe[k] - probe[k - 1], gap[k]);
		CHECK_EQ(probe[4], 7040000);
	}
	result_free(&c);
}

TEST(cli_stream_peer_vanished_json_congestion_fields)
{
	/* The data's first transmission carries the initial window (10 segments of 1460) and no
	 * ssthresh; after the first timeout every retransmission carries the loss window, one
	 * segment, and ssthresh = max(FlightSize / 2, 2 * SMSS) = 2920 (RFC 5681 §3.1). */
	struct result c;
	run_tern(&c, "sim peer-vanished --format json");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	unsigned data = 0, errors = 0;
	struct lines pl = split_lines(c.out);
	FOR_EACH_LINE(&pl, line)
	{
		if (jis(line, "ev", "error")) {
			errors++;
			CHECK(jis(line, "host", "a") && jis(line, "error", "ETIMEDOUT"));
			CHECK_EQ(jt_us(line), 946060000);
		}
		if (!jis(line, "ev", "send"))
			continue;
		CHECK(jhas(line, "cwnd"));
		if (!jis(line, "host", "a") || ju32(line, "len") != 5)
			continue;
		CHECK(jis(line, "flags", "AP"));
		if (data++ == 0) {
			CHECK_EQ(jt_us(line), 1000000);
			CHECK_EQ(ju32(line, "cwnd"), 14600);
			CHECK(!jhas(line, "ssthresh"));
		} else {
			CHECK_EQ(ju32(line, "cwnd"), 1460);
			CHECK_EQ(ju32(line, "ssthresh"), 2920);
		}
	}
	lines_free(&pl);
	CHECK_EQ(data, 16); /* the first transmission and retries2 = 15 retransmissions */
	CHECK_EQ(errors, 1);
	result_free(&c);
}

/* ---- keepalive ---- */

TEST(cli_stream_keepalive_ladder)
{
	/* 9 probes from 7200.02 s, 75 s apart, all lost; the RST at 7875.02 s too; a's
	 * application gets ETIMEDOUT; b still lists its connection. */
	struct result c;
	run_tern(&c, "sim keepalive");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	CHECK_EQ(count_of(c.out, "LOST on the wire"), 10);
	for (int k = 0; k < 9; k++) {
		char line[128];
		snprintf(line, sizeof(line), "%11.6f  --- ACK seq=0 ack=1 win=64240 len=0 ", 7200.02 + 75 * k);
		if (!strstr(c.out, line))
			test_fail(__FILE__, __LINE__, "no probe line '%s'", line);
	}
	CHECK(strstr(c.out, "7875.020000  --- RST,ACK seq=1 ack=1 ") != NULL);
	CHECK(strstr(c.out, "7875.020000  error for the application: ETIMEDOUT\n") != NULL);
	const char *end = strstr(c.out, "\nat the end (t = 7875.020000 s):\n");
	REQUIRE(end != NULL);
	CHECK(strstr(end, "  a: connections\n    (none)\n") != NULL);
	char tallied[128];
	state_tally(end, "b", tallied, sizeof(tallied));
	CHECK_STR(tallied, "ESTABLISHED=1 LISTEN=1");
	CHECK(strstr(end, "errors: ETIMEDOUT\n") != NULL);
	result_free(&c);

	/* keepalive-live: two probes in 15000 s, each answered; nothing lost, no error. */
	run_tern(&c, "sim keepalive-live");
	CHECK_EQ(c.status, 0);
	CHECK_EQ(count_of(c.out, "LOST"), 0);
	CHECK(strstr(c.out, "7200.020000  --- ACK seq=0 ack=1 ") != NULL);
	CHECK(strstr(c.out, "7200.030000  a <--") != NULL);
	CHECK(strstr(c.out, "14400.040000  --- ACK seq=0 ack=1 ") != NULL);
	CHECK(strstr(c.out, "14400.050000  a <--") != NULL);
	CHECK(strstr(c.out, "errors:") == NULL);
	end = strstr(c.out, "\nat the end (t = 15000.000000 s):\n");
	REQUIRE(end != NULL);
	state_tally(end, "a", tallied, sizeof(tallied));
	CHECK_STR(tallied, "ESTABLISHED=1");
	state_tally(end, "b", tallied, sizeof(tallied));
	CHECK_STR(tallied, "ESTABLISHED=1 LISTEN=1");
	result_free(&c);
}
