/* SPDX-License-Identifier: MIT */
/* Which processes run jobs on a database: each holds a shared lock on
 * the file DB.lock beside it for as long as it lives, and a claim on one
 * byte of it per job it runs (the kernel drops both when the process
 * dies). A job left "running" whose claim anyone can take is an orphan
 * of a dead process, to be resumed. */
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

/* Claims job id on the lock file fd from dblock_take: an open-file-
 * description lock on byte id, which the kernel drops when the process
 * dies. Returns 0, -EAGAIN when a live process holds the claim (it is
 * running the job), or another negative errno. */
int dblock_job_claim(int fd, long long id);

/* Gives up a claim from dblock_job_claim. */
void dblock_job_release(int fd, long long id);

#endif
