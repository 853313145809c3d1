/* SPDX-License-Identifier: MIT */
/* Placeholder counters: replaced by the real ones. */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
  int unused;
};

int metrics_new(metrics_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : -ENOMEM;
}

void metrics_free(metrics_t *m) { free(m); }

void metrics_http_observe(metrics_t *m, const char *route, int status,
                          double seconds) {
  (void)m, (void)route, (void)status, (void)seconds;
}

void metrics_epoch_add(metrics_t *m, long long samples) {
  (void)m, (void)samples;
}

int metrics_render(metrics_t *m, db_t *db, char **out, char *err,
                   size_t errlen) {
  (void)m, (void)db, (void)err, (void)errlen;
  *out = strdup("");
  return *out ? 0 : -ENOMEM;
}
