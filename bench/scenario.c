#include "config.h"

#include "scenario.h"

#include <stdlib.h>

#include "util.h"

void measure_interleaved(const struct bench *b, const char *table, struct measure *m, int n,
                         struct team *t, const struct measure_spec *s)
{
    int reps = b->o->reps;
    double *wall = calloc((size_t)(n * reps), sizeof(double));
    uint64_t *ops = calloc((size_t)(n * reps), sizeof(uint64_t));
    uint64_t *total_ops = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *syscalls = calloc((size_t)n, sizeof(uint64_t));
    if (!wall || !ops || !total_ops || !syscalls)
        die("out of memory");
    struct budget budget = bench_budget(b);
    for (int r = -1; r < reps; r++) {
        /* The warm-up round (r == -1) is shorter and not recorded. */
        struct budget rb = budget;
        if (r < 0) {
            rb.seconds /= 4;
            rb.iters = (rb.iters + 3) / 4;
        }
        for (int i = 0; i < n; i++) {
            if (s->prepare)
                s->prepare(&m[i], team_size(t));
            uint64_t before = m[i].impl->syscalls(m[i].self);
            struct round_result res = team_round(t, s->work, &m[i], rb);
            uint64_t made = m[i].impl->syscalls(m[i].self) - before;
            if (s->cleanup)
                s->cleanup(&m[i]);
            if (r < 0)
                continue;
            wall[i * reps + r] = res.wall_ns;
            ops[i * reps + r] = res.ops;
            total_ops[i] += res.ops;
            syscalls[i] += made;
        }
    }
    for (int i = 0; i < n; i++)
        report_add(row_from_reps(table, m[i].impl->name, team_size(t), &wall[i * reps],
                                 &ops[i * reps], reps,
                                 total_ops[i] ? (double)syscalls[i] / (double)total_ops[i] : 0));
    free(wall);
    free(ops);
    free(total_ops);
    free(syscalls);
}

void unmap_window(const struct bench *b, const struct impl *impl, void *self)
{
    check(impl->unmap(self, (void *)b->base, b->chunks << b->o->log_chunk), "unmap window");
    if (impl->quiesce)
        impl->quiesce(self);
}

void layout_contig_map(const struct bench *b, const struct impl *impl, void *self)
{
    size_t chunk = b->o->chunk;
    check(impl->quarantine(self, (void *)b->base, LAYOUT_CONTIG_CHUNKS * chunk),
          "quarantine contiguous region");
    for (uintptr_t c = 0; c < LAYOUT_CONTIG_CHUNKS; c++)
        check(impl->ensure_mapped(self, chunk_at(b, c), chunk), "map contiguous region");
}

uintptr_t layout_sparse_first(uintptr_t span)
{
    /* Vary the position so the mapped chunks do not all share an index. */
    return span * SPAN_CHUNKS + (span * 37) % (SPAN_CHUNKS - LAYOUT_SPARSE_RUN);
}

void layout_sparse_map(const struct bench *b, const struct impl *impl, void *self)
{
    for (uintptr_t s = 0; s < LAYOUT_SPARSE_SPANS; s++)
        check(impl->ensure_mapped(self, chunk_at(b, layout_sparse_first(s)),
                                  LAYOUT_SPARSE_RUN * b->o->chunk),
              "map sparse region");
}

uintptr_t **addr_arrays_new(int threads, size_t n)
{
    uintptr_t **a = calloc((size_t)threads, sizeof(*a));
    if (!a)
        die("out of memory");
    for (int i = 0; i < threads; i++)
        if ((a[i] = aligned_alloc(64, n * sizeof(uintptr_t))) == NULL)
            die("out of memory");
    return a;
}

void addr_arrays_free(uintptr_t **a, int threads)
{
    for (int i = 0; i < threads; i++)
        free(a[i]);
    free(a);
}
