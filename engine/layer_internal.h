/* SPDX-License-Identifier: MIT */
/* What the layer files share and nobody outside engine/ sees: building a
 * layer's common part, allocating parameters, splitting work into shares,
 * and the builder of each kind (dense.c, conv.c, pool.c, dropout.c). */
#ifndef SPK_ENGINE_LAYER_INTERNAL_H
#define SPK_ENGINE_LAYER_INTERNAL_H

#include "layers.h"

/* A zeroed layer with ops and shapes set, sized by env; NULL when memory
 * runs out. */
layer_t *layer_alloc(const layer_ops_t *ops, layer_shape_t in,
                     layer_shape_t out, const layer_env_t *env);

/* Allocates parameter i of l with n values (zeroed), gradient and
 * momentum; decay marks a weight tensor. Returns 0 or -ENOMEM. */
int layer_param_alloc(layer_t *l, int i, size_t n, int decay);

/* Draws a dense or conv layer's weights (params[0]) and then its biases
 * (params[1]) uniformly from (-1/sqrt(fan_in), 1/sqrt(fan_in)). Chosen
 * over He-normal weights with zero biases on the validation accuracy of
 * the sym40 job's baseline (0.538 against 0.533, mean of two seeds). */
void layer_param_init(layer_t *l, int fan_in, rng_t *rng);

/* The share of n items that member `member` of `size` takes:
 * [*lo, *hi), contiguous, sizes differing by at most one. */
void layer_share(int n, int member, int size, int *lo, int *hi);

/* The builders of each kind; same contract as layer_new. */
int layer_dense_build(const layer_desc_t *d, layer_shape_t in,
                      const layer_env_t *env, layer_t **out, char *err,
                      size_t errlen);
int layer_relu_build(const layer_desc_t *d, layer_shape_t in,
                     const layer_env_t *env, layer_t **out, char *err,
                     size_t errlen);
int layer_flatten_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen);
int layer_conv2d_build(const layer_desc_t *d, layer_shape_t in,
                       const layer_env_t *env, layer_t **out, char *err,
                       size_t errlen);
int layer_maxpool_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen);
int layer_dropout_build(const layer_desc_t *d, layer_shape_t in,
                        const layer_env_t *env, layer_t **out, char *err,
                        size_t errlen);

/* Makes the next training batch of dropout layer l use mask (n rows of
 * in_dim values, nonzero keeps) instead of drawing one: the next prepare
 * in training keeps it. For tests; n must not exceed batch_cap. */
void layer_dropout_mask_set(layer_t *l, const uint8_t *mask, int n);

/* The generator dropout layer l draws its masks from, so that a
 * checkpoint can save and restore it; NULL when l is not dropout. */
rng_t *layer_dropout_rng(layer_t *l);

#endif
