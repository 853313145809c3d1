/* SPDX-License-Identifier: MIT */
/* Checkpoints: placeholder until the format lands. */
#ifndef SPK_ENGINE_CHECKPOINT_H
#define SPK_ENGINE_CHECKPOINT_H

#include <stddef.h>

#include "model.h"
#include "optim.h"
#include "rng.h"

typedef struct {
  model_desc_t desc;
  layer_shape_t in;
  int classes;
  optim_config_t optim;
  long steps;
  int epoch;
  rng_t rng;
} checkpoint_meta_t;

int checkpoint_save(const char *path, const model_t *m,
                    const checkpoint_meta_t *meta, char *err, size_t errlen);

#endif
