/*
 * vma_budget: how many VMAs a large, fragmented mapper costs, and what
 * happens when the process runs out of them.
 *
 * 64 GiB of address space (16384 chunks of 4 MiB, from one
 * quarantine_anywhere) are mapped chunk by chunk in random order, with a mix
 * of names (A/B), protections and reservations: ensure_mapped with name A or
 * B, some then protected, some only quarantined.  Nothing is touched, so
 * this costs no memory.  The number of lines of /proc/self/maps is reported.
 *
 * Then test_os enforces a fake vm.max_map_count just above the current
 * count, and calls that need new VMAs must fail cleanly with -ENOMEM:
 * protecting one chunk inside a run of Mapped ones (a VMA split), a
 * multi-chunk ensure_mapped whose second mapping crosses the limit (the
 * first chunk stays Mapped, the rest keep their state), quarantine_anywhere.
 * After each: states consistent, /proc/self/maps agrees; with the limit
 * lifted the same calls succeed.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

static struct test_os tos;
static mmapper_t *m;
static char *region;
static size_t chunk, nchunks;

static char *at(size_t i)
{
    return region + i * chunk;
}

static void check_region(const char *when)
{
    stress_check_maps(m, region, nchunks * chunk, true, when);
    stress_check_settled(m, region, nchunks * chunk, when);
}

static long region_vmas(void)
{
    struct procmaps pm;
    CHECK(procmaps_read(&pm) == 0, "cannot read /proc/self/maps");
    long n = 0;
    for (size_t i = 0; i < pm.count; i++)
        n += pm.regions[i].end > (uintptr_t)region &&
             pm.regions[i].start < (uintptr_t)at(nchunks);
    procmaps_free(&pm);
    return n;
}

/* A Mapped chunk with Mapped neighbours that share its VMA. */
static size_t inside_mapped_run(void)
{
    for (size_t i = 1; i + 1 < nchunks; i++) {
        if (mmapper_state(m, at(i - 1)) == MMAPPER_MAPPED &&
            mmapper_state(m, at(i)) == MMAPPER_MAPPED &&
            mmapper_state(m, at(i + 1)) == MMAPPER_MAPPED) {
            char n1[128] = "", n2[128] = "", n3[128] = "";
            procmaps_name_at(at(i - 1), n1, sizeof(n1));
            procmaps_name_at(at(i), n2, sizeof(n2));
            procmaps_name_at(at(i + 1), n3, sizeof(n3));
            if (!strcmp(n1, n2) && !strcmp(n2, n3))
                return i;
        }
    }
    stress_fail("no run of three Mapped chunks with one name");
}

static void limit_phase(void)
{
    static const struct mmapper_map_opts rwx = { .prot = MMAPPER_PROT_READ_WRITE_EXEC };

    /* 1. A split of a VMA. */
    size_t i = inside_mapped_run();
    long vmas = procmaps_count_vmas();
    atomic_store(&tos.max_map_count, vmas);
    CHECK_RC(mmapper_protect(m, at(i), chunk), -ENOMEM, "protect needing a VMA split");
    CHECK(mmapper_state(m, at(i)) == MMAPPER_MAPPED, "chunk left %d", mmapper_state(m, at(i)));
    check_region("after protect ran out of VMAs");
    atomic_store(&tos.max_map_count, 0);
    CHECK_RC(mmapper_protect(m, at(i), chunk), 0, "protect with the limit lifted");
    CHECK_RC(mmapper_ensure_mapped(m, at(i), chunk, NULL), 0, "map back");

    /* 2. Part of a multi-chunk call: three holes in a Mapped run, filled
     * read-write-execute so each is a VMA of its own; room for one. */
    size_t a = inside_mapped_run();
    CHECK(a + 5 <= nchunks, "run too close to the end");
    for (size_t k = a + 1; k + 1 < nchunks && k < a + 4; k++)
        if (mmapper_state(m, at(k)) != MMAPPER_MAPPED)
            CHECK_RC(mmapper_ensure_mapped(m, at(k), chunk, NULL), 0, "fill run");
    size_t holes[3] = { a, a + 2, a + 4 };
    for (int h = 0; h < 3; h++)
        CHECK_RC(mmapper_unmap(m, at(holes[h]), chunk), 0, "hole");
    check_region("with holes");
    vmas = procmaps_count_vmas();
    atomic_store(&tos.max_map_count, vmas + 1);
    CHECK_RC(mmapper_ensure_mapped(m, at(a), 5 * chunk, &rwx), -ENOMEM,
             "ensure_mapped over three holes with room for one VMA");
    CHECK(mmapper_state(m, at(a)) == MMAPPER_MAPPED &&
              mmapper_state(m, at(a + 2)) == MMAPPER_UNMAPPED &&
              mmapper_state(m, at(a + 4)) == MMAPPER_UNMAPPED,
          "expected M . U . U, got %d . %d . %d", mmapper_state(m, at(a)),
          mmapper_state(m, at(a + 2)), mmapper_state(m, at(a + 4)));
    check_region("after ensure_mapped ran out of VMAs part-way");

    /* 3. quarantine_anywhere: no VMA at all. */
    atomic_store(&tos.max_map_count, procmaps_count_vmas());
    void *p = &p;
    CHECK_RC(mmapper_quarantine_anywhere(m, 4 * chunk, NULL, &p), -ENOMEM,
             "quarantine_anywhere without a VMA to spare");
    CHECK(p == (void *)&p, "*out written on failure");

    atomic_store(&tos.max_map_count, 0);
    CHECK_RC(mmapper_ensure_mapped(m, at(a), 5 * chunk, &rwx), 0, "retry with the limit lifted");
    CHECK_RC(mmapper_quarantine_anywhere(m, 4 * chunk, NULL, &p), 0, "quarantine_anywhere");
    CHECK_RC(mmapper_unmap(m, p, 4 * chunk), 0, "unmap of the reservation");
    check_region("after the retries");
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = 16384, .rounds = 1 };
    stress_parse(argc, argv, "VMAs of 64 GiB mapped chunk by chunk; running out of them "
                             "(--ops: chunks of 4 MiB)", &o);
    if (stress_emulated())
        stress_skip_emulated("the fake vm.max_map_count counts lines of /proc/self/maps, "
                             "which qemu-user rewrites (it merges and hides VMAs)");
    test_os_init(&tos);
    struct mmapper_config cfg = { .os = &tos.os };
#if UINTPTR_MAX <= 0xffffffffu
    /* 32-bit: 64 KiB chunks, so that the default 16384 fit in 1 GiB. */
    cfg.log_chunk_bytes = 16;
#endif
    CHECK_RC(mmapper_create(&cfg, &m), 0, "mmapper_create");
    chunk = mmapper_granularity(m);
    nchunks = o.ops;
    CHECK(nchunks >= 16, "need at least 16 chunks");
    long vmas_before = procmaps_count_vmas();

    region = stress_region(m, nchunks * chunk, 0);
    CHECK_RC(mmapper_unmap(m, region, nchunks * chunk), 0, "unmap of the fresh region");
    size_t *order = malloc(nchunks * sizeof(*order));
    CHECK(order != NULL, "out of memory");
    for (size_t i = 0; i < nchunks; i++)
        order[i] = i;
    struct rng r;
    rng_init(&r, o.seed, 1);
    for (size_t i = nchunks - 1; i > 0; i--) {
        size_t j = rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    static const struct mmapper_map_opts name_a = { .name = "A" }, name_b = { .name = "B" };
    uint64_t kinds[4] = { 0 };
    for (size_t k = 0; k < nchunks; k++) {
        char *p = at(order[k]);
        uint64_t dice = rng_below(&r, 20);
        int kind = dice < 7 ? 0 : dice < 14 ? 1 : dice < 17 ? 2 : 3;
        kinds[kind]++;
        if (kind == 3) {
            CHECK_RC(mmapper_quarantine(m, p, chunk, &name_b), 0, "quarantine");
            continue;
        }
        CHECK_RC(mmapper_ensure_mapped(m, p, chunk, kind == 1 ? &name_b : &name_a), 0,
                 "ensure_mapped");
        if (kind == 2)
            CHECK_RC(mmapper_protect(m, p, chunk), 0, "protect");
    }
    free(order);
    check_region("after mapping everything");
    long vmas = procmaps_count_vmas(), ours = region_vmas();
    struct mmapper_stats st;
    mmapper_get_stats(m, &st);
    CHECK(st.chunks_mapped == kinds[0] + kinds[1] && st.chunks_protected == kinds[2] &&
              st.chunks_quarantined == kinds[3],
          "gauges disagree with what was mapped");

    limit_phase();

    CHECK_RC(mmapper_unmap(m, region, nchunks * chunk), 0, "final unmap");
    CHECK(procmaps_range_free(region, nchunks * chunk), "region not empty at the end");
    mmapper_get_stats(m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs left", st.slabs);
    mmapper_destroy(m);
    stress_summary("%zu GiB in %zu chunks (%" PRIu64 " named A, %" PRIu64 " B, %" PRIu64
                   " protected, %" PRIu64 " quarantined%s): /proc/self/maps ends with %ld VMAs "
                   "(%ld in the region, %ld before); fake max_map_count: -ENOMEM returned "
                   "cleanly for a split, a part-way ensure_mapped and quarantine_anywhere",
                   nchunks * chunk >> 30, nchunks, kinds[0], kinds[1], kinds[2], kinds[3],
                   stress_kernel_has_names() ? "" : "; this kernel has no VMA names", vmas, ours,
                   vmas_before);
    return 0;
}
