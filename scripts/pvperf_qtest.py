# SPDX-License-Identifier: GPL-2.0-or-later
"""Play a pvperf guest driver over QEMU's qtest protocol (-qtest stdio):
PCI config space through 0xcf8/0xcfc, BAR 0 registers with readl/writel.
Used by scripts/pvperf-catalog and scripts/bench-query."""
import os
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(TOP, "include/hw/misc/pvperf.h")
DEVFN_SLOT = 4
BAR_ADDR = 0xE0000000


def abi_enum(prefix):
    """{NAME: value} of the header's enum members PVPERF_<prefix>_NAME,
    so that these scripts and the ABI cannot drift apart."""
    out = {}
    with open(HEADER) as f:
        for line in f:
            parts = line.replace(",", " ").split()
            if len(parts) >= 3 and parts[0].startswith(prefix) \
                    and parts[1] == "=":
                out[parts[0][len(prefix):]] = int(parts[2], 0)
    return out


REG = abi_enum("PVPERF_REG_")
CMD = abi_enum("PVPERF_CMD_")
STATUS = {v: k for k, v in abi_enum("PVPERF_ST_").items()}


class QTest:
    def __init__(self, qemu, device_args, accel_args):
        dev = "pvperf,addr=%02x.0" % DEVFN_SLOT
        if device_args:
            dev += "," + device_args
        self.proc = subprocess.Popen(
            [qemu, "-machine", "pc"] + accel_args +
            ["-qtest", "stdio", "-qtest-log", "/dev/null",
             "-display", "none", "-nodefaults", "-device", dev],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        while True:
            reply = self.proc.stdout.readline()
            if not reply:
                err = self.proc.stderr.read()
                sys.exit("qtest: QEMU exited: " + err.strip())
            if reply.startswith("OK") or reply.startswith("FAIL"):
                break
        if reply.startswith("FAIL"):
            sys.exit("qtest: %s -> %s" % (line, reply))
        parts = reply.split()
        if len(parts) > 1 and line.startswith("read "):
            return bytes.fromhex(parts[1][2:])
        return int(parts[1], 16) if len(parts) > 1 else None

    def cfg_addr(self, reg):
        return 0x80000000 | (DEVFN_SLOT << 11) | (reg & 0xFC)

    def cfg_readl(self, reg):
        self.cmd("outl 0xcf8 0x%x" % self.cfg_addr(reg))
        return self.cmd("inl 0xcfc")

    def cfg_writel(self, reg, val):
        self.cmd("outl 0xcf8 0x%x" % self.cfg_addr(reg))
        self.cmd("outl 0xcfc 0x%x" % val)

    def close(self):
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait()

    # BAR 0 registers by their ABI names (map_bar0 first)
    def rd(self, name, extra=0):
        return self.cmd("readl 0x%x" % (BAR_ADDR + REG[name] + extra))

    def wr(self, name, val):
        self.cmd("writel 0x%x 0x%x" % (BAR_ADDR + REG[name], val))

    def ring(self, cmd, what=""):
        """Run a command; exit with its status name if it fails."""
        self.wr("DOORBELL", CMD[cmd])
        st = self.rd("STATUS")
        if st:
            sys.exit("qtest: %s%s failed: %s (host errno %d)"
                     % (cmd, what, STATUS.get(st, st), self.rd("HOST_ERRNO")))

    def map_bar0(self):
        """Put BAR 0 at BAR_ADDR, memory decoding and bus mastering on."""
        self.cfg_writel(0x10, BAR_ADDR)
        self.cfg_writel(0x04, self.cfg_readl(0x04) | 0x6)
