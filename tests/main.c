#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct test_entry {
	const char *name, *file;
	test_fn fn;
};

static struct test_entry *tests;
static size_t ntests, captests;
static int cur_failed;

void test_register(const char *name, test_fn fn, const char *file)
{
	if (ntests == captests) {
		captests = captests ? captests * 2 : 64;
		tests = realloc(tests, captests * sizeof(*tests));
		if (!tests)
			abort();
	}
	tests[ntests++] = (struct test_entry){name, file, fn};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	cur_failed = 1;
	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void test_abort(void)
{
	fflush(NULL);
	_exit(1);
}

int test_failed(void) { return cur_failed; }

uint64_t test_seed(uint64_t def)
{
	const char *s = getenv("TERN_SEED");
	return s && *s ? strtoull(s, NULL, 0) : def;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct test_entry *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	return c ? c : strcmp(x->name, y->name);
}

static int run_one(const struct test_entry *t, int nofork)
{
	if (nofork) {
		cur_failed = 0;
		t->fn();
		return cur_failed;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		cur_failed = 0;
		t->fn();
		/* exit(), not _exit(): LeakSanitizer checks the test body at exit. */
		exit(cur_failed ? 1 : 0);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "    killed by signal %d\n", WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

int main(int argc, char **argv)
{
	int nofork = getenv("TERN_TEST_NOFORK") != NULL;
	int verbose = getenv("TERN_TEST_VERBOSE") != NULL;
	size_t passed = 0, failed = 0;
	qsort(tests, ntests, sizeof(*tests), cmp_entry);
	for (size_t i = 0; i < ntests; i++) {
		const struct test_entry *t = &tests[i];
		if (argc > 1) {
			int match = 0;
			for (int a = 1; a < argc; a++)
				if (strstr(t->name, argv[a]) || strstr(t->file, argv[a]))
					match = 1;
			if (!match)
				continue;
		}
		int f = run_one(t, nofork);
		if (f) {
			failed++;
			printf("FAIL %s (%s)\n", t->name, t->file);
		} else {
			passed++;
			if (verbose)
				printf("ok   %s\n", t->name);
		}
		fflush(stdout);
	}
	printf("%zu passed, %zu failed\n", passed, failed);
	return failed ? 1 : 0;
}
