#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Run pvperf's tests and print one closing line "N passed, N failed,
# N skipped". Exit status is non-zero when anything failed.
#
#   run-tests.sh [suite...]  suites: abi patches qtest demo kvm e2e asan
#                            (default: all)
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
failures=()
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; }
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

abi_versions_agree() {
    local h=include/hw/misc/pvperf.h major minor
    major=$(sed -n 's/^#define PVPERF_VERSION_MAJOR  *\([0-9]*\).*/\1/p' $h)
    minor=$(sed -n 's/^#define PVPERF_VERSION_MINOR  *\([0-9]*\).*/\1/p' $h)
    echo "header: ABI $major.$minor"
    grep "Guest/host ABI, version" $h
    sed -n 5p docs/pvperf.rst
    grep -q "Guest/host ABI, version $major\.$minor\." $h &&
        sed -n 5p docs/pvperf.rst | grep -q "ABI v$major\.$minor\$"
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
    # One ABI version: the header's numbers, its comment, the spec's title
    run abi/doc-version abi_versions_agree
    # The guest driver against a newer kernel than the guest's 6.1
    run driver/build-backports-kernel scripts/driver-build-check.sh
    # ... and against the newest the Debian archive offers (unstable)
    run driver/build-unstable-kernel scripts/driver-unstable-check.sh
    # README's libvirt domain, against libvirt's own schema
    run libvirt/domain-xml virt-xml-validate tests/libvirt/pvperf-domain.xml domain
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

# qtest_cases BUILD_DIR NAME_PREFIX
qtest_cases() {
    local dir=$1 prefix=$2 path log rc asan
    local bin="$dir/tests/qtest/pvperf-test" q="$dir/qemu-system-x86_64"
    if [ ! -x "$bin" ]; then
        fail "${prefix}qtest: $bin is not built"
        return
    fi
    # One process per test case, so that one failure does not hide the rest.
    for path in $(QTEST_QEMU_BINARY="$q" "$bin" -l | grep '^/'); do
        log="$logdir/${prefix//\//_}qtest${path//\//_}.log"
        asan=${ASAN_OPTIONS-}
        case "$path" in
        */migration/savevm)
            # its suppressed QEMU leak is found by name: whole stacks
            # (glib has no frame pointers for the fast unwinder)
            [ -z "$asan" ] || asan=$asan:fast_unwind_on_malloc=0 ;;
        esac
        ASAN_OPTIONS=$asan QTEST_QEMU_BINARY="$q" timeout 600 "$bin" --tap \
            -p "$path" > "$log" 2>&1
        rc=$?
        if [ $rc -ne 0 ] || grep -q '^not ok' "$log"; then
            fail "${prefix}qtest $path (exit $rc, log: $log)"
            grep -E 'ERROR|Bail|assert|Sanitizer|runtime error' "$log" |
                head -5 | sed 's/^/    /'
        elif grep -q '^ok .*# SKIP' "$log"; then
            skip "${prefix}qtest $path: $(grep -o '# SKIP.*' "$log" | head -1)"
        elif grep -q '^ok ' "$log"; then
            pass "${prefix}qtest $path"
        else
            fail "${prefix}qtest $path: no result (log: $log)"
        fi
    done
}

suite_qtest() {
    qtest_cases "$build" ""
    # QEMU's own qmp-cmd-test calls every argument-less query-*, including
    # query-pvperf without a device: it must pass unchanged.
    local log="$logdir/qmp-cmd-test.log" n
    QTEST_QEMU_BINARY="$qemu" timeout 600 \
        "$build/tests/qtest/qmp-cmd-test" --tap > "$log" 2>&1
    local rc=$?
    n=$(grep -c '^ok ' "$log")
    if [ $rc -eq 0 ] && ! grep -q '^not ok' "$log" &&
       grep -q '^ok .*/qmp/query-pvperf$' "$log"; then
        pass "qemu/qmp-cmd-test ($n cases, query-pvperf among them)"
    else
        fail "qemu/qmp-cmd-test (exit $rc, log: $log)"
        grep -E '^not ok|ERROR' "$log" | head -5 | sed 's/^/    /'
    fi
}

suite_asan() {
    # The same qtests on QEMU built with AddressSanitizer and UBSan; any
    # report (leaks at exit included) makes QEMU fail and the case with it.
    if ! PVPERF_ASAN=1 scripts/build-qemu.sh > "$logdir/asan-build.log" 2>&1; then
        fail "asan/build (log: $logdir/asan-build.log)"
        tail -20 "$logdir/asan-build.log" | sed 's/^/    /'
        return
    fi
    # (QEMU's own leaks that the tests reach are suppressed, each with
    # its reason: tests/asan/lsan-qemu.supp)
    LSAN_OPTIONS=suppressions=$PWD/tests/asan/lsan-qemu.supp \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        qtest_cases build/qemu-asan "asan/"
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

suite_e2e() {
    # Boots Debian's kernel with -device pvperf and runs perf in it.
    local log="$logdir/e2e.log"
    if ! scripts/guest-image.sh > "$logdir/guest-image.log" 2>&1; then
        fail "e2e/guest-image (log: $logdir/guest-image.log)"
        tail -20 "$logdir/guest-image.log" | sed 's/^/    /'
        return
    fi
    # the second guest kernel: bookworm-backports' (6.12), for the
    # driver's per-kernel checks (e2e/linux-<version>/*)
    if ! scripts/guest-image.sh backports > "$logdir/guest-image-backports.log" 2>&1; then
        fail "e2e/guest-image-backports (log: $logdir/guest-image-backports.log)"
        tail -20 "$logdir/guest-image-backports.log" | sed 's/^/    /'
    fi
    # The guest kernel's headers are there now: the driver as DKMS builds
    # it on a Debian or Ubuntu guest
    run driver/dkms scripts/driver-dkms-check.sh
    scripts/e2e-tests > "$log" 2>&1
    local rc=$?
    grep -v '^#   ' "$log" | grep '^#' || true
    count_results "$log" $rc e2e scripts/e2e-tests
}

# count_results LOG RC NAME PROGRAM: count PROGRAM's PASS/FAIL/SKIP lines;
# a non-zero exit without a FAIL line is a failure of its own
count_results() {
    local log=$1 rc=$2 line
    while IFS= read -r line; do
        case "$line" in
        "PASS "*) pass "${line#PASS }" ;;
        "FAIL "*) fail "${line#FAIL }" ;;
        "SKIP "*) skip "${line#SKIP }" ;;
        esac
    done < "$log"
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$log"; then
        fail "$3: $4 exited $rc (log: $log)"
        tail -20 "$log" | sed 's/^/    /'
    fi
}

suite_kvm() {
    # A bare 32-bit guest drives the device from a real KVM vCPU (this
    # host's KVM cannot boot Linux, but runs it); skipped without /dev/kvm.
    local log="$logdir/kvm-bare.log"
    scripts/kvm-bare-tests > "$log" 2>&1
    count_results "$log" $? kvm scripts/kvm-bare-tests
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(abi patches qtest demo kvm e2e asan)
for s in "${suites[@]}"; do
    "suite_$s"
done

# the failures again, next to the closing line: a log cut in the middle
# (CI shows its head and tail) still names every one
for f in "${failures[@]}"; do
    echo "FAILED: $f"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
