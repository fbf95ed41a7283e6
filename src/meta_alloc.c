#include "config.h"

#include "meta_alloc.h"

#include <stdint.h>
#include <string.h>

#include "os.h"

/* 16 KiB blocks, aligned to their size so an object finds its block by
 * masking its address: ~40 slabs a block, and an empty mapper needs none. */
#define POOL_BLOCK_BYTES ((size_t)16 << 10)

struct meta_pool_block {
    struct meta_pool_block *next, *prev;             /* pool->blocks */
    struct meta_pool_block *avail_next, *avail_prev; /* pool->avail */
    struct meta_pool_free *free_list;
    unsigned free, capacity;
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

static size_t header_bytes(void)
{
    return align_up(sizeof(struct meta_pool_block), 64);
}

void meta_pool_init(struct meta_pool *pool, size_t object_size, struct mm_counters *counters)
{
    pthread_mutex_init(&pool->lock, NULL);
    /* 64-byte alignment keeps each object's hot header on its own cache line. */
    pool->object_size = align_up(object_size, 64);
    pool->blocks = NULL;
    pool->avail = NULL;
    pool->empty_blocks = 0;
    pool->counters = counters;
}

static void avail_push(struct meta_pool *pool, struct meta_pool_block *b)
{
    b->avail_prev = NULL;
    b->avail_next = pool->avail;
    if (pool->avail)
        pool->avail->avail_prev = b;
    pool->avail = b;
}

static void avail_remove(struct meta_pool *pool, struct meta_pool_block *b)
{
    if (b->avail_prev)
        b->avail_prev->avail_next = b->avail_next;
    else
        pool->avail = b->avail_next;
    if (b->avail_next)
        b->avail_next->avail_prev = b->avail_prev;
}

/* A new block, aligned to its size: map twice the size and trim. */
static struct meta_pool_block *block_create(struct meta_pool *pool)
{
    void *raw;
    if (os_meta_map(2 * POOL_BLOCK_BYTES, &raw) != 0)
        return NULL;
    uintptr_t base = ((uintptr_t)raw + POOL_BLOCK_BYTES - 1) & ~(POOL_BLOCK_BYTES - 1);
    size_t head = base - (uintptr_t)raw;
    if (head)
        os_meta_unmap(raw, head);
    os_meta_unmap((void *)(base + POOL_BLOCK_BYTES), POOL_BLOCK_BYTES - head);
    counter_add(&pool->counters->metadata_bytes, POOL_BLOCK_BYTES);

    struct meta_pool_block *b = (void *)base;
    b->free_list = NULL;
    b->free = b->capacity = 0;
    for (size_t off = header_bytes(); off + pool->object_size <= POOL_BLOCK_BYTES;
         off += pool->object_size) {
        struct meta_pool_free *obj = (void *)(base + off);
        obj->next = b->free_list;
        b->free_list = obj;
        b->capacity++;
    }
    b->free = b->capacity;
    b->prev = NULL;
    b->next = pool->blocks;
    if (pool->blocks)
        pool->blocks->prev = b;
    pool->blocks = b;
    avail_push(pool, b);
    pool->empty_blocks++;
    return b;
}

static void block_unlink(struct meta_pool *pool, struct meta_pool_block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        pool->blocks = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

static void block_unmap(struct meta_pool *pool, struct meta_pool_block *b)
{
    os_meta_unmap(b, POOL_BLOCK_BYTES);
    counter_sub(&pool->counters->metadata_bytes, POOL_BLOCK_BYTES);
}

void *meta_pool_alloc(struct meta_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    struct meta_pool_block *b = pool->avail;
    if (!b)
        b = block_create(pool);
    struct meta_pool_free *obj = NULL;
    if (b) {
        if (b->free == b->capacity)
            pool->empty_blocks--;
        obj = b->free_list;
        b->free_list = obj->next;
        if (--b->free == 0)
            avail_remove(pool, b);
    }
    pthread_mutex_unlock(&pool->lock);
    if (obj)
        memset(obj, 0, pool->object_size);
    return obj;
}

void meta_pool_free(struct meta_pool *pool, void *object)
{
    struct meta_pool_free *obj = object;
    struct meta_pool_block *b = (void *)((uintptr_t)object & ~(POOL_BLOCK_BYTES - 1));
    struct meta_pool_block *unmap = NULL;
    pthread_mutex_lock(&pool->lock);
    obj->next = b->free_list;
    b->free_list = obj;
    if (b->free++ == 0)
        avail_push(pool, b);
    if (b->free == b->capacity) {
        /* Keep one empty block so that a slab created and removed over and
         * over does not map and unmap a block each time. */
        if (pool->empty_blocks > 0) {
            avail_remove(pool, b);
            block_unlink(pool, b);
            unmap = b;
        } else {
            pool->empty_blocks++;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    /* munmap waits for the kernel's mmap_lock, which another thread's long
     * system call may hold: never with the pool lock held. */
    if (unmap)
        block_unmap(pool, unmap);
}

void meta_pool_destroy(struct meta_pool *pool)
{
    while (pool->blocks) {
        struct meta_pool_block *b = pool->blocks;
        block_unlink(pool, b);
        block_unmap(pool, b);
    }
    pool->avail = NULL;
    pool->empty_blocks = 0;
    pthread_mutex_destroy(&pool->lock);
}
