#!/bin/sh
# The preload module and mmapper-run on an ordinary program (workout.c):
# same output as a plain run, one statistics line, and, for every bad
# configuration, one clear line on stderr with the program running unchanged.
. "${top_srcdir:-.}/tests/real/common.sh"

prog=$(cd "$builddir" && pwd)/tests/real/workout
[ -x "$prog" ] || skip "no $prog"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset MMAPPER_STATS MMAPPER_CHUNK_LOG MMAPPER_STATS_SIGNAL MMAPPER_JEMALLOC

"$prog" >"$tmp/plain.out" 2>"$tmp/plain.err" || { cat "$tmp/plain.err"; fail "plain run"; }
expected=$(cat "$tmp/plain.out")
echo "plain:     $expected"

# run NAME [VAR=VALUE...]: the workout under mmapper-run; the same output
# as the plain run, whatever happens on stderr.
run_case() {
    name=$1; shift
    env "$@" "$run" "$prog" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
        { cat "$tmp/$name.err"; fail "$name: the program failed"; }
    [ "$(cat "$tmp/$name.out")" = "$expected" ] ||
        fail "$name: output differs: $(cat "$tmp/$name.out")"
}
lines() { grep -c . "$tmp/$1.err"; }

# On mmapper, with the statistics line.
run_case stats MMAPPER_STATS=1
[ "$(lines stats)" -eq 1 ] || { cat "$tmp/stats.err"; fail "expected exactly one line on stderr"; }
line=$(cat "$tmp/stats.err")
echo "on mmapper: $line"
case "$line" in "mmapper: "*) ;; *) fail "the line does not start with 'mmapper: '";; esac
check_stats_fields "$line"
[ "$(stat "$line" chunk_bytes)" -eq 2097152 ] || fail "the default chunk is not 2 MiB"
[ "$(stat "$line" arenas_hooked)" -ge 2 ] || fail "fewer than 2 arenas hooked"
[ "$(stat "$line" hook_allocs)" -gt 0 ] && [ "$(stat "$line" mmap_calls)" -gt 0 ] &&
    [ "$(stat "$line" chunks_mapped)" -gt 0 ] || fail "mmapper did not map the heap"

# Without MMAPPER_STATS: nothing on stderr.
run_case quiet
[ "$(lines quiet)" -eq 0 ] || { cat "$tmp/quiet.err"; fail "stderr is not empty"; }

# Other chunk sizes: the page, and 64 KiB.
page=$(getconf PAGESIZE)
log=0; while [ $(( 1 << log )) -lt "$page" ]; do log=$((log + 1)); done
for n in "$log" 16; do
    run_case "chunk$n" MMAPPER_STATS=1 MMAPPER_CHUNK_LOG=$n
    [ "$(stat "$(cat "$tmp/chunk$n.err")" chunk_bytes)" -eq $(( 1 << n )) ] ||
        fail "MMAPPER_CHUNK_LOG=$n: $(cat "$tmp/chunk$n.err")"
done

# Bad configurations: one line each, the program unchanged.
one_line() {   # one_line NAME PATTERN
    [ "$(lines "$1")" -eq 1 ] && grep -q "$2" "$tmp/$1.err" ||
        { cat "$tmp/$1.err"; fail "$1: expected one line matching '$2'"; }
    echo "$1: $(cat "$tmp/$1.err")"
}
run_case chunk_abc MMAPPER_STATS=1 MMAPPER_CHUNK_LOG=abc
one_line chunk_abc 'MMAPPER_CHUNK_LOG.*plain jemalloc'
run_case chunk_99 MMAPPER_STATS=1 MMAPPER_CHUNK_LOG=99
one_line chunk_99 'MMAPPER_CHUNK_LOG=99.*plain jemalloc'
if [ "$log" -gt 12 ] || [ "$log" -eq 12 ]; then
    run_case chunk_small MMAPPER_STATS=1 MMAPPER_CHUNK_LOG=$((log - 1))
    one_line chunk_small "MMAPPER_CHUNK_LOG=$((log - 1)).*plain jemalloc"
fi
run_case signal_bad MMAPPER_STATS_SIGNAL=abc
one_line signal_bad 'MMAPPER_STATS_SIGNAL=abc'
run_case no_jemalloc MMAPPER_JEMALLOC=/nonexistent/libjemalloc.so.2
one_line no_jemalloc 'libjemalloc.so.2 not found'
run_case no_module MMAPPER_MODULE=/nonexistent/libmmapper-jemalloc.so
one_line no_module 'libmmapper-jemalloc.so not found'

# The module alone, without jemalloc: it steps aside.
LD_PRELOAD=$MMAPPER_MODULE "$prog" >"$tmp/alone.out" 2>"$tmp/alone.err" || fail "alone: the program failed"
[ "$(cat "$tmp/alone.out")" = "$expected" ] || fail "alone: output differs"
one_line alone 'jemalloc is not loaded'

# A program's own hooks are left alone: its arena keeps them, every extent
# of it comes from them, and mmapper allocates nothing for it.
own=$(cd "$builddir" && pwd)/tests/real/own_hooks
plain_own=$("$own") || fail "own_hooks: $plain_own"
mm_own=$(MMAPPER_STATS=1 "$run" "$own" 2>"$tmp/own.err") || fail "own_hooks on mmapper: $mm_own"
[ "$mm_own" = "$plain_own" ] || fail "own_hooks: '$mm_own' on mmapper, '$plain_own' without"
idle=$(MMAPPER_STATS=1 "$run" cat /dev/null 2>&1)   # start-up only
[ "$(stat "$(cat "$tmp/own.err")" hook_allocs)" = "$(stat "$idle" hook_allocs)" ] ||
    fail "mmapper allocated for the program's own arena: $(cat "$tmp/own.err")"
echo "own hooks: $mm_own; mmapper's allocations: only its start-up ones"

# The script's own interface.
"$run" >/dev/null 2>&1; [ $? -eq 2 ] || fail "mmapper-run without a command should exit 2"
"$run" --help | grep -q '^usage: mmapper-run' || fail "mmapper-run --help"
"$run" --version | grep -q '^mmapper-run (mmapper) ' || fail "mmapper-run --version"
[ "$("$run" sh -c 'echo "$0:$1"' a b)" = "a:b" ] || fail "mmapper-run passes its arguments on"
echo PASS
