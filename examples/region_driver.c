/*
 * Stress test of the region allocator (region_alloc.c): threads allocate
 * objects of random sizes, fill each with its own pattern, and free them in
 * random order after checking the pattern, some of them from another thread
 * (handed over through shared slots).  The heap is small next to the bytes
 * allocated, so chunks must be recycled for the run to finish.
 *
 * Checked: every object's contents and that its first and last byte are in a
 * Mapped chunk when it is freed; at a quiescent point mid-run, mmapper's
 * chunks_mapped == the region's chunks_in_use; once everything is freed, no
 * chunk Mapped and the kernel showing the whole heap PROT_NONE; after the
 * heap is unmapped, no chunk, no slab and no kernel mapping left.
 *
 *   region_driver [--threads N] [--allocs N] [--seed N] [--heap-mb N]
 *                 [--max-size BYTES] [--live N]
 * Exits 0 if every check passed, 1 otherwise.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmapper.h"
#include "pattern.h"
#include "procmaps.h"
#include "region_alloc.h"


static struct {
    unsigned threads, live;
    unsigned long allocs;
    uint64_t seed;
    size_t heap_mb, max_size;
} opt = {
#ifdef SANITIZED   /* a few seconds under the sanitizers too */
    .threads = 8, .allocs = 10000,
#else
    .threads = 16, .allocs = 100000,
#endif
    .live = 256, .seed = 1, .heap_mb = 512, .max_size = 4096,
};

#define XCHG_SLOTS 64
static _Atomic(uint64_t *) xchg[XCHG_SLOTS];   /* objects between threads */
static struct region *heap;
static pthread_barrier_t quiet, checked;
/* Object layout: word 0 the tag, word 1 the size in words, then the pattern. */
static bool check_object(const uint64_t *o)
{
    if (!region_contains(heap, o)) {
        fail("object %p: its chunk is not mapped", (const void *)o);
        return false;
    }
    uint64_t tag = o[0], n = o[1];
    if (n < 2 || n > opt.max_size / 8) {
        fail("object %p: corrupt header (size %" PRIu64 " words)", (const void *)o, n);
        return false;
    }
    if (!region_contains(heap, o + n - 1)) {
        fail("object %p: its last byte is not mapped", (const void *)o);
        return false;
    }
    size_t bad = pattern_check(o + 2, n - 2, n - 2, tag);
    if (bad != SIZE_MAX) {
        fail("object %p (%" PRIu64 " words): word %zu overwritten", (const void *)o, n, bad + 2);
        return false;
    }
    return true;
}

static void check_and_free(uint64_t *o)
{
    if (check_object(o))
        region_free(heap, o);   /* a corrupt object is leaked, not freed */
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = mix64(opt.seed * 0x100000001b3ull + id);
    struct region_thread t;
    region_thread_init(heap, &t);
    uint64_t **live = calloc(opt.live, sizeof(*live));
    unsigned nlive = 0;
    for (unsigned long k = 0; live && k < opt.allocs; k++) {
        if (nlive == opt.live) {
            unsigned v = (unsigned)(rng_next(&rng) % nlive);
            uint64_t *o = live[v];
            live[v] = live[--nlive];
            if (rng_next(&rng) % 8 == 0)   /* let another thread free it */
                o = atomic_exchange(&xchg[rng_next(&rng) % XCHG_SLOTS], o);
            if (o)
                check_and_free(o);
        }
        size_t words = rng_range(&rng, 2, opt.max_size / 8);
        uint64_t *o = region_alloc(&t, words * 8);
        if (!o) {
            fail("thread %u: heap exhausted after %lu allocations", id, k);
            break;
        }
        /* A random tag: tag + i ranges of two objects never overlap, so an
         * object placed over another one shows. */
        uint64_t tag = rng_next(&rng);
        o[0] = tag;
        o[1] = words;
        pattern_fill(o + 2, words - 2, tag);
        live[nlive++] = o;
    }
    pthread_barrier_wait(&quiet);   /* the main thread reads the stats now */
    for (unsigned i = 0; i < nlive; i++)
        check_object(live[i]);
    pthread_barrier_wait(&checked);
    for (unsigned i = 0; i < nlive; i++)
        check_and_free(live[i]);
    free(live);
    region_thread_finish(&t);
    return NULL;
}

/* With every thread parked, the mapper's count must be the region's. */
static void check_quiet(mmapper_t *m)
{
    struct region_stats rs;
    struct mmapper_stats ms;
    region_get_stats(heap, &rs);
    mmapper_get_stats(m, &ms);
    printf("mid-run: %" PRIu64 " chunks in use, mmapper: %" PRIu64 " mapped, %" PRIu64
           " quarantined\n", rs.chunks_in_use, ms.chunks_mapped, ms.chunks_quarantined);
    if (rs.decommit_failures)
        fail("%" PRIu64 " decommits failed", rs.decommit_failures);
    if (ms.chunks_mapped != rs.chunks_in_use)
        fail("mid-run: chunks_mapped %" PRIu64 " != chunks in use %" PRIu64, ms.chunks_mapped,
             rs.chunks_in_use);
    if (ms.chunks_mapped + ms.chunks_quarantined != rs.chunks_total || ms.chunks_protected)
        fail("mid-run: heap chunks not all Mapped or Quarantined");
    for (unsigned i = 0; i < XCHG_SLOTS; i++) {
        uint64_t *o = atomic_load(&xchg[i]);
        if (o)
            check_object(o);
    }
}

static void check_kernel(mmapper_t *m, const char *when)
{
    char why[160];
    if (procmaps_check(m, region_heap_start(heap), region_heap_bytes(heap), true, why,
                       sizeof(why)) != 0)
        fail("%s: /proc/self/maps disagrees: %s", when, why);
}

static int parse(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "threads", required_argument, NULL, 't' }, { "allocs", required_argument, NULL, 'a' },
        { "seed", required_argument, NULL, 's' },    { "heap-mb", required_argument, NULL, 'h' },
        { "max-size", required_argument, NULL, 'm' }, { "live", required_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        unsigned long long v = strtoull(optarg ? optarg : "", NULL, 0);
        switch (c) {
        case 't': opt.threads = (unsigned)v; break;
        case 'a': opt.allocs = (unsigned long)v; break;
        case 's': opt.seed = v; break;
        case 'h': opt.heap_mb = (size_t)v; break;
        case 'm': opt.max_size = (size_t)v; break;
        case 'l': opt.live = (unsigned)v; break;
        default: return -1;
        }
    }
    if (optind != argc || opt.threads == 0 || opt.threads > 1024 || opt.live == 0 ||
        opt.max_size < 16 || opt.heap_mb == 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (parse(argc, argv) != 0) {
        fprintf(stderr, "usage: %s [--threads N] [--allocs N] [--seed N] [--heap-mb N] "
                        "[--max-size BYTES] [--live N]\n", argv[0]);
        return 1;
    }
    mmapper_t *m;
    int err = mmapper_create(NULL, &m);
    if (!err) {
        size_t chunk = mmapper_granularity(m);
        size_t bytes = (opt.heap_mb << 20) / chunk * chunk;
        err = opt.max_size > chunk ? -EINVAL : region_create(m, bytes ? bytes : chunk, &heap);
    }
    if (err) {
        fprintf(stderr, "FAIL: setup: %s\n", mmapper_strerror(err));
        return 1;
    }
    printf("region_driver: %u threads x %lu allocations of 16..%zu bytes, seed %" PRIu64
           ", heap %zu MiB\n", opt.threads, opt.allocs, opt.max_size, opt.seed,
           region_heap_bytes(heap) >> 20);

    pthread_t *tids = calloc(opt.threads, sizeof(*tids));
    pthread_barrier_init(&quiet, NULL, opt.threads + 1);
    pthread_barrier_init(&checked, NULL, opt.threads + 1);
    for (unsigned i = 0; i < opt.threads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;   /* the others wait at the barrier forever: exit */
        }
    pthread_barrier_wait(&quiet);
    check_quiet(m);
    pthread_barrier_wait(&checked);
    for (unsigned i = 0; i < opt.threads; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    for (unsigned i = 0; i < XCHG_SLOTS; i++) {
        uint64_t *o = atomic_exchange(&xchg[i], NULL);
        if (o)
            check_and_free(o);
    }

    struct region_stats rs;
    struct mmapper_stats ms;
    region_get_stats(heap, &rs);
    mmapper_get_stats(m, &ms);
    printf("all freed: %" PRIu64 " fresh chunks taken, %" PRIu64 " recycles; mmapper: %" PRIu64
           " mapped, %" PRIu64 " quarantined\n", rs.chunks_fresh_taken, rs.chunks_recycled,
           ms.chunks_mapped, ms.chunks_quarantined);
    if (rs.chunks_in_use != 0 || ms.chunks_mapped != 0)
        fail("all freed, yet %" PRIu64 " chunks in use and %" PRIu64 " Mapped", rs.chunks_in_use,
             ms.chunks_mapped);
    if (ms.chunks_quarantined != rs.chunks_total)
        fail("all freed: %" PRIu64 " Quarantined, the heap has %" PRIu64, ms.chunks_quarantined,
             rs.chunks_total);
    check_kernel(m, "all freed");

    void *start = region_heap_start(heap);
    size_t bytes = region_heap_bytes(heap);
    if ((err = region_destroy(heap)) != 0)
        fail("unmapping the heap: %s", mmapper_strerror(err));
    mmapper_get_stats(m, &ms);
    printf("unmapped: mmapper: %" PRIu64 " mapped, %" PRIu64 " quarantined, %" PRIu64
           " slabs\n", ms.chunks_mapped, ms.chunks_quarantined, ms.slabs);
    if (ms.chunks_mapped || ms.chunks_quarantined || ms.chunks_protected || ms.slabs)
        fail("after unmap: chunks or slabs left");
    char why[160];
    if (procmaps_check(m, start, bytes, true, why, sizeof(why)) != 0)
        fail("after unmap: /proc/self/maps disagrees: %s", why);
    if (!procmaps_range_free(start, bytes))
        fail("after unmap: the kernel still maps part of the heap");
    mmapper_destroy(m);

    unsigned long f = atomic_load(&failures);
    printf("%s: %lu failure(s)\n", f ? "FAIL" : "PASS", f);
    return f ? 1 : 0;
}
