/*
 * Many threads mapping the same chunks at once: each chunk transition makes
 * its system call exactly once, and every caller returns with usable memory.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define THREADS 32
#define CHUNKS 64
#define SLAB_CHUNKS 256
#define ROUNDS 8          /* a race test only catches a bug some of the time */

struct race {
    struct unit *u;
    char *base;
    pthread_barrier_t go;
    unsigned round;
    bool whole_ranges;          /* random sub-ranges instead of single chunks */
};

struct racer {
    struct race *race;
    unsigned id;
    int failures, first_error;
    pthread_t thread;
};

static void note(struct racer *r, int rc)
{
    if (rc && !r->failures++)
        r->first_error = rc;
}

static void *run(void *arg)
{
    struct racer *r = arg;
    struct race *race = r->race;
    struct unit *u = race->u;
    unsigned seed = 1234567u * (r->id + 1) + 7919u * race->round;
    pthread_barrier_wait(&race->go);
    if (race->whole_ranges) {
        for (int k = 0; k < 4 * CHUNKS; k++) {
            size_t first = (size_t)rand_r(&seed) % CHUNKS;
            size_t n = 1 + (size_t)rand_r(&seed) % (CHUNKS - first);
            note(r, mmapper_ensure_mapped(u->m, chunk_at(u, race->base, first),
                                          n * u->chunk, NULL));
        }
        /* Cover every chunk at least once. */
        note(r, mmapper_ensure_mapped(u->m, race->base, CHUNKS * u->chunk, NULL));
    } else {
        size_t start = (size_t)rand_r(&seed) % CHUNKS;
        for (size_t k = 0; k < CHUNKS; k++) {
            char *c = chunk_at(u, race->base, (start + k) % CHUNKS);
            note(r, mmapper_ensure_mapped(u->m, c, u->chunk, NULL));
            /* Returned means usable: write our mark right away. */
            c[r->id * sizeof(unsigned)] = (char)(r->id + 1);
        }
    }
    /* Every thread can write every chunk afterwards. */
    for (size_t i = 0; i < CHUNKS; i++) {
        char *c = chunk_at(u, race->base, i);
        if (!mmapper_is_mapped(u->m, c))   /* no cr_assert off the main thread */
            note(r, 1);
        c[u->chunk - 1 - r->id] = (char)(r->id + 1);
    }
    return NULL;
}

/* 64 KiB chunks, and the 64 chunks straddle a slab boundary so the walkers
 * contend on two slab locks. */
static char *straddling_range(struct unit *u)
{
    size_t slab = SLAB_CHUNKS * u->chunk;
    char *a = unit_free_range(2 * slab, slab);
    return a + slab - (CHUNKS / 2) * u->chunk;
}

/* Race THREADS threads over 64 chunks (quarantined first if asked) and
 * return where the chunks are.  Counts are reset just before the start. */
static char *race(struct unit *u, unsigned round, bool quarantine_first, bool whole_ranges)
{
    struct race race = { .u = u, .round = round, .whole_ranges = whole_ranges };
    struct racer racers[THREADS];
    pthread_barrier_init(&race.go, NULL, THREADS + 1);
    for (unsigned i = 0; i < THREADS; i++) {
        racers[i] = (struct racer){ .race = &race, .id = i };
        cr_assert_eq(pthread_create(&racers[i].thread, NULL, run, &racers[i]), 0);
    }
    /* Only now that every thread stack is mapped is a free range still free
     * when the race starts. */
    race.base = straddling_range(u);
    if (quarantine_first)
        cr_assert_eq(mmapper_quarantine(u->m, race.base, CHUNKS * u->chunk, NULL), 0);
    unit_reset_counts(u);
    pthread_barrier_wait(&race.go);   /* publishes race.base to the racers */
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(racers[i].thread, NULL);
        cr_assert_eq(racers[i].failures, 0, "thread %u: %d failures, the first %d (%s)", i,
                     racers[i].failures, racers[i].first_error,
                     mmapper_strerror(racers[i].first_error));
    }
    pthread_barrier_destroy(&race.go);
    for (size_t i = 0; i < CHUNKS; i++) {
        char *c = chunk_at(u, race.base, i);
        for (unsigned t = 0; t < THREADS; t++) {
            cr_assert_eq(c[u->chunk - 1 - t], (char)(t + 1), "chunk %zu lost thread %u's write",
                         i, t);
            if (!whole_ranges)
                cr_assert_eq(c[t * sizeof(unsigned)], (char)(t + 1));
        }
    }
    return race.base;
}

static void expect_all_mapped(struct unit *u, char *base)
{
    char want[CHUNKS + 1];
    memset(want, 'M', CHUNKS);
    want[CHUNKS] = 0;
    unit_expect_states(u, base, want);
    unit_expect_kernel(u, base, CHUNKS * u->chunk);
    unit_expect_gauges(u, 0, CHUNKS, 0);
}

/* Give the chunks back, so every round starts from an empty mapper. */
static void end_round(struct unit *u, char *base)
{
    cr_assert_eq(mmapper_unmap(u->m, base, CHUNKS * u->chunk), 0);
    unit_expect_gauges(u, 0, 0, 0);
    struct mmapper_stats s;
    mmapper_get_stats(u->m, &s);
    cr_assert_eq(s.slabs, 0);
}

/* One chunk per call: every mmap is one chunk, so 64 mmaps = once each. */
Test(race, fresh_chunks_mapped_once, .timeout = 60)
{
    struct unit u;
    unit_setup(&u, 16);
    for (unsigned round = 0; round < ROUNDS; round++) {
        char *base = race(&u, round, false, false);
        unit_expect_calls(&u, CHUNKS, 0, 0);
        cr_assert_eq(atomic_load(&u.tos.noreplace_maps), CHUNKS);
        cr_assert_eq(atomic_load(&u.rec.mmap_bytes), CHUNKS * u.chunk);
        expect_all_mapped(&u, base);
        end_round(&u, base);
    }
    unit_teardown(&u);
}

Test(race, quarantined_chunks_committed_once, .timeout = 60)
{
    struct unit u;
    unit_setup(&u, 16);
    for (unsigned round = 0; round < ROUNDS; round++) {
        char *base = race(&u, round, true, false);
        unit_expect_calls(&u, 0, 0, CHUNKS);
        cr_assert_eq(atomic_load(&u.rec.mprotect_bytes), CHUNKS * u.chunk);
        expect_all_mapped(&u, base);
        end_round(&u, base);
    }
    unit_teardown(&u);
}

/* Random overlapping ranges batch into runs of any length; the bytes mapped
 * still add up to exactly the 64 chunks, none twice. */
Test(race, overlapping_ranges_map_each_chunk_once, .timeout = 60)
{
    struct unit u;
    unit_setup(&u, 16);
    for (unsigned round = 0; round < ROUNDS; round++) {
        char *base = race(&u, round, false, true);
        cr_assert_eq(test_os_calls(&u.tos, TOS_MUNMAP), 0);
        cr_assert_eq(test_os_calls(&u.tos, TOS_MPROTECT), 0);
        cr_assert_leq(test_os_calls(&u.tos, TOS_MMAP), CHUNKS);
        cr_assert_eq(atomic_load(&u.rec.mmap_bytes), CHUNKS * u.chunk,
                     "round %u: %llu bytes mapped for %d chunks of %zu", round,
                     (unsigned long long)atomic_load(&u.rec.mmap_bytes), CHUNKS, u.chunk);
        cr_assert_eq(atomic_load(&u.tos.noreplace_maps), test_os_calls(&u.tos, TOS_MMAP));
        expect_all_mapped(&u, base);
        end_round(&u, base);
    }
    unit_teardown(&u);
}
