/* SPDX-License-Identifier: MIT */
/* What spkd does before anything else, in every mode: make sure OpenBLAS
 * runs the kernel this processor deserves and starts no threads of its
 * own, by re-executing the program with the right environment. */
#ifndef SPK_SERVER_BOOT_H
#define SPK_SERVER_BOOT_H

#include "log.h"

/* Called first thing in main with main's argv. When the environment does
 * not set OPENBLAS_CORETYPE and OpenBLAS picked a generic kernel on a
 * processor with AVX2+FMA or AVX-512, sets the matching kernel; when it
 * does not set OPENBLAS_NUM_THREADS, sets 1 (the engine brings its own
 * threads); then re-executes the program, once. After a re-execution
 * that chose a kernel, checks sgemm against a reference and goes back to
 * OpenBLAS's own choice if they disagree. Logs the kernel that runs.
 * Returns only when no (further) re-execution is needed or possible. */
void boot_blas(char **argv, const log_t *log);

#endif
