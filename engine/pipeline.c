/* SPDX-License-Identifier: MIT */
/* The pipeline: choose the job's samples and inject its noise, then run
 * spl, teacher, student and baseline one after the other. Each stage is a
 * fresh model trained epoch by epoch by stage_train; after every epoch all
 * training samples are scored in inference mode and reported. */
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "checkpoint.h"
#include "detect.h"
#include "dynamics.h"
#include "eval.h"
#include "loss.h"
#include "model.h"
#include "noise.h"
#include "rng.h"
#include "spl.h"
#include "state.h"
#include "team.h"

/* Rows per inference batch: big enough for efficient GEMMs, small enough
 * that a CNN's activations stay a few tens of MB. */
#define EVAL_BATCH 256

/* Most teacher feature values a representation hint keeps for the whole
 * training set: 2^28 floats, 1 GiB. */
#define HINT_VALUES_MAX (1 << 28)

/* Random streams, so that every stage draws independently from the job
 * seed and the student and baseline start alike. */
enum {
  STREAM_SUBSET = 1,
  STREAM_SPLIT,
  STREAM_SPL_INIT,
  STREAM_SPL_SHUFFLE,
  STREAM_TEACHER_INIT,
  STREAM_TEACHER_SHUFFLE,
  STREAM_STUDENT_INIT,
  STREAM_STUDENT_SHUFFLE,
  STREAM_HINT_INIT,
  /* Teacher k > 0 of several draws from STREAM_TEACHERS + 2k and the
   * stream after it; teacher 0 from the single teacher's streams. */
  STREAM_TEACHERS = 16
};

static const char *const stage_names[PIPELINE_STAGE_COUNT] = {
    "spl",      "teacher",  "student",  "baseline", "teacher0", "teacher1",
    "teacher2", "teacher3", "teacher4", "teacher5", "teacher6", "teacher7"};

const char *pipeline_stage_name(int stage) {
  if (stage < 0 || stage >= PIPELINE_STAGE_COUNT)
    return "unknown";
  return stage_names[stage];
}

int pipeline_stage_from_name(const char *name) {
  for (int i = 0; i < PIPELINE_STAGE_COUNT; i++)
    if (strcmp(stage_names[i], name) == 0)
      return i;
  return -1;
}

void pipeline_spec_defaults(pipeline_spec_t *spec) {
  optim_config_t o = {.kind = OPTIM_SGD,
                      .lr = 0.05,
                      .momentum = 0.9,
                      .weight_decay = 5e-4,
                      .decay_bias = 1,
                      .batch_size = 128,
                      .schedule = OPTIM_SCHEDULE_COSINE,
                      .beta1 = 0.9,
                      .beta2 = 0.999,
                      .eps = 1e-8,
                      .step_epochs = 10,
                      .gamma = 0.1};

  memset(spec, 0, sizeof *spec);
  spec->seed = 1;
  spec->threads = 2;
  spec->validation_fraction = 0.1;
  spec->norm = DATASET_NORM_STANDARDIZE;
  spec->spl = (pipeline_stage_spec_t){"mlp", 10, o};
  spec->spl_warmup_epochs = 2;
  spec->pace_start = 0.5;
  spec->pace_end = 0.8;
  spec->spl_score = SPL_SCORE_LOSS;
  spec->spl_score_pass = PIPELINE_PASS_EVAL;
  spec->pace_kind = SPL_PACE_FRACTION;
  spec->pace_curve = SPL_CURVE_LINEAR;
  spec->pace_lambda = 1.0;
  spec->pace_growth = 1.1;
  spec->pace_clean_below = 0.05;
  spec->per_class = 1;
  spec->weighting = SPL_WEIGHT_HARD;
  spec->mix_ratio = 0.5;
  spec->final_stat = SPL_FINAL_MEAN_LOSS;
  spec->teachers[0].stage = (pipeline_stage_spec_t){"mlp", 15, o};
  spec->n_teachers = 1;
  spec->combine = PIPELINE_COMBINE_MEAN;
  spec->student = (pipeline_stage_spec_t){"mlp", 20, o};
  spec->kd_alpha = 0.7;
  spec->kd_temperature = 2.0;
  spec->student_weights = PIPELINE_WEIGHTS_CE;
  spec->weights_from = PIPELINE_FROM_SPL;
  spec->hint_beta = 1.0;
  spec->has_baseline = 1;
  spec->parallel_stages = 1;
  spec->baseline = spec->student;
}

/* The self-paced stage's noise-rate estimates. Those of the warm-up
 * model are made once, at the last warm-up epoch; the beta mixture
 * follows every epoch. */
typedef struct {
  double est[PIPELINE_ESTIMATORS];
  double per_class[256]; /* of the first estimator */
  int state;             /* NOISE_COLLECTING, NOISE_MADE or NOISE_LOST */
} noise_est_t;

/* What a resume state keeps of the estimates: the doubles, no padding. */
#define NOISE_STATE_BYTES offsetof(noise_est_t, state)

/* NOISE_LOST: the stage resumed after its warm-up from a state that
 * kept no estimate, so there is none to report. */
enum { NOISE_COLLECTING, NOISE_MADE, NOISE_LOST };

static const char *const estimator_names[PIPELINE_ESTIMATORS] = {
    "confident", "beta", "gmm_class", "gmm"};

const char *pipeline_estimator_name(int estimator) {
  if (estimator < 0 || estimator >= PIPELINE_ESTIMATORS)
    return "unknown";
  return estimator_names[estimator];
}

/* Everything one run holds: the job's samples, the per-sample buffers of
 * the epoch being reported, and what passes from stage to stage. */
typedef struct {
  const pipeline_spec_t *spec;
  const dataset_t *file; /* the whole training file */
  const dataset_t *test;
  const pipeline_hooks_t *hooks;
  int classes;

  int n_train, n_val;
  int32_t *train_index, *val_index;
  uint8_t *observed;     /* (file->n) */
  uint8_t *train_labels; /* (n_train) observed labels in position order */

  float *loss, *prob, *weight; /* (n_train) of the current epoch */
  uint8_t *easy;
  float *score;          /* (n_train) the stage's score of the epoch */
  float *margin;         /* (n_train) observed logit minus the best other */
  uint8_t *pred;         /* (n_train) predicted class */
  float *train_score;    /* (n_train) spl scores seen while training */
  float *spl_w;          /* (n_train) spl weights for the next epoch */
  float *hist_loss;      /* (spl epochs, n_train) per-epoch losses */
  float *hist_prob;      /* (spl epochs, n_train) per-epoch p(observed) */
  float *class_prob;     /* (n_train, classes) spl: the sum of the warm-up
                          * epochs' class probabilities */
  int class_prob_on;     /* 1: scoring adds its probabilities there */
  noise_est_t noise;     /* spl: the noise-rate estimates */
  const float *det_score; /* what the epoch's AUROC ranks */
  uint8_t *corrupted;    /* (n_train) label changed by injected noise */
  int score_kind;        /* spl_score_kind_t of the stage running */
  uint8_t *final_easy;   /* the easy set spl hands on */
  float *teacher_probs;  /* (n_train, classes) at the kd temperature */
  float *hint_t;         /* (n_train, hint_dt) the first teacher's features
                          * for the representation hint, or NULL */
  int hint_dt;
  float *batch_x;        /* (batch_cap, dim) gathered inputs */
  int batch_cap;
  team_t *team;          /* the job's threads */
  uint8_t *batch_y;      /* (batch_cap) labels of a gathered batch */
  eval_confusion_t test_conf; /* of the epoch being reported */

  char *err;
  size_t errlen;
  /* With the baseline trained beside the other stages, two lanes share
   * the run: each has its own copy of this struct with its own team and
   * per-epoch buffers. The lock serialises the hooks; stop, raised by a
   * lane that failed (1 main, 2 baseline), stops the other. */
  pthread_mutex_t *hook_lock;
  atomic_int *stop;
  const pipeline_state_t *state; /* of the epoch being reported */
} run_t;

/* How one stage trains: which samples, with what weight, against what. */
typedef struct {
  int stage;
  const pipeline_stage_spec_t *cfg;
  model_t *model;
  rng_t shuffle;
  const uint8_t *include;      /* train only where include[pos], or all */
  const float *ce_weight;      /* per-position weight, or NULL for 1 */
  const float *teacher_probs;  /* distil from these when not NULL */
  loss_kd_t kd;
  struct hint *hint;           /* the representation hint, or NULL */
  long steps;       /* optimizer updates so far */
  int loaded;       /* 1: a teacher loaded from its checkpoint file */
  int first_epoch;  /* epochs already done (restored from a state) */
  int done;         /* 1: restored as finished */
  int train_scores; /* 1: keep the scores seen while training */
  int spl_scored;   /* 1: score samples as the spl stage does */
  int last_kept;    /* spl: samples the last selection kept */
} stage_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cancelled(const run_t *r) {
  return (r->hooks->cancel && atomic_load(r->hooks->cancel)) ||
         (r->stop && atomic_load(r->stop));
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* The hooks are called by one lane at a time. */
static void hooks_lock(run_t *r) {
  if (r->hook_lock)
    pthread_mutex_lock(r->hook_lock);
}

static void hooks_unlock(run_t *r) {
  if (r->hook_lock)
    pthread_mutex_unlock(r->hook_lock);
}

/* Tells the caller a stage starts. */
static int stage_begin(run_t *r, int stage) {
  int rc = 0;

  if (r->hooks->on_stage) {
    hooks_lock(r);
    rc = r->hooks->on_stage(r->hooks->ctx, stage, r->err, r->errlen);
    hooks_unlock(r);
  }
  return rc;
}

static int fail(run_t *r, int rc, const char *msg) {
  snprintf(r->err, r->errlen, "%s", msg);
  return rc;
}

/* Picks the job's samples (a seeded subset when limit > 0), injects label
 * noise over them, then holds out the validation share. */
static int data_prepare(run_t *r, int *n_corrupted) {
  const pipeline_spec_t *s = r->spec;
  int n_file = r->file->n, n_sel = s->limit > 0 ? s->limit : n_file;
  int32_t *sel = malloc(sizeof(int32_t) * (size_t)n_file);
  uint8_t *lab = malloc((size_t)n_file), *bad = malloc((size_t)n_file);
  rng_t rng;
  int rc = 0;

  if (!sel || !lab || !bad) {
    rc = fail(r, -ENOMEM, "out of memory choosing samples");
    goto out;
  }
  if (n_sel > n_file) {
    snprintf(r->err, r->errlen, "dataset.limit %d exceeds the %d samples "
             "of the training file", n_sel, n_file);
    rc = -EINVAL;
    goto out;
  }
  for (int i = 0; i < n_file; i++)
    sel[i] = i;
  if (n_sel < n_file) {
    rng_init(&rng, s->seed, STREAM_SUBSET);
    rng_shuffle(&rng, sel, n_file);
  }
  qsort(sel, (size_t)n_sel, sizeof *sel, cmp_i32);

  /* Noise goes over the selected samples in index order. */
  memcpy(r->observed, r->file->y, (size_t)n_file);
  for (int i = 0; i < n_sel; i++)
    lab[i] = r->file->y[sel[i]];
  *n_corrupted = 0;
  if (s->noise_kind != PIPELINE_NOISE_NONE) {
    *n_corrupted = (s->noise_kind == PIPELINE_NOISE_PAIR
                        ? noise_pair_apply
                        : noise_symmetric_apply)(lab, n_sel, r->classes,
                                         s->noise_rate, s->noise_seed, bad);
    if (*n_corrupted < 0) {
      rc = fail(r, -ENOMEM, "out of memory injecting label noise");
      goto out;
    }
  }
  for (int i = 0; i < n_sel; i++)
    r->observed[sel[i]] = lab[i];

  /* The validation share is a seeded draw from the selected samples. */
  r->n_val = (int)llround(s->validation_fraction * n_sel);
  r->n_train = n_sel - r->n_val;
  if (r->n_train < 1) {
    rc = fail(r, -EINVAL, "no training samples left after the validation "
                          "split");
    goto out;
  }
  rng_init(&rng, s->seed, STREAM_SPLIT);
  rng_shuffle(&rng, sel, n_sel);
  r->val_index = malloc(sizeof(int32_t) * (size_t)(r->n_val + 1));
  r->train_index = malloc(sizeof(int32_t) * (size_t)r->n_train);
  if (!r->val_index || !r->train_index) {
    rc = fail(r, -ENOMEM, "out of memory splitting samples");
    goto out;
  }
  memcpy(r->val_index, sel, sizeof(int32_t) * (size_t)r->n_val);
  memcpy(r->train_index, sel + r->n_val, sizeof(int32_t) * (size_t)r->n_train);
  qsort(r->val_index, (size_t)r->n_val, sizeof(int32_t), cmp_i32);
  qsort(r->train_index, (size_t)r->n_train, sizeof(int32_t), cmp_i32);

out:
  free(sel);
  free(lab);
  free(bad);
  return rc;
}

/* The buffers of one lane: what an epoch fills and reports, one batch's
 * inputs and the test confusion matrix. */
static int lane_alloc(run_t *r) {
  size_t n = (size_t)r->n_train;

  memset(&r->test_conf, 0, sizeof r->test_conf);
  r->loss = malloc(n * sizeof(float));
  r->prob = malloc(n * sizeof(float));
  r->weight = malloc(n * sizeof(float));
  r->easy = malloc(n);
  r->score = malloc(n * sizeof(float));
  r->margin = malloc(n * sizeof(float));
  r->pred = malloc(n);
  r->train_score = malloc(n * sizeof(float));
  r->batch_x = malloc((size_t)r->batch_cap * r->file->dim * sizeof(float));
  r->batch_y = malloc((size_t)r->batch_cap);
  if (!r->loss || !r->prob || !r->weight || !r->easy || !r->score ||
      !r->margin || !r->pred || !r->train_score || !r->batch_x ||
      !r->batch_y || eval_confusion_init(&r->test_conf, r->classes) != 0)
    return -ENOMEM;
  return 0;
}

static void lane_deinit(run_t *r) {
  free(r->loss);
  free(r->prob);
  free(r->weight);
  free(r->easy);
  free(r->score);
  free(r->margin);
  free(r->pred);
  free(r->train_score);
  free(r->batch_x);
  free(r->batch_y);
  eval_confusion_deinit(&r->test_conf);
  team_free(r->team);
  r->team = NULL;
}

static int buffers_alloc(run_t *r) {
  size_t n = (size_t)r->n_train;
  int cap = r->spec->spl.optim.batch_size;
  const pipeline_spec_t *s = r->spec;

  if (s->student.optim.batch_size > cap)
    cap = s->student.optim.batch_size;
  if (s->has_baseline && s->baseline.optim.batch_size > cap)
    cap = s->baseline.optim.batch_size;
  for (int k = 0; k < s->n_teachers; k++)
    if (s->teachers[k].stage.optim.batch_size > cap)
      cap = s->teachers[k].stage.optim.batch_size;
  r->batch_cap = cap > EVAL_BATCH ? cap : EVAL_BATCH;

  r->train_labels = malloc(n);
  r->spl_w = malloc(n * sizeof(float));
  r->hist_loss = malloc(n * (size_t)r->spec->spl.epochs * sizeof(float));
  r->hist_prob = malloc(n * (size_t)r->spec->spl.epochs * sizeof(float));
  r->corrupted = malloc(n);
  r->final_easy = malloc(n);
  r->teacher_probs = malloc(n * (size_t)r->classes * sizeof(float));
  r->class_prob = malloc(n * (size_t)r->classes * sizeof(float));
  if (!r->class_prob || !r->train_labels || !r->spl_w || !r->hist_loss ||
      !r->hist_prob || !r->corrupted || !r->final_easy || !r->teacher_probs ||
      lane_alloc(r) != 0)
    return fail(r, -ENOMEM, "out of memory for per-sample buffers");
  for (int i = 0; i < r->n_train; i++) {
    int idx = r->train_index[i];
    r->train_labels[i] = r->observed[idx];
    r->corrupted[i] = r->observed[idx] != r->file->y[idx];
  }
  return 0;
}

static void run_deinit(run_t *r) {
  free(r->train_index);
  free(r->val_index);
  free(r->observed);
  free(r->train_labels);
  free(r->spl_w);
  free(r->hist_loss);
  free(r->hist_prob);
  free(r->corrupted);
  free(r->final_easy);
  free(r->teacher_probs);
  free(r->class_prob);
  free(r->hint_t);
  lane_deinit(r);
}

/* Logits of the samples rows[0..n) of ds in inference mode, batch by
 * batch; calls visit for each batch with its logits (b, classes). */
typedef void (*visit_fn)(void *ctx, int first, int b, const float *logits);

static void infer_rows(run_t *r, model_t *m, const dataset_t *ds,
                       const int32_t *rows, int n, visit_fn visit,
                       void *ctx) {
  for (int first = 0; first < n; first += r->batch_cap) {
    int b = n - first < r->batch_cap ? n - first : r->batch_cap;
    const float *logits;
    if (rows)
      dataset_gather(ds, rows + first, b, r->batch_x);
    else
      dataset_gather_range(ds, first, b, r->batch_x);
    logits = model_forward(m, r->team, r->batch_x, b, 0);
    visit(ctx, first, b, logits);
  }
}

/* Adds a batch's predictions to a confusion matrix; labels[k] (or
 * labels[rows[k]]) is the label of sample k of the pass. */
typedef struct {
  eval_confusion_t *conf;
  const uint8_t *labels;
  const int32_t *rows;
  uint8_t *batch_y; /* (batch_cap) scratch */
} conf_ctx_t;

static void visit_confusion(void *ctx, int first, int b, const float *logits) {
  conf_ctx_t *a = ctx;

  for (int i = 0; i < b; i++)
    a->batch_y[i] = a->labels[a->rows ? a->rows[first + i] : first + i];
  eval_confusion_add(a->conf, logits, a->batch_y, b);
}

/* Accuracy of m over n samples of ds (rows, or the first n), counted into
 * conf, which must be empty. */
static double accuracy(run_t *r, model_t *m, const dataset_t *ds,
                       const int32_t *rows, int n, const uint8_t *labels,
                       eval_confusion_t *conf) {
  conf_ctx_t a = {conf, labels, rows, r->batch_y};

  infer_rows(r, m, ds, rows, n, visit_confusion, &a);
  return eval_accuracy(conf);
}

/* Adds the softmax of each row of logits (b, C) to sum (b, C). */
static void softmax_add(const float *logits, int b, int C, float *sum) {
  for (int i = 0; i < b; i++) {
    const float *z = logits + (size_t)i * C;
    float *out = sum + (size_t)i * C, max = z[0];
    double total = 0.0;
    for (int j = 1; j < C; j++)
      max = z[j] > max ? z[j] : max;
    for (int j = 0; j < C; j++)
      total += exp((double)z[j] - max);
    for (int j = 0; j < C; j++)
      out[j] += (float)(exp((double)z[j] - max) / total);
  }
}

/* Scores every training sample: loss and probability of its observed
 * label into r->loss and r->prob, and counts correct predictions. */
typedef struct {
  run_t *run;
  long correct;
} score_ctx_t;

static void visit_score(void *ctx, int first, int b, const float *logits) {
  score_ctx_t *s = ctx;
  run_t *r = s->run;
  const uint8_t *y = r->train_labels + first;

  spl_score_out_t out = {r->score + first, r->margin + first,
                         r->pred + first};

  loss_ce_forward(logits, y, NULL, b, r->classes, r->loss + first,
                  r->prob + first);
  if (r->class_prob_on && r->noise.state == NOISE_COLLECTING)
    softmax_add(logits, b, r->classes,
                r->class_prob + (size_t)first * r->classes);
  spl_scores(logits, y, b, r->classes, r->score_kind, &out);
  for (int i = 0; i < b; i++)
    s->correct += r->pred[first + i] == y[i];
}

static double score_train(run_t *r, model_t *m) {
  score_ctx_t s = {r, 0};
  infer_rows(r, m, r->file, r->train_index, r->n_train, visit_score, &s);
  return (double)s.correct / r->n_train;
}

/* A student's representation hint: the projection P it learns from its
 * layer's output to the first teacher's features, and one batch's
 * scratch. */
struct hint {
  int layer;         /* the student's layer whose output is projected */
  loss_hint_t shape; /* ds, dt, beta; n set per batch */
  optim_param_t P;   /* (dt, ds) */
  float *ht;         /* (cap, dt) the batch's teacher features */
  float *resid;      /* (cap, dt) */
  float *dhs;        /* (cap, ds) gradient at the student's layer */
};

/* The hint term of the batch at positions pos[0..b), after the forward
 * pass: returns its value, leaves P's gradient in P.grad and hands the
 * features' gradient to the model for the backward pass. */
static double hint_batch(run_t *r, stage_t *st, const int32_t *pos, int b) {
  struct hint *h = st->hint;
  size_t dt = (size_t)h->shape.dt;
  const float *hs = model_layer_output(st->model, h->layer);
  double value;

  for (int i = 0; i < b; i++)
    memcpy(h->ht + (size_t)i * dt, r->hint_t + (size_t)pos[i] * dt,
           dt * sizeof(float));
  h->shape.n = b;
  value = loss_hint_forward(&h->shape, h->P.value, hs, h->ht, h->resid);
  memset(h->dhs, 0, sizeof(float) * (size_t)b * h->shape.ds);
  loss_hint_backward(&h->shape, h->P.value, hs, h->resid, h->P.grad,
                     h->dhs);
  model_extra_grad_set(st->model, h->layer, h->dhs);
  return value;
}

/* Scratch space for one training batch of up to cap samples. */
typedef struct {
  float *dlogits; /* (cap, classes) */
  float *tp;      /* (cap, classes) teacher probabilities */
  float *w;       /* (cap) */
  float *s;       /* (cap) scores seen while training */
  uint8_t *y;     /* (cap) */
  int32_t *rows;  /* (cap) rows of the training file */
} batch_t;

static int batch_init(batch_t *bt, int cap, int classes) {
  size_t n = (size_t)cap;
  bt->dlogits = malloc(sizeof(float) * n * classes);
  bt->tp = malloc(sizeof(float) * n * classes);
  bt->w = malloc(sizeof(float) * n);
  bt->s = malloc(sizeof(float) * n);
  bt->y = malloc(n);
  bt->rows = malloc(sizeof(int32_t) * n);
  return bt->dlogits && bt->tp && bt->w && bt->s && bt->y && bt->rows
             ? 0
             : -ENOMEM;
}

static void batch_deinit(batch_t *bt) {
  free(bt->dlogits);
  free(bt->tp);
  free(bt->w);
  free(bt->s);
  free(bt->y);
  free(bt->rows);
}

/* One optimisation step on positions pos[0..b). Returns the batch's mean
 * objective. */
static double stage_step(run_t *r, stage_t *st, const int32_t *pos, int b,
                         double lr, batch_t *bt) {
  int C = r->classes;
  const float *logits;
  double loss;

  for (int i = 0; i < b; i++) {
    bt->rows[i] = r->train_index[pos[i]];
    bt->y[i] = r->train_labels[pos[i]];
    bt->w[i] = st->ce_weight ? st->ce_weight[pos[i]] : 1.0f;
    if (st->teacher_probs)
      memcpy(bt->tp + (size_t)i * C, st->teacher_probs + (size_t)pos[i] * C,
             sizeof(float) * (size_t)C);
  }
  dataset_gather(r->file, bt->rows, b, r->batch_x);

  logits = model_forward(st->model, r->team, r->batch_x, b, 1);
  if (st->train_scores) {
    spl_score_out_t out = {bt->s, NULL, NULL};
    spl_scores(logits, bt->y, b, C, r->score_kind, &out);
    for (int i = 0; i < b; i++)
      r->train_score[pos[i]] = bt->s[i];
  }
  if (st->teacher_probs) {
    loss = loss_kd_forward(&st->kd, logits, bt->tp, bt->y, bt->w, b, C, NULL);
    loss_kd_backward(&st->kd, logits, bt->tp, bt->y, bt->w, b, C,
                     bt->dlogits);
  } else {
    loss = loss_ce_forward(logits, bt->y, bt->w, b, C, NULL, NULL);
    loss_ce_backward(logits, bt->y, bt->w, b, C, bt->dlogits);
  }
  if (st->hint)
    loss += hint_batch(r, st, pos, b);
  model_step(st->model, r->team, bt->dlogits, &st->cfg->optim, lr,
             ++st->steps);
  if (st->hint)
    optim_update_range(&st->cfg->optim, lr, st->steps, &st->hint->P, 0,
                       st->hint->P.n);
  return loss;
}

/* Trains one epoch (from 0) of a stage over its included samples in a
 * shuffled order. Fills m's train_loss, lr and samples_per_s. */
static int stage_epoch(run_t *r, stage_t *st, int epoch, pipeline_epoch_t *m) {
  int bs = st->cfg->optim.batch_size, n = 0, rc = 0;
  int32_t *order = malloc(sizeof(int32_t) * (size_t)r->n_train);
  double total = 0.0, t0 = now_s(), lr = st->cfg->optim.lr;
  batch_t bt;

  if (batch_init(&bt, bs, r->classes) < 0 || !order) {
    rc = fail(r, -ENOMEM, "out of memory for a training batch");
    goto out;
  }
  for (int i = 0; i < r->n_train; i++)
    if (!st->include || st->include[i])
      order[n++] = i;
  rng_shuffle(&st->shuffle, order, n);

  for (int first = 0; first < n; first += bs) {
    int b = n - first < bs ? n - first : bs;
    double t = epoch + (double)first / n; /* fractional epoch position */
    if (cancelled(r)) {
      rc = fail(r, -ECANCELED, "cancelled");
      goto out;
    }
    lr = optim_lr_at(&st->cfg->optim, t, st->cfg->epochs);
    total += b * stage_step(r, st, order + first, b, lr, &bt);
  }
  m->train_loss = n > 0 ? total / n : 0.0;
  m->lr = lr;
  m->samples_per_s = n / (now_s() - t0 + 1e-12);

out:
  free(order);
  batch_deinit(&bt);
  return rc;
}

/* Evaluates the model after an epoch: scores every training sample and
 * measures validation and test accuracy. */
static void stage_evaluate(run_t *r, model_t *model, pipeline_epoch_t *m) {
  eval_confusion_t val;

  m->train_acc = score_train(r, model);
  eval_confusion_init(&val, r->classes);
  /* Without a validation split there is no validation accuracy. */
  m->val_acc = r->n_val > 0 ? accuracy(r, model, r->file, r->val_index,
                                       r->n_val, r->observed, &val)
                            : NAN;
  eval_confusion_deinit(&val);
  memset(r->test_conf.counts, 0,
         sizeof(long) * (size_t)r->classes * r->classes);
  r->test_conf.total = r->test_conf.correct = 0;
  m->test_acc = accuracy(r, model, r->test, NULL, r->test->n, r->test->y,
                         &r->test_conf);
  m->test_confusion = &r->test_conf;
}

/* How well the epoch's easy set and score separate corrupted labels from
 * clean ones, when noise was injected; NaN otherwise. */
static int report_detection(run_t *r, pipeline_epoch_t *m) {
  detect_split_t split;
  int rc;

  m->noise_precision = m->noise_recall = m->noise_auroc = NAN;
  if (r->spec->noise_kind == PIPELINE_NOISE_NONE)
    return 0;
  detect_split(r->easy, r->corrupted, r->n_train, &split);
  if (split.precision_defined)
    m->noise_precision = split.precision;
  if (split.recall_defined)
    m->noise_recall = split.recall;
  rc = detect_auroc(r->det_score, r->corrupted, r->n_train, &m->noise_auroc);
  if (rc == -ENOMEM)
    return fail(r, rc, "out of memory measuring noise detection");
  if (rc)
    m->noise_auroc = NAN; /* no corrupted or no clean sample, or NaN */
  return 0;
}

/* The spl epoch (from 0) whose scores make the first selection: the last
 * of the warm-up, or the first epoch when there is none. The estimates
 * of the warm-up model are made there. */
static int spl_first_choice(const pipeline_spec_t *s) {
  return s->spl_warmup_epochs > 0 ? s->spl_warmup_epochs - 1 : 0;
}

/* Each sample's mean over the first `epochs` rows of a per-epoch
 * history (epochs, n) into out (n). */
static void history_mean(const float *hist, int epochs, int n, float *out) {
  for (int i = 0; i < n; i++) {
    double sum = 0.0;
    for (int e = 0; e < epochs; e++)
      sum += hist[(size_t)e * n + i];
    out[i] = (float)(sum / epochs);
  }
}

/* An estimator's outcome: the rate, or NaN when its input did not fit
 * (-EINVAL). Only running out of memory fails the run. */
static int noise_outcome(run_t *r, int rc, double *rate) {
  if (rc == -ENOMEM)
    return fail(r, rc, "out of memory estimating the noise rate");
  if (rc)
    *rate = NAN;
  return 0;
}

/* The warm-up model's estimates, from the sum of the class probabilities
 * of its `epochs` epochs in r->class_prob (made their mean here) and
 * their mean losses. */
static int noise_warmup(run_t *r, int epochs) {
  noise_est_t *ne = &r->noise;
  double *est = ne->est;
  size_t n = (size_t)r->n_train, nc = n * (size_t)r->classes;
  detect_probs_t in = {r->class_prob, r->train_labels, r->n_train, r->classes};
  float *mean = malloc(n * sizeof(float));
  int got, rc;

  if (!mean)
    return fail(r, -ENOMEM, "out of memory estimating the noise rate");
  for (size_t i = 0; i < nc; i++)
    r->class_prob[i] = fminf(r->class_prob[i] / (float)epochs, 1.0f);
  got = detect_noise_confident(&in, ne->per_class,
                               &est[PIPELINE_EST_CONFIDENT]);
  rc = noise_outcome(r, got, &est[PIPELINE_EST_CONFIDENT]);

  /* The mixtures read the mean warm-up loss. */
  history_mean(r->hist_loss, epochs, r->n_train, mean);
  got = detect_noise_by_class(DETECT_MIX_GAUSS_LOG_LOSS, mean,
                              r->train_labels, r->n_train, r->classes, NULL,
                              &est[PIPELINE_EST_GMM_CLASS]);
  if (rc == 0)
    rc = noise_outcome(r, got, &est[PIPELINE_EST_GMM_CLASS]);
  got = detect_noise_rate(mean, r->n_train, &est[PIPELINE_EST_GMM]);
  if (rc == 0)
    rc = noise_outcome(r, got, &est[PIPELINE_EST_GMM]);
  free(mean);
  ne->state = NOISE_MADE;
  return rc;
}

/* The beta mixture on the mean probability of the observed label over
 * the stage's first `epochs` epochs. */
static int noise_beta(run_t *r, int epochs) {
  double *rate = &r->noise.est[PIPELINE_EST_BETA];
  float *mean = malloc((size_t)r->n_train * sizeof(float));
  int rc;

  if (!mean)
    return fail(r, -ENOMEM, "out of memory estimating the noise rate");
  history_mean(r->hist_prob, epochs, r->n_train, mean);
  for (int i = 0; i < r->n_train; i++)
    mean[i] = fminf(mean[i], 1.0f);
  rc = noise_outcome(r, detect_noise_beta(mean, r->n_train, rate), rate);
  free(mean);
  return rc;
}

/* spl, after the epoch (from 0) is scored and recorded: the warm-up
 * model's estimates at the first selection, the beta mixture's from
 * there on. */
static int spl_noise_update(run_t *r, int epoch) {
  int rc = 0;

  if (epoch < spl_first_choice(r->spec))
    return 0;
  if (r->noise.state == NOISE_COLLECTING)
    rc = noise_warmup(r, epoch + 1);
  if (rc == 0 && r->noise.state == NOISE_MADE)
    rc = noise_beta(r, epoch + 1);
  return rc;
}

/* The estimates an spl epoch reports once they are made; NaN elsewhere. */
static void report_noise(const run_t *r, pipeline_epoch_t *m) {
  const noise_est_t *ne = &r->noise;
  int made = m->stage == PIPELINE_STAGE_SPL && ne->state == NOISE_MADE;

  for (int k = 0; k < PIPELINE_ESTIMATORS; k++)
    m->noise_estimates[k] = made ? ne->est[k] : NAN;
  m->estimated_noise_rate = m->noise_estimates[PIPELINE_EST_CONFIDENT];
  made = made && isfinite(m->estimated_noise_rate);
  m->noise_per_class = made ? ne->per_class : NULL;
  m->noise_classes = made ? r->classes : 0;
}

static int report_epoch(run_t *r, pipeline_epoch_t *m) {
  pipeline_records_t rec = {r->n_train, r->loss,   r->prob,  r->weight,
                            r->easy,    r->margin, r->pred, r->state};
  int easy = 0, rc;

  for (int i = 0; i < r->n_train; i++)
    easy += r->easy[i];
  m->easy_size = easy;
  m->easy_fraction = (double)easy / r->n_train;
  rc = report_detection(r, m);
  report_noise(r, m);
  if (rc)
    return rc;
  if (!r->hooks->on_epoch)
    return 0;
  hooks_lock(r);
  rc = r->hooks->on_epoch(r->hooks->ctx, m, &rec, r->err, r->errlen);
  hooks_unlock(r);
  return rc;
}

/* Called after each epoch's evaluation, before it is reported: sets the
 * easy flags and the weights the next epoch trains with. */
typedef int (*after_epoch_fn)(run_t *r, stage_t *st, int epoch);

/* Adds the epoch just scored to the stage's dynamics. */
static int dynamics_epoch(run_t *r, dynamics_t *d) {
  uint8_t *correct = malloc((size_t)r->n_train);
  int rc;

  if (!correct)
    return fail(r, -ENOMEM, "out of memory for training dynamics");
  for (int i = 0; i < r->n_train; i++)
    correct[i] = r->pred[i] == r->train_labels[i];
  rc = dynamics_add_epoch(d, r->prob, r->margin, correct);
  free(correct);
  if (rc == -EDOM) {
    snprintf(r->err, r->errlen, "training dynamics: a probability or "
             "margin is not finite");
    return rc;
  }
  return rc ? fail(r, rc, "training dynamics failed") : 0;
}

/* Hands the finished stage's dynamics to the caller. */
static int dynamics_report(run_t *r, int stage, const dynamics_t *d) {
  size_t n = (size_t)r->n_train;
  float *f = malloc(4 * n * sizeof(float));
  int32_t *forget = malloc(n * sizeof(int32_t));
  pipeline_dynamics_t pd = {stage, r->n_train};
  int rc = -ENOMEM;

  if (!f || !forget) {
    fail(r, rc, "out of memory for training dynamics");
    goto out;
  }
  pd.confidence = f;
  pd.variability = f + n;
  pd.correctness = f + 2 * n;
  pd.forgetting = forget;
  pd.aum = f + 3 * n;
  rc = dynamics_finish(d, &(dynamics_stats_t){f, f + n, f + 2 * n, forget,
                                              f + 3 * n});
  if (rc) {
    fail(r, rc, "training dynamics failed");
    goto out;
  }
  hooks_lock(r);
  rc = r->hooks->on_dynamics
           ? r->hooks->on_dynamics(r->hooks->ctx, &pd, r->err, r->errlen)
           : 0;
  hooks_unlock(r);
out:
  free(f);
  free(forget);
  return rc;
}

/* Sections of a stage's resume state. */
#define TAG_HEAD STATE_TAG('H', 'E', 'A', 'D')
#define TAG_RNG STATE_TAG('R', 'N', 'G', ' ')
#define TAG_MODEL STATE_TAG('M', 'O', 'D', 'L')
#define TAG_EASY STATE_TAG('E', 'A', 'S', 'Y')
#define TAG_SPLW STATE_TAG('S', 'P', 'L', 'W')
#define TAG_HIST STATE_TAG('H', 'I', 'S', 'T')
#define TAG_FINAL STATE_TAG('F', 'I', 'N', 'L')
#define TAG_DYN STATE_TAG('D', 'Y', 'N', 'A')
#define TAG_HINT STATE_TAG('H', 'I', 'N', 'T')
#define TAG_NOISE STATE_TAG('N', 'O', 'I', 'S')
#define TAG_WARM STATE_TAG('W', 'A', 'R', 'M')

/* What every state starts with. */
typedef struct {
  int32_t stage, epoch, final, n_train, last_kept, spare;
  int64_t steps;
} state_head_t;

/* The checkpoint meta of a stage's model. */
static void stage_meta(const run_t *r, const stage_t *st, int epoch,
                       checkpoint_meta_t *meta) {
  memset(meta, 0, sizeof *meta);
  if (st->cfg->desc.n_layers > 0)
    meta->desc = st->cfg->desc;
  else
    model_preset(st->cfg->model, &meta->desc);
  meta->in = (layer_shape_t){r->file->channels, r->file->height,
                             r->file->width};
  meta->classes = r->classes;
  meta->optim = st->cfg->optim;
  meta->steps = st->steps;
  meta->epoch = epoch;
  meta->rng = st->shuffle;
}

/* The arrays a stage keeps across epochs beside its model. The spl
 * weights and history belong to the main lane (spl and the student). */
/* 1 for the stages whose state holds the spl weights (the main lane's
 * spl and student; the baseline's lane must not touch them). */
static int stage_keeps_weights(const stage_t *st) {
  return st->stage == PIPELINE_STAGE_SPL || st->stage == PIPELINE_STAGE_STUDENT;
}

static void state_put_arrays(run_t *r, const stage_t *st, int epoch,
                             int final, state_writer_t *w) {
  size_t n = (size_t)r->n_train;

  state_put(w, TAG_EASY, r->easy, n);
  if (stage_keeps_weights(st))
    state_put(w, TAG_SPLW, r->spl_w, n * sizeof(float));
  if (st->stage == PIPELINE_STAGE_SPL) {
    state_put(w, TAG_HIST, r->hist_loss, (size_t)epoch * n * sizeof(float));
    state_put(w, TAG_HIST, r->hist_prob, (size_t)epoch * n * sizeof(float));
  }
  if (st->stage == PIPELINE_STAGE_SPL && final)
    state_put(w, TAG_FINAL, r->final_easy, n);
  /* The noise estimates once made, else the warm-up's sum so far. */
  if (st->stage == PIPELINE_STAGE_SPL && r->noise.state == NOISE_MADE)
    state_put(w, TAG_NOISE, &r->noise, NOISE_STATE_BYTES);
  else if (st->stage == PIPELINE_STAGE_SPL &&
           r->noise.state == NOISE_COLLECTING)
    state_put(w, TAG_WARM, r->class_prob,
              n * (size_t)r->classes * sizeof(float));
  if (st->hint) {
    const optim_param_t *P = &st->hint->P;
    state_put(w, TAG_HINT, P->value, P->n * sizeof(float));
    state_put(w, TAG_HINT, P->velocity, P->n * sizeof(float));
    if (P->m2) /* Adam's second moments */
      state_put(w, TAG_HINT, P->m2, P->n * sizeof(float));
  }
}

/* The stage's state after `epoch` epochs into a new buffer. */
static int stage_state_make(run_t *r, const stage_t *st, int epoch,
                            int final, const dynamics_t *dyn, uint8_t **out,
                            size_t *size) {
  state_head_t head = {st->stage, epoch, final, r->n_train, st->last_kept,
                       0, st->steps};
  state_writer_t w;
  checkpoint_meta_t meta;
  uint8_t *model = NULL, *dbytes = NULL;
  size_t msize = 0, dsize = dyn ? dynamics_state_size(dyn) : 0;
  int rc = 0;

  state_writer_init(&w);
  state_put(&w, TAG_HEAD, &head, sizeof head);
  state_put(&w, TAG_RNG, &st->shuffle, sizeof st->shuffle);
  if (st->model && !st->loaded) {
    stage_meta(r, st, epoch, &meta);
    rc = checkpoint_encode(st->model, &meta, &model, &msize, r->err,
                           r->errlen);
    state_put(&w, TAG_MODEL, model, msize);
  }
  if (rc == 0 && dyn && (dbytes = malloc(dsize ? dsize : 1))) {
    dynamics_state_write(dyn, dbytes);
    state_put(&w, TAG_DYN, dbytes, dsize);
  }
  state_put_arrays(r, st, epoch, final, &w);
  free(model);
  free(dbytes);
  if (rc || (dyn && !dbytes)) {
    state_writer_deinit(&w);
    return rc ? rc : fail(r, -ENOMEM, "out of memory for a resume state");
  }
  rc = state_writer_finish(&w, out, size);
  return rc ? fail(r, rc, "out of memory for a resume state") : 0;
}

/* Restores the two-section arrays: spl's history and the hint's P. */
static int state_read_pairs(run_t *r, stage_t *st, const state_reader_t *rd,
                            int epoch) {
  size_t hist = (size_t)epoch * r->n_train * sizeof(float);
  const uint8_t *p, *q;
  size_t n, m;

  if (st->stage == PIPELINE_STAGE_SPL) {
    if (state_get_nth(rd, TAG_HIST, 0, &p, &n) ||
        state_get_nth(rd, TAG_HIST, 1, &q, &m) || n != hist || m != hist)
      return fail(r, -EINVAL, "resume state: the spl history does not fit");
    memcpy(r->hist_loss, p, hist);
    memcpy(r->hist_prob, q, hist);
  }
  if (st->hint) {
    optim_param_t *P = &st->hint->P;
    if (state_get_nth(rd, TAG_HINT, 0, &p, &n) ||
        state_get_nth(rd, TAG_HINT, 1, &q, &m) ||
        n != P->n * sizeof(float) || m != n)
      return fail(r, -EINVAL, "resume state: the hint does not fit");
    memcpy(P->value, p, n);
    memcpy(P->velocity, q, m);
    if (P->m2 && (state_get_nth(rd, TAG_HINT, 2, &p, &n) || n != m))
      return fail(r, -EINVAL, "resume state: the hint's moments are missing");
    if (P->m2)
      memcpy(P->m2, p, n);
  }
  return 0;
}

/* Restores spl's noise estimates, or the warm-up's sum of class
 * probabilities before they are made. A state written without either
 * (by an older spkd) after its first epoch leaves no estimate. */
static void state_read_noise(run_t *r, const state_reader_t *rd, int epoch) {
  size_t warm = (size_t)r->n_train * r->classes * sizeof(float), len;
  const uint8_t *p;

  if (state_get(rd, TAG_NOISE, &p, &len) == 0 && len == NOISE_STATE_BYTES) {
    memcpy(&r->noise, p, len);
    r->noise.state = NOISE_MADE;
  } else if (state_get(rd, TAG_WARM, &p, &len) == 0 && len == warm) {
    memcpy(r->class_prob, p, len);
    r->noise.state = NOISE_COLLECTING;
  } else {
    r->noise.state = epoch > 0 ? NOISE_LOST : NOISE_COLLECTING;
  }
}

/* Restores what the state holds beside its head. */
static int state_read_body(run_t *r, stage_t *st, const state_reader_t *rd,
                           const state_head_t *h, dynamics_t *dyn) {
  size_t n = (size_t)r->n_train;
  checkpoint_meta_t meta;
  const uint8_t *p;
  size_t len;
  int rc;

  if (state_get_exact(rd, TAG_RNG, &st->shuffle, sizeof st->shuffle,
                      r->err, r->errlen) ||
      state_get_exact(rd, TAG_EASY, r->easy, n, r->err, r->errlen))
    return -EINVAL;
  if (stage_keeps_weights(st) &&
      state_get_exact(rd, TAG_SPLW, r->spl_w, n * sizeof(float), r->err,
                      r->errlen))
    return -EINVAL;
  if (st->stage == PIPELINE_STAGE_SPL && h->final &&
      state_get_exact(rd, TAG_FINAL, r->final_easy, n, r->err, r->errlen))
    return -EINVAL;
  if (st->stage == PIPELINE_STAGE_SPL)
    state_read_noise(r, rd, h->epoch);
  if (st->model && !st->loaded) {
    if (state_get(rd, TAG_MODEL, &p, &len) != 0)
      return fail(r, -EINVAL, "resume state: the model is missing");
    rc = checkpoint_decode_into(p, len, st->model, &meta, r->err,
                                r->errlen);
    if (rc)
      return rc;
  }
  if (dyn && (state_get(rd, TAG_DYN, &p, &len) != 0 ||
              dynamics_state_read(dyn, p, len) != 0))
    return fail(r, -EINVAL, "resume state: the dynamics do not fit");
  return state_read_pairs(r, st, rd, h->epoch);
}

/* Asks the caller for the stage's stored state and restores it: sets
 * st->first_epoch and st->done. No stored state leaves the stage fresh. */
static int stage_resume(run_t *r, stage_t *st, dynamics_t *dyn) {
  uint8_t *data = NULL;
  size_t size = 0;
  state_reader_t rd;
  state_head_t h;
  int rc;

  if (!r->hooks->load_state)
    return 0;
  hooks_lock(r);
  rc = r->hooks->load_state(r->hooks->ctx, st->stage, &data, &size, r->err,
                            r->errlen);
  hooks_unlock(r);
  if (rc || !data)
    return rc;
  rc = state_reader_init(&rd, data, size, r->err, r->errlen);
  if (rc == 0)
    rc = state_get_exact(&rd, TAG_HEAD, &h, sizeof h, r->err, r->errlen);
  if (rc == 0 && (h.stage != st->stage || h.n_train != r->n_train ||
                  h.epoch < 0 || h.epoch > st->cfg->epochs))
    rc = fail(r, -EINVAL, "resume state: made for another stage or job");
  if (rc == 0)
    rc = state_read_body(r, st, &rd, &h, dyn);
  if (rc == 0) {
    st->first_epoch = h.epoch;
    st->done = h.final != 0;
    st->steps = h.steps;
    st->last_kept = h.last_kept;
  }
  free(data);
  return rc;
}

/* Reports an epoch (and before the stage's last, its dynamics) with the
 * state to resume from after it when the caller keeps states. */
static int stage_report(run_t *r, stage_t *st, int epoch,
                        pipeline_epoch_t *m, const dynamics_t *dyn) {
  int final = epoch == st->cfg->epochs, rc = 0;
  pipeline_state_t state = {st->stage, epoch, final, NULL, 0, st->model};
  uint8_t *data = NULL;

  /* Dynamics go first: once the final state is stored the stage is
   * never run again, so nothing it reports may come after. */
  if (final)
    rc = dynamics_report(r, st->stage, dyn);
  if (rc == 0 && r->hooks->load_state)
    rc = stage_state_make(r, st, epoch, final, dyn, &data, &state.size);
  state.data = data;
  r->state = r->hooks->load_state ? &state : NULL;
  if (rc == 0)
    rc = report_epoch(r, m);
  r->state = NULL;
  free(data);
  return rc;
}

static int stage_epochs(run_t *r, stage_t *st, after_epoch_fn after,
                        dynamics_t *dyn);

/* Trains a stage through all its epochs, resuming after the epochs a
 * stored state holds; its dynamics are reported with its last epoch. */
static int stage_train(run_t *r, stage_t *st, after_epoch_fn after) {
  dynamics_t dyn;
  int rc = dynamics_init(&dyn, r->n_train);

  if (rc)
    return fail(r, rc, "out of memory for training dynamics");
  rc = stage_resume(r, st, &dyn);
  if (rc == 0 && !st->done)
    rc = stage_epochs(r, st, after, &dyn);
  dynamics_deinit(&dyn);
  return rc;
}

/* Every epoch of a stage: train, evaluate, choose, report. */
static int stage_epochs(run_t *r, stage_t *st, after_epoch_fn after,
                        dynamics_t *dyn) {
  int rc = 0;

  rc = stage_begin(r, st->stage);
  if (rc)
    return rc;
  r->score_kind = st->spl_scored ? r->spec->spl_score : SPL_SCORE_LOSS;
  for (int e = st->first_epoch; e < st->cfg->epochs; e++) {
    pipeline_epoch_t m = {st->stage, e + 1, st->cfg->epochs};
    double t0 = now_s();

    for (int i = 0; i < r->n_train; i++) {
      r->weight[i] = st->include && !st->include[i] ? 0.0f
                     : st->ce_weight               ? st->ce_weight[i]
                                                   : 1.0f;
      r->train_score[i] = NAN;
    }
    rc = stage_epoch(r, st, e, &m);
    if (rc)
      return rc;
    if (!isfinite(m.train_loss)) {
      snprintf(r->err, r->errlen, "stage %s epoch %d: training diverged "
               "(the loss is not finite); try a lower learning rate",
               pipeline_stage_name(st->stage), e + 1);
      return -EDOM;
    }
    stage_evaluate(r, st->model, &m);
    r->det_score = r->loss;
    rc = dynamics_epoch(r, dyn);
    if (rc)
      return rc;
    rc = after(r, st, e);
    if (rc)
      return rc;
    m.seconds = now_s() - t0;
    rc = stage_report(r, st, e + 1, &m, dyn);
    if (rc)
      return rc;
  }
  return 0;
}

/* Builds the stage's model from seed's streams. */
static int stage_model(run_t *r, stage_t *st, uint64_t seed,
                       uint64_t init_stream, uint64_t shuffle_stream) {
  rng_t init;

  model_desc_t desc;
  int rc;
  model_env_t env = {{r->file->channels, r->file->height, r->file->width},
                     r->classes,
                     r->batch_cap,
                     team_size(r->team),
                     &init,
                     seed ^ (init_stream << 32)};

  rng_init(&init, seed, init_stream);
  rng_init(&st->shuffle, seed, shuffle_stream);
  if (st->cfg->desc.n_layers > 0)
    desc = st->cfg->desc;
  else if (model_preset(st->cfg->model, &desc) != 0) {
    snprintf(r->err, r->errlen, "unknown model '%s'", st->cfg->model);
    return -EINVAL;
  }
  rc = model_new(&desc, &env, &st->model, r->err, r->errlen);
  if (rc == 0 && model_optim_prepare(st->model, &st->cfg->optim) != 0)
    rc = fail(r, -ENOMEM, "out of memory for optimizer state");
  return rc;
}

/* The self-paced configuration the spec describes. */
static void spl_config_from(const pipeline_spec_t *s, spl_config_t *c) {
  spl_config_init(c);
  c->pace = (spl_pace_kind_t)s->pace_kind;
  c->curve = (spl_curve_t)s->pace_curve;
  c->start = s->pace_start;
  c->end = s->pace_end;
  c->lambda = s->pace_lambda;
  c->growth = s->pace_growth;
  c->per_class = s->per_class != 0;
  c->weighting = (spl_weighting_t)s->weighting;
  c->mix_ratio = s->mix_ratio;
}

/* The auto pace's kept fraction of each observed class into keep
 * (classes): the clean share of the whole set by the best noise
 * estimate, or 1 (keep all) while there is none or when it is below
 * the spec's clean_below, the level the estimator reads on clean data
 * (0.02-0.03 on Fashion-MNIST: its hardest clean samples), where
 * dropping that share loses good samples and no noise. Each class
 * keeps the same share: the per-class estimates carry each class's
 * hardness (hard classes look noisier) and measured on Fashion-MNIST
 * they made a worse easy set than the overall one, far worse under
 * pair noise. */
static const double *auto_fractions(const run_t *r, double *keep) {
  double rate = r->noise.state == NOISE_MADE
                    ? r->noise.est[PIPELINE_EST_CONFIDENT]
                    : NAN;

  if (isfinite(rate) && rate < r->spec->pace_clean_below)
    rate = 0;
  for (int c = 0; c < r->classes; c++)
    keep[c] = isfinite(rate) ? 1.0 - rate : 1.0;
  return keep;
}

/* The epoch's scores: from the training pass where asked and seen,
 * else from the inference pass. */
static void spl_epoch_scores(run_t *r) {
  if (r->spec->spl_score_pass != PIPELINE_PASS_TRAIN)
    return;
  for (int i = 0; i < r->n_train; i++)
    if (isfinite(r->train_score[i]))
      r->score[i] = r->train_score[i];
}

/* The final easy set: samples ranked by the final statistic over the
 * last epochs, keeping `end` of each class (or of the whole set) under
 * the fraction pace, the estimated clean share of each class under the
 * auto pace, or as many as the last selection kept under the threshold
 * pace. It is handed on with weight 1. */
static int spl_final(run_t *r, int epochs, int kept_last) {
  const pipeline_spec_t *s = r->spec;
  spl_history_t h = {r->hist_loss, r->hist_prob, epochs, r->n_train};
  double f = s->pace_end, keep[256];
  int kept;

  if (spl_final_scores(&h, (spl_final_stat_t)s->final_stat,
                       s->final_last_epochs, r->score) != 0)
    return fail(r, -EINVAL, "cannot rank the final easy set");
  if (s->pace_kind == SPL_PACE_THRESHOLD)
    f = (double)(kept_last > 0 ? kept_last : 1) / r->n_train;
  if (s->pace_kind == SPL_PACE_AUTO)
    kept =
        spl_select_by_class(r->score, r->train_labels, r->n_train, r->classes,
                            auto_fractions(r, keep), r->final_easy);
  else if (s->per_class && s->pace_kind == SPL_PACE_FRACTION)
    kept = spl_select_per_class(r->score, r->train_labels, r->n_train,
                                r->classes, f, r->final_easy);
  else
    kept = spl_select_global(r->score, r->n_train, f, r->final_easy);
  if (kept < 0)
    return fail(r, -ENOMEM, "out of memory selecting the final easy set");
  memcpy(r->easy, r->final_easy, (size_t)r->n_train);
  r->det_score = r->score;
  return 0;
}

/* spl: records the epoch's history; after each epoch from the last
 * warm-up on, chooses the next epoch's samples and weights under the
 * pace; after the last, the final easy set. st->include points at
 * r->easy and st->ce_weight at r->spl_w. */
static int spl_after(run_t *r, stage_t *st, int epoch) {
  const pipeline_spec_t *s = r->spec;
  spl_set_t set = {r->score, r->train_labels, r->n_train, r->classes};
  spl_config_t cfg;
  size_t n = (size_t)r->n_train;
  int epochs = st->cfg->epochs, kept = r->n_train, rc;
  double keep[256];
  /* Nothing is scored before the first epoch, so without warm-up the
   * first selection (at the start fraction) follows epoch 1. */
  int first = s->spl_warmup_epochs > 0 ? s->spl_warmup_epochs : 1;

  memcpy(r->hist_loss + (size_t)epoch * n, r->loss, n * sizeof(float));
  memcpy(r->hist_prob + (size_t)epoch * n, r->prob, n * sizeof(float));
  spl_epoch_scores(r);
  r->det_score = r->score;
  rc = spl_noise_update(r, epoch);
  if (rc)
    return rc;
  spl_config_from(s, &cfg);
  cfg.class_fraction = auto_fractions(r, keep);
  if (epoch + 1 >= first && epoch + 1 < epochs) {
    kept = spl_weights(&set, &cfg, epoch + 1 - first, epochs - first,
                       r->spl_w, r->easy);
    if (kept < 0)
      return fail(r, -ENOMEM, "out of memory selecting samples");
    st->last_kept = kept;
  } else if (epoch + 1 < epochs) {
    memset(r->easy, 1, n);
    for (size_t i = 0; i < n; i++)
      r->spl_w[i] = 1.0f;
  }
  if (epoch + 1 == epochs)
    return spl_final(r, epochs, st->last_kept);
  return 0;
}

/* teacher and student: the easy set is the one spl handed on. */
static int fixed_after(run_t *r, stage_t *st, int epoch) {
  (void)st;
  (void)epoch;
  memcpy(r->easy, r->final_easy, (size_t)r->n_train);
  return 0;
}

static int all_after(run_t *r, stage_t *st, int epoch) {
  (void)st;
  (void)epoch;
  memset(r->easy, 1, (size_t)r->n_train);
  return 0;
}

static int run_spl(run_t *r) {
  stage_t st = {PIPELINE_STAGE_SPL, &r->spec->spl};
  int rc = stage_model(r, &st, r->spec->seed, STREAM_SPL_INIT,
                       STREAM_SPL_SHUFFLE);

  if (rc == 0) {
    /* Training reads r->easy and r->spl_w as they stood after the
     * previous epoch. */
    memset(r->easy, 1, (size_t)r->n_train);
    for (int i = 0; i < r->n_train; i++)
      r->spl_w[i] = 1.0f;
    st.include = r->easy;
    st.ce_weight = r->spl_w;
    st.train_scores = r->spec->spl_score_pass == PIPELINE_PASS_TRAIN;
    st.spl_scored = 1;
    st.last_kept = r->n_train;
    /* The warm-up's class probabilities add up here until the noise
     * estimate is made. */
    memset(r->class_prob, 0, (size_t)r->n_train * r->classes * sizeof(float));
    r->noise.state = NOISE_COLLECTING;
    r->class_prob_on = 1;
    rc = stage_train(r, &st, spl_after);
    r->class_prob_on = 0;
  }
  model_free(st.model);
  return rc;
}

/* What one teacher leaves behind: its softened probabilities of every
 * training sample, each sample's probability of its observed label, and
 * for the first teacher of a hinted student its features. */
typedef struct {
  run_t *run;
  model_t *model;
  float *probs; /* (n_train, classes) at the kd temperature */
  float *conf;  /* (n_train) at temperature 1, or NULL */
  int feat_layer;
} teacher_out_t;

static void visit_teacher(void *ctx, int first, int b, const float *logits) {
  teacher_out_t *t = ctx;
  run_t *r = t->run;
  size_t dt = (size_t)r->hint_dt;

  loss_softmax(logits, t->probs + (size_t)first * r->classes, b, r->classes,
               (float)r->spec->kd_temperature);
  if (t->conf)
    loss_ce_forward(logits, r->train_labels + first, NULL, b, r->classes,
                    NULL, t->conf + first);
  if (t->feat_layer >= 0)
    memcpy(r->hint_t + (size_t)first * dt,
           model_layer_output(t->model, t->feat_layer),
           (size_t)b * dt * sizeof(float));
}

/* The stage number of teacher k. */
static int teacher_stage(const run_t *r, int k) {
  return r->spec->n_teachers == 1 ? PIPELINE_STAGE_TEACHER
                                  : PIPELINE_STAGE_TEACHER0 + k;
}

/* Loads teacher k from its checkpoint and checks that it fits the job's
 * samples and classes. */
static int teacher_load(run_t *r, int k, stage_t *st) {
  const pipeline_teacher_spec_t *t = &r->spec->teachers[k];
  checkpoint_meta_t meta;
  const dataset_t *f = r->file;
  int rc = checkpoint_load(t->path, r->batch_cap, team_size(r->team), &meta,
                           &st->model, r->err, r->errlen);

  if (rc)
    return rc;
  if (meta.in.c != f->channels || meta.in.h != f->height ||
      meta.in.w != f->width || meta.classes != r->classes) {
    snprintf(r->err, r->errlen,
             "teachers[%d].checkpoint '%s' holds a model for %dx%dx%d "
             "inputs and %d classes; the dataset has %dx%dx%d and %d",
             k, t->checkpoint, meta.in.c, meta.in.h, meta.in.w,
             meta.classes, f->channels, f->height, f->width, r->classes);
    return -EINVAL;
  }
  return 0;
}

/* A loaded teacher trains no epoch: it is evaluated once and reported as
 * epoch 1 of 1 without a training loss. */
static int teacher_evaluate(run_t *r, stage_t *st) {
  pipeline_stage_spec_t one = *st->cfg;
  pipeline_epoch_t m = {st->stage, 1, 1};
  double t0 = now_s();
  dynamics_t dyn;
  int rc = dynamics_init(&dyn, r->n_train);

  if (rc)
    return fail(r, rc, "out of memory for training dynamics");
  one.epochs = 1;
  st->cfg = &one;
  st->loaded = 1;
  rc = stage_resume(r, st, &dyn);
  if (rc == 0 && !st->done)
    rc = stage_begin(r, st->stage);
  if (rc == 0 && !st->done) {
    m.train_loss = NAN;
    r->score_kind = SPL_SCORE_LOSS;
    memset(r->weight, 0, sizeof(float) * (size_t)r->n_train);
    stage_evaluate(r, st->model, &m);
    r->det_score = r->loss;
    rc = dynamics_epoch(r, &dyn);
    if (rc == 0)
      rc = fixed_after(r, st, 0);
    m.seconds = now_s() - t0;
    if (rc == 0)
      rc = stage_report(r, st, 1, &m, &dyn);
  }
  st->cfg = NULL;
  dynamics_deinit(&dyn);
  return rc;
}

/* Room for the first teacher's features at the hint's layer, every
 * training sample's, once that teacher's model is known. */
static int hint_features_alloc(run_t *r, const model_t *teacher) {
  int layer = r->spec->hint_teacher_layer;
  size_t total;

  if (layer >= teacher->n_layers) {
    snprintf(r->err, r->errlen, "student.representation.teacher_layer %d: "
             "the first teacher has %d layers", layer, teacher->n_layers);
    return -EINVAL;
  }
  r->hint_dt = model_layer_dim(teacher, layer);
  total = (size_t)r->n_train * (size_t)r->hint_dt;
  if (total > HINT_VALUES_MAX) {
    snprintf(r->err, r->errlen, "student.representation.teacher_layer %d: "
             "%d values per sample for %d samples is more than the %d "
             "million the hint may hold; choose a smaller layer",
             layer, r->hint_dt, r->n_train, HINT_VALUES_MAX >> 20);
    return -EFBIG;
  }
  r->hint_t = malloc(total * sizeof(float));
  return r->hint_t ? 0
                   : fail(r, -ENOMEM, "out of memory for teacher features");
}

/* Trains (or loads) teacher k on the final easy set and fills out with
 * what the student learns from. */
static int run_teacher(run_t *r, int k, teacher_out_t *out) {
  const pipeline_teacher_spec_t *t = &r->spec->teachers[k];
  stage_t st = {teacher_stage(r, k), &t->stage};
  uint64_t seed = t->has_seed ? t->seed : r->spec->seed;
  uint64_t stream = k == 0 ? STREAM_TEACHER_INIT
                           : STREAM_TEACHERS + 2 * (uint64_t)k;
  int rc;

  st.include = r->final_easy;
  if (t->path[0]) {
    rc = teacher_load(r, k, &st);
    if (rc == 0)
      rc = teacher_evaluate(r, &st);
  } else {
    rc = stage_model(r, &st, seed, stream,
                     k == 0 ? STREAM_TEACHER_SHUFFLE : stream + 1);
    if (rc == 0)
      rc = stage_train(r, &st, fixed_after);
  }
  if (rc == 0 && k == 0 && r->spec->has_hint)
    rc = hint_features_alloc(r, st.model);
  if (rc == 0) {
    out->run = r;
    out->model = st.model;
    out->feat_layer = k == 0 && r->spec->has_hint
                          ? r->spec->hint_teacher_layer
                          : -1;
    infer_rows(r, st.model, r->file, r->train_index, r->n_train,
               visit_teacher, out);
  }
  model_free(st.model);
  return rc;
}

/* Every teacher in turn, then their outputs combined into
 * r->teacher_probs. */
static int run_teachers(run_t *r) {
  const pipeline_spec_t *s = r->spec;
  size_t n = (size_t)r->n_train, C = (size_t)r->classes;
  int K = s->n_teachers, rc = 0;
  float *probs[PIPELINE_TEACHERS_MAX] = {0}, *conf[PIPELINE_TEACHERS_MAX] = {0};

  for (int k = 0; k < K && rc == 0; k++) {
    teacher_out_t out = {0};
    /* One teacher writes straight into the target. */
    probs[k] = K == 1 ? r->teacher_probs : malloc(n * C * sizeof(float));
    conf[k] = K == 1 ? NULL : malloc(n * sizeof(float));
    if (!probs[k] || (K > 1 && !conf[k])) {
      rc = fail(r, -ENOMEM, "out of memory for teacher outputs");
      break;
    }
    out.probs = probs[k];
    out.conf = conf[k];
    rc = run_teacher(r, k, &out);
  }
  if (rc == 0 && K > 1)
    loss_teachers_combine(s->combine == PIPELINE_COMBINE_CONFIDENCE
                              ? LOSS_COMBINE_CONFIDENCE
                              : LOSS_COMBINE_MEAN,
                          (const float *const *)probs,
                          (const float *const *)conf, K, r->n_train,
                          r->classes, r->teacher_probs);
  for (int k = 0; K > 1 && k < K; k++) {
    free(probs[k]);
    free(conf[k]);
  }
  return rc;
}

/* student with weights_from "self": after each epoch the student's own
 * scores choose the next epoch's weights under the self-paced stage's
 * pace and weighting, as the self-paced stage does without warm-up.
 * st->ce_weight points at r->spl_w. */
static int self_after(run_t *r, stage_t *st, int epoch) {
  spl_set_t set = {r->score, r->train_labels, r->n_train, r->classes};
  spl_config_t cfg;
  int epochs = st->cfg->epochs;
  double keep[256];

  if (epoch + 1 >= epochs)
    return 0;
  spl_config_from(r->spec, &cfg);
  cfg.class_fraction = auto_fractions(r, keep);
  if (spl_weights(&set, &cfg, epoch, epochs - 1, r->spl_w, r->easy) < 0)
    return fail(r, -ENOMEM, "out of memory selecting samples");
  return 0;
}

/* The student's self-paced weights before its first epoch: the final
 * easy set's 0/1 from spl, or 1 everywhere when the student chooses its
 * own (nothing is scored yet). */
static void student_weights_init(run_t *r) {
  int self = r->spec->weights_from == PIPELINE_FROM_SELF;

  for (int i = 0; i < r->n_train; i++)
    r->spl_w[i] = self || r->final_easy[i] ? 1.0f : 0.0f;
  if (self)
    memset(r->easy, 1, (size_t)r->n_train);
  else
    memcpy(r->easy, r->final_easy, (size_t)r->n_train);
}

/* Frees a hint and what it holds; accepts NULL. */
static void hint_free(struct hint *h) {
  if (!h)
    return;
  free(h->P.value);
  free(h->P.grad);
  free(h->P.velocity);
  free(h->P.m2);
  free(h->ht);
  free(h->resid);
  free(h->dhs);
  free(h);
}

/* The student's hint: P (dt, ds) drawn around 0 with variance 1/ds. */
static int hint_new(run_t *r, stage_t *st, struct hint **out) {
  const pipeline_spec_t *s = r->spec;
  int layer = s->hint_student_layer, ds, dt = r->hint_dt;
  struct hint *h;
  rng_t rng;

  *out = NULL;
  if (layer >= st->model->n_layers) {
    snprintf(r->err, r->errlen, "student.representation.student_layer %d: "
             "the student has %d layers", layer, st->model->n_layers);
    return -EINVAL;
  }
  ds = model_layer_dim(st->model, layer);
  h = calloc(1, sizeof *h);
  if (!h)
    return fail(r, -ENOMEM, "out of memory for the representation hint");
  /* beta / dt: the hint is a mean over the teacher layer's features, so
   * one beta suits layers of any width. */
  *h = (struct hint){layer, {0, ds, dt, (float)(s->hint_beta / dt)}};
  h->P.n = (size_t)dt * ds;
  h->P.decay = 1;
  h->P.value = malloc(h->P.n * sizeof(float));
  h->P.grad = calloc(h->P.n, sizeof(float));
  h->P.velocity = calloc(h->P.n, sizeof(float));
  h->ht = malloc((size_t)r->batch_cap * dt * sizeof(float));
  h->resid = malloc((size_t)r->batch_cap * dt * sizeof(float));
  h->dhs = malloc((size_t)r->batch_cap * ds * sizeof(float));
  if (!h->P.value || !h->P.grad || !h->P.velocity || !h->ht || !h->resid ||
      !h->dhs || optim_param_prepare(&st->cfg->optim, &h->P) != 0) {
    hint_free(h);
    return fail(r, -ENOMEM, "out of memory for the representation hint");
  }
  rng_init(&rng, s->seed, STREAM_HINT_INIT);
  for (size_t i = 0; i < h->P.n; i++)
    h->P.value[i] = rng_normal(&rng) / sqrtf((float)ds);
  *out = h;
  return 0;
}

/* The student, or with baseline set the baseline. With keep not NULL the
 * trained stage is handed over there instead of freed. */
static int run_student(run_t *r, int baseline, pipeline_trained_t *keep) {
  const pipeline_spec_t *s = r->spec;
  stage_t st = {baseline ? PIPELINE_STAGE_BASELINE : PIPELINE_STAGE_STUDENT,
                baseline ? &s->baseline : &s->student};
  int self = s->weights_from == PIPELINE_FROM_SELF;
  int rc = stage_model(r, &st, s->seed, STREAM_STUDENT_INIT,
                       STREAM_STUDENT_SHUFFLE);

  if (rc == 0 && !baseline) {
    student_weights_init(r);
    st.ce_weight = s->student_weights == PIPELINE_WEIGHTS_NONE ? NULL
                                                               : r->spl_w;
    st.spl_scored = self;
    st.teacher_probs = r->teacher_probs;
    st.kd = (loss_kd_t){(float)s->kd_alpha, (float)s->kd_temperature,
                        s->student_weights == PIPELINE_WEIGHTS_ALL};
    if (s->has_hint)
      rc = hint_new(r, &st, &st.hint);
  }
  if (rc == 0)
    rc = stage_train(r, &st, baseline ? all_after
                             : self   ? self_after
                                      : fixed_after);
  hint_free(st.hint);
  if (rc == 0 && keep) {
    *keep = (pipeline_trained_t){st.model, st.steps, st.shuffle};
    st.model = NULL;
  }
  model_free(st.model);
  return rc;
}

static int report_data(run_t *r, int n_corrupted) {
  pipeline_data_t d = {r->n_train,     r->n_val,     r->train_index,
                       r->val_index,   r->file->n,   r->observed,
                       r->file->y,     n_corrupted};
  if (!r->hooks->on_data)
    return 0;
  return r->hooks->on_data(r->hooks->ctx, &d, r->err, r->errlen);
}

/* What every run starts with: its threads, its samples and labels, and
 * the per-sample buffers, reported through on_data. */
static int run_prepare(run_t *r, int threads) {
  int rc, n_corrupted = 0;

  if (r->classes < 2 || r->classes > 256)
    return fail(r, -EINVAL, "a dataset needs between 2 and 256 classes");
  /* BLAS runs single-threaded inside the job's own team, so a job uses
   * exactly its thread count, however many jobs share the process. */
  blas_threads_set(1);
  rc = team_new(threads, &r->team);
  if (rc)
    return fail(r, rc, "cannot start the job's threads");
  r->observed = malloc((size_t)r->file->n);
  rc = r->observed ? data_prepare(r, &n_corrupted)
                   : fail(r, -ENOMEM, "out of memory for labels");
  if (rc == 0)
    rc = buffers_alloc(r);
  if (rc == 0)
    rc = report_data(r, n_corrupted);
  return rc;
}

/* The baseline's lane: a copy of the run with its own team, buffers
 * and error message, trained on a thread of its own. */
typedef struct {
  run_t run;
  pthread_t thread;
  int rc;
  char err[512];
} lane_t;

static void *lane_main(void *arg) {
  lane_t *l = arg;
  int none = 0;

  l->rc = run_student(&l->run, 1, NULL);
  if (l->rc)
    atomic_compare_exchange_strong(l->run.stop, &none, 2);
  return NULL;
}

/* Starts the baseline on `threads` of the job's threads. */
static int lane_start(run_t *r, int threads, lane_t **out) {
  lane_t *l = calloc(1, sizeof *l);
  int rc;

  *out = NULL;
  if (!l)
    return fail(r, -ENOMEM, "out of memory for the baseline's lane");
  l->run = *r;
  l->run.err = l->err;
  l->run.errlen = sizeof l->err;
  l->run.team = NULL;
  rc = lane_alloc(&l->run);
  if (rc == 0)
    rc = team_new(threads, &l->run.team);
  if (rc == 0)
    rc = -pthread_create(&l->thread, NULL, lane_main, l);
  if (rc) {
    lane_deinit(&l->run);
    free(l);
    return fail(r, rc, "cannot start the baseline's lane");
  }
  *out = l;
  return 0;
}

/* Waits for the baseline's lane after the main lane ended with rc, and
 * returns the run's outcome: the main lane's failure, else the
 * baseline's (its message copied into r->err). */
static int lane_join(run_t *r, lane_t *l, int rc) {
  int none = 0;

  if (rc)
    atomic_compare_exchange_strong(r->stop, &none, 1);
  pthread_join(l->thread, NULL);
  if (l->rc && (rc == 0 || (rc == -ECANCELED && atomic_load(r->stop) == 2))) {
    snprintf(r->err, r->errlen, "%s", l->err);
    rc = l->rc;
  }
  lane_deinit(&l->run);
  free(l);
  return rc;
}

/* Gives the main lane a team of all the job's threads. */
static int lane_widen(run_t *r) {
  int rc;

  team_free(r->team);
  r->team = NULL;
  rc = team_new(r->spec->threads, &r->team);
  return rc ? fail(r, rc, "cannot start the job's threads") : 0;
}

int pipeline_run(const pipeline_spec_t *spec, const dataset_t *train,
                 const dataset_t *test, const pipeline_hooks_t *hooks,
                 char *err, size_t errlen) {
  run_t r = {spec, train, test, hooks, train->classes};
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  atomic_int stop = 0;
  lane_t *lane = NULL;
  /* The baseline needs nothing from the other stages: with two threads
   * or more it trains beside spl and the teachers on half of them, and
   * the student, which needs the teachers, gets them all after. */
  int side = spec->has_baseline && spec->parallel_stages && spec->threads > 1;
  int rc;

  r.err = err;
  r.errlen = errlen;
  r.hook_lock = &lock;
  r.stop = &stop;
  rc = run_prepare(&r, side ? spec->threads - spec->threads / 2
                            : spec->threads);
  if (rc == 0 && side)
    rc = lane_start(&r, spec->threads / 2, &lane);
  if (rc == 0)
    rc = run_spl(&r);
  if (rc == 0)
    rc = run_teachers(&r);
  if (lane)
    rc = lane_join(&r, lane, rc);
  if (rc == 0 && side)
    rc = lane_widen(&r);
  if (rc == 0)
    rc = run_student(&r, 0, NULL);
  if (rc == 0 && spec->has_baseline && !side)
    rc = run_student(&r, 1, NULL);
  run_deinit(&r);
  pthread_mutex_destroy(&lock);
  return rc;
}

void pipeline_train_defaults(pipeline_train_spec_t *spec) {
  pipeline_spec_t d;

  pipeline_spec_defaults(&d);
  memset(spec, 0, sizeof *spec);
  spec->seed = d.seed;
  spec->threads = d.threads;
  spec->stage = d.baseline;
  spec->stage.epochs = 10;
}

int pipeline_train(const pipeline_train_spec_t *spec, const dataset_t *train,
                   const dataset_t *test, const pipeline_hooks_t *hooks,
                   pipeline_trained_t *out, char *err, size_t errlen) {
  pipeline_spec_t whole;
  run_t r = {&whole, train, test, hooks, train->classes};
  int rc;

  /* A job of the baseline stage alone, on every sample. */
  pipeline_spec_defaults(&whole);
  whole.seed = spec->seed;
  whole.threads = spec->threads;
  whole.validation_fraction = spec->validation_fraction;
  whole.limit = spec->limit;
  whole.baseline = spec->stage;
  r.err = err;
  r.errlen = errlen;
  memset(out, 0, sizeof *out);
  rc = run_prepare(&r, spec->threads);
  if (rc == 0)
    rc = run_student(&r, 1, out);
  run_deinit(&r);
  return rc;
}
