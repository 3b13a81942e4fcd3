#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: QEMU with -device pvperf; its event catalog and counts as a
# guest driver reads them through the registers (scripts/pvperf-catalog
# plays the guest), then a real Linux guest running perf stat on pvperf
# events.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
qemu="$top/build/qemu/qemu-system-x86_64"

echo "== $qemu -device help (pvperf)"
"$qemu" -device help | grep -A0 '"pvperf"'
echo
echo "== $qemu -device pvperf,help"
"$qemu" -device pvperf,help | grep -v '^ *\(addr\|failover_pair_id\|multifunction\|romfile\|romsize\|rombar\|x-\|busnr\|acpi-index\|sriov\)'
echo
echo "== the device as the guest sees it (default catalog), then counting"
echo "== host events of vCPU 0 from the guest's side for 1 s"
"$top/scripts/pvperf-catalog" --qemu "$qemu" --count 1
echo
echo "== the end-to-end guest: Debian's kernel, busybox, perf, pvperf.ko"
"$top/scripts/guest-image.sh"
echo
echo "== booting it with -device pvperf (2 vCPUs) and running perf inside"
"$top/scripts/guest-run"
