#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the guest driver the way a Debian or Ubuntu guest installs it:
# with DKMS (guest-driver/dkms.conf, the sources make -C guest-driver
# dkms-source lays out), against the headers of the guest kernel that
# scripts/guest-image.sh boots. A private DKMS tree under build/: nothing
# is added to the host's DKMS. Prints the module it built.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
die() { printf 'driver-dkms-check: error: %s\n' "$*" >&2; exit 1; }
command -v dkms >/dev/null || die "dkms is not installed (scripts/setup.sh)"

abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
      sed -n '0,/.*Depends: linux-image-\(.*-amd64\)$/s//\1/p')
[ -n "$abi" ] || die "cannot resolve linux-image-amd64"
[ -e "/lib/modules/$abi/build/Makefile" ] ||
    die "no headers for $abi in /lib/modules/$abi/build (scripts/guest-image.sh installs them)"
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/guest-driver/dkms.conf")
work="$top/build/dkms"
rm -rf "$work"
mkdir -p "$work/tree" "$work/src"
make -s -C "$top/guest-driver" dkms-source DESTDIR="$work/stage"
mv "$work/stage/usr/src/pvperf-$ver" "$work/src/"
dk() { dkms --dkmstree "$work/tree" --sourcetree "$work/src" "$@"; }
dk add -m pvperf -v "$ver" > "$work/dkms.log" 2>&1 &&
dk build -m pvperf -v "$ver" -k "$abi" >> "$work/dkms.log" 2>&1 ||
    { cat "$work/dkms.log" >&2; find "$work/tree" -name make.log -exec cat {} + >&2
      die "dkms build failed"; }
ko=$(find "$work/tree/pvperf/$ver/$abi" -name 'pvperf.ko*' | head -1)
[ -n "$ko" ] || die "dkms built no pvperf.ko"
modinfo -F alias "$ko" | grep -q '^pci:v' || die "$ko has no PCI alias"
echo "dkms built pvperf $ver for Linux $abi: ${ko#$top/}"
