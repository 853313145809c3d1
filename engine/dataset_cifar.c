/* SPDX-License-Identifier: MIT */
/* CIFAR-10 and CIFAR-100 binary files: fixed-size records of label bytes
 * then 3 x 32 x 32 pixel bytes, channel-major. A file must hold a whole
 * number of records and every label must be a class of its format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_io.h"

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE };

/* One format's record layout: label bytes before the pixels, which of them
 * is the class, and how many values each label byte may take. */
typedef struct {
  const char *name;
  int label_bytes;
  int label_at;
  int limit[2];
} cifar_layout_t;

static const cifar_layout_t cifar10 = {"CIFAR-10", 1, 0, {10, 0}};
static const cifar_layout_t cifar100 = {"CIFAR-100", 2, 1, {20, 100}};

static const cifar_layout_t *layout_of(const dataset_files_t *files) {
  return files->format == DATASET_FORMAT_CIFAR10 ? &cifar10 : &cifar100;
}

/* The paths of one split: files->path[*first .. *first + *count). */
static void split_range(const dataset_files_t *files, int test, int *first,
                        int *count) {
  *first = test ? files->train_files : 0;
  *count = test ? files->count - files->train_files : files->train_files;
}

/* Records in one file, from its size. */
static int file_records(const char *path, const cifar_layout_t *lay, int *n,
                        char *err, size_t errlen) {
  long long rec = lay->label_bytes + CIFAR_PIXELS;
  struct stat st;

  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -ENOENT;
  }
  if (st.st_size == 0 || st.st_size % rec != 0 ||
      st.st_size / rec > DATASET_MAX_SAMPLES) {
    snprintf(err, errlen,
             "%s: %lld bytes is not a whole number of %lld-byte %s records "
             "(truncated or not %s)",
             path, (long long)st.st_size, rec, lay->name, lay->name);
    return -EINVAL;
  }
  *n = (int)(st.st_size / rec);
  return 0;
}

int dataset_cifar_count(const dataset_files_t *files, int test, int *n,
                        char *err, size_t errlen) {
  const cifar_layout_t *lay = layout_of(files);
  int first, count, total = 0;

  split_range(files, test, &first, &count);
  for (int i = first; i < first + count; i++) {
    int k;
    int rc = file_records(files->path[i], lay, &k, err, errlen);
    if (rc < 0)
      return rc;
    if (k > DATASET_MAX_SAMPLES - total) {
      snprintf(err, errlen, "%s: more than %d samples in one split",
               files->path[i], DATASET_MAX_SAMPLES);
      return -EINVAL;
    }
    total += k;
  }
  *n = total;
  return 0;
}

/* Checks a record's label bytes; returns its class or -EINVAL. */
static int record_label(const uint8_t *rec, const cifar_layout_t *lay,
                        const char *path, int index, char *err, size_t errlen) {
  for (int b = 0; b < lay->label_bytes; b++) {
    if (rec[b] >= lay->limit[b]) {
      snprintf(err, errlen,
               "%s: record %d has label byte %d = %d, not below %d as %s "
               "needs",
               path, index, b, rec[b], lay->limit[b], lay->name);
      return -EINVAL;
    }
  }
  return rec[lay->label_at];
}

/* Reads the n records of one file into ds from sample `at` on. The file
 * may have changed since it was sized: reading checks again. */
static int file_read(const char *path, const cifar_layout_t *lay, int n, int at,
                     dataset_t *ds, char *err, size_t errlen) {
  uint8_t rec[2 + CIFAR_PIXELS];
  size_t len = (size_t)lay->label_bytes + CIFAR_PIXELS;
  FILE *f = fopen(path, "rb");
  int rc = 0;

  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -ENOENT;
  }
  for (int i = 0; i < n && rc == 0; i++) {
    if (fread(rec, 1, len, f) != len) {
      snprintf(err, errlen, "%s: truncated in record %d", path, i);
      rc = -EINVAL;
      break;
    }
    rc = record_label(rec, lay, path, i, err, errlen);
    if (rc >= 0) {
      ds->y[at + i] = (uint8_t)rc;
      memcpy(ds->pixels + (size_t)(at + i) * CIFAR_PIXELS,
             rec + lay->label_bytes, CIFAR_PIXELS);
      rc = 0;
    }
  }
  if (rc == 0 && fgetc(f) != EOF) {
    snprintf(err, errlen, "%s: grew while it was read", path);
    rc = -EINVAL;
  }
  fclose(f);
  return rc;
}

int dataset_cifar_read(const dataset_files_t *files, int test, dataset_t *ds,
                       char *err, size_t errlen) {
  const cifar_layout_t *lay = layout_of(files);
  int first, count, n, at = 0;
  int rc = dataset_cifar_count(files, test, &n, err, errlen);

  if (rc < 0)
    return rc;
  split_range(files, test, &first, &count);
  ds->pixels = malloc((size_t)n * CIFAR_PIXELS);
  ds->y = malloc((size_t)n);
  if (!ds->pixels || !ds->y)
    return dataset_nomem(files->path[first], (size_t)n * CIFAR_PIXELS, err,
                         errlen);
  for (int i = first; i < first + count && rc == 0; i++) {
    int k = 0;
    rc = file_records(files->path[i], lay, &k, err, errlen);
    if (rc == 0 && k > n - at) {
      snprintf(err, errlen, "%s: grew while it was read", files->path[i]);
      rc = -EINVAL;
    }
    if (rc == 0)
      rc = file_read(files->path[i], lay, k, at, ds, err, errlen);
    at += k;
  }
  if (rc == 0 && at != n) {
    snprintf(err, errlen, "%s: shrank while it was read", files->path[first]);
    rc = -EINVAL;
  }
  if (rc < 0)
    return rc;
  ds->n = n;
  ds->channels = 3;
  ds->height = ds->width = CIFAR_SIDE;
  ds->dim = CIFAR_PIXELS;
  dataset_classes_set(ds);
  return 0;
}
