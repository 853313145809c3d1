/* SPDX-License-Identifier: MIT */
/* Figures about the whole database for monitoring: how many jobs are in
 * each state. What is done with them (GET /metrics) is the daemon's
 * business. */
#include "db_internal.h"

#include <string.h>

/* The counter of out that a state name stands for, or NULL. */
static int64_t *counts_slot(db_job_counts_t *out, const char *state) {
  if (!state)
    return NULL;
  if (strcmp(state, "queued") == 0)
    return &out->queued;
  if (strcmp(state, "running") == 0)
    return &out->running;
  if (strcmp(state, "succeeded") == 0)
    return &out->succeeded;
  if (strcmp(state, "failed") == 0)
    return &out->failed;
  if (strcmp(state, "cancelled") == 0)
    return &out->cancelled;
  return NULL;
}

int db_job_count_by_state(db_t *db, db_job_counts_t *out, char *err,
                          size_t errlen) {
  sqlite3_stmt *st = NULL;
  int64_t *slot;
  int r, rc;

  memset(out, 0, sizeof *out);
  r = db_prepare(db, "SELECT state, count(*) FROM jobs GROUP BY state", &st,
                 err, errlen);
  if (r)
    return r;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    slot = counts_slot(out, (const char *)sqlite3_column_text(st, 0));
    if (slot)
      *slot = sqlite3_column_int64(st, 1);
  }
  if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "count jobs by state", err, errlen);
  sqlite3_finalize(st);
  return r;
}
