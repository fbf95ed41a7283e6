/*
 * Argument checking: every bad argument is -EINVAL before any system call,
 * with nothing recorded.  Plus mmapper_strerror.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "unit.h"

/* Every range-taking entry point on [start, start+bytes), as -errno. */
static void expect_range_einval(struct unit *u, void *start, size_t bytes, const char *what)
{
    void *out = NULL;
    cr_assert_eq(mmapper_ensure_mapped(u->m, start, bytes, NULL), -EINVAL, "ensure_mapped %s", what);
    cr_assert_eq(mmapper_quarantine(u->m, start, bytes, NULL), -EINVAL, "quarantine %s", what);
    cr_assert_eq(mmapper_mark_as_mapped(u->m, start, bytes), -EINVAL, "mark %s", what);
    cr_assert_eq(mmapper_protect(u->m, start, bytes), -EINVAL, "protect %s", what);
    cr_assert_eq(mmapper_decommit(u->m, start, bytes), -EINVAL, "decommit %s", what);
    cr_assert_eq(mmapper_unmap(u->m, start, bytes), -EINVAL, "unmap %s", what);
    if ((uintptr_t)start == 0)
        cr_assert_eq(mmapper_quarantine_anywhere(u->m, bytes, NULL, &out), -EINVAL,
                     "quarantine_anywhere %s", what);
}

static void expect_untouched(struct unit *u)
{
    cr_assert_eq(test_os_total_calls(&u->tos), 0, "a rejected call made a system call");
    struct mmapper_stats s;
    mmapper_get_stats(u->m, &s);
    cr_assert_eq(s.slabs, 0, "a rejected call left metadata behind");
    unit_expect_gauges(u, 0, 0, 0);
}

Test(args, bad_ranges)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    expect_range_einval(&u, a, 0, "of 0 bytes");
    expect_range_einval(&u, NULL, 0, "of 0 bytes at NULL");
    expect_range_einval(&u, (void *)(UINTPTR_MAX - u.chunk + 1), 2 * u.chunk, "overflowing");
    expect_range_einval(&u, (void *)(UINTPTR_MAX - 10), 11, "ending at the top");
    expect_range_einval(&u, (void *)(MMAPPER_ADDRESS_LIMIT - u.chunk), 2 * u.chunk,
                        "crossing the limit");
    expect_range_einval(&u, (void *)MMAPPER_ADDRESS_LIMIT, 1, "at the limit");
#if UINTPTR_MAX > 0xffffffffu
    /* (With 32-bit pointers this is MMAPPER_ADDRESS_LIMIT bytes: "unmap
     * everything", tested in test_table.) */
    expect_range_einval(&u, (void *)0, SIZE_MAX, "of SIZE_MAX bytes");
#endif
    expect_untouched(&u);
    unit_expect_states(&u, a, "U");
    unit_teardown(&u);
}

/* Below the limit but beyond what this machine's page tables reach, the
 * kernel decides: -ENOMEM on 4-level paging, success with 5 levels.  With
 * 32-bit pointers the only such place is the topmost chunk, which the
 * library never takes (the header's conventions): -EINVAL, no syscall. */
Test(args, beyond_the_kernels_address_space)
{
    unit_skip_if_emulated("qemu-user 7.2 takes MAP_FIXED_NOREPLACE as a hint, like a pre-4.17 kernel: the native runs on a simulated old kernel cover that path");
    struct unit u;
    unit_setup(&u, 0);
#if UINTPTR_MAX <= 0xffffffffu
    void *top = (void *)(MMAPPER_ADDRESS_LIMIT & ~(uintptr_t)(u.chunk - 1));
    size_t most = u.chunk - 1;   /* a whole chunk would wrap past 2^32 */
    cr_assert_eq(mmapper_ensure_mapped(u.m, top, most, NULL), -EINVAL);
    cr_assert_eq(mmapper_quarantine(u.m, top, 1, NULL), -EINVAL);
    cr_assert_eq(mmapper_mark_as_mapped(u.m, top, most), -EINVAL);
    cr_assert_eq(mmapper_protect(u.m, top, most), -EINVAL);
    cr_assert_eq(mmapper_decommit(u.m, top, most), -EINVAL);
    cr_assert_eq(mmapper_unmap(u.m, top, most), 0, "nothing to unmap");
    expect_untouched(&u);
    unit_expect_states(&u, top, "U");
#else
    void *high = (void *)((uintptr_t)1 << 50);
    void *p = mmap(high, u.chunk, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    bool reachable = p == high;
    if (p != MAP_FAILED)
        munmap(p, u.chunk);
    int rc = mmapper_ensure_mapped(u.m, high, u.chunk, NULL);
    cr_assert_eq(rc, reachable ? 0 : -ENOMEM, "%s", mmapper_strerror(rc));
    unit_expect_states(&u, high, reachable ? "M" : "U");
#endif
    unit_teardown(&u);
}

Test(args, null_mapper_and_null_out)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    void *out = NULL;
    cr_assert_eq(mmapper_ensure_mapped(NULL, a, u.chunk, NULL), -EINVAL);
    cr_assert_eq(mmapper_quarantine(NULL, a, u.chunk, NULL), -EINVAL);
    cr_assert_eq(mmapper_mark_as_mapped(NULL, a, u.chunk), -EINVAL);
    cr_assert_eq(mmapper_protect(NULL, a, u.chunk), -EINVAL);
    cr_assert_eq(mmapper_decommit(NULL, a, u.chunk), -EINVAL);
    cr_assert_eq(mmapper_unmap(NULL, a, u.chunk), -EINVAL);
    cr_assert_eq(mmapper_quarantine_anywhere(NULL, u.chunk, NULL, &out), -EINVAL);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, NULL, NULL), -EINVAL);
    cr_assert_eq(mmapper_create(NULL, NULL), -EINVAL);
    cr_assert_not(mmapper_is_mapped(NULL, a));
    cr_assert_eq(mmapper_state(NULL, a), MMAPPER_UNMAPPED);
    cr_assert_eq(mmapper_granularity(NULL), 0);
    struct mmapper_stats s;
    memset(&s, 0xff, sizeof(s));
    mmapper_get_stats(NULL, &s);
    cr_assert_eq(s.mmap_calls, 0);
    mmapper_get_stats(u.m, NULL);   /* must not crash */
    mmapper_destroy(NULL);
    expect_untouched(&u);
    unit_teardown(&u);
}

Test(args, quarantine_anywhere_size)
{
    struct unit u;
    unit_setup(&u, 0);
    void *out = NULL;
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, 0, NULL, &out), -EINVAL);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk / 2, NULL, &out), -EINVAL);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk + 4096, NULL, &out), -EINVAL);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, 3 * u.chunk - 1, NULL, &out), -EINVAL);
    cr_assert_null(out);
    expect_untouched(&u);
    unit_teardown(&u);
}

static int create_with(struct mmapper_config cfg)
{
    mmapper_t *m = (mmapper_t *)1;
    int rc = mmapper_create(&cfg, &m);
    if (rc == 0)
        mmapper_destroy(m);
    else
        cr_assert_null(m, "*out not cleared on failure");
    return rc;
}

Test(args, bad_config)
{
    cr_assert_eq(create_with((struct mmapper_config){ .log_chunk_bytes = 11 }), -EINVAL);
    cr_assert_eq(create_with((struct mmapper_config){ .log_chunk_bytes = 31 }), -EINVAL);
    cr_assert_eq(create_with((struct mmapper_config){ .log_chunk_bytes = 1 }), -EINVAL);
    cr_assert_eq(create_with((struct mmapper_config){ .log_chunk_bytes = 12 }), 0);
    cr_assert_eq(create_with((struct mmapper_config){ .log_chunk_bytes = 30 }), 0);
    cr_assert_eq(create_with((struct mmapper_config){ 0 }), 0);

    mmapper_t *m = NULL;
    cr_assert_eq(mmapper_create(NULL, &m), 0);
    cr_assert_eq(mmapper_granularity(m), (size_t)1 << 22);
    mmapper_destroy(m);

    /* Each of the five system-call hooks missing in turn. */
    for (int hole = 0; hole < 5; hole++) {
        struct mmapper_os os = *mmapper_os_default();
        switch (hole) {
        case 0: os.mmap = NULL; break;
        case 1: os.munmap = NULL; break;
        case 2: os.mprotect = NULL; break;
        case 3: os.madvise = NULL; break;
        default: os.set_name = NULL; break;
        }
        cr_assert_eq(create_with((struct mmapper_config){ .os = &os }), -EINVAL,
                     "hook %d missing", hole);
    }
}

Test(args, bad_opts)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    char long_name[MMAPPER_NAME_MAX + 1];
    memset(long_name, 'x', MMAPPER_NAME_MAX);
    long_name[MMAPPER_NAME_MAX] = 0;   /* 80 characters: one too many */
    const struct mmapper_map_opts bad[] = {
        { .prot = (mmapper_prot_t)2 },
        { .prot = (mmapper_prot_t)-1 },
        { .huge_page = (mmapper_huge_page_t)3 },
        { .name = long_name },
        { .name = "heap[1]" },
        { .name = "$heap" },
        { .name = "heap\n" },
        { .name = "back\\slash" },
        { .name = "tick`" },
        { .name = "caf\xc3\xa9" },
        { .name = "" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *out = NULL;
        cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &bad[i]), -EINVAL, "opts %zu", i);
        cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, &bad[i]), -EINVAL, "opts %zu", i);
        cr_assert_eq(mmapper_quarantine_anywhere(u.m, u.chunk, &bad[i], &out), -EINVAL,
                     "opts %zu", i);
    }
    expect_untouched(&u);
    unit_expect_states(&u, a, "U");

    /* The longest legal name and every legal enum value are accepted. */
    long_name[MMAPPER_NAME_MAX - 1] = 0;
    const struct mmapper_map_opts good = { .prot = MMAPPER_PROT_READ_WRITE_EXEC,
                                           .huge_page = MMAPPER_HUGE_PAGE_NEVER,
                                           .name = long_name };
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &good), 0);
    unit_expect_perms(a, "rwxp");
    unit_expect_states(&u, a, "M");
    unit_teardown(&u);
}

Test(args, strerror_distinct)
{
    const int codes[] = { 0, -EINVAL, -ENOMEM, -EEXIST };
    const char *msg[4];
    for (int i = 0; i < 4; i++) {
        msg[i] = mmapper_strerror(codes[i]);
        cr_assert_not_null(msg[i]);
        cr_assert_gt(strlen(msg[i]), 0);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(msg[i], msg[j], "codes %d and %d share a message", codes[i],
                              codes[j]);
    }
    cr_assert_not_null(mmapper_strerror(-12345));
    cr_assert_not_null(mmapper_strerror(5));
}
