/*
 * differential: a seeded random sequence of single-thread calls, each
 * compared with a trivial sequential model.
 *
 * Region: 1024 chunks of 64 KiB (four slabs).  Calls: ensure_mapped and
 * quarantine (with random options: huge page advice, a name, RWX),
 * mark_as_mapped (after the test maps the chunks itself, as a caller
 * would), protect, decommit, unmap, and now and then quarantine_anywhere,
 * over random ranges (mostly short, unaligned ends, any length up to the
 * whole region).  The model is an array of states plus a data tag per chunk.
 * After every step:
 *  - the return code is the model's (-EINVAL for protect over an Unmapped or
 *    Quarantined chunk or decommit over an Unmapped one, else 0);
 *  - every chunk's state, and is_mapped, equal the model's;
 *  - each kind of system call was made exactly as often as the model says:
 *    one per run of adjacent chunks taking the same transition, plus one
 *    madvise per new mapping with huge page advice, plus one name call per
 *    named new mapping until the kernel says it has no names (then never
 *    again: names are tried once per mapper);
 *  - the gauges and the live slab count equal the model's;
 *  - every Mapped chunk holds its data: kept across protect, zero when new.
 * Every 128 steps and at the end, the ledger and /proc/self/maps must agree
 * with the records, and every Mapped chunk is read.  --minutes M soaks for
 * that long instead of --steps.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "os_ledger.h"
#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 1024
#define CROSS_CHECK_EVERY 128

enum dop { D_MAP, D_QUARANTINE, D_MARK, D_PROTECT, D_DECOMMIT, D_UNMAP, D_ANYWHERE, D_NOPS };
static const char *dop_names[] = { "ensure_mapped", "quarantine", "mark_as_mapped", "protect",
                                   "decommit", "unmap", "quarantine_anywhere" };

enum act { A_NONE, A_ILLEGAL, A_RECORD, A_MAP_FRESH, A_RESERVE, A_COMMIT, A_PROTECT,
           A_DECOMMIT, A_UNMAP };

/* The documented transitions (include/mmapper.h), written out afresh. */
static enum act action(enum dop op, mmapper_state_t st)
{
    static const uint8_t table[][4] = {
        [D_MAP] = { A_MAP_FRESH, A_COMMIT, A_NONE, A_COMMIT },
        [D_QUARANTINE] = { A_RESERVE, A_NONE, A_NONE, A_NONE },
        [D_MARK] = { A_RECORD, A_RECORD, A_NONE, A_RECORD },
        [D_PROTECT] = { A_ILLEGAL, A_ILLEGAL, A_PROTECT, A_NONE },
        [D_DECOMMIT] = { A_ILLEGAL, A_NONE, A_DECOMMIT, A_DECOMMIT },
        [D_UNMAP] = { A_NONE, A_UNMAP, A_UNMAP, A_UNMAP },
    };
    return (enum act)table[op][st];
}

static const mmapper_state_t target[] = {
    [D_MAP] = MMAPPER_MAPPED,       [D_QUARANTINE] = MMAPPER_QUARANTINED,
    [D_MARK] = MMAPPER_MAPPED,      [D_PROTECT] = MMAPPER_PROTECTED,
    [D_DECOMMIT] = MMAPPER_QUARANTINED, [D_UNMAP] = MMAPPER_UNMAPPED,
};

struct model {
    mmapper_state_t state[NCHUNKS];
    uint64_t tag[NCHUNKS];        /* data at both ends of a Mapped chunk; 0: zero */
    bool names_live;              /* the mapper still tries to name */
    uint64_t calls[TOS_NCALLS];   /* expected cumulative system calls */
};

static struct test_os tos;
static struct os_ledger ledger;
static mmapper_t *m;
static char *region;
static size_t chunk;
static struct model md;
static uint64_t step, op_count[D_NOPS], einval_count, cross_checks;

static char *at(size_t i)
{
    return region + i * chunk;
}

static void step_fail(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void step_fail(const char *what, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    stress_fail("step %" PRIu64 " (%s): %s", step, what, msg);
}

/* Apply op to the model over chunks [first, first+n); returns the expected
 * return code and adds the expected system calls to md.calls. */
static int model_apply(enum dop op, size_t first, size_t n, const struct mmapper_map_opts *o)
{
    for (size_t c = first; c < first + n; c++)
        if (action(op, md.state[c]) == A_ILLEGAL)
            return -EINVAL;
    enum act run = A_NONE;
    for (size_t c = first; c < first + n; c++) {
        enum act a = action(op, md.state[c]);
        if (a != A_NONE && a != run && a != A_RECORD) {
            static const int kind[] = { [A_MAP_FRESH] = TOS_MMAP, [A_RESERVE] = TOS_MMAP,
                                        [A_COMMIT] = TOS_MPROTECT, [A_PROTECT] = TOS_MPROTECT,
                                        [A_DECOMMIT] = TOS_MMAP, [A_UNMAP] = TOS_MUNMAP };
            md.calls[kind[a]]++;
            if ((a == A_MAP_FRESH || a == A_RESERVE || a == A_COMMIT) && o) {
                md.calls[TOS_MADVISE] += o->huge_page != MMAPPER_HUGE_PAGE_DEFAULT;
                if (o->name && md.names_live) {
                    md.calls[TOS_SET_NAME]++;
                    md.names_live = stress_kernel_has_names();
                }
            }
        }
        run = a;
        if (a == A_NONE)
            continue;
        /* Data survives protect, and access coming back to a Protected
         * chunk (ensure_mapped, or the caller's mprotect before a mark);
         * everything else yields new zero pages or none. */
        bool kept = a == A_PROTECT ||
                    (md.state[c] == MMAPPER_PROTECTED && (a == A_COMMIT || a == A_RECORD));
        if (!kept)
            md.tag[c] = 0;
        md.state[c] = target[op];
    }
    return 0;
}

static uint64_t *head(size_t c)
{
    return (uint64_t *)at(c);
}

static uint64_t *tail(size_t c)
{
    return (uint64_t *)at(c + 1) - 1;
}

static void check_data(const char *what, size_t c)
{
    if (md.state[c] == MMAPPER_MAPPED && (*head(c) != md.tag[c] || *tail(c) != md.tag[c]))
        step_fail(what, "chunk %zu holds %#" PRIx64 "/%#" PRIx64 ", model says %#" PRIx64, c,
                  *head(c), *tail(c), md.tag[c]);
}

/* Data of the step's range: every chunk that should hold data, and a few
 * that should read zero (reading every fresh page would fault them all in).
 * All chunks are read at every cross-check. */
static void check_range_data(const char *what, struct rng *r, size_t first, size_t n)
{
    for (size_t c = first; c < first + n; c++)
        if (md.tag[c])
            check_data(what, c);
    for (int i = 0; i < 8; i++)
        check_data(what, first + rng_below(r, n));
}

static void compare_all(const char *what)
{
    uint64_t count[4] = { 0 }, slabs = 0;
    for (size_t c = 0; c < NCHUNKS; c++) {
        mmapper_state_t st = mmapper_state(m, at(c));
        if (st != md.state[c])
            step_fail(what, "chunk %zu in state %d, model says %d", c, st, md.state[c]);
        if (mmapper_is_mapped(m, at(c)) != (st == MMAPPER_MAPPED))
            step_fail(what, "chunk %zu: is_mapped disagrees with state %d", c, st);
        count[st]++;
    }
    for (size_t k = 0; k < NCHUNKS / STRESS_SLAB_CHUNKS; k++) {
        bool live = false;
        for (size_t c = k * STRESS_SLAB_CHUNKS; c < (k + 1) * STRESS_SLAB_CHUNKS; c++)
            live |= md.state[c] != MMAPPER_UNMAPPED;
        slabs += live;
    }
    struct mmapper_stats st;
    mmapper_get_stats(m, &st);
    if (st.slabs > slabs) {
        /* Empty slabs may stay while the reclaimer is behind (RETIRE_LIMIT);
         * once it has caught up they are gone. */
        mmapper_reclaim_wait(m);
        mmapper_get_stats(m, &st);
    }
    if (st.chunks_mapped != count[MMAPPER_MAPPED] ||
        st.chunks_quarantined != count[MMAPPER_QUARANTINED] ||
        st.chunks_protected != count[MMAPPER_PROTECTED] || st.slabs != slabs)
        step_fail(what, "gauges M/Q/P/slabs %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
                        ", model %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64,
                  st.chunks_mapped, st.chunks_quarantined, st.chunks_protected, st.slabs,
                  count[MMAPPER_MAPPED], count[MMAPPER_QUARANTINED], count[MMAPPER_PROTECTED],
                  slabs);
    static const char *kinds[] = { "mmap", "munmap", "mprotect", "madvise", "set_name" };
    for (int k = 0; k < TOS_NCALLS; k++)
        if (test_os_calls(&tos, (enum test_os_call)k) != md.calls[k])
            step_fail(what, "%" PRIu64 " %s calls so far, model says %" PRIu64, test_os_calls(&tos,
                      (enum test_os_call)k), kinds[k], md.calls[k]);
}

static void cross_check(const char *what)
{
    char why[600];
    for (size_t c = 0; c < NCHUNKS; c++)
        check_data(what, c);
    if (os_ledger_verify(&ledger, m, why, sizeof(why)) != 0)
        step_fail(what, "ledger: %s", why);
    if (procmaps_check(m, region, NCHUNKS * chunk, true, why, sizeof(why)) != 0)
        step_fail(what, "/proc/self/maps: %s", why);
    cross_checks++;
}

/* The caller maps the chunks itself (fresh where Unmapped, mprotect over its
 * reservations), then tells the mapper. */
static int mark(size_t first, size_t n)
{
    for (size_t c = first, end; c < first + n; c = end) {
        mmapper_state_t st = mmapper_state(m, at(c));   /* the model is already ahead */
        for (end = c + 1; end < first + n && mmapper_state(m, at(end)) == st; end++) {
        }
        size_t len = (end - c) * chunk;
        if (st == MMAPPER_UNMAPPED) {
            void *p = mmap(at(c), len, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            CHECK(p == at(c), "the caller's own mmap of chunks [%zu, %zu)", c, end);
        } else if (st != MMAPPER_MAPPED) {
            CHECK(mprotect(at(c), len, PROT_READ | PROT_WRITE) == 0, "mprotect [%zu, %zu)", c,
                  end);
        } else {
            continue;
        }
        os_ledger_set_view(&ledger, at(c), len, LEDGER_RW);
    }
    return mmapper_mark_as_mapped(m, at(first), n * chunk);
}

static void anywhere(struct rng *r)
{
    size_t n = 1 + rng_below(r, 16);
    void *p = NULL;
    uint64_t before[TOS_NCALLS];
    for (int k = 0; k < TOS_NCALLS; k++)
        before[k] = test_os_calls(&tos, (enum test_os_call)k);
    struct mmapper_map_opts o = { .huge_page = MMAPPER_HUGE_PAGE_NEVER };
    CHECK_RC(mmapper_quarantine_anywhere(m, n * chunk, &o, &p), 0, "quarantine_anywhere");
    CHECK((uintptr_t)p % chunk == 0, "unaligned reservation %p", p);
    CHECK(procmaps_check(m, p, n * chunk, true, NULL, 0) == 0, "reservation at %p", p);
    for (size_t i = 0; i < n; i++)
        CHECK(mmapper_state(m, (char *)p + i * chunk) == MMAPPER_QUARANTINED, "reserved chunk");
    CHECK_RC(mmapper_unmap(m, p, n * chunk), 0, "unmap of the reservation");
    /* One mmap, up to two trimming munmaps, one madvise; one munmap back. */
    uint64_t trims = test_os_calls(&tos, TOS_MUNMAP) - before[TOS_MUNMAP] - 1;
    CHECK(test_os_calls(&tos, TOS_MMAP) - before[TOS_MMAP] == 1 && trims <= 2 &&
              test_os_calls(&tos, TOS_MADVISE) - before[TOS_MADVISE] == 1 &&
              test_os_calls(&tos, TOS_MPROTECT) == before[TOS_MPROTECT],
          "quarantine_anywhere + unmap made unexpected system calls");
    md.calls[TOS_MMAP]++;
    md.calls[TOS_MADVISE]++;
    md.calls[TOS_MUNMAP] += 1 + trims;
}

static const struct mmapper_map_opts *pick_opts(struct rng *r)
{
    static const struct mmapper_map_opts choices[] = {
        { .huge_page = MMAPPER_HUGE_PAGE_TRANSPARENT },
        { .huge_page = MMAPPER_HUGE_PAGE_NEVER, .name = "differential" },
        { .prot = MMAPPER_PROT_READ_WRITE_EXEC },
        { .name = "diff-B" },
    };
    uint64_t i = rng_below(r, 8);
    return i < 4 ? &choices[i] : NULL;
}

static void one_step(struct rng *r)
{
    static const uint8_t weights[D_NOPS] = { 25, 12, 5, 15, 15, 15, 1 };
    uint64_t pick = rng_below(r, 88);
    enum dop op = 0;
    while (pick >= weights[op])
        pick -= weights[op++];
    op_count[op]++;
    if (op == D_ANYWHERE) {
        anywhere(r);
        compare_all(dop_names[op]);
        return;
    }
    size_t first = rng_below(r, NCHUNKS), n = rng_length(r, NCHUNKS);
    if (first + n > NCHUNKS)
        n = NCHUNKS - first;
    size_t lead = rng_below(r, chunk);
    char *start = at(first) + lead;
    char *end = at(first + n - 1) + 1 + rng_below(r, chunk);
    if (end <= start)
        end = start + 1 + rng_below(r, chunk - lead);
    size_t bytes = (size_t)(end - start);
    const struct mmapper_map_opts *o = op == D_MAP || op == D_QUARANTINE ? pick_opts(r) : NULL;
    int want = model_apply(op, first, n, o);
    int rc;
    switch (op) {
    case D_MAP:
        rc = mmapper_ensure_mapped(m, start, bytes, o);
        break;
    case D_QUARANTINE:
        rc = mmapper_quarantine(m, start, bytes, o);
        break;
    case D_MARK:
        rc = mark(first, n);
        break;
    case D_PROTECT:
        rc = mmapper_protect(m, start, bytes);
        break;
    case D_DECOMMIT:
        rc = mmapper_decommit(m, start, bytes);
        break;
    default:
        rc = mmapper_unmap(m, start, bytes);
        break;
    }
    if (rc != want)
        step_fail(dop_names[op], "chunks [%zu, %zu) returned %d (%s), model says %d", first,
                  first + n, rc, mmapper_strerror(rc), want);
    einval_count += rc == -EINVAL;
    compare_all(dop_names[op]);
    check_range_data(dop_names[op], r, first, n);
    /* New data in a few Mapped chunks of the range (both ends and some in
     * between: touching every page of long ranges would dominate the run). */
    for (int i = 0; i < 6; i++) {
        size_t c = i == 0 ? first : i == 1 ? first + n - 1 : first + rng_below(r, n);
        if (md.state[c] == MMAPPER_MAPPED) {
            md.tag[c] = rng_next(r) | 1;
            *head(c) = *tail(c) = md.tag[c];
        }
    }
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = STRESS_SCALE3(100000, 30000, 4000), .rounds = 1 };
    stress_parse(argc, argv, "random single-thread calls against a sequential model "
                             "(--ops/--steps: steps; --minutes: soak)", &o);
    test_os_init(&tos);
    os_ledger_init(&ledger, &tos.os);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &ledger.os };
    CHECK_RC(mmapper_create(&cfg, &m), 0, "mmapper_create");
    chunk = mmapper_granularity(m);
    stress_catch_faults(m);
    region = stress_region(m, NCHUNKS * chunk, STRESS_SLAB_CHUNKS * chunk);
    CHECK_RC(mmapper_unmap(m, region, NCHUNKS * chunk), 0, "unmap of the fresh region");
    CHECK(os_ledger_track(&ledger, m, region, NCHUNKS * chunk) == 0, "ledger");
    for (int k = 0; k < TOS_NCALLS; k++)
        md.calls[k] = test_os_calls(&tos, (enum test_os_call)k);
    md.names_live = true;

    struct rng r;
    rng_init(&r, o.seed, 1);
    double t0 = stress_now();
    for (step = 1; o.seconds > 0 ? !stress_time_up(&o, t0) : step <= o.ops; step++) {
        one_step(&r);
        if (step % CROSS_CHECK_EVERY == 0)
            cross_check("cross-check");
    }
    step--;
    cross_check("final cross-check");

    CHECK_RC(mmapper_unmap(m, region, NCHUNKS * chunk), 0, "final unmap");
    struct mmapper_stats st;
    mmapper_get_stats(m, &st);
    CHECK(st.slabs == 0 && st.chunks_mapped + st.chunks_quarantined + st.chunks_protected == 0,
          "slabs or chunks left after unmapping everything");
    CHECK(procmaps_range_free(region, NCHUNKS * chunk), "region not empty at the end");
    stress_summary("differential steps: %" PRIu64 " (map %" PRIu64 ", quarantine %" PRIu64
                   ", mark %" PRIu64 ", protect %" PRIu64 ", decommit %" PRIu64 ", unmap %" PRIu64
                   ", anywhere %" PRIu64 "; %" PRIu64 " -EINVAL), %" PRIu64
                   " system calls all as modelled, %" PRIu64 " kernel cross-checks",
                   step, op_count[D_MAP], op_count[D_QUARANTINE], op_count[D_MARK],
                   op_count[D_PROTECT], op_count[D_DECOMMIT], op_count[D_UNMAP],
                   op_count[D_ANYWHERE], einval_count, test_os_total_calls(&tos), cross_checks);
    mmapper_destroy(m);
    os_ledger_fini(&ledger);
    return 0;
}
