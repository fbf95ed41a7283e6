/*
 * fork(): the atfork handlers, and the repair of every mapper in the child.
 *
 * The ordering trap.  An allocator calls into mmapper while holding its own
 * locks (jemalloc's extent hooks run under an arena mutex), and its own
 * prepare handler takes those locks.  Prepare handlers run in the reverse
 * order of registration, so ours may run first.  If our prepare handler
 * then held anything such a thread may wait for, that thread could never
 * release its arena mutex, and the allocator's prepare handler, waiting for
 * it, would never return: fork() would hang.  So the prepare handler holds
 * nothing a transition or a lookup waits for, in whichever order handlers
 * run:
 *
 *  - It holds liburcu-bp's grace-period and registry locks
 *    (urcu_bp_before_fork), so that the child's reader registry is
 *    consistent and holds no dead reader.  Transitions never take the
 *    grace-period lock (only the reclaimer does).  The registry lock is
 *    taken by a thread's first read-side section (registration), so while a
 *    fork is being prepared, an unregistered thread does not register: it
 *    reads as a "fork reader", counted in fork_readers, and the reclaimer
 *    frees nothing while any fork reader is active (reclaim.c).  A Dekker
 *    handshake (seq_cst on `preparing` and `registering`) makes sure that
 *    no thread is inside registration when we take the lock: either it
 *    sees `preparing` and becomes a fork reader, or we see it registering
 *    and wait for it, which takes a bounded time because registration waits
 *    for nothing we hold yet.
 *  - Taking the grace-period lock waits for a grace period in progress,
 *    which waits for read-side sections to end; sections never wait for
 *    anything (walk.c), so this is bounded too, unless a thread is stopped
 *    inside one (a stopped world): do not fork then.
 *  - It takes none of our own locks.  Threads go on transitioning while the
 *    fork happens, so the child may inherit a mapper in the middle of a
 *    transition: a slab lock held by a thread that does not exist in the
 *    child, a system call made but not yet recorded, a table or pool in the
 *    middle of an update.  The child handler repairs each mapper:
 *      * every lock is re-initialised (all threads but this one are gone);
 *      * a slab whose lock was held may have a run in flight (its intent,
 *        walk.c): each chunk of the run takes the state the kernel shows
 *        (/proc/self/maps, read without malloc), so the record matches the
 *        child's address space whichever side of the system call the fork
 *        fell on (fork and the syscalls serialise on mmap_lock);
 *      * if the table or its slab pool was being updated, the table is
 *        rebuilt into fresh metadata from its published array (the old
 *        metadata is left as it is: a bounded, one-off leak in the child);
 *      * pins, versions, live counts and gauges are recomputed.
 *
 * The child handler runs before any other thread exists, and calls no
 * malloc (glibc's own fork has re-initialised malloc's locks by then, but
 * the allocator above us may not have).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "fork.h"

#include "chunk_state.h"
#include "mapper.h"
#include "rcu.h"
#include "reclaim.h"
#include "slab_table.h"

static _Atomic bool preparing;
static _Atomic unsigned registering, fork_readers;

/* ---- reading without registering ------------------------------------------- */

#ifndef _LGPL_SOURCE
_Thread_local bool mm_rcu_thread_registered;
#endif

bool rcu_read_enter_unregistered(void)
{
    /* Signals blocked: a handler of this thread that forks must not find
     * `registering` raised by its own thread (prepare would wait for it
     * forever), and no signal may stop us in the window either. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    atomic_fetch_add(&registering, 1);
    if (!atomic_load(&preparing)) {
        urcu_bp_read_lock();   /* registers this thread */
#ifndef _LGPL_SOURCE
        mm_rcu_thread_registered = true;
#endif
        atomic_fetch_sub(&registering, 1);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return false;
    }
    atomic_fetch_sub(&registering, 1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* seq_cst: ordered before our loads of the table, and against the
     * reclaimer's check of fork_readers after its grace period: either it
     * sees us and frees nothing, or our reads start after that grace
     * period ended, when what it frees is unreachable. */
    atomic_fetch_add(&fork_readers, 1);
    return true;
}

void rcu_read_exit_fork_reader(void)
{
    /* Release: our reads happen before a free that sees the count drop. */
    atomic_fetch_sub_explicit(&fork_readers, 1, memory_order_release);
}

bool fork_readers_active(void)
{
    return atomic_load(&fork_readers) != 0;
}

/* ---- the parent's side --------------------------------------------------------- */

static void prepare(void)
{
    atomic_store(&preparing, true);
    while (atomic_load(&registering) != 0)
        sched_yield();
    urcu_bp_before_fork();   /* blocks signals until after the fork */
}

static void parent(void)
{
    urcu_bp_after_fork_parent();
    atomic_store(&preparing, false);
}

/* ---- the kernel's view, without malloc ----------------------------------------- */

enum view { VIEW_ABSENT, VIEW_NONE, VIEW_ACCESSIBLE };

struct maps_reader {
    int fd;
    char buf[4096];
    size_t len, pos;
    bool eof;
    uintptr_t start, end;         /* the current mapping */
    enum view view;
    bool have;
};

static int maps_getc(struct maps_reader *r)
{
    if (r->pos == r->len) {
        if (r->eof)
            return -1;
        ssize_t n;
        do
            n = read(r->fd, r->buf, sizeof(r->buf));
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            r->eof = true;
            return -1;
        }
        r->len = (size_t)n;
        r->pos = 0;
    }
    return (unsigned char)r->buf[r->pos++];
}

static uintptr_t maps_hex(struct maps_reader *r, int *c)
{
    uintptr_t v = 0;
    for (;;) {
        *c = maps_getc(r);
        int d = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (d < 0)
            return v;
        v = v * 16 + (uintptr_t)d;
    }
}

/* Advance to the next mapping line ("start-end perms ..."); false at end. */
static bool maps_next(struct maps_reader *r)
{
    int c;
    r->start = maps_hex(r, &c);
    if (c != '-')
        return r->have = false;
    r->end = maps_hex(r, &c);
    char perms[4];
    for (int i = 0; i < 4; i++)
        perms[i] = (char)maps_getc(r);
    r->view = perms[0] == 'r' || perms[1] == 'w' || perms[2] == 'x' ? VIEW_ACCESSIBLE
                                                                    : VIEW_NONE;
    while ((c = maps_getc(r)) != '\n' && c != -1)
        ;
    return r->have = true;
}

/* The view at addr; queries must come in ascending order. */
static enum view maps_view_at(struct maps_reader *r, uintptr_t addr)
{
    while (r->have && r->end <= addr)
        maps_next(r);
    return r->have && r->start <= addr ? r->view : VIEW_ABSENT;
}

/* ---- the child's repair ----------------------------------------------------------- */

/* The state a chunk of a run whose system call had not returned at the
 * fork has in the child, given what the child's kernel shows.  (fork and
 * the mapping system calls serialise on the kernel's mmap_lock: each call
 * happened entirely before the fork or not at all.)  Nothing there is
 * Unmapped, whatever was asked. */
static unsigned settle_in_child(enum chunk_action act, unsigned old, unsigned target, enum view v)
{
    if (v == VIEW_ABSENT)
        return MMAPPER_UNMAPPED;
    switch (act) {
    case ACT_MAP_FRESH:
        /* Present: ours (NOREPLACE succeeded), unless someone else's mapping
         * made it fail, a case the child cannot tell apart. */
        return v == VIEW_ACCESSIBLE ? MMAPPER_MAPPED : MMAPPER_UNMAPPED;
    case ACT_RESERVE:
        return v == VIEW_NONE ? MMAPPER_QUARANTINED : MMAPPER_UNMAPPED;
    case ACT_COMMIT:
        return v == VIEW_ACCESSIBLE ? MMAPPER_MAPPED : old;
    case ACT_PROTECT:
        return v == VIEW_NONE ? MMAPPER_PROTECTED : MMAPPER_MAPPED;
    case ACT_DECOMMIT:
        /* From Protected both sides read PROT_NONE; either record is what
         * the kernel shows, and Quarantined promises less (no contents). */
        return v == VIEW_NONE ? MMAPPER_QUARANTINED : old;
    case ACT_UNMAP:
        return old;
    default:   /* ACT_RECORD: no system call, the caller's mapping is there */
        return target;
    }
}

/* Give every chunk of s's in-flight run the state the parent would have
 * given it: the recorded outcome if its system calls had returned, else
 * what the child's kernel shows. */
static void settle_intent(const mmapper_t *m, struct slab_table *t, struct slab *s)
{
    uint32_t n = atomic_load_explicit(&s->intent_n, memory_order_acquire);
    if (n == 0)
        return;
    uintptr_t first = atomic_load_explicit(&s->intent_first, memory_order_relaxed);
    enum chunk_action act = (enum chunk_action)atomic_load_explicit(&s->intent_act,
                                                                    memory_order_relaxed);
    unsigned target = atomic_load_explicit(&s->intent_target, memory_order_relaxed);
    bool returned = atomic_load_explicit(&s->intent_returned, memory_order_acquire);
    uint32_t done = atomic_load_explicit(&s->intent_done, memory_order_relaxed);
    struct maps_reader r = { .fd = returned ? -1 : open("/proc/self/maps", O_RDONLY | O_CLOEXEC) };
    if (r.fd >= 0)
        maps_next(&r);
    struct slab *cur = s;
    for (uintptr_t c = first; c < first + n; c++) {
        if (c != first && (c & (SLAB_CHUNKS - 1)) == 0)
            cur = slab_table_lookup(t, c >> SLAB_LOG_CHUNKS);   /* one thread: no section */
        if (!cur)
            break;
        chunk_state_t *p = &cur->state[c & (SLAB_CHUNKS - 1)];
        unsigned old = atomic_load_explicit(p, memory_order_relaxed) & CHUNK_STATE_MASK;
        unsigned now;
        if (returned)
            now = c - first < done ? target : old;
        else if (r.fd < 0)
            now = old;   /* no /proc: trust the record */
        else
            now = settle_in_child(act, old, target, maps_view_at(&r, c << m->chunk_shift));
        atomic_store_explicit(p, (uint8_t)now, memory_order_relaxed);
    }
    if (r.fd >= 0)
        close(r.fd);
    atomic_store_explicit(&s->intent_n, 0, memory_order_relaxed);
}

/* Bring a slab inherited from another thread's transition back to a state
 * this thread can use: unlocked, unpinned, even version, no LEAVING bit. */
static void reset_slab(struct slab *s)
{
    pthread_mutex_init(&s->lock, NULL);
    atomic_store_explicit(&s->pins, 0, memory_order_relaxed);
    uint32_t v = atomic_load_explicit(&s->version, memory_order_relaxed);
    atomic_store_explicit(&s->version, v + (v & 1), memory_order_relaxed);
    unsigned live = 0;
    for (unsigned i = 0; i < SLAB_CHUNKS; i++) {
        unsigned st = atomic_load_explicit(&s->state[i], memory_order_relaxed) & CHUNK_STATE_MASK;
        atomic_store_explicit(&s->state[i], (uint8_t)st, memory_order_relaxed);
        live += st != MMAPPER_UNMAPPED;
    }
    s->live = live;
}

/* The table or its pool was in the middle of an update: copy every live
 * slab of the published array into fresh metadata.  The old arrays, pool
 * blocks and retired objects stay mapped, unreferenced. */
static void rebuild_table(struct slab_table *t)
{
    struct slab_array *old = atomic_load_explicit(&t->current, memory_order_relaxed);
    struct slab_table fresh;
    if (slab_table_init(&fresh, t->counters) != 0)
        return;   /* no memory: keep the old one, re-initialised */
    for (uintptr_t i = 0; i <= old->mask; i++) {
        struct slab *s = atomic_load_explicit(&old->slots[i].slab, memory_order_relaxed);
        if (!s || s == &slab_tombstone || s->dead || s->live == 0)
            continue;
        struct slab *copy;
        if (slab_table_get_or_create(&fresh, s->key, &copy) != 0)
            continue;   /* out of memory: its chunks read as Unmapped */
        atomic_store_explicit(&copy->pins, 0, memory_order_relaxed);
        for (unsigned c = 0; c < SLAB_CHUNKS; c++)
            atomic_store_explicit(&copy->state[c],
                                  atomic_load_explicit(&s->state[c], memory_order_relaxed),
                                  memory_order_relaxed);
        copy->live = s->live;
    }
    fresh.reclaim_next = t->reclaim_next;
    memcpy(t, &fresh, sizeof(fresh));   /* t's address stays in the registry */
}

static void repair_table(struct slab_table *t)
{
    mmapper_t *m = (mmapper_t *)((char *)t - offsetof(struct mmapper, table));
    bool consistent = pthread_mutex_trylock(&t->lock) == 0;
    consistent = pthread_mutex_trylock(&t->slab_pool.lock) == 0 && consistent;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->slab_pool.lock, NULL);

    /* States first: a run in flight, wherever its slabs are. */
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = atomic_load_explicit(&a->slots[i].slab, memory_order_relaxed);
        if (s && s != &slab_tombstone)
            settle_intent(m, t, s);
    }
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = atomic_load_explicit(&a->slots[i].slab, memory_order_relaxed);
        if (s && s != &slab_tombstone)
            reset_slab(s);
    }
    /* A slab unpublished but not yet retired by a thread that is gone is on
     * no list: it leaks (one per such thread), and must not count. */
    t->retired_count = 0;
    for (struct slab *s = t->retired_slabs; s; s = s->retire_next, t->retired_count++)
        reset_slab(s);
    if (!consistent)
        rebuild_table(t);

    /* Counts and gauges from the records, not from counters a thread that
     * is gone may have been updating. */
    uint64_t count[4] = { 0 }, live = 0, used = 0;
    a = atomic_load_explicit(&t->current, memory_order_relaxed);
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = atomic_load_explicit(&a->slots[i].slab, memory_order_relaxed);
        used += s != NULL;
        if (!s || s == &slab_tombstone)
            continue;
        live++;
        for (unsigned c = 0; c < SLAB_CHUNKS; c++)
            count[atomic_load_explicit(&s->state[c], memory_order_relaxed) & CHUNK_STATE_MASK]++;
    }
    t->live = live;
    t->used = used;
    atomic_store(&m->counters.slabs, live);
    atomic_store(&m->counters.table_capacity, a->mask + 1);
    for (unsigned st = MMAPPER_QUARANTINED; st <= MMAPPER_PROTECTED; st++)
        atomic_store(&m->counters.chunks[st], (int64_t)count[st]);
}

static void child(void)
{
    urcu_bp_after_fork_child();   /* drops the readers of the threads gone */
    atomic_store(&preparing, false);
    atomic_store(&registering, 0);
    atomic_store(&fork_readers, 0);
    reclaim_forget_thread_in_child();
    reclaim_each_table_in_child(repair_table);
}

/* ---- registration ---------------------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int atfork_err;

static void register_handlers(void)
{
    atfork_err = pthread_atfork(prepare, parent, child);
}

int fork_handlers_register(void)
{
    pthread_once(&once, register_handlers);
    return atfork_err ? -ENOMEM : 0;
}
