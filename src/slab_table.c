#include "config.h"

#include "slab_table.h"

#include <errno.h>
#include <string.h>

struct slab slab_tombstone = { .key = UINTPTR_MAX };

/* One page holds the first array: an empty mapper stays small. */
#define MIN_LOG_CAPACITY 8

static int array_create(struct slab_table *t, unsigned log_capacity, struct slab_array **out)
{
    size_t capacity = (size_t)1 << log_capacity;
    size_t bytes = sizeof(struct slab_array) + capacity * sizeof(_Atomic(struct slab *));
    struct slab_array *a;
    int err = meta_pages_alloc(t->counters, bytes, (void **)&a);
    if (err)
        return err;
    /* Fresh pages are zero: every slot starts NULL. */
    a->mask = capacity - 1;
    a->hash_shift = 64 - log_capacity;
    a->bytes = bytes;
    a->retire_next = NULL;
    *out = a;
    return 0;
}

int slab_table_init(struct slab_table *t, struct mm_counters *counters)
{
    memset(t, 0, sizeof(*t));
    t->counters = counters;
    struct slab_array *a;
    int err = array_create(t, MIN_LOG_CAPACITY, &a);
    if (err)
        return err;
    atomic_init(&t->current, a);
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->retire_pending, false);
    meta_pool_init(&t->slab_pool, sizeof(struct slab), counters);
    counter_add(&counters->table_capacity, a->mask + 1);
    return 0;
}

/* Writer-side probe (table lock held): the slot holding key, or else the
 * first reusable slot (tombstone or NULL) of its probe sequence. */
static _Atomic(struct slab *) *array_find_slot(struct slab_array *a, uintptr_t key,
                                               struct slab **found)
{
    _Atomic(struct slab *) *reusable = NULL;
    for (uintptr_t i = slab_hash(a, key);; i = (i + 1) & a->mask) {
        /* Relaxed: slots change only under the table lock, which we hold. */
        struct slab *s = atomic_load_explicit(&a->slots[i], memory_order_relaxed);
        if (s == &slab_tombstone) {
            if (!reusable)
                reusable = &a->slots[i];
            continue;
        }
        if (!s || s->key == key) {
            *found = s;
            return s || !reusable ? &a->slots[i] : reusable;
        }
    }
}

/* Rebuild into an array sized for `live + 1` slabs at load <= 1/2, dropping
 * tombstones; the old array is retired, readers still on it see every slab
 * that is live, since slabs are removed only under the lock we hold. */
static int table_rebuild(struct slab_table *t, struct slab_array *old)
{
    unsigned log_capacity = MIN_LOG_CAPACITY;
    while (((size_t)1 << log_capacity) < 2 * (t->live + 1))
        log_capacity++;
    struct slab_array *a;
    int err = array_create(t, log_capacity, &a);
    if (err)
        return err;
    for (uintptr_t i = 0; i <= old->mask; i++) {
        struct slab *s = atomic_load_explicit(&old->slots[i], memory_order_relaxed);
        if (!s || s == &slab_tombstone)
            continue;
        struct slab *dummy;
        /* Not yet published: relaxed stores, the release below orders them. */
        atomic_store_explicit(array_find_slot(a, s->key, &dummy), s, memory_order_relaxed);
    }
    t->used = t->live;
    /* Release: a reader that sees the new array sees its filled slots. */
    rcu_publish(&t->current, a);
    counter_add(&t->counters->table_capacity, a->mask + 1);
    counter_sub(&t->counters->table_capacity, old->mask + 1);
    old->retire_next = t->retired_arrays;
    t->retired_arrays = old;
    atomic_store_explicit(&t->retire_pending, true, memory_order_relaxed);
    return 0;
}

int slab_table_get_or_create(struct slab_table *t, uintptr_t key, struct slab **out)
{
    int err = 0;
    pthread_mutex_lock(&t->lock);
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    struct slab *s;
    _Atomic(struct slab *) *slot = array_find_slot(a, key, &s);
    if (s)
        goto out;   /* another thread created it meanwhile */
    bool takes_null = atomic_load_explicit(slot, memory_order_relaxed) == NULL;
    if (takes_null && 4 * (t->used + 1) > 3 * (a->mask + 1)) {
        if ((err = table_rebuild(t, a)) != 0)
            goto out;
        a = atomic_load_explicit(&t->current, memory_order_relaxed);
        slot = array_find_slot(a, key, &s);
        takes_null = atomic_load_explicit(slot, memory_order_relaxed) == NULL;
    }
    s = meta_pool_alloc(&t->slab_pool);
    if (!s) {
        err = -ENOMEM;
        goto out;
    }
    s->key = key;
    pthread_mutex_init(&s->lock, NULL);
    /* Release: pairs with the acquire in slab_table_lookup; the key, the
     * mutex and the zeroed (Unmapped) states are visible to whoever finds s. */
    atomic_store_explicit(slot, s, memory_order_release);
    t->live++;
    t->used += takes_null;
    counter_add(&t->counters->slabs, 1);
out:
    pthread_mutex_unlock(&t->lock);
    *out = s;
    return err;
}

void slab_table_remove(struct slab_table *t, struct slab *s)
{
    pthread_mutex_lock(&t->lock);
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    struct slab *found;
    _Atomic(struct slab *) *slot = array_find_slot(a, s->key, &found);
    if (found == s) {
        /* Relaxed: the tombstone is static and never written; no data is
         * published by this store. */
        atomic_store_explicit(slot, &slab_tombstone, memory_order_relaxed);
        t->live--;
        counter_sub(&t->counters->slabs, 1);
    }
    /* Shrink a mostly empty array, so that metadata follows the address
     * space in use down as well as up (best effort: on ENOMEM keep it). */
    if (a->mask + 1 > ((uintptr_t)1 << MIN_LOG_CAPACITY) && 8 * t->live < a->mask + 1)
        (void)table_rebuild(t, a);
    s->dead = true;
    s->retire_next = t->retired_slabs;
    t->retired_slabs = s;
    if (++t->retired_count >= SLAB_RECLAIM_BATCH)
        atomic_store_explicit(&t->retire_pending, true, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
}

static void free_retired(struct slab_table *t, struct slab *slabs, struct slab_array *arrays)
{
    while (slabs) {
        struct slab *next = slabs->retire_next;
        pthread_mutex_destroy(&slabs->lock);
        meta_pool_free(&t->slab_pool, slabs);
        slabs = next;
    }
    while (arrays) {
        struct slab_array *next = arrays->retire_next;
        meta_pages_free(t->counters, arrays, arrays->bytes);
        arrays = next;
    }
}

void slab_table_reclaim(struct slab_table *t)
{
    /* Relaxed: a stale false leaves the objects for the next reclaim or for
     * fini; a thread always sees its own retire, so nothing waits forever. */
    if (!atomic_load_explicit(&t->retire_pending, memory_order_relaxed))
        return;
    pthread_mutex_lock(&t->lock);
    struct slab *slabs = t->retired_slabs;
    struct slab_array *arrays = t->retired_arrays;
    t->retired_slabs = NULL;
    t->retired_arrays = NULL;
    t->retired_count = 0;
    atomic_store_explicit(&t->retire_pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
    if (!slabs && !arrays)
        return;
    rcu_wait_for_readers();
    free_retired(t, slabs, arrays);
}

void slab_table_fini(struct slab_table *t)
{
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = atomic_load_explicit(&a->slots[i], memory_order_relaxed);
        if (s && s != &slab_tombstone)
            pthread_mutex_destroy(&s->lock);
    }
    counter_sub(&t->counters->table_capacity, a->mask + 1);
    meta_pages_free(t->counters, a, a->bytes);
    free_retired(t, t->retired_slabs, t->retired_arrays);
    meta_pool_destroy(&t->slab_pool);   /* slabs still live go with their blocks */
    pthread_mutex_destroy(&t->lock);
}
