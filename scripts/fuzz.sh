#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make fuzz: QEMU's device fuzzer (tests/qtest/fuzz, target generic-fuzz:
# libFuzzer with ASan and UBSan) on pvperf's MMIO and I/O BARs, then which
# lines and functions of hw/misc/pvperf.c the corpus reaches.
#
#   fuzz.sh              build qemu-fuzz-x86_64 (PVPERF_FUZZ=1
#                        scripts/build-qemu.sh), fuzz, print the summary and
#                        the coverage; exit 1 on a finding (crash, leak,
#                        UBSan report, timeout, out-of-memory)
#   fuzz.sh coverage     only replay the corpus and report the coverage
#   fuzz.sh repro FILE   turn an input (a crash-* artifact) into a qtest
#                        trace and a command line for qemu-system-x86_64
#
#   FUZZ_RUNS=N          executions (default 1000000); FUZZ_RUNS=-1: until
#                        a finding or FUZZ_TIME
#   FUZZ_TIME=S          stop after S seconds as well (default: no limit)
#   FUZZ_ARGS='...'      more libFuzzer options
#   FUZZ_BUILD=0         use the existing build as it is
#
# Everything lives in $PVPERF_CACHE/fuzz (default /var/cache/pvperf/fuzz),
# so a run continues from the corpus of the runs before it:
#   corpus/      inputs that reached new coverage (libFuzzer writes here)
#   seeds/       hand-written inputs that play a driver (remade every run)
#   artifacts/   crash-*, leak-*, timeout-*, oom-* inputs, and for each
#                FILE.qtest, FILE.trace, FILE.sh after "fuzz.sh repro FILE"
#   logs/        one log per run; coverage/: the last coverage report
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPERF_CACHE:-/var/cache/pvperf}
fuzzdir="$cache/fuzz"
build="$cache/qemu-build-fuzz"
bin="$build/qemu-fuzz-x86_64"
tree="$cache/qemu-tree"
runs=${FUZZ_RUNS:-1000000}
log() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

mkdir -p "$fuzzdir"/{corpus,seeds,artifacts,logs,coverage}
count() { find "$1" -maxdepth 1 -type f | wc -l; }
# libFuzzer's findings: crash-<sha1>, leak-, timeout-, oom- (no extension)
findings() {
    find "$fuzzdir/artifacts" -maxdepth 1 -type f -regextype egrep \
        -regex '.*/(crash|leak|timeout|oom)-[0-9a-f]+' -printf '%f\n' | sort
}

# The machine: q35 with 2 vCPUs and room for a third that is not plugged
# in (CMD_VCPU 0 and 1; 2 exists but is absent; 3 and up are bad), 512 MiB
# of RAM (generic-fuzz adds -m 512M) for count pages, and two pvperf
# devices: pv0 with events every host has, refresh-ms=1 so that
# generic-fuzz's clock_step runs the refresh timer (which writes the count
# pages) and max-slots=8 so that the LIMIT status is in reach; pv1 with
# other limits (5 slots per vCPU, 3 in all) and no refresh. Guest errors
# are logged to /dev/null, so that the arguments of pvperf's log messages
# are evaluated (and checked by the sanitizers) too. generic-fuzz adds
# "-machine accel=qtest" itself (an extra -accel qtest is refused: "The
# -accel and -machine accel= options are incompatible"). Each input starts
# with generic-fuzz mapping the BARs and setting I/O, memory and
# bus-master enable in PCI_COMMAND.
events=task-clock,,context-switches,,page-faults
if [ -d /sys/kernel/debug/tracing ] &&
   [ -d /sys/kernel/debug/tracing/events/kvm/kvm_exit ]; then
    events="$events,,kvm:kvm_exit"
fi
export QEMU_FUZZ_ARGS="-machine q35 -nodefaults -smp 2,maxcpus=3 -d guest_errors -D /dev/null -device pvperf,id=pv0,events=$events,refresh-ms=1,max-slots=8 -device pvperf,id=pv1,events=page-faults,,task-clock,slots-per-vcpu=5,max-slots=3"
# the devices (their PCI config space and BARs) and their BAR regions
export QEMU_FUZZ_OBJECTS="pvperf pvperf-mmio pvperf-io"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LLVM_PROFILE_FILE=/dev/null     # coverage: only when replaying
fuzz=("$bin" --fuzz-target=generic-fuzz)

# clang 14 with libFuzzer, and llvm-14 for the coverage report
need_tools() {
    local missing=()
    command -v clang > /dev/null || missing+=(clang)
    compgen -G '/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a' \
        > /dev/null || missing+=(libclang-rt-14-dev)
    command -v llvm-cov-14 > /dev/null || missing+=(llvm-14)
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" = 0 ] || die "needs Debian packages ${missing[*]}"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
        > /dev/null || die "apt-get install ${missing[*]} failed"
}

build_fuzzer() {
    local t0=$SECONDS
    need_tools
    if [ "${FUZZ_BUILD:-1}" = 0 ]; then
        [ -x "$bin" ] || die "no $bin: run without FUZZ_BUILD=0"
        strip_covrec
        return
    fi
    log "building qemu-fuzz-x86_64 (clang, libFuzzer, ASan, UBSan) in $build"
    if ! PVPERF_FUZZ=1 "$top/scripts/build-qemu.sh" qemu-fuzz-x86_64 \
            > "$fuzzdir/logs/build.log" 2>&1; then
        tail -30 "$fuzzdir/logs/build.log" >&2
        die "build failed ($fuzzdir/logs/build.log)"
    fi
    log "built in $((SECONDS - t0)) s"
    strip_covrec
    snapshot_source
}

# -fcoverage-mapping leaves a local symbol __covrec_<hash> per function in
# a section that is not loaded, at addresses from 0, over the whole text;
# llvm-symbolizer 14 prefers them to the real names in sanitizer stacks.
# Drop them (the coverage data is the section, not the symbols).
strip_covrec() {
    [ "$fuzzdir/.covrec-stripped" -nt "$bin" ] && return
    objcopy --wildcard --strip-symbol='__covrec_*' "$bin" &&
    touch "$fuzzdir/.covrec-stripped"
}

# The pvperf.c that was compiled, for the coverage report's line numbers
snapshot_source() {
    local obj="$build/libcommon.a.p/pvperf_hw_misc_pvperf.c.o"
    mkdir -p "$fuzzdir/src/hw/misc"
    cp "$top/hw/misc/pvperf.c" "$fuzzdir/src/hw/misc/pvperf.c"
    if [ "$top/hw/misc/pvperf.c" -nt "$obj" ]; then
        log "warning: hw/misc/pvperf.c changed after $bin was built:" \
            "coverage line numbers may be off (rebuild: run without FUZZ_BUILD=0)"
    fi
}

# Seeds: what a driver does (docs/pvperf.rst), in generic-fuzz's input
# format: commands separated by "FUZZ", the first byte of each the op
# (op % 10), then its packed little-endian struct (generic_fuzz.c).
make_seeds() {
    rm -f "$fuzzdir"/seeds/*
    python3 - "$fuzzdir/seeds" <<'EOF'
import struct, sys, os
dest = sys.argv[1]
SEP = b"FUZZ"
OP_OUT, OP_READ, OP_WRITE, OP_PCI_WRITE, OP_CLOCK_STEP = 1, 2, 3, 5, 9
OP_ADD_DMA_PATTERN = 7
LONG = 2                # size index of a 32-bit access (op % 4 or % 3)
R = dict(DRIVER_FEATURES=0x0c, CATALOG_SELECT=0x24, CATALOG_INFO=0x28,
         CATALOG_ERRNO=0x2c, CMD_VCPU=0x40, CMD_SLOT=0x44, CMD_EVENT=0x48,
         CMD_GROUP=0x4c, CMD_FLAGS=0x50, CMD_MASK_LO=0x58, CMD_MASK_HI=0x5c,
         CMD_ADDR_LO=0x60, CMD_ADDR_HI=0x64, CMD_PERIOD_LO=0x68,
         DOORBELL=0x70, STATUS=0x74, HOST_ERRNO=0x78, CATALOG_NAME=0x100)
NOP, RESET, SET_PAGE, OPEN, CLOSE, ENABLE, DISABLE, READ, ACK, SET_BLOCK, \
    RUN = range(11)
NO_GROUP = 0xffffffff
BASE = 0                # which matched region: the device, modulo their number

def w(reg, val):        # op_write: size, base, (pad), uint32 offset, uint64 value
    return bytes([OP_WRITE]) + struct.pack("<BBxxIQ", LONG, BASE, R[reg], val)
def r(reg, off=0):      # op_read: size, base, (pad), uint32 offset
    return bytes([OP_READ]) + struct.pack("<BBxxI", LONG, BASE, R[reg] + off)
def out(val):           # op_out: size, base, uint16 offset, uint32 value
    return bytes([OP_OUT]) + struct.pack("<BBHI", LONG, BASE, 0, val)
def pci_command(val):   # op_pci_write: size (word), device, offset, (pad), value
    return bytes([OP_PCI_WRITE]) + struct.pack("<BBBxI", 1, BASE, 4, val)
def step():
    return bytes([OP_CLOCK_STEP])
def bell(cmd, io=False):
    return [out(cmd) if io else w("DOORBELL", cmd), r("STATUS")]
def page(vcpu, gpa, io=False):
    return [w("CMD_VCPU", vcpu), w("CMD_ADDR_LO", gpa & 0xffffffff),
            w("CMD_ADDR_HI", gpa >> 32)] + bell(SET_PAGE, io)
def open_(slot, ev, group=NO_GROUP, flags=0, io=False):
    return [w("CMD_SLOT", slot), w("CMD_EVENT", ev), w("CMD_GROUP", group),
            w("CMD_FLAGS", flags)] + bell(OPEN, io)
def set_block(vcpu, gpa):
    return [w("CMD_VCPU", vcpu), w("CMD_ADDR_LO", gpa & 0xffffffff),
            w("CMD_ADDR_HI", gpa >> 32)] + bell(SET_BLOCK)
def entry(cmd, slot=0, event=0, group=NO_GROUP, flags=0, mask=0, addr=0):
    return struct.pack("<6I3Q2IQ", cmd, 0xffffffff, slot, event, group,
                       flags, mask, addr, 0, 0, 0, 0)
def block_pattern(nr, e):
    # what the device's DMA read of the block gets: the header and entry 0
    # (generic-fuzz fills guest memory the device reads from its patterns)
    return bytes([OP_ADD_DMA_PATTERN]) + bytes([0, 0]) + \
        struct.pack("<4I48x", nr, 0xffffffff, 0, 0) + e
def mask(m):
    return [w("CMD_MASK_LO", m & 0xffffffff), w("CMD_MASK_HI", m >> 32)]
def save(name, ops):
    with open(os.path.join(dest, f"seed-{name}-{BASE}"), "wb") as f:
        f.write(SEP.join(ops))

for BASE in (0, 1):
    # a group of two, counted with refresh and explicit reads, then closed
    save("count-group", [w("DRIVER_FEATURES", 0xb)] + page(0, 0x100000) +
         open_(0, 0) + open_(1, 1, group=0) + mask(0x3) + bell(ENABLE) +
         [step(), step(), step()] + bell(READ) + bell(DISABLE) +
         [w("CMD_SLOT", 0)] + bell(CLOSE) + [step()] + bell(RESET))
    # vCPU 1 through the I/O doorbell, enabled at OPEN, slot 63, page moved
    save("io-vcpu1", page(1, 0x200000, io=True) +
         open_(63, 1, flags=1, io=True) + [step(), step()] + mask(1 << 63) +
         bell(READ, io=True) + page(1, 0x201000, io=True) + [step()] +
         page(1, 0, io=True) + bell(READ, io=True) + bell(RESET, io=True))
    # one group on vCPU 0, one slot more than max-slots
    save("limit", page(0, 0x300000) +
         sum((open_(n, n % 2, group=NO_GROUP if n == 0 else 0, flags=1)
              for n in range(9)), []) + [step()] + mask(0x1ff) + bell(READ) +
         [w("CMD_SLOT", 0)] + bell(CLOSE) + mask(0x1fe) + bell(DISABLE) +
         [step()])
    # the catalog walk a driver does at probe time
    save("catalog", sum(([w("CATALOG_SELECT", i), r("CATALOG_INFO"),
                          r("CATALOG_ERRNO")] +
                         [r("CATALOG_NAME", 4 * k) for k in range(16)]
                         for i in range(5)), []))
    # bad arguments: absent and bad vCPUs, unaligned, non-RAM and last
    # pages, period, flags, event, slot, busy slot, group, unknown commands
    save("errors", page(2, 0x1000) + open_(0, 0) + page(5, 0x1000) +
         page(0, 0x100800) + page(0, 0xfee00000) +
         page(0, 0xfffffffffffff000) +
         [w("CMD_PERIOD_LO", 1000)] + open_(0, 0) + [w("CMD_PERIOD_LO", 0)] +
         open_(0, 0, flags=2) + open_(0, 9) + open_(64, 0) + open_(0, 0) +
         open_(0, 0) + open_(1, 0, group=5) + bell(ACK) + bell(0x1234) +
         mask(0x2) + bell(ENABLE) + mask(0xff) + bell(READ))
    # ABI 1.1: a command block run on both doorbells: OPEN, then READ
    save("block", [w("DRIVER_FEATURES", 0x1f)] + page(0, 0x100000) +
         [block_pattern(1, entry(OPEN, flags=1))] + set_block(0, 0x200000) +
         bell(RUN) + [step()] + set_block(0, 0x201000) +
         [block_pattern(1, entry(READ, mask=1))] + bell(RUN, io=True) +
         [step()] + set_block(0, 0) + bell(RUN))
    # a block with too many entries, and one with RESET in it
    save("block-bad", set_block(0, 0x200000) +
         [block_pattern(64, entry(NOP))] + bell(RUN) +
         set_block(0, 0x202000) + [block_pattern(1, entry(RESET))] +
         bell(RUN, io=True))
    # bus mastering off (PCI_COMMAND = I/O | memory) around a counting page
    save("no-master", page(0, 0x100000) + open_(0, 0, flags=1) +
         [pci_command(0x3), step()] + page(0, 0x101000) +
         [pci_command(0x7), step()])
EOF
}

# The coverage of hw/misc/pvperf.c reached by the corpus (and the seeds):
# replay them once on the fuzz build, whose pvperf.c carries source-based
# coverage counters (scripts/build-qemu.sh PVPERF_FUZZ=1). generic-fuzz runs
# every input in this one process (QEMU 10.0 resets the machine between
# inputs; it no longer forks a child per input), and %p in the profile name
# would keep apart any process that did fork. Lines refer to the copy of
# pvperf.c taken when it was built (src/), which llvm-cov reads through
# -path-equivalence: the clone's file may have moved on since.
coverage() {
    local cov="$fuzzdir/coverage" src="$fuzzdir/src" llvm_args
    [ -f "$src/hw/misc/pvperf.c" ] || snapshot_source
    rm -f "$cov"/*.profraw "$cov"/*.profdata
    log "coverage: replaying $(count "$fuzzdir/corpus") corpus inputs and $(count "$fuzzdir/seeds") seeds"
    if ! LLVM_PROFILE_FILE="$cov/replay-%p.profraw" "${fuzz[@]}" -runs=0 \
            -artifact_prefix="$cov/" "$fuzzdir/corpus" "$fuzzdir/seeds" \
            > "$cov/replay.log" 2>&1; then
        tail -20 "$cov/replay.log" >&2
        log "coverage: the replay failed ($cov/replay.log)"
        return 1
    fi
    llvm-profdata-14 merge -sparse -o "$cov/pvperf.profdata" "$cov"/*.profraw &&
    rm -f "$cov"/*.profraw || return 1
    llvm_args=("$bin" -instr-profile="$cov/pvperf.profdata"
               -path-equivalence="$(realpath "$build")/../qemu-tree/pvperf,$src"
               "$src/hw/misc/pvperf.c")
    llvm-cov-14 show "${llvm_args[@]}" > "$cov/pvperf.c.txt" &&
    llvm-cov-14 report -show-functions "${llvm_args[@]}" \
        > "$cov/functions.txt" || return 1
    python3 - "$cov" "$src/hw/misc/pvperf.c" <<'EOF'
import re, sys
cov, source = sys.argv[1], sys.argv[2]
# the annotated source: "  NNN|  count|text", count empty on lines without code
count, text = {}, {}
for line in open(cov + "/pvperf.c.txt"):
    m = re.match(r"\s*(\d+)\|\s*([^|]*?)\|(.*)", line)
    if m:
        n = int(m.group(1))
        text[n] = m.group(3)
        if m.group(2):
            count[n] = m.group(2)
code = sorted(count)
missed = [n for n in code if count[n] == "0"]
# functions, from the report: name, regions, missed regions, ...
funcs = {}
for line in open(cov + "/functions.txt"):
    f = line.split()
    if len(f) >= 10 and re.match(r"\d+$", f[1]) and f[0] != "TOTAL":
        funcs[f[0].rsplit(":", 1)[-1]] = int(f[1]) == int(f[2])
# which function a line is in: QEMU style puts a definition's name and its
# "{" and "}" at column 0
owner, name, inside = {}, None, False
for n in sorted(text):
    t = text[n]
    m = re.match(r"[A-Za-z_].*?\b(\w+)\(", t)
    if m and not inside and not t.startswith(("typedef", "#")):
        name = m.group(1)
    if t.startswith("{"):
        inside = True
    if inside:
        owner[n] = name
    if t.startswith("}"):
        inside = False
def ranges(lines):
    out = []
    for l in lines:
        if out and l == out[-1][1] + 1:
            out[-1][1] = l
        else:
            out.append([l, l])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)
notrun = sorted(f for f, dead in funcs.items() if dead)
total = [l.split() for l in open(cov + "/functions.txt") if l.startswith("TOTAL")][0]
lines, lmiss = int(total[4]), int(total[5])
print(f"hw/misc/pvperf.c: {lines - lmiss} of {lines} lines reached "
      f"({100 * (lines - lmiss) / lines:.1f}%), {len(funcs) - len(notrun)} of "
      f"{len(funcs)} functions, {int(total[1]) - int(total[2])} of {total[1]} "
      f"regions (llvm-cov)")
print("functions not reached: " + (", ".join(notrun) if notrun else "none"))
by = {}
for n in missed:
    if owner.get(n) not in notrun:
        by.setdefault(owner.get(n) or "?", []).append(n)
if by:
    print("lines not reached in functions that ran:")
    for f, lines in sorted(by.items(), key=lambda x: x[1][0]):
        print(f"  {f}: {ranges(lines)}")
print(f"annotated source: {cov}/pvperf.c.txt (the built copy: {source})")
EOF
}

# A reproducer for one input: the qtest commands it sends (generic-fuzz
# serialises them with QTEST_LOG=1 FUZZ_SERIALIZE_QTEST=1), reordered by
# QEMU's scripts/oss-fuzz/reorder_fuzzer_qtest_trace.py, replayable with
# qemu-system-x86_64 -qtest stdio.
repro() {
    local in=$1 qemu
    [ -f "$in" ] || die "repro: no such input $in"
    QTEST_LOG=1 FUZZ_SERIALIZE_QTEST=1 "${fuzz[@]}" "$in" > "$in.trace" 2>&1
    python3 "$tree/scripts/oss-fuzz/reorder_fuzzer_qtest_trace.py" \
        "$in.trace" > "$in.qtest"
    qemu="$top/build/qemu-asan/qemu-system-x86_64"
    [ -x "$qemu" ] || qemu="$top/build/qemu/qemu-system-x86_64"
    QEMU_PATH=$qemu \
    QEMU_ARGS="-display none -machine accel=qtest -m 512M $QEMU_FUZZ_ARGS" \
        python3 "$tree/scripts/oss-fuzz/output_reproducer.py" -bash \
        "$in.qtest" > "$in.sh"
    echo "reproducer for $in ($(wc -l < "$in.qtest") qtest commands):"
    echo "  fuzzer:  QEMU_FUZZ_ARGS='$QEMU_FUZZ_ARGS' \\"
    echo "           QEMU_FUZZ_OBJECTS='$QEMU_FUZZ_OBJECTS' \\"
    echo "           $bin --fuzz-target=generic-fuzz $in"
    echo "  qtest:   $in.qtest (the generic-fuzz log: $in.trace)"
    echo "  QEMU:    bash $in.sh   (feeds $in.qtest to $qemu -qtest stdio)"
}

run_fuzzer() {
    local stamp runlog t0 t1 rc secs execs eps new found before time_args=()
    stamp=$(date +%Y%m%d-%H%M%S)
    runlog="$fuzzdir/logs/run-$stamp.log"
    [ -n "${FUZZ_TIME:-}" ] && time_args=(-max_total_time="$FUZZ_TIME")
    before=$(findings)
    log "generic-fuzz on pvperf: $runs executions${FUZZ_TIME:+ or $FUZZ_TIME s}, corpus $fuzzdir/corpus ($(count "$fuzzdir/corpus") inputs)"
    log "QEMU_FUZZ_ARGS=$QEMU_FUZZ_ARGS"
    log "QEMU_FUZZ_OBJECTS=$QEMU_FUZZ_OBJECTS"
    log "log: $runlog"
    t0=$(date +%s.%N)
    # libFuzzer's NEW/REDUCE lines stay in the log; the rest is shown
    # shellcheck disable=SC2086
    "${fuzz[@]}" -runs="$runs" "${time_args[@]}" -max_len=4096 -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$fuzzdir/artifacts/" \
        ${FUZZ_ARGS:-} "$fuzzdir/corpus" "$fuzzdir/seeds" 2>&1 |
        tee "$runlog" | grep --line-buffered -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE) '
    rc=${PIPESTATUS[0]}
    t1=$(date +%s.%N)
    secs=$(echo "$t1 - $t0" | bc)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$runlog" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$runlog" | tail -1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$runlog" | tail -1)
    found=$(comm -13 <(echo "$before") <(findings))
    if [ -z "$execs" ]; then        # a crash ends without final stats
        execs=$(grep -oE '^#[0-9]+' "$runlog" | tail -1 | tr -d '#')
        eps=$(echo "${execs:-0} / $secs" | bc)
    fi
    echo
    echo "== fuzz summary"
    printf 'executions: %s\ntime: %.0f s\nexec/s: %s\n' "${execs:-0}" "$secs" "${eps:-0}"
    echo "corpus: $(count "$fuzzdir/corpus") inputs (${new:-0} new in this run)"
    if [ -n "$found" ]; then
        echo "findings: $(echo "$found" | wc -l) (libFuzzer exit status $rc)"
        for f in $found; do
            echo "  $fuzzdir/artifacts/$f"
        done
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:)' "$runlog" | head -5 | sed 's/^/  /'
        for f in $found; do
            repro "$fuzzdir/artifacts/$f" | sed 's/^/  /'
        done
        echo "full report: $runlog"
        return 1
    elif grep -q 'ERROR: LeakSanitizer' "$runlog"; then
        # libFuzzer stops checking leaks per input when QEMU's allocations
        # do not balance within one input; LSan still runs at exit
        echo "findings: a leak at exit (LeakSanitizer; libFuzzer exit status $rc)"
        grep -A12 'ERROR: LeakSanitizer' "$runlog" | head -30 | sed 's/^/  /'
        echo "full report: $runlog"
        return 1
    elif [ "$rc" != 0 ]; then
        echo "findings: none, but libFuzzer exited with status $rc (log: $runlog)"
        tail -20 "$runlog"
        return 1
    fi
    echo "findings: none"
    return 0
}

case "${1:-run}" in
run)
    build_fuzzer
    make_seeds
    run_fuzzer; status=$?
    echo
    echo "== coverage"
    coverage || status=1
    exit $status
    ;;
coverage)
    build_fuzzer
    make_seeds
    coverage
    ;;
repro)
    [ $# -eq 2 ] || die "usage: fuzz.sh repro FILE"
    build_fuzzer
    repro "$2"
    ;;
*)
    die "usage: fuzz.sh [run | coverage | repro FILE]"
    ;;
esac
