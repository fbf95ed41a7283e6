/*
 * Every edge of the chunk state diagram, one test each: the resulting state,
 * the exact system calls (kind and count), the kernel's view, the contents,
 * and the neighbouring chunks left alone.  Then the no-op edges (no syscall)
 * and the illegal ones (-EINVAL, nothing changed).
 *
 *     UNMAPPED ──quarantine──► QUARANTINED ──ensure_mapped──► MAPPED ◄──► PROTECTED
 *         └────────────ensure_mapped / mark_as_mapped──────────►┘
 *     decommit: MAPPED|PROTECTED → QUARANTINED      unmap: any → UNMAPPED
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sys/mman.h>

#include "unit.h"

enum op { ENSURE, QUARANTINE, MARK, PROTECT, DECOMMIT, UNMAP };

static const char *op_name[] = { "ensure_mapped", "quarantine", "mark_as_mapped",
                                  "protect", "decommit", "unmap" };

#define SEED 21u

/* Take the (Unmapped) chunk at a to state `s`, with a pattern in it if it
 * was ever accessible. */
static void bring_to(struct unit *u, char *a, char s)
{
    if (s == 'U')
        return;
    if (s == 'Q') {
        cr_assert_eq(mmapper_quarantine(u->m, a, u->chunk, NULL), 0);
        return;
    }
    cr_assert_eq(mmapper_ensure_mapped(u->m, a, u->chunk, NULL), 0);
    fill_pattern(a, u->chunk, SEED);
    if (s == 'P')
        cr_assert_eq(mmapper_protect(u->m, a, u->chunk), 0);
}

static int do_op(struct unit *u, enum op op, char *a)
{
    switch (op) {
    case ENSURE: return mmapper_ensure_mapped(u->m, a, u->chunk, NULL);
    case QUARANTINE: return mmapper_quarantine(u->m, a, u->chunk, NULL);
    case MARK: return mmapper_mark_as_mapped(u->m, a, u->chunk);
    case PROTECT: return mmapper_protect(u->m, a, u->chunk);
    case DECOMMIT: return mmapper_decommit(u->m, a, u->chunk);
    default: return mmapper_unmap(u->m, a, u->chunk);
    }
}

/* Before mark_as_mapped the caller really maps the chunk, by itself. */
static void caller_maps(char *a, size_t len, char from)
{
    if (from == 'U')
        cr_assert_eq(mmap(a, len, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), a);
    else if (from != 'M')
        cr_assert_eq(mprotect(a, len, PROT_READ | PROT_WRITE), 0);
}

struct edge {
    char from;
    enum op op;
    int rc;
    char to;
    uint64_t mmap, munmap, mprotect, noreplace;
};

static void check_edge(struct edge e)
{
    struct unit u;
    unit_setup(&u, 0);
    /* The chunk under test sits between two free ones that must stay so. */
    char *region = unit_free_range(3 * u.chunk, u.chunk);
    char *a = region + u.chunk;
    bring_to(&u, a, e.from);
    if (e.op == MARK)
        caller_maps(a, u.chunk, e.from);
    struct mmapper_stats before;
    mmapper_get_stats(u.m, &before);
    unit_reset_counts(&u);

    int rc = do_op(&u, e.op, a);
    cr_assert_eq(rc, e.rc, "%c --%s-->: %s", e.from, op_name[e.op], mmapper_strerror(rc));
    unit_expect_calls(&u, e.mmap, e.munmap, e.mprotect);
    cr_assert_eq(atomic_load(&u.tos.noreplace_maps), e.noreplace);
    cr_assert_eq(test_os_calls(&u.tos, TOS_MADVISE) + test_os_calls(&u.tos, TOS_SET_NAME), 0);
    char want[4] = { 'U', e.to, 'U', 0 };
    unit_expect_states(&u, region, want);
    unit_expect_kernel(&u, region, 3 * u.chunk);
    unit_expect_gauges(&u, e.to == 'Q', e.to == 'M', e.to == 'P');

    struct mmapper_stats after;
    mmapper_get_stats(u.m, &after);
    cr_assert_eq(after.slabs, e.to != 'U', "slab count %llu with the chunk %c",
                 (unsigned long long)after.slabs, e.to);
    cr_assert_eq(after.mmap_calls - before.mmap_calls, e.mmap);
    cr_assert_eq(after.munmap_calls - before.munmap_calls, e.munmap);
    cr_assert_eq(after.mprotect_calls - before.mprotect_calls, e.mprotect);

    if (e.to == 'M') {
        /* Contents survive only where the memory was never given back. */
        if (e.from == 'M' || e.from == 'P')
            cr_assert(has_pattern(a, u.chunk, SEED), "contents lost");
        else
            cr_assert(all_zero(a, u.chunk), "fresh memory not zero");
        fill_pattern(a, u.chunk, SEED + 1);   /* and writable */
    }
    if (e.to == 'U')
        cr_assert(procmaps_range_free(region, 3 * u.chunk));
    unit_teardown(&u);
}

/* ---- the legal edges ---------------------------------------------------------- */

Test(edge, U_quarantine_Q)    { check_edge((struct edge){ 'U', QUARANTINE, 0, 'Q', 1, 0, 0, 1 }); }
Test(edge, U_ensure_M)        { check_edge((struct edge){ 'U', ENSURE, 0, 'M', 1, 0, 0, 1 }); }
Test(edge, Q_ensure_M)        { check_edge((struct edge){ 'Q', ENSURE, 0, 'M', 0, 0, 1, 0 }); }
Test(edge, M_protect_P)       { check_edge((struct edge){ 'M', PROTECT, 0, 'P', 0, 0, 1, 0 }); }
Test(edge, P_ensure_M)        { check_edge((struct edge){ 'P', ENSURE, 0, 'M', 0, 0, 1, 0 }); }
Test(edge, M_decommit_Q)      { check_edge((struct edge){ 'M', DECOMMIT, 0, 'Q', 1, 0, 0, 0 }); }
Test(edge, P_decommit_Q)      { check_edge((struct edge){ 'P', DECOMMIT, 0, 'Q', 1, 0, 0, 0 }); }
Test(edge, Q_unmap_U)         { check_edge((struct edge){ 'Q', UNMAP, 0, 'U', 0, 1, 0, 0 }); }
Test(edge, M_unmap_U)         { check_edge((struct edge){ 'M', UNMAP, 0, 'U', 0, 1, 0, 0 }); }
Test(edge, P_unmap_U)         { check_edge((struct edge){ 'P', UNMAP, 0, 'U', 0, 1, 0, 0 }); }
Test(edge, U_mark_M)          { check_edge((struct edge){ 'U', MARK, 0, 'M', 0, 0, 0, 0 }); }
Test(edge, Q_mark_M)          { check_edge((struct edge){ 'Q', MARK, 0, 'M', 0, 0, 0, 0 }); }
Test(edge, P_mark_M)          { check_edge((struct edge){ 'P', MARK, 0, 'M', 0, 0, 0, 0 }); }

/* ---- edges that lead nowhere: success, no syscall ------------------------------ */

Test(noop, Q_quarantine)      { check_edge((struct edge){ 'Q', QUARANTINE, 0, 'Q', 0, 0, 0, 0 }); }
Test(noop, M_quarantine)      { check_edge((struct edge){ 'M', QUARANTINE, 0, 'M', 0, 0, 0, 0 }); }
Test(noop, P_quarantine)      { check_edge((struct edge){ 'P', QUARANTINE, 0, 'P', 0, 0, 0, 0 }); }
Test(noop, M_ensure)          { check_edge((struct edge){ 'M', ENSURE, 0, 'M', 0, 0, 0, 0 }); }
Test(noop, M_mark)            { check_edge((struct edge){ 'M', MARK, 0, 'M', 0, 0, 0, 0 }); }
Test(noop, P_protect)         { check_edge((struct edge){ 'P', PROTECT, 0, 'P', 0, 0, 0, 0 }); }
Test(noop, Q_decommit)        { check_edge((struct edge){ 'Q', DECOMMIT, 0, 'Q', 0, 0, 0, 0 }); }
Test(noop, U_unmap)           { check_edge((struct edge){ 'U', UNMAP, 0, 'U', 0, 0, 0, 0 }); }

/* ---- illegal edges: -EINVAL, nothing changed ------------------------------------ */

Test(illegal, U_protect)      { check_edge((struct edge){ 'U', PROTECT, -EINVAL, 'U', 0, 0, 0, 0 }); }
Test(illegal, Q_protect)      { check_edge((struct edge){ 'Q', PROTECT, -EINVAL, 'Q', 0, 0, 0, 0 }); }
Test(illegal, U_decommit)     { check_edge((struct edge){ 'U', DECOMMIT, -EINVAL, 'U', 0, 0, 0, 0 }); }

/* An illegal chunk anywhere in the range stops the whole call, also when
 * the legal chunks come first and sit in another slab (64 KiB chunks, so a
 * slab is 16 MiB and the range below spans two). */
Test(illegal, mixed_ranges_change_nothing)
{
    struct unit u;
    unit_setup(&u, 16);
    size_t slab = 256 * u.chunk;
    char *a = unit_free_range(2 * slab, slab);
    char *m = a + slab - u.chunk;   /* last chunk of the first slab */
    cr_assert_eq(mmapper_ensure_mapped(u.m, m, u.chunk, NULL), 0);
    fill_pattern(m, u.chunk, 30);
    cr_assert_eq(mmapper_quarantine(u.m, a + slab + u.chunk, u.chunk, NULL), 0);
    const char *layout = "MUQ";   /* m, first chunk of slab 2 (U), then Q */
    unit_expect_states(&u, m, layout);
    unit_reset_counts(&u);

    cr_assert_eq(mmapper_protect(u.m, m, 2 * u.chunk), -EINVAL);     /* M U */
    cr_assert_eq(mmapper_protect(u.m, m, 3 * u.chunk), -EINVAL);     /* M U Q */
    cr_assert_eq(mmapper_decommit(u.m, m, 3 * u.chunk), -EINVAL);    /* M U Q */
    cr_assert_eq(mmapper_protect(u.m, a + slab + u.chunk, u.chunk), -EINVAL);
    unit_expect_calls(&u, 0, 0, 0);
    unit_expect_states(&u, m, layout);
    unit_expect_kernel(&u, a, 2 * slab);
    cr_assert(has_pattern(m, u.chunk, 30));
    unit_expect_gauges(&u, 1, 1, 0);
    unit_teardown(&u);
}
