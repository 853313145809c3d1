/* SPDX-License-Identifier: MIT */
/* Symmetric and pair label noise. Both pick the corrupted positions by a
 * partial Fisher-Yates draw and differ only in the class they move to. */
#include "noise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* How one chosen label changes; may draw from rng. */
typedef uint8_t (*noise_move_fn)(uint8_t label, int classes, rng_t *rng);

/* Any class but its own, each with probability 1 / (classes - 1). */
static uint8_t move_symmetric(uint8_t label, int classes, rng_t *rng) {
  return (uint8_t)((label + 1 + rng_below(rng, (uint32_t)classes - 1)) %
                   classes);
}

static uint8_t move_pair(uint8_t label, int classes, rng_t *rng) {
  (void)rng;
  return (uint8_t)((label + 1) % classes);
}

/* Chooses round(rate * n) positions uniformly and moves their labels. */
static int noise_apply(uint8_t *labels, int n, int classes, double rate,
                       uint64_t seed, uint8_t *corrupted, noise_move_fn move) {
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
    labels[pos] = move(labels[pos], classes, &rng);
    corrupted[pos] = 1;
  }
  free(order);
  return k;
}

int noise_symmetric_apply(uint8_t *labels, int n, int classes, double rate,
                          uint64_t seed, uint8_t *corrupted) {
  return noise_apply(labels, n, classes, rate, seed, corrupted, move_symmetric);
}

int noise_pair_apply(uint8_t *labels, int n, int classes, double rate,
                     uint64_t seed, uint8_t *corrupted) {
  return noise_apply(labels, n, classes, rate, seed, corrupted, move_pair);
}
