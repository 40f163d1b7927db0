# The fuzz targets (tests/fuzz/, docs/fuzzing.md), included by the main Makefile.
#   make fuzz                   the three libFuzzer binaries, ASan and UBSan, in build-fuzz/
#   make fuzz-run               each for FUZZ_SECONDS over a copy of its seed corpus
#   make fuzz-corpus            rewrite the seed corpus with tests/fuzz/gen_corpus.c
# The targets also go into the test binary, where tests/test_fuzz_replay.c runs every file
# of tests/fuzz/corpus/ and tests/fuzz/regress/ through them.
FUZZ_TARGETS := input sequence options
FUZZ_SRCS := tests/fuzz/fuzz_world.c $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%.c)
TEST_OBJS += $(FUZZ_SRCS:%.c=$(BUILD)/%.o)
HDRS += tests/fuzz/fuzz.h

FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
# Options for every fuzz-run target (e.g. FUZZ_ARGS=-jobs=2).
FUZZ_ARGS ?=
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -O1 -g $(WARN) -Iinclude -Isrc -Itests $(FUZZ_SAN)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/tests/fuzz/%.o: tests/fuzz/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -DFUZZ_LIBFUZZER -c $< -o $@
# The harness itself gets no coverage instrumentation: its checksum loops and packet
# building would otherwise take most of each execution and guide nothing.
$(FUZZ_BUILD)/tests/fuzz/fuzz_world.o: tests/fuzz/fuzz_world.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_LIBFUZZER -c $< -o $@
$(FUZZ_BUILD)/libtern.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/tests/fuzz/fuzz_world.o \
		$(FUZZ_BUILD)/libtern.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# Each target runs over a scratch copy of its corpus (new inputs go there, not into the
# repository) plus its regression inputs; a crash, a broken invariant, a leak or an input
# slower than 25 s stops the run and leaves the input in $(FUZZ_BUILD)/run/<target>/.
fuzz-run: fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		d=$(FUZZ_BUILD)/run/$$t; rm -rf $$d; mkdir -p $$d/corpus; \
		cp tests/fuzz/corpus/$$t/* $$d/corpus/; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
		$(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=25 -max_len=4096 \
			-print_final_stats=1 -artifact_prefix=$$d/ $(FUZZ_ARGS) \
			$$d/corpus tests/fuzz/regress/$$t 2>$$d/log || \
			{ tail -n 60 $$d/log; echo "fuzz_$$t FAILED: see $$d/"; exit 1; }; \
		grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
			$$d/log || true; \
	done

$(BUILD)/fuzz_gen_corpus: tests/fuzz/gen_corpus.c tests/fuzz/fuzz.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(TOOL_CFLAGS) -Itests -o $@ $<

fuzz-corpus: $(BUILD)/fuzz_gen_corpus
	$(BUILD)/fuzz_gen_corpus tests/fuzz/corpus

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-run fuzz-corpus fuzz-clean
# The rules above must not become the default goal: `make` alone still builds `all`.
.DEFAULT_GOAL :=
