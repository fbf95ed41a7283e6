/*
 * The libFuzzer harness (issue 13): input bytes decode into a sequence of
 * API calls on up to three mappers, each compared with a sequential model.
 *
 * Memory.  A 40 MiB region at a fixed address far below where the kernel
 * puts mmap(NULL) mappings (nothing but this harness maps there) is shared
 * by every mapper, and each mapper may own a few reservations that
 * mmapper_quarantine_anywhere() placed ("anywhere areas").  The model keeps,
 * per page: who holds it in the kernel (nobody, mapper i, or the harness
 * itself: "foreign" memory), its protection and VMA name, each mapper's
 * recorded state of the chunk holding it, and the data tag the harness wrote
 * at the chunk's start.  Mappers have chunks of 4 to 64 KiB, so one
 * mapper's chunk may hold pages of another mapper or of the harness: a fresh
 * mapping over it must fail with -EEXIST.  The region straddles a 1 GiB
 * boundary, and with 4 KiB chunks it spans 40 slabs: ranges cross slab and
 * window boundaries.
 *
 * Calls.  ensure_mapped, quarantine, mark_as_mapped (after the harness maps
 * the chunks itself, as a caller would), protect, decommit, unmap over
 * ranges with unaligned ends, with every option (RWX, huge page advice,
 * names, invalid values); quarantine_anywhere; lookups (is_mapped,
 * is_mapped_many, state) of region, area and junk addresses; bad arguments
 * (NULL, zero, overflowing, past MMAPPER_ADDRESS_LIMIT, bad configs, bad
 * options); the harness's own mappings in the region; destroying and
 * re-creating a mapper (its memory becomes foreign); reclaim_wait.
 *
 * System calls.  Each mapper (unless configured with the real kernel) runs
 * on tests/support/test_os behind a logging layer.  The input may arm a
 * fault for the next call (which system call, which one, errno, sticky or
 * not, and whether a failing MAP_FIXED leaves a hole like a pre-6.12
 * kernel), and chooses per mapper a kernel that ignores
 * MAP_FIXED_NOREPLACE, lacks VMA names or transparent huge pages.
 *
 * Checks after every call.  Without a fault that fired, the model is exact:
 * the return code, every state of the range (state and is_mapped), the
 * exact sequence of system calls (kind, address, length, protection,
 * flags), the data tags, and the kernel's view (/proc/self/maps: presence,
 * protection, name of every page of the range).  With a fault that fired,
 * the header's promise: chunks that earlier system calls moved keep their
 * new state, the others keep their old one (a failed decommit may leave
 * Unmapped chunks, never Mapped over a hole), and the kernel agrees with
 * the record; the model then takes the library's record.  Always: the
 * other mappers' states of the range, the gauges, live slabs and system-call
 * counters of mmapper_get_stats.  At the end of an input everything is
 * unmapped and every mapper destroyed, so inputs are independent.
 *
 * A divergence prints what happened and traps: libFuzzer saves the input.
 * FUZZ_TRACE=1 in the environment prints every call.
 */
#include "config.h"

#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mmapper.h"
#include "procmaps.h"
#include "test_os.h"

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

/* ThreadSanitizer's mmap interceptor turns a hint outside its application
 * ranges into NULL, which with MAP_FIXED_NOREPLACE means address 0: under
 * TSan the region lies in its low application range, and calls at the top
 * of the address space are left out. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define NINST 3
#define REGION_BYTES ((size_t)40 << 20)
/* The region starts this far below a 1 GiB boundary. */
#define REGION_LEAD ((size_t)4 << 20)
#define MAX_REGION_PAGES (REGION_BYTES / 4096)
#define NANY 4                   /* anywhere areas */
#define ANY_MAX_CHUNKS 16
#define ANY_MAX_PAGES (ANY_MAX_CHUNKS * 65536 / 4096)
#define NAREAS (1 + NANY)
#define MAX_OPS 256
#define LOG_MAX 4096
#define SLAB_LOG 8               /* chunks per slab: 256 (src/slab_table.h) */
#define WINDOW_SLABS 32          /* src/walk.h */

enum { OWN_FREE = 0, OWN_FOREIGN = NINST + 1 };
enum { PM_ABSENT, PM_NONE, PM_RW, PM_RWX };
#define NAME_NONE 0
#define NAME_UNKNOWN 0xff

enum op { OP_MAP, OP_QUAR, OP_MARK, OP_PROT, OP_DECOMMIT, OP_UNMAP, NOPS_RANGE };
enum act { A_NONE, A_ILLEGAL, A_RECORD, A_FRESH, A_RESERVE, A_COMMIT, A_PROTECT, A_DECOMMIT,
           A_UNMAP };

#define U MMAPPER_UNMAPPED
#define Q MMAPPER_QUARANTINED
#define M MMAPPER_MAPPED
#define P MMAPPER_PROTECTED

/* The documented transitions (include/mmapper.h), written out afresh. */
static const uint8_t act_table[NOPS_RANGE][4] = {
    [OP_MAP] = { A_FRESH, A_COMMIT, A_NONE, A_COMMIT },
    [OP_QUAR] = { A_RESERVE, A_NONE, A_NONE, A_NONE },
    [OP_MARK] = { A_RECORD, A_RECORD, A_NONE, A_RECORD },
    [OP_PROT] = { A_ILLEGAL, A_ILLEGAL, A_PROTECT, A_NONE },
    [OP_DECOMMIT] = { A_ILLEGAL, A_NONE, A_DECOMMIT, A_DECOMMIT },
    [OP_UNMAP] = { A_NONE, A_UNMAP, A_UNMAP, A_UNMAP },
};
static const uint8_t op_target[NOPS_RANGE] = { M, Q, M, P, Q, U };
static const char *const op_names[NOPS_RANGE] = { "ensure_mapped", "quarantine",
                                                  "mark_as_mapped", "protect", "decommit",
                                                  "unmap" };

/* VMA names: index 0 is none. */
static const char *const good_names[] = {
    NULL, "fuzz-a", "fuzz b", "x",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678",
};
#define NGOOD (sizeof(good_names) / sizeof(good_names[0]))
static const char *const bad_names[] = {
    "", "bad$", "a\\b", "[x]", "tab\there", "\x7f",
    "01234567890123456789012345678901234567890123456789012345678901234567890123456789",
};
#define NBAD (sizeof(bad_names) / sizeof(bad_names[0]))

struct page {
    uint8_t owner;        /* OWN_FREE, instance + 1, OWN_FOREIGN */
    uint8_t perm;         /* PM_* */
    uint8_t name;         /* index into good_names, NAME_NONE or NAME_UNKNOWN */
    uint8_t st[NINST];    /* each mapper's record of the chunk holding the page */
    uint64_t tag;         /* at a chunk's first page: its first word (0: zero) */
};

struct area {
    bool used;
    int owner;            /* -1: the shared region; else the mapper; -2: its mapper is gone */
    unsigned owner_shift; /* anywhere areas: the owner's chunk shift */
    uintptr_t base;
    size_t npages;
    struct page *pg;
};

struct call {
    int kind;             /* enum test_os_call */
    uintptr_t addr;
    size_t len;
    int arg;              /* prot (mmap, mprotect) or advice (madvise) */
    int flags;            /* mmap */
    int rc;
    uintptr_t out;
    bool any_addr;        /* expected: the address is the kernel's choice */
};

struct calls {
    unsigned n;
    struct call c[LOG_MAX];
};

/* Between a mapper and its test_os: logs every call and its result, and can
 * emulate a pre-6.12 kernel whose failing MAP_FIXED leaves a hole. */
struct logos {
    struct mmapper_os os;
    struct test_os *tos;
    bool hole_mode;
    bool partial_mode;           /* a failing mprotect changed its first half */
    size_t chunk;
    uint64_t holes;
    struct calls *logp;          /* the calls of the current operation */
    uint64_t count[TOS_NCALLS];
};

/* Live chunks per slab key, kept as states change: the live slab count. */
#define SLAB_MAP 1024
struct slab_counts {
    uintptr_t key[SLAB_MAP];      /* key + 1; 0: empty */
    uint32_t live[SLAB_MAP];
    unsigned used, slabs;
};

struct inst {
    bool live;
    mmapper_t *m;
    unsigned shift;
    size_t chunk, ppc;
    bool real_os, disable_names, block_signals, ignore_noreplace, names_unsup, huge_unsup;
    bool names_dead, huge_dead;         /* the mapper stopped trying (model) */
    bool fault_armed;
    int fault_errno;
    int64_t cnt[4];                     /* model gauges */
    uint64_t calls[TOS_NCALLS];         /* real-kernel mappers: expected counters */
    struct slab_counts sc;
    struct test_os tos;
    struct logos lo;
};

static size_t page_size;
static uintptr_t region;
static bool kernel_names, kernel_thp;
static bool tracing;
static struct page region_pages[MAX_REGION_PAGES];
static struct page any_pages[NANY][ANY_MAX_PAGES];
static struct area areas[NAREAS];
static struct inst insts[NINST];
static struct calls expected;
static struct calls logs[NINST];
static struct page snap[MAX_REGION_PAGES];
static unsigned op_no;
static char op_desc[256];

/* ---- failing ------------------------------------------------------------ */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nmmapper fuzz: DIVERGENCE at call %u (%s): ", op_no, op_desc);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    __builtin_trap();
}

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            fail(__VA_ARGS__);                                                                  \
    } while (0)

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace(const char *fmt, ...)
{
    if (!tracing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* ---- input -------------------------------------------------------------- */

struct input {
    const uint8_t *p;
    size_t n;
};

static unsigned u8(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static unsigned u16(struct input *in)
{
    unsigned lo = u8(in);
    return lo | u8(in) << 8;
}

/* ---- the logging OS layer ---------------------------------------------- */

#define LO(ctx) ((struct logos *)(ctx))

static struct call *log_call(struct logos *l, int kind, uintptr_t addr, size_t len, int arg,
                             int flags)
{
    static struct call spill;
    l->count[kind]++;
    struct call *c = l->logp->n < LOG_MAX ? &l->logp->c[l->logp->n] : &spill;
    l->logp->n++;
    *c = (struct call){ .kind = kind, .addr = addr, .len = len, .arg = arg, .flags = flags };
    return c;
}

static int lo_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    struct logos *l = LO(ctx);
    struct call *c = log_call(l, TOS_MMAP, (uintptr_t)addr, len, prot, flags);
    uint64_t f0 = atomic_load(&l->tos->faults);
    int rc = l->tos->os.mmap(l->tos->os.ctx, addr, len, prot, flags, out);
    if (rc && atomic_load(&l->tos->faults) != f0 && l->hole_mode && (flags & MAP_FIXED) &&
        !(flags & MAP_FIXED_NOREPLACE)) {
        /* Before Linux 6.12 a failing MAP_FIXED could unmap the old
         * mapping first. */
        munmap(addr, len);
        l->holes++;
    }
    c->rc = rc;
    c->out = rc ? 0 : (uintptr_t)*out;
    return rc;
}

static int lo_munmap(void *ctx, void *addr, size_t len)
{
    struct logos *l = LO(ctx);
    struct call *c = log_call(l, TOS_MUNMAP, (uintptr_t)addr, len, 0, 0);
    return c->rc = l->tos->os.munmap(l->tos->os.ctx, addr, len);
}

static int lo_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    struct logos *l = LO(ctx);
    struct call *c = log_call(l, TOS_MPROTECT, (uintptr_t)addr, len, prot, 0);
    uint64_t f0 = atomic_load(&l->tos->faults);
    c->rc = l->tos->os.mprotect(l->tos->os.ctx, addr, len, prot);
    size_t half = len / l->chunk / 2 * l->chunk;
    if (c->rc && atomic_load(&l->tos->faults) != f0 && l->partial_mode && half) {
        /* mprotect works VMA by VMA: one that fails (ENOMEM splitting a
         * VMA, say) may have changed the first ones.  Transient faults
         * only: a retry of a chunk already changed asks for no change. */
        mprotect(addr, half, prot);
    }
    return c->rc;
}

static int lo_madvise(void *ctx, void *addr, size_t len, int advice)
{
    struct logos *l = LO(ctx);
    struct call *c = log_call(l, TOS_MADVISE, (uintptr_t)addr, len, advice, 0);
    return c->rc = l->tos->os.madvise(l->tos->os.ctx, addr, len, advice);
}

static int lo_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct logos *l = LO(ctx);
    struct call *c = log_call(l, TOS_SET_NAME, (uintptr_t)addr, len, 0, 0);
    return c->rc = l->tos->os.set_name(l->tos->os.ctx, addr, len, name);
}

static const char *kind_name(int k)
{
    static const char *names[] = { "mmap", "munmap", "mprotect", "madvise", "set_name" };
    return k >= 0 && k < TOS_NCALLS ? names[k] : "?";
}

/* ---- model helpers ------------------------------------------------------ */

static struct inst *X(int xi)
{
    return &insts[xi];
}

static size_t ppc(const struct inst *x)   /* pages per chunk */
{
    return x->ppc;
}

static void slab_adjust(struct inst *x, uintptr_t key, int d)
{
    struct slab_counts *sc = &x->sc;
    size_t h = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 54) & (SLAB_MAP - 1);
    while (sc->key[h] && sc->key[h] != key + 1)
        h = (h + 1) & (SLAB_MAP - 1);
    if (!sc->key[h]) {
        CHECK(sc->used < SLAB_MAP - 1, "harness: more than %d slab keys", SLAB_MAP - 1);
        sc->key[h] = key + 1;
        sc->used++;
    }
    sc->slabs -= sc->live[h] > 0;
    sc->live[h] += (uint32_t)d;
    sc->slabs += sc->live[h] > 0;
}

/* Whether x's chunks tile the area (an anywhere area of larger chunks). */
static bool usable(const struct area *a, const struct inst *x)
{
    return a->owner == -1 || x->shift <= a->owner_shift;
}

static size_t area_chunks(const struct area *a, const struct inst *x)
{
    return a->npages * page_size / x->chunk;
}

static uintptr_t chunk_at(const struct area *a, const struct inst *x, size_t c)
{
    return a->base + c * x->chunk;
}

static unsigned st_of(const struct area *a, int xi, size_t c)
{
    return a->pg[c * ppc(X(xi))].st[xi];
}

static void set_st(struct area *a, int xi, size_t c, unsigned st)
{
    struct inst *x = X(xi);
    size_t n = ppc(x), p0 = c * n;
    unsigned old = a->pg[p0].st[xi];
    x->cnt[old]--;
    x->cnt[st]++;
    if ((old == U) != (st == U))
        slab_adjust(x, ((a->base >> x->shift) + c) >> SLAB_LOG, st == U ? -1 : 1);
    for (size_t p = p0; p < p0 + n; p++)
        a->pg[p].st[xi] = (uint8_t)st;
}

/* Pages of chunks [c, c + n) of mapper xi. */
static void set_pages(struct area *a, int xi, size_t c, size_t n, int owner, int perm, int name)
{
    size_t k = ppc(X(xi));
    for (size_t p = c * k; p < (c + n) * k; p++) {
        if (owner >= 0)
            a->pg[p].owner = (uint8_t)owner;
        if (perm >= 0)
            a->pg[p].perm = (uint8_t)perm;
        if (name >= 0)
            a->pg[p].name = (uint8_t)name;
    }
}

static bool occupied(const struct area *a, size_t p0, size_t np)
{
    for (size_t p = p0; p < p0 + np; p++)
        if (a->pg[p].owner != OWN_FREE)
            return true;
    return false;
}

static struct area *area_of(uintptr_t addr, size_t *page)
{
    for (int i = 0; i < NAREAS; i++) {
        struct area *a = &areas[i];
        if (a->used && addr >= a->base && addr - a->base < a->npages * page_size) {
            *page = (addr - a->base) / page_size;
            return a;
        }
    }
    return NULL;
}

/* What mapper xi's record says of addr, by the model. */
static unsigned model_state(int xi, uintptr_t addr)
{
    size_t p;
    struct area *a = area_of(addr, &p);
    return a ? a->pg[p].st[xi] : U;
}

static int prot_bits(int perm)
{
    return perm == PM_RWX ? PROT_READ | PROT_WRITE | PROT_EXEC
                          : perm == PM_RW ? PROT_READ | PROT_WRITE : PROT_NONE;
}

static void expect(int kind, uintptr_t addr, size_t len, int arg, int flags, bool any)
{
    if (expected.n < LOG_MAX)
        expected.c[expected.n] = (struct call){ .kind = kind, .addr = addr, .len = len,
                                                .arg = arg, .flags = flags, .any_addr = any };
    expected.n++;
}

/* ---- the exact model of one transition --------------------------------- */

struct opctx {
    int xi;
    struct area *a;
    int op;
    const struct mmapper_map_opts *o;
    int name_id;
    int perm;              /* PM_RW or PM_RWX: what a mapping gets */
};

static bool names_work(const struct inst *x)
{
    return kernel_names && (x->real_os || !x->names_unsup);
}

static bool thp_works(const struct inst *x)
{
    return kernel_thp && (x->real_os || !x->huge_unsup);
}

static void model_attrs(struct opctx *k, size_t c, size_t n)
{
    struct inst *x = X(k->xi);
    const struct mmapper_map_opts *o = k->o;
    uintptr_t addr = chunk_at(k->a, x, c);
    size_t len = n * x->chunk;
    if (!o)
        return;
    if (o->huge_page != MMAPPER_HUGE_PAGE_DEFAULT && !x->huge_dead) {
        expect(TOS_MADVISE, addr, len,
               o->huge_page == MMAPPER_HUGE_PAGE_TRANSPARENT ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, 0,
               false);
        if (!thp_works(x))
            x->huge_dead = true;
    }
    if (o->name && !x->disable_names && !x->names_dead) {
        expect(TOS_SET_NAME, addr, len, 0, 0, false);
        if (names_work(x))
            set_pages(k->a, k->xi, c, n, -1, -1, k->name_id);
        else
            x->names_dead = true;
    }
}

/* One run: chunks [c, c + n) taking action act.  0 or the error. */
static int model_run(struct opctx *k, size_t c, size_t n, int act)
{
    int xi = k->xi;
    struct inst *x = X(xi);
    struct area *a = k->a;
    uintptr_t addr = chunk_at(a, x, c);
    size_t len = n * x->chunk, kp = ppc(x);
    switch (act) {
    case A_FRESH:
    case A_RESERVE: {
        bool fresh = act == A_FRESH;
        expect(TOS_MMAP, addr, len, fresh ? prot_bits(k->perm) : PROT_NONE,
               MAP_FIXED_NOREPLACE | (fresh ? 0 : MAP_NORESERVE), false);
        if (occupied(a, c * kp, n * kp)) {
            if (x->ignore_noreplace && !x->real_os)   /* placed elsewhere, given back */
                expect(TOS_MUNMAP, 0, len, 0, 0, true);
            return -EEXIST;
        }
        set_pages(a, xi, c, n, xi + 1, fresh ? k->perm : PM_NONE, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            set_st(a, xi, i, op_target[k->op]);
        }
        model_attrs(k, c, n);
        return 0;
    }
    case A_COMMIT:
        model_attrs(k, c, n);
        expect(TOS_MPROTECT, addr, len, prot_bits(k->perm), 0, false);
        set_pages(a, xi, c, n, -1, k->perm, -1);
        for (size_t i = c; i < c + n; i++) {
            if (st_of(a, xi, i) != P)
                a->pg[i * kp].tag = 0;
            set_st(a, xi, i, M);
        }
        return 0;
    case A_PROTECT:
        expect(TOS_MPROTECT, addr, len, PROT_NONE, 0, false);
        set_pages(a, xi, c, n, -1, PM_NONE, -1);
        for (size_t i = c; i < c + n; i++)
            set_st(a, xi, i, P);
        return 0;
    case A_DECOMMIT:
        expect(TOS_MMAP, addr, len, PROT_NONE, MAP_FIXED | MAP_NORESERVE, false);
        set_pages(a, xi, c, n, -1, PM_NONE, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            set_st(a, xi, i, Q);
        }
        return 0;
    case A_UNMAP:
        expect(TOS_MUNMAP, addr, len, 0, 0, false);
        set_pages(a, xi, c, n, OWN_FREE, PM_ABSENT, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            set_st(a, xi, i, U);
        }
        return 0;
    case A_RECORD:
        /* The harness made the memory read-write itself beforehand. */
        for (size_t i = c; i < c + n; i++)
            set_st(a, xi, i, M);
        return 0;
    default:
        fail("model: action %d", act);
    }
}

/*
 * Chunks [cf, ce) of area a, window by window as src/walk.c cuts them: the
 * first window runs 32 slabs from the range's first slab, each next one 32
 * slabs on.  An illegal chunk fails its window before any system call;
 * earlier windows stay done.
 */
static int model_op(struct opctx *k, size_t cf, size_t ce)
{
    struct inst *x = X(k->xi);
    uintptr_t base_chunk = k->a->base >> x->shift;
    for (size_t c = cf; c < ce;) {
        uintptr_t abs = base_chunk + c;
        uintptr_t wend = (((abs >> SLAB_LOG) + WINDOW_SLABS) << SLAB_LOG) - base_chunk;
        size_t we = wend < ce ? wend : ce;
        for (size_t i = c; i < we; i++)
            if (act_table[k->op][st_of(k->a, k->xi, i)] == A_ILLEGAL)
                return -EINVAL;
        for (size_t i = c; i < we;) {
            int act = act_table[k->op][st_of(k->a, k->xi, i)];
            if (act == A_NONE) {
                i++;
                continue;
            }
            size_t r = i;
            while (r < we && act_table[k->op][st_of(k->a, k->xi, r)] == act)
                r++;
            int err = model_run(k, i, r - i, act);
            if (err)
                return err;
            i = r;
        }
        c = we;
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------- */

static void compare_calls(int xi)
{
    struct inst *x = X(xi);
    if (x->real_os) {
        uint64_t want[TOS_NCALLS] = { 0 };
        for (unsigned i = 0; i < expected.n && i < LOG_MAX; i++)
            want[expected.c[i].kind]++;
        for (int kd = 0; kd < TOS_NCALLS; kd++)
            x->calls[kd] += want[kd];
        return;   /* compared with the counters by check_stats */
    }
    const struct calls *got = x->lo.logp;
    for (unsigned i = 0; i < got->n && i < expected.n && i < LOG_MAX; i++) {
        const struct call *g = &got->c[i], *w = &expected.c[i];
        CHECK(g->kind == w->kind && (w->any_addr || g->addr == w->addr) && g->len == w->len &&
                  g->arg == w->arg && g->flags == w->flags,
              "mapper %d: system call %u is %s(%#" PRIxPTR ", %#zx, %#x, %#x), model says "
              "%s(%#" PRIxPTR ", %#zx, %#x, %#x)",
              xi, i, kind_name(g->kind), g->addr, g->len, g->arg, g->flags, kind_name(w->kind),
              w->addr, w->len, w->arg, w->flags);
    }
    CHECK(got->n == expected.n, "mapper %d made %u system calls, model says %u", xi, got->n,
          expected.n);
}

static unsigned model_slabs(int xi)
{
    return X(xi)->sc.slabs;
}

static void check_stats(int xi)
{
    struct inst *x = X(xi);
    struct mmapper_stats s;
    mmapper_get_stats(x->m, &s);
    CHECK((int64_t)s.chunks_mapped == x->cnt[M] && (int64_t)s.chunks_quarantined == x->cnt[Q] &&
              (int64_t)s.chunks_protected == x->cnt[P],
          "mapper %d: gauges M/Q/P %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", model %" PRId64
          "/%" PRId64 "/%" PRId64,
          xi, s.chunks_mapped, s.chunks_quarantined, s.chunks_protected, x->cnt[M], x->cnt[Q],
          x->cnt[P]);
    const uint64_t *want = x->real_os ? x->calls : x->lo.count;
    uint64_t got[TOS_NCALLS] = { s.mmap_calls, s.munmap_calls, s.mprotect_calls, s.madvise_calls,
                                 s.name_calls };
    for (int k = 0; k < TOS_NCALLS; k++)
        CHECK(got[k] == want[k], "mapper %d: stats say %" PRIu64 " %s calls, %s %" PRIu64, xi,
              got[k], kind_name(k), x->real_os ? "model says" : "the OS layer saw", want[k]);
    unsigned slabs = model_slabs(xi);
    if (s.slabs != slabs) {
        /* Empty slabs may stay while the reclaimer is behind (RETIRE_LIMIT). */
        CHECK(s.slabs > slabs, "mapper %d: %" PRIu64 " live slabs, model says %u", xi, s.slabs,
              slabs);
        CHECK(mmapper_reclaim_wait(x->m) == 0, "reclaim_wait");
        mmapper_get_stats(x->m, &s);
        CHECK(s.slabs == slabs, "mapper %d: %" PRIu64 " live slabs after reclaim_wait, model %u",
              xi, s.slabs, slabs);
    }
    CHECK(s.table_capacity >= s.slabs && s.metadata_bytes > 0,
          "mapper %d: table capacity %" PRIu64 " for %" PRIu64 " slabs, metadata %" PRIu64, xi,
          s.table_capacity, s.slabs, s.metadata_bytes);
}

/* Every live mapper's record of the pages [p0, p0 + np) of area a. */
static void check_states(struct area *a, size_t p0, size_t np)
{
    for (int xi = 0; xi < NINST; xi++) {
        struct inst *x = X(xi);
        if (!x->live || !usable(a, x))
            continue;
        size_t k = ppc(x);
        size_t c0 = p0 / k, c1 = (p0 + np + k - 1) / k;
        for (size_t c = c0; c < c1; c++) {
            uintptr_t addr = chunk_at(a, x, c);
            unsigned want = st_of(a, xi, c);
            unsigned got = mmapper_state(x->m, (void *)(addr + (c & 1 ? x->chunk - 1 : 0)));
            CHECK(got == want, "mapper %d: chunk %#" PRIxPTR " recorded %u, model says %u", xi,
                  addr, got, want);
            CHECK(mmapper_is_mapped(x->m, (void *)addr) == (want == M),
                  "mapper %d: is_mapped(%#" PRIxPTR ") disagrees with state %u", xi, addr, want);
        }
    }
}

static const char *perm_str(int perm)
{
    static const char *s[] = { "absent", "---p", "rw-p", "rwxp" };
    return s[perm];
}

/* The kernel's view of pages [p0, p0 + np) of area a against the model. */
static void check_kernel(struct area *a, size_t p0, size_t np)
{
    if (a != &areas[0]) {
        /* Free pages near the kernel's mmap(NULL) placements: asked before
         * anything here allocates (procmaps_read does), which could take
         * them.  mincore fails with ENOMEM on an unmapped page. */
        for (size_t p = p0; p < p0 + np; p++) {
            unsigned char v;
            void *addr = (void *)(a->base + p * page_size);
            if (a->pg[p].owner == OWN_FREE)
                CHECK(mincore(addr, page_size, &v) != 0 && errno == ENOMEM,
                      "page %p should be free, the kernel has it mapped", addr);
        }
    }
    struct procmaps pm;
    CHECK(procmaps_read(&pm) == 0, "cannot read /proc/self/maps");
    for (size_t p = p0; p < p0 + np;) {
        const struct page *g = &a->pg[p];
        uintptr_t addr = a->base + p * page_size;
        const struct procmaps_region *r = procmaps_find(&pm, addr);
        if (g->owner == OWN_FREE) {
            if (r && a == &areas[0])
                fail("page %#" PRIxPTR " should be free, kernel has %s %s", addr, r->perms,
                     r->name);
            p++;
            continue;
        }
        if (!r)
            fail("page %#" PRIxPTR " (owner %u) should be %s, kernel has nothing", addr, g->owner,
                 perm_str(g->perm));
        if (strcmp(r->perms, perm_str(g->perm)))
            fail("page %#" PRIxPTR " (owner %u) should be %s, kernel has %s", addr, g->owner,
                 perm_str(g->perm), r->perms);
        if (g->name != NAME_UNKNOWN) {
            char want[96] = "";
            if (g->name != NAME_NONE)
                snprintf(want, sizeof(want), "[anon:%s]", good_names[g->name]);
            if (strcmp(r->name, want))
                fail("page %#" PRIxPTR " (owner %u) should be named '%s', kernel has '%s'", addr,
                     g->owner, want, r->name);
        }
        /* The rest of this VMA, while the model expects the same. */
        size_t q = p + 1;
        while (q < p0 + np && a->base + q * page_size < r->end && a->pg[q].owner != OWN_FREE &&
               a->pg[q].perm == g->perm && a->pg[q].name == g->name)
            q++;
        p = q;
    }
    procmaps_free(&pm);
}

/* Data in the Mapped chunks of mapper xi among [c0, c1): the first word. */
static void check_data(struct area *a, int xi, size_t c0, size_t c1)
{
    struct inst *x = X(xi);
    size_t k = ppc(x);
    unsigned zero_checks = 0;
    for (size_t c = c0; c < c1; c++) {
        const struct page *g = &a->pg[c * k];
        if (g->st[xi] != M || (!g->tag && (zero_checks++ >= 4 && c != c1 - 1)))
            continue;
        uint64_t v = *(volatile uint64_t *)chunk_at(a, x, c);
        CHECK(v == g->tag, "mapper %d: chunk %#" PRIxPTR " holds %#" PRIx64 ", model says %#" PRIx64,
              xi, chunk_at(a, x, c), v, g->tag);
    }
}

/* ---- generic checks after a fault fired --------------------------------- */

/*
 * The header: "When a system call fails, the chunks that earlier system
 * calls of the same call moved keep their new state, the others keep their
 * old one, and the kernel's mappings agree with the recorded state either
 * way" (decommit: a chunk of the failed run may be Unmapped, never Mapped
 * over a hole).  Takes the library's record into the model, from the
 * snapshot of the range taken before the call.
 */
static void adopt(struct opctx *k, size_t cf, size_t ce, size_t p0, int rc)
{
    int xi = k->xi;
    struct inst *x = X(xi);
    struct area *a = k->a;
    size_t kp = ppc(x);
    bool seen_kept = false;
    /* Undo the exact model's slab counts (its gauges the caller restored). */
    for (size_t c = cf; c < ce; c++) {
        unsigned was = snap[(c - cf) * kp].st[xi], model = st_of(a, xi, c);
        if ((was == U) != (model == U))
            slab_adjust(x, ((a->base >> x->shift) + c) >> SLAB_LOG, was == U ? -1 : 1);
    }
    memcpy(&a->pg[p0], snap, (ce - cf) * kp * sizeof(struct page));
    /* snap also restored the gauges' basis: recount below from old states. */
    for (size_t c = cf; c < ce; c++) {
        unsigned old = st_of(a, xi, c);
        unsigned now = mmapper_state(x->m, (void *)chunk_at(a, x, c));
        int act = act_table[k->op][old];
        unsigned tgt = op_target[k->op];
        if (act == A_NONE || act == A_ILLEGAL) {
            CHECK(now == old, "mapper %d: chunk %#" PRIxPTR " had nothing to do but went %u -> %u",
                  xi, chunk_at(a, x, c), old, now);
            continue;
        }
        bool moved = now == tgt, kept = now == old,
             lost = k->op == OP_DECOMMIT && now == U && x->lo.holes;
        CHECK(moved || kept || lost, "mapper %d: chunk %#" PRIxPTR " went %u -> %u under %s", xi,
              chunk_at(a, x, c), old, now, op_names[k->op]);
        CHECK(!(seen_kept && !kept),
              "mapper %d: chunk %#" PRIxPTR " moved (%u -> %u) after an earlier chunk kept its "
              "state: not a prefix",
              xi, chunk_at(a, x, c), old, now);
        CHECK(rc != 0 || moved, "mapper %d: returned 0 but chunk %#" PRIxPTR " went %u -> %u", xi,
              chunk_at(a, x, c), old, now);
        if (kept) {
            seen_kept = true;
            if (a->pg[c * kp].owner == xi + 1)
                set_pages(a, xi, c, 1, -1, -1, NAME_UNKNOWN);   /* attributes may have applied */
            continue;
        }
        if (now == U) {
            set_pages(a, xi, c, 1, OWN_FREE, PM_ABSENT, NAME_NONE);
            a->pg[c * kp].tag = 0;
        } else {
            int perm = now == M ? k->perm : PM_NONE;
            set_pages(a, xi, c, 1, xi + 1, perm, NAME_UNKNOWN);
            if (!(now == M && old == P) && now != P)
                a->pg[c * kp].tag = 0;
        }
        set_st(a, xi, c, now);   /* counts from the restored (old) state */
    }
}

/* ---- faults ------------------------------------------------------------- */

/* After a fault: what the mapper learnt from EINVAL answers (it cannot tell
 * an injected EINVAL from a kernel without THP or names). */
static void latch_from_log(struct inst *x)
{
    for (unsigned i = 0; i < x->lo.logp->n && i < LOG_MAX; i++) {
        const struct call *c = &x->lo.logp->c[i];
        if (c->kind == TOS_MADVISE && c->rc == -EINVAL)
            x->huge_dead = true;
        if (c->kind == TOS_SET_NAME && c->rc == -EINVAL)
            x->names_dead = true;
    }
}

static void clear_fault(struct inst *x)
{
    if (x->real_os)
        return;
    test_os_clear_faults(&x->tos);
    x->fault_armed = false;
    x->lo.hole_mode = false;
    x->lo.partial_mode = false;
}

/* ---- instances ----------------------------------------------------------- */

static void inst_create(int xi, unsigned c1, unsigned c2)
{
    struct inst *x = X(xi);
    memset(x, 0, sizeof(*x));
    x->shift = 12 + c1 % 5;
    if ((size_t)1 << x->shift < page_size)
        x->shift = (unsigned)__builtin_ctzl(page_size);
    x->chunk = (size_t)1 << x->shift;
    x->ppc = x->chunk / page_size;
    x->block_signals = c1 >> 3 & 1;
    x->disable_names = c1 >> 4 & 1;
    x->real_os = c1 >> 5 & 1;
    x->names_unsup = c1 >> 6 & 1;
    x->huge_unsup = c1 >> 7 & 1;
    x->ignore_noreplace = c2 & 1;
    test_os_init(&x->tos);
    atomic_store(&x->tos.names_unsupported, x->names_unsup);
    atomic_store(&x->tos.huge_pages_unsupported, x->huge_unsup);
    atomic_store(&x->tos.ignore_noreplace, x->ignore_noreplace);
    x->lo.tos = &x->tos;
    x->lo.logp = &logs[xi];
    x->lo.chunk = x->chunk;
    logs[xi].n = 0;
    x->lo.os = (struct mmapper_os){ .ctx = &x->lo, .mmap = lo_mmap, .munmap = lo_munmap,
                                    .mprotect = lo_mprotect, .madvise = lo_madvise,
                                    .set_name = lo_set_name };
    struct mmapper_config cfg = { .log_chunk_bytes = x->shift,
                                  .disable_names = x->disable_names,
                                  .block_signals = x->block_signals,
                                  .os = x->real_os ? (c2 & 2 ? mmapper_os_default() : NULL)
                                                   : &x->lo.os };
    int rc = mmapper_create(&cfg, &x->m);
    CHECK(rc == 0 && x->m, "mmapper_create(log %u) = %d", x->shift, rc);
    CHECK(mmapper_granularity(x->m) == x->chunk, "granularity %zu, want %zu",
          mmapper_granularity(x->m), x->chunk);
    x->live = true;
    struct mmapper_stats s;
    mmapper_get_stats(x->m, &s);
    CHECK(s.chunks_mapped + s.chunks_quarantined + s.chunks_protected + s.slabs + s.mmap_calls +
                  s.munmap_calls + s.mprotect_calls + s.madvise_calls + s.name_calls == 0 &&
              s.metadata_bytes > 0,
          "a new mapper's stats are not zero");
    trace("  mapper %d: chunk %zu%s%s%s%s%s%s\n", xi, x->chunk, x->block_signals ? " signals" : "",
          x->disable_names ? " no-names" : "", x->real_os ? " kernel" : "",
          x->names_unsup ? " kernel-without-names" : "", x->huge_unsup ? " no-thp" : "",
          x->ignore_noreplace ? " no-noreplace" : "");
}

/* Destroy without unmapping: the mapper's memory becomes the harness's. */
static void inst_destroy_keep(int xi)
{
    struct inst *x = X(xi);
    for (int i = 0; i < NAREAS; i++) {
        struct area *a = &areas[i];
        if (!a->used)
            continue;
        for (size_t p = 0; p < a->npages; p++) {
            if (a->pg[p].owner == xi + 1)
                a->pg[p].owner = OWN_FOREIGN;
            a->pg[p].st[xi] = U;
        }
        if (a->owner == xi)
            a->owner = -2;
    }
    mmapper_destroy(x->m);
    x->m = NULL;
    x->live = false;
}

/* ---- the calls ------------------------------------------------------------- */

struct range {
    struct area *a;
    size_t cf, ce;          /* chunks of the mapper, in the area */
    uintptr_t start;
    size_t bytes;
};

static struct area *pick_area(int xi, unsigned b, bool for_unmap)
{
    (void)for_unmap;
    if (!(b & 1))
        return &areas[0];
    unsigned n = 0;
    struct area *cand[NANY];
    for (int i = 1; i < NAREAS; i++) {
        struct area *a = &areas[i];
        /* A mapper with larger chunks than the area's would round beyond it. */
        if (a->used && a->owner >= 0 && usable(a, X(xi)))
            cand[n++] = a;
    }
    return n ? cand[(b >> 1) % n] : &areas[0];
}

static void decode_range(int xi, int op, struct input *in, struct range *r)
{
    struct inst *x = X(xi);
    unsigned ab = u8(in);
    r->a = pick_area(xi, ab, op == OP_UNMAP);
    size_t nch = area_chunks(r->a, x);
    size_t cf = u16(in) % nch, len;
    unsigned lb = u8(in);
    if (lb < 128)
        len = 1 + lb % 4;
    else if (lb < 200)
        len = 1 + (lb - 128) % 48;
    else if (lb < 240)
        len = 1 + ((lb - 200) * 2654435761u) % nch;
    else {
        cf = 0;
        len = nch;
    }
    /* An owner unmaps its anywhere area whole (a hole there could be taken
     * by anyone, the sanitizer's allocator included). */
    if (r->a != &areas[0] && op == OP_UNMAP && r->a->owner == xi) {
        cf = 0;
        len = nch;
    }
    if (len > nch - cf)
        len = nch - cf;
    unsigned mb = u8(in);
    size_t cuts[4] = { 0, 1, x->chunk / 2, x->chunk - 1 };
    uintptr_t start = chunk_at(r->a, x, cf) + cuts[mb & 3];
    uintptr_t end = chunk_at(r->a, x, cf + len) - cuts[mb >> 2 & 3];
    if (end <= start)
        end = start + 1;
    r->cf = cf;
    r->ce = cf + len;
    r->start = start;
    r->bytes = end - start;
}

/* Options from one byte; *invalid if they must be refused. */
static const struct mmapper_map_opts *decode_opts(unsigned b, struct mmapper_map_opts *o,
                                                  int *name_id, int *perm, bool *invalid)
{
    *name_id = NAME_NONE;
    *perm = PM_RW;
    *invalid = false;
    if (b >= 0xf0)
        return NULL;
    *o = (struct mmapper_map_opts){ 0 };
    o->prot = b & 1 ? MMAPPER_PROT_READ_WRITE_EXEC : MMAPPER_PROT_READ_WRITE;
    unsigned h = b >> 1 & 3;
    o->huge_page = h == 1 ? MMAPPER_HUGE_PAGE_TRANSPARENT
                          : h == 2 ? MMAPPER_HUGE_PAGE_NEVER : MMAPPER_HUGE_PAGE_DEFAULT;
    unsigned nm = b >> 3 & 7;
    if (nm > 0 && nm < NGOOD) {
        o->name = good_names[nm];
        *name_id = (int)nm;
    }
    if (b >> 6 == 3) {
        /* 0xc0..0xef: one invalid field */
        *invalid = true;
        switch (b % 3) {
        case 0:
            o->prot = (mmapper_prot_t)(2 + (b >> 3 & 1) * 1000);
            break;
        case 1:
            o->huge_page = (mmapper_huge_page_t)(3 + (b >> 3 & 1) * 77);
            break;
        default:
            o->name = bad_names[(b >> 2) % NBAD];
            break;
        }
    }
    *perm = o->prot == MMAPPER_PROT_READ_WRITE_EXEC ? PM_RWX : PM_RW;
    return o;
}

/* The caller maps chunks [cf, ce) read-write itself before marking them.
 * False if memory of another mapper is in the way (the harness never
 * touches a mapper's memory). */
static bool prepare_mark(int xi, struct area *a, size_t cf, size_t ce)
{
    struct inst *x = X(xi);
    size_t kp = ppc(x);
    for (size_t p = cf * kp; p < ce * kp; p++) {
        unsigned o = a->pg[p].owner;
        if (o != OWN_FREE && o != OWN_FOREIGN && o != (unsigned)xi + 1)
            return false;
    }
    for (size_t c = cf; c < ce; c++) {
        unsigned st = st_of(a, xi, c);
        void *addr = (void *)chunk_at(a, x, c);
        if (st == M)
            continue;
        if (st == U) {
            munmap(addr, x->chunk);   /* foreign pages of the harness, if any */
            void *p = mmap(addr, x->chunk, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            CHECK(p == addr, "the harness's own mmap at %p: %s", addr, strerror(errno));
            set_pages(a, xi, c, 1, xi + 1, PM_RW, NAME_NONE);
            a->pg[c * kp].tag = 0;
        } else {
            CHECK(mprotect(addr, x->chunk, PROT_READ | PROT_WRITE) == 0, "mprotect %p", addr);
            set_pages(a, xi, c, 1, -1, PM_RW, -1);
            if (st == Q)
                a->pg[c * kp].tag = 0;
        }
    }
    return true;
}

static void anywhere_hole_rule(int xi, struct area *a);

static void do_range_op(int xi, int op, struct input *in)
{
    struct inst *x = X(xi);
    struct range r;
    decode_range(xi, op, in, &r);
    struct mmapper_map_opts obuf;
    int name_id = NAME_NONE, perm = PM_RW;
    bool invalid = false;
    const struct mmapper_map_opts *o = NULL;
    if (op == OP_MAP || op == OP_QUAR)
        o = decode_opts(u8(in), &obuf, &name_id, &perm, &invalid);
    snprintf(op_desc, sizeof(op_desc),
             "mapper %d %s [%#" PRIxPTR ", +%#zx) chunks [%zu, %zu) of area %d, opts %s%s%s%s",
             xi, op_names[op], r.start, r.bytes, r.cf, r.ce, (int)(r.a - areas),
             o ? "" : "NULL", o && o->prot ? "rwx " : "",
             o && o->huge_page ? (o->huge_page == 1 ? "thp " : "nothp ") : "",
             o && o->name ? o->name : "");
    trace("%u: %s%s%s\n", op_no, op_desc, invalid ? " (invalid)" : "",
          x->fault_armed ? " (fault armed)" : "");
    if (op == OP_MARK && !prepare_mark(xi, r.a, r.cf, r.ce)) {
        trace("   skipped: another mapper's memory\n");
        clear_fault(x);
        return;
    }

    size_t kp = ppc(x), p0 = r.cf * kp, np = (r.ce - r.cf) * kp;
    memcpy(snap, &r.a->pg[p0], np * sizeof(struct page));
    int64_t cnt_before[4];
    memcpy(cnt_before, x->cnt, sizeof(cnt_before));
    bool names_dead = x->names_dead, huge_dead = x->huge_dead;
    uint64_t faults0 = x->real_os ? 0 : atomic_load(&x->tos.faults);
    int inj = x->fault_errno;
    x->lo.logp->n = 0;
    x->lo.holes = 0;
    expected.n = 0;

    struct opctx k = { .xi = xi, .a = r.a, .op = op, .o = o, .name_id = name_id, .perm = perm };
    int want = invalid ? -EINVAL : model_op(&k, r.cf, r.ce);
    int rc;
    void *start = (void *)r.start;
    switch (op) {
    case OP_MAP:
        rc = mmapper_ensure_mapped(x->m, start, r.bytes, o);
        break;
    case OP_QUAR:
        rc = mmapper_quarantine(x->m, start, r.bytes, o);
        break;
    case OP_MARK:
        rc = mmapper_mark_as_mapped(x->m, start, r.bytes);
        break;
    case OP_PROT:
        rc = mmapper_protect(x->m, start, r.bytes);
        break;
    case OP_DECOMMIT:
        rc = mmapper_decommit(x->m, start, r.bytes);
        break;
    default:
        rc = mmapper_unmap(x->m, start, r.bytes);
        break;
    }
    bool fired = !x->real_os && atomic_load(&x->tos.faults) != faults0;
    clear_fault(x);
    trace("   -> %d (model %d)%s, %u system calls\n", rc, want, fired ? " fault fired" : "",
          x->lo.logp->n);

    if (!fired) {
        CHECK(rc == want, "returned %d (%s), model says %d (%s)", rc, mmapper_strerror(rc), want,
              mmapper_strerror(want));
        compare_calls(xi);
    } else {
        /* Start again from the snapshot and the library's record. */
        memcpy(x->cnt, cnt_before, sizeof(cnt_before));
        x->names_dead = names_dead;
        x->huge_dead = huge_dead;
        latch_from_log(x);
        CHECK(rc == 0 || rc == -inj || rc == -EEXIST || rc == want,
              "returned %d (%s) after an injected %s (model without it: %d)", rc,
              mmapper_strerror(rc), mmapper_strerror(-inj), want);
        adopt(&k, r.cf, r.ce, p0, rc);
    }
    check_states(r.a, p0, np);
    check_kernel(r.a, p0, np);
    check_data(r.a, xi, r.cf, r.ce);
    for (int yi = 0; yi < NINST; yi++)
        if (X(yi)->live)
            check_stats(yi);
    if (r.a != &areas[0])
        anywhere_hole_rule(xi, r.a);
}

/* An anywhere area must not get holes (anyone may map into a hole there):
 * once a chunk of its owner is Unmapped, the whole area goes. */
static void anywhere_hole_rule(int xi, struct area *a)
{
    (void)xi;
    int owner = a->owner;
    if (owner < 0)
        return;
    struct inst *x = X(owner);
    size_t nch = area_chunks(a, x);
    bool hole = false;
    for (size_t c = 0; c < nch && !hole; c++)
        hole = st_of(a, owner, c) == U;
    if (!hole)
        return;
    trace("   area %d has a hole: unmapped whole\n", (int)(a - areas));
    clear_fault(x);
    x->lo.logp->n = 0;
    expected.n = 0;
    struct opctx k = { .xi = owner, .a = a, .op = OP_UNMAP, .perm = PM_RW };
    CHECK(model_op(&k, 0, nch) == 0, "model unmap of an area");
    int rc = mmapper_unmap(x->m, (void *)a->base, a->npages * page_size);
    CHECK(rc == 0, "unmap of area %d: %d", (int)(a - areas), rc);
    compare_calls(owner);
    check_kernel(a, 0, a->npages);
    a->used = false;
}

static void do_anywhere(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned b = u8(in);
    size_t n = 1 + b % ANY_MAX_CHUNKS, bytes = n * x->chunk;
    struct mmapper_map_opts obuf;
    int name_id, perm;
    bool invalid;
    const struct mmapper_map_opts *o = decode_opts(u8(in), &obuf, &name_id, &perm, &invalid);
    snprintf(op_desc, sizeof(op_desc), "mapper %d quarantine_anywhere(%zu chunks)%s", xi, n,
             invalid ? " invalid opts" : "");
    trace("%u: %s%s\n", op_no, op_desc, x->fault_armed ? " (fault armed)" : "");
    uint64_t faults0 = x->real_os ? 0 : atomic_load(&x->tos.faults);
    int inj = x->fault_errno;
    x->lo.logp->n = 0;
    expected.n = 0;
    int64_t cnt_before[4];
    memcpy(cnt_before, x->cnt, sizeof(cnt_before));
    void *p = NULL;
    int rc = mmapper_quarantine_anywhere(x->m, bytes, o, &p);
    bool fired = !x->real_os && atomic_load(&x->tos.faults) != faults0;
    clear_fault(x);
    trace("   -> %d at %p%s\n", rc, p, fired ? " fault fired" : "");
    if (fired)
        latch_from_log(x);
    if (invalid) {
        CHECK(rc == -EINVAL, "returned %d with invalid options", rc);
        compare_calls(xi);
        check_stats(xi);
        return;
    }
    size_t pad = x->chunk > page_size ? x->chunk - page_size : 0;
    if (!fired) {
        CHECK(rc == 0, "returned %d (%s)", rc, mmapper_strerror(rc));
        CHECK((uintptr_t)p % x->chunk == 0, "unaligned reservation %p", p);
    }
    if (rc != 0) {
        /* Nothing may be recorded; give back what a failed munmap left. */
        CHECK(!x->real_os && x->lo.logp->n >= 1, "failed without a system call");
        CHECK(rc == -inj || rc == -EEXIST, "returned %d (%s) after an injected %s", rc,
              mmapper_strerror(rc), mmapper_strerror(-inj));
        const struct call *first = &x->lo.logp->c[0];
        if (first->kind == TOS_MMAP && first->rc == 0) {
            uintptr_t lo = first->out, hi = lo + bytes + pad;
            for (uintptr_t c = lo & ~(uintptr_t)(x->chunk - 1); c < hi; c += x->chunk)
                CHECK(mmapper_state(x->m, (void *)c) == U, "chunk %#" PRIxPTR " recorded after "
                      "a failed quarantine_anywhere", c);
            /* Pieces [lo, hi) not unmapped by a successful munmap. */
            uintptr_t piece[8][2] = { { lo, hi } };
            unsigned np = 1;
            for (unsigned i = 1; i < x->lo.logp->n && i < LOG_MAX; i++) {
                const struct call *c = &x->lo.logp->c[i];
                if (c->kind != TOS_MUNMAP || c->rc != 0)
                    continue;
                uintptr_t ul = c->addr, uh = c->addr + c->len;
                for (unsigned j = 0; j < np; j++) {
                    uintptr_t pl = piece[j][0], ph = piece[j][1];
                    if (uh <= pl || ul >= ph)
                        continue;
                    piece[j][0] = piece[j][1] = 0;
                    if (pl < ul && np < 8) {
                        piece[np][0] = pl;
                        piece[np++][1] = ul;
                    }
                    if (uh < ph && np < 8) {
                        piece[np][0] = uh;
                        piece[np++][1] = ph;
                    }
                }
            }
            for (unsigned j = 0; j < np; j++)
                if (piece[j][1] > piece[j][0]) {
                    trace("   giving back the leaked [%#" PRIxPTR ", %#" PRIxPTR ")\n",
                          piece[j][0], piece[j][1]);
                    munmap((void *)piece[j][0], piece[j][1] - piece[j][0]);
                }
        }
        memcpy(x->cnt, cnt_before, sizeof(cnt_before));
        check_stats(xi);
        return;
    }
    if (!fired) {
        /* One mmap, head and tail trims, attributes. */
        CHECK(x->real_os || (x->lo.logp->n >= 1 && x->lo.logp->c[0].kind == TOS_MMAP),
              "no mmap first");
        uintptr_t got = x->real_os ? (uintptr_t)p : x->lo.logp->c[0].out;
        expect(TOS_MMAP, 0, bytes + pad, PROT_NONE, MAP_NORESERVE, false);
        if (!x->real_os) {
            size_t head = (uintptr_t)p - got, tail = pad - head;
            if (head)
                expect(TOS_MUNMAP, got, head, 0, 0, false);
            if (tail)
                expect(TOS_MUNMAP, (uintptr_t)p + bytes, tail, 0, 0, false);
        } else if (pad) {
            /* Trims unknown with the real kernel: count them as made. */
            struct mmapper_stats s;
            mmapper_get_stats(x->m, &s);
            uint64_t trims = s.munmap_calls - x->calls[TOS_MUNMAP];
            CHECK(trims <= 2, "%" PRIu64 " trims", trims);
            x->calls[TOS_MUNMAP] += trims;
        }
    }
    /* A new area, or give it straight back if all are in use. */
    struct area *a = NULL;
    for (int i = 1; i < NAREAS && !a; i++)
        if (!areas[i].used)
            a = &areas[i];
    struct area tmp_area;
    static struct page tmp_pages[ANY_MAX_PAGES];
    bool keep = a != NULL;
    if (!a) {
        a = &tmp_area;
        a->pg = tmp_pages;
    }
    size_t np = bytes / page_size;
    memset(a->pg, 0, np * sizeof(struct page));
    a->base = (uintptr_t)p;
    a->npages = np;
    a->owner = xi;
    a->owner_shift = x->shift;
    a->used = true;
    CHECK(!area_of(a->base, &(size_t){ 0 }) || area_of(a->base, &(size_t){ 0 }) == a,
          "reservation %p overlaps an area", p);
    struct opctx k = { .xi = xi, .a = a, .op = OP_QUAR, .o = o, .name_id = name_id, .perm = perm };
    set_pages(a, xi, 0, n, xi + 1, PM_NONE, fired ? NAME_UNKNOWN : NAME_NONE);
    for (size_t c = 0; c < n; c++)
        set_st(a, xi, c, Q);
    if (!fired) {
        model_attrs(&k, 0, n);
        compare_calls(xi);
    }
    check_states(a, 0, np);
    check_kernel(a, 0, np);
    if (keep)
        check_stats(xi);   /* (model_slabs sees only areas[]) */
    else {
        x->lo.logp->n = 0;
        expected.n = 0;
        k.op = OP_UNMAP;
        model_op(&k, 0, n);
        CHECK(mmapper_unmap(x->m, p, bytes) == 0, "unmap of a reservation");
        compare_calls(xi);
        check_kernel(a, 0, np);
        check_stats(xi);
        a->used = false;
    }
}

/*
 * A caller's lie: it maps memory itself, marks it mapped, and unmaps it
 * behind the mapper's back.  The kernel may then hand that range to
 * quarantine_anywhere (often: it is the newest hole): the mapper must find
 * the conflict (-EEXIST), give the whole reservation back and leave its
 * stale record alone.  Or the reservation lands elsewhere and succeeds.
 * The harness then maps the range again and unmaps it through the mapper.
 */
static void do_stale(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned b = u8(in);
    size_t n = 1 + b % 8, m = 1 + (b >> 3) % 8, pad = x->chunk - page_size;
    size_t len = n * x->chunk;
    snprintf(op_desc, sizeof(op_desc), "mapper %d: %zu chunks marked, unmapped behind its back, "
             "then quarantine_anywhere(%zu chunks)", xi, n, m);
    trace("%u: %s\n", op_no, op_desc);
    clear_fault(x);
    char *raw = mmap(NULL, len + pad, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(raw != MAP_FAILED, "mmap");
    uintptr_t s = ((uintptr_t)raw + x->chunk - 1) & ~(uintptr_t)(x->chunk - 1);
    if (s > (uintptr_t)raw)
        munmap(raw, s - (uintptr_t)raw);
    if ((uintptr_t)raw + len + pad > s + len)
        munmap((void *)(s + len), (uintptr_t)raw + len + pad - (s + len));
    x->lo.logp->n = 0;
    CHECK(mmapper_mark_as_mapped(x->m, (void *)s, len) == 0, "mark of the caller's memory");
    CHECK(mmapper_is_mapped(x->m, (void *)(s + len - 1)), "is_mapped after mark");
    munmap((void *)s, len);
    void *p = NULL;
    size_t bytes = m * x->chunk;
    int rc = mmapper_quarantine_anywhere(x->m, bytes, NULL, &p);
    uintptr_t got = x->real_os || !x->lo.logp->n ? 0 : x->lo.logp->c[0].out;
    trace("   -> %d at %p (reservation at %#" PRIxPTR ", stale [%#" PRIxPTR ", %#" PRIxPTR "))\n",
          rc, p, got, s, s + len);
    for (size_t c = 0; c < n; c++)
        CHECK(mmapper_state(x->m, (void *)(s + c * x->chunk)) == M,
              "the stale record of chunk %#" PRIxPTR " changed", s + c * x->chunk);
    if (rc == 0) {
        uintptr_t lo = (uintptr_t)p;
        CHECK(lo + bytes <= s || lo >= s + len, "reservation %p over chunks recorded Mapped", p);
        for (size_t c = 0; c < m; c++)
            CHECK(mmapper_state(x->m, (char *)p + c * x->chunk) == Q, "reserved chunk");
        CHECK(mmapper_unmap(x->m, p, bytes) == 0, "unmap of the reservation");
        if (x->real_os) {
            /* counters: the reservation's mmap and trims, its unmap */
            struct mmapper_stats st;
            mmapper_get_stats(x->m, &st);
            memcpy(x->calls, (uint64_t[]){ st.mmap_calls, st.munmap_calls, st.mprotect_calls,
                                           st.madvise_calls, st.name_calls },
                   sizeof(x->calls));
        }
    } else {
        CHECK(rc == -EEXIST, "quarantine_anywhere returned %d (%s)", rc, mmapper_strerror(rc));
        if (!x->real_os) {
            CHECK(got + bytes + pad > s && got < s + len,
                  "-EEXIST but the reservation [%#" PRIxPTR ", +%#zx) missed the stale chunks",
                  got, bytes + pad);
            /* All of it given back, at once (nothing could take it yet). */
            for (uintptr_t a = got; a < got + bytes + pad; a += page_size) {
                unsigned char v;
                CHECK(mincore((void *)a, page_size, &v) != 0 && errno == ENOMEM,
                      "page %#" PRIxPTR " of the failed reservation still mapped", a);
                bool stale = a >= s && a < s + len;
                CHECK(mmapper_state(x->m, (void *)a) == (stale ? M : U),
                      "chunk %#" PRIxPTR " recorded %u", a, mmapper_state(x->m, (void *)a));
            }
        } else {
            struct mmapper_stats st;
            mmapper_get_stats(x->m, &st);
            memcpy(x->calls, (uint64_t[]){ st.mmap_calls, st.munmap_calls, st.mprotect_calls,
                                           st.madvise_calls, st.name_calls },
                   sizeof(x->calls));
        }
    }
    /* Make the record true again, then forget it through the mapper. */
    void *again = mmap((void *)s, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (again != (void *)s) {
        /* Someone else mapped there meanwhile: only destroying the mapper
         * forgets the record without touching that memory. */
        trace("   the stale range was taken: mapper re-created\n");
        if (again != MAP_FAILED)
            munmap(again, len);
        int keep_cfg = (x->shift - 12) | x->block_signals << 3 | x->disable_names << 4 |
                       x->real_os << 5 | x->names_unsup << 6 | x->huge_unsup << 7;
        inst_destroy_keep(xi);
        inst_create(xi, (unsigned)keep_cfg, x->ignore_noreplace);
        return;
    }
    CHECK(mmapper_unmap(x->m, (void *)s, len) == 0, "unmap of the stale range");
    CHECK(mincore((void *)s, page_size, &(unsigned char){ 0 }) != 0 && errno == ENOMEM,
          "the stale range is still mapped");
    if (x->real_os)
        x->calls[TOS_MUNMAP]++;
    check_stats(xi);
}

/* The harness's own mappings in the region: foreign memory to every mapper. */
static void do_foreign(struct input *in)
{
    struct area *a = &areas[0];
    unsigned b = u8(in);
    size_t p0 = u16(in) % a->npages, np = 1 + b % 32;
    if (np > a->npages - p0)
        np = a->npages - p0;
    unsigned sub = b >> 5 & 3;
    snprintf(op_desc, sizeof(op_desc), "harness %s pages [%zu, %zu)",
             sub == 0 || sub == 3 ? "maps" : sub == 1 ? "unmaps" : "protects", p0, p0 + np);
    trace("%u: %s\n", op_no, op_desc);
    for (size_t p = p0; p < p0 + np;) {
        struct page *g = &a->pg[p];
        size_t q = p + 1;
        bool want = sub == 0 || sub == 3 ? g->owner == OWN_FREE : g->owner == OWN_FOREIGN;
        while (q < p0 + np && (sub == 0 || sub == 3 ? a->pg[q].owner == OWN_FREE
                                                    : a->pg[q].owner == OWN_FOREIGN))
            q++;
        if (!want) {
            p++;
            continue;
        }
        void *addr = (void *)(a->base + p * page_size);
        size_t len = (q - p) * page_size;
        if (sub == 0 || sub == 3) {
            void *got = mmap(addr, len, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            CHECK(got == addr, "the harness's own mmap at %p: %s", addr, strerror(errno));
        } else if (sub == 1) {
            CHECK(munmap(addr, len) == 0, "munmap");
        } else {
            CHECK(mprotect(addr, len, PROT_NONE) == 0, "mprotect");
        }
        for (size_t i = p; i < q; i++) {
            a->pg[i].owner = sub == 1 ? OWN_FREE : OWN_FOREIGN;
            a->pg[i].perm = sub == 1 ? PM_ABSENT : sub == 2 ? PM_NONE : PM_RW;
            if (sub != 2)
                a->pg[i].name = NAME_NONE;
        }
        p = q;
    }
    check_kernel(a, p0, np);
}

static void do_touch(int xi, struct input *in)
{
    struct inst *x = X(xi);
    struct range r;
    decode_range(xi, OP_MAP, in, &r);
    unsigned seed = u8(in);
    snprintf(op_desc, sizeof(op_desc), "mapper %d writes chunks [%zu, %zu) of area %d", xi, r.cf,
             r.ce, (int)(r.a - areas));
    trace("%u: %s\n", op_no, op_desc);
    size_t kp = ppc(x);
    unsigned written = 0;
    for (size_t c = r.cf; c < r.ce && written < 8; c++) {
        struct page *g = &r.a->pg[c * kp];
        if (g->st[xi] != M)
            continue;
        CHECK(mmapper_is_mapped(x->m, (void *)chunk_at(r.a, x, c)), "is_mapped before a write");
        g->tag = ((uint64_t)op_no << 40 | (uint64_t)seed << 32 | c) | 1;
        *(volatile uint64_t *)chunk_at(r.a, x, c) = g->tag;
        written++;
    }
}

static uintptr_t decode_addr(struct input *in)
{
    unsigned k = u8(in);
    static const uintptr_t junk[] = { 0,
                                      1,
                                      MMAPPER_ADDRESS_LIMIT - 1,
                                      MMAPPER_ADDRESS_LIMIT,
                                      UINTPTR_MAX,
                                      (uintptr_t)1 << 47,
                                      ((uintptr_t)1 << 47) - 1 };
    if (k % 8 < 5) {
        struct area *cand[NAREAS];
        unsigned n = 0;
        for (int i = 0; i < NAREAS; i++)
            if (areas[i].used)
                cand[n++] = &areas[i];
        struct area *a = cand[(k >> 3) % n];
        return a->base + (u16(in) % a->npages) * page_size + (k >> 5) * 511;
    }
    if (k % 8 == 5)
        return junk[(k >> 3) % (sizeof(junk) / sizeof(junk[0]))];
    if (k % 8 == 6) {
        const struct area *a = &areas[(k >> 3) % NAREAS];
        if (!a->used)
            a = &areas[0];
        return k & 0x80 ? a->base - 1 : a->base + a->npages * page_size;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(in);
    return (uintptr_t)v;
}

static void do_lookups(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned b = u8(in);
    size_t n = b % 33;
    const void *addrs[32];
    bool mapped[33];
    size_t want = 0;
    snprintf(op_desc, sizeof(op_desc), "mapper %d: %zu lookups", xi, n);
    trace("%u: %s\n", op_no, op_desc);
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = decode_addr(in);
        addrs[i] = (const void *)a;
        unsigned st = model_state(xi, a);
        unsigned got = mmapper_state(x->m, addrs[i]);
        CHECK(got == st, "state(%#" PRIxPTR ") = %u, model says %u", a, got, st);
        CHECK(mmapper_is_mapped(x->m, addrs[i]) == (st == M), "is_mapped(%#" PRIxPTR ")", a);
        CHECK(!mmapper_is_mapped(NULL, addrs[i]) && mmapper_state(NULL, addrs[i]) == U,
              "NULL mapper");
        want += st == M;
    }
    if (n == 0 && (b & 0x20)) {
        /* More than one read-side section's worth (4096 addresses). */
        static const void *many[4200];
        static bool many_mapped[4200];
        size_t cnt = 4097 + (b & 7) * 13, stride = 1 + (b >> 3 & 3);
        struct area *a = &areas[0];
        size_t w = 0;
        for (size_t i = 0; i < cnt; i++) {
            uintptr_t addr = a->base + ((i * stride) % a->npages) * page_size + i % 8;
            many[i] = (const void *)addr;
            w += model_state(xi, addr) == M;
        }
        size_t g = mmapper_is_mapped_many(x->m, many, cnt, b & 0x40 ? NULL : many_mapped);
        CHECK(g == w, "is_mapped_many of %zu counted %zu, model says %zu", cnt, g, w);
        if (!(b & 0x40))
            for (size_t i = 0; i < cnt; i++)
                CHECK(many_mapped[i] == (model_state(xi, (uintptr_t)many[i]) == M),
                      "is_mapped_many[%zu] of %zu", i, cnt);
    }
    mapped[n] = true;   /* a canary: must stay */
    bool with_array = !(b & 0x40);
    size_t got = mmapper_is_mapped_many(x->m, addrs, n, with_array ? mapped : NULL);
    CHECK(got == want, "is_mapped_many counted %zu, model says %zu", got, want);
    if (with_array)
        for (size_t i = 0; i < n; i++)
            CHECK(mapped[i] == (model_state(xi, (uintptr_t)addrs[i]) == M),
                  "is_mapped_many[%zu] (%p)", i, addrs[i]);
    CHECK(mapped[n], "is_mapped_many wrote past n");
    if (b & 0x80) {
        memset(mapped, 1, sizeof(mapped));
        CHECK(mmapper_is_mapped_many(NULL, addrs, n, mapped) == 0, "NULL mapper, many");
        for (size_t i = 0; i < n; i++)
            CHECK(!mapped[i], "NULL mapper answered true");
        memset(mapped, 1, sizeof(mapped));
        CHECK(mmapper_is_mapped_many(x->m, NULL, n, mapped) == 0, "NULL addrs, many");
        for (size_t i = 0; i < n; i++)
            CHECK(!mapped[i], "NULL addrs answered true");
        CHECK(mapped[n], "is_mapped_many wrote past n");
    }
}

static void do_fault(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned k = u8(in), e = u8(in);
    static const int errs[] = { ENOMEM, EAGAIN, EPERM, EINVAL, EEXIST, EACCES, EFAULT, EBUSY };
    int call = k % 6 == 5 ? TOS_ANY : (int)(k % 6);
    long at = 1 + (k >> 3) % 4;
    int err = errs[e % 8];
    bool sticky = e >> 3 & 1;
    snprintf(op_desc, sizeof(op_desc), "mapper %d: fail %s call %ld with %s%s%s%s", xi,
             call == TOS_ANY ? "any" : kind_name(call), at, strerror(err),
             sticky ? " (sticky)" : "", e >> 4 & 1 ? " (holes)" : "",
             e >> 5 & 1 && !sticky ? " (partial mprotect)" : "");
    trace("%u: %s%s\n", op_no, op_desc, x->real_os ? ": ignored (real kernel)" : "");
    if (x->real_os)
        return;
    test_os_fail(&x->tos, call, at, err, sticky);
    x->lo.hole_mode = e >> 4 & 1;
    x->lo.partial_mode = (e >> 5 & 1) && !sticky;
    x->fault_armed = true;
    x->fault_errno = err;
}

/* Bad arguments: refused with nothing changed (and no system call). */
static void do_bad(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned b = u8(in);
    mmapper_t *m = x->m;
    size_t ch = x->chunk;
    uintptr_t lim = MMAPPER_ADDRESS_LIMIT;
    void *reg = (void *)region;
    clear_fault(x);
    x->lo.logp->n = 0;
    struct mmapper_stats before, after;
    mmapper_get_stats(m, &before);
    snprintf(op_desc, sizeof(op_desc), "mapper %d: bad arguments #%u", xi, b % 12);
    trace("%u: %s\n", op_no, op_desc);
    int rc;
    switch (b % 12) {
    case 0:   /* NULL mapper */
        CHECK(mmapper_ensure_mapped(NULL, reg, ch, NULL) == -EINVAL, "NULL ensure_mapped");
        CHECK(mmapper_quarantine(NULL, reg, ch, NULL) == -EINVAL, "NULL quarantine");
        CHECK(mmapper_mark_as_mapped(NULL, reg, ch) == -EINVAL, "NULL mark");
        CHECK(mmapper_protect(NULL, reg, ch) == -EINVAL, "NULL protect");
        CHECK(mmapper_decommit(NULL, reg, ch) == -EINVAL, "NULL decommit");
        CHECK(mmapper_unmap(NULL, reg, ch) == -EINVAL, "NULL unmap");
        CHECK(mmapper_quarantine_anywhere(NULL, ch, NULL, &(void *){ 0 }) == -EINVAL,
              "NULL anywhere");
        CHECK(mmapper_reclaim_wait(NULL) == -EINVAL, "NULL reclaim_wait");
        CHECK(mmapper_granularity(NULL) == 0, "NULL granularity");
        mmapper_destroy(NULL);
        break;
    case 1:   /* zero bytes */
        CHECK(mmapper_ensure_mapped(m, reg, 0, NULL) == -EINVAL, "0 ensure_mapped");
        CHECK(mmapper_quarantine(m, reg, 0, NULL) == -EINVAL, "0 quarantine");
        CHECK(mmapper_mark_as_mapped(m, reg, 0) == -EINVAL, "0 mark");
        CHECK(mmapper_protect(m, reg, 0) == -EINVAL, "0 protect");
        CHECK(mmapper_decommit(m, reg, 0) == -EINVAL, "0 decommit");
        CHECK(mmapper_unmap(m, reg, 0) == -EINVAL, "0 unmap");
        CHECK(mmapper_quarantine_anywhere(m, 0, NULL, &(void *){ 0 }) == -EINVAL, "0 anywhere");
        break;
    case 2: { /* start + bytes overflows */
        uintptr_t s = UINTPTR_MAX - (b >> 4);
        size_t n = (b >> 4) + 2;
        CHECK(mmapper_ensure_mapped(m, (void *)s, n, NULL) == -EINVAL, "overflow ensure_mapped");
        CHECK(mmapper_unmap(m, (void *)s, n) == -EINVAL, "overflow unmap");
        CHECK(mmapper_unmap(m, reg, SIZE_MAX) == -EINVAL, "overflow unmap 2");
        CHECK(mmapper_protect(m, (void *)s, n) == -EINVAL, "overflow protect");
        CHECK(mmapper_mark_as_mapped(m, reg, SIZE_MAX - region + 2) == -EINVAL, "overflow mark");
        break;
    }
    case 3:   /* past the limit */
        CHECK(mmapper_ensure_mapped(m, (void *)(lim - ch), ch + 1, NULL) == -EINVAL,
              "past limit ensure_mapped");
        CHECK(mmapper_quarantine(m, (void *)lim, 1, NULL) == -EINVAL, "at limit quarantine");
        CHECK(mmapper_mark_as_mapped(m, (void *)(lim - 1), 2) == -EINVAL, "past limit mark");
        CHECK(mmapper_unmap(m, (void *)(lim + ch), ch) == -EINVAL, "past limit unmap");
        CHECK(mmapper_decommit(m, reg, lim) == -EINVAL, "past limit decommit");
        break;
    case 4:   /* the top of the address space: the kernel refuses, nothing recorded */
    case 5: {
#ifdef UNDER_TSAN
        break;
#endif
        uintptr_t s = b % 12 == 4 ? lim - ch * (1 + (b >> 4) % 3) : ((uintptr_t)1 << 47) - ch;
        size_t n = b % 12 == 4 ? lim - s : 2 * ch;
        rc = mmapper_ensure_mapped(m, (void *)s, n, NULL);
        CHECK(rc < 0, "ensure_mapped at %#" PRIxPTR " succeeded", s);
        rc = mmapper_quarantine(m, (void *)s, n, NULL);
        CHECK(rc < 0, "quarantine at %#" PRIxPTR " succeeded", s);
        CHECK(mmapper_protect(m, (void *)s, n) == -EINVAL, "protect of nothing");
        CHECK(mmapper_decommit(m, (void *)s, n) == -EINVAL, "decommit of nothing");
        CHECK(mmapper_unmap(m, (void *)s, n) == 0, "unmap of nothing");
        CHECK(mmapper_state(m, (void *)s) == U && !mmapper_is_mapped(m, (void *)(s + n - 1)),
              "state up there");
        mmapper_get_stats(m, &after);
        CHECK(after.chunks_mapped == before.chunks_mapped &&
                  after.chunks_quarantined == before.chunks_quarantined,
              "gauges moved");
        /* Two mmaps, each refused, except with a kernel ignoring
         * MAP_FIXED_NOREPLACE (placed elsewhere, given back). */
        uint64_t maps = after.mmap_calls - before.mmap_calls;
        uint64_t unmaps = after.munmap_calls - before.munmap_calls;
        CHECK(maps == 2 && unmaps == (x->ignore_noreplace && !x->real_os ? 2 : 0),
              "%" PRIu64 " mmaps and %" PRIu64 " munmaps up there", maps, unmaps);
        if (x->real_os)
            x->calls[TOS_MMAP] += 2;
        return;   /* counters moved: not compared below */
    }
    case 6: { /* quarantine_anywhere */
        void *p = (void *)1;
        CHECK(mmapper_quarantine_anywhere(m, ch + 1, NULL, &p) == -EINVAL, "unaligned anywhere");
        CHECK(mmapper_quarantine_anywhere(m, ch / 2, NULL, &p) == -EINVAL, "half anywhere");
        CHECK(mmapper_quarantine_anywhere(m, ch, NULL, NULL) == -EINVAL, "NULL out");
        CHECK(p == (void *)1, "out written on failure");
        uint64_t maps0 = before.mmap_calls;
        rc = mmapper_quarantine_anywhere(m, SIZE_MAX & ~(ch - 1), NULL, &p);
        CHECK(rc == -ENOMEM, "anywhere of everything: %d", rc);
        rc = mmapper_quarantine_anywhere(m, (size_t)1 << 48, NULL, &p);
        CHECK(rc == -ENOMEM, "anywhere of 2^48: %d", rc);
        mmapper_get_stats(m, &after);
        uint64_t maps = after.mmap_calls - maps0;
        /* Both reach the kernel: everything rounded to chunks plus the
         * alignment padding still fits in a size_t. */
        CHECK(maps == 2, "%" PRIu64 " mmaps for huge anywhere", maps);
        if (x->real_os)
            x->calls[TOS_MMAP] += maps;
        return;
    }
    case 7: { /* invalid options over a valid range */
        struct mmapper_map_opts o = { 0 };
        int nid, perm;
        bool invalid;
        decode_opts(0xc0 + (b >> 4), &o, &nid, &perm, &invalid);
        CHECK(mmapper_ensure_mapped(m, reg, ch, &o) == -EINVAL, "bad opts ensure_mapped");
        CHECK(mmapper_quarantine(m, reg, 3 * ch, &o) == -EINVAL, "bad opts quarantine");
        CHECK(mmapper_quarantine_anywhere(m, ch, &o, &(void *){ 0 }) == -EINVAL,
              "bad opts anywhere");
        break;
    }
    case 8: { /* bad configurations */
        mmapper_t *y = (mmapper_t *)1;
        unsigned lp = (unsigned)__builtin_ctzl(page_size);
        struct mmapper_config c = { .log_chunk_bytes = lp - 1 };
        CHECK(mmapper_create(&c, &y) == -EINVAL && y == NULL, "log below the page");
        c.log_chunk_bytes = 31;
        CHECK(mmapper_create(&c, &y) == -EINVAL, "log 31");
        c.log_chunk_bytes = 0;
        CHECK(mmapper_create(&c, NULL) == -EINVAL, "NULL out");
        struct mmapper_os bad = *mmapper_os_default();
        switch (b >> 4 & 3) {
        case 0:
            bad.mmap = NULL;
            break;
        case 1:
            bad.munmap = NULL;
            break;
        case 2:
            bad.madvise = NULL;
            break;
        default:
            bad.set_name = NULL;
            break;
        }
        c.os = &bad;
        CHECK(mmapper_create(&c, &y) == -EINVAL, "os with a NULL function");
        break;
    }
    case 9: { /* a default mapper, made and dropped */
        mmapper_t *y = NULL;
        CHECK(mmapper_create(b & 0x10 ? NULL : &(struct mmapper_config){ 0 }, &y) == 0 && y,
              "default create");
        CHECK(mmapper_granularity(y) == (size_t)4 << 20, "default granularity");
        CHECK(mmapper_state(y, reg) == U, "fresh mapper's state");
        mmapper_destroy(y);
        break;
    }
    case 10: { /* stats and strerror */
        mmapper_get_stats(m, NULL);
        struct mmapper_stats z;
        memset(&z, 0xff, sizeof(z));
        mmapper_get_stats(NULL, &z);
        CHECK(z.mmap_calls == 0 && z.slabs == 0 && z.metadata_bytes == 0, "NULL stats");
        static const int codes[] = { 0, -EINVAL, -ENOMEM, -EEXIST, -EPERM, -EFAULT, -12345, 7,
                                     INT32_MIN };
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            const char *s = mmapper_strerror(codes[i]);
            CHECK(s && *s, "strerror(%d)", codes[i]);
        }
        break;
    }
    default: { /* is_mapped at the edges */
        CHECK(!mmapper_is_mapped(m, NULL) && !mmapper_is_mapped(m, (void *)UINTPTR_MAX) &&
                  !mmapper_is_mapped(m, (void *)lim) && mmapper_state(m, (void *)lim) == U,
              "edges");
        break;
    }
    }
    mmapper_get_stats(m, &after);
    CHECK(!memcmp(&before, &after, offsetof(struct mmapper_stats, slabs)),
          "bad arguments changed the counters or gauges");
    CHECK(x->lo.logp->n == 0, "bad arguments made %u system calls", x->lo.logp->n);
}

static void do_recreate(int xi, struct input *in)
{
    unsigned c1 = u8(in), c2 = u8(in);
    snprintf(op_desc, sizeof(op_desc), "mapper %d destroyed (memory kept) and re-created", xi);
    trace("%u: %s\n", op_no, op_desc);
    if (X(xi)->live)
        inst_destroy_keep(xi);
    inst_create(xi, c1, c2);
}

static void do_check_all(int xi, struct input *in)
{
    struct inst *x = X(xi);
    unsigned b = u8(in);
    snprintf(op_desc, sizeof(op_desc), "mapper %d: full comparison%s", xi,
             b & 1 ? " after reclaim_wait" : "");
    trace("%u: %s\n", op_no, op_desc);
    if (b & 1)
        CHECK(mmapper_reclaim_wait(x->m) == 0, "reclaim_wait");
    for (int i = 0; i < NAREAS; i++)
        if (areas[i].used)
            check_states(&areas[i], 0, areas[i].npages);
    check_stats(xi);
    if (b & 1) {
        struct mmapper_stats s;
        mmapper_get_stats(x->m, &s);
        CHECK(s.slabs == model_slabs(xi), "slabs after reclaim_wait");
    }
}

/* ---- an input --------------------------------------------------------------- */

static void reset(void)
{
    snprintf(op_desc, sizeof(op_desc), "cleanup");
    for (int xi = 0; xi < NINST; xi++) {
        struct inst *x = X(xi);
        if (!x->live)
            continue;
        clear_fault(x);
        int rc = mmapper_unmap(x->m, (void *)region, REGION_BYTES);
        CHECK(rc == 0, "mapper %d: final unmap of the region: %d", xi, rc);
        for (int i = 1; i < NAREAS; i++) {
            struct area *a = &areas[i];
            if (a->used && a->owner == xi) {
                rc = mmapper_unmap(x->m, (void *)a->base, a->npages * page_size);
                CHECK(rc == 0, "mapper %d: final unmap of an area: %d", xi, rc);
                a->used = false;
            }
        }
        struct mmapper_stats s;
        mmapper_get_stats(x->m, &s);
        CHECK(s.chunks_mapped + s.chunks_quarantined + s.chunks_protected == 0,
              "mapper %d: chunks left after unmapping everything", xi);
        mmapper_destroy(x->m);
        x->live = false;
    }
    /* The harness's own memory, and areas of destroyed mappers. */
    munmap((void *)region, REGION_BYTES);
    for (int i = 1; i < NAREAS; i++) {
        struct area *a = &areas[i];
        if (a->used)
            munmap((void *)a->base, a->npages * page_size);
        a->used = false;
    }
    CHECK(procmaps_range_free((void *)region, REGION_BYTES), "the region is not empty at the end");
    memset(region_pages, 0, sizeof(region_pages));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    op_no = 0;
    snprintf(op_desc, sizeof(op_desc), "setup");
    trace("---- input of %zu bytes\n", size);
    areas[0] = (struct area){ .used = true, .owner = -1, .base = region,
                              .npages = REGION_BYTES / page_size, .pg = region_pages };
    for (int i = 1; i < NAREAS; i++)
        areas[i] = (struct area){ .pg = any_pages[i - 1] };
    unsigned cfg[NINST][2];
    for (int xi = 0; xi < NINST; xi++) {
        cfg[xi][0] = u8(&in);
        cfg[xi][1] = u8(&in);
    }
    for (int xi = 0; xi < NINST; xi++) {
        X(xi)->live = false;
        if (xi == 0 || !(cfg[xi][1] & 0x80))
            inst_create(xi, cfg[xi][0], cfg[xi][1]);
    }
    for (op_no = 1; in.n > 0 && op_no <= MAX_OPS; op_no++) {
        unsigned b = u8(&in);
        int xi = (int)(b >> 4) % NINST;
        if (!X(xi)->live)
            xi = 0;
        switch (b & 15) {
        case 0:
        case 14:
            do_range_op(xi, OP_MAP, &in);
            break;
        case 1:
            do_range_op(xi, OP_QUAR, &in);
            break;
        case 2:
            do_range_op(xi, OP_MARK, &in);
            break;
        case 3:
            do_range_op(xi, OP_PROT, &in);
            break;
        case 15:
            do_stale(xi, &in);
            break;
        case 4:
            do_range_op(xi, OP_DECOMMIT, &in);
            break;
        case 5:
            do_range_op(xi, OP_UNMAP, &in);
            break;
        case 6:
            do_anywhere(xi, &in);
            break;
        case 7:
            do_foreign(&in);
            break;
        case 8:
            do_fault(xi, &in);
            break;
        case 9:
            do_lookups(xi, &in);
            break;
        case 10:
            do_bad(xi, &in);
            break;
        case 11:
            do_recreate((int)(b >> 4) % NINST, &in);
            break;
        case 12:
            do_touch(xi, &in);
            break;
        default:
            do_check_all(xi, &in);
            break;
        }
    }
    reset();
    return 0;
}

/* ---- once per process ------------------------------------------------------- */

static void probe_kernel(void)
{
    void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    kernel_names = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p,
                         (unsigned long)page_size, (unsigned long)"probe") == 0;
    kernel_thp = madvise(p, page_size, MADV_HUGEPAGE) == 0;
    munmap(p, page_size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    tracing = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") != '0';
    probe_kernel();
    /* A region far below the kernel's mmap(NULL) placements and every
     * sanitizer's fixed ranges, 4 MiB before a 1 GiB boundary. */
#ifdef UNDER_TSAN
    static const uintptr_t gib[] = { 0x0000500000000, 0x0004000000000 };
#else
    static const uintptr_t gib[] = { 0x3e0000000000, 0x2f0000000000, 0x1f0000000000,
                                     0x0000500000000 };
#endif
    for (size_t i = 0; i < sizeof(gib) / sizeof(gib[0]) && !region; i++) {
        void *want = (void *)(gib[i] - REGION_LEAD);
        void *p = mmap(want, REGION_BYTES, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == want) {
            munmap(p, REGION_BYTES);
            region = (uintptr_t)want;
        } else if (p != MAP_FAILED) {
            munmap(p, REGION_BYTES);
        }
    }
    if (!region || page_size > 4096 * 1 || REGION_BYTES / page_size > MAX_REGION_PAGES) {
        fprintf(stderr, "mmapper fuzz: no free region (or page size %zu unsupported)\n",
                page_size);
        abort();
    }
    if (tracing)
        fprintf(stderr, "region %#" PRIxPTR ", names %d, thp %d\n", region, kernel_names,
                kernel_thp);
    return 0;
}
