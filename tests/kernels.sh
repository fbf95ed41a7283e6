#!/usr/bin/env bash
# The suites again, on kernels this machine is not (issue 12): every test
# that creates its mapper on the test OS layer (tests/support/test_os.c)
# starts it as the kernel MMAPPER_TEST_KERNEL describes.
#
#   page=16384, page=65536   a kernel with 16 KiB / 64 KiB pages (arm64):
#                            the Criterion suites and the stress programs
#                            on the test layer;
#   noreplace=ignored        a kernel before 4.17, which takes
#                            MAP_FIXED_NOREPLACE as a mere hint and may
#                            place the mapping elsewhere: the differential
#                            test and the race test end to end, and the
#                            other stress programs;
#   thp=none                 a kernel without transparent huge pages
#                            (madvise(MADV_HUGEPAGE) is EINVAL): the stress
#                            programs whose own models do not count madvise
#                            calls (stress_churn's and differential's do:
#                            there one call per mapper is what changes).
#
# Run by `make check` from the build directory; prints one line per run.
set -u
cd "${top_builddir:-.}" || exit 99
if [ -n "${MMAPPER_EMULATED:-}" ]; then
    echo "SKIP: under $MMAPPER_EMULATED (the simulated kernels run in the native builds)"
    exit 77
fi
# The programs read MMAPPER_TEST_KERNEL: one that does not know a word
# refuses to run (exit 99), so a run below cannot silently be a plain one.
MMAPPER_TEST_KERNEL=page=12345 ./tests/stress/stress_race >/dev/null 2>&1
[ $? -eq 99 ] || { echo "FAIL: stress_race ignored MMAPPER_TEST_KERNEL"; exit 1; }

unit=(test_os_layer test_faults test_args test_mapper test_transitions test_table
      test_race test_protocol)
stress=(stress_race stress_churn stress_table stress_readers fault_inject bad_input
        differential soundness vma_budget)
no_thp=(stress_race stress_table stress_readers fault_inject bad_input soundness vma_budget)

failed=0
run() {   # run KERNEL PROGRAM...
    local kernel=$1 p out status start
    shift
    for p in "$@"; do
        [ -x "$p" ] || continue   # a suite this build leaves out (no Criterion)
        start=$SECONDS
        out=$(MMAPPER_TEST_KERNEL=$kernel "./$p" 2>&1)
        status=$?
        if [ $status -ne 0 ] && [ $status -ne 77 ]; then
            printf '%s\n' "$out" | tail -n 30
            echo "FAIL: $p on kernel '$kernel' (exit $status)"
            failed=$((failed + 1))
        else
            echo "ok: $p on kernel '$kernel' ($((SECONDS - start)) s)"
        fi
    done
}

for page in 16384 65536; do
    run "page=$page" "${unit[@]/#/tests/unit/}" "${stress[@]/#/tests/stress/}"
done
run noreplace=ignored "${stress[@]/#/tests/stress/}"
run thp=none "${no_thp[@]/#/tests/stress/}"

[ $failed -eq 0 ] || { echo "kernels: $failed runs failed"; exit 1; }
echo "kernels: every run passed"
