#!/bin/sh
# Fails if libmmapper.so exports any defined symbol not named mmapper_*, or
# one without the symbol version MMAPPER_0.1.
lib="${top_builddir:-.}/.libs/libmmapper.so"
if [ ! -f "$lib" ]; then
    echo "SKIP: no shared library at $lib (static-only build)"
    exit 77
fi
all=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^MMAPPER_0\.1$')
# Every export carries the version node MMAPPER_0.1 (libmmapper.map).
unversioned=$(printf '%s\n' "$all" | grep -v '@@MMAPPER_0\.1$' | grep -v '^$')
if [ -n "$unversioned" ]; then
    echo "FAIL: exports without the version MMAPPER_0.1:"
    printf '  %s\n' $unversioned
    exit 1
fi
all=$(printf '%s\n' "$all" | sed 's/@@.*//')
bad=$(printf '%s\n' "$all" | grep -v '^mmapper_' | grep -v '^$')
count=$(printf '%s\n' "$all" | grep -c '^mmapper_')
if [ -n "$bad" ]; then
    echo "FAIL: libmmapper.so exports symbols outside the mmapper_ namespace:"
    printf '  %s\n' $bad
    exit 1
fi
if [ "$count" -lt 15 ]; then
    echo "FAIL: only $count mmapper_* symbols exported, expected the whole API"
    exit 1
fi
echo "PASS: $count symbols exported, all mmapper_*, all @@MMAPPER_0.1"
