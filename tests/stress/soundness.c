/*
 * soundness: what real runtimes do to the library, each scenario made
 * deterministic with a reader held inside a read-side section (as a thread
 * suspended inside is_mapped would be) or a system call held in the OS
 * layer (as a slow munmap would be):
 *
 *  stuck_reader     transitions that remove slabs return while a reader is
 *                   stuck; retired memory stays bounded; the background
 *                   reclaimer frees everything once the reader leaves.
 *  suspend_ack      a thread that keeps removing slabs takes a collector's
 *                   suspend signal promptly while a reader is stuck.
 *  slow_syscall     an unmap in one slab, and a grace period, do not wait
 *                   for a system call in progress in another slab.
 *  cancel           pthread_cancel of a thread inside a transition (in a
 *                   cancellation point of its OS layer) or inside
 *                   mmapper_reclaim_wait leaves every lock usable.
 *  window_atomic    a multi-slab unmap is atomic against a slab created
 *                   while it waits for another slab's lock.
 *  scan_atomic      protect([A, B]) with A Protected and B Unmapped fails
 *                   whatever another thread does to A and B meanwhile.
 *
 * Every wait has a deadline and says what it waited for.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <urcu/urcu-bp.h>

#include "stress_util.h"
#include "test_os.h"

#define SLAB_CHUNKS STRESS_SLAB_CHUNKS
#define DEADLINE_S 20.0

static void wait_until(_Atomic bool *flag, const char *what)
{
    double t0 = stress_now();
    while (!atomic_load(flag)) {
        CHECK(stress_now() - t0 < DEADLINE_S, "waited %.0f s for %s", DEADLINE_S, what);
        usleep(200);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- an OS layer that can hold one system call --------------------------- */

struct gate_os {
    struct mmapper_os os;
    struct test_os tos;
    _Atomic uintptr_t hold_addr;   /* hold the next mmap/munmap/mprotect here */
    _Atomic bool held, release;
    _Atomic bool cancel_point;     /* wait with nanosleep, a cancellation point */
};

/* hold_addr value: hold the next mmap the kernel places (address NULL). */
#define HOLD_ANYWHERE ((uintptr_t)1)

static void gate(struct gate_os *g, void *addr)
{
    uintptr_t hold = atomic_load(&g->hold_addr);
    if (!hold || (uintptr_t)addr != (hold == HOLD_ANYWHERE ? 0 : hold))
        return;
    atomic_store(&g->hold_addr, 0);
    atomic_store(&g->held, true);
    while (!atomic_load(&g->release)) {
        if (atomic_load(&g->cancel_point))
            sleep_ms(1);
        else
            usleep(100);
    }
}

static int gate_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct gate_os *g = ctx;
    gate(g, addr);
    return g->tos.os.mmap(g->tos.os.ctx, addr, len, prot, flags, out);
}

static int gate_munmap(void *ctx, void *addr, size_t len)
{
    struct gate_os *g = ctx;
    gate(g, addr);
    return g->tos.os.munmap(g->tos.os.ctx, addr, len);
}

static int gate_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct gate_os *g = ctx;
    gate(g, addr);
    return g->tos.os.mprotect(g->tos.os.ctx, addr, len, prot);
}

static int gate_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct gate_os *g = ctx;
    return g->tos.os.madvise(g->tos.os.ctx, addr, len, advice);
}

static int gate_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct gate_os *g = ctx;
    return g->tos.os.set_name(g->tos.os.ctx, addr, len, name);
}

static mmapper_t *gate_mapper(struct gate_os *g, unsigned log_chunk)
{
    memset(g, 0, sizeof(*g));
    test_os_init(&g->tos);
    g->os = (struct mmapper_os){ .ctx = g, .mmap = gate_mmap, .munmap = gate_munmap,
                                 .mprotect = gate_mprotect, .madvise = gate_madvise,
                                 .set_name = gate_set_name,
                                 .page_size = g->tos.os.page_size };
    mmapper_t *m;
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = log_chunk,
                                                     .os = &g->os }, &m),
             0, "mmapper_create");
    return m;
}

/* ---- a reader stuck inside a read-side section ----------------------------- */

struct stuck_reader {
    pthread_t thread;
    _Atomic bool inside, leave;
};

static void *stuck_reader_main(void *arg)
{
    struct stuck_reader *r = arg;
    urcu_bp_read_lock();   /* what is_mapped holds, for as long as a stop lasts */
    atomic_store(&r->inside, true);
    while (!atomic_load(&r->leave))
        usleep(200);
    urcu_bp_read_unlock();
    return NULL;
}

static void stuck_reader_start(struct stuck_reader *r)
{
    memset(r, 0, sizeof(*r));
    CHECK(pthread_create(&r->thread, NULL, stuck_reader_main, r) == 0, "reader thread");
    wait_until(&r->inside, "the reader to enter its section");
}

static void stuck_reader_stop(struct stuck_reader *r)
{
    atomic_store(&r->leave, true);
    pthread_join(r->thread, NULL);
}

static struct mmapper_stats stats(const mmapper_t *m)
{
    struct mmapper_stats s;
    mmapper_get_stats(m, &s);
    return s;
}

/* Map then unmap one chunk in each of n slabs from base: n slabs come and go. */
static void churn_slabs(mmapper_t *m, char *base, size_t n)
{
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    for (size_t i = 0; i < n; i++)
        CHECK_RC(mmapper_ensure_mapped(m, base + i * slab, chunk, NULL), 0, "map");
    CHECK_RC(mmapper_unmap(m, base, n * slab), 0, "unmap");
}

/* ---- stuck_reader ------------------------------------------------------------ */

static void test_stuck_reader(void)
{
    mmapper_t *m;
#if UINTPTR_MAX > 0xffffffffu
    const unsigned log_chunk = 16;
#else   /* 32-bit: 1500 slabs of 1 MiB fit, of 16 MiB would not */
    const unsigned log_chunk = 12;
#endif
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = log_chunk }, &m), 0,
             "create");
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    const size_t n = 1500;   /* more than RETIRE_LIMIT (1024) slabs */
    char *base = stress_region(m, n * slab, slab);
    uint64_t baseline = stats(m).metadata_bytes;

    struct stuck_reader r;
    stuck_reader_start(&r);
    /* Every call returns although no grace period can end. */
    churn_slabs(m, base, n);
    CHECK(stats(m).slabs < n, "no slab left the table while the reader was stuck");
    /* Round 2 replaces the slabs retired in round 1 and keeps them all:
     * the retire limit is reached.  From then on the empty slabs that
     * stayed are reused and nothing more is retired: memory is bounded by
     * the limit plus the peak of live slabs. */
    churn_slabs(m, base, n);
    uint64_t after_two = stats(m).metadata_bytes;
    for (int round = 0; round < 3; round++)
        churn_slabs(m, base, n);
    struct mmapper_stats s = stats(m);
    CHECK(s.chunks_mapped == 0, "chunks left mapped");
    CHECK(s.metadata_bytes <= after_two + 64 * 1024,
          "metadata grew from %llu to %llu bytes over 3 more rounds with a reader stuck",
          (unsigned long long)after_two, (unsigned long long)s.metadata_bytes);

    stuck_reader_stop(&r);
    /* The reclaimer frees in the background, nobody has to ask. */
    double t0 = stress_now();
    while (stats(m).slabs != 0 || stats(m).metadata_bytes > baseline) {
        CHECK(stress_now() - t0 < DEADLINE_S,
              "the reclaimer did not catch up in %.0f s: %llu slabs, %llu metadata bytes "
              "(baseline %llu)", DEADLINE_S, (unsigned long long)stats(m).slabs,
              (unsigned long long)stats(m).metadata_bytes, (unsigned long long)baseline);
        sleep_ms(2);
    }
    stress_summary("stuck_reader: %zu slabs x 5 rounds with a reader stuck; metadata peak "
                   "+%llu bytes, back to baseline in %.0f ms", n,
                   (unsigned long long)(s.metadata_bytes - baseline),
                   (stress_now() - t0) * 1e3);
    mmapper_destroy(m);
}

/* ---- suspend_ack ---------------------------------------------------------- */

static _Atomic unsigned acks;
static void on_suspend(int sig)
{
    (void)sig;
    atomic_fetch_add(&acks, 1);
}

struct churner {
    mmapper_t *m;
    char *base;
    _Atomic bool stop;
    _Atomic uint64_t rounds;
};

static void *churner_main(void *arg)
{
    struct churner *c = arg;
    while (!atomic_load(&c->stop)) {
        churn_slabs(c->m, c->base, 8);
        atomic_fetch_add(&c->rounds, 1);
    }
    return NULL;
}

static void test_suspend_ack(void)
{
    struct sigaction sa = { .sa_handler = on_suspend };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    struct churner c = { 0 };
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &c.m), 0,
             "create");
    size_t slab = SLAB_CHUNKS * mmapper_granularity(c.m);
    c.base = stress_region(c.m, 8 * slab, slab);
    struct stuck_reader r;
    stuck_reader_start(&r);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, churner_main, &c) == 0, "churner");
    const unsigned stops = STRESS_SCALE(200, 50);
    for (unsigned i = 0; i < stops; i++) {
        unsigned before = atomic_load(&acks);
        pthread_kill(t, SIGUSR1);
        double t0 = stress_now();
        while (atomic_load(&acks) == before) {
            CHECK(stress_now() - t0 < 5.0, "stop %u: the mutator did not take its suspend "
                                           "signal within 5 s (blocked in a grace period?)", i);
            usleep(50);
        }
    }
    atomic_store(&c.stop, true);
    pthread_join(t, NULL);
    stuck_reader_stop(&r);
    stress_summary("suspend_ack: %u suspend signals acknowledged while the mutator removed "
                   "slabs %llu times with a reader stuck", stops,
                   (unsigned long long)atomic_load(&c.rounds));
    mmapper_destroy(c.m);
}

/* ---- slow_syscall ------------------------------------------------------------ */

struct call {
    pthread_t thread;
    mmapper_t *m;
    int (*fn)(struct call *);
    char *addr;
    size_t bytes;
    int rc;
    _Atomic bool done;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    c->rc = c->fn(c);
    atomic_store(&c->done, true);
    return NULL;
}

static void call_start(struct call *c, mmapper_t *m, int (*fn)(struct call *), char *addr,
                       size_t bytes)
{
    c->m = m;
    c->fn = fn;
    c->addr = addr;
    c->bytes = bytes;
    c->rc = -1;
    atomic_store(&c->done, false);
    CHECK(pthread_create(&c->thread, NULL, call_main, c) == 0, "thread");
}

static int do_unmap(struct call *c)
{
    return mmapper_unmap(c->m, c->addr, c->bytes);
}

static int do_map(struct call *c)
{
    return mmapper_ensure_mapped(c->m, c->addr, c->bytes, NULL);
}

static int do_reclaim(struct call *c)
{
    return mmapper_reclaim_wait(c->m);
}

static int do_anywhere(struct call *c)
{
    void *p = NULL;
    int rc = mmapper_quarantine_anywhere(c->m, c->bytes, NULL, &p);
    c->addr = p;
    return rc;
}

static void test_slow_syscall(void)
{
    struct gate_os g;
    mmapper_t *m = gate_mapper(&g, 16);
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    /* Slab 0 is A's; B is 20 slabs with one chunk each, so that unmapping
     * B retires 20 slabs (more than any batch a grace period might wait
     * for). */
    const size_t nb = 20;
    char *base = stress_region(m, (1 + nb) * slab, slab);
    CHECK_RC(mmapper_unmap(m, base, (1 + nb) * slab), 0, "unmap the region: no slab left");
    char *a = base, *b = base + slab;
    CHECK_RC(mmapper_ensure_mapped(m, a, 2 * chunk, NULL), 0, "map a");
    for (size_t i = 0; i < nb; i++)
        CHECK_RC(mmapper_ensure_mapped(m, b + i * slab, chunk, NULL), 0, "map b");

    /* A munmap in slab A that takes as long as we say. */
    atomic_store(&g.hold_addr, (uintptr_t)a);
    struct call slow, waiter, other, reclaim;
    call_start(&slow, m, do_unmap, a, chunk);
    wait_until(&g.held, "the slow munmap to start");
    /* A writer queues behind it for slab A's lock. */
    call_start(&waiter, m, do_map, a + chunk * 5, chunk);
    sleep_ms(5);
    /* The B slabs: their unmap retires 20 slabs and returns at once. */
    double t0 = stress_now();
    call_start(&other, m, do_unmap, b, nb * slab);
    wait_until(&other.done, "an unmap in slab B while a munmap in slab A is in progress");
    double unmap_ms = (stress_now() - t0) * 1e3;
    CHECK_RC(other.rc, 0, "unmap in slab B");
    CHECK(!atomic_load(&slow.done), "the slow munmap was not held");
    /* And a grace period does not wait for slab A's syscall or its waiter. */
    call_start(&reclaim, m, do_reclaim, NULL, 0);
    wait_until(&reclaim.done, "a grace period while a munmap in slab A is in progress");
    CHECK_RC(reclaim.rc, 0, "reclaim_wait");

    atomic_store(&g.release, true);
    pthread_join(slow.thread, NULL);
    pthread_join(waiter.thread, NULL);
    pthread_join(other.thread, NULL);
    pthread_join(reclaim.thread, NULL);
    CHECK_RC(slow.rc, 0, "slow unmap");
    CHECK_RC(waiter.rc, 0, "waiting map");
    CHECK(mmapper_state(m, a) == MMAPPER_UNMAPPED && mmapper_is_mapped(m, a + chunk * 5),
          "states after the slow munmap");
    stress_check_maps(m, base, (1 + nb) * slab, true, "after slow_syscall");
    stress_summary("slow_syscall: unmap in another slab took %.2f ms while a munmap was held",
                   unmap_ms);
    CHECK_RC(mmapper_unmap(m, base, (1 + nb) * slab), 0, "cleanup");
    mmapper_destroy(m);
}

/* ---- cancel ------------------------------------------------------------------- */

static void test_cancel(void)
{
    struct gate_os g;
    mmapper_t *m = gate_mapper(&g, 16);
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    char *base = stress_region(m, 2 * slab, slab);
    CHECK_RC(mmapper_ensure_mapped(m, base, chunk, NULL), 0, "map");

    /* (a) Cancelled while its OS layer sits in a cancellation point. */
    atomic_store(&g.cancel_point, true);
    atomic_store(&g.hold_addr, (uintptr_t)base);
    struct call c;
    call_start(&c, m, do_unmap, base, chunk);
    wait_until(&g.held, "the unmap to reach its munmap");
    CHECK(pthread_cancel(c.thread) == 0, "pthread_cancel");
    sleep_ms(20);
    atomic_store(&g.release, true);
    void *ret;
    pthread_join(c.thread, &ret);
    CHECK(atomic_load(&c.done), "the unmap was cancelled part-way through");
    CHECK_RC(c.rc, 0, "cancelled thread's unmap");
    /* Nothing was left locked: the same slab and the table work. */
    CHECK_RC(mmapper_ensure_mapped(m, base, chunk, NULL), 0, "map after cancel");
    churn_slabs(m, base, 2);

    /* (b) Cancelled inside a grace-period wait (reclaim_wait with a reader
     * stuck): liburcu's grace-period mutex must not be left locked. */
    struct stuck_reader r;
    stuck_reader_start(&r);
    churn_slabs(m, base, 2);   /* something to reclaim */
    call_start(&c, m, do_reclaim, NULL, 0);
    sleep_ms(30);
    CHECK(!atomic_load(&c.done), "reclaim_wait returned with a reader stuck");
    CHECK(pthread_cancel(c.thread) == 0, "pthread_cancel");
    sleep_ms(20);
    stuck_reader_stop(&r);
    pthread_join(c.thread, &ret);
    struct call again;
    call_start(&again, m, do_reclaim, NULL, 0);
    wait_until(&again.done, "a grace period after a thread was cancelled in one");
    pthread_join(again.thread, NULL);
    churn_slabs(m, base, 2);

    /* (c) Cancelled while quarantine_anywhere's reservation sits in the
     * layer: the call completes and records the range (a cancel there
     * would leak the reservation). */
    atomic_store(&g.release, false);
    atomic_store(&g.held, false);
    atomic_store(&g.hold_addr, HOLD_ANYWHERE);
    call_start(&c, m, do_anywhere, NULL, 4 * chunk);
    wait_until(&g.held, "quarantine_anywhere to reach its mmap");
    CHECK(pthread_cancel(c.thread) == 0, "pthread_cancel");
    sleep_ms(20);
    atomic_store(&g.release, true);
    pthread_join(c.thread, &ret);
    CHECK(atomic_load(&c.done), "quarantine_anywhere was cancelled part-way through");
    CHECK_RC(c.rc, 0, "cancelled thread's quarantine_anywhere");
    for (size_t k = 0; k < 4; k++)
        CHECK(mmapper_state(m, c.addr + k * chunk) == MMAPPER_QUARANTINED,
              "chunk %zu of the cancelled call's range is not recorded", k);
    stress_check_maps(m, c.addr, 4 * chunk, true, "after the cancelled quarantine_anywhere");
    CHECK_RC(mmapper_unmap(m, c.addr, 4 * chunk), 0, "unmap the cancelled call's range");
    stress_summary("cancel: transitions and grace periods work after all three cancellations");
    mmapper_destroy(m);
}

/* ---- window_atomic ------------------------------------------------------------ */

static void test_window_atomic(void)
{
    struct gate_os g;
    mmapper_t *m = gate_mapper(&g, 16);
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    char *base = stress_region(m, 3 * slab, slab);
    CHECK_RC(mmapper_unmap(m, base, 3 * slab), 0, "unmap the region: no slab left");
    char *x1 = base + 7 * chunk, *y = base + slab, *x2 = base + 2 * slab + 9 * chunk;
    /* Z gives the unmap work in slab 1, so it must take slab 1's lock. */
    CHECK_RC(mmapper_ensure_mapped(m, base + slab + 3 * chunk, chunk, NULL), 0, "map Z");

    /* H holds slab 1 with a long mmap; W unmaps slabs 0..2 and waits for
     * slab 1; meanwhile T1 maps X1 (creating slab 0), then T2 maps X2. */
    atomic_store(&g.hold_addr, (uintptr_t)y);
    struct call h, w, t1, t2;
    call_start(&h, m, do_map, y, chunk);
    wait_until(&g.held, "the long mmap in slab 1");
    call_start(&w, m, do_unmap, base, 3 * slab);
    sleep_ms(20);   /* W is queued on slab 1 (or about to be: either is fine) */
    call_start(&t1, m, do_map, x1, chunk);
    wait_until(&t1.done, "T1's map in slab 0");
    call_start(&t2, m, do_map, x2, chunk);
    wait_until(&t2.done, "T2's map in slab 2");
    CHECK(!atomic_load(&w.done), "the unmap did not wait for slab 1");
    atomic_store(&g.release, true);
    pthread_join(h.thread, NULL);
    pthread_join(w.thread, NULL);
    pthread_join(t1.thread, NULL);
    pthread_join(t2.thread, NULL);
    CHECK_RC(w.rc, 0, "unmap");
    bool m1 = mmapper_is_mapped(m, x1), m2 = mmapper_is_mapped(m, x2);
    /* T1 returned before T2 started, so no serial order leaves X1 Mapped and
     * X2 Unmapped. */
    CHECK(!(m1 && !m2), "X1 Mapped and X2 Unmapped: the unmap was not atomic");
    stress_check_maps(m, base, 3 * slab, true, "after window_atomic");
    stress_summary("window_atomic: X1 %s, X2 %s after the unmap", m1 ? "Mapped" : "Unmapped",
                   m2 ? "Mapped" : "Unmapped");
    CHECK_RC(mmapper_unmap(m, base, 3 * slab), 0, "cleanup");
    mmapper_destroy(m);
}

/* ---- scan_atomic ---------------------------------------------------------------- */

struct flipper {
    mmapper_t *m;
    char *a, *b;
    _Atomic bool stop;
    _Atomic uint64_t rounds;
};

/* A and B go round (P,U) -> (U,U) -> (U,M) -> (U,P) -> (U,U) -> (M,U) ->
 * (P,U): at every instant one of them is Unmapped, or A Mapped with B
 * Unmapped, so protect over both is illegal at every instant. */
static void *flipper_main(void *arg)
{
    struct flipper *f = arg;
    size_t chunk = mmapper_granularity(f->m);
    while (!atomic_load(&f->stop)) {
        CHECK_RC(mmapper_unmap(f->m, f->a, chunk), 0, "unmap A");
        CHECK_RC(mmapper_ensure_mapped(f->m, f->b, chunk, NULL), 0, "map B");
        CHECK_RC(mmapper_protect(f->m, f->b, chunk), 0, "protect B");
        CHECK_RC(mmapper_unmap(f->m, f->b, chunk), 0, "unmap B");
        CHECK_RC(mmapper_ensure_mapped(f->m, f->a, chunk, NULL), 0, "map A");
        CHECK_RC(mmapper_protect(f->m, f->a, chunk), 0, "protect A");
        atomic_fetch_add(&f->rounds, 1);
    }
    return NULL;
}

static void test_scan_atomic(void)
{
    struct flipper f = { 0 };
    /* Measured in the other thread's rounds, whatever the relative speeds. */
    uint64_t rounds = STRESS_SCALE3(20000, 5000, 1000);
    CHECK_RC(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &f.m), 0,
             "create");
    size_t chunk = mmapper_granularity(f.m), slab = SLAB_CHUNKS * chunk;
    /* A is the first chunk and B the last of 7000 (28 slabs, one window);
     * the chunks between stay Protected, so reading the range takes long
     * enough (microseconds) for the other thread to act in the middle. */
    const size_t n = 7000;
    char *base = stress_region(f.m, n * chunk, slab);
    f.a = base;
    f.b = base + (n - 1) * chunk;
    CHECK_RC(mmapper_ensure_mapped(f.m, base, n * chunk, NULL), 0, "map the range");
    CHECK_RC(mmapper_protect(f.m, base, n * chunk), 0, "protect the range");
    CHECK_RC(mmapper_unmap(f.m, f.b, chunk), 0, "unmap B");   /* (P,U) */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, flipper_main, &f) == 0, "flipper");
    unsigned wrong = 0, tries = 0;
    double t0 = stress_now();
    /* At most half the test's deadline: a slow machine gets fewer rounds. */
    while (atomic_load(&f.rounds) < rounds && stress_now() - t0 < 10.0) {
        wrong += mmapper_protect(f.m, base, n * chunk) != -EINVAL;
        tries++;
    }
    atomic_store(&f.stop, true);
    pthread_join(t, NULL);
    CHECK(wrong == 0, "protect([A .. B]) returned other than -EINVAL in %u of %u tries "
                      "(%" PRIu64 " rounds of the other thread)", wrong, tries,
          atomic_load(&f.rounds));
    stress_summary("scan_atomic: %u tries against %" PRIu64 " rounds of the other thread, "
                   "every one -EINVAL", tries, atomic_load(&f.rounds));
    CHECK_RC(mmapper_unmap(f.m, base, n * chunk), 0, "cleanup");
    mmapper_destroy(f.m);
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = 1, .rounds = 1 };
    stress_parse(argc, argv, "soundness under stopped readers, slow syscalls, cancellation",
                 &o);
    static const struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        { "stuck_reader", test_stuck_reader }, { "suspend_ack", test_suspend_ack },
        { "slow_syscall", test_slow_syscall }, { "cancel", test_cancel },
        { "window_atomic", test_window_atomic }, { "scan_atomic", test_scan_atomic },
    };
    /* SOUNDNESS_ONLY=name runs one scenario. */
    const char *only = getenv("SOUNDNESS_ONLY");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (!only || strcmp(only, tests[i].name) == 0)
            tests[i].run();
    printf("soundness: PASS\n");
    return 0;
}
