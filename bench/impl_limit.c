/*
 * The floors.
 *  limit:   a flat array of atomic state bytes; a lookup is one acquire load.
 *           A transition claims the chunk with one CAS (BUSY), makes the
 *           system call and publishes the new state with a release store;
 *           whoever finds BUSY yields until it clears.
 *  syscall: the bare system calls with no records at all (fresh-disjoint's
 *           reference): ensure_mapped is one mmap NOREPLACE per chunk.
 */
#include "config.h"

#include <sched.h>
#include <stdlib.h>

#include "flat_table.h"
#include "util.h"

struct limit {
    struct flat_table f;
    _Atomic uint64_t syscalls;
};

static void *limit_create(const struct impl_env *env)
{
    struct limit *l = calloc(1, sizeof(*l));
    if (!l)
        die("out of memory");
    flat_init(&l->f, env);
    return l;
}

static void limit_destroy(void *self)
{
    flat_fini(&((struct limit *)self)->f);
    free(self);
}

static uint64_t limit_syscalls(void *self)
{
    return atomic_load(&((struct limit *)self)->syscalls);
}

static int limit_chunk(struct limit *l, enum chunk_op op, size_t c)
{
    _Atomic uint8_t *slot = &l->f.state[c];
    for (;;) {
        /* Acquire: pairs with the release below; seeing Mapped means the
         * mapping exists. */
        uint8_t st = atomic_load_explicit(slot, memory_order_acquire);
        if (st == ST_BUSY) {
            sched_yield();   /* oversubscribed: let the claimant finish */
            continue;
        }
        if (!chunk_op_needed(op, st))
            return 0;
        if (!atomic_compare_exchange_weak_explicit(slot, &st, ST_BUSY, memory_order_acquire,
                                                   memory_order_relaxed))
            continue;
        unsigned next;
        int err = chunk_transition(op, st, flat_addr(&l->f, c), (size_t)1 << l->f.shift,
                                   &l->syscalls, &next);
        /* Release: the system call happens before anyone sees `next`. */
        atomic_store_explicit(slot, (uint8_t)next, memory_order_release);
        return err;
    }
}

static int limit_apply(void *self, enum chunk_op op, const void *start, size_t bytes)
{
    struct limit *l = self;
    size_t first, end;
    int err = flat_range(&l->f, start, bytes, &first, &end);
    for (size_t c = first; !err && c < end; c++)
        err = limit_chunk(l, op, c);
    return err;
}

static BENCH_NOINLINE int limit_ensure_mapped(void *self, void *start, size_t bytes)
{
    return limit_apply(self, OP_MAP, start, bytes);
}

static int limit_quarantine(void *self, void *start, size_t bytes)
{
    return limit_apply(self, OP_QUARANTINE, start, bytes);
}

static int limit_decommit(void *self, void *start, size_t bytes)
{
    return limit_apply(self, OP_DECOMMIT, start, bytes);
}

static int limit_unmap(void *self, void *start, size_t bytes)
{
    return limit_apply(self, OP_UNMAP, start, bytes);
}

static BENCH_NOINLINE bool limit_is_mapped(void *self, const void *addr)
{
    _Atomic uint8_t *slot = flat_slot(&((struct limit *)self)->f, addr);
    return slot && atomic_load_explicit(slot, memory_order_acquire) == ST_MAPPED;
}

static uint64_t limit_count_batch(void *self, const void *const *words, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += limit_is_mapped(self, words[i]);
    return hits;
}

static uint64_t limit_count_mapped(void *self, const uintptr_t *addrs, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += limit_is_mapped(self, (const void *)addrs[i]);
    return hits;
}

static int limit_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= limit_ensure_mapped(self, (void *)addrs[i], bytes);
    return err;
}

const struct impl impl_limit = {
    .name = "limit",
    .create = limit_create,
    .destroy = limit_destroy,
    .ensure_mapped = limit_ensure_mapped,
    .quarantine = limit_quarantine,
    .decommit = limit_decommit,
    .unmap = limit_unmap,
    .is_mapped = limit_is_mapped,
    .syscalls = limit_syscalls,
    .count_mapped = limit_count_mapped,
    .count_batch = limit_count_batch,
    .ensure_each = limit_ensure_each,
};

/* ---- syscall ---- */

struct raw {
    size_t chunk;
    _Atomic uint64_t syscalls;
};

static void *raw_create(const struct impl_env *env)
{
    struct raw *r = calloc(1, sizeof(*r));
    if (!r)
        die("out of memory");
    r->chunk = (size_t)1 << env->log_chunk;
    return r;
}

static void raw_destroy(void *self)
{
    free(self);
}

static uint64_t raw_syscalls(void *self)
{
    return atomic_load(&((struct raw *)self)->syscalls);
}

static int raw_ensure_mapped(void *self, void *start, size_t bytes)
{
    struct raw *r = self;
    int err = 0;
    for (size_t off = 0; !err && off < bytes; off += r->chunk)
        err = kern_map_fresh((char *)start + off, r->chunk, &r->syscalls);
    return err;
}

static int raw_unsupported(void *self, void *start, size_t bytes)
{
    return -ENOSYS;
}

/* Teardown only (never timed): one munmap over the whole range. */
static int raw_unmap(void *self, void *start, size_t bytes)
{
    return kern_unmap(start, bytes, &((struct raw *)self)->syscalls);
}

static int raw_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= raw_ensure_mapped(self, (void *)addrs[i], bytes);
    return err;
}

const struct impl impl_syscall = {
    .name = "syscall",
    .create = raw_create,
    .destroy = raw_destroy,
    .ensure_mapped = raw_ensure_mapped,
    .quarantine = raw_unsupported,
    .decommit = raw_unsupported,
    .unmap = raw_unmap,
    .is_mapped = NULL,
    .syscalls = raw_syscalls,
    .count_mapped = NULL,
    .ensure_each = raw_ensure_each,
};
