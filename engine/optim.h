/* SPDX-License-Identifier: MIT */
/* Optimizers and learning-rate schedules over a model's parameters.
 * SGD with momentum and weight decay; constant and cosine schedules, both
 * evaluated per iteration. */
#ifndef SPK_ENGINE_OPTIM_H
#define SPK_ENGINE_OPTIM_H

#include <stddef.h>

enum { OPTIM_SGD };
enum { OPTIM_SCHEDULE_CONSTANT, OPTIM_SCHEDULE_COSINE };

typedef struct {
  int kind;     /* OPTIM_SGD */
  double lr;    /* base learning rate */
  double momentum;
  double weight_decay;
  int batch_size;
  int schedule; /* OPTIM_SCHEDULE_* */
} optim_config_t;

/* Learning rate at progress t in [0, 1] of a stage's iterations. */
double optim_lr_at(const optim_config_t *cfg, double t);

/* One parameter tensor with its gradient and momentum buffer, n floats. */
typedef struct {
  float *value;
  float *grad;
  float *velocity;
  size_t n;
} optim_param_t;

/* One SGD step on every parameter: v = m*v + g + wd*w; w -= lr*v.
 * Gradients are left untouched; the caller zeroes them. */
void optim_sgd_step(const optim_config_t *cfg, double lr,
                    optim_param_t *params, int count);

#endif
