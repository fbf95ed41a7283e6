#!/bin/sh
# Compiles and runs the example block of README.md against the built library,
# with the same compiler and sanitizer flags as the build.
set -eu
src="${top_srcdir:-.}/README.md"
bld="${top_builddir:-.}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -n '/<!-- readme-example:start -->/,/<!-- readme-example:end -->/p' "$src" |
    sed '/^```/d; /<!--/d' > "$work/example.c"
[ -s "$work/example.c" ] || { echo "FAIL: no example block in README.md"; exit 1; }
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${SANITIZER_CFLAGS:-} -I"${top_srcdir:-.}/include" \
    "$work/example.c" -o "$work/example" -L"$bld/.libs" -lmmapper \
    -Wl,-rpath,"$PWD/$bld/.libs" ${URCU_LIBS:-} -pthread
out=$("$work/example")
echo "$out"
[ "$out" = "mapped: 1, next chunk: 0" ] || { echo "FAIL: unexpected output"; exit 1; }
echo "PASS: README example"
