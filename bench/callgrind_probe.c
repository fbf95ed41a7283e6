/*
 * The workload bench/callgrind.sh counts: `callgrind_probe N hit|miss|ensure`
 * makes N mmapper_is_mapped calls on mapped (hit) or never-mapped (miss)
 * addresses, N lookups of mapped addresses in mmapper_is_mapped_many
 * batches of MANY_BATCH (many), N mmapper_ensure_mapped calls of one page
 * already Mapped (ensure), or N mmapper_ensure_mapped calls that each map a fresh chunk
 * (fresh: rounds of FRESH_ROUND chunks of one slab, unmapped between
 * rounds, as bench/ fresh-disjoint does; the unmap is not counted).  The
 * script runs it for two N and divides the difference in instructions by
 * the difference in calls, so setup, thread registration and lazy binding
 * cancel out.  Instructions only: the kernel's work is not counted.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmapper.h"

#define ADDRS 1024
#define CHUNKS 64
#define FRESH_ROUND 32
#define MANY_BATCH 64

static volatile unsigned long sink;

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "hit") && strcmp(argv[2], "miss") &&
                      strcmp(argv[2], "ensure") && strcmp(argv[2], "fresh") &&
                      strcmp(argv[2], "many"))) {
        fprintf(stderr, "usage: callgrind_probe N hit|miss|ensure|fresh|many\n");
        return 2;
    }
    unsigned long n = strtoul(argv[1], NULL, 0);
    bool hit = strcmp(argv[2], "miss") != 0;
    bool ensure = !strcmp(argv[2], "ensure");
    mmapper_t *m;
    void *region;
    int err = mmapper_create(NULL, &m);
    size_t chunk = mmapper_granularity(m);
    if (err || (err = mmapper_quarantine_anywhere(m, CHUNKS * chunk, NULL, &region)) != 0 ||
        (err = mmapper_ensure_mapped(m, region, CHUNKS * chunk, NULL)) != 0) {
        fprintf(stderr, "callgrind_probe: %s\n", mmapper_strerror(err));
        return 1;
    }
    if (!strcmp(argv[2], "fresh")) {
        /* The reservation is given back first: its chunks become Unmapped,
         * and each round maps FRESH_ROUND of them afresh. */
        if ((err = mmapper_unmap(m, region, CHUNKS * chunk)) != 0) {
            fprintf(stderr, "callgrind_probe: %s\n", mmapper_strerror(err));
            return 1;
        }
        for (unsigned long done = 0; done < n; done += FRESH_ROUND) {
            for (unsigned i = 0; i < FRESH_ROUND && done + i < n; i++)
                err |= mmapper_ensure_mapped(m, (char *)region + i * chunk, chunk, NULL);
            err |= mmapper_unmap(m, region, FRESH_ROUND * chunk);
            if (err) {
                fprintf(stderr, "callgrind_probe: %s\n", mmapper_strerror(err));
                return 1;
            }
        }
        mmapper_destroy(m);
        return 0;
    }
    /* Misses lie 1 TiB and more away: no slab covers them. */
    static uintptr_t addrs[ADDRS];
    uintptr_t base = (uintptr_t)region + (hit ? 0 : (uintptr_t)1 << 40);
    for (unsigned i = 0; i < ADDRS; i++)
        addrs[i] = base + (i * 7919u % CHUNKS) * chunk + i * 64;
    unsigned long hits = 0;
    if (!strcmp(argv[2], "many")) {   /* N rounded down to whole batches */
        static const void *words[ADDRS];
        for (unsigned i = 0; i < ADDRS; i++)
            words[i] = (const void *)addrs[i];
        n -= n % MANY_BATCH;
        for (unsigned long i = 0; i < n; i += MANY_BATCH)
            hits += mmapper_is_mapped_many(m, words + i % ADDRS, MANY_BATCH, NULL);
    }
    for (unsigned long i = 0; i < n && strcmp(argv[2], "many"); i++)
        hits += ensure ? mmapper_ensure_mapped(m, (void *)addrs[i % ADDRS], 4096, NULL) == 0
                       : mmapper_is_mapped(m, (const void *)addrs[i % ADDRS]);
    sink = hits;
    if (hits != (hit ? n : 0)) {
        fprintf(stderr, "callgrind_probe: %lu of %lu lookups hit\n", hits, n);
        return 1;
    }
    mmapper_unmap(m, region, CHUNKS * chunk);
    mmapper_destroy(m);
    return 0;
}
