/* SPDX-License-Identifier: MIT */
/* OpenBLAS introspection, the processor's features (GCC's CPU builtins),
 * and the sgemm check against a naive double-precision reference. */
#include "blas.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

void blas_config(char *buf, size_t len) {
  snprintf(buf, len, "%s", openblas_get_config());
}

void blas_corename(char *buf, size_t len) {
  snprintf(buf, len, "%s", openblas_get_corename());
}

void blas_threads_set(int n) {
  openblas_set_num_threads(n);
}

const char *blas_kernel_for_cpu(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
#endif
  return NULL;
}

int blas_core_is_generic(const char *core) {
  static const char *const older[] = {
      "Katmai",   "Coppermine", "Northwood", "Prescott", "Banias",
      "Yonah",    "Core2",      "Penryn",    "Dunnington", "Nehalem",
      "Atom",     "Athlon",     "Opteron",   "Opteron_SSE3", "Barcelona",
      "Nano",     "Sandybridge", "Bobcat",   "Bulldozer", "Piledriver",
      "Steamroller", "Excavator", "Unknown", NULL};

  for (int i = 0; older[i]; i++)
    if (strcasecmp(core, older[i]) == 0)
      return 1;
  return 0;
}

void blas_sgemm_plain(int m, int n, int k, const float *a, const float *b,
                      float *c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k,
              b, n, 0.0f, c, n);
}

/* Compares fn with the reference on one (m, n, k) problem. */
static int check_one(blas_sgemm_fn fn, int m, int n, int k, rng_t *rng,
                     char *err, size_t errlen) {
  float *a = malloc(sizeof(float) * (size_t)m * k);
  float *b = malloc(sizeof(float) * (size_t)k * n);
  float *c = malloc(sizeof(float) * (size_t)m * n);
  int rc = 0;

  if (!a || !b || !c) {
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory checking sgemm");
    goto out;
  }
  for (int i = 0; i < m * k; i++)
    a[i] = rng_uniform(rng) - 0.5f;
  for (int i = 0; i < k * n; i++)
    b[i] = rng_uniform(rng) - 0.5f;
  fn(m, n, k, a, b, c);
  for (int i = 0; i < m && rc == 0; i++)
    for (int j = 0; j < n && rc == 0; j++) {
      double s = 0.0, scale = 0.0;
      for (int p = 0; p < k; p++) {
        s += (double)a[i * k + p] * b[p * n + j];
        scale += fabs((double)a[i * k + p] * b[p * n + j]);
      }
      if (!(fabs(c[i * n + j] - s) <= 1e-4 * scale + 1e-6)) {
        snprintf(err, errlen, "sgemm %dx%dx%d gives %g at (%d, %d), the "
                 "reference %g", m, n, k, c[i * n + j], i, j, s);
        rc = -EIO;
      }
    }
out:
  free(a);
  free(b);
  free(c);
  return rc;
}

int blas_check(blas_sgemm_fn fn, char *err, size_t errlen) {
  static const int sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {64, 64, 64},
                                 {33, 97, 130}, {128, 10, 256}};
  rng_t rng;
  int rc = 0;

  rng_init(&rng, 12345, 1);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && rc == 0; i++)
    rc = check_one(fn, sizes[i][0], sizes[i][1], sizes[i][2], &rng, err,
                   errlen);
  return rc;
}
