/*
 * A small test harness. TEST(name) { ... } registers a test; CHECK* record a failure with the
 * file, line and values and let the test go on; REQUIRE* end the test at once. Each test runs
 * in its own process (set TERN_TEST_NOFORK=1 to run in one, for a debugger), so a crash
 * fails one test, not the run. The runner ends with a line "N passed, N failed".
 */
#ifndef TERN_TEST_H
#define TERN_TEST_H

#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <inttypes.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);
void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void test_abort(void) __attribute__((noreturn));
int test_failed(void);
/* A seed for randomized tests: TERN_SEED from the environment if set, else def. */
uint64_t test_seed(uint64_t def);

#define TEST(name)                                                                            \
	static void name(void);                                                               \
	__attribute__((constructor)) static void test_reg_##name(void)                        \
	{                                                                                     \
		test_register(#name, name, __FILE__);                                         \
	}                                                                                     \
	static void name(void)

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c))                                                                     \
			test_fail(__FILE__, __LINE__, "CHECK(%s)", #c);                       \
	} while (0)
#define REQUIRE(c)                                                                            \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #c);                     \
			test_abort();                                                         \
		}                                                                             \
	} while (0)
#define CHECK_EQ(a, b)                                                                        \
	do {                                                                                  \
		long long a_ = (long long)(a), b_ = (long long)(b);                           \
		if (a_ != b_)                                                                 \
			test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a,   \
				  #b, a_, b_);                                                \
	} while (0)
#define REQUIRE_EQ(a, b)                                                                      \
	do {                                                                                  \
		long long a_ = (long long)(a), b_ = (long long)(b);                           \
		if (a_ != b_) {                                                               \
			test_fail(__FILE__, __LINE__, "REQUIRE_EQ(%s, %s): %lld != %lld", #a, \
				  #b, a_, b_);                                                \
			test_abort();                                                         \
		}                                                                             \
	} while (0)
#define CHECK_STR(a, b)                                                                       \
	do {                                                                                  \
		const char *a_ = (a), *b_ = (b);                                              \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                                        \
			test_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s): \"%s\" != \"%s\"", #a, \
				  #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
	} while (0)
#define CHECK_MEM(a, b, n)                                                                    \
	do {                                                                                  \
		if (memcmp((a), (b), (n)) != 0)                                               \
			test_fail(__FILE__, __LINE__, "CHECK_MEM(%s, %s, %s) differ", #a, #b, #n); \
	} while (0)

#endif
