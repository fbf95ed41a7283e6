/*
 * bad_input: every kind of invalid call gets its documented errno and
 * changes nothing.
 *
 * A table of cases, each one call: NULL mapper or out pointers, bytes == 0,
 * start + bytes overflowing, ranges at or past MMAPPER_ADDRESS_LIMIT and in
 * kernel space, unaligned quarantine_anywhere sizes, bad options (names too
 * long or with forbidden characters, unknown prot or huge page values),
 * illegal transitions (protect of Unmapped or Quarantined, decommit of
 * Unmapped, also in ranges that are otherwise legal), foreign mappings in
 * the way (-EEXIST), bad configurations, and the same mistakes made after a
 * call that failed part-way.  Around each case the states of a 16-chunk
 * region in all four states and its lines of /proc/self/maps are snapshot;
 * they must not change, and the mapper must make no system call (except
 * where the kernel has to be asked to find out: -EEXIST).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 16

/* Chunk roles in the region; chunk 14 holds a foreign mapping. */
static const char pattern[NCHUNKS + 1] = "UQMPMMUPQMUMUUUU";
#define FOREIGN 14

static struct test_os tos;
static mmapper_t *m;
static char *region;
static size_t chunk;
static const uintptr_t limit = MMAPPER_ADDRESS_LIMIT;
#if UINTPTR_MAX > 0xffffffffu
static const uintptr_t kernel_space = (uintptr_t)0xffff888000000000ull;
#else   /* the top page: the kernel's on every 32-bit configuration */
static const uintptr_t kernel_space = (uintptr_t)0xfffff000u;
#endif

static char *at(size_t i)
{
    return region + i * chunk;
}

/* ---- the cases ---------------------------------------------------------- */

static const struct mmapper_map_opts *name_opts(const char *name)
{
    static struct mmapper_map_opts o;
    o = (struct mmapper_map_opts){ .name = name };
    return &o;
}

static char long_name[MMAPPER_NAME_MAX + 1];

static int create_with(unsigned log_chunk, const struct mmapper_os *os)
{
    struct mmapper_config cfg = { .log_chunk_bytes = log_chunk, .os = os };
    mmapper_t *x = (mmapper_t *)&cfg;
    int rc = mmapper_create(&cfg, &x);
    if (rc == 0)
        mmapper_destroy(x);
    else if (x != NULL)
        return -1000;   /* *out must be NULL on failure */
    return rc;
}

static int c_create_null_out(void) { return mmapper_create(NULL, NULL); }
static int c_create_log_small(void) { return create_with(11, NULL); }
static int c_create_log_big(void) { return create_with(31, NULL); }
static int c_create_log_huge(void) { return create_with(200, NULL); }
static int c_create_os_no_mmap(void)
{
    struct mmapper_os os = tos.os;
    os.mmap = NULL;
    return create_with(LOG_CHUNK, &os);
}
static int c_create_os_no_name(void)
{
    struct mmapper_os os = tos.os;
    os.set_name = NULL;
    return create_with(LOG_CHUNK, &os);
}

static int c_map_null(void) { return mmapper_ensure_mapped(NULL, at(0), chunk, NULL); }
static int c_map_zero(void) { return mmapper_ensure_mapped(m, at(0), 0, NULL); }
static int c_map_overflow(void)
{
    return mmapper_ensure_mapped(m, (void *)(UINTPTR_MAX - 10), 100, NULL);
}
static int c_map_at_limit(void) { return mmapper_ensure_mapped(m, (void *)limit, chunk, NULL); }
static int c_map_past_limit(void)
{
    return mmapper_ensure_mapped(m, (void *)(limit - chunk), 2 * chunk, NULL);
}
static int c_map_kernel(void)
{
    return mmapper_ensure_mapped(m, (void *)kernel_space, chunk, NULL);
}
static int c_map_whole_space(void) { return mmapper_ensure_mapped(m, NULL, SIZE_MAX, NULL); }
static int c_quar_null(void) { return mmapper_quarantine(NULL, at(0), chunk, NULL); }
static int c_quar_zero(void) { return mmapper_quarantine(m, at(0), 0, NULL); }
static int c_quar_overflow(void)
{
    return mmapper_quarantine(m, (void *)(UINTPTR_MAX - chunk + 1), 2 * chunk, NULL);
}
static int c_mark_null(void) { return mmapper_mark_as_mapped(NULL, at(0), chunk); }
static int c_mark_zero(void) { return mmapper_mark_as_mapped(m, at(0), 0); }
static int c_mark_past_limit(void) { return mmapper_mark_as_mapped(m, (void *)limit, 1); }
static int c_prot_null(void) { return mmapper_protect(NULL, at(2), chunk); }
static int c_prot_zero(void) { return mmapper_protect(m, at(2), 0); }
static int c_prot_kernel(void) { return mmapper_protect(m, (void *)kernel_space, chunk); }
static int c_deco_null(void) { return mmapper_decommit(NULL, at(2), chunk); }
static int c_deco_overflow(void) { return mmapper_decommit(m, at(2), SIZE_MAX); }
static int c_unmap_null(void) { return mmapper_unmap(NULL, at(1), chunk); }
static int c_unmap_zero(void) { return mmapper_unmap(m, at(1), 0); }
static int c_unmap_at_limit(void) { return mmapper_unmap(m, (void *)limit, chunk); }
static int c_unmap_kernel(void) { return mmapper_unmap(m, (void *)kernel_space, chunk); }
static int c_unmap_top(void) { return mmapper_unmap(m, (void *)(UINTPTR_MAX - 10), 5); }
static int c_unmap_straddle_limit(void)
{
    return mmapper_unmap(m, (void *)(limit - chunk), 2 * chunk);
}

static int anywhere(mmapper_t *x, size_t bytes, const struct mmapper_map_opts *o, bool null_out)
{
    void *out = &out;
    int rc = mmapper_quarantine_anywhere(x, bytes, o, null_out ? NULL : &out);
    if (rc == 0)
        mmapper_unmap(x, out, bytes);
    else if (!null_out && out != (void *)&out)
        return -1000;   /* *out written on failure */
    return rc;
}

static int c_any_null(void) { return anywhere(NULL, chunk, NULL, false); }
static int c_any_null_out(void) { return anywhere(m, chunk, NULL, true); }
static int c_any_zero(void) { return anywhere(m, 0, NULL, false); }
static int c_any_plus_one(void) { return anywhere(m, chunk + 1, NULL, false); }
static int c_any_half(void) { return anywhere(m, chunk / 2, NULL, false); }
static int c_any_page(void) { return anywhere(m, (size_t)sysconf(_SC_PAGESIZE), NULL, false); }
static int c_any_bad_name(void) { return anywhere(m, chunk, name_opts("a[b"), false); }
/* The kernel's answer: -ENOMEM (valgrind's mmap says -EINVAL). */
static int c_any_huge(void)
{
    int rc = anywhere(m, SIZE_MAX & ~(chunk - 1), NULL, false);
    return rc == -EINVAL && stress_under_valgrind() ? -ENOMEM : rc;
}

static int c_opt_prot(void)
{
    struct mmapper_map_opts o = { .prot = (mmapper_prot_t)7 };
    return mmapper_ensure_mapped(m, at(0), chunk, &o);
}
static int c_opt_huge(void)
{
    struct mmapper_map_opts o = { .huge_page = (mmapper_huge_page_t)9 };
    return mmapper_ensure_mapped(m, at(0), chunk, &o);
}
static int named(size_t i, const char *name)
{
    return mmapper_ensure_mapped(m, at(i), chunk, name_opts(name));
}
static int c_name_long(void) { return named(0, long_name); }
static int c_name_bracket(void) { return named(0, "heap[1"); }
static int c_name_close(void) { return named(1, "heap]"); }
static int c_name_dollar(void) { return named(0, "a$b"); }
static int c_name_backslash(void) { return named(0, "a\\b"); }
static int c_name_backtick(void) { return named(0, "a`b"); }
static int c_name_newline(void) { return named(3, "a\nb"); }
static int c_name_del(void) { return named(0, "a\x7f"); }
static int c_name_utf8(void) { return named(0, "caf\xc3\xa9"); }
static int c_quar_bad_name(void) { return mmapper_quarantine(m, at(0), chunk, name_opts("x$")); }

static int c_prot_unmapped(void) { return mmapper_protect(m, at(0), chunk); }
static int c_prot_quarantined(void) { return mmapper_protect(m, at(1), chunk); }
static int c_prot_mixed(void) { return mmapper_protect(m, at(2), 5 * chunk); }   /* M P M M U */
static int c_prot_tail_q(void) { return mmapper_protect(m, at(7), 3 * chunk); }  /* P Q M */
static int c_deco_unmapped(void) { return mmapper_decommit(m, at(0), chunk); }
static int c_deco_mixed(void) { return mmapper_decommit(m, at(1), 6 * chunk); }  /* Q M P M M U */
static int c_deco_tail_u(void) { return mmapper_decommit(m, at(7), 4 * chunk); } /* P Q M U */
static int c_map_foreign(void) { return mmapper_ensure_mapped(m, at(FOREIGN), chunk, NULL); }
static int c_quar_foreign(void) { return mmapper_quarantine(m, at(13), 2 * chunk, NULL); }

/* A call that fails part-way: over U M U U+foreign, chunk 10 gets mapped,
 * then the mmap of 12..14 meets the foreign mapping. */
static void prepare_partial(void)
{
    CHECK_RC(mmapper_ensure_mapped(m, at(10), 5 * chunk, NULL), -EEXIST,
             "ensure_mapped into a foreign mapping");
    CHECK(mmapper_state(m, at(10)) == MMAPPER_MAPPED &&
              mmapper_state(m, at(12)) == MMAPPER_UNMAPPED,
          "the failed call did not stop at the foreign mapping");
    *(uint64_t *)at(10) = 0xbad0000 + 10;
}
static int c_partial_protect(void) { return mmapper_protect(m, at(10), 4 * chunk); }
static int c_partial_decommit(void) { return mmapper_decommit(m, at(10), 3 * chunk); }
static int c_partial_map_foreign(void) { return mmapper_ensure_mapped(m, at(12), 3 * chunk, NULL); }

/* Queries with documented answers for bad input (0 when right). */
static int c_query_null(void)
{
    struct mmapper_stats st;
    memset(&st, 0xff, sizeof(st));
    mmapper_get_stats(NULL, &st);
    mmapper_get_stats(m, NULL);
    mmapper_destroy(NULL);
    bool zero = true;
    for (size_t i = 0; i < sizeof(st); i++)
        zero &= ((unsigned char *)&st)[i] == 0;
    return !mmapper_is_mapped(NULL, at(2)) && mmapper_state(NULL, at(2)) == MMAPPER_UNMAPPED &&
                   mmapper_granularity(NULL) == 0 && zero
               ? 0
               : -1000;
}
static int c_query_beyond(void)
{
    return !mmapper_is_mapped(m, (void *)limit) && !mmapper_is_mapped(m, (void *)kernel_space) &&
                   !mmapper_is_mapped(m, (void *)UINTPTR_MAX) &&
                   mmapper_state(m, (void *)kernel_space) == MMAPPER_UNMAPPED
               ? 0
               : -1000;
}
static int c_strerror(void)
{
    static const int codes[] = { 0, -EINVAL, -ENOMEM, -EEXIST, -EPERM, -EFAULT, -12345, 7 };
    for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
        const char *s = mmapper_strerror(codes[i]);
        if (!s || !*s)
            return -1000;
    }
    return 0;
}

struct bad_case {
    const char *what;
    int (*run)(void);
    int expect;
    bool may_call;               /* the kernel must be asked (-EEXIST, ...) */
    void (*prepare)(void);
};

static const struct bad_case cases[] = {
    { "create: NULL out", c_create_null_out, -EINVAL, false, NULL },
    { "create: log_chunk_bytes below the page size", c_create_log_small, -EINVAL, false, NULL },
    { "create: log_chunk_bytes 31", c_create_log_big, -EINVAL, false, NULL },
    { "create: log_chunk_bytes 200", c_create_log_huge, -EINVAL, false, NULL },
    { "create: OS layer without mmap", c_create_os_no_mmap, -EINVAL, false, NULL },
    { "create: OS layer without set_name", c_create_os_no_name, -EINVAL, false, NULL },
    { "ensure_mapped: NULL mapper", c_map_null, -EINVAL, false, NULL },
    { "ensure_mapped: bytes == 0", c_map_zero, -EINVAL, false, NULL },
    { "ensure_mapped: start + bytes overflows", c_map_overflow, -EINVAL, false, NULL },
    { "ensure_mapped: at MMAPPER_ADDRESS_LIMIT", c_map_at_limit, -EINVAL, false, NULL },
    { "ensure_mapped: reaching past the limit", c_map_past_limit, -EINVAL, false, NULL },
    { "ensure_mapped: kernel space", c_map_kernel, -EINVAL, false, NULL },
    { "ensure_mapped: the whole address space", c_map_whole_space, -EINVAL, false, NULL },
    { "quarantine: NULL mapper", c_quar_null, -EINVAL, false, NULL },
    { "quarantine: bytes == 0", c_quar_zero, -EINVAL, false, NULL },
    { "quarantine: wraps around", c_quar_overflow, -EINVAL, false, NULL },
    { "mark_as_mapped: NULL mapper", c_mark_null, -EINVAL, false, NULL },
    { "mark_as_mapped: bytes == 0", c_mark_zero, -EINVAL, false, NULL },
    { "mark_as_mapped: at the limit", c_mark_past_limit, -EINVAL, false, NULL },
    { "protect: NULL mapper", c_prot_null, -EINVAL, false, NULL },
    { "protect: bytes == 0", c_prot_zero, -EINVAL, false, NULL },
    { "protect: kernel space", c_prot_kernel, -EINVAL, false, NULL },
    { "decommit: NULL mapper", c_deco_null, -EINVAL, false, NULL },
    { "decommit: SIZE_MAX bytes", c_deco_overflow, -EINVAL, false, NULL },
    { "unmap: NULL mapper", c_unmap_null, -EINVAL, false, NULL },
    { "unmap: bytes == 0", c_unmap_zero, -EINVAL, false, NULL },
    { "unmap: at the limit", c_unmap_at_limit, -EINVAL, false, NULL },
    { "unmap: kernel space", c_unmap_kernel, -EINVAL, false, NULL },
#if UINTPTR_MAX > 0xffffffffu
    { "unmap: the last bytes of the address space", c_unmap_top, -EINVAL, false, NULL },
#else   /* below the limit, in the topmost chunk, which is never ours: nothing to do */
    { "unmap: the last bytes of the address space", c_unmap_top, 0, false, NULL },
#endif
    { "unmap: straddling the limit", c_unmap_straddle_limit, -EINVAL, false, NULL },
    { "quarantine_anywhere: NULL mapper", c_any_null, -EINVAL, false, NULL },
    { "quarantine_anywhere: NULL out", c_any_null_out, -EINVAL, false, NULL },
    { "quarantine_anywhere: bytes == 0", c_any_zero, -EINVAL, false, NULL },
    { "quarantine_anywhere: chunk + 1 bytes", c_any_plus_one, -EINVAL, false, NULL },
    { "quarantine_anywhere: half a chunk", c_any_half, -EINVAL, false, NULL },
    { "quarantine_anywhere: one page", c_any_page, -EINVAL, false, NULL },
    { "quarantine_anywhere: bad name", c_any_bad_name, -EINVAL, false, NULL },
    { "quarantine_anywhere: more than the address space", c_any_huge, -ENOMEM, true, NULL },
    { "options: prot 7", c_opt_prot, -EINVAL, false, NULL },
    { "options: huge_page 9", c_opt_huge, -EINVAL, false, NULL },
    { "name: MMAPPER_NAME_MAX bytes", c_name_long, -EINVAL, false, NULL },
    { "name: '['", c_name_bracket, -EINVAL, false, NULL },
    { "name: ']' (on a Quarantined chunk)", c_name_close, -EINVAL, false, NULL },
    { "name: '$'", c_name_dollar, -EINVAL, false, NULL },
    { "name: backslash", c_name_backslash, -EINVAL, false, NULL },
    { "name: backtick", c_name_backtick, -EINVAL, false, NULL },
    { "name: newline (on a Protected chunk)", c_name_newline, -EINVAL, false, NULL },
    { "name: DEL", c_name_del, -EINVAL, false, NULL },
    { "name: UTF-8", c_name_utf8, -EINVAL, false, NULL },
    { "quarantine: bad name", c_quar_bad_name, -EINVAL, false, NULL },
    { "protect: Unmapped chunk", c_prot_unmapped, -EINVAL, false, NULL },
    { "protect: Quarantined chunk", c_prot_quarantined, -EINVAL, false, NULL },
    { "protect: M P M M U", c_prot_mixed, -EINVAL, false, NULL },
    { "protect: P Q M", c_prot_tail_q, -EINVAL, false, NULL },
    { "decommit: Unmapped chunk", c_deco_unmapped, -EINVAL, false, NULL },
    { "decommit: Q M P M M U", c_deco_mixed, -EINVAL, false, NULL },
    { "decommit: P Q M U", c_deco_tail_u, -EINVAL, false, NULL },
    { "ensure_mapped: over a foreign mapping", c_map_foreign, -EEXIST, true, NULL },
    { "quarantine: up to a foreign mapping", c_quar_foreign, -EEXIST, true, NULL },
    { "after a partial failure: protect over it", c_partial_protect, -EINVAL, false,
      prepare_partial },
    { "after a partial failure: decommit over it", c_partial_decommit, -EINVAL, false, NULL },
    { "after a partial failure: map into the foreign one", c_partial_map_foreign, -EEXIST, true,
      NULL },
    { "queries: NULL mapper, NULL stats, destroy(NULL)", c_query_null, 0, false, NULL },
    { "queries: beyond the limit and in kernel space", c_query_beyond, 0, false, NULL },
    { "strerror: known, unknown and positive codes", c_strerror, 0, false, NULL },
};

/* ---- snapshots ---------------------------------------------------------- */

struct snapshot {
    mmapper_state_t state[NCHUNKS];
    struct procmaps_region maps[4 * NCHUNKS];
    size_t nmaps;
    struct mmapper_stats stats;
};

static void snap(struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < NCHUNKS; i++)
        s->state[i] = mmapper_state(m, at(i));
    struct procmaps pm;
    CHECK(procmaps_read(&pm) == 0, "cannot read /proc/self/maps");
    for (size_t i = 0; i < pm.count; i++) {
        const struct procmaps_region *r = &pm.regions[i];
        if (r->end > (uintptr_t)region && r->start < (uintptr_t)at(NCHUNKS)) {
            CHECK(s->nmaps < sizeof(s->maps) / sizeof(*s->maps), "too many mappings");
            s->maps[s->nmaps++] = *r;
        }
    }
    procmaps_free(&pm);
    mmapper_get_stats(m, &s->stats);
}

/* Every case runs even after one fails, so one report lists them all. */
static unsigned failures;

static bool expect(bool ok, const struct bad_case *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool expect(bool ok, const struct bad_case *c, const char *fmt, ...)
{
    if (ok)
        return true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: FAIL (seed %" PRIu64 "): case '%s': %s\n", stress_prog, stress_seed,
            c->what, msg);
    failures++;
    return false;
}

static void compare(const struct bad_case *c, const struct snapshot *a, const struct snapshot *b)
{
    for (size_t i = 0; i < NCHUNKS; i++)
        expect(a->state[i] == b->state[i], c, "changed chunk %zu from %d to %d", i,
               a->state[i], b->state[i]);
    if (!expect(a->nmaps == b->nmaps, c, "changed the region's mappings (%zu -> %zu regions)",
                a->nmaps, b->nmaps))
        return;
    for (size_t i = 0; i < a->nmaps; i++)
        expect(a->maps[i].start == b->maps[i].start && a->maps[i].end == b->maps[i].end &&
                   !strcmp(a->maps[i].perms, b->maps[i].perms),
               c, "changed mapping %#" PRIxPTR "-%#" PRIxPTR " %s", a->maps[i].start,
               a->maps[i].end, a->maps[i].perms);
    expect(a->stats.chunks_mapped == b->stats.chunks_mapped &&
               a->stats.chunks_quarantined == b->stats.chunks_quarantined &&
               a->stats.chunks_protected == b->stats.chunks_protected &&
               a->stats.slabs == b->stats.slabs,
           c, "changed the gauges");
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = 1, .rounds = 1 };
    stress_parse(argc, argv, "invalid calls: documented errno, nothing changed", &o);
    memset(long_name, 'n', MMAPPER_NAME_MAX);

    test_os_init(&tos);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &tos.os };
    CHECK_RC(mmapper_create(&cfg, &m), 0, "mmapper_create");
    chunk = mmapper_granularity(m);
    region = stress_region(m, NCHUNKS * chunk, STRESS_SLAB_CHUNKS * chunk);
    for (size_t i = 0; i < NCHUNKS; i++) {
        char p = pattern[i];
        if (p == 'U')
            CHECK_RC(mmapper_unmap(m, at(i), chunk), 0, "setup unmap");
        if (p == 'M' || p == 'P') {
            CHECK_RC(mmapper_ensure_mapped(m, at(i), chunk, NULL), 0, "setup map");
            *(uint64_t *)at(i) = 0xbad0000 + i;
        }
        if (p == 'P')
            CHECK_RC(mmapper_protect(m, at(i), chunk), 0, "setup protect");
    }
    void *foreign = mmap(at(FOREIGN), chunk, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(foreign == at(FOREIGN), "foreign mapping at chunk %d", FOREIGN);
    *(uint64_t *)foreign = 0xf0e1;

    size_t n = sizeof(cases) / sizeof(*cases);
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &cases[i];
        if (c->prepare)
            c->prepare();
        struct snapshot before, after;
        snap(&before);
        uint64_t calls = test_os_total_calls(&tos);
        int rc = c->run();
        snap(&after);
        expect(rc == c->expect, c, "returned %d (%s), documented %d (%s)", rc,
               mmapper_strerror(rc), c->expect, mmapper_strerror(c->expect));
        expect(c->may_call || test_os_total_calls(&tos) == calls, c,
               "made %" PRIu64 " system calls", test_os_total_calls(&tos) - calls);
        compare(c, &before, &after);
        for (size_t k = 0; k < NCHUNKS; k++)
            expect(after.state[k] != MMAPPER_MAPPED || *(uint64_t *)at(k) == 0xbad0000 + k, c,
                   "lost chunk %zu's data", k);
        expect(*(uint64_t *)foreign == 0xf0e1, c, "touched the foreign mapping");
        stress_check_settled(m, region, NCHUNKS * chunk, c->what);
    }
    CHECK(failures == 0, "%u of %zu bad-input cases failed (listed above)", failures, n);
    stress_check_maps(m, region, FOREIGN * chunk, true, "at the end");

    munmap(foreign, chunk);
    CHECK_RC(mmapper_unmap(m, region, NCHUNKS * chunk), 0, "final unmap");
    CHECK(procmaps_range_free(region, NCHUNKS * chunk), "region not empty at the end");
    mmapper_destroy(m);
    stress_summary("bad-input cases: %zu, each with its documented errno and nothing changed",
                   n);
    return 0;
}
