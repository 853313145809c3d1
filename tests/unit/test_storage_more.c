/* SPDX-License-Identifier: MIT */
/* Unit tests of storage/ beyond test_storage.c: migration 6 (job
 * priority and owner, checkpoints, events), the queries across a stage's
 * samples, filtered job lists, deleting jobs and giving their space
 * back, a full disk, and readers working while a writer commits.
 * Each test works on its own file under /tmp, removed afterwards. The
 * tests reach the connection inside a db_t (db_internal.h) only to
 * inspect the file or to shrink its page limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../storage/db.h"
#include "dbfix.h"
#include "../../storage/db_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The schema version this program's migrations reach. */
#define SCHEMA_VERSION 7

typedef db_fixture_t fixture_t;

static int setup(void **state) {
  return db_fixture_setup(state, "storage-more");
}

static int teardown(void **state) {
  return db_fixture_teardown(state);
}

/* The first column of the first row of sql run on db's own connection, as
 * an integer (0 if there is no row). */
static int64_t conn_query(db_t *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v = 0;

  assert_int_equal(sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void conn_exec(db_t *db, const char *sql) {
  char *msg = NULL;

  if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* Like conn_query, on a connection of its own to path. */
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

static int64_t job_new(db_t *db, const char *name) {
  char err[256] = "";
  int64_t id = 0;

  assert_int_equal(
      db_job_insert(db, name, "{\"seed\": 1}", &id, err, sizeof err), 0);
  assert_true(id > 0);
  return id;
}

/* A job that ran and ended in state. */
static int64_t job_finished(db_t *db, const char *name, const char *state) {
  char err[256] = "";
  int64_t id = job_new(db, name);

  assert_int_equal(db_job_start(db, id, NULL, err, sizeof err), 0);
  assert_int_equal(db_job_finish(db, id, state, NULL, err, sizeof err), 0);
  return id;
}

/* ---- A small job: ten samples, three epochs, one stage's dynamics. ---- */

/* Seven train (positions 0..6 in index order), three validation. */
#define N_SAMPLES 10
#define N_TRAIN 7
static const int32_t s_index[N_SAMPLES] = {2, 3, 5, 8, 11, 14, 20, 21, 30, 41};
static const uint8_t s_split[N_SAMPLES] = {0, 0, 1, 0, 0, 1, 0, 0, 1, 0};
static const int32_t s_pos[N_SAMPLES] = {0, 1, -1, 2, 3, -1, 4, 5, -1, 6};
static const uint8_t s_observed[N_SAMPLES] = {1, 4, 7, 0, 9, 2, 3, 3, 5, 8};
static const uint8_t s_clean[N_SAMPLES] = {1, 6, 7, 0, 2, 2, 3, 1, 5, 8};

/* The training index and labels at each position. */
static const int32_t p_index[N_TRAIN] = {2, 3, 8, 11, 20, 21, 41};
static const int p_observed[N_TRAIN] = {1, 4, 0, 9, 3, 3, 8};
static const int p_clean[N_TRAIN] = {1, 6, 0, 2, 3, 1, 8};

/* Easy flags by position of spl epochs 1 to 3; epoch 3 is all hard. */
static const uint8_t s_easy[3][N_TRAIN] = {
    {1, 0, 1, 1, 0, 0, 1},
    {1, 1, 0, 1, 1, 0, 0},
    {0, 0, 0, 0, 0, 0, 0},
};

/* The spl dynamics by position: ties in confidence (positions 1 and 3),
 * correctness and forgetting, one NaN confidence (position 4). */
static const float d_conf[N_TRAIN] = {0.5f, 0.25f, 0.75f, 0.25f,
                                      NAN,  1.0f,  0.0f};
static const float d_var[N_TRAIN] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
static const float d_corr[N_TRAIN] = {1.0f, 0.0f, 0.5f, 0.5f, 0.5f, 1.0f, 0.0f};
static const int32_t d_forg[N_TRAIN] = {3, 0, 7, 1, 1, 0, 2};
static const float d_aum[N_TRAIN] = {-1.5f, 2.0f,  0.5f, -0.25f,
                                     3.0f,  -4.0f, 0.0f};

static void small_epoch_store(db_t *db, int64_t job, int epoch) {
  float loss[N_TRAIN], prob[N_TRAIN], weight[N_TRAIN];
  db_metrics_t m = {.stage = "spl", .epoch = epoch};
  db_records_t rec = {N_TRAIN,           loss, prob, weight,
                      s_easy[epoch - 1], NULL, NULL};
  char err[256] = "";

  for (int p = 0; p < N_TRAIN; p++) {
    loss[p] = 0.25f * (float)(p + epoch);
    prob[p] = 0.5f;
    weight[p] = 1.0f;
  }
  assert_int_equal(db_epoch_insert(db, job, &m, &rec, err, sizeof err), 0);
}

/* A job with the ten samples, spl epochs 1 to 3 and the spl dynamics. */
static int64_t small_job_store(db_t *db) {
  db_split_t split = {N_SAMPLES, s_index, s_split, s_pos, s_observed, s_clean};
  db_dynamics_t d = {N_TRAIN, d_conf, d_var, d_corr, d_forg, d_aum};
  char err[256] = "";
  int64_t job = job_new(db, "small");

  assert_int_equal(db_split_insert(db, job, &split, err, sizeof err), 0);
  for (int e = 1; e <= 3; e++)
    small_epoch_store(db, job, e);
  assert_int_equal(db_dynamics_insert(db, job, "spl", &d, err, sizeof err), 0);
  return job;
}

/* ---- Migration 6. ---- */

/* Tables with a job_id column that lack a foreign key to jobs deleting
 * with it (ON DELETE CASCADE): there must be none. */
static const char no_cascade_sql[] =
    "SELECT count(*) FROM sqlite_master m WHERE m.type = 'table' AND "
    "EXISTS (SELECT 1 FROM pragma_table_info(m.name) c "
    "  WHERE c.name = 'job_id') AND "
    "NOT EXISTS (SELECT 1 FROM pragma_foreign_key_list(m.name) k "
    "  WHERE k.\"from\" = 'job_id' AND k.\"table\" = 'jobs' "
    "  AND k.on_delete = 'CASCADE')";

static const char job_tables_sql[] =
    "SELECT count(*) FROM sqlite_master m WHERE m.type = 'table' AND "
    "EXISTS (SELECT 1 FROM pragma_table_info(m.name) c "
    "  WHERE c.name = 'job_id')";

static void test_schema_version_6(void **state) {
  fixture_t *f = *state;
  int64_t id = job_new(f->db, "labelled");
  db_job_t job;

  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM sqlite_master "
                                     "WHERE name IN ('checkpoints', "
                                     "'events', 'events_job')"),
                   3);
  assert_int_equal(conn_query(f->db, no_cascade_sql), 0);
  /* Six tables of migrations 1 to 6, idempotency_keys of 7. */
  assert_int_equal(conn_query(f->db, job_tables_sql), 7);
  assert_int_equal(conn_query(f->db, "PRAGMA auto_vacuum"), 2);

  /* A new job has priority 0 and no owner until labelled. */
  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_int_equal(job.priority, 0);
  assert_null(job.owner);
  db_job_deinit(&job);
  assert_int_equal(
      db_job_label_set(f->db, id, -3, "alice", f->err, sizeof f->err), 0);
  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_int_equal(job.priority, -3);
  assert_string_equal(job.owner, "alice");
  db_job_deinit(&job);
  assert_int_equal(db_job_label_set(f->db, id, 5, NULL, f->err, sizeof f->err),
                   0);
  assert_int_equal(db_job_get(f->db, id, &job, f->err, sizeof f->err), 0);
  assert_int_equal(job.priority, 5);
  assert_null(job.owner);
  db_job_deinit(&job);
  assert_int_equal(
      db_job_label_set(f->db, id + 9, 1, "x", f->err, sizeof f->err), -ENOENT);
}

/* ---- Checkpoints. ---- */

static const char sha_upper[] =
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
static const char sha_lower[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* size bytes, byte i being (i * 7 + seed) mod 256; the caller frees. */
static uint8_t *bytes_new(size_t size, int seed) {
  uint8_t *b = malloc(size);

  assert_non_null(b);
  for (size_t i = 0; i < size; i++)
    b[i] = (uint8_t)(i * 7 + (size_t)seed);
  return b;
}

static void ckpt_put(db_t *db, int64_t job, const char *stage, const char *kind,
                     int epoch, size_t size, int seed) {
  db_checkpoint_info_t info = {.epoch = epoch, .size = size};
  uint8_t *b = bytes_new(size, seed);
  char err[256] = "";

  snprintf(info.stage, sizeof info.stage, "%s", stage);
  snprintf(info.kind, sizeof info.kind, "%s", kind);
  assert_int_equal(db_checkpoint_put(db, job, &info, b, err, sizeof err), 0);
  free(b);
}

/* Reads a checkpoint back and checks every byte against bytes_new. */
static void ckpt_assert(db_t *db, int64_t job, const char *stage,
                        const char *kind, int epoch, size_t size, int seed) {
  uint8_t *want = bytes_new(size, seed);
  char err[256] = "";
  db_checkpoint_t c;

  assert_int_equal(db_checkpoint_get(db, job, stage, kind, &c, err, sizeof err),
                   0);
  assert_string_equal(c.info.stage, stage);
  assert_string_equal(c.info.kind, kind);
  assert_int_equal(c.info.epoch, epoch);
  assert_int_equal(c.info.size, size);
  assert_memory_equal(c.data, want, size);
  db_checkpoint_deinit(&c);
  free(want);
}

static void test_checkpoint_round_trip(void **state) {
  fixture_t *f = *state;
  int64_t job = job_new(f->db, "ckpt");
  db_checkpoint_info_t info = {"spl", "latest", 1, 4096, ""};
  uint8_t *b = bytes_new(4096, 1);
  db_checkpoint_t c;

  /* The hash is stored in lower case. */
  memcpy(info.sha256, sha_upper, sizeof sha_upper);
  assert_int_equal(
      db_checkpoint_put(f->db, job, &info, b, f->err, sizeof f->err), 0);
  free(b);
  ckpt_assert(f->db, job, "spl", "latest", 1, 4096, 1);
  assert_int_equal(
      db_checkpoint_get(f->db, job, "spl", "latest", &c, f->err, sizeof f->err),
      0);
  assert_string_equal(c.info.sha256, sha_lower);
  db_checkpoint_deinit(&c);

  /* A later epoch replaces it, smaller, without a hash. */
  ckpt_put(f->db, job, "spl", "latest", 2, 1000, 2);
  ckpt_assert(f->db, job, "spl", "latest", 2, 1000, 2);
  assert_int_equal(
      db_checkpoint_get(f->db, job, "spl", "latest", &c, f->err, sizeof f->err),
      0);
  assert_string_equal(c.info.sha256, "");
  db_checkpoint_deinit(&c);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM checkpoints"), 1);

  /* The final one sits beside it; one byte is a checkpoint too. */
  ckpt_put(f->db, job, "spl", "final", 3, 1, 3);
  ckpt_assert(f->db, job, "spl", "final", 3, 1, 3);
  ckpt_assert(f->db, job, "spl", "latest", 2, 1000, 2);
}

static void test_checkpoint_missing(void **state) {
  fixture_t *f = *state;
  int64_t job = job_new(f->db, "ckpt");
  db_checkpoint_info_t *list = (db_checkpoint_info_t *)&list;
  db_checkpoint_t c;
  int n = -1;

  assert_int_equal(
      db_checkpoint_get(f->db, job, "spl", "latest", &c, f->err, sizeof f->err),
      -ENOENT);
  assert_non_null(strstr(f->err, "no latest checkpoint"));
  assert_null(c.data);
  assert_int_equal(db_checkpoint_get(f->db, job + 5, "spl", "latest", &c,
                                     f->err, sizeof f->err),
                   -ENOENT);
  assert_non_null(strstr(f->err, "no job"));
  assert_int_equal(db_checkpoint_get(f->db, job, "nope", "latest", &c, f->err,
                                     sizeof f->err),
                   -EINVAL);
  assert_int_equal(
      db_checkpoint_get(f->db, job, "spl", "best", &c, f->err, sizeof f->err),
      -EINVAL);

  /* An empty list is no error; a missing job is. */
  assert_int_equal(
      db_checkpoint_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  assert_null(list);
  assert_int_equal(
      db_checkpoint_list(f->db, job + 5, &list, &n, f->err, sizeof f->err),
      -ENOENT);
}

static void test_checkpoint_list(void **state) {
  fixture_t *f = *state;
  int64_t job = job_new(f->db, "ckpt"), other = job_new(f->db, "other");
  db_checkpoint_info_t *list = NULL;
  int n = 0;

  /* Stored out of pipeline order. */
  ckpt_put(f->db, job, "student", "final", 9, 30, 0);
  ckpt_put(f->db, job, "teacher1", "latest", 4, 20, 0);
  ckpt_put(f->db, job, "spl", "final", 5, 10, 0);
  ckpt_put(f->db, job, "spl", "latest", 5, 11, 0);
  ckpt_put(f->db, job, "teacher0", "final", 6, 12, 0);
  ckpt_put(f->db, other, "spl", "latest", 1, 99, 0);

  assert_int_equal(
      db_checkpoint_list(f->db, job, &list, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 5);
  assert_string_equal(list[0].stage, "spl");
  assert_string_equal(list[0].kind, "latest");
  assert_int_equal(list[0].size, 11);
  assert_string_equal(list[1].stage, "spl");
  assert_string_equal(list[1].kind, "final");
  assert_int_equal(list[1].epoch, 5);
  assert_string_equal(list[2].stage, "teacher0");
  assert_string_equal(list[3].stage, "teacher1");
  assert_int_equal(list[3].epoch, 4);
  assert_string_equal(list[4].stage, "student");
  assert_int_equal(list[4].size, 30);
  free(list);
}

static void test_checkpoint_refusals(void **state) {
  fixture_t *f = *state;
  int64_t job = job_new(f->db, "ckpt");
  uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const db_checkpoint_info_t good = {"spl", "latest", 1, sizeof b, ""};
  db_checkpoint_info_t bad[7];
  int limit;

  for (int i = 0; i < 7; i++)
    bad[i] = good;
  snprintf(bad[0].stage, sizeof bad[0].stage, "teacher8");
  snprintf(bad[1].kind, sizeof bad[1].kind, "best");
  bad[2].epoch = -1;
  bad[3].size = 0;
  memcpy(bad[4].sha256, sha_lower, sizeof sha_lower);
  bad[4].sha256[63] = '\0'; /* 63 digits */
  memcpy(bad[5].sha256, sha_lower, sizeof sha_lower);
  bad[5].sha256[10] = 'g';
  memset(bad[6].stage, 'x', sizeof bad[6].stage); /* unterminated */
  for (int i = 0; i < 7; i++)
    assert_int_equal(
        db_checkpoint_put(f->db, job, &bad[i], b, f->err, sizeof f->err),
        -EINVAL);
  assert_int_equal(
      db_checkpoint_put(f->db, job, &good, NULL, f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(
      db_checkpoint_put(f->db, job + 3, &good, b, f->err, sizeof f->err),
      -ENOENT);
  assert_non_null(strstr(f->err, "no job"));

  /* Beyond the longest BLOB the connection takes (lowered here). */
  limit = sqlite3_limit(f->db->conn, SQLITE_LIMIT_LENGTH, 4);
  assert_int_equal(
      db_checkpoint_put(f->db, job, &good, b, f->err, sizeof f->err), -EFBIG);
  assert_non_null(strstr(f->err, "too large"));
  sqlite3_limit(f->db->conn, SQLITE_LIMIT_LENGTH, limit);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM checkpoints"), 0);
}

/* ---- Events. ---- */

static int64_t event_add(db_t *db, int64_t job, const char *kind,
                         const char *data) {
  char err[256] = "";
  int64_t seq = 0;

  assert_int_equal(db_event_append(db, job, kind, data, &seq, err, sizeof err),
                   0);
  assert_true(seq > 0);
  return seq;
}

static void test_event_round_trip(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), b = job_new(f->db, "b");
  int64_t seq[4], daemon, last = 0;
  double before = db_now();
  db_event_t *ev = NULL;
  int n = 0;

  /* Each insert stored the job's first state event. */
  assert_int_equal(
      db_event_list(f->db, 0, 0, 10, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 2);
  assert_true(ev[0].job == a && ev[1].job == b);
  assert_string_equal(ev[1].kind, "state");
  assert_string_equal(ev[1].data_json, "{\"state\":\"queued\",\"error\":null}");
  last = ev[1].seq;
  db_events_free(ev, n);

  seq[0] = event_add(f->db, a, "state", "{\"state\": \"running\"}");
  event_add(f->db, b, "state", "{\"state\": \"queued\"}");
  seq[1] = event_add(f->db, a, "epoch", "{\"epoch\": 1}");
  daemon = event_add(f->db, 0, "daemon", "{\"up\": true}");
  seq[2] = event_add(f->db, a, "epoch", "{\"epoch\": 2}");
  seq[3] = event_add(f->db, a, "state", "[1, 2]");
  assert_true(seq[0] < seq[1] && seq[1] < daemon && daemon < seq[2]);

  assert_int_equal(
      db_event_list(f->db, a, last, 10, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 4);
  for (int i = 0; i < n; i++) {
    assert_true(ev[i].seq == seq[i]);
    assert_true(ev[i].job == a);
    assert_true(ev[i].at >= before - 1 && ev[i].at <= db_now() + 1);
  }
  assert_string_equal(ev[1].kind, "epoch");
  assert_string_equal(ev[1].data_json, "{\"epoch\": 1}");
  assert_string_equal(ev[3].data_json, "[1, 2]");
  db_events_free(ev, n);

  /* Job 0 lists every event, the daemon's with job 0. */
  assert_int_equal(
      db_event_list(f->db, 0, last, 100, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 6);
  assert_true(ev[3].seq == daemon && ev[3].job == 0);
  assert_true(ev[1].job == b);
  for (int i = 1; i < n; i++)
    assert_true(ev[i].seq > ev[i - 1].seq);
  last = ev[n - 1].seq;
  db_events_free(ev, n);
  assert_int_equal(
      db_event_list(f->db, 0, last, 100, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  db_events_free(ev, n);
}

/* Pages of two through job a's four events (its first state event and
 * three ticks): full, full, then empty. */
static void test_event_pages(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), seq[4], after = -5;
  db_event_t *ev = NULL;
  int n = 0, seen = 0;

  seq[0] = conn_query(f->db, "SELECT max(seq) FROM events");
  for (int i = 1; i < 4; i++) {
    char data[32];
    snprintf(data, sizeof data, "{\"i\": %d}", i);
    seq[i] = event_add(f->db, a, "tick", data);
    event_add(f->db, 0, "noise", "{}");
  }
  for (int page = 0; page < 3; page++) {
    assert_int_equal(
        db_event_list(f->db, a, after, 2, &ev, &n, f->err, sizeof f->err), 0);
    assert_int_equal(n, page < 2 ? 2 : 0);
    for (int i = 0; i < n; i++, seen++)
      assert_true(ev[i].seq == seq[seen]);
    if (n > 0)
      after = ev[n - 1].seq;
    db_events_free(ev, n);
  }
  assert_int_equal(seen, 4);

  /* Limit 0 is an empty page, not everything. */
  assert_int_equal(
      db_event_list(f->db, a, 0, 0, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  db_events_free(ev, n);
}

static void test_event_refusals(void **state) {
  fixture_t *f = *state;
  int64_t a = job_new(f->db, "a"), seq = -1;
  db_event_t *ev = NULL;
  int n = 0;

  assert_int_equal(db_event_append(f->db, a, "x", "{\"open\": ", &seq, f->err,
                                   sizeof f->err),
                   -EINVAL);
  assert_non_null(strstr(f->err, "not JSON"));
  assert_true(seq == 0);
  assert_int_equal(
      db_event_append(f->db, a, "", "{}", &seq, f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(
      db_event_append(f->db, a, "x", NULL, &seq, f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(
      db_event_append(f->db, -1, "x", "{}", &seq, f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(
      db_event_append(f->db, a + 7, "x", "{}", &seq, f->err, sizeof f->err),
      -ENOENT);
  assert_non_null(strstr(f->err, "no job"));
  /* Only the job's first state event, stored by its insert. */
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM events"), 1);

  assert_int_equal(
      db_event_list(f->db, a + 7, 0, 10, &ev, &n, f->err, sizeof f->err),
      -ENOENT);
  assert_int_equal(
      db_event_list(f->db, a, 0, -1, &ev, &n, f->err, sizeof f->err), -EINVAL);
  assert_null(ev);
  assert_int_equal(n, 0);
}

/* ---- Samples that changed between epochs. ---- */

/* What db_epoch_changes must give between epochs ea and eb of the small
 * job: positions are in index order, so in position order. */
static int changes_expected(int ea, int eb, db_easy_change_t *out) {
  int n = 0;

  for (int p = 0; p < N_TRAIN; p++) {
    if (s_easy[ea - 1][p] == s_easy[eb - 1][p])
      continue;
    out[n].index = p_index[p];
    out[n++].became_easy = s_easy[eb - 1][p];
  }
  return n;
}

static void changes_assert(db_t *db, int64_t job, int ea, int eb) {
  db_change_query_t q = {"spl", ea, eb, -1, 100};
  db_easy_change_t want[N_TRAIN], *got = NULL;
  int n_want = changes_expected(ea, eb, want), n = -1;
  char err[256] = "";

  assert_int_equal(db_epoch_changes(db, job, &q, &got, &n, err, sizeof err), 0);
  assert_int_equal(n, n_want);
  for (int i = 0; i < n; i++) {
    assert_int_equal(got[i].index, want[i].index);
    assert_int_equal(got[i].became_easy, want[i].became_easy);
  }
  free(got);
}

static void test_epoch_changes(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_change_query_t q = {"spl", 1, 2, -1, 100};
  db_easy_change_t *got = NULL;
  int n = -1;

  /* Epoch 1 to 2: 3 and 20 became easy, 8 and 41 hard. */
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 4);
  assert_true(got[0].index == 3 && got[0].became_easy == 1);
  assert_true(got[1].index == 8 && got[1].became_easy == 0);
  assert_true(got[2].index == 20 && got[2].became_easy == 1);
  assert_true(got[3].index == 41 && got[3].became_easy == 0);
  free(got);

  for (int a = 1; a <= 3; a++)
    for (int b = 1; b <= 3; b++)
      changes_assert(f->db, job, a, b);

  /* The same epoch twice changes nothing. */
  q.epoch_b = 1;
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  free(got);
}

/* Pages of two between epochs 1 and 2 (four changes): the second page
 * ends exactly at the last change, the third is empty. */
static void test_epoch_changes_pages(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  static const int32_t want[4] = {3, 8, 20, 41};
  db_change_query_t q = {"spl", 1, 2, -1, 2};
  db_easy_change_t *got = NULL;
  int n = -1, seen = 0;

  for (int page = 0; page < 3; page++) {
    assert_int_equal(
        db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err), 0);
    assert_int_equal(n, page < 2 ? 2 : 0);
    for (int i = 0; i < n; i++, seen++)
      assert_int_equal(got[i].index, want[seen]);
    if (n > 0)
      q.after = got[n - 1].index;
    free(got);
  }
  assert_int_equal(seen, 4);

  /* A cursor between indices starts after it; limit 0 gives nothing. */
  q.after = 9;
  q.limit = 1;
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(got[0].index, 20);
  free(got);
  q.limit = 0;
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  free(got);
}

static void test_epoch_changes_missing(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_change_query_t q = {"spl", 1, 4, -1, 10};
  db_easy_change_t *got = (db_easy_change_t *)&got;
  int n = -1;

  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err),
      -ENOENT);
  assert_non_null(strstr(f->err, "epoch 4"));
  assert_null(got);
  assert_int_equal(n, 0);
  q.epoch_a = 0;
  q.epoch_b = 1;
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err),
      -ENOENT);
  q.epoch_a = 1;
  q.stage = "teacher";
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err),
      -ENOENT);
  q.stage = "bogus";
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err),
      -ENOENT);
  q.stage = "spl";
  assert_int_equal(
      db_epoch_changes(f->db, job + 1, &q, &got, &n, f->err, sizeof f->err),
      -ENOENT);
  q.limit = -1;
  assert_int_equal(
      db_epoch_changes(f->db, job, &q, &got, &n, f->err, sizeof f->err),
      -EINVAL);
}

/* ---- A stage's dynamics, sorted. ---- */

static double stat_value(db_dyn_stat_t stat, int p) {
  switch (stat) {
  case DB_DYN_CONFIDENCE:
    return d_conf[p];
  case DB_DYN_VARIABILITY:
    return d_var[p];
  case DB_DYN_CORRECTNESS:
    return d_corr[p];
  case DB_DYN_FORGETTING:
    return d_forg[p];
  default:
    return d_aum[p];
  }
}

/* 1 when position p comes before q: value order (reversed when
 * descending), NaN last, ties by index. */
static int comes_before(db_dyn_stat_t stat, int descending, int p, int q) {
  double a = stat_value(stat, p), b = stat_value(stat, q);

  if (isnan(a) != isnan(b))
    return isnan(b);
  if (!isnan(a) && a != b)
    return descending ? a > b : a < b;
  return p_index[p] < p_index[q];
}

/* The positions in the order db_dynamics_list must give, by insertion
 * sort: the slow twin of the query's qsort. */
static void order_expected(db_dyn_stat_t stat, int descending,
                           int order[N_TRAIN]) {
  for (int i = 0; i < N_TRAIN; i++) {
    int j = i;
    while (j > 0 && comes_before(stat, descending, i, order[j - 1])) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
}

static int same_float(float a, float b) {
  return (isnan(a) && isnan(b)) || a == b;
}

/* Checks row against everything stored for position p. */
static void dyn_row_assert(const db_dynamics_row_t *row, int p) {
  assert_int_equal(row->index, p_index[p]);
  assert_int_equal(row->observed, p_observed[p]);
  assert_int_equal(row->clean, p_clean[p]);
  assert_true(same_float(row->confidence, d_conf[p]));
  assert_true(row->variability == d_var[p]);
  assert_true(row->correctness == d_corr[p]);
  assert_int_equal(row->forgetting, d_forg[p]);
  assert_true(row->aum == d_aum[p]);
}

static void test_dynamics_sorted(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  static const int32_t conf_up[N_TRAIN] = {41, 3, 11, 2, 8, 21, 20};
  static const int32_t conf_down[N_TRAIN] = {21, 8, 2, 3, 11, 41, 20};
  db_dynamics_query_t q = {"spl", DB_DYN_CONFIDENCE, 0, 0, 100};
  db_dynamics_page_t page;
  int order[N_TRAIN];

  /* Confidence by hand: ties by index, NaN (sample 20) last both ways. */
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), 0);
  assert_int_equal(page.count, N_TRAIN);
  assert_int_equal(page.total, N_TRAIN);
  for (int i = 0; i < N_TRAIN; i++)
    assert_int_equal(page.rows[i].index, conf_up[i]);
  db_dynamics_page_deinit(&page);
  q.descending = 1;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), 0);
  for (int i = 0; i < N_TRAIN; i++)
    assert_int_equal(page.rows[i].index, conf_down[i]);
  db_dynamics_page_deinit(&page);

  /* Every statistic both ways against the reference order. */
  for (int s = DB_DYN_CONFIDENCE; s <= DB_DYN_AUM; s++) {
    for (int desc = 0; desc <= 1; desc++) {
      db_dynamics_query_t qs = {"spl", (db_dyn_stat_t)s, desc, 0, 100};
      order_expected((db_dyn_stat_t)s, desc, order);
      assert_int_equal(
          db_dynamics_list(f->db, job, &qs, &page, f->err, sizeof f->err), 0);
      assert_int_equal(page.count, N_TRAIN);
      for (int i = 0; i < N_TRAIN; i++)
        dyn_row_assert(&page.rows[i], order[i]);
      db_dynamics_page_deinit(&page);
    }
  }
}

/* Pages of three by descending AUM: 3, 3, then the last 1 (a short last
 * page); offset 7 (the end) is empty, offset 8 an error. */
static void test_dynamics_pages(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db);
  db_dynamics_query_t q = {"spl", DB_DYN_AUM, 1, 0, 3};
  db_dynamics_page_t page;
  int order[N_TRAIN], seen = 0;

  order_expected(DB_DYN_AUM, 1, order);
  for (q.offset = 0; q.offset < N_TRAIN; q.offset += 3) {
    assert_int_equal(
        db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), 0);
    assert_int_equal(page.count, q.offset < 6 ? 3 : 1);
    assert_int_equal(page.total, N_TRAIN);
    for (int i = 0; i < page.count; i++, seen++)
      dyn_row_assert(&page.rows[i], order[seen]);
    db_dynamics_page_deinit(&page);
  }
  assert_int_equal(seen, N_TRAIN);

  q.offset = N_TRAIN;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), 0);
  assert_int_equal(page.count, 0);
  assert_int_equal(page.total, N_TRAIN);
  db_dynamics_page_deinit(&page);
  q.offset = N_TRAIN + 1;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -ERANGE);
  assert_null(page.rows);
  assert_int_equal(page.count, 0);
  q.offset = 2;
  q.limit = 0;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), 0);
  assert_int_equal(page.count, 0);
  db_dynamics_page_deinit(&page);
}

static void test_dynamics_list_refusals(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db), empty = job_new(f->db, "empty");
  db_dynamics_query_t q = {"spl", DB_DYN_AUM, 0, 0, 10};
  db_dynamics_page_t page;

  assert_int_equal(db_dyn_stat_parse("forgetting"), DB_DYN_FORGETTING);
  assert_int_equal(db_dyn_stat_parse("aum"), DB_DYN_AUM);
  assert_int_equal(db_dyn_stat_parse("loss"), -EINVAL);
  assert_int_equal(db_dyn_stat_parse(NULL), -EINVAL);

  q.stat = (db_dyn_stat_t)5;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -EINVAL);
  q.stat = DB_DYN_AUM;
  q.offset = -1;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -EINVAL);
  q.offset = 0;
  q.limit = -2;
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -EINVAL);
  q.limit = 10;
  q.stage = "teacher";
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -ENOENT);
  assert_non_null(strstr(f->err, "no dynamics of stage teacher"));
  q.stage = "nope";
  assert_int_equal(
      db_dynamics_list(f->db, job, &q, &page, f->err, sizeof f->err), -ENOENT);
  q.stage = "spl";
  assert_int_equal(
      db_dynamics_list(f->db, empty, &q, &page, f->err, sizeof f->err),
      -ENOENT);
  assert_int_equal(
      db_dynamics_list(f->db, job + 10, &q, &page, f->err, sizeof f->err),
      -ENOENT);
  assert_non_null(strstr(f->err, "no job"));
  assert_null(page.rows);
}

/* ---- Jobs by state. ---- */

static void test_job_find(void **state) {
  fixture_t *f = *state;
  int64_t q[5], done = job_finished(f->db, "done", "succeeded");
  db_job_filter_t filter = {"queued", 0, 2};
  db_job_t *jobs = NULL;
  int n = -1, seen = 0;

  for (int i = 0; i < 5; i++) {
    q[i] = job_new(f->db, "q");
    if (i == 2)
      job_finished(f->db, "failed", "failed");
  }

  /* Queued jobs newest first in pages of two: 2, 2, the last 1, none. */
  for (int page = 0; page < 4; page++) {
    assert_int_equal(
        db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), 0);
    assert_int_equal(n, page < 2 ? 2 : page == 2 ? 1 : 0);
    for (int i = 0; i < n; i++, seen++) {
      assert_true(jobs[i].id == q[4 - seen]);
      assert_string_equal(jobs[i].state, "queued");
    }
    if (n > 0)
      filter.before = jobs[n - 1].id;
    db_jobs_free(jobs, n);
  }
  assert_int_equal(seen, 5);

  filter = (db_job_filter_t){"succeeded", 0, 10};
  assert_int_equal(
      db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 1);
  assert_true(jobs[0].id == done);
  db_jobs_free(jobs, n);
  filter = (db_job_filter_t){"running", 0, 10};
  assert_int_equal(
      db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 0);
  db_jobs_free(jobs, n);

  /* No state: every job, as db_job_list gives them. */
  filter = (db_job_filter_t){NULL, 0, 100};
  assert_int_equal(
      db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 7);
  assert_true(jobs[0].id == q[4] && jobs[6].id == done);
  db_jobs_free(jobs, n);
}

static void test_job_find_refusals(void **state) {
  fixture_t *f = *state;
  db_job_filter_t filter = {"paused", 0, 10};
  db_job_t *jobs = (db_job_t *)&jobs;
  int n = -1;

  job_new(f->db, "a");
  assert_int_equal(
      db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), -EINVAL);
  assert_non_null(strstr(f->err, "paused"));
  assert_null(jobs);
  assert_int_equal(n, 0);
  filter = (db_job_filter_t){"queued", 0, -1};
  assert_int_equal(
      db_job_find(f->db, &filter, &jobs, &n, f->err, sizeof f->err), -EINVAL);
}

/* ---- Deleting jobs. ---- */

/* How many rows of every table with a job_id column belong to job. */
static int64_t job_rows(db_t *db, int64_t job) {
  sqlite3_stmt *st = NULL;
  int64_t total = 0;
  char sql[160];

  assert_int_equal(
      sqlite3_prepare_v2(db->conn,
                         "SELECT m.name FROM sqlite_master m "
                         "WHERE m.type = 'table' AND EXISTS (SELECT 1 FROM "
                         "pragma_table_info(m.name) c WHERE c.name = "
                         "'job_id') ORDER BY m.name",
                         -1, &st, NULL),
      SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE job_id = %lld",
             (const char *)sqlite3_column_text(st, 0), (long long)job);
    total += conn_query(db, sql);
  }
  sqlite3_finalize(st);
  return total;
}

/* Gives the small job a checkpoint and events, then finishes it. */
static int64_t full_job_store(db_t *db, const char *state) {
  int64_t job = small_job_store(db);
  char err[256] = "";

  ckpt_put(db, job, "spl", "final", 3, 5000, 4);
  event_add(db, job, "state", "{\"state\": \"running\"}");
  event_add(db, job, "epoch", "{\"epoch\": 3}");
  assert_int_equal(db_job_start(db, job, NULL, err, sizeof err), 0);
  assert_int_equal(db_job_finish(db, job, state, NULL, err, sizeof err), 0);
  return job;
}

static void test_job_delete(void **state) {
  fixture_t *f = *state;
  int64_t gone = full_job_store(f->db, "failed");
  int64_t kept = full_job_store(f->db, "succeeded");
  int64_t daemon = event_add(f->db, 0, "daemon", "{}");
  int64_t kept_rows = job_rows(f->db, kept);
  db_event_t *ev = NULL;
  db_job_t job;
  int n = 0;

  /* Samples, metrics, records, dynamics, checkpoint, events: the two
   * added, a state event for queued, running and the end, one per
   * epoch. */
  assert_int_equal(kept_rows, 10 + 3 + 3 + 1 + 1 + 2 + 3 + 3);
  assert_int_equal(job_rows(f->db, gone), kept_rows);
  assert_int_equal(db_job_delete(f->db, gone, f->err, sizeof f->err), 0);
  assert_int_equal(job_rows(f->db, gone), 0);
  assert_int_equal(db_job_get(f->db, gone, &job, f->err, sizeof f->err),
                   -ENOENT);
  assert_int_equal(db_job_delete(f->db, gone, f->err, sizeof f->err), -ENOENT);

  /* The other job and the daemon's event are untouched. */
  assert_int_equal(job_rows(f->db, kept), kept_rows);
  ckpt_assert(f->db, kept, "spl", "final", 3, 5000, 4);
  assert_int_equal(
      db_event_list(f->db, 0, 0, 100, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 2 + 3 + 3 + 1);
  assert_true(ev[n - 1].seq == daemon && ev[n - 1].job == 0);
  db_events_free(ev, n);

  /* Ids are not handed out again. */
  assert_true(job_new(f->db, "next") > kept);
  assert_int_equal(conn_query(f->db, "PRAGMA foreign_key_check"), 0);
}

static void test_job_delete_refuses_unfinished(void **state) {
  fixture_t *f = *state;
  int64_t queued = job_new(f->db, "queued"), running = small_job_store(f->db);
  int64_t cancelled = job_new(f->db, "cancelled");
  int64_t before;
  db_job_t job;

  assert_int_equal(db_job_start(f->db, running, NULL, f->err, sizeof f->err),
                   0);
  before = job_rows(f->db, running);
  assert_int_equal(db_job_delete(f->db, running, f->err, sizeof f->err),
                   -EBUSY);
  assert_non_null(strstr(f->err, "running"));
  assert_int_equal(job_rows(f->db, running), before);
  assert_int_equal(db_job_delete(f->db, queued, f->err, sizeof f->err), -EBUSY);
  assert_non_null(strstr(f->err, "queued"));
  assert_int_equal(db_job_get(f->db, queued, &job, f->err, sizeof f->err), 0);
  db_job_deinit(&job);

  assert_int_equal(
      db_job_cancel_queued(f->db, cancelled, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_delete(f->db, cancelled, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_delete(f->db, 9999, f->err, sizeof f->err), -ENOENT);
}

/* ---- Giving space back. ---- */

#define BIG_TRAIN 4000
#define BIG_CKPT (256 * 1024)

/* A finished job of BIG_TRAIN samples with two epochs of records, a
 * checkpoint of BIG_CKPT bytes and events: a few hundred KiB. */
static int64_t big_job_store(db_t *db) {
  static int32_t idx[BIG_TRAIN], pos[BIG_TRAIN];
  static uint8_t split[BIG_TRAIN], lab[BIG_TRAIN], easy[BIG_TRAIN];
  static float v[BIG_TRAIN];
  db_split_t s = {BIG_TRAIN, idx, split, pos, lab, lab};
  db_records_t rec = {BIG_TRAIN, v, v, v, easy, v, lab};
  char err[256] = "";
  int64_t job = job_new(db, "big");

  for (int i = 0; i < BIG_TRAIN; i++) {
    idx[i] = pos[i] = i;
    lab[i] = (uint8_t)(i % 10);
    easy[i] = i % 2;
    v[i] = (float)i;
  }
  assert_int_equal(db_split_insert(db, job, &s, err, sizeof err), 0);
  for (int e = 1; e <= 2; e++) {
    db_metrics_t m = {.stage = "spl", .epoch = e};
    assert_int_equal(db_epoch_insert(db, job, &m, &rec, err, sizeof err), 0);
  }
  ckpt_put(db, job, "spl", "latest", 2, BIG_CKPT, 5);
  for (int i = 0; i < 50; i++)
    event_add(db, job, "tick", "{\"padding\": \"0123456789abcdef\"}");
  assert_int_equal(db_job_start(db, job, NULL, err, sizeof err), 0);
  assert_int_equal(db_job_finish(db, job, "succeeded", NULL, err, sizeof err),
                   0);
  return job;
}

/* The size of the main file once the WAL is written back into it. */
static long file_size(db_t *db, const char *path) {
  struct stat sb;

  conn_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  assert_int_equal(stat(path, &sb), 0);
  return (long)sb.st_size;
}

static void test_delete_gives_space_back(void **state) {
  fixture_t *f = *state;
  long page = (long)conn_query(f->db, "PRAGMA page_size");
  long empty = 0, full = 0, size;

  for (int cycle = 0; cycle < 12; cycle++) {
    int64_t job = big_job_store(f->db);
    size = file_size(f->db, f->path);
    if (cycle == 0)
      full = size;
    assert_int_equal(db_job_delete(f->db, job, f->err, sizeof f->err), 0);
    assert_int_equal(conn_query(f->db, "PRAGMA freelist_count"), 0);
    size = file_size(f->db, f->path);
    if (cycle == 0)
      empty = size;

    /* Each cycle ends where the first did, give or take a few pages. */
    assert_true(size <= empty + 4 * page);
  }

  /* The job really took room, and deleting it gave the room back. */
  assert_true(full > empty + BIG_CKPT);
  assert_true(empty < 64 * page);
}

/* A file made before auto_vacuum = INCREMENTAL, held open by another
 * connection: db_open leaves it alone, the next lone open converts it. */
static void test_open_converts_old_file(void **state) {
  fixture_t *f = *state;
  sqlite3 *other = NULL;

  db_close(f->db);
  f->db = NULL;
  db_files_remove(f->path);
  assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other,
                                "PRAGMA journal_mode=WAL;"
                                "CREATE TABLE keep (x);"
                                "INSERT INTO keep VALUES (42);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  assert_int_equal(raw_query(f->path, "PRAGMA auto_vacuum"), 0);

  /* While other has the file open, opening works but converts nothing. */
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(conn_query(f->db, "PRAGMA auto_vacuum"), 0);
  assert_int_equal(db_schema_version(f->db), SCHEMA_VERSION);
  job_new(f->db, "during");
  db_close(f->db);
  f->db = NULL;
  sqlite3_close(other);

  /* Alone, it converts, keeping every row. */
  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(conn_query(f->db, "PRAGMA auto_vacuum"), 2);
  assert_int_equal(conn_query(f->db, "SELECT x FROM keep"), 42);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM jobs"), 1);
  job_new(f->db, "after");
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM jobs"), 2);
}

/* A file an old program left in rollback-journal mode: the open that
 * switches it to WAL converts it too, and leaves it open to others. */
static void test_open_converts_journal_file(void **state) {
  fixture_t *f = *state;
  sqlite3 *other = NULL;

  db_close(f->db);
  f->db = NULL;
  db_files_remove(f->path);
  assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other,
                                "CREATE TABLE keep (x);"
                                "INSERT INTO keep VALUES (7);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(other);

  assert_int_equal(db_open(f->path, &f->db, f->err, sizeof f->err), 0);
  assert_int_equal(conn_query(f->db, "PRAGMA auto_vacuum"), 2);
  job_new(f->db, "mine");

  /* Another connection reads and writes while f->db stays open. */
  assert_int_equal(raw_query(f->path, "SELECT x FROM keep"), 7);
  assert_int_equal(raw_query(f->path, "SELECT count(*) FROM jobs"), 1);
  raw_query(f->path, "INSERT INTO keep VALUES (8)");
  assert_int_equal(conn_query(f->db, "SELECT sum(x) FROM keep"), 15);
}

/* ---- A full disk. ---- */

static void test_disk_full(void **state) {
  fixture_t *f = *state;
  int64_t job = small_job_store(f->db), seq = 0, pages;
  db_checkpoint_info_t info = {"spl", "final", 3, 1 << 20, ""};
  uint8_t *big = bytes_new(1 << 20, 6);
  db_event_t *ev = NULL;
  db_sample_t s;
  char sql[64];
  int n = 0;

  ckpt_put(f->db, job, "spl", "latest", 3, 2000, 7);
  event_add(f->db, job, "epoch", "{\"epoch\": 3}");

  /* Room for a few more pages, not for a MiB. */
  pages = conn_query(f->db, "PRAGMA page_count");
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
           (long long)pages + 4);
  conn_exec(f->db, sql);
  assert_int_equal(
      db_checkpoint_put(f->db, job, &info, big, f->err, sizeof f->err),
      -ENOSPC);
  assert_non_null(strstr(f->err, "full"));
  assert_non_null(strstr(f->err, "final checkpoint"));

  /* Everything stored before reads back; small writes still fit. */
  ckpt_assert(f->db, job, "spl", "latest", 3, 2000, 7);
  assert_int_equal(db_sample_get(f->db, job, 41, &s, f->err, sizeof f->err), 0);
  assert_int_equal(s.n_epochs, 3);
  assert_true(s.epochs[2].loss == 0.25f * 9);
  db_sample_deinit(&s);
  assert_int_equal(
      db_event_append(f->db, job, "full", "{}", &seq, f->err, sizeof f->err),
      0);
  assert_int_equal(
      db_event_list(f->db, job, 0, 10, &ev, &n, f->err, sizeof f->err), 0);
  assert_int_equal(n, 1 + 3 + 2); /* queued, 3 epochs, the two added */
  assert_true(ev[n - 1].seq == seq);
  db_events_free(ev, n);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM checkpoints"), 1);

  /* With room again, the same write succeeds. */
  conn_exec(f->db, "PRAGMA max_page_count = 1073741823");
  assert_int_equal(
      db_checkpoint_put(f->db, job, &info, big, f->err, sizeof f->err), 0);
  ckpt_assert(f->db, job, "spl", "final", 3, 1 << 20, 6);
  free(big);
}

/* A transaction that runs out of room stores none of its rows: the
 * samples take about a MiB, the room left is two pages. */
#define FULL_SAMPLES 100000

static void test_disk_full_rolls_back(void **state) {
  fixture_t *f = *state;
  static int32_t idx[FULL_SAMPLES], pos[FULL_SAMPLES];
  static uint8_t split[FULL_SAMPLES], lab[FULL_SAMPLES];
  db_split_t s = {FULL_SAMPLES, idx, split, pos, lab, lab};
  int64_t job = job_new(f->db, "full"), pages;
  char sql[64];

  for (int i = 0; i < FULL_SAMPLES; i++)
    idx[i] = pos[i] = i;
  pages = conn_query(f->db, "PRAGMA page_count");
  assert_true(conn_query(f->db, "PRAGMA page_size") * 2 < 1000000);
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
           (long long)pages + 2);
  conn_exec(f->db, sql);
  assert_int_equal(db_split_insert(f->db, job, &s, f->err, sizeof f->err),
                   -ENOSPC);
  assert_non_null(strstr(f->err, "full"));
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM job_samples"), 0);
  assert_int_equal(conn_query(f->db, "SELECT count(*) FROM jobs"), 1);

  /* The connection is still good for what fits. */
  assert_int_equal(
      db_job_label_set(f->db, job, 1, "still", f->err, sizeof f->err), 0);
}

/* ---- Readers while a writer commits. ---- */

#define WRITES 150

typedef struct {
  const char *path;
  int64_t job;
  atomic_int reader_ready, writer_done;
  int writer_rc, reader_rc; /* first failure, 0 if none */
  char writer_err[256], reader_err[256];
  int64_t after;    /* the job's first state event */
  int reads;        /* passes the reader made */
  int final_events; /* what its last pass saw */
  int final_epoch;
} race_t;

static void *race_write(void *arg) {
  race_t *r = arg;
  char data[32];
  db_t *db = NULL;
  int rc;

  rc = db_open(r->path, &db, r->writer_err, sizeof r->writer_err);
  while (!rc && !atomic_load(&r->reader_ready))
    sched_yield();
  for (int i = 1; !rc && i <= WRITES; i++) {
    db_checkpoint_info_t info = {"spl", "latest", i, 1000 + (size_t)i, ""};
    uint8_t b[1000 + WRITES];
    memset(b, i & 0xff, sizeof b);
    snprintf(data, sizeof data, "{\"i\": %d}", i);
    rc = db_event_append(db, r->job, "tick", data, NULL, r->writer_err,
                         sizeof r->writer_err);
    if (!rc)
      rc = db_checkpoint_put(db, r->job, &info, b, r->writer_err,
                             sizeof r->writer_err);
  }
  r->writer_rc = rc;
  db_close(db);
  atomic_store(&r->writer_done, 1);
  return NULL;
}

/* One pass: the events must be the first ones in order, the checkpoint
 * a whole one (its size and every byte from the same epoch), neither
 * older than the last pass saw. */
static int race_read_once(db_t *db, race_t *r) {
  db_event_t *ev = NULL;
  db_checkpoint_t c;
  char want[32];
  int n = 0, rc;

  rc = db_event_list(db, r->job, r->after, WRITES + 10, &ev, &n,
                     r->reader_err, sizeof r->reader_err);
  if (!rc && n < r->final_events)
    rc = -EILSEQ;
  for (int i = 0; !rc && i < n; i++) {
    snprintf(want, sizeof want, "{\"i\": %d}", i + 1);
    if (strcmp(ev[i].data_json, want) != 0)
      rc = -EILSEQ;
  }
  db_events_free(ev, n);
  if (!rc)
    r->final_events = n;
  if (!rc)
    rc = db_checkpoint_get(db, r->job, "spl", "latest", &c, r->reader_err,
                           sizeof r->reader_err);
  if (rc == -ENOENT && r->final_epoch == 0)
    return 0;
  if (rc)
    return rc;
  for (size_t i = 0; i < c.info.size; i++)
    if (c.data[i] != (c.info.epoch & 0xff))
      rc = -EILSEQ;
  if (c.info.size != 1000 + (size_t)c.info.epoch ||
      c.info.epoch < r->final_epoch)
    rc = -EILSEQ;
  r->final_epoch = c.info.epoch;
  db_checkpoint_deinit(&c);
  return rc;
}

static void *race_read(void *arg) {
  race_t *r = arg;
  db_t *db = NULL;
  int rc, done = 0;

  rc = db_open(r->path, &db, r->reader_err, sizeof r->reader_err);
  atomic_store(&r->reader_ready, 1);

  /* A pass that starts after the writer finished sees everything. */
  while (!rc && !done) {
    done = atomic_load(&r->writer_done);
    rc = race_read_once(db, r);
    r->reads++;
  }
  r->reader_rc = rc;
  db_close(db);
  return NULL;
}

static void test_readers_while_writing(void **state) {
  fixture_t *f = *state;
  race_t r = {.path = f->path, .job = job_new(f->db, "race")};
  pthread_t w, rd;

  r.after = conn_query(f->db, "SELECT max(seq) FROM events");

  assert_int_equal(pthread_create(&rd, NULL, race_read, &r), 0);
  assert_int_equal(pthread_create(&w, NULL, race_write, &r), 0);
  pthread_join(w, NULL);
  pthread_join(rd, NULL);
  if (r.writer_rc)
    fail_msg("writer: %d %s", r.writer_rc, r.writer_err);
  if (r.reader_rc)
    fail_msg("reader: %d %s", r.reader_rc, r.reader_err);
  assert_int_equal(r.final_events, WRITES);
  assert_int_equal(r.final_epoch, WRITES);
  assert_true(r.reads >= 2);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_schema_version_6),
      TEST(test_checkpoint_round_trip),
      TEST(test_checkpoint_missing),
      TEST(test_checkpoint_list),
      TEST(test_checkpoint_refusals),
      TEST(test_event_round_trip),
      TEST(test_event_pages),
      TEST(test_event_refusals),
      TEST(test_epoch_changes),
      TEST(test_epoch_changes_pages),
      TEST(test_epoch_changes_missing),
      TEST(test_dynamics_sorted),
      TEST(test_dynamics_pages),
      TEST(test_dynamics_list_refusals),
      TEST(test_job_find),
      TEST(test_job_find_refusals),
      TEST(test_job_delete),
      TEST(test_job_delete_refuses_unfinished),
      TEST(test_delete_gives_space_back),
      TEST(test_open_converts_old_file),
      TEST(test_open_converts_journal_file),
      TEST(test_disk_full),
      TEST(test_disk_full_rolls_back),
      TEST(test_readers_while_writing),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
