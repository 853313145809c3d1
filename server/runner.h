/* SPDX-License-Identifier: MIT */
/* The job runner: picks queued jobs from the database and runs each in a
 * libuv worker thread with its own database connection, at most max_jobs at
 * once. runner_new, runner_shutdown and runner_free run on the loop thread;
 * runner_notify, runner_cancel and runner_cancelling on any thread. */
#ifndef SPK_SERVER_RUNNER_H
#define SPK_SERVER_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../storage/db.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"

typedef struct runner runner_t;

typedef struct {
  uv_loop_t *loop;
  const char *db_path;
  const char *data_root;
  int max_jobs;
  int threads_max; /* per job: the default and the bound; 0: none */
  metrics_t *metrics; /* may be NULL */
  hub_t *hub; /* published after every commit; may be NULL */
  const log_t *log;
  /* Called on the loop thread once every job has ended after
   * runner_shutdown; may be NULL. */
  void (*on_idle)(void *ctx);
  void *ctx;
} runner_config_t;

/* Creates a runner on cfg->loop; it starts nothing until runner_start.
 * The strings in cfg must outlive the runner. Returns 0 or a negative
 * errno code with err set. */
int runner_new(const runner_config_t *cfg, runner_t **out, char *err,
               size_t errlen);

/* Requeues the jobs a dead process left running (nobody holds their
 * claim), to be resumed, then starts queued jobs.
 * Returns 0 or a negative errno code with err set. */
int runner_start(runner_t *r, char *err, size_t errlen);

/* The process's database writer (thread-safe to use from any thread):
 * every write of the daemon goes through it. */
db_writer_t *runner_writer(runner_t *r);

/* Thread-safe: tells the runner a job was queued. */
void runner_notify(runner_t *r);

/* Thread-safe: asks a running job to stop at its next batch. Returns 0
 * when the job runs here, -ENOENT when it does not. */
int runner_cancel(runner_t *r, int64_t id);

/* Thread-safe: 1 when job id runs here and was asked to stop, else 0. */
int runner_cancelling(runner_t *r, int64_t id);

/* Stops starting jobs and asks the running ones to stop after their
 * batch; they stay running in storage, to be resumed by the next process
 * on the database. cfg->on_idle is called once none runs any more (at
 * once when none does). */
void runner_shutdown(runner_t *r);

/* Frees a runner whose jobs have all ended; accepts NULL. */
void runner_free(runner_t *r);

#endif
