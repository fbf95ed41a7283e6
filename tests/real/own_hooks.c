/*
 * A jemalloc program with extent hooks of its own (tests/real/module.sh):
 * under mmapper-run its arena must stay on its hooks, so that every extent
 * of it comes from its own alloc hook and its output is the same as without
 * mmapper-run.  The hooks map with mmap and count their calls.
 */
#include "config.h"

#include <jemalloc/jemalloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static _Atomic unsigned allocs;
static _Atomic uintptr_t lo = UINTPTR_MAX, hi;

static void *own_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                       bool *zero, bool *commit, unsigned ind)
{
    (void)h, (void)ind;
    if (new_addr)
        return NULL;   /* keep it simple: jemalloc copes */
    size_t pad = alignment > 4096 ? alignment - 4096 : 0;
    char *m = mmap(NULL, size + pad, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)m + alignment - 1) & ~(uintptr_t)(alignment - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (m + size + pad > p + size)
        munmap(p + size, (size_t)(m + size + pad - (p + size)));
    atomic_fetch_add(&allocs, 1);
    uintptr_t a = (uintptr_t)p, b = a + size, cur = atomic_load(&lo);
    while (a < cur && !atomic_compare_exchange_weak(&lo, &cur, a))
        ;
    cur = atomic_load(&hi);
    while (b > cur && !atomic_compare_exchange_weak(&hi, &cur, b))
        ;
    *zero = *commit = true;
    return p;
}

static extent_hooks_t own = { .alloc = own_alloc };   /* the rest: opt out */

int main(void)
{
    unsigned arena;
    size_t sz = sizeof(arena);
    extent_hooks_t *hooks = &own;
    if (mallctl("arenas.create", &arena, &sz, &hooks, sizeof(hooks)) != 0) {
        puts("own_hooks: arenas.create failed");
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t)1 << (4 + i % 20);
        unsigned char *p = mallocx(n, MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE);
        if (!p) {
            bad++;
            continue;
        }
        memset(p, i, n);
        uintptr_t a = (uintptr_t)p;
        bad += a < atomic_load(&lo) || a + n > atomic_load(&hi);   /* from our hook */
        dallocx(p, MALLOCX_TCACHE_NONE);
    }
    extent_hooks_t *now;
    sz = sizeof(now);
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.extent_hooks", arena);
    mallctl(name, &now, &sz, NULL, 0);
    printf("own_hooks: %s, %u extents from our hook, %d allocations outside them\n",
           now == &own ? "our hooks kept" : "HOOKS REPLACED", atomic_load(&allocs) > 0 ? 1u : 0u,
           bad);
    return bad || now != &own;
}
