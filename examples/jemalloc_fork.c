/*
 * fork() inside a jemalloc arena on mmapper, in both orders of atfork
 * registration.
 *
 * jemalloc registers its fork handlers when it initialises (its first
 * allocation); mmapper registers its own in its first mmapper_create.
 * Prepare handlers run in the reverse order of registration, so:
 *   mmapper-first    mmapper_create before jemalloc's first allocation:
 *                    jemalloc's prepare runs first, mmapper's last;
 *   jemalloc-first   an allocation before mmapper_create: mmapper's prepare
 *                    runs first, while threads inside jemalloc's extent
 *                    hooks may hold arena mutexes and be inside mmapper.
 * Eight threads mallocx/dallocx/rallocx through the mmapper arena while the
 * main thread forks 200 times; each child allocates, fills, checks and
 * frees through the same arena and exits within its deadline.  The program
 * runs itself once per order (JEMALLOC_FORK_ORDER) and passes only if no
 * child hung or failed in either.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hang_report.h"
#include "jemalloc_hooks.h"

#define THREADS 8
#define FORKS 200
#define DEADLINE_S 20

extern char **environ;

static unsigned arena;
static _Atomic bool stop;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 64)
        p[i] = (unsigned char)(seed + i / 64);
}

static bool check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 64)
        if (p[i] != (unsigned char)(seed + i / 64))
            return false;
    return true;
}

static int flags(void)
{
    return (int)MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *held[16] = { 0 };
    size_t sizes[16] = { 0 };
    while (!atomic_load(&stop)) {
        unsigned k = (unsigned)rand_r(&seed) % 16;
        if (held[k]) {
            if (!check(held[k], sizes[k], k)) {
                fprintf(stderr, "FAIL: contents lost\n");
                exit(1);
            }
            if (rand_r(&seed) % 2) {
                size_t n = 8 + (size_t)rand_r(&seed) % (1 << 20);
                void *q = rallocx(held[k], n, flags());
                if (q) {
                    held[k] = q;
                    sizes[k] = n;
                    fill(q, n, k);
                }
                continue;
            }
            dallocx(held[k], flags());
            held[k] = NULL;
        } else {
            sizes[k] = 8 + (size_t)rand_r(&seed) % (1 << (8 + rand_r(&seed) % 14));
            held[k] = mallocx(sizes[k], flags());
            if (held[k])
                fill(held[k], sizes[k], k);
        }
    }
    for (unsigned k = 0; k < 16; k++)
        if (held[k])
            dallocx(held[k], flags());
    return NULL;
}

static void child(void)
{
    alarm(DEADLINE_S);
    for (unsigned i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (4 + i % 18);
        unsigned char *p = mallocx(n, flags());
        if (!p)
            _exit(2);
        fill(p, n, i);
        if (!check(p, n, i))
            _exit(3);
        dallocx(p, flags());
    }
    _exit(0);
}

static int run_order(const char *order)
{
    bool jemalloc_first = strcmp(order, "jemalloc-first") == 0;
    if (jemalloc_first)
        free(malloc(1));   /* jemalloc initialises and registers first */
    mmapper_t *m;
    struct mmapper_extent_hooks *h;
    int err = mmapper_create(NULL, &m);
    if (err || (err = mmapper_extent_hooks_create(m, &h)) != 0 ||
        (err = mmapper_extent_hooks_arena_create(h, &arena)) != 0) {
        fprintf(stderr, "FAIL: set-up: %d\n", err);
        return 1;
    }
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    unsigned hung = 0, failed = 0;
    double total = 0;
    for (unsigned k = 0; k < FORKS; k++) {
        double t0 = now();
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "FAIL: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0)
            child();
        bool stuck = false;
        int status = hang_reap(pid, DEADLINE_S + 5, "jemalloc_fork: child", &stuck);
        hung += stuck;
        total += now() - t0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("%s: %d forks with %d threads in the mmapper arena: %u hung, %u failed, "
           "%.1f ms per child\n", order, FORKS, THREADS, hung, failed, total / FORKS * 1e3);
    return hung || failed;
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

int main(int argc, char **argv)
{
    (void)argc;
#ifdef UNDER_TSAN
    /* jemalloc's prepare handler locks every arena mutex at once, past
     * ThreadSanitizer's limit of 64 held mutexes (a CHECK failure in TSan
     * itself, gcc 12): fork under jemalloc cannot run under TSan. */
    printf("SKIP: jemalloc_fork under ThreadSanitizer\n");
    return 77;
#endif
    const char *order = getenv("JEMALLOC_FORK_ORDER");
    if (order)
        return run_order(order);
    /* Run each order in a fresh process: registration happens once. */
    static const char *orders[] = { "mmapper-first", "jemalloc-first" };
    int failures = 0;
    for (int i = 0; i < 2; i++) {
        setenv("JEMALLOC_FORK_ORDER", orders[i], 1);
        pid_t pid;
        if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0) {
            fprintf(stderr, "FAIL: posix_spawn\n");
            return 1;
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAIL: order %s (status %#x)\n", orders[i], status);
            failures++;
        }
    }
    return failures ? 1 : 0;
}
