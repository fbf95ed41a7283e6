/*
 * Metadata memory without malloc: our callers are malloc implementations, so
 * every byte of metadata comes from mmap.  Large objects (the mapper, hash
 * table arrays) take whole pages; small fixed-size objects (slabs) come from
 * a pool of size-aligned blocks, each with its own free list, so a block
 * whose objects are all free can go back to the kernel.
 */
#ifndef MMAPPER_META_ALLOC_H
#define MMAPPER_META_ALLOC_H

#include <pthread.h>
#include <stddef.h>

#include "stats.h"

/* Page-granular metadata; both count into counters->metadata_bytes. */
int meta_pages_alloc(struct mm_counters *counters, size_t bytes, void **out);
void meta_pages_free(struct mm_counters *counters, void *p, size_t bytes);
size_t meta_pages_round(size_t bytes);

struct meta_pool_block;

struct meta_pool {
    pthread_mutex_t lock;
    size_t object_size;
    struct meta_pool_block *blocks;   /* every block, doubly linked */
    struct meta_pool_block *avail;    /* blocks with a free object */
    unsigned empty_blocks;            /* blocks with every object free */
    struct mm_counters *counters;
};

void meta_pool_init(struct meta_pool *pool, size_t object_size, struct mm_counters *counters);
/* A zero-filled object, or NULL when the kernel refuses a block. */
void *meta_pool_alloc(struct meta_pool *pool);
void meta_pool_free(struct meta_pool *pool, void *object);
/* Unmap every block; objects still allocated are gone too. */
void meta_pool_destroy(struct meta_pool *pool);

#endif
