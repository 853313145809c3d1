/* SPDX-License-Identifier: MIT */
/* Layers with a forward pass and a backward pass of the same shape.
 * Activations are (n, dim) row-major float32; a layer owns its parameters
 * and gradients, the model owns the activations between layers. */
#ifndef SPK_ENGINE_LAYERS_H
#define SPK_ENGINE_LAYERS_H

#include <stddef.h>

#include "optim.h"
#include "rng.h"

typedef struct layer layer_t;

typedef struct {
  const char *name;
  /* (n, in_dim) -> (n, out_dim). */
  void (*forward)(layer_t *l, const float *x, float *y, int n, int training);
  /* Given x and y of the forward pass and dy (n, out_dim): accumulates
   * parameter gradients and writes dx (n, in_dim) unless dx is NULL. */
  void (*backward)(layer_t *l, const float *x, const float *y,
                   const float *dy, float *dx, int n);
} layer_ops_t;

struct layer {
  const layer_ops_t *ops;
  int in_dim, out_dim;
  int n_params;
  optim_param_t params[2]; /* dense: weight (out, in), bias (out) */
};

/* A dense layer in -> out, weights drawn He-normal from rng, biases 0.
 * Returns NULL when memory runs out. */
layer_t *layer_dense_new(int in_dim, int out_dim, rng_t *rng);

/* An element-wise ReLU on dim features. */
layer_t *layer_relu_new(int dim);

/* Frees a layer and its parameters; accepts NULL. */
void layer_free(layer_t *l);

/* Slow reference kernels the tests compare the fast ones against.
 * dense: x (n, in), w (out, in), b (out) -> y (n, out). */
void layer_dense_forward_ref(const float *x, const float *w, const float *b,
                             float *y, int n, int in, int out);

/* dy (n, out) -> dw (out, in) and db (out) accumulated, dx (n, in). */
void layer_dense_backward_ref(const float *x, const float *w,
                              const float *dy, float *dw, float *db,
                              float *dx, int n, int in, int out);

#endif
