/* SPDX-License-Identifier: MIT */
/* Checks, before a long run, that an output file named on the command
 * line (a checkpoint, a summary) can be written when the run ends. */
#ifndef SPK_SERVER_OUTPATH_H
#define SPK_SERVER_OUTPATH_H

#include <stddef.h>

/* Returns 0 when path names a file that can be created or replaced, or
 * -1 with err saying why not: empty, a directory, or a place where no
 * file can be created. Leaves nothing behind. */
int outpath_check(const char *path, char *err, size_t errlen);

#endif
