/* SPDX-License-Identifier: MIT */
/* Losses over a batch of logits (n, C): softmax cross-entropy with a
 * weight per sample, and the distillation loss against a teacher's
 * softened probabilities. Each forward has a backward of the same name. */
#ifndef SPK_ENGINE_LOSS_H
#define SPK_ENGINE_LOSS_H

#include <stdint.h>

/* Softmax of logits (n, C) at temperature T into probs (n, C). */
void loss_softmax(const float *logits, float *probs, int n, int C, float T);

/* Cross-entropy: l_i = -log softmax(z_i)[y_i]. Writes l_i into loss (n)
 * and p_i(y_i) into prob (n) when they are not NULL. weight (n) may be
 * NULL for all ones. Returns sum_i w_i l_i / n. */
double loss_ce_forward(const float *logits, const uint8_t *labels,
                       const float *weight, int n, int C, float *loss,
                       float *prob);

/* Gradient of loss_ce_forward's return value: dlogits (n, C) =
 * w_i (softmax(z_i) - onehot(y_i)) / n. */
void loss_ce_backward(const float *logits, const uint8_t *labels,
                      const float *weight, int n, int C, float *dlogits);

/* Distillation: for student logits s (n, C) and teacher probabilities
 * q_t (n, C) already softened at temperature T,
 *   l_i = (1 - alpha) w_i CE(y_i, s_i) + alpha T^2 KL(q_t,i || softmax(s_i/T))
 * and with weight_all set
 *   l_i = w_i ((1 - alpha) CE(y_i, s_i) + alpha T^2 KL(...)).
 * Writes l_i into loss (n) when not NULL; weight may be NULL (all ones).
 * Returns sum_i l_i / n. */
typedef struct {
  float alpha;
  float temperature;
  int weight_all; /* 1: w_i multiplies both terms; 0: the CE term only */
} loss_kd_t;

double loss_kd_forward(const loss_kd_t *kd, const float *s,
                       const float *teacher_probs, const uint8_t *labels,
                       const float *weight, int n, int C, float *loss);

/* Gradient of loss_kd_forward's return value into dlogits (n, C):
 * ((1 - alpha) w_i (softmax(s_i) - y_i) + alpha T (softmax(s_i/T) - q_t,i))
 * / n, the second term times w_i too under weight_all. */
void loss_kd_backward(const loss_kd_t *kd, const float *s,
                      const float *teacher_probs, const uint8_t *labels,
                      const float *weight, int n, int C, float *dlogits);

/* How several teachers' probabilities become one distillation target. */
typedef enum { LOSS_COMBINE_MEAN, LOSS_COMBINE_CONFIDENCE } loss_combine_t;

/* K teachers' softened probabilities probs[k] (n, C) into out (n, C).
 * MEAN: out_i = (1/K) sum_k probs[k]_i. CONFIDENCE: out_i = sum_k c_ki
 * probs[k]_i / sum_k c_ki with c_ki = conf[k][i], teacher k's probability
 * of sample i's observed label (at temperature 1); rows where every c_ki
 * is 0 fall back to the mean. conf may be NULL for MEAN. out may be
 * probs[0]. */
void loss_teachers_combine(loss_combine_t how, const float *const *probs,
                           const float *const *conf, int K, int n, int C,
                           float *out);

/* A representation hint (FitNets): student features h_s (n, ds), the
 * teacher's features h_t (n, dt) at a chosen layer, and a learned
 * projection P (dt, ds):
 *   L = beta (1/n) sum_i |P h_s,i - h_t,i|^2. */
typedef struct {
  int n, ds, dt;
  float beta;
} loss_hint_t;

/* Returns L and leaves the residuals P h_s,i - h_t,i in resid (n, dt),
 * which loss_hint_backward reads. */
double loss_hint_forward(const loss_hint_t *h, const float *P,
                         const float *hs, const float *ht, float *resid);

/* Gradients of L from forward's resid: overwrites dP (dt, ds) with
 * (2 beta / n) resid^T h_s and ADDS (2 beta / n) resid P into dhs (n, ds),
 * the gradient already flowing into the student's layer. */
void loss_hint_backward(const loss_hint_t *h, const float *P,
                        const float *hs, const float *resid, float *dP,
                        float *dhs);

#endif
