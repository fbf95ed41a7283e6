/*
 * The OS layer.  Policy lives in the mapper; this file only knows how to ask
 * the kernel for each primitive safely (mimalloc's prim/os split):
 *  - never map over memory we do not own: MAP_FIXED_NOREPLACE, and for
 *    kernels older than 4.17, which ignore the flag and treat the address as a
 *    hint, a check that the result landed where asked (else unmap, -EEXIST);
 *  - commit with mprotect over our own reservation, so a failure can never
 *    lose the reservation (a MAP_FIXED remap could, on older kernels);
 *  - count every system call made on chunk memory.
 */
#include "config.h"

#include "os.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#endif

/* ---- the real kernel ---------------------------------------------------- */

static int sys_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    (void)ctx;
    void *p = mmap(addr, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

static int sys_munmap(void *ctx, void *addr, size_t len)
{
    (void)ctx;
    return munmap(addr, len) == 0 ? 0 : -errno;
}

static int sys_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    (void)ctx;
    return mprotect(addr, len, prot) == 0 ? 0 : -errno;
}

static int sys_madvise(void *ctx, void *addr, size_t len, int advice)
{
    (void)ctx;
    return madvise(addr, len, advice) == 0 ? 0 : -errno;
}

static int sys_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    (void)ctx;
    return prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)addr,
                 (unsigned long)len, (unsigned long)name) == 0 ? 0 : -errno;
}

static const struct mmapper_os kernel_os = {
    .ctx = NULL,
    .mmap = sys_mmap,
    .munmap = sys_munmap,
    .mprotect = sys_mprotect,
    .madvise = sys_madvise,
    .set_name = sys_set_name,
};

MMAPPER_API const struct mmapper_os *mmapper_os_default(void)
{
    return &kernel_os;
}

/* ---- counted primitives ------------------------------------------------- */

static int call_mmap(struct mm_os *os, void *addr, size_t len, int prot, int flags, void **out)
{
    counter_add(&os->counters->mmap_calls, 1);
    return os->sys->mmap(os->sys->ctx, addr, len, prot, flags, out);
}

static int call_munmap(struct mm_os *os, void *addr, size_t len)
{
    counter_add(&os->counters->munmap_calls, 1);
    return os->sys->munmap(os->sys->ctx, addr, len);
}

static int call_mprotect(struct mm_os *os, void *addr, size_t len, int prot)
{
    counter_add(&os->counters->mprotect_calls, 1);
    return os->sys->mprotect(os->sys->ctx, addr, len, prot);
}

void os_init(struct mm_os *os, const struct mmapper_os *sys,
             struct mm_counters *counters, bool disable_names)
{
    os->sys = sys ? sys : &kernel_os;
    os->counters = counters;
    os->page_size = os->sys->page_size ? os->sys->page_size : os_page_size();
    os->cancel_points = os->sys != &kernel_os;
    os->names_disabled = disable_names;
    atomic_init(&os->names_unsupported, false);
    atomic_init(&os->huge_unsupported, false);
}

size_t os_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

static int map_noreplace(struct mm_os *os, void *addr, size_t len, int prot, int flags)
{
    void *got = NULL;
    int err = call_mmap(os, addr, len, prot, flags | MAP_FIXED_NOREPLACE, &got);
    if (err)
        return err;
    if (got != addr) {
        /* A pre-4.17 kernel took the flag as a hint and put the mapping
         * elsewhere because something occupies addr. */
        call_munmap(os, got, len);
        return -EEXIST;
    }
    return 0;
}

static int prot_bits(mmapper_prot_t prot)
{
    return prot == MMAPPER_PROT_READ_WRITE_EXEC ? PROT_READ | PROT_WRITE | PROT_EXEC
                                                : PROT_READ | PROT_WRITE;
}

int os_map_fresh(struct mm_os *os, void *addr, size_t len, mmapper_prot_t prot)
{
    return map_noreplace(os, addr, len, prot_bits(prot), 0);
}

int os_reserve(struct mm_os *os, void *addr, size_t len)
{
    return map_noreplace(os, addr, len, PROT_NONE, MAP_NORESERVE);
}

int os_reserve_aligned(struct mm_os *os, size_t len, size_t align, void **out)
{
    size_t pad = align > os->page_size ? align - os->page_size : 0;
    if (len > SIZE_MAX - pad)
        return -ENOMEM;
    void *got = NULL;
    int err = call_mmap(os, NULL, len + pad, PROT_NONE, MAP_NORESERVE, &got);
    if (err)
        return err;
    uintptr_t base = (uintptr_t)got;
    uintptr_t start = (base + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - base, tail = pad - head;
    /* On failure give back what is still ours rather than keep a misshapen
     * reservation; once the head is gone, it may already be someone else's. */
    if (head && (err = call_munmap(os, got, head)) != 0) {
        call_munmap(os, got, len + pad);
        return err;
    }
    if (tail && (err = call_munmap(os, (void *)(start + len), tail)) != 0) {
        call_munmap(os, (void *)start, len + tail);
        return err;
    }
    *out = (void *)start;
    return 0;
}

int os_commit(struct mm_os *os, void *addr, size_t len, mmapper_prot_t prot)
{
    return call_mprotect(os, addr, len, prot_bits(prot));
}

int os_protect(struct mm_os *os, void *addr, size_t len)
{
    return call_mprotect(os, addr, len, PROT_NONE);
}

int os_decommit(struct mm_os *os, void *addr, size_t len, size_t chunk, bool *gone)
{
    *gone = false;
    /* MAP_FIXED is safe here, and only here: the caller owns [addr, addr+len)
     * and holds its lock.  Replacing the mapping frees the pages and the
     * commit charge in one call (MADV_DONTNEED keeps the charge, and would
     * need a second call for PROT_NONE).  Since Linux 6.12 a failing
     * MAP_FIXED restores the old mapping instead of leaving a hole. */
    void *got = NULL;
    int err = call_mmap(os, addr, len, PROT_NONE, MAP_FIXED | MAP_NORESERVE, &got);
    if (!err && got != addr)
        return -EFAULT;   /* MAP_FIXED cannot move; a broken OS layer did */
    if (err && map_noreplace(os, addr, len, PROT_NONE, MAP_NORESERVE) == 0) {
        /* Before Linux 6.12 a failing MAP_FIXED may already have unmapped the
         * old mapping, leaving a hole.  Re-reserving it NOREPLACE tells: it
         * succeeds only over a hole, and then gives exactly the state asked
         * for; over the intact old mapping it fails and nothing changed. */
        return 0;
    }
    if (err) {
        /* Still failing: either nothing changed (the old mapping is intact,
         * the re-reservation met it: EEXIST), or a hole is left that we
         * could not fill (ENOMEM) or that someone else mapped into meanwhile
         * (EEXIST).  A failing MAP_FIXED unmaps all of the range or none of
         * it, so any hole at all means our old mapping is gone entirely.
         * Ask the kernel itself, not the OS layer (a query, changing
         * nothing): mincore answers ENOMEM for an unmapped page; the first
         * page of each chunk is looked at, one page of the running kernel
         * (mincore writes a byte per kernel page; the layer's pages may be
         * bigger).  A foreign mapping that covers every one of them cannot
         * be told from our own: that race is the one case left undetected. */
        size_t kernel_page = os_page_size();
        for (size_t off = 0; off < len && !*gone; off += chunk) {
            unsigned char resident;
            *gone = mincore((char *)addr + off, kernel_page, &resident) != 0 &&
                    errno == ENOMEM;
        }
    }
    return err;
}

int os_unmap(struct mm_os *os, void *addr, size_t len)
{
    return call_munmap(os, addr, len);
}

int os_advise_huge(struct mm_os *os, void *addr, size_t len, mmapper_huge_page_t mode)
{
    /* Relaxed: as for names, a stale false costs one more EINVAL. */
    if (mode == MMAPPER_HUGE_PAGE_DEFAULT ||
        atomic_load_explicit(&os->huge_unsupported, memory_order_relaxed))
        return 0;
    counter_add(&os->counters->madvise_calls, 1);
    int err = os->sys->madvise(os->sys->ctx, addr, len,
                               mode == MMAPPER_HUGE_PAGE_TRANSPARENT ? MADV_HUGEPAGE
                                                                     : MADV_NOHUGEPAGE);
    if (err == -EINVAL) {
        /* The range is ours and page-aligned, so EINVAL means a kernel
         * built without transparent huge pages.  Advice is a hint: stop
         * giving it, and do not fail the caller for it. */
        atomic_store_explicit(&os->huge_unsupported, true, memory_order_relaxed);
        return 0;
    }
    return err;
}

bool os_name_valid(const char *name)
{
    size_t n = 0;
    for (const char *c = name; *c; c++, n++) {
        /* The kernel's rule (mm/madvise.c): printable ASCII except these. */
        if (*c < ' ' || *c > '~' || strchr("\\`$[]", *c))
            return false;
    }
    return n > 0 && n < MMAPPER_NAME_MAX;
}

int os_set_name(struct mm_os *os, void *addr, size_t len, const char *name)
{
    /* Relaxed: the flag only saves futile calls; a stale false costs one
     * more EINVAL, which is handled the same way. */
    if (!name || os->names_disabled ||
        atomic_load_explicit(&os->names_unsupported, memory_order_relaxed))
        return 0;
    counter_add(&os->counters->name_calls, 1);
    int err = os->sys->set_name(os->sys->ctx, addr, len, name);
    if (err == -EINVAL) {
        /* Names were validated before the call, so EINVAL means a kernel
         * built without CONFIG_ANON_VMA_NAME.  Names are cosmetic: stop
         * trying, and do not fail the caller for it. */
        atomic_store_explicit(&os->names_unsupported, true, memory_order_relaxed);
        return 0;
    }
    return err;
}

int os_meta_map(size_t len, void **out)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

void os_meta_unmap(void *addr, size_t len)
{
    munmap(addr, len);
}
