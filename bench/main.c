/*
 * mmbench: mmapper against its baselines.  See bench/README.md for the
 * scenarios, the columns and the summary keys.
 */
#include "config.h"

#include <stdio.h>

#include "kernel.h"
#include "options.h"
#include "report.h"
#include "scenario.h"
#include "util.h"

int main(int argc, char **argv)
{
    struct options o;
    options_parse(&o, argc, argv);
    struct bench b = { .o = &o, .chunks = (size_t)1 << WINDOW_LOG_CHUNKS };
    size_t window_bytes = b.chunks << o.log_chunk;
    b.base = kern_find_window(window_bytes, o.chunk * SPAN_CHUNKS);

    printf("mmbench: %s profile, chunk %zu KiB, threads", o.full ? "full" : "quick",
           o.chunk >> 10);
    for (int i = 0; i < o.nthreads; i++)
        printf(" %d", o.threads[i]);
    if (o.iters)
        printf(", %llu ops per thread", (unsigned long long)o.iters);
    else
        printf(", %.3f s", o.seconds);
    printf(" x %d reps (median), %d rounds, seed %llu\n", o.reps, o.rounds,
           (unsigned long long)o.seed);
    printf("ns/op = wall time / all threads' ops (inverse throughput); "
           "x mmapper = ns/op / mmapper's\n");
    fflush(stdout);

    uint64_t start = now_ns();
    if (options_wants(&o, "race-same"))
        scenario_race_same(&b);
    if (options_wants(&o, "fresh-disjoint"))
        scenario_fresh_disjoint(&b);
    if (options_wants(&o, "mapped-fast-path"))
        scenario_fast_path(&b);
    if (options_wants(&o, "is-mapped"))
        scenario_is_mapped(&b);
    if (options_wants(&o, "conservative-scan"))
        scenario_scan(&b);
    if (options_wants(&o, "alloc-mix"))
        scenario_alloc_mix(&b);
    if (options_wants(&o, "churn"))
        scenario_churn(&b);
    if (options_wants(&o, "large-table"))
        scenario_large_table(&b);
    progress("metadata probe");
    metadata_probe(&b);

    report_summary(&b.facts);
    printf("bench_seconds: %.1f\n", (double)(now_ns() - start) / 1e9);
    if (o.csv) {
        report_write_csv(o.csv);
        progress("rows written to %s", o.csv);
    }
    return 0;
}
