/* SPDX-License-Identifier: MIT */
/* The dropout layer, inverted: in training each value is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), so inference is the
 * identity. Masks come from the layer's own generator, one batch at a
 * time, or from a test through layer_dropout_mask_set. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"

typedef struct {
  float scale;   /* 1 / (1 - rate) */
  uint32_t drop; /* a 32-bit draw below this drops the value */
  int fixed;     /* a mask was set: the next training prepare keeps it */
  rng_t rng;     /* draws the masks */
  uint8_t *mask; /* batch_cap * dim, 1 keeps, 0 drops; by batch row */
} drop_state_t;

/* Draws count mask values, two per 64-bit draw. */
static void drop_draw(drop_state_t *s, size_t count) {
  size_t i = 0;

  for (; i + 1 < count; i += 2) {
    uint64_t r = rng_next(&s->rng);
    s->mask[i] = (uint32_t)r >= s->drop;
    s->mask[i + 1] = (uint32_t)(r >> 32) >= s->drop;
  }
  if (i < count)
    s->mask[i] = (uint32_t)rng_next(&s->rng) >= s->drop;
}

/* Draws the masks of the batch's n rows, in training only, unless a mask
 * was set for this batch. */
static void drop_prepare(layer_t *l, int n, int training) {
  drop_state_t *s = l->state;

  assert(n <= l->batch_cap);
  if (!training)
    return;
  if (s->fixed) {
    s->fixed = 0;
    return;
  }
  drop_draw(s, (size_t)n * l->in_dim);
}

/* v (count) times the mask m (count) and scale, into out. */
static void drop_apply(const drop_state_t *s, const uint8_t *m, const float *v,
                       float *out, size_t count) {
  for (size_t i = 0; i < count; i++)
    out[i] = v[i] * ((float)m[i] * s->scale);
}

/* Forward of a row range, (rows, d) -> (rows, d). */
static void drop_forward(layer_t *l, const layer_rows_t *r, const float *x,
                         float *y) {
  drop_state_t *s = l->state;
  size_t count = (size_t)r->n * l->in_dim;

  if (r->training)
    drop_apply(s, s->mask + (size_t)r->first * l->in_dim, x, y, count);
  else if (y != x)
    memcpy(y, x, sizeof(float) * count);
}

/* Backward of a row range: dx = dy times the forward's mask and scale. */
static void drop_backward(layer_t *l, const layer_rows_t *r, const float *x,
                          const float *y, const float *dy, float *dx) {
  drop_state_t *s = l->state;
  size_t count = (size_t)r->n * l->in_dim;

  (void)x;
  (void)y;
  if (!dx)
    return;
  if (r->training)
    drop_apply(s, s->mask + (size_t)r->first * l->in_dim, dy, dx, count);
  else if (dx != dy)
    memcpy(dx, dy, sizeof(float) * count);
}

static void drop_deinit(layer_t *l) {
  drop_state_t *s = l->state;

  if (s)
    free(s->mask);
  free(s);
  l->state = NULL;
}

static const layer_ops_t drop_ops = {"dropout",     drop_prepare, drop_forward,
                                     drop_backward, NULL,         drop_deinit};

int layer_dropout_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen) {
  drop_state_t *s;
  layer_t *l;

  if (!(d->rate >= 0.0f && d->rate < 1.0f) || env->batch_cap < 1) {
    snprintf(
        err, errlen,
        "dropout: rate %g out of range [0, 1) or batch capacity %d below 1",
        (double)d->rate, env->batch_cap);
    return -EINVAL;
  }
  l = layer_alloc(&drop_ops, in, in, env);
  s = l ? calloc(1, sizeof *s) : NULL;
  if (s) {
    l->state = s;
    s->scale = 1.0f / (1.0f - d->rate);
    s->drop = (uint32_t)((double)d->rate * 4294967296.0);
    rng_init(&s->rng, env->seed, 0x64726f70u);
    l->rng = &s->rng;
    s->mask = calloc((size_t)env->batch_cap, (size_t)l->in_dim);
  }
  if (!s || !s->mask) {
    layer_free(l);
    snprintf(err, errlen, "dropout: out of memory");
    return -ENOMEM;
  }
  *out = l;
  return 0;
}

void layer_dropout_mask_set(layer_t *l, const uint8_t *mask, int n) {
  drop_state_t *s = l->state;
  size_t count = (size_t)n * l->in_dim;

  assert(l->ops == &drop_ops && n <= l->batch_cap);
  for (size_t i = 0; i < count; i++)
    s->mask[i] = mask[i] != 0;
  s->fixed = 1;
}

rng_t *layer_dropout_rng(layer_t *l) {
  return l->ops == &drop_ops ? l->rng : NULL;
}
