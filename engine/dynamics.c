/* SPDX-License-Identifier: MIT */
/* The training-dynamics accumulator: per sample a Welford mean and
 * variance of p(observed label), a margin sum and two counters. Each epoch
 * is checked whole before any sum moves, so a bad epoch changes nothing. */
#include "dynamics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int dynamics_init(dynamics_t *d, int n) {
  size_t m;

  if (!d || n < 0)
    return -EINVAL;
  memset(d, 0, sizeof *d);
  d->n = n;
  m = n > 0 ? (size_t)n : 1;
  d->prob_mean = calloc(m, sizeof *d->prob_mean);
  d->prob_m2 = calloc(m, sizeof *d->prob_m2);
  d->margin_sum = calloc(m, sizeof *d->margin_sum);
  d->correct = calloc(m, sizeof *d->correct);
  d->forgets = calloc(m, sizeof *d->forgets);
  d->last = calloc(m, sizeof *d->last);
  if (!d->prob_mean || !d->prob_m2 || !d->margin_sum || !d->correct ||
      !d->forgets || !d->last) {
    dynamics_deinit(d);
    return -ENOMEM;
  }
  return 0;
}

void dynamics_deinit(dynamics_t *d) {
  if (!d)
    return;
  free(d->prob_mean);
  free(d->prob_m2);
  free(d->margin_sum);
  free(d->correct);
  free(d->forgets);
  free(d->last);
  memset(d, 0, sizeof *d);
}

/* Returns -EDOM unless every prob is in [0, 1] and every margin finite. */
static int epoch_check(const float *prob, const float *margin, int n) {
  for (int i = 0; i < n; i++) {
    if (!(prob[i] >= 0.0f && prob[i] <= 1.0f) || !isfinite(margin[i]))
      return -EDOM;
  }
  return 0;
}

int dynamics_add_epoch(dynamics_t *d, const float *prob, const float *margin,
                       const uint8_t *correct) {
  int r;
  double k;

  if (!d || !prob || !margin || !correct)
    return -EINVAL;
  r = epoch_check(prob, margin, d->n);
  if (r)
    return r;

  d->epochs++;
  k = d->epochs;
  for (int i = 0; i < d->n; i++) {
    double p = prob[i], before = p - d->prob_mean[i];
    uint8_t ok = correct[i] != 0;

    d->prob_mean[i] += before / k;
    d->prob_m2[i] += before * (p - d->prob_mean[i]);
    d->margin_sum[i] += margin[i];
    d->correct[i] += ok;
    d->forgets[i] += d->last[i] && !ok; /* last starts at 0 */
    d->last[i] = ok;
  }
  return 0;
}

int dynamics_finish(const dynamics_t *d, const dynamics_stats_t *out) {
  double k;

  if (!d || !out)
    return -EINVAL;
  if (d->epochs == 0)
    return -ENODATA;
  k = d->epochs;
  for (int i = 0; i < d->n; i++) {
    if (out->confidence)
      out->confidence[i] = (float)d->prob_mean[i];
    if (out->variability)
      out->variability[i] = (float)sqrt(fmax(d->prob_m2[i] / k, 0.0));
    if (out->correctness)
      out->correctness[i] = (float)(d->correct[i] / k);
    if (out->forgetting)
      out->forgetting[i] = d->forgets[i];
    if (out->aum)
      out->aum[i] = (float)(d->margin_sum[i] / k);
  }
  return 0;
}

/* Each array of d with its element size, in state order. */
static void state_arrays(const dynamics_t *d, void *arr[6], size_t size[6]) {
  void *a[6] = {d->prob_mean, d->prob_m2, d->margin_sum,
                d->correct,   d->forgets, d->last};
  size_t s[6] = {sizeof *d->prob_mean, sizeof *d->prob_m2,
                 sizeof *d->margin_sum, sizeof *d->correct,
                 sizeof *d->forgets, sizeof *d->last};

  memcpy(arr, a, sizeof a);
  memcpy(size, s, sizeof s);
}

size_t dynamics_state_size(const dynamics_t *d) {
  void *arr[6];
  size_t size[6], total = sizeof d->epochs;

  state_arrays(d, arr, size);
  for (int i = 0; i < 6; i++)
    total += size[i] * (size_t)d->n;
  return total;
}

void dynamics_state_write(const dynamics_t *d, uint8_t *out) {
  void *arr[6];
  size_t size[6];

  state_arrays(d, arr, size);
  memcpy(out, &d->epochs, sizeof d->epochs);
  out += sizeof d->epochs;
  for (int i = 0; i < 6; i++) {
    memcpy(out, arr[i], size[i] * (size_t)d->n);
    out += size[i] * (size_t)d->n;
  }
}

int dynamics_state_read(dynamics_t *d, const uint8_t *in, size_t n) {
  void *arr[6];
  size_t size[6];
  int epochs;

  if (n != dynamics_state_size(d))
    return -EINVAL;
  memcpy(&epochs, in, sizeof epochs);
  if (epochs < 0)
    return -EINVAL;
  d->epochs = epochs;
  in += sizeof epochs;
  state_arrays(d, arr, size);
  for (int i = 0; i < 6; i++) {
    memcpy(arr[i], in, size[i] * (size_t)d->n);
    in += size[i] * (size_t)d->n;
  }
  return 0;
}
