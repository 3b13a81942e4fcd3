#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build guest-driver/ with -Werror against the newest kernel headers the
# Debian archive offers (unstable, "sid"): its kbuild tools need sid's C
# library and compiler (Linux 7.x with gcc 16 today), so the build runs
# in a minimal sid chroot made with debootstrap under the cache (about
# 600 MB, 40 s; reused, and brought up to date, on later runs). Prints
# the kernel version it built against.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPERF_CACHE:-/var/cache/pvperf}
root="$cache/sid-root"
mirror=${PVPERF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
die() { printf 'driver-unstable-check: error: %s\n' "$*" >&2; exit 1; }
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/setup.sh)"

if [ ! -f "$root/.pvperf-ready" ]; then
    rm -rf "$root"
    debootstrap --variant=minbase --include=make,linux-headers-amd64 \
        sid "$root" "$mirror" > "$cache/sid-debootstrap.log" 2>&1 ||
        { tail -20 "$cache/sid-debootstrap.log" >&2; die "debootstrap of sid failed"; }
    touch "$root/.pvperf-ready"
else
    # the newest headers unstable has now
    chroot "$root" apt-get -qq update > /dev/null 2>&1 &&
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y \
        install linux-headers-amd64 > /dev/null 2>&1 ||
        printf 'driver-unstable-check: could not update the sid chroot; building against what it has\n' >&2
fi
kdir=$(cd "$root" && ls -d usr/src/linux-headers-*-amd64 | sort -V | tail -1)
[ -n "$kdir" ] || die "no linux-headers in the sid chroot"
ver=${kdir#usr/src/linux-headers-}

rm -rf "$root/build"
mkdir -p "$root/build/include/hw/misc"
cp "$top/guest-driver/pvperf.c" "$top/guest-driver/Makefile" "$root/build/"
cp "$top/include/hw/misc/pvperf.h" "$root/build/include/hw/misc/"
# objtool reads /proc/self; nothing else of the host goes in
mount -t proc proc "$root/proc"
trap 'umount "$root/proc"' EXIT
chroot "$root" make -s -C "/$kdir" M=/build \
    ccflags-y="-I/build/include -Werror" modules
test -f "$root/build/pvperf.ko"
echo "guest driver builds with -Werror against Linux $ver (Debian unstable)"
