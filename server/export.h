/* SPDX-License-Identifier: MIT */
/* `spkd export --db FILE --job ID [--format jsonl|csv]`: a job's training
 * dynamics on standard output, per epoch and sample (JSON Lines) or per
 * finished stage and sample (CSV), for analysis outside spkd. */
#ifndef SPK_SERVER_EXPORT_H
#define SPK_SERVER_EXPORT_H

/* Runs the subcommand with its own arguments (argv[0] is "export").
 * Returns the process exit code: 0 when everything was written (or the
 * reader closed the pipe early: EPIPE ends the export quietly with 0), 1
 * for a runtime error (no such job, a database that cannot be read, a
 * failed write), 2 for bad options. Messages are one line on stderr. */
int export_main(int argc, char **argv);

#endif
