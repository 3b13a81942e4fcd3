#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fetch Debian trixie's QEMU source, apply patches/, link our files in, and
# build qemu-system-x86_64 plus the pvperf qtest. Everything big lives in
# $PVPERF_CACHE (default /var/cache/pvperf), outside the clone, so that a
# second build, or a build from another clone, is incremental:
#
#   $PVPERF_CACHE/src/qemu-<version>/   pristine source (apt-get source)
#   $PVPERF_CACHE/qemu-tree/            patched copy with our files linked in
#   $PVPERF_CACHE/qemu-build/           the build directory (build/qemu)
#   $PVPERF_CACHE/ccache/               compiler cache
#
# Usage: build-qemu.sh [ninja targets...]
#   QEMU_SRC=/path/to/qemu-10.0.x  build against that source instead
#   PVPERF_ASAN=1                  AddressSanitizer+UBSan build in qemu-build-asan
#   PVPERF_FUZZ=1                  libFuzzer (clang, ASan, UBSan) build of
#                                  qemu-fuzz-x86_64 in qemu-build-fuzz
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PVPERF_CACHE:-/var/cache/pvperf}
log() { printf 'build-qemu: %s\n' "$*" >&2; }
die() { printf 'build-qemu: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$cache/src" "$cache/ccache"
export CCACHE_DIR="$cache/ccache"
ccache -M 5G >/dev/null 2>&1 || true

# 1. Pristine source: the version trixie has now, unless QEMU_SRC is given.
if [ -n "${QEMU_SRC:-}" ]; then
    pristine=$(cd "$QEMU_SRC" && pwd)
    version=$(cat "$pristine/VERSION")
else
    full=$(apt-cache showsrc qemu 2>/dev/null |
           awk '/^Package: qemu$/ {p=1} p && !v && /^Version:/ {v=$2} END {print v}')
    [ -n "$full" ] || die "no source package for qemu: run scripts/setup.sh (deb-src trixie)"
    upstream=${full#*:}; upstream=${upstream%-*}
    pristine="$cache/src/qemu-$upstream"
    if [ ! -f "$pristine/VERSION" ]; then
        log "fetching qemu $full source (apt-get source)"
        (cd "$cache/src" && apt-get source -qq "qemu=$full" >/dev/null 2>&1) ||
            die "apt-get source qemu=$full failed"
    fi
    version=$(cat "$pristine/VERSION")
fi
case "$version" in
    10.0.*) ;;
    *) die "QEMU $version at $pristine: pvperf's patches target QEMU 10.0.x" ;;
esac

# 2. Patched tree, made again when the source or the patch series changes.
tree="$cache/qemu-tree"
stamp="$pristine $(cat "$top"/patches/*.patch | sha256sum | cut -c1-16)"
if [ "$(cat "$tree/.pvperf-stamp" 2>/dev/null)" != "$stamp" ]; then
    log "preparing patched tree for QEMU $version"
    rm -rf "$tree.new"
    cp -a "$pristine" "$tree.new"
    for p in "$top"/patches/*.patch; do
        if ! out=$(patch -d "$tree.new" -p1 --dry-run -s < "$p" 2>&1); then
            rm -rf "$tree.new"
            die "$(basename "$p") does not apply to QEMU $version ($pristine):
$out
The patch series must be rebased onto this QEMU release."
        fi
        patch -d "$tree.new" -p1 -s < "$p"
    done
    echo "$stamp" > "$tree.new/.pvperf-stamp"
    rm -rf "$tree"
    mv "$tree.new" "$tree"
fi

# 3. Our files, linked into their places in the tree (this clone wins).
ln -sfn "$top" "$tree/pvperf"
ln -sfn "$top/include/hw/misc/pvperf.h" "$tree/include/hw/misc/pvperf.h"
ln -sfn "$top/tests/qtest/pvperf-test.c" "$tree/tests/qtest/pvperf-test.c"
ln -sfn "$top/docs/pvperf.rst" "$tree/docs/specs/pvperf.rst"
ln -sfn "$top/qapi/pvperf.json" "$tree/qapi/pvperf.json"

# 4. Configure (once per option set) and build.
if [ "${PVPERF_ASAN:-0}" = 1 ]; then
    build="$cache/qemu-build-asan"
    extra=(--enable-asan --enable-ubsan)
elif [ "${PVPERF_FUZZ:-0}" = 1 ]; then
    # scripts/fuzz.sh: clang (this --cc/--cxx wins over the gcc one below),
    # libFuzzer, ASan, UBSan, and source-based coverage counters in
    # hw/misc/pvperf.c only (-fprofile-list; behind -Xclang, which ccache
    # caches, since it refuses -fprofile-list; keep the list's text fixed).
    build="$cache/qemu-build-fuzz"
    covlist="$cache/fuzz-coverage.list"
    echo 'src:*/hw/misc/pvperf.c' > "$covlist"
    cov="-fprofile-instr-generate -fcoverage-mapping -Xclang -fprofile-list=$covlist"
    extra=("--cc=ccache clang" "--cxx=ccache clang++" --enable-fuzzing
           --enable-asan --enable-ubsan "--extra-cflags=$cov")
    [ $# -gt 0 ] || set -- qemu-fuzz-x86_64
else
    build="$cache/qemu-build"
    extra=()
fi
opts=(--target-list=x86_64-softmmu --without-default-features --enable-kvm
      --enable-tcg --disable-docs --disable-install-blobs --enable-fdt=system
      --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu "--cc=ccache gcc"
      --python=/usr/bin/python3 "${extra[@]}")
if [ ! -f "$build/build.ninja" ] ||
   [ "$(cat "$build/.pvperf-configure" 2>/dev/null)" != "$tree ${opts[*]}" ]; then
    log "configuring $build"
    rm -rf "$build"
    mkdir -p "$build"
    (cd "$build" && "$tree/configure" "${opts[@]}" > configure.log 2>&1) ||
        { tail -30 "$build/configure.log" >&2; die "configure failed ($build/configure.log)"; }
    echo "$tree ${opts[*]}" > "$build/.pvperf-configure"
fi
# Run from the build tree, QEMU looks for firmware under $build/qemu-bundle
# (its --firmwarepath, relocated). Debian's source ships no firmware: point
# those paths at Debian's seabios, qemu-system-data and ipxe-qemu.
for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
    mkdir -p "$build/qemu-bundle${d%/*}"
    [ -e "$build/qemu-bundle$d" ] || ln -s "$d" "$build/qemu-bundle$d"
done
mkdir -p "$top/build"
if [ "${PVPERF_ASAN:-0}" = 1 ]; then
    ln -sfn "$build" "$top/build/qemu-asan"
elif [ "${PVPERF_FUZZ:-0}" = 1 ]; then
    ln -sfn "$build" "$top/build/qemu-fuzz"
else
    ln -sfn "$build" "$top/build/qemu"
fi

[ $# -gt 0 ] || set -- qemu-system-x86_64 tests/qtest/pvperf-test \
    tests/qtest/qmp-cmd-test
log "ninja $* in $build"
ninja -C "$build" "$@"
