#include "config.h"

#include "hang_report.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void hang_report_and_kill(pid_t pid, const char *who, int *status)
{
    fprintf(stderr, "%s: process %d hangs; its threads:\n", who, (int)pid);
    fflush(stderr);
    const char *dumper = getenv("MMAPPER_STACK_DUMPER");
    char cmd[4096];
    if (!dumper || snprintf(cmd, sizeof(cmd), "sh '%s' %d >&2", dumper, (int)pid) >= (int)sizeof(cmd))
        fprintf(stderr, "    (no backtraces: run the test under tests/deadline.sh)\n");
    else if (system(cmd) != 0)
        fprintf(stderr, "    (the stack dumper failed)\n");
    fflush(stderr);
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int hang_reap(pid_t pid, double deadline_s, const char *who, bool *hung)
{
    double t0 = now();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "%s: waitpid(%d): errno %d\n", who, (int)pid, errno);
            *hung = true;
            return status;
        }
        if (now() - t0 > deadline_s) {
            hang_report_and_kill(pid, who, &status);
            *hung = true;
            return status;
        }
        usleep(200);
    }
}
