/*
 * The slab table: finds the slab (the array of chunk states) that covers an
 * address.  An open-addressing hash table of slab pointers, keyed by slab
 * index (chunk index >> SLAB_LOG_CHUNKS), published and read through RCU:
 *
 *  - Readers (slab_table_lookup, inline: the hot path) run inside an RCU
 *    read-side section and make no store and no read-modify-write.
 *  - Writers (create, remove, grow) serialise on table->lock.  A new slab is
 *    fully initialised before its pointer is stored with release order; a
 *    removed slab's slot becomes a tombstone; a grown array is published
 *    with release order.  Removed slabs and old arrays go on a retire list,
 *    tagged with the grace period they wait for, and the reclaimer thread
 *    (reclaim.c) frees them: no caller ever waits for readers.
 *  - The array always keeps a NULL slot (load factor, tombstones included,
 *    at most 3/4), so a probe ends.
 */
#ifndef MMAPPER_SLAB_TABLE_H
#define MMAPPER_SLAB_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunk_state.h"
#include "meta_alloc.h"
#include "rcu.h"
#include "stats.h"

#define SLAB_LOG_CHUNKS 8
#define SLAB_CHUNKS ((uintptr_t)1 << SLAB_LOG_CHUNKS)

struct slab {
    uintptr_t key;               /* immutable once published */
    /* Writers of state[] hold lock; lock is taken only around transitions
     * that have work to do, never by readers. */
    pthread_mutex_t lock;
    /* Seqcount over state[]: odd while the lock holder changes states, so a
     * lock-free reader of several chunks can tell that what it read was
     * current all at once (mapper.c, scan()). */
    _Atomic uint32_t version;
    /* Writers waiting for lock outside any read-side section: the slab is
     * not freed while pinned, even once dead (slab_table_free_due). */
    _Atomic uint32_t pins;
    unsigned live;               /* chunks not Unmapped; under lock */
    bool dead;                   /* removed from the table; under lock */
    struct slab *held_next;      /* the locking walker's list; under lock */
    struct slab *retire_next;    /* under the table lock */
    uint64_t retire_tag;         /* reclaim_tag() when retired */
    /* The run whose system call the lock holder is making, kept in the
     * run's first slab from before the call until its states are recorded:
     * a forked child learns from it which chunks the kernel may hold
     * differently from their record (fork.c).  Only the lock holder writes
     * it, and only a child reads it, after fork() copied the memory: the
     * stores need program order only (release on the last ones). */
    _Atomic uintptr_t intent_first;
    _Atomic uint32_t intent_n;            /* 0: no call in flight */
    _Atomic uint32_t intent_done;         /* chunks done, once returned */
    _Atomic uint8_t intent_act;           /* enum chunk_action */
    _Atomic uint8_t intent_target;        /* mmapper_state_t */
    _Atomic bool intent_returned;         /* the system calls have returned */
    chunk_state_t state[SLAB_CHUNKS];
};

/*
 * A slot holds the slab's key beside the pointer, so that a probe passes
 * over other keys' slots without touching their slabs (a lookup that misses
 * reads one cache line of slots, no slab).  Writers (table lock held) store
 * the key, then publish the pointer with release; removal replaces the
 * pointer by the tombstone and leaves the key; a tombstone slot may be
 * reused for another key.  So a reader's key may be stale or newer than
 * the pointer it read: it only filters, and a match is confirmed on the
 * slab's own immutable key.
 */
struct slab_slot {
    _Atomic uintptr_t key;
    _Atomic(struct slab *) slab;
};

struct slab_array {
    uintptr_t mask;              /* capacity - 1 */
    unsigned hash_shift;         /* 64 - log2(capacity) */
    size_t bytes;
    struct slab_array *retire_next;
    uint64_t retire_tag;
    struct slab_slot slots[];
};

/* Retired slabs not yet freed, per table, at most (about 400 KiB): past it
 * an empty slab simply stays in the table, to be reused by the next
 * transition there or removed by the reclaimer's sweep once it has caught
 * up.  So a reader stuck forever (a stopped thread) costs a bounded amount
 * of memory.  Arrays are retired on growth only while one is pending (no
 * shrinking), so they sum to less than the current array. */
#define RETIRE_LIMIT 1024

struct slab_table {
    _Atomic(struct slab_array *) current;   /* read by every lookup */
    /* Bumped when a slab is created: a lock-free reader of several slabs
     * that saw the same count before and after saw no slab appear. */
    _Atomic uint64_t creations;

    /* Writer side, on its own cache lines. */
    _Alignas(64) pthread_mutex_t lock;
    size_t live, used;           /* slabs; slabs + tombstones */
    struct slab *retired_slabs;
    struct slab_array *retired_arrays;
    size_t retired_count;        /* slabs unpublished and not yet freed */
    atomic_bool sweep_pending;   /* an empty slab stayed (RETIRE_LIMIT) */
    struct meta_pool slab_pool;
    struct mm_counters *counters;
    struct slab_table *reclaim_next;   /* reclaim.c's registry */
};

/* Never a real key (keys are < 2^57 >> 12), so probes simply pass over it. */
extern struct slab slab_tombstone;

static inline uintptr_t slab_hash(const struct slab_array *a, uintptr_t key)
{
    /* Fibonacci hashing: neighbouring slabs land far apart. */
    return (uintptr_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> a->hash_shift);
}

/*
 * The slab for key, or NULL if none: every chunk of it is Unmapped.  Call
 * inside an RCU read-side section; the slab stays valid until its end.
 * Acquire on the array's load (slab_table_array) and on every slot's pairs
 * with the release stores that publish an array and a slab, so their
 * contents are initialised when seen.  The first probe is written out: at
 * a load factor of at most 3/4 it nearly always decides, and the compiler
 * then lays a hit out without a jump back into a loop (48 instructions per
 * mmapper_is_mapped instead of 49).
 */
static inline struct slab *slab_array_lookup(const struct slab_array *a, uintptr_t key)
{
    uintptr_t i = slab_hash(a, key);
    struct slab *s = atomic_load_explicit((_Atomic(struct slab *) *)&a->slots[i].slab,
                                          memory_order_acquire);
    while (__builtin_expect(s && s->key != key, 0)) {
        i = (i + 1) & a->mask;
        s = atomic_load_explicit((_Atomic(struct slab *) *)&a->slots[i].slab,
                                 memory_order_acquire);
    }
    return s;
}

/* The same, passing over other keys' slots on the slot's key alone (no
 * load from their slabs): for batches, whose probes are mostly misses and
 * whose slab loads would otherwise queue behind each other.  A single
 * lookup is cheaper with the plain probe above, where the first slot is
 * nearly always the one. */
static inline struct slab *slab_array_lookup_filtered(const struct slab_array *a, uintptr_t i,
                                                      uintptr_t key)
{
    for (;; i = (i + 1) & a->mask) {
        struct slab_slot *slot = (struct slab_slot *)&a->slots[i];
        struct slab *s = atomic_load_explicit(&slot->slab, memory_order_acquire);
        if (!s)
            return NULL;
        /* Relaxed: only a filter (see struct slab_slot); the slab's key,
         * published with it, decides. */
        if (atomic_load_explicit(&slot->key, memory_order_relaxed) == key && s->key == key)
            return s;
    }
}

/* The slab pointer of slot i (tombstone or NULL included), for walks over
 * every slot.  Acquire: pairs with the publishing release store. */
static inline struct slab *slab_slot_get(const struct slab_array *a, uintptr_t i)
{
    return atomic_load_explicit((_Atomic(struct slab *) *)&a->slots[i].slab,
                                memory_order_acquire);
}

/* The published array: valid until the end of the read-side section (an
 * array replaced meanwhile is freed only after a grace period, and still
 * holds every slab that existed when it was replaced). */
static inline const struct slab_array *slab_table_array(const struct slab_table *t)
{
    return rcu_fetch((_Atomic(struct slab_array *) *)&t->current);
}

static inline struct slab *slab_table_lookup(const struct slab_table *t, uintptr_t key)
{
    return slab_array_lookup(slab_table_array(t), key);
}

int slab_table_init(struct slab_table *t, struct mm_counters *counters);
/* Free every slab, array and retired object.  No concurrent users, and
 * unregistered from the reclaimer. */
void slab_table_fini(struct slab_table *t);

/* The slab for key, created (all chunks Unmapped) if missing, and pinned:
 * the caller unpins it (slab_unpin) once it holds its lock or is done with
 * it.  Called outside any read-side section.  -ENOMEM. */
int slab_table_get_or_create(struct slab_table *t, uintptr_t key, struct slab **out);

static inline void slab_pin(struct slab *s)
{
    /* Relaxed: the pin is taken inside a read-side section (or under the
     * table lock); the grace period (or that lock) orders it before the
     * reclaimer's check. */
    atomic_fetch_add_explicit(&s->pins, 1, memory_order_relaxed);
}

static inline void slab_unpin(struct slab *s)
{
    /* Release: our last use of s happens before the reclaimer's acquire
     * load of pins that lets it free s. */
    atomic_fetch_sub_explicit(&s->pins, 1, memory_order_release);
}

/* Unpublish s (its lock held, s->live == 0) and mark it dead, unless
 * RETIRE_LIMIT slabs already wait for the reclaimer: then s stays, and
 * false is returned.  Lookups that already found it may still use it until
 * their read-side section ends; writers see s->dead under its lock and
 * look up again.  The caller unlocks s, then hands it to
 * slab_table_retire(): once retired it may be freed at any moment, so it
 * must not be retired while its lock is still held. */
bool slab_table_unpublish(struct slab_table *t, struct slab *s);
/* Retire a list of unpublished, unlocked slabs (linked through held_next)
 * and wake the reclaimer.  Never waits for readers. */
void slab_table_retire(struct slab_table *t, struct slab *list);

/* The reclaimer's part (one reclaimer round at a time): free what is due
 * (grace period over, not pinned), then, if empty slabs were kept because
 * of RETIRE_LIMIT, remove them now.  Returns SLAB_TABLE_FREED if it freed
 * something, SLAB_TABLE_MORE if retired objects remain. */
#define SLAB_TABLE_FREED 1
#define SLAB_TABLE_MORE 2
int slab_table_free_due(struct slab_table *t);

#endif
