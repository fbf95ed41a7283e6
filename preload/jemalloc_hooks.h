/*
 * jemalloc (5.x) extent hooks that take all of an arena's memory from
 * mmapper: how to plug mmapper under an existing allocator, and the core of
 * the preload module libmmapper-jemalloc.so (mmapper_jemalloc.c).
 * See jemalloc_hooks.c for how page-granular extents meet chunk-granular
 * states.
 */
#ifndef JEMALLOC_HOOKS_H
#define JEMALLOC_HOOKS_H

#include <stdint.h>

#include <jemalloc/jemalloc.h>

#include "mmapper.h"

struct mmapper_extent_hooks;

struct mmapper_extent_hooks_stats {
    uint64_t allocs, alloc_failures;
    uint64_t commits, commit_failures;
    uint64_t decommits, decommits_with_chunks; /* the others only zeroed pages */
    uint64_t purges;
    uint64_t dallocs, dallocs_refused;         /* refused: kept by jemalloc */
    uint64_t destroys, unmap_failures;
    /* Hook calls on extents jemalloc had before the hooks were set. */
    uint64_t foreign;
    /* Reservations whose last chunk has a tail, and the set's slots. */
    uint64_t tails, tail_capacity;
};

/*
 * Hooks that reserve and map through m.  m should be private to the hooks:
 * they rely on nobody else reserving chunks in it.  No call here or in the
 * hooks allocates with malloc.  0 or a negative errno.
 */
int mmapper_extent_hooks_create(mmapper_t *m, struct mmapper_extent_hooks **out);

/*
 * Make dalloc always opt out, as jemalloc's default hooks do on Linux: an
 * extent jemalloc lets go of stays reserved (its chunks decommitted, so
 * Quarantined) and jemalloc reuses the address space.  For hooks under
 * jemalloc's automatic arenas: jemalloc 5.3.0 corrupts its heap when a
 * dalloc hook of an automatic arena other than arena 0 succeeds while the
 * huge arena exists (seen with hooks that only mmap and munmap, without
 * mmapper; tests/real/module.sh with 4 KiB chunks).  Call before handing
 * the table to jemalloc.
 */
void mmapper_extent_hooks_retain(struct mmapper_extent_hooks *h);

/* The hooks table to give jemalloc (valid until ..._destroy). */
extent_hooks_t *mmapper_extent_hooks_table(struct mmapper_extent_hooks *h);

/* mallctl("arenas.create") with these hooks; 0 or a positive errno (mallctl's).
 * Inline, so that only its callers link against jemalloc's mallctl: the
 * preload module finds jemalloc at run time instead. */
static inline int mmapper_extent_hooks_arena_create(struct mmapper_extent_hooks *h,
                                                    unsigned *arena_ind)
{
    extent_hooks_t *table = mmapper_extent_hooks_table(h);
    size_t sz = sizeof(*arena_ind);
    return mallctl("arenas.create", arena_ind, &sz, &table, sizeof(table));
}

/* Counters, each read atomically (not one instant); takes no lock:
 * thread-safe and async-signal-safe. */
void mmapper_extent_hooks_get_stats(struct mmapper_extent_hooks *h,
                                    struct mmapper_extent_hooks_stats *out);

/* Free the hooks; every arena using them must be destroyed first. */
void mmapper_extent_hooks_destroy(struct mmapper_extent_hooks *h);

#endif
