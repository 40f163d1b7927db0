/* The tern command: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "tern/tern.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern COMMAND [options]\n"
		"\n"
		"commands:\n"
		"  sim        run a TCP scenario on the simulated network (tern sim --list)\n"
		"  cat        netcat over tern on a TUN device (TCP or UDP)\n"
		"  serve      echo, discard, source and http servers over tern on a TUN device\n"
		"  settings   list the stack's settings with their defaults\n"
		"  version    print the version\n"
		"\n"
		"`tern COMMAND --help` tells more.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "sim"))
		return cmd_sim(argc - 1, argv + 1);
	if (!strcmp(cmd, "cat"))
		return cmd_cat(argc - 1, argv + 1);
	if (!strcmp(cmd, "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(cmd, "settings"))
		return cmd_settings(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "tern: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
