/*
 * The calls that must change nothing: lookups (state, is_mapped,
 * is_mapped_many) of any address, bad arguments and configurations, a full
 * comparison of a mapper with the model.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "test_os.h"

void fz_do_lookups(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned b = fz_u8(in);
    size_t n = b % 33;
    const void *addrs[32];
    bool mapped[33];
    size_t want = 0;
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d: %zu lookups", xi, n);
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = fz_decode_addr(in);
        addrs[i] = (const void *)a;
        unsigned st = fz_model_state(xi, a);
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
        struct area *a = &fz_areas[0];
        size_t w = 0;
        for (size_t i = 0; i < cnt; i++) {
            uintptr_t addr = a->base + ((i * stride) % a->npages) * fz_page_size + i % 8;
            many[i] = (const void *)addr;
            w += fz_model_state(xi, addr) == M;
        }
        size_t g = mmapper_is_mapped_many(x->m, many, cnt, b & 0x40 ? NULL : many_mapped);
        CHECK(g == w, "is_mapped_many of %zu counted %zu, model says %zu", cnt, g, w);
        if (!(b & 0x40))
            for (size_t i = 0; i < cnt; i++)
                CHECK(many_mapped[i] == (fz_model_state(xi, (uintptr_t)many[i]) == M),
                      "is_mapped_many[%zu] of %zu", i, cnt);
    }
    mapped[n] = true;   /* a canary: must stay */
    bool with_array = !(b & 0x40);
    size_t got = mmapper_is_mapped_many(x->m, addrs, n, with_array ? mapped : NULL);
    CHECK(got == want, "is_mapped_many counted %zu, model says %zu", got, want);
    if (with_array)
        for (size_t i = 0; i < n; i++)
            CHECK(mapped[i] == (fz_model_state(xi, (uintptr_t)addrs[i]) == M),
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

/* Bad arguments: refused with nothing changed (and no system call). */
void fz_do_bad(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned b = fz_u8(in);
    mmapper_t *m = x->m;
    size_t ch = x->chunk;
    uintptr_t lim = MMAPPER_ADDRESS_LIMIT;
    void *reg = (void *)fz_region;
    fz_clear_fault(x);
    x->lo.logp->n = 0;
    struct mmapper_stats before, after;
    mmapper_get_stats(m, &before);
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d: bad arguments #%u", xi, b % 12);
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
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
        CHECK(mmapper_mark_as_mapped(m, reg, SIZE_MAX - fz_region + 2) == -EINVAL, "overflow mark");
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
        fz_decode_opts(0xc0 + (b >> 4), &o, &nid, &perm, &invalid);
        CHECK(mmapper_ensure_mapped(m, reg, ch, &o) == -EINVAL, "bad opts ensure_mapped");
        CHECK(mmapper_quarantine(m, reg, 3 * ch, &o) == -EINVAL, "bad opts quarantine");
        CHECK(mmapper_quarantine_anywhere(m, ch, &o, &(void *){ 0 }) == -EINVAL,
              "bad opts anywhere");
        break;
    }
    case 8: { /* bad configurations */
        mmapper_t *y = (mmapper_t *)1;
        unsigned lp = (unsigned)__builtin_ctzl(fz_page_size);
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

void fz_do_check_all(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned b = fz_u8(in);
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d: full comparison%s", xi,
             b & 1 ? " after reclaim_wait" : "");
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
    if (b & 1)
        CHECK(mmapper_reclaim_wait(x->m) == 0, "reclaim_wait");
    for (int i = 0; i < NAREAS; i++)
        if (fz_areas[i].used)
            fz_check_states(&fz_areas[i], 0, fz_areas[i].npages);
    fz_check_stats(xi);
    if (b & 1) {
        struct mmapper_stats s;
        mmapper_get_stats(x->m, &s);
        CHECK(s.slabs == fz_model_slabs(xi), "slabs after reclaim_wait");
    }
}

