#include "config.h"

#include "reclaim.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rcu.h"
#include "slab_table.h"

/* The mappers the reclaimer serves, and whether its thread runs.  The
 * reclaimer holds this lock while it frees, so unregistering waits for at
 * most one round of frees (never for a grace period). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slab_table *registry;
static bool thread_running;

/* 1 when someone asked for a grace period since the reclaimer last looked.
 * A futex word, so that asking is one atomic exchange and, only when the
 * reclaimer sleeps, one FUTEX_WAKE: no lock, safe anywhere. */
static _Atomic uint32_t wake_word;

/* Grace-period numbers (reclaim.h). */
static _Atomic uint64_t gp_started, gp_completed;

/* One reclaimer round at a time (the thread's, or a caller's in
 * mmapper_reclaim_wait): only rounds free, so a round's sweep can read the
 * table without a read-side section. */
static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void reclaim_wake(void)
{
    /* seq_cst: the retire (tag, list insert) that precedes this is visible
     * to the reclaimer once it sees the request. */
    if (atomic_exchange(&wake_word, 1) == 0)
        futex_wake(&wake_word);
}

/*
 * Ordering of a retire against the grace period that frees it.  The
 * retiring thread unpublishes the object, then does this RMW on `started`;
 * the reclaimer's RMW that starts grace period n reads a value at least as
 * new in started's modification order.  If it reads ours or a later one,
 * our RMW synchronises with it (both seq_cst), so the unpublish happens
 * before synchronize_rcu begins: every reader that can still hold the
 * object is waited for, and our tag is < n.  If the reclaimer's RMW came
 * first, our tag is >= n and grace period n does not free the object.
 */
uint64_t reclaim_tag(void)
{
    return atomic_fetch_add(&gp_started, 0);
}

bool reclaim_due(uint64_t tag)
{
    /* Acquire: pairs with the release store after synchronize_rcu, so the
     * grace period (and TSan's view of it) happens before the free. */
    return atomic_load_explicit(&gp_completed, memory_order_acquire) > tag;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A grace period, then the frees it allows: for every registered table,
 * or only for `only` (whose owner is the caller). */
static int reclaim_round(struct slab_table *only)
{
    int result = 0;
    pthread_mutex_lock(&round_lock);
    uint64_t n = atomic_fetch_add(&gp_started, 1) + 1;
    rcu_wait_for_readers();
    /* Release: pairs with reclaim_due's acquire. */
    atomic_store_explicit(&gp_completed, n, memory_order_release);
    if (fork_readers_active()) {
        /* A thread reads without a registered section (a fork is being
         * prepared): the grace period did not wait for it.  Free nothing
         * this round. */
        pthread_mutex_unlock(&round_lock);
        return SLAB_TABLE_MORE;
    }
    if (only) {
        result = slab_table_free_due(only);
    } else {
        pthread_mutex_lock(&registry_lock);
        for (struct slab_table *t = registry; t; t = t->reclaim_next)
            result |= slab_table_free_due(t);
        pthread_mutex_unlock(&registry_lock);
    }
    pthread_mutex_unlock(&round_lock);
    return result;
}

/* Set by the reclaimer once it runs: mmapper_create returns only then, so
 * that whatever a new thread maps for itself (its TLS, a sanitizer's
 * per-thread state) is done before the caller goes on, not at a random
 * moment later. */
static _Atomic uint32_t thread_up;

static void *reclaimer_main(void *arg)
{
    (void)arg;
    atomic_store(&thread_up, 1);
    futex_wake(&thread_up);
    for (;;) {
        /* Clearing the request before the work means one made during the
         * work is seen in the next round, not lost. */
        while (atomic_exchange(&wake_word, 0) == 0)
            futex_wait(&wake_word, 0);
        int result = reclaim_round(NULL);
        if (result & SLAB_TABLE_MORE) {
            /* Retired during this grace period, or pinned by a writer about
             * to see it dead: another round.  If nothing could be freed at
             * all, give the pinning writer a moment first. */
            if (!(result & SLAB_TABLE_FREED))
                sleep_ms(1);
            atomic_store(&wake_word, 1);
        }
    }
    return NULL;
}

int reclaim_wait(struct slab_table *t)
{
    /* A round holds table, pool and slab locks: like a transition, never
     * while a signal could stop this thread (synchronize_rcu blocks signals
     * for its grace period anyway). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int result;
    do {
        /* Sweep in every round, whether or not a removal was refused since
         * the last sweep: the caller asked for everything that can go. */
        atomic_store_explicit(&t->sweep_pending, true, memory_order_relaxed);
        result = reclaim_round(t);
        if ((result & SLAB_TABLE_MORE) && !(result & SLAB_TABLE_FREED))
            sleep_ms(1);   /* pinned, or fork readers: give them a moment */
    } while (result & SLAB_TABLE_MORE);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

/* Start the thread with every signal blocked: it must never take a signal
 * meant for the program (a collector's suspend signal, SIGALRM, ...). */
static int start_thread(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t thread;
    atomic_store(&thread_up, 0);
    int err = pthread_create(&thread, &attr, reclaimer_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return err == EAGAIN ? -EAGAIN : -ENOMEM;
    while (atomic_load(&thread_up) == 0)
        futex_wait(&thread_up, 0);
#ifdef _GNU_SOURCE
    pthread_setname_np(thread, "mmapper-reclaim");
#endif
    return 0;
}

/* The registry lock is never held by a thread a signal could stop (see
 * walk_window in walk.c for why). */
static void lock_registry(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, old);
    pthread_mutex_lock(&registry_lock);
}

static void unlock_registry(const sigset_t *old)
{
    pthread_mutex_unlock(&registry_lock);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

int reclaim_register(struct slab_table *t)
{
    int err = 0;
    sigset_t old;
    lock_registry(&old);
    if (!thread_running && (err = start_thread()) == 0)
        thread_running = true;
    if (!err) {
        t->reclaim_next = registry;
        /* A fork may copy memory between these stores: t must be complete
         * before it is reachable (reclaim_each_table_in_child). */
        atomic_signal_fence(memory_order_seq_cst);
        registry = t;
    }
    unlock_registry(&old);
    return err;
}

void reclaim_unregister(struct slab_table *t)
{
    sigset_t old;
    lock_registry(&old);
    struct slab_table **p = &registry;
    while (*p && *p != t)
        p = &(*p)->reclaim_next;
    if (*p)
        *p = t->reclaim_next;
    unlock_registry(&old);
}

void reclaim_forget_thread_in_child(void)
{
    /* Only the forking thread exists in the child, and the reclaimer was
     * not it.  Its lock may have been held by it at the fork: start over.
     * The next mmapper_create starts a new reclaimer; until then retired
     * metadata waits (bounded by RETIRE_LIMIT per mapper). */
    pthread_mutex_init(&registry_lock, NULL);
    pthread_mutex_init(&round_lock, NULL);
    thread_running = false;
    atomic_store(&wake_word, 0);
}

void reclaim_each_table_in_child(void (*fn)(struct slab_table *t))
{
    /* The registry changes by single pointer stores: whatever instant the
     * fork copied, it is a well-formed list. */
    for (struct slab_table *t = registry; t; t = t->reclaim_next)
        fn(t);
}
