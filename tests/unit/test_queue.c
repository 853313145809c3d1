/* SPDX-License-Identifier: MIT */
/* Unit tests of the job queue's storage: the order db_job_next_queued
 * hands jobs out in (priority, then age), and idempotency keys
 * (db_idem_find, db_idem_insert): what they record, what they refuse and
 * that a deleted job takes its keys with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "dbfix.h"

typedef db_fixture_t fixture_t;

static int setup(void **state) {
  return db_fixture_setup(state, "queue");
}

static int teardown(void **state) {
  return db_fixture_teardown(state);
}

/* A hash of 64 hex digits, all of them c. */
static const char *hash_of(char c) {
  static char buf[2][65];
  static int turn;
  char *h = buf[turn++ % 2];

  memset(h, c, 64);
  h[64] = '\0';
  return h;
}

/* Inserts a queued job with priority; returns its id. */
static int64_t job_add(fixture_t *f, int priority) {
  int64_t id = 0;

  assert_int_equal(db_job_insert(f->db, "q", "{}", &id, f->err, sizeof f->err),
                   0);
  if (priority != 0)
    assert_int_equal(
        db_job_label_set(f->db, id, priority, NULL, f->err, sizeof f->err), 0);
  return id;
}

/* The job db_job_next_queued names, started so the next call moves on. */
static int64_t next_start(fixture_t *f) {
  int64_t id = -1;

  assert_int_equal(db_job_next_queued(f->db, &id, f->err, sizeof f->err), 0);
  if (id != 0)
    assert_int_equal(db_job_start(f->db, id, NULL, f->err, sizeof f->err), 0);
  return id;
}

static void test_next_queued_by_priority_then_age(void **state) {
  fixture_t *f = *state;
  int64_t low1 = job_add(f, -5), high1 = job_add(f, 10);
  int64_t normal = job_add(f, 0), high2 = job_add(f, 10);
  int64_t low2 = job_add(f, -5), gone = job_add(f, 100);

  /* A cancelled job never comes out, whatever its priority. */
  assert_int_equal(db_job_cancel_queued(f->db, gone, f->err, sizeof f->err), 0);
  assert_int_equal(next_start(f), high1);
  assert_int_equal(next_start(f), high2);
  assert_int_equal(next_start(f), normal);
  assert_int_equal(next_start(f), low1);
  assert_int_equal(next_start(f), low2);
  assert_int_equal(next_start(f), 0);
}

static void test_next_queued_sees_new_priority(void **state) {
  fixture_t *f = *state;
  int64_t first = job_add(f, 0), second = job_add(f, 0);

  /* A requeued job (its process died) takes its place by priority. */
  assert_int_equal(next_start(f), first);
  assert_int_equal(
      db_job_label_set(f->db, second, -1, NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_requeue(f->db, first, f->err, sizeof f->err), 0);
  assert_int_equal(next_start(f), first);
  assert_int_equal(next_start(f), second);
}

static void test_idem_records_and_finds(void **state) {
  fixture_t *f = *state;
  int64_t a = job_add(f, 0), b = job_add(f, 0), job = -1;
  char sha[65] = "x";

  assert_int_equal(db_idem_find(f->db, "k1", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, 0);
  assert_string_equal(sha, "");

  assert_int_equal(
      db_idem_insert(f->db, "k1", a, hash_of('a'), f->err, sizeof f->err), 0);
  assert_int_equal(
      db_idem_insert(f->db, "k2", b, hash_of('b'), f->err, sizeof f->err), 0);
  assert_int_equal(db_idem_find(f->db, "k1", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, a);
  assert_string_equal(sha, hash_of('a'));
  assert_int_equal(db_idem_find(f->db, "k2", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, b);
  assert_string_equal(sha, hash_of('b'));

  /* Keys are compared exactly: case matters. */
  assert_int_equal(db_idem_find(f->db, "K1", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, 0);
}

static void test_idem_refuses(void **state) {
  fixture_t *f = *state;
  int64_t a = job_add(f, 0), job = -1;
  char key[DB_IDEM_KEY_MAX + 2], sha[65];

  assert_int_equal(
      db_idem_insert(f->db, "k", a, hash_of('1'), f->err, sizeof f->err), 0);
  /* A key is taken once, even for the same job and hash. */
  assert_int_equal(
      db_idem_insert(f->db, "k", a, hash_of('1'), f->err, sizeof f->err),
      -EEXIST);
  assert_non_null(strstr(f->err, "taken"));
  assert_int_equal(db_idem_insert(f->db, "other", a + 1, hash_of('1'), f->err,
                                  sizeof f->err),
                   -ENOENT);

  /* Hashes are 64 lowercase hex digits; keys 1 to DB_IDEM_KEY_MAX bytes. */
  assert_int_equal(db_idem_insert(f->db, "h", a, "abc", f->err, sizeof f->err),
                   -EINVAL);
  assert_int_equal(
      db_idem_insert(f->db, "h", a, hash_of('A'), f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(
      db_idem_insert(f->db, "", a, hash_of('1'), f->err, sizeof f->err),
      -EINVAL);
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  assert_int_equal(
      db_idem_insert(f->db, key, a, hash_of('1'), f->err, sizeof f->err),
      -EINVAL);
  assert_int_equal(db_idem_find(f->db, key, &job, sha, f->err, sizeof f->err),
                   -EINVAL);
  key[DB_IDEM_KEY_MAX] = '\0';
  assert_int_equal(
      db_idem_insert(f->db, key, a, hash_of('2'), f->err, sizeof f->err), 0);
  assert_int_equal(db_idem_find(f->db, key, &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, a);
}

static void test_idem_goes_with_its_job(void **state) {
  fixture_t *f = *state;
  int64_t a = job_add(f, 0), b = job_add(f, 0), job = -1;
  char sha[65];

  assert_int_equal(
      db_idem_insert(f->db, "ka", a, hash_of('a'), f->err, sizeof f->err), 0);
  assert_int_equal(
      db_idem_insert(f->db, "kb", b, hash_of('b'), f->err, sizeof f->err), 0);
  assert_int_equal(db_job_cancel_queued(f->db, a, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_delete(f->db, a, f->err, sizeof f->err), 0);

  assert_int_equal(db_idem_find(f->db, "ka", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, 0);
  assert_int_equal(db_idem_find(f->db, "kb", &job, sha, f->err, sizeof f->err),
                   0);
  assert_int_equal(job, b);

  /* The key is free again, for a new job. */
  job = job_add(f, 0);
  assert_true(job > b);
  assert_int_equal(
      db_idem_insert(f->db, "ka", job, hash_of('c'), f->err, sizeof f->err), 0);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_next_queued_by_priority_then_age),
      TEST(test_next_queued_sees_new_priority),
      TEST(test_idem_records_and_finds),
      TEST(test_idem_refuses),
      TEST(test_idem_goes_with_its_job),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
