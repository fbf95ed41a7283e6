/*
 * prior-art: MMTk's two-level Mmapper scheme, in C.
 *  - A top-level array of pointers, one per 2^10 chunks of the 47-bit user
 *    address space, to second-level arrays of chunk states allocated lazily
 *    (MMTk's "slab table", LOG_MMAP_CHUNKS_PER_SLAB = 10).
 *  - One global mutex around every ensure_mapped and transition, including
 *    ranges that are already Mapped.
 *  - Lock-free lookups: a relaxed load of the chunk state, as MMTk does.
 *    The second-level pointer is loaded with acquire (MMTk: relaxed), which
 *    its lazy initialisation needs in C11; on x86-64 both are a plain mov.
 * Second-level arrays are never freed.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "impl.h"
#include "kernel.h"
#include "util.h"

#define LOG_MAPPABLE 47
#define LOG_L2_CHUNKS 10
#define L2_CHUNKS ((size_t)1 << LOG_L2_CHUNKS)

struct l2 {
    _Alignas(64) _Atomic uint8_t state[L2_CHUNKS];
    struct l2 *next;   /* all second levels, for destroy */
};

struct prior_art {
    unsigned shift;
    size_t top_entries;
    _Atomic(struct l2 *) *top;
    pthread_mutex_t lock;
    struct l2 *all;    /* under lock */
    _Atomic size_t l2_count;
    _Atomic uint64_t syscalls;
};

static void *pa_create(const struct impl_env *env)
{
    struct prior_art *p = calloc(1, sizeof(*p));
    if (!p)
        die("out of memory");
    p->shift = env->log_chunk;
    p->top_entries = (size_t)1 << (LOG_MAPPABLE - env->log_chunk - LOG_L2_CHUNKS);
    p->top = kern_alloc(p->top_entries * sizeof(*p->top));
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void pa_destroy(void *self)
{
    struct prior_art *p = self;
    for (struct l2 *s = p->all, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    kern_free(p->top, p->top_entries * sizeof(*p->top));
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static uint64_t pa_syscalls(void *self)
{
    return atomic_load(&((struct prior_art *)self)->syscalls);
}

/* The second level for chunk, created if missing; lock held. */
static struct l2 *pa_l2(struct prior_art *p, uintptr_t chunk)
{
    _Atomic(struct l2 *) *slot = &p->top[chunk >> LOG_L2_CHUNKS];
    struct l2 *s = atomic_load_explicit(slot, memory_order_relaxed);
    if (s)
        return s;
    if ((s = aligned_alloc(64, sizeof(*s))) == NULL)
        die("out of memory");
    memset(s, 0, sizeof(*s));
    s->next = p->all;
    p->all = s;
    atomic_fetch_add_explicit(&p->l2_count, 1, memory_order_relaxed);
    /* Release: the zeroed states are visible before the pointer. */
    atomic_store_explicit(slot, s, memory_order_release);
    return s;
}

static int pa_apply(void *self, enum chunk_op op, const void *start, size_t bytes)
{
    struct prior_art *p = self;
    uintptr_t s = (uintptr_t)start;
    if (bytes == 0 || s + bytes < s || s + bytes > (uintptr_t)1 << LOG_MAPPABLE)
        return -EINVAL;
    uintptr_t first = s >> p->shift, end = ((s + bytes - 1) >> p->shift) + 1;
    int err = 0;
    pthread_mutex_lock(&p->lock);
    bool creates = op == OP_MAP || op == OP_QUARANTINE;
    for (uintptr_t c = first; c < end && !err; c++) {
        struct l2 *l2 = creates ? pa_l2(p, c)
                                : atomic_load_explicit(&p->top[c >> LOG_L2_CHUNKS],
                                                       memory_order_relaxed);
        if (!l2) {   /* all Unmapped: nothing to unmap, nothing to decommit */
            err = op == OP_DECOMMIT ? -EINVAL : 0;
            c |= L2_CHUNKS - 1;
            continue;
        }
        _Atomic uint8_t *st = &l2->state[c & (L2_CHUNKS - 1)];
        unsigned next;
        err = chunk_transition(op, atomic_load_explicit(st, memory_order_relaxed),
                               (void *)(c << p->shift), (size_t)1 << p->shift, &p->syscalls,
                               &next);
        atomic_store_explicit(st, (uint8_t)next, memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->lock);
    return err;
}

static BENCH_NOINLINE int pa_ensure_mapped(void *self, void *start, size_t bytes)
{
    return pa_apply(self, OP_MAP, start, bytes);
}

static int pa_quarantine(void *self, void *start, size_t bytes)
{
    return pa_apply(self, OP_QUARANTINE, start, bytes);
}

static int pa_decommit(void *self, void *start, size_t bytes)
{
    return pa_apply(self, OP_DECOMMIT, start, bytes);
}

static int pa_unmap(void *self, void *start, size_t bytes)
{
    return pa_apply(self, OP_UNMAP, start, bytes);
}

/* Record chunks as Mapped, no system call (the large-table scenario). */
static int pa_mark_mapped(void *self, void *start, size_t bytes)
{
    struct prior_art *p = self;
    uintptr_t s = (uintptr_t)start;
    if (bytes == 0 || s + bytes < s || s + bytes > (uintptr_t)1 << LOG_MAPPABLE)
        return -EINVAL;
    uintptr_t first = s >> p->shift, end = ((s + bytes - 1) >> p->shift) + 1;
    pthread_mutex_lock(&p->lock);
    for (uintptr_t c = first; c < end; c++)
        atomic_store_explicit(&pa_l2(p, c)->state[c & (L2_CHUNKS - 1)], ST_MAPPED,
                              memory_order_relaxed);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* The top level and every second level. */
static uint64_t pa_metadata_bytes(void *self)
{
    struct prior_art *p = self;
    return p->top_entries * sizeof(*p->top) +
           atomic_load_explicit(&p->l2_count, memory_order_relaxed) * sizeof(struct l2);
}

static BENCH_NOINLINE bool pa_is_mapped(void *self, const void *addr)
{
    const struct prior_art *p = self;
    uintptr_t a = (uintptr_t)addr;
    if (a >> LOG_MAPPABLE)
        return false;
    uintptr_t chunk = a >> p->shift;
    /* Acquire: pairs with the release in pa_l2(); the zeroed states first. */
    const struct l2 *s = atomic_load_explicit(&p->top[chunk >> LOG_L2_CHUNKS],
                                              memory_order_acquire);
    return s && atomic_load_explicit(&s->state[chunk & (L2_CHUNKS - 1)],
                                     memory_order_relaxed) == ST_MAPPED;
}

static uint64_t pa_count_batch(void *self, const void *const *words, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += pa_is_mapped(self, words[i]);
    return hits;
}

static uint64_t pa_count_mapped(void *self, const uintptr_t *addrs, size_t n)
{
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += pa_is_mapped(self, (const void *)addrs[i]);
    return hits;
}

static int pa_ensure_each(void *self, const uintptr_t *addrs, size_t n, size_t bytes)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        err |= pa_ensure_mapped(self, (void *)addrs[i], bytes);
    return err;
}

const struct impl impl_prior_art = {
    .name = "prior-art",
    .create = pa_create,
    .destroy = pa_destroy,
    .ensure_mapped = pa_ensure_mapped,
    .quarantine = pa_quarantine,
    .decommit = pa_decommit,
    .unmap = pa_unmap,
    .is_mapped = pa_is_mapped,
    .syscalls = pa_syscalls,
    .count_mapped = pa_count_mapped,
    .count_batch = pa_count_batch,
    .ensure_each = pa_ensure_each,
    .mark_mapped = pa_mark_mapped,
    .metadata_bytes = pa_metadata_bytes,
};
