#!/usr/bin/env bash
# `quickstart.sh deb`: build the Debian packages from this tree, check them
# with lintian (no error, no warning), install them, build the README's
# example against the installed library with pkg-config (shared and
# --static) and run it, then remove the packages again.  One line per step;
# the long outputs go to build-deb/*.log, shown on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/build-deb
rm -rf "$out"
mkdir -p "$out/src"
sudo=; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
fail() { echo "deb: $1 failed; see $2" >&2; tail -n 40 "$2" >&2; exit 1; }

echo "== deb: dpkg-buildpackage (log: build-deb/build.log)"
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T - | tar -xf - -C "$out/src"
else
    tar --exclude='./build*' -cf - . | tar -xf - -C "$out/src"
fi
# The suite ran in the source tree already (quickstart check): not again.
(cd "$out/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
    >"$out/build.log" 2>&1 || fail "dpkg-buildpackage" "$out/build.log"
ls "$out"/*.deb | sed 's|.*/|   built |'

echo "== deb: lintian (log: build-deb/lintian.log)"
lintian --fail-on error,warning "$out"/*.changes >"$out/lintian.log" 2>&1 ||
    fail "lintian" "$out/lintian.log"
grep -v '^running with root' "$out/lintian.log" | sed 's/^/   /' || true

echo "== deb: install, build the README example with pkg-config, run it"
debs=$(ls "$out"/*.deb | grep -v dbgsym)
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $debs >"$out/install.log" 2>&1 ||
    fail "installing the packages" "$out/install.log"
sed -n '/<!-- readme-example:start -->/,/<!-- readme-example:end -->/p' README.md |
    sed '/^```/d; /<!--/d' >"$out/example.c"
for mode in shared static; do
    flag=; [ $mode = static ] && flag=--static
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags mmapper) "$out/example.c" \
        -o "$out/example-$mode" $( [ $mode = static ] && echo -static-libgcc -Wl,-Bstatic ) \
        $(pkg-config $flag --libs mmapper) $( [ $mode = static ] && echo -Wl,-Bdynamic ) -pthread \
        >"$out/cc-$mode.log" 2>&1 || fail "compiling the example ($mode)" "$out/cc-$mode.log"
    got=$("$out/example-$mode")
    [ "$got" = "mapped: 1, next chunk: 0" ] || { echo "deb: the $mode example printed: $got" >&2; exit 1; }
    echo "   $mode: $(ldd "$out/example-$mode" | grep -c mmapper) libmmapper in ldd, prints: $got"
done
echo "mmapper-run: $(MMAPPER_STATS=1 mmapper-run cat /dev/null 2>&1 | cut -c1-60)..."
$sudo env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq libmmapper0 libmmapper-dev mmapper-run \
    >"$out/purge.log" 2>&1 || fail "removing the packages" "$out/purge.log"
echo "== deb: packages built, lintian clean, installed, used and removed"
