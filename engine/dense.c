/* SPDX-License-Identifier: MIT */
/* Dense, ReLU and flatten layers. Dense runs on OpenBLAS sgemm with
 * weights stored (out, in); its naive reference twins sit at the end of
 * the file for the tests. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layer_internal.h"

static layer_shape_t flat(int dim) {
  return (layer_shape_t){dim, 1, 1};
}

/* Dense forward, (rows, in) -> (rows, out): y = x w^T + b. An image
 * input is read as its flat row, as if flattened first. */
static void dense_forward(layer_t *l, const layer_rows_t *r, const float *x,
                          float *y) {
  const float *w = l->params[0].value, *b = l->params[1].value;
  int in = l->in_dim, out = l->out_dim;

  for (int i = 0; i < r->n; i++)
    memcpy(y + (size_t)i * out, b, sizeof(float) * (size_t)out);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->n, out, in, 1.0f,
              x, in, w, in, 1.0f, y, out);
}

/* Dense input gradient: dx (rows, in) = dy (rows, out) w (out, in). */
static void dense_backward(layer_t *l, const layer_rows_t *r, const float *x,
                           const float *y, const float *dy, float *dx) {
  (void)x;
  (void)y;
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->n, l->in_dim,
                l->out_dim, 1.0f, dy, l->out_dim, l->params[0].value,
                l->in_dim, 0.0f, dx, l->in_dim);
}

/* Dense parameter gradients of output rows [o0, o1) over all n rows:
 * dw[o0:o1] = dy[:, o0:o1]^T x, db[o0:o1] = column sums of dy. */
static void dense_grads(layer_t *l, const float *x, const float *dy, int n,
                        int member, int size) {
  int in = l->in_dim, out = l->out_dim, o0, o1;
  float *dw = l->params[0].grad, *db = l->params[1].grad;

  layer_share(out, member, size, &o0, &o1);
  if (o1 <= o0)
    return;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, in, n, 1.0f,
              dy + o0, out, x, in, 0.0f, dw + (size_t)o0 * in, in);
  memset(db + o0, 0, sizeof(float) * (size_t)(o1 - o0));
  for (int i = 0; i < n; i++) {
    const float *row = dy + (size_t)i * out;
    for (int j = o0; j < o1; j++)
      db[j] += row[j];
  }
}

/* dense_grads' shares: whole output rows of the weights, and the same
 * rows of the bias. */
static void dense_share(const layer_t *l, int param, int member, int size,
                        size_t *lo, size_t *hi) {
  int o0, o1;

  layer_share(l->out_dim, member, size, &o0, &o1);
  *lo = (size_t)o0 * (param == 0 ? (size_t)l->in_dim : 1);
  *hi = (size_t)o1 * (param == 0 ? (size_t)l->in_dim : 1);
}

static const layer_ops_t dense_ops = {"dense",     NULL,        dense_forward,
                                      dense_backward, dense_grads, NULL,
                                      dense_share};

int layer_dense_build(const layer_desc_t *d, layer_shape_t in,
                      const layer_env_t *env, layer_t **out, char *err,
                      size_t errlen) {
  int in_dim = in.c * in.h * in.w;
  layer_t *l;

  if (d->units < 1 || d->units > (1 << 20)) {
    snprintf(err, errlen, "dense: units %d out of range 1..%d", d->units,
             1 << 20);
    return -EINVAL;
  }
  l = layer_alloc(&dense_ops, in, flat(d->units), env);
  if (!l || layer_param_alloc(l, 0, (size_t)in_dim * d->units, 1) ||
      layer_param_alloc(l, 1, (size_t)d->units, 0)) {
    layer_free(l);
    snprintf(err, errlen, "dense: out of memory");
    return -ENOMEM;
  }
  layer_param_init(l, in_dim, env->init);
  *out = l;
  return 0;
}

layer_t *layer_dense_new(int in_dim, int out_dim, rng_t *rng) {
  layer_desc_t d = {.kind = LAYER_DENSE, .units = out_dim};
  layer_env_t env = {1, 1, rng, 0};
  layer_t *l = NULL;
  char err[128];

  layer_dense_build(&d, flat(in_dim), &env, &l, err, sizeof err);
  return l;
}

/* ReLU forward, (rows, d) -> (rows, d). */
static void relu_forward(layer_t *l, const layer_rows_t *r,
                         const float *restrict x, float *restrict y) {
  size_t total = (size_t)r->n * l->in_dim;

  /* Written so the compiler vectorises it (no aliasing, no branch):
   * random signs then cost no mispredictions. */
  for (size_t i = 0; i < total; i++) {
    float v = x[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

/* ReLU backward: dx = dy where the input was positive, else 0. */
static void relu_backward(layer_t *l, const layer_rows_t *r,
                          const float *restrict x, const float *y,
                          const float *restrict dy, float *restrict dx) {
  size_t total = (size_t)r->n * l->in_dim;

  (void)y;
  if (!dx)
    return;
  for (size_t i = 0; i < total; i++) {
    float pass = x[i] > 0.0f ? 1.0f : 0.0f;
    dx[i] = dy[i] * pass;
  }
}

static const layer_ops_t relu_ops = {"relu", NULL, relu_forward,
                                     relu_backward, NULL, NULL};

int layer_relu_build(const layer_desc_t *d, layer_shape_t in,
                     const layer_env_t *env, layer_t **out, char *err,
                     size_t errlen) {
  (void)d;
  *out = layer_alloc(&relu_ops, in, in, env);
  if (!*out) {
    snprintf(err, errlen, "relu: out of memory");
    return -ENOMEM;
  }
  return 0;
}

layer_t *layer_relu_new(int dim) {
  layer_desc_t d = {.kind = LAYER_RELU};
  layer_env_t env = {1, 1, NULL, 0};
  layer_t *l = NULL;
  char err[64];

  layer_relu_build(&d, flat(dim), &env, &l, err, sizeof err);
  return l;
}

/* Flatten: the same values under a flat shape. */
static void flatten_forward(layer_t *l, const layer_rows_t *r,
                            const float *x, float *y) {
  memcpy(y, x, sizeof(float) * (size_t)r->n * l->in_dim);
}

static void flatten_backward(layer_t *l, const layer_rows_t *r,
                             const float *x, const float *y, const float *dy,
                             float *dx) {
  (void)x;
  (void)y;
  if (dx)
    memcpy(dx, dy, sizeof(float) * (size_t)r->n * l->in_dim);
}

static const layer_ops_t flatten_ops = {"flatten", NULL, flatten_forward,
                                        flatten_backward, NULL, NULL};

int layer_flatten_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen) {
  (void)d;
  *out = layer_alloc(&flatten_ops, in, flat(in.c * in.h * in.w), env);
  if (!*out) {
    snprintf(err, errlen, "flatten: out of memory");
    return -ENOMEM;
  }
  return 0;
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
