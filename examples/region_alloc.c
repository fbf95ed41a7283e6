/*
 * A chunked bump allocator on mmapper; see region_alloc.h.
 *
 * Each chunk has a reference count: one per live object, plus one for the
 * thread allocating from it (its "owner").  Only the owner adds references;
 * anyone drops them.  Whoever drops the last one recycles the chunk:
 * decommit, then push on the free list.  Because the owner's reference keeps
 * the count above zero while objects come and go, a chunk is recycled
 * exactly once, and never while a thread may still bump-allocate in it.
 */
#ifdef HAVE_CONFIG_H   /* built in the tree; standalone: -D_GNU_SOURCE */
#include "config.h"
#endif

#include "region_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define OBJECT_ALIGN 16u

struct region {
    mmapper_t *m;
    uintptr_t base;
    size_t chunk_bytes;
    unsigned chunk_shift;
    uint32_t nchunks;
    _Atomic uint32_t *refs;            /* per chunk, see above */
    /* Next never-used chunk.  Relaxed: it only hands out distinct indices;
     * the chunk's memory is published by mmapper_ensure_mapped. */
    _Atomic uint64_t cursor;
    pthread_mutex_t free_lock;         /* guards free_head and next_free */
    uint32_t free_head;                /* decommitted chunks, LIFO */
    uint32_t *next_free;
    /* Statistics only: relaxed. */
    _Atomic uint64_t in_use, fresh_taken, recycled, decommit_failures;
};

static void stat_add(_Atomic uint64_t *c, int64_t d)
{
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

static void *chunk_addr(const struct region *r, uint32_t c)
{
    return (void *)(r->base + ((uintptr_t)c << r->chunk_shift));
}

int region_create(mmapper_t *m, size_t heap_bytes, struct region **out)
{
    size_t chunk = mmapper_granularity(m);
    if (!chunk || !out || heap_bytes == 0 || heap_bytes % chunk ||
        heap_bytes / chunk >= REGION_NO_CHUNK)
        return -EINVAL;
    struct region *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->m = m;
    r->chunk_bytes = chunk;
    r->chunk_shift = (unsigned)__builtin_ctzl(chunk);
    r->nchunks = (uint32_t)(heap_bytes / chunk);
    r->refs = calloc(r->nchunks, sizeof(*r->refs));
    r->next_free = calloc(r->nchunks, sizeof(*r->next_free));
    r->free_head = REGION_NO_CHUNK;
    pthread_mutex_init(&r->free_lock, NULL);
    void *heap = NULL;
    int err = r->refs && r->next_free ? mmapper_quarantine_anywhere(m, heap_bytes, NULL, &heap)
                                      : -ENOMEM;
    if (err) {
        free(r->refs);
        free(r->next_free);
        free(r);
        return err;
    }
    r->base = (uintptr_t)heap;
    *out = r;
    return 0;
}

int region_destroy(struct region *r)
{
    int err = mmapper_unmap(r->m, (void *)r->base, (size_t)r->nchunks << r->chunk_shift);
    pthread_mutex_destroy(&r->free_lock);
    free(r->refs);
    free(r->next_free);
    free(r);
    return err;
}

void *region_heap_start(const struct region *r)
{
    return (void *)r->base;
}

size_t region_heap_bytes(const struct region *r)
{
    return (size_t)r->nchunks << r->chunk_shift;
}

static void push_free(struct region *r, uint32_t c)
{
    pthread_mutex_lock(&r->free_lock);
    r->next_free[c] = r->free_head;
    r->free_head = c;
    pthread_mutex_unlock(&r->free_lock);
}

/* A recycled chunk first (its address space is already ours and warm in
 * mmapper's table), else a fresh one; mapped on the way out. */
static int take_chunk(struct region *r, uint32_t *out)
{
    pthread_mutex_lock(&r->free_lock);
    uint32_t c = r->free_head;
    if (c != REGION_NO_CHUNK)
        r->free_head = r->next_free[c];
    pthread_mutex_unlock(&r->free_lock);
    if (c == REGION_NO_CHUNK) {
        uint64_t i = atomic_fetch_add_explicit(&r->cursor, 1, memory_order_relaxed);
        if (i >= r->nchunks)
            return -ENOMEM;
        c = (uint32_t)i;
        stat_add(&r->fresh_taken, 1);
    }
    int err = mmapper_ensure_mapped(r->m, chunk_addr(r, c), r->chunk_bytes, NULL);
    if (err) {
        push_free(r, c);   /* still Quarantined: fine for the next taker */
        return err;
    }
    /* Relaxed: nobody else can reach a chunk with no owner and no object. */
    atomic_store_explicit(&r->refs[c], 1, memory_order_relaxed);
    stat_add(&r->in_use, 1);
    *out = c;
    return 0;
}

static void recycle(struct region *r, uint32_t c)
{
    /* A failed decommit leaves the chunk Mapped; reuse does not need zeroes,
     * so it still goes on the free list. */
    if (mmapper_decommit(r->m, chunk_addr(r, c), r->chunk_bytes) != 0)
        stat_add(&r->decommit_failures, 1);
    stat_add(&r->in_use, -1);
    stat_add(&r->recycled, 1);
    push_free(r, c);
}

static void unref(struct region *r, uint32_t c)
{
    /* Acq_rel: every thread's last access to the chunk's objects happens
     * before the decommit done by whoever drops the last reference. */
    if (atomic_fetch_sub_explicit(&r->refs[c], 1, memory_order_acq_rel) == 1)
        recycle(r, c);
}

void region_thread_init(struct region *r, struct region_thread *t)
{
    *t = (struct region_thread){ .r = r, .chunk = REGION_NO_CHUNK };
}

void region_thread_finish(struct region_thread *t)
{
    if (t->chunk != REGION_NO_CHUNK)
        unref(t->r, t->chunk);
    t->chunk = REGION_NO_CHUNK;
}

void *region_alloc(struct region_thread *t, size_t bytes)
{
    struct region *r = t->r;
    size_t n = (bytes + OBJECT_ALIGN - 1) & ~(size_t)(OBJECT_ALIGN - 1);
    if (bytes == 0 || n > r->chunk_bytes)
        return NULL;
    if (t->chunk == REGION_NO_CHUNK || t->end - t->bump < n) {
        uint32_t c = t->chunk;
        /* Acquire: pairs with the release in unref(); only the owner's
         * reference left means every object is gone, so start over in place
         * rather than pay a decommit and a map. */
        if (c == REGION_NO_CHUNK ||
            atomic_load_explicit(&r->refs[c], memory_order_acquire) != 1) {
            region_thread_finish(t);
            if (take_chunk(r, &c) != 0)
                return NULL;
            t->chunk = c;
        }
        t->bump = (uintptr_t)chunk_addr(r, c);
        t->end = t->bump + r->chunk_bytes;
    }
    void *p = (void *)t->bump;
    t->bump += n;
    /* Relaxed: the owner's reference keeps the count above zero. */
    atomic_fetch_add_explicit(&r->refs[t->chunk], 1, memory_order_relaxed);
    return p;
}

void region_free(struct region *r, void *p)
{
    unref(r, (uint32_t)(((uintptr_t)p - r->base) >> r->chunk_shift));
}

bool region_contains(const struct region *r, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a - r->base < ((uintptr_t)r->nchunks << r->chunk_shift) && mmapper_is_mapped(r->m, p);
}

void region_get_stats(const struct region *r, struct region_stats *out)
{
    *out = (struct region_stats){
        .chunks_total = r->nchunks,
        .chunks_in_use = atomic_load_explicit(&r->in_use, memory_order_relaxed),
        .chunks_fresh_taken = atomic_load_explicit(&r->fresh_taken, memory_order_relaxed),
        .chunks_recycled = atomic_load_explicit(&r->recycled, memory_order_relaxed),
        .decommit_failures = atomic_load_explicit(&r->decommit_failures, memory_order_relaxed),
    };
}
