#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build guest-driver/ with -Werror against the newest kernel headers of
# bookworm-backports (6.12 today), unpacked with dpkg -x: nothing of that
# kernel is installed on the host. (The bookworm 6.1 build is part of
# scripts/guest-image.sh.) Prints the kernel version it built against.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPERF_CACHE:-/var/cache/pvperf}
die() { printf 'driver-build-check: error: %s\n' "$*" >&2; exit 1; }

pkg=$(apt-cache depends -t bookworm-backports linux-headers-amd64 2>/dev/null |
      sed -n '0,/.*Depends: \(linux-headers-.*-amd64\)$/s//\1/p')
[ -n "$pkg" ] || die "no linux-headers-amd64 in bookworm-backports (scripts/setup.sh)"
ver=${pkg#linux-headers-}; ver=${ver%-amd64}
root="$cache/kheaders-$ver"
kdir="$root/usr/src/linux-headers-$ver-amd64"
if [ ! -f "$kdir/.pvperf-ready" ]; then
    rm -rf "$root"
    mkdir -p "$root/debs"
    (cd "$root/debs" && apt-get download -qq -t bookworm-backports \
        "linux-headers-$ver-amd64" "linux-headers-$ver-common" \
        "linux-kbuild-$ver" >/dev/null 2>&1) ||
        die "apt-get download of the $ver headers failed"
    for d in "$root"/debs/*.deb; do
        dpkg -x "$d" "$root"
    done
    # the arch Makefile includes the common one by its installed path
    sed -i "s|include /usr/src/|include $root/usr/src/|" "$kdir/Makefile"
    touch "$kdir/.pvperf-ready"
fi
work="$top/build/driver-$ver"
rm -rf "$work"
mkdir -p "$work"
cp "$top/guest-driver/pvperf.c" "$top/guest-driver/Makefile" "$work/"
make -s -C "$kdir" M="$work" ccflags-y="-I$top/include -Werror" modules
test -f "$work/pvperf.ko"
echo "guest driver builds against Linux $ver"
