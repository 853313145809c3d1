/* SPDX-License-Identifier: MIT */
/* Datasets held in memory: features normalised to float32, labels as bytes.
 * This module reads IDX files (gzipped or raw) found by name inside a data
 * root; it never writes anything and never prints. */
#ifndef SPK_ENGINE_DATASET_H
#define SPK_ENGINE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define DATASET_MAX_FILES 4

/* One split of a dataset: n samples of dim features each.
 * x is (n, dim), row-major; y is (n). */
typedef struct {
  int n;
  int dim;
  int classes;
  int channels, height, width;
  float *x;
  uint8_t *y;
} dataset_t;

/* The files a named dataset consists of, as absolute paths. */
typedef struct {
  int count;
  char path[DATASET_MAX_FILES][4096];
} dataset_files_t;

/* Resolves a dataset name ("fashion-mnist") to its files under root.
 * Names are plain words ([A-Za-z0-9._-], not starting with '.'), so a name
 * can never reach outside root, nor can a symbolic link inside it.
 * Returns 0, -EINVAL for a name that is not plain, -ENOENT for an unknown
 * dataset or a missing file; err says which. */
int dataset_files_find(const char *root, const char *name,
                       dataset_files_t *files, char *err, size_t errlen);

/* Reads only the image headers of a named dataset: training and test
 * sizes. Returns 0 or a negative errno code with err set. */
int dataset_probe(const char *root, const char *name, int *n_train,
                  int *n_test, char *err, size_t errlen);

/* Loads a named dataset's training and test splits into train and test,
 * normalised by the training split's mean and standard deviation. The
 * caller frees both with dataset_deinit. Truncated files, lying headers and
 * files that do not match each other fail with -EINVAL and a message. */
int dataset_load(const char *root, const char *name, dataset_t *train,
                 dataset_t *test, char *err, size_t errlen);

/* Reads one IDX file pair (images, labels) into ds, pixels scaled to
 * [0, 1]. Either file may be gzipped. */
int dataset_idx_load(const char *images_path, const char *labels_path,
                     dataset_t *ds, char *err, size_t errlen);

/* Releases what a dataset holds; accepts a zeroed struct. */
void dataset_deinit(dataset_t *ds);

#endif
