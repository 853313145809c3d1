/* SPDX-License-Identifier: MIT */
/* Self-paced selection: which samples count as easy, from their scores
 * (lower is easier), per observed class so that no class is starved. */
#ifndef SPK_ENGINE_SPL_H
#define SPK_ENGINE_SPL_H

#include <stdint.h>

/* The kept fraction at selection k of count (k from 0): start at the
 * first, growing linearly to end at the last; start when count is 1. */
double spl_pace_fraction(double start, double end, int k, int count);

/* Per observed class c with n_c samples, marks easy[i] = 1 for the
 * round(fraction * n_c) samples of lowest score (at least one when
 * n_c > 0), 0 for the rest. Ties go to the lower position. score, labels
 * and easy are (n). Returns the number kept, or -1 when memory runs out. */
int spl_select_per_class(const float *score, const uint8_t *labels, int n,
                         int classes, double fraction, uint8_t *easy);

#endif
