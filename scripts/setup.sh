#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Host setup for pvperf on Debian 12 (bookworm), as root. Idempotent: every
# step checks first, so a warm machine passes through in a second or two.
#
#  - deb-src for trixie (QEMU 10.0.x source), bookworm-backports (meson >= 1.5,
#    qemu-system-data)
#  - QEMU build dependencies, libpfm4-dev, ccache, firmware
#  - debugfs and tracefs mounted (libpfm4 resolves tracepoints via debugfs)
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    echo "setup: must run as root (apt-get, mount)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

SRCLIST=/etc/apt/sources.list.d/pvperf.sources
if [ ! -f "$SRCLIST" ]; then
    log "adding deb-src trixie and bookworm-backports to $SRCLIST"
    cat > "$SRCLIST" <<'SRC'
# Added by pvperf scripts/setup.sh
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    rm -f /var/lib/apt/pvperf-updated
fi

# Packages from bookworm itself.
PKGS="build-essential ccache ninja-build pkg-config python3 python3-venv
 libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev flex bison
 libpfm4-dev dpkg-dev xz-utils seabios ipxe-qemu cpio gzip busybox-static
 linux-perf kmod dwarves dkms libvirt-clients debootstrap trinity"
# (trinity: the system call fuzzer the guest image carries, for the
# driver's e2e/linux-*/fuzz checks and make fuzz-guest.
# dwarves: pahole, which Linux 6.12's module build runs for BTF; see
# scripts/driver-build-check.sh. dkms: scripts/driver-dkms-check.sh.
# libvirt-clients: virt-xml-validate for README's libvirt domain.
# debootstrap: the sid chroot of scripts/driver-unstable-check.sh.)
# Packages wanted from bookworm-backports.
BPO_PKGS="meson qemu-system-data"

missing=""
for p in $PKGS $BPO_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
meson_ok=0
if command -v meson >/dev/null &&
   dpkg --compare-versions "$(meson --version)" ge 1.5; then
    meson_ok=1
fi

if [ -n "$missing" ] || [ $meson_ok = 0 ] ||
   ! ls /var/lib/apt/lists/*trixie*Sources* >/dev/null 2>&1; then
    log "apt-get update"
    apt-get update -qq
    touch /var/lib/apt/pvperf-updated
fi
if [ -n "$missing" ] || [ $meson_ok = 0 ]; then
    log "installing:$missing"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends -t bookworm-backports \
        $BPO_PKGS >/dev/null
fi
if ! dpkg --compare-versions "$(meson --version)" ge 1.5; then
    echo "setup: meson >= 1.5 needed, have $(meson --version)" >&2
    exit 1
fi

# libpfm4 finds tracepoints (kvm:kvm_exit, sched:...) only under debugfs.
if ! mountpoint -q /sys/kernel/debug; then
    log "mounting debugfs on /sys/kernel/debug"
    mount -t debugfs debugfs /sys/kernel/debug || log "debugfs mount failed"
fi
if [ -d /sys/kernel/tracing ] && ! mountpoint -q /sys/kernel/tracing; then
    log "mounting tracefs on /sys/kernel/tracing"
    mount -t tracefs tracefs /sys/kernel/tracing || log "tracefs mount failed"
fi
log "host ready"
