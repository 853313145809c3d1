/* SPDX-License-Identifier: MIT */
/* A few decoded dataset splits, each known by its images file's path and
 * identity (device, inode, size, modification time), replaced oldest
 * first. Loading happens under the cache's lock: requests for a split
 * being loaded wait for it instead of loading it again. */
#include "pixcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#define PIXCACHE_SLOTS 4

typedef struct {
  char path[4096]; /* the images file; "" for an empty slot */
  struct stat id;
  dataset_t ds;
  unsigned long long used; /* when last read, in reads of the cache */
} slot_t;

struct pixcache {
  uv_mutex_t lock;
  slot_t slot[PIXCACHE_SLOTS];
  unsigned long long clock;
};

int pixcache_new(pixcache_t **out) {
  pixcache_t *c = calloc(1, sizeof *c);

  *out = NULL;
  if (!c || uv_mutex_init(&c->lock) != 0) {
    free(c);
    return -ENOMEM;
  }
  *out = c;
  return 0;
}

void pixcache_free(pixcache_t *c) {
  if (!c)
    return;
  for (int i = 0; i < PIXCACHE_SLOTS; i++)
    dataset_deinit(&c->slot[i].ds);
  uv_mutex_destroy(&c->lock);
  free(c);
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
         a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The slot holding the split whose images are at path (identity id),
 * loaded into the least recently used slot when none does; NULL with
 * *rc set when it cannot be loaded. */
static slot_t *slot_get(pixcache_t *c, const char *images, const char *labels,
                        const struct stat *id, int *rc, char *err,
                        size_t errlen) {
  slot_t *s = &c->slot[0];

  for (int i = 0; i < PIXCACHE_SLOTS; i++) {
    slot_t *t = &c->slot[i];
    if (t->path[0] && strcmp(t->path, images) == 0 && same_file(&t->id, id))
      return t;
    if (t->used < s->used)
      s = t;
  }
  dataset_deinit(&s->ds);
  memset(s, 0, sizeof *s);
  *rc = dataset_idx_load(images, labels, &s->ds, err, errlen);
  if (*rc) {
    dataset_deinit(&s->ds);
    memset(s, 0, sizeof *s);
    return NULL;
  }
  snprintf(s->path, sizeof s->path, "%s", images);
  s->id = *id;
  return s;
}

/* Copies sample index of ds, the training (test = 0) or test split,
 * into out. */
static int sample_copy(const dataset_t *ds, int test, int index,
                       dataset_sample_t *out, char *err, size_t errlen) {
  size_t dim = (size_t)ds->channels * ds->height * ds->width;

  if (index < 0 || index >= ds->n) {
    snprintf(err, errlen, "no sample %d: the %s split holds %d (0 to %d)",
             index, test ? "test" : "training", ds->n, ds->n - 1);
    return -ERANGE;
  }
  out->pixels = malloc(dim);
  if (!out->pixels)
    return -ENOMEM;
  memcpy(out->pixels, ds->pixels + (size_t)index * dim, dim);
  out->label = ds->y[index];
  out->channels = ds->channels;
  out->height = ds->height;
  out->width = ds->width;
  return 0;
}

int pixcache_sample_read(pixcache_t *c, const dataset_files_t *files, int test,
                         int index, dataset_sample_t *out, char *err,
                         size_t errlen) {
  const char *images = files->path[test ? 2 : 0];
  struct stat id;
  slot_t *s;
  int rc = 0;

  memset(out, 0, sizeof *out);
  if (!c || files->format != DATASET_FORMAT_IDX || stat(images, &id) != 0)
    return dataset_idx_sample_read(files, test, index, out, err, errlen);
  uv_mutex_lock(&c->lock);
  s = slot_get(c, images, files->path[test ? 3 : 1], &id, &rc, err, errlen);
  if (s)
    rc = sample_copy(&s->ds, test, index, out, err, errlen);
  if (s)
    s->used = ++c->clock;
  uv_mutex_unlock(&c->lock);
  return rc;
}
