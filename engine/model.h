/* SPDX-License-Identifier: MIT */
/* Models: a stack of layers built from a description (a named preset or
 * a list of layers), the activation and gradient buffers between them,
 * and a training step split across a team: forward and input gradients
 * by rows, parameter gradients and updates by parameter shares. */
#ifndef SPK_ENGINE_MODEL_H
#define SPK_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "optim.h"
#include "rng.h"
#include "team.h"

#define MODEL_MAX_LAYERS 24

/* What one model may take, so that no job spec can exhaust the host's
 * memory: parameters (each held with its gradient and optimizer state)
 * and the activation and gradient values of one batch. */
#define MODEL_MAX_PARAMS 50000000
#define MODEL_MAX_ACTIVATIONS 250000000
#define MODEL_NAME_MAX 32

/* A dense layer's units set to MODEL_CLASSES become the dataset's class
 * count when the model is built (the presets end so). */
#define MODEL_CLASSES (-1)

/* A model as a list of layer descriptions; name is the preset's name or
 * "custom". */
typedef struct {
  char name[MODEL_NAME_MAX];
  int n_layers;
  layer_desc_t layers[MODEL_MAX_LAYERS];
} model_desc_t;

/* Fills d with preset name: "mlp" (784-512-256-10 with ReLU),
 * "mlp-small" (784-128-10), "cnn" (conv 5x5 32, ReLU, max-pool 2, conv
 * 5x5 64, ReLU, max-pool 2, dense 128, ReLU, dense to the classes).
 * Returns 0 or -EINVAL for an unknown name. */
int model_preset(const char *name, model_desc_t *d);

/* The preset names, NULL-terminated, for messages. */
extern const char *const model_preset_names[];

/* 1 when name is a preset, else 0. */
int model_preset_known(const char *name);

typedef struct {
  int n_layers;
  layer_t *layers[MODEL_MAX_LAYERS];
  layer_shape_t in;
  int in_dim, out_dim;
  int batch_cap;        /* most rows a batch may have */
  int members;          /* most team members that may run it */
  int n_rows;           /* rows of the last forward pass */
  const float *input;   /* the last forward pass's input */
  float *act[MODEL_MAX_LAYERS + 1];  /* act[i]: output of layer i - 1 */
  float *grad[MODEL_MAX_LAYERS + 1]; /* gradient of act[i] */
  optim_param_t *params[2 * MODEL_MAX_LAYERS];
  int n_params;
  /* A gradient from outside the loss on the logits: extra_grad (rows,
   * output size of layer extra_layer) is added to the gradient at that
   * layer's output by backward passes; NULL for none. */
  int extra_layer;
  const float *extra_grad;
} model_t;

/* What a model is built with besides its description. */
typedef struct {
  layer_shape_t in; /* one sample's shape */
  int classes;
  int batch_cap;
  int members;   /* the team size it will run on */
  rng_t *init;   /* draws the initial weights */
  uint64_t seed; /* seeds dropout masks */
} model_env_t;

/* Builds d for env. *out is freed with model_free. Returns 0, -EINVAL
 * when a layer does not fit its input (err names the layer, e.g.
 * "layers[3] (dense): ...") or the last layer does not give the class
 * count, -ENOMEM. */
int model_new(const model_desc_t *d, const model_env_t *env, model_t **out,
              char *err, size_t errlen);

void model_free(model_t *m);

/* (n, in_dim) -> (n, out_dim) split by rows across team (which may be
 * NULL): returns the logits inside the model's buffers, valid until the
 * next call. n <= batch_cap. x must stay unchanged until model_backward. */
const float *model_forward(model_t *m, team_t *team, const float *x, int n,
                           int training);

/* Back-propagates dlogits (n, out_dim) of the last forward pass and
 * writes the batch's parameter gradients into every params[i]->grad. */
void model_backward(model_t *m, team_t *team, const float *dlogits);

/* Allocates what optimizer cfg keeps per parameter (Adam's second
 * moments). Call once before model_update. Returns 0 or -ENOMEM. */
int model_optim_prepare(model_t *m, const optim_config_t *cfg);

/* One optimizer step on every parameter, split across team. step counts
 * updates from 1. */
void model_update(model_t *m, team_t *team, const optim_config_t *cfg,
                  double lr, long step);

/* model_backward and model_update in one: each member updates its share
 * of a layer's parameters right after forming their gradients, while
 * they are in cache. The result is the same as the two calls. */
void model_step(model_t *m, team_t *team, const float *dlogits,
                const optim_config_t *cfg, double lr, long step);

/* Layer i's output of the last forward pass, (n_rows, model_layer_dim),
 * valid until the next forward. */
const float *model_layer_output(const model_t *m, int i);

/* Values per row of layer i's output. */
int model_layer_dim(const model_t *m, int i);

/* Makes the following backward passes add dh (rows, model_layer_dim(m,
 * layer)) to the gradient at layer's output, as a second loss on that
 * layer's features would (dh NULL: stop). dh stays the caller's and must
 * hold the rows of the forward pass being back-propagated. */
void model_extra_grad_set(model_t *m, int layer, const float *dh);

/* Number of trainable values. */
size_t model_param_count(const model_t *m);

#endif
