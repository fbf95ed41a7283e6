/*
 * Freeing retired metadata after a grace period, off the callers' threads.
 *
 * A transition that unpublishes a slab (or a table array) never waits for
 * readers: it tags the object with reclaim_tag() and goes on.  One thread
 * the library owns, the reclaimer, waits for grace periods and frees what
 * is due, for every live mapper.  So no mmapper call waits for a reader:
 * a thread suspended inside is_mapped (a collector's stop signal, a
 * debugger) delays only the reclaimer, and only the freeing of metadata.
 * What is retired meanwhile is bounded (slab_table.h: RETIRE_LIMIT).
 *
 * Grace periods are numbered.  The reclaimer starts number n by bumping
 * `started` to n, runs synchronize_rcu, then publishes `completed` = n.  An
 * object tagged with the value of `started` read after it was unpublished
 * (tag t) is unreachable once a grace period that started later has
 * completed, i.e. once `completed` > t.
 */
#ifndef MMAPPER_RECLAIM_H
#define MMAPPER_RECLAIM_H

#include <stdbool.h>
#include <stdint.h>

struct slab_table;

/* Register t with the reclaimer, starting its thread if none runs (the
 * first mapper, or the first one created in a forked child).  Creating the
 * thread may call malloc (glibc allocates its TLS vector).  0, -EAGAIN or
 * -ENOMEM. */
int reclaim_register(struct slab_table *t);
/* The reclaimer will not touch t after this returns. */
void reclaim_unregister(struct slab_table *t);

/* The tag of an object unpublished before this call (seq_cst RMW: see
 * reclaim.c for the ordering argument). */
uint64_t reclaim_tag(void);
/* Whether an object with this tag may be freed now. */
bool reclaim_due(uint64_t tag);
/* Ask the reclaimer for a grace period soon.  Async-signal-safe, no lock. */
void reclaim_wake(void);

/* Run reclaimer rounds for t on the calling thread until nothing t retired
 * is left: waits for readers (mmapper_reclaim_wait). */
int reclaim_wait(struct slab_table *t);

/* Fork handling (fork.c), in a forked child only: the reclaimer thread does
 * not exist there, its locks may have been held; and every mapper. */
void reclaim_forget_thread_in_child(void);
void reclaim_each_table_in_child(void (*fn)(struct slab_table *t));

/* Whether a thread reads without registration (fork.c): no frees then. */
bool fork_readers_active(void);

#endif
