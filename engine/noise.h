/* SPDX-License-Identifier: MIT */
/* Injected label noise, so a job knows which labels are wrong and can
 * measure how well the easy/hard split finds them. */
#ifndef SPK_ENGINE_NOISE_H
#define SPK_ENGINE_NOISE_H

#include <stdint.h>

/* Symmetric noise: exactly round(rate * n) of the n labels, chosen
 * uniformly with their own seed, each move to a uniformly drawn class other
 * than their own. labels (n) is changed in place; corrupted (n) gets 1 for
 * every changed label, 0 otherwise. classes >= 2, rate in [0, 1].
 * Returns how many labels were changed, or -1 when out of memory. */
int noise_symmetric_apply(uint8_t *labels, int n, int classes, double rate,
                          uint64_t seed, uint8_t *corrupted);

/* Pair noise: exactly round(rate * n) of the n labels, chosen uniformly
 * with their own seed, each move from class c to (c + 1) mod classes.
 * Same arguments, contract and return value as noise_symmetric_apply. */
int noise_pair_apply(uint8_t *labels, int n, int classes, double rate,
                     uint64_t seed, uint8_t *corrupted);

#endif
