/*
 * jemalloc (5.x) extent hooks that take all of an arena's memory from
 * mmapper: an example of plugging mmapper under an existing allocator.
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

/* The hooks table to give jemalloc (valid until ..._destroy). */
extent_hooks_t *mmapper_extent_hooks_table(struct mmapper_extent_hooks *h);

/* mallctl("arenas.create") with these hooks; 0 or a positive errno (mallctl's). */
int mmapper_extent_hooks_arena_create(struct mmapper_extent_hooks *h, unsigned *arena_ind);

void mmapper_extent_hooks_get_stats(struct mmapper_extent_hooks *h,
                                    struct mmapper_extent_hooks_stats *out);

/* Free the hooks; every arena using them must be destroyed first. */
void mmapper_extent_hooks_destroy(struct mmapper_extent_hooks *h);

#endif
