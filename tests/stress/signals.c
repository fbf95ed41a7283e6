/*
 * signals: lookups from signal handlers.
 *
 *  segv   Threads that have never called mmapper touch Protected chunks; the
 *         SIGSEGV handler classifies each fault with mmapper_state (so each
 *         thread's first mmapper call, and its urcu-bp registration, happens
 *         inside the handler) and skips the access.  Every fault must be
 *         classified Protected.
 *  storm  Threads look chunks up and transition chunks of their own slabs
 *         while another thread sends them SIGUSR1 as fast as it can; the
 *         handler looks up (singly and as a batch) a chunk that is always
 *         Mapped and one that never is, interrupting its thread in the
 *         middle of a lookup (a nested read-side section) or just before or
 *         after a transition (signals are blocked while slab locks are
 *         held).  Every answer must be right, some handlers must be
 *         threads' first mmapper call, and nothing may hang.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress_util.h"

static mmapper_t *m;
static size_t chunk, slab;
static char *prot_base;              /* Protected chunks */
static char *mapped_chunk, *never_chunk;

/* ---- segv ---------------------------------------------------------------------- */

#define SEGV_THREADS 8
#define SEGV_CHUNKS 16

static _Thread_local sigjmp_buf segv_jump;
static _Thread_local volatile sig_atomic_t segv_armed;
static _Atomic unsigned classified, misclassified;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (!segv_armed) {
        signal(sig, SIG_DFL);   /* a real crash: let it happen */
        return;
    }
    if (mmapper_state(m, si->si_addr) == MMAPPER_PROTECTED)
        atomic_fetch_add(&classified, 1);
    else
        atomic_fetch_add(&misclassified, 1);
    siglongjmp(segv_jump, 1);
}

static void *segv_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    volatile unsigned faults = 0;
    unsigned want = STRESS_SCALE(400, 100);
    for (volatile unsigned i = 0; i < want; i++) {
        volatile char *p = prot_base + ((id + i) % SEGV_CHUNKS) * chunk + (i * 64) % chunk;
        segv_armed = 1;
        if (sigsetjmp(segv_jump, 1) == 0)
            *p = 1;   /* faults: the chunk is Protected */
        else
            faults++;
        segv_armed = 0;
    }
    CHECK(faults == want, "thread %u: %u faults of %u accesses", id, faults, want);
    return NULL;
}

static void test_segv(void)
{
    struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
    pthread_t t[SEGV_THREADS];
    for (unsigned i = 0; i < SEGV_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, segv_thread, (void *)(uintptr_t)i) == 0, "thread");
    for (unsigned i = 0; i < SEGV_THREADS; i++)
        pthread_join(t[i], NULL);
    signal(SIGSEGV, SIG_DFL);
    CHECK(atomic_load(&misclassified) == 0, "%u faults not classified Protected",
          atomic_load(&misclassified));
    stress_summary("segv: %u faults on Protected chunks classified in handlers of %u threads "
                   "whose first mmapper call was there", atomic_load(&classified),
                   SEGV_THREADS);
}

/* ---- storm ----------------------------------------------------------------------- */

#define STORM_THREADS 4

static _Atomic uint64_t handled, wrong;
static _Atomic bool storm_stop;

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    const void *both[3] = { mapped_chunk, never_chunk, mapped_chunk };
    bool many[3];
    if (!mmapper_is_mapped(m, mapped_chunk) || mmapper_is_mapped(m, never_chunk) ||
        mmapper_state(m, mapped_chunk) != MMAPPER_MAPPED ||
        mmapper_is_mapped_many(m, both, 3, many) != 2 || !many[0] || many[1] || !many[2])
        atomic_fetch_add(&wrong, 1);
    atomic_fetch_add(&handled, 1);
    errno = saved;
}

struct storm_thread {
    unsigned id;
    char *own;                        /* one slab of its own */
    _Atomic bool ready;
};

static void *storm_worker(void *arg)
{
    struct storm_thread *st = arg;
    atomic_store(&st->ready, true);
    struct rng rng;
    rng_init(&rng, st->id, 7);
    /* The first signals arrive before this thread's first mmapper call. */
    usleep(2000);
    while (!atomic_load(&storm_stop)) {
        for (int i = 0; i < 64; i++)
            if (!mmapper_is_mapped(m, mapped_chunk))
                atomic_fetch_add(&wrong, 1);
        char *p = st->own + rng_below(&rng, STRESS_SLAB_CHUNKS) * chunk;
        CHECK_RC(mmapper_ensure_mapped(m, p, chunk, NULL), 0, "map");
        CHECK_RC(mmapper_protect(m, p, chunk), 0, "protect");
        CHECK_RC(mmapper_unmap(m, st->own, slab), 0, "unmap");   /* the slab goes */
    }
    return NULL;
}

static void test_storm(void)
{
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    char *own = stress_region(m, STORM_THREADS * slab, slab);
    CHECK_RC(mmapper_unmap(m, own, STORM_THREADS * slab), 0, "empty the region");
    struct storm_thread st[STORM_THREADS];
    pthread_t t[STORM_THREADS];
    for (unsigned i = 0; i < STORM_THREADS; i++) {
        st[i] = (struct storm_thread){ .id = i, .own = own + i * slab };
        CHECK(pthread_create(&t[i], NULL, storm_worker, &st[i]) == 0, "thread");
    }
    for (unsigned i = 0; i < STORM_THREADS; i++)
        while (!atomic_load(&st[i].ready))
            sched_yield();
    double t0 = stress_now(), seconds = STRESS_SCALE(1.5, 1.0);
    uint64_t sent = 0;
    while (stress_now() - t0 < seconds) {
        for (unsigned i = 0; i < STORM_THREADS; i++, sent++)
            pthread_kill(t[i], SIGUSR1);
        if (sent % 64 == 0)
            usleep(10);
    }
    atomic_store(&storm_stop, true);
    for (unsigned i = 0; i < STORM_THREADS; i++)
        pthread_join(t[i], NULL);
    signal(SIGUSR1, SIG_IGN);
    CHECK(atomic_load(&wrong) == 0, "%" PRIu64 " wrong answers", atomic_load(&wrong));
    CHECK(atomic_load(&handled) > 0, "no signal was handled");
    stress_check_maps(m, own, STORM_THREADS * slab, true, "after the storm");
    stress_summary("storm: %" PRIu64 " signals sent, %" PRIu64 " handled with lookups, 0 wrong",
                   sent, atomic_load(&handled));
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = 1, .rounds = 1 };
    stress_parse(argc, argv, "lookups from signal handlers", &o);
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &m), 0,
             "create");
    chunk = mmapper_granularity(m);
    slab = STRESS_SLAB_CHUNKS * chunk;
    char *base = stress_region(m, 2 * slab, slab);
    prot_base = base;
    CHECK_RC(mmapper_ensure_mapped(m, prot_base, SEGV_CHUNKS * chunk, NULL), 0, "map");
    CHECK_RC(mmapper_protect(m, prot_base, SEGV_CHUNKS * chunk), 0, "protect");
    mapped_chunk = base + slab;
    CHECK_RC(mmapper_ensure_mapped(m, mapped_chunk, chunk, NULL), 0, "map");
    never_chunk = base + slab + 7 * chunk;   /* Quarantined: never Mapped */
    test_segv();
    test_storm();
    CHECK_RC(mmapper_unmap(m, base, 2 * slab), 0, "cleanup");
    mmapper_destroy(m);
    return 0;
}
