/*
 * mmapper through the benchmark interface, exactly as a client uses it: the
 * public API of libmmapper.so with the kernel's own OS layer.  System calls
 * are counted by the library itself (mmapper_get_stats): a counting layer
 * of our own would add its work, and the deferral of cancellation that any
 * caller-supplied layer needs, to every transition measured.
 */
#include "config.h"

#include <stdlib.h>

#include "impl.h"
#include "mmapper.h"
#include "util.h"

struct mm_impl {
    mmapper_t *m;
};

static void *mm_create(const struct impl_env *env)
{
    struct mm_impl *x = calloc(1, sizeof(*x));
    if (!x)
        die("out of memory");
    struct mmapper_config cfg = { .log_chunk_bytes = env->log_chunk };
    check(mmapper_create(&cfg, &x->m), "mmapper_create");
    return x;
}

static void mm_destroy(void *self)
{
    struct mm_impl *x = self;
    mmapper_destroy(x->m);
    free(x);
}

mmapper_t *impl_mmapper_handle(void *self)
{
    return ((struct mm_impl *)self)->m;
}

static uint64_t mm_syscalls(void *self)
{
    struct mmapper_stats st;
    mmapper_get_stats(((struct mm_impl *)self)->m, &st);
    return st.mmap_calls + st.munmap_calls + st.mprotect_calls + st.madvise_calls +
           st.name_calls;
}

static int mm_ensure_mapped(void *self, void *start, size_t bytes)
{
    return mmapper_ensure_mapped(((struct mm_impl *)self)->m, start, bytes, NULL);
}

static int mm_quarantine(void *self, void *start, size_t bytes)
{
    return mmapper_quarantine(((struct mm_impl *)self)->m, start, bytes, NULL);
}

static int mm_decommit(void *self, void *start, size_t bytes)
{
    return mmapper_decommit(((struct mm_impl *)self)->m, start, bytes);
}

static int mm_unmap(void *self, void *start, size_t bytes)
{
    return mmapper_unmap(((struct mm_impl *)self)->m, start, bytes);
}

static void mm_quiesce(void *self)
{
    mmapper_reclaim_wait(((struct mm_impl *)self)->m);
}

static int mm_mark_mapped(void *self, void *start, size_t bytes)
{
    return mmapper_mark_as_mapped(((struct mm_impl *)self)->m, start, bytes);
}

static uint64_t mm_metadata_bytes(void *self)
{
    struct mmapper_stats st;
    mmapper_get_stats(((struct mm_impl *)self)->m, &st);
    return st.metadata_bytes;
}

static bool mm_is_mapped(void *self, const void *addr)
{
    return mmapper_is_mapped(((struct mm_impl *)self)->m, addr);
}

static uint64_t mm_count_mapped(void *self, const uintptr_t *addrs, size_t n)
{
    const mmapper_t *m = ((struct mm_impl *)self)->m;
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += mmapper_is_mapped(m, (const void *)addrs[i]);
    return hits;
}

static uint64_t mm_count_batch(void *self, const void *const *words, size_t n)
{
    return mmapper_is_mapped_many(((struct mm_impl *)self)->m, words, n, NULL);
}

static int mm_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    mmapper_t *m = ((struct mm_impl *)self)->m;
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= mmapper_ensure_mapped(m, (void *)addrs[i], bytes, NULL);
    return err;
}

const struct impl impl_mmapper = {
    .name = "mmapper",
    .create = mm_create,
    .destroy = mm_destroy,
    .ensure_mapped = mm_ensure_mapped,
    .quarantine = mm_quarantine,
    .decommit = mm_decommit,
    .unmap = mm_unmap,
    .quiesce = mm_quiesce,
    .is_mapped = mm_is_mapped,
    .syscalls = mm_syscalls,
    .count_mapped = mm_count_mapped,
    .count_batch = mm_count_batch,
    .ensure_each = mm_ensure_each,
    .mark_mapped = mm_mark_mapped,
    .metadata_bytes = mm_metadata_bytes,
};

const struct impl *const stateful_impls[STATEFUL_IMPLS] = {
    &impl_mmapper, &impl_prior_art, &impl_global_mutex, &impl_rwlock, &impl_limit,
};
