# SPDX-License-Identifier: GPL-2.0-or-later
"""A small QMP client over a UNIX socket, for scripts/e2e-tests (through
pvperf_guest.py) and scripts/bench-query."""
import json
import socket
import time


class Qmp:
    def __init__(self, path, timeout=10):
        """Connect (retrying while QEMU creates the socket), negotiate."""
        deadline = time.monotonic() + timeout
        while True:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout)
            try:
                self.s.connect(path)
                # blocking from here on: a timeout makes every recv poll
                self.s.settimeout(None)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())                 # greeting
        self.call("qmp_capabilities")

    def call_raw(self, cmd, **args):
        """Send; return the response line unparsed (events skipped)."""
        req = {"execute": cmd}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("QMP %s: QEMU closed the socket" % cmd)
            # a response is {"return": ...} or {"error": ...}; anything
            # else is an event ({"timestamp": ..., "event": ...})
            if line.startswith(('{"return"', '{"error"')):
                return line

    def call(self, cmd, **args):
        resp = json.loads(self.call_raw(cmd, **args))
        if "error" in resp:
            raise RuntimeError("QMP %s: %s" % (cmd, resp["error"]))
        return resp["return"]

    def close(self):
        self.s.close()


def command_deltas(before, after):
    """query-pvperf "stats" at two moments -> {command: how many ran in
    between}, only those that ran."""
    def counts(st):
        return {x["command"]: x["count"] for x in st["commands"]}
    a, b = counts(before), counts(after)
    return {k: n - a.get(k, 0) for k, n in b.items() if n - a.get(k, 0)}
