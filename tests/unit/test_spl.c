/* SPDX-License-Identifier: MIT */
/* Unit tests of the self-paced building blocks on cases computed by hand:
 * the four scores, the paces and curves, selection per class, with a
 * fraction of each class and over the whole set, the weight schemes, one-call
 * selection with weights, and the final-set statistic; with empty, one-class
 * and equal-score edge cases. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/spl.h"

/* Fails the test unless got is within tol of want; names the quantity and
 * its index. */
static void check_close(double got, double want, double tol, const char *what,
                        int index) {
  if (!(fabs(got - want) <= tol))
    fail_msg("%s[%d]: got %.9g, want %.9g (tolerance %.3g)", what, index, got,
             want, tol);
}

static void check_all_close(const float *got, const double *want, int n,
                            double tol, const char *what) {
  for (int i = 0; i < n; i++)
    check_close(got[i], want[i], tol, what, i);
}

/* Scores. */

/* Four rows of three classes whose softmax is easy by hand:
 *   0: z = (0, ln 2, 0), y = 0: p = (1/4, 1/2, 1/4);
 *   1: the same shifted by 100, y = 1;
 *   2: z = (1, 1, 1), y = 2: p = 1/3 each;
 *   3: z = (ln 8, 0, 0), y = 0: p = (8/10, 1/10, 1/10). */
enum { SC_N = 4, SC_C = 3 };
static const uint8_t sc_labels[SC_N] = {0, 1, 2, 0};

static void sc_logits(float *z) {
  const float l2 = (float)log(2.0), l8 = (float)log(8.0);
  const float rows[SC_N][SC_C] = {
      {0, l2, 0}, {100, 100 + l2, 100}, {1, 1, 1}, {l8, 0, 0}};

  memcpy(z, rows, sizeof rows);
}

/* Scores of kind for the four rows, checked against want. */
static void sc_expect(spl_score_kind_t kind, const double want[SC_N],
                      const char *what) {
  float z[SC_N * SC_C], score[SC_N];
  spl_score_out_t out = {score, NULL, NULL};

  sc_logits(z);
  spl_scores(z, sc_labels, SC_N, SC_C, kind, &out);
  /* Row 1's logits near 100 carry float rounding of about 4e-6. */
  check_all_close(score, want, SC_N, 2e-5, what);
}

static void test_scores(void **state) {
  const double ln2 = log(2.0), ln3 = log(3.0);
  /* Cross-entropy -ln p_y. */
  const double loss[SC_N] = {log(4.0), ln2, ln3, log(10.0 / 8.0)};
  /* 1 - p_y. */
  const double conf[SC_N] = {0.75, 0.5, 2.0 / 3.0, 0.2};
  /* Rows 0 and 1: (1/2) ln 4 + (1/2) ln 2 = 1.5 ln 2; row 3:
   * 0.8 ln(1.25) + 0.2 ln 10. */
  const double ent[SC_N] = {1.5 * ln2, 1.5 * ln2, ln3,
                            0.8 * log(1.25) + 0.2 * log(10.0)};
  /* (1 - (p_y - max other p)) / 2: row 0 (1 + 1/4) / 2, row 1
   * (1 - 1/4) / 2, row 2 (1 - 0) / 2, row 3 (1 - 0.7) / 2. */
  const double margin[SC_N] = {0.625, 0.375, 0.5, 0.15};

  (void)state;
  sc_expect(SPL_SCORE_LOSS, loss, "loss");
  sc_expect(SPL_SCORE_CONFIDENCE, conf, "confidence");
  sc_expect(SPL_SCORE_ENTROPY, ent, "entropy");
  sc_expect(SPL_SCORE_MARGIN, margin, "margin score");
}

/* The logit margin and the predicted class, with no score asked for. */
static void test_scores_margin_and_pred(void **state) {
  float z[SC_N * SC_C], margin[SC_N];
  uint8_t pred[SC_N];
  spl_score_out_t out = {NULL, margin, pred};
  /* z_y - max other z: -ln 2, ln 2, 0 (a tie), ln 8. */
  const double want[SC_N] = {-log(2.0), log(2.0), 0.0, log(8.0)};
  /* The tie of row 2 goes to the lowest index. */
  const uint8_t want_pred[SC_N] = {1, 1, 0, 0};

  (void)state;
  sc_logits(z);
  spl_scores(z, sc_labels, SC_N, SC_C, SPL_SCORE_LOSS, &out);
  check_all_close(margin, want, SC_N, 2e-5, "logit margin");
  assert_memory_equal(pred, want_pred, SC_N);
}

/* With one class the class is certain: every score and the margin are 0. */
static void test_scores_one_class(void **state) {
  const float z[2] = {5.0f, -3.0f};
  const uint8_t labels[2] = {0, 0};
  float score[2], margin[2];
  uint8_t pred[2] = {9, 9};
  spl_score_out_t out = {score, margin, pred};

  (void)state;
  for (int kind = SPL_SCORE_LOSS; kind <= SPL_SCORE_MARGIN; kind++) {
    spl_scores(z, labels, 2, 1, (spl_score_kind_t)kind, &out);
    for (int i = 0; i < 2; i++) {
      check_close(score[i], 0.0, 1e-12, "one-class score", kind);
      check_close(margin[i], 0.0, 0.0, "one-class margin", i);
      assert_int_equal(pred[i], 0);
    }
  }
}

/* Logits of +-1e4 give exact, finite scores, never NaN or infinity. */
static void test_scores_extreme(void **state) {
  const float z[3 * 3] = {1e4f, -1e4f, 0.0f,  1e4f, -1e4f,
                          0.0f, 1e4f,  -1e4f, 0.0f};
  const uint8_t labels[3] = {0, 1, 2};
  float score[3], margin[3];
  uint8_t pred[3];
  spl_score_out_t out = {score, margin, pred};
  /* Per kind, the scores of labels 0, 1 and 2: p = (1, 0, 0) to within
   * exp(-1e4). */
  const double want[4][3] = {
      {0.0, 2e4, 1e4}, {0.0, 1.0, 1.0}, {0.0, 0.0, 0.0}, {0.0, 1.0, 1.0}};
  const double want_margin[3] = {1e4, -2e4, -1e4};

  (void)state;
  for (int kind = SPL_SCORE_LOSS; kind <= SPL_SCORE_MARGIN; kind++) {
    spl_scores(z, labels, 3, 3, (spl_score_kind_t)kind, &out);
    for (int i = 0; i < 3; i++) {
      assert_true(isfinite(score[i]));
      check_close(score[i], want[kind][i], 1e-3, "extreme score", kind * 3 + i);
      check_close(margin[i], want_margin[i], 1e-3, "extreme margin", i);
      assert_int_equal(pred[i], 0);
    }
  }
}

static void test_scores_empty(void **state) {
  float score[1] = {-7.0f};
  spl_score_out_t out = {score, NULL, NULL};

  (void)state;
  spl_scores(NULL, NULL, 0, 3, SPL_SCORE_ENTROPY, &out);
  assert_true(score[0] == -7.0f);
}

/* Paces. */

/* Each curve from 0.25 to 1 over three selections (t = 0, 1/2, 1). */
static void test_pace_curves(void **state) {
  const spl_curve_t curves[3] = {SPL_CURVE_LINEAR, SPL_CURVE_ROOT,
                                 SPL_CURVE_GEOMETRIC};
  /* linear 0.25 + 0.75 t; root 0.25 + 0.75 sqrt(t); geometric
   * 0.25 * 4^t. */
  const double want[3][3] = {{0.25, 0.625, 1.0},
                             {0.25, 0.25 + 0.75 * sqrt(0.5), 1.0},
                             {0.25, 0.5, 1.0}};

  (void)state;
  for (int c = 0; c < 3; c++) {
    for (int k = 0; k < 3; k++)
      check_close(spl_pace_curve(curves[c], 0.25, 1.0, k, 3), want[c][k], 1e-12,
                  "curve", c * 3 + k);
    /* A single selection is at the start; k past the end stays there. */
    check_close(spl_pace_curve(curves[c], 0.25, 1.0, 0, 1), 0.25, 0.0, "single",
                c);
    check_close(spl_pace_curve(curves[c], 0.25, 1.0, 5, 3), 1.0, 1e-12,
                "past end", c);
  }
  /* A geometric curve from 0 has no ratio and runs linearly instead. */
  check_close(spl_pace_curve(SPL_CURVE_GEOMETRIC, 0.0, 1.0, 1, 3), 0.5, 1e-12,
              "geometric from 0", 0);
  /* The linear fraction the fixed recipe uses is unchanged. */
  check_close(spl_pace_fraction(0.5, 0.8, 1, 4), 0.6, 1e-12, "fraction", 0);
}

static void test_pace_threshold(void **state) {
  (void)state;
  check_close(spl_pace_threshold(0.5, 1.5, 0), 0.5, 0.0, "lambda", 0);
  check_close(spl_pace_threshold(0.5, 1.5, 1), 0.75, 1e-15, "lambda", 1);
  check_close(spl_pace_threshold(0.5, 1.5, 2), 1.125, 1e-15, "lambda", 2);
  check_close(spl_pace_threshold(2.0, 1.0, 7), 2.0, 0.0, "lambda", 7);
}

/* Selection. */

/* Runs spl_select_global over score (n) and checks easy and the count. */
static void global_expect(const float *score, int n, double fraction,
                          const uint8_t *want, int want_kept) {
  uint8_t easy[8];

  memset(easy, 0xaa, sizeof easy);
  assert_int_equal(spl_select_global(score, n, fraction, easy), want_kept);
  assert_memory_equal(easy, want, (size_t)n);
}

static void test_select_global(void **state) {
  /* Lowest: 1 (0.1), 3 (0.2), then 0, 2 and 4 tie at 0.3. */
  const float score[5] = {0.3f, 0.1f, 0.3f, 0.2f, 0.3f};
  const uint8_t three[5] = {1, 1, 0, 1, 0};
  const uint8_t one[5] = {0, 1, 0, 0, 0};
  const uint8_t all[5] = {1, 1, 1, 1, 1};
  const float equal[4] = {2.0f, 2.0f, 2.0f, 2.0f};
  const uint8_t first_two[4] = {1, 1, 0, 0};
  uint8_t untouched = 0x5a;

  (void)state;
  global_expect(score, 5, 0.6, three, 3);
  global_expect(score, 5, 0.5, three, 3); /* 2.5 rounds to 3 */
  global_expect(score, 5, 0.1, one, 1);   /* 0.5 rounds up to 1 */
  global_expect(score, 5, 0.0, one, 1);   /* never empty */
  global_expect(score, 5, 1.0, all, 5);
  global_expect(equal, 4, 0.5, first_two, 2);
  assert_int_equal(spl_select_global(NULL, 0, 0.5, &untouched), 0);
  assert_int_equal(untouched, 0x5a);
}

/* Class 0 at positions 0-3, class 1 only at 4, class 2 absent. */
static void test_select_per_class_edges(void **state) {
  const float score[5] = {0.4f, 0.3f, 0.2f, 0.1f, 0.9f};
  const uint8_t labels[5] = {0, 0, 0, 0, 1};
  /* 0.1: class 0 keeps round(0.4) -> 1 (position 3); class 1's one
   * sample rounds to 0 and is kept. */
  const uint8_t tenth[5] = {0, 0, 0, 1, 1};
  /* 0.5: class 0 keeps 2 (positions 3 and 2), class 1 keeps 1. */
  const uint8_t half[5] = {0, 0, 1, 1, 1};
  uint8_t easy[5], untouched = 0x5a;

  (void)state;
  assert_int_equal(spl_select_per_class(score, labels, 5, 3, 0.1, easy), 2);
  assert_memory_equal(easy, tenth, 5);
  assert_int_equal(spl_select_per_class(score, labels, 5, 3, 0.5, easy), 3);
  assert_memory_equal(easy, half, 5);
  assert_int_equal(spl_select_per_class(NULL, NULL, 0, 3, 0.5, &untouched), 0);
  assert_int_equal(untouched, 0x5a);
}

/* With a single class, per-class selection is the global one. */
static void test_select_one_class(void **state) {
  const float score[6] = {0.6f, 0.2f, 0.2f, 0.9f, 0.1f, 0.5f};
  const uint8_t labels[6] = {0};
  /* Half of 6: 4 (0.1), then 1 and 2 (0.2). */
  const uint8_t want[6] = {0, 1, 1, 0, 1, 0};
  uint8_t easy[6];

  (void)state;
  assert_int_equal(spl_select_per_class(score, labels, 6, 1, 0.5, easy), 3);
  assert_memory_equal(easy, want, 6);
  assert_int_equal(spl_select_global(score, 6, 0.5, easy), 3);
  assert_memory_equal(easy, want, 6);
}

static void test_select_threshold(void **state) {
  const float score[5] = {0.3f, 0.1f, 0.3f, 0.2f, NAN};
  /* Strictly below 0.3; NaN is never easy. */
  const uint8_t want[5] = {0, 1, 0, 1, 0};
  const uint8_t none[5] = {0};
  uint8_t easy[5];

  (void)state;
  assert_int_equal(spl_select_threshold(score, 5, 0.3f, easy), 2);
  assert_memory_equal(easy, want, 5);
  assert_int_equal(spl_select_threshold(score, 5, 0.05, easy), 0);
  assert_memory_equal(easy, none, 5);
}

/* Weight schemes. */

typedef struct {
  double score, lambda, want;
} point_t;

static void weight_expect(spl_weighting_t scheme, double mix_ratio,
                          const point_t *p, int n, const char *what) {
  for (int i = 0; i < n; i++)
    check_close(spl_weight(scheme, p[i].score, p[i].lambda, mix_ratio),
                p[i].want, 1e-12, what, i);
}

static void test_weight_hard(void **state) {
  const point_t p[] = {{0.0, 0.5, 1},
                       {0.2, 0.5, 1},
                       {0.5, 0.5, 0},
                       {0.7, 0.5, 0},
                       {0.0, 0.0, 0}};

  (void)state;
  weight_expect(SPL_WEIGHT_HARD, 0.5, p, 5, "hard");
}

static void test_weight_linear(void **state) {
  /* 1 - l / lambda below lambda, 0 from it on; lambda 0 keeps nothing. */
  const point_t p[] = {{0.0, 0.5, 1.0},     {0.2, 0.5, 0.6},  {0.5, 0.5, 0.0},
                       {0.8, 0.5, 0.0},     {1.0, 4.0, 0.75}, {0.0, 0.0, 0.0},
                       {5.0, INFINITY, 1.0}};

  (void)state;
  weight_expect(SPL_WEIGHT_LINEAR, 0.5, p, 7, "linear");
}

static void test_weight_logarithmic(void **state) {
  const point_t p[] = {
      /* lambda 3/4, z = 1/4: ln(1/2) / ln(1/4) = 1/2 at l = 1/4, and
       * ln(3/4) / ln(1/4) at l = 1/2. */
      {0.0, 0.75, 1.0},
      {0.25, 0.75, 0.5},
      {0.5, 0.75, log(0.75) / log(0.25)},
      {0.75, 0.75, 0.0},
      {1.0, 0.75, 0.0},
      /* lambda 1/2, z = 1/2: ln(3/4) / ln(1/2) at l = 1/4. */
      {0.25, 0.5, log(0.75) / log(0.5)},
      /* lambda >= 1 is scaled to 1/2: 1 - log2(1 + l / lambda). */
      {1.0, 2.0, 1.0 - log2(1.5)},
      {0.5, 1.0, 1.0 - log2(1.5)},
      {0.0, 2.0, 1.0},
      {2.0, 2.0, 0.0},
      {3.0, 2.0, 0.0},
  };

  (void)state;
  weight_expect(SPL_WEIGHT_LOGARITHMIC, 0.5, p, 11, "logarithmic");
}

static void test_weight_mixture(void **state) {
  /* lambda1 = 1, lambda2 = 1/2, z = (1 * 1/2) / (1 - 1/2) = 1:
   * 1/l - 1 between the thresholds. */
  const point_t half[] = {{0.25, 1.0, 1.0},      {0.5, 1.0, 1.0},
                          {2.0 / 3.0, 1.0, 0.5}, {0.8, 1.0, 0.25},
                          {1.0, 1.0, 0.0},       {2.0, 1.0, 0.0}};
  /* lambda1 = 3, lambda2 = 1, z = 3 / 2: 1.5 / l - 1/2. */
  const point_t third[] = {
      {1.0, 3.0, 1.0}, {1.5, 3.0, 0.5}, {2.0, 3.0, 0.25}, {3.0, 3.0, 0.0}};
  /* A ratio of 1 is hard; of 0, only a score of 0 weighs 1. */
  const point_t ratio1[] = {{0.9, 1.0, 1.0}, {1.0, 1.0, 0.0}};
  const point_t ratio0[] = {{0.0, 1.0, 1.0}, {0.5, 1.0, 0.0}};

  (void)state;
  weight_expect(SPL_WEIGHT_MIXTURE, 0.5, half, 6, "mixture 1/2");
  weight_expect(SPL_WEIGHT_MIXTURE, 1.0 / 3.0, third, 4, "mixture 1/3");
  weight_expect(SPL_WEIGHT_MIXTURE, 1.0, ratio1, 2, "mixture 1");
  weight_expect(SPL_WEIGHT_MIXTURE, 0.0, ratio0, 2, "mixture 0");
  /* Continuous at lambda2. */
  check_close(spl_weight(SPL_WEIGHT_MIXTURE, 0.5 + 1e-9, 1.0, 0.5), 1.0, 1e-8,
              "mixture at lambda2", 0);
}

/* NaN in, 0 out, for every scheme; an infinite threshold keeps all. */
static void test_weight_non_finite(void **state) {
  (void)state;
  for (int s = SPL_WEIGHT_HARD; s <= SPL_WEIGHT_MIXTURE; s++) {
    spl_weighting_t scheme = (spl_weighting_t)s;

    check_close(spl_weight(scheme, NAN, 1.0, 0.5), 0.0, 0.0, "nan l", s);
    check_close(spl_weight(scheme, 0.2, NAN, 0.5), 0.0, 0.0, "nan lam", s);
    check_close(spl_weight(scheme, 5.0, INFINITY, 0.5), 1.0, 0.0, "inf", s);
  }
}

/* Selection with weights in one call. */

/* Six samples of classes 0 and 1 (class 2 absent): class 0 at 0 (0.4),
 * 2 (0.1), 3 (0.8), 5 (0.2); class 1 at 1 (0.5), 4 (0.3). */
enum { W_N = 6 };
static const float w_score[W_N] = {0.4f, 0.5f, 0.1f, 0.8f, 0.3f, 0.2f};
static const uint8_t w_labels[W_N] = {0, 1, 0, 0, 1, 0};

static void weights_expect(const spl_config_t *cfg, int k, int count,
                           const uint8_t *want_easy, const double *want,
                           int want_kept) {
  spl_set_t set = {w_score, w_labels, W_N, 3};
  float weight[W_N];
  uint8_t easy[W_N];

  memset(easy, 0xaa, sizeof easy);
  assert_int_equal(spl_weights(&set, cfg, k, count, weight, easy), want_kept);
  assert_memory_equal(easy, want_easy, W_N);
  check_all_close(weight, want, W_N, 1e-6, "weight");
}

static void fraction_config(spl_config_t *cfg, bool per_class,
                            spl_weighting_t weighting) {
  spl_config_init(cfg);
  cfg->start = 0.5;
  cfg->end = 1.0;
  cfg->per_class = per_class;
  cfg->weighting = weighting;
}

static void test_weights_fraction_per_class(void **state) {
  spl_config_t cfg;
  /* k = 1 of 3: fraction 3/4. Class 0 keeps 3 (2, 5, 0), lambda 0.4;
   * class 1 keeps round(1.5) = 2, lambda 0.5. Linear: 1 - l / lambda,
   * 0 at each class's boundary. */
  const uint8_t easy1[W_N] = {1, 1, 1, 0, 1, 1};
  const double lin1[W_N] = {0.0, 0.0, 0.75, 0.0, 0.4, 0.5};
  /* k = 0: fraction 1/2. Class 0 keeps 2 and 5 (lambda 0.2); class 1
   * keeps 4 alone, whose weight 0 at its own lambda becomes 1. */
  const uint8_t easy0[W_N] = {0, 0, 1, 0, 1, 1};
  const double lin0[W_N] = {0.0, 0.0, 0.5, 0.0, 1.0, 0.0};
  const double hard0[W_N] = {0, 0, 1, 0, 1, 1};

  (void)state;
  fraction_config(&cfg, true, SPL_WEIGHT_LINEAR);
  weights_expect(&cfg, 1, 3, easy1, lin1, 5);
  weights_expect(&cfg, 0, 3, easy0, lin0, 3);
  fraction_config(&cfg, true, SPL_WEIGHT_HARD);
  weights_expect(&cfg, 0, 3, easy0, hard0, 3);
}

static void test_weights_fraction_global(void **state) {
  spl_config_t cfg;
  /* Fraction 1/2 of 6: 2 (0.1), 5 (0.2), 4 (0.3); lambda 0.3. */
  const uint8_t easy[W_N] = {0, 0, 1, 0, 1, 1};
  const double lin[W_N] = {0.0, 0.0, 2.0 / 3.0, 0.0, 0.0, 1.0 / 3.0};
  /* Mixture, ratio 1/2: lambda2 = 0.15, z = 0.3 * 0.15 / 0.15 = 0.3;
   * 0.1 <= lambda2 weighs 1, 0.2 weighs 0.3 / 0.2 - 0.3 / 0.3 = 0.5. */
  const double mix[W_N] = {0.0, 0.0, 1.0, 0.0, 0.0, 0.5};
  /* Logarithmic, z = 0.7: ln(0.8) / ln(0.7) and ln(0.9) / ln(0.7). */
  const double lg[W_N] = {0.0, 0.0, log(0.8) / log(0.7),
                          0.0, 0.0, log(0.9) / log(0.7)};

  (void)state;
  fraction_config(&cfg, false, SPL_WEIGHT_LINEAR);
  weights_expect(&cfg, 0, 3, easy, lin, 3);
  fraction_config(&cfg, false, SPL_WEIGHT_MIXTURE);
  weights_expect(&cfg, 0, 3, easy, mix, 3);
  fraction_config(&cfg, false, SPL_WEIGHT_LOGARITHMIC);
  weights_expect(&cfg, 0, 3, easy, lg, 3);
}

/* The auto pace keeps each class's own fraction at every selection k,
 * ignoring the curve and per_class: class 0 keeps 1/4 of 4 (sample 2),
 * class 1 all of 2 (4, then 1 at its lambda 0.5, weight 0 under linear
 * weighting), class 2 has no sample. Without fractions it keeps all. */
static void test_weights_auto(void **state) {
  const double fraction[3] = {0.25, 1.0, 0.0};
  const uint8_t easy[W_N] = {0, 1, 1, 0, 1, 0};
  const uint8_t all[W_N] = {1, 1, 1, 1, 1, 1};
  const double hard[W_N] = {0, 1, 1, 0, 1, 0};
  const double lin[W_N] = {0, 0, 1, 0, 0.4, 0};
  const double ones[W_N] = {1, 1, 1, 1, 1, 1};
  spl_config_t cfg;

  (void)state;
  fraction_config(&cfg, false, SPL_WEIGHT_HARD);
  cfg.pace = SPL_PACE_AUTO;
  cfg.class_fraction = fraction;
  for (int k = 0; k < 3; k++)
    weights_expect(&cfg, k, 3, easy, hard, 3);
  cfg.weighting = SPL_WEIGHT_LINEAR;
  weights_expect(&cfg, 1, 3, easy, lin, 3);
  cfg.class_fraction = NULL;
  cfg.weighting = SPL_WEIGHT_HARD;
  weights_expect(&cfg, 0, 3, all, ones, W_N);
}

/* spl_select_by_class is the auto pace's selection on its own. */
static void test_select_by_class(void **state) {
  const double fraction[3] = {0.5, 0.5, 1.0};
  const uint8_t want[W_N] = {0, 0, 1, 0, 1, 1};
  uint8_t easy[W_N];

  (void)state;
  memset(easy, 0xaa, sizeof easy);
  assert_int_equal(
      spl_select_by_class(w_score, w_labels, W_N, 3, fraction, easy), 3);
  assert_memory_equal(easy, want, W_N);
}

static void test_weights_threshold(void **state) {
  spl_config_t cfg;
  /* lambda 0.25 * 2^1 = 0.5: 0.4, 0.1, 0.3, 0.2 are below, 0.5 is not. */
  const uint8_t easy1[W_N] = {1, 0, 1, 0, 1, 1};
  const double lin1[W_N] = {0.2, 0.0, 0.8, 0.0, 0.4, 0.6};
  /* lambda 0.25 at k = 0: class 1 comes out empty. */
  const uint8_t easy0[W_N] = {0, 0, 1, 0, 0, 1};
  const double hard0[W_N] = {0, 0, 1, 0, 0, 1};
  const uint8_t none[W_N] = {0};
  const double zero[W_N] = {0};

  (void)state;
  spl_config_init(&cfg);
  cfg.pace = SPL_PACE_THRESHOLD;
  cfg.lambda = 0.25;
  cfg.growth = 2.0;
  cfg.weighting = SPL_WEIGHT_LINEAR;
  weights_expect(&cfg, 1, 4, easy1, lin1, 4);
  cfg.per_class = false; /* the threshold ignores classes */
  weights_expect(&cfg, 1, 4, easy1, lin1, 4);
  cfg.weighting = SPL_WEIGHT_HARD;
  weights_expect(&cfg, 0, 4, easy0, hard0, 2);
  /* Below every score nothing is kept and nothing weighs. */
  cfg.lambda = 0.05;
  weights_expect(&cfg, 0, 4, none, zero, 0);
}

/* All scores equal: each class keeps its lowest positions, and every
 * scheme, whose weight at the boundary is 0, gives them 1. */
static void test_weights_equal_scores(void **state) {
  const float score[4] = {0.7f, 0.7f, 0.7f, 0.7f};
  const uint8_t labels[4] = {0, 1, 0, 1};
  const uint8_t want_easy[4] = {1, 1, 0, 0};
  const double want[4] = {1, 1, 0, 0};
  spl_set_t set = {score, labels, 4, 2};
  spl_config_t cfg;
  float weight[4];
  uint8_t easy[4];

  (void)state;
  for (int s = SPL_WEIGHT_HARD; s <= SPL_WEIGHT_MIXTURE; s++) {
    fraction_config(&cfg, true, (spl_weighting_t)s);
    assert_int_equal(spl_weights(&set, &cfg, 0, 2, weight, easy), 2);
    assert_memory_equal(easy, want_easy, 4);
    check_all_close(weight, want, 4, 0.0, "equal scores");
  }
}

/* The default configuration keeps everything at weight 1; an empty set
 * keeps nothing and touches nothing. */
static void test_weights_default_and_empty(void **state) {
  const uint8_t all[W_N] = {1, 1, 1, 1, 1, 1};
  const double ones[W_N] = {1, 1, 1, 1, 1, 1};
  spl_set_t empty = {NULL, NULL, 0, 3};
  spl_config_t cfg;
  float weight = -1.0f;
  uint8_t easy = 0x5a;

  (void)state;
  spl_config_init(&cfg);
  weights_expect(&cfg, 0, 5, all, ones, W_N);
  for (int p = SPL_PACE_FRACTION; p <= SPL_PACE_AUTO; p++) {
    cfg.pace = (spl_pace_kind_t)p;
    assert_int_equal(spl_weights(&empty, &cfg, 0, 5, &weight, &easy), 0);
    assert_true(weight == -1.0f && easy == 0x5a);
  }
}

/* Scores of +-1e4 logits through every pace and scheme: every weight is a
 * number in [0, 1]. */
static void test_weights_extreme(void **state) {
  const float z[4 * 2] = {1e4f, -1e4f, 1e4f, -1e4f, -1e4f, 1e4f, 0, 0};
  const uint8_t labels[4] = {0, 1, 0, 1};
  float score[4], weight[4];
  uint8_t easy[4];
  spl_score_out_t out = {score, NULL, NULL};
  spl_set_t set = {score, labels, 4, 2};
  spl_config_t cfg;

  (void)state;
  spl_scores(z, labels, 4, 2, SPL_SCORE_LOSS, &out);
  for (int p = SPL_PACE_FRACTION; p <= SPL_PACE_THRESHOLD; p++)
    for (int s = SPL_WEIGHT_HARD; s <= SPL_WEIGHT_MIXTURE; s++) {
      fraction_config(&cfg, true, (spl_weighting_t)s);
      cfg.pace = (spl_pace_kind_t)p;
      cfg.lambda = 1.0;
      cfg.growth = 1e3;
      for (int k = 0; k < 3; k++) {
        assert_true(spl_weights(&set, &cfg, k, 3, weight, easy) > 0);
        for (int i = 0; i < 4; i++)
          assert_true(weight[i] >= 0.0f && weight[i] <= 1.0f);
      }
    }
}

/* Final set. */

/* Three epochs of two samples. */
static const float f_loss[3 * 2] = {1.0f, 0.2f, 0.5f, 0.4f, 0.3f, 0.9f};
static const float f_prob[3 * 2] = {0.2f, 0.9f, 0.6f, 0.7f, 0.7f, 0.4f};

static void final_expect(spl_final_stat_t stat, int last, double want0,
                         double want1) {
  spl_history_t h = {f_loss, f_prob, 3, 2};
  const double want[2] = {want0, want1};
  float score[2];

  assert_int_equal(spl_final_scores(&h, stat, last, score), 0);
  check_all_close(score, want, 2, 1e-6, "final");
}

static void test_final_scores(void **state) {
  (void)state;
  /* Last two epochs: means (0.5 + 0.3) / 2 and (0.4 + 0.9) / 2. */
  final_expect(SPL_FINAL_MEAN_LOSS, 2, 0.4, 0.65);
  final_expect(SPL_FINAL_LAST_LOSS, 2, 0.3, 0.9);
  /* 1 - (0.6 + 0.7) / 2 and 1 - (0.7 + 0.4) / 2. */
  final_expect(SPL_FINAL_MEAN_CONFIDENCE, 2, 0.35, 0.45);
  /* All epochs, by default or when asked for more than there are. */
  final_expect(SPL_FINAL_MEAN_LOSS, 0, 0.6, 0.5);
  final_expect(SPL_FINAL_MEAN_LOSS, 7, 0.6, 0.5);
  final_expect(SPL_FINAL_MEAN_CONFIDENCE, 0, 0.5, 1.0 / 3.0);
  final_expect(SPL_FINAL_MEAN_LOSS, 1, 0.3, 0.9);
}

static void test_final_scores_errors(void **state) {
  spl_history_t no_epoch = {f_loss, f_prob, 0, 2};
  spl_history_t no_prob = {f_loss, NULL, 3, 2};
  spl_history_t empty = {NULL, NULL, 0, 0};
  float score[2] = {-1.0f, -1.0f};

  (void)state;
  assert_int_equal(spl_final_scores(&no_epoch, SPL_FINAL_MEAN_LOSS, 0, score),
                   -EINVAL);
  assert_int_equal(
      spl_final_scores(&no_prob, SPL_FINAL_MEAN_CONFIDENCE, 0, score), -EINVAL);
  assert_int_equal(spl_final_scores(&empty, SPL_FINAL_LAST_LOSS, 0, score), 0);
  assert_true(score[0] == -1.0f && score[1] == -1.0f);
  /* The loss statistics do not need the probabilities. */
  assert_int_equal(spl_final_scores(&no_prob, SPL_FINAL_LAST_LOSS, 0, score),
                   0);
  check_close(score[1], 0.9, 1e-6, "last loss", 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scores),
      cmocka_unit_test(test_scores_margin_and_pred),
      cmocka_unit_test(test_scores_one_class),
      cmocka_unit_test(test_scores_extreme),
      cmocka_unit_test(test_scores_empty),
      cmocka_unit_test(test_pace_curves),
      cmocka_unit_test(test_pace_threshold),
      cmocka_unit_test(test_select_global),
      cmocka_unit_test(test_select_per_class_edges),
      cmocka_unit_test(test_select_one_class),
      cmocka_unit_test(test_select_threshold),
      cmocka_unit_test(test_weight_hard),
      cmocka_unit_test(test_weight_linear),
      cmocka_unit_test(test_weight_logarithmic),
      cmocka_unit_test(test_weight_mixture),
      cmocka_unit_test(test_weight_non_finite),
      cmocka_unit_test(test_weights_fraction_per_class),
      cmocka_unit_test(test_weights_fraction_global),
      cmocka_unit_test(test_weights_threshold),
      cmocka_unit_test(test_weights_equal_scores),
      cmocka_unit_test(test_weights_auto),
      cmocka_unit_test(test_select_by_class),
      cmocka_unit_test(test_weights_default_and_empty),
      cmocka_unit_test(test_weights_extreme),
      cmocka_unit_test(test_final_scores),
      cmocka_unit_test(test_final_scores_errors),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
