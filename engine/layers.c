/* SPDX-License-Identifier: MIT */
/* What every layer shares: building by description, parameters, work
 * shares, freeing, and the single-threaded conveniences. The kinds live
 * in dense.c (dense, ReLU, flatten), conv.c, pool.c and dropout.c. */
#include "layers.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"

layer_t *layer_alloc(const layer_ops_t *ops, layer_shape_t in,
                     layer_shape_t out, const layer_env_t *env) {
  layer_t *l = calloc(1, sizeof *l);

  if (!l)
    return NULL;
  l->ops = ops;
  l->in = in;
  l->out = out;
  l->in_dim = in.c * in.h * in.w;
  l->out_dim = out.c * out.h * out.w;
  l->batch_cap = env->batch_cap;
  l->members = env->members > 0 ? env->members : 1;
  return l;
}

int layer_param_alloc(layer_t *l, int i, size_t n, int decay) {
  optim_param_t *p = &l->params[i];

  p->n = n;
  p->decay = decay;
  p->value = calloc(n, sizeof(float));
  p->grad = calloc(n, sizeof(float));
  p->velocity = calloc(n, sizeof(float));
  if (i + 1 > l->n_params)
    l->n_params = i + 1;
  return p->value && p->grad && p->velocity ? 0 : -ENOMEM;
}

void layer_param_init(layer_t *l, int fan_in, rng_t *rng) {
  float bound = 1.0f / sqrtf((float)fan_in);

  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < l->params[k].n; i++)
      l->params[k].value[i] = bound * (2.0f * rng_uniform(rng) - 1.0f);
}

void layer_share(int n, int member, int size, int *lo, int *hi) {
  *lo = (int)((long long)n * member / size);
  *hi = (int)((long long)n * (member + 1) / size);
}

void layer_param_share(const layer_t *l, int param, int member, int size,
                       size_t *lo, size_t *hi) {
  int a, b;

  if (l->ops->share) {
    l->ops->share(l, param, member, size, lo, hi);
    return;
  }
  layer_share((int)l->params[param].n, member, size, &a, &b);
  *lo = (size_t)a;
  *hi = (size_t)b;
}

static void param_free(optim_param_t *p) {
  free(p->value);
  free(p->grad);
  free(p->velocity);
  free(p->m2);
}

void layer_free(layer_t *l) {
  if (!l)
    return;
  if (l->ops && l->ops->deinit)
    l->ops->deinit(l);
  for (int i = 0; i < l->n_params; i++)
    param_free(&l->params[i]);
  free(l);
}

typedef int (*build_fn)(const layer_desc_t *, layer_shape_t,
                        const layer_env_t *, layer_t **, char *, size_t);

int layer_new(const layer_desc_t *d, layer_shape_t in,
              const layer_env_t *env, layer_t **out, char *err,
              size_t errlen) {
  static const build_fn builders[] = {
      [LAYER_DENSE] = layer_dense_build,
      [LAYER_RELU] = layer_relu_build,
      [LAYER_CONV2D] = layer_conv2d_build,
      [LAYER_MAXPOOL] = layer_maxpool_build,
      [LAYER_DROPOUT] = layer_dropout_build,
      [LAYER_FLATTEN] = layer_flatten_build};

  *out = NULL;
  if (d->kind < 0 || d->kind > LAYER_FLATTEN) {
    snprintf(err, errlen, "unknown layer kind %d", d->kind);
    return -EINVAL;
  }
  if (in.c < 1 || in.h < 1 || in.w < 1) {
    snprintf(err, errlen, "input shape %dx%dx%d is empty", in.h, in.w,
             in.c);
    return -EINVAL;
  }
  return builders[d->kind](d, in, env, out, err, errlen);
}

void layer_forward(layer_t *l, const float *x, float *y, int n,
                   int training) {
  layer_rows_t r = {0, n, 0, training};

  if (l->ops->prepare)
    l->ops->prepare(l, n, training);
  l->ops->forward(l, &r, x, y);
}

void layer_backward(layer_t *l, const float *x, const float *y,
                    const float *dy, float *dx, int n) {
  layer_rows_t r = {0, n, 0, 1};

  l->ops->backward(l, &r, x, y, dy, dx);
  if (l->ops->grads)
    l->ops->grads(l, x, dy, n, 0, 1);
}
