/*
 * A thread-safe chunked bump allocator built on mmapper (an example client).
 *
 * The heap is one large range quarantined at start-up: address space only, no
 * memory and no commit charge.  Each thread bump-allocates inside its own
 * current chunk; a full chunk is retired and the thread takes another (a
 * recycled one first, else the next fresh one from a shared cursor), mapping
 * it only then.  A retired chunk whose last object is freed is decommitted
 * and goes on a free list.  So the chunks mmapper records Mapped are exactly
 * the chunks in use (see struct region_stats).
 */
#ifndef REGION_ALLOC_H
#define REGION_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapper.h"

struct region;

/* A thread's allocation state: one per thread, used by that thread only. */
struct region_thread {
    struct region *r;
    uint32_t chunk;            /* REGION_NO_CHUNK until the first allocation */
    uintptr_t bump, end;
};
#define REGION_NO_CHUNK UINT32_MAX

struct region_stats {
    uint64_t chunks_total;       /* chunks in the heap */
    /*
     * Chunks handed to a thread and not recycled since: current chunks, and
     * retired chunks that still hold a live object.  Once no thread is
     * inside the allocator, mmapper's chunks_mapped (for this heap) equals
     * chunks_in_use, unless a decommit failed (the chunk then stays Mapped
     * on the free list; decommit_failures counts those).
     */
    uint64_t chunks_in_use;
    uint64_t chunks_fresh_taken; /* taken from the cursor (never used before) */
    uint64_t chunks_recycled;    /* returned to the free list */
    uint64_t decommit_failures;
};

/*
 * Quarantine a heap of heap_bytes (a multiple of m's chunk size) anywhere in
 * the address space.  m must outlive the region; it may be shared with other
 * users.  0 or a negative errno.
 */
int region_create(mmapper_t *m, size_t heap_bytes, struct region **out);
/* Unmap the whole heap and free the region.  No thread may use it any more. */
int region_destroy(struct region *r);

void *region_heap_start(const struct region *r);
size_t region_heap_bytes(const struct region *r);

void region_thread_init(struct region *r, struct region_thread *t);
/* Give up the current chunk (before the thread exits). */
void region_thread_finish(struct region_thread *t);

/* 16-byte aligned, at most one chunk; NULL when the heap is exhausted. */
void *region_alloc(struct region_thread *t, size_t bytes);
/* Any thread may free any object. */
void region_free(struct region *r, void *p);

/* Is p in a chunk of this heap that is in use (mapped)?  Lock-free. */
bool region_contains(const struct region *r, const void *p);

void region_get_stats(const struct region *r, struct region_stats *out);

#endif
