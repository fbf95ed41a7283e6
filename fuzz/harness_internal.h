/*
 * Shared declarations of the libFuzzer harness's files; fuzz/harness.c says
 * what the harness does as a whole.
 *
 *   harness.c      the driver: shared state, divergence reports, an input
 *                  call by call, the setup once per process
 *   input.c        the input bytes decoded: ranges, options, addresses
 *   model.c        the sequential model: each mapper's states, the pages,
 *                  the expected system calls of a transition; after a
 *                  fault, the header's rule checked and the library's
 *                  record taken in
 *   mappers.c      the mappers under test: creation, destruction, the
 *                  logging OS layer over test_os and its faults
 *   checks.c       the checks after a call: system calls, states, the
 *                  kernel's view, data, stats
 *   ops_mapping.c  the calls that change memory
 *   ops_query.c    the calls that must change nothing: lookups, bad
 *                  arguments, full comparisons
 *
 * Names shared between these files start with fz_.
 */
#ifndef MMAPPER_FUZZ_HARNESS_INTERNAL_H
#define MMAPPER_FUZZ_HARNESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "mmapper.h"
#include "test_os.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
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

/* The names of the range operations (model.c). */
extern const char *const fz_op_names[NOPS_RANGE];
/* VMA names the input may choose, index 0 is none (input.c). */
extern const char *const fz_good_names[];

struct page {
    uint8_t owner;        /* OWN_FREE, instance + 1, OWN_FOREIGN */
    uint8_t perm;         /* PM_* */
    uint8_t name;         /* index into fz_good_names, NAME_NONE or NAME_UNKNOWN */
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

/* What is left of the input. */
struct input {
    const uint8_t *p;
    size_t n;
};

/* A range operation of one mapper on one area, for the model. */
struct opctx {
    int xi;
    struct area *a;
    int op;
    const struct mmapper_map_opts *o;
    int name_id;
    int perm;              /* PM_RW or PM_RWX: what a mapping gets */
};

/* A range decoded from the input. */
struct range {
    struct area *a;
    size_t cf, ce;          /* chunks of the mapper, in the area */
    uintptr_t start;
    size_t bytes;
};

/* Shared state (harness.c). */
extern size_t fz_page_size;
extern uintptr_t fz_region;
extern bool fz_kernel_names, fz_kernel_thp;
extern struct area fz_areas[NAREAS];
extern struct inst fz_insts[NINST];
extern struct calls fz_expected;               /* the model's system calls of a call */
extern struct page fz_snap[MAX_REGION_PAGES];  /* the pages of a range before the call */
extern unsigned fz_op_no;
extern char fz_op_desc[256];

/* Divergences and tracing (harness.c). */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fz_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            fz_fail(__VA_ARGS__);                                                               \
    } while (0)

/* Model helpers. */

static inline struct inst *fz_inst(int xi)
{
    return &fz_insts[xi];
}

static inline size_t fz_ppc(const struct inst *x)   /* pages per chunk */
{
    return x->ppc;
}

/* Whether x's chunks tile the area (an anywhere area of larger chunks). */
static inline bool fz_usable(const struct area *a, const struct inst *x)
{
    return a->owner == -1 || x->shift <= a->owner_shift;
}

static inline size_t fz_area_chunks(const struct area *a, const struct inst *x)
{
    return a->npages * fz_page_size / x->chunk;
}

static inline uintptr_t fz_chunk_at(const struct area *a, const struct inst *x, size_t c)
{
    return a->base + c * x->chunk;
}

static inline unsigned fz_st_of(const struct area *a, int xi, size_t c)
{
    return a->pg[c * fz_ppc(fz_inst(xi))].st[xi];
}

/* input.c */
unsigned fz_u8(struct input *in);
unsigned fz_u16(struct input *in);
void fz_decode_range(int xi, int op, struct input *in, struct range *r);
const struct mmapper_map_opts *fz_decode_opts(unsigned b, struct mmapper_map_opts *o,
                                              int *name_id, int *perm, bool *invalid);
uintptr_t fz_decode_addr(struct input *in);

/* model.c */
unsigned fz_model_slabs(int xi);
void fz_set_st(struct area *a, int xi, size_t c, unsigned st);
void fz_set_pages(struct area *a, int xi, size_t c, size_t n, int owner, int perm, int name);
struct area *fz_area_of(uintptr_t addr, size_t *page);
unsigned fz_model_state(int xi, uintptr_t addr);
void fz_expect(int kind, uintptr_t addr, size_t len, int arg, int flags, bool any);
void fz_model_attrs(struct opctx *k, size_t c, size_t n);
int fz_model_op(struct opctx *k, size_t cf, size_t ce);
void fz_adopt(struct opctx *k, size_t cf, size_t ce, size_t p0, int rc);

/* mappers.c */
const char *fz_kind_name(int k);
void fz_latch_from_log(struct inst *x);
void fz_clear_fault(struct inst *x);
void fz_do_fault(int xi, struct input *in);
void fz_inst_create(int xi, unsigned c1, unsigned c2);
void fz_inst_destroy_keep(int xi);
void fz_do_recreate(int xi, struct input *in);

/* checks.c */
void fz_compare_calls(int xi);
void fz_check_stats(int xi);
void fz_check_states(struct area *a, size_t p0, size_t np);
void fz_check_kernel(struct area *a, size_t p0, size_t np);
void fz_check_data(struct area *a, int xi, size_t c0, size_t c1);

/* ops_mapping.c */
void fz_do_range_op(int xi, int op, struct input *in);
void fz_do_anywhere(int xi, struct input *in);
void fz_do_stale(int xi, struct input *in);
void fz_do_foreign(struct input *in);
void fz_do_touch(int xi, struct input *in);

/* ops_query.c */
void fz_do_lookups(int xi, struct input *in);
void fz_do_bad(int xi, struct input *in);
void fz_do_check_all(int xi, struct input *in);

#endif
