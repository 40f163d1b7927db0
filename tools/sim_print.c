/* Printing a simulation: the ladder diagram for people, JSON Lines for programs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim_print.h"

void fmt_addr(char *buf, size_t n, uint32_t a, uint16_t port)
{
	if (port)
		snprintf(buf, n, "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, port);
	else
		snprintf(buf, n, "%u.%u.%u.%u:*", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* Letters from "SAFRPUEC", in that order, for the flags set. */
void fmt_flag_letters(char *buf, uint16_t f)
{
	static const struct {
		uint16_t bit;
		char c;
	} map[] = {{TERN_TH_SYN, 'S'}, {TERN_TH_ACK, 'A'}, {TERN_TH_FIN, 'F'}, {TERN_TH_RST, 'R'},
		   {TERN_TH_PSH, 'P'}, {TERN_TH_URG, 'U'}, {TERN_TH_ECE, 'E'}, {TERN_TH_CWR, 'C'}};
	int k = 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (f & map[i].bit)
			buf[k++] = map[i].c;
	buf[k] = 0;
}

static void fmt_flag_words(char *buf, size_t n, uint16_t f)
{
	static const struct {
		uint16_t bit;
		const char *w;
	} map[] = {{TERN_TH_SYN, "SYN"}, {TERN_TH_FIN, "FIN"}, {TERN_TH_RST, "RST"},
		   {TERN_TH_PSH, "PSH"}, {TERN_TH_URG, "URG"}, {TERN_TH_ACK, "ACK"},
		   {TERN_TH_ECE, "ECE"}, {TERN_TH_CWR, "CWR"}};
	buf[0] = 0;
	size_t k = 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (!(f & map[i].bit))
			continue;
		k += (size_t)snprintf(buf + k, n > k ? n - k : 0, "%s%s", k ? "," : "", map[i].w);
	}
	if (!k)
		snprintf(buf, n, "none");
}

static void fmt_opts(char *buf, size_t n, const struct tern_tcp_opts *o)
{
	size_t k = 0;
	buf[0] = 0;
	if (o->has & TERN_OPT_MSS)
		k += (size_t)snprintf(buf + k, n - k, "%smss %u", k ? "," : "", o->mss);
	if (o->has & TERN_OPT_SACK_PERM)
		k += (size_t)snprintf(buf + k, n - k, "%ssackOK", k ? "," : "");
	if (o->has & TERN_OPT_TS)
		k += (size_t)snprintf(buf + k, n - k, "%sTS val %u ecr %u", k ? "," : "", o->ts_val, o->ts_ecr);
	if (o->has & TERN_OPT_WSCALE)
		k += (size_t)snprintf(buf + k, n - k, "%swscale %u", k ? "," : "", o->wscale);
	if (o->has & TERN_OPT_SACK)
		k += (size_t)snprintf(buf + k, n - k, "%ssack %u", k ? "," : "", o->nsack);
}

/* ---- relative sequence numbers: each side's ISN as seen on its SYN ---- */

struct isn_entry {
	int host;
	uint32_t laddr, raddr;
	uint16_t lport, rport;
	uint32_t mine, peer;
	int has_mine, has_peer;
};

static const char *host_name(int host)
{
	static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
	return host >= 0 && host < 8 ? names[host] : "?";
}

struct printer {
	FILE *out;
	int json, absolute, quiet;
	struct isn_entry isn[64];
	int nisn;
	/* A segment line waits for the wire's verdict on it (lost, duplicated, ...). */
	char pending[512];
	int has_pending;
	const char *verdict;
};

static struct isn_entry *isn_find(struct printer *p, int host, uint32_t la, uint16_t lp,
				  uint32_t ra, uint16_t rp, int create)
{
	for (int i = 0; i < p->nisn; i++) {
		struct isn_entry *e = &p->isn[i];
		if (e->host == host && e->laddr == la && e->lport == lp && e->raddr == ra && e->rport == rp)
			return e;
	}
	if (!create)
		return NULL;
	struct isn_entry *e = &p->isn[p->nisn < 64 ? p->nisn++ : 63];
	memset(e, 0, sizeof(*e));
	e->host = host;
	e->laddr = la;
	e->lport = lp;
	e->raddr = ra;
	e->rport = rp;
	return e;
}

static void isn_learn(struct printer *p, const struct tern_sim_ev *ev)
{
	const struct tern_seg_info *s = &ev->tr.u.seg;
	if (!(s->flags & TERN_TH_SYN) || (s->flags & TERN_TH_RST))
		return;
	if (ev->kind == TERN_SIM_EV_SEND) {
		struct isn_entry *e = isn_find(p, ev->host, s->src, s->sport, s->dst, s->dport, 1);
		e->mine = s->seq;
		e->has_mine = 1;
	} else if (ev->kind == TERN_SIM_EV_RECV) {
		struct isn_entry *e = isn_find(p, ev->host, s->dst, s->dport, s->src, s->sport, 1);
		e->peer = s->seq;
		e->has_peer = 1;
	}
}

/* seq and ack as the sender sees them: relative to its own ISN and to its peer's. */
static void rel_numbers(struct printer *p, int sender, const struct tern_seg_info *s, char *seq,
			char *ack, size_t n)
{
	struct isn_entry *e = p->absolute ? NULL
					  : isn_find(p, sender, s->src, s->sport, s->dst, s->dport, 0);
	if (e && e->has_mine)
		snprintf(seq, n, "%d", (int32_t)(s->seq - e->mine));
	else
		snprintf(seq, n, "%u", s->seq);
	if (e && e->has_peer)
		snprintf(ack, n, "%d", (int32_t)(s->ack - e->peer));
	else
		snprintf(ack, n, "%u", s->ack);
}

/* ---- the ladder ---- */

#define LADDER_W 84

static void flush_pending(struct printer *p)
{
	if (!p->has_pending)
		return;
	fputs(p->pending, p->out);
	if (p->verdict)
		fprintf(p->out, "  %s", p->verdict);
	fputc('\n', p->out);
	p->has_pending = 0;
	p->verdict = NULL;
}

static void line_left(struct printer *p, uint64_t t, const char *text)
{
	fprintf(p->out, "%11.6f  %s\n", (double)t / 1e6, text);
}

static void line_right(struct printer *p, uint64_t t, const char *text)
{
	int len = (int)strlen(text);
	int pad = LADDER_W - len;
	if (pad < 1)
		pad = 1;
	fprintf(p->out, "%11.6f  %*s%s\n", (double)t / 1e6, pad, "", text);
}

static void ladder_segment(struct printer *p, const struct tern_sim_ev *ev)
{
	const struct tern_seg_info *s = &ev->tr.u.seg;
	char flags[64], seq[16], ack[16], opts[96], body[256];
	fmt_flag_words(flags, sizeof(flags), s->flags);
	rel_numbers(p, ev->host, s, seq, ack, sizeof(seq));
	fmt_opts(opts, sizeof(opts), &s->opts);
	int k = snprintf(body, sizeof(body), " %s seq=%s", flags, seq);
	if (s->flags & TERN_TH_ACK)
		k += snprintf(body + k, sizeof(body) - (size_t)k, " ack=%s", ack);
	k += snprintf(body + k, sizeof(body) - (size_t)k, " win=%u len=%u", s->win, s->len);
	if (opts[0])
		snprintf(body + k, sizeof(body) - (size_t)k, " <%s> ", opts);
	else
		snprintf(body + k, sizeof(body) - (size_t)k, " ");
	/* Hosts other than a and b (none in the standard scenarios) print as from the left. */
	int rightward = ev->host == 0;
	char line[512];
	int blen = (int)strlen(body);
	int dashes = LADDER_W - blen - 5;
	if (dashes < 2)
		dashes = 2;
	int pre = rightward ? 3 : 3, post = dashes - pre;
	char *q = line;
	q += sprintf(q, "%11.6f  ", (double)ev->t_us / 1e6);
	if (rightward) {
		for (int i = 0; i < pre; i++)
			*q++ = '-';
		q += sprintf(q, "%s", body);
		for (int i = 0; i < post; i++)
			*q++ = '-';
		q += sprintf(q, "--> b");
	} else {
		q += sprintf(q, "a <--");
		for (int i = 0; i < post; i++)
			*q++ = '-';
		q += sprintf(q, "%s", body);
		for (int i = 0; i < pre; i++)
			*q++ = '-';
	}
	*q = 0;
	snprintf(p->pending, sizeof(p->pending), "%s", line);
	p->has_pending = 1;
	p->verdict = NULL;
}

static void ladder_event(struct printer *p, const struct scn_event *e)
{
	const struct tern_sim_ev *ev = &e->ev;
	const char *who = host_name(ev->host);
	char text[320];
	switch (ev->kind) {
	case TERN_SIM_EV_DROP:
		p->verdict = "LOST on the wire";
		return;
	case TERN_SIM_EV_DUP:
		p->verdict = p->verdict ? p->verdict : "duplicated on the wire";
		return;
	case TERN_SIM_EV_DELAY:
		p->verdict = p->verdict ? p->verdict : "held back on the wire";
		return;
	case TERN_SIM_EV_CORRUPT:
		p->verdict = "a bit flipped on the wire";
		return;
	default:
		break;
	}
	flush_pending(p);
	switch (ev->kind) {
	case TERN_SIM_EV_SEND:
		ladder_segment(p, ev);
		return;
	case TERN_SIM_EV_INJECT:
		if (!ev->seg_valid)
			return;
		ladder_segment(p, ev);
		p->verdict = "put on the wire by the scenario";
		return;
	case TERN_SIM_EV_RECV:
		return; /* the arrow already says where it went */
	case TERN_SIM_EV_STATE:
		snprintf(text, sizeof(text), "%s -> %s", tern_state_name(ev->tr.u.state.from),
			 tern_state_name(ev->tr.u.state.to));
		break;
	case TERN_SIM_EV_ERROR:
		snprintf(text, sizeof(text), "error for the application: %s",
			 tern_errno_name(ev->tr.u.error));
		break;
	case TERN_SIM_EV_DISCARD:
		snprintf(text, sizeof(text), "discarded a packet: %s", ev->tr.reason ? ev->tr.reason : "?");
		break;
	case TERN_SIM_EV_ICMP:
		snprintf(text, sizeof(text), "ICMP type %u %s", ev->tr.u.icmp.type,
			 ev->tr.u.icmp.out ? "sent" : "received");
		break;
	case TERN_SIM_EV_APP:
		snprintf(text, sizeof(text), "[%s] %s", who, e->text);
		break;
	default:
		return;
	}
	if (ev->host == 0)
		line_left(p, ev->t_us, text);
	else
		line_right(p, ev->t_us, text);
}

/* ---- JSON Lines ---- */

static void json_seg(struct printer *p, const struct tern_seg_info *s)
{
	char src[32], dst[32], fl[16];
	fmt_addr(src, sizeof(src), s->src, s->sport);
	fmt_addr(dst, sizeof(dst), s->dst, s->dport);
	fmt_flag_letters(fl, s->flags);
	fprintf(p->out, ",\"src\":\"%s\",\"dst\":\"%s\",\"flags\":\"%s\",\"seq\":%u,\"ack\":%u,\"len\":%u,\"win\":%u",
		src, dst, fl, s->seq, s->ack, s->len, s->win);
	const struct tern_tcp_opts *o = &s->opts;
	if (o->has) {
		fprintf(p->out, ",\"opts\":{");
		int c = 0;
		if (o->has & TERN_OPT_MSS)
			fprintf(p->out, "%s\"mss\":%u", c++ ? "," : "", o->mss);
		if (o->has & TERN_OPT_WSCALE)
			fprintf(p->out, "%s\"wscale\":%u", c++ ? "," : "", o->wscale);
		if (o->has & TERN_OPT_SACK_PERM)
			fprintf(p->out, "%s\"sack_perm\":true", c++ ? "," : "");
		if (o->has & TERN_OPT_TS)
			fprintf(p->out, "%s\"ts_val\":%u,\"ts_ecr\":%u", c++ ? "," : "", o->ts_val, o->ts_ecr);
		if (o->has & TERN_OPT_SACK) {
			fprintf(p->out, "%s\"sack\":[", c++ ? "," : "");
			for (int i = 0; i < o->nsack; i++)
				fprintf(p->out, "%s[%u,%u]", i ? "," : "", o->sack[i].left, o->sack[i].right);
			fprintf(p->out, "]");
		}
		fprintf(p->out, "}");
	}
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_event(struct printer *p, const struct scn_event *e)
{
	const struct tern_sim_ev *ev = &e->ev;
	static const char *const names[] = {
		[TERN_SIM_EV_SEND] = "send",       [TERN_SIM_EV_RECV] = "recv",
		[TERN_SIM_EV_DROP] = "drop",       [TERN_SIM_EV_DUP] = "dup",
		[TERN_SIM_EV_CORRUPT] = "corrupt", [TERN_SIM_EV_DELAY] = "delay",
		[TERN_SIM_EV_DISCARD] = "discard", [TERN_SIM_EV_STATE] = "state",
		[TERN_SIM_EV_ERROR] = "error",     [TERN_SIM_EV_ICMP] = "icmp",
		[TERN_SIM_EV_APP] = "app",         [TERN_SIM_EV_INJECT] = "inject",
	};
	fprintf(p->out, "{\"t\":%.6f,\"host\":\"%s\",\"ev\":\"%s\"", (double)ev->t_us / 1e6,
		host_name(ev->host), names[ev->kind]);
	switch (ev->kind) {
	case TERN_SIM_EV_DROP:
	case TERN_SIM_EV_DUP:
	case TERN_SIM_EV_CORRUPT:
	case TERN_SIM_EV_DELAY:
	case TERN_SIM_EV_INJECT:
		fprintf(p->out, ",\"to\":\"%s\"", host_name(ev->peer));
		/* fall through */
	case TERN_SIM_EV_SEND:
	case TERN_SIM_EV_RECV:
		if (ev->seg_valid)
			json_seg(p, &ev->tr.u.seg);
		if (ev->kind == TERN_SIM_EV_SEND && ev->tr.cwnd) {
			fprintf(p->out, ",\"cwnd\":%u", ev->tr.cwnd);
			if (ev->tr.ssthresh != UINT32_MAX)
				fprintf(p->out, ",\"ssthresh\":%u", ev->tr.ssthresh);
		}
		break;
	case TERN_SIM_EV_DISCARD:
		fprintf(p->out, ",\"reason\":");
		json_string(p->out, ev->tr.reason ? ev->tr.reason : "?");
		if (ev->seg_valid)
			json_seg(p, &ev->tr.u.seg);
		break;
	case TERN_SIM_EV_STATE: {
		char l[32], r[32];
		fmt_addr(l, sizeof(l), ev->tr.u.state.laddr, ev->tr.u.state.lport);
		fmt_addr(r, sizeof(r), ev->tr.u.state.raddr, ev->tr.u.state.rport);
		fprintf(p->out, ",\"conn\":\"%s>%s\",\"from\":\"%s\",\"to\":\"%s\"", l, r,
			tern_state_name(ev->tr.u.state.from), tern_state_name(ev->tr.u.state.to));
		break;
	}
	case TERN_SIM_EV_ERROR:
		fprintf(p->out, ",\"error\":\"%s\",\"fd\":%d", tern_errno_name(ev->tr.u.error), ev->tr.fd);
		break;
	case TERN_SIM_EV_ICMP:
		fprintf(p->out, ",\"type\":%u,\"code\":%u,\"dir\":\"%s\"", ev->tr.u.icmp.type,
			ev->tr.u.icmp.code, ev->tr.u.icmp.out ? "out" : "in");
		break;
	case TERN_SIM_EV_APP:
		fprintf(p->out, ",\"text\":");
		json_string(p->out, e->text);
		break;
	}
	fprintf(p->out, "}\n");
}

/* ---- the public face ---- */

struct printer *printer_new(FILE *out, int json, int absolute)
{
	struct printer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->out = out;
	p->json = json;
	p->absolute = absolute;
	return p;
}

void printer_event(void *user, const struct scn_event *e)
{
	struct printer *p = user;
	if (e->ev.seg_valid)
		isn_learn(p, &e->ev);
	if (p->json)
		json_event(p, e);
	else if (!p->quiet || !e->ev.seg_valid)
		ladder_event(p, e);
}

void printer_flush(struct printer *p)
{
	flush_pending(p);
	fflush(p->out);
}

void printer_quiet_segments(struct printer *p) { p->quiet = 1; }

void printer_free(struct printer *p) { free(p); }
