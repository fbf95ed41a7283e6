/*
 * Results: one row per (scenario table, implementation, thread count),
 * printed as a table per scenario, written to CSV, and read back by the
 * summary.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "options.h"

struct row {
    const char *table;      /* e.g. "is-mapped-hit" */
    const char *impl;
    int threads;
    double ns_per_op;       /* wall time / all threads' ops: inverse throughput */
    double mops;            /* all threads' ops per second, in millions */
    double syscalls;        /* per op, or per round (see the table's label) */
    double ratio;           /* ns_per_op / mmapper's, same table and threads */
    double extra;           /* the table's extra column, or NAN */
    int reps;               /* measurements the median was taken over */
};

struct table {
    const char *name;
    const char *title;          /* one line: what is measured */
    const char *syscalls_label; /* "sys/op" or "sys/round" */
    const char *extra_label;    /* NULL: no extra column */
};

/* A row from repetitions: ns/op is the median of wall_ns[i] / ops[i]. */
struct row row_from_reps(const char *table, const char *impl, int threads,
                         const double *wall_ns, const uint64_t *ops, int reps,
                         double syscalls);
void report_add(struct row r);
/* Fill the ratio column of t's rows and print t. */
void report_print(const struct table *t);
const struct row *report_find(const char *table, const char *impl, int threads);
void report_write_csv(const char *path);

/* The large-table sizes: 10^4, 10^5, 10^6 slabs. */
#define LT_SIZES 3

/* What the summary needs beyond the rows. */
struct facts {
    bool race_ran, race_exact;      /* mmapper made exactly C syscalls per round */
    double race_idle_ratio_64t;     /* empty round at 64 threads / mmapper's 1-thread round */
    bool meta_done;
    uint64_t meta_empty_bytes;
    double meta_per_gib;            /* contiguous: fast-path layout */
    double meta_per_gib_sparse;     /* 16 chunks per slab: is-mapped layout */
    bool scale_done;                /* large-table: [0] mmapper, [1] prior-art */
    double scale_meta_per_slab[2][LT_SIZES];
};

/* The summary block and the target verdicts (summary.c). */
void report_summary(const struct facts *f);

#endif
