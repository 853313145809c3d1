/* SPDX-License-Identifier: MIT */
/* Unit tests of server/spec.c: job specs read into pipeline_spec_t values,
 * stage optimizers laid over the job's, and every refusal naming its field.
 * Specs are written with single quotes and turned into JSON before parsing;
 * the examples are read from examples/ relative to the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/spec.h"

#define DS "'dataset': {'name': 'fashion-mnist'}"
#define TEN "abcdefghij"
#define HUNDRED TEN TEN TEN TEN TEN TEN TEN TEN TEN TEN

/* A custom model with one layer of every type, strides and padding left
 * to their defaults where a layer has them. */
#define EVERY_LAYER                                                            \
  "{'layers': [{'type': 'conv2d', 'filters': 8, 'kernel': 3},"                 \
  " {'type': 'relu'}, {'type': 'maxpool', 'size': 2},"                         \
  " {'type': 'conv2d', 'filters': 4, 'kernel': 5, 'stride': 2, 'pad': 1},"     \
  " {'type': 'maxpool', 'size': 3, 'stride': 1},"                              \
  " {'type': 'dropout', 'rate': 0.25}, {'type': 'flatten'},"                   \
  " {'type': 'dense', 'units': 10}]}"

/* EVERY_LAYER with every default written out. */
#define EVERY_LAYER_EXPLICIT                                                   \
  "{'layers': [{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'stride': 1,"     \
  "   'pad': 0},"                                                              \
  " {'type': 'relu'}, {'type': 'maxpool', 'size': 2, 'stride': 2},"            \
  " {'type': 'conv2d', 'filters': 4, 'kernel': 5, 'stride': 2, 'pad': 1},"     \
  " {'type': 'maxpool', 'size': 3, 'stride': 1},"                              \
  " {'type': 'dropout', 'rate': 0.25}, {'type': 'flatten'},"                   \
  " {'type': 'dense', 'units': 10}]}"

/* The student's model given as the one layer x. */
#define LAYER(x) "{" DS ", 'student': {'model': {'layers': [" x "]}}}"

/* The spec of the task, as examples/sym40.json holds it. */
static const char sym40[] =
    "{'name': 'fmnist-sym40', 'seed': 1, 'threads': 2,"
    " 'dataset': {'name': 'fashion-mnist', 'limit': 0,"
    "   'validation_fraction': 0.1,"
    "   'label_noise': {'kind': 'symmetric', 'rate': 0.4, 'seed': 7}},"
    " 'optimizer': {'kind': 'sgd', 'lr': 0.05, 'momentum': 0.9,"
    "   'weight_decay': 5e-4, 'batch_size': 128, 'schedule': 'cosine'},"
    " 'spl': {'model': 'mlp', 'epochs': 10, 'warmup_epochs': 2,"
    "   'optimizer': {'schedule': 'constant'},"
    "   'pace': {'kind': 'fraction', 'start': 0.5, 'end': 0.8}},"
    " 'teachers': [{'model': 'mlp', 'epochs': 15}],"
    " 'student': {'model': 'mlp', 'epochs': 20,"
    "   'kd': {'alpha': 0.7, 'temperature': 2}},"
    " 'baseline': {'model': 'mlp', 'epochs': 20}}";

/* Every key with a value other than its default. */
static const char every_key[] =
    "{'name': 'all-keys', 'seed': 42, 'threads': 3,"
    " 'dataset': {'name': 'mnist', 'limit': 5000,"
    "   'validation_fraction': 0.2, 'normalize': 'scale',"
    "   'label_noise': {'kind': 'pair', 'rate': 0.25, 'seed': 11}},"
    " 'optimizer': {'kind': 'sgd', 'lr': 0.02, 'momentum': 0.8,"
    "   'nesterov': true, 'weight_decay': 0.001, 'decay_bias': false,"
    "   'beta1': 0.8, 'beta2': 0.99, 'eps': 1e-6, 'batch_size': 64,"
    "   'schedule': 'step', 'warmup_epochs': 0.5, 'step_epochs': 3,"
    "   'gamma': 0.5},"
    " 'spl': {'model': 'mlp-small', 'epochs': 6, 'warmup_epochs': 1,"
    "   'optimizer': {'schedule': 'cosine', 'batch_size': 32},"
    "   'pace': {'kind': 'fraction', 'start': 0.3, 'end': 0.9}},"
    " 'teachers': [{'model': 'cnn', 'epochs': 7,"
    "   'optimizer': {'lr': 0.1, 'kind': 'adamw', 'nesterov': false}}],"
    " 'student': {'model': " EVERY_LAYER ", 'epochs': 8,"
    "   'optimizer': {'momentum': 0.5, 'kind': 'adam', 'nesterov': false,"
    "     'gamma': 0.2},"
    "   'kd': {'alpha': 0.4, 'temperature': 3.5}},"
    " 'baseline': {'model': " EVERY_LAYER_EXPLICIT ", 'epochs': 8,"
    "   'optimizer': {'weight_decay': 0}}}";

/* every_key with the keys of every object in another order: the stages
 * and their overrides come before the job-wide optimizer. */
static const char every_key_reordered[] =
    "{'baseline': {'optimizer': {'weight_decay': 0}, 'epochs': 8,"
    "   'model': " EVERY_LAYER "},"
    " 'student': {'kd': {'temperature': 3.5, 'alpha': 0.4},"
    "   'optimizer': {'gamma': 0.2, 'nesterov': false, 'kind': 'adam',"
    "     'momentum': 0.5}, 'epochs': 8, 'model': " EVERY_LAYER "},"
    " 'teachers': [{'optimizer': {'nesterov': false, 'kind': 'adamw',"
    "   'lr': 0.1}, 'epochs': 7, 'model': 'cnn'}],"
    " 'spl': {'pace': {'end': 0.9, 'start': 0.3, 'kind': 'fraction'},"
    "   'optimizer': {'batch_size': 32, 'schedule': 'cosine'},"
    "   'warmup_epochs': 1, 'epochs': 6, 'model': 'mlp-small'},"
    " 'optimizer': {'gamma': 0.5, 'step_epochs': 3, 'warmup_epochs': 0.5,"
    "   'schedule': 'step', 'batch_size': 64, 'eps': 1e-6, 'beta2': 0.99,"
    "   'beta1': 0.8, 'decay_bias': false, 'weight_decay': 0.001,"
    "   'nesterov': true, 'momentum': 0.8, 'lr': 0.02, 'kind': 'sgd'},"
    " 'dataset': {'label_noise': {'seed': 11, 'rate': 0.25,"
    "   'kind': 'pair'}, 'normalize': 'scale', 'validation_fraction': 0.2,"
    "   'limit': 5000, 'name': 'mnist'},"
    " 'threads': 3, 'seed': 42, 'name': 'all-keys'}";

/* Parses text written with single quotes in place of double quotes. */
static int parse_q(const char *q, pipeline_spec_t *spec, spec_error_t *err) {
  size_t n = strlen(q);
  char *text = malloc(n + 1);
  int rc;

  assert_non_null(text);
  for (size_t i = 0; i <= n; i++)
    text[i] = q[i] == '\'' ? '"' : q[i];
  rc = spec_parse(text, n, spec, err);
  free(text);
  return rc;
}

/* Parses q and fails the test, showing the message, when it is refused. */
static void parse_ok(const char *q, pipeline_spec_t *spec) {
  spec_error_t err;

  if (parse_q(q, spec, &err) != 0)
    fail_msg("refused %s: [%s] %s", q, err.field, err.message);
}

/* An SGD optimizer with the given keys and every other key at the
 * default the spec documents. */
static optim_config_t sgd(double lr, double momentum, double weight_decay,
                          int batch_size, int schedule) {
  optim_config_t c = {.kind = OPTIM_SGD,
                      .lr = lr,
                      .momentum = momentum,
                      .weight_decay = weight_decay,
                      .batch_size = batch_size,
                      .schedule = schedule,
                      .decay_bias = 1,
                      .beta1 = 0.9,
                      .beta2 = 0.999,
                      .eps = 1e-8,
                      .step_epochs = 10,
                      .gamma = 0.1};

  return c;
}

/* A stage of a preset model. */
static pipeline_stage_spec_t preset(const char *model, int epochs,
                                    optim_config_t optim) {
  pipeline_stage_spec_t st = {.epochs = epochs, .optim = optim};

  snprintf(st.model, sizeof st.model, "%s", model);
  return st;
}

static void assert_optim_equal(const optim_config_t *a,
                               const optim_config_t *b) {
  assert_int_equal(a->kind, b->kind);
  assert_true(a->lr == b->lr);
  assert_true(a->momentum == b->momentum);
  assert_true(a->weight_decay == b->weight_decay);
  assert_int_equal(a->batch_size, b->batch_size);
  assert_int_equal(a->schedule, b->schedule);
  assert_int_equal(a->nesterov, b->nesterov);
  assert_int_equal(a->decay_bias, b->decay_bias);
  assert_true(a->beta1 == b->beta1);
  assert_true(a->beta2 == b->beta2);
  assert_true(a->eps == b->eps);
  assert_true(a->warmup_epochs == b->warmup_epochs);
  assert_int_equal(a->step_epochs, b->step_epochs);
  assert_true(a->gamma == b->gamma);
}

static void assert_layer_equal(const layer_desc_t *a, const layer_desc_t *b) {
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->units, b->units);
  assert_int_equal(a->filters, b->filters);
  assert_int_equal(a->kernel, b->kernel);
  assert_int_equal(a->stride, b->stride);
  assert_int_equal(a->pad, b->pad);
  assert_true(a->rate == b->rate);
}

static void assert_stage_equal(const pipeline_stage_spec_t *a,
                               const pipeline_stage_spec_t *b) {
  assert_string_equal(a->model, b->model);
  assert_int_equal(a->epochs, b->epochs);
  assert_optim_equal(&a->optim, &b->optim);
  assert_int_equal(a->desc.n_layers, b->desc.n_layers);
  for (int i = 0; i < a->desc.n_layers; i++)
    assert_layer_equal(&a->desc.layers[i], &b->desc.layers[i]);
}

static void assert_teacher_equal(const pipeline_teacher_spec_t *a,
                                 const pipeline_teacher_spec_t *b) {
  assert_stage_equal(&a->stage, &b->stage);
  assert_int_equal(a->has_seed, b->has_seed);
  assert_true(a->seed == b->seed);
  assert_string_equal(a->checkpoint, b->checkpoint);
}

static void assert_spec_equal(const pipeline_spec_t *a,
                              const pipeline_spec_t *b) {
  assert_string_equal(a->name, b->name);
  assert_true(a->seed == b->seed);
  assert_int_equal(a->threads, b->threads);
  assert_string_equal(a->dataset, b->dataset);
  assert_int_equal(a->norm, b->norm);
  assert_int_equal(a->limit, b->limit);
  assert_true(a->validation_fraction == b->validation_fraction);
  assert_int_equal(a->noise_kind, b->noise_kind);
  assert_true(a->noise_rate == b->noise_rate);
  assert_true(a->noise_seed == b->noise_seed);
  assert_stage_equal(&a->spl, &b->spl);
  assert_int_equal(a->spl_warmup_epochs, b->spl_warmup_epochs);
  assert_true(a->pace_start == b->pace_start);
  assert_true(a->pace_end == b->pace_end);
  assert_int_equal(a->n_teachers, b->n_teachers);
  for (int k = 0; k < a->n_teachers; k++)
    assert_teacher_equal(&a->teachers[k], &b->teachers[k]);
  assert_int_equal(a->combine, b->combine);
  assert_stage_equal(&a->student, &b->student);
  assert_true(a->kd_alpha == b->kd_alpha);
  assert_true(a->kd_temperature == b->kd_temperature);
  assert_int_equal(a->student_weights, b->student_weights);
  assert_int_equal(a->weights_from, b->weights_from);
  assert_int_equal(a->has_hint, b->has_hint);
  assert_int_equal(a->hint_teacher_layer, b->hint_teacher_layer);
  assert_int_equal(a->hint_student_layer, b->hint_student_layer);
  assert_true(a->hint_beta == b->hint_beta);
  assert_int_equal(a->has_baseline, b->has_baseline);
  assert_stage_equal(&a->baseline, &b->baseline);
}

/* What the sym40 spec means, written out by hand. */
static void sym40_expected(pipeline_spec_t *s) {
  const optim_config_t job = sgd(0.05, 0.9, 5e-4, 128, OPTIM_SCHEDULE_COSINE);
  optim_config_t spl = job;

  spl.schedule = OPTIM_SCHEDULE_CONSTANT;
  memset(s, 0, sizeof *s);
  strcpy(s->name, "fmnist-sym40");
  s->seed = 1;
  s->threads = 2;
  strcpy(s->dataset, "fashion-mnist");
  s->validation_fraction = 0.1;
  s->norm = DATASET_NORM_STANDARDIZE;
  s->noise_kind = PIPELINE_NOISE_SYMMETRIC;
  s->noise_rate = 0.4;
  s->noise_seed = 7;
  s->spl = preset("mlp", 10, spl);
  s->spl_warmup_epochs = 2;
  s->pace_start = 0.5;
  s->pace_end = 0.8;
  s->teachers[0].stage = preset("mlp", 15, job);
  s->n_teachers = 1;
  s->combine = PIPELINE_COMBINE_MEAN;
  s->student = preset("mlp", 20, job);
  s->kd_alpha = 0.7;
  s->kd_temperature = 2.0;
  s->student_weights = PIPELINE_WEIGHTS_CE;
  s->weights_from = PIPELINE_FROM_SPL;
  s->hint_beta = 1.0;
  s->has_baseline = 1;
  s->baseline = preset("mlp", 20, job);
}

static void test_sym40_parses(void **state) {
  pipeline_spec_t got, want;

  (void)state;
  parse_ok(sym40, &got);
  sym40_expected(&want);
  assert_spec_equal(&got, &want);
}

/* What EVERY_LAYER means, written out by hand. */
static pipeline_stage_spec_t every_layer_stage(int epochs,
                                               optim_config_t optim) {
  static const layer_desc_t layers[] = {
      {.kind = LAYER_CONV2D, .filters = 8, .kernel = 3, .stride = 1},
      {.kind = LAYER_RELU},
      {.kind = LAYER_MAXPOOL, .kernel = 2, .stride = 2},
      {.kind = LAYER_CONV2D, .filters = 4, .kernel = 5, .stride = 2, .pad = 1},
      {.kind = LAYER_MAXPOOL, .kernel = 3, .stride = 1},
      {.kind = LAYER_DROPOUT, .rate = 0.25f},
      {.kind = LAYER_FLATTEN},
      {.kind = LAYER_DENSE, .units = 10},
  };
  pipeline_stage_spec_t st = preset("custom", epochs, optim);

  st.desc.n_layers = (int)(sizeof layers / sizeof layers[0]);
  memcpy(st.desc.layers, layers, sizeof layers);
  return st;
}

static void test_every_key_is_read(void **state) {
  optim_config_t job = sgd(0.02, 0.8, 0.001, 64, OPTIM_SCHEDULE_STEP), o;
  pipeline_stage_spec_t want;
  pipeline_spec_t s;

  (void)state;
  parse_ok(every_key, &s);
  assert_string_equal(s.name, "all-keys");
  assert_true(s.seed == 42);
  assert_int_equal(s.threads, 3);
  assert_string_equal(s.dataset, "mnist");
  assert_int_equal(s.limit, 5000);
  assert_true(s.validation_fraction == 0.2);
  assert_int_equal(s.norm, DATASET_NORM_SCALE);
  assert_int_equal(s.noise_kind, PIPELINE_NOISE_PAIR);
  assert_true(s.noise_rate == 0.25);
  assert_true(s.noise_seed == 11);
  assert_int_equal(s.spl_warmup_epochs, 1);
  assert_true(s.pace_start == 0.3 && s.pace_end == 0.9);
  assert_true(s.kd_alpha == 0.4 && s.kd_temperature == 3.5);
  assert_int_equal(s.has_baseline, 1);

  /* Each stage is the job's optimizer with its own keys laid over it. */
  job.nesterov = 1;
  job.decay_bias = 0;
  job.beta1 = 0.8;
  job.beta2 = 0.99;
  job.eps = 1e-6;
  job.warmup_epochs = 0.5;
  job.step_epochs = 3;
  job.gamma = 0.5;
  o = job;
  o.schedule = OPTIM_SCHEDULE_COSINE;
  o.batch_size = 32;
  want = preset("mlp-small", 6, o);
  assert_stage_equal(&s.spl, &want);
  o = job;
  o.lr = 0.1;
  o.kind = OPTIM_ADAMW;
  o.nesterov = 0;
  want = preset("cnn", 7, o);
  assert_stage_equal(&s.teachers[0].stage, &want);
  o = job;
  o.momentum = 0.5;
  o.kind = OPTIM_ADAM;
  o.nesterov = 0;
  o.gamma = 0.2;
  want = every_layer_stage(8, o);
  assert_stage_equal(&s.student, &want);
  o = job;
  o.weight_decay = 0;
  want = every_layer_stage(8, o);
  assert_stage_equal(&s.baseline, &want);
}

static void test_key_order_does_not_matter(void **state) {
  pipeline_spec_t a, b;

  (void)state;
  parse_ok(every_key, &a);
  parse_ok(every_key_reordered, &b);
  assert_spec_equal(&a, &b);
}

static void test_defaults_with_only_dataset_name(void **state) {
  pipeline_spec_t got, want;
  const optim_config_t documented =
      sgd(0.05, 0.9, 5e-4, 128, OPTIM_SCHEDULE_COSINE);
  pipeline_stage_spec_t *stages[] = {&want.spl, &want.teachers[0].stage,
                                     &want.student, &want.baseline};

  (void)state;
  parse_ok("{" DS "}", &got);
  pipeline_spec_defaults(&want);
  strcpy(want.dataset, "fashion-mnist");
  want.has_baseline = 0;

  /* The engine's defaults, with the step schedule's own (which only a
   * step schedule reads) where the engine leaves them unset. */
  for (int i = 0; i < 4; i++) {
    if (stages[i]->optim.step_epochs == 0)
      stages[i]->optim.step_epochs = 10;
    if (stages[i]->optim.gamma == 0)
      stages[i]->optim.gamma = 0.1;
  }
  assert_spec_equal(&got, &want);
  assert_string_equal(got.name, "");
  assert_int_equal(got.noise_kind, PIPELINE_NOISE_NONE);
  assert_int_equal(got.norm, DATASET_NORM_STANDARDIZE);
  assert_int_equal(got.has_baseline, 0);
  assert_int_equal(got.n_teachers, 1);
  assert_int_equal(got.teachers[0].has_seed, 0);
  assert_string_equal(got.teachers[0].checkpoint, "");
  assert_int_equal(got.combine, PIPELINE_COMBINE_MEAN);
  assert_int_equal(got.student_weights, PIPELINE_WEIGHTS_CE);
  assert_int_equal(got.weights_from, PIPELINE_FROM_SPL);
  assert_int_equal(got.has_hint, 0);

  /* Which is what the spec's documentation promises. */
  for (int i = 0; i < 4; i++) {
    assert_optim_equal(&stages[i]->optim, &documented);
    assert_int_equal(stages[i]->desc.n_layers, 0);
  }
}

static void test_null_and_derived_sections(void **state) {
  pipeline_spec_t s;

  (void)state;
  parse_ok("{'dataset': {'name': 'd', 'label_noise': null},"
           " 'baseline': null}",
           &s);
  assert_int_equal(s.noise_kind, PIPELINE_NOISE_NONE);
  assert_int_equal(s.has_baseline, 0);

  /* Without a baseline key there is no baseline; an empty baseline
   * object follows the student. */
  parse_ok("{" DS ", 'student': {'epochs': 7}}", &s);
  assert_int_equal(s.has_baseline, 0);
  parse_ok("{" DS ", 'student': {'epochs': 7}, 'baseline': {}}", &s);
  assert_int_equal(s.has_baseline, 1);
  assert_int_equal(s.baseline.epochs, 7);
  assert_string_equal(s.baseline.model, "mlp");

  /* An empty label_noise object turns symmetric noise on at its defaults. */
  parse_ok("{'dataset': {'name': 'd', 'label_noise': {}}}", &s);
  assert_int_equal(s.noise_kind, PIPELINE_NOISE_SYMMETRIC);
  assert_true(s.noise_rate == 0.0 && s.noise_seed == 0);

  /* A default warm-up longer than the stage is cut to its epochs. */
  parse_ok("{" DS ", 'spl': {'epochs': 1}}", &s);
  assert_int_equal(s.spl.epochs, 1);
  assert_int_equal(s.spl_warmup_epochs, 1);
}

typedef struct {
  const char *spec;
  const char *field;
  int malformed;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    /* Not a spec at all. */
    {"{'seed': 1,}", "", 1},
    {"{" DS "} x", "", 1},
    {"", "", 1},
    {"{'name': 'a\xff'," DS "}", "", 1},
    {"[1, 2]", "", 0},
    {"'fmnist'", "", 0},
    {"42", "", 0},
    {"null", "", 0},
    {"{'dataset': {'name': 'fashion-mnist\\u0000'}}", "dataset.name", 0},
    {"{'seed': 1, 'seed': 2, " DS "}", "seed", 0},
    {"{" DS ", 'spl': {'epochs': 3, 'epochs': 4}}", "spl.epochs", 0},
    {"{" DS ", 'teachers': [{'epochs': 3, 'epochs': 4}]}", "teachers[0].epochs",
     0},
    {"{" DS ", 'seed': 1e999}", "seed", 0},
    {"{" DS ", 'seed': 123456789012345678901234567890}", "seed", 0},

    /* Unknown keys. */
    {"{" DS ", 'bogus': 1}", "bogus", 0},
    {"{" DS ", 'spl': {'pace': {'foo': 1}}}", "spl.pace.foo", 0},
    {"{" DS ", 'teachers': [{'lr': 0.1}]}", "teachers[0].lr", 0},
    {"{" DS ", 'optimizer': {'nesterow': true}}", "optimizer.nesterow", 0},
    {"{'dataset': {'name': 'd', 'normalise': 'scale'}}", "dataset.normalise",
     0},
    {"{'dataset': {'name': 'd', 'label_noise': {'rat': 0.1}}}",
     "dataset.label_noise.rat", 0},

    /* Missing and wrongly typed values. */
    {"{}", "dataset.name", 0},
    {"{'dataset': {}}", "dataset.name", 0},
    {"{'dataset': 'fashion-mnist'}", "dataset", 0},
    {"{'dataset': {'name': 7}}", "dataset.name", 0},
    {"{" DS ", 'name': 5}", "name", 0},
    {"{" DS ", 'seed': '1'}", "seed", 0},
    {"{" DS ", 'seed': 2.0}", "seed", 0},
    {"{" DS ", 'threads': true}", "threads", 0},
    {"{" DS ", 'spl': {'epochs': 2.0}}", "spl.epochs", 0},
    {"{" DS ", 'spl': null}", "spl", 0},
    {"{" DS ", 'optimizer': {'lr': '0.1'}}", "optimizer.lr", 0},
    {"{" DS ", 'optimizer': {'schedule': 1}}", "optimizer.schedule", 0},
    {"{" DS ", 'teachers': {'epochs': 3}}", "teachers", 0},
    {"{" DS ", 'teachers': [1]}", "teachers[0]", 0},
    {"{" DS ", 'student': {'kd': {'alpha': null}}}", "student.kd.alpha", 0},
    {"{'dataset': {'name': 'd', 'label_noise': 'symmetric'}}",
     "dataset.label_noise", 0},
    {"{" DS ", 'baseline': 1}", "baseline", 0},
    {"{" DS ", 'spl': {'model': 3}}", "spl.model", 0},

    /* Values just outside their range. */
    {"{" DS ", 'name': ''}", "name", 0},
    {"{" DS ", 'name': '" HUNDRED "x'}", "name", 0},
    {"{" DS ", 'name': 'a\\u0007b'}", "name", 0},
    {"{" DS ", 'name': 'a\\u0085b'}", "name", 0},
    {"{" DS ", 'seed': -1}", "seed", 0},
    {"{" DS ", 'seed': 9007199254740992}", "seed", 0},
    {"{" DS ", 'threads': 0}", "threads", 0},
    {"{" DS ", 'threads': 65}", "threads", 0},
    {"{'dataset': {'name': ''}}", "dataset.name", 0},
    {"{'dataset': {'name': '.hidden'}}", "dataset.name", 0},
    {"{'dataset': {'name': '../etc'}}", "dataset.name", 0},
    {"{'dataset': {'name': 'a/b'}}", "dataset.name", 0},
    {"{'dataset': {'name': 'a b'}}", "dataset.name", 0},
    {"{'dataset': {'name': '" TEN TEN TEN TEN TEN TEN "abcde'}}",
     "dataset.name", 0},
    {"{'dataset': {'name': 'd', 'limit': -1}}", "dataset.limit", 0},
    {"{'dataset': {'name': 'd', 'limit': 10000001}}", "dataset.limit", 0},
    {"{'dataset': {'name': 'd', 'validation_fraction': -0.001}}",
     "dataset.validation_fraction", 0},
    {"{'dataset': {'name': 'd', 'validation_fraction': 0.501}}",
     "dataset.validation_fraction", 0},
    {"{'dataset': {'name': 'd', 'label_noise': {'kind': 'pairflip'}}}",
     "dataset.label_noise.kind", 0},
    {"{'dataset': {'name': 'd', 'label_noise': {'rate': -0.01}}}",
     "dataset.label_noise.rate", 0},
    {"{'dataset': {'name': 'd', 'label_noise': {'rate': 0.951}}}",
     "dataset.label_noise.rate", 0},
    {"{'dataset': {'name': 'd', 'label_noise': {'seed': -1}}}",
     "dataset.label_noise.seed", 0},
    {"{" DS ", 'optimizer': {'kind': 'rmsprop'}}", "optimizer.kind", 0},
    {"{" DS ", 'optimizer': {'kind': 'Adam'}}", "optimizer.kind", 0},
    {"{" DS ", 'optimizer': {'lr': 0}}", "optimizer.lr", 0},
    {"{" DS ", 'optimizer': {'lr': 10.001}}", "optimizer.lr", 0},
    {"{" DS ", 'optimizer': {'momentum': -0.1}}", "optimizer.momentum", 0},
    {"{" DS ", 'optimizer': {'momentum': 1}}", "optimizer.momentum", 0},
    {"{" DS ", 'optimizer': {'weight_decay': -1e-9}}", "optimizer.weight_decay",
     0},
    {"{" DS ", 'optimizer': {'weight_decay': 1.001}}", "optimizer.weight_decay",
     0},
    {"{" DS ", 'optimizer': {'batch_size': 0}}", "optimizer.batch_size", 0},
    {"{" DS ", 'optimizer': {'batch_size': 4097}}", "optimizer.batch_size", 0},
    {"{" DS ", 'optimizer': {'schedule': 'linear'}}", "optimizer.schedule", 0},
    {"{" DS ", 'spl': {'optimizer': {'lr': 0}}}", "spl.optimizer.lr", 0},
    {"{" DS ", 'teachers': [{'optimizer': {'batch_size': 0}}]}",
     "teachers[0].optimizer.batch_size", 0},
    {"{" DS ", 'baseline': {'optimizer': {'momentum': 1}}}",
     "baseline.optimizer.momentum", 0},
    {"{" DS ", 'spl': {'model': 'resnet'}}", "spl.model", 0},
    {"{" DS ", 'spl': {'epochs': 0}}", "spl.epochs", 0},
    {"{" DS ", 'spl': {'epochs': 1001}}", "spl.epochs", 0},
    {"{" DS ", 'spl': {'warmup_epochs': -1}}", "spl.warmup_epochs", 0},
    {"{" DS ", 'spl': {'warmup_epochs': 11}}", "spl.warmup_epochs", 0},
    {"{" DS ", 'spl': {'epochs': 3, 'warmup_epochs': 4}}", "spl.warmup_epochs",
     0},
    {"{" DS ", 'spl': {'pace': {'kind': 'stairs'}}}", "spl.pace.kind", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'threshold', 'start': 0.5}}}",
     "spl.pace.start", 0},
    {"{" DS ", 'spl': {'pace': {'curve': 'cubic'}}}", "spl.pace.curve", 0},
    {"{" DS ", 'spl': {'pace': {'lambda': 2}}}", "spl.pace.lambda", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'threshold', 'lambda': 0}}}",
     "spl.pace.lambda", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'threshold', 'growth': 0.5}}}",
     "spl.pace.growth", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'auto', 'end': 0.9}}}", "spl.pace.end",
     0},
    {"{" DS ", 'spl': {'pace': {'kind': 'auto', 'lambda': 2}}}",
     "spl.pace.lambda", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'auto', 'clean_below': 0.6}}}",
     "spl.pace.clean_below", 0},
    {"{" DS ", 'spl': {'pace': {'kind': 'auto', 'clean_below': -0.1}}}",
     "spl.pace.clean_below", 0},
    {"{" DS ", 'spl': {'pace': {'clean_below': 0.1}}}",
     "spl.pace.clean_below", 0},
    {"{" DS ", 'spl': {'score': 'loss2'}}", "spl.score", 0},
    {"{" DS ", 'spl': {'score_pass': 'both'}}", "spl.score_pass", 0},
    {"{" DS ", 'spl': {'per_class': 1}}", "spl.per_class", 0},
    {"{" DS ", 'spl': {'weighting': 'cubic'}}", "spl.weighting", 0},
    {"{" DS ", 'spl': {'mix_ratio': 1}}", "spl.mix_ratio", 0},
    {"{" DS ", 'spl': {'mix_ratio': 0}}", "spl.mix_ratio", 0},
    {"{" DS ", 'spl': {'final_set': {'statistic': 'median'}}}",
     "spl.final_set.statistic", 0},
    {"{" DS ", 'spl': {'final_set': {'last_epochs': 11}}}",
     "spl.final_set.last_epochs", 0},
    {"{" DS ", 'spl': {'final_set': {'k': 1}}}", "spl.final_set.k", 0},
    {"{" DS ", 'spl': {'pace': {'start': 0}}}", "spl.pace.start", 0},
    {"{" DS ", 'spl': {'pace': {'end': 1.001}}}", "spl.pace.end", 0},
    {"{" DS ", 'spl': {'pace': {'start': 0.9, 'end': 0.8}}}", "spl.pace.start",
     0},
    {"{" DS ", 'spl': {'pace': {'start': 0.85}}}", "spl.pace.start", 0},
    {"{" DS ", 'teachers': []}", "teachers", 0},
    {"{" DS ", 'teachers': [{}, {}, {}, {}, {}, {}, {}, {}, {}]}", "teachers",
     0},
    {"{" DS ", 'teachers': [{}, {'epochs': 0}]}", "teachers[1].epochs", 0},
    {"{" DS ", 'teachers': [{}, 'mlp']}", "teachers[1]", 0},
    {"{" DS ", 'teachers': [{'seed': -1}]}", "teachers[0].seed", 0},
    {"{" DS ", 'teachers': [{'seed': 9007199254740992}]}", "teachers[0].seed",
     0},
    {"{" DS ", 'teachers': [{}, {'seed': '3'}]}", "teachers[1].seed", 0},

    /* A teacher loaded from a checkpoint: nothing about training beside
     * it, and a file name that stays inside the data root. */
    {"{" DS ", 'teachers': [{'checkpoint': 'a.ckpt', 'model': 'mlp'}]}",
     "teachers[0].model", 0},
    {"{" DS ", 'teachers': [{'epochs': 3, 'checkpoint': 'a.ckpt'}]}",
     "teachers[0].epochs", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a.ckpt', 'optimizer': {}}]}",
     "teachers[0].optimizer", 0},
    {"{" DS ", 'teachers': [{}, {'checkpoint': 'a.ckpt', 'seed': 1}]}",
     "teachers[1].seed", 0},
    {"{" DS ", 'teachers': [{'checkpoint': '/etc/passwd'}]}",
     "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': '../x'}]}", "teachers[0].checkpoint",
     0},
    {"{" DS ", 'teachers': [{}, {'checkpoint': 'a/../../x'}]}",
     "teachers[1].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a/..'}]}", "teachers[0].checkpoint",
     0},
    {"{" DS ", 'teachers': [{'checkpoint': '..'}]}", "teachers[0].checkpoint",
     0},
    {"{" DS ", 'teachers': [{'checkpoint': ''}]}", "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': '" HUNDRED "x'}]}",
     "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a\\u0007b'}]}",
     "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a\\u0000b'}]}",
     "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a\\nb'}]}",
     "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 5}]}", "teachers[0].checkpoint", 0},
    {"{" DS ", 'teachers': [{'checkpoint': null}]}", "teachers[0].checkpoint",
     0},

    /* How several teachers combine. */
    {"{" DS ", 'combine': 'max'}", "combine", 0},
    {"{" DS ", 'combine': 'Mean'}", "combine", 0},
    {"{" DS ", 'combine': 1}", "combine", 0},

    /* What the student's self-paced weights multiply and come from. */
    {"{" DS ", 'student': {'spl_weights': 'kd'}}", "student.spl_weights", 0},
    {"{" DS ", 'student': {'spl_weights': null}}", "student.spl_weights", 0},
    {"{" DS ", 'student': {'weights_from': 'teacher'}}", "student.weights_from",
     0},
    {"{" DS ", 'student': {'weights_from': true}}", "student.weights_from", 0},

    /* The representation hint: both layers required, each inside its
     * model's layer list, beta in (0, 1e6]. */
    {"{" DS ", 'student': {'representation': 1}}", "student.representation", 0},
    {"{" DS ", 'student': {'representation': null}}", "student.representation",
     0},
    {"{" DS ", 'student': {'representation': {}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1}}}",
     "student.representation.student_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1,"
     " 'student_layer': 1, 'layer': 1}}}",
     "student.representation.layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': -1,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1.0,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 5,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1,"
     " 'student_layer': 5}}}",
     "student.representation.student_layer", 0},
    {"{" DS ", 'teachers': [{'model': 'cnn'}],"
     " 'student': {'representation': {'teacher_layer': 10,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'teachers': [{'model': 'mlp-small'}, {'model': 'cnn'}],"
     " 'student': {'representation': {'teacher_layer': 3,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'model': " EVERY_LAYER ","
     " 'representation': {'teacher_layer': 1, 'student_layer': 8}}}",
     "student.representation.student_layer", 0},
    {"{" DS ", 'teachers': [{'checkpoint': 'a.ckpt'}],"
     " 'student': {'representation': {'teacher_layer': 24,"
     " 'student_layer': 1}}}",
     "student.representation.teacher_layer", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1,"
     " 'student_layer': 1, 'beta': 0}}}",
     "student.representation.beta", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1,"
     " 'student_layer': 1, 'beta': 1000000.5}}}",
     "student.representation.beta", 0},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 1,"
     " 'student_layer': 1, 'beta': '1'}}}",
     "student.representation.beta", 0},
    {"{" DS ", 'teachers': [{'model': 'resnet'}]}", "teachers[0].model", 0},
    {"{" DS ", 'teachers': [{'epochs': 0}]}", "teachers[0].epochs", 0},
    {"{" DS ", 'teachers': [{'epochs': 1001}]}", "teachers[0].epochs", 0},
    {"{" DS ", 'student': {'epochs': 0}}", "student.epochs", 0},
    {"{" DS ", 'student': {'kd': {'alpha': -0.01}}}", "student.kd.alpha", 0},
    {"{" DS ", 'student': {'kd': {'alpha': 1.01}}}", "student.kd.alpha", 0},
    {"{" DS ", 'student': {'kd': {'temperature': 0}}}",
     "student.kd.temperature", 0},
    {"{" DS ", 'student': {'kd': {'temperature': 100.01}}}",
     "student.kd.temperature", 0},
    {"{" DS ", 'student': {'kd': {'beta': 1}}}", "student.kd.beta", 0},
    {"{" DS ", 'baseline': {'epochs': 19}}", "baseline.epochs", 0},
    {"{" DS ", 'student': {'epochs': 5}, 'baseline': {'epochs': 20}}",
     "baseline.epochs", 0},
    {"{" DS ", 'baseline': {'model': 'resnet'}}", "baseline.model", 0},

    /* The optimizer's keys of issue 3. */
    {"{" DS ", 'optimizer': {'nesterov': 1}}", "optimizer.nesterov", 0},
    {"{" DS ", 'optimizer': {'nesterov': 'true'}}", "optimizer.nesterov", 0},
    {"{" DS ", 'optimizer': {'decay_bias': null}}", "optimizer.decay_bias", 0},
    {"{" DS ", 'optimizer': {'beta1': -0.001}}", "optimizer.beta1", 0},
    {"{" DS ", 'optimizer': {'beta1': 1}}", "optimizer.beta1", 0},
    {"{" DS ", 'optimizer': {'beta2': -0.001}}", "optimizer.beta2", 0},
    {"{" DS ", 'optimizer': {'beta2': 1}}", "optimizer.beta2", 0},
    {"{" DS ", 'optimizer': {'eps': 0}}", "optimizer.eps", 0},
    {"{" DS ", 'optimizer': {'eps': 1.001}}", "optimizer.eps", 0},
    {"{" DS ", 'optimizer': {'eps': '1e-8'}}", "optimizer.eps", 0},
    {"{" DS ", 'optimizer': {'warmup_epochs': -0.001}}",
     "optimizer.warmup_epochs", 0},
    {"{" DS ", 'optimizer': {'warmup_epochs': 1000.001}}",
     "optimizer.warmup_epochs", 0},
    {"{" DS ", 'optimizer': {'step_epochs': 0}}", "optimizer.step_epochs", 0},
    {"{" DS ", 'optimizer': {'step_epochs': 1001}}", "optimizer.step_epochs",
     0},
    {"{" DS ", 'optimizer': {'step_epochs': 2.5}}", "optimizer.step_epochs", 0},
    {"{" DS ", 'optimizer': {'gamma': 0}}", "optimizer.gamma", 0},
    {"{" DS ", 'optimizer': {'gamma': 1.001}}", "optimizer.gamma", 0},
    {"{" DS ", 'spl': {'optimizer': {'beta2': 1}}}", "spl.optimizer.beta2", 0},
    {"{" DS ", 'teachers': [{'optimizer': {'schedule': 'cosine-warm'}}]}",
     "teachers[0].optimizer.schedule", 0},
    {"{" DS ", 'student': {'optimizer': {'gamma': 2}}}",
     "student.optimizer.gamma", 0},

    /* Nesterov momentum belongs to SGD, wherever the conflict arises. */
    {"{" DS ", 'optimizer': {'kind': 'adam', 'nesterov': true}}",
     "optimizer.nesterov", 0},
    {"{" DS ", 'optimizer': {'nesterov': true, 'kind': 'adamw'}}",
     "optimizer.nesterov", 0},
    {"{" DS ", 'optimizer': {'kind': 'adam'},"
     " 'spl': {'optimizer': {'nesterov': true}}}",
     "spl.optimizer.nesterov", 0},
    {"{" DS ", 'optimizer': {'nesterov': true},"
     " 'teachers': [{'optimizer': {'kind': 'adam'}}]}",
     "teachers[0].optimizer.kind", 0},
    {"{" DS ", 'optimizer': {'nesterov': true},"
     " 'baseline': {'optimizer': {'kind': 'adamw'}}}",
     "baseline.optimizer.kind", 0},

    /* Normalisation and the kinds of label noise. */
    {"{'dataset': {'name': 'd', 'normalize': 'minmax'}}", "dataset.normalize",
     0},
    {"{'dataset': {'name': 'd', 'normalize': null}}", "dataset.normalize", 0},
    {"{'dataset': {'name': 'd', 'normalize': 'Scale'}}", "dataset.normalize",
     0},
    {"{'dataset': {'name': 'd', 'label_noise': {'kind': 'asymmetric'}}}",
     "dataset.label_noise.kind", 0},
    {"{'dataset': {'name': 'd', 'label_noise': {'kind': 2}}}",
     "dataset.label_noise.kind", 0},

    /* Models: neither a preset nor a layer list. */
    {"{" DS ", 'student': {'model': 5}}", "student.model", 0},
    {"{" DS ", 'student': {'model': ['mlp']}}", "student.model", 0},
    {"{" DS ", 'student': {'model': 'custom'}}", "student.model", 0},
    {"{" DS ", 'student': {'model': 'MLP'}}", "student.model", 0},
    {"{" DS ", 'student': {'model': {}}}", "student.model.layers", 0},
    {"{" DS ", 'student': {'model': {'layers': []}}}", "student.model.layers",
     0},
    {"{" DS ", 'student': {'model': {'layers': {'type': 'relu'}}}}",
     "student.model.layers", 0},
    {"{" DS ", 'spl': {'model': {'layers': [{'type': 'relu'}], 'name': 'x'}}}",
     "spl.model.name", 0},
    {"{" DS ", 'teachers': [{'model': {'layers': null}}]}",
     "teachers[0].model.layers", 0},

    /* Layers of a bad type, or with keys their type does not take. */
    {LAYER("'relu'"), "student.model.layers[0]", 0},
    {LAYER("{}"), "student.model.layers[0].type", 0},
    {LAYER("{'units': 10}"), "student.model.layers[0].type", 0},
    {LAYER("{'type': 'Dense', 'units': 10}"), "student.model.layers[0].type",
     0},
    {LAYER("{'type': 'softmax'}"), "student.model.layers[0].type", 0},
    {LAYER("{'type': 3}"), "student.model.layers[0].type", 0},
    {LAYER("{'type': 'relu', 'units': 10}"), "student.model.layers[0].units",
     0},
    {LAYER("{'type': 'flatten', 'size': 2}"), "student.model.layers[0].size",
     0},
    {LAYER("{'type': 'dense', 'units': 10, 'kernel': 3}"),
     "student.model.layers[0].kernel", 0},
    {LAYER("{'type': 'maxpool', 'size': 2, 'pad': 1}"),
     "student.model.layers[0].pad", 0},
    {LAYER("{'type': 'maxpool', 'kernel': 2}"),
     "student.model.layers[0].kernel", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'size': 3}"),
     "student.model.layers[0].size", 0},
    {LAYER("{'type': 'dropout', 'rate': 0.5, 'seed': 1}"),
     "student.model.layers[0].seed", 0},
    {"{" DS ", 'student': {'model': {'layers': [{'type': 'relu'},"
     " {'type': 'relu'}, {'type': 'conv2d', 'filters': 8, 'kernel': 3,"
     " 'kernal': 3}]}}}",
     "student.model.layers[2].kernal", 0},
    {"{" DS ", 'student': {'model': {'layers': [{'type': 'relu',"
     " 'type': 'flatten'}]}}}",
     "student.model.layers[0].type", 0},

    /* Layer sizes missing or just outside their range. */
    {LAYER("{'type': 'dense'}"), "student.model.layers[0].units", 0},
    {LAYER("{'type': 'dense', 'units': 0}"), "student.model.layers[0].units",
     0},
    {LAYER("{'type': 'dense', 'units': 65537}"),
     "student.model.layers[0].units", 0},
    {LAYER("{'type': 'dense', 'units': 10.0}"), "student.model.layers[0].units",
     0},
    {LAYER("{'type': 'conv2d', 'kernel': 3}"),
     "student.model.layers[0].filters", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8}"),
     "student.model.layers[0].kernel", 0},
    {LAYER("{'type': 'conv2d', 'filters': 0, 'kernel': 3}"),
     "student.model.layers[0].filters", 0},
    {LAYER("{'type': 'conv2d', 'filters': 4097, 'kernel': 3}"),
     "student.model.layers[0].filters", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 0}"),
     "student.model.layers[0].kernel", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 65}"),
     "student.model.layers[0].kernel", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'stride': 0}"),
     "student.model.layers[0].stride", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'stride': 65}"),
     "student.model.layers[0].stride", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'pad': -1}"),
     "student.model.layers[0].pad", 0},
    {LAYER("{'type': 'conv2d', 'filters': 8, 'kernel': 3, 'pad': 65}"),
     "student.model.layers[0].pad", 0},
    {LAYER("{'type': 'maxpool'}"), "student.model.layers[0].size", 0},
    {LAYER("{'type': 'maxpool', 'size': 0}"), "student.model.layers[0].size",
     0},
    {LAYER("{'type': 'maxpool', 'size': 65}"), "student.model.layers[0].size",
     0},
    {LAYER("{'type': 'maxpool', 'size': 2, 'stride': 0}"),
     "student.model.layers[0].stride", 0},
    {LAYER("{'type': 'maxpool', 'size': 2, 'stride': 65}"),
     "student.model.layers[0].stride", 0},
    {LAYER("{'type': 'dropout'}"), "student.model.layers[0].rate", 0},
    {LAYER("{'type': 'dropout', 'rate': -0.001}"),
     "student.model.layers[0].rate", 0},
    {LAYER("{'type': 'dropout', 'rate': 1}"), "student.model.layers[0].rate",
     0},
    {LAYER("{'type': 'dropout', 'rate': true}"), "student.model.layers[0].rate",
     0},

    /* The baseline's model must be the student's. */
    {"{" DS ", 'student': {'model': " EVERY_LAYER "},"
     " 'baseline': {'model': 'mlp'}}",
     "baseline.model", 0},
    {"{" DS ", 'baseline': {'model': " EVERY_LAYER "}}", "baseline.model", 0},
    {"{" DS ", 'student': {'model': 'mlp-small'},"
     " 'baseline': {'model': 'mlp'}}",
     "baseline.model", 0},
    {"{" DS ", 'student': {'model': " EVERY_LAYER "},"
     " 'baseline': {'model': {'layers': [{'type': 'dense', 'units': 10}]}}}",
     "baseline.model", 0},
    {"{" DS ", 'student': {'model': {'layers': [{'type': 'dropout',"
     " 'rate': 0.5}, {'type': 'dense', 'units': 10}]}},"
     " 'baseline': {'model': {'layers': [{'type': 'dropout', 'rate': 0.4},"
     " {'type': 'dense', 'units': 10}]}}}",
     "baseline.model", 0},
    {"{" DS ", 'student': {'model': {'layers': [{'type': 'maxpool',"
     " 'size': 2}, {'type': 'dense', 'units': 10}]}},"
     " 'baseline': {'model': {'layers': [{'type': 'maxpool', 'size': 2,"
     " 'stride': 1}, {'type': 'dense', 'units': 10}]}}}",
     "baseline.model", 0},
};

/* The self-paced options of the spl section reach the spec. */
static void test_spl_options(void **state) {
  pipeline_spec_t s;
  spec_error_t e;

  (void)state;
  assert_int_equal(parse_q("{" DS ", 'spl': {'score': 'margin', "
                           "'score_pass': 'train', 'per_class': false, "
                           "'weighting': 'mixture', 'mix_ratio': 0.25, "
                           "'pace': {'kind': 'threshold', 'lambda': 0.7, "
                           "'growth': 1.3}, 'final_set': {'statistic': "
                           "'mean_confidence', 'last_epochs': 3}}}",
                           &s, &e),
                   0);
  assert_int_equal(s.spl_score, SPL_SCORE_MARGIN);
  assert_int_equal(s.spl_score_pass, PIPELINE_PASS_TRAIN);
  assert_int_equal(s.per_class, 0);
  assert_int_equal(s.weighting, SPL_WEIGHT_MIXTURE);
  assert_true(s.mix_ratio == 0.25);
  assert_int_equal(s.pace_kind, SPL_PACE_THRESHOLD);
  assert_true(s.pace_lambda == 0.7 && s.pace_growth == 1.3);
  assert_int_equal(s.final_stat, SPL_FINAL_MEAN_CONFIDENCE);
  assert_int_equal(s.final_last_epochs, 3);

  assert_int_equal(parse_q("{" DS ", 'spl': {'pace': {'curve': 'root'}}}",
                           &s, &e),
                   0);
  assert_int_equal(s.pace_kind, SPL_PACE_FRACTION);
  assert_int_equal(s.pace_curve, SPL_CURVE_ROOT);
  assert_int_equal(s.spl_score, SPL_SCORE_LOSS);
  assert_int_equal(s.per_class, 1);

  assert_int_equal(
      parse_q("{" DS ", 'spl': {'pace': {'kind': 'auto'}}}", &s, &e), 0);
  assert_int_equal(s.pace_kind, SPL_PACE_AUTO);
  assert_true(s.pace_clean_below == 0.05);
  assert_int_equal(parse_q("{" DS ", 'spl': {'pace': {'kind': 'auto', "
                           "'clean_below': 0}}}",
                           &s, &e),
                   0);
  assert_true(s.pace_clean_below == 0);
}

/* Several teachers: each starts from the default teacher over the job's
 * optimizer, and takes its own model, epochs, optimizer and seed. */
static void test_several_teachers(void **state) {
  const optim_config_t job = sgd(0.02, 0.9, 5e-4, 128, OPTIM_SCHEDULE_COSINE);
  optim_config_t own = job;
  pipeline_stage_spec_t want;
  pipeline_spec_t s;

  (void)state;
  parse_ok("{" DS ", 'optimizer': {'lr': 0.02},"
           " 'teachers': [{}, {'model': 'cnn', 'epochs': 4, 'seed': 77,"
           "   'optimizer': {'batch_size': 64}},"
           "  {'model': " EVERY_LAYER "}], 'combine': 'confidence'}",
           &s);
  assert_int_equal(s.n_teachers, 3);
  assert_int_equal(s.combine, PIPELINE_COMBINE_CONFIDENCE);
  want = preset("mlp", 15, job);
  assert_stage_equal(&s.teachers[0].stage, &want);
  assert_int_equal(s.teachers[0].has_seed, 0);
  own.batch_size = 64;
  want = preset("cnn", 4, own);
  assert_stage_equal(&s.teachers[1].stage, &want);
  assert_int_equal(s.teachers[1].has_seed, 1);
  assert_true(s.teachers[1].seed == 77);
  want = every_layer_stage(15, job);
  assert_stage_equal(&s.teachers[2].stage, &want);
  for (int k = 0; k < 3; k++)
    assert_string_equal(s.teachers[k].checkpoint, "");

  /* combine is taken with one teacher too, where it changes nothing. */
  parse_ok("{" DS ", 'combine': 'confidence'}", &s);
  assert_int_equal(s.n_teachers, 1);
  assert_int_equal(s.combine, PIPELINE_COMBINE_CONFIDENCE);
}

/* A teacher loaded from a checkpoint keeps the name as written (a path
 * inside the data root), trains nothing and plans one epoch. */
static void test_checkpoint_teachers(void **state) {
  pipeline_spec_t s;

  (void)state;
  parse_ok("{" DS ", 'teachers': [{'model': 'cnn', 'seed': 4},"
           " {'checkpoint': 'models/t1.ckpt'}, {'checkpoint': '..a/.b..'},"
           " {'checkpoint': 'caf\\u00e9 " TEN "'},"
           " {'checkpoint': '" HUNDRED "'}]}",
           &s);
  assert_int_equal(s.n_teachers, 5);
  assert_string_equal(s.teachers[0].checkpoint, "");
  assert_string_equal(s.teachers[0].stage.model, "cnn");
  assert_string_equal(s.teachers[1].checkpoint, "models/t1.ckpt");
  assert_string_equal(s.teachers[2].checkpoint, "..a/.b..");
  assert_string_equal(s.teachers[3].checkpoint, "caf\xc3\xa9 " TEN);
  assert_string_equal(s.teachers[4].checkpoint, HUNDRED);
  for (int k = 1; k < 5; k++) {
    assert_int_equal(s.teachers[k].stage.epochs, 1);
    assert_int_equal(s.teachers[k].has_seed, 0);
    assert_string_equal(s.teachers[k].path, "");
  }
}

/* The student's self-paced weights and representation hint. */
static void test_student_options(void **state) {
  pipeline_spec_t s;

  (void)state;
  parse_ok("{" DS ", 'teachers': [{'model': 'cnn'}],"
           " 'student': {'model': 'mlp-small', 'spl_weights': 'none',"
           "   'weights_from': 'self', 'representation':"
           "   {'beta': 0.5, 'student_layer': 2, 'teacher_layer': 7}}}",
           &s);
  assert_int_equal(s.student_weights, PIPELINE_WEIGHTS_NONE);
  assert_int_equal(s.weights_from, PIPELINE_FROM_SELF);
  assert_int_equal(s.has_hint, 1);
  assert_int_equal(s.hint_teacher_layer, 7);
  assert_int_equal(s.hint_student_layer, 2);
  assert_true(s.hint_beta == 0.5);

  /* Without representation there is no hint, whatever else is given. */
  parse_ok("{" DS ", 'student': {'spl_weights': 'all'}}", &s);
  assert_int_equal(s.student_weights, PIPELINE_WEIGHTS_ALL);
  assert_int_equal(s.weights_from, PIPELINE_FROM_SPL);
  assert_int_equal(s.has_hint, 0);
  assert_true(s.hint_beta == 1.0);
}

static void test_bad_inputs_name_their_field(void **state) {
  pipeline_spec_t s;
  spec_error_t err;

  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case_t *c = &bad_cases[i];
    int rc = parse_q(c->spec, &s, &err);

    if (rc != -EINVAL || strcmp(err.field, c->field) != 0 ||
        err.malformed != c->malformed || err.message[0] == '\0')
      fail_msg("case %zu %s: rc %d, field '%s' (want '%s'), malformed %d, "
               "message '%s'",
               i, c->spec, rc, err.field, c->field, err.malformed, err.message);
  }
}

typedef struct {
  const char *spec;
  size_t offset; /* of the value in pipeline_spec_t */
  char type;     /* 'i' int, 'd' double, 'u' uint64_t, 'f' float */
  double want;
} good_case_t;

#define AT(member) offsetof(pipeline_spec_t, member)
#define LAYER0(member) AT(student.desc.layers[0].member)

static const good_case_t good_cases[] = {
    {"{" DS ", 'seed': 0}", AT(seed), 'u', 0},
    {"{" DS ", 'seed': 9007199254740991}", AT(seed), 'u', 9007199254740991.0},
    {"{" DS ", 'threads': 1}", AT(threads), 'i', 1},
    {"{" DS ", 'threads': 64}", AT(threads), 'i', 64},
    {"{'dataset': {'name': 'd', 'limit': 10000000}}", AT(limit), 'i', 1e7},
    {"{'dataset': {'name': 'd', 'validation_fraction': 0}}",
     AT(validation_fraction), 'd', 0},
    {"{'dataset': {'name': 'd', 'validation_fraction': 0.5}}",
     AT(validation_fraction), 'd', 0.5},
    {"{'dataset': {'name': 'd', 'label_noise': {'rate': 0.95}}}",
     AT(noise_rate), 'd', 0.95},
    {"{'dataset': {'name': 'd', 'label_noise': {'seed': 9007199254740991}}}",
     AT(noise_seed), 'u', 9007199254740991.0},
    {"{" DS ", 'optimizer': {'lr': 10}}", AT(teachers[0].stage.optim.lr), 'd',
     10},
    {"{" DS ", 'optimizer': {'lr': 1e-9}}", AT(student.optim.lr), 'd', 1e-9},
    {"{" DS ", 'optimizer': {'momentum': 0}}", AT(spl.optim.momentum), 'd', 0},
    {"{" DS ", 'optimizer': {'momentum': 0.999}}", AT(spl.optim.momentum), 'd',
     0.999},
    {"{" DS ", 'optimizer': {'weight_decay': 1}}",
     AT(baseline.optim.weight_decay), 'd', 1},
    {"{" DS ", 'optimizer': {'weight_decay': 0}}", AT(spl.optim.weight_decay),
     'd', 0},
    {"{" DS ", 'optimizer': {'batch_size': 1}}", AT(spl.optim.batch_size), 'i',
     1},
    {"{" DS ", 'optimizer': {'batch_size': 4096}}",
     AT(teachers[0].stage.optim.batch_size), 'i', 4096},
    {"{" DS ", 'spl': {'epochs': 1000}}", AT(spl.epochs), 'i', 1000},
    {"{" DS ", 'spl': {'warmup_epochs': 0}}", AT(spl_warmup_epochs), 'i', 0},
    {"{" DS ", 'spl': {'warmup_epochs': 10}}", AT(spl_warmup_epochs), 'i', 10},
    {"{" DS ", 'spl': {'pace': {'start': 1e-9}}}", AT(pace_start), 'd', 1e-9},
    {"{" DS ", 'spl': {'pace': {'start': 1, 'end': 1}}}", AT(pace_start), 'd',
     1},
    {"{" DS ", 'spl': {'pace': {'start': 0.8}}}", AT(pace_start), 'd', 0.8},
    {"{" DS ", 'teachers': [{'epochs': 1}]}", AT(teachers[0].stage.epochs), 'i',
     1},
    {"{" DS ", 'student': {'epochs': 1000}}", AT(baseline.epochs), 'i', 1000},
    {"{" DS ", 'student': {'kd': {'alpha': 0}}}", AT(kd_alpha), 'd', 0},
    {"{" DS ", 'student': {'kd': {'alpha': 1}}}", AT(kd_alpha), 'd', 1},
    {"{" DS ", 'student': {'kd': {'temperature': 100}}}", AT(kd_temperature),
     'd', 100},
    {"{" DS ", 'student': {'kd': {'temperature': 1e-6}}}", AT(kd_temperature),
     'd', 1e-6},

    /* Teachers, their seeds and how they combine. */
    {"{" DS ", 'teachers': [{'seed': 0}]}", AT(teachers[0].has_seed), 'i', 1},
    {"{" DS ", 'teachers': [{'seed': 0}]}", AT(teachers[0].seed), 'u', 0},
    {"{" DS ", 'teachers': [{}, {'seed': 9007199254740991}]}",
     AT(teachers[1].seed), 'u', 9007199254740991.0},
    {"{" DS ", 'teachers': [{}, {'seed': 5}]}", AT(teachers[0].has_seed), 'i',
     0},
    {"{" DS ", 'teachers': [{}, {}, {}, {}, {}, {}, {}, {}]}", AT(n_teachers),
     'i', 8},
    {"{" DS ", 'teachers': [{}, {}, {}, {}, {}, {}, {}, {'epochs': 2}]}",
     AT(teachers[7].stage.epochs), 'i', 2},
    {"{" DS ", 'teachers': [{'checkpoint': 'a.ckpt'}]}",
     AT(teachers[0].stage.epochs), 'i', 1},
    {"{" DS ", 'combine': 'confidence'}", AT(combine), 'i',
     PIPELINE_COMBINE_CONFIDENCE},
    {"{" DS ", 'combine': 'mean'}", AT(combine), 'i', PIPELINE_COMBINE_MEAN},

    /* The student's weights and its representation hint. */
    {"{" DS ", 'student': {'spl_weights': 'all'}}", AT(student_weights), 'i',
     PIPELINE_WEIGHTS_ALL},
    {"{" DS ", 'student': {'spl_weights': 'none'}}", AT(student_weights), 'i',
     PIPELINE_WEIGHTS_NONE},
    {"{" DS ", 'student': {'spl_weights': 'ce'}}", AT(student_weights), 'i',
     PIPELINE_WEIGHTS_CE},
    {"{" DS ", 'student': {'weights_from': 'self'}}", AT(weights_from), 'i',
     PIPELINE_FROM_SELF},
    {"{" DS ", 'student': {'weights_from': 'spl'}}", AT(weights_from), 'i',
     PIPELINE_FROM_SPL},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 0,"
     " 'student_layer': 0}}}",
     AT(has_hint), 'i', 1},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 4,"
     " 'student_layer': 0}}}",
     AT(hint_teacher_layer), 'i', 4},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 0,"
     " 'student_layer': 4}}}",
     AT(hint_student_layer), 'i', 4},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 0,"
     " 'student_layer': 0}}}",
     AT(hint_beta), 'd', 1},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 0,"
     " 'student_layer': 0, 'beta': 1000000}}}",
     AT(hint_beta), 'd', 1e6},
    {"{" DS ", 'student': {'representation': {'teacher_layer': 0,"
     " 'student_layer': 0, 'beta': 1e-9}}}",
     AT(hint_beta), 'd', 1e-9},
    {"{" DS ", 'teachers': [{'model': 'cnn'}, {'model': 'mlp-small'}],"
     " 'student': {'representation': {'teacher_layer': 9,"
     " 'student_layer': 0}}}",
     AT(hint_teacher_layer), 'i', 9},
    {"{" DS ", 'teachers': [{'model': " EVERY_LAYER "}],"
     " 'student': {'representation': {'teacher_layer': 7,"
     " 'student_layer': 0}}}",
     AT(hint_teacher_layer), 'i', 7},
    {"{" DS ", 'teachers': [{'checkpoint': 'a.ckpt'}],"
     " 'student': {'representation': {'teacher_layer': 23,"
     " 'student_layer': 0}}}",
     AT(hint_teacher_layer), 'i', 23},
    {"{" DS ", 'student': {'model': 'cnn', 'representation':"
     " {'teacher_layer': 0, 'student_layer': 9}}}",
     AT(hint_student_layer), 'i', 9},

    /* The optimizer's keys of issue 3, at and near their bounds. */
    {"{" DS ", 'optimizer': {'kind': 'adam'}}", AT(spl.optim.kind), 'i',
     OPTIM_ADAM},
    {"{" DS ", 'optimizer': {'kind': 'adamw'}}", AT(baseline.optim.kind), 'i',
     OPTIM_ADAMW},
    {"{" DS ", 'optimizer': {'nesterov': true}}", AT(spl.optim.nesterov), 'i',
     1},
    {"{" DS ", 'optimizer': {'kind': 'adam', 'nesterov': false}}",
     AT(spl.optim.nesterov), 'i', 0},
    {"{" DS ", 'optimizer': {'decay_bias': false}}",
     AT(teachers[0].stage.optim.decay_bias), 'i', 0},
    {"{" DS ", 'optimizer': {'decay_bias': true}}",
     AT(teachers[0].stage.optim.decay_bias), 'i', 1},
    {"{" DS ", 'optimizer': {'beta1': 0}}", AT(spl.optim.beta1), 'd', 0},
    {"{" DS ", 'optimizer': {'beta1': 0.999999}}", AT(spl.optim.beta1), 'd',
     0.999999},
    {"{" DS ", 'optimizer': {'beta2': 0}}", AT(student.optim.beta2), 'd', 0},
    {"{" DS ", 'optimizer': {'beta2': 0.999999}}", AT(student.optim.beta2), 'd',
     0.999999},
    {"{" DS ", 'optimizer': {'eps': 1}}", AT(spl.optim.eps), 'd', 1},
    {"{" DS ", 'optimizer': {'eps': 1e-300}}", AT(spl.optim.eps), 'd', 1e-300},
    {"{" DS ", 'optimizer': {'schedule': 'step'}}", AT(spl.optim.schedule), 'i',
     OPTIM_SCHEDULE_STEP},
    {"{" DS ", 'optimizer': {'warmup_epochs': 0}}", AT(spl.optim.warmup_epochs),
     'd', 0},
    {"{" DS ", 'optimizer': {'warmup_epochs': 1000}}",
     AT(spl.optim.warmup_epochs), 'd', 1000},
    {"{" DS ", 'optimizer': {'warmup_epochs': 0.25}}",
     AT(teachers[0].stage.optim.warmup_epochs), 'd', 0.25},
    {"{" DS ", 'optimizer': {'step_epochs': 1}}", AT(spl.optim.step_epochs),
     'i', 1},
    {"{" DS ", 'optimizer': {'step_epochs': 1000}}", AT(spl.optim.step_epochs),
     'i', 1000},
    {"{" DS ", 'optimizer': {'gamma': 1}}", AT(spl.optim.gamma), 'd', 1},
    {"{" DS ", 'optimizer': {'gamma': 1e-9}}", AT(spl.optim.gamma), 'd', 1e-9},
    {"{" DS ", 'spl': {'optimizer': {'kind': 'adamw', 'beta1': 0.5}}}",
     AT(spl.optim.beta1), 'd', 0.5},
    {"{" DS ", 'teachers': [{'optimizer': {'step_epochs': 4}}]}",
     AT(teachers[0].stage.optim.step_epochs), 'i', 4},

    /* Normalisation and noise kinds. */
    {"{'dataset': {'name': 'd', 'normalize': 'scale'}}", AT(norm), 'i',
     DATASET_NORM_SCALE},
    {"{'dataset': {'name': 'd', 'normalize': 'standardize'}}", AT(norm), 'i',
     DATASET_NORM_STANDARDIZE},
    {"{'dataset': {'name': 'd', 'label_noise': {'kind': 'pair'}}}",
     AT(noise_kind), 'i', PIPELINE_NOISE_PAIR},
    {"{'dataset': {'name': 'd', 'label_noise': {'kind': 'symmetric'}}}",
     AT(noise_kind), 'i', PIPELINE_NOISE_SYMMETRIC},

    /* Layer sizes at their bounds. */
    {LAYER("{'type': 'dense', 'units': 1}"), LAYER0(units), 'i', 1},
    {LAYER("{'type': 'dense', 'units': 65536}"), LAYER0(units), 'i', 65536},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 1}"), LAYER0(filters),
     'i', 1},
    {LAYER("{'type': 'conv2d', 'filters': 4096, 'kernel': 1}"), LAYER0(filters),
     'i', 4096},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 1}"), LAYER0(kernel),
     'i', 1},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 64}"), LAYER0(kernel),
     'i', 64},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 3, 'stride': 64}"),
     LAYER0(stride), 'i', 64},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 3, 'pad': 0}"),
     LAYER0(pad), 'i', 0},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 3, 'pad': 64}"),
     LAYER0(pad), 'i', 64},
    {LAYER("{'type': 'conv2d', 'filters': 1, 'kernel': 3}"), LAYER0(stride),
     'i', 1},
    {LAYER("{'type': 'maxpool', 'size': 1}"), LAYER0(kernel), 'i', 1},
    {LAYER("{'type': 'maxpool', 'size': 64}"), LAYER0(stride), 'i', 64},
    {LAYER("{'type': 'maxpool', 'size': 3, 'stride': 1}"), LAYER0(stride), 'i',
     1},
    {LAYER("{'type': 'maxpool', 'size': 3, 'stride': 64}"), LAYER0(stride), 'i',
     64},
    {LAYER("{'type': 'dropout', 'rate': 0}"), LAYER0(rate), 'f', 0},
    {LAYER("{'type': 'dropout', 'rate': 0.999}"), LAYER0(rate), 'f', 0.999f},
    {LAYER("{'type': 'dropout', 'rate': 0.5}"), LAYER0(kind), 'i',
     LAYER_DROPOUT},
    {LAYER("{'type': 'flatten'}"), LAYER0(kind), 'i', LAYER_FLATTEN},
    {LAYER("{'type': 'relu'}"), AT(student.desc.n_layers), 'i', 1},
};

static double value_at(const pipeline_spec_t *s, const good_case_t *c) {
  const char *p = (const char *)s + c->offset;

  if (c->type == 'i')
    return *(const int *)(const void *)p;
  if (c->type == 'u')
    return (double)*(const uint64_t *)(const void *)p;
  if (c->type == 'f')
    return *(const float *)(const void *)p;
  return *(const double *)(const void *)p;
}

static void test_bounds_just_inside_are_accepted(void **state) {
  pipeline_spec_t s;
  spec_error_t err;

  (void)state;
  for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
    const good_case_t *c = &good_cases[i];

    if (parse_q(c->spec, &s, &err) != 0)
      fail_msg("case %zu %s refused: [%s] %s", i, c->spec, err.field,
               err.message);
    if (value_at(&s, c) != c->want)
      fail_msg("case %zu %s: read %.17g, want %.17g", i, c->spec,
               value_at(&s, c), c->want);
  }
}

/* Parses a spec whose name is chars times U+00E9, two bytes each. */
static int parse_accented_name(int chars, pipeline_spec_t *s) {
  char text[512] = "{\"dataset\": {\"name\": \"d\"}, \"name\": \"";
  size_t n = strlen(text);
  spec_error_t err;

  for (int i = 0; i < chars; i++, n += 2)
    memcpy(text + n, "\xc3\xa9", 2);
  strcpy(text + n, "\"}");
  return spec_parse(text, strlen(text), s, &err);
}

static void test_names(void **state) {
  pipeline_spec_t s;

  (void)state;
  parse_ok("{" DS ", 'name': '" HUNDRED "'}", &s);
  assert_int_equal(strlen(s.name), 100);
  parse_ok("{" DS ", 'name': 'x'}", &s);
  assert_string_equal(s.name, "x");
  parse_ok("{'dataset': {'name': '" TEN TEN TEN TEN TEN TEN "abcd'}}", &s);
  assert_int_equal(strlen(s.dataset), 64);
  parse_ok("{'dataset': {'name': 'My_set-2.v1'}}", &s);
  assert_string_equal(s.dataset, "My_set-2.v1");

  /* Characters, not bytes, count toward the 100; the name must also fit
   * the 127 bytes pipeline_spec_t holds. */
  parse_ok("{" DS ", 'name': 'r\\u00e9sum\\u00e9 \\u03bb'}", &s);
  assert_string_equal(s.name, "r\xc3\xa9sum\xc3\xa9 \xce\xbb");
  assert_int_equal(parse_accented_name(63, &s), 0);
  assert_int_equal(strlen(s.name), 126);
  assert_int_equal(parse_accented_name(64, &s), -EINVAL);
}

static void test_messages_explain(void **state) {
  pipeline_spec_t s;
  spec_error_t err;

  (void)state;
  assert_int_equal(parse_q("{" DS ", 'spl': {'model': 'x'}}", &s, &err),
                   -EINVAL);
  assert_non_null(strstr(err.message, "mlp"));
  parse_q("{" DS ", 'teachers': [{}, {}, {}, {}, {}, {}, {}, {}, {}]}", &s,
          &err);
  assert_non_null(strstr(err.message, "holds 9 teachers"));
  assert_non_null(strstr(err.message, "1 to 8"));
  parse_q("{" DS ", 'teachers': [{'checkpoint': 'a.ckpt', 'epochs': 3}]}", &s,
          &err);
  assert_non_null(strstr(err.message, "does not apply to a teacher loaded "
                                      "from a checkpoint"));
  parse_q("{" DS ", 'teachers': [{'checkpoint': 'a/../../b'}]}", &s, &err);
  assert_non_null(strstr(err.message, "\"..\""));
  parse_q("{" DS ", 'student': {'representation': {'teacher_layer': 0,"
          " 'student_layer': 5}}}",
          &s, &err);
  assert_non_null(strstr(err.message, "has 5 layers"));
  assert_non_null(strstr(err.message, "\"mlp\""));
  parse_q("{" DS ", 'baseline': {'epochs': 3}}", &s, &err);
  assert_non_null(strstr(err.message, "student"));
  parse_q("{" DS ", 'optimizer': {'lr': 11}}", &s, &err);
  assert_non_null(strstr(err.message, "(0, 10]"));
  parse_q("{" DS ", 'optimizer': {'schedule': 'linear'}}", &s, &err);
  assert_non_null(strstr(err.message, "\"constant\", \"cosine\", \"step\""));
  parse_q("{" DS ", 'optimizer': {'kind': 'adam', 'nesterov': true}}", &s,
          &err);
  assert_non_null(strstr(err.message, "\"sgd\" only"));
  parse_q("{" DS ", 'optimizer': {'nesterov': true},"
          " 'spl': {'optimizer': {'kind': 'adamw'}}}",
          &s, &err);
  assert_non_null(strstr(err.message, "nesterov"));
  parse_q(LAYER("{'type': 'pool'}"), &s, &err);
  assert_non_null(strstr(err.message, "\"maxpool\""));
  parse_q(LAYER("{'type': 'maxpool', 'size': 2, 'pad': 1}"), &s, &err);
  assert_non_null(strstr(err.message, "type, size, stride"));
  parse_q("{" DS ", 'student': {'model': " EVERY_LAYER "},"
          " 'baseline': {'model': {'layers': [{'type': 'conv2d',"
          " 'filters': 8, 'kernel': 3}, {'type': 'flatten'}]}}}",
          &s, &err);
  assert_non_null(strstr(err.message, "layers[1]"));
  parse_q("{" DS ", 'spl': {'pace': {'foo': 1}}}", &s, &err);
  assert_non_null(strstr(err.message, "kind, start, end"));
  parse_q("{\n  'seed': 1,\n  }", &s, &err);
  assert_non_null(strstr(err.message, "line 3"));
}

/* Every preset the engine names is accepted for every stage, with no
 * layer list of its own, and an unknown name's message lists them all. */
static void test_presets_come_from_the_engine(void **state) {
  char text[512];
  pipeline_spec_t s;
  spec_error_t err;
  int n = 0;

  (void)state;
  for (const char *const *name = model_preset_names; *name; name++, n++) {
    snprintf(text, sizeof text,
             "{" DS ", 'spl': {'model': '%s'},"
             " 'teachers': [{'model': '%s'}], 'student': {'model': '%s'}}",
             *name, *name, *name);
    parse_ok(text, &s);
    assert_string_equal(s.spl.model, *name);
    assert_string_equal(s.teachers[0].stage.model, *name);
    assert_string_equal(s.student.model, *name);
    assert_string_equal(s.baseline.model, *name);
    assert_int_equal(s.student.desc.n_layers + s.baseline.desc.n_layers, 0);
  }
  assert_true(n >= 3);
  assert_int_equal(parse_q("{" DS ", 'spl': {'model': 'vgg'}}", &s, &err),
                   -EINVAL);
  for (const char *const *name = model_preset_names; *name; name++)
    assert_non_null(strstr(err.message, *name));
}

/* EVERY_LAYER in every stage: the student's is the baseline's too, and a
 * baseline that writes out the defaults lists the same layers. */
static void test_custom_models(void **state) {
  pipeline_stage_spec_t want;
  pipeline_spec_t s;

  (void)state;
  parse_ok("{" DS ", 'spl': {'model': " EVERY_LAYER "},"
           " 'teachers': [{'model': " EVERY_LAYER_EXPLICIT "}],"
           " 'student': {'model': " EVERY_LAYER ", 'epochs': 3}}",
           &s);
  want = every_layer_stage(3, s.student.optim);
  assert_stage_equal(&s.student, &want);
  assert_stage_equal(&s.baseline, &want);
  assert_string_equal(s.student.desc.name, "custom");
  want.epochs = s.spl.epochs;
  assert_stage_equal(&s.spl, &want);
  want.epochs = s.teachers[0].stage.epochs;
  assert_stage_equal(&s.teachers[0].stage, &want);

  parse_ok("{" DS ", 'student': {'model': " EVERY_LAYER "},"
           " 'baseline': {'model': " EVERY_LAYER_EXPLICIT "}}",
           &s);
  assert_int_equal(s.baseline.desc.n_layers, 8);

  /* A preset stage beside custom ones keeps no layer list. */
  parse_ok("{" DS ", 'spl': {'model': " EVERY_LAYER "},"
           " 'student': {'model': 'mlp-small'}}",
           &s);
  assert_int_equal(s.spl.desc.n_layers, 8);
  assert_int_equal(s.student.desc.n_layers, 0);
  assert_int_equal(s.baseline.desc.n_layers, 0);
  assert_string_equal(s.baseline.model, "mlp-small");
}

/* Writes a spec whose student has n ReLU layers into text. */
static void relu_stack(int n, char *text, size_t cap) {
  size_t len =
      (size_t)snprintf(text, cap, "{" DS ", 'student': {'model': {'layers': [");

  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, cap - len, "%s{'type': 'relu'}",
                            i ? ", " : "");
  snprintf(text + len, cap - len, "]}}}");
}

static void test_layer_count_bounds(void **state) {
  char text[2048];
  pipeline_spec_t s;
  spec_error_t err;

  (void)state;
  relu_stack(MODEL_MAX_LAYERS, text, sizeof text);
  parse_ok(text, &s);
  assert_int_equal(s.student.desc.n_layers, MODEL_MAX_LAYERS);
  assert_int_equal(s.student.desc.layers[MODEL_MAX_LAYERS - 1].kind,
                   LAYER_RELU);
  relu_stack(MODEL_MAX_LAYERS + 1, text, sizeof text);
  assert_int_equal(parse_q(text, &s, &err), -EINVAL);
  assert_string_equal(err.field, "student.model.layers");
  relu_stack(1, text, sizeof text);
  parse_ok(text, &s);
  assert_int_equal(s.student.desc.n_layers, 1);
}

/* A dropout rate below 1 that single precision would round to 1 stays
 * below 1. */
static void test_dropout_rate_stays_below_one(void **state) {
  pipeline_spec_t s;

  (void)state;
  parse_ok(LAYER("{'type': 'dropout', 'rate': 0.99999999999}"), &s);
  assert_true(s.student.desc.layers[0].rate < 1.0f);
  assert_true(s.student.desc.layers[0].rate > 0.9999f);
}

static void test_refusal_leaves_output_alone(void **state) {
  pipeline_spec_t s, before;
  spec_error_t err;

  (void)state;
  memset(&s, 0x5A, sizeof s);
  before = s;
  assert_int_equal(parse_q("{" DS ", 'threads': 0}", &s, &err), -EINVAL);
  assert_memory_equal(&s, &before, sizeof s);
}

/* A long unknown key of two-byte characters is cut to fit field without
 * splitting a character. */
static void test_long_paths_are_cut_cleanly(void **state) {
  char text[1024] = "{\"dataset\": {\"name\": \"d\"}, \"";
  const size_t start = strlen(text);
  pipeline_spec_t s;
  spec_error_t err;
  size_t n = start;

  (void)state;
  for (int i = 0; i < 200; i++, n += 2)
    memcpy(text + n, "\xc3\xa9", 2);
  strcpy(text + n, "\": 1}");
  assert_int_equal(spec_parse(text, strlen(text), &s, &err), -EINVAL);
  n = strlen(err.field);
  assert_true(n > 100 && n < sizeof err.field);
  assert_int_equal(n % 2, 0);
  assert_memory_equal(err.field, text + start, n);
}

static void test_size_limit(void **state) {
  const size_t mib = 1024 * 1024;
  char *text = malloc(mib + 1);
  const char body[] = "{\"dataset\": {\"name\": \"d\"}}";
  pipeline_spec_t s;
  spec_error_t err;

  (void)state;
  assert_non_null(text);
  memset(text, ' ', mib + 1);
  memcpy(text, body, strlen(body));
  assert_int_equal(spec_parse(text, mib, &s, &err), 0);
  assert_int_equal(spec_parse(text, mib + 1, &s, &err), -EINVAL);
  assert_string_equal(err.field, "");
  assert_int_equal(err.malformed, 0);
  assert_non_null(strstr(err.message, "1 MiB"));
  free(text);
}

/* Reads a whole file into a NUL-terminated heap buffer. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = malloc(1 << 20);

  assert_non_null(f);
  assert_non_null(buf);
  *len = fread(buf, 1, (1 << 20) - 1, f);
  buf[*len] = '\0';
  fclose(f);
  return buf;
}

static void parse_file(const char *path, pipeline_spec_t *s) {
  spec_error_t err;
  size_t len;
  char *text = read_file(path, &len);
  int rc = spec_parse(text, len, s, &err);

  free(text);
  if (rc != 0)
    fail_msg("%s refused: [%s] %s", path, err.field, err.message);
}

static void test_every_example_parses(void **state) {
  pipeline_spec_t s;
  glob_t g;

  (void)state;
  assert_int_equal(glob("examples/*.json", 0, NULL, &g), 0);
  assert_true(g.gl_pathc >= 3);
  for (size_t i = 0; i < g.gl_pathc; i++)
    parse_file(g.gl_pathv[i], &s);
  globfree(&g);
}

static void test_examples_say_what_they_should(void **state) {
  pipeline_spec_t got, want;

  (void)state;
  sym40_expected(&want);
  parse_file("examples/sym40.json", &got);
  assert_spec_equal(&got, &want);

  strcpy(want.name, "fmnist-clean");
  want.noise_kind = PIPELINE_NOISE_NONE;
  want.noise_rate = 0;
  want.noise_seed = 0;
  parse_file("examples/clean.json", &got);
  assert_spec_equal(&got, &want);

  sym40_expected(&want);
  strcpy(want.name, "fmnist-quick");
  want.limit = 6000;
  want.spl.epochs = 4;
  want.teachers[0].stage.epochs = 3;
  want.student.epochs = 4;
  want.baseline.epochs = 4;
  parse_file("examples/quick.json", &got);
  assert_spec_equal(&got, &want);

  sym40_expected(&want);
  strcpy(want.name, "fmnist-multi-teacher");
  want.n_teachers = 2;
  want.teachers[1].stage = preset("cnn", 15, want.teachers[0].stage.optim);
  want.teachers[1].stage.optim.lr = 0.02;
  want.teachers[1].stage.optim.batch_size = 64;
  want.combine = PIPELINE_COMBINE_CONFIDENCE;
  parse_file("examples/multi-teacher.json", &got);
  assert_spec_equal(&got, &want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sym40_parses),
      cmocka_unit_test(test_every_key_is_read),
      cmocka_unit_test(test_key_order_does_not_matter),
      cmocka_unit_test(test_defaults_with_only_dataset_name),
      cmocka_unit_test(test_null_and_derived_sections),
      cmocka_unit_test(test_spl_options),
      cmocka_unit_test(test_several_teachers),
      cmocka_unit_test(test_checkpoint_teachers),
      cmocka_unit_test(test_student_options),
      cmocka_unit_test(test_bad_inputs_name_their_field),
      cmocka_unit_test(test_bounds_just_inside_are_accepted),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_messages_explain),
      cmocka_unit_test(test_presets_come_from_the_engine),
      cmocka_unit_test(test_custom_models),
      cmocka_unit_test(test_layer_count_bounds),
      cmocka_unit_test(test_dropout_rate_stays_below_one),
      cmocka_unit_test(test_refusal_leaves_output_alone),
      cmocka_unit_test(test_long_paths_are_cut_cleanly),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_every_example_parses),
      cmocka_unit_test(test_examples_say_what_they_should),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
