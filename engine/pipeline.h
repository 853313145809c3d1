/* SPDX-License-Identifier: MIT */
/* The self-paced -> teacher -> student pipeline, with a plain baseline.
 * It trains on datasets the caller loaded, reports every epoch through
 * hooks and knows nothing of storage or HTTP. */
#ifndef SPK_ENGINE_PIPELINE_H
#define SPK_ENGINE_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "eval.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "spl.h"

/* Stages. A job with one teacher runs PIPELINE_STAGE_TEACHER; a job with
 * several runs PIPELINE_STAGE_TEACHER0 + k for teacher k ("teacher0",
 * "teacher1", ...). */
enum {
  PIPELINE_STAGE_SPL,
  PIPELINE_STAGE_TEACHER,
  PIPELINE_STAGE_STUDENT,
  PIPELINE_STAGE_BASELINE,
  PIPELINE_STAGE_TEACHER0,
  PIPELINE_TEACHERS_MAX = 8,
  PIPELINE_STAGE_COUNT = PIPELINE_STAGE_TEACHER0 + PIPELINE_TEACHERS_MAX
};

#define PIPELINE_NAME_MAX 128

/* Where the self-paced stage's scores come from: a forward pass in
 * inference mode after the epoch, or the logits seen while training
 * (samples not trained on in the epoch keep their inference score). */
enum { PIPELINE_PASS_EVAL, PIPELINE_PASS_TRAIN };

/* Injected label noise: none, symmetric (to any other class) or pair
 * (class c to c + 1 mod C). */
enum { PIPELINE_NOISE_NONE, PIPELINE_NOISE_SYMMETRIC, PIPELINE_NOISE_PAIR };
#define PIPELINE_MODEL_MAX 32
#define PIPELINE_PATH_MAX 4096

/* How several teachers' softened outputs become one target: their mean,
 * or per sample each weighted by its probability of the observed label. */
enum { PIPELINE_COMBINE_MEAN, PIPELINE_COMBINE_CONFIDENCE };

/* Which terms of the student's loss the self-paced weights multiply: the
 * cross-entropy only (hard samples still learn from the teacher), the
 * whole loss, or none. */
enum { PIPELINE_WEIGHTS_CE, PIPELINE_WEIGHTS_ALL, PIPELINE_WEIGHTS_NONE };

/* Where the student's self-paced weights come from: the final easy set of
 * the self-paced stage, or the student's own scores after each epoch
 * under the self-paced stage's pace and weighting. */
enum { PIPELINE_FROM_SPL, PIPELINE_FROM_SELF };

/* The noise-rate estimators of the self-paced stage, the one it
 * reports as its estimate first (engine/detect.h has each one's method):
 *   CONFIDENT  confident learning on the mean class probabilities of the
 *              warm-up epochs (made once, at the last warm-up epoch);
 *   BETA       a beta mixture on each sample's mean probability of its
 *              observed label over the epochs so far;
 *   GMM_CLASS  a Gaussian mixture on log(mean warm-up loss + 0.05) per
 *              observed class;
 *   GMM        the same mixture over all samples at once. */
enum {
  PIPELINE_EST_CONFIDENT,
  PIPELINE_EST_BETA,
  PIPELINE_EST_GMM_CLASS,
  PIPELINE_EST_GMM,
  PIPELINE_ESTIMATORS
};

/* Returns "confident", "beta", "gmm_class" or "gmm", or "unknown". */
const char *pipeline_estimator_name(int estimator);

/* Returns "spl", "teacher", "student", "baseline" or "teacher<k>". */
const char *pipeline_stage_name(int stage);

/* Returns the stage number of a name, or -1 when there is none. */
int pipeline_stage_from_name(const char *name);

/* One stage: its model preset, epoch count and resolved optimizer (the
 * job's optimizer with the stage's own keys laid over it). */
typedef struct {
  char model[PIPELINE_MODEL_MAX]; /* a preset's name, or "custom" */
  int epochs;
  optim_config_t optim;
  model_desc_t desc; /* a custom model's layers; unused for presets */
} pipeline_stage_spec_t;

/* One teacher: a stage trained on the easy set, or with checkpoint set a
 * model loaded from the file at path instead (no training, one
 * evaluation-only epoch reported). */
typedef struct {
  pipeline_stage_spec_t stage;
  int has_seed;  /* 1: seed below; 0: streams of the job's seed */
  uint64_t seed;
  char checkpoint[PIPELINE_NAME_MAX]; /* as the spec names it, or "" */
  char path[PIPELINE_PATH_MAX];       /* where the caller found it */
} pipeline_teacher_spec_t;

/* A whole job, already validated. */
typedef struct {
  char name[PIPELINE_NAME_MAX];
  uint64_t seed;
  int threads;

  char dataset[PIPELINE_NAME_MAX];
  dataset_norm_t norm;        /* how inputs are normalised */
  int limit;                  /* 0: the whole training file */
  double validation_fraction; /* share of the selected samples held out */
  int noise_kind;             /* PIPELINE_NOISE_* */
  double noise_rate;
  uint64_t noise_seed;

  pipeline_stage_spec_t spl;
  int spl_warmup_epochs;
  double pace_start, pace_end; /* fraction pace: first and last fraction */
  int spl_score;               /* spl_score_kind_t: what ranks samples */
  int spl_score_pass;          /* PIPELINE_PASS_*: where scores come from */
  int pace_kind;               /* spl_pace_kind_t */
  int pace_curve;              /* spl_curve_t, fraction pace */
  double pace_lambda, pace_growth; /* threshold pace */
  double pace_clean_below;     /* auto pace: estimates below keep all */
  int per_class;               /* fraction pace: keep each class's share */
  int weighting;               /* spl_weighting_t */
  double mix_ratio;            /* mixture weighting: lambda2 / lambda1 */
  int final_stat;              /* spl_final_stat_t of the final easy set */
  int final_last_epochs;       /* over the last k epochs; 0: all */

  pipeline_teacher_spec_t teachers[PIPELINE_TEACHERS_MAX];
  int n_teachers; /* 1 to PIPELINE_TEACHERS_MAX */
  int combine;    /* PIPELINE_COMBINE_* */

  pipeline_stage_spec_t student;
  double kd_alpha, kd_temperature;
  int student_weights; /* PIPELINE_WEIGHTS_*: what spl weights multiply */
  int weights_from;    /* PIPELINE_FROM_* */
  /* FitNets-style hint: (beta / d_t) |P h_s - h_t|^2, averaged over the
   * batch, between the output h_t (d_t values) of the first teacher's
   * layer hint_teacher_layer and h_s of the student's layer
   * hint_student_layer (indices into their layer lists), P learned. */
  int has_hint;
  int hint_teacher_layer, hint_student_layer;
  double hint_beta;

  int has_baseline;
  pipeline_stage_spec_t baseline;
  /* 1: with threads > 1 the baseline trains beside spl and the teachers
   * on threads / 2 of the job's threads, and the hooks may be called
   * from two threads (never at once). Each stage's results depend only
   * on the seed and its own thread count. 0: one stage at a time. */
  int parallel_stages;
} pipeline_spec_t;

/* Fills spec with the defaults every job starts from (the sym40 example
 * without a name or a dataset). */
void pipeline_spec_defaults(pipeline_spec_t *spec);

/* Which samples a job uses and what it did to their labels. Indices are
 * positions in the dataset's training file. train_index is sorted; the
 * per-sample records of every epoch follow its order. */
typedef struct {
  int n_train, n_val;
  const int32_t *train_index; /* (n_train) */
  const int32_t *val_index;   /* (n_val), sorted */
  int n_file;                 /* rows in the training file */
  const uint8_t *observed;    /* (n_file) labels after injected noise */
  const uint8_t *clean;       /* (n_file) labels as the file gives them */
  int n_corrupted;            /* samples whose label noise changed */
} pipeline_data_t;

/* What one epoch of one stage measured. Accuracies are fractions in
 * [0, 1]; train_acc and val_acc are against observed labels, test_acc
 * against the clean test split. */
typedef struct {
  int stage;
  int epoch; /* from 1 */
  int epochs;
  double train_loss; /* mean training objective over the epoch's batches */
  double train_acc, val_acc, test_acc;
  int easy_size;
  double easy_fraction; /* easy_size / n_train */
  double lr;            /* learning rate of the epoch's last batch */
  double seconds;       /* wall time of the epoch, evaluation included */
  double samples_per_s; /* samples trained / training time */
  const eval_confusion_t *test_confusion; /* on the test split */
  /* When label noise was injected: the easy set's precision and recall
   * as "clean", and the AUROC of the epoch's score for telling corrupted
   * from clean samples; NaN otherwise. */
  double noise_precision, noise_recall, noise_auroc;
  /* At every epoch of the self-paced stage from its last warm-up epoch
   * on (from epoch 1 without warm-up): the share of corrupted labels
   * estimated from the training dynamics alone, by every estimator
   * (names from pipeline_estimator_name) in noise_estimates, by the
   * first in estimated_noise_rate, and by the first per observed class
   * in noise_per_class (noise_classes values). NaN, and NULL, elsewhere
   * or when an estimator could not run. */
  double estimated_noise_rate;
  double noise_estimates[PIPELINE_ESTIMATORS];
  const double *noise_per_class;
  int noise_classes;
} pipeline_epoch_t;

/* Every training sample's record after one epoch, in train_index order.
 * loss and prob are the cross-entropy and probability of the observed label
 * in inference mode after the epoch; weight is what the sample weighed in
 * the epoch's training; easy marks the epoch's easy set. */
typedef struct {
  int n;
  const float *loss;
  const float *prob;
  const float *weight;
  const uint8_t *easy;
  const float *margin;  /* logit of the observed label minus the largest
                         * other logit */
  const uint8_t *pred;  /* predicted class */
  /* What resumes the stage after this epoch; NULL unless the hooks have
   * load_state. Store it with the epoch's records, atomically. */
  const struct pipeline_state *state;
} pipeline_records_t;

/* A stage's state after a completed epoch: opaque bytes the pipeline
 * reads back through load_state to continue from there with the same
 * numbers as an uninterrupted run. */
typedef struct pipeline_state {
  int stage;
  int epoch;            /* the stage's epochs completed */
  int final;            /* 1: the stage has finished */
  const uint8_t *data;  /* the state, engine/state.h framing */
  size_t size;
  const model_t *model; /* the stage's model after the epoch, or NULL */
} pipeline_state_t;

/* A stage's training dynamics once it has finished, per training sample
 * in position order: mean probability of the observed label across its
 * epochs (confidence) and its population standard deviation
 * (variability), the share of epochs predicted correctly, forgetting
 * events (correct at one epoch, wrong at the next) and the area under
 * the margin (mean logit margin). */
typedef struct {
  int stage;
  int n;
  const float *confidence;
  const float *variability;
  const float *correctness;
  const int32_t *forgetting;
  const float *aum;
} pipeline_dynamics_t;

/* How the pipeline talks to its caller. Every callback may be NULL. A
 * callback returning non-zero stops the run with that code and its err. */
typedef struct {
  void *ctx;
  int (*on_data)(void *ctx, const pipeline_data_t *data, char *err,
                 size_t errlen);
  int (*on_stage)(void *ctx, int stage, char *err, size_t errlen);
  int (*on_epoch)(void *ctx, const pipeline_epoch_t *metrics,
                  const pipeline_records_t *records, char *err,
                  size_t errlen);
  const atomic_int *cancel; /* non-zero: stop at the next batch */
  int (*on_dynamics)(void *ctx, const pipeline_dynamics_t *dynamics,
                     char *err, size_t errlen);
  /* The state last stored for stage (records->state of its last
   * reported epoch) in a heap buffer *data of *size bytes that the
   * pipeline frees, or *data NULL when there is none. With this set,
   * every epoch reports its state and each stage starts where its stored
   * state ends: a finished stage is not run again, an unfinished one
   * continues after its last stored epoch. */
  int (*load_state)(void *ctx, int stage, uint8_t **data, size_t *size,
                    char *err, size_t errlen);
} pipeline_hooks_t;

/* Runs every stage of spec on train (the whole training file) and test.
 * Returns 0, -ECANCELED when hooks->cancel was raised, a hook's code, or
 * another negative errno code with err set. */
int pipeline_run(const pipeline_spec_t *spec, const dataset_t *train,
                 const dataset_t *test, const pipeline_hooks_t *hooks,
                 char *err, size_t errlen);

/* One model trained plainly on every sample of a training file, with
 * the same machinery as the stages: what `spkd train` runs. */
typedef struct {
  uint64_t seed;
  int threads;
  int limit; /* > 0: a seeded subset of this many training samples */
  double validation_fraction; /* share held out to tune on, 0 by default */
  pipeline_stage_spec_t stage; /* model, epochs, optimizer */
} pipeline_train_spec_t;

/* Fills spec with the defaults: seed 1, 2 threads, the "mlp" model for
 * 10 epochs, SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 128,
 * cosine schedule. */
void pipeline_train_defaults(pipeline_train_spec_t *spec);

/* What a finished training hands back for a checkpoint. */
typedef struct {
  model_t *model; /* the caller frees it with model_free */
  long steps;     /* optimizer updates made */
  rng_t shuffle;  /* the shuffling generator's state at the end */
} pipeline_trained_t;

/* Trains spec->stage's model on all of train (no validation split, no
 * noise), reporting every epoch through hooks->on_epoch as stage
 * "baseline". On success out holds the model. Returns like pipeline_run. */
int pipeline_train(const pipeline_train_spec_t *spec, const dataset_t *train,
                   const dataset_t *test, const pipeline_hooks_t *hooks,
                   pipeline_trained_t *out, char *err, size_t errlen);

#endif
