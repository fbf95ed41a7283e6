/*
 * Small helpers shared by the benchmark driver: time, a cheap RNG kept out of
 * measured loops, a sink that keeps results alive, fatal errors.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Out-of-line for real: every implementation's lookup is a genuine call, as
 * a library's entry point is for its client.  gcc's noipa also stops it
 * from propagating constants or purity across the call. */
#if defined(__has_attribute)
#if __has_attribute(noipa)
#define BENCH_NOINLINE __attribute__((noinline, noipa))
#endif
#endif
#ifndef BENCH_NOINLINE
#define BENCH_NOINLINE __attribute__((noinline))
#endif

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: deterministic from --seed, never called in a timed lookup loop. */
struct rng {
    uint64_t s;
};

static inline void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    r->s = (seed ^ (stream * 0x9E3779B97F4A7C15ull)) | 1;
}

static inline uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Results are added here so the compiler cannot drop the work producing
 * them (atomic: every worker thread adds its own). */
extern volatile _Atomic uint64_t bench_sink;

static inline void sink(uint64_t v)
{
    atomic_fetch_add_explicit(&bench_sink, v, memory_order_relaxed);
}

__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
/* die() with mmapper_strerror(err) appended, if err != 0. */
void check(int err, const char *what);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Median of n values (reorders them); 0 for n == 0. */
double median(double *v, size_t n);

#endif
