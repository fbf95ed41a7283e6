/*
 * The summary block: `name: value` lines for scripts, then one
 * `target_NAME: met|missed (value op limit)` line per goal.  Values that
 * need a scenario or thread count that was not run read "n/a".
 */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "report.h"

static double ns(const char *table, const char *impl, int threads)
{
    const struct row *r = report_find(table, impl, threads);
    return r ? r->ns_per_op : NAN;
}

static double mops(const char *table, const char *impl, int threads)
{
    const struct row *r = report_find(table, impl, threads);
    return r ? r->mops : NAN;
}

static void value(const char *name, double v)
{
    if (isnan(v))
        printf("%s: n/a\n", name);
    else
        printf("%s: %.*f\n", name, fabs(v) >= 100 ? 0 : fabs(v) >= 10 ? 1 : 3, v);
}

/* "target_NAME: met: 1.20 <= 1.50" or "target_NAME: missed: 2.35 > 2.00":
 * the relation printed is the one that holds. */
static void target(const char *name, double v, bool at_most, double limit)
{
    if (isnan(v)) {
        printf("target_%s: n/a\n", name);
        return;
    }
    bool met = at_most ? v <= limit : v >= limit;
    const char *rel = at_most ? (met ? "<=" : ">") : (met ? ">=" : "<");
    printf("target_%s: %s: %.3f %s %.3f\n", name, met ? "met" : "missed", v, rel, limit);
}

void report_summary(const struct facts *f)
{
    double is_mapped = ns("is-mapped-hit", "mmapper", 1);
    double limit = ns("is-mapped-hit", "limit", 1);
    double prior = ns("is-mapped-hit", "prior-art", 1);
    double scale2 = mops("is-mapped-hit", "mmapper", 2) / mops("is-mapped-hit", "mmapper", 1);
    double scale64 = mops("is-mapped-hit", "mmapper", 64) / mops("is-mapped-hit", "mmapper", 2);
    double fast_page = ns("fast-path-page", "mmapper", 1);
    double fast_chunk = ns("fast-path-chunk", "mmapper", 1);
    double fresh = ns("fresh-disjoint", "mmapper", 1) / ns("fresh-disjoint", "syscall", 1);
    const struct row *race64 = report_find("race-same", "mmapper", 64);
    double race_ratio = race64 ? race64->extra : NAN;
    double vs_mutex = mops("is-mapped-hit", "mmapper", 2) /
                      mops("is-mapped-hit", "global-mutex", 2);
    double empty = f->meta_done ? (double)f->meta_empty_bytes : NAN;
    double per_gib = f->meta_done ? f->meta_per_gib : NAN;
    const char *race_exact = !f->race_ran ? "n/a" : f->race_exact ? "yes" : "no";

    printf("\n== summary ==\n");
    value("is_mapped_ns_1t", is_mapped);
    value("is_mapped_miss_ns_1t", ns("is-mapped-miss", "mmapper", 1));
    value("is_mapped_limit_ns_1t", limit);
    value("is_mapped_prior_art_ns_1t", prior);
    value("is_mapped_ratio_to_limit", is_mapped / limit);
    value("is_mapped_ratio_to_prior_art", is_mapped / prior);
    value("is_mapped_scaling_2t", scale2);
    value("is_mapped_scaling_64t_vs_2t", scale64);
    /* Controls: the flat array has nothing shared to write, so it shows what
     * the machine itself allows for scaling right now. */
    value("is_mapped_limit_scaling_2t",
          mops("is-mapped-hit", "limit", 2) / mops("is-mapped-hit", "limit", 1));
    value("is_mapped_limit_scaling_64t_vs_2t",
          mops("is-mapped-hit", "limit", 64) / mops("is-mapped-hit", "limit", 2));
    value("fast_path_ns_1t", fast_page);
    value("fast_path_chunk_ns_1t", fast_chunk);
    value("fast_path_ratio_to_is_mapped", fast_page / is_mapped);
    value("fresh_ns_1t", ns("fresh-disjoint", "mmapper", 1));
    value("fresh_syscall_ns_1t", ns("fresh-disjoint", "syscall", 1));
    value("fresh_ratio_to_syscall", fresh);
    printf("race_syscalls_equal_chunks: %s\n", race_exact);
    value("race_wall_ratio_64t", race_ratio);
    value("race_idle_round_ratio_64t", f->race_ran ? f->race_idle_ratio_64t : NAN);
    value("vs_global_mutex_is_mapped_2t", vs_mutex);
    value("metadata_bytes_empty", empty);
    value("metadata_bytes_per_gib", per_gib);
    value("metadata_bytes_per_gib_sparse", f->meta_done ? f->meta_per_gib_sparse : NAN);
    double many = ns("is-mapped-many-hit", "mmapper", 1);
    double many_prior = ns("is-mapped-many-hit", "prior-art", 1);
    double scan = ns("conservative-scan", "mmapper", 1);
    double scan_prior = ns("conservative-scan", "prior-art", 1);
    double fresh2 = ns("fresh-disjoint", "mmapper", 2) / ns("fresh-disjoint", "limit", 2);
    double race_limit = ns("race-same", "mmapper", 64) / ns("race-same", "limit", 64);
    value("is_mapped_many_ns_1t", many);
    value("is_mapped_many_ratio_to_prior_art", many / many_prior);
    value("scan_ns_per_word", scan);
    value("scan_prior_art_ns_per_word", scan_prior);
    value("scan_ratio_to_prior_art", scan / scan_prior);
    value("fresh_2t_ratio_to_limit", fresh2);
    value("race_ratio_to_limit_64t", race_limit);

    /* large-table: the worst size for single lookups; for batches the
     * sizes where caches no longer hold the table (10^5, 10^6). */
    static const char *const sizes[LT_SIZES] = { "1e4", "1e5", "1e6" };
    double scale_single_max = NAN, scale_many_max = NAN;
    for (int si = 0; si < LT_SIZES; si++) {
        char table[32], key[64];
        snprintf(table, sizeof(table), "large-table-%s", sizes[si]);
        double single = ns(table, "mmapper", 1) / ns(table, "prior-art", 1);
        snprintf(key, sizeof(key), "scale_is_mapped_ns_%s", sizes[si]);
        value(key, ns(table, "mmapper", 1));
        snprintf(key, sizeof(key), "scale_is_mapped_ratio_to_prior_art_%s", sizes[si]);
        value(key, single);
        snprintf(table, sizeof(table), "large-table-many-%s", sizes[si]);
        double many_ratio = ns(table, "mmapper", 1) / ns(table, "prior-art", 1);
        snprintf(key, sizeof(key), "scale_many_ratio_to_prior_art_%s", sizes[si]);
        value(key, many_ratio);
        if (!isnan(single) && !(single <= scale_single_max))
            scale_single_max = single;
        if (si > 0 && !isnan(many_ratio) && !(many_ratio <= scale_many_max))
            scale_many_max = many_ratio;
    }
    value("scale_is_mapped_ratio_to_prior_art_max", scale_single_max);
    value("scale_many_ratio_to_prior_art_max", scale_many_max);
    value("scale_metadata_bytes_per_slab",
          f->scale_done ? f->scale_meta_per_slab[0][LT_SIZES - 1] : NAN);
    value("scale_prior_art_metadata_bytes_per_slab",
          f->scale_done ? f->scale_meta_per_slab[1][LT_SIZES - 1] : NAN);

    target("is_mapped_vs_prior_art", is_mapped / prior, true, 2.0);
    target("is_mapped_scaling_2t", scale2, false, 1.8);
    target("is_mapped_scaling_64t_vs_2t", scale64, false, 0.9);
    target("fast_path_vs_is_mapped", fast_page / is_mapped, true, 1.5);
    target("fresh_vs_syscall", fresh, true, 1.10);
    printf("target_race_syscalls_exact: %s\n",
           !f->race_ran ? "n/a" : f->race_exact ? "met" : "missed");
    target("vs_global_mutex_is_mapped_2t", vs_mutex, false, 10);
    target("metadata_empty_bytes", empty, true, 64 * 1024);
    target("metadata_bytes_per_gib", per_gib, true, 1024);
    target("is_mapped_many_vs_prior_art", many / many_prior, true, 1.2);
    target("fresh_2t_vs_limit", fresh2, true, 1.10);
    target("race_64t_vs_limit", race_limit, true, 1.10);
    target("scale_is_mapped_vs_prior_art", scale_single_max, true, 2.0);
    target("scale_many_vs_prior_art", scale_many_max, true, 1.0);
    fflush(stdout);
}
