/* SPDX-License-Identifier: MIT */
/* IDX datasets found by name under a data root. Files may be gzipped or
 * raw (zlib reads both). Every header is checked against the bytes that
 * follow it, so a truncated or lying file fails instead of overreading. */
#include "dataset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAX_SAMPLES 10000000
#define IDX_MAX_SIDE 4096

static const char *const idx_names[DATASET_MAX_FILES] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

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

/* Finds dir/base or dir/base.gz; fills out with the one that exists. */
static int file_pick(const char *dir, const char *base, char *out,
                     size_t outlen) {
  struct stat st;
  const char *ext[2] = {"", ".gz"};

  for (int i = 0; i < 2; i++) {
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

int dataset_files_find(const char *root, const char *name,
                       dataset_files_t *files, char *err, size_t errlen) {
  char root_real[PATH_MAX], dir[PATH_MAX];

  memset(files, 0, sizeof *files);
  if (!name_valid(name)) {
    snprintf(err, errlen,
             "dataset name '%.64s' is not a plain name "
             "(letters, digits, '.', '_', '-')", name);
    return -EINVAL;
  }
  if (!realpath(root, root_real)) {
    snprintf(err, errlen, "data root '%s': %s", root, strerror(errno));
    return -ENOENT;
  }
  if ((size_t)snprintf(dir, sizeof dir, "%.*s/%s", PATH_MAX - 80, root_real,
                       name) >= sizeof dir) {
    snprintf(err, errlen, "data root path is too long");
    return -EINVAL;
  }
  for (int i = 0; i < DATASET_MAX_FILES; i++) {
    if (file_pick(dir, idx_names[i], files->path[i], sizeof files->path[i]) <
            0 ||
        !path_inside(root_real, files->path[i])) {
      snprintf(err, errlen, "unknown dataset '%s': no %s(.gz) in %s", name,
               idx_names[i], dir);
      return -ENOENT;
    }
  }
  files->count = DATASET_MAX_FILES;
  return 0;
}

/* Reads exactly len bytes or fails naming the file. */
static int gz_read_exact(gzFile f, void *buf, size_t len, const char *path,
                         const char *what, char *err, size_t errlen) {
  size_t done = 0;

  while (done < len) {
    unsigned chunk = len - done > (1u << 30) ? (1u << 30)
                                             : (unsigned)(len - done);
    int n = gzread(f, (char *)buf + done, chunk);
    if (n <= 0) {
      int zerr;
      const char *msg = n < 0 ? gzerror(f, &zerr) : "end of file";
      snprintf(err, errlen, "%s: truncated %s: %zu of %zu bytes (%s)", path,
               what, done, len, msg);
      return -EINVAL;
    }
    done += (size_t)n;
  }
  return 0;
}

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         b[3];
}

/* An IDX header: its unsigned-byte magic with ndim dimensions. */
static int idx_header(gzFile f, const char *path, int ndim, uint32_t *dims,
                      char *err, size_t errlen) {
  uint8_t h[16];
  uint32_t magic;
  int rc = gz_read_exact(f, h, 4 + 4 * (size_t)ndim, path, "header", err,
                         errlen);

  if (rc < 0)
    return rc;
  magic = be32(h);
  if (magic != (0x0800u | (uint32_t)ndim)) {
    snprintf(err, errlen,
             "%s: not an IDX unsigned-byte file with %d dimension%s "
             "(magic 0x%08x)", path, ndim, ndim > 1 ? "s" : "", magic);
    return -EINVAL;
  }
  for (int i = 0; i < ndim; i++)
    dims[i] = be32(h + 4 + 4 * i);
  return 0;
}

/* Fails unless the file has no bytes beyond what its header announced. */
static int idx_check_end(gzFile f, const char *path, char *err,
                         size_t errlen) {
  char extra;

  if (gzread(f, &extra, 1) != 0) {
    snprintf(err, errlen, "%s: more data than its header announces", path);
    return -EINVAL;
  }
  return 0;
}

/* Fails when a header announces more bytes than the file can hold, before
 * anything is allocated for them: deflate inflates at most about 1032 to
 * 1, so a file of s bytes, raw or gzipped, holds at most 1032 s bytes. */
static int idx_check_room(const char *path, uint64_t announced, char *err,
                          size_t errlen) {
  struct stat st;

  if (stat(path, &st) != 0 || announced <= (uint64_t)st.st_size * 1032)
    return 0;
  snprintf(err, errlen,
           "%s: header announces %llu bytes, more than its "
           "%lld bytes can hold",
           path, (unsigned long long)announced, (long long)st.st_size);
  return -EINVAL;
}

static int idx_nomem(const char *path, size_t bytes, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: out of memory for %zu bytes", path, bytes);
  return -ENOMEM;
}

static int idx_open(const char *path, gzFile *f, char *err, size_t errlen) {
  *f = gzopen(path, "rb");
  if (!*f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
    return -ENOENT;
  }
  return 0;
}

static int idx_images_read(const char *path, dataset_t *ds, uint8_t **raw,
                           char *err, size_t errlen) {
  gzFile f;
  uint32_t d[3];
  size_t bytes;
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_header(f, path, 3, d, err, errlen);
  if (rc == 0 && (d[0] == 0 || d[0] > IDX_MAX_SAMPLES || d[1] == 0 ||
                  d[1] > IDX_MAX_SIDE || d[2] == 0 || d[2] > IDX_MAX_SIDE)) {
    snprintf(err, errlen, "%s: implausible header %u x %u x %u", path, d[0],
             d[1], d[2]);
    rc = -EINVAL;
  }
  if (rc == 0) {
    bytes = (size_t)d[0] * d[1] * d[2];
    rc = idx_check_room(path, 16 + (uint64_t)bytes, err, errlen);
  }
  if (rc == 0) {
    *raw = malloc(bytes);
    rc = *raw ? gz_read_exact(f, *raw, bytes, path, "pixels", err, errlen)
              : idx_nomem(path, bytes, err, errlen);
  }
  if (rc == 0)
    rc = idx_check_end(f, path, err, errlen);
  if (rc == 0) {
    ds->n = (int)d[0];
    ds->channels = 1;
    ds->height = (int)d[1];
    ds->width = (int)d[2];
    ds->dim = (int)(d[1] * d[2]);
  }
  gzclose(f);
  return rc;
}

static int idx_labels_read(const char *path, int n, uint8_t **y, char *err,
                           size_t errlen) {
  gzFile f;
  uint32_t d[1];
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_header(f, path, 1, d, err, errlen);
  if (rc == 0 && d[0] != (uint32_t)n) {
    snprintf(err, errlen, "%s: %u labels for %d images", path, d[0], n);
    rc = -EINVAL;
  }
  if (rc == 0) {
    *y = malloc((size_t)n);
    rc = *y ? gz_read_exact(f, *y, (size_t)n, path, "labels", err, errlen)
            : idx_nomem(path, (size_t)n, err, errlen);
  }
  if (rc == 0)
    rc = idx_check_end(f, path, err, errlen);
  gzclose(f);
  return rc;
}

int dataset_idx_load(const char *images_path, const char *labels_path,
                     dataset_t *ds, char *err, size_t errlen) {
  uint8_t *raw = NULL;
  size_t total;
  int rc, max = 0;

  memset(ds, 0, sizeof *ds);
  rc = idx_images_read(images_path, ds, &raw, err, errlen);
  if (rc == 0)
    rc = idx_labels_read(labels_path, ds->n, &ds->y, err, errlen);
  if (rc < 0)
    goto out;

  total = (size_t)ds->n * ds->dim;
  ds->x = malloc(total * sizeof(float));
  if (!ds->x) {
    snprintf(err, errlen, "out of memory for %d images", ds->n);
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < total; i++)
    ds->x[i] = raw[i] * (1.0f / 255.0f);
  for (int i = 0; i < ds->n; i++)
    if (ds->y[i] > max)
      max = ds->y[i];
  ds->classes = max + 1;

out:
  free(raw);
  if (rc < 0)
    dataset_deinit(ds);
  return rc;
}

void dataset_deinit(dataset_t *ds) {
  free(ds->x);
  free(ds->y);
  memset(ds, 0, sizeof *ds);
}

/* Shifts and scales both splits by the training split's pixel mean and
 * standard deviation. */
static void dataset_standardize(dataset_t *train, dataset_t *test) {
  size_t n = (size_t)train->n * train->dim;
  double sum = 0.0, sq = 0.0, mean, sd;

  for (size_t i = 0; i < n; i++) {
    sum += train->x[i];
    sq += (double)train->x[i] * train->x[i];
  }
  mean = sum / (double)n;
  sd = sqrt(sq / (double)n - mean * mean);
  if (sd < 1e-6)
    sd = 1.0;
  for (size_t i = 0; i < n; i++)
    train->x[i] = (float)((train->x[i] - mean) / sd);
  n = (size_t)test->n * test->dim;
  for (size_t i = 0; i < n; i++)
    test->x[i] = (float)((test->x[i] - mean) / sd);
}

int dataset_load(const char *root, const char *name, dataset_t *train,
                 dataset_t *test, char *err, size_t errlen) {
  dataset_files_t files;
  int rc;

  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  rc = dataset_files_find(root, name, &files, err, errlen);
  if (rc == 0)
    rc = dataset_idx_load(files.path[0], files.path[1], train, err, errlen);
  if (rc == 0)
    rc = dataset_idx_load(files.path[2], files.path[3], test, err, errlen);
  if (rc == 0 && (test->dim != train->dim || test->height != train->height)) {
    snprintf(err, errlen, "dataset '%s': test images are %dx%d, training "
             "images %dx%d", name, test->height, test->width, train->height,
             train->width);
    rc = -EINVAL;
  }
  if (rc == 0 && test->classes > train->classes) {
    snprintf(err, errlen, "dataset '%s': test labels reach class %d, "
             "training labels only %d", name, test->classes - 1,
             train->classes - 1);
    rc = -EINVAL;
  }
  if (rc < 0) {
    dataset_deinit(train);
    dataset_deinit(test);
    return rc;
  }
  test->classes = train->classes;
  dataset_standardize(train, test);
  return 0;
}

/* Reads the image header of one IDX file for its sample count. */
static int idx_count(const char *path, int *n, char *err, size_t errlen) {
  gzFile f;
  uint32_t d[3];
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_header(f, path, 3, d, err, errlen);
  if (rc == 0 && (d[0] == 0 || d[0] > IDX_MAX_SAMPLES)) {
    snprintf(err, errlen, "%s: implausible sample count %u", path, d[0]);
    rc = -EINVAL;
  }
  if (rc == 0)
    *n = (int)d[0];
  gzclose(f);
  return rc;
}

int dataset_probe(const char *root, const char *name, int *n_train,
                  int *n_test, char *err, size_t errlen) {
  dataset_files_t files;
  int rc = dataset_files_find(root, name, &files, err, errlen);

  if (rc == 0)
    rc = idx_count(files.path[0], n_train, err, errlen);
  if (rc == 0)
    rc = idx_count(files.path[2], n_test, err, errlen);
  return rc;
}
