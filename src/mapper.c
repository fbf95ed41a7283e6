/*
 * The public entry points: validate, round to chunks, and drive every chunk
 * of the range through its transition.
 *
 * Each call first scans its range lock-free (scan()): if every chunk is
 * already where the call wants it, it returns without a lock or a store
 * (the fast path of ensure_mapped on Mapped memory).  Otherwise it walks the
 * range (walk()) slab by slab in ascending address order, locking each slab
 * and re-reading its states under the lock.  Adjacent chunks that need the
 * same syscall form a run, and a run is one syscall even across slabs: the
 * walker keeps the lock of every slab the pending run covers.  Locks are
 * always taken in ascending address order, so walkers cannot deadlock, and
 * the table lock is only ever taken inside slab locks.
 *
 * Memory orders: a state is published with a release store after the
 * syscall that makes it true; readers load it with acquire.  So a thread
 * that sees Mapped also sees the mapping (and can touch the memory).  State
 * bytes are only written under their slab's lock, so writers read them
 * relaxed.
 */
#include "config.h"

#include "mapper.h"

#include <errno.h>
#include <string.h>

#include "chunk_state.h"

#define CHUNK_INDEX_MASK (SLAB_CHUNKS - 1)

struct chunk_range {
    uintptr_t first, end;        /* chunk indices, end exclusive */
};

static int to_chunks(const mmapper_t *m, const void *start, size_t bytes,
                     struct chunk_range *r)
{
    uintptr_t s = (uintptr_t)start;
    if (!m || bytes == 0 || s > UINTPTR_MAX - bytes || s + bytes > MMAPPER_ADDRESS_LIMIT)
        return -EINVAL;
    r->first = s >> m->chunk_shift;
    r->end = ((s + bytes - 1) >> m->chunk_shift) + 1;
    return 0;
}

static void *chunk_addr(const mmapper_t *m, uintptr_t chunk)
{
    return (void *)(chunk << m->chunk_shift);
}

static int check_opts(const struct mmapper_map_opts *o)
{
    if (!o)
        return 0;
    if ((unsigned)o->prot > MMAPPER_PROT_READ_WRITE_EXEC ||
        (unsigned)o->huge_page > MMAPPER_HUGE_PAGE_NEVER ||
        (o->name && !os_name_valid(o->name)))
        return -EINVAL;
    return 0;
}

/* ---- lock-free reads ---------------------------------------------------- */

/* The raw state byte (CHUNK_LEAVING included) of the chunk holding addr.
 * No range check: slabs exist only below MMAPPER_ADDRESS_LIMIT, so any other
 * address simply finds no slab. */
static inline unsigned lookup_state(const mmapper_t *m, const void *addr)
{
    uintptr_t chunk = (uintptr_t)addr >> m->chunk_shift;
    rcu_read_enter();
    const struct slab *s = slab_table_lookup(&m->table, chunk >> SLAB_LOG_CHUNKS);
    /* Acquire: pairs with the release in record(); a caller that sees
     * Mapped may touch the memory the syscall mapped. */
    unsigned st = s ? atomic_load_explicit(&s->state[chunk & CHUNK_INDEX_MASK],
                                           memory_order_acquire)
                    : MMAPPER_UNMAPPED;
    rcu_read_exit();
    return st;
}

/* A thread's first lookup registers it with urcu-bp: a call, kept out of
 * line so that the hot path below is a leaf function with no stack frame. */
static __attribute__((noinline, cold)) unsigned lookup_state_first(const mmapper_t *m,
                                                                   const void *addr)
{
    return lookup_state(m, addr);
}

static inline unsigned state_at(const mmapper_t *m, const void *addr)
{
    if (!m)
        return MMAPPER_UNMAPPED;
    if (__builtin_expect(!rcu_reader_registered(), 0))
        return lookup_state_first(m, addr);
    return lookup_state(m, addr);
}

MMAPPER_API bool mmapper_is_mapped(const mmapper_t *m, const void *addr)
{
    return state_at(m, addr) == MMAPPER_MAPPED;   /* not while LEAVING */
}

MMAPPER_API mmapper_state_t mmapper_state(const mmapper_t *m, const void *addr)
{
    return (mmapper_state_t)(state_at(m, addr) & CHUNK_STATE_MASK);
}

/* 1 if op has nothing to do on any chunk of r, 0 if it has, or the error an
 * illegal chunk gives.  No lock, no store.  Acquire loads, as in state_at():
 * returning 1 for ensure_mapped promises usable memory. */
static int scan(const mmapper_t *m, enum chunk_op op, struct chunk_range r)
{
    int verdict = 1;
    rcu_read_enter();
    for (uintptr_t c = r.first; c < r.end && verdict >= 0;) {
        uintptr_t key = c >> SLAB_LOG_CHUNKS;
        uintptr_t stop = (key + 1) << SLAB_LOG_CHUNKS;
        if (stop > r.end)
            stop = r.end;
        const struct slab *s = slab_table_lookup(&m->table, key);
        for (; c < stop; c++) {
            unsigned st = s ? atomic_load_explicit(&s->state[c & CHUNK_INDEX_MASK],
                                                   memory_order_acquire)
                            : MMAPPER_UNMAPPED;
            enum chunk_action a = chunk_action(op, st);
            if (a == ACT_ILLEGAL || a == ACT_CONFLICT) {
                verdict = a == ACT_ILLEGAL ? -EINVAL : -EEXIST;
                break;
            }
            /* A chunk on its way out (CHUNK_LEAVING) is never "already
             * done": the caller must queue behind that transition. */
            if (a != ACT_NONE || (st & CHUNK_LEAVING))
                verdict = 0;
            if (!s)
                c = stop - 1;   /* a missing slab is Unmapped throughout */
        }
    }
    rcu_read_exit();
    return verdict;
}

/* ---- the locking walk --------------------------------------------------- */

struct walk {
    mmapper_t *m;
    unsigned target;                       /* mmapper_state_t after op */
    const struct mmapper_map_opts *opts;
    struct slab *held, *held_last;         /* locked slabs, ascending */
    uintptr_t run_first, run_len;          /* chunks waiting for one syscall */
    enum chunk_action run_act;
    uintptr_t stopped_at;                  /* on error: first chunk not done */
};

static int lock_slab(struct walk *w, uintptr_t key, bool create, struct slab **out)
{
    struct slab_table *t = &w->m->table;
    for (;;) {
        struct slab *s = slab_table_lookup(t, key);
        if (!s) {
            if (!create) {
                *out = NULL;
                return 0;
            }
            int err = slab_table_get_or_create(t, key, &s);
            if (err)
                return err;
        }
        pthread_mutex_lock(&s->lock);
        if (!s->dead) {
            s->held_next = NULL;
            if (w->held_last)
                w->held_last->held_next = s;
            else
                w->held = s;
            w->held_last = s;
            *out = s;
            return 0;
        }
        /* Removed since we found it: the table no longer has it, so the
         * next lookup finds its successor or nothing. */
        pthread_mutex_unlock(&s->lock);
    }
}

static struct slab *held_slab(const struct walk *w, uintptr_t key)
{
    struct slab *s = w->held;
    while (s->key != key)
        s = s->held_next;
    return s;
}

/* Store the new state of chunk c (slab s locked) and keep the counts. */
static void record(struct walk *w, struct slab *s, uintptr_t c, unsigned state)
{
    chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
    unsigned old = atomic_load_explicit(p, memory_order_relaxed) & CHUNK_STATE_MASK;
    /* Release: pairs with the acquire loads of state_at() and scan(); the
     * syscall that made `state` true happens before any use of it. */
    atomic_store_explicit(p, (uint8_t)state, memory_order_release);
    s->live += (state != MMAPPER_UNMAPPED) - (old != MMAPPER_UNMAPPED);
    if (old != MMAPPER_UNMAPPED)
        gauge_add(&w->m->counters.chunks[old], -1);
    if (state != MMAPPER_UNMAPPED)
        gauge_add(&w->m->counters.chunks[state], 1);
}

/* Chunks [first, first+n) of the pending run: record `done` of them in the
 * target state and restore the rest (dropping CHUNK_LEAVING). */
static void settle(struct walk *w, uintptr_t first, uintptr_t n, uintptr_t done)
{
    struct slab *s = held_slab(w, first >> SLAB_LOG_CHUNKS);
    for (uintptr_t c = first; c < first + n; c++) {
        if (c != first && (c & CHUNK_INDEX_MASK) == 0)
            s = s->held_next;   /* a run's slabs are consecutive and held */
        if (c < first + done) {
            record(w, s, c, w->target);
        } else {
            chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
            /* Relaxed: the state goes back to a value readers saw before,
             * and the memory never went away. */
            atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) &
                                         CHUNK_STATE_MASK, memory_order_relaxed);
        }
    }
}

/* Before access is revoked, Mapped chunks of the run stop reading as Mapped,
 * so that is_mapped() never answers true for memory already gone. */
static void mark_leaving(struct walk *w, uintptr_t first, uintptr_t n)
{
    struct slab *s = held_slab(w, first >> SLAB_LOG_CHUNKS);
    for (uintptr_t c = first; c < first + n; c++) {
        if (c != first && (c & CHUNK_INDEX_MASK) == 0)
            s = s->held_next;
        chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
        unsigned st = atomic_load_explicit(p, memory_order_relaxed);
        /* seq_cst (a full barrier; this is the slow path): the store must
         * be visible to every reader before the syscall that follows takes
         * the memory away, not linger in a store buffer.  (A separate fence
         * would do, but ThreadSanitizer does not model fences.) */
        if (st == MMAPPER_MAPPED)
            atomic_store_explicit(p, (uint8_t)(st | CHUNK_LEAVING), memory_order_seq_cst);
    }
}

static int apply_attrs(struct mm_os *os, void *addr, size_t len,
                       const struct mmapper_map_opts *o)
{
    if (!o)
        return 0;
    int err = os_advise_huge(os, addr, len, o->huge_page);
    return err ? err : os_set_name(os, addr, len, o->name);
}

/* The action's system call over [addr, addr+len), attributes aside. */
static int base_syscall(struct walk *w, enum chunk_action act, void *addr, size_t len)
{
    struct mm_os *os = &w->m->os;
    mmapper_prot_t prot = w->opts ? w->opts->prot : MMAPPER_PROT_READ_WRITE;
    switch (act) {
    case ACT_MAP_FRESH:
        return os_map_fresh(os, addr, len, prot);
    case ACT_RESERVE:
        return os_reserve(os, addr, len);
    case ACT_COMMIT:
        return os_commit(os, addr, len, prot);
    case ACT_PROTECT:
        return os_protect(os, addr, len);
    case ACT_DECOMMIT:
        return os_decommit(os, addr, len);
    case ACT_UNMAP:
        return os_unmap(os, addr, len);
    default:   /* ACT_RECORD: the record is all there is */
        return 0;
    }
}

/*
 * Make the pending run's system call and record its outcome.
 *
 * Attributes (huge page advice, name) must never leave a chunk recorded in a
 * state the kernel does not have, so:
 *  - a commit gets them first, while the memory is still PROT_NONE: if they
 *    fail, nothing needs undoing (advice and names on a reservation are
 *    harmless) and the chunks keep their old state;
 *  - a fresh mapping or reservation gets them after the mmap; if they fail,
 *    the new mapping is unmapped again (munmap is all-or-nothing), and only
 *    if that fails too are the chunks recorded in the new state, which is
 *    then what the kernel has.
 */
static int flush_run(struct walk *w)
{
    uintptr_t first = w->run_first, n = w->run_len;
    enum chunk_action act = w->run_act;
    if (n == 0)
        return 0;
    w->run_len = 0;

    unsigned shift = w->m->chunk_shift;
    void *addr = chunk_addr(w->m, first);
    size_t len = n << shift;
    struct mm_os *os = &w->m->os;
    uintptr_t done = 0;
    int err = 0;

    if (act == ACT_COMMIT)
        err = apply_attrs(os, addr, len, w->opts);
    if (!err) {
        if (chunk_action_revokes(act))
            mark_leaving(w, first, n);
        err = base_syscall(w, act, addr, len);
        done = err ? 0 : n;
        if (err && n > 1 && (act == ACT_COMMIT || act == ACT_PROTECT)) {
            /* mprotect over several VMAs may have changed some before
             * failing.  Redo it chunk by chunk (mprotect is idempotent) to
             * learn exactly which chunks made it; a transient failure is
             * absorbed. */
            for (err = 0; done < n; done++) {
                err = base_syscall(w, act, chunk_addr(w->m, first + done),
                                   (size_t)1 << shift);
                if (err)
                    break;
            }
        }
    }
    if (!err && (act == ACT_MAP_FRESH || act == ACT_RESERVE) &&
        (err = apply_attrs(os, addr, len, w->opts)) != 0 && os_unmap(os, addr, len) == 0)
        done = 0;
    settle(w, first, n, done);
    if (err)
        w->stopped_at = first + done;
    return err;
}

/* The held slab after `s` (or the first one) if it is the slab of key. */
static struct slab *held_at(const struct walk *w, struct slab *s, uintptr_t key)
{
    if (s && s->key == key)
        return s;
    s = s ? s->held_next : w->held;
    return s && s->key == key ? s : NULL;
}

static void release_all(struct walk *w)
{
    for (struct slab *s = w->held, *next; s; s = next) {
        next = s->held_next;
        /* A slab left with no live chunk leaves the table; it is freed after
         * a grace period, in slab_table_reclaim. */
        if (s->live == 0)
            slab_table_remove(&w->m->table, s);
        pthread_mutex_unlock(&s->lock);
    }
    w->held = w->held_last = NULL;
}

/*
 * Move every chunk of r (at most WINDOW_SLABS slabs) as op says, atomically
 * with respect to other calls:
 *  1. lock every slab of the range in ascending address order (creating the
 *     slabs op needs) and check every chunk; an illegal chunk fails the
 *     call before any system call, with nothing changed;
 *  2. walk the chunks, gathering runs that need the same system call, one
 *     call per run (runs span slabs, not gaps without a slab);
 *  3. unlock, leave the read-side section, free what was retired.
 * On a system-call error, runs before the failing one keep their new state;
 * *stopped_at (if given) is the first chunk of the range not moved.
 */
static int walk_window(mmapper_t *m, enum chunk_op op, struct chunk_range r,
                       const struct mmapper_map_opts *o, uintptr_t *stopped_at)
{
    struct walk w = { .m = m, .target = chunk_op_target(op), .opts = o,
                      .stopped_at = r.first };
    enum chunk_action on_unmapped = chunk_action(op, MMAPPER_UNMAPPED);
    bool creates = on_unmapped != ACT_NONE && on_unmapped != ACT_ILLEGAL;
    uintptr_t last_key = (r.end - 1) >> SLAB_LOG_CHUNKS;
    int err = 0;

    rcu_read_enter();
    for (uintptr_t key = r.first >> SLAB_LOG_CHUNKS; key <= last_key && !err; key++) {
        struct slab *s;
        if ((err = lock_slab(&w, key, creates, &s)) != 0)
            break;
        if (!s) {
            err = on_unmapped == ACT_ILLEGAL ? -EINVAL : 0;
            continue;
        }
        uintptr_t c = key << SLAB_LOG_CHUNKS, stop = c + SLAB_CHUNKS;
        c = c < r.first ? r.first : c;
        stop = stop > r.end ? r.end : stop;
        for (; c < stop && !err; c++) {
            enum chunk_action a = chunk_action(
                op, atomic_load_explicit(&s->state[c & CHUNK_INDEX_MASK], memory_order_relaxed));
            if (a == ACT_ILLEGAL || a == ACT_CONFLICT)
                err = a == ACT_ILLEGAL ? -EINVAL : -EEXIST;
        }
    }

    struct slab *s = NULL;
    for (uintptr_t c = r.first; c < r.end && !err; c++) {
        if ((c & CHUNK_INDEX_MASK) == 0 || c == r.first) {
            struct slab *next = held_at(&w, s, c >> SLAB_LOG_CHUNKS);
            if (!next) {
                /* No slab: all Unmapped, which op leaves alone (it was
                 * checked above).  A run cannot span the gap. */
                err = flush_run(&w);
                c |= CHUNK_INDEX_MASK;
                continue;
            }
            s = next;
        }
        enum chunk_action a = chunk_action(
            op, atomic_load_explicit(&s->state[c & CHUNK_INDEX_MASK], memory_order_relaxed));
        if ((a == ACT_NONE || a != w.run_act) && (err = flush_run(&w)) != 0)
            break;
        if (a == ACT_NONE)
            continue;
        if (w.run_len == 0) {
            w.run_first = c;
            w.run_act = a;
        }
        w.run_len++;
    }
    if (!err)
        err = flush_run(&w);

    release_all(&w);
    rcu_read_exit();
    if (err && stopped_at)
        *stopped_at = w.stopped_at;
    return err;
}

/* Slabs locked at once by one call: 32 slabs are 8192 chunks (32 GiB of 4 MiB
 * chunks) per system call at most, and stay under ThreadSanitizer's limit of
 * 64 mutexes held by one thread. */
#define WINDOW_SLABS ((uintptr_t)32)

/*
 * unmap over a range far larger than the table (e.g. "everything" at
 * shutdown): visit the slabs the table holds instead of every slab key of
 * the range, so the cost follows what is live, not the size of the range.
 * Each slab's part is its own atomic window; a slab created concurrently
 * may be missed, as if it was created after this call.
 */
static int unmap_sparse(mmapper_t *m, struct chunk_range r)
{
    int err = 0;
    rcu_read_enter();   /* keeps the array and the slabs we read valid */
    const struct slab_array *a = rcu_fetch(&m->table.current);
    for (uintptr_t i = 0; i <= a->mask && !err; i++) {
        struct slab *s = atomic_load_explicit((_Atomic(struct slab *) *)&a->slots[i],
                                              memory_order_acquire);
        if (!s || s == &slab_tombstone)
            continue;
        uintptr_t first = s->key << SLAB_LOG_CHUNKS, end = first + SLAB_CHUNKS;
        first = first < r.first ? r.first : first;
        end = end > r.end ? r.end : end;
        if (first < end)   /* nests inside our read-side section */
            err = walk_window(m, OP_UNMAP, (struct chunk_range){ first, end }, NULL, NULL);
    }
    rcu_read_exit();
    return err;
}

/* Whether op over r should visit live slabs rather than every slab key. */
static bool sparse_unmap(const mmapper_t *m, enum chunk_op op, struct chunk_range r)
{
    uintptr_t slabs = ((r.end - 1) >> SLAB_LOG_CHUNKS) - (r.first >> SLAB_LOG_CHUNKS) + 1;
    /* Relaxed: only a cost estimate. */
    uint64_t capacity = atomic_load_explicit((_Atomic uint64_t *)&m->counters.table_capacity,
                                             memory_order_relaxed);
    return op == OP_UNMAP && slabs > 4 * WINDOW_SLABS && slabs > 4 * capacity;
}

/* walk_window() over consecutive windows of r; each window is atomic. */
static int walk(mmapper_t *m, enum chunk_op op, struct chunk_range r,
                const struct mmapper_map_opts *o, uintptr_t *stopped_at)
{
    int err = 0;
    if (sparse_unmap(m, op, r)) {
        err = unmap_sparse(m, r);
        slab_table_reclaim(&m->table);
        return err;
    }
    for (uintptr_t c = r.first; c < r.end && !err;) {
        uintptr_t stop = ((c >> SLAB_LOG_CHUNKS) + WINDOW_SLABS) << SLAB_LOG_CHUNKS;
        if (stop > r.end)
            stop = r.end;
        err = walk_window(m, op, (struct chunk_range){ c, stop }, o, stopped_at);
        c = stop;
    }
    slab_table_reclaim(&m->table);   /* outside any read-side section */
    return err;
}

/*
 * The fast path of every transition: a range within one chunk that is
 * already where op wants it.  One lookup, no lock, no store; inlined into
 * each entry point so that it stays a leaf function when nothing is to do.
 * Anything unusual (bad arguments, options to validate, an unregistered
 * thread) falls through to transition(), which decides properly.
 */
static inline bool already_done(const mmapper_t *m, enum chunk_op op, const void *start,
                                size_t bytes, const struct mmapper_map_opts *o)
{
    uintptr_t first = (uintptr_t)start, last = first + bytes - 1;
    if (!m || bytes == 0 || last < first || last >= MMAPPER_ADDRESS_LIMIT ||
        !rcu_reader_registered() ||
        (first >> m->chunk_shift) != (last >> m->chunk_shift) ||
        (o && (o->name || (unsigned)o->prot > MMAPPER_PROT_READ_WRITE_EXEC ||
                (unsigned)o->huge_page > MMAPPER_HUGE_PAGE_NEVER)))
        return false;
    unsigned st = lookup_state(m, start);
    /* A chunk on its way out (CHUNK_LEAVING) is never "already done". */
    return !(st & CHUNK_LEAVING) && chunk_action(op, st) == ACT_NONE;
}

static __attribute__((noinline)) int transition(mmapper_t *m, enum chunk_op op,
                                                const void *start, size_t bytes,
                                                const struct mmapper_map_opts *o)
{
    struct chunk_range r;
    int err = to_chunks(m, start, bytes, &r);
    if (err || (err = check_opts(o)) != 0)
        return err;
    if (r.end - r.first == 1) {
        /* One chunk, the common case: a single lookup decides. */
        unsigned st = state_at(m, start);
        if (!(st & CHUNK_LEAVING) && chunk_action(op, st) == ACT_NONE)
            return 0;
    } else if (!sparse_unmap(m, op, r)) {   /* a sparse unmap skips the scan too */
        int verdict = scan(m, op, r);
        if (verdict != 0)
            return verdict < 0 ? verdict : 0;
    }
    return walk(m, op, r, o, NULL);
}

/* ---- the public API ----------------------------------------------------- */

MMAPPER_API int mmapper_ensure_mapped(mmapper_t *m, void *start, size_t bytes,
                                      const struct mmapper_map_opts *o)
{
    if (already_done(m, OP_MAP, start, bytes, o))
        return 0;
    return transition(m, OP_MAP, start, bytes, o);
}

MMAPPER_API int mmapper_quarantine(mmapper_t *m, void *start, size_t bytes,
                                   const struct mmapper_map_opts *o)
{
    if (already_done(m, OP_QUARANTINE, start, bytes, o))
        return 0;
    return transition(m, OP_QUARANTINE, start, bytes, o);
}

MMAPPER_API int mmapper_mark_as_mapped(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_MARK, start, bytes, NULL))
        return 0;
    return transition(m, OP_MARK, start, bytes, NULL);
}

MMAPPER_API int mmapper_protect(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_PROTECT, start, bytes, NULL))
        return 0;
    return transition(m, OP_PROTECT, start, bytes, NULL);
}

MMAPPER_API int mmapper_decommit(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_DECOMMIT, start, bytes, NULL))
        return 0;
    return transition(m, OP_DECOMMIT, start, bytes, NULL);
}

MMAPPER_API int mmapper_unmap(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_UNMAP, start, bytes, NULL))
        return 0;
    return transition(m, OP_UNMAP, start, bytes, NULL);
}

MMAPPER_API int mmapper_quarantine_anywhere(mmapper_t *m, size_t bytes,
                                            const struct mmapper_map_opts *o, void **out)
{
    if (!m || !out || bytes == 0 || (bytes & (mmapper_granularity(m) - 1)))
        return -EINVAL;
    int err = check_opts(o);
    if (err)
        return err;
    void *p;
    if ((err = os_reserve_aligned(&m->os, bytes, mmapper_granularity(m), &p)) != 0)
        return err;
    struct chunk_range r;
    if (to_chunks(m, p, bytes, &r) != 0) {
        os_unmap(&m->os, p, bytes);   /* beyond what we can record */
        return -ENOMEM;
    }
    /* Attributes before the record: until then nobody else knows the range. */
    if ((err = apply_attrs(&m->os, p, bytes, o)) != 0) {
        os_unmap(&m->os, p, bytes);
        return err;
    }
    uintptr_t stopped;
    if ((err = walk(m, OP_ADOPT, r, NULL, &stopped)) != 0) {
        /* The kernel gave us chunks our records call taken (memory marked
         * mapped and then unmapped behind our back), or metadata ran out.
         * Hand back what we adopted through the mapper, the rest directly. */
        if (stopped > r.first)
            walk(m, OP_UNMAP, (struct chunk_range){ r.first, stopped }, NULL, NULL);
        os_unmap(&m->os, chunk_addr(m, stopped), (r.end - stopped) << m->chunk_shift);
        return err;
    }
    *out = p;
    return 0;
}

MMAPPER_API size_t mmapper_granularity(const mmapper_t *m)
{
    return m ? (size_t)1 << m->chunk_shift : 0;
}

static const struct mmapper_os *check_os(const struct mmapper_os *os)
{
    if (!os)
        return mmapper_os_default();
    if (!os->mmap || !os->munmap || !os->mprotect || !os->madvise || !os->set_name)
        return NULL;
    return os;
}

MMAPPER_API int mmapper_create(const struct mmapper_config *cfg, mmapper_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    unsigned log_page = (unsigned)__builtin_ctzl(os_page_size());
    unsigned log_chunk = cfg && cfg->log_chunk_bytes ? cfg->log_chunk_bytes : 22;
    const struct mmapper_os *os = check_os(cfg ? cfg->os : NULL);
    if (log_chunk < log_page || log_chunk > 30 || !os)
        return -EINVAL;

    size_t bytes = meta_pages_round(sizeof(struct mmapper));
    mmapper_t *m;
    int err = os_meta_map(bytes, (void **)&m);
    if (err)
        return err;
    /* Fresh pages are zero: the counters start at 0. */
    m->chunk_shift = log_chunk;
    m->self_bytes = bytes;
    os_init(&m->os, os, &m->counters, cfg && cfg->disable_names);
    if ((err = slab_table_init(&m->table, &m->counters)) != 0) {
        os_meta_unmap(m, bytes);
        return err;
    }
    counter_add(&m->counters.metadata_bytes, bytes);
    *out = m;
    return 0;
}

MMAPPER_API void mmapper_destroy(mmapper_t *m)
{
    if (!m)
        return;
    slab_table_fini(&m->table);
    os_meta_unmap(m, m->self_bytes);
}
