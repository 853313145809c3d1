/* SPDX-License-Identifier: MIT */
/* Models: presets, building a layer stack from a description, and the
 * training step split across a team. Forward and input gradients run by
 * rows, each member through every layer without waiting for the others;
 * parameter gradients and the optimizer run by parameter shares after. */
#include "model.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"

const char *const model_preset_names[] = {"mlp", "mlp-small", "cnn", NULL};

#define DENSE(u) {.kind = LAYER_DENSE, .units = (u)}
#define RELU {.kind = LAYER_RELU}

static const model_desc_t presets[] = {
    {"mlp", 5, {DENSE(512), RELU, DENSE(256), RELU, DENSE(MODEL_CLASSES)}},
    {"mlp-small", 3, {DENSE(128), RELU, DENSE(MODEL_CLASSES)}},
    {"cnn",
     10,
     {{.kind = LAYER_CONV2D, .filters = 32, .kernel = 5},
      RELU,
      {.kind = LAYER_MAXPOOL, .kernel = 2},
      {.kind = LAYER_CONV2D, .filters = 64, .kernel = 5},
      RELU,
      {.kind = LAYER_MAXPOOL, .kernel = 2},
      {.kind = LAYER_FLATTEN},
      DENSE(128),
      RELU,
      DENSE(MODEL_CLASSES)}},
};

int model_preset(const char *name, model_desc_t *d) {
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (strcmp(presets[i].name, name) == 0) {
      *d = presets[i];
      return 0;
    }
  return -EINVAL;
}

int model_preset_known(const char *name) {
  model_desc_t d;
  return model_preset(name, &d) == 0;
}

static const char *const kind_names[] = {"dense",   "relu",    "conv2d",
                                         "maxpool", "dropout", "flatten"};

/* Adds layer l's parameters to the model's list. */
static void model_push(model_t *m, layer_t *l) {
  m->layers[m->n_layers++] = l;
  for (int i = 0; i < l->n_params; i++)
    m->params[m->n_params++] = &l->params[i];
}

static int model_buffers_alloc(model_t *m) {
  for (int i = 1; i <= m->n_layers; i++) {
    size_t n = (size_t)m->batch_cap * m->layers[i - 1]->out_dim;
    m->act[i] = malloc(n * sizeof(float));
    m->grad[i] = malloc(n * sizeof(float));
    if (!m->act[i] || !m->grad[i])
      return -ENOMEM;
  }
  /* grad[0] only ever receives the first layer's input gradient, which
   * nothing needs; layers skip it when given NULL. */
  return 0;
}

/* Parameters layer description d would have on input shape in, counted
 * before anything is allocated. */
static double layer_param_estimate(const layer_desc_t *d, layer_shape_t in,
                                   int classes) {
  double in_dim = (double)in.c * in.h * in.w;
  double units = d->units == MODEL_CLASSES ? classes : d->units;

  if (d->kind == LAYER_DENSE)
    return in_dim * units + units;
  if (d->kind == LAYER_CONV2D)
    return (double)d->filters * d->kernel * d->kernel * in.c + d->filters;
  return 0.0;
}

/* Builds layer i of d on input shape in; names the layer in err. */
static int model_layer(const model_desc_t *d, int i, layer_shape_t in,
                       const model_env_t *env, layer_t **out, char *err,
                       size_t errlen) {
  layer_desc_t ld = d->layers[i];
  layer_env_t le = {env->batch_cap, env->members, env->init,
                    env->seed + (uint64_t)i};
  char why[256];
  int rc;

  if (ld.kind == LAYER_DENSE && ld.units == MODEL_CLASSES)
    ld.units = env->classes;
  *out = NULL;
  if (layer_param_estimate(&ld, in, env->classes) > MODEL_MAX_PARAMS) {
    snprintf(why, sizeof why, "%.0f parameters; a model may have at most "
             "%d", layer_param_estimate(&ld, in, env->classes),
             MODEL_MAX_PARAMS);
    rc = -EINVAL;
  } else {
    rc = layer_new(&ld, in, &le, out, why, sizeof why);
  }
  if (rc)
    snprintf(err, errlen, "layers[%d] (%s): %s", i,
             ld.kind >= 0 && ld.kind <= LAYER_FLATTEN ? kind_names[ld.kind]
                                                      : "unknown",
             why);
  return rc;
}

int model_new(const model_desc_t *d, const model_env_t *env, model_t **out,
              char *err, size_t errlen) {
  model_t *m = calloc(1, sizeof *m);
  layer_shape_t shape = env->in;
  double acts = 0.0; /* activation and gradient floats of a batch */
  int rc = 0;

  *out = NULL;
  if (!m) {
    snprintf(err, errlen, "out of memory building model '%s'", d->name);
    return -ENOMEM;
  }
  m->in = env->in;
  m->in_dim = env->in.c * env->in.h * env->in.w;
  m->batch_cap = env->batch_cap;
  m->members = env->members > 0 ? env->members : 1;
  if (d->n_layers < 1 || d->n_layers > MODEL_MAX_LAYERS) {
    snprintf(err, errlen, "a model needs 1 to %d layers", MODEL_MAX_LAYERS);
    rc = -EINVAL;
  }
  for (int i = 0; rc == 0 && i < d->n_layers; i++) {
    layer_t *l;
    rc = model_layer(d, i, shape, env, &l, err, errlen);
    if (rc == 0) {
      model_push(m, l);
      shape = l->out;
      acts += (double)m->batch_cap * l->out_dim * 2.0;
    }
    if (rc == 0 && (model_param_count(m) > MODEL_MAX_PARAMS ||
                    acts > MODEL_MAX_ACTIVATIONS)) {
      snprintf(err, errlen, "layers[%d]: the model grows past %d "
               "parameters or %d activation values a batch", i,
               MODEL_MAX_PARAMS, MODEL_MAX_ACTIVATIONS);
      rc = -EINVAL;
    }
  }
  m->out_dim = shape.c * shape.h * shape.w;
  if (rc == 0 && m->out_dim != env->classes) {
    snprintf(err, errlen, "layers[%d] gives %d outputs, but the dataset "
             "has %d classes", d->n_layers - 1, m->out_dim, env->classes);
    rc = -EINVAL;
  }
  if (rc == 0 && model_buffers_alloc(m) != 0) {
    snprintf(err, errlen, "out of memory for activations of '%s'", d->name);
    rc = -ENOMEM;
  }
  if (rc) {
    model_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

void model_free(model_t *m) {
  if (!m)
    return;
  for (int i = 0; i < m->n_layers; i++)
    layer_free(m->layers[i]);
  for (int i = 0; i <= MODEL_MAX_LAYERS; i++) {
    free(m->act[i]);
    free(m->grad[i]);
  }
  free(m);
}

/* One pass of the step, handed to every member. */
typedef struct {
  model_t *m;
  int training;
  const optim_config_t *cfg;
  double lr;
  long step;
  team_t *team; /* for the barrier inside model_step's pass */
} pass_t;

static const float *layer_input(const model_t *m, int i) {
  return i == 0 ? m->input : m->act[i];
}

/* The member's rows through every layer. */
static void forward_rows(void *ctx, int member, int size) {
  pass_t *p = ctx;
  model_t *m = p->m;
  int lo, hi;

  layer_share(m->n_rows, member, size, &lo, &hi);
  if (hi <= lo)
    return;
  for (int i = 0; i < m->n_layers; i++) {
    layer_t *l = m->layers[i];
    layer_rows_t r = {lo, hi - lo, member, p->training};
    l->ops->forward(l, &r, layer_input(m, i) + (size_t)lo * l->in_dim,
                    m->act[i + 1] + (size_t)lo * l->out_dim);
  }
}

const float *model_forward(model_t *m, team_t *team, const float *x, int n,
                           int training) {
  pass_t p = {m, training, NULL, 0.0, 0};

  m->input = x;
  m->n_rows = n;
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i]->ops->prepare)
      m->layers[i]->ops->prepare(m->layers[i], n, training);
  team_run(team, forward_rows, &p);
  return m->act[m->n_layers];
}

/* dst[lo:hi] += src[lo:hi] over rows of dim values. */
static void add_rows(float *restrict dst, const float *restrict src, int lo,
                     int hi, int dim) {
  size_t first = (size_t)lo * dim, last = (size_t)hi * dim;

  for (size_t k = first; k < last; k++)
    dst[k] += src[k];
}

/* The member's rows back through every layer: input gradients. */
static void backward_rows(void *ctx, int member, int size) {
  model_t *m = ((pass_t *)ctx)->m;
  int lo, hi;

  layer_share(m->n_rows, member, size, &lo, &hi);
  if (hi <= lo)
    return;
  for (int i = m->n_layers - 1; i >= 0; i--) {
    layer_t *l = m->layers[i];
    layer_rows_t r = {lo, hi - lo, member, 1};
    float *dx = i > 0 ? m->grad[i] + (size_t)lo * l->in_dim : NULL;
    if (m->extra_grad && i == m->extra_layer)
      add_rows(m->grad[i + 1], m->extra_grad, lo, hi, l->out_dim);
    l->ops->backward(l, &r, layer_input(m, i) + (size_t)lo * l->in_dim,
                     m->act[i + 1] + (size_t)lo * l->out_dim,
                     m->grad[i + 1] + (size_t)lo * l->out_dim, dx);
  }
}

/* The member's share of every layer's parameter gradients. */
static void grads_shares(void *ctx, int member, int size) {
  model_t *m = ((pass_t *)ctx)->m;

  for (int i = 0; i < m->n_layers; i++) {
    layer_t *l = m->layers[i];
    if (l->ops->grads)
      l->ops->grads(l, layer_input(m, i), m->grad[i + 1], m->n_rows, member,
                    size);
  }
}

static void grads_update_shares(void *ctx, int member, int size);

/* The whole backward pass of model_step in one hand-off: input gradients
 * by rows, a barrier, then parameter gradients and updates by shares. */
static void step_all(void *ctx, int member, int size) {
  backward_rows(ctx, member, size);
  team_sync(((pass_t *)ctx)->team);
  grads_update_shares(ctx, member, size);
}

/* The member's share of every layer's parameter gradients, each share
 * updated by the optimizer as soon as it is formed. */
static void grads_update_shares(void *ctx, int member, int size) {
  pass_t *p = ctx;
  model_t *m = p->m;

  for (int i = 0; i < m->n_layers; i++) {
    layer_t *l = m->layers[i];
    if (!l->ops->grads)
      continue;
    l->ops->grads(l, layer_input(m, i), m->grad[i + 1], m->n_rows, member,
                  size);
    for (int j = 0; j < l->n_params; j++) {
      size_t lo, hi;
      layer_param_share(l, j, member, size, &lo, &hi);
      optim_update_range(p->cfg, p->lr, p->step, &l->params[j], lo, hi);
    }
  }
}

void model_step(model_t *m, team_t *team, const float *dlogits,
                const optim_config_t *cfg, double lr, long step) {
  pass_t p = {m, 1, cfg, lr, step, team};

  memcpy(m->grad[m->n_layers], dlogits,
         sizeof(float) * (size_t)m->n_rows * m->out_dim);
  team_run(team, step_all, &p);
}

void model_backward(model_t *m, team_t *team, const float *dlogits) {
  pass_t p = {m, 1, NULL, 0.0, 0};

  memcpy(m->grad[m->n_layers], dlogits,
         sizeof(float) * (size_t)m->n_rows * m->out_dim);
  team_run(team, backward_rows, &p);
  team_run(team, grads_shares, &p);
}

/* The member's share of every parameter tensor. */
static void update_shares(void *ctx, int member, int size) {
  pass_t *p = ctx;

  for (int i = 0; i < p->m->n_params; i++) {
    optim_param_t *q = p->m->params[i];
    int lo, hi;
    layer_share((int)q->n, member, size, &lo, &hi);
    optim_update_range(p->cfg, p->lr, p->step, q, (size_t)lo, (size_t)hi);
  }
}

int model_optim_prepare(model_t *m, const optim_config_t *cfg) {
  for (int i = 0; i < m->n_params; i++)
    if (optim_param_prepare(cfg, m->params[i]) != 0)
      return -ENOMEM;
  return 0;
}

void model_update(model_t *m, team_t *team, const optim_config_t *cfg,
                  double lr, long step) {
  pass_t p = {m, 1, cfg, lr, step};

  team_run(team, update_shares, &p);
}

const float *model_layer_output(const model_t *m, int i) {
  assert(i >= 0 && i < m->n_layers);
  return m->act[i + 1];
}

int model_layer_dim(const model_t *m, int i) {
  assert(i >= 0 && i < m->n_layers);
  return m->layers[i]->out_dim;
}

void model_extra_grad_set(model_t *m, int layer, const float *dh) {
  assert(!dh || (layer >= 0 && layer < m->n_layers));
  m->extra_layer = layer;
  m->extra_grad = dh;
}

size_t model_param_count(const model_t *m) {
  size_t n = 0;

  for (int i = 0; i < m->n_params; i++)
    n += m->params[i]->n;
  return n;
}
