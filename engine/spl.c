/* SPDX-License-Identifier: MIT */
/* Per-class easy-set selection by sorting each class's scores. */
#include "spl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double spl_pace_fraction(double start, double end, int k, int count) {
  if (count <= 1)
    return start;
  return start + (end - start) * (double)k / (double)(count - 1);
}

typedef struct {
  float score;
  int32_t pos;
} ranked_t;

static int ranked_cmp(const void *a, const void *b) {
  const ranked_t *x = a, *y = b;

  if (x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

int spl_select_per_class(const float *score, const uint8_t *labels, int n,
                         int classes, double fraction, uint8_t *easy) {
  ranked_t *r = malloc(sizeof *r * (size_t)(n > 0 ? n : 1));
  int kept = 0;

  if (!r)
    return -1;
  memset(easy, 0, (size_t)n);
  for (int c = 0; c < classes; c++) {
    int m = 0, keep;
    for (int i = 0; i < n; i++)
      if (labels[i] == c)
        r[m++] = (ranked_t){score[i], i};
    if (m == 0)
      continue;
    qsort(r, (size_t)m, sizeof *r, ranked_cmp);
    keep = (int)llround(fraction * m);
    if (keep < 1)
      keep = 1;
    if (keep > m)
      keep = m;
    for (int i = 0; i < keep; i++)
      easy[r[i].pos] = 1;
    kept += keep;
  }
  free(r);
  return kept;
}
