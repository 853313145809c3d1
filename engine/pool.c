/* SPDX-License-Identifier: MIT */
/* The max-pool layer on channels-last images, without padding. Forward
 * remembers where each maximum came from so backward can route the
 * gradient there; naive reference twins sit at the end of the file. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"

/* Geometry and the argmax of every output of every row of the batch: the
 * offset within the row's input of the value that won. */
typedef struct {
  int h, w, c, ho, wo, k, stride;
  int32_t *argmax; /* batch_cap * out_dim */
} pool_state_t;

/* Four channels at once, as vector types of GCC and Clang: compares and
 * blends without a branch per value, whatever the optimization level
 * makes of plain loops. Four floats is the width every x86-64 handles
 * natively; wider generic vectors fall back to scalar code there. */
#define POOL_BLOCK 4
typedef float pool_f4 __attribute__((vector_size(16)));
typedef int32_t pool_i4 __attribute__((vector_size(16)));

/* Channels [0, POOL_BLOCK) from offset `at` of the window there in one
 * image img (h, w, c): y gets each channel's maximum, am its offset in
 * img; the first maximum in (ky, kx) order wins ties. */
static void pool_block(const pool_state_t *s, const float *img, int32_t at,
                       float *y, int32_t *am) {
  const pool_i4 lane = {0, 1, 2, 3};
  pool_i4 a = lane + at, gt;
  pool_f4 m, v;

  memcpy(&m, img + at, sizeof m);
  for (int ky = 0; ky < s->k; ky++)
    for (int kx = 0; kx < s->k; kx++) {
      int32_t tap = at + (ky * s->w + kx) * s->c;
      memcpy(&v, img + tap, sizeof v);
      gt = v > m;
      a = (a & ~gt) | ((lane + tap) & gt);
      m = (pool_f4)(((pool_i4)m & ~gt) | ((pool_i4)v & gt));
    }
  memcpy(y, &m, sizeof m);
  memcpy(am, &a, sizeof a);
}

/* One channel of the window at offset `at`, as pool_block: for the
 * channels left over after the blocks. */
static void pool_one(const pool_state_t *s, const float *img, int32_t at,
                     float *y, int32_t *am) {
  float m = img[at];
  int32_t a = at;

  for (int ky = 0; ky < s->k; ky++)
    for (int kx = 0; kx < s->k; kx++) {
      int32_t tap = at + (ky * s->w + kx) * s->c;
      if (img[tap] > m) {
        m = img[tap];
        a = tap;
      }
    }
  *y = m;
  *am = a;
}

/* Every channel of the window at offset `at`: y (c), am (c). */
static void pool_window(const pool_state_t *s, const float *img, int32_t at,
                        float *y, int32_t *am) {
  int ch = 0;

  for (; ch + POOL_BLOCK <= s->c; ch += POOL_BLOCK)
    pool_block(s, img, at + ch, y + ch, am + ch);
  for (; ch < s->c; ch++)
    pool_one(s, img, at + ch, y + ch, am + ch);
}

/* Forward of a row range, (rows, h * w * c) -> (rows, ho * wo * c). */
static void pool_forward(layer_t *l, const layer_rows_t *r, const float *x,
                         float *y) {
  pool_state_t *s = l->state;

  assert(r->first + r->n <= l->batch_cap);
  for (int i = 0; i < r->n; i++) {
    const float *img = x + (size_t)i * l->in_dim;
    size_t row = (size_t)i * l->out_dim;
    int32_t *am = s->argmax + (size_t)(r->first + i) * l->out_dim;
    for (int oy = 0; oy < s->ho; oy++)
      for (int ox = 0; ox < s->wo; ox++) {
        size_t o = ((size_t)oy * s->wo + ox) * s->c;
        int32_t at = (oy * s->stride * s->w + ox * s->stride) * s->c;
        pool_window(s, img, at, y + row + o, am + o);
      }
  }
}

/* Backward of a row range: dx zeroed, then each output's gradient added
 * at the input that won its window (overlapping windows accumulate). */
static void pool_backward(layer_t *l, const layer_rows_t *r, const float *x,
                          const float *y, const float *dy, float *dx) {
  pool_state_t *s = l->state;

  (void)x;
  (void)y;
  if (!dx)
    return;
  memset(dx, 0, sizeof(float) * (size_t)r->n * l->in_dim);
  for (int i = 0; i < r->n; i++) {
    const int32_t *am = s->argmax + (size_t)(r->first + i) * l->out_dim;
    const float *g = dy + (size_t)i * l->out_dim;
    float *d = dx + (size_t)i * l->in_dim;
    for (int j = 0; j < l->out_dim; j++)
      d[am[j]] += g[j];
  }
}

static void pool_deinit(layer_t *l) {
  pool_state_t *s = l->state;

  if (s)
    free(s->argmax);
  free(s);
  l->state = NULL;
}

static const layer_ops_t pool_ops = {"maxpool",     NULL, pool_forward,
                                     pool_backward, NULL, pool_deinit};

/* Checks d against the input shape; -EINVAL with err. */
static int pool_check(const layer_desc_t *d, layer_shape_t in,
                      const layer_env_t *env, char *err, size_t errlen) {
  if (d->kernel < 1 || d->stride < 0 || d->stride > 1024) {
    snprintf(err, errlen,
             "maxpool: kernel %d, stride %d out of range (kernel >= 1, "
             "stride 0..1024)",
             d->kernel, d->stride);
    return -EINVAL;
  }
  if (d->kernel > in.h || d->kernel > in.w) {
    snprintf(err, errlen, "maxpool: window %dx%d larger than input %dx%dx%d",
             d->kernel, d->kernel, in.h, in.w, in.c);
    return -EINVAL;
  }
  if (env->batch_cap < 1 || (long long)in.h * in.w * in.c > INT32_MAX) {
    snprintf(err, errlen,
             "maxpool: input %dx%dx%d or batch capacity %d out of range", in.h,
             in.w, in.c, env->batch_cap);
    return -EINVAL;
  }
  return 0;
}

int layer_maxpool_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen) {
  int rc = pool_check(d, in, env, err, errlen);
  int stride = d->stride ? d->stride : d->kernel;
  layer_shape_t o;
  pool_state_t *s;
  layer_t *l;

  if (rc)
    return rc;
  o = (layer_shape_t){in.c, (in.h - d->kernel) / stride + 1,
                      (in.w - d->kernel) / stride + 1};
  l = layer_alloc(&pool_ops, in, o, env);
  s = l ? calloc(1, sizeof *s) : NULL;
  if (s) {
    l->state = s;
    *s = (pool_state_t){in.h, in.w, in.c, o.h, o.w, d->kernel, stride, NULL};
    s->argmax =
        malloc(sizeof(int32_t) * (size_t)env->batch_cap * (size_t)l->out_dim);
  }
  if (!s || !s->argmax) {
    layer_free(l);
    snprintf(err, errlen, "maxpool: out of memory");
    return -ENOMEM;
  }
  *out = l;
  return 0;
}

/* The offset from win of the first maximum of a k x k window whose top
 * left value is win[0], one channel of an image of shape in. */
static size_t ref_argmax(const float *win, layer_shape_t in, int k) {
  size_t best = 0;

  for (int ky = 0; ky < k; ky++)
    for (int kx = 0; kx < k; kx++) {
      size_t at = ((size_t)ky * in.w + kx) * in.c;
      if (win[at] > win[best])
        best = at;
    }
  return best;
}

/* Offset in an image of shape in of channel ch of the top left value of
 * the window of output pixel (oy, ox) at stride s. */
static size_t ref_origin(layer_shape_t in, int s, int oy, int ox, int ch) {
  return ((size_t)oy * s * in.w + (size_t)ox * s) * in.c + ch;
}

void layer_maxpool_forward_ref(const float *x, float *y, int n,
                               layer_shape_t in, int k, int s) {
  int ho = (in.h - k) / s + 1, wo = (in.w - k) / s + 1;
  size_t in_dim = (size_t)in.h * in.w * in.c;

  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < ho; oy++)
      for (int ox = 0; ox < wo; ox++)
        for (int ch = 0; ch < in.c; ch++) {
          const float *win = x + i * in_dim + ref_origin(in, s, oy, ox, ch);
          *y++ = win[ref_argmax(win, in, k)];
        }
}

void layer_maxpool_backward_ref(const float *x, const float *dy, float *dx,
                                int n, layer_shape_t in, int k, int s) {
  int ho = (in.h - k) / s + 1, wo = (in.w - k) / s + 1;
  size_t in_dim = (size_t)in.h * in.w * in.c;

  memset(dx, 0, sizeof(float) * in_dim * (size_t)n);
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < ho; oy++)
      for (int ox = 0; ox < wo; ox++)
        for (int ch = 0; ch < in.c; ch++) {
          size_t at = i * in_dim + ref_origin(in, s, oy, ox, ch);
          dx[at + ref_argmax(x + at, in, k)] += *dy++;
        }
}
