#include "config.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmapper.h"

volatile _Atomic uint64_t bench_sink;

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mmbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void check(int err, const char *what)
{
    if (err)
        die("%s: %s", what, mmapper_strerror(err));
}

void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[bench] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
