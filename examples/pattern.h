/*
 * Test helpers shared by the example drivers: failure reporting, a small PRNG
 * and a content pattern that tells every object (and every word offset in it) apart.
 *
 * An object of n words tagged `tag` holds mix64(tag + i) in word i, for the
 * sampled indices only: all of the first PATTERN_DENSE_WORDS words, then the
 * first and last word of every PATTERN_STRIDE_WORDS block, then the last word.
 * Small objects are thus checked in full and large ones cheaply, yet a lost
 * or shared page anywhere would show.
 */
#ifndef EXAMPLES_PATTERN_H
#define EXAMPLES_PATTERN_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Built with a sanitizer: drivers shrink their workloads. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

/* Failures seen so far; the first ten are reported. */
static _Atomic unsigned long failures;

/* One write per message, so that threads' messages do not interleave. */
__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) >= 10)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL: %s\n", msg);
}

/* fail() with the line and the condition, when cond is false. */
__attribute__((format(printf, 3, 4))) static inline void fail_check(int line, const char *cond,
                                                                    const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail("line %d: %s: %s", line, cond, msg);
}
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond))                                                              \
            fail_check(__LINE__, #cond, __VA_ARGS__);                             \
    } while (0)

#define PATTERN_DENSE_WORDS 512     /* 4 KiB */
#define PATTERN_STRIDE_WORDS 8192   /* 64 KiB */

static inline uint64_t mix64(uint64_t x)
{
    /* splitmix64's finalizer: a bijection, so distinct inputs never collide */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t rng_next(uint64_t *state)
{
    return mix64(*state += 0x9e3779b97f4a7c15ull);
}

/* Uniform in [lo, hi] (hi - lo small next to 2^64, so the bias is nil). */
static inline uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(state) % (hi - lo + 1);
}

/* The next sampled index of an n-word object after i (i = SIZE_MAX: the first). */
static inline size_t pattern_next(size_t i, size_t n)
{
    size_t j = i == SIZE_MAX ? 0 : i + 1;
    if (j >= PATTERN_DENSE_WORDS && j < n - 1) {
        size_t off = j % PATTERN_STRIDE_WORDS;
        if (off != 0 && off != PATTERN_STRIDE_WORDS - 1)
            j += PATTERN_STRIDE_WORDS - 1 - off;   /* this block's last word */
        if (j > n - 1)
            j = n - 1;
    }
    return j;
}

static inline void pattern_fill(uint64_t *w, size_t n, uint64_t tag)
{
    for (size_t i = pattern_next(SIZE_MAX, n); i < n; i = pattern_next(i, n))
        w[i] = mix64(tag + i);
}

/* Check the words an n-word fill wrote below `limit` words; returns the
 * first bad index, or SIZE_MAX if all match. */
static inline size_t pattern_check(const uint64_t *w, size_t n, size_t limit, uint64_t tag)
{
    for (size_t i = pattern_next(SIZE_MAX, n); i < n && i < limit; i = pattern_next(i, n))
        if (w[i] != mix64(tag + i))
            return i;
    return SIZE_MAX;
}

#endif
