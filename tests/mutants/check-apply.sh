#!/bin/sh
# Every mutant of `make check-mutants` still applies to src/ (the mutants
# keep up with the code they test), and each is listed for the tarball.
# Inside a mutant run the tree is mutated on purpose.
[ -z "${MMAPPER_MUTANT_RUN:-}" ] || { echo "SKIP: inside make check-mutants"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
top="${top_srcdir:-.}"
for f in "$top"/tests/mutants/*.mut; do
    name=${f##*/}
    grep -q "tests/mutants/$name" "$top/tests/Makefile.inc" ||
        { echo "FAIL: $name is not listed in mutant_patches (tests/Makefile.inc)"; exit 1; }
done
exec python3 "$top/tests/mutants/run-mutants" --check-apply
