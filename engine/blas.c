/* SPDX-License-Identifier: MIT */
/* Thin wrappers over OpenBLAS's own introspection calls. */
#include "blas.h"

#include <cblas.h>
#include <stdio.h>

void blas_config(char *buf, size_t len) {
  snprintf(buf, len, "%s", openblas_get_config());
}

void blas_corename(char *buf, size_t len) {
  snprintf(buf, len, "%s", openblas_get_corename());
}

void blas_threads_set(int n) {
  openblas_set_num_threads(n);
}
