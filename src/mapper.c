/*
 * The public entry points: validate, round to chunks, answer lock-free when
 * nothing is to do, and otherwise hand the range to the locking walk
 * (walk.c).
 *
 * Lookups (is_mapped, state, the fast paths) are one RCU read-side section
 * around a hash probe and one acquire load of the state byte, which pairs
 * with the release store that publishes a state after its system call: a
 * thread that sees Mapped also sees the mapping.
 */
#include "config.h"

#include "mapper.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "chunk_state.h"
#include "fork.h"
#include "reclaim.h"
#include "walk.h"

#define CHUNK_INDEX_MASK (SLAB_CHUNKS - 1)

/* The chunks under [start, start+bytes) for op: 0, 1 when there are none
 * to visit, or -EINVAL. */
static int to_chunks(const mmapper_t *m, enum chunk_op op, const void *start, size_t bytes,
                     struct chunk_range *r)
{
    uintptr_t s = (uintptr_t)start;
    if (!m || bytes == 0 || s > UINTPTR_MAX - bytes || s + bytes > MMAPPER_ADDRESS_LIMIT)
        return -EINVAL;
    r->first = s >> m->chunk_shift;
    r->end = ((s + bytes - 1) >> m->chunk_shift) + 1;
    /*
     * With 64-bit pointers the limit is a multiple of every chunk size and
     * this never triggers.  With 32-bit pointers (limit UINTPTR_MAX) the
     * topmost chunk would end at 2^32, which wraps to 0: it is never ours
     * (user space never gets the top page), so it stays Unmapped.  An
     * unmap reaching into it (the "unmap everything" call, 0 to the limit)
     * leaves it out; anything else there is invalid.
     */
    uintptr_t top = MMAPPER_ADDRESS_LIMIT >> m->chunk_shift;
    if (r->end > top) {
        if (op != OP_UNMAP)
            return -EINVAL;
        r->end = top;
        if (r->first >= top)
            return 1;
    }
    return 0;
}

static int check_opts(const struct mmapper_map_opts *o)
{
    if (!o)
        return 0;
    if ((unsigned)o->prot > MMAPPER_PROT_READ_WRITE_EXEC ||
        (unsigned)o->huge_page > MMAPPER_HUGE_PAGE_NEVER ||
        (o->name && !os_name_valid(o->name)))
        return -EINVAL;
    return 0;
}

/* ---- lock-free reads ---------------------------------------------------- */

/* The raw state byte (CHUNK_LEAVING included) of the chunk holding addr,
 * inside a read-side section.  No range check: slabs exist only below
 * MMAPPER_ADDRESS_LIMIT, so any other address simply finds no slab. */
static inline unsigned state_in_section(const mmapper_t *m, const void *addr)
{
    uintptr_t chunk = (uintptr_t)addr >> m->chunk_shift;
    const struct slab *s = slab_table_lookup(&m->table, chunk >> SLAB_LOG_CHUNKS);
    /* Acquire: pairs with the release in record(); a caller that sees
     * Mapped may touch the memory the syscall mapped. */
    return s ? atomic_load_explicit(&s->state[chunk & CHUNK_INDEX_MASK], memory_order_acquire)
             : MMAPPER_UNMAPPED;
}

/* The hot path: for a thread already registered with urcu-bp. */
static inline unsigned lookup_state(const mmapper_t *m, const void *addr)
{
    rcu_read_enter_registered();
    unsigned st = state_in_section(m, addr);
    rcu_read_exit_registered();
    return st;
}

/* A thread's first lookup registers it with urcu-bp (or, while a fork is
 * being prepared, reads as a fork reader): calls, kept out of line so that
 * the hot path above is a leaf function with no stack frame. */
static __attribute__((noinline, cold)) unsigned lookup_state_first(const mmapper_t *m,
                                                                   const void *addr)
{
    bool fork_reader = rcu_read_enter();
    unsigned st = state_in_section(m, addr);
    rcu_read_exit(fork_reader);
    return st;
}

static inline unsigned state_at(const mmapper_t *m, const void *addr)
{
    if (!m)
        return MMAPPER_UNMAPPED;
    if (__builtin_expect(!rcu_reader_registered(), 0))
        return lookup_state_first(m, addr);
    return lookup_state(m, addr);
}

MMAPPER_API bool mmapper_is_mapped(const mmapper_t *m, const void *addr)
{
    return state_at(m, addr) == MMAPPER_MAPPED;   /* not while LEAVING */
}

MMAPPER_API mmapper_state_t mmapper_state(const mmapper_t *m, const void *addr)
{
    return (mmapper_state_t)(state_at(m, addr) & CHUNK_STATE_MASK);
}

/* ---- batched lookups --------------------------------------------------- */

/* A batch re-enters its read-side section every MANY_SECTION addresses, so
 * that a scan of millions of words never holds the reclaimer back for long. */
#define MANY_SECTION 4096
/*
 * A lookup in a large table misses the cache twice, one miss after the
 * other: the slot, then the slab it points to.  A batch overlaps them in a
 * pipeline of three stages MANY_AHEAD addresses apart: the slot of address
 * i + 2*MANY_AHEAD is prefetched, the slab named by the (by then cached)
 * slot of address i + MANY_AHEAD is prefetched, and address i is looked up.
 * A power of two: the pending addresses are a ring of 2*MANY_AHEAD.
 *
 * The middle stage pays only where slabs miss the cache; in a small table
 * its instructions cost more than it saves, and a batch prefetches slots
 * alone, MANY_AHEAD ahead.  The threshold, a table of MANY_DEEP_SLOTS
 * slots (at most 49,152 slabs), is empirical, measured at its two ends:
 * is-mapped-many-hit with 1024 slabs 2.1 ns per address without the stage,
 * 2.5 with it; large-table-many at 10^6 slabs 26.6 ns without, 20 with.
 */
#define MANY_AHEAD 8
#define MANY_RING (2 * MANY_AHEAD)
#define MANY_DEEP_SLOTS ((uintptr_t)1 << 16)

struct pending {
    uintptr_t chunk;      /* UINTPTR_MAX: outside the address space, false */
    uintptr_t slot;       /* first slot of its probe */
};

static inline void many_prepare(const struct slab_array *a, unsigned shift, const void *addr,
                                struct pending *p)
{
    uintptr_t x = (uintptr_t)addr;
    if (x >= MMAPPER_ADDRESS_LIMIT) {   /* junk words of a scan: no probe */
        p->chunk = UINTPTR_MAX;
        return;
    }
    p->chunk = x >> shift;
    p->slot = slab_hash(a, p->chunk >> SLAB_LOG_CHUNKS);
    __builtin_prefetch(&a->slots[p->slot]);
}

/* The second stage: prefetch the slab header (its key) and the chunk's
 * state byte of the slab in the probe's first slot.  Relaxed: the pointer
 * is only a hint for the prefetch, nothing is read through it here (the
 * lookup proper loads it again with acquire).  NULL, the tombstone or a
 * slab of another key cost one useless prefetch, never a fault. */
static inline void many_prefetch_slab(const struct slab_array *a, const struct pending *p)
{
    if (p->chunk == UINTPTR_MAX)
        return;
    uintptr_t s = (uintptr_t)atomic_load_explicit(
        (_Atomic(struct slab *) *)&a->slots[p->slot].slab, memory_order_relaxed);
    __builtin_prefetch((const void *)s);
    __builtin_prefetch((const void *)(s + offsetof(struct slab, state) +
                                      (p->chunk & CHUNK_INDEX_MASK)));
}

/* Inlined four times, with mapped NULL and not (the count-only loop stores
 * nothing per address) and deep or not (the middle stage above). */
static inline __attribute__((always_inline)) size_t
many_run(const struct slab_array *a, unsigned shift, const void *const addrs[], size_t n,
         bool mapped[], bool deep)
{
    const size_t ahead = deep ? MANY_RING : MANY_AHEAD;   /* of the first stage */
    struct pending ring[MANY_RING];
    for (size_t i = 0; i < n && i < ahead; i++)
        many_prepare(a, shift, addrs[i], &ring[i]);
    for (size_t i = 0; deep && i < n && i < MANY_AHEAD; i++)
        many_prefetch_slab(a, &ring[i]);
    uintptr_t last_key = UINTPTR_MAX;
    const struct slab *last = NULL;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        struct pending p = ring[i & (ahead - 1)];
        if (deep && i + MANY_AHEAD < n)
            many_prefetch_slab(a, &ring[(i + MANY_AHEAD) & (MANY_RING - 1)]);
        if (i + ahead < n)   /* into the entry just taken (ahead divides the ring) */
            many_prepare(a, shift, addrs[i + ahead], &ring[i & (ahead - 1)]);
        bool yes = false;
        if (p.chunk != UINTPTR_MAX) {
            uintptr_t key = p.chunk >> SLAB_LOG_CHUNKS;
            if (key != last_key) {   /* neighbouring addresses share a slab */
                last_key = key;
                last = slab_array_lookup_filtered(a, p.slot, key);
            }
            /* Acquire: as in state_in_section. */
            yes = last && atomic_load_explicit(&last->state[p.chunk & CHUNK_INDEX_MASK],
                                               memory_order_acquire) == MMAPPER_MAPPED;
        }
        count += yes;
        if (mapped)
            mapped[i] = yes;
    }
    return count;
}

static inline __attribute__((always_inline)) size_t
many_in_section(const mmapper_t *m, const void *const addrs[], size_t n, bool mapped[])
{
    const struct slab_array *a = slab_table_array(&m->table);
    const unsigned shift = m->chunk_shift;
    if (a->mask >= MANY_DEEP_SLOTS - 1)
        return mapped ? many_run(a, shift, addrs, n, mapped, true)
                      : many_run(a, shift, addrs, n, NULL, true);
    return mapped ? many_run(a, shift, addrs, n, mapped, false)
                  : many_run(a, shift, addrs, n, NULL, false);
}

MMAPPER_API size_t mmapper_is_mapped_many(const mmapper_t *m, const void *const addrs[],
                                          size_t n, bool mapped[])
{
    if (!m || !addrs) {
        if (mapped)
            memset(mapped, 0, n * sizeof(*mapped));
        return 0;
    }
    size_t count = 0;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < MANY_SECTION ? n - done : MANY_SECTION;
        bool fork_reader = rcu_read_enter();
        count += many_in_section(m, addrs + done, k, mapped ? mapped + done : NULL);
        rcu_read_exit(fork_reader);
        done += k;
    }
    return count;
}

/*
 * The fast path of every transition: a range within one chunk that is
 * already where op wants it.  One lookup, no lock, no store; inlined into
 * each entry point so that it stays a leaf function when nothing is to do.
 * Anything unusual (bad arguments, options to validate, an unregistered
 * thread) falls through to transition(), which decides properly.
 */
static inline bool already_done(const mmapper_t *m, enum chunk_op op, const void *start,
                                size_t bytes, const struct mmapper_map_opts *o)
{
    uintptr_t first = (uintptr_t)start, last = first + bytes - 1;
    if (!m || bytes == 0 || last < first || last >= MMAPPER_ADDRESS_LIMIT ||
        !rcu_reader_registered() ||
        (first >> m->chunk_shift) != (last >> m->chunk_shift) ||
        (o && (o->name || (unsigned)o->prot > MMAPPER_PROT_READ_WRITE_EXEC ||
                (unsigned)o->huge_page > MMAPPER_HUGE_PAGE_NEVER)))
        return false;
    unsigned st = lookup_state(m, start);
    /* A chunk on its way out (CHUNK_LEAVING) is never "already done". */
    return !(st & CHUNK_LEAVING) && chunk_action(op, st) == ACT_NONE;
}

static __attribute__((noinline)) int transition(mmapper_t *m, enum chunk_op op,
                                                const void *start, size_t bytes,
                                                const struct mmapper_map_opts *o)
{
    struct chunk_range r;
    int err = to_chunks(m, op, start, bytes, &r);
    if (err == 1)
        return 0;
    if (err || (err = check_opts(o)) != 0)
        return err;
    if (r.end - r.first == 1) {
        /* One chunk, the common case: a single lookup decides. */
        unsigned st = state_at(m, start);
        if (!(st & CHUNK_LEAVING) && chunk_action(op, st) == ACT_NONE)
            return 0;
    }
    return walk(m, op, r, o, NULL);   /* scans each window lock-free first */
}

/* ---- the public API ----------------------------------------------------- */

MMAPPER_API int mmapper_ensure_mapped(mmapper_t *m, void *start, size_t bytes,
                                      const struct mmapper_map_opts *o)
{
    if (already_done(m, OP_MAP, start, bytes, o))
        return 0;
    return transition(m, OP_MAP, start, bytes, o);
}

MMAPPER_API int mmapper_quarantine(mmapper_t *m, void *start, size_t bytes,
                                   const struct mmapper_map_opts *o)
{
    if (already_done(m, OP_QUARANTINE, start, bytes, o))
        return 0;
    return transition(m, OP_QUARANTINE, start, bytes, o);
}

MMAPPER_API int mmapper_mark_as_mapped(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_MARK, start, bytes, NULL))
        return 0;
    return transition(m, OP_MARK, start, bytes, NULL);
}

MMAPPER_API int mmapper_protect(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_PROTECT, start, bytes, NULL))
        return 0;
    return transition(m, OP_PROTECT, start, bytes, NULL);
}

MMAPPER_API int mmapper_decommit(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_DECOMMIT, start, bytes, NULL))
        return 0;
    return transition(m, OP_DECOMMIT, start, bytes, NULL);
}

MMAPPER_API int mmapper_unmap(mmapper_t *m, void *start, size_t bytes)
{
    if (already_done(m, OP_UNMAP, start, bytes, NULL))
        return 0;
    return transition(m, OP_UNMAP, start, bytes, NULL);
}

/* mmapper_quarantine_anywhere's work, its arguments checked. */
static int quarantine_anywhere(mmapper_t *m, size_t bytes, const struct mmapper_map_opts *o,
                               void **out)
{
    int err;
    void *p;
    if ((err = os_reserve_aligned(&m->os, bytes, mmapper_granularity(m), &p)) != 0)
        return err;
    struct chunk_range r;
    if (to_chunks(m, OP_ADOPT, p, bytes, &r) != 0) {
        os_unmap(&m->os, p, bytes);   /* beyond what we can record */
        return -ENOMEM;
    }
    /* Attributes before the record: until then nobody else knows the range. */
    if ((err = apply_attrs(&m->os, p, bytes, o)) != 0) {
        os_unmap(&m->os, p, bytes);
        return err;
    }
    uintptr_t stopped;
    if ((err = walk(m, OP_ADOPT, r, NULL, &stopped)) != 0) {
        /* The kernel gave us chunks our records call taken (memory marked
         * mapped and then unmapped behind our back), or metadata ran out.
         * Hand back what we adopted through the mapper, the rest directly. */
        if (stopped > r.first)
            walk(m, OP_UNMAP, (struct chunk_range){ r.first, stopped }, NULL, NULL);
        os_unmap(&m->os, chunk_addr(m, stopped), (r.end - stopped) << m->chunk_shift);
        return err;
    }
    *out = p;
    return 0;
}

MMAPPER_API int mmapper_quarantine_anywhere(mmapper_t *m, size_t bytes,
                                            const struct mmapper_map_opts *o, void **out)
{
    if (!m || !out || bytes == 0 || (bytes & (mmapper_granularity(m) - 1)))
        return -EINVAL;
    int err = check_opts(o);
    if (err)
        return err;
    /* A caller's OS layer may be a cancellation point: a cancel between
     * the reservation and its record would leak the range (walk() defers
     * cancellation for itself, too late for the calls before it). */
    struct os_cancel cancel = os_cancel_defer(&m->os);
    err = quarantine_anywhere(m, bytes, o, out);
    os_cancel_restore(cancel);
    return err;
}

MMAPPER_API int mmapper_reclaim_wait(mmapper_t *m)
{
    if (!m)
        return -EINVAL;
    /* synchronize_rcu polls, a cancellation point, while holding
     * liburcu's grace-period mutex: a cancel there would leak it. */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    int err = reclaim_wait(&m->table);
    pthread_setcancelstate(cancel_state, NULL);
    return err;
}

MMAPPER_API size_t mmapper_granularity(const mmapper_t *m)
{
    return m ? (size_t)1 << m->chunk_shift : 0;
}

static const struct mmapper_os *check_os(const struct mmapper_os *os)
{
    if (!os)
        return mmapper_os_default();
    if (!os->mmap || !os->munmap || !os->mprotect || !os->madvise || !os->set_name)
        return NULL;
    size_t ps = os->page_size;
    if (ps && ((ps & (ps - 1)) || ps < os_page_size()))   /* powers of two: a multiple */
        return NULL;
    return os;
}

MMAPPER_API int mmapper_create(const struct mmapper_config *cfg, mmapper_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    unsigned log_chunk = cfg && cfg->log_chunk_bytes ? cfg->log_chunk_bytes : 22;
    const struct mmapper_os *os = check_os(cfg ? cfg->os : NULL);
    if (!os)
        return -EINVAL;
    unsigned log_page = (unsigned)__builtin_ctzl(os->page_size ? os->page_size : os_page_size());
    if (log_chunk < log_page || log_chunk > 30)
        return -EINVAL;

    int err = fork_handlers_register();
    if (err)
        return err;
    size_t bytes = meta_pages_round(sizeof(struct mmapper));
    mmapper_t *m;
    err = os_meta_map(bytes, (void **)&m);
    if (err)
        return err;
    /* Fresh pages are zero: the counters start at 0. */
    m->chunk_shift = log_chunk;
    m->block_signals = cfg && cfg->block_signals;
    m->self_bytes = bytes;
    os_init(&m->os, os, &m->counters, cfg && cfg->disable_names);
    if ((err = slab_table_init(&m->table, &m->counters)) != 0) {
        os_meta_unmap(m, bytes);
        return err;
    }
    if ((err = reclaim_register(&m->table)) != 0) {
        slab_table_fini(&m->table);
        os_meta_unmap(m, bytes);
        return err;
    }
    counter_add(&m->counters.metadata_bytes, bytes);
    *out = m;
    return 0;
}

MMAPPER_API void mmapper_destroy(mmapper_t *m)
{
    if (!m)
        return;
    reclaim_unregister(&m->table);
    slab_table_fini(&m->table);
    os_meta_unmap(m, m->self_bytes);
}
