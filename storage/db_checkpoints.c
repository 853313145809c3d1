/* SPDX-License-Identifier: MIT */
/* The checkpoints table: each job's stages keep their newest epoch's
 * model ("latest") and the finished stage's ("final") as opaque bytes
 * with their SHA-256. What the bytes hold is the engine's business;
 * storage only keeps them and hands back copies. */
#include "db_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of a job's checkpoints in pipeline order, "latest" first. */
#define CKPT_LIST_SQL                                                          \
  "SELECT stage, kind, epoch, length(data), sha256 FROM checkpoints "          \
  "WHERE job_id = ? ORDER BY " DB_STAGE_ORDER ", kind = 'final'"

void db_checkpoint_deinit(db_checkpoint_t *c) {
  if (!c)
    return;
  free(c->data);
  memset(c, 0, sizeof *c);
}

static int kind_valid(const char *kind) {
  return kind && (strcmp(kind, "latest") == 0 || strcmp(kind, "final") == 0);
}

/* Copies a sha256 as lower case into out (65 bytes): "" stays "", anything
 * but 64 hex digits is refused. */
static int sha256_normalize(const char *hex, char *out, char *err,
                            size_t errlen) {
  size_t len = strnlen(hex, 65);

  out[0] = '\0';
  if (len == 0)
    return 0;
  if (len != 64)
    return db_msg(-EINVAL, err, errlen,
                  "sha256 must be 64 hex digits, not %zu characters", len);
  for (size_t i = 0; i < 64; i++) {
    if (!isxdigit((unsigned char)hex[i]))
      return db_msg(-EINVAL, err, errlen, "sha256 holds '%c', not a hex digit",
                    hex[i]);
    out[i] = (char)tolower((unsigned char)hex[i]);
  }
  out[64] = '\0';
  return 0;
}

/* Checks a checkpoint to store. The strings are fixed arrays: each must
 * hold its terminating zero. */
static int ckpt_check(const db_checkpoint_info_t *info, const void *data,
                      char *err, size_t errlen) {
  if (!info)
    return db_msg(-EINVAL, err, errlen, "no checkpoint to store");
  if (!memchr(info->stage, '\0', sizeof info->stage) ||
      !db_stage_valid(info->stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%.*s'",
                  (int)sizeof info->stage, info->stage);
  if (!memchr(info->kind, '\0', sizeof info->kind) || !kind_valid(info->kind))
    return db_msg(-EINVAL, err, errlen,
                  "checkpoint kind '%.*s' is neither latest nor final",
                  (int)sizeof info->kind, info->kind);
  if (info->epoch < 0)
    return db_msg(-EINVAL, err, errlen, "negative epoch %d", info->epoch);
  if (info->size == 0 || !data)
    return db_msg(-EINVAL, err, errlen, "checkpoint holds no bytes");
  if (!memchr(info->sha256, '\0', sizeof info->sha256))
    return db_msg(-EINVAL, err, errlen, "sha256 is not terminated");
  return 0;
}

/* Reports a failed store, naming the cases a caller can act on. */
static int ckpt_put_fail(db_t *db, int rc, int64_t job,
                         const db_checkpoint_info_t *info, char *err,
                         size_t errlen) {
  char what[96];

  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  if ((rc & 0xff) == SQLITE_TOOBIG)
    return db_msg(-EFBIG, err, errlen, "checkpoint of %zu bytes is too large",
                  info->size);
  snprintf(what, sizeof what, "store %s checkpoint of stage %s of job %lld",
           info->kind, info->stage, (long long)job);
  return db_fail(db, rc, what, err, errlen);
}

static int ckpt_bind(sqlite3_stmt *st, int64_t job,
                     const db_checkpoint_info_t *info, const void *data,
                     const char *sha) {
  int rc = sqlite3_bind_int64(st, 1, job);

  rc = rc ? rc : sqlite3_bind_text(st, 2, info->stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 3, info->kind, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(st, 4, info->epoch);
  rc = rc ? rc
          : sqlite3_bind_blob64(st, 5, data, (sqlite3_uint64)info->size,
                                SQLITE_STATIC);
  if (rc == SQLITE_OK && sha[0])
    rc = sqlite3_bind_text(st, 6, sha, -1, SQLITE_STATIC);
  return rc;
}

int db_checkpoint_put(db_t *db, int64_t job, const db_checkpoint_info_t *info,
                      const void *data, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  char sha[65];
  int r, rc;

  r = ckpt_check(info, data, err, errlen);
  if (!r)
    r = sha256_normalize(info->sha256, sha, err, errlen);
  if (r)
    return r;
  r = db_prepare(db,
                 "INSERT INTO checkpoints "
                 "(job_id, stage, kind, epoch, data, sha256) "
                 "VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (job_id, stage, kind) DO UPDATE SET "
                 "epoch = excluded.epoch, data = excluded.data, "
                 "sha256 = excluded.sha256",
                 &st, err, errlen);
  if (r)
    return r;
  rc = ckpt_bind(st, job, info, data, sha);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = ckpt_put_fail(db, rc, job, info, err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Fills info from a row whose columns 0-4 are stage, kind, epoch, the
 * size of the data and sha256. */
static void ckpt_info_from_row(sqlite3_stmt *st, db_checkpoint_info_t *info) {
  const unsigned char *stage = sqlite3_column_text(st, 0);
  const unsigned char *kind = sqlite3_column_text(st, 1);
  const unsigned char *sha = sqlite3_column_text(st, 4);

  memset(info, 0, sizeof *info);
  snprintf(info->stage, sizeof info->stage, "%s",
           stage ? (const char *)stage : "");
  snprintf(info->kind, sizeof info->kind, "%s", kind ? (const char *)kind : "");
  info->epoch = sqlite3_column_int(st, 2);
  info->size = (size_t)sqlite3_column_int64(st, 3);
  snprintf(info->sha256, sizeof info->sha256, "%s",
           sha ? (const char *)sha : "");
}

/* Copies the data of the current row (column 5) into out. */
static int ckpt_data_copy(sqlite3_stmt *st, db_checkpoint_t *out, char *err,
                          size_t errlen) {
  const void *blob = sqlite3_column_blob(st, 5);
  size_t size = (size_t)sqlite3_column_bytes(st, 5);

  if (!blob || size != out->info.size)
    return db_msg(-EIO, err, errlen, "checkpoint data unreadable");
  out->data = malloc(size);
  if (!out->data)
    return db_msg(-ENOMEM, err, errlen,
                  "out of memory for a checkpoint of %zu bytes", size);
  memcpy(out->data, blob, size);
  return 0;
}

/* Says what is missing when a job has no checkpoint of that name. */
static int ckpt_missing(db_t *db, int64_t job, const char *stage,
                        const char *kind, char *err, size_t errlen) {
  int r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job",
                        err, errlen);

  if (r < 0)
    return r;
  if (r == 0)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  return db_msg(-ENOENT, err, errlen,
                "job %lld has no %s checkpoint of stage %s", (long long)job,
                kind, stage);
}

int db_checkpoint_get(db_t *db, int64_t job, const char *stage,
                      const char *kind, db_checkpoint_t *out, char *err,
                      size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  memset(out, 0, sizeof *out);
  if (!db_stage_valid(stage) || !kind_valid(kind))
    return db_msg(-EINVAL, err, errlen, "no checkpoint kind '%s' of stage '%s'",
                  kind ? kind : "(null)", stage ? stage : "(null)");
  r = db_prepare(db,
                 "SELECT stage, kind, epoch, length(data), sha256, data "
                 "FROM checkpoints WHERE job_id = ? AND stage = ? "
                 "AND kind = ?",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(st, 2, stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    ckpt_info_from_row(st, &out->info);
    r = ckpt_data_copy(st, out, err, errlen);
  } else if (rc == SQLITE_DONE) {
    r = ckpt_missing(db, job, stage, kind, err, errlen);
  } else {
    r = db_fail(db, rc, "read checkpoint", err, errlen);
  }
  sqlite3_finalize(st);
  if (r)
    db_checkpoint_deinit(out);
  return r;
}

/* Steps st to the end, appending each row's description to *list. A job
 * has at most two checkpoints per stage. */
static int ckpt_rows_read(db_t *db, sqlite3_stmt *st,
                          db_checkpoint_info_t *list, int *n, char *err,
                          size_t errlen) {
  int rc;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == 2 * DB_STAGE_COUNT)
      return db_msg(-EIO, err, errlen, "more checkpoints than stages hold");
    ckpt_info_from_row(st, &list[(*n)++]);
  }
  if (rc != SQLITE_DONE)
    return db_fail(db, rc, "list checkpoints", err, errlen);
  return 0;
}

int db_checkpoint_list(db_t *db, int64_t job, db_checkpoint_info_t **out,
                       int *count, char *err, size_t errlen) {
  db_checkpoint_info_t *list = NULL;
  sqlite3_stmt *st = NULL;
  int n = 0, r;

  *out = NULL;
  *count = 0;
  r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job", err,
                    errlen);
  if (r <= 0)
    return r < 0 ? r
                 : db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  list = calloc(2 * DB_STAGE_COUNT, sizeof *list);
  if (!list)
    return db_msg(-ENOMEM, err, errlen, "out of memory listing checkpoints");
  r = db_prepare(db, CKPT_LIST_SQL, &st, err, errlen);
  if (!r && sqlite3_bind_int64(st, 1, job) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind checkpoint list", err, errlen);
  if (!r)
    r = ckpt_rows_read(db, st, list, &n, err, errlen);
  sqlite3_finalize(st);
  if (r || n == 0) {
    free(list);
    return r;
  }
  *out = list;
  *count = n;
  return 0;
}
