/*
 * The raw kernel primitives the baselines use, the same calls the library
 * makes (MAP_FIXED_NOREPLACE for fresh mappings, mprotect to commit a
 * reservation, a MAP_FIXED PROT_NONE remap to decommit, munmap), so that
 * transitions cost the same everywhere.  Each returns 0 or a negative errno
 * and adds one to *syscalls per system call.
 */
#ifndef BENCH_KERNEL_H
#define BENCH_KERNEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

int kern_map_fresh(void *addr, size_t len, _Atomic uint64_t *syscalls);
int kern_reserve(void *addr, size_t len, _Atomic uint64_t *syscalls);
int kern_commit(void *addr, size_t len, _Atomic uint64_t *syscalls);
int kern_decommit(void *addr, size_t len, _Atomic uint64_t *syscalls);
int kern_unmap(void *addr, size_t len, _Atomic uint64_t *syscalls);

/* Zero-filled read-write memory for benchmark metadata (dies on failure). */
void *kern_alloc(size_t bytes);
void kern_free(void *p, size_t bytes);

/*
 * A free, `align`-aligned range of `bytes` address space that the kernel will
 * not hand out on its own: far below where it places mmap(NULL) mappings.
 * Left unmapped (the implementations map inside it with NOREPLACE).
 */
uintptr_t kern_find_window(size_t bytes, size_t align);

#endif
