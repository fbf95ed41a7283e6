/*
 * stress_table: the slab table grows, shrinks and retires slabs while
 * readers look up addresses all over the address space.
 *
 * Writers take chunks (4 MiB) at random across a free span of up to 2^46
 * bytes, so nearly every chunk lands in a slab of its own: thousands of slabs
 * come and go, the hash table is rebuilt several times, and slabs are retired
 * and freed after grace periods while readers may still hold them.  Chunk i
 * of the span belongs to writer i % writers; chunks with (i / writers) even
 * are taken with quarantine(), odd ones are mapped by the writer itself and
 * recorded with mark_as_mapped(); either way they are given back with
 * unmap().  Each writer fills up to --ops chunks, then all writers meet and
 * one of them checks stats.slabs and /proc/self/maps against what they
 * hold, then they drain everything in random order; --rounds times.
 *
 * Readers meanwhile check, at random chunks of the span, that the state is
 * one the chunk's kind allows (Unmapped or Quarantined for even chunks,
 * Unmapped or Mapped for odd ones); at random addresses outside the span
 * (anywhere below 2^57, and beyond it) that the state is Unmapped; and at
 * "stable" chunks set up before the writers start, that the state is exactly
 * what it was set to (and Mapped ones hold their data).
 *
 * At the end every slab of the span is gone: stats.slabs counts only the
 * stable region's slab, and 0 once it is unmapped.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "procmaps.h"
#include "stress_util.h"
#include "test_os.h"

#define NSTABLE 16

struct shared {
    mmapper_t *m;
    struct test_os tos;
    struct stress_opts opts;
    unsigned writers, readers;
    char *span;
    size_t span_chunks, chunk;
    char *stable;
    pthread_barrier_t writers_meet;
    bool more;                        /* another round follows (writer 0 decides) */
    double started;
    _Atomic bool writers_done;
    uint64_t **held;                  /* per writer: chunk indices it holds */
    size_t *nheld;
    _Atomic uint64_t quarantines, marks, unmaps, foreign, lookups;
    _Atomic uint64_t peak_slabs, peak_capacity;
};

struct thread {
    struct shared *s;
    unsigned id;
    struct rng rng;
};

static const mmapper_state_t stable_state[4] = { MMAPPER_MAPPED, MMAPPER_QUARANTINED,
                                                 MMAPPER_PROTECTED, MMAPPER_UNMAPPED };

static bool marked_kind(const struct shared *s, uint64_t i)
{
    return (i / s->writers) % 2 == 1;
}

static char *span_chunk(const struct shared *s, uint64_t i)
{
    return s->span + i * s->chunk;
}

static uint64_t slab_key(const struct shared *s, const void *p)
{
    return (uintptr_t)p / (STRESS_SLAB_CHUNKS * s->chunk);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void update_peak(_Atomic uint64_t *peak, uint64_t v)
{
    uint64_t old = atomic_load(peak);
    while (v > old && !atomic_compare_exchange_weak(peak, &old, v)) {
    }
}

/* ---- writers ------------------------------------------------------------ */

/* Take chunk i; false if a foreign mapping occupies it. */
static bool take(struct shared *s, uint64_t i)
{
    char *p = span_chunk(s, i);
    if (marked_kind(s, i)) {
        void *got = mmap(p, s->chunk, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (got == MAP_FAILED) {
            CHECK(errno == EEXIST, "mmap of span chunk %" PRIu64 ": errno %d", i, errno);
            return false;
        }
        CHECK(got == p, "kernel ignored MAP_FIXED_NOREPLACE");
        CHECK_RC(mmapper_mark_as_mapped(s->m, p, s->chunk), 0, "mark_as_mapped");
        CHECK(mmapper_is_mapped(s->m, p), "chunk %" PRIu64 " not Mapped after mark", i);
        atomic_fetch_add_explicit(&s->marks, 1, memory_order_relaxed);
        return true;
    }
    int rc = mmapper_quarantine(s->m, p, s->chunk, NULL);
    if (rc == -EEXIST) {
        CHECK(!procmaps_range_free(p, s->chunk),
              "quarantine of chunk %" PRIu64 " said -EEXIST but nothing is mapped there", i);
        CHECK(mmapper_state(s->m, p) == MMAPPER_UNMAPPED, "failed quarantine changed state");
        return false;
    }
    CHECK_RC(rc, 0, "quarantine");
    CHECK(mmapper_state(s->m, p) == MMAPPER_QUARANTINED, "chunk %" PRIu64 " not Quarantined",
          i);
    atomic_fetch_add_explicit(&s->quarantines, 1, memory_order_relaxed);
    return true;
}

static void give_back(struct shared *s, uint64_t i)
{
    char *p = span_chunk(s, i);
    CHECK_RC(mmapper_unmap(s->m, p, s->chunk), 0, "unmap");
    CHECK(mmapper_state(s->m, p) == MMAPPER_UNMAPPED, "chunk %" PRIu64 " not Unmapped", i);
    atomic_fetch_add_explicit(&s->unmaps, 1, memory_order_relaxed);
}

/* Writers parked: every held chunk is recorded and mapped as its kind says,
 * and the live slabs are exactly the slabs holding them plus the stable one. */
static void check_peak(struct shared *s)
{
    /* Empty slabs may still wait for the reclaimer (RETIRE_LIMIT). */
    CHECK_RC(mmapper_reclaim_wait(s->m), 0, "reclaim_wait at the peak");
    struct procmaps pm;
    CHECK(procmaps_read(&pm) == 0, "cannot read /proc/self/maps");
    uint64_t held = 0;
    uint64_t *slabs = malloc(sizeof(uint64_t) * (s->opts.ops * s->writers + 1));
    /* Slabs holding a chunk: the held ones' and the stable region's. */
    CHECK(slabs != NULL, "out of memory");
    size_t nslabs = 0;
    for (unsigned w = 0; w < s->writers; w++) {
        for (size_t k = 0; k < s->nheld[w]; k++, held++) {
            uint64_t i = s->held[w][k];
            mmapper_state_t want = marked_kind(s, i) ? MMAPPER_MAPPED : MMAPPER_QUARANTINED;
            CHECK(mmapper_state(s->m, span_chunk(s, i)) == want, "held chunk %" PRIu64, i);
            const struct procmaps_region *r = procmaps_find(&pm, (uintptr_t)span_chunk(s, i));
            CHECK(r && r->end >= (uintptr_t)span_chunk(s, i + 1) &&
                      !strcmp(r->perms, want == MMAPPER_MAPPED ? "rw-p" : "---p"),
                  "held chunk %" PRIu64 " (state %d) has kernel mapping %s", i, want,
                  r ? r->perms : "none");
            slabs[nslabs++] = slab_key(s, span_chunk(s, i));
        }
    }
    procmaps_free(&pm);
    slabs[nslabs++] = slab_key(s, s->stable);
    qsort(slabs, nslabs, sizeof(*slabs), cmp_u64);
    uint64_t distinct = 0;
    for (size_t a = 0; a < nslabs; a++)
        distinct += a == 0 || slabs[a] != slabs[a - 1];
    free(slabs);
    struct mmapper_stats st;
    mmapper_get_stats(s->m, &st);
    CHECK(st.slabs == distinct,
          "%" PRIu64 " live slabs, but %" PRIu64 " held chunks and the stable ones lie in %"
          PRIu64 " slabs", st.slabs, held, distinct);
    update_peak(&s->peak_slabs, st.slabs);
    update_peak(&s->peak_capacity, st.table_capacity);
}

static void *writer_main(void *arg)
{
    struct thread *t = arg;
    struct shared *s = t->s;
    uint64_t *held = s->held[t->id];
    uint64_t mine = (s->span_chunks - t->id + s->writers - 1) / s->writers;
    unsigned round = 0;
    do {
        size_t n = 0;
        for (uint64_t k = 0; k < s->opts.ops; k++) {
            uint64_t i = t->id + rng_below(&t->rng, mine) * s->writers;
            /* Only this writer changes its chunks: the state says if it holds i. */
            if (mmapper_state(s->m, span_chunk(s, i)) != MMAPPER_UNMAPPED)
                continue;
            if (take(s, i))
                held[n++] = i;
            else
                atomic_fetch_add(&s->foreign, 1);
        }
        s->nheld[t->id] = n;
        pthread_barrier_wait(&s->writers_meet);
        if (t->id == 0)
            check_peak(s);
        pthread_barrier_wait(&s->writers_meet);
        while (n > 0) {
            size_t j = rng_below(&t->rng, n);
            give_back(s, held[j]);
            held[j] = held[--n];
        }
        round++;
        if (t->id == 0)
            s->more = s->opts.seconds > 0 ? !stress_time_up(&s->opts, s->started)
                                          : round < s->opts.rounds;
        pthread_barrier_wait(&s->writers_meet);
    } while (s->more);
    if (t->id == 0)
        s->opts.rounds = round;   /* for the summary, read after the join */
    return NULL;
}

/* ---- readers ------------------------------------------------------------ */

static void read_once(struct shared *s, struct rng *r)
{
    /* A random chunk of the span: a state its kind allows. */
    uint64_t i = rng_below(r, s->span_chunks);
    char *p = span_chunk(s, i) + rng_below(r, s->chunk);
    mmapper_state_t st = mmapper_state(s->m, p);
    bool mapped = mmapper_is_mapped(s->m, p);
    if (marked_kind(s, i))
        CHECK(st == MMAPPER_UNMAPPED || st == MMAPPER_MAPPED, "span chunk %" PRIu64 ": %d", i,
              st);
    else
        CHECK((st == MMAPPER_UNMAPPED || st == MMAPPER_QUARANTINED) && !mapped,
              "span chunk %" PRIu64 ": state %d, is_mapped %d", i, st, mapped);

    /* Anywhere else, below the limit and above it: nothing of ours. */
    uintptr_t a = (uintptr_t)(rng_next(r) & (rng_below(r, 2) ? (MMAPPER_ADDRESS_LIMIT - 1)
                                                               : ~(uintptr_t)0));
    bool in_span = a >= (uintptr_t)s->span &&
                   a < (uintptr_t)s->span + s->span_chunks * s->chunk;
    bool in_stable = a >= (uintptr_t)s->stable &&
                     a < (uintptr_t)s->stable + NSTABLE * s->chunk;
    if (!in_span && !in_stable)
        CHECK(mmapper_state(s->m, (void *)a) == MMAPPER_UNMAPPED &&
                  !mmapper_is_mapped(s->m, (void *)a),
              "address %#" PRIxPTR " outside every used range reads as ours", a);

    /* The stable chunks never change. */
    size_t k = rng_below(r, NSTABLE);
    char *q = s->stable + k * s->chunk + rng_below(r, s->chunk / 8) * 8;
    CHECK(mmapper_state(s->m, q) == stable_state[k % 4], "stable chunk %zu: state %d", k,
          mmapper_state(s->m, q));
    if (stable_state[k % 4] == MMAPPER_MAPPED) {
        CHECK(mmapper_is_mapped(s->m, q), "stable chunk %zu not Mapped", k);
        CHECK(*(volatile uint64_t *)(s->stable + k * s->chunk) == 0x5eed0000u + k,
              "stable chunk %zu lost its data", k);
    }
}

static void *reader_main(void *arg)
{
    struct thread *t = arg;
    struct shared *s = t->s;
    uint64_t n = 0;
    /* Read at least a little even if the writers finish first. */
    while (!atomic_load_explicit(&s->writers_done, memory_order_relaxed) || n < 1000) {
        read_once(s, &t->rng);
        n++;
    }
    atomic_fetch_add(&s->lookups, 3 * n);
    return NULL;
}

static void *thread_main(void *arg)
{
    struct thread *t = arg;
    return t->id < t->s->writers ? writer_main(arg) : reader_main(arg);
}

int main(int argc, char **argv)
{
    static struct shared s;
    /* Emptied slabs are freed after grace periods, which take long while
     * readers keep running on 2 cores: these defaults take a few seconds. */
    s.opts = (struct stress_opts){ .threads = 8, .ops = STRESS_SCALE(1500, 400), .rounds = 3 };
    stress_parse(argc, argv,
                 "slab table growth and reclamation under lookups (--threads: half "
                 "writers, half readers; --ops: chunks per writer per round)", &s.opts);
    CHECK(s.opts.threads >= 2, "need at least one writer and one reader");
    s.writers = s.opts.threads / 2;
    s.readers = s.opts.threads - s.writers;

    test_os_init(&s.tos);
    struct mmapper_config cfg = { .os = &s.tos.os };
    CHECK_RC(mmapper_create(&cfg, &s.m), 0, "mmapper_create");
    s.chunk = mmapper_granularity(s.m);
    stress_catch_faults(s.m);

    /* Stable chunks first, so that the span's gap lies below them. */
    s.stable = stress_region(s.m, NSTABLE * s.chunk, STRESS_SLAB_CHUNKS * s.chunk);
    for (size_t k = 0; k < NSTABLE; k++) {
        char *p = s.stable + k * s.chunk;
        if (stable_state[k % 4] == MMAPPER_UNMAPPED)
            CHECK_RC(mmapper_unmap(s.m, p, s.chunk), 0, "stable unmap");
        if (stable_state[k % 4] == MMAPPER_MAPPED || stable_state[k % 4] == MMAPPER_PROTECTED)
            CHECK_RC(mmapper_ensure_mapped(s.m, p, s.chunk, NULL), 0, "stable map");
        if (stable_state[k % 4] == MMAPPER_MAPPED)
            *(volatile uint64_t *)p = 0x5eed0000u + k;
        if (stable_state[k % 4] == MMAPPER_PROTECTED)
            CHECK_RC(mmapper_protect(s.m, p, s.chunk), 0, "stable protect");
    }

    size_t span_bytes;
#if UINTPTR_MAX > 0xffffffffu
    /* (qemu-user cannot track a reservation of 2^46 bytes: 2^36 there.) */
    s.span = stress_free_span((size_t)1 << (stress_emulated() ? 36 : 46), 34,
                              STRESS_SLAB_CHUNKS * s.chunk, &span_bytes);
#else   /* 32-bit: what a 4 GiB address space has free */
    s.span = stress_free_span((size_t)1 << 30, 26, STRESS_SLAB_CHUNKS * s.chunk, &span_bytes);
#endif
    s.span_chunks = span_bytes / s.chunk;
    s.held = calloc(s.writers, sizeof(*s.held));
    s.nheld = calloc(s.writers, sizeof(*s.nheld));
    CHECK(s.held && s.nheld, "out of memory");
    for (unsigned w = 0; w < s.writers; w++) {
        s.held[w] = calloc(s.opts.ops + 1, sizeof(uint64_t));
        CHECK(s.held[w] != NULL, "out of memory");
    }
    pthread_barrier_init(&s.writers_meet, NULL, s.writers);
    s.started = stress_now();

    struct thread *ts = calloc(s.opts.threads, sizeof(*ts));
    pthread_t *tids = calloc(s.opts.threads, sizeof(*tids));
    CHECK(ts && tids, "out of memory");
    for (unsigned i = 0; i < s.opts.threads; i++) {
        ts[i] = (struct thread){ .s = &s, .id = i };
        rng_init(&ts[i].rng, s.opts.seed, i + 1);
        CHECK(pthread_create(&tids[i], NULL, thread_main, &ts[i]) == 0, "thread %u", i);
    }
    for (unsigned i = 0; i < s.writers; i++)
        pthread_join(tids[i], NULL);
    atomic_store(&s.writers_done, true);
    for (unsigned i = s.writers; i < s.opts.threads; i++)
        pthread_join(tids[i], NULL);

    struct mmapper_stats st;
    CHECK_RC(mmapper_reclaim_wait(s.m), 0, "reclaim_wait at the end");
    mmapper_get_stats(s.m, &st);
    CHECK(st.slabs == 1, "%" PRIu64 " live slabs after the writers gave everything back, "
                         "expected only the stable one", st.slabs);
    stress_check_maps(s.m, s.stable, NSTABLE * s.chunk, true, "stable region at the end");
    CHECK_RC(mmapper_unmap(s.m, s.stable, NSTABLE * s.chunk), 0, "unmap of the stable region");
    mmapper_get_stats(s.m, &st);
    CHECK(st.slabs == 0, "%" PRIu64 " slabs left after unmapping everything", st.slabs);
    CHECK(st.chunks_mapped + st.chunks_quarantined + st.chunks_protected == 0,
          "chunk gauges not back to 0");

    stress_summary("span 2^%d bytes, %u writers x %u rounds: %" PRIu64 " quarantine + %" PRIu64
                   " mark_as_mapped, %" PRIu64 " unmap (%" PRIu64 " foreign collisions); "
                   "%u readers: %" PRIu64 " lookups; peak %" PRIu64 " slabs in a table of %"
                   PRIu64 " slots; slabs back to 0",
                   __builtin_ctzl(span_bytes), s.writers, s.opts.rounds,
                   atomic_load(&s.quarantines), atomic_load(&s.marks), atomic_load(&s.unmaps),
                   atomic_load(&s.foreign), s.readers, atomic_load(&s.lookups),
                   atomic_load(&s.peak_slabs), atomic_load(&s.peak_capacity));
    mmapper_destroy(s.m);
    pthread_barrier_destroy(&s.writers_meet);
    for (unsigned w = 0; w < s.writers; w++)
        free(s.held[w]);
    free(s.held);
    free(s.nheld);
    free(ts);
    free(tids);
    return 0;
}
