/* SPDX-License-Identifier: MIT */
/* Optimizers and learning-rate schedules over a model's parameters: SGD
 * with momentum or Nesterov, Adam and AdamW, each with weight decay that
 * may spare biases; constant, step and cosine schedules after an optional
 * linear warm-up. Threads and the step counter belong to the caller. */
#ifndef SPK_ENGINE_OPTIM_H
#define SPK_ENGINE_OPTIM_H

#include <stddef.h>

/* Update rules. OPTIM_ADAM adds the L2 term to the gradient; OPTIM_ADAMW
 * decays the weights apart from the gradient (decoupled). */
enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW };

/* Learning-rate schedules, see optim_lr_at. */
enum { OPTIM_SCHEDULE_CONSTANT, OPTIM_SCHEDULE_COSINE, OPTIM_SCHEDULE_STEP };

/* An optimizer's settings. Fields a kind or schedule does not read may
 * stay 0; a zeroed tail after `schedule` means plain SGD, decay on weight
 * tensors only, no warm-up. */
typedef struct {
  int kind;             /* OPTIM_SGD, OPTIM_ADAM or OPTIM_ADAMW */
  double lr;            /* base learning rate */
  double momentum;      /* SGD: mu */
  double weight_decay;  /* lambda, for every kind */
  int batch_size;       /* samples per update, read by the caller */
  int schedule;         /* OPTIM_SCHEDULE_* */
  int nesterov;         /* SGD: 1 for Nesterov momentum */
  int decay_bias;       /* 1: decay every tensor; 0: only weights */
  double beta1;         /* Adam: first-moment decay in [0, 1), e.g. 0.9 */
  double beta2;         /* Adam: second-moment decay in [0, 1) */
  double eps;           /* Adam: > 0, added to the root, e.g. 1e-8 */
  double warmup_epochs; /* >= 0, may be fractional; 0: no warm-up */
  int step_epochs;      /* step schedule: epochs between drops */
  double gamma;         /* step schedule: factor of each drop */
} optim_config_t;

/* The learning rate of the iteration at fractional epoch position `epoch`
 * (2.25: a quarter through the third epoch) of a stage of `epochs`
 * epochs. With W = warmup_epochs and base(e) the schedule:
 *   constant: base(e) = lr;
 *   step:     base(e) = lr * gamma^floor(e / step_epochs), e counted from
 *             the stage's start (warm-up included); step_epochs <= 0
 *             never drops;
 *   cosine:   base(e) = lr * (1 + cos(pi * t)) / 2 with
 *             t = (e - W) / (epochs - W) clamped to [0, 1], so the cosine
 *             runs from lr at the end of the warm-up to 0 at the end of
 *             the stage (t = 0 throughout when W >= epochs).
 * For e < W the rate is base(W) * e / W: a line from 0 at the stage's
 * start to where the schedule picks up, so the first iteration only fills
 * the optimizer's buffers. Negative positions count as 0. The result is
 * never negative (a negative product, from a negative lr or gamma, gives
 * 0). */
double optim_lr_at(const optim_config_t *cfg, double epoch, int epochs);

/* One parameter tensor of n floats: values, gradient, and the optimizer's
 * state. velocity holds SGD's momentum buffer or Adam's first moment; m2
 * Adam's second moment, NULL until optim_param_prepare allocates it.
 * decay is 1 for weight tensors, 0 for biases (see decay_bias). */
typedef struct {
  float *value;
  float *grad;
  float *velocity;
  size_t n;
  float *m2;
  int decay;
} optim_param_t;

/* Gives p the state cfg's kind needs beyond velocity: allocates a zeroed
 * m2 for Adam and AdamW unless p has one. The tensor's owner frees m2
 * along with its other buffers. Returns 0 or -ENOMEM. */
int optim_param_prepare(const optim_config_t *cfg, optim_param_t *p);

/* Updates elements [lo, hi) of p at learning rate lr; step counts updates
 * from 1 (Adam's bias correction). With g the gradient, w the value,
 * d = (p->decay || decay_bias) ? weight_decay : 0, and g' = g + d * w:
 *   SGD:   v = mu * v + g';  w -= lr * (nesterov ? g' + mu * v : v);
 *   Adam:  m = beta1 * m + (1 - beta1) * g';
 *          v2 = beta2 * v2 + (1 - beta2) * g'^2;
 *          w -= lr * mhat / (sqrt(v2hat) + eps), with
 *          mhat = m / (1 - beta1^step), v2hat = v2 / (1 - beta2^step);
 *   AdamW: as Adam with g' = g, and the old w also decays apart:
 *          w -= lr * d * w.
 * v and m live in p->velocity, v2 in p->m2 (optim_param_prepare first).
 * Gradients are read, never changed. Disjoint ranges of one tensor may be
 * updated from different threads at once, and any split gives the same
 * bits as one call over the whole tensor. */
void optim_update_range(const optim_config_t *cfg, double lr, long step,
                        optim_param_t *p, size_t lo, size_t hi);

/* optim_update_range over every element of params[0 .. count). */
void optim_update(const optim_config_t *cfg, double lr, long step,
                  optim_param_t *params, int count);

#endif
