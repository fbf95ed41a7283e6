/*
 * A team of worker threads that runs timed rounds.  The threads live across
 * rounds (sleeping on a barrier in between), so a round measures the work,
 * not thread creation, and the main thread can set up and tear down between
 * rounds outside the timed region.
 *
 * A round's wall time runs from the first worker starting to the last one
 * finishing: with more threads than cores, late starters are part of it.
 */
#ifndef BENCH_TEAM_H
#define BENCH_TEAM_H

#include <stdbool.h>
#include <stdint.h>

struct team;

/* A worker's share of a round; returns the operations it completed. */
typedef uint64_t (*team_work_fn)(void *arg, int id, const struct team *t);

/* How long a time-bound round lasts: a duration, or iters ops per thread. */
struct budget {
    double seconds;
    uint64_t iters;
};

struct round_result {
    double wall_ns;
    uint64_t ops;
};

struct team *team_start(int nthreads);
void team_finish(struct team *t);
int team_size(const struct team *t);

/* Run fn on every worker.  With a budget, workers loop while team_more(). */
struct round_result team_round(struct team *t, team_work_fn fn, void *arg, struct budget b);

/* For time-bound work: whether to do another batch, having done `done` ops. */
bool team_more(const struct team *t, uint64_t done);

#endif
