/* SPDX-License-Identifier: MIT */
/* How well a self-paced split and a difficulty score find corrupted labels:
 * precision and recall of the easy set as "clean", the AUROC of a score,
 * and noise-rate estimates from what training shows alone (losses,
 * confidences, class probabilities). Pure arithmetic on caller-owned
 * arrays; the pipeline decides when to measure. */
#ifndef SPK_ENGINE_DETECT_H
#define SPK_ENGINE_DETECT_H

#include <stdbool.h>
#include <stdint.h>

/* The easy set read as a prediction of "clean". precision is
 * clean_easy / easy and recall is clean_easy / clean. A ratio whose
 * denominator is 0 (no easy sample, or no clean sample) is undefined: it is
 * then 0 and its *_defined flag is false, so a chart can leave a gap. */
typedef struct {
  int n;          /* samples */
  int easy;       /* samples in the easy set */
  int clean;      /* samples whose label is not corrupted */
  int clean_easy; /* clean samples in the easy set */
  double precision;
  double recall;
  bool precision_defined; /* easy > 0 */
  bool recall_defined;    /* clean > 0 */
} detect_split_t;

/* Measures the split of n samples: easy (n) and corrupted (n) are flags,
 * any non-zero byte meaning true. n may be 0. Returns 0, or -EINVAL when a
 * pointer is NULL or n < 0 (out is then untouched). */
int detect_split(const uint8_t *easy, const uint8_t *corrupted, int n,
                 detect_split_t *out);

/* The AUROC of score (n) for telling corrupted samples (positives, flag
 * non-zero in corrupted (n)) from clean ones, a higher score meaning "more
 * likely corrupted": the probability that a random corrupted sample scores
 * above a random clean one, ties counting one half (the Mann-Whitney U
 * statistic with mid-ranks, divided by positives * negatives). 1 is a
 * perfect score, 0.5 a useless one, 0 a perfectly reversed one. Sorts a
 * copy: O(n log n) time, O(n) memory. Scores may be infinite, not NaN.
 * Returns 0; -EINVAL for a NULL pointer, n < 0 or a NaN score; -EDOM when
 * either class is empty, with *auroc set to 0.5; -ENOMEM. */
int detect_auroc(const float *score, const uint8_t *corrupted, int n,
                 double *auroc);

/* A first estimate of the share of corrupted labels from the per-sample
 * mean training loss alone (mean_loss (n), cross-entropy in nats, >= 0).
 * It fits a two-component Gaussian mixture by EM to log(mean_loss + 0.05)
 * and returns in *rate the weight of the component with the higher mean.
 * The log makes the clean samples' right-skewed losses and the corrupted
 * samples' losses near log(classes) both roughly symmetric lumps; it
 * estimated injected noise better than raw losses on Fashion-MNIST runs.
 * Initialisation splits the sorted values at the median, so the result is
 * deterministic. A mixture always finds two lumps: on clean data the
 * estimate is not near 0, so read it beside the truth. Degenerate input
 * (n < 2, all losses equal) gives 0. Returns 0; -EINVAL for a NULL pointer,
 * n < 0 or a negative or non-finite loss; -ENOMEM. */
int detect_noise_rate(const float *mean_loss, int n, double *rate);

/* The model's class probabilities for every sample, as the class-aware
 * estimators read them: probs (n, classes), each row a softmax (finite
 * values in [0, 1]), and the observed labels (n), each < classes. */
typedef struct {
  const float *probs;
  const uint8_t *labels;
  int n, classes; /* classes in [1, 256] */
} detect_probs_t;

/* The share of corrupted labels by confident learning: the share of
 * samples whose observed label the model rejects with confidence. Per
 * class j the threshold t_j is the mean probability of j over the samples
 * labelled j (infinite when no sample is). A sample labelled i is
 * rejected when, among the classes j with p_j >= t_j, the most probable
 * exists and is not i. per_class (classes, may be NULL) receives the
 * share of rejected samples among those labelled i (0 for a class
 * nobody carries) and *rate the share among all n (0 when n is 0). The
 * counts are not rescaled to the samples no class claims: measured on
 * Fashion-MNIST, those hold about as many corrupted labels as the
 * rejected samples hold clean ones. O(n classes) time. Returns 0;
 * -EINVAL for a NULL pointer, n < 0, classes out of range, a label >=
 * classes or a probability outside [0, 1] or NaN. */
int detect_noise_confident(const detect_probs_t *in, double *per_class,
                           double *rate);

/* The share of corrupted labels from the mean probability of each
 * sample's observed label, conf (n), values in [0, 1]: a two-component
 * beta mixture fitted by EM (moment-matched M step) to the values
 * clamped into [1e-4, 1 - 1e-4], started from the split at 1/2, and the
 * weight of the component of lower mean. Data with no value below 1/2 or
 * none above gives 0 or 1 from the start. Returns 0; -EINVAL for a NULL
 * pointer, n < 0 or a value outside [0, 1]; -ENOMEM. */
int detect_noise_beta(const float *conf, int n, double *rate);

/* Which one-dimensional estimator detect_noise_by_class runs per class. */
typedef enum {
  DETECT_MIX_GAUSS_LOG_LOSS, /* detect_noise_rate on losses */
  DETECT_MIX_BETA            /* detect_noise_beta on confidences */
} detect_mix_kind_t;

/* Runs the estimator kind on the values (n) of each observed class
 * (labels (n), each < classes <= 256) on its own, writes per_class
 * (classes, may be NULL; 0 for a class without samples) and their mean
 * weighted by class size into *rate. Returns what the estimator returns
 * for bad values, -EINVAL for a NULL pointer, n < 0, classes out of
 * range or a label >= classes; -ENOMEM. */
int detect_noise_by_class(detect_mix_kind_t kind, const float *values,
                          const uint8_t *labels, int n, int classes,
                          double *per_class, double *rate);

#endif
