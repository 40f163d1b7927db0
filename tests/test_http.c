/*
 * The pieces of the real-network commands that need no network: `tern serve http`'s request
 * parser and path resolution (tools/http.c), the text forms of impairments (tern_impair_parse,
 * tern_tun_parse_rule) and the link options (tools/netopts.c).
 */
#include "test.h"
#include "http.h"
#include "netopts.h"
#include "tern/impair.h"
#include "tern/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, struct http_req *rq)
{
	return http_parse_request(text, strlen(text), rq);
}

TEST(http_parse_get_keep_alive_by_version)
{
	struct http_req rq;
	const char *r11 = "GET /a/b.txt?x=1#f HTTP/1.1\r\nHost: t\r\n\r\n";
	CHECK_EQ(parse(r11, &rq), (int)strlen(r11));
	CHECK_STR(rq.path, "/a/b.txt");
	CHECK(!rq.head);
	CHECK_EQ(rq.minor, 1);
	CHECK(rq.keep_alive); /* RFC 9112 §9.3: 1.1 persists by default */
	CHECK(parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &rq) > 0);
	CHECK(!rq.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\n\r\n", &rq) > 0);
	CHECK(!rq.keep_alive); /* 1.0 closes unless asked */
	CHECK(parse("GET / HTTP/1.0\r\nconnection: foo, keep-alive\r\n\r\n", &rq) > 0);
	CHECK(rq.keep_alive);
	CHECK(parse("HEAD /x HTTP/1.1\r\n\r\n", &rq) > 0);
	CHECK(rq.head);
}

TEST(http_parse_needs_the_whole_head_and_takes_only_it)
{
	struct http_req rq;
	CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: t\r\n", &rq), 0);
	CHECK_EQ(parse("GET / HTTP/1.1\r\n\r", &rq), 0);
	/* Bare LF line ends (RFC 9112 §2.2); a second, pipelined request is not consumed. */
	const char *two = "GET /1 HTTP/1.1\n\nGET /2 HTTP/1.1\n\n";
	CHECK_EQ(parse(two, &rq), 17);
	CHECK_STR(rq.path, "/1");
	CHECK_EQ(parse(two + 17, &rq), 17);
	CHECK_STR(rq.path, "/2");
	/* Empty lines before a request line are skipped. */
	CHECK(parse("\r\nGET /z HTTP/1.1\r\n\r\n", &rq) > 0);
	CHECK_STR(rq.path, "/z");
}

TEST(http_parse_percent_decoding)
{
	struct http_req rq;
	CHECK(parse("GET /a%20b/%2e%2E HTTP/1.1\r\n\r\n", &rq) > 0);
	CHECK_STR(rq.path, "/a b/.."); /* decoded: http_open must refuse the ".." */
	CHECK_EQ(parse("GET /a%00b HTTP/1.1\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET /a%g0 HTTP/1.1\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET /a% HTTP/1.1\r\n\r\n", &rq), -400);
}

TEST(http_parse_refuses_what_it_cannot_serve)
{
	struct http_req rq;
	CHECK_EQ(parse("POST / HTTP/1.1\r\n\r\n", &rq), -501);
	CHECK_EQ(parse("get / HTTP/1.1\r\n\r\n", &rq), -501); /* methods are case-sensitive */
	CHECK_EQ(parse("GET / HTTP/2.0\r\n\r\n", &rq), -505);
	CHECK_EQ(parse("GET / HTTP/1.1x\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET http://h/ HTTP/1.1\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET  / HTTP/1.1\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET /\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("G(T / HTTP/1.1\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &rq), -400);
	CHECK_EQ(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &rq), -400);
	CHECK(parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &rq) > 0);
	CHECK_EQ(parse("GET /a\tb HTTP/1.1\r\n\r\n", &rq), -400);
}

TEST(http_parse_bounds)
{
	struct http_req rq;
	static char big[HTTP_MAX_HEAD + 64];
	/* No end of head within the limit: 431 once the limit is reached, not before. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	CHECK_EQ(http_parse_request(big, HTTP_MAX_HEAD - 1, &rq), 0);
	CHECK_EQ(http_parse_request(big, HTTP_MAX_HEAD, &rq), -431);
	/* A path longer than the buffer for it. */
	char *p = big;
	p += sprintf(p, "GET /");
	memset(p, 'b', HTTP_MAX_PATH + 10);
	p += HTTP_MAX_PATH + 10;
	p += sprintf(p, " HTTP/1.1\r\n\r\n");
	CHECK_EQ(http_parse_request(big, (size_t)(p - big), &rq), -414);
}

TEST(http_parse_random_bytes_never_crash)
{
	/* Hostile input: random bytes and random mutations of a good request; the result is
	 * always one of the documented ones and the path always terminated. */
	uint64_t x = test_seed(7);
	static char buf[512];
	const char *good = "GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	for (int i = 0; i < 20000; i++) {
		size_t n = strlen(good);
		memcpy(buf, good, n);
		for (int k = 0; k < 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (i % 3 == 0)
				buf[x % n] = (char)(x >> 32);
			else
				n = 1 + x % (sizeof(buf) - 1), buf[x % n] = (char)(x >> 24);
		}
		struct http_req rq;
		int rc = http_parse_request(buf, n, &rq);
		CHECK(rc == 0 || rc == -400 || rc == -431 || rc == -501 || rc == -505 ||
		      rc == -414 || (rc > 0 && (size_t)rc <= n));
		if (rc > 0)
			CHECK(strlen(rq.path) < sizeof(rq.path) && rq.path[0] == '/');
	}
}

/* A directory to serve, and a secret beside it. */
struct site {
	char root[64], real[PATH_MAX], secret[80];
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs(text, f);
	fclose(f);
}

static void site_make(struct site *s)
{
	char base[] = "/tmp/tern-http-XXXXXX";
	REQUIRE(mkdtemp(base));
	snprintf(s->root, sizeof(s->root), "%s/www", base);
	snprintf(s->secret, sizeof(s->secret), "%s/secret", base);
	REQUIRE(mkdir(s->root, 0755) == 0);
	put(s->secret, "secret\n");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/a.txt", s->root);
	put(p, "hello\n");
	snprintf(p, sizeof(p), "%s/sub", s->root);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/sub/index.html", s->root);
	put(p, "<p>sub</p>\n");
	snprintf(p, sizeof(p), "%s/list", s->root);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/list/x<y>.txt", s->root);
	put(p, "x");
	snprintf(p, sizeof(p), "%s/out", s->root);
	REQUIRE(symlink(s->secret, p) == 0);
	snprintf(p, sizeof(p), "%s/in", s->root);
	REQUIRE(symlink("a.txt", p) == 0);
	REQUIRE(realpath(s->root, s->real));
}

static void site_free(struct site *s)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(s->root) - 4), s->root);
	CHECK_EQ(system(cmd), 0);
}

TEST(http_open_serves_inside_and_nothing_outside)
{
	struct site s;
	site_make(&s);
	struct http_file f;
	CHECK_EQ(http_open(s.real, "/a.txt", &f), 0);
	CHECK_EQ(f.size, 6);
	CHECK_STR(f.type, "text/plain; charset=utf-8");
	char b[16] = {0};
	CHECK_EQ(read(f.fd, b, sizeof(b)), 6);
	CHECK_STR(b, "hello\n");
	http_file_close(&f);
	/* A directory gives its index.html. */
	CHECK_EQ(http_open(s.real, "/sub/", &f), 0);
	CHECK_EQ(f.size, 11);
	CHECK_STR(f.type, "text/html; charset=utf-8");
	http_file_close(&f);
	/* A symbolic link that stays inside is followed. */
	CHECK_EQ(http_open(s.real, "/in", &f), 0);
	CHECK_EQ(f.size, 6);
	http_file_close(&f);
	/* Missing; ".." in any form; a link out. */
	CHECK_EQ(http_open(s.real, "/nope", &f), -404);
	CHECK_EQ(http_open(s.real, "/../secret", &f), -403);
	CHECK_EQ(http_open(s.real, "/sub/../../secret", &f), -403);
	CHECK_EQ(http_open(s.real, "/sub/..", &f), -403);
	CHECK_EQ(http_open(s.real, "..", &f), -403);
	CHECK_EQ(http_open(s.real, "/out", &f), -403);
	CHECK_EQ(f.fd, -1);
	site_free(&s);
}

TEST(http_open_lists_a_directory_escaped)
{
	struct site s;
	site_make(&s);
	struct http_file f;
	CHECK_EQ(http_open(s.real, "/list", &f), 0);
	CHECK_EQ(f.fd, -1);
	REQUIRE(f.body);
	CHECK_EQ(f.size, strlen(f.body));
	CHECK(strstr(f.body, "<a href=\"/list/x&lt;y&gt;.txt\">x&lt;y&gt;.txt</a>") != NULL);
	CHECK(strstr(f.body, "<y>") == NULL);
	http_file_close(&f);
	site_free(&s);
}

TEST(http_head_and_types)
{
	char b[256];
	size_t n = http_head(b, sizeof(b), 404, 14, "text/plain", false);
	CHECK_EQ(n, strlen(b));
	CHECK_STR(b, "HTTP/1.1 404 Not Found\r\nServer: tern\r\nContent-Length: 14\r\n"
		     "Content-Type: text/plain\r\nConnection: close\r\n\r\n");
	CHECK_EQ(http_head(b, 20, 200, 1, "x", true), 0); /* does not fit */
	CHECK_STR(http_content_type("/a/B.HTML"), "text/html; charset=utf-8");
	CHECK_STR(http_content_type("/a.b/noext"), "application/octet-stream");
	CHECK_STR(http_content_type("/x.png"), "image/png");
}

TEST(impair_parse_text)
{
	struct tern_impair m;
	memset(&m, 0, sizeof(m));
	const char *bad = NULL;
	CHECK_EQ(tern_impair_parse("loss=0.03,reorder=1%,dup=0.01,corrupt=0,delay=10ms,jitter=500us",
				   &m, &bad), 0);
	CHECK(m.loss == 0.03 && m.reorder == 0.01 && m.dup == 0.01 && m.corrupt == 0);
	CHECK_EQ(m.delay_us, 10000);
	CHECK_EQ(m.jitter_us, 500);
	CHECK_EQ(tern_impair_parse("delay=2", &m, NULL), 0); /* milliseconds by default */
	CHECK_EQ(m.delay_us, 2000);
	CHECK_EQ(m.loss * 100, 3); /* fields not named are kept */
	struct tern_impair before = m;
	CHECK_EQ(tern_impair_parse("loss=0.1,bogus=1", &m, &bad), -EINVAL);
	CHECK_STR(bad, "bogus=1");
	CHECK(m.loss == before.loss); /* nothing changed on failure */
	CHECK_EQ(tern_impair_parse("loss=1.5", &m, NULL), -EINVAL);
	CHECK_EQ(tern_impair_parse("loss=-0.1", &m, NULL), -EINVAL);
	CHECK_EQ(tern_impair_parse("delay=5h", &m, NULL), -EINVAL);
	CHECK_EQ(tern_impair_parse("delay=", &m, NULL), -EINVAL);
	CHECK_EQ(tern_impair_parse("loss", &m, NULL), -EINVAL);
	CHECK_EQ(tern_impair_parse("delay=7200s", &m, NULL), -EINVAL);
}

TEST(tun_parse_rule_text)
{
	struct tern_sim_rule r;
	CHECK_EQ(tern_tun_parse_rule("out:syn#1", TERN_SIM_DROP, &r), 0);
	CHECK_EQ(r.from, TERN_TUN_TERN);
	CHECK_EQ(r.to, TERN_TUN_KERNEL);
	CHECK_EQ(r.cls, TERN_SIM_SYN);
	CHECK_EQ(r.nth, 1);
	CHECK_EQ(r.count, 1);
	CHECK_EQ(tern_tun_parse_rule("in:data#3-5", TERN_SIM_DROP, &r), 0);
	CHECK_EQ(r.from, TERN_TUN_KERNEL);
	CHECK_EQ(r.cls, TERN_SIM_DATA);
	CHECK_EQ(r.nth, 3);
	CHECK_EQ(r.count, 3);
	CHECK_EQ(tern_tun_parse_rule("fin", TERN_SIM_DROP, &r), 0);
	CHECK_EQ(r.from, -1);
	CHECK_EQ(r.nth, 0);
	CHECK_EQ(tern_tun_parse_rule("up:syn", TERN_SIM_DROP, &r), -EINVAL);
	CHECK_EQ(tern_tun_parse_rule("syn#0", TERN_SIM_DROP, &r), -EINVAL);
	CHECK_EQ(tern_tun_parse_rule("syn#5-3", TERN_SIM_DROP, &r), -EINVAL);
	CHECK_EQ(tern_tun_parse_rule("syn#-3", TERN_SIM_DROP, &r), -EINVAL);
	CHECK_EQ(tern_tun_parse_rule("synack#2x", TERN_SIM_DROP, &r), -EINVAL);
}

TEST(netopts_link_options)
{
	struct net_opts o;
	net_opts_init(&o);
	char *argv[] = {"x", "--addr", "10.7.0.2/24", "--impair", "loss=0.02",
			"--impair-out", "delay=5ms", "--drop", "out:syn#1", "--set",
			"syn_retries=3", "-vv", "--mtu", "9000", "--seed", "42", NULL};
	int argc = 16;
	for (int i = 1; i < argc; i++)
		CHECK_EQ(net_opt("t", argc, argv, &i, &o), 1);
	CHECK_EQ(o.tun.addr, TERN_IP4(10, 7, 0, 2));
	CHECK_EQ(o.tun.prefix_len, 24);
	CHECK(o.tun.impair_in.loss == 0.02 && o.tun.impair_out.loss == 0.02);
	CHECK_EQ(o.tun.impair_out.delay_us, 5000);
	CHECK_EQ(o.tun.impair_in.delay_us, 0);
	CHECK_EQ(o.tun.nrules, 1);
	CHECK_EQ(o.set.syn_retries, 3);
	CHECK_EQ(o.verbose, 2);
	CHECK_EQ(o.tun.mtu, 9000);
	CHECK_EQ(o.tun.seed, 42);
	/* Malformed values are refused with a message; unknown options are not taken. */
	char *bad[][3] = {{"x", "--addr", "10.7.0.2"}, {"x", "--addr", "10.7.0.2/31"},
			  {"x", "--mtu", "100"}, {"x", "--impair", "loss=2"},
			  {"x", "--set", "nope=1"}, {"x", "--drop", "sideways:syn"},
			  {"x", "--tun", "a/b"}};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		int i = 1;
		CHECK_EQ(net_opt("t", 3, bad[k], &i, &o), -1);
	}
	char *other[] = {"x", "--bytes", "1"};
	int i = 1;
	CHECK_EQ(net_opt("t", 3, other, &i, &o), 0);
	char *last[] = {"x", "--addr"};
	i = 1;
	CHECK_EQ(net_opt("t", 2, last, &i, &o), -1);
}
