#include "config.h"

#include "test_os.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "procmaps.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static bool should_fail(struct test_os *t, enum test_os_call call, int *err)
{
    int which = atomic_load(&t->fail_call);
    if (which != TOS_ANY && which != (int)call)
        return false;
    if (atomic_load(&t->failing)) {
        *err = -atomic_load(&t->fail_errno);
        atomic_fetch_add(&t->faults, 1);
        return true;
    }
    if (atomic_load(&t->fail_countdown) <= 0)
        return false;
    if (atomic_fetch_sub(&t->fail_countdown, 1) != 1)
        return false;
    if (atomic_load(&t->fail_sticky))
        atomic_store(&t->failing, true);
    *err = -atomic_load(&t->fail_errno);
    atomic_fetch_add(&t->faults, 1);
    return true;
}

static bool over_vma_limit(struct test_os *t)
{
    long limit = atomic_load(&t->max_map_count);
    return limit > 0 && procmaps_count_vmas() >= limit;
}

#define CTX(ctx) ((struct test_os *)(ctx))
#define REAL (mmapper_os_default())

/*
 * A kernel with bigger pages (t->os.page_size): what such a kernel checks
 * and rounds, before the real (smaller-paged) kernel does the work.  An
 * address must be page-aligned (EINVAL), a length is rounded up to whole
 * pages (0 is EINVAL for mmap), and a mapping the kernel places starts on
 * a page: it is made by over-mapping one page and trimming.
 */
static size_t big_page(const struct test_os *t)
{
    return t->os.page_size;
}

static int page_check(const struct test_os *t, const void *addr, size_t *len)
{
    size_t p = big_page(t);
    if (!p)
        return 0;
    if ((uintptr_t)addr & (p - 1))
        return -EINVAL;
    if (*len > SIZE_MAX - (p - 1))
        return -ENOMEM;
    *len = (*len + p - 1) & ~(p - 1);
    return 0;
}

static int map_placed_on_page(const struct test_os *t, size_t len, int prot, int flags,
                              void **out)
{
    size_t p = big_page(t), pad = p - (size_t)sysconf(_SC_PAGESIZE);
    void *got;
    int err = REAL->mmap(REAL->ctx, NULL, len + pad, prot, flags, &got);
    if (err)
        return err;
    uintptr_t start = ((uintptr_t)got + p - 1) & ~(uintptr_t)(p - 1);
    size_t head = start - (uintptr_t)got;
    if (head)
        REAL->munmap(REAL->ctx, got, head);
    if (pad - head)
        REAL->munmap(REAL->ctx, (void *)(start + len), pad - head);
    *out = (void *)start;
    return 0;
}

static int t_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct test_os *t = CTX(ctx);
    int err;
    atomic_fetch_add(&t->calls[TOS_MMAP], 1);
    if (should_fail(t, TOS_MMAP, &err))
        return err;
    if (over_vma_limit(t))
        return -ENOMEM;
    if (big_page(t)) {
        if (len == 0)
            return -EINVAL;
        if ((err = page_check(t, addr, &len)) != 0)
            return err;
        if (!addr)
            return map_placed_on_page(t, len, prot, flags, out);
    }
    int real_flags = flags;
    if ((flags & MAP_FIXED_NOREPLACE) && atomic_load(&t->ignore_noreplace))
        real_flags &= ~MAP_FIXED_NOREPLACE;   /* a pre-4.17 kernel: just a hint */
    err = REAL->mmap(REAL->ctx, addr, len, prot, real_flags, out);
    if (!err && big_page(t) && ((uintptr_t)*out & (big_page(t) - 1))) {
        /* A hint the kernel did not take: it places on its own pages. */
        REAL->munmap(REAL->ctx, *out, len);
        return map_placed_on_page(t, len, prot, real_flags, out);
    }
    if (!err && (flags & MAP_FIXED_NOREPLACE) && *out == addr)
        atomic_fetch_add(&t->noreplace_maps, 1);
    return err;
}

static int t_munmap(void *ctx, void *addr, size_t len)
{
    struct test_os *t = CTX(ctx);
    int err;
    atomic_fetch_add(&t->calls[TOS_MUNMAP], 1);
    if (should_fail(t, TOS_MUNMAP, &err))
        return err;
    if ((err = page_check(t, addr, &len)) != 0)
        return err;
    return REAL->munmap(REAL->ctx, addr, len);
}

static int t_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct test_os *t = CTX(ctx);
    int err;
    atomic_fetch_add(&t->calls[TOS_MPROTECT], 1);
    if (should_fail(t, TOS_MPROTECT, &err))
        return err;
    if (over_vma_limit(t))
        return -ENOMEM;
    if ((err = page_check(t, addr, &len)) != 0)
        return err;
    return REAL->mprotect(REAL->ctx, addr, len, prot);
}

static int t_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct test_os *t = CTX(ctx);
    int err;
    atomic_fetch_add(&t->calls[TOS_MADVISE], 1);
    if (should_fail(t, TOS_MADVISE, &err))
        return err;
    if (atomic_load(&t->huge_pages_unsupported) &&
        (advice == MADV_HUGEPAGE || advice == MADV_NOHUGEPAGE))
        return -EINVAL;
    if ((err = page_check(t, addr, &len)) != 0)
        return err;
    return REAL->madvise(REAL->ctx, addr, len, advice);
}

static int t_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct test_os *t = CTX(ctx);
    int err;
    atomic_fetch_add(&t->calls[TOS_SET_NAME], 1);
    if (should_fail(t, TOS_SET_NAME, &err))
        return err;
    if (atomic_load(&t->names_unsupported))
        return -EINVAL;
    if ((err = page_check(t, addr, &len)) != 0)
        return err;
    return REAL->set_name(REAL->ctx, addr, len, name);
}

void test_os_init(struct test_os *t)
{
    memset(t, 0, sizeof(*t));
    t->os = (struct mmapper_os){ .ctx = t, .mmap = t_mmap, .munmap = t_munmap,
                                 .mprotect = t_mprotect, .madvise = t_madvise,
                                 .set_name = t_set_name };
    atomic_store(&t->fail_call, TOS_ANY);
    test_os_kernel_from_env(t);
}

int test_os_set_page_size(struct test_os *t, size_t page_size)
{
    long real = sysconf(_SC_PAGESIZE);
    if (page_size && ((page_size & (page_size - 1)) || page_size < (size_t)real))
        return -EINVAL;
    t->os.page_size = page_size;
    return 0;
}

void test_os_kernel_from_env(struct test_os *t)
{
    const char *env = getenv("MMAPPER_TEST_KERNEL");
    if (!env || !*env)
        return;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", env);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strncmp(w, "page=", 5)) {
            if (test_os_set_page_size(t, strtoul(w + 5, NULL, 0)) != 0) {
                fprintf(stderr, "MMAPPER_TEST_KERNEL: bad page size '%s'\n", w + 5);
                exit(99);
            }
        } else if (!strcmp(w, "noreplace=ignored")) {
            atomic_store(&t->ignore_noreplace, true);
        } else if (!strcmp(w, "thp=none")) {
            atomic_store(&t->huge_pages_unsupported, true);
        } else if (!strcmp(w, "names=none")) {
            atomic_store(&t->names_unsupported, true);
        } else {
            fprintf(stderr, "MMAPPER_TEST_KERNEL: unknown '%s' (page=N, noreplace=ignored, "
                            "thp=none, names=none)\n", w);
            exit(99);
        }
    }
}

void test_os_fail(struct test_os *t, int call, long at, int err, bool sticky)
{
    atomic_store(&t->failing, false);
    atomic_store(&t->fail_call, call);
    atomic_store(&t->fail_errno, err);
    atomic_store(&t->fail_sticky, sticky);
    atomic_store(&t->fail_countdown, at);
}

void test_os_clear_faults(struct test_os *t)
{
    atomic_store(&t->fail_countdown, 0);
    atomic_store(&t->failing, false);
}

uint64_t test_os_calls(struct test_os *t, enum test_os_call call)
{
    return atomic_load(&t->calls[call]);
}

uint64_t test_os_total_calls(struct test_os *t)
{
    uint64_t n = 0;
    for (int i = 0; i < TOS_NCALLS; i++)
        n += atomic_load(&t->calls[i]);
    return n;
}

void test_os_reset_counts(struct test_os *t)
{
    for (int i = 0; i < TOS_NCALLS; i++)
        atomic_store(&t->calls[i], 0);
    atomic_store(&t->noreplace_maps, 0);
    atomic_store(&t->faults, 0);
}
