/* SPDX-License-Identifier: MIT */
/* The daemon's counters for GET /metrics: HTTP requests by route and
 * status, a request latency histogram, epochs and samples trained. Every
 * call is thread-safe; the text exposition (Prometheus format) is built
 * by metrics_render, which reads job counts from storage. */
#ifndef SPK_SERVER_METRICS_H
#define SPK_SERVER_METRICS_H

#include <stddef.h>

#include "../storage/db.h"

typedef struct metrics metrics_t;

/* Creates an empty set of counters. Returns 0 or -ENOMEM. */
int metrics_new(metrics_t **out);

/* Frees the counters; accepts NULL. */
void metrics_free(metrics_t *m);

/* Counts one answered HTTP request: route is the route's pattern as the
 * API describes it ("/v1/jobs/{id}", "static", "unrouted"), a string
 * that outlives m; status the HTTP status; seconds from its first byte
 * to its answer. Accepts m == NULL (no-op). */
void metrics_http_observe(metrics_t *m, const char *route, int status,
                          double seconds);

/* Counts one trained epoch of samples samples. Accepts m == NULL. */
void metrics_epoch_add(metrics_t *m, long long samples);

/* Writes the exposition into a new string *out (caller frees): every
 * family with its HELP and TYPE once, the jobs by state read through db.
 * Returns 0 or a negative errno code with err set. */
int metrics_render(metrics_t *m, db_t *db, char **out, char *err,
                   size_t errlen);

#endif
