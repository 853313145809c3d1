/* SPDX-License-Identifier: MIT */
/* The finite-difference derivative the gradient tests share. Included by
 * test files only. */
#ifndef SPK_TESTS_GRADCHECK_H
#define SPK_TESTS_GRADCHECK_H

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
