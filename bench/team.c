#include "config.h"

#include "team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

struct worker {
    _Alignas(64) struct team *team;
    int id;
    pthread_t tid;
    uint64_t start, end, ops;
};

struct team {
    int n;
    struct worker *workers;
    pthread_barrier_t go, done;
    /* Written by the main thread before `go`; the barrier orders them. */
    team_work_fn fn;
    void *arg;
    uint64_t iters;
    bool quit;
    _Alignas(64) atomic_bool stop;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct team *t = w->team;
    for (;;) {
        pthread_barrier_wait(&t->go);
        if (t->quit)
            return NULL;
        w->start = now_ns();
        w->ops = t->fn(t->arg, w->id, t);
        w->end = now_ns();
        pthread_barrier_wait(&t->done);
    }
}

struct team *team_start(int nthreads)
{
    struct team *t = calloc(1, sizeof(*t));
    struct worker *w = aligned_alloc(64, sizeof(*w) * (size_t)nthreads);
    if (!t || !w)
        die("out of memory");
    t->n = nthreads;
    t->workers = w;
    pthread_barrier_init(&t->go, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&t->done, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){ .team = t, .id = i };
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            die("cannot create thread %d of %d", i + 1, nthreads);
    }
    return t;
}

void team_finish(struct team *t)
{
    t->quit = true;
    pthread_barrier_wait(&t->go);
    for (int i = 0; i < t->n; i++)
        pthread_join(t->workers[i].tid, NULL);
    pthread_barrier_destroy(&t->go);
    pthread_barrier_destroy(&t->done);
    free(t->workers);
    free(t);
}

int team_size(const struct team *t)
{
    return t->n;
}

bool team_more(const struct team *t, uint64_t done)
{
    if (t->iters)
        return done < t->iters;
    /* Relaxed: a late stop only makes the round a batch longer, and the
     * round's time is measured by the workers themselves. */
    return !atomic_load_explicit(&t->stop, memory_order_relaxed);
}

struct round_result team_round(struct team *t, team_work_fn fn, void *arg, struct budget b)
{
    t->fn = fn;
    t->arg = arg;
    t->iters = b.iters;
    atomic_store(&t->stop, false);
    pthread_barrier_wait(&t->go);
    if (!b.iters && b.seconds > 0) {
        struct timespec ts = { .tv_sec = (time_t)b.seconds,
                               .tv_nsec = (long)((b.seconds - (double)(time_t)b.seconds) * 1e9) };
        nanosleep(&ts, NULL);
        atomic_store(&t->stop, true);
    }
    pthread_barrier_wait(&t->done);

    uint64_t first = UINT64_MAX, last = 0, ops = 0;
    for (int i = 0; i < t->n; i++) {
        const struct worker *w = &t->workers[i];
        first = w->start < first ? w->start : first;
        last = w->end > last ? w->end : last;
        ops += w->ops;
    }
    return (struct round_result){ .wall_ns = (double)(last - first), .ops = ops };
}
