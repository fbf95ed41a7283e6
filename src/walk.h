/*
 * The slow path of every transition: check a window of the range lock-free
 * and, if something is to do, lock its slabs and make the system calls.
 */
#ifndef MMAPPER_WALK_H
#define MMAPPER_WALK_H

#include <stdint.h>

#include "chunk_state.h"
#include "mapper.h"

struct chunk_range {
    uintptr_t first, end;        /* chunk indices, end exclusive */
};

static inline void *chunk_addr(const mmapper_t *m, uintptr_t chunk)
{
    return (void *)(chunk << m->chunk_shift);
}

/* Slabs in one window: each window is atomic.  32 slabs are 8192 chunks
 * (32 GiB of 4 MiB chunks) per system call at most, and stay under
 * ThreadSanitizer's limit of 64 mutexes held by one thread. */
#define WINDOW_SLABS ((uintptr_t)32)

/*
 * Move every chunk of r as op says, window by window.  A window is the part
 * of r in WINDOW_SLABS consecutive slabs (the first starts at r's first
 * slab, each next one where the previous ended), and each window is
 * linearizable: it takes effect at one instant between the call and its
 * return, also against slabs that do not exist yet.  No read-side section
 * spans a lock wait or a system call, and the calling thread never waits for
 * RCU readers.  Cancellation is disabled throughout.
 * On a system-call error, runs before the failing one keep their new state;
 * *stopped_at (if given) is the first chunk of r not moved.
 */
int walk(mmapper_t *m, enum chunk_op op, struct chunk_range r,
         const struct mmapper_map_opts *o, uintptr_t *stopped_at);

/* Huge page advice and name over [addr, addr + len). */
int apply_attrs(struct mm_os *os, void *addr, size_t len, const struct mmapper_map_opts *o);

#endif
