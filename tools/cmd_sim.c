/* `tern sim`: run a named scenario on the simulated network and show what happened. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "scenario.h"
#include "sim_print.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern sim --list\n"
		"       tern sim NAME [options]\n"
		"\n"
		"Runs a scenario between host a (10.0.0.1, client) and host b (10.0.0.2, server)\n"
		"in virtual time and prints every segment, state change and application event.\n"
		"\n"
		"options:\n"
		"  --format text|json   a ladder diagram (default) or JSON Lines, one event a line\n"
		"  --seed N             random seed (default 1); the same seed gives the same run\n"
		"  --set NAME=VALUE     a stack setting for both hosts (see `tern settings`)\n"
		"  --loss P --dup P --reorder P --corrupt P\n"
		"                       random impairments, probabilities per packet, both ways\n"
		"  --delay MS           one-way delay (default 10)\n"
		"  --jitter MS          plus a uniform random 0..MS\n"
		"  --drop RULE          drop exactly: [FROM>TO:]CLASS[#N[-M]], e.g. 'syn', 'fin#2',\n"
		"                       'b>a:synack#1-3'; CLASS: any syn synack ack data fin rst\n"
		"  --pcap FILE          write every packet on the wire to FILE (pcap, raw IPv4)\n"
		"  --absolute           print raw sequence numbers, not relative to each ISN\n"
		"  --bytes N            transfer: bytes each way (default 1000000)\n"
		"  --in FILE            transfer: a sends this file's bytes\n"
		"  --out FILE           transfer: b writes what arrives to FILE\n"
		"  --verbose            transfer: print every segment in the ladder too\n");
}

static int parse_prob(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || v < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

static int parse_ms(const char *s, uint32_t *out_us)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || v < 0 || v > 3600e3)
		return -1;
	*out_us = (uint32_t)(v * 1000 + 0.5);
	return 0;
}

static void list_scenarios(void)
{
	size_t n;
	const struct scenario *all = scenario_all(&n);
	for (size_t i = 0; i < n; i++)
		printf("%-20s %s\n", all[i].name, all[i].summary);
}

struct tally {
	unsigned by_state[TERN_STATE_MAX];
	FILE *out;
	int json;
	const char *host;
	double t;
};

static void list_conn(void *user, const struct tern_conn_info *c)
{
	struct tally *t = user;
	if (c->state > 0 && c->state < TERN_STATE_MAX)
		t->by_state[c->state]++;
	char l[32], r[32];
	fmt_addr(l, sizeof(l), c->laddr, c->lport);
	fmt_addr(r, sizeof(r), c->raddr, c->rport);
	if (t->json)
		fprintf(t->out, "{\"t\":%.6f,\"host\":\"%s\",\"ev\":\"conn\",\"local\":\"%s\",\"remote\":\"%s\",\"state\":\"%s\"}\n",
			t->t, t->host, l, r, tern_state_name(c->state));
	else
		fprintf(t->out, "    tcp  %-22s %-22s %s\n", l, r, tern_state_name(c->state));
}

static void summary(FILE *out, struct scn *s, int json)
{
	double t = (double)tern_sim_now(s->sim) / 1e6;
	if (!json)
		fprintf(out, "\nat the end (t = %.6f s):\n", t);
	for (int h = 0; h < 2; h++) {
		const char *name = h == 0 ? "a" : "b";
		struct tally tl;
		memset(&tl, 0, sizeof(tl));
		tl.out = out;
		tl.json = json;
		tl.host = name;
		tl.t = t;
		if (!json)
			fprintf(out, "  %s: connections\n", name);
		size_t n = tern_stack_foreach(tern_sim_stack(s->sim, h), list_conn, &tl);
		const struct scn_app *a = &s->app[h];
		if (json) {
			fprintf(out, "{\"t\":%.6f,\"host\":\"%s\",\"ev\":\"summary\",\"states\":{", t, name);
			int c = 0;
			for (int st = 1; st < TERN_STATE_MAX; st++)
				if (tl.by_state[st])
					fprintf(out, "%s\"%s\":%u", c++ ? "," : "", tern_state_name(st), tl.by_state[st]);
			fprintf(out, "},\"connected\":%u,\"accepted\":%u,\"bytes_received\":%llu,\"errors\":[",
				a->connected, a->accepted, (unsigned long long)a->rx_bytes);
			for (unsigned i = 0; i < a->nerrors; i++)
				fprintf(out, "%s\"%s\"", i ? "," : "", tern_errno_name(a->errors[i]));
			fprintf(out, "]}\n");
			continue;
		}
		if (!n) {
			fprintf(out, "    (none)\n");
		} else {
			/* Counted by state the way netstat -n | awk '/^tcp/{++S[$NF]} END{for(a in
			 * S) print a, S[a]}' counts them. */
			fprintf(out, "    by state:\n");
			for (int st = 1; st < TERN_STATE_MAX; st++)
				if (tl.by_state[st])
					fprintf(out, "      %s %u\n", tern_state_name(st), tl.by_state[st]);
		}
		fprintf(out, "  %s: the application saw %u connected, %u accepted, %llu bytes received, %u end-of-stream",
			name, a->connected, a->accepted, (unsigned long long)a->rx_bytes, a->eofs);
		if (a->nerrors) {
			fprintf(out, ", errors:");
			for (unsigned i = 0; i < a->nerrors; i++)
				fprintf(out, " %s", tern_errno_name(a->errors[i]));
		}
		fprintf(out, "\n");
	}
}

/* A transfer says whether every byte arrived as sent; a failure is the exit status 1. */
static int transfer_report(FILE *out, struct scn *s, int json)
{
	int status = 0;
	const struct scn_app *a = &s->app[0], *b = &s->app[1];
	if (!s->bulk_accept)
		return 0;
	bool ok = !s->bulk_error && a->nerrors == 0 && b->nerrors == 0 && a->eofs == 1 &&
		  b->eofs == 1 && s->bulk_bad == 0;
	if (json)
		fprintf(out, "{\"t\":%.6f,\"host\":\"a\",\"ev\":\"transfer\",\"a_to_b\":%llu,\"b_to_a\":%llu,\"ok\":%s}\n",
			(double)tern_sim_now(s->sim) / 1e6, (unsigned long long)b->rx_bytes,
			(unsigned long long)a->rx_bytes, ok ? "true" : "false");
	else
		fprintf(out, "\ntransfer: b received %llu bytes, a received %llu bytes: %s\n",
			(unsigned long long)b->rx_bytes, (unsigned long long)a->rx_bytes,
			ok ? "complete, every byte once and in order" : "FAILED");
	if (!ok)
		status = 1;
	return status;
}

int cmd_sim(int argc, char **argv)
{
	struct scn_opts o;
	static char set_names[SCN_MAX_SETS][64];
	memset(&o, 0, sizeof(o));
	o.seed = 1;
	const char *name = NULL;
	int json = 0, absolute = 0, verbose = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                                \
	do {                                                                                  \
		if (!v) {                                                                     \
			fprintf(stderr, "tern sim: %s needs a value\n", a);                   \
			return 2;                                                             \
		}                                                                             \
		i++;                                                                          \
	} while (0)
		if (!strcmp(a, "--list")) {
			list_scenarios();
			return 0;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--format")) {
			NEED();
			if (!strcmp(v, "json"))
				json = 1;
			else if (!strcmp(v, "text"))
				json = 0;
			else {
				fprintf(stderr, "tern sim: --format is text or json\n");
				return 2;
			}
		} else if (!strcmp(a, "--seed")) {
			NEED();
			char *end;
			o.seed = strtoull(v, &end, 0);
			if (*end || end == v) {
				fprintf(stderr, "tern sim: bad seed '%s'\n", v);
				return 2;
			}
		} else if (!strcmp(a, "--set")) {
			NEED();
			const char *eq = strchr(v, '=');
			if (!eq || o.nsets >= SCN_MAX_SETS) {
				fprintf(stderr, "tern sim: --set takes NAME=VALUE\n");
				return 2;
			}
			char *nm = set_names[o.nsets];
			snprintf(nm, sizeof(set_names[0]), "%.*s", (int)(eq - v), v);
			struct tern_settings probe;
			tern_settings_default(&probe);
			int rc = tern_settings_set(&probe, nm, eq + 1);
			if (rc == -ENOENT) {
				fprintf(stderr, "tern sim: no setting '%s' (see `tern settings`)\n", nm);
				return 2;
			}
			if (rc < 0) {
				fprintf(stderr, "tern sim: bad value for %s: '%s'\n", nm, eq + 1);
				return 2;
			}
			o.sets[o.nsets].name = nm;
			o.sets[o.nsets].value = eq + 1;
			o.nsets++;
		} else if (!strcmp(a, "--loss") || !strcmp(a, "--dup") || !strcmp(a, "--reorder") ||
			   !strcmp(a, "--corrupt")) {
			NEED();
			double *dst = !strcmp(a, "--loss") ? &o.imp.loss
				      : !strcmp(a, "--dup") ? &o.imp.dup
				      : !strcmp(a, "--reorder") ? &o.imp.reorder : &o.imp.corrupt;
			if (parse_prob(v, dst) < 0) {
				fprintf(stderr, "tern sim: %s takes a probability between 0 and 1\n", a);
				return 2;
			}
		} else if (!strcmp(a, "--delay") || !strcmp(a, "--jitter")) {
			NEED();
			uint32_t *dst = !strcmp(a, "--delay") ? &o.imp.delay_us : &o.imp.jitter_us;
			if (parse_ms(v, dst) < 0) {
				fprintf(stderr, "tern sim: %s takes milliseconds\n", a);
				return 2;
			}
			if (!strcmp(a, "--delay"))
				o.delay_set = true;
		} else if (!strcmp(a, "--drop")) {
			NEED();
			if (o.nrules >= SCN_MAX_RULES) {
				fprintf(stderr, "tern sim: too many --drop rules\n");
				return 2;
			}
			o.rules[o.nrules].text = v;
			o.rules[o.nrules].action = TERN_SIM_DROP;
			o.nrules++;
		} else if (!strcmp(a, "--pcap")) {
			NEED();
			o.pcap = v;
		} else if (!strcmp(a, "--absolute")) {
			absolute = 1;
		} else if (!strcmp(a, "--verbose")) {
			verbose = 1;
		} else if (!strcmp(a, "--bytes")) {
			NEED();
			char *end;
			o.bytes = strtoull(v, &end, 0);
			if (*end || end == v || v[0] == '-' || o.bytes == 0) {
				fprintf(stderr, "tern sim: --bytes takes a positive number\n");
				return 2;
			}
		} else if (!strcmp(a, "--in")) {
			NEED();
			o.in_file = v;
		} else if (!strcmp(a, "--out")) {
			NEED();
			o.out_file = v;
		} else if (a[0] == '-') {
			fprintf(stderr, "tern sim: unknown option %s\n", a);
			usage(stderr);
			return 2;
		} else if (!name) {
			name = a;
		} else {
			fprintf(stderr, "tern sim: one scenario at a time\n");
			return 2;
		}
	}
	if (!name) {
		usage(stderr);
		return 2;
	}
	const struct scenario *sc = scenario_find(name);
	if (!sc) {
		fprintf(stderr, "tern sim: no scenario '%s'; `tern sim --list` names them\n", name);
		return 2;
	}
	struct printer *p = printer_new(stdout, json, absolute);
	if (sc->bulk && !verbose)
		printer_quiet_segments(p);
	if (!json) {
		printf("tern sim %s: %s\n", sc->name, sc->summary);
		printf("a = 10.0.0.1 (client), b = 10.0.0.2 (server); seed %llu; one-way delay %.3f ms%s\n",
		       (unsigned long long)o.seed, o.delay_set ? o.imp.delay_us / 1000.0 : 10.0,
		       absolute ? "" : "; seq/ack relative to each ISN");
		if (sc->defaults[0])
			printf("scenario settings: %s\n", sc->defaults);
		printf("\n%11s  %-*s%s\n", "time (s)", 84 - 1, "a", "b");
	}
	struct scn *s = NULL;
	int rc = scn_run(sc, &o, NULL, printer_event, p, &s);
	printer_flush(p);
	if (rc < 0) {
		if (rc == -EINVAL && o.in_file)
			fprintf(stderr, "tern sim: --in %s: not a regular file, or a bad rule or setting\n", o.in_file);
		else if (rc == -EINVAL)
			fprintf(stderr, "tern sim: bad rule or setting\n");
		else if (o.in_file || o.out_file || o.pcap)
			fprintf(stderr, "tern sim: %s%s%s%s%s%s: %s\n", o.in_file ? "--in " : "",
				o.in_file ? o.in_file : "", o.out_file ? " --out " : "",
				o.out_file ? o.out_file : "", o.pcap ? " --pcap " : "", o.pcap ? o.pcap : "",
				strerror(-rc));
		else
			fprintf(stderr, "tern sim: %s\n", strerror(-rc));
		printer_free(p);
		return 2;
	}
	summary(stdout, s, json);
	int status = transfer_report(stdout, s, json);
	scn_finish(s);
	printer_free(p);
	return status;
}
