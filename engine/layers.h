/* SPDX-License-Identifier: MIT */
/* Layers: dense, ReLU, conv2d, max-pool, dropout and flatten, each with a
 * forward pass and a backward pass of the same name. Activations are
 * (n, dim) row-major float32, one row per sample; an image row is laid out
 * channels last (h, w, c). A layer owns its parameters, their gradients
 * and its scratch space; the model owns the activations between layers.
 *
 * A batch is split across the members of a team (engine/team.h) by rows:
 * forward and backward of a row range run on one member each, in
 * parallel, and touch only that range and the member's own scratch.
 * Parameter gradients of the whole batch are then formed in a separate
 * step ("grads"), each member computing its share of every tensor. */
#ifndef SPK_ENGINE_LAYERS_H
#define SPK_ENGINE_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "rng.h"

typedef struct layer layer_t;

/* A sample's shape: c channels of h x w; a flat vector is (dim, 1, 1). */
typedef struct {
  int c, h, w;
} layer_shape_t;

/* Which rows of the batch one member works on. x and y passed with it
 * already point at row `first`. */
typedef struct {
  int first;    /* first row of the range within the batch */
  int n;        /* rows in the range */
  int member;   /* the team member running it, < the layer's members */
  int training; /* 1: training mode (dropout active), 0: inference */
} layer_rows_t;

typedef struct {
  const char *kind;
  /* Called once per batch by one thread before forward, with the
   * batch's row count: draws dropout masks. May be NULL. */
  void (*prepare)(layer_t *l, int n, int training);
  /* (rows, in_dim) -> (rows, out_dim). */
  void (*forward)(layer_t *l, const layer_rows_t *r, const float *x,
                  float *y);
  /* Given x, y and dy (rows, out_dim) of the range: writes dx (rows,
   * in_dim) unless dx is NULL (the first layer). Layers whose parameter
   * gradients need per-sample work (conv2d) also accumulate the member's
   * partial gradients here. */
  void (*backward)(layer_t *l, const layer_rows_t *r, const float *x,
                   const float *y, const float *dy, float *dx);
  /* Writes the whole batch's parameter gradients into params[].grad,
   * replacing what was there: the share `member` of `size`, from x and
   * dy of all n rows. The shares of
   * all members together cover every element exactly once, so members
   * may run at once. NULL for layers without parameters. */
  void (*grads)(layer_t *l, const float *x, const float *dy, int n,
                int member, int size);
  /* Frees what the layer keeps in state; may be NULL. */
  void (*deinit)(layer_t *l);
  /* The elements [*lo, *hi) of params[param] that grads writes for
   * member `member` of `size`, so that the optimizer can update them
   * while they are still in cache. NULL: an even split of the tensor. */
  void (*share)(const layer_t *l, int param, int member, int size,
                size_t *lo, size_t *hi);
} layer_ops_t;

struct layer {
  const layer_ops_t *ops;
  layer_shape_t in, out;
  int in_dim, out_dim; /* c * h * w of in and out */
  int batch_cap;       /* most rows a batch may have */
  int members;         /* most team members that may run it at once */
  int n_params;
  optim_param_t params[2]; /* weight (decay 1), bias (decay 0) */
  void *state;             /* kind-specific: geometry, scratch, masks */
  rng_t *rng; /* the layer's own random draws (dropout), inside state, or
               * NULL: what a checkpoint saves besides the parameters */
};

/* How a layer is described in a model: kind and the sizes that kind
 * reads. Unused fields are 0. */
enum {
  LAYER_DENSE,
  LAYER_RELU,
  LAYER_CONV2D,
  LAYER_MAXPOOL,
  LAYER_DROPOUT,
  LAYER_FLATTEN
};

typedef struct {
  int kind;
  int units;   /* dense: output features */
  int filters; /* conv2d: output channels */
  int kernel;  /* conv2d, maxpool: window side */
  int stride;  /* conv2d, maxpool: step; 0 means 1 (conv) or kernel */
  int pad;     /* conv2d: zero padding on each side */
  float rate;  /* dropout: probability of dropping a value, [0, 1) */
} layer_desc_t;

/* What every layer needs to be built besides its description. */
typedef struct {
  int batch_cap;
  int members;
  rng_t *init;   /* draws initial weights and biases */
  uint64_t seed; /* seeds the layer's own draws (dropout masks) */
} layer_env_t;

/* Builds a layer of description d for inputs of shape in. On success
 * *out is a layer the caller frees with layer_free. Returns -EINVAL when
 * the description does not fit the shape (a kernel larger than the
 * padded input, say), -ENOMEM; err says which. */
int layer_new(const layer_desc_t *d, layer_shape_t in,
              const layer_env_t *env, layer_t **out, char *err,
              size_t errlen);

/* Shorthands for the flat layers. Return NULL when memory runs out. */
layer_t *layer_dense_new(int in_dim, int out_dim, rng_t *rng);
layer_t *layer_relu_new(int dim);

/* The elements [*lo, *hi) of l->params[param] that member `member` of
 * `size` forms in the grads step (see layer_ops_t.share). */
void layer_param_share(const layer_t *l, int param, int member, int size,
                       size_t *lo, size_t *hi);

/* Frees a layer, its parameters and its state; accepts NULL. */
void layer_free(layer_t *l);

/* Single-threaded conveniences over the ops: the whole batch of n rows as
 * member 0 of 1. layer_forward calls prepare first; layer_backward writes
 * dx and the parameter gradients. */
void layer_forward(layer_t *l, const float *x, float *y, int n,
                   int training);
void layer_backward(layer_t *l, const float *x, const float *y,
                    const float *dy, float *dx, int n);

/* Slow reference kernels the tests compare the fast ones against.
 * dense: x (n, in), w (out, in), b (out) -> y (n, out). */
void layer_dense_forward_ref(const float *x, const float *w, const float *b,
                             float *y, int n, int in, int out);

/* dy (n, out) -> dw (out, in) and db (out) accumulated, dx (n, in). */
void layer_dense_backward_ref(const float *x, const float *w,
                              const float *dy, float *dw, float *db,
                              float *dx, int n, int in, int out);

/* conv2d on channels-last images: x (n, h, w, c), weights
 * (filters, kh, kw, c), bias (filters) -> y (n, ho, wo, filters), with
 * ho = (h + 2 pad - k) / stride + 1, likewise wo. */
void layer_conv2d_forward_ref(const float *x, const float *wt,
                              const float *b, float *y, int n,
                              layer_shape_t in, int filters, int k,
                              int stride, int pad);

/* dy (n, ho, wo, filters) -> dwt and db accumulated, dx (n, h, w, c)
 * written when not NULL. */
void layer_conv2d_backward_ref(const float *x, const float *wt,
                               const float *dy, float *dwt, float *db,
                               float *dx, int n, layer_shape_t in,
                               int filters, int k, int stride, int pad);

/* max-pool k x k with stride s on channels-last images: x (n, h, w, c) ->
 * y (n, ho, wo, c), ho = (h - k) / s + 1; backward routes dy to the first
 * maximum of each window. */
void layer_maxpool_forward_ref(const float *x, float *y, int n,
                               layer_shape_t in, int k, int s);
void layer_maxpool_backward_ref(const float *x, const float *dy, float *dx,
                                int n, layer_shape_t in, int k, int s);

#endif
