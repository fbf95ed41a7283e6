#include "config.h"

#include "meta_alloc.h"

#include <stdint.h>
#include <string.h>

#include "os.h"

/* Blocks of 4 pages: one mmap (and one VMA at worst) per ~48 slabs, while an
 * empty mapper needs none. */
#define POOL_BLOCK_PAGES 4

struct meta_pool_block {
    struct meta_pool_block *next;
    size_t bytes;
};

struct meta_pool_free {
    struct meta_pool_free *next;
};

size_t meta_pages_round(size_t bytes)
{
    size_t page = os_page_size();
    return (bytes + page - 1) & ~(page - 1);
}

int meta_pages_alloc(struct mm_counters *counters, size_t bytes, void **out)
{
    bytes = meta_pages_round(bytes);
    int err = os_meta_map(bytes, out);
    if (!err)
        counter_add(&counters->metadata_bytes, bytes);
    return err;
}

void meta_pages_free(struct mm_counters *counters, void *p, size_t bytes)
{
    bytes = meta_pages_round(bytes);
    os_meta_unmap(p, bytes);
    counter_sub(&counters->metadata_bytes, bytes);
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

void meta_pool_init(struct meta_pool *pool, size_t object_size, struct mm_counters *counters)
{
    pthread_mutex_init(&pool->lock, NULL);
    /* 64-byte alignment keeps each slab's hot header on its own cache line. */
    pool->object_size = align_up(object_size, 64);
    pool->blocks = NULL;
    pool->free_list = NULL;
    pool->counters = counters;
}

static int pool_grow(struct meta_pool *pool)
{
    size_t bytes = POOL_BLOCK_PAGES * os_page_size();
    size_t header = align_up(sizeof(struct meta_pool_block), 64);
    if (bytes < header + pool->object_size)
        bytes = meta_pages_round(header + pool->object_size);
    void *mem;
    int err = meta_pages_alloc(pool->counters, bytes, &mem);
    if (err)
        return err;
    struct meta_pool_block *block = mem;
    block->bytes = bytes;
    block->next = pool->blocks;
    pool->blocks = block;
    for (size_t off = header; off + pool->object_size <= bytes; off += pool->object_size) {
        struct meta_pool_free *obj = (void *)((char *)mem + off);
        obj->next = pool->free_list;
        pool->free_list = obj;
    }
    return 0;
}

void *meta_pool_alloc(struct meta_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    struct meta_pool_free *obj = pool->free_list;
    if (!obj && pool_grow(pool) == 0)
        obj = pool->free_list;
    if (obj)
        pool->free_list = obj->next;
    pthread_mutex_unlock(&pool->lock);
    if (obj)
        memset(obj, 0, pool->object_size);
    return obj;
}

void meta_pool_free(struct meta_pool *pool, void *object)
{
    struct meta_pool_free *obj = object;
    pthread_mutex_lock(&pool->lock);
    obj->next = pool->free_list;
    pool->free_list = obj;
    pthread_mutex_unlock(&pool->lock);
}

void meta_pool_destroy(struct meta_pool *pool)
{
    struct meta_pool_block *block = pool->blocks;
    while (block) {
        struct meta_pool_block *next = block->next;
        meta_pages_free(pool->counters, block, block->bytes);
        block = next;
    }
    pool->blocks = NULL;
    pool->free_list = NULL;
    pthread_mutex_destroy(&pool->lock);
}
