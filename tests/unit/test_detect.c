/* SPDX-License-Identifier: MIT */
/* Unit tests of the noise-detection measures: precision and recall of an
 * easy set, the AUROC with ties against hand-computed values and a slow
 * pairwise twin, and each noise-rate estimator (Gaussian and beta
 * mixtures, per class, confident learning) on synthetic data of known
 * rate. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/detect.h"
#include "../../engine/rng.h"

/* Fails, naming both values, unless got is within tol of want. */
#define assert_near(got, want, tol)                                            \
  do {                                                                         \
    double got_ = (got), want_ = (want);                                       \
    if (!(fabs(got_ - want_) <= (tol)))                                        \
      fail_msg("%.17g is not within %g of %.17g", got_, (double)(tol), want_); \
  } while (0)

/* Eight samples: easy {0, 1, 2, 5}, corrupted {1, 4, 6}. Clean are
 * {0, 2, 3, 5, 7}; clean and easy are {0, 2, 5}: precision 3/4, recall
 * 3/5. */
static void test_split_hand(void **state) {
  const uint8_t easy[8] = {1, 1, 1, 0, 0, 1, 0, 0};
  const uint8_t bad[8] = {0, 1, 0, 0, 1, 0, 1, 0};
  detect_split_t s;

  (void)state;
  assert_int_equal(detect_split(easy, bad, 8, &s), 0);
  assert_int_equal(s.n, 8);
  assert_int_equal(s.easy, 4);
  assert_int_equal(s.clean, 5);
  assert_int_equal(s.clean_easy, 3);
  assert_true(s.precision_defined && s.recall_defined);
  assert_near(s.precision, 0.75, 1e-15);
  assert_near(s.recall, 0.6, 1e-15);
}

/* Any non-zero byte is a true flag. */
static void test_split_nonzero_bytes(void **state) {
  const uint8_t easy[4] = {7, 0, 255, 1};
  const uint8_t bad[4] = {0, 3, 2, 0};
  detect_split_t s;

  (void)state;
  assert_int_equal(detect_split(easy, bad, 4, &s), 0);
  assert_int_equal(s.easy, 3);
  assert_int_equal(s.clean, 2);
  assert_int_equal(s.clean_easy, 2);
  assert_near(s.precision, 2.0 / 3.0, 1e-15);
  assert_near(s.recall, 1.0, 1e-15);
}

/* An empty easy set has no precision; data without a clean label has no
 * recall; an empty set of samples has neither. Undefined reads 0. */
static void test_split_undefined(void **state) {
  const uint8_t none[4] = {0, 0, 0, 0}, all[4] = {1, 1, 1, 1};
  const uint8_t bad[4] = {1, 0, 0, 1};
  detect_split_t s;

  (void)state;
  assert_int_equal(detect_split(none, bad, 4, &s), 0);
  assert_false(s.precision_defined);
  assert_true(s.recall_defined);
  assert_int_equal(s.easy, 0);
  assert_int_equal(s.clean, 2);
  assert_true(s.precision == 0.0 && s.recall == 0.0);

  assert_int_equal(detect_split(all, all, 4, &s), 0);
  assert_true(s.precision_defined);
  assert_false(s.recall_defined);
  assert_true(s.precision == 0.0 && s.recall == 0.0);

  assert_int_equal(detect_split(NULL, NULL, 0, &s), 0);
  assert_int_equal(s.n, 0);
  assert_false(s.precision_defined || s.recall_defined);
}

static void test_split_invalid(void **state) {
  const uint8_t f[2] = {1, 0};
  detect_split_t s = {.n = 99};

  (void)state;
  assert_int_equal(detect_split(NULL, f, 2, &s), -EINVAL);
  assert_int_equal(detect_split(f, NULL, 2, &s), -EINVAL);
  assert_int_equal(detect_split(f, f, -1, &s), -EINVAL);
  assert_int_equal(detect_split(f, f, 2, NULL), -EINVAL);
  assert_int_equal(s.n, 99);
}

/* Returns detect_auroc's value, asserting it succeeds. */
static double auroc_ok(const float *score, const uint8_t *bad, int n) {
  double a = -1;

  assert_int_equal(detect_auroc(score, bad, n, &a), 0);
  return a;
}

static void test_auroc_extremes(void **state) {
  const float same[5] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
  const float up[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  const uint8_t high_bad[5] = {0, 0, 0, 1, 1};
  const uint8_t low_bad[5] = {1, 1, 0, 0, 0};

  (void)state;
  assert_near(auroc_ok(same, high_bad, 5), 0.5, 1e-15);
  assert_near(auroc_ok(up, high_bad, 5), 1.0, 1e-15);
  assert_near(auroc_ok(up, low_bad, 5), 0.0, 1e-15);
}

/* Corrupted scores {0.9, 0.5, 0.3}, clean {0.5, 0.3, 0.1, 0.1}, shuffled.
 * Of the 12 pairs, 0.9 wins 4; 0.5 wins 3 and ties 1; 0.3 wins 2 and ties
 * 1: U = 9 + 2 * 0.5 = 10. Mid-ranks agree: the positives hold ranks 7,
 * 5.5 and 3.5, so U = 16 - 3 * 4 / 2 = 10. AUROC = 10 / 12. */
static void test_auroc_ties_hand(void **state) {
  const float score[7] = {0.1f, 0.5f, 0.3f, 0.9f, 0.1f, 0.3f, 0.5f};
  const uint8_t bad[7] = {0, 0, 1, 1, 0, 0, 1};

  (void)state;
  assert_near(auroc_ok(score, bad, 7), 10.0 / 12.0, 1e-15);
}

/* Infinite scores order like any other; one tie at +inf is half a win. */
static void test_auroc_infinite(void **state) {
  const float score[4] = {INFINITY, -INFINITY, INFINITY, 0.0f};
  const uint8_t bad[4] = {1, 0, 0, 1};

  (void)state;
  /* Pairs: inf vs -inf 1, inf vs inf 0.5, 0 vs -inf 1, 0 vs inf 0. */
  assert_near(auroc_ok(score, bad, 4), 2.5 / 4.0, 1e-15);
}

static void test_auroc_undefined(void **state) {
  const float score[3] = {0.1f, NAN, 0.3f};
  const uint8_t none[3] = {0, 0, 0}, all[3] = {1, 1, 1};
  const uint8_t mixed[3] = {1, 0, 1};
  double a = -1;

  (void)state;
  assert_int_equal(detect_auroc(score, none, 1, &a), -EDOM);
  assert_near(a, 0.5, 0);
  a = -1;
  assert_int_equal(detect_auroc(score, all, 1, &a), -EDOM);
  assert_near(a, 0.5, 0);
  assert_int_equal(detect_auroc(NULL, NULL, 0, &a), -EDOM);
  assert_int_equal(detect_auroc(score, mixed, 3, &a), -EINVAL);
  assert_int_equal(detect_auroc(NULL, mixed, 3, &a), -EINVAL);
  assert_int_equal(detect_auroc(score, mixed, -1, &a), -EINVAL);
  assert_int_equal(detect_auroc(score, mixed, 2, NULL), -EINVAL);
}

/* The slow twin: every (corrupted, clean) pair, ties counting one half. */
static double auroc_pairwise(const float *score, const uint8_t *bad, int n) {
  double wins = 0, pairs = 0;

  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) {
      if (!bad[i] || bad[j])
        continue;
      pairs += 1;
      wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
    }
  }
  return wins / pairs;
}

/* Scores on a coarse grid, so ties are common, with corrupted samples
 * shifted up by a varying amount. */
static void test_auroc_matches_pairwise(void **state) {
  enum { N = 700 };
  float score[N];
  uint8_t bad[N];
  rng_t rng;

  (void)state;
  rng_init(&rng, 42, 1);
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < N; i++) {
      bad[i] = rng_uniform(&rng) < 0.1 + 0.25 * round;
      score[i] = (float)rng_below(&rng, 12) + (bad[i] ? (float)round : 0);
    }
    assert_near(auroc_ok(score, bad, N), auroc_pairwise(score, bad, N), 1e-12);
  }
}

/* Whether sample i of n is one of the k corrupted ones, which are spread
 * evenly through the array. */
static int spread_bad(int i, int n, int k) {
  return (int64_t)(i + 1) * k / n > (int64_t)i * k / n;
}

/* n losses, exactly round(rate * n) of them corrupted: clean ones near
 * clean_mu, corrupted ones near bad_mu, each a normal draw with its own
 * spread, folded at 0 to stay a loss. */
static void mixture_fill(float *loss, int n, double rate, double clean_mu,
                         double clean_sd, double bad_mu, double bad_sd) {
  int k = (int)llround(rate * n);
  rng_t rng;

  rng_init(&rng, 2024, 3);
  for (int i = 0; i < n; i++) {
    double z = rng_normal(&rng);
    loss[i] = (float)fabs(spread_bad(i, n, k) ? bad_mu + bad_sd * z
                                              : clean_mu + clean_sd * z);
  }
}

static double rate_ok(const float *loss, int n) {
  double r = -1;

  assert_int_equal(detect_noise_rate(loss, n, &r), 0);
  return r;
}

/* Clean losses near 0.2, corrupted near 3.0, both with spread: the weight
 * of the high component is the corrupted share within 0.03. */
static void test_noise_rate_mixtures(void **state) {
  enum { N = 5000 };
  static float loss[N];
  const double rates[3] = {0.2, 0.4, 0.6};

  (void)state;
  for (int i = 0; i < 3; i++) {
    mixture_fill(loss, N, rates[i], 0.2, 0.07, 3.0, 0.5);
    assert_near(rate_ok(loss, N), rates[i], 0.03);
  }
}

/* Clean losses as a training run gives them, right-skewed (log-normal
 * around 0.15 nats), corrupted ones around log(10) nats. */
static void test_noise_rate_skewed(void **state) {
  enum { N = 6000 };
  static float loss[N];
  int k = (int)llround(0.3 * N);
  rng_t rng;

  (void)state;
  rng_init(&rng, 5, 5);
  for (int i = 0; i < N; i++) {
    double z = rng_normal(&rng);
    loss[i] = (float)(spread_bad(i, N, k) ? fabs(2.3 + 0.35 * z)
                                          : 0.15 * exp(0.8 * z));
  }
  assert_near(rate_ok(loss, N), 0.3, 0.03);
}

/* A block of exact zeros among the clean losses stays with them instead
 * of taking a component for itself. */
static void test_noise_rate_zeros(void **state) {
  enum { N = 4000 };
  static float loss[N];

  (void)state;
  mixture_fill(loss, N, 0.4, 0.2, 0.07, 3.0, 0.5);
  for (int i = 0; i < N; i++) {
    if (i % 10 == 3 && loss[i] < 1.0f)
      loss[i] = 0.0f;
  }
  assert_near(rate_ok(loss, N), 0.4, 0.03);
}

/* The estimate depends on the values, not their order. */
static void test_noise_rate_order_free(void **state) {
  enum { N = 3000 };
  static float loss[N], shuffled[N];
  int32_t order[N];
  rng_t rng;

  (void)state;
  mixture_fill(loss, N, 0.35, 0.3, 0.1, 2.5, 0.6);
  for (int i = 0; i < N; i++)
    order[i] = i;
  rng_init(&rng, 9, 9);
  rng_shuffle(&rng, order, N);
  for (int i = 0; i < N; i++)
    shuffled[i] = loss[order[i]];
  assert_true(rate_ok(loss, N) == rate_ok(shuffled, N));
}

/* Nothing to separate gives 0; two equal halves give one half each. */
static void test_noise_rate_degenerate(void **state) {
  const float one[1] = {2.0f}, flat[6] = {0.7f, 0.7f, 0.7f, 0.7f, 0.7f, 0.7f};
  const float zeros[3] = {0, 0, 0};
  const float halves[6] = {0.2f, 3.0f, 0.2f, 3.0f, 0.2f, 3.0f};
  double r = -1;

  (void)state;
  assert_int_equal(detect_noise_rate(NULL, 0, &r), 0);
  assert_near(r, 0.0, 0);
  assert_near(rate_ok(one, 1), 0.0, 0);
  assert_near(rate_ok(flat, 6), 0.0, 0);
  assert_near(rate_ok(zeros, 3), 0.0, 0);
  assert_near(rate_ok(halves, 6), 0.5, 1e-9);
}

static void test_noise_rate_invalid(void **state) {
  float loss[3] = {0.1f, 0.2f, 0.3f};
  double r = 0.25;

  (void)state;
  assert_int_equal(detect_noise_rate(NULL, 3, &r), -EINVAL);
  assert_int_equal(detect_noise_rate(loss, -1, &r), -EINVAL);
  assert_int_equal(detect_noise_rate(loss, 3, NULL), -EINVAL);
  loss[1] = -0.5f;
  assert_int_equal(detect_noise_rate(loss, 3, &r), -EINVAL);
  loss[1] = NAN;
  assert_int_equal(detect_noise_rate(loss, 3, &r), -EINVAL);
  loss[1] = INFINITY;
  assert_int_equal(detect_noise_rate(loss, 3, &r), -EINVAL);
  assert_near(r, 0.25, 0);
}

/* Confident learning. */

/* Three classes, six samples. Thresholds: class 0 from samples 0 and 1
 * (0.8 + 0.2) / 2 = 0.5; class 1 from 2 and 3 (0.7 + 0.6) / 2 = 0.65;
 * class 2 from 4 and 5 (0.9 + 0.3) / 2 = 0.6. Sample 1 (labelled 0) has
 * p_1 = 0.7 >= 0.65: rejected. Sample 5 (labelled 2) has p_0 = 0.6 >=
 * 0.5 and p_2 = 0.3 < 0.6: rejected. Sample 3 (labelled 1) has p_1 =
 * 0.6 < 0.65 and no other class at its threshold: not claimed, kept. */
static void test_confident_hand(void **state) {
  const float probs[6 * 3] = {0.8f,  0.1f,  0.1f, 0.2f, 0.7f, 0.1f,
                              0.1f,  0.7f,  0.2f, 0.3f, 0.6f, 0.1f,
                              0.05f, 0.05f, 0.9f, 0.6f, 0.1f, 0.3f};
  const uint8_t labels[6] = {0, 0, 1, 1, 2, 2};
  detect_probs_t in = {probs, labels, 6, 3};
  double pc[3] = {-1, -1, -1}, rate = -1;

  (void)state;
  assert_int_equal(detect_noise_confident(&in, pc, &rate), 0);
  assert_near(rate, 2.0 / 6.0, 1e-12);
  assert_near(pc[0], 0.5, 1e-12);
  assert_near(pc[1], 0.0, 1e-12);
  assert_near(pc[2], 0.5, 1e-12);
}

/* n samples of C classes as a model trained on noisy labels sees them.
 * The true class is uniform and the observed label moves to a uniform
 * other class with probability rate. The clean posterior p gives the
 * true class a probability in [0.8, 0.95] and shares the rest evenly,
 * except that a share `hard` of samples is torn between the true class
 * (0.5) and the next one (0.45). The model outputs the posterior of the
 * observed label, q_j = (1 - rate) p_j + rate (1 - p_j) / (C - 1): what
 * training on the noisy labels learns at best. Returns the corrupted
 * share. */
typedef struct {
  int n, C;
  double rate, hard;
  uint64_t seed;
} synth_t;

/* The clean posterior of one sample of true class k into p (C). */
static void synth_posterior(const synth_t *g, rng_t *rng, int k, double *p) {
  double top = 0.8 + 0.15 * rng_uniform(rng);

  if (rng_uniform(rng) < g->hard) {
    for (int j = 0; j < g->C; j++)
      p[j] = 0.05 / (g->C - 2);
    p[k] = 0.5;
    p[(k + 1) % g->C] = 0.45;
    return;
  }
  for (int j = 0; j < g->C; j++)
    p[j] = (1.0 - top) / (g->C - 1);
  p[k] = top;
}

static double synth_fill(const synth_t *g, float *probs, uint8_t *labels) {
  double p[16];
  rng_t rng;
  int bad = 0;

  assert_true(g->C <= 16);
  rng_init(&rng, g->seed, 11);
  for (int i = 0; i < g->n; i++) {
    int k = (int)rng_below(&rng, (uint32_t)g->C), y = k;
    synth_posterior(g, &rng, k, p);
    for (int j = 0; j < g->C; j++)
      probs[(size_t)i * g->C + j] =
          (float)((1 - g->rate) * p[j] + g->rate * (1 - p[j]) / (g->C - 1));
    if (rng_uniform(&rng) < g->rate) {
      y = (k + 1 + (int)rng_below(&rng, (uint32_t)g->C - 1)) % g->C;
      bad++;
    }
    labels[i] = (uint8_t)y;
  }
  return (double)bad / g->n;
}

/* The rejected share recovers the corrupted share, overall and per
 * class, from clean labels to 60 % noise. */
static void test_confident_recovers_rate(void **state) {
  enum { N = 20000, C = 10 };
  static float probs[N * C];
  static uint8_t labels[N];
  const double rates[4] = {0.0, 0.2, 0.4, 0.6};
  detect_probs_t in = {probs, labels, N, C};
  double pc[C], rate;

  (void)state;
  for (int r = 0; r < 4; r++) {
    synth_t g = {N, C, rates[r], 0.0, 100 + (uint64_t)r};
    double truth = synth_fill(&g, probs, labels);
    assert_int_equal(detect_noise_confident(&in, pc, &rate), 0);
    assert_near(rate, truth, 0.01);
    for (int c = 0; c < C; c++)
      assert_near(pc[c], truth, 0.04);
  }
}

/* Clean samples torn between two classes are not read as corrupted:
 * with a tenth of them, clean labels give no rejection and 20 % noise is
 * found within 0.03 (torn corrupted samples may go unclaimed). */
static void test_confident_hard_samples(void **state) {
  enum { N = 20000, C = 10 };
  static float probs[N * C];
  static uint8_t labels[N];
  detect_probs_t in = {probs, labels, N, C};
  synth_t clean = {N, C, 0.0, 0.1, 200}, noisy = {N, C, 0.2, 0.1, 201};
  double rate, truth;

  (void)state;
  synth_fill(&clean, probs, labels);
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), 0);
  assert_near(rate, 0.0, 0);
  truth = synth_fill(&noisy, probs, labels);
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), 0);
  assert_near(rate, truth, 0.03);
}

/* No sample gives 0; a class nobody carries claims no sample and has a
 * share of 0. */
static void test_confident_degenerate(void **state) {
  const float probs[2 * 3] = {0.1f, 0.2f, 0.7f, 0.9f, 0.05f, 0.05f};
  const uint8_t labels[2] = {0, 0};
  detect_probs_t empty = {NULL, NULL, 0, 3}, in = {probs, labels, 2, 3};
  double pc[3] = {-1, -1, -1}, rate = -1;

  (void)state;
  assert_int_equal(detect_noise_confident(&empty, pc, &rate), 0);
  assert_near(rate, 0.0, 0);
  assert_near(pc[0] + pc[1] + pc[2], 0.0, 0);
  /* t_0 = 0.5: sample 1 stays, sample 0 is claimed by no class. */
  assert_int_equal(detect_noise_confident(&in, pc, &rate), 0);
  assert_near(rate, 0.0, 0);
  assert_near(pc[1], 0.0, 0);
  assert_near(pc[2], 0.0, 0);
}

static void test_confident_invalid(void **state) {
  float probs[2 * 2] = {0.6f, 0.4f, 0.3f, 0.7f};
  uint8_t labels[2] = {0, 1};
  detect_probs_t in = {probs, labels, 2, 2};
  double rate = 0.25;

  (void)state;
  assert_int_equal(detect_noise_confident(NULL, NULL, &rate), -EINVAL);
  assert_int_equal(detect_noise_confident(&in, NULL, NULL), -EINVAL);
  in.classes = 0;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  in.classes = 257;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  in.classes = 2;
  in.n = -1;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  in.n = 2;
  labels[1] = 2;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  labels[1] = 1;
  probs[3] = NAN;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  probs[3] = 1.5f;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  probs[3] = -0.1f;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  in.probs = NULL;
  probs[3] = 0.7f;
  assert_int_equal(detect_noise_confident(&in, NULL, &rate), -EINVAL);
  assert_near(rate, 0.25, 0);
}

/* The beta mixture. */

/* n confidences, round(rate * n) of them corrupted and drawn from
 * Beta(1, 6) (mean 1/7), the others from Beta(6, 1) (mean 6/7): for U
 * uniform, U^(1/6) is Beta(6, 1) and 1 - U^(1/6) is Beta(1, 6). */
static void beta_fill(float *conf, int n, double rate, uint64_t seed) {
  int k = (int)llround(rate * n);
  rng_t rng;

  rng_init(&rng, seed, 4);
  for (int i = 0; i < n; i++) {
    double v = pow(rng_uniform(&rng), 1.0 / 6.0);
    conf[i] = (float)(spread_bad(i, n, k) ? 1.0 - v : v);
  }
}

static double beta_ok(const float *conf, int n) {
  double r = -1;

  assert_int_equal(detect_noise_beta(conf, n, &r), 0);
  return r;
}

static void test_beta_mixtures(void **state) {
  enum { N = 20000 };
  static float conf[N];
  const double rates[3] = {0.2, 0.4, 0.6};

  (void)state;
  for (int i = 0; i < 3; i++) {
    beta_fill(conf, N, rates[i], 30 + (uint64_t)i);
    assert_near(beta_ok(conf, N), rates[i], 0.03);
  }
}

/* Nothing below 1/2 is clean data: 0; nothing above, 1; exact 0s and
 * 1s are clamped, not infinite; none gives 0. */
static void test_beta_degenerate(void **state) {
  const float high[4] = {0.9f, 0.7f, 1.0f, 0.5f};
  const float low[3] = {0.1f, 0.0f, 0.3f};
  const float ends[6] = {0.0f, 1.0f, 0.0f, 1.0f, 1.0f, 1.0f};
  double r = -1;

  (void)state;
  assert_near(beta_ok(high, 4), 0.0, 0);
  assert_near(beta_ok(low, 3), 1.0, 0);
  assert_int_equal(detect_noise_beta(NULL, 0, &r), 0);
  assert_near(r, 0.0, 0);
  r = beta_ok(ends, 6);
  assert_true(isfinite(r));
  assert_near(r, 2.0 / 6.0, 0.01);
}

static void test_beta_invalid(void **state) {
  float conf[3] = {0.1f, 0.5f, 0.9f};
  double r = 0.25;

  (void)state;
  assert_int_equal(detect_noise_beta(NULL, 3, &r), -EINVAL);
  assert_int_equal(detect_noise_beta(conf, -1, &r), -EINVAL);
  assert_int_equal(detect_noise_beta(conf, 3, NULL), -EINVAL);
  conf[1] = NAN;
  assert_int_equal(detect_noise_beta(conf, 3, &r), -EINVAL);
  conf[1] = 1.01f;
  assert_int_equal(detect_noise_beta(conf, 3, &r), -EINVAL);
  conf[1] = -0.01f;
  assert_int_equal(detect_noise_beta(conf, 3, &r), -EINVAL);
  assert_near(r, 0.25, 0);
}

/* Per class: two classes at different rates, each found on its own, and
 * the overall rate their mean weighted by class size. */
static void test_by_class(void **state) {
  enum { N0 = 6000, N1 = 3000 };
  static float values[N0 + N1];
  static uint8_t labels[N0 + N1 + 1];
  double pc[3] = {-1, -1, -1}, rate = -1;

  (void)state;
  beta_fill(values, N0, 0.1, 1);
  beta_fill(values + N0, N1, 0.5, 2);
  for (int i = 0; i < N0 + N1; i++)
    labels[i] = i < N0 ? 0 : 2;
  assert_int_equal(detect_noise_by_class(DETECT_MIX_BETA, values, labels,
                                         N0 + N1, 3, pc, &rate),
                   0);
  assert_near(pc[0], 0.1, 0.03);
  assert_near(pc[1], 0.0, 0);
  assert_near(pc[2], 0.5, 0.03);
  assert_near(rate, (pc[0] * N0 + pc[2] * N1) / (N0 + N1), 1e-12);

  /* The Gaussian mixture per class on losses: a class of clean losses
   * and one with 40 % corrupted ones. */
  mixture_fill(values, N0, 0.0, 0.2, 0.07, 3.0, 0.5);
  mixture_fill(values + N0, N1, 0.4, 0.2, 0.07, 3.0, 0.5);
  assert_int_equal(detect_noise_by_class(DETECT_MIX_GAUSS_LOG_LOSS, values,
                                         labels, N0 + N1, 3, pc, &rate),
                   0);
  assert_near(pc[2], 0.4, 0.03);

  labels[5] = 3;
  assert_int_equal(detect_noise_by_class(DETECT_MIX_BETA, values, labels,
                                         N0 + N1, 3, pc, &rate),
                   -EINVAL);
  labels[5] = 0;
  values[7] = -1.0f;
  assert_int_equal(detect_noise_by_class(DETECT_MIX_BETA, values, labels,
                                         N0 + N1, 3, pc, &rate),
                   -EINVAL);
  assert_int_equal(detect_noise_by_class(DETECT_MIX_BETA, values, labels,
                                         N0 + N1, 0, pc, &rate),
                   -EINVAL);
  assert_int_equal(
      detect_noise_by_class(DETECT_MIX_BETA, NULL, labels, 1, 3, pc, &rate),
      -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_hand),
      cmocka_unit_test(test_split_nonzero_bytes),
      cmocka_unit_test(test_split_undefined),
      cmocka_unit_test(test_split_invalid),
      cmocka_unit_test(test_auroc_extremes),
      cmocka_unit_test(test_auroc_ties_hand),
      cmocka_unit_test(test_auroc_infinite),
      cmocka_unit_test(test_auroc_undefined),
      cmocka_unit_test(test_auroc_matches_pairwise),
      cmocka_unit_test(test_noise_rate_mixtures),
      cmocka_unit_test(test_noise_rate_skewed),
      cmocka_unit_test(test_noise_rate_zeros),
      cmocka_unit_test(test_noise_rate_order_free),
      cmocka_unit_test(test_noise_rate_degenerate),
      cmocka_unit_test(test_noise_rate_invalid),
      cmocka_unit_test(test_confident_hand),
      cmocka_unit_test(test_confident_recovers_rate),
      cmocka_unit_test(test_confident_hard_samples),
      cmocka_unit_test(test_confident_degenerate),
      cmocka_unit_test(test_confident_invalid),
      cmocka_unit_test(test_beta_mixtures),
      cmocka_unit_test(test_beta_degenerate),
      cmocka_unit_test(test_beta_invalid),
      cmocka_unit_test(test_by_class),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
