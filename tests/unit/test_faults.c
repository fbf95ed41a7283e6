/*
 * System calls that fail: every call returns the error, leaves each chunk in
 * its old state with the kernel agreeing, and succeeds once the fault is gone.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <unistd.h>

#include "unit.h"

static void fail_sticky(struct unit *u, enum test_os_call call, int err)
{
    unit_reset_counts(u);
    test_os_fail(&u->tos, call, 1, err, true);
}

static void clear(struct unit *u)
{
    test_os_clear_faults(&u->tos);
    unit_reset_counts(u);
}

Test(faults, mmap_enomem_on_ensure_mapped)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    fail_sticky(&u, TOS_MMAP, ENOMEM);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), -ENOMEM);
    cr_assert_eq(atomic_load(&u.tos.faults), 1, "the failed mmap was retried");
    unit_expect_states(&u, a, "UU");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_expect_gauges(&u, 0, 0, 0);

    clear(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 1, 0, 0);
    unit_expect_states(&u, a, "MM");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_teardown(&u);
}

Test(faults, mmap_enomem_on_quarantine)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    fail_sticky(&u, TOS_MMAP, ENOMEM);
    cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, NULL), -ENOMEM);
    unit_expect_states(&u, a, "U");
    unit_expect_kernel(&u, a, u.chunk);

    clear(&u);
    cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, NULL), 0);
    unit_expect_states(&u, a, "Q");
    unit_expect_kernel(&u, a, u.chunk);
    unit_teardown(&u);
}

Test(faults, mprotect_enomem_on_commit)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(3 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, 3 * u.chunk, NULL), 0);
    fail_sticky(&u, TOS_MPROTECT, ENOMEM);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 3 * u.chunk, NULL), -ENOMEM);
    unit_expect_states(&u, a, "QQQ");
    unit_expect_kernel(&u, a, 3 * u.chunk);
    unit_expect_gauges(&u, 3, 0, 0);

    clear(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 3 * u.chunk, NULL), 0);
    unit_expect_calls(&u, 0, 0, 1);
    unit_expect_states(&u, a, "MMM");
    unit_expect_kernel(&u, a, 3 * u.chunk);
    unit_teardown(&u);
}

/* One failed mprotect over several chunks: whatever the library makes of it,
 * the chunks done form a prefix and the kernel agrees with every record. */
Test(faults, transient_mprotect_failure_leaves_consistent_prefix)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(4 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, 4 * u.chunk, NULL), 0);
    unit_reset_counts(&u);
    test_os_fail(&u.tos, TOS_MPROTECT, 1, ENOMEM, false);
    int rc = mmapper_ensure_mapped(u.m, a, 4 * u.chunk, NULL);
    cr_assert(rc == 0 || rc == -ENOMEM, "%s", mmapper_strerror(rc));
    bool seen_q = false;
    for (int i = 0; i < 4; i++) {
        mmapper_state_t s = mmapper_state(u.m, chunk_at(&u, a, (size_t)i));
        cr_assert(s == MMAPPER_MAPPED || s == MMAPPER_QUARANTINED);
        cr_assert(!(seen_q && s == MMAPPER_MAPPED), "chunk %d Mapped after a Quarantined one", i);
        seen_q |= s == MMAPPER_QUARANTINED;
    }
    cr_assert_eq(rc == 0, !seen_q, "success reported with chunks left behind, or vice versa");
    unit_expect_kernel(&u, a, 4 * u.chunk);
    unit_teardown(&u);
}

Test(faults, mprotect_enomem_on_protect)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, NULL), 0);
    fill_pattern(a, 2 * u.chunk, 5);
    fail_sticky(&u, TOS_MPROTECT, ENOMEM);
    cr_assert_eq(mmapper_protect(u.m, a, 2 * u.chunk), -ENOMEM);
    /* is_mapped must read true again: the "leaving" mark is withdrawn. */
    unit_expect_states(&u, a, "MM");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    cr_assert(has_pattern(a, 2 * u.chunk, 5));

    clear(&u);
    cr_assert_eq(mmapper_protect(u.m, a, 2 * u.chunk), 0);
    unit_expect_states(&u, a, "PP");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_teardown(&u);
}

Test(faults, mmap_enomem_on_decommit)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, NULL), 0);
    fill_pattern(a, u.chunk, 6);
    fail_sticky(&u, TOS_MMAP, ENOMEM);
    cr_assert_eq(mmapper_decommit(u.m, a, u.chunk), -ENOMEM);
    unit_expect_states(&u, a, "M");
    unit_expect_kernel(&u, a, u.chunk);
    cr_assert(has_pattern(a, u.chunk, 6));

    clear(&u);
    cr_assert_eq(mmapper_decommit(u.m, a, u.chunk), 0);
    unit_expect_states(&u, a, "Q");
    unit_expect_kernel(&u, a, u.chunk);
    unit_teardown(&u);
}

Test(faults, munmap_enomem_on_unmap)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(u.chunk, u.chunk);
    cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, NULL), 0);
    fail_sticky(&u, TOS_MUNMAP, ENOMEM);
    cr_assert_eq(mmapper_unmap(u.m, a, u.chunk), -ENOMEM);
    unit_expect_states(&u, a, "Q");
    unit_expect_kernel(&u, a, u.chunk);
    unit_expect_gauges(&u, 1, 0, 0);

    clear(&u);
    cr_assert_eq(mmapper_unmap(u.m, a, u.chunk), 0);
    unit_expect_states(&u, a, "U");
    cr_assert(procmaps_range_free(a, u.chunk));
    unit_teardown(&u);
}

Test(faults, enomem_on_quarantine_anywhere)
{
    struct unit u;
    unit_setup(&u, 0);
    void *p = (void *)1;
    fail_sticky(&u, TOS_MMAP, ENOMEM);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, 2 * u.chunk, NULL, &p), -ENOMEM);
    cr_assert_eq(p, (void *)1, "*out written on failure");
    unit_expect_gauges(&u, 0, 0, 0);

    /* Trimming the padding fails: the whole reservation goes back. */
    clear(&u);
    test_os_fail(&u.tos, TOS_MUNMAP, 1, ENOMEM, false);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, 2 * u.chunk, NULL, &p), -ENOMEM);
    uintptr_t got = atomic_load(&u.rec.last_mmap_addr);
    size_t got_len = atomic_load(&u.rec.last_mmap_len);
    cr_assert(procmaps_range_free((void *)got, got_len), "the reservation leaked");
    unit_expect_gauges(&u, 0, 0, 0);
    struct mmapper_stats s;
    mmapper_get_stats(u.m, &s);
    cr_assert_eq(s.slabs, 0);

    clear(&u);
    cr_assert_eq(mmapper_quarantine_anywhere(u.m, 2 * u.chunk, NULL, &p), 0);
    unit_expect_states(&u, p, "QQ");
    unit_teardown(&u);
}

/* A failing attribute call undoes the mapping it belonged to. */
Test(faults, failed_name_or_advice_rolls_back)
{
    struct unit u;
    unit_setup(&u, 0);
    char *a = unit_free_range(2 * u.chunk, u.chunk);
    struct mmapper_map_opts named = { .name = "unit" };
    struct mmapper_map_opts huge = { .huge_page = MMAPPER_HUGE_PAGE_TRANSPARENT };

    fail_sticky(&u, TOS_SET_NAME, ENOMEM);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, u.chunk, &named), -ENOMEM);
    unit_expect_states(&u, a, "U");
    cr_assert(procmaps_range_free(a, u.chunk), "mapping kept although naming failed");

    fail_sticky(&u, TOS_MADVISE, ENOMEM);
    cr_assert_eq(mmapper_quarantine(u.m, a, u.chunk, &huge), -ENOMEM);
    unit_expect_states(&u, a, "U");
    cr_assert(procmaps_range_free(a, u.chunk), "reservation kept although madvise failed");

    clear(&u);
    cr_assert_eq(mmapper_quarantine(u.m, a, 2 * u.chunk, NULL), 0);
    fail_sticky(&u, TOS_MADVISE, ENOMEM);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, &huge), -ENOMEM);
    unit_expect_states(&u, a, "QQ");
    unit_expect_kernel(&u, a, 2 * u.chunk);

    clear(&u);
    cr_assert_eq(mmapper_ensure_mapped(u.m, a, 2 * u.chunk, &huge), 0);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MADVISE), 1);
    unit_expect_states(&u, a, "MM");
    unit_expect_kernel(&u, a, 2 * u.chunk);
    unit_teardown(&u);
}
