/* SPDX-License-Identifier: MIT */
/* `spkd run JOB.json`: one job in the foreground without HTTP, recorded
 * in the same database as the daemon's jobs; what a batch scheduler's job
 * script calls. */
#ifndef SPK_SERVER_RUN_H
#define SPK_SERVER_RUN_H

#include <stdatomic.h>

/* Runs the subcommand with its own arguments (argv[0] is "run"); stop is
 * raised (to JOB_STOP_SHUTDOWN) by main's signal handler. Returns the exit
 * code: 0 when the job succeeded, 1 when it failed, 2 for a bad spec or
 * bad options. */
int run_main(int argc, char **argv, atomic_int *stop);

#endif
