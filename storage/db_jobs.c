/* SPDX-License-Identifier: MIT */
/* The jobs table: submitting, reading, listing and moving jobs through
 * their states (queued -> running -> succeeded | failed | cancelled).
 * Which job runs when is the server's decision; this file only records. */
#include "db_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JOB_COLUMNS                                                           \
  "id, name, state, spec_json, created_at, started_at, finished_at, "        \
  "error, provenance_json, stage, epoch, priority, owner"

void db_job_deinit(db_job_t *job) {
  if (!job)
    return;
  free(job->name);
  free(job->state);
  free(job->spec_json);
  free(job->error);
  free(job->provenance_json);
  free(job->stage);
  free(job->owner);
  memset(job, 0, sizeof *job);
}

void db_jobs_free(db_job_t *jobs, int n) {
  if (!jobs)
    return;
  for (int i = 0; i < n; i++)
    db_job_deinit(&jobs[i]);
  free(jobs);
}

/* Copies text column i into *dst (NULL for SQL NULL). */
static int column_strdup(sqlite3_stmt *st, int i, char **dst) {
  const unsigned char *text;

  *dst = NULL;
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return 0;
  text = sqlite3_column_text(st, i);
  if (!text)
    return -ENOMEM;
  *dst = strdup((const char *)text);
  return *dst ? 0 : -ENOMEM;
}

/* Fills job from a row of JOB_COLUMNS; on failure job holds nothing. */
static int job_from_row(sqlite3_stmt *st, db_job_t *job, char *err,
                        size_t errlen) {
  int r = 0;

  memset(job, 0, sizeof *job);
  job->id = sqlite3_column_int64(st, 0);
  r = r ? r : column_strdup(st, 1, &job->name);
  r = r ? r : column_strdup(st, 2, &job->state);
  r = r ? r : column_strdup(st, 3, &job->spec_json);
  job->created_at = sqlite3_column_double(st, 4);
  job->started_at = sqlite3_column_double(st, 5);
  job->finished_at = sqlite3_column_double(st, 6);
  r = r ? r : column_strdup(st, 7, &job->error);
  r = r ? r : column_strdup(st, 8, &job->provenance_json);
  r = r ? r : column_strdup(st, 9, &job->stage);
  job->epoch = sqlite3_column_int(st, 10);
  job->priority = sqlite3_column_int(st, 11);
  r = r ? r : column_strdup(st, 12, &job->owner);
  if (r) {
    db_job_deinit(job);
    return db_msg(r, err, errlen, "out of memory reading job");
  }
  return 0;
}

/* Inserts a job in state queued, or running (started now) when running
 * is set. */
static int job_insert(db_t *db, const char *name, const char *spec_json,
                      int running, int64_t *id_out, char *err,
                      size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r;

  if (!spec_json)
    return db_msg(-EINVAL, err, errlen, "job has no spec");
  r = db_prepare(db,
                 running ? "INSERT INTO jobs (name, spec_json, created_at, "
                           "state, started_at) VALUES (?1, ?2, ?3, "
                           "'running', ?3)"
                         : "INSERT INTO jobs (name, spec_json, created_at) "
                           "VALUES (?1, ?2, ?3)",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, spec_json, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_double(st, 3, db_now()) != SQLITE_OK) {
    r = db_fail(db, SQLITE_ERROR, "bind job", err, errlen);
    goto out;
  }
  r = db_step_done(db, st, "insert job", err, errlen);
  if (!r && id_out)
    *id_out = sqlite3_last_insert_rowid(db->conn);
out:
  sqlite3_finalize(st);
  return r;
}

/* job_insert and the job's first "state" event, in one transaction. */
static int job_insert_logged(db_t *db, const char *name,
                             const char *spec_json, int running,
                             int64_t *id_out, char *err, size_t errlen) {
  int64_t id = 0;
  int r = db_tx_begin(db, err, errlen);

  if (r)
    return r;
  r = job_insert(db, name, spec_json, running, &id, err, errlen);
  if (!r)
    r = db_event_state(db, id, running ? "running" : "queued", NULL, NULL,
                       err, errlen);
  if (!r && id_out)
    *id_out = id;
  return db_tx_end(db, r, err, errlen);
}

int db_job_insert(db_t *db, const char *name, const char *spec_json,
                  int64_t *id_out, char *err, size_t errlen) {
  return job_insert_logged(db, name, spec_json, 0, id_out, err, errlen);
}

int db_job_insert_running(db_t *db, const char *name, const char *spec_json,
                          int64_t *id_out, char *err, size_t errlen) {
  return job_insert_logged(db, name, spec_json, 1, id_out, err, errlen);
}

int db_job_get(db_t *db, int64_t id, db_job_t *out, char *err,
               size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  memset(out, 0, sizeof *out);
  r = db_prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st,
                 err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, id);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = job_from_row(st, out, err, errlen);
  else if (rc == SQLITE_DONE)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)id);
  else
    r = db_fail(db, rc, "read job", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Appends the current row to *jobs, growing it by doubling. */
static int job_list_append(sqlite3_stmt *st, db_job_t **jobs, int *n,
                           int *cap, char *err, size_t errlen) {
  if (*n == *cap) {
    int grown = *cap ? 2 * *cap : 16;
    db_job_t *p = realloc(*jobs, (size_t)grown * sizeof *p);
    if (!p)
      return db_msg(-ENOMEM, err, errlen, "out of memory listing jobs");
    *jobs = p;
    *cap = grown;
  }
  if (job_from_row(st, &(*jobs)[*n], err, errlen) != 0)
    return -ENOMEM;
  (*n)++;
  return 0;
}

/* 1 when state is one a job can be in. */
static int state_is_known(const char *state) {
  static const char *const names[] = {"queued", "running", "succeeded",
                                      "failed", "cancelled"};

  for (size_t i = 0; state && i < sizeof names / sizeof names[0]; i++)
    if (strcmp(state, names[i]) == 0)
      return 1;
  return 0;
}

/* The listing with a state and without: each walks an index (jobs_state
 * or the ids) backwards from the cursor. */
#define JOB_FIND_STATE_SQL                                                     \
  "SELECT " JOB_COLUMNS " FROM jobs WHERE state = ?1 AND id < ?2 "             \
  "ORDER BY id DESC LIMIT ?3"
#define JOB_FIND_ANY_SQL                                                       \
  "SELECT " JOB_COLUMNS " FROM jobs WHERE id < ?2 ORDER BY id DESC LIMIT ?3"

/* Binds a filter; a cursor <= 0 starts above every id. */
static int job_find_bind(sqlite3_stmt *st, const db_job_filter_t *filter) {
  int64_t before = filter->before > 0 ? filter->before : INT64_MAX;
  int rc = SQLITE_OK;

  if (filter->state)
    rc = sqlite3_bind_text(st, 1, filter->state, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, before);
  rc = rc ? rc : sqlite3_bind_int(st, 3, filter->limit);
  return rc;
}

/* Steps st to the end, appending each row to *jobs (*n of them). */
static int job_rows_read(db_t *db, sqlite3_stmt *st, db_job_t **jobs, int *n,
                         char *err, size_t errlen) {
  int cap = 0, r = 0, rc;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    r = job_list_append(st, jobs, n, &cap, err, errlen);
    if (r)
      return r;
  }
  if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "list jobs", err, errlen);
  return r;
}

int db_job_find(db_t *db, const db_job_filter_t *filter, db_job_t **out,
                int *count, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  db_job_t *jobs = NULL;
  const char *sql;
  int n = 0, r;

  *out = NULL;
  *count = 0;
  if (filter->limit < 0)
    return db_msg(-EINVAL, err, errlen, "negative limit %d", filter->limit);
  if (filter->state && !state_is_known(filter->state))
    return db_msg(-EINVAL, err, errlen, "unknown job state '%s'",
                  filter->state);
  sql = filter->state ? JOB_FIND_STATE_SQL : JOB_FIND_ANY_SQL;
  r = db_prepare(db, sql, &st, err, errlen);
  if (r)
    return r;
  if (job_find_bind(st, filter) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job list", err, errlen);
  else
    r = job_rows_read(db, st, &jobs, &n, err, errlen);
  sqlite3_finalize(st);
  if (r) {
    db_jobs_free(jobs, n);
    return r;
  }
  *out = jobs;
  *count = n;
  return 0;
}

int db_job_list(db_t *db, int64_t before, int limit, db_job_t **out,
                int *count, char *err, size_t errlen) {
  db_job_filter_t filter = {NULL, before, limit};

  return db_job_find(db, &filter, out, count, err, errlen);
}

int db_job_next_queued(db_t *db, int64_t *id, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  *id = 0;
  r = db_prepare(db,
                 "SELECT id FROM jobs WHERE state = 'queued' "
                 "ORDER BY priority DESC, id LIMIT 1",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *id = sqlite3_column_int64(st, 0);
  else if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "find queued job", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* After an UPDATE ... WHERE id = ? AND state = ... changed nothing: tells
 * a missing job (-ENOENT) from one in another state (-EBUSY). */
static int job_state_conflict(db_t *db, int64_t id, const char *action,
                              char *err, size_t errlen) {
  db_job_t job;
  int r = db_job_get(db, id, &job, err, errlen);

  if (r)
    return r;
  r = db_msg(-EBUSY, err, errlen, "cannot %s job %lld: it is %s", action,
             (long long)id, job.state);
  db_job_deinit(&job);
  return r;
}

/* Runs an UPDATE whose first parameters the caller bound, then reports
 * how many rows it changed in *changed. */
static int job_update_run(db_t *db, sqlite3_stmt *st, const char *what,
                          int *changed, char *err, size_t errlen) {
  int r = db_step_done(db, st, what, err, errlen);

  *changed = r ? 0 : sqlite3_changes(db->conn);
  return r;
}

int db_job_start(db_t *db, int64_t id, const char *provenance_json,
                 char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = db_prepare(db,
                 "UPDATE jobs SET state = 'running', "
                 "started_at = coalesce(started_at, ?1), "
                 "provenance_json = coalesce(?2, provenance_json) "
                 "WHERE id = ?3 AND state = 'queued'",
                 &st, err, errlen);
  if (r)
    return db_tx_end(db, r, err, errlen);
  if (sqlite3_bind_double(st, 1, db_now()) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, provenance_json, -1, SQLITE_STATIC) !=
          SQLITE_OK ||
      sqlite3_bind_int64(st, 3, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job start", err, errlen);
  else
    r = job_update_run(db, st, "start job", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = job_state_conflict(db, id, "start", err, errlen);
  if (!r)
    r = db_event_state(db, id, "running", NULL, NULL, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

int db_job_provenance_set(db_t *db, int64_t id, const char *provenance_json,
                          char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  r = db_prepare(db, "UPDATE jobs SET provenance_json = ?1 WHERE id = ?2",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_text(st, 1, provenance_json, -1, SQLITE_STATIC) !=
          SQLITE_OK ||
      sqlite3_bind_int64(st, 2, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job provenance", err, errlen);
  else
    r = job_update_run(db, st, "record provenance", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)id);
  return r;
}

int db_job_progress(db_t *db, int64_t id, const char *stage, int epoch,
                    char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  if (!db_stage_valid(stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  r = db_prepare(db, "UPDATE jobs SET stage = ?1, epoch = ?2 WHERE id = ?3",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_text(st, 1, stage, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_int(st, 2, epoch) != SQLITE_OK ||
      sqlite3_bind_int64(st, 3, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job progress", err, errlen);
  else
    r = job_update_run(db, st, "record progress", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)id);
  return r;
}

static int state_is_final(const char *state) {
  return state && (strcmp(state, "succeeded") == 0 ||
                   strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0);
}

int db_job_finish(db_t *db, int64_t id, const char *state,
                  const char *error, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  if (!state_is_final(state))
    return db_msg(-EINVAL, err, errlen, "'%s' is not a final job state",
                  state ? state : "(null)");
  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = db_prepare(db,
                 "UPDATE jobs SET state = ?1, error = ?2, finished_at = ?3 "
                 "WHERE id = ?4",
                 &st, err, errlen);
  if (r)
    return db_tx_end(db, r, err, errlen);
  if (sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_double(st, 3, db_now()) != SQLITE_OK ||
      sqlite3_bind_int64(st, 4, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job finish", err, errlen);
  else
    r = job_update_run(db, st, "finish job", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)id);
  if (!r)
    r = db_event_state(db, id, state, error, NULL, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

int db_job_cancel_queued(db_t *db, int64_t id, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = db_prepare(db,
                 "UPDATE jobs SET state = 'cancelled', finished_at = ?1 "
                 "WHERE id = ?2 AND state = 'queued'",
                 &st, err, errlen);
  if (r)
    return db_tx_end(db, r, err, errlen);
  if (sqlite3_bind_double(st, 1, db_now()) != SQLITE_OK ||
      sqlite3_bind_int64(st, 2, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job cancel", err, errlen);
  else
    r = job_update_run(db, st, "cancel job", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = job_state_conflict(db, id, "cancel", err, errlen);
  if (!r)
    r = db_event_state(db, id, "cancelled", NULL, NULL, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

int db_jobs_fail_running(db_t *db, const char *error, int *count,
                         char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  if (count)
    *count = 0;
  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = db_event_state_running(db, "failed", error, err, errlen);
  if (!r)
    r = db_prepare(db,
                   "UPDATE jobs SET state = 'failed', error = ?1, "
                   "finished_at = ?2 WHERE state = 'running'",
                   &st, err, errlen);
  if (r)
    return db_tx_end(db, r, err, errlen);
  if (sqlite3_bind_text(st, 1, error, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_double(st, 2, db_now()) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind fail running", err, errlen);
  else
    r = job_update_run(db, st, "fail running jobs", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && count)
    *count = changed;
  return db_tx_end(db, r, err, errlen);
}

int db_job_label_set(db_t *db, int64_t id, int priority, const char *owner,
                     char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  r = db_prepare(db, "UPDATE jobs SET priority = ?1, owner = ?2 WHERE id = ?3",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_int(st, 1, priority) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_int64(st, 3, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job label", err, errlen);
  else
    r = job_update_run(db, st, "label job", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)id);
  return r;
}

/* Refuses to delete a job that is not finished: -EBUSY naming its
 * state, -ENOENT when there is no such job. */
static int job_delete_check(db_t *db, int64_t id, char *err, size_t errlen) {
  db_job_t job;
  int r = db_job_get(db, id, &job, err, errlen);

  if (r)
    return r;
  if (!state_is_final(job.state))
    r = db_msg(-EBUSY, err, errlen, "cannot delete job %lld: it is %s",
               (long long)id, job.state);
  db_job_deinit(&job);
  return r;
}

int db_job_delete(db_t *db, int64_t id, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r;

  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = job_delete_check(db, id, err, errlen);
  if (!r)
    r = db_prepare(db, "DELETE FROM jobs WHERE id = ?", &st, err, errlen);
  if (!r && sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind job delete", err, errlen);
  if (!r)
    r = db_step_done(db, st, "delete job", err, errlen);
  sqlite3_finalize(st);

  /* The rows about the job went with it (ON DELETE CASCADE); their pages
   * are free now, and the file gives them back in the same commit. */
  if (!r)
    r = db_space_reclaim(db, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

int db_job_requeue(db_t *db, int64_t id, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, changed = 0;

  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = db_prepare(db,
                 "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND "
                 "state = 'running'",
                 &st, err, errlen);
  if (r)
    return db_tx_end(db, r, err, errlen);
  if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind requeue", err, errlen);
  else
    r = job_update_run(db, st, "requeue job", &changed, err, errlen);
  sqlite3_finalize(st);
  if (!r && changed == 0)
    r = db_msg(-EBUSY, err, errlen, "job %lld is not running", (long long)id);
  if (!r)
    r = db_event_state(db, id, "queued", NULL, "resumed", err, errlen);
  return db_tx_end(db, r, err, errlen);
}

int db_jobs_running(db_t *db, int64_t **ids, int *count, char *err,
                    size_t errlen) {
  sqlite3_stmt *st = NULL;
  int64_t *v = NULL, *grown;
  int r, rc, n = 0, cap = 0;

  *ids = NULL;
  *count = 0;
  r = db_prepare(db, "SELECT id FROM jobs WHERE state = 'running' ORDER BY id",
                 &st, err, errlen);
  if (r)
    return r;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? 2 * cap : 8;
      grown = realloc(v, (size_t)cap * sizeof *v);
      if (!grown) {
        r = db_msg(-ENOMEM, err, errlen, "out of memory listing jobs");
        break;
      }
      v = grown;
    }
    v[n++] = sqlite3_column_int64(st, 0);
  }
  if (!r && rc != SQLITE_DONE)
    r = db_fail(db, rc, "list running jobs", err, errlen);
  sqlite3_finalize(st);
  if (r) {
    free(v);
    return r;
  }
  *ids = v;
  *count = n;
  return 0;
}
