#include "config.h"

#include "stress_util.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define STRESS_HAVE_VALGRIND_H 1
#endif
#endif

#include "os_ledger.h"
#include "procmaps.h"
#include "test_os.h"

const char *stress_prog = "stress";
uint64_t stress_seed;

static void usage(const char *summary, const struct stress_opts *d, int code)
{
    fprintf(code ? stderr : stdout,
            "%s: %s\n"
            "usage: %s [--threads N] [--ops N|--steps N] [--seed S] [--seconds S]\n"
            "          [--minutes M] [--rounds N]\n"
            "defaults: --threads %u --ops %" PRIu64 " --rounds %u, a fresh seed,\n"
            "          no time limit (--seconds/--minutes run until time is up)\n",
            stress_prog, summary, stress_prog, d->threads, d->ops, d->rounds);
    exit(code);
}

static uint64_t parse_u64(const char *flag, const char *s, const char *summary,
                          const struct stress_opts *d)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || !*s) {
        fprintf(stderr, "%s: bad value '%s' for %s\n", stress_prog, s, flag);
        usage(summary, d, 2);
    }
    return v;
}

void stress_parse(int argc, char **argv, const char *summary, struct stress_opts *o)
{
    const char *slash = strrchr(argv[0], '/');
    stress_prog = slash ? slash + 1 : argv[0];
    if (!strncmp(stress_prog, "lt-", 3))   /* libtool's wrapper-run binary */
        stress_prog += 3;
    /* Under an emulator (scripts/cross.sh runs aarch64 under qemu-user,
     * ~10x slower) the defaults shrink by MMAPPER_STRESS_DIVISOR; flags
     * given on the command line are taken as they are. */
    const char *div_env = getenv("MMAPPER_STRESS_DIVISOR");
    unsigned long div = div_env ? strtoul(div_env, NULL, 10) : 1;
    if (div > 1) {
        if (!o->exact_ops)
            o->ops = o->ops / div ? o->ops / div : 1;
        o->rounds = o->rounds / div ? (unsigned)(o->rounds / div) : 1;
        o->seconds /= (double)div;
    }
    const struct stress_opts d = *o;
    o->seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 16;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h"))
            usage(summary, &d, 0);
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", stress_prog, f);
            usage(summary, &d, 2);
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--threads"))
            o->threads = (unsigned)parse_u64(f, v, summary, &d);
        else if (!strcmp(f, "--ops") || !strcmp(f, "--steps"))
            o->ops = parse_u64(f, v, summary, &d);
        else if (!strcmp(f, "--seed"))
            o->seed = parse_u64(f, v, summary, &d);
        else if (!strcmp(f, "--rounds"))
            o->rounds = (unsigned)parse_u64(f, v, summary, &d);
        else if (!strcmp(f, "--seconds") || !strcmp(f, "--minutes")) {
            char *end;
            double t = strtod(v, &end);
            if (*end || t <= 0) {
                fprintf(stderr, "%s: bad value '%s' for %s\n", stress_prog, v, f);
                usage(summary, &d, 2);
            }
            o->seconds = f[2] == 'm' ? 60 * t : t;
        } else {
            fprintf(stderr, "%s: unknown flag %s\n", stress_prog, f);
            usage(summary, &d, 2);
        }
    }
    if (o->threads == 0 || o->rounds == 0) {
        fprintf(stderr, "%s: --threads and --rounds must be positive\n", stress_prog);
        usage(summary, &d, 2);
    }
    stress_seed = o->seed;
    printf("%s: seed=%" PRIu64 " (rerun with --seed %" PRIu64 ")\n", stress_prog, o->seed,
           o->seed);
    fflush(stdout);
}

const char *stress_emulated(void)
{
    const char *e = getenv("MMAPPER_EMULATED");
    return e && *e ? e : NULL;
}

void stress_skip_emulated(const char *why)
{
    printf("%s: SKIP under %s: %s\n", stress_prog, stress_emulated(), why);
    fflush(stdout);
    exit(77);
}

static _Noreturn void vfail(const char *prefix, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fflush(stdout);
    fprintf(stderr, "%s: FAIL (seed %" PRIu64 ", rerun with --seed %" PRIu64 "): %s%s\n",
            stress_prog, stress_seed, stress_seed, prefix, msg);
    fflush(stderr);
    /* _exit: other threads may still be inside the library; atexit handlers
     * and leak checks would only add noise to the first failure. */
    _exit(1);
}

void stress_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail("", fmt, ap);
}

void stress_fail_at(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "%s:%d: (%s) ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfail(prefix, fmt, ap);
}

void stress_summary(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("%s: OK seed=%" PRIu64 " %s\n", stress_prog, stress_seed, msg);
    fflush(stdout);
}

/* ---- random numbers ----------------------------------------------------- */

void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
    r->s = seed ^ (stream * 0xD1B54A32D192ED03ull);
    rng_next(r);
}

uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

uint64_t rng_length(struct rng *r, uint64_t max)
{
    /* Half single chunks, then lengths spread over orders of magnitude. */
    uint64_t len;
    switch (rng_below(r, 4)) {
    case 0:
    case 1:
        len = 1;
        break;
    case 2:
        len = 2 + rng_below(r, 7);
        break;
    default:
        len = 1 + rng_below(r, max);
        break;
    }
    return len < max ? len : max;
}

/* ---- time and threads --------------------------------------------------- */

double stress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool stress_time_up(const struct stress_opts *o, double started)
{
    return o->seconds > 0 && stress_now() - started >= o->seconds;
}

void stress_run_threads(unsigned n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t *tids = calloc(n, sizeof(*tids));
    CHECK(tids != NULL, "out of memory for %u threads", n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)1 << 20);
    for (unsigned i = 0; i < n; i++) {
        int err = pthread_create(&tids[i], &attr, fn, (char *)args + i * arg_size);
        CHECK(err == 0, "pthread_create #%u: %s", i, strerror(err));
    }
    pthread_attr_destroy(&attr);
    for (unsigned i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

/* ---- regions ------------------------------------------------------------ */

bool stress_under_valgrind(void)
{
#ifdef STRESS_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND;
#else
    return false;
#endif
}

/* Far above where valgrind puts things, below where kernels put them. */
#if UINTPTR_MAX > 0xffffffffu
#define VALGRIND_HIGH ((uintptr_t)0x3f0000000000)
#define VALGRIND_STEP ((uintptr_t)1 << 36)
#else
#define VALGRIND_HIGH ((uintptr_t)0xb0000000u)
#define VALGRIND_STEP ((uintptr_t)1 << 26)
#endif

static void *valgrind_region(mmapper_t *m, size_t bytes, size_t align)
{
    for (uintptr_t a = (VALGRIND_HIGH - bytes) & ~(align - 1); a > VALGRIND_HIGH / 2;
         a -= VALGRIND_STEP) {
        if (procmaps_range_free((void *)a, bytes + STRESS_GUARD) &&
            mmapper_quarantine(m, (void *)a, bytes, NULL) == 0)
            return (void *)a;
    }
    stress_fail("no free range of %zu bytes high up for valgrind", bytes);
}

void *stress_region(mmapper_t *m, size_t bytes, size_t align)
{
    size_t chunk = mmapper_granularity(m);
    if (align < chunk)
        align = chunk;
    if (stress_under_valgrind())
        return valgrind_region(m, bytes, align);
    size_t total = bytes + align - chunk + STRESS_GUARD;
    void *p = NULL;
    int err = mmapper_quarantine_anywhere(m, total, NULL, &p);
    CHECK(err == 0, "quarantine_anywhere(%zu bytes): %s", total, mmapper_strerror(err));
    char *start = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (start > (char *)p) {
        err = mmapper_unmap(m, p, (size_t)(start - (char *)p));
        CHECK(err == 0, "unmapping below the region: %s", mmapper_strerror(err));
    }
    /* The guard goes on top: the kernel searches from high addresses down. */
    err = mmapper_unmap(m, start + bytes, (size_t)((char *)p + total - (start + bytes)));
    CHECK(err == 0, "unmapping the guard above the region: %s", mmapper_strerror(err));
    return start;
}

void *stress_free_span(size_t want, unsigned min_log, size_t align, size_t *got)
{
    for (size_t size = want; stress_under_valgrind() && size >= ((size_t)1 << min_log);
         size /= 2) {
        uintptr_t a = (VALGRIND_HIGH / 2 - size) & ~(uintptr_t)(align - 1);
        if (size < VALGRIND_HIGH / 2 && procmaps_range_free((void *)a, size + STRESS_GUARD)) {
            *got = size;
            return (void *)a;
        }
    }
    for (size_t size = want; size >= ((size_t)1 << min_log); size /= 2) {
        size_t total = size + align + STRESS_GUARD;
        void *p = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED)
            continue;
        munmap(p, total);
        *got = size;
        return (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    }
    stress_fail("no free address range of even 2^%u bytes", min_log);
}

/* ---- cross-checks ------------------------------------------------------- */

void stress_check_maps(const mmapper_t *m, const void *start, size_t bytes, bool strict,
                       const char *when)
{
    char why[256] = "";
    if (procmaps_check(m, start, bytes, strict, why, sizeof(why)) != 0)
        stress_fail("kernel disagrees with the recorded states %s: %s", when, why);
}

void stress_check_settled(const mmapper_t *m, const void *start, size_t bytes,
                          const char *when)
{
    size_t chunk = mmapper_granularity(m);
    for (uintptr_t c = (uintptr_t)start; c < (uintptr_t)start + bytes; c += chunk) {
        mmapper_state_t st = mmapper_state(m, (void *)c);
        CHECK((unsigned)st <= MMAPPER_PROTECTED, "chunk %#" PRIxPTR " state %d %s", c, st,
              when);
        CHECK(mmapper_is_mapped(m, (void *)c) == (st == MMAPPER_MAPPED),
              "chunk %#" PRIxPTR " is_mapped disagrees with state %d %s (left mid-transition)",
              c, st, when);
    }
}

void stress_check_ledger(struct os_ledger *l, const mmapper_t *m, const char *when)
{
    char why[600] = "";
    if (os_ledger_verify(l, m, why, sizeof(why)) != 0)
        stress_fail("system-call ledger %s: %s", when, why);
}

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif

bool stress_kernel_has_names(void)
{
    static int known = -1;   /* main thread, before any worker starts */
    if (known < 0) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED, "mmap of one page");
        known = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, (unsigned long)page,
                      (unsigned long)"probe") == 0;
        munmap(p, page);
    }
    return known;
}

#define N(ctx) ((struct names_os *)(ctx))

static int n_mmap(void *ctx, void *addr, size_t len, int prot, int flags, void **out)
{
    return N(ctx)->t->os.mmap(N(ctx)->t, addr, len, prot, flags, out);
}

static int n_munmap(void *ctx, void *addr, size_t len)
{
    return N(ctx)->t->os.munmap(N(ctx)->t, addr, len);
}

static int n_mprotect(void *ctx, void *addr, size_t len, int prot)
{
    return N(ctx)->t->os.mprotect(N(ctx)->t, addr, len, prot);
}

static int n_madvise(void *ctx, void *addr, size_t len, int advice)
{
    return N(ctx)->t->os.madvise(N(ctx)->t, addr, len, advice);
}

static int n_set_name(void *ctx, void *addr, size_t len, const char *name)
{
    struct names_os *n = N(ctx);
    uint64_t injected = atomic_load(&n->t->faults);
    int err = n->t->os.set_name(n->t, addr, len, name);
    if (err == -EINVAL && n->pretend && atomic_load(&n->t->faults) == injected)
        return 0;   /* the kernel's "no names here", not a fault under test */
    return err;
}

void stress_names_os_init(struct names_os *n, struct test_os *t)
{
    n->os = (struct mmapper_os){ .ctx = n, .mmap = n_mmap, .munmap = n_munmap,
                                 .mprotect = n_mprotect, .madvise = n_madvise,
                                 .set_name = n_set_name, .page_size = t->os.page_size };
    n->t = t;
    n->pretend = !stress_kernel_has_names();
}

static const mmapper_t *fault_mapper;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char msg[256];
    uintptr_t a = (uintptr_t)si->si_addr;
    int st = fault_mapper ? (int)mmapper_state(fault_mapper, si->si_addr) : -1;
    int n = snprintf(msg, sizeof(msg),
                     "%s: FAIL (seed %" PRIu64 ", rerun with --seed %" PRIu64
                     "): %s at %#" PRIxPTR " (chunk state now %d)\n",
                     stress_prog, stress_seed, stress_seed,
                     sig == SIGSEGV ? "SIGSEGV" : "SIGBUS", a, st);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        _exit(1);
    _exit(1);
}

void stress_catch_faults(const mmapper_t *m)
{
    fault_mapper = m;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}
