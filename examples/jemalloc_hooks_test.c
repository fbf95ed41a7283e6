/*
 * The extent hooks' contract, called directly as jemalloc would, on cases
 * the random workload rarely or never produces: alignment above the chunk
 * size, new_addr (honoured exactly or refused), a reservation tail, ragged
 * decommits, refused deallocation.  After each step the chunk states and
 * /proc/self/maps must say what the hooks promised.  Last, forks while four
 * threads are inside the hooks: every child can use them.  Exits 0 or 1.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hang_report.h"
#include "jemalloc_hooks.h"
#include "mmapper.h"
#include "procmaps.h"

static int failures;
static mmapper_t *m;
static size_t chunk;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            printf("FAIL line %d: %s: ", __LINE__, #cond);                        \
            printf(__VA_ARGS__);                                                  \
            putchar('\n');                                                        \
        }                                                                         \
    } while (0)

/* Every chunk of [p, p + bytes) is in state st, and the kernel agrees. */
static void expect(const void *p, size_t bytes, mmapper_state_t st, const char *what)
{
    for (size_t off = 0; off < bytes; off += chunk)
        CHECK(mmapper_state(m, (const char *)p + off) == st, "%s: chunk +%zu MiB is in state %d",
              what, off >> 20, (int)mmapper_state(m, (const char *)p + off));
    char why[160];
    CHECK(procmaps_check(m, p, bytes, true, why, sizeof(why)) == 0, "%s: %s", what, why);
}

/* ---- fork while other threads are inside the hooks ------------------------ */

#define BUSY_THREADS 4
#define BUSY_FORKS 200

static _Atomic bool busy_stop;

/* Allocation and ragged deallocation both take the hooks' mutex. */
static void *busy(void *arg)
{
    extent_hooks_t *e = arg;
    while (!atomic_load(&busy_stop)) {
        bool zero = false, commit = false;
        char *p = e->alloc(e, NULL, chunk + 4096, 4096, &zero, &commit, 0);
        if (p) {
            (void)e->dalloc(e, p + 4096, chunk, false, 0);   /* ragged: refused */
            (void)e->dalloc(e, p, chunk + 4096, false, 0);
        }
    }
    return NULL;
}

/* Each child uses the same hooks (their mutex, maybe held by a thread that
 * does not exist in it) under a deadline. */
static void fork_while_busy(extent_hooks_t *e)
{
    pthread_t t[BUSY_THREADS];
    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_create(&t[i], NULL, busy, e);
    unsigned hung = 0, failed = 0;
    for (int k = 0; k < BUSY_FORKS; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            bool zero = false, commit = true;
            char *p = e->alloc(e, NULL, chunk + 4096, 4096, &zero, &commit, 0);
            if (!p)
                _exit(2);
            memset(p, 1, chunk + 4096);
            _exit(e->dalloc(e, p, chunk + 4096, true, 0) ? 3 : 0);
        }
        bool h = false;
        int status = hang_reap(pid, 15, "jemalloc_hooks_test: child", &h);
        if (h || (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM))
            hung++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    atomic_store(&busy_stop, true);
    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(hung == 0 && failed == 0, "%u of %d children hung, %u failed", hung, BUSY_FORKS,
          failed);
    printf("fork while busy: %d forks with %d threads inside the hooks: %u hung, %u failed\n",
           BUSY_FORKS, BUSY_THREADS, hung, failed);
}

static bool zero_at(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i += 4096)
        if (c[i] || c[bytes - 1 - i])
            return false;
    return true;
}

int main(void)
{
    struct mmapper_extent_hooks *h;
    if (mmapper_create(NULL, &m) != 0 || mmapper_extent_hooks_create(m, &h) != 0) {
        printf("FAIL: setup\n");
        return 1;
    }
    extent_hooks_t *e = mmapper_extent_hooks_table(h);
    chunk = mmapper_granularity(m);
    const size_t page = 4096, align = 4 * chunk, size = chunk + page;   /* a tail */
    bool zero = false, commit = true;

    /* Alignment above the chunk size, committed, with a tail. */
    char *p = e->alloc(e, NULL, size, align, &zero, &commit, 0);
    CHECK(p && (uintptr_t)p % align == 0, "alloc(align %zu) gave %p", align, (void *)p);
    if (!p)
        return 1;
    CHECK(zero && commit, "alloc: zero %d commit %d", zero, commit);
    expect(p, 2 * chunk, MMAPPER_MAPPED, "committed alloc");
    CHECK(zero_at(p, size), "fresh memory not zero");
    struct mmapper_stats ms;
    mmapper_get_stats(m, &ms);
    CHECK(ms.chunks_mapped == 2 && ms.chunks_quarantined == 0,
          "the over-reservation for alignment was not given back: %" PRIu64 " Mapped, %" PRIu64
          " Quarantined", ms.chunks_mapped, ms.chunks_quarantined);
    memset(p, 0xab, size);

    /* new_addr inside a chunk of ours: refused.  On the next free chunk
     * boundary, uncommitted: exactly there, or NULL if the kernel has
     * something there. */
    zero = false, commit = false;
    CHECK(e->alloc(e, p + size, page, page, &zero, &commit, 0) == NULL, "alloc inside a tail");
    char *q = p + 2 * chunk;
    CHECK(e->alloc(e, q + page, page, page, &zero, &commit, 0) == NULL, "alloc off a chunk "
          "boundary: would own a head it cannot track");
    char *r = e->alloc(e, q, 3 * page, page, &zero, &commit, 0);
    CHECK(!r || r == q, "alloc(new_addr %p) gave %p", (void *)q, (void *)r);
    if (r) {
        CHECK(zero && !commit, "alloc(new_addr): zero %d commit %d", zero, commit);
        expect(r, chunk, MMAPPER_QUARANTINED, "uncommitted alloc at new_addr");
        CHECK(!e->commit(e, r, 3 * page, page, page, 0), "commit of one page");
        expect(r, chunk, MMAPPER_MAPPED, "one page committed");
        CHECK(zero_at(r + page, page), "committed page not zero");
        CHECK(!e->dalloc(e, r, 3 * page, true, 0), "dalloc of a whole reservation refused");
        expect(r, chunk, MMAPPER_UNMAPPED, "dalloc at tail");
    } else {
        printf("note: %p was taken; new_addr success path not tested\n", (void *)q);
    }

    /* Split the extent in two, as jemalloc would (the hook only agrees). */
    CHECK(!e->split(e, p, size, chunk / 2, size - chunk / 2, true, 0), "split refused");
    /* Ragged decommit: no whole chunk inside, so only zeroed; stays Mapped. */
    CHECK(!e->decommit(e, p, chunk / 2, 0, chunk / 2, 0), "decommit of half a chunk");
    expect(p, 2 * chunk, MMAPPER_MAPPED, "ragged decommit");
    CHECK(zero_at(p, chunk / 2) && p[chunk / 2] == (char)0xab, "ragged decommit zeroed the "
          "wrong pages");
    /* Ragged dalloc: refused, nothing changes. */
    CHECK(e->dalloc(e, p + chunk / 2, size - chunk / 2, true, 0), "ragged dalloc accepted");
    expect(p, 2 * chunk, MMAPPER_MAPPED, "ragged dalloc");
    /* The second part runs from mid-chunk to the tail: its last chunk goes,
     * its first (shared) one is only zeroed. */
    CHECK(!e->decommit(e, p + chunk / 2, size - chunk / 2, 0, size - chunk / 2, 0), "decommit");
    expect(p, chunk, MMAPPER_MAPPED, "decommit, shared chunk");
    expect(p + chunk, chunk, MMAPPER_QUARANTINED, "decommit, chunk ending at the tail");
    CHECK(zero_at(p, chunk), "shared chunk not zeroed");
    /* Merge back, commit all, deallocate all. */
    CHECK(!e->merge(e, p, chunk / 2, p + chunk / 2, size - chunk / 2, false, 0), "merge");
    CHECK(!e->commit(e, p, size, 0, size, 0), "commit");
    expect(p, 2 * chunk, MMAPPER_MAPPED, "recommitted");
    CHECK(zero_at(p, size), "recommitted memory not zero");
    CHECK(!e->dalloc(e, p, size, true, 0), "dalloc of the whole reservation refused");
    expect(p, 2 * chunk, MMAPPER_UNMAPPED, "dalloc");

    /* Destroy rounds out to chunks. */
    zero = false, commit = true;
    p = e->alloc(e, NULL, 3 * chunk, page, &zero, &commit, 0);
    CHECK(p != NULL, "alloc");
    if (p) {
        e->destroy(e, p + page, chunk, true, 0);
        expect(p, 2 * chunk, MMAPPER_UNMAPPED, "destroy");
        expect(p + 2 * chunk, chunk, MMAPPER_MAPPED, "destroy's neighbour");
        e->destroy(e, p + 2 * chunk, chunk, true, 0);
    }

    fork_while_busy(e);

    mmapper_get_stats(m, &ms);
    CHECK(ms.chunks_mapped + ms.chunks_quarantined + ms.slabs == 0, "%" PRIu64 " chunks, %" PRIu64
          " slabs left", ms.chunks_mapped + ms.chunks_quarantined, ms.slabs);
    mmapper_extent_hooks_destroy(h);
    mmapper_destroy(m);
    printf("%s: jemalloc hooks contract, %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
