/*
 * The ns-scale scenarios, over one mapped region per implementation and the
 * same pre-generated per-thread address arrays for every implementation:
 *
 *  mapped-fast-path  ensure_mapped of one page / one chunk that is already
 *                    Mapped, at random chunks of a contiguous region
 *                    (reserved PROT_NONE, then ensure_mapped; never touched);
 *  is-mapped         lookups at random addresses of a region spread over
 *                    many slabs (hits) and of unmapped space (misses).
 *  conservative-scan batched lookups (count_batch: mmapper_is_mapped_many,
 *                    the baselines' lookup in a loop), 64 addresses a batch:
 *                    the is-mapped hits, and a conservative scan of 1 MiB of
 *                    words of which 10 % point into Mapped chunks (the rest:
 *                    small integers, random 64-bit junk, and addresses of
 *                    unmapped space, as a stack or a heap holds).
 *
 * Implementations run one after the other (the region is set up once per
 * implementation); each (implementation, threads) is a warm-up plus
 * --reps time-bound rounds, median reported.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "util.h"

#define ADDRS_PER_THREAD 4096

struct lookup {
    uintptr_t **addrs;
    size_t bytes;        /* fast path: the range size */
    const void ***words; /* batched variants: per thread */
    size_t nwords;
};

#define BATCH 64
#define SCAN_WORDS ((size_t)1 << 17)   /* 1 MiB of 8-byte words */

static uint64_t fast_path_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    const struct lookup *d = m->data;
    uint64_t done = 0;
    int err = 0;
    while (team_more(t, done)) {
        err |= m->impl->ensure_each(m->self, d->addrs[id], ADDRS_PER_THREAD, d->bytes);
        done += ADDRS_PER_THREAD;
    }
    if (err)
        die("%s: ensure_mapped failed on a mapped region", m->impl->name);
    return done;
}

static uint64_t is_mapped_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    const struct lookup *d = m->data;
    uint64_t done = 0, hits = 0;
    while (team_more(t, done)) {
        hits += m->impl->count_mapped(m->self, d->addrs[id], ADDRS_PER_THREAD);
        done += ADDRS_PER_THREAD;
    }
    sink(hits);
    return done;
}

static uint64_t batch_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    const struct lookup *d = m->data;
    const void *const *w = d->words[id];
    uint64_t done = 0, hits = 0;
    size_t at = 0;
    while (team_more(t, done)) {
        for (int k = 0; k < 64; k++) {
            hits += m->impl->count_batch(m->self, w + at, BATCH);
            at = at + 2 * BATCH <= d->nwords ? at + BATCH : 0;
        }
        done += 64 * BATCH;
    }
    sink(hits);
    return done;
}

static int max_threads(const struct options *o)
{
    int n = 0;
    for (int i = 0; i < o->nthreads; i++)
        n = o->threads[i] > n ? o->threads[i] : n;
    return n;
}

struct variant {
    const struct table table;
    struct lookup data;
    team_work_fn work;
};

/* Measure every variant for every implementation and thread count. */
static void run_variants(struct bench *b, const char *scenario, struct variant *v, int nv,
                         void (*layout)(const struct bench *, const struct impl *, void *))
{
    const struct options *o = b->o;
    for (int i = 0; i < STATEFUL_IMPLS; i++) {
        const struct impl *impl = stateful_impls[i];
        progress("%s: %s (%d/%d)", scenario, impl->name, i + 1, STATEFUL_IMPLS);
        struct impl_env env = bench_env(b);
        void *self = impl->create(&env);
        layout(b, impl, self);
        for (int ti = 0; ti < o->nthreads; ti++) {
            struct team *t = team_start(o->threads[ti]);
            for (int k = 0; k < nv; k++) {
                struct measure m = { .impl = impl, .self = self, .data = &v[k].data };
                struct measure_spec spec = { .work = v[k].work };
                measure_interleaved(b, v[k].table.name, &m, 1, t, &spec);
            }
            team_finish(t);
        }
        unmap_window(b, impl, self);
        impl->destroy(self);
    }
    for (int k = 0; k < nv; k++)
        report_print(&v[k].table);
}

void scenario_fast_path(struct bench *b)
{
    const struct options *o = b->o;
    int nt = max_threads(o);
    uintptr_t **page_addrs = addr_arrays_new(nt, ADDRS_PER_THREAD);
    uintptr_t **chunk_addrs = addr_arrays_new(nt, ADDRS_PER_THREAD);
    for (int id = 0; id < nt; id++) {
        struct rng r;
        rng_seed(&r, o->seed, 3000 + (uint64_t)id);
        for (size_t i = 0; i < ADDRS_PER_THREAD; i++) {
            uintptr_t c = (uintptr_t)chunk_at(b, rng_below(&r, LAYOUT_CONTIG_CHUNKS));
            chunk_addrs[id][i] = c;
            page_addrs[id][i] = c + rng_below(&r, o->chunk / o->page) * o->page;
        }
    }
    static char title_page[160], title_chunk[160];
    snprintf(title_page, sizeof(title_page),
             "ensure_mapped(one page) already Mapped, random chunks of %zu GiB mapped",
             (LAYOUT_CONTIG_CHUNKS * o->chunk) >> 30);
    snprintf(title_chunk, sizeof(title_chunk),
             "ensure_mapped(one chunk) already Mapped, random chunks of %zu GiB mapped",
             (LAYOUT_CONTIG_CHUNKS * o->chunk) >> 30);
    struct variant v[] = {
        { { "fast-path-page", title_page, "sys/op", NULL }, { .addrs = page_addrs, .bytes = o->page },
          fast_path_work },
        { { "fast-path-chunk", title_chunk, "sys/op", NULL }, { .addrs = chunk_addrs, .bytes = o->chunk },
          fast_path_work },
    };
    run_variants(b, "mapped-fast-path", v, 2, layout_contig_map);
    addr_arrays_free(page_addrs, nt);
    addr_arrays_free(chunk_addrs, nt);
}

static bool sparse_mapped(uintptr_t chunk)
{
    uintptr_t span = chunk / SPAN_CHUNKS;
    if (span >= LAYOUT_SPARSE_SPANS)
        return false;
    uintptr_t first = layout_sparse_first(span);
    return chunk >= first && chunk < first + LAYOUT_SPARSE_RUN;
}

void scenario_is_mapped(struct bench *b)
{
    const struct options *o = b->o;
    int nt = max_threads(o);
    uintptr_t **hit_addrs = addr_arrays_new(nt, ADDRS_PER_THREAD);
    uintptr_t **miss_addrs = addr_arrays_new(nt, ADDRS_PER_THREAD);
    for (int id = 0; id < nt; id++) {
        struct rng r;
        rng_seed(&r, o->seed, 4000 + (uint64_t)id);
        for (size_t i = 0; i < ADDRS_PER_THREAD; i++) {
            uintptr_t span = rng_below(&r, LAYOUT_SPARSE_SPANS);
            uintptr_t c = layout_sparse_first(span) + rng_below(&r, LAYOUT_SPARSE_RUN);
            hit_addrs[id][i] = (uintptr_t)chunk_at(b, c) + rng_below(&r, o->chunk);
            /* Misses: the spread region's holes (a slab exists) and as much
             * space again beyond it (no slab at all). */
            do
                c = rng_below(&r, 2 * LAYOUT_SPARSE_SPANS * SPAN_CHUNKS);
            while (sparse_mapped(c));
            miss_addrs[id][i] = (uintptr_t)chunk_at(b, c) + rng_below(&r, o->chunk);
        }
    }
    static char title_hit[160], title_miss[160];
    snprintf(title_hit, sizeof(title_hit),
             "is_mapped hits, random addresses of %d GiB mapped over %d slabs",
             (int)((LAYOUT_SPARSE_SPANS * LAYOUT_SPARSE_RUN * o->chunk) >> 30),
             LAYOUT_SPARSE_SPANS);
    snprintf(title_miss, sizeof(title_miss),
             "is_mapped misses, holes of those slabs and unmapped space beyond");
    struct variant v[] = {
        { { "is-mapped-hit", title_hit, "sys/op", NULL }, { .addrs = hit_addrs }, is_mapped_work },
        { { "is-mapped-miss", title_miss, "sys/op", NULL }, { .addrs = miss_addrs }, is_mapped_work },
    };
    run_variants(b, "is-mapped", v, 2, layout_sparse_map);
    addr_arrays_free(hit_addrs, nt);
    addr_arrays_free(miss_addrs, nt);
}

static const void ***word_arrays_new(int threads, size_t n)
{
    const void ***w = calloc((size_t)threads, sizeof(*w));
    if (!w)
        die("out of memory");
    for (int i = 0; i < threads; i++)
        if ((w[i] = aligned_alloc(64, n * sizeof(**w))) == NULL)
            die("out of memory");
    return w;
}

static void word_arrays_free(const void ***w, int threads)
{
    for (int i = 0; i < threads; i++)
        free((void *)w[i]);
    free(w);
}

void scenario_scan(struct bench *b)
{
    const struct options *o = b->o;
    int nt = max_threads(o);
    const void ***hits = word_arrays_new(nt, ADDRS_PER_THREAD);
    const void ***scan = word_arrays_new(nt, SCAN_WORDS);
    for (int id = 0; id < nt; id++) {
        struct rng r;
        rng_seed(&r, o->seed, 4000 + (uint64_t)id);   /* the is-mapped hits */
        for (size_t i = 0; i < ADDRS_PER_THREAD; i++) {
            uintptr_t span = rng_below(&r, LAYOUT_SPARSE_SPANS);
            uintptr_t c = layout_sparse_first(span) + rng_below(&r, LAYOUT_SPARSE_RUN);
            hits[id][i] = (const char *)chunk_at(b, c) + rng_below(&r, o->chunk);
            do
                c = rng_below(&r, 2 * LAYOUT_SPARSE_SPANS * SPAN_CHUNKS);
            while (sparse_mapped(c));
        }
        rng_seed(&r, o->seed, 5000 + (uint64_t)id);
        for (size_t i = 0; i < SCAN_WORDS; i++) {
            uint64_t kind = rng_below(&r, 100);
            uintptr_t c;
            if (kind < 10) {          /* a pointer into a Mapped chunk */
                c = layout_sparse_first(rng_below(&r, LAYOUT_SPARSE_SPANS)) +
                    rng_below(&r, LAYOUT_SPARSE_RUN);
                scan[id][i] = (const char *)chunk_at(b, c) + rng_below(&r, o->chunk);
            } else if (kind < 40) {   /* a small integer */
                scan[id][i] = (const void *)(uintptr_t)rng_below(&r, 1 << 16);
            } else if (kind < 70) {   /* junk */
                scan[id][i] = (const void *)(uintptr_t)rng_next(&r);
            } else {                  /* unmapped space near the heap */
                do
                    c = rng_below(&r, 2 * LAYOUT_SPARSE_SPANS * SPAN_CHUNKS);
                while (sparse_mapped(c));
                scan[id][i] = (const char *)chunk_at(b, c) + rng_below(&r, o->chunk);
            }
        }
    }
    static char title_many[160], title_scan[160];
    snprintf(title_many, sizeof(title_many),
             "is_mapped_many hits, batches of %d, the addresses of is-mapped-hit", BATCH);
    snprintf(title_scan, sizeof(title_scan),
             "conservative scan: 1 MiB of words, 10%% into Mapped chunks, batches of %d (ns per word)",
             BATCH);
    struct variant v[] = {
        { { "is-mapped-many-hit", title_many, "sys/op", NULL },
          { .words = hits, .nwords = ADDRS_PER_THREAD }, batch_work },
        { { "conservative-scan", title_scan, "sys/op", NULL },
          { .words = scan, .nwords = SCAN_WORDS }, batch_work },
    };
    run_variants(b, "conservative-scan", v, 2, layout_sparse_map);
    word_arrays_free(hits, nt);
    word_arrays_free(scan, nt);
}
