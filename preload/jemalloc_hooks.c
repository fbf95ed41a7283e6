/*
 * jemalloc extent hooks on mmapper; see jemalloc_hooks.h.
 *
 * jemalloc splits, merges, commits and purges extents at page granularity;
 * mmapper records one state per chunk.  The hooks keep every recorded state
 * true, and jemalloc's assumptions too, with these rules:
 *
 *  - alloc reserves whole chunks of its own (quarantine_anywhere, or
 *    quarantine at new_addr when every chunk there is Unmapped), so no two
 *    reservations share a chunk.  The extent is the first `size` bytes; the
 *    rest of the last chunk is the reservation's "tail", used by nobody.
 *    Fresh reservations are zero, so *zero is always set.
 *  - commit maps every chunk the range touches.  Chunks it newly maps are
 *    zero; in chunks already Mapped, the range's pages are zero too, because
 *    decommit (below) zeroes what it cannot take away and jemalloc never
 *    writes to pages it has not committed.  So committed pages are zero, as
 *    jemalloc requires.
 *  - decommit takes away the whole chunks inside the range (mmapper_decommit)
 *    and zeroes the pages at its ragged ends with MADV_DONTNEED: those share
 *    a chunk with another extent, which must stay Mapped.  It always
 *    succeeds, so jemalloc recommits before reuse.  (Refusing ragged ranges
 *    instead would refuse nearly all of them: a large allocation's extent
 *    is its size plus one page, so it never ends on a chunk boundary.)
 *  - dalloc unmaps only whole chunks: the range starts on a chunk boundary
 *    and ends on one or at a reservation's tail.  Otherwise it opts out
 *    (returns true) and jemalloc keeps the extent, as it does on Linux by
 *    default.  So a committed page is always in a Mapped chunk.
 *  - purge_forced is madvise(MADV_DONTNEED) on the pages: they read as zero
 *    and stay accessible, so the chunk's state does not change (mmapper has
 *    no purge operation, and needs none).  purge_lazy opts out, so purged
 *    pages are always known to be zero.
 *  - split always succeeds; merge too, between two extents of ours: hooks
 *    reason about chunks, never about which reservation an extent came
 *    from, so merging extents of adjacent reservations is harmless
 *    (mmapper can unmap across them).
 *  - destroy (only called by arena.<i>.destroy, on retained extents) unmaps
 *    every chunk the extent touches: the other extents sharing those chunks
 *    belong to the same arena and are being destroyed too.
 *
 * Extents the hooks did not create.  When the hooks are set on an arena
 * that already has extents (arena 0 of a program under LD_PRELOAD), jemalloc
 * hands those to these hooks too.  They are recognised by their first chunk,
 * which mmapper records Unmapped (every chunk of ours is reserved or
 * mapped), and treated as jemalloc's default hooks would treat them, never
 * through mmapper: commit maps them read-write in place, decommit and dalloc
 * opt out (jemalloc keeps them committed, or retains them, as it does by
 * default on Linux), destroy unmaps them, and merge refuses to join one of
 * theirs with one of ours.
 *
 * The tails are remembered in a hash set (tail_add and friends) so that a
 * range ending at one counts as whole chunks; it lives in mmap'd memory,
 * grows with the number of reservations and shrinks back.  An entry exists
 * only while its chunk is ours: it is added after the reservation is made and
 * removed before it is unmapped.  Hooks never call malloc (mmapper does not
 * either).
 *
 * What jemalloc holds around the hooks (5.3): alloc runs under the arena's
 * extent-growth mutex, or none; commit, decommit, purge, split, merge and
 * dalloc run with no jemalloc lock held by the calling thread.  This file's
 * one mutex guards the tails and makes reserving atomic; it is never held
 * while calling into jemalloc.  A fork may land while another thread holds
 * it: the child re-initialises it and recounts the set (child_after_fork).
 */
#ifdef HAVE_CONFIG_H   /* built in the tree; standalone: -D_GNU_SOURCE */
#include "config.h"
#endif

#include "jemalloc_hooks.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>

/* The tails: an open-addressing set of end addresses, 0 empty, 1 a
 * tombstone, in its own pages.  Only ever touched under h->lock. */
struct tail_set {
    size_t capacity;        /* a power of two */
    size_t used;            /* entries and tombstones */
    size_t count;           /* entries */
    uintptr_t slot[];
};
#define TAIL_EMPTY ((uintptr_t)0)
#define TAIL_GONE ((uintptr_t)1)
#define TAILS_MIN 256

struct mmapper_extent_hooks {
    extent_hooks_t table;   /* first: jemalloc passes &table back to every hook */
    mmapper_t *m;
    uintptr_t mask;         /* chunk size - 1 */
    /*
     * Guards the tails, and makes reserving atomic: checking that chunks are
     * Unmapped and quarantining them must not interleave with another
     * reservation of the same chunks.
     */
    pthread_mutex_t lock;
    struct tail_set *tails;
    bool retain;            /* dalloc always opts out (mmapper_extent_hooks_retain) */
    struct mmapper_extent_hooks *next_hooks;   /* every instance, for fork */
    /* Statistics only: relaxed.  The tails' count and capacity are copied
     * here under the lock, so that reading statistics takes no lock (and is
     * async-signal-safe). */
    _Atomic uint64_t tail_count, tail_capacity;
    _Atomic uint64_t allocs, alloc_failures, commits, commit_failures, decommits,
        decommits_with_chunks, purges, dallocs, dallocs_refused, destroys, unmap_failures,
        foreign;
};

static struct mmapper_extent_hooks *self(extent_hooks_t *e)
{
    return (struct mmapper_extent_hooks *)e;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uintptr_t chunk_up(const struct mmapper_extent_hooks *h, uintptr_t a)
{
    return (a + h->mask) & ~h->mask;
}

/* ---- tails (h->lock held) ---------------------------------------------- */

static size_t tail_bytes(size_t capacity)
{
    return sizeof(struct tail_set) + capacity * sizeof(uintptr_t);
}

static void tail_publish(struct mmapper_extent_hooks *h)
{
    struct tail_set *t = h->tails;
    atomic_store_explicit(&h->tail_count, t ? t->count : 0, memory_order_relaxed);
    atomic_store_explicit(&h->tail_capacity, t ? t->capacity : 0, memory_order_relaxed);
}

static struct tail_set *tail_set_new(size_t capacity)
{
    struct tail_set *t = mmap(NULL, tail_bytes(capacity), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    t->capacity = capacity;   /* fresh pages: every slot TAIL_EMPTY */
    return t;
}

static size_t tail_hash(const struct tail_set *t, uintptr_t end)
{
    return (size_t)(((uint64_t)end * 0x9E3779B97F4A7C15ull) >> 17) & (t->capacity - 1);
}

/* The slot holding end, or the empty one that ends its probe. */
static uintptr_t *tail_slot(struct tail_set *t, uintptr_t end)
{
    for (size_t i = tail_hash(t, end);; i = (i + 1) & (t->capacity - 1))
        if (t->slot[i] == end || t->slot[i] == TAIL_EMPTY)
            return &t->slot[i];
}

/* Copy the live entries into a set of `capacity` slots and swap it in (one
 * pointer store: a fork sees the old set or the new one, never half). */
static bool tail_resize(struct mmapper_extent_hooks *h, size_t capacity)
{
    struct tail_set *old = h->tails, *t = tail_set_new(capacity);
    if (!t)
        return false;
    for (size_t i = 0; old && i < old->capacity; i++)
        if (old->slot[i] > TAIL_GONE) {
            *tail_slot(t, old->slot[i]) = old->slot[i];
            t->used++;
            t->count++;
        }
    atomic_signal_fence(memory_order_seq_cst);
    h->tails = t;
    tail_publish(h);
    if (old)
        munmap(old, tail_bytes(old->capacity));
    return true;
}

static bool tail_add(struct mmapper_extent_hooks *h, uintptr_t end)
{
    struct tail_set *t = h->tails;
    if (!t || 4 * (t->used + 1) > 3 * t->capacity) {
        size_t capacity = TAILS_MIN;
        while (t && capacity < 4 * (t->count + 1))
            capacity *= 2;
        if (!tail_resize(h, capacity))
            return false;   /* no memory: the reservation fails */
        t = h->tails;
    }
    uintptr_t *slot = tail_slot(t, end);
    if (*slot == TAIL_EMPTY) {
        t->used++;
        t->count++;
        *slot = end;
        tail_publish(h);
    }
    return true;
}

static bool tail_find(const struct mmapper_extent_hooks *h, uintptr_t end)
{
    return h->tails && *tail_slot(h->tails, end) == end;
}

/* Forget the tail at end, if there is one (its chunk is about to be
 * unmapped).  An extent holds at most one tail, at its end: reservations
 * are whole chunks and a tail is the unused rest of the last one, so an
 * extent that ends at a tail can never have been merged with the next
 * reservation. */
static void tail_remove(struct mmapper_extent_hooks *h, uintptr_t end)
{
    struct tail_set *t = h->tails;
    if (!t || (end & h->mask) == 0)
        return;
    uintptr_t *slot = tail_slot(t, end);
    if (*slot != end)
        return;
    *slot = TAIL_GONE;
    t->count--;
    tail_publish(h);
    /* Give memory back once the set is mostly empty. */
    if (t->capacity > TAILS_MIN && 8 * t->count < t->capacity)
        tail_resize(h, t->capacity / 2);
}

/* Whether the extent at addr is one of ours (see the top of the file). */
static bool ours(const struct mmapper_extent_hooks *h, const void *addr)
{
    return mmapper_state(h->m, addr) != MMAPPER_UNMAPPED;
}

/*
 * If [lo, hi) covers whole chunks (see above), store their end in *end, and
 * with `forget` also drop the tail entry, and return true.
 */
static bool whole_chunks(struct mmapper_extent_hooks *h, uintptr_t lo, uintptr_t hi,
                         bool forget, uintptr_t *end)
{
    if (lo & h->mask)
        return false;
    *end = chunk_up(h, hi);
    if (!(hi & h->mask)) {
        return true;
    }
    pthread_mutex_lock(&h->lock);
    bool ok = tail_find(h, hi);
    if (ok && forget)
        tail_remove(h, hi);
    pthread_mutex_unlock(&h->lock);
    return ok;
}

/* ---- reserving (h->lock held) ------------------------------------------ */

static void *reserve_at(struct mmapper_extent_hooks *h, uintptr_t at, size_t span)
{
    if (at & h->mask)
        return NULL;   /* inside a chunk that is ours or someone else's */
    for (uintptr_t c = at; c < at + span; c += h->mask + 1)
        if (mmapper_state(h->m, (void *)c) != MMAPPER_UNMAPPED)
            return NULL;
    if (mmapper_quarantine(h->m, (void *)at, span, NULL) != 0) {
        /* Give back what it reserved before failing (-EEXIST: a foreign
         * mapping); the chunks it did not reach are Unmapped, left alone. */
        mmapper_unmap(h->m, (void *)at, span);
        return NULL;
    }
    return (void *)at;
}

static void *reserve_anywhere(struct mmapper_extent_hooks *h, size_t span, size_t alignment)
{
    size_t chunk = h->mask + 1;
    size_t extra = alignment > chunk ? alignment - chunk : 0;
    void *got;
    if (span > SIZE_MAX - extra ||
        mmapper_quarantine_anywhere(h->m, span + extra, NULL, &got) != 0)
        return NULL;
    if (!extra)
        return got;   /* chunk-aligned, so aligned enough */
    /* Over-reserved by alignment - chunk: keep the aligned part, give back
     * the chunks before and after it. */
    uintptr_t base = (uintptr_t)got, start = (base + alignment - 1) & ~(alignment - 1);
    size_t head = start - base, tail = extra - head;
    if ((head && mmapper_unmap(h->m, got, head) != 0) ||
        (tail && mmapper_unmap(h->m, (void *)(start + span), tail) != 0)) {
        mmapper_unmap(h->m, got, span + extra);
        return NULL;
    }
    return (void *)start;
}

/* ---- the hooks ---------------------------------------------------------- */

static void *hook_alloc(extent_hooks_t *e, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    count(&h->allocs);
    if (size > SIZE_MAX - h->mask) {
        count(&h->alloc_failures);
        return NULL;
    }
    size_t span = chunk_up(h, size);
    pthread_mutex_lock(&h->lock);
    char *p = new_addr ? reserve_at(h, (uintptr_t)new_addr, span)
                       : reserve_anywhere(h, span, alignment);
    bool ok = p && (size == span || tail_add(h, (uintptr_t)p + size));
    pthread_mutex_unlock(&h->lock);
    /* Committing maps the chunks: zero-filled. */
    if (ok && *commit && mmapper_ensure_mapped(h->m, p, size, NULL) != 0) {
        pthread_mutex_lock(&h->lock);
        tail_remove(h, (uintptr_t)p + size);
        pthread_mutex_unlock(&h->lock);
        ok = false;
    }
    if (!ok) {
        if (p)
            mmapper_unmap(h->m, p, span);
        count(&h->alloc_failures);
        return NULL;
    }
    /* Mapped now or zero when committed later: fresh memory either way. */
    *zero = true;
    return p;
}

static bool hook_commit(extent_hooks_t *e, void *addr, size_t size, size_t offset,
                        size_t length, unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    count(&h->commits);
    if (!ours(h, addr)) {
        /* jemalloc's own memory: commit it as its default hooks do. */
        count(&h->foreign);
        void *p = mmap((char *)addr + offset, length, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p != MAP_FAILED)
            return false;
        count(&h->commit_failures);
        return true;
    }
    /* On failure the chunks mapped before it stay Mapped: zero and unused,
     * harmless. */
    if (mmapper_ensure_mapped(h->m, (char *)addr + offset, length, NULL) == 0)
        return false;
    count(&h->commit_failures);
    return true;
}

static bool hook_decommit(extent_hooks_t *e, void *addr, size_t size, size_t offset,
                          size_t length, unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    if (!ours(h, addr)) {
        count(&h->foreign);
        return true;   /* jemalloc keeps its own extent committed */
    }
    uintptr_t lo = (uintptr_t)addr + offset, hi = lo + length;
    uintptr_t in_lo = chunk_up(h, lo), in_hi = hi & ~h->mask, end;
    /* A range that ends at a reservation's tail owns its last chunk. */
    if (in_hi != hi && in_hi >= in_lo && whole_chunks(h, in_hi, hi, false, &end))
        in_hi = hi = end;
    count(&h->decommits);
    if (in_lo < in_hi) {
        count(&h->decommits_with_chunks);
        if (mmapper_decommit(h->m, (void *)in_lo, in_hi - in_lo) != 0) {
            /* Failed part-way: the chunks still Mapped keep old contents;
             * zero them like the ends.  Only those: a chunk the failure left
             * Unmapped may hold someone else's mapping now. */
            for (uintptr_t c = in_lo; c < in_hi; c += h->mask + 1)
                if (mmapper_state(h->m, (void *)c) == MMAPPER_MAPPED)
                    madvise((void *)c, h->mask + 1, MADV_DONTNEED);
        }
    } else {
        in_lo = in_hi = hi;   /* no whole chunk: zero the whole range */
    }
    /* MADV_DONTNEED cannot fail on the hooks' private anonymous memory. */
    if (lo < in_lo)
        madvise((void *)lo, in_lo - lo, MADV_DONTNEED);
    if (in_hi < hi)
        madvise((void *)in_hi, hi - in_hi, MADV_DONTNEED);
    return false;
}

static bool hook_purge_forced(extent_hooks_t *e, void *addr, size_t size, size_t offset,
                              size_t length, unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    count(&h->purges);
    return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}

static bool hook_purge_lazy(extent_hooks_t *e, void *addr, size_t size, size_t offset,
                            size_t length, unsigned arena_ind)
{
    return true;
}

static bool hook_dalloc(extent_hooks_t *e, void *addr, size_t size, bool committed,
                        unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    uintptr_t lo = (uintptr_t)addr, end;
    if (!ours(h, addr)) {
        count(&h->foreign);
        return true;   /* jemalloc retains its own extent, as by default */
    }
    if (h->retain || !whole_chunks(h, lo, lo + size, true, &end)) {
        count(&h->dallocs_refused);
        return true;
    }
    count(&h->dallocs);
    /* On failure the chunks not unmapped are leaked rather than handed back
     * to jemalloc partly gone. */
    if (mmapper_unmap(h->m, addr, end - lo) != 0)
        count(&h->unmap_failures);
    return false;
}

static void hook_destroy(extent_hooks_t *e, void *addr, size_t size, bool committed,
                         unsigned arena_ind)
{
    struct mmapper_extent_hooks *h = self(e);
    uintptr_t lo = (uintptr_t)addr & ~h->mask, end = chunk_up(h, (uintptr_t)addr + size);
    count(&h->destroys);
    if (!ours(h, addr)) {
        count(&h->foreign);
        munmap(addr, size);   /* jemalloc's own: its default destroy */
        return;
    }
    pthread_mutex_lock(&h->lock);
    tail_remove(h, (uintptr_t)addr + size);
    pthread_mutex_unlock(&h->lock);
    if (mmapper_unmap(h->m, (void *)lo, end - lo) != 0)
        count(&h->unmap_failures);
}

static bool hook_split(extent_hooks_t *e, void *addr, size_t size, size_t size_a,
                       size_t size_b, bool committed, unsigned arena_ind)
{
    return false;
}

static bool hook_merge(extent_hooks_t *e, void *addr_a, size_t size_a, void *addr_b,
                       size_t size_b, bool committed, unsigned arena_ind)
{
    /* Never one of jemalloc's own with one of ours. */
    struct mmapper_extent_hooks *h = self(e);
    return ours(h, addr_a) != ours(h, addr_b);
}

/* ---- fork ---------------------------------------------------------------- */

/* Every instance, for the child handler; pushed with one pointer store. */
static struct mmapper_extent_hooks *all_hooks;
static pthread_mutex_t all_hooks_lock = PTHREAD_MUTEX_INITIALIZER;

/* A fork may land while another thread holds a hooks mutex (commit and
 * dalloc run outside jemalloc's locks): only this thread exists in the
 * child, so start every mutex afresh, and recount the tails, whose last
 * update may have been cut short (a slot written, the count not yet). */
static void child_after_fork(void)
{
    pthread_mutex_init(&all_hooks_lock, NULL);
    for (struct mmapper_extent_hooks *h = all_hooks; h; h = h->next_hooks) {
        pthread_mutex_init(&h->lock, NULL);
        struct tail_set *t = h->tails;
        if (!t)
            continue;
        t->count = t->used = 0;
        for (size_t i = 0; i < t->capacity; i++) {
            t->used += t->slot[i] != TAIL_EMPTY;
            t->count += t->slot[i] > TAIL_GONE;
        }
        tail_publish(h);
    }
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
}

/* ---- setup -------------------------------------------------------------- */

int mmapper_extent_hooks_create(mmapper_t *m, struct mmapper_extent_hooks **out)
{
    size_t chunk = mmapper_granularity(m);
    if (!chunk || !out)
        return -EINVAL;
    /* Straight from the kernel: this may run before or inside malloc. */
    struct mmapper_extent_hooks *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED)
        return -errno;
    h->table = (extent_hooks_t){
        .alloc = hook_alloc,
        .dalloc = hook_dalloc,
        .destroy = hook_destroy,
        .commit = hook_commit,
        .decommit = hook_decommit,
        .purge_lazy = hook_purge_lazy,
        .purge_forced = hook_purge_forced,
        .split = hook_split,
        .merge = hook_merge,
    };
    h->m = m;
    h->mask = chunk - 1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&all_hooks_lock);
    h->next_hooks = all_hooks;
    atomic_signal_fence(memory_order_seq_cst);   /* complete before reachable */
    all_hooks = h;
    pthread_mutex_unlock(&all_hooks_lock);
    *out = h;
    return 0;
}

void mmapper_extent_hooks_retain(struct mmapper_extent_hooks *h)
{
    h->retain = true;
}

extent_hooks_t *mmapper_extent_hooks_table(struct mmapper_extent_hooks *h)
{
    return &h->table;
}

void mmapper_extent_hooks_get_stats(struct mmapper_extent_hooks *h,
                                    struct mmapper_extent_hooks_stats *out)
{
#define GET(f) .f = atomic_load_explicit(&h->f, memory_order_relaxed)
    *out = (struct mmapper_extent_hooks_stats){
        GET(allocs), GET(alloc_failures), GET(commits), GET(commit_failures),
        GET(decommits), GET(decommits_with_chunks), GET(purges), GET(dallocs),
        GET(dallocs_refused), GET(destroys), GET(unmap_failures), GET(foreign),
    };
    out->tails = atomic_load_explicit(&h->tail_count, memory_order_relaxed);
    out->tail_capacity = atomic_load_explicit(&h->tail_capacity, memory_order_relaxed);
#undef GET
}

void mmapper_extent_hooks_destroy(struct mmapper_extent_hooks *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&all_hooks_lock);
    struct mmapper_extent_hooks **p = &all_hooks;
    while (*p && *p != h)
        p = &(*p)->next_hooks;
    if (*p)
        *p = h->next_hooks;
    pthread_mutex_unlock(&all_hooks_lock);
    if (h->tails)
        munmap(h->tails, tail_bytes(h->tails->capacity));
    pthread_mutex_destroy(&h->lock);
    munmap(h, sizeof(*h));
}
