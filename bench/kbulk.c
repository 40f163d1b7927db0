/*
 * The kernel's end of the real-link benchmark: a bulk sender or receiver on plain sockets.
 *   kbulk send ADDR PORT BYTES   connect, send BYTES, shut down, wait for the peer's FIN
 *   kbulk recv ADDR PORT         connect, read until the peer's FIN
 *   kbulk sink PORT              listen, accept one, read until FIN (the veth reference)
 * Prints "bytes=N secs=S gbps=G" measured from connect (or accept) to the end.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const char *addr, int port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "kbulk: bad address %s\n", addr);
		exit(2);
	}
	/* The listener may be starting still: try for a few seconds. */
	for (int i = 0; i < 500; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return s;
		close(s);
		usleep(10000);
	}
	perror("kbulk: connect");
	exit(1);
}

static unsigned long long drain(int s)
{
	static char buf[1 << 18];
	unsigned long long total = 0;
	for (;;) {
		ssize_t r = read(s, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return total;
		total += (unsigned long long)r;
	}
}

static void report(unsigned long long bytes, double t0)
{
	double secs = now() - t0;
	printf("bytes=%llu secs=%.3f gbps=%.2f\n", bytes, secs, (double)bytes * 8 / secs / 1e9);
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "send")) {
		unsigned long long want = strtoull(argv[4], NULL, 10), sent = 0;
		static char buf[1 << 18];
		memset(buf, 'x', sizeof(buf));
		int s = dial(argv[2], atoi(argv[3]));
		double t0 = now();
		while (sent < want) {
			size_t n = want - sent < sizeof(buf) ? (size_t)(want - sent) : sizeof(buf);
			ssize_t w = write(s, buf, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				perror("kbulk: write");
				return 1;
			}
			sent += (unsigned long long)w;
		}
		shutdown(s, SHUT_WR);
		drain(s); /* the peer's FIN: everything arrived */
		report(sent, t0);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "recv")) {
		int s = dial(argv[2], atoi(argv[3]));
		double t0 = now();
		report(drain(s), t0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "sink")) {
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in sa;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)atoi(argv[2]));
		if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0) {
			perror("kbulk: listen");
			return 1;
		}
		int s = accept(l, NULL, NULL);
		double t0 = now();
		report(drain(s), t0);
		return 0;
	}
	fprintf(stderr, "usage: kbulk send ADDR PORT BYTES | recv ADDR PORT | sink PORT\n");
	return 2;
}
