# tern: `make` builds build/libtern.a, build/libtern.so and build/tern.
#   make test            every test; ends with "N passed, N failed"
#   make test-sanitize   the same tests built with AddressSanitizer and UBSan (in build-san/)
#   make packetdrill-ubsan  the packetdrill adapter built with UBSan (build-ub/)
#   make demo            a few `tern sim` scenarios: handshake, close, a lost SYN
#   make bench           the benchmarks in bench/
CC ?= cc
BUILD ?= build
OPT ?= -O2
SAN ?=
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
CFLAGS_ALL := -std=c11 $(OPT) -g $(WARN) -Iinclude -Isrc $(CFLAGS)
ifeq ($(SAN),1)
CFLAGS_ALL += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS_ALL := -fsanitize=address,undefined $(LDFLAGS)
else ifeq ($(SAN),ub)
# UBSan alone: what packetdrill can load (it opens the adapter with RTLD_DEEPBIND, which
# AddressSanitizer refuses). make packetdrill-ubsan builds build-ub/libtern_packetdrill.so.
CFLAGS_ALL += -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS_ALL := -fsanitize=undefined $(LDFLAGS)
else
LDFLAGS_ALL := $(LDFLAGS)
endif
# Tools and tests use POSIX; the library itself needs only C11 and libc.
TOOL_CFLAGS := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE

LIB_SRCS := $(sort $(wildcard src/*.c src/link/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_PIC_OBJS := $(LIB_SRCS:%.c=$(BUILD)/pic/%.o)
# The pieces of the tern command that tests use too (everything but main).
TOOL_LIB_SRCS := $(sort $(filter-out tools/tern.c,$(wildcard tools/*.c)))
TOOL_LIB_OBJS := $(TOOL_LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/*.c))
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
HDRS := $(wildcard include/tern/*.h src/*.h src/link/*.h tools/*.h tests/*.h)
# The fuzz targets (make fuzz, make fuzz-run) and their corpus replay in the tests.
-include tests/fuzz/fuzz.mk

# packetdrill's shared-object adapter (tools/packetdrill/, docs/packetdrill.md). The test
# binary links the adapter in directly and drives it as packetdrill does.
PD_SO := $(BUILD)/libtern_packetdrill.so
PD_ADAPTER_OBJ := $(BUILD)/tools/packetdrill/adapter.o
HDRS += tools/packetdrill/pd_interface.h

all: $(BUILD)/libtern.a $(BUILD)/libtern.so $(BUILD)/tern $(PD_SO)

$(BUILD)/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@
$(BUILD)/pic/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -c $< -o $@
$(BUILD)/tools/%.o: tools/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(TOOL_CFLAGS) -Itools -c $< -o $@
$(BUILD)/tests/%.o: tests/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(TOOL_CFLAGS) -Itools -Itests -c $< -o $@

$(BUILD)/libtern.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libtern.so: $(LIB_PIC_OBJS)
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $^
$(BUILD)/tern: $(BUILD)/tools/tern.o $(TOOL_LIB_OBJS) $(BUILD)/libtern.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm
$(BUILD)/tern_tests: $(TEST_OBJS) $(TOOL_LIB_OBJS) $(PD_ADAPTER_OBJ) $(BUILD)/libtern.a
	$(CC) $(LDFLAGS_ALL) -pthread -o $@ $^ -lm
$(PD_SO): tools/packetdrill/adapter.c $(HDRS) $(LIB_PIC_OBJS)
	$(CC) $(CFLAGS_ALL) -fPIC -shared -pthread -o $@ tools/packetdrill/adapter.c $(LIB_PIC_OBJS) $(LDFLAGS_ALL)
# The kernel-side peer of the interop tests (tests/test_interop.c): a program of its own,
# outside tests/*.c so that the test binary does not take it in.
$(BUILD)/kpeer: tests/kpeer/kpeer.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(TOOL_CFLAGS) $(LDFLAGS_ALL) -o $@ $<

test: $(BUILD)/tern_tests $(BUILD)/tern $(BUILD)/kpeer
	TERN_BIN=$(BUILD)/tern TERN_KPEER=$(BUILD)/kpeer $(BUILD)/tern_tests

# The interop tests move 4 MiB instead of 32 MiB per transfer here: the sanitizers make
# both ends several times slower and the point is memory errors, not volume.
test-sanitize:
	TERN_INTEROP_BYTES=4194304 $(MAKE) BUILD=build-san SAN=1 OPT=-O1 test

packetdrill-ubsan:
	$(MAKE) BUILD=build-ub SAN=ub OPT=-O1 build-ub/libtern_packetdrill.so

demo: $(BUILD)/tern
	$(BUILD)/tern sim handshake
	$(BUILD)/tern sim close
	$(BUILD)/tern sim syn-lost

bench: all
	$(MAKE) -C bench BUILD=$(abspath $(BUILD))

clean:
	rm -rf build build-san build-ub

.PHONY: all test test-sanitize packetdrill-ubsan demo bench clean
.DELETE_ON_ERROR:
