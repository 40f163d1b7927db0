/* What the commands that run tern on a TUN device share: their link options, and opening
 * the device and the stack from them. */
#ifndef TERN_NETOPTS_H
#define TERN_NETOPTS_H

#include <stdbool.h>
#include <stdio.h>
#include "tern/tern.h"
#include "tern/tun.h"

#define NET_MAX_RULES 16

struct net_opts {
	struct tern_tun_config tun;
	struct tern_settings set;
	struct tern_sim_rule rules[NET_MAX_RULES];
	bool have_addr, have_seed;
	unsigned linger_ms;        /* keep the stack running this long after the work is done */
	int verbose;
};

struct net {
	struct tern_tun *tun;
	struct tern_stack *st;
};

void net_opts_init(struct net_opts *o);
/* If argv[*i] is a link option, take it (and its value, advancing *i) and return 1; return 0
 * if it is not one; print a message naming cmd and return -1 if it is malformed. */
int net_opt(const char *cmd, int argc, char **argv, int *i, struct net_opts *o);
/* The link options, for a usage text. */
void net_opts_usage(FILE *f);
/* Open the device and a stack on it; print a message naming cmd and return -2 on a usage
 * error (no --addr, say), -1 on any other failure. */
int net_open(const char *cmd, struct net_opts *o, struct net *n);
void net_close(struct net *n);

/* "A.B.C.D" in host order; "A.B.C.D/NN" with the prefix length. 0 or -1. */
int parse_ip4(const char *s, uint32_t *addr);
int parse_ip4_prefix(const char *s, uint32_t *addr, unsigned *plen);
/* A port 1..65535. 0 or -1. */
int parse_port(const char *s, uint16_t *port);
/* "10.7.0.2:80" into buf. */
const char *fmt_ep(char *buf, size_t n, uint32_t addr, uint16_t port);

/* Print the stack's counters and the link's, one "name value" a line, skipping zeros
 * unless all is set. */
void net_print_counters(FILE *f, const struct net *n, bool all);

#endif
