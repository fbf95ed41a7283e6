#!/bin/sh
# Print every thread's backtrace of each process given: what a hang report
# needs.  Used by tests/deadline.sh for a test that outlives its deadline,
# and by test programs for a child of theirs that does (through
# MMAPPER_STACK_DUMPER, which deadline.sh exports).
#
#   dump-stacks.sh PID...
#
# With gdb: `thread apply all bt` (at most 30 s per process).  Without it:
# each thread's kernel stack and the system call it sits in.
for p in "$@"; do
    echo "---- process $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"
    if command -v gdb >/dev/null 2>&1; then
        timeout 30 gdb -batch -nx -p "$p" -ex "set pagination off" \
            -ex "thread apply all bt 30" 2>&1 |
            grep -Ev '^(\[New LWP|\[Thread debugging|Using host libthread_db|warning: )'
    else
        for t in /proc/"$p"/task/*; do
            echo "thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)): syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
            sed 's/^/    /' "$t/stack" 2>/dev/null
        done
    fi
done
