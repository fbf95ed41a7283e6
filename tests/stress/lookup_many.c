/*
 * lookup_many: mmapper_is_mapped_many against single lookups while other
 * threads transition chunks, create and remove slabs and grow the table.
 *
 * The region has SLABS slabs.  In each, the first STABLE chunks never change
 * after set-up: even ones Mapped, odd ones Unmapped; the rest of the slab
 * churns (ensure_mapped, decommit, protect, unmap, and unmaps of the whole
 * churning part, which leave a slab with only Unmapped stable chunks empty:
 * removed, later created again).  A scatter of far slabs created and removed
 * all the time makes the table grow and rebuild.  Checker threads call
 * is_mapped_many on batches that mix stable and churning addresses (and
 * addresses far from anything), and require, for every stable address, the
 * one right answer, and for the batch's count, the number of true answers.
 * A reader that used a freed slab or a stale array would be caught by a
 * wrong stable answer (or by ASan/TSan).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "stress_util.h"

#define SLABS 16
#define STABLE 16
#define BATCH 333
#define FAR_SLABS 64

static mmapper_t *m;
static char *region, *far;
static size_t chunk, slab;
static _Atomic bool stop;
static _Atomic uint64_t batches, answers;

static bool stable_mapped(size_t c)   /* c: chunk index in the region */
{
    return (c % STRESS_SLAB_CHUNKS) % 2 == 0;
}

static void *churner(void *arg)
{
    struct rng r;
    rng_init(&r, (uintptr_t)arg, 1);
    while (!atomic_load(&stop)) {
        size_t s = rng_below(&r, SLABS);
        size_t c = s * STRESS_SLAB_CHUNKS + STABLE + rng_below(&r, STRESS_SLAB_CHUNKS - STABLE);
        char *p = region + c * chunk;
        int rc = 0;
        switch (rng_below(&r, 6)) {
        case 0:
        case 1:
            rc = mmapper_ensure_mapped(m, p, chunk, NULL);
            break;
        case 2:
            rc = mmapper_decommit(m, p, chunk);
            break;
        case 3:
            rc = mmapper_protect(m, p, chunk);
            break;
        case 4:
            rc = mmapper_unmap(m, p, chunk);
            break;
        default:
            rc = mmapper_unmap(m, region + s * slab + STABLE * chunk, slab - STABLE * chunk);
            break;
        }
        CHECK(rc == 0 || rc == -EINVAL, "churn: %d", rc);   /* EINVAL: from Unmapped */
    }
    return NULL;
}

/* Far slabs come and go: the table grows, rebuilds and retires arrays. */
static void *scatterer(void *arg)
{
    struct rng r;
    rng_init(&r, (uintptr_t)arg, 2);
    while (!atomic_load(&stop)) {
        char *p = far + rng_below(&r, FAR_SLABS) * slab;
        CHECK_RC(mmapper_ensure_mapped(m, p, chunk, NULL), 0, "far map");
        if (rng_below(&r, 2))
            CHECK_RC(mmapper_unmap(m, p, chunk), 0, "far unmap");
    }
    return NULL;
}

static void *checker(void *arg)
{
    struct rng r;
    rng_init(&r, (uintptr_t)arg, 3);
    const void *addrs[BATCH];
    bool mapped[BATCH];
    size_t index[BATCH];   /* chunk index, or SIZE_MAX for far addresses */
    while (!atomic_load(&stop)) {
        size_t n = 1 + rng_below(&r, BATCH);
        for (size_t i = 0; i < n; i++) {
            size_t c;
            switch (rng_below(&r, 3)) {
            case 0:   /* stable */
                c = rng_below(&r, SLABS) * STRESS_SLAB_CHUNKS + rng_below(&r, STABLE);
                break;
            case 1:   /* churning */
                c = rng_below(&r, SLABS) * STRESS_SLAB_CHUNKS + STABLE +
                    rng_below(&r, STRESS_SLAB_CHUNKS - STABLE);
                break;
            default:  /* the scattered slabs */
                index[i] = SIZE_MAX;
                addrs[i] = far + rng_below(&r, FAR_SLABS * STRESS_SLAB_CHUNKS) * chunk +
                           rng_below(&r, chunk);
                continue;
            }
            index[i] = c;
            addrs[i] = region + c * chunk + rng_below(&r, chunk);
        }
        size_t count = mmapper_is_mapped_many(m, addrs, n, mapped);
        size_t trues = 0;
        for (size_t i = 0; i < n; i++) {
            trues += mapped[i];
            size_t c = index[i];
            if (c != SIZE_MAX && c % STRESS_SLAB_CHUNKS < STABLE)
                CHECK(mapped[i] == stable_mapped(c), "stable chunk %zu answered %d", c,
                      mapped[i]);
        }
        CHECK(count == trues, "count %zu, %zu true answers", count, trues);
        /* Count-only batches agree on the stable part too. */
        atomic_fetch_add(&batches, 1);
        atomic_fetch_add(&answers, n);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 2, .seconds = STRESS_SCALE3(3, 3, 2), .rounds = 1 };
    stress_parse(argc, argv, "is_mapped_many against churning slabs", &o);
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &m), 0, "create");
    chunk = mmapper_granularity(m);
    slab = STRESS_SLAB_CHUNKS * chunk;
    region = stress_region(m, SLABS * slab, slab);
    far = stress_region(m, FAR_SLABS * slab, slab);
    CHECK_RC(mmapper_unmap(m, region, SLABS * slab), 0, "empty");
    CHECK_RC(mmapper_unmap(m, far, FAR_SLABS * slab), 0, "empty far");
    for (size_t s = 0; s < SLABS; s++)
        for (size_t c = 0; c < STABLE; c += 2)
            CHECK_RC(mmapper_ensure_mapped(m, region + s * slab + c * chunk, chunk, NULL), 0,
                     "stable");
    unsigned n = o.threads < 1 ? 1 : o.threads;
    pthread_t t[3 * 8];
    n = n > 8 ? 8 : n;
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        CHECK(pthread_create(&t[k++], NULL, churner, (void *)(uintptr_t)(o.seed + i)) == 0, "thread");
        CHECK(pthread_create(&t[k++], NULL, checker, (void *)(uintptr_t)(o.seed + 100 + i)) == 0,
              "thread");
    }
    CHECK(pthread_create(&t[k++], NULL, scatterer, (void *)(uintptr_t)(o.seed + 200)) == 0, "thread");
    double t0 = stress_now();
    while (!stress_time_up(&o, t0))
        usleep(10000);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < k; i++)
        pthread_join(t[i], NULL);
    struct mmapper_stats st;
    mmapper_get_stats(m, &st);
    CHECK(atomic_load(&batches) > 10, "only %" PRIu64 " batches", atomic_load(&batches));
    stress_check_maps(m, region, SLABS * slab, true, "after the run");
    stress_summary("%" PRIu64 " batches, %" PRIu64 " answers, stable ones all right; table %" PRIu64
                   " slots at the end",
                   atomic_load(&batches), atomic_load(&answers), st.table_capacity);
    CHECK_RC(mmapper_unmap(m, region, SLABS * slab), 0, "cleanup");
    CHECK_RC(mmapper_unmap(m, far, FAR_SLABS * slab), 0, "cleanup far");
    mmapper_destroy(m);
    return 0;
}
