#include "config.h"

#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static struct row *rows;
static size_t nrows, cap;

struct row row_from_reps(const char *table, const char *impl, int threads,
                         const double *wall_ns, const uint64_t *ops, int reps,
                         double syscalls)
{
    int n = reps > 0 ? reps : 0;
    double *per_op = malloc(sizeof(double) * (size_t)(n + 1));
    if (!per_op)
        die("out of memory");
    for (int i = 0; i < n; i++)
        per_op[i] = ops[i] ? wall_ns[i] / (double)ops[i] : NAN;
    double ns = median(per_op, (size_t)n);
    free(per_op);
    return (struct row){ .table = table, .impl = impl, .threads = threads, .ns_per_op = ns,
                         .mops = ns > 0 ? 1e3 / ns : NAN, .syscalls = syscalls,
                         .ratio = NAN, .extra = NAN, .reps = n };
}

void report_add(struct row r)
{
    if (nrows == cap) {
        cap = cap ? 2 * cap : 256;
        rows = realloc(rows, cap * sizeof(*rows));
        if (!rows)
            die("out of memory");
    }
    rows[nrows++] = r;
}

const struct row *report_find(const char *table, const char *impl, int threads)
{
    for (size_t i = 0; i < nrows; i++)
        if (!strcmp(rows[i].table, table) && !strcmp(rows[i].impl, impl) &&
            rows[i].threads == threads)
            return &rows[i];
    return NULL;
}

/* Four significant digits without exponents, right-aligned in `width`. */
static void put_num(double v, int width)
{
    if (isnan(v))
        printf("%*s", width, "-");
    else
        printf("%*.*f", width, v < 10 ? 3 : v < 100 ? 2 : v < 1000 ? 1 : 0, v);
}

void report_print(const struct table *t)
{
    for (size_t i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (strcmp(r->table, t->name))
            continue;
        const struct row *ref = report_find(t->name, "mmapper", r->threads);
        r->ratio = ref && ref->ns_per_op > 0 ? r->ns_per_op / ref->ns_per_op : NAN;
    }
    printf("\n== %s: %s ==\n", t->name, t->title);
    printf("%7s  %-13s %11s %11s %10s %10s", "threads", "impl", "ns/op", "Mops/s",
           t->syscalls_label, "x mmapper");
    if (t->extra_label)
        printf(" %10s", t->extra_label);
    putchar('\n');
    /* Grouped by thread count (in the order first measured), rows of one
     * group in the order added. */
    int seen[64], nseen = 0;
    for (size_t i = 0; i < nrows; i++) {
        bool dup = false;
        for (int k = 0; k < nseen; k++)
            dup |= seen[k] == rows[i].threads;
        if (!strcmp(rows[i].table, t->name) && !dup && nseen < 64)
            seen[nseen++] = rows[i].threads;
    }
    for (int k = 0; k < nseen; k++) {
        if (k)
            putchar('\n');
        for (size_t i = 0; i < nrows; i++) {
            const struct row *r = &rows[i];
            if (strcmp(r->table, t->name) || r->threads != seen[k])
                continue;
            printf("%7d  %-13s", r->threads, r->impl);
            put_num(r->ns_per_op, 12);
            put_num(r->mops, 12);
            put_num(r->syscalls, 11);
            put_num(r->ratio, 11);
            if (t->extra_label)
                put_num(r->extra, 11);
            putchar('\n');
        }
    }
    fflush(stdout);
}

void report_write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    fprintf(f, "table,impl,threads,ns_per_op,mops_per_s,syscalls,ratio_to_mmapper,extra,reps\n");
    for (size_t i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        fprintf(f, "%s,%s,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%d\n", r->table, r->impl, r->threads,
                r->ns_per_op, r->mops, r->syscalls, r->ratio, r->extra, r->reps);
    }
    if (fclose(f) != 0)
        die("cannot write %s", path);
}
