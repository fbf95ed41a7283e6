/*
 * The calls that change memory: transitions over ranges (mark_as_mapped
 * after the harness maps the chunks itself), quarantine_anywhere, stale
 * records, the harness's own mappings in the region, data written.  Each
 * checks the outcome against the model.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "test_os.h"

/* The caller maps chunks [cf, ce) read-write itself before marking them.
 * False if memory of another mapper is in the way (the harness never
 * touches a mapper's memory). */
static bool prepare_mark(int xi, struct area *a, size_t cf, size_t ce)
{
    struct inst *x = fz_inst(xi);
    size_t kp = fz_ppc(x);
    for (size_t p = cf * kp; p < ce * kp; p++) {
        unsigned o = a->pg[p].owner;
        if (o != OWN_FREE && o != OWN_FOREIGN && o != (unsigned)xi + 1)
            return false;
    }
    for (size_t c = cf; c < ce; c++) {
        unsigned st = fz_st_of(a, xi, c);
        void *addr = (void *)fz_chunk_at(a, x, c);
        if (st == M)
            continue;
        if (st == U) {
            munmap(addr, x->chunk);   /* foreign pages of the harness, if any */
            void *p = mmap(addr, x->chunk, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            CHECK(p == addr, "the harness's own mmap at %p: %s", addr, strerror(errno));
            fz_set_pages(a, xi, c, 1, xi + 1, PM_RW, NAME_NONE);
            a->pg[c * kp].tag = 0;
        } else {
            CHECK(mprotect(addr, x->chunk, PROT_READ | PROT_WRITE) == 0, "mprotect %p", addr);
            fz_set_pages(a, xi, c, 1, -1, PM_RW, -1);
            if (st == Q)
                a->pg[c * kp].tag = 0;
        }
    }
    return true;
}

static void anywhere_hole_rule(int xi, struct area *a);

void fz_do_range_op(int xi, int op, struct input *in)
{
    struct inst *x = fz_inst(xi);
    struct range r;
    fz_decode_range(xi, op, in, &r);
    struct mmapper_map_opts obuf;
    int name_id = NAME_NONE, perm = PM_RW;
    bool invalid = false;
    const struct mmapper_map_opts *o = NULL;
    if (op == OP_MAP || op == OP_QUAR)
        o = fz_decode_opts(fz_u8(in), &obuf, &name_id, &perm, &invalid);
    snprintf(fz_op_desc, sizeof(fz_op_desc),
             "mapper %d %s [%#" PRIxPTR ", +%#zx) chunks [%zu, %zu) of area %d, opts %s%s%s%s",
             xi, fz_op_names[op], r.start, r.bytes, r.cf, r.ce, (int)(r.a - fz_areas),
             o ? "" : "NULL", o && o->prot ? "rwx " : "",
             o && o->huge_page ? (o->huge_page == 1 ? "thp " : "nothp ") : "",
             o && o->name ? o->name : "");
    fz_trace("%u: %s%s%s\n", fz_op_no, fz_op_desc, invalid ? " (invalid)" : "",
             x->fault_armed ? " (fault armed)" : "");
    if (op == OP_MARK && !prepare_mark(xi, r.a, r.cf, r.ce)) {
        fz_trace("   skipped: another mapper's memory\n");
        fz_clear_fault(x);
        return;
    }

    size_t kp = fz_ppc(x), p0 = r.cf * kp, np = (r.ce - r.cf) * kp;
    memcpy(fz_snap, &r.a->pg[p0], np * sizeof(struct page));
    int64_t cnt_before[4];
    memcpy(cnt_before, x->cnt, sizeof(cnt_before));
    bool names_dead = x->names_dead, huge_dead = x->huge_dead;
    uint64_t faults0 = x->real_os ? 0 : atomic_load(&x->tos.faults);
    int inj = x->fault_errno;
    x->lo.logp->n = 0;
    x->lo.holes = 0;
    fz_expected.n = 0;

    struct opctx k = { .xi = xi, .a = r.a, .op = op, .o = o, .name_id = name_id, .perm = perm };
    int want = invalid ? -EINVAL : fz_model_op(&k, r.cf, r.ce);
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
    fz_clear_fault(x);
    fz_trace("   -> %d (model %d)%s, %u system calls\n", rc, want, fired ? " fault fired" : "",
             x->lo.logp->n);

    if (!fired) {
        CHECK(rc == want, "returned %d (%s), model says %d (%s)", rc, mmapper_strerror(rc), want,
              mmapper_strerror(want));
        fz_compare_calls(xi);
    } else {
        /* Start again from the snapshot and the library's record. */
        memcpy(x->cnt, cnt_before, sizeof(cnt_before));
        x->names_dead = names_dead;
        x->huge_dead = huge_dead;
        fz_latch_from_log(x);
        CHECK(rc == 0 || rc == -inj || rc == -EEXIST || rc == want,
              "returned %d (%s) after an injected %s (model without it: %d)", rc,
              mmapper_strerror(rc), mmapper_strerror(-inj), want);
        fz_adopt(&k, r.cf, r.ce, p0, rc);
    }
    fz_check_states(r.a, p0, np);
    fz_check_kernel(r.a, p0, np);
    fz_check_data(r.a, xi, r.cf, r.ce);
    for (int yi = 0; yi < NINST; yi++)
        if (fz_inst(yi)->live)
            fz_check_stats(yi);
    if (r.a != &fz_areas[0])
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
    struct inst *x = fz_inst(owner);
    size_t nch = fz_area_chunks(a, x);
    bool hole = false;
    for (size_t c = 0; c < nch && !hole; c++)
        hole = fz_st_of(a, owner, c) == U;
    if (!hole)
        return;
    fz_trace("   area %d has a hole: unmapped whole\n", (int)(a - fz_areas));
    fz_clear_fault(x);
    x->lo.logp->n = 0;
    fz_expected.n = 0;
    struct opctx k = { .xi = owner, .a = a, .op = OP_UNMAP, .perm = PM_RW };
    CHECK(fz_model_op(&k, 0, nch) == 0, "model unmap of an area");
    int rc = mmapper_unmap(x->m, (void *)a->base, a->npages * fz_page_size);
    CHECK(rc == 0, "unmap of area %d: %d", (int)(a - fz_areas), rc);
    fz_compare_calls(owner);
    fz_check_kernel(a, 0, a->npages);
    a->used = false;
}

void fz_do_anywhere(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned b = fz_u8(in);
    size_t n = 1 + b % ANY_MAX_CHUNKS, bytes = n * x->chunk;
    struct mmapper_map_opts obuf;
    int name_id, perm;
    bool invalid;
    const struct mmapper_map_opts *o = fz_decode_opts(fz_u8(in), &obuf, &name_id, &perm, &invalid);
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d quarantine_anywhere(%zu chunks)%s", xi, n,
             invalid ? " invalid opts" : "");
    fz_trace("%u: %s%s\n", fz_op_no, fz_op_desc, x->fault_armed ? " (fault armed)" : "");
    uint64_t faults0 = x->real_os ? 0 : atomic_load(&x->tos.faults);
    int inj = x->fault_errno;
    x->lo.logp->n = 0;
    fz_expected.n = 0;
    int64_t cnt_before[4];
    memcpy(cnt_before, x->cnt, sizeof(cnt_before));
    void *p = NULL;
    int rc = mmapper_quarantine_anywhere(x->m, bytes, o, &p);
    bool fired = !x->real_os && atomic_load(&x->tos.faults) != faults0;
    fz_clear_fault(x);
    fz_trace("   -> %d at %p%s\n", rc, p, fired ? " fault fired" : "");
    if (fired)
        fz_latch_from_log(x);
    if (invalid) {
        CHECK(rc == -EINVAL, "returned %d with invalid options", rc);
        fz_compare_calls(xi);
        fz_check_stats(xi);
        return;
    }
    size_t pad = x->chunk > fz_page_size ? x->chunk - fz_page_size : 0;
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
                    fz_trace("   giving back the leaked [%#" PRIxPTR ", %#" PRIxPTR ")\n",
                             piece[j][0], piece[j][1]);
                    munmap((void *)piece[j][0], piece[j][1] - piece[j][0]);
                }
        }
        memcpy(x->cnt, cnt_before, sizeof(cnt_before));
        fz_check_stats(xi);
        return;
    }
    if (!fired) {
        /* One mmap, head and tail trims, attributes. */
        CHECK(x->real_os || (x->lo.logp->n >= 1 && x->lo.logp->c[0].kind == TOS_MMAP),
              "no mmap first");
        uintptr_t got = x->real_os ? (uintptr_t)p : x->lo.logp->c[0].out;
        fz_expect(TOS_MMAP, 0, bytes + pad, PROT_NONE, MAP_NORESERVE, false);
        if (!x->real_os) {
            size_t head = (uintptr_t)p - got, tail = pad - head;
            if (head)
                fz_expect(TOS_MUNMAP, got, head, 0, 0, false);
            if (tail)
                fz_expect(TOS_MUNMAP, (uintptr_t)p + bytes, tail, 0, 0, false);
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
        if (!fz_areas[i].used)
            a = &fz_areas[i];
    struct area tmp_area;
    static struct page tmp_pages[ANY_MAX_PAGES];
    bool keep = a != NULL;
    if (!a) {
        a = &tmp_area;
        a->pg = tmp_pages;
    }
    size_t np = bytes / fz_page_size;
    memset(a->pg, 0, np * sizeof(struct page));
    a->base = (uintptr_t)p;
    a->npages = np;
    a->owner = xi;
    a->owner_shift = x->shift;
    a->used = true;
    CHECK(!fz_area_of(a->base, &(size_t){ 0 }) || fz_area_of(a->base, &(size_t){ 0 }) == a,
          "reservation %p overlaps an area", p);
    struct opctx k = { .xi = xi, .a = a, .op = OP_QUAR, .o = o, .name_id = name_id, .perm = perm };
    fz_set_pages(a, xi, 0, n, xi + 1, PM_NONE, fired ? NAME_UNKNOWN : NAME_NONE);
    for (size_t c = 0; c < n; c++)
        fz_set_st(a, xi, c, Q);
    if (!fired) {
        fz_model_attrs(&k, 0, n);
        fz_compare_calls(xi);
    }
    fz_check_states(a, 0, np);
    fz_check_kernel(a, 0, np);
    if (keep)
        fz_check_stats(xi);   /* (fz_model_slabs sees only fz_areas[]) */
    else {
        x->lo.logp->n = 0;
        fz_expected.n = 0;
        k.op = OP_UNMAP;
        fz_model_op(&k, 0, n);
        CHECK(mmapper_unmap(x->m, p, bytes) == 0, "unmap of a reservation");
        fz_compare_calls(xi);
        fz_check_kernel(a, 0, np);
        fz_check_stats(xi);
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
void fz_do_stale(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned b = fz_u8(in);
    size_t n = 1 + b % 8, m = 1 + (b >> 3) % 8, pad = x->chunk - fz_page_size;
    size_t len = n * x->chunk;
    snprintf(fz_op_desc, sizeof(fz_op_desc),
             "mapper %d: %zu chunks marked, unmapped behind its back, "
             "then quarantine_anywhere(%zu chunks)", xi, n, m);
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
    fz_clear_fault(x);
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
    fz_trace("   -> %d at %p (reservation at %#" PRIxPTR ", stale [%#" PRIxPTR
             ", %#" PRIxPTR "))\n",
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
            for (uintptr_t a = got; a < got + bytes + pad; a += fz_page_size) {
                unsigned char v;
                CHECK(mincore((void *)a, fz_page_size, &v) != 0 && errno == ENOMEM,
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
        fz_trace("   the stale range was taken: mapper re-created\n");
        if (again != MAP_FAILED)
            munmap(again, len);
        int keep_cfg = (x->shift - 12) | x->block_signals << 3 | x->disable_names << 4 |
                       x->real_os << 5 | x->names_unsup << 6 | x->huge_unsup << 7;
        fz_inst_destroy_keep(xi);
        fz_inst_create(xi, (unsigned)keep_cfg, x->ignore_noreplace);
        return;
    }
    CHECK(mmapper_unmap(x->m, (void *)s, len) == 0, "unmap of the stale range");
    CHECK(mincore((void *)s, fz_page_size, &(unsigned char){ 0 }) != 0 && errno == ENOMEM,
          "the stale range is still mapped");
    if (x->real_os)
        x->calls[TOS_MUNMAP]++;
    fz_check_stats(xi);
}

/* The harness's own mappings in the region: foreign memory to every mapper. */
void fz_do_foreign(struct input *in)
{
    struct area *a = &fz_areas[0];
    unsigned b = fz_u8(in);
    size_t p0 = fz_u16(in) % a->npages, np = 1 + b % 32;
    if (np > a->npages - p0)
        np = a->npages - p0;
    unsigned sub = b >> 5 & 3;
    snprintf(fz_op_desc, sizeof(fz_op_desc), "harness %s pages [%zu, %zu)",
             sub == 0 || sub == 3 ? "maps" : sub == 1 ? "unmaps" : "protects", p0, p0 + np);
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
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
        void *addr = (void *)(a->base + p * fz_page_size);
        size_t len = (q - p) * fz_page_size;
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
    fz_check_kernel(a, p0, np);
}

void fz_do_touch(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    struct range r;
    fz_decode_range(xi, OP_MAP, in, &r);
    unsigned seed = fz_u8(in);
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d writes chunks [%zu, %zu) of area %d", xi,
             r.cf, r.ce, (int)(r.a - fz_areas));
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
    size_t kp = fz_ppc(x);
    unsigned written = 0;
    for (size_t c = r.cf; c < r.ce && written < 8; c++) {
        struct page *g = &r.a->pg[c * kp];
        if (g->st[xi] != M)
            continue;
        CHECK(mmapper_is_mapped(x->m, (void *)fz_chunk_at(r.a, x, c)), "is_mapped before a write");
        g->tag = ((uint64_t)fz_op_no << 40 | (uint64_t)seed << 32 | c) | 1;
        *(volatile uint64_t *)fz_chunk_at(r.a, x, c) = g->tag;
        written++;
    }
}

