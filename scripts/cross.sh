#!/usr/bin/env bash
# Cross-build mmapper for aarch64 and i386 and run its whole `make check`
# there (issue 12):
#
#   scripts/cross.sh [aarch64] [i386]        (default: both)
#
# Needs (scripts/quickstart.sh cross installs them): gcc-aarch64-linux-gnu,
# gcc-i686-linux-gnu, qemu-user, libc6:i386, and the arm64 and i386
# architectures added to dpkg (for `apt-get download`).
#
# The target's liburcu and Criterion come from Debian's own arm64 and i386
# packages, unpacked into a sysroot under build-cross-ARCH/ rather than
# installed: libcriterion-dev:arm64 cannot be installed beside the amd64
# one (its dependencies pkg-config and libgit2-dev are not multi-arch), and
# a sysroot leaves the host's packages alone.
#
# How the tests run:
#   aarch64  under qemu-user (qemu-aarch64 -L SYSROOT), with the stress
#            programs' defaults divided by MMAPPER_STRESS_DIVISOR (8) and the
#            deadlines stretched 6 times;
#   i386     natively on the x86-64 kernel (a 32-bit process: 32-bit
#            pointers and size_t, the kernel's compat system calls), with the
#            full stress profile.
# The library is built static (--disable-shared): a libtool wrapper script
# cannot exec a foreign binary, a plain executable can be prefixed with the
# emulator (tests/deadline.sh, MMAPPER_TEST_RUNNER).
#
# Each architecture prints one line: its test counts and the time it took.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(aarch64 i386)

# What the sysroot needs: the two libraries' headers and link names, and
# everything liburcu-bp and libcriterion.so.3 need at run time (their
# dependency closure, from apt), so that the linker can check every needed
# library and the loader finds them.  (criterion.pc's private requirements
# would need a dozen more -dev packages: configure gets CRITERION_CFLAGS and
# CRITERION_LIBS instead.)
sysroot_dev=(liburcu-dev libcriterion-dev libboxfort-dev)
sysroot_runtime=(liburcu8 libcriterion3 libc6)

make_sysroot() {   # make_sysroot DEBARCH DIR
    local debarch=$1 dir=$2 stamp="$2/.packages" want
    want=$( { printf '%s\n' "${sysroot_dev[@]/%/:$debarch}"
              apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
                  --no-breaks --no-replaces --no-enhances "${sysroot_runtime[@]/%/:$debarch}" |
              grep -E "^[a-z0-9][^ ]*:$debarch\$"; } | sort -u | tr '\n' ' ')
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    rm -rf "$dir" "$dir.debs"
    mkdir -p "$dir" "$dir.debs"
    # shellcheck disable=SC2086 # $want is a list of package names
    (cd "$dir.debs" && apt-get download -q $want) \
        >"$dir.debs/download.log" 2>&1 ||
        { cat "$dir.debs/download.log" >&2
          echo "cross: apt-get download for $debarch failed (dpkg --add-architecture $debarch; apt-get update)" >&2
          return 1; }
    for deb in "$dir.debs"/*.deb; do
        dpkg-deb -x "$deb" "$dir"
    done
    rm -rf "$dir.debs"
    echo "$want" > "$stamp"
}

run_arch() {   # run_arch ARCH
    local arch=$1 triplet debarch runner stress_divisor deadline_scale
    case "$arch" in
        aarch64) triplet=aarch64-linux-gnu; debarch=arm64
                 command -v qemu-aarch64 >/dev/null || { echo "cross: qemu-aarch64 missing (apt-get install qemu-user)" >&2; return 1; }
                 stress_divisor=8; deadline_scale=6 ;;
        i386)    triplet=i686-linux-gnu; debarch=i386
                 [ -e /lib/ld-linux.so.2 ] || { echo "cross: /lib/ld-linux.so.2 missing (apt-get install libc6:i386)" >&2; return 1; }
                 stress_divisor=1; deadline_scale=2 ;;
        *) echo "cross: unknown architecture '$arch' (aarch64 or i386)" >&2; return 2 ;;
    esac
    command -v "$triplet-gcc" >/dev/null ||
        { echo "cross: $triplet-gcc missing (apt-get install gcc-$triplet)" >&2; return 1; }

    local dir="$root/build-cross-$arch" start=$SECONDS
    local sysroot="$dir/sysroot" multi
    multi=$(dpkg-architecture -a "$debarch" -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$triplet")
    mkdir -p "$dir"
    make_sysroot "$debarch" "$sysroot"
    local libs="$sysroot/usr/lib/$multi:$sysroot/lib/$multi"

    case "$arch" in
        aarch64) runner="qemu-aarch64 -L $sysroot -E LD_LIBRARY_PATH=$libs" ;;
        i386)    runner="env LD_LIBRARY_PATH=$libs" ;;
    esac

    echo "== $arch: configure and build (log: ${dir##*/}/build.log)"
    (cd "$dir" &&
     "$root/configure" -q --host="$triplet" --disable-shared --enable-werror \
        CC="$triplet-gcc" \
        PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$multi/pkgconfig:$sysroot/usr/share/pkgconfig" \
        PKG_CONFIG_SYSROOT_DIR="$sysroot" \
        CRITERION_CFLAGS="-isystem $sysroot/usr/include" CRITERION_LIBS=-lcriterion \
        CPPFLAGS="-isystem $sysroot/usr/include -isystem $sysroot/usr/include/$multi" \
        LDFLAGS="-L$sysroot/usr/lib/$multi -Wl,-rpath-link,$libs" &&
     make -s -j"$jobs") >"$dir/build.log" 2>&1 || { tail -n 60 "$dir/build.log"; return 1; }

    echo "== $arch: make check (log: ${dir##*/}/check.log)"
    if ! MMAPPER_TEST_RUNNER="$runner" MMAPPER_STRESS_DIVISOR=$stress_divisor \
         MMAPPER_CROSS_SYSROOT="$sysroot" \
         make -s -C "$dir" -j"$jobs" check DEADLINE_SCALE=$deadline_scale >"$dir/check.log" 2>&1; then
        grep -E '^(FAIL|ERROR|XPASS):' "$dir/check.log" || tail -n 30 "$dir/check.log"
        cat "$dir/test-suite.log" 2>/dev/null | head -n 200
        return 1
    fi
    count() { awk -v k="# $1:" '$1" "$2 == k {print $NF}' "$dir/test-suite.log"; }
    echo "$arch: $(count PASS) passed, $(count SKIP) skipped, $(count FAIL) failed in $((SECONDS - start)) s" \
         "($(file -b "$dir/tests/stress/stress_race" | cut -d, -f1-2))"
}

for a in "${arches[@]}"; do
    run_arch "$a"
done
