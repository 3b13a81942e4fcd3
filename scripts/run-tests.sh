#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Run pvperf's tests and print one closing line "N passed, N failed,
# N skipped". Exit status is non-zero when anything failed.
#
#   run-tests.sh [suite...]     suites: abi patches qtest demo (default: all)
#   PVPERF_QEMU_BUILD=dir       the QEMU build to test (default build/qemu)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${PVPERF_QEMU_BUILD:-build/qemu}
qemu="$build/qemu-system-x86_64"
logdir="$top/build/test-logs"
mkdir -p "$logdir"
passed=0 failed=0 skipped=0

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1"; }

# Run a command as one test; its output goes to a log shown on failure.
run() {
    local name=$1 log="$logdir/${1//\//_}.log"
    shift
    if "$@" > "$log" 2>&1; then
        pass "$name"
    else
        fail "$name (log: $log)"
        tail -20 "$log" | sed 's/^/    /'
    fi
}

suite_abi() {
    # The ABI header stands alone (driver and tests include it), and its
    # static asserts hold on 32-bit guests as on 64-bit ones.
    local t
    t=$(mktemp -d)
    printf '#include "hw/misc/pvperf.h"\nint main(void) { return 0; }\n' > "$t/a.c"
    run abi/header-c11-x86_64 gcc -std=c11 -Wall -Werror -Iinclude -fsyntax-only "$t/a.c"
    run abi/header-c11-i386 gcc -m32 -ffreestanding -std=c11 -Wall -Werror -Iinclude -fsyntax-only "$t/a.c"
    run abi/header-gnu11 gcc -std=gnu11 -Wall -Werror -Iinclude -fsyntax-only "$t/a.c"
    rm -rf "$t"
}

suite_patches() {
    # The series applies cleanly to the pristine QEMU source we build.
    local src
    src=$(ls -d /var/cache/pvperf/src/qemu-10.0.*/ 2>/dev/null | tail -1)
    if [ -z "$src" ]; then
        skip "patches/apply: no pristine source in /var/cache/pvperf/src"
        return
    fi
    for p in patches/*.patch; do
        run "patches/$(basename "$p" .patch)" \
            patch -d "$src" -p1 --dry-run -s -i "$top/$p"
    done
}

suite_qtest() {
    local bin="$build/tests/qtest/pvperf-test" path log rc
    if [ ! -x "$bin" ]; then
        fail "qtest: $bin is not built"
        return
    fi
    # One process per test case, so that one failure does not hide the rest.
    for path in $(QTEST_QEMU_BINARY="$qemu" "$bin" -l | grep '^/'); do
        log="$logdir/qtest${path//\//_}.log"
        QTEST_QEMU_BINARY="$qemu" timeout 600 "$bin" --tap -p "$path" \
            > "$log" 2>&1
        rc=$?
        if [ $rc -ne 0 ] || grep -q '^not ok' "$log"; then
            fail "qtest $path (exit $rc, log: $log)"
            grep -E 'ERROR|Bail|assert' "$log" | head -5 | sed 's/^/    /'
        elif grep -q '^ok .*# SKIP' "$log"; then
            skip "qtest $path: $(grep -o '# SKIP.*' "$log" | head -1)"
        elif grep -q '^ok ' "$log"; then
            pass "qtest $path"
        else
            fail "qtest $path: no result (log: $log)"
        fi
    done
}

suite_demo() {
    local log="$logdir/demo.log"
    run demo/catalog scripts/pvperf-catalog --qemu "$qemu"
    run demo/count scripts/pvperf-catalog --qemu "$qemu" --count 0.2
    if scripts/pvperf-catalog --qemu "$qemu" "events=task-clock,,nosuchevent" \
            > "$log" 2>&1; then
        fail "demo/unknown-event-rejected (QEMU started)"
    elif grep -q "event 'nosuchevent': not found in libpfm4" "$log"; then
        pass "demo/unknown-event-rejected"
    else
        fail "demo/unknown-event-rejected (log: $log)"
    fi
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(abi patches qtest demo)
for s in "${suites[@]}"; do
    "suite_$s"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
