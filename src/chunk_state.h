/*
 * The chunk state machine: which action each operation takes from each
 * state.  The mapper drives it; this file knows nothing of slabs or syscalls.
 *
 *   UNMAPPED ──quarantine──► QUARANTINED ──map──► MAPPED ◄──► PROTECTED
 *       └───────────────map / mark──────────────►┘   protect / map
 *   decommit: MAPPED|PROTECTED → QUARANTINED      unmap: any → UNMAPPED
 *
 * A state byte holds an mmapper_state_t, plus CHUNK_LEAVING while a Mapped
 * chunk is being made inaccessible: the bit is set before the syscall so that
 * is_mapped() turns false before the memory goes away, and cleared again if
 * the syscall fails.  Only the holder of the chunk's slab lock writes a state
 * byte; anyone may read it.
 */
#ifndef MMAPPER_CHUNK_STATE_H
#define MMAPPER_CHUNK_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mmapper.h"

typedef _Atomic uint8_t chunk_state_t;

#define CHUNK_STATE_MASK 0x3u
#define CHUNK_LEAVING 0x4u

enum chunk_op {
    OP_MAP,          /* mmapper_ensure_mapped */
    OP_QUARANTINE,   /* mmapper_quarantine */
    OP_MARK,         /* mmapper_mark_as_mapped */
    OP_PROTECT,      /* mmapper_protect */
    OP_DECOMMIT,     /* mmapper_decommit */
    OP_UNMAP,        /* mmapper_unmap */
    OP_ADOPT,        /* record a reservation quarantine_anywhere just made */
};

enum chunk_action {
    ACT_NONE,        /* already in the wanted state: nothing to do */
    ACT_ILLEGAL,     /* makes no sense from this state: -EINVAL */
    ACT_CONFLICT,    /* someone else's memory: -EEXIST */
    ACT_RECORD,      /* change the record only, no syscall */
    ACT_MAP_FRESH,   /* mmap NOREPLACE, read-write */
    ACT_RESERVE,     /* mmap NOREPLACE, PROT_NONE, MAP_NORESERVE */
    ACT_COMMIT,      /* mprotect read-write over our own PROT_NONE mapping */
    ACT_PROTECT,     /* mprotect PROT_NONE */
    ACT_DECOMMIT,    /* replace with a fresh PROT_NONE reservation */
    ACT_UNMAP,       /* munmap */
};

static inline mmapper_state_t chunk_op_target(enum chunk_op op)
{
    static const uint8_t target[] = {
        [OP_MAP] = MMAPPER_MAPPED,       [OP_QUARANTINE] = MMAPPER_QUARANTINED,
        [OP_MARK] = MMAPPER_MAPPED,      [OP_PROTECT] = MMAPPER_PROTECTED,
        [OP_DECOMMIT] = MMAPPER_QUARANTINED, [OP_UNMAP] = MMAPPER_UNMAPPED,
        [OP_ADOPT] = MMAPPER_QUARANTINED,
    };
    return (mmapper_state_t)target[op];
}

static inline enum chunk_action chunk_action(enum chunk_op op, unsigned state)
{
#define U MMAPPER_UNMAPPED
#define Q MMAPPER_QUARANTINED
#define M MMAPPER_MAPPED
#define P MMAPPER_PROTECTED
    static const uint8_t action[][4] = {
        [OP_MAP]        = { [U] = ACT_MAP_FRESH, [Q] = ACT_COMMIT,   [M] = ACT_NONE,     [P] = ACT_COMMIT },
        [OP_QUARANTINE] = { [U] = ACT_RESERVE,   [Q] = ACT_NONE,     [M] = ACT_NONE,     [P] = ACT_NONE },
        [OP_MARK]       = { [U] = ACT_RECORD,    [Q] = ACT_RECORD,   [M] = ACT_NONE,     [P] = ACT_RECORD },
        [OP_PROTECT]    = { [U] = ACT_ILLEGAL,   [Q] = ACT_ILLEGAL,  [M] = ACT_PROTECT,  [P] = ACT_NONE },
        [OP_DECOMMIT]   = { [U] = ACT_ILLEGAL,   [Q] = ACT_NONE,     [M] = ACT_DECOMMIT, [P] = ACT_DECOMMIT },
        [OP_UNMAP]      = { [U] = ACT_NONE,      [Q] = ACT_UNMAP,    [M] = ACT_UNMAP,    [P] = ACT_UNMAP },
        [OP_ADOPT]      = { [U] = ACT_RECORD,    [Q] = ACT_CONFLICT, [M] = ACT_CONFLICT, [P] = ACT_CONFLICT },
    };
#undef U
#undef Q
#undef M
#undef P
    return (enum chunk_action)action[op][state & CHUNK_STATE_MASK];
}

/* Actions that take access away: the chunk stops reading as Mapped before
 * the syscall (CHUNK_LEAVING), not after. */
static inline bool chunk_action_revokes(enum chunk_action a)
{
    return a == ACT_PROTECT || a == ACT_DECOMMIT || a == ACT_UNMAP;
}

#endif
