/* SPDX-License-Identifier: MIT */
/* Evaluation: a confusion matrix built batch by batch from logits, and
 * the accuracy and per-class accuracy it gives. */
#ifndef SPK_ENGINE_EVAL_H
#define SPK_ENGINE_EVAL_H

#include <stdint.h>

/* counts (classes, classes): row = true label, column = prediction. */
typedef struct {
  int classes;
  long *counts;
  long total, correct;
} eval_confusion_t;

/* Prepares an empty matrix for classes (2..256). Returns 0 or -ENOMEM,
 * -EINVAL; release with eval_confusion_deinit. */
int eval_confusion_init(eval_confusion_t *c, int classes);

void eval_confusion_deinit(eval_confusion_t *c);

/* Counts a batch: logits (n, classes), labels (n). */
void eval_confusion_add(eval_confusion_t *c, const float *logits,
                        const uint8_t *labels, int n);

/* The index of the largest of n values, the first on ties. */
int eval_argmax(const float *v, int n);

/* correct / total, or 0 with nothing counted. */
double eval_accuracy(const eval_confusion_t *c);

/* The share of class k's samples predicted as k; NaN when the class had
 * no samples. */
double eval_class_accuracy(const eval_confusion_t *c, int k);

#endif
