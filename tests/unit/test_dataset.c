/* SPDX-License-Identifier: MIT */
/* Unit tests of the IDX dataset loader: small files written here, raw and
 * gzipped, into a temporary data root; broken files of every kind, which
 * must fail with -EINVAL and name the file; and names that try to leave
 * the data root. The engine's numeric code is tested in test_engine.c. */
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

/* Loading the good dataset. */

static void check_close(double got, double want, double tol, const char *what,
                        size_t i) {
  if (!(fabs(got - want) <= tol))
    fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, got, want);
}

/* Pixels are scaled to [0, 1], then shifted and scaled by the mean and
 * standard deviation of all training pixels; both splits use the
 * training statistics. */
static void check_split(const dataset_t *ds, const blob_t *images,
                        const blob_t *labels, int n, double mean, double sd) {
  assert_int_equal(ds->n, n);
  assert_int_equal(ds->dim, HEIGHT * WIDTH);
  assert_int_equal(ds->height, HEIGHT);
  assert_int_equal(ds->width, WIDTH);
  assert_int_equal(ds->channels, 1);
  assert_int_equal(ds->classes, CLASSES);
  assert_memory_equal(ds->y, labels->p + 8, (size_t)n);
  for (size_t i = 0; i < (size_t)n * ds->dim; i++)
    check_close(ds->x[i], (images->p[16 + i] / 255.0 - mean) / sd, 1e-5, "x",
                i);
}

static void check_loaded(const dataset_t *train, const dataset_t *test,
                         const idx_set_t *s) {
  size_t total = (size_t)TRAIN_N * HEIGHT * WIDTH;
  double sum = 0.0, sq = 0.0, mean, sd, xs = 0.0, xq = 0.0;

  for (size_t i = 0; i < total; i++) {
    double v = s->f[IMAGES_TRAIN].p[16 + i] / 255.0;
    sum += v;
    sq += v * v;
  }
  mean = sum / total;
  sd = sqrt(sq / total - mean * mean);
  check_split(train, &s->f[IMAGES_TRAIN], &s->f[LABELS_TRAIN], TRAIN_N, mean,
              sd);
  check_split(test, &s->f[IMAGES_TEST], &s->f[LABELS_TEST], TEST_N, mean, sd);

  for (size_t i = 0; i < total; i++) {
    xs += train->x[i];
    xq += (double)train->x[i] * train->x[i];
  }
  check_close(xs / total, 0.0, 1e-6, "training mean", 0);
  check_close(xq / total, 1.0, 1e-5, "training variance", 0);
}

static void load_good(const fixture_t *fx, const char *name, int gz,
                      dataset_t *train, dataset_t *test) {
  idx_set_t s;
  char err[512] = "";

  set_good(&s);
  write_set(fx->root, name, &s, gz);
  if (dataset_load(fx->root, name, train, test, err, sizeof err) != 0)
    fail_msg("dataset_load %s: %s", name, err);
  check_loaded(train, test, &s);
  set_free(&s);
}

static void test_load_raw_and_gzip(void **state) {
  const fixture_t *fx = *state;
  dataset_t train, test, gtrain, gtest;
  size_t bytes = sizeof(float) * TRAIN_N * HEIGHT * WIDTH;

  load_good(fx, "tiny", 0, &train, &test);
  load_good(fx, "tinygz", 1, &gtrain, &gtest);
  assert_memory_equal(train.x, gtrain.x, bytes);
  assert_memory_equal(test.x, gtest.x, sizeof(float) * TEST_N * HEIGHT * WIDTH);
  dataset_deinit(&train);
  dataset_deinit(&test);
  dataset_deinit(&gtrain);
  dataset_deinit(&gtest);
  assert_null(train.x);
  dataset_deinit(&train);
}

/* One IDX pair read directly: pixels scaled to [0, 1], no standardising. */
static void test_idx_pair_scaled(void **state) {
  const fixture_t *fx = *state;
  idx_set_t s;
  dataset_t ds;
  char images[PATH_MAX], labels[PATH_MAX], err[512] = "";

  set_good(&s);
  write_set(fx->root, "pair", &s, 1);
  file_path(images, sizeof images, fx->root, "pair", IMAGES_TRAIN, 1);
  file_path(labels, sizeof labels, fx->root, "pair", LABELS_TRAIN, 1);
  if (dataset_idx_load(images, labels, &ds, err, sizeof err) != 0)
    fail_msg("dataset_idx_load: %s", err);
  assert_int_equal(ds.n, TRAIN_N);
  assert_int_equal(ds.classes, CLASSES);
  for (size_t i = 0; i < (size_t)TRAIN_N * HEIGHT * WIDTH; i++)
    check_close(ds.x[i], s.f[IMAGES_TRAIN].p[16 + i] / 255.0, 1e-7, "x", i);
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
  if (dataset_probe(fx->root, "probed", &n_train, &n_test, err,
                    sizeof err) != 0)
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

  rc = dataset_load(fx->root, c->name, &train, &test, err, sizeof err);
  if (rc != -EINVAL)
    fail_msg("%s: dataset_load returned %d, not -EINVAL (%s)", c->name, rc,
             err);
  if (!strstr(err, want))
    fail_msg("%s: error '%s' does not name %s", c->name, err, want);
  assert_null(train.x);
  assert_null(train.y);
  assert_null(test.x);
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
  assert_int_equal(dataset_load(fx->root, name, &train, &test, err, sizeof err),
                   -EINVAL);
  if (!strstr(err, name))
    fail_msg("error '%s' does not name dataset %s", err, name);
  assert_null(train.x);
  assert_null(test.x);
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
  assert_int_equal(
      dataset_load(fx->root, "no-such-set", &train, &test, err, sizeof err),
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_raw_and_gzip),
      cmocka_unit_test(test_idx_pair_scaled),
      cmocka_unit_test(test_probe),
      cmocka_unit_test(test_broken_files),
      cmocka_unit_test(test_splits_mismatch),
      cmocka_unit_test(test_names_refused),
      cmocka_unit_test(test_unknown_name),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_symlinks),
  };

  return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
