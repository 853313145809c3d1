/* SPDX-License-Identifier: MIT */
/* `spkd train`: parses its options, loads the dataset, trains one model
 * with pipeline_train and prints each epoch; --save writes a checkpoint.
 * Every refusal is one line on stderr naming the problem. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/checkpoint.h"
#include "../engine/dataset.h"
#include "../engine/model.h"
#include "../engine/pipeline.h"
#include "outpath.h"

typedef struct {
  const char *dataset;
  const char *data_root;
  const char *save;
  pipeline_train_spec_t spec;
} train_opts_t;

/* One numeric option: its flag, where it goes, and its range. */
typedef struct {
  const char *flag;
  double lo, hi;
  int integer;
  double *dst;   /* for reals */
  int *idst;     /* for integers */
  uint64_t *udst;
} num_opt_t;

static int parse_number(const num_opt_t *o, const char *val) {
  char *end;
  double v;

  errno = 0;
  v = strtod(val, &end);
  if (errno || end == val || *end || !isfinite(v) || v < o->lo ||
      v > o->hi ||
      (o->integer && v != (double)(long long)v)) {
    fprintf(stderr, "spkd train: %s must be %s from %g to %g, not '%s'\n",
            o->flag, o->integer ? "an integer" : "a number", o->lo, o->hi,
            val);
    return -1;
  }
  if (o->dst)
    *o->dst = v;
  else if (o->idst)
    *o->idst = (int)v;
  else
    *o->udst = (uint64_t)v;
  return 0;
}

/* Looks val up in a NULL-terminated list; -1 with a message if absent. */
static int parse_choice(const char *flag, const char *val,
                        const char *const *names, int *out) {
  for (int i = 0; names[i]; i++)
    if (strcmp(names[i], val) == 0) {
      *out = i;
      return 0;
    }
  fprintf(stderr, "spkd train: %s '%s' is not one of:", flag, val);
  for (int i = 0; names[i]; i++)
    fprintf(stderr, " %s", names[i]);
  fprintf(stderr, "\n");
  return -1;
}

static int parse_word(train_opts_t *o, const char *flag, const char *val) {
  static const char *const optims[] = {"sgd", "adam", "adamw", NULL};
  static const char *const schedules[] = {"constant", "cosine", "step",
                                          NULL};
  optim_config_t *c = &o->spec.stage.optim;

  if (strcmp(flag, "--dataset") == 0)
    o->dataset = val;
  else if (strcmp(flag, "--data-root") == 0)
    o->data_root = val;
  else if (strcmp(flag, "--save") == 0)
    o->save = val;
  else if (strcmp(flag, "--model") == 0) {
    if (!model_preset_known(val)) {
      int i;
      return parse_choice(flag, val, model_preset_names, &i);
    }
    snprintf(o->spec.stage.model, sizeof o->spec.stage.model, "%s", val);
  } else if (strcmp(flag, "--optimizer") == 0)
    return parse_choice(flag, val, optims, &c->kind);
  else if (strcmp(flag, "--schedule") == 0)
    return parse_choice(flag, val, schedules, &c->schedule);
  else
    return 1;
  return 0;
}

static int parse_flag(train_opts_t *o, const char *flag, const char *val) {
  optim_config_t *c = &o->spec.stage.optim;
  const num_opt_t nums[] = {
      {"--epochs", 1, 1000, 1, NULL, &o->spec.stage.epochs, NULL},
      {"--batch", 1, 4096, 1, NULL, &c->batch_size, NULL},
      {"--lr", 1e-9, 10, 0, &c->lr, NULL, NULL},
      {"--momentum", 0, 0.999, 0, &c->momentum, NULL, NULL},
      {"--weight-decay", 0, 1, 0, &c->weight_decay, NULL, NULL},
      {"--seed", 0, 9007199254740991.0, 1, NULL, NULL, &o->spec.seed},
      {"--threads", 1, 64, 1, NULL, &o->spec.threads, NULL},
      {"--limit", 0, 10000000, 1, NULL, &o->spec.limit, NULL},
      {"--validation", 0, 0.5, 0, &o->spec.validation_fraction, NULL, NULL}};
  int rc = parse_word(o, flag, val);

  if (rc <= 0)
    return rc;
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    if (strcmp(flag, nums[i].flag) == 0)
      return parse_number(&nums[i], val);
  fprintf(stderr, "spkd train: unknown option '%s' (see spkd train "
          "--help)\n", flag);
  return -1;
}

static void usage(void) {
  printf("usage: spkd train --dataset NAME [--model mlp|mlp-small|cnn]\n"
         "         [--epochs N] [--batch N] [--lr X] [--momentum X]\n"
         "         [--weight-decay X] [--optimizer sgd|adam|adamw]\n"
         "         [--schedule constant|cosine|step] [--seed N]\n"
         "         [--threads N] [--limit N] [--validation F]\n"
         "         [--data-root DIR]\n"
         "         [--save FILE]\n");
}

static int parse_args(int argc, char **argv, train_opts_t *o) {
  for (int i = 1; i < argc; i += 2) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage();
      exit(0);
    }
    if (strncmp(argv[i], "--", 2) != 0) {
      fprintf(stderr, "spkd train: unexpected argument '%s'\n", argv[i]);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "spkd train: %s needs a value\n", argv[i]);
      return -1;
    }
    if (parse_flag(o, argv[i], argv[i + 1]) < 0)
      return -1;
  }
  if (!o->dataset) {
    fprintf(stderr, "spkd train: --dataset is required\n");
    return -1;
  }
  return 0;
}

/* Prints the last epoch's per-class test accuracy and confusion matrix
 * (rows: true class, columns: predicted). */
static void print_confusion(const eval_confusion_t *c) {
  printf("class_acc=");
  for (int k = 0; k < c->classes; k++)
    printf("%s%.4f", k ? "," : "", eval_class_accuracy(c, k));
  printf("\nconfusion=");
  for (int i = 0; i < c->classes; i++)
    for (int j = 0; j < c->classes; j++)
      printf("%s%ld", i || j ? (j ? "," : ";") : "",
             c->counts[(size_t)i * c->classes + j]);
  printf("\n");
}

static int on_epoch(void *ctx, const pipeline_epoch_t *m,
                    const pipeline_records_t *rec, char *err,
                    size_t errlen) {
  double *last = ctx;

  (void)rec;
  (void)err;
  (void)errlen;
  printf("epoch=%d loss=%.4f train_acc=%.4f val_acc=%.4f test_acc=%.4f "
         "samples_per_s=%.0f lr=%.5f seconds=%.2f\n",
         m->epoch, m->train_loss, m->train_acc, m->val_acc, m->test_acc,
         m->samples_per_s, m->lr, m->seconds);
  if (m->epoch == m->epochs && m->test_confusion)
    print_confusion(m->test_confusion);
  fflush(stdout);
  *last = m->test_acc;
  return 0;
}

static int save(const train_opts_t *o, const pipeline_trained_t *t,
                const dataset_t *train) {
  checkpoint_meta_t meta = {.in = {train->channels, train->height,
                                   train->width},
                            .classes = train->classes,
                            .optim = o->spec.stage.optim,
                            .steps = t->steps,
                            .epoch = o->spec.stage.epochs,
                            .rng = t->shuffle};
  char err[512];

  model_preset(o->spec.stage.model, &meta.desc);
  if (checkpoint_save(o->save, t->model, &meta, err, sizeof err) != 0) {
    fprintf(stderr, "spkd train: %s\n", err);
    return 1;
  }
  return 0;
}

static int train_run(const train_opts_t *o) {
  dataset_t train, test;
  pipeline_trained_t trained = {0};
  double last = 0.0;
  pipeline_hooks_t hooks = {.ctx = &last, .on_epoch = on_epoch};
  char err[512];
  int rc;

  rc = dataset_load(o->data_root, o->dataset, DATASET_NORM_STANDARDIZE,
                    &train, &test, err, sizeof err);
  if (rc) {
    fprintf(stderr, "spkd train: %s\n", err);
    return 1;
  }
  if (o->spec.limit > train.n) {
    fprintf(stderr, "spkd train: --limit %d exceeds the %d samples of the "
            "training file\n", o->spec.limit, train.n);
    dataset_deinit(&train);
    dataset_deinit(&test);
    return 1;
  }
  rc = pipeline_train(&o->spec, &train, &test, &hooks, &trained, err,
                      sizeof err);
  if (rc)
    fprintf(stderr, "spkd train: %s\n", err);
  else
    printf("test_acc=%.4f\n", last);
  if (rc == 0 && o->save)
    rc = save(o, &trained, &train);
  model_free(trained.model);
  dataset_deinit(&train);
  dataset_deinit(&test);
  return rc ? 1 : 0;
}

int train_main(int argc, char **argv) {
  train_opts_t o = {NULL, "/usr/share/datasets", NULL, {0}};
  char err[512];

  pipeline_train_defaults(&o.spec);
  if (parse_args(argc, argv, &o) < 0)
    return 2;
  if (o.save && outpath_check(o.save, err, sizeof err) < 0) {
    fprintf(stderr, "spkd train: --save: %s\n", err);
    return 1;
  }
  return train_run(&o);
}
