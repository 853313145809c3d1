/* SPDX-License-Identifier: MIT */
/* Unit tests of the training-dynamics accumulator: a hand-written history
 * of four samples over four epochs, partial and single-epoch reads, bad
 * epochs that must change nothing, and a long random history against a
 * slow two-pass twin. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/dynamics.h"
#include "../../engine/rng.h"

/* Fails, naming both values, unless got is within tol of want. */
#define assert_near(got, want, tol)                                            \
  do {                                                                         \
    double got_ = (got), want_ = (want);                                       \
    if (!(fabs(got_ - want_) <= (tol)))                                        \
      fail_msg("%.17g is not within %g of %.17g", got_, (double)(tol), want_); \
  } while (0)

enum { S = 4, E = 4 };

/* The history, one row per epoch, one column per sample:
 * 0: learned at epoch 2, forgotten at epoch 4;
 * 1: always right, always confident;
 * 2: flips every epoch, so it forgets twice;
 * 3: never right (no forgetting event), p reaching 0. */
static const float hist_prob[E][S] = {{0.2f, 0.9f, 0.7f, 0.1f},
                                      {0.6f, 0.9f, 0.1f, 0.2f},
                                      {0.8f, 0.9f, 0.7f, 0.3f},
                                      {0.4f, 0.9f, 0.1f, 0.0f}};
static const float hist_margin[E][S] = {{-1.0f, 3.0f, 1.0f, -2.0f},
                                        {0.5f, 3.0f, -2.0f, -1.0f},
                                        {2.0f, 3.0f, 1.0f, -3.0f},
                                        {-0.5f, 3.0f, -2.0f, -4.0f}};
static const uint8_t hist_correct[E][S] = {
    {0, 1, 1, 0}, {1, 1, 0, 0}, {1, 1, 1, 0}, {0, 1, 0, 0}};

typedef struct {
  float confidence[S], variability[S], correctness[S], aum[S];
  int32_t forgetting[S];
} stats_buf_t;

static dynamics_stats_t stats_of(stats_buf_t *b) {
  dynamics_stats_t st = {b->confidence, b->variability, b->correctness,
                         b->forgetting, b->aum};
  return st;
}

/* A fresh accumulator fed the first `epochs` rows of the history. */
static void feed(dynamics_t *d, int epochs) {
  assert_int_equal(dynamics_init(d, S), 0);
  for (int e = 0; e < epochs; e++)
    assert_int_equal(
        dynamics_add_epoch(d, hist_prob[e], hist_margin[e], hist_correct[e]),
        0);
  assert_int_equal(d->epochs, epochs);
}

/* By hand. Sample 0: mean p 2.0 / 4 = 0.5, deviations -0.3, 0.1, 0.3,
 * -0.1, so the population variance is 0.2 / 4 = 0.05; AUM 1.0 / 4.
 * Sample 2: mean 0.4, deviations +-0.3, std 0.3; AUM -2 / 4. Sample 3:
 * mean 0.15, deviations -0.05, 0.05, 0.15, -0.15, variance 0.05 / 4. */
static void test_hand_history(void **state) {
  const float conf[S] = {0.5f, 0.9f, 0.4f, 0.15f};
  const double var[S] = {0.05, 0.0, 0.09, 0.0125};
  const float corr[S] = {0.5f, 1.0f, 0.5f, 0.0f};
  const int32_t forget[S] = {1, 0, 2, 0};
  const float aum[S] = {0.25f, 3.0f, -0.5f, -2.5f};
  stats_buf_t b;
  dynamics_stats_t st = stats_of(&b);
  dynamics_t d;

  (void)state;
  feed(&d, E);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  for (int i = 0; i < S; i++) {
    assert_near(b.confidence[i], conf[i], 1e-6);
    assert_near(b.variability[i], sqrt(var[i]), 1e-6);
    assert_near(b.correctness[i], corr[i], 0);
    assert_int_equal(b.forgetting[i], forget[i]);
    assert_near(b.aum[i], aum[i], 1e-6);
  }
  dynamics_deinit(&d);
}

/* After two epochs: sample 0 has learned (no forgetting yet), sample 2
 * has forgotten once; p of sample 0 is 0.2 then 0.6, so std 0.2. */
static void test_partial_history(void **state) {
  stats_buf_t b;
  dynamics_stats_t st = stats_of(&b);
  dynamics_t d;

  (void)state;
  feed(&d, 2);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  assert_int_equal(b.forgetting[0], 0);
  assert_int_equal(b.forgetting[2], 1);
  assert_near(b.variability[0], 0.2, 1e-6);
  assert_near(b.confidence[0], 0.4, 1e-6);
  assert_near(b.aum[0], -0.25, 1e-6);
  assert_near(b.correctness[3], 0.0, 0);

  /* Reading does not disturb: the rest of the history gives the totals. */
  for (int e = 2; e < E; e++)
    assert_int_equal(
        dynamics_add_epoch(&d, hist_prob[e], hist_margin[e], hist_correct[e]),
        0);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  assert_int_equal(b.forgetting[0], 1);
  assert_int_equal(b.forgetting[2], 2);
  dynamics_deinit(&d);
}

/* One epoch: no spread and no forgetting, whatever the flags. */
static void test_single_epoch(void **state) {
  stats_buf_t b;
  dynamics_stats_t st = stats_of(&b);
  dynamics_t d;

  (void)state;
  feed(&d, 1);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  for (int i = 0; i < S; i++) {
    assert_near(b.variability[i], 0.0, 0);
    assert_int_equal(b.forgetting[i], 0);
    assert_near(b.confidence[i], hist_prob[0][i], 0);
    assert_near(b.aum[i], hist_margin[0][i], 0);
    assert_near(b.correctness[i], hist_correct[0][i], 0);
  }
  dynamics_deinit(&d);
}

/* NULL members of the output are skipped; the others are written. */
static void test_partial_output(void **state) {
  float aum[S] = {99, 99, 99, 99};
  int32_t forget[S] = {-1, -1, -1, -1};
  dynamics_stats_t st = {NULL, NULL, NULL, forget, aum};
  dynamics_t d;

  (void)state;
  feed(&d, E);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  assert_int_equal(forget[2], 2);
  assert_near(aum[3], -2.5, 1e-6);
  dynamics_deinit(&d);
}

/* A rejected epoch leaves every sum as it was. */
static void test_bad_epoch_changes_nothing(void **state) {
  float prob[S], margin[S];
  stats_buf_t before, after;
  dynamics_stats_t sb = stats_of(&before), sa = stats_of(&after);
  dynamics_t d;

  (void)state;
  feed(&d, 2);
  assert_int_equal(dynamics_finish(&d, &sb), 0);
  memcpy(prob, hist_prob[2], sizeof prob);
  memcpy(margin, hist_margin[2], sizeof margin);
  prob[3] = 1.5f;
  assert_int_equal(dynamics_add_epoch(&d, prob, margin, hist_correct[2]),
                   -EDOM);
  prob[3] = NAN;
  assert_int_equal(dynamics_add_epoch(&d, prob, margin, hist_correct[2]),
                   -EDOM);
  prob[3] = -0.1f;
  assert_int_equal(dynamics_add_epoch(&d, prob, margin, hist_correct[2]),
                   -EDOM);
  prob[3] = 1.0f;
  margin[3] = INFINITY;
  assert_int_equal(dynamics_add_epoch(&d, prob, margin, hist_correct[2]),
                   -EDOM);
  assert_int_equal(dynamics_add_epoch(&d, NULL, margin, hist_correct[2]),
                   -EINVAL);
  assert_int_equal(dynamics_add_epoch(&d, prob, margin, NULL), -EINVAL);
  assert_int_equal(d.epochs, 2);
  assert_int_equal(dynamics_finish(&d, &sa), 0);
  assert_memory_equal(&before, &after, sizeof before);
  dynamics_deinit(&d);
}

static void test_lifecycle(void **state) {
  stats_buf_t b;
  dynamics_stats_t st = stats_of(&b);
  dynamics_t d;

  (void)state;
  assert_int_equal(dynamics_init(&d, -1), -EINVAL);
  assert_int_equal(dynamics_init(NULL, 3), -EINVAL);
  assert_int_equal(dynamics_init(&d, S), 0);
  assert_int_equal(dynamics_finish(&d, &st), -ENODATA);
  assert_int_equal(dynamics_finish(&d, NULL), -EINVAL);
  assert_int_equal(dynamics_finish(NULL, &st), -EINVAL);
  dynamics_deinit(&d);
  dynamics_deinit(&d);
  dynamics_deinit(NULL);

  /* No samples: epochs still count, and there is nothing to write. */
  assert_int_equal(dynamics_init(&d, 0), 0);
  assert_int_equal(
      dynamics_add_epoch(&d, hist_prob[0], hist_margin[0], hist_correct[0]), 0);
  assert_int_equal(dynamics_finish(&d, &st), 0);
  assert_int_equal(d.epochs, 1);
  dynamics_deinit(&d);
}

/* A stored history, (epochs, n) row-major, for the slow twin. */
typedef struct {
  const float *prob, *margin;
  const uint8_t *correct;
  int epochs, n;
} history_t;

/* The slow twin of sample i: two passes over the stored history. */
static void twin(const history_t *h, int i, double *std, double *aum,
                 int *forget) {
  double mean = 0, ss = 0, m = 0;
  int n = h->n;

  *forget = 0;
  for (int e = 0; e < h->epochs; e++) {
    mean += h->prob[e * n + i];
    m += h->margin[e * n + i];
    if (e > 0 && h->correct[(e - 1) * n + i] && !h->correct[e * n + i])
      ++*forget;
  }
  mean /= h->epochs;
  for (int e = 0; e < h->epochs; e++)
    ss += (h->prob[e * n + i] - mean) * (h->prob[e * n + i] - mean);
  *std = sqrt(ss / h->epochs);
  *aum = m / h->epochs;
}

/* Sixty epochs of random history agree with the two-pass twin. */
static void test_matches_twin(void **state) {
  enum { N = 50, EP = 60 };
  static float prob[EP * N], margin[EP * N], spread[N], aum[N];
  static uint8_t correct[EP * N];
  const history_t h = {prob, margin, correct, EP, N};
  int32_t forget[N];
  dynamics_stats_t st = {NULL, spread, NULL, forget, aum};
  dynamics_t d;
  rng_t rng;

  (void)state;
  rng_init(&rng, 77, 2);
  assert_int_equal(dynamics_init(&d, N), 0);
  for (int e = 0; e < EP; e++) {
    for (int i = 0; i < N; i++) {
      /* Sample i leans to p near i / N, so spreads differ. */
      prob[e * N + i] = 0.5f * rng_uniform(&rng) + 0.5f * (float)i / N;
      margin[e * N + i] = 4.0f * rng_normal(&rng);
      correct[e * N + i] = margin[e * N + i] > 0;
    }
    assert_int_equal(
        dynamics_add_epoch(&d, prob + e * N, margin + e * N, correct + e * N),
        0);
  }
  assert_int_equal(dynamics_finish(&d, &st), 0);
  for (int i = 0; i < N; i++) {
    double std, m;
    int f;
    twin(&h, i, &std, &m, &f);
    assert_near(spread[i], std, 1e-6);
    assert_near(aum[i], m, 1e-5);
    assert_int_equal(forget[i], f);
  }
  dynamics_deinit(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_history),
      cmocka_unit_test(test_partial_history),
      cmocka_unit_test(test_single_epoch),
      cmocka_unit_test(test_partial_output),
      cmocka_unit_test(test_bad_epoch_changes_nothing),
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_matches_twin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
