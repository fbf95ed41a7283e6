/*
 * Test and throughput of the jemalloc extent hooks (jemalloc_hooks.c).
 *
 * Threads run a random mix of mallocx / dallocx / rallocx, sizes 8 B to
 * 8 MiB, on one arena, with the tcache off so that every call reaches the
 * arena.  Each object holds a pattern (pattern.h) checked before it is freed
 * or reallocated (rallocx must keep the common prefix).
 *
 * Test, on an arena whose hooks take memory from a private mapper:
 *  - every byte jemalloc hands out lies in chunks mmapper reports Mapped;
 *  - jemalloc's stats agree with mmapper's (see check_stats());
 *  - once the arena is destroyed, the mapper holds no chunk and no slab.
 * Throughput: the same workload (same seed, no mmapper checks) on a fresh
 * hooked arena and on a fresh arena with jemalloc's default hooks, printed
 * in ops/s; a figure, not a pass/fail criterion.
 *
 *   jemalloc_driver [--threads N] [--ops N] [--seed N] [--live N] [--rounds N]
 *                   [--max-size BYTES] [--zero-percent N]
 * Exits 0 if every check passed, 1 otherwise.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jemalloc_hooks.h"
#include "mmapper.h"
#include "pattern.h"


static struct {
    unsigned threads, live, rounds;
    unsigned long ops;
    uint64_t seed;
    size_t max_size;
    unsigned zero_pct;   /* share of mallocx calls with MALLOCX_ZERO */
    unsigned chunk_log;  /* 0: mmapper's default */
} opt = {
#ifdef SANITIZED   /* seconds, not minutes; timings mean little there */
    .ops = 1000, .rounds = 0,
#else
    .ops = 5000, .rounds = 1,
#endif
    .threads = 8, .live = 32, .seed = 1, .max_size = (size_t)8 << 20,
    .zero_pct = 25,
};

struct object {
    uint64_t *p;
    size_t words;
    uint64_t tag;
};

struct run {
    unsigned arena;
    mmapper_t *m;   /* check every object against it; NULL: benchmark */
    pthread_barrier_t quiet, checked;
};

/* Every chunk [p, p + bytes) touches must be Mapped. */
static void check_mapped(mmapper_t *m, const void *p, size_t bytes)
{
    size_t chunk = mmapper_granularity(m);
    uintptr_t a = (uintptr_t)p, end = a + bytes;
    for (uintptr_t c = a & ~(chunk - 1); c < end; c += chunk)
        if (!mmapper_is_mapped(m, (const void *)(c < a ? a : c))) {
            fail("object %p (%zu bytes): chunk %#" PRIxPTR " is not Mapped", p, bytes, c);
            return;
        }
}

/* Pattern check of the first `limit` words of o (rallocx keeps a prefix). */
static bool check_object(const struct object *o, size_t limit, const char *when)
{
    size_t bad = pattern_check(o->p, o->words, limit, o->tag);
    if (bad != SIZE_MAX)
        fail("%s: object %p (%zu words): word %zu overwritten", when, (void *)o->p, o->words,
             bad);
    return bad == SIZE_MAX;
}

static void check_zero(const struct object *o)
{
    for (size_t i = pattern_next(SIZE_MAX, o->words); i < o->words; i = pattern_next(i, o->words))
        if (o->p[i] != 0) {
            fail("mallocx(MALLOCX_ZERO): object %p (%zu words): word %zu not zero",
                 (void *)o->p, o->words, i);
            return;
        }
}

/* Log-uniform over [8 B, max_size], a multiple of 8. */
static size_t random_words(uint64_t *rng)
{
    size_t max = opt.max_size / 8;
    size_t base = (size_t)1 << rng_range(rng, 0, 63 - (unsigned)__builtin_clzll(max));
    size_t w = base + rng_next(rng) % base;
    return w > max ? max : w;
}

static void *worker(void *arg)
{
    struct run *run = ((void **)arg)[0];
    unsigned id = (unsigned)(uintptr_t)((void **)arg)[1];
    int flags = (int)MALLOCX_ARENA(run->arena) | MALLOCX_TCACHE_NONE;
    uint64_t rng = mix64(opt.seed * 0x100000001b3ull + id);
    struct object *live = calloc(opt.live, sizeof(*live));
    unsigned nlive = 0;
    for (unsigned long k = 0; live && k < opt.ops; k++) {
        unsigned dice = (unsigned)(rng_next(&rng) % 4);
        if (nlive == 0 || (dice < 2 && nlive < opt.live)) {
            struct object o = { .words = random_words(&rng), .tag = rng_next(&rng) };
            /* Sometimes zeroed: jemalloc skips the memset for extents the
             * hooks said were zero, so this checks that they were.  (It
             * also makes the default arena slower: jemalloc zeroes large
             * extents of its own hooks with MADV_DONTNEED, then refaults.) */
            bool zero = rng_next(&rng) % 100 < opt.zero_pct;
            if (!(o.p = mallocx(o.words * 8, flags | (zero ? MALLOCX_ZERO : 0)))) {
                fail("mallocx(%zu) failed", o.words * 8);
                break;
            }
            if (run->m)
                check_mapped(run->m, o.p, o.words * 8);
            if (zero)
                check_zero(&o);
            pattern_fill(o.p, o.words, o.tag);
            live[nlive++] = o;
            continue;
        }
        unsigned v = (unsigned)(rng_next(&rng) % nlive);
        struct object *o = &live[v];
        if (run->m)
            check_mapped(run->m, o->p, o->words * 8);
        check_object(o, o->words, "before free");
        if (dice == 2 || nlive == opt.live) {
            dallocx(o->p, flags);
            *o = live[--nlive];
            continue;
        }
        size_t words = random_words(&rng);
        uint64_t *q = rallocx(o->p, words * 8, flags);
        if (!q) {
            fail("rallocx(%zu) failed", words * 8);
            continue;
        }
        o->p = q;
        if (run->m)
            check_mapped(run->m, q, words * 8);
        check_object(o, words, "after rallocx");
        o->words = words;
        o->tag = rng_next(&rng);
        pattern_fill(q, words, o->tag);
    }
    if (run->m) {
        pthread_barrier_wait(&run->quiet);     /* main thread: check_stats() */
        pthread_barrier_wait(&run->checked);
    }
    for (unsigned i = 0; i < nlive; i++) {
        check_object(&live[i], live[i].words, "at the end");
        dallocx(live[i].p, flags);
    }
    free(live);
    return NULL;
}

/*
 * "Consistent" means, with no thread inside jemalloc (C = chunk size):
 *  (1) mapped <= chunks_mapped * C: jemalloc's `mapped` (its metadata plus
 *      extents active or cached dirty, all committed) lies in Mapped chunks;
 *  (2) mapped + retained + abandoned_vm <= (chunks_mapped +
 *      chunks_quarantined) * C: every byte jemalloc holds lies in a chunk the
 *      hooks reserved;
 *  (3) (chunks_mapped + chunks_quarantined) * C < mapped + retained +
 *      abandoned_vm + tails * C, with tails <= the successful allocs: the
 *      hooks hold nothing beyond that but the tail of each reservation;
 *  (4) chunks_protected == 0: the hooks never protect.
 */
static bool mallctl_size(const char *fmt, unsigned arena, size_t *out)
{
    char name[96];
    size_t sz = sizeof(*out);
    snprintf(name, sizeof(name), fmt, arena);
    return mallctl(name, out, &sz, NULL, 0) == 0;
}

static void check_stats(unsigned arena, mmapper_t *m, struct mmapper_extent_hooks *h,
                        const char *when)
{
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);   /* refresh the stats */
    size_t mapped, retained, abandoned;
    if (!mallctl_size("stats.arenas.%u.mapped", arena, &mapped) ||
        !mallctl_size("stats.arenas.%u.retained", arena, &retained) ||
        !mallctl_size("stats.arenas.%u.abandoned_vm", arena, &abandoned)) {
        printf("%s: jemalloc built without stats, consistency not checked\n", when);
        return;
    }
    struct mmapper_stats ms;
    struct mmapper_extent_hooks_stats hs;
    mmapper_get_stats(m, &ms);
    mmapper_extent_hooks_get_stats(h, &hs);
    uint64_t chunk = mmapper_granularity(m);
    uint64_t held = (uint64_t)mapped + retained + abandoned;
    uint64_t reserved = (ms.chunks_mapped + ms.chunks_quarantined) * chunk;
    printf("%s: jemalloc mapped %.1f MiB, retained %.1f MiB; mmapper %" PRIu64 " chunks Mapped, %"
           PRIu64 " Quarantined (%.1f MiB reserved)\n", when, mapped / 1048576.0,
           retained / 1048576.0, ms.chunks_mapped, ms.chunks_quarantined, reserved / 1048576.0);
    if (mapped > ms.chunks_mapped * chunk)
        fail("%s: jemalloc mapped %zu > Mapped chunks %" PRIu64 " bytes", when, mapped,
             ms.chunks_mapped * chunk);
    if (held > reserved)
        fail("%s: jemalloc holds %" PRIu64 " bytes > %" PRIu64 " reserved", when, held, reserved);
    if (reserved >= held + (hs.allocs - hs.alloc_failures) * chunk)
        fail("%s: %" PRIu64 " bytes reserved, jemalloc holds only %" PRIu64, when, reserved, held);
    if (ms.chunks_protected)
        fail("%s: %" PRIu64 " chunks Protected", when, ms.chunks_protected);
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Run the workload on run->arena; with run->m, check the stats mid-run. */
static double run_workload(struct run *run, struct mmapper_extent_hooks *h)
{
    pthread_t *tids = calloc(opt.threads, sizeof(*tids));
    void *(*args)[2] = calloc(opt.threads, sizeof(*args));
    if (!tids || !args) {
        fprintf(stderr, "FAIL: out of memory\n");
        exit(1);
    }
    if (run->m) {
        pthread_barrier_init(&run->quiet, NULL, opt.threads + 1);
        pthread_barrier_init(&run->checked, NULL, opt.threads + 1);
    }
    double t0 = seconds();
    for (unsigned i = 0; i < opt.threads; i++) {
        args[i][0] = run;
        args[i][1] = (void *)(uintptr_t)i;
        if (pthread_create(&tids[i], NULL, worker, args[i]) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            exit(1);   /* the others wait at the barrier forever */
        }
    }
    if (run->m) {
        pthread_barrier_wait(&run->quiet);
        check_stats(run->arena, run->m, h, "mid-run, objects live");
        pthread_barrier_wait(&run->checked);
    }
    for (unsigned i = 0; i < opt.threads; i++)
        pthread_join(tids[i], NULL);
    double t = seconds() - t0;
    if (run->m) {
        pthread_barrier_destroy(&run->quiet);
        pthread_barrier_destroy(&run->checked);
    }
    free(tids);
    free(args);
    return t;
}

static unsigned arena_create(struct mmapper_extent_hooks *h)
{
    unsigned ind;
    size_t sz = sizeof(ind);
    int err = h ? mmapper_extent_hooks_arena_create(h, &ind)
                : mallctl("arenas.create", &ind, &sz, NULL, 0);
    if (err) {
        fprintf(stderr, "FAIL: arenas.create: %s\n", strerror(err));
        exit(1);
    }
    return ind;
}

static void arena_ctl(unsigned ind, const char *what)
{
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.%s", ind, what);
    int err = mallctl(name, NULL, NULL, NULL, 0);
    if (err)
        fail("%s: %s", name, strerror(err));
}

/* After its arenas are destroyed, the hooks must have given everything back. */
static void check_empty(mmapper_t *m, const char *when)
{
    struct mmapper_stats ms;
    mmapper_get_stats(m, &ms);
    printf("%s: mmapper %" PRIu64 " Mapped, %" PRIu64 " Quarantined, %" PRIu64 " slabs\n", when,
           ms.chunks_mapped, ms.chunks_quarantined, ms.slabs);
    if (ms.chunks_mapped || ms.chunks_quarantined || ms.chunks_protected || ms.slabs)
        fail("%s: the mapper still holds chunks or slabs", when);
}

static void print_hooks(struct mmapper_extent_hooks *h)
{
    struct mmapper_extent_hooks_stats s;
    mmapper_extent_hooks_get_stats(h, &s);
    printf("hooks: %" PRIu64 " allocs (%" PRIu64 " failed), %" PRIu64 " commits, %" PRIu64
           " decommits (%" PRIu64 " releasing chunks), %" PRIu64 " purges, %" PRIu64 " dallocs (%" PRIu64
           " refused), %" PRIu64 " destroys, %" PRIu64 " unmap failures\n",
           s.allocs, s.alloc_failures, s.commits, s.decommits, s.decommits_with_chunks, s.purges,
           s.dallocs, s.dallocs_refused, s.destroys, s.unmap_failures);
    if (s.allocs == 0 || s.commit_failures || s.unmap_failures)
        fail("hooks: unused, or a commit or an unmap failed");
}

static int parse(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "threads", required_argument, NULL, 't' }, { "ops", required_argument, NULL, 'o' },
        { "seed", required_argument, NULL, 's' },    { "live", required_argument, NULL, 'l' },
        { "rounds", required_argument, NULL, 'r' },  { "max-size", required_argument, NULL, 'm' },
        { "zero-percent", required_argument, NULL, 'z' },
        { "chunk-log", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        unsigned long long v = strtoull(optarg ? optarg : "", NULL, 0);
        switch (c) {
        case 't': opt.threads = (unsigned)v; break;
        case 'o': opt.ops = (unsigned long)v; break;
        case 's': opt.seed = v; break;
        case 'l': opt.live = (unsigned)v; break;
        case 'r': opt.rounds = (unsigned)v; break;
        case 'm': opt.max_size = (size_t)v; break;
        case 'z': opt.zero_pct = (unsigned)v; break;
        case 'c': opt.chunk_log = (unsigned)v; break;
        default: return -1;
        }
    }
    return optind == argc && opt.threads && opt.threads <= 1024 && opt.live &&
                   opt.max_size >= 8 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (parse(argc, argv) != 0) {
        fprintf(stderr, "usage: %s [--threads N] [--ops N] [--seed N] [--live N] [--rounds N] "
                        "[--max-size BYTES] [--zero-percent N] [--chunk-log N]\n",
                argv[0]);
        return 1;
    }
    mmapper_t *m;
    struct mmapper_extent_hooks *h;
    int err = mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = opt.chunk_log }, &m);
    if (err || (err = mmapper_extent_hooks_create(m, &h)) != 0) {
        fprintf(stderr, "FAIL: setup: %s\n", mmapper_strerror(err));
        return 1;
    }
    printf("jemalloc_driver (jemalloc %s): %u threads x %lu ops of 8..%zu bytes (%u%% zeroed), "
           "seed %" PRIu64 ", %zu MiB chunks\n", JEMALLOC_VERSION, opt.threads, opt.ops,
           opt.max_size, opt.zero_pct, opt.seed, mmapper_granularity(m) >> 20);

    struct run test = { .arena = arena_create(h), .m = m };
    run_workload(&test, h);
    check_stats(test.arena, m, h, "all freed");
    arena_ctl(test.arena, "purge");   /* dirty extents to the dalloc/decommit hooks */
    check_stats(test.arena, m, h, "purged");
    arena_ctl(test.arena, "destroy");
    print_hooks(h);
    check_empty(m, "arena destroyed");

    /* Fresh arenas for both, so neither starts with memory cached. */
    double ops = (double)opt.threads * (double)opt.ops;
    for (unsigned r = 0; r < opt.rounds; r++) {
        struct run hooked = { .arena = arena_create(h) }, plain = { .arena = arena_create(NULL) };
        double th = run_workload(&hooked, h), tp = run_workload(&plain, h);
        arena_ctl(hooked.arena, "destroy");
        arena_ctl(plain.arena, "destroy");
        printf("throughput: mmapper arena %.0f ops/s, default arena %.0f ops/s (%.2fx)\n",
               ops / th, ops / tp, tp / th);
    }
    if (opt.rounds)
        check_empty(m, "benchmark arenas destroyed");
    else
        printf("throughput: not measured (--rounds 0%s)\n",
#ifdef SANITIZED
               ", the default under a sanitizer"
#else
               ""
#endif
        );
    mmapper_extent_hooks_destroy(h);
    mmapper_destroy(m);

    unsigned long f = atomic_load(&failures);
    printf("%s: %lu failure(s)\n", f ? "FAIL" : "PASS", f);
    return f ? 1 : 0;
}
