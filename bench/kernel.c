#include "config.h"

#include "kernel.h"

#include <errno.h>
#include <sys/mman.h>

#include "util.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static void count(_Atomic uint64_t *syscalls)
{
    atomic_fetch_add_explicit(syscalls, 1, memory_order_relaxed);
}

static int map_at(void *addr, size_t len, int prot, int flags, _Atomic uint64_t *syscalls)
{
    count(syscalls);
    void *p = mmap(addr, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (p != addr) {   /* a pre-4.17 kernel took NOREPLACE as a hint */
        count(syscalls);
        munmap(p, len);
        return -EEXIST;
    }
    return 0;
}

int kern_map_fresh(void *addr, size_t len, _Atomic uint64_t *syscalls)
{
    return map_at(addr, len, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE, syscalls);
}

int kern_reserve(void *addr, size_t len, _Atomic uint64_t *syscalls)
{
    return map_at(addr, len, PROT_NONE, MAP_FIXED_NOREPLACE | MAP_NORESERVE, syscalls);
}

int kern_commit(void *addr, size_t len, _Atomic uint64_t *syscalls)
{
    count(syscalls);
    return mprotect(addr, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

int kern_decommit(void *addr, size_t len, _Atomic uint64_t *syscalls)
{
    return map_at(addr, len, PROT_NONE, MAP_FIXED | MAP_NORESERVE, syscalls);
}

int kern_unmap(void *addr, size_t len, _Atomic uint64_t *syscalls)
{
    count(syscalls);
    return munmap(addr, len) ? -errno : 0;
}

void *kern_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        die("cannot map %zu bytes of benchmark metadata", bytes);
    return p;
}

void kern_free(void *p, size_t bytes)
{
    munmap(p, bytes);
}

/* ThreadSanitizer kills a process that maps outside its application ranges. */
#if defined(__SANITIZE_THREAD__)
#define FIXED_WINDOWS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIXED_WINDOWS 0
#endif
#endif
#ifndef FIXED_WINDOWS
#define FIXED_WINDOWS 1
#endif

uintptr_t kern_find_window(size_t bytes, size_t align)
{
    /* 16 TiB and up: above the executable and heap, far below the kernel's
     * mmap base (~128 TiB), so thread stacks and malloc arenas land elsewhere. */
    for (uintptr_t base = (uintptr_t)1 << 44; FIXED_WINDOWS && base + bytes <= (uintptr_t)1 << 46;
         base += (uintptr_t)1 << 42) {
        if (base & (align - 1))
            continue;
        void *p = mmap((void *)base, bytes, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED)
            continue;
        munmap(p, bytes);
        if ((uintptr_t)p == base)
            return base;
    }
    /* Sanitizers own those addresses: let the kernel place twice the room
     * and use the bottom of it, since it fills a hole from the top down. */
    size_t len = 2 * bytes + align;
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        die("no free %zu-byte window of address space (try a smaller --log-chunk)", bytes);
    munmap(p, len);
    progress("window at %p, chosen by the kernel", p);
    return ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
}
