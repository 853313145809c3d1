/* SPDX-License-Identifier: MIT */
/* Unit tests of pair label noise: how many labels change, where each goes,
 * that the same seed repeats itself, and that positions are drawn without
 * favourites. Symmetric noise is tested in test_engine.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../engine/noise.h"

enum { N = 1000, C = 7 };

/* Labels 0..C-1 in turn, then pair noise at rate with seed. */
static int pair_run(double rate, uint64_t seed, int classes, uint8_t *labels,
                    uint8_t *corrupted) {
  for (int i = 0; i < N; i++)
    labels[i] = (uint8_t)(i % classes);
  return noise_pair_apply(labels, N, classes, rate, seed, corrupted);
}

/* Exactly round(rate * n) labels move, each from c to (c + 1) mod C, and
 * corrupted marks exactly those. */
static void pair_check(double rate, int classes) {
  uint8_t y[N], bad[N];
  int k = (int)llround(rate * N), moved = 0;

  assert_int_equal(pair_run(rate, 11, classes, y, bad), k);
  for (int i = 0; i < N; i++) {
    int orig = i % classes;
    assert_true(bad[i] == 0 || bad[i] == 1);
    assert_int_equal(y[i], bad[i] ? (orig + 1) % classes : orig);
    moved += bad[i];
  }
  assert_int_equal(moved, k);
}

static void test_pair_count_and_target(void **state) {
  (void)state;
  pair_check(0.0, C);
  pair_check(0.001, C);
  pair_check(0.2, C);
  pair_check(0.45, 2);
  pair_check(0.8, 10);
  pair_check(1.0, C);
}

/* The last class wraps around to class 0. */
static void test_pair_wraps(void **state) {
  uint8_t y[5] = {255, 255, 255, 255, 255}, bad[5];

  (void)state;
  assert_int_equal(noise_pair_apply(y, 5, 256, 1.0, 1, bad), 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(y[i], 0);
    assert_int_equal(bad[i], 1);
  }
}

/* round(0.5 * 101) is 51: halves round away from zero. */
static void test_pair_rounding(void **state) {
  uint8_t y[101] = {0}, bad[101];

  (void)state;
  assert_int_equal(noise_pair_apply(y, 101, 3, 0.5, 2, bad), 51);
  assert_int_equal(noise_pair_apply(y, 101, 3, 0.004, 2, bad), 0);
  assert_int_equal(noise_pair_apply(y, 101, 3, 0.005, 2, bad), 1);
}

/* Same seed, same labels; another seed, other positions. */
static void test_pair_seeded(void **state) {
  uint8_t a[N], ca[N], b[N], cb[N], c[N], cc[N];

  (void)state;
  pair_run(0.3, 5, C, a, ca);
  pair_run(0.3, 5, C, b, cb);
  pair_run(0.3, 6, C, c, cc);
  assert_memory_equal(a, b, N);
  assert_memory_equal(ca, cb, N);
  assert_memory_not_equal(ca, cc, N);
}

/* Over many seeds every position is chosen about rate of the time: with
 * 400 draws at rate 0.25 each count is Binomial(400, 0.25), mean 100 and
 * standard deviation about 8.7, so [50, 150] holds each one with margin
 * to spare. */
static void test_pair_positions_uniform(void **state) {
  enum { SMALL = 40, DRAWS = 400 };
  int count[SMALL] = {0};
  uint8_t y[SMALL], bad[SMALL];

  (void)state;
  for (int seed = 0; seed < DRAWS; seed++) {
    memset(y, 0, sizeof y);
    assert_int_equal(noise_pair_apply(y, SMALL, 4, 0.25, (uint64_t)seed, bad),
                     10);
    for (int i = 0; i < SMALL; i++)
      count[i] += bad[i];
  }
  for (int i = 0; i < SMALL; i++)
    if (count[i] < 50 || count[i] > 150)
      fail_msg("position %d chosen %d times in %d draws", i, count[i], DRAWS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pair_count_and_target),
      cmocka_unit_test(test_pair_wraps),
      cmocka_unit_test(test_pair_rounding),
      cmocka_unit_test(test_pair_seeded),
      cmocka_unit_test(test_pair_positions_uniform),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
