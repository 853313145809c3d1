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
 *   l_i = (1 - alpha) w_i CE(y_i, s_i) + alpha T^2 KL(q_t,i || softmax(s_i/T)).
 * Writes l_i into loss (n) when not NULL; weight may be NULL (all ones).
 * Returns sum_i l_i / n. */
typedef struct {
  float alpha;
  float temperature;
} loss_kd_t;

double loss_kd_forward(const loss_kd_t *kd, const float *s,
                       const float *teacher_probs, const uint8_t *labels,
                       const float *weight, int n, int C, float *loss);

/* Gradient of loss_kd_forward's return value into dlogits (n, C):
 * ((1 - alpha) w_i (softmax(s_i) - y_i) + alpha T (softmax(s_i/T) - q_t,i))
 * / n. */
void loss_kd_backward(const loss_kd_t *kd, const float *s,
                      const float *teacher_probs, const uint8_t *labels,
                      const float *weight, int n, int C, float *dlogits);

#endif
