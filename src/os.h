/*
 * The OS layer: the only code that makes system calls.  Chunk memory goes
 * through the (substitutable) struct mmapper_os; metadata pages come from
 * os_meta_map(), which always uses the real kernel so that a test's counting
 * layer sees only chunk transitions.
 *
 * Every function returns 0 or a negative errno, and on failure leaves the
 * kernel's mappings as they were (the caller's records stay true), except
 * where noted.
 */
#ifndef MMAPPER_OS_H
#define MMAPPER_OS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "mmapper.h"
#include "stats.h"

struct mm_os {
    const struct mmapper_os *sys;
    struct mm_counters *counters;
    size_t page_size;
    /* The caller's own layer: its functions may be cancellation points.
     * The kernel's layer calls glibc's mmap, mprotect, munmap, madvise and
     * prctl, none of which is one. */
    bool cancel_points;
    bool names_disabled;              /* by configuration */
    atomic_bool names_unsupported;    /* the kernel said EINVAL once */
    atomic_bool huge_unsupported;     /* likewise for huge-page advice */
};

/* Cancellation deferred around calls into a caller's OS layer, whose
 * functions may be cancellation points (a thread cancelled there would
 * leave locks held or a range unrecorded); with the kernel's layer nothing
 * is done (glibc's setcancelstate is an atomic compare-and-swap each).
 *     struct os_cancel c = os_cancel_defer(os); ... os_cancel_restore(c); */
struct os_cancel {
    bool deferred;
    int old_state;
};

static inline struct os_cancel os_cancel_defer(const struct mm_os *os)
{
    struct os_cancel c = { .deferred = os->cancel_points };
    if (c.deferred)
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &c.old_state);
    return c;
}

static inline void os_cancel_restore(struct os_cancel c)
{
    if (c.deferred)
        pthread_setcancelstate(c.old_state, NULL);
}

void os_init(struct mm_os *os, const struct mmapper_os *sys,
             struct mm_counters *counters, bool disable_names);

/* Page size of the running kernel, from sysconf().  (struct mm_os's
 * page_size is the layer's: the kernel's unless the layer says otherwise.) */
size_t os_page_size(void);

/* A fresh zero-filled mapping at exactly addr; -EEXIST if anything is there. */
int os_map_fresh(struct mm_os *os, void *addr, size_t len, mmapper_prot_t prot);
/* A PROT_NONE, MAP_NORESERVE reservation at exactly addr; -EEXIST likewise. */
int os_reserve(struct mm_os *os, void *addr, size_t len);
/* A reservation of len bytes aligned to align (a power of two >= page size),
 * placed by the kernel; the over-reserved head and tail are unmapped. */
int os_reserve_aligned(struct mm_os *os, size_t len, size_t align, void **out);
/* Make our own reservation or protected mapping accessible.  mprotect never
 * drops the reservation, whatever happens.  May apply partially over several
 * VMAs when it fails: the caller re-applies chunk by chunk. */
int os_commit(struct mm_os *os, void *addr, size_t len, mmapper_prot_t prot);
/* PROT_NONE over our own mapping, contents kept.  Same caveat as os_commit. */
int os_protect(struct mm_os *os, void *addr, size_t len);
/* Replace our own mapping with a fresh PROT_NONE reservation: pages and
 * commit charge go back to the kernel, the address range stays ours.  On
 * failure *gone says that the old mapping no longer exists at all (a
 * pre-6.12 kernel's failed MAP_FIXED left a hole that could not be
 * re-reserved whole): the range is then not ours any more, and the caller
 * finds out chunk by chunk what it can take back. */
int os_decommit(struct mm_os *os, void *addr, size_t len, size_t chunk, bool *gone);
int os_unmap(struct mm_os *os, void *addr, size_t len);
/* madvise() for the huge page advice; DEFAULT makes no call. */
int os_advise_huge(struct mm_os *os, void *addr, size_t len, mmapper_huge_page_t mode);
/* Name a range; a no-op when names are disabled or the kernel lacks them. */
int os_set_name(struct mm_os *os, void *addr, size_t len, const char *name);
/* Whether the kernel would accept name (length and characters). */
bool os_name_valid(const char *name);

/* Metadata pages (zero-filled, read-write), always from the real kernel. */
int os_meta_map(size_t len, void **out);
void os_meta_unmap(void *addr, size_t len);

#endif
