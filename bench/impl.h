/*
 * One interface for every implementation the benchmark compares: mmapper and
 * the baselines, all making the same system calls on the real kernel.
 *
 * Semantics (the library's): ranges are rounded out to chunks;
 *   ensure_mapped  Unmapped → fresh mmap NOREPLACE, Quarantined → mprotect,
 *                  Mapped → nothing;
 *   quarantine     Unmapped → PROT_NONE reservation, others → nothing;
 *   decommit       Mapped → PROT_NONE reservation (MAP_FIXED), Quarantined →
 *                  nothing, Unmapped → -EINVAL;
 *   unmap          anything → Unmapped (munmap);
 *   is_mapped      the chunk holding addr is Mapped.
 * Concurrent transitions of one chunk make its system call exactly once.
 * Every call returns 0 or a negative errno.
 */
#ifndef BENCH_IMPL_H
#define BENCH_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The address window an instance works in (addresses outside it are never
 * mapped by it). */
struct impl_env {
    uintptr_t base;
    size_t chunks;
    unsigned log_chunk;
};

struct impl {
    const char *name;
    void *(*create)(const struct impl_env *env);
    void (*destroy)(void *self);
    int (*ensure_mapped)(void *self, void *start, size_t bytes);
    int (*quarantine)(void *self, void *start, size_t bytes);
    int (*decommit)(void *self, void *start, size_t bytes);
    int (*unmap)(void *self, void *start, size_t bytes);
    bool (*is_mapped)(void *self, const void *addr);   /* NULL: no records (raw syscalls) */
    uint64_t (*syscalls)(void *self);                   /* made so far */
    /* Finish background work (mmapper: the reclaimer's frees) after an
     * untimed teardown, so that it does not run in the next timed round.
     * NULL: nothing in the background. */
    void (*quiesce)(void *self);

    /* Hot loops for the ns-scale scenarios.  Each calls the implementation's
     * own entry point directly (mmapper's through the shared library's PLT,
     * as any client does), never through this table. */
    uint64_t (*count_mapped)(void *self, const uintptr_t *addrs, size_t n);
    int (*ensure_each)(void *self, const uintptr_t *addrs, size_t n, size_t bytes);
    /* One batch of lookups (a conservative scan's words): mmapper's
     * mmapper_is_mapped_many, the baselines' own lookup in a loop. */
    uint64_t (*count_batch)(void *self, const void *const *words, size_t n);

    /* For the large-table scenario (NULL where an implementation has no
     * such thing): record [start, start+bytes) as Mapped without a system
     * call (mmapper_mark_as_mapped), and the bytes of metadata held now. */
    int (*mark_mapped)(void *self, void *start, size_t bytes);
    uint64_t (*metadata_bytes)(void *self);
};

extern const struct impl impl_mmapper;
extern const struct impl impl_prior_art;
extern const struct impl impl_global_mutex;
extern const struct impl impl_rwlock;
extern const struct impl impl_limit;
extern const struct impl impl_syscall;

/* Implementations with records, mmapper first (the ratio column's reference). */
#define STATEFUL_IMPLS 5
extern const struct impl *const stateful_impls[STATEFUL_IMPLS];

/* The mapper behind an impl_mmapper instance (for its statistics). */
struct mmapper *impl_mmapper_handle(void *self);

/* ---- shared by the baselines ---- */

enum { ST_UNMAPPED, ST_QUARANTINED, ST_MAPPED, ST_BUSY /* limit only */ };
enum chunk_op { OP_MAP, OP_QUARANTINE, OP_DECOMMIT, OP_UNMAP };

/*
 * Move one chunk from `state` as op says, with at most one system call.
 * Returns 0 (and the new state in *next) or a negative errno (state unchanged).
 */
int chunk_transition(enum chunk_op op, unsigned state, void *addr, size_t len,
                     _Atomic uint64_t *syscalls, unsigned *next);
/* Whether op has anything to do from state. */
bool chunk_op_needed(enum chunk_op op, unsigned state);

#endif
