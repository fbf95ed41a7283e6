/*
 * stress_race: many more threads than cores race on the same chunks.
 *
 * Each round has three phases over a region of 1024 chunks of 64 KiB (four
 * slabs, aligned to slab boundaries), all Unmapped when a round starts; the
 * main thread checks between phases while the workers wait at a barrier.
 *  1. map: every thread calls ensure_mapped on random ranges (one chunk or
 *     many, ends not chunk-aligned) and writes into every chunk of the range
 *     as soon as the call returns.  Checked: every call returns 0 and the
 *     chunks read Mapped; each requested chunk was mapped by exactly one
 *     system call (the ledger counts one change per chunk, and no call other
 *     than fresh mmaps was made); a chunk reads zero where this thread has not
 *     written yet and keeps what it wrote (no second mapping replaced it).
 *  2. unmap: threads race mmapper_unmap over random overlapping ranges, then
 *     each unmaps its own stripe.  Checked: every chunk was munmapped exactly
 *     once, every slab was freed (stats.slabs == 0), the range is empty.
 *  3. churn: threads race ensure_mapped on short ranges against unmap of
 *     whole slabs, so slabs die while other threads are about to lock them.
 *     Checked (ledger, as it happens): no fresh mapping over a live chunk, no
 *     syscall on a chunk not held, no two syscalls on one chunk at once; at
 *     the end, records, ledger, kernel and gauges agree.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "os_ledger.h"
#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 1024
#define MAX_RANGE 64

struct shared {
    mmapper_t *m;
    struct test_os tos;
    struct os_ledger ledger;
    char *base;
    size_t chunk;
    struct stress_opts opts;
    pthread_barrier_t barrier;
    unsigned round;                    /* written by main between barriers */
    bool more;                         /* another round follows; likewise */
    _Atomic uint8_t requested[NCHUNKS];
    _Atomic uint64_t ensure_calls, chunk_requests, unmap_calls, churn_ops;
};

struct worker {
    struct shared *s;
    unsigned id;
};

static void wait_all(struct shared *s)
{
    pthread_barrier_wait(&s->barrier);
}

/* A random range of chunks [*first, *first + *n), as unaligned bytes. */
static void pick_range(struct shared *s, struct rng *r, size_t lo, size_t span, size_t max,
                       size_t *first, size_t *n, char **start, size_t *bytes)
{
    size_t c = lo + rng_below(r, span), len = rng_length(r, max);
    if (c + len > lo + span)
        len = lo + span - c;
    size_t head = rng_below(r, s->chunk);
    char *from = s->base + c * s->chunk + head;
    char *to = s->base + (c + len - 1) * s->chunk + 1 + rng_below(r, s->chunk);
    if (to <= from)
        to = from + 1 + rng_below(r, s->chunk - head);
    *first = c;
    *n = len;
    *start = from;
    *bytes = (size_t)(to - from);
}

/* Each thread has its own word at both ends of every chunk. */
static uint64_t *slot_head(struct shared *s, size_t c, unsigned id)
{
    return (uint64_t *)(s->base + c * s->chunk) + id;
}

static uint64_t *slot_tail(struct shared *s, size_t c, unsigned id)
{
    return (uint64_t *)(s->base + (c + 1) * s->chunk) - 1 - id;
}

static void map_phase(struct worker *w, struct rng *r, uint64_t *mine)
{
    struct shared *s = w->s;
    for (uint64_t op = 0; op < s->opts.ops; op++) {
        size_t first, n, bytes;
        char *start;
        pick_range(s, r, 0, NCHUNKS, MAX_RANGE, &first, &n, &start, &bytes);
        CHECK_RC(mmapper_ensure_mapped(s->m, start, bytes, NULL), 0, "ensure_mapped");
        atomic_fetch_add(&s->ensure_calls, 1);
        atomic_fetch_add(&s->chunk_requests, n);
        for (size_t c = first; c < first + n; c++) {
            CHECK(mmapper_is_mapped(s->m, s->base + c * s->chunk),
                  "chunk %zu not Mapped right after ensure_mapped returned", c);
            uint64_t *a = slot_head(s, c, w->id), *b = slot_tail(s, c, w->id);
            CHECK(*a == mine[c] && *b == mine[c],
                  "thread %u chunk %zu holds %#" PRIx64 "/%#" PRIx64 ", wrote %#" PRIx64
                  " (0: never) this round: mapped twice or not zero-filled",
                  w->id, c, *a, *b, mine[c]);
            mine[c] = (uint64_t)(s->round + 1) << 32 | (op + 1);
            *a = *b = mine[c];
            atomic_store_explicit(&s->requested[c], 1, memory_order_relaxed);
        }
    }
}

static void unmap_phase(struct worker *w, struct rng *r)
{
    struct shared *s = w->s;
    for (uint64_t op = 0; op < s->opts.ops / 4; op++) {
        size_t first, n, bytes;
        char *start;
        pick_range(s, r, 0, NCHUNKS, NCHUNKS, &first, &n, &start, &bytes);
        CHECK_RC(mmapper_unmap(s->m, start, bytes), 0, "unmap");
        atomic_fetch_add(&s->unmap_calls, 1);
    }
    size_t per = (NCHUNKS + s->opts.threads - 1) / s->opts.threads;
    size_t lo = w->id * per, hi = lo + per < NCHUNKS ? lo + per : NCHUNKS;
    if (lo < hi) {
        CHECK_RC(mmapper_unmap(s->m, s->base + lo * s->chunk, (hi - lo) * s->chunk), 0,
                 "unmap of own stripe");
        atomic_fetch_add(&s->unmap_calls, 1);
    }
}

static void churn_phase(struct worker *w, struct rng *r)
{
    struct shared *s = w->s;
    const size_t slab = STRESS_SLAB_CHUNKS, nslabs = NCHUNKS / slab;
    for (uint64_t op = 0; op < s->opts.ops; op++) {
        size_t k = rng_below(r, nslabs), first, n, bytes;
        char *start;
        if (rng_below(r, 2)) {
            pick_range(s, r, k * slab, slab, 8, &first, &n, &start, &bytes);
            CHECK_RC(mmapper_ensure_mapped(s->m, start, bytes, NULL), 0, "churn ensure_mapped");
        } else {
            CHECK_RC(mmapper_unmap(s->m, s->base + k * slab * s->chunk, slab * s->chunk), 0,
                     "churn unmap of a slab");
        }
        atomic_fetch_add(&s->churn_ops, 1);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    /* Before the region exists: urcu-bp registers this thread (it may mmap)
     * and the malloc below may map an arena; neither may land in the
     * region's holes later. */
    (void)mmapper_is_mapped(s->m, s);
    uint64_t *mine = calloc(NCHUNKS, sizeof(*mine));
    CHECK(mine != NULL, "out of memory");
    struct rng r;
    rng_init(&r, s->opts.seed, w->id + 1);
    wait_all(s);
    do {
        for (size_t c = 0; c < NCHUNKS; c++)
            mine[c] = 0;
        wait_all(s);
        map_phase(w, &r, mine);
        wait_all(s);
        wait_all(s);
        unmap_phase(w, &r);
        wait_all(s);
        wait_all(s);
        churn_phase(w, &r);
        wait_all(s);
        wait_all(s);   /* main has decided whether another round follows */
    } while (s->more);
    free(mine);
    return NULL;
}

/* Main thread, workers parked: the stats gauges agree with the records. */
static void check_gauges(struct shared *s, const char *when)
{
    uint64_t count[4] = { 0 }, slabs = 0;
    for (size_t c = 0; c < NCHUNKS; c++) {
        mmapper_state_t st = mmapper_state(s->m, s->base + c * s->chunk);
        count[st]++;
    }
    for (size_t k = 0; k < NCHUNKS / STRESS_SLAB_CHUNKS; k++) {
        bool live = false;
        for (size_t c = k * STRESS_SLAB_CHUNKS; c < (k + 1) * STRESS_SLAB_CHUNKS; c++)
            live |= mmapper_state(s->m, s->base + c * s->chunk) != MMAPPER_UNMAPPED;
        slabs += live;
    }
    /* Empty slabs kept while the reclaimer was behind (RETIRE_LIMIT) go now. */
    CHECK_RC(mmapper_reclaim_wait(s->m), 0, "reclaim_wait");
    struct mmapper_stats st;
    mmapper_get_stats(s->m, &st);
    CHECK(st.chunks_mapped == count[MMAPPER_MAPPED] &&
              st.chunks_quarantined == count[MMAPPER_QUARANTINED] &&
              st.chunks_protected == count[MMAPPER_PROTECTED],
          "%s: gauges M/Q/P %" PRIu64 "/%" PRIu64 "/%" PRIu64 " but records say %" PRIu64
          "/%" PRIu64 "/%" PRIu64,
          when, st.chunks_mapped, st.chunks_quarantined, st.chunks_protected,
          count[MMAPPER_MAPPED], count[MMAPPER_QUARANTINED], count[MMAPPER_PROTECTED]);
    CHECK(st.slabs == slabs, "%s: %" PRIu64 " live slabs, expected %" PRIu64
                             " (slabs with a chunk not Unmapped)", when, st.slabs, slabs);
}

static void check_map_phase(struct shared *s, uint64_t *mapped, uint64_t *mmaps)
{
    uint64_t requested = 0;
    for (size_t c = 0; c < NCHUNKS; c++) {
        bool req = atomic_load(&s->requested[c]);
        mmapper_state_t st = mmapper_state(s->m, s->base + c * s->chunk);
        uint64_t changes = os_ledger_changes(&s->ledger, c, 1);
        CHECK(st == (req ? MMAPPER_MAPPED : MMAPPER_UNMAPPED), "chunk %zu in state %d", c, st);
        CHECK(changes == req, "chunk %zu changed by %" PRIu64 " system calls, requested %d",
              c, changes, req);
        requested += req;
    }
    uint64_t n_mmap = test_os_calls(&s->tos, TOS_MMAP);
    CHECK(n_mmap == atomic_load(&s->tos.noreplace_maps) &&
              n_mmap == os_ledger_starts(&s->ledger, 0, NCHUNKS),
          "%" PRIu64 " mmap calls, %" PRIu64 " fresh mappings, %" PRIu64 " in the region",
          n_mmap, atomic_load(&s->tos.noreplace_maps),
          os_ledger_starts(&s->ledger, 0, NCHUNKS));
    CHECK(test_os_total_calls(&s->tos) == n_mmap, "system calls other than mmap: %" PRIu64,
          test_os_total_calls(&s->tos) - n_mmap);
    stress_check_ledger(&s->ledger, s->m, "after the map race");
    stress_check_maps(s->m, s->base, NCHUNKS * s->chunk, true, "after the map race");
    check_gauges(s, "after the map race");
    *mapped += requested;
    *mmaps += n_mmap;
}

static void check_unmap_phase(struct shared *s, uint64_t *munmaps)
{
    for (size_t c = 0; c < NCHUNKS; c++) {
        bool req = atomic_load(&s->requested[c]);
        CHECK(mmapper_state(s->m, s->base + c * s->chunk) == MMAPPER_UNMAPPED,
              "chunk %zu survived the unmap race", c);
        CHECK(os_ledger_changes(&s->ledger, c, 1) == 2u * req,
              "chunk %zu: %" PRIu64 " system calls changed it, expected map + unmap", c,
              os_ledger_changes(&s->ledger, c, 1));
    }
    *munmaps += test_os_calls(&s->tos, TOS_MUNMAP);
    struct mmapper_stats st;
    mmapper_get_stats(s->m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs still live with every chunk Unmapped", st.slabs);
    stress_check_ledger(&s->ledger, s->m, "after the unmap race");
    stress_check_maps(s->m, s->base, NCHUNKS * s->chunk, true, "after the unmap race");
    CHECK(procmaps_range_free(s->base, NCHUNKS * s->chunk), "region not empty after unmap");
}

int main(int argc, char **argv)
{
    static struct shared s;
    s.opts = (struct stress_opts){ .threads = 64, .ops = STRESS_SCALE(200, 40),
                                   .rounds = STRESS_SCALE(6, 3) };
    stress_parse(argc, argv, "threads race ensure_mapped/unmap over the same chunks", &s.opts);
    CHECK(s.opts.threads <= 256, "at most 256 threads (one word each per chunk end)");

    test_os_init(&s.tos);
    os_ledger_init(&s.ledger, &s.tos.os);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &s.ledger.os };
    CHECK_RC(mmapper_create(&cfg, &s.m), 0, "mmapper_create");
    s.chunk = mmapper_granularity(s.m);
    stress_catch_faults(s.m);
    pthread_barrier_init(&s.barrier, NULL, s.opts.threads + 1);

    struct worker *ws = calloc(s.opts.threads, sizeof(*ws));
    pthread_t *tids = calloc(s.opts.threads, sizeof(*tids));
    CHECK(ws && tids, "out of memory");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)1 << 20);
    for (unsigned i = 0; i < s.opts.threads; i++) {
        ws[i] = (struct worker){ .s = &s, .id = i };
        CHECK(pthread_create(&tids[i], &attr, worker_main, &ws[i]) == 0, "thread %u", i);
    }
    pthread_attr_destroy(&attr);

    s.base = stress_region(s.m, NCHUNKS * s.chunk, STRESS_SLAB_CHUNKS * s.chunk);
    CHECK_RC(mmapper_unmap(s.m, s.base, NCHUNKS * s.chunk), 0, "unmap of the fresh region");
    CHECK(os_ledger_track(&s.ledger, s.m, s.base, NCHUNKS * s.chunk) == 0, "ledger");
    wait_all(&s);

    uint64_t mapped = 0, mmaps = 0, munmaps = 0;
    unsigned round = 0;
    double t0 = stress_now();
    do {
        s.round = round;
        for (size_t c = 0; c < NCHUNKS; c++)
            atomic_store(&s.requested[c], 0);
        test_os_reset_counts(&s.tos);
        os_ledger_reset_counts(&s.ledger);
        wait_all(&s);   /* map race */
        wait_all(&s);
        check_map_phase(&s, &mapped, &mmaps);
        test_os_reset_counts(&s.tos);
        wait_all(&s);   /* unmap race */
        wait_all(&s);
        check_unmap_phase(&s, &munmaps);
        wait_all(&s);   /* churn */
        wait_all(&s);
        stress_check_ledger(&s.ledger, s.m, "after the churn");
        stress_check_maps(s.m, s.base, NCHUNKS * s.chunk, true, "after the churn");
        check_gauges(&s, "after the churn");
        CHECK_RC(mmapper_unmap(s.m, s.base, NCHUNKS * s.chunk), 0, "final unmap");
        check_gauges(&s, "after the round");
        round++;
        s.more = s.opts.seconds > 0 ? !stress_time_up(&s.opts, t0) : round < s.opts.rounds;
        wait_all(&s);
    } while (s.more);
    for (unsigned i = 0; i < s.opts.threads; i++)
        pthread_join(tids[i], NULL);

    struct mmapper_stats st;
    mmapper_get_stats(s.m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs left", st.slabs);
    stress_check_maps(s.m, s.base, NCHUNKS * s.chunk, true, "at the end");
    stress_summary("%u threads x %u rounds: %" PRIu64 " ensure_mapped calls (%" PRIu64
                   " chunk requests) -> %" PRIu64 " mmap calls mapping %" PRIu64
                   " chunks, each exactly once; %" PRIu64 " unmap calls -> %" PRIu64
                   " munmap; %" PRIu64 " churn ops; slabs back to 0 every round",
                   s.opts.threads, round, atomic_load(&s.ensure_calls),
                   atomic_load(&s.chunk_requests), mmaps, mapped,
                   atomic_load(&s.unmap_calls), munmaps, atomic_load(&s.churn_ops));
    mmapper_destroy(s.m);
    os_ledger_fini(&s.ledger);
    pthread_barrier_destroy(&s.barrier);
    free(ws);
    free(tids);
    return 0;
}
