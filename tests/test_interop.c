/*
 * Interop: tern against the Linux kernel's own TCP. Each test makes a fresh network namespace
 * (tern-it-PID-N: only lo, brought up, and no default route), runs `tern cat` or `tern serve`
 * in it on a TUN device of their own (tern gives the kernel's side 10.7.0.1/24 and takes
 * 10.7.0.2), and uses the kernel inside the same namespace as the peer: kpeer
 * (tests/kpeer/kpeer.c, TERN_KPEER, default build/kpeer), curl, ping and ss. Nothing leaves
 * the namespace.
 *
 * The test process makes the namespace and forks the body, which joins the namespace and a
 * process group of its own, so that everything it starts runs inside. Whatever happens to the
 * body (a REQUIRE, a crash, a hang past its time budget), the test process then kills what
 * is left of that group, reaps every descendant (it is their subreaper) and deletes the
 * namespace and the temporary directory. Every wait is bounded.
 *
 * Without root, /dev/net/tun, ip or ss the tests print a SKIP line and pass. Transfers move
 * TERN_INTEROP_BYTES bytes (default 32 MiB). Behaviour believed wrong is asserted correctly
 * inside #ifdef TERN_KNOWN_BUG.
 */
#define _GNU_SOURCE /* setns, waitid's WNOWAIT flags, getifaddrs */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TERN_IP "10.7.0.2"
#define KERNEL_IP "10.7.0.1"
#define TERN_ADDR TERN_IP "/24"
#define IMPAIR "loss=0.03,reorder=0.01,dup=0.01"
/* Under loss the kernel's last FIN or ACK may need tern for a few more retransmissions. */
#define LOSSY_LINGER_MS "2000"

/* ---- small things ---- */

static const char *tern_bin(void)
{
	const char *b = getenv("TERN_BIN");
	return b && *b ? b : "build/tern";
}

static const char *kpeer_bin(void)
{
	const char *b = getenv("TERN_KPEER");
	return b && *b ? b : "build/kpeer";
}

/* Bytes per bulk transfer: TERN_INTEROP_BYTES (a number, optionally with K or M), else
 * 32 MiB. */
static uint64_t interop_bytes(void)
{
	const char *s = getenv("TERN_INTEROP_BYTES");
	if (!s || !*s)
		return 32u << 20;
	char *end;
	uint64_t n = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		n <<= 10;
	else if (*end == 'M' || *end == 'm')
		n <<= 20;
	return n ? n : 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool verbose(void) { return getenv("TERN_TEST_VERBOSE") != NULL; }

static bool on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[4200];
		snprintf(full, sizeof(full), "%s/%s", d, prog);
		if (access(full, X_OK) == 0)
			return true;
	}
	return false;
}

/* A whole file as a NUL-terminated string (NULL if it cannot be read). */
static char *slurp_path(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
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
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	const char *p = data;
	while (len) {
		ssize_t w = write(fd, p, len);
		REQUIRE(w > 0);
		p += w;
		len -= (size_t)w;
	}
	REQUIRE(close(fd) == 0);
}

/* size random bytes (getrandom: a fresh pattern each run, so nothing can pass by luck). */
static void make_random(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	static char buf[1 << 20];
	while (size) {
		size_t n = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		for (size_t got = 0; got < n;) {
			ssize_t r = getrandom(buf + got, n - got, 0);
			REQUIRE(r > 0);
			got += (size_t)r;
		}
		for (size_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			REQUIRE(w > 0);
			off += (size_t)w;
		}
		size -= n;
	}
	REQUIRE(close(fd) == 0);
}

static int64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

/* got holds exactly what want holds: sizes, then the first differing byte. */
static void check_same_file_(const char *file, int line, const char *want, const char *got)
{
	int64_t ws = file_size(want), gs = file_size(got);
	if (ws < 0 || gs < 0) {
		test_fail(file, line, "cannot compare %s with %s: missing", got, want);
		return;
	}
	if (ws != gs) {
		test_fail(file, line, "%s has %lld bytes, %s %lld", got, (long long)gs, want,
			  (long long)ws);
		return;
	}
	FILE *a = fopen(want, "rb"), *b = fopen(got, "rb");
	REQUIRE(a && b);
	static char ba[1 << 16], bb[1 << 16];
	uint64_t off = 0;
	for (;;) {
		size_t na = fread(ba, 1, sizeof(ba), a), nb = fread(bb, 1, sizeof(bb), b);
		if (na != nb) {
			test_fail(file, line, "%s: short read at %llu", got, (unsigned long long)off);
			break;
		}
		if (!na)
			break;
		if (memcmp(ba, bb, na)) {
			size_t i = 0;
			while (ba[i] == bb[i])
				i++;
			test_fail(file, line, "%s differs from %s at byte %llu of %lld", got, want,
				  (unsigned long long)(off + i), (long long)ws);
			break;
		}
		off += na;
	}
	fclose(a);
	fclose(b);
}
#define CHECK_SAME_FILE(want, got) check_same_file_(__FILE__, __LINE__, (want), (got))

static void check_file_is_(const char *file, int line, const char *path, const char *text)
{
	size_t len = 0;
	char *s = slurp_path(path, &len);
	if (!s)
		test_fail(file, line, "%s: cannot read", path);
	else if (len != strlen(text) || memcmp(s, text, len))
		test_fail(file, line, "%s holds \"%.200s\" (%zu bytes), want \"%s\"", path, s, len,
			  text);
	free(s);
}
#define CHECK_FILE_IS(path, text) check_file_is_(__FILE__, __LINE__, (path), (text))

static void check_file_has_(const char *file, int line, const char *path, const char *needle)
{
	char *s = slurp_path(path, NULL);
	if (!s || !strstr(s, needle))
		test_fail(file, line, "%s does not mention \"%s\": %.400s", path, needle,
			  s ? s : "(unreadable)");
	free(s);
}
#define CHECK_FILE_HAS(path, needle) check_file_has_(__FILE__, __LINE__, (path), (needle))

/* A counter from the listing tern serve prints ("  name   value"); 0 when not listed. */
static long long counter(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; (p = strstr(p, name)); p += n)
		if (p >= text + 2 && p[-1] == ' ' && p[-2] == ' ' && p[n] == ' ')
			return strtoll(p + n, NULL, 10);
	return 0;
}

/* ---- the namespace and the processes of one test ---- */

#define MAX_PROCS 32

struct proc {
	pid_t pid;
	char what[24];
	bool done;
	int status; /* exit status, or 128 + signal */
};

struct it {
	char ns[64], dir[64];
	struct proc procs[MAX_PROCS];
	int nprocs;
	const char *name;
};

/* A path in the test's temporary directory. The result lives in one of 32 rotating
 * buffers: enough for the paths one test step holds at once (helpers that loop keep their
 * own buffers, so they never rotate these away). */
static const char *P(struct it *t, const char *name)
{
	static char bufs[32][128];
	static unsigned k;
	char *b = bufs[k++ % 32];
	snprintf(b, sizeof(bufs[0]), "%s/%s", t->dir, name);
	return b;
}

static int decode_status(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static struct proc *find_proc(struct it *t, pid_t pid)
{
	for (int i = t->nprocs - 1; i >= 0; i--)
		if (t->procs[i].pid == pid)
			return &t->procs[i];
	return NULL;
}

/* Has it exited? Reaps it and keeps the status if so. */
static bool proc_done(struct it *t, pid_t pid)
{
	struct proc *p = find_proc(t, pid);
	REQUIRE(p);
	if (p->done)
		return true;
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		p->done = true;
		p->status = decode_status(st);
	}
	return p->done;
}

/* Start argv[0] (searched on PATH) with the given descriptors as standard input, output and
 * error (-1: /dev/null). Every descriptor the test opens is close-on-exec, so the child
 * holds nothing else: a pipe's end given to one child is not kept open by another. */
static pid_t spawn_fds(struct it *t, const char *what, int in, int out, int err,
		       const char *const argv[])
{
	if (t->nprocs == MAX_PROCS) {
		/* Forget the processes already reaped (ss and the like, run by the hundred). */
		int k = 0;
		for (int i = 0; i < t->nprocs; i++)
			if (!t->procs[i].done)
				t->procs[k++] = t->procs[i];
		t->nprocs = k;
	}
	REQUIRE(t->nprocs < MAX_PROCS);
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* Should the body die (killed by its budget), its children die with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int nul = open("/dev/null", O_RDWR);
		if (nul < 0 || dup2(in >= 0 ? in : nul, 0) < 0 || dup2(out >= 0 ? out : nul, 1) < 0 ||
		    dup2(err >= 0 ? err : nul, 2) < 0)
			_exit(126);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	struct proc *p = &t->procs[t->nprocs++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(p->what, sizeof(p->what), "%s", what);
	return pid;
}

static int open_in(const char *path)
{
	int fd = open(path ? path : "/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	return fd;
}

static int open_out(const char *path)
{
	int fd = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	return fd;
}

/* The same with files (NULL: /dev/null); stdout and stderr files are created afresh. */
static pid_t spawn_files(struct it *t, const char *what, const char *in, const char *out,
			 const char *err, const char *const argv[])
{
	int i = open_in(in), o = open_out(out), e = open_out(err);
	pid_t pid = spawn_fds(t, what, i, o, e, argv);
	close(i);
	close(o);
	close(e);
	return pid;
}

/* Wait for a process to exit, at most timeout_ms; its status, or -1 if it had to be killed
 * (which fails the test). */
static int wait_proc_(const char *file, int line, struct it *t, pid_t pid, unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;
	unsigned nap = 1;
	while (!proc_done(t, pid)) {
		if (now_ms() >= end) {
			struct proc *p = find_proc(t, pid);
			test_fail(file, line, "%s (pid %d) still running after %u ms: killed", p->what,
				  (int)pid, timeout_ms);
			kill(pid, SIGKILL);
			int st;
			waitpid(pid, &st, 0);
			p->done = true;
			p->status = -1;
			return -1;
		}
		sleep_ms(nap);
		nap = nap < 10 ? nap + 1 : 10;
	}
	return find_proc(t, pid)->status;
}
#define WAIT_PROC(t, pid, ms) wait_proc_(__FILE__, __LINE__, (t), (pid), (ms))

/* The end of a test body: anything still running is a leftover; kill it by pid and reap. */
static void reap_all(struct it *t)
{
	for (int i = 0; i < t->nprocs; i++) {
		struct proc *p = &t->procs[i];
		if (p->done || proc_done(t, p->pid))
			continue;
		kill(p->pid, SIGKILL);
		int st;
		waitpid(p->pid, &st, 0);
		p->done = true;
		p->status = -1;
	}
}

/* Run a command to completion (bounded), output discarded unless out is given. */
static int run_cmd(struct it *t, const char *out, unsigned timeout_ms, const char *const argv[])
{
	pid_t pid = spawn_files(t, argv[0], NULL, out, NULL, argv);
	return WAIT_PROC(t, pid, timeout_ms);
}

/* The kernel's side of tern's device is up with its address: tern is running, configured
 * it, and will read what the kernel sends there. */
static bool kernel_addr_up(const char *addr)
{
	struct in_addr want;
	inet_pton(AF_INET, addr, &want);
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0)
		return false;
	bool up = false;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
		    ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr == want.s_addr)
			up = true;
	freeifaddrs(ifa);
	return up;
}

/* Wait for tern (pid) to bring its link up; fails fast if tern exits first. */
static void wait_tern_up_(const char *file, int line, struct it *t, pid_t tern, const char *err)
{
	uint64_t end = now_ms() + 10000;
	while (!kernel_addr_up(KERNEL_IP)) {
		if (proc_done(t, tern)) {
			char *e = err ? slurp_path(err, NULL) : NULL;
			test_fail(file, line, "tern exited (%d) before its link came up: %s",
				  find_proc(t, tern)->status, e ? e : "");
			free(e);
			test_abort();
		}
		if (now_ms() >= end) {
			test_fail(file, line, "tern's link not up after 10 s");
			test_abort();
		}
		sleep_ms(1);
	}
}
#define WAIT_TERN_UP(t, pid, err) wait_tern_up_(__FILE__, __LINE__, (t), (pid), (err))

/* Wait for a file to appear (kpeer's --ready) or a text in it; fails fast if pid exits. */
static void wait_file_(const char *file, int line, struct it *t, const char *path,
		       const char *needle, pid_t pid, unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;
	for (;;) {
		if (!needle && access(path, F_OK) == 0)
			return;
		if (needle) {
			char *s = slurp_path(path, NULL);
			bool found = s && strstr(s, needle);
			free(s);
			if (found)
				return;
		}
		if (pid > 0 && proc_done(t, pid)) {
			test_fail(file, line, "%s exited (%d) before %s%s%s", find_proc(t, pid)->what,
				  find_proc(t, pid)->status, path, needle ? " said " : " appeared",
				  needle ? needle : "");
			test_abort();
		}
		if (now_ms() >= end) {
			test_fail(file, line, "%s: no %s after %u ms", path, needle ? needle : "file",
				  timeout_ms);
			test_abort();
		}
		sleep_ms(2);
	}
}
#define WAIT_FILE(t, path, pid, ms) wait_file_(__FILE__, __LINE__, (t), (path), NULL, (pid), (ms))
#define WAIT_TEXT(t, path, text, pid, ms)                                                     \
	wait_file_(__FILE__, __LINE__, (t), (path), (text), (pid), (ms))

/* ---- the kernel's view: ss ---- */

struct sock_row {
	char state[16], local[48], peer[48];
};

/* The kernel's TCP sockets in the namespace (ss -tan), at most max. */
static int ss_rows(struct it *t, struct sock_row *rows, int max)
{
	static char out[128];
	snprintf(out, sizeof(out), "%s/ss.out", t->dir);
	int rc = run_cmd(t, out, 5000, (const char *const[]){"ss", "-tanH", NULL});
	REQUIRE(rc == 0);
	FILE *f = fopen(out, "r");
	REQUIRE(f);
	char line[512];
	int n = 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct sock_row *r = &rows[n];
		if (sscanf(line, "%15s %*s %*s %47s %47s", r->state, r->local, r->peer) == 3)
			n++;
	}
	fclose(f);
	return n;
}

static void ss_describe(const struct sock_row *rows, int n, char *buf, size_t cap)
{
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; i < n && k < cap; i++)
		k += (size_t)snprintf(buf + k, cap - k, " [%s %s %s]", rows[i].state, rows[i].local,
				      rows[i].peer);
	if (!n)
		snprintf(buf, cap, " (none)");
}

/*
 * Once both ends are done, the kernel must hold nothing but TIME-WAIT, on the side that
 * closed first: between min_tw and max_tw of them, no ESTABLISHED, CLOSE-WAIT, FIN-WAIT,
 * LAST-ACK, CLOSING or SYN state, no listener. An ACK may still be in flight when the
 * processes exit, so the sockets get up to a second to settle.
 */
static void check_kernel_sockets_(const char *file, int line, struct it *t, int min_tw,
				  int max_tw)
{
	struct sock_row rows[64];
	int n = 0, tw = 0, other = 0;
	uint64_t end = now_ms() + 1000;
	for (;;) {
		n = ss_rows(t, rows, 64);
		tw = other = 0;
		for (int i = 0; i < n; i++) {
			if (!strcmp(rows[i].state, "TIME-WAIT"))
				tw++;
			else
				other++;
		}
		if ((!other && tw >= min_tw && tw <= max_tw) || now_ms() >= end)
			break;
		sleep_ms(10);
	}
	if (other || tw < min_tw || tw > max_tw) {
		char desc[2048];
		ss_describe(rows, n, desc, sizeof(desc));
		test_fail(file, line, "the kernel's sockets: want %d..%d TIME-WAIT and nothing else, "
				      "have%s", min_tw, max_tw, desc);
	}
}
#define CHECK_KERNEL_SOCKETS(t, min_tw, max_tw)                                               \
	check_kernel_sockets_(__FILE__, __LINE__, (t), (min_tw), (max_tw))

/* Wait until one of the kernel's sockets is in state (e.g. FIN-WAIT-2). */
static void wait_kernel_state_(const char *file, int line, struct it *t, const char *state)
{
	uint64_t end = now_ms() + 10000;
	struct sock_row rows[64];
	for (;;) {
		int n = ss_rows(t, rows, 64);
		for (int i = 0; i < n; i++)
			if (!strcmp(rows[i].state, state))
				return;
		if (now_ms() >= end) {
			char desc[2048];
			ss_describe(rows, n, desc, sizeof(desc));
			test_fail(file, line, "no kernel socket in %s after 10 s:%s", state, desc);
			test_abort();
		}
		sleep_ms(5);
	}
}
#define WAIT_KERNEL_STATE(t, state) wait_kernel_state_(__FILE__, __LINE__, (t), (state))

/* ---- the test around a body ---- */

typedef void (*it_body)(struct it *);

static volatile sig_atomic_t it_signal;
static void it_on_signal(int sig) { it_signal = sig; }

static const char *missing_prerequisite(void)
{
	if (geteuid() != 0)
		return "not root (tern needs CAP_NET_ADMIN for TUN devices and namespaces)";
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		return "no usable /dev/net/tun";
	if (!on_path("ip") || !on_path("ss"))
		return "no ip or ss (iproute2)";
	if (access("/run/netns", F_OK) != 0 && access("/run", W_OK) != 0)
		return "cannot make network namespaces (/run not writable)";
	return NULL;
}

/* Run a command from the test process (not in the namespace), bounded; its status. */
static int host_cmd(const char *const argv[])
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0)
			dup2(nul, 0), dup2(nul, 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	uint64_t end = now_ms() + 20000;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return decode_status(st);
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		sleep_ms(2);
	}
}

/* Reap every child the test process has (the body, and as subreaper whatever the body left
 * behind); stragglers that escaped the body's process group are found by their parent pid
 * in /proc and killed by pid. Bounded. */
static void reap_descendants(void)
{
	uint64_t end = now_ms() + 5000;
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, WNOHANG);
		if (r > 0)
			continue;
		if (r < 0 && errno == ECHILD)
			return;
		if (now_ms() >= end) {
			fprintf(stderr, "    interop: children left that cannot be reaped\n");
			return;
		}
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char path[300], buf[512];
			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = 0;
			/* pid (comm) state ppid: comm may hold spaces, so read after the last ')' */
			const char *rp = strrchr(buf, ')');
			int ppid = 0;
			if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid())
				kill(atoi(e->d_name), SIGKILL);
		}
		if (d)
			closedir(d);
		sleep_ms(5);
	}
}

static void it_run(const char *name, it_body body, unsigned budget_s)
{
	const char *why = missing_prerequisite();
	if (why) {
		printf("SKIP %s: %s\n", name, why);
		return;
	}
	if (access(tern_bin(), X_OK) != 0 || access(kpeer_bin(), X_OK) != 0) {
		test_fail(__FILE__, __LINE__, "%s or %s is missing (set TERN_BIN and TERN_KPEER)",
			  tern_bin(), kpeer_bin());
		return;
	}
	static unsigned seq;
	struct it t;
	memset(&t, 0, sizeof(t));
	t.name = name;
	snprintf(t.ns, sizeof(t.ns), "tern-it-%d-%u", (int)getpid(), seq++);
	snprintf(t.dir, sizeof(t.dir), "/tmp/tern-it-XXXXXX");
	REQUIRE(mkdtemp(t.dir) != NULL);
	/* Orphans of the body come to this process, which reaps them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	struct sigaction sa, old[3];
	static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = it_on_signal;
	sigemptyset(&sa.sa_mask);
	/* A signal that would end the test process (Ctrl-C, a CI stop) ends the test instead,
	 * cleaned up, and is then raised again; signals ignored before stay ignored. */
	for (int i = 0; i < 3; i++) {
		sigaction(sigs[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	}

	uint64_t t0 = now_ms();
	bool made = host_cmd((const char *const[]){"ip", "netns", "add", t.ns, NULL}) == 0;
	if (!made)
		test_fail(__FILE__, __LINE__, "ip netns add %s failed", t.ns);
	else if (host_cmd((const char *const[]){"ip", "-n", t.ns, "link", "set", "lo", "up", NULL}))
		test_fail(__FILE__, __LINE__, "ip -n %s link set lo up failed", t.ns);
	else {
		fflush(NULL);
		pid_t self = getpid();
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			setpgid(0, 0);
			/* Should the test process be killed outright (a CI timeout), the body and
			 * through it everything it started go too, not linger in the namespace. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != self)
				_exit(1); /* it died before the line above */
			for (int i = 0; i < 3; i++)
				sigaction(sigs[i], &old[i], NULL);
			char path[128];
			snprintf(path, sizeof(path), "/run/netns/%s", t.ns);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
				test_fail(__FILE__, __LINE__, "cannot enter %s: %s", t.ns,
					  strerror(errno));
				_exit(1);
			}
			close(fd);
			body(&t);
			reap_all(&t);
			exit(test_failed() ? 1 : 0);
		}
		setpgid(pid, pid); /* as the child does: whichever runs first */
		bool killed = false;
		for (;;) {
			/* Exited? WNOWAIT leaves it a zombie, which keeps its process group's id
			 * from being reused until the group is killed below. */
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
			if (r == 0 && si.si_pid == pid)
				break;
			if (r < 0 && errno != EINTR)
				break;
			if (!killed && (it_signal || now_ms() - t0 > budget_s * 1000ull)) {
				if (it_signal)
					test_fail(__FILE__, __LINE__, "%s: interrupted by signal %d",
						  name, (int)it_signal);
				else
					test_fail(__FILE__, __LINE__, "%s: still running after %u s: "
						  "killed", name, budget_s);
				kill(-pid, SIGKILL);
				killed = true;
			}
			sleep_ms(2);
		}
		kill(-pid, SIGKILL); /* whatever the body left in its group */
		int st;
		if (waitpid(pid, &st, 0) == pid && decode_status(st) != 0 && !killed)
			test_fail(__FILE__, __LINE__, "%s failed (status %d) in namespace %s",
				  name, decode_status(st), t.ns);
		reap_descendants();
	}
	if (made && host_cmd((const char *const[]){"ip", "netns", "del", t.ns, NULL}) != 0)
		test_fail(__FILE__, __LINE__, "ip netns del %s failed", t.ns);
	if (host_cmd((const char *const[]){"rm", "-rf", "--", t.dir, NULL}) != 0)
		test_fail(__FILE__, __LINE__, "rm -rf %s failed", t.dir);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (it_signal)
		raise(it_signal); /* with the disposition it had before the test */
	if (verbose())
		printf("     %s: %.2f s\n", name, (double)(now_ms() - t0) / 1000.0);
}

/* IT(name, budget_s) { body using t }: a test run in a namespace of its own. */
#define IT(name, budget_s)                                                                    \
	static void name##_body(struct it *t);                                                \
	TEST(name) { it_run(#name, name##_body, (budget_s)); }                                \
	static void name##_body(struct it *t)

/* ---- argument lists ---- */

struct args {
	const char *v[64];
	int n;
	char store[8][64];
	int ns;
};

static void args_add(struct args *a, ...)
{
	va_list ap;
	va_start(ap, a);
	for (const char *s; (s = va_arg(ap, const char *));) {
		REQUIRE(a->n < 63);
		a->v[a->n++] = s;
	}
	va_end(ap);
	a->v[a->n] = NULL;
}
#define ARGS(a, ...) args_add((a), __VA_ARGS__, (const char *)NULL)

static const char *args_fmt(struct args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *args_fmt(struct args *a, const char *fmt, ...)
{
	REQUIRE(a->ns < 8);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->store[a->ns], sizeof(a->store[0]), fmt, ap);
	va_end(ap);
	return a->store[a->ns++];
}

/* `tern CMD --addr 10.7.0.2/24`, and under impairment the impairments, a fixed seed (so a
 * failure can be rerun with the same losses: TERN_SEED) and a linger. */
static void tern_args(struct args *a, const char *cmd, bool lossy)
{
	memset(a, 0, sizeof(*a));
	ARGS(a, tern_bin(), cmd, "--addr", TERN_ADDR);
	if (lossy)
		ARGS(a, "--impair", IMPAIR, "--linger", LOSSY_LINGER_MS, "--seed",
		     args_fmt(a, "%llu", (unsigned long long)test_seed(0x7e57)));
}

static const char *k_timeout(bool lossy) { return lossy ? "280" : "60"; }

/* ---- bulk transfers ---- */

enum { K2T = 1, T2K = 2 }; /* which directions carry the random bytes */

/*
 * TERN_INTEROP_BYTES random bytes kernel -> tern, tern -> kernel or both at once, with tern
 * listening (`tern cat -l`, the kernel connects) or connecting (`tern cat HOST PORT` to a
 * kernel listener). A side with nothing to send shuts down its sending side at once, so the
 * close order is known and with it where TIME-WAIT belongs. tun_io: tern's --tun-io (NULL:
 * its default, bursts by io_uring where there is one).
 */
static void transfer_io(struct it *t, bool tern_listens, int dirs, bool lossy,
			const char *tun_io)
{
	uint64_t size = interop_bytes();
	const char *kfile = P(t, "k.data"), *tfile = P(t, "t.data");
	const char *tern_got = P(t, "tern.got"), *kpeer_got = P(t, "kpeer.got");
	const char *tern_err = P(t, "tern.err"), *kpeer_err = P(t, "kpeer.err");
	if (dirs & K2T)
		make_random(kfile, size);
	if (dirs & T2K)
		make_random(tfile, size);
	unsigned wait_ms = lossy ? 300000 : 60000;
	uint64_t t0 = now_ms();
	struct args ta, ka;
	tern_args(&ta, "cat", lossy);
	if (tun_io)
		ARGS(&ta, "--tun-io", tun_io);
	memset(&ka, 0, sizeof(ka));
	ARGS(&ka, kpeer_bin(), "--timeout", k_timeout(lossy), "--recv", kpeer_got);
	if (dirs & K2T)
		ARGS(&ka, "--send", kfile);
	pid_t tern, kpeer;
	if (tern_listens) {
		ARGS(&ta, "-l", "5000");
		tern = spawn_files(t, "tern cat -l", dirs & T2K ? tfile : NULL, tern_got, tern_err,
				   ta.v);
		WAIT_TERN_UP(t, tern, tern_err);
		ARGS(&ka, "connect", TERN_IP, "5000");
		kpeer = spawn_files(t, "kpeer connect", NULL, NULL, kpeer_err, ka.v);
	} else {
		const char *ready = P(t, "kpeer.ready");
		ARGS(&ka, "--ready", ready, "listen", "6000");
		kpeer = spawn_files(t, "kpeer listen", NULL, NULL, kpeer_err, ka.v);
		WAIT_FILE(t, ready, kpeer, 5000);
		ARGS(&ta, KERNEL_IP, "6000");
		tern = spawn_files(t, "tern cat", dirs & T2K ? tfile : NULL, tern_got, tern_err,
				   ta.v);
	}
	int ks = WAIT_PROC(t, kpeer, wait_ms);
	int ts = WAIT_PROC(t, tern, wait_ms);
	double secs = (double)(now_ms() - t0) / 1000.0;
	CHECK_EQ(ks, 0);
	CHECK_EQ(ts, 0);
	if (ks || ts) {
		char *e1 = slurp_path(tern_err, NULL), *e2 = slurp_path(kpeer_err, NULL);
		fprintf(stderr, "    tern: %s    kpeer: %s", e1 ? e1 : "", e2 ? e2 : "");
		free(e1);
		free(e2);
	}
	if (dirs & K2T)
		CHECK_SAME_FILE(kfile, tern_got);
	else
		CHECK_EQ(file_size(tern_got), 0);
	if (dirs & T2K)
		CHECK_SAME_FILE(tfile, kpeer_got);
	else
		CHECK_EQ(file_size(kpeer_got), 0);
	/* Who sent its FIN first: the side with nothing to send; both sending, either. Under
	 * impairment a TIME-WAIT may also go early, and rightly: a duplicated or delayed
	 * segment reaching tern after its connection is gone draws an RST, and Linux ends
	 * TIME-WAIT on an RST (tcp_rfc1337 = 0). And tern's early FIN may be lost and resent
	 * after the kernel's own FIN: both close at once, and the kernel keeps a TIME-WAIT
	 * too (interop_close_tern_fin_lost shows it on purpose). */
	if (dirs == K2T)
		CHECK_KERNEL_SOCKETS(t, 0, lossy ? 1 : 0);
	else if (dirs == T2K)
		CHECK_KERNEL_SOCKETS(t, lossy ? 0 : 1, 1);
	else
		CHECK_KERNEL_SOCKETS(t, 0, 1);
	if (verbose())
		printf("     %s: %llu bytes %s%s in %.2f s\n", t->name, (unsigned long long)size,
		       dirs == K2T ? "kernel -> tern" : dirs == T2K ? "tern -> kernel" : "each way",
		       lossy ? " under " IMPAIR : "", secs);
}

static void transfer(struct it *t, bool tern_listens, int dirs, bool lossy)
{
	transfer_io(t, tern_listens, dirs, lossy, NULL);
}

IT(interop_bulk_kernel_to_tern_listener, 90) { transfer(t, true, K2T, false); }
IT(interop_bulk_tern_client_to_kernel, 90) { transfer(t, false, T2K, false); }
IT(interop_bulk_both_ways_tern_listener, 90) { transfer(t, true, K2T | T2K, false); }
IT(interop_bulk_both_ways_tern_client, 90) { transfer(t, false, K2T | T2K, false); }
IT(interop_lossy_kernel_to_tern_listener, 320) { transfer(t, true, K2T, true); }
IT(interop_lossy_tern_client_to_kernel, 320) { transfer(t, false, T2K, true); }
IT(interop_lossy_both_ways_tern_listener, 320) { transfer(t, true, K2T | T2K, true); }
IT(interop_lossy_both_ways_tern_client, 320) { transfer(t, false, K2T | T2K, true); }
/* The same bytes with one writev per packet, the link's other way of writing. */
IT(interop_bulk_both_ways_writev, 90) { transfer_io(t, false, K2T | T2K, false, "writev"); }

/* ---- closing and half-closing ---- */

static void show_errs(struct it *t)
{
	const char *names[] = {"tern.err", "kpeer.err"};
	for (int i = 0; i < 2; i++) {
		char *s = slurp_path(P(t, names[i]), NULL);
		if (s && *s)
			fprintf(stderr, "    %s: %s", names[i], s);
		free(s);
	}
}

/* A kernel listener on 6000 (kpeer with extra options), ready; its pid. */
static pid_t kernel_listener(struct it *t, const char *const extra[])
{
	struct args ka;
	memset(&ka, 0, sizeof(ka));
	ARGS(&ka, kpeer_bin(), "--timeout", "30", "--ready", P(t, "kpeer.ready"));
	for (int i = 0; extra[i]; i++)
		ARGS(&ka, extra[i]);
	ARGS(&ka, "listen", "6000");
	pid_t pid = spawn_files(t, "kpeer listen", NULL, NULL, P(t, "kpeer.err"), ka.v);
	WAIT_FILE(t, P(t, "kpeer.ready"), pid, 5000);
	return pid;
}

/* `tern cat -l 5000` with its standard input the read end of a pipe whose write end is
 * returned in *w: tern keeps its sending side open until the test closes the pipe. */
static pid_t tern_listener_on_pipe(struct it *t, int *w, const char *out)
{
	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "-l", "5000");
	int o = open_out(out), e = open_out(P(t, "tern.err"));
	pid_t pid = spawn_fds(t, "tern cat -l", p[0], o, e, ta.v);
	close(p[0]);
	close(o);
	close(e);
	*w = p[1];
	WAIT_TERN_UP(t, pid, P(t, "tern.err"));
	return pid;
}

static pid_t kernel_client(struct it *t, const char *const extra[])
{
	struct args ka;
	memset(&ka, 0, sizeof(ka));
	ARGS(&ka, kpeer_bin(), "--timeout", "30");
	for (int i = 0; extra[i]; i++)
		ARGS(&ka, extra[i]);
	ARGS(&ka, "connect", TERN_IP, "5000");
	return spawn_files(t, "kpeer connect", NULL, NULL, P(t, "kpeer.err"), ka.v);
}

/* tern closes first: its input ends after a line, the kernel reads to the end and only then
 * closes. tern ends in TIME_WAIT, the kernel's LAST-ACK is answered: nothing left. */
IT(interop_close_tern_first, 90)
{
	write_file(P(t, "line"), "tern speaks first and closes\n", 29);
	pid_t k = kernel_listener(t, (const char *const[]){"--no-shut", "--recv", P(t, "k.got"),
							   NULL});
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, KERNEL_IP, "6000");
	pid_t tern = spawn_files(t, "tern cat", P(t, "line"), P(t, "t.got"), P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "tern speaks first and closes\n");
	CHECK_EQ(file_size(P(t, "t.got")), 0);
	CHECK_KERNEL_SOCKETS(t, 0, 0);
	if (test_failed())
		show_errs(t);
}

/* The kernel closes first: it sends a line and shuts down; once its FIN is acknowledged
 * (FIN-WAIT-2) tern's input ends and tern closes. The kernel ends in TIME-WAIT. */
IT(interop_close_kernel_first, 90)
{
	write_file(P(t, "line"), "the kernel speaks first and closes\n", 35);
	int w;
	pid_t tern = tern_listener_on_pipe(t, &w, P(t, "t.got"));
	pid_t k = kernel_client(t, (const char *const[]){"--send", P(t, "line"), "--recv",
							 P(t, "k.got"), NULL});
	WAIT_KERNEL_STATE(t, "FIN-WAIT-2");
	CHECK(!proc_done(t, tern)); /* still there, its own side open */
	close(w);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "t.got"), "the kernel speaks first and closes\n");
	CHECK_EQ(file_size(P(t, "k.got")), 0);
	CHECK_KERNEL_SOCKETS(t, 1, 1);
	if (test_failed())
		show_errs(t);
}

/* tern's FIN is lost: tern (nothing to send) shuts down at once, its FIN dropped by
 * --drop; the kernel sends a line and its own FIN, which reaches tern in FIN-WAIT-1 (to
 * CLOSING). tern's FIN, retransmitted a timeout later, finds the kernel in FIN-WAIT-2: each
 * side sent its FIN before it saw the other's, so both keep TIME-WAIT (RFC 9293 §3.6,
 * simultaneous close). The same can happen by chance in the lossy transfers. */
IT(interop_close_tern_fin_lost, 90)
{
	write_file(P(t, "line"), "the kernel closes after tern\n", 29);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "--drop", "out:fin#1", "-l", "5000");
	pid_t tern = spawn_files(t, "tern cat -l", NULL, P(t, "t.got"), P(t, "tern.err"), ta.v);
	WAIT_TERN_UP(t, tern, P(t, "tern.err"));
	pid_t k = kernel_client(t, (const char *const[]){"--send", P(t, "line"), "--recv",
							 P(t, "k.got"), NULL});
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "t.got"), "the kernel closes after tern\n");
	CHECK_EQ(file_size(P(t, "k.got")), 0);
	CHECK_KERNEL_SOCKETS(t, 1, 1);
	if (test_failed())
		show_errs(t);
}

/* Half-close, the kernel's side: the kernel sends a line and shuts down its sending side;
 * after that (FIN-WAIT-2) tern sends 1 MiB into the half-closed connection, then closes.
 * The kernel gets all of it. */
IT(interop_half_close_kernel_shuts_tern_sends, 90)
{
	write_file(P(t, "line"), "kernel done sending\n", 20);
	make_random(P(t, "big"), 1u << 20);
	int w;
	pid_t tern = tern_listener_on_pipe(t, &w, P(t, "t.got"));
	pid_t k = kernel_client(t, (const char *const[]){"--send", P(t, "line"), "--recv",
							 P(t, "k.got"), NULL});
	WAIT_KERNEL_STATE(t, "FIN-WAIT-2");
	/* cat feeds tern's input from the file and ends it. */
	int in = open_in(P(t, "big"));
	pid_t cat = spawn_fds(t, "cat", in, w, -1, (const char *const[]){"cat", NULL});
	close(in);
	close(w);
	CHECK_EQ(WAIT_PROC(t, cat, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "t.got"), "kernel done sending\n");
	CHECK_SAME_FILE(P(t, "big"), P(t, "k.got"));
	CHECK_KERNEL_SOCKETS(t, 1, 1);
	if (test_failed())
		show_errs(t);
}

/* Half-close, tern's side: tern sends a line and its input ends (FIN); only after the
 * kernel has read that end does it send 1 MiB, then close. tern gets all of it. */
IT(interop_half_close_tern_shuts_kernel_sends, 90)
{
	write_file(P(t, "line"), "tern done sending\n", 18);
	make_random(P(t, "big"), 1u << 20);
	pid_t k = kernel_listener(t, (const char *const[]){"--after-eof", "--send", P(t, "big"),
							   "--recv", P(t, "k.got"), NULL});
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, KERNEL_IP, "6000");
	pid_t tern = spawn_files(t, "tern cat", P(t, "line"), P(t, "t.got"), P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "tern done sending\n");
	CHECK_SAME_FILE(P(t, "big"), P(t, "t.got"));
	CHECK_KERNEL_SOCKETS(t, 0, 0);
	if (test_failed())
		show_errs(t);
}

/* ---- resets ---- */

/* tern connects to a kernel port nobody listens on: the kernel's RST ends the attempt at
 * once, exit status 1 and "refused". */
IT(interop_rst_kernel_refuses_tern, 30)
{
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, KERNEL_IP, "6001");
	uint64_t t0 = now_ms();
	pid_t tern = spawn_files(t, "tern cat", NULL, P(t, "t.got"), P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, tern, 10000), 1);
	CHECK(now_ms() - t0 < 5000); /* the RST, not a timeout */
	CHECK_FILE_HAS(P(t, "tern.err"), "refused");
	CHECK_FILE_HAS(P(t, "tern.err"), KERNEL_IP ":6001");
	CHECK_EQ(file_size(P(t, "t.got")), 0);
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* The kernel connects to a tern port nobody listens on: tern's RST gives ECONNREFUSED
 * (kpeer's status 3). tern counts it. */
IT(interop_rst_tern_refuses_kernel, 45)
{
	struct args ta;
	tern_args(&ta, "serve", false);
	ARGS(&ta, "discard:9");
	pid_t serve = spawn_files(t, "tern serve", NULL, P(t, "serve.out"), P(t, "tern.err"), ta.v);
	WAIT_TERN_UP(t, serve, P(t, "tern.err"));
	pid_t k = spawn_files(t, "kpeer connect", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "10", "connect",
						    TERN_IP, "5001", NULL});
	CHECK_EQ(WAIT_PROC(t, k, 15000), 3);
	CHECK_FILE_HAS(P(t, "kpeer.err"), "Connection refused");
	kill(serve, SIGTERM);
	CHECK_EQ(WAIT_PROC(t, serve, 10000), 0);
	CHECK_FILE_HAS(P(t, "serve.out"), "tern serve: 0 connections");
	char *out = slurp_path(P(t, "serve.out"), NULL);
	REQUIRE(out);
	CHECK_EQ(counter(out, "tcp_no_port"), 1);
	CHECK_EQ(counter(out, "tcp_rst_out"), 1);
	free(out);
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* The kernel aborts (SO_LINGER 0) once tern has acknowledged its line: tern cat, listening,
 * reports the reset with status 1; what arrived before it was written out. */
IT(interop_rst_kernel_aborts_tern_listener, 90)
{
	write_file(P(t, "line"), "then a reset\n", 13);
	int w;
	pid_t tern = tern_listener_on_pipe(t, &w, P(t, "t.got"));
	pid_t k = kernel_client(t, (const char *const[]){"--abort", "--send", P(t, "line"), NULL});
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_HAS(P(t, "kpeer.err"), "aborted");
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 1);
	close(w);
	CHECK_FILE_HAS(P(t, "tern.err"), "reset");
	CHECK_FILE_IS(P(t, "t.got"), "then a reset\n");
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* The same with tern connecting: its input stays open, the kernel listener aborts. */
IT(interop_rst_kernel_aborts_tern_client, 90)
{
	write_file(P(t, "line"), "reset follows\n", 14);
	pid_t k = kernel_listener(t, (const char *const[]){"--abort", "--send", P(t, "line"),
							   NULL});
	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, KERNEL_IP, "6000");
	int o = open_out(P(t, "t.got")), e = open_out(P(t, "tern.err"));
	pid_t tern = spawn_fds(t, "tern cat", p[0], o, e, ta.v);
	close(p[0]);
	close(o);
	close(e);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 1);
	close(p[1]);
	CHECK_FILE_HAS(P(t, "tern.err"), "reset");
	CHECK_FILE_IS(P(t, "t.got"), "reset follows\n");
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* tern aborts: `tern cat` resets its connection when its standard output fails (here a
 * pipe nobody reads, EPIPE on the first write). The kernel, still receiving, sees
 * ECONNRESET (kpeer's status 4). */
IT(interop_rst_tern_aborts, 90)
{
	write_file(P(t, "line"), "nobody will read this\n", 22);
	int in[2], out[2];
	REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	close(out[0]); /* tern's output goes nowhere */
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "-l", "5000");
	int e = open_out(P(t, "tern.err"));
	pid_t tern = spawn_fds(t, "tern cat -l", in[0], out[1], e, ta.v);
	close(in[0]);
	close(out[1]);
	close(e);
	WAIT_TERN_UP(t, tern, P(t, "tern.err"));
	pid_t k = kernel_client(t, (const char *const[]){"--no-shut", "--send", P(t, "line"),
							 "--recv", P(t, "k.got"), NULL});
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 1);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 4);
	close(in[1]);
	CHECK_FILE_HAS(P(t, "tern.err"), "standard output");
	CHECK_FILE_HAS(P(t, "kpeer.err"), "reset");
	CHECK_EQ(file_size(P(t, "k.got")), 0);
	CHECK_KERNEL_SOCKETS(t, 0, 0);
	if (test_failed())
		show_errs(t);
}

/* ---- tern serve ---- */

/* `tern serve` in the namespace with these services; its stdout in serve.out. */
static pid_t start_serve(struct it *t, const char *const extra[])
{
	struct args ta;
	tern_args(&ta, "serve", false);
	for (int i = 0; extra[i]; i++)
		ARGS(&ta, extra[i]);
	pid_t pid = spawn_files(t, "tern serve", NULL, P(t, "serve.out"), P(t, "tern.err"), ta.v);
	WAIT_TERN_UP(t, pid, P(t, "tern.err"));
	return pid;
}

/* SIGTERM: a clean exit (status 0) and the summary line exactly as given. */
static void stop_serve_(const char *file, int line, struct it *t, pid_t serve,
			const char *summary)
{
	kill(serve, SIGTERM);
	int st = wait_proc_(file, line, t, serve, 15000);
	if (st != 0)
		test_fail(file, line, "tern serve: exit status %d after SIGTERM", st);
	char *out = slurp_path(P(t, "serve.out"), NULL);
	char want[512];
	snprintf(want, sizeof(want), "%s\n", summary);
	if (!out || !strstr(out, want))
		test_fail(file, line, "tern serve's summary is not \"%s\": %.600s", summary,
			  out ? out : "(no output)");
	free(out);
}
#define STOP_SERVE(t, pid, summary) stop_serve_(__FILE__, __LINE__, (t), (pid), (summary))

static uint8_t chargen(uint64_t off)
{
	uint64_t line = off / 74, col = off % 74;
	if (col == 72)
		return '\r';
	if (col == 73)
		return '\n';
	return (uint8_t)(' ' + (line + col) % 95);
}

/* echo returns 1 MiB, discard takes 1 MiB, source sends --bytes of RFC 864's pattern; the
 * summary counts exactly that. */
IT(interop_serve_echo_discard_source, 120)
{
	make_random(P(t, "mib"), 1u << 20);
	char *pattern = malloc(100000);
	REQUIRE(pattern);
	for (uint64_t i = 0; i < 100000; i++)
		pattern[i] = (char)chargen(i);
	write_file(P(t, "pattern"), pattern, 100000);
	free(pattern);
	pid_t serve = start_serve(t, (const char *const[]){"--bytes", "100000", "echo:7",
							  "discard:9", "source:19", NULL});
	pid_t e = spawn_files(t, "kpeer echo", NULL, NULL, P(t, "e.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--send",
						    P(t, "mib"), "--recv", P(t, "e.got"), "connect",
						    TERN_IP, "7", NULL});
	pid_t d = spawn_files(t, "kpeer discard", NULL, NULL, P(t, "d.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--send",
						    P(t, "mib"), "--recv", P(t, "d.got"), "connect",
						    TERN_IP, "9", NULL});
	pid_t s = spawn_files(t, "kpeer source", NULL, NULL, P(t, "s.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--recv",
						    P(t, "s.got"), "connect", TERN_IP, "19", NULL});
	CHECK_EQ(WAIT_PROC(t, e, 30000), 0);
	CHECK_EQ(WAIT_PROC(t, d, 30000), 0);
	CHECK_EQ(WAIT_PROC(t, s, 30000), 0);
	CHECK_SAME_FILE(P(t, "mib"), P(t, "e.got"));
	CHECK_EQ(file_size(P(t, "d.got")), 0);
	CHECK_SAME_FILE(P(t, "pattern"), P(t, "s.got"));
	STOP_SERVE(t, serve, "tern serve: 3 connections, 2097152 bytes in, 1148576 bytes out; "
			     "0 reset, 0 timed out");
	/* echo and discard: the kernel closed first (it shut down after sending); source: the
	 * kernel had nothing to send and shut down at once. */
	CHECK_KERNEL_SOCKETS(t, 3, 3);
}

/* SIGUSR1 lists the connections (here one echo connection, established) and the counters;
 * SIGTERM then closes it cleanly (echo shuts its side, the kernel follows) and exits 0. */
IT(interop_serve_signals, 60)
{
	write_file(P(t, "line"), "echo me\n", 8);
	pid_t serve = start_serve(t, (const char *const[]){"echo:7", "discard:9", NULL});
	/* --no-shut: the kernel keeps its side open until tern closes. */
	pid_t k = spawn_files(t, "kpeer echo", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--no-shut",
						    "--send", P(t, "line"), "--recv", P(t, "k.got"),
						    "connect", TERN_IP, "7", NULL});
	/* Echoed, so that SIGTERM below finds the bytes counted both ways. */
	WAIT_TEXT(t, P(t, "k.got"), "echo me\n", k, 10000);
	kill(serve, SIGUSR1);
	/* tun_tx_bytes is the last counter listed that cannot be 0 here */
	WAIT_TEXT(t, P(t, "serve.out"), "tun_tx_bytes", serve, 5000);
	char *out = slurp_path(P(t, "serve.out"), NULL);
	REQUIRE(out);
	CHECK(strstr(out, "connections:\n") != NULL);
	const char *est = strstr(out, "  ESTABLISHED ");
	CHECK(est != NULL);
	if (est) {
		const char *eol = strchr(est, '\n');
		char row[256];
		snprintf(row, sizeof(row), "%.*s", eol ? (int)(eol - est) : 200, est);
		CHECK(strstr(row, TERN_IP ":7 ") != NULL);
		CHECK(strstr(row, KERNEL_IP ":") != NULL);
	}
	CHECK(strstr(out, "by state: ESTABLISHED 1 LISTEN 2\n") != NULL);
	CHECK(counter(out, "tcp_passive_opens") == 1);
	CHECK(strstr(out, "tern serve:") == NULL); /* no summary yet: still serving */
	free(out);
	STOP_SERVE(t, serve, "tern serve: 1 connections, 8 bytes in, 8 bytes out; 0 reset, "
			     "0 timed out");
	CHECK_EQ(WAIT_PROC(t, k, 10000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "echo me\n");
	/* tern closed first (SIGTERM): no TIME-WAIT on the kernel's side. */
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* A discard connection whose client sends nothing more when SIGTERM comes: "SIGINT or
 * SIGTERM closes every connection cleanly", so tern closes it with a FIN (as it shuts
 * echo's sending side), rather than leaving it open until --grace and then resetting it. */
IT(interop_serve_sigterm_closes_idle_discard, 60)
{
	pid_t serve = start_serve(t, (const char *const[]){"discard:9", NULL});
	pid_t k = spawn_files(t, "kpeer discard", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--no-shut",
						    "connect", TERN_IP, "9", NULL});
	WAIT_KERNEL_STATE(t, "ESTAB"); /* ss says ESTAB */
	uint64_t t0 = now_ms();
	STOP_SERVE(t, serve, "tern serve: 1 connections, 0 bytes in, 0 bytes out; 0 reset, "
			     "0 timed out");
	CHECK(now_ms() - t0 < 2000); /* well within the 3 s grace */
	CHECK_EQ(WAIT_PROC(t, k, 10000), 0); /* EOF, not ECONNRESET */
	CHECK_KERNEL_SOCKETS(t, 0, 0);
}

/* CPU time (user + system, in clock ticks) that process pid has used so far; -1 if unknown. */
static long long cpu_ticks(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *st = slurp_path(path, NULL);
	if (!st)
		return -1;
	/* Fields after the command name (which may hold spaces) start after its ')'. */
	const char *p = strrchr(st, ')');
	unsigned long long ut = 0, stt = 0;
	int n = p ? sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			   &stt)
		  : 0;
	free(st);
	return n == 2 ? (long long)(ut + stt) : -1;
}

/* CPU ticks pid uses over one second, after 300 ms to settle; -1 if unknown. */
static long long ticks_in_a_second(pid_t pid)
{
	sleep_ms(300);
	long long a = cpu_ticks(pid);
	sleep_ms(1000);
	long long b = cpu_ticks(pid);
	return a >= 0 && b >= 0 ? b - a : -1;
}

/* An idle server sleeps: over a second with nothing to do (no connection, then one idle
 * connection) it uses next to no CPU, with --idle 0 (no idle sweep) as with the default.
 * --idle 0 once left the loop's sweep deadline in the past, so it polled without sleeping.
 * A spinning loop uses a whole second: 100 ticks. */
static void check_serve_sleeps(struct it *t, const char *idle)
{
	pid_t serve = start_serve(t, (const char *const[]){"--idle", idle, "discard:9", NULL});
	long long ticks = ticks_in_a_second(serve);
	CHECK(ticks >= 0 && ticks <= 5);
	pid_t k = spawn_files(t, "kpeer discard", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "30", "--no-shut",
						    "connect", TERN_IP, "9", NULL});
	WAIT_KERNEL_STATE(t, "ESTAB");
	ticks = ticks_in_a_second(serve);
	CHECK(ticks >= 0 && ticks <= 5);
	STOP_SERVE(t, serve, "tern serve: 1 connections, 0 bytes in, 0 bytes out; 0 reset, "
			     "0 timed out");
	CHECK_EQ(WAIT_PROC(t, k, 10000), 0);
}
IT(interop_serve_idle_sleeps_no_sweep, 60) { check_serve_sleeps(t, "0"); }
IT(interop_serve_idle_sleeps, 60) { check_serve_sleeps(t, "60"); }

/* A second tern on the prefix the first one's device already has: the kernel would route
 * everything for it to the first device, so it refuses at once, naming that device, instead
 * of starting and hearing nothing. A tern on a prefix of its own beside it works. */
IT(interop_second_tern_same_prefix_refused, 60)
{
	pid_t serve = start_serve(t, (const char *const[]){"discard:9", NULL});
	uint64_t t0 = now_ms();
	pid_t two = spawn_files(t, "tern cat", NULL, NULL, P(t, "two.err"),
				(const char *const[]){tern_bin(), "cat", "--addr", "10.7.0.5/24",
						      KERNEL_IP, "9", NULL});
	CHECK_EQ(WAIT_PROC(t, two, 10000), 1);
	CHECK(now_ms() - t0 < 5000);
	CHECK_FILE_HAS(P(t, "two.err"), "10.7.0.5 lies in 10.7.0.1/24 on tern0");
	/* A wider prefix around the first one is refused too: tern's address is in it. */
	pid_t wide = spawn_files(t, "tern cat", NULL, NULL, P(t, "wide.err"),
				 (const char *const[]){tern_bin(), "cat", "--addr", "10.7.0.6/16",
						       "10.7.0.1", "9", NULL});
	CHECK_EQ(WAIT_PROC(t, wide, 10000), 1);
	CHECK_FILE_HAS(P(t, "wide.err"), "lies in 10.7.0.1/24 on tern0");
	/* Another prefix: the kernel's RST for port 9 there (nothing listens) proves the
	 * path works. */
	pid_t other = spawn_files(t, "tern cat", NULL, NULL, P(t, "other.err"),
				  (const char *const[]){tern_bin(), "cat", "--addr", "10.8.0.2/24",
							"10.8.0.1", "9", NULL});
	CHECK_EQ(WAIT_PROC(t, other, 10000), 1);
	CHECK_FILE_HAS(P(t, "other.err"), "connect to 10.8.0.1:9: connection refused");
	STOP_SERVE(t, serve, "tern serve: 0 connections, 0 bytes in, 0 bytes out; 0 reset, "
			     "0 timed out");
}

/* ---- HTTP with curl ---- */

struct www {
	const char *name;
	uint64_t size;
};
static const struct www www_files[] = {
	{"empty", 0}, {"one", 1}, {"mss.bin", 1460}, {"k64.bin", 65536},
	{"m1.bin", 1u << 20}, {"m20.bin", 20u << 20},
};
#define NWWW (sizeof(www_files) / sizeof(www_files[0]))

/* t->dir/www with the files above, a secret beside it (outside), and links. */
static void make_www(struct it *t)
{
	REQUIRE(mkdir(P(t, "www"), 0755) == 0);
	for (size_t i = 0; i < NWWW; i++) {
		char name[64];
		snprintf(name, sizeof(name), "www/%s", www_files[i].name);
		make_random(P(t, name), www_files[i].size);
	}
	write_file(P(t, "secret"), "TERN-INTEROP-SECRET\n", 20);
	REQUIRE(symlink("../secret", P(t, "www/up-link")) == 0);
	REQUIRE(symlink(P(t, "secret"), P(t, "www/abs-link")) == 0);
	REQUIRE(symlink("mss.bin", P(t, "www/in-link")) == 0);
}

static pid_t start_http(struct it *t)
{
	return start_serve(t, (const char *const[]){"--dir", P(t, "www"), "http", NULL});
}

/* curl ARGS... -w FORMAT: its status and what -w printed in *wout (malloc'd). */
static int curl_(struct it *t, char **wout, const char *const args[])
{
	struct args a;
	memset(&a, 0, sizeof(a));
	ARGS(&a, "curl", "-s", "--max-time", "60");
	for (int i = 0; args[i]; i++)
		ARGS(&a, args[i]);
	static char wpath[128];
	snprintf(wpath, sizeof(wpath), "%s/curl.w", t->dir);
	int rc = run_cmd(t, wpath, 70000, a.v);
	*wout = slurp_path(wpath, NULL);
	REQUIRE(*wout);
	return rc;
}

/* Each file on a connection of its own, compared byte for byte; tern's summary counts
 * exactly the bytes curl says it sent (requests) and received (heads and bodies). */
IT(interop_http_files, 120)
{
	make_www(t);
	pid_t serve = start_http(t);
	unsigned long long req_bytes = 0, resp_bytes = 0;
	for (size_t i = 0; i < NWWW; i++) {
		char url[128], want[64], path[64];
		snprintf(url, sizeof(url), "http://" TERN_IP "/%s", www_files[i].name);
		snprintf(path, sizeof(path), "www/%s", www_files[i].name);
		char *w;
		int rc = curl_(t, &w, (const char *const[]){"-o", P(t, "got"), "-w",
							   "%{http_code} %{size_download} "
							   "%{num_connects} %{size_header} "
							   "%{size_request}",
							   url, NULL});
		snprintf(want, sizeof(want), "200 %llu 1 ", (unsigned long long)www_files[i].size);
		unsigned long long hdr = 0, req = 0;
		const char *rest = strncmp(w, want, strlen(want)) ? NULL : w + strlen(want);
		if (rc != 0 || !rest || sscanf(rest, "%llu %llu", &hdr, &req) != 2)
			test_fail(__FILE__, __LINE__, "curl %s: status %d, got \"%s\", want \"%s...\"",
				  url, rc, w, want);
		req_bytes += req;
		resp_bytes += hdr + www_files[i].size;
		free(w);
		CHECK_SAME_FILE(P(t, path), P(t, "got"));
	}
	char summary[256];
	snprintf(summary, sizeof(summary),
		 "tern serve: 6 connections, %llu bytes in, %llu bytes out; http responses 2xx 6, "
		 "4xx 0, 5xx 0; 0 reset, 0 timed out", req_bytes, resp_bytes);
	STOP_SERVE(t, serve, summary);
	/* curl closed each connection first: one TIME-WAIT each. */
	CHECK_KERNEL_SOCKETS(t, 6, 6);
}

/* Several URLs in one curl: one connection (num_connects 1, then 0), every body exact. */
IT(interop_http_keepalive, 60)
{
	make_www(t);
	pid_t serve = start_http(t);
	char *w;
	int rc = curl_(t, &w, (const char *const[]){
		"-w", "%{http_code} %{size_download} %{num_connects}\n",
		"-o", P(t, "g1"), "http://" TERN_IP "/one",
		"-o", P(t, "g2"), "http://" TERN_IP "/k64.bin",
		"-o", P(t, "g3"), "http://" TERN_IP "/empty",
		"-o", P(t, "g4"), "http://" TERN_IP "/m1.bin",
		"-o", P(t, "g5"), "http://" TERN_IP "/mss.bin", NULL});
	CHECK_EQ(rc, 0);
	CHECK_STR(w, "200 1 1\n200 65536 0\n200 0 0\n200 1048576 0\n200 1460 0\n");
	free(w);
	CHECK_SAME_FILE(P(t, "www/one"), P(t, "g1"));
	CHECK_SAME_FILE(P(t, "www/k64.bin"), P(t, "g2"));
	CHECK_SAME_FILE(P(t, "www/empty"), P(t, "g3"));
	CHECK_SAME_FILE(P(t, "www/m1.bin"), P(t, "g4"));
	CHECK_SAME_FILE(P(t, "www/mss.bin"), P(t, "g5"));
	kill(serve, SIGTERM);
	CHECK_EQ(WAIT_PROC(t, serve, 15000), 0);
	CHECK_FILE_HAS(P(t, "serve.out"), "tern serve: 1 connections, ");
	CHECK_FILE_HAS(P(t, "serve.out"), "; http responses 2xx 5, 4xx 0, 5xx 0; 0 reset");
	CHECK_KERNEL_SOCKETS(t, 1, 1);
}

/* A missing file is 404; paths that climb out of the directory (as sent, not normalized
 * by curl) and links that lead out are refused with 403 or 404 and never carry the
 * secret's bytes; a link that stays inside is followed. */
IT(interop_http_errors_and_escapes, 60)
{
	make_www(t);
	pid_t serve = start_http(t);
	char *w;
	int rc = curl_(t, &w, (const char *const[]){"-o", P(t, "got"), "-w", "%{http_code}",
						   "http://" TERN_IP "/no-such-file", NULL});
	CHECK_EQ(rc, 0);
	CHECK_STR(w, "404");
	free(w);
	static const char *const escapes[] = {
		"/../secret", "/%2e%2e/secret", "/..%2fsecret", "/./../secret", "//../secret",
		"/up-link", "/abs-link", "/in-link/../../secret",
	};
	unsigned refused = 0;
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		char url[128];
		snprintf(url, sizeof(url), "http://" TERN_IP "%s", escapes[i]);
		rc = curl_(t, &w, (const char *const[]){"--path-as-is", "-o", P(t, "got"), "-w",
						       "%{http_code}", url, NULL});
		char *body = slurp_path(P(t, "got"), NULL);
		if (rc != 0 || (strcmp(w, "403") && strcmp(w, "404")))
			test_fail(__FILE__, __LINE__, "%s: curl status %d, HTTP %s (want 403 or 404)",
				  escapes[i], rc, w);
		else
			refused++;
		if (body && strstr(body, "TERN-INTEROP-SECRET"))
			test_fail(__FILE__, __LINE__, "%s returned the secret", escapes[i]);
		free(body);
		free(w);
	}
	rc = curl_(t, &w, (const char *const[]){"-o", P(t, "got"), "-w", "%{http_code}",
					       "http://" TERN_IP "/in-link", NULL});
	CHECK_EQ(rc, 0);
	CHECK_STR(w, "200");
	free(w);
	CHECK_SAME_FILE(P(t, "www/mss.bin"), P(t, "got"));
	kill(serve, SIGTERM);
	CHECK_EQ(WAIT_PROC(t, serve, 15000), 0);
	char summary[128];
	snprintf(summary, sizeof(summary), "; http responses 2xx 1, 4xx %u, 5xx 0; 0 reset",
		 1 + refused);
	CHECK_FILE_HAS(P(t, "serve.out"), summary);
	CHECK_KERNEL_SOCKETS(t, 10, 10);
}

/* HEAD: the status line and Content-Length of the file, and not one byte of body: the raw
 * response (kpeer, Connection: close) ends right after the blank line. */
IT(interop_http_head, 60)
{
	make_www(t);
	pid_t serve = start_http(t);
	char *w;
	int rc = curl_(t, &w, (const char *const[]){"-I", "-o", P(t, "head"), "-w",
						   "%{http_code} %{size_download}",
						   "http://" TERN_IP "/m1.bin", NULL});
	CHECK_EQ(rc, 0);
	CHECK_STR(w, "200 0");
	free(w);
	CHECK_FILE_HAS(P(t, "head"), "HTTP/1.1 200 OK\r\n");
	CHECK_FILE_HAS(P(t, "head"), "\r\nContent-Length: 1048576\r\n");

	static const char req[] = "HEAD /k64.bin HTTP/1.1\r\nHost: " TERN_IP "\r\n"
				  "Connection: close\r\n\r\n";
	write_file(P(t, "req"), req, sizeof(req) - 1);
	pid_t k = spawn_files(t, "kpeer HEAD", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "20", "--no-shut",
						    "--send", P(t, "req"), "--recv", P(t, "resp"),
						    "connect", TERN_IP, "80", NULL});
	CHECK_EQ(WAIT_PROC(t, k, 25000), 0);
	size_t len = 0;
	char *resp = slurp_path(P(t, "resp"), &len);
	REQUIRE(resp);
	CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(resp, "\r\nContent-Length: 65536\r\n") != NULL);
	const char *end = strstr(resp, "\r\n\r\n");
	CHECK(end != NULL);
	if (end && (size_t)(end + 4 - resp) != len)
		test_fail(__FILE__, __LINE__, "%zu bytes after the head of a HEAD response",
			  len - (size_t)(end + 4 - resp));
	free(resp);
	kill(serve, SIGTERM);
	CHECK_EQ(WAIT_PROC(t, serve, 15000), 0);
	CHECK_FILE_HAS(P(t, "serve.out"), "tern serve: 2 connections, ");
	CHECK_FILE_HAS(P(t, "serve.out"), "; http responses 2xx 2, 4xx 0, 5xx 0; 0 reset");
	/* curl closed first (TIME-WAIT); tern closed the Connection: close one first. */
	CHECK_KERNEL_SOCKETS(t, 1, 1);
}

/* ---- ICMP, UDP, pcap ---- */

/* ping tern's address: every echo request answered, and tern counts its replies. */
IT(interop_ping, 45)
{
	if (!on_path("ping")) {
		printf("SKIP interop_ping: no ping (iputils-ping)\n");
		return;
	}
	pid_t serve = start_serve(t, (const char *const[]){"discard:9", NULL});
	int rc = run_cmd(t, P(t, "ping.out"), 20000,
			 (const char *const[]){"ping", "-n", "-c", "3", "-i", "0.2", "-W", "5",
					       TERN_IP, NULL});
	CHECK_EQ(rc, 0);
	CHECK_FILE_HAS(P(t, "ping.out"), "3 packets transmitted, 3 received");
	STOP_SERVE(t, serve, "tern serve: 0 connections, 0 bytes in, 0 bytes out; 0 reset, "
			     "0 timed out");
	char *out = slurp_path(P(t, "serve.out"), NULL);
	REQUIRE(out);
	CHECK_EQ(counter(out, "icmp_echo_replies"), 3);
	free(out);
}

/* `tern cat -u HOST PORT`: each read of standard input is a datagram, what comes back is
 * printed, and it exits -w SECS after input ends and nothing more arrives. */
IT(interop_udp_tern_client, 90)
{
	write_file(P(t, "q"), "question\n", 9);
	write_file(P(t, "a"), "answer\n", 7);
	const char *ready = P(t, "kpeer.ready");
	pid_t k = spawn_files(t, "kpeer udp-listen", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "20", "--ready", ready,
						    "--recv", P(t, "k.got"), "--send", P(t, "a"),
						    "udp-listen", "7000", NULL});
	WAIT_FILE(t, ready, k, 5000);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "-u", "-w", "1", KERNEL_IP, "7000");
	pid_t tern = spawn_files(t, "tern cat -u", P(t, "q"), P(t, "t.got"), P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "question\n");
	CHECK_FILE_IS(P(t, "t.got"), "answer\n");
	if (test_failed())
		show_errs(t);
}

/* `tern cat -u -l PORT`: prints what arrives; what it reads goes to the last sender. */
IT(interop_udp_tern_listener, 90)
{
	write_file(P(t, "q"), "hello tern\n", 11);
	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "-u", "-w", "1", "-l", "7001");
	int o = open_out(P(t, "t.got")), e = open_out(P(t, "tern.err"));
	pid_t tern = spawn_fds(t, "tern cat -u -l", p[0], o, e, ta.v);
	close(p[0]);
	close(o);
	close(e);
	WAIT_TERN_UP(t, tern, P(t, "tern.err"));
	pid_t k = spawn_files(t, "kpeer udp", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "20", "--send",
						    P(t, "q"), "--recv", P(t, "k.got"), "udp",
						    TERN_IP, "7001", NULL});
	WAIT_TEXT(t, P(t, "t.got"), "hello tern\n", tern, 10000);
	static const char reply[] = "hello kernel\n";
	CHECK_EQ(write(p[1], reply, sizeof(reply) - 1), (ssize_t)sizeof(reply) - 1);
	close(p[1]);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "hello kernel\n");
	CHECK_FILE_IS(P(t, "t.got"), "hello tern\n");
	if (test_failed())
		show_errs(t);
}

/* A datagram to a kernel port nobody has: the kernel's ICMP port unreachable ends
 * `tern cat -u` at once, status 1 and "refused". */
IT(interop_udp_kernel_refuses_tern, 30)
{
	write_file(P(t, "q"), "anyone?\n", 8);
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "-u", "-w", "5", KERNEL_IP, "7002");
	uint64_t t0 = now_ms();
	pid_t tern = spawn_files(t, "tern cat -u", P(t, "q"), P(t, "t.got"), P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 1);
	CHECK(now_ms() - t0 < 4000); /* the ICMP message, not the -w wait */
	CHECK_FILE_HAS(P(t, "tern.err"), "refused");
	CHECK_EQ(file_size(P(t, "t.got")), 0);
}

/* A datagram to a tern port nobody has: tern answers with ICMP port unreachable, which the
 * kernel's connected UDP socket reports as ECONNREFUSED (kpeer's status 3). */
IT(interop_udp_tern_refuses_kernel, 45)
{
	write_file(P(t, "q"), "anyone?\n", 8);
	pid_t serve = start_serve(t, (const char *const[]){"discard:9", NULL});
	pid_t k = spawn_files(t, "kpeer udp", NULL, NULL, P(t, "kpeer.err"),
			      (const char *const[]){kpeer_bin(), "--timeout", "10", "--send",
						    P(t, "q"), "--recv", P(t, "k.got"), "udp",
						    TERN_IP, "7003", NULL});
	CHECK_EQ(WAIT_PROC(t, k, 15000), 3);
	CHECK_FILE_HAS(P(t, "kpeer.err"), "Connection refused");
	STOP_SERVE(t, serve, "tern serve: 0 connections, 0 bytes in, 0 bytes out; 0 reset, "
			     "0 timed out");
	char *out = slurp_path(P(t, "serve.out"), NULL);
	REQUIRE(out);
	CHECK_EQ(counter(out, "udp_no_port"), 1);
	CHECK_EQ(counter(out, "icmp_port_unreach_out"), 1);
	free(out);
}

/* --pcap: the file opens with tcpdump, and its first three packets are the handshake tern
 * (connecting) made with the kernel: SYN, SYN-ACK, ACK. */
IT(interop_pcap_handshake, 90)
{
	if (!on_path("tcpdump")) {
		printf("SKIP interop_pcap_handshake: no tcpdump\n");
		return;
	}
	write_file(P(t, "line"), "captured\n", 9);
	pid_t k = kernel_listener(t, (const char *const[]){"--no-shut", "--recv", P(t, "k.got"),
							   NULL});
	struct args ta;
	tern_args(&ta, "cat", false);
	ARGS(&ta, "--pcap", P(t, "run.pcap"), KERNEL_IP, "6000");
	pid_t tern = spawn_files(t, "tern cat", P(t, "line"), NULL, P(t, "tern.err"), ta.v);
	CHECK_EQ(WAIT_PROC(t, tern, 20000), 0);
	CHECK_EQ(WAIT_PROC(t, k, 20000), 0);
	CHECK_FILE_IS(P(t, "k.got"), "captured\n");
	int rc = run_cmd(t, P(t, "dump"), 20000,
			 (const char *const[]){"tcpdump", "-n", "-r", P(t, "run.pcap"), NULL});
	CHECK_EQ(rc, 0);
	char *dump = slurp_path(P(t, "dump"), NULL);
	REQUIRE(dump);
	/* "TIME IP 10.7.0.2.PORT > 10.7.0.1.6000: Flags [S], seq ..." */
	static const char *const want[3][3] = {
		{"IP " TERN_IP ".", " > " KERNEL_IP ".6000: ", "Flags [S],"},
		{"IP " KERNEL_IP ".6000 > " TERN_IP ".", ": ", "Flags [S.],"},
		{"IP " TERN_IP ".", " > " KERNEL_IP ".6000: ", "Flags [.],"},
	};
	const char *line = dump;
	for (int i = 0; i < 3; i++) {
		const char *eol = line ? strchr(line, '\n') : NULL;
		if (!eol) {
			test_fail(__FILE__, __LINE__, "the capture has %d packets: %s", i, dump);
			break;
		}
		char l[512];
		snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
		const char *p = l;
		for (int j = 0; j < 3 && p; j++)
			p = strstr(p, want[i][j]);
		if (!p)
			test_fail(__FILE__, __LINE__, "packet %d is not %s...%s...%s: %s", i + 1,
				  want[i][0], want[i][1], want[i][2], l);
		line = eol + 1;
	}
	CHECK(strstr(dump, "Flags [F.]") != NULL);
	free(dump);
	CHECK_KERNEL_SOCKETS(t, 0, 0); /* tern closed first */
}
