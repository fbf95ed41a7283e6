/*
 * Counters of one mapper.  System-call counters are bumped by the OS layer,
 * the chunk gauges by the mapper, the metadata gauges by the slab table and
 * the metadata allocator.  All are relaxed atomics: they order nothing, they
 * only have to be exact once the threads that changed them are done.
 */
#ifndef MMAPPER_STATS_H
#define MMAPPER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct mm_counters {
    _Atomic uint64_t mmap_calls, munmap_calls, mprotect_calls, madvise_calls, name_calls;
    _Atomic int64_t chunks[4];          /* indexed by mmapper_state_t; [0] unused */
    _Atomic uint64_t slabs, table_capacity, metadata_bytes;
};

static inline void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void counter_sub(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

static inline void gauge_add(_Atomic int64_t *g, int64_t n)
{
    atomic_fetch_add_explicit(g, n, memory_order_relaxed);
}

#endif
