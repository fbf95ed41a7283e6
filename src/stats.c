#include "config.h"

#include <string.h>

#include "mapper.h"

static uint64_t read_counter(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static uint64_t read_gauge(const _Atomic int64_t *g)
{
    int64_t v = atomic_load_explicit((_Atomic int64_t *)g, memory_order_relaxed);
    return v > 0 ? (uint64_t)v : 0;   /* a racing reader may see a dip */
}

MMAPPER_API void mmapper_get_stats(const mmapper_t *m, struct mmapper_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!m)
        return;
    const struct mm_counters *c = &m->counters;
    out->mmap_calls = read_counter(&c->mmap_calls);
    out->munmap_calls = read_counter(&c->munmap_calls);
    out->mprotect_calls = read_counter(&c->mprotect_calls);
    out->madvise_calls = read_counter(&c->madvise_calls);
    out->name_calls = read_counter(&c->name_calls);
    out->chunks_quarantined = read_gauge(&c->chunks[MMAPPER_QUARANTINED]);
    out->chunks_mapped = read_gauge(&c->chunks[MMAPPER_MAPPED]);
    out->chunks_protected = read_gauge(&c->chunks[MMAPPER_PROTECTED]);
    out->slabs = read_counter(&c->slabs);
    out->table_capacity = read_counter(&c->table_capacity);
    out->metadata_bytes = read_counter(&c->metadata_bytes);
}
