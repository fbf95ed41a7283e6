/*
 * The mappers under test: each on the real kernel or on
 * tests/support/test_os behind a logging layer, which records every system
 * call, injects the faults the input arms, and can act like older kernels.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness_internal.h"
#include "mmapper.h"
#include "test_os.h"

static struct calls logs[NINST];

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

const char *fz_kind_name(int k)
{
    static const char *names[] = { "mmap", "munmap", "mprotect", "madvise", "set_name" };
    return k >= 0 && k < TOS_NCALLS ? names[k] : "?";
}

/* ---- faults ------------------------------------------------------------- */

/* After a fault: what the mapper learnt from EINVAL answers (it cannot tell
 * an injected EINVAL from a kernel without THP or names). */
void fz_latch_from_log(struct inst *x)
{
    for (unsigned i = 0; i < x->lo.logp->n && i < LOG_MAX; i++) {
        const struct call *c = &x->lo.logp->c[i];
        if (c->kind == TOS_MADVISE && c->rc == -EINVAL)
            x->huge_dead = true;
        if (c->kind == TOS_SET_NAME && c->rc == -EINVAL)
            x->names_dead = true;
    }
}

void fz_clear_fault(struct inst *x)
{
    if (x->real_os)
        return;
    test_os_clear_faults(&x->tos);
    x->fault_armed = false;
    x->lo.hole_mode = false;
    x->lo.partial_mode = false;
}

void fz_do_fault(int xi, struct input *in)
{
    struct inst *x = fz_inst(xi);
    unsigned k = fz_u8(in), e = fz_u8(in);
    static const int errs[] = { ENOMEM, EAGAIN, EPERM, EINVAL, EEXIST, EACCES, EFAULT, EBUSY };
    int call = k % 6 == 5 ? TOS_ANY : (int)(k % 6);
    long at = 1 + (k >> 3) % 4;
    int err = errs[e % 8];
    bool sticky = e >> 3 & 1;
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d: fail %s call %ld with %s%s%s%s", xi,
             call == TOS_ANY ? "any" : fz_kind_name(call), at, strerror(err),
             sticky ? " (sticky)" : "", e >> 4 & 1 ? " (holes)" : "",
             e >> 5 & 1 && !sticky ? " (partial mprotect)" : "");
    fz_trace("%u: %s%s\n", fz_op_no, fz_op_desc, x->real_os ? ": ignored (real kernel)" : "");
    if (x->real_os)
        return;
    test_os_fail(&x->tos, call, at, err, sticky);
    x->lo.hole_mode = e >> 4 & 1;
    x->lo.partial_mode = (e >> 5 & 1) && !sticky;
    x->fault_armed = true;
    x->fault_errno = err;
}

/* ---- instances ----------------------------------------------------------- */

void fz_inst_create(int xi, unsigned c1, unsigned c2)
{
    struct inst *x = fz_inst(xi);
    memset(x, 0, sizeof(*x));
    x->shift = 12 + c1 % 5;
    if ((size_t)1 << x->shift < fz_page_size)
        x->shift = (unsigned)__builtin_ctzl(fz_page_size);
    x->chunk = (size_t)1 << x->shift;
    x->ppc = x->chunk / fz_page_size;
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
    fz_trace("  mapper %d: chunk %zu%s%s%s%s%s%s\n", xi, x->chunk,
             x->block_signals ? " signals" : "", x->disable_names ? " no-names" : "",
             x->real_os ? " kernel" : "", x->names_unsup ? " kernel-without-names" : "",
             x->huge_unsup ? " no-thp" : "", x->ignore_noreplace ? " no-noreplace" : "");
}

/* Destroy without unmapping: the mapper's memory becomes the harness's. */
void fz_inst_destroy_keep(int xi)
{
    struct inst *x = fz_inst(xi);
    for (int i = 0; i < NAREAS; i++) {
        struct area *a = &fz_areas[i];
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

void fz_do_recreate(int xi, struct input *in)
{
    unsigned c1 = fz_u8(in), c2 = fz_u8(in);
    snprintf(fz_op_desc, sizeof(fz_op_desc), "mapper %d destroyed (memory kept) and re-created",
             xi);
    fz_trace("%u: %s\n", fz_op_no, fz_op_desc);
    if (fz_inst(xi)->live)
        fz_inst_destroy_keep(xi);
    fz_inst_create(xi, c1, c2);
}

