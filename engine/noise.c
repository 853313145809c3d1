/* SPDX-License-Identifier: MIT */
/* Symmetric label noise by a partial Fisher-Yates draw of the positions. */
#include "noise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int noise_symmetric_apply(uint8_t *labels, int n, int classes, double rate,
                          uint64_t seed, uint8_t *corrupted) {
  int k = (int)llround(rate * n);
  int32_t *order;
  rng_t rng;

  memset(corrupted, 0, (size_t)n);
  if (k <= 0 || classes < 2)
    return 0;
  if (k > n)
    k = n;
  order = malloc(sizeof(int32_t) * (size_t)n);
  if (!order)
    return -1;
  for (int i = 0; i < n; i++)
    order[i] = i;

  rng_init(&rng, seed, 0x6e6f697365ULL);
  for (int i = 0; i < k; i++) {
    int j = i + (int)rng_below(&rng, (uint32_t)(n - i));
    int32_t t = order[i], pos;
    order[i] = order[j];
    order[j] = t;
    pos = order[i];

    /* Any class but its own, each with probability 1 / (classes - 1). */
    labels[pos] = (uint8_t)((labels[pos] + 1 +
                             rng_below(&rng, (uint32_t)classes - 1)) %
                            classes);
    corrupted[pos] = 1;
  }
  free(order);
  return k;
}
