/* SPDX-License-Identifier: MIT */
/* Models: a stack of layers built from a named preset, with a forward pass
 * over a batch, a backward pass that accumulates parameter gradients, and
 * the parameter list an optimizer steps. */
#ifndef SPK_ENGINE_MODEL_H
#define SPK_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "optim.h"
#include "rng.h"

#define MODEL_MAX_LAYERS 16

typedef struct {
  int n_layers;
  layer_t *layers[MODEL_MAX_LAYERS];
  int in_dim, out_dim;
  int batch_cap;          /* largest batch the buffers hold */
  const float *input;               /* the last forward pass's input */
  float *act[MODEL_MAX_LAYERS + 1]; /* act[i]: output of layer i - 1 */
  float *grad[MODEL_MAX_LAYERS + 1];
  optim_param_t params[2 * MODEL_MAX_LAYERS];
  int n_params;
} model_t;

/* 1 when name is a preset this engine can build ("mlp"), else 0. */
int model_preset_known(const char *name);

/* Builds preset name for inputs of in_dim features and classes outputs,
 * initialising parameters from rng, with buffers for batches of up to
 * batch_cap rows. *out is freed with model_free. Returns 0, -EINVAL for an
 * unknown preset, -ENOMEM. */
int model_new(const char *name, int in_dim, int classes, int batch_cap,
              rng_t *rng, model_t **out, char *err, size_t errlen);

void model_free(model_t *m);

/* (n, in_dim) -> (n, out_dim): returns a pointer to the logits inside the
 * model's buffers, valid until the next call. n <= batch_cap. x is read
 * again by model_backward, so it must stay unchanged until then. */
const float *model_forward(model_t *m, const float *x, int n, int training);

/* Back-propagates dlogits (n, out_dim) from the last forward pass,
 * accumulating into every parameter's gradient. */
void model_backward(model_t *m, const float *dlogits, int n);

/* Sets every parameter gradient to zero. */
void model_zero_grad(model_t *m);

#endif
