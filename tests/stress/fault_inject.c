/*
 * fault_inject: every system call of every multi-chunk call fails in turn.
 *
 * Scenarios: ensure_mapped and quarantine (huge page advice and a name, so
 * madvise and naming are called) over 24 chunks in mixed states that
 * straddle a slab boundary, so the call makes several system calls of
 * different kinds; protect over Mapped/Protected chunks; decommit over
 * Mapped/Protected/Quarantined ones; unmap over all four states; and
 * quarantine_anywhere.  Faults: mmap ENOMEM and EEXIST, mprotect ENOMEM,
 * munmap ENOMEM, madvise EINVAL, naming EINVAL and ENOMEM, and ENOMEM from
 * whatever call comes k-th; each fired at the k-th call for k = 1, 2, ...
 * until the scenario makes fewer than k such calls, once and "sticky" (that
 * call and every later one of its kind fail).  On a kernel without VMA names
 * naming is made to succeed (stress_names_os), so that faults can be
 * injected into the second and later names of a call too.
 *
 * For every injection point that fired:
 *  - the call returns the injected error, or 0 having done everything (a
 *    batched mprotect is retried chunk by chunk, and naming EINVAL means
 *    "this kernel has no names": names are then skipped, never an error);
 *  - chunks before some point of the range are in their new state and the
 *    rest in their old one (transitions go in ascending order), none is left
 *    half-way (is_mapped agrees with state);
 *  - the ledger (what the system calls did) and /proc/self/maps agree with
 *    the records, the gauges match them, and Mapped chunks hold their data
 *    (kept from Mapped or Protected, zero when newly mapped);
 *  - after test_os_clear_faults() the same call succeeds and leaves every
 *    chunk in its new state, data intact.
 * quarantine_anywhere must also leave no reservation behind when it fails
 * (unless munmap itself keeps failing: then there is nothing it could do),
 * and hold exactly the reservation when it succeeds (the ledger adds up
 * what the mapper's calls mapped and unmapped outside the test range).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os_ledger.h"
#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define LOG_CHUNK 16
#define NCHUNKS 24
#define MAX_K 200

enum sop { S_MAP, S_QUARANTINE, S_PROTECT, S_DECOMMIT, S_UNMAP, S_ANYWHERE };

struct scenario {
    const char *name;
    enum sop op;
    const char *pattern;   /* initial states, U Q M P; chunk 12 starts a slab */
};

static const struct scenario scenarios[] = {
    { "ensure_mapped", S_MAP, "UUQQPPMMUQPUUMMPPQQUMPQU" },
    { "quarantine", S_QUARANTINE, "UUQQPPMMUQPUUMMPPQQUMPQU" },
    { "protect", S_PROTECT, "MMPPMMMPMMMMMMPPMMPMMMPM" },
    { "decommit", S_DECOMMIT, "MMQQPPMQMMPPPMMQQMPPQMMP" },
    { "unmap", S_UNMAP, "UUQQPPMMUQPUUMMPPQQUMPQU" },
    { "quarantine_anywhere", S_ANYWHERE, NULL },
};

struct fault {
    int call, err;
    const char *name;
};

static const struct fault faults[] = {
    { TOS_MMAP, ENOMEM, "mmap ENOMEM" },       { TOS_MMAP, EEXIST, "mmap EEXIST" },
    { TOS_MPROTECT, ENOMEM, "mprotect ENOMEM" }, { TOS_MUNMAP, ENOMEM, "munmap ENOMEM" },
    { TOS_MADVISE, EINVAL, "madvise EINVAL" }, { TOS_SET_NAME, EINVAL, "naming EINVAL" },
    { TOS_SET_NAME, ENOMEM, "naming ENOMEM" }, { TOS_ANY, ENOMEM, "k-th call ENOMEM" },
};

static const struct mmapper_map_opts opts = { .huge_page = MMAPPER_HUGE_PAGE_TRANSPARENT,
                                              .name = "fault-inject" };

struct point {
    const struct scenario *sc;
    const struct fault *f;
    bool sticky;
    long k;
    struct test_os tos;
    struct names_os names;
    struct os_ledger ledger;
    mmapper_t *m;
};

static char *range;       /* NCHUNKS chunks, chunk 12 at a slab boundary */
static size_t chunk;
static uint64_t points, by_scenario[6], absorbed;

static void pfail(const struct point *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define PFAIL(p, ...) pfail((p), __LINE__, __VA_ARGS__)

static void pfail(const struct point *p, int line, const char *fmt, ...)
{
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    stress_fail("fault_inject.c:%d: %s, %s%s at call %ld: %s", line, p->sc->name, p->f->name,
                p->sticky ? " (sticky)" : "", p->k, msg);
}

static mmapper_state_t letter_state(char c)
{
    return c == 'Q' ? MMAPPER_QUARANTINED
           : c == 'M' ? MMAPPER_MAPPED
           : c == 'P' ? MMAPPER_PROTECTED
                      : MMAPPER_UNMAPPED;
}

static mmapper_state_t new_state(enum sop op, mmapper_state_t old)
{
    switch (op) {
    case S_MAP:
        return MMAPPER_MAPPED;
    case S_QUARANTINE:
        return old == MMAPPER_UNMAPPED ? MMAPPER_QUARANTINED : old;
    case S_PROTECT:
        return MMAPPER_PROTECTED;
    case S_DECOMMIT:
        return MMAPPER_QUARANTINED;
    default:
        return MMAPPER_UNMAPPED;
    }
}

static char *chunk_at(size_t i)
{
    return range + i * chunk;
}

static uint64_t tag(size_t i)
{
    return 0xfa17000000000000ull | (points << 8) | i;
}

static void write_tag(size_t i)
{
    uint64_t *head = (uint64_t *)chunk_at(i), *tail = (uint64_t *)chunk_at(i + 1) - 1;
    *head = *tail = tag(i);
}

static void open_point(struct point *p)
{
    test_os_init(&p->tos);
    stress_names_os_init(&p->names, &p->tos);
    os_ledger_init(&p->ledger, &p->names.os);
    struct mmapper_config cfg = { .log_chunk_bytes = LOG_CHUNK, .os = &p->ledger.os };
    CHECK_RC(mmapper_create(&cfg, &p->m), 0, "mmapper_create");
    CHECK(os_ledger_track(&p->ledger, p->m, range, NCHUNKS * chunk) == 0, "ledger");
    if (!p->sc->pattern)
        return;
    for (size_t i = 0; i < NCHUNKS; i++) {
        mmapper_state_t st = letter_state(p->sc->pattern[i]);
        if (st == MMAPPER_QUARANTINED)
            CHECK_RC(mmapper_quarantine(p->m, chunk_at(i), chunk, NULL), 0, "setup");
        if (st == MMAPPER_MAPPED || st == MMAPPER_PROTECTED) {
            CHECK_RC(mmapper_ensure_mapped(p->m, chunk_at(i), chunk, NULL), 0, "setup");
            write_tag(i);
        }
        if (st == MMAPPER_PROTECTED)
            CHECK_RC(mmapper_protect(p->m, chunk_at(i), chunk), 0, "setup");
    }
}

static void close_point(struct point *p)
{
    test_os_clear_faults(&p->tos);
    CHECK_RC(mmapper_unmap(p->m, range, NCHUNKS * chunk), 0, "teardown unmap");
    CHECK(procmaps_range_free(range, NCHUNKS * chunk), "range not empty after teardown");
    struct mmapper_stats st;
    mmapper_get_stats(p->m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs after teardown", st.slabs);
    mmapper_destroy(p->m);
    os_ledger_fini(&p->ledger);
}

static int do_op(struct point *p)
{
    size_t bytes = NCHUNKS * chunk;
    switch (p->sc->op) {
    case S_MAP:
        return mmapper_ensure_mapped(p->m, range, bytes, &opts);
    case S_QUARANTINE:
        return mmapper_quarantine(p->m, range, bytes, &opts);
    case S_PROTECT:
        return mmapper_protect(p->m, range, bytes);
    case S_DECOMMIT:
        return mmapper_decommit(p->m, range, bytes);
    default:
        return mmapper_unmap(p->m, range, bytes);
    }
}

/* Records, ledger, kernel, gauges and data all agree; returns how many
 * chunks (a prefix) are in their new state. */
static size_t check_consistent(struct point *p, const char *when)
{
    char why[600];
    mmapper_state_t old[NCHUNKS], now[NCHUNKS];
    uint64_t count[4] = { 0 };
    for (size_t i = 0; i < NCHUNKS; i++) {
        old[i] = letter_state(p->sc->pattern[i]);
        now[i] = mmapper_state(p->m, chunk_at(i));
        count[now[i]]++;
        if (mmapper_is_mapped(p->m, chunk_at(i)) != (now[i] == MMAPPER_MAPPED))
            PFAIL(p, "%s: chunk %zu reads state %d but is_mapped disagrees", when, i, now[i]);
    }
    size_t done = 0;
    while (done < NCHUNKS && now[done] == new_state(p->sc->op, old[done]))
        done++;
    for (size_t i = done; i < NCHUNKS; i++) {
        if (now[i] != old[i])
            PFAIL(p, "%s: chunk %zu in state %d, neither old (%d) nor, after %zu done "
                     "chunks, new", when, i, now[i], old[i], done);
    }
    if (os_ledger_verify(&p->ledger, p->m, why, sizeof(why)) != 0)
        PFAIL(p, "%s: ledger: %s", when, why);
    if (procmaps_check(p->m, range, NCHUNKS * chunk, true, why, sizeof(why)) != 0)
        PFAIL(p, "%s: /proc/self/maps: %s", when, why);
    struct mmapper_stats st;
    mmapper_get_stats(p->m, &st);
    if (st.chunks_mapped != count[MMAPPER_MAPPED] ||
        st.chunks_quarantined != count[MMAPPER_QUARANTINED] ||
        st.chunks_protected != count[MMAPPER_PROTECTED])
        PFAIL(p, "%s: gauges M/Q/P %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", records %" PRIu64
                 "/%" PRIu64 "/%" PRIu64, when, st.chunks_mapped, st.chunks_quarantined,
              st.chunks_protected, count[MMAPPER_MAPPED], count[MMAPPER_QUARANTINED],
              count[MMAPPER_PROTECTED]);
    for (size_t i = 0; i < NCHUNKS; i++) {
        if (now[i] != MMAPPER_MAPPED)
            continue;
        bool kept = old[i] == MMAPPER_MAPPED || old[i] == MMAPPER_PROTECTED;
        uint64_t want = kept ? tag(i) : 0;
        uint64_t head = *(uint64_t *)chunk_at(i), tail = *((uint64_t *)chunk_at(i + 1) - 1);
        if (head != want || tail != want)
            PFAIL(p, "%s: chunk %zu (was %d) holds %#" PRIx64 "/%#" PRIx64 ", expected %#"
                     PRIx64, when, i, old[i], head, tail, want);
    }
    return done;
}

/* One injection point of a range scenario; false if the fault never fired
 * (the call makes fewer than k calls of that kind). */
static bool run_range_point(struct point *p)
{
    open_point(p);
    test_os_reset_counts(&p->tos);
    test_os_fail(&p->tos, p->f->call, p->k, p->f->err, p->sticky);
    int rc = do_op(p);
    test_os_clear_faults(&p->tos);
    bool fired = atomic_load(&p->tos.faults) > 0;
    size_t done = check_consistent(p, "after the faulty call");
    if (!fired) {
        if (rc != 0 || done != NCHUNKS)
            PFAIL(p, "no fault fired, yet returned %d with %zu chunks done", rc, done);
        close_point(p);
        return false;
    }
    if (rc == 0 && done != NCHUNKS)
        PFAIL(p, "returned 0 with only %zu of %d chunks in their new state", done, NCHUNKS);
    if (rc != 0 && rc != -p->f->err)
        PFAIL(p, "returned %d (%s), injected %d", rc, mmapper_strerror(rc), -p->f->err);
    absorbed += rc == 0;

    uint64_t names_before = test_os_calls(&p->tos, TOS_SET_NAME);
    int rc2 = do_op(p);
    if (rc2 != 0)
        PFAIL(p, "retry after clearing faults returned %d (%s)", rc2, mmapper_strerror(rc2));
    done = check_consistent(p, "after the retry");
    if (done != NCHUNKS)
        PFAIL(p, "retry left chunk %zu in its old state", done);
    if (p->f->call == TOS_SET_NAME && p->f->err == EINVAL &&
        test_os_calls(&p->tos, TOS_SET_NAME) != names_before)
        PFAIL(p, "naming EINVAL did not stop later naming attempts");
    close_point(p);
    return true;
}

static bool run_anywhere_point(struct point *p)
{
    const size_t bytes = 8 * chunk;
    open_point(p);
    int64_t held_before = atomic_load(&p->ledger.outside_bytes);
    test_os_reset_counts(&p->tos);
    test_os_fail(&p->tos, p->f->call, p->k, p->f->err, p->sticky);
    void *out = (void *)&out;
    int rc = mmapper_quarantine_anywhere(p->m, bytes, &opts, &out);
    test_os_clear_faults(&p->tos);
    bool fired = atomic_load(&p->tos.faults) > 0;
    struct mmapper_stats st;
    mmapper_get_stats(p->m, &st);
    char why[600];
    if (os_ledger_verify(&p->ledger, p->m, why, sizeof(why)) != 0)
        PFAIL(p, "ledger: %s", why);
    if (rc != 0) {
        if (!fired || rc != -p->f->err)
            PFAIL(p, "returned %d (%s), fault fired: %d", rc, mmapper_strerror(rc), fired);
        if (out != (void *)&out)
            PFAIL(p, "failed but wrote *out");
        if (st.chunks_quarantined != 0 || st.slabs != 0)
            PFAIL(p, "failed but recorded %" PRIu64 " chunks", st.chunks_quarantined);
        /* When munmap keeps failing, the reservation cannot be given back. */
        bool munmap_stuck = p->sticky && (p->f->call == TOS_MUNMAP || p->f->call == TOS_ANY);
        int64_t left = atomic_load(&p->ledger.outside_bytes) - held_before;
        if (left < 0)
            PFAIL(p, "failed, and unmapped %" PRId64 " bytes more than it had mapped: "
                     "memory it no longer owned (another thread may have mapped it)", -left);
        if (!munmap_stuck && left != 0)
            PFAIL(p, "failed and left %" PRId64 " bytes of reservation behind", left);
        CHECK_RC(mmapper_quarantine_anywhere(p->m, bytes, &opts, &out), 0,
                 "quarantine_anywhere retry");
    } else if (fired) {
        absorbed++;
    }
    if (procmaps_check(p->m, out, bytes, true, why, sizeof(why)) != 0)
        PFAIL(p, "/proc/self/maps: %s", why);
    if (!p->sticky && atomic_load(&p->ledger.outside_bytes) - held_before != (int64_t)bytes)
        PFAIL(p, "holds %" PRId64 " bytes outside the range after reserving %zu",
              atomic_load(&p->ledger.outside_bytes) - held_before, bytes);
    for (size_t i = 0; i < 8; i++)
        if (mmapper_state(p->m, (char *)out + i * chunk) != MMAPPER_QUARANTINED)
            PFAIL(p, "chunk %zu of the reservation not Quarantined", i);
    CHECK_RC(mmapper_unmap(p->m, out, bytes), 0, "unmap of the reservation");
    close_point(p);
    return fired;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 1, .ops = MAX_K, .rounds = 1, .exact_ops = true };
    stress_parse(argc, argv, "fail every system call of every multi-chunk call in turn "
                             "(--ops: largest k tried)", &o);
    if (stress_emulated())
        stress_skip_emulated("qemu-user's mincore() answers ENOMEM for PROT_NONE pages, "
                             "which the decommit fallback rightly reads as a range gone");
    chunk = (size_t)1 << LOG_CHUNK;
    size_t span;
    char *free_span = stress_free_span((size_t)2 * STRESS_SLAB_CHUNKS * chunk, 24,
                                       STRESS_SLAB_CHUNKS * chunk, &span);
    range = free_span + (STRESS_SLAB_CHUNKS - NCHUNKS / 2) * chunk;

    uint64_t fired_total = 0;
    long max_calls = 0;
    for (size_t s = 0; s < sizeof(scenarios) / sizeof(*scenarios); s++) {
        for (size_t f = 0; f < sizeof(faults) / sizeof(*faults); f++) {
            for (int sticky = 0; sticky < 2; sticky++) {
                for (long k = 1;; k++) {
                    CHECK(k <= (long)o.ops, "%s, %s: fault still firing at call %ld",
                          scenarios[s].name, faults[f].name, k);
                    struct point p = { .sc = &scenarios[s], .f = &faults[f],
                                       .sticky = sticky, .k = k };
                    points++;
                    bool fired = scenarios[s].op == S_ANYWHERE ? run_anywhere_point(&p)
                                                               : run_range_point(&p);
                    if (!fired)
                        break;
                    fired_total++;
                    by_scenario[s]++;
                    if (k > max_calls)
                        max_calls = k;
                }
            }
        }
    }
    CHECK(procmaps_range_free(range, NCHUNKS * chunk), "range not empty at the end");
    stress_summary("injection points covered: %" PRIu64 " (ensure_mapped %" PRIu64
                   ", quarantine %" PRIu64 ", protect %" PRIu64 ", decommit %" PRIu64
                   ", unmap %" PRIu64 ", quarantine_anywhere %" PRIu64 "; %" PRIu64
                   " absorbed with full success; up to %ld calls of one kind per call)",
                   fired_total, by_scenario[0], by_scenario[1], by_scenario[2],
                   by_scenario[3], by_scenario[4], by_scenario[5], absorbed, max_calls);
    return 0;
}
