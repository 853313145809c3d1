/* SPDX-License-Identifier: MIT */
/* Checkpoints: the file layout, a writer that encodes every value byte by
 * byte in little-endian order, and a reader that checks the envelope
 * (magic, version, length, CRC) and then every count and shape before it
 * builds or touches a model. Training code decides when to save. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The layout of version 1. Integers are little-endian, floats are their
 * IEEE-754 bits stored the same way; i32 is two's complement.
 *
 *   header   magic "SPKCKPT\0" (8 bytes), version u32, total length u64
 *   model    input c, h, w i32; classes i32; name char[32], NUL-padded;
 *            layer count i32; per layer: kind, units, filters, kernel,
 *            stride, pad i32 and rate f32 as in layer_desc_t, then the
 *            built layer's input and output c, h, w i32
 *   optim    kind i32; lr, momentum, weight_decay f64; batch_size,
 *            schedule, nesterov, decay_bias i32; beta1, beta2, eps,
 *            warmup_epochs f64; step_epochs i32; gamma f64
 *   state    steps i64; epoch i32; trainer generator 4 x u64; count u32
 *            of layer generators, then each: layer index u32, 4 x u64
 *   tensors  count u32; per parameter tensor in model order: element
 *            count n u64, values f32[n], velocity f32[n], second moments
 *            flag u32 (0 or 1), and when 1 the second moments f32[n]
 *   crc      u32: zlib's CRC-32 of every byte before it */

static const uint8_t ckpt_magic[8] = {'S', 'P', 'K', 'C', 'K', 'P', 'T', 0};

#define CKPT_HEADER 20                   /* magic, version, length */
#define CKPT_MIN_BYTES (CKPT_HEADER + 4) /* a header and a CRC */
#define CKPT_MAX_VALUES (1LL << 28)      /* in one sample's shape */
#define CKPT_MAX_CLASSES (1 << 20)
#define CKPT_MAX_TENSORS (2 * MODEL_MAX_LAYERS)

static const char *const kind_names[] = {"dense",   "relu",    "conv2d",
                                         "maxpool", "dropout", "flatten"};

static const char *kind_name(int kind) {
  return kind >= LAYER_DENSE && kind <= LAYER_FLATTEN ? kind_names[kind]
                                                      : "unknown";
}

/* Where messages go: "path: what is wrong", or without the prefix when
 * path is NULL. */
typedef struct {
  const char *path;
  char *err;
  size_t errlen;
} ctx_t;

static int fail(const ctx_t *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the message of fmt into c's buffer and returns rc. */
static int fail(const ctx_t *c, int rc, const char *fmt, ...) {
  char why[400];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (c->errlen == 0)
    return rc;
  if (c->path)
    snprintf(c->err, c->errlen, "%s: %s", c->path, why);
  else
    snprintf(c->err, c->errlen, "%s", why);
  return rc;
}

/* A shape as "HxWxC" in buf, the way layer messages print them. */
static const char *shape_str(char buf[40], layer_shape_t s) {
  snprintf(buf, 40, "%dx%dx%d", s.h, s.w, s.c);
  return buf;
}

static int shape_eq(layer_shape_t a, layer_shape_t b) {
  return a.c == b.c && a.h == b.h && a.w == b.w;
}

/* 1 when every side is positive and the shape holds at most
 * CKPT_MAX_VALUES values. */
static int shape_ok(layer_shape_t s) {
  return s.c >= 1 && s.h >= 1 && s.w >= 1 &&
         (long long)s.c * s.h * s.w <= CKPT_MAX_VALUES;
}

/* Encoding. A writer without a buffer only counts, so one walk over the
 * layout gives the size and a second one the bytes. */

typedef struct {
  uint8_t *buf; /* NULL: count only */
  size_t pos;
} wr_t;

static void put_u32(wr_t *w, uint32_t v) {
  if (w->buf)
    for (int i = 0; i < 4; i++)
      w->buf[w->pos + i] = (uint8_t)(v >> (8 * i));
  w->pos += 4;
}

static void put_u64(wr_t *w, uint64_t v) {
  put_u32(w, (uint32_t)v);
  put_u32(w, (uint32_t)(v >> 32));
}

static void put_i32(wr_t *w, int v) {
  put_u32(w, (uint32_t)v);
}

static void put_f32(wr_t *w, float v) {
  uint32_t bits;

  memcpy(&bits, &v, sizeof bits);
  put_u32(w, bits);
}

static void put_f64(wr_t *w, double v) {
  uint64_t bits;

  memcpy(&bits, &v, sizeof bits);
  put_u64(w, bits);
}

static void put_bytes(wr_t *w, const void *p, size_t n) {
  if (w->buf)
    memcpy(w->buf + w->pos, p, n);
  w->pos += n;
}

static void put_floats(wr_t *w, const float *v, size_t n) {
  if (!w->buf) {
    w->pos += 4 * n;
    return;
  }
  for (size_t i = 0; i < n; i++)
    put_f32(w, v[i]);
}

static void put_shape(wr_t *w, layer_shape_t s) {
  put_i32(w, s.c);
  put_i32(w, s.h);
  put_i32(w, s.w);
}

static void put_rng(wr_t *w, const rng_t *r) {
  for (int i = 0; i < 4; i++)
    put_u64(w, r->s[i]);
}

static void put_layer(wr_t *w, const layer_desc_t *d, const layer_t *l) {
  put_i32(w, d->kind);
  put_i32(w, d->units);
  put_i32(w, d->filters);
  put_i32(w, d->kernel);
  put_i32(w, d->stride);
  put_i32(w, d->pad);
  put_f32(w, d->rate);
  put_shape(w, l->in);
  put_shape(w, l->out);
}

static void put_model(wr_t *w, const model_t *m,
                      const checkpoint_meta_t *meta) {
  char name[MODEL_NAME_MAX] = {0};

  put_shape(w, meta->in);
  put_i32(w, meta->classes);
  memcpy(name, meta->desc.name, strnlen(meta->desc.name, MODEL_NAME_MAX - 1));
  put_bytes(w, name, sizeof name);
  put_i32(w, meta->desc.n_layers);
  for (int i = 0; i < m->n_layers; i++)
    put_layer(w, &meta->desc.layers[i], m->layers[i]);
}

static void put_optim(wr_t *w, const optim_config_t *o) {
  put_i32(w, o->kind);
  put_f64(w, o->lr);
  put_f64(w, o->momentum);
  put_f64(w, o->weight_decay);
  put_i32(w, o->batch_size);
  put_i32(w, o->schedule);
  put_i32(w, o->nesterov);
  put_i32(w, o->decay_bias);
  put_f64(w, o->beta1);
  put_f64(w, o->beta2);
  put_f64(w, o->eps);
  put_f64(w, o->warmup_epochs);
  put_i32(w, o->step_epochs);
  put_f64(w, o->gamma);
}

static void put_state(wr_t *w, const model_t *m,
                      const checkpoint_meta_t *meta) {
  uint32_t n_rngs = 0;

  put_u64(w, (uint64_t)(int64_t)meta->steps);
  put_i32(w, meta->epoch);
  put_rng(w, &meta->rng);
  for (int i = 0; i < m->n_layers; i++)
    n_rngs += m->layers[i]->rng != NULL;
  put_u32(w, n_rngs);
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i]->rng) {
      put_u32(w, (uint32_t)i);
      put_rng(w, m->layers[i]->rng);
    }
}

static void put_tensors(wr_t *w, const model_t *m) {
  put_u32(w, (uint32_t)m->n_params);
  for (int i = 0; i < m->n_params; i++) {
    const optim_param_t *p = m->params[i];
    put_u64(w, p->n);
    put_floats(w, p->value, p->n);
    put_floats(w, p->velocity, p->n);
    put_u32(w, p->m2 != NULL);
    if (p->m2)
      put_floats(w, p->m2, p->n);
  }
}

/* Everything before the CRC; total is the file's length. */
static void put_all(wr_t *w, const model_t *m, const checkpoint_meta_t *meta,
                    uint64_t total) {
  put_bytes(w, ckpt_magic, sizeof ckpt_magic);
  put_u32(w, CHECKPOINT_VERSION);
  put_u64(w, total);
  put_model(w, m, meta);
  put_optim(w, &meta->optim);
  put_state(w, m, meta);
  put_tensors(w, m);
}

/* Decoding. A read past the end yields zeros and sets `over`, which each
 * section checks before it uses what it read. */

typedef struct {
  const uint8_t *buf;
  size_t len, pos;
  int over;
} rd_t;

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
  return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static const uint8_t *get_span(rd_t *r, size_t n) {
  const uint8_t *p;

  if (r->over || n > r->len - r->pos) {
    r->over = 1;
    return NULL;
  }
  p = r->buf + r->pos;
  r->pos += n;
  return p;
}

static uint32_t get_u32(rd_t *r) {
  const uint8_t *p = get_span(r, 4);

  return p ? le32(p) : 0;
}

static uint64_t get_u64(rd_t *r) {
  const uint8_t *p = get_span(r, 8);

  return p ? le64(p) : 0;
}

static int get_i32(rd_t *r) {
  return (int32_t)get_u32(r);
}

static float get_f32(rd_t *r) {
  uint32_t bits = get_u32(r);
  float v;

  memcpy(&v, &bits, sizeof v);
  return v;
}

static double get_f64(rd_t *r) {
  uint64_t bits = get_u64(r);
  double v;

  memcpy(&v, &bits, sizeof v);
  return v;
}

static layer_shape_t get_shape(rd_t *r) {
  layer_shape_t s;

  s.c = get_i32(r);
  s.h = get_i32(r);
  s.w = get_i32(r);
  return s;
}

static void get_rng(rd_t *r, rng_t *out) {
  for (int i = 0; i < 4; i++)
    out->s[i] = get_u64(r);
}

/* n floats stored little-endian at src into dst. */
static void floats_decode(float *dst, const uint8_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits = le32(src + 4 * i);
    memcpy(&dst[i], &bits, sizeof bits);
  }
}

/* What a checkpoint holds, checked, with its tensors still in the file's
 * bytes. */
typedef struct {
  layer_shape_t in, out;
} ckpt_shapes_t;

typedef struct {
  size_t n;
  const uint8_t *value, *velocity;
  const uint8_t *m2; /* NULL when the file has no second moments */
} ckpt_tensor_t;

typedef struct {
  checkpoint_meta_t meta;
  ckpt_shapes_t shapes[MODEL_MAX_LAYERS];
  int n_rngs;
  int rng_layer[MODEL_MAX_LAYERS]; /* increasing layer indices */
  rng_t rngs[MODEL_MAX_LAYERS];
  int n_tensors;
  ckpt_tensor_t tensors[CKPT_MAX_TENSORS];
} ckpt_view_t;

/* Magic, version, length and CRC of the size bytes at b. */
static int envelope_check(const ctx_t *c, const uint8_t *b, size_t size) {
  size_t head = size < sizeof ckpt_magic ? size : sizeof ckpt_magic;
  uint32_t version;
  uint64_t total;

  if (memcmp(b, ckpt_magic, head) != 0)
    return fail(c, -EINVAL, "not a spkd checkpoint (no SPKCKPT magic)");
  if (size < CKPT_MIN_BYTES)
    return fail(c, -EINVAL, "truncated: %zu bytes, shorter than a header",
                size);
  version = le32(b + 8);
  total = le64(b + 12);
  if (version > CHECKPOINT_VERSION)
    return fail(
        c, -ENOTSUP,
        "format version %" PRIu32
        " is newer than this build reads (%d); load it with a newer spkd",
        version, CHECKPOINT_VERSION);
  if (version == 0)
    return fail(c, -EINVAL, "format version 0 is not valid");
  if (total > size)
    return fail(c, -EINVAL,
                "truncated: %zu bytes of the %" PRIu64 " the header announces",
                size, total);
  if (total < size)
    return fail(c, -EINVAL,
                "%zu bytes, more than the %" PRIu64 " the header announces",
                size, total);
  if (crc32(0L, b, (uInt)(size - 4)) != le32(b + size - 4))
    return fail(c, -EINVAL, "checksum mismatch: the file is corrupt");
  return 0;
}

/* One layer's description and built shapes; layers before it are read. */
static int parse_layer(const ctx_t *c, rd_t *r, ckpt_view_t *v, int i) {
  layer_desc_t *d = &v->meta.desc.layers[i];
  ckpt_shapes_t *s = &v->shapes[i];
  layer_shape_t prev = i ? v->shapes[i - 1].out : v->meta.in;
  char a[40], b[40];

  d->kind = get_i32(r);
  d->units = get_i32(r);
  d->filters = get_i32(r);
  d->kernel = get_i32(r);
  d->stride = get_i32(r);
  d->pad = get_i32(r);
  d->rate = get_f32(r);
  s->in = get_shape(r);
  s->out = get_shape(r);
  if (r->over)
    return fail(c, -EINVAL, "ends inside layers[%d]", i);
  if (d->kind < LAYER_DENSE || d->kind > LAYER_FLATTEN)
    return fail(c, -EINVAL, "layers[%d]: unknown kind %d", i, d->kind);
  if (!shape_ok(s->in) || !shape_ok(s->out))
    return fail(c, -EINVAL, "layers[%d] (%s): shape %s -> %s out of range", i,
                kind_name(d->kind), shape_str(a, s->in), shape_str(b, s->out));
  if (!shape_eq(s->in, prev))
    return fail(c, -EINVAL, "layers[%d] (%s): input %s does not follow %s", i,
                kind_name(d->kind), shape_str(a, s->in), shape_str(b, prev));
  return 0;
}

static int parse_model(const ctx_t *c, rd_t *r, ckpt_view_t *v) {
  checkpoint_meta_t *mt = &v->meta;
  const uint8_t *name;
  char a[40];
  int rc = 0;

  mt->in = get_shape(r);
  mt->classes = get_i32(r);
  name = get_span(r, MODEL_NAME_MAX);
  mt->desc.n_layers = get_i32(r);
  if (r->over)
    return fail(c, -EINVAL, "ends inside the model description");
  if (!memchr(name, 0, MODEL_NAME_MAX))
    return fail(c, -EINVAL, "model name is not terminated");
  memcpy(mt->desc.name, name, MODEL_NAME_MAX);
  if (!shape_ok(mt->in))
    return fail(c, -EINVAL, "input shape %s out of range",
                shape_str(a, mt->in));
  if (mt->classes < 1 || mt->classes > CKPT_MAX_CLASSES)
    return fail(c, -EINVAL, "%d classes, outside 1..%d", mt->classes,
                CKPT_MAX_CLASSES);
  if (mt->desc.n_layers < 1 || mt->desc.n_layers > MODEL_MAX_LAYERS)
    return fail(c, -EINVAL, "%d layers, outside 1..%d", mt->desc.n_layers,
                MODEL_MAX_LAYERS);
  for (int i = 0; rc == 0 && i < mt->desc.n_layers; i++)
    rc = parse_layer(c, r, v, i);
  return rc;
}

/* The settings the format accepts, on saving and loading alike. */
static int optim_check(const ctx_t *c, const optim_config_t *o) {
  static const char *const names[] = {
      "lr",    "momentum", "weight_decay",  "beta1",
      "beta2", "eps",      "warmup_epochs", "gamma"};
  const double v[] = {o->lr,    o->momentum, o->weight_decay,  o->beta1,
                      o->beta2, o->eps,      o->warmup_epochs, o->gamma};

  if (o->kind < OPTIM_SGD || o->kind > OPTIM_ADAMW)
    return fail(c, -EINVAL, "unknown optimizer kind %d", o->kind);
  if (o->schedule < OPTIM_SCHEDULE_CONSTANT ||
      o->schedule > OPTIM_SCHEDULE_STEP)
    return fail(c, -EINVAL, "unknown schedule %d", o->schedule);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (!isfinite(v[i]))
      return fail(c, -EINVAL, "optimizer %s is not finite", names[i]);
  return 0;
}

static int parse_optim(const ctx_t *c, rd_t *r, optim_config_t *o) {
  o->kind = get_i32(r);
  o->lr = get_f64(r);
  o->momentum = get_f64(r);
  o->weight_decay = get_f64(r);
  o->batch_size = get_i32(r);
  o->schedule = get_i32(r);
  o->nesterov = get_i32(r);
  o->decay_bias = get_i32(r);
  o->beta1 = get_f64(r);
  o->beta2 = get_f64(r);
  o->eps = get_f64(r);
  o->warmup_epochs = get_f64(r);
  o->step_epochs = get_i32(r);
  o->gamma = get_f64(r);
  if (r->over)
    return fail(c, -EINVAL, "ends inside the optimizer settings");
  return optim_check(c, o);
}

/* The n layer generators after the trainer's, each naming its layer. */
static int parse_layer_rngs(const ctx_t *c, rd_t *r, ckpt_view_t *v,
                            uint32_t n) {
  uint32_t layers = (uint32_t)v->meta.desc.n_layers;

  if (n > layers)
    return fail(c, -EINVAL, "%" PRIu32 " layer generators for %d layers", n,
                v->meta.desc.n_layers);
  for (uint32_t j = 0; j < n; j++) {
    uint32_t layer = get_u32(r);
    get_rng(r, &v->rngs[j]);
    if (r->over)
      return fail(c, -EINVAL, "ends inside the layer generators");
    if (layer >= layers || (j > 0 && layer <= (uint32_t)v->rng_layer[j - 1]))
      return fail(c, -EINVAL,
                  "layer generator %" PRIu32 " names layers[%" PRIu32
                  "], out of range or order",
                  j, layer);
    v->rng_layer[j] = (int)layer;
  }
  v->n_rngs = (int)n;
  return 0;
}

/* Steps, epoch and the generators; the layer list is read. */
static int parse_state(const ctx_t *c, rd_t *r, ckpt_view_t *v) {
  int64_t steps = (int64_t)get_u64(r);
  uint32_t n;

  v->meta.epoch = get_i32(r);
  get_rng(r, &v->meta.rng);
  n = get_u32(r);
  if (r->over)
    return fail(c, -EINVAL, "ends inside the training state");
  if (steps < 0 || steps > LONG_MAX || v->meta.epoch < 0)
    return fail(c, -EINVAL, "step count %" PRId64 " or epoch %d negative",
                steps, v->meta.epoch);
  v->meta.steps = (long)steps;
  return parse_layer_rngs(c, r, v, n);
}

static int parse_tensor(const ctx_t *c, rd_t *r, ckpt_tensor_t *t, int i) {
  uint64_t n = get_u64(r);
  uint32_t flag;

  if (r->over)
    return fail(c, -EINVAL, "ends inside tensors[%d]", i);
  /* Values and velocity alone take 8 bytes per element. */
  if (n > (r->len - r->pos) / 8)
    return fail(c, -EINVAL,
                "tensors[%d] claims %" PRIu64
                " values, more than the file holds",
                i, n);
  t->n = (size_t)n;
  t->value = get_span(r, 4 * t->n);
  t->velocity = get_span(r, 4 * t->n);
  flag = get_u32(r);
  if (flag > 1)
    return fail(c, -EINVAL, "tensors[%d]: second-moment flag %" PRIu32, i,
                flag);
  t->m2 = flag ? get_span(r, 4 * t->n) : NULL;
  if (r->over)
    return fail(c, -EINVAL, "ends inside tensors[%d]", i);
  return 0;
}

static int parse_tensors(const ctx_t *c, rd_t *r, ckpt_view_t *v) {
  uint32_t n = get_u32(r);
  int rc = 0;

  if (r->over)
    return fail(c, -EINVAL, "ends before the parameter tensors");
  if (n > CKPT_MAX_TENSORS)
    return fail(c, -EINVAL, "%" PRIu32 " parameter tensors, more than %d", n,
                CKPT_MAX_TENSORS);
  v->n_tensors = (int)n;
  for (int i = 0; rc == 0 && i < v->n_tensors; i++)
    rc = parse_tensor(c, r, &v->tensors[i], i);
  return rc;
}

/* The sizes of the tensors layer i of v's description gets when built on
 * its recorded input: how many tensors, sizes in want. Values that
 * overflow give SIZE_MAX, which no file can match. */
static int layer_tensor_sizes(const ckpt_view_t *v, int i, size_t want[2]) {
  const layer_desc_t *d = &v->meta.desc.layers[i];
  layer_shape_t in = v->shapes[i].in;
  size_t w;

  if (d->kind == LAYER_DENSE) {
    int units = d->units == MODEL_CLASSES ? v->meta.classes : d->units;
    if (units < 1 ||
        __builtin_mul_overflow((size_t)in.c * in.h * in.w, (size_t)units, &w))
      w = SIZE_MAX;
    want[0] = w;
    want[1] = units < 1 ? SIZE_MAX : (size_t)units;
    return 2;
  }
  if (d->kind == LAYER_CONV2D) {
    if (d->filters < 1 || d->kernel < 1 ||
        __builtin_mul_overflow((size_t)d->kernel, (size_t)d->kernel, &w) ||
        __builtin_mul_overflow(w, (size_t)in.c * d->filters, &w))
      w = SIZE_MAX;
    want[0] = w;
    want[1] = d->filters < 1 ? SIZE_MAX : (size_t)d->filters;
    return 2;
  }
  return 0;
}

/* Tensor j of layer i, the file's tensors[t], against the want values
 * the layer's description needs. */
static int tensor_expect(const ctx_t *c, const ckpt_view_t *v, int i, int j,
                         int t, size_t want) {
  const char *kind = kind_name(v->meta.desc.layers[i].kind);

  if (t >= v->n_tensors)
    return fail(c, -EINVAL, "layers[%d] (%s) tensor %d: missing from the file",
                i, kind, j);
  if (v->tensors[t].n != want)
    return fail(c, -EINVAL,
                "layers[%d] (%s) tensor %d: %zu values in the file, its "
                "description needs %zu",
                i, kind, j, v->tensors[t].n, want);
  return 0;
}

/* Checks that v's description, built, has exactly v's tensor sizes and
 * ends in the class count, so that building it allocates no more
 * parameters than the file holds. */
static int plan_check(const ctx_t *c, const ckpt_view_t *v) {
  int n = v->meta.desc.n_layers, t = 0, rc = 0;
  const ckpt_shapes_t *last = &v->shapes[n - 1];
  char a[40];

  for (int i = 0; rc == 0 && i < n; i++) {
    size_t want[2];
    int k = layer_tensor_sizes(v, i, want);
    for (int j = 0; rc == 0 && j < k; j++, t++)
      rc = tensor_expect(c, v, i, j, t, want[j]);
  }
  if (rc)
    return rc;
  if (t != v->n_tensors)
    return fail(c, -EINVAL, "%d parameter tensors, its layers have %d",
                v->n_tensors, t);
  if ((long long)last->out.c * last->out.h * last->out.w != v->meta.classes)
    return fail(c, -EINVAL, "layers[%d] (%s): output %s, not the %d classes",
                n - 1, kind_name(v->meta.desc.layers[n - 1].kind),
                shape_str(a, last->out), v->meta.classes);
  return 0;
}

/* Parses and checks the size bytes at buf into v, which then points into
 * buf. */
static int buffer_parse(const ctx_t *c, const uint8_t *buf, size_t size,
                        ckpt_view_t *v) {
  rd_t r;
  int rc = envelope_check(c, buf, size);

  if (rc)
    return rc;
  memset(v, 0, sizeof *v);
  r = (rd_t){buf, size - 4, CKPT_HEADER, 0};
  if ((rc = parse_model(c, &r, v)) ||
      (rc = parse_optim(c, &r, &v->meta.optim)) ||
      (rc = parse_state(c, &r, v)) || (rc = parse_tensors(c, &r, v)))
    return rc;
  if (r.pos != r.len)
    return fail(c, -EINVAL, "%zu unexpected bytes before the checksum",
                r.len - r.pos);
  return plan_check(c, v);
}

/* The layer of v that owns tensor t, in the order layers own their
 * parameters, and the tensor's index within that layer in *j. */
static int tensor_owner(const ckpt_view_t *v, int t, int *j) {
  int first = 0;

  for (int i = 0; i < v->meta.desc.n_layers; i++) {
    size_t want[2];
    int k = layer_tensor_sizes(v, i, want);
    if (t < first + k) {
      *j = t - first;
      return i;
    }
    first += k;
  }
  *j = t - first;
  return v->meta.desc.n_layers - 1;
}

/* Checks that every parameter value of v is finite (momentum and second
 * moments are left alone: a loaded model only runs forward), naming the
 * first that is not. */
static int values_check(const ctx_t *c, const ckpt_view_t *v) {
  for (int t = 0; t < v->n_tensors; t++) {
    const ckpt_tensor_t *x = &v->tensors[t];
    for (size_t i = 0; i < x->n; i++) {
      uint32_t bits = le32(x->value + 4 * i);
      int j, layer;
      if ((bits & 0x7f800000u) != 0x7f800000u)
        continue;
      layer = tensor_owner(v, t, &j);
      return fail(c, -EINVAL,
                  "layers[%d] (%s) tensor %d: value %zu of %zu is %s; the "
                  "weights are not finite",
                  layer, kind_name(v->meta.desc.layers[layer].kind), j, i, x->n,
                  bits & 0x007fffffu ? "NaN" : "infinite");
    }
  }
  return 0;
}

/* Layer i of m against the file's: kind, shapes, tensor sizes from
 * tensors[*t] on, generator; advances *t and *g past the layer's. */
static int layer_match(const ctx_t *c, const ckpt_view_t *v, const model_t *m,
                       int i, int *t, int *g) {
  const layer_t *l = m->layers[i];
  const char *kind = kind_name(v->meta.desc.layers[i].kind);
  int has_rng = *g < v->n_rngs && v->rng_layer[*g] == i;
  char a[40], b[40], x[40], y[40];

  if (strcmp(l->ops->kind, kind) != 0)
    return fail(c, -EINVAL, "layers[%d]: %s in the file, %s in the model", i,
                kind, l->ops->kind);
  if (!shape_eq(l->in, v->shapes[i].in) || !shape_eq(l->out, v->shapes[i].out))
    return fail(c, -EINVAL,
                "layers[%d] (%s): %s -> %s in the file, %s -> %s in the model",
                i, kind, shape_str(a, v->shapes[i].in),
                shape_str(b, v->shapes[i].out), shape_str(x, l->in),
                shape_str(y, l->out));
  for (int j = 0; j < l->n_params; j++, (*t)++) {
    if (*t >= v->n_tensors)
      return fail(c, -EINVAL,
                  "layers[%d] (%s) tensor %d: in the model, not in the file", i,
                  kind, j);
    if (v->tensors[*t].n != l->params[j].n)
      return fail(
          c, -EINVAL,
          "layers[%d] (%s) tensor %d: %zu values in the file, %zu in the model",
          i, kind, j, v->tensors[*t].n, l->params[j].n);
  }
  if (has_rng != (l->rng != NULL))
    return fail(c, -EINVAL,
                "layers[%d] (%s): random state %s the file, %s the model", i,
                kind, has_rng ? "in" : "not in", l->rng ? "in" : "not in");
  *g += has_rng;
  return 0;
}

/* Checks that m has the architecture v describes, naming the first layer
 * or tensor that differs. */
static int model_match(const ctx_t *c, const ckpt_view_t *v, const model_t *m) {
  int n =
      v->meta.desc.n_layers < m->n_layers ? v->meta.desc.n_layers : m->n_layers;
  int t = 0, g = 0, rc = 0;

  for (int i = 0; rc == 0 && i < n; i++)
    rc = layer_match(c, v, m, i, &t, &g);
  if (rc)
    return rc;
  if (v->meta.desc.n_layers != m->n_layers)
    return fail(c, -EINVAL, "layers[%d]: the file has %d layers, the model %d",
                n, v->meta.desc.n_layers, m->n_layers);
  if (t != v->n_tensors)
    return fail(c, -EINVAL, "the file has %d parameter tensors, the model %d",
                v->n_tensors, t);
  return 0;
}

/* Copies v's tensors and generators into m, which matches v. Second
 * moments are allocated first, so that nothing is written when memory
 * runs out. */
static int state_apply(const ctx_t *c, const ckpt_view_t *v, model_t *m) {
  for (int i = 0; i < v->n_tensors; i++) {
    optim_param_t *p = m->params[i];
    if (v->tensors[i].m2 && !p->m2 &&
        !(p->m2 = calloc(p->n ? p->n : 1, sizeof(float))))
      return fail(c, -ENOMEM, "out of memory for second moments");
  }
  for (int i = 0; i < v->n_tensors; i++) {
    const ckpt_tensor_t *t = &v->tensors[i];
    optim_param_t *p = m->params[i];
    floats_decode(p->value, t->value, t->n);
    floats_decode(p->velocity, t->velocity, t->n);
    if (t->m2)
      floats_decode(p->m2, t->m2, t->n);
    else if (p->m2)
      memset(p->m2, 0, sizeof(float) * t->n);
  }
  for (int j = 0; j < v->n_rngs; j++)
    *m->layers[v->rng_layer[j]]->rng = v->rngs[j];
  return 0;
}

/* Files. */

static int write_all(int fd, const uint8_t *buf, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, buf, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    buf += n;
    size -= (size_t)n;
  }
  return 0;
}

/* Syncs the directory holding path, so that a rename in it survives a
 * power loss. Failure is ignored: the file under its name is whole either
 * way, only its durability is weaker. */
static void dir_sync(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX];
  int fd;

  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path),
             path);
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Writes size bytes to a temporary file beside c->path, syncs it and
 * renames it over c->path. The temporary name is unique to the calling
 * thread. */
static int file_replace(const ctx_t *c, const uint8_t *buf, size_t size) {
  char tmp[PATH_MAX];
  int fd, rc;

  if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%ld", c->path, (long)getpid(),
               (long)gettid()) >= (int)sizeof tmp)
    return fail(c, -ENAMETOOLONG, "path too long");
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    return fail(c, -errno, "cannot create %s: %s", tmp, strerror(errno));
  rc = write_all(fd, buf, size);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, c->path) != 0)
    rc = -errno;
  if (rc) {
    unlink(tmp);
    return fail(c, rc, "cannot write the checkpoint: %s", strerror(-rc));
  }
  dir_sync(c->path);
  return 0;
}

static int read_all(int fd, uint8_t *buf, size_t size) {
  size_t got = 0;

  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ENODATA;
    got += (size_t)n;
  }
  return 0;
}

/* Checks what fstat says of the file before reading it. */
static int stat_check(const ctx_t *c, const struct stat *st) {
  if (S_ISDIR(st->st_mode))
    return fail(c, -EISDIR, "is a directory, not a checkpoint");
  if (!S_ISREG(st->st_mode))
    return fail(c, -EINVAL, "not a regular file");
  if (st->st_size == 0)
    return fail(c, -EINVAL, "empty file, not a checkpoint");
  if ((unsigned long long)st->st_size > CHECKPOINT_MAX_BYTES)
    return fail(c, -EFBIG, "%lld bytes, more than a checkpoint may hold",
                (long long)st->st_size);
  return 0;
}

/* Reads the whole file at c->path into *buf (freed by the caller, also
 * on failure) and its size into *size. */
static int file_read(const ctx_t *c, uint8_t **buf, size_t *size) {
  struct stat st;
  int fd = open(c->path, O_RDONLY | O_CLOEXEC);
  int rc;

  *buf = NULL;
  if (fd < 0)
    return fail(c, -errno, "cannot open: %s", strerror(errno));
  if (fstat(fd, &st) != 0)
    rc = fail(c, -errno, "cannot stat: %s", strerror(errno));
  else
    rc = stat_check(c, &st);
  if (rc == 0) {
    *size = (size_t)st.st_size;
    *buf = malloc(*size);
    rc = *buf ? read_all(fd, *buf, *size) : -ENOMEM;
    if (rc == -ENODATA)
      fail(c, rc, "shrank while being read");
    else if (rc)
      fail(c, rc, "cannot read: %s", strerror(-rc));
  }
  close(fd);
  return rc;
}

/* The file at c->path, read and checked into v; *buf holds the bytes v
 * points into and is freed by the caller. */
static int file_parse(const ctx_t *c, uint8_t **buf, ckpt_view_t *v) {
  size_t size = 0;
  int rc = file_read(c, buf, &size);

  return rc ? rc : buffer_parse(c, *buf, size, v);
}

/* Saving. */

/* Encodes m and meta into a new buffer *out of *size bytes. */
static int encode(const ctx_t *c, const model_t *m,
                  const checkpoint_meta_t *meta, uint8_t **out, size_t *size) {
  wr_t w = {NULL, 0};

  put_all(&w, m, meta, 0);
  *size = w.pos + 4;
  if (*size > CHECKPOINT_MAX_BYTES)
    return fail(c, -EFBIG, "%zu bytes, more than a checkpoint may hold", *size);
  w = (wr_t){malloc(*size), 0};
  *out = w.buf;
  if (!w.buf)
    return fail(c, -ENOMEM, "out of memory for %zu bytes", *size);
  put_all(&w, m, meta, *size);
  put_u32(&w, (uint32_t)crc32(0L, w.buf, (uInt)(*size - 4)));
  return 0;
}

/* Reads the encoded bytes back as a loader would and checks them against
 * m, so that no file is written that loading would refuse. */
static int encoded_check(const ctx_t *c, const uint8_t *buf, size_t size,
                         const model_t *m) {
  char why[400];
  ctx_t inner = {NULL, why, sizeof why};
  ckpt_view_t v;
  int rc = buffer_parse(&inner, buf, size, &v);

  if (rc == 0)
    rc = model_match(&inner, &v, m);
  if (rc)
    return fail(c, rc, "not saved: %s", why);
  return 0;
}

int checkpoint_save(const char *path, const model_t *m,
                    const checkpoint_meta_t *meta, char *err, size_t errlen) {
  ctx_t c = {path, err, errlen};
  uint8_t *buf = NULL;
  size_t size = 0;
  int rc;

  if (meta->desc.n_layers != m->n_layers)
    return fail(&c, -EINVAL, "meta describes %d layers, the model has %d",
                meta->desc.n_layers, m->n_layers);
  rc = encode(&c, m, meta, &buf, &size);
  if (rc == 0)
    rc = encoded_check(&c, buf, size, m);
  if (rc == 0)
    rc = file_replace(&c, buf, size);
  free(buf);
  return rc;
}

int checkpoint_encode(const model_t *m, const checkpoint_meta_t *meta,
                      uint8_t **out, size_t *size, char *err,
                      size_t errlen) {
  ctx_t c = {NULL, err, errlen};
  int rc;

  *out = NULL;
  *size = 0;
  if (meta->desc.n_layers != m->n_layers)
    return fail(&c, -EINVAL, "meta describes %d layers, the model has %d",
                meta->desc.n_layers, m->n_layers);
  rc = encode(&c, m, meta, out, size);
  if (rc) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

/* Loading. */

/* Builds v's model for batch_cap rows and `members` members; the initial
 * weights it draws are overwritten by the file's. */
static int model_build(const ctx_t *c, const ckpt_view_t *v, int batch_cap,
                       int members, model_t **out) {
  rng_t init;
  model_env_t env = {v->meta.in, v->meta.classes, batch_cap, members, &init, 0};
  char why[300];
  int rc;

  rng_init(&init, 0, 0);
  rc = model_new(&v->meta.desc, &env, out, why, sizeof why);
  return rc ? fail(c, rc, "cannot build its model: %s", why) : 0;
}

int checkpoint_load(const char *path, int batch_cap, int members,
                    checkpoint_meta_t *meta, model_t **out, char *err,
                    size_t errlen) {
  ctx_t c = {path, err, errlen};
  ckpt_view_t v;
  uint8_t *buf = NULL;
  model_t *m = NULL;
  int rc;

  *out = NULL;
  if (batch_cap < 1 || members < 1)
    return fail(&c, -EINVAL, "batch capacity %d or members %d below 1",
                batch_cap, members);
  rc = file_parse(&c, &buf, &v);
  if (rc == 0)
    rc = model_build(&c, &v, batch_cap, members, &m);
  if (rc == 0)
    rc = model_match(&c, &v, m);
  if (rc == 0)
    rc = state_apply(&c, &v, m);
  if (rc == 0) {
    *meta = v.meta;
    *out = m;
    m = NULL;
  }
  model_free(m);
  free(buf);
  return rc;
}

int checkpoint_load_into(const char *path, model_t *m, checkpoint_meta_t *meta,
                         char *err, size_t errlen) {
  ctx_t c = {path, err, errlen};
  ckpt_view_t v;
  uint8_t *buf = NULL;
  int rc = file_parse(&c, &buf, &v);

  if (rc == 0)
    rc = model_match(&c, &v, m);
  if (rc == 0)
    rc = state_apply(&c, &v, m);
  if (rc == 0)
    *meta = v.meta;
  free(buf);
  return rc;
}

int checkpoint_decode_into(const uint8_t *buf, size_t size, model_t *m,
                           checkpoint_meta_t *meta, char *err,
                           size_t errlen) {
  ctx_t c = {NULL, err, errlen};
  ckpt_view_t v;
  int rc = buffer_parse(&c, buf, size, &v);

  if (rc == 0)
    rc = model_match(&c, &v, m);
  if (rc == 0)
    rc = state_apply(&c, &v, m);
  if (rc == 0)
    *meta = v.meta;
  return rc;
}

int checkpoint_verify(const char *path, checkpoint_meta_t *meta, char *err,
                      size_t errlen) {
  ctx_t c = {path, err, errlen};
  ckpt_view_t v;
  uint8_t *buf = NULL;
  model_t *m = NULL;
  int rc = file_parse(&c, &buf, &v);

  if (rc == 0)
    rc = values_check(&c, &v);
  if (rc == 0)
    rc = model_build(&c, &v, 1, 1, &m);
  if (rc == 0)
    rc = model_match(&c, &v, m);
  if (rc == 0)
    *meta = v.meta;
  model_free(m);
  free(buf);
  return rc;
}
