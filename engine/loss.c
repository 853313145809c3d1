/* SPDX-License-Identifier: MIT */
/* Cross-entropy and distillation losses with their gradients. All work
 * row by row in double precision on log-softmax, so large logits neither
 * overflow nor lose the small probabilities. */
#include "loss.h"

#include <math.h>
#include <stddef.h>

/* Log-softmax of one row at temperature T: out[j] = z_j/T - logsumexp. */
static void row_log_softmax(const float *z, double *out, int C, float T) {
  double max = z[0] / T, sum = 0.0, lse;

  for (int j = 1; j < C; j++)
    if (z[j] / T > max)
      max = z[j] / T;
  for (int j = 0; j < C; j++)
    sum += exp(z[j] / T - max);
  lse = max + log(sum);
  for (int j = 0; j < C; j++)
    out[j] = z[j] / T - lse;
}

void loss_softmax(const float *logits, float *probs, int n, int C,
                  float T) {
  double ls[256];

  for (int i = 0; i < n; i++) {
    row_log_softmax(logits + (size_t)i * C, ls, C, T);
    for (int j = 0; j < C; j++)
      probs[(size_t)i * C + j] = (float)exp(ls[j]);
  }
}

double loss_ce_forward(const float *logits, const uint8_t *labels,
                       const float *weight, int n, int C, float *loss,
                       float *prob) {
  double ls[256], total = 0.0;

  for (int i = 0; i < n; i++) {
    double l;
    row_log_softmax(logits + (size_t)i * C, ls, C, 1.0f);
    l = -ls[labels[i]];
    if (loss)
      loss[i] = (float)l;
    if (prob)
      prob[i] = (float)exp(-l);
    total += (weight ? weight[i] : 1.0) * l;
  }
  return n > 0 ? total / n : 0.0;
}

void loss_ce_backward(const float *logits, const uint8_t *labels,
                      const float *weight, int n, int C, float *dlogits) {
  double ls[256];

  for (int i = 0; i < n; i++) {
    double w = (weight ? weight[i] : 1.0) / n;
    float *d = dlogits + (size_t)i * C;
    row_log_softmax(logits + (size_t)i * C, ls, C, 1.0f);
    for (int j = 0; j < C; j++)
      d[j] = (float)(w * (exp(ls[j]) - (j == labels[i])));
  }
}

/* KL(q || softmax(s/T)) for one row, given log softmax(s/T) in ls. */
static double row_kl(const float *q, const double *ls, int C) {
  double kl = 0.0;

  for (int j = 0; j < C; j++)
    if (q[j] > 0.0f)
      kl += q[j] * (log(q[j]) - ls[j]);
  return kl;
}

double loss_kd_forward(const loss_kd_t *kd, const float *s,
                       const float *teacher_probs, const uint8_t *labels,
                       const float *weight, int n, int C, float *loss) {
  double ls1[256], lsT[256], total = 0.0;
  double a = kd->alpha, T = kd->temperature;

  for (int i = 0; i < n; i++) {
    const float *z = s + (size_t)i * C;
    double w = weight ? weight[i] : 1.0, l;
    row_log_softmax(z, ls1, C, 1.0f);
    row_log_softmax(z, lsT, C, kd->temperature);
    l = (1.0 - a) * w * -ls1[labels[i]] +
        a * T * T * row_kl(teacher_probs + (size_t)i * C, lsT, C);
    if (loss)
      loss[i] = (float)l;
    total += l;
  }
  return n > 0 ? total / n : 0.0;
}

void loss_kd_backward(const loss_kd_t *kd, const float *s,
                      const float *teacher_probs, const uint8_t *labels,
                      const float *weight, int n, int C, float *dlogits) {
  double ls1[256], lsT[256];
  double a = kd->alpha, T = kd->temperature;

  for (int i = 0; i < n; i++) {
    const float *z = s + (size_t)i * C;
    const float *q = teacher_probs + (size_t)i * C;
    double w = weight ? weight[i] : 1.0;
    float *d = dlogits + (size_t)i * C;
    row_log_softmax(z, ls1, C, 1.0f);
    row_log_softmax(z, lsT, C, kd->temperature);
    for (int j = 0; j < C; j++) {
      double ce = exp(ls1[j]) - (j == labels[i]);
      double kl = exp(lsT[j]) - q[j];
      d[j] = (float)(((1.0 - a) * w * ce + a * T * kl) / n);
    }
  }
}
