/* SPDX-License-Identifier: MIT */
/* Unit tests of what feeds the live event streams: the writer's commit
 * hook (storage/db_writer.c) runs once per committed batch, after the
 * batch is visible to other connections, and can be replaced or
 * removed; the hub (server/hub.c) keeps the latest events in a bounded
 * ring, in order, and says when it no longer reaches back far enough;
 * it links a waiter only when nothing it waits for happened since the
 * reader looked, wakes a waiter only for events of its job, once per
 * event, heartbeat, (re)start or close, lets no one wait once closed,
 * and on closing waits for its readers to go. */
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
  hub_t *hub;        /* fed by publish_commit */
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
    assert_int_equal(db_writer_call(f->fix.w, insert_run, &id, f->fix.err,
                                    sizeof f->fix.err),
                     0);
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
  assert_int_equal(
      db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
      0);
  db_writer_on_commit(f->fix.w, other_commit, &other);
  assert_int_equal(
      db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
      0);
  db_writer_on_commit(f->fix.w, NULL, NULL);
  assert_int_equal(
      db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
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

/* An event of job numbered seq whose data says which it is. */
static db_event_t event_make(int64_t seq, int64_t job) {
  db_event_t e = {seq, job, 0.0, NULL, NULL};
  char data[64];

  snprintf(data, sizeof data, "{\"seq\": %lld}", (long long)seq);
  e.kind = strdup("log");
  e.data_json = strdup(data);
  assert_non_null(e.kind);
  assert_non_null(e.data_json);
  return e;
}

/* Hands the hub one event, as the commit hook does. */
static void publish_one(hub_t *h, int64_t seq, int64_t job) {
  db_event_t e = event_make(seq, job);

  hub_events_publish(h, &e, 1);
  free(e.kind); /* NULL when it moved into the ring */
  free(e.data_json);
}

/* A hub whose ring is started at seq 0 and has no heartbeat. */
static hub_t *hub_started(void) {
  hub_t *h = NULL;

  assert_int_equal(hub_new(0, &h), 0);
  assert_int_equal(hub_events_last(h), -1);
  hub_events_start(h, 0);
  assert_int_equal(hub_events_last(h), 0);
  return h;
}

/* Sleeps once when nothing happened since the mark; one event of its
 * job wakes it once and unlinks it, so the next event does not. */
static void test_wait_and_publish(void **state) {
  hub_t *h = hub_started();
  hub_mark_t m;
  probe_t p;

  (void)state;
  probe_init(&p);
  p.w.job = 1;
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  assert_int_equal(p.sleeps, 1);
  assert_int_equal(hub_wait(h, &p.w, &m), -EALREADY);
  assert_int_equal(p.wakes, 0);

  publish_one(h, 1, 1);
  assert_int_equal(p.wakes, 1);
  assert_false(p.w.linked);
  publish_one(h, 2, 1);
  assert_int_equal(p.wakes, 1);

  /* The mark taken before those events is stale: look again. */
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  assert_int_equal(p.sleeps, 1);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_true(m.seq == 2 && m.beats == 0);
  hub_free(h);
  probe_deinit(&p);
}

/* A waiter of job 1 is not woken by events of job 2, nor told to look
 * again by them; the waiter of job 2 is, and one of no job (0) wakes
 * for either. */
static void test_wake_per_job(void **state) {
  hub_t *h = hub_started();
  hub_mark_t m;
  probe_t a, b, any;

  (void)state;
  probe_init(&a);
  probe_init(&b);
  probe_init(&any);
  a.w.job = 1;
  b.w.job = 2;
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &b.w, &m), 0);
  assert_int_equal(hub_wait(h, &any.w, &m), 0);
  publish_one(h, 1, 2);
  assert_int_equal(b.wakes, 1);
  assert_int_equal(any.wakes, 1);

  /* An event of job 2 after the mark is no news to job 1's waiter. */
  assert_int_equal(hub_wait(h, &a.w, &m), 0);
  assert_int_equal(hub_wait(h, &b.w, &m), 1);
  publish_one(h, 2, 2);
  publish_one(h, 3, 3);
  assert_int_equal(a.wakes, 0);
  assert_true(a.w.linked);
  publish_one(h, 4, 1);
  assert_int_equal(a.wakes, 1);
  assert_false(a.w.linked);
  assert_int_equal(b.wakes, 1);
  hub_free(h);
  probe_deinit(&a);
  probe_deinit(&b);
  probe_deinit(&any);
}

/* Several waiters of a job: one event wakes them all; one whose reader
 * was removed is not woken. */
static void test_leave(void **state) {
  hub_t *h = hub_started();
  hub_mark_t m;
  probe_t p[3];

  (void)state;
  assert_int_equal(hub_mark(h, &m), 0);
  for (int i = 0; i < 3; i++) {
    probe_init(&p[i]);
    p[i].w.job = 7;
    hub_reader_add(h);
    assert_int_equal(hub_wait(h, &p[i].w, &m), 0);
  }
  hub_reader_remove(h, &p[1].w);
  assert_false(p[1].w.linked);
  publish_one(h, 1, 7);
  assert_int_equal(p[0].wakes, 1);
  assert_int_equal(p[1].wakes, 0);
  assert_int_equal(p[2].wakes, 1);
  hub_reader_remove(h, &p[0].w); /* no longer waiting: only counted out */
  hub_reader_remove(h, &p[2].w);
  hub_free(h);
  for (int i = 0; i < 3; i++)
    probe_deinit(&p[i]);
}

/* Reads job's events after after, max at a time, checking what the
 * ring said against want[0, nwant) and returning the last upto. */
static int64_t ring_expect(hub_t *h, int64_t job, int64_t after, int max,
                           const int64_t *want, int nwant) {
  int got = 0;
  int64_t upto = after;

  while (got < nwant) {
    db_event_t *ev = NULL;
    int n = -1;
    assert_int_equal(hub_events_read(h, job, upto, max, &ev, &n, &upto), 0);
    assert_true(n > 0 && n <= max && got + n <= nwant);
    for (int i = 0; i < n; i++, got++) {
      char data[64];
      snprintf(data, sizeof data, "{\"seq\": %lld}", (long long)want[got]);
      assert_int_equal(ev[i].seq, want[got]);
      assert_int_equal(ev[i].job, job);
      assert_string_equal(ev[i].kind, "log");
      assert_string_equal(ev[i].data_json, data);
    }
    assert_true(upto >= ev[n - 1].seq);
    db_events_free(ev, n);
  }
  return upto;
}

/* The ring hands a job's events back in seq order, those of other jobs
 * left out, a few at a time; it skips events handed in twice. */
static void test_ring_order(void **state) {
  static const int64_t job1[] = {1, 3, 4, 7, 9, 10, 12};
  static const int64_t job2[] = {2, 5, 6, 8, 11};
  hub_t *h = hub_started();
  db_event_t batch[12];
  db_event_t *ev = (db_event_t *)1;
  int64_t upto;
  int n = -1, k = 0;

  (void)state;
  for (int i = 0; i < 7; i++)
    batch[k++] = event_make(job1[i], 1);
  for (int i = 0; i < 5; i++)
    batch[k++] = event_make(job2[i], 2);
  /* One batch of the log's next events, in seq order. */
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++)
      if (batch[j].seq < batch[i].seq) {
        db_event_t t = batch[i];
        batch[i] = batch[j];
        batch[j] = t;
      }
  hub_events_publish(h, batch, k);
  for (int i = 0; i < k; i++)
    assert_null(batch[i].data_json);
  assert_int_equal(hub_events_last(h), 12);

  assert_int_equal(ring_expect(h, 1, 0, 100, job1, 7), 12);
  assert_int_equal(ring_expect(h, 2, 0, 2, job2, 5), 12);
  assert_int_equal(ring_expect(h, 1, 4, 3, job1 + 3, 4), 12);

  /* Nothing new: no events, and looked through to the end. */
  assert_int_equal(hub_events_read(h, 1, 12, 10, &ev, &n, &upto), 0);
  assert_true(ev == NULL && n == 0 && upto == 12);
  assert_int_equal(hub_events_read(h, 3, 0, 10, &ev, &n, &upto), 0);
  assert_true(ev == NULL && n == 0 && upto == 12);

  /* An event handed in again changes nothing. */
  publish_one(h, 9, 1);
  publish_one(h, 13, 2);
  assert_int_equal(hub_events_last(h), 13);
  assert_int_equal(ring_expect(h, 1, 0, 100, job1, 7), 13);
  hub_free(h);
}

/* Past HUB_RING_EVENTS the oldest events go, and a read from before
 * them is refused (the stream reads the database instead); so is one
 * of a mark taken before them. */
static void test_ring_overflow(void **state) {
  const int extra = 10, total = HUB_RING_EVENTS + extra;
  hub_t *h = hub_started();
  int64_t *want = calloc(total, sizeof *want);
  db_event_t *ev = NULL;
  hub_mark_t m;
  int64_t upto;
  probe_t p;
  int n = 0;

  (void)state;
  assert_non_null(want);
  probe_init(&p);
  p.w.job = 1;
  assert_int_equal(hub_mark(h, &m), 0);
  for (int i = 1; i <= total; i++)
    publish_one(h, i, i % 2 ? 1 : 2);
  assert_int_equal(hub_events_read(h, 1, 0, 10, &ev, &n, &upto), -ERANGE);
  assert_int_equal(hub_events_read(h, 2, extra - 1, 10, &ev, &n, &upto),
                   -ERANGE);
  assert_true(ev == NULL && n == 0);

  /* From the oldest event kept on, all of them, in order. */
  n = 0;
  for (int64_t seq = extra + 1; seq <= total; seq++)
    if (seq % 2)
      want[n++] = seq;
  assert_int_equal(ring_expect(h, 1, extra, 1000, want, n), total);

  /* Events of another job were dropped after the mark: look again. */
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  hub_free(h);
  probe_deinit(&p);
  free(want);
}

/* Past HUB_RING_BYTES of text the oldest events go too, but the newest
 * always stays, however large. */
static void test_ring_bytes(void **state) {
  const size_t big = HUB_RING_BYTES / 4;
  hub_t *h = hub_started();
  db_event_t *ev = NULL;
  int64_t upto;
  int n = 0;

  (void)state;
  for (int i = 1; i <= 5; i++) {
    db_event_t e = event_make(i, 1);
    size_t len = big + (i == 5 ? HUB_RING_BYTES : 0);
    char *data = realloc(e.data_json, len + 1);
    assert_non_null(data);
    memset(data, ' ', len);
    data[0] = '1';
    data[len] = '\0';
    e.data_json = data;
    hub_events_publish(h, &e, 1);
    if (i == 4) { /* three fit, the first went */
      assert_int_equal(hub_events_read(h, 1, 0, 10, &ev, &n, &upto), -ERANGE);
      assert_int_equal(hub_events_read(h, 1, 1, 10, &ev, &n, &upto), 0);
      assert_int_equal(n, 3);
      assert_int_equal(ev[0].seq, 2);
      assert_int_equal(strlen(ev[2].data_json), big);
      db_events_free(ev, n);
    }
  }
  assert_int_equal(hub_events_read(h, 1, 3, 10, &ev, &n, &upto), -ERANGE);
  assert_int_equal(hub_events_read(h, 1, 4, 10, &ev, &n, &upto), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ev[0].seq, 5);
  db_events_free(ev, n);
  hub_free(h);
}

/* Before its start the ring answers no read and takes no event; its
 * start and its stop wake every waiter and make every mark stale. */
static void test_ring_start_stop(void **state) {
  hub_t *h = NULL;
  db_event_t *ev = NULL;
  hub_mark_t m;
  int64_t upto;
  probe_t p;
  int n = 0;

  (void)state;
  probe_init(&p);
  p.w.job = 1;
  assert_int_equal(hub_new(0, &h), 0);
  publish_one(h, 1, 1);
  assert_int_equal(hub_events_last(h), -1);
  assert_int_equal(hub_events_read(h, 1, 0, 10, &ev, &n, &upto), -ERANGE);
  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(m.seq, -1);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);

  hub_events_start(h, 5);
  assert_int_equal(p.wakes, 1);
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  assert_int_equal(hub_events_read(h, 1, 4, 10, &ev, &n, &upto), -ERANGE);
  assert_int_equal(hub_events_read(h, 1, 5, 10, &ev, &n, &upto), 0);
  assert_true(n == 0 && upto == 5);
  publish_one(h, 6, 1);
  assert_int_equal(ring_expect(h, 1, 5, 10, (const int64_t[]){6}, 1), 6);

  assert_int_equal(hub_mark(h, &m), 0);
  assert_int_equal(hub_wait(h, &p.w, &m), 0);
  hub_events_stop(h);
  assert_int_equal(p.wakes, 2);
  assert_int_equal(hub_events_last(h), -1);
  assert_int_equal(hub_events_read(h, 1, 5, 10, &ev, &n, &upto), -ERANGE);
  assert_int_equal(hub_wait(h, &p.w, &m), 1);
  hub_free(h);
  probe_deinit(&p);
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
    assert_true(after.seq == -1); /* no ring: only beats */
  }
  hub_free(h);
  probe_deinit(&p);
}

/* The daemon's wiring (runner.c): after every commit the hook reads
 * the events stored since the ring's last and hands them in. */
static void publish_commit(void *ctx) {
  writer_fixture_t *f = ctx;
  db_event_t *ev = NULL;
  int n = 0;

  assert_int_equal(db_event_list(f->fix.reader, 0, hub_events_last(f->hub), 100,
                                 &ev, &n, f->fix.err, sizeof f->fix.err),
                   0);
  hub_events_publish(f->hub, ev, n);
  db_events_free(ev, n);
}

/* A commit wakes the waiter of the job it stored an event of, before
 * the call returns, and not the waiter of another job; the event is in
 * the ring. The ring starts at the log's last event. */
static void test_commit_wakes_waiter(void **state) {
  writer_fixture_t *f = *state;
  db_event_t *ev = NULL;
  int64_t id = 0, last = -1, upto;
  hub_mark_t m;
  probe_t p, other;
  int n = 0;

  probe_init(&p);
  probe_init(&other);
  assert_int_equal(hub_new(0, &f->hub), 0);
  assert_int_equal(
      db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
      0);
  assert_int_equal(
      db_event_last(f->fix.reader, &last, f->fix.err, sizeof f->fix.err), 0);
  assert_true(last > 0);
  hub_events_start(f->hub, last);
  db_writer_on_commit(f->fix.w, publish_commit, f);

  p.w.job = id + 1; /* the next job's */
  other.w.job = id;
  assert_int_equal(hub_mark(f->hub, &m), 0);
  assert_int_equal(hub_wait(f->hub, &p.w, &m), 0);
  assert_int_equal(hub_wait(f->hub, &other.w, &m), 0);
  assert_int_equal(
      db_writer_call(f->fix.w, insert_run, &id, f->fix.err, sizeof f->fix.err),
      0);
  assert_int_equal(id, p.w.job);
  assert_int_equal(p.wakes, 1); /* before the call returned */
  assert_int_equal(other.wakes, 0);
  assert_int_equal(hub_wait(f->hub, &p.w, &m), 1);

  assert_int_equal(hub_events_read(f->hub, id, last, 10, &ev, &n, &upto), 0);
  assert_int_equal(n, 1);
  assert_true(ev[0].seq > last && ev[0].job == id);
  assert_string_equal(ev[0].kind, "state");
  assert_int_equal(upto, hub_events_last(f->hub));
  db_events_free(ev, n);
  db_writer_on_commit(f->fix.w, NULL, NULL);
  hub_free(f->hub); /* wakes other */
  probe_deinit(&p);
  probe_deinit(&other);
}

#define WTEST(fn)                                                              \
  cmocka_unit_test_setup_teardown(fn, writer_setup, writer_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      WTEST(test_hook_after_each_commit),
      WTEST(test_hook_replaced_and_removed),
      cmocka_unit_test(test_wait_and_publish),
      cmocka_unit_test(test_wake_per_job),
      cmocka_unit_test(test_leave),
      cmocka_unit_test(test_ring_order),
      cmocka_unit_test(test_ring_overflow),
      cmocka_unit_test(test_ring_bytes),
      cmocka_unit_test(test_ring_start_stop),
      cmocka_unit_test(test_close),
      cmocka_unit_test(test_close_waits_for_readers),
      cmocka_unit_test(test_heartbeat),
      WTEST(test_commit_wakes_waiter),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
