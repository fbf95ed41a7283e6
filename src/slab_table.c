#include "config.h"

#include "slab_table.h"

#include "reclaim.h"

#include <errno.h>
#include <string.h>

struct slab slab_tombstone = { .key = UINTPTR_MAX };

/* The table lock is taken only inside a walk (walk.c: with every signal
 * blocked when the mapper has block_signals) or by a reclaimer round
 * (signals blocked too), so it is never held by a thread a signal could
 * stop unless the mapper allows that for its slab locks as well. */
static void table_lock(struct slab_table *t)
{
    pthread_mutex_lock(&t->lock);
}

static void table_unlock(struct slab_table *t)
{
    pthread_mutex_unlock(&t->lock);
}

/* The first array: 256 slots of 16 bytes, one page and its header, so
 * that an empty mapper stays small. */
#define MIN_LOG_CAPACITY 8

static int array_create(struct slab_table *t, unsigned log_capacity, struct slab_array **out)
{
    size_t capacity = (size_t)1 << log_capacity;
    size_t bytes = sizeof(struct slab_array) + capacity * sizeof(struct slab_slot);
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
    atomic_init(&t->creations, 0);
    atomic_init(&t->sweep_pending, false);
    pthread_mutex_init(&t->lock, NULL);
    meta_pool_init(&t->slab_pool, sizeof(struct slab), counters);
    counter_add(&counters->table_capacity, a->mask + 1);
    return 0;
}

/* Writer-side probe (table lock held): the slot holding key, or else the
 * first reusable slot (tombstone or NULL) of its probe sequence. */
static struct slab_slot *array_find_slot(struct slab_array *a, uintptr_t key,
                                         struct slab **found)
{
    struct slab_slot *reusable = NULL;
    for (uintptr_t i = slab_hash(a, key);; i = (i + 1) & a->mask) {
        /* Relaxed: slots change only under the table lock, which we hold. */
        struct slab *s = atomic_load_explicit(&a->slots[i].slab, memory_order_relaxed);
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

/* Publish s in slot: the key first, then (release) the pointer, which
 * pairs with the acquire in slab_array_lookup: whoever finds s sees its key,
 * mutex and zeroed (Unmapped) states. */
static void slot_publish(struct slab_slot *slot, struct slab *s)
{
    atomic_store_explicit(&slot->key, s->key, memory_order_relaxed);
    atomic_store_explicit(&slot->slab, s, memory_order_release);
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
        struct slab *s = atomic_load_explicit(&old->slots[i].slab, memory_order_relaxed);
        if (!s || s == &slab_tombstone)
            continue;
        struct slab *dummy;
        /* Not yet published: the release of rcu_publish below orders these. */
        slot_publish(array_find_slot(a, s->key, &dummy), s);
    }
    t->used = t->live;
    /* Release: a reader that sees the new array sees its filled slots. */
    rcu_publish(&t->current, a);
    counter_add(&t->counters->table_capacity, a->mask + 1);
    counter_sub(&t->counters->table_capacity, old->mask + 1);
    old->retire_tag = reclaim_tag();   /* after the unpublish above */
    old->retire_next = t->retired_arrays;
    t->retired_arrays = old;
    reclaim_wake();
    return 0;
}

int slab_table_get_or_create(struct slab_table *t, uintptr_t key, struct slab **out)
{
    int err = 0;
    table_lock(t);
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    struct slab *s;
    struct slab_slot *slot = array_find_slot(a, key, &s);
    if (s)
        goto pin;   /* another thread created it meanwhile */
    bool takes_null = atomic_load_explicit(&slot->slab, memory_order_relaxed) == NULL;
    if (takes_null && 4 * (t->used + 1) > 3 * (a->mask + 1)) {
        if ((err = table_rebuild(t, a)) != 0)
            goto out;
        a = atomic_load_explicit(&t->current, memory_order_relaxed);
        slot = array_find_slot(a, key, &s);
        takes_null = atomic_load_explicit(&slot->slab, memory_order_relaxed) == NULL;
    }
    s = meta_pool_alloc(&t->slab_pool);
    if (!s) {
        err = -ENOMEM;
        goto out;
    }
    s->key = key;
    pthread_mutex_init(&s->lock, NULL);
    slot_publish(slot, s);
    /* Release: a scan that sees the new count after it read the table
     * sees the slab, had it looked again. */
    atomic_fetch_add_explicit(&t->creations, 1, memory_order_release);
    t->live++;
    t->used += takes_null;
    counter_add(&t->counters->slabs, 1);
pin:
    /* Under the table lock: s cannot be removed (that takes this lock)
     * before the pin is there. */
    slab_pin(s);
out:
    table_unlock(t);
    *out = s;
    return err;
}

bool slab_table_unpublish(struct slab_table *t, struct slab *s)
{
    table_lock(t);
    if (t->retired_count >= RETIRE_LIMIT) {
        /* The reclaimer is behind (a reader is stuck): keep s published.
         * Empty, it costs what a retired slab would, and is reused; the
         * reclaimer's sweep removes it once it has caught up. */
        atomic_store_explicit(&t->sweep_pending, true, memory_order_relaxed);
        table_unlock(t);
        return false;
    }
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    struct slab *found;
    struct slab_slot *slot = array_find_slot(a, s->key, &found);
    if (found == s) {
        /* Relaxed: the tombstone is static and never written; no data is
         * published by this store.  The key stays (struct slab_slot). */
        atomic_store_explicit(&slot->slab, &slab_tombstone, memory_order_relaxed);
        t->live--;
        counter_sub(&t->counters->slabs, 1);
    }
    /* Shrink a mostly empty array, so that metadata follows the address
     * space in use down as well as up (best effort: on ENOMEM keep it).
     * Not while an old array waits for a grace period: grow and shrink
     * cycles would retire arrays without bound while a reader is stuck. */
    if (!t->retired_arrays && a->mask + 1 > ((uintptr_t)1 << MIN_LOG_CAPACITY) &&
        8 * t->live < a->mask + 1)
        (void)table_rebuild(t, a);
    s->dead = true;
    t->retired_count++;   /* counts toward RETIRE_LIMIT from now on */
    table_unlock(t);
    return true;
}

void slab_table_retire(struct slab_table *t, struct slab *list)
{
    if (!list)
        return;
    table_lock(t);
    while (list) {
        struct slab *s = list;
        list = s->held_next;
        s->retire_tag = reclaim_tag();   /* after the unpublish */
        s->retire_next = t->retired_slabs;
        atomic_signal_fence(memory_order_seq_cst);   /* whole list at a fork */
        t->retired_slabs = s;
    }
    table_unlock(t);
    reclaim_wake();
}

static void free_slab(struct slab_table *t, struct slab *s)
{
    pthread_mutex_destroy(&s->lock);
    meta_pool_free(&t->slab_pool, s);
}

static void free_array(struct slab_table *t, struct slab_array *a)
{
    meta_pages_free(t->counters, a, a->bytes);
}

/* Remove the empty slabs that RETIRE_LIMIT kept.  Only a reclaimer round
 * runs this, and rounds never overlap, so nothing we look at is freed
 * under us (only rounds free).  A slab whose lock is busy is skipped: its
 * holder removes it itself if it leaves it empty. */
static bool sweep(struct slab_table *t)
{
    if (!atomic_exchange_explicit(&t->sweep_pending, false, memory_order_relaxed))
        return false;
    struct slab_array *a = rcu_fetch(&t->current);
    struct slab *removed = NULL;
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = slab_slot_get(a, i);
        if (!s || s == &slab_tombstone || pthread_mutex_trylock(&s->lock) != 0)
            continue;
        bool gone = !s->dead && s->live == 0 && slab_table_unpublish(t, s);
        if (gone) {
            s->held_next = removed;
            removed = s;
        }
        pthread_mutex_unlock(&s->lock);
    }
    slab_table_retire(t, removed);
    return removed != NULL;
}

int slab_table_free_due(struct slab_table *t)
{
    int result = 0;
    struct slab *slabs = NULL;
    struct slab_array *arrays = NULL;
    pthread_mutex_lock(&t->lock);
    for (struct slab **p = &t->retired_slabs; *p;) {
        struct slab *s = *p;
        /* Acquire on pins: pairs with slab_unpin's release; the writer that
         * waited for s is done with it. */
        if (reclaim_due(s->retire_tag) &&
            atomic_load_explicit(&s->pins, memory_order_acquire) == 0) {
            *p = s->retire_next;
            t->retired_count--;
            s->retire_next = slabs;
            slabs = s;
        } else {
            p = &s->retire_next;
            result |= SLAB_TABLE_MORE;
        }
    }
    for (struct slab_array **p = &t->retired_arrays; *p;) {
        struct slab_array *a = *p;
        if (reclaim_due(a->retire_tag)) {
            *p = a->retire_next;
            a->retire_next = arrays;
            arrays = a;
        } else {
            p = &a->retire_next;
            result |= SLAB_TABLE_MORE;
        }
    }
    bool catch_up = t->retired_count < RETIRE_LIMIT / 2;
    pthread_mutex_unlock(&t->lock);
    /* Freeing may munmap, which waits for the kernel's mmap_lock behind any
     * long system call of another thread: never with the table lock held,
     * which every slab creation and removal needs. */
    for (struct slab *s = slabs, *next; s; s = next) {
        next = s->retire_next;
        free_slab(t, s);
        result |= SLAB_TABLE_FREED;
    }
    for (struct slab_array *a = arrays, *next; a; a = next) {
        next = a->retire_next;
        free_array(t, a);
        result |= SLAB_TABLE_FREED;
    }
    if (catch_up && sweep(t))
        result |= SLAB_TABLE_MORE;
    return result;
}

void slab_table_fini(struct slab_table *t)
{
    struct slab_array *a = atomic_load_explicit(&t->current, memory_order_relaxed);
    for (uintptr_t i = 0; i <= a->mask; i++) {
        struct slab *s = atomic_load_explicit(&a->slots[i].slab, memory_order_relaxed);
        if (s && s != &slab_tombstone)
            pthread_mutex_destroy(&s->lock);
    }
    counter_sub(&t->counters->table_capacity, a->mask + 1);
    meta_pages_free(t->counters, a, a->bytes);
    for (struct slab *s = t->retired_slabs, *next; s; s = next) {
        next = s->retire_next;
        free_slab(t, s);
    }
    for (struct slab_array *r = t->retired_arrays, *next; r; r = next) {
        next = r->retire_next;
        free_array(t, r);
    }
    meta_pool_destroy(&t->slab_pool);   /* slabs still live go with their blocks */
    pthread_mutex_destroy(&t->lock);
}
