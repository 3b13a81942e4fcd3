#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the end-to-end guest from Debian's packages only:
#   - linux-image-amd64's kernel, unpacked with dpkg -x (never installed)
#   - guest-driver/pvperf.ko, built against the matching linux-headers
#   - busybox-static, linux-perf and the libraries ldd names
# into $PVPERF_CACHE/guest/{vmlinuz,initrd.cpio.gz}. Idempotent.
#
# usage: guest-image.sh [bookworm|backports]
#   bookworm   Debian 12's kernel (6.1), into $PVPERF_CACHE/guest (default)
#   backports  bookworm-backports' kernel (6.12), into .../guest-backports;
#              the module is built against the headers that
#              scripts/driver-build-check.sh unpacks (dpkg -x)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPERF_CACHE:-/var/cache/pvperf}
flavour=${1:-bookworm}
log() { printf 'guest-image: %s\n' "$*" >&2; }
die() { printf 'guest-image: error: %s\n' "$*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

case "$flavour" in
bookworm) out="$cache/guest"; suite=() ;;
backports) out="$cache/guest-backports"; suite=(-t bookworm-backports) ;;
*) die "unknown kernel '$flavour' (bookworm or backports)" ;;
esac
# The guest kernel ABI that linux-image-amd64 points at, e.g. 6.1.0-56-amd64
abi=$(apt-cache depends "${suite[@]}" linux-image-amd64 2>/dev/null |
      sed -n '0,/.*Depends: linux-image-\(.*-amd64\)$/s//\1/p')
[ -n "$abi" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
mkdir -p "$out/debs"

# 1. Kernel, unpacked only.
if [ ! -f "$out/kernel-$abi/boot/vmlinuz-$abi" ]; then
    log "fetching linux-image-$abi (dpkg -x, not installed)"
    (cd "$out/debs" && apt-get download -qq "${suite[@]}" "linux-image-$abi" >/dev/null 2>&1) ||
        die "apt-get download linux-image-$abi failed"
    rm -rf "$out/kernel-$abi"
    dpkg -x "$out"/debs/linux-image-"$abi"_*.deb "$out/kernel-$abi"
fi
ln -sfn "kernel-$abi/boot/vmlinuz-$abi" "$out/vmlinuz"

# 2. Headers on the host (files in /usr/src only) and the module.
if [ "$flavour" = backports ]; then
    # unpacked under the cache, never installed: its kbuild is 6.12's
    "$top/scripts/driver-build-check.sh" >/dev/null
    kdir="$cache/kheaders-${abi%-amd64}/usr/src/linux-headers-$abi"
    [ -f "$kdir/Makefile" ] || die "no headers for $abi in $kdir"
else
    kdir="/usr/src/linux-headers-$abi"
fi
if [ ! -f "$kdir/Makefile" ]; then
    log "installing linux-headers-$abi to build the guest driver"
    apt-get install -y -qq --no-install-recommends "linux-headers-$abi" >/dev/null
fi
mkdir -p "$out/driver"
cp "$top"/guest-driver/pvperf.c "$top"/guest-driver/Makefile "$out/driver/"
mkdir -p "$out/include/hw/misc"
cp "$top/include/hw/misc/pvperf.h" "$out/include/hw/misc/"
log "building pvperf.ko for $abi"
make -s -C "$kdir" M="$out/driver" ccflags-y="-I$out/include -Werror" modules \
    > "$out/driver/build.log" 2>&1 ||
    { cat "$out/driver/build.log" >&2; die "guest driver build failed"; }
grep -E 'warning|error' "$out/driver/build.log" | grep -v 'Skipping BTF' >&2 || true

# 3. initramfs: busybox, perf and its libraries, the module, /init.
for p in busybox-static linux-perf trinity; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
root="$out/rootfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,root,etc,lib/modules,usr/bin}
cp /bin/busybox "$root/bin/busybox"
cp /usr/bin/perf "$root/usr/bin/perf"
# the syscall fuzzer of the driver's checks (e2e/linux-*/fuzz)
cp /usr/bin/trinity "$root/usr/bin/trinity"
for lib in $(ldd /usr/bin/perf /usr/bin/trinity | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cp "$out/driver/pvperf.ko" "$root/lib/modules/pvperf.ko"
# ... and where modprobe finds it by its PCI alias (modules.alias), as on a
# distribution guest with the module installed (DKMS: updates/dkms)
mkdir -p "$root/lib/modules/$abi/updates/dkms"
cp "$out/driver/pvperf.ko" "$root/lib/modules/$abi/updates/dkms/pvperf.ko"
depmod -b "$root" "$abi" 2>/dev/null
# the sampling tests' workload: static, with symbols, and -O0 so that
# every function (leaves too: GCC 12 omits their frame at -O1 whatever
# the flags) has the frame pointer perf record -g walks
gcc -static -O0 -fno-omit-frame-pointer -g -o "$root/usr/bin/pvperf-burn" \
    "$top/tests/guest/burn.c"
# the exits-per-switch workload: sleeps and wakes, never forks
gcc -static -O2 -o "$root/usr/bin/pvperf-sleep" "$top/tests/guest/sleep.c"
# the fuzzer aimed at the pvperf PMU (trinity's calls rarely reach it)
gcc -static -O2 -o "$root/usr/bin/pvperf-fuzz" "$top/tests/guest/perf-fuzz.c"
# reads of a sampling event from another CPU while it overflows
gcc -static -O2 -o "$root/usr/bin/pvperf-read-monotonic" \
    "$top/tests/guest/read-monotonic.c"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "@@ guest up: Linux $(uname -r), $(nproc) CPUs"
if [ -f /test.sh ]; then
    sh /test.sh
else
    insmod /lib/modules/pvperf.ko && echo "@@ pvperf loaded" && sh
fi
echo "@@ guest done"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.cpio.gz.new"
mv "$out/initrd.cpio.gz.new" "$out/initrd.cpio.gz"
log "guest ready: $out/vmlinuz ($abi), $out/initrd.cpio.gz ($(du -h "$out/initrd.cpio.gz" | cut -f1))"
