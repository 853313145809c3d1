/* SPDX-License-Identifier: MIT */
/* Training dynamics of every sample over one stage's epochs: confidence,
 * variability, correctness, forgetting events and area under the margin.
 * An accumulator takes one epoch at a time, so no epoch history is kept;
 * the caller decides which stage and epochs it sees and stores the result. */
#ifndef SPK_ENGINE_DYNAMICS_H
#define SPK_ENGINE_DYNAMICS_H

#include <stddef.h>
#include <stdint.h>

/* Running per-sample sums over the epochs added so far. Fields are read
 * only; change them through the functions below. */
typedef struct {
  int n;              /* samples */
  int epochs;         /* epochs added */
  double *prob_mean;  /* (n) mean of p(observed label), Welford */
  double *prob_m2;    /* (n) sum of squared deviations from that mean */
  double *margin_sum; /* (n) */
  int32_t *correct;   /* (n) epochs predicted correctly */
  int32_t *forgets;   /* (n) correct-to-wrong transitions */
  uint8_t *last;      /* (n) the last epoch's correct flag */
} dynamics_t;

/* Caller-owned output arrays, each (n); a NULL member is skipped. */
typedef struct {
  float *confidence;   /* mean p(observed label) over the epochs */
  float *variability;  /* its population standard deviation */
  float *correctness;  /* share of epochs predicted correctly, in [0, 1] */
  int32_t *forgetting; /* epochs wrong right after a correct one */
  float *aum;          /* area under the margin: the mean margin */
} dynamics_stats_t;

/* Prepares d for n >= 0 samples and no epochs. Returns 0, -EINVAL when d
 * is NULL or n < 0, or -ENOMEM (d then needs no deinit). */
int dynamics_init(dynamics_t *d, int n);

/* Releases what dynamics_init allocated; d may be NULL or zeroed. */
void dynamics_deinit(dynamics_t *d);

/* Adds one epoch, all arrays (d->n) in the same sample order: prob is the
 * probability of the observed label in [0, 1]; margin is the logit of the
 * observed label minus the largest other logit (finite, any sign); correct
 * is non-zero where the predicted class was the observed label. A sample
 * forgets when it was correct at the previous epoch added and is wrong at
 * this one. Returns 0, -EINVAL for a NULL pointer, or -EDOM when a prob is
 * outside [0, 1] or NaN or a margin is not finite; d is then unchanged. */
int dynamics_add_epoch(dynamics_t *d, const float *prob, const float *margin,
                       const uint8_t *correct);

/* Writes the statistics of the epochs added so far into out's non-NULL
 * arrays. Variability is the population standard deviation (divided by
 * the epoch count, so one epoch gives 0). A sample never predicted
 * correctly has no forgetting event: read correctness beside it. d is not
 * changed, so this may run after every epoch. Returns 0, -EINVAL for a
 * NULL d or out, or -ENODATA before the first epoch. */
int dynamics_finish(const dynamics_t *d, const dynamics_stats_t *out);

/* Bytes dynamics_state_write writes for d: its epoch count and sums. */
size_t dynamics_state_size(const dynamics_t *d);

/* Writes d's epoch count and sums to out (dynamics_state_size bytes), so
 * that a resumed stage continues them exactly. */
void dynamics_state_write(const dynamics_t *d, uint8_t *out);

/* Restores what dynamics_state_write wrote into d, initialised for the
 * same sample count. Returns 0, or -EINVAL when n bytes do not fit d
 * (d is then unchanged). */
int dynamics_state_read(dynamics_t *d, const uint8_t *in, size_t n);

#endif
