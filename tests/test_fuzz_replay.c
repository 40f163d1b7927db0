/*
 * The fuzz targets' seed corpus and regression inputs, replayed in the ordinary test binary:
 * every file of tests/fuzz/corpus/<target>/ and tests/fuzz/regress/<target>/ goes through
 * fuzz_<target>_one() (tests/fuzz/). A target aborts on a broken invariant, which fails the
 * test (each test runs in a process of its own) with the file's name on stderr. Run from
 * the repository root, as `make test` does.
 */
#include "test.h"
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <stdlib.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every file of dir through fn, in name order; returns how many there were, or -1
 * when the directory cannot be read. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t))
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			REQUIRE(names != NULL);
		}
		names[n] = strdup(e->d_name);
		REQUIRE(names[n] != NULL);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		if (!f) {
			test_fail(__FILE__, __LINE__, "cannot open %s", path);
			continue;
		}
		size_t cap2 = 4096, len = 0;
		uint8_t *buf = malloc(cap2);
		REQUIRE(buf != NULL);
		size_t got;
		while ((got = fread(buf + len, 1, cap2 - len, f)) > 0) {
			len += got;
			if (len == cap2) {
				cap2 *= 2;
				buf = realloc(buf, cap2);
				REQUIRE(buf != NULL);
			}
		}
		fclose(f);
		fuzz_current_input = path;
		fn(buf, len);
		fuzz_current_input = NULL;
		free(buf);
		free(names[i]);
	}
	free(names);
	return (int)n;
}

static void replay(const char *target, int (*fn)(const uint8_t *, size_t))
{
	char dir[256];
	snprintf(dir, sizeof(dir), "tests/fuzz/corpus/%s", target);
	int seeds = replay_dir(dir, fn);
	if (seeds <= 0) {
		test_fail(__FILE__, __LINE__, "no seed corpus in %s (run from the repository root)",
			  dir);
		return;
	}
	snprintf(dir, sizeof(dir), "tests/fuzz/regress/%s", target);
	int regress = replay_dir(dir, fn);
	printf("    %s: %d seeds, %d regression inputs\n", target, seeds, regress < 0 ? 0 : regress);
}

TEST(fuzz_replay_input) { replay("input", fuzz_input_one); }
TEST(fuzz_replay_sequence) { replay("sequence", fuzz_sequence_one); }
TEST(fuzz_replay_options) { replay("options", fuzz_options_one); }
