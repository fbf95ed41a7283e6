/* Command-line options of the benchmark driver, and the two profiles. */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_THREAD_COUNTS 16

struct options {
    unsigned log_chunk;             /* --log-chunk */
    size_t chunk, page;             /* derived */
    int threads[MAX_THREAD_COUNTS]; /* --threads */
    int nthreads;
    double seconds;                 /* per repetition of a time-bound scenario */
    uint64_t iters;                 /* if set: ops per thread per repetition instead */
    int reps;                       /* repetitions; the median is reported */
    int rounds;                     /* rounds of the round-based scenarios */
    uint64_t seed;
    const char *csv;                /* NULL: no CSV */
    bool full;
    const char *scenarios;          /* comma-separated names; NULL: all */
};

/* Parse argv into *o (exits with a usage message on error). */
void options_parse(struct options *o, int argc, char **argv);
bool options_wants(const struct options *o, const char *scenario);

#endif
