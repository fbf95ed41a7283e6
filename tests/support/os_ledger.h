/*
 * An OS layer that sits between a mapper and another OS layer (usually
 * test_os) and keeps, for every chunk of one region, what the kernel holds
 * there according to the system calls that succeeded.  It catches what the
 * mapper must never do, at the moment it does it:
 *   - two system calls on the same chunk at the same time (transitions of a
 *     chunk are serialised by its slab lock);
 *   - a fresh (MAP_FIXED_NOREPLACE) mapping that succeeds over a chunk it
 *     holds (one that fails with EEXIST is a harmless probe);
 *   - a MAP_FIXED replacement, mprotect, madvise, name or munmap of a chunk
 *     it does not hold (it must never touch memory it does not own);
 *   - a call that covers part of a chunk or straddles the region's edge.
 * It also counts, per chunk, the calls that start there and the successful
 * calls that changed it, so a test with an exact model can compare them.
 * The first violation is kept as a message; os_ledger_verify() reports it.
 */
#ifndef MMAPPER_OS_LEDGER_H
#define MMAPPER_OS_LEDGER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapper.h"

enum ledger_view { LEDGER_ABSENT, LEDGER_NONE, LEDGER_RW };

struct ledger_chunk {
    _Atomic uint8_t view;        /* enum ledger_view */
    _Atomic uint8_t busy;        /* a call on this chunk is in progress */
    _Atomic uint32_t starts;     /* calls (any kind, failed or not) starting here */
    _Atomic uint32_t changes;    /* successful mmap/mprotect/munmap covering it */
};

struct os_ledger {
    struct mmapper_os os;        /* give &l->os to mmapper_create */
    const struct mmapper_os *next;
    uintptr_t base;
    size_t nchunks;
    unsigned chunk_shift;
    struct ledger_chunk *chunks;
    /* Bytes mapped by the mapper outside the region (quarantine_anywhere and
     * any fixed call elsewhere) minus bytes it unmapped there. */
    _Atomic int64_t outside_bytes;
    _Atomic uint64_t violations;
    _Atomic bool have_message;
    char message[512];
};

/* Forward every call to next (NULL: the real kernel); track nothing yet. */
void os_ledger_init(struct os_ledger *l, const struct mmapper_os *next);
/* Start tracking [base, base + bytes), a whole number of m's chunks, with
 * each chunk's view taken from m's record (call it with no call running).
 * 0 or -ENOMEM. */
int os_ledger_track(struct os_ledger *l, const mmapper_t *m, void *base, size_t bytes);
void os_ledger_fini(struct os_ledger *l);

/* The caller changed the kernel's mappings of [addr, addr + bytes) itself
 * (before mmapper_mark_as_mapped, say): whole chunks of the region. */
void os_ledger_set_view(struct os_ledger *l, void *addr, size_t bytes, enum ledger_view v);

/* Forget every count (views stay). */
void os_ledger_reset_counts(struct os_ledger *l);
/* Sum of `starts` or `changes` over chunks [first, first + n) of the region. */
uint64_t os_ledger_starts(struct os_ledger *l, size_t first, size_t n);
uint64_t os_ledger_changes(struct os_ledger *l, size_t first, size_t n);

/*
 * 0 if no violation happened and every chunk's view agrees with m's record
 * (Unmapped: absent; Quarantined, Protected: PROT_NONE; Mapped: read-write),
 * else -1 with the first problem in why[n].  Only while no call is running.
 */
int os_ledger_verify(struct os_ledger *l, const mmapper_t *m, char *why, size_t n);

#endif
