/*
 * stw_collector: a stop-the-world garbage collector of the Boehm/Mono kind
 * on top of mmapper.  Mutator threads spend their time in is_mapped and in
 * transitions that create and remove slabs; the collector stops them all
 * with a signal (each handler acknowledges, then waits in sigsuspend for
 * the restart signal), and while the world is stopped it unmaps and maps
 * chunks of its own (removing and creating slabs) and a chunk in each
 * mutator's slabs, then restarts the world.  The mapper is created with
 * block_signals, so no stopped mutator holds a slab lock.
 *
 * Whatever the mutators were doing when stopped (inside a lookup's
 * read-side section, waiting for or holding a slab lock), the collector's
 * calls must return and every mutator must acknowledge each stop: a
 * watchdog fails the run, naming the step, if a collection takes more than
 * 10 s.  Afterwards the records match the kernel.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress_util.h"

#define SIG_SUSPEND SIGUSR1
#define SIG_RESTART SIGUSR2
#define MUTATOR_SLABS 4            /* each mutator's own slabs */
#define COLLECTOR_SLABS 8

struct world {
    mmapper_t *m;
    size_t chunk, slab;
    char *shared;                  /* a Mapped slab every mutator reads */
    char *own;                     /* mutators' and the collector's slabs */
    unsigned mutators;
    _Atomic bool stop_mutators;
    _Atomic unsigned stopped;      /* acknowledgements of the current stop */
    _Atomic unsigned restarted;
    _Atomic unsigned long collections;
    _Atomic int step;              /* where the collector is, for the watchdog */
    _Atomic uint64_t lookups, transitions;
};

static struct world w;
static _Atomic bool world_stopped;

static void on_suspend(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add(&w.stopped, 1);
    sigset_t wait_for;
    sigfillset(&wait_for);
    sigdelset(&wait_for, SIG_RESTART);
    while (atomic_load(&world_stopped))
        sigsuspend(&wait_for);
    atomic_fetch_add(&w.restarted, 1);
    errno = saved;
}

static void on_restart(int sig)
{
    (void)sig;
}

struct mutator {
    unsigned id;
    struct rng rng;
};

static void *mutator_main(void *arg)
{
    struct mutator *mu = arg;
    char *mine = w.own + (size_t)mu->id * MUTATOR_SLABS * w.slab;
    while (!atomic_load(&w.stop_mutators)) {
        for (int i = 0; i < 64; i++) {
            const char *p = w.shared + rng_below(&mu->rng, STRESS_SLAB_CHUNKS) * w.chunk;
            CHECK(mmapper_is_mapped(w.m, p), "shared chunk not mapped");
        }
        atomic_fetch_add(&w.lookups, 64);
        /* One chunk in each of our slabs: mapping creates the slabs,
         * unmapping removes them.  The last chunk is the collector's. */
        size_t k = rng_below(&mu->rng, STRESS_SLAB_CHUNKS - 1);
        for (unsigned s = 0; s < MUTATOR_SLABS; s++)
            CHECK_RC(mmapper_ensure_mapped(w.m, mine + s * w.slab + k * w.chunk, w.chunk, NULL),
                     0, "mutator map");
        CHECK_RC(mmapper_unmap(w.m, mine, MUTATOR_SLABS * w.slab), 0, "mutator unmap");
        atomic_fetch_add(&w.transitions, 2);
    }
    return NULL;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    unsigned long last = (unsigned long)-1;
    double since = stress_now();
    for (;;) {
        usleep(100000);
        unsigned long c = atomic_load(&w.collections);
        if (c == (unsigned long)-2)
            return NULL;
        if (c != last) {
            last = c;
            since = stress_now();
        } else if (stress_now() - since > 10.0) {
            static const char *steps[] = { "running", "waiting for acknowledgements",
                                           "unmapping during the stop",
                                           "mapping during the stop",
                                           "waiting for mutators to restart" };
            stress_fail("collection %lu stuck for 10 s while %s (%u of %u stopped)", c,
                        steps[atomic_load(&w.step)], atomic_load(&w.stopped), w.mutators);
        }
    }
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 4, .ops = STRESS_SCALE3(2000, 1000, 300), .rounds = 1 };
    stress_parse(argc, argv, "a signal-based stop-the-world collector over mmapper", &o);
#ifdef STRESS_TSAN
    /* ThreadSanitizer defers asynchronous signals to its own safe points
     * and never delivers a thread's second suspend signal once the first
     * handler waited for its restart in sigsuspend (seen with gcc 12 and
     * clang 14): the protocol cannot run under it.  The same stops are
     * made by soundness' suspend_ack, which TSan does run. */
    printf("SKIP: stw_collector under ThreadSanitizer\n");
    return 77;
#endif
    w.mutators = o.threads;
    /* block_signals: the collector transitions in the mutators' slabs too,
     * which a mutator stopped inside a transition would otherwise hold. */
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16,
                                                     .block_signals = true }, &w.m), 0,
             "create");
    w.chunk = mmapper_granularity(w.m);
    w.slab = STRESS_SLAB_CHUNKS * w.chunk;
    size_t own_slabs = (size_t)w.mutators * MUTATOR_SLABS + COLLECTOR_SLABS;
    char *region = stress_region(w.m, (1 + own_slabs) * w.slab, w.slab);
    CHECK_RC(mmapper_unmap(w.m, region, (1 + own_slabs) * w.slab), 0, "empty the region");
    w.shared = region;
    w.own = region + w.slab;
    CHECK_RC(mmapper_ensure_mapped(w.m, w.shared, w.slab, NULL), 0, "map the shared slab");
    char *coll = w.own + (size_t)w.mutators * MUTATOR_SLABS * w.slab;

    struct sigaction sa = { .sa_handler = on_suspend };
    sigfillset(&sa.sa_mask);
    CHECK(sigaction(SIG_SUSPEND, &sa, NULL) == 0, "sigaction");
    sa.sa_handler = on_restart;
    CHECK(sigaction(SIG_RESTART, &sa, NULL) == 0, "sigaction");

    pthread_t *tids = calloc(w.mutators, sizeof(*tids));
    struct mutator *mus = calloc(w.mutators, sizeof(*mus));
    CHECK(tids && mus, "out of memory");
    for (unsigned i = 0; i < w.mutators; i++) {
        mus[i].id = i;
        rng_init(&mus[i].rng, o.seed, i + 1);
        CHECK(pthread_create(&tids[i], NULL, mutator_main, &mus[i]) == 0, "mutator");
    }
    pthread_t dog;
    CHECK(pthread_create(&dog, NULL, watchdog_main, NULL) == 0, "watchdog");

    double worst_stop_ms = 0;
    struct rng rng;
    rng_init(&rng, o.seed, 0);
    for (uint64_t c = 0; c < o.ops; c++) {
        double t0 = stress_now();
        atomic_store(&w.stopped, 0);
        atomic_store(&w.restarted, 0);
        atomic_store(&world_stopped, true);
        atomic_store(&w.step, 1);
        for (unsigned i = 0; i < w.mutators; i++)
            CHECK(pthread_kill(tids[i], SIG_SUSPEND) == 0, "pthread_kill");
        while (atomic_load(&w.stopped) < w.mutators)
            usleep(20);
        /* The world is stopped, some mutators maybe inside is_mapped or a
         * transition.  Unmap what we hold (removing slabs), map anew. */
        atomic_store(&w.step, 2);
        CHECK_RC(mmapper_unmap(w.m, coll, COLLECTOR_SLABS * w.slab), 0, "collector unmap");
        /* And in every mutator slab, which a stopped mutator may be in the
         * middle of changing: map and unmap the last chunk. */
        for (size_t s = 0; s < (size_t)w.mutators * MUTATOR_SLABS; s++) {
            char *last = w.own + s * w.slab + (STRESS_SLAB_CHUNKS - 1) * w.chunk;
            CHECK_RC(mmapper_ensure_mapped(w.m, last, w.chunk, NULL), 0, "collector map there");
            CHECK_RC(mmapper_unmap(w.m, last, w.chunk), 0, "collector unmap there");
        }
        atomic_store(&w.step, 3);
        size_t k = rng_below(&rng, STRESS_SLAB_CHUNKS);
        for (unsigned s = 0; s < COLLECTOR_SLABS; s++)
            CHECK_RC(mmapper_ensure_mapped(w.m, coll + s * w.slab + k * w.chunk, w.chunk, NULL),
                     0, "collector map");
        double ms = (stress_now() - t0) * 1e3;
        worst_stop_ms = ms > worst_stop_ms ? ms : worst_stop_ms;
        atomic_store(&w.step, 4);
        atomic_store(&world_stopped, false);
        for (unsigned i = 0; i < w.mutators; i++)
            CHECK(pthread_kill(tids[i], SIG_RESTART) == 0, "pthread_kill");
        while (atomic_load(&w.restarted) < w.mutators) {
            usleep(20);
            /* A restart signal that arrived before sigsuspend: send again. */
            for (unsigned i = 0; i < w.mutators; i++)
                pthread_kill(tids[i], SIG_RESTART);
        }
        atomic_store(&w.step, 0);
        atomic_fetch_add(&w.collections, 1);
    }
    atomic_store(&w.stop_mutators, true);
    for (unsigned i = 0; i < w.mutators; i++)
        pthread_join(tids[i], NULL);
    atomic_store(&w.collections, (unsigned long)-2);
    pthread_join(dog, NULL);

    CHECK_RC(mmapper_unmap(w.m, coll, COLLECTOR_SLABS * w.slab), 0, "final unmap");
    stress_check_maps(w.m, region, (1 + own_slabs) * w.slab, true, "after the collections");
    stress_summary("%" PRIu64 " collections of %u mutators (%" PRIu64 " lookups, %" PRIu64
                   " transitions), 0 hangs, worst stop %.1f ms",
                   o.ops, w.mutators, atomic_load(&w.lookups), atomic_load(&w.transitions),
                   worst_stop_ms);
    CHECK_RC(mmapper_unmap(w.m, region, (1 + own_slabs) * w.slab), 0, "cleanup");
    mmapper_destroy(w.m);
    free(tids);
    free(mus);
    return 0;
}
