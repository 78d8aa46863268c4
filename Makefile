# hafm - build, test, install. See README.md.
#
#   make                 libhafm (static + shared) and every command into bin/
#   make CUDA=1          the same with the cuBLAS backend (build/cuda/, commands in build/cuda/bin/)
#   make test            the whole suite; last line "N passed, N failed"
#   make SANITIZE=1 test the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz            libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make bench           benchmarks: one "bench <name>: <value> <unit>" line per figure
#   make install PREFIX=/usr/local DESTDIR=
# New files are picked up by name: lib/*.c (library), cmd/*.c (one command each),
# tests/unit/test_*.c (one cmocka binary each), tests/fuzz/fuzz_*.c.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc
MARCH     ?= native
PKGS      := msgpack sndfile soxr fftw3f libcjson openblas lapacke libebur128 libprotobuf-c
CUDA_HOME ?= /usr/local/cuda

ifeq ($(origin CC),default)
CC := gcc
endif

ifeq ($(SANITIZE),1)
VARIANT := san
OPT     := -O1 -g -march=$(MARCH) -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else ifeq ($(CUDA),1)
VARIANT := cuda
OPT     := -O3 -march=$(MARCH) -g
else
VARIANT := release
OPT     := -O3 -march=$(MARCH) -g
endif

O        := build/$(VARIANT)
BIN      := $(if $(filter release,$(VARIANT)),bin,$(O)/bin)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CFLAGS   ?=
WARN     := -Wall -Wextra -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 $(OPT) $(WARN) -fPIC -fopenmp -Ilib $(PKG_CFLAGS)
LIBS     := $(PKG_LIBS) -lgomp -lm -lpthread
ifeq ($(CUDA),1)
BASE_CFLAGS += -DHAFM_CUDA -I$(CUDA_HOME)/include
LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
endif
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(LDSAN) $(LDFLAGS)

LIB_SRC  := $(sort $(wildcard lib/*.c))
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(O)/lib/%.o)
HDRS     := lib/hafm.h $(wildcard lib/hafm/*.h) $(wildcard lib/*.h)
CMD_SRC  := $(sort $(wildcard cmd/*.c))
CMDS     := $(CMD_SRC:cmd/%.c=%)
CMD_BIN  := $(CMDS:%=$(BIN)/%)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(O)/tests/%)
TEST_SUPPORT := $(wildcard tests/unit/support/*.c)
STATIC   := $(O)/libhafm.a
SHARED   := $(O)/libhafm.so.$(VERSION)

.PHONY: all lib cmds tests test check fuzz fuzz-build bench install uninstall clean deps valgrind
all: lib cmds $(O)/hafm.pc

lib: $(STATIC) $(SHARED)
cmds: $(CMD_BIN)
tests: $(TEST_BIN) cmds

$(O)/lib/%.o: lib/%.c $(HDRS) | $(O)/lib
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libhafm.so.0 $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
	ln -sf libhafm.so.$(VERSION) $(O)/libhafm.so.0
	ln -sf libhafm.so.$(VERSION) $(O)/libhafm.so

# Commands link the static library: bin/ runs without LD_LIBRARY_PATH.
$(BIN)/%: cmd/%.c $(STATIC) $(HDRS) | $(BIN)
	$(CC) $(ALL_CFLAGS) $(CFLAGS_$*) $(ALL_LDFLAGS) -o $@ $< $(STATIC) $(LIBS) $(LIBS_$*)

$(O)/tests/%: tests/unit/%.c $(TEST_SUPPORT) $(STATIC) $(HDRS) | $(O)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(STATIC) $(LIBS) $(shell pkg-config --libs cmocka)

$(O)/hafm.pc: Makefile | $(O)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: hafm\nDescription: hierarchical autoregressive accompaniment generation toolkit\nVersion: %s\nRequires.private: %s\nLibs: -L$${libdir} -lhafm\nLibs.private: -lgomp -lm -lpthread\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(PKGS)' > $@

$(O) $(O)/lib $(O)/tests $(BIN):
	mkdir -p $@

# ---- tests ------------------------------------------------------------------------------------
# tests/run prints per-suite results and ends with the one line "N passed, N failed".
test: tests
	HAFM_BIN=$(abspath $(BIN)) HAFM_TESTBIN=$(abspath $(O)/tests) HAFM_VARIANT=$(VARIANT) \
	  FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run

valgrind: tests
	HAFM_BIN=$(abspath $(BIN)) HAFM_TESTBIN=$(abspath $(O)/tests) HAFM_VALGRIND=1 tests/run --valgrind

FUZZ_SECONDS ?= 60
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HDRS)
	mkdir -p build/fuzz
	clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Ilib $(PKG_CFLAGS) -o $@ $< $(LIB_SRC) $(PKG_LIBS) -lgomp -lm -lpthread
fuzz-build: $(FUZZ_BIN)
fuzz: $(FUZZ_BIN)
	tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BIN)

# bench/*.c are benchmark programs (build/<variant>/bench/NAME); bench/*.sh run them.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
$(O)/bench/%: bench/%.c $(STATIC) $(HDRS)
	@mkdir -p $(O)/bench
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(STATIC) $(LIBS)
bench: all $(BENCH_BIN)
	HAFM_BENCHBIN=$(abspath $(O)/bench) bench/run

# ---- install ----------------------------------------------------------------------------------
MAN1 := $(wildcard man/man1/*.1)
MAN5 := $(wildcard man/man5/*.5)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/hafm \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/hafm/models
	install -m 755 $(CMD_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libhafm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhafm.so.0
	ln -sf libhafm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhafm.so
	install -m 644 lib/hafm.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 lib/hafm/*.h $(DESTDIR)$(PREFIX)/include/hafm/
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(O)/hafm.pc > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hafm.pc
	for m in $(MAN1); do sed 's/@VERSION@/$(VERSION)/g' $$m > $(DESTDIR)$(PREFIX)/share/man/man1/$$(basename $$m); done
	for m in $(MAN5); do sed 's/@VERSION@/$(VERSION)/g' $$m > $(DESTDIR)$(PREFIX)/share/man/man5/$$(basename $$m); done
	if [ -d models ]; then cp -R models/. $(DESTDIR)$(PREFIX)/share/hafm/models/; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(CMDS)) $(DESTDIR)$(PREFIX)/lib/libhafm.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/hafm.pc $(DESTDIR)$(PREFIX)/include/hafm.h
	rm -rf $(DESTDIR)$(PREFIX)/include/hafm $(DESTDIR)$(PREFIX)/share/hafm
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(MAN1))) $(addprefix $(DESTDIR)$(PREFIX)/share/man/man5/,$(notdir $(MAN5)))

# Area-specific rules and per-command flags (CFLAGS_<cmd>, LIBS_<cmd>) live in mk/*.mk.
-include $(sort $(wildcard mk/*.mk))

deps:
	scripts/deps

clean:
	rm -rf build bin

# ---- what CI runs (README's test command): release suite with fuzzing, sanitizer suite, valgrind
# Warnings are errors here: the project builds with zero warnings, and CI keeps it so.
check:
	$(MAKE) CFLAGS=-Werror all tests
	$(MAKE) CFLAGS=-Werror test
	$(MAKE) SANITIZE=1 CFLAGS=-Werror test
	$(MAKE) valgrind
