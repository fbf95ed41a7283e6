#include "config.h"

#include "procmaps.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf)
            break;
        if (n == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

int procmaps_read(struct procmaps *pm)
{
    size_t len;
    char *text = slurp("/proc/self/maps", &len);
    pm->regions = NULL;
    pm->count = 0;
    if (!text)
        return -errno ? -errno : -ENOMEM;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    pm->regions = calloc(lines + 1, sizeof(*pm->regions));
    if (!pm->regions) {
        free(text);
        return -ENOMEM;
    }
    for (char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        else
            next = line + strlen(line);
        struct procmaps_region *r = &pm->regions[pm->count];
        int name_at = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %*s %*s %*s %n", &r->start, &r->end,
                   r->perms, &name_at) < 3)
            continue;
        if (name_at > 0)
            snprintf(r->name, sizeof(r->name), "%s", line + name_at);
        pm->count++;
    }
    free(text);
    return 0;
}

void procmaps_free(struct procmaps *pm)
{
    free(pm->regions);
    pm->regions = NULL;
    pm->count = 0;
}

const struct procmaps_region *procmaps_find(const struct procmaps *pm, uintptr_t addr)
{
    size_t lo = 0, hi = pm->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < pm->regions[mid].start)
            hi = mid;
        else if (addr >= pm->regions[mid].end)
            lo = mid + 1;
        else
            return &pm->regions[mid];
    }
    return NULL;
}

/* First region that ends after addr (may start after it), or NULL. */
static const struct procmaps_region *first_ending_after(const struct procmaps *pm,
                                                        uintptr_t addr)
{
    size_t lo = 0, hi = pm->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pm->regions[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pm->count ? &pm->regions[lo] : NULL;
}

long procmaps_count_vmas(void)
{
    size_t len;
    char *text = slurp("/proc/self/maps", &len);
    if (!text)
        return -ENOMEM;
    long lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    free(text);
    return lines;
}

bool procmaps_range_free(const void *start, size_t len)
{
    struct procmaps pm;
    if (procmaps_read(&pm) != 0)
        return false;
    const struct procmaps_region *r = first_ending_after(&pm, (uintptr_t)start);
    bool free_ = !r || r->start >= (uintptr_t)start + len;
    procmaps_free(&pm);
    return free_;
}

bool procmaps_perms_at(const void *addr, char perms[5])
{
    struct procmaps pm;
    if (procmaps_read(&pm) != 0)
        return false;
    const struct procmaps_region *r = procmaps_find(&pm, (uintptr_t)addr);
    if (r)
        memcpy(perms, r->perms, 5);
    procmaps_free(&pm);
    return r != NULL;
}

bool procmaps_name_at(const void *addr, char *name, size_t n)
{
    struct procmaps pm;
    if (procmaps_read(&pm) != 0)
        return false;
    const struct procmaps_region *r = procmaps_find(&pm, (uintptr_t)addr);
    if (r)
        snprintf(name, n, "%s", r->name);
    procmaps_free(&pm);
    return r != NULL;
}

static const char *state_name(mmapper_state_t s)
{
    static const char *names[] = { "Unmapped", "Quarantined", "Mapped", "Protected" };
    return (unsigned)s < 4 ? names[s] : "?";
}

/* Does [lo, hi) lie entirely in mappings whose perms satisfy want? */
static bool covered(const struct procmaps *pm, uintptr_t lo, uintptr_t hi,
                    bool (*want)(const char *perms), const char **bad_perms)
{
    *bad_perms = "none";
    while (lo < hi) {
        const struct procmaps_region *r = procmaps_find(pm, lo);
        if (!r)
            return false;
        if (!want(r->perms)) {
            *bad_perms = r->perms;
            return false;
        }
        lo = r->end;
    }
    return true;
}

static bool perms_rw(const char *p)
{
    return !strcmp(p, "rw-p") || !strcmp(p, "rwxp");
}

static bool perms_none(const char *p)
{
    return !strcmp(p, "---p");
}

int procmaps_check(const mmapper_t *m, const void *start, size_t bytes,
                   bool strict_unmapped, char *why, size_t n)
{
    size_t chunk = mmapper_granularity(m);
    if (!chunk || bytes == 0)
        return -1;
    struct procmaps pm;
    if (procmaps_read(&pm) != 0) {
        if (why)
            snprintf(why, n, "cannot read /proc/self/maps");
        return -1;
    }
    uintptr_t lo = (uintptr_t)start & ~(chunk - 1);
    uintptr_t hi = ((uintptr_t)start + bytes + chunk - 1) & ~(chunk - 1);
    int rc = 0;
    for (uintptr_t c = lo; c < hi && rc == 0; c += chunk) {
        mmapper_state_t st = mmapper_state(m, (void *)c);
        const char *bad = "none";
        bool ok = true;
        switch (st) {
        case MMAPPER_MAPPED:
            ok = covered(&pm, c, c + chunk, perms_rw, &bad);
            break;
        case MMAPPER_QUARANTINED:
        case MMAPPER_PROTECTED:
            ok = covered(&pm, c, c + chunk, perms_none, &bad);
            break;
        default:
            if (strict_unmapped) {
                const struct procmaps_region *r = first_ending_after(&pm, c);
                ok = !r || r->start >= c + chunk;
                if (!ok)
                    bad = r->perms;
            }
            break;
        }
        if (!ok) {
            rc = -1;
            if (why)
                snprintf(why, n, "chunk %#" PRIxPTR " recorded %s but kernel has %s", c,
                         state_name(st), bad);
        }
    }
    procmaps_free(&pm);
    return rc;
}
