/*
 * The sequential model: each mapper's recorded state of every chunk, the
 * pages (holder, protection, name, data tag), the live slab counts, and the
 * exact system calls of a transition as src/walk.c makes them; after a
 * fault that fired, fz_adopt checks the header's rule instead and takes the
 * library's record into the model.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "test_os.h"

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
const char *const fz_op_names[NOPS_RANGE] = { "ensure_mapped", "quarantine", "mark_as_mapped",
                                               "protect", "decommit", "unmap" };

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

unsigned fz_model_slabs(int xi)
{
    return fz_inst(xi)->sc.slabs;
}

void fz_set_st(struct area *a, int xi, size_t c, unsigned st)
{
    struct inst *x = fz_inst(xi);
    size_t n = fz_ppc(x), p0 = c * n;
    unsigned old = a->pg[p0].st[xi];
    x->cnt[old]--;
    x->cnt[st]++;
    if ((old == U) != (st == U))
        slab_adjust(x, ((a->base >> x->shift) + c) >> SLAB_LOG, st == U ? -1 : 1);
    for (size_t p = p0; p < p0 + n; p++)
        a->pg[p].st[xi] = (uint8_t)st;
}

/* Pages of chunks [c, c + n) of mapper xi. */
void fz_set_pages(struct area *a, int xi, size_t c, size_t n, int owner, int perm, int name)
{
    size_t k = fz_ppc(fz_inst(xi));
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

struct area *fz_area_of(uintptr_t addr, size_t *page)
{
    for (int i = 0; i < NAREAS; i++) {
        struct area *a = &fz_areas[i];
        if (a->used && addr >= a->base && addr - a->base < a->npages * fz_page_size) {
            *page = (addr - a->base) / fz_page_size;
            return a;
        }
    }
    return NULL;
}

/* What mapper xi's record says of addr, by the model. */
unsigned fz_model_state(int xi, uintptr_t addr)
{
    size_t p;
    struct area *a = fz_area_of(addr, &p);
    return a ? a->pg[p].st[xi] : U;
}

static int prot_bits(int perm)
{
    return perm == PM_RWX ? PROT_READ | PROT_WRITE | PROT_EXEC
                          : perm == PM_RW ? PROT_READ | PROT_WRITE : PROT_NONE;
}

void fz_expect(int kind, uintptr_t addr, size_t len, int arg, int flags, bool any)
{
    if (fz_expected.n < LOG_MAX)
        fz_expected.c[fz_expected.n] = (struct call){ .kind = kind, .addr = addr, .len = len,
                                                      .arg = arg, .flags = flags, .any_addr = any };
    fz_expected.n++;
}

/* ---- the exact model of one transition --------------------------------- */

static bool names_work(const struct inst *x)
{
    return fz_kernel_names && (x->real_os || !x->names_unsup);
}

static bool thp_works(const struct inst *x)
{
    return fz_kernel_thp && (x->real_os || !x->huge_unsup);
}

void fz_model_attrs(struct opctx *k, size_t c, size_t n)
{
    struct inst *x = fz_inst(k->xi);
    const struct mmapper_map_opts *o = k->o;
    uintptr_t addr = fz_chunk_at(k->a, x, c);
    size_t len = n * x->chunk;
    if (!o)
        return;
    if (o->huge_page != MMAPPER_HUGE_PAGE_DEFAULT && !x->huge_dead) {
        fz_expect(TOS_MADVISE, addr, len,
                  o->huge_page == MMAPPER_HUGE_PAGE_TRANSPARENT ? MADV_HUGEPAGE : MADV_NOHUGEPAGE,
                  0, false);
        if (!thp_works(x))
            x->huge_dead = true;
    }
    if (o->name && !x->disable_names && !x->names_dead) {
        fz_expect(TOS_SET_NAME, addr, len, 0, 0, false);
        if (names_work(x))
            fz_set_pages(k->a, k->xi, c, n, -1, -1, k->name_id);
        else
            x->names_dead = true;
    }
}

/* One run: chunks [c, c + n) taking action act.  0 or the error. */
static int model_run(struct opctx *k, size_t c, size_t n, int act)
{
    int xi = k->xi;
    struct inst *x = fz_inst(xi);
    struct area *a = k->a;
    uintptr_t addr = fz_chunk_at(a, x, c);
    size_t len = n * x->chunk, kp = fz_ppc(x);
    switch (act) {
    case A_FRESH:
    case A_RESERVE: {
        bool fresh = act == A_FRESH;
        fz_expect(TOS_MMAP, addr, len, fresh ? prot_bits(k->perm) : PROT_NONE,
                  MAP_FIXED_NOREPLACE | (fresh ? 0 : MAP_NORESERVE), false);
        if (occupied(a, c * kp, n * kp)) {
            if (x->ignore_noreplace && !x->real_os)   /* placed elsewhere, given back */
                fz_expect(TOS_MUNMAP, 0, len, 0, 0, true);
            return -EEXIST;
        }
        fz_set_pages(a, xi, c, n, xi + 1, fresh ? k->perm : PM_NONE, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            fz_set_st(a, xi, i, op_target[k->op]);
        }
        fz_model_attrs(k, c, n);
        return 0;
    }
    case A_COMMIT:
        fz_model_attrs(k, c, n);
        fz_expect(TOS_MPROTECT, addr, len, prot_bits(k->perm), 0, false);
        fz_set_pages(a, xi, c, n, -1, k->perm, -1);
        for (size_t i = c; i < c + n; i++) {
            if (fz_st_of(a, xi, i) != P)
                a->pg[i * kp].tag = 0;
            fz_set_st(a, xi, i, M);
        }
        return 0;
    case A_PROTECT:
        fz_expect(TOS_MPROTECT, addr, len, PROT_NONE, 0, false);
        fz_set_pages(a, xi, c, n, -1, PM_NONE, -1);
        for (size_t i = c; i < c + n; i++)
            fz_set_st(a, xi, i, P);
        return 0;
    case A_DECOMMIT:
        fz_expect(TOS_MMAP, addr, len, PROT_NONE, MAP_FIXED | MAP_NORESERVE, false);
        fz_set_pages(a, xi, c, n, -1, PM_NONE, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            fz_set_st(a, xi, i, Q);
        }
        return 0;
    case A_UNMAP:
        fz_expect(TOS_MUNMAP, addr, len, 0, 0, false);
        fz_set_pages(a, xi, c, n, OWN_FREE, PM_ABSENT, NAME_NONE);
        for (size_t i = c; i < c + n; i++) {
            a->pg[i * kp].tag = 0;
            fz_set_st(a, xi, i, U);
        }
        return 0;
    case A_RECORD:
        /* The harness made the memory read-write itself beforehand. */
        for (size_t i = c; i < c + n; i++)
            fz_set_st(a, xi, i, M);
        return 0;
    default:
        fz_fail("model: action %d", act);
    }
}

/*
 * Chunks [cf, ce) of area a, window by window as src/walk.c cuts them: the
 * first window runs 32 slabs from the range's first slab, each next one 32
 * slabs on.  An illegal chunk fails its window before any system call;
 * earlier windows stay done.
 */
int fz_model_op(struct opctx *k, size_t cf, size_t ce)
{
    struct inst *x = fz_inst(k->xi);
    uintptr_t base_chunk = k->a->base >> x->shift;
    for (size_t c = cf; c < ce;) {
        uintptr_t abs = base_chunk + c;
        uintptr_t wend = (((abs >> SLAB_LOG) + WINDOW_SLABS) << SLAB_LOG) - base_chunk;
        size_t we = wend < ce ? wend : ce;
        for (size_t i = c; i < we; i++)
            if (act_table[k->op][fz_st_of(k->a, k->xi, i)] == A_ILLEGAL)
                return -EINVAL;
        for (size_t i = c; i < we;) {
            int act = act_table[k->op][fz_st_of(k->a, k->xi, i)];
            if (act == A_NONE) {
                i++;
                continue;
            }
            size_t r = i;
            while (r < we && act_table[k->op][fz_st_of(k->a, k->xi, r)] == act)
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

/* ---- generic checks after a fault fired --------------------------------- */

/*
 * The header: "When a system call fails, the chunks that earlier system
 * calls of the same call moved keep their new state, the others keep their
 * old one, and the kernel's mappings agree with the recorded state either
 * way" (decommit: a chunk of the failed run may be Unmapped, never Mapped
 * over a hole).  Takes the library's record into the model, from the
 * snapshot of the range taken before the call.
 */
void fz_adopt(struct opctx *k, size_t cf, size_t ce, size_t p0, int rc)
{
    int xi = k->xi;
    struct inst *x = fz_inst(xi);
    struct area *a = k->a;
    size_t kp = fz_ppc(x);
    bool seen_kept = false;
    /* Undo the exact model's slab counts (its gauges the caller restored). */
    for (size_t c = cf; c < ce; c++) {
        unsigned was = fz_snap[(c - cf) * kp].st[xi], model = fz_st_of(a, xi, c);
        if ((was == U) != (model == U))
            slab_adjust(x, ((a->base >> x->shift) + c) >> SLAB_LOG, was == U ? -1 : 1);
    }
    memcpy(&a->pg[p0], fz_snap, (ce - cf) * kp * sizeof(struct page));
    /* fz_snap also restored the gauges' basis: recount below from old states. */
    for (size_t c = cf; c < ce; c++) {
        unsigned old = fz_st_of(a, xi, c);
        unsigned now = mmapper_state(x->m, (void *)fz_chunk_at(a, x, c));
        int act = act_table[k->op][old];
        unsigned tgt = op_target[k->op];
        if (act == A_NONE || act == A_ILLEGAL) {
            CHECK(now == old, "mapper %d: chunk %#" PRIxPTR " had nothing to do but went %u -> %u",
                  xi, fz_chunk_at(a, x, c), old, now);
            continue;
        }
        bool moved = now == tgt, kept = now == old,
             lost = k->op == OP_DECOMMIT && now == U && x->lo.holes;
        CHECK(moved || kept || lost, "mapper %d: chunk %#" PRIxPTR " went %u -> %u under %s", xi,
              fz_chunk_at(a, x, c), old, now, fz_op_names[k->op]);
        CHECK(!(seen_kept && !kept),
              "mapper %d: chunk %#" PRIxPTR " moved (%u -> %u) after an earlier chunk kept its "
              "state: not a prefix",
              xi, fz_chunk_at(a, x, c), old, now);
        CHECK(rc != 0 || moved, "mapper %d: returned 0 but chunk %#" PRIxPTR " went %u -> %u", xi,
              fz_chunk_at(a, x, c), old, now);
        if (kept) {
            seen_kept = true;
            if (a->pg[c * kp].owner == xi + 1)
                fz_set_pages(a, xi, c, 1, -1, -1, NAME_UNKNOWN);   /* attributes may have applied */
            continue;
        }
        if (now == U) {
            fz_set_pages(a, xi, c, 1, OWN_FREE, PM_ABSENT, NAME_NONE);
            a->pg[c * kp].tag = 0;
        } else {
            int perm = now == M ? k->perm : PM_NONE;
            fz_set_pages(a, xi, c, 1, xi + 1, perm, NAME_UNKNOWN);
            if (!(now == M && old == P) && now != P)
                a->pg[c * kp].tag = 0;
        }
        fz_set_st(a, xi, c, now);   /* counts from the restored (old) state */
    }
}

