/* The per-chunk state machine the baselines share (one syscall per chunk). */
#include "config.h"

#include "impl.h"

#include <errno.h>

#include "kernel.h"

bool chunk_op_needed(enum chunk_op op, unsigned state)
{
    switch (op) {
    case OP_MAP:
        return state != ST_MAPPED;
    case OP_QUARANTINE:
        return state == ST_UNMAPPED;
    case OP_DECOMMIT:
        return state != ST_QUARANTINED;   /* Unmapped: an error, reported below */
    case OP_UNMAP:
        return state != ST_UNMAPPED;
    }
    return false;
}

int chunk_transition(enum chunk_op op, unsigned state, void *addr, size_t len,
                     _Atomic uint64_t *syscalls, unsigned *next)
{
    int err = 0;
    *next = state;
    if (!chunk_op_needed(op, state))
        return 0;
    switch (op) {
    case OP_MAP:
        err = state == ST_UNMAPPED ? kern_map_fresh(addr, len, syscalls)
                                   : kern_commit(addr, len, syscalls);
        *next = ST_MAPPED;
        break;
    case OP_QUARANTINE:
        err = kern_reserve(addr, len, syscalls);
        *next = ST_QUARANTINED;
        break;
    case OP_DECOMMIT:
        if (state == ST_UNMAPPED)
            return -EINVAL;
        err = kern_decommit(addr, len, syscalls);
        *next = ST_QUARANTINED;
        break;
    case OP_UNMAP:
        err = kern_unmap(addr, len, syscalls);
        *next = ST_UNMAPPED;
        break;
    }
    if (err)
        *next = state;
    return err;
}
