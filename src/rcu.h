/*
 * The one place that names the liburcu flavour.
 *
 * Flavour: bulletproof (urcu-bp).  Our callers are arbitrary allocator
 * threads that never register with RCU; urcu-bp registers a thread on its
 * first read-side lock and notices thread exit itself.  The other flavours
 * silently ignore unregistered readers (../shared/README.md), which would let
 * a grace period end under a reader's feet.
 *
 * The read-side lock is inlined (_LGPL_SOURCE) and the library is built with
 * -ftls-model=initial-exec, so a lock/unlock pair costs a few ns.
 *
 * Pointers published to readers are stored with memory_order_release and
 * loaded with memory_order_acquire (rcu_publish / rcu_fetch) rather than
 * through rcu_assign_pointer/rcu_dereference: the same ordering, but visible
 * to ThreadSanitizer, which cannot see liburcu's inline asm and volatile
 * accesses.  TSan also cannot know that a grace period orders every reader
 * before the free that follows it; rcu_read_exit() and rcu_wait_for_readers()
 * tell it with a release/acquire pair on one token.
 */
#ifndef MMAPPER_RCU_H
#define MMAPPER_RCU_H

/* liburcu 0.13 places urcu-bp reader records 32 bytes into its registry
 * block although their type asks for 128-byte alignment, and UBSan flags
 * every inlined read-side lock (the accesses themselves are 8-byte and
 * harmless).  UBSan builds therefore call the library's out-of-line lock
 * (configure defines MMAPPER_URCU_LIBRARY_CALLS); everything else inlines. */
#if !defined(MMAPPER_URCU_LIBRARY_CALLS) && !defined(_LGPL_SOURCE)
#define _LGPL_SOURCE
#endif
#include <urcu/urcu-bp.h>

#include <stdbool.h>

#if defined(__SANITIZE_THREAD__)
#define MM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MM_TSAN 1
#endif
#endif

#ifdef MM_TSAN
#include <sanitizer/tsan_interface.h>
extern char mm_rcu_grace_period_token;
#define MM_TSAN_RELEASE() __tsan_release(&mm_rcu_grace_period_token)
#define MM_TSAN_ACQUIRE() __tsan_acquire(&mm_rcu_grace_period_token)
#else
#define MM_TSAN_RELEASE() ((void)0)
#define MM_TSAN_ACQUIRE() ((void)0)
#endif

#define rcu_publish(slot, value) atomic_store_explicit((slot), (value), memory_order_release)
#define rcu_fetch(slot) atomic_load_explicit((slot), memory_order_acquire)

/* Whether this thread is already registered with urcu-bp (it registers on
 * its first read-side lock).  Lets a hot path test it up front and keep the
 * registration call, and the stack frame a call needs, out of line. */
#ifndef _LGPL_SOURCE
/* Without the inline read side (UBSan builds) urcu-bp's TLS is out of
 * reach: fork.c keeps this flag instead. */
extern _Thread_local bool mm_rcu_thread_registered;
#endif

static inline bool rcu_reader_registered(void)
{
#ifdef _LGPL_SOURCE
    return URCU_TLS(urcu_bp_reader) != NULL;
#else
    return mm_rcu_thread_registered;
#endif
}

/* fork.c: a thread's first section while a fork is being prepared reads
 * without registering with urcu-bp (which would wait for the lock the
 * forking thread holds); see fork.c for why that is safe. */
bool rcu_read_enter_unregistered(void);
void rcu_read_exit_fork_reader(void);

/* A read-side section for a thread known to be registered
 * (rcu_reader_registered()): the hot path of lookups. */
static inline void rcu_read_enter_registered(void)
{
    urcu_bp_read_lock();
}

static inline void rcu_read_exit_registered(void)
{
    MM_TSAN_RELEASE();   /* see rcu_read_exit */
    urcu_bp_read_unlock();
}

/* Enter a read-side section.  Returns what rcu_read_exit() needs: whether
 * this section is a fork reader's (never, once the thread is registered). */
static inline bool rcu_read_enter(void)
{
    if (__builtin_expect(rcu_reader_registered(), 1)) {
        urcu_bp_read_lock();
        return false;
    }
    return rcu_read_enter_unregistered();
}

static inline void rcu_read_exit(bool fork_reader)
{
    MM_TSAN_RELEASE();   /* everything this reader did happens before ... */
    if (__builtin_expect(fork_reader, 0))
        rcu_read_exit_fork_reader();
    else
        urcu_bp_read_unlock();
}

/* Wait until every read-side critical section that might still see an
 * object unpublished before this call has ended.  Never call it inside a
 * read-side section or while holding a lock a reader may wait for. */
static inline void rcu_wait_for_readers(void)
{
    urcu_bp_synchronize_rcu();
    MM_TSAN_ACQUIRE();   /* ... the frees that follow the grace period. */
}

#endif
