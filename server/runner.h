/* SPDX-License-Identifier: MIT */
/* The job runner: picks queued jobs from the database and runs each in a
 * libuv worker thread with its own database connection, at most max_jobs at
 * once. Everything but runner_notify and runner_cancel runs on the loop
 * thread. */
#ifndef SPK_SERVER_RUNNER_H
#define SPK_SERVER_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"

typedef struct runner runner_t;

typedef struct {
  uv_loop_t *loop;
  const char *db_path;
  const char *data_root;
  int max_jobs;
  const log_t *log;
} runner_config_t;

/* Creates a runner on cfg->loop and starts the queued jobs it finds.
 * The strings in cfg must outlive the runner. */
int runner_new(const runner_config_t *cfg, runner_t **out, char *err,
               size_t errlen);

/* Thread-safe: tells the runner a job was queued. */
void runner_notify(runner_t *r);

/* Thread-safe: asks a running job to stop at its next batch. Returns 0
 * when the job runs here, -ENOENT when it does not. */
int runner_cancel(runner_t *r, int64_t id);

/* Stops starting jobs and asks running ones to stop; *running_out says
 * how many still run (0: done). Call again from the loop until 0. */
void runner_shutdown(runner_t *r, int *running_out);

/* Frees a runner whose jobs have all ended; accepts NULL. */
void runner_free(runner_t *r);

#endif
