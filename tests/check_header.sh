#!/bin/sh
# The public header in every language mode a consumer may use: warning-free
# with -Wall -Wextra -pedantic -Werror as C99, C11 and C17 and as C++11 and
# C++17, with each of gcc/g++ and clang/clang++ that is installed; and its
# version macros say the package's version.
srcdir=${top_srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/use.c" <<'SRC'
#include <mmapper.h>
int main(void)
{
    mmapper_t *m = 0;
    struct mmapper_stats s;
    mmapper_get_stats(m, &s);
    return (int)mmapper_granularity(m) + (mmapper_is_mapped(m, 0) ? 1 : 0) +
           MMAPPER_VERSION_MAJOR * 0;
}
SRC
cp "$tmp/use.c" "$tmp/use.cc"
status=0; tried=0
for cc in gcc clang; do
    command -v $cc >/dev/null 2>&1 || continue
    for std in c99 c11 c17; do
        tried=$((tried + 1))
        $cc -std=$std -Wall -Wextra -pedantic -Werror -I"$srcdir/include" -c "$tmp/use.c" \
            -o "$tmp/o" 2>"$tmp/err" || { echo "FAIL: $cc -std=$std"; cat "$tmp/err"; status=1; }
    done
done
for cxx in g++ clang++; do
    command -v $cxx >/dev/null 2>&1 || continue
    for std in c++11 c++17; do
        tried=$((tried + 1))
        $cxx -std=$std -Wall -Wextra -pedantic -Werror -I"$srcdir/include" -c "$tmp/use.cc" \
            -o "$tmp/o" 2>"$tmp/err" || { echo "FAIL: $cxx -std=$std"; cat "$tmp/err"; status=1; }
    done
done
v=$(awk '/^#define MMAPPER_VERSION_(MAJOR|MINOR|PATCH)/ { printf "%s%s", sep, $3; sep = "." }' \
    "$srcdir/include/mmapper.h")
want=${PACKAGE_VERSION:-$(sed -n 's/^AC_INIT(\[mmapper\], \[\([^]]*\)\].*/\1/p' "$srcdir/configure.ac")}
[ "$v" = "$want" ] || { echo "FAIL: header version $v, package version $want"; status=1; }
[ $status -eq 0 ] && echo "PASS: header clean in $tried compiler/language modes; version $v"
exit $status
