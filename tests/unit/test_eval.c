/* SPDX-License-Identifier: MIT */
/* Confusion matrices: counts, accuracy, per-class accuracy, argmax. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../engine/eval.h"

static void test_confusion_counts(void **state) {
  /* Three classes; predictions by hand: 0->0, 0->2, 1->1, 2->1, 2->2. */
  const float logits[5 * 3] = {3, 1, 0, 0, 1, 2, -1, 5, 4.9f,
                               0, 2, 1, 0, 0, 0.5f};
  const uint8_t y[5] = {0, 0, 1, 2, 2};
  eval_confusion_t c;

  (void)state;
  assert_int_equal(eval_confusion_init(&c, 3), 0);
  eval_confusion_add(&c, logits, y, 3);
  eval_confusion_add(&c, logits + 9, y + 3, 2);
  assert_int_equal(c.total, 5);
  assert_int_equal(c.correct, 3);
  assert_int_equal(c.counts[0 * 3 + 0], 1);
  assert_int_equal(c.counts[0 * 3 + 2], 1);
  assert_int_equal(c.counts[1 * 3 + 1], 1);
  assert_int_equal(c.counts[2 * 3 + 1], 1);
  assert_int_equal(c.counts[2 * 3 + 2], 1);
  assert_true(fabs(eval_accuracy(&c) - 0.6) < 1e-12);
  assert_true(fabs(eval_class_accuracy(&c, 0) - 0.5) < 1e-12);
  assert_true(fabs(eval_class_accuracy(&c, 1) - 1.0) < 1e-12);
  assert_true(fabs(eval_class_accuracy(&c, 2) - 0.5) < 1e-12);
  eval_confusion_deinit(&c);
}

static void test_empty_class_and_limits(void **state) {
  const float logits[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
  const uint8_t y[2] = {0, 1};
  eval_confusion_t c;

  (void)state;
  assert_int_equal(eval_confusion_init(&c, 4), 0);
  assert_true(eval_accuracy(&c) == 0.0);
  eval_confusion_add(&c, logits, y, 2);
  assert_true(isnan(eval_class_accuracy(&c, 3)));
  eval_confusion_deinit(&c);
  assert_int_equal(eval_confusion_init(&c, 1), -EINVAL);
  assert_int_equal(eval_confusion_init(&c, 257), -EINVAL);
}

static void test_argmax_first_on_ties(void **state) {
  const float v[5] = {1, 3, 3, -2, 0};

  (void)state;
  assert_int_equal(eval_argmax(v, 5), 1);
  assert_int_equal(eval_argmax(v, 1), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_confusion_counts),
      cmocka_unit_test(test_empty_class_and_limits),
      cmocka_unit_test(test_argmax_first_on_ties),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
