/*
 * The packetdrill adapter (tools/packetdrill/adapter.c), driven the way packetdrill drives
 * it, without packetdrill: the test thread plays packetdrill's main thread (it calls
 * packetdrill_interface_init, injects the scripted peer's datagrams with netdev_send,
 * takes tern's with netdev_receive and moves time with usleep/gettimeofday), and a second
 * thread plays packetdrill's system-call thread for calls a script gives a time range:
 * the test hands it a call, waits until the kernel shows that thread asleep (as packetdrill
 * reads /proc/self/task/TID/stat), and goes on injecting.
 *
 * Addresses as upstream's runners use them: tern 192.168.0.1, the peer 192.0.2.1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "packetdrill/pd_interface.h"
#include "test.h"
#include "wire.h"

#define PDT_LOCAL TERN_IP4(192, 168, 0, 1)
#define PDT_REMOTE TERN_IP4(192, 0, 2, 1)
#define PDT_LPORT 8080
#define PDT_RPORT 40001
#define PDT_IRS 1000u /* the scripted peer's ISN */
/* tern's timers run on a 1 ms wheel and fire at the first tick at or after their deadline,
 * so a timed segment may leave up to this much after its exact time. */
#define PDT_TICK 1000

struct pdt {
	struct packetdrill_interface ifc;
	uint32_t iss;     /* tern's ISN, learned from its SYN or SYN-ACK */
	uint16_t lport;   /* tern's port */
	/* the datagram last received from tern */
	uint8_t buf[70000];
	size_t len;
	long long t_us;
	struct tern_tcp_seg seg;
};

static void pdt_init(struct pdt *p, const char *flags)
{
	memset(p, 0, sizeof(*p));
	packetdrill_interface_init(flags, &p->ifc);
	p->lport = PDT_LPORT;
}

static long long pdt_now(struct pdt *p)
{
	struct timeval tv;
	REQUIRE_EQ(p->ifc.gettimeofday(p->ifc.userdata, &tv, NULL), 0);
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The peer sends a TCP segment (sequence numbers relative to the two ISNs, as scripts write
 * them: seq relative to PDT_IRS, ack relative to tern's ISN). */
static void pdt_send(struct pdt *p, uint16_t flags, uint32_t rseq, uint32_t rack, uint16_t win,
		     const void *data, size_t len, uint16_t mss)
{
	uint8_t pkt[1600];
	struct tern_seg_info h = {
		.src = PDT_REMOTE, .dst = PDT_LOCAL, .sport = PDT_RPORT, .dport = p->lport,
		.seq = PDT_IRS + rseq, .ack = (flags & TERN_TH_ACK) ? p->iss + rack : 0,
		.flags = flags, .win = win,
	};
	if (mss) {
		h.opts.has = TERN_OPT_MSS;
		h.opts.mss = mss;
	}
	size_t hl = tern_tcp_build(pkt + 20, &h);
	REQUIRE(20 + hl + len <= sizeof(pkt));
	if (len)
		memcpy(pkt + 20 + hl, data, len);
	uint16_t tl = (uint16_t)(hl + len);
	uint32_t ps = tern_csum_pseudo(PDT_REMOTE, PDT_LOCAL, 6, tl);
	struct tern_iovec iov = {pkt + 20, tl};
	uint16_t c = tern_csum_iov(ps, &iov, 1);
	memcpy(pkt + 20 + 16, &c, 2);
	tern_ip4_build(pkt, PDT_REMOTE, PDT_LOCAL, 6, 64, 0, 1, tl);
	REQUIRE_EQ(p->ifc.netdev_send(p->ifc.userdata, pkt, 20 + (size_t)tl), 0);
}

/* Take tern's next datagram; 0 if netdev_receive said nothing can come. */
static int pdt_recv(struct pdt *p)
{
	size_t n = sizeof(p->buf);
	REQUIRE_EQ(p->ifc.netdev_receive(p->ifc.userdata, p->buf, &n, &p->t_us), 0);
	p->len = n;
	if (!n)
		return 0;
	struct tern_ip4 ip;
	REQUIRE_EQ(tern_ip4_parse(p->buf, n, &ip), TERN_IP4_OK);
	REQUIRE_EQ(ip.src, PDT_LOCAL);
	REQUIRE_EQ(ip.dst, PDT_REMOTE);
	REQUIRE_EQ(ip.proto, 6);
	REQUIRE_EQ(tern_tcp_parse(ip.payload, ip.payload_len, ip.src, ip.dst, &p->seg), 0);
	return 1;
}

/* Expect tern's next segment: flags, relative seq/ack, payload length, at time t_us. */
static void pdt_expect_at(struct pdt *p, int line, uint16_t flags, uint32_t rseq, uint32_t rack,
			  uint32_t len, long long t_us)
{
	if (!pdt_recv(p)) {
		test_fail(__FILE__, line, "expected a segment, netdev_receive had none");
		test_abort();
	}
	const struct tern_seg_info *h = &p->seg.h;
	if (h->flags & TERN_TH_SYN)
		p->iss = h->seq - rseq;
	if (h->flags != flags || h->seq != p->iss + rseq ||
	    ((flags & TERN_TH_ACK) && h->ack != PDT_IRS + rack) || h->len != len ||
	    (t_us >= 0 && (p->t_us < t_us || p->t_us > t_us + PDT_TICK)))
		test_fail(__FILE__, line,
			  "segment: flags 0x%x seq %u ack %u len %u at %lld; expected 0x%x %u %u %u at %lld",
			  h->flags, h->seq - p->iss, h->ack - PDT_IRS, h->len, p->t_us, flags, rseq,
			  rack, len, t_us);
}
#define PDT_EXPECT(p, fl, s, a, l, t) pdt_expect_at((p), __LINE__, (fl), (s), (a), (l), (t))

static void pdt_free(struct pdt *p, const int *fds, int n)
{
	/* packetdrill closes what a script left open with the real close(), then frees. */
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	p->ifc.free(p->ifc.userdata);
}

/* A listener on 8080 and one accepted connection (handshake at the current time). */
static int pdt_passive(struct pdt *p, int *lfd)
{
	void *u = p->ifc.userdata;
	*lfd = p->ifc.socket(u, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	REQUIRE(*lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PDT_LPORT)};
	REQUIRE_EQ(p->ifc.bind(u, *lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	REQUIRE_EQ(p->ifc.listen(u, *lfd, 8), 0);
	pdt_send(p, TERN_TH_SYN, 0, 0, 32792, NULL, 0, 1000);
	long long t = pdt_now(p);
	PDT_EXPECT(p, TERN_TH_SYN | TERN_TH_ACK, 0, 1, 0, -1);
	CHECK(p->t_us >= t - 1 && p->t_us <= t + 1);
	CHECK_EQ(p->seg.h.opts.has, TERN_OPT_MSS);
	CHECK_EQ(p->seg.h.opts.mss, 1460);
	pdt_send(p, TERN_TH_ACK, 1, 1, 32792, NULL, 0, 0);
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	int fd = p->ifc.accept(u, *lfd, (struct sockaddr *)&peer, &pl);
	REQUIRE(fd >= 0);
	CHECK_EQ(pl, sizeof(peer));
	CHECK_EQ(ntohl(peer.sin_addr.s_addr), PDT_REMOTE);
	CHECK_EQ(ntohs(peer.sin_port), PDT_RPORT);
	return fd;
}

/* ---- packetdrill's system-call thread ------------------------------------------------- */

enum pdt_call { PDT_ACCEPT = 1, PDT_READ, PDT_CONNECT, PDT_POLL, PDT_WRITE, PDT_EPOLL_WAIT };

struct pdt_thread {
	struct pdt *p;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pid_t tid;
	enum pdt_call call;
	int fd, arg;
	char data[8192];
	size_t len;
	/* results */
	int done;
	long result;
	int err;
	long long end_us;
};

static void *pdt_thread_main(void *arg)
{
	struct pdt_thread *t = arg;
	void *u = t->p->ifc.userdata;
	pthread_mutex_lock(&t->mu);
	t->tid = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&t->cv);
	while (!t->call)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	long r = -1;
	switch (t->call) {
	case PDT_ACCEPT:
		r = t->p->ifc.accept(u, t->fd, NULL, NULL);
		break;
	case PDT_READ:
		r = t->p->ifc.read(u, t->fd, t->data, t->len);
		break;
	case PDT_CONNECT: {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PDT_RPORT),
					.sin_addr.s_addr = htonl(PDT_REMOTE)};
		r = t->p->ifc.connect(u, t->fd, (struct sockaddr *)&a, sizeof(a));
		break;
	}
	case PDT_POLL: {
		struct pollfd pfd = {t->fd, POLLIN, 0};
		r = t->p->ifc.poll(u, &pfd, 1, t->arg);
		break;
	}
	case PDT_WRITE:
		r = t->p->ifc.write(u, t->fd, t->data, t->len);
		break;
	case PDT_EPOLL_WAIT: {
		struct epoll_event ev;
		r = t->p->ifc.epoll_wait(u, t->fd, &ev, 1, t->arg);
		break;
	}
	}
	int err = errno;
	/* packetdrill takes a blocking call's end time right after it returns. */
	struct timeval tv;
	t->p->ifc.gettimeofday(u, &tv, NULL);
	pthread_mutex_lock(&t->mu);
	t->result = r;
	t->err = err;
	t->end_us = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
	t->done = 1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Is the thread asleep in the kernel ('S' in /proc), as packetdrill checks? */
static int pdt_thread_sleeping(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] == 'S';
}

/* Start a blocking call on the second thread and return once it sleeps inside it (or has
 * returned already). */
static void pdt_thread_start(struct pdt_thread *t, struct pdt *p, enum pdt_call call, int fd,
			     int arg)
{
	memset(t, 0, sizeof(*t));
	t->p = p;
	t->fd = fd;
	t->arg = arg;
	t->len = (size_t)arg;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	REQUIRE_EQ(pthread_create(&t->th, NULL, pdt_thread_main, t), 0);
	pthread_mutex_lock(&t->mu);
	while (!t->tid)
		pthread_cond_wait(&t->cv, &t->mu);
	t->call = call;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	/* Poll the thread's state: it must be seen asleep (or done) within a few seconds. */
	for (int i = 0; i < 20000; i++) {
		pthread_mutex_lock(&t->mu);
		int done = t->done;
		pthread_mutex_unlock(&t->mu);
		if (done)
			return;
		if (i > 10 && pdt_thread_sleeping(t->tid)) {
			/* Asleep twice in a row: not just a passing lock. */
			usleep(200);
			if (pdt_thread_sleeping(t->tid))
				return;
		}
		usleep(100);
	}
	test_fail(__FILE__, __LINE__, "the call thread never went to sleep");
	test_abort();
}

static int pdt_thread_done(struct pdt_thread *t)
{
	pthread_mutex_lock(&t->mu);
	int d = t->done;
	pthread_mutex_unlock(&t->mu);
	return d;
}

static void pdt_thread_join(struct pdt_thread *t)
{
	pthread_join(t->th, NULL);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
}

/* ---- tests ----------------------------------------------------------------------------------- */

TEST(pd_adapter_passive_open_data_and_close)
{
	struct pdt p;
	pdt_init(&p, "local=192.168.0.1 remote=192.0.2.1");
	void *u = p.ifc.userdata;
	int lfd, fd = pdt_passive(&p, &lfd);
	/* Descriptors are real ones packetdrill can close(). */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	CHECK(fcntl(lfd, F_GETFD) >= 0);
	CHECK(fd != lfd);
	CHECK_EQ(p.ifc.fcntl(u, fd, F_GETFL) & O_NONBLOCK, 0);

	long long t0 = pdt_now(&p);
	const char msg[] = "0123456789";
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 1, 1, 32792, msg, 10, 0);
	/* Quick-ACK at connection start (Linux): the ACK goes at once. */
	PDT_EXPECT(&p, TERN_TH_ACK, 1, 11, 0, -1);
	CHECK(p.t_us - t0 <= 2);
	int inq = -1;
	CHECK_EQ(p.ifc.ioctl(u, fd, SIOCINQ, &inq), 0);
	CHECK_EQ(inq, 10);
	char buf[64];
	CHECK_EQ(p.ifc.read(u, fd, buf, sizeof(buf)), 10);
	CHECK_MEM(buf, msg, 10);

	CHECK_EQ(p.ifc.write(u, fd, "hello", 5), 5);
	PDT_EXPECT(&p, TERN_TH_ACK | TERN_TH_PSH, 1, 11, 5, -1);
	CHECK_MEM(p.seg.data, "hello", 5);
	int outq = -1;
	CHECK_EQ(p.ifc.ioctl(u, fd, SIOCOUTQ, &outq), 0);
	CHECK_EQ(outq, 5);

	/* TCP_INFO in Linux's layout. */
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	CHECK_EQ(p.ifc.getsockopt(u, fd, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
	CHECK_EQ(tl, sizeof(ti));
	CHECK_EQ(ti.tcpi_state, 1 /* TCP_ESTABLISHED */);
	CHECK_EQ(ti.tcpi_snd_mss, 1000);
	CHECK_EQ(ti.tcpi_unacked, 1);
	CHECK_EQ(ti.tcpi_snd_cwnd, 10);
	int one = 1, v = 0;
	socklen_t vl = sizeof(v);
	CHECK_EQ(p.ifc.setsockopt(u, fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	CHECK_EQ(p.ifc.getsockopt(u, fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(p.ifc.getsockopt(u, fd, SOL_SOCKET, SO_TYPE, &v, &vl), 0);
	CHECK_EQ(v, SOCK_STREAM);

	pdt_send(&p, TERN_TH_ACK, 11, 6, 32792, NULL, 0, 0);
	CHECK_EQ(p.ifc.close(u, fd), 0);
	PDT_EXPECT(&p, TERN_TH_ACK | TERN_TH_FIN, 6, 11, 0, -1);
	pdt_send(&p, TERN_TH_ACK | TERN_TH_FIN, 11, 7, 32792, NULL, 0, 0);
	PDT_EXPECT(&p, TERN_TH_ACK, 7, 12, 0, -1);
	/* TIME_WAIT sends nothing more: netdev_receive runs the clock to its end and answers
	 * empty, which fails a script that expected a packet. */
	long long tw = p.t_us;
	CHECK_EQ(pdt_recv(&p), 0);
	CHECK(pdt_now(&p) >= tw + 60000000);
	int fds[] = {lfd};
	pdt_free(&p, fds, 1);
}

TEST(pd_adapter_netdev_receive_runs_the_clock_to_timers)
{
	/* A SYN that nobody answers: each netdev_receive jumps to the next retransmission, and
	 * the virtual clock shows the whole 1, 3, 7, 15, 31 s series at once. */
	struct pdt p;
	pdt_init(&p, NULL);
	void *u = p.ifc.userdata;
	int fd = p.ifc.socket(u, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PDT_RPORT),
				.sin_addr.s_addr = htonl(PDT_REMOTE)};
	long long t0 = pdt_now(&p);
	errno = 0;
	CHECK_EQ(p.ifc.connect(u, fd, (struct sockaddr *)&a, sizeof(a)), -1);
	CHECK_EQ(errno, EINPROGRESS);
	REQUIRE(pdt_recv(&p));
	p.lport = p.seg.h.sport;
	p.iss = p.seg.h.seq;
	long long first = p.t_us;
	CHECK(first - t0 <= 2);
	const long long at_s[] = {1, 3, 7, 15, 31};
	for (int i = 0; i < 5; i++)
		PDT_EXPECT(&p, TERN_TH_SYN, 0, 0, 0, first + at_s[i] * 1000000);
	errno = 0;
	CHECK_EQ(p.ifc.connect(u, fd, (struct sockaddr *)&a, sizeof(a)), -1);
	CHECK_EQ(errno, EALREADY);
	/* The sixth timeout ends the attempt at 63 s; poll on the main thread drives the
	 * clock itself (no other thread could) and sees the error. */
	struct pollfd pfd = {fd, POLLOUT, 0};
	CHECK_EQ(p.ifc.poll(u, &pfd, 1, -1), 1);
	CHECK(pfd.revents & POLLERR);
	CHECK(pdt_now(&p) >= first + 63000000);
	int err = 0;
	socklen_t el = sizeof(err);
	CHECK_EQ(p.ifc.getsockopt(u, fd, SOL_SOCKET, SO_ERROR, &err, &el), 0);
	CHECK_EQ(err, ETIMEDOUT);
	int fds[] = {fd};
	pdt_free(&p, fds, 1);
}

TEST(pd_adapter_blocking_accept_on_the_call_thread)
{
	struct pdt p;
	pdt_init(&p, "local=192.168.0.1");
	void *u = p.ifc.userdata;
	int lfd = p.ifc.socket(u, AF_INET, SOCK_STREAM, IPPROTO_TCP);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PDT_LPORT)};
	REQUIRE_EQ(p.ifc.bind(u, lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	REQUIRE_EQ(p.ifc.listen(u, lfd, 8), 0);

	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_ACCEPT, lfd, 0);
	CHECK(!pdt_thread_done(&t));
	REQUIRE_EQ(p.ifc.usleep(u, 100000), 0);
	pdt_send(&p, TERN_TH_SYN, 0, 0, 32792, NULL, 0, 1000);
	PDT_EXPECT(&p, TERN_TH_SYN | TERN_TH_ACK, 0, 1, 0, -1);
	REQUIRE_EQ(p.ifc.usleep(u, 50000), 0);
	CHECK(!pdt_thread_done(&t));
	long long t_ack = pdt_now(&p);
	pdt_send(&p, TERN_TH_ACK, 1, 1, 32792, NULL, 0, 0);
	/* The main thread moves on (a script's next event a second later) before the call
	 * thread has even read the clock: its end time is still when the ACK came. */
	REQUIRE_EQ(p.ifc.usleep(u, 1000000), 0);
	pdt_thread_join(&t);
	CHECK(t.result >= 0);
	CHECK(t.end_us >= t_ack && t.end_us <= t_ack + 2);
	int fds[] = {lfd, (int)t.result};
	pdt_free(&p, fds, 2);
}

TEST(pd_adapter_blocking_read_and_poll_timeout)
{
	struct pdt p;
	pdt_init(&p, NULL);
	void *u = p.ifc.userdata;
	int lfd, fd = pdt_passive(&p, &lfd);

	/* A blocking read wakes when data arrives, at that virtual time. */
	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_READ, fd, 100);
	REQUIRE_EQ(p.ifc.usleep(u, 250000), 0);
	CHECK(!pdt_thread_done(&t));
	long long t_data = pdt_now(&p);
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 1, 1, 32792, "abc", 3, 0);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, 3);
	CHECK_MEM(t.data, "abc", 3);
	CHECK(t.end_us >= t_data && t.end_us <= t_data + 2);
	PDT_EXPECT(&p, TERN_TH_ACK, 1, 4, 0, -1);

	/* poll with a 100 ms timeout returns 0 at exactly 100 ms of virtual time, although
	 * the main thread sleeps past it in one call. */
	long long t_poll = pdt_now(&p);
	pdt_thread_start(&t, &p, PDT_POLL, fd, 100);
	REQUIRE_EQ(p.ifc.usleep(u, 300000), 0);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, 0);
	CHECK(t.end_us - t_poll >= 100000 && t.end_us - t_poll <= 100010);

	/* On the main thread, poll sees data already there. */
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 4, 1, 32792, "d", 1, 0);
	struct pollfd pfd = {fd, POLLIN | POLLOUT, 0};
	CHECK_EQ(p.ifc.poll(u, &pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLIN | POLLOUT);
	int fds[] = {lfd, fd};
	pdt_free(&p, fds, 2);
}

TEST(pd_adapter_blocking_connect_completes_and_fails)
{
	struct pdt p;
	pdt_init(&p, "syn_retries=1");
	void *u = p.ifc.userdata;
	/* Completes when the SYN-ACK arrives. */
	int fd = p.ifc.socket(u, AF_INET, SOCK_STREAM, 0);
	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_CONNECT, fd, 0);
	REQUIRE(pdt_recv(&p));
	CHECK_EQ(p.seg.h.flags, TERN_TH_SYN);
	p.lport = p.seg.h.sport;
	p.iss = p.seg.h.seq;
	REQUIRE_EQ(p.ifc.usleep(u, 20000), 0);
	long long t_synack = pdt_now(&p);
	pdt_send(&p, TERN_TH_SYN | TERN_TH_ACK, 0, 1, 32792, NULL, 0, 1000);
	PDT_EXPECT(&p, TERN_TH_ACK, 1, 1, 0, -1);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, 0);
	CHECK(t.end_us >= t_synack && t.end_us <= t_synack + 2);

	/* Fails with ETIMEDOUT after one retransmission (syn_retries=1: 1 s, then 2 s). */
	int fd2 = p.ifc.socket(u, AF_INET, SOCK_STREAM, 0);
	pdt_thread_start(&t, &p, PDT_CONNECT, fd2, 0);
	REQUIRE(pdt_recv(&p));
	long long t_syn = p.t_us;
	REQUIRE(pdt_recv(&p));
	CHECK(p.t_us - t_syn >= 1000000 && p.t_us - t_syn <= 1000000 + PDT_TICK);
	REQUIRE_EQ(p.ifc.usleep(u, 5000000), 0);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, -1);
	CHECK_EQ(t.err, ETIMEDOUT);
	CHECK(t.end_us - t_syn >= 3000000 && t.end_us - t_syn <= 3000000 + 2 * PDT_TICK);
	int fds[] = {fd, fd2};
	pdt_free(&p, fds, 2);
}

TEST(pd_adapter_epoll_level_and_edge)
{
	struct pdt p;
	pdt_init(&p, NULL);
	void *u = p.ifc.userdata;
	int lfd, fd = pdt_passive(&p, &lfd);
	int lt = p.ifc.epoll_create(u, 1), et = p.ifc.epoll_create(u, 1);
	REQUIRE(lt >= 0 && et >= 0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
	CHECK_EQ(p.ifc.epoll_ctl(u, lt, EPOLL_CTL_ADD, fd, &ev), 0);
	errno = 0;
	CHECK_EQ(p.ifc.epoll_ctl(u, lt, EPOLL_CTL_ADD, fd, &ev), -1);
	CHECK_EQ(errno, EEXIST);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 9;
	CHECK_EQ(p.ifc.epoll_ctl(u, et, EPOLL_CTL_ADD, fd, &ev), 0);

	struct epoll_event out[4];
	CHECK_EQ(p.ifc.epoll_wait(u, lt, out, 4, 0), 0);
	CHECK_EQ(p.ifc.epoll_wait(u, et, out, 4, 0), 0);
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 1, 1, 32792, "xy", 2, 0);
	CHECK_EQ(p.ifc.epoll_wait(u, lt, out, 4, 0), 1);
	CHECK_EQ(out[0].events, EPOLLIN);
	CHECK_EQ(out[0].data.u64, 7);
	CHECK_EQ(p.ifc.epoll_wait(u, lt, out, 4, 0), 1); /* level: again */
	CHECK_EQ(p.ifc.epoll_wait(u, et, out, 4, 0), 1);
	CHECK_EQ(out[0].data.u64, 9);
	CHECK_EQ(p.ifc.epoll_wait(u, et, out, 4, 0), 0); /* edge: once per change */
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 3, 1, 32792, "z", 1, 0);
	CHECK_EQ(p.ifc.epoll_wait(u, et, out, 4, 0), 1);

	/* A blocking epoll_wait on the call thread wakes on new data. */
	char buf[8];
	CHECK_EQ(p.ifc.read(u, fd, buf, sizeof(buf)), 3);
	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_EPOLL_WAIT, lt, -1);
	REQUIRE_EQ(p.ifc.usleep(u, 10000), 0);
	CHECK(!pdt_thread_done(&t));
	pdt_send(&p, TERN_TH_ACK | TERN_TH_PSH, 4, 1, 32792, "w", 1, 0);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, 1);

	CHECK_EQ(p.ifc.epoll_ctl(u, lt, EPOLL_CTL_DEL, fd, NULL), 0);
	errno = 0;
	CHECK_EQ(p.ifc.epoll_ctl(u, lt, EPOLL_CTL_DEL, fd, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(p.ifc.close(u, lt), 0);
	int fds[] = {lfd, fd, et};
	pdt_free(&p, fds, 3);
}

TEST(pd_adapter_blocking_write_waits_for_room)
{
	/* A 4 KiB send buffer and a peer window of 1000 bytes: a blocking 8 KiB write queues
	 * what fits, sleeps, and returns only once the peer's ACKs have made room for all of
	 * it, as a blocking write on Linux does. */
	struct pdt p;
	pdt_init(&p, "wmem_default=4096 wmem_max=4096");
	void *u = p.ifc.userdata;
	int lfd, fd = pdt_passive(&p, &lfd);
	pdt_send(&p, TERN_TH_ACK, 1, 1, 1000, NULL, 0, 0);
	int nd = 1;
	CHECK_EQ(p.ifc.setsockopt(u, fd, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof(nd)), 0);
	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_WRITE, fd, 8192);
	CHECK(!pdt_thread_done(&t));
	uint32_t acked = 0;
	int rounds = 0;
	while (acked < 8192 && rounds++ < 100) {
		REQUIRE(pdt_recv(&p));
		uint32_t end = p.seg.h.seq - p.iss + p.seg.h.len;
		CHECK(p.seg.h.len <= 1000);
		acked = end - 1;
		REQUIRE_EQ(p.ifc.usleep(u, 10000), 0);
		pdt_send(&p, TERN_TH_ACK, 1, end, 1000, NULL, 0, 0);
	}
	CHECK_EQ(acked, 8192);
	pdt_thread_join(&t);
	CHECK_EQ(t.result, 8192);
	int fds[] = {lfd, fd};
	pdt_free(&p, fds, 2);
}

TEST(pd_adapter_errors_and_foreign_descriptors)
{
	struct pdt p;
	pdt_init(&p, NULL);
	void *u = p.ifc.userdata;
	errno = 0;
	CHECK_EQ(p.ifc.socket(u, AF_INET6, SOCK_STREAM, 0), -1);
	CHECK_EQ(errno, EAFNOSUPPORT);
	int fd = p.ifc.socket(u, AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
	errno = 0;
	CHECK_EQ(p.ifc.accept(u, fd, NULL, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK_EQ(p.ifc.listen(u, 12345, 1), -1);
	CHECK_EQ(errno, EBADF);
	/* A refused connect: RST|ACK answers the SYN. */
	int c = p.ifc.socket(u, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	a.sin_addr.s_addr = htonl(PDT_REMOTE);
	a.sin_port = htons(PDT_RPORT);
	CHECK_EQ(p.ifc.connect(u, c, (struct sockaddr *)&a, sizeof(a)), -1);
	REQUIRE(pdt_recv(&p));
	p.lport = p.seg.h.sport;
	p.iss = p.seg.h.seq;
	pdt_send(&p, TERN_TH_RST | TERN_TH_ACK, 0, 1, 0, NULL, 0, 0);
	char b[4];
	errno = 0;
	CHECK_EQ(p.ifc.read(u, c, b, sizeof(b)), -1);
	CHECK_EQ(errno, ECONNREFUSED);
	/* Descriptors that are not tern's go to libc: a pipe works through the adapter. */
	int pp[2];
	REQUIRE_EQ(p.ifc.pipe(u, pp), 0);
	CHECK_EQ(p.ifc.write(u, pp[1], "q", 1), 1);
	CHECK_EQ(p.ifc.read(u, pp[0], b, 1), 1);
	CHECK_EQ(p.ifc.close(u, pp[0]), 0);
	CHECK_EQ(p.ifc.close(u, pp[1]), 0);
	errno = 0;
	CHECK_EQ(p.ifc.splice(u, 0, NULL, 1, NULL, 1, 0), -1);
	CHECK_EQ(errno, ENOSYS);
	/* UDP through the same calls. */
	int ud = p.ifc.socket(u, AF_INET, SOCK_DGRAM, 0);
	CHECK(ud >= 0);
	CHECK_EQ(p.ifc.sendto(u, ud, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)), 4);
	REQUIRE_EQ(p.ifc.netdev_receive(u, p.buf, &(size_t){sizeof(p.buf)}, &p.t_us), 0);
	CHECK_EQ(p.buf[9], 17);
	int fds[] = {fd, c, ud};
	pdt_free(&p, fds, 3);
}

/* Wait (real time, bounded) for the call thread to finish. */
static int pdt_thread_wait_real(struct pdt_thread *t, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (pdt_thread_done(t))
			return 1;
		usleep(1000);
	}
	return pdt_thread_done(t);
}

static void pdt_watchdog_case(const char *flags, int expect_done)
{
	/* packetdrill waits outside the adapter (for the call thread to go idle) while the
	 * call waits for a tern timer less than a tick ahead: only the watchdog, after 20 ms
	 * of real quiet, moves the clock there. */
	struct pdt p;
	pdt_init(&p, flags);
	void *u = p.ifc.userdata;
	int fd = p.ifc.socket(u, AF_INET, SOCK_STREAM, 0);
	struct pdt_thread t;
	pdt_thread_start(&t, &p, PDT_CONNECT, fd, 0);
	REQUIRE(pdt_recv(&p));
	REQUIRE(pdt_recv(&p)); /* the one retransmission, 1 s later; failure 2 s after it */
	long long t_syn = p.t_us;
	REQUIRE_EQ(p.ifc.usleep(u, (useconds_t)(t_syn + 2000000 - 500 - pdt_now(&p))), 0);
	CHECK(!pdt_thread_done(&t));
	int done = pdt_thread_wait_real(&t, expect_done ? 3000 : 200);
	CHECK_EQ(done, expect_done);
	if (!done)
		REQUIRE_EQ(p.ifc.usleep(u, 10000), 0); /* moving the clock ends it */
	pdt_thread_join(&t);
	CHECK_EQ(t.result, -1);
	CHECK_EQ(t.err, ETIMEDOUT);
	CHECK(t.end_us - t_syn >= 2000000 && t.end_us - t_syn <= 2000000 + PDT_TICK);
	int fds[] = {fd};
	pdt_free(&p, fds, 1);
}

TEST(pd_adapter_idle_watchdog_lets_a_due_timer_fire)
{
	pdt_watchdog_case("syn_retries=1", 1);
}

TEST(pd_adapter_idle_watchdog_off)
{
	pdt_watchdog_case("syn_retries=1 idle_real_ms=0", 0);
}
