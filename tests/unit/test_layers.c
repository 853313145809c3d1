/* SPDX-License-Identifier: MIT */
/* Unit tests of the conv2d, max-pool and dropout layers: each fast kernel
 * against its reference twin on assorted shapes, a batch split across two
 * and three members against one member, finite-difference gradients,
 * dropout's masks and statistics, and the shapes each builder refuses. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "numcheck.h"
#include "../../engine/layer_internal.h"
#include "../../engine/layers.h"
#include "../../engine/rng.h"

/* Helpers shared by the tests. */



static float *dup(const float *v, size_t n) {
  float *p = xalloc(n);
  memcpy(p, v, sizeof(float) * n);
  return p;
}


/* check_close over n values, with atol = rtol times the largest |want|,
 * so that values near zero after cancellation are judged at the scale
 * of the whole tensor. */
static void check_all(const float *got, const float *want, size_t n,
                      double rtol, const char *what) {
  double scale = 0.0;

  for (size_t i = 0; i < n; i++)
    scale = fmax(scale, fabs(want[i]));
  for (size_t i = 0; i < n; i++)
    check_close(got[i], want[i], rtol, rtol * scale, what, i);
}

/* Builds a layer of description d on input in, failing the test on any
 * error; weights are drawn from seed. */
static layer_t *build(layer_desc_t d, layer_shape_t in, int batch_cap,
                      int members, uint64_t seed) {
  rng_t init;
  layer_env_t env = {batch_cap, members, &init, seed};
  layer_t *l = NULL;
  char err[256] = "";
  int rc;

  rng_init(&init, seed, 7);
  rc = layer_new(&d, in, &env, &l, err, sizeof err);
  if (rc)
    fail_msg("layer_new: %d %s", rc, err);
  assert_non_null(l);
  return l;
}

static void zero_grads(layer_t *l) {
  for (int i = 0; i < l->n_params; i++)
    memset(l->params[i].grad, 0, sizeof(float) * l->params[i].n);
}

/* Gives l's bias random values (so that tests do not depend on its initial values). */
static void random_bias(layer_t *l, uint64_t seed) {
  rng_t rng;

  rng_init(&rng, seed, 9);
  fill_normal(&rng, l->params[1].value, l->params[1].n, 0.5f);
}

/* The parameters' gradients concatenated, in a new buffer. */
static float *grads_copy(const layer_t *l, size_t *count) {
  size_t n = 0;
  float *g;

  for (int i = 0; i < l->n_params; i++)
    n += l->params[i].n;
  g = xalloc(n);
  n = 0;
  for (int i = 0; i < l->n_params; i++) {
    memcpy(g + n, l->params[i].grad, sizeof(float) * l->params[i].n);
    n += l->params[i].n;
  }
  *count = n;
  return g;
}

/* conv2d against its reference. */

typedef struct {
  int n, h, w, c, filters, k, stride, pad;
} conv_case_t;

static const conv_case_t conv_cases[] = {
    {1, 5, 5, 1, 1, 3, 1, 0},     /* batch 1, c = 1, one filter */
    {1, 7, 6, 3, 4, 3, 2, 1},     /* odd sizes, stride 2, pad 1 */
    {2, 9, 9, 1, 5, 5, 1, 2},     /* pad 2 */
    {3, 8, 11, 3, 7, 3, 2, 2},    /* stride 2 and pad 2 */
    {2, 3, 3, 2, 3, 3, 1, 2},     /* output larger than the input */
    {2, 6, 6, 3, 4, 3, 3, 1},     /* stride 3 */
    {3, 5, 7, 1, 3, 1, 1, 0},     /* 1x1 kernel */
    {2, 4, 4, 3, 2, 4, 1, 0},     /* kernel as large as the input */
    {1, 1, 1, 3, 2, 1, 1, 0},     /* a single pixel */
    {37, 6, 5, 2, 3, 2, 2, 1},    /* more rows than one chunk */
    {4, 28, 28, 1, 8, 5, 1, 0},   /* the CNN's first layer, fewer filters */
    {3, 12, 12, 32, 9, 5, 1, 0},  /* the CNN's second layer, fewer filters */
    {23, 16, 16, 16, 3, 3, 1, 1}, /* chunks of a few samples, a short one */
    {3, 64, 64, 16, 3, 5, 1, 0},  /* large samples: one per chunk */
};

static layer_desc_t conv_desc(const conv_case_t *t) {
  return (layer_desc_t){.kind = LAYER_CONV2D,
                        .filters = t->filters,
                        .kernel = t->k,
                        .stride = t->stride,
                        .pad = t->pad};
}

static layer_shape_t conv_in(const conv_case_t *t) {
  return (layer_shape_t){t->c, t->h, t->w};
}

/* Forward and backward of one case through layer_forward and
 * layer_backward against the reference kernels; gradients and dx are
 * overwritten, so they start as garbage. */
static void conv_compare(const conv_case_t *t, uint64_t seed) {
  layer_t *l = build(conv_desc(t), conv_in(t), t->n, 3, seed);
  size_t nx = (size_t)t->n * l->in_dim, ny = (size_t)t->n * l->out_dim;
  size_t nw = l->params[0].n, nb = l->params[1].n;
  float *x = xalloc(nx), *y = xalloc(ny), *yr = xalloc(ny);
  float *dy = xalloc(ny), *dx = xalloc(nx), *dxr = xalloc(nx);
  float *dwr, *dbr;
  rng_t rng;

  assert_int_equal(l->out.c, t->filters);
  assert_int_equal(l->out.h, (t->h + 2 * t->pad - t->k) / t->stride + 1);
  assert_int_equal(l->out.w, (t->w + 2 * t->pad - t->k) / t->stride + 1);
  assert_int_equal(nw, (size_t)t->filters * t->k * t->k * t->c);
  rng_init(&rng, seed, 1);
  fill_normal(&rng, l->params[1].value, nb, 0.5f);
  fill_normal(&rng, x, nx, 1.0f);
  fill_normal(&rng, dy, ny, 1.0f);
  fill_normal(&rng, l->params[0].grad, nw, 1.0f);
  fill_normal(&rng, l->params[1].grad, nb, 1.0f);
  dwr = xalloc(nw);
  dbr = xalloc(nb);
  memset(dwr, 0, sizeof(float) * nw);
  memset(dbr, 0, sizeof(float) * nb);
  for (size_t i = 0; i < nx; i++)
    dx[i] = 7.0f;

  layer_forward(l, x, y, t->n, 1);
  layer_conv2d_forward_ref(x, l->params[0].value, l->params[1].value, yr, t->n,
                           conv_in(t), t->filters, t->k, t->stride, t->pad);
  check_all(y, yr, ny, 1e-5, "conv y");
  layer_backward(l, x, y, dy, dx, t->n);
  layer_conv2d_backward_ref(x, l->params[0].value, dy, dwr, dbr, dxr, t->n,
                            conv_in(t), t->filters, t->k, t->stride, t->pad);
  check_all(dx, dxr, nx, 1e-5, "conv dx");
  check_all(l->params[0].grad, dwr, nw, 1e-5, "conv dw");
  check_all(l->params[1].grad, dbr, nb, 1e-5, "conv db");

  layer_free(l);
  free(x), free(y), free(yr), free(dy), free(dx), free(dxr), free(dwr);
  free(dbr);
}

static void test_conv_matches_reference(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
    conv_compare(&conv_cases[i], 100 + i);
}

/* Without dx (the first layer) backward still forms the weight
 * gradients, and a second batch replaces them: nothing is left over in
 * the members' partial sums. */
static void test_conv_first_layer_overwrites(void **state) {
  const conv_case_t t = {3, 7, 7, 2, 4, 3, 2, 1};
  layer_t *l = build(conv_desc(&t), conv_in(&t), t.n, 2, 9);
  size_t nx = (size_t)t.n * l->in_dim, ny = (size_t)t.n * l->out_dim;
  float *x = xalloc(nx), *y = xalloc(ny), *dy = xalloc(ny), *once;
  size_t count;
  rng_t rng;

  (void)state;
  rng_init(&rng, 9, 2);
  fill_normal(&rng, x, nx, 1.0f);
  fill_normal(&rng, dy, ny, 1.0f);
  layer_forward(l, x, y, t.n, 1);
  layer_backward(l, x, y, dy, NULL, t.n);
  once = grads_copy(l, &count);
  layer_backward(l, x, y, dy, NULL, t.n);
  for (size_t i = 0; i < l->params[0].n; i++)
    check_close(l->params[0].grad[i], once[i], 1e-6, 1e-6, "dw", i);
  for (size_t i = 0; i < l->params[1].n; i++)
    check_close(l->params[1].grad[i], once[l->params[0].n + i], 1e-6, 1e-6,
                "db", i);
  layer_free(l);
  free(x), free(y), free(dy), free(once);
}

/* Desc stride 0 means 1 for conv2d and the kernel for maxpool. */
static void test_stride_zero_defaults(void **state) {
  layer_desc_t c = {.kind = LAYER_CONV2D, .filters = 2, .kernel = 3};
  layer_desc_t p = {.kind = LAYER_MAXPOOL, .kernel = 3};
  layer_t *lc = build(c, (layer_shape_t){1, 9, 8}, 1, 1, 1);
  layer_t *lp = build(p, (layer_shape_t){2, 9, 8}, 1, 1, 1);

  (void)state;
  assert_int_equal(lc->out.h, 7);
  assert_int_equal(lc->out.w, 6);
  assert_int_equal(lp->out.h, 3);
  assert_int_equal(lp->out.w, 2);
  assert_int_equal(lp->out.c, 2);
  layer_free(lc);
  layer_free(lp);
}

/* Max-pool against its reference. */

typedef struct {
  int n, h, w, c, k, stride;
} pool_case_t;

static const pool_case_t pool_cases[] = {
    {1, 4, 4, 1, 2, 2},    /* batch 1, c = 1 */
    {3, 5, 7, 3, 2, 2},    /* odd sizes drop the last column and row */
    {2, 9, 9, 2, 3, 2},    /* overlapping windows */
    {1, 6, 5, 4, 3, 1},    /* stride 1 */
    {4, 24, 24, 32, 2, 2}, /* the CNN's first pool */
    {2, 7, 7, 1, 7, 7},    /* the whole image */
    {37, 3, 3, 3, 2, 1},   /* many rows */
    {2, 8, 8, 3, 2, 3},    /* stride larger than the window */
};

static layer_desc_t pool_desc(const pool_case_t *t) {
  return (layer_desc_t){
      .kind = LAYER_MAXPOOL, .kernel = t->k, .stride = t->stride};
}

static layer_shape_t pool_in(const pool_case_t *t) {
  return (layer_shape_t){t->c, t->h, t->w};
}

static void pool_compare(const pool_case_t *t, uint64_t seed) {
  layer_t *l = build(pool_desc(t), pool_in(t), t->n, 2, seed);
  size_t nx = (size_t)t->n * l->in_dim, ny = (size_t)t->n * l->out_dim;
  float *x = xalloc(nx), *y = xalloc(ny), *yr = xalloc(ny);
  float *dy = xalloc(ny), *dx = xalloc(nx), *dxr = xalloc(nx);
  rng_t rng;

  assert_int_equal(l->out.h, (t->h - t->k) / t->stride + 1);
  assert_int_equal(l->out.w, (t->w - t->k) / t->stride + 1);
  assert_int_equal(l->out.c, t->c);
  assert_int_equal(l->n_params, 0);
  rng_init(&rng, seed, 1);
  fill_normal(&rng, x, nx, 1.0f);
  fill_normal(&rng, dy, ny, 1.0f);
  for (size_t i = 0; i < nx; i++)
    dx[i] = 7.0f;

  layer_forward(l, x, y, t->n, 1);
  layer_maxpool_forward_ref(x, yr, t->n, pool_in(t), t->k, t->stride);
  for (size_t i = 0; i < ny; i++)
    assert_true(y[i] == yr[i]);
  layer_backward(l, x, y, dy, dx, t->n);
  layer_maxpool_backward_ref(x, dy, dxr, t->n, pool_in(t), t->k, t->stride);
  check_all(dx, dxr, nx, 1e-6, "maxpool dx");

  layer_free(l);
  free(x), free(y), free(yr), free(dy), free(dx), free(dxr);
}

static void test_pool_matches_reference(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
    pool_compare(&pool_cases[i], 200 + i);
}

/* Equal values: the first in (ky, kx) order takes the gradient, in the
 * fast kernel and in the reference alike. Six channels go through the
 * kernel's four-channel blocks and its one-channel tail. */
static void test_pool_ties(void **state) {
  enum { H = 4, W = 4, C = 6 };
  layer_desc_t d = {.kind = LAYER_MAXPOOL, .kernel = 2, .stride = 2};
  layer_shape_t in = {C, H, W};
  layer_t *l = build(d, in, 1, 1, 1);
  float x[H * W * C], y[2 * 2 * C], dy[2 * 2 * C], dx[H * W * C];
  float dxr[H * W * C];

  (void)state;
  for (int i = 0; i < H * W * C; i++)
    x[i] = 1.5f;
  for (int i = 0; i < 2 * 2 * C; i++)
    dy[i] = (float)(i + 1);
  layer_forward(l, x, y, 1, 1);
  layer_backward(l, x, y, dy, dx, 1);
  layer_maxpool_backward_ref(x, dy, dxr, 1, in, 2, 2);
  for (int iy = 0; iy < H; iy++)
    for (int ix = 0; ix < W; ix++)
      for (int ch = 0; ch < C; ch++) {
        int at = (iy * W + ix) * C + ch, o = ((iy / 2) * 2 + ix / 2) * C + ch;
        float want = iy % 2 == 0 && ix % 2 == 0 ? dy[o] : 0.0f;
        assert_true(dx[at] == want);
        assert_true(dxr[at] == want);
      }
  layer_free(l);
}

/* A batch split across members gives what one member gives. */

/* Rows of member m of size over n rows. */
static layer_rows_t rows_of(int n, int m, int size) {
  layer_rows_t r = {0, 0, m, 1};
  int hi;

  layer_share(n, m, size, &r.first, &hi);
  r.n = hi - r.first;
  return r;
}

/* One batch of n rows through l as `size` members calling the ops
 * directly: every range forward (last member first), every range
 * backward, then every member's share of the parameter gradients. */
static void run_split(layer_t *l, const float *x, const float *dy, float *y,
                      float *dx, int n, int size) {
  size_t in = (size_t)l->in_dim, out = (size_t)l->out_dim;

  if (l->ops->prepare)
    l->ops->prepare(l, n, 1);
  for (int m = size - 1; m >= 0; m--) {
    layer_rows_t r = rows_of(n, m, size);
    l->ops->forward(l, &r, x + r.first * in, y + r.first * out);
  }
  for (int m = 0; m < size; m++) {
    layer_rows_t r = rows_of(n, m, size);
    l->ops->backward(l, &r, x + r.first * in, y + r.first * out,
                     dy + r.first * out, dx + r.first * in);
  }
  for (int m = size - 1; l->ops->grads && m >= 0; m--)
    l->ops->grads(l, x, dy, n, m, size);
}

/* Runs x and dy through l on one member, then split across 2 and 3
 * members, and compares y, dx and the parameter gradients. mask, when
 * not NULL, is set as the dropout mask before every batch. */
static void split_compare(layer_t *l, int n, const uint8_t *mask,
                          uint64_t seed) {
  size_t nx = (size_t)n * l->in_dim, ny = (size_t)n * l->out_dim, count;
  float *x = xalloc(nx), *y = xalloc(ny), *dy = xalloc(ny), *dx = xalloc(nx);
  float *y1, *dx1, *g1, *g;
  rng_t rng;

  rng_init(&rng, seed, 3);
  fill_normal(&rng, x, nx, 1.0f);
  fill_normal(&rng, dy, ny, 1.0f);
  if (mask)
    layer_dropout_mask_set(l, mask, n);
  layer_forward(l, x, y, n, 1);
  layer_backward(l, x, y, dy, dx, n);
  y1 = dup(y, ny), dx1 = dup(dx, nx), g1 = grads_copy(l, &count);
  for (int size = 2; size <= 3; size++) {
    zero_grads(l);
    memset(y, 0, sizeof(float) * ny);
    memset(dx, 0, sizeof(float) * nx);
    if (mask)
      layer_dropout_mask_set(l, mask, n);
    run_split(l, x, dy, y, dx, n, size);
    g = grads_copy(l, &count);
    check_all(y, y1, ny, 1e-5, "split y");
    check_all(dx, dx1, nx, 1e-5, "split dx");
    check_all(g, g1, count, 1e-5, "split grads");
    free(g);
  }
  free(x), free(y), free(dy), free(dx), free(y1), free(dx1), free(g1);
}

static void test_conv_split(void **state) {
  static const conv_case_t cases[] = {{7, 9, 8, 3, 5, 3, 2, 1},
                                      {2, 6, 6, 1, 4, 3, 1, 2},
                                      {41, 5, 5, 2, 3, 3, 1, 1},
                                      {6, 12, 12, 32, 16, 5, 1, 0}};

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    layer_t *l =
        build(conv_desc(&cases[i]), conv_in(&cases[i]), cases[i].n, 3, 300 + i);
    random_bias(l, 320 + i);
    split_compare(l, cases[i].n, NULL, 310 + i);
    layer_free(l);
  }
}

static void test_pool_split(void **state) {
  static const pool_case_t cases[] = {
      {7, 9, 9, 2, 3, 2}, {2, 4, 6, 3, 2, 2}, {13, 8, 8, 4, 2, 2}};

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    layer_t *l =
        build(pool_desc(&cases[i]), pool_in(&cases[i]), cases[i].n, 3, 400 + i);
    split_compare(l, cases[i].n, NULL, 410 + i);
    layer_free(l);
  }
}

static void test_dropout_split(void **state) {
  enum { N = 7, D = 45 };
  layer_desc_t d = {.kind = LAYER_DROPOUT, .rate = 0.4f};
  layer_t *l = build(d, (layer_shape_t){5, 3, 3}, N, 3, 5);
  uint8_t mask[N * D];
  rng_t rng;

  (void)state;
  rng_init(&rng, 5, 1);
  for (int i = 0; i < N * D; i++)
    mask[i] = (uint8_t)rng_below(&rng, 2);
  split_compare(l, N, mask, 500);
  layer_free(l);
}

/* Finite-difference checks through the objective sum(r * y). */

typedef struct {
  layer_t *layer;
  float *x, *y;
  const float *r;
  const uint8_t *mask; /* dropout: the fixed mask, or NULL */
  int n;
} layer_obj_t;

static double layer_objective(void *ctx) {
  layer_obj_t *o = ctx;
  size_t total = (size_t)o->n * o->layer->out_dim;
  double s = 0.0;

  if (o->mask)
    layer_dropout_mask_set(o->layer, o->mask, o->n);
  layer_forward(o->layer, o->x, o->y, o->n, 1);
  for (size_t i = 0; i < total; i++)
    s += (double)o->r[i] * o->y[i];
  return s;
}

/* Central difference of the objective at *v, dividing by the step the
 * float actually took. These layers are linear in every value checked
 * (max-pool piecewise, away from ties), so a large step is exact and
 * keeps rounding noise low. */
static double fd_at(float *v, layer_obj_t *o) {
  return gradcheck_fd(v, layer_objective, o, 1e-2);
}

static void grad_check_all(float *v, const float *analytic, size_t n,
                           layer_obj_t *o, const char *what) {
  for (size_t i = 0; i < n; i++)
    check_close(analytic[i], fd_at(&v[i], o), 1e-3, 1e-3, what, i);
}

/* Forms the analytic gradients of o's objective: dx, and the layer's
 * parameter gradients from zero. */
static void analytic(layer_obj_t *o, float *dx) {
  zero_grads(o->layer);
  layer_objective(o);
  layer_backward(o->layer, o->x, o->y, o->r, dx, o->n);
}

/* Allocates o's buffers for n rows of l, with random x and r. */
static void obj_init(layer_obj_t *o, layer_t *l, int n, uint64_t seed) {
  rng_t rng;
  float *r;

  *o = (layer_obj_t){l,
                     xalloc((size_t)n * l->in_dim),
                     xalloc((size_t)n * l->out_dim),
                     NULL,
                     NULL,
                     n};
  r = xalloc((size_t)n * l->out_dim);
  rng_init(&rng, seed, 4);
  fill_normal(&rng, o->x, (size_t)n * l->in_dim, 1.0f);
  fill_normal(&rng, r, (size_t)n * l->out_dim, 1.0f);
  o->r = r;
}

static void obj_deinit(layer_obj_t *o) {
  free(o->x);
  free(o->y);
  free((float *)o->r);
}

static void conv_grad_check(const conv_case_t *t, uint64_t seed) {
  layer_t *l = build(conv_desc(t), conv_in(t), t->n, 1, seed);
  layer_obj_t o;
  float *dx;

  obj_init(&o, l, t->n, seed);
  dx = xalloc((size_t)t->n * l->in_dim);
  random_bias(l, seed);
  analytic(&o, dx);
  grad_check_all(o.x, dx, (size_t)t->n * l->in_dim, &o, "conv d/dx");
  grad_check_all(l->params[0].value, l->params[0].grad, l->params[0].n, &o,
                 "conv d/dw");
  grad_check_all(l->params[1].value, l->params[1].grad, l->params[1].n, &o,
                 "conv d/db");
  obj_deinit(&o);
  free(dx);
  layer_free(l);
}

static void test_conv_gradient(void **state) {
  static const conv_case_t cases[] = {{2, 5, 6, 3, 4, 3, 2, 1},
                                      {1, 6, 5, 1, 3, 3, 1, 2},
                                      {3, 4, 4, 2, 2, 2, 1, 0}};

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    conv_grad_check(&cases[i], 600 + i);
}

/* Max-pool with inputs at least 0.1 apart, so no step of the check
 * changes a window's winner. */
static void pool_grad_check(const pool_case_t *t, uint64_t seed) {
  layer_t *l = build(pool_desc(t), pool_in(t), t->n, 1, seed);
  size_t nx = (size_t)t->n * l->in_dim;
  int32_t *perm = malloc(sizeof(int32_t) * (size_t)l->in_dim);
  layer_obj_t o;
  float *dx = xalloc(nx);
  rng_t rng;

  assert_non_null(perm);
  obj_init(&o, l, t->n, seed);
  rng_init(&rng, seed, 5);
  for (int i = 0; i < t->n; i++) {
    for (int j = 0; j < l->in_dim; j++)
      perm[j] = j;
    rng_shuffle(&rng, perm, l->in_dim);
    for (int j = 0; j < l->in_dim; j++)
      o.x[(size_t)i * l->in_dim + j] = 0.1f * (float)perm[j] - 3.0f;
  }
  analytic(&o, dx);
  grad_check_all(o.x, dx, nx, &o, "maxpool d/dx");
  obj_deinit(&o);
  free(dx);
  free(perm);
  layer_free(l);
}

static void test_pool_gradient(void **state) {
  static const pool_case_t cases[] = {
      {2, 5, 5, 2, 2, 2}, {1, 7, 6, 3, 3, 2}, {3, 4, 4, 1, 2, 1}};

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    pool_grad_check(&cases[i], 700 + i);
}

static void test_dropout_gradient(void **state) {
  enum { N = 3, D = 20 };
  layer_desc_t d = {.kind = LAYER_DROPOUT, .rate = 0.3f};
  layer_t *l = build(d, (layer_shape_t){D, 1, 1}, N, 1, 8);
  uint8_t mask[N * D];
  layer_obj_t o;
  float dx[N * D];
  rng_t rng;

  (void)state;
  obj_init(&o, l, N, 8);
  rng_init(&rng, 8, 1);
  for (int i = 0; i < N * D; i++)
    mask[i] = (uint8_t)(rng_below(&rng, 3) != 0);
  o.mask = mask;
  analytic(&o, dx);
  for (int i = 0; i < N * D; i++)
    check_close(dx[i], mask[i] ? o.r[i] / 0.7 : 0.0, 1e-6, 0.0, "dx", i);
  grad_check_all(o.x, dx, N * D, &o, "dropout d/dx");
  obj_deinit(&o);
  layer_free(l);
}

/* Dropout's masks. */

/* A dropout layer of rate p over dim values, and one training batch of n
 * rows of ones through it: y holds 0 or 1 / (1 - p). */
static layer_t *dropout_run(float p, int dim, int n, uint64_t seed, float *y) {
  layer_desc_t d = {.kind = LAYER_DROPOUT, .rate = p};
  layer_t *l = build(d, (layer_shape_t){dim, 1, 1}, n, 1, seed);
  float *x = xalloc((size_t)n * dim);

  for (size_t i = 0; i < (size_t)n * dim; i++)
    x[i] = 1.0f;
  layer_forward(l, x, y, n, 1);
  free(x);
  return l;
}

static void test_dropout_statistics(void **state) {
  static const float rates[] = {0.0f, 0.1f, 0.5f, 0.8f};
  enum { N = 64, D = 1000 };
  float *y = xalloc(N * D);

  (void)state;
  for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
    float p = rates[k], scale = 1.0f / (1.0f - p);
    layer_t *l = dropout_run(p, D, N, 40 + k, y);
    size_t kept = 0;
    for (size_t i = 0; i < N * D; i++) {
      assert_true(y[i] == 0.0f || y[i] == scale);
      kept += y[i] != 0.0f;
    }
    /* 64000 draws: the kept fraction's deviation is below 0.002. */
    check_close((double)kept / (N * D), 1.0 - p, 0.0, 0.01, "kept", k);
    layer_free(l);
  }
  free(y);
}

static void test_dropout_inference_identity(void **state) {
  enum { N = 5, D = 33 };
  layer_desc_t d = {.kind = LAYER_DROPOUT, .rate = 0.5f};
  layer_t *l = build(d, (layer_shape_t){3, 1, 11}, N, 1, 2);
  layer_rows_t r = {0, N, 0, 0};
  float x[N * D], y[N * D], dy[N * D], dx[N * D];
  rng_t rng;

  (void)state;
  rng_init(&rng, 2, 0);
  fill_normal(&rng, x, N * D, 1.0f);
  fill_normal(&rng, dy, N * D, 1.0f);
  layer_forward(l, x, y, N, 0);
  assert_memory_equal(x, y, sizeof x);
  l->ops->backward(l, &r, x, y, dy, dx);
  assert_memory_equal(dy, dx, sizeof dy);
  layer_free(l);
}

/* The same seed draws the same masks batch after batch, another seed
 * others, and the next batch others again; saving the generator and
 * restoring it repeats a batch. */
static void test_dropout_seeded(void **state) {
  enum { N = 4, D = 300 };
  float a[N * D], b[N * D], c[N * D], first[N * D], x[N * D];
  layer_t *la = dropout_run(0.5f, D, N, 77, a);
  layer_t *lb = dropout_run(0.5f, D, N, 77, b);
  layer_t *lc = dropout_run(0.5f, D, N, 78, c);
  layer_t *relu = layer_relu_new(3);
  rng_t saved;

  (void)state;
  assert_memory_equal(a, b, sizeof a);
  assert_memory_not_equal(a, c, sizeof a);
  memcpy(first, a, sizeof a);
  for (int i = 0; i < N * D; i++)
    x[i] = 1.0f;
  assert_non_null(layer_dropout_rng(la));
  saved = *layer_dropout_rng(la);
  layer_forward(la, x, a, N, 1);
  layer_forward(lb, x, b, N, 1);
  assert_memory_equal(a, b, sizeof a);
  assert_memory_not_equal(a, first, sizeof a);
  *layer_dropout_rng(la) = saved;
  layer_forward(la, x, c, N, 1);
  assert_memory_equal(a, c, sizeof a);
  assert_non_null(relu);
  assert_null(layer_dropout_rng(relu));
  layer_free(la);
  layer_free(lb);
  layer_free(lc);
  layer_free(relu);
}

/* A mask set for a batch is used once; the batch after draws again. */
static void test_dropout_mask_once(void **state) {
  enum { N = 2, D = 200 };
  layer_desc_t d = {.kind = LAYER_DROPOUT, .rate = 0.25f};
  layer_t *l = build(d, (layer_shape_t){D, 1, 1}, N, 1, 3);
  uint8_t mask[N * D];
  float x[N * D], y[N * D];
  int differs = 0;

  (void)state;
  for (int i = 0; i < N * D; i++) {
    mask[i] = (uint8_t)(i % 3 ? 1 : 0);
    x[i] = 2.0f;
  }
  layer_dropout_mask_set(l, mask, N);
  layer_forward(l, x, y, N, 1);
  for (int i = 0; i < N * D; i++)
    assert_true(y[i] == (mask[i] ? 2.0f / 0.75f : 0.0f));
  layer_forward(l, x, y, N, 1);
  for (int i = 0; i < N * D; i++)
    differs += (y[i] != 0.0f) != (mask[i] != 0);
  assert_true(differs > 0);
  layer_free(l);
}

/* Refusals: each names the layer and, for a shape, the input. */

static void expect_refused(layer_desc_t d, layer_shape_t in, const char *kind,
                           const char *shape) {
  layer_env_t env = {4, 1, NULL, 1};
  layer_t *l = (layer_t *)&env;
  char err[256] = "";

  assert_int_equal(layer_new(&d, in, &env, &l, err, sizeof err), -EINVAL);
  assert_null(l);
  if (!strstr(err, kind) || (shape && !strstr(err, shape)))
    fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err, kind,
             shape ? shape : "");
}

static void test_refusals(void **state) {
  layer_shape_t small = {1, 3, 3}, wide = {1, 2, 5};

  (void)state;
  expect_refused(
      (layer_desc_t){.kind = LAYER_CONV2D, .filters = 4, .kernel = 5}, small,
      "conv2d", "3x3x1");
  expect_refused(
      (layer_desc_t){.kind = LAYER_CONV2D, .filters = 4, .kernel = 5, .pad = 1},
      wide, "conv2d", "2x5x1");
  expect_refused((layer_desc_t){.kind = LAYER_CONV2D, .kernel = 3}, small,
                 "conv2d", NULL);
  expect_refused(
      (layer_desc_t){.kind = LAYER_CONV2D, .filters = 2, .kernel = 0}, small,
      "conv2d", NULL);
  expect_refused(
      (layer_desc_t){
          .kind = LAYER_CONV2D, .filters = 2, .kernel = 3, .stride = -1},
      small, "conv2d", NULL);
  expect_refused(
      (layer_desc_t){.kind = LAYER_CONV2D, .filters = 2, .kernel = 3, .pad = 3},
      small, "conv2d", NULL);
  expect_refused(
      (layer_desc_t){
          .kind = LAYER_CONV2D, .filters = 2, .kernel = 3, .pad = -1},
      small, "conv2d", NULL);
  expect_refused((layer_desc_t){.kind = LAYER_MAXPOOL, .kernel = 3}, wide,
                 "maxpool", "2x5x1");
  expect_refused((layer_desc_t){.kind = LAYER_MAXPOOL, .kernel = 0}, small,
                 "maxpool", NULL);
  expect_refused(
      (layer_desc_t){.kind = LAYER_MAXPOOL, .kernel = 2, .stride = -2}, small,
      "maxpool", NULL);
  expect_refused((layer_desc_t){.kind = LAYER_DROPOUT, .rate = 1.0f}, small,
                 "dropout", NULL);
  expect_refused((layer_desc_t){.kind = LAYER_DROPOUT, .rate = -0.1f}, small,
                 "dropout", NULL);
  expect_refused((layer_desc_t){.kind = LAYER_DROPOUT, .rate = NAN}, small,
                 "dropout", NULL);
}

/* A kernel exactly as large as the padded input fits: one output. */
static void test_conv_exact_fit(void **state) {
  layer_desc_t d = {.kind = LAYER_CONV2D, .filters = 3, .kernel = 5, .pad = 1};
  layer_t *l = build(d, (layer_shape_t){2, 3, 3}, 1, 1, 1);

  (void)state;
  assert_int_equal(l->out.h, 1);
  assert_int_equal(l->out.w, 1);
  assert_int_equal(l->out_dim, 3);
  layer_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_matches_reference),
      cmocka_unit_test(test_conv_first_layer_overwrites),
      cmocka_unit_test(test_stride_zero_defaults),
      cmocka_unit_test(test_conv_exact_fit),
      cmocka_unit_test(test_pool_matches_reference),
      cmocka_unit_test(test_pool_ties),
      cmocka_unit_test(test_conv_split),
      cmocka_unit_test(test_pool_split),
      cmocka_unit_test(test_dropout_split),
      cmocka_unit_test(test_conv_gradient),
      cmocka_unit_test(test_pool_gradient),
      cmocka_unit_test(test_dropout_gradient),
      cmocka_unit_test(test_dropout_statistics),
      cmocka_unit_test(test_dropout_inference_identity),
      cmocka_unit_test(test_dropout_seeded),
      cmocka_unit_test(test_dropout_mask_once),
      cmocka_unit_test(test_refusals),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
