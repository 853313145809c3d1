/* SPDX-License-Identifier: MIT */
/* What the numeric tests share: allocation that fails the test, random
 * fills, closeness checks and the finite-difference derivative. Included
 * by test files only, after <cmocka.h>. */
#ifndef SPK_TESTS_NUMCHECK_H
#define SPK_TESTS_NUMCHECK_H

#include <math.h>
#include <stdlib.h>

#include "../../engine/rng.h"

/* n zeroed floats (at least one); fails the test when memory runs out. */
static inline float *xalloc(size_t n) {
  float *p = calloc(n ? n : 1, sizeof(float));
  assert_non_null(p);
  return p;
}

static inline void fill_normal(rng_t *r, float *v, size_t n, float scale) {
  for (size_t i = 0; i < n; i++)
    v[i] = scale * rng_normal(r);
}

/* Fails the test unless got is within atol + rtol * max(|got|, |want|)
 * of want; names the quantity and its index. */
static inline void check_close(double got, double want, double rtol,
                               double atol, const char *what, size_t index) {
  double tol = atol + rtol * fmax(fabs(got), fabs(want));

  if (!(fabs(got - want) <= tol))
    fail_msg("%s[%zu]: got %.9g, want %.9g (tolerance %.3g)", what, index,
             got, want, tol);
}

typedef double (*gradcheck_objective_fn)(void *ctx);

/* Central difference of f at *v with step eps, dividing by the step the
 * float actually took so that rounding of v +- eps does not bias the
 * quotient. *v is restored. */
static inline double gradcheck_fd(float *v, gradcheck_objective_fn f,
                                  void *ctx, double eps) {
  float save = *v;
  double hp, hm, fp, fm;

  *v = (float)(save + eps);
  hp = *v;
  fp = f(ctx);
  *v = (float)(save - eps);
  hm = *v;
  fm = f(ctx);
  *v = save;
  return (fp - fm) / (hp - hm);
}

#endif
