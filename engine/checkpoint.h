/* SPDX-License-Identifier: MIT */
/* Checkpoints: a model's layer list and shapes, its parameters with the
 * optimizer's state, the training position and random states, in one
 * versioned little-endian file closed by a CRC-32. Saving replaces the
 * file atomically; loading checks every byte before it is trusted. */
#ifndef SPK_ENGINE_CHECKPOINT_H
#define SPK_ENGINE_CHECKPOINT_H

#include <stddef.h>

#include "model.h"
#include "optim.h"
#include "rng.h"

/* The format version this build writes; loading refuses newer ones. */
#define CHECKPOINT_VERSION 1

/* The largest checkpoint saved or loaded, in bytes (1 GiB). */
#define CHECKPOINT_MAX_BYTES (1UL << 30)

/* What a checkpoint holds besides the parameters: the description the
 * model was built from (desc, in, classes), the optimizer's settings, the
 * updates done so far, the epochs completed and the trainer's generator
 * (shuffling, say). */
typedef struct {
  model_desc_t desc;
  layer_shape_t in;
  int classes;
  optim_config_t optim;
  long steps;
  int epoch;
  rng_t rng;
} checkpoint_meta_t;

/* Writes model m, built from meta->desc for meta->in and meta->classes,
 * to path: its parameters, momentum and second moments (when allocated),
 * every layer's own generator state, and meta. The bytes go to a
 * temporary file beside path, which is synced and renamed over path, so
 * path always holds a whole checkpoint or the one before. Returns 0,
 * -EINVAL when meta does not describe m or holds values the format
 * refuses (err says which), -EFBIG beyond CHECKPOINT_MAX_BYTES, -ENOMEM,
 * or the negative errno of a failed file operation. */
int checkpoint_save(const char *path, const model_t *m,
                    const checkpoint_meta_t *meta, char *err, size_t errlen);

/* Reads the checkpoint at path, builds its model for batches of up to
 * batch_cap rows run by up to `members` team members, and restores its
 * parameters and state. On success *out is a model the caller frees with
 * model_free and *meta the saved meta; on failure *out is NULL. Returns
 * 0, -ENOENT (and other errno values of open and read) when the file
 * cannot be read, -EISDIR for a directory, -EFBIG beyond
 * CHECKPOINT_MAX_BYTES, -ENOTSUP for a newer format version, -EINVAL for
 * anything else that is not a whole, consistent checkpoint (truncated,
 * corrupt, counts or shapes out of range), -ENOMEM. err names path and
 * the problem. */
int checkpoint_load(const char *path, int batch_cap, int members,
                    checkpoint_meta_t *meta, model_t **out, char *err,
                    size_t errlen);

/* Checks the checkpoint at path as checkpoint_load does (envelope and
 * CRC, every count and shape, a model that can be built from it) without
 * keeping the model, and also that every parameter value is finite, so
 * that a caller can refuse a file before it plans any work on it. Fills
 * *meta on success. Returns 0 or what checkpoint_load returns for a file
 * it refuses; -EINVAL also for a value that is NaN or infinite, err
 * naming its layer and tensor. */
int checkpoint_verify(const char *path, checkpoint_meta_t *meta, char *err,
                      size_t errlen);

/* Restores the checkpoint at path into m, a model of the same
 * architecture (layer kinds, shapes and parameter sizes), and fills *meta.
 * Allocates m's second moments when the file has them and m has not.
 * Returns what checkpoint_load returns; -EINVAL naming the first layer or
 * tensor that differs when m does not match. m is left unchanged by any
 * failure except -ENOMEM, after which it may hold zeroed second moments. */
int checkpoint_load_into(const char *path, model_t *m, checkpoint_meta_t *meta,
                         char *err, size_t errlen);

/* The bytes checkpoint_save would write for m and meta, in a new heap
 * buffer *out of *size bytes that the caller frees. Returns 0, -EINVAL
 * when meta does not describe m, -EFBIG, -ENOMEM. */
int checkpoint_encode(const model_t *m, const checkpoint_meta_t *meta,
                      uint8_t **out, size_t *size, char *err, size_t errlen);

/* checkpoint_load_into for checkpoint bytes in memory: restores buf[0,
 * size) into m, which must have the same architecture. */
int checkpoint_decode_into(const uint8_t *buf, size_t size, model_t *m,
                           checkpoint_meta_t *meta, char *err,
                           size_t errlen);

#endif
