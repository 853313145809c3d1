/* SPDX-License-Identifier: MIT */
/* Unit tests of the dataset loaders: small IDX (raw and gzipped), CIFAR-10,
 * CIFAR-100 and CSV datasets written here into a temporary data root;
 * gathering normalised rows under both norms against values computed here;
 * broken files of every kind, which must fail with -EINVAL and name the
 * file; and names that try to leave the data root. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
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

#include "../../engine/dataset.h"

/* The good dataset: 7 training and 5 test images of 3 x 4 pixels, with
 * training labels 0..3 so that there are 4 classes. */
enum { TRAIN_N = 7, TEST_N = 5, HEIGHT = 3, WIDTH = 4, CLASSES = 4 };
enum { IMAGES_TRAIN, LABELS_TRAIN, IMAGES_TEST, LABELS_TEST, FILES };

static const char *const file_names[FILES] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* The temporary data root every test writes into, removed at the end. */
typedef struct {
  char root[64];
  char real[PATH_MAX]; /* root with symbolic links resolved */
  char outside[64];    /* a directory beside the root */
} fixture_t;

/* A file's bytes before it is written. */
typedef struct {
  uint8_t *p;
  size_t n;
} blob_t;

typedef struct {
  blob_t f[FILES];
} idx_set_t;

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint8_t pixel(int i, int k, int salt) {
  return (uint8_t)((i * 53 + k * 29 + salt) % 256);
}

static blob_t idx_images(int n, int h, int w, int salt) {
  size_t dim = (size_t)h * w;
  blob_t b = {malloc(16 + (size_t)n * dim), 16 + (size_t)n * dim};

  assert_non_null(b.p);
  put_be32(b.p, 0x00000803);
  put_be32(b.p + 4, (uint32_t)n);
  put_be32(b.p + 8, (uint32_t)h);
  put_be32(b.p + 12, (uint32_t)w);
  for (int i = 0; i < n; i++)
    for (size_t k = 0; k < dim; k++)
      b.p[16 + i * dim + k] = pixel(i, (int)k, salt);
  return b;
}

static blob_t idx_labels(int n, int step) {
  blob_t b = {malloc(8 + (size_t)n), 8 + (size_t)n};

  assert_non_null(b.p);
  put_be32(b.p, 0x00000801);
  put_be32(b.p + 4, (uint32_t)n);
  for (int i = 0; i < n; i++)
    b.p[8 + i] = (uint8_t)(i * step % CLASSES);
  return b;
}

static void set_good(idx_set_t *s) {
  s->f[IMAGES_TRAIN] = idx_images(TRAIN_N, HEIGHT, WIDTH, 7);
  s->f[LABELS_TRAIN] = idx_labels(TRAIN_N, 1);
  s->f[IMAGES_TEST] = idx_images(TEST_N, HEIGHT, WIDTH, 100);
  s->f[LABELS_TEST] = idx_labels(TEST_N, 3);
}

static void set_free(idx_set_t *s) {
  for (int i = 0; i < FILES; i++)
    free(s->f[i].p);
}

/* Grows a blob by extra bytes of value 0x5a. */
static void blob_append(blob_t *b, size_t extra) {
  uint8_t *p = realloc(b->p, b->n + extra);

  assert_non_null(p);
  memset(p + b->n, 0x5a, extra);
  b->p = p;
  b->n += extra;
}

static void write_blob(const char *path, const blob_t *b, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    if (b->n > 0)
      assert_int_equal(gzwrite(f, b->p, (unsigned)b->n), (int)b->n);
    assert_int_equal(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    assert_int_equal(fclose(f), 0);
  }
}

/* The path of file i of dataset name under dir, .gz when gz. */
static void file_path(char *out, size_t len, const char *dir, const char *name,
                      int i, int gz) {
  int n = snprintf(out, len, "%s/%s/%s%s", dir, name, file_names[i],
                   gz ? ".gz" : "");
  assert_true(n > 0 && (size_t)n < len);
}

/* Writes the four files of s as dataset name under dir. */
static void write_set(const char *dir, const char *name, const idx_set_t *s,
                      int gz) {
  char path[PATH_MAX];

  snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(mkdir(path, 0755), 0);
  for (int i = 0; i < FILES; i++) {
    file_path(path, sizeof path, dir, name, i, gz);
    write_blob(path, &s->f[i], gz);
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int fixture_setup(void **state) {
  fixture_t *fx = calloc(1, sizeof *fx);

  if (!fx)
    return -1;
  snprintf(fx->root, sizeof fx->root, "/tmp/spk-test-dataset-XXXXXX");
  snprintf(fx->outside, sizeof fx->outside, "/tmp/spk-test-outside-XXXXXX");
  if (!mkdtemp(fx->root) || !mkdtemp(fx->outside) ||
      !realpath(fx->root, fx->real)) {
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

static int fixture_teardown(void **state) {
  fixture_t *fx = *state;

  nftw(fx->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  nftw(fx->outside, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

/* Checking what was loaded, for every format. */

static void check_close(double got, double want, double tol, const char *what,
                        size_t i) {
  if (!(fabs(got - want) <= tol))
    fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, got, want);
}

/* Per-channel mean and standard deviation of n images of bytes px in
 * [0, 1] units, the straightforward way. */
static void expect_pixel_stats(const uint8_t *px, int n, int channels,
                               int plane, double *mean, double *sd) {
  for (int c = 0; c < channels; c++) {
    double sum = 0.0, dev = 0.0, count = (double)n * plane;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < plane; k++)
        sum += px[((size_t)i * channels + c) * plane + k] / 255.0;
    mean[c] = sum / count;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < plane; k++) {
        double d = px[((size_t)i * channels + c) * plane + k] / 255.0 - mean[c];
        dev += d * d;
      }
    sd[c] = sqrt(dev / count);
  }
}

/* Rows in a scrambled order with repeats, as a training batch has them. */
static int32_t *scrambled_rows(int n, int count) {
  int32_t *rows = malloc(sizeof(int32_t) * (size_t)count);

  assert_non_null(rows);
  for (int i = 0; i < count; i++)
    rows[i] = (int32_t)((i * 7 + 3) % n);
  return rows;
}

/* Gathers ds's rows, scrambled and as a range, and compares each value
 * with (px / 255 - mean[c]) / sd[c] computed here from the bytes px
 * (n, dim) the files hold. */
/* Gathered rows come out channels last: value k of a row is pixel
 * k / channels of channel k % channels, stored (c, h, w) in the file. */
static void check_gather_pixels(const dataset_t *ds, const uint8_t *px,
                                const double *mean, const double *sd) {
  size_t dim = (size_t)ds->dim, plane = (size_t)ds->height * ds->width;
  size_t channels = (size_t)ds->channels;
  int count = ds->n + 2, half = ds->n / 2;
  int32_t *rows = scrambled_rows(ds->n, count);
  float *out = malloc(sizeof(float) * dim * (size_t)count);

  assert_non_null(out);
  dataset_gather(ds, rows, count, out);
  for (int i = 0; i < count; i++)
    for (size_t k = 0; k < dim; k++) {
      size_t c = k % channels, pix = k / channels;
      double want =
          (px[rows[i] * dim + c * plane + pix] / 255.0 - mean[c]) / sd[c];
      check_close(out[i * dim + k], want, 1e-5, "gathered", i * dim + k);
    }
  dataset_gather_range(ds, half, ds->n - half, out);
  for (size_t j = 0; j < (size_t)(ds->n - half) * dim; j++) {
    size_t row = half + j / dim, k = j % dim;
    size_t c = k % channels, pix = k / channels;
    double want = (px[row * dim + c * plane + pix] / 255.0 - mean[c]) / sd[c];
    check_close(out[j], want, 1e-5, "range", j);
  }
  free(rows);
  free(out);
}

/* Checks an image split against the bytes of its files: shape, pixels,
 * labels, the training statistics it carries, and gathering. */
typedef struct {
  const uint8_t *px; /* (n, dim) as the files hold them */
  const uint8_t *y;  /* (n) */
  int n, channels, side_h, side_w, classes;
} image_want_t;

static void check_images(const dataset_t *ds, const image_want_t *w,
                         dataset_norm_t norm, const double *mean,
                         const double *sd) {
  double zero[DATASET_MAX_CHANNELS] = {0}, one[DATASET_MAX_CHANNELS];
  int standard = norm == DATASET_NORM_STANDARDIZE;

  for (int c = 0; c < DATASET_MAX_CHANNELS; c++)
    one[c] = 1.0;

  assert_int_equal(ds->n, w->n);
  assert_int_equal(ds->channels, w->channels);
  assert_int_equal(ds->height, w->side_h);
  assert_int_equal(ds->width, w->side_w);
  assert_int_equal(ds->dim, w->channels * w->side_h * w->side_w);
  assert_int_equal(ds->classes, w->classes);
  assert_int_equal(ds->norm, norm);
  assert_non_null(ds->pixels);
  assert_null(ds->features);
  assert_memory_equal(ds->pixels, w->px, (size_t)w->n * ds->dim);
  assert_memory_equal(ds->y, w->y, (size_t)w->n);
  for (int c = 0; c < w->channels; c++) {
    check_close(ds->mean[c], mean[c], 1e-6, "mean", (size_t)c);
    check_close(ds->sd[c], sd[c], 1e-6, "sd", (size_t)c);
  }
  check_gather_pixels(ds, w->px, standard ? mean : zero, standard ? sd : one);
}

/* The IDX dataset. Pixels are scaled to [0, 1], then shifted and scaled by
 * the mean and standard deviation of all training pixels (one channel);
 * both splits use the training statistics. */

static image_want_t idx_want(const idx_set_t *s, int test) {
  image_want_t w = {s->f[test ? IMAGES_TEST : IMAGES_TRAIN].p + 16,
                    s->f[test ? LABELS_TEST : LABELS_TRAIN].p + 8,
                    test ? TEST_N : TRAIN_N,
                    1,
                    HEIGHT,
                    WIDTH,
                    CLASSES};
  return w;
}

static void check_loaded(const dataset_t *train, const dataset_t *test,
                         const idx_set_t *s, dataset_norm_t norm) {
  image_want_t wtrain = idx_want(s, 0), wtest = idx_want(s, 1);
  double mean[1], sd[1], xs = 0.0, xq = 0.0;
  size_t total = (size_t)TRAIN_N * HEIGHT * WIDTH;
  float *all = malloc(sizeof(float) * total);

  expect_pixel_stats(wtrain.px, TRAIN_N, 1, HEIGHT * WIDTH, mean, sd);
  check_images(train, &wtrain, norm, mean, sd);
  check_images(test, &wtest, norm, mean, sd);

  /* Standardised training values have mean 0 and variance 1. */
  assert_non_null(all);
  dataset_gather_range(train, 0, TRAIN_N, all);
  for (size_t i = 0; i < total; i++) {
    xs += all[i];
    xq += (double)all[i] * all[i];
  }
  if (norm == DATASET_NORM_STANDARDIZE) {
    check_close(xs / total, 0.0, 1e-6, "training mean", 0);
    check_close(xq / total, 1.0, 1e-5, "training variance", 0);
  }
  free(all);
}

static void load_good(const fixture_t *fx, const char *name, int gz,
                      dataset_norm_t norm, dataset_t *train, dataset_t *test) {
  idx_set_t s;
  char err[512] = "";

  set_good(&s);
  write_set(fx->root, name, &s, gz);
  if (dataset_load(fx->root, name, norm, train, test, err, sizeof err) != 0)
    fail_msg("dataset_load %s: %s", name, err);
  check_loaded(train, test, &s, norm);
  set_free(&s);
}

static void test_load_raw_and_gzip(void **state) {
  const fixture_t *fx = *state;
  dataset_t train, test, gtrain, gtest;

  load_good(fx, "tiny", 0, DATASET_NORM_STANDARDIZE, &train, &test);
  load_good(fx, "tinygz", 1, DATASET_NORM_STANDARDIZE, &gtrain, &gtest);
  assert_memory_equal(train.pixels, gtrain.pixels, TRAIN_N * HEIGHT * WIDTH);
  assert_memory_equal(test.pixels, gtest.pixels, TEST_N * HEIGHT * WIDTH);
  dataset_deinit(&train);
  dataset_deinit(&test);
  dataset_deinit(&gtrain);
  dataset_deinit(&gtest);
  assert_null(train.pixels);
  assert_null(train.y);
  dataset_deinit(&train);
}

/* The scale norm only maps pixels to [0, 1], yet the training statistics
 * are there all the same. */
static void test_load_scaled(void **state) {
  dataset_t train, test;

  load_good(*state, "tiny-scaled", 1, DATASET_NORM_SCALE, &train, &test);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* One IDX pair read directly: pixels scaled to [0, 1], its own statistics. */
static void test_idx_pair_scaled(void **state) {
  const fixture_t *fx = *state;
  idx_set_t s;
  dataset_t ds;
  image_want_t w;
  double mean[1], sd[1];
  char images[PATH_MAX], labels[PATH_MAX], err[512] = "";

  set_good(&s);
  write_set(fx->root, "pair", &s, 1);
  file_path(images, sizeof images, fx->root, "pair", IMAGES_TRAIN, 1);
  file_path(labels, sizeof labels, fx->root, "pair", LABELS_TRAIN, 1);
  if (dataset_idx_load(images, labels, &ds, err, sizeof err) != 0)
    fail_msg("dataset_idx_load: %s", err);
  w = idx_want(&s, 0);
  expect_pixel_stats(w.px, TRAIN_N, 1, HEIGHT * WIDTH, mean, sd);
  check_images(&ds, &w, DATASET_NORM_SCALE, mean, sd);
  dataset_deinit(&ds);
  set_free(&s);
}

static void test_probe(void **state) {
  const fixture_t *fx = *state;
  idx_set_t s;
  int n_train = 0, n_test = 0;
  char err[512] = "";

  set_good(&s);
  write_set(fx->root, "probed", &s, 0);
  if (dataset_probe(fx->root, "probed", &n_train, &n_test, err, sizeof err) !=
      0)
    fail_msg("dataset_probe: %s", err);
  assert_int_equal(n_train, TRAIN_N);
  assert_int_equal(n_test, TEST_N);
  set_free(&s);
}

/* Broken files. Each case changes one file of the good set; loading must
 * fail with -EINVAL, name that file and leave both splits empty. */

typedef enum {
  CUT,       /* drop the last `arg` bytes */
  APPEND,    /* add `arg` bytes */
  MAGIC,     /* header word 0 becomes arg */
  COUNT,     /* header word 1 (the item count) becomes arg */
  HUGE_DIMS, /* the largest header the loader accepts, over little data */
  GZ_CUT     /* write gzipped, then cut the compressed file in half */
} damage_t;

typedef struct {
  const char *name;
  int file;
  damage_t damage;
  uint32_t arg;
  int gz;
} broken_t;

static void damage_apply(blob_t *b, const broken_t *c) {
  switch (c->damage) {
  case CUT:
    b->n = c->arg < b->n ? b->n - c->arg : 0;
    break;
  case APPEND:
    blob_append(b, c->arg);
    break;
  case MAGIC:
    put_be32(b->p, c->arg);
    break;
  case COUNT:
    put_be32(b->p + 4, c->arg);
    break;
  case HUGE_DIMS:
    put_be32(b->p + 4, 10000000);
    put_be32(b->p + 8, 4096);
    put_be32(b->p + 12, 4096);
    break;
  case GZ_CUT:
    break;
  }
}

/* Cuts a written file to half its size. */
static void file_halve(const char *path) {
  struct stat st;

  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size / 2), 0);
}

static void broken_check(const fixture_t *fx, const broken_t *c) {
  idx_set_t s;
  dataset_t train, test;
  char want[PATH_MAX], err[1024] = "";
  int gz = c->gz || c->damage == GZ_CUT;
  int rc;

  set_good(&s);
  damage_apply(&s.f[c->file], c);
  write_set(fx->root, c->name, &s, gz);
  file_path(want, sizeof want, fx->real, c->name, c->file, gz);
  if (c->damage == GZ_CUT)
    file_halve(want);

  rc = dataset_load(fx->root, c->name, DATASET_NORM_STANDARDIZE, &train, &test,
                    err, sizeof err);
  if (rc != -EINVAL)
    fail_msg("%s: dataset_load returned %d, not -EINVAL (%s)", c->name, rc,
             err);
  if (!strstr(err, want))
    fail_msg("%s: error '%s' does not name %s", c->name, err, want);
  assert_null(train.pixels);
  assert_null(train.y);
  assert_null(test.pixels);
  assert_int_equal(train.n, 0);
  set_free(&s);
}

static void test_broken_files(void **state) {
  static const broken_t cases[] = {
      {"cut-images", IMAGES_TRAIN, CUT, 5, 0},
      {"cut-images-gz", IMAGES_TRAIN, CUT, 1, 1},
      {"cut-labels", LABELS_TRAIN, CUT, 1, 0},
      {"cut-test-labels-gz", LABELS_TEST, CUT, 2, 1},
      {"cut-in-header", IMAGES_TRAIN, CUT, 16 + 84 - 6, 0},
      {"empty-images", IMAGES_TRAIN, CUT, 1000, 0},
      {"empty-labels-gz", LABELS_TRAIN, CUT, 1000, 1},
      {"lying-count", IMAGES_TRAIN, COUNT, TRAIN_N + 1, 0},
      {"lying-count-gz", IMAGES_TEST, COUNT, TEST_N + 3, 1},
      {"lying-huge", IMAGES_TRAIN, HUGE_DIMS, 0, 0},
      {"lying-huge-gz", IMAGES_TEST, HUGE_DIMS, 0, 1},
      {"zero-count", IMAGES_TRAIN, COUNT, 0, 0},
      {"fewer-labels", LABELS_TRAIN, COUNT, TRAIN_N - 1, 0},
      {"more-labels", LABELS_TEST, COUNT, TEST_N + 1, 1},
      {"extra-images", IMAGES_TRAIN, APPEND, 3, 0},
      {"extra-labels-gz", LABELS_TRAIN, APPEND, 1, 1},
      {"extra-test-images", IMAGES_TEST, APPEND, 1, 0},
      {"magic-labels-for-images", IMAGES_TRAIN, MAGIC, 0x00000801, 0},
      {"magic-images-for-labels", LABELS_TRAIN, MAGIC, 0x00000803, 0},
      {"magic-float", IMAGES_TRAIN, MAGIC, 0x00000d03, 1},
      {"magic-little-endian", LABELS_TEST, MAGIC, 0x01080000, 0},
      {"gz-stream-cut", IMAGES_TRAIN, GZ_CUT, 0, 1},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    broken_check(*state, &cases[i]);
}

/* Files that are each fine but do not belong together. */
static void mismatch_check(const fixture_t *fx, const char *name,
                           const idx_set_t *s) {
  dataset_t train, test;
  char err[1024] = "";

  write_set(fx->root, name, s, 0);
  assert_int_equal(dataset_load(fx->root, name, DATASET_NORM_STANDARDIZE,
                                &train, &test, err, sizeof err),
                   -EINVAL);
  if (!strstr(err, name))
    fail_msg("error '%s' does not name dataset %s", err, name);
  assert_null(train.pixels);
  assert_null(test.pixels);
}

static void test_splits_mismatch(void **state) {
  idx_set_t s;

  set_good(&s);
  free(s.f[IMAGES_TEST].p);
  s.f[IMAGES_TEST] = idx_images(TEST_N, HEIGHT + 1, WIDTH, 3);
  mismatch_check(*state, "other-shape", &s);
  set_free(&s);

  set_good(&s);
  s.f[LABELS_TEST].p[8 + 2] = CLASSES; /* a class training never has */
  mismatch_check(*state, "new-class", &s);
  set_free(&s);
}

/* Names and paths. */

static void test_names_refused(void **state) {
  static const char *const bad[] = {
      "",
      ".",
      "..",
      "../tiny",
      "tiny/../tiny",
      "/tmp",
      "a/b",
      ".hidden",
      "..tiny",
      "tiny/",
      "ti ny",
      "tiny\\x",
      "~root",
      "a-name-far-too-long-to-be-a-plain-dataset-name-0123456789-abcdefgh"};
  const fixture_t *fx = *state;
  dataset_files_t files;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[512] = "";
    int rc = dataset_files_find(fx->root, bad[i], &files, err, sizeof err);
    if (rc != -EINVAL)
      fail_msg("name '%s': got %d, not -EINVAL", bad[i], rc);
    assert_true(strlen(err) > 0);
    assert_int_equal(files.count, 0);
  }
}

static void test_unknown_name(void **state) {
  const fixture_t *fx = *state;
  dataset_files_t files;
  dataset_t train, test;
  char err[512] = "";

  assert_int_equal(
      dataset_files_find(fx->root, "no-such-set", &files, err, sizeof err),
      -ENOENT);
  assert_non_null(strstr(err, "no-such-set"));
  err[0] = '\0';
  assert_int_equal(dataset_load(fx->root, "no-such-set", DATASET_NORM_SCALE,
                                &train, &test, err, sizeof err),
                   -ENOENT);
  assert_non_null(strstr(err, "no-such-set"));
  assert_int_equal(dataset_files_find("/nonexistent-spk-root", "tiny", &files,
                                      err, sizeof err),
                   -ENOENT);
}

/* A file missing from an otherwise good dataset is named. */
static void test_missing_file(void **state) {
  const fixture_t *fx = *state;
  dataset_files_t files;
  idx_set_t s;
  char path[PATH_MAX], err[512] = "";

  set_good(&s);
  write_set(fx->root, "three-files", &s, 0);
  file_path(path, sizeof path, fx->root, "three-files", LABELS_TEST, 0);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(
      dataset_files_find(fx->root, "three-files", &files, err, sizeof err),
      -ENOENT);
  assert_non_null(strstr(err, file_names[LABELS_TEST]));
  set_free(&s);
}

/* Symbolic links: a dataset directory or a single file inside the root
 * that points outside it is refused; a link within the root is fine. */
static void test_symlinks(void **state) {
  const fixture_t *fx = *state;
  dataset_files_t files;
  idx_set_t s;
  char link[PATH_MAX], target[PATH_MAX], err[512] = "";

  set_good(&s);
  write_set(fx->outside, "elsewhere", &s, 0);
  write_set(fx->root, "inside", &s, 0);

  snprintf(target, sizeof target, "%s/elsewhere", fx->outside);
  snprintf(link, sizeof link, "%s/escape", fx->root);
  assert_int_equal(symlink(target, link), 0);
  assert_true(dataset_files_find(fx->root, "escape", &files, err, sizeof err) <
              0);
  assert_int_equal(files.count, 0);

  /* One file of an otherwise real directory leads outside. */
  write_set(fx->root, "one-escape", &s, 0);
  file_path(link, sizeof link, fx->root, "one-escape", IMAGES_TEST, 0);
  file_path(target, sizeof target, fx->outside, "elsewhere", IMAGES_TEST, 0);
  assert_int_equal(unlink(link), 0);
  assert_int_equal(symlink(target, link), 0);
  assert_true(
      dataset_files_find(fx->root, "one-escape", &files, err, sizeof err) < 0);

  snprintf(target, sizeof target, "%s/inside", fx->root);
  snprintf(link, sizeof link, "%s/alias", fx->root);
  assert_int_equal(symlink(target, link), 0);
  if (dataset_files_find(fx->root, "alias", &files, err, sizeof err) != 0)
    fail_msg("alias inside the root refused: %s", err);
  assert_int_equal(files.count, FILES);
  for (int i = 0; i < FILES; i++)
    assert_non_null(strstr(files.path[i], file_names[i]));
  set_free(&s);
}

/* Files changed after they were written, for damage that is simplest to
 * make on disk. */

static void file_cut(const char *path, off_t bytes) {
  struct stat st;

  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size - bytes), 0);
}

static void file_append(const char *path, size_t bytes) {
  FILE *f = fopen(path, "ab");

  assert_non_null(f);
  for (size_t i = 0; i < bytes; i++)
    assert_int_equal(fputc(0x5a, f), 0x5a);
  assert_int_equal(fclose(f), 0);
}

static void file_poke(const char *path, long offset, uint8_t value) {
  FILE *f = fopen(path, "r+b");

  assert_non_null(f);
  assert_int_equal(fseek(f, offset, SEEK_SET), 0);
  assert_int_equal(fputc(value, f), value);
  assert_int_equal(fclose(f), 0);
}

/* out = dir/name/file, which must fit. */
static void path_join(char *out, size_t len, const char *dir, const char *name,
                      const char *file) {
  int n = snprintf(out, len, "%s/%s/%s", dir, name, file);

  assert_true(n > 0 && (size_t)n < len);
}

static void dir_make(const char *dir, const char *name, const char *sub) {
  char path[PATH_MAX];

  assert_true((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) <
              sizeof path);
  assert_int_equal(mkdir(path, 0755), 0);
  if (sub) {
    path_join(path, sizeof path, dir, name, sub);
    assert_int_equal(mkdir(path, 0755), 0);
  }
}

/* Expects dataset_load to fail with code and a message holding both
 * fragments (either may be NULL); the splits stay empty. */
static void expect_load_error(const fixture_t *fx, const char *name, int code,
                              const char *frag1, const char *frag2) {
  dataset_t train, test;
  char err[1024] = "";
  int rc = dataset_load(fx->root, name, DATASET_NORM_STANDARDIZE, &train, &test,
                        err, sizeof err);

  if (rc != code)
    fail_msg("%s: dataset_load returned %d, not %d (%s)", name, rc, code, err);
  if ((frag1 && !strstr(err, frag1)) || (frag2 && !strstr(err, frag2)))
    fail_msg("%s: error '%s' lacks '%s' or '%s'", name, err, frag1 ? frag1 : "",
             frag2 ? frag2 : "");
  assert_null(train.pixels);
  assert_null(train.features);
  assert_null(test.pixels);
  assert_null(test.features);
  assert_null(train.feature_mean);
  assert_int_equal(train.n, 0);
  assert_int_equal(test.n, 0);
}

static void expect_probe(const fixture_t *fx, const char *name, int n_train,
                         int n_test) {
  int a = -1, b = -1;
  char err[512] = "";

  if (dataset_probe(fx->root, name, &a, &b, err, sizeof err) != 0)
    fail_msg("dataset_probe %s: %s", name, err);
  assert_int_equal(a, n_train);
  assert_int_equal(b, n_test);
}

/* CIFAR datasets. Sample s, counted over the training then the test
 * split, has the pixel bytes cifar_px(s, k): each channel has its own
 * level and spread, so their statistics differ. */

enum { CIFAR_PLANE = 32 * 32, CIFAR_DIM = 3 * CIFAR_PLANE };
enum { C10_TRAIN = 12, C10_TEST = 5, C100_TRAIN = 13, C100_TEST = 4 };

static const int c10_batches[5] = {3, 2, 1, 4, 2};

static uint8_t cifar_px(int s, int k) {
  static const int base[3] = {0, 70, 90}, spread[3] = {40, 100, 160};
  int c = k / CIFAR_PLANE;

  return (uint8_t)(base[c] + (s * 31 + k * 7) % spread[c]);
}

/* Label byte b of sample s: CIFAR-10 classes s % 10; CIFAR-100 coarse
 * labels s % 20 and fine labels that repeat every 12 samples, so that
 * test labels are classes training has too. */
static uint8_t cifar_label(int label_bytes, int s, int b) {
  if (label_bytes == 1)
    return (uint8_t)(s % 10);
  return (uint8_t)(b == 0 ? s % 20 : (s % 12) * 37 % 97);
}

/* What a CIFAR dataset's files hold, training samples first. */
typedef struct {
  int label_bytes;
  int n_train, n_test;
  uint8_t px[(C100_TRAIN + C100_TEST) * CIFAR_DIM];
  uint8_t y[C100_TRAIN + C100_TEST];
} cifar_set_t;

/* Writes the records of samples s0..s0+n-1 to dir/file. */
static void cifar_write(cifar_set_t *set, const char *dir, const char *file,
                        int s0, int n) {
  size_t rec = (size_t)set->label_bytes + CIFAR_DIM;
  blob_t b = {malloc(rec * (size_t)n), rec * (size_t)n};
  char path[PATH_MAX];

  assert_non_null(b.p);
  for (int i = 0; i < n; i++) {
    uint8_t *r = b.p + rec * (size_t)i;
    int s = s0 + i;
    for (int j = 0; j < set->label_bytes; j++)
      r[j] = cifar_label(set->label_bytes, s, j);
    for (int k = 0; k < CIFAR_DIM; k++)
      r[set->label_bytes + k] = set->px[(size_t)s * CIFAR_DIM + k] =
          cifar_px(s, k);
    set->y[s] = r[set->label_bytes - 1];
  }
  assert_true((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) <
              sizeof path);
  write_blob(path, &b, 0);
  free(b.p);
}

/* Writes a CIFAR-10 (label_bytes 1) or CIFAR-100 (2) dataset name under
 * root, in the subdirectory sub when not NULL. */
static void cifar_make(const fixture_t *fx, const char *name, const char *sub,
                       int label_bytes, cifar_set_t *set) {
  char dir[PATH_MAX];
  int s = 0;

  memset(set, 0, sizeof *set);
  set->label_bytes = label_bytes;
  dir_make(fx->root, name, sub);
  snprintf(dir, sizeof dir, "%s/%s%s%s", fx->root, name, sub ? "/" : "",
           sub ? sub : "");
  if (label_bytes == 1) {
    for (int i = 0; i < 5; i++) {
      char file[32];
      snprintf(file, sizeof file, "data_batch_%d.bin", i + 1);
      cifar_write(set, dir, file, s, c10_batches[i]);
      s += c10_batches[i];
    }
    cifar_write(set, dir, "test_batch.bin", s, C10_TEST);
    set->n_train = C10_TRAIN;
    set->n_test = C10_TEST;
  } else {
    cifar_write(set, dir, "train.bin", 0, C100_TRAIN);
    cifar_write(set, dir, "test.bin", C100_TRAIN, C100_TEST);
    set->n_train = C100_TRAIN;
    set->n_test = C100_TEST;
  }
}

static void cifar_check(const fixture_t *fx, const char *name,
                        const cifar_set_t *set, dataset_norm_t norm) {
  dataset_t train, test;
  double mean[3], sd[3];
  int max = 0;
  char err[512] = "";
  image_want_t w = {set->px, set->y, set->n_train, 3, 32, 32, 0};

  for (int i = 0; i < set->n_train; i++)
    max = set->y[i] > max ? set->y[i] : max;
  w.classes = max + 1;
  if (dataset_load(fx->root, name, norm, &train, &test, err, sizeof err))
    fail_msg("dataset_load %s: %s", name, err);
  expect_pixel_stats(set->px, set->n_train, 3, CIFAR_PLANE, mean, sd);
  assert_true(fabs(mean[0] - mean[2]) > 0.1); /* the channels differ */
  check_images(&train, &w, norm, mean, sd);
  w.px += (size_t)set->n_train * CIFAR_DIM;
  w.y += set->n_train;
  w.n = set->n_test;
  check_images(&test, &w, norm, mean, sd);
  dataset_deinit(&train);
  dataset_deinit(&test);
  expect_probe(fx, name, set->n_train, set->n_test);
}

static void test_cifar10(void **state) {
  cifar_set_t *set = malloc(sizeof *set);

  assert_non_null(set);
  cifar_make(*state, "c10", NULL, 1, set);
  cifar_check(*state, "c10", set, DATASET_NORM_STANDARDIZE);
  assert_int_equal(set->y[C10_TRAIN - 1], 1); /* sample 11 has class 1 */
  cifar_make(*state, "c10-sub", "cifar-10-batches-bin", 1, set);
  cifar_check(*state, "c10-sub", set, DATASET_NORM_SCALE);
  free(set);
}

/* CIFAR-100 keeps the fine label, the second byte of each record. */
static void test_cifar100(void **state) {
  cifar_set_t *set = malloc(sizeof *set);

  assert_non_null(set);
  cifar_make(*state, "c100", NULL, 2, set);
  assert_int_equal(set->y[3], 3 * 37 % 97);
  cifar_check(*state, "c100", set, DATASET_NORM_STANDARDIZE);
  cifar_make(*state, "c100-sub", "cifar-100-binary", 2, set);
  cifar_check(*state, "c100-sub", set, DATASET_NORM_SCALE);
  free(set);
}

/* Broken CIFAR files: a record cut short or with bytes added, a label that
 * is not a class of the format, a missing or empty file. */
typedef struct {
  const char *name;
  int label_bytes;
  const char *file;
  int damage; /* 0 cut, 1 append, 2 poke, 3 remove, 4 empty */
  long arg;   /* bytes, or the offset to poke */
  uint8_t value;
  int code;
} cifar_broken_t;

static void cifar_broken_check(const fixture_t *fx, const cifar_broken_t *c,
                               cifar_set_t *set) {
  char path[PATH_MAX], real[PATH_MAX];
  int a, b;

  cifar_make(fx, c->name, NULL, c->label_bytes, set);
  path_join(path, sizeof path, fx->root, c->name, c->file);
  path_join(real, sizeof real, fx->real, c->name, c->file);
  if (c->damage == 0)
    file_cut(path, c->arg);
  else if (c->damage == 1)
    file_append(path, (size_t)c->arg);
  else if (c->damage == 2)
    file_poke(path, c->arg, c->value);
  else if (c->damage == 3)
    assert_int_equal(unlink(path), 0);
  else
    assert_int_equal(truncate(path, 0), 0);
  expect_load_error(fx, c->name, c->code, c->damage == 3 ? c->file : real,
                    NULL);
  if (c->damage != 2) {
    char err[512] = "";
    assert_int_equal(dataset_probe(fx->root, c->name, &a, &b, err, sizeof err),
                     c->code);
  }
}

static void test_cifar_broken(void **state) {
  static const cifar_broken_t cases[] = {
      {"c10-cut", 1, "data_batch_3.bin", 0, 1, 0, -EINVAL},
      {"c10-cut-label", 1, "test_batch.bin", 0, CIFAR_DIM, 0, -EINVAL},
      {"c10-extra", 1, "data_batch_5.bin", 1, 7, 0, -EINVAL},
      {"c10-class", 1, "data_batch_2.bin", 2, CIFAR_DIM + 1, 10, -EINVAL},
      {"c10-missing", 1, "data_batch_4.bin", 3, 0, 0, -ENOENT},
      {"c10-empty", 1, "test_batch.bin", 4, 0, 0, -EINVAL},
      {"c100-cut", 2, "train.bin", 0, 2 + CIFAR_DIM + 5, 0, -EINVAL},
      {"c100-fine", 2, "test.bin", 2, 2 * (2 + CIFAR_DIM) + 1, 100, -EINVAL},
      {"c100-coarse", 2, "train.bin", 2, 0, 20, -EINVAL},
      {"c100-missing", 2, "test.bin", 3, 0, 0, -ENOENT},
      /* Five CIFAR-100 records are five CIFAR-10 records and five bytes. */
      {"c10-longer-records", 1, "test_batch.bin", 1, C10_TEST, 0, -EINVAL},
  };
  cifar_set_t *set = malloc(sizeof *set);

  assert_non_null(set);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cifar_broken_check(*state, &cases[i], set);
  free(set);
}

/* CSV datasets: four feature columns and a label. Sample s (training
 * first) has features csv_value(s, k), exact in binary, and class s % 3. */

enum { CSV_TRAIN = 8, CSV_TEST = 5, CSV_FEATURES = 4, CSV_CLASSES = 3 };

static float csv_value(int s, int k) {
  return (float)((s * 5 + k * 3) % 17) * 0.5f - 2.0f + (float)k * 100.0f;
}

/* How a CSV file is written. */
typedef struct {
  int header, crlf, final_newline, blank_tail, bom;
} csv_style_t;

/* The text of samples s0..s0+n-1 in style st; the caller frees it. */
static char *csv_text(int s0, int n, const csv_style_t *st) {
  size_t cap = 4096, len = 0;
  char *t = malloc(cap);
  const char *eol = st->crlf ? "\r\n" : "\n";

  assert_non_null(t);
  len +=
      (size_t)snprintf(t + len, cap - len, "%s", st->bom ? "\xef\xbb\xbf" : "");
  if (st->header)
    len +=
        (size_t)snprintf(t + len, cap - len, "f0,f1, f2 ,\"f3\",label%s", eol);
  for (int i = 0; i < n; i++) {
    int s = s0 + i;
    for (int k = 0; k < CSV_FEATURES; k++)
      len += (size_t)snprintf(t + len, cap - len, "%g,", csv_value(s, k));
    len += (size_t)snprintf(t + len, cap - len, "%d%s", s % CSV_CLASSES,
                            i < n - 1 || st->final_newline ? eol : "");
  }
  for (int i = 0; i < st->blank_tail; i++)
    len += (size_t)snprintf(t + len, cap - len, "%s%s", i ? " " : "", eol);
  assert_true(len < cap);
  return t;
}

static void text_write(const char *dir, const char *name, const char *file,
                       const char *text, size_t len) {
  char path[PATH_MAX];
  blob_t b = {(uint8_t *)text, len};

  path_join(path, sizeof path, dir, name, file);
  write_blob(path, &b, 0);
}

static void csv_make(const fixture_t *fx, const char *name,
                     const csv_style_t *st) {
  char *train = csv_text(0, CSV_TRAIN, st);
  char *test = csv_text(CSV_TRAIN, CSV_TEST, st);

  dir_make(fx->root, name, NULL);
  text_write(fx->root, name, "train.csv", train, strlen(train));
  text_write(fx->root, name, "test.csv", test, strlen(test));
  free(train);
  free(test);
}

/* Checks one split of samples s0..s0+n-1: values, labels, statistics
 * mean and sd (per column, computed by the caller) and gathering. */
static void csv_split_check(const dataset_t *ds, int s0, int n,
                            dataset_norm_t norm, const double *mean,
                            const double *sd) {
  int32_t *rows = scrambled_rows(n, n + 3);
  float out[(CSV_TEST + CSV_TRAIN + 3) * CSV_FEATURES];

  assert_int_equal(ds->n, n);
  assert_int_equal(ds->dim, CSV_FEATURES);
  assert_int_equal(ds->channels, 1);
  assert_int_equal(ds->height, 1);
  assert_int_equal(ds->width, CSV_FEATURES);
  assert_int_equal(ds->classes, CSV_CLASSES);
  assert_null(ds->pixels);
  assert_non_null(ds->features);
  for (int i = 0; i < n; i++) {
    assert_int_equal(ds->y[i], (s0 + i) % CSV_CLASSES);
    for (int k = 0; k < CSV_FEATURES; k++)
      assert_true(ds->features[i * CSV_FEATURES + k] == csv_value(s0 + i, k));
  }
  for (int k = 0; k < CSV_FEATURES; k++) {
    check_close(ds->feature_mean[k], mean[k], 1e-4, "column mean", (size_t)k);
    check_close(ds->feature_sd[k], sd[k], 2e-6, "column sd", (size_t)k);
  }
  dataset_gather(ds, rows, n + 3, out);
  for (int i = 0; i < n + 3; i++)
    for (int k = 0; k < CSV_FEATURES; k++) {
      double v = csv_value(s0 + rows[i], k);
      double want = norm == DATASET_NORM_SCALE ? v : (v - mean[k]) / sd[k];
      check_close(out[i * CSV_FEATURES + k], want, 1e-4, "csv gathered",
                  (size_t)(i * CSV_FEATURES + k));
    }
  free(rows);
}

static void csv_check(const fixture_t *fx, const char *name,
                      dataset_norm_t norm) {
  dataset_t train, test;
  double mean[CSV_FEATURES] = {0}, sd[CSV_FEATURES] = {0};
  char err[512] = "";

  for (int k = 0; k < CSV_FEATURES; k++) {
    for (int s = 0; s < CSV_TRAIN; s++)
      mean[k] += csv_value(s, k) / CSV_TRAIN;
    for (int s = 0; s < CSV_TRAIN; s++)
      sd[k] += (csv_value(s, k) - mean[k]) * (csv_value(s, k) - mean[k]);
    sd[k] = sqrt(sd[k] / CSV_TRAIN);
  }
  if (dataset_load(fx->root, name, norm, &train, &test, err, sizeof err))
    fail_msg("dataset_load %s: %s", name, err);
  assert_int_equal(train.norm, norm);
  assert_int_equal(test.norm, norm);
  csv_split_check(&train, 0, CSV_TRAIN, norm, mean, sd);
  csv_split_check(&test, CSV_TRAIN, CSV_TEST, norm, mean, sd);
  dataset_deinit(&train);
  dataset_deinit(&test);
  expect_probe(fx, name, CSV_TRAIN, CSV_TEST);
}

/* Every way of writing the same data loads the same. */
static void test_csv_styles(void **state) {
  static const csv_style_t styles[] = {
      {0, 0, 1, 0, 0}, /* plain LF lines */
      {1, 1, 0, 0, 0}, /* header, CRLF, no final newline */
      {1, 0, 1, 3, 0}, /* blank trailing lines, one of spaces */
      {0, 1, 1, 2, 0}, /* CRLF blank trailing lines */
      {0, 0, 0, 0, 1}, /* a byte-order mark before data */
      {1, 1, 1, 1, 1}, /* all at once */
  };

  for (size_t i = 0; i < sizeof styles / sizeof styles[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "csv-style-%zu", i);
    csv_make(*state, name, &styles[i]);
    csv_check(*state, name,
              i % 2 ? DATASET_NORM_SCALE : DATASET_NORM_STANDARDIZE);
  }
}

/* A constant column is centred but not divided by zero. */
static void test_csv_constant_column(void **state) {
  const fixture_t *fx = *state;
  static const char text[] = "1,5,0\n2,5,1\n3,5,1\n";
  dataset_t train, test;
  float out[6];
  int32_t rows[2] = {2, 0};
  char err[512] = "";

  dir_make(fx->root, "csv-constant", NULL);
  text_write(fx->root, "csv-constant", "train.csv", text, strlen(text));
  text_write(fx->root, "csv-constant", "test.csv", text, strlen(text));
  if (dataset_load(fx->root, "csv-constant", DATASET_NORM_STANDARDIZE, &train,
                   &test, err, sizeof err))
    fail_msg("dataset_load: %s", err);
  assert_int_equal(train.classes, 2);
  dataset_gather(&test, rows, 2, out);
  check_close(out[0], 1.0 / sqrt(2.0 / 3.0), 1e-6, "column 0", 0);
  check_close(out[1], 0.0, 0.0, "constant column", 1);
  check_close(out[2], -1.0 / sqrt(2.0 / 3.0), 1e-6, "column 0", 2);
  check_close(out[3], 0.0, 0.0, "constant column", 3);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

/* Broken CSV files: each case replaces train.csv (or test.csv) of a good
 * dataset; loading fails with -EINVAL and a message naming the file and
 * holding `where` (the line and column). */
typedef struct {
  const char *name;
  const char *text;
  size_t len; /* 0: strlen(text) */
  int test;   /* replaces test.csv rather than train.csv */
  const char *where;
} csv_broken_t;

static void csv_broken_check(const fixture_t *fx, const csv_broken_t *c) {
  static const csv_style_t plain = {0, 0, 1, 0, 0};
  const char *file = c->test ? "test.csv" : "train.csv";
  char path[PATH_MAX];

  csv_make(fx, c->name, &plain);
  text_write(fx->root, c->name, file, c->text,
             c->len ? c->len : strlen(c->text));
  path_join(path, sizeof path, fx->real, c->name, file);
  expect_load_error(fx, c->name, -EINVAL, c->where ? path : c->name, c->where);
}

static void test_csv_broken(void **state) {
  static const csv_broken_t cases[] = {
      {"csv-word", "1,2,3,4,0\n5,6,7,8,1\n1,abc,3,4,2\n", 0, 0,
       "line 3, column 2"},
      {"csv-word-test", "1,2,3,4,0\n1,2,3,4x,1\n", 0, 1, "line 2, column 4"},
      {"csv-columns", "1,2,3,4,0\n1,2,3,4,1\n1,2,3,4,2\n1,2,3,0\n", 0, 0,
       "line 4 has 4 columns"},
      {"csv-columns-more", "1,2,3,4,0\n1,2,3,4,5,1\n", 0, 0,
       "line 2 has 6 columns"},
      {"csv-header-columns", "a,b,c,label\n1,2,3,4,0\n", 0, 0,
       "line 2 has 5 columns, line 1 has 4"},
      {"csv-negative", "1,2,3,4,-1\n", 0, 0, "line 1, column 5"},
      {"csv-fraction", "1,2,3,4,0\n1,2,3,4,1.5\n", 0, 0, "line 2, column 5"},
      {"csv-big-label", "1,2,3,4,0\n1,2,3,4,256\n", 0, 0, "line 2, column 5"},
      {"csv-word-label", "1,2,3,4,0\n1,2,3,4,cat\n", 0, 0, "line 2, column 5"},
      {"csv-nan", "1,2,3,4,0\n1,nan,3,4,1\n", 0, 0, "line 2, column 2"},
      {"csv-inf", "1,2,3,4,0\n1,2,-inf,4,1\n", 0, 0, "line 2, column 3"},
      {"csv-huge", "1,2,3,4,0\n1,2,3,1e39,1\n", 0, 0, "line 2, column 4"},
      {"csv-empty-cell", "1,2,3,4,0\n1,,3,4,1\n", 0, 0, "line 2, column 2"},
      {"csv-crlf-word", "a,b,c,d,y\r\n1,2,3,4,0\r\n1,2,3 5,4,1\r\n", 0, 0,
       "line 3, column 3"},
      {"csv-nul", "1,2,3,4,0\n1,2\0,3,4,1\n", 21, 0, "line 2, column 2"},
      {"csv-empty", "", 0, 0, "no data lines"},
      {"csv-blank-only", "\n\r\n  \n", 0, 1, "no data lines"},
      {"csv-header-only", "a,b,c,d,label\r\n", 0, 0, "no data lines"},
      {"csv-blank-middle", "1,2,3,4,0\n\n1,2,3,4,1\n", 0, 0,
       "line 2 is blank but line 3"},
      {"csv-blank-first", "\n1,2,3,4,0\n", 0, 1, "line 1 is blank"},
      {"csv-one-column", "0\n1\n", 0, 0, "line 1 has 1 column"},
      {"csv-other-width", "1,2,3,0\n", 0, 1, NULL},
      {"csv-new-class", "1,2,3,4,0\n1,2,3,4,5\n", 0, 1, NULL},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    csv_broken_check(*state, &cases[i]);
}

/* A message quotes a bad cell readably, however long or binary. */
static void test_csv_message_bounded(void **state) {
  const fixture_t *fx = *state;
  char text[400], err[1024] = "";
  dataset_t train, test;
  int n = snprintf(text, sizeof text, "1,2,3,4,0\n1,2,3,");

  for (int i = 0; i < 200; i++)
    text[n++] = (char)(i % 2 ? 0xc3 : 'x');
  memcpy(text + n, ",1\n", 4);
  dir_make(fx->root, "csv-long-cell", NULL);
  text_write(fx->root, "csv-long-cell", "train.csv", text, strlen(text));
  text_write(fx->root, "csv-long-cell", "test.csv", text, strlen(text));
  assert_int_equal(dataset_load(fx->root, "csv-long-cell", DATASET_NORM_SCALE,
                                &train, &test, err, sizeof err),
                   -EINVAL);
  assert_non_null(strstr(err, "line 2, column 4: 'x?x?"));
  assert_non_null(strstr(err, "...' is not a number"));
  for (const char *p = err; *p; p++)
    assert_true(*p >= 0x20 && *p < 0x7f);
}

/* Fashion-MNIST as Debian installs it, when it is there. */
static void test_fashion_mnist(void **state) {
  static const char root[] = "/usr/share/datasets";
  dataset_t train, test;
  double mean[1], sd[1];
  float row[784];
  char err[512] = "";
  struct stat st;

  (void)state;
  if (stat("/usr/share/datasets/fashion-mnist", &st) != 0) {
    skip();
    return;
  }
  if (dataset_load(root, "fashion-mnist", DATASET_NORM_STANDARDIZE, &train,
                   &test, err, sizeof err))
    fail_msg("fashion-mnist: %s", err);
  assert_int_equal(train.n, 60000);
  assert_int_equal(test.n, 10000);
  assert_int_equal(train.dim, 784);
  assert_int_equal(train.classes, 10);
  assert_int_equal(test.classes, 10);
  expect_pixel_stats(train.pixels, train.n, 1, 784, mean, sd);
  check_close(train.mean[0], mean[0], 1e-6, "mean", 0);
  check_close(train.sd[0], sd[0], 1e-6, "sd", 0);
  check_close(test.mean[0], mean[0], 1e-6, "test mean", 0);
  dataset_gather_range(&test, test.n - 1, 1, row);
  for (int k = 0; k < 784; k++)
    check_close(
        row[k],
        (test.pixels[(size_t)(test.n - 1) * 784 + k] / 255.0 - mean[0]) / sd[0],
        1e-5, "last test row", (size_t)k);
  dataset_deinit(&train);
  dataset_deinit(&test);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_raw_and_gzip),
      cmocka_unit_test(test_load_scaled),
      cmocka_unit_test(test_idx_pair_scaled),
      cmocka_unit_test(test_probe),
      cmocka_unit_test(test_broken_files),
      cmocka_unit_test(test_splits_mismatch),
      cmocka_unit_test(test_names_refused),
      cmocka_unit_test(test_unknown_name),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_symlinks),
      cmocka_unit_test(test_cifar10),
      cmocka_unit_test(test_cifar100),
      cmocka_unit_test(test_cifar_broken),
      cmocka_unit_test(test_csv_styles),
      cmocka_unit_test(test_csv_constant_column),
      cmocka_unit_test(test_csv_broken),
      cmocka_unit_test(test_csv_message_bounded),
      cmocka_unit_test(test_fashion_mnist),
  };

  return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
