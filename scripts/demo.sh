#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: QEMU with -device pvperf, its event catalog as a guest reads
# it through the device's registers (scripts/pvperf-catalog plays the guest).
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
