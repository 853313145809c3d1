/* SPDX-License-Identifier: MIT */
/* Unit tests of the writer thread (storage/db_writer.c): calls from many
 * threads all land, a failing call is rolled back alone while the rest of
 * its batch commits, storage transactions nest inside a batch, and a full
 * database fails the calls whose work was lost with -ENOSPC. The tests
 * reach the connection inside a db_t (db_internal.h) only to shrink the
 * database's page limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../storage/db.h"
#include "dbfix.h"
#include "../../storage/db_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 8
#define CALLS 40

typedef writer_fix_t fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);

  if (!f || writer_fix_open(f, "writer") != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  writer_fix_close(*state);
  free(*state);
  return 0;
}

/* A job insert as a writer call. */
typedef struct {
  const char *name;
  int64_t id;
} insert_t;

static int insert_run(db_t *db, void *ctx, char *err, size_t errlen) {
  insert_t *in = ctx;
  return db_job_insert(db, in->name, "{}", &in->id, err, errlen);
}

/* Inserts a job, then fails: its insert must be rolled back. */
static int insert_then_fail(db_t *db, void *ctx, char *err, size_t errlen) {
  insert_t *in = ctx;
  int rc = db_job_insert(db, in->name, "{}", &in->id, err, errlen);

  if (rc)
    return rc;
  snprintf(err, errlen, "failed on purpose after job %lld",
           (long long)in->id);
  return -EPERM;
}

static int64_t job_count(fixture_t *f, const char *name) {
  db_job_t *jobs = NULL;
  int64_t n = 0;
  int count = 0;

  assert_int_equal(
      db_job_list(f->reader, 0, 1000, &jobs, &count, f->err, sizeof f->err),
      0);
  for (int i = 0; i < count; i++)
    n += !name || (jobs[i].name && strcmp(jobs[i].name, name) == 0);
  db_jobs_free(jobs, count);
  return n;
}

typedef struct {
  fixture_t *f;
  int fails; /* 1: every other call fails on purpose */
  int64_t ids[CALLS];
  int rcs[CALLS];
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  char err[256];

  for (int i = 0; i < CALLS; i++) {
    insert_t in = {w->fails && i % 2 ? "doomed" : "kept", 0};
    w->rcs[i] = db_writer_call(w->f->w,
                               w->fails && i % 2 ? insert_then_fail
                                                 : insert_run,
                               &in, err, sizeof err);
    w->ids[i] = in.id;
  }
  return NULL;
}

/* Many threads at once: every call returns its own result; the failing
 * ones leave nothing, the others are all stored with distinct ids, even
 * though calls share batches. */
static void test_calls_from_many_threads(void **state) {
  fixture_t *f = *state;
  pthread_t t[THREADS];
  worker_t w[THREADS];
  int kept = 0;

  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker_t){f, i % 2, {0}, {0}};
    assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < THREADS; i++)
    for (int k = 0; k < CALLS; k++) {
      int doomed = w[i].fails && k % 2;
      assert_int_equal(w[i].rcs[k], doomed ? -EPERM : 0);
      kept += !doomed;
      if (!doomed)
        assert_true(w[i].ids[k] > 0);
    }
  assert_int_equal(job_count(f, "kept"), kept);
  assert_int_equal(job_count(f, "doomed"), 0);
}

/* A call that uses storage functions with their own transactions (they
 * nest as savepoints) and fails halfway leaves none of its writes. */
static int two_then_fail(db_t *db, void *ctx, char *err, size_t errlen) {
  int64_t id;

  (void)ctx;
  if (db_job_insert(db, "nested", "{}", &id, err, errlen) ||
      db_job_start(db, id, NULL, err, errlen))
    return -EIO;
  return db_job_finish(db, id + 1000, "succeeded", NULL, err, errlen);
}

static void test_nested_transactions_roll_back(void **state) {
  fixture_t *f = *state;
  insert_t in = {"after", 0};

  assert_true(db_writer_call(f->w, two_then_fail, NULL, f->err,
                             sizeof f->err) < 0);
  assert_int_equal(job_count(f, "nested"), 0);
  assert_int_equal(
      db_writer_call(f->w, insert_run, &in, f->err, sizeof f->err), 0);
  assert_int_equal(job_count(f, "after"), 1);
}

/* Shrinks the database's page limit to what it holds now. */
static int limit_pages(db_t *db, void *ctx, char *err, size_t errlen) {
  sqlite3_stmt *st;
  char sql[64];
  long long pages = 0;

  (void)ctx;
  (void)err;
  (void)errlen;
  if (sqlite3_prepare_v2(db->conn, "PRAGMA page_count", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    pages = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", pages);
  return sqlite3_exec(db->conn, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                    : -EIO;
}

/* A big checkpoint into a job. */
typedef struct {
  int64_t job;
  size_t size;
} big_t;

static int big_put(db_t *db, void *ctx, char *err, size_t errlen) {
  big_t *b = ctx;
  db_checkpoint_info_t info = {"spl", "latest", 1, b->size, ""};
  uint8_t *data = calloc(b->size, 1);
  int rc;

  if (!data)
    return -ENOMEM;
  rc = db_checkpoint_put(db, b->job, &info, data, err, errlen);
  free(data);
  return rc;
}

/* A full database fails the write that does not fit with -ENOSPC and a
 * message saying so; what was stored before stays readable and the
 * writer goes on writing what fits. */
static void test_full_database(void **state) {
  fixture_t *f = *state;
  insert_t in = {"before", 0};
  big_t big = {0, 8u << 20};

  assert_int_equal(
      db_writer_call(f->w, insert_run, &in, f->err, sizeof f->err), 0);
  big.job = in.id;
  assert_int_equal(
      db_writer_call(f->w, limit_pages, NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_writer_call(f->w, big_put, &big, f->err, sizeof f->err),
                   -ENOSPC);
  assert_non_null(strstr(f->err, "full"));
  assert_int_equal(job_count(f, "before"), 1);
  big.size = 16;
  assert_int_equal(db_writer_call(f->w, big_put, &big, f->err, sizeof f->err),
                   0);
}

/* A long job's epochs written while clients read its history. */
enum { LONG_N = 20000, LONG_EPOCHS = 150, READERS = 2 };

typedef struct {
  fixture_t *f;
  int64_t job;
  float *loss;
  uint8_t *easy;
  int epoch;
} epoch_write_t;

static int epoch_run(db_t *db, void *ctx, char *err, size_t errlen) {
  epoch_write_t *e = ctx;
  db_metrics_t m = {.stage = "spl", .epoch = e->epoch, .easy_size = LONG_N};
  db_records_t r = {LONG_N, e->loss, e->loss, e->loss, e->easy, e->loss,
                    e->easy};

  return db_epoch_insert(db, e->job, &m, &r, err, errlen);
}

static int split_run(db_t *db, void *ctx, char *err, size_t errlen) {
  const epoch_write_t *e = ctx;
  int32_t *index = malloc(sizeof(int32_t) * LONG_N);
  uint8_t *zero = calloc(LONG_N, 1);
  int rc = -ENOMEM;

  if (index && zero) {
    for (int i = 0; i < LONG_N; i++)
      index[i] = i;
    rc = db_split_insert(db, e->job,
                         &(db_split_t){LONG_N, index, zero, index, zero, zero},
                         err, errlen);
  }
  free(index);
  free(zero);
  return rc;
}

typedef struct {
  const char *path;
  int64_t job;
  _Atomic int *stop;
  long reads, torn;
  char err[256];
} reader_t;

/* Reads random samples' histories until told to stop: each must hold
 * epochs 1..k with nothing missing, whatever k the reader catches. */
static void *reader_main(void *arg) {
  reader_t *r = arg;
  db_t *db = NULL;
  unsigned seed = 7;

  if (db_open(r->path, &db, r->err, sizeof r->err) != 0)
    return NULL;
  while (!atomic_load(r->stop)) {
    db_sample_t s;
    int32_t index = (int32_t)(rand_r(&seed) % LONG_N);
    if (db_sample_get(db, r->job, index, &s, r->err, sizeof r->err) != 0) {
      r->torn++;
      break;
    }
    for (int e = 0; e < s.n_epochs; e++)
      r->torn += s.epochs[e].epoch != e + 1;
    db_sample_deinit(&s);
    r->reads++;
  }
  db_close(db);
  return NULL;
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Clients poll the history of a job while it writes epoch after epoch:
 * the write-ahead log stays bounded (its checkpoints are not starved by
 * the readers) and no reader sees a torn epoch. */
static void test_wal_bounded_under_readers(void **state) {
  fixture_t *f = *state;
  insert_t in = {"long", 0};
  epoch_write_t e = {f, 0, calloc(LONG_N, sizeof(float)), calloc(LONG_N, 1),
                     0};
  _Atomic int stop = 0;
  reader_t r[READERS];
  pthread_t t[READERS];
  char wal[96];
  long long wal_max = 0;

  assert_non_null(e.loss);
  assert_non_null(e.easy);
  assert_int_equal(
      db_writer_call(f->w, insert_run, &in, f->err, sizeof f->err), 0);
  e.job = in.id;
  assert_int_equal(db_writer_call(f->w, split_run, &e, f->err, sizeof f->err),
                   0);
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  for (int i = 0; i < READERS; i++) {
    r[i] = (reader_t){f->path, e.job, &stop, 0, 0, ""};
    assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
  }
  for (e.epoch = 1; e.epoch <= LONG_EPOCHS; e.epoch++) {
    for (int i = 0; i < LONG_N; i++)
      e.loss[i] = (float)(e.epoch + i % 7);
    assert_int_equal(
        db_writer_call(f->w, epoch_run, &e, f->err, sizeof f->err), 0);
    if (file_size(wal) > wal_max)
      wal_max = file_size(wal);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < READERS; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(r[i].torn, 0);
    assert_true(r[i].reads > 0);
  }
  /* 150 epochs of 20 000 records are about 28 MB; the log never holds
   * much more than the 8 MB at which the writer starts it over (57 MB
   * without that, as readers kept it from ever starting over). */
  assert_true(wal_max < (16ll << 20));
  free(e.loss);
  free(e.easy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_calls_from_many_threads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_nested_transactions_roll_back,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_database, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wal_bounded_under_readers, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
