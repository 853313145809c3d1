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
#include "../../storage/db_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define CALLS 40

typedef struct {
  char path[64];
  db_writer_t *w;
  db_t *reader;
  char err[256];
} fixture_t;

static void db_files_remove(const char *path) {
  static const char *const suffix[] = {"", "-wal", "-shm"};
  char name[96];

  for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(name, sizeof name, "%s%s", path, suffix[i]);
    unlink(name);
  }
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  int fd;

  if (!f)
    return -1;
  snprintf(f->path, sizeof f->path, "/tmp/spk-test-writer-XXXXXX");
  fd = mkstemp(f->path);
  if (fd < 0) {
    free(f);
    return -1;
  }
  close(fd);
  if (db_writer_new(f->path, &f->w, f->err, sizeof f->err) != 0 ||
      db_open(f->path, &f->reader, f->err, sizeof f->err) != 0) {
    db_writer_free(f->w);
    db_files_remove(f->path);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;

  db_writer_free(f->w);
  db_close(f->reader);
  db_files_remove(f->path);
  free(f);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_calls_from_many_threads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_nested_transactions_roll_back,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_database, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
