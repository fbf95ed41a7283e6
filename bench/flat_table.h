/*
 * A flat array of chunk state bytes over the benchmark window, indexed by
 * (addr - base) >> log_chunk: what the global-mutex, rwlock and limit
 * baselines keep.  Allocated with mmap, touched only where used.
 */
#ifndef BENCH_FLAT_TABLE_H
#define BENCH_FLAT_TABLE_H

#include <errno.h>
#include <stdatomic.h>

#include "impl.h"
#include "kernel.h"

struct flat_table {
    uintptr_t base;
    size_t chunks;
    unsigned shift;
    _Atomic uint8_t *state;
};

static inline void flat_init(struct flat_table *f, const struct impl_env *env)
{
    f->base = env->base;
    f->chunks = env->chunks;
    f->shift = env->log_chunk;
    f->state = kern_alloc(env->chunks);
}

static inline void flat_fini(struct flat_table *f)
{
    kern_free((void *)f->state, f->chunks);
}

/* The state byte of the chunk holding addr, or NULL outside the window. */
static inline _Atomic uint8_t *flat_slot(const struct flat_table *f, const void *addr)
{
    uintptr_t i = ((uintptr_t)addr - f->base) >> f->shift;   /* wraps below base */
    return i < f->chunks ? &f->state[i] : NULL;
}

static inline void *flat_addr(const struct flat_table *f, size_t i)
{
    return (void *)(f->base + ((uintptr_t)i << f->shift));
}

/* Chunk indices [*first, *end) of a range, or -EINVAL outside the window. */
static inline int flat_range(const struct flat_table *f, const void *start, size_t bytes,
                             size_t *first, size_t *end)
{
    uintptr_t s = (uintptr_t)start;
    if (bytes == 0 || s < f->base || s - f->base + bytes > (f->chunks << f->shift))
        return -EINVAL;
    *first = (s - f->base) >> f->shift;
    *end = ((s - f->base + bytes - 1) >> f->shift) + 1;
    return 0;
}

/* Apply op to [first, end) chunk by chunk; the caller excludes other writers. */
static inline int flat_apply(struct flat_table *f, enum chunk_op op, size_t first, size_t end,
                             _Atomic uint64_t *syscalls)
{
    for (size_t c = first; c < end; c++) {
        unsigned next;
        int err = chunk_transition(op, atomic_load_explicit(&f->state[c], memory_order_relaxed),
                                   flat_addr(f, c), (size_t)1 << f->shift, syscalls, &next);
        atomic_store_explicit(&f->state[c], (uint8_t)next, memory_order_relaxed);
        if (err)
            return err;
    }
    return 0;
}

#endif
