/* SPDX-License-Identifier: MIT */
/* Self-paced learning's building blocks: scores from one row of logits
 * at a time, paces, selection by sorting each group's scores, the weight
 * schemes and the final-set statistic. Nothing here trains or records;
 * engine/pipeline.c decides when each runs. */
#include "spl.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SPL_MAX_CLASSES = 256 }; /* labels are uint8_t */

/* Scores. */

/* Log-softmax of one row z (C) into out (C), in double precision: the
 * largest logit is subtracted before exponentiating. */
static void row_log_softmax(const float *z, int C, double *out) {
  double max = z[0], sum = 0.0, lse;

  for (int j = 1; j < C; j++)
    if (z[j] > max)
      max = z[j];
  for (int j = 0; j < C; j++)
    sum += exp(z[j] - max);
  lse = max + log(sum);
  for (int j = 0; j < C; j++)
    out[j] = z[j] - lse;
}

/* The largest of v (C) other than v[y]; -INFINITY when C is 1. */
static double row_rival(const double *v, int C, int y) {
  double best = -INFINITY;

  for (int j = 0; j < C; j++)
    if (j != y && v[j] > best)
      best = v[j];
  return best;
}

/* Index of the largest logit, the lowest among equals. */
static int row_argmax(const float *z, int C) {
  int best = 0;

  for (int j = 1; j < C; j++)
    if (z[j] > z[best])
      best = j;
  return best;
}

/* -sum_j p_j log p_j from the log-probabilities ls (C). */
static double row_entropy(const double *ls, int C) {
  double h = 0.0;

  for (int j = 0; j < C; j++)
    h -= exp(ls[j]) * ls[j];
  return h;
}

/* (1 - (p_y - max_{j != y} p_j)) / 2; the rival's probability is 0 when
 * there is no other class. */
static double row_margin_score(const double *ls, int C, int y) {
  double rival = C > 1 ? exp(row_rival(ls, C, y)) : 0.0;

  return (1.0 - (exp(ls[y]) - rival)) / 2.0;
}

/* One sample's score from its log-probabilities ls (C) and label y,
 * never below 0 (rounding may leave a log-probability a hair above 0). */
static double row_score(spl_score_kind_t kind, const double *ls, int C, int y) {
  switch (kind) {
  case SPL_SCORE_CONFIDENCE:
    return fmax(0.0, -expm1(ls[y]));
  case SPL_SCORE_ENTROPY:
    return fmax(0.0, row_entropy(ls, C));
  case SPL_SCORE_MARGIN:
    return fmax(0.0, row_margin_score(ls, C, y));
  case SPL_SCORE_LOSS:
  default:
    return fmax(0.0, -ls[y]);
  }
}

void spl_scores(const float *logits, const uint8_t *labels, int n, int C,
                spl_score_kind_t kind, const spl_score_out_t *out) {
  double ls[SPL_MAX_CLASSES];

  assert(n <= 0 || (C >= 1 && C <= SPL_MAX_CLASSES));
  for (int i = 0; i < n; i++) {
    const float *z = logits + (size_t)i * (size_t)C;
    int y = labels[i];

    assert(y < C);
    row_log_softmax(z, C, ls);
    if (out->score)
      out->score[i] = (float)row_score(kind, ls, C, y);
    /* Differences of log-probabilities are differences of logits. */
    if (out->margin)
      out->margin[i] = C > 1 ? (float)(ls[y] - row_rival(ls, C, y)) : 0.0f;
    if (out->pred)
      out->pred[i] = (uint8_t)row_argmax(z, C);
  }
}

/* Paces. */

double spl_pace_fraction(double start, double end, int k, int count) {
  return spl_pace_curve(SPL_CURVE_LINEAR, start, end, k, count);
}

double spl_pace_curve(spl_curve_t curve, double start, double end, int k,
                      int count) {
  double t;

  if (count <= 1)
    return start;
  t = (double)k / (double)(count - 1);
  t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
  switch (curve) {
  case SPL_CURVE_ROOT:
    return start + (end - start) * sqrt(t);
  case SPL_CURVE_GEOMETRIC:
    if (start > 0.0 && end > 0.0)
      return start * pow(end / start, t);
    return start + (end - start) * t;
  case SPL_CURVE_LINEAR:
  default:
    return start + (end - start) * t;
  }
}

double spl_pace_threshold(double lambda, double growth, int k) {
  return lambda * pow(growth, (double)k);
}

/* Selection. */

typedef struct {
  float score;
  int32_t pos;
} ranked_t;

/* Ascending score, NaN last, then ascending position. */
static int ranked_cmp(const void *a, const void *b) {
  const ranked_t *x = a, *y = b;
  int xn = isnan(x->score) != 0, yn = isnan(y->score) != 0;

  if (xn != yn)
    return xn - yn;
  if (!xn && x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Copies into r the samples of class c, or all samples when c < 0, and
 * returns how many. */
static int group_gather(const spl_set_t *s, int c, ranked_t *r) {
  int m = 0;

  for (int i = 0; i < s->n; i++)
    if (c < 0 || s->labels[i] == c)
      r[m++] = (ranked_t){s->score[i], i};
  return m;
}

/* How many of m samples a fraction keeps: round(fraction * m), at least
 * one and at most m (a NaN fraction keeps one). */
static int group_keep_count(double fraction, int m) {
  double want = fraction * m;

  if (!(want >= 1.0))
    return 1;
  if (want >= m)
    return m;
  return (int)llround(want);
}

/* Sorts the group r (m > 0) and marks its kept samples in easy; writes
 * the last kept score to *last when last is not NULL. */
static int group_keep(ranked_t *r, int m, double fraction, uint8_t *easy,
                      double *last) {
  int keep = group_keep_count(fraction, m);

  qsort(r, (size_t)m, sizeof *r, ranked_cmp);
  for (int i = 0; i < keep; i++)
    easy[r[i].pos] = 1;
  if (last)
    *last = r[keep - 1].score;
  return keep;
}

/* A fraction pace over s, per class or over the whole set: group g
 * keeps fractions[g], or `fraction` when fractions is NULL. lambda, when
 * not NULL, receives the last kept score of each group (index 0 for the
 * whole set; a class without samples gets 0). */
typedef struct {
  bool per_class;
  double fraction;
  const double *fractions;
} spl_keep_t;

static int select_fraction(const spl_set_t *s, const spl_keep_t *keep,
                           uint8_t *easy, double *lambda) {
  bool per_class = keep->per_class;
  int groups = per_class ? s->classes : 1, kept = 0;
  ranked_t *r = malloc(sizeof *r * (size_t)(s->n > 0 ? s->n : 1));

  if (!r)
    return -ENOMEM;
  if (s->n > 0)
    memset(easy, 0, (size_t)s->n);
  for (int g = 0; g < groups; g++) {
    int m = group_gather(s, per_class ? g : -1, r);
    double *last = lambda ? &lambda[g] : NULL;

    if (last)
      *last = 0.0;
    if (m > 0)
      kept += group_keep(r, m,
                         keep->fractions ? keep->fractions[g] : keep->fraction,
                         easy, last);
  }
  free(r);
  return kept;
}

int spl_select_per_class(const float *score, const uint8_t *labels, int n,
                         int classes, double fraction, uint8_t *easy) {
  spl_set_t s = {score, labels, n, classes};
  spl_keep_t keep = {true, fraction, NULL};

  return select_fraction(&s, &keep, easy, NULL);
}

int spl_select_by_class(const float *score, const uint8_t *labels, int n,
                        int classes, const double *fraction, uint8_t *easy) {
  spl_set_t s = {score, labels, n, classes};
  spl_keep_t keep = {true, 0.0, fraction};

  return select_fraction(&s, &keep, easy, NULL);
}

int spl_select_global(const float *score, int n, double fraction,
                      uint8_t *easy) {
  spl_set_t s = {score, NULL, n, 1};
  spl_keep_t keep = {false, fraction, NULL};

  return select_fraction(&s, &keep, easy, NULL);
}

int spl_select_threshold(const float *score, int n, double lambda,
                         uint8_t *easy) {
  int kept = 0;

  for (int i = 0; i < n; i++) {
    easy[i] = score[i] < lambda;
    kept += easy[i];
  }
  return kept;
}

/* Weights. */

/* w clamped to [0, 1], NaN to 0. */
static double clamp_unit(double w) {
  if (!(w > 0.0))
    return 0.0;
  return w > 1.0 ? 1.0 : w;
}

/* The logarithmic scheme for 0 <= l < lambda, lambda > 0. log1p keeps
 * log(z) = log1p(-lambda) away from 0 when lambda is tiny. */
static double weight_log(double l, double lambda) {
  if (lambda >= 1.0) {
    l = l / lambda * 0.5;
    lambda = 0.5;
  }
  if (l <= 0.0)
    return 1.0;
  return log1p(l - lambda) / log1p(-lambda);
}

/* The mixture scheme for l < lambda, lambda > 0. */
static double weight_mixture(double l, double lambda, double mix_ratio) {
  double lambda2, z;

  if (mix_ratio >= 1.0)
    return 1.0;
  lambda2 = mix_ratio > 0.0 ? mix_ratio * lambda : 0.0;
  if (l <= lambda2)
    return 1.0;
  z = lambda * lambda2 / (lambda - lambda2);
  return z / l - z / lambda;
}

double spl_weight(spl_weighting_t scheme, double score, double lambda,
                  double mix_ratio) {
  if (isnan(score) || isnan(lambda) || !(score < lambda))
    return 0.0;
  if (lambda <= 0.0)
    return 1.0;
  switch (scheme) {
  case SPL_WEIGHT_LINEAR:
    return clamp_unit(1.0 - score / lambda);
  case SPL_WEIGHT_LOGARITHMIC:
    return clamp_unit(weight_log(score, lambda));
  case SPL_WEIGHT_MIXTURE:
    return clamp_unit(weight_mixture(score, lambda, mix_ratio));
  case SPL_WEIGHT_HARD:
  default:
    return 1.0;
  }
}

void spl_config_init(spl_config_t *cfg) {
  *cfg = (spl_config_t){.pace = SPL_PACE_FRACTION,
                        .curve = SPL_CURVE_LINEAR,
                        .start = 1.0,
                        .end = 1.0,
                        .lambda = 1.0,
                        .growth = 1.0,
                        .per_class = true,
                        .weighting = SPL_WEIGHT_HARD,
                        .mix_ratio = 0.5};
}

/* Whether cfg's groups are the classes rather than the whole set. */
static bool weights_per_class(const spl_config_t *cfg) {
  return cfg->pace == SPL_PACE_AUTO ||
         (cfg->pace == SPL_PACE_FRACTION && cfg->per_class);
}

/* Weighs the kept samples of s with each group's threshold; a group whose
 * kept samples all weigh 0 has them weigh 1. */
static void weigh(const spl_set_t *s, const spl_config_t *cfg,
                  const double *lambda, const uint8_t *easy, float *weight) {
  bool alive[SPL_MAX_CLASSES] = {false};
  bool per_class = weights_per_class(cfg);

  for (int i = 0; i < s->n; i++) {
    int g = per_class ? s->labels[i] : 0;

    assert(g < SPL_MAX_CLASSES && (!per_class || g < s->classes));
    /* Membership is the selection's: hard weighting keeps the boundary
     * sample that a fraction pace kept at a score equal to lambda. */
    weight[i] = easy[i] ? 1.0f : 0.0f;
    if (easy[i] && cfg->weighting != SPL_WEIGHT_HARD)
      weight[i] = (float)spl_weight(cfg->weighting, s->score[i], lambda[g],
                                    cfg->mix_ratio);
    if (weight[i] > 0.0f)
      alive[g] = true;
  }
  for (int i = 0; i < s->n; i++)
    if (easy[i] && !alive[per_class ? s->labels[i] : 0])
      weight[i] = 1.0f;
}

int spl_weights(const spl_set_t *set, const spl_config_t *cfg, int k, int count,
                float *weight, uint8_t *easy) {
  double lambda[SPL_MAX_CLASSES];
  bool per_class = weights_per_class(cfg);
  int kept;

  if (set->n <= 0)
    return 0;
  assert(!per_class || set->classes <= SPL_MAX_CLASSES);
  if (cfg->pace == SPL_PACE_THRESHOLD) {
    lambda[0] = spl_pace_threshold(cfg->lambda, cfg->growth, k);
    kept = spl_select_threshold(set->score, set->n, lambda[0], easy);
  } else {
    spl_keep_t keep = {per_class, 1.0, NULL};
    if (cfg->pace == SPL_PACE_AUTO)
      keep.fractions = cfg->class_fraction;
    else
      keep.fraction =
          spl_pace_curve(cfg->curve, cfg->start, cfg->end, k, count);
    kept = select_fraction(set, &keep, easy, lambda);
  }
  if (kept >= 0)
    weigh(set, cfg, lambda, easy, weight);
  return kept;
}

/* Final set. */

/* The history a statistic averages, NULL for an unknown statistic. */
static const float *final_source(const spl_history_t *h,
                                 spl_final_stat_t stat) {
  switch (stat) {
  case SPL_FINAL_MEAN_LOSS:
  case SPL_FINAL_LAST_LOSS:
    return h->loss;
  case SPL_FINAL_MEAN_CONFIDENCE:
    return h->prob;
  default:
    return NULL;
  }
}

int spl_final_scores(const spl_history_t *h, spl_final_stat_t stat, int last,
                     float *score) {
  const float *src = final_source(h, stat);
  int first = last <= 0 || last > h->epochs ? 0 : h->epochs - last;

  if (h->n <= 0)
    return 0;
  if (h->epochs < 1 || !src)
    return -EINVAL;
  if (stat == SPL_FINAL_LAST_LOSS)
    first = h->epochs - 1;
  for (int i = 0; i < h->n; i++) {
    double sum = 0.0, mean;

    for (int e = first; e < h->epochs; e++)
      sum += src[(size_t)e * (size_t)h->n + (size_t)i];
    mean = sum / (h->epochs - first);
    score[i] = (float)(stat == SPL_FINAL_MEAN_CONFIDENCE ? 1.0 - mean : mean);
  }
  return 0;
}
