/* SPDX-License-Identifier: MIT */
/* Unit tests of reading one IDX sample at a time and describing an IDX
 * dataset: small datasets written here (raw and gzipped) read at every
 * index of both splits, indices outside a split, short and inconsistent
 * files, and Fashion-MNIST compared with what dataset_load reads. */
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

#include "../../engine/dataset.h"

enum { TRAIN_N = 9, TEST_N = 4, HEIGHT = 3, WIDTH = 5 };
enum { FILES = 4 };

static const char *const file_names[FILES] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

typedef struct {
  char root[64];
} fixture_t;

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The value of pixel k of sample i of a split (salt tells them apart). */
static uint8_t pixel(int i, int k, int salt) {
  return (uint8_t)((i * 37 + k * 11 + salt) % 256);
}

static int label(int i, int salt) {
  return (i * 3 + salt) % 7;
}

/* Writes len bytes to path, gzipped when gz. */
static void file_put(const char *path, const uint8_t *p, size_t len, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, p, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
    return;
  }
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Writes an image file of n samples (announcing `announce`) and a label
 * file of `labels` labels for split salt into dir. */
static void split_put(const char *dir, int images_file, int n, int announce,
                      int labels, int salt, int gz) {
  size_t dim = (size_t)HEIGHT * WIDTH, ilen = 16 + (size_t)n * dim;
  uint8_t *img = malloc(ilen), *lab = malloc(8 + (size_t)labels);
  char path[256];

  assert_non_null(img);
  assert_non_null(lab);
  put_be32(img, 0x803);
  put_be32(img + 4, (uint32_t)announce);
  put_be32(img + 8, HEIGHT);
  put_be32(img + 12, WIDTH);
  for (int i = 0; i < n; i++)
    for (size_t k = 0; k < dim; k++)
      img[16 + i * dim + k] = pixel(i, (int)k, salt);
  put_be32(lab, 0x801);
  put_be32(lab + 4, (uint32_t)labels);
  for (int i = 0; i < labels; i++)
    lab[8 + i] = (uint8_t)label(i, salt);
  snprintf(path, sizeof path, "%s/%s%s", dir, file_names[images_file],
           gz ? ".gz" : "");
  file_put(path, img, ilen, gz);
  snprintf(path, sizeof path, "%s/%s%s", dir, file_names[images_file + 1],
           gz ? ".gz" : "");
  file_put(path, lab, 8 + (size_t)labels, gz);
  free(img);
  free(lab);
}

/* Makes root/name holding a good dataset, raw or gzipped. */
static void dataset_put(const fixture_t *fx, const char *name, int gz) {
  char dir[128];

  snprintf(dir, sizeof dir, "%s/%s", fx->root, name);
  assert_int_equal(mkdir(dir, 0755), 0);
  split_put(dir, 0, TRAIN_N, TRAIN_N, TRAIN_N, 1, gz);
  split_put(dir, 2, TEST_N, TEST_N, TEST_N, 2, gz);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof *fx);

  assert_non_null(fx);
  snprintf(fx->root, sizeof fx->root, "/tmp/spk-sample-XXXXXX");
  assert_non_null(mkdtemp(fx->root));
  dataset_put(fx, "raw", 0);
  dataset_put(fx, "gz", 1);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture_t *fx = *state;

  nftw(fx->root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

static void files_of(const fixture_t *fx, const char *name,
                     dataset_files_t *files) {
  char err[512];

  assert_int_equal(dataset_files_find(fx->root, name, files, err, sizeof err),
                   0);
}

/* Checks sample i of a split (salt) as read. */
static void sample_check(const dataset_sample_t *s, int i, int salt) {
  assert_int_equal(s->label, label(i, salt));
  assert_int_equal(s->channels, 1);
  assert_int_equal(s->height, HEIGHT);
  assert_int_equal(s->width, WIDTH);
  for (int k = 0; k < HEIGHT * WIDTH; k++)
    assert_int_equal(s->pixels[k], pixel(i, k, salt));
}

static void test_every_sample(void **state) {
  const char *names[2] = {"raw", "gz"};
  dataset_files_t files;
  dataset_sample_t s;
  char err[512];

  for (int d = 0; d < 2; d++) {
    files_of(*state, names[d], &files);
    for (int test = 0; test < 2; test++)
      for (int i = 0; i < (test ? TEST_N : TRAIN_N); i++) {
        assert_int_equal(
            dataset_idx_sample_read(&files, test, i, &s, err, sizeof err), 0);
        sample_check(&s, i, test ? 2 : 1);
        dataset_sample_deinit(&s);
      }
  }
}

static void test_index_outside(void **state) {
  const int bad[3] = {TRAIN_N, -1, 1 << 30};
  dataset_files_t files;
  dataset_sample_t s;
  char err[512];

  files_of(*state, "gz", &files);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(
        dataset_idx_sample_read(&files, 0, bad[i], &s, err, sizeof err),
        -ERANGE);
    assert_null(s.pixels);
    assert_non_null(strstr(err, "the training split holds 9 (0 to 8)"));
  }
  assert_int_equal(
      dataset_idx_sample_read(&files, 1, TEST_N, &s, err, sizeof err), -ERANGE);
  assert_non_null(strstr(err, "the test split holds 4"));
}

/* Files whose headers lie: more images announced than held, and fewer
 * labels than images. */
static void test_short_files(void **state) {
  fixture_t *fx = *state;
  dataset_files_t files;
  dataset_sample_t s;
  char dir[128], err[512];

  for (int gz = 0; gz < 2; gz++) {
    snprintf(dir, sizeof dir, "%s/short%d", fx->root, gz);
    assert_int_equal(mkdir(dir, 0755), 0);
    split_put(dir, 0, TRAIN_N - 2, TRAIN_N, TRAIN_N - 2, 1, gz);
    split_put(dir, 2, TEST_N, TEST_N, TEST_N - 1, 2, gz);
    files_of(fx, gz ? "short1" : "short0", &files);
    assert_int_equal(
        dataset_idx_sample_read(&files, 0, TRAIN_N - 3, &s, err, sizeof err),
        -EINVAL);
    assert_non_null(strstr(err, "labels for"));
    assert_int_equal(
        dataset_idx_sample_read(&files, 0, TRAIN_N - 1, &s, err, sizeof err),
        -EINVAL);
    assert_non_null(strstr(err, "train-images-idx3-ubyte"));
    assert_null(s.pixels);
    assert_int_equal(dataset_idx_sample_read(&files, 1, 0, &s, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "3 labels for 4 images"));
  }
}

static void test_describe(void **state) {
  fixture_t *fx = *state;
  dataset_files_t files;
  dataset_shape_t shape;
  char dir[128], err[512];
  int classes = 0;

  for (int i = 0; i < TRAIN_N; i++)
    classes = label(i, 1) + 1 > classes ? label(i, 1) + 1 : classes;
  files_of(fx, "gz", &files);
  assert_int_equal(dataset_idx_describe(&files, &shape, err, sizeof err), 0);
  assert_int_equal(shape.n_train, TRAIN_N);
  assert_int_equal(shape.n_test, TEST_N);
  assert_int_equal(shape.channels, 1);
  assert_int_equal(shape.height, HEIGHT);
  assert_int_equal(shape.width, WIDTH);
  assert_int_equal(shape.classes, classes);

  /* Labels that do not match the images. */
  snprintf(dir, sizeof dir, "%s/mismatch", fx->root);
  assert_int_equal(mkdir(dir, 0755), 0);
  split_put(dir, 0, TRAIN_N, TRAIN_N, TRAIN_N + 1, 1, 0);
  split_put(dir, 2, TEST_N, TEST_N, TEST_N, 2, 0);
  files_of(fx, "mismatch", &files);
  assert_int_equal(dataset_idx_describe(&files, &shape, err, sizeof err),
                   -EINVAL);
  assert_non_null(strstr(err, "10 labels for 9 images"));

  files.format = DATASET_FORMAT_CSV;
  assert_int_equal(dataset_idx_describe(&files, &shape, err, sizeof err),
                   -EINVAL);
}

/* The real files, where present: single reads agree with a full load. */
static void test_fashion_mnist(void **state) {
  const char *root = "/usr/share/datasets";
  const int at[4][2] = {{0, 0}, {0, 31337}, {0, 59999}, {1, 9999}};
  dataset_t split[2];
  dataset_files_t files;
  dataset_sample_t s;
  char err[512];

  (void)state;
  if (dataset_files_find(root, "fashion-mnist", &files, err, sizeof err)) {
    skip();
    return;
  }
  assert_int_equal(dataset_load(root, "fashion-mnist", DATASET_NORM_SCALE,
                                &split[0], &split[1], err, sizeof err),
                   0);
  for (int i = 0; i < 4; i++) {
    const dataset_t *ds = &split[at[i][0]];
    int row = at[i][1];
    assert_int_equal(
        dataset_idx_sample_read(&files, at[i][0], row, &s, err, sizeof err), 0);
    assert_int_equal(s.label, ds->y[row]);
    assert_int_equal(s.height * s.width, ds->dim);
    assert_memory_equal(s.pixels, ds->pixels + (size_t)row * ds->dim,
                        (size_t)ds->dim);
    dataset_sample_deinit(&s);
  }
  dataset_deinit(&split[0]);
  dataset_deinit(&split[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_sample, setup, teardown),
      cmocka_unit_test_setup_teardown(test_index_outside, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
      cmocka_unit_test(test_fashion_mnist),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
