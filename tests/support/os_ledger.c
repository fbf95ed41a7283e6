#include "config.h"

#include "os_ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define L(ctx) ((struct os_ledger *)(ctx))

static void violation(struct os_ledger *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct os_ledger *l, const char *fmt, ...)
{
    atomic_fetch_add(&l->violations, 1);
    bool no = false;
    if (!atomic_compare_exchange_strong(&l->have_message, &no, true))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->message, sizeof(l->message), fmt, ap);
    va_end(ap);
}

struct span {
    size_t first, n;
};

static bool overlaps(const struct os_ledger *l, const void *addr, size_t len)
{
    uintptr_t a = (uintptr_t)addr, end = l->base + (l->nchunks << l->chunk_shift);
    return a < end && a + len > l->base;
}

/* Mark the chunks of [addr, addr+len) busy.  False if the call is not about
 * the region at all; a call that covers part of a chunk or straddles the
 * region's edge is a violation (and then not tracked). */
static bool claim(struct os_ledger *l, const char *what, void *addr, size_t len,
                  struct span *sp)
{
    if (!overlaps(l, addr, len))
        return false;
    uintptr_t a = (uintptr_t)addr, mask = ((uintptr_t)1 << l->chunk_shift) - 1;
    uintptr_t end = l->base + (l->nchunks << l->chunk_shift);
    if ((a & mask) || (len & mask) || a < l->base || a + len > end) {
        violation(l, "%s(%p, %zu) is not a whole-chunk range inside the region", what, addr,
                  len);
        return false;
    }
    sp->first = (a - l->base) >> l->chunk_shift;
    sp->n = len >> l->chunk_shift;
    for (size_t i = sp->first; i < sp->first + sp->n; i++) {
        if (atomic_exchange(&l->chunks[i].busy, 1))
            violation(l, "%s(%p, %zu): another system call on chunk %#" PRIxPTR
                         " is still running",
                      what, addr, len, l->base + (i << l->chunk_shift));
    }
    atomic_fetch_add(&l->chunks[sp->first].starts, 1);
    return true;
}

static void release(struct os_ledger *l, const struct span *sp)
{
    for (size_t i = sp->first; i < sp->first + sp->n; i++)
        atomic_store(&l->chunks[i].busy, 0);
}

/* Every chunk must be held (mapped in some way) before the call. */
static void require_held(struct os_ledger *l, const char *what, const struct span *sp)
{
    for (size_t i = sp->first; i < sp->first + sp->n; i++) {
        if (atomic_load(&l->chunks[i].view) == LEDGER_ABSENT)
            violation(l, "%s on chunk %#" PRIxPTR ", which the mapper does not hold", what,
                      l->base + (i << l->chunk_shift));
    }
}

static void set_view(struct os_ledger *l, const struct span *sp, enum ledger_view v)
{
    for (size_t i = sp->first; i < sp->first + sp->n; i++) {
        atomic_store(&l->chunks[i].view, (uint8_t)v);
        atomic_fetch_add(&l->chunks[i].changes, 1);
    }
}

static enum ledger_view view_of(int prot)
{
    return (prot & PROT_WRITE) ? LEDGER_RW : LEDGER_NONE;
}

static int l_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct os_ledger *l = L(ctx);
    struct span sp;
    if (!addr || !claim(l, "mmap", addr, len, &sp)) {
        int err = l->next->mmap(l->next->ctx, addr, len, prot, flags, out);
        if (!err && overlaps(l, *out, len))
            violation(l, "the kernel placed an anywhere mapping at %p inside the region "
                         "(a hole the test left open)", *out);
        if (!err && !(flags & MAP_FIXED))   /* MAP_FIXED replaces, adds nothing */
            atomic_fetch_add(&l->outside_bytes, (int64_t)len);
        return err;
    }
    size_t held = sp.first + sp.n;   /* NOREPLACE over held chunks: a probe, must fail */
    if (flags & MAP_FIXED) {
        require_held(l, "MAP_FIXED mmap", &sp);
    } else if (flags & MAP_FIXED_NOREPLACE) {
        for (held = sp.first; held < sp.first + sp.n; held++)
            if (atomic_load(&l->chunks[held].view) != LEDGER_ABSENT)
                break;
    } else {
        violation(l, "mmap(%p) with a mere hint inside the region", addr);
    }
    int err = l->next->mmap(l->next->ctx, addr, len, prot, flags, out);
    if (!err && *out == addr && held < sp.first + sp.n)
        violation(l, "a fresh mapping at %p succeeded over chunk %#" PRIxPTR
                     ", which the mapper held", addr, l->base + (held << l->chunk_shift));
    if (!err && *out == addr)
        set_view(l, &sp, view_of(prot));
    else if (!err)   /* NOREPLACE taken as a hint (pre-4.17 kernels, valgrind) */
        atomic_fetch_add(&l->outside_bytes, (int64_t)len);
    release(l, &sp);
    return err;
}

static int l_munmap(void *ctx, void *addr, size_t len)
{
    struct os_ledger *l = L(ctx);
    struct span sp;
    if (!claim(l, "munmap", addr, len, &sp)) {
        int err = l->next->munmap(l->next->ctx, addr, len);
        if (!err)
            atomic_fetch_sub(&l->outside_bytes, (int64_t)len);
        return err;
    }
    require_held(l, "munmap", &sp);
    int err = l->next->munmap(l->next->ctx, addr, len);
    if (!err)
        set_view(l, &sp, LEDGER_ABSENT);
    release(l, &sp);
    return err;
}

static int l_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct os_ledger *l = L(ctx);
    struct span sp;
    if (!claim(l, "mprotect", addr, len, &sp))
        return l->next->mprotect(l->next->ctx, addr, len, prot);
    require_held(l, "mprotect", &sp);
    int err = l->next->mprotect(l->next->ctx, addr, len, prot);
    if (!err)
        set_view(l, &sp, view_of(prot));
    release(l, &sp);
    return err;
}

static int l_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct os_ledger *l = L(ctx);
    struct span sp;
    if (!claim(l, "madvise", addr, len, &sp))
        return l->next->madvise(l->next->ctx, addr, len, advice);
    require_held(l, "madvise", &sp);
    int err = l->next->madvise(l->next->ctx, addr, len, advice);
    release(l, &sp);
    return err;
}

static int l_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct os_ledger *l = L(ctx);
    struct span sp;
    if (!claim(l, "set_name", addr, len, &sp))
        return l->next->set_name(l->next->ctx, addr, len, name);
    require_held(l, "set_name", &sp);
    int err = l->next->set_name(l->next->ctx, addr, len, name);
    release(l, &sp);
    return err;
}

void os_ledger_init(struct os_ledger *l, const struct mmapper_os *next)
{
    memset(l, 0, sizeof(*l));
    l->os = (struct mmapper_os){ .ctx = l, .mmap = l_mmap, .munmap = l_munmap,
                                 .mprotect = l_mprotect, .madvise = l_madvise,
                                 .set_name = l_set_name };
    l->next = next ? next : mmapper_os_default();
    l->os.page_size = l->next->page_size;   /* the kernel it stands for */
}

static const uint8_t view_of_state[] = {
    [MMAPPER_UNMAPPED] = LEDGER_ABSENT, [MMAPPER_QUARANTINED] = LEDGER_NONE,
    [MMAPPER_MAPPED] = LEDGER_RW, [MMAPPER_PROTECTED] = LEDGER_NONE,
};

int os_ledger_track(struct os_ledger *l, const mmapper_t *m, void *base, size_t bytes)
{
    unsigned shift = (unsigned)__builtin_ctzl(mmapper_granularity(m));
    size_t n = bytes >> shift;
    struct ledger_chunk *chunks = calloc(n ? n : 1, sizeof(*chunks));
    if (!chunks)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        mmapper_state_t st = mmapper_state(m, (char *)base + (i << shift));
        atomic_init(&chunks[i].view, view_of_state[st & 3]);
    }
    free(l->chunks);
    l->chunks = chunks;
    l->base = (uintptr_t)base;
    l->chunk_shift = shift;
    l->nchunks = n;
    return 0;
}

void os_ledger_fini(struct os_ledger *l)
{
    free(l->chunks);
    l->chunks = NULL;
}

void os_ledger_set_view(struct os_ledger *l, void *addr, size_t bytes, enum ledger_view v)
{
    struct span sp;
    if (!claim(l, "os_ledger_set_view", addr, bytes, &sp))
        return;
    atomic_fetch_sub(&l->chunks[sp.first].starts, 1);   /* not a call of the mapper */
    for (size_t i = sp.first; i < sp.first + sp.n; i++)
        atomic_store(&l->chunks[i].view, (uint8_t)v);
    release(l, &sp);
}

void os_ledger_reset_counts(struct os_ledger *l)
{
    for (size_t i = 0; i < l->nchunks; i++) {
        atomic_store(&l->chunks[i].starts, 0);
        atomic_store(&l->chunks[i].changes, 0);
    }
}

uint64_t os_ledger_starts(struct os_ledger *l, size_t first, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = first; i < first + n && i < l->nchunks; i++)
        sum += atomic_load(&l->chunks[i].starts);
    return sum;
}

uint64_t os_ledger_changes(struct os_ledger *l, size_t first, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = first; i < first + n && i < l->nchunks; i++)
        sum += atomic_load(&l->chunks[i].changes);
    return sum;
}

int os_ledger_verify(struct os_ledger *l, const mmapper_t *m, char *why, size_t n)
{
    if (atomic_load(&l->violations)) {
        snprintf(why, n, "%" PRIu64 " violation(s), first: %s", atomic_load(&l->violations),
                 l->message);
        return -1;
    }
    static const char *names[] = { "absent", "PROT_NONE", "read-write" };
    for (size_t i = 0; i < l->nchunks; i++) {
        uintptr_t c = l->base + (i << l->chunk_shift);
        mmapper_state_t st = mmapper_state(m, (void *)c);
        uint8_t v = atomic_load(&l->chunks[i].view);
        if ((unsigned)st > MMAPPER_PROTECTED || v != view_of_state[st]) {
            snprintf(why, n, "chunk %#" PRIxPTR " recorded in state %d but its system calls "
                             "left it %s", c, st, names[v]);
            return -1;
        }
    }
    return 0;
}
