/* SPDX-License-Identifier: MIT */
/* A small seeded random generator (xoshiro256** seeded by splitmix64).
 * Every random choice in the engine draws from an rng_t the caller owns,
 * so the same seed always gives the same numbers. */
#ifndef SPK_ENGINE_RNG_H
#define SPK_ENGINE_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];
} rng_t;

/* Seeds r from a 64-bit seed and a stream number, so that one job seed
 * can feed independent generators (initialisation, shuffling, noise). */
void rng_init(rng_t *r, uint64_t seed, uint64_t stream);

uint64_t rng_next(rng_t *r);

/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t rng_below(rng_t *r, uint32_t n);

/* Uniform float in [0, 1). */
float rng_uniform(rng_t *r);

/* Standard normal (Box-Muller). */
float rng_normal(rng_t *r);

/* Fisher-Yates shuffle of n int32 values. */
void rng_shuffle(rng_t *r, int32_t *v, int n);

#endif
