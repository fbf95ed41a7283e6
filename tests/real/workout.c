/*
 * An ordinary malloc program for the preload module's tests
 * (tests/real/module.sh), knowing nothing of mmapper: it runs the same
 * under any malloc, and its output is the same under any malloc.
 *
 * Threads malloc, realloc and free objects of 8 B to 16 MiB (small ones
 * from the tcache, large ones from the arenas, the largest from jemalloc's
 * huge arena), each filled with a pattern checked before it is freed or
 * grown; then the main thread forks a child that checks and frees the
 * inherited heap and allocates its own, while the threads go on.  It prints
 * a summary that depends only on the seed.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define SLOTS 64
#define STEPS 20000

struct object {
    unsigned char *p;
    size_t n;
    unsigned tag;
};

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(const struct object *o)
{
    for (size_t i = 0; i < o->n; i += 61)
        o->p[i] = (unsigned char)(o->tag + i / 61);
}

static int check(const struct object *o, size_t n)
{
    for (size_t i = 0; i < n && i < o->n; i += 61)
        if (o->p[i] != (unsigned char)(o->tag + i / 61))
            return 0;
    return 1;
}

static size_t size_for(uint64_t *s)
{
    unsigned r = (unsigned)(next(s) % 1000);
    unsigned bits = r < 900 ? 3 + r % 10 : r < 995 ? 12 + r % 8 : 22 + r % 3;   /* to 16 MiB */
    return 8 + (size_t)(next(s) % ((uint64_t)1 << bits));
}

struct work {
    uint64_t seed;
    struct object slot[SLOTS];
    unsigned long bad, mallocs, bytes_checked;
};

static void step(struct work *w)
{
    struct object *o = &w->slot[next(&w->seed) % SLOTS];
    if (o->p) {
        size_t keep = o->n;
        if (!check(o, keep))
            w->bad++;
        w->bytes_checked += keep;
        if (next(&w->seed) % 3 == 0) {
            size_t n = size_for(&w->seed);
            unsigned char *q = realloc(o->p, n);
            if (!q) {
                w->bad++;
                return;
            }
            o->p = q;
            o->n = n < keep ? n : keep;
            if (!check(o, o->n))
                w->bad++;
            o->n = n;
            fill(o);
            return;
        }
        free(o->p);
        o->p = NULL;
        return;
    }
    o->n = size_for(&w->seed);
    o->tag = (unsigned)next(&w->seed);
    o->p = malloc(o->n);
    w->mallocs++;
    if (!o->p) {
        w->bad++;
        return;
    }
    fill(o);
}

static void *run(void *arg)
{
    struct work *w = arg;
    for (unsigned i = 0; i < STEPS; i++)
        step(w);
    return NULL;
}

static unsigned long release(struct work *w)
{
    unsigned long bad = 0;
    for (unsigned i = 0; i < SLOTS; i++)
        if (w->slot[i].p) {
            bad += !check(&w->slot[i], w->slot[i].n);
            free(w->slot[i].p);
            w->slot[i].p = NULL;
        }
    return bad;
}

int main(void)
{
    static struct work w[THREADS + 1];
    for (unsigned i = 0; i <= THREADS; i++)
        w[i].seed = 0x9E3779B97F4A7C15ull * (i + 1);
    run(&w[THREADS]);   /* a heap for the child to inherit */
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, run, &w[i]) != 0)
            return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* Only this thread exists here; the others' objects are in the
         * heap we inherited, in whatever state the fork found them. */
        unsigned long bad = release(&w[THREADS]);
        struct work mine = { .seed = 42 };
        run(&mine);
        bad += mine.bad + release(&mine);
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    unsigned long bad = 0, mallocs = 0, checked = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad + release(&w[i]);
        mallocs += w[i].mallocs;
        checked += w[i].bytes_checked;
    }
    bad += release(&w[THREADS]);
    printf("workout: %u threads, %lu mallocs, %lu bytes checked, %lu bad; child %s\n", THREADS,
           mallocs, checked, bad,
           WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");
    return bad || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}
