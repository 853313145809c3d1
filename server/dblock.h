/* SPDX-License-Identifier: MIT */
/* Which processes run jobs on a database: each holds a shared lock on
 * the file DB.lock beside it for as long as it lives (the kernel drops it
 * when the process dies). Only a process that can take the lock alone
 * may treat jobs left "running" as orphans of a dead process. */
#ifndef SPK_SERVER_DBLOCK_H
#define SPK_SERVER_DBLOCK_H

#include <stddef.h>

/* Opens DB.lock and takes it. *alone is 1 when no other process holds it
 * (the lock is then exclusive until dblock_share), 0 when others do (the
 * lock is then shared). Returns the descriptor, which the caller keeps
 * open for its lifetime, or -1 with err set. */
int dblock_take(const char *db_path, int *alone, char *err, size_t errlen);

/* Turns an exclusive lock from dblock_take into a shared one, so that
 * other processes may run jobs on the database too. */
void dblock_share(int fd);

#endif
