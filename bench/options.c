#include "config.h"

#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char usage[] =
    "usage: mmbench [--full] [--threads 1,2,4,16,64] [--seconds S | --iters N]\n"
    "               [--reps N] [--rounds N] [--log-chunk 12..22] [--seed S]\n"
    "               [--csv FILE] [--scenario NAME[,NAME]]\n"
    "scenarios: race-same fresh-disjoint mapped-fast-path is-mapped conservative-scan alloc-mix churn\n"
    "           large-table\n"
    "The quick profile (default) takes about a minute; --full takes several.\n";

static const char *const scenario_names[] = {
    "race-same", "fresh-disjoint", "mapped-fast-path", "is-mapped", "conservative-scan", "alloc-mix", "churn",
    "large-table",
};

static void bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "mmbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    exit(2);
}

static uint64_t parse_u64(const char *s, const char *flag)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || s[0] == '-')
        bad("bad value for %s", flag);
    return v;
}

static void parse_threads(struct options *o, const char *list)
{
    o->nthreads = 0;
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t n = parse_u64(t, "--threads");
        if (n < 1 || n > 1024 || o->nthreads == MAX_THREAD_COUNTS)
            bad("bad --threads list '%s'", list);
        o->threads[o->nthreads++] = (int)n;
    }
    free(copy);
    if (o->nthreads == 0)
        bad("empty --threads list '%s'", list);
}

static void check_scenarios(const char *list)
{
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool known = false;
        for (size_t i = 0; i < sizeof(scenario_names) / sizeof(*scenario_names); i++)
            known |= strcmp(t, scenario_names[i]) == 0;
        if (!known)
            bad("unknown scenario '%s'", t);
    }
    free(copy);
}

bool options_wants(const struct options *o, const char *scenario)
{
    if (!o->scenarios)
        return true;
    size_t n = strlen(scenario);
    for (const char *p = o->scenarios; (p = strstr(p, scenario)) != NULL; p += n) {
        bool starts = p == o->scenarios || p[-1] == ',';
        if (starts && (p[n] == ',' || p[n] == '\0'))
            return true;
    }
    return false;
}

void options_parse(struct options *o, int argc, char **argv)
{
    static const int default_threads[] = { 1, 2, 4, 16, 64 };
    memset(o, 0, sizeof(*o));
    o->log_chunk = 22;
    o->seed = 42;
    for (size_t i = 0; i < sizeof(default_threads) / sizeof(*default_threads); i++)
        o->threads[o->nthreads++] = default_threads[i];
    double seconds = 0;
    int reps = 0, rounds = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = strcmp(a, "--full") != 0 && strcmp(a, "--help") != 0 &&
                           strcmp(a, "-h") != 0;
        if (takes_value && !v)
            bad("%s needs a value", a);
        if (!strcmp(a, "--full")) {
            o->full = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "--threads")) {
            parse_threads(o, v);
        } else if (!strcmp(a, "--seconds")) {
            char *end;
            seconds = strtod(v, &end);
            if (*end || !(seconds > 0 && seconds <= 600))
                bad("bad --seconds '%s'", v);
        } else if (!strcmp(a, "--iters")) {
            o->iters = parse_u64(v, a);
            if (o->iters == 0)
                bad("bad --iters '%s'", v);
        } else if (!strcmp(a, "--reps")) {
            reps = (int)parse_u64(v, a);
            if (reps < 1 || reps > 64)
                bad("--reps %s: 1..64", v);
        } else if (!strcmp(a, "--rounds")) {
            rounds = (int)parse_u64(v, a);
            if (rounds < 1 || rounds > 1024)
                bad("--rounds %s: 1..1024", v);
        } else if (!strcmp(a, "--log-chunk")) {
            o->log_chunk = (unsigned)parse_u64(v, a);
        } else if (!strcmp(a, "--seed")) {
            o->seed = parse_u64(v, a);
        } else if (!strcmp(a, "--csv")) {
            o->csv = v;
        } else if (!strcmp(a, "--scenario")) {
            check_scenarios(v);
            o->scenarios = v;
        } else {
            bad("unknown option '%s'", a);
        }
        i += takes_value;
    }

    long page = sysconf(_SC_PAGESIZE);
    o->page = page > 0 ? (size_t)page : 4096;
    /* The benchmark windows are 2^20 chunks per implementation, side by side
     * in a 47-bit address space: beyond 4 MiB chunks they would not fit. */
    if ((1ul << o->log_chunk) < o->page || o->log_chunk > 22) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%u", o->log_chunk);
        bad("--log-chunk %s: the benchmark supports log2(page size)..22", buf);
    }
    o->chunk = (size_t)1 << o->log_chunk;
    o->seconds = seconds > 0 ? seconds : o->full ? 0.4 : 0.03;
    o->reps = reps > 0 ? reps : o->full ? 9 : 5;
    o->rounds = rounds > 0 ? rounds : o->full ? 101 : 15;
}
