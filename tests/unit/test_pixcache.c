/* SPDX-License-Identifier: MIT */
/* Unit tests of the dashboard's image cache: every sample it hands out
 * equals the one read straight from Fashion-MNIST's files, in both
 * splits and after switching between them, and indices outside a split
 * are refused as the files refuse them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/pixcache.h"

#define ROOT "/usr/share/datasets"

static void assert_same_sample(pixcache_t *c, const dataset_files_t *files,
                               int test, int index) {
  dataset_sample_t a, b;
  char err[256];

  assert_int_equal(
      pixcache_sample_read(c, files, test, index, &a, err, sizeof err), 0);
  assert_int_equal(
      dataset_idx_sample_read(files, test, index, &b, err, sizeof err), 0);
  assert_int_equal(a.label, b.label);
  assert_int_equal(a.channels * a.height * a.width,
                   b.channels * b.height * b.width);
  assert_memory_equal(a.pixels, b.pixels,
                      (size_t)a.channels * a.height * a.width);
  dataset_sample_deinit(&a);
  dataset_sample_deinit(&b);
}

static void test_samples_match_the_files(void **state) {
  static const int train[] = {0, 1, 777, 12345, 59999};
  static const int test[] = {0, 5000, 9999};
  dataset_files_t files;
  pixcache_t *c;
  char err[256];

  (void)state;
  assert_int_equal(
      dataset_files_find(ROOT, "fashion-mnist", &files, err, sizeof err), 0);
  assert_int_equal(pixcache_new(&c), 0);
  for (size_t i = 0; i < sizeof train / sizeof train[0]; i++)
    assert_same_sample(c, &files, 0, train[i]);
  for (size_t i = 0; i < sizeof test / sizeof test[0]; i++)
    assert_same_sample(c, &files, 1, test[i]);
  /* Back to the first split after the second: still right. */
  assert_same_sample(c, &files, 0, 31);
  pixcache_free(c);
}

static void test_outside_a_split_is_refused(void **state) {
  dataset_files_t files;
  dataset_sample_t s;
  pixcache_t *c;
  char err[256];

  (void)state;
  assert_int_equal(
      dataset_files_find(ROOT, "fashion-mnist", &files, err, sizeof err), 0);
  assert_int_equal(pixcache_new(&c), 0);
  assert_int_equal(
      pixcache_sample_read(c, &files, 0, 60000, &s, err, sizeof err), -ERANGE);
  assert_non_null(strstr(err, "60000"));
  assert_null(s.pixels);
  assert_int_equal(pixcache_sample_read(c, &files, 1, -1, &s, err, sizeof err),
                   -ERANGE);
  /* Without a cache the files are read directly, with the same result. */
  assert_int_equal(
      pixcache_sample_read(NULL, &files, 1, 10000, &s, err, sizeof err),
      -ERANGE);
  pixcache_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_samples_match_the_files),
      cmocka_unit_test(test_outside_a_split_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
