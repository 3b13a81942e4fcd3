# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e/lifecycle/<kernel>/*: the guest driver's lifecycle events with
sampling and counting running.

One boot per guest kernel. For each event (a PCI reset, a suspend and
resume of the devices, a sysfs unbind, an rmmod attempt, a QMP
device_del) the guest starts what a perf user runs: perf record of a
task (fixed period), perf record -a -g, perf record of a task that forks
after the event, perf top, perf stat -a -I of shared-slot events read
from the device's refreshed page (read_staleness_ms), and a per-task
perf stat whose task forks after the event; then it makes the event
happen, waits for all of them, and reports. Checked: no kernel splat,
every perf command finished and its data reads back, counting goes on
after a reset or a resume and is frozen after an unbind or an unplug,
and a new event without a device fails cleanly.
"""
import os
import re

import pvperf_guest
import pvperf_qmp

ACTIONS = ("reset", "suspend", "unbind", "rmmod", "unplug")
JOBS = ("rec-task", "rec-a", "rec-inherit", "stat-I", "stat-task")

# trinity (Debian's system call fuzzer): perf_event_open, whose generator
# walks every PMU in sysfs (pvperf among them), and the calls on perf fds
# (the only fds it keeps), from 2 forked children; seeded and bounded.
# Then pvperf-fuzz (tests/guest/perf-fuzz.c), aimed at pvperf events,
# two instances while the device is unbound and bound again every 2 s.
FUZZ = r"""
echo "@@ MARK fuzz-start"
run fuzz sh -c 'set -o pipefail; cd /tmp && timeout FUZZ_TIMEOUT trinity --dangerous -q -l off -T DIE,WARN,BAD_PAGE -C 2 -N FUZZ_OPS -s 20261207 --disable-fds=sockets,pipes,epoll,eventfd,pseudo,timerfd,testfile,memfd,drm -c perf_event_open -c ioctl -c read -c mmap -c poll -c close 2>&1 | grep -E "Ran [0-9]+ syscalls|Bailing|tainted|BUG"'
echo "@@ MARK fuzz-mid"
run fuzz-pv sh -c 'cd /tmp; d=/sys/bus/pci/drivers/pvperf; dev=$(basename "$(readlink -f $d/0000:*)"); timeout PVFUZZ_TIMEOUT pvperf-fuzz 20261207 PVFUZZ_OPS & a=$!; timeout PVFUZZ_TIMEOUT pvperf-fuzz 20261208 PVFUZZ_OPS & b=$!; n=0; while kill -0 $a 2>/dev/null || kill -0 $b 2>/dev/null; do sleep 1.5; echo $dev > $d/unbind && sleep 0.5 && echo $dev > $d/bind && n=$((n+1)); done; [ -e $d/$dev ] || echo $dev > $d/bind; wait $a; ra=$?; wait $b; rb=$?; echo "pvperf-fuzz rc $ra $rb, $n unbind and bind cycles, bound again: $(ls $d | grep -c 0000:)"; [ $ra = 0 ] && [ $rb = 0 ] && [ -e $d/$dev ]'
echo "@@ MARK fuzz-end"
run fuzz-splats sh -c "dmesg | grep -E -A30 'OOPS_RE'; true"
run fuzz-after perf stat -a -x, -e pvperf/task-clock/ sleep 0.3
"""

SCRIPT = r"""
run() { n=$1; shift; echo "@@ BEGIN $n"; "$@" 2>&1; echo "@@ END $n rc=$?"; }
bg() { n=$1; shift; "$@" >> /tmp/$n.out 2>&1 & eval "pid_$(echo $n | tr - _)=\$!"; }
# bgwait NAME: its section, once it ended; one still running after 30 s
# is reported with the kernel stacks of every perf thread, and killed
bgwait() {
    eval "p=\$pid_$(echo $1 | tr - _)"
    i=0; while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    if kill -0 $p 2>/dev/null; then
        echo "# HUNG: still running after 30 s" >> /tmp/$1.out
        for task in /proc/[0-9]*/task/*; do
            case "$(cat $task/comm 2>/dev/null)" in perf*|timeout)
                echo "# $task $(cut -d' ' -f3 $task/stat) $(cat $task/wchan)"
                sed 's/^/#   /' $task/stack
                kill -9 ${task##*/};;
            esac
        done >> /tmp/$1.out 2>&1
        kill -9 $p
    fi
    wait $p; rc=$?
    echo "@@ BEGIN $1"; cat /tmp/$1.out; echo; echo "@@ END $1 rc=$rc"
}
# ready T N: wait (15 s at most) until the N workloads of start T run,
# each under its perf with the events enabled (enable_on_exec)
ready() {
    i=0
    while [ $(ls /tmp/$1-ready.* 2>/dev/null | wc -l) -lt $2 ] && [ $i -lt 200 ]; do
        sleep 0.1; i=$((i+1))
    done
    echo "# $1: $(ls /tmp/$1-ready.* 2>/dev/null | wc -l) of $2 workloads running after $i x 0.1 s"
}
oopses() { dmesg | grep -E 'OOPS_RE'; true; }
nsamples() { perf script -i $1 2>/dev/null | wc -l; }
# start T: what a perf user runs, for about four seconds from now
start() {
    t=$1
    r="touch /tmp/$t-ready.\$\$;"
    bg $t-rec-task perf record -q -c 1000000 -e pvperf/task-clock/ -o /tmp/$t-task.data taskset 1 sh -c "$r exec pvperf-burn 4"
    bg $t-rec-a perf record -q -a -g -e pvperf/task-clock/ -o /tmp/$t-a.data sh -c "$r sleep 4"
    bg $t-rec-inherit perf record -q -e pvperf/task-clock/ -o /tmp/$t-i.data sh -c "$r pvperf-burn 1 & sleep 2.5; pvperf-burn 1 & wait"
    # until 2 s after the event (finish() says when)
    bg $t-stat-I perf stat -a -I 250 -x, -e pvperf/task-clock/,pvperf/context-switches/,pvperf/page-faults/ sh -c "$r until [ -e /tmp/$t-done ]; do sleep 0.1; done; sleep 2"
    bg $t-stat-task perf stat -x, -e pvperf/task-clock/,pvperf/context-switches/ sh -c "$r pvperf-burn 1; sleep 1.5; pvperf-burn 1 & wait"
    ready $t 5
}
# act T CMD...: the event T, made by CMD in the background once perf top,
# in the foreground, shows its first screen (perf top reads keys from its
# stdin: on the console none come; a pipe or /dev/null makes its prompt
# spin and SIGINT never ends it)
act() {
    t=$1; shift
    (
        i=0; while ! [ -s /tmp/$t-top.out ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
        sleep 1
        [ $t = unplug ] && echo "@@ MARK unplug"
        "$@" > /tmp/$t-act.out 2>&1; echo $? > /tmp/$t-act.rc
    ) &
    ap=$!
    timeout -s INT 15 perf top -F 200 -e pvperf/task-clock/ --stdio -d 1 -E 5 > /tmp/$t-top.out 2>&1
    trc=$?
    echo "@@ BEGIN $t-top"; grep -E "PerfTop:|rror|egmentation" /tmp/$t-top.out | tail -5; echo "@@ END $t-top rc=$trc"
    wait $ap
    echo "@@ BEGIN $t"; cat /tmp/$t-act.out; echo "@@ END $t rc=$(cat /tmp/$t-act.rc)"
}
# finish T: after the event: wait for them all, then what their data says
finish() {
    t=$1
    echo "# action done" >> /tmp/$t-stat-I.out
    touch /tmp/$t-done
    for j in JOBS; do bgwait $t-$j; done
    run $t-n-task nsamples /tmp/$t-task.data
    run $t-n-a nsamples /tmp/$t-a.data
    run $t-n-inherit nsamples /tmp/$t-i.data
    run $t-oops oopses
}
echo 1 > /sys/module/suspend/parameters/pm_test_delay
run load insmod /lib/modules/pvperf.ko read_staleness_ms=100
run kernel uname -r
run context sh -c 'dmesg | grep "perf task context"'
dev=$(basename "$(readlink -f /sys/bus/pci/drivers/pvperf/0000:*)")
echo "@@ pvperf device $dev"
run oops-start oopses
# short programs sampled at perf's default frequency and at -F 1000, by a
# pvperf clock and by the guest's own cpu-clock, alternately
rep() { perf report -i $1 --stdio -q --sort sym 2>/dev/null | head -12; }
for i in SHORT_RUNS; do
    for f in 4000 1000; do
        for e in cpu-clock pvperf/task-clock/; do
            sn=short-$f-${e%%/*}-$i
            [ $i = 1 ] && [ $f = 4000 ] && [ $e != cpu-clock ] && echo "@@ MARK freq-start"
            run $sn perf record -q -F $f -e $e -o /tmp/s.data taskset 1 pvperf-burn 0.25
            [ $i = 1 ] && [ $f = 4000 ] && [ $e != cpu-clock ] && echo "@@ MARK freq-end"
            run $sn-n nsamples /tmp/s.data
            run $sn-rep rep /tmp/s.data
        done
    done
done
# a sampling event's count read(2) from CPU 1 while it overflows on CPU 0
run read-mono-clock pvperf-read-monotonic 3 100000 task-clock
run read-mono-cs pvperf-read-monotonic 3 1 context-switches
# exits per switch of the counted task: a task that sleeps and wakes
# without forking (pvperf-sleep), its own context switches counted by
# the guest in the same perf stat; then busybox's shell loop of usleep,
# which forks a child for each
echo "@@ MARK exits-start"
sleep 0.3
run exits perf stat -x, -e pvperf/task-clock/,context-switches pvperf-sleep 300 500
echo "@@ MARK exits-end"
sleep 0.3
echo "@@ MARK exits-fork-start"
sleep 0.3
run exits-fork perf stat -x, -e pvperf/task-clock/,context-switches sh -c 'i=0; while [ $i -lt 300 ]; do usleep 500; i=$((i+1)); done'
echo "@@ MARK exits-fork-end"
sleep 0.3
# a group of pvperf events is one host group (query-pvperf names the
# leader of each member) and a perf stat -I interval reads it in one
# exit per CPU; the same events ungrouped on slots of their own (shared
# ones would read the page) take one per event and CPU
bg group-a perf stat -a -x, -I 200 -e '{pvperf/task-clock/,pvperf/page-faults/}' sleep 2.1
sleep 1
echo "@@ MARK group-query"
bgwait group-a
echo 0 > /sys/module/pvperf/parameters/shared_slots
echo "@@ MARK group-solo-start"
run group-solo perf stat -a -x, -I 200 -e pvperf/task-clock/,pvperf/page-faults/ sleep 2.1
echo "@@ MARK group-solo-end"
echo 1 > /sys/module/pvperf/parameters/shared_slots
echo "@@ MARK group-read-start"
run group-read perf stat -a -x, -I 200 -e '{pvperf/task-clock/,pvperf/page-faults/}' sleep 2.1
echo "@@ MARK group-read-end"
# per task, and sampled by its leader with the members read (:S)
run group-task perf stat -x, -e '{pvperf/task-clock/,pvperf/context-switches/,pvperf/page-faults/}' taskset 1 sh -c 'i=0; while [ $i -lt 30 ]; do usleep 2000; i=$((i+1)); done; pvperf-burn 0.2'
run group-rec perf record -q -c 2000000 -e '{pvperf/task-clock/,pvperf/page-faults/}:S' -o /tmp/g.data taskset 1 pvperf-burn 0.3
run group-rec-n nsamples /tmp/g.data
# units: pvperf/task-clock/ shown as perf shows its own task-clock
run units-sysfs sh -c 'cd /sys/bus/event_source/devices/pvperf/events && grep . task-clock.unit task-clock.scale; ls'
run units-pv perf stat -e pvperf/task-clock/ taskset 1 pvperf-burn 1
run units-own perf stat -e task-clock taskset 1 pvperf-burn 1
FUZZ
start reset
act reset sh -c "echo 1 > /sys/bus/pci/devices/$dev/reset"
finish reset
start suspend
act suspend sh -c 'echo devices > /sys/power/pm_test && echo mem > /sys/power/state; rc=$?; echo none > /sys/power/pm_test; exit $rc'
finish suspend
start unbind
act unbind sh -c "echo $dev > /sys/bus/pci/drivers/pvperf/unbind"
run unbind-new perf stat -x, -e pvperf/task-clock/ true
finish unbind
run rebind sh -c "echo $dev > /sys/bus/pci/drivers/pvperf/bind"
start rmmod
act rmmod sh -c 'rmmod pvperf; rc=$?; test -d /sys/module/pvperf && echo "still loaded"; exit $rc'
finish rmmod
start unplug
act unplug sh -c "i=0; while [ -e /sys/bus/pci/devices/$dev ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done; ! [ -e /sys/bus/pci/devices/$dev ]"
run unplug-new perf stat -x, -e pvperf/task-clock/ true
finish unplug
# every event is closed now: the module goes (Linux < 6.2: pinned by the
# per-task events, see guest-driver/README.md)
run unload sh -c 'rmmod pvperf; rc=$?; dmesg | grep "until reboot" | tail -1; exit $rc'
run oops-end oopses
""".replace("JOBS", " ".join(JOBS)).replace("SHORT_RUNS", "1 2 3")

# make fuzz-guest: the fuzzing alone, longer (PVPERF_FUZZ_OPS)
FUZZ_ONLY = r"""
run() { n=$1; shift; echo "@@ BEGIN $n"; "$@" 2>&1; echo "@@ END $n rc=$?"; }
run load insmod /lib/modules/pvperf.ko
FUZZ
run unload sh -c 'rmmod pvperf; rc=$?; dmesg | grep "until reboot" | tail -1; exit $rc'
run oops-end sh -c "dmesg | grep -E 'OOPS_RE'; true"
"""


def fuzz_ops():
    return int(os.environ.get("PVPERF_FUZZ_OPS", "1500"))


def pvfuzz_ops():
    """pvperf-fuzz's operations per instance: 10,000 in make check,
    ten times trinity's in make fuzz-guest, or PVPERF_PVFUZZ_OPS"""
    if os.environ.get("PVPERF_PVFUZZ_OPS"):
        return int(os.environ["PVPERF_PVFUZZ_OPS"])
    ops = os.environ.get("PVPERF_FUZZ_OPS")
    return int(ops) * 10 if ops else 10000


def script(text, oops_re):
    ops = fuzz_ops()
    return (text.replace("FUZZ\n", FUZZ)
            .replace("PVFUZZ_OPS", str(pvfuzz_ops()))
            .replace("PVFUZZ_TIMEOUT", str(120 + pvfuzz_ops() // 20))
            .replace("FUZZ_OPS", str(ops))
            # trinity waits 10 s as root; then about 30 operations a
            # second under TCG here: twice that, and a minute more
            .replace("FUZZ_TIMEOUT", str(70 + ops // 15))
            .replace("OOPS_RE", oops_re.pattern))


def check_fuzz_boot(r, accel, kernel, oops_re, log_dir):
    """make fuzz-guest: a boot of @kernel that only fuzzes"""
    release = pvperf_guest.kernel_release(kernel)
    pre = "linux-%s/" % release_name(release)
    marks = {}

    def on_mark(g, name):
        marks[name] = g.qmp("query-pvperf")[0]["stats"]

    g = pvperf_guest.Guest(
        script(FUZZ_ONLY, oops_re), accel,
        timeout=300 + fuzz_ops() // 10 + pvfuzz_ops() // 100,
        kernel=kernel, on_mark=on_mark,
        log_path=os.path.join(log_dir, "e2e-fuzz-%s.log" % kernel))
    done = g.run()
    check_fuzz(r, g, pre, marks)
    lines, rc = g.section("unload")
    r.check(pre + "fuzz/rmmod-after", rc == "0" or (
        release_tuple(release) < (6, 2) and
        any("until reboot" in l for l in lines)),
        "rmmod after trinity: rc=%s %s" % (rc, lines[-1:]))
    console = [l for l in g.lines if oops_re.search(l)]
    r.check(pre + "fuzz/kernel-log", done and not console,
            " | ".join(console[:5]) or "no oops, BUG or WARNING")


def check_fuzz(r, g, pre, marks):
    """trinity ran its operations, ended, left no splat naming pvperf,
    and pvperf counts afterwards"""
    lines, rc = g.section("fuzz")
    ran = [l for l in lines if "Ran " in l]
    a, b = marks.get("fuzz-start"), marks.get("fuzz-mid")
    d = pvperf_qmp.command_deltas(a, b) if a and b else {}
    splats = g.section("fuzz-splats")[0]
    ours = [l for l in splats if "pvperf" in l]
    r.check(pre + "fuzz/trinity", rc == "0" and bool(ran) and not ours,
            "trinity -N %d (perf_event_open and the calls on perf fds, 2 "
            "children, seed 20261207): %s; the device ran %s; %s" % (
                fuzz_ops(), ran[-1].strip() if ran else
                "did not finish (rc=%s): %s" % (rc, lines[-3:]),
                ", ".join("%s %d" % kv for kv in sorted(d.items())) or
                "no command", "splats naming pvperf: %s" % ours[:6] if ours
                else "no splat naming pvperf" + (
                    " (%d other splat lines)" % len(splats) if splats else "")))
    check_pvfuzz(r, g, pre, marks, ours)
    lines, rc = g.section("fuzz-after")
    r.check(pre + "fuzz/stat-after", rc == "0" and any(
        "pvperf/task-clock/" in l and l.split(",")[0].replace(".", "")
        .isdigit() for l in lines),
        "perf stat -a -e pvperf/task-clock/ after trinity: rc=%s %s" % (
            rc, lines[:2]))


def check_pvfuzz(r, g, pre, marks, ours):
    """pvperf-fuzz, two instances side by side while the device is
    unbound and bound again every 2 s: each ended with perf's contract
    kept (no count backwards, running <= enabled, sane ring records, in
    its children too), the device is bound at the end (perf stat after
    checks it counts), and they reached the device: it ran open,
    enable, read and close commands meanwhile (trinity's calls rarely
    pass pvperf's event_init)"""
    lines, rc = g.section("fuzz-pv")
    runs = [l.strip() for l in lines if l.startswith("pvperf-fuzz: seed")]
    cycles = [l.strip() for l in lines if "unbind and bind cycles" in l]
    m = re.search(r"(\d+) unbind and bind", cycles[-1]) if cycles else None
    unbinds = int(m.group(1)) if m else 0
    a, b = marks.get("fuzz-mid"), marks.get("fuzz-end")
    d = pvperf_qmp.command_deltas(a, b) if a and b else {}
    reached = all(d.get(c, 0) >= 20 for c in ("open", "enable", "read",
                                               "close"))
    r.check(pre + "fuzz/pvperf-fuzz", rc == "0" and len(runs) == 2 and
            reached and unbinds >= 1 and not ours,
            "%s; %s; the device ran %s%s" % (
                " | ".join(runs) if len(runs) == 2 else
                "rc=%s: %s" % (rc, lines[-6:]),
                cycles[-1] if cycles else "no unbind and bind",
                ", ".join("%s %d" % kv for kv in sorted(d.items())) or
                "no command", "" if reached else
                " (wants >= 20 each of open, enable, read, close)"))


def release_name(release):
    """6.1.0-57-amd64 -> 6.1, 6.12.95+deb12-amd64 -> 6.12"""
    return ".".join((release or "?").split("-")[0].split(".")[:2])


def release_tuple(release):
    try:
        return tuple(int(x) for x in release_name(release).split("."))
    except ValueError:
        return (0,)


def check_boot(r, accel, kernel, oops_re, log_dir):
    """Boot @kernel's image; one result line per action and check."""
    release = pvperf_guest.kernel_release(kernel)
    pre = "linux-%s/" % release_name(release)
    marks = {}

    def on_mark(g, name):
        if name.endswith(("-start", "-mid", "-end")):
            marks[name] = g.qmp("query-pvperf")[0]["stats"]
        elif name == "group-query":
            marks[name] = g.qmp("query-pvperf")
        elif name == "unplug":
            try:
                g.qmp("device_del", id="pv0")
                marks[name] = "device_del sent"
            except RuntimeError as e:
                marks[name] = str(e)

    g = pvperf_guest.Guest(
        script(SCRIPT, oops_re), accel,
        timeout=1200 + fuzz_ops() // 15 + pvfuzz_ops() // 100,
        kernel=kernel, smp=2, on_mark=on_mark,
        log_path=os.path.join(log_dir, "e2e-lifecycle-%s.log" % kernel),
        device="pvperf,id=pv0,bus=br0,addr=1.0,refresh-ms=50",
        pre=["-device", "pci-bridge,id=br0,chassis_nr=1"])
    done = g.run()
    _, rc = g.section("load")
    ctx, _ = g.section("context")
    r.check(pre + "boot", done and rc == "0",
            "Linux %s, insmod rc=%s, %s%s" % (
                release, rc, " ".join(l.split("] ", 1)[-1] for l in ctx),
                "" if done else "; the guest did not finish: " +
                " | ".join(g.lines[-8:])))
    check_short(r, g, pre, marks)
    check_read_monotonic(r, g, pre)
    check_switch_exits(r, g, pre, marks)
    check_groups(r, g, pre, marks)
    check_units(r, g, pre)
    check_fuzz(r, g, pre, marks)
    seen = set(g.section("oops-start")[0])
    for t in ACTIONS:
        seen = check_action(r, g, pre, t, seen, oops_re, marks)
    lines, rc = g.section("unload")
    if release_tuple(release) < (6, 2):
        # 6.1: the per-task events pinned the module (documented)
        r.check(pre + "rmmod-after", rc not in ("0", None) and
                any("until reboot" in l for l in lines),
                "rmmod once every event is closed: rc=%s (Linux < 6.2 "
                "keeps the module after per-task events): %s" %
                (rc, lines[-1:]))
    else:
        r.check(pre + "rmmod-after", rc == "0",
                "rmmod once every event is closed: rc=%s %s" % (rc, lines))
    lines, _ = g.section("oops-end")
    console = [l for l in g.lines if oops_re.search(l)]
    r.check(pre + "kernel-log", done and not lines and not console,
            " | ".join((lines + console)[:5]) or
            "no oops, BUG or WARNING in dmesg or on the console")
    return g


# perf report --stdio -q --sort sym: "  72.45%  [.] burn_three"
REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+\[[.k]\]\s+(\S+)")
HOT = ("burn_three", "burn_one")


def shares(lines):
    out = {}
    for m in filter(None, map(REPORT_LINE.match, lines)):
        out[m.group(2)] = out.get(m.group(2), 0) + float(m.group(1))
    return out


def short_run(g, f, ev, i):
    """(samples, % on the two hot functions, burn_three's share of
    them) of one short perf record"""
    n = "short-%d-%s-%d" % (f, ev, i)
    sh = shares(g.section(n + "-rep")[0])
    hot = sum(sh.get(k, 0) for k in HOT)
    three = sh.get("burn_three", 0) / hot if hot else None
    return samples(g, n + "-n"), hot, three


def check_read_monotonic(r, g, pre):
    """read(2) of a sampling pvperf event, from another CPU while it
    overflows (each read runs pvperf's read on the event's CPU by IPI,
    which its overflow interrupt can follow), never goes back: a clock at
    a 100-us period and context-switches at period 1, 3 s each. The
    driver that took a sample's period back from the count before perf
    added it showed 1,159 of 52,171 reads going back, by up to 1.6 ms."""
    for sec, what in (("read-mono-clock", "task-clock, period 100000"),
                      ("read-mono-cs", "context-switches, period 1")):
        lines, rc = g.section(sec)
        line = [l for l in lines if " reads from CPU 1" in l]
        m = re.search(r"(\d+) reads from CPU 1, (\d+) below", line[0]) \
            if line else None
        wrote = [l for l in lines if "bytes of samples written" in l]
        w = re.search(r"(\d+) bytes", wrote[0]) if wrote else None
        r.check(pre + "sample/read-monotonic-" + sec.split("-")[-1],
                rc == "0" and bool(m) and int(m.group(1)) >= 1000 and
                int(m.group(2)) == 0 and bool(w) and int(w.group(1)) > 0,
                "%s: %s" % (what, " | ".join(lines[-2:]) if lines else
                            "no output (rc=%s)" % rc))


def check_short(r, g, pre, marks, runs=3):
    """A 0.25-s program under perf record of pvperf/task-clock/ gets about
    the samples, the weight on its hot functions and their shares that
    the guest's own cpu-clock gets, every time; a clock in frequency mode
    costs no exit per tick."""
    for f in (4000, 1000):
        bad, rows = [], []
        # cpu-clock's own count moves with the host's load under TCG (131
        # to 1266 samples seen in one run of runs): each pvperf run is
        # held to the median of cpu-clock's runs, or to the cpu-clock run
        # beside it, which the same load slowed (327 against 287 samples,
        # the median 1060, seen)
        cns = sorted(short_run(g, f, "cpu-clock", i)[0]
                     for i in range(1, runs + 1))
        cmed = cns[len(cns) // 2]
        for i in range(1, runs + 1):
            cn, chot, cthree = short_run(g, f, "cpu-clock", i)
            pn, phot, pthree = short_run(g, f, "pvperf", i)
            rows.append("%d/%d samples, %.0f/%.0f%% hot, 3:1 share %s/%s" % (
                pn, cn, phot, chot, "%.2f" % pthree if pthree else "-",
                "%.2f" % cthree if cthree else "-"))
            near = [c for c in (cmed, cn) if c and 0.4 * c <= pn <= 2.5 * c]
            if not (near and
                    phot >= chot - 20 and pthree is not None and
                    cthree is not None and abs(pthree - cthree) <= 0.15):
                bad.append(i)
        r.check(pre + "sample-short/freq-%d" % f, not bad,
                "perf record -F %d of pvperf-burn 0.25 (%d runs, pvperf/"
                "cpu-clock)%s: %s" % (f, runs, ", runs %s off" % bad if bad
                                      else "", "; ".join(rows)))
    a, b = marks.get("freq-start"), marks.get("freq-end")
    if not (a and b):
        r.fail(pre + "sample-short/exits-per-tick", "no stats at the marks")
        return
    d = pvperf_qmp.command_deltas(a, b)
    exits = b["exits"] - a["exits"]
    # 0.25 s is ~62 ticks at HZ 250: frequency mode's stop/start of the
    # event at each tick would be ~125 exits; opening, enabling and
    # closing the event on 2 CPUs, and the task's few switches, are fewer
    r.check(pre + "sample-short/exits-per-tick",
            not d.get("set-period") and exits <= 40,
            "perf record -F 4000 -e pvperf/task-clock/ of a 0.25-s program:"
            " %d exits, commands %s (a clock's frequency is a fixed period:"
            " no SET_PERIOD, no exit per tick)" % (
                exits, ", ".join("%s %d" % kv for kv in sorted(d.items()))))


UNIT_LINE = re.compile(r"^\s*([\d,]+\.\d\d) msec\s+(\S+)")


def check_units(r, g, pre=""):
    """perf stat shows pvperf/task-clock/ as it shows its own task-clock:
    msec with two decimals (sysfs .unit and .scale)."""
    sysfs, _ = g.section("units-sysfs")
    r.check(pre + "units/sysfs", "task-clock.unit:msec" in sysfs and
            "task-clock.scale:1e-6" in sysfs and
            not any(l.endswith(".unit") for l in sysfs
                    if "task-clock" not in l and "cpu-clock" not in l),
            "events/: %s" % " ".join(sysfs))
    got = {}
    for sec in ("units-pv", "units-own"):
        lines, rc = g.section(sec)
        m = [UNIT_LINE.match(l) for l in lines]
        m = [x for x in m if x]
        got[sec] = (rc, m[0] if m else None,
                    [l.strip() for l in lines if "task-clock" in l][:1])
    (prc, pm, pl), (orc, om, ol) = got["units-pv"], got["units-own"]
    ratio = 0
    if pm and om:
        pv = float(pm.group(1).replace(",", ""))
        own = float(om.group(1).replace(",", ""))
        ratio = pv / own if own else 0
    # the values differ as host and guest time do: the vCPU thread's time
    # on the host against the task's in the guest (under TCG on a loaded
    # host, half of it or less): only the formatting must be the same
    r.check(pre + "units/perf-stat-msec", prc == "0" and orc == "0" and
            bool(pm and om) and pm.group(2) == "pvperf/task-clock/" and
            om.group(2) == "task-clock" and ratio > 0,
            "perf stat of a 1-s burn: %s | %s (host/guest time %.2f)" % (
                pl, ol, ratio))


def stat_values(lines):
    """perf stat -x, lines -> {event: value as printed}"""
    vals = {}
    for line in lines:
        f = line.split(",")
        if len(f) >= 3:
            vals[f[2]] = f[0]
    return vals


def check_groups(r, g, pre, marks):
    """A pvperf group is one host group: leader named, read in one exit."""
    lines, rc = g.section("group-a")
    q = marks.get("group-query") or [{}]
    slots = q[0].get("slots", [])
    by = {(s["vcpu"], s["slot"]): s for s in slots}
    grouped = []
    for s in slots:
        lead = by.get((s["vcpu"], s.get("leader", -1)))
        if s["event-name"] == "page-faults" and lead and \
                lead["event-name"] == "task-clock" and "leader" not in lead:
            grouped.append(s["vcpu"])
    iv = interval_values(lines)[0]
    r.check(pre + "group/host-group", rc == "0" and
            sorted(grouped) == [0, 1] and iv and all(iv),
            "perf stat -a -e '{pvperf/task-clock/,pvperf/page-faults/}': "
            "query-pvperf while it counts: %s; vCPUs whose page-faults "
            "slot has the task-clock slot as leader: %s (want [0, 1]); "
            "rc=%s, task-clock per interval %s" % (
                [(s["vcpu"], s["slot"], s["event-name"], s.get("leader"))
                 for s in slots], sorted(grouped), rc, iv))

    def reads(name):
        a, b = marks.get(name + "-start"), marks.get(name + "-end")
        lines, rc = g.section(name)
        n = len(interval_values(lines)[0])
        if not (a and b) or rc != "0" or not n:
            return None, n, rc
        return pvperf_qmp.command_deltas(a, b).get("read", 0), n, rc
    gr, gn, grc = reads("group-read")
    sr, sn, src = reads("group-solo")
    ok = gr is not None and sr is not None and gn >= 5 and sn >= 5 and \
        gr / gn <= 2.5 and sr / sn >= 3.5
    r.check(pre + "group/read-one-exit", ok,
            "perf stat -a -I 200 on 2 CPUs: the group of 2 events %s READs "
            "in %d intervals (%s per interval, want about 2: one per CPU), "
            "the 2 events alone on slots of their own %s in %d (%s, about "
            "4); rc %s, %s" % (
                gr, gn, "%.1f" % (gr / gn) if gr is not None and gn else "-",
                sr, sn, "%.1f" % (sr / sn) if sr is not None and sn else "-",
                grc, src))
    lines, rc = g.section("group-task")
    vals = stat_values(lines)

    def num(k):
        try:
            return float(vals.get(k, ""))
        except ValueError:
            return None     # <not counted>, <not supported>, missing
    # task-clock in msec (its sysfs .unit); context-switches and page
    # faults are the vCPU thread's on the host while the task runs: how
    # many the host makes is its business (13 to 78 seen), but with 30
    # sleeps and wakeups (each waits for QEMU's lock) never none, and
    # every member has a count
    tc, cs, pf = (num("pvperf/%s/" % e) for e in
                  ("task-clock", "context-switches", "page-faults"))
    r.check(pre + "group/per-task", rc == "0" and tc is not None and
            tc > 100 and cs is not None and cs >= 1 and pf is not None,
            "per-task perf stat of a group of 3 over 30 sleeps and 0.2 s "
            "of work: task-clock %s msec (want > 100), context-switches "
            "%s (want >= 1), page-faults %s, rc=%s %s" % (
                tc, cs, pf, rc, lines[-4:] if rc != "0" else ""))
    _, rc = g.section("group-rec")
    n = "".join(g.section("group-rec-n")[0]).strip()
    r.check(pre + "group/record-leader-samples", rc == "0" and
            n.isdigit() and int(n) >= 50,
            "perf record -c 2000000 -e '{pvperf/task-clock/,"
            "pvperf/page-faults/}:S' of 0.3 s of work: rc=%s, %s samples "
            "(want >= 50)" % (rc, n))


def check_switch_exits(r, g, pre, marks):
    """Exits per switch of the counted task (in and out each one)."""
    def run(name):
        lines, rc = g.section(name)
        vals = stat_values(lines)
        a, b = marks.get(name + "-start"), marks.get(name + "-end")
        try:
            csw = int(vals.get("context-switches", ""))
        except ValueError:
            csw = 0
        if rc != "0" or not csw or not (a and b):
            return None, "perf stat rc=%s %s; marks %s" % (
                rc, lines[:4], bool(a and b))
        d = pvperf_qmp.command_deltas(a, b)
        return (csw, b["exits"] - a["exits"]), ", ".join(
            "%s %d" % kv for kv in sorted(d.items()))

    # 300 sleeps: each a switch out (counted by context-switches) and a
    # switch in; perf stat's own OPEN, CLOSE and the first READ besides
    m, cmds = run("exits")
    if m is None:
        r.fail(pre + "exits-per-task-switch", cmds)
    else:
        csw, exits = m
        # besides the switches: perf stat's OPEN and CLOSE, and the READs
        # where the count starts (exec) and ends (exit)
        fixed = 4
        r.check(pre + "exits-per-task-switch", exits <= 2 * csw + fixed + 8,
                "per-task perf stat of pvperf/task-clock/ on pvperf-sleep "
                "300 500 (no fork): %d switches out counted by the guest, "
                "as many in: %d exits, %.2f per switch of the task beside "
                "the %d of its start and end (want <= 1), commands %s" % (
                    csw, exits, (exits - fixed) / (2.0 * csw), fixed, cmds))
    # busybox forks each usleep: per child its first switch in, its sleep
    # and wakeup, its exit (perf takes its count there: no switch out the
    # child's own context-switches counts) and the parent's switch out
    # and in, each a READ of the device: about 6 per child for about 2.3
    # switches out counted
    m, cmds = run("exits-fork")
    if m is None:
        r.fail(pre + "exits-per-fork-switch", cmds)
    else:
        csw, exits = m
        r.check(pre + "exits-per-fork-switch", exits <= 3.5 * csw,
                "per-task perf stat of pvperf/task-clock/ on a shell "
                "looping 300 usleep 500 (a child each): %d switches out "
                "counted by the guest, %d exits (%.2f per switch out, "
                "%.2f per switch in or out; a regression above 3.5 per "
                "switch out fails), commands %s" % (
                    csw, exits, exits / csw, exits / (2.0 * csw), cmds))


def interval_values(lines, event="pvperf/task-clock/"):
    """perf stat -I -x, lines split at '# action done': ([v..], [v..])"""
    parts, cur = [], []
    for line in lines:
        if line.startswith("# action done"):
            parts.append(cur)
            cur = []
            continue
        f = line.split(",")
        if len(f) >= 4 and f[3] == event:
            try:
                cur.append(float(f[1]))
            except ValueError:
                cur.append(None)        # <not counted>
    parts.append(cur)
    return (parts + [[]])[:2]


def samples(g, name):
    lines, rc = g.section(name)
    n = [int(l) for l in lines if l.strip().isdigit()]
    return n[-1] if rc == "0" and n else 0


def check_action(r, g, pre, t, seen, oops_re, marks):
    """The checks of one lifecycle event @t; returns the splats seen."""
    p = pre + "lifecycle/" + t + "/"
    lines, rc = g.section(t)
    frozen = t in ("unbind", "unplug")
    if t == "rmmod":
        # refused: perf holds the module while its events are open
        ok = rc not in ("0", None) and "still loaded" in lines
        how = "rmmod while they run: refused (rc=%s): %s" % (rc, lines[:2])
    elif t == "unplug":
        ok = rc == "0" and marks.get("unplug") == "device_del sent"
        how = "QMP device_del (%s), the guest let the device go (rc=%s)" % (
            marks.get("unplug"), rc)
    else:
        ok = rc == "0"
        how = "%s rc=%s %s" % (t, rc, " ".join(lines[:2]))
    r.check(p + "event", ok, how)

    oops = [l for l in g.section(t + "-oops")[0] if l not in seen]
    r.check(p + "no-oops", g.section(t + "-oops")[1] == "0" and not oops,
            " | ".join(oops[:4]) if oops else
            "no oops, BUG or WARNING in dmesg after it")

    for job, name, what in (
            ("rec-task", "n-task", "perf record -c 1000000 of a task"),
            ("rec-a", "n-a", "perf record -a -g"),
            ("rec-inherit", "n-inherit",
             "perf record of a task that forks after it")):
        jl, jrc = g.section("%s-%s" % (t, job))
        n = samples(g, "%s-%s" % (t, name))
        r.check(p + job, jrc == "0" and n > 0,
                "%s across it: rc=%s, %d samples read back%s" % (
                    what, jrc, n, "" if jrc == "0" else ": " +
                    " ".join(jl[-3:])))
    jl, jrc = g.section(t + "-top")
    # it must end (SIGINT after 15 s) without an error; under the load of
    # the other jobs perf top may not get to its first screen on 6.12
    shown = [l.strip()[:90] for l in jl if "PerfTop:" in l]
    r.check(p + "top", jrc is not None and
            not any("egmentation" in l or "rror" in l for l in jl),
            "perf top --stdio across it, ended by SIGINT: rc=%s, %s" % (
                jrc, shown[-1:] or "no screen shown yet (slow start)"))

    jl, jrc = g.section(t + "-stat-I")
    before, after = interval_values(jl)
    later = after[1:]               # the first spans the event
    if frozen:
        counts_ok = later and all(v == 0 for v in later)
        want = "frozen after it (the device is gone)"
    else:
        # the last is the part interval up to the workload's end, when
        # the guest may be idle (its vCPU threads halted: no host time)
        counts_ok = len(later) >= 2 and all(v for v in later[:-1])
        want = "counting after it"
    r.check(p + "stat-intervals", jrc == "0" and any(before) and
            bool(counts_ok),
            "perf stat -a -I 250 of shared events, read from the page: rc=%s"
            ", task-clock msec per interval before: %s, after: %s: %s" % (
                jrc, before, after, want))
    jl, jrc = g.section(t + "-stat-task")
    vals = {k: v for k, v in stat_values(jl).items()
            if k.startswith("pvperf/")}
    r.check(p + "stat-task", jrc == "0" and
            vals.get("pvperf/task-clock/", "<").replace(".", "").isdigit(),
            "per-task perf stat of a task forking after it: rc=%s, %s" % (
                jrc, vals or " ".join(jl[-3:])))
    if frozen:
        nl, nrc = g.section(t + "-new")
        clean = [l.strip() for l in nl if "No such device" in l or
                 "Cannot find PMU" in l or "not supported" in l]
        r.check(p + "new-event-refused", nrc not in ("0", None) and
                bool(clean),
                "a new perf stat without the device: rc=%s: %s" % (
                    nrc, clean or nl[:3]))
    return seen | set(g.section(t + "-oops")[0])
