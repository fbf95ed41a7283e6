/*
 * fork() handling: atfork handlers registered once, and the read path of a
 * thread that has not registered with urcu-bp while a fork is prepared.
 * See fork.c for the design and the argument that no handler order hangs.
 */
#ifndef MMAPPER_FORK_H
#define MMAPPER_FORK_H

/* Register the atfork handlers (once per process; later calls return at
 * once).  pthread_atfork may allocate.  0 or -ENOMEM. */
int fork_handlers_register(void);

#endif
