/* SPDX-License-Identifier: MIT */
/* Unit tests of the /metrics counters (server/metrics.c): label values
 * escaped as the Prometheus text format wants, cumulative histogram
 * buckets whose count and sum match what was observed, jobs counted by
 * state from a real database, exact counts from many threads at once,
 * and every family's HELP and TYPE written once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../server/metrics.h"
#include "../../server/version.h"
#include "dbfix.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define PER_THREAD 500

static int setup(void **state) {
  return db_fixture_setup(state, "metrics");
}

static int teardown(void **state) {
  return db_fixture_teardown(state);
}

/* Renders m over the fixture's database; the caller frees the text. */
static char *render(metrics_t *m, db_fixture_t *f) {
  char *text = NULL;

  assert_int_equal(metrics_render(m, f->db, &text, f->err, sizeof f->err), 0);
  assert_non_null(text);
  return text;
}

/* The value of the sample whose name and labels are exactly series, or
 * NAN when the text has no such line. */
static double sample_value(const char *text, const char *series) {
  size_t n = strlen(series), at = 0;

  while (text[at]) {
    if (strncmp(text + at, series, n) == 0 && text[at + n] == ' ')
      return strtod(text + at + n + 1, NULL);
    at += strcspn(text + at, "\n");
    at += text[at] == '\n';
  }
  return NAN;
}

/* How many times needle occurs in text. */
static int occurrences(const char *text, const char *needle) {
  size_t len = strlen(text), n = strlen(needle);
  int count = 0;

  for (size_t at = 0; at + n <= len; at++)
    count += memcmp(text + at, needle, n) == 0;
  return count;
}

static void test_label_escaping(void **state) {
  db_fixture_t *f = *state;
  static const char route[] = "/odd\"quote\\back\nline";
  metrics_t *m = NULL;
  char *text;

  assert_int_equal(metrics_new(&m), 0);
  metrics_http_observe(m, route, 404, 0.003);
  metrics_http_observe(m, route, 404, 0.004);
  text = render(m, f);

  assert_true(sample_value(text,
                           "spkd_http_requests_total{route=\"/odd\\\""
                           "quote\\\\back\\nline\",code=\"404\"}") == 2.0);
  assert_true(sample_value(text,
                           "spkd_http_request_duration_seconds_count"
                           "{route=\"/odd\\\"quote\\\\back\\nline\"}") == 2.0);
  /* The raw characters never reach the text. */
  assert_null(strstr(text, "odd\"quote"));
  assert_null(strstr(text, "back\nline"));
  assert_null(strstr(text, "quote\\back"));
  free(text);
  metrics_free(m);
}

static void test_histogram_cumulative(void **state) {
  db_fixture_t *f = *state;
  static const double took[] = {0.0005, 0.001, 0.003, 0.2, 3.0, 20.0};
  static const char *const le[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                   "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                   "2.5",   "5",      "10",    "+Inf"};
  static const double want[] = {2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6};
  metrics_t *m = NULL;
  char series[160], *text;
  double last = 0;

  assert_int_equal(metrics_new(&m), 0);
  for (size_t i = 0; i < sizeof took / sizeof took[0]; i++)
    metrics_http_observe(m, "/v1/jobs", 200, took[i]);
  metrics_http_observe(m, "/healthz", 200, 0.5);
  text = render(m, f);

  for (size_t b = 0; b < sizeof le / sizeof le[0]; b++) {
    snprintf(series, sizeof series,
             "spkd_http_request_duration_seconds_bucket"
             "{route=\"/v1/jobs\",le=\"%s\"}",
             le[b]);
    double v = sample_value(text, series);
    assert_true(v == want[b]);
    assert_true(v >= last);
    last = v;
  }
  assert_true(sample_value(text, "spkd_http_request_duration_seconds_count"
                                 "{route=\"/v1/jobs\"}") == 6.0);
  assert_true(fabs(sample_value(text, "spkd_http_request_duration_seconds_sum"
                                      "{route=\"/v1/jobs\"}") -
                   23.2045) < 1e-9);
  assert_true(sample_value(text, "spkd_http_request_duration_seconds_count"
                                 "{route=\"/healthz\"}") == 1.0);
  assert_true(sample_value(text, "spkd_http_requests_total"
                                 "{route=\"/v1/jobs\",code=\"200\"}") == 6.0);
  free(text);
  metrics_free(m);
}

static void test_jobs_and_epochs(void **state) {
  db_fixture_t *f = *state;
  metrics_t *m = NULL;
  int64_t id[4];
  char *text;

  for (int i = 0; i < 4; i++)
    assert_int_equal(
        db_job_insert(f->db, "j", "{}", &id[i], f->err, sizeof f->err), 0);
  assert_int_equal(db_job_start(f->db, id[0], NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_start(f->db, id[1], NULL, f->err, sizeof f->err), 0);
  assert_int_equal(
      db_job_finish(f->db, id[1], "succeeded", NULL, f->err, sizeof f->err), 0);
  assert_int_equal(db_job_cancel_queued(f->db, id[2], f->err, sizeof f->err),
                   0);
  assert_int_equal(metrics_new(&m), 0);
  metrics_epoch_add(m, 900);
  metrics_epoch_add(m, 450);
  text = render(m, f);

  assert_true(sample_value(text, "spkd_jobs{state=\"queued\"}") == 1.0);
  assert_true(sample_value(text, "spkd_jobs{state=\"running\"}") == 1.0);
  assert_true(sample_value(text, "spkd_jobs{state=\"succeeded\"}") == 1.0);
  assert_true(sample_value(text, "spkd_jobs{state=\"failed\"}") == 0.0);
  assert_true(sample_value(text, "spkd_jobs{state=\"cancelled\"}") == 1.0);
  assert_true(sample_value(text, "spkd_epochs_total") == 2.0);
  assert_true(sample_value(text, "spkd_samples_total") == 1350.0);
  assert_true(sample_value(text, "spkd_build_info{version=\"" SPK_VERSION
                                 "\"}") == 1.0);
  free(text);
  metrics_free(m);
}

/* Every family's HELP and TYPE appear once, also before anything was
 * counted; the HTTP families then have no samples. */
static void test_families_once(void **state) {
  db_fixture_t *f = *state;
  static const char *const family[] = {"spkd_build_info",
                                       "spkd_start_time_seconds",
                                       "spkd_jobs",
                                       "spkd_epochs_total",
                                       "spkd_samples_total",
                                       "spkd_http_requests_total",
                                       "spkd_http_request_duration_seconds"};
  char help[96], type[96], *text;
  metrics_t *m = NULL;

  assert_int_equal(metrics_new(&m), 0);
  text = render(m, f);
  for (size_t i = 0; i < sizeof family / sizeof family[0]; i++) {
    snprintf(help, sizeof help, "# HELP %s ", family[i]);
    snprintf(type, sizeof type, "# TYPE %s ", family[i]);
    assert_int_equal(occurrences(text, help), 1);
    assert_int_equal(occurrences(text, type), 1);
  }
  assert_int_equal(occurrences(text, "\nspkd_http_"), 0);
  assert_true(sample_value(text, "spkd_epochs_total") == 0.0);
  assert_true(sample_value(text, "spkd_start_time_seconds") > 1.7e9);
  assert_true(text[strlen(text) - 1] == '\n');
  free(text);
  metrics_free(m);
}

static void *observe_many(void *arg) {
  metrics_t *m = arg;

  for (int i = 0; i < PER_THREAD; i++) {
    metrics_http_observe(m, i % 2 ? "/v1/jobs" : "/healthz", i % 5 ? 200 : 404,
                         0.002);
    metrics_epoch_add(m, 3);
  }
  return NULL;
}

static void test_threads_exact(void **state) {
  db_fixture_t *f = *state;
  pthread_t t[THREADS];
  metrics_t *m = NULL;
  char *text;

  assert_int_equal(metrics_new(&m), 0);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, observe_many, m), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  text = render(m, f);

  /* Per thread: 250 of each route; i % 5 == 0 for 50 odd, 50 even i. */
  assert_true(sample_value(text, "spkd_http_requests_total"
                                 "{route=\"/v1/jobs\",code=\"200\"}") ==
              THREADS * 200.0);
  assert_true(sample_value(text, "spkd_http_requests_total"
                                 "{route=\"/healthz\",code=\"404\"}") ==
              THREADS * 50.0);
  assert_true(sample_value(text, "spkd_http_request_duration_seconds_bucket"
                                 "{route=\"/healthz\",le=\"0.0025\"}") ==
              THREADS * 250.0);
  assert_true(sample_value(text, "spkd_epochs_total") == THREADS * PER_THREAD);
  assert_true(sample_value(text, "spkd_samples_total") ==
              THREADS * PER_THREAD * 3.0);
  free(text);
  metrics_free(m);
}

static void test_null_accepted(void **state) {
  (void)state;
  metrics_http_observe(NULL, "/healthz", 200, 0.1);
  metrics_epoch_add(NULL, 10);
  metrics_free(NULL);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_label_escaping),  TEST(test_histogram_cumulative),
      TEST(test_jobs_and_epochs), TEST(test_families_once),
      TEST(test_threads_exact),   cmocka_unit_test(test_null_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
