/* SPDX-License-Identifier: MIT */
/* What exporting a job reads: an existing database opened without ever
 * creating one, a read snapshot, the job's training samples, the list of
 * its (stage, epoch) records rows and one such row at a time decoded whole
 * into heap arrays, and a finished stage's dynamics the same way. How rows
 * are packed is db_epochs.c's and db_dynamics.c's business; what the
 * output looks like is the caller's. */
#include "db_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The first 16 bytes of every SQLite 3 database file. */
static const char sqlite_magic[16] = "SQLite format 3";

/* ---- Opening and the snapshot. ---- */

/* 0 when path is a regular file starting with SQLite's magic bytes,
 * else a negative code with err set. */
static int file_check(const char *path, char *err, size_t errlen) {
  char head[sizeof sqlite_magic];
  struct stat sb;
  FILE *f;
  size_t got;

  if (stat(path, &sb) != 0)
    return db_msg(errno == ENOENT ? -ENOENT : -EIO, err, errlen, "%s: %s", path,
                  strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return db_msg(-EINVAL, err, errlen, "%s is not a regular file", path);
  f = fopen(path, "rb");
  if (!f)
    return db_msg(-EIO, err, errlen, "%s: %s", path, strerror(errno));
  got = fread(head, 1, sizeof head, f);
  fclose(f);
  if (got != sizeof head || memcmp(head, sqlite_magic, sizeof head) != 0)
    return db_msg(-EINVAL, err, errlen, "%s is not an SQLite database%s", path,
                  sb.st_size == 0 ? " (it is empty)" : "");
  return 0;
}

int db_open_existing(const char *path, db_t **out, char *err, size_t errlen) {
  int r;

  *out = NULL;
  if (!path)
    return db_msg(-EINVAL, err, errlen, "no database path");
  r = file_check(path, err, errlen);
  return r ? r : db_open(path, out, err, errlen);
}

int db_snapshot_begin(db_t *db, char *err, size_t errlen) {
  return db_exec(db, "BEGIN DEFERRED", err, errlen);
}

void db_snapshot_end(db_t *db) {
  if (db && !sqlite3_get_autocommit(db->conn))
    (void)db_exec(db, "ROLLBACK", NULL, 0);
}

/* ---- Lists of rows about a job. ---- */

/* A query listing rows about a job into a heap array: sql takes the job
 * id as its one parameter, fill turns the current row into one element
 * of elem bytes, what names the rows in messages. */
typedef struct {
  const char *sql;
  const char *what;
  size_t elem;
  void (*fill)(sqlite3_stmt *st, void *slot);
} list_query_t;

/* 0 when job exists, -ENOENT when not, or another negative code. */
static int job_check(db_t *db, int64_t job, char *err, size_t errlen) {
  int r = db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job",
                        err, errlen);

  if (r == 0)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  return r < 0 ? r : 0;
}

/* Makes room for element n of *arr (*cap elements of elem bytes). */
static int list_grow(void **arr, int n, int *cap, size_t elem) {
  void *p;
  int grown;

  if (n < *cap)
    return 0;
  if (*cap > INT32_MAX / 2)
    return -ENOMEM;
  grown = *cap ? 2 * *cap : 64;
  p = realloc(*arr, (size_t)grown * elem);
  if (!p)
    return -ENOMEM;
  *arr = p;
  *cap = grown;
  return 0;
}

/* Steps q's statement over every row, appending one element each. */
static int list_rows_run(db_t *db, sqlite3_stmt *st, const list_query_t *q,
                         void **list, int *n, char *err, size_t errlen) {
  int cap = 0, rc = SQLITE_OK;

  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (list_grow(list, *n, &cap, q->elem) != 0)
      return db_msg(-ENOMEM, err, errlen, "out of memory listing %s", q->what);
    q->fill(st, (char *)*list + (size_t)*n * q->elem);
    (*n)++;
    rc = SQLITE_OK;
  }
  return rc == SQLITE_DONE ? 0 : db_fail(db, rc, q->what, err, errlen);
}

/* Runs q for job into *out (a heap array of *count, NULL when empty). */
static int list_rows(db_t *db, int64_t job, const list_query_t *q, void **out,
                     int *count, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  void *list = NULL;
  int n = 0, r;

  *out = NULL;
  *count = 0;
  r = job_check(db, job, err, errlen);
  if (!r)
    r = db_prepare(db, q->sql, &st, err, errlen);
  if (!r && sqlite3_bind_int64(st, 1, job) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, q->what, err, errlen);
  if (!r)
    r = list_rows_run(db, st, q, &list, &n, err, errlen);
  sqlite3_finalize(st);
  if (r) {
    free(list);
    return r;
  }
  *out = list;
  *count = n;
  return 0;
}

/* Copies a stage name column into a 16-byte field. */
static void stage_copy(char *dst, sqlite3_stmt *st, int col) {
  const unsigned char *s = sqlite3_column_text(st, col);

  snprintf(dst, 16, "%s", s ? (const char *)s : "");
}

static void train_sample_fill(sqlite3_stmt *st, void *slot) {
  db_train_sample_t *s = slot;

  s->index = (int32_t)sqlite3_column_int(st, 0);
  s->pos = sqlite3_column_int(st, 1);
  s->observed = sqlite3_column_int(st, 2);
  s->clean = sqlite3_column_int(st, 3);
}

int db_train_samples_list(db_t *db, int64_t job, db_train_sample_t **out,
                          int *count, char *err, size_t errlen) {
  static const list_query_t q = {
      "SELECT idx, pos, observed, clean FROM job_samples "
      "WHERE job_id = ? AND split = 0 ORDER BY idx",
      "list training samples", sizeof(db_train_sample_t), train_sample_fill};

  return list_rows(db, job, &q, (void **)out, count, err, errlen);
}

static void epoch_key_fill(sqlite3_stmt *st, void *slot) {
  db_epoch_key_t *k = slot;

  stage_copy(k->stage, st, 0);
  k->epoch = sqlite3_column_int(st, 1);
}

int db_epoch_keys_list(db_t *db, int64_t job, db_epoch_key_t **out, int *count,
                       char *err, size_t errlen) {
  static const list_query_t q = {
      "SELECT stage, epoch FROM epoch_records WHERE job_id = ? "
      "ORDER BY " DB_STAGE_ORDER ", epoch",
      "list epoch records", sizeof(db_epoch_key_t), epoch_key_fill};

  return list_rows(db, job, &q, (void **)out, count, err, errlen);
}

static void stage_name_fill(sqlite3_stmt *st, void *slot) {
  db_stage_name_t *s = slot;

  stage_copy(s->name, st, 0);
}

int db_dynamics_stages_list(db_t *db, int64_t job, db_stage_name_t **out,
                            int *count, char *err, size_t errlen) {
  static const list_query_t q = {
      "SELECT stage FROM stage_dynamics WHERE job_id = ? "
      "ORDER BY " DB_STAGE_ORDER,
      "list stage dynamics", sizeof(db_stage_name_t), stage_name_fill};

  return list_rows(db, job, &q, (void **)out, count, err, errlen);
}

/* ---- One row, found by job, stage and maybe epoch. ---- */

/* Steps *st, prepared from sql with parameters job, stage and (when
 * epoch > 0) epoch, to its row. -ENOENT saying what is missing (the job,
 * or what of it) when there is none; what names the row in other
 * errors. */
static int row_find(db_t *db, const char *sql, int64_t job, const char *stage,
                    int epoch, const char *what, sqlite3_stmt **st, char *err,
                    size_t errlen) {
  int r, rc;

  r = db_prepare(db, sql, st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(*st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(*st, 2, stage, -1, SQLITE_STATIC);
  if (epoch > 0)
    rc = rc ? rc : sqlite3_bind_int(*st, 3, epoch);
  rc = rc ? rc : sqlite3_step(*st);
  if (rc == SQLITE_ROW)
    return 0;
  if (rc != SQLITE_DONE)
    return db_fail(db, rc, what, err, errlen);
  r = job_check(db, job, err, errlen);
  if (r)
    return r;
  if (epoch > 0)
    return db_msg(-ENOENT, err, errlen,
                  "job %lld has no records of stage %s epoch %d",
                  (long long)job, stage, epoch);
  return db_msg(-ENOENT, err, errlen, "job %lld has no dynamics of stage %s",
                (long long)job, stage);
}

/* ---- One epoch's records. ---- */

/* Columns of RECORDS_SQL: n, format, then the arrays in REC_* order. */
#define RECORDS_SQL                                                            \
  "SELECT n, format, loss, prob, weight, easy, margin, pred "                  \
  "FROM epoch_records WHERE job_id = ? AND stage = ? AND epoch = ?"
#define RECORDS_FIRST_ARRAY 2

void db_epoch_records_deinit(db_epoch_records_t *rec) {
  if (!rec)
    return;
  free(rec->loss); /* one block holds every array */
  memset(rec, 0, sizeof *rec);
}

/* Points every array of rec into one heap block for n samples. */
static int records_alloc(db_epoch_records_t *rec, int n) {
  size_t un = (size_t)n;
  float *f = malloc(un * (4 * sizeof(float) + 2) + 1);

  if (!f)
    return -ENOMEM;
  rec->n = n;
  rec->loss = f;
  rec->prob = f + un;
  rec->weight = f + 2 * un;
  rec->margin = f + 3 * un;
  rec->easy = (uint8_t *)(f + 4 * un);
  rec->pred = rec->easy + un;
  return 0;
}

/* 0 when array c of the row st rests on is as long as format fmt says
 * for n samples (or NULL, for an optional array); -EIO otherwise. */
static int records_column_check(sqlite3_stmt *st, int c, int fmt, int n,
                                char *err, size_t errlen) {
  int col = RECORDS_FIRST_ARRAY + c;
  int64_t want = db_rec_bytes(fmt, c, n);

  if (c >= REC_OPTIONAL && sqlite3_column_type(st, col) == SQLITE_NULL)
    return 0;
  if (sqlite3_column_bytes(st, col) == want &&
      (want == 0 || sqlite3_column_blob(st, col)))
    return 0;
  return db_msg(-EIO, err, errlen, "%s holds %d bytes, not %lld",
                sqlite3_column_name(st, col), sqlite3_column_bytes(st, col),
                (long long)want);
}

/* The arrays of the row st rests on (n samples, format fmt) into rec. */
static void records_decode(sqlite3_stmt *st, int fmt, db_epoch_records_t *rec) {
  const uint8_t *a[REC_COLUMNS];
  int n = rec->n;

  for (int c = 0; c < REC_COLUMNS; c++)
    a[c] = sqlite3_column_blob(st, RECORDS_FIRST_ARRAY + c);
  db_rec_floats_unpack(fmt, a[REC_LOSS], n, rec->loss);
  db_rec_floats_unpack(fmt, a[REC_PROB], n, rec->prob);
  db_rec_floats_unpack(fmt, a[REC_WEIGHT], n, rec->weight);
  db_rec_easy_unpack(fmt, a[REC_EASY], n, rec->easy);
  if (a[REC_MARGIN])
    db_rec_floats_unpack(fmt, a[REC_MARGIN], n, rec->margin);
  else
    for (int i = 0; i < n; i++)
      rec->margin[i] = NAN;
  if (a[REC_PRED])
    memcpy(rec->pred, a[REC_PRED], (size_t)n);
  else
    memset(rec->pred, DB_PRED_NONE, (size_t)n);
}

/* Checks the row st rests on and decodes it into rec. */
static int records_take(sqlite3_stmt *st, db_epoch_records_t *rec, char *err,
                        size_t errlen) {
  int n = sqlite3_column_int(st, 0);
  int fmt = sqlite3_column_int(st, 1);
  int r = 0;

  if (fmt != REC_FORMAT_F32 && fmt != REC_FORMAT_HALF)
    return db_msg(-EIO, err, errlen, "unknown records format %d", fmt);
  if (n < 0 || n > INT32_MAX / 4)
    return db_msg(-EIO, err, errlen, "bad record count %d", n);
  for (int c = 0; !r && c < REC_COLUMNS; c++)
    r = records_column_check(st, c, fmt, n, err, errlen);
  if (r)
    return r;
  if (records_alloc(rec, n) != 0)
    return db_msg(-ENOMEM, err, errlen, "out of memory for %d records", n);
  records_decode(st, fmt, rec);
  return 0;
}

int db_epoch_records_read(db_t *db, int64_t job, const char *stage, int epoch,
                          db_epoch_records_t *out, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  char what[64];
  int r;

  memset(out, 0, sizeof *out);
  if (!db_stage_valid(stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  if (epoch < 1)
    return db_msg(-ENOENT, err, errlen, "epoch %d: epochs count from 1", epoch);
  snprintf(what, sizeof what, "records of stage %s epoch %d", stage, epoch);
  r = row_find(db, RECORDS_SQL, job, stage, epoch, what, &st, err, errlen);
  if (!r) {
    r = records_take(st, out, err, errlen);
    if (r)
      db_err_prefix(err, errlen, what);
  }
  sqlite3_finalize(st);
  return r;
}

/* ---- A stage's dynamics. ---- */

/* Columns of DYNAMICS_SQL: n, then the five arrays of 4-byte values. */
#define DYNAMICS_SQL                                                           \
  "SELECT n, confidence, variability, correctness, forgetting, aum "           \
  "FROM stage_dynamics WHERE job_id = ? AND stage = ?"
#define DYNAMICS_ARRAYS 5

void db_stage_dynamics_deinit(db_stage_dynamics_t *d) {
  if (!d)
    return;
  free(d->confidence); /* one block holds every array */
  memset(d, 0, sizeof *d);
}

/* Points every array of d into one heap block for n samples. */
static int dynamics_alloc(db_stage_dynamics_t *d, int n) {
  size_t un = (size_t)n;
  float *f = malloc(un * (4 * sizeof(float) + sizeof(int32_t)) + 1);

  if (!f)
    return -ENOMEM;
  d->n = n;
  d->confidence = f;
  d->variability = f + un;
  d->correctness = f + 2 * un;
  d->aum = f + 3 * un;
  d->forgetting = (int32_t *)(f + 4 * un);
  return 0;
}

/* Checks the row st rests on and decodes it into d. */
static int dynamics_take(sqlite3_stmt *st, db_stage_dynamics_t *d, char *err,
                         size_t errlen) {
  const uint8_t *a[DYNAMICS_ARRAYS];
  int n = sqlite3_column_int(st, 0);

  if (n < 0 || n > INT32_MAX / 4)
    return db_msg(-EIO, err, errlen, "bad dynamics count %d", n);
  for (int c = 0; c < DYNAMICS_ARRAYS; c++) {
    a[c] = sqlite3_column_blob(st, 1 + c);
    if (sqlite3_column_bytes(st, 1 + c) != 4 * n || (n > 0 && !a[c]))
      return db_msg(-EIO, err, errlen, "%s does not hold %d values",
                    sqlite3_column_name(st, 1 + c), n);
  }
  if (dynamics_alloc(d, n) != 0)
    return db_msg(-ENOMEM, err, errlen, "out of memory for %d dynamics", n);
  for (int i = 0; i < n; i++) {
    d->confidence[i] = db_f32_unpack(a[0] + 4 * i);
    d->variability[i] = db_f32_unpack(a[1] + 4 * i);
    d->correctness[i] = db_f32_unpack(a[2] + 4 * i);
    d->forgetting[i] = db_i32_unpack(a[3] + 4 * i);
    d->aum[i] = db_f32_unpack(a[4] + 4 * i);
  }
  return 0;
}

int db_stage_dynamics_read(db_t *db, int64_t job, const char *stage,
                           db_stage_dynamics_t *out, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  char what[48];
  int r;

  memset(out, 0, sizeof *out);
  if (!db_stage_valid(stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  snprintf(what, sizeof what, "dynamics of stage %s", stage);
  r = row_find(db, DYNAMICS_SQL, job, stage, 0, what, &st, err, errlen);
  if (!r) {
    r = dynamics_take(st, out, err, errlen);
    if (r)
      db_err_prefix(err, errlen, what);
  }
  sqlite3_finalize(st);
  return r;
}
