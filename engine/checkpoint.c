/* SPDX-License-Identifier: MIT */
/* Checkpoints: placeholder until the format lands. */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>

int checkpoint_save(const char *path, const model_t *m,
                    const checkpoint_meta_t *meta, char *err, size_t errlen) {
  (void)m;
  (void)meta;
  snprintf(err, errlen, "%s: checkpoints are not written yet", path);
  return -ENOSYS;
}
