#!/bin/sh
# check-model.sh MODEL.pml [WORKDIR]
#
# Runs spin's verifier on every configuration of the model (each search
# exhaustive: it fails on any error, on "Search not completed" and on a
# depth limit hit), then on each seeded bug (mutant), each of which must
# make spin report a violation.  One line per run.  Scratch files go to
# WORKDIR (default: a mktemp directory, removed at the end).
set -u

model=${1:?usage: check-model.sh MODEL.pml [WORKDIR]}
case $model in /*) ;; *) model=$PWD/$model ;; esac
if ! command -v spin >/dev/null 2>&1; then
    echo "check-model: spin not found (apt-get install spin)" >&2
    exit 1
fi
cc=${CC:-gcc}
memlim=${MODEL_MEMLIM:-3500}     # MB, per pan run
if [ $# -ge 2 ]; then
    work=$2; mkdir -p "$work"; cleanup=
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/check-model.XXXXXX"); cleanup=$work
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT INT TERM

failed=0

# build NAME SPIN_DEFINES CC_DEFINES: pan for one configuration, in $work/NAME
build() {
    dir=$work/$1
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && spin -a $2 "$model" >spin.log 2>&1 &&
     $cc -O2 -w -DMEMLIM=$memlim -DCOLLAPSE $3 -o pan pan.c >cc.log 2>&1) || {
        echo "check-model: $1: spin -a or cc failed:"; cat "$dir/spin.log" "$dir/cc.log" 2>/dev/null
        return 1
    }
}

# summary of a pan log: states, transitions, depth, memory, seconds
summary() {
    awk '/states, stored/ { s = $1 } / transitions \(/ { tr = $1 }
         /depth reached/ { d = $0; sub(/.*depth reached /, "", d); sub(/,.*/, "", d) }
         /total actual memory usage/ { m = $1 } /elapsed time/ { t = $4 }
         END { printf "%s states, %s transitions, depth %s, %s MB, %s s", s, tr, d, m, t }' "$1"
}

# verify NAME SPIN_DEFINES CC_DEFINES PAN_ARGS: must pass, exhaustively
verify() {
    build "$1" "$2" "$3" || { failed=1; return; }
    (cd "$work/$1" && ./pan $4 >pan.log 2>&1)
    log=$work/$1/pan.log
    if grep -q "errors: 0" "$log" && ! grep -q "Search not completed" "$log" &&
       ! grep -q "max search depth too small" "$log" && ! grep -q "out of memory" "$log"; then
        echo "PASS: $1: $(summary "$log")"
    else
        echo "FAIL: $1:"; grep -E "error|violat|Search not|too small|memory" "$log" | head -n 20
        failed=1
    fi
}

# mutant NAME CFG: the seeded bug MUT_NAME must give a violation
mutant() {
    build "mut-$1" "-DCFG=$2 -DMUT_$1" "-DSAFETY" || { failed=1; return; }
    (cd "$work/mut-$1" && ./pan -m20000 >pan.log 2>&1)
    log=$work/mut-$1/pan.log
    if grep -q "errors: [1-9]" "$log"; then
        what=$(grep -E "^pan:1: " "$log" | head -n 1 | sed 's/^pan:1: //' | cut -c1-90)
        echo "CAUGHT: $1 (CFG $2): $what"
    else
        echo "MISSED: $1 (CFG $2): spin found no violation"
        failed=1
    fi
}

echo "== spin model: exhaustive runs"
verify cfg1-race "-DCFG=1 -DSTART_KEYS=1 -DRANGESET=1" "-DSAFETY" "-m20000"
verify cfg5-ranges "-DCFG=5" "-DSAFETY" "-m20000"
verify cfg2-reclaim "-DCFG=2" "-DSAFETY" "-m20000"
verify cfg4-liveness "-DCFG=4" "" "-m20000 -a -f"

echo "== spin model: seeded bugs"
mutant LEAVING_AFTER 1
mutant PUBLISH_EARLY 1
mutant FAST_TRUSTS_LEAVING 1
mutant SETTLE_TRUSTS_LEAVING 1
mutant NO_GRACE 2
mutant UNPIN_EARLY 2
mutant NO_DEAD_RECHECK 2
mutant RETIRE_LOCKED 2
mutant DESCENDING 5
mutant SCAN_NO_RECHECK 5

if [ $failed -ne 0 ]; then
    echo "check-model: FAILED"
    exit 1
fi
echo "check-model: all runs exhaustive and clean, every seeded bug caught"
