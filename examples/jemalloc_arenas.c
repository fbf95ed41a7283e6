/*
 * The jemalloc hooks at scale and over extents they did not create.
 *
 *  preswitch  An arena works on jemalloc's default hooks (one 8 MiB
 *             allocation, freed), then is switched to the mmapper hooks,
 *             and 10^4 times allocates 1 MiB, touches it, frees it and
 *             purges.  jemalloc keeps handing the hooks the extent it got
 *             before the switch; they must treat it as jemalloc's own (never
 *             decommit it through mmapper, never fake a decommit), so no
 *             commit fails and the reserved address space stays bounded.
 *  arenas     512 arenas on the hooks, each holding small objects: every
 *             reservation of a size that is not whole chunks keeps a tail,
 *             thousands in all (the old table held 1024).  All allocations
 *             succeed; destroying the arenas gives every chunk and tail back.
 *
 * Exits 0, 1 on failure, 77 without jemalloc's mallctl interface.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jemalloc_hooks.h"
#include "pattern.h"


#ifdef SANITIZED
#define PRESWITCH_ITERS 2000
#else
#define PRESWITCH_ITERS 10000
#endif
#define ARENAS 512   /* 6 tails each: past the old table's 1024 */


static size_t arena_stat(const char *what, unsigned arena)
{
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    char name[96];
    snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, what);
    size_t v = 0;
    sz = sizeof(v);
    mallctl(name, &v, &sz, NULL, 0);
    return v;
}

static uint64_t reserved_bytes(mmapper_t *m)
{
    struct mmapper_stats s;
    mmapper_get_stats(m, &s);
    return (s.chunks_quarantined + s.chunks_mapped + s.chunks_protected) * mmapper_granularity(m);
}

static void preswitch(void)
{
    mmapper_t *m = NULL;
    struct mmapper_extent_hooks *h = NULL;
    if (mmapper_create(NULL, &m) != 0 || mmapper_extent_hooks_create(m, &h) != 0) {
        CHECK(false, "setup");
        return;
    }
    unsigned arena;
    size_t sz = sizeof(arena);
    CHECK(mallctl("arenas.create", &arena, &sz, NULL, 0) == 0, "arenas.create");
    int flags = (int)MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
    void *big = mallocx(8 << 20, flags);
    CHECK(big != NULL, "8 MiB on the default hooks");
    memset(big, 1, 8 << 20);
    dallocx(big, flags);

    char name[64];
    snprintf(name, sizeof(name), "arena.%u.extent_hooks", arena);
    extent_hooks_t *table = mmapper_extent_hooks_table(h);
    CHECK(mallctl(name, NULL, NULL, &table, sizeof(table)) == 0, "switch the hooks");
    snprintf(name, sizeof(name), "arena.%u.purge", arena);

    uint64_t peak = 0;
    printf("preswitch: iteration, reserved by mmapper (MiB), jemalloc mapped+retained (MiB)\n");
    for (unsigned i = 1; i <= PRESWITCH_ITERS; i++) {
        char *p = mallocx(1 << 20, flags);
        CHECK(p != NULL, "iteration %u: 1 MiB failed", i);
        if (!p)
            break;
        p[0] = 1;
        p[(1 << 20) - 1] = 1;
        dallocx(p, flags);
        mallctl(name, NULL, NULL, NULL, 0);
        uint64_t r = reserved_bytes(m);
        peak = r > peak ? r : peak;
        if (i == 10 || i == 100 || i == 1000 || i == PRESWITCH_ITERS)
            printf("preswitch: %6u %6" PRIu64 " %6zu\n", i, r >> 20,
                   (arena_stat("mapped", arena) + arena_stat("retained", arena)) >> 20);
    }
    struct mmapper_extent_hooks_stats st;
    mmapper_extent_hooks_get_stats(h, &st);
    CHECK(st.commit_failures == 0, "%" PRIu64 " commits failed", st.commit_failures);
    /* The decommits of jemalloc's own extent were refused (not faked), so it
     * never had to commit it again. */
    CHECK(st.commits == 0, "%" PRIu64 " commits of an extent jemalloc kept committed",
          st.commits);
    CHECK(peak <= ((uint64_t)64 << 20), "reserved address space grew to %" PRIu64 " MiB",
          peak >> 20);
    printf("preswitch: %d iterations, %" PRIu64 " commits (0 failed), %" PRIu64
           " calls on jemalloc's own extents, peak reserved %" PRIu64 " MiB\n",
           PRESWITCH_ITERS, st.commits, st.foreign, peak >> 20);
    snprintf(name, sizeof(name), "arena.%u.destroy", arena);
    CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "arena destroy");
    mmapper_extent_hooks_destroy(h);
    mmapper_destroy(m);
}

static void many_arenas(void)
{
    mmapper_t *m = NULL;
    struct mmapper_extent_hooks *h = NULL;
    if (mmapper_create(NULL, &m) != 0 || mmapper_extent_hooks_create(m, &h) != 0) {
        CHECK(false, "setup");
        return;
    }
    static unsigned arena[ARENAS];
    enum { OBJECTS = 2000, SIZE = 512 };
    unsigned made = 0;
    uint64_t max_tails = 0;
    for (unsigned a = 0; a < ARENAS; a++, made++) {
        if (mmapper_extent_hooks_arena_create(h, &arena[a]) != 0) {
            CHECK(false, "arena %u could not be created", a);
            break;
        }
        int flags = (int)MALLOCX_ARENA(arena[a]) | MALLOCX_TCACHE_NONE;
        /* Small objects, plus a few larger ones that grow the arena. */
        for (unsigned i = 0; i < OBJECTS; i++) {
            char *p = mallocx(SIZE, flags);
            CHECK(p != NULL, "arena %u: object %u failed", a, i);
            if (!p)
                return;
            p[0] = (char)i;   /* kept until the arena is destroyed */
        }
        for (unsigned i = 0; i < 4; i++)
            CHECK(mallocx((size_t)(3 + i) << 20, flags) != NULL, "arena %u: large", a);
        struct mmapper_extent_hooks_stats st;
        mmapper_extent_hooks_get_stats(h, &st);
        max_tails = st.tails > max_tails ? st.tails : max_tails;
    }
    struct mmapper_extent_hooks_stats st;
    mmapper_extent_hooks_get_stats(h, &st);
    printf("arenas: %u arenas, %" PRIu64 " tails (set of %" PRIu64 " slots), %" PRIu64
           " MiB reserved, %" PRIu64 " allocation failures\n", made, st.tails, st.tail_capacity,
           reserved_bytes(m) >> 20, st.alloc_failures);
    CHECK(st.alloc_failures == 0, "%" PRIu64 " reservations failed", st.alloc_failures);
    CHECK(max_tails > 1024, "only %" PRIu64 " tails: the test does not go past the old limit",
          max_tails);
    for (unsigned a = 0; a < made; a++) {
        char name[64];
        snprintf(name, sizeof(name), "arena.%u.destroy", arena[a]);
        CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "destroy arena %u", arena[a]);
    }
    mmapper_extent_hooks_get_stats(h, &st);
    CHECK(st.tails == 0, "%" PRIu64 " tails left", st.tails);
    CHECK(reserved_bytes(m) == 0, "%" PRIu64 " MiB left reserved", reserved_bytes(m) >> 20);
    printf("arenas: after destroying them: %" PRIu64 " tails (set of %" PRIu64 " slots), %"
           PRIu64 " MiB reserved\n", st.tails, st.tail_capacity, reserved_bytes(m) >> 20);
    mmapper_extent_hooks_destroy(h);
    mmapper_destroy(m);
}

int main(void)
{
    preswitch();
    many_arenas();
    unsigned long f = atomic_load(&failures);
    printf("%s: jemalloc_arenas, %lu failure(s)\n", f ? "FAIL" : "PASS", f);
    return f ? 1 : 0;
}
