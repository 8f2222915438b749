# panelgate - a thin wrapper over CMake.  `make help` lists the targets.
#
# One build directory per flavour, so switching never needs a clean:
#   build/       RelWithDebInfo            (make, make test, make demo)
#   build-san/   ASan + UBSan              (make sanitize)
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
FUZZ_FLAGS   := -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: all build test sanitize fuzz demo clean deps help

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
.PHONY: bench
bench: build
	bash bench/run_sink.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)

help:
	@echo "make [build]   configure + build in $(BUILD)/ ($(BUILD_TYPE))"
	@echo "make test      build, then run every test (ctest)"
	@echo "make sanitize  ASan+UBSan build in $(BUILD_SAN)/, then run every test"
	@echo "make fuzz      libFuzzer build in $(BUILD_FUZZ)/, run each target FUZZ_SECONDS (60)"
	@echo "make demo      build, then scripts/demo.sh (dev PKI + encode/decode tour)"
	@echo "make install   build, then install libpanelagent, its headers, panelagent.pc and the CLI (PREFIX=$(PREFIX), DESTDIR honoured)"
	@echo "make bench     build, then bench/run_sink.sh: storage frames/s per core, per schema variant"
	@echo "make clean     remove the build directories"
	@echo "make deps      install missing Debian packages (scripts/deps.sh)"
	@echo "Variables: WERROR=1  JOBS=$(JOBS)  BUILD_TYPE=$(BUILD_TYPE)  FUZZ_SECONDS=$(FUZZ_SECONDS)"
