/* SPDX-License-Identifier: MIT */
/* The per-format readers behind dataset_load and dataset_probe, private to
 * the dataset module. Each reads one split of a dataset_files_t (test = 0
 * for the training split, 1 for the test split); statistics and norms are
 * left to dataset.c. */
#ifndef SPK_ENGINE_DATASET_IO_H
#define SPK_ENGINE_DATASET_IO_H

#include "dataset.h"

/* Bounds no real dataset reaches, checked before anything is allocated. */
#define DATASET_MAX_SAMPLES 10000000
#define DATASET_MAX_SIDE 4096

/* Fills ds (zeroed by the caller) with one split: shape, pixels or
 * features, labels and classes. On failure ds may hold part of it, which
 * dataset_deinit releases; err names the file. */
typedef int (*dataset_read_fn)(const dataset_files_t *files, int test,
                               dataset_t *ds, char *err, size_t errlen);

/* Counts the samples of one split without reading them all. */
typedef int (*dataset_count_fn)(const dataset_files_t *files, int test, int *n,
                                char *err, size_t errlen);

int dataset_idx_read(const dataset_files_t *files, int test, dataset_t *ds,
                     char *err, size_t errlen);
int dataset_idx_count(const dataset_files_t *files, int test, int *n, char *err,
                      size_t errlen);

/* CIFAR-10 when files->format says so, CIFAR-100 (fine labels) otherwise. */
int dataset_cifar_read(const dataset_files_t *files, int test, dataset_t *ds,
                       char *err, size_t errlen);
int dataset_cifar_count(const dataset_files_t *files, int test, int *n,
                        char *err, size_t errlen);

int dataset_csv_read(const dataset_files_t *files, int test, dataset_t *ds,
                     char *err, size_t errlen);
int dataset_csv_count(const dataset_files_t *files, int test, int *n, char *err,
                      size_t errlen);

/* Computes ds's own statistics into mean and sd, or feature_mean and
 * feature_sd (allocated here). Returns 0 or -ENOMEM with err set. */
int dataset_stats_compute(dataset_t *ds, char *err, size_t errlen);

/* Sets ds->classes to the largest of its n labels plus one. */
void dataset_classes_set(dataset_t *ds);

/* Writes an out-of-memory message naming path; returns -ENOMEM. */
int dataset_nomem(const char *path, size_t bytes, char *err, size_t errlen);

#endif
