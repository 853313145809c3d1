/* SPDX-License-Identifier: MIT */
/* Optimizer tests: SGD (momentum, Nesterov), Adam and AdamW over two
 * steps against values worked out by hand in the comments, split updates
 * against whole ones, and every learning-rate schedule at chosen points. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/optim.h"
#include "../../engine/rng.h"

/* Fails unless |got - want| <= tol * max(1, |want|). */
static void check_near(double got, double want, double tol, const char *what,
                       int index) {
  double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;

  if (!(fabs(got - want) <= tol * scale))
    fail_msg("%s[%d]: got %.9g, want %.9g", what, index, got, want);
}

/* The settings every update test starts from: base lr 0.1 (the tests pass
 * the rate explicitly), weight decay lambda, momentum 0.9 for SGD, and for
 * Adam beta1 0.5 and beta2 0.75, chosen so that the bias-corrected moments
 * come out as small fractions. */
static optim_config_t config(int kind, double lambda) {
  optim_config_t c = {.kind = kind,
                      .lr = 0.1,
                      .momentum = 0.9,
                      .weight_decay = lambda,
                      .batch_size = 1,
                      .schedule = OPTIM_SCHEDULE_CONSTANT,
                      .beta1 = 0.5,
                      .beta2 = 0.75,
                      .eps = 1e-8};
  return c;
}

static optim_param_t tensor(float *w, float *g, float *v, float *m2, size_t n,
                            int decay) {
  optim_param_t p = {
      .value = w, .grad = g, .velocity = v, .n = n, .m2 = m2, .decay = decay};
  return p;
}

/* SGD. */

/* lr 0.1, mu 0.9, lambda 0.1; a weight tensor w = (1, -2) and a bias
 * b = 0.5. Step 1, gradients (0.5, 0) and 1:
 *   w: g' = 0.5 + 0.1 = 0.6, v = 0.6, w = 1 - 0.06 = 0.94;
 *      g' = 0 - 0.2 = -0.2, v = -0.2, w = -2 + 0.02 = -1.98.
 * Step 2, gradients (-0.2, 1) and 0.5:
 *   w: g' = -0.2 + 0.094 = -0.106, v = 0.54 - 0.106 = 0.434,
 *      w = 0.94 - 0.0434 = 0.8966;
 *      g' = 1 - 0.198 = 0.802, v = -0.18 + 0.802 = 0.622,
 *      w = -1.98 - 0.0622 = -2.0422.
 * The bias without decay: v = 1, b = 0.4; v = 0.9 + 0.5 = 1.4, b = 0.26.
 * The bias with decay_bias: g' = 1.05, v = 1.05, b = 0.395;
 *   g' = 0.5 + 0.0395 = 0.5395, v = 0.945 + 0.5395 = 1.4845,
 *   b = 0.395 - 0.14845 = 0.24655. */
static void sgd_two_steps(int decay_bias, const float want_b[2],
                          const float want_vb[2]) {
  float w[2] = {1.0f, -2.0f}, gw[2] = {0.5f, 0.0f}, vw[2] = {0};
  float b[1] = {0.5f}, gb[1] = {1.0f}, vb[1] = {0};
  optim_param_t p[2] = {tensor(w, gw, vw, NULL, 2, 1),
                        tensor(b, gb, vb, NULL, 1, 0)};
  optim_config_t c = config(OPTIM_SGD, 0.1);

  c.decay_bias = decay_bias;
  optim_update(&c, 0.1, 1, p, 2);
  check_near(vw[0], 0.6, 1e-6, "v", 0);
  check_near(w[0], 0.94, 1e-6, "w", 0);
  check_near(vw[1], -0.2, 1e-6, "v", 1);
  check_near(w[1], -1.98, 1e-6, "w", 1);
  check_near(vb[0], want_vb[0], 1e-6, "vb", 0);
  check_near(b[0], want_b[0], 1e-6, "b", 0);
  assert_true(gw[0] == 0.5f && gw[1] == 0.0f && gb[0] == 1.0f);

  gw[0] = -0.2f;
  gw[1] = 1.0f;
  gb[0] = 0.5f;
  optim_update(&c, 0.1, 2, p, 2);
  check_near(vw[0], 0.434, 1e-6, "v", 0);
  check_near(w[0], 0.8966, 1e-6, "w", 0);
  check_near(vw[1], 0.622, 1e-6, "v", 1);
  check_near(w[1], -2.0422, 1e-6, "w", 1);
  check_near(vb[0], want_vb[1], 1e-6, "vb", 1);
  check_near(b[0], want_b[1], 1e-6, "b", 1);
}

static void test_sgd_bias_spared(void **state) {
  const float b[2] = {0.4f, 0.26f}, vb[2] = {1.0f, 1.4f};

  (void)state;
  sgd_two_steps(0, b, vb);
}

static void test_sgd_decay_bias(void **state) {
  const float b[2] = {0.395f, 0.24655f}, vb[2] = {1.05f, 1.4845f};

  (void)state;
  sgd_two_steps(1, b, vb);
}

/* Nesterov, same settings and gradients as sgd_two_steps, biases spared:
 * w -= lr * (g' + mu * v) with v already updated.
 * Step 1: g' = 0.6, v = 0.6, w = 1 - 0.1 * (0.6 + 0.54) = 0.886;
 *         g' = -0.2, v = -0.2, w = -2 - 0.1 * (-0.2 - 0.18) = -1.962;
 *         bias g' = 1, v = 1, b = 0.5 - 0.1 * 1.9 = 0.31.
 * Step 2: g' = -0.2 + 0.0886 = -0.1114, v = 0.54 - 0.1114 = 0.4286,
 *         w = 0.886 - 0.1 * (-0.1114 + 0.38574) = 0.858566;
 *         g' = 1 - 0.1962 = 0.8038, v = -0.18 + 0.8038 = 0.6238,
 *         w = -1.962 - 0.1 * (0.8038 + 0.56142) = -2.098522;
 *         bias g' = 0.5, v = 1.4, b = 0.31 - 0.1 * (0.5 + 1.26) = 0.134. */
static void test_sgd_nesterov(void **state) {
  float w[2] = {1.0f, -2.0f}, gw[2] = {0.5f, 0.0f}, vw[2] = {0};
  float b[1] = {0.5f}, gb[1] = {1.0f}, vb[1] = {0};
  optim_param_t p[2] = {tensor(w, gw, vw, NULL, 2, 1),
                        tensor(b, gb, vb, NULL, 1, 0)};
  optim_config_t c = config(OPTIM_SGD, 0.1);

  (void)state;
  c.nesterov = 1;
  optim_update(&c, 0.1, 1, p, 2);
  check_near(vw[0], 0.6, 1e-6, "v", 0);
  check_near(w[0], 0.886, 1e-6, "w", 0);
  check_near(w[1], -1.962, 1e-6, "w", 1);
  check_near(b[0], 0.31, 1e-6, "b", 0);

  gw[0] = -0.2f;
  gw[1] = 1.0f;
  gb[0] = 0.5f;
  optim_update(&c, 0.1, 2, p, 2);
  check_near(vw[0], 0.4286, 1e-6, "v", 0);
  check_near(w[0], 0.858566, 1e-6, "w", 0);
  check_near(vw[1], 0.6238, 1e-6, "v", 1);
  check_near(w[1], -2.098522, 1e-6, "w", 1);
  check_near(vb[0], 1.4, 1e-6, "vb", 0);
  check_near(b[0], 0.134, 1e-6, "b", 0);
}

/* Adam and AdamW. With beta1 = 0.5 and beta2 = 0.75, an element whose g'
 * is a at step 1 and b at step 2 has
 *   step 1: m = a/2, v2 = a^2/4, mhat = a, v2hat = a^2: moves by lr;
 *   step 2: m = a/4 + b/2, mhat = m / 0.75 = (a + 2b) / 3,
 *           v2 = 3a^2/16 + b^2/4, v2hat = v2 / 0.4375 = (3a^2 + 4b^2) / 7;
 * so b = -a gives mhat = -a/3 and v2hat = a^2: a move of lr/3 back. */

/* Adam with L2 in the gradient, lr 0.1, lambda 0.5, biases spared.
 * Weights (2, 0, 0), gradients (0, 4, 0) then (-1.95, -3.95, 0):
 *   w0: g' = 0 + 0.5 * 2 = 1, w = 1.9; g' = -1.95 + 0.95 = -1, so
 *       w = 1.9 + 0.1 / 3 = 1.933333; m = 0.5 then -0.25,
 *       v2 = 0.25 then 0.4375.
 *   w1: g' = 4, w = -0.1; g' = -3.95 - 0.05 = -4, w = -0.1 + 0.1 / 3 =
 *       -0.0666667; v2 = 4 then 7.
 *   w2: g' = 0 twice: eps keeps 0 / 0 away, w stays 0.
 * Bias 2, gradients 1 then -1, no decay: 1.9, then 1.933333. */
static void test_adam_l2(void **state) {
  float w[3] = {2.0f, 0.0f, 0.0f}, gw[3] = {0.0f, 4.0f, 0.0f};
  float mw[3] = {0}, vw[3] = {0};
  float b[1] = {2.0f}, gb[1] = {1.0f}, mb[1] = {0}, vb[1] = {0};
  optim_param_t p[2] = {tensor(w, gw, mw, vw, 3, 1),
                        tensor(b, gb, mb, vb, 1, 0)};
  optim_config_t c = config(OPTIM_ADAM, 0.5);

  (void)state;
  optim_update(&c, 0.1, 1, p, 2);
  check_near(w[0], 1.9, 1e-6, "w", 0);
  check_near(mw[0], 0.5, 1e-6, "m", 0);
  check_near(vw[0], 0.25, 1e-6, "v2", 0);
  check_near(w[1], -0.1, 1e-6, "w", 1);
  check_near(vw[1], 4.0, 1e-6, "v2", 1);
  assert_true(w[2] == 0.0f);
  check_near(b[0], 1.9, 1e-6, "b", 0);

  gw[0] = -1.95f;
  gw[1] = -3.95f;
  gb[0] = -1.0f;
  optim_update(&c, 0.1, 2, p, 2);
  check_near(mw[0], -0.25, 1e-6, "m", 0);
  check_near(vw[0], 0.4375, 1e-6, "v2", 0);
  check_near(w[0], 1.9333333, 1e-6, "w", 0);
  check_near(vw[1], 7.0, 1e-6, "v2", 1);
  check_near(w[1], -0.0666667, 1e-6, "w", 1);
  assert_true(w[2] == 0.0f && mw[2] == 0.0f && vw[2] == 0.0f);
  check_near(b[0], 1.9333333, 1e-6, "b", 0);
}

/* AdamW, lr 0.1, lambda 0.5: the moments see the bare gradient and the
 * weight decays by lr * lambda * w apart.
 * Weights (2, 0), gradients (1, 4) then (-1, -4):
 *   w0: 2 - 0.1 - 0.1 * 0.5 * 2 = 1.8; m = 0.5 (Adam with L2 would see
 *       g' = 2: m = 1, w = 1.9);
 *       1.8 + 0.1 / 3 - 0.05 * 1.8 = 1.743333.
 *   w1: 0 - 0.1 - 0 = -0.1; -0.1 + 0.1 / 3 + 0.005 = -0.0616667.
 * Bias 2, gradients 1 then -1, no decay: 1.9, then 1.933333. */
static void test_adamw_decoupled(void **state) {
  float w[2] = {2.0f, 0.0f}, gw[2] = {1.0f, 4.0f}, mw[2] = {0}, vw[2] = {0};
  float b[1] = {2.0f}, gb[1] = {1.0f}, mb[1] = {0}, vb[1] = {0};
  optim_param_t p[2] = {tensor(w, gw, mw, vw, 2, 1),
                        tensor(b, gb, mb, vb, 1, 0)};
  optim_config_t c = config(OPTIM_ADAMW, 0.5);

  (void)state;
  optim_update(&c, 0.1, 1, p, 2);
  check_near(w[0], 1.8, 1e-6, "w", 0);
  check_near(mw[0], 0.5, 1e-6, "m", 0);
  check_near(w[1], -0.1, 1e-6, "w", 1);
  check_near(b[0], 1.9, 1e-6, "b", 0);

  gw[0] = -1.0f;
  gw[1] = -4.0f;
  gb[0] = -1.0f;
  optim_update(&c, 0.1, 2, p, 2);
  check_near(w[0], 1.7433333, 1e-6, "w", 0);
  check_near(w[1], -0.0616667, 1e-6, "w", 1);
  check_near(vw[1], 7.0, 1e-6, "v2", 1);
  check_near(b[0], 1.9333333, 1e-6, "b", 0);
}

/* The same first step, w = 2 and g = 1 with lambda 0.5, under Adam + L2
 * and AdamW: g' = 2 gives m = 1 and w = 1.9 for Adam; AdamW keeps m = 0.5
 * and decays apart to w = 1.8. */
static void test_adam_and_adamw_differ(void **state) {
  float w[1] = {2.0f}, g[1] = {1.0f}, m[1] = {0}, v2[1] = {0};
  optim_param_t p = tensor(w, g, m, v2, 1, 1);
  optim_config_t c = config(OPTIM_ADAM, 0.5);

  (void)state;
  optim_update(&c, 0.1, 1, &p, 1);
  check_near(m[0], 1.0, 1e-6, "adam m", 0);
  check_near(w[0], 1.9, 1e-6, "adam w", 0);

  w[0] = 2.0f;
  m[0] = v2[0] = 0.0f;
  c.kind = OPTIM_ADAMW;
  optim_update(&c, 0.1, 1, &p, 1);
  check_near(m[0], 0.5, 1e-6, "adamw m", 0);
  check_near(w[0], 1.8, 1e-6, "adamw w", 0);
}

/* decay_bias with Adam and AdamW, one step on a bias 2 with gradient 0
 * (Adam) or 1 (AdamW), lr 0.1, lambda 0.5:
 *   Adam: spared, g' = 0 and b stays 2; decayed, g' = 1 and b = 1.9.
 *   AdamW: spared, b = 1.9; decayed, b = 1.9 - 0.1 = 1.8. */
static void test_adam_decay_bias(void **state) {
  const int kinds[2] = {OPTIM_ADAM, OPTIM_ADAMW};
  const float grad[2] = {0.0f, 1.0f};
  const double want[2][2] = {{2.0, 1.9}, {1.9, 1.8}};

  (void)state;
  for (int k = 0; k < 2; k++) {
    for (int decay_bias = 0; decay_bias <= 1; decay_bias++) {
      float b[1] = {2.0f}, g[1] = {grad[k]}, m[1] = {0}, v2[1] = {0};
      optim_param_t p = tensor(b, g, m, v2, 1, 0);
      optim_config_t c = config(kinds[k], 0.5);

      c.decay_bias = decay_bias;
      optim_update(&c, 0.1, 1, &p, 1);
      check_near(b[0], want[k][decay_bias], 1e-6, "b", k * 2 + decay_bias);
    }
  }
}

/* With the usual betas the first Adam step moves every element with a
 * gradient by lr against its sign, whatever the gradient's size: the bias
 * correction undoes the moments' start at zero. */
static void test_adam_first_step_is_lr(void **state) {
  float w[4] = {0}, g[4] = {1e-2f, -2.0f, 50.0f, -0.25f}, m[4] = {0},
        v2[4] = {0};
  optim_param_t p = tensor(w, g, m, v2, 4, 1);
  optim_config_t c = config(OPTIM_ADAM, 0.0);

  (void)state;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  optim_update(&c, 0.01, 1, &p, 1);
  for (int i = 0; i < 4; i++)
    check_near(w[i], g[i] > 0 ? -0.01 : 0.01, 1e-7, "w", i);
}

/* Preparing: SGD needs no second moment; Adam gets a zeroed one, once. */
static void test_param_prepare(void **state) {
  float w[5] = {0}, g[5] = {0}, v[5] = {0};
  optim_param_t p = tensor(w, g, v, NULL, 5, 1);
  optim_config_t c = config(OPTIM_SGD, 0.0);
  float *m2;

  (void)state;
  assert_int_equal(optim_param_prepare(&c, &p), 0);
  assert_null(p.m2);
  c.kind = OPTIM_ADAMW;
  assert_int_equal(optim_param_prepare(&c, &p), 0);
  assert_non_null(p.m2);
  for (int i = 0; i < 5; i++)
    assert_true(p.m2[i] == 0.0f);
  m2 = p.m2;
  c.kind = OPTIM_ADAM;
  assert_int_equal(optim_param_prepare(&c, &p), 0);
  assert_ptr_equal(p.m2, m2);
  free(p.m2);
}

/* Split updates. */

#define SPLIT_N 1001

typedef struct {
  float w[SPLIT_N], g[SPLIT_N], v[SPLIT_N], m2[SPLIT_N];
  float w0[SPLIT_N]; /* the values before the updates */
  optim_param_t p;
} split_tensor_t;

static void split_fill(split_tensor_t *t, rng_t *rng) {
  for (int i = 0; i < SPLIT_N; i++) {
    t->w[i] = rng_normal(rng);
    t->v[i] = 0.1f * rng_normal(rng);
    t->m2[i] = 0.01f * rng_uniform(rng);
    t->w0[i] = t->w[i];
  }
  t->p = tensor(t->w, t->g, t->v, t->m2, SPLIT_N, 1);
}

/* Three steps of cfg on two equal tensors, one updated whole, the other
 * in ranges that do not fall on block boundaries (an empty one included):
 * the bits must agree. */
static void check_split(const optim_config_t *cfg, uint64_t seed) {
  static const size_t cut[] = {0, 1, 130, 130, 700, SPLIT_N};
  split_tensor_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  rng_t rng;

  assert_non_null(a);
  assert_non_null(b);
  rng_init(&rng, seed, 0);
  split_fill(a, &rng);
  *b = *a;
  b->p = tensor(b->w, b->g, b->v, b->m2, SPLIT_N, 1);
  for (long step = 1; step <= 3; step++) {
    for (int i = 0; i < SPLIT_N; i++)
      a->g[i] = b->g[i] = rng_normal(&rng);
    optim_update(cfg, 0.05, step, &a->p, 1);
    for (size_t k = 0; k + 1 < sizeof cut / sizeof cut[0]; k++)
      optim_update_range(cfg, 0.05, step, &b->p, cut[k], cut[k + 1]);
  }
  assert_memory_equal(a->w, b->w, sizeof a->w);
  assert_memory_equal(a->v, b->v, sizeof a->v);
  assert_memory_equal(a->m2, b->m2, sizeof a->m2);
  for (int i = 0; i < SPLIT_N; i++)
    assert_true(a->w[i] != a->w0[i]);
  free(a);
  free(b);
}

static void test_update_range_split(void **state) {
  optim_config_t c = config(OPTIM_SGD, 1e-3);

  (void)state;
  check_split(&c, 1);
  c.nesterov = 1;
  check_split(&c, 2);
  c = config(OPTIM_ADAM, 1e-3);
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  check_split(&c, 3);
  c.kind = OPTIM_ADAMW;
  check_split(&c, 4);
}

/* Schedules. */

static optim_config_t sched(int schedule, double lr, double warmup) {
  optim_config_t c = config(OPTIM_SGD, 0.0);

  c.schedule = schedule;
  c.lr = lr;
  c.warmup_epochs = warmup;
  return c;
}

static void test_schedule_constant(void **state) {
  optim_config_t c = sched(OPTIM_SCHEDULE_CONSTANT, 0.2, 0.0);
  const double at[] = {0.0, 0.001, 3.7, 9.99, 10.0};

  (void)state;
  for (int i = 0; i < 5; i++)
    assert_true(optim_lr_at(&c, at[i], 10) == 0.2);
}

/* lr 0.2 over 10 epochs: (1 + cos(pi t)) / 2 is 1 at t = 0, 1/2 at
 * t = 1/2, (1 + sqrt(1/2)) / 2 at t = 1/4, 0 at t = 1 and after. */
static void test_schedule_cosine(void **state) {
  optim_config_t c = sched(OPTIM_SCHEDULE_COSINE, 0.2, 0.0);

  (void)state;
  check_near(optim_lr_at(&c, 0.0, 10), 0.2, 1e-12, "cos", 0);
  check_near(optim_lr_at(&c, 5.0, 10), 0.1, 1e-12, "cos", 1);
  check_near(optim_lr_at(&c, 2.5, 10), 0.1 * (1.0 + sqrt(0.5)), 1e-12, "cos",
             2);
  check_near(optim_lr_at(&c, 10.0, 10), 0.0, 1e-15, "cos", 3);
  check_near(optim_lr_at(&c, 12.0, 10), 0.0, 1e-15, "cos", 4);
  for (int i = 1; i <= 100; i++)
    assert_true(optim_lr_at(&c, 0.1 * i, 10) <
                optim_lr_at(&c, 0.1 * (i - 1), 10));
}

/* lr 0.1, gamma 0.5 every 3 epochs: 0.1 on [0, 3), 0.05 on [3, 6),
 * 0.025 on [6, 9), 0.0125 from 9. */
static void test_schedule_step(void **state) {
  optim_config_t c = sched(OPTIM_SCHEDULE_STEP, 0.1, 0.0);
  const double at[] = {0.0, 2.999, 3.0, 5.5, 6.0, 8.75, 9.0, 9.9};
  const double want[] = {0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125};

  (void)state;
  c.gamma = 0.5;
  c.step_epochs = 3;
  for (int i = 0; i < 8; i++)
    check_near(optim_lr_at(&c, at[i], 10), want[i], 1e-15, "step", i);
  assert_true(optim_lr_at(&c, -0.5, 10) == 0.1);
  c.step_epochs = 0;
  assert_true(optim_lr_at(&c, 7.0, 10) == 0.1);
}

/* Two warm-up epochs, then lr 0.2 on a cosine over epochs 2 to 10: the
 * ramp gives 0, 0.05, 0.1 and 0.2 at 0, 0.5, 1 and 2; the cosine gives
 * 0.2 * (1 + sqrt(1/2)) / 2 at 4 (a quarter of its 8 epochs), 0.1 at 6
 * and 0 at 10. */
static void test_schedule_warmup_cosine(void **state) {
  optim_config_t c = sched(OPTIM_SCHEDULE_COSINE, 0.2, 2.0);
  const double at[] = {0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 10.0};
  const double want[] = {0.0, 0.05, 0.1, 0.2, 0.1 * (1.0 + sqrt(0.5)),
                         0.1, 0.0};

  (void)state;
  for (int i = 0; i < 7; i++)
    check_near(optim_lr_at(&c, at[i], 10), want[i], 1e-12, "warm cos", i);
  assert_true(optim_lr_at(&c, 1.999, 10) < optim_lr_at(&c, 2.0, 10));
  assert_true(optim_lr_at(&c, 2.001, 10) < optim_lr_at(&c, 2.0, 10));
}

/* A warm-up ramps to where the schedule stands at its end: half an epoch
 * before a step schedule (lr 0.1, gamma 0.5 every 3 epochs) gives 0.05 at
 * 0.25 and then follows the steps; four epochs before it ramp towards
 * the 0.05 of epoch 4, 0.025 at 2; one epoch before lr 0.2 constant gives
 * 0.05 at 0.25; four epochs on a 2-epoch cosine never reach the cosine
 * and ramp towards 0.2, 0.05 at 1. */
static void test_schedule_warmup_others(void **state) {
  optim_config_t c = sched(OPTIM_SCHEDULE_STEP, 0.1, 0.5);

  (void)state;
  c.gamma = 0.5;
  c.step_epochs = 3;
  check_near(optim_lr_at(&c, 0.25, 10), 0.05, 1e-15, "warm step", 0);
  check_near(optim_lr_at(&c, 0.5, 10), 0.1, 1e-15, "warm step", 1);
  check_near(optim_lr_at(&c, 3.0, 10), 0.05, 1e-15, "warm step", 2);
  c.warmup_epochs = 4.0;
  check_near(optim_lr_at(&c, 2.0, 10), 0.025, 1e-15, "warm step", 3);
  check_near(optim_lr_at(&c, 4.0, 10), 0.05, 1e-15, "warm step", 4);

  c = sched(OPTIM_SCHEDULE_CONSTANT, 0.2, 1.0);
  check_near(optim_lr_at(&c, 0.25, 10), 0.05, 1e-15, "warm const", 0);
  check_near(optim_lr_at(&c, 1.0, 10), 0.2, 1e-15, "warm const", 1);

  c = sched(OPTIM_SCHEDULE_COSINE, 0.2, 4.0);
  check_near(optim_lr_at(&c, 1.0, 2), 0.05, 1e-15, "long warm", 0);
  check_near(optim_lr_at(&c, 2.0, 2), 0.1, 1e-15, "long warm", 1);
}

/* No schedule, warm-up or not, gives a negative rate: not before the
 * start, not after the end, not with a negative gamma or lr. */
static void test_schedule_never_negative(void **state) {
  const int kinds[3] = {OPTIM_SCHEDULE_CONSTANT, OPTIM_SCHEDULE_COSINE,
                        OPTIM_SCHEDULE_STEP};
  optim_config_t c;

  (void)state;
  for (int k = 0; k < 3; k++) {
    for (int w = 0; w <= 2; w++) {
      c = sched(kinds[k], 0.2, 1.5 * w);
      c.gamma = 0.1;
      c.step_epochs = 2;
      for (int i = -100; i <= 1300; i++)
        assert_true(optim_lr_at(&c, 0.01 * i, 10) >= 0.0);
    }
  }
  c = sched(OPTIM_SCHEDULE_COSINE, 0.2, 2.0);
  assert_true(optim_lr_at(&c, -0.5, 10) == 0.0);
  c = sched(OPTIM_SCHEDULE_STEP, 0.2, 0.0);
  c.gamma = -0.5;
  c.step_epochs = 1;
  assert_true(optim_lr_at(&c, 0.5, 10) == 0.2);
  assert_true(optim_lr_at(&c, 1.5, 10) == 0.0);
  c = sched(OPTIM_SCHEDULE_CONSTANT, -0.1, 0.0);
  assert_true(optim_lr_at(&c, 1.0, 10) == 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd_bias_spared),
      cmocka_unit_test(test_sgd_decay_bias),
      cmocka_unit_test(test_sgd_nesterov),
      cmocka_unit_test(test_adam_l2),
      cmocka_unit_test(test_adamw_decoupled),
      cmocka_unit_test(test_adam_and_adamw_differ),
      cmocka_unit_test(test_adam_decay_bias),
      cmocka_unit_test(test_adam_first_step_is_lr),
      cmocka_unit_test(test_param_prepare),
      cmocka_unit_test(test_update_range_split),
      cmocka_unit_test(test_schedule_constant),
      cmocka_unit_test(test_schedule_cosine),
      cmocka_unit_test(test_schedule_step),
      cmocka_unit_test(test_schedule_warmup_cosine),
      cmocka_unit_test(test_schedule_warmup_others),
      cmocka_unit_test(test_schedule_never_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
