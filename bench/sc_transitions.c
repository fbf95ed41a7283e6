/*
 * The round-based scenarios, where every round makes system calls:
 *
 *  race-same       T threads call ensure_mapped on the same RACE_CHUNKS fresh
 *                  chunks, one chunk per call, each thread starting at its own
 *                  random offset.  Exactly RACE_CHUNKS syscalls must result.
 *  fresh-disjoint  each thread maps FRESH_CHUNKS fresh chunks of its own;
 *                  the bare mmap(MAP_FIXED_NOREPLACE) is the reference.
 *
 * Rounds of all implementations are interleaved (the round's chunks are
 * unmapped again after it, outside the timed region, so they share the
 * window), which keeps a noisy machine from favouring one of them.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "scenario.h"
#include "util.h"

#define RACE_CHUNKS 64
#define FRESH_CHUNKS 32
#define MAX_IMPLS (STATEFUL_IMPLS + 1)

struct transitions {
    const struct bench *b;
    uintptr_t first;             /* race: the round's first chunk */
    uintptr_t *thread_first;     /* fresh: each thread's first chunk */
    uint32_t *offset;            /* race: each thread's starting offset */
};

static uint64_t race_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    const struct transitions *x = m->data;
    int err = 0;
    for (uintptr_t i = 0; i < RACE_CHUNKS; i++) {
        uintptr_t c = x->first + (x->offset[id] + i) % RACE_CHUNKS;
        err |= m->impl->ensure_mapped(m->self, chunk_at(x->b, c), x->b->o->chunk);
    }
    if (err)
        die("%s: ensure_mapped failed in race-same", m->impl->name);
    return RACE_CHUNKS;
}

static uint64_t fresh_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    const struct transitions *x = m->data;
    int err = 0;
    for (uintptr_t i = 0; i < FRESH_CHUNKS; i++)
        err |= m->impl->ensure_mapped(m->self, chunk_at(x->b, x->thread_first[id] + i),
                                      x->b->o->chunk);
    if (err)
        die("%s: ensure_mapped failed in fresh-disjoint", m->impl->name);
    return FRESH_CHUNKS;
}

/* A round with no work: what waking the team up costs by itself. */
static uint64_t idle_work(void *arg, int id, const struct team *t)
{
    return 0;
}

/* Per implementation and thread count: every recorded round. */
struct samples {
    double wall[MAX_IMPLS][MAX_THREAD_COUNTS][1024];
    double idle[MAX_THREAD_COUNTS][1024];
    uint64_t syscalls[MAX_IMPLS][MAX_THREAD_COUNTS];
    bool exact[MAX_IMPLS][MAX_THREAD_COUNTS];
};

static int rounds_of(const struct options *o)
{
    return o->rounds < 1024 ? o->rounds : 1024;
}

/* Every chunk of [first, first + n) must read as Mapped. */
static void verify_mapped(const struct bench *b, const struct impl *impl, void *self,
                          uintptr_t first, size_t n)
{
    for (uintptr_t c = first; c < first + n; c++)
        if (!impl->is_mapped(self, chunk_at(b, c)))
            die("%s: chunk %zu not mapped after ensure_mapped", impl->name, (size_t)c);
}

static void race_rounds(struct bench *b, struct team *t, int ti, struct measure *m,
                        struct samples *s, struct rng *rng, uintptr_t *cursor)
{
    int T = team_size(t);
    uint32_t offset[T];
    struct transitions x = { .b = b, .offset = offset };
    for (int r = -1; r < rounds_of(b->o); r++) {
        for (int i = 0; i < STATEFUL_IMPLS; i++) {
            if (*cursor + RACE_CHUNKS > b->chunks)
                *cursor = 0;
            x.first = *cursor;
            *cursor += RACE_CHUNKS;
            for (int k = 0; k < T; k++)
                offset[k] = (uint32_t)rng_below(rng, RACE_CHUNKS);
            m[i].data = &x;
            uint64_t before = m[i].impl->syscalls(m[i].self);
            struct round_result res = team_round(t, race_work, &m[i], (struct budget){ 0, 0 });
            uint64_t made = m[i].impl->syscalls(m[i].self) - before;
            verify_mapped(b, m[i].impl, m[i].self, x.first, RACE_CHUNKS);
            check(m[i].impl->unmap(m[i].self, chunk_at(b, x.first), RACE_CHUNKS * b->o->chunk),
                  "unmap race chunks");
            if (m[i].impl->quiesce)
                m[i].impl->quiesce(m[i].self);
            if (r < 0)
                continue;
            s->wall[i][ti][r] = res.wall_ns;
            s->syscalls[i][ti] += made;
            s->exact[i][ti] &= made == RACE_CHUNKS;
        }
        struct round_result idle = team_round(t, idle_work, NULL, (struct budget){ 0, 0 });
        if (r >= 0)
            s->idle[ti][r] = idle.wall_ns;
    }
}

void scenario_race_same(struct bench *b)
{
    const struct options *o = b->o;
    struct samples *s = calloc(1, sizeof(*s));
    struct measure m[STATEFUL_IMPLS];
    struct impl_env env = bench_env(b);
    for (int i = 0; i < STATEFUL_IMPLS; i++)
        m[i] = (struct measure){ .impl = stateful_impls[i],
                                 .self = stateful_impls[i]->create(&env) };
    struct rng rng;
    rng_seed(&rng, o->seed, 1000);
    uintptr_t cursor = 0;
    for (int ti = 0; ti < o->nthreads; ti++) {
        progress("race-same: %d threads (%d/%d)", o->threads[ti], ti + 1, o->nthreads);
        for (int i = 0; i < STATEFUL_IMPLS; i++)
            s->exact[i][ti] = true;
        struct team *t = team_start(o->threads[ti]);
        race_rounds(b, t, ti, m, s, &rng, &cursor);
        team_finish(t);
    }

    int rounds = rounds_of(o);
    uint64_t ops[1024];
    for (int r = 0; r < rounds; r++)
        ops[r] = RACE_CHUNKS;
    b->facts.race_ran = true;
    b->facts.race_exact = true;
    b->facts.race_idle_ratio_64t = NAN;
    for (int i = 0; i < STATEFUL_IMPLS; i++) {
        double one_thread = NAN;
        for (int ti = 0; ti < o->nthreads; ti++) {
            struct row row = row_from_reps("race-same", m[i].impl->name, o->threads[ti],
                                           s->wall[i][ti], ops, rounds,
                                           (double)s->syscalls[i][ti] / rounds);
            if (o->threads[ti] == 1)
                one_thread = row.ns_per_op;
            if (i == 0)
                b->facts.race_exact &= s->exact[0][ti];
            if (!s->exact[i][ti])
                fprintf(stderr, "mmbench: race-same: %s made other than %d syscalls "
                        "in some round at %d threads\n", m[i].impl->name, RACE_CHUNKS,
                        o->threads[ti]);
            report_add(row);
        }
        /* Wall time relative to one thread mapping the chunks alone. */
        for (int ti = 0; ti < o->nthreads; ti++) {
            struct row *row = (struct row *)report_find("race-same", m[i].impl->name,
                                                        o->threads[ti]);
            row->extra = row->ns_per_op / one_thread;
        }
        m[i].impl->destroy(m[i].self);
    }
    static char title[160];
    snprintf(title, sizeof(title),
             "T threads ensure_mapped the same %d fresh chunks, one per call; "
             "ns/op = round wall time / %d", RACE_CHUNKS, RACE_CHUNKS);
    report_print(&(struct table){ "race-same", title, "sys/round", "x 1 thread" });

    /* How much of a round is the team waking up: an empty round's wall time. */
    const struct row *one = report_find("race-same", "mmapper", 1);
    printf("empty round (thread wake-up only), us:");
    for (int ti = 0; ti < o->nthreads; ti++) {
        double idle = median(s->idle[ti], (size_t)rounds);
        printf(" %dt %.1f", o->threads[ti], idle / 1e3);
        if (o->threads[ti] == 64 && one)
            b->facts.race_idle_ratio_64t = idle / (one->ns_per_op * RACE_CHUNKS);
    }
    printf("\n");
    free(s);
}

static void fresh_rounds(struct bench *b, struct team *t, int ti, struct measure *m, int nimpl,
                         struct samples *s)
{
    int T = team_size(t);
    /* Each thread owns a run of whole spans, so no two share a slab. */
    size_t area = (b->chunks / (size_t)T) / SPAN_CHUNKS * SPAN_CHUNKS;
    if (area < FRESH_CHUNKS)
        die("fresh-disjoint: too many threads (%d) for the window", T);
    uintptr_t thread_first[T], step = 0;
    struct transitions x = { .b = b, .thread_first = thread_first };
    for (int r = -1; r < rounds_of(b->o); r++) {
        for (int i = 0; i < nimpl; i++) {
            uintptr_t off = (step++ * FRESH_CHUNKS) % (area - FRESH_CHUNKS + 1);
            for (int k = 0; k < T; k++)
                thread_first[k] = (uintptr_t)k * area + off;
            m[i].data = &x;
            uint64_t before = m[i].impl->syscalls(m[i].self);
            struct round_result res = team_round(t, fresh_work, &m[i], (struct budget){ 0, 0 });
            uint64_t made = m[i].impl->syscalls(m[i].self) - before;
            for (int k = 0; k < T; k++)
                check(m[i].impl->unmap(m[i].self, chunk_at(b, thread_first[k]),
                                       FRESH_CHUNKS * b->o->chunk),
                      "unmap fresh chunks");
            if (m[i].impl->quiesce)
                m[i].impl->quiesce(m[i].self);
            if (r < 0)
                continue;
            s->wall[i][ti][r] = res.wall_ns;
            s->syscalls[i][ti] += made;
        }
    }
}

void scenario_fresh_disjoint(struct bench *b)
{
    const struct options *o = b->o;
    struct samples *s = calloc(1, sizeof(*s));
    struct measure m[MAX_IMPLS];
    int nimpl = 0;
    struct impl_env env = bench_env(b);
    for (int i = 0; i < STATEFUL_IMPLS; i++)
        m[nimpl++] = (struct measure){ .impl = stateful_impls[i] };
    m[nimpl++] = (struct measure){ .impl = &impl_syscall };
    for (int i = 0; i < nimpl; i++)
        m[i].self = m[i].impl->create(&env);

    for (int ti = 0; ti < o->nthreads; ti++) {
        progress("fresh-disjoint: %d threads (%d/%d)", o->threads[ti], ti + 1, o->nthreads);
        struct team *t = team_start(o->threads[ti]);
        fresh_rounds(b, t, ti, m, nimpl, s);
        team_finish(t);
    }

    int rounds = rounds_of(o);
    for (int i = 0; i < nimpl; i++) {
        for (int ti = 0; ti < o->nthreads; ti++) {
            uint64_t ops[1024];
            uint64_t per_round = (uint64_t)o->threads[ti] * FRESH_CHUNKS;
            for (int r = 0; r < rounds; r++)
                ops[r] = per_round;
            report_add(row_from_reps("fresh-disjoint", m[i].impl->name, o->threads[ti],
                                     s->wall[i][ti], ops, rounds,
                                     (double)s->syscalls[i][ti] / ((double)rounds * per_round)));
        }
        m[i].impl->destroy(m[i].self);
    }
    static char title[160];
    snprintf(title, sizeof(title),
             "each thread maps %d fresh chunks of its own, one per call; "
             "syscall = bare mmap(MAP_FIXED_NOREPLACE)", FRESH_CHUNKS);
    report_print(&(struct table){ "fresh-disjoint", title, "sys/op", NULL });
    free(s);
}
