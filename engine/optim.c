/* SPDX-License-Identifier: MIT */
/* Learning-rate schedules and the update rules of SGD, Adam and AdamW.
 * Each rule is one plain loop over floats; the range functions feed it
 * fixed-size blocks, the shape GCC vectorises at -O2. */
#include "optim.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* Elements per block. GCC's cheapest vector cost model, the one -O2 uses,
 * only vectorises a loop whose trip count is a known multiple of the
 * vector width; 64 is one for every x86 width. */
#define OPTIM_BLOCK 64

/* The schedule's value at epoch position e >= 0, warm-up W already
 * clamped to >= 0; see optim_lr_at for the formulas. */
static double schedule_at(const optim_config_t *cfg, double e, double w,
                          int epochs) {
  double span = epochs - w, t;

  switch (cfg->schedule) {
  case OPTIM_SCHEDULE_COSINE:
    t = span > 0.0 ? (e - w) / span : 0.0;
    t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
    return cfg->lr * 0.5 * (1.0 + cos(M_PI * t));
  case OPTIM_SCHEDULE_STEP:
    if (cfg->step_epochs <= 0)
      return cfg->lr;
    return cfg->lr * pow(cfg->gamma, floor(e / cfg->step_epochs));
  default:
    return cfg->lr;
  }
}

double optim_lr_at(const optim_config_t *cfg, double epoch, int epochs) {
  double w = cfg->warmup_epochs > 0.0 ? cfg->warmup_epochs : 0.0, lr;

  if (!(epoch > 0.0))
    epoch = 0.0;
  if (epoch < w)
    lr = schedule_at(cfg, w, w, epochs) * (epoch / w);
  else
    lr = schedule_at(cfg, epoch, w, epochs);
  return lr > 0.0 ? lr : 0.0;
}

int optim_param_prepare(const optim_config_t *cfg, optim_param_t *p) {
  if (cfg->kind == OPTIM_SGD || p->m2)
    return 0;
  p->m2 = calloc(p->n > 0 ? p->n : 1, sizeof(float));
  return p->m2 ? 0 : -ENOMEM;
}

/* SGD's constants for one call: w -= lr * (gain_g * g' + gain_v * v)
 * covers both plain momentum (0, 1) and Nesterov (1, mu). */
typedef struct {
  float mu, decay, lr, gain_g, gain_v;
} sgd_coef_t;

/* SGD over n elements. */
static inline void sgd_kernel(sgd_coef_t c, float *restrict w,
                              const float *restrict g, float *restrict v,
                              size_t n) {
  for (size_t i = 0; i < n; i++) {
    float gd = g[i] + c.decay * w[i];
    float vi = c.mu * v[i] + gd;

    v[i] = vi;
    w[i] -= c.lr * (c.gain_g * gd + c.gain_v * vi);
  }
}

/* Adam's constants for one call, bias corrections folded in:
 * step = lr / (1 - beta1^t), root = 1 / (1 - beta2^t); l2 is the decay
 * added to the gradient (Adam), wd = lr * decay the decoupled one
 * (AdamW). */
typedef struct {
  float b1, c1, b2, c2, step, root, eps, l2, wd;
} adam_coef_t;

/* Adam or AdamW over n elements; m is the first moment, v2 the second.
 * GCC vectorises this loop only under -fno-math-errno: otherwise sqrtf
 * keeps a call that may set errno, and the loop runs about 3 times
 * slower. */
static inline void adam_kernel(adam_coef_t c, float *restrict w,
                               const float *restrict g, float *restrict m,
                               float *restrict v2, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float wi = w[i];
    float gd = g[i] + c.l2 * wi;
    float mi = c.b1 * m[i] + c.c1 * gd;
    float vi = c.b2 * v2[i] + c.c2 * gd * gd;

    m[i] = mi;
    v2[i] = vi;
    w[i] = wi - (c.wd * wi + c.step * mi / (sqrtf(vi * c.root) + c.eps));
  }
}

static void sgd_range(const optim_config_t *cfg, double lr, double decay,
                      optim_param_t *p, size_t lo, size_t hi) {
  float mu = (float)cfg->momentum;
  sgd_coef_t c = {mu, (float)decay, (float)lr, 0.0f, 1.0f};
  float *w = p->value + lo, *v = p->velocity + lo;
  const float *g = p->grad + lo;
  size_t n = hi - lo, i = 0;

  if (cfg->nesterov) {
    c.gain_g = 1.0f;
    c.gain_v = mu;
  }
  for (; i + OPTIM_BLOCK <= n; i += OPTIM_BLOCK)
    sgd_kernel(c, w + i, g + i, v + i, OPTIM_BLOCK);
  sgd_kernel(c, w + i, g + i, v + i, n - i);
}

static void adam_range(const optim_config_t *cfg, double lr, long step,
                       double decay, optim_param_t *p, size_t lo, size_t hi) {
  double b1 = cfg->beta1, b2 = cfg->beta2;
  int decoupled = cfg->kind == OPTIM_ADAMW;
  adam_coef_t c = {.b1 = (float)b1,
                   .c1 = (float)(1.0 - b1),
                   .b2 = (float)b2,
                   .c2 = (float)(1.0 - b2),
                   .step = (float)(lr / (1.0 - pow(b1, (double)step))),
                   .root = (float)(1.0 / (1.0 - pow(b2, (double)step))),
                   .eps = (float)cfg->eps,
                   .l2 = decoupled ? 0.0f : (float)decay,
                   .wd = decoupled ? (float)(lr * decay) : 0.0f};
  float *w = p->value + lo, *m = p->velocity + lo, *v2 = p->m2 + lo;
  const float *g = p->grad + lo;
  size_t n = hi - lo, i = 0;

  assert(decoupled || cfg->kind == OPTIM_ADAM);
  assert(step >= 1 && p->m2);
  for (; i + OPTIM_BLOCK <= n; i += OPTIM_BLOCK)
    adam_kernel(c, w + i, g + i, m + i, v2 + i, OPTIM_BLOCK);
  adam_kernel(c, w + i, g + i, m + i, v2 + i, n - i);
}

void optim_update_range(const optim_config_t *cfg, double lr, long step,
                        optim_param_t *p, size_t lo, size_t hi) {
  double decay = p->decay || cfg->decay_bias ? cfg->weight_decay : 0.0;

  assert(lo <= hi && hi <= p->n);
  if (cfg->kind == OPTIM_SGD)
    sgd_range(cfg, lr, decay, p, lo, hi);
  else
    adam_range(cfg, lr, step, decay, p, lo, hi);
}

void optim_update(const optim_config_t *cfg, double lr, long step,
                  optim_param_t *params, int count) {
  for (int i = 0; i < count; i++)
    optim_update_range(cfg, lr, step, &params[i], 0, params[i].n);
}
