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
# The library is built static (--disable-shared): libtool's wrapper scripts
# would set LD_LIBRARY_PATH to a build directory and hide the sysroot's.
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

# aarch64 programs run through qemu-user registered with binfmt_misc (as
# Debian's qemu-user-binfmt would), not only as a prefix on the command
# line: Criterion re-executes its own binary for every test, and the
# kernel can exec an aarch64 file only through binfmt_misc.
binfmt=/proc/sys/fs/binfmt_misc
register_qemu_aarch64() {
    [ -e "$binfmt/qemu-aarch64" ] && return 0
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if [ ! -e "$binfmt/register" ]; then
        $sudo mount -t binfmt_misc binfmt_misc "$binfmt" ||
            { echo "cross: cannot mount binfmt_misc (needs root)" >&2; return 1; }
    fi
    # The ELF header of an aarch64 executable or shared object (qemu's own
    # qemu-aarch64.conf), handed to /usr/bin/qemu-aarch64.
    printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' |
        $sudo tee "$binfmt/register" >/dev/null ||
        { echo "cross: cannot register qemu-aarch64 with binfmt_misc" >&2; return 1; }
    echo "== registered /usr/bin/qemu-aarch64 with binfmt_misc"
}

run_arch() {   # run_arch ARCH
    local arch=$1 triplet debarch emulated stress_divisor deadline_scale no_binfmt=
    case "$arch" in
        aarch64) triplet=aarch64-linux-gnu; debarch=arm64
                 command -v qemu-aarch64 >/dev/null || { echo "cross: qemu-aarch64 missing (apt-get install qemu-user)" >&2; return 1; }
                 # Without binfmt_misc (an unprivileged container) the build
                 # still runs and the missing test run is said, not hidden.
                 register_qemu_aarch64 || no_binfmt=1
                 emulated=qemu-user; stress_divisor=8; deadline_scale=6 ;;
        i386)    triplet=i686-linux-gnu; debarch=i386
                 [ -e /lib/ld-linux.so.2 ] || { echo "cross: /lib/ld-linux.so.2 missing (apt-get install libc6:i386)" >&2; return 1; }
                 emulated=; stress_divisor=1; deadline_scale=2 ;;
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

    if [ -n "$no_binfmt" ]; then
        echo "$arch: built; tests NOT run: qemu-aarch64 could not be registered with binfmt_misc"
        return 0
    fi
    echo "== $arch: make check (log: ${dir##*/}/check.log)"
    # The target's libraries: LD_LIBRARY_PATH for the target's loader (the
    # host's skips them, they are of another class or machine), and for
    # qemu the prefix its guest opens /lib/ld-linux-aarch64.so.1 under.
    # MMAPPER_EMULATED tells the few tests that read the kernel's own view
    # (/proc/self/maps, which qemu-user rewrites) where they run.
    # test_protocol reads /proc/self/task/TID/syscall, the host's view.
    local host_futex
    host_futex=$(printf '#include <sys/syscall.h>\nSYS_futex\n' | cpp -P - | tail -n 1)
    if ! LD_LIBRARY_PATH="$libs" QEMU_LD_PREFIX="$sysroot" MMAPPER_EMULATED=$emulated \
         MMAPPER_HOST_SYS_FUTEX=$host_futex \
         MMAPPER_STRESS_DIVISOR=$stress_divisor \
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
