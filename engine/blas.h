/* SPDX-License-Identifier: MIT */
/* What the engine knows of the BLAS it runs on: its name, the kernel
 * OpenBLAS picked for this processor, and its thread count. */
#ifndef SPK_ENGINE_BLAS_H
#define SPK_ENGINE_BLAS_H

#include <stddef.h>

/* Writes the library's configuration string, e.g. "OpenBLAS 0.3.21 ...". */
void blas_config(char *buf, size_t len);

/* Writes the kernel OpenBLAS runs, e.g. "Haswell" or "SkylakeX". */
void blas_corename(char *buf, size_t len);

/* Sets the threads OpenBLAS uses. The setting is process-wide. */
void blas_threads_set(int n);

#endif
