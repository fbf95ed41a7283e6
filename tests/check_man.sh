#!/bin/sh
# The manual: every exported function has a section-3 page (its own, or a
# symbolic link to the page it shares, so that `man -l` renders each file),
# every link leads to a page, and the pages lint clean (mandoc -Tlint, or
# groff -ww -z without mandoc).
srcdir=${top_srcdir:-.}
lib="${top_builddir:-.}/.libs/libmmapper.so"
[ -f "$lib" ] || { echo "SKIP: no shared library at $lib"; exit 77; }
man="$srcdir/man"
status=0
for fn in $(nm -D --defined-only "$lib" | awk '$3 ~ /^mmapper_/ { sub(/@.*/, "", $3); print $3 }'); do
    [ -f "$man/$fn.3" ] || { echo "FAIL: $fn has no page (man/$fn.3)"; status=1; }
done
pages=
for f in "$man"/*.[137]; do
    if [ -L "$f" ]; then   # a function that shares its page: a symbolic link
        [ -f "$f" ] || { echo "FAIL: ${f##*/} links to nothing"; status=1; }
    else
        pages="$pages $f"
    fi
done
if command -v mandoc >/dev/null 2>&1; then
    out=$(mandoc -Tlint -W warning $pages 2>&1)
    linter="mandoc -Tlint"
else
    out=$(for p in $pages; do groff -man -ww -z "$p"; done 2>&1)
    linter="groff -ww -z"
fi
[ -z "$out" ] || { printf '%s\n' "$out"; echo "FAIL: $linter"; status=1; }
[ $status -eq 0 ] && echo "PASS: $(echo $pages | wc -w) pages lint clean ($linter); every exported function has one"
exit $status
