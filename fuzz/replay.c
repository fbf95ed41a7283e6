/*
 * Replays inputs of the libFuzzer harness (fuzz/harness.c) without libFuzzer:
 * `make check` runs it, built with the ordinary compiler, over the seed
 * corpus and every regression input.
 *
 *   replay [FILE|DIR]...
 *
 * With no argument: $top_srcdir/fuzz/corpus and $top_srcdir/fuzz/regressions
 * (top_srcdir from the environment, as `make check` sets it; else ".").
 * Files in a directory run in name order; names starting with '.' or ending
 * in .md are skipped.  A divergence aborts (the harness prints it first).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static unsigned replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "replay: out of memory\n");
            return 1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    replayed++;
    return 0;
}

static int skip_name(const char *name)
{
    size_t len = strlen(name);
    return name[0] == '.' || (len > 3 && !strcmp(name + len - 3, ".md"));
}

static int filter(const struct dirent *d)
{
    return !skip_name(d->d_name);
}

static int replay_path(const char *path, int must_exist)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!must_exist)
            return 0;
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, filter, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int err = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            err |= replay_file(full);
        free(names[i]);
    }
    free(names);
    return err;
}

int main(int argc, char **argv)
{
    /* The harness expects each call's exact system calls from a kernel
     * that honours MAP_FIXED_NOREPLACE; qemu-user 7.2 takes it as a hint
     * (scripts/cross.sh sets MMAPPER_EMULATED). */
    const char *emu = getenv("MMAPPER_EMULATED");
    if (emu && *emu && argc == 1) {
        printf("replay: SKIP under %s: MAP_FIXED_NOREPLACE is only a hint there\n", emu);
        return 77;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    int err = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            err |= replay_path(argv[i], 1);
    } else {
        const char *top = getenv("top_srcdir");
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/fuzz/corpus", top && *top ? top : ".");
        err |= replay_path(dir, 1);
        snprintf(dir, sizeof(dir), "%s/fuzz/regressions", top && *top ? top : ".");
        err |= replay_path(dir, 0);
    }
    printf("replay: %u inputs replayed, all agree with the model\n", replayed);
    return err;
}
