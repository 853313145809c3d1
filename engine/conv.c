/* SPDX-License-Identifier: MIT */
/* The conv2d layer on channels-last images, as im2col + sgemm: a chunk of
 * samples is unfolded into a column matrix with one row per output pixel,
 * and one GEMM with the weights gives the output. Naive reference twins of
 * both passes sit at the end of the file for the tests. */
#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"

/* A member's column buffer holds at most this many floats (1 MiB), so it
 * stays in a core's L2 cache between im2col and the GEMM that reads it,
 * unless one sample alone needs more; and at most CONV_CHUNK_MAX samples.
 * Measured on the CNN preset: larger buffers ran a few percent slower. */
#define CONV_COL_BUDGET (256u << 10)
#define CONV_CHUNK_MAX 32

/* Geometry of one conv2d layer. */
typedef struct {
  int h, w, c;   /* input image */
  int ho, wo, f; /* output image: f filters */
  int k, stride, pad;
  int kkc; /* k * k * c: one column row */
  int pix; /* ho * wo: output pixels per sample */
} conv_geom_t;

typedef struct {
  conv_geom_t g;
  int chunk;       /* samples per im2col chunk */
  float **col;     /* members buffers of chunk * pix * kkc floats */
  float **partial; /* members buffers of f * kkc + f floats: dW then db */
} conv_state_t;

/* d[0 .. n) = s[0 .. n). A call to memcpy costs more than a short copy,
 * so a run under 32 values moves as two fixed-size pieces, from its start
 * and to its end, which may overlap: no loop and no call. */
static inline void copy_run(float *restrict d, const float *restrict s,
                            size_t n) {
  if (n >= 32) {
    memcpy(d, s, sizeof(float) * n);
  } else if (n >= 16) {
    memcpy(d, s, sizeof(float) * 16);
    memcpy(d + n - 16, s + n - 16, sizeof(float) * 16);
  } else if (n >= 8) {
    memcpy(d, s, sizeof(float) * 8);
    memcpy(d + n - 8, s + n - 8, sizeof(float) * 8);
  } else if (n >= 4) {
    memcpy(d, s, sizeof(float) * 4);
    memcpy(d + n - 4, s + n - 4, sizeof(float) * 4);
  } else if (n >= 2) {
    memcpy(d, s, sizeof(float) * 2);
    memcpy(d + n - 2, s + n - 2, sizeof(float) * 2);
  } else if (n == 1) {
    d[0] = s[0];
  }
}

/* d[0 .. n) += s[0 .. n), in blocks like copy_run. */
static inline void add_run(float *restrict d, const float *restrict s,
                           size_t n) {
  size_t j = 0;

  for (; j + 8 <= n; j += 8)
    for (int t = 0; t < 8; t++)
      d[j + t] += s[j + t];
  for (; j < n; j++)
    d[j] += s[j];
}

/* The horizontal extent of the window at ix0 = ox * stride - pad that
 * lies inside the image: taps [*lo, *hi). */
static void tap_range(const conv_geom_t *g, int ix0, int *lo, int *hi) {
  *lo = ix0 < 0 ? -ix0 : 0;
  *hi = g->w - ix0 < g->k ? g->w - ix0 : g->k;
}

/* One column row, for a window that may cover padding: the taps of
 * output pixel (oy, ox) of img, zeros where they fall outside. */
static void im2col_edge(const conv_geom_t *g, const float *img, int oy, int ox,
                        float *row) {
  size_t kc = (size_t)g->k * g->c;
  int iy0 = oy * g->stride - g->pad, ix0 = ox * g->stride - g->pad, lo, hi;

  tap_range(g, ix0, &lo, &hi);
  memset(row, 0, sizeof(float) * kc * (size_t)g->k);
  for (int ky = 0; ky < g->k; ky++) {
    int iy = iy0 + ky;
    if (iy >= 0 && iy < g->h && hi > lo)
      copy_run(row + ky * kc + (size_t)lo * g->c,
               img + ((size_t)iy * g->w + ix0 + lo) * g->c,
               (size_t)(hi - lo) * g->c);
  }
}

/* The output pixels whose windows lie inside the image along one axis of
 * `size` inputs, [*lo, *hi) out of `outs`: those with
 * 0 <= o * stride - pad and o * stride - pad + k <= size. */
static void inner_range(const conv_geom_t *g, int size, int outs, int *lo,
                        int *hi) {
  int last = size + g->pad - g->k;

  *lo = (g->pad + g->stride - 1) / g->stride;
  *hi = last < 0 ? 0 : last / g->stride + 1;
  if (*hi > outs)
    *hi = outs;
  if (*lo > *hi)
    *lo = *hi;
}

/* Offset in an image of the top left value of the window of output pixel
 * (oy, ox), which must lie inside the image. */
static size_t window_at(const conv_geom_t *g, int oy, int ox) {
  int iy = oy * g->stride - g->pad, ix = ox * g->stride - g->pad;

  return ((size_t)iy * g->w + (size_t)ix) * g->c;
}

/* Unfolds n samples of x (n, h, w, c) into col (n * ho * wo, k * k * c):
 * row (i, oy, ox) holds the k x k window at that output pixel, taps in
 * (ky, kx) order, c values each, zeros where the window covers padding.
 * Windows inside the image copy k runs of k * c contiguous values. */
static void im2col(const conv_geom_t *g, const float *x, int n, float *col) {
  size_t in_dim = (size_t)g->h * g->w * g->c, kc = (size_t)g->k * g->c;
  size_t kkc = (size_t)g->kkc;
  int y0, y1, x0, x1;

  inner_range(g, g->h, g->ho, &y0, &y1);
  inner_range(g, g->w, g->wo, &x0, &x1);
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * in_dim;
    for (int oy = 0; oy < g->ho; oy++)
      for (int ox = 0; ox < g->wo; ox++, col += kkc) {
        const float *src;
        if (oy < y0 || oy >= y1 || ox < x0 || ox >= x1) {
          im2col_edge(g, img, oy, ox, col);
          continue;
        }
        src = img + window_at(g, oy, ox);
        for (int ky = 0; ky < g->k; ky++)
          copy_run(col + ky * kc, src + (size_t)ky * g->w * g->c, kc);
      }
  }
}

/* The adjoint of im2col_edge: adds one column row into img, dropping the
 * taps that fall on padding. */
static void col2im_edge(const conv_geom_t *g, const float *row, int oy, int ox,
                        float *img) {
  size_t kc = (size_t)g->k * g->c;
  int iy0 = oy * g->stride - g->pad, ix0 = ox * g->stride - g->pad, lo, hi;

  tap_range(g, ix0, &lo, &hi);
  for (int ky = 0; ky < g->k; ky++) {
    int iy = iy0 + ky;
    if (iy >= 0 && iy < g->h && hi > lo)
      add_run(img + ((size_t)iy * g->w + ix0 + lo) * g->c,
              row + ky * kc + (size_t)lo * g->c, (size_t)(hi - lo) * g->c);
  }
}

/* The adjoint of im2col: scatter-adds col (n * ho * wo, k * k * c) into
 * dx (n, h, w, c), which it zeroes first; padding taps are dropped. */
static void col2im(const conv_geom_t *g, const float *col, int n, float *dx) {
  size_t in_dim = (size_t)g->h * g->w * g->c, kc = (size_t)g->k * g->c;
  size_t kkc = (size_t)g->kkc;
  int y0, y1, x0, x1;

  inner_range(g, g->h, g->ho, &y0, &y1);
  inner_range(g, g->w, g->wo, &x0, &x1);
  memset(dx, 0, sizeof(float) * in_dim * (size_t)n);
  for (int i = 0; i < n; i++) {
    float *img = dx + (size_t)i * in_dim;
    for (int oy = 0; oy < g->ho; oy++)
      for (int ox = 0; ox < g->wo; ox++, col += kkc) {
        float *dst;
        if (oy < y0 || oy >= y1 || ox < x0 || ox >= x1) {
          col2im_edge(g, col, oy, ox, img);
          continue;
        }
        dst = img + window_at(g, oy, ox);
        for (int ky = 0; ky < g->k; ky++)
          add_run(dst + (size_t)ky * g->w * g->c, col + ky * kc, kc);
      }
  }
}

/* Forward of a row range, (rows, h * w * c) -> (rows, ho * wo * f), one
 * chunk at a time: y_chunk = bias + col W^T, which is channels last. */
static void conv_forward(layer_t *l, const layer_rows_t *r, const float *x,
                         float *y) {
  conv_state_t *s = l->state;
  const conv_geom_t *g = &s->g;
  const float *wt = l->params[0].value, *b = l->params[1].value;
  float *col = s->col[r->member];

  assert(r->member < l->members);
  for (int i0 = 0; i0 < r->n; i0 += s->chunk) {
    int n = r->n - i0 < s->chunk ? r->n - i0 : s->chunk;
    int rows = n * g->pix;
    float *yc = y + (size_t)i0 * l->out_dim;

    im2col(g, x + (size_t)i0 * l->in_dim, n, col);
    for (int p = 0; p < rows; p++)
      copy_run(yc + (size_t)p * g->f, b, (size_t)g->f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, g->f, g->kkc,
                1.0f, col, g->kkc, wt, g->kkc, 1.0f, yc, g->f);
  }
}

/* db[0 .. f) += the column sums of dy (rows, f). */
static void bias_grad(const float *dy, int rows, int f, float *db) {
  for (int p = 0; p < rows; p++)
    add_run(db, dy + (size_t)p * f, (size_t)f);
}

/* Backward of a row range, chunk by chunk: the member's partial gradients
 * dW += dy^T col and db += sums of dy, then dcol = dy W (into the column
 * buffer) scattered into dx unless dx is NULL. */
static void conv_backward(layer_t *l, const layer_rows_t *r, const float *x,
                          const float *y, const float *dy, float *dx) {
  conv_state_t *s = l->state;
  const conv_geom_t *g = &s->g;
  const float *wt = l->params[0].value;
  float *col = s->col[r->member], *dw = s->partial[r->member];
  float *db = dw + (size_t)g->f * g->kkc;

  (void)y;
  assert(r->member < l->members);
  for (int i0 = 0; i0 < r->n; i0 += s->chunk) {
    int n = r->n - i0 < s->chunk ? r->n - i0 : s->chunk;
    int rows = n * g->pix;
    const float *dyc = dy + (size_t)i0 * l->out_dim;

    im2col(g, x + (size_t)i0 * l->in_dim, n, col);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->f, g->kkc, rows,
                1.0f, dyc, g->f, col, g->kkc, 1.0f, dw, g->kkc);
    bias_grad(dyc, rows, g->f, db);
    if (!dx)
      continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, g->kkc, g->f,
                1.0f, dyc, g->f, wt, g->kkc, 0.0f, col, g->kkc);
    col2im(g, col, n, dx + (size_t)i0 * l->in_dim);
  }
}

/* Adds the members' partial gradients, summed in member order, into the
 * parameter gradients for this member's share of the (dW, db) elements,
 * and zeroes those partial elements for the next batch. x, dy and n are
 * not needed: backward already formed the partials. */
static void conv_grads(layer_t *l, const float *x, const float *dy, int n,
                       int member, int size) {
  conv_state_t *s = l->state;
  size_t nw = (size_t)s->g.f * s->g.kkc;
  float *acc = s->partial[0];
  size_t whi, blo;
  int lo, hi;

  (void)x;
  (void)dy;
  (void)n;
  layer_share((int)(nw + (size_t)s->g.f), member, size, &lo, &hi);
  for (int m = 1; m < l->members; m++) {
    float *p = s->partial[m];
    add_run(acc + lo, p + lo, (size_t)(hi - lo));
    memset(p + lo, 0, sizeof(float) * (size_t)(hi - lo));
  }
  whi = (size_t)hi < nw ? (size_t)hi : nw;
  blo = (size_t)lo > nw ? (size_t)lo : nw;
  if (whi > (size_t)lo)
    memcpy(l->params[0].grad + lo, acc + lo,
           sizeof(float) * (whi - (size_t)lo));
  if ((size_t)hi > blo)
    memcpy(l->params[1].grad + (blo - nw), acc + blo,
           sizeof(float) * ((size_t)hi - blo));
  memset(acc + lo, 0, sizeof(float) * (size_t)(hi - lo));
}

static void conv_deinit(layer_t *l) {
  conv_state_t *s = l->state;

  if (!s)
    return;
  for (int m = 0; m < l->members; m++) {
    if (s->col)
      free(s->col[m]);
    if (s->partial)
      free(s->partial[m]);
  }
  free(s->col);
  free(s->partial);
  free(s);
  l->state = NULL;
}

/* conv_grads' shares: an even split of the weights and biases taken as
 * one vector, dW's elements first. */
static void conv_share(const layer_t *l, int param, int member, int size,
                       size_t *lo, size_t *hi) {
  size_t nw = l->params[0].n;
  int a, b;

  layer_share((int)(nw + l->params[1].n), member, size, &a, &b);
  if (param == 0) {
    *lo = (size_t)a < nw ? (size_t)a : nw;
    *hi = (size_t)b < nw ? (size_t)b : nw;
  } else {
    *lo = (size_t)a > nw ? (size_t)a - nw : 0;
    *hi = (size_t)b > nw ? (size_t)b - nw : 0;
  }
}

static const layer_ops_t conv_ops = {"conv2d",      NULL,       conv_forward,
                                     conv_backward, conv_grads, conv_deinit,
                                     conv_share};

/* The geometry of a convolution of in by filters k x k windows. */
static conv_geom_t geom_of(layer_shape_t in, int filters, int k, int stride,
                           int pad) {
  conv_geom_t g = {.h = in.h,
                   .w = in.w,
                   .c = in.c,
                   .f = filters,
                   .k = k,
                   .stride = stride,
                   .pad = pad};

  g.ho = (in.h + 2 * pad - k) / stride + 1;
  g.wo = (in.w + 2 * pad - k) / stride + 1;
  g.kkc = k * k * in.c;
  g.pix = g.ho * g.wo;
  return g;
}

/* 1 when the weights, the output or one sample's columns would exceed
 * 2^28 values (a GiB of floats). */
static int conv_too_large(const layer_desc_t *d, layer_shape_t in, int stride) {
  long long kkc = (long long)d->kernel * d->kernel * in.c;
  long long ho = (in.h + 2LL * d->pad - d->kernel) / stride + 1;
  long long pix = ho * ((in.w + 2LL * d->pad - d->kernel) / stride + 1);
  long long lim = 1LL << 28;

  return (long long)in.h * in.w * in.c > lim || kkc * d->filters > lim ||
         pix * d->filters > lim || pix * kkc > lim;
}

/* Checks d against the input shape and fills g; -EINVAL with err. */
static int conv_geom(const layer_desc_t *d, layer_shape_t in, conv_geom_t *g,
                     char *err, size_t errlen) {
  int stride = d->stride ? d->stride : 1;

  if (d->filters < 1 || d->filters > 4096 || d->kernel < 1 || d->kernel > 64 ||
      stride < 1 || stride > 64 || d->pad < 0 || d->pad >= d->kernel) {
    snprintf(err, errlen,
             "conv2d: filters %d, kernel %d, stride %d, pad %d out of range "
             "(filters 1..4096, kernel 1..64, stride 1..64, pad 0..kernel-1)",
             d->filters, d->kernel, d->stride, d->pad);
    return -EINVAL;
  }
  if (d->kernel > in.h + 2LL * d->pad || d->kernel > in.w + 2LL * d->pad) {
    snprintf(err, errlen,
             "conv2d: kernel %dx%d does not fit input %dx%dx%d padded by %d",
             d->kernel, d->kernel, in.h, in.w, in.c, d->pad);
    return -EINVAL;
  }
  if (conv_too_large(d, in, stride)) {
    snprintf(err, errlen,
             "conv2d: %d filters of %dx%d over input %dx%dx%d is too large",
             d->filters, d->kernel, d->kernel, in.h, in.w, in.c);
    return -EINVAL;
  }
  *g = geom_of(in, d->filters, d->kernel, stride, d->pad);
  return 0;
}

/* Samples per chunk: as many as fit the column budget, at least one. */
static int conv_chunk(const conv_geom_t *g, int batch_cap) {
  size_t per = (size_t)g->pix * g->kkc;
  size_t n = CONV_COL_BUDGET / per;

  if (n > CONV_CHUNK_MAX)
    n = CONV_CHUNK_MAX;
  if (n > (size_t)batch_cap)
    n = (size_t)batch_cap;
  return n < 1 ? 1 : (int)n;
}

/* Allocates the per-member column and partial-gradient buffers. */
static int conv_state_alloc(layer_t *l, conv_state_t *s) {
  size_t col = (size_t)s->chunk * s->g.pix * s->g.kkc;
  size_t part = (size_t)s->g.f * s->g.kkc + (size_t)s->g.f;

  s->col = calloc((size_t)l->members, sizeof *s->col);
  s->partial = calloc((size_t)l->members, sizeof *s->partial);
  if (!s->col || !s->partial)
    return -ENOMEM;
  for (int m = 0; m < l->members; m++) {
    s->col[m] = malloc(sizeof(float) * col);
    s->partial[m] = calloc(part, sizeof(float));
    if (!s->col[m] || !s->partial[m])
      return -ENOMEM;
  }
  return 0;
}

int layer_conv2d_build(const layer_desc_t *d, layer_shape_t in,
                       const layer_env_t *env, layer_t **out, char *err,
                       size_t errlen) {
  conv_geom_t g;
  conv_state_t *s;
  layer_t *l;
  int rc = conv_geom(d, in, &g, err, errlen);

  if (rc)
    return rc;
  l = layer_alloc(&conv_ops, in, (layer_shape_t){g.f, g.ho, g.wo}, env);
  s = l ? calloc(1, sizeof *s) : NULL;
  if (!s) {
    layer_free(l);
    snprintf(err, errlen, "conv2d: out of memory");
    return -ENOMEM;
  }
  l->state = s;
  s->g = g;
  s->chunk = conv_chunk(&g, env->batch_cap);
  if (conv_state_alloc(l, s) ||
      layer_param_alloc(l, 0, (size_t)g.f * g.kkc, 1) ||
      layer_param_alloc(l, 1, (size_t)g.f, 0)) {
    layer_free(l);
    snprintf(err, errlen, "conv2d: out of memory");
    return -ENOMEM;
  }
  layer_param_init(l, g.kkc, env->init);
  *out = l;
  return 0;
}

/* Offset within an image of the first channel under tap (ky, kx) of
 * output pixel (oy, ox), or -1 where the tap covers padding. */
static long ref_tap(const conv_geom_t *g, int oy, int ox, int ky, int kx) {
  int iy = oy * g->stride - g->pad + ky, ix = ox * g->stride - g->pad + kx;

  if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
    return -1;
  return ((long)iy * g->w + ix) * g->c;
}

/* One output value: bias plus the window of output pixel (oy, ox) of img
 * against filter f, summed in double. */
static float ref_output(const conv_geom_t *g, const float *img, const float *wt,
                        float bias, int oy, int ox, int f) {
  double sum = bias;

  for (int ky = 0; ky < g->k; ky++)
    for (int kx = 0; kx < g->k; kx++) {
      long at = ref_tap(g, oy, ox, ky, kx);
      const float *wf = wt + (((size_t)f * g->k + ky) * g->k + kx) * g->c;
      for (int ch = 0; at >= 0 && ch < g->c; ch++)
        sum += (double)img[at + ch] * wf[ch];
    }
  return (float)sum;
}

void layer_conv2d_forward_ref(const float *x, const float *wt, const float *b,
                              float *y, int n, layer_shape_t in, int filters,
                              int k, int stride, int pad) {
  conv_geom_t g = geom_of(in, filters, k, stride, pad);

  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g.ho; oy++)
      for (int ox = 0; ox < g.wo; ox++)
        for (int f = 0; f < filters; f++)
          *y++ = ref_output(&g, x + (size_t)i * g.h * g.w * g.c, wt, b[f], oy,
                            ox, f);
}

/* The reference gradient of weight element (f, ky, kx, ch), summed in
 * double over every sample and output pixel. */
static double ref_dw(const conv_geom_t *g, const float *x, const float *dy,
                     int n, int f, int tap_ch) {
  int ch = tap_ch % g->c, kx = tap_ch / g->c % g->k, ky = tap_ch / g->c / g->k;
  size_t in_dim = (size_t)g->h * g->w * g->c;
  double sum = 0.0;

  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->ho; oy++)
      for (int ox = 0; ox < g->wo; ox++) {
        long at = ref_tap(g, oy, ox, ky, kx);
        size_t o = (((size_t)i * g->ho + oy) * g->wo + ox) * g->f + f;
        if (at >= 0)
          sum += (double)dy[o] * x[i * in_dim + (size_t)at + ch];
      }
  return sum;
}

/* The reference input gradient: dx zeroed, then every output's gradient
 * times the weights scattered onto the inputs under its window. */
static void ref_dx(const conv_geom_t *g, const float *wt, const float *dy,
                   float *dx, int n) {
  size_t in_dim = (size_t)g->h * g->w * g->c;

  memset(dx, 0, sizeof(float) * in_dim * (size_t)n);
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->ho; oy++)
      for (int ox = 0; ox < g->wo; ox++)
        for (int f = 0; f < g->f; f++, dy++)
          for (int tap = 0; tap < g->k * g->k; tap++) {
            long at = ref_tap(g, oy, ox, tap / g->k, tap % g->k);
            const float *wf = wt + ((size_t)f * g->k * g->k + tap) * g->c;
            for (int ch = 0; at >= 0 && ch < g->c; ch++)
              dx[i * in_dim + (size_t)at + ch] += *dy * wf[ch];
          }
}

void layer_conv2d_backward_ref(const float *x, const float *wt, const float *dy,
                               float *dwt, float *db, float *dx, int n,
                               layer_shape_t in, int filters, int k, int stride,
                               int pad) {
  conv_geom_t g = geom_of(in, filters, k, stride, pad);
  size_t pixels = (size_t)n * g.pix;

  for (int f = 0; f < filters; f++) {
    double sum = 0.0;
    for (size_t p = 0; p < pixels; p++)
      sum += dy[p * filters + f];
    db[f] += (float)sum;
    for (int j = 0; j < g.kkc; j++)
      dwt[(size_t)f * g.kkc + j] += (float)ref_dw(&g, x, dy, n, f, j);
  }
  if (dx)
    ref_dx(&g, wt, dy, dx, n);
}
