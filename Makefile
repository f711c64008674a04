# Makefile: builds playbookd, falco-nats and their tests. `make` builds build/release;
# `make SANITIZER=address,undefined` builds build/sanitize; `make test` installs missing packages, then
# builds both and runs every test (unit, fuzz replay, integration, manifests) on the sanitized build;
# `make demo` runs examples/demo.py.
VERSION     := 0.1.0
CC          ?= cc
PREFIX      ?= /usr/local
SANITIZER   ?=
PYTHON      ?= /usr/bin/python3

WARNINGS    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wwrite-strings -Werror
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -DPLAYBOOKD_VERSION='"$(VERSION)"' -Iinclude -pthread -g $(WARNINGS) \
               -fstack-protector-strong
LIBS        := -lnats -lcurl -lcjson -lyaml -lmicrohttpd -lcrypto -lgnutls -lm -pthread

ifeq ($(SANITIZER),)
  BUILD     := build/release
  CFLAGS_V  := -O2 -D_FORTIFY_SOURCE=2
else
  BUILD     := build/sanitize
  CFLAGS_V  := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
  LDFLAGS   += -fsanitize=$(SANITIZER)
endif
ALL_CFLAGS  := $(CFLAGS_BASE) $(CFLAGS_V) $(CFLAGS)

LIB_SRC      := $(wildcard lib/*.c) $(wildcard playbooks/*.c)
LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/%)

.PHONY: all test unit integration fuzz fuzz-replay deps clean install demo format format-check bench
all: $(BUILD)/playbookd $(BUILD)/falco-nats

$(BUILD)/%.o: %.c $(wildcard include/playbookd/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libplaybookd.a: $(LIB_OBJ)
	@ar rcs $@ $^

$(BUILD)/playbookd: $(BUILD)/cmd/playbookd/main.o $(BUILD)/libplaybookd.a
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/falco-nats: $(BUILD)/cmd/falco-nats/main.o $(BUILD)/libplaybookd.a
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bench_parse: $(BUILD)/bench/bench_parse.o $(BUILD)/libplaybookd.a
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Benchmarks (release build; medians of several runs; 9-10 minutes on 2 cores). See bench/README.md.
bench: deps all $(BUILD)/bench_parse
	bash bench/install-deps.sh
	$(BUILD)/bench_parse examples/alerts.jsonl
	BUILD=$(CURDIR)/$(BUILD) $(PYTHON) bench/run.py --table $(BUILD)/bench-table.md

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libplaybookd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tests/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/libplaybookd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# libFuzzer: `make fuzz` builds every tests/fuzz target with clang, -fsanitize=fuzzer,address,undefined, into
# build/fuzz/fuzzer/fuzz_NAME (the library too, in build/fuzz). Run one for longer on a copy of its corpus:
#   mkdir -p /tmp/c && cp tests/fuzz/corpus/NAME/* /tmp/c && build/fuzz/fuzzer/fuzz_NAME -max_total_time=3600 /tmp/c
# then keep what is new and small: build/fuzz/fuzzer/fuzz_NAME -merge=1 tests/fuzz/corpus/NAME /tmp/c
FUZZ_CC      ?= clang
fuzz:
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) SANITIZER=address,undefined CFLAGS=-fsanitize=fuzzer-no-link \
	  $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/fuzzer/%)

$(BUILD)/fuzzer/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libplaybookd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

deps:
	bash tests/install-deps.sh

C_FILES      = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find cmd lib include playbooks tests -name '*.[ch]')

format:
	clang-format -i $(C_FILES)

format-check:
	@clang-format --dry-run --Werror $(C_FILES) && echo "format: the C code obeys .clang-format"

# The test command README.md gives. Sanitized: AddressSanitizer + UndefinedBehaviorSanitizer.
test: deps
	$(MAKE) format-check all
	$(MAKE) SANITIZER=address,undefined all unit fuzz-replay integration

unit: $(UNIT_BIN)
	@rc=0; for t in $(UNIT_BIN); do echo "== $$t"; CMOCKA_MESSAGE_OUTPUT=stdout $$t || rc=1; done; exit $$rc

fuzz-replay: $(FUZZ_BIN)
	@rc=0; for t in $(FUZZ_BIN); do n=$${t##*/fuzz_}; echo "== $$t tests/fuzz/corpus/$$n"; \
	  $$t tests/fuzz/corpus/$$n || rc=1; done; exit $$rc

integration: $(BUILD)/playbookd $(BUILD)/falco-nats
	PLAYBOOKD=$(CURDIR)/$(BUILD)/playbookd FALCO_NATS=$(CURDIR)/$(BUILD)/falco-nats \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration tests/manifests

# A local NATS, a fake cluster (or $KUBECONFIG's, in dry run), falco-nats and playbookd; a summary.
demo: deps all
	PLAYBOOKD=$(CURDIR)/$(BUILD)/playbookd FALCO_NATS=$(CURDIR)/$(BUILD)/falco-nats $(PYTHON) examples/demo.py

install: $(BUILD)/playbookd $(BUILD)/falco-nats
	install -D -m 0755 $(BUILD)/playbookd $(DESTDIR)$(PREFIX)/bin/playbookd
	install -D -m 0755 $(BUILD)/falco-nats $(DESTDIR)$(PREFIX)/bin/falco-nats

clean:
	rm -rf build
.SECONDARY:
