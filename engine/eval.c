/* SPDX-License-Identifier: MIT */
/* Confusion matrices and the accuracies read off them. */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int eval_confusion_init(eval_confusion_t *c, int classes) {
  memset(c, 0, sizeof *c);
  if (classes < 2 || classes > 256)
    return -EINVAL;
  c->counts = calloc((size_t)classes * classes, sizeof *c->counts);
  if (!c->counts)
    return -ENOMEM;
  c->classes = classes;
  return 0;
}

void eval_confusion_deinit(eval_confusion_t *c) {
  free(c->counts);
  memset(c, 0, sizeof *c);
}

int eval_argmax(const float *v, int n) {
  int best = 0;

  for (int j = 1; j < n; j++)
    if (v[j] > v[best])
      best = j;
  return best;
}

void eval_confusion_add(eval_confusion_t *c, const float *logits,
                        const uint8_t *labels, int n) {
  int k = c->classes;

  for (int i = 0; i < n; i++) {
    int p = eval_argmax(logits + (size_t)i * k, k), y = labels[i];
    c->counts[(size_t)y * k + p]++;
    c->correct += p == y;
  }
  c->total += n;
}

double eval_accuracy(const eval_confusion_t *c) {
  return c->total > 0 ? (double)c->correct / (double)c->total : 0.0;
}

double eval_class_accuracy(const eval_confusion_t *c, int k) {
  long row = 0;

  for (int j = 0; j < c->classes; j++)
    row += c->counts[(size_t)k * c->classes + j];
  return row > 0 ? (double)c->counts[(size_t)k * c->classes + k] / row : NAN;
}
