# Shared by the real-program tests (sourced).  Finds the module and
# mmapper-run of this build tree, decides whether the test can run here
# (exit 77, SKIP, with the reason otherwise), and parses the module's
# statistics line.
set -u

builddir=${top_builddir:-.}
srcdir=$(cd "${top_srcdir:-.}" && pwd)
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "${MMAPPER_REAL_TESTS:-1}" != 0 ] || skip "MMAPPER_REAL_TESTS=0"
# An instrumented module cannot be preloaded into an uninstrumented program
# (the sanitizer's runtime must come first); these run in the plain build.
[ -z "${SANITIZER_CFLAGS:-}" ] || skip "sanitizer build ($SANITIZER_CFLAGS)"
MMAPPER_MODULE=$(cd "$builddir" && pwd)/.libs/libmmapper-jemalloc.so
[ -e "$MMAPPER_MODULE" ] || skip "no $MMAPPER_MODULE (jemalloc not found at configure time)"
export MMAPPER_MODULE
run="$(cd "$builddir" && pwd)/mmapper-run"
[ -x "$run" ] || skip "no $run"

# The value of key in a statistics line ("mmapper: k=v k=v ...").
stat() {   # stat LINE KEY
    printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Fail unless LINE has "FIELD=<number>" for every field of struct
# mmapper_stats, as the header lists them.
check_stats_fields() {   # check_stats_fields LINE
    for field in $(sed -n '/^struct mmapper_stats {/,/^};/p' "$srcdir/include/mmapper.h" |
                   grep -v '^ *[/*]' | grep uint64_t | sed 's/uint64_t//; s/[,;]/ /g'); do
        printf '%s\n' "$1" | grep -q " $field=[0-9][0-9]*\( \|$\)" ||
            fail "no $field= in the statistics line: $1"
    done
}

# The process's resident set, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
