#!/bin/sh
# Every mutant of `make check-mutants` still applies to src/: the mutants
# keep up with the code they test.
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
exec python3 "${top_srcdir:-.}/tests/mutants/run-mutants" --check-apply
