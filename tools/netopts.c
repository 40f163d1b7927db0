/* Link options and set-up for the commands that put tern on a TUN device. */
#include "netopts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void net_opts_init(struct net_opts *o)
{
	memset(o, 0, sizeof(*o));
	tern_settings_default(&o->set);
	o->tun.ifname = "tern%d";
}

void net_opts_usage(FILE *f)
{
	fprintf(f,
		"link options:\n"
		"  --addr A.B.C.D/NN    tern's address on the TUN link and the link's prefix\n"
		"                       (required)\n"
		"  --host-addr A.B.C.D  the kernel's address on the link: tern gives the device\n"
		"                       this address and brings it up (default, for a device tern\n"
		"                       creates: the first other address of the prefix)\n"
		"  --tun NAME           attach to this TUN device (ip tuntap add NAME mode tun) or\n"
		"                       create it (default: a new tern0, tern1, ...)\n"
		"  --mtu N              set the device's MTU (default: keep it; MSS follows it)\n"
		"  --impair SPEC        impair both directions: loss=P,dup=P,reorder=P,corrupt=P,\n"
		"                       delay=10ms,jitter=2ms (P: 0..1 or N%%)\n"
		"  --impair-in SPEC     only what tern receives; --impair-out: only what it sends\n"
		"  --drop RULE          drop exactly: [in:|out:]CLASS[#N[-M]], CLASS one of\n"
		"                       any syn synack ack data fin rst\n"
		"  --seed N             seed for ISNs, ports and impairments (default: random)\n"
		"  --set NAME=VALUE     a stack setting (see `tern settings`)\n"
		"  --pcap FILE          write every packet tern receives and sends to FILE\n"
		"  --tun-io HOW         auto (default): what tern sends in one burst goes to the\n"
		"                       device in one io_uring call where the kernel has it;\n"
		"                       writev: one call per packet; io_uring: that or fail\n"
		"  --linger MS          after the work is done, keep answering for MS (default 0)\n"
		"  -v, --verbose        say what happens (-vv: and the counters at the end)\n");
}

int parse_ip4(const char *s, uint32_t *addr)
{
	struct in_addr in;
	if (inet_pton(AF_INET, s, &in) != 1)
		return -1;
	*addr = ntohl(in.s_addr);
	return 0;
}

int parse_ip4_prefix(const char *s, uint32_t *addr, unsigned *plen)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = 0;
	char *end;
	unsigned long n = strtoul(slash + 1, &end, 10);
	if (end == slash + 1 || *end || n < 1 || n > 30)
		return -1;
	*plen = (unsigned)n;
	return parse_ip4(buf, addr);
}

int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long n = strtoul(s, &end, 10);
	if (end == s || *end || n < 1 || n > 65535 || *s == '-' || *s == '+')
		return -1;
	*port = (uint16_t)n;
	return 0;
}

const char *fmt_ep(char *buf, size_t n, uint32_t addr, uint16_t port)
{
	snprintf(buf, n, "%u.%u.%u.%u:%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
		 addr & 255, port);
	return buf;
}

static int impair_arg(const char *cmd, const char *opt, const char *v, struct tern_impair *a,
		      struct tern_impair *b)
{
	const char *bad = NULL;
	struct tern_impair x = *a;
	if (tern_impair_parse(v, &x, &bad) < 0) {
		fprintf(stderr, "%s: %s: cannot read '%s' (use loss=P,dup=P,reorder=P,corrupt=P,"
				"delay=T,jitter=T)\n", cmd, opt, bad ? bad : v);
		return -1;
	}
	*a = x;
	if (b) {
		struct tern_impair y = *b;
		tern_impair_parse(v, &y, NULL);
		*b = y;
	}
	return 0;
}

int net_opt(const char *cmd, int argc, char **argv, int *i, struct net_opts *o)
{
	const char *a = argv[*i];
	bool takes = !strcmp(a, "--addr") || !strcmp(a, "--host-addr") || !strcmp(a, "--tun") ||
		     !strcmp(a, "--mtu") || !strcmp(a, "--impair") || !strcmp(a, "--impair-in") ||
		     !strcmp(a, "--impair-out") || !strcmp(a, "--drop") || !strcmp(a, "--seed") ||
		     !strcmp(a, "--set") || !strcmp(a, "--pcap") || !strcmp(a, "--linger") ||
		     !strcmp(a, "--tun-io");
	if (!strcmp(a, "-v") || !strcmp(a, "--verbose") || !strcmp(a, "-vv")) {
		o->verbose += a[2] == 'v' ? 2 : 1;
		return 1;
	}
	if (!takes)
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "%s: %s needs a value\n", cmd, a);
		return -1;
	}
	const char *v = argv[++*i];
	char *end;
	if (!strcmp(a, "--addr")) {
		if (parse_ip4_prefix(v, &o->tun.addr, &o->tun.prefix_len) < 0) {
			fprintf(stderr, "%s: --addr takes A.B.C.D/NN (NN 1..30), not '%s'\n", cmd, v);
			return -1;
		}
		o->have_addr = true;
	} else if (!strcmp(a, "--host-addr")) {
		if (parse_ip4(v, &o->tun.host_addr) < 0 || !o->tun.host_addr) {
			fprintf(stderr, "%s: --host-addr takes A.B.C.D, not '%s'\n", cmd, v);
			return -1;
		}
	} else if (!strcmp(a, "--tun")) {
		if (!*v || strlen(v) >= IFNAMSIZ || strchr(v, '/')) {
			fprintf(stderr, "%s: --tun takes an interface name of 1..%d characters\n", cmd,
				IFNAMSIZ - 1);
			return -1;
		}
		o->tun.ifname = v;
	} else if (!strcmp(a, "--mtu")) {
		unsigned long n = strtoul(v, &end, 10);
		if (end == v || *end || n < 576 || n > 65535) {
			fprintf(stderr, "%s: --mtu takes 576..65535\n", cmd);
			return -1;
		}
		o->tun.mtu = (unsigned)n;
	} else if (!strcmp(a, "--impair")) {
		return impair_arg(cmd, a, v, &o->tun.impair_in, &o->tun.impair_out) < 0 ? -1 : 1;
	} else if (!strcmp(a, "--impair-in")) {
		return impair_arg(cmd, a, v, &o->tun.impair_in, NULL) < 0 ? -1 : 1;
	} else if (!strcmp(a, "--impair-out")) {
		return impair_arg(cmd, a, v, &o->tun.impair_out, NULL) < 0 ? -1 : 1;
	} else if (!strcmp(a, "--drop")) {
		if (o->tun.nrules >= NET_MAX_RULES) {
			fprintf(stderr, "%s: at most %d --drop rules\n", cmd, NET_MAX_RULES);
			return -1;
		}
		if (tern_tun_parse_rule(v, TERN_SIM_DROP, &o->rules[o->tun.nrules]) < 0) {
			fprintf(stderr, "%s: --drop takes [in:|out:]CLASS[#N[-M]], not '%s'\n", cmd, v);
			return -1;
		}
		o->tun.nrules++;
		o->tun.rules = o->rules;
	} else if (!strcmp(a, "--seed")) {
		unsigned long long n = strtoull(v, &end, 0);
		if (end == v || *end) {
			fprintf(stderr, "%s: bad seed '%s'\n", cmd, v);
			return -1;
		}
		o->tun.seed = n;
		o->have_seed = true;
	} else if (!strcmp(a, "--set")) {
		const char *eq = strchr(v, '=');
		char name[64];
		if (!eq || (size_t)(eq - v) >= sizeof(name)) {
			fprintf(stderr, "%s: --set takes NAME=VALUE\n", cmd);
			return -1;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - v), v);
		int rc = tern_settings_set(&o->set, name, eq + 1);
		if (rc == -ENOENT) {
			fprintf(stderr, "%s: no setting '%s' (see `tern settings`)\n", cmd, name);
			return -1;
		}
		if (rc < 0) {
			fprintf(stderr, "%s: bad value for %s: '%s'\n", cmd, name, eq + 1);
			return -1;
		}
	} else if (!strcmp(a, "--pcap")) {
		o->tun.pcap_path = v;
	} else if (!strcmp(a, "--tun-io")) {
		if (!strcmp(v, "auto"))
			o->tun.tx_io = TERN_TUN_IO_AUTO;
		else if (!strcmp(v, "writev"))
			o->tun.tx_io = TERN_TUN_IO_WRITEV;
		else if (!strcmp(v, "io_uring") || !strcmp(v, "uring"))
			o->tun.tx_io = TERN_TUN_IO_URING;
		else {
			fprintf(stderr, "%s: --tun-io takes auto, writev or io_uring\n", cmd);
			return -1;
		}
	} else if (!strcmp(a, "--linger")) {
		unsigned long n = strtoul(v, &end, 10);
		if (end == v || *end || n > 3600000) {
			fprintf(stderr, "%s: --linger takes milliseconds (0..3600000)\n", cmd);
			return -1;
		}
		o->linger_ms = (unsigned)n;
	}
	return 1;
}

int net_open(const char *cmd, struct net_opts *o, struct net *n)
{
	memset(n, 0, sizeof(*n));
	if (!o->have_addr) {
		fprintf(stderr, "%s: --addr A.B.C.D/NN is required (tern's address on the link)\n",
			cmd);
		return -2;
	}
	/* A device tern creates needs the kernel's side configured to be of any use: unless
	 * told otherwise, the kernel takes the first address of the prefix that is not tern's. */
	bool exists = o->tun.ifname && !strchr(o->tun.ifname, '%') && if_nametoindex(o->tun.ifname);
	if (!o->tun.host_addr && !exists) {
		uint32_t mask = ~0u << (32 - o->tun.prefix_len);
		uint32_t first = (o->tun.addr & mask) + 1;
		o->tun.host_addr = first == o->tun.addr ? first + 1 : first;
	}
	if (o->tun.host_addr == o->tun.addr) {
		fprintf(stderr, "%s: --host-addr must differ from --addr\n", cmd);
		return -2;
	}
	if (!o->have_seed) {
		uint64_t r = 0;
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
			fprintf(stderr, "%s: getrandom: %s\n", cmd, strerror(errno));
			return -1;
		}
		o->tun.seed = r;
	}
	char err[256];
	n->tun = tern_tun_open(&o->tun, err, sizeof(err));
	if (!n->tun) {
		fprintf(stderr, "%s: %s\n", cmd, err);
		return -1;
	}
	o->set.mtu = tern_tun_mtu(n->tun);
	o->set.seed = o->tun.seed ^ 0x9e3779b97f4a7c15ull;
	n->st = tern_stack_new(&o->set, tern_tun_clock());
	if (!n->st) {
		fprintf(stderr, "%s: cannot create the stack\n", cmd);
		net_close(n);
		return -1;
	}
	int rc = tern_tun_attach(n->tun, n->st);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot attach the stack: %s\n", cmd, strerror(-rc));
		net_close(n);
		return -1;
	}
	if (o->verbose) {
		char a[24], h[24];
		fmt_ep(a, sizeof(a), o->tun.addr, 0);
		fmt_ep(h, sizeof(h), o->tun.host_addr, 0);
		a[strlen(a) - 2] = 0;
		h[strlen(h) - 2] = 0;
		fprintf(stderr, "%s: on %s (MTU %u, writes by %s): tern is %s/%u%s%s\n", cmd,
			tern_tun_name(n->tun), tern_tun_mtu(n->tun), tern_tun_tx_io(n->tun), a,
			o->tun.prefix_len, o->tun.host_addr ? ", the kernel is " : "",
			o->tun.host_addr ? h : "");
	}
	return 0;
}

void net_close(struct net *n)
{
	if (n->tun)
		tern_tun_close(n->tun);
	if (n->st)
		tern_stack_free(n->st);
	n->tun = NULL;
	n->st = NULL;
}

#define C(field) {#field, offsetof(struct tern_stats, field)}
static const struct {
	const char *name;
	size_t off;
} counters[] = {
	C(ip_in), C(ip_out), C(ip_bad_header), C(ip_bad_checksum), C(ip_fragments),
	C(ip_not_ours), C(ip_bad_proto), C(icmp_in), C(icmp_out), C(icmp_bad),
	C(icmp_echo_replies), C(tcp_in), C(tcp_out), C(tcp_bad_header), C(tcp_bad_options),
	C(tcp_bad_checksum), C(tcp_retrans), C(tcp_rst_out), C(tcp_rst_in), C(tcp_no_port),
	C(tcp_active_opens), C(tcp_passive_opens), C(tcp_attempt_fails), C(tcp_estab_resets),
	C(tcp_timeouts), C(tcp_listen_overflows), C(tcp_listen_drops), C(tcp_out_of_window),
	C(tcp_ack_unsent), C(tcp_challenge_acks), C(tcp_rcvbuf_drops), C(tcp_tw_recycled),
	C(tcp_tw_overflow), C(tcp_orphan_overflow), C(tcp_abort_on_data), C(tcp_ofo_queued),
	C(tcp_ofo_drops), C(tcp_dupacks_in), C(tcp_fast_retrans), C(tcp_partial_acks),
	C(tcp_rtos), C(tcp_delayed_acks), C(tcp_window_probes), C(tcp_keepalive_probes),
	C(tcp_keepalive_drops), C(udp_in), C(udp_out), C(udp_no_port), C(udp_in_errors),
	C(udp_csum_errors), C(udp_rcvbuf_errors), C(udp_sndbuf_errors), C(icmp_port_unreach_out),
	C(icmp_ratelimit_host), C(icmp_ratelimit_global), C(link_tx_errors), C(mem_failures),
};
#undef C
#define L(field) {"tun_" #field, offsetof(struct tern_tun_stats, field)}
static const struct {
	const char *name;
	size_t off;
} link_counters[] = {
	L(rx_packets), L(rx_bytes), L(tx_packets), L(tx_bytes), L(rx_impair_drops),
	L(tx_impair_drops), L(rx_corrupted), L(tx_corrupted), L(rx_duplicated), L(tx_duplicated),
	L(rx_held), L(tx_held), L(held_overflow), L(tx_errors), L(tx_bursts), L(tx_ring_failures),
};
#undef L

void net_print_counters(FILE *f, const struct net *n, bool all)
{
	const uint8_t *s = (const uint8_t *)tern_stack_stats(n->st);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		uint64_t v;
		memcpy(&v, s + counters[i].off, sizeof(v));
		if (v || all)
			fprintf(f, "  %-22s %llu\n", counters[i].name, (unsigned long long)v);
	}
	const uint8_t *l = (const uint8_t *)tern_tun_stats(n->tun);
	for (size_t i = 0; i < sizeof(link_counters) / sizeof(link_counters[0]); i++) {
		uint64_t v;
		memcpy(&v, l + link_counters[i].off, sizeof(v));
		if (v || all)
			fprintf(f, "  %-22s %llu\n", link_counters[i].name, (unsigned long long)v);
	}
}
