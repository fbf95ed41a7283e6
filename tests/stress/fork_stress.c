/*
 * fork_stress: fork() while other threads hammer one mapper.
 *
 * Two threads look chunks up and two transition them (map, protect,
 * decommit, unmap of single chunks and of whole slabs, so slabs are created
 * and removed all the time) on shared slabs, and one creates and destroys
 * mappers of its own, while the main thread forks.
 * Each child, under a deadline, checks that its record of the inherited
 * mapper matches its own kernel view (a transition may have been in flight
 * in another thread at the moment of the fork), then runs a full cycle:
 * map, touch, unmap everything (removing slabs), is_mapped, a grace period
 * (mmapper_reclaim_wait), and a new mapper of its own.  Every tenth child
 * forks a grandchild that does the same.  The parent counts children that
 * hang (killed after the deadline) or fail: both must be 0.
 *
 * Under ThreadSanitizer, which cannot start threads in the child of a
 * multithreaded process, children do not create a new mapper (that starts
 * the reclaimer thread) and there are fewer forks.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hang_report.h"
#include "procmaps.h"
#include "stress_util.h"

#define SLABS 8
#define CHILD_DEADLINE_S 20

#ifdef STRESS_TSAN
#define CHILD_CREATES false
#else
#define CHILD_CREATES true
#endif

static mmapper_t *m;
static char *region;
static size_t chunk, slab, nchunks;
static _Atomic bool stop;
static _Atomic uint64_t ops;
static _Atomic unsigned running;   /* threads past their start-up */

static void *looker(void *arg)
{
    atomic_fetch_add(&running, 1);
    struct rng rng;
    rng_init(&rng, (uintptr_t)arg, 1);
    while (!atomic_load(&stop)) {
        for (int i = 0; i < 256; i++) {
            char *p = region + rng_below(&rng, nchunks) * chunk;
            (void)(i % 2 ? mmapper_is_mapped(m, p) : (bool)mmapper_state(m, p));
        }
        atomic_fetch_add(&ops, 256);
    }
    return NULL;
}

static void *transitioner(void *arg)
{
    atomic_fetch_add(&running, 1);
    struct rng rng;
    rng_init(&rng, (uintptr_t)arg, 2);
    while (!atomic_load(&stop)) {
        size_t c = rng_below(&rng, nchunks), n = 1 + rng_below(&rng, 4);
        if (c + n > nchunks)
            n = nchunks - c;
        char *p = region + c * chunk;
        int rc = 0;
        switch (rng_below(&rng, 6)) {
        case 0:
        case 1:
            rc = mmapper_ensure_mapped(m, p, n * chunk, NULL);
            break;
        case 2:
            rc = mmapper_protect(m, p, n * chunk);
            rc = rc == -EINVAL ? 0 : rc;   /* Unmapped or Quarantined chunks */
            break;
        case 3:
            rc = mmapper_decommit(m, p, n * chunk);
            rc = rc == -EINVAL ? 0 : rc;
            break;
        case 4:
            rc = mmapper_unmap(m, p, n * chunk);
            break;
        default:   /* a whole slab: it leaves the table */
            rc = mmapper_unmap(m, region + (c / STRESS_SLAB_CHUNKS) * slab, slab);
            break;
        }
        CHECK_RC(rc, 0, "transition");
        atomic_fetch_add(&ops, 1);
    }
    return NULL;
}

/* Mappers created and destroyed all the time: a fork may come in the middle
 * of either, and must neither hang nor hand the child a broken mapper. */
static void *creator(void *arg)
{
    atomic_fetch_add(&running, 1);
    (void)arg;
    while (!atomic_load(&stop)) {
        mmapper_t *n;
        CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &n), 0,
                 "creator: create");
        void *p;
        CHECK_RC(mmapper_quarantine_anywhere(n, 2 * mmapper_granularity(n), NULL, &p), 0,
                 "creator: reserve");
        CHECK_RC(mmapper_ensure_mapped(n, p, mmapper_granularity(n), NULL), 0, "creator: map");
        CHECK_RC(mmapper_unmap(n, p, 2 * mmapper_granularity(n)), 0, "creator: unmap");
        mmapper_destroy(n);
        atomic_fetch_add(&ops, 1);
    }
    return NULL;
}

/* Map, touch, unmap everything, look up, wait for a grace period. */
static void cycle(mmapper_t *mm, char *base, size_t bytes, const char *who)
{
    size_t c = mmapper_granularity(mm);
    CHECK_RC(mmapper_ensure_mapped(mm, base, 2 * c, NULL), 0, who);
    memset(base, 0x5a, 2 * c);
    CHECK_RC(mmapper_unmap(mm, base, bytes), 0, who);
    CHECK(!mmapper_is_mapped(mm, base), "%s: still mapped after unmap", who);
    CHECK_RC(mmapper_reclaim_wait(mm), 0, who);
    struct mmapper_stats st;
    mmapper_get_stats(mm, &st);
    CHECK(st.slabs == 0 && st.chunks_mapped == 0, "%s: %" PRIu64 " slabs left", who, st.slabs);
    CHECK(procmaps_range_free(base, bytes), "%s: memory left after unmap", who);
}

static void new_mapper_cycle(const char *who)
{
    if (!CHILD_CREATES)
        return;
    mmapper_t *n;
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &n), 0, who);
    /* With a free guard above it, so that nothing else (a sanitizer's
     * allocator) moves into the range once it is unmapped. */
    char *p = stress_region(n, 4 * mmapper_granularity(n), 0);
    cycle(n, p, 4 * mmapper_granularity(n), who);
    mmapper_destroy(n);
}

static void child_main(unsigned k)
{
    alarm(CHILD_DEADLINE_S);   /* belt and braces: the parent also kills */
    /* The inherited record matches this process's address space. */
    stress_check_maps(m, region, SLABS * slab, true, "child: inherited mapper");
    cycle(m, region, SLABS * slab, "child: inherited mapper");
    new_mapper_cycle("child: new mapper");
    if (k % 10 == 0) {
        pid_t g = fork();
        CHECK(g >= 0, "fork in the child");
        if (g == 0) {
            alarm(CHILD_DEADLINE_S);
            CHECK_RC(mmapper_ensure_mapped(m, region, chunk, NULL), 0, "grandchild map");
            stress_check_maps(m, region, SLABS * slab, true, "grandchild");
            cycle(m, region, SLABS * slab, "grandchild");
            new_mapper_cycle("grandchild: new mapper");
            _exit(0);
        }
        bool hung = false;
        int status = hang_reap(g, CHILD_DEADLINE_S, "fork_stress: grandchild", &hung);
        CHECK(!hung, "grandchild hung");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "grandchild failed (status %#x)",
              status);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 4, .ops = STRESS_SCALE3(500, 500, 60), .rounds = 1 };
    stress_parse(argc, argv, "fork while threads look up and transition", &o);
    if (stress_emulated())
        stress_skip_emulated("qemu-user 7.2 itself aborts (cpu-exec.c: cpu == current_cpu) "
                             "when the child of a threaded process starts a thread; fork "
                             "safety is tested natively (x86-64, i386)");
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &m), 0,
             "create");
    chunk = mmapper_granularity(m);
    slab = STRESS_SLAB_CHUNKS * chunk;
    nchunks = SLABS * STRESS_SLAB_CHUNKS;
    region = stress_region(m, SLABS * slab, slab);
    CHECK_RC(mmapper_unmap(m, region, SLABS * slab), 0, "empty the region");

    unsigned nthreads = o.threads < 2 ? 2 : o.threads;
    pthread_t *t = calloc(nthreads + 1, sizeof(*t));
    CHECK(t, "out of memory");
    for (unsigned i = 0; i < nthreads; i++)
        CHECK(pthread_create(&t[i], NULL, i % 2 ? transitioner : looker,
                             (void *)(uintptr_t)(o.seed + i)) == 0, "thread");
    CHECK(pthread_create(&t[nthreads], NULL, creator, NULL) == 0, "creator thread");

    /* Fork only once every thread runs its loop.  A thread that is still
     * starting may be inside the runtime's allocator: ASan's (before LLVM
     * 18) has no fork handler, so a child forked then inherits its lock
     * held, and hangs in its own first pthread_create (of the reclaimer).
     * That is the sanitizer's defect, not ours; what we test is forking
     * while threads are inside mmapper. */
    while (atomic_load(&running) < nthreads + 1)
        usleep(100);

    unsigned hung = 0, failed = 0;
    double total_ms = 0, worst_ms = 0;
    for (unsigned k = 0; k < o.ops; k++) {
        double t0 = stress_now();
        pid_t pid = fork();
        CHECK(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0)
            child_main(k);
        bool h = false;
        int status = hang_reap(pid, CHILD_DEADLINE_S + 5, "fork_stress: child", &h);
        double ms = (stress_now() - t0) * 1e3;
        total_ms += ms;
        worst_ms = ms > worst_ms ? ms : worst_ms;
        if (h) {
            hung++;
            fprintf(stderr, "fork_stress: child %u hung; killed\n", k);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            fprintf(stderr, "fork_stress: child %u failed (status %#x)\n", k, status);
        }
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i <= nthreads; i++)
        pthread_join(t[i], NULL);
    free(t);
    CHECK(hung == 0 && failed == 0, "%u of %" PRIu64 " children hung, %u failed", hung, o.ops,
          failed);
    stress_check_maps(m, region, SLABS * slab, true, "parent after the forks");
    cycle(m, region, SLABS * slab, "parent");
    stress_summary("%" PRIu64 " forks (and %" PRIu64 " grandchildren) while %u threads (and a creator) made %"
                   PRIu64 " calls: 0 hung, 0 failed; child cycle %.1f ms mean, %.1f ms worst",
                   o.ops, (o.ops + 9) / 10, nthreads, atomic_load(&ops), total_ms / o.ops,
                   worst_ms);
    mmapper_destroy(m);
    return 0;
}
