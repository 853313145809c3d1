/* SPDX-License-Identifier: MIT */
/* Noise-detection measures: split counts, a tie-aware AUROC by sorting,
 * and noise-rate estimators: two-component 1-D Gaussian and beta
 * mixtures fitted by EM, and confident learning. Callers own every
 * array; nothing here keeps state. */
#include "detect.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int detect_split(const uint8_t *easy, const uint8_t *corrupted, int n,
                 detect_split_t *out) {
  detect_split_t s = {0};

  if ((n > 0 && (!easy || !corrupted)) || n < 0 || !out)
    return -EINVAL;
  s.n = n;
  for (int i = 0; i < n; i++) {
    int is_easy = easy[i] != 0, is_clean = corrupted[i] == 0;
    s.easy += is_easy;
    s.clean += is_clean;
    s.clean_easy += is_easy && is_clean;
  }
  s.precision_defined = s.easy > 0;
  s.recall_defined = s.clean > 0;
  if (s.precision_defined)
    s.precision = (double)s.clean_easy / s.easy;
  if (s.recall_defined)
    s.recall = (double)s.clean_easy / s.clean;
  *out = s;
  return 0;
}

/* One sample as the AUROC sees it. */
typedef struct {
  float score;
  uint8_t positive;
} detect_item_t;

static int item_cmp(const void *pa, const void *pb) {
  float a = ((const detect_item_t *)pa)->score;
  float b = ((const detect_item_t *)pb)->score;
  return (a > b) - (a < b);
}

/* Walks items sorted by ascending score one tie group at a time. Each
 * positive beats every negative below its group and ties half of the
 * negatives inside it; the sum is the Mann-Whitney U of the positives. */
static double sorted_u(const detect_item_t *items, int n) {
  double u = 0;
  int64_t neg_below = 0;

  for (int i = 0; i < n;) {
    int64_t pos = 0, neg = 0;
    int j = i;
    for (; j < n && items[j].score == items[i].score; j++) {
      pos += items[j].positive;
      neg += !items[j].positive;
    }
    u += (double)pos * (double)neg_below + 0.5 * (double)pos * (double)neg;
    neg_below += neg;
    i = j;
  }
  return u;
}

int detect_auroc(const float *score, const uint8_t *corrupted, int n,
                 double *auroc) {
  detect_item_t *items;
  int64_t pos = 0;

  if ((n > 0 && (!score || !corrupted)) || n < 0 || !auroc)
    return -EINVAL;
  for (int i = 0; i < n; i++) {
    if (isnan(score[i]))
      return -EINVAL;
    pos += corrupted[i] != 0;
  }
  if (pos == 0 || pos == n) {
    *auroc = 0.5;
    return -EDOM;
  }

  items = malloc(sizeof *items * (size_t)n);
  if (!items)
    return -ENOMEM;
  for (int i = 0; i < n; i++) {
    items[i].score = score[i];
    items[i].positive = corrupted[i] != 0;
  }
  qsort(items, (size_t)n, sizeof *items, item_cmp);
  *auroc = sorted_u(items, n) / ((double)pos * (double)(n - pos));
  free(items);
  return 0;
}

/* The noise-rate mixture. Component 0 starts on the lower half of the
 * values and component 1 on the upper half. */
enum { MIX_MAX_ITER = 500 };
#define MIX_LOSS_SHIFT 0.05  /* nats added before the log */
#define MIX_TOL 1e-10        /* relative change of the log-likelihood */
#define MIX_VAR_FLOOR 1e-3   /* share of the data's variance */
#define MIX_WEIGHT_MIN 1e-12 /* a component this light has vanished */
#define MIX_LOG_2PI 1.8378770664093453

typedef struct {
  double w[2], mu[2], var[2];
} detect_mix_t;

static int double_cmp(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* Mean and population variance of x (n >= 1). */
static void moments(const double *x, int n, double *mean, double *var) {
  double s = 0, ss = 0;

  for (int i = 0; i < n; i++)
    s += x[i];
  s /= n;
  for (int i = 0; i < n; i++)
    ss += (x[i] - s) * (x[i] - s);
  *mean = s;
  *var = ss / n;
}

/* Each component starts as the moments of one half of the sorted values,
 * the halves split at the median (n >= 2). */
static void mix_start(const double *sorted, int n, double var_floor,
                      detect_mix_t *m) {
  int half = n / 2;

  moments(sorted, half, &m->mu[0], &m->var[0]);
  moments(sorted + half, n - half, &m->mu[1], &m->var[1]);
  for (int k = 0; k < 2; k++)
    m->var[k] = fmax(m->var[k], var_floor);
  m->w[0] = (double)half / n;
  m->w[1] = 1.0 - m->w[0];
}

/* Log of w_k times the normal density of component k at v. */
static double mix_log_term(const detect_mix_t *m, int k, double v) {
  double d = v - m->mu[k];
  return log(m->w[k]) - 0.5 * (MIX_LOG_2PI + log(m->var[k])) -
         d * d / (2 * m->var[k]);
}

/* E step: resp[i] is the posterior of component 1 for x[i]. Returns the
 * log-likelihood of the data under m. */
static double mix_expect(const detect_mix_t *m, const double *x, int n,
                         double *resp) {
  double ll = 0;

  for (int i = 0; i < n; i++) {
    double a = mix_log_term(m, 0, x[i]), b = mix_log_term(m, 1, x[i]);
    double top = fmax(a, b);
    double ea = exp(a - top), eb = exp(b - top);
    resp[i] = eb / (ea + eb);
    ll += top + log(ea + eb);
  }
  return ll;
}

/* M step: weights, means and floored variances from the posteriors.
 * Returns -1, leaving m alone, when a component has lost all its weight. */
static int mix_maximize(detect_mix_t *m, const double *x, int n,
                        const double *resp, double var_floor) {
  double r[2] = {0, 0}, s[2] = {0, 0}, ss[2] = {0, 0};

  for (int i = 0; i < n; i++) {
    r[1] += resp[i];
    s[1] += resp[i] * x[i];
    s[0] += (1 - resp[i]) * x[i];
  }
  r[0] = n - r[1];
  if (r[0] < MIX_WEIGHT_MIN * n || r[1] < MIX_WEIGHT_MIN * n)
    return -1;
  for (int k = 0; k < 2; k++)
    s[k] /= r[k];
  for (int i = 0; i < n; i++) {
    double d0 = x[i] - s[0], d1 = x[i] - s[1];
    ss[0] += (1 - resp[i]) * d0 * d0;
    ss[1] += resp[i] * d1 * d1;
  }
  for (int k = 0; k < 2; k++) {
    m->w[k] = r[k] / n;
    m->mu[k] = s[k];
    m->var[k] = fmax(ss[k] / r[k], var_floor);
  }
  return 0;
}

/* Runs EM from m until the log-likelihood settles, a component vanishes
 * or MIX_MAX_ITER steps have run. resp is scratch of n doubles. */
static void mix_fit(detect_mix_t *m, const double *x, int n, double var_floor,
                    double *resp) {
  double prev = -HUGE_VAL;

  for (int it = 0; it < MIX_MAX_ITER; it++) {
    double ll = mix_expect(m, x, n, resp);
    if (it > 0 && fabs(ll - prev) <= MIX_TOL * fabs(ll))
      break;
    prev = ll;
    if (mix_maximize(m, x, n, resp, var_floor))
      break;
  }
}

/* The value the mixture is fitted to for one mean loss: its log, shifted
 * so that every loss below a few hundredths of a nat (probability of the
 * label above about 0.95) sits in one smooth lump. Without the shift,
 * near-zero losses spread over a long tail, and a batch of exact zeros
 * becomes a spike that captures a component. */
static double mix_value(float loss) {
  return log((double)loss + MIX_LOSS_SHIFT);
}

/* Fits the mixture to the sorted values x (n >= 2, not all equal) and
 * returns the weight of its higher component. scratch holds n doubles. */
static double mix_rate(const double *x, int n, double *scratch) {
  double mean, var, var_floor;
  detect_mix_t m;

  moments(x, n, &mean, &var);
  var_floor = MIX_VAR_FLOOR * var;
  mix_start(x, n, var_floor, &m);
  mix_fit(&m, x, n, var_floor, scratch);
  return m.mu[1] >= m.mu[0] ? m.w[1] : m.w[0];
}

int detect_noise_rate(const float *mean_loss, int n, double *rate) {
  double *x;

  if ((n > 0 && !mean_loss) || n < 0 || !rate)
    return -EINVAL;
  for (int i = 0; i < n; i++)
    if (!isfinite(mean_loss[i]) || mean_loss[i] < 0)
      return -EINVAL;
  *rate = 0;
  if (n < 2)
    return 0;

  /* The values, sorted, then n doubles of scratch for the E step. */
  x = malloc(sizeof *x * 2 * (size_t)n);
  if (!x)
    return -ENOMEM;
  for (int i = 0; i < n; i++)
    x[i] = mix_value(mean_loss[i]);
  qsort(x, (size_t)n, sizeof *x, double_cmp);
  if (x[n - 1] - x[0] > 1e-12 * fmax(1.0, fabs(x[0])))
    *rate = mix_rate(x, n, x + n);
  free(x);
  return 0;
}

/* Confident learning. */

enum { DETECT_CLASSES_MAX = 256 };

/* 0 when in is what detect_noise_confident accepts, else -EINVAL. */
static int probs_check(const detect_probs_t *in) {
  if (!in || in->n < 0 || in->classes < 1 || in->classes > DETECT_CLASSES_MAX ||
      (in->n > 0 && (!in->probs || !in->labels)))
    return -EINVAL;
  for (int i = 0; i < in->n; i++) {
    const float *p = in->probs + (size_t)i * in->classes;
    if (in->labels[i] >= in->classes)
      return -EINVAL;
    for (int j = 0; j < in->classes; j++)
      if (!(p[j] >= 0.0f && p[j] <= 1.0f))
        return -EINVAL;
  }
  return 0;
}

/* t_j: the mean probability of class j over the samples labelled j,
 * infinite for a class nobody carries. count (classes) receives n_j. */
static void confident_thresholds(const detect_probs_t *in, double *t,
                                 int64_t *count) {
  int C = in->classes;

  for (int j = 0; j < C; j++)
    t[j] = 0.0, count[j] = 0;
  for (int i = 0; i < in->n; i++) {
    int y = in->labels[i];
    t[y] += in->probs[(size_t)i * C + y];
    count[y]++;
  }
  for (int j = 0; j < C; j++)
    t[j] = count[j] > 0 ? t[j] / (double)count[j] : HUGE_VAL;
}

/* The class that confidently claims a sample of probabilities p (C):
 * the most probable among the classes at or above their threshold, or -1
 * when there is none. */
static int confident_column(const float *p, int C, const double *t) {
  int best = -1;

  for (int j = 0; j < C; j++)
    if (p[j] >= t[j] && (best < 0 || p[j] > p[best]))
      best = j;
  return best;
}

int detect_noise_confident(const detect_probs_t *in, double *per_class,
                           double *rate) {
  double t[DETECT_CLASSES_MAX];
  int64_t count[DETECT_CLASSES_MAX], rejected[DETECT_CLASSES_MAX] = {0};
  int64_t total = 0;
  int C;

  if (probs_check(in) || !rate)
    return -EINVAL;
  C = in->classes;
  confident_thresholds(in, t, count);
  for (int i = 0; i < in->n; i++) {
    int j = confident_column(in->probs + (size_t)i * C, C, t);
    if (j >= 0 && j != in->labels[i])
      rejected[in->labels[i]]++;
  }
  for (int y = 0; y < C; y++) {
    if (per_class)
      per_class[y] = count[y] > 0 ? (double)rejected[y] / count[y] : 0.0;
    total += rejected[y];
  }
  *rate = in->n > 0 ? (double)total / in->n : 0.0;
  return 0;
}

/* The beta mixture. Component 0 starts on the values below 1/2 (the
 * corrupted side), component 1 on the rest. */
#define BETA_CLAMP 1e-4
#define BETA_START_SPLIT 0.5
#define BETA_MAX_ITER 300
#define BETA_TOL 1e-9

typedef struct {
  double w[2], a[2], b[2];
} detect_beta_t;

/* log B(a, b). */
static double log_beta_fn(double a, double b) {
  return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/* Parameters of a beta of mean m and variance v by the method of
 * moments; the variance is kept below m (1 - m), where no beta fits. */
static void beta_moments(double m, double v, double *a, double *b) {
  double cap = m * (1.0 - m), common;

  if (v >= 0.99 * cap)
    v = 0.99 * cap;
  if (v < 1e-8)
    v = 1e-8;
  common = cap / v - 1.0;
  *a = m * common;
  *b = (1.0 - m) * common;
}

/* M step from resp (posterior of component 0). Returns -1, leaving m
 * alone, when a component has lost its weight. */
static int beta_maximize(detect_beta_t *m, const double *x, int n,
                         const double *resp) {
  double r[2] = {0, 0}, s[2] = {0, 0}, ss[2] = {0, 0};

  for (int i = 0; i < n; i++) {
    double q[2] = {resp[i], 1.0 - resp[i]};
    for (int k = 0; k < 2; k++) {
      r[k] += q[k];
      s[k] += q[k] * x[i];
      ss[k] += q[k] * x[i] * x[i];
    }
  }
  if (r[0] < MIX_WEIGHT_MIN * n || r[1] < MIX_WEIGHT_MIN * n)
    return -1;
  for (int k = 0; k < 2; k++) {
    double mean = s[k] / r[k], var = ss[k] / r[k] - mean * mean;
    m->w[k] = r[k] / n;
    beta_moments(mean, var, &m->a[k], &m->b[k]);
  }
  return 0;
}

/* The values a beta mixture is fitted to: each clamped value x, log x
 * and log(1 - x), n of each. */
typedef struct {
  double *x, *lx, *l1;
  int n;
} beta_data_t;

/* E step: resp[i] is the posterior of component 0. Returns the
 * log-likelihood. */
static double beta_expect(const detect_beta_t *m, const beta_data_t *d,
                          double *resp) {
  double c[2], ll = 0.0;

  for (int k = 0; k < 2; k++)
    c[k] = log(m->w[k]) - log_beta_fn(m->a[k], m->b[k]);
  for (int i = 0; i < d->n; i++) {
    double v[2], top, e0, e1;
    for (int k = 0; k < 2; k++)
      v[k] = c[k] + (m->a[k] - 1.0) * d->lx[i] + (m->b[k] - 1.0) * d->l1[i];
    top = fmax(v[0], v[1]);
    e0 = exp(v[0] - top);
    e1 = exp(v[1] - top);
    resp[i] = e0 / (e0 + e1);
    ll += top + log(e0 + e1);
  }
  return ll;
}

/* Fits the mixture to d (n >= 1) and returns the weight of the
 * component of lower mean. resp holds n doubles. */
static double beta_rate(const beta_data_t *d, double *resp) {
  detect_beta_t m;
  double prev = -HUGE_VAL, low = 0.0;
  int n = d->n;

  for (int i = 0; i < n; i++) {
    resp[i] = d->x[i] < BETA_START_SPLIT;
    low += resp[i];
  }
  if (low == 0.0 || low == n)
    return low / n;
  beta_maximize(&m, d->x, n, resp);
  for (int it = 0; it < BETA_MAX_ITER; it++) {
    double ll = beta_expect(&m, d, resp);
    if (it > 0 && fabs(ll - prev) <= BETA_TOL * fabs(ll))
      break;
    prev = ll;
    if (beta_maximize(&m, d->x, n, resp))
      break;
  }
  return m.a[0] / (m.a[0] + m.b[0]) <= m.a[1] / (m.a[1] + m.b[1]) ? m.w[0]
                                                                  : m.w[1];
}

int detect_noise_beta(const float *conf, int n, double *rate) {
  beta_data_t d = {NULL, NULL, NULL, n};
  double *buf;

  if ((n > 0 && !conf) || n < 0 || !rate)
    return -EINVAL;
  for (int i = 0; i < n; i++)
    if (!(conf[i] >= 0.0f && conf[i] <= 1.0f))
      return -EINVAL;
  *rate = 0.0;
  if (n < 1)
    return 0;

  /* x, log x, log(1 - x), then n doubles of scratch for the E step. */
  buf = malloc(sizeof *buf * 4 * (size_t)n);
  if (!buf)
    return -ENOMEM;
  d.x = buf;
  d.lx = buf + n;
  d.l1 = buf + 2 * (size_t)n;
  for (int i = 0; i < n; i++) {
    d.x[i] = fmin(fmax(conf[i], BETA_CLAMP), 1.0 - BETA_CLAMP);
    d.lx[i] = log(d.x[i]);
    d.l1[i] = log1p(-d.x[i]);
  }
  *rate = beta_rate(&d, buf + 3 * (size_t)n);
  free(buf);
  return 0;
}

int detect_noise_by_class(detect_mix_kind_t kind, const float *values,
                          const uint8_t *labels, int n, int classes,
                          double *per_class, double *rate) {
  float *sub;
  double sum = 0.0;
  int rc = 0;

  if (n < 0 || classes < 1 || classes > DETECT_CLASSES_MAX || !rate ||
      (n > 0 && (!values || !labels)))
    return -EINVAL;
  for (int i = 0; i < n; i++)
    if (labels[i] >= classes)
      return -EINVAL;
  sub = malloc(sizeof *sub * (size_t)(n > 0 ? n : 1));
  if (!sub)
    return -ENOMEM;
  for (int c = 0; c < classes && rc == 0; c++) {
    int m = 0;
    double r = 0.0;
    for (int i = 0; i < n; i++)
      if (labels[i] == c)
        sub[m++] = values[i];
    rc = kind == DETECT_MIX_BETA ? detect_noise_beta(sub, m, &r)
                                 : detect_noise_rate(sub, m, &r);
    if (per_class)
      per_class[c] = r;
    sum += r * m;
  }
  if (rc == 0)
    *rate = n > 0 ? sum / n : 0.0;
  free(sub);
  return rc;
}
