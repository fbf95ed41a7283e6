/*
 * Shared fixture of the Criterion unit suites.  A mapper runs on top of a
 * recording layer that sits on the counting, fault-injecting test_os, so a
 * test can assert syscall counts and faults (test_os) and also where the
 * kernel put each mapping and how many bytes each kind of call covered
 * (the recorder).  Every Criterion test runs in its own process, so a test
 * may own large stretches of the address space without cleaning up.
 */
#ifndef MMAPPER_UNIT_H
#define MMAPPER_UNIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mmapper.h"
#include "procmaps.h"
#include "test_os.h"

struct recorder {
    struct mmapper_os os;              /* forwards to the test_os below */
    struct test_os *inner;
    _Atomic uintptr_t last_mmap_addr;  /* result of the last successful mmap */
    _Atomic size_t last_mmap_len;
    _Atomic uint64_t mmap_bytes, munmap_bytes, mprotect_bytes;   /* successful calls */
    /* The last set_name call (single-threaded tests only). */
    uintptr_t name_addr;
    size_t name_len;
    char name[MMAPPER_NAME_MAX];
};

struct unit {
    struct test_os tos;
    struct recorder rec;
    mmapper_t *m;
    size_t chunk;
};

/* Under an emulator (MMAPPER_EMULATED, set by scripts/cross.sh): a test
 * that depends on what the emulator does not reproduce skips itself,
 * saying why. */
static inline const char *unit_emulated(void)
{
    const char *e = getenv("MMAPPER_EMULATED");
    return e && *e ? e : NULL;
}
#define unit_skip_if_emulated(why)                                               \
    do {                                                                          \
        if (unit_emulated())                                                      \
            cr_skip_test("under %s: %s", unit_emulated(), (why));                \
    } while (0)

/* The page size of the kernel the tests' test_os stands for
 * (MMAPPER_TEST_KERNEL's page=, else the real one). */
size_t unit_page_size(void);

/* Create u->m with log_chunk (0 = default) on the recording test_os. */
void unit_setup(struct unit *u, unsigned log_chunk);
/* Same with a full config; cfg->os is replaced by the recorder. */
void unit_setup_cfg(struct unit *u, struct mmapper_config cfg);
void unit_teardown(struct unit *u);
/* Zero every call counter of test_os and the recorder. */
void unit_reset_counts(struct unit *u);

/* Assert exact call counts since the last reset. */
void unit_expect_calls(struct unit *u, uint64_t mmap, uint64_t munmap, uint64_t mprotect);

/* A free address range of `bytes`, aligned to `align`: reserved with plain
 * mmap and handed back, so nothing else maps there while the test (single
 * threaded until it says otherwise) uses it. */
void *unit_free_range(size_t bytes, size_t align);

/* Address of chunk i of base. */
static inline char *chunk_at(const struct unit *u, void *base, size_t i)
{
    return (char *)base + i * u->chunk;
}

/* Assert the state of chunks [0, n) of base; want is a string of U/Q/M/P. */
void unit_expect_states(struct unit *u, void *base, const char *want);
/* Assert the kernel agrees with the recorded states of the range, Unmapped
 * chunks included (nothing mapped there). */
void unit_expect_kernel(struct unit *u, void *start, size_t bytes);
/* Assert the kernel's permissions at addr ("rw-p", "---p"), or "" for none. */
void unit_expect_perms(const void *addr, const char *want);

/* Lines of /proc/self/maps, counted without malloc (so under ASan too the
 * count moves only with the mappings the code under test makes). */
long unit_vma_count(void);

/* Deterministic pattern: byte i of a region filled with seed. */
void fill_pattern(void *p, size_t n, unsigned seed);
bool has_pattern(const void *p, size_t n, unsigned seed);
bool all_zero(const void *p, size_t n);

/* Number of chunks currently in each state, from mmapper_get_stats(). */
void unit_expect_gauges(struct unit *u, uint64_t quarantined, uint64_t mapped,
                        uint64_t protected_);

#endif
