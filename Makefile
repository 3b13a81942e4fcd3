# SPDX-License-Identifier: GPL-2.0-or-later
# pvperf: top-level entry points. See README.md.
#
#   make          set up the host (once) and build QEMU with pvperf
#   make demo     ... and show the device working
#   make check    ... and run every test; ends with "N passed, N failed"
#   make check-asan   only the qtests on an AddressSanitizer+UBSan build
#   make e2e      only the end-to-end tests in a booted Linux guest
#   make bench    benchmarks: the cost of one exit of each kind under KVM
#                 (bare guest); counting and sampling in the guest (exits
#                 per switch, slowdown under perf record); what a guest
#                 command costs the host and its main loop; query-pvperf
#                 with 1,024 open slots
#   make fuzz     QEMU's generic-fuzz (libFuzzer, ASan, UBSan) on pvperf;
#                 FUZZ_RUNS=N executions (default 1000000)
#   make fuzz-guest  trinity and pvperf-fuzz on the guest driver, in each
#                 guest kernel; FUZZ_OPS=N trinity calls per kernel (default
#                 50000), ten times as many pvperf-fuzz operations

SHELL := /bin/bash
QEMU := build/qemu/qemu-system-x86_64

.PHONY: all setup build demo check check-asan e2e bench fuzz fuzz-guest clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@scripts/build-qemu.sh

demo: build
	@scripts/demo.sh

check: build
	@scripts/run-tests.sh

check-asan: setup
	@scripts/run-tests.sh asan

e2e: build
	@scripts/run-tests.sh e2e

bench: build
	@scripts/kvm-bare-tests --bench && scripts/bench-switch && scripts/bench-sample && \
		scripts/bench-commands --refresh && scripts/bench-query

fuzz: setup
	@scripts/fuzz.sh

FUZZ_OPS ?= 50000
fuzz-guest: build
	@scripts/guest-image.sh && scripts/guest-image.sh backports && \
		PVPERF_E2E_ONLY=fuzz PVPERF_FUZZ_OPS=$(FUZZ_OPS) scripts/e2e-tests

clean:
	rm -rf build
