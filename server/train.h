/* SPDX-License-Identifier: MIT */
/* `spkd train`: one model trained in the foreground on a whole training
 * file, one line of key=value fields per epoch on stdout. */
#ifndef SPK_SERVER_TRAIN_H
#define SPK_SERVER_TRAIN_H

/* Runs the subcommand with its own arguments (argv[0] is "train").
 * Returns the process exit code: 0, 1 when training or saving failed, 2
 * for a bad command line. */
int train_main(int argc, char **argv);

#endif
