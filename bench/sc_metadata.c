/* mmapper's metadata, from mmapper_get_stats(): empty, and per GiB mapped
 * in the contiguous and the sparse layouts. */
#include "config.h"

#include "mmapper.h"
#include "scenario.h"

static uint64_t metadata_bytes(void *self)
{
    struct mmapper_stats st;
    mmapper_get_stats(impl_mmapper_handle(self), &st);
    return st.metadata_bytes;
}

static double per_gib(const struct bench *b,
                      void (*layout)(const struct bench *, const struct impl *, void *),
                      size_t chunks, uint64_t *empty)
{
    struct impl_env env = bench_env(b);
    void *self = impl_mmapper.create(&env);
    *empty = metadata_bytes(self);
    layout(b, &impl_mmapper, self);
    double used = (double)(metadata_bytes(self) - *empty);
    unmap_window(b, &impl_mmapper, self);
    impl_mmapper.destroy(self);
    return used / ((double)chunks * (double)b->o->chunk / (double)(1u << 30));
}

void metadata_probe(struct bench *b)
{
    uint64_t empty;
    b->facts.meta_per_gib = per_gib(b, layout_contig_map, LAYOUT_CONTIG_CHUNKS, &empty);
    b->facts.meta_per_gib_sparse = per_gib(b, layout_sparse_map,
                                           LAYOUT_SPARSE_SPANS * LAYOUT_SPARSE_RUN, &empty);
    b->facts.meta_empty_bytes = empty;
    b->facts.meta_done = true;
}
