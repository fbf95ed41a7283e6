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
 *    with release order.  Removed slabs and old arrays go on a retire list
 *    and are freed by slab_table_reclaim() after a grace period.
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
    unsigned live;               /* chunks not Unmapped; under lock */
    bool dead;                   /* removed from the table; under lock */
    struct slab *held_next;      /* the locking walker's list; under lock */
    struct slab *retire_next;    /* under the table lock */
    chunk_state_t state[SLAB_CHUNKS];
};

struct slab_array {
    uintptr_t mask;              /* capacity - 1 */
    unsigned hash_shift;         /* 64 - log2(capacity) */
    size_t bytes;
    struct slab_array *retire_next;
    _Atomic(struct slab *) slots[];
};

struct slab_table {
    _Atomic(struct slab_array *) current;   /* read by every lookup */

    /* Writer side, on its own cache lines. */
    _Alignas(64) pthread_mutex_t lock;
    size_t live, used;           /* slabs; slabs + tombstones */
    struct slab *retired_slabs;
    struct slab_array *retired_arrays;
    size_t retired_count;        /* slabs in retired_slabs */
    atomic_bool retire_pending;
    struct meta_pool slab_pool;
    struct mm_counters *counters;
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
 * Acquire on both loads pairs with the release stores that publish an array
 * and a slab, so their contents are initialised when seen.
 */
static inline struct slab *slab_table_lookup(const struct slab_table *t, uintptr_t key)
{
    const struct slab_array *a = rcu_fetch((_Atomic(struct slab_array *) *)&t->current);
    for (uintptr_t i = slab_hash(a, key);; i = (i + 1) & a->mask) {
        struct slab *s = atomic_load_explicit((_Atomic(struct slab *) *)&a->slots[i],
                                              memory_order_acquire);
        if (!s || s->key == key)
            return s;
    }
}

int slab_table_init(struct slab_table *t, struct mm_counters *counters);
/* Free every slab, array and retired object.  No concurrent users. */
void slab_table_fini(struct slab_table *t);

/* The slab for key, created (all chunks Unmapped) if missing.  Inside an RCU
 * read-side section; may hold slab locks, not the table lock. -ENOMEM. */
int slab_table_get_or_create(struct slab_table *t, uintptr_t key, struct slab **out);

/* Unpublish s (its lock held, s->live == 0) and retire it.  Lookups that
 * already found it may still use it until their read-side section ends;
 * writers see s->dead under its lock and look up again. */
void slab_table_remove(struct slab_table *t, struct slab *s);

/* Free what was retired, after a grace period, once there is enough of it
 * (an array, or SLAB_RECLAIM_BATCH slabs) to be worth the wait: a grace
 * period costs microseconds to milliseconds.  Call outside any read-side
 * section and holding no lock. */
#define SLAB_RECLAIM_BATCH 16
void slab_table_reclaim(struct slab_table *t);

#endif
