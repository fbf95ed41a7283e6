#!/bin/sh
# Every mutant of `make check-mutants` still applies to src/: the mutants
# keep up with the code they test.
# Inside a mutant run the tree is mutated on purpose.
[ -z "${MMAPPER_MUTANT_RUN:-}" ] || { echo "SKIP: inside make check-mutants"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
exec python3 "${top_srcdir:-.}/tests/mutants/run-mutants" --check-apply
