/*
 * stress_churn: every operation at once on overlapping ranges.
 *
 * A region of 1024 chunks of 64 KiB (four slabs) from quarantine_anywhere is
 * laid out in periods of 128 chunks: chunks [40, 56) of each period form an
 * "owned" block (block k belongs to thread k % threads), the rest are shared.
 * Shared ranges may cross slab boundaries but never an owned block.
 *
 * Shared chunks: all threads run ensure_mapped / quarantine / protect /
 * decommit / unmap / is_mapped / state on random ranges.  What is checked:
 * each call returns 0 or the errno some state it could have seen explains
 * (-EINVAL for protect with an Unmapped or Quarantined chunk, for decommit
 * with an Unmapped one), and, through the ledger OS layer as the calls
 * happen, that no chunk gets two system calls at once, a fresh mapping over
 * a live mapping, or a call while the mapper does not hold it.
 *
 * Owned chunks: only their owner touches them, so it keeps an exact model
 * (state and data of every chunk) and checks after each of its calls: the
 * return code; the recorded states; the memory (Mapped chunks are writable;
 * data survives protect/ensure_mapped, reads zero after decommit, unmap or
 * a fresh mapping); and the number of system calls, exactly: the ledger
 * counts the calls that start in the owner's block, which nobody else
 * touches, so it must equal one call per run of adjacent chunks taking the
 * same transition, plus one madvise per new mapping run when huge pages are
 * asked for.  Each chunk must also have been changed by exactly as many
 * successful calls as the model made transitions.
 *
 * At the end (threads joined): the library's syscall counters equal the
 * test OS layer's (nothing bypassed them); records, ledger and
 * /proc/self/maps agree (strict: nothing foreign in the region); the gauges
 * match the records; unmapping everything frees every slab.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os_ledger.h"
#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 1024
#define PERIOD 128
#define OWNED_AT 40
#define OWNED_LEN 16
#define NBLOCKS (NCHUNKS / PERIOD)

enum op { OP_MAP, OP_QUARANTINE, OP_PROTECT, OP_DECOMMIT, OP_UNMAP, OP_QUERY, NOPS };
static const char *op_names[] = { "ensure_mapped", "quarantine", "protect",
                                  "decommit", "unmap", "is_mapped/state" };

struct shared {
    mmapper_t *m;
    struct test_os tos;
    struct os_ledger ledger;
    char *base;
    size_t chunk;
    struct stress_opts opts;
    _Atomic uint64_t calls[NOPS], einval[NOPS], owned_calls, owned_syscalls;
};

struct worker {
    struct shared *s;
    unsigned id;
    struct rng rng;
    /* The model of the chunks this thread owns (indexed by region chunk). */
    uint8_t state[NCHUNKS];
    uint64_t tag[NCHUNKS];           /* data at both ends of a Mapped chunk; 0: zero */
    uint32_t changes[NCHUNKS];       /* transitions made, for the ledger */
};

static char *chunk_at(struct shared *s, size_t c)
{
    return s->base + c * s->chunk;
}

/* ---- the model: what each op does to a chunk in each state -------------- */

enum act { A_NONE, A_ILLEGAL, A_MAP_FRESH, A_RESERVE, A_COMMIT, A_PROTECT, A_DECOMMIT,
           A_UNMAP };

static enum act action(enum op op, unsigned st)
{
    static const uint8_t table[][4] = {
        [OP_MAP] = { A_MAP_FRESH, A_COMMIT, A_NONE, A_COMMIT },
        [OP_QUARANTINE] = { A_RESERVE, A_NONE, A_NONE, A_NONE },
        [OP_PROTECT] = { A_ILLEGAL, A_ILLEGAL, A_PROTECT, A_NONE },
        [OP_DECOMMIT] = { A_ILLEGAL, A_NONE, A_DECOMMIT, A_DECOMMIT },
        [OP_UNMAP] = { A_NONE, A_UNMAP, A_UNMAP, A_UNMAP },
    };
    return (enum act)table[op][st];
}

static const mmapper_state_t target[] = {
    [OP_MAP] = MMAPPER_MAPPED, [OP_QUARANTINE] = MMAPPER_QUARANTINED,
    [OP_PROTECT] = MMAPPER_PROTECTED, [OP_DECOMMIT] = MMAPPER_QUARANTINED,
    [OP_UNMAP] = MMAPPER_UNMAPPED,
};

static int call(struct shared *s, enum op op, char *start, size_t bytes,
                const struct mmapper_map_opts *o)
{
    switch (op) {
    case OP_MAP:
        return mmapper_ensure_mapped(s->m, start, bytes, o);
    case OP_QUARANTINE:
        return mmapper_quarantine(s->m, start, bytes, o);
    case OP_PROTECT:
        return mmapper_protect(s->m, start, bytes);
    case OP_DECOMMIT:
        return mmapper_decommit(s->m, start, bytes);
    case OP_UNMAP:
        return mmapper_unmap(s->m, start, bytes);
    default:
        return 0;
    }
}

/* Unaligned bytes covering exactly chunks [first, first + n). */
static void as_bytes(struct shared *s, struct rng *r, size_t first, size_t n, char **start,
                     size_t *bytes)
{
    size_t head = rng_below(r, s->chunk);
    char *from = chunk_at(s, first) + head;
    char *to = chunk_at(s, first + n - 1) + 1 + rng_below(r, s->chunk);
    if (to <= from)
        to = from + 1 + rng_below(r, s->chunk - head);
    *start = from;
    *bytes = (size_t)(to - from);
}

static const struct mmapper_map_opts *pick_opts(struct rng *r)
{
    static const struct mmapper_map_opts thp = { .huge_page = MMAPPER_HUGE_PAGE_TRANSPARENT };
    return rng_below(r, 4) == 0 ? &thp : NULL;
}

/* ---- shared chunks ------------------------------------------------------ */

static void shared_op(struct worker *w)
{
    struct shared *s = w->s;
    struct rng *r = &w->rng;
    /* A shared segment runs from the end of one owned block to the start of
     * the next: [OWNED_AT + OWNED_LEN + k * PERIOD, OWNED_AT + (k + 1) * PERIOD). */
    size_t k = rng_below(r, NBLOCKS + 1);
    size_t lo = k == 0 ? 0 : OWNED_AT + OWNED_LEN + (k - 1) * PERIOD;
    size_t hi = k == NBLOCKS ? NCHUNKS : OWNED_AT + k * PERIOD;
    size_t first = lo + rng_below(r, hi - lo), n = rng_length(r, hi - lo);
    if (first + n > hi)
        n = hi - first;
    char *start;
    size_t bytes;
    as_bytes(s, r, first, n, &start, &bytes);
    enum op op = (enum op)rng_below(r, NOPS);
    atomic_fetch_add_explicit(&s->calls[op], 1, memory_order_relaxed);
    if (op == OP_QUERY) {
        for (size_t c = first; c < first + n; c++) {
            mmapper_state_t st = mmapper_state(s->m, chunk_at(s, c));
            bool mapped = mmapper_is_mapped(s->m, chunk_at(s, c));
            CHECK((unsigned)st <= MMAPPER_PROTECTED, "chunk %zu: state %d", c, st);
            (void)mapped;   /* either answer can be right a moment later */
        }
        return;
    }
    int rc = call(s, op, start, bytes, pick_opts(r));
    bool may_einval = op == OP_PROTECT || op == OP_DECOMMIT;
    CHECK(rc == 0 || (rc == -EINVAL && may_einval),
          "shared %s of chunks [%zu, %zu) returned %d (%s)", op_names[op], first, first + n,
          rc, mmapper_strerror(rc));
    if (rc)
        atomic_fetch_add_explicit(&s->einval[op], 1, memory_order_relaxed);
}

/* ---- owned chunks ------------------------------------------------------- */

static uint64_t *head_word(struct shared *s, size_t c)
{
    return (uint64_t *)chunk_at(s, c);
}

static uint64_t *tail_word(struct shared *s, size_t c)
{
    return (uint64_t *)chunk_at(s, c + 1) - 1;
}

/* Expected system calls of op over owned chunks [first, first+n) and the
 * model's new states; -EINVAL (and no change) if a chunk forbids it. */
static int predict(struct worker *w, enum op op, size_t first, size_t n,
                   const struct mmapper_map_opts *o, uint64_t *syscalls)
{
    *syscalls = 0;
    for (size_t c = first; c < first + n; c++) {
        if (action(op, w->state[c]) == A_ILLEGAL)
            return -EINVAL;
    }
    enum act run = A_NONE;
    for (size_t c = first; c < first + n; c++) {
        enum act a = action(op, w->state[c]);
        if (a != A_NONE && a != run) {
            bool new_mapping = a == A_MAP_FRESH || a == A_RESERVE || a == A_COMMIT;
            *syscalls += 1 + (new_mapping && o && o->huge_page != MMAPPER_HUGE_PAGE_DEFAULT);
        }
        run = a;
        if (a == A_NONE)
            continue;
        if (a == A_MAP_FRESH || a == A_RESERVE || a == A_DECOMMIT || a == A_UNMAP ||
            (a == A_COMMIT && w->state[c] == MMAPPER_QUARANTINED))
            w->tag[c] = 0;   /* the memory is new (or gone) */
        w->state[c] = (uint8_t)target[op];
        w->changes[c]++;
    }
    return 0;
}

static void owned_op(struct worker *w, size_t block)
{
    struct shared *s = w->s;
    struct rng *r = &w->rng;
    size_t lo = OWNED_AT + block * PERIOD;
    size_t first = lo + rng_below(r, OWNED_LEN), n = rng_length(r, OWNED_LEN);
    if (first + n > lo + OWNED_LEN)
        n = lo + OWNED_LEN - first;
    char *start;
    size_t bytes;
    as_bytes(s, r, first, n, &start, &bytes);
    enum op op = (enum op)rng_below(r, NOPS - 1);
    const struct mmapper_map_opts *o = pick_opts(r);

    uint64_t before = os_ledger_starts(&s->ledger, lo, OWNED_LEN), expect_calls;
    int want = predict(w, op, first, n, o, &expect_calls);
    int rc = call(s, op, start, bytes, o);
    uint64_t made = os_ledger_starts(&s->ledger, lo, OWNED_LEN) - before;
    CHECK(rc == want, "thread %u: owned %s of chunks [%zu, %zu) returned %d (%s), model says %d",
          w->id, op_names[op], first, first + n, rc, mmapper_strerror(rc), want);
    CHECK(made == expect_calls,
          "thread %u: owned %s of chunks [%zu, %zu) made %" PRIu64 " system calls, model says %"
          PRIu64, w->id, op_names[op], first, first + n, made, expect_calls);
    atomic_fetch_add_explicit(&s->owned_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->owned_syscalls, made, memory_order_relaxed);

    for (size_t c = lo; c < lo + OWNED_LEN; c++) {
        mmapper_state_t st = mmapper_state(s->m, chunk_at(s, c));
        CHECK(st == w->state[c], "thread %u: owned chunk %zu in state %d, model says %d after %s",
              w->id, c, st, w->state[c], op_names[op]);
        CHECK(os_ledger_changes(&s->ledger, c, 1) == w->changes[c],
              "thread %u: owned chunk %zu changed by %" PRIu64 " system calls, model made %u",
              w->id, c, os_ledger_changes(&s->ledger, c, 1), w->changes[c]);
        if (st != MMAPPER_MAPPED)
            continue;
        CHECK(*head_word(s, c) == w->tag[c] && *tail_word(s, c) == w->tag[c],
              "thread %u: owned chunk %zu holds %#" PRIx64 "/%#" PRIx64 ", expected %#" PRIx64
              " after %s", w->id, c, *head_word(s, c), *tail_word(s, c), w->tag[c],
              op_names[op]);
        w->tag[c] = rng_next(r) | 1;
        *head_word(s, c) = *tail_word(s, c) = w->tag[c];
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    size_t my_blocks = 0;
    for (size_t k = w->id; k < NBLOCKS; k += s->opts.threads)
        my_blocks++;
    double t0 = stress_now();
    for (uint64_t i = 0; i < s->opts.ops || s->opts.seconds > 0; i++) {
        if (stress_time_up(&s->opts, t0))
            break;
        if (my_blocks && rng_below(&w->rng, 3) == 0)
            owned_op(w, w->id + rng_below(&w->rng, my_blocks) * s->opts.threads);
        else
            shared_op(w);
    }
    return NULL;
}

static void check_end(struct shared *s)
{
    struct mmapper_stats st;
    mmapper_get_stats(s->m, &st);
    CHECK(st.mmap_calls == test_os_calls(&s->tos, TOS_MMAP) &&
              st.munmap_calls == test_os_calls(&s->tos, TOS_MUNMAP) &&
              st.mprotect_calls == test_os_calls(&s->tos, TOS_MPROTECT) &&
              st.madvise_calls == test_os_calls(&s->tos, TOS_MADVISE) &&
              st.name_calls == test_os_calls(&s->tos, TOS_SET_NAME),
          "library counters (mmap %" PRIu64 " munmap %" PRIu64 " mprotect %" PRIu64
          " madvise %" PRIu64 ") differ from the OS layer's",
          st.mmap_calls, st.munmap_calls, st.mprotect_calls, st.madvise_calls);
    stress_check_ledger(&s->ledger, s->m, "after the churn");
    stress_check_maps(s->m, s->base, NCHUNKS * s->chunk, true, "after the churn");
    stress_check_settled(s->m, s->base, NCHUNKS * s->chunk, "after the churn");
    uint64_t count[4] = { 0 };
    for (size_t c = 0; c < NCHUNKS; c++)
        count[mmapper_state(s->m, chunk_at(s, c))]++;
    CHECK(st.chunks_mapped == count[MMAPPER_MAPPED] &&
              st.chunks_quarantined == count[MMAPPER_QUARANTINED] &&
              st.chunks_protected == count[MMAPPER_PROTECTED],
          "gauges M/Q/P %" PRIu64 "/%" PRIu64 "/%" PRIu64 " but records say %" PRIu64 "/%" PRIu64
          "/%" PRIu64, st.chunks_mapped, st.chunks_quarantined, st.chunks_protected,
          count[MMAPPER_MAPPED], count[MMAPPER_QUARANTINED], count[MMAPPER_PROTECTED]);
}

int main(int argc, char **argv)
{
    static struct shared s;
    s.opts = (struct stress_opts){ .threads = 8, .ops = STRESS_SCALE(40000, 5000), .rounds = 1 };
    stress_parse(argc, argv, "all operations racing on overlapping ranges", &s.opts);

    test_os_init(&s.tos);
    os_ledger_init(&s.ledger, &s.tos.os);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &s.ledger.os };
    CHECK_RC(mmapper_create(&cfg, &s.m), 0, "mmapper_create");
    s.chunk = mmapper_granularity(s.m);
    stress_catch_faults(s.m);

    struct worker *ws = calloc(s.opts.threads, sizeof(*ws));
    CHECK(ws != NULL, "out of memory");
    s.base = stress_region(s.m, NCHUNKS * s.chunk, STRESS_SLAB_CHUNKS * s.chunk);
    CHECK(os_ledger_track(&s.ledger, s.m, s.base, NCHUNKS * s.chunk) == 0, "ledger");
    for (unsigned i = 0; i < s.opts.threads; i++) {
        ws[i].s = &s;
        ws[i].id = i;
        rng_init(&ws[i].rng, s.opts.seed, i + 1);
        memset(ws[i].state, MMAPPER_QUARANTINED, sizeof(ws[i].state));
    }
    stress_run_threads(s.opts.threads, worker_main, ws, sizeof(*ws));
    check_end(&s);

    uint64_t total = 0, syscalls = test_os_total_calls(&s.tos);
    char per_op[256] = "";
    for (int op = 0; op < NOPS; op++) {
        total += atomic_load(&s.calls[op]);
        size_t len = strlen(per_op);
        snprintf(per_op + len, sizeof(per_op) - len, "%s%s %" PRIu64, len ? ", " : "",
                 op_names[op], atomic_load(&s.calls[op]));
    }
    CHECK_RC(mmapper_unmap(s.m, s.base, NCHUNKS * s.chunk), 0, "final unmap");
    /* Empty slabs kept while the reclaimer was behind (RETIRE_LIMIT) go now. */
    CHECK_RC(mmapper_reclaim_wait(s.m), 0, "reclaim_wait");
    struct mmapper_stats st;
    mmapper_get_stats(s.m, &st);
    CHECK(st.slabs == 0 && st.chunks_mapped + st.chunks_quarantined + st.chunks_protected == 0,
          "%" PRIu64 " slabs and some chunks left after unmapping everything", st.slabs);
    CHECK(procmaps_range_free(s.base, NCHUNKS * s.chunk), "region not empty after unmap");
    stress_summary("%u threads: %" PRIu64 " shared calls (%s; %" PRIu64 " protect and %" PRIu64
                   " decommit saw -EINVAL), %" PRIu64 " owned calls with %" PRIu64
                   " syscalls matching the model exactly; %" PRIu64 " syscalls in all",
                   s.opts.threads, total, per_op, atomic_load(&s.einval[OP_PROTECT]),
                   atomic_load(&s.einval[OP_DECOMMIT]), atomic_load(&s.owned_calls),
                   atomic_load(&s.owned_syscalls), syscalls);
    mmapper_destroy(s.m);
    os_ledger_fini(&s.ledger);
    free(ws);
    return 0;
}
