#include "config.h"

#include "unit.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- the recorder --------------------------------------------------------- */

#define REC(ctx) ((struct recorder *)(ctx))
#define INNER(r) (&(r)->inner->os)

static int rec_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct recorder *r = REC(ctx);
    int err = INNER(r)->mmap(INNER(r)->ctx, addr, len, prot, flags, out);
    if (!err) {
        atomic_store(&r->last_mmap_addr, (uintptr_t)*out);
        atomic_store(&r->last_mmap_len, len);
        atomic_fetch_add(&r->mmap_bytes, len);
    }
    return err;
}

static int rec_munmap(void *ctx, void *addr, size_t len)
{
    struct recorder *r = REC(ctx);
    int err = INNER(r)->munmap(INNER(r)->ctx, addr, len);
    if (!err)
        atomic_fetch_add(&r->munmap_bytes, len);
    return err;
}

static int rec_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct recorder *r = REC(ctx);
    int err = INNER(r)->mprotect(INNER(r)->ctx, addr, len, prot);
    if (!err)
        atomic_fetch_add(&r->mprotect_bytes, len);
    return err;
}

static int rec_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct recorder *r = REC(ctx);
    return INNER(r)->madvise(INNER(r)->ctx, addr, len, advice);
}

static int rec_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct recorder *r = REC(ctx);
    r->name_addr = (uintptr_t)addr;
    r->name_len = len;
    snprintf(r->name, sizeof(r->name), "%s", name);
    return INNER(r)->set_name(INNER(r)->ctx, addr, len, name);
}

/* ---- fixture -------------------------------------------------------------- */

size_t unit_page_size(void)
{
    struct test_os t;
    test_os_init(&t);
    return t.os.page_size ? t.os.page_size : (size_t)sysconf(_SC_PAGESIZE);
}

void unit_setup_cfg(struct unit *u, struct mmapper_config cfg)
{
    memset(u, 0, sizeof(*u));
    test_os_init(&u->tos);
    u->rec.inner = &u->tos;
    u->rec.os = (struct mmapper_os){ .ctx = &u->rec, .mmap = rec_mmap, .munmap = rec_munmap,
                                     .mprotect = rec_mprotect, .madvise = rec_madvise,
                                     .set_name = rec_set_name,
                                     .page_size = u->tos.os.page_size };
    cfg.os = &u->rec.os;
    int err = mmapper_create(&cfg, &u->m);
    cr_assert_eq(err, 0, "mmapper_create: %s", mmapper_strerror(err));
    u->chunk = mmapper_granularity(u->m);
    cr_assert_eq(test_os_total_calls(&u->tos), 0, "creating a mapper touched chunk memory");
}

void unit_setup(struct unit *u, unsigned log_chunk)
{
    unit_setup_cfg(u, (struct mmapper_config){ .log_chunk_bytes = log_chunk });
}

void unit_teardown(struct unit *u)
{
    mmapper_destroy(u->m);
    u->m = NULL;
}

void unit_reset_counts(struct unit *u)
{
    test_os_reset_counts(&u->tos);
    atomic_store(&u->rec.mmap_bytes, 0);
    atomic_store(&u->rec.munmap_bytes, 0);
    atomic_store(&u->rec.mprotect_bytes, 0);
}

void unit_expect_calls(struct unit *u, uint64_t mmap, uint64_t munmap, uint64_t mprotect)
{
    uint64_t got_mmap = test_os_calls(&u->tos, TOS_MMAP);
    uint64_t got_munmap = test_os_calls(&u->tos, TOS_MUNMAP);
    uint64_t got_mprotect = test_os_calls(&u->tos, TOS_MPROTECT);
    cr_assert(got_mmap == mmap && got_munmap == munmap && got_mprotect == mprotect,
              "syscalls: mmap %llu munmap %llu mprotect %llu, expected %llu %llu %llu",
              (unsigned long long)got_mmap, (unsigned long long)got_munmap,
              (unsigned long long)got_mprotect, (unsigned long long)mmap,
              (unsigned long long)munmap, (unsigned long long)mprotect);
}

void *unit_free_range(size_t bytes, size_t align)
{
    /* The kernel places new mappings top-down, so metadata the mapper maps
     * next (pool blocks, table arrays) lands at the top of the hole we free
     * here.  Keep 16 MiB of slack there and return the bottom of the hole. */
    size_t span = bytes + align + ((size_t)16 << 20);
    void *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "cannot find %zu free bytes", bytes);
    cr_assert_eq(munmap(p, span), 0);
    return (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
}

/* ---- state and kernel checks ---------------------------------------------- */

static char state_letter(mmapper_state_t s)
{
    return "UQMP"[s & 3];
}

void unit_expect_states(struct unit *u, void *base, const char *want)
{
    char got[512];
    size_t n = strlen(want);
    cr_assert_lt(n, sizeof(got));
    for (size_t i = 0; i < n; i++)
        got[i] = state_letter(mmapper_state(u->m, chunk_at(u, base, i)));
    got[n] = 0;
    cr_assert_str_eq(got, want, "chunk states %s, expected %s", got, want);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(mmapper_is_mapped(u->m, chunk_at(u, base, i)), want[i] == 'M',
                     "is_mapped disagrees with state %c at chunk %zu", want[i], i);
}

void unit_expect_kernel(struct unit *u, void *start, size_t bytes)
{
    char why[256] = "";
    cr_assert_eq(procmaps_check(u->m, start, bytes, true, why, sizeof(why)), 0,
                 "kernel disagrees: %s", why);
}

void unit_expect_perms(const void *addr, const char *want)
{
    char perms[5] = "";
    procmaps_perms_at(addr, perms);
    cr_assert_str_eq(perms, want, "perms at %p: '%s', expected '%s'", addr, perms, want);
}

long unit_vma_count(void)
{
    static char buf[1 << 16];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    long lines = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    close(fd);
    return lines;
}

/* ---- memory contents ------------------------------------------------------ */

/* One word every 256 bytes touches every page without writing all of it. */
#define PATTERN_STRIDE 256

static uint64_t pattern_word(size_t off, unsigned seed)
{
    return ((uint64_t)seed << 40) ^ (off * 0x9E3779B97F4A7C15ull) ^ 0x5a5a;
}

void fill_pattern(void *p, size_t n, unsigned seed)
{
    for (size_t off = 0; off + sizeof(uint64_t) <= n; off += PATTERN_STRIDE)
        *(uint64_t *)((char *)p + off) = pattern_word(off, seed);
}

bool has_pattern(const void *p, size_t n, unsigned seed)
{
    for (size_t off = 0; off + sizeof(uint64_t) <= n; off += PATTERN_STRIDE)
        if (*(const uint64_t *)((const char *)p + off) != pattern_word(off, seed))
            return false;
    return true;
}

bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

void unit_expect_gauges(struct unit *u, uint64_t quarantined, uint64_t mapped,
                        uint64_t protected_)
{
    struct mmapper_stats s;
    mmapper_get_stats(u->m, &s);
    cr_assert(s.chunks_quarantined == quarantined && s.chunks_mapped == mapped &&
                  s.chunks_protected == protected_,
              "gauges Q %llu M %llu P %llu, expected %llu %llu %llu",
              (unsigned long long)s.chunks_quarantined, (unsigned long long)s.chunks_mapped,
              (unsigned long long)s.chunks_protected, (unsigned long long)quarantined,
              (unsigned long long)mapped, (unsigned long long)protected_);
}
