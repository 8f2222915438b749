# panelgate - a thin wrapper over CMake.  `make help` lists the targets.
#
# One build directory per flavour, so switching never needs a clean:
#   build/       RelWithDebInfo            (make, make test, make demo)
#   build-san/   ASan + UBSan              (make sanitize)
#   build-tsan/  ThreadSanitizer           (make tsan)
#   build-fuzz/  clang + libFuzzer         (make fuzz)
# Variables: WERROR=1, FUZZ_SECONDS=60, JOBS=2, BUILD_TYPE=RelWithDebInfo.

SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -euo pipefail -c

JOBS         ?= 2
BUILD_TYPE   ?= RelWithDebInfo
FUZZ_SECONDS ?= 60
WERROR       ?= 0

BUILD      := build
BUILD_SAN  := build-san
BUILD_TSAN := build-tsan
BUILD_FUZZ := build-fuzz

ifneq ($(filter 1 ON On on YES Yes yes TRUE True true,$(WERROR)),)
  CMAKE_WERROR := -DPANELGATE_WERROR=ON
else
  CMAKE_WERROR := -DPANELGATE_WERROR=OFF
endif

CMAKE_COMMON := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_WERROR)
CTEST_FLAGS  := --output-on-failure --no-tests=error --parallel $(JOBS)
SAN_ENV      := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# halt_on_error: the first race ends the process, so a gateway under test
# exits non-zero and its test fails even where nobody greps the log.
TSAN_ENV     := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$(CURDIR)/tests/tsan.supp
# What `make tsan` runs (a ctest -R regex rather than a label: the set is
# a choice for CI time, not a kind of test): the tests where our threads
# meet - the sink's writer thread against the loop (unit_gw_sink, the
# allocation sweep, and the gateway scripts that load, back-pressure,
# drain and read the sink's stats from the admin listener), the SDK's I/O
# thread against the application's (the sdk_ scripts that deliver, lose
# the gateway and get hostile answers), and panelgatectl writing the
# registry beside a loaded gateway; and the JetStream engine, whose acks
# arrive on libnats' own threads (gw_jetstream, about 70 s).  Measured on a loaded 2-core machine,
# JOBS=1, from scratch: build 3.8 min + these tests 1.7 min = 5.5 min (CI's
# budget for TSan is 6); the 30 threaded candidates took 6.2 min for the
# tests alone.  Left out: the other gw_ scripts, which drive the same two
# threads through single-threaded logic (TLS, HTTP/2 conformance, config,
# rate limits); sdk_refusals (42 s, the refusal paths of sdk_hostile's
# thread code); sdk_examples (its Java half cannot load TSan into a JVM);
# gw_tlsprobe, whose 1000-connection flood times out under TSan's slowdown.
TSAN_TESTS   ?= ^(unit_gw_(sink|allocfail)|integration_(gw_(basic|backpressure|drain|drain_deadline|admin|storage|jetstream)|ctl_under_load|sdk_(delivery|hostile|cli)))$$
FUZZ_FLAGS   := -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: all build test sanitize tsan fuzz demo demo-cluster clean deps help

all: build

deps:
	@bash scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_COMMON) -DPANELGATE_SANITIZE=OFF -DPANELGATE_FUZZ=OFF
	cmake --build $(BUILD) --parallel $(JOBS)

test: build
	ctest --test-dir $(BUILD) $(CTEST_FLAGS)

sanitize: deps
	cmake -S . -B $(BUILD_SAN) $(CMAKE_COMMON) -DPANELGATE_SANITIZE=ON -DPANELGATE_FUZZ=OFF
	cmake --build $(BUILD_SAN) --parallel $(JOBS)
	$(SAN_ENV) ctest --test-dir $(BUILD_SAN) $(CTEST_FLAGS)

# ThreadSanitizer: only the tests that run more than one thread (the
# sink's writer thread, the SDK's I/O thread, panelgatectl beside a loaded
# gateway), selected by TSAN_TESTS (a ctest -R regex); the rest are single
# threaded and would only cost CI time.  TSan needs the kernel's mmap
# randomisation at <= 28 bits (vm.mmap_rnd_bits); above that the tests run
# under `setarch -R`.
tsan: deps
	cmake -S . -B $(BUILD_TSAN) $(CMAKE_COMMON) -DPANELGATE_SANITIZE=OFF -DPANELGATE_TSAN=ON -DPANELGATE_FUZZ=OFF
	cmake --build $(BUILD_TSAN) --parallel $(JOBS)
	@norand=(); bits=$$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0); \
	if [ "$$bits" -gt 28 ]; then norand=(setarch "$$(uname -m)" -R); \
	    echo "tsan: vm.mmap_rnd_bits=$$bits: running the tests under setarch -R"; fi; \
	$(TSAN_ENV) "$${norand[@]}" ctest --test-dir $(BUILD_TSAN) $(CTEST_FLAGS) -R '$(TSAN_TESTS)'

# Each fuzz_<name> runs FUZZ_SECONDS on a copy of fuzz/corpus/<name>/ in
# build-fuzz/corpus/<name>/ (new inputs land there, not in the source tree),
# with fuzz/<name>.dict when present.  Crash inputs go to
# build-fuzz/artifacts/<name>/, full logs to build-fuzz/logs/<name>.log.
# No tests in this tree: they (and the corpus replays) run in build/ and
# build-san/.
fuzz: deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ $(CMAKE_COMMON) \
	    -DPANELGATE_SANITIZE=OFF -DPANELGATE_FUZZ=ON -DPANELGATE_TESTS=OFF
	cmake --build $(BUILD_FUZZ) --parallel $(JOBS)
	@shopt -s nullglob; failed=(); ran=0; \
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; \
	for bin in $(BUILD_FUZZ)/bin/fuzz_*; do \
	    name=$${bin##*/fuzz_}; \
	    work=$(BUILD_FUZZ)/corpus/$$name; art=$(BUILD_FUZZ)/artifacts/$$name; \
	    log=$(BUILD_FUZZ)/logs/$$name.log; \
	    rm -rf "$$work"; mkdir -p "$$work" "$$art" "$(BUILD_FUZZ)/logs"; \
	    if [ -d "fuzz/corpus/$$name" ]; then cp -R "fuzz/corpus/$$name/." "$$work/"; fi; \
	    dict=(); if [ -f "fuzz/$$name.dict" ]; then dict=("-dict=fuzz/$$name.dict"); fi; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s ($$(ls "$$work" | wc -l) seed inputs)"; \
	    ran=$$((ran + 1)); \
	    if "$$bin" $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix="$$art/" "$${dict[@]}" "$$work" >"$$log" 2>&1; then \
	        tail -n 7 "$$log" | sed "s/^/  [$$name] /"; \
	    else \
	        { awk '/ERROR: |runtime error:|deadly signal/ {p = 1} p' "$$log" | head -n 60; \
	          tail -n 7 "$$log"; } | sed "s/^/  [$$name] /"; \
	        echo "fuzz: $$name FAILED (inputs in $$art/, log $$log)"; \
	        failed+=("$$name"); \
	    fi; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "fuzz: failed: $${failed[*]}"; exit 1; fi; \
	if [ $$ran -eq 0 ]; then echo "fuzz: no fuzz targets (fuzz/fuzz_*.c)"; \
	else echo "fuzz: $$ran target(s) ran $(FUZZ_SECONDS)s each without a finding"; fi

demo: build
	BUILD_DIR=$(BUILD) bash scripts/demo.sh

# The scale-out shape (docs/DEPLOY.md): 3 NATS nodes, 2 jetstream gateways
# on one registry file, panelgate-store, a node killed mid-run; in
# $(BUILD)/demo-cluster/.
demo-cluster: build
	BUILD_DIR=$(BUILD) bash scripts/demo_cluster.sh

# libpanelagent (.so with its SONAME links), panelagent.h (+ .hpp),
# panelagent.pc and the panelagent CLI under $(DESTDIR)$(PREFIX).  Builds
# $(BUILD) first (configuring it only when it is not configured yet).
PREFIX ?= /usr/local
.PHONY: install
install:
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then $(MAKE) build; fi
	cmake --build $(BUILD) --parallel $(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Frames/s per core through the storage path (docs/STORAGE.md).
.PHONY: bench bench-engines bench-trickle bench-tickets bench-peers
bench: build
	bash bench/run_sink.sh $(BUILD)

# What [storage] commit_delay_ms buys at a fleet's rate (2000 frames/s from
# 10000 servers): frames per commit, CPU per frame, ack latency per delay
# (docs/STORAGE.md); RATE, DELAYS, RUNS... as bench/run_trickle.sh says.
bench-trickle: build
	bash bench/run_trickle.sh $(BUILD)

# Frames/s per gateway core on sqlite, jetstream R1 and R3, the gateway on
# core 0 and the load generator + NATS nodes on core 1 (docs/DEPLOY.md,
# "Sizing"); ROUNDS, DURATION, CLIENTS, IN_FLIGHT... as bench/run_engines.sh
# says.
bench-engines: build
	bash bench/run_engines.sh $(BUILD)

# The restart storm with and without [tls] ticket_key_file, the gateway on
# core 0 and the agents on core 1 (docs/OPERATIONS.md, "The ticket key
# file"); AGENTS, CONCURRENCY, ROUNDS as bench/ticket_storm.py says.
bench-tickets: build
	/usr/bin/python3 bench/ticket_storm.py $(BUILD)

# panelgate beside nghttpd and h2o under panelgate-bench, writing
# docs/BENCHMARKS.md and docs/bench/*.png; ROUNDS, DURATION, SCENARIOS...
# as bench/run_peers.sh's header says (needs nghttp2-server and h2o)
bench-peers: build
	bash bench/run_peers.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)

help:
	@echo "make [build]   configure + build in $(BUILD)/ ($(BUILD_TYPE))"
	@echo "make test      build, then run every test (ctest)"
	@echo "make sanitize  ASan+UBSan build in $(BUILD_SAN)/, then run every test"
	@echo "make tsan      ThreadSanitizer build in $(BUILD_TSAN)/, then the tests that run threads (TSAN_TESTS)"
	@echo "make fuzz      libFuzzer build in $(BUILD_FUZZ)/, run each target FUZZ_SECONDS (60)"
	@echo "make demo      build, then scripts/demo.sh (dev PKI, the gateway on SQLite, sample agents, what was stored)"
	@echo "make demo-cluster  build, then scripts/demo_cluster.sh (3 NATS nodes, 2 gateways, panelgate-store, a node killed)"
	@echo "make install   build, then install libpanelagent, its headers, panelagent.pc and the CLI (PREFIX=$(PREFIX), DESTDIR honoured)"
	@echo "make bench     build, then bench/run_sink.sh: storage frames/s per core, per schema variant"
	@echo "make bench-engines  build, then bench/run_engines.sh: frames/s per gateway core on sqlite, jetstream R1, R3"
	@echo "make bench-trickle  build, then bench/run_trickle.sh: frames per commit and CPU per frame per commit_delay_ms"
	@echo "make bench-tickets  build, then bench/ticket_storm.py: agents reconnecting after a restart, with and without a ticket key file"
	@echo "make bench-peers    build, then bench/run_peers.sh: panelgate beside nghttpd and h2o -> docs/BENCHMARKS.md"
	@echo "make clean     remove the build directories"
	@echo "make deps      install missing Debian packages (scripts/deps.sh)"
	@echo "Variables: WERROR=1  JOBS=$(JOBS)  BUILD_TYPE=$(BUILD_TYPE)  FUZZ_SECONDS=$(FUZZ_SECONDS)"
