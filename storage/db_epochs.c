/* SPDX-License-Identifier: MIT */
/* The samples a job uses and what its epochs recorded: per-epoch metrics
 * and per-sample records stored as packed arrays in position order, one
 * row per job, stage and epoch, written in half precision with one bit
 * per easy flag (format 2) and read in that format or the float32 one of
 * rows stored before migration 5 (format 1). Reading one sample's history
 * touches only its own bytes in each row, through incremental BLOB reads.
 * A NaN metric
 * is stored as SQL NULL and read back as NaN; an optional per-sample array
 * (margin, predicted class) the caller did not give, or that a database of
 * schema version 1 never had, is SQL NULL and reads as not recorded. A
 * sample's training dynamics come from db_dynamics.c. */
#include "db_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const rec_column[REC_COLUMNS] = {"loss", "prob",   "weight",
                                                    "easy", "margin", "pred"};

/* Bytes a row of format fmt holds for column c of n samples. */
static int64_t rec_bytes(int fmt, int c, int64_t n) {
  if (c == REC_PRED)
    return n;
  if (c == REC_EASY)
    return fmt == REC_FORMAT_F32 ? n : (n + 7) / 8;
  return (fmt == REC_FORMAT_F32 ? 4 : 2) * n;
}

/* Where the value of position pos lies in column c of a row of format
 * fmt: *len bytes at *off. */
static void rec_locate(int fmt, int c, int pos, int *off, int *len) {
  if (c == REC_EASY && fmt == REC_FORMAT_HALF) {
    *off = pos / 8;
    *len = 1;
    return;
  }
  *len = (int)rec_bytes(fmt, c, 1);
  *off = *len * pos;
}

/* The float at b, packed as a row of format fmt packs them. */
static float rec_float(int fmt, const uint8_t *b) {
  return fmt == REC_FORMAT_F32 ? db_f32_unpack(b) : db_f16_unpack(b);
}

/* The easy flag of position pos from the byte holding it. */
static int rec_easy_flag(int fmt, uint8_t byte, int pos) {
  return fmt == REC_FORMAT_F32 ? byte != 0 : (byte >> (pos % 8)) & 1;
}

/* The predicted-class byte that means "not recorded". */
#define PRED_NONE DB_PRED_NONE

/* ---- Whole columns of a row, for db_export.c. ---- */

int64_t db_rec_bytes(int fmt, int c, int64_t n) {
  return rec_bytes(fmt, c, n);
}

void db_rec_floats_unpack(int fmt, const uint8_t *src, int n, float *dst) {
  int64_t width = rec_bytes(fmt, REC_LOSS, 1);

  for (int i = 0; i < n; i++)
    dst[i] = rec_float(fmt, src + width * i);
}

void db_rec_easy_unpack(int fmt, const uint8_t *src, int n, uint8_t *dst) {
  for (int i = 0; i < n; i++) {
    int off, len;
    rec_locate(fmt, REC_EASY, i, &off, &len);
    dst[i] = (uint8_t)rec_easy_flag(fmt, src[off], i);
  }
}

#define METRICS_COLUMNS                                                        \
  "stage, epoch, train_loss, train_acc, val_acc, test_acc, easy_size, "        \
  "easy_fraction, lr, seconds, samples_per_s, noise_precision, "               \
  "noise_recall, noise_auroc"

/* Binds len bytes; an empty array is an empty BLOB, never NULL. */
static int bind_bytes(sqlite3_stmt *st, int i, const void *p, int len) {
  if (len == 0)
    return sqlite3_bind_zeroblob(st, i, 0);
  return sqlite3_bind_blob(st, i, p, len, SQLITE_STATIC);
}

/* Binds an optional array: SQL NULL when p is NULL (not recorded). */
static int bind_optional(sqlite3_stmt *st, int i, const void *p, int len) {
  if (!p)
    return sqlite3_bind_null(st, i);
  return bind_bytes(st, i, p, len);
}

/* A REAL column, with SQL NULL (how SQLite stores NaN) read as NaN. */
static double column_real(sqlite3_stmt *st, int i) {
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return NAN;
  return sqlite3_column_double(st, i);
}

/* 1 when job exists, 0 when not, or a negative code. */
static int job_exists(db_t *db, int64_t job, char *err, size_t errlen) {
  return db_row_exists(db, "SELECT 1 FROM jobs WHERE id = ?", job, "find job",
                       err, errlen);
}

/* ---- Samples of a job. ---- */

static int split_check(const db_split_t *s, char *err, size_t errlen) {
  if (!s || s->n < 0)
    return db_msg(-EINVAL, err, errlen, "no sample list to store");
  if (s->n > 0 &&
      (!s->index || !s->split || !s->pos || !s->observed || !s->clean))
    return db_msg(-EINVAL, err, errlen, "sample list lacks an array");
  return 0;
}

/* Binds and inserts sample i; the statement is reset for the next one. */
static int split_row_insert(db_t *db, sqlite3_stmt *st, int64_t job,
                            const db_split_t *s, int i, char *err,
                            size_t errlen) {
  char what[64];
  int rc;

  sqlite3_reset(st);
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_int(st, 2, s->index[i]);
  rc = rc ? rc : sqlite3_bind_int(st, 3, s->split[i]);
  rc = rc ? rc : sqlite3_bind_int(st, 4, s->pos[i]);
  rc = rc ? rc : sqlite3_bind_int(st, 5, s->observed[i]);
  rc = rc ? rc : sqlite3_bind_int(st, 6, s->clean[i]);
  rc = rc ? rc : sqlite3_step(st);
  if (rc == SQLITE_DONE)
    return 0;
  snprintf(what, sizeof what, "store sample %d of job %lld", (int)s->index[i],
           (long long)job);
  return db_fail(db, rc, what, err, errlen);
}

/* Inserts every sample with one statement; the caller holds the
 * transaction. */
static int split_rows_insert(db_t *db, int64_t job, const db_split_t *s,
                             char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r;

  r = db_prepare(db,
                 "INSERT INTO job_samples "
                 "(job_id, idx, split, pos, observed, clean) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 &st, err, errlen);
  for (int i = 0; !r && i < s->n; i++)
    r = split_row_insert(db, st, job, s, i, err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* 1 when job already has its split of the same size, 0 when it has
 * none, -EEXIST when it has another. */
static int split_stored(db_t *db, int64_t job, const db_split_t *split,
                        char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;
  int64_t n = 0;

  r = db_prepare(db, "SELECT count(*) FROM job_samples WHERE job_id = ?", &st,
                 err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_int64(st, 1, job) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind split count", err, errlen);
  else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  else
    r = db_fail(db, rc, "count split", err, errlen);
  sqlite3_finalize(st);
  if (r || n == 0)
    return r;
  if (n != (int64_t)split->n)
    return db_msg(-EEXIST, err, errlen,
                  "job %lld already has a split of %lld samples, not %d",
                  (long long)job, (long long)n, split->n);
  return 1;
}

int db_split_insert(db_t *db, int64_t job, const db_split_t *split, char *err,
                    size_t errlen) {
  int r;

  r = split_check(split, err, errlen);
  if (r)
    return r;
  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = job_exists(db, job, err, errlen);
  if (r == 0)
    r = db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  else if (r == 1)
    r = split_stored(db, job, split, err, errlen);
  if (r == 1)
    r = 0; /* a resumed job's split, stored by its first run */
  else if (r == 0)
    r = split_rows_insert(db, job, split, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

/* ---- Storing an epoch. ---- */

static int epoch_check(const db_metrics_t *m, const db_records_t *rec,
                       char *err, size_t errlen) {
  if (!m || !rec)
    return db_msg(-EINVAL, err, errlen, "no epoch to store");
  if (!memchr(m->stage, '\0', sizeof m->stage) || !db_stage_valid(m->stage))
    return db_msg(-EINVAL, err, errlen, "unknown stage '%.*s'",
                  (int)sizeof m->stage, m->stage);
  if (m->epoch < 1)
    return db_msg(-EINVAL, err, errlen, "epoch %d: epochs count from 1",
                  m->epoch);
  if (rec->n < 0 || rec->n > INT32_MAX / 4)
    return db_msg(-EINVAL, err, errlen, "bad record count %d", rec->n);
  if (rec->n > 0 && (!rec->loss || !rec->prob || !rec->weight || !rec->easy))
    return db_msg(-EINVAL, err, errlen, "epoch records lack an array");
  return 0;
}

/* "stage S epoch E of job J", for messages. */
static void epoch_name(char *buf, size_t len, int64_t job, const char *stage,
                       int epoch) {
  snprintf(buf, len, "stage %s epoch %d of job %lld", stage, epoch,
           (long long)job);
}

/* Reports a failed insert, naming a duplicate epoch as such. */
static int epoch_insert_fail(db_t *db, int rc, int64_t job,
                             const db_metrics_t *m, char *err, size_t errlen) {
  char what[96];

  epoch_name(what, sizeof what, job, m->stage, m->epoch);
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return db_msg(-EEXIST, err, errlen, "%s is already stored", what);
  return db_fail(db, rc, what, err, errlen);
}

static int metrics_bind(sqlite3_stmt *st, int64_t job, const db_metrics_t *m) {
  int rc = sqlite3_bind_int64(st, 1, job);

  rc = rc ? rc : sqlite3_bind_text(st, 2, m->stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(st, 3, m->epoch);
  rc = rc ? rc : sqlite3_bind_double(st, 4, m->train_loss);
  rc = rc ? rc : sqlite3_bind_double(st, 5, m->train_acc);
  rc = rc ? rc : sqlite3_bind_double(st, 6, m->val_acc);
  rc = rc ? rc : sqlite3_bind_double(st, 7, m->test_acc);
  rc = rc ? rc : sqlite3_bind_int(st, 8, m->easy_size);
  rc = rc ? rc : sqlite3_bind_double(st, 9, m->easy_fraction);
  rc = rc ? rc : sqlite3_bind_double(st, 10, m->lr);
  rc = rc ? rc : sqlite3_bind_double(st, 11, m->seconds);
  rc = rc ? rc : sqlite3_bind_double(st, 12, m->samples_per_s);
  rc = rc ? rc : sqlite3_bind_double(st, 13, m->noise_precision);
  rc = rc ? rc : sqlite3_bind_double(st, 14, m->noise_recall);
  rc = rc ? rc : sqlite3_bind_double(st, 15, m->noise_auroc);
  return rc;
}

static int metrics_insert(db_t *db, int64_t job, const db_metrics_t *m,
                          char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db,
                 "INSERT INTO epoch_metrics (job_id, " METRICS_COLUMNS ") "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 &st, err, errlen);
  if (r)
    return r;
  rc = metrics_bind(st, job, m);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = epoch_insert_fail(db, rc, job, m, err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Bytes records_bind packs n records into. */
static size_t records_packed_size(int n) {
  return 8 * (size_t)n + (size_t)rec_bytes(REC_FORMAT_HALF, REC_EASY, n);
}

/* Packs n easy flags into (n + 7) / 8 bytes, flag i at bit i % 8 of byte
 * i / 8. */
static void easy_bits_pack(uint8_t *dst, const uint8_t *easy, int n) {
  memset(dst, 0, (size_t)rec_bytes(REC_FORMAT_HALF, REC_EASY, n));
  for (int i = 0; i < n; i++)
    if (easy[i])
      dst[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Packs the records in format 2 into buf (records_packed_size bytes:
 * loss, prob, weight and margin, 2 n each, then the easy bits) and binds
 * them with the predicted classes. */
static int records_bind(sqlite3_stmt *st, int64_t job, const db_metrics_t *m,
                        const db_records_t *rec, uint8_t *buf) {
  int n = rec->n, w = 2 * n, rc;
  uint8_t *loss = buf, *prob = loss + w, *weight = prob + w;
  uint8_t *margin = weight + w, *easy = margin + w;

  db_f16_pack(loss, rec->loss, n);
  db_f16_pack(prob, rec->prob, n);
  db_f16_pack(weight, rec->weight, n);
  if (rec->margin)
    db_f16_pack(margin, rec->margin, n);
  easy_bits_pack(easy, rec->easy, n);
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(st, 2, m->stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(st, 3, m->epoch);
  rc = rc ? rc : sqlite3_bind_int(st, 4, n);
  rc = rc ? rc : bind_bytes(st, 5, loss, w);
  rc = rc ? rc : bind_bytes(st, 6, prob, w);
  rc = rc ? rc : bind_bytes(st, 7, weight, w);
  rc = rc ? rc : bind_bytes(st, 8, easy, (n + 7) / 8);
  rc = rc ? rc : bind_optional(st, 9, rec->margin ? margin : NULL, w);
  rc = rc ? rc : bind_optional(st, 10, rec->pred, n);
  rc = rc ? rc : sqlite3_bind_int(st, 11, REC_FORMAT_HALF);
  return rc;
}

static int records_insert(db_t *db, int64_t job, const db_metrics_t *m,
                          const db_records_t *rec, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  uint8_t *buf;
  int r, rc;

  buf = malloc(records_packed_size(rec->n) + 1);
  if (!buf)
    return db_msg(-ENOMEM, err, errlen, "out of memory packing %d records",
                  rec->n);
  r = db_prepare(db,
                 "INSERT INTO epoch_records "
                 "(job_id, stage, epoch, n, loss, prob, weight, easy, "
                 "margin, pred, format) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 &st, err, errlen);
  if (r)
    goto out;
  rc = records_bind(st, job, m, rec, buf);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = epoch_insert_fail(db, rc, job, m, err, errlen);
out:
  sqlite3_finalize(st);
  free(buf);
  return r;
}

/* Stores a stage's resume state beside its epoch: a final state
 * replaces the stage's latest one. */
static int state_insert(db_t *db, int64_t job, const db_state_t *state,
                        char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r = db_checkpoint_put(db, job, &state->info, state->data, err, errlen);

  if (r || strcmp(state->info.kind, "final") != 0)
    return r;
  r = db_prepare(db,
                 "DELETE FROM checkpoints WHERE job_id = ? AND stage = ? "
                 "AND kind = 'latest'",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_int64(st, 1, job) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, state->info.stage, -1, SQLITE_STATIC) !=
          SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind state delete", err, errlen);
  else
    r = db_step_done(db, st, "drop the latest state", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* A metric as JSON allows it: NULL for infinities (NaN is stored as
 * NULL already). */
#define EVENT_FINITE(c) "CASE WHEN abs(" c ") <= 1.7976931348623157e308 " \
                        "THEN " c " END"

/* Appends the "epoch" event of the metrics row just stored, built from
 * that row so that the event says exactly what was stored. */
static int epoch_event(db_t *db, int64_t job, const db_metrics_t *m,
                       char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(
      db,
      "INSERT INTO events (job_id, at, kind, data) SELECT job_id, ?4, "
      "'epoch', json_object('stage', stage, 'epoch', epoch, "
      "'train_loss', " EVENT_FINITE("train_loss") ", "
      "'train_acc', " EVENT_FINITE("train_acc") ", "
      "'val_acc', " EVENT_FINITE("val_acc") ", "
      "'test_acc', " EVENT_FINITE("test_acc") ", "
      "'easy_fraction', " EVENT_FINITE("easy_fraction") ", "
      "'easy_size', easy_size, "
      "'seconds', " EVENT_FINITE("seconds") ", "
      "'samples_per_s', " EVENT_FINITE("samples_per_s") ", "
      "'noise_precision', " EVENT_FINITE("noise_precision") ", "
      "'noise_recall', " EVENT_FINITE("noise_recall") ", "
      "'noise_auroc', " EVENT_FINITE("noise_auroc") ") "
      "FROM epoch_metrics WHERE job_id = ?1 AND stage = ?2 AND epoch = ?3",
      &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(st, 2, m->stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(st, 3, m->epoch);
  rc = rc ? rc : sqlite3_bind_double(st, 4, db_now());
  if (rc != SQLITE_OK)
    r = db_fail(db, rc, "bind epoch event", err, errlen);
  else
    r = db_step_done(db, st, "append epoch event", err, errlen);
  sqlite3_finalize(st);
  return r;
}

int db_epoch_insert(db_t *db, int64_t job, const db_metrics_t *metrics,
                    const db_records_t *records, char *err, size_t errlen) {
  return db_epoch_insert_state(db, job, metrics, records, NULL, err, errlen);
}

int db_epoch_insert_state(db_t *db, int64_t job, const db_metrics_t *metrics,
                          const db_records_t *records, const db_state_t *state,
                          char *err, size_t errlen) {
  int r;

  r = epoch_check(metrics, records, err, errlen);
  if (r)
    return r;
  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;

  /* Progress first: it is what tells a missing job (-ENOENT). */
  r = db_job_progress(db, job, metrics->stage, metrics->epoch, err, errlen);
  if (!r)
    r = metrics_insert(db, job, metrics, err, errlen);
  if (!r)
    r = records_insert(db, job, metrics, records, err, errlen);
  if (!r && state)
    r = state_insert(db, job, state, err, errlen);
  if (!r)
    r = epoch_event(db, job, metrics, err, errlen);
  return db_tx_end(db, r, err, errlen);
}

/* ---- Reading metrics. ---- */

static void metrics_from_row(sqlite3_stmt *st, db_metrics_t *m) {
  const unsigned char *stage = sqlite3_column_text(st, 0);

  memset(m, 0, sizeof *m);
  snprintf(m->stage, sizeof m->stage, "%s", stage ? (const char *)stage : "");
  m->epoch = sqlite3_column_int(st, 1);
  m->train_loss = column_real(st, 2);
  m->train_acc = column_real(st, 3);
  m->val_acc = column_real(st, 4);
  m->test_acc = column_real(st, 5);
  m->easy_size = sqlite3_column_int(st, 6);
  m->easy_fraction = column_real(st, 7);
  m->lr = column_real(st, 8);
  m->seconds = column_real(st, 9);
  m->samples_per_s = column_real(st, 10);
  m->noise_precision = column_real(st, 11);
  m->noise_recall = column_real(st, 12);
  m->noise_auroc = column_real(st, 13);
}

/* Makes room for one more element of size elem in *arr (*cap of them). */
static int array_grow(void **arr, int n, int *cap, size_t elem) {
  void *p;
  int grown;

  if (n < *cap)
    return 0;
  grown = *cap ? 2 * *cap : 16;
  p = realloc(*arr, (size_t)grown * elem);
  if (!p)
    return -ENOMEM;
  *arr = p;
  *cap = grown;
  return 0;
}

int db_metrics_list(db_t *db, int64_t job, db_metrics_t **out, int *count,
                    char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  db_metrics_t *list = NULL;
  int n = 0, cap = 0, r, rc;

  *out = NULL;
  *count = 0;
  r = db_prepare(db,
                 "SELECT " METRICS_COLUMNS " FROM epoch_metrics "
                 "WHERE job_id = ? ORDER BY " DB_STAGE_ORDER ", epoch",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (array_grow((void **)&list, n, &cap, sizeof *list) != 0) {
      r = db_msg(-ENOMEM, err, errlen, "out of memory listing metrics");
      goto out;
    }
    metrics_from_row(st, &list[n++]);
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "list metrics", err, errlen);

out:
  sqlite3_finalize(st);
  if (r) {
    free(list);
    return r;
  }
  *out = list;
  *count = n;
  return 0;
}

/* ---- The easy or hard set of an epoch. ---- */

/* Says which of job, stage or epoch has no records: always -ENOENT
 * unless a query fails. */
static int epoch_missing(db_t *db, int64_t job, const char *stage, int epoch,
                         char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = job_exists(db, job, err, errlen);
  if (r <= 0)
    return r < 0 ? r
                 : db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  r = db_prepare(db,
                 "SELECT 1 FROM epoch_records WHERE job_id = ? "
                 "AND stage = ? LIMIT 1",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(st, 2, stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = db_msg(-ENOENT, err, errlen, "job %lld has no epoch %d in stage %s",
               (long long)job, epoch, stage);
  else if (rc == SQLITE_DONE)
    r = db_msg(-ENOENT, err, errlen, "job %lld has no records of stage %s",
               (long long)job, stage);
  else
    r = db_fail(db, rc, "find stage records", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Steps *st to the records row of (job, stage, epoch); its columns are n,
 * easy, format, stage and epoch. -ENOENT naming what is missing when there
 * is none. */
static int easy_row_find(db_t *db, int64_t job, const char *stage, int epoch,
                         sqlite3_stmt **st, char *err, size_t errlen) {
  int r, rc;

  r = db_prepare(db,
                 "SELECT n, easy, format, stage, epoch FROM epoch_records "
                 "WHERE job_id = ? AND stage = ? AND epoch = ?",
                 st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(*st, 1, job);
  rc = rc ? rc : sqlite3_bind_text(*st, 2, stage, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int(*st, 3, epoch);
  rc = rc ? rc : sqlite3_step(*st);
  if (rc == SQLITE_ROW)
    return 0;
  if (rc == SQLITE_DONE)
    return epoch_missing(db, job, stage, epoch, err, errlen);
  return db_fail(db, rc, "read epoch records", err, errlen);
}

/* The easy flags of the row easy_row_find stepped st to: n flags in
 * position order, packed as format fmt says. Valid while st rests on the
 * row. */
typedef struct {
  const uint8_t *bytes;
  int n, fmt;
} easy_flags_t;

/* Reads the easy flags of st's row into *f; -EIO when the row's format
 * is unknown or its flags are not as long as it says. */
static int easy_flags_get(sqlite3_stmt *st, easy_flags_t *f, char *err,
                          size_t errlen) {
  const unsigned char *stage;

  f->n = sqlite3_column_int(st, 0);
  f->bytes = sqlite3_column_blob(st, 1);
  f->fmt = sqlite3_column_int(st, 2);
  if ((f->fmt == REC_FORMAT_F32 || f->fmt == REC_FORMAT_HALF) &&
      (f->n == 0 || (f->bytes && sqlite3_column_bytes(st, 1) ==
                                     rec_bytes(f->fmt, REC_EASY, f->n))))
    return 0;
  stage = sqlite3_column_text(st, 3);
  return db_msg(-EIO, err, errlen,
                "easy flags of stage %s epoch %d (format %d) unreadable",
                stage ? (const char *)stage : "?", sqlite3_column_int(st, 4),
                f->fmt);
}

/* The easy flag of position pos, which must be below f->n. */
static int easy_flag(const easy_flags_t *f, int pos) {
  int off, len;

  rec_locate(f->fmt, REC_EASY, pos, &off, &len);
  return rec_easy_flag(f->fmt, f->bytes[off], pos);
}

/* The selection being gathered by db_epoch_set. */
typedef struct {
  easy_flags_t easy;
  int want_easy, limit;
  int32_t *idx; /* up to limit indices */
  int count;
} easy_pick_t;

/* Walks the job's training samples with index > after in ascending index
 * order and keeps those whose flag matches, up to the limit. */
static int easy_pick_run(db_t *db, int64_t job, int32_t after,
                         easy_pick_t *pick, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db,
                 "SELECT idx, pos FROM job_samples WHERE job_id = ? "
                 "AND split = 0 AND idx > ? ORDER BY idx",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_int(st, 2, after);
  while (rc == SQLITE_OK && pick->count < pick->limit &&
         (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int32_t idx = (int32_t)sqlite3_column_int(st, 0);
    int pos = sqlite3_column_int(st, 1);
    rc = SQLITE_OK;
    if (pos < 0 || pos >= pick->easy.n) {
      r = db_msg(-EIO, err, errlen,
                 "sample %d sits at position %d beyond the %d records",
                 (int)idx, pos, pick->easy.n);
      break;
    }
    if (easy_flag(&pick->easy, pos) == (pick->want_easy != 0))
      pick->idx[pick->count++] = idx;
  }
  if (!r && rc != SQLITE_OK && rc != SQLITE_DONE)
    r = db_fail(db, rc, "read job samples", err, errlen);
  sqlite3_finalize(st);
  return r;
}

int db_epoch_set(db_t *db, int64_t job, const char *stage, int epoch,
                 int want_easy, int32_t after, int limit, int32_t **out,
                 int *count, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  easy_pick_t pick = {.want_easy = want_easy};
  int r;

  *out = NULL;
  *count = 0;
  if (!db_stage_valid(stage))
    return db_msg(-ENOENT, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  if (limit < 0)
    return db_msg(-EINVAL, err, errlen, "negative limit %d", limit);
  r = easy_row_find(db, job, stage, epoch, &st, err, errlen);
  if (r)
    goto out;

  /* The flags stay valid while st rests on their row. */
  r = easy_flags_get(st, &pick.easy, err, errlen);
  if (r)
    goto out;
  pick.limit = limit < pick.easy.n ? limit : pick.easy.n;
  pick.idx = malloc((size_t)pick.limit * sizeof *pick.idx + 1);
  if (!pick.idx) {
    r = db_msg(-ENOMEM, err, errlen, "out of memory for %d indices", limit);
    goto out;
  }
  r = easy_pick_run(db, job, after, &pick, err, errlen);

out:
  sqlite3_finalize(st);
  if (r) {
    free(pick.idx);
    return r;
  }
  *out = pick.idx;
  *count = pick.count;
  return 0;
}

int db_epoch_set_size(db_t *db, int64_t job, const char *stage, int epoch,
                      int want_easy, int *total, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  easy_flags_t easy = {NULL, 0, 0};
  int r, count = 0;

  *total = 0;
  if (!db_stage_valid(stage))
    return db_msg(-ENOENT, err, errlen, "unknown stage '%s'",
                  stage ? stage : "(null)");
  r = easy_row_find(db, job, stage, epoch, &st, err, errlen);
  if (r == 0)
    r = easy_flags_get(st, &easy, err, errlen);
  for (int i = 0; r == 0 && i < easy.n; i++)
    count += easy_flag(&easy, i) == (want_easy != 0);
  sqlite3_finalize(st);
  if (r == 0)
    *total = count;
  return r;
}

/* ---- One sample's history. ---- */

void db_sample_deinit(db_sample_t *s) {
  if (!s)
    return;
  free(s->epochs);
  free(s->dynamics);
  memset(s, 0, sizeof *s);
}

/* Fills split and labels of the sample and its position in *pos. */
static int sample_row_read(db_t *db, int64_t job, int32_t index, db_sample_t *s,
                           int *pos, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db,
                 "SELECT split, pos, observed, clean FROM job_samples "
                 "WHERE job_id = ? AND idx = ?",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  rc = rc ? rc : sqlite3_bind_int(st, 2, index);
  rc = rc ? rc : sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    s->index = index;
    s->split = sqlite3_column_int(st, 0);
    *pos = sqlite3_column_int(st, 1);
    s->observed = sqlite3_column_int(st, 2);
    s->clean = sqlite3_column_int(st, 3);
  } else if (rc == SQLITE_DONE) {
    r = db_msg(-ENOENT, err, errlen, "job %lld does not use sample %d",
               (long long)job, (int)index);
  } else {
    r = db_fail(db, rc, "read job sample", err, errlen);
  }
  sqlite3_finalize(st);
  return r;
}

/* The query sample_epoch_add reads its rows from: after rowid, stage,
 * epoch, n and format, one column per optional array that is NULL when
 * the array is. length() tells without loading the array. */
#define SAMPLE_ROWS_SQL                                                        \
  "SELECT rowid, stage, epoch, n, format, length(margin), length(pred) "       \
  "FROM epoch_records WHERE job_id = ? ORDER BY " DB_STAGE_ORDER ", epoch"
#define SAMPLE_ROWS_FORMAT 4
#define SAMPLE_ROWS_FIRST_OPTIONAL 5

/* 1 when the current row of SAMPLE_ROWS_SQL holds record column c. */
static int row_has_column(sqlite3_stmt *st, int c) {
  int col = SAMPLE_ROWS_FIRST_OPTIONAL + c - REC_OPTIONAL;

  return c < REC_OPTIONAL || sqlite3_column_type(st, col) != SQLITE_NULL;
}

/* Points the handle of every record column at the current row of st,
 * opening them on first use. An optional column that is NULL in the row
 * gets no handle: a handle moved onto a NULL value could not move again. */
static int blobs_seek(db_t *db, sqlite3_stmt *st, sqlite3_blob **blob,
                      char *err, size_t errlen) {
  int64_t rowid = sqlite3_column_int64(st, 0);

  for (int c = 0; c < REC_COLUMNS; c++) {
    int rc;
    if (!row_has_column(st, c)) {
      sqlite3_blob_close(blob[c]);
      blob[c] = NULL;
      continue;
    }
    if (blob[c])
      rc = sqlite3_blob_reopen(blob[c], rowid);
    else
      rc = sqlite3_blob_open(db->conn, "main", "epoch_records", rec_column[c],
                             rowid, 0, &blob[c]);
    if (rc != SQLITE_OK)
      return db_fail(db, rc, "open epoch records", err, errlen);
  }
  return 0;
}

/* Reads the values at position pos of the row the handles point at, its
 * arrays packed as format fmt says; a column without a handle was not
 * recorded (margin NaN, pred -1). */
static int blobs_read(db_t *db, sqlite3_blob **blob, int fmt, int pos,
                      db_sample_epoch_t *e, char *err, size_t errlen) {
  uint8_t b[REC_COLUMNS][4];

  for (int c = 0; c < REC_COLUMNS; c++) {
    int off, len, rc;
    if (!blob[c])
      continue;
    rec_locate(fmt, c, pos, &off, &len);
    rc = sqlite3_blob_read(blob[c], b[c], len, off);
    if (rc != SQLITE_OK)
      return db_fail(db, rc, "read epoch records", err, errlen);
  }
  e->loss = rec_float(fmt, b[REC_LOSS]);
  e->prob = rec_float(fmt, b[REC_PROB]);
  e->weight = rec_float(fmt, b[REC_WEIGHT]);
  e->easy = rec_easy_flag(fmt, b[REC_EASY][0], pos);
  e->margin = blob[REC_MARGIN] ? rec_float(fmt, b[REC_MARGIN]) : NAN;
  e->pred = blob[REC_PRED] && b[REC_PRED][0] != PRED_NONE ? b[REC_PRED][0] : -1;
  return 0;
}

/* Appends the epoch of the current row of SAMPLE_ROWS_SQL to s, reading
 * the sample's values at pos. */
static int sample_epoch_add(db_t *db, sqlite3_stmt *st, sqlite3_blob **blob,
                            int pos, db_sample_t *s, int *cap, char *err,
                            size_t errlen) {
  const unsigned char *stage = sqlite3_column_text(st, 1);
  int epoch = sqlite3_column_int(st, 2);
  int n = sqlite3_column_int(st, 3);
  int fmt = sqlite3_column_int(st, SAMPLE_ROWS_FORMAT);
  db_sample_epoch_t *e;
  int r;

  if (pos >= n)
    return db_msg(-EIO, err, errlen,
                  "stage %s epoch %d holds %d records, not position %d",
                  stage ? (const char *)stage : "?", epoch, n, pos);
  if (fmt != REC_FORMAT_F32 && fmt != REC_FORMAT_HALF)
    return db_msg(-EIO, err, errlen,
                  "stage %s epoch %d: unknown records format %d",
                  stage ? (const char *)stage : "?", epoch, fmt);
  if (array_grow((void **)&s->epochs, s->n_epochs, cap, sizeof *e) != 0)
    return db_msg(-ENOMEM, err, errlen, "out of memory reading sample");
  e = &s->epochs[s->n_epochs];
  memset(e, 0, sizeof *e);
  snprintf(e->stage, sizeof e->stage, "%s", stage ? (const char *)stage : "");
  e->epoch = epoch;
  r = blobs_seek(db, st, blob, err, errlen);
  if (!r)
    r = blobs_read(db, blob, fmt, pos, e, err, errlen);
  if (!r)
    s->n_epochs++;
  return r;
}

/* Reads the sample's values at pos from every records row of the job. */
static int sample_epochs_read(db_t *db, int64_t job, int pos, db_sample_t *s,
                              char *err, size_t errlen) {
  sqlite3_blob *blob[REC_COLUMNS] = {NULL};
  sqlite3_stmt *st = NULL;
  int r, rc, cap = 0;

  r = db_prepare(db, SAMPLE_ROWS_SQL, &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, job);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    r = sample_epoch_add(db, st, blob, pos, s, &cap, err, errlen);
    if (r)
      goto out;
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "list epoch records", err, errlen);

out:
  for (int c = 0; c < REC_COLUMNS; c++)
    sqlite3_blob_close(blob[c]);
  sqlite3_finalize(st);
  return r;
}

int db_sample_get(db_t *db, int64_t job, int32_t index, db_sample_t *out,
                  char *err, size_t errlen) {
  int pos = -1, r;

  memset(out, 0, sizeof *out);
  r = sample_row_read(db, job, index, out, &pos, err, errlen);
  if (r || out->split != DB_SPLIT_TRAIN)
    return r;
  if (pos < 0)
    return db_msg(-EIO, err, errlen, "training sample %d has no position",
                  (int)index);
  r = sample_epochs_read(db, job, pos, out, err, errlen);
  if (!r)
    r = db_sample_dynamics_read(db, job, pos, out, err, errlen);
  if (r)
    db_sample_deinit(out);
  return r;
}
