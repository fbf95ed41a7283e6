#!/bin/sh
# Redis on mmapper: Debian's redis-server (linked with libjemalloc2) started
# under mmapper-run, filled by redis-benchmark, forked by BGSAVE, reloaded,
# flushed and purged, shut down.  Checks:
#  - the module runs every arena on mmapper (its statistics line, asked for
#    with a signal, shows mmapper mapping the heap);
#  - DEBUG DIGEST is the same before and after BGSAVE (a fork: the child
#    writes the snapshot from the inherited heap) and DEBUG RELOAD;
#  - FLUSHALL + MEMORY PURGE give memory back: mmapper's chunks_mapped and
#    the process's RSS both drop;
#  - SHUTDOWN is clean, and the exit line (MMAPPER_STATS=1) comes exactly once.
. "${top_srcdir:-.}/tests/real/common.sh"

for p in redis-server redis-cli redis-benchmark; do
    command -v $p >/dev/null 2>&1 || skip "$p not installed (apt-get install redis-server redis-tools)"
done

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
log=$tmp/redis.log
SIG=40   # a real-time signal Redis does not use: print the statistics line

# A free port: let redis try a few.
port=
for try in 1 2 3 4 5 6 7 8; do
    p=$(( 20000 + ( $$ * 7 + try * 1237 ) % 30000 ))
    MMAPPER_STATS=1 MMAPPER_STATS_SIGNAL=$SIG "$run" redis-server --port "$p" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$tmp" --dbfilename dump.rdb \
        --enable-debug-command local --io-threads 2 --io-threads-do-reads yes \
        --daemonize no --logfile '' >"$log" 2>&1 &
    pid=$!
    for i in $(seq 1 50); do
        redis-cli -p "$p" ping >/dev/null 2>&1 && { port=$p; break; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] && break
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
done
[ -n "$port" ] || { cat "$log"; fail "redis-server did not start"; }
cli() { redis-cli -p "$port" "$@"; }
echo "redis-server $pid on 127.0.0.1:$port"

# The statistics line the module prints on signal $SIG (the newest one).
stats_now() {
    n=$(grep -c '^mmapper: mmap_calls=' "$log")
    kill -s "$SIG" "$pid" 2>/dev/null || kill -"$SIG" "$pid"
    for i in $(seq 1 50); do
        [ "$(grep -c '^mmapper: mmap_calls=' "$log")" -gt "$n" ] && break
        sleep 0.1
    done
    grep '^mmapper: mmap_calls=' "$log" | tail -n 1
}

grep -q 'mmapper: .*plain jemalloc' "$log" && { cat "$log"; fail "the module stepped aside"; }
grep -q libmmapper-jemalloc.so "/proc/$pid/maps" || fail "the module is not loaded"
s0=$(stats_now)
[ -n "$s0" ] || { cat "$log"; fail "no statistics line on signal $SIG"; }
echo "at start:   $s0"
[ "$(stat "$s0" arenas_hooked)" -ge 2 ] || fail "the module hooked fewer than 2 arenas"

# Fill it: values 64 B to 4 KiB, seven commands, pipelined.
for size in 64 1024 4096; do
    redis-benchmark -p "$port" -q -r 100000 -n 60000 -P 16 -d "$size" \
        -t set,get,lpush,lpop,sadd,hset,zadd >"$tmp/bench-$size.txt" 2>&1 ||
        { cat "$tmp/bench-$size.txt"; fail "redis-benchmark -d $size"; }
done
tr '\r' '\n' < "$tmp/bench-4096.txt" | grep 'requests per second' | sed 's/^/  /'
keys=$(cli dbsize)
[ "$keys" -gt 10000 ] || fail "only $keys keys after the benchmark"
s1=$(stats_now)
rss1=$(rss_kib "$pid")
echo "filled:     $keys keys, RSS $rss1 KiB; $s1"
mapped1=$(stat "$s1" chunks_mapped)
[ "$mapped1" -gt 0 ] && [ "$(stat "$s1" hook_allocs)" -gt 0 ] && [ "$(stat "$s1" mmap_calls)" -gt 0 ] ||
    fail "mmapper mapped nothing: $s1"

# A fork: the snapshot must be written from an intact heap.
d1=$(cli debug digest)
[ "$(cli bgsave)" = "Background saving started" ] || fail "BGSAVE did not start"
for i in $(seq 1 600); do
    cli info persistence | grep -q '^rdb_bgsave_in_progress:0' && break
    sleep 0.1
done
cli info persistence | grep -q '^rdb_last_bgsave_status:ok' || fail "BGSAVE failed"
d2=$(cli debug digest)
[ "$d1" = "$d2" ] || fail "digest changed across BGSAVE: $d1 -> $d2"
[ "$(cli debug reload)" = OK ] || fail "DEBUG RELOAD"
d3=$(cli debug digest)
[ "$d1" = "$d3" ] || fail "digest changed across DEBUG RELOAD: $d1 -> $d3"
[ "$(cli dbsize)" = "$keys" ] || fail "key count changed across DEBUG RELOAD"
echo "digest $d1: same after BGSAVE and after DEBUG RELOAD"

# Give it all back.
[ "$(cli flushall)" = OK ] || fail FLUSHALL
[ "$(cli memory purge)" = OK ] || fail "MEMORY PURGE"
sleep 0.5
s2=$(stats_now)
rss2=$(rss_kib "$pid")
mapped2=$(stat "$s2" chunks_mapped)
echo "purged:     RSS $rss2 KiB; $s2"
[ "$mapped2" -lt "$mapped1" ] || fail "chunks_mapped did not drop: $mapped1 -> $mapped2"
[ "$rss2" -lt $(( rss1 / 2 )) ] || fail "RSS did not drop by half: $rss1 -> $rss2 KiB"
echo "chunks_mapped $mapped1 -> $mapped2, RSS $rss1 -> $rss2 KiB"

# A clean shutdown, and exactly one exit line.
before=$(grep -c '^mmapper: mmap_calls=' "$log")
cli shutdown nosave >/dev/null 2>&1
wait "$pid"
status=$?
pid=
[ "$status" -eq 0 ] || { tail -20 "$log"; fail "redis-server exited with $status"; }
after=$(grep -c '^mmapper: mmap_calls=' "$log")
[ $(( after - before )) -eq 1 ] || fail "$(( after - before )) statistics lines at exit, expected 1"
last=$(grep '^mmapper: mmap_calls=' "$log" | tail -n 1)
check_stats_fields "$last"
grep -E 'mmapper: .*(error|cannot|not )' "$log" && fail "the module complained"
echo "exit:       $last"
echo "PASS"
