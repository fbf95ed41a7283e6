/*
 * A counting, fault-injecting OS layer for tests.  It forwards to the real
 * kernel (mmapper_os_default()) and can:
 *  - count every call by kind;
 *  - fail the n-th call of a kind (or of any kind) from now on, once or for
 *    every later call too ("sticky"), with a chosen errno;
 *  - behave like a pre-4.17 kernel that ignores MAP_FIXED_NOREPLACE;
 *  - behave like a kernel without CONFIG_ANON_VMA_NAME, or without
 *    transparent huge pages (MADV_HUGEPAGE and MADV_NOHUGEPAGE: EINVAL);
 *  - enforce a fake vm.max_map_count (ENOMEM once /proc/self/maps has that
 *    many lines), to test running out of VMAs without exhausting the real one;
 *  - behave like a kernel with bigger pages (16 KiB, 64 KiB): it reports
 *    that page size (os.page_size), rejects unaligned addresses with EINVAL,
 *    rounds lengths up to its pages and places mappings on them.
 * MMAPPER_TEST_KERNEL in the environment sets the kernel every test_os
 * starts as: a comma list of page=N, noreplace=ignored, thp=none,
 * names=none (tests/kernels.sh reruns suites on such kernels).
 * All of it is thread-safe.
 */
#ifndef MMAPPER_TEST_OS_H
#define MMAPPER_TEST_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mmapper.h"

enum test_os_call { TOS_MMAP, TOS_MUNMAP, TOS_MPROTECT, TOS_MADVISE, TOS_SET_NAME, TOS_NCALLS,
                    TOS_ANY = -1 };

struct test_os {
    struct mmapper_os os;                 /* give &t->os to mmapper_create */
    _Atomic uint64_t calls[TOS_NCALLS];
    _Atomic uint64_t noreplace_maps;      /* successful MAP_FIXED_NOREPLACE mmaps */
    _Atomic uint64_t faults;              /* failures injected so far */
    /* Fault plan: fail the matching call number fail_at (1-based, counted
     * from test_os_fail), and every later one if sticky. */
    _Atomic int fail_call;
    _Atomic long fail_countdown;          /* <= 0: disarmed */
    _Atomic int fail_errno;
    _Atomic bool fail_sticky;
    _Atomic bool failing;                 /* sticky fault has fired */
    _Atomic bool ignore_noreplace;
    _Atomic bool names_unsupported;
    _Atomic bool huge_pages_unsupported;  /* MADV_(NO)HUGEPAGE: EINVAL, no THP */
    _Atomic long max_map_count;           /* 0: no fake limit */
};

void test_os_init(struct test_os *t);
/* The page size the layer stands for (0: the real one); -EINVAL unless a
 * power of two at least the real page size. */
int test_os_set_page_size(struct test_os *t, size_t page_size);
/* Apply MMAPPER_TEST_KERNEL (test_os_init does). */
void test_os_kernel_from_env(struct test_os *t);
/* Fail the at-th call (1-based) of kind `call` (or TOS_ANY) with -err. */
void test_os_fail(struct test_os *t, int call, long at, int err, bool sticky);
void test_os_clear_faults(struct test_os *t);
uint64_t test_os_calls(struct test_os *t, enum test_os_call call);
uint64_t test_os_total_calls(struct test_os *t);
void test_os_reset_counts(struct test_os *t);

#endif
