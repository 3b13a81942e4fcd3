# SPDX-License-Identifier: GPL-2.0-or-later
"""Boot the end-to-end guest (scripts/guest-image.sh) under QEMU with
-device pvperf, run a shell script in it, and watch its serial console.

The guest prints "@@ ..." lines; a line "@@ MARK <name>" calls a
callback on the host at that moment (to measure the vCPU threads or load
the host in step with the guest). Uses KVM where KVM boots this guest,
TCG (multi-threaded, one host thread per vCPU) where it does not.
"""
import gzip
import io
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import pvperf_qmp

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("PVPERF_CACHE", "/var/cache/pvperf")
GUEST = os.path.join(CACHE, "guest")
# the guest kernels scripts/guest-image.sh builds images for: name -> dir
KERNELS = {"bookworm": GUEST,
           "backports": os.path.join(CACHE, "guest-backports")}


def kernel_release(kernel="bookworm"):
    """The release of a guest image's kernel (6.1.0-57-amd64), or None."""
    link = os.path.join(KERNELS[kernel], "vmlinuz")
    name = os.path.basename(os.path.realpath(link))
    return name[len("vmlinuz-"):] if name.startswith("vmlinuz-") else None
QEMU = os.path.join(TOP, "build/qemu/qemu-system-x86_64")


def cpio_with(files):
    """A gzipped newc cpio holding {path: (mode, bytes)}."""
    out = io.BytesIO()

    def entry(name, mode, data, ino):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        out.write(hdr.encode() + name_b)
        out.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))

    for i, (name, (mode, data)) in enumerate(sorted(files.items())):
        entry(name, mode, data, i + 1)
    entry("TRAILER!!!", 0, b"", 0)
    return gzip.compress(out.getvalue(), 1)


class Guest:
    def __init__(self, script, accel, device="pvperf", smp=2, mem=1024,
                 timeout=300, log_path=None, on_mark=None, extra=(), pre=(),
                 kernel="bookworm"):
        self.script = script
        self.guest = KERNELS[kernel]     # the image: kernel and initramfs
        self.accel = accel
        self.device = device
        self.smp = smp
        self.mem = mem
        self.timeout = timeout
        self.log_path = log_path
        self.on_mark = on_mark or (lambda g, name: None)
        self.extra = list(extra)
        self.pre = list(pre)    # before -device pvperf: a bus for it
        self.lines = []
        self.tmp = tempfile.TemporaryDirectory(prefix="pvperf-guest-")
        self.qmp_path = os.path.join(self.tmp.name, "qmp.sock")
        self.proc = None

    # -- QMP: a small client over the UNIX socket --------------------------
    def qmp(self, cmd, **args):
        q = pvperf_qmp.Qmp(self.qmp_path)
        try:
            return q.call(cmd, **args)
        finally:
            q.close()

    def vcpu_threads(self):
        return {c["cpu-index"]: c["thread-id"]
                for c in self.qmp("query-cpus-fast")}

    # -- running -----------------------------------------------------------
    def command(self, initrd, qmp_path=None, incoming=None):
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" \
            else ["-accel", "tcg,thread=multi", "-cpu", "max"]
        return [QEMU, "-machine", "pc"] + accel + [
            "-smp", str(self.smp), "-m", str(self.mem), "-nodefaults",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", os.path.join(self.guest, "vmlinuz"), "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 loglevel=4 tsc=reliable"
        ] + self.pre + [
            "-device", self.device,
            "-qmp", "unix:%s,server=on,wait=off" % (qmp_path or self.qmp_path)
        ] + self.extra + (["-incoming", incoming] if incoming else [])

    def run(self):
        """Boot, run the script; return True when the guest finished."""
        initrd = os.path.join(self.tmp.name, "initrd.gz")
        with open(os.path.join(self.guest, "initrd.cpio.gz"), "rb") as base, \
                open(initrd, "wb") as out:
            out.write(base.read())
            out.write(cpio_with({"test.sh": (0o100755,
                                             self.script.encode())}))
        self.initrd = initrd
        cmd = self.command(initrd)
        self.lines.append("# " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.q = queue.Queue()
        self.read_console(self.proc)
        deadline = time.monotonic() + self.timeout
        done = False
        while True:
            try:
                proc, line = self.q.get(
                    timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.lines.append("# TIMEOUT after %d s" % self.timeout)
                break
            if line is None:
                if proc is self.proc:
                    break
                continue        # a migration source that quit
            self.lines.append(line)
            if line.startswith("@@ MARK "):
                self.on_mark(self, line[len("@@ MARK "):].strip())
            if line.startswith("@@ guest done"):
                done = True
            if time.monotonic() > deadline:
                self.lines.append("# TIMEOUT after %d s" % self.timeout)
                break
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10 if done else 0.1)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log_path:
            with open(self.log_path, "w") as f:
                f.write("\n".join(self.lines) + "\n")
        return done

    def read_console(self, proc):
        """Feed @proc's console lines to the run loop."""
        def reader():
            for raw in proc.stdout:
                self.q.put((proc, raw.decode(errors="replace")
                            .rstrip("\r\n")))
            self.q.put((proc, None))
        threading.Thread(target=reader, daemon=True).start()

    def migrate(self, timeout=300):
        """Live-migrate the running guest to a second QEMU on this host,
        over a UNIX socket; the guest's console goes on from there, and
        qmp() talks to it. Returns the source's last query-migrate."""
        n = getattr(self, "migrations", 0) + 1
        self.migrations = n
        sock = os.path.join(self.tmp.name, "mig%d.sock" % n)
        qmp_path = os.path.join(self.tmp.name, "qmp-dst%d.sock" % n)
        cmd = self.command(self.initrd, qmp_path, "unix:" + sock)
        self.lines.append("# " + " ".join(cmd))
        dst = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
        self.read_console(dst)
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.qmp("migrate", uri="unix:" + sock)
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled") \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if info.get("status") != "completed":
            dst.kill()
            dst.wait()
            return info
        src = self.proc
        self.proc, self.qmp_path = dst, qmp_path
        src.kill()
        src.wait()
        return info

    def output(self):
        return "\n".join(self.lines)

    def section(self, name):
        """Lines between '@@ BEGIN name' and '@@ END name'."""
        out, inside = [], False
        for line in self.lines:
            if line == "@@ BEGIN " + name:
                inside = True
            elif inside and line.split(" rc=")[0] == "@@ END " + name:
                return out, line.split("rc=")[-1] if "rc=" in line else None
            elif inside:
                out.append(line)
        return out, None


def kvm_boots_linux(verbose=True):
    """Does /dev/kvm boot this guest? Probed once per host, cached."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    key = "%s %s" % (os.uname().release,
                     os.path.realpath(os.path.join(GUEST, "vmlinuz")))
    cache = os.path.join(GUEST, "kvm-probe")
    try:
        with open(cache) as f:
            cached_key, verdict = f.read().rsplit("\n", 1)[0].split("|")
        if cached_key == key:
            return verdict == "yes", "cached probe (%s)" % cache
    except (OSError, ValueError):
        pass
    if verbose:
        print("# probing whether KVM boots the guest (once per host)...",
              file=sys.stderr)
    g = Guest("echo '@@ kvm boots'\n", "kvm", timeout=40)
    ok = g.run() and "@@ kvm boots" in g.output()
    with open(cache, "w") as f:
        f.write("%s|%s\n" % (key, "yes" if ok else "no"))
    return ok, "probe: the guest %s under KVM" % (
        "booted" if ok else "did not boot in 40 s")


def choose_accel(want="auto"):
    if want in ("kvm", "tcg"):
        return want, "requested"
    ok, why = kvm_boots_linux()
    if ok:
        return "kvm", why
    extra = ""
    if os.path.exists("/sys/module/kvm_pvm"):
        extra = "; /dev/kvm is kvm_pvm (nested, paravirtual)"
    return "tcg", why + extra
