/*
 * Reporting a child process that hangs.  Tests that fork reap their
 * children under a deadline of their own; a child that outlives it gets
 * its threads' backtraces printed (through the dumper tests/deadline.sh
 * exports) before the test kills it, so that the failure says where it
 * stuck.
 */
#ifndef MMAPPER_TESTS_HANG_REPORT_H
#define MMAPPER_TESTS_HANG_REPORT_H

#include <stdbool.h>
#include <sys/types.h>

/* Print "<who>: process <pid> hangs" and its backtraces on stderr, then
 * SIGKILL it and reap it; *status gets its wait status. */
void hang_report_and_kill(pid_t pid, const char *who, int *status);

/* Wait for pid for at most deadline_s seconds; past that, report and kill
 * it as above and set *hung.  Returns the wait status. */
int hang_reap(pid_t pid, double deadline_s, const char *who, bool *hung);

#endif
