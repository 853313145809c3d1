/* SPDX-License-Identifier: MIT */
/* Dense and ReLU layers. Dense runs on OpenBLAS sgemm; each fast kernel
 * has a naive reference twin below it for the tests. */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int param_alloc(optim_param_t *p, size_t n) {
  p->n = n;
  p->value = calloc(n, sizeof(float));
  p->grad = calloc(n, sizeof(float));
  p->velocity = calloc(n, sizeof(float));
  return p->value && p->grad && p->velocity ? 0 : -1;
}

static void param_free(optim_param_t *p) {
  free(p->value);
  free(p->grad);
  free(p->velocity);
}

void layer_free(layer_t *l) {
  if (!l)
    return;
  for (int i = 0; i < l->n_params; i++)
    param_free(&l->params[i]);
  free(l);
}

/* Dense forward, (n, in) -> (n, out): y = x w^T + b. */
static void dense_forward(layer_t *l, const float *x, float *y, int n,
                          int training) {
  const float *w = l->params[0].value, *b = l->params[1].value;
  int in = l->in_dim, out = l->out_dim;

  (void)training;
  for (int i = 0; i < n; i++)
    memcpy(y + (size_t)i * out, b, sizeof(float) * (size_t)out);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x,
              in, w, in, 1.0f, y, out);
}

/* Dense backward: dw += dy^T x, db += sum_rows dy, dx = dy w. */
static void dense_backward(layer_t *l, const float *x, const float *y,
                           const float *dy, float *dx, int n) {
  const float *w = l->params[0].value;
  float *dw = l->params[0].grad, *db = l->params[1].grad;
  int in = l->in_dim, out = l->out_dim;

  (void)y;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy,
              out, x, in, 1.0f, dw, in);
  for (int i = 0; i < n; i++) {
    const float *row = dy + (size_t)i * out;
    for (int j = 0; j < out; j++)
      db[j] += row[j];
  }
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f,
                dy, out, w, in, 0.0f, dx, in);
}

static const layer_ops_t dense_ops = {"dense", dense_forward, dense_backward};

layer_t *layer_dense_new(int in_dim, int out_dim, rng_t *rng) {
  layer_t *l = calloc(1, sizeof *l);
  float scale = sqrtf(2.0f / (float)in_dim);

  if (!l)
    return NULL;
  l->ops = &dense_ops;
  l->in_dim = in_dim;
  l->out_dim = out_dim;
  l->n_params = 2;
  if (param_alloc(&l->params[0], (size_t)in_dim * out_dim) < 0 ||
      param_alloc(&l->params[1], (size_t)out_dim) < 0) {
    layer_free(l);
    return NULL;
  }
  for (size_t i = 0; i < l->params[0].n; i++)
    l->params[0].value[i] = scale * rng_normal(rng);
  return l;
}

/* ReLU forward, (n, d) -> (n, d). */
static void relu_forward(layer_t *l, const float *x, float *y, int n,
                         int training) {
  size_t total = (size_t)n * l->in_dim;

  (void)training;
  for (size_t i = 0; i < total; i++)
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* ReLU backward: dx = dy where the input was positive, else 0. */
static void relu_backward(layer_t *l, const float *x, const float *y,
                          const float *dy, float *dx, int n) {
  size_t total = (size_t)n * l->in_dim;

  (void)y;
  if (!dx)
    return;
  for (size_t i = 0; i < total; i++)
    dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

static const layer_ops_t relu_ops = {"relu", relu_forward, relu_backward};

layer_t *layer_relu_new(int dim) {
  layer_t *l = calloc(1, sizeof *l);

  if (!l)
    return NULL;
  l->ops = &relu_ops;
  l->in_dim = dim;
  l->out_dim = dim;
  return l;
}

void layer_dense_forward_ref(const float *x, const float *w, const float *b,
                             float *y, int n, int in, int out) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < out; j++) {
      double s = b[j];
      for (int k = 0; k < in; k++)
        s += (double)x[(size_t)i * in + k] * w[(size_t)j * in + k];
      y[(size_t)i * out + j] = (float)s;
    }
}

void layer_dense_backward_ref(const float *x, const float *w,
                              const float *dy, float *dw, float *db,
                              float *dx, int n, int in, int out) {
  for (int j = 0; j < out; j++) {
    for (int k = 0; k < in; k++) {
      double s = 0.0;
      for (int i = 0; i < n; i++)
        s += (double)dy[(size_t)i * out + j] * x[(size_t)i * in + k];
      dw[(size_t)j * in + k] += (float)s;
    }
    for (int i = 0; i < n; i++)
      db[j] += dy[(size_t)i * out + j];
  }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < in; k++) {
      double s = 0.0;
      for (int j = 0; j < out; j++)
        s += (double)dy[(size_t)i * out + j] * w[(size_t)j * in + k];
      dx[(size_t)i * in + k] = (float)s;
    }
}
