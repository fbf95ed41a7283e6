/*
 * large-table: lookups when the table is big.  One 64 KiB chunk is marked
 * Mapped (mark_mapped: a record, no system call, so a million of them need
 * no VMAs) in each of N consecutive spans of SPAN_CHUNKS chunks: N slabs for
 * mmapper, N/4 second-level arrays for prior-art.  N grows 10^4 -> 10^5 ->
 * 10^6 on the same two instances; at each size both look up the same
 * LT_ADDRS random addresses of marked chunks, one by one (is_mapped) and in
 * batches of LT_BATCH (mmapper_is_mapped_many; prior-art's own lookup in a
 * loop), one thread, the two implementations' rounds interleaved.
 *
 * The address array is far larger than the caches, and each address picks
 * its slab at random: at 10^5 and 10^6 slabs a lookup misses the cache for
 * mmapper's slot and slab (prior-art: its second level), which is what this
 * scenario measures.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "kernel.h"
#include "scenario.h"
#include "util.h"

#define LT_LOG_CHUNK 16
#define LT_ADDRS ((size_t)1 << 20)
#define LT_BATCH 64
#define LT_PASS 4096   /* addresses per budget check */

static const size_t lt_sizes[LT_SIZES] = { 10000, 100000, 1000000 };

struct large {
    uintptr_t *addrs;            /* the lookups, as integers ... */
    const void **words;          /* ... and as the batch API takes them */
    size_t cursor;               /* one thread: where the next pass starts */
};

static uint64_t single_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    struct large *d = m->data;
    uint64_t done = 0, hits = 0;
    while (team_more(t, done)) {
        hits += m->impl->count_mapped(m->self, d->addrs + d->cursor, LT_PASS);
        d->cursor = (d->cursor + LT_PASS) % LT_ADDRS;
        done += LT_PASS;
    }
    if (hits != done)
        die("large-table: %s found %llu of %llu marked chunks", m->impl->name,
            (unsigned long long)hits, (unsigned long long)done);
    return done;
}

static uint64_t batch_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    struct large *d = m->data;
    uint64_t done = 0, hits = 0;
    while (team_more(t, done)) {
        for (size_t k = 0; k < LT_PASS; k += LT_BATCH)
            hits += m->impl->count_batch(m->self, d->words + d->cursor + k, LT_BATCH);
        d->cursor = (d->cursor + LT_PASS) % LT_ADDRS;
        done += LT_PASS;
    }
    if (hits != done)
        die("large-table: %s found %llu of %llu marked chunks in batches",
            m->impl->name, (unsigned long long)hits, (unsigned long long)done);
    return done;
}

/* The marked chunk of span s (its position varies, as in the sparse layout). */
static uintptr_t marked_chunk(uintptr_t s)
{
    return layout_sparse_first(s);
}

void scenario_large_table(struct bench *b)
{
    const struct impl *impls[2] = { &impl_mmapper, &impl_prior_art };
    size_t max = lt_sizes[LT_SIZES - 1];
    size_t chunk = (size_t)1 << LT_LOG_CHUNK;
    struct impl_env env = { .log_chunk = LT_LOG_CHUNK, .chunks = max * SPAN_CHUNKS };
    /* Nothing is ever mapped there (records only), but the window is still
     * chosen free so that no lookup can meet memory the kernel placed. */
    env.base = kern_find_window(env.chunks * chunk, chunk * SPAN_CHUNKS);

    struct large data[2];
    struct measure m[2];
    data[0].addrs = aligned_alloc(64, LT_ADDRS * sizeof(uintptr_t));
    data[0].words = aligned_alloc(64, LT_ADDRS * sizeof(void *));
    if (!data[0].addrs || !data[0].words)
        die("out of memory");
    for (int i = 0; i < 2; i++) {
        data[i].addrs = data[0].addrs;
        data[i].words = data[0].words;
        m[i] = (struct measure){ .impl = impls[i], .self = impls[i]->create(&env),
                                 .data = &data[i] };
    }

    struct rng r;
    rng_seed(&r, b->o->seed, 7000);
    size_t marked = 0;
    static char titles[2][LT_SIZES][160];
    static const char *names[2][LT_SIZES] = {
        { "large-table-1e4", "large-table-1e5", "large-table-1e6" },
        { "large-table-many-1e4", "large-table-many-1e5", "large-table-many-1e6" },
    };
    for (int si = 0; si < LT_SIZES; si++) {
        size_t n = lt_sizes[si];
        progress("large-table: %zu slabs (%d/%d)", n, si + 1, LT_SIZES);
        for (; marked < n; marked++)
            for (int i = 0; i < 2; i++)
                check(impls[i]->mark_mapped(m[i].self,
                                            (void *)(env.base + (marked_chunk(marked)
                                                                 << LT_LOG_CHUNK)),
                                            chunk),
                      "mark a chunk of the large table");
        for (size_t k = 0; k < LT_ADDRS; k++) {
            uintptr_t a = env.base + (marked_chunk(rng_below(&r, n)) << LT_LOG_CHUNK) +
                          rng_below(&r, chunk);
            data[0].addrs[k] = a;
            data[0].words[k] = (const void *)a;
        }
        for (int i = 0; i < 2; i++)
            data[i].cursor = 0;

        struct team *t = team_start(1);
        struct measure_spec single = { .work = single_work };
        struct measure_spec batch = { .work = batch_work };
        measure_interleaved(b, names[0][si], m, 2, t, &single);
        measure_interleaved(b, names[1][si], m, 2, t, &batch);
        team_finish(t);

        for (int i = 0; i < 2; i++)
            b->facts.scale_meta_per_slab[i][si] =
                (double)impls[i]->metadata_bytes(m[i].self) / (double)n;
        snprintf(titles[0][si], sizeof(titles[0][si]),
                 "is_mapped, one 64 KiB chunk marked in each of %zu slabs, random marked chunks",
                 n);
        snprintf(titles[1][si], sizeof(titles[1][si]),
                 "is_mapped_many (prior-art: its lookup in a loop), the same, batches of %d",
                 LT_BATCH);
    }
    b->facts.scale_done = true;
    for (int si = 0; si < LT_SIZES; si++)
        for (int v = 0; v < 2; v++)
            report_print(&(struct table){ names[v][si], titles[v][si], "sys/op", NULL });
    printf("metadata bytes per slab (256-chunk span), mmapper / prior-art:");
    for (int si = 0; si < LT_SIZES; si++)
        printf(" %zu: %.0f / %.0f", lt_sizes[si], b->facts.scale_meta_per_slab[0][si],
               b->facts.scale_meta_per_slab[1][si]);
    printf("\n");
    for (int i = 0; i < 2; i++)
        impls[i]->destroy(m[i].self);   /* records only: nothing to unmap */
    free(data[0].addrs);
    free((void *)data[0].words);
}
