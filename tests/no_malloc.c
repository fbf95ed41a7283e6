/*
 * The library must never call malloc: our callers are malloc implementations
 * (jemalloc forbids its extent hooks to allocate).  This program interposes
 * malloc/calloc/realloc/free/posix_memalign/aligned_alloc, arms a counter,
 * and drives every API function from a thread that has never touched the
 * library (so urcu-bp registers it on the way), through slab creation, table
 * growth, slab reclamation (synchronize_rcu) and destroy.
 * Built only without sanitizers, which interpose malloc themselves.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmapper.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_bool armed;
static atomic_int calls;

static void note(void)
{
    if (atomic_load(&armed))
        atomic_fetch_add(&calls, 1);
}

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { if (p) note(); __libc_free(p); }
void *aligned_alloc(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n)
{
    note();
    *out = __libc_memalign(a, n);
    return *out ? 0 : ENOMEM;
}

#define CHECK(expr)                                                                     \
    do {                                                                                \
        int err_ = (expr);                                                              \
        if (err_) {                                                                     \
            atomic_store(&armed, false);                                                \
            fprintf(stderr, "FAIL: %s = %d (%s)\n", #expr, err_, mmapper_strerror(err_)); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

static void *exercise(void *arg)
{
    (void)arg;
    atomic_store(&armed, true);
    mmapper_t *m;
    CHECK(mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = 16 }, &m));
    size_t chunk = mmapper_granularity(m);
    struct mmapper_map_opts opts = { .name = "no-malloc", .huge_page = MMAPPER_HUGE_PAGE_NEVER };
    void *heap;
    /* 2048 chunks = 8 slabs; then 600 more single-chunk slabs to grow the table. */
    CHECK(mmapper_quarantine_anywhere(m, 2048 * chunk, &opts, &heap));
    char *h = heap;
    CHECK(mmapper_ensure_mapped(m, h, 1000 * chunk, &opts));
    CHECK(mmapper_protect(m, h + 10 * chunk, 5 * chunk));
    CHECK(mmapper_ensure_mapped(m, h, 20 * chunk, NULL));
    CHECK(mmapper_decommit(m, h, 500 * chunk));
    CHECK(mmapper_quarantine(m, h, 2048 * chunk, NULL));
    (void)mmapper_is_mapped(m, h);
    (void)mmapper_state(m, h);
    /* Spread apart: one slab each, no syscall.  With 32-bit pointers 230 of
     * them, one slab (16 MiB) apart, fit under 4 GiB and still grow the
     * first array (256 slots). */
#if UINTPTR_MAX > 0xffffffffu
    const uintptr_t far = (uintptr_t)1 << 45, far_step = (uintptr_t)1 << 30;
    const int far_slabs = 600;
#else
    const uintptr_t far = 0x10000000u, far_step = 256 * chunk;
    const int far_slabs = 230;
#endif
    for (int i = 0; i < far_slabs; i++)
        CHECK(mmapper_mark_as_mapped(m, (void *)(far + (uintptr_t)i * far_step), 1));
    struct mmapper_stats s;
    mmapper_get_stats(m, &s);
    CHECK(mmapper_unmap(m, h, 2048 * chunk));   /* slabs retired to the reclaimer */
    CHECK(mmapper_reclaim_wait(m));             /* ... and freed: synchronize_rcu */
    /* The marked chunks were never really mapped: destroy forgets them
     * without unmapping, as documented. */
    mmapper_destroy(m);
    atomic_store(&armed, false);
    printf("slabs at peak: %llu, table capacity: %llu\n", (unsigned long long)s.slabs,
           (unsigned long long)s.table_capacity);
    return NULL;
}

int main(void)
{
    /* The first mapper of a process starts the reclaimer thread, and
     * pthread_create may allocate (documented); every later call, the
     * reclaimer's own work included, must not. */
    mmapper_t *first;
    atomic_store(&armed, true);
    CHECK(mmapper_create(NULL, &first));
    atomic_store(&armed, false);
    printf("allocator calls while starting the reclaimer thread: %d (allowed)\n",
           atomic_exchange(&calls, 0));
    pthread_t t;
    if (pthread_create(&t, NULL, exercise, NULL) != 0)
        return 1;
    pthread_join(t, NULL);
    mmapper_destroy(first);
    int n = atomic_load(&calls);
    if (n != 0) {
        printf("FAIL: %d allocator calls from inside the library\n", n);
        return 1;
    }
    printf("PASS: no allocator call from any API function\n");
    return 0;
}
