#!/usr/bin/env bash
# One-command set-up for a fresh Debian 12 machine (root, or a user with sudo):
# installs what is missing, builds, and then
#   bench  runs `make bench` (the quick profile, under 2 minutes on 2 cores);
#   check  runs the whole test suite: `make check` (gcc, with Redis and
#          CPython under mmapper-run), `make check-abi`, `make
#          check-model` (the spin model) and `make fuzz` for 60 s, then the
#          ThreadSanitizer pass (gcc), then AddressSanitizer+UBSan (clang),
#          then `make distcheck`, then the deb step;
#   deb    builds the Debian packages, checks them with lintian, installs
#          them, builds and runs the README example against them, removes
#          them (scripts/deb.sh);
#   cross  cross-builds for aarch64 and i386 and runs make check there
#          (scripts/cross.sh: aarch64 under qemu-user, i386 natively).
# check ends with the cross step too.
# Builds go to build/, build-tsan/, build-asan/ beside this script's repo.
# Warnings are errors in every build.
set -euo pipefail

mode=${1:-check}
case "$mode" in bench|check|deb|cross) ;; *) echo "usage: $0 bench|check|deb|cross" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

packages=(build-essential autoconf automake libtool pkg-config autoconf-archive
          liburcu-dev libcriterion-dev libjemalloc-dev valgrind clang gnuplot-nox
          gdb python3 redis-server redis-tools libpython3.11-testsuite mandoc
          abigail-tools debhelper lintian dpkg-dev spin)
# The cross step: compilers, qemu-user, the i386 loader (the arm64 and i386
# libraries themselves are unpacked into a sysroot by scripts/cross.sh).
if [ "$mode" = check ] || [ "$mode" = cross ]; then
    packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-i686-linux-gnu
               libc6-dev-i386-cross qemu-user libc6:i386 file)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
            echo "quickstart: not root and no sudo: install these first: apt-get install ${missing[*]}" >&2
            exit 1
        fi
        sudo="sudo -n"
    fi
    # apt and dpkg talk a lot: their output goes to a log, shown on failure.
    log=$root/build-apt.log
    echo "== installing: ${missing[*]} (log: ${log##*/})"
    foreign=()
    for a in arm64 i386; do
        dpkg --print-foreign-architectures | grep -qx "$a" || foreign+=("$a")
    done
    if ! { for a in "${foreign[@]}"; do $sudo dpkg --add-architecture "$a"; done &&
           $sudo apt-get update -qq &&
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
               "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "quickstart: installing failed (above, and in $log)" >&2
        exit 1
    fi
fi

echo "== autogen"
./autogen.sh >/dev/null 2>&1 || ./autogen.sh

build() {   # build DIR [configure args...]
    local dir=$1; shift
    echo "== configure $dir: $*"
    mkdir -p "$dir"
    (cd "$dir" && "$root/configure" -q --enable-werror "$@" && make -s -j"$jobs") \
        >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; exit 1; }
}

if [ "$mode" = deb ]; then
    bash scripts/deb.sh
    exit 0
fi

if [ "$mode" = cross ]; then
    bash scripts/cross.sh
    exit 0
fi

if [ "$mode" = bench ]; then
    build build
    make -s -C build bench
    exit 0
fi

# make check in DIR: its output goes to DIR/check.log; one line with the
# counts, or on failure the failing tests' logs (test-suite.log).
check() {   # check DIR LABEL
    local dir=$1 label=$2 count
    echo "== make check ($label)"
    if ! make -s -C "$dir" -j"$jobs" check >"$dir/check.log" 2>&1; then
        grep -E '^(FAIL|ERROR|XPASS):' "$dir/check.log" || tail -n 30 "$dir/check.log"
        cat "$dir/test-suite.log" 2>/dev/null
        exit 1
    fi
    count() { awk -v k="# $1:" '$1" "$2 == k {print $NF}' "$dir/test-suite.log"; }
    echo "   $(count PASS) passed, $(count SKIP) skipped, $(count FAIL) failed (log: $dir/check.log)"
}

build build
check build gcc
echo "== make check-abi"
make -s -C build check-abi | tail -n 1
echo "== make check-model (spin; log: build/check-model.log)"
make -s -C build check-model >build/check-model.log 2>&1 || { cat build/check-model.log; exit 1; }
tail -n 1 build/check-model.log
echo "== make fuzz FUZZ_SECONDS=60 (libFuzzer; log: build/fuzz.log)"
make -s -C build fuzz FUZZ_SECONDS=60 >build/fuzz.log 2>&1 || { tail -n 60 build/fuzz.log; exit 1; }
tail -n 2 build/fuzz.log

build build-tsan --enable-sanitizer=thread
check build-tsan ThreadSanitizer

build build-asan CC=clang --enable-sanitizer=address,undefined
check build-asan "AddressSanitizer + UBSan, clang"

echo "== make distcheck"
# The real-program tests ran in the plain build above; distcheck repeats the
# rest, and installcheck runs mmapper-run from the installed prefix.
MMAPPER_REAL_TESTS=0 make -s -C build distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
    >build/distcheck.log 2>&1 || { tail -n 60 build/distcheck.log; exit 1; }

bash scripts/deb.sh

bash scripts/cross.sh

# One closing line over the five builds, from automake's test-suite.log files.
logs=()
for d in build build-tsan build-asan build-cross-aarch64 build-cross-i386; do
    [ -f "$d/test-suite.log" ] && logs+=("$d/test-suite.log")
done
total() { awk -v k="# $1:" '$1" "$2 == k || $1$2 == k {s += $NF} END {print s+0}' "${logs[@]}"; }
echo "== all checks passed (plain, TSan, ASan+UBSan, distcheck, deb, aarch64, i386)"
echo "tests: $(total PASS) passed, $(total FAIL) failed, $(total SKIP) skipped"
