/*
 * stress_readers: is_mapped() == true must mean "usable now".
 *
 * Region: 512 chunks of 64 KiB (two slabs).  Every fourth chunk is stable:
 * mapped before the threads start and never touched again.  The others come
 * in groups of three adjacent chunks, each group owned by one writer, which
 * cycles them through ensure_mapped and protect / decommit / unmap /
 * quarantine (one to three chunks per call, so runs sit next to the stable
 * chunks and cross the slab boundary).
 *
 * Readers pick random chunks.  On a stable chunk they check is_mapped() and
 * state() say Mapped -- always -- and write into it.  On a churned chunk they
 * call is_mapped() and, when it says true, write into the chunk right away,
 * while its writer may still be inside the ensure_mapped() that mapped it.
 * If the library published Mapped before the mapping existed, that write
 * would fault (reported with the seed).  Readers must not write into memory
 * that is being taken away, which no library can make safe, so writers
 * announce a revocation first: a reader pins the chunk (a counter), then
 * checks the writer's `closing` flag; the writer sets `closing`, then waits
 * for the pins to drain (both sides seq_cst, so one of them sees the other).
 * `closing` is cleared just before ensure_mapped, so readers race the map.
 *
 * Writers check their own calls exactly (return codes, states, is_mapped
 * false once access is revoked) and a word of data only they write: kept
 * across protect + ensure_mapped, zero after decommit or unmap.  Reader
 * slots (one counter per reader) are kept across protect too: after the
 * chunk is mapped again they hold at least what they held before.
 */
#include "config.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os_ledger.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 512
#define MAX_READERS 64

struct control {
    _Atomic uint32_t pins;
    _Atomic bool closing;
    _Atomic bool mapping;            /* its writer is inside ensure_mapped */
};

struct shared {
    mmapper_t *m;
    struct test_os tos;
    struct os_ledger ledger;
    char *base;
    size_t chunk;
    struct stress_opts opts;
    unsigned writers, readers;
    struct control ctl[NCHUNKS];
    _Atomic unsigned writers_left;
    _Atomic uint64_t maps, revokes, writes, writes_in_map, saw_unmapped, stable_writes;
};

struct thread {
    struct shared *s;
    unsigned id;
    struct rng rng;
    uint8_t state[NCHUNKS];          /* writers: model of their chunks */
    uint64_t magic[NCHUNKS];         /* writers: their word; 0 = zero */
    uint64_t kept[NCHUNKS];          /* writers: reader counters at protect */
};

static bool stable(size_t c)
{
    return c % 4 == 3;
}

static char *chunk_at(struct shared *s, size_t c)
{
    return s->base + c * s->chunk;
}

/* Word 0 of a chunk is its writer's; words 8.. are the readers' counters. */
static uint64_t *writer_word(struct shared *s, size_t c)
{
    return (uint64_t *)chunk_at(s, c);
}

static _Atomic uint64_t *reader_slot(struct shared *s, size_t c, unsigned r)
{
    return (_Atomic uint64_t *)chunk_at(s, c) + 8 + r;
}

static uint64_t slot_sum(struct shared *s, size_t c)
{
    uint64_t sum = 0;
    for (unsigned r = 0; r < s->readers; r++)
        sum += atomic_load_explicit(reader_slot(s, c, r), memory_order_relaxed);
    return sum;
}

/* ---- readers ------------------------------------------------------------ */

static void *reader_main(struct thread *t)
{
    struct shared *s = t->s;
    unsigned r = t->id - s->writers;
    /* Some reads even if the writers finish first (valgrind runs threads
     * one at a time). */
    for (uint64_t n = 0; atomic_load_explicit(&s->writers_left, memory_order_relaxed) > 0 ||
                         n < 1000; n++) {
        size_t c = rng_below(&t->rng, NCHUNKS);
        char *p = chunk_at(s, c) + rng_below(&t->rng, s->chunk);
        if (stable(c)) {
            CHECK(mmapper_is_mapped(s->m, p) && mmapper_state(s->m, p) == MMAPPER_MAPPED,
                  "stable chunk %zu does not read as Mapped", c);
            atomic_fetch_add_explicit(reader_slot(s, c, r), 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->stable_writes, 1, memory_order_relaxed);
            continue;
        }
        struct control *ctl = &s->ctl[c];
        atomic_fetch_add(&ctl->pins, 1);
        if (!atomic_load(&ctl->closing)) {
            /* Not closing but not Mapped: its writer is mapping it.  Keep
             * asking, to write the moment the answer turns true. */
            bool mapped = mmapper_is_mapped(s->m, p);
            if (!mapped)
                atomic_fetch_add_explicit(&s->saw_unmapped, 1, memory_order_relaxed);
            for (int spin = 0; !mapped && spin < 2000; spin++)
                mapped = mmapper_is_mapped(s->m, p);
            if (mapped) {
                atomic_fetch_add_explicit(reader_slot(s, c, r), 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&s->writes, 1, memory_order_relaxed);
                if (atomic_load_explicit(&ctl->mapping, memory_order_relaxed))
                    atomic_fetch_add_explicit(&s->writes_in_map, 1, memory_order_relaxed);
            }
        }
        atomic_fetch_sub(&ctl->pins, 1);
    }
    return NULL;
}

/* ---- writers ------------------------------------------------------------ */

static void revoke(struct thread *t, size_t a, size_t b)
{
    struct shared *s = t->s;
    bool has_u = false, has_q = false;
    for (size_t c = a; c < b; c++) {
        has_u |= t->state[c] == MMAPPER_UNMAPPED;
        has_q |= t->state[c] == MMAPPER_QUARANTINED;
        atomic_store(&s->ctl[c].closing, true);
    }
    for (size_t c = a; c < b; c++) {
        while (atomic_load(&s->ctl[c].pins) != 0)
            sched_yield();
    }
    /* No reader writes now: the writer's word is intact, and the readers'
     * counters are what a protect must keep. */
    uint64_t sums[3] = { 0 };
    for (size_t c = a; c < b; c++) {
        if (t->state[c] != MMAPPER_MAPPED)
            continue;
        CHECK(*writer_word(s, c) == t->magic[c], "chunk %zu lost the writer's word", c);
        sums[c - a] = slot_sum(s, c);
    }
    /* Only calls legal for every chunk: protect needs M/P, decommit no U. */
    unsigned choice = (unsigned)rng_below(&t->rng, has_u ? 1 : has_q ? 2 : 3);
    static const mmapper_state_t to[] = { MMAPPER_UNMAPPED, MMAPPER_QUARANTINED,
                                          MMAPPER_PROTECTED };
    static const char *names[] = { "unmap", "decommit", "protect" };
    size_t bytes = (b - a) * s->chunk;
    int rc = choice == 0 ? mmapper_unmap(s->m, chunk_at(s, a), bytes)
             : choice == 1 ? mmapper_decommit(s->m, chunk_at(s, a), bytes)
                           : mmapper_protect(s->m, chunk_at(s, a), bytes);
    CHECK_RC(rc, 0, names[choice]);
    for (size_t c = a; c < b; c++) {
        if (to[choice] != MMAPPER_PROTECTED)
            t->magic[c] = t->kept[c] = 0;   /* the memory is gone */
        else if (t->state[c] == MMAPPER_MAPPED)
            t->kept[c] = sums[c - a];
        t->state[c] = (uint8_t)to[choice];
        CHECK(mmapper_state(s->m, chunk_at(s, c)) == to[choice] &&
                  !mmapper_is_mapped(s->m, chunk_at(s, c)),
              "chunk %zu: state %d after %s", c, mmapper_state(s->m, chunk_at(s, c)),
              names[choice]);
    }
    atomic_fetch_add_explicit(&s->revokes, 1, memory_order_relaxed);
}

static void *writer_main(struct thread *t)
{
    struct shared *s = t->s;
    size_t groups = NCHUNKS / 4, mine = (groups - t->id + s->writers - 1) / s->writers;
    double t0 = stress_now();
    for (uint64_t op = 0; s->opts.seconds > 0 ? !stress_time_up(&s->opts, t0) : op < s->opts.ops;
         op++) {
        size_t g = t->id + rng_below(&t->rng, mine) * s->writers;
        size_t a = 4 * g + rng_below(&t->rng, 3);
        size_t b = a + 1 + rng_below(&t->rng, 4 * g + 3 - a);
        bool any_mapped = false, all_unmapped = true;
        for (size_t c = a; c < b; c++) {
            any_mapped |= t->state[c] == MMAPPER_MAPPED;
            all_unmapped &= t->state[c] == MMAPPER_UNMAPPED;
        }
        if (any_mapped) {
            revoke(t, a, b);
            continue;
        }
        if (all_unmapped && rng_below(&t->rng, 2)) {
            CHECK_RC(mmapper_quarantine(s->m, chunk_at(s, a), (b - a) * s->chunk, NULL), 0,
                     "quarantine");
            for (size_t c = a; c < b; c++)
                t->state[c] = MMAPPER_QUARANTINED;
            continue;
        }
        for (size_t c = a; c < b; c++) {
            atomic_store_explicit(&s->ctl[c].mapping, true, memory_order_relaxed);
            atomic_store(&s->ctl[c].closing, false);   /* readers may race the map */
        }
        CHECK_RC(mmapper_ensure_mapped(s->m, chunk_at(s, a), (b - a) * s->chunk, NULL), 0,
                 "ensure_mapped");
        for (size_t c = a; c < b; c++)
            atomic_store_explicit(&s->ctl[c].mapping, false, memory_order_relaxed);
        for (size_t c = a; c < b; c++) {
            CHECK(mmapper_is_mapped(s->m, chunk_at(s, c)), "chunk %zu not Mapped", c);
            CHECK(*writer_word(s, c) == t->magic[c],
                  "chunk %zu: writer's word %#" PRIx64 ", expected %#" PRIx64
                  " (state before: %d)", c, *writer_word(s, c), t->magic[c], t->state[c]);
            /* Readers only add, so a kept chunk holds at least as much. */
            CHECK(slot_sum(s, c) >= t->kept[c],
                  "chunk %zu: reader counters sum to %" PRIu64 ", %" PRIu64
                  " before it was protected", c, slot_sum(s, c), t->kept[c]);
            t->magic[c] = rng_next(&t->rng) | 1;
            *writer_word(s, c) = t->magic[c];
            t->state[c] = MMAPPER_MAPPED;
        }
        atomic_fetch_add_explicit(&s->maps, 1, memory_order_relaxed);
    }
    atomic_fetch_sub(&s->writers_left, 1);
    return NULL;
}

static void *thread_main(void *arg)
{
    struct thread *t = arg;
    return t->id < t->s->writers ? writer_main(t) : reader_main(t);
}

int main(int argc, char **argv)
{
    static struct shared s;
    s.opts = (struct stress_opts){ .threads = 8, .ops = STRESS_SCALE(15000, 5000), .rounds = 1 };
    stress_parse(argc, argv,
                 "readers write right after is_mapped() while writers map and unmap "
                 "(--threads: half writers, half readers; --ops: calls per writer)", &s.opts);
    s.writers = s.opts.threads / 2;
    s.readers = s.opts.threads - s.writers;
    CHECK(s.writers >= 1 && s.readers >= 1 && s.readers <= MAX_READERS && s.writers <= 128,
          "need 2..%d threads", MAX_READERS + 128);
    atomic_init(&s.writers_left, s.writers);

    test_os_init(&s.tos);
    os_ledger_init(&s.ledger, &s.tos.os);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &s.ledger.os };
    CHECK_RC(mmapper_create(&cfg, &s.m), 0, "mmapper_create");
    s.chunk = mmapper_granularity(s.m);
    stress_catch_faults(s.m);
    s.base = stress_region(s.m, NCHUNKS * s.chunk, STRESS_SLAB_CHUNKS * s.chunk);
    CHECK(os_ledger_track(&s.ledger, s.m, s.base, NCHUNKS * s.chunk) == 0, "ledger");

    struct thread *ts = calloc(s.opts.threads, sizeof(*ts));
    CHECK(ts != NULL, "out of memory");
    for (size_t c = 0; c < NCHUNKS; c++) {
        atomic_init(&s.ctl[c].closing, true);
        if (stable(c))
            CHECK_RC(mmapper_ensure_mapped(s.m, chunk_at(&s, c), s.chunk, NULL), 0, "stable");
    }
    for (unsigned i = 0; i < s.opts.threads; i++) {
        ts[i].s = &s;
        ts[i].id = i;
        rng_init(&ts[i].rng, s.opts.seed, i + 1);
        memset(ts[i].state, MMAPPER_QUARANTINED, sizeof(ts[i].state));
    }
    stress_run_threads(s.opts.threads, thread_main, ts, sizeof(*ts));

    for (size_t c = 0; c < NCHUNKS; c++) {
        mmapper_state_t st = mmapper_state(s.m, chunk_at(&s, c));
        mmapper_state_t want = stable(c) ? MMAPPER_MAPPED
                                         : (mmapper_state_t)ts[(c / 4) % s.writers].state[c];
        CHECK(st == want, "chunk %zu in state %d, its writer says %d", c, st, want);
    }
    stress_check_ledger(&s.ledger, s.m, "at the end");
    stress_check_maps(s.m, s.base, NCHUNKS * s.chunk, true, "at the end");
    stress_check_settled(s.m, s.base, NCHUNKS * s.chunk, "at the end");
    CHECK_RC(mmapper_unmap(s.m, s.base, NCHUNKS * s.chunk), 0, "final unmap");
    CHECK_RC(mmapper_reclaim_wait(s.m), 0, "reclaim_wait");
    struct mmapper_stats st;
    mmapper_get_stats(s.m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs left", st.slabs);

    stress_summary("%u writers: %" PRIu64 " ensure_mapped + %" PRIu64 " revocations; %u readers: "
                   "%" PRIu64 " writes right after is_mapped() said true (%" PRIu64
                   " while the map call was still running), %" PRIu64 " saw it false, %" PRIu64
                   " writes to stable chunks", s.writers, atomic_load(&s.maps),
                   atomic_load(&s.revokes), s.readers, atomic_load(&s.writes),
                   atomic_load(&s.writes_in_map), atomic_load(&s.saw_unmapped),
                   atomic_load(&s.stable_writes));
    mmapper_destroy(s.m);
    os_ledger_fini(&s.ledger);
    free(ts);
    return 0;
}
