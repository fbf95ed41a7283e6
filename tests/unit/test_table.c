/*
 * The slab table: growth to thousands of slabs spread over the address
 * space, every record reading back right, and reclamation when chunks go
 * back to Unmapped.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "unit.h"

#define SLAB_CHUNKS 256
#if UINTPTR_MAX > 0xffffffffu
#define NSLABS 4096
/* 1 GiB slabs over 16-64 TiB; under qemu-user, which cannot track a
 * reservation that big (the guest crashes), 1 MiB slabs over 8-16 GiB. */
#define TABLE_LOG_CHUNK (unit_emulated() ? 12 : 22)
#define HUGE_LOG_MAX (unit_emulated() ? 34u : 46u)
#define HUGE_LOG_MIN (unit_emulated() ? 33u : 44u)
#else   /* 32-bit pointers: 512 slabs of 1 MiB (4 KiB chunks) over 1-2 GiB */
#define NSLABS 512
#define TABLE_LOG_CHUNK 12
#define HUGE_LOG_MAX 31u
#define HUGE_LOG_MIN 30u
#endif


/* The big-table fixture.  With 32-bit pointers on a (simulated) kernel of
 * 16 KiB or 64 KiB pages, chunks are at least 16 KiB, and NSLABS slabs of
 * them do not fit in the address space: those runs skip. */
static void table_setup(struct unit *u)
{
    if (((size_t)1 << TABLE_LOG_CHUNK) < unit_page_size())
        cr_skip_test("%d slabs of %zu-byte chunks do not fit in this address space", NSLABS,
                     unit_page_size() * 256);
    unit_setup(u, TABLE_LOG_CHUNK);
}

static struct mmapper_stats stats(struct unit *u)
{
    struct mmapper_stats s;
    mmapper_get_stats(u->m, &s);
    return s;
}

/* A huge PROT_NONE reservation of our own, the largest of 64, 32, 16 TiB
 * that fits (sanitizers take big parts of the address space). */
static char *reserve_huge(size_t *len)
{
    for (unsigned log = HUGE_LOG_MAX; log >= HUGE_LOG_MIN; log--) {
        *len = (size_t)1 << log;
        void *p = mmap(NULL, *len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            cr_log_info("spreading slabs over 2^%u bytes at %p", log, p);
            return p;
        }
    }
    cr_assert_fail("cannot reserve 2^%u bytes of address space", HUGE_LOG_MIN);
    return NULL;
}

/* Chunk i of NSLABS, one per slab, spread evenly over [base, base+len) and
 * at varying positions inside its slab. */
static char *spread(struct unit *u, char *base, size_t len, size_t i)
{
    size_t slab = SLAB_CHUNKS * u->chunk;
    uintptr_t first = ((uintptr_t)base + slab - 1) & ~(uintptr_t)(slab - 1);
    size_t stride = ((len - slab) / NSLABS) & ~(slab - 1);
    cr_assert_geq(stride, slab);
    return (char *)(first + i * stride + (i * 37 % SLAB_CHUNKS) * u->chunk);
}

/* mark_as_mapped costs no syscall, so it builds a big table cheaply.  The
 * marked chunks lie in our own reservation, so unmap may really munmap them. */
Test(table, grows_with_marks_over_the_address_space, .timeout = 120)
{
    struct unit u;
    table_setup(&u);
    size_t len;
    char *base = reserve_huge(&len);
    struct mmapper_stats empty = stats(&u);

    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_eq(mmapper_mark_as_mapped(u.m, spread(&u, base, len, i), u.chunk), 0);
    cr_assert_eq(test_os_total_calls(&u.tos), 0);
    struct mmapper_stats full = stats(&u);
    cr_assert_eq(full.slabs, NSLABS);
    cr_assert_eq(full.chunks_mapped, NSLABS);
    cr_assert_gt(full.table_capacity, empty.table_capacity);
    cr_assert_geq(4 * full.table_capacity, 3 * (uint64_t)NSLABS, "load factor above 3/4");
    cr_assert_gt(full.metadata_bytes, empty.metadata_bytes);
    cr_log_info("%d slabs: capacity %llu -> %llu, metadata %llu -> %llu bytes", NSLABS,
                (unsigned long long)empty.table_capacity,
                (unsigned long long)full.table_capacity,
                (unsigned long long)empty.metadata_bytes,
                (unsigned long long)full.metadata_bytes);

    for (size_t i = 0; i < NSLABS; i++) {
        char *c = spread(&u, base, len, i);
        cr_assert(mmapper_is_mapped(u.m, c), "chunk %zu lost", i);
        cr_assert(mmapper_is_mapped(u.m, c + u.chunk - 1));
        cr_assert_eq(mmapper_state(u.m, c - 1), MMAPPER_UNMAPPED);
        cr_assert_eq(mmapper_state(u.m, c + u.chunk), MMAPPER_UNMAPPED);
    }

    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_eq(mmapper_unmap(u.m, spread(&u, base, len, i), u.chunk), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MUNMAP), NSLABS);
    /* More slabs than RETIRE_LIMIT went at once: some may wait for the
     * reclaimer's sweep. */
    cr_assert_eq(mmapper_reclaim_wait(u.m), 0);
    struct mmapper_stats after = stats(&u);
    cr_assert_eq(after.slabs, 0);
    cr_assert_eq(after.chunks_mapped, 0);
    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_not(mmapper_is_mapped(u.m, spread(&u, base, len, i)));
    unit_teardown(&u);
}

/* Real reservations this time, checked against one snapshot of the maps. */
Test(table, grows_with_quarantines_and_shrinks_back, .timeout = 120)
{
    struct unit u;
    table_setup(&u);
    size_t len;
    char *base = reserve_huge(&len);
    cr_assert_eq(munmap(base, len), 0);   /* free, and nobody else maps there */

    for (size_t i = 0; i < NSLABS; i++) {
        int rc = mmapper_quarantine(u.m, spread(&u, base, len, i), u.chunk, NULL);
        cr_assert_eq(rc, 0, "chunk %zu: %s", i, mmapper_strerror(rc));
    }
    for (size_t i = 0; i < NSLABS; i += 4)
        cr_assert_eq(mmapper_ensure_mapped(u.m, spread(&u, base, len, i), u.chunk, NULL), 0);
    unit_expect_calls(&u, NSLABS, 0, NSLABS / 4);
    cr_assert_eq(stats(&u).slabs, NSLABS);
    unit_expect_gauges(&u, NSLABS - NSLABS / 4, NSLABS / 4, 0);

    struct procmaps pm;
    cr_assert_eq(procmaps_read(&pm), 0);
    for (size_t i = 0; i < NSLABS; i++) {
        char *c = spread(&u, base, len, i);
        mmapper_state_t want = i % 4 ? MMAPPER_QUARANTINED : MMAPPER_MAPPED;
        cr_assert_eq(mmapper_state(u.m, c), want, "chunk %zu", i);
        cr_assert_eq(mmapper_state(u.m, c + u.chunk), MMAPPER_UNMAPPED);
        const struct procmaps_region *r = procmaps_find(&pm, (uintptr_t)c);
        cr_assert(r && r->start <= (uintptr_t)c && r->end >= (uintptr_t)(c + u.chunk),
                  "chunk %zu not mapped as one piece", i);
        cr_assert_str_eq(r->perms, want == MMAPPER_MAPPED ? "rw-p" : "---p");
        cr_assert_null(procmaps_find(&pm, (uintptr_t)(c + u.chunk)), "chunk %zu grew", i);
    }
    procmaps_free(&pm);

    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_eq(mmapper_unmap(u.m, spread(&u, base, len, i), u.chunk), 0);
    /* More slabs than RETIRE_LIMIT went at once: some may wait for the
     * reclaimer's sweep. */
    cr_assert_eq(mmapper_reclaim_wait(u.m), 0);
    struct mmapper_stats after = stats(&u);
    cr_assert_eq(after.slabs, 0);
    unit_expect_gauges(&u, 0, 0, 0);
    /* Chunk by chunk: the rest of the freed range is the kernel's to use
     * (with 32-bit pointers it is half the address space, and the table's
     * own metadata may well land in it). */
    for (size_t i = 0; i < NSLABS; i++)
        cr_assert(procmaps_range_free(spread(&u, base, len, i), u.chunk),
                  "chunk %zu left behind in the kernel", i);
    unit_teardown(&u);
}

/* What a grown table holds goes back once its slabs are gone: the API
 * promises that metadata of ranges left entirely Unmapped is freed. */
Test(table, metadata_returns_near_empty_after_unmap, .timeout = 120)
{
    struct unit u;
    table_setup(&u);
    size_t len;
    char *base = reserve_huge(&len);
    uint64_t empty = stats(&u).metadata_bytes;
    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_eq(mmapper_mark_as_mapped(u.m, spread(&u, base, len, i), u.chunk), 0);
    uint64_t full = stats(&u).metadata_bytes;
    for (size_t i = 0; i < NSLABS; i++)
        cr_assert_eq(mmapper_unmap(u.m, spread(&u, base, len, i), u.chunk), 0);
    /* One more transition elsewhere, for any deferred reclamation to run. */
    char *x = spread(&u, base, len, 0);
    cr_assert_eq(mmapper_mark_as_mapped(u.m, x, u.chunk), 0);
    cr_assert_eq(mmapper_unmap(u.m, x, u.chunk), 0);
    cr_assert_eq(mmapper_reclaim_wait(u.m), 0);   /* freed now, not in the background */
    uint64_t after = stats(&u).metadata_bytes;
    cr_log_info("metadata bytes: empty %llu, %d slabs %llu, after unmap %llu",
                (unsigned long long)empty, NSLABS, (unsigned long long)full,
                (unsigned long long)after);
    cr_assert_eq(stats(&u).slabs, 0);
    cr_assert_leq(after, empty + 64 * 1024,
                  "metadata stays at %llu bytes (empty mapper: %llu, peak %llu)",
                  (unsigned long long)after, (unsigned long long)empty,
                  (unsigned long long)full);
    unit_teardown(&u);
}

Test(reclaim, slab_count_follows_live_chunks)
{
    struct unit u;
    unit_setup(&u, 16);
    size_t slab = SLAB_CHUNKS * u.chunk;
    char *a = unit_free_range(3 * slab, slab);

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    cr_assert_eq(mmapper_quarantine(u.m, a + slab - u.chunk, u.chunk, NULL), 0);
    cr_assert_eq(stats(&u).slabs, 1);
    cr_assert_eq(mmapper_decommit(u.m, a, u.chunk), 0);   /* Quarantined is still live */
    cr_assert_eq(stats(&u).slabs, 1);
    cr_assert_eq(mmapper_unmap(u.m, a, u.chunk), 0);
    cr_assert_eq(stats(&u).slabs, 1);
    cr_assert_eq(mmapper_unmap(u.m, a + slab - u.chunk, u.chunk), 0);
    cr_assert_eq(stats(&u).slabs, 0);

    /* A range over three slabs; emptying the middle one drops just it. */
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + slab / 2, 2 * slab, NULL), 0);
    cr_assert_eq(stats(&u).slabs, 3);
    cr_assert_eq(mmapper_unmap(u.m, a + slab, slab), 0);
    cr_assert_eq(stats(&u).slabs, 2);
    unit_expect_states(&u, a + slab - u.chunk, "MUU");
    unit_expect_states(&u, a + 2 * slab - u.chunk, "UMM");

    /* A reclaimed slab comes back clean: all Unmapped, then usable again. */
    char want[SLAB_CHUNKS + 1];
    memset(want, 'U', SLAB_CHUNKS);
    want[SLAB_CHUNKS] = 0;
    unit_expect_states(&u, a + slab, want);
    cr_assert_eq(mmapper_quarantine(u.m, a + slab, slab, NULL), 0);
    memset(want, 'Q', SLAB_CHUNKS);
    unit_expect_states(&u, a + slab, want);
    unit_expect_kernel(&u, a, 3 * slab);

    cr_assert_eq(mmapper_unmap(u.m, a, 3 * slab), 0);
    cr_assert_eq(stats(&u).slabs, 0);
    cr_assert(procmaps_range_free(a, 3 * slab));
    unit_teardown(&u);
}

/* A call that fails or has nothing to do leaves no slab behind. */
Test(reclaim, failed_calls_leave_no_slab)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                      -1, 0), a);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), -EEXIST);
    cr_assert_eq(stats(&u).slabs, 0);
    cr_assert_eq(mmapper_unmap(u.m, a, u.chunk), 0);
    cr_assert_eq(mmapper_protect(u.m, a, u.chunk), -EINVAL);
    cr_assert_eq(stats(&u).slabs, 0);
    test_os_fail(&u.tos, TOS_MMAP, 1, ENOMEM, true);
    char *b = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, b, u.chunk, NULL), -ENOMEM);
    cr_assert_eq(stats(&u).slabs, 0);
    unit_teardown(&u);
}

/* unmap of the whole address space visits only the live slabs: it must
 * unmap every chunk we hold, scattered over 2^44+ bytes, and nothing else. */
Test(table, unmap_everything_visits_live_slabs, .timeout = 60)
{
    struct unit u;
    table_setup(&u);
    size_t len;
    char *base = reserve_huge(&len);
    cr_assert_eq(munmap(base, len), 0);   /* free again: ours to map */
    for (size_t i = 0; i < 64; i++)
        cr_assert_eq(mmapper_quarantine(u.m, spread(&u, base, len, i * (NSLABS / 64)), 1,
                                        NULL), 0);
    cr_assert_eq(stats(&u).chunks_quarantined, 64);
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_unmap(u.m, NULL, MMAPPER_ADDRESS_LIMIT), 0);
    struct mmapper_stats s = stats(&u);
    cr_assert_eq(s.chunks_quarantined, 0);
    cr_assert_eq(s.slabs, 0);
    unit_expect_calls(&u, 0, 64, 0);   /* one munmap per scattered chunk, nothing else */
    for (size_t i = 0; i < 64; i++)
        cr_assert(procmaps_range_free(spread(&u, base, len, i * (NSLABS / 64)), u.chunk));
    unit_teardown(&u);
}

/* The hash (Fibonacci hashing, as slab_table.h) of slab key k into a table
 * of 2^log slots: this test places a slab in a chosen slot on purpose. */
static uintptr_t slot_of(uintptr_t key, unsigned log)
{
    return (uintptr_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> (64 - log));
}

/* The sparse unmap walks the table's array: a slab in its first and one in
 * its last slot are unmapped too.  (Chunks marked, not mapped: no syscall
 * needed to build this, and munmap of nothing succeeds.) */
Test(table, unmap_everything_reaches_first_and_last_slot)
{
    struct unit u;
    unit_setup(&u, 16);
    struct mmapper_stats s = stats(&u);
    unsigned log = 0;
    while (((uint64_t)1 << log) < s.table_capacity)
        log++;
#if UINTPTR_MAX > 0xffffffffu
    const uintptr_t base = (uintptr_t)1 << 45;   /* below 2^47, where munmap works */
#else
    const uintptr_t base = 0x40000000u;
#endif
    uintptr_t slab_shift = 16 + 8, base_key = base >> slab_shift;
    uintptr_t first = 0, last = 0;
    for (uintptr_t k = base_key; !first || !last; k++) {
        uintptr_t slot = slot_of(k, log);
        if (slot == 0 && !first)
            first = k;
        if (slot == ((uintptr_t)1 << log) - 1 && !last)
            last = k;
    }
    cr_assert_eq(mmapper_mark_as_mapped(u.m, (void *)(first << slab_shift), 1), 0);
    cr_assert_eq(mmapper_mark_as_mapped(u.m, (void *)(last << slab_shift), 1), 0);
    cr_assert_eq(stats(&u).slabs, 2);
    cr_assert_eq(mmapper_unmap(u.m, NULL, MMAPPER_ADDRESS_LIMIT), 0);
    cr_assert_eq(stats(&u).slabs, 0, "a slab was left: %llu",
                 (unsigned long long)stats(&u).slabs);
    cr_assert_eq(stats(&u).chunks_mapped, 0);
    unit_teardown(&u);
}
