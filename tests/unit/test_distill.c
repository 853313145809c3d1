/* SPDX-License-Identifier: MIT */
/* Unit tests of what distillation adds to the engine: the weighted KD
 * loss under both weighting rules and its T^2 scale, the combination of
 * several teachers, the FitNets hint loss, and a model's extra gradient
 * at an inner layer on one thread and on a team of two. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/loss.h"
#include "../../engine/model.h"
#include "../../engine/optim.h"
#include "../../engine/rng.h"
#include "../../engine/team.h"
#include "numcheck.h"

/* Direct references in double precision. */

/* out[j] = z_j / T - log sum_k exp(z_k / T), straight from the formula. */
static void direct_log_softmax(const float *z, int C, double T, double *out) {
  double sum = 0.0;

  for (int j = 0; j < C; j++)
    sum += exp(z[j] / T);
  for (int j = 0; j < C; j++)
    out[j] = z[j] / T - log(sum);
}

/* KL(q || softmax(z / T)) of one row. */
static double direct_kl(const float *q, const float *z, int C, double T) {
  double ls[16] = {0}, kl = 0.0;

  direct_log_softmax(z, C, T, ls);
  for (int j = 0; j < C; j++)
    if (q[j] > 0.0f)
      kl += q[j] * (log(q[j]) - ls[j]);
  return kl;
}

/* -log softmax(z)[y] of one row. */
static double direct_ce(const float *z, int C, int y) {
  double ls[16] = {0};

  direct_log_softmax(z, C, 1.0, ls);
  return -ls[y];
}

/* Fails unless every entry of row i of v (n, C) is exactly 0. */
static void assert_row_zero(const float *v, int i, int C) {
  for (int j = 0; j < C; j++)
    assert_true(v[(size_t)i * C + j] == 0.0f);
}

static double row_max_abs(const float *v, int i, int C) {
  double m = 0.0;

  for (int j = 0; j < C; j++)
    m = fmax(m, fabs(v[(size_t)i * C + j]));
  return m;
}

/* Compares analytic (n) with central differences over every entry of v. */
static void fd_check_all(float *v, const float *analytic, size_t n,
                         gradcheck_objective_fn f, void *ctx, double eps,
                         const char *what) {
  for (size_t i = 0; i < n; i++)
    check_close(analytic[i], gradcheck_fd(&v[i], f, ctx, eps), 1e-3, 1e-5, what,
                i);
}

/* The distillation loss under weight_all = 0 and 1. */

typedef struct {
  loss_kd_t kd;
  float *s;
  const float *q;
  const uint8_t *y;
  const float *w;
  int n, C;
} kd_case_t;

static double kd_mean(void *ctx) {
  kd_case_t *c = ctx;
  return loss_kd_forward(&c->kd, c->s, c->q, c->y, c->w, c->n, c->C, NULL);
}

/* (1 - a) w CE + (weight_all ? w : 1) a T^2 KL for row i. */
static double kd_row_direct(const kd_case_t *c, int i) {
  const float *s = c->s + (size_t)i * c->C, *q = c->q + (size_t)i * c->C;
  double a = c->kd.alpha, T = c->kd.temperature;
  double w = c->w ? c->w[i] : 1.0, wk = c->kd.weight_all ? w : 1.0;

  return (1.0 - a) * w * direct_ce(s, c->C, c->y[i]) +
         wk * a * T * T * direct_kl(q, s, c->C, T);
}

/* Row 1 has weight 0: under weight_all both its loss and its gradient
 * are exactly 0; otherwise the KD part a T^2 KL and its gradient
 * a T (softmax(s / T) - q) / n remain. */
static void kd_zero_weight_row(const kd_case_t *c, const float *loss,
                               const float *d) {
  double a = c->kd.alpha, T = c->kd.temperature, p[16];
  const float *s = c->s + c->C, *q = c->q + c->C;

  if (c->kd.weight_all) {
    assert_true(loss[1] == 0.0f);
    assert_row_zero(d, 1, c->C);
    return;
  }
  check_close(loss[1], a * T * T * direct_kl(q, s, c->C, T), 1e-5, 1e-7,
              "kd zero-weight loss", 1);
  assert_true(loss[1] > 1e-3);
  direct_log_softmax(s, c->C, T, p);
  for (int j = 0; j < c->C; j++)
    check_close(d[c->C + j], a * T * (exp(p[j]) - q[j]) / c->n, 1e-5, 1e-8,
                "kd zero-weight grad", (size_t)j);
  assert_true(row_max_abs(d, 1, c->C) > 1e-3);
}

static void kd_weight_check(int weight_all, float alpha, float T,
                            uint64_t seed) {
  enum { N = 5, C = 4 };
  float s[N * C], t[N * C], q[N * C], d[N * C], loss[N];
  const float w[N] = {1.0f, 0.0f, 2.0f, 0.5f, 1.5f};
  const uint8_t y[N] = {2, 0, 3, 1, 1};
  kd_case_t c = {{alpha, T, weight_all}, s, q, y, w, N, C};
  double mean, sum = 0.0;
  rng_t rng;

  rng_init(&rng, seed, 0);
  fill_normal(&rng, s, N * C, 2.0f);
  fill_normal(&rng, t, N * C, 2.0f);
  loss_softmax(t, q, N, C, T);

  mean = loss_kd_forward(&c.kd, s, q, y, w, N, C, loss);
  for (int i = 0; i < N; i++) {
    check_close(loss[i], kd_row_direct(&c, i), 1e-5, 1e-7, "kd row loss",
                (size_t)i);
    sum += kd_row_direct(&c, i);
  }
  check_close(mean, sum / N, 1e-6, 1e-8, "kd mean", 0);

  loss_kd_backward(&c.kd, s, q, y, w, N, C, d);
  kd_zero_weight_row(&c, loss, d);
  fd_check_all(s, d, N * C, kd_mean, &c, 1e-3, "kd d/ds");
}

static void test_kd_weight_all(void **state) {
  (void)state;
  for (int wa = 0; wa <= 1; wa++) {
    kd_weight_check(wa, 0.4f, 2.0f, (uint64_t)(10 + wa));
    kd_weight_check(wa, 1.0f, 3.0f, (uint64_t)(20 + wa));
    kd_weight_check(wa, 0.7f, 1.0f, (uint64_t)(30 + wa));
  }
}

/* Under weight_all the weight 2 row's KD part is twice what it is
 * without; the weight 1 row is the same under both rules. */
static void test_kd_weight_all_scales_kd_part(void **state) {
  enum { N = 3, C = 4 };
  float s[N * C], t[N * C], q[N * C], l0[N], l1[N];
  const float w[N] = {1.0f, 2.0f, 0.0f};
  const uint8_t y[N] = {0, 1, 2};
  loss_kd_t k0 = {1.0f, 2.0f, 0}, k1 = {1.0f, 2.0f, 1};
  rng_t rng;

  (void)state;
  rng_init(&rng, 5, 0);
  fill_normal(&rng, s, N * C, 1.5f);
  fill_normal(&rng, t, N * C, 1.5f);
  loss_softmax(t, q, N, C, 2.0f);
  loss_kd_forward(&k0, s, q, y, w, N, C, l0);
  loss_kd_forward(&k1, s, q, y, w, N, C, l1);
  check_close(l1[0], l0[0], 1e-6, 0.0, "kd w=1", 0);
  check_close(l1[1], 2.0 * l0[1], 1e-6, 0.0, "kd w=2", 1);
  assert_true(l0[2] > 1e-3);
  assert_true(l1[2] == 0.0f);
}

/* The T^2 scale and the mean over rows. */

static void kd_t2_check(float T, uint64_t seed) {
  enum { B = 6, C = 5 };
  float s[2 * B * C], t[B * C], q[2 * B * C], d[B * C], d2[2 * B * C];
  uint8_t y[2 * B] = {0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 0};
  loss_kd_t kd = {1.0f, T, 0};
  double kl = 0.0, mean, mean2, p[16];
  rng_t rng;

  rng_init(&rng, seed, 0);
  fill_normal(&rng, s, B * C, 2.0f);
  fill_normal(&rng, t, B * C, 2.0f);
  loss_softmax(t, q, B, C, T);
  for (int i = 0; i < B; i++)
    kl += direct_kl(q + i * C, s + i * C, C, T);

  /* alpha = 1: the mean loss is T^2 (1/B) sum_i KL_i, labels aside. */
  mean = loss_kd_forward(&kd, s, q, y, NULL, B, C, NULL);
  check_close(mean, (double)T * T * kl / B, 1e-6, 1e-9, "kd T^2 mean", 0);
  loss_kd_backward(&kd, s, q, y, NULL, B, C, d);
  for (int i = 0; i < B; i++) {
    direct_log_softmax(s + i * C, C, T, p);
    for (int j = 0; j < C; j++)
      check_close(d[i * C + j], T * (exp(p[j]) - q[i * C + j]) / B, 1e-5, 1e-8,
                  "kd T grad", (size_t)(i * C + j));
  }

  /* Every row twice: the same mean, each copy half the gradient. */
  memcpy(s + B * C, s, sizeof(float) * B * C);
  memcpy(q + B * C, q, sizeof(float) * B * C);
  mean2 = loss_kd_forward(&kd, s, q, y, NULL, 2 * B, C, NULL);
  check_close(mean2, mean, 1e-6, 1e-9, "kd doubled mean", 0);
  loss_kd_backward(&kd, s, q, y, NULL, 2 * B, C, d2);
  for (int k = 0; k < 2 * B * C; k++)
    check_close(d2[k], 0.5 * d[k % (B * C)], 1e-6, 1e-9, "kd doubled grad",
                (size_t)k);
}

static void test_kd_temperature_scale(void **state) {
  (void)state;
  kd_t2_check(1.0f, 70);
  kd_t2_check(2.0f, 71);
  kd_t2_check(5.0f, 72);
}

/* Several teachers into one target. Teachers, n = 2 samples, C = 3;
 * sample 0's observed label is 1, sample 1's is 0. */

static const float tp0[6] = {0.7f, 0.2f, 0.1f, 0.0f, 0.4f, 0.6f};
static const float tp1[6] = {0.1f, 0.6f, 0.3f, 0.0f, 0.5f, 0.5f};
static const float tp2[6] = {0.1f, 0.1f, 0.8f, 0.5f, 0.25f, 0.25f};

/* Each teacher's probability of the observed label, per sample. */
static const float tc0[2] = {0.2f, 0.0f};
static const float tc1[2] = {0.6f, 0.0f};
static const float tc2[2] = {0.1f, 0.5f};

static void expect_probs(const float *got, const double *want, int n,
                         const char *what) {
  for (int i = 0; i < n; i++)
    check_close(got[i], want[i], 1e-6, 1e-7, what, (size_t)i);
}

static void test_combine_two_teachers(void **state) {
  const float *probs[2] = {tp0, tp1}, *conf[2] = {tc0, tc1};
  /* Mean: (p0 + p1) / 2. */
  const double mean[6] = {0.4, 0.4, 0.2, 0.0, 0.45, 0.55};
  /* Sample 0: (0.2 p0 + 0.6 p1) / 0.8 = (0.2, 0.4, 0.2) / 0.8. Sample 1:
   * both confidences are 0, so the mean. */
  const double byconf[6] = {0.25, 0.5, 0.25, 0.0, 0.45, 0.55};
  float out[6];

  (void)state;
  loss_teachers_combine(LOSS_COMBINE_MEAN, probs, NULL, 2, 2, 3, out);
  expect_probs(out, mean, 6, "mean of 2");
  loss_teachers_combine(LOSS_COMBINE_CONFIDENCE, probs, conf, 2, 2, 3, out);
  expect_probs(out, byconf, 6, "confidence of 2");
}

static void test_combine_three_teachers(void **state) {
  const float *probs[3] = {tp0, tp1, tp2}, *conf[3] = {tc0, tc1, tc2};
  const double mean[6] = {0.9 / 3, 0.9 / 3,  1.2 / 3,
                          0.5 / 3, 1.15 / 3, 1.35 / 3};
  /* Sample 0: (0.2 p0 + 0.6 p1 + 0.1 p2) / 0.9 = (0.21, 0.41, 0.28) / 0.9.
   * Sample 1: only teacher 2 is confident, so its row. */
  const double byconf[6] = {0.21 / 0.9, 0.41 / 0.9, 0.28 / 0.9,
                            0.5,        0.25,       0.25};
  float out[6];

  (void)state;
  loss_teachers_combine(LOSS_COMBINE_MEAN, probs, NULL, 3, 2, 3, out);
  expect_probs(out, mean, 6, "mean of 3");
  loss_teachers_combine(LOSS_COMBINE_CONFIDENCE, probs, conf, 3, 2, 3, out);
  expect_probs(out, byconf, 6, "confidence of 3");
}

/* One teacher comes back unchanged under either rule, whatever its
 * confidences (0 included). */
static void test_combine_one_teacher(void **state) {
  const float c[2] = {0.3f, 0.0f}, *conf[1] = {c}, *probs[1] = {tp2};
  float out[6];

  (void)state;
  loss_teachers_combine(LOSS_COMBINE_MEAN, probs, NULL, 1, 2, 3, out);
  assert_memory_equal(out, tp2, sizeof out);
  memset(out, 0, sizeof out);
  loss_teachers_combine(LOSS_COMBINE_CONFIDENCE, probs, conf, 1, 2, 3, out);
  assert_memory_equal(out, tp2, sizeof out);
}

/* out may be probs[0]: the result is the one a separate buffer gets. */
static void combine_aliased(loss_combine_t how) {
  float a[6], apart[6];
  const float *probs[3] = {a, tp1, tp2}, *conf[3] = {tc0, tc1, tc2};

  memcpy(a, tp0, sizeof a);
  loss_teachers_combine(how, probs, conf, 3, 2, 3, apart);
  loss_teachers_combine(how, probs, conf, 3, 2, 3, a);
  assert_memory_equal(a, apart, sizeof a);
  assert_memory_not_equal(a, tp0, sizeof a);
}

static void test_combine_in_place(void **state) {
  (void)state;
  combine_aliased(LOSS_COMBINE_MEAN);
  combine_aliased(LOSS_COMBINE_CONFIDENCE);
}

/* The representation hint. */

typedef struct {
  loss_hint_t h;
  float *P, *hs;
  const float *ht;
  float *scratch;
} hint_case_t;

static double hint_value(void *ctx) {
  hint_case_t *c = ctx;
  return loss_hint_forward(&c->h, c->P, c->hs, c->ht, c->scratch);
}

/* beta (1/n) sum_i |P h_s,i - h_t,i|^2 with plain loops; the residuals
 * into r (n, dt). */
static double hint_direct(const hint_case_t *c, double *r) {
  int n = c->h.n, ds = c->h.ds, dt = c->h.dt;
  double sum = 0.0;

  for (int i = 0; i < n; i++)
    for (int a = 0; a < dt; a++) {
      double v = -c->ht[i * dt + a];
      for (int b = 0; b < ds; b++)
        v += (double)c->P[a * ds + b] * c->hs[i * ds + b];
      r[i * dt + a] = v;
      sum += v * v;
    }
  return c->h.beta * sum / n;
}

/* Backward overwrites dP and adds into dhs: a second call leaves dP as
 * it was and dhs with the gradient added twice. */
static void hint_backward_twice(const hint_case_t *c, const float *resid,
                                float *dP, float *dhs, const float *dhs0) {
  size_t np = (size_t)c->h.dt * c->h.ds, nh = (size_t)c->h.n * c->h.ds;
  float *dP1 = xalloc(np), *dhs1 = xalloc(nh);

  memcpy(dP1, dP, np * sizeof(float));
  memcpy(dhs1, dhs, nh * sizeof(float));
  loss_hint_backward(&c->h, c->P, c->hs, resid, dP, dhs);
  assert_memory_equal(dP, dP1, np * sizeof(float));
  for (size_t k = 0; k < nh; k++)
    check_close(dhs[k] - dhs0[k], 2.0 * (dhs1[k] - dhs0[k]), 1e-5, 1e-6,
                "hint dhs twice", k);
  free(dP1);
  free(dhs1);
}

static void hint_check(int n, int ds, int dt, float beta, uint64_t seed) {
  size_t np = (size_t)dt * ds, nh = (size_t)n * ds, nt = (size_t)n * dt;
  float *P = xalloc(np), *hs = xalloc(nh), *ht = xalloc(nt);
  float *resid = xalloc(nt), *scratch = xalloc(nt), *dP = xalloc(np);
  float *dhs = xalloc(nh), *dhs0 = xalloc(nh), *dhs_only = xalloc(nh);
  double *r = calloc(nt, sizeof(double)), want;
  hint_case_t c = {{n, ds, dt, beta}, P, hs, ht, scratch};
  rng_t rng;

  assert_non_null(r);
  rng_init(&rng, seed, 0);
  fill_normal(&rng, P, np, 0.5f);
  fill_normal(&rng, hs, nh, 1.0f);
  fill_normal(&rng, ht, nt, 1.0f);
  fill_normal(&rng, dhs0, nh, 1.0f);

  want = hint_direct(&c, r);
  check_close(loss_hint_forward(&c.h, P, hs, ht, resid), want, 1e-5, 1e-6,
              "hint value", 0);
  for (size_t k = 0; k < nt; k++)
    check_close(resid[k], r[k], 1e-5, 1e-5, "hint resid", k);

  /* dP starts as garbage that must go; dhs as a gradient that must stay. */
  for (size_t k = 0; k < np; k++)
    dP[k] = 1000.0f + (float)k;
  memcpy(dhs, dhs0, nh * sizeof(float));
  loss_hint_backward(&c.h, P, hs, resid, dP, dhs);
  for (size_t k = 0; k < nh; k++)
    dhs_only[k] = dhs[k] - dhs0[k];

  /* L is quadratic in each entry, so a wide central step is exact. */
  fd_check_all(P, dP, np, hint_value, &c, 0.05, "hint dP");
  fd_check_all(hs, dhs_only, nh, hint_value, &c, 0.05, "hint dhs");
  hint_backward_twice(&c, resid, dP, dhs, dhs0);

  free(P);
  free(hs);
  free(ht);
  free(resid);
  free(scratch);
  free(dP);
  free(dhs);
  free(dhs0);
  free(dhs_only);
  free(r);
}

static void test_hint_value_and_gradient(void **state) {
  (void)state;
  hint_check(5, 7, 3, 0.7f, 80);
  hint_check(1, 7, 3, 1.5f, 81);
  hint_check(4, 3, 6, 0.25f, 82);
}

/* A zero residual gives L = 0, dP = 0 and dhs untouched. */
static void test_hint_zero_at_match(void **state) {
  enum { N = 3, DS = 4, DT = 2 };
  float P[DT * DS], hs[N * DS], ht[N * DT], resid[N * DT], dP[DT * DS];
  float dhs[N * DS], dhs0[N * DS];
  loss_hint_t h = {N, DS, DT, 1.0f};
  rng_t rng;

  (void)state;
  rng_init(&rng, 83, 0);
  fill_normal(&rng, P, DT * DS, 1.0f);
  fill_normal(&rng, hs, N * DS, 1.0f);
  fill_normal(&rng, dhs0, N * DS, 1.0f);
  memset(ht, 0, sizeof ht);
  loss_hint_forward(&h, P, hs, ht, resid);
  memcpy(ht, resid, sizeof ht);
  memcpy(dhs, dhs0, sizeof dhs);

  assert_true(loss_hint_forward(&h, P, hs, ht, resid) < 1e-10);
  loss_hint_backward(&h, P, hs, resid, dP, dhs);
  for (int k = 0; k < DT * DS; k++)
    assert_true(fabsf(dP[k]) < 1e-6f);
  for (int k = 0; k < N * DS; k++)
    check_close(dhs[k], dhs0[k], 0.0, 1e-6, "hint dhs kept", (size_t)k);
}

/* A model's extra gradient at an inner layer. */

enum { MX_N = 5, MX_IN = 5, MX_C = 3, MX_CAP = 8 };

/* dense 6, ReLU, dense 4, ReLU, dense C on MX_IN inputs; the same
 * weights and non-zero biases for any members. */
static model_t *small_model(int members) {
  const model_desc_t d = {"custom",
                          5,
                          {{.kind = LAYER_DENSE, .units = 6},
                           {.kind = LAYER_RELU},
                           {.kind = LAYER_DENSE, .units = 4},
                           {.kind = LAYER_RELU},
                           {.kind = LAYER_DENSE, .units = MODEL_CLASSES}}};
  model_env_t env = {{MX_IN, 1, 1}, MX_C, MX_CAP, members, NULL, 1};
  model_t *m = NULL;
  char err[128];
  rng_t rng;

  rng_init(&rng, 90, 0);
  env.init = &rng;
  assert_int_equal(model_new(&d, &env, &m, err, sizeof err), 0);
  assert_int_equal(m->n_params, 6);
  for (int p = 1; p < m->n_params; p += 2)
    fill_normal(&rng, m->params[p]->value, m->params[p]->n, 0.1f);
  return m;
}

/* Every parameter gradient, concatenated, into g (model_param_count). */
static void grads_copy(const model_t *m, float *g) {
  for (int p = 0; p < m->n_params; p++) {
    memcpy(g, m->params[p]->grad, m->params[p]->n * sizeof(float));
    g += m->params[p]->n;
  }
}

static double dot(const float *a, const float *b, size_t n) {
  double s = 0.0;

  for (size_t i = 0; i < n; i++)
    s += (double)a[i] * b[i];
  return s;
}

typedef struct {
  model_t *m;
  const float *x, *dl, *dh; /* dh NULL: no second term */
  int k;
} extra_case_t;

/* f = sum(dl * logits) + sum(dh * output of layer k), forward again. */
static double extra_objective(void *ctx) {
  extra_case_t *c = ctx;
  const float *z = model_forward(c->m, NULL, c->x, MX_N, 1);
  double f = dot(c->dl, z, (size_t)MX_N * MX_C);

  if (c->dh)
    f += dot(c->dh, model_layer_output(c->m, c->k),
             (size_t)MX_N * model_layer_dim(c->m, c->k));
  return f;
}

/* The gradients of f that model_backward leaves against central
 * differences of f, over every parameter. */
static void extra_fd_check(extra_case_t *c, const char *what) {
  size_t total = model_param_count(c->m);
  float *g = xalloc(total);
  size_t at = 0;

  model_extra_grad_set(c->m, c->k, c->dh);
  model_forward(c->m, NULL, c->x, MX_N, 1);
  model_backward(c->m, NULL, c->dl);
  grads_copy(c->m, g);
  for (int p = 0; p < c->m->n_params; p++) {
    optim_param_t *par = c->m->params[p];
    for (size_t i = 0; i < par->n; i++, at++)
      check_close(g[at], gradcheck_fd(&par->value[i], extra_objective, c, 1e-3),
                  1e-2, 2e-4, what, at);
  }
  model_extra_grad_set(c->m, c->k, NULL);
  free(g);
}

static void test_model_extra_grad(void **state) {
  float x[MX_N * MX_IN], dl[MX_N * MX_C], dh[MX_N * 6];
  extra_case_t c = {small_model(1), x, dl, dh, 0};
  rng_t rng;

  (void)state;
  rng_init(&rng, 91, 0);
  fill_normal(&rng, x, MX_N * MX_IN, 1.0f);
  fill_normal(&rng, dl, MX_N * MX_C, 0.5f);
  for (c.k = 0; c.k < c.m->n_layers; c.k++) {
    assert_true(model_layer_dim(c.m, c.k) <= 6);
    fill_normal(&rng, dh, (size_t)MX_N * model_layer_dim(c.m, c.k), 0.5f);
    extra_fd_check(&c, "model param with extra");
  }
  c.dh = NULL;
  extra_fd_check(&c, "model param plain");
  model_free(c.m);
}

/* Largest |a - b| over n entries. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0.0;

  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

/* One forward and backward of c on team, the extra gradient c->dh at
 * layer c->k (NULL: none), parameter gradients into g. */
static void grads_with(const extra_case_t *c, team_t *team, float *g) {
  model_extra_grad_set(c->m, c->k, c->dh);
  model_forward(c->m, team, c->x, MX_N, 1);
  model_backward(c->m, team, c->dl);
  grads_copy(c->m, g);
}

/* Clearing the extra gradient gives back exactly the plain gradients. */
static void test_model_extra_grad_cleared(void **state) {
  float x[MX_N * MX_IN], dl[MX_N * MX_C], dh[MX_N * 6];
  extra_case_t plain = {small_model(1), x, dl, NULL, 0}, extra = plain;
  size_t total = model_param_count(plain.m);
  float *g0 = xalloc(total), *g1 = xalloc(total), *g2 = xalloc(total);
  rng_t rng;

  (void)state;
  rng_init(&rng, 92, 0);
  fill_normal(&rng, x, MX_N * MX_IN, 1.0f);
  fill_normal(&rng, dl, MX_N * MX_C, 0.5f);
  fill_normal(&rng, dh, MX_N * 6, 0.5f);
  extra.dh = dh;
  for (extra.k = 1; extra.k <= 4; extra.k += 3) {
    plain.k = extra.k;
    grads_with(&plain, NULL, g0);
    grads_with(&extra, NULL, g1);
    assert_true(max_abs_diff(g0, g1, total) > 1e-3);
    grads_with(&plain, NULL, g2);
    assert_memory_equal(g0, g2, total * sizeof(float));
  }
  model_free(plain.m);
  free(g0);
  free(g1);
  free(g2);
}

/* The same gradients, within float rounding, from one thread (c->m) and
 * from a team of two splitting the rows 3 / 2 (m2, the same weights). */
static void extra_team_compare(extra_case_t *c, model_t *m2, team_t *team) {
  extra_case_t c2 = *c;
  size_t total = model_param_count(c->m);
  float *g1 = xalloc(total), *g2 = xalloc(total);

  c2.m = m2;
  grads_with(c, NULL, g1);
  grads_with(&c2, team, g2);
  for (size_t i = 0; i < total; i++)
    check_close(g2[i], g1[i], 1e-5, 1e-6, "team grad", i);
  model_extra_grad_set(c->m, c->k, NULL);
  model_extra_grad_set(m2, c->k, NULL);
  free(g1);
  free(g2);
}

static void test_model_extra_grad_team(void **state) {
  float x[MX_N * MX_IN], dl[MX_N * MX_C], dh[MX_N * 6];
  extra_case_t c = {small_model(1), x, dl, dh, 0};
  model_t *m2 = small_model(2);
  team_t *team;
  rng_t rng;

  (void)state;
  assert_int_equal(team_new(2, &team), 0);
  for (int p = 0; p < c.m->n_params; p++)
    assert_memory_equal(c.m->params[p]->value, m2->params[p]->value,
                        c.m->params[p]->n * sizeof(float));
  rng_init(&rng, 94, 0);
  fill_normal(&rng, x, MX_N * MX_IN, 1.0f);
  for (c.k = 0; c.k < c.m->n_layers; c.k++) {
    fill_normal(&rng, dl, MX_N * MX_C, 0.5f);
    fill_normal(&rng, dh, MX_N * 6, 0.5f);
    extra_team_compare(&c, m2, team);
  }
  c.k = 1;
  c.dh = NULL;
  extra_team_compare(&c, m2, team);
  model_free(c.m);
  model_free(m2);
  team_free(team);
}

/* model_step with an extra gradient leaves the parameters that
 * model_backward and model_update leave with it, on a team of two. */
static void test_model_step_with_extra(void **state) {
  const optim_config_t cfg = {.kind = OPTIM_SGD,
                              .lr = 0.1,
                              .momentum = 0.9,
                              .weight_decay = 1e-3,
                              .batch_size = MX_N};
  model_t *a = small_model(2), *b = small_model(2);
  float x[MX_N * MX_IN], dl[MX_N * MX_C], dh[MX_N * 4];
  team_t *team;
  rng_t rng;

  (void)state;
  assert_int_equal(team_new(2, &team), 0);
  assert_int_equal(model_optim_prepare(a, &cfg), 0);
  assert_int_equal(model_optim_prepare(b, &cfg), 0);
  rng_init(&rng, 95, 0);
  fill_normal(&rng, x, MX_N * MX_IN, 1.0f);
  model_extra_grad_set(a, 2, dh);
  model_extra_grad_set(b, 2, dh);
  for (int s = 1; s <= 3; s++) {
    fill_normal(&rng, dl, MX_N * MX_C, 0.5f);
    fill_normal(&rng, dh, MX_N * 4, 0.5f);
    model_forward(a, team, x, MX_N, 1);
    model_backward(a, team, dl);
    model_update(a, team, &cfg, 0.1, s);
    model_forward(b, team, x, MX_N, 1);
    model_step(b, team, dl, &cfg, 0.1, s);
  }
  for (int p = 0; p < a->n_params; p++)
    assert_memory_equal(a->params[p]->value, b->params[p]->value,
                        a->params[p]->n * sizeof(float));
  model_free(a);
  model_free(b);
  team_free(team);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kd_weight_all),
      cmocka_unit_test(test_kd_weight_all_scales_kd_part),
      cmocka_unit_test(test_kd_temperature_scale),
      cmocka_unit_test(test_combine_two_teachers),
      cmocka_unit_test(test_combine_three_teachers),
      cmocka_unit_test(test_combine_one_teacher),
      cmocka_unit_test(test_combine_in_place),
      cmocka_unit_test(test_hint_value_and_gradient),
      cmocka_unit_test(test_hint_zero_at_match),
      cmocka_unit_test(test_model_extra_grad),
      cmocka_unit_test(test_model_extra_grad_cleared),
      cmocka_unit_test(test_model_extra_grad_team),
      cmocka_unit_test(test_model_step_with_extra),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
