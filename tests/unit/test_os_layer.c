/*
 * The OS layer seen through the public API: never mapping over memory the
 * mapper does not own (with and without kernel support for
 * MAP_FIXED_NOREPLACE), aligned reservations, VMA names.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "unit.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#define RW (PROT_READ | PROT_WRITE)
#define SLAB_BYTES(u) (256 * (u)->chunk)

/* Someone else's mapping, made behind the mapper's back, with a pattern. */
static void foreign_map(void *at, size_t len, unsigned seed)
{
    void *p = mmap(at, len, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(p, at, "cannot place the foreign mapping");
    fill_pattern(at, len, seed);
}

static void expect_foreign_intact(void *at, size_t len, unsigned seed)
{
    unit_expect_perms(at, "rw-p");
    cr_assert(has_pattern(at, len, seed), "the foreign mapping's contents changed");
}

Test(noreplace, refuses_foreign_chunk)
{
    unit_skip_if_emulated("qemu-user 7.2 takes MAP_FIXED_NOREPLACE as a hint, like a pre-4.17 kernel: the native runs on a simulated old kernel cover that path");
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    foreign_map(a, u.chunk, 7);

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), -EEXIST);
    unit_expect_states(&u, a, "U");
    cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, NULL), -EEXIST);
    unit_expect_states(&u, a, "U");
    unit_expect_calls(&u, 2, 0, 0);
    cr_assert_eq(atomic_load(&u.tos.noreplace_maps), 0);
    expect_foreign_intact(a, u.chunk, 7);
    unit_expect_gauges(&u, 0, 0, 0);
    unit_teardown(&u);
}

/* One foreign page in the middle of the second chunk sinks the whole run:
 * both chunks share one mmap, and neither may end up half-done. */
Test(noreplace, refuses_foreign_page_inside_run)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *foreign = a + u.chunk + u.chunk / 2;
    foreign_map(foreign, page, 9);

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), -EEXIST);
    unit_expect_states(&u, a, "UU");
    cr_assert(procmaps_range_free(a, u.chunk), "the first chunk was left mapped");
    cr_assert_eq(mmapper_quarantine(u.m, a, 2 * u.chunk, NULL), -EEXIST);
    unit_expect_states(&u, a, "UU");
    cr_assert(procmaps_range_free(a, u.chunk), "the first chunk was left reserved");
    expect_foreign_intact(foreign, page, 9);
    struct mmapper_stats s;
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 0, "a slab of nothing but Unmapped chunks survived");
    unit_teardown(&u);
}

/* Pre-4.17 kernels take MAP_FIXED_NOREPLACE as a hint and map elsewhere. */
Test(noreplace, fallback_when_kernel_ignores_flag)
{
    struct unit u;
    unit_setup(&u, 0);
    atomic_store(&u.tos.ignore_noreplace, true);
    /* Slab-aligned, so all three chunks share one slab. */
    char *a = unit_free_range(3 * u.chunk, SLAB_BYTES(&u));

    /* On free space the hint is honoured: exactly there. */
    cr_assert_eq(mmapper_quarantine(u.m, a + 2 * u.chunk, u.chunk, NULL), 0);
    cr_assert_eq(atomic_load(&u.rec.last_mmap_addr), (uintptr_t)(a + 2 * u.chunk));
    unit_expect_calls(&u, 1, 0, 0);
    /* That live chunk keeps the slab (and its metadata pages) in place, so
     * the VMA count below sees chunk memory only. */
    foreign_map(a, u.chunk, 3);

    for (int op = 0; op < 2; op++) {
        unit_reset_counts(&u);
        atomic_store(&u.rec.last_mmap_addr, 0);
        long vmas = unit_vma_count();
        int rc = op == 0 ? mmapper_ensure_mapped(u.m, a, u.chunk, NULL)
                         : mmapper_quarantine(u.m, a, u.chunk, NULL);
        /* First, before the checks below allocate (ASan's allocator maps). */
        cr_assert_eq(unit_vma_count(), vmas, "VMA count changed");
        cr_assert_eq(rc, -EEXIST, "op %d: %s", op, mmapper_strerror(rc));
        unit_expect_calls(&u, 1, 1, 0);
        uintptr_t stray = atomic_load(&u.rec.last_mmap_addr);
        size_t stray_len = atomic_load(&u.rec.last_mmap_len);
        cr_assert(stray && stray != (uintptr_t)a, "the kernel was expected to map elsewhere");
        cr_assert_eq(atomic_load(&u.rec.munmap_bytes), stray_len);
        cr_assert(procmaps_range_free((void *)stray, stray_len),
                  "the stray mapping at %#lx is still there", (unsigned long)stray);
        unit_expect_states(&u, a, "U");
        expect_foreign_intact(a, u.chunk, 3);
    }

    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + u.chunk, u.chunk, NULL), 0);
    unit_expect_calls(&u, 1, 0, 0);
    cr_assert_eq(atomic_load(&u.rec.last_mmap_addr), (uintptr_t)(a + u.chunk));
    cr_assert_eq(atomic_load(&u.tos.noreplace_maps), 1);
    unit_expect_states(&u, a + u.chunk, "MQ");
    unit_expect_kernel(&u, a + u.chunk, 2 * u.chunk);
    unit_teardown(&u);
}

/* ---- quarantine_anywhere ---------------------------------------------------- */

/* NOREPLACE probe: can someone else map [p, p+len) right now? */
static bool can_map_there(void *p, size_t len)
{
    void *got = mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (got == MAP_FAILED)
        return false;
    munmap(got, len);
    return got == p;
}

static void check_anywhere(unsigned log_chunk, size_t nchunks)
{
    size_t page = unit_page_size();
    if (((size_t)1 << log_chunk) < page)
        return;   /* no such chunk on this kernel (pages::bigger_kernel_pages) */
    struct unit u;
    unit_setup(&u, log_chunk);
    size_t len = nchunks * u.chunk;
    void *p = NULL;
    /* Warm up: the first slab's metadata block is mapped by the kernel
     * into the first free gap, which may be padding just given back. */
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, NULL, &p), 0);
    cr_assert_eq(mmapper_unmap(u.m, p, u.chunk), 0);
    unit_reset_counts(&u);
    int rc = mmapper_quarantine_anywhere(u.m, len, NULL, &p);
    cr_assert_eq(rc, 0, "log %u, %zu chunks: %s", log_chunk, nchunks, mmapper_strerror(rc));
    cr_assert_eq((uintptr_t)p & (u.chunk - 1), 0, "%p not aligned to %zu", p, u.chunk);

    /* One over-sized reservation, then the head and tail padding trimmed. */
    cr_assert_eq(test_os_calls(&u.tos, TOS_MMAP), 1);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MPROTECT), 0);
    uintptr_t got = atomic_load(&u.rec.last_mmap_addr);
    size_t got_len = atomic_load(&u.rec.last_mmap_len);
    uintptr_t lo = (uintptr_t)p, hi = lo + len;
    cr_assert(got <= lo && hi <= got + got_len, "result outside the reservation");
    cr_assert_eq(got_len, len + (u.chunk > page ? u.chunk - page : 0));
    cr_assert_eq(atomic_load(&u.rec.munmap_bytes), got_len - len);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MUNMAP), (uint64_t)(got < lo) + (hi < got + got_len));
    /* The kernel's view of the padding, asked with no-replace mmaps (no
     * allocation): reading /proc would malloc, and under ASan its allocator
     * maps into the highest free hole, often the padding just given back. */
    bool head_free = got >= lo || can_map_there((void *)got, lo - got);
    bool tail_free = hi >= got + got_len || can_map_there((void *)hi, got + got_len - hi);
    cr_assert(head_free, "head padding not free");
    cr_assert(tail_free, "tail padding not free");

    char want[512];
    memset(want, 'Q', nchunks);
    want[nchunks] = 0;
    unit_expect_states(&u, p, want);
    unit_expect_kernel(&u, p, len);
    unit_expect_gauges(&u, nchunks, 0, 0);

    /* It is a real reservation: committing it is one mprotect. */
    unit_reset_counts(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, p, len, NULL), 0);
    unit_expect_calls(&u, 0, 0, 1);
    cr_assert(all_zero(p, page) && all_zero((char *)p + len - page, page));
    unit_teardown(&u);
}

Test(anywhere, aligned_reserved_and_trimmed)
{
    static const unsigned logs[] = { 12, 16, 22, 24 };
    static const size_t sizes[] = { 1, 2, 3, 7, 64 };
    for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++)
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
            check_anywhere(logs[i], sizes[j]);
}

/* ---- VMA names ---------------------------------------------------------------- */

static bool kernel_names_vmas(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    bool ok = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, (unsigned long)page,
                    (unsigned long)"probe") == 0;
    munmap(p, page);
    return ok;
}

/* The OS layer was asked to name exactly [addr, addr+len) so. */
static void expect_name_call(struct unit *u, const void *addr, size_t len, const char *name)
{
    cr_assert_eq(u->rec.name_addr, (uintptr_t)addr);
    cr_assert_eq(u->rec.name_len, len);
    cr_assert_str_eq(u->rec.name, name);
}

static void expect_name(const void *addr, const char *want)
{
    char name[128] = "";
    cr_assert(procmaps_name_at(addr, name, sizeof(name)), "nothing mapped at %p", addr);
    cr_assert_str_eq(name, want);
}

Test(names, shown_in_proc_maps)
{
    struct unit u;
    unit_setup(&u, 0);
    struct mmapper_map_opts named = { .name = "unit-heap" }, other = { .name = "unit-other" };
    char *a = unit_free_range(3 * u.chunk, u.chunk);
    void *q = NULL;
    bool supported = kernel_names_vmas();
    /* Without kernel support the first EINVAL stops all later attempts. */
    uint64_t calls = supported ? 3 : 1;

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &named), 0);
    expect_name_call(&u, a, u.chunk, "unit-heap");
    cr_assert_eq(mmapper_quarantine(u.m, a + 2 * u.chunk, u.chunk, &named), 0);
    if (supported)
        expect_name_call(&u, a + 2 * u.chunk, u.chunk, "unit-heap");
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, &named, &q), 0);
    if (supported)
        expect_name_call(&u, q, u.chunk, "unit-heap");
    cr_assert_eq(test_os_calls(&u.tos, TOS_SET_NAME), calls);
    /* Options apply only to chunks a call transitions. */
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &other), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_SET_NAME), calls);
    struct mmapper_stats s;
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.name_calls, calls);
    unit_expect_states(&u, a, "MUQ");
    unit_expect_kernel(&u, a, 3 * u.chunk);

    if (!supported) {
        cr_log_info("kernel without CONFIG_ANON_VMA_NAME: [anon:NAME] in /proc/self/maps "
                    "not checked");
        unit_teardown(&u);
        return;
    }
    expect_name(a, "[anon:unit-heap]");
    expect_name(a + 2 * u.chunk, "[anon:unit-heap]");
    expect_name(q, "[anon:unit-heap]");
    /* A commit names the chunks it makes usable. */
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + 2 * u.chunk, u.chunk, &other), 0);
    expect_name(a + 2 * u.chunk, "[anon:unit-other]");
    expect_name(a, "[anon:unit-heap]");
    unit_expect_kernel(&u, a, 3 * u.chunk);
    unit_teardown(&u);
}

Test(names, unsupported_kernel_tried_once)
{
    struct unit u;
    unit_setup(&u, 0);
    atomic_store(&u.tos.names_unsupported, true);
    struct mmapper_map_opts named = { .name = "unit-heap" };
    char *a = unit_free_range(3 * u.chunk, u.chunk);
    void *q = NULL;

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &named), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_SET_NAME), 1);
    cr_assert_eq(mmapper_quarantine(u.m, a + u.chunk, u.chunk, &named), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + u.chunk, 2 * u.chunk, &named), 0);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, &named, &q), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_SET_NAME), 1, "names tried again after EINVAL");
    struct mmapper_stats s;
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.name_calls, 1);
    unit_expect_states(&u, a, "MMM");
    unit_expect_states(&u, q, "Q");
    unit_expect_kernel(&u, a, 3 * u.chunk);
    unit_teardown(&u);
}

Test(names, disabled_by_config)
{
    struct unit u;
    unit_setup_cfg(&u, (struct mmapper_config){ .disable_names = true });
    struct mmapper_map_opts named = { .name = "unit-heap" };
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    void *q = NULL;

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &named), 0);
    cr_assert_eq(mmapper_quarantine(u.m, a + u.chunk, u.chunk, &named), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a + u.chunk, u.chunk, &named), 0);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, &named, &q), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_SET_NAME), 0);
    char name[128] = "";
    cr_assert(procmaps_name_at(a, name, sizeof(name)));
    cr_assert(strncmp(name, "[anon:", 6) != 0, "named %s although names are disabled", name);
    unit_expect_states(&u, a, "MM");
    unit_teardown(&u);
}

/* ---- huge-page advice on a kernel without THP ------------------------------- */

/* MADV_HUGEPAGE and MADV_NOHUGEPAGE answer EINVAL there: the mapping still
 * succeeds, and the advice is not tried again (like names). */
Test(huge_pages, kernel_without_thp)
{
    struct unit u;
    unit_setup(&u, 0);
    atomic_store(&u.tos.huge_pages_unsupported, true);
    char *a = unit_free_range(3 * u.chunk, SLAB_BYTES(&u));
    struct mmapper_map_opts thp = { .huge_page = MMAPPER_HUGE_PAGE_TRANSPARENT };
    struct mmapper_map_opts never = { .huge_page = MMAPPER_HUGE_PAGE_NEVER };

    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &thp), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MADVISE), 1);
    cr_assert_eq(mmapper_quarantine(u.m, a + u.chunk, u.chunk, &never), 0);
    void *p;
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, &thp, &p), 0);
    cr_assert_eq(mmapper_ensure_mapped(u.m, p, u.chunk, &never), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MADVISE), 1, "advice tried %llu times",
                 (unsigned long long)test_os_calls(&u.tos, TOS_MADVISE));
    unit_expect_states(&u, a, "MQ");
    cr_assert_eq(mmapper_state(u.m, p), MMAPPER_MAPPED);
    unit_expect_kernel(&u, a, 2 * u.chunk);
    memset(a, 1, u.chunk);
    memset(p, 1, u.chunk);
    unit_teardown(&u);
}

/* ---- kernels with bigger pages ----------------------------------------------- */

/* What a 16 KiB or 64 KiB page kernel (arm64) changes, on the test layer
 * that stands for one: chunks are at least a page, reservations the
 * kernel places are page-aligned, and the layer itself refuses what such a
 * kernel refuses. */
static void check_page_size(size_t page)
{
    unsigned log_page = (unsigned)__builtin_ctzl(page);
    struct test_os tos;
    test_os_init(&tos);
    cr_assert_eq(test_os_set_page_size(&tos, page), 0);
    mmapper_t *m = NULL;
    struct mmapper_config cfg = { .log_chunk_bytes = log_page - 1, .os = &tos.os };
    cr_assert_eq(mmapper_create(&cfg, &m), -EINVAL, "a chunk below the page");
    cfg.log_chunk_bytes = log_page;
    cr_assert_eq(mmapper_create(&cfg, &m), 0, "a chunk of one page");
    cr_assert_eq(mmapper_granularity(m), page);

    void *p = NULL;
    cr_assert_eq(mmapper_quarantine_anywhere(m, 5 * page, NULL, &p), 0);
    cr_assert_eq((uintptr_t)p & (page - 1), 0, "%p not on a %zu-byte page", p, page);
    cr_assert_eq(mmapper_ensure_mapped(m, (char *)p + page, 2 * page, NULL), 0);
    cr_assert_eq(mmapper_state(m, p), MMAPPER_QUARANTINED);
    cr_assert_eq(mmapper_state(m, (char *)p + 2 * page), MMAPPER_MAPPED);
    memset((char *)p + page, 0x5a, 2 * page);
    cr_assert_eq(mmapper_protect(m, (char *)p + 2 * page, page), 0);
    cr_assert_eq(mmapper_decommit(m, (char *)p + page, page), 0);
    char why[256] = "";
    cr_assert_eq(procmaps_check(m, p, 5 * page, true, why, sizeof(why)), 0,
                 "kernel disagrees: %s", why);

    /* The layer is such a kernel: unaligned addresses are EINVAL, lengths
     * round up to its pages, and it places mappings on them. */
    size_t real = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_eq(tos.os.munmap(tos.os.ctx, (char *)p + real, page), -EINVAL);
    cr_assert_eq(tos.os.mprotect(tos.os.ctx, (char *)p + real, page, PROT_READ), -EINVAL);
    void *q = NULL;
    cr_assert_eq(tos.os.mmap(tos.os.ctx, NULL, 1, PROT_READ, 0, &q), 0);
    cr_assert_eq((uintptr_t)q & (page - 1), 0);
    cr_assert_eq(tos.os.munmap(tos.os.ctx, q, 1), 0, "one byte: the whole page");
    cr_assert(procmaps_range_free(q, page), "the page is gone");
    cr_assert_eq(tos.os.mmap(tos.os.ctx, NULL, 0, PROT_READ, 0, &q), -EINVAL);

    cr_assert_eq(mmapper_unmap(m, p, 5 * page), 0);
    cr_assert(procmaps_range_free(p, 5 * page));
    mmapper_destroy(m);
}

Test(pages, bigger_kernel_pages)
{
    check_page_size(16384);
    check_page_size(65536);
}

Test(pages, bad_page_sizes)
{
    struct test_os tos;
    test_os_init(&tos);
    mmapper_t *m = NULL;
    struct mmapper_config cfg = { .log_chunk_bytes = 16, .os = &tos.os };
    size_t real = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bad[] = { 3 * real, real / 2, real + 1 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tos.os.page_size = bad[i];
        cr_assert_eq(mmapper_create(&cfg, &m), -EINVAL, "page size %zu", bad[i]);
        cr_assert_null(m);
    }
    cr_assert_eq(test_os_set_page_size(&tos, 3 * real), -EINVAL);
    tos.os.page_size = 0;   /* the kernel's */
    cr_assert_eq(mmapper_create(&cfg, &m), 0);
    mmapper_destroy(m);
}
