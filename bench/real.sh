#!/bin/sh
# `make bench-real`: what mmapper costs a real program.
#
#  - Redis (Debian's redis-server, linked with jemalloc): redis-benchmark
#    requests/s per command, plain jemalloc against mmapper-run, runs
#    interleaved (plain, mmapper, plain, ...), REPS of each, medians and
#    their ratio (goal >= 0.97 for every command).  RSS at the end of each
#    run, and mmapper's system calls.
#  - Python: the wall time of bench/real_alloc.py (PYTHONMALLOC=malloc) on
#    glibc malloc, on plain jemalloc and under mmapper-run, interleaved,
#    medians; the ratio mmapper / jemalloc (goal >= 0.97 in speed).
#
# Environment: REPS (default 3), REQUESTS (redis-benchmark -n, default
# 200000), PY_ROUNDS (default 6).  Needs redis-server, redis-benchmark and
# python3; skips what is missing.
set -u
builddir=${top_builddir:-.}
srcdir=$(cd "${top_srcdir:-.}" && pwd)
MMAPPER_MODULE=$(cd "$builddir" && pwd)/.libs/libmmapper-jemalloc.so
export MMAPPER_MODULE
run="$(cd "$builddir" && pwd)/mmapper-run"
[ -e "$MMAPPER_MODULE" ] && [ -x "$run" ] || { echo "bench-real: build the module first"; exit 1; }
reps=${REPS:-3}
requests=${REQUESTS:-200000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jemalloc=$(sed -n "s/^jemalloc_libdir='\(.*\)'$/\1/p" "$run")/libjemalloc.so.2

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== bench-real: $reps runs of each, interleaved"
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    port=$(( 20000 + $$ % 20000 ))
    cmds=set,get,lpush,lpop,sadd,hset,zadd
    for rep in $(seq 1 "$reps"); do
        for kind in plain mmapper; do
            wrap=; [ $kind = mmapper ] && wrap=$run
            MMAPPER_STATS=1 $wrap redis-server --port "$port" --bind 127.0.0.1 --save '' \
                --appendonly no --dir "$tmp" --io-threads 2 --daemonize no --logfile '' \
                >"$tmp/server.log" 2>&1 &
            pid=$!
            for i in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
            redis-benchmark -p "$port" -r 100000 -n "$requests" -P 16 -d 1024 -t "$cmds" --csv \
                2>/dev/null | tr -d '"' | awk -F, -v k=$kind '$1 != "test" { print k, $1, $2 }' \
                >>"$tmp/redis.txt"
            echo "$kind $(awk '/^VmRSS:/ { print $2 }' /proc/$pid/status)" >>"$tmp/rss.txt"
            redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
            wait "$pid"
            [ $kind = mmapper ] && grep '^mmapper: ' "$tmp/server.log" | tail -n 1 >>"$tmp/lines.txt"
        done
    done
    echo "-- Redis: redis-benchmark -P 16 -d 1024 -r 100000 -n $requests, io-threads 2; median requests/s"
    printf '%-8s %14s %14s %8s\n' command jemalloc mmapper ratio
    for c in $(awk '{ print $2 }' "$tmp/redis.txt" | awk '!seen[$0]++'); do
        p=$(awk -v c="$c" '$1 == "plain" && $2 == c { print $3 }' "$tmp/redis.txt" | median)
        m=$(awk -v c="$c" '$1 == "mmapper" && $2 == c { print $3 }' "$tmp/redis.txt" | median)
        printf '%-8s %14.0f %14.0f %8.3f\n' "$c" "$p" "$m" "$(awk -v a="$m" -v b="$p" 'BEGIN { print a / b }')"
    done
    echo "RSS at the end (median KiB): jemalloc $(awk '$1 == "plain" { print $2 }' "$tmp/rss.txt" | median)," \
         "mmapper $(awk '$1 == "mmapper" { print $2 }' "$tmp/rss.txt" | median)"
    echo "mmapper's last run: $(tail -n 1 "$tmp/lines.txt")"
else
    echo "-- Redis: skipped (redis-server or redis-benchmark not installed)"
fi

echo "-- Python: bench/real_alloc.py ${PY_ROUNDS:-6} rounds, PYTHONMALLOC=malloc; median wall time"
py=$(command -v python3)
for rep in $(seq 1 "$reps"); do
    for kind in glibc jemalloc mmapper; do
        case $kind in
        glibc) out=$(PYTHONMALLOC=malloc "$py" "$srcdir/bench/real_alloc.py" "${PY_ROUNDS:-6}") ;;
        jemalloc) out=$(PYTHONMALLOC=malloc LD_PRELOAD=$jemalloc "$py" "$srcdir/bench/real_alloc.py" "${PY_ROUNDS:-6}") ;;
        mmapper) out=$(MMAPPER_STATS=1 PYTHONMALLOC=malloc "$run" "$py" "$srcdir/bench/real_alloc.py" \
                       "${PY_ROUNDS:-6}" 2>"$tmp/py.err") ;;
        esac
        echo "$kind $out" >>"$tmp/py.txt"
    done
done
for kind in glibc jemalloc mmapper; do
    t=$(awk -v k=$kind '$1 == k { print $2 }' "$tmp/py.txt" | median)
    r=$(awk -v k=$kind '$1 == k { print $3 }' "$tmp/py.txt" | median)
    printf '%-9s %8.3f s   peak RSS %8.0f KiB\n' "$kind" "$t" "$r"
done
tj=$(awk '$1 == "jemalloc" { print $2 }' "$tmp/py.txt" | median)
tm=$(awk '$1 == "mmapper" { print $2 }' "$tmp/py.txt" | median)
printf 'speed on mmapper / plain jemalloc: %.3f (goal >= 0.97)\n' "$(awk -v a="$tj" -v b="$tm" 'BEGIN { print a / b }')"
echo "mmapper's last run: $(grep '^mmapper: ' "$tmp/py.err" | tail -n 1)"
