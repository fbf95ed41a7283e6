/*
 * What the scenarios share: the address window, a measurement loop for
 * time-bound work, and the two mapped-region layouts.
 */
#ifndef BENCH_SCENARIO_H
#define BENCH_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl.h"
#include "options.h"
#include "report.h"
#include "team.h"

/* Every implementation works in the same window, one at a time or with
 * everything unmapped between its rounds. */
#define WINDOW_LOG_CHUNKS 20
/* Layouts spread over "slabs" of this many chunks: mmapper's slab size, so
 * that lookups really visit many slabs.  Nothing depends on it for
 * correctness. */
#define SPAN_CHUNKS 256

struct bench {
    const struct options *o;
    uintptr_t base;          /* the window */
    size_t chunks;           /* in the window */
    struct facts facts;
};

static inline struct impl_env bench_env(const struct bench *b)
{
    return (struct impl_env){ .base = b->base, .chunks = b->chunks,
                              .log_chunk = b->o->log_chunk };
}

static inline void *chunk_at(const struct bench *b, uintptr_t chunk)
{
    return (void *)(b->base + (chunk << b->o->log_chunk));
}

static inline struct budget bench_budget(const struct bench *b)
{
    return (struct budget){ .seconds = b->o->seconds, .iters = b->o->iters };
}

/* One implementation instance under measurement; the work function's arg. */
struct measure {
    const struct impl *impl;
    void *self;
    void *data;          /* the scenario's */
};

struct measure_spec {
    team_work_fn work;
    void (*prepare)(struct measure *m, int threads);   /* untimed; may be NULL */
    void (*cleanup)(struct measure *m);                /* untimed; may be NULL */
};

/* For each of the n instances a warm-up round, then o->reps rounds of the
 * budget, interleaved across instances; adds one row (sys/op) each.  The
 * syscalls of prepare and cleanup are not counted. */
void measure_interleaved(const struct bench *b, const char *table, struct measure *m, int n,
                         struct team *t, const struct measure_spec *s);

/* Unmap the whole window (teardown between rounds or implementations). */
void unmap_window(const struct bench *b, const struct impl *impl, void *self);

/* Contiguous layout: LAYOUT_CONTIG_CHUNKS chunks from the window start,
 * reserved (PROT_NONE) and then ensure_mapped chunk by chunk. */
#define LAYOUT_CONTIG_CHUNKS 16384
void layout_contig_map(const struct bench *b, const struct impl *impl, void *self);

/* Sparse layout: LAYOUT_SPARSE_RUN mapped chunks in each of the first
 * LAYOUT_SPARSE_SPANS spans of SPAN_CHUNKS chunks, at a varying position. */
#define LAYOUT_SPARSE_SPANS 1024
#define LAYOUT_SPARSE_RUN 16
void layout_sparse_map(const struct bench *b, const struct impl *impl, void *self);
uintptr_t layout_sparse_first(uintptr_t span);   /* first mapped chunk of a span */

/* The per-thread address arrays of the lookup scenarios. */
uintptr_t **addr_arrays_new(int threads, size_t n);
void addr_arrays_free(uintptr_t **a, int threads);

/* The scenarios. */
void scenario_race_same(struct bench *b);
void scenario_fresh_disjoint(struct bench *b);
void scenario_fast_path(struct bench *b);
void scenario_is_mapped(struct bench *b);
void scenario_scan(struct bench *b);
void scenario_alloc_mix(struct bench *b);
void scenario_churn(struct bench *b);
void scenario_large_table(struct bench *b);
void metadata_probe(struct bench *b);

#endif
