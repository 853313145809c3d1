/* SPDX-License-Identifier: MIT */
/* Unit tests of what wakes the live event streams: the writer's commit
 * hook (storage/db_writer.c) runs once per committed batch, after the
 * batch is visible to other connections, and can be replaced or
 * removed; the hub (server/hub.c) links a waiter only when nothing
 * happened since the reader looked, wakes each waiter once per publish,
 * heartbeat or close, lets no one wait once closed, and on closing waits
 * for its readers to go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/hub.h"
#include "../../storage/db.h"
#include "dbfix.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define CALLS 25

/* ---- The writer's commit hook. ---- */

typedef struct {
  writer_fix_t fix; /* its reader is used by the hook only */
  atomic_int commits;
  int64_t jobs_seen; /* jobs the reader saw at the last commit */
} writer_fixture_t;

static int writer_setup(void **state) {
  writer_fixture_t *f = calloc(1, sizeof *f);

  if (!f || writer_fix_open(&f->fix, "hub") != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int writer_teardown(void **state) {
  writer_fixture_t *f = *state;

  writer_fix_close(&f->fix);
  free(f);
  return 0;
}

static int insert_run(db_t *db, void *ctx, char *err, size_t errlen) {
  int64_t *id = ctx;
  return db_job_insert(db, "hooked", "{}", id, err, errlen);
}

/* Counts commits and what another connection sees at each. */
static void count_commit(void *ctx) {
  writer_fixture_t *f = ctx;
  db_job_t *jobs = NULL;
  char err[256];
  int n = 0;

  if (db_job_list(f->fix.reader, 0, 1000, &jobs, &n, err, sizeof err) == 0)
    f->jobs_seen = n;
  db_jobs_free(jobs, n);
  atomic_fetch_add(&f->commits, 1);
}

/* One call at a time: each is its own batch, so each commits once, and
 * by the time the hook runs its job is there for every reader. */
static void test_hook_after_each_commit(void **state) {
  writer_fixture_t *f = *state;

  db_writer_on_commit(f->fix.w, count_commit, f);
  for (int i = 1; i <= CALLS; i++) {
    int64_t id = 0;
    assert_int_equal(
        db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err), 0);
    assert_int_equal(atomic_load(&f->commits), i);
    assert_int_equal(f->jobs_seen, i);
  }
}

/* A removed hook is not called any more; a new one replaces the old. */
static void other_commit(void *ctx) {
  atomic_int *n = ctx;
  atomic_fetch_add(n, 1);
}

static void test_hook_replaced_and_removed(void **state) {
  writer_fixture_t *f = *state;
  atomic_int other = 0;
  int64_t id;

  db_writer_on_commit(f->fix.w, count_commit, f);
  assert_int_equal(db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
                   0);
  db_writer_on_commit(f->fix.w, other_commit, &other);
  assert_int_equal(db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
                   0);
  db_writer_on_commit(f->fix.w, NULL, NULL);
  assert_int_equal(db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
                   0);
  assert_int_equal(atomic_load(&f->commits), 1);
  assert_int_equal(atomic_load(&other), 1);
}

/* ---- The hub. ---- */

/* A waiter that records its sleeps and wakes; wake signals cond. */
typedef struct {
  hub_waiter_t w;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int sleeps, wakes;
} probe_t;

static void probe_sleep(void *ctx) {
  probe_t *p = ctx;
  p->sleeps++; /* under the hub's lock, on the waiting thread */
}

static void probe_wake(void *ctx) {
  probe_t *p = ctx;

  pthread_mutex_lock(&p->lock);
  p->wakes++;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
}

static void probe_init(probe_t *p) {
  memset(p, 0, sizeof *p);
  p->w.sleep = probe_sleep;
  p->w.wake = probe_wake;
  p->w.ctx = p;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cond, NULL);
}

static void probe_deinit(probe_t *p) {
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cond);
}

/* Waits up to 5 s for the probe's wake count to reach n. */
static int probe_await(probe_t *p, int n) {
  struct timespec until;
  int wakes;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&p->lock);
  while (p->wakes < n &&
         pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
    ;
  wakes = p->wakes;
  pthread_mutex_unlock(&p->lock);
  return wakes;
}

/* Sleeps once when nothing happened since the mark; one publish wakes
 * it once and unlinks it, so the next publish does not. */
static void test_wait_and_publish(void **state) {
  hub_t *h = NULL;
  hub_mark_t m;
  probe_t p;

  (void)state;
  probe_init(&p);
  assert_int_equal(hub_new(0, &h), 0);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  assert_int_equal(p.sleeps, 1);
  assert_int_equal(hub_wait(h, &p.w, &m), -EALREADY);
  assert_int_equal(p.wakes, 0);

  hub_publish(h);
  assert_int_equal(p.wakes, 1);
  assert_false(p.w.linked);
  hub_publish(h);
  assert_int_equal(p.wakes, 1);

  /* The mark taken before those publishes is stale: look again. */
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  assert_int_equal(p.sleeps, 1);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_true(m.news == 2 && m.beats == 0);
  hub_free(h);
  probe_deinit(&p);
}

/* Several waiters: one publish wakes them all; one whose reader was
 * removed is not woken. */
static void test_leave(void **state) {
  hub_t *h = NULL;
  hub_mark_t m;
  probe_t p[3];

  (void)state;
  assert_int_equal(hub_new(0, &h), 0);
  assert_int_equal(hub_mark(h, &m), 0);
  for (int i = 0; i < 3; i++) {
    probe_init(&p[i]);
    hub_reader_add(h);
    assert_int_equal(hub_wait(h, &p[i].w, &m), 0);
  }
  hub_reader_remove(h, &p[1].w);
  assert_false(p[1].w.linked);
  hub_publish(h);
  assert_int_equal(p[0].wakes, 1);
  assert_int_equal(p[1].wakes, 0);
  assert_int_equal(p[2].wakes, 1);
  hub_reader_remove(h, &p[0].w); /* no longer waiting: only counted out */
  hub_reader_remove(h, &p[2].w);
  hub_free(h);
  for (int i = 0; i < 3; i++)
    probe_deinit(&p[i]);
}

/* Closing wakes every waiter and lets none wait again. */
static void test_close(void **state) {
  hub_t *h = NULL;
  hub_mark_t m;
  probe_t p;

  (void)state;
  probe_init(&p);
  assert_int_equal(hub_new(0, &h), 0);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  hub_close(h);
  assert_int_equal(p.wakes, 1);
  assert_int_equal(hub_mark(h, &m), -ESHUTDOWN);
  assert_int_equal(hub_wait(h, &p.w, &m), -ESHUTDOWN);
  assert_int_equal(p.sleeps, 1);
  hub_close(h);
  assert_int_equal(p.wakes, 1);
  hub_free(h);
  probe_deinit(&p);
}

/* A reader that ends 100 ms after the close was asked for. */
typedef struct {
  hub_t *h;
  probe_t *p;
} late_t;

static void *late_remove(void *arg) {
  late_t *l = arg;

  probe_await(l->p, 1);
  usleep(100 * 1000);
  hub_reader_remove(l->h, &l->p->w);
  return NULL;
}

static double now_s(void) {
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Closing waits for the woken readers to go, so streams end whole. */
static void test_close_waits_for_readers(void **state) {
  hub_t *h = NULL;
  hub_mark_t m;
  probe_t p;
  pthread_t t;
  late_t l;
  double t0;

  (void)state;
  probe_init(&p);
  assert_int_equal(hub_new(0, &h), 0);
  hub_reader_add(h);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  l = (late_t){h, &p};
  assert_int_equal(pthread_create(&t, NULL, late_remove, &l), 0);
  t0 = now_s();
  hub_close(h);
  assert_true(now_s() - t0 >= 0.09);
  assert_true(now_s() - t0 < HUB_CLOSE_WAIT_MS / 1000.0);
  assert_int_equal(p.wakes, 1);
  pthread_join(t, NULL);
  hub_free(h);
  probe_deinit(&p);
}

/* With an interval, the heartbeat wakes waiters and counts beats. */
static void test_heartbeat(void **state) {
  hub_t *h = NULL;
  hub_mark_t m, after;
  probe_t p;

  (void)state;
  assert_int_equal(hub_new(-1, &h), -EINVAL);
  assert_null(h);
  probe_init(&p);
  assert_int_equal(hub_new(20, &h), 0);
  for (int i = 1; i <= 3; i++) {
    int rc;
    do { /* a beat may come between the mark and the wait */
      assert_int_equal(hub_mark(h, &m), 0);
      rc = hub_wait(h, &p.w, &m);
    } while (rc == 1);
    assert_int_equal(rc, 0);
    assert_int_equal(probe_await(&p, i), i);
    assert_int_equal(hub_mark(h, &after), 0);
    assert_true(after.beats > m.beats);
    assert_true(after.news == 0);
  }
  hub_free(h);
  probe_deinit(&p);
}

/* The daemon's wiring: every commit publishes, which wakes a waiter. */
static void publish_commit(void *ctx) {
  hub_publish(ctx);
}

static void test_commit_wakes_waiter(void **state) {
  writer_fixture_t *f = *state;
  hub_t *h = NULL;
  hub_mark_t m;
  probe_t p;
  int64_t id;

  probe_init(&p);
  assert_int_equal(hub_new(0, &h), 0);
  db_writer_on_commit(f->fix.w, publish_commit, h);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  assert_int_equal(db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
                   0);
  assert_int_equal(p.wakes, 1); /* before the call returned */
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  db_writer_on_commit(f->fix.w, NULL, NULL);
  hub_free(h);
  probe_deinit(&p);
}

#define WTEST(fn)                                                              \
  cmocka_unit_test_setup_teardown(fn, writer_setup, writer_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      WTEST(test_hook_after_each_commit),
      WTEST(test_hook_replaced_and_removed),
      cmocka_unit_test(test_wait_and_publish),
      cmocka_unit_test(test_leave),
      cmocka_unit_test(test_close),
      cmocka_unit_test(test_close_waits_for_readers),
      cmocka_unit_test(test_heartbeat),
      WTEST(test_commit_wakes_waiter),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
