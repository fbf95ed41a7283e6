/*
 * mmapper through the benchmark interface, exactly as a client uses it: the
 * public API of libmmapper.so.  Its system calls go through the counting OS
 * layer of the tests (tests/support/test_os.h), which forwards to the kernel.
 */
#include "config.h"

#include <stdlib.h>

#include "impl.h"
#include "mmapper.h"
#include "test_os.h"
#include "util.h"

struct mm_impl {
    mmapper_t *m;
    struct test_os os;
};

static void *mm_create(const struct impl_env *env)
{
    struct mm_impl *x = calloc(1, sizeof(*x));
    if (!x)
        die("out of memory");
    test_os_init(&x->os);
    struct mmapper_config cfg = { .log_chunk_bytes = env->log_chunk, .os = &x->os.os };
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
    return test_os_total_calls(&((struct mm_impl *)self)->os);
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
};

const struct impl *const stateful_impls[STATEFUL_IMPLS] = {
    &impl_mmapper, &impl_prior_art, &impl_global_mutex, &impl_rwlock, &impl_limit,
};
