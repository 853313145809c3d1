/* SPDX-License-Identifier: MIT */
/* SGD with momentum and weight decay, and per-iteration schedules. */
#include "optim.h"

#include <math.h>

double optim_lr_at(const optim_config_t *cfg, double t) {
  if (t < 0.0)
    t = 0.0;
  if (t > 1.0)
    t = 1.0;
  if (cfg->schedule == OPTIM_SCHEDULE_COSINE)
    return cfg->lr * 0.5 * (1.0 + cos(M_PI * t));
  return cfg->lr;
}

void optim_sgd_step(const optim_config_t *cfg, double lr,
                    optim_param_t *params, int count) {
  float m = (float)cfg->momentum, wd = (float)cfg->weight_decay;
  float step = (float)lr;

  for (int p = 0; p < count; p++) {
    float *w = params[p].value, *g = params[p].grad, *v = params[p].velocity;
    for (size_t i = 0; i < params[p].n; i++) {
      v[i] = m * v[i] + g[i] + wd * w[i];
      w[i] -= step * v[i];
    }
  }
}
