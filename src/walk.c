/*
 * The locking walk: the slow path of every transition.
 *
 * Each window of the range is first checked lock-free (scan_window): if
 * every chunk is already where the call wants it, at one instant, nothing
 * is done.  Otherwise walk_window locks the window's slabs in ascending
 * address order (creating the ones the operation needs), checks that no
 * slab it found missing has appeared since, re-reads the states under the
 * locks, and makes one system call per run of adjacent chunks that need the
 * same one, across slab boundaries but never across a missing slab.
 *
 * RCU read-side sections here are short and never wait: a lookup, a
 * trylock, a pin.  A writer that must wait for a slab lock pins the slab
 * (so the reclaimer keeps it even if it dies meanwhile), leaves the section,
 * and waits (in a one-chunk window it first yields a few times, trying the
 * lock and looking whether the holder has settled its chunk:
 * settle_or_lock).  A locked slab that is not dead cannot be removed, so no
 * section is needed while the locks are held, and the system calls run
 * outside any section: a grace period never waits for a system call.
 *
 * Memory orders: a state is published with a release store after the
 * system call that makes it true; readers load it with acquire.  State bytes
 * are written only under their slab's lock, so writers read them relaxed.
 * Each slab's `version` is odd while its states change (see scan_window).
 */
#include "config.h"

#include "walk.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#define CHUNK_INDEX_MASK (SLAB_CHUNKS - 1)

static uintptr_t min_uptr(uintptr_t a, uintptr_t b)
{
    return a < b ? a : b;
}

/* ---- the lock-free check of one window ----------------------------------- */

/*
 * 1 if op has nothing to do on any chunk of window r, 0 if it has (or if the
 * window changed while we read it: the locking walk decides), or the error
 * an illegal chunk gives.  No lock, no store.
 *
 * Reading chunk after chunk is not atomic by itself: each state may be
 * current at a different time.  A verdict other than 0 is therefore
 * validated as a seqlock read: each slab's version was even before its
 * states were read and is unchanged after all of them were, and no slab was
 * created meanwhile (t->creations), so every state read (and every absent
 * slab) was current at the instant between the last state load and the
 * first re-check.  The state loads are acquire, so the re-check loads
 * cannot move before them; the writer side is in slab_write_begin/end.
 */
static int scan_window(const mmapper_t *m, enum chunk_op op, struct chunk_range r)
{
    struct {
        const struct slab *slab;
        uint32_t version;
    } seen[WINDOW_SLABS];
    unsigned nseen = 0;
    const struct slab_table *t = &m->table;
    int verdict = 1;

    bool fork_reader = rcu_read_enter();
    uint64_t created = atomic_load(&t->creations);
    for (uintptr_t c = r.first; c < r.end && verdict > 0;) {
        uintptr_t key = c >> SLAB_LOG_CHUNKS;
        uintptr_t stop = min_uptr((key + 1) << SLAB_LOG_CHUNKS, r.end);
        const struct slab *s = slab_table_lookup(t, key);
        if (!s) {
            enum chunk_action a = chunk_action(op, MMAPPER_UNMAPPED);
            verdict = a == ACT_ILLEGAL ? -EINVAL : a == ACT_NONE ? 1 : 0;
            c = stop;   /* a missing slab is Unmapped throughout */
            continue;
        }
        /* Acquire: pairs with slab_write_end's release; the states of the
         * write that made it even are visible below. */
        uint32_t v = atomic_load_explicit(&s->version, memory_order_acquire);
        if ((v & 1) || nseen == WINDOW_SLABS) {
            verdict = 0;   /* a writer is at it: take the locking walk */
            break;
        }
        seen[nseen].slab = s;
        seen[nseen++].version = v;
        for (; c < stop; c++) {
            /* Acquire: pairs with the release in record(); returning 1 for
             * ensure_mapped promises usable memory. */
            unsigned st = atomic_load_explicit(&s->state[c & CHUNK_INDEX_MASK],
                                               memory_order_acquire);
            enum chunk_action a = chunk_action(op, st);
            if (a == ACT_ILLEGAL || a == ACT_CONFLICT) {
                verdict = a == ACT_ILLEGAL ? -EINVAL : -EEXIST;
                break;
            }
            /* A chunk on its way out (CHUNK_LEAVING) is never "already
             * done": the caller must queue behind that transition. */
            if (a != ACT_NONE || (st & CHUNK_LEAVING)) {
                verdict = 0;
                break;
            }
        }
    }
    if (verdict != 0) {
        for (unsigned i = 0; i < nseen; i++)
            if (atomic_load(&seen[i].slab->version) != seen[i].version)
                verdict = 0;
        if (atomic_load(&t->creations) != created)
            verdict = 0;
    }
    rcu_read_exit(fork_reader);
    return verdict;
}

/* ---- the locking walk ----------------------------------------------------- */

struct walk {
    mmapper_t *m;
    enum chunk_op op;
    uintptr_t one;                         /* the window's chunk if it has one, else NO_CHUNK */
    unsigned target;                       /* mmapper_state_t after op */
    const struct mmapper_map_opts *opts;
    struct slab *held, *held_last;         /* locked slabs, ascending */
    uintptr_t run_first, run_len;          /* chunks waiting for one syscall */
    enum chunk_action run_act;
    uintptr_t stopped_at;                  /* on error: first chunk not done */
};

#define NO_CHUNK UINTPTR_MAX
/* lock_slab's answer when a one-chunk window was settled by the lock's
 * holder while we waited: nothing left to do. */
#define SETTLED_BY_HOLDER 1
/* How often a one-chunk call yields and looks before it sleeps on the lock. */
#define SETTLE_YIELDS 16

static void hold(struct walk *w, struct slab *s)
{
    s->held_next = NULL;
    if (w->held_last)
        w->held_last->held_next = s;
    else
        w->held = s;
    w->held_last = s;
}

enum settle_wait { SETTLE_DONE, SETTLE_LOCKED, SETTLE_SLEEP };

/*
 * A one-chunk window whose slab is locked: most often (threads racing
 * over a slab's fresh chunks) the holder is making one system call for a
 * chunk of the same slab, and the lock is free again within a system
 * call's time.  Yield a few times, trying the lock and looking at our chunk
 * (the holder may have settled it), before sleeping on the lock: with more
 * threads than cores, sleeping waiters queue for wake-ups one after
 * another, each a futex call.  (Measured, race-same at 64 threads: polling
 * only while the holder's intent covers our own chunk kept almost none of
 * the gain, 1.76-1.88x the limit baseline against 1.01-1.12x; glibc's
 * adaptive mutex, which spins without yielding, 1.50-1.60x.)
 * s is pinned, so it stays readable even if it dies meanwhile.
 *
 * SETTLE_DONE only when the chunk reads, lock-free, as one op leaves alone,
 * not LEAVING (as in already_done) and not Unmapped.  A slab removed while
 * we wait keeps its chunks Unmapped (it was removed with none live, and
 * nobody writes it afterwards), so only a live slab's record can settle
 * the call, never a dead one's for its successor's chunk.  (Unmapped is
 * what only unmap leaves alone, and unmap takes the lock.)  The acquire
 * load pairs with record()'s release, as a lookup's does: the chunk's
 * memory is there once seen.
 */
static enum settle_wait settle_or_lock(struct walk *w, struct slab *s)
{
    const chunk_state_t *p = &s->state[w->one & CHUNK_INDEX_MASK];
    for (int k = 0; k < SETTLE_YIELDS; k++) {
        sched_yield();
        unsigned st = atomic_load_explicit(p, memory_order_acquire);
        if (st != MMAPPER_UNMAPPED && !(st & CHUNK_LEAVING) &&
            chunk_action(w->op, st) == ACT_NONE)
            return SETTLE_DONE;
        if (pthread_mutex_trylock(&s->lock) == 0)
            return SETTLE_LOCKED;
    }
    return SETTLE_SLEEP;
}

/*
 * Lock the slab of key and add it to the held list, creating it first if
 * `create`; *out = NULL if it does not exist and !create.  Only the lookup,
 * a trylock and a pin happen inside the read-side section; a contended
 * lock is waited for outside it, with the slab pinned.  For a one-chunk
 * window, SETTLED_BY_HOLDER (nothing held) if the holder of a contended
 * lock settled the chunk meanwhile.
 */
static int lock_slab(struct walk *w, uintptr_t key, bool create, struct slab **out)
{
    struct slab_table *t = &w->m->table;
    for (;;) {
        bool fork_reader = rcu_read_enter();
        struct slab *s = slab_table_lookup(t, key);
        if (s && pthread_mutex_trylock(&s->lock) == 0) {
            bool dead = s->dead;
            if (dead)
                pthread_mutex_unlock(&s->lock);   /* removed: look again */
            rcu_read_exit(fork_reader);
            if (dead)
                continue;
            hold(w, s);
            *out = s;
            return 0;
        }
        if (s)
            slab_pin(s);
        rcu_read_exit(fork_reader);
        enum settle_wait wait = SETTLE_SLEEP;
        if (!s) {
            if (!create) {
                *out = NULL;
                return 0;
            }
            int err = slab_table_get_or_create(t, key, &s);   /* pinned */
            if (err)
                return err;
        } else if (w->one != NO_CHUNK && !w->m->block_signals) {
            /* (With block_signals a waiter sleeps at once, as before: its
             * signals stay blocked no longer than the holder's call.) */
            wait = settle_or_lock(w, s);
        }
        if (wait == SETTLE_DONE) {
            slab_unpin(s);
            *out = NULL;
            return SETTLED_BY_HOLDER;
        }
        if (wait == SETTLE_SLEEP)
            pthread_mutex_lock(&s->lock);
        if (s->dead) {
            /* Removed while we waited: the table no longer has it, so the
             * next lookup finds its successor or nothing. */
            pthread_mutex_unlock(&s->lock);
            slab_unpin(s);
            continue;
        }
        /* Locked and live: it cannot be removed, let alone freed, until we
         * unlock it, so the pin is no longer needed. */
        slab_unpin(s);
        hold(w, s);
        *out = s;
        return 0;
    }
}

static struct slab *held_slab(const struct walk *w, uintptr_t key)
{
    struct slab *s = w->held;
    while (s->key != key)
        s = s->held_next;
    return s;
}

/* The held slab after `s` (or the first one) if it is the slab of key. */
static struct slab *held_at(const struct walk *w, struct slab *s, uintptr_t key)
{
    if (s && s->key == key)
        return s;
    s = s ? s->held_next : w->held;
    return s && s->key == key ? s : NULL;
}

/* A slab's version is odd while its lock holder changes states.  Relaxed
 * RMW at the start: every state store that follows is a release (or
 * seq_cst) store, which keeps the odd value before it.  Release at the end:
 * pairs with scan_window's acquire of the even value. */
static void slab_write_begin(struct slab *s)
{
    atomic_fetch_add_explicit(&s->version, 1, memory_order_relaxed);
}

static void slab_write_end(struct slab *s)
{
    atomic_fetch_add_explicit(&s->version, 1, memory_order_release);
}

/* Writing the states of a run, chunk by chunk: the run's slabs are
 * consecutive and held, and each is bracketed by slab_write_begin/end.
 *     struct slab *s = run_begin(w, first);
 *     for (c = first; c < first + n; c++) { s = run_step(s, c); ... }
 *     slab_write_end(s);                                                  */
static struct slab *run_begin(const struct walk *w, uintptr_t first)
{
    struct slab *s = held_slab(w, first >> SLAB_LOG_CHUNKS);
    slab_write_begin(s);
    return s;
}

/* The slab of chunk c, moving on (and closing the previous slab's write)
 * where c starts a slab after the run's first. */
static struct slab *run_step(struct slab *s, uintptr_t c)
{
    if ((c & CHUNK_INDEX_MASK) == 0 && s->key != c >> SLAB_LOG_CHUNKS) {
        slab_write_end(s);
        s = s->held_next;
        slab_write_begin(s);
    }
    return s;
}

/* Store the new state of chunk c (slab s locked) and keep the counts. */
static void record(struct walk *w, struct slab *s, uintptr_t c, unsigned state)
{
    chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
    unsigned old = atomic_load_explicit(p, memory_order_relaxed) & CHUNK_STATE_MASK;
    /* Release: pairs with the acquire loads of lookups and scan_window; the
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
    struct slab *s = run_begin(w, first);
    for (uintptr_t c = first; c < first + n; c++) {
        s = run_step(s, c);
        if (c < first + done) {
            record(w, s, c, w->target);
        } else {
            chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
            /* Release: keeps the odd version before it (the memory never
             * went away, and readers saw this value before). */
            atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) &
                                         CHUNK_STATE_MASK, memory_order_release);
        }
    }
    slab_write_end(s);
}

/* Before access is revoked, Mapped chunks of the run stop reading as Mapped,
 * so that is_mapped() never answers true for memory already gone. */
static void mark_leaving(struct walk *w, uintptr_t first, uintptr_t n)
{
    struct slab *s = run_begin(w, first);
    for (uintptr_t c = first; c < first + n; c++) {
        s = run_step(s, c);
        chunk_state_t *p = &s->state[c & CHUNK_INDEX_MASK];
        unsigned st = atomic_load_explicit(p, memory_order_relaxed);
        /* seq_cst (a full barrier; this is the slow path): the store must
         * be visible to every reader before the syscall that follows takes
         * the memory away, not linger in a store buffer.  (A separate fence
         * would do, but ThreadSanitizer does not model fences.) */
        if (st == MMAPPER_MAPPED)
            atomic_store_explicit(p, (uint8_t)(st | CHUNK_LEAVING), memory_order_seq_cst);
    }
    slab_write_end(s);
}

/* A decommit failed with the old mapping gone: take back, chunk by chunk,
 * what is still free (Quarantined, as asked); a chunk someone else mapped
 * into, or one the kernel refuses, is Unmapped: not ours, never touched. */
static void settle_gone(struct walk *w, uintptr_t first, uintptr_t n)
{
    size_t chunk = (size_t)1 << w->m->chunk_shift;
    struct slab *s = run_begin(w, first);
    for (uintptr_t c = first; c < first + n; c++) {
        s = run_step(s, c);
        bool ours = os_reserve(&w->m->os, chunk_addr(w->m, c), chunk) == 0;
        record(w, s, c, ours ? MMAPPER_QUARANTINED : MMAPPER_UNMAPPED);
    }
    slab_write_end(s);
}

int apply_attrs(struct mm_os *os, void *addr, size_t len, const struct mmapper_map_opts *o)
{
    if (!o)
        return 0;
    int err = os_advise_huge(os, addr, len, o->huge_page);
    return err ? err : os_set_name(os, addr, len, o->name);
}

/* The action's system call over [addr, addr+len), attributes aside.
 * *gone: see os_decommit. */
static int base_syscall(struct walk *w, enum chunk_action act, void *addr, size_t len,
                        bool *gone)
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
        return os_decommit(os, addr, len, (size_t)1 << w->m->chunk_shift, gone);
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
    bool gone = false;
    int err = 0;

    struct slab *intent = held_slab(w, first >> SLAB_LOG_CHUNKS);
    atomic_store_explicit(&intent->intent_first, first, memory_order_relaxed);
    atomic_store_explicit(&intent->intent_act, (uint8_t)act, memory_order_relaxed);
    atomic_store_explicit(&intent->intent_target, (uint8_t)w->target, memory_order_relaxed);
    atomic_store_explicit(&intent->intent_returned, false, memory_order_relaxed);
    atomic_store_explicit(&intent->intent_n, (uint32_t)n, memory_order_release);

    if (act == ACT_COMMIT)
        err = apply_attrs(os, addr, len, w->opts);
    if (!err) {
        if (chunk_action_revokes(act))
            mark_leaving(w, first, n);
        err = base_syscall(w, act, addr, len, &gone);
        done = err ? 0 : n;
        if (err && n > 1 && (act == ACT_COMMIT || act == ACT_PROTECT)) {
            /* mprotect over several VMAs may have changed some before
             * failing.  Redo it chunk by chunk (mprotect is idempotent) to
             * learn exactly which chunks made it; a transient failure is
             * absorbed. */
            for (err = 0; done < n; done++) {
                err = base_syscall(w, act, chunk_addr(w->m, first + done),
                                   (size_t)1 << shift, &gone);
                if (err)
                    break;
            }
        }
    }
    if (!err && (act == ACT_MAP_FRESH || act == ACT_RESERVE) &&
        (err = apply_attrs(os, addr, len, w->opts)) != 0 && os_unmap(os, addr, len) == 0)
        done = 0;
    if (err && gone) {
        /* The old mapping is gone (a failed decommit left a hole): record
         * what each chunk really is now.  A forked child that lands in here
         * settles from its kernel view (the intent has not "returned"). */
        settle_gone(w, first, n);
        atomic_store_explicit(&intent->intent_n, 0, memory_order_release);
        w->stopped_at = first;
        return err;
    }
    /* From here the outcome is known: a child settles as we do. */
    atomic_store_explicit(&intent->intent_done, (uint32_t)done, memory_order_relaxed);
    atomic_store_explicit(&intent->intent_returned, true, memory_order_release);
    settle(w, first, n, done);
    atomic_store_explicit(&intent->intent_n, 0, memory_order_release);
    if (err)
        w->stopped_at = first + done;
    return err;
}

static void release_all(struct walk *w)
{
    struct slab *removed = NULL;
    for (struct slab *s = w->held, *next; s; s = next) {
        next = s->held_next;
        /* A slab left with no live chunk leaves the table (unless too many
         * wait for the reclaimer already). */
        bool gone = s->live == 0 && slab_table_unpublish(&w->m->table, s);
        if (gone) {
            s->held_next = removed;   /* dead: nobody else uses held_next */
            removed = s;
        }
        pthread_mutex_unlock(&s->lock);
    }
    w->held = w->held_last = NULL;
    /* Only now, unlocked, may they be freed (by the reclaimer, after a
     * grace period, never by us). */
    slab_table_retire(&w->m->table, removed);
}

/* Whether a slab appeared for a key of [first_key, last_key] that we found
 * missing (every held slab is in the held list, ascending). */
static bool missing_slab_appeared(const struct walk *w, uintptr_t first_key, uintptr_t last_key)
{
    const struct slab_table *t = &w->m->table;
    const struct slab *h = w->held;
    bool appeared = false;
    bool fork_reader = rcu_read_enter();
    for (uintptr_t key = first_key; key <= last_key && !appeared; key++) {
        if (h && h->key == key) {
            h = h->held_next;
            continue;
        }
        appeared = slab_table_lookup(t, key) != NULL;
    }
    rcu_read_exit(fork_reader);
    return appeared;
}

/*
 * Move every chunk of window r as op says, atomically with respect to other
 * calls:
 *  1. lock every slab of the window in ascending address order (creating
 *     the slabs op needs) and check every chunk; an illegal chunk fails the
 *     call before any system call, with nothing changed.  If a slab we
 *     found missing exists once all are locked, start again: the window's
 *     linearization point is the moment it holds every lock with every
 *     other slab missing, so a slab created meanwhile is either ours or
 *     created after us;
 *  2. walk the chunks, gathering runs that need the same system call, one
 *     call per run (runs span slabs, not gaps without a slab);
 *  3. unlock, removing slabs left empty.
 */
static int walk_window_locked(mmapper_t *m, enum chunk_op op, struct chunk_range r,
                              const struct mmapper_map_opts *o, uintptr_t *stopped_at)
{
    struct walk w = { .m = m, .op = op, .one = r.end - r.first == 1 ? r.first : NO_CHUNK,
                      .target = chunk_op_target(op), .opts = o, .stopped_at = r.first };
    enum chunk_action on_unmapped = chunk_action(op, MMAPPER_UNMAPPED);
    bool creates = on_unmapped != ACT_NONE && on_unmapped != ACT_ILLEGAL;
    uintptr_t first_key = r.first >> SLAB_LOG_CHUNKS, last_key = (r.end - 1) >> SLAB_LOG_CHUNKS;
    int err;

    for (;;) {
        bool missing = false;
        err = 0;
        for (uintptr_t key = first_key; key <= last_key && !err; key++) {
            struct slab *s;
            if ((err = lock_slab(&w, key, creates, &s)) == SETTLED_BY_HOLDER) {
                release_all(&w);   /* holds nothing: one chunk, one slab */
                return 0;
            }
            if (err)
                break;
            if (!s) {
                /* All Unmapped: illegal for op, or nothing to do. */
                err = on_unmapped == ACT_ILLEGAL ? -EINVAL : 0;
                missing = true;
                continue;
            }
            uintptr_t c = key << SLAB_LOG_CHUNKS, stop = c + SLAB_CHUNKS;
            c = c < r.first ? r.first : c;
            stop = stop > r.end ? r.end : stop;
            for (; c < stop && !err; c++) {
                enum chunk_action a = chunk_action(
                    op, atomic_load_explicit(&s->state[c & CHUNK_INDEX_MASK],
                                             memory_order_relaxed));
                if (a == ACT_ILLEGAL || a == ACT_CONFLICT)
                    err = a == ACT_ILLEGAL ? -EINVAL : -EEXIST;
            }
        }
        if (err || !missing || !missing_slab_appeared(&w, first_key, last_key))
            break;
        release_all(&w);
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
    if (err && stopped_at)
        *stopped_at = w.stopped_at;
    return err;
}

/*
 * walk_window_locked, with every signal blocked if the mapper was configured
 * so (block_signals): then a thread never holds a slab lock while it could
 * be stopped by a signal, such as a collector's suspend signal, so a stopped
 * thread never keeps another thread's call waiting for one of our locks,
 * and a thread waiting for a lock waits only for threads running to the end
 * of a system call.  Two rt_sigprocmask calls cost about 0.3 us, a third of
 * a fresh mmap: allocators that stop no world do without.  The table lock is
 * only ever taken inside this, so it is covered too.
 */
static int walk_window(mmapper_t *m, enum chunk_op op, struct chunk_range r,
                       const struct mmapper_map_opts *o, uintptr_t *stopped_at)
{
    if (!m->block_signals)
        return walk_window_locked(m, op, r, o, stopped_at);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = walk_window_locked(m, op, r, o, stopped_at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* ---- ranges far larger than the table ------------------------------------- */

#define SPARSE_BATCH 64

/*
 * unmap over a range far larger than the table (e.g. "everything" at
 * shutdown): visit the slabs the table holds instead of every slab key of
 * the range, so the cost follows what is live, not the size of the range.
 * Slabs are visited in ascending key order, SPARSE_BATCH keys found per
 * short read-side section; each slab's part is its own atomic window.  A
 * slab created concurrently below the keys already visited is missed, as
 * if it was created after this call.
 */
static int unmap_sparse(mmapper_t *m, struct chunk_range r)
{
    uintptr_t next_key = r.first >> SLAB_LOG_CHUNKS, last_key = (r.end - 1) >> SLAB_LOG_CHUNKS;
    for (;;) {
        uintptr_t keys[SPARSE_BATCH];
        unsigned n = 0;
        bool fork_reader = rcu_read_enter();
        const struct slab_array *a = rcu_fetch(&m->table.current);
        for (uintptr_t i = 0; i <= a->mask; i++) {
            const struct slab *s = slab_slot_get(a, i);
            if (!s || s == &slab_tombstone || s->key < next_key || s->key > last_key)
                continue;
            /* Keep the SPARSE_BATCH smallest keys, sorted. */
            if (n == SPARSE_BATCH && s->key >= keys[n - 1])
                continue;
            unsigned j = n < SPARSE_BATCH ? n++ : n - 1;
            for (; j > 0 && keys[j - 1] > s->key; j--)
                keys[j] = keys[j - 1];
            keys[j] = s->key;
        }
        rcu_read_exit(fork_reader);
        for (unsigned j = 0; j < n; j++) {
            uintptr_t first = keys[j] << SLAB_LOG_CHUNKS;
            struct chunk_range part = { first > r.first ? first : r.first,
                                        min_uptr(first + SLAB_CHUNKS, r.end) };
            int err = walk_window(m, OP_UNMAP, part, NULL, NULL);
            if (err)
                return err;
        }
        if (n < SPARSE_BATCH)
            return 0;
        next_key = keys[n - 1] + 1;
    }
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

int walk(mmapper_t *m, enum chunk_op op, struct chunk_range r,
         const struct mmapper_map_opts *o, uintptr_t *stopped_at)
{
    /* Nothing below is a cancellation point, but a caller's OS layer may
     * be: a thread cancelled there would leave slab locks held. */
    struct os_cancel cancel = os_cancel_defer(&m->os);
    int err = 0;
    if (sparse_unmap(m, op, r)) {
        err = unmap_sparse(m, r);
    } else {
        for (uintptr_t c = r.first; c < r.end && !err;) {
            uintptr_t stop = min_uptr(((c >> SLAB_LOG_CHUNKS) + WINDOW_SLABS) << SLAB_LOG_CHUNKS,
                                      r.end);
            struct chunk_range window = { c, stop };
            /* One chunk: transition() has just looked at it. */
            int verdict = stop - c == 1 ? 0 : scan_window(m, op, window);
            if (verdict < 0 && stopped_at)
                *stopped_at = c;   /* nothing of this window changed */
            if (verdict < 0)
                err = verdict;
            else if (verdict == 0)
                err = walk_window(m, op, window, o, stopped_at);
            c = stop;
        }
    }
    os_cancel_restore(cancel);
    return err;
}
