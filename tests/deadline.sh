#!/usr/bin/env bash
# The test driver's wrapper (LOG_COMPILER): runs one test program under a
# deadline, so that `make check` can never hang.
#
#   deadline.sh PROGRAM [ARGS...]
#
# The program runs in a process group of its own (Criterion forks one process
# per test, stress programs fork children: all of them are in it).  If it is
# still running after the deadline, every process of the group gets its
# threads' backtraces printed (gdb -batch, when gdb is installed; otherwise
# each thread's kernel stack and the system call it sits in), then the whole
# group is killed with SIGKILL (a thread inside urcu-bp's grace-period wait
# has every signal blocked) and the test fails.
#
# Deadline: MMAPPER_DEADLINE_<name> or MMAPPER_TEST_DEADLINE seconds
# (default 20), times
# MMAPPER_DEADLINE_SCALE (configure sets 3 for sanitizer builds).  Normal
# running times are well under a quarter of that.
set -u

[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS...]" >&2; exit 99; }
name=${1##*/}
case "$name" in   # a script run by its shell (SH_LOG_COMPILER): named by the script
    sh|bash|dash) [ $# -ge 2 ] && name=${2##*/} ;;
esac
# A test that needs longer says so in MMAPPER_DEADLINE_<name> (Makefile.am).
own="MMAPPER_DEADLINE_${name//[^A-Za-z0-9_]/_}"
deadline=$(( ${!own:-${MMAPPER_TEST_DEADLINE:-20}} * ${MMAPPER_DEADLINE_SCALE:-1} ))

# Once one test of this `make check` has hung (tests/.deadline-hit, removed
# before each run by the Makefile), the run is failing anyway: every other
# test gets FAST seconds at most, so that a hang that many tests share (an
# endless probe in the table) fails the run in about a minute, not twenty.
marker="${top_builddir:-.}/tests/.deadline-hit"
fast=$(( 5 * ${MMAPPER_DEADLINE_SCALE:-1} ))

# A test that reaps children of its own reports a child that hangs with
# the same backtraces (tests/support/hang_report.c).
dumper="$(cd "$(dirname "$0")" && pwd)/dump-stacks.sh"
export MMAPPER_STACK_DUMPER="$dumper"

# A background job of a non-interactive shell is not a process-group leader,
# so setsid(1) does not fork: $! is the test itself and leads its own group.
setsid "$@" &
pid=$!
start=$SECONDS

# Every process of the test's session and their descendants: a process
# group is not enough (Criterion's runner leads a group of its own, and its
# workers a session of their own).  Collected before anything is killed,
# since an orphan is re-parented away.
family() {
    local all next p
    all=$(ps -o pid= --sid "$pid" 2>/dev/null | tr -s ' \n' ' ')
    next=$all
    while [ -n "${next// /}" ]; do
        next=$(for p in $next; do ps -o pid= --ppid "$p" 2>/dev/null; done | tr -s ' \n' ' ')
        all="$all $next"
    done
    echo $all
}

while :; do
    sleep 1 &
    timer=$!
    finished=
    wait -n -p finished "$pid" "$timer"
    status=$?
    if [ "$finished" = "$pid" ]; then
        kill "$timer" 2>/dev/null
        wait "$timer" 2>/dev/null
        echo "deadline: $name took $((SECONDS - start)) s of its $deadline s"
        # Whatever the test left running in its session (a forked child
        # that outlived a failing parent, say) must not go on spinning and
        # slow every later test down: it is named, then killed.
        left=$(family)
        if [ -n "$left" ]; then
            echo "deadline: $name left processes running; killed:"
            ps -o pid=,args= -p "${left// /,}" 2>/dev/null | sed 's/^/    /'
            kill -KILL $left 2>/dev/null
        fi
        exit "$status"
    fi
    limit=$deadline
    if [ -e "$marker" ] && [ "$fast" -lt "$limit" ]; then
        limit=$fast
    fi
    [ $((SECONDS - start)) -lt "$limit" ] || break
done
deadline=$((SECONDS - start))
mkdir -p "${marker%/*}" 2>/dev/null && : > "$marker"

echo "DEADLINE: $name still running after $deadline s: it hangs; backtraces follow"
pids=$(family)
kill -STOP $pids 2>/dev/null   # freeze them all: one consistent picture
sh "$dumper" $pids
kill -KILL $pids 2>/dev/null
wait "$pid" 2>/dev/null
echo "DEADLINE: $name killed after $deadline s"
exit 1
