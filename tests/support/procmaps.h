/*
 * The kernel's view of our address space, from /proc/self/maps, and a
 * cross-check of a mapper's recorded chunk states against it.
 */
#ifndef MMAPPER_PROCMAPS_H
#define MMAPPER_PROCMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapper.h"

struct procmaps_region {
    uintptr_t start, end;
    char perms[5];          /* e.g. "rw-p" */
    char name[128];         /* path, [heap], [anon:NAME], or "" */
};

struct procmaps {
    struct procmaps_region *regions;   /* sorted by address */
    size_t count;
};

/* Snapshot /proc/self/maps; 0 or -errno.  Free with procmaps_free(). */
int procmaps_read(struct procmaps *pm);
void procmaps_free(struct procmaps *pm);
/* The region containing addr, or NULL. */
const struct procmaps_region *procmaps_find(const struct procmaps *pm, uintptr_t addr);

/* Lines of /proc/self/maps right now (= VMAs), or -errno. */
long procmaps_count_vmas(void);
/* True if no mapping overlaps [start, start+len). */
bool procmaps_range_free(const void *start, size_t len);
/* Permissions ("rw-p", ...) of the mapping at addr into perms[5]; false if none. */
bool procmaps_perms_at(const void *addr, char perms[5]);
/* Name of the mapping at addr into name[n]; false if none. */
bool procmaps_name_at(const void *addr, char *name, size_t n);

/*
 * Check that every chunk of [start, start+bytes) (rounded to chunks) has the
 * kernel mapping its recorded state implies:
 *   Mapped: rw-p or rwxp throughout;  Quarantined, Protected: ---p throughout;
 *   Unmapped: nothing at all, if the caller owns the range exclusively
 *   (strict_unmapped), else not checked.
 * Returns 0 if all agree, else -1 with a description of the first mismatch in
 * why[n] (may be NULL).
 */
int procmaps_check(const mmapper_t *m, const void *start, size_t bytes,
                   bool strict_unmapped, char *why, size_t n);

#endif
