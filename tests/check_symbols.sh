#!/bin/sh
# Fails if libmmapper.so exports any defined symbol not named mmapper_*.
lib="${top_builddir:-.}/.libs/libmmapper.so"
if [ ! -f "$lib" ]; then
    echo "SKIP: no shared library at $lib (static-only build)"
    exit 77
fi
all=$(nm -D --defined-only "$lib" | awk '{print $3}')
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
echo "PASS: $count symbols exported, all mmapper_*"
