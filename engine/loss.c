/* SPDX-License-Identifier: MIT */
/* Cross-entropy and distillation losses with their gradients. All work
 * row by row in double precision on log-softmax, so large logits neither
 * overflow nor lose the small probabilities. */
#include "loss.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

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
        (kd->weight_all ? w : 1.0) * a * T * T *
            row_kl(teacher_probs + (size_t)i * C, lsT, C);
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
    double w = weight ? weight[i] : 1.0, wk = kd->weight_all ? w : 1.0;
    float *d = dlogits + (size_t)i * C;
    row_log_softmax(z, ls1, C, 1.0f);
    row_log_softmax(z, lsT, C, kd->temperature);
    for (int j = 0; j < C; j++) {
      double ce = exp(ls1[j]) - (j == labels[i]);
      double kl = exp(lsT[j]) - q[j];
      d[j] = (float)(((1.0 - a) * w * ce + wk * a * T * kl) / n);
    }
  }
}

/* One row's weights of K teachers into c; returns their sum. */
static double row_teacher_weights(loss_combine_t how,
                                  const float *const *conf, int K, int i,
                                  double *c) {
  double sum = 0.0;

  for (int k = 0; k < K; k++) {
    c[k] = how == LOSS_COMBINE_CONFIDENCE ? conf[k][i] : 1.0;
    sum += c[k];
  }
  if (sum > 0.0)
    return sum;
  for (int k = 0; k < K; k++)
    c[k] = 1.0;
  return K;
}

void loss_teachers_combine(loss_combine_t how, const float *const *probs,
                           const float *const *conf, int K, int n, int C,
                           float *out) {
  double c[256], acc[256];

  assert(K >= 1 && K <= 256 && C <= 256);
  for (int i = 0; i < n; i++) {
    double sum = row_teacher_weights(how, conf, K, i, c);
    for (int j = 0; j < C; j++)
      acc[j] = 0.0;
    for (int k = 0; k < K; k++)
      for (int j = 0; j < C; j++)
        acc[j] += c[k] * probs[k][(size_t)i * C + j];
    for (int j = 0; j < C; j++)
      out[(size_t)i * C + j] = (float)(acc[j] / sum);
  }
}

double loss_hint_forward(const loss_hint_t *h, const float *P,
                         const float *hs, const float *ht, float *resid) {
  size_t total = (size_t)h->n * h->dt;
  double sum = 0.0;

  /* resid (n, dt) = h_s (n, ds) P^T (ds, dt) - h_t */
  memcpy(resid, ht, total * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h->n, h->dt, h->ds,
              1.0f, hs, h->ds, P, h->ds, -1.0f, resid, h->dt);
  for (size_t i = 0; i < total; i++)
    sum += (double)resid[i] * resid[i];
  return h->n > 0 ? h->beta * sum / h->n : 0.0;
}

void loss_hint_backward(const loss_hint_t *h, const float *P,
                        const float *hs, const float *resid, float *dP,
                        float *dhs) {
  float g = h->n > 0 ? 2.0f * h->beta / (float)h->n : 0.0f;

  /* dP (dt, ds) = g resid^T (dt, n) h_s (n, ds) */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h->dt, h->ds, h->n, g,
              resid, h->dt, hs, h->ds, 0.0f, dP, h->ds);
  /* dhs (n, ds) += g resid (n, dt) P (dt, ds) */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, h->n, h->ds, h->dt,
              g, resid, h->dt, P, h->ds, 1.0f, dhs, h->ds);
}
