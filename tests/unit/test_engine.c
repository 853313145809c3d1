/* SPDX-License-Identifier: MIT */
/* Unit tests of the numeric engine: dense and ReLU layers against their
 * reference kernels and finite differences, the losses, the optimizer,
 * self-paced selection, label noise, the generator, and a tiny pipeline
 * run end to end on synthetic data. Dataset files are tested elsewhere. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../engine/checkpoint.h"
#include "../../engine/layers.h"
#include "../../engine/loss.h"
#include "../../engine/model.h"
#include "../../engine/noise.h"
#include "../../engine/optim.h"
#include "../../engine/pipeline.h"
#include "../../engine/rng.h"
#include "../../engine/spl.h"
#include "../../engine/team.h"
#include "numcheck.h"

/* Helpers shared by the tests. */

typedef gradcheck_objective_fn objective_fn;

static double fd_at(float *v, objective_fn f, void *ctx, double eps) {
  return gradcheck_fd(v, f, ctx, eps);
}

/* Compares analytic (n) with central differences over every entry of v. */
static void grad_check_all(float *v, const float *analytic, size_t n,
                           objective_fn f, void *ctx, double rtol, double atol,
                           const char *what) {
  for (size_t i = 0; i < n; i++)
    check_close(analytic[i], fd_at(&v[i], f, ctx, 1e-3), rtol, atol, what, i);
}

/* Dense forward and backward against the reference kernels. */

static void dense_compare(int n, int in, int out, uint64_t seed) {
  rng_t rng;
  layer_t *l;
  float *x = xalloc((size_t)n * in), *y = xalloc((size_t)n * out);
  float *yr = xalloc((size_t)n * out), *dy = xalloc((size_t)n * out);
  float *dx = xalloc((size_t)n * in), *dxr = xalloc((size_t)n * in);
  float *dwr = xalloc((size_t)in * out), *dbr = xalloc((size_t)out);

  rng_init(&rng, seed, 0);
  l = layer_dense_new(in, out, &rng);
  assert_non_null(l);
  assert_int_equal(l->in_dim, in);
  assert_int_equal(l->out_dim, out);
  fill_normal(&rng, l->params[1].value, (size_t)out, 0.5f);
  fill_normal(&rng, x, (size_t)n * in, 1.0f);
  fill_normal(&rng, dy, (size_t)n * out, 1.0f);

  layer_forward(l, x, y, n, 1);
  layer_dense_forward_ref(x, l->params[0].value, l->params[1].value, yr, n, in,
                          out);
  for (size_t i = 0; i < (size_t)n * out; i++)
    check_close(y[i], yr[i], 1e-4, 1e-4, "dense y", i);

  /* Gradients and dx are overwritten, so start them from garbage; the
   * reference accumulates, so start it from zero. */
  fill_normal(&rng, l->params[0].grad, (size_t)in * out, 1.0f);
  fill_normal(&rng, l->params[1].grad, (size_t)out, 1.0f);
  memset(dwr, 0, sizeof(float) * (size_t)in * out);
  memset(dbr, 0, sizeof(float) * (size_t)out);
  for (size_t i = 0; i < (size_t)n * in; i++)
    dx[i] = 7.0f;
  layer_backward(l, x, y, dy, dx, n);
  layer_dense_backward_ref(x, l->params[0].value, dy, dwr, dbr, dxr, n, in,
                           out);
  for (size_t i = 0; i < (size_t)n * in; i++)
    check_close(dx[i], dxr[i], 1e-4, 1e-4, "dense dx", i);
  for (size_t i = 0; i < (size_t)in * out; i++)
    check_close(l->params[0].grad[i], dwr[i], 1e-4, 1e-4, "dense dw", i);
  for (size_t i = 0; i < (size_t)out; i++)
    check_close(l->params[1].grad[i], dbr[i], 1e-4, 1e-4, "dense db", i);

  layer_free(l);
  free(x);
  free(y);
  free(yr);
  free(dy);
  free(dx);
  free(dxr);
  free(dwr);
  free(dbr);
}

static void test_dense_matches_reference(void **state) {
  static const int shapes[][3] = {{1, 1, 1},     {1, 7, 3},    {2, 1, 5},
                                  {5, 13, 9},    {17, 31, 4},  {3, 64, 1},
                                  {64, 100, 33}, {129, 65, 10}};

  (void)state;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    dense_compare(shapes[i][0], shapes[i][1], shapes[i][2], 100 + i);
}

/* Without dx the backward pass still forms the parameter gradients, and
 * a second call replaces them with the same values. */
static void test_dense_backward_overwrites(void **state) {
  rng_t rng;
  layer_t *l;
  float x[2 * 3], y[2 * 4], dy[2 * 4], once[4 * 3];

  (void)state;
  rng_init(&rng, 5, 0);
  l = layer_dense_new(3, 4, &rng);
  assert_non_null(l);
  fill_normal(&rng, x, 6, 1.0f);
  fill_normal(&rng, dy, 8, 1.0f);
  layer_forward(l, x, y, 2, 1);
  layer_backward(l, x, y, dy, NULL, 2);
  memcpy(once, l->params[0].grad, sizeof once);
  layer_backward(l, x, y, dy, NULL, 2);
  for (size_t i = 0; i < 12; i++)
    check_close(l->params[0].grad[i], once[i], 1e-6, 1e-7, "dw", i);
  layer_free(l);
  layer_free(NULL);
}

/* Finite-difference checks of the layers through sum(r * y). */

typedef struct {
  layer_t *layer;
  float *x, *y;
  const float *r;
  int n;
} layer_obj_t;

static double layer_objective(void *ctx) {
  layer_obj_t *o = ctx;
  size_t total = (size_t)o->n * o->layer->out_dim;
  double s = 0.0;

  layer_forward(o->layer, o->x, o->y, o->n, 1);
  for (size_t i = 0; i < total; i++)
    s += (double)o->r[i] * o->y[i];
  return s;
}

static void dense_grad_check(int n, int in, int out, uint64_t seed) {
  rng_t rng;
  layer_obj_t o = {NULL, xalloc((size_t)n * in), xalloc((size_t)n * out), NULL,
                   n};
  float *r = xalloc((size_t)n * out), *dx = xalloc((size_t)n * in);
  layer_t *l;

  rng_init(&rng, seed, 1);
  l = o.layer = layer_dense_new(in, out, &rng);
  assert_non_null(l);
  fill_normal(&rng, l->params[1].value, (size_t)out, 0.5f);
  fill_normal(&rng, o.x, (size_t)n * in, 1.0f);
  fill_normal(&rng, r, (size_t)n * out, 1.0f);
  o.r = r;

  layer_forward(l, o.x, o.y, n, 1);
  layer_backward(l, o.x, o.y, r, dx, n);
  grad_check_all(o.x, dx, (size_t)n * in, layer_objective, &o, 1e-3, 1e-4,
                 "dense d/dx");
  grad_check_all(l->params[0].value, l->params[0].grad, (size_t)in * out,
                 layer_objective, &o, 1e-3, 1e-4, "dense d/dw");
  grad_check_all(l->params[1].value, l->params[1].grad, (size_t)out,
                 layer_objective, &o, 1e-3, 1e-4, "dense d/db");

  layer_free(l);
  free(o.x);
  free(o.y);
  free(r);
  free(dx);
}

static void test_dense_gradient(void **state) {
  (void)state;
  dense_grad_check(3, 5, 4, 11);
  dense_grad_check(1, 7, 2, 12);
  dense_grad_check(6, 1, 3, 13);
}

static void test_relu_gradient(void **state) {
  enum { N = 4, D = 9 };
  rng_t rng;
  layer_obj_t o = {NULL, xalloc(N * D), xalloc(N * D), NULL, N};
  float r[N * D], dx[N * D];

  (void)state;
  rng_init(&rng, 21, 0);
  o.layer = layer_relu_new(D);
  assert_non_null(o.layer);
  assert_int_equal(o.layer->n_params, 0);
  /* Inputs stay at least 0.1 from the kink so eps never crosses it. */
  for (int i = 0; i < N * D; i++) {
    float mag = 0.1f + 2.0f * rng_uniform(&rng);
    o.x[i] = rng_below(&rng, 2) ? mag : -mag;
  }
  fill_normal(&rng, r, N * D, 1.0f);
  o.r = r;

  layer_forward(o.layer, o.x, o.y, N, 1);
  for (int i = 0; i < N * D; i++)
    assert_true(o.y[i] == (o.x[i] > 0.0f ? o.x[i] : 0.0f));
  layer_backward(o.layer, o.x, o.y, r, dx, N);
  grad_check_all(o.x, dx, N * D, layer_objective, &o, 1e-4, 1e-6, "relu d/dx");

  layer_free(o.layer);
  free(o.x);
  free(o.y);
}

/* Softmax cross-entropy with per-sample weights. */

typedef struct {
  float *logits;
  const uint8_t *labels;
  const float *weight;
  int n, C;
} ce_obj_t;

static double ce_objective(void *ctx) {
  ce_obj_t *o = ctx;
  return loss_ce_forward(o->logits, o->labels, o->weight, o->n, o->C, NULL,
                         NULL);
}

/* -log softmax(z)[y] computed directly, in double. */
static double ce_direct(const float *z, int C, int y) {
  double max = z[0], sum = 0.0;

  for (int j = 1; j < C; j++)
    max = fmax(max, z[j]);
  for (int j = 0; j < C; j++)
    sum += exp(z[j] - max);
  return max + log(sum) - z[y];
}

static void test_ce_values_and_gradient(void **state) {
  enum { N = 6, C = 5 };
  float z[N * C], d[N * C], loss[N], prob[N];
  float w[N] = {1.0f, 0.0f, 2.0f, 0.5f, 1.0f, 0.25f};
  uint8_t y[N] = {0, 4, 2, 2, 1, 3};
  ce_obj_t o = {z, y, w, N, C};
  double want = 0.0, got;
  rng_t rng;

  (void)state;
  rng_init(&rng, 31, 0);
  fill_normal(&rng, z, N * C, 2.0f);
  got = loss_ce_forward(z, y, w, N, C, loss, prob);
  for (int i = 0; i < N; i++) {
    double l = ce_direct(z + i * C, C, y[i]);
    check_close(loss[i], l, 1e-6, 1e-7, "ce loss", (size_t)i);
    check_close(prob[i], exp(-l), 1e-6, 1e-7, "ce prob", (size_t)i);
    want += w[i] * l;
  }
  check_close(got, want / N, 1e-6, 1e-9, "ce mean", 0);
  want = 0.0;
  for (int i = 0; i < N; i++)
    want += loss[i];
  check_close(loss_ce_forward(z, y, NULL, N, C, NULL, NULL), want / N, 1e-6,
              1e-9, "ce unweighted mean", 0);

  loss_ce_backward(z, y, w, N, C, d);
  for (int j = 0; j < C; j++)
    assert_true(d[1 * C + j] == 0.0f); /* the sample of weight 0 */
  grad_check_all(z, d, N * C, ce_objective, &o, 1e-4, 1e-7, "ce d/dz");
}

/* Large logits neither overflow nor turn into NaN. */
static void test_ce_large_logits(void **state) {
  float z[3] = {1000.0f, 0.0f, -1000.0f}, loss[3];
  uint8_t y[3] = {0, 1, 2};
  float zz[9], d[9];

  (void)state;
  for (int i = 0; i < 3; i++)
    memcpy(zz + 3 * i, z, sizeof z);
  loss_ce_forward(zz, y, NULL, 3, 3, loss, NULL);
  check_close(loss[0], 0.0, 0.0, 1e-6, "loss", 0);
  check_close(loss[1], 1000.0, 1e-6, 0.0, "loss", 1);
  check_close(loss[2], 2000.0, 1e-6, 0.0, "loss", 2);
  loss_ce_backward(zz, y, NULL, 3, 3, d);
  for (int i = 0; i < 9; i++)
    assert_true(isfinite(d[i]));
}

/* The distillation loss. */

typedef struct {
  loss_kd_t kd;
  float *s;
  const float *q;
  const uint8_t *labels;
  const float *weight;
  int n, C;
} kd_obj_t;

static double kd_objective(void *ctx) {
  kd_obj_t *o = ctx;
  return loss_kd_forward(&o->kd, o->s, o->q, o->labels, o->weight, o->n, o->C,
                         NULL);
}

/* (1 - a) w CE + a T^2 KL(q || softmax(s / T)) for one row, in double. */
static double kd_direct(const kd_obj_t *o, int i) {
  const float *s = o->s + (size_t)i * o->C, *q = o->q + (size_t)i * o->C;
  double a = o->kd.alpha, T = o->kd.temperature, max = s[0] / T, sum = 0.0;
  double kl = 0.0, w = o->weight ? o->weight[i] : 1.0;

  for (int j = 1; j < o->C; j++)
    max = fmax(max, s[j] / T);
  for (int j = 0; j < o->C; j++)
    sum += exp(s[j] / T - max);
  for (int j = 0; j < o->C; j++)
    kl += q[j] * (log(q[j]) - (s[j] / T - max - log(sum)));
  return (1.0 - a) * w * ce_direct(s, o->C, o->labels[i]) + a * T * T * kl;
}

static void kd_check(float alpha, float T, uint64_t seed) {
  enum { N = 5, C = 4 };
  float s[N * C], t[N * C], q[N * C], d[N * C], loss[N];
  float w[N] = {1.0f, 0.0f, 1.0f, 0.5f, 2.0f};
  uint8_t y[N] = {3, 0, 1, 1, 2};
  kd_obj_t o = {{alpha, T}, s, q, y, w, N, C};
  double mean = 0.0;
  rng_t rng;

  rng_init(&rng, seed, 0);
  fill_normal(&rng, s, N * C, 2.0f);
  fill_normal(&rng, t, N * C, 2.0f);
  loss_softmax(t, q, N, C, T);

  mean = loss_kd_forward(&o.kd, s, q, y, w, N, C, loss);
  for (int i = 0; i < N; i++)
    check_close(loss[i], kd_direct(&o, i), 1e-5, 1e-7, "kd loss", (size_t)i);
  check_close(mean, (loss[0] + loss[1] + loss[2] + loss[3] + loss[4]) / N, 1e-6,
              1e-8, "kd mean", 0);

  loss_kd_backward(&o.kd, s, q, y, w, N, C, d);
  grad_check_all(s, d, N * C, kd_objective, &o, 1e-4, 1e-7, "kd d/ds");
}

static void test_kd_gradient(void **state) {
  static const float alphas[] = {0.0f, 0.3f, 0.7f, 1.0f};
  static const float temps[] = {1.0f, 2.0f, 4.0f};

  (void)state;
  for (int a = 0; a < 4; a++)
    for (int t = 0; t < 3; t++)
      kd_check(alphas[a], temps[t], (uint64_t)(40 + 3 * a + t));
}

/* The largest |v| of row i of an (n, C) array. */
static double row_max_abs(const float *v, int i, int C) {
  double m = 0.0;

  for (int j = 0; j < C; j++)
    m = fmax(m, fabs(v[(size_t)i * C + j]));
  return m;
}

/* With student logits equal to the teacher's and alpha = 1 the loss and
 * its gradient vanish; moving one student logit makes both non-zero. */
static void kd_zero_check(float T) {
  enum { N = 4, C = 6 };
  float s[N * C], q[N * C], d[N * C], loss[N];
  uint8_t y[N] = {0, 5, 2, 3};
  float w[N] = {1.0f, 0.0f, 1.0f, 1.0f};
  loss_kd_t kd = {1.0f, T};
  rng_t rng;

  rng_init(&rng, 50, (uint64_t)T);
  fill_normal(&rng, s, N * C, 3.0f);
  loss_softmax(s, q, N, C, T);

  assert_true(fabs(loss_kd_forward(&kd, s, q, y, w, N, C, loss)) < 1e-6);
  loss_kd_backward(&kd, s, q, y, w, N, C, d);
  for (int i = 0; i < N; i++) {
    assert_true(fabs(loss[i]) < 1e-6);
    assert_true(row_max_abs(d, i, C) < 1e-6);
  }

  s[2 * C + 4] += 0.5f;
  assert_true(loss_kd_forward(&kd, s, q, y, w, N, C, loss) > 1e-4);
  assert_true(loss[2] > 4e-4);
  loss_kd_backward(&kd, s, q, y, w, N, C, d);
  assert_true(row_max_abs(d, 2, C) > 1e-4);
  for (int i = 0; i < N; i++)
    if (i != 2) {
      assert_true(fabs(loss[i]) < 1e-6);
      assert_true(row_max_abs(d, i, C) < 1e-6);
    }
}

static void test_kd_zero_at_teacher(void **state) {
  (void)state;
  kd_zero_check(1.0f);
  kd_zero_check(2.0f);
  kd_zero_check(4.0f);
}

/* A whole model: cross-entropy through model_forward/model_backward. */

typedef struct {
  model_t *m;
  const float *x;
  const uint8_t *y;
  const float *w;
  int n;
} model_obj_t;

static double model_objective(void *ctx) {
  model_obj_t *o = ctx;
  const float *z = model_forward(o->m, NULL, o->x, o->n, 1);
  return loss_ce_forward(z, o->y, o->w, o->n, o->m->out_dim, NULL, NULL);
}

static void test_model_gradient(void **state) {
  enum { N = 5, IN = 6, C = 3 };
  float x[N * IN], d[N * C], w[N] = {1.0f, 0.5f, 0.0f, 1.0f, 2.0f};
  uint8_t y[N] = {0, 1, 2, 2, 1};
  model_obj_t o = {NULL, x, y, w, N};
  char err[128];
  rng_t rng, pick;

  (void)state;
  rng_init(&rng, 60, 0);
  rng_init(&pick, 61, 0);
  model_env_t env = {{IN, 1, 1}, C, 8, 1, &rng, 1};
  model_desc_t d_mlp;

  assert_int_equal(model_preset("mlp", &d_mlp), 0);
  assert_int_equal(model_new(&d_mlp, &env, &o.m, err, sizeof err), 0);
  assert_int_equal(o.m->in_dim, IN);
  assert_int_equal(o.m->out_dim, C);
  assert_int_equal(o.m->n_params, 6);
  fill_normal(&rng, x, N * IN, 1.0f);
  for (int p = 1; p < o.m->n_params; p += 2)
    fill_normal(&rng, o.m->params[p]->value, o.m->params[p]->n, 0.1f);

  loss_ce_backward(model_forward(o.m, NULL, x, N, 1), y, w, N, C, d);
  model_backward(o.m, NULL, d);

  /* Six entries of every weight and bias tensor, drawn at random. */
  for (int p = 0; p < o.m->n_params; p++) {
    optim_param_t *par = o.m->params[p];
    for (int k = 0; k < 6; k++) {
      size_t i = rng_below(&pick, (uint32_t)par->n);
      check_close(par->grad[i],
                  fd_at(&par->value[i], model_objective, &o, 1e-3), 1e-2, 1e-4,
                  "model param", (size_t)p * 1000000 + i);
    }
  }
  model_free(o.m);
  model_free(NULL);
}

/* model_step (gradients and updates fused per share) leaves exactly the
 * parameters model_backward followed by model_update leaves, for a dense
 * and a conv model on two threads. */
static void step_matches(const char *preset) {
  optim_config_t cfg = {.kind = OPTIM_SGD,
                        .lr = 0.05,
                        .momentum = 0.9,
                        .weight_decay = 5e-4,
                        .decay_bias = 1,
                        .batch_size = 16};
  model_t *m[2];
  team_t *team;
  rng_t rng;
  model_desc_t d;
  float x[16 * 784], dl[16 * 10];
  char err[128];

  assert_int_equal(team_new(2, &team), 0);
  assert_int_equal(model_preset(preset, &d), 0);
  for (int k = 0; k < 2; k++) {
    model_env_t env = {{1, 28, 28}, 10, 16, 2, &rng, 1};
    rng_init(&rng, 77, 0);
    assert_int_equal(model_new(&d, &env, &m[k], err, sizeof err), 0);
    assert_int_equal(model_optim_prepare(m[k], &cfg), 0);
  }
  rng_init(&rng, 78, 0);
  fill_normal(&rng, x, 16 * 784, 1.0f);
  for (int s = 1; s <= 3; s++) {
    fill_normal(&rng, dl, 16 * 10, 0.1f);
    model_forward(m[0], team, x, 16, 1);
    model_backward(m[0], team, dl);
    model_update(m[0], team, &cfg, 0.05, s);
    model_forward(m[1], team, x, 16, 1);
    model_step(m[1], team, dl, &cfg, 0.05, s);
  }
  for (int p = 0; p < m[0]->n_params; p++)
    assert_memory_equal(m[0]->params[p]->value, m[1]->params[p]->value,
                        m[0]->params[p]->n * sizeof(float));
  model_free(m[0]);
  model_free(m[1]);
  team_free(team);
}

static void test_model_step_is_backward_then_update(void **state) {
  (void)state;
  step_matches("mlp");
  step_matches("cnn");
}

static void test_model_unknown_preset(void **state) {
  static model_t sentinel;
  model_t *m = &sentinel;
  model_desc_t d = {"custom",
                    2,
                    {{.kind = LAYER_CONV2D, .filters = 4, .kernel = 40},
                     {.kind = LAYER_DENSE, .units = 2}}};
  char err[128] = "";
  rng_t rng;
  model_env_t env = {{1, 28, 28}, 2, 4, 1, &rng, 1};

  (void)state;
  rng_init(&rng, 1, 0);
  assert_int_equal(model_preset("resnet-9000", &d), -EINVAL);
  assert_true(model_preset_known("mlp"));
  assert_false(model_preset_known("resnet-9000"));

  /* A kernel larger than the image is refused naming the layer. */
  assert_int_equal(model_new(&d, &env, &m, err, sizeof err), -EINVAL);
  assert_null(m);
  assert_non_null(strstr(err, "layers[0]"));

  /* So is a last layer that does not give the class count. */
  d.layers[0] = (layer_desc_t){.kind = LAYER_DENSE, .units = 5};
  d.layers[1] = (layer_desc_t){.kind = LAYER_RELU};
  m = &sentinel;
  assert_int_equal(model_new(&d, &env, &m, err, sizeof err), -EINVAL);
  assert_null(m);
  assert_non_null(strstr(err, "classes"));
}

/* Self-paced selection. */

static void test_pace_fraction(void **state) {
  (void)state;
  check_close(spl_pace_fraction(0.5, 0.8, 0, 4), 0.5, 1e-12, 0, "pace", 0);
  check_close(spl_pace_fraction(0.5, 0.8, 1, 4), 0.6, 1e-12, 0, "pace", 1);
  check_close(spl_pace_fraction(0.5, 0.8, 2, 4), 0.7, 1e-12, 0, "pace", 2);
  check_close(spl_pace_fraction(0.5, 0.8, 3, 4), 0.8, 1e-12, 0, "pace", 3);
  check_close(spl_pace_fraction(0.2, 1.0, 1, 2), 1.0, 1e-12, 0, "pace", 4);
  check_close(spl_pace_fraction(0.5, 0.8, 0, 1), 0.5, 1e-12, 0, "pace", 5);
}

/* Twelve samples of three classes, scores set by hand. Class 0 is at
 * positions 1 4 6 10, class 1 at 0 3 5 7 9 11 (5 and 9 tie at 0.5),
 * class 2 at 2 8. */
static const uint8_t sel_labels[12] = {1, 0, 2, 1, 0, 1, 0, 1, 2, 1, 0, 1};
static const float sel_scores[12] = {0.9f, 0.3f,  0.8f, 0.2f, 0.1f, 0.5f,
                                     0.7f, 0.05f, 0.4f, 0.5f, 0.2f, 0.95f};

static void select_expect(double fraction, int classes, const uint8_t want[12],
                          int want_kept) {
  uint8_t easy[12];

  memset(easy, 0xaa, sizeof easy);
  assert_int_equal(
      spl_select_per_class(sel_scores, sel_labels, 12, classes, fraction, easy),
      want_kept);
  assert_memory_equal(easy, want, 12);
}

static void test_select_per_class(void **state) {
  /* Half: class 0 keeps 4 (0.1) and 10 (0.2); class 1 keeps 7, 3 and of
   * the tie 5, not 9; class 2 keeps 8 (0.4). */
  static const uint8_t half[12] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0};
  /* A fifth: 0.8 -> 1, 1.2 -> 1, and class 2's 0.4 rounds to 0 but the
   * class still keeps its lowest score. */
  static const uint8_t fifth[12] = {0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0};
  static const uint8_t all[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

  (void)state;
  select_expect(0.5, 3, half, 6);
  select_expect(0.5, 5, half, 6); /* classes without samples are skipped */
  select_expect(0.2, 3, fifth, 3);
  select_expect(0.0, 3, fifth, 3);
  select_expect(1.0, 3, all, 12);
}

/* Equal scores throughout: the lowest positions of each class win. */
static void test_select_ties(void **state) {
  uint8_t labels[10], easy[10];
  float score[10] = {0};
  static const uint8_t want[10] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0};

  (void)state;
  for (int i = 0; i < 10; i++)
    labels[i] = (uint8_t)(i % 2);
  /* Each class has five samples and keeps 0.4 * 5 = 2: class 0 (even
   * positions) keeps 0 and 2, class 1 (odd positions) keeps 1 and 3. */
  assert_int_equal(spl_select_per_class(score, labels, 10, 2, 0.4, easy), 4);
  assert_memory_equal(easy, want, 10);
}

/* Label noise. */

enum { NOISE_N = 1000, NOISE_C = 5 };

static void noise_run(double rate, uint64_t seed, uint8_t *labels,
                      uint8_t *corrupted, int *changed) {
  for (int i = 0; i < NOISE_N; i++)
    labels[i] = (uint8_t)(i % NOISE_C);
  *changed =
      noise_symmetric_apply(labels, NOISE_N, NOISE_C, rate, seed, corrupted);
}

static void noise_check(double rate) {
  uint8_t a[NOISE_N], ca[NOISE_N], b[NOISE_N], cb[NOISE_N];
  uint8_t c[NOISE_N], cc[NOISE_N];
  int k = (int)llround(rate * NOISE_N), ka, kb, kc, flips = 0;
  int pair[NOISE_C][NOISE_C] = {{0}}, to[NOISE_C] = {0};

  noise_run(rate, 7, a, ca, &ka);
  assert_int_equal(ka, k);
  for (int i = 0; i < NOISE_N; i++) {
    int orig = i % NOISE_C;
    assert_true(a[i] < NOISE_C);
    assert_int_equal(ca[i], a[i] != orig);
    flips += a[i] != orig;
    pair[orig][a[i]] += a[i] != orig;
    to[a[i]] += a[i] != orig;
  }
  assert_int_equal(flips, k);

  /* Same seed, same outcome; another seed, other positions. */
  noise_run(rate, 7, b, cb, &kb);
  assert_int_equal(kb, k);
  assert_memory_equal(a, b, NOISE_N);
  assert_memory_equal(ca, cb, NOISE_N);
  noise_run(rate, 8, c, cc, &kc);
  assert_int_equal(kc, k);
  if (k > 0)
    assert_memory_not_equal(ca, cc, NOISE_N);

  /* New labels spread over every class, and with enough corrupted samples
   * over every other class of each class. */
  for (int d = 0; d < NOISE_C && k >= 100; d++)
    assert_true(to[d] > 0);
  for (int o = 0; o < NOISE_C && k >= 400; o++)
    for (int d = 0; d < NOISE_C; d++)
      assert_true(o == d ? pair[o][d] == 0 : pair[o][d] > 0);
}

static void test_noise_symmetric(void **state) {
  (void)state;
  noise_check(0.0);
  noise_check(0.1);
  noise_check(0.4);
  noise_check(0.95);
}

/* With two classes every corrupted label is the other class. */
static void test_noise_two_classes(void **state) {
  uint8_t y[101], bad[101];

  (void)state;
  for (int i = 0; i < 101; i++)
    y[i] = (uint8_t)(i & 1);
  assert_int_equal(noise_symmetric_apply(y, 101, 2, 0.5, 3, bad), 51);
  for (int i = 0; i < 101; i++)
    assert_int_equal(y[i], bad[i] ? !(i & 1) : (i & 1));
}

/* The generator. */

static void test_rng_streams(void **state) {
  rng_t a, b, c, d;
  int same_stream = 0, same_seed = 0;

  (void)state;
  rng_init(&a, 42, 3);
  rng_init(&b, 42, 3);
  rng_init(&c, 42, 4);
  rng_init(&d, 43, 3);
  for (int i = 0; i < 200; i++) {
    uint64_t x = rng_next(&a);
    assert_true(x == rng_next(&b));
    same_stream += x == rng_next(&c);
    same_seed += x == rng_next(&d);
  }
  assert_int_equal(same_stream, 0);
  assert_int_equal(same_seed, 0);
}

static void test_rng_below_and_uniform(void **state) {
  static const uint32_t bounds[] = {1,  2,    3,           7,
                                    10, 1000, 2147483649u, UINT32_MAX};
  int seen[3] = {0};
  double sum = 0.0, sq = 0.0;
  rng_t r;

  (void)state;
  rng_init(&r, 9, 0);
  for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++)
    for (int i = 0; i < 2000; i++)
      assert_true(rng_below(&r, bounds[b]) < bounds[b]);
  for (int i = 0; i < 300; i++)
    seen[rng_below(&r, 3)]++;
  assert_true(seen[0] > 50 && seen[1] > 50 && seen[2] > 50);
  for (int i = 0; i < 10000; i++) {
    float u = rng_uniform(&r), z = rng_normal(&r);
    assert_true(u >= 0.0f && u < 1.0f);
    assert_true(isfinite(z));
    sum += z;
    sq += (double)z * z;
  }
  assert_true(fabs(sum / 10000) < 0.05);
  assert_true(fabs(sq / 10000 - 1.0) < 0.05);
}

static void test_rng_shuffle(void **state) {
  enum { N = 1000 };
  int32_t v[N];
  int seen[N] = {0}, moved = 0;
  rng_t r;

  (void)state;
  for (int i = 0; i < N; i++)
    v[i] = i;
  rng_init(&r, 11, 2);
  rng_shuffle(&r, v, N);
  for (int i = 0; i < N; i++) {
    assert_true(v[i] >= 0 && v[i] < N);
    seen[v[i]]++;
    moved += v[i] != i;
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(seen[i], 1);
  assert_true(moved > N / 2);
  rng_shuffle(&r, v, 0);
  rng_shuffle(&r, v, 1);
}

/* All six orders of three values come out, each about a sixth of the
 * time (each count is 1000 on average, with a deviation near 30). */
static void test_rng_shuffle_uniform(void **state) {
  int count[9] = {0};
  rng_t r;

  (void)state;
  rng_init(&r, 12, 0);
  for (int i = 0; i < 6000; i++) {
    int32_t v[3] = {0, 1, 2};
    rng_shuffle(&r, v, 3);
    count[3 * v[0] + v[1]]++;
  }
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++)
      assert_true(a == b ? count[3 * a + b] == 0
                         : count[3 * a + b] > 850 && count[3 * a + b] < 1150);
}

/* A tiny pipeline on three well-separated Gaussian classes. */

enum { PIPE_DIM = 10, PIPE_CLASSES = 3, PIPE_TRAIN = 600, PIPE_TEST = 300 };
enum { SPL_EPOCHS = 5, SPL_WARMUP = 2, TEACHER_EPOCHS = 2 };
enum { STUDENT_EPOCHS = 2, BASELINE_EPOCHS = 4, REC_MAX = 32 };

/* Class c is centred at 3 on every feature j with j % 3 == c and at 0
 * elsewhere, less 1 throughout to keep the mean near 0, with unit noise:
 * class centres lie at least 7 standard deviations apart. */
static void synthetic_init(dataset_t *ds, int n, uint64_t seed) {
  rng_t r;

  memset(ds, 0, sizeof *ds);
  ds->n = n;
  ds->dim = PIPE_DIM;
  ds->classes = PIPE_CLASSES;
  ds->channels = ds->height = 1;
  ds->width = PIPE_DIM;
  ds->norm = DATASET_NORM_SCALE;
  ds->features = xalloc((size_t)n * PIPE_DIM);
  ds->y = malloc((size_t)n);
  assert_non_null(ds->y);
  rng_init(&r, seed, 0);
  for (int i = 0; i < n; i++) {
    float *x = ds->features + (size_t)i * PIPE_DIM;
    ds->y[i] = (uint8_t)rng_below(&r, PIPE_CLASSES);
    for (int j = 0; j < PIPE_DIM; j++)
      x[j] =
          rng_normal(&r) + (j % PIPE_CLASSES == ds->y[i] ? 3.0f : 0.0f) - 1.0f;
  }
}

/* Short stages with batches of 32. A learning rate of 0.02 on 540
 * training samples lets plain cross-entropy learn the classes before it
 * memorises the 30 % wrong labels, so the baseline's test accuracy says
 * whether the engine learns at all. */
static void tiny_spec(pipeline_spec_t *s) {
  pipeline_stage_spec_t *st[4] = {&s->spl, &s->teachers[0].stage, &s->student,
                                  &s->baseline};
  static const int epochs[4] = {SPL_EPOCHS, TEACHER_EPOCHS, STUDENT_EPOCHS,
                                BASELINE_EPOCHS};

  pipeline_spec_defaults(s);
  snprintf(s->name, sizeof s->name, "tiny");
  snprintf(s->dataset, sizeof s->dataset, "synthetic");
  s->seed = 3;
  s->threads = 2;
  s->noise_kind = PIPELINE_NOISE_SYMMETRIC;
  s->noise_rate = 0.3;
  s->noise_seed = 7;
  s->spl_warmup_epochs = SPL_WARMUP;
  s->parallel_stages = 0;
  for (int i = 0; i < 4; i++) {
    st[i]->epochs = epochs[i];
    st[i]->optim.batch_size = 32;
    st[i]->optim.lr = 0.02;
  }
  s->spl.optim.schedule = OPTIM_SCHEDULE_CONSTANT;
}

typedef struct {
  pipeline_epoch_t m;
  float *loss, *prob, *weight;
  uint8_t *easy;
  double per_class[PIPE_CLASSES]; /* the noise estimate's, or NaN */
} epoch_rec_t;

/* What the hooks saw during one run. */
typedef struct {
  int n_train, n_val, n_corrupted, n_relabelled;
  int sorted;
  uint8_t *labels; /* observed labels of the training samples */
  int stages[8], n_stages;
  epoch_rec_t ep[REC_MAX];
  int n_epochs;
  atomic_int cancel;
  int cancel_after; /* raise the cancel flag after this many epochs */
  int fail_after;   /* return -EIO from this epoch on */
  pipeline_spec_t spec;
  int keep_states; /* 1: store each epoch's state, offer it back */
  uint8_t *state[PIPELINE_STAGE_COUNT];
  size_t state_size[PIPELINE_STAGE_COUNT];
  int n_dyn; /* stages whose dynamics were reported */
  int dyn_stage[8];
  float *dyn_conf[8], *dyn_corr[8];
  int32_t *dyn_forget[8];
} recorder_t;

static recorder_t *recorder_new(void) {
  recorder_t *r = calloc(1, sizeof *r);

  assert_non_null(r);
  tiny_spec(&r->spec);
  return r;
}

static int rec_on_data(void *ctx, const pipeline_data_t *d, char *err,
                       size_t errlen) {
  recorder_t *r = ctx;

  (void)err, (void)errlen;
  r->n_train = d->n_train;
  r->n_val = d->n_val;
  r->n_corrupted = d->n_corrupted;
  free(r->labels); /* a recorder may see a second run */
  r->labels = malloc((size_t)d->n_train);
  if (!r->labels)
    return -ENOMEM;
  r->sorted = 1;
  for (int i = 0; i < d->n_train; i++) {
    r->labels[i] = d->observed[d->train_index[i]];
    if (i > 0 && d->train_index[i] <= d->train_index[i - 1])
      r->sorted = 0;
  }
  for (int i = 0; i < d->n_file; i++)
    r->n_relabelled += d->observed[i] != d->clean[i];
  return 0;
}

static int rec_on_stage(void *ctx, int stage, char *err, size_t errlen) {
  recorder_t *r = ctx;

  (void)err, (void)errlen;
  if (r->n_stages < 8)
    r->stages[r->n_stages] = stage;
  r->n_stages++;
  return 0;
}

static void *dup_bytes(const void *p, size_t n) {
  void *q = malloc(n);
  if (q)
    memcpy(q, p, n);
  return q;
}

static int rec_on_epoch(void *ctx, const pipeline_epoch_t *m,
                        const pipeline_records_t *rec, char *err,
                        size_t errlen) {
  recorder_t *r = ctx;
  epoch_rec_t *e = &r->ep[r->n_epochs];
  size_t n = (size_t)rec->n;

  if (r->fail_after && r->n_epochs >= r->fail_after) {
    snprintf(err, errlen, "hook failed on purpose");
    return -EIO;
  }
  if (r->n_epochs >= REC_MAX || rec->n != r->n_train)
    return -ERANGE;
  if (rec->state) {
    const pipeline_state_t *st = rec->state;
    assert_int_equal(st->stage, m->stage);
    assert_int_equal(st->epoch, m->epoch);
    assert_int_equal(st->final, m->epoch == m->epochs);
    free(r->state[st->stage]);
    r->state[st->stage] = dup_bytes(st->data, st->size);
    r->state_size[st->stage] = st->size;
  }
  e->m = *m;
  for (int c = 0; c < PIPE_CLASSES; c++)
    e->per_class[c] = c < m->noise_classes ? m->noise_per_class[c] : NAN;
  e->m.noise_per_class = NULL; /* the pipeline's, valid during the hook */
  e->loss = dup_bytes(rec->loss, n * sizeof(float));
  e->prob = dup_bytes(rec->prob, n * sizeof(float));
  e->weight = dup_bytes(rec->weight, n * sizeof(float));
  e->easy = dup_bytes(rec->easy, n);
  r->n_epochs++;
  if (!e->loss || !e->prob || !e->weight || !e->easy)
    return -ENOMEM;
  if (r->cancel_after && r->n_epochs >= r->cancel_after)
    atomic_store(&r->cancel, 1);
  return 0;
}

static int rec_on_dynamics(void *ctx, const pipeline_dynamics_t *d, char *err,
                           size_t errlen) {
  recorder_t *r = ctx;
  size_t n = (size_t)d->n;

  (void)err, (void)errlen;
  if (r->n_dyn >= 8 || d->n != r->n_train)
    return -ERANGE;
  r->dyn_stage[r->n_dyn] = d->stage;
  r->dyn_conf[r->n_dyn] = dup_bytes(d->confidence, n * sizeof(float));
  r->dyn_corr[r->n_dyn] = dup_bytes(d->correctness, n * sizeof(float));
  r->dyn_forget[r->n_dyn] = dup_bytes(d->forgetting, n * sizeof(int32_t));
  r->n_dyn++;
  return 0;
}

static int rec_load_state(void *ctx, int stage, uint8_t **data, size_t *size,
                          char *err, size_t errlen) {
  recorder_t *r = ctx;

  (void)err, (void)errlen;
  *data =
      r->state[stage] ? dup_bytes(r->state[stage], r->state_size[stage]) : NULL;
  *size = r->state_size[stage];
  return 0;
}

static void recorder_free(recorder_t *r) {
  if (!r)
    return;
  for (int i = 0; i < PIPELINE_STAGE_COUNT; i++)
    free(r->state[i]);
  for (int i = 0; i < r->n_dyn; i++) {
    free(r->dyn_conf[i]);
    free(r->dyn_corr[i]);
    free(r->dyn_forget[i]);
  }
  free(r->labels);
  for (int i = 0; i < r->n_epochs; i++) {
    free(r->ep[i].loss);
    free(r->ep[i].prob);
    free(r->ep[i].weight);
    free(r->ep[i].easy);
  }
  free(r);
}

static int run_recorded(recorder_t *r, const dataset_t *train,
                        const dataset_t *test, char *err, size_t errlen) {
  pipeline_hooks_t h = {r,          rec_on_data,    rec_on_stage, rec_on_epoch,
                        &r->cancel, rec_on_dynamics};

  if (r->keep_states)
    h.load_state = rec_load_state;
  return pipeline_run(&r->spec, train, test, &h, err, errlen);
}

/* Samples per observed class and, per class, how many are easy. */
static void class_counts(const recorder_t *r, const uint8_t *easy,
                         int n_c[PIPE_CLASSES], int easy_c[PIPE_CLASSES]) {
  memset(n_c, 0, sizeof(int) * PIPE_CLASSES);
  memset(easy_c, 0, sizeof(int) * PIPE_CLASSES);
  for (int i = 0; i < r->n_train; i++) {
    n_c[r->labels[i]]++;
    easy_c[r->labels[i]] += easy[i] != 0;
  }
}

/* Per class the easy samples are the keep(f) ones of lowest score: every
 * easy score is at most every hard score of the class. */
static void check_selection(const recorder_t *r, const uint8_t *easy,
                            const float *score, double f) {
  int n_c[PIPE_CLASSES], easy_c[PIPE_CLASSES];
  float easy_max[PIPE_CLASSES], hard_min[PIPE_CLASSES];

  class_counts(r, easy, n_c, easy_c);
  for (int c = 0; c < PIPE_CLASSES; c++) {
    long keep = llround(f * n_c[c]);
    assert_int_equal(easy_c[c], keep < 1 ? 1 : keep);
    easy_max[c] = -INFINITY;
    hard_min[c] = INFINITY;
  }
  for (int i = 0; i < r->n_train; i++) {
    int c = r->labels[i];
    if (easy[i])
      easy_max[c] = fmaxf(easy_max[c], score[i]);
    else
      hard_min[c] = fminf(hard_min[c], score[i]);
  }
  for (int c = 0; c < PIPE_CLASSES; c++)
    assert_true(easy_max[c] <= hard_min[c]);
}

static void check_flags(int n, const float *weight, const uint8_t *easy,
                        const uint8_t *want_easy, int weight_is_easy) {
  for (int i = 0; i < n; i++) {
    float want_w = weight_is_easy ? (want_easy[i] ? 1.0f : 0.0f) : 1.0f;
    assert_int_equal(easy[i], want_easy[i]);
    assert_true(weight[i] == want_w);
  }
}

/* The fraction per class the easy set of spl epoch e (from 1, before the
 * last) keeps, or -1 during warm-up. The first selection follows the last
 * warm-up epoch, or the first epoch when there is no warm-up, since
 * nothing is scored before it; from there the fraction grows linearly
 * from start to reach end at the second-to-last epoch. */
static double expected_pace(const pipeline_spec_t *s, int e) {
  int first = s->spl_warmup_epochs > 0 ? s->spl_warmup_epochs : 1;
  int count = s->spl.epochs - first;

  if (e < first)
    return -1.0;
  if (count <= 1)
    return s->pace_start;
  return s->pace_start +
         (s->pace_end - s->pace_start) * (e - first) / (count - 1);
}

/* The spl epochs: each trains with the easy set of the one before; the
 * warm-up keeps all, then the paced fraction per class is chosen by the
 * epoch's losses, and the last epoch keeps end by mean loss. */
static void check_spl(const recorder_t *r) {
  const pipeline_spec_t *s = &r->spec;
  int epochs = s->spl.epochs;
  float *mean = xalloc((size_t)r->n_train);
  uint8_t *ones = malloc((size_t)r->n_train);

  assert_non_null(ones);
  memset(ones, 1, (size_t)r->n_train);
  for (int e = 1; e <= epochs; e++) {
    const epoch_rec_t *ep = &r->ep[e - 1];
    const uint8_t *prev = e == 1 ? ones : r->ep[e - 2].easy;
    double f = expected_pace(s, e);
    for (int i = 0; i < r->n_train; i++) {
      assert_true(ep->weight[i] == (prev[i] ? 1.0f : 0.0f));
      mean[i] += ep->loss[i];
    }
    if (e < epochs && f < 0.0)
      assert_memory_equal(ep->easy, ones, (size_t)r->n_train);
    else if (e < epochs)
      check_selection(r, ep->easy, ep->loss, f);
  }
  for (int i = 0; i < r->n_train; i++)
    mean[i] /= (float)epochs;
  check_selection(r, r->ep[epochs - 1].easy, mean, s->pace_end);
  free(mean);
  free(ones);
}

static void check_metrics(const recorder_t *r) {
  static const int epochs[4] = {SPL_EPOCHS, TEACHER_EPOCHS, STUDENT_EPOCHS,
                                BASELINE_EPOCHS};
  int k = 0;

  for (int stage = 0; stage < 4; stage++)
    for (int e = 1; e <= epochs[stage]; e++, k++) {
      const pipeline_epoch_t *m = &r->ep[k].m;
      int easy = 0;
      assert_int_equal(m->stage, stage);
      assert_int_equal(m->epoch, e);
      assert_int_equal(m->epochs, epochs[stage]);
      for (int i = 0; i < r->n_train; i++)
        easy += r->ep[k].easy[i];
      assert_int_equal(m->easy_size, easy);
      check_close(m->easy_fraction, (double)easy / r->n_train, 1e-12, 0,
                  "easy fraction", (size_t)k);
      assert_true(isfinite(m->train_loss) && m->train_loss >= 0.0);
      assert_true(m->test_acc >= 0.0 && m->test_acc <= 1.0);
      assert_true(m->val_acc >= 0.0 && m->val_acc <= 1.0);
    }
  assert_int_equal(r->n_epochs, k);
}

static void check_run(const recorder_t *r) {
  const uint8_t *final_easy = r->ep[SPL_EPOCHS - 1].easy;
  int first_student = SPL_EPOCHS + TEACHER_EPOCHS;
  int first_base = first_student + STUDENT_EPOCHS;
  uint8_t *ones = malloc((size_t)r->n_train);

  assert_non_null(ones);
  memset(ones, 1, (size_t)r->n_train);
  assert_int_equal(r->n_train + r->n_val, PIPE_TRAIN);
  assert_int_equal(r->n_val, PIPE_TRAIN / 10);
  assert_int_equal(r->n_corrupted, PIPE_TRAIN * 3 / 10);
  assert_int_equal(r->n_relabelled, PIPE_TRAIN * 3 / 10);
  assert_true(r->sorted);
  assert_int_equal(r->n_stages, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(r->stages[i], i);

  check_metrics(r);
  check_spl(r);
  for (int k = SPL_EPOCHS; k < first_base; k++)
    check_flags(r->n_train, r->ep[k].weight, r->ep[k].easy, final_easy, 1);
  for (int k = first_base; k < r->n_epochs; k++)
    check_flags(r->n_train, r->ep[k].weight, r->ep[k].easy, ones, 0);
  assert_true(r->ep[r->n_epochs - 1].m.test_acc > 0.9);
  free(ones);
}

static void assert_same_double(double a, double b) {
  assert_memory_equal(&a, &b, sizeof a);
}

static void check_identical(const recorder_t *a, const recorder_t *b) {
  size_t n = (size_t)a->n_train;

  assert_int_equal(a->n_epochs, b->n_epochs);
  assert_int_equal(a->n_train, b->n_train);
  assert_memory_equal(a->labels, b->labels, n);
  for (int k = 0; k < a->n_epochs; k++) {
    const epoch_rec_t *x = &a->ep[k], *y = &b->ep[k];
    assert_memory_equal(x->loss, y->loss, n * sizeof(float));
    assert_memory_equal(x->prob, y->prob, n * sizeof(float));
    assert_memory_equal(x->weight, y->weight, n * sizeof(float));
    assert_memory_equal(x->easy, y->easy, n);
    assert_same_double(x->m.train_loss, y->m.train_loss);
    assert_same_double(x->m.train_acc, y->m.train_acc);
    assert_same_double(x->m.val_acc, y->m.val_acc);
    assert_same_double(x->m.test_acc, y->m.test_acc);
    assert_same_double(x->m.lr, y->m.lr);
    assert_int_equal(x->m.easy_size, y->m.easy_size);
    for (int j = 0; j < PIPELINE_ESTIMATORS; j++)
      assert_same_double(x->m.noise_estimates[j], y->m.noise_estimates[j]);
  }
}

/* Each stage reports its dynamics once, after its epochs, and the
 * confidence it reports is the mean over those epochs of the recorded
 * probability of the observed label; forgetting events are fewer than
 * the epochs. */
static void check_dynamics(const recorder_t *r) {
  assert_int_equal(r->n_dyn, 4);
  for (int k = 0; k < r->n_dyn; k++) {
    int stage = r->dyn_stage[k], epochs = 0;
    assert_int_equal(stage, k);
    for (int i = 0; i < r->n_train; i++) {
      double sum = 0.0;
      epochs = 0;
      for (int e = 0; e < r->n_epochs; e++)
        if (r->ep[e].m.stage == stage) {
          sum += r->ep[e].prob[i];
          epochs++;
        }
      check_close(r->dyn_conf[k][i], sum / epochs, 1e-5, 1e-6, "confidence",
                  (size_t)i);
      assert_true(r->dyn_corr[k][i] >= 0.0f && r->dyn_corr[k][i] <= 1.0f);
      assert_true(r->dyn_forget[k][i] >= 0 && r->dyn_forget[k][i] < epochs);
    }
  }
}

static void test_pipeline_tiny(void **state) {
  dataset_t train, test;
  recorder_t *a = recorder_new(), *b = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);

  if (run_recorded(a, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_run(a);
  check_dynamics(a);
  if (run_recorded(b, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_identical(a, b);

  recorder_free(a);
  recorder_free(b);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* Without warm-up the first epoch still trains on every sample, and the
 * first selection, made after it, keeps the start fraction. */
static void test_pipeline_no_warmup(void **state) {
  dataset_t train, test;
  recorder_t *r = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  r->spec.spl_warmup_epochs = 0;
  if (run_recorded(r, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_run(r);
  recorder_free(r);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* A cancel flag raised after the first epoch stops the run before the
 * second; a hook's error stops it with the hook's code and message. */
static void test_pipeline_stops(void **state) {
  dataset_t train, test;
  recorder_t *a = recorder_new(), *b = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);

  a->cancel_after = 1;
  assert_int_equal(run_recorded(a, &train, &test, err, sizeof err), -ECANCELED);
  assert_int_equal(a->n_epochs, 1);
  assert_int_equal(a->n_stages, 1);

  b->fail_after = 3;
  assert_int_equal(run_recorded(b, &train, &test, err, sizeof err), -EIO);
  assert_int_equal(b->n_epochs, 3);
  assert_string_equal(err, "hook failed on purpose");

  recorder_free(a);
  recorder_free(b);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* Epochs the recorder saw of one stage, in order. */
static int stage_epochs_of(const recorder_t *r, int stage,
                           const epoch_rec_t **out, int max) {
  int n = 0;

  for (int k = 0; k < r->n_epochs; k++)
    if (r->ep[k].m.stage == stage && n < max)
      out[n++] = &r->ep[k];
  return n;
}

/* Two teachers run as teacher0 and teacher1 on the final easy set, no
 * baseline runs when the spec has none, and the student distilled from
 * their combined outputs learns the classes. */
static void test_pipeline_two_teachers(void **state) {
  static const int combines[2] = {PIPELINE_COMBINE_MEAN,
                                  PIPELINE_COMBINE_CONFIDENCE};
  dataset_t train, test;
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  for (int c = 0; c < 2; c++) {
    recorder_t *r = recorder_new();
    const epoch_rec_t *ep[REC_MAX];
    const uint8_t *final_easy;
    r->spec.n_teachers = 2;
    r->spec.teachers[1] = r->spec.teachers[0];
    snprintf(r->spec.teachers[1].stage.model, PIPELINE_MODEL_MAX, "mlp-small");
    r->spec.combine = combines[c];
    r->spec.has_baseline = 0;
    if (run_recorded(r, &train, &test, err, sizeof err) != 0)
      fail_msg("pipeline_run: %s", err);

    assert_int_equal(r->n_stages, 4);
    assert_int_equal(r->stages[0], PIPELINE_STAGE_SPL);
    assert_int_equal(r->stages[1], PIPELINE_STAGE_TEACHER0);
    assert_int_equal(r->stages[2], PIPELINE_STAGE_TEACHER0 + 1);
    assert_int_equal(r->stages[3], PIPELINE_STAGE_STUDENT);
    assert_string_equal(pipeline_stage_name(PIPELINE_STAGE_TEACHER0 + 1),
                        "teacher1");
    assert_int_equal(pipeline_stage_from_name("teacher1"),
                     PIPELINE_STAGE_TEACHER0 + 1);
    final_easy = r->ep[SPL_EPOCHS - 1].easy;
    for (int t = 0; t < 2; t++) {
      int n = stage_epochs_of(r, PIPELINE_STAGE_TEACHER0 + t, ep, REC_MAX);
      assert_int_equal(n, TEACHER_EPOCHS);
      for (int e = 0; e < n; e++)
        check_flags(r->n_train, ep[e]->weight, ep[e]->easy, final_easy, 1);
    }
    assert_int_equal(stage_epochs_of(r, PIPELINE_STAGE_BASELINE, ep, 1), 0);
    assert_int_equal(stage_epochs_of(r, PIPELINE_STAGE_STUDENT, ep, REC_MAX),
                     STUDENT_EPOCHS);
    assert_true(ep[STUDENT_EPOCHS - 1]->m.test_acc > 0.9);
    recorder_free(r);
  }
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* A student choosing its own weights trains its first epoch on every
 * sample, then on the fraction of each class its own previous epoch
 * scored easiest; with spl_weights "none" every weight stays 1. */
static void test_pipeline_student_self(void **state) {
  dataset_t train, test;
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  for (int none = 0; none < 2; none++) {
    recorder_t *r = recorder_new();
    const epoch_rec_t *ep[REC_MAX];
    int n;
    r->spec.student.epochs = 4;
    r->spec.weights_from = PIPELINE_FROM_SELF;
    r->spec.student_weights =
        none ? PIPELINE_WEIGHTS_NONE : PIPELINE_WEIGHTS_ALL;
    r->spec.has_baseline = 0;
    if (run_recorded(r, &train, &test, err, sizeof err) != 0)
      fail_msg("pipeline_run: %s", err);
    n = stage_epochs_of(r, PIPELINE_STAGE_STUDENT, ep, REC_MAX);
    assert_int_equal(n, 4);
    for (int i = 0; i < r->n_train; i++)
      assert_true(ep[0]->weight[i] == 1.0f);
    for (int e = 1; e < n; e++) {
      double f = r->spec.pace_start +
                 (r->spec.pace_end - r->spec.pace_start) * (e - 1) / 2;
      check_selection(r, ep[e - 1]->easy, ep[e - 1]->loss, f);
      for (int i = 0; i < r->n_train; i++)
        assert_true(ep[e]->weight[i] ==
                    (none || ep[e - 1]->easy[i] ? 1.0f : 0.0f));
    }
    assert_true(ep[n - 1]->m.test_acc > 0.9);
    recorder_free(r);
  }
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* A hinted student (mlp-small's hidden layer projected onto the
 * teacher's second hidden layer) trains to a finite objective that the
 * hint makes larger than the plain one, and learns the classes. */
static void test_pipeline_hint(void **state) {
  dataset_t train, test;
  recorder_t *a = recorder_new(), *b = recorder_new();
  const epoch_rec_t *ea[REC_MAX], *eb[REC_MAX];
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  snprintf(a->spec.student.model, PIPELINE_MODEL_MAX, "mlp-small");
  a->spec.has_baseline = 0;
  b->spec = a->spec;
  b->spec.has_hint = 1;
  b->spec.hint_teacher_layer = 3;
  b->spec.hint_student_layer = 1;
  b->spec.hint_beta = 0.5;
  if (run_recorded(a, &train, &test, err, sizeof err) != 0 ||
      run_recorded(b, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  assert_int_equal(stage_epochs_of(a, PIPELINE_STAGE_STUDENT, ea, REC_MAX),
                   STUDENT_EPOCHS);
  assert_int_equal(stage_epochs_of(b, PIPELINE_STAGE_STUDENT, eb, REC_MAX),
                   STUDENT_EPOCHS);
  assert_true(isfinite(eb[0]->m.train_loss));
  assert_true(eb[0]->m.train_loss > ea[0]->m.train_loss);
  assert_true(eb[STUDENT_EPOCHS - 1]->m.test_acc > 0.9);

  b->spec.hint_student_layer = 3; /* mlp-small has layers 0..2 */
  assert_int_equal(run_recorded(b, &train, &test, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "student_layer"));
  recorder_free(a);
  recorder_free(b);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* A teacher loaded from a checkpoint trains no epoch: it reports one
 * evaluation with its saved model's accuracy and no training loss, and
 * the student learns from it. A checkpoint for other inputs is refused
 * naming the teacher. */
static void test_pipeline_checkpoint_teacher(void **state) {
  dataset_t train, test;
  pipeline_train_spec_t ts;
  pipeline_trained_t t = {0};
  pipeline_hooks_t none = {0};
  checkpoint_meta_t meta = {.in = {1, 1, PIPE_DIM}, .classes = PIPE_CLASSES};
  recorder_t *r = recorder_new();
  const epoch_rec_t *ep[REC_MAX];
  char path[] = "/tmp/spk-test-teacher-XXXXXX", err[512] = "";
  int fd = mkstemp(path);

  (void)state;
  assert_true(fd >= 0);
  close(fd);
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  pipeline_train_defaults(&ts);
  ts.stage.epochs = 3;
  ts.stage.optim.batch_size = 32;
  ts.stage.optim.lr = 0.02;
  if (pipeline_train(&ts, &train, &test, &none, &t, err, sizeof err) != 0)
    fail_msg("pipeline_train: %s", err);
  model_preset("mlp", &meta.desc);
  meta.optim = ts.stage.optim;
  if (checkpoint_save(path, t.model, &meta, err, sizeof err) != 0)
    fail_msg("checkpoint_save: %s", err);
  model_free(t.model);

  snprintf(r->spec.teachers[0].checkpoint, PIPELINE_NAME_MAX, "teacher.ckpt");
  snprintf(r->spec.teachers[0].path, PIPELINE_PATH_MAX, "%s", path);
  r->spec.has_baseline = 0;
  if (run_recorded(r, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  assert_int_equal(stage_epochs_of(r, PIPELINE_STAGE_TEACHER, ep, REC_MAX), 1);
  assert_int_equal(ep[0]->m.epoch, 1);
  assert_int_equal(ep[0]->m.epochs, 1);
  assert_true(isnan(ep[0]->m.train_loss));
  assert_true(ep[0]->m.test_acc > 0.9);
  assert_int_equal(stage_epochs_of(r, PIPELINE_STAGE_STUDENT, ep, REC_MAX),
                   STUDENT_EPOCHS);
  assert_true(ep[STUDENT_EPOCHS - 1]->m.test_acc > 0.9);
  recorder_free(r);

  meta.in.w = PIPE_DIM + 1;
  model_preset("mlp", &meta.desc);
  {
    model_t *m;
    rng_t rng;
    model_env_t env = {meta.in, PIPE_CLASSES, 32, 1, &rng, 1};
    rng_init(&rng, 1, 1);
    assert_int_equal(model_new(&meta.desc, &env, &m, err, sizeof err), 0);
    assert_int_equal(checkpoint_save(path, m, &meta, err, sizeof err), 0);
    model_free(m);
  }
  r = recorder_new();
  snprintf(r->spec.teachers[0].checkpoint, PIPELINE_NAME_MAX, "teacher.ckpt");
  snprintf(r->spec.teachers[0].path, PIPELINE_PATH_MAX, "%s", path);
  assert_int_equal(run_recorded(r, &train, &test, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "teachers[0].checkpoint 'teacher.ckpt'"));
  recorder_free(r);
  unlink(path);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* The epochs of one stage in a and b hold the same bits. */
static void check_stage_identical(const recorder_t *a, const recorder_t *b,
                                  int stage) {
  const epoch_rec_t *x[REC_MAX], *y[REC_MAX];
  int n = stage_epochs_of(a, stage, x, REC_MAX);
  size_t bytes = (size_t)a->n_train * sizeof(float);

  assert_int_equal(stage_epochs_of(b, stage, y, REC_MAX), n);
  assert_true(n > 0);
  for (int e = 0; e < n; e++) {
    assert_int_equal(x[e]->m.epoch, e + 1);
    assert_memory_equal(x[e]->loss, y[e]->loss, bytes);
    assert_memory_equal(x[e]->weight, y[e]->weight, bytes);
    assert_memory_equal(x[e]->easy, y[e]->easy, (size_t)a->n_train);
    assert_same_double(x[e]->m.test_acc, y[e]->m.test_acc);
    assert_same_double(x[e]->m.train_loss, y[e]->m.train_loss);
  }
}

/* With two threads the baseline trains beside spl and the teacher on one
 * thread each: those three stages give the same bits as a run with one
 * thread doing one stage at a time, every stage reports all its epochs
 * in order, and two such runs agree on every stage. */
static void test_pipeline_side_by_side(void **state) {
  static const int stages[4] = {PIPELINE_STAGE_SPL, PIPELINE_STAGE_TEACHER,
                                PIPELINE_STAGE_STUDENT,
                                PIPELINE_STAGE_BASELINE};
  dataset_t train, test;
  recorder_t *one = recorder_new(), *a = recorder_new(), *b = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  one->spec.threads = 1;
  a->spec.parallel_stages = b->spec.parallel_stages = 1;
  if (run_recorded(one, &train, &test, err, sizeof err) != 0 ||
      run_recorded(a, &train, &test, err, sizeof err) != 0 ||
      run_recorded(b, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);

  assert_int_equal(a->n_stages, 4);
  assert_int_equal(a->n_epochs, one->n_epochs);
  check_stage_identical(one, a, PIPELINE_STAGE_SPL);
  check_stage_identical(one, a, PIPELINE_STAGE_TEACHER);
  check_stage_identical(one, a, PIPELINE_STAGE_BASELINE);
  for (int k = 0; k < 4; k++)
    check_stage_identical(a, b, stages[k]);
  recorder_free(one);
  recorder_free(a);
  recorder_free(b);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* The noise-rate estimates: none before the last warm-up epoch or
 * outside spl; from there every spl epoch reports each estimator, the
 * warm-up model's confident-learning estimate unchanged and within 0.05
 * of the 30 % injected, overall and per class. */
static void check_noise_estimates(const recorder_t *r) {
  const epoch_rec_t *first = &r->ep[SPL_WARMUP - 1];

  for (int k = 0; k < r->n_epochs; k++) {
    const pipeline_epoch_t *m = &r->ep[k].m;
    int made = m->stage == PIPELINE_STAGE_SPL && m->epoch >= SPL_WARMUP;
    assert_int_equal(isfinite(m->estimated_noise_rate), made);
    assert_int_equal(m->noise_classes, made ? PIPE_CLASSES : 0);
    for (int e = 0; e < PIPELINE_ESTIMATORS; e++)
      assert_int_equal(isfinite(m->noise_estimates[e]), made);
    if (!made)
      continue;
    assert_same_double(m->estimated_noise_rate,
                       m->noise_estimates[PIPELINE_EST_CONFIDENT]);
    assert_same_double(m->estimated_noise_rate, first->m.estimated_noise_rate);
    for (int c = 0; c < PIPE_CLASSES; c++) {
      assert_same_double(r->ep[k].per_class[c], first->per_class[c]);
      check_close(r->ep[k].per_class[c], 0.3, 0, 0.05, "per class", (size_t)c);
    }
  }
  check_close(first->m.estimated_noise_rate, 0.3, 0, 0.05, "noise rate", 0);
  assert_string_equal(pipeline_estimator_name(PIPELINE_EST_CONFIDENT),
                      "confident");
  assert_string_equal(pipeline_estimator_name(PIPELINE_ESTIMATORS), "unknown");
}

/* The auto pace keeps of each class the clean share of the whole set by
 * the estimate, at every selection and in the final easy set; all of it
 * when the estimate is below the spec's clean_below. */
static void check_auto_pace(const recorder_t *r) {
  for (int e = SPL_WARMUP; e <= SPL_EPOCHS; e++) {
    const epoch_rec_t *ep = &r->ep[e - 1];
    double rate = ep->m.estimated_noise_rate;
    int n_c[PIPE_CLASSES], easy_c[PIPE_CLASSES];
    class_counts(r, ep->easy, n_c, easy_c);
    if (rate < r->spec.pace_clean_below)
      rate = 0;
    for (int c = 0; c < PIPE_CLASSES; c++) {
      long keep = llround((1.0 - rate) * n_c[c]);
      assert_int_equal(easy_c[c], keep < 1 ? 1 : keep);
    }
  }
}

static void test_pipeline_noise_estimate(void **state) {
  dataset_t train, test;
  recorder_t *r = recorder_new(), *a = recorder_new(), *all = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  if (run_recorded(r, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_noise_estimates(r);
  a->spec.pace_kind = SPL_PACE_AUTO;
  if (run_recorded(a, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_noise_estimates(a);
  check_auto_pace(a);
  /* An estimate (about 0.3) under clean_below keeps every sample. */
  all->spec.pace_kind = SPL_PACE_AUTO;
  all->spec.pace_clean_below = 0.45;
  if (run_recorded(all, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  check_noise_estimates(all);
  check_auto_pace(all);
  assert_true(all->ep[SPL_EPOCHS - 1].m.estimated_noise_rate < 0.45);
  recorder_free(r);
  recorder_free(a);
  recorder_free(all);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* A run stopped after any epoch resumes from the states it stored: the
 * second run reports only the epochs the first did not store, and every
 * stage ends in the same state, bit for bit, as an uninterrupted run:
 * weights, optimizer, generators, dynamics and self-paced arrays. With
 * the baseline on its own lane the stop lands anywhere in it. */
static void test_pipeline_resume(void **state) {
  static const int stops[] = {1, 4, 6, 9, 12};
  dataset_t train, test;
  recorder_t *whole = recorder_new();
  char err[256] = "";

  (void)state;
  synthetic_init(&train, PIPE_TRAIN, 1);
  synthetic_init(&test, PIPE_TEST, 2);
  whole->keep_states = 1;
  whole->spec.parallel_stages = 1;
  whole->spec.weights_from = PIPELINE_FROM_SELF;
  /* A hinted student on Adam: its projection's moments must resume too. */
  snprintf(whole->spec.student.model, PIPELINE_MODEL_MAX, "mlp-small");
  whole->spec.student.optim.kind = OPTIM_ADAM;
  whole->spec.student.optim.lr = 0.002;
  whole->spec.baseline.optim = whole->spec.student.optim;
  whole->spec.has_hint = 1;
  whole->spec.hint_teacher_layer = 3;
  whole->spec.hint_student_layer = 1;
  if (run_recorded(whole, &train, &test, err, sizeof err) != 0)
    fail_msg("pipeline_run: %s", err);
  for (size_t k = 0; k < sizeof stops / sizeof stops[0]; k++) {
    recorder_t *r = recorder_new();
    r->keep_states = 1;
    r->spec = whole->spec;
    r->fail_after = stops[k];
    assert_int_equal(run_recorded(r, &train, &test, err, sizeof err), -EIO);
    r->fail_after = 0;
    if (run_recorded(r, &train, &test, err, sizeof err) != 0)
      fail_msg("resumed pipeline_run after %d epochs: %s", stops[k], err);
    assert_int_equal(r->n_epochs, whole->n_epochs);
    for (int s = 0; s < 4; s++) {
      assert_non_null(r->state[s]);
      assert_int_equal(r->state_size[s], whole->state_size[s]);
      assert_memory_equal(r->state[s], whole->state[s], r->state_size[s]);
    }
    recorder_free(r);
  }
  recorder_free(whole);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_matches_reference),
      cmocka_unit_test(test_dense_backward_overwrites),
      cmocka_unit_test(test_dense_gradient),
      cmocka_unit_test(test_relu_gradient),
      cmocka_unit_test(test_ce_values_and_gradient),
      cmocka_unit_test(test_ce_large_logits),
      cmocka_unit_test(test_kd_gradient),
      cmocka_unit_test(test_kd_zero_at_teacher),
      cmocka_unit_test(test_model_gradient),
      cmocka_unit_test(test_model_step_is_backward_then_update),
      cmocka_unit_test(test_model_unknown_preset),
      cmocka_unit_test(test_pace_fraction),
      cmocka_unit_test(test_select_per_class),
      cmocka_unit_test(test_select_ties),
      cmocka_unit_test(test_noise_symmetric),
      cmocka_unit_test(test_noise_two_classes),
      cmocka_unit_test(test_rng_streams),
      cmocka_unit_test(test_rng_below_and_uniform),
      cmocka_unit_test(test_rng_shuffle),
      cmocka_unit_test(test_rng_shuffle_uniform),
      cmocka_unit_test(test_pipeline_tiny),
      cmocka_unit_test(test_pipeline_no_warmup),
      cmocka_unit_test(test_pipeline_stops),
      cmocka_unit_test(test_pipeline_two_teachers),
      cmocka_unit_test(test_pipeline_student_self),
      cmocka_unit_test(test_pipeline_hint),
      cmocka_unit_test(test_pipeline_checkpoint_teacher),
      cmocka_unit_test(test_pipeline_side_by_side),
      cmocka_unit_test(test_pipeline_resume),
      cmocka_unit_test(test_pipeline_noise_estimate),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
