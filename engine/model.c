/* SPDX-License-Identifier: MIT */
/* Models built from named presets: a stack of layers, the activation
 * buffers between them, and the flat parameter list an optimizer sees. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A preset is a list of hidden widths; every hidden layer is dense + ReLU,
 * and a final dense layer maps to the classes. */
typedef struct {
  const char *name;
  int n_hidden;
  int hidden[4];
} preset_t;

static const preset_t presets[] = {
    {"mlp", 2, {512, 256}},
};

static const preset_t *preset_find(const char *name) {
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (strcmp(presets[i].name, name) == 0)
      return &presets[i];
  return NULL;
}

int model_preset_known(const char *name) {
  return preset_find(name) != NULL;
}

static int model_push(model_t *m, layer_t *l) {
  if (!l)
    return -ENOMEM;
  m->layers[m->n_layers++] = l;
  for (int i = 0; i < l->n_params; i++)
    m->params[m->n_params++] = l->params[i];
  return 0;
}

static int model_buffers_alloc(model_t *m) {
  for (int i = 1; i <= m->n_layers; i++) {
    int dim = m->layers[i - 1]->out_dim;
    size_t n = (size_t)m->batch_cap * dim;
    m->act[i] = malloc(n * sizeof(float));
    m->grad[i] = malloc(n * sizeof(float));
    if (!m->act[i] || !m->grad[i])
      return -ENOMEM;
  }
  return 0;
}

int model_new(const char *name, int in_dim, int classes, int batch_cap,
              rng_t *rng, model_t **out, char *err, size_t errlen) {
  const preset_t *p = preset_find(name);
  model_t *m;
  int dim = in_dim, rc = 0;

  *out = NULL;
  if (!p) {
    snprintf(err, errlen, "unknown model '%s'", name);
    return -EINVAL;
  }
  m = calloc(1, sizeof *m);
  if (!m)
    goto nomem;
  m->in_dim = in_dim;
  m->out_dim = classes;
  m->batch_cap = batch_cap;

  for (int i = 0; i < p->n_hidden && rc == 0; i++) {
    rc = model_push(m, layer_dense_new(dim, p->hidden[i], rng));
    if (rc == 0)
      rc = model_push(m, layer_relu_new(p->hidden[i]));
    dim = p->hidden[i];
  }
  if (rc == 0)
    rc = model_push(m, layer_dense_new(dim, classes, rng));
  if (rc == 0)
    rc = model_buffers_alloc(m);
  if (rc != 0)
    goto nomem;
  *out = m;
  return 0;

nomem:
  model_free(m);
  snprintf(err, errlen, "out of memory building model '%s'", name);
  return -ENOMEM;
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

const float *model_forward(model_t *m, const float *x, int n, int training) {
  m->input = x;
  for (int i = 0; i < m->n_layers; i++) {
    layer_t *l = m->layers[i];
    const float *in = i == 0 ? x : m->act[i];
    l->ops->forward(l, in, m->act[i + 1], n, training);
  }
  return m->act[m->n_layers];
}

void model_backward(model_t *m, const float *dlogits, int n) {
  int last = m->n_layers;

  memcpy(m->grad[last], dlogits, sizeof(float) * (size_t)n * m->out_dim);
  for (int i = last - 1; i >= 0; i--) {
    layer_t *l = m->layers[i];
    float *dx = i > 0 ? m->grad[i] : NULL;
    const float *in = i == 0 ? m->input : m->act[i];
    l->ops->backward(l, in, m->act[i + 1], m->grad[i + 1], dx, n);
  }
}

void model_zero_grad(model_t *m) {
  for (int i = 0; i < m->n_params; i++)
    memset(m->params[i].grad, 0, sizeof(float) * m->params[i].n);
}
