/* SPDX-License-Identifier: MIT */
/* Datasets held in memory in their compact form (image pixels as bytes,
 * tabular features as floats) and normalised only when rows are gathered
 * into a batch. Reads IDX, CIFAR binary and CSV files found by name inside
 * a data root; never writes anything and never prints. */
#ifndef SPK_ENGINE_DATASET_H
#define SPK_ENGINE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define DATASET_MAX_FILES 6
#define DATASET_MAX_CHANNELS 16

/* How gathered rows are normalised. SCALE maps pixels to [0, 1] (p / 255)
 * and passes tabular features as they are; STANDARDIZE subtracts the
 * training split's mean and divides by its standard deviation, per image
 * channel or per tabular feature column. */
typedef enum { DATASET_NORM_SCALE, DATASET_NORM_STANDARDIZE } dataset_norm_t;

typedef enum {
  DATASET_FORMAT_IDX,
  DATASET_FORMAT_CIFAR10,
  DATASET_FORMAT_CIFAR100,
  DATASET_FORMAT_CSV
} dataset_format_t;

/* One split of a dataset: n samples of dim values each, labels y (n) in
 * [0, classes). Exactly one of pixels and features is set:
 *  - pixels (n, dim) raw bytes of images, dim = channels * height * width,
 *    each sample channel-major (CHW);
 *  - features (n, dim) raw floats of tabular data, with channels = height
 *    = 1 and width = dim.
 * mean and sd hold the training split's per-channel statistics of images
 * in [0, 1] units; feature_mean and feature_sd (dim) those of tabular
 * columns, owned by this struct. Both splits of a load carry the same
 * statistics and norm; dataset_gather applies them. */
typedef struct {
  int n;
  int dim;
  int classes;
  int channels, height, width;
  uint8_t *pixels;
  float *features;
  uint8_t *y;
  dataset_norm_t norm;
  float mean[DATASET_MAX_CHANNELS];
  float sd[DATASET_MAX_CHANNELS];
  float *feature_mean;
  float *feature_sd;
} dataset_t;

/* The files a named dataset consists of, as absolute paths: the first
 * train_files belong to the training split, the rest to the test split. */
typedef struct {
  dataset_format_t format;
  int count;
  int train_files;
  char path[DATASET_MAX_FILES][4096];
} dataset_files_t;

/* Resolves a dataset name ("fashion-mnist") to its files under root. The
 * format follows from the files the directory root/name holds:
 *  - IDX: train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz;
 *  - CIFAR-10: data_batch_1.bin .. data_batch_5.bin and test_batch.bin,
 *    directly or in a cifar-10-batches-bin subdirectory;
 *  - CIFAR-100: train.bin and test.bin, directly or in cifar-100-binary;
 *  - CSV: train.csv and test.csv.
 * Names are plain words ([A-Za-z0-9._-], not starting with '.'), so a name
 * can never reach outside root, nor can a symbolic link inside it.
 * Returns 0, -EINVAL for a name that is not plain, -ENOENT for an unknown
 * dataset or a missing file, -EPERM for a file leading outside root; err
 * says which. */
int dataset_files_find(const char *root, const char *name,
                       dataset_files_t *files, char *err, size_t errlen);

/* Counts a named dataset's training and test samples cheaply: from IDX
 * headers, CIFAR file sizes, or CSV lines. Returns 0 or a negative errno
 * code with err set. */
int dataset_probe(const char *root, const char *name, int *n_train, int *n_test,
                  char *err, size_t errlen);

/* Loads a named dataset's training and test splits into train and test,
 * computes the training split's statistics into both and sets both to
 * normalise by norm. classes is the training labels' maximum plus one, in
 * both splits. The caller frees both with dataset_deinit (also after a
 * failure, which leaves them empty). Truncated files, lying headers, bad
 * CSV cells, and splits that do not match each other (shape, a test label
 * training never has) fail with -EINVAL and a message naming the file. */
int dataset_load(const char *root, const char *name, dataset_norm_t norm,
                 dataset_t *train, dataset_t *test, char *err, size_t errlen);

/* Reads one IDX file pair (images, labels) into ds, with its own
 * statistics and the SCALE norm. Either file may be gzipped. */
int dataset_idx_load(const char *images_path, const char *labels_path,
                     dataset_t *ds, char *err, size_t errlen);

/* One sample read straight from its files: its label and its pixels,
 * channels * height * width bytes in a heap buffer, channel-major (CHW)
 * as the files hold them. Freed by dataset_sample_deinit. */
typedef struct {
  int label;
  int channels, height, width;
  uint8_t *pixels;
} dataset_sample_t;

/* Releases a sample's pixels; accepts a zeroed struct. */
void dataset_sample_deinit(dataset_sample_t *s);

/* Reads sample index (from 0) of the training (test = 0) or test split of
 * an IDX dataset, files as dataset_files_find gives them, without
 * holding the rest: a raw file is read at the sample's offset; a gzipped
 * one is inflated up to it and no further, through a small buffer. The
 * headers are checked as dataset_load checks them. Returns 0, -ERANGE
 * for an index outside the split (err gives its size), -EINVAL for a
 * file that is not IDX, has a bad header or is too short, -ENOENT for a
 * file that cannot be opened, -ENOMEM. */
int dataset_idx_sample_read(const dataset_files_t *files, int test, int index,
                            dataset_sample_t *out, char *err, size_t errlen);

/* What an IDX dataset holds, read from its headers and its training
 * labels only. */
typedef struct {
  int n_train, n_test;
  int channels, height, width;
  int classes; /* the largest training label plus one */
} dataset_shape_t;

/* Describes an IDX dataset (files as dataset_files_find gives them):
 * both splits' sizes, the image shape, which both splits must share,
 * and the classes. Errors as dataset_idx_sample_read. */
int dataset_idx_describe(const dataset_files_t *files, dataset_shape_t *out,
                         char *err, size_t errlen);

/* Writes the samples rows[0..n) of ds, normalised by ds->norm, to out
 * (n, dim). Images come out channels last, (h, w, c) per row, as the
 * layers expect. Every row must lie in [0, ds->n). */
void dataset_gather(const dataset_t *ds, const int32_t *rows, int n,
                    float *out);

/* Writes the samples first..first+n-1 of ds, normalised, to out (n, dim). */
void dataset_gather_range(const dataset_t *ds, int first, int n, float *out);

/* Releases what a dataset holds; accepts a zeroed struct. */
void dataset_deinit(dataset_t *ds);

#endif
