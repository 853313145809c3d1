/* SPDX-License-Identifier: MIT */
/* The images the dashboard asks for one by one, kept decoded in memory:
 * the first request for a split of an IDX dataset loads the whole split
 * (a gzipped file would otherwise be inflated up to the sample on every
 * request), later ones copy a sample out. A changed file is loaded
 * again. Thread-safe. */
#ifndef SPK_SERVER_PIXCACHE_H
#define SPK_SERVER_PIXCACHE_H

#include <stddef.h>

#include "../engine/dataset.h"

typedef struct pixcache pixcache_t;

/* Creates an empty cache. Returns 0 or -ENOMEM. */
int pixcache_new(pixcache_t **out);

/* Frees the cache and what it holds; accepts NULL. */
void pixcache_free(pixcache_t *c);

/* As dataset_idx_sample_read (same arguments, results and errors), from
 * the cache; c may be NULL, then it reads the files. */
int pixcache_sample_read(pixcache_t *c, const dataset_files_t *files, int test,
                         int index, dataset_sample_t *out, char *err,
                         size_t errlen);

#endif
