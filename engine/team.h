/* SPDX-License-Identifier: MIT */
/* A team: the threads one job computes with. The caller is member 0 and
 * threads - 1 workers wait for work, so a job of n threads never runs
 * more than n. team_run hands every member the same function and returns
 * when all have finished it; nothing else is shared. */
#ifndef SPK_ENGINE_TEAM_H
#define SPK_ENGINE_TEAM_H

typedef struct team team_t;

typedef void (*team_fn)(void *ctx, int member, int size);

/* Starts a team of threads members (1 starts no thread). *out is freed
 * with team_free. Returns 0, -EINVAL for threads < 1 or > 256, or the
 * error of pthread_create as a negative code. */
int team_new(int threads, team_t **out);

/* Stops the workers and frees the team; accepts NULL. */
void team_free(team_t *t);

/* Members of the team; 1 for a NULL team. */
int team_size(const team_t *t);

/* Runs fn(ctx, member, size) on every member, the caller as member 0, and
 * returns when every call has returned. A NULL team runs fn(ctx, 0, 1). */
void team_run(team_t *t, team_fn fn, void *ctx);

/* Called by every member of a running team_run: returns once all have
 * called it, so that what each wrote before is seen by all after. Waits
 * by spinning (the members are mid-step, a few microseconds apart) and
 * yields the processor after a while. A NULL or one-member team returns
 * at once. */
void team_sync(team_t *t);

#endif
