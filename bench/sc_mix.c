/*
 * The mixed workloads:
 *
 *  alloc-mix  threads bump-allocate chunks from a shared atomic cursor,
 *             ensure_mapped each, touch a few of its pages, look up random
 *             earlier addresses, and give back their own older chunks (three
 *             unmapped for one decommitted), like a chunk allocator.
 *  churn      writers map one chunk in each of CHURN_BATCH random slabs and
 *             unmap them again, forcing slab creation, table growth (a fresh
 *             instance every round) and slab reclamation, while readers
 *             look up a stable mapped region and the churning one.
 *
 * Rounds of all implementations are interleaved; every round leaves the
 * window unmapped.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "scenario.h"
#include "util.h"

#define MIX_RING 16        /* chunks a thread keeps before giving one back */
#define MIX_LOOKUPS 16     /* lookups per allocation */
#define MIX_TOUCHES 8      /* pages touched per chunk (spread over it) */

struct mix {
    const struct bench *b;
    _Atomic uint64_t cursor;
    uint64_t round;
};

static void give_back(struct measure *m, const struct bench *b, uintptr_t c)
{
    void *p = chunk_at(b, c);
    if (c % 4 == 0)
        check(m->impl->decommit(m->self, p, b->o->chunk), "alloc-mix decommit");
    else
        check(m->impl->unmap(m->self, p, b->o->chunk), "alloc-mix unmap");
}

static uint64_t mix_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    struct mix *x = m->data;
    const struct bench *b = x->b;
    size_t chunk = b->o->chunk, pages = chunk / b->o->page;
    size_t touches = pages < MIX_TOUCHES ? pages : MIX_TOUCHES, stride = chunk / touches;
    struct rng r;
    rng_seed(&r, b->o->seed, 5000 + (uint64_t)id + 1024 * x->round);
    uintptr_t ring[MIX_RING];
    uint64_t done = 0, hits = 0;
    while (team_more(t, done)) {
        uint64_t c = atomic_fetch_add_explicit(&x->cursor, 1, memory_order_relaxed);
        if (c >= b->chunks)
            break;   /* the window is used up: the round ends early */
        volatile char *p = chunk_at(b, c);
        check(m->impl->ensure_mapped(m->self, (void *)p, chunk), "alloc-mix ensure_mapped");
        for (size_t k = 0; k < touches; k++)
            p[k * stride] = 1;
        for (int j = 0; j < MIX_LOOKUPS; j++) {
            uintptr_t e = (uintptr_t)chunk_at(b, rng_below(&r, c + 1)) + rng_below(&r, chunk);
            hits += m->impl->is_mapped(m->self, (const void *)e);
        }
        if (done >= MIX_RING)
            give_back(m, b, ring[done % MIX_RING]);
        ring[done % MIX_RING] = c;
        done++;
    }
    sink(hits);
    return done;
}

static void mix_prepare(struct measure *m, int threads)
{
    struct mix *x = m->data;
    atomic_store(&x->cursor, 0);
    x->round++;
}

static void mix_cleanup(struct measure *m)
{
    struct mix *x = m->data;
    uint64_t used = atomic_load(&x->cursor);
    if (used > x->b->chunks)
        used = x->b->chunks;
    if (used)
        check(m->impl->unmap(m->self, (void *)x->b->base, used << x->b->o->log_chunk),
              "alloc-mix teardown");
}

void scenario_alloc_mix(struct bench *b)
{
    const struct options *o = b->o;
    struct mix x = { .b = b };
    struct measure m[STATEFUL_IMPLS];
    struct impl_env env = bench_env(b);
    for (int i = 0; i < STATEFUL_IMPLS; i++)
        m[i] = (struct measure){ .impl = stateful_impls[i],
                                 .self = stateful_impls[i]->create(&env), .data = &x };
    struct measure_spec spec = { .work = mix_work, .prepare = mix_prepare,
                                 .cleanup = mix_cleanup };
    for (int ti = 0; ti < o->nthreads; ti++) {
        progress("alloc-mix: %d threads (%d/%d)", o->threads[ti], ti + 1, o->nthreads);
        struct team *t = team_start(o->threads[ti]);
        measure_interleaved(b, "alloc-mix", m, STATEFUL_IMPLS, t, &spec);
        team_finish(t);
    }
    for (int i = 0; i < STATEFUL_IMPLS; i++)
        m[i].impl->destroy(m[i].self);
    static char title[200];
    snprintf(title, sizeof(title),
             "bump-allocate a chunk, ensure_mapped, touch %d pages, %d lookups, give back "
             "one of %d older; ns/op per allocation", MIX_TOUCHES, MIX_LOOKUPS, MIX_RING);
    report_print(&(struct table){ "alloc-mix", title, "sys/op", NULL });
}

/* ---- churn ---- */

#define CHURN_STABLE_SPANS 16
#define CHURN_BATCH 32
#define CHURN_ADDRS 4096

struct churn {
    const struct bench *b;
    int writers;
    uintptr_t **reader_addrs;
    uint64_t round;
    _Atomic uint64_t writer_ops, reader_ops;
};

static uint64_t churn_writer(struct measure *m, struct churn *x, int id, const struct team *t)
{
    const struct bench *b = x->b;
    size_t chunk = b->o->chunk;
    uintptr_t spans = (b->chunks / SPAN_CHUNKS - CHURN_STABLE_SPANS) / (uintptr_t)x->writers;
    struct rng r;
    rng_seed(&r, b->o->seed, 6000 + (uint64_t)id + 1024 * x->round);
    void *batch[CHURN_BATCH];
    uint64_t done = 0;
    while (team_more(t, done)) {
        for (int i = 0; i < CHURN_BATCH; i++) {
            uintptr_t span = CHURN_STABLE_SPANS + rng_below(&r, spans) * (uintptr_t)x->writers +
                             (uintptr_t)id;
            batch[i] = chunk_at(b, span * SPAN_CHUNKS + rng_below(&r, SPAN_CHUNKS));
            check(m->impl->ensure_mapped(m->self, batch[i], chunk), "churn ensure_mapped");
        }
        for (int i = 0; i < CHURN_BATCH; i++)
            check(m->impl->unmap(m->self, batch[i], chunk), "churn unmap");
        done += 2 * CHURN_BATCH;
    }
    atomic_fetch_add(&x->writer_ops, done);
    return done;
}

static uint64_t churn_work(void *arg, int id, const struct team *t)
{
    struct measure *m = arg;
    struct churn *x = m->data;
    if (id < x->writers)
        return churn_writer(m, x, id, t);
    uint64_t done = 0, hits = 0;
    while (team_more(t, done)) {
        hits += m->impl->count_mapped(m->self, x->reader_addrs[id], CHURN_ADDRS);
        done += CHURN_ADDRS;
    }
    sink(hits);
    atomic_fetch_add(&x->reader_ops, done);
    return done;
}

/* Every recorded round of one implementation. */
struct churn_samples {
    double wall[64];
    uint64_t writer_ops[64], reader_ops[64];
    uint64_t syscalls;           /* the writers', over all recorded rounds */
};

/* One round on a fresh instance, recorded as round r of *s (r < 0: warm-up). */
static void churn_round(struct bench *b, struct team *t, struct measure *m, struct churn *x,
                        struct churn_samples *s, int r)
{
    struct impl_env env = bench_env(b);
    m->self = m->impl->create(&env);   /* fresh: its table has to grow again */
    for (uintptr_t span = 0; span < CHURN_STABLE_SPANS; span++)
        check(m->impl->ensure_mapped(m->self, chunk_at(b, span * SPAN_CHUNKS),
                                     LAYOUT_SPARSE_RUN * b->o->chunk),
              "churn stable region");
    x->round++;
    atomic_store(&x->writer_ops, 0);
    atomic_store(&x->reader_ops, 0);
    uint64_t before = m->impl->syscalls(m->self);
    struct round_result res = team_round(t, churn_work, m, bench_budget(b));
    uint64_t made = m->impl->syscalls(m->self) - before;
    unmap_window(b, m->impl, m->self);
    m->impl->destroy(m->self);
    if (r < 0)
        return;
    s->wall[r] = res.wall_ns;
    s->writer_ops[r] = atomic_load(&x->writer_ops);
    s->reader_ops[r] = atomic_load(&x->reader_ops);
    s->syscalls += made;
}

void scenario_churn(struct bench *b)
{
    const struct options *o = b->o;
    int nt = 1;
    for (int i = 0; i < o->nthreads; i++)
        nt = o->threads[i] > nt ? o->threads[i] : nt;
    struct churn x = { .b = b, .reader_addrs = addr_arrays_new(nt, CHURN_ADDRS) };
    uintptr_t churn_chunks = b->chunks - CHURN_STABLE_SPANS * SPAN_CHUNKS;
    for (int id = 0; id < nt; id++) {
        struct rng r;
        rng_seed(&r, o->seed, 7000 + (uint64_t)id);
        for (size_t i = 0; i < CHURN_ADDRS; i++) {
            uintptr_t c = i % 2 ? rng_below(&r, CHURN_STABLE_SPANS) * SPAN_CHUNKS +
                                      rng_below(&r, LAYOUT_SPARSE_RUN)
                                : CHURN_STABLE_SPANS * SPAN_CHUNKS + rng_below(&r, churn_chunks);
            x.reader_addrs[id][i] = (uintptr_t)chunk_at(b, c) + rng_below(&r, o->chunk);
        }
    }
    int reps = o->reps;   /* at most 64 */
    for (int ti = 0; ti < o->nthreads; ti++) {
        int T = o->threads[ti];
        progress("churn: %d threads (%d/%d)", T, ti + 1, o->nthreads);
        x.writers = T / 2 > 1 ? T / 2 : 1;
        struct team *t = team_start(T);
        struct measure m[STATEFUL_IMPLS];
        struct churn_samples samples[STATEFUL_IMPLS] = { 0 };
        for (int r = -1; r < reps; r++) {
            for (int i = 0; i < STATEFUL_IMPLS; i++) {
                m[i] = (struct measure){ .impl = stateful_impls[i], .data = &x };
                churn_round(b, t, &m[i], &x, &samples[i], r);
            }
        }
        for (int i = 0; i < STATEFUL_IMPLS; i++) {
            const struct churn_samples *s = &samples[i];
            uint64_t writer_ops = 0;
            for (int r = 0; r < reps; r++)
                writer_ops += s->writer_ops[r];
            report_add(row_from_reps("churn-writers", m[i].impl->name, T, s->wall, s->writer_ops,
                                     reps, (double)s->syscalls / (double)writer_ops));
            if (T > x.writers)
                report_add(row_from_reps("churn-readers", m[i].impl->name, T, s->wall,
                                         s->reader_ops, reps, 0));
        }
        team_finish(t);
    }
    addr_arrays_free(x.reader_addrs, nt);
    static char title_w[200], title_r[200];
    snprintf(title_w, sizeof(title_w),
             "max(1,T/2) writers map a chunk in each of %d random slabs, then unmap them; "
             "fresh instance per round; ns/op per transition", CHURN_BATCH);
    snprintf(title_r, sizeof(title_r),
             "the other threads' is_mapped (half stable hits, half churning space) meanwhile");
    report_print(&(struct table){ "churn-writers", title_w, "sys/op", NULL });
    report_print(&(struct table){ "churn-readers", title_r, "sys/op", NULL });
}
