/* SPDX-License-Identifier: MIT */
/* Noise-detection measures: split counts, a tie-aware AUROC by sorting,
 * and a two-component 1-D Gaussian mixture fitted by EM for the noise
 * rate. Callers own every array; nothing here keeps state. */
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
