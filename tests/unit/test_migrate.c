/* SPDX-License-Identifier: MIT */
/* Unit tests of opening old and bad database files. A file left at each
 * earlier schema version, built by running that version's migrations as
 * they were written and holding a job stored the way that version stored
 * it, migrates to the current schema with every row readable through the
 * public API. A newer schema and files that are not (whole) databases are
 * refused with a message naming the file and the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../storage/db.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The schema version this program's migrations reach. */
#define SCHEMA_VERSION 7

/* ---- The schema's history. ---- */

/* What earlier programs ran, kept here as a record that never changes:
 * the bookkeeping table db_migrate creates, then migrations 1 to 6 word
 * for word as storage/migrations.c has them. A change to the schema is a
 * new migration there, never an edit of these. */
static const char history_bookkeeping[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  version INTEGER PRIMARY KEY,"
    "  applied_at REAL NOT NULL)";

#define OLD_STAGE_CHECK "stage IN ('spl', 'teacher', 'student', 'baseline')"
#define OLD_STAGE_CHECK_4 "(" OLD_STAGE_CHECK " OR stage GLOB 'teacher[0-7]')"

static const char *const history[] = {
    /* 1 */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  spec_json TEXT NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  error TEXT,"
    "  provenance_json TEXT,"
    "  stage TEXT CHECK (stage IS NULL OR " OLD_STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs (state, id);"

    "CREATE TABLE job_samples ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),"
    "  split INTEGER NOT NULL CHECK (split IN (0, 1)),"
    "  pos INTEGER NOT NULL,"
    "  observed INTEGER NOT NULL,"
    "  clean INTEGER NOT NULL,"
    "  CHECK ((split = 0 AND pos >= 0) OR (split = 1 AND pos = -1)),"
    "  PRIMARY KEY (job_id, idx)) WITHOUT ROWID;"

    "CREATE TABLE epoch_metrics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" OLD_STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  train_loss REAL, train_acc REAL, val_acc REAL, test_acc REAL,"
    "  easy_size INTEGER NOT NULL, easy_fraction REAL,"
    "  lr REAL, seconds REAL, samples_per_s REAL,"
    "  PRIMARY KEY (job_id, stage, epoch)) WITHOUT ROWID;"

    "CREATE TABLE epoch_records ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" OLD_STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK (length(loss) = 4 * n),"
    "  prob BLOB NOT NULL CHECK (length(prob) = 4 * n),"
    "  weight BLOB NOT NULL CHECK (length(weight) = 4 * n),"
    "  easy BLOB NOT NULL CHECK (length(easy) = n),"
    "  PRIMARY KEY (job_id, stage, epoch));",

    /* 2 */
    "ALTER TABLE epoch_metrics ADD COLUMN noise_precision REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_recall REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_auroc REAL;"
    "ALTER TABLE epoch_records ADD COLUMN margin BLOB"
    "  CHECK (margin IS NULL OR length(margin) = 4 * n);"
    "ALTER TABLE epoch_records ADD COLUMN pred BLOB"
    "  CHECK (pred IS NULL OR length(pred) = n);",

    /* 3 */
    "CREATE TABLE stage_dynamics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" OLD_STAGE_CHECK "),"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  confidence BLOB NOT NULL CHECK (length(confidence) = 4 * n),"
    "  variability BLOB NOT NULL CHECK (length(variability) = 4 * n),"
    "  correctness BLOB NOT NULL CHECK (length(correctness) = 4 * n),"
    "  forgetting BLOB NOT NULL CHECK (length(forgetting) = 4 * n),"
    "  aum BLOB NOT NULL CHECK (length(aum) = 4 * n),"
    "  PRIMARY KEY (job_id, stage));",

    /* 4 */
    "CREATE TABLE jobs_new ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  spec_json TEXT NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  error TEXT,"
    "  provenance_json TEXT,"
    "  stage TEXT CHECK (stage IS NULL OR " OLD_STAGE_CHECK_4 "),"
    "  epoch INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO jobs_new (id, name, state, spec_json, created_at,"
    "  started_at, finished_at, error, provenance_json, stage, epoch)"
    "  SELECT id, name, state, spec_json, created_at, started_at,"
    "  finished_at, error, provenance_json, stage, epoch FROM jobs;"
    "DELETE FROM sqlite_sequence WHERE name = 'jobs_new';"
    "INSERT INTO sqlite_sequence (name, seq)"
    "  SELECT 'jobs_new', seq FROM sqlite_sequence WHERE name = 'jobs';"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_new RENAME TO jobs;"
    "CREATE INDEX jobs_state ON jobs (state, id);"

    "CREATE TABLE epoch_metrics_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " OLD_STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  train_loss REAL, train_acc REAL, val_acc REAL, test_acc REAL,"
    "  easy_size INTEGER NOT NULL, easy_fraction REAL,"
    "  lr REAL, seconds REAL, samples_per_s REAL,"
    "  noise_precision REAL, noise_recall REAL, noise_auroc REAL,"
    "  PRIMARY KEY (job_id, stage, epoch)) WITHOUT ROWID;"
    "INSERT INTO epoch_metrics_new (job_id, stage, epoch, train_loss,"
    "  train_acc, val_acc, test_acc, easy_size, easy_fraction, lr, seconds,"
    "  samples_per_s, noise_precision, noise_recall, noise_auroc)"
    "  SELECT job_id, stage, epoch, train_loss, train_acc, val_acc,"
    "  test_acc, easy_size, easy_fraction, lr, seconds, samples_per_s,"
    "  noise_precision, noise_recall, noise_auroc FROM epoch_metrics;"
    "DROP TABLE epoch_metrics;"
    "ALTER TABLE epoch_metrics_new RENAME TO epoch_metrics;"

    "CREATE TABLE epoch_records_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " OLD_STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK (length(loss) = 4 * n),"
    "  prob BLOB NOT NULL CHECK (length(prob) = 4 * n),"
    "  weight BLOB NOT NULL CHECK (length(weight) = 4 * n),"
    "  easy BLOB NOT NULL CHECK (length(easy) = n),"
    "  margin BLOB CHECK (margin IS NULL OR length(margin) = 4 * n),"
    "  pred BLOB CHECK (pred IS NULL OR length(pred) = n),"
    "  PRIMARY KEY (job_id, stage, epoch));"
    "INSERT INTO epoch_records_new (rowid, job_id, stage, epoch, n, loss,"
    "  prob, weight, easy, margin, pred)"
    "  SELECT rowid, job_id, stage, epoch, n, loss, prob, weight, easy,"
    "  margin, pred FROM epoch_records;"
    "DROP TABLE epoch_records;"
    "ALTER TABLE epoch_records_new RENAME TO epoch_records;"

    "CREATE TABLE stage_dynamics_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " OLD_STAGE_CHECK_4 ","
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  confidence BLOB NOT NULL CHECK (length(confidence) = 4 * n),"
    "  variability BLOB NOT NULL CHECK (length(variability) = 4 * n),"
    "  correctness BLOB NOT NULL CHECK (length(correctness) = 4 * n),"
    "  forgetting BLOB NOT NULL CHECK (length(forgetting) = 4 * n),"
    "  aum BLOB NOT NULL CHECK (length(aum) = 4 * n),"
    "  PRIMARY KEY (job_id, stage));"
    "INSERT INTO stage_dynamics_new (rowid, job_id, stage, n, confidence,"
    "  variability, correctness, forgetting, aum)"
    "  SELECT rowid, job_id, stage, n, confidence, variability,"
    "  correctness, forgetting, aum FROM stage_dynamics;"
    "DROP TABLE stage_dynamics;"
    "ALTER TABLE stage_dynamics_new RENAME TO stage_dynamics;",

    /* 5 */
    "CREATE TABLE epoch_records_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " OLD_STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK ((format = 1 AND length(loss) = 4 * n) OR"
    "    (format = 2 AND length(loss) = 2 * n)),"
    "  prob BLOB NOT NULL CHECK ((format = 1 AND length(prob) = 4 * n) OR"
    "    (format = 2 AND length(prob) = 2 * n)),"
    "  weight BLOB NOT NULL CHECK ((format = 1 AND length(weight) = 4 * n)"
    "    OR (format = 2 AND length(weight) = 2 * n)),"
    "  easy BLOB NOT NULL CHECK ((format = 1 AND length(easy) = n) OR"
    "    (format = 2 AND length(easy) = (n + 7) / 8)),"
    "  margin BLOB CHECK (margin IS NULL OR"
    "    (format = 1 AND length(margin) = 4 * n) OR"
    "    (format = 2 AND length(margin) = 2 * n)),"
    "  pred BLOB CHECK (pred IS NULL OR length(pred) = n),"
    "  format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2)),"
    "  PRIMARY KEY (job_id, stage, epoch));"
    "INSERT INTO epoch_records_new (rowid, job_id, stage, epoch, n, loss,"
    "  prob, weight, easy, margin, pred, format)"
    "  SELECT rowid, job_id, stage, epoch, n, loss, prob, weight, easy,"
    "  margin, pred, 1 FROM epoch_records;"
    "DROP TABLE epoch_records;"
    "ALTER TABLE epoch_records_new RENAME TO epoch_records;",

    /* 6 */
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN owner TEXT;"
    "CREATE TABLE checkpoints ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " OLD_STAGE_CHECK_4 ","
    "  kind TEXT NOT NULL CHECK (kind IN ('latest', 'final')),"
    "  epoch INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  sha256 TEXT,"
    "  PRIMARY KEY (job_id, stage, kind));"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER REFERENCES jobs (id) ON DELETE CASCADE,"
    "  at REAL NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX events_job ON events (job_id, seq);",
};

#define N_HISTORY ((int)(sizeof history / sizeof history[0]))

/* When the old program applied each migration: 1700000000 + 100 v for
 * migration v. */
#define HISTORY_APPLIED_AT(v) "1700000000 + 100 * " v

/* ---- Fixture and raw access. ---- */

/* Each test works in a directory of its own, removed afterwards with
 * whatever SQLite or the test left in it. */
typedef struct {
  char dir[64];
  char path[128]; /* the database file in dir */
  db_t *db;
  char err[512];
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);

  if (!f)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/spk-test-migrate-XXXXXX");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/spk.db", f->dir);
  *state = f;
  return 0;
}

/* Removes every entry of dir (files, or empty directories), then dir. */
static void dir_remove(const char *dir) {
  char name[512];
  struct dirent *e;
  DIR *d = opendir(dir);

  while (d && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(name, sizeof name, "%s/%s", dir, e->d_name);
    if (unlink(name) != 0)
      rmdir(name);
  }
  if (d)
    closedir(d);
  rmdir(dir);
}

static int teardown(void **state) {
  fixture_t *f = *state;

  db_close(f->db);
  dir_remove(f->dir);
  free(f);
  return 0;
}

/* A connection of the test's own to the file at path, creating it. */
static sqlite3 *raw_open(const char *path) {
  sqlite3 *conn = NULL;
  int rc = sqlite3_open_v2(path, &conn,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

  if (rc != SQLITE_OK)
    fail_msg("open %s: %s", path, sqlite3_errstr(rc));
  return conn;
}

/* Runs SQL text of any number of statements; fails the test on error. */
static void raw_exec(sqlite3 *conn, const char *sql) {
  char *msg = NULL;

  if (sqlite3_exec(conn, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* Compiles one statement; fails the test on error. */
static sqlite3_stmt *raw_prepare(sqlite3 *conn, const char *sql) {
  sqlite3_stmt *st = NULL;

  if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(conn));
  return st;
}

/* Steps a statement that must finish without rows, then finalizes it. */
static void raw_done(sqlite3 *conn, sqlite3_stmt *st) {
  if (sqlite3_step(st) != SQLITE_DONE)
    fail_msg("%s: %s", sqlite3_sql(st), sqlite3_errmsg(conn));
  sqlite3_finalize(st);
}

/* The first column of the first row of a query on the file at path, as
 * text ("" for no row or NULL), in a heap string the caller frees. */
static char *raw_text(const char *path, const char *sql) {
  sqlite3 *conn = raw_open(path);
  sqlite3_stmt *st = raw_prepare(conn, sql);
  const unsigned char *text = NULL;
  char *out;

  if (sqlite3_step(st) == SQLITE_ROW)
    text = sqlite3_column_text(st, 0);
  out = strdup(text ? (const char *)text : "");
  assert_non_null(out);
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return out;
}

/* The same as an integer (0 for no row). */
static int64_t raw_int(const char *path, const char *sql) {
  char *text = raw_text(path, sql);
  int64_t v = strtoll(text, NULL, 10);

  free(text);
  return v;
}

/* Every table's and index's name, type and CREATE statement, by name. */
static char *raw_schema(const char *path) {
  return raw_text(path, "SELECT group_concat(type || ' ' || name || ': ' ||"
                        "  coalesce(sql, '-'), char(10)) FROM (SELECT * FROM"
                        "  sqlite_master ORDER BY name)");
}

/* Asserts SQLite finds the file at path whole and every reference to a
 * job pointing at one. */
static void raw_sound_assert(const char *path) {
  char *check = raw_text(path, "SELECT group_concat(integrity_check, '; ')"
                               " FROM pragma_integrity_check");

  assert_string_equal(check, "ok");
  free(check);
  assert_int_equal(raw_int(path, "SELECT count(*) FROM "
                                 "pragma_foreign_key_check"),
                   0);
}

/* ---- The job an old program stored. ---- */

#define N_TRAIN 3

/* Job 1: training samples 10, 11, 12 at positions 0, 1, 2 and sample 13
 * for validation, observed and clean labels as below. */
static const int32_t train_index[N_TRAIN] = {10, 11, 12};
static const int train_observed[N_TRAIN] = {3, 4, 0};
static const int train_clean[N_TRAIN] = {3, 5, 0};

static const char old_job_sql[] =
    "INSERT INTO jobs (id, name, state, spec_json, created_at, started_at,"
    "  provenance_json) VALUES (1, 'old', 'running', '{\"seed\": 7}',"
    "  1700000000.5, 1700000001.25, '{\"git\": \"abc123\"}');"
    "INSERT INTO job_samples (job_id, idx, split, pos, observed, clean)"
    "  VALUES (1, 10, 0, 0, 3, 3), (1, 11, 0, 1, 4, 5), (1, 12, 0, 2, 0, 0),"
    "  (1, 13, 1, -1, 7, 7);"
    /* Jobs 2 and 3 were stored and deleted: their ids stay used. */
    "UPDATE sqlite_sequence SET seq = 3 WHERE name = 'jobs';";

/* The per-sample arrays of an epoch that hold floats. */
enum { ARR_LOSS, ARR_PROB, ARR_WEIGHT, ARR_MARGIN, N_ARR };

/* One epoch of job 1 as the program that stored it packed it. since is
 * the first version that stored epochs that way; a file at version v
 * holds every epoch with since <= v, in this order (db_metrics_list's).
 * Noise figures NaN: NULL, or no such column yet. */
typedef struct {
  int since;
  db_metrics_t m;
  int format; /* 1: float32 arrays, one byte per easy flag; 2: binary16,
                 one bit per easy flag */
  int extras; /* margin and pred stored (else NULL or no such column) */
  float f32[N_ARR][N_TRAIN];    /* the float arrays in format 1 */
  uint16_t f16[N_ARR][N_TRAIN]; /* their bits in format 2 */
  uint8_t easy[N_TRAIN];
  uint8_t pred[N_TRAIN]; /* 255: no prediction recorded */
} old_epoch_t;

static const old_epoch_t old_epochs[] = {
    /* Version 1 on: float32 values half precision cannot hold, without
     * margins, predictions or noise figures. */
    {1,
     {"spl", 1, 1.5, 0.25, 0.5, 0.375, 2, 0.625, 0.125, 2.0, 100.0, NAN, NAN,
      NAN},
     1,
     0,
     {{0.3f, 70000.0f, 0.1f}, {0.9f, 0.1f, 1e-5f}, {1.0f, 0.0f, 0.7f}},
     {{0}},
     {1, 0, 1},
     {0}},
    /* Version 2 on: margins, predicted classes and noise figures. */
    {2,
     {"spl", 2, 1.25, 0.5, 0.625, 0.5, 1, 0.3125, 0.0625, 2.5, 120.0, 0.5, 1.0,
      0.75},
     1,
     1,
     {{0.2f, 3.3f, 1e-3f},
      {0.8f, 0.3f, 0.6f},
      {1.0f, 1.0f, 0.0f},
      {2.5f, -70000.0f, 0.7f}},
     {{0}},
     {1, 1, 0},
     {3, 9, 255}},
    /* Version 4 on: a stage of a job with several teachers. */
    {4,
     {"teacher0", 1, 0.75, 0.8, 0.6, 0.65, 2, 0.625, 0.1, 0.5, 800.0, 1.0, 0.5,
      0.25},
     1,
     1,
     {{0.05f, 0.7f, 2.2f},
      {0.95f, 0.45f, 0.15f},
      {1.0f, 1.0f, 1.0f},
      {4.1f, 0.2f, -1.9f}},
     {{0}},
     {1, 1, 0},
     {1, 4, 2}},
    /* Version 5 on: binary16. loss {0.5, 2, 1.5}, prob {0.25, 0.75,
     * 2^-24}, weight {1, 0, 1}, margin {-2.5, 0.125, 65504}. */
    {5,
     {"teacher0", 2, 0.5, 0.875, 0.75, 0.7, 1, 0.25, 0.05, 0.75, 900.0, NAN,
      NAN, NAN},
     2,
     1,
     {{0}},
     {{0x3800, 0x4000, 0x3e00},
      {0x3400, 0x3a00, 0x0001},
      {0x3c00, 0x0000, 0x3c00},
      {0xc100, 0x3000, 0x7bff}},
     {0, 1, 1},
     {4, 255, 7}},
};

#define N_OLD_EPOCHS ((int)(sizeof old_epochs / sizeof old_epochs[0]))

/* Training dynamics of stage spl, stored from version 3 on. */
static const float dyn_confidence[N_TRAIN] = {0.375f, 0.6f, 0.99f};
static const float dyn_variability[N_TRAIN] = {0.125f, 0.3f, 0.01f};
static const float dyn_correctness[N_TRAIN] = {0.5f, 0.0f, 1.0f};
static const int32_t dyn_forgetting[N_TRAIN] = {1, 0, 2};
static const float dyn_aum[N_TRAIN] = {-1.0f, -0.5f, 2.7f};

/* The value of the finite binary16 number with bits h, worked out apart
 * from storage's own decoder. */
static float half_value(uint16_t h) {
  int exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  double v = exp ? ldexp(1024 + frac, exp - 25) : ldexp(frac, -24);

  return (float)((h & 0x8000) ? -v : v);
}

/* What float array c of e holds at position p as read back: exact. */
static float old_value(const old_epoch_t *e, int c, int p) {
  if (c == ARR_MARGIN && !e->extras)
    return NAN;
  return e->format == 2 ? half_value(e->f16[c][p]) : e->f32[c][p];
}

/* The predicted class of position p as read back (-1: none). */
static int old_pred(const old_epoch_t *e, int p) {
  return e->extras && e->pred[p] != 255 ? e->pred[p] : -1;
}

/* n little-endian 4-byte words from src into dst. */
static void le32_pack(uint8_t *dst, const void *src, int n) {
  for (int i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, (const uint8_t *)src + 4 * i, sizeof u);
    for (int b = 0; b < 4; b++)
      dst[4 * i + b] = (uint8_t)(u >> (8 * b));
  }
}

/* Float array c of e packed as its format stores it; returns the bytes
 * written to dst (room for 4 * N_TRAIN). */
static int old_floats_pack(const old_epoch_t *e, int c, uint8_t *dst) {
  if (e->format == 1) {
    le32_pack(dst, e->f32[c], N_TRAIN);
    return 4 * N_TRAIN;
  }
  for (int p = 0; p < N_TRAIN; p++) {
    dst[2 * p] = (uint8_t)e->f16[c][p];
    dst[2 * p + 1] = (uint8_t)(e->f16[c][p] >> 8);
  }
  return 2 * N_TRAIN;
}

/* The easy flags of e packed as its format stores them; returns the
 * bytes written to dst (room for N_TRAIN). */
static int old_easy_pack(const old_epoch_t *e, uint8_t *dst) {
  if (e->format == 1) {
    memcpy(dst, e->easy, N_TRAIN);
    return N_TRAIN;
  }
  memset(dst, 0, (N_TRAIN + 7) / 8);
  for (int p = 0; p < N_TRAIN; p++)
    dst[p / 8] |= (uint8_t)(e->easy[p] << (p % 8));
  return (N_TRAIN + 7) / 8;
}

/* Binds x as parameter i, or NULL when x is NaN. */
static void bind_real(sqlite3_stmt *st, int i, double x) {
  int rc = isnan(x) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, x);

  assert_int_equal(rc, SQLITE_OK);
}

/* Stores e's metrics with the columns a version-v file has. */
static void old_metrics_insert(sqlite3 *conn, int v, const old_epoch_t *e) {
  static const char base[] =
      "INSERT INTO epoch_metrics (job_id, stage, epoch, train_loss,"
      "  train_acc, val_acc, test_acc, easy_size, easy_fraction, lr,"
      "  seconds, samples_per_s) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7,"
      "  ?8, ?9, ?10, ?11)";
  static const char noise[] =
      "INSERT INTO epoch_metrics (job_id, stage, epoch, train_loss,"
      "  train_acc, val_acc, test_acc, easy_size, easy_fraction, lr,"
      "  seconds, samples_per_s, noise_precision, noise_recall, noise_auroc)"
      "  VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
      "  ?14)";
  const db_metrics_t *m = &e->m;
  sqlite3_stmt *st = raw_prepare(conn, v >= 2 ? noise : base);

  sqlite3_bind_text(st, 1, m->stage, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, m->epoch);
  bind_real(st, 3, m->train_loss);
  bind_real(st, 4, m->train_acc);
  bind_real(st, 5, m->val_acc);
  bind_real(st, 6, m->test_acc);
  sqlite3_bind_int(st, 7, m->easy_size);
  bind_real(st, 8, m->easy_fraction);
  bind_real(st, 9, m->lr);
  bind_real(st, 10, m->seconds);
  bind_real(st, 11, m->samples_per_s);
  if (v >= 2) {
    bind_real(st, 12, m->noise_precision);
    bind_real(st, 13, m->noise_recall);
    bind_real(st, 14, m->noise_auroc);
  }
  raw_done(conn, st);
}

/* Binds the arrays of e to the parameters of old_records_insert's
 * statements: loss 4, prob 5, weight 6, easy 7, margin 8, pred 9. Margin
 * and pred stay NULL without extras. */
static void old_arrays_bind(sqlite3_stmt *st, const old_epoch_t *e) {
  static const int param[N_ARR] = {4, 5, 6, 8};
  uint8_t buf[4 * N_TRAIN];
  int len;

  for (int c = 0; c < N_ARR; c++) {
    if (c == ARR_MARGIN && !e->extras)
      continue;
    len = old_floats_pack(e, c, buf);
    sqlite3_bind_blob(st, param[c], buf, len, SQLITE_TRANSIENT);
  }
  len = old_easy_pack(e, buf);
  sqlite3_bind_blob(st, 7, buf, len, SQLITE_TRANSIENT);
  if (e->extras)
    sqlite3_bind_blob(st, 9, e->pred, N_TRAIN, SQLITE_STATIC);
}

/* Stores e's per-sample records with the columns a version-v file has:
 * margin and pred from version 2, format from version 5. */
static void old_records_insert(sqlite3 *conn, int v, const old_epoch_t *e) {
  static const char *const sql[] = {
      "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob,"
      "  weight, easy) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob,"
      "  weight, easy, margin, pred) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7,"
      "  ?8, ?9)",
      "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob,"
      "  weight, easy, margin, pred, format) VALUES (1, ?1, ?2, ?3, ?4, ?5,"
      "  ?6, ?7, ?8, ?9, ?10)",
  };
  sqlite3_stmt *st = raw_prepare(conn, sql[(v >= 2) + (v >= 5)]);

  sqlite3_bind_text(st, 1, e->m.stage, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, e->m.epoch);
  sqlite3_bind_int(st, 3, N_TRAIN);
  old_arrays_bind(st, e);
  if (v >= 5)
    sqlite3_bind_int(st, 10, e->format);
  raw_done(conn, st);
}

/* Stores stage spl's training dynamics (version 3 on). */
static void old_dynamics_insert(sqlite3 *conn) {
  uint8_t conf[4 * N_TRAIN], var[4 * N_TRAIN], corr[4 * N_TRAIN];
  uint8_t forg[4 * N_TRAIN], aum[4 * N_TRAIN];
  sqlite3_stmt *st = raw_prepare(
      conn, "INSERT INTO stage_dynamics (job_id, stage, n, confidence,"
            "  variability, correctness, forgetting, aum)"
            "  VALUES (1, 'spl', ?1, ?2, ?3, ?4, ?5, ?6)");

  le32_pack(conf, dyn_confidence, N_TRAIN);
  le32_pack(var, dyn_variability, N_TRAIN);
  le32_pack(corr, dyn_correctness, N_TRAIN);
  le32_pack(forg, dyn_forgetting, N_TRAIN);
  le32_pack(aum, dyn_aum, N_TRAIN);
  sqlite3_bind_int(st, 1, N_TRAIN);
  sqlite3_bind_blob(st, 2, conf, sizeof conf, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, var, sizeof var, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, corr, sizeof corr, SQLITE_STATIC);
  sqlite3_bind_blob(st, 5, forg, sizeof forg, SQLITE_STATIC);
  sqlite3_bind_blob(st, 6, aum, sizeof aum, SQLITE_STATIC);
  raw_done(conn, st);
}

/* The last epoch a version-v file holds: the job's progress. */
static const old_epoch_t *old_last_epoch(int v) {
  const old_epoch_t *last = NULL;

  for (int i = 0; i < N_OLD_EPOCHS && old_epochs[i].since <= v; i++)
    last = &old_epochs[i];
  return last;
}

/* Stores job 1 as a version-v program (v >= 1) did. */
static void old_job_insert(sqlite3 *conn, int v) {
  const old_epoch_t *last = old_last_epoch(v);
  sqlite3_stmt *st;

  raw_exec(conn, old_job_sql);
  for (int i = 0; i < N_OLD_EPOCHS && old_epochs[i].since <= v; i++) {
    old_metrics_insert(conn, v, &old_epochs[i]);
    old_records_insert(conn, v, &old_epochs[i]);
  }
  if (v >= 3)
    old_dynamics_insert(conn);
  st = raw_prepare(conn, "UPDATE jobs SET stage = ?1, epoch = ?2 "
                         "WHERE id = 1");
  sqlite3_bind_text(st, 1, last->m.stage, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, last->m.epoch);
  raw_done(conn, st);
}

/* Writes a file at schema version v as a program of that version left
 * it: the bookkeeping table, migrations 1 to v each in a transaction of
 * its own with its record, then (v >= 1) job 1. Otherwise SQLite's
 * defaults: 4 KiB pages, no auto_vacuum, a rollback journal. */
static void old_file_write(const char *path, int v) {
  sqlite3 *conn = raw_open(path);
  sqlite3_stmt *st;

  assert_true(v >= 0 && v <= N_HISTORY);
  raw_exec(conn, history_bookkeeping);
  for (int i = 1; i <= v; i++) {
    raw_exec(conn, "BEGIN");
    raw_exec(conn, history[i - 1]);
    st = raw_prepare(conn,
                     "INSERT INTO schema_migrations (version,"
                     "  applied_at) VALUES (?1, " HISTORY_APPLIED_AT("?1") ")");
    sqlite3_bind_int(st, 1, i);
    raw_done(conn, st);
    raw_exec(conn, "COMMIT");
  }
  if (v >= 1)
    old_job_insert(conn, v);
  sqlite3_close(conn);
}

/* ---- Reading the old job back. ---- */

/* Fails unless got is want, NaN matching NaN. */
static void same_assert(double got, double want, const char *what) {
  if (!(got == want || (isnan(got) && isnan(want))))
    fail_msg("%s: got %.9g, want %.9g", what, got, want);
}

static void old_job_fields_assert(db_t *db, int v) {
  const old_epoch_t *last = old_last_epoch(v);
  char err[512] = "";
  db_job_t job;

  assert_int_equal(db_job_get(db, 1, &job, err, sizeof err), 0);
  assert_string_equal(job.name, "old");
  assert_string_equal(job.state, "running");
  assert_string_equal(job.spec_json, "{\"seed\": 7}");
  same_assert(job.created_at, 1700000000.5, "created_at");
  same_assert(job.started_at, 1700000001.25, "started_at");
  same_assert(job.finished_at, 0, "finished_at");
  assert_null(job.error);
  assert_string_equal(job.provenance_json, "{\"git\": \"abc123\"}");
  assert_string_equal(job.stage, last->m.stage);
  assert_int_equal(job.epoch, last->m.epoch);
  assert_int_equal(job.priority, 0);
  assert_null(job.owner);
  db_job_deinit(&job);
}

static void old_metrics_assert(db_t *db, int v) {
  db_metrics_t *list = NULL;
  char err[512] = "";
  int n = 0, i;

  assert_int_equal(db_metrics_list(db, 1, &list, &n, err, sizeof err), 0);
  for (i = 0; i < N_OLD_EPOCHS && old_epochs[i].since <= v; i++) {
    const db_metrics_t *want = &old_epochs[i].m, *got = &list[i];

    assert_true(i < n);
    assert_string_equal(got->stage, want->stage);
    assert_int_equal(got->epoch, want->epoch);
    same_assert(got->train_loss, want->train_loss, "train_loss");
    same_assert(got->train_acc, want->train_acc, "train_acc");
    same_assert(got->val_acc, want->val_acc, "val_acc");
    same_assert(got->test_acc, want->test_acc, "test_acc");
    assert_int_equal(got->easy_size, want->easy_size);
    same_assert(got->easy_fraction, want->easy_fraction, "easy_fraction");
    same_assert(got->lr, want->lr, "lr");
    same_assert(got->seconds, want->seconds, "seconds");
    same_assert(got->samples_per_s, want->samples_per_s, "samples_per_s");
    same_assert(got->noise_precision, want->noise_precision, "precision");
    same_assert(got->noise_recall, want->noise_recall, "recall");
    same_assert(got->noise_auroc, want->noise_auroc, "auroc");
  }
  assert_int_equal(n, i);
  free(list);
}

/* Training sample at position p: every epoch's values as stored, and
 * its spl dynamics from version 3 on. */
static void old_sample_assert(db_t *db, int v, int p) {
  char err[512] = "";
  db_sample_t s;
  int i;

  assert_int_equal(db_sample_get(db, 1, train_index[p], &s, err, sizeof err),
                   0);
  assert_int_equal(s.index, train_index[p]);
  assert_int_equal(s.split, DB_SPLIT_TRAIN);
  assert_int_equal(s.observed, train_observed[p]);
  assert_int_equal(s.clean, train_clean[p]);
  for (i = 0; i < N_OLD_EPOCHS && old_epochs[i].since <= v; i++) {
    const old_epoch_t *e = &old_epochs[i];

    assert_true(i < s.n_epochs);
    assert_string_equal(s.epochs[i].stage, e->m.stage);
    assert_int_equal(s.epochs[i].epoch, e->m.epoch);
    same_assert(s.epochs[i].loss, old_value(e, ARR_LOSS, p), "loss");
    same_assert(s.epochs[i].prob, old_value(e, ARR_PROB, p), "prob");
    same_assert(s.epochs[i].weight, old_value(e, ARR_WEIGHT, p), "weight");
    same_assert(s.epochs[i].margin, old_value(e, ARR_MARGIN, p), "margin");
    assert_int_equal(s.epochs[i].easy, e->easy[p]);
    assert_int_equal(s.epochs[i].pred, old_pred(e, p));
  }
  assert_int_equal(s.n_epochs, i);
  assert_int_equal(s.n_dynamics, v >= 3 ? 1 : 0);
  if (v >= 3) {
    assert_string_equal(s.dynamics[0].stage, "spl");
    same_assert(s.dynamics[0].confidence, dyn_confidence[p], "confidence");
    same_assert(s.dynamics[0].variability, dyn_variability[p], "variability");
    same_assert(s.dynamics[0].correctness, dyn_correctness[p], "correctness");
    assert_int_equal(s.dynamics[0].forgetting, dyn_forgetting[p]);
    same_assert(s.dynamics[0].aum, dyn_aum[p], "aum");
  }
  db_sample_deinit(&s);
}

/* Everything job 1 of a version-v file holds reads back as stored, and
 * a new job gets an id the old program never handed out. */
static void old_job_assert(db_t *db, int v) {
  char err[512] = "";
  int64_t id = 0;
  db_sample_t s;

  old_job_fields_assert(db, v);
  old_metrics_assert(db, v);
  for (int p = 0; p < N_TRAIN; p++)
    old_sample_assert(db, v, p);
  assert_int_equal(db_sample_get(db, 1, 13, &s, err, sizeof err), 0);
  assert_int_equal(s.split, DB_SPLIT_VAL);
  assert_int_equal(s.observed, 7);
  assert_int_equal(s.n_epochs, 0);
  db_sample_deinit(&s);
  assert_int_equal(db_job_insert(db, "new", "{}", &id, err, sizeof err), 0);
  assert_int_equal(id, 4);
}

/* ---- Migrating from every earlier version. ---- */

/* The schema a file new to this program gets, made beside f's file. */
static char *fresh_schema(fixture_t *f) {
  char path[160];
  db_t *db = NULL;
  char *schema;

  snprintf(path, sizeof path, "%s/fresh.db", f->dir);
  assert_int_equal(db_open(path, &db, f->err, sizeof f->err), 0);
  schema = raw_schema(path);
  db_close(db);
  return schema;
}

/* Opens f's file, which an old program left at version v, and checks
 * what any migrated file must be: the current version with every
 * earlier record kept, a new file's schema, in incremental auto_vacuum
 * and WAL mode, whole, no dangling reference. */
static void migrated_assert(fixture_t *f, int v) {
  char *fresh = fresh_schema(f), *schema;

  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  assert_int_equal(raw_int(f->path, "SELECT group_concat(version, '') FROM"
                                    " (SELECT version FROM schema_migrations"
                                    " ORDER BY version)"),
                   1234567);
  assert_int_equal(
      raw_int(f->path, "SELECT count(*) FROM schema_migrations"
                       " WHERE applied_at = " HISTORY_APPLIED_AT("version")),
      v);
  schema = raw_schema(f->path);
  assert_string_equal(schema, fresh);
  free(schema);
  free(fresh);
  assert_int_equal(raw_int(f->path, "PRAGMA auto_vacuum"), 2);
  assert_int_equal(raw_int(f->path, "SELECT journal_mode = 'wal' FROM "
                                    "pragma_journal_mode"),
                   1);
  raw_sound_assert(f->path);
}

static void migrate_from(void **state, int v) {
  fixture_t *f = *state;

  old_file_write(f->path, v);
  assert_int_equal(raw_int(f->path, "SELECT coalesce(max(version), 0) FROM "
                                    "schema_migrations"),
                   v);
  migrated_assert(f, v);
  old_job_assert(f->db, v);

  /* Opening the migrated file again changes nothing. */
  db_close(f->db);
  f->db = NULL;
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  old_job_fields_assert(f->db, v);
  raw_sound_assert(f->path);
}

/* Version 0 with the bookkeeping table alone: a program stopped between
 * creating it and committing migration 1. */
static void test_migrate_from_version_0(void **state) {
  fixture_t *f = *state;
  char err[512] = "";
  db_job_t job;
  int64_t id = 0;

  old_file_write(f->path, 0);
  migrated_assert(f, 0);
  assert_int_equal(db_job_get(f->db, 1, &job, err, sizeof err), -ENOENT);
  assert_int_equal(db_job_insert(f->db, "first", "{}", &id, err, sizeof err),
                   0);
  assert_int_equal(id, 1);
}

static void test_migrate_from_version_1(void **state) {
  migrate_from(state, 1);
}

static void test_migrate_from_version_2(void **state) {
  migrate_from(state, 2);
}

static void test_migrate_from_version_3(void **state) {
  migrate_from(state, 3);
}

static void test_migrate_from_version_4(void **state) {
  migrate_from(state, 4);
}

static void test_migrate_from_version_5(void **state) {
  migrate_from(state, 5);
}

static void test_migrate_from_version_6(void **state) {
  migrate_from(state, 6);
}

/* ---- A schema newer than this program. ---- */

/* Writes a database of this program's at path holding one job. */
static void good_file_write(const char *path) {
  char err[512] = "", wal[192];
  db_t *db = NULL;
  int64_t id = 0;

  assert_int_equal(db_open(path, &db, err, sizeof err), 0);
  assert_int_equal(
      db_job_insert(db, "kept", "{\"seed\": 3}", &id, err, sizeof err), 0);
  db_close(db);

  /* The last connection folded its log into the file: the file alone is
   * the whole database. */
  snprintf(wal, sizeof wal, "%s-wal", path);
  assert_int_equal(access(wal, F_OK), -1);
}

static void test_open_refuses_newer_schema(void **state) {
  fixture_t *f = *state;
  sqlite3 *conn;
  char *before, *after, newer[32], ours[16];
  size_t plen;

  good_file_write(f->path);
  conn = raw_open(f->path);
  raw_exec(conn, "INSERT INTO schema_migrations (version, applied_at)"
                 "  SELECT max(version) + 1, 1800000000"
                 "  FROM schema_migrations");
  sqlite3_close(conn);
  before = raw_schema(f->path);
  snprintf(newer, sizeof newer, "version %d", SCHEMA_VERSION + 1);
  snprintf(ours, sizeof ours, "%d", SCHEMA_VERSION);

  f->db = (db_t *)f; /* Any non-NULL value: db_open must clear it. */
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), -EIO);
  assert_null(f->db);
  plen = strlen(f->path);
  assert_true(strncmp(f->err, f->path, plen) == 0);
  assert_non_null(strstr(f->err + plen, "newer"));
  assert_non_null(strstr(f->err + plen, newer));
  assert_non_null(strstr(f->err + plen, ours));

  /* The file is left as it was, for the newer program. */
  after = raw_schema(f->path);
  assert_string_equal(after, before);
  free(after);
  free(before);
  assert_int_equal(raw_int(f->path, "SELECT max(version) FROM "
                                    "schema_migrations"),
                   SCHEMA_VERSION + 1);
  assert_int_equal(raw_int(f->path, "SELECT count(*) FROM jobs"), 1);
}

/* ---- Files that are not (whole) databases. ---- */

/* The bytes of the file at path in *len, in a heap buffer. */
static uint8_t *file_read(const char *path, long *len) {
  FILE *fp = fopen(path, "rb");
  uint8_t *buf;

  assert_non_null(fp);
  assert_int_equal(fseek(fp, 0, SEEK_END), 0);
  *len = ftell(fp);
  assert_true(*len >= 0);
  rewind(fp);
  buf = malloc((size_t)*len + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)*len, fp), (size_t)*len);
  fclose(fp);
  return buf;
}

static void file_write(const char *path, const void *buf, size_t len) {
  FILE *fp = fopen(path, "wb");

  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

static void text_file_write(const char *path) {
  static const char text[] = "name,label\nthis is a note, not a database\n";

  file_write(path, text, sizeof text - 1);
}

/* Three 4 KiB pages of xorshift64 output from a fixed seed. */
static void random_file_write(const char *path) {
  uint8_t buf[3 * 4096];
  uint64_t s = 0x9e3779b97f4a7c15u;

  for (size_t i = 0; i < sizeof buf; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    buf[i] = (uint8_t)(s >> 56);
  }
  file_write(path, buf, sizeof buf);
}

/* A database cut to half its size: the pages its header counts are not
 * all there. */
static void truncated_file_write(const char *path) {
  struct stat sb;

  good_file_write(path);
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size >= 4 * 65536);
  assert_int_equal(truncate(path, sb.st_size / 2), 0);
}

/* A database whose first 16 bytes, "SQLite format 3" and its NUL, are
 * something else. */
static void magic_file_write(const char *path) {
  uint8_t *buf;
  long len;

  good_file_write(path);
  buf = file_read(path, &len);
  memcpy(buf, "SQLite format 4", 16);
  file_write(path, buf, (size_t)len);
  free(buf);
}

/* A database whose page 1 holds zeros after the 100-byte file header:
 * the b-tree of the schema is unreadable. */
static void page1_file_write(const char *path) {
  uint8_t *buf;
  long len;

  good_file_write(path);
  buf = file_read(path, &len);
  assert_true(len > 4196);
  memset(buf + 100, 0, 4096);
  file_write(path, buf, (size_t)len);
  free(buf);
}

/* A bad file: how to write it, and the words db_open's message must
 * hold after "path: ". */
typedef struct {
  const char *name;
  void (*write)(const char *path);
  const char *says;
} bad_file_t;

static const bad_file_t bad_files[] = {
    {"text", text_file_write, "file is not a database"},
    {"random bytes", random_file_write, "file is not a database"},
    {"truncated", truncated_file_write, "database disk image is malformed"},
    {"magic changed", magic_file_write, "file is not a database"},
    {"page 1 zeroed", page1_file_write, "database disk image is malformed"},
};

/* 1 when a file called path plus suffix exists. */
static int sidecar_exists(const char *path, const char *suffix) {
  char name[192];

  snprintf(name, sizeof name, "%s%s", path, suffix);
  return access(name, F_OK) == 0;
}

/* db_open refuses the file at path with -EIO and a message starting
 * "path: " and holding says; the file keeps every byte, and SQLite
 * leaves nothing beside it. */
static void bad_file_assert(const char *path, const char *says) {
  char err[512] = "";
  db_t *db = (db_t *)&db; /* Any non-NULL value: db_open must clear it. */
  uint8_t *before, *after;
  long len_before, len_after;
  size_t plen = strlen(path);

  before = file_read(path, &len_before);
  assert_int_equal(db_open(path, &db, err, sizeof err), -EIO);
  assert_null(db);
  if (strncmp(err, path, plen) != 0 || strncmp(err + plen, ": ", 2) != 0 ||
      !strstr(err, says))
    fail_msg("message '%s' lacks '%s: ... %s'", err, path, says);
  after = file_read(path, &len_after);
  assert_int_equal(len_after, len_before);
  assert_memory_equal(after, before, (size_t)len_before);
  free(after);
  free(before);
  assert_false(sidecar_exists(path, "-wal"));
  assert_false(sidecar_exists(path, "-shm"));
  assert_false(sidecar_exists(path, "-journal"));
}

static void test_open_refuses_bad_files(void **state) {
  fixture_t *f = *state;
  char path[192];

  for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
    snprintf(path, sizeof path, "%s/bad%zu.db", f->dir, i);
    bad_files[i].write(path);
    print_message("bad file: %s\n", bad_files[i].name);
    bad_file_assert(path, bad_files[i].says);
  }
}

/* A zero-length file is what SQLite takes for a database not yet
 * written: db_open makes it a new one, as for a path that did not
 * exist. */
static void test_open_empty_file_makes_new_database(void **state) {
  fixture_t *f = *state;
  char *fresh = fresh_schema(f), *schema;
  struct stat sb;
  db_job_t job;
  int64_t id = 0;

  file_write(f->path, "", 0);
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  schema = raw_schema(f->path);
  assert_string_equal(schema, fresh);
  free(schema);
  free(fresh);
  assert_int_equal(stat(f->path, &sb), 0);
  assert_true(sb.st_size > 0);
  assert_int_equal(raw_int(f->path, "PRAGMA page_size"), 65536);
  raw_sound_assert(f->path);
  assert_int_equal(
      db_job_insert(f->db, "first", "{}", &id, f->err, sizeof f->err), 0);
  assert_int_equal(id, 1);
  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.name, "first");
  db_job_deinit(&job);
}

static void test_open_directory_fails(void **state) {
  fixture_t *f = *state;
  db_t *db = (db_t *)f; /* Any non-NULL value: db_open must clear it. */

  assert_int_equal(mkdir(f->path, 0700), 0);
  assert_int_equal(db_open(f->path, &db, f->err, sizeof f->err), -EIO);
  assert_null(db);
  assert_true(strncmp(f->err, f->path, strlen(f->path)) == 0);
  assert_non_null(strstr(f->err, "is a directory"));
}

static void test_open_missing_directory_fails(void **state) {
  fixture_t *f = *state;
  char parent[128], path[160];
  db_t *db = (db_t *)f; /* Any non-NULL value: db_open must clear it. */

  snprintf(parent, sizeof parent, "%s/missing", f->dir);
  snprintf(path, sizeof path, "%s/spk.db", parent);
  assert_int_equal(db_open(path, &db, f->err, sizeof f->err), -EIO);
  assert_null(db);
  assert_true(strncmp(f->err, path, strlen(path)) == 0);
  assert_non_null(strstr(f->err, "does not exist"));
  assert_int_equal(access(parent, F_OK), -1);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_migrate_from_version_0),
      TEST(test_migrate_from_version_1),
      TEST(test_migrate_from_version_2),
      TEST(test_migrate_from_version_3),
      TEST(test_migrate_from_version_4),
      TEST(test_migrate_from_version_5),
      TEST(test_migrate_from_version_6),
      TEST(test_open_refuses_newer_schema),
      TEST(test_open_refuses_bad_files),
      TEST(test_open_empty_file_makes_new_database),
      TEST(test_open_directory_fails),
      TEST(test_open_missing_directory_fails),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
