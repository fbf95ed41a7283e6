/*
 * The protocol's delicate steps, each pinned down by a deterministic test:
 * a syscall run never spans a slab that does not exist; a chunk reads as
 * not Mapped before access to it is revoked; no caller treats a chunk that
 * is leaving as done; a writer that waited for a slab removed meanwhile
 * looks it up again.
 *
 * The OS layer under test can run a hook before every system call, so a
 * test stops the library exactly in the middle of a transition, holding the
 * slab lock, and looks at it from there or lets a second thread run into it.
 * "The second thread is waiting" is read from the kernel: its current
 * system call (/proc/self/task/TID/syscall) is futex, not a guess by sleep.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os_ledger.h"
#include "unit.h"

#define SLAB_CHUNKS 256

/* ---- an OS layer with a hook before each system call ---------------------- */

enum hook_call { HOOK_MMAP, HOOK_MUNMAP, HOOK_MPROTECT };

struct hook_os {
    struct mmapper_os os;
    const struct mmapper_os *next;
    /* Called before the system call; nothing is called while NULL. */
    void (*before)(struct hook_os *h, enum hook_call call, void *addr, size_t len, int prot,
                   int flags);
    void *arg;
    /* Fail the next mprotect / MAP_FIXED mmap with this errno, once, after
     * `before` ran (which may have done part of the work itself). */
    _Atomic int fail_mprotect, fail_fixed_mmap;
    /* Fail this many of the next no-replace mmaps with ENOMEM. */
    _Atomic int fail_noreplace;
};

static int hook_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct hook_os *h = ctx;
    if (h->before)
        h->before(h, HOOK_MMAP, addr, len, prot, flags);
    int err = (flags & MAP_FIXED) ? atomic_exchange(&h->fail_fixed_mmap, 0) : 0;
    if (err)
        return -err;
    if (!(flags & MAP_FIXED) && atomic_load(&h->fail_noreplace) > 0) {
        atomic_fetch_sub(&h->fail_noreplace, 1);
        return -ENOMEM;
    }
    return h->next->mmap(h->next->ctx, addr, len, prot, flags, out);
}

static int hook_munmap(void *ctx, void *addr, size_t len)
{
    struct hook_os *h = ctx;
    if (h->before)
        h->before(h, HOOK_MUNMAP, addr, len, 0, 0);
    return h->next->munmap(h->next->ctx, addr, len);
}

static int hook_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct hook_os *h = ctx;
    if (h->before)
        h->before(h, HOOK_MPROTECT, addr, len, prot, 0);
    int err = atomic_exchange(&h->fail_mprotect, 0);
    if (err)
        return -err;
    return h->next->mprotect(h->next->ctx, addr, len, prot);
}

static int hook_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct hook_os *h = ctx;
    return h->next->madvise(h->next->ctx, addr, len, advice);
}

static int hook_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct hook_os *h = ctx;
    return h->next->set_name(h->next->ctx, addr, len, name);
}

struct fixture {
    struct test_os tos;
    struct hook_os hook;
    mmapper_t *m;
    size_t chunk;
};

static void fixture_setup(struct fixture *f, unsigned log_chunk)
{
    memset(f, 0, sizeof(*f));
    test_os_init(&f->tos);
    f->hook = (struct hook_os){ .os = { .ctx = &f->hook, .mmap = hook_mmap,
                                        .munmap = hook_munmap, .mprotect = hook_mprotect,
                                        .madvise = hook_madvise, .set_name = hook_set_name,
                                        .page_size = f->tos.os.page_size },
                                .next = &f->tos.os };
    struct mmapper_config cfg = { .log_chunk_bytes = log_chunk, .os = &f->hook.os };
    int err = mmapper_create(&cfg, &f->m);
    cr_assert_eq(err, 0, "mmapper_create: %s", mmapper_strerror(err));
    f->chunk = mmapper_granularity(f->m);
}

static bool revokes(enum hook_call call, int prot, int flags)
{
    return call == HOOK_MUNMAP || (call == HOOK_MPROTECT && prot == PROT_NONE) ||
           (call == HOOK_MMAP && (flags & MAP_FIXED));   /* decommit's replacement */
}

/* ---- threads seen from the kernel ----------------------------------------- */

static pid_t gettid_(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* The system call thread tid is in (-1 running, -2 unknown). */
static long current_syscall(pid_t tid)
{
    char path[64], buf[64] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -2;
    bool ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok)
        return -2;
    if (strncmp(buf, "running", 7) == 0)
        return -1;
    return strtol(buf, NULL, 10);
}

/* Under qemu-user /proc/self/task/TID/syscall is the host's view: the
 * guest's futex is the host's futex system call, whose number
 * scripts/cross.sh passes in MMAPPER_HOST_SYS_FUTEX. */
static bool is_futex(long nr)
{
    const char *host = getenv("MMAPPER_HOST_SYS_FUTEX");
    return nr == SYS_futex || (host && *host && nr == strtol(host, NULL, 10));
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A second thread that makes one mmapper call when told to. */
struct second {
    pthread_t thread;
    struct fixture *f;
    int (*call)(struct second *s);
    void *addr;
    size_t bytes;
    _Atomic pid_t tid;
    _Atomic bool go, started, returned;
    int rc;
};

static void *second_main(void *arg)
{
    struct second *s = arg;
    /* Register with urcu-bp now, so its first lookup later takes no lock. */
    (void)mmapper_is_mapped(s->f->m, s->addr);
    atomic_store(&s->tid, gettid_());
    while (!atomic_load(&s->go))
        sched_yield();
    atomic_store(&s->started, true);
    s->rc = s->call(s);
    atomic_store(&s->returned, true);
    return NULL;
}

static void second_start(struct second *s, struct fixture *f, int (*call)(struct second *),
                         void *addr, size_t bytes)
{
    memset(s, 0, sizeof(*s));
    s->f = f;
    s->call = call;
    s->addr = addr;
    s->bytes = bytes;
    cr_assert_eq(pthread_create(&s->thread, NULL, second_main, s), 0);
    while (!atomic_load(&s->tid))
        sched_yield();
}

/* Let the second thread make its call; true once it blocks in futex (a
 * lock), false if it returned first.  Fails the test after 20 s. */
static bool second_runs_into_lock(struct second *s)
{
    atomic_store(&s->go, true);
    while (!atomic_load(&s->started))
        sched_yield();
    for (int i = 0; i < 20000; i++) {
        if (atomic_load(&s->returned))
            return false;
        if (is_futex(current_syscall(atomic_load(&s->tid))))
            return true;
        sleep_ms(1);
    }
    cr_assert_fail("the second thread neither returned nor blocked within 20 s");
    return false;
}

static void second_join(struct second *s)
{
    cr_assert_eq(pthread_join(s->thread, NULL), 0);
}

/* ---- 1. a run never spans a missing slab ---------------------------------- */

/* The last chunk of slab 0 and the first of slab 2 are Mapped; slab 1 was
 * never created, and someone else's memory is there.  One unmap of the three
 * slabs makes two munmaps and leaves slab 1's memory alone. */
Test(protocol, run_stops_at_missing_slab)
{
    struct test_os tos;
    struct os_ledger ledger;
    test_os_init(&tos);
    os_ledger_init(&ledger, &tos.os);
    mmapper_t *m;
    struct mmapper_config cfg = { .log_chunk_bytes = 16, .os = &ledger.os };
    cr_assert_eq(mmapper_create(&cfg, &m), 0);
    size_t chunk = mmapper_granularity(m), slab = SLAB_CHUNKS * chunk;
    char *base = unit_free_range(3 * slab, slab);

    char *left = base + slab - chunk, *right = base + 2 * slab;
    cr_assert_eq(mmapper_ensure_mapped(m, left, chunk, NULL), 0);
    cr_assert_eq(mmapper_ensure_mapped(m, right, chunk, NULL), 0);
    /* Foreign memory in the middle slab, which the mapper never saw. */
    char *foreign = mmap(base + slab, slab, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(foreign, base + slab);
    memset(foreign, 0x5a, slab);
    struct mmapper_stats st;
    mmapper_get_stats(m, &st);
    cr_assert_eq(st.slabs, 2, "slabs %llu", (unsigned long long)st.slabs);
    cr_assert_eq(os_ledger_track(&ledger, m, base, 3 * slab), 0);
    test_os_reset_counts(&tos);

    cr_assert_eq(mmapper_unmap(m, base, 3 * slab), 0);
    cr_assert_eq(test_os_calls(&tos, TOS_MUNMAP), 2, "munmaps: %llu",
                 (unsigned long long)test_os_calls(&tos, TOS_MUNMAP));
    char why[512] = "";
    cr_assert_eq(os_ledger_verify(&ledger, m, why, sizeof(why)), 0, "%s", why);
    cr_assert(procmaps_range_free(left, chunk), "left chunk still mapped");
    cr_assert(procmaps_range_free(right, chunk), "right chunk still mapped");
    for (size_t i = 0; i < slab; i += 4096)
        cr_assert_eq((unsigned char)foreign[i], 0x5a, "foreign memory lost at +%zu", i);
    cr_assert_eq(mmapper_state(m, left), MMAPPER_UNMAPPED);
    cr_assert_eq(mmapper_state(m, right), MMAPPER_UNMAPPED);
    munmap(foreign, slab);
    mmapper_destroy(m);
    os_ledger_fini(&ledger);
}

/* ---- 2. is_mapped is false while access changes ---------------------------- */

static _Atomic int revoke_violations, revoke_checks;

/* A system call that makes memory accessible: a fresh mapping or a commit. */
static bool grants(enum hook_call call, int prot, int flags)
{
    return prot != PROT_NONE && (call == HOOK_MPROTECT || (call == HOOK_MMAP && !(flags & MAP_FIXED)));
}

/* Whatever the call, the chunks it covers do not read Mapped while it runs:
 * not yet (the state is published after a mapping is made), or no longer
 * (CHUNK_LEAVING is set before access is revoked). */
static void check_not_mapped(struct hook_os *h, enum hook_call call, void *addr, size_t len,
                             int prot, int flags)
{
    struct fixture *f = h->arg;
    if (!revokes(call, prot, flags) && !grants(call, prot, flags))
        return;
    for (size_t off = 0; off < len; off += f->chunk) {
        atomic_fetch_add(&revoke_checks, 1);
        if (mmapper_is_mapped(f->m, (char *)addr + off))
            atomic_fetch_add(&revoke_violations, 1);
    }
}

Test(protocol, not_mapped_during_syscall)
{
    struct fixture f;
    fixture_setup(&f, 16);
    char *base = unit_free_range(8 * f.chunk, SLAB_CHUNKS * f.chunk);
    f.hook.arg = &f;
    f.hook.before = check_not_mapped;
    size_t n = 8 * f.chunk;

    cr_assert_eq(mmapper_ensure_mapped(f.m, base, n, NULL), 0);
    cr_assert_eq(mmapper_protect(f.m, base, n), 0);              /* mprotect NONE */
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, n, NULL), 0);
    cr_assert_eq(mmapper_decommit(f.m, base, n), 0);             /* mmap FIXED */
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, n, NULL), 0);
    cr_assert_eq(mmapper_protect(f.m, base, f.chunk), 0);        /* one chunk */
    cr_assert_eq(mmapper_unmap(f.m, base, n), 0);                /* munmap */

    /* map 8, protect 8, commit 8, decommit 8, commit 8, protect 1, unmap 8 */
    cr_assert_eq(atomic_load(&revoke_checks), 49, "checks: %d",
                 atomic_load(&revoke_checks));
    cr_assert_eq(atomic_load(&revoke_violations), 0,
                 "%d chunks read Mapped while a system call changed their access",
                 atomic_load(&revoke_violations));
    mmapper_destroy(f.m);
}

/* ---- 3. a chunk that is leaving is never "already Mapped" ------------------ */

struct leaving_case {
    struct fixture f;
    struct second s;
    char *x;
    enum hook_call revoke;
    bool blocked, fired;
};

static void start_second_during_revoke(struct hook_os *h, enum hook_call call, void *addr,
                                       size_t len, int prot, int flags)
{
    struct leaving_case *c = h->arg;
    if (c->fired || call != c->revoke || !revokes(call, prot, flags) || addr != c->x)
        return;
    c->fired = true;
    /* X is locked and on its way out: the second thread must wait for us. */
    c->blocked = second_runs_into_lock(&c->s);
}

static int call_ensure_one(struct second *s)
{
    return mmapper_ensure_mapped(s->f->m, s->addr, s->bytes, NULL);
}

static int call_ensure_named(struct second *s)
{
    /* Options with a name skip the inlined fast path: transition() decides. */
    struct mmapper_map_opts o = { .name = "protocol-test" };
    return mmapper_ensure_mapped(s->f->m, s->addr, s->bytes, &o);
}

static void leaving_case_run(enum hook_call revoke, int (*call)(struct second *),
                             size_t second_chunks)
{
    static struct leaving_case c;   /* the hook reaches it through h->arg */
    memset(&c, 0, sizeof(c));
    fixture_setup(&c.f, 16);
    char *base = unit_free_range(4 * c.f.chunk, SLAB_CHUNKS * c.f.chunk);
    c.x = base;
    c.revoke = revoke;
    cr_assert_eq(mmapper_ensure_mapped(c.f.m, base, 4 * c.f.chunk, NULL), 0);
    fill_pattern(base, c.f.chunk, 1);
    second_start(&c.s, &c.f, call, c.x, second_chunks * c.f.chunk);
    c.f.hook.arg = &c;
    c.f.hook.before = start_second_during_revoke;

    int rc = revoke == HOOK_MUNMAP     ? mmapper_unmap(c.f.m, c.x, c.f.chunk)
             : revoke == HOOK_MPROTECT ? mmapper_protect(c.f.m, c.x, c.f.chunk)
                                       : mmapper_decommit(c.f.m, c.x, c.f.chunk);
    cr_assert_eq(rc, 0);
    cr_assert(c.fired, "the revoking system call was not seen");
    second_join(&c.s);
    c.f.hook.before = NULL;
    cr_assert(c.blocked, "ensure_mapped returned while its chunk was being revoked");
    cr_assert_eq(c.s.rc, 0, "ensure_mapped: %s", mmapper_strerror(c.s.rc));
    cr_assert_eq(mmapper_state(c.f.m, c.x), MMAPPER_MAPPED);
    cr_assert(mmapper_is_mapped(c.f.m, c.x));
    memset(c.x, 0x11, c.f.chunk);   /* writable: would fault if not mapped */
    char why[256] = "";
    cr_assert_eq(procmaps_check(c.f.m, base, 4 * c.f.chunk, true, why, sizeof(why)), 0,
                 "%s", why);
    mmapper_destroy(c.f.m);
}

Test(protocol, fast_path_waits_for_unmap)
{
    leaving_case_run(HOOK_MUNMAP, call_ensure_one, 1);
}

Test(protocol, fast_path_waits_for_protect)
{
    leaving_case_run(HOOK_MPROTECT, call_ensure_one, 1);
}

Test(protocol, fast_path_waits_for_decommit)
{
    leaving_case_run(HOOK_MMAP, call_ensure_one, 1);
}

Test(protocol, one_chunk_check_waits_for_unmap)
{
    leaving_case_run(HOOK_MUNMAP, call_ensure_named, 1);
}

Test(protocol, range_scan_waits_for_unmap)
{
    leaving_case_run(HOOK_MUNMAP, call_ensure_one, 2);
}

/* ---- 4. a slab removed while a writer waited for its lock ------------------ */

struct removal_case {
    struct fixture f;
    struct second s;
    char *x0;
    bool blocked, fired;
};

static void map_neighbour_during_unmap(struct hook_os *h, enum hook_call call, void *addr,
                                       size_t len, int prot, int flags)
{
    struct removal_case *c = h->arg;
    if (c->fired || call != HOOK_MUNMAP || addr != c->x0)
        return;
    c->fired = true;
    c->blocked = second_runs_into_lock(&c->s);
}

/* X0 is the only live chunk of its slab.  While unmap(X0) holds the slab, a
 * second thread asks for X1 in the same slab and waits for the lock.  The
 * unmap empties the slab, which leaves the table; the waiter must notice
 * and map X1 in a new slab, not in the dead one. */
Test(protocol, writer_rechecks_removed_slab)
{
    static struct removal_case c;
    memset(&c, 0, sizeof(c));
    fixture_setup(&c.f, 16);
    char *base = unit_free_range(2 * c.f.chunk, SLAB_CHUNKS * c.f.chunk);
    c.x0 = base;
    char *x1 = base + c.f.chunk;
    cr_assert_eq(mmapper_ensure_mapped(c.f.m, c.x0, c.f.chunk, NULL), 0);
    second_start(&c.s, &c.f, call_ensure_one, x1, c.f.chunk);
    c.f.hook.arg = &c;
    c.f.hook.before = map_neighbour_during_unmap;

    cr_assert_eq(mmapper_unmap(c.f.m, c.x0, c.f.chunk), 0);
    second_join(&c.s);
    c.f.hook.before = NULL;
    cr_assert(c.fired && c.blocked, "the second thread did not wait for the slab lock");
    cr_assert_eq(c.s.rc, 0);
    cr_assert_eq(mmapper_state(c.f.m, x1), MMAPPER_MAPPED, "X1 was recorded in a dead slab");
    cr_assert(mmapper_is_mapped(c.f.m, x1));
    struct mmapper_stats st;
    mmapper_get_stats(c.f.m, &st);
    cr_assert_eq(st.slabs, 1);
    cr_assert_eq(st.chunks_mapped, 1);
    memset(x1, 0x22, c.f.chunk);
    char why[256] = "";
    cr_assert_eq(procmaps_check(c.f.m, base, 2 * c.f.chunk, true, why, sizeof(why)), 0,
                 "%s", why);
    /* And the new slab works: unmapping X1 removes it again. */
    cr_assert_eq(mmapper_unmap(c.f.m, x1, c.f.chunk), 0);
    mmapper_get_stats(c.f.m, &st);
    cr_assert_eq(st.slabs, 0);
    mmapper_destroy(c.f.m);
}

/* ---- 5. system calls that fail half-way ------------------------------------- */

/* mprotect over several VMAs changes the first ones and then fails (ENOMEM
 * when the kernel cannot split a VMA).  The mapper redoes it chunk by chunk
 * to learn which chunks changed; here every retry succeeds, so the call
 * does too, and the record matches the kernel. */
static void protect_first_half(struct hook_os *h, enum hook_call call, void *addr, size_t len,
                               int prot, int flags)
{
    struct fixture *f = h->arg;
    (void)flags;
    if (call == HOOK_MPROTECT && prot == PROT_NONE && len == 4 * f->chunk) {
        cr_assert_eq(mprotect(addr, len / 2, PROT_NONE), 0);
        atomic_store(&h->fail_mprotect, ENOMEM);
    }
}

Test(protocol, mprotect_failing_half_way)
{
    struct fixture f;
    fixture_setup(&f, 16);
    char *base = unit_free_range(4 * f.chunk, SLAB_CHUNKS * f.chunk);
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, 4 * f.chunk, NULL), 0);
    f.hook.arg = &f;
    f.hook.before = protect_first_half;
    cr_assert_eq(mmapper_protect(f.m, base, 4 * f.chunk), 0);
    f.hook.before = NULL;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(mmapper_state(f.m, base + i * f.chunk), MMAPPER_PROTECTED);
    char why[256] = "";
    cr_assert_eq(procmaps_check(f.m, base, 4 * f.chunk, true, why, sizeof(why)), 0, "%s", why);
    mmapper_destroy(f.m);
}

/* Before Linux 6.12 a MAP_FIXED mmap that fails may already have unmapped
 * what it was to replace.  Decommit then finds a hole where its chunk was;
 * it re-reserves it (NOREPLACE succeeds only over a hole), so the chunk ends
 * Quarantined, as asked, and the kernel agrees. */
static void unmap_then_fail(struct hook_os *h, enum hook_call call, void *addr, size_t len,
                            int prot, int flags)
{
    (void)prot;
    if (call == HOOK_MMAP && (flags & MAP_FIXED)) {
        cr_assert_eq(munmap(addr, len), 0);
        atomic_store(&h->fail_fixed_mmap, ENOMEM);
    }
}

Test(protocol, decommit_fills_hole_of_failed_map_fixed)
{
    struct fixture f;
    fixture_setup(&f, 16);
    char *base = unit_free_range(2 * f.chunk, SLAB_CHUNKS * f.chunk);
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, 2 * f.chunk, NULL), 0);
    f.hook.before = unmap_then_fail;
    cr_assert_eq(mmapper_decommit(f.m, base, f.chunk), 0);
    f.hook.before = NULL;
    cr_assert_eq(mmapper_state(f.m, base), MMAPPER_QUARANTINED);
    unit_expect_perms(base, "---p");
    char why[256] = "";
    cr_assert_eq(procmaps_check(f.m, base, 2 * f.chunk, true, why, sizeof(why)), 0, "%s", why);
    mmapper_destroy(f.m);
}

/* The same pre-6.12 failure, but the hole cannot be re-reserved: memory is
 * still short.  Our mapping is gone: the chunks must read Unmapped (never
 * Mapped over a hole). */
static void unmap_then_fail_under_pressure(struct hook_os *h, enum hook_call call, void *addr,
                                           size_t len, int prot, int flags)
{
    (void)prot;
    if (call == HOOK_MMAP && (flags & MAP_FIXED)) {
        cr_assert_eq(munmap(addr, len), 0);
        atomic_store(&h->fail_fixed_mmap, ENOMEM);
        atomic_store(&h->fail_noreplace, 1000);   /* every re-reservation */
    }
}

Test(protocol, decommit_hole_under_memory_pressure)
{
    struct fixture f;
    fixture_setup(&f, 16);
    char *base = unit_free_range(4 * f.chunk, SLAB_CHUNKS * f.chunk);
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, 4 * f.chunk, NULL), 0);
    f.hook.before = unmap_then_fail_under_pressure;
    cr_assert_eq(mmapper_decommit(f.m, base + f.chunk, 2 * f.chunk), -ENOMEM);
    f.hook.before = NULL;
    atomic_store(&f.hook.fail_noreplace, 0);
    cr_assert_eq(mmapper_state(f.m, base), MMAPPER_MAPPED);
    for (int i = 1; i <= 2; i++) {
        cr_assert_eq(mmapper_state(f.m, base + i * f.chunk), MMAPPER_UNMAPPED,
                     "chunk %d recorded over a hole", i);
        cr_assert(!mmapper_is_mapped(f.m, base + i * f.chunk));
    }
    cr_assert(procmaps_range_free(base + f.chunk, 2 * f.chunk));
    char why[256] = "";
    cr_assert_eq(procmaps_check(f.m, base, 4 * f.chunk, true, why, sizeof(why)), 0, "%s", why);
    /* And the address range can be had again. */
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, 4 * f.chunk, NULL), 0);
    memset(base, 1, 4 * f.chunk);
    mmapper_destroy(f.m);
}

/* The same failure, and another thread maps into the hole before the
 * mapper can re-reserve it.  That page is not ours: recorded Unmapped, never
 * touched, also by a later unmap; the rest of the hole is taken back. */
static char *race_page;

static void unmap_then_fail_and_race(struct hook_os *h, enum hook_call call, void *addr,
                                     size_t len, int prot, int flags)
{
    struct fixture *f = h->arg;
    (void)prot;
    if (call == HOOK_MMAP && (flags & MAP_FIXED)) {
        cr_assert_eq(munmap(addr, len), 0);
        race_page = mmap((char *)addr + f->chunk + 4096, 4096, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        cr_assert_eq(race_page, (char *)addr + f->chunk + 4096);
        memset(race_page, 0x5a, 4096);
        atomic_store(&h->fail_fixed_mmap, ENOMEM);
    }
}

Test(protocol, decommit_hole_taken_by_another_thread)
{
    struct fixture f;
    fixture_setup(&f, 16);
    char *base = unit_free_range(3 * f.chunk, SLAB_CHUNKS * f.chunk);
    cr_assert_eq(mmapper_ensure_mapped(f.m, base, 3 * f.chunk, NULL), 0);
    f.hook.arg = &f;
    f.hook.before = unmap_then_fail_and_race;
    cr_assert_eq(mmapper_decommit(f.m, base, 3 * f.chunk), -ENOMEM);
    f.hook.before = NULL;
    cr_assert_eq(mmapper_state(f.m, base), MMAPPER_QUARANTINED);
    cr_assert_eq(mmapper_state(f.m, base + f.chunk), MMAPPER_UNMAPPED, "foreign page recorded");
    cr_assert_eq(mmapper_state(f.m, base + 2 * f.chunk), MMAPPER_QUARANTINED);
    unit_expect_perms(base, "---p");
    unit_expect_perms(base + 2 * f.chunk, "---p");
    cr_assert_eq(mmapper_unmap(f.m, base, 3 * f.chunk), 0);
    for (int i = 0; i < 4096; i++)
        cr_assert_eq((unsigned char)race_page[i], 0x5a, "the foreign page was touched");
    cr_assert(procmaps_range_free(base, f.chunk));
    cr_assert(procmaps_range_free(base + 2 * f.chunk, f.chunk));
    munmap(race_page, 4096);
    mmapper_destroy(f.m);
}
