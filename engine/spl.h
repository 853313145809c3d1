/* SPDX-License-Identifier: MIT */
/* Self-paced learning: per-sample difficulty scores from logits, the pace
 * that decides how many samples count as easy, the regulariser that turns
 * a score into a training weight, and the statistic that ranks the final
 * easy set. Pure functions; the pipeline decides when to call them. */
#ifndef SPK_ENGINE_SPL_H
#define SPK_ENGINE_SPL_H

#include <stdbool.h>
#include <stdint.h>

/* How hard a sample is; every score is >= 0 and lower is easier. With
 * p = softmax(z) for logits z and y the observed label:
 *   LOSS        -log p_y (cross-entropy), in [0, inf);
 *   CONFIDENCE  1 - p_y, in [0, 1];
 *   ENTROPY     -sum_j p_j log p_j, in [0, log C];
 *   MARGIN      (1 - (p_y - max_{j != y} p_j)) / 2, in [0, 1]: the
 *               negative margin on probabilities, shifted and halved so
 *               that it stays non-negative like the others (a threshold
 *               grows by multiplication and the weighting schemes assume
 *               scores >= 0); 1/2 is the decision boundary. */
typedef enum {
  SPL_SCORE_LOSS,
  SPL_SCORE_CONFIDENCE,
  SPL_SCORE_ENTROPY,
  SPL_SCORE_MARGIN
} spl_score_kind_t;

/* Per-sample outputs of spl_scores, each (n); any may be NULL. margin is
 * the logit margin z_y - max_{j != y} z_j (what the area under the margin
 * averages; 0 with a single class), pred the arg max of the logits (the
 * lowest index among equal maxima). */
typedef struct {
  float *score;
  float *margin;
  uint8_t *pred;
} spl_score_out_t;

/* Scores logits (n, C) against observed labels (n), each label < C and
 * C <= 256, computing the log-softmax of each row in double precision so
 * that logits of any finite size give finite results. Writes into the
 * caller's arrays in out; n == 0 writes nothing. */
void spl_scores(const float *logits, const uint8_t *labels, int n, int C,
                spl_score_kind_t kind, const spl_score_out_t *out);

/* How the kept fraction moves from start to end over the selections,
 * with t = k / (count - 1) for selection k of count (t = 0 when count is
 * 1):
 *   LINEAR     start + (end - start) t;
 *   ROOT       start + (end - start) sqrt(t), fast at first;
 *   GEOMETRIC  start (end / start)^t, slow at first; needs start and end
 *              > 0 and falls back to LINEAR otherwise. */
typedef enum {
  SPL_CURVE_LINEAR,
  SPL_CURVE_ROOT,
  SPL_CURVE_GEOMETRIC
} spl_curve_t;

/* The kept fraction at selection k of count (k from 0) on a linear
 * curve; start when count is 1. */
double spl_pace_fraction(double start, double end, int k, int count);

/* The kept fraction at selection k of count on the given curve. t is
 * clamped into [0, 1], so k outside [0, count) gives start or end. */
double spl_pace_curve(spl_curve_t curve, double start, double end, int k,
                      int count);

/* The threshold of classic self-paced learning at selection k (from 0):
 * lambda_k = lambda * growth^k. May overflow to infinity, never NaN for
 * finite inputs with lambda >= 0 and growth > 0. */
double spl_pace_threshold(double lambda, double growth, int k);

/* Per observed class c with n_c samples, marks easy[i] = 1 for the
 * round(fraction * n_c) samples of lowest score (at least one when
 * n_c > 0), 0 for the rest. Ties go to the lower position; NaN scores
 * rank last. score, labels and easy are (n), labels < classes. Returns
 * the number kept, or -ENOMEM when memory runs out. */
int spl_select_per_class(const float *score, const uint8_t *labels, int n,
                         int classes, double fraction, uint8_t *easy);

/* As spl_select_per_class with its own fraction for each class:
 * fraction (classes). */
int spl_select_by_class(const float *score, const uint8_t *labels, int n,
                        int classes, const double *fraction, uint8_t *easy);

/* Marks easy[i] = 1 for the round(fraction * n) samples of lowest score
 * over the whole set (at least one when n > 0), 0 for the rest; ties go
 * to the lower position. score and easy are (n). Returns the number kept,
 * or -ENOMEM when memory runs out. */
int spl_select_global(const float *score, int n, double fraction,
                      uint8_t *easy);

/* Marks easy[i] = 1 when score[i] < lambda, 0 otherwise (NaN is never
 * easy). A threshold takes no account of classes: a class, or the whole
 * set, may come out empty. Returns the number kept. */
int spl_select_threshold(const float *score, int n, double lambda,
                         uint8_t *easy);

/* The self-paced regularisers: the weight w in [0, 1] of a sample with
 * score l at threshold lambda > 0.
 *   HARD         1 if l < lambda, else 0.
 *   LINEAR       max(0, 1 - l / lambda).
 *   LOGARITHMIC  for 0 < lambda < 1, with z = 1 - lambda:
 *                log(l + z) / log(z) if l < lambda, else 0; it falls
 *                from 1 at l = 0 to 0 at l = lambda. The formula needs
 *                lambda < 1, so for lambda >= 1 it is applied to l and
 *                lambda divided by 2 lambda (z = 1/2), which gives
 *                1 - log2(1 + l / lambda) for l < lambda.
 *   MIXTURE      with lambda1 = lambda, lambda2 = mix_ratio * lambda and
 *                z = lambda1 lambda2 / (lambda1 - lambda2):
 *                1 if l <= lambda2, 0 if l >= lambda1, else
 *                z / l - z / lambda1 (continuous at both thresholds).
 *                mix_ratio lies in (0, 1); at 1 or above the scheme is
 *                HARD, at 0 or below only l <= 0 weighs 1.
 * Every result is clamped to [0, 1]. With lambda <= 0 every scheme is
 * HARD; a NaN score or lambda weighs 0. */
typedef enum {
  SPL_WEIGHT_HARD,
  SPL_WEIGHT_LINEAR,
  SPL_WEIGHT_LOGARITHMIC,
  SPL_WEIGHT_MIXTURE
} spl_weighting_t;

double spl_weight(spl_weighting_t scheme, double score, double lambda,
                  double mix_ratio);

typedef enum {
  SPL_PACE_FRACTION,
  SPL_PACE_THRESHOLD,
  SPL_PACE_AUTO
} spl_pace_kind_t;

/* Everything that decides the easy set and its weights. The fraction pace
 * keeps the curve's fraction of lowest scores, of each class when
 * per_class is true (no class is starved) or of the whole set; the
 * threshold pace keeps the scores below lambda * growth^k and ignores
 * per_class; the auto pace keeps class_fraction[c] of each observed
 * class c at every selection (the caller sets it from an estimate of
 * the clean share; NULL keeps every sample) and ignores per_class and
 * the curve. */
typedef struct {
  spl_pace_kind_t pace;
  spl_curve_t curve;            /* fraction pace */
  double start, end;            /* fraction pace: first and last fraction */
  double lambda, growth;        /* threshold pace */
  bool per_class;               /* fraction pace */
  spl_weighting_t weighting;    /* scheme for the kept samples */
  double mix_ratio;             /* mixture: lambda2 / lambda1, in (0, 1) */
  const double *class_fraction; /* auto pace: (classes), each in [0, 1] */
} spl_config_t;

/* Sets cfg to keep every sample with weight 1: fraction pace from 1 to 1
 * on a linear curve, per class, hard weighting, lambda 1, growth 1, a
 * mixture ratio of 1/2 and no class fractions. */
void spl_config_init(spl_config_t *cfg);

/* The scored training set handed to spl_weights. */
typedef struct {
  const float *score;    /* (n), lower is easier */
  const uint8_t *labels; /* (n), observed classes, each < classes;
                          * NULL allowed unless selecting per class */
  int n, classes;
} spl_set_t;

/* Selection k of count (from 0) under cfg in one call: writes easy (n),
 * 1 for a kept sample and 0 otherwise, and weight (n), the scheme's
 * weight of each kept sample (1 under HARD) and 0 for the rest. The
 * threshold of the weighting is lambda_k for the threshold pace; for the
 * fraction and auto paces it is the score of the last sample kept, in
 * its class (per_class, always under auto) or in the whole set. The
 * scheme gives that boundary sample weight 0; when every kept sample of
 * a group (class or set) would weigh 0, as with one kept sample or all
 * scores equal, the group's kept samples weigh 1 instead, so that the
 * fraction pace never starves a group. Returns the
 * number kept, which the threshold pace may leave at 0 (the caller then
 * has nothing to train on), or -ENOMEM. */
int spl_weights(const spl_set_t *set, const spl_config_t *cfg, int k, int count,
                float *weight, uint8_t *easy);

/* What ranks the final easy set, over the last epochs of a history:
 *   MEAN_LOSS        mean of the per-epoch losses;
 *   LAST_LOSS        the loss at the last epoch;
 *   MEAN_CONFIDENCE  1 - the mean probability of the observed label. */
typedef enum {
  SPL_FINAL_MEAN_LOSS,
  SPL_FINAL_LAST_LOSS,
  SPL_FINAL_MEAN_CONFIDENCE
} spl_final_stat_t;

/* Per-epoch histories of the training set, row e holding epoch e:
 * loss (epochs, n) of cross-entropies and prob (epochs, n) of the
 * probability of the observed label. A statistic that does not need one
 * of them accepts NULL there. */
typedef struct {
  const float *loss;
  const float *prob;
  int epochs, n;
} spl_history_t;

/* Writes into score (n) the statistic over the last `last` epochs of h
 * (all of them when last <= 0 or last > epochs); LAST_LOSS ignores last.
 * Returns 0 (at once when n is 0), or -EINVAL when h has samples but no
 * epoch, lacks the history the statistic needs, or stat is unknown;
 * score is then left untouched. */
int spl_final_scores(const spl_history_t *h, spl_final_stat_t stat, int last,
                     float *score);

#endif
