/*
 * mmapper — chunk-granular virtual address space management for
 * multithreaded memory allocators and garbage collectors.
 *
 * The address space is divided into fixed-size, aligned chunks (4 MiB by
 * default).  For every chunk the library records one of four states and moves
 * it between them with exactly one system call per transition:
 *
 *     UNMAPPED ──quarantine──► QUARANTINED ──ensure_mapped──► MAPPED ◄──► PROTECTED
 *         └────────────ensure_mapped / mark_as_mapped──────────►┘  protect / ensure_mapped
 *     decommit: MAPPED|PROTECTED → QUARANTINED      unmap: any → UNMAPPED
 *
 * Conventions shared by every function below:
 *  - Functions return 0 on success or a negative errno value (-EINVAL,
 *    -ENOMEM, -EEXIST, ...).  The library never aborts, prints or exits.
 *  - Ranges [start, start + bytes) are rounded outward to chunk boundaries.
 *    bytes == 0, an overflowing start + bytes, or a range reaching past
 *    MMAPPER_ADDRESS_LIMIT is -EINVAL.  With 32-bit pointers the topmost
 *    chunk (which ends at 2^32) is never a chunk of ours: a range that
 *    reaches into it is -EINVAL, except for mmapper_unmap(), which leaves
 *    it out (so unmap(NULL, MMAPPER_ADDRESS_LIMIT) works everywhere).
 *  - Every function may be called from any thread at any time.  Callers never
 *    register threads with anything.
 *  - Calls are atomic with respect to each other: concurrent calls on
 *    overlapping ranges behave as if they ran one after the other (each is
 *    linearizable), and each chunk transition makes its system call exactly
 *    once.  A range is handled in windows of 32 consecutive slabs (slabs
 *    are 256 chunks, 1 GiB at the default chunk size), the first starting
 *    at the range's first slab, each next one where the previous ended.
 *    Each window is atomic, also against
 *    slabs created meanwhile; a range that touches at most 32 slabs is one
 *    window (any range of at most 31 * 256 + 1 = 7937 chunks, or one that
 *    starts on a slab boundary and has at most 8192 chunks).  A lock-free
 *    "nothing to do" answer for several chunks is atomic too.
 *  - Calls on chunks of different slabs never wait for each other, and no
 *    function except mmapper_reclaim_wait() waits for RCU readers: metadata
 *    that unmap retires is freed after a grace period by a thread the
 *    library owns (started by the first mmapper_create of the process).  A
 *    thread stopped anywhere inside a lookup (a collector's suspend signal,
 *    a debugger) delays only that freeing; what waits meanwhile is bounded
 *    (about 400 KiB per mapper: beyond it, empty slabs stay in the table and
 *    are reused).
 *  - An illegal transition (-EINVAL) or a conflict is found before any system
 *    call of its window: in a range of one window nothing changes; in a
 *    longer range the windows before it keep their new state.  When a
 *    system call fails, the chunks that earlier system calls of the same
 *    call moved keep their new state, the others keep their old one, and
 *    the kernel's mappings agree with the recorded state either way.
 *  - No function calls malloc() once the first mapper exists; metadata comes
 *    straight from mmap, so the library can back a malloc implementation.
 *    The first mmapper_create() of a process (or of a forked child) may
 *    allocate, in pthread_create and pthread_atfork.  One more case: if 32
 *    or more pthread keys exist before liburcu-bp is loaded (it was dlopen'ed
 *    late), glibc's pthread_setspecific in a thread's first lookup calls
 *    calloc once for that thread.  A malloc built on mmapper avoids that by
 *    linking mmapper (not dlopen), or by making each thread's first mmapper
 *    call outside its malloc path.
 *
 * Threads, signals and fork:
 *  - Signals: mmapper_is_mapped(), mmapper_is_mapped_many(), mmapper_state(),
 *    mmapper_granularity() and mmapper_get_stats() are async-signal-safe,
 *    including a thread's first call (its urcu-bp registration) and a
 *    handler that interrupts the same thread inside a lookup or a
 *    transition.  Transitions, create, destroy and reclaim_wait are not
 *    async-signal-safe.  With mmapper_config.block_signals, transitions
 *    block every signal while they hold slab or table locks (the length of
 *    their system calls), so a thread stopped by a signal never holds any
 *    lock: a stop-the-world collector may stop mutators anywhere and then
 *    make any call itself.  Without it, a thread stopped inside a
 *    transition keeps the locks it holds until it resumes: its slabs (256
 *    chunks each), or for a moment the table's (slab creation and removal);
 *    lookups are never affected.  (A thread stopped by ptrace inside a
 *    transition always keeps its slabs locked.)
 *  - Cancellation: no function is a cancellation point; cancellation is
 *    deferred inside every call (also inside a custom OS layer that would
 *    be one).  Asynchronous cancellation is never safe.
 *  - fork(): the library registers pthread_atfork handlers.  In the child,
 *    every function works on every mapper that existed before the fork
 *    (the record of a transition that was in flight in another thread is
 *    made to match the child's kernel view) and on new ones.  The child has
 *    no reclaimer thread until it creates a mapper; until then retired
 *    metadata waits (bounded) or is freed by mmapper_reclaim_wait().  The
 *    handlers hold nothing a transition waits for, so they cannot deadlock
 *    with an allocator whose own handlers wait for threads inside mmapper,
 *    whatever the order of registration.  Do not fork while a thread is
 *    stopped inside a lookup: the fork waits for the grace period in
 *    progress.
 */
#ifndef MMAPPER_H
#define MMAPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* This header's version (the library's: mmapper_version is not needed, the
 * soname and the symbol versions keep old programs working). */
#define MMAPPER_VERSION_MAJOR 0
#define MMAPPER_VERSION_MINOR 1
#define MMAPPER_VERSION_PATCH 0

#if defined(__GNUC__) && !defined(MMAPPER_API)
#define MMAPPER_API __attribute__((visibility("default")))
#elif !defined(MMAPPER_API)
#define MMAPPER_API
#endif

/*
 * Addresses at or above this limit are never valid.  With 64-bit pointers it
 * covers the largest user address space Linux offers (57-bit virtual
 * addresses with 5-level page tables).  With 32-bit pointers it is the last
 * byte of the address space, and the topmost chunk is left out (see the
 * conventions above): Linux never gives user space the top page (a 32-bit
 * task on a 64-bit kernel ends at 0xffffe000, native 32-bit kernels at
 * 3 GiB or lower).  On a machine with a smaller address
 * space the kernel itself refuses mappings above its limit and the call
 * returns -ENOMEM.
 */
#if UINTPTR_MAX > 0xffffffffu
#define MMAPPER_ADDRESS_LIMIT ((uintptr_t)1 << 57)
#else
#define MMAPPER_ADDRESS_LIMIT UINTPTR_MAX
#endif

/** Opaque mapper handle.  One mapper may be shared by any number of threads. */
typedef struct mmapper mmapper_t;

/** The recorded state of one chunk. */
typedef enum {
    MMAPPER_UNMAPPED = 0, /**< not ours: someone else may map it */
    MMAPPER_QUARANTINED,  /**< reserved by us, PROT_NONE, no commit charge */
    MMAPPER_MAPPED,       /**< readable and writable (and executable if asked) */
    MMAPPER_PROTECTED     /**< mapped but PROT_NONE, contents kept */
} mmapper_state_t;

/** Protection of a Mapped chunk. */
typedef enum {
    MMAPPER_PROT_READ_WRITE = 0,
    MMAPPER_PROT_READ_WRITE_EXEC
} mmapper_prot_t;

/** Transparent huge page advice applied to newly mapped or reserved chunks. */
typedef enum {
    MMAPPER_HUGE_PAGE_DEFAULT = 0,   /**< no madvise: the kernel's policy */
    MMAPPER_HUGE_PAGE_TRANSPARENT,   /**< madvise(MADV_HUGEPAGE) */
    MMAPPER_HUGE_PAGE_NEVER          /**< madvise(MADV_NOHUGEPAGE) */
} mmapper_huge_page_t;

/**
 * Options for calls that create mappings.  A NULL pointer or an all-zero
 * struct means the defaults: read-write, kernel huge page policy, no name.
 */
struct mmapper_map_opts {
    mmapper_prot_t prot;
    /** Applied with madvise() after the chunks are mapped or reserved.  On a
     *  kernel without transparent huge pages (madvise answers EINVAL) the
     *  advice is skipped and the call succeeds; tried once per mapper. */
    mmapper_huge_page_t huge_page;
    /**
     * VMA name shown in /proc/self/maps as [anon:NAME], set with
     * prctl(PR_SET_VMA_ANON_NAME).  NULL = no name.  At most
     * MMAPPER_NAME_MAX - 1 bytes of printable ASCII other than \ ` $ [ ];
     * anything else is -EINVAL.  On a kernel without CONFIG_ANON_VMA_NAME
     * names are silently skipped (tried once per mapper).
     */
    const char *name;
};

/** Size limit of a VMA name, including the terminating NUL (the kernel's). */
#define MMAPPER_NAME_MAX 80

/**
 * The system-call layer.  Every system call the library makes on chunk memory
 * goes through one of these function pointers, so tests can count calls and
 * inject failures.  Each returns 0 or a negative errno and must behave like
 * the system call it names (the `flags`, `prot` and `advice` arguments are the
 * kernel's MAP_*, PROT_* and MADV_* values).  `ctx` is passed back unchanged.
 * Wrappers usually forward to mmapper_os_default().
 */
struct mmapper_os {
    void *ctx;
    /** mmap(addr, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); *out = result. */
    int (*mmap)(void *ctx, void *addr, size_t len, int prot, int flags, void **out);
    int (*munmap)(void *ctx, void *addr, size_t len);
    int (*mprotect)(void *ctx, void *addr, size_t len, int prot);
    int (*madvise)(void *ctx, void *addr, size_t len, int advice);
    /** prctl(PR_SET_VMA_ANON_NAME, ...): -EINVAL when the kernel lacks it. */
    int (*set_name)(void *ctx, void *addr, size_t len, const char *name);
    /** The page size of the kernel this layer stands for; 0 means the
     *  running kernel's (sysconf(_SC_PAGESIZE)).  Otherwise a power of two
     *  and a multiple of the running kernel's, else mmapper_create() is
     *  -EINVAL.  Chunks are at least a page, and reservations the kernel
     *  places (quarantine_anywhere) are aligned to it: a layer can stand
     *  for a kernel with 16 KiB or 64 KiB pages on a 4 KiB one. */
    size_t page_size;
};

/**
 * Mapper configuration.  A NULL pointer or an all-zero struct means defaults.
 */
struct mmapper_config {
    /** log2 of the chunk size: 0 means 22 (4 MiB); otherwise between
     *  log2(page size) and 30 inclusive, else -EINVAL. */
    unsigned log_chunk_bytes;
    /** Never call PR_SET_VMA_ANON_NAME, even when a name is given. */
    bool disable_names;
    /** System-call layer; NULL means the real kernel.  Must outlive the mapper. */
    const struct mmapper_os *os;
    /** Block every signal while a transition holds slab locks (two
     *  rt_sigprocmask calls, about 0.3 us, per transition that has work to
     *  do), so that a thread stopped by a signal never holds one: for
     *  garbage collectors that stop the world with signals and then make
     *  calls on any slab.  Without it a thread stopped inside a transition
     *  keeps the slabs it holds locked (lookups and other slabs are not
     *  affected). */
    bool block_signals;
};

/** The real kernel's system-call layer (what a NULL config->os means). */
MMAPPER_API const struct mmapper_os *mmapper_os_default(void);

/**
 * Create a mapper.  *out receives the handle.  -EINVAL for a NULL out or a bad
 * config, -ENOMEM when metadata cannot be mapped.  Creating a mapper makes no
 * system call on chunk memory: every chunk starts Unmapped.
 * The first call of a process (and of a forked child) starts the library's
 * reclaimer thread (all signals blocked) and registers atfork handlers;
 * both may allocate.  -EAGAIN if the thread cannot be created.
 * Thread-safe; not async-signal-safe; usable in a forked child.
 */
MMAPPER_API int mmapper_create(const struct mmapper_config *cfg, mmapper_t **out);

/**
 * Free every byte of the mapper's metadata.  Chunk memory is neither mapped
 * nor unmapped: whatever is mapped stays mapped.  No other thread may use the
 * mapper during or after this call.  NULL is ignored.
 * Thread-safe against calls on other mappers; not async-signal-safe.
 */
MMAPPER_API void mmapper_destroy(mmapper_t *m);

/** Chunk size in bytes (a power of two), or 0 for a NULL mapper. */
MMAPPER_API size_t mmapper_granularity(const mmapper_t *m);

/**
 * Make every chunk of the range Mapped:
 *  Unmapped    → fresh zero-filled mapping, made with MAP_FIXED_NOREPLACE so it
 *                never replaces a mapping the library does not own (-EEXIST);
 *  Quarantined → committed (mprotect), zero-filled;
 *  Protected   → access restored, contents kept;
 *  Mapped      → nothing (no lock, no system call; protection is not changed).
 * Options apply to chunks this call transitions.  Returns only once every chunk
 * is usable, also when another thread is mapping the same chunks.
 * Like every transition below: thread-safe, not async-signal-safe, usable
 * in a forked child, never waits for RCU readers; blocks signals (only with
 * block_signals) while it holds locks.
 */
MMAPPER_API int mmapper_ensure_mapped(mmapper_t *m, void *start, size_t bytes,
                                      const struct mmapper_map_opts *o);

/**
 * Reserve the Unmapped chunks of the range (PROT_NONE, MAP_NORESERVE: no commit
 * charge) so nobody else can map there; chunks in any other state are left
 * alone.  -EEXIST if a foreign mapping is in the way.  o->prot is ignored.
 */
MMAPPER_API int mmapper_quarantine(mmapper_t *m, void *start, size_t bytes,
                                   const struct mmapper_map_opts *o);

/**
 * Find a free, chunk-aligned range of `bytes` bytes anywhere in the address
 * space, reserve it as with mmapper_quarantine(), and store its start in *out.
 * bytes must be a non-zero multiple of the chunk size (-EINVAL otherwise).
 */
MMAPPER_API int mmapper_quarantine_anywhere(mmapper_t *m, size_t bytes,
                                            const struct mmapper_map_opts *o,
                                            void **out);

/**
 * Record that the caller mapped the range itself, read-write: every chunk
 * becomes Mapped with no system call.  The caller is responsible for the
 * kernel really having it mapped.
 */
MMAPPER_API int mmapper_mark_as_mapped(mmapper_t *m, void *start, size_t bytes);

/**
 * Mapped → Protected (PROT_NONE, contents kept); Protected → nothing.
 * -EINVAL, with nothing changed, if a chunk is Unmapped or Quarantined.
 */
MMAPPER_API int mmapper_protect(mmapper_t *m, void *start, size_t bytes);

/**
 * Mapped or Protected → Quarantined: the memory goes back to the OS, the
 * reservation stays, the next ensure_mapped yields zeroes.  Quarantined →
 * nothing.  -EINVAL, with nothing changed, if a chunk is Unmapped.  If the
 * kernel fails it after unmapping the old mapping (before Linux 6.12, under
 * memory pressure), the call fails and each chunk of the failed run is
 * recorded Quarantined if it could be reserved again, else Unmapped: never
 * Mapped over a hole or over someone else's mapping.
 */
MMAPPER_API int mmapper_decommit(mmapper_t *m, void *start, size_t bytes);

/**
 * Any state → Unmapped: the address range is given back to the kernel.
 * Unmapped chunks are left alone (memory the library does not own is never
 * unmapped).  Metadata of address ranges left entirely Unmapped is freed by
 * the library's reclaimer thread after an RCU grace period (this call does
 * not wait for it), so mapping and unmapping across a huge address range
 * does not accumulate metadata.
 */
MMAPPER_API int mmapper_unmap(mmapper_t *m, void *start, size_t bytes);

/**
 * True if the chunk containing addr is Mapped.  Lock-free, makes no store to
 * shared memory; a true result means the memory at addr was readable and
 * writable at the moment of the check (acquire ordering with the transition).
 * False for a NULL mapper or an address outside the user address space.
 * Async-signal-safe (also as a thread's first mmapper call); usable in a
 * forked child.
 */
MMAPPER_API bool mmapper_is_mapped(const mmapper_t *m, const void *addr);

/**
 * Many lookups at once: mapped[i] = mmapper_is_mapped(m, addrs[i]) for every
 * i < n; returns how many are true.  mapped may be NULL (count only).  For
 * callers that look up many addresses (a collector scanning stacks and
 * registers conservatively, a heap verifier, a batch of frees): the batch
 * pays for one RCU read-side section per 4096 addresses instead of one per
 * address, and overlaps the cache misses of consecutive lookups.  Each
 * answer is what is_mapped would have said at some moment during the call
 * (a chunk that changes state meanwhile may read either way).  Addresses may
 * be anything (NULL, outside the user address space: false).  A NULL mapper
 * or a NULL addrs gives 0 and, if mapped is not NULL, n false answers.
 * Lock-free, makes no store to shared memory; async-signal-safe like
 * mmapper_is_mapped(); usable in a forked child.
 */
MMAPPER_API size_t mmapper_is_mapped_many(const mmapper_t *m, const void *const addrs[],
                                          size_t n, bool mapped[]);

/**
 * The recorded state of the chunk containing addr (lock-free, like is_mapped).
 * While access to a Mapped chunk is being revoked (protect, decommit, unmap
 * under way), it still reads Mapped here but is_mapped() is already false.
 * Async-signal-safe, like mmapper_is_mapped().
 */
MMAPPER_API mmapper_state_t mmapper_state(const mmapper_t *m, const void *addr);

/**
 * Free the metadata this mapper has retired (slabs and table arrays that
 * unmap and table resizing took out of use), now, on the calling thread.
 * Normally the library's reclaimer thread does this in the background after
 * an RCU grace period, and no other function waits for it; call this where
 * you need the memory back at once (before measuring metadata, in a forked
 * child, which has no reclaimer thread until it creates a mapper).  Unlike
 * every other function it waits for RCU readers: it does not return while
 * any thread is inside a lookup (or a read-side section of its own) that
 * began before it, or while other threads keep retiring.  -EINVAL for NULL.
 * Thread-safe; not async-signal-safe; cancellation is deferred until it
 * returns.
 */
MMAPPER_API int mmapper_reclaim_wait(mmapper_t *m);

/** Counters and gauges.  System-call counters count attempts, failed or not. */
struct mmapper_stats {
    uint64_t mmap_calls, munmap_calls, mprotect_calls, madvise_calls, name_calls;
    /** Chunks currently in each non-Unmapped state. */
    uint64_t chunks_quarantined, chunks_mapped, chunks_protected;
    /** Live slabs (groups of chunk states), slots of the slab hash table. */
    uint64_t slabs, table_capacity;
    /** Bytes of memory held for metadata, including the mapper itself. */
    uint64_t metadata_bytes;
};

/** Fill *out with a snapshot (each field read atomically; not one instant).
 * Lock-free: thread-safe and async-signal-safe (a signal handler may report
 * statistics).
 */
MMAPPER_API void mmapper_get_stats(const mmapper_t *m, struct mmapper_stats *out);

/** A static, human-readable message for 0 or a negative errno returned here. */
MMAPPER_API const char *mmapper_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* MMAPPER_H */
