/*
 * The lock-based baselines over a flat state array:
 *  global-mutex: one pthread mutex around everything, lookups included;
 *  rwlock:       lookups (and ensure_mapped's already-mapped check) take the
 *                read lock, transitions the write lock.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "flat_table.h"
#include "util.h"

struct locked {
    struct flat_table f;
    pthread_mutex_t mutex;
    pthread_rwlock_t rw;
    _Atomic uint64_t syscalls;
};

static void *locked_create(const struct impl_env *env)
{
    struct locked *l = calloc(1, sizeof(*l));
    if (!l)
        die("out of memory");
    flat_init(&l->f, env);
    pthread_mutex_init(&l->mutex, NULL);
    pthread_rwlock_init(&l->rw, NULL);
    return l;
}

static void locked_destroy(void *self)
{
    struct locked *l = self;
    flat_fini(&l->f);
    pthread_mutex_destroy(&l->mutex);
    pthread_rwlock_destroy(&l->rw);
    free(l);
}

static uint64_t locked_syscalls(void *self)
{
    return atomic_load(&((struct locked *)self)->syscalls);
}

/* ---- global-mutex ---- */

static int gm_apply(void *self, enum chunk_op op, const void *start, size_t bytes)
{
    struct locked *l = self;
    size_t first, end;
    int err = flat_range(&l->f, start, bytes, &first, &end);
    if (err)
        return err;
    pthread_mutex_lock(&l->mutex);
    err = flat_apply(&l->f, op, first, end, &l->syscalls);
    pthread_mutex_unlock(&l->mutex);
    return err;
}

static BENCH_NOINLINE int gm_ensure_mapped(void *self, void *start, size_t bytes)
{
    return gm_apply(self, OP_MAP, start, bytes);
}

static int gm_quarantine(void *self, void *start, size_t bytes)
{
    return gm_apply(self, OP_QUARANTINE, start, bytes);
}

static int gm_decommit(void *self, void *start, size_t bytes)
{
    return gm_apply(self, OP_DECOMMIT, start, bytes);
}

static int gm_unmap(void *self, void *start, size_t bytes)
{
    return gm_apply(self, OP_UNMAP, start, bytes);
}

static BENCH_NOINLINE bool gm_is_mapped(void *self, const void *addr)
{
    struct locked *l = self;
    _Atomic uint8_t *slot = flat_slot(&l->f, addr);
    if (!slot)
        return false;
    pthread_mutex_lock(&l->mutex);
    bool mapped = atomic_load_explicit(slot, memory_order_relaxed) == ST_MAPPED;
    pthread_mutex_unlock(&l->mutex);
    return mapped;
}

static uint64_t gm_count_batch(void *self, const void *const *words, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += gm_is_mapped(self, words[i]);
    return hits;
}

static uint64_t gm_count_mapped(void *self, const uintptr_t *addrs, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += gm_is_mapped(self, (const void *)addrs[i]);
    return hits;
}

static int gm_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= gm_ensure_mapped(self, (void *)addrs[i], bytes);
    return err;
}

const struct impl impl_global_mutex = {
    .name = "global-mutex",
    .create = locked_create,
    .destroy = locked_destroy,
    .ensure_mapped = gm_ensure_mapped,
    .quarantine = gm_quarantine,
    .decommit = gm_decommit,
    .unmap = gm_unmap,
    .is_mapped = gm_is_mapped,
    .syscalls = locked_syscalls,
    .count_mapped = gm_count_mapped,
    .count_batch = gm_count_batch,
    .ensure_each = gm_ensure_each,
};

/* ---- rwlock ---- */

static int rw_apply(void *self, enum chunk_op op, const void *start, size_t bytes)
{
    struct locked *l = self;
    size_t first, end;
    int err = flat_range(&l->f, start, bytes, &first, &end);
    if (err)
        return err;
    pthread_rwlock_wrlock(&l->rw);
    err = flat_apply(&l->f, op, first, end, &l->syscalls);
    pthread_rwlock_unlock(&l->rw);
    return err;
}

static BENCH_NOINLINE int rw_ensure_mapped(void *self, void *start, size_t bytes)
{
    struct locked *l = self;
    size_t first, end;
    int err = flat_range(&l->f, start, bytes, &first, &end);
    if (err)
        return err;
    bool all_mapped = true;
    pthread_rwlock_rdlock(&l->rw);
    for (size_t c = first; c < end && all_mapped; c++)
        all_mapped = atomic_load_explicit(&l->f.state[c], memory_order_relaxed) == ST_MAPPED;
    pthread_rwlock_unlock(&l->rw);
    return all_mapped ? 0 : rw_apply(self, OP_MAP, start, bytes);
}

static int rw_quarantine(void *self, void *start, size_t bytes)
{
    return rw_apply(self, OP_QUARANTINE, start, bytes);
}

static int rw_decommit(void *self, void *start, size_t bytes)
{
    return rw_apply(self, OP_DECOMMIT, start, bytes);
}

static int rw_unmap(void *self, void *start, size_t bytes)
{
    return rw_apply(self, OP_UNMAP, start, bytes);
}

static BENCH_NOINLINE bool rw_is_mapped(void *self, const void *addr)
{
    struct locked *l = self;
    _Atomic uint8_t *slot = flat_slot(&l->f, addr);
    if (!slot)
        return false;
    pthread_rwlock_rdlock(&l->rw);
    bool mapped = atomic_load_explicit(slot, memory_order_relaxed) == ST_MAPPED;
    pthread_rwlock_unlock(&l->rw);
    return mapped;
}

static uint64_t rw_count_batch(void *self, const void *const *words, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += rw_is_mapped(self, words[i]);
    return hits;
}

static uint64_t rw_count_mapped(void *self, const uintptr_t *addrs, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += rw_is_mapped(self, (const void *)addrs[i]);
    return hits;
}

static int rw_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= rw_ensure_mapped(self, (void *)addrs[i], bytes);
    return err;
}

const struct impl impl_rwlock = {
    .name = "rwlock",
    .create = locked_create,
    .destroy = locked_destroy,
    .ensure_mapped = rw_ensure_mapped,
    .quarantine = rw_quarantine,
    .decommit = rw_decommit,
    .unmap = rw_unmap,
    .is_mapped = rw_is_mapped,
    .syscalls = locked_syscalls,
    .count_mapped = rw_count_mapped,
    .count_batch = rw_count_batch,
    .ensure_each = rw_ensure_each,
};
