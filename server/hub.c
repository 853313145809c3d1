/* SPDX-License-Identifier: MIT */
/* Placeholder hub: replaced by the event streams' real one. */
#include "hub.h"

#include <errno.h>
#include <stdlib.h>

struct hub {
  int closed;
};

int hub_new(hub_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : -ENOMEM;
}

void hub_free(hub_t *h) { free(h); }

void hub_publish(hub_t *h) { (void)h; }

void hub_close(hub_t *h) { h->closed = 1; }
