/*
 * What every reliability program shares: command-line flags, a seeded RNG,
 * failing loudly with the seed, threads, a test region the kernel will not
 * put foreign mappings into, and cross-checks against the kernel.
 *
 * The programs are plain C (no Criterion) so that they run under
 * ThreadSanitizer; each one exits 0 on success and 1 with a message naming
 * the seed on the first broken invariant.
 */
#ifndef MMAPPER_STRESS_UTIL_H
#define MMAPPER_STRESS_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapper.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif

/* TSan runs these programs ~10x slower, ASan+UBSan a few times: defaults
 * shrink so that `make check` stays at a few seconds in every build. */
#ifdef STRESS_TSAN
#define STRESS_SCALE(plain, tsan) (tsan)
#define STRESS_SCALE3(plain, asan, tsan) (tsan)
#elif defined(STRESS_ASAN)
#define STRESS_SCALE(plain, tsan) (plain)
#define STRESS_SCALE3(plain, asan, tsan) (asan)
#else
#define STRESS_SCALE(plain, tsan) (plain)
#define STRESS_SCALE3(plain, asan, tsan) (plain)
#endif

struct stress_opts {
    unsigned threads;
    uint64_t ops;        /* per thread, or steps for single-thread programs */
    uint64_t seed;
    double seconds;      /* > 0: run for this long instead of `ops` */
    unsigned rounds;
    bool exact_ops;      /* ops is a bound, not an amount of work: never shrunk */
};

/* Parse --threads N --ops N (alias --steps) --seed S --seconds S --minutes M
 * --rounds N over the defaults in *o; prints usage and exits on a bad flag. */
void stress_parse(int argc, char **argv, const char *summary, struct stress_opts *o);

/* Under an emulator (scripts/cross.sh sets MMAPPER_EMULATED=qemu-user),
 * the name of it, else NULL.  A check that reads what the emulator does not
 * reproduce (the host's /proc views, its per-thread memory) is skipped with
 * stress_skip_emulated(why): exit 77, one line saying why. */
const char *stress_emulated(void);
void stress_skip_emulated(const char *why) __attribute__((noreturn));

/* Print "PROG: FAIL (seed S): message" and exit(1), from any thread. */
void stress_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void stress_fail_at(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
/* CHECK(cond, "fmt", ...): the message says what was being checked. */
#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond))                                                                  \
            stress_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);                   \
    } while (0)
/* rc must equal want (0 or a negative errno). */
#define CHECK_RC(rc, want, what)                                                      \
    do {                                                                              \
        int rc_ = (rc), want_ = (want);                                               \
        if (rc_ != want_)                                                             \
            stress_fail("%s:%d: %s returned %d (%s), expected %d (%s)", __FILE__,      \
                        __LINE__, (what), rc_, mmapper_strerror(rc_), want_,          \
                        mmapper_strerror(want_));                                     \
    } while (0)

/* The summary line: "PROG: OK seed=S <message>". */
void stress_summary(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* splitmix64: small, fast, and good enough to pick ranges. */
struct rng {
    uint64_t s;
};
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Mostly small, sometimes up to max: lengths of ranges. */
uint64_t rng_length(struct rng *r, uint64_t max);

double stress_now(void);
/* True when the --seconds budget (if any) is spent. */
bool stress_time_up(const struct stress_opts *o, double started);

/* Run fn(i, arg) on n threads (1 MiB stacks) and join them all. */
void stress_run_threads(unsigned n, void *(*fn)(void *), void *args, size_t arg_size);

/*
 * A test region: `bytes` of chunk memory reserved (Quarantined) through
 * mmapper_quarantine_anywhere(), starting at a multiple of `align` (0: a
 * chunk), with a free gap of at least STRESS_GUARD bytes left above it: the
 * kernel places new mappings top-down in the highest gap that fits, so other
 * mappings of the process (sanitizer and libc allocations, ...) go there and
 * not into chunks of the region that the test unmaps.  4 GiB: glibc alone
 * may reserve 128 MiB for each of up to 8 x cores malloc arenas as threads
 * start allocating (512 MiB was once filled, and a region chunk taken).
 * With 32-bit pointers glibc's arenas are 1 MiB each and the whole space
 * is 4 GiB: 256 MiB.
 */
#if UINTPTR_MAX > 0xffffffffu
#define STRESS_GUARD ((size_t)4 << 30)
#else
#define STRESS_GUARD ((size_t)256 << 20)
#endif
void *stress_region(mmapper_t *m, size_t bytes, size_t align);

/* Whether the program runs under valgrind.  Valgrind places mappings
 * bottom-up from low addresses, its own among them, and fills any hole:
 * there stress_region() and stress_free_span() use ranges high above
 * instead of quarantine_anywhere() and the kernel's choice. */
bool stress_under_valgrind(void);

/* Chunks per slab (SLAB_CHUNKS in src/slab_table.h): only used to aim ranges
 * at slab boundaries and to predict stats.slabs. */
#define STRESS_SLAB_CHUNKS 256

/*
 * An address range the kernel has free, for tests that map at fixed
 * addresses themselves: the largest power of two <= want (and >= 2^min_log)
 * found, aligned to align, with a free STRESS_GUARD above it.  Nothing is
 * kept reserved.  *got receives the size.
 */
void *stress_free_span(size_t want, unsigned min_log, size_t align, size_t *got);

/* procmaps_check(), failing the program with the mismatch. */
void stress_check_maps(const mmapper_t *m, const void *start, size_t bytes, bool strict,
                       const char *when);
/* Every chunk's is_mapped() agrees with its state(): no chunk is left half-way
 * through a transition (is_mapped false while state says Mapped). */
void stress_check_settled(const mmapper_t *m, const void *start, size_t bytes,
                          const char *when);

struct os_ledger;
struct test_os;

/*
 * An OS layer over a test_os for kernels built without CONFIG_ANON_VMA_NAME
 * (like the one these tests were written on): the kernel's -EINVAL to a
 * name is answered with success, so that tests reach the code that runs
 * after a successful name.  Faults the test_os injects still come through.
 * On a kernel with names it forwards everything unchanged.
 */
struct names_os {
    struct mmapper_os os;            /* give &n->os to the mapper or a ledger */
    struct test_os *t;
    bool pretend;
};
void stress_names_os_init(struct names_os *n, struct test_os *t);
/* Whether the running kernel names anonymous VMAs (probed once). */
bool stress_kernel_has_names(void);
/* os_ledger_verify(), failing the program with the problem. */
void stress_check_ledger(struct os_ledger *l, const mmapper_t *m, const char *when);

/* Report SIGSEGV/SIGBUS with the faulting address and the seed. */
void stress_catch_faults(const mmapper_t *m);

extern const char *stress_prog;
extern uint64_t stress_seed;

#endif
