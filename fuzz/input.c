/*
 * The harness's input decoded (fuzz/harness.c reads the header and each
 * call's first byte): bytes, ranges of chunks with unaligned ends, map
 * options (invalid ones too), addresses for lookups.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness_internal.h"
#include "mmapper.h"

/* VMA names: index 0 is none. */
const char *const fz_good_names[] = {
    NULL, "fuzz-a", "fuzz b", "x",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678",
};
#define NGOOD (sizeof(fz_good_names) / sizeof(fz_good_names[0]))
static const char *const bad_names[] = {
    "", "bad$", "a\\b", "[x]", "tab\there", "\x7f",
    "01234567890123456789012345678901234567890123456789012345678901234567890123456789",
};
#define NBAD (sizeof(bad_names) / sizeof(bad_names[0]))

unsigned fz_u8(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

unsigned fz_u16(struct input *in)
{
    unsigned lo = fz_u8(in);
    return lo | fz_u8(in) << 8;
}

static struct area *pick_area(int xi, unsigned b, bool for_unmap)
{
    (void)for_unmap;
    if (!(b & 1))
        return &fz_areas[0];
    unsigned n = 0;
    struct area *cand[NANY];
    for (int i = 1; i < NAREAS; i++) {
        struct area *a = &fz_areas[i];
        /* A mapper with larger chunks than the area's would round beyond it. */
        if (a->used && a->owner >= 0 && fz_usable(a, fz_inst(xi)))
            cand[n++] = a;
    }
    return n ? cand[(b >> 1) % n] : &fz_areas[0];
}

void fz_decode_range(int xi, int op, struct input *in, struct range *r)
{
    struct inst *x = fz_inst(xi);
    unsigned ab = fz_u8(in);
    r->a = pick_area(xi, ab, op == OP_UNMAP);
    size_t nch = fz_area_chunks(r->a, x);
    size_t cf = fz_u16(in) % nch, len;
    unsigned lb = fz_u8(in);
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
    if (r->a != &fz_areas[0] && op == OP_UNMAP && r->a->owner == xi) {
        cf = 0;
        len = nch;
    }
    if (len > nch - cf)
        len = nch - cf;
    unsigned mb = fz_u8(in);
    size_t cuts[4] = { 0, 1, x->chunk / 2, x->chunk - 1 };
    uintptr_t start = fz_chunk_at(r->a, x, cf) + cuts[mb & 3];
    uintptr_t end = fz_chunk_at(r->a, x, cf + len) - cuts[mb >> 2 & 3];
    if (end <= start)
        end = start + 1;
    r->cf = cf;
    r->ce = cf + len;
    r->start = start;
    r->bytes = end - start;
}

/* Options from one byte; *invalid if they must be refused. */
const struct mmapper_map_opts *fz_decode_opts(unsigned b, struct mmapper_map_opts *o,
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
        o->name = fz_good_names[nm];
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

uintptr_t fz_decode_addr(struct input *in)
{
    unsigned k = fz_u8(in);
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
            if (fz_areas[i].used)
                cand[n++] = &fz_areas[i];
        struct area *a = cand[(k >> 3) % n];
        return a->base + (fz_u16(in) % a->npages) * fz_page_size + (k >> 5) * 511;
    }
    if (k % 8 == 5)
        return junk[(k >> 3) % (sizeof(junk) / sizeof(junk[0]))];
    if (k % 8 == 6) {
        const struct area *a = &fz_areas[(k >> 3) % NAREAS];
        if (!a->used)
            a = &fz_areas[0];
        return k & 0x80 ? a->base - 1 : a->base + a->npages * fz_page_size;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | fz_u8(in);
    return (uintptr_t)v;
}

