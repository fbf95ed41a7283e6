/*
 * The core mapper: the MMTk Mmapper cases as behaviour (granularity and
 * rounding, protect and re-map), plus batching, exactly-once and the
 * lock-free queries.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"

#define SLAB_CHUNKS 256

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

#define CHUNK ((size_t)1 << 22)   /* the default chunk size */

/* A fresh mapper and a free 4-chunk region; map [off, off+bytes) of it and
 * compare the four chunk states with want. */
static void map_and_expect(size_t off, size_t bytes, const char *want)
{
    struct unit u;
    unit_setup(&u, 0);
    cr_assert_eq(u.chunk, CHUNK);
    char *base = unit_free_range(4 * CHUNK, CHUNK);
    cr_assert_eq(mmapper_ensure_mapped(u.m, base + off, bytes, NULL), 0);
    unit_expect_calls(&u, 1, 0, 0);
    unit_expect_states(&u, base, want);
    unit_expect_kernel(&u, base, 4 * CHUNK);
    /* Mapped chunks are zero and writable from their first to last byte. */
    for (size_t i = 0; i < 4; i++)
        if (want[i] == 'M') {
            char *c = chunk_at(&u, base, i);
            cr_assert(all_zero(c, page_size()));
            memset(c, 0xab, 8);
            memset(c + CHUNK - 8, 0xab, 8);
        }
    unit_teardown(&u);
}

Test(granularity, one_page)
{
    map_and_expect(0, page_size(), "MUUU");
}

Test(granularity, one_chunk)
{
    map_and_expect(0, CHUNK, "MUUU");
}

Test(granularity, one_and_a_half_chunks)
{
    map_and_expect(0, CHUNK + CHUNK / 2, "MMUU");
}

Test(granularity, rounding_at_chunk_boundaries)
{
    /* start = i*chunk, i*chunk + 8, (i+1)*chunk with i = 1; one chunk long. */
    map_and_expect(CHUNK, CHUNK, "UMUU");
    map_and_expect(CHUNK + 8, CHUNK, "UMMU");
    map_and_expect(2 * CHUNK, CHUNK, "UUMU");
    /* The end rounds up too: one byte past a boundary takes the next chunk. */
    map_and_expect(CHUNK, CHUNK + 1, "UMMU");
    map_and_expect(CHUNK, CHUNK - 1, "UMUU");
    map_and_expect(CHUNK, 1, "UMUU");
    /* The last byte of one chunk and the first of the next. */
    map_and_expect(2 * CHUNK - 1, 2, "UMMU");
    map_and_expect(4 * CHUNK - 1, 1, "UUUM");
}

Test(mapper, protect_one_of_two_then_remap)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    fill_pattern(a, 2 * u.chunk, 11);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_protect(u.m, a, u.chunk), 0);
    unit_expect_calls(&u, 0, 0, 1);
    unit_expect_states(&u, a, "PM");
    unit_expect_perms(a, "---p");
    unit_expect_perms(a + u.chunk, "rw-p");
    unit_expect_kernel(&u, a, 2 * u.chunk);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 1);   /* only the Protected chunk changes */
    unit_expect_states(&u, a, "MM");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    cr_assert(has_pattern(a, 2 * u.chunk, 11), "protect/ensure_mapped lost the contents");
    unit_teardown(&u);
}

Test(mapper, quarantine_then_map_and_quarantine_leaves_mapped_alone)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, 2 * u.chunk, NULL), 0);
    unit_expect_states(&u, a, "QQ");
    unit_expect_kernel(&u, a, 2 * u.chunk);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 1);
    unit_expect_states(&u, a, "MQ");
    cr_assert(all_zero(a, u.chunk));
    fill_pattern(a, u.chunk, 12);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_quarantine(u.m, a, 2 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 0);
    unit_expect_states(&u, a, "MQ");
    cr_assert(has_pattern(a, u.chunk, 12));
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_teardown(&u);
}

Test(mapper, mark_as_mapped_makes_no_syscall)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    void *p = mmap(a, 2 * u.chunk, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(p, a);
    cr_assert_eq(mmapper_mark_as_mapped(u.m, a + 100, u.chunk), 0);
    cr_assert_eq(test_os_total_calls(&u.tos), 0);
    unit_expect_states(&u, a, "MM");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_expect_gauges(&u, 0, 2, 0);
    /* And ensure_mapped now has nothing to do. */
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    cr_assert_eq(test_os_total_calls(&u.tos), 0);
    unit_teardown(&u);
}

Test(mapper, is_mapped_false_far_away)
{
    struct unit u;
    unit_setup(&u, 0);
    void *odd[] = { (void *)42, (void *)(UINTPTR_MAX - 1024), NULL,
                    (void *)MMAPPER_ADDRESS_LIMIT, (void *)(MMAPPER_ADDRESS_LIMIT - 1) };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        cr_assert_not(mmapper_is_mapped(u.m, odd[i]), "%p", odd[i]);
        cr_assert_eq(mmapper_state(u.m, odd[i]), MMAPPER_UNMAPPED, "%p", odd[i]);
    }
    /* Also once the table holds something. */
    char *a = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        cr_assert_not(mmapper_is_mapped(u.m, odd[i]), "%p", odd[i]);
    cr_assert(mmapper_is_mapped(u.m, a + u.chunk - 1));
    cr_assert_not(mmapper_is_mapped(u.m, a + u.chunk));
    cr_assert_not(mmapper_is_mapped(u.m, a - 1));
    cr_assert_eq(test_os_calls(&u.tos, TOS_MMAP), 1);
    unit_teardown(&u);
}

Test(mapper, decommit_zeroes_and_keeps_reservation)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    fill_pattern(a, 2 * u.chunk, 13);
    cr_assert_eq(mmapper_protect(u.m, a + u.chunk, u.chunk), 0);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_decommit(u.m, a, 2 * u.chunk), 0);   /* Mapped and Protected */
    unit_expect_calls(&u, 1, 0, 0);
    cr_assert_eq(atomic_load(&u.tos.noreplace_maps), 0);
    unit_expect_states(&u, a, "QQ");
    unit_expect_perms(a, "---p");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_expect_gauges(&u, 2, 0, 0);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 1);
    cr_assert(all_zero(a, 2 * u.chunk), "decommitted memory came back non-zero");
    unit_teardown(&u);
}

Test(mapper, decommit_of_unmapped_changes_nothing)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    fill_pattern(a, u.chunk, 14);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_decommit(u.m, a, 2 * u.chunk), -EINVAL);
    cr_assert_eq(mmapper_decommit(u.m, a + u.chunk, u.chunk), -EINVAL);
    unit_expect_calls(&u, 0, 0, 0);
    unit_expect_states(&u, a, "MU");
    cr_assert(has_pattern(a, u.chunk, 14));
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_teardown(&u);
}

Test(mapper, unmap_gives_range_back)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(3 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, 3 * u.chunk, NULL), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + u.chunk, u.chunk, NULL), 0);
    cr_assert_eq(mmapper_protect(u.m, a + u.chunk, u.chunk), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + 2 * u.chunk, u.chunk, NULL), 0);
    unit_expect_states(&u, a, "QPM");

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_unmap(u.m, a, 3 * u.chunk), 0);
    unit_expect_calls(&u, 0, 1, 0);
    unit_expect_states(&u, a, "UUU");
    unit_expect_gauges(&u, 0, 0, 0);
    /* Someone else may now map exactly there. */
    void *p = mmap(a, 3 * u.chunk, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(p, a, "the range was not given back");
    /* ... and the mapper now refuses it. */
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), -EEXIST);
    unit_teardown(&u);
}

/* ---- batching and exactly-once ---------------------------------------------- */

Test(batching, fresh_chunks_are_one_mmap)
{
    struct unit u;
    unit_setup(&u, 16);
    char *a = unit_free_range(64 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 64 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 1, 0, 0);
    cr_assert_eq(atomic_load(&u.rec.mmap_bytes), 64 * u.chunk);
    unit_expect_kernel(&u, a, 64 * u.chunk);
    unit_expect_gauges(&u, 0, 64, 0);

    /* Exactly once: mapping again is free, however the range is cut. */
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 64 * u.chunk, NULL), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + 5, 3 * u.chunk, NULL), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + 63 * u.chunk, 1, NULL), 0);
    cr_assert_eq(mmapper_quarantine(u.m, a, 64 * u.chunk, NULL), 0);
    cr_assert_eq(mmapper_mark_as_mapped(u.m, a, 64 * u.chunk), 0);
    cr_assert_eq(test_os_total_calls(&u.tos), 0);
    unit_teardown(&u);
}

Test(batching, one_mprotect_per_quarantined_run)
{
    struct unit u;
    unit_setup(&u, 16);
    const char *layout = "QQMQMMQQQMQ";   /* four runs of Q, seven chunks */
    size_t n = strlen(layout);
    char *a = unit_free_range(n * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, n * u.chunk, NULL), 0);
    for (size_t i = 0; i < n; i++)
        if (layout[i] == 'M')
            cr_assert_eq(mmapper_ensure_mapped(u.m, chunk_at(&u, a, i), u.chunk, NULL), 0);
    unit_expect_states(&u, a, layout);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, n * u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 4);
    cr_assert_eq(atomic_load(&u.rec.mprotect_bytes), 7 * u.chunk);
    unit_expect_states(&u, a, "MMMMMMMMMMM");
    unit_expect_kernel(&u, a, n * u.chunk);

    /* The mirror image: protect every other run, then unmap all in one go. */
    for (size_t i = 0; i < n; i += 3)
        cr_assert_eq(mmapper_protect(u.m, chunk_at(&u, a, i), u.chunk), 0);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_unmap(u.m, a, n * u.chunk), 0);
    unit_expect_calls(&u, 0, 1, 0);
    cr_assert(procmaps_range_free(a, n * u.chunk));
    unit_teardown(&u);
}

/* With 64 KiB chunks a slab is 16 MiB. */
Test(batching, runs_span_slabs)
{
    struct unit u;
    unit_setup(&u, 16);
    size_t slab = SLAB_CHUNKS * u.chunk;
    char *a = unit_free_range(4 * slab, slab);
    struct mmapper_stats s;

    /* Three whole slabs, then a range touching four slabs. */
    char *ranges[2] = { a, a + slab / 2 };
    size_t lens[2] = { 3 * slab, 3 * slab };
    for (int r = 0; r < 2; r++) {
        unit_reset_counts(&u);
        cr_assert_eq(mmapper_ensure_mapped(u.m, ranges[r], lens[r], NULL), 0);
        /* The second range overlaps the first: only its last half-slab is new. */
        unit_expect_calls(&u, 1, 0, 0);
        unit_expect_kernel(&u, a, 4 * slab);
    }
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 4);
    cr_assert_eq(s.chunks_mapped, 3 * SLAB_CHUNKS + SLAB_CHUNKS / 2);

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_decommit(u.m, a + slab / 2, 3 * slab), 0);
    unit_expect_calls(&u, 1, 0, 0);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 4 * slab, NULL), 0);
    /* [0, 1/2) Mapped, [1/2, 7/2) Quarantined, [7/2, 4) Unmapped: two runs. */
    unit_expect_calls(&u, 1, 0, 1);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_protect(u.m, a, 4 * slab), 0);
    unit_expect_calls(&u, 0, 0, 1);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_unmap(u.m, a, 4 * slab), 0);
    unit_expect_calls(&u, 0, 1, 0);
    cr_assert(procmaps_range_free(a, 4 * slab));
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 0);
    unit_teardown(&u);
}

/* ---- stats ------------------------------------------------------------------- */

Test(stats, gauges_and_counters_follow_transitions)
{
    struct unit u;
    unit_setup(&u, 0);
    /* Slab-aligned, so the four chunks share one slab (s.slabs == 1). */
    char *a = unit_free_range(4 * u.chunk, 256 * u.chunk);
    struct mmapper_stats s;
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 0);
    cr_assert_gt(s.table_capacity, 0);
    cr_assert_gt(s.metadata_bytes, 0);

    cr_assert_eq(mmapper_quarantine(u.m, a, 4 * u.chunk, NULL), 0);
    unit_expect_gauges(&u, 4, 0, 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 3 * u.chunk, NULL), 0);
    unit_expect_gauges(&u, 1, 3, 0);
    cr_assert_eq(mmapper_protect(u.m, a, 2 * u.chunk), 0);
    unit_expect_gauges(&u, 1, 1, 2);
    cr_assert_eq(mmapper_decommit(u.m, a + u.chunk, 2 * u.chunk), 0);
    unit_expect_gauges(&u, 3, 0, 1);
    cr_assert_eq(mmapper_unmap(u.m, a + 3 * u.chunk, u.chunk), 0);
    unit_expect_gauges(&u, 2, 0, 1);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 4 * u.chunk, NULL), 0);
    unit_expect_gauges(&u, 0, 4, 0);

    mmapper_get_stats(u.m, &s);
    /* The library's own counters agree with what the OS layer saw. */
    cr_assert_eq(s.mmap_calls, test_os_calls(&u.tos, TOS_MMAP));
    cr_assert_eq(s.munmap_calls, test_os_calls(&u.tos, TOS_MUNMAP));
    cr_assert_eq(s.mprotect_calls, test_os_calls(&u.tos, TOS_MPROTECT));
    cr_assert_eq(s.madvise_calls, test_os_calls(&u.tos, TOS_MADVISE));
    /* quarantine, decommit, re-map of the last chunk; commit; protect. */
    cr_assert_eq(s.mmap_calls, 3);
    cr_assert_eq(s.slabs, 1);

    cr_assert_eq(mmapper_unmap(u.m, a, 4 * u.chunk), 0);
    unit_expect_gauges(&u, 0, 0, 0);
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 0);
    unit_teardown(&u);
}

/* ---- mmapper_is_mapped_many -------------------------------------------- */

/* The next xorshift64 value of *x. */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* How many of addrs[0..n) single lookups find Mapped. */
static size_t count_single(const mmapper_t *m, const void *const addrs[], size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += mmapper_is_mapped(m, addrs[i]);
    return count;
}

/* A batch (mapped filled, and count only) answers as single lookups do. */
static void assert_many_agrees(const mmapper_t *m, const void *const addrs[], size_t n,
                               bool mapped[], size_t expect)
{
    memset(mapped, 0xff, n * sizeof(*mapped));
    cr_assert_eq(mmapper_is_mapped_many(m, addrs, n, mapped), expect);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(mapped[i], mmapper_is_mapped(m, addrs[i]), "address %zu: %p", i, addrs[i]);
    cr_assert_eq(mmapper_is_mapped_many(m, addrs, n, NULL), expect);
}

Test(many, agrees_with_single_lookups)
{
    struct unit u;
    unit_setup(&u, 16);
    /* Chunks in every state, over several slabs, with holes. */
    size_t chunks = 4 * SLAB_CHUNKS;
    char *base = unit_free_range(chunks * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, base, chunks * u.chunk, NULL), 0);
    for (size_t c = 0; c < chunks; c += 3)
        cr_assert_eq(mmapper_ensure_mapped(u.m, base + c * u.chunk, u.chunk, NULL), 0);
    for (size_t c = 0; c < chunks; c += 9)
        cr_assert_eq(mmapper_protect(u.m, base + c * u.chunk, u.chunk), 0);
    cr_assert_eq(mmapper_unmap(u.m, base + SLAB_CHUNKS * u.chunk, SLAB_CHUNKS * u.chunk), 0);
    /* More addresses than one read-side section takes (4096), in an order
     * that mixes slabs, plus addresses no slab covers. */
    enum { N = 10007 };
    static const void *addrs[N];
    static bool mapped[N];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        next_random(&x);
        addrs[i] = i % 97 == 0   ? (const void *)(uintptr_t)(x % 4096)
                   : i % 89 == 0 ? (const void *)(uintptr_t)(UINTPTR_MAX - x % 65536)
                                 : base + x % ((chunks + 8) * u.chunk);
    }
    size_t expect = count_single(u.m, addrs, N);
    cr_assert_gt(expect, N / 10);   /* about 2/9 of 3/4 of the region */
    cr_assert_lt(expect, N / 3);
    assert_many_agrees(u.m, addrs, N, mapped, expect);
    /* No system call, and the slabs are where they were. */
    uint64_t calls = test_os_total_calls(&u.tos);
    cr_assert_eq(mmapper_is_mapped_many(u.m, addrs, N, mapped), expect);
    cr_assert_eq(test_os_total_calls(&u.tos), calls);
    unit_teardown(&u);
}

Test(many, bad_arguments)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    const void *addrs[3] = { a, a + 1, NULL };
    bool mapped[3] = { true, true, true };
    cr_assert_eq(mmapper_is_mapped_many(NULL, addrs, 3, mapped), 0);
    cr_assert(!mapped[0] && !mapped[1] && !mapped[2]);
    memset(mapped, 1, sizeof(mapped));
    cr_assert_eq(mmapper_is_mapped_many(u.m, NULL, 3, mapped), 0);
    cr_assert(!mapped[0] && !mapped[1] && !mapped[2]);
    memset(mapped, 1, sizeof(mapped));
    cr_assert_eq(mmapper_is_mapped_many(u.m, addrs, 0, mapped), 0);
    cr_assert(mapped[0] && mapped[1] && mapped[2]);   /* untouched */
    cr_assert_eq(mmapper_is_mapped_many(u.m, addrs, 3, mapped), 2);
    cr_assert(mapped[0] && mapped[1] && !mapped[2]);
    unit_teardown(&u);
}

/* A table of more than 2^16 slots: batches take the deeper pipeline (they
 * prefetch each slot's slab too), which must answer exactly as single
 * lookups do, tombstones included. */
Test(many, deep_table_agrees_with_single_lookups)
{
    if (sizeof(void *) < 8)
        cr_skip_test("50,000 slabs of 16 MiB need a 64-bit address space");
    unit_skip_if_emulated("50,000 slabs and 43,000 system calls under an emulator");
    struct unit u;
    unit_setup(&u, 16);   /* 64 KiB chunks: also on the simulated 64 KiB-page kernel */
    enum { SLABS = 50000 };
    size_t slab = SLAB_CHUNKS * u.chunk, bytes = SLABS * slab;
    void *region;
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, bytes, NULL, &region), 0);
    char *base = region;
    /* One chunk Mapped in each of two slabs in three; every fifth slab
     * given back whole, which leaves a tombstone in its slot. */
    for (size_t s = 0; s < SLABS; s++) {
        char *at = base + s * slab;
        if (s % 5 == 4)
            cr_assert_eq(mmapper_unmap(u.m, at, slab), 0);
        else if (s % 3 != 2)
            cr_assert_eq(mmapper_ensure_mapped(u.m, at + (s * 37 % SLAB_CHUNKS) * u.chunk,
                                               u.chunk, NULL), 0);
    }
    struct mmapper_stats st;
    mmapper_get_stats(u.m, &st);
    cr_assert_geq(st.table_capacity, 1u << 16, "table of %llu slots: not deep",
                  (unsigned long long)st.table_capacity);
    enum { N = 20011 };
    static const void *addrs[N];
    static bool mapped[N];
    uint64_t x = 2463534242ull;
    for (size_t i = 0; i < N; i++) {
        next_random(&x);
        size_t s = x % (SLABS + 100);   /* some beyond the region */
        /* Half of them at the slab's Mapped chunk (if it has one). */
        size_t c = i % 2 ? s * 37 % SLAB_CHUNKS : (x >> 32) % SLAB_CHUNKS;
        addrs[i] = base + s * slab + c * u.chunk + (x >> 20) % u.chunk;
    }
    size_t expect = count_single(u.m, addrs, N);
    /* The odd ones hit where the slab has a Mapped chunk (8 slabs in 15):
     * about 0.27 N in all. */
    cr_assert_gt(expect, N / 5);
    cr_assert_lt(expect, N / 2);
    assert_many_agrees(u.m, addrs, N, mapped, expect);
    /* Batches shorter than the pipeline: fewer addresses than its stages
     * are apart (8) and than its ring (16), and just past them. */
    static const size_t short_n[] = { 1, 2, 7, 8, 9, 15, 16, 17, 24, 33 };
    for (size_t k = 0; k < sizeof(short_n) / sizeof(*short_n); k++)
        for (size_t at = 0; at < 64; at += 13)
            assert_many_agrees(u.m, addrs + at, short_n[k], mapped,
                               count_single(u.m, addrs + at, short_n[k]));
    cr_assert_eq(mmapper_unmap(u.m, base, bytes), 0);
    unit_teardown(&u);
}
