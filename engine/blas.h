/* SPDX-License-Identifier: MIT */
/* What the engine knows of the BLAS it runs on: its name, the kernel
 * OpenBLAS picked, the kernel this processor deserves, and a check that a
 * kernel computes sgemm correctly. Choosing a kernel means setting
 * OPENBLAS_CORETYPE before OpenBLAS loads, which only a program's main can
 * do (by re-executing itself); the engine only answers questions. */
#ifndef SPK_ENGINE_BLAS_H
#define SPK_ENGINE_BLAS_H

#include <stddef.h>

/* Writes the library's configuration string, e.g. "OpenBLAS 0.3.21 ...". */
void blas_config(char *buf, size_t len);

/* Writes the kernel OpenBLAS runs, e.g. "Haswell" or "SkylakeX". */
void blas_corename(char *buf, size_t len);

/* Sets the threads OpenBLAS uses. The setting is process-wide; the engine
 * keeps it at 1 and brings its own threads (engine/team.h). */
void blas_threads_set(int n);

/* The OpenBLAS kernel for this processor from what it supports:
 * "SkylakeX" with AVX-512 (F, CD, BW, DQ, VL), "Haswell" with AVX2 and
 * FMA, NULL when neither. */
const char *blas_kernel_for_cpu(void);

/* 1 when core is one of OpenBLAS's kernels for x86 processors older than
 * AVX2 (Prescott, Core2, Nehalem, Sandybridge, ...): the fallbacks it
 * takes on a processor it does not recognise. */
int blas_core_is_generic(const char *core);

/* An sgemm to check: C (m, n) = A (m, k) B (k, n), row-major. */
typedef void (*blas_sgemm_fn)(int m, int n, int k, const float *a,
                              const float *b, float *c);

/* The sgemm of the loaded OpenBLAS, in blas_sgemm_fn form. */
void blas_sgemm_plain(int m, int n, int k, const float *a, const float *b,
                      float *c);

/* Runs fn on a few small random problems (odd sizes included) and compares
 * with a double-precision reference. Returns 0 when every value agrees
 * within 1e-4 relative, -EIO with err naming the worst value otherwise,
 * -ENOMEM. */
int blas_check(blas_sgemm_fn fn, char *err, size_t errlen);

#endif
