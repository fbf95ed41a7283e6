/* The mapper object, shared by the files that implement the public API. */
#ifndef MMAPPER_MAPPER_H
#define MMAPPER_MAPPER_H

#include <stddef.h>

#include "os.h"
#include "slab_table.h"
#include "stats.h"

struct mmapper {
    /* Read by every lookup; written only by mmapper_create. */
    unsigned chunk_shift;        /* log2 of the chunk size */
    bool block_signals;          /* mmapper_config.block_signals */
    size_t self_bytes;           /* pages holding this struct */
    struct slab_table table;     /* aligned: its writer half has its own lines */
    struct mm_os os;
    _Alignas(64) struct mm_counters counters;
};

#endif
