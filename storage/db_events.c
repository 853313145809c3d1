/* SPDX-License-Identifier: MIT */
/* The events table: an append-only log of what happened to jobs (and to
 * the daemon), numbered in the order it was stored so a reader can
 * follow it from the last number it saw. Which events exist and what
 * their JSON says is the server's business. */
#include "db_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void db_events_free(db_event_t *events, int n) {
  if (!events)
    return;
  for (int i = 0; i < n; i++) {
    free(events[i].kind);
    free(events[i].data_json);
  }
  free(events);
}

/* Reports a failed append, naming a missing job as such. */
static int event_append_fail(db_t *db, int rc, int64_t job, char *err,
                             size_t errlen) {
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  return db_fail(db, rc, "append event", err, errlen);
}

/* Binds job (0 as NULL: about no job), time, kind and data. */
static int event_bind(sqlite3_stmt *st, int64_t job, const char *kind,
                      const char *data_json) {
  int rc;

  if (job == 0)
    rc = sqlite3_bind_null(st, 1);
  else
    rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_double(st, 2, db_now());
  rc = rc ? rc : sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 4, data_json, -1, SQLITE_STATIC);
  return rc;
}

int db_event_append(db_t *db, int64_t job, const char *kind,
                    const char *data_json, int64_t *seq, char *err,
                    size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  if (seq)
    *seq = 0;
  if (job < 0)
    return db_msg(-EINVAL, err, errlen, "bad job id %lld", (long long)job);
  if (!kind || !kind[0])
    return db_msg(-EINVAL, err, errlen, "event has no kind");
  if (!data_json)
    return db_msg(-EINVAL, err, errlen, "event %s has no data", kind);

  /* The row is written only when its data parses as JSON. */
  r = db_prepare(db,
                 "INSERT INTO events (job_id, at, kind, data) "
                 "SELECT ?1, ?2, ?3, ?4 WHERE json_valid(?4)",
                 &st, err, errlen);
  if (r)
    return r;
  rc = event_bind(st, job, kind, data_json);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = event_append_fail(db, rc, job, err, errlen);
  else if (sqlite3_changes(db->conn) == 0)
    r = db_msg(-EINVAL, err, errlen, "data of event %s is not JSON", kind);
  else if (seq)
    *seq = sqlite3_last_insert_rowid(db->conn);
  sqlite3_finalize(st);
  return r;
}

/* Fills e from a row of seq, job_id, at, kind, data. */
static int event_from_row(sqlite3_stmt *st, db_event_t *e) {
  const unsigned char *kind = sqlite3_column_text(st, 3);
  const unsigned char *data = sqlite3_column_text(st, 4);

  memset(e, 0, sizeof *e);
  e->seq = sqlite3_column_int64(st, 0);
  e->job = sqlite3_column_int64(st, 1); /* NULL reads as 0 */
  e->at = sqlite3_column_double(st, 2);
  e->kind = strdup(kind ? (const char *)kind : "");
  e->data_json = strdup(data ? (const char *)data : "null");
  if (!e->kind || !e->data_json) {
    free(e->kind);
    free(e->data_json);
    return -ENOMEM;
  }
  return 0;
}

/* Steps st to the end, appending each event to *list (*n of them). */
static int event_rows_read(db_t *db, sqlite3_stmt *st, db_event_t **list,
                           int *n, char *err, size_t errlen) {
  int cap = 0, rc;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == cap) {
      int grown = cap ? 2 * cap : 16;
      db_event_t *p = realloc(*list, (size_t)grown * sizeof *p);
      if (!p)
        return db_msg(-ENOMEM, err, errlen, "out of memory listing events");
      *list = p;
      cap = grown;
    }
    if (event_from_row(st, &(*list)[*n]) != 0)
      return db_msg(-ENOMEM, err, errlen, "out of memory reading event");
    (*n)++;
  }
  if (rc != SQLITE_DONE)
    return db_fail(db, rc, "list events", err, errlen);
  return 0;
}

/* Compiles the listing for one job (job > 0) or for all, bound. */
static int event_list_prepare(db_t *db, int64_t job, int64_t after, int limit,
                              sqlite3_stmt **st, char *err, size_t errlen) {
  int r, rc;

  r = db_prepare(db,
                 job > 0 ? "SELECT seq, job_id, at, kind, data FROM events "
                           "WHERE job_id = ?3 AND seq > ?1 ORDER BY seq "
                           "LIMIT ?2"
                         : "SELECT seq, job_id, at, kind, data FROM events "
                           "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                 st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(*st, 1, after);
  rc = rc ? rc : sqlite3_bind_int(*st, 2, limit);
  if (rc == SQLITE_OK && job > 0)
    rc = sqlite3_bind_int64(*st, 3, job);
  if (rc != SQLITE_OK)
    return db_fail(db, rc, "bind event list", err, errlen);
  return 0;
}

int db_event_list(db_t *db, int64_t job, int64_t after, int limit,
                  db_event_t **out, int *count, char *err, size_t errlen) {
  db_event_t *list = NULL;
  sqlite3_stmt *st = NULL;
  int n = 0, r;

  *out = NULL;
  *count = 0;
  if (limit < 0 || job < 0)
    return db_msg(-EINVAL, err, errlen, "negative %s",
                  limit < 0 ? "limit" : "job id");
  if (job > 0) {
    r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job",
                      err, errlen);
    if (r <= 0)
      return r < 0
                 ? r
                 : db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  }
  r = event_list_prepare(db, job, after < 0 ? 0 : after, limit, &st, err,
                         errlen);
  if (!r)
    r = event_rows_read(db, st, &list, &n, err, errlen);
  sqlite3_finalize(st);
  if (r) {
    db_events_free(list, n);
    return r;
  }
  *out = list;
  *count = n;
  return 0;
}

int db_event_last(db_t *db, int64_t *seq, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  *seq = 0;
  r = db_prepare(db, "SELECT coalesce(max(seq), 0) FROM events", &st, err,
                 errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *seq = sqlite3_column_int64(st, 0);
  else
    r = db_fail(db, rc, "find the last event", err, errlen);
  sqlite3_finalize(st);
  return r;
}

int db_event_state(db_t *db, int64_t job, const char *state, const char *error,
                   const char *reason, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  /* json_object writes SQL NULL (error, reason) as JSON null. */
  r = db_prepare(db,
                 "INSERT INTO events (job_id, at, kind, data) "
                 "VALUES (?1, ?2, 'state', CASE WHEN ?5 IS NULL "
                 "THEN json_object('state', ?3, 'error', ?4) "
                 "ELSE json_object('state', ?3, 'error', ?4, 'reason', ?5) "
                 "END)",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_double(st, 2, db_now());
  rc = rc ? rc : sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = event_append_fail(db, rc, job, err, errlen);
  sqlite3_finalize(st);
  return r;
}

int db_event_state_running(db_t *db, const char *state, const char *error,
                           char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db,
                 "INSERT INTO events (job_id, at, kind, data) "
                 "SELECT id, ?1, 'state', json_object('state', ?2, "
                 "'error', ?3) FROM jobs WHERE state = 'running' "
                 "ORDER BY id",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_double(st, 1, db_now());
  rc = rc ? rc : sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
  if (rc != SQLITE_OK)
    r = db_fail(db, rc, "bind state events", err, errlen);
  else
    r = db_step_done(db, st, "append state events", err, errlen);
  sqlite3_finalize(st);
  return r;
}
