/*
 * The `tern` command as a new user meets it: the built binary (TERN_BIN, default build/tern)
 * is run through the shell with popen, and its output read back: JSON Lines checked with a
 * small hand-written JSON parser, the ladder diagram by its text, usage errors by exit status
 * and stderr, --pcap by the file it writes (and by tcpdump when it is installed).
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

struct cmd {
	char *out, *err;
	size_t out_len;
	int status; /* exit status, or 128 + signal */
};

static const char *tern_bin(void)
{
	const char *b = getenv("TERN_BIN");
	return b && *b ? b : "build/tern";
}

static char *slurp(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	REQUIRE(buf);
	for (;;) {
		if (n + 1024 > cap) {
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

/* Run `tern ARGS` (ARGS as the shell reads them); stdout and stderr are kept apart. */
static void run(struct cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run(struct cmd *c, const char *fmt, ...)
{
	char args[1024], dir[] = "/tmp/tern-cli-XXXXXX", errpath[64], line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	snprintf(line, sizeof(line), "'%s' %s 2>'%s'", tern_bin(), args, errpath);
	fflush(NULL);
	FILE *p = popen(line, "r");
	REQUIRE(p);
	c->out = slurp(p, &c->out_len);
	int st = pclose(p);
	c->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
	FILE *e = fopen(errpath, "r");
	REQUIRE(e);
	c->err = slurp(e, NULL);
	fclose(e);
	unlink(errpath);
	rmdir(dir);
}

static void cmd_free(struct cmd *c)
{
	free(c->out);
	free(c->err);
	c->out = c->err = NULL;
}

/* ---- a minimal JSON reader (RFC 8259), enough to validate a line and read its top level ---- */

enum { J_NONE, J_STR, J_NUM, J_BOOL, J_NULL, J_OBJ, J_ARR };

struct jmember {
	char key[64];
	int type;
	double num;
	char str[128];
};

struct jobj {
	struct jmember m[48];
	int n;
};

static const char *j_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string at p (at its opening quote); its text (ASCII escapes decoded) into out. */
static const char *j_string(const char *p, char *out, size_t n)
{
	size_t k = 0;
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return NULL; /* control characters must be escaped (includes the end) */
		if (c == '\\') {
			char e = *p++;
			switch (e) {
			case '"': case '\\': case '/': c = (unsigned char)e; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				int v = 0;
				for (int i = 0; i < 4; i++) {
					int h = hexval(*p++);
					if (h < 0)
						return NULL;
					v = v * 16 + h;
				}
				c = v < 0x80 ? (unsigned char)v : '?';
				break;
			}
			default:
				return NULL;
			}
		}
		if (out && k + 1 < n)
			out[k++] = (char)c;
	}
	if (out && n)
		out[k] = 0;
	return p;
}

static const char *j_number(const char *p, double *out)
{
	const char *s = p;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (out)
		*out = strtod(s, NULL);
	return p;
}

static const char *j_value(const char *p, int depth, struct jmember *m);

static const char *j_object(const char *p, int depth, struct jobj *top)
{
	if (depth > 16 || *p++ != '{')
		return NULL;
	p = j_ws(p);
	if (*p == '}')
		return p + 1;
	for (;;) {
		char key[64];
		p = j_string(j_ws(p), key, sizeof(key));
		if (!p)
			return NULL;
		p = j_ws(p);
		if (*p++ != ':')
			return NULL;
		struct jmember *m = NULL;
		if (top && top->n < 48) {
			m = &top->m[top->n++];
			memset(m, 0, sizeof(*m));
			snprintf(m->key, sizeof(m->key), "%s", key);
		}
		p = j_value(j_ws(p), depth + 1, m);
		if (!p)
			return NULL;
		p = j_ws(p);
		if (*p == '}')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *j_array(const char *p, int depth)
{
	if (depth > 16 || *p++ != '[')
		return NULL;
	p = j_ws(p);
	if (*p == ']')
		return p + 1;
	for (;;) {
		p = j_value(j_ws(p), depth + 1, NULL);
		if (!p)
			return NULL;
		p = j_ws(p);
		if (*p == ']')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *j_value(const char *p, int depth, struct jmember *m)
{
	int type;
	switch (*p) {
	case '{':
		type = J_OBJ;
		p = j_object(p, depth, NULL);
		break;
	case '[':
		type = J_ARR;
		p = j_array(p, depth);
		break;
	case '"':
		type = J_STR;
		p = j_string(p, m ? m->str : NULL, m ? sizeof(m->str) : 0);
		break;
	case 't':
		type = J_BOOL;
		p = strncmp(p, "true", 4) ? NULL : p + 4;
		break;
	case 'f':
		type = J_BOOL;
		p = strncmp(p, "false", 5) ? NULL : p + 5;
		break;
	case 'n':
		type = J_NULL;
		p = strncmp(p, "null", 4) ? NULL : p + 4;
		break;
	default:
		type = J_NUM;
		p = j_number(p, m ? &m->num : NULL);
		break;
	}
	if (m)
		m->type = type;
	return p;
}

/* One line of JSON Lines: exactly one object and nothing else. */
static bool json_line(const char *line, struct jobj *o)
{
	memset(o, 0, sizeof(*o));
	const char *p = j_object(j_ws(line), 0, o);
	return p && *j_ws(p) == 0;
}

static const struct jmember *jget(const struct jobj *o, const char *key, int type)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->m[i].key, key))
			return o->m[i].type == type ? &o->m[i] : NULL;
	return NULL;
}

static const char *jstr(const struct jobj *o, const char *key)
{
	const struct jmember *m = jget(o, key, J_STR);
	return m ? m->str : NULL;
}

static bool jstr_is(const struct jobj *o, const char *key, const char *want)
{
	const char *s = jstr(o, key);
	return s && !strcmp(s, want);
}

/* Virtual time in microseconds from "t" (printed in seconds with 6 decimals). */
static int64_t jtime_us(const struct jobj *o)
{
	const struct jmember *m = jget(o, "t", J_NUM);
	return m ? (int64_t)llround(m->num * 1e6) : -1;
}

TEST(cli_json_reader_self_test)
{
	struct jobj o;
	CHECK(json_line("{\"t\":1.500000,\"host\":\"a\",\"ev\":\"x\",\"o\":{\"k\":[1,2,{}]},\"b\":true}", &o));
	CHECK_EQ(jtime_us(&o), 1500000);
	CHECK(jstr_is(&o, "host", "a"));
	CHECK(jget(&o, "o", J_OBJ) != NULL);
	CHECK(jget(&o, "b", J_BOOL) != NULL);
	CHECK(json_line(" {\"s\":\"q\\\"\\u0041\"} ", &o));
	CHECK(jstr_is(&o, "s", "q\"A"));
	static const char *const bad[] = {"", "{", "{}}", "[1]", "{\"a\":}", "{\"a\":1,}", "{a:1}",
					  "{\"a\":01}", "{\"a\":\"x\ny\"}", "{\"a\":tru}",
					  "{\"a\":1} x", "{\"a\":.5}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (json_line(bad[i], &o))
			test_fail(__FILE__, __LINE__, "accepted bad JSON: %s", bad[i]);
}

/* Every line of out is a JSON object with a number t, a string host and a string ev, and t
 * never goes back. Returns the number of lines. */
static size_t check_json_lines(const char *file, int line, const char *out)
{
	size_t n = 0;
	int64_t last = 0;
	const char *p = out;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *l = strndup(p, len);
		REQUIRE(l);
		struct jobj o;
		n++;
		if (!json_line(l, &o))
			test_fail(file, line, "line %zu is not a JSON object: %.200s", n, l);
		else if (!jget(&o, "t", J_NUM) || !jget(&o, "host", J_STR) || !jget(&o, "ev", J_STR))
			test_fail(file, line, "line %zu lacks t, host or ev: %.200s", n, l);
		else if (jtime_us(&o) < last)
			test_fail(file, line, "line %zu goes back in time: %.200s", n, l);
		else
			last = jtime_us(&o);
		free(l);
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!*out || out[strlen(out) - 1] != '\n')
		test_fail(file, line, "the output does not end with a newline");
	return n;
}
#define CHECK_JSON_LINES(out) check_json_lines(__FILE__, __LINE__, (out))

/* Walk the lines of a JSON Lines output, each parsed into o. */
#define FOR_EACH_JSON(out, o)                                                                 \
	for (const char *p_ = (out), *nl_; p_ && *p_; p_ = nl_ ? nl_ + 1 : NULL)              \
		if ((nl_ = strchr(p_, '\n')), 0) {                                            \
		} else if (!json_line_n(p_, nl_ ? (size_t)(nl_ - p_) : strlen(p_), &(o))) {   \
		} else

static bool json_line_n(const char *p, size_t len, struct jobj *o)
{
	char *l = strndup(p, len);
	REQUIRE(l);
	bool ok = json_line(l, o);
	free(l);
	return ok;
}

/* syn-lost as JSON: host a's SYNs ("send" with flags "S") at 2^k - 1 s for k = 0..retries
 * (RTO 1 s doubling), and the error ETIMEDOUT at 2^(retries+1) - 1 s. */
static void check_syn_lost_json(const char *file, int line, const char *out, unsigned retries)
{
	CHECK_JSON_LINES(out);
	int64_t syn[16];
	unsigned nsyn = 0, nerr = 0, nsummary = 0;
	int64_t err_t = -1;
	struct jobj o;
	FOR_EACH_JSON(out, o)
	{
		if (jstr_is(&o, "ev", "send") && jstr_is(&o, "host", "a") && jstr_is(&o, "flags", "S")) {
			if (nsyn < 16)
				syn[nsyn] = jtime_us(&o);
			nsyn++;
		}
		if (jstr_is(&o, "ev", "error")) {
			nerr++;
			if (!jstr_is(&o, "host", "a") || !jstr_is(&o, "error", "ETIMEDOUT"))
				test_fail(file, line, "unexpected error event (%s on %s)",
					  jstr(&o, "error") ? jstr(&o, "error") : "?",
					  jstr(&o, "host") ? jstr(&o, "host") : "?");
			err_t = jtime_us(&o);
		}
		if (jstr_is(&o, "ev", "summary"))
			nsummary++;
	}
	if (nsyn != retries + 1)
		test_fail(file, line, "%u SYNs from a, want %u", nsyn, retries + 1);
	for (unsigned k = 0; k < nsyn && k <= retries && k < 16; k++)
		if (syn[k] != (int64_t)((1u << k) - 1) * 1000000)
			test_fail(file, line, "SYN #%u at t = %.6f, want %u", k, (double)syn[k] / 1e6,
				  (1u << k) - 1);
	if (nerr != 1)
		test_fail(file, line, "%u error events, want 1", nerr);
	if (err_t != (int64_t)((2u << retries) - 1) * 1000000)
		test_fail(file, line, "ETIMEDOUT at t = %.6f, want %u", (double)err_t / 1e6,
			  (2u << retries) - 1);
	if (nsummary != 2)
		test_fail(file, line, "%u summary lines, want one per host", nsummary);
}

TEST(cli_sim_syn_lost_json)
{
	struct cmd c;
	run(&c, "sim syn-lost --format json");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	check_syn_lost_json(__FILE__, __LINE__, c.out, 5); /* 0 1 3 7 15 31, ETIMEDOUT at 63 */
	cmd_free(&c);
}

TEST(cli_sim_syn_lost_json_syn_retries_3)
{
	struct cmd c;
	run(&c, "sim syn-lost --format json --set syn_retries=3");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	check_syn_lost_json(__FILE__, __LINE__, c.out, 3); /* 0 1 3 7, ETIMEDOUT at 15 */
	cmd_free(&c);
}

static const char *const scenario_names[] = {
	"handshake",	     "close",		  "close-three-way", "half-close",
	"simultaneous-open", "simultaneous-close", "syn-lost",	     "synack-lost",
	"ack-lost",	     "ack-lost-data",	  "old-duplicate-syn", "fin-lost",
	"fin-ack-lost",	     "peer-fin-lost",	  "fin-wait-2-timeout", "last-ack-lost",
	"time-wait",	     "rst-closed-port",	  "rst-abort",	     "peer-reboot",
};
#define NSCEN (sizeof(scenario_names) / sizeof(scenario_names[0]))


TEST(cli_sim_list_names_every_scenario)
{
	struct cmd c;
	run(&c, "sim --list");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	for (size_t i = 0; i < NSCEN; i++) {
		/* the name as the first word of a line, followed by its summary */
		bool found = false;
		size_t len = strlen(scenario_names[i]);
		for (const char *p = c.out; p && *p && !found; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			found = !strncmp(p, scenario_names[i], len) && p[len] == ' ' &&
				p[len + strspn(p + len, " ")] != '\n';
		if (!found)
			test_fail(__FILE__, __LINE__, "`tern sim --list` does not name %s", scenario_names[i]);
	}
	cmd_free(&c);
}

TEST(cli_sim_every_scenario_prints_json_lines)
{
	for (size_t i = 0; i < NSCEN; i++) {
		struct cmd c;
		run(&c, "sim %s --format json", scenario_names[i]);
		if (c.status != 0)
			test_fail(__FILE__, __LINE__, "%s: exit status %d", scenario_names[i], c.status);
		CHECK_STR(c.err, "");
		CHECK(CHECK_JSON_LINES(c.out) > 0);
		unsigned summaries = 0, sends = 0;
		struct jobj o;
		FOR_EACH_JSON(c.out, o)
		{
			summaries += jstr_is(&o, "ev", "summary");
			if (jstr_is(&o, "ev", "send")) {
				sends++;
				CHECK(jget(&o, "seq", J_NUM) && jget(&o, "ack", J_NUM) &&
				      jget(&o, "len", J_NUM) && jget(&o, "win", J_NUM) &&
				      jget(&o, "flags", J_STR) && jget(&o, "src", J_STR) &&
				      jget(&o, "dst", J_STR));
			}
			if (jstr_is(&o, "ev", "state"))
				CHECK(jget(&o, "from", J_STR) && jget(&o, "to", J_STR) && jget(&o, "conn", J_STR));
		}
		CHECK_EQ(summaries, 2);
		CHECK(sends > 0);
		cmd_free(&c);
	}
}

TEST(cli_sim_same_seed_same_output)
{
	struct cmd x, y, z;
	run(&x, "sim close --format json --seed 5 --loss 0.2 --dup 0.1 --reorder 0.1 --jitter 3");
	run(&y, "sim close --format json --seed 5 --loss 0.2 --dup 0.1 --reorder 0.1 --jitter 3");
	run(&z, "sim close --format json --seed 6 --loss 0.2 --dup 0.1 --reorder 0.1 --jitter 3");
	CHECK_EQ(x.status, 0);
	CHECK_EQ(z.status, 0);
	CHECK_STR(x.out, y.out);
	CHECK(strcmp(x.out, z.out) != 0);
	cmd_free(&x);
	cmd_free(&y);
	cmd_free(&z);
}

TEST(cli_sim_close_ladder)
{
	struct cmd c;
	run(&c, "sim close");
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	CHECK(strncmp(c.out, "tern sim close:", 15) == 0);
	CHECK(strstr(c.out, "ESTABLISHED -> FIN_WAIT_1") != NULL);
	CHECK(strstr(c.out, "FIN_WAIT_1 -> FIN_WAIT_2") != NULL);
	CHECK(strstr(c.out, "FIN_WAIT_2 -> TIME_WAIT") != NULL);
	CHECK(strstr(c.out, "TIME_WAIT -> CLOSED") != NULL);
	CHECK(strstr(c.out, "CLOSE_WAIT -> LAST_ACK") != NULL);
	CHECK(strstr(c.out, "FIN,ACK") != NULL);
	/* Ends with the summary: the client's FIN at 1 s, the server's 0.5 s after it read end
	 * of stream (1.01 s), arriving at 1.52 s, then 2*MSL = 60 s of TIME_WAIT. */
	const char *sum = strstr(c.out, "\nat the end (t = 61.520000 s):\n");
	CHECK(sum != NULL);
	if (sum) {
		CHECK(strstr(sum, "a: connections") != NULL);
		CHECK(strstr(sum, "b: connections") != NULL);
		CHECK(strstr(sum, "LISTEN") != NULL);
		CHECK(strstr(sum, "TIME_WAIT ->") == NULL); /* nothing of the exchange after it */
	}
	/* The last line is the server application's account. */
	size_t n = strlen(c.out);
	CHECK(n > 0 && c.out[n - 1] == '\n');
	if (n > 1) {
		const char *last = c.out + n - 2;
		while (last > c.out && last[-1] != '\n')
			last--;
		CHECK(strncmp(last, "  b: the application saw", 24) == 0);
	}
	cmd_free(&c);
}

/* Bad usage: exit status 2, a message on stderr, nothing on stdout. */
static void check_usage_error_(const char *file, int line, const char *args, const char *needle)
{
	struct cmd c;
	run(&c, "%s", args);
	if (c.status != 2)
		test_fail(file, line, "`tern %s`: exit status %d, want 2", args, c.status);
	if (!c.err[0])
		test_fail(file, line, "`tern %s`: nothing on stderr", args);
	else if (needle && !strstr(c.err, needle))
		test_fail(file, line, "`tern %s`: stderr does not mention '%s': %s", args, needle, c.err);
	if (c.out[0])
		test_fail(file, line, "`tern %s` printed on stdout: %.200s", args, c.out);
	cmd_free(&c);
}
#define CHECK_USAGE_ERROR(args, needle) check_usage_error_(__FILE__, __LINE__, (args), (needle))

TEST(cli_sim_bad_usage)
{
	CHECK_USAGE_ERROR("sim no-such-scenario", "no-such-scenario");
	CHECK_USAGE_ERROR("sim close --set no_such_setting=1", "no_such_setting");
	CHECK_USAGE_ERROR("sim close --set syn_retries=lots", "syn_retries");
	CHECK_USAGE_ERROR("sim close --set syn_retries", NULL);
	CHECK_USAGE_ERROR("sim close --loss 1.5", "--loss");
	CHECK_USAGE_ERROR("sim close --loss -0.1", "--loss");
	CHECK_USAGE_ERROR("sim close --loss abc", "--loss");
	CHECK_USAGE_ERROR("sim close --dup 2", "--dup");
	CHECK_USAGE_ERROR("sim close --corrupt 0.5x", "--corrupt");
	CHECK_USAGE_ERROR("sim close --reorder ''", "--reorder");
	CHECK_USAGE_ERROR("sim close --format xml", "--format");
	CHECK_USAGE_ERROR("sim close --seed", "--seed");
	CHECK_USAGE_ERROR("sim close --seed twelve", NULL);
	CHECK_USAGE_ERROR("sim close --no-such-option", "--no-such-option");
	CHECK_USAGE_ERROR("sim close handshake", NULL);
	CHECK_USAGE_ERROR("sim", NULL);
	CHECK_USAGE_ERROR("no-such-command", "no-such-command");
	/* Errors found once the run is set up print before the run starts. */
	struct cmd c;
	run(&c, "sim close --drop 'x>b:syn' --format json");
	CHECK_EQ(c.status, 2);
	CHECK(c.err[0] != 0);
	cmd_free(&c);
}

/* tern serve's usage errors come before any device is opened, so they need no root. Each
 * command also gives --host-addr equal to --addr, a usage error of its own found only when
 * opening the device: should a check below stop working, the command still stops there
 * (with the wrong message, failing the test) instead of configuring a device here. */
#define SERVE_SAFE "serve --addr 10.7.0.2/24 --host-addr 10.7.0.2 "
TEST(cli_serve_bad_usage)
{
	CHECK_USAGE_ERROR(SERVE_SAFE "bogus:80", "bogus:80");
	CHECK_USAGE_ERROR(SERVE_SAFE "echo:7 discard:7", "two services on port 7");
	CHECK_USAGE_ERROR(SERVE_SAFE "echo:0", "echo:0");
	CHECK_USAGE_ERROR(SERVE_SAFE, NULL);
	CHECK_USAGE_ERROR(SERVE_SAFE "echo", "--host-addr must differ from --addr");
	CHECK_USAGE_ERROR("serve echo", "--addr A.B.C.D/NN is required");
	CHECK_USAGE_ERROR(SERVE_SAFE "--dir /no/such/dir http",
			  "--dir /no/such/dir: No such file or directory");
	/* A file is not a directory to serve (it once started and answered 404 to all). */
	CHECK_USAGE_ERROR(SERVE_SAFE "--dir /dev/null http", "--dir /dev/null: Not a directory");
}

TEST(cli_sim_bad_usage_after_a_good_set)
{
	/* The same errors after a valid --set. */
	struct cmd c;
	run(&c, "sim syn-lost --set syn_retries=3 --set no_such_setting=1");
	CHECK(strstr(c.err, "no_such_setting") != NULL);
	/* An error after a valid --set must not leak (it once did: LeakSanitizer in the
	 * sanitizer build turned the exit status into 1). */
	CHECK_EQ(c.status, 2);
	CHECK(strstr(c.err, "LeakSanitizer") == NULL);
	CHECK_STR(c.out, "");
	cmd_free(&c);
	CHECK_USAGE_ERROR("sim no-such-scenario --set syn_retries=3", "no-such-scenario");
	CHECK_USAGE_ERROR("sim close --set syn_retries=3 --loss 7", "--loss");
}

TEST(cli_sim_pcap)
{
	char dir[] = "/tmp/tern-cli-pcap-XXXXXX";
	REQUIRE(mkdtemp(dir) != NULL);
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/run.pcap", dir);
	struct cmd c;
	run(&c, "sim handshake --pcap '%s'", path);
	CHECK_EQ(c.status, 0);
	CHECK_STR(c.err, "");
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	if (f) {
		size_t len;
		char *data = slurp(f, &len);
		fclose(f);
		/* The file header (24 bytes) and three records (16-byte header each): SYN and
		 * SYN-ACK (40 + 4 bytes of MSS option) and the ACK (40 bytes). */
		CHECK_EQ(len, 24 + 3 * 16 + 44 + 44 + 40);
		uint32_t magic = 0;
		if (len >= 4)
			memcpy(&magic, data, 4);
		CHECK_EQ(magic, 0xa1b2c3d4u);
		free(data);
	}
	cmd_free(&c);

	if (f && system("command -v tcpdump >/dev/null 2>&1") == 0) {
		char cmdline[256];
		snprintf(cmdline, sizeof(cmdline), "tcpdump -r '%s' -n 2>/dev/null", path);
		FILE *p = popen(cmdline, "r");
		CHECK(p != NULL);
		if (p) {
			char *txt = slurp(p, NULL);
			CHECK_EQ(pclose(p), 0);
			CHECK(strstr(txt, "Flags [S]") != NULL);
			CHECK(strstr(txt, "Flags [S.]") != NULL);
			CHECK(strstr(txt, "10.0.0.1.") != NULL);
			free(txt);
		}
	}
	if (f)
		CHECK_EQ(unlink(path), 0);
	CHECK_EQ(rmdir(dir), 0);
}

TEST(cli_sim_pcap_unwritable)
{
	CHECK_USAGE_ERROR("sim handshake --format json --pcap /nonexistent-tern-dir/x/run.pcap", NULL);
}
