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
 *
 * The files: fuzz/harness_internal.h lists them, one concern each.
 */
#include "config.h"

#include "harness.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "procmaps.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif

size_t fz_page_size;
uintptr_t fz_region;
bool fz_kernel_names, fz_kernel_thp;
static bool tracing;
static struct page region_pages[MAX_REGION_PAGES];
static struct page any_pages[NANY][ANY_MAX_PAGES];
struct area fz_areas[NAREAS];
struct inst fz_insts[NINST];
struct calls fz_expected;
struct page fz_snap[MAX_REGION_PAGES];
unsigned fz_op_no;
char fz_op_desc[256];

/* ---- failing ------------------------------------------------------------ */

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nmmapper fuzz: DIVERGENCE at call %u (%s): ", fz_op_no, fz_op_desc);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    __builtin_trap();
}

void fz_trace(const char *fmt, ...)
{
    if (!tracing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* ---- an input --------------------------------------------------------------- */

static void reset(void)
{
    snprintf(fz_op_desc, sizeof(fz_op_desc), "cleanup");
    for (int xi = 0; xi < NINST; xi++) {
        struct inst *x = fz_inst(xi);
        if (!x->live)
            continue;
        fz_clear_fault(x);
        int rc = mmapper_unmap(x->m, (void *)fz_region, REGION_BYTES);
        CHECK(rc == 0, "mapper %d: final unmap of the region: %d", xi, rc);
        for (int i = 1; i < NAREAS; i++) {
            struct area *a = &fz_areas[i];
            if (a->used && a->owner == xi) {
                rc = mmapper_unmap(x->m, (void *)a->base, a->npages * fz_page_size);
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
    munmap((void *)fz_region, REGION_BYTES);
    for (int i = 1; i < NAREAS; i++) {
        struct area *a = &fz_areas[i];
        if (a->used)
            munmap((void *)a->base, a->npages * fz_page_size);
        a->used = false;
    }
    CHECK(procmaps_range_free((void *)fz_region, REGION_BYTES),
          "the region is not empty at the end");
    memset(region_pages, 0, sizeof(region_pages));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    fz_op_no = 0;
    snprintf(fz_op_desc, sizeof(fz_op_desc), "setup");
    fz_trace("---- input of %zu bytes\n", size);
    fz_areas[0] = (struct area){ .used = true, .owner = -1, .base = fz_region,
                                 .npages = REGION_BYTES / fz_page_size, .pg = region_pages };
    for (int i = 1; i < NAREAS; i++)
        fz_areas[i] = (struct area){ .pg = any_pages[i - 1] };
    unsigned cfg[NINST][2];
    for (int xi = 0; xi < NINST; xi++) {
        cfg[xi][0] = fz_u8(&in);
        cfg[xi][1] = fz_u8(&in);
    }
    for (int xi = 0; xi < NINST; xi++) {
        fz_inst(xi)->live = false;
        if (xi == 0 || !(cfg[xi][1] & 0x80))
            fz_inst_create(xi, cfg[xi][0], cfg[xi][1]);
    }
    for (fz_op_no = 1; in.n > 0 && fz_op_no <= MAX_OPS; fz_op_no++) {
        unsigned b = fz_u8(&in);
        int xi = (int)(b >> 4) % NINST;
        if (!fz_inst(xi)->live)
            xi = 0;
        switch (b & 15) {
        case 0:
        case 14:
            fz_do_range_op(xi, OP_MAP, &in);
            break;
        case 1:
            fz_do_range_op(xi, OP_QUAR, &in);
            break;
        case 2:
            fz_do_range_op(xi, OP_MARK, &in);
            break;
        case 3:
            fz_do_range_op(xi, OP_PROT, &in);
            break;
        case 15:
            fz_do_stale(xi, &in);
            break;
        case 4:
            fz_do_range_op(xi, OP_DECOMMIT, &in);
            break;
        case 5:
            fz_do_range_op(xi, OP_UNMAP, &in);
            break;
        case 6:
            fz_do_anywhere(xi, &in);
            break;
        case 7:
            fz_do_foreign(&in);
            break;
        case 8:
            fz_do_fault(xi, &in);
            break;
        case 9:
            fz_do_lookups(xi, &in);
            break;
        case 10:
            fz_do_bad(xi, &in);
            break;
        case 11:
            fz_do_recreate((int)(b >> 4) % NINST, &in);
            break;
        case 12:
            fz_do_touch(xi, &in);
            break;
        default:
            fz_do_check_all(xi, &in);
            break;
        }
    }
    reset();
    return 0;
}

/* ---- once per process ------------------------------------------------------- */

static void probe_kernel(void)
{
    void *p = mmap(NULL, fz_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    fz_kernel_names = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p,
                            (unsigned long)fz_page_size, (unsigned long)"probe") == 0;
    fz_kernel_thp = madvise(p, fz_page_size, MADV_HUGEPAGE) == 0;
    munmap(p, fz_page_size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_page_size = (size_t)sysconf(_SC_PAGESIZE);
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
    for (size_t i = 0; i < sizeof(gib) / sizeof(gib[0]) && !fz_region; i++) {
        void *want = (void *)(gib[i] - REGION_LEAD);
        void *p = mmap(want, REGION_BYTES, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == want) {
            munmap(p, REGION_BYTES);
            fz_region = (uintptr_t)want;
        } else if (p != MAP_FAILED) {
            munmap(p, REGION_BYTES);
        }
    }
    if (!fz_region || fz_page_size > 4096 * 1 || REGION_BYTES / fz_page_size > MAX_REGION_PAGES) {
        fprintf(stderr, "mmapper fuzz: no free region (or page size %zu unsupported)\n",
                fz_page_size);
        abort();
    }
    if (tracing)
        fprintf(stderr, "region %#" PRIxPTR ", names %d, thp %d\n", fz_region, fz_kernel_names,
                fz_kernel_thp);
    return 0;
}
