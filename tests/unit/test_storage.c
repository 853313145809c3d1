/* SPDX-License-Identifier: MIT */
/* Unit tests of storage/: opening and migrating a database file (ones
 * written by version-1, -2 and -3 programs included), moving jobs
 * through their states, storing a job's samples, its epochs and its
 * stages' training dynamics (several teachers' included) and reading them
 * back.
 * Each test works on its own file under /tmp, removed afterwards. sqlite3
 * is called directly only to inspect, doctor or hand-craft a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../storage/db.h"
#include "dbfix.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The schema version this program's migrations reach. */
#define SCHEMA_VERSION 7

typedef db_fixture_t fixture_t;

static int setup(void **state) {
  return db_fixture_setup(state, "storage");
}

static int teardown(void **state) {
  return db_fixture_teardown(state);
}

/* Runs one SQL statement on the file with a connection of its own and
 * returns the first column of its first row as an integer (0 if none). */
static int64_t raw_query(const char *path, const char *sql) {
  sqlite3 *conn = NULL;
  sqlite3_stmt *st = NULL;
  int64_t v = 0;

  assert_int_equal(sqlite3_open(path, &conn), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return v;
}

/* Runs SQL text (any number of statements) on the file with a connection
 * of its own. */
static void raw_exec(const char *path, const char *sql) {
  sqlite3 *conn = NULL;
  char *msg = NULL;
  int rc;

  assert_int_equal(sqlite3_open(path, &conn), SQLITE_OK);
  rc = sqlite3_exec(conn, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fail_msg("%s", msg ? msg : sqlite3_errstr(rc));
  sqlite3_close(conn);
}

/* Like raw_exec, but returns sqlite3_exec's code instead of failing. */
static int raw_exec_rc(const char *path, const char *sql) {
  sqlite3 *conn = NULL;
  int rc;

  assert_int_equal(sqlite3_open(path, &conn), SQLITE_OK);
  rc = sqlite3_exec(conn, sql, NULL, NULL, NULL);
  sqlite3_close(conn);
  return rc;
}

/* Runs one SQL query on the file with a connection of its own and returns
 * the first column of its first row as text, which must not be NULL. The
 * caller frees it. */
static char *raw_text(const char *path, const char *sql) {
  sqlite3 *conn = NULL;
  sqlite3_stmt *st = NULL;
  const unsigned char *text;
  char *out;

  assert_int_equal(sqlite3_open(path, &conn), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  text = sqlite3_column_text(st, 0);
  assert_non_null(text);
  out = strdup((const char *)text);
  assert_non_null(out);
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return out;
}

/* The schema of the file as text: every table's and index's CREATE
 * statement, in name order. The caller frees it. */
static char *raw_schema(const char *path) {
  return raw_text(path, "SELECT group_concat(sql, ';') FROM "
                        "(SELECT sql FROM sqlite_master "
                        "WHERE sql IS NOT NULL ORDER BY name)");
}

static int64_t job_new(db_t *db, const char *name) {
  char err[256] = "";
  int64_t id = 0;

  assert_int_equal(
      db_job_insert(db, name, "{\"seed\": 1}", &id, err, sizeof err), 0);
  assert_true(id > 0);
  return id;
}

/* ---- Opening and migrations. ---- */

static void test_open_creates_schema(void **state) {
  fixture_t *f = *state;
  int64_t applied, id;
  db_job_t job;

  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM "
                                      "schema_migrations"),
                   SCHEMA_VERSION);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM sqlite_master "
                                      "WHERE name IN ('jobs', "
                                      "'job_samples', 'epoch_metrics', "
                                      "'epoch_records', 'stage_dynamics')"),
                   5);
  id = job_new(f->db, "kept");
  applied = raw_query(f->path, "SELECT CAST(sum(applied_at) * 1000 AS "
                               "INTEGER) FROM schema_migrations");

  /* Opening again applies nothing and keeps what is stored. */
  db_close(f->db);
  f->db = NULL;
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM "
                                      "schema_migrations"),
                   SCHEMA_VERSION);
  assert_true(raw_query(f->path, "SELECT CAST(sum(applied_at) * 1000 AS "
                                 "INTEGER) FROM schema_migrations") == applied);
  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.name, "kept");
  db_job_deinit(&job);
}

static void test_open_uses_wal(void **state) {
  fixture_t *f = *state;
  sqlite3 *conn = NULL;
  sqlite3_stmt *st = NULL;

  assert_int_equal(sqlite3_open(f->path, &conn), SQLITE_OK);
  assert_int_equal(
      sqlite3_prepare_v2(conn, "PRAGMA journal_mode", -1, &st, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(conn);
}

static void test_open_refuses_newer_schema(void **state) {
  fixture_t *f = *state;
  db_t *db = (db_t *)&db; /* Any non-NULL value: db_open must clear it. */
  char err[256] = "";

  db_close(f->db);
  f->db = NULL;
  raw_query(f->path, "INSERT INTO schema_migrations (version, applied_at) "
                     "VALUES (99, 0)");
  assert_int_equal(raw_query(f->path, "SELECT max(version) FROM "
                                      "schema_migrations"),
                   99);

  assert_int_equal(db_open(f->path, &db, err, sizeof err), -EIO);
  assert_null(db);
  assert_non_null(strstr(err, "newer"));
  assert_non_null(strstr(err, "99"));
}

static void test_open_directory_fails(void **state) {
  char dir[] = "/tmp/spk-test-storage-dir-XXXXXX";
  char err[256] = "";
  db_t *db = NULL;
  int r;

  (void)state;
  assert_non_null(mkdtemp(dir));
  r = db_open(dir, &db, err, sizeof err);
  rmdir(dir);
  assert_true(r < 0);
  assert_null(db);
  assert_non_null(strstr(err, dir));
  assert_true(strlen(err) > strlen(dir) + 2);
}

/* ---- Jobs. ---- */

static void test_job_insert_get(void **state) {
  fixture_t *f = *state;
  double before = (double)time(NULL) - 1;
  db_job_t job;
  int64_t id = job_new(f->db, "first");

  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_true(job.id == id);
  assert_string_equal(job.name, "first");
  assert_string_equal(job.state, "queued");
  assert_string_equal(job.spec_json, "{\"seed\": 1}");
  assert_true(job.created_at >= before);
  assert_true(job.started_at == 0 && job.finished_at == 0);
  assert_null(job.error);
  assert_null(job.provenance_json);
  assert_null(job.stage);
  assert_int_equal(job.epoch, 0);
  db_job_deinit(&job);

  assert_int_equal(db_job_get(f->db, id + 100, &job, f->err, sizeof f->err),
                   -ENOENT);
  assert_null(job.name);
}

static void test_job_list_pages(void **state) {
  fixture_t *f = *state;
  int64_t id[3];
  db_job_t *jobs = NULL;
  int n = -1;

  id[0] = job_new(f->db, "a");
  id[1] = job_new(f->db, "b");
  id[2] = job_new(f->db, "c");

  assert_int_equal(db_job_list(f->db, 0, 10, &jobs, &n, f->err, sizeof f->err),
                   0);
  assert_int_equal(n, 3);
  assert_true(jobs[0].id == id[2] && jobs[1].id == id[1] &&
              jobs[2].id == id[0]);
  assert_string_equal(jobs[0].name, "c");
  db_jobs_free(jobs, n);

  /* Two per page: the second page starts below the first page's last. */
  assert_int_equal(db_job_list(f->db, 0, 2, &jobs, &n, f->err, sizeof f->err),
                   0);
  assert_int_equal(n, 2);
  assert_true(jobs[1].id == id[1]);
  db_jobs_free(jobs, n);
  assert_int_equal(
      db_job_list(f->db, id[1], 2, &jobs, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 1);
  assert_true(jobs[0].id == id[0]);
  assert_string_equal(jobs[0].name, "a");
  db_jobs_free(jobs, n);
  assert_int_equal(
      db_job_list(f->db, id[0], 2, &jobs, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  db_jobs_free(jobs, n);
}

static void test_job_start_progress_finish(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), b = job_new(f->db, "b"), next = 0;
  db_job_t job;

  assert_int_equal(db_job_next_queued(f->db, &next, f->err, sizeof f->err), 0);
  assert_true(next == a);
  assert_int_equal(
      db_job_start(f->db, a, "{\"host\": \"h\"}", f->err, sizeof f->err), 0);
  assert_int_equal(db_job_start(f->db, a, NULL, f->err, sizeof f->err), -EBUSY);
  assert_int_equal(db_job_next_queued(f->db, &next, f->err, sizeof f->err), 0);
  assert_true(next == b);

  assert_int_equal(
      db_job_progress(f->db, a, "teacher", 3, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_progress(f->db, a, "nope", 3, f->err, sizeof f->err),
                   -EINVAL);
  assert_int_equal(db_job_get(f->db, a, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "running");
  assert_string_equal(job.provenance_json, "{\"host\": \"h\"}");
  assert_true(job.started_at >= job.created_at);
  assert_string_equal(job.stage, "teacher");
  assert_int_equal(job.epoch, 3);
  db_job_deinit(&job);

  assert_int_equal(
      db_job_finish(f->db, a, "running", NULL, f->err, sizeof f->err), -EINVAL);
  assert_int_equal(
      db_job_finish(f->db, a, "succeeded", NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_get(f->db, a, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "succeeded");
  assert_true(job.finished_at >= job.started_at);
  assert_null(job.error);
  db_job_deinit(&job);
}

static void test_job_cancel_queued(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), b = job_new(f->db, "b"), next = -1;
  db_job_t job;

  assert_int_equal(db_job_start(f->db, a, NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_cancel_queued(f->db, a, f->err, sizeof f->err),
                   -EBUSY);
  assert_non_null(strstr(f->err, "running"));
  assert_int_equal(db_job_cancel_queued(f->db, b + 100, f->err, sizeof f->err),
                   -ENOENT);

  assert_int_equal(db_job_cancel_queued(f->db, b, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_get(f->db, b, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "cancelled");
  assert_true(job.finished_at > 0);
  db_job_deinit(&job);

  /* A cancelled job can no longer start, and nothing is left queued. */
  assert_int_equal(db_job_start(f->db, b, NULL, f->err, sizeof f->err), -EBUSY);
  assert_int_equal(db_job_next_queued(f->db, &next, f->err, sizeof f->err), 0);
  assert_true(next == 0);
}

static void test_jobs_fail_running(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), b = job_new(f->db, "b");
  int64_t c = job_new(f->db, "c");
  db_job_t job;
  int count = -1;

  assert_int_equal(db_job_start(f->db, a, NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_start(f->db, c, NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_jobs_fail_running(f->db, "daemon stopped", &count, f->err,
                                        sizeof f->err),
                   0);
  assert_int_equal(count, 2);

  assert_int_equal(db_job_get(f->db, c, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "failed");
  assert_string_equal(job.error, "daemon stopped");
  db_job_deinit(&job);
  assert_int_equal(db_job_get(f->db, b, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "queued");
  db_job_deinit(&job);

  assert_int_equal(
      db_jobs_fail_running(f->db, "again", &count, f->err, sizeof f->err), 0);
  assert_int_equal(count, 0);
}

/* ---- A small job's samples and epochs. ---- */

/* Ten samples of the training file: seven train (positions 0..6 in index
 * order), three validation; samples 3, 11 and 21 carry injected noise. */
#define N_SAMPLES 10
#define N_TRAIN 7
static const int32_t s_index[N_SAMPLES] = {2, 3, 5, 8, 11, 14, 20, 21, 30, 41};
static const uint8_t s_split[N_SAMPLES] = {0, 0, 1, 0, 0, 1, 0, 0, 1, 0};
static const int32_t s_pos[N_SAMPLES] = {0, 1, -1, 2, 3, -1, 4, 5, -1, 6};
static const uint8_t s_observed[N_SAMPLES] = {1, 4, 7, 0, 9, 2, 3, 3, 5, 8};
static const uint8_t s_clean[N_SAMPLES] = {1, 6, 7, 0, 2, 2, 3, 1, 5, 8};

/* One stored epoch. has_margin and has_pred say whether the epoch hands
 * its margins and predicted classes to storage or leaves them out. */
typedef struct {
  db_metrics_t m;
  float loss[N_TRAIN], prob[N_TRAIN], weight[N_TRAIN];
  uint8_t easy[N_TRAIN];
  float margin[N_TRAIN];
  uint8_t pred[N_TRAIN];
  int has_margin, has_pred;
} test_epoch_t;

/* In pipeline order; stored in another order (see small_job_store). The
 * second spl epoch records neither margin nor prediction and the teacher's
 * no prediction, so rows with and without them alternate; a prediction of
 * 255 means none. The student's noise figures are NaN, as for a job
 * without noise. */
static const test_epoch_t s_epochs[] = {
    {{"spl", 1, 2.25, 0.25, 0.2, 0.3, 4, 4.0 / 7, 0.05, 1.5, 3000, 0.75, 0.6,
      0.875},
     {0.5f, 2.75f, 0.125f, 0.25f, 3.5f, 1.75f, 0.0625f},
     {0.9f, 0.1f, 0.8f, 0.75f, 0.05f, 0.2f, 0.95f},
     {1, 1, 1, 1, 1, 1, 1},
     {1, 0, 1, 1, 0, 0, 1},
     {2.5f, -1.25f, 1.5f, 0.75f, -3.0f, -0.5f, 4.0f},
     {1, 6, 7, 0, 2, 255, 8},
     1,
     1},
    {{"spl", 2, 1.5, 0.5, NAN, 0.45, 4, 4.0 / 7, 0.05, 1.25, 3500, 0.5, 0.4,
      0.625},
     {0.25f, 0.375f, 1.5f, 0.125f, 0.5f, 2.5f, 1.25f},
     {0.95f, 0.7f, 0.3f, 0.9f, 0.6f, 0.15f, 0.35f},
     {1, 0, 1, 1, 0, 0, 1},
     {1, 1, 0, 1, 1, 0, 0},
     {9.0f, 9.0f, 9.0f, 9.0f, 9.0f, 9.0f, 9.0f},
     {9, 9, 9, 9, 9, 9, 9},
     0,
     0},
    {{"teacher", 1, 0.75, 0.8, 0.6, 0.65, 4, 4.0 / 7, 0.1, 0.5, 8000, 1.0, 0.25,
      0.5},
     {0.1f, 4.0f, 0.2f, 0.3f, 3.0f, 2.0f, 0.05f},
     {0.99f, 0.02f, 0.9f, 0.85f, 0.04f, 0.12f, 0.97f},
     {1, 0, 1, 1, 0, 0, 1},
     {1, 0, 1, 1, 0, 0, 1},
     {5.0f, -6.5f, 3.25f, 2.0f, -4.75f, -2.25f, 6.0f},
     {9, 9, 9, 9, 9, 9, 9},
     1,
     0},
    {{"student", 1, 0.5, 0.9, 0.7, 0.72, 7, 1.0, 0.1, 0.75, 9000, NAN, NAN,
      NAN},
     {0.2f, 1.0f, 0.3f, 0.4f, 1.2f, 0.9f, 0.1f},
     {0.8f, 0.4f, 0.75f, 0.7f, 0.3f, 0.45f, 0.9f},
     {1, 0, 1, 1, 0, 0, 1},
     {1, 1, 1, 1, 1, 1, 1},
     {1.0f, -0.25f, 0.5f, 0.25f, -1.5f, NAN, 2.0f},
     {1, 2, 7, 0, 3, 4, 8},
     1,
     1},
};
#define N_EPOCHS ((int)(sizeof s_epochs / sizeof s_epochs[0]))

/* The records handed to storage for e. */
static db_records_t epoch_records(const test_epoch_t *e) {
  db_records_t rec = {N_TRAIN,
                      e->loss,
                      e->prob,
                      e->weight,
                      e->easy,
                      e->has_margin ? e->margin : NULL,
                      e->has_pred ? e->pred : NULL};
  return rec;
}

static void epoch_store(db_t *db, int64_t job, const test_epoch_t *e) {
  db_records_t rec = epoch_records(e);
  char err[256] = "";

  assert_int_equal(db_epoch_insert(db, job, &e->m, &rec, err, sizeof err), 0);
}

/* What reading back position pos of e gives: the margin in half
 * precision (NaN when not recorded) and the predicted class (-1 when not
 * recorded). */
static float margin_expected(const test_epoch_t *e, int pos) {
  return e->has_margin ? db_half_round(e->margin[pos]) : NAN;
}

static int pred_expected(const test_epoch_t *e, int pos) {
  return e->has_pred && e->pred[pos] != 255 ? e->pred[pos] : -1;
}

/* A job with the ten samples and the four epochs, stored out of pipeline
 * order: student 1, teacher 1, spl 1, spl 2. */
static int64_t small_job_store(db_t *db) {
  static const int order[N_EPOCHS] = {3, 2, 0, 1};
  db_split_t split = {N_SAMPLES, s_index, s_split, s_pos, s_observed, s_clean};
  char err[256] = "";
  int64_t job = job_new(db, "small");

  assert_int_equal(db_split_insert(db, job, &split, err, sizeof err), 0);
  for (int i = 0; i < N_EPOCHS; i++)
    epoch_store(db, job, &s_epochs[order[i]]);
  return job;
}

/* 1 when two doubles are equal or both NaN. */
static int same_double(double a, double b) {
  return (isnan(a) && isnan(b)) || a == b;
}

/* Checks what db_sample_get read for one epoch against position pos of
 * the stored epoch e: its floats exactly as half precision rounds them. */
static void sample_epoch_assert(const db_sample_epoch_t *got,
                                const test_epoch_t *e, int pos) {
  assert_string_equal(got->stage, e->m.stage);
  assert_int_equal(got->epoch, e->m.epoch);
  assert_true(got->loss == db_half_round(e->loss[pos]));
  assert_true(got->prob == db_half_round(e->prob[pos]));
  assert_true(got->weight == db_half_round(e->weight[pos]));
  assert_int_equal(got->easy, e->easy[pos]);
  assert_true(same_double(got->margin, margin_expected(e, pos)));
  assert_int_equal(got->pred, pred_expected(e, pos));
}

static void metrics_assert_equal(const db_metrics_t *got,
                                 const db_metrics_t *want) {
  assert_string_equal(got->stage, want->stage);
  assert_int_equal(got->epoch, want->epoch);
  assert_true(same_double(got->train_loss, want->train_loss));
  assert_true(same_double(got->train_acc, want->train_acc));
  assert_true(same_double(got->val_acc, want->val_acc));
  assert_true(same_double(got->test_acc, want->test_acc));
  assert_int_equal(got->easy_size, want->easy_size);
  assert_true(same_double(got->easy_fraction, want->easy_fraction));
  assert_true(same_double(got->lr, want->lr));
  assert_true(same_double(got->seconds, want->seconds));
  assert_true(same_double(got->samples_per_s, want->samples_per_s));
  assert_true(same_double(got->noise_precision, want->noise_precision));
  assert_true(same_double(got->noise_recall, want->noise_recall));
  assert_true(same_double(got->noise_auroc, want->noise_auroc));
}

static void test_metrics_list_order(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_metrics_t *list = NULL;
  db_job_t row;
  int n = -1;

  assert_int_equal(
      db_metrics_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, N_EPOCHS);
  for (int i = 0; i < n; i++)
    metrics_assert_equal(&list[i], &s_epochs[i].m);
  assert_true(isnan(list[1].val_acc));
  assert_true(list[0].noise_auroc == 0.875);
  assert_true(isnan(list[3].noise_precision) && isnan(list[3].noise_auroc));
  free(list);

  /* NaN is stored as SQL NULL: only the student's three figures are. */
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_metrics "
                                      "WHERE noise_precision IS NULL AND "
                                      "noise_recall IS NULL AND "
                                      "noise_auroc IS NULL AND "
                                      "stage = 'student'"),
                   1);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_metrics "
                                      "WHERE noise_auroc IS NULL"),
                   1);

  /* The last stored epoch is the job's progress. */
  assert_int_equal(db_job_get(f->db, job, &row, f->err, sizeof f->err), 0);
  assert_string_equal(row.stage, "spl");
  assert_int_equal(row.epoch, 2);
  db_job_deinit(&row);

  assert_int_equal(
      db_metrics_list(f->db, job + 1, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  free(list);
}

/* Reads a set and checks it against want (nwant indices). */
static void set_assert(db_t *db, int64_t job, const char *stage, int epoch,
                       int easy, int32_t after, int limit, const int32_t *want,
                       int nwant) {
  int32_t *got = NULL;
  char err[256] = "";
  int n = -1;

  assert_int_equal(db_epoch_set(db, job, stage, epoch, easy, after, limit, &got,
                                &n, err, sizeof err),
                   0);
  assert_int_equal(n, nwant);
  for (int i = 0; i < n; i++)
    assert_int_equal(got[i], want[i]);
  free(got);
  /* A whole set read: its size, counted from the flags, agrees. */
  if (after < 0 && limit >= N_SAMPLES) {
    int total = -1;
    assert_int_equal(db_epoch_set_size(db, job, stage, epoch, easy, &total,
                                       err, sizeof err),
                     0);
    assert_int_equal(total, nwant);
  }
}

/* The easy or hard set of one stored epoch, worked out from the test's
 * own arrays: *n indices into out. */
static void set_expected(const test_epoch_t *e, int easy, int32_t *out,
                         int *n) {
  *n = 0;
  for (int i = 0; i < N_SAMPLES; i++)
    if (s_split[i] == DB_SPLIT_TRAIN && e->easy[s_pos[i]] == easy)
      out[(*n)++] = s_index[i];
}

static void test_epoch_sets(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  static const int32_t spl1_easy[] = {2, 8, 11, 41};
  static const int32_t spl1_hard[] = {3, 20, 21};
  static const int32_t spl2_easy[] = {2, 3, 11, 20};
  int32_t want[N_SAMPLES];
  int nwant;

  set_assert(f->db, job, "spl", 1, 1, -1, 100, spl1_easy, 4);
  set_assert(f->db, job, "spl", 1, 0, -1, 100, spl1_hard, 3);
  set_assert(f->db, job, "spl", 2, 1, -1, 100, spl2_easy, 4);
  set_assert(f->db, job, "student", 1, 0, -1, 100, NULL, 0);
  for (int i = 0; i < N_EPOCHS; i++) {
    for (int easy = 0; easy <= 1; easy++) {
      set_expected(&s_epochs[i], easy, want, &nwant);
      set_assert(f->db, job, s_epochs[i].m.stage, s_epochs[i].m.epoch, easy, -1,
                 100, want, nwant);
    }
  }
}

static void test_epoch_set_pages(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  static const int32_t spl1_easy[] = {2, 8, 11, 41};

  set_assert(f->db, job, "spl", 1, 1, -1, 2, spl1_easy, 2);
  set_assert(f->db, job, "spl", 1, 1, 8, 2, spl1_easy + 2, 2);
  set_assert(f->db, job, "spl", 1, 1, 41, 2, NULL, 0);
  set_assert(f->db, job, "spl", 1, 1, 9, 100, spl1_easy + 2, 2);
  set_assert(f->db, job, "spl", 1, 1, 0, 1, spl1_easy, 1);
  set_assert(f->db, job, "spl", 1, 1, -1, 0, NULL, 0);
}

/* Expects db_epoch_set to fail with -ENOENT and a message holding what. */
static void set_missing(db_t *db, int64_t job, const char *stage, int epoch,
                        const char *what) {
  int32_t *got = (int32_t *)&got;
  char err[256] = "";
  int n = -1;

  assert_int_equal(db_epoch_set(db, job, stage, epoch, 1, -1, 100, &got, &n,
                                err, sizeof err),
                   -ENOENT);
  assert_null(got);
  assert_int_equal(n, 0);
  assert_non_null(strstr(err, what));
}

static void test_epoch_set_missing(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  char nojob[32];

  snprintf(nojob, sizeof nojob, "job %lld", (long long)(job + 7));
  set_missing(f->db, job, "spl", 3, "epoch 3");
  set_missing(f->db, job, "spl", 0, "epoch 0");
  set_missing(f->db, job, "baseline", 1, "baseline");
  set_missing(f->db, job, "bogus", 1, "bogus");
  set_missing(f->db, job + 7, "spl", 1, nojob);
}

static void test_sample_get_train(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_sample_t s;

  /* Sample 21: training position 5, observed 3 but truly 1. */
  assert_int_equal(db_sample_get(f->db, job, 21, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.index, 21);
  assert_int_equal(s.split, DB_SPLIT_TRAIN);
  assert_int_equal(s.observed, 3);
  assert_int_equal(s.clean, 1);
  assert_int_equal(s.n_epochs, N_EPOCHS);
  for (int i = 0; i < s.n_epochs; i++)
    sample_epoch_assert(&s.epochs[i], &s_epochs[i], 5);

  /* Position 5 holds the byte that means "no prediction" in spl 1 and a
   * NaN margin in the student: both read as not recorded. */
  assert_int_equal(s.epochs[0].pred, -1);
  assert_true(s.epochs[0].margin == -0.5f);
  assert_true(isnan(s.epochs[1].margin) && s.epochs[1].pred == -1);
  assert_true(s.epochs[2].margin == -2.25f && s.epochs[2].pred == -1);
  assert_true(isnan(s.epochs[3].margin) && s.epochs[3].pred == 4);
  db_sample_deinit(&s);
  assert_null(s.epochs);

  /* Every training sample reads its own position. */
  for (int k = 0; k < N_SAMPLES; k++) {
    if (s_split[k] != DB_SPLIT_TRAIN)
      continue;
    assert_int_equal(
        db_sample_get(f->db, job, s_index[k], &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, N_EPOCHS);
    assert_int_equal(s.observed, s_observed[k]);
    assert_int_equal(s.clean, s_clean[k]);
    for (int i = 0; i < s.n_epochs; i++)
      sample_epoch_assert(&s.epochs[i], &s_epochs[i], s_pos[k]);
    db_sample_deinit(&s);
  }
}

static void test_sample_get_val_and_missing(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_sample_t s;

  assert_int_equal(db_sample_get(f->db, job, 14, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.index, 14);
  assert_int_equal(s.split, DB_SPLIT_VAL);
  assert_int_equal(s.observed, 2);
  assert_int_equal(s.clean, 2);
  assert_int_equal(s.n_epochs, 0);
  assert_null(s.epochs);
  db_sample_deinit(&s);

  assert_int_equal(db_sample_get(f->db, job, 4, &s, f->err, sizeof f->err),
                   -ENOENT);
  assert_non_null(strstr(f->err, "4"));
  assert_int_equal(s.n_epochs, 0);
  assert_int_equal(db_sample_get(f->db, job + 1, 21, &s, f->err, sizeof f->err),
                   -ENOENT);
  db_sample_deinit(&s);
}

/* Margins and predictions left out are stored as SQL NULL, not as arrays
 * of fillers; given ones as arrays of their element width (2 bytes a
 * half-precision margin, 1 a prediction). */
static void test_records_optional_arrays(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_metrics_t m = {.stage = "baseline", .epoch = 1};
  db_records_t none = {0, NULL, NULL, NULL, NULL, NULL, NULL};
  float margin = 0;
  uint8_t pred = 0;
  db_records_t empty = {0, NULL, NULL, NULL, NULL, &margin, &pred};

  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE margin IS NULL"),
                   1);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE pred IS NULL"),
                   2);
  assert_int_equal(raw_query(f->path, "SELECT sum(length(margin)) FROM "
                                      "epoch_records"),
                   3 * 2 * N_TRAIN);
  assert_int_equal(raw_query(f->path, "SELECT sum(length(pred)) FROM "
                                      "epoch_records"),
                   2 * N_TRAIN);

  /* With no samples, a given array is empty and an absent one NULL. */
  assert_int_equal(
      db_epoch_insert(f->db, job, &m, &empty, f->err, sizeof f->err), 0);
  m.epoch = 2;
  assert_int_equal(
      db_epoch_insert(f->db, job, &m, &none, f->err, sizeof f->err), 0);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE stage = 'baseline' AND epoch = 1 "
                                      "AND length(margin) = 0 AND "
                                      "length(pred) = 0"),
                   1);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE stage = 'baseline' AND epoch = 2 "
                                      "AND margin IS NULL AND pred IS NULL"),
                   1);
}

static void test_epoch_duplicate_keeps_first(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  test_epoch_t again = s_epochs[0];
  db_records_t rec = epoch_records(&again);
  db_metrics_t *list = NULL;
  db_sample_t s;
  db_job_t row;
  int n = 0;

  again.m.test_acc = 0.01;
  for (int i = 0; i < N_TRAIN; i++) {
    again.loss[i] = 99.0f;
    again.easy[i] = (uint8_t)!again.easy[i];
  }
  assert_int_equal(
      db_epoch_insert(f->db, job, &again.m, &rec, f->err, sizeof f->err),
      -EEXIST);
  assert_non_null(strstr(f->err, "already"));
  assert_non_null(strstr(f->err, "epoch 1"));

  assert_int_equal(
      db_metrics_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, N_EPOCHS);
  metrics_assert_equal(&list[0], &s_epochs[0].m);
  free(list);
  assert_int_equal(db_sample_get(f->db, job, 2, &s, f->err, sizeof f->err), 0);
  assert_true(s.epochs[0].loss == s_epochs[0].loss[0]);
  assert_int_equal(s.epochs[0].easy, s_epochs[0].easy[0]);
  db_sample_deinit(&s);

  /* The refused epoch did not move the job's progress either. */
  assert_int_equal(db_job_get(f->db, job, &row, f->err, sizeof f->err), 0);
  assert_string_equal(row.stage, "spl");
  assert_int_equal(row.epoch, 2);
  db_job_deinit(&row);
}

static void test_epoch_insert_refuses_bad_input(void **state) {
  fixture_t *f = *state;
  int64_t job = job_new(f->db, "bad");
  db_metrics_t m = {.stage = "bogus", .epoch = 1};
  db_records_t rec = {0, NULL, NULL, NULL, NULL};
  db_metrics_t *list = NULL;
  int n = -1;

  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   -EINVAL);
  assert_non_null(strstr(f->err, "bogus"));
  snprintf(m.stage, sizeof m.stage, "spl");
  m.epoch = 0;
  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   -EINVAL);
  m.epoch = 1;
  rec.n = -1;
  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   -EINVAL);
  rec.n = 0;
  assert_int_equal(
      db_epoch_insert(f->db, job + 1, &m, &rec, f->err, sizeof f->err),
      -ENOENT);
  assert_int_equal(
      db_metrics_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  free(list);

  /* An epoch of no samples is valid and its sets are empty. */
  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   0);
  set_assert(f->db, job, "spl", 1, 1, -1, 100, NULL, 0);
}

static void test_split_insert_refusals(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_split_t split = {N_SAMPLES, s_index, s_split, s_pos, s_observed, s_clean};
  db_sample_t s;

  assert_int_equal(
      db_split_insert(f->db, job + 1, &split, f->err, sizeof f->err), -ENOENT);
  /* A resumed job writes its split again: the stored one stays. One of
   * another size is a different job's. */
  assert_int_equal(db_split_insert(f->db, job, &split, f->err, sizeof f->err),
                   0);
  split.n = N_SAMPLES - 1;
  assert_int_equal(db_split_insert(f->db, job, &split, f->err, sizeof f->err),
                   -EEXIST);
  assert_non_null(strstr(f->err, "already has a split"));
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM job_samples"),
                   N_SAMPLES);
  assert_int_equal(db_sample_get(f->db, job, 41, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, N_EPOCHS);
  db_sample_deinit(&s);
}

/* ---- Training dynamics of finished stages. ---- */

/* One stage's dynamics at the seven training positions. Forgetting counts
 * reach past 16 bits so that every byte of the int32 is read back; one
 * AUM is negative and one NaN, which must survive the round trip. */
typedef struct {
  const char *stage;
  float confidence[N_TRAIN], variability[N_TRAIN], correctness[N_TRAIN];
  int32_t forgetting[N_TRAIN];
  float aum[N_TRAIN];
} test_dynamics_t;

/* In pipeline order; stored student first (see dynamics_store). */
static const test_dynamics_t s_dynamics[] = {
    {"spl",
     {0.925f, 0.4f, 0.55f, 0.825f, 0.325f, 0.175f, 0.65f},
     {0.025f, 0.3f, 0.25f, 0.075f, 0.275f, 0.0f, 0.3f},
     {1.0f, 0.5f, 0.5f, 1.0f, 0.5f, 0.0f, 0.5f},
     {0, 1, 1, 0, 65538, 0, 1},
     {6.75f, -0.5f, 0.125f, 3.5f, -4.25f, NAN, 1.0f}},
    {"student",
     {0.8f, 0.45f, 0.775f, 0.7f, 0.3f, 0.45f, 0.9f},
     {0.1f, 0.0625f, 0.125f, 0.2f, 0.15f, 0.05f, 0.0f},
     {1.0f, 0.0f, 0.75f, 1.0f, 0.25f, 0.0f, 1.0f},
     {0, 0, 2, 0, 3, 0, 16777216},
     {1.25f, -0.75f, 0.5f, 0.25f, -1.5f, -2.0f, 2.0f}},
};
#define N_DYNAMICS ((int)(sizeof s_dynamics / sizeof s_dynamics[0]))

/* The dynamics handed to storage for t. */
static db_dynamics_t dynamics_of(const test_dynamics_t *t) {
  db_dynamics_t d = {N_TRAIN,        t->confidence, t->variability,
                     t->correctness, t->forgetting, t->aum};
  return d;
}

/* Stores both stages' dynamics of job, student first. */
static void dynamics_store(db_t *db, int64_t job) {
  char err[256] = "";

  for (int i = N_DYNAMICS - 1; i >= 0; i--) {
    db_dynamics_t d = dynamics_of(&s_dynamics[i]);
    assert_int_equal(
        db_dynamics_insert(db, job, s_dynamics[i].stage, &d, err, sizeof err),
        0);
  }
}

/* Checks what db_sample_get read for one stage against position pos of
 * the stored dynamics t. */
static void sample_dynamics_assert(const db_sample_dynamics_t *got,
                                   const test_dynamics_t *t, int pos) {
  assert_string_equal(got->stage, t->stage);
  assert_true(same_double(got->confidence, t->confidence[pos]));
  assert_true(same_double(got->variability, t->variability[pos]));
  assert_true(same_double(got->correctness, t->correctness[pos]));
  assert_int_equal(got->forgetting, t->forgetting[pos]);
  assert_true(same_double(got->aum, t->aum[pos]));
}

static void test_dynamics_read_back(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_sample_t s;

  dynamics_store(f->db, job);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics "
                                      "WHERE n = 7 AND length(aum) = 28 AND "
                                      "length(forgetting) = 28"),
                   N_DYNAMICS);

  /* Forgetting is int32 little-endian: 65538 at position 4 of spl. */
  assert_int_equal(raw_query(f->path, "SELECT hex(substr(forgetting, 17, 4)) "
                                      "= '02000100' FROM stage_dynamics "
                                      "WHERE stage = 'spl'"),
                   1);

  /* Sample 21 sits at position 5: its spl AUM is the NaN. */
  assert_int_equal(db_sample_get(f->db, job, 21, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_dynamics, N_DYNAMICS);
  assert_string_equal(s.dynamics[0].stage, "spl");
  assert_true(isnan(s.dynamics[0].aum));
  assert_true(s.dynamics[1].aum == -2.0f);
  db_sample_deinit(&s);
  assert_null(s.dynamics);
  assert_int_equal(s.n_dynamics, 0);

  /* Every training sample reads its own position, in pipeline order, and
   * keeps its epochs. */
  for (int k = 0; k < N_SAMPLES; k++) {
    if (s_split[k] != DB_SPLIT_TRAIN)
      continue;
    assert_int_equal(
        db_sample_get(f->db, job, s_index[k], &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, N_EPOCHS);
    assert_int_equal(s.n_dynamics, N_DYNAMICS);
    for (int i = 0; i < s.n_dynamics; i++)
      sample_dynamics_assert(&s.dynamics[i], &s_dynamics[i], s_pos[k]);
    db_sample_deinit(&s);
  }
}

static void test_dynamics_none(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  int64_t other = small_job_store(f->db);
  db_dynamics_t d = dynamics_of(&s_dynamics[0]);
  db_sample_t s;

  /* A job whose stages stored none: no entries. */
  dynamics_store(f->db, other);
  assert_int_equal(db_sample_get(f->db, job, 21, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, N_EPOCHS);
  assert_int_equal(s.n_dynamics, 0);
  assert_null(s.dynamics);
  db_sample_deinit(&s);

  /* A validation sample of a job that stored them: none either. */
  assert_int_equal(db_sample_get(f->db, other, 14, &s, f->err, sizeof f->err),
                   0);
  assert_int_equal(s.split, DB_SPLIT_VAL);
  assert_int_equal(s.n_dynamics, 0);
  assert_null(s.dynamics);
  db_sample_deinit(&s);

  /* Only the stages that finished are there. */
  assert_int_equal(
      db_dynamics_insert(f->db, job, "spl", &d, f->err, sizeof f->err), 0);
  assert_int_equal(db_sample_get(f->db, job, 2, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_dynamics, 1);
  sample_dynamics_assert(&s.dynamics[0], &s_dynamics[0], 0);
  db_sample_deinit(&s);
}

/* A stage's dynamics stored again (a resumed job redoing the stage's
 * last epoch) replace the first ones. */
static void test_dynamics_again_replaces(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  test_dynamics_t again = s_dynamics[0];
  db_dynamics_t d = dynamics_of(&again);
  db_sample_t s;

  dynamics_store(f->db, job);
  for (int i = 0; i < N_TRAIN; i++) {
    again.confidence[i] = 0.25f;
    again.forgetting[i] = 99;
  }
  assert_int_equal(
      db_dynamics_insert(f->db, job, "spl", &d, f->err, sizeof f->err), 0);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics"),
                   N_DYNAMICS);
  assert_int_equal(db_sample_get(f->db, job, 41, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_dynamics, N_DYNAMICS);
  assert_string_equal(s.dynamics[0].stage, "spl");
  assert_true(s.dynamics[0].confidence == 0.25f);
  assert_int_equal(s.dynamics[0].forgetting, 99);
  db_sample_deinit(&s);
}

/* Expects db_dynamics_insert to refuse d with code and a message holding
 * what. */
static void dynamics_refused(db_t *db, int64_t job, const char *stage,
                             const db_dynamics_t *d, int code,
                             const char *what) {
  char err[256] = "";

  assert_int_equal(db_dynamics_insert(db, job, stage, d, err, sizeof err),
                   code);
  assert_non_null(strstr(err, what));
}

static void test_dynamics_insert_refuses_bad_input(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  int64_t bare = job_new(f->db, "no samples");
  db_dynamics_t d = dynamics_of(&s_dynamics[0]);
  db_dynamics_t none = {0, NULL, NULL, NULL, NULL, NULL};

  dynamics_refused(f->db, job, "bogus", &d, -EINVAL, "bogus");
  dynamics_refused(f->db, job, NULL, &d, -EINVAL, "stage");
  dynamics_refused(f->db, job, "spl", NULL, -EINVAL, "no dynamics");
  d.n = -1;
  dynamics_refused(f->db, job, "spl", &d, -EINVAL, "-1");

  /* Every array is one value per training sample of the job. */
  d.n = N_TRAIN - 1;
  dynamics_refused(f->db, job, "spl", &d, -EINVAL, "trains on 7");
  d.n = N_TRAIN;
  d.aum = NULL;
  dynamics_refused(f->db, job, "spl", &d, -EINVAL, "array");
  d = dynamics_of(&s_dynamics[0]);
  dynamics_refused(f->db, job + 100, "spl", &d, -ENOENT, "no job");
  dynamics_refused(f->db, bare, "spl", &d, -EINVAL, "trains on 0");
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics"),
                   0);

  /* A job without training samples may store empty dynamics. */
  assert_int_equal(
      db_dynamics_insert(f->db, bare, "spl", &none, f->err, sizeof f->err), 0);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics "
                                      "WHERE n = 0 AND length(aum) = 0 AND "
                                      "aum IS NOT NULL"),
                   1);
}

/* ---- A job with several teachers. ---- */

/* Every stage name storage accepts, in pipeline order. */
static const char *const all_stages[] = {
    "spl",      "teacher",  "teacher0", "teacher1", "teacher2", "teacher3",
    "teacher4", "teacher5", "teacher6", "teacher7", "student",  "baseline"};
#define N_STAGES ((int)(sizeof all_stages / sizeof all_stages[0]))

/* s_epochs[from] as epoch of stage. */
static test_epoch_t epoch_as(int from, const char *stage, int epoch) {
  test_epoch_t e = s_epochs[from];

  snprintf(e.m.stage, sizeof e.m.stage, "%s", stage);
  e.m.epoch = epoch;
  return e;
}

static void test_teacher_stages_read_back(void **state) {
  fixture_t *f = *state;
  db_split_t split = {N_SAMPLES, s_index, s_split, s_pos, s_observed, s_clean};
  int64_t job = job_new(f->db, "teachers");
  /* In pipeline order: teacher0 before teacher3, both before student. */
  test_epoch_t want[] = {epoch_as(0, "spl", 1), epoch_as(3, "teacher0", 1),
                         epoch_as(2, "teacher3", 1), epoch_as(1, "teacher3", 2),
                         epoch_as(3, "student", 1)};
  int n_want = (int)(sizeof want / sizeof want[0]), n = 0, nset;
  db_metrics_t *list = NULL;
  int32_t set[N_SAMPLES];
  db_sample_t s;
  db_job_t row;

  assert_int_equal(db_split_insert(f->db, job, &split, f->err, sizeof f->err),
                   0);
  for (int i = n_want - 1; i >= 0; i--)
    epoch_store(f->db, job, &want[i]);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE stage = 'teacher3'"),
                   2);

  assert_int_equal(
      db_metrics_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, n_want);
  for (int i = 0; i < n; i++)
    metrics_assert_equal(&list[i], &want[i].m);
  free(list);
  for (int k = 0; k < N_SAMPLES; k++) {
    if (s_split[k] != DB_SPLIT_TRAIN)
      continue;
    assert_int_equal(
        db_sample_get(f->db, job, s_index[k], &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, n_want);
    for (int i = 0; i < s.n_epochs; i++)
      sample_epoch_assert(&s.epochs[i], &want[i], s_pos[k]);
    db_sample_deinit(&s);
  }
  for (int easy = 0; easy <= 1; easy++) {
    set_expected(&want[3], easy, set, &nset);
    set_assert(f->db, job, "teacher3", 2, easy, -1, 100, set, nset);
  }

  assert_int_equal(
      db_job_progress(f->db, job, "teacher7", 3, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_get(f->db, job, &row, f->err, sizeof f->err), 0);
  assert_string_equal(row.stage, "teacher7");
  assert_int_equal(row.epoch, 3);
  db_job_deinit(&row);
}

/* Every stage, several teachers' included, stores its dynamics and a
 * sample reads them all back in pipeline order. */
static void test_teacher_stages_dynamics(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  test_dynamics_t t;
  db_sample_t s;

  for (int i = N_STAGES - 1; i >= 0; i--) {
    db_dynamics_t d = dynamics_of(&s_dynamics[i % N_DYNAMICS]);
    assert_int_equal(db_dynamics_insert(f->db, job, all_stages[i], &d, f->err,
                                        sizeof f->err),
                     0);
  }
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics"),
                   N_STAGES);

  /* Sample 21 sits at position 5. */
  assert_int_equal(db_sample_get(f->db, job, 21, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, N_EPOCHS);
  assert_int_equal(s.n_dynamics, N_STAGES);
  for (int i = 0; i < N_STAGES; i++) {
    t = s_dynamics[i % N_DYNAMICS];
    t.stage = all_stages[i];
    sample_dynamics_assert(&s.dynamics[i], &t, 5);
  }
  db_sample_deinit(&s);
}

/* Runs one statement per table that names a stage, each giving stage, on
 * the file directly, and returns how many the schema refused. */
static int raw_stage_refusals(const char *path, int64_t job,
                              const char *stage) {
  static const char *const sql[] = {
      "UPDATE jobs SET stage = '%s' WHERE id = %lld",
      "INSERT INTO epoch_metrics (stage, job_id, epoch, easy_size) "
      "VALUES ('%s', %lld, 9, 0)",
      "INSERT INTO epoch_records (stage, job_id, epoch, n, loss, prob, "
      "weight, easy) VALUES ('%s', %lld, 9, 0, X'', X'', X'', X'')",
      "INSERT INTO stage_dynamics (stage, job_id, n, confidence, "
      "variability, correctness, forgetting, aum) "
      "VALUES ('%s', %lld, 0, X'', X'', X'', X'', X'')"};
  char text[256];
  int refused = 0, rc;

  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    snprintf(text, sizeof text, sql[i], stage, (long long)job);
    rc = raw_exec_rc(path, text);
    assert_true(rc == SQLITE_OK || rc == SQLITE_CONSTRAINT);
    refused += rc == SQLITE_CONSTRAINT;
  }
  return refused;
}

static void test_bad_stage_refused(void **state) {
  static const char *const bad[] = {"teacher9",  "teacher8", "teacher10",
                                    "teacher03", "Teacher3", "teacher3 ",
                                    "teachers",  "tutor"};
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_dynamics_t d = dynamics_of(&s_dynamics[0]);
  test_epoch_t e;
  db_records_t rec;
  int32_t *got = NULL;
  int n, total;
  db_job_t row;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    e = epoch_as(0, bad[i], 3);
    rec = epoch_records(&e);
    assert_int_equal(
        db_epoch_insert(f->db, job, &e.m, &rec, f->err, sizeof f->err),
        -EINVAL);
    assert_non_null(strstr(f->err, bad[i]));
    dynamics_refused(f->db, job, bad[i], &d, -EINVAL, bad[i]);
    assert_int_equal(
        db_job_progress(f->db, job, bad[i], 3, f->err, sizeof f->err), -EINVAL);
    assert_int_equal(db_epoch_set(f->db, job, bad[i], 1, 1, -1, 10, &got, &n,
                                  f->err, sizeof f->err),
                     -ENOENT);
    assert_null(got);
    assert_int_equal(db_epoch_set_size(f->db, job, bad[i], 1, 1, &total, f->err,
                                       sizeof f->err),
                     -ENOENT);
    /* The schema refuses it too, in every table. */
    assert_int_equal(raw_stage_refusals(f->path, job, bad[i]), 4);
  }

  /* Nothing was stored and the job's progress did not move. */
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_metrics"),
                   N_EPOCHS);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records"),
                   N_EPOCHS);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics"),
                   0);
  assert_int_equal(db_job_get(f->db, job, &row, f->err, sizeof f->err), 0);
  assert_string_equal(row.stage, "spl");
  assert_int_equal(row.epoch, 2);
  db_job_deinit(&row);

  /* The schema takes the last teacher's name in every table. */
  assert_int_equal(raw_stage_refusals(f->path, job, "teacher7"), 0);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE stage = 'teacher7'"),
                   1);
}

/* ---- A database written by a version-1 program. ---- */

/* The schema a version-1 spkd created, kept here as that program wrote
 * it: storage/migrations.c's first migration, word for word, plus its
 * bookkeeping table. test_migrate_from_version_1 checks that migrating
 * this file gives exactly the schema of a new one. */
#define V1_STAGE_CHECK "stage IN ('spl', 'teacher', 'student', 'baseline')"
static const char v1_schema[] =
    "CREATE TABLE schema_migrations ("
    "  version INTEGER PRIMARY KEY,"
    "  applied_at REAL NOT NULL);"
    "INSERT INTO schema_migrations VALUES (1, 1700000000.0);"

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
    "  stage TEXT CHECK (stage IS NULL OR " V1_STAGE_CHECK "),"
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
    "  stage TEXT NOT NULL CHECK (" V1_STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  train_loss REAL, train_acc REAL, val_acc REAL, test_acc REAL,"
    "  easy_size INTEGER NOT NULL, easy_fraction REAL,"
    "  lr REAL, seconds REAL, samples_per_s REAL,"
    "  PRIMARY KEY (job_id, stage, epoch)) WITHOUT ROWID;"

    "CREATE TABLE epoch_records ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" V1_STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK (length(loss) = 4 * n),"
    "  prob BLOB NOT NULL CHECK (length(prob) = 4 * n),"
    "  weight BLOB NOT NULL CHECK (length(weight) = 4 * n),"
    "  easy BLOB NOT NULL CHECK (length(easy) = n),"
    "  PRIMARY KEY (job_id, stage, epoch));";

/* A running job of three samples (10 and 11 train at positions 0 and 1,
 * 12 validates) with one spl epoch, as version 1 stored it. The arrays
 * are little-endian float32: loss {0.5, 2}, prob {0.25, 0.75}, weight
 * {1, 0}; easy flags {1, 0}. */
static const char v1_job[] =
    "INSERT INTO jobs (id, name, state, spec_json, created_at, started_at,"
    "  stage, epoch) VALUES (1, 'old', 'running', '{}', 1.0, 2.0, 'spl', 1);"
    "INSERT INTO job_samples VALUES (1, 10, 0, 0, 3, 3), (1, 11, 0, 1, 4, 5),"
    "  (1, 12, 1, -1, 2, 2);"
    "INSERT INTO epoch_metrics VALUES (1, 'spl', 1, 1.5, 0.5, 0.25, 0.75, 1,"
    "  0.5, 0.125, 2.0, 100.0);"
    "INSERT INTO epoch_records VALUES (1, 'spl', 1, 2,"
    "  X'0000003F00000040', X'0000803E0000403F', X'0000803F00000000',"
    "  X'0100');";

/* The job's second epoch, stored by this version after the migration. */
static void v1_job_second_epoch(db_t *db) {
  db_metrics_t m = {"spl", 2,     1.0, 0.5,   0.5, 0.5, 1,
                    0.5,   0.125, 2.0, 100.0, 0.5, 1.0, 0.75};
  float loss[2] = {0.25f, 1.0f}, prob[2] = {0.5f, 0.25f}, weight[2] = {1, 1};
  float margin[2] = {1.5f, -2.5f};
  uint8_t easy[2] = {1, 1}, pred[2] = {3, 9};
  db_records_t rec = {2, loss, prob, weight, easy, margin, pred};
  char err[256] = "";

  assert_int_equal(db_epoch_insert(db, 1, &m, &rec, err, sizeof err), 0);
}

static void test_migrate_from_version_1(void **state) {
  fixture_t *f = *state;
  db_metrics_t *list = NULL;
  char *fresh, *migrated;
  db_sample_t s;
  db_job_t job;
  int n = 0;

  /* Replace the fixture's file with a version-1 one. */
  fresh = raw_schema(f->path);
  db_close(f->db);
  f->db = NULL;
  db_files_remove(f->path);
  raw_exec(f->path, v1_schema);
  raw_exec(f->path, v1_job);

  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  migrated = raw_schema(f->path);
  assert_string_equal(migrated, fresh);
  free(migrated);
  free(fresh);

  /* What version 1 stored reads back, its new fields not recorded. */
  assert_int_equal(db_job_get(f->db, 1, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.name, "old");
  assert_string_equal(job.stage, "spl");
  db_job_deinit(&job);
  assert_int_equal(db_metrics_list(f->db, 1, &list, &n, f->err, sizeof f->err),
                   0);
  assert_int_equal(n, 1);
  assert_true(list[0].train_loss == 1.5 && list[0].samples_per_s == 100.0);
  assert_true(isnan(list[0].noise_precision) && isnan(list[0].noise_recall) &&
              isnan(list[0].noise_auroc));
  free(list);
  assert_int_equal(db_sample_get(f->db, 1, 11, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, 1);
  assert_true(s.epochs[0].loss == 2.0f && s.epochs[0].prob == 0.75f);
  assert_true(s.epochs[0].weight == 0.0f && s.epochs[0].easy == 0);
  assert_true(isnan(s.epochs[0].margin));
  assert_int_equal(s.epochs[0].pred, -1);
  db_sample_deinit(&s);

  /* A new epoch of the same job records them; the old one still lacks
   * them. */
  v1_job_second_epoch(f->db);
  assert_int_equal(db_sample_get(f->db, 1, 11, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, 2);
  assert_true(isnan(s.epochs[0].margin) && s.epochs[0].pred == -1);
  assert_true(s.epochs[0].loss == 2.0f);
  assert_int_equal(s.epochs[1].epoch, 2);
  assert_true(s.epochs[1].loss == 1.0f && s.epochs[1].margin == -2.5f);
  assert_true(s.epochs[1].prob == 0.25f && s.epochs[1].weight == 1.0f);
  assert_int_equal(s.epochs[1].easy, 1);
  assert_int_equal(s.epochs[1].pred, 9);
  db_sample_deinit(&s);
  assert_int_equal(db_metrics_list(f->db, 1, &list, &n, f->err, sizeof f->err),
                   0);
  assert_int_equal(n, 2);
  assert_true(isnan(list[0].noise_auroc) && list[1].noise_auroc == 0.75);
  free(list);
}

/* ---- A database written by a version-2 program. ---- */

/* What a version-2 spkd added to v1_schema: its record of migration 2 and
 * that migration, word for word as storage/migrations.c has it. */
static const char v2_changes[] =
    "INSERT INTO schema_migrations VALUES (2, 1700000100.0);"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_precision REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_recall REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_auroc REAL;"
    "ALTER TABLE epoch_records ADD COLUMN margin BLOB"
    "  CHECK (margin IS NULL OR length(margin) = 4 * n);"
    "ALTER TABLE epoch_records ADD COLUMN pred BLOB"
    "  CHECK (pred IS NULL OR length(pred) = n);";

/* v1_job's second epoch as version 2 stored it, with noise figures, the
 * margins {1.5, -2.5} and the predicted classes {3, 9}. */
static const char v2_epoch[] =
    "INSERT INTO epoch_metrics VALUES (1, 'spl', 2, 1.0, 0.5, 0.5, 0.5, 1,"
    "  0.5, 0.125, 2.0, 100.0, 0.5, 1.0, 0.75);"
    "INSERT INTO epoch_records VALUES (1, 'spl', 2, 2,"
    "  X'0000803E0000803F', X'0000003F0000803E', X'0000803F0000803F',"
    "  X'0101', X'0000C03F000020C0', X'0309');"
    "UPDATE jobs SET epoch = 2 WHERE id = 1;";

static void test_migrate_from_version_2(void **state) {
  fixture_t *f = *state;
  float conf[2] = {0.375f, 0.5f}, var[2] = {0.125f, 0.25f};
  float corr[2] = {0.5f, 0.0f}, aum[2] = {-1.0f, -0.5f};
  int32_t forg[2] = {1, 0};
  db_dynamics_t d = {2, conf, var, corr, forg, aum};
  char *fresh, *migrated;
  db_sample_t s;

  /* Replace the fixture's file with a version-2 one: v1_job, migrated
   * by version 2, which then stored the second epoch. */
  fresh = raw_schema(f->path);
  db_close(f->db);
  f->db = NULL;
  db_files_remove(f->path);
  raw_exec(f->path, v1_schema);
  raw_exec(f->path, v1_job);
  raw_exec(f->path, v2_changes);
  raw_exec(f->path, v2_epoch);

  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  migrated = raw_schema(f->path);
  assert_string_equal(migrated, fresh);
  free(migrated);
  free(fresh);

  /* What version 2 stored reads back, with no dynamics. */
  assert_int_equal(db_sample_get(f->db, 1, 11, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, 2);
  assert_true(s.epochs[0].loss == 2.0f && isnan(s.epochs[0].margin));
  assert_true(s.epochs[1].loss == 1.0f && s.epochs[1].prob == 0.25f);
  assert_true(s.epochs[1].margin == -2.5f && s.epochs[1].pred == 9);
  assert_int_equal(s.n_dynamics, 0);
  assert_null(s.dynamics);
  db_sample_deinit(&s);

  /* The old job's finished stage can store its dynamics now. */
  assert_int_equal(
      db_dynamics_insert(f->db, 1, "spl", &d, f->err, sizeof f->err), 0);
  assert_int_equal(db_sample_get(f->db, 1, 11, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, 2);
  assert_int_equal(s.n_dynamics, 1);
  assert_string_equal(s.dynamics[0].stage, "spl");
  assert_true(s.dynamics[0].confidence == 0.5f);
  assert_true(s.dynamics[0].variability == 0.25f);
  assert_true(s.dynamics[0].correctness == 0.0f);
  assert_int_equal(s.dynamics[0].forgetting, 0);
  assert_true(s.dynamics[0].aum == -0.5f);
  db_sample_deinit(&s);
  assert_int_equal(db_sample_get(f->db, 1, 10, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_dynamics, 1);
  assert_int_equal(s.dynamics[0].forgetting, 1);
  assert_true(s.dynamics[0].aum == -1.0f);
  db_sample_deinit(&s);
}

/* ---- A database written by a version-3 program. ---- */

/* What a version-3 spkd added to a version-2 file: its record of
 * migration 3 and that migration, word for word as storage/migrations.c
 * has it. */
static const char v3_changes[] =
    "INSERT INTO schema_migrations VALUES (3, 1700000200.0);"
    "CREATE TABLE stage_dynamics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" V1_STAGE_CHECK "),"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  confidence BLOB NOT NULL CHECK (length(confidence) = 4 * n),"
    "  variability BLOB NOT NULL CHECK (length(variability) = 4 * n),"
    "  correctness BLOB NOT NULL CHECK (length(correctness) = 4 * n),"
    "  forgetting BLOB NOT NULL CHECK (length(forgetting) = 4 * n),"
    "  aum BLOB NOT NULL CHECK (length(aum) = 4 * n),"
    "  PRIMARY KEY (job_id, stage));";

/* What version 3 then stored: v1_job's spl dynamics (confidence {0.375,
 * 0.5}, variability {0.125, 0.25}, correctness {0.5, 0}, forgetting
 * {1, 0}, AUM {-1, -0.5}); its teacher's first epoch (loss {0.25, 3},
 * prob {0.75, 0.25}, weight {1, 1}, easy {1, 0}, margin {0.25, -4},
 * predicted classes {3, 7}); a queued job 5; and an id counter at 7, as
 * if jobs 6 and 7 had been stored and removed. */
static const char v3_data[] =
    "INSERT INTO stage_dynamics VALUES (1, 'spl', 2,"
    "  X'0000C03E0000003F', X'0000003E0000803E', X'0000003F00000000',"
    "  X'0100000000000000', X'000080BF000000BF');"
    "INSERT INTO epoch_metrics VALUES (1, 'teacher', 1, 0.75, 0.8, 0.6,"
    "  0.65, 1, 0.5, 0.1, 0.5, 800.0, 1.0, 0.5, 0.25);"
    "INSERT INTO epoch_records VALUES (1, 'teacher', 1, 2,"
    "  X'0000803E00004040', X'0000403F0000803E', X'0000803F0000803F',"
    "  X'0100', X'0000803E000080C0', X'0307');"
    "UPDATE jobs SET stage = 'teacher', epoch = 1 WHERE id = 1;"
    "INSERT INTO jobs (id, name, state, spec_json, created_at)"
    "  VALUES (5, 'waiting', 'queued', '{\"seed\": 5}', 3.0);"
    "UPDATE sqlite_sequence SET seq = 7 WHERE name = 'jobs';";

/* Every table's shape as text, in name order: rowid or not, each column's
 * name, type, NOT NULL, default and key position, the foreign keys and
 * the indexes. What a rebuild must keep. */
static const char table_shape_sql[] =
    "SELECT group_concat(line, '; ') FROM (SELECT t.name || ' wr=' || t.wr"
    "  || ': ' || (SELECT group_concat(c.name || ' ' || c.type || ' '"
    "    || c.\"notnull\" || ' ' || coalesce(c.dflt_value, '-') || ' '"
    "    || c.pk, ', ') FROM pragma_table_info(t.name) c)"
    "  || ' | ' || coalesce((SELECT group_concat(k.\"from\" || '>'"
    "    || k.\"table\" || '.' || k.\"to\" || ' ' || k.on_delete, ', ')"
    "    FROM pragma_foreign_key_list(t.name) k), '')"
    "  || ' | ' || coalesce((SELECT group_concat(i.name || ' '"
    "    || i.\"unique\" || ' ' || i.origin, ', ')"
    "    FROM pragma_index_list(t.name) i), '') AS line"
    "  FROM pragma_table_list t WHERE t.schema = 'main'"
    "  AND t.type = 'table' AND t.name NOT IN ('checkpoints', 'events',"
    "  'idempotency_keys')"
    "  ORDER BY t.name)";

/* The rowids of the tables whose arrays are read by rowid, with the row
 * each belongs to. */
static const char rowids_sql[] =
    "SELECT group_concat(r, ', ') FROM ("
    "  SELECT 'r' || rowid || ':' || job_id || stage || epoch AS r"
    "  FROM epoch_records UNION ALL"
    "  SELECT 'd' || rowid || ':' || job_id || stage FROM stage_dynamics"
    "  ORDER BY 1)";

/* One row per constraint of the rebuilt tables that breaks it, on job 1
 * of v3_data: each must be refused after the migration. */
static const char *const v4_violations[] = {
    "INSERT INTO jobs (state, spec_json, created_at) VALUES ('lost', '{}', 1)",
    "INSERT INTO jobs (spec_json, created_at) VALUES (NULL, 1)",
    "INSERT INTO jobs (id, spec_json, created_at) VALUES (1, '{}', 1)",
    "INSERT INTO epoch_metrics (job_id, stage, epoch) VALUES (1, 'spl', 7)",
    "INSERT INTO epoch_metrics (job_id, stage, epoch, easy_size) "
    "VALUES (1, 'spl', 1, 0)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy) VALUES (1, 'spl', 7, 1, X'00', X'00000000', X'00000000', X'00')",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, margin) VALUES (1, 'spl', 7, 0, X'', X'', X'', X'', X'00')",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, pred) VALUES (1, 'spl', 7, 0, X'', X'', X'', X'', X'00')",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy) VALUES (1, 'spl', 1, 0, X'', X'', X'', X'')",
    "INSERT INTO stage_dynamics (job_id, stage, n, confidence, variability, "
    "correctness, forgetting, aum) VALUES (1, 'teacher', 0, X'', X'', X'', "
    "X'', X'00')",
    "INSERT INTO stage_dynamics (job_id, stage, n, confidence, variability, "
    "correctness, forgetting, aum) VALUES (1, 'spl', 0, X'', X'', X'', X'', "
    "X'')",
    "PRAGMA foreign_keys=ON; INSERT INTO epoch_metrics (job_id, stage, "
    "epoch, easy_size) VALUES (99, 'spl', 1, 0)",
};

/* A heap copy of text with add inserted after the first occurrence of
 * after, which must be there. The caller frees it. */
static char *text_insert(const char *text, const char *after, const char *add) {
  const char *at = strstr(text, after);
  size_t head;
  char *out;

  assert_non_null(at);
  head = (size_t)(at - text) + strlen(after);
  out = malloc(strlen(text) + strlen(add) + 1);
  assert_non_null(out);
  memcpy(out, text, head);
  strcpy(out + head, add);
  strcat(out, text + head);
  return out;
}

/* Replaces the fixture's file with a version-3 one. */
static void v3_file_write(fixture_t *f) {
  db_close(f->db);
  f->db = NULL;
  db_files_remove(f->path);
  raw_exec(f->path, v1_schema);
  raw_exec(f->path, v1_job);
  raw_exec(f->path, v2_changes);
  raw_exec(f->path, v2_epoch);
  raw_exec(f->path, v3_changes);
  raw_exec(f->path, v3_data);
}

/* Checks through the API that job 1 of v3_file_write kept its epochs,
 * records and dynamics. */
static void v3_job_assert(db_t *db) {
  static const int32_t teacher_easy[] = {10};
  db_metrics_t *list = NULL;
  char err[256] = "";
  db_sample_t s;
  int n = 0;

  assert_int_equal(db_metrics_list(db, 1, &list, &n, err, sizeof err), 0);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].stage, "spl");
  assert_true(isnan(list[0].noise_auroc));
  assert_true(list[1].epoch == 2 && list[1].noise_auroc == 0.75);
  assert_string_equal(list[2].stage, "teacher");
  assert_true(list[2].samples_per_s == 800.0 && list[2].noise_recall == 0.5);
  free(list);

  assert_int_equal(db_sample_get(db, 1, 11, &s, err, sizeof err), 0);
  assert_int_equal(s.observed, 4);
  assert_int_equal(s.clean, 5);
  assert_int_equal(s.n_epochs, 3);
  assert_true(s.epochs[0].loss == 2.0f && isnan(s.epochs[0].margin));
  assert_int_equal(s.epochs[0].pred, -1);
  assert_true(s.epochs[1].margin == -2.5f && s.epochs[1].pred == 9);
  assert_string_equal(s.epochs[2].stage, "teacher");
  assert_true(s.epochs[2].loss == 3.0f && s.epochs[2].prob == 0.25f);
  assert_true(s.epochs[2].weight == 1.0f && s.epochs[2].easy == 0);
  assert_true(s.epochs[2].margin == -4.0f && s.epochs[2].pred == 7);
  assert_int_equal(s.n_dynamics, 1);
  assert_true(s.dynamics[0].confidence == 0.5f);
  assert_true(s.dynamics[0].variability == 0.25f);
  assert_int_equal(s.dynamics[0].forgetting, 0);
  assert_true(s.dynamics[0].aum == -0.5f);
  db_sample_deinit(&s);
  set_assert(db, 1, "teacher", 1, 1, -1, 100, teacher_easy, 1);
}

static void test_migrate_from_version_3(void **state) {
  fixture_t *f = *state;
  char *fresh, *migrated, *shape_v3, *shape, *shape_want, *rowids_v3;
  char *rowids;
  int64_t root, applied;
  db_job_t job;

  fresh = raw_schema(f->path);
  v3_file_write(f);
  shape_v3 = raw_text(f->path, table_shape_sql);
  rowids_v3 = raw_text(f->path, rowids_sql);

  /* The rebuilt tables have exactly a new file's schema, and every
   * column, key, index and rowid the version-3 file had, with the format
   * column migration 5 added. */
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  migrated = raw_schema(f->path);
  assert_string_equal(migrated, fresh);
  shape = raw_text(f->path, table_shape_sql);
  /* Migration 6's and 7's new tables are left out of the shapes; 6's
   * new jobs columns come last, 7's queue index first. */
  shape_want =
      text_insert(shape_v3, "pred BLOB 0 - 0", ", format INTEGER 1 1 0");
  {
    char *with_jobs = text_insert(shape_want, "epoch INTEGER 1 0 0",
                                  ", priority INTEGER 1 0 0, owner TEXT 0 - 0");
    char *with_queue = text_insert(with_jobs, "owner TEXT 0 - 0 |  | ",
                                   "jobs_queue 0 c, ");
    free(with_jobs);
    free(shape_want);
    shape_want = with_queue;
  }
  assert_string_equal(shape, shape_want);
  free(shape_want);
  rowids = raw_text(f->path, rowids_sql);
  assert_string_equal(rowids, rowids_v3);
  assert_non_null(strstr(rowids, "d1:1spl"));
  free(rowids);
  free(rowids_v3);
  free(shape);
  free(shape_v3);
  free(migrated);
  free(fresh);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM sqlite_master "
                                      "WHERE name LIKE '%new%'"),
                   0);

  /* Every row is there: dropping jobs cascaded nowhere. */
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM jobs"), 2);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM job_samples"), 3);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_metrics"), 3);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records"), 3);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM stage_dynamics"),
                   1);
  assert_int_equal(
      raw_query(f->path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
  for (size_t i = 0; i < sizeof v4_violations / sizeof v4_violations[0]; i++)
    assert_int_equal(raw_exec_rc(f->path, v4_violations[i]), SQLITE_CONSTRAINT);
  assert_int_equal(db_job_get(f->db, 1, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.name, "old");
  assert_string_equal(job.state, "running");
  assert_string_equal(job.stage, "teacher");
  assert_int_equal(job.epoch, 1);
  assert_true(job.started_at == 2.0);
  db_job_deinit(&job);
  assert_int_equal(db_job_get(f->db, 5, &job, f->err, sizeof f->err), 0);
  assert_string_equal(job.state, "queued");
  assert_string_equal(job.spec_json, "{\"seed\": 5}");
  assert_null(job.stage);
  db_job_deinit(&job);
  v3_job_assert(f->db);

  /* The id counter moved with the table: ids 6 and 7 are not reused. */
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM sqlite_sequence"),
                   1);
  assert_int_equal(raw_query(f->path, "SELECT seq FROM sqlite_sequence "
                                      "WHERE name = 'jobs'"),
                   7);
  assert_int_equal(job_new(f->db, "next"), 8);

  /* Opening the migrated file again rebuilds nothing. */
  root = raw_query(f->path, "SELECT sum(rootpage) FROM sqlite_master");
  applied = raw_query(f->path, "SELECT CAST(sum(applied_at) * 1000 AS "
                               "INTEGER) FROM schema_migrations");
  db_close(f->db);
  f->db = NULL;
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  assert_true(raw_query(f->path, "SELECT sum(rootpage) FROM sqlite_master") ==
              root);
  assert_true(raw_query(f->path, "SELECT CAST(sum(applied_at) * 1000 AS "
                                 "INTEGER) FROM schema_migrations") == applied);
  v3_job_assert(f->db);
}

/* A version-3 file with a row whose job is missing: migration 4 runs with
 * foreign keys off, so it must find the orphan itself and leave the file
 * untouched at version 3. */
static void test_migrate_refuses_orphan_rows(void **state) {
  fixture_t *f = *state;
  char *schema_v3, *schema;

  v3_file_write(f);
  raw_exec(f->path, "INSERT INTO job_samples VALUES (99, 1, 1, -1, 0, 0);");
  schema_v3 = raw_schema(f->path);

  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), -EIO);
  assert_null(f->db);
  assert_non_null(strstr(f->err, "migration 4"));
  assert_non_null(strstr(f->err, "job_samples"));
  assert_int_equal(raw_query(f->path, "SELECT max(version) FROM "
                                      "schema_migrations"),
                   3);
  schema = raw_schema(f->path);
  assert_string_equal(schema, schema_v3);
  free(schema);
  free(schema_v3);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records"), 3);
}

/* ---- A database written by a version-4 program. ---- */

/* The stage CHECK of migration 4 on. */
#define V4_STAGE_CHECK "(" V1_STAGE_CHECK " OR stage GLOB 'teacher[0-7]')"

/* What a version-4 spkd added to a version-3 file: its record of
 * migration 4 and that migration, word for word as storage/migrations.c
 * has it. */
static const char v4_changes[] =
    "INSERT INTO schema_migrations VALUES (4, 1700000300.0);"
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
    "  stage TEXT CHECK (stage IS NULL OR " V4_STAGE_CHECK "),"
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
    "  stage TEXT NOT NULL CHECK " V4_STAGE_CHECK ","
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
    "  stage TEXT NOT NULL CHECK " V4_STAGE_CHECK ","
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
    "  stage TEXT NOT NULL CHECK " V4_STAGE_CHECK ","
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
    "ALTER TABLE stage_dynamics_new RENAME TO stage_dynamics;";

/* What version 4 then stored: job 5 running with three samples (20 and
 * 21 train at positions 0 and 1, 22 validates) and one epoch of its
 * teacher0 as little-endian float32, values half precision cannot hold
 * exactly: loss {0.3, 70000}, prob {0.9, 0.1}, weight {1, 0}, easy
 * {0, 1}, margin {2.5, -70000}, predicted classes {4, 2}. */
static const char v4_data[] =
    "UPDATE jobs SET state = 'running', started_at = 4.0,"
    "  stage = 'teacher0', epoch = 1 WHERE id = 5;"
    "INSERT INTO job_samples VALUES (5, 20, 0, 0, 1, 1), (5, 21, 0, 1, 2, 0),"
    "  (5, 22, 1, -1, 3, 3);"
    "INSERT INTO epoch_metrics VALUES (5, 'teacher0', 1, 0.5, 0.6, 0.55,"
    "  0.5, 1, 0.5, 0.1, 1.0, 900.0, NULL, NULL, NULL);"
    "INSERT INTO epoch_records VALUES (5, 'teacher0', 1, 2,"
    "  X'9A99993E00B88847', X'6666663FCDCCCC3D', X'0000803F00000000',"
    "  X'0001', X'0000204000B888C7', X'0402');";

/* One row per constraint migration 5 added to epoch_records, on job 1:
 * each must be refused. */
static const char *const v5_violations[] = {
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, format) VALUES (1, 'spl', 7, 0, X'', X'', X'', X'', 3)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, format) VALUES (1, 'spl', 7, 1, X'00000000', X'0000', X'0000', "
    "X'01', 2)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, format) VALUES (1, 'spl', 7, 9, zeroblob(18), zeroblob(18), "
    "zeroblob(18), zeroblob(9), 2)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, format) VALUES (1, 'spl', 7, 9, zeroblob(36), zeroblob(36), "
    "zeroblob(36), zeroblob(2), 1)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, margin, format) VALUES (1, 'spl', 7, 1, X'0000', X'0000', "
    "X'0000', X'01', X'00000000', 2)",
    "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, weight, "
    "easy, format) VALUES (1, 'spl', 7, 0, X'', X'', X'', X'', NULL)",
};

/* Replaces the fixture's file with a version-4 one. */
static void v4_file_write(fixture_t *f) {
  v3_file_write(f);
  raw_exec(f->path, v4_changes);
  raw_exec(f->path, v4_data);
}

/* Checks job 5 of v4_file_write: sample 21 reads its float32 values
 * exactly, and the new epoch the test stored in half precision as
 * half precision rounds them. */
static void v4_job_assert(db_t *db, int n_epochs) {
  char err[256] = "";
  db_sample_t s;

  assert_int_equal(db_sample_get(db, 5, 21, &s, err, sizeof err), 0);
  assert_int_equal(s.observed, 2);
  assert_int_equal(s.clean, 0);
  assert_int_equal(s.n_epochs, n_epochs);
  assert_string_equal(s.epochs[0].stage, "teacher0");
  assert_true(s.epochs[0].loss == 70000.0f && s.epochs[0].prob == 0.1f);
  assert_true(s.epochs[0].weight == 0.0f && s.epochs[0].easy == 1);
  assert_true(s.epochs[0].margin == -70000.0f && s.epochs[0].pred == 2);
  if (n_epochs > 1) {
    assert_int_equal(s.epochs[1].epoch, 2);
    assert_true(s.epochs[1].loss == 65504.0f);
    assert_true(s.epochs[1].prob == db_half_round(0.1f));
    assert_true(s.epochs[1].prob != 0.1f);
    assert_true(s.epochs[1].margin == -65504.0f && s.epochs[1].pred == 2);
    assert_true(s.epochs[1].weight == 0.0f && s.epochs[1].easy == 1);
  }
  db_sample_deinit(&s);
  assert_int_equal(db_sample_get(db, 5, 20, &s, err, sizeof err), 0);
  assert_true(s.epochs[0].loss == 0.3f && s.epochs[0].prob == 0.9f);
  assert_true(s.epochs[0].margin == 2.5f && s.epochs[0].easy == 0);
  db_sample_deinit(&s);
}

/* The epoch of job 5 that this version stores after the migration: the
 * same values as version 4's. */
static void v4_job_second_epoch(db_t *db) {
  db_metrics_t m = {"teacher0", 2,   0.5, 0.6,   0.55, 0.5, 1,
                    0.5,        0.1, 1.0, 900.0, NAN,  NAN, NAN};
  float loss[2] = {0.3f, 70000.0f}, prob[2] = {0.9f, 0.1f};
  float weight[2] = {1, 0}, margin[2] = {2.5f, -70000.0f};
  uint8_t easy[2] = {0, 1}, pred[2] = {4, 2};
  db_records_t rec = {2, loss, prob, weight, easy, margin, pred};
  char err[256] = "";

  assert_int_equal(db_epoch_insert(db, 5, &m, &rec, err, sizeof err), 0);
}

static void test_migrate_from_version_4(void **state) {
  fixture_t *f = *state;
  static const int32_t easy[] = {21}, hard[] = {20};
  char *fresh, *migrated, *rowids_v4, *rowids;

  fresh = raw_schema(f->path);
  v4_file_write(f);
  rowids_v4 = raw_text(f->path, rowids_sql);

  /* A new file's schema; every old row kept, rowid included, as format
   * 1. */
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  migrated = raw_schema(f->path);
  assert_string_equal(migrated, fresh);
  rowids = raw_text(f->path, rowids_sql);
  assert_string_equal(rowids, rowids_v4);
  free(rowids);
  free(rowids_v4);
  free(migrated);
  free(fresh);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE format = 1"),
                   4);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records"), 4);
  assert_int_equal(
      raw_query(f->path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);

  /* Old rows read back exactly, beside a new one in half precision. */
  v3_job_assert(f->db);
  v4_job_assert(f->db, 1);
  v4_job_second_epoch(f->db);
  assert_int_equal(raw_query(f->path, "SELECT format FROM epoch_records "
                                      "WHERE job_id = 5 AND epoch = 2"),
                   2);
  v4_job_assert(f->db, 2);
  for (int epoch = 1; epoch <= 2; epoch++) {
    set_assert(f->db, 5, "teacher0", epoch, 1, -1, 100, easy, 1);
    set_assert(f->db, 5, "teacher0", epoch, 0, -1, 100, hard, 1);
  }

  /* The new CHECKs hold, the old ones too. */
  for (size_t i = 0; i < sizeof v5_violations / sizeof v5_violations[0]; i++)
    assert_int_equal(raw_exec_rc(f->path, v5_violations[i]), SQLITE_CONSTRAINT);
  for (size_t i = 0; i < sizeof v4_violations / sizeof v4_violations[0]; i++)
    assert_int_equal(raw_exec_rc(f->path, v4_violations[i]), SQLITE_CONSTRAINT);
  assert_int_equal(raw_exec_rc(f->path,
                               "INSERT INTO epoch_records (job_id, stage, "
                               "epoch, n, loss, prob, weight, easy, format) "
                               "VALUES (1, 'spl', 7, 9, zeroblob(18), "
                               "zeroblob(18), zeroblob(18), zeroblob(2), 2)"),
                   SQLITE_OK);
}

/* ---- Records in half precision. ---- */

/* x rounded to binary16 the slow way, in double arithmetic: to a multiple
 * of 2^(e - 10) for |x| in [2^e, 2^(e + 1)) with e >= -14, of 2^-24
 * below, ties to even (rint in the default rounding mode); beyond 65504,
 * 65504; the sign kept, NaN kept. */
static float half_reference(float x) {
  double a = fabs((double)x);
  int e;

  if (isnan(x))
    return x;
  if (a > 65504.0)
    return copysignf(65504.0f, x);
  (void)frexp(a, &e); /* a = m 2^e with m in [0.5, 1) */
  e = e - 1 < -14 ? -14 : e - 1;
  return copysignf((float)ldexp(rint(ldexp(a, 10 - e)), e - 10), x);
}

/* The value of binary16 bits h (finite ones only). */
static double half_bits_value(uint16_t h) {
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp ? ldexp(1024 + mant, exp - 25) : ldexp(mant, -24);

  return h & 0x8000 ? -v : v;
}

/* Checks that got is what storing want in half precision may read back
 * as: NaN for NaN, +-65504 beyond the half range, otherwise within a
 * relative error of 2^-11 (|want| >= 2^-14) or an absolute one of 2^-25
 * (below). */
static void half_close_assert(float got, float want) {
  double err = fabs((double)got - (double)want), a = fabs((double)want);

  if (isnan(want)) {
    assert_true(isnan(got));
  } else if (a > 65504.0) {
    assert_true(got == copysignf(65504.0f, want));
  } else if (a >= 0x1p-14) {
    assert_true(err <= 0x1p-11 * a);
  } else {
    assert_true(err <= 0x1p-25);
  }
}

/* A uniform draw in [0, 1) from a 64-bit xorshift state. */
static double test_uniform(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (double)(*s >> 11) * 0x1p-53;
}

/* A float of random sign and magnitude 2^u, u uniform in [lo, hi). */
static float random_magnitude(uint64_t *rng, double lo, double hi) {
  double u = lo + (hi - lo) * test_uniform(rng);
  float x = (float)exp2(u);

  return test_uniform(rng) < 0.5 ? -x : x;
}

static void test_half_round_edges(void **state) {
  static const struct {
    float x, want;
  } cases[] = {
      {0.0f, 0.0f},
      {0x1p-24f, 0x1p-24f}, /* smallest subnormal */
      {0x3p-24f, 0x3p-24f},
      {0x1p-25f, 0.0f},     /* half-way to 0: even */
      {0x3p-25f, 0x2p-24f}, /* half-way: even */
      {0x1.8p-26f, 0.0f},
      {0x1.ff8p-15f, 0x1.ff8p-15f},      /* largest subnormal */
      {0x1p-14f, 0x1p-14f},              /* smallest normal */
      {1.0f + 0x1p-11f, 1.0f},           /* half-way: even */
      {1.0f + 0x3p-11f, 1.0f + 0x1p-9f}, /* half-way: even */
      {0.1f, 0x1.998p-4f},
      {65504.0f, 65504.0f},
      {65519.0f, 65504.0f},
      {65520.0f, 65504.0f}, /* would round to inf */
      {1e9f, 65504.0f},
      {3e38f, 65504.0f},
      {INFINITY, 65504.0f},
      {-65520.0f, -65504.0f},
      {-INFINITY, -65504.0f},
  };
  float r;

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r = db_half_round(cases[i].x);
    assert_true(r == cases[i].want);
    assert_true(half_reference(cases[i].x) == cases[i].want);
    r = db_half_round(-cases[i].x);
    assert_true(r == -cases[i].want);
    half_close_assert(db_half_round(cases[i].x), cases[i].x);
  }
  assert_false(signbit(db_half_round(0.0f)));
  assert_true(signbit(db_half_round(-0.0f)));
  assert_true(signbit(db_half_round(-0x1p-26f)));
  assert_true(isnan(db_half_round(NAN)));
  assert_true(isnan(db_half_round(-NAN)));

  /* Every finite half is stored exactly. */
  for (uint32_t h = 0; h <= 0xffff; h++) {
    if (((h >> 10) & 0x1f) == 0x1f)
      continue;
    r = (float)half_bits_value((uint16_t)h);
    assert_true(db_half_round(r) == r);
  }
}

/* Random values over many magnitudes, subnormal halves to beyond the
 * half range: each rounds as the slow reference does, within the
 * documented bound. */
static void test_half_round_bound(void **state) {
  uint64_t rng = 0x853c49e6748fea9bu;
  float x, r;

  (void)state;
  for (int i = 0; i < 200000; i++) {
    x = random_magnitude(&rng, -30.0, 18.0);
    r = db_half_round(x);
    assert_true(r == half_reference(x));
    half_close_assert(r, x);
  }
}

/* A job of n training samples: index 100 + i at position i. */
static int64_t job_of_n(db_t *db, int n) {
  int32_t *index = calloc((size_t)n, sizeof *index);
  int32_t *pos = calloc((size_t)n, sizeof *pos);
  uint8_t *split = calloc((size_t)n, 1), *labels = calloc((size_t)n, 1);
  db_split_t s = {n, index, split, pos, labels, labels};
  int64_t job = job_new(db, "half");
  char err[256] = "";

  assert_true(index && pos && split && labels);
  for (int i = 0; i < n; i++) {
    index[i] = 100 + i;
    pos[i] = i;
    labels[i] = (uint8_t)(i % 10);
  }
  assert_int_equal(db_split_insert(db, job, &s, err, sizeof err), 0);
  free(index);
  free(pos);
  free(split);
  free(labels);
  return job;
}

/* One epoch's records for a job of job_of_n, heap arrays. */
typedef struct {
  int n;
  float *loss, *prob, *weight, *margin;
  uint8_t *easy, *pred;
} half_epoch_t;

/* Fills h with n values of every kind: large, small, subnormal in half
 * precision, beyond its range, NaN margins, no-prediction bytes. */
static void half_epoch_fill(half_epoch_t *h, int n, uint64_t *rng) {
  h->n = n;
  h->loss = calloc((size_t)n, sizeof(float));
  h->prob = calloc((size_t)n, sizeof(float));
  h->weight = calloc((size_t)n, sizeof(float));
  h->margin = calloc((size_t)n, sizeof(float));
  h->easy = calloc((size_t)n, 1);
  h->pred = calloc((size_t)n, 1);
  assert_true(h->loss && h->prob && h->weight && h->margin && h->easy &&
              h->pred);
  for (int i = 0; i < n; i++) {
    h->loss[i] = fabsf(random_magnitude(rng, -28.0, 17.5));
    h->prob[i] = (float)test_uniform(rng);
    h->weight[i] = i % 4 == 0 ? 0.0f : (float)test_uniform(rng);
    h->margin[i] = i % 5 == 4 ? NAN : random_magnitude(rng, -20.0, 17.5);
    h->easy[i] = test_uniform(rng) < 0.5;
    h->pred[i] = i % 6 == 5 ? 255 : (uint8_t)(i % 10);
  }
}

static void half_epoch_free(half_epoch_t *h) {
  free(h->loss);
  free(h->prob);
  free(h->weight);
  free(h->margin);
  free(h->easy);
  free(h->pred);
}

static void half_epoch_store(db_t *db, int64_t job, const char *stage,
                             int epoch, const half_epoch_t *h) {
  db_metrics_t m = {.epoch = epoch, .noise_precision = NAN};
  db_records_t rec = {h->n,    h->loss,   h->prob, h->weight,
                      h->easy, h->margin, h->pred};
  char err[256] = "";

  snprintf(m.stage, sizeof m.stage, "%s", stage);
  assert_int_equal(db_epoch_insert(db, job, &m, &rec, err, sizeof err), 0);
}

/* Checks one read epoch against position pos of h: every float exactly
 * as db_half_round gives it, hence within the bound. */
static void half_epoch_assert(const db_sample_epoch_t *got,
                              const half_epoch_t *h, int pos) {
  assert_true(got->loss == db_half_round(h->loss[pos]));
  assert_true(got->prob == db_half_round(h->prob[pos]));
  assert_true(got->weight == db_half_round(h->weight[pos]));
  assert_true(same_double(got->margin, db_half_round(h->margin[pos])));
  half_close_assert(got->loss, h->loss[pos]);
  half_close_assert(got->prob, h->prob[pos]);
  half_close_assert(got->weight, h->weight[pos]);
  half_close_assert(got->margin, h->margin[pos]);
  assert_int_equal(got->easy, h->easy[pos]);
  assert_int_equal(got->pred, h->pred[pos] == 255 ? -1 : h->pred[pos]);
}

/* Stores one epoch of n samples and reads every field of every sample
 * back, and its easy and hard sets. */
static void half_round_trip(fixture_t *f, int n) {
  uint64_t rng = 0x9e3779b97f4a7c15u + (uint64_t)n;
  int64_t job = job_of_n(f->db, n);
  int32_t *want = calloc((size_t)n + 1, sizeof *want), *got = NULL;
  int nwant, count, total;
  half_epoch_t h;
  db_sample_t s;

  assert_non_null(want);
  half_epoch_fill(&h, n, &rng);
  half_epoch_store(f->db, job, "spl", 1, &h);
  for (int i = 0; i < n; i++) {
    assert_int_equal(
        db_sample_get(f->db, job, 100 + i, &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, 1);
    half_epoch_assert(&s.epochs[0], &h, i);
    db_sample_deinit(&s);
  }
  for (int easy = 0; easy <= 1; easy++) {
    nwant = 0;
    for (int i = 0; i < n; i++)
      if (h.easy[i] == easy)
        want[nwant++] = 100 + i;
    assert_int_equal(db_epoch_set(f->db, job, "spl", 1, easy, -1, n, &got,
                                  &count, f->err, sizeof f->err),
                     0);
    assert_int_equal(count, nwant);
    for (int i = 0; i < count; i++)
      assert_int_equal(got[i], want[i]);
    free(got);
    assert_int_equal(db_epoch_set_size(f->db, job, "spl", 1, easy, &total,
                                       f->err, sizeof f->err),
                     0);
    assert_int_equal(total, nwant);
  }
  half_epoch_free(&h);
  free(want);
}

/* n = 13 fills one byte of easy flags and five bits of the next; n = 1
 * one bit. */
static void test_records_half_round_trip(void **state) {
  fixture_t *f = *state;

  half_round_trip(f, 13);
  half_round_trip(f, 1);
  half_round_trip(f, 64);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM epoch_records "
                                      "WHERE format = 2 AND "
                                      "length(loss) = 2 * n AND "
                                      "length(margin) = 2 * n AND "
                                      "length(easy) = (n + 7) / 8"),
                   3);
}

/* The bytes of one stored row: little-endian halves, flag i at bit i % 8
 * of byte i / 8. */
static void test_records_half_layout(void **state) {
  fixture_t *f = *state;
  int64_t job = job_of_n(f->db, 13);
  float loss[13] = {1.0f, -2.0f, 65504.0f, 1e9f, 0x1p-24f};
  float margin[13] = {NAN, -INFINITY, 0.5f};
  uint8_t easy[13] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1};
  db_records_t rec = {13, loss, loss, loss, easy, margin, easy};
  db_metrics_t m = {"student", 3};
  char *hex;

  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   0);
  /* 1, -2, 65504 and 1e9 clamped to it, the smallest subnormal; a NaN
   * margin, -inf clamped to -65504, 0.5; flags 0, 3, 6, 9 and 12. */
  hex = raw_text(f->path, "SELECT hex(substr(loss, 1, 10)) || ' ' || "
                          "hex(margin) || ' ' || hex(easy) || ' ' || "
                          "format FROM epoch_records");
  assert_string_equal(hex, "003C00C0FF7BFF7B0100 007EFFFB0038"
                           "0000000000000000000000000000000000000000 4912 2");
  free(hex);
}

/* One sample's history over several stages and epochs equals, within
 * the bound, what each epoch wrote. */
static void test_sample_history_half(void **state) {
  static const struct {
    const char *stage;
    int epochs;
  } stages[] = {{"spl", 4}, {"teacher1", 2}, {"student", 3}};
  enum { N = 37, N_WRITTEN = 9 };
  fixture_t *f = *state;
  uint64_t rng = 0x2545f4914f6cdd1du;
  int64_t job = job_of_n(f->db, N);
  half_epoch_t h[N_WRITTEN];
  int k = 0;
  db_sample_t s;

  for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
    for (int e = 1; e <= stages[i].epochs; e++, k++) {
      half_epoch_fill(&h[k], N, &rng);
      half_epoch_store(f->db, job, stages[i].stage, e, &h[k]);
    }
  assert_int_equal(k, N_WRITTEN);
  for (int pos = 0; pos < N; pos++) {
    assert_int_equal(
        db_sample_get(f->db, job, 100 + pos, &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, N_WRITTEN);
    for (int j = 0; j < N_WRITTEN; j++)
      half_epoch_assert(&s.epochs[j], &h[j], pos);
    assert_string_equal(s.epochs[4].stage, "teacher1");
    assert_int_equal(s.epochs[8].epoch, 3);
    db_sample_deinit(&s);
  }
  for (int j = 0; j < N_WRITTEN; j++)
    half_epoch_free(&h[j]);
}

/* Writes n floats as the hex digits of little-endian float32 into out
 * (8 n characters and a NUL), for an X'' literal. */
static void hex_f32(const float *v, int n, char *out) {
  for (int i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], sizeof u);
    for (int b = 0; b < 4; b++)
      snprintf(out + 8 * i + 2 * b, 3, "%02X", (unsigned)(u >> 8 * b) & 0xffu);
  }
  out[8 * n] = '\0';
}

/* Writes n bytes as hex digits into out (2 n characters and a NUL). */
static void hex_bytes(const uint8_t *v, int n, char *out) {
  for (int i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02X", v[i]);
  out[2 * n] = '\0';
}

/* Stores epoch e of job as a version-4 program did, format 1, with raw
 * SQL: float32 arrays and one byte per easy flag. */
static void epoch_store_f32(const char *path, int64_t job,
                            const test_epoch_t *e) {
  char loss[8 * N_TRAIN + 1], prob[8 * N_TRAIN + 1], weight[8 * N_TRAIN + 1];
  char margin[8 * N_TRAIN + 1], easy[2 * N_TRAIN + 1], pred[2 * N_TRAIN + 1];
  char sql[1024];

  hex_f32(e->loss, N_TRAIN, loss);
  hex_f32(e->prob, N_TRAIN, prob);
  hex_f32(e->weight, N_TRAIN, weight);
  hex_f32(e->margin, N_TRAIN, margin);
  hex_bytes(e->easy, N_TRAIN, easy);
  hex_bytes(e->pred, N_TRAIN, pred);
  snprintf(sql, sizeof sql,
           "INSERT INTO epoch_records (job_id, stage, epoch, n, loss, prob, "
           "weight, easy, margin, pred, format) VALUES (%lld, '%s', %d, %d, "
           "X'%s', X'%s', X'%s', X'%s', X'%s', X'%s', 1)",
           (long long)job, e->m.stage, e->m.epoch, N_TRAIN, loss, prob, weight,
           easy, margin, pred);
  raw_exec(path, sql);
}

/* A format-1 row beside format-2 rows: each reads back as stored, the
 * float32 one exactly. */
static void test_records_mixed_formats(void **state) {
  fixture_t *f = *state;
  db_split_t split = {N_SAMPLES, s_index, s_split, s_pos, s_observed, s_clean};
  int64_t job = job_new(f->db, "mixed");
  int32_t want[N_SAMPLES];
  int nwant;
  db_sample_t s;

  assert_int_equal(db_split_insert(f->db, job, &split, f->err, sizeof f->err),
                   0);
  epoch_store_f32(f->path, job, &s_epochs[0]);
  for (int i = 1; i < N_EPOCHS; i++)
    epoch_store(f->db, job, &s_epochs[i]);
  assert_int_equal(raw_query(f->path, "SELECT group_concat(format, '') FROM "
                                      "(SELECT format FROM epoch_records "
                                      "ORDER BY rowid)"),
                   1222);

  for (int k = 0; k < N_SAMPLES; k++) {
    int p = s_pos[k];
    if (s_split[k] != DB_SPLIT_TRAIN)
      continue;
    assert_int_equal(
        db_sample_get(f->db, job, s_index[k], &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_epochs, N_EPOCHS);
    assert_true(s.epochs[0].loss == s_epochs[0].loss[p]);
    assert_true(s.epochs[0].prob == s_epochs[0].prob[p]);
    assert_true(s.epochs[0].weight == s_epochs[0].weight[p]);
    assert_true(s.epochs[0].margin == s_epochs[0].margin[p]);
    assert_int_equal(s.epochs[0].easy, s_epochs[0].easy[p]);
    assert_int_equal(s.epochs[0].pred, pred_expected(&s_epochs[0], p));
    for (int i = 1; i < s.n_epochs; i++)
      sample_epoch_assert(&s.epochs[i], &s_epochs[i], p);
    db_sample_deinit(&s);
  }

  /* 0.9 has no half: the float32 row kept it whole. */
  assert_int_equal(db_sample_get(f->db, job, 2, &s, f->err, sizeof f->err), 0);
  assert_true(s.epochs[0].prob == 0.9f && db_half_round(0.9f) != 0.9f);
  db_sample_deinit(&s);
  for (int i = 0; i < N_EPOCHS; i++)
    for (int easy = 0; easy <= 1; easy++) {
      set_expected(&s_epochs[i], easy, want, &nwant);
      set_assert(f->db, job, s_epochs[i].m.stage, s_epochs[i].m.epoch, easy, -1,
                 100, want, nwant);
    }
}

/* The file's size once its WAL is folded back into it. */
static int64_t file_size_checkpointed(const char *path) {
  struct stat st;

  assert_int_equal(raw_query(path, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
  assert_int_equal(stat(path, &st), 0);
  return (int64_t)st.st_size;
}

/* What a sample-epoch costs on disk: the file's growth over 3 stages of 5
 * epochs of 12 000 samples, page overhead included, against the 9.125
 * bytes of its values. */
static void test_records_bytes_per_sample_epoch(void **state) {
  enum { N = 12000, STAGES = 3, EPOCHS = 5 };
  static const char *const stages[STAGES] = {"spl", "teacher", "student"};
  fixture_t *f = *state;
  uint64_t rng = 0x5851f42d4c957f2du;
  int64_t job = job_of_n(f->db, N), before, after;
  double per;
  half_epoch_t h;

  half_epoch_fill(&h, N, &rng);
  before = file_size_checkpointed(f->path);
  for (int s = 0; s < STAGES; s++)
    for (int e = 1; e <= EPOCHS; e++)
      half_epoch_store(f->db, job, stages[s], e, &h);
  after = file_size_checkpointed(f->path);
  half_epoch_free(&h);

  per = (double)(after - before) / (STAGES * EPOCHS * N);
  print_message("%.3f bytes per sample-epoch\n", per);
  assert_true(per >= 9.125);
  assert_true(per <= 16.0);
}

/* ---- A full-size job. ---- */

#define BIG_N 60000

static double seconds_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
  int32_t index[BIG_N], pos[BIG_N];
  uint8_t split[BIG_N], observed[BIG_N], clean[BIG_N];
  int n_train;
  float loss[BIG_N], prob[BIG_N], weight[BIG_N], margin[BIG_N];
  uint8_t easy[BIG_N], pred[BIG_N];
  float conf[BIG_N], var[BIG_N], corr[BIG_N], aum[BIG_N];
  int32_t forg[BIG_N];
} big_job_t;

/* Every tenth sample validates; the training ones are easy when their
 * position is a multiple of 3. */
static void big_job_fill(big_job_t *b) {
  b->n_train = 0;
  for (int i = 0; i < BIG_N; i++) {
    b->index[i] = i;
    b->split[i] = i % 10 == 0 ? DB_SPLIT_VAL : DB_SPLIT_TRAIN;
    b->pos[i] = b->split[i] == DB_SPLIT_VAL ? -1 : b->n_train++;
    b->observed[i] = (uint8_t)(i % 10);
    b->clean[i] = (uint8_t)((i * 7) % 10);
  }
  for (int p = 0; p < b->n_train; p++) {
    b->loss[p] = (float)p * 0.5f;
    b->prob[p] = 1.0f / (float)(p + 1);
    b->weight[p] = (float)(p % 2);
    b->easy[p] = p % 3 == 0;
    b->margin[p] = (float)p * 0.25f - 1000.0f;
    b->pred[p] = (uint8_t)(p % 7);
    b->conf[p] = (float)(p % 1000) / 1000.0f;
    b->var[p] = (float)(p % 500) / 1000.0f;
    b->corr[p] = (float)(p % 11) / 10.0f;
    b->forg[p] = p * 3;
    b->aum[p] = 50.0f - (float)p * 0.125f;
  }
}

static void test_big_job(void **state) {
  fixture_t *f = *state;
  big_job_t *b = malloc(sizeof *b);
  int64_t job = job_new(f->db, "big");
  db_metrics_t m = {.stage = "spl", .epoch = 1};
  int32_t *got = NULL, after = -1;
  int n = 0, seen = 0, p;
  double t0, dt;
  db_sample_t s;

  assert_non_null(b);
  big_job_fill(b);
  db_split_t split = {BIG_N, b->index, b->split, b->pos, b->observed, b->clean};
  db_records_t rec = {b->n_train, b->loss,   b->prob, b->weight,
                      b->easy,    b->margin, b->pred};
  db_dynamics_t dyn = {b->n_train, b->conf, b->var, b->corr, b->forg, b->aum};
  t0 = seconds_now();
  assert_int_equal(db_split_insert(f->db, job, &split, f->err, sizeof f->err),
                   0);
  dt = seconds_now() - t0;
  assert_true(dt < 3.0); /* About 0.1 s; generous for sanitizers. */
  assert_int_equal(db_epoch_insert(f->db, job, &m, &rec, f->err, sizeof f->err),
                   0);
  assert_int_equal(
      db_dynamics_insert(f->db, job, "spl", &dyn, f->err, sizeof f->err), 0);

  /* Page through the easy set; position p is easy when p % 3 == 0. */
  do {
    assert_int_equal(db_epoch_set(f->db, job, "spl", 1, 1, after, 1000, &got,
                                  &n, f->err, sizeof f->err),
                     0);
    for (int i = 0; i < n; i++, seen++) {
      assert_true(got[i] > after);
      p = b->pos[got[i]];
      assert_true(p >= 0 && p % 3 == 0);
      assert_int_equal(p, 3 * seen);
      after = got[i];
    }
    free(got);
  } while (n > 0);
  assert_int_equal(seen, (b->n_train + 2) / 3);

  assert_int_equal(
      db_sample_get(f->db, job, BIG_N - 1, &s, f->err, sizeof f->err), 0);
  p = b->pos[BIG_N - 1];
  assert_int_equal(p, b->n_train - 1);
  assert_int_equal(s.n_epochs, 1);
  assert_true(s.epochs[0].loss == db_half_round(b->loss[p]));
  assert_true(s.epochs[0].prob == db_half_round(b->prob[p]));
  assert_true(s.epochs[0].weight == db_half_round(b->weight[p]));
  assert_int_equal(s.epochs[0].easy, b->easy[p]);
  assert_true(s.epochs[0].margin == db_half_round(b->margin[p]));
  assert_int_equal(s.epochs[0].pred, b->pred[p]);
  assert_int_equal(s.clean, b->clean[BIG_N - 1]);
  db_sample_deinit(&s);

  /* A sample in the middle reads its own margin, prediction and
   * dynamics. */
  assert_int_equal(db_sample_get(f->db, job, 31337, &s, f->err, sizeof f->err),
                   0);
  p = b->pos[31337];
  assert_true(p > 0);
  assert_true(s.epochs[0].margin == db_half_round(b->margin[p]));
  assert_int_equal(s.epochs[0].pred, b->pred[p]);
  assert_int_equal(s.n_dynamics, 1);
  assert_true(s.dynamics[0].confidence == b->conf[p]);
  assert_true(s.dynamics[0].variability == b->var[p]);
  assert_true(s.dynamics[0].correctness == b->corr[p]);
  assert_int_equal(s.dynamics[0].forgetting, b->forg[p]);
  assert_true(s.dynamics[0].aum == b->aum[p]);
  db_sample_deinit(&s);
  free(b);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_open_creates_schema),
      TEST(test_open_uses_wal),
      TEST(test_open_refuses_newer_schema),
      cmocka_unit_test(test_open_directory_fails),
      TEST(test_migrate_from_version_1),
      TEST(test_migrate_from_version_2),
      TEST(test_migrate_from_version_3),
      TEST(test_migrate_refuses_orphan_rows),
      TEST(test_migrate_from_version_4),
      cmocka_unit_test(test_half_round_edges),
      cmocka_unit_test(test_half_round_bound),
      TEST(test_records_half_round_trip),
      TEST(test_records_half_layout),
      TEST(test_sample_history_half),
      TEST(test_records_mixed_formats),
      TEST(test_records_bytes_per_sample_epoch),
      TEST(test_job_insert_get),
      TEST(test_job_list_pages),
      TEST(test_job_start_progress_finish),
      TEST(test_job_cancel_queued),
      TEST(test_jobs_fail_running),
      TEST(test_metrics_list_order),
      TEST(test_epoch_sets),
      TEST(test_epoch_set_pages),
      TEST(test_epoch_set_missing),
      TEST(test_sample_get_train),
      TEST(test_sample_get_val_and_missing),
      TEST(test_records_optional_arrays),
      TEST(test_epoch_duplicate_keeps_first),
      TEST(test_epoch_insert_refuses_bad_input),
      TEST(test_split_insert_refusals),
      TEST(test_dynamics_read_back),
      TEST(test_dynamics_none),
      TEST(test_dynamics_again_replaces),
      TEST(test_dynamics_insert_refuses_bad_input),
      TEST(test_teacher_stages_read_back),
      TEST(test_teacher_stages_dynamics),
      TEST(test_bad_stage_refused),
      TEST(test_big_job),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
