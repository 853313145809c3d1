/* SPDX-License-Identifier: MIT */
/* Datasets found by name under a data root: which files make a dataset
 * and in what format, loading both splits with the training statistics,
 * and gathering normalised rows into batches. Reading each file format is
 * left to dataset_idx.c, dataset_cifar.c and dataset_csv.c. */
#include "dataset.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_io.h"

/* A file format: the files that make it, where they may lie, how to read
 * them. The first train_files names hold the training split. */
typedef struct {
  dataset_format_t format;
  const char *subdir; /* the files may also lie in this subdirectory */
  int gz;             /* name.gz may stand for name */
  int train_files;
  int count;
  const char *names[DATASET_MAX_FILES];
  dataset_read_fn read;
  dataset_count_fn count_samples;
} format_t;

static const format_t formats[] = {
    {.format = DATASET_FORMAT_IDX,
     .gz = 1,
     .train_files = 2,
     .count = 4,
     .names = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
     .read = dataset_idx_read,
     .count_samples = dataset_idx_count},
    {.format = DATASET_FORMAT_CIFAR10,
     .subdir = "cifar-10-batches-bin",
     .train_files = 5,
     .count = 6,
     .names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
               "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"},
     .read = dataset_cifar_read,
     .count_samples = dataset_cifar_count},
    {.format = DATASET_FORMAT_CIFAR100,
     .subdir = "cifar-100-binary",
     .train_files = 1,
     .count = 2,
     .names = {"train.bin", "test.bin"},
     .read = dataset_cifar_read,
     .count_samples = dataset_cifar_count},
    {.format = DATASET_FORMAT_CSV,
     .train_files = 1,
     .count = 2,
     .names = {"train.csv", "test.csv"},
     .read = dataset_csv_read,
     .count_samples = dataset_csv_count},
};

enum { FORMATS = sizeof formats / sizeof formats[0] };

static const format_t *format_of(dataset_format_t format) {
  for (int i = 0; i < FORMATS; i++)
    if (formats[i].format == format)
      return &formats[i];
  return NULL;
}

static int name_valid(const char *name) {
  size_t n = strlen(name);

  if (n == 0 || n > 64 || name[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok)
      return 0;
  }
  return 1;
}

/* Finds dir/base, or dir/base.gz when gz; fills out with the one that
 * exists as a regular file. */
static int file_pick(const char *dir, const char *base, int gz, char *out,
                     size_t outlen) {
  struct stat st;
  const char *ext[2] = {"", ".gz"};

  for (int i = 0; i < 1 + gz; i++) {
    int n = snprintf(out, outlen, "%s/%s%s", dir, base, ext[i]);
    if (n > 0 && (size_t)n < outlen && stat(out, &st) == 0 &&
        S_ISREG(st.st_mode))
      return 0;
  }
  return -ENOENT;
}

/* Checks that path, with symbolic links resolved, lies inside root. */
static int path_inside(const char *root_real, const char *path) {
  char real[PATH_MAX];
  size_t n = strlen(root_real);

  if (!realpath(path, real))
    return 0;
  return strncmp(real, root_real, n) == 0 &&
         (real[n] == '/' || root_real[n - 1] == '/');
}

/* Tells whether dir holds any file of format fm. */
static int format_seen(const format_t *fm, const char *dir) {
  char path[PATH_MAX];

  for (int i = 0; i < fm->count; i++)
    if (file_pick(dir, fm->names[i], fm->gz, path, sizeof path) == 0)
      return 1;
  return 0;
}

/* Finds the format of the files in dir or in one of the formats'
 * subdirectories; sets where to the directory holding them. */
static const format_t *format_detect(const char *dir, char *where, size_t len) {
  for (int i = 0; i < FORMATS; i++) {
    const format_t *fm = &formats[i];
    snprintf(where, len, "%s", dir);
    if (format_seen(fm, where))
      return fm;
    if (fm->subdir &&
        (size_t)snprintf(where, len, "%s/%s", dir, fm->subdir) < len &&
        format_seen(fm, where))
      return fm;
  }
  return NULL;
}

/* Fills files with every file of fm in where, all inside root_real. */
static int files_fill(const format_t *fm, const char *where,
                      const char *root_real, const char *name,
                      dataset_files_t *files, char *err, size_t errlen) {
  for (int i = 0; i < fm->count; i++) {
    char *path = files->path[i];
    if (file_pick(where, fm->names[i], fm->gz, path, sizeof files->path[i])) {
      snprintf(err, errlen, "dataset '%s' is incomplete: no %s%s in %s", name,
               fm->names[i], fm->gz ? "(.gz)" : "", where);
      return -ENOENT;
    }
    if (!path_inside(root_real, path)) {
      snprintf(err, errlen, "dataset '%s': %s leads outside the data root",
               name, path);
      return -EPERM;
    }
  }
  files->format = fm->format;
  files->train_files = fm->train_files;
  files->count = fm->count;
  return 0;
}

int dataset_files_find(const char *root, const char *name,
                       dataset_files_t *files, char *err, size_t errlen) {
  char root_real[PATH_MAX], dir[PATH_MAX], where[PATH_MAX];
  const format_t *fm;
  int rc, len;

  memset(files, 0, sizeof *files);
  if (!name_valid(name)) {
    snprintf(err, errlen,
             "dataset name '%.64s' is not a plain name "
             "(letters, digits, '.', '_', '-')",
             name);
    return -EINVAL;
  }
  if (!realpath(root, root_real)) {
    snprintf(err, errlen, "data root '%s': %s", root, strerror(errno));
    return -ENOENT;
  }
  /* Keeps room for a subdirectory and a file name after root/name. */
  len = snprintf(dir, sizeof dir, "%s/%s", root_real, name);
  if (len < 0 || (size_t)len + 100 > sizeof dir) {
    snprintf(err, errlen, "data root path is too long");
    return -EINVAL;
  }
  fm = format_detect(dir, where, sizeof where);
  if (!fm) {
    snprintf(err, errlen,
             "unknown dataset '%s': no IDX, CIFAR or CSV files in %s", name,
             dir);
    return -ENOENT;
  }
  rc = files_fill(fm, where, root_real, name, files, err, errlen);
  if (rc < 0)
    memset(files, 0, sizeof *files);
  return rc;
}

int dataset_probe(const char *root, const char *name, int *n_train, int *n_test,
                  char *err, size_t errlen) {
  dataset_files_t files;
  const format_t *fm;
  int rc = dataset_files_find(root, name, &files, err, errlen);

  if (rc < 0)
    return rc;
  fm = format_of(files.format);
  rc = fm->count_samples(&files, 0, n_train, err, errlen);
  if (rc == 0)
    rc = fm->count_samples(&files, 1, n_test, err, errlen);
  return rc;
}

int dataset_nomem(const char *path, size_t bytes, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: out of memory for %zu bytes", path, bytes);
  return -ENOMEM;
}

void dataset_classes_set(dataset_t *ds) {
  int max = 0;

  for (int i = 0; i < ds->n; i++)
    if (ds->y[i] > max)
      max = ds->y[i];
  ds->classes = max + 1;
}

/* Statistics. A spread below 1e-6 (a constant channel or column) counts as
 * 1, so standardising leaves it centred instead of blowing it up. */

static float spread(double var) {
  double sd = sqrt(var > 0.0 ? var : 0.0);
  return sd < 1e-6 ? 1.0f : (float)sd;
}

/* Per-channel mean and standard deviation of pixels in [0, 1], from
 * exact histograms of the byte values. */
static void pixel_stats(dataset_t *ds) {
  size_t plane = (size_t)ds->height * ds->width;

  assert(ds->channels >= 1 && ds->channels <= DATASET_MAX_CHANNELS);
  for (int c = 0; c < ds->channels; c++) {
    uint64_t hist[256] = {0};
    double count = (double)ds->n * plane, sum = 0.0, dev = 0.0, mean;
    for (int i = 0; i < ds->n; i++) {
      const uint8_t *p = ds->pixels + (size_t)i * ds->dim + c * plane;
      for (size_t k = 0; k < plane; k++)
        hist[p[k]]++;
    }
    for (int v = 0; v < 256; v++)
      sum += (double)hist[v] * v;
    mean = sum / count;
    for (int v = 0; v < 256; v++)
      dev += (double)hist[v] * (v - mean) * (v - mean);
    ds->mean[c] = (float)(mean / 255.0);
    ds->sd[c] = spread(dev / count / (255.0 * 255.0));
  }
}

/* Per-column mean and standard deviation of features, in two passes. */
static int feature_stats(dataset_t *ds, char *err, size_t errlen) {
  size_t dim = (size_t)ds->dim;
  double *mean = calloc(dim, sizeof(double));
  double *dev = calloc(dim, sizeof(double));
  int rc = 0;

  ds->feature_mean = malloc(sizeof(float) * dim);
  ds->feature_sd = malloc(sizeof(float) * dim);
  if (!mean || !dev || !ds->feature_mean || !ds->feature_sd) {
    rc = dataset_nomem("feature statistics", 4 * sizeof(double) * dim, err,
                       errlen);
    goto out;
  }
  for (int i = 0; i < ds->n; i++)
    for (size_t k = 0; k < dim; k++)
      mean[k] += ds->features[i * dim + k];
  for (size_t k = 0; k < dim; k++)
    mean[k] /= ds->n;
  for (int i = 0; i < ds->n; i++)
    for (size_t k = 0; k < dim; k++) {
      double d = ds->features[i * dim + k] - mean[k];
      dev[k] += d * d;
    }
  for (size_t k = 0; k < dim; k++) {
    ds->feature_mean[k] = (float)mean[k];
    ds->feature_sd[k] = spread(dev[k] / ds->n);
  }

out:
  free(mean);
  free(dev);
  return rc;
}

int dataset_stats_compute(dataset_t *ds, char *err, size_t errlen) {
  if (ds->pixels) {
    pixel_stats(ds);
    return 0;
  }
  return feature_stats(ds, err, errlen);
}

/* Gives test the statistics of train. */
static int stats_copy(const dataset_t *train, dataset_t *test, char *err,
                      size_t errlen) {
  size_t bytes = sizeof(float) * (size_t)train->dim;

  memcpy(test->mean, train->mean, sizeof test->mean);
  memcpy(test->sd, train->sd, sizeof test->sd);
  if (!train->feature_mean)
    return 0;
  test->feature_mean = malloc(bytes);
  test->feature_sd = malloc(bytes);
  if (!test->feature_mean || !test->feature_sd)
    return dataset_nomem("feature statistics", 2 * bytes, err, errlen);
  memcpy(test->feature_mean, train->feature_mean, bytes);
  memcpy(test->feature_sd, train->feature_sd, bytes);
  return 0;
}

/* Refuses splits of different shapes or a test class training lacks. */
static int splits_match(const char *name, const dataset_t *train,
                        dataset_t *test, char *err, size_t errlen) {
  if (test->dim != train->dim || test->channels != train->channels ||
      test->height != train->height || test->width != train->width) {
    snprintf(err, errlen,
             "dataset '%s': test samples are %dx%dx%d, training samples "
             "%dx%dx%d",
             name, test->channels, test->height, test->width, train->channels,
             train->height, train->width);
    return -EINVAL;
  }
  if (test->classes > train->classes) {
    snprintf(err, errlen,
             "dataset '%s': test labels reach class %d, "
             "training labels only %d",
             name, test->classes - 1, train->classes - 1);
    return -EINVAL;
  }
  test->classes = train->classes;
  return 0;
}

int dataset_load(const char *root, const char *name, dataset_norm_t norm,
                 dataset_t *train, dataset_t *test, char *err, size_t errlen) {
  dataset_files_t files;
  const format_t *fm;
  int rc;

  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  rc = dataset_files_find(root, name, &files, err, errlen);
  if (rc < 0)
    return rc;
  fm = format_of(files.format);
  rc = fm->read(&files, 0, train, err, errlen);
  if (rc == 0)
    rc = fm->read(&files, 1, test, err, errlen);
  if (rc == 0)
    rc = splits_match(name, train, test, err, errlen);
  if (rc == 0)
    rc = dataset_stats_compute(train, err, errlen);
  if (rc == 0)
    rc = stats_copy(train, test, err, errlen);
  if (rc < 0) {
    dataset_deinit(train);
    dataset_deinit(test);
    return rc;
  }
  train->norm = test->norm = norm;
  return 0;
}

/* Gathering. A pixel of value v in channel c becomes table[c][v], so
 * normalising a row costs one lookup per value. */

typedef struct {
  float value[DATASET_MAX_CHANNELS][256];
} pixel_table_t;

static void pixel_table(const dataset_t *ds, pixel_table_t *t) {
  int standard = ds->norm == DATASET_NORM_STANDARDIZE;

  for (int c = 0; c < ds->channels; c++) {
    float gain = standard ? 1.0f / (255.0f * ds->sd[c]) : 1.0f / 255.0f;
    float bias = standard ? -ds->mean[c] / ds->sd[c] : 0.0f;
    for (int v = 0; v < 256; v++)
      t->value[c][v] = (float)v * gain + bias;
  }
}

/* Writes image row `row` of ds, normalised, to out (dim), turning the
 * stored channel-major layout (c, h, w) into the channels-last layout
 * (h, w, c) the layers compute on. */
static void row_pixels(const dataset_t *ds, const pixel_table_t *t, int row,
                       float *out) {
  const uint8_t *p = ds->pixels + (size_t)row * ds->dim;
  size_t plane = (size_t)ds->height * ds->width;
  int channels = ds->channels;

  for (int c = 0; c < channels; c++, p += plane) {
    const float *value = t->value[c];
    for (size_t k = 0; k < plane; k++)
      out[k * (size_t)channels + (size_t)c] = value[p[k]];
  }
}

/* Writes tabular row `row` of ds, normalised, to out (dim). */
static void row_features(const dataset_t *ds, int row, float *out) {
  const float *x = ds->features + (size_t)row * ds->dim;

  if (ds->norm == DATASET_NORM_SCALE) {
    memcpy(out, x, sizeof(float) * (size_t)ds->dim);
    return;
  }
  assert(ds->feature_mean && ds->feature_sd);
  for (int k = 0; k < ds->dim; k++)
    out[k] = (x[k] - ds->feature_mean[k]) / ds->feature_sd[k];
}

/* Rows rows[0..n), or first..first+n-1 when rows is NULL, into out. */
static void gather(const dataset_t *ds, const int32_t *rows, int first, int n,
                   float *out) {
  pixel_table_t *t = NULL, table;

  if (ds->pixels) {
    pixel_table(ds, &table);
    t = &table;
  }
  for (int i = 0; i < n; i++) {
    int row = rows ? rows[i] : first + i;
    float *dst = out + (size_t)i * ds->dim;
    assert(row >= 0 && row < ds->n);
    if (t)
      row_pixels(ds, t, row, dst);
    else
      row_features(ds, row, dst);
  }
}

void dataset_gather(const dataset_t *ds, const int32_t *rows, int n,
                    float *out) {
  gather(ds, rows, 0, n, out);
}

void dataset_gather_range(const dataset_t *ds, int first, int n, float *out) {
  gather(ds, NULL, first, n, out);
}

void dataset_deinit(dataset_t *ds) {
  free(ds->pixels);
  free(ds->features);
  free(ds->y);
  free(ds->feature_mean);
  free(ds->feature_sd);
  memset(ds, 0, sizeof *ds);
}
