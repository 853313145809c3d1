/* SPDX-License-Identifier: MIT */
/* IDX image and label files (MNIST, Fashion-MNIST), gzipped or raw (zlib
 * reads both). Every header is checked against the bytes that follow it,
 * so a truncated or lying file fails instead of overreading. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dataset_io.h"

/* Reads exactly len bytes or fails naming the file. */
static int gz_read_exact(gzFile f, void *buf, size_t len, const char *path,
                         const char *what, char *err, size_t errlen) {
  size_t done = 0;

  while (done < len) {
    unsigned chunk =
        len - done > (1u << 30) ? (1u << 30) : (unsigned)(len - done);
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
  int rc =
      gz_read_exact(f, h, 4 + 4 * (size_t)ndim, path, "header", err, errlen);

  if (rc < 0)
    return rc;
  magic = be32(h);
  if (magic != (0x0800u | (uint32_t)ndim)) {
    snprintf(err, errlen,
             "%s: not an IDX unsigned-byte file with %d dimension%s "
             "(magic 0x%08x)",
             path, ndim, ndim > 1 ? "s" : "", magic);
    return -EINVAL;
  }
  for (int i = 0; i < ndim; i++)
    dims[i] = be32(h + 4 + 4 * i);
  return 0;
}

/* Fails unless the file has no bytes beyond what its header announced. */
static int idx_check_end(gzFile f, const char *path, char *err, size_t errlen) {
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

static int idx_open(const char *path, gzFile *f, char *err, size_t errlen) {
  *f = gzopen(path, "rb");
  if (!*f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
    return -ENOENT;
  }
  return 0;
}

/* Reads and checks an image file's header: d = (count, height, width). */
static int idx_images_header(gzFile f, const char *path, uint32_t *d, char *err,
                             size_t errlen) {
  int rc = idx_header(f, path, 3, d, err, errlen);

  if (rc == 0 &&
      (d[0] == 0 || d[0] > DATASET_MAX_SAMPLES || d[1] == 0 ||
       d[1] > DATASET_MAX_SIDE || d[2] == 0 || d[2] > DATASET_MAX_SIDE)) {
    snprintf(err, errlen, "%s: implausible header %u x %u x %u", path, d[0],
             d[1], d[2]);
    rc = -EINVAL;
  }
  return rc;
}

static int idx_images_read(const char *path, dataset_t *ds, char *err,
                           size_t errlen) {
  gzFile f;
  uint32_t d[3];
  size_t bytes = 0;
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_images_header(f, path, d, err, errlen);
  if (rc == 0) {
    bytes = (size_t)d[0] * d[1] * d[2];
    rc = idx_check_room(path, 16 + (uint64_t)bytes, err, errlen);
  }
  if (rc == 0) {
    ds->pixels = malloc(bytes);
    rc = ds->pixels
             ? gz_read_exact(f, ds->pixels, bytes, path, "pixels", err, errlen)
             : dataset_nomem(path, bytes, err, errlen);
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
            : dataset_nomem(path, (size_t)n, err, errlen);
  }
  if (rc == 0)
    rc = idx_check_end(f, path, err, errlen);
  gzclose(f);
  return rc;
}

/* Reads an image file and its label file into ds; on failure ds may hold
 * part of them. */
static int idx_pair_read(const char *images_path, const char *labels_path,
                         dataset_t *ds, char *err, size_t errlen) {
  int rc = idx_images_read(images_path, ds, err, errlen);

  if (rc == 0)
    rc = idx_labels_read(labels_path, ds->n, &ds->y, err, errlen);
  if (rc == 0)
    dataset_classes_set(ds);
  return rc;
}

int dataset_idx_read(const dataset_files_t *files, int test, dataset_t *ds,
                     char *err, size_t errlen) {
  int first = test ? 2 : 0;

  return idx_pair_read(files->path[first], files->path[first + 1], ds, err,
                       errlen);
}

int dataset_idx_load(const char *images_path, const char *labels_path,
                     dataset_t *ds, char *err, size_t errlen) {
  int rc;

  memset(ds, 0, sizeof *ds);
  rc = idx_pair_read(images_path, labels_path, ds, err, errlen);
  if (rc == 0)
    rc = dataset_stats_compute(ds, err, errlen);
  if (rc < 0)
    dataset_deinit(ds);
  return rc;
}

int dataset_idx_count(const dataset_files_t *files, int test, int *n, char *err,
                      size_t errlen) {
  const char *path = files->path[test ? 2 : 0];
  gzFile f;
  uint32_t d[3];
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_images_header(f, path, d, err, errlen);
  if (rc == 0)
    *n = (int)d[0];
  gzclose(f);
  return rc;
}

/* ---- One sample at a time. ---- */

/* Bytes of zlib's input buffer when seeking: larger than its default,
 * so inflating up to a far sample makes fewer read calls. */
#define SEEK_BUFFER (128 * 1024)

void dataset_sample_deinit(dataset_sample_t *s) {
  free(s->pixels);
  memset(s, 0, sizeof *s);
}

/* Moves f, just past a header of header bytes, to record index of len
 * bytes each and reads it into buf. */
static int idx_record_read(gzFile f, const char *path, size_t header, int index,
                           size_t len, uint8_t *buf, char *err, size_t errlen) {
  z_off_t at = (z_off_t)(header + (size_t)index * len);

  if (gzseek(f, at, SEEK_SET) != at) {
    snprintf(err, errlen, "%s: truncated before sample %d", path, index);
    return -EINVAL;
  }
  return gz_read_exact(f, buf, len, path, "sample", err, errlen);
}

/* Fails with -ERANGE unless index is one of the n samples of the split. */
static int idx_index_check(int index, uint32_t n, int test, char *err,
                           size_t errlen) {
  if (index >= 0 && (uint32_t)index < n)
    return 0;
  snprintf(err, errlen, "no sample %d: the %s split holds %u (0 to %u)", index,
           test ? "test" : "training", n, n - 1);
  return -ERANGE;
}

/* Reads the pixels of sample index from an image file into s. */
static int idx_sample_pixels(const char *path, int test, int index,
                             dataset_sample_t *s, uint32_t *n, char *err,
                             size_t errlen) {
  gzFile f;
  uint32_t d[3];
  size_t dim;
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  gzbuffer(f, SEEK_BUFFER);
  rc = idx_images_header(f, path, d, err, errlen);
  if (rc == 0)
    rc = idx_index_check(index, d[0], test, err, errlen);
  dim = rc == 0 ? (size_t)d[1] * d[2] : 0;
  if (rc == 0 && !(s->pixels = malloc(dim)))
    rc = dataset_nomem(path, dim, err, errlen);
  if (rc == 0)
    rc = idx_record_read(f, path, 16, index, dim, s->pixels, err, errlen);
  if (rc == 0) {
    s->channels = 1;
    s->height = (int)d[1];
    s->width = (int)d[2];
    *n = d[0];
  }
  gzclose(f);
  return rc;
}

/* Reads the label of sample index from a label file of n labels. */
static int idx_sample_label(const char *path, int index, uint32_t n, int *label,
                            char *err, size_t errlen) {
  gzFile f;
  uint32_t d[1];
  uint8_t y;
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_header(f, path, 1, d, err, errlen);
  if (rc == 0 && d[0] != n) {
    snprintf(err, errlen, "%s: %u labels for %u images", path, d[0], n);
    rc = -EINVAL;
  }
  if (rc == 0)
    rc = idx_record_read(f, path, 8, index, 1, &y, err, errlen);
  if (rc == 0)
    *label = y;
  gzclose(f);
  return rc;
}

int dataset_idx_sample_read(const dataset_files_t *files, int test, int index,
                            dataset_sample_t *out, char *err, size_t errlen) {
  int first = test ? 2 : 0;
  uint32_t n = 0;
  int rc;

  memset(out, 0, sizeof *out);
  if (files->format != DATASET_FORMAT_IDX) {
    snprintf(err, errlen, "not an IDX dataset");
    return -EINVAL;
  }
  rc = idx_sample_pixels(files->path[first], test, index, out, &n, err, errlen);
  if (rc == 0)
    rc = idx_sample_label(files->path[first + 1], index, n, &out->label, err,
                          errlen);
  if (rc < 0)
    dataset_sample_deinit(out);
  return rc;
}

/* Reads an image file's header: d = (count, height, width). */
static int idx_images_dims(const char *path, uint32_t *d, char *err,
                           size_t errlen) {
  gzFile f;
  int rc = idx_open(path, &f, err, errlen);

  if (rc < 0)
    return rc;
  rc = idx_images_header(f, path, d, err, errlen);
  gzclose(f);
  return rc;
}

int dataset_idx_describe(const dataset_files_t *files, dataset_shape_t *out,
                         char *err, size_t errlen) {
  dataset_t train = {0};
  uint32_t a[3], b[3];
  int rc;

  memset(out, 0, sizeof *out);
  if (files->format != DATASET_FORMAT_IDX) {
    snprintf(err, errlen, "not an IDX dataset");
    return -EINVAL;
  }
  rc = idx_images_dims(files->path[0], a, err, errlen);
  if (rc == 0)
    rc = idx_images_dims(files->path[2], b, err, errlen);
  if (rc == 0 && (a[1] != b[1] || a[2] != b[2])) {
    snprintf(err, errlen, "%s: test images are %ux%u, training images %ux%u",
             files->path[2], b[1], b[2], a[1], a[2]);
    rc = -EINVAL;
  }
  if (rc == 0) {
    train.n = (int)a[0];
    rc = idx_labels_read(files->path[1], train.n, &train.y, err, errlen);
  }
  if (rc == 0) {
    dataset_classes_set(&train);
    out->n_train = (int)a[0];
    out->n_test = (int)b[0];
    out->channels = 1;
    out->height = (int)a[1];
    out->width = (int)a[2];
    out->classes = train.classes;
  }
  dataset_deinit(&train);
  return rc;
}
