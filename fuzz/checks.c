/*
 * The checks after a call, against the model: the system calls made, every
 * mapper's record of the range, the kernel's view (/proc/self/maps), the
 * data kept, and mmapper_get_stats.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "procmaps.h"
#include "test_os.h"

void fz_compare_calls(int xi)
{
    struct inst *x = fz_inst(xi);
    if (x->real_os) {
        uint64_t want[TOS_NCALLS] = { 0 };
        for (unsigned i = 0; i < fz_expected.n && i < LOG_MAX; i++)
            want[fz_expected.c[i].kind]++;
        for (int kd = 0; kd < TOS_NCALLS; kd++)
            x->calls[kd] += want[kd];
        return;   /* compared with the counters by fz_check_stats */
    }
    const struct calls *got = x->lo.logp;
    for (unsigned i = 0; i < got->n && i < fz_expected.n && i < LOG_MAX; i++) {
        const struct call *g = &got->c[i], *w = &fz_expected.c[i];
        CHECK(g->kind == w->kind && (w->any_addr || g->addr == w->addr) && g->len == w->len &&
                  g->arg == w->arg && g->flags == w->flags,
              "mapper %d: system call %u is %s(%#" PRIxPTR ", %#zx, %#x, %#x), model says "
              "%s(%#" PRIxPTR ", %#zx, %#x, %#x)",
              xi, i, fz_kind_name(g->kind), g->addr, g->len, g->arg, g->flags,
              fz_kind_name(w->kind), w->addr, w->len, w->arg, w->flags);
    }
    CHECK(got->n == fz_expected.n, "mapper %d made %u system calls, model says %u", xi, got->n,
          fz_expected.n);
}

void fz_check_stats(int xi)
{
    struct inst *x = fz_inst(xi);
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
              got[k], fz_kind_name(k), x->real_os ? "model says" : "the OS layer saw", want[k]);
    unsigned slabs = fz_model_slabs(xi);
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
void fz_check_states(struct area *a, size_t p0, size_t np)
{
    for (int xi = 0; xi < NINST; xi++) {
        struct inst *x = fz_inst(xi);
        if (!x->live || !fz_usable(a, x))
            continue;
        size_t k = fz_ppc(x);
        size_t c0 = p0 / k, c1 = (p0 + np + k - 1) / k;
        for (size_t c = c0; c < c1; c++) {
            uintptr_t addr = fz_chunk_at(a, x, c);
            unsigned want = fz_st_of(a, xi, c);
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
void fz_check_kernel(struct area *a, size_t p0, size_t np)
{
    if (a != &fz_areas[0]) {
        /* Free pages near the kernel's mmap(NULL) placements: asked before
         * anything here allocates (procmaps_read does), which could take
         * them.  mincore fails with ENOMEM on an unmapped page. */
        for (size_t p = p0; p < p0 + np; p++) {
            unsigned char v;
            void *addr = (void *)(a->base + p * fz_page_size);
            if (a->pg[p].owner == OWN_FREE)
                CHECK(mincore(addr, fz_page_size, &v) != 0 && errno == ENOMEM,
                      "page %p should be free, the kernel has it mapped", addr);
        }
    }
    struct procmaps pm;
    CHECK(procmaps_read(&pm) == 0, "cannot read /proc/self/maps");
    for (size_t p = p0; p < p0 + np;) {
        const struct page *g = &a->pg[p];
        uintptr_t addr = a->base + p * fz_page_size;
        const struct procmaps_region *r = procmaps_find(&pm, addr);
        if (g->owner == OWN_FREE) {
            if (r && a == &fz_areas[0])
                fz_fail("page %#" PRIxPTR " should be free, kernel has %s %s", addr, r->perms,
                        r->name);
            p++;
            continue;
        }
        if (!r)
            fz_fail("page %#" PRIxPTR " (owner %u) should be %s, kernel has nothing", addr,
                    g->owner, perm_str(g->perm));
        if (strcmp(r->perms, perm_str(g->perm)))
            fz_fail("page %#" PRIxPTR " (owner %u) should be %s, kernel has %s", addr, g->owner,
                    perm_str(g->perm), r->perms);
        if (g->name != NAME_UNKNOWN) {
            char want[96] = "";
            if (g->name != NAME_NONE)
                snprintf(want, sizeof(want), "[anon:%s]", fz_good_names[g->name]);
            if (strcmp(r->name, want))
                fz_fail("page %#" PRIxPTR " (owner %u) should be named '%s', kernel has '%s'", addr,
                        g->owner, want, r->name);
        }
        /* The rest of this VMA, while the model expects the same. */
        size_t q = p + 1;
        while (q < p0 + np && a->base + q * fz_page_size < r->end && a->pg[q].owner != OWN_FREE &&
               a->pg[q].perm == g->perm && a->pg[q].name == g->name)
            q++;
        p = q;
    }
    procmaps_free(&pm);
}

/* Data in the Mapped chunks of mapper xi among [c0, c1): the first word. */
void fz_check_data(struct area *a, int xi, size_t c0, size_t c1)
{
    struct inst *x = fz_inst(xi);
    size_t k = fz_ppc(x);
    unsigned zero_checks = 0;
    for (size_t c = c0; c < c1; c++) {
        const struct page *g = &a->pg[c * k];
        if (g->st[xi] != M || (!g->tag && (zero_checks++ >= 4 && c != c1 - 1)))
            continue;
        uint64_t v = *(volatile uint64_t *)fz_chunk_at(a, x, c);
        CHECK(v == g->tag, "mapper %d: chunk %#" PRIxPTR " holds %#" PRIx64 ", model says %#" PRIx64,
              xi, fz_chunk_at(a, x, c), v, g->tag);
    }
}

