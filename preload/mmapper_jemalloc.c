/*
 * libmmapper-jemalloc.so: every jemalloc arena of an unmodified program on
 * one mmapper instance.  Preloaded after jemalloc (mmapper-run does both),
 * its constructor sets the extent hooks of jemalloc_hooks.c on:
 *
 *  - every automatic arena, 0 to opt.narenas - 1.  jemalloc initialises an
 *    automatic arena lazily (when a thread first lands on it) with its
 *    default hooks, and tells nobody; but writing arena.<i>.extent_hooks of
 *    an automatic arena not yet initialised initialises it with the hooks
 *    written (ctl.c).  So all of them are initialised here, with ours: an
 *    arena costs its first base block (2 MiB reserved, a few pages
 *    touched) and nothing else until a thread uses it.
 *  - the huge arena (allocations above opt.oversize_threshold), which
 *    jemalloc creates on the first such allocation.  It is created here
 *    instead, by pointing this thread at it for a moment (thread.arena
 *    initialises the arena it is given), with the decay settings jemalloc
 *    gives it (no delay, arena_choose_huge), then hooked like the others.
 *  - every manual arena that exists already and still has the default
 *    hooks.  An arena with hooks of its own (the program's) is left alone,
 *    as is a manual arena the program creates later.
 *
 * jemalloc took some memory with its default hooks before this ran (its
 * first allocation usually comes from the dynamic loader or libc); those
 * extents reach our hooks later and are handled as jemalloc's own
 * (jemalloc_hooks.c, "Extents the hooks did not create").
 *
 * Inside a host program this code never calls malloc (the constructor
 * calls mallctl, and mmapper_create may create the library's thread), and
 * never stops the program: any trouble at start-up prints one line on
 * stderr and leaves the program on plain jemalloc.  Configuration is by
 * environment (mmapper-run(1)): MMAPPER_CHUNK_LOG, MMAPPER_STATS,
 * MMAPPER_STATS_SIGNAL.
 */
#include "config.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jemalloc_hooks.h"
#include "mmapper.h"

/* 2 MiB: jemalloc reserves in steps of whole huge pages (its retained
 * growth starts at 2 MiB and each arena's base blocks are 2 MiB), so its
 * reservations fill whole chunks, and purging a free run of pages gives
 * whole chunks back once 2 MiB of them are free together.  Larger chunks
 * waste the rest of each 2 MiB reservation; much smaller ones turn every
 * purge into protection changes that split the heap into thousands of
 * kernel mappings (vm.max_map_count is 65530). */
#define DEFAULT_CHUNK_LOG 21

typedef int mallctl_fn(const char *name, void *oldp, size_t *oldlenp, void *newp,
                       size_t newlen);

static mallctl_fn *ctl;
static mmapper_t *mapper;
static struct mmapper_extent_hooks *hooks;
static unsigned arenas_hooked;
static pid_t loaded_in;   /* the stats line is this process's, not a child's */
static bool stats_at_exit;

/* ---- one line on stderr, without malloc ------------------------------------ */

struct line {
    char buf[1024];
    size_t len;
};

static void put(struct line *l, const char *s)
{
    while (*s && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = *s++;
}

static void put_u64(struct line *l, uint64_t v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && l->len < sizeof(l->buf) - 1)
        l->buf[l->len++] = d[--n];
}

static void put_int(struct line *l, int v)
{
    if (v < 0) {
        put(l, "-");
        put_u64(l, (uint64_t)-(int64_t)v);
    } else {
        put_u64(l, (uint64_t)v);
    }
}

/* Many programs close stderr on their way out (GNU tools, through gnulib's
 * close_stdout, before destructors run); the exit line goes to a copy made
 * at start-up, if it is still the same file. */
static int exit_fd = -1;
static dev_t exit_dev;
static ino_t exit_ino;

static void keep_stderr(void)
{
    struct stat st;
    exit_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 64);
    if (exit_fd >= 0 && fstat(exit_fd, &st) == 0) {
        exit_dev = st.st_dev;
        exit_ino = st.st_ino;
    } else if (exit_fd >= 0) {
        close(exit_fd);
        exit_fd = -1;
    }
}

static int exit_stream(void)
{
    struct stat st;
    if (exit_fd >= 0 && fstat(exit_fd, &st) == 0 && st.st_dev == exit_dev &&
        st.st_ino == exit_ino)
        return exit_fd;
    return STDERR_FILENO;
}

static void emit_to(int fd, struct line *l)
{
    l->buf[l->len++] = '\n';
    for (size_t off = 0; off < l->len;) {
        ssize_t n = write(fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;   /* a stale errno must never keep us here */
        off += (size_t)n;
    }
}

static void emit(struct line *l)
{
    emit_to(STDERR_FILENO, l);
}

/* "mmapper: <what>; running on plain jemalloc" */
static void step_aside(const char *what, const char *detail)
{
    struct line l = { .len = 0 };
    put(&l, "mmapper: ");
    put(&l, what);
    if (detail) {
        put(&l, " (");
        put(&l, detail);
        put(&l, ")");
    }
    put(&l, "; running on plain jemalloc");
    emit(&l);
}

/* ---- configuration ------------------------------------------------------------ */

/* MMAPPER_CHUNK_LOG: a decimal integer, 0 or unset for the default.  The
 * range is mmapper_create's to judge (page size to 30). */
static bool chunk_log(unsigned *out)
{
    const char *s = getenv("MMAPPER_CHUNK_LOG");
    *out = DEFAULT_CHUNK_LOG;
    if (!s || !*s)
        return true;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100)
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *out = v ? v : DEFAULT_CHUNK_LOG;
    return true;
}

/* ---- finding jemalloc ----------------------------------------------------------- */

/* Whether the malloc this program calls is jemalloc's (whose object is
 * `je`).  dlsym finds the first definition in the global scope, except in
 * a non-PIE executable that takes malloc's address (CPython does): there it
 * finds the executable's own PLT entry, an undefined symbol with a value,
 * kept so that &malloc compares equal everywhere.  The definition behind it
 * is then the first among the loaded objects, in load order (the
 * executable, the preloaded ones, their dependencies): jemalloc must come
 * before libc. */
static bool malloc_is_jemallocs(const Dl_info *je)
{
    void *mal = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info mi = { 0 };
    const ElfW(Sym) *sym = NULL;
    if (!mal || !dladdr1(mal, &mi, (void **)&sym, RTLD_DL_SYMENT))
        return false;
    if (mi.dli_fbase == je->dli_fbase)
        return true;
    if (!sym || sym->st_shndx != SHN_UNDEF)
        return false;   /* defined elsewhere: libc's, or the program's own */
    for (const struct link_map *l = _r_debug.r_map; l; l = l->l_next) {
        if (l->l_name && strcmp(l->l_name, je->dli_fname) == 0)
            return true;
        const char *base = l->l_name ? strrchr(l->l_name, '/') : NULL;
        if (base && strncmp(base, "/libc.so", 8) == 0)
            return false;
    }
    return false;
}

/* Find jemalloc's mallctl, if jemalloc provides the malloc this program
 * calls; else say why not on stderr and return false. */
static bool find_jemalloc(void)
{
    void *m = dlsym(RTLD_DEFAULT, "mallctl");
    Dl_info je = { 0 };
    if (!m || !dladdr(m, &je)) {
        struct line l = { .len = 0 };
        put(&l, "mmapper: jemalloc is not loaded (no mallctl): preload libjemalloc.so.2 first;"
                " running on the program's own malloc");
        emit(&l);
        return false;
    }
    if (!malloc_is_jemallocs(&je)) {
        struct line l = { .len = 0 };
        put(&l, "mmapper: jemalloc (");
        put(&l, je.dli_fname ? je.dli_fname : "?");
        put(&l, ") is loaded but malloc is not its: preload libjemalloc.so.2 first;"
                " running on the program's own malloc");
        emit(&l);
        return false;
    }
    ctl = (mallctl_fn *)m;
    return true;
}

/* ---- switching the arenas ------------------------------------------------------- */

static int read_unsigned(const char *name, unsigned *v)
{
    size_t sz = sizeof(*v);
    return ctl(name, v, &sz, NULL, 0);
}

/* "arena.<i>.<leaf>" */
static void arena_name(char *buf, size_t cap, unsigned i, const char *leaf)
{
    struct line l = { .len = 0 };
    put(&l, "arena.");
    put_u64(&l, i);
    put(&l, ".");
    put(&l, leaf);
    size_t n = l.len < cap - 1 ? l.len : cap - 1;
    memcpy(buf, l.buf, n);
    buf[n] = '\0';
}

/* Set our hooks on arena i if it has `expected` (jemalloc's defaults);
 * 1 if set, 0 if left alone, or minus mallctl's error. */
static int hook_arena(unsigned i, extent_hooks_t *expected)
{
    char name[64];
    arena_name(name, sizeof(name), i, "extent_hooks");
    extent_hooks_t *cur, *ours = mmapper_extent_hooks_table(hooks);
    size_t sz = sizeof(cur);
    int err = ctl(name, &cur, &sz, NULL, 0);
    if (err == EFAULT)
        return 0;   /* a manual arena index not in use (destroyed) */
    if (err)
        return -err;
    if (cur != expected)
        return 0;   /* the program's own hooks, or ours already */
    err = ctl(name, NULL, NULL, &ours, sizeof(ours));
    return err ? -err : 1;
}

/* Create the huge arena now, as arena_choose_huge would (jemalloc 5.3):
 * same index, eager decay. */
static int create_huge_arena(unsigned ind)
{
    unsigned mine;
    size_t sz = sizeof(mine);
    int err = ctl("thread.arena", &mine, &sz, &ind, sizeof(ind));
    if (err)
        return err;
    err = ctl("thread.arena", NULL, NULL, &mine, sizeof(mine));
    ssize_t dirty, muzzy, zero = 0;
    sz = sizeof(dirty);
    char name[64];
    if (!err && ctl("arenas.dirty_decay_ms", &dirty, &sz, NULL, 0) == 0 && dirty > 0) {
        arena_name(name, sizeof(name), ind, "dirty_decay_ms");
        err = ctl(name, NULL, NULL, &zero, sizeof(zero));
    }
    sz = sizeof(muzzy);
    if (!err && ctl("arenas.muzzy_decay_ms", &muzzy, &sz, NULL, 0) == 0 && muzzy > 0) {
        arena_name(name, sizeof(name), ind, "muzzy_decay_ms");
        err = ctl(name, NULL, NULL, &zero, sizeof(zero));
    }
    return err;
}

/* 0, or a positive mallctl error with *failed_arena set. */
static int hook_all_arenas(unsigned *failed_arena)
{
    unsigned autos, total;
    size_t threshold, sz = sizeof(threshold);
    int err = read_unsigned("opt.narenas", &autos);
    if (!err)
        err = ctl("opt.oversize_threshold", &threshold, &sz, NULL, 0);
    *failed_arena = 0;
    if (err)
        return err;
    /* Arena 0 is initialised, by jemalloc's first allocation: its hooks
     * now are jemalloc's defaults (a program's own cannot be set before a
     * preloaded constructor runs). */
    extent_hooks_t *defaults;
    sz = sizeof(defaults);
    if ((err = ctl("arena.0.extent_hooks", &defaults, &sz, NULL, 0)) != 0)
        return err;
    /* A huge arena exists when the threshold is a large size class
     * (arena_init_huge turns it to 0 otherwise); its index is the first
     * after the automatic arenas. */
    if (threshold != 0 && (err = create_huge_arena(autos)) != 0) {
        *failed_arena = autos;
        return err;
    }
    if ((err = read_unsigned("arenas.narenas", &total)) != 0)
        return err;
    for (unsigned i = 0; i < total; i++) {
        int r = hook_arena(i, defaults);
        if (r < 0) {
            *failed_arena = i;
            return -r;
        }
        arenas_hooked += (unsigned)r;
    }
    return 0;
}

/* ---- the stats line ------------------------------------------------------------------ */

static void print_stats(int fd)
{
    struct mmapper_stats s;
    mmapper_get_stats(mapper, &s);
    struct mmapper_extent_hooks_stats h;
    mmapper_extent_hooks_get_stats(hooks, &h);
    struct line l = { .len = 0 };
    put(&l, "mmapper:");
#define KEY(name, v)         \
    do {                     \
        put(&l, " " name "="); \
        put_u64(&l, (v));    \
    } while (0)
    /* Every field of struct mmapper_stats, under its own name (tests/real
     * checks the list against the header). */
#define FIELD(f) KEY(#f, s.f)
    FIELD(mmap_calls);
    FIELD(munmap_calls);
    FIELD(mprotect_calls);
    FIELD(madvise_calls);
    FIELD(name_calls);
    FIELD(chunks_quarantined);
    FIELD(chunks_mapped);
    FIELD(chunks_protected);
    FIELD(slabs);
    FIELD(table_capacity);
    FIELD(metadata_bytes);
#undef FIELD
    /* Then the module's own. */
    KEY("chunk_bytes", mmapper_granularity(mapper));
    KEY("arenas_hooked", arenas_hooked);
    KEY("hook_allocs", h.allocs);
    KEY("hook_alloc_failures", h.alloc_failures);
    KEY("hook_commits", h.commits);
    KEY("hook_decommits", h.decommits);
    KEY("hook_purges", h.purges);
    KEY("hook_dallocs", h.dallocs);
    KEY("hook_foreign", h.foreign);
    KEY("pid", (uint64_t)getpid());
#undef KEY
    emit_to(fd, &l);
}

__attribute__((destructor)) static void mmapper_jemalloc_fini(void)
{
    if (stats_at_exit && mapper && getpid() == loaded_in)
        print_stats(exit_stream());
}

/* Everything print_stats calls is lock-free (the statistics are atomic
 * loads) and write(2): async-signal-safe. */
static void stats_on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    print_stats(STDERR_FILENO);
    errno = saved;
}

/* MMAPPER_STATS_SIGNAL=N: print the line whenever signal N arrives (for a
 * long-running program; a handler the program installs later wins). */
static void install_stats_signal(void)
{
    const char *s = getenv("MMAPPER_STATS_SIGNAL");
    if (!s || !*s)
        return;
    int sig = 0;
    for (const char *p = s; *p && sig <= 64; p++)
        sig = *p >= '0' && *p <= '9' ? sig * 10 + (*p - '0') : 1000;
    struct sigaction sa = { .sa_handler = stats_on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sig < 1 || sig > 64 || sig == SIGKILL || sig == SIGSTOP ||
        sigaction(sig, &sa, NULL) != 0) {
        struct line l = { .len = 0 };
        put(&l, "mmapper: MMAPPER_STATS_SIGNAL=");
        put(&l, s);
        put(&l, " is not a signal number that can be caught; no statistics on a signal");
        emit(&l);
    }
}

/* ---- start-up ---------------------------------------------------------------------------- */

__attribute__((constructor)) static void mmapper_jemalloc_init(void)
{
    const char *stats = getenv("MMAPPER_STATS");
    unsigned log;
    if (!chunk_log(&log)) {
        step_aside("MMAPPER_CHUNK_LOG is not a number", getenv("MMAPPER_CHUNK_LOG"));
        return;
    }
    if (!find_jemalloc())
        return;
    unsigned page_log = 0;
    while (((size_t)1 << page_log) < (size_t)sysconf(_SC_PAGESIZE))
        page_log++;
    if (log < page_log || log > 30) {
        struct line l = { .len = 0 };
        put(&l, "mmapper: MMAPPER_CHUNK_LOG=");
        put_u64(&l, log);
        put(&l, " is out of range (");
        put_u64(&l, page_log);
        put(&l, ", the page, to 30); running on plain jemalloc");
        emit(&l);
        return;
    }
    mmapper_t *m;
    int err = mmapper_create(&(struct mmapper_config){ .log_chunk_bytes = log }, &m);
    if (err) {
        step_aside("cannot create the mapper", mmapper_strerror(err));
        return;
    }
    if ((err = mmapper_extent_hooks_create(m, &hooks)) != 0) {
        step_aside("cannot create the extent hooks", mmapper_strerror(err));
        mmapper_destroy(m);
        return;
    }
    mmapper_extent_hooks_retain(hooks);   /* see jemalloc_hooks.h */
    mapper = m;
    loaded_in = getpid();
    stats_at_exit = stats && strcmp(stats, "0") != 0 && *stats;
    if (stats_at_exit)
        keep_stderr();
    install_stats_signal();
    unsigned failed;
    if ((err = hook_all_arenas(&failed)) != 0) {
        /* Arenas hooked so far stay hooked: they work, and their extents
         * are ours now. */
        struct line l = { .len = 0 };
        put(&l, "mmapper: arena ");
        put_u64(&l, failed);
        put(&l, " and later ones stay on plain jemalloc (mallctl error ");
        put_int(&l, err);
        put(&l, "); ");
        put_u64(&l, arenas_hooked);
        put(&l, " arenas run on mmapper");
        emit(&l);
    }
}
