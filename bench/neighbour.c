/*
 * mmbench-neighbour: how long an unmap takes while another thread makes a
 * slow system call in another slab.
 *
 * A neighbour thread maps 256 MiB in slab A, touches every page and
 * decommits it, over and over: the decommit frees 65536 pages, a system
 * call of several milliseconds that holds the kernel's mmap_lock.  Another
 * thread meanwhile maps one chunk in a slab of its own and unmaps it (which
 * removes the slab and retires its metadata), and times the unmap.  The
 * same is timed with raw mmap/munmap in the same conditions: the kernel's
 * own wait for mmap_lock is the floor.  Before the reclaimer thread, the
 * unmap also waited for a grace period, which waited for the neighbour's
 * whole system call; now it must cost what the raw munmap costs.
 *
 * Target: p99 of mmapper's unmap <= 1.5 x p99 of the raw munmap, both with
 * the neighbour running.  Medians of 3 repetitions.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mmapper.h"

#define NEIGHBOUR_BYTES ((size_t)256 << 20)
#define SAMPLES 2000
#define REPS 3

static mmapper_t *m;
static size_t chunk, slab;
static char *base;                 /* slab 0: the neighbour's; 1..: ours */
static _Atomic bool stop;
static _Atomic uint64_t decommits;
static _Atomic uint64_t decommit_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *neighbour(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        if (mmapper_ensure_mapped(m, base, NEIGHBOUR_BYTES, NULL) != 0)
            abort();
        for (size_t off = 0; off < NEIGHBOUR_BYTES; off += 4096)
            base[off] = 1;
        uint64_t t0 = now_ns();
        if (mmapper_decommit(m, base, NEIGHBOUR_BYTES) != 0)
            abort();
        atomic_fetch_add(&decommit_ns, now_ns() - t0);
        atomic_fetch_add(&decommits, 1);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct pct {
    double p50, p99, max;
};

/* Map a chunk in slab 1 + i % 64 and time its unmap (the slab goes),
 * alternating with a raw mmap/munmap of the same chunk, so that both see
 * the same conditions. */
static void measure(struct pct *mm, struct pct *raw)
{
    static uint64_t t[2][SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        char *p = base + (1 + i % 64) * slab + (size_t)(i / 64 % 256) * chunk;
        if (mmapper_ensure_mapped(m, p, chunk, NULL) != 0)
            abort();
        uint64_t t0 = now_ns();
        if (mmapper_unmap(m, p, chunk) != 0)
            abort();
        t[0][i] = now_ns() - t0;
        if (mmap(p, chunk, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != p)
            abort();
        t0 = now_ns();
        munmap(p, chunk);
        t[1][i] = now_ns() - t0;
    }
    for (int k = 0; k < 2; k++) {
        qsort(t[k], SAMPLES, sizeof(t[k][0]), cmp_u64);
        (k ? raw : mm)[0] = (struct pct){ t[k][SAMPLES / 2] / 1e3, t[k][SAMPLES * 99 / 100] / 1e3,
                                          t[k][SAMPLES - 1] / 1e3 };
    }
}

static double median3(double a, double b, double c)
{
    return a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
}

static struct pct median(struct pct r[REPS])
{
    return (struct pct){ median3(r[0].p50, r[1].p50, r[2].p50),
                         median3(r[0].p99, r[1].p99, r[2].p99),
                         median3(r[0].max, r[1].max, r[2].max) };
}

int main(void)
{
    if (mmapper_create(NULL, &m) != 0)
        return 1;
    chunk = mmapper_granularity(m);
    slab = 256 * chunk;
    void *p;
    /* 65 slabs: the neighbour's and 64 of ours, reserved then given back so
     * that nothing else maps there. */
    if (mmapper_quarantine_anywhere(m, 65 * slab + slab, NULL, &p) != 0)
        return 1;
    base = (char *)(((uintptr_t)p + slab - 1) & ~(uintptr_t)(slab - 1));
    mmapper_unmap(m, p, 66 * slab);

    struct pct quiet[REPS], quiet_raw[REPS], busy[REPS], raw[REPS];
    for (int r = 0; r < REPS; r++)
        measure(&quiet[r], &quiet_raw[r]);
    pthread_t t;
    pthread_create(&t, NULL, neighbour, NULL);
    while (atomic_load(&decommits) < 2)
        ;
    for (int r = 0; r < REPS; r++)
        measure(&busy[r], &raw[r]);
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    mmapper_unmap(m, base, 65 * slab);
    mmapper_destroy(m);

    struct pct q = median(quiet), qr = median(quiet_raw), b = median(busy), w = median(raw);
    double ratio = b.p99 / w.p99;
    printf("== unmap next to a slow system call (us; p50 / p99 / max; median of %d x %d)\n",
           REPS, SAMPLES);
    printf("neighbour decommit of 256 MiB touched: %.1f ms mean over %llu\n",
           atomic_load(&decommit_ns) / 1e6 / (double)atomic_load(&decommits),
           (unsigned long long)atomic_load(&decommits));
    printf("mmapper unmap, quiet:          %8.1f %8.1f %8.1f\n", q.p50, q.p99, q.max);
    printf("raw munmap, quiet:             %8.1f %8.1f %8.1f\n", qr.p50, qr.p99, qr.max);
    printf("mmapper unmap, neighbour busy: %8.1f %8.1f %8.1f\n", b.p50, b.p99, b.max);
    printf("raw munmap, neighbour busy:    %8.1f %8.1f %8.1f\n", w.p50, w.p99, w.max);
    printf("neighbour_unmap_p99_ratio_to_raw: %.2f (target <= 1.5): %s\n", ratio,
           ratio <= 1.5 ? "met" : "MISSED");
    return 0;
}
