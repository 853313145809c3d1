/* SPDX-License-Identifier: MIT */
/* Unit tests of checkpoints: round trips of the presets (same parameter
 * bytes, same outputs, same meta), optimizer and dropout state carried
 * across a save, the byte layout, and refusal of every flipped byte, every
 * truncation, lying counts behind a valid CRC, newer versions, other
 * architectures and files that are not checkpoints at all; the check
 * without loading (checkpoint_verify) refuses the same files and also
 * weights that are not finite. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "../../engine/checkpoint.h"
#include "../../engine/layers.h"
#include "../../engine/model.h"
#include "../../engine/optim.h"
#include "../../engine/rng.h"

#define BATCH 8
#define CLASSES 10

/* Byte offsets of version 1 the tests patch (see engine/checkpoint.c):
 * a 20-byte header, then the model section whose layers take 52 bytes
 * each (seven description fields and two shapes). */
#define OFF_VERSION 8
#define OFF_LENGTH 12
#define OFF_IN 20
#define OFF_CLASSES 32
#define OFF_NAME 36
#define OFF_N_LAYERS 68
#define OFF_LAYERS 72
#define LAYER_BYTES 52
#define OPTIM_BYTES 88
#define STATE_BYTES 48 /* steps, epoch, generator, generator count */
#define RNG_ENTRY_BYTES 36

/* The fixture: a fresh directory for the test's files. */

typedef struct {
  char dir[64];
} fixture_t;

static int fixture_setup(void **state) {
  fixture_t *fx = calloc(1, sizeof *fx);

  if (!fx)
    return -1;
  snprintf(fx->dir, sizeof fx->dir, "/tmp/spk-test-checkpoint-XXXXXX");
  if (!mkdtemp(fx->dir)) {
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int fixture_teardown(void **state) {
  fixture_t *fx = *state;

  nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

/* The path of file name inside the fixture's directory, into out. */
static void path_of(void **state, const char *name, char out[256]) {
  fixture_t *fx = *state;

  snprintf(out, 256, "%s/%s", fx->dir, name);
}

/* Files. */

static uint8_t *file_get(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return buf;
}

/* Writes a new file at path; the old one is unlinked first, as
 * rewriting a truncated file in place makes some file systems flush it. */
static void file_put(const char *path, const uint8_t *buf, size_t size) {
  FILE *f;

  unlink(path);
  f = fopen(path, "wb");

  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
}

static uint32_t le32_at(const uint8_t *b, size_t off) {
  return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
         (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
}

static uint64_t le64_at(const uint8_t *b, size_t off) {
  return le32_at(b, off) | (uint64_t)le32_at(b, off + 4) << 32;
}

static void le32_set(uint8_t *b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b[off + i] = (uint8_t)(v >> (8 * i));
}

static void le64_set(uint8_t *b, size_t off, uint64_t v) {
  le32_set(b, off, (uint32_t)v);
  le32_set(b, off + 4, (uint32_t)(v >> 32));
}

/* Rewrites the closing CRC so that a patched file passes the checksum. */
static void crc_fix(uint8_t *b, size_t size) {
  le32_set(b, size - 4, (uint32_t)crc32(0L, b, (uInt)(size - 4)));
}

/* Models. */

static model_desc_t preset(const char *name) {
  model_desc_t d;

  memset(&d, 0, sizeof d);
  assert_int_equal(model_preset(name, &d), 0);
  return d;
}

/* A custom description of up to eight layers; kinds and sizes in turn,
 * dense units or dropout rate in percent as the size. */
static model_desc_t custom(int n, const int *kinds, const int *sizes) {
  model_desc_t d;

  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "custom");
  d.n_layers = n;
  for (int i = 0; i < n; i++) {
    d.layers[i].kind = kinds[i];
    if (kinds[i] == LAYER_DENSE)
      d.layers[i].units = sizes[i];
    if (kinds[i] == LAYER_DROPOUT)
      d.layers[i].rate = (float)sizes[i] / 100.0f;
  }
  return d;
}

/* dense 32, dropout 25 %, relu, dense to the classes: small, and with a
 * layer of its own generator. */
static model_desc_t small_dropout(void) {
  static const int kinds[] = {LAYER_DENSE, LAYER_DROPOUT, LAYER_RELU,
                              LAYER_DENSE};
  static const int sizes[] = {32, 25, 0, MODEL_CLASSES};

  return custom(4, kinds, sizes);
}

static model_t *build(const model_desc_t *d, layer_shape_t in, uint64_t seed) {
  rng_t init;
  model_env_t env = {in, CLASSES, BATCH, 1, &init, seed};
  model_t *m = NULL;
  char err[256] = "";
  int rc;

  rng_init(&init, seed, 1);
  rc = model_new(d, &env, &m, err, sizeof err);
  if (rc)
    fail_msg("model_new: %d %s", rc, err);
  return m;
}

static void fill_normal(rng_t *r, float *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    v[i] = rng_normal(r);
}

/* Gives every tensor of m random momentum and, for Adam, random second
 * moments, so that a round trip has all state to carry. */
static void fill_state(model_t *m, int with_m2, uint64_t seed) {
  optim_config_t adam = {.kind = OPTIM_ADAM};
  rng_t r;

  rng_init(&r, seed, 2);
  if (with_m2)
    assert_int_equal(model_optim_prepare(m, &adam), 0);
  for (int i = 0; i < m->n_params; i++) {
    optim_param_t *p = m->params[i];
    fill_normal(&r, p->velocity, p->n);
    if (p->m2)
      fill_normal(&r, p->m2, p->n);
  }
}

/* A meta for d with every field set to something other than zero. */
static checkpoint_meta_t meta_of(const model_desc_t *d, layer_shape_t in) {
  checkpoint_meta_t mt;

  memset(&mt, 0, sizeof mt);
  mt.desc = *d;
  mt.in = in;
  mt.classes = CLASSES;
  mt.optim = (optim_config_t){.kind = OPTIM_ADAMW,
                              .lr = 0.05,
                              .momentum = 0.9,
                              .weight_decay = 5e-4,
                              .batch_size = 128,
                              .schedule = OPTIM_SCHEDULE_COSINE,
                              .nesterov = 1,
                              .decay_bias = 1,
                              .beta1 = 0.85,
                              .beta2 = 0.995,
                              .eps = 1e-7,
                              .warmup_epochs = 1.5,
                              .step_epochs = 3,
                              .gamma = 0.1};
  mt.steps = 4000000123L;
  mt.epoch = 7;
  rng_init(&mt.rng, 99, 3);
  rng_next(&mt.rng);
  return mt;
}

static void save_ok(const char *path, const model_t *m,
                    const checkpoint_meta_t *mt) {
  char err[512] = "";
  int rc = checkpoint_save(path, m, mt, err, sizeof err);

  if (rc)
    fail_msg("checkpoint_save: %d %s", rc, err);
}

static model_t *load_ok(const char *path, checkpoint_meta_t *mt) {
  char err[512] = "";
  model_t *m = NULL;
  int rc = checkpoint_load(path, BATCH, 1, mt, &m, err, sizeof err);

  if (rc)
    fail_msg("checkpoint_load: %d %s", rc, err);
  assert_non_null(m);
  return m;
}

static void load_into_ok(const char *path, model_t *m, checkpoint_meta_t *mt) {
  char err[512] = "";
  int rc = checkpoint_load_into(path, m, mt, err, sizeof err);

  if (rc)
    fail_msg("checkpoint_load_into: %d %s", rc, err);
}

/* Comparisons. */

static int floats_same(const float *a, const float *b, size_t n) {
  if (!a || !b)
    return a == b;
  return memcmp(a, b, sizeof(float) * n) == 0;
}

/* 1 when a and b hold the same parameter bytes, momentum and second
 * moments. */
static int params_same(const model_t *a, const model_t *b) {
  if (a->n_params != b->n_params)
    return 0;
  for (int i = 0; i < a->n_params; i++) {
    const optim_param_t *p = a->params[i], *q = b->params[i];
    if (p->n != q->n || !floats_same(p->value, q->value, p->n) ||
        !floats_same(p->velocity, q->velocity, p->n) ||
        !floats_same(p->m2, q->m2, p->n))
      return 0;
  }
  return 1;
}

/* A copy of every value, momentum and second moment of m, in order. */
static float *snapshot(const model_t *m, size_t *count) {
  size_t n = 3 * model_param_count(m), k = 0;
  float *s = calloc(n ? n : 1, sizeof(float));

  assert_non_null(s);
  for (int i = 0; i < m->n_params; i++) {
    const optim_param_t *p = m->params[i];
    memcpy(s + k, p->value, sizeof(float) * p->n);
    memcpy(s + k + p->n, p->velocity, sizeof(float) * p->n);
    if (p->m2)
      memcpy(s + k + 2 * p->n, p->m2, sizeof(float) * p->n);
    k += 3 * p->n;
  }
  *count = n;
  return s;
}

static int snapshot_same(const model_t *m, const float *s, size_t n) {
  size_t count;
  float *now = snapshot(m, &count);
  int same = count == n && memcmp(now, s, sizeof(float) * n) == 0;

  free(now);
  return same;
}

/* The logits of n random rows (seeded by seed) through m. */
static float *outputs(model_t *m, int n, int training, uint64_t seed) {
  size_t in = (size_t)n * m->in_dim, out = (size_t)n * m->out_dim;
  float *x = malloc(sizeof(float) * in), *y = malloc(sizeof(float) * out);
  rng_t r;

  assert_non_null(x);
  assert_non_null(y);
  rng_init(&r, seed, 4);
  fill_normal(&r, x, in);
  memcpy(y, model_forward(m, NULL, x, n, training), sizeof(float) * out);
  free(x);
  return y;
}

static void meta_same(const checkpoint_meta_t *a, const checkpoint_meta_t *b) {
  const optim_config_t *o = &a->optim, *p = &b->optim;

  assert_string_equal(a->desc.name, b->desc.name);
  assert_int_equal(a->desc.n_layers, b->desc.n_layers);
  for (int i = 0; i < a->desc.n_layers; i++) {
    const layer_desc_t *x = &a->desc.layers[i], *y = &b->desc.layers[i];
    assert_int_equal(x->kind, y->kind);
    assert_int_equal(x->units, y->units);
    assert_int_equal(x->filters, y->filters);
    assert_int_equal(x->kernel, y->kernel);
    assert_int_equal(x->stride, y->stride);
    assert_int_equal(x->pad, y->pad);
    assert_true(x->rate == y->rate);
  }
  assert_memory_equal(&a->in, &b->in, sizeof a->in);
  assert_int_equal(a->classes, b->classes);
  assert_int_equal(o->kind, p->kind);
  assert_int_equal(o->batch_size, p->batch_size);
  assert_int_equal(o->schedule, p->schedule);
  assert_int_equal(o->nesterov, p->nesterov);
  assert_int_equal(o->decay_bias, p->decay_bias);
  assert_int_equal(o->step_epochs, p->step_epochs);
  assert_true(o->lr == p->lr && o->momentum == p->momentum &&
              o->weight_decay == p->weight_decay && o->beta1 == p->beta1 &&
              o->beta2 == p->beta2 && o->eps == p->eps &&
              o->warmup_epochs == p->warmup_epochs && o->gamma == p->gamma);
  assert_int_equal(a->steps, b->steps);
  assert_int_equal(a->epoch, b->epoch);
  assert_memory_equal(a->rng.s, b->rng.s, sizeof a->rng.s);
}

/* Round trips. */

/* Saves a model of d with random state, loads it both ways and checks
 * that parameters, outputs and meta come back identical. */
static void round_trip(void **state, const model_desc_t *d, layer_shape_t in,
                       const char *name) {
  char path[256];
  model_t *a = build(d, in, 1), *b, *c = build(d, in, 2);
  checkpoint_meta_t mt = meta_of(d, in), got, got2;
  float *ya, *yb, *yc;

  path_of(state, name, path);
  fill_state(a, 1, 5);
  save_ok(path, a, &mt);

  b = load_ok(path, &got);
  assert_true(params_same(a, b));
  meta_same(&mt, &got);
  ya = outputs(a, 5, 0, 11);
  yb = outputs(b, 5, 0, 11);
  assert_memory_equal(ya, yb, sizeof(float) * 5 * CLASSES);

  /* A model built from another seed differs until the state is loaded. */
  yc = outputs(c, 5, 0, 11);
  assert_true(memcmp(ya, yc, sizeof(float) * 5 * CLASSES) != 0);
  free(yc);
  load_into_ok(path, c, &got2);
  assert_true(params_same(a, c));
  meta_same(&mt, &got2);
  yc = outputs(c, 5, 0, 11);
  assert_memory_equal(ya, yc, sizeof(float) * 5 * CLASSES);

  free(ya);
  free(yb);
  free(yc);
  model_free(a);
  model_free(b);
  model_free(c);
}

static void test_round_trip_mlp(void **state) {
  model_desc_t d = preset("mlp");

  round_trip(state, &d, (layer_shape_t){1, 28, 28}, "mlp.ckpt");
}

static void test_round_trip_mlp_small(void **state) {
  model_desc_t d = preset("mlp-small");

  round_trip(state, &d, (layer_shape_t){1, 28, 28}, "mlp-small.ckpt");
}

static void test_round_trip_cnn(void **state) {
  model_desc_t d = preset("cnn");

  round_trip(state, &d, (layer_shape_t){1, 28, 28}, "cnn.ckpt");
}

static void test_round_trip_dropout(void **state) {
  model_desc_t d = small_dropout();

  round_trip(state, &d, (layer_shape_t){1, 4, 4}, "dropout.ckpt");
}

/* Optimizer and random state carried across a save. */

/* One training step of m on x (n rows): forward in training mode, the
 * gradient of 0.05 * sum(logits^2) - logits[row, row % classes], backward
 * and an update at cfg's rate. */
static void train_step(model_t *m, const float *x, int n,
                       const optim_config_t *cfg, long step) {
  const float *y = model_forward(m, NULL, x, n, 1);
  float *dy = malloc(sizeof(float) * (size_t)n * m->out_dim);

  assert_non_null(dy);
  for (int r = 0; r < n; r++)
    for (int k = 0; k < m->out_dim; k++) {
      size_t i = (size_t)r * m->out_dim + k;
      dy[i] = 0.1f * y[i] - (k == r % m->out_dim ? 1.0f : 0.0f);
    }
  model_backward(m, NULL, dy);
  model_update(m, NULL, cfg, cfg->lr, step);
  free(dy);
}

static float *batch_of(const model_t *m, int n, uint64_t seed) {
  float *x = malloc(sizeof(float) * (size_t)n * m->in_dim);
  rng_t r;

  assert_non_null(x);
  rng_init(&r, seed, 6);
  fill_normal(&r, x, (size_t)n * m->in_dim);
  return x;
}

/* Trains a model of d three steps with cfg, saves it, loads it into a
 * fresh model, and checks that a fourth step on both gives the same
 * bytes; a loaded copy whose optimizer state is then cleared must not. */
static void state_carried(void **state, const model_desc_t *d,
                          const optim_config_t *cfg, const char *name) {
  layer_shape_t in = {1, 6, 6};
  char path[256];
  model_t *a = build(d, in, 1), *b = build(d, in, 2), *c = build(d, in, 2);
  checkpoint_meta_t mt = meta_of(d, in), got;
  float *x = batch_of(a, BATCH, 3);

  path_of(state, name, path);
  assert_int_equal(model_optim_prepare(a, cfg), 0);
  for (long s = 1; s <= 3; s++)
    train_step(a, x, BATCH, cfg, s);
  mt.optim = *cfg;
  mt.steps = 3;
  save_ok(path, a, &mt);
  load_into_ok(path, b, &got);
  load_into_ok(path, c, &got);
  assert_int_equal(got.steps, 3);
  assert_true(params_same(a, b));

  for (int i = 0; i < c->n_params; i++) {
    optim_param_t *p = c->params[i];
    memset(p->velocity, 0, sizeof(float) * p->n);
    if (p->m2)
      memset(p->m2, 0, sizeof(float) * p->n);
  }
  train_step(a, x, BATCH, cfg, 4);
  train_step(b, x, BATCH, cfg, 4);
  train_step(c, x, BATCH, cfg, 4);
  assert_true(params_same(a, b));
  assert_false(params_same(a, c));

  free(x);
  model_free(a);
  model_free(b);
  model_free(c);
}

static void test_momentum_carried(void **state) {
  model_desc_t d = preset("mlp-small");
  optim_config_t sgd = {
      .kind = OPTIM_SGD, .lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};

  state_carried(state, &d, &sgd, "momentum.ckpt");
}

static void test_nesterov_carried(void **state) {
  model_desc_t d = preset("mlp-small");
  optim_config_t sgd = {
      .kind = OPTIM_SGD, .lr = 0.05, .momentum = 0.9, .nesterov = 1};

  state_carried(state, &d, &sgd, "nesterov.ckpt");
}

static void test_adam_moments_carried(void **state) {
  model_desc_t d = preset("mlp-small");
  optim_config_t adam = {.kind = OPTIM_ADAM,
                         .lr = 1e-3,
                         .weight_decay = 1e-4,
                         .beta1 = 0.9,
                         .beta2 = 0.999,
                         .eps = 1e-8};

  state_carried(state, &d, &adam, "adam.ckpt");
}

/* A file without second moments clears those a model already had, so
 * that the loaded state is the saved one, not a mixture. */
static void test_absent_moments_cleared(void **state) {
  model_desc_t d = preset("mlp-small");
  layer_shape_t in = {1, 6, 6};
  checkpoint_meta_t mt = meta_of(&d, in), got;
  model_t *a = build(&d, in, 1), *b = build(&d, in, 2);
  char path[256];

  path_of(state, "no-m2.ckpt", path);
  fill_state(a, 0, 3);
  fill_state(b, 1, 4);
  save_ok(path, a, &mt);
  load_into_ok(path, b, &got);
  for (int i = 0; i < b->n_params; i++) {
    const optim_param_t *p = b->params[i];
    assert_non_null(p->m2);
    for (size_t k = 0; k < p->n; k++)
      if (p->m2[k] != 0.0f)
        fail_msg("tensor %d: m2[%zu] = %g, not cleared", i, k, p->m2[k]);
    assert_memory_equal(p->velocity, a->params[i]->velocity,
                        sizeof(float) * p->n);
  }
  model_free(a);
  model_free(b);
}

/* A dropout layer's generator comes back: the next masks match. */
static void test_dropout_masks_carried(void **state) {
  model_desc_t d = small_dropout();
  layer_shape_t in = {1, 4, 4};
  checkpoint_meta_t mt = meta_of(&d, in), got;
  model_t *a = build(&d, in, 1), *b;
  float *y1, *y2, *ya, *yb;
  char path[256];

  path_of(state, "masks.ckpt", path);
  y1 = outputs(a, BATCH, 1, 21);
  y2 = outputs(a, BATCH, 1, 21);
  /* Masks change from batch to batch: the state matters. */
  assert_true(memcmp(y1, y2, sizeof(float) * BATCH * CLASSES) != 0);
  save_ok(path, a, &mt);
  b = load_ok(path, &got);
  ya = outputs(a, BATCH, 1, 22);
  yb = outputs(b, BATCH, 1, 22);
  assert_memory_equal(ya, yb, sizeof(float) * BATCH * CLASSES);

  free(y1);
  free(y2);
  free(ya);
  free(yb);
  model_free(a);
  model_free(b);
}

/* The layout. */

/* Integers are little-endian at the documented places, whatever the
 * host. */
static void test_layout_little_endian(void **state) {
  model_desc_t d = small_dropout();
  layer_shape_t in = {3, 4, 5};
  checkpoint_meta_t mt = meta_of(&d, in);
  model_t *m = build(&d, in, 1);
  char path[256];
  uint8_t *b;
  size_t size, tensors;

  path_of(state, "layout.ckpt", path);
  save_ok(path, m, &mt);
  b = file_get(path, &size);
  assert_memory_equal(b, "SPKCKPT", 8);
  assert_int_equal(b[OFF_VERSION], CHECKPOINT_VERSION);
  assert_int_equal(b[OFF_VERSION + 1] | b[OFF_VERSION + 2] | b[OFF_VERSION + 3],
                   0);
  assert_int_equal(le64_at(b, OFF_LENGTH), size);
  assert_int_equal(le32_at(b, OFF_IN), 3);
  assert_int_equal(le32_at(b, OFF_IN + 4), 4);
  assert_int_equal(le32_at(b, OFF_IN + 8), 5);
  assert_int_equal(le32_at(b, OFF_CLASSES), CLASSES);
  assert_string_equal((const char *)b + OFF_NAME, "custom");
  assert_int_equal(le32_at(b, OFF_N_LAYERS), 4);
  assert_int_equal(le32_at(b, OFF_LAYERS), LAYER_DENSE);
  assert_int_equal(le32_at(b, OFF_LAYERS + 4), 32);
  assert_int_equal(le32_at(b, OFF_LAYERS + LAYER_BYTES), LAYER_DROPOUT);
  /* layers[0]'s output shape (32, 1, 1). */
  assert_int_equal(le32_at(b, OFF_LAYERS + 40), 32);
  tensors = OFF_LAYERS + 4 * LAYER_BYTES + OPTIM_BYTES + STATE_BYTES +
            RNG_ENTRY_BYTES;
  assert_int_equal(le64_at(b, OFF_LAYERS + 4 * LAYER_BYTES + OPTIM_BYTES),
                   mt.steps);
  assert_int_equal(le32_at(b, tensors), 4);
  assert_int_equal(le64_at(b, tensors + 4), 60 * 32);
  assert_int_equal(le32_at(b, size - 4), crc32(0L, b, (uInt)(size - 4)));

  free(b);
  model_free(m);
}

/* A checkpoint's own layout must grow with optim_config_t: this mirror
 * lists the fields the format stores, and a field added to the struct
 * without the format changes its size. */
static void test_optim_fields_known(void **state) {
  typedef struct {
    int kind;
    double lr, momentum, weight_decay;
    int batch_size, schedule, nesterov, decay_bias;
    double beta1, beta2, eps, warmup_epochs;
    int step_epochs;
    double gamma;
  } mirror_t;

  (void)state;
  assert_int_equal(sizeof(optim_config_t), sizeof(mirror_t));
  assert_int_equal(offsetof(optim_config_t, gamma), offsetof(mirror_t, gamma));
  assert_int_equal(offsetof(optim_config_t, step_epochs),
                   offsetof(mirror_t, step_epochs));
  assert_int_equal(offsetof(optim_config_t, lr), offsetof(mirror_t, lr));
}

/* Refusals. */

/* A small checkpoint with a dropout generator and second moments, its
 * bytes in *size, and a model of the same architecture in *m. */
static uint8_t *small_file(void **state, const char *name, model_t **m,
                           size_t *size) {
  model_desc_t d = small_dropout();
  layer_shape_t in = {1, 4, 4};
  checkpoint_meta_t mt = meta_of(&d, in);
  model_t *a = build(&d, in, 1);
  char path[256];
  uint8_t *b;

  path_of(state, name, path);
  fill_state(a, 1, 8);
  save_ok(path, a, &mt);
  b = file_get(path, size);
  model_free(a);
  *m = build(&d, in, 2);
  fill_state(*m, 1, 9);
  return b;
}

/* Writes the size bytes at b to path and checks that both loaders and
 * checkpoint_verify (with the same code) refuse them, with a message
 * naming path, and leave the model m unchanged;
 * returns checkpoint_load's code, and its message in err. */
static int refused(const char *path, const uint8_t *b, size_t size, model_t *m,
                   char *err, size_t errlen) {
  checkpoint_meta_t got;
  model_t *out = m;
  size_t n;
  float *before = snapshot(m, &n);
  char err2[512] = "";
  int rc, rc2;

  file_put(path, b, size);
  rc = checkpoint_load(path, BATCH, 1, &got, &out, err, errlen);
  if (rc >= 0)
    fail_msg("a corrupt checkpoint of %zu bytes was loaded", size);
  assert_null(out);
  assert_non_null(strstr(err, path));
  assert_int_equal(checkpoint_verify(path, &got, err2, sizeof err2), rc);
  assert_non_null(strstr(err2, path));
  rc2 = checkpoint_load_into(path, m, &got, err2, sizeof err2);
  assert_true(rc2 < 0);
  assert_non_null(strstr(err2, path));
  assert_true(snapshot_same(m, before, n));
  free(before);
  return rc;
}

static void test_byte_flips_refused(void **state) {
  char path[256], err[512];
  model_t *m;
  size_t size;
  uint8_t *b = small_file(state, "flip-src.ckpt", &m, &size);

  path_of(state, "flip.ckpt", path);
  /* Every byte of the small file, three patterns in turn. */
  for (size_t i = 0; i < size; i++) {
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    uint8_t mask = masks[i % 3];
    b[i] ^= mask;
    refused(path, b, size, m, err, sizeof err);
    b[i] ^= mask;
  }
  free(b);
  model_free(m);
}

/* A large file (mlp): flips at a sample across header, layer list,
 * state, parameters and CRC. */
static void test_byte_flips_refused_mlp(void **state) {
  model_desc_t d = preset("mlp");
  layer_shape_t in = {1, 28, 28};
  checkpoint_meta_t mt = meta_of(&d, in);
  model_t *a = build(&d, in, 1);
  char path[256], err[512];
  size_t size;
  uint8_t *b;

  path_of(state, "flip-mlp.ckpt", path);
  save_ok(path, a, &mt);
  b = file_get(path, &size);
  for (size_t i = 0; i < size; i += i < 600 ? 37 : size / 23) {
    b[i] ^= 0x10;
    refused(path, b, size, a, err, sizeof err);
    b[i] ^= 0x10;
  }
  for (size_t i = size - 8; i < size; i++) {
    b[i] ^= 0x04;
    refused(path, b, size, a, err, sizeof err);
    b[i] ^= 0x04;
  }
  free(b);
  model_free(a);
}

static void test_truncations_refused(void **state) {
  char path[256], err[512];
  model_t *m, *big;
  size_t size, mlp_size;
  uint8_t *b = small_file(state, "cut-src.ckpt", &m, &size), *c;
  model_desc_t d = preset("mlp");
  checkpoint_meta_t mt = meta_of(&d, (layer_shape_t){1, 28, 28});

  path_of(state, "cut.ckpt", path);
  for (size_t n = 1; n < size; n++) {
    refused(path, b, n, m, err, sizeof err);
    if (n >= 8 && strstr(err, "truncated") == NULL)
      fail_msg("cut to %zu bytes: %s", n, err);
  }

  /* The mlp's file cut at a sample of lengths. */
  big = build(&d, (layer_shape_t){1, 28, 28}, 1);
  path_of(state, "cut-mlp-src.ckpt", path);
  save_ok(path, big, &mt);
  c = file_get(path, &mlp_size);
  path_of(state, "cut-mlp.ckpt", path);
  for (size_t n = 1; n < mlp_size; n += n < 400 ? 41 : mlp_size / 17)
    refused(path, c, n, big, err, sizeof err);
  refused(path, c, mlp_size - 1, big, err, sizeof err);
  free(c);
  free(b);
  model_free(m);
  model_free(big);
}

/* A patch applied to a copy of the small file, CRC fixed, must be
 * refused with a message containing want. */
typedef struct {
  size_t off;
  int wide; /* 1: a u64 */
  uint64_t value;
  const char *want;
} patch_t;

static void test_lying_counts_refused(void **state) {
  const size_t optim = OFF_LAYERS + 4 * LAYER_BYTES;
  const size_t st = optim + OPTIM_BYTES;
  const size_t tensors = st + STATE_BYTES + RNG_ENTRY_BYTES;
  const size_t m2_flag = tensors + 4 + 8 + 2 * 4 * 16 * 32;
  const patch_t patches[] = {
      {OFF_CLASSES, 0, 0, "classes"},
      {OFF_CLASSES, 0, 1u << 31, "classes"},
      {OFF_IN, 0, 0, "input shape"},
      {OFF_IN + 4, 0, 1u << 30, "input shape"},
      {OFF_IN + 4, 0, 5, "layers[0] (dense): input"},
      {OFF_N_LAYERS, 0, 1000, "layers"},
      {OFF_N_LAYERS, 0, 0, "layers"},
      {OFF_N_LAYERS, 0, 3, ""},
      {OFF_LAYERS, 0, 99, "layers[0]: unknown kind 99"},
      {OFF_LAYERS + 4, 0, 1u << 20, "layers[0] (dense) tensor 0"},
      {OFF_LAYERS + 4, 0, (uint32_t)-7, "layers[0] (dense) tensor 0"},
      {OFF_LAYERS + LAYER_BYTES + 28, 0, 33, "layers[1] (dropout): input"},
      {OFF_LAYERS + 3 * LAYER_BYTES + 40, 0, 11, "layers[3]"},
      {optim, 0, 77, "optimizer kind"},
      {optim + 4 + 24 + 4, 0, 55, "schedule"},
      {optim + 4, 1, 0x7ff8000000000000ull, "lr is not finite"},
      {st, 1, (uint64_t)-1, "step count"},
      {st + 8, 0, (uint32_t)-2, "epoch"},
      {st + 44, 0, 50, "layer generators"},
      {st + 48, 0, 0, "layers[0] (dense): random state"},
      {st + 48, 0, 9, "out of range"},
      {tensors, 0, 1000, "parameter tensors"},
      {tensors, 0, 3, "unexpected bytes"},
      {tensors + 4, 1, 1ull << 40, "more than the file holds"},
      {tensors + 4, 1, 16 * 32 - 1, "tensor"},
      {m2_flag, 0, 2, "flag"},
      {OFF_VERSION, 0, 0, "version 0"},
  };
  char path[256], err[512];
  model_t *m;
  size_t size;
  uint8_t *b = small_file(state, "lie-src.ckpt", &m, &size);
  uint8_t *c = malloc(size);

  assert_non_null(c);
  /* The offsets are where this test believes they are. */
  assert_int_equal(le32_at(b, OFF_LAYERS + 3 * LAYER_BYTES), LAYER_DENSE);
  assert_int_equal(le32_at(b, optim), OPTIM_ADAMW);
  assert_int_equal(le32_at(b, st + 44), 1);
  assert_int_equal(le32_at(b, st + 48), 1);
  assert_int_equal(le32_at(b, tensors), 4);
  assert_int_equal(le64_at(b, tensors + 4), 16 * 32);
  assert_int_equal(le32_at(b, m2_flag), 1);

  path_of(state, "lie.ckpt", path);
  for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
    const patch_t *p = &patches[i];
    memcpy(c, b, size);
    if (p->wide)
      le64_set(c, p->off, p->value);
    else
      le32_set(c, p->off, (uint32_t)p->value);
    crc_fix(c, size);
    refused(path, c, size, m, err, sizeof err);
    if (!strstr(err, p->want))
      fail_msg("patch %zu: '%s' does not say '%s'", i, err, p->want);
  }
  free(c);
  free(b);
  model_free(m);
}

static void test_newer_version_refused(void **state) {
  char path[256], err[512];
  model_t *m;
  size_t size;
  uint8_t *b = small_file(state, "v2-src.ckpt", &m, &size);

  path_of(state, "v2.ckpt", path);
  le32_set(b, OFF_VERSION, 2);
  crc_fix(b, size);
  assert_int_equal(refused(path, b, size, m, err, sizeof err), -ENOTSUP);
  assert_non_null(strstr(err, "version 2 is newer"));
  free(b);
  model_free(m);
}

static void test_not_checkpoints_refused(void **state) {
  static const char text[] = "epoch=1 loss=0.5\nthis is not a checkpoint\n";
  char path[256], err[512];
  model_t *m;
  size_t size;
  uint8_t *b = small_file(state, "other-src.ckpt", &m, &size);
  uint8_t *longer = calloc(size + 1, 1);
  checkpoint_meta_t got;
  model_t *out = NULL;
  fixture_t *fx = *state;

  path_of(state, "text.ckpt", path);
  refused(path, (const uint8_t *)text, sizeof text - 1, m, err, sizeof err);
  assert_non_null(strstr(err, "not a spkd checkpoint"));

  path_of(state, "empty.ckpt", path);
  refused(path, (const uint8_t *)"", 0, m, err, sizeof err);
  assert_non_null(strstr(err, "empty"));

  assert_non_null(longer);
  memcpy(longer, b, size);
  path_of(state, "longer.ckpt", path);
  refused(path, longer, size + 1, m, err, sizeof err);
  assert_non_null(strstr(err, "more than"));

  assert_int_equal(
      checkpoint_load(fx->dir, BATCH, 1, &got, &out, err, sizeof err), -EISDIR);
  assert_null(out);
  assert_non_null(strstr(err, "directory"));
  assert_int_equal(checkpoint_load_into(fx->dir, m, &got, err, sizeof err),
                   -EISDIR);

  path_of(state, "missing.ckpt", path);
  assert_int_equal(checkpoint_load(path, BATCH, 1, &got, &out, err, sizeof err),
                   -ENOENT);
  assert_null(out);
  assert_non_null(strstr(err, path));
  assert_int_equal(checkpoint_load_into(path, m, &got, err, sizeof err),
                   -ENOENT);

  path_of(state, "other-src.ckpt", path);
  assert_int_equal(checkpoint_load(path, 0, 1, &got, &out, err, sizeof err),
                   -EINVAL);
  assert_null(out);
  free(longer);
  free(b);
  model_free(m);
}

/* Saves a model of da on ia and loads it into a model of db on ib:
 * refused with -EINVAL naming want, the model unchanged. */
static void other_architecture(void **state, const model_desc_t *da,
                               layer_shape_t ia, const model_desc_t *db,
                               layer_shape_t ib, const char *want) {
  model_t *a = build(da, ia, 1), *b = build(db, ib, 2);
  checkpoint_meta_t mt = meta_of(da, ia), got;
  char path[256], err[512] = "";
  size_t n;
  float *before = snapshot(b, &n);

  path_of(state, "arch.ckpt", path);
  save_ok(path, a, &mt);
  assert_int_equal(checkpoint_load_into(path, b, &got, err, sizeof err),
                   -EINVAL);
  if (!strstr(err, want) || !strstr(err, path))
    fail_msg("'%s' does not name '%s'", err, want);
  assert_true(snapshot_same(b, before, n));
  free(before);
  model_free(a);
  model_free(b);
}

static void test_other_architecture_refused(void **state) {
  static const int k3[] = {LAYER_DENSE, LAYER_RELU, LAYER_DENSE};
  static const int s3[] = {64, 0, MODEL_CLASSES};
  static const int k5[] = {LAYER_DENSE, LAYER_RELU, LAYER_DENSE, LAYER_RELU,
                           LAYER_DENSE};
  static const int s5[] = {64, 0, 32, 0, MODEL_CLASSES};
  static const int kd[] = {LAYER_DENSE, LAYER_DROPOUT, LAYER_DENSE};
  static const int sd[] = {64, 10, MODEL_CLASSES};
  model_desc_t mlp = preset("mlp"), small = preset("mlp-small");
  model_desc_t three = custom(3, k3, s3), five = custom(5, k5, s5);
  model_desc_t drop = custom(3, kd, sd), cnn = preset("cnn");
  layer_shape_t mnist = {1, 28, 28}, tiny = {1, 6, 6};

  other_architecture(state, &mlp, mnist, &small, mnist, "layers[0] (dense)");
  other_architecture(state, &small, mnist, &small, tiny, "layers[0] (dense)");
  other_architecture(state, &three, tiny, &five, tiny, "layers[2] (dense)");
  other_architecture(state, &five, tiny, &three, tiny, "layers[2] (dense)");
  other_architecture(state, &three, tiny, &drop, tiny, "layers[1]: relu");
  other_architecture(state, &drop, tiny, &three, tiny, "layers[1]: dropout");
  /* Same conv2d tensors, other image size: the shapes tell. */
  other_architecture(state, &cnn, mnist, &cnn, (layer_shape_t){1, 32, 32},
                     "layers[0] (conv2d): 28x28x1 -> 24x24x32 in the file");
}

/* Checking without loading. */

static void test_verify_accepts_what_loads(void **state) {
  model_desc_t d = preset("cnn");
  layer_shape_t in = {1, 28, 28};
  checkpoint_meta_t mt = meta_of(&d, in), got;
  model_t *a = build(&d, in, 1);
  char path[256], err[512] = "";
  int rc;

  path_of(state, "verify.ckpt", path);
  fill_state(a, 1, 3);
  save_ok(path, a, &mt);
  rc = checkpoint_verify(path, &got, err, sizeof err);
  if (rc)
    fail_msg("checkpoint_verify: %d %s", rc, err);
  meta_same(&mt, &got);
  model_free(a);
}

/* The small file with the 32-bit value at off replaced by bits, CRC
 * fixed: checkpoint_verify's code and message in err. */
static int verify_patched(void **state, size_t off, uint32_t bits, char *err,
                          size_t errlen) {
  checkpoint_meta_t got;
  char path[256];
  model_t *m;
  size_t size;
  uint8_t *b = small_file(state, "nan-src.ckpt", &m, &size);
  int rc;

  le32_set(b, off, bits);
  crc_fix(b, size);
  path_of(state, "nan.ckpt", path);
  file_put(path, b, size);
  rc = checkpoint_verify(path, &got, err, errlen);
  free(b);
  model_free(m);
  return rc;
}

/* Weights that are NaN or infinite pass the CRC and load, but are no
 * model to use: checkpoint_verify names the layer, tensor and value.
 * Momentum is left alone, as a loaded model only runs forward. */
static void test_verify_refuses_non_finite_weights(void **state) {
  /* The small file's tensors: dense 16 -> 32 (512 weights, 32 biases),
   * each value, velocity and second moments, then dense 32 -> 10. */
  const size_t tensors = OFF_LAYERS + 4 * LAYER_BYTES + OPTIM_BYTES +
                         STATE_BYTES + RNG_ENTRY_BYTES;
  const size_t w0 = tensors + 4 + 8, b0 = w0 + 3 * 4 * 512 + 4 + 8;
  char err[512] = "";

  assert_int_equal(
      verify_patched(state, w0 + 4 * 5, 0x7fc00000u, err, sizeof err), -EINVAL);
  assert_non_null(
      strstr(err, "layers[0] (dense) tensor 0: value 5 of 512 is NaN"));
  assert_int_equal(
      verify_patched(state, b0 + 4 * 3, 0xff800000u, err, sizeof err), -EINVAL);
  assert_non_null(
      strstr(err, "layers[0] (dense) tensor 1: value 3 of 32 is infinite"));
  assert_int_equal(
      verify_patched(state, w0 + 4 * 512, 0x7fc00000u, err, sizeof err), 0);
  /* The largest finite float is a weight like any other. */
  assert_int_equal(verify_patched(state, w0, 0x7f7fffffu, err, sizeof err), 0);
}

/* Saving. */

/* No temporary file is left in the fixture's directory. */
static void no_temporaries(void **state) {
  fixture_t *fx = *state;
  DIR *d = opendir(fx->dir);
  struct dirent *e;

  assert_non_null(d);
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp"))
      fail_msg("temporary file %s left behind", e->d_name);
  closedir(d);
}

static void test_save_replaces(void **state) {
  model_desc_t d = preset("mlp-small");
  layer_shape_t in = {1, 6, 6};
  checkpoint_meta_t mt = meta_of(&d, in), got;
  model_t *a = build(&d, in, 1), *b = build(&d, in, 2), *c;
  fixture_t *fx = *state;
  char path[256], bad[300], err[512] = "";

  path_of(state, "replace.ckpt", path);
  save_ok(path, a, &mt);
  mt.epoch = 8;
  save_ok(path, b, &mt);
  c = load_ok(path, &got);
  assert_true(params_same(b, c));
  assert_false(params_same(a, c));
  assert_int_equal(got.epoch, 8);
  no_temporaries(state);

  /* A directory cannot be replaced by a file, nor a file written where
   * no directory exists; neither leaves anything behind. */
  assert_true(checkpoint_save(fx->dir, a, &mt, err, sizeof err) < 0);
  assert_non_null(strstr(err, fx->dir));
  no_temporaries(state);
  snprintf(bad, sizeof bad, "%s/no-such-dir/x.ckpt", fx->dir);
  assert_int_equal(checkpoint_save(bad, a, &mt, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, bad));

  model_free(a);
  model_free(b);
  model_free(c);
}

/* A meta that does not describe its model, or that the format cannot
 * hold, is refused and nothing is written. */
static void test_save_refuses_bad_meta(void **state) {
  model_desc_t d = preset("mlp-small");
  layer_shape_t in = {1, 6, 6};
  model_t *a = build(&d, in, 1);
  checkpoint_meta_t good = meta_of(&d, in), mt;
  char path[256], err[512] = "";
  struct stat st;

  path_of(state, "bad-meta.ckpt", path);
  mt = good;
  mt.classes = 7;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  mt = good;
  mt.in.h = 5;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  mt = good;
  mt.desc.layers[0].units = 64;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "layers[0]"));
  mt = good;
  mt.desc.layers[1].kind = LAYER_FLATTEN;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "layers[1]"));
  mt = good;
  mt.desc.n_layers = 5;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  mt = good;
  mt.optim.kind = 42;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "optimizer kind"));
  mt = good;
  mt.steps = -1;
  assert_int_equal(checkpoint_save(path, a, &mt, err, sizeof err), -EINVAL);
  assert_int_equal(stat(path, &st), -1);
  no_temporaries(state);
  model_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_mlp),
      cmocka_unit_test(test_round_trip_mlp_small),
      cmocka_unit_test(test_round_trip_cnn),
      cmocka_unit_test(test_round_trip_dropout),
      cmocka_unit_test(test_momentum_carried),
      cmocka_unit_test(test_nesterov_carried),
      cmocka_unit_test(test_adam_moments_carried),
      cmocka_unit_test(test_absent_moments_cleared),
      cmocka_unit_test(test_dropout_masks_carried),
      cmocka_unit_test(test_layout_little_endian),
      cmocka_unit_test(test_optim_fields_known),
      cmocka_unit_test(test_byte_flips_refused),
      cmocka_unit_test(test_byte_flips_refused_mlp),
      cmocka_unit_test(test_truncations_refused),
      cmocka_unit_test(test_lying_counts_refused),
      cmocka_unit_test(test_newer_version_refused),
      cmocka_unit_test(test_not_checkpoints_refused),
      cmocka_unit_test(test_other_architecture_refused),
      cmocka_unit_test(test_verify_accepts_what_loads),
      cmocka_unit_test(test_verify_refuses_non_finite_weights),
      cmocka_unit_test(test_save_replaces),
      cmocka_unit_test(test_save_refuses_bad_meta),
  };

  return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
