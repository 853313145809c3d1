/* SPDX-License-Identifier: MIT */
/* Each finished stage's per-sample training dynamics: five packed arrays
 * of 4-byte little-endian values in position order, one stage_dynamics
 * row per job and stage, written once. One sample's values are read in
 * place through incremental BLOB reads; db_sample_get (db_epochs.c) asks
 * for them. What the statistics mean is the engine's business. */
#include "db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The array columns of stage_dynamics, 4 bytes per sample each, in the
 * order the INSERT binds them. */
enum {
  DYN_CONFIDENCE,
  DYN_VARIABILITY,
  DYN_CORRECTNESS,
  DYN_FORGETTING,
  DYN_AUM,
  DYN_COLUMNS
};
static const char *const dyn_column[DYN_COLUMNS] = {
    "confidence", "variability", "correctness", "forgetting", "aum"};

/* A job holds at most one row per stage. */
#define DYN_STAGES DB_STAGE_COUNT

/* Rows of a job's dynamics in pipeline order. */
#define DYN_ROWS_SQL                                                           \
  "SELECT rowid, stage, n FROM stage_dynamics WHERE job_id = ? "               \
  "ORDER BY " DB_STAGE_ORDER

static void i32_pack(uint8_t *dst, const int32_t *src, int n) {
  for (int i = 0; i < n; i++) {
    uint32_t u = (uint32_t)src[i];
    dst[4 * i] = (uint8_t)u;
    dst[4 * i + 1] = (uint8_t)(u >> 8);
    dst[4 * i + 2] = (uint8_t)(u >> 16);
    dst[4 * i + 3] = (uint8_t)(u >> 24);
  }
}

/* ---- Storing a stage's dynamics. ---- */

static int dynamics_check(const char *stage, const db_dynamics_t *d, char *err,
                          size_t errlen) {
  if (!d)
    return db_msg(-EINVAL, err, errlen, "no dynamics to store");
  if (!db_stage_valid(stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  if (d->n < 0 || d->n > INT32_MAX / 4)
    return db_msg(-EINVAL, err, errlen, "bad dynamics count %d", d->n);
  if (d->n > 0 && (!d->confidence || !d->variability || !d->correctness ||
                   !d->forgetting || !d->aum))
    return db_msg(-EINVAL, err, errlen, "stage %s dynamics lack an array",
                  stage);
  return 0;
}

/* Checks that job exists and that n matches the number of training
 * samples it stored, the length of every position-ordered array. */
static int dynamics_count_check(db_t *db, int64_t job, const char *stage, int n,
                                char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc, n_train;

  r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job", err,
                    errlen);
  if (r <= 0)
    return r < 0 ? r
                 : db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  r = db_prepare(db,
                 "SELECT count(*) FROM job_samples "
                 "WHERE job_id = ? AND split = 0",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    r = db_fail(db, rc, "count training samples", err, errlen);
  } else {
    n_train = sqlite3_column_int(st, 0);
    if (n != n_train)
      r = db_msg(-EINVAL, err, errlen,
                 "stage %s dynamics hold %d samples; job %lld trains on %d",
                 stage, n, (long long)job, n_train);
  }
  sqlite3_finalize(st);
  return r;
}

/* Packs the five arrays into buf, one column of 4 n bytes after another
 * in dyn_column order. */
static void dynamics_pack(uint8_t *buf, const db_dynamics_t *d) {
  size_t w = 4 * (size_t)d->n;

  db_f32_pack(buf + DYN_CONFIDENCE * w, d->confidence, d->n);
  db_f32_pack(buf + DYN_VARIABILITY * w, d->variability, d->n);
  db_f32_pack(buf + DYN_CORRECTNESS * w, d->correctness, d->n);
  i32_pack(buf + DYN_FORGETTING * w, d->forgetting, d->n);
  db_f32_pack(buf + DYN_AUM * w, d->aum, d->n);
}

/* Binds job, stage, n and the packed columns; an empty array is an empty
 * BLOB, never NULL. */
static int dynamics_bind(sqlite3_stmt *st, int64_t job, const char *stage,
                         int n, const uint8_t *buf) {
  int w = 4 * n;
  int rc = sqlite3_bind_int64(st, 1, job);

  rc = rc ? rc : sqlite3_bind_text(st, 2, stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(st, 3, n);
  for (int c = 0; rc == SQLITE_OK && c < DYN_COLUMNS; c++) {
    if (n == 0)
      rc = sqlite3_bind_zeroblob(st, 4 + c, 0);
    else
      rc = sqlite3_bind_blob(st, 4 + c, buf + (size_t)c * (size_t)w, w,
                             SQLITE_STATIC);
  }
  return rc;
}

static int dynamics_row_insert(db_t *db, int64_t job, const char *stage,
                               const db_dynamics_t *d, char *err,
                               size_t errlen) {
  sqlite3_stmt *st = NULL;
  uint8_t *buf;
  char what[80];
  int r, rc;

  buf = malloc(4 * DYN_COLUMNS * (size_t)d->n + 1);
  if (!buf)
    return db_msg(-ENOMEM, err, errlen,
                  "out of memory packing dynamics of %d samples", d->n);
  dynamics_pack(buf, d);
  r = db_prepare(db,
                 "INSERT OR REPLACE INTO stage_dynamics (job_id, stage, n, "
                 "confidence, "
                 "variability, correctness, forgetting, aum) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 &st, err, errlen);
  if (r)
    goto out;
  rc = dynamics_bind(st, job, stage, d->n, buf);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  snprintf(what, sizeof what, "dynamics of stage %s of job %lld", stage,
           (long long)job);
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    r = db_msg(-EEXIST, err, errlen, "%s are already stored", what);
  else if (rc != SQLITE_DONE)
    r = db_fail(db, rc, what, err, errlen);
out:
  sqlite3_finalize(st);
  free(buf);
  return r;
}

int db_dynamics_insert(db_t *db, int64_t job, const char *stage,
                       const db_dynamics_t *d, char *err, size_t errlen) {
  int r;

  r = dynamics_check(stage, d, err, errlen);
  if (r)
    return r;
  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = dynamics_count_check(db, job, stage, d->n, err, errlen);
  if (!r)
    r = dynamics_row_insert(db, job, stage, d, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

/* ---- One sample's dynamics. ---- */

/* Points a handle per column at the row rowid, opening them on first
 * use. */
static int dyn_blobs_seek(db_t *db, int64_t rowid, sqlite3_blob **blob,
                          char *err, size_t errlen) {
  for (int c = 0; c < DYN_COLUMNS; c++) {
    int rc;
    if (blob[c])
      rc = sqlite3_blob_reopen(blob[c], rowid);
    else
      rc = sqlite3_blob_open(db->conn, "main", "stage_dynamics", dyn_column[c],
                             rowid, 0, &blob[c]);
    if (rc != SQLITE_OK)
      return db_fail(db, rc, "open stage dynamics", err, errlen);
  }
  return 0;
}

/* Reads the 4 bytes of position pos from every column of the row the
 * handles point at. */
static int dyn_blobs_read(db_t *db, sqlite3_blob **blob, int pos,
                          db_sample_dynamics_t *out, char *err, size_t errlen) {
  uint8_t b[DYN_COLUMNS][4];

  for (int c = 0; c < DYN_COLUMNS; c++) {
    int rc = sqlite3_blob_read(blob[c], b[c], 4, 4 * pos);
    if (rc != SQLITE_OK)
      return db_fail(db, rc, "read stage dynamics", err, errlen);
  }
  out->confidence = db_f32_unpack(b[DYN_CONFIDENCE]);
  out->variability = db_f32_unpack(b[DYN_VARIABILITY]);
  out->correctness = db_f32_unpack(b[DYN_CORRECTNESS]);
  out->forgetting = db_i32_unpack(b[DYN_FORGETTING]);
  out->aum = db_f32_unpack(b[DYN_AUM]);
  return 0;
}

/* Appends the stage of the current row of DYN_ROWS_SQL to s, reading the
 * sample's values at pos. */
static int dynamics_add(db_t *db, sqlite3_stmt *st, sqlite3_blob **blob,
                        int pos, db_sample_t *s, char *err, size_t errlen) {
  const unsigned char *stage = sqlite3_column_text(st, 1);
  int n = sqlite3_column_int(st, 2);
  db_sample_dynamics_t *d;
  int r;

  if (pos >= n)
    return db_msg(-EIO, err, errlen,
                  "stage %s dynamics hold %d samples, not position %d",
                  stage ? (const char *)stage : "?", n, pos);
  if (s->n_dynamics >= DYN_STAGES)
    return db_msg(-EIO, err, errlen, "more dynamics rows than stages");
  if (!s->dynamics) {
    s->dynamics = calloc(DYN_STAGES, sizeof *s->dynamics);
    if (!s->dynamics)
      return db_msg(-ENOMEM, err, errlen, "out of memory reading dynamics");
  }
  d = &s->dynamics[s->n_dynamics];
  memset(d, 0, sizeof *d);
  snprintf(d->stage, sizeof d->stage, "%s", stage ? (const char *)stage : "");
  r = dyn_blobs_seek(db, sqlite3_column_int64(st, 0), blob, err, errlen);
  if (!r)
    r = dyn_blobs_read(db, blob, pos, d, err, errlen);
  if (!r)
    s->n_dynamics++;
  return r;
}

int db_sample_dynamics_read(db_t *db, int64_t job, int pos, db_sample_t *s,
                            char *err, size_t errlen) {
  sqlite3_blob *blob[DYN_COLUMNS] = {NULL};
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db, DYN_ROWS_SQL, &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    r = dynamics_add(db, st, blob, pos, s, err, errlen);
    if (r)
      goto out;
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "list stage dynamics", err, errlen);

out:
  for (int c = 0; c < DYN_COLUMNS; c++)
    sqlite3_blob_close(blob[c]);
  sqlite3_finalize(st);
  return r;
}
