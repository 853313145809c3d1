/* SPDX-License-Identifier: MIT */
/* Job specs: reads the JSON a user submits, strictly, into a
 * pipeline_spec_t. Each section has a short reader built from typed helpers
 * ("an optional integer in [lo, hi] at this path"); whether the named
 * dataset and a teacher's checkpoint file exist, and whether a custom
 * model's layers fit its shape, is left to the caller. */
#include "spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../engine/model.h"

#define SPEC_TEXT_MAX (1024 * 1024)
#define SPEC_U53_MAX ((1LL << 53) - 1)
#define SPEC_PATH_MAX sizeof(((spec_error_t *)0)->field)
#define SPEC_SCAN_DEPTH 16
#define SPEC_NAME_CHARS 100
#define SPEC_DATASET_CHARS 64
#define SPEC_EPOCHS_MAX 1000

/* The most a layer's kernel, stride or padding may be. */
#define SPEC_LAYER_SIDE_MAX 64

/* An object of the spec being read. obj is NULL when the section is
 * absent: every reader then leaves its default in place. */
typedef struct {
  json_t *obj;
  spec_error_t *err;
  char path[SPEC_PATH_MAX];
} spec_obj_t;

/* An interval of numbers; an open end excludes its bound. */
typedef struct {
  double lo, hi;
  int lo_open, hi_open;
} spec_range_t;

/* The keys each object of the spec accepts. */
static const char *const root_keys[] = {
    "name",    "seed",      "threads", "parallel_stages", "priority",
    "dataset", "optimizer", "spl",     "teachers",        "combine",
    "student", "baseline",  NULL};
static const char *const dataset_keys[] = {
    "name", "limit", "validation_fraction", "label_noise", "normalize", NULL};
static const char *const noise_keys[] = {"kind", "rate", "seed", NULL};
static const char *const optim_keys[] = {
    "kind",        "lr",       "momentum", "weight_decay",
    "batch_size",  "schedule", "nesterov", "decay_bias",
    "beta1",       "beta2",    "eps",      "warmup_epochs",
    "step_epochs", "gamma",    NULL};
static const char *const spl_keys[] = {
    "model",     "epochs",    "warmup_epochs", "optimizer",
    "pace",      "score",     "score_pass",    "per_class",
    "weighting", "mix_ratio", "final_set",     NULL};
static const char *const pace_keys[] = {
    "kind", "start", "end", "curve", "lambda", "growth", "clean_below", NULL};
static const char *const final_keys[] = {"statistic", "last_epochs", NULL};
static const char *const stage_keys[] = {"model", "epochs", "optimizer", NULL};
static const char *const teacher_keys[] = {"model", "epochs",     "optimizer",
                                           "seed",  "checkpoint", NULL};
static const char *const student_keys[] = {
    "model",       "epochs",       "optimizer",      "kd",
    "spl_weights", "weights_from", "representation", NULL};
static const char *const kd_keys[] = {"alpha", "temperature", NULL};
static const char *const hint_keys[] = {"teacher_layer", "student_layer",
                                        "beta", NULL};
static const char *const model_keys[] = {"layers", NULL};

/* Allowed strings; a value is read as its index in the list. */
static const char *const optim_kinds[] = {"sgd", "adam", "adamw", NULL};
static const char *const schedules[] = {"constant", "cosine", "step", NULL};
static const char *const pace_kinds[] = {"fraction", "threshold", "auto", NULL};
/* These follow the order of engine/spl.h's enums. */
static const char *const score_kinds[] = {"loss", "confidence", "entropy",
                                          "margin", NULL};
static const char *const score_passes[] = {"eval", "train", NULL};
static const char *const curves[] = {"linear", "root", "geometric", NULL};
static const char *const weightings[] = {"hard", "linear", "logarithmic",
                                         "mixture", NULL};
static const char *const final_stats[] = {"mean_loss", "last_loss",
                                          "mean_confidence", NULL};
/* These follow the order of engine/pipeline.h's enums. */
static const char *const combines[] = {"mean", "confidence", NULL};
static const char *const student_weights[] = {"ce", "all", "none", NULL};
static const char *const weights_froms[] = {"spl", "self", NULL};

/* Allowed strings read as the value at the same index of a second list. */
static const char *const noise_kinds[] = {"symmetric", "pair", NULL};
static const int noise_values[] = {PIPELINE_NOISE_SYMMETRIC,
                                   PIPELINE_NOISE_PAIR};
static const char *const norm_kinds[] = {"standardize", "scale", NULL};
static const int norm_values[] = {DATASET_NORM_STANDARDIZE, DATASET_NORM_SCALE};

_Static_assert(OPTIM_SGD == 0 && OPTIM_ADAM == 1 && OPTIM_ADAMW == 2,
               "optim_kinds follows the OPTIM_ order");
_Static_assert(OPTIM_SCHEDULE_CONSTANT == 0 && OPTIM_SCHEDULE_COSINE == 1 &&
                   OPTIM_SCHEDULE_STEP == 2,
               "schedules follows the OPTIM_SCHEDULE_ order");
_Static_assert(SPL_PACE_FRACTION == 0 && SPL_PACE_THRESHOLD == 1 &&
                   SPL_PACE_AUTO == 2,
               "pace_kinds follows the SPL_PACE_ order");
_Static_assert(PIPELINE_COMBINE_MEAN == 0 && PIPELINE_COMBINE_CONFIDENCE == 1,
               "combines follows the PIPELINE_COMBINE_ order");
_Static_assert(PIPELINE_WEIGHTS_CE == 0 && PIPELINE_WEIGHTS_ALL == 1 &&
                   PIPELINE_WEIGHTS_NONE == 2,
               "student_weights follows the PIPELINE_WEIGHTS_ order");
_Static_assert(PIPELINE_FROM_SPL == 0 && PIPELINE_FROM_SELF == 1,
               "weights_froms follows the PIPELINE_FROM_ order");

/* What a step schedule drops by, and how often, unless the spec says. */
#define SPEC_STEP_EPOCHS 10
#define SPEC_STEP_GAMMA 0.1

/* Cuts s before a final UTF-8 sequence that truncation left incomplete,
 * so that field and message always stay valid UTF-8. */
static void spec_utf8_trim(char *s) {
  size_t n = strlen(s), i = n, need;
  unsigned char lead;

  while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
    i--;
  if (i == 0 || (unsigned char)s[i - 1] < 0x80)
    return;
  lead = (unsigned char)s[i - 1];
  need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  if (n - (i - 1) < need)
    s[i - 1] = '\0';
}

/* Fills err: field is path, message is path followed by the formatted
 * sentence (the sentence alone when path is empty). Returns -EINVAL. */
static int spec_vfail(spec_error_t *err, const char *path, const char *fmt,
                      va_list ap) {
  int n = 0;

  snprintf(err->field, sizeof err->field, "%s", path);
  if (path[0])
    n = snprintf(err->message, sizeof err->message, "%s ", path);
  if (n >= 0 && (size_t)n < sizeof err->message)
    vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
  spec_utf8_trim(err->field);
  spec_utf8_trim(err->message);
  return -EINVAL;
}

static int spec_fail_at(spec_error_t *err, const char *path, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static int spec_fail_at(spec_error_t *err, const char *path, const char *fmt,
                        ...) {
  va_list ap;

  va_start(ap, fmt);
  spec_vfail(err, path, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* Writes the path of key inside the object at parent into dst. */
static void spec_path_key(char *dst, const char *parent, const char *key) {
  int n =
      snprintf(dst, SPEC_PATH_MAX, "%s%s%s", parent, parent[0] ? "." : "", key);

  if (n >= (int)SPEC_PATH_MAX)
    spec_utf8_trim(dst);
}

static int spec_fail(const spec_obj_t *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuses the value at key of o (o itself when key is NULL). */
static int spec_fail(const spec_obj_t *o, const char *key, const char *fmt,
                     ...) {
  char path[SPEC_PATH_MAX];
  va_list ap;

  if (key)
    spec_path_key(path, o->path, key);
  else
    snprintf(path, sizeof path, "%s", o->path);
  va_start(ap, fmt);
  spec_vfail(o->err, path, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* How a message names the JSON type of v. */
static const char *spec_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a real number";
  case JSON_NULL:
    return "null";
  default:
    return "a boolean";
  }
}

/* Writes the NULL-terminated list as "a, b, c" into buf, each item in
 * double quotes when quote is set. */
static void spec_list_join(const char *const *list, int quote, char *buf,
                           size_t size) {
  const char *q = quote ? "\"" : "";
  size_t n = 0;
  int w;

  buf[0] = '\0';
  for (; *list && n < size; list++) {
    w = snprintf(buf + n, size - n, "%s%s%s%s", n ? ", " : "", q, *list, q);
    if (w < 0)
      return;
    n += (size_t)w;
  }
}

/* Returns the index of s in the NULL-terminated list, or -1. */
static int spec_list_find(const char *const *list, const char *s) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], s) == 0)
      return i;
  return -1;
}

/* Takes v as the object o, refusing another type and any key that keys
 * (NULL-terminated) does not list. o->path and o->err must be set. */
static int spec_open(json_t *v, const char *const *keys, spec_obj_t *o) {
  const char *key;
  json_t *item;
  char list[192];

  if (!json_is_object(v))
    return spec_fail(o, NULL, "must be an object, not %s.", spec_type_name(v));
  o->obj = v;
  json_object_foreach(v, key, item) {
    if (spec_list_find(keys, key) >= 0)
      continue;
    spec_list_join(keys, 0, list, sizeof list);
    return spec_fail(o, key, "is not a known key; %s accepts: %s.",
                     o->path[0] ? o->path : "the spec", list);
  }
  return 0;
}

/* Opens the object at key of parent into child (child->obj stays NULL when
 * the key is absent). Returns 0 or -EINVAL. */
static int spec_child(const spec_obj_t *parent, const char *key,
                      const char *const *keys, spec_obj_t *child) {
  json_t *v = json_object_get(parent->obj, key);

  child->obj = NULL;
  child->err = parent->err;
  spec_path_key(child->path, parent->path, key);
  return v ? spec_open(v, keys, child) : 0;
}

/* Reads the optional integer at key into *out when it lies in [lo, hi]. */
static int spec_int64(const spec_obj_t *o, const char *key, long long lo,
                      long long hi, long long *out) {
  json_t *v = json_object_get(o->obj, key);
  long long x;

  if (!v)
    return 0;
  if (!json_is_integer(v))
    return spec_fail(o, key, "must be an integer from %lld to %lld, not %s.",
                     lo, hi, spec_type_name(v));
  x = json_integer_value(v);
  if (x < lo || x > hi)
    return spec_fail(o, key, "must be an integer from %lld to %lld; got %lld.",
                     lo, hi, x);
  *out = x;
  return 0;
}

static int spec_int(const spec_obj_t *o, const char *key, int lo, int hi,
                    int *out) {
  long long x = *out;

  if (spec_int64(o, key, lo, hi, &x))
    return -EINVAL;
  *out = (int)x;
  return 0;
}

/* Reads an optional seed: an integer from 0 to 2^53 - 1, so that any
 * JSON reader represents it exactly. */
static int spec_seed(const spec_obj_t *o, const char *key, uint64_t *out) {
  long long x = (long long)*out;

  if (spec_int64(o, key, 0, SPEC_U53_MAX, &x))
    return -EINVAL;
  *out = (uint64_t)x;
  return 0;
}

static int spec_in_range(const spec_range_t *r, double x) {
  if (x < r->lo || (r->lo_open && x == r->lo))
    return 0;
  return x < r->hi || (!r->hi_open && x == r->hi);
}

/* Reads the optional number (integer or real) at key into *out when it
 * lies in r. */
static int spec_num(const spec_obj_t *o, const char *key, const spec_range_t *r,
                    double *out) {
  json_t *v = json_object_get(o->obj, key);
  char range[64];

  if (!v)
    return 0;
  snprintf(range, sizeof range, "%c%g, %g%c", r->lo_open ? '(' : '[', r->lo,
           r->hi, r->hi_open ? ')' : ']');
  if (!json_is_number(v))
    return spec_fail(o, key, "must be a number in %s, not %s.", range,
                     spec_type_name(v));
  if (!spec_in_range(r, json_number_value(v)))
    return spec_fail(o, key, "must be a number in %s; got %.15g.", range,
                     json_number_value(v));
  *out = json_number_value(v);
  return 0;
}

/* Reads the optional string at key, one of the NULL-terminated choices,
 * into *out as its index in choices. */
static int spec_enum(const spec_obj_t *o, const char *key,
                     const char *const *choices, int *out) {
  json_t *v = json_object_get(o->obj, key);
  char list[128];
  int i;

  if (!v)
    return 0;
  spec_list_join(choices, 1, list, sizeof list);
  if (!json_is_string(v))
    return spec_fail(o, key, "must be one of %s, not %s.", list,
                     spec_type_name(v));
  if (strlen(json_string_value(v)) != json_string_length(v))
    return spec_fail(o, key, "must not contain a NUL character.");
  i = spec_list_find(choices, json_string_value(v));
  if (i < 0)
    return spec_fail(o, key,
                     "must be one of %s; no other value is "
                     "supported.",
                     list);
  *out = i;
  return 0;
}

/* Reads the optional string at key, one of the NULL-terminated choices,
 * into *out as the entry of values at the same index. */
static int spec_enum_map(const spec_obj_t *o, const char *key,
                         const char *const *choices, const int *values,
                         int *out) {
  int i = -1;

  if (spec_enum(o, key, choices, &i))
    return -EINVAL;
  if (i >= 0)
    *out = values[i];
  return 0;
}

/* Reads the optional boolean at key into *out as 1 or 0. */
static int spec_bool(const spec_obj_t *o, const char *key, int *out) {
  json_t *v = json_object_get(o->obj, key);

  if (!v)
    return 0;
  if (!json_is_boolean(v))
    return spec_fail(o, key, "must be true or false, not %s.",
                     spec_type_name(v));
  *out = json_is_true(v);
  return 0;
}

/* Refuses o when it lacks key; what describes the value it needs. */
static int spec_required(const spec_obj_t *o, const char *key,
                         const char *what) {
  if (json_object_get(o->obj, key))
    return 0;
  return spec_fail(o, key, "is required: %s.", what);
}

/* Points *out at the optional string at key (NULL when absent); what
 * describes the expected value for a message. */
static int spec_string(const spec_obj_t *o, const char *key, const char *what,
                       const char **out) {
  json_t *v = json_object_get(o->obj, key);

  *out = NULL;
  if (!v)
    return 0;
  if (!json_is_string(v))
    return spec_fail(o, key, "must be %s, not %s.", what, spec_type_name(v));
  if (strlen(json_string_value(v)) != json_string_length(v))
    return spec_fail(o, key, "must not contain a NUL character.");
  *out = json_string_value(v);
  return 0;
}

/* 1 when s holds a C0 or C1 control character or DEL. */
static int spec_has_control(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x20 || *p == 0x7F)
      return 1;
    if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
      return 1;
  }
  return 0;
}

/* Counts the characters (code points) of the valid UTF-8 string s. */
static size_t spec_utf8_chars(const char *s) {
  size_t n = 0;

  for (; *s; s++)
    n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

/* Reads the job's display name: 1 to 100 characters without control
 * characters, which must also fit dst (cap bytes with the NUL). */
static int spec_name(const spec_obj_t *o, const char *key, char *dst,
                     size_t cap) {
  const char *s;
  size_t chars;

  if (spec_string(o, key, "a string of 1 to 100 characters", &s))
    return -EINVAL;
  if (!s)
    return 0;
  if (spec_has_control(s))
    return spec_fail(o, key, "must not contain control characters.");
  chars = spec_utf8_chars(s);
  if (chars < 1 || chars > SPEC_NAME_CHARS)
    return spec_fail(o, key, "must be 1 to %d characters long; got %zu.",
                     SPEC_NAME_CHARS, chars);
  if (strlen(s) >= cap)
    return spec_fail(o, key,
                     "must be at most %zu bytes of UTF-8; got %zu bytes "
                     "(%zu characters, within the %d allowed).",
                     cap - 1, strlen(s), chars, SPEC_NAME_CHARS);
  memcpy(dst, s, strlen(s) + 1);
  return 0;
}

/* Reads the required dataset name: the name of a directory inside the
 * data root, so no separators and no leading dot. */
static int spec_dataset_name(const spec_obj_t *o, char *dst, size_t cap) {
  static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz0123456789._-";
  const char *s;
  size_t n;

  if (spec_string(o, "name", "a dataset name", &s))
    return -EINVAL;
  if (!s)
    return spec_fail(o, "name",
                     "is required: it names a dataset inside "
                     "the data root, such as \"fashion-mnist\".");
  n = strlen(s);
  if (n == 0 || n > SPEC_DATASET_CHARS || n >= cap || s[0] == '.' ||
      strspn(s, allowed) != n)
    return spec_fail(o, "name",
                     "must be 1 to %d characters among A-Z, a-z, 0-9, '.', "
                     "'_' and '-', not starting with '.'.",
                     SPEC_DATASET_CHARS);
  memcpy(dst, s, n + 1);
  return 0;
}

/* Reads a preset's name, the string at key, into st; a preset has no
 * layer list of its own. */
static int spec_model_preset(const spec_obj_t *o, const char *key,
                             pipeline_stage_spec_t *st) {
  char list[128];
  const char *s;

  if (spec_string(o, key, "a model preset name", &s))
    return -EINVAL;
  if (!model_preset_known(s) || strlen(s) >= sizeof st->model) {
    spec_list_join(model_preset_names, 1, list, sizeof list);
    return spec_fail(o, key,
                     "must name a known model preset (%s) or be an object "
                     "{\"layers\": [...]}.",
                     list);
  }
  memcpy(st->model, s, strlen(s) + 1);
  memset(&st->desc, 0, sizeof st->desc);
  return 0;
}

/* A layer's dropout rate in single precision: a rate just below 1 may
 * round up to 1, which would drop every value, so it stays below. */
static float spec_rate_float(double rate) {
  float r = (float)rate;

  return r < 1.0f ? r : 0x1.fffffep-1f;
}

static int spec_layer_dense(const spec_obj_t *o, layer_desc_t *d) {
  if (spec_required(o, "units", "the layer's output size, 1 to 65536") ||
      spec_int(o, "units", 1, 65536, &d->units))
    return -EINVAL;
  return 0;
}

static int spec_layer_plain(const spec_obj_t *o, layer_desc_t *d) {
  (void)o;
  (void)d;
  return 0;
}

/* conv2d: filters and kernel are required; stride 1 and no padding
 * unless given. */
static int spec_layer_conv(const spec_obj_t *o, layer_desc_t *d) {
  d->stride = 1;
  if (spec_required(o, "filters", "the output channels, 1 to 4096") ||
      spec_int(o, "filters", 1, 4096, &d->filters) ||
      spec_required(o, "kernel", "the window's side, 1 to 64") ||
      spec_int(o, "kernel", 1, SPEC_LAYER_SIDE_MAX, &d->kernel) ||
      spec_int(o, "stride", 1, SPEC_LAYER_SIDE_MAX, &d->stride) ||
      spec_int(o, "pad", 0, SPEC_LAYER_SIDE_MAX, &d->pad))
    return -EINVAL;
  return 0;
}

/* maxpool: size is the window's side; the stride defaults to it. */
static int spec_layer_pool(const spec_obj_t *o, layer_desc_t *d) {
  if (spec_required(o, "size", "the window's side, 1 to 64") ||
      spec_int(o, "size", 1, SPEC_LAYER_SIDE_MAX, &d->kernel))
    return -EINVAL;
  d->stride = d->kernel;
  return spec_int(o, "stride", 1, SPEC_LAYER_SIDE_MAX, &d->stride);
}

static int spec_layer_dropout(const spec_obj_t *o, layer_desc_t *d) {
  static const spec_range_t rate = {0, 1, 0, 1};
  double r = 0;

  if (spec_required(o, "rate", "the share of values dropped, in [0, 1)") ||
      spec_num(o, "rate", &rate, &r))
    return -EINVAL;
  d->rate = spec_rate_float(r);
  return 0;
}

/* How each layer type is read: its kind, its keys and its reader. */
typedef struct {
  int kind;
  const char *const *keys;
  int (*read)(const spec_obj_t *o, layer_desc_t *d);
} spec_layer_type_t;

static const char *const layer_types[] = {
    "dense", "relu", "conv2d", "maxpool", "dropout", "flatten", NULL};
static const char *const dense_keys[] = {"type", "units", NULL};
static const char *const plain_keys[] = {"type", NULL};
static const char *const conv_keys[] = {"type",   "filters", "kernel",
                                        "stride", "pad",     NULL};
static const char *const pool_keys[] = {"type", "size", "stride", NULL};
static const char *const dropout_keys[] = {"type", "rate", NULL};

/* In the order of layer_types. */
static const spec_layer_type_t layer_readers[] = {
    {LAYER_DENSE, dense_keys, spec_layer_dense},
    {LAYER_RELU, plain_keys, spec_layer_plain},
    {LAYER_CONV2D, conv_keys, spec_layer_conv},
    {LAYER_MAXPOOL, pool_keys, spec_layer_pool},
    {LAYER_DROPOUT, dropout_keys, spec_layer_dropout},
    {LAYER_FLATTEN, plain_keys, spec_layer_plain},
};

_Static_assert(sizeof layer_types / sizeof layer_types[0] ==
                   sizeof layer_readers / sizeof layer_readers[0] + 1,
               "every layer type has a reader");

/* Reads layers[i] of the model object at model, the JSON value v, into
 * d: its type first, which decides the keys it may hold. */
static int spec_layer(const spec_obj_t *model, size_t i, json_t *v,
                      layer_desc_t *d) {
  spec_obj_t o = {.err = model->err};
  char key[32], list[96], what[112];
  int type = -1;

  snprintf(key, sizeof key, "layers[%zu]", i);
  spec_path_key(o.path, model->path, key);
  if (!json_is_object(v))
    return spec_fail(&o, NULL, "must be an object with a \"type\", not %s.",
                     spec_type_name(v));
  o.obj = v;
  spec_list_join(layer_types, 1, list, sizeof list);
  snprintf(what, sizeof what, "one of %s", list);
  if (spec_required(&o, "type", what) ||
      spec_enum(&o, "type", layer_types, &type) ||
      spec_open(v, layer_readers[type].keys, &o))
    return -EINVAL;
  memset(d, 0, sizeof *d);
  d->kind = layer_readers[type].kind;
  return layer_readers[type].read(&o, d);
}

/* Reads a custom model, the object at key of parent, into st. Whether
 * its layers fit the dataset is for model_new to say. */
static int spec_model_custom(const spec_obj_t *parent, const char *key,
                             pipeline_stage_spec_t *st) {
  model_desc_t d = {.n_layers = 0};
  spec_obj_t o;
  json_t *layers;
  size_t n;

  if (spec_child(parent, key, model_keys, &o) ||
      spec_required(&o, "layers", "a list of the model's layers"))
    return -EINVAL;
  layers = json_object_get(o.obj, "layers");
  n = json_array_size(layers);
  if (!json_is_array(layers))
    return spec_fail(&o, "layers",
                     "must be an array of 1 to %d layers, not %s.",
                     MODEL_MAX_LAYERS, spec_type_name(layers));
  if (n < 1 || n > MODEL_MAX_LAYERS)
    return spec_fail(&o, "layers", "must hold 1 to %d layers; it holds %zu.",
                     MODEL_MAX_LAYERS, n);
  for (size_t i = 0; i < n; i++)
    if (spec_layer(&o, i, json_array_get(layers, i), &d.layers[i]))
      return -EINVAL;
  d.n_layers = (int)n;
  snprintf(d.name, sizeof d.name, "custom");
  st->desc = d;
  snprintf(st->model, sizeof st->model, "custom");
  return 0;
}

/* Reads the optional model at key of o into st: a preset's name, or an
 * object listing the layers of a custom model. */
static int spec_model(const spec_obj_t *o, const char *key,
                      pipeline_stage_spec_t *st) {
  json_t *v = json_object_get(o->obj, key);
  char list[128];

  if (!v)
    return 0;
  if (json_is_string(v))
    return spec_model_preset(o, key, st);
  if (json_is_object(v))
    return spec_model_custom(o, key, st);
  spec_list_join(model_preset_names, 1, list, sizeof list);
  return spec_fail(o, key,
                   "must be a model preset name (%s) or an object "
                   "{\"layers\": [...]}, not %s.",
                   list, spec_type_name(v));
}

/* Reads the keys of the update rule. */
static int spec_optim_rule(const spec_obj_t *o, optim_config_t *cfg) {
  static const spec_range_t lr = {0, 10, 1, 0};
  static const spec_range_t below_one = {0, 1, 0, 1};
  static const spec_range_t decay = {0, 1, 0, 0};
  static const spec_range_t eps = {0, 1, 1, 0};

  if (spec_enum(o, "kind", optim_kinds, &cfg->kind) ||
      spec_num(o, "lr", &lr, &cfg->lr) ||
      spec_num(o, "momentum", &below_one, &cfg->momentum) ||
      spec_bool(o, "nesterov", &cfg->nesterov) ||
      spec_num(o, "weight_decay", &decay, &cfg->weight_decay) ||
      spec_bool(o, "decay_bias", &cfg->decay_bias) ||
      spec_num(o, "beta1", &below_one, &cfg->beta1) ||
      spec_num(o, "beta2", &below_one, &cfg->beta2) ||
      spec_num(o, "eps", &eps, &cfg->eps) ||
      spec_int(o, "batch_size", 1, 4096, &cfg->batch_size))
    return -EINVAL;
  return 0;
}

/* Reads the keys of the learning-rate schedule. */
static int spec_optim_schedule(const spec_obj_t *o, optim_config_t *cfg) {
  static const spec_range_t warmup = {0, SPEC_EPOCHS_MAX, 0, 0};
  static const spec_range_t gamma = {0, 1, 1, 0};

  if (spec_enum(o, "schedule", schedules, &cfg->schedule) ||
      spec_num(o, "warmup_epochs", &warmup, &cfg->warmup_epochs) ||
      spec_int(o, "step_epochs", 1, SPEC_EPOCHS_MAX, &cfg->step_epochs) ||
      spec_num(o, "gamma", &gamma, &cfg->gamma))
    return -EINVAL;
  return 0;
}

/* Nesterov momentum belongs to SGD. The refusal names the key of o that
 * made the conflict: nesterov when o sets it, else the kind it changes
 * under a nesterov the job's optimizer set. */
static int spec_optim_check(const spec_obj_t *o, const optim_config_t *cfg) {
  if (!cfg->nesterov || cfg->kind == OPTIM_SGD)
    return 0;
  if (json_object_get(o->obj, "nesterov") || !o->obj)
    return spec_fail(o, "nesterov",
                     "applies to kind \"sgd\" only; this optimizer's kind "
                     "is \"%s\".",
                     optim_kinds[cfg->kind]);
  return spec_fail(o, "kind",
                   "is \"%s\", but the job's optimizer sets nesterov, which "
                   "applies to \"sgd\" only; give \"nesterov\": false here.",
                   optim_kinds[cfg->kind]);
}

/* Lays the optional "optimizer" object of parent over cfg: only the keys
 * it gives replace cfg's. */
static int spec_optimizer(const spec_obj_t *parent, optim_config_t *cfg) {
  spec_obj_t o;

  if (spec_child(parent, "optimizer", optim_keys, &o) ||
      spec_optim_rule(&o, cfg) || spec_optim_schedule(&o, cfg) ||
      spec_optim_check(&o, cfg))
    return -EINVAL;
  return 0;
}

/* Reads the keys every stage shares. st->optim already holds the job's
 * optimizer, which the stage's own "optimizer" overrides key by key. */
static int spec_stage(const spec_obj_t *o, pipeline_stage_spec_t *st) {
  if (spec_model(o, "model", st) ||
      spec_int(o, "epochs", 1, SPEC_EPOCHS_MAX, &st->epochs) ||
      spec_optimizer(o, &st->optim))
    return -EINVAL;
  return 0;
}

/* Reads dataset.label_noise: an object turns noise on (symmetric unless
 * its kind says pair), null or absence leaves the labels as they are. */
static int spec_noise(const spec_obj_t *ds, pipeline_spec_t *s) {
  static const spec_range_t rate = {0, 0.95, 0, 0};
  json_t *v = json_object_get(ds->obj, "label_noise");
  int kind = PIPELINE_NOISE_SYMMETRIC;
  spec_obj_t o;

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v))
    return spec_fail(ds, "label_noise", "must be an object or null, not %s.",
                     spec_type_name(v));
  if (spec_child(ds, "label_noise", noise_keys, &o) ||
      spec_enum_map(&o, "kind", noise_kinds, noise_values, &kind) ||
      spec_num(&o, "rate", &rate, &s->noise_rate) ||
      spec_seed(&o, "seed", &s->noise_seed))
    return -EINVAL;
  s->noise_kind = kind;
  return 0;
}

static int spec_dataset(const spec_obj_t *root, pipeline_spec_t *s) {
  static const spec_range_t fraction = {0, 0.5, 0, 0};
  int norm = (int)s->norm;
  spec_obj_t o;

  if (spec_child(root, "dataset", dataset_keys, &o) ||
      spec_dataset_name(&o, s->dataset, sizeof s->dataset) ||
      spec_int(&o, "limit", 0, 10000000, &s->limit) ||
      spec_num(&o, "validation_fraction", &fraction, &s->validation_fraction) ||
      spec_enum_map(&o, "normalize", norm_kinds, norm_values, &norm) ||
      spec_noise(&o, s))
    return -EINVAL;
  s->norm = (dataset_norm_t)norm;
  return 0;
}

/* Refuses in a pace object the keys of the pace kinds it is not. */
static int spec_pace_keys(const spec_obj_t *o, int kind) {
  static const char *const owned[][4] = {
      {"start", "end", "curve", NULL},
      {"lambda", "growth", NULL},
      {"clean_below", NULL}};

  for (int k = 0; pace_kinds[k]; k++)
    for (int i = 0; k != kind && owned[k][i]; i++)
      if (o->obj && json_object_get(o->obj, owned[k][i]))
        return spec_fail(o, owned[k][i],
                         "belongs to the %s pace, not the %s pace.",
                         pace_kinds[k], pace_kinds[kind]);
  return 0;
}

/* Reads spl.pace: the fraction pace's kept fraction grows from start to
 * end; the auto pace takes it from the noise estimate, or keeps all
 * when the estimate is below clean_below. */

static int spec_pace(const spec_obj_t *spl, pipeline_spec_t *s) {
  static const spec_range_t fraction = {0, 1, 1, 0};
  static const spec_range_t lambda = {0, 1e6, 1, 0};
  static const spec_range_t growth = {1, 100, 0, 0};
  static const spec_range_t below = {0, 0.5, 0, 0};
  spec_obj_t o;

  if (spec_child(spl, "pace", pace_keys, &o) ||
      spec_enum(&o, "kind", pace_kinds, &s->pace_kind) ||
      spec_pace_keys(&o, s->pace_kind) ||
      spec_num(&o, "start", &fraction, &s->pace_start) ||
      spec_num(&o, "end", &fraction, &s->pace_end) ||
      spec_enum(&o, "curve", curves, &s->pace_curve) ||
      spec_num(&o, "lambda", &lambda, &s->pace_lambda) ||
      spec_num(&o, "growth", &growth, &s->pace_growth) ||
      spec_num(&o, "clean_below", &below, &s->pace_clean_below))
    return -EINVAL;
  if (s->pace_start > s->pace_end)
    return spec_fail(&o, "start",
                     "(%g) must not exceed %s.end (%g): the kept fraction "
                     "grows from start to end.",
                     s->pace_start, o.path, s->pace_end);
  return 0;
}

/* Reads spl. A warm-up left to its default is cut to the stage's epochs. */
/* How the self-paced stage scores, weighs and finally ranks samples. */
static int spec_spl_scoring(const spec_obj_t *o, pipeline_spec_t *s) {
  static const spec_range_t ratio = {0, 1, 1, 1};
  spec_obj_t fin;

  if (spec_enum(o, "score", score_kinds, &s->spl_score) ||
      spec_enum(o, "score_pass", score_passes, &s->spl_score_pass) ||
      spec_bool(o, "per_class", &s->per_class) ||
      spec_enum(o, "weighting", weightings, &s->weighting) ||
      spec_num(o, "mix_ratio", &ratio, &s->mix_ratio) ||
      spec_child(o, "final_set", final_keys, &fin) ||
      spec_enum(&fin, "statistic", final_stats, &s->final_stat) ||
      spec_int(&fin, "last_epochs", 0, s->spl.epochs, &s->final_last_epochs))
    return -EINVAL;
  return 0;
}

static int spec_spl(const spec_obj_t *root, pipeline_spec_t *s) {
  spec_obj_t o;

  if (spec_child(root, "spl", spl_keys, &o) || spec_stage(&o, &s->spl))
    return -EINVAL;
  if (s->spl_warmup_epochs > s->spl.epochs)
    s->spl_warmup_epochs = s->spl.epochs;
  if (spec_int(&o, "warmup_epochs", 0, s->spl.epochs, &s->spl_warmup_epochs) ||
      spec_pace(&o, s) || spec_spl_scoring(&o, s))
    return -EINVAL;
  return 0;
}

/* 1 when a '/'-separated component of the path s is "..". */
static int spec_has_dotdot(const char *s) {
  for (const char *c = s;; c++) {
    if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
      return 1;
    c = strchr(c, '/');
    if (!c)
      return 0;
  }
}

/* Reads a teacher's checkpoint: a file's path relative to the data root,
 * 1 to 100 characters without control characters, no leading '/' and no
 * ".." component. Whether the file exists is the caller's to check. */
static int spec_checkpoint(const spec_obj_t *o, char *dst, size_t cap) {
  if (spec_name(o, "checkpoint", dst, cap))
    return -EINVAL;
  if (dst[0] == '/')
    return spec_fail(o, "checkpoint",
                     "must be a path relative to the data root, not an "
                     "absolute path.");
  if (spec_has_dotdot(dst))
    return spec_fail(o, "checkpoint",
                     "must not have a \"..\" component: the file must lie "
                     "inside the data root.");
  return 0;
}

/* Reads a teacher loaded from a checkpoint, which trains no epoch: the
 * keys of training are refused beside it, and its stage plans the one
 * epoch in which the loaded model is evaluated. */
static int spec_teacher_loaded(const spec_obj_t *o,
                               pipeline_teacher_spec_t *t) {
  static const char *const trained_only[] = {"model", "epochs", "optimizer",
                                             "seed", NULL};

  for (int i = 0; trained_only[i]; i++)
    if (json_object_get(o->obj, trained_only[i]))
      return spec_fail(o, trained_only[i],
                       "does not apply to a teacher loaded from a "
                       "checkpoint: %s.checkpoint names a model that is "
                       "evaluated, not trained.",
                       o->path);
  if (spec_checkpoint(o, t->checkpoint, sizeof t->checkpoint))
    return -EINVAL;
  t->stage.epochs = 1;
  return 0;
}

/* Reads teacher k, the value v: a stage trained on the easy set, on its
 * own seed when it gives one, or a model loaded from a checkpoint. */
static int spec_teacher(const spec_obj_t *root, size_t k, json_t *v,
                        pipeline_teacher_spec_t *t) {
  spec_obj_t o = {.err = root->err};

  snprintf(o.path, sizeof o.path, "teachers[%zu]", k);
  if (spec_open(v, teacher_keys, &o))
    return -EINVAL;
  if (json_object_get(v, "checkpoint"))
    return spec_teacher_loaded(&o, t);
  if (spec_stage(&o, &t->stage))
    return -EINVAL;
  if (!json_object_get(v, "seed"))
    return 0;
  t->has_seed = 1;
  return spec_seed(&o, "seed", &t->seed);
}

/* Reads teachers: 1 to PIPELINE_TEACHERS_MAX teachers, each starting
 * from the first teacher's defaults. */
static int spec_teachers(const spec_obj_t *root, pipeline_spec_t *s) {
  json_t *v = json_object_get(root->obj, "teachers");
  const pipeline_teacher_spec_t base = s->teachers[0];
  size_t n = json_array_size(v);

  if (!v)
    return 0;
  if (!json_is_array(v))
    return spec_fail(root, "teachers",
                     "must be an array of 1 to %d teacher objects, not %s.",
                     PIPELINE_TEACHERS_MAX, spec_type_name(v));
  if (n == 0 || n > PIPELINE_TEACHERS_MAX)
    return spec_fail(root, "teachers",
                     "holds %zu teachers; it must hold 1 to %d.", n,
                     PIPELINE_TEACHERS_MAX);
  for (size_t k = 0; k < n; k++) {
    s->teachers[k] = base;
    if (spec_teacher(root, k, json_array_get(v, k), &s->teachers[k]))
      return -EINVAL;
  }
  s->n_teachers = (int)n;
  return 0;
}

/* The number of layers in a stage's model: a custom model's own list, or
 * the list model_preset gives for a preset. */
static int spec_layer_count(const pipeline_stage_spec_t *st) {
  model_desc_t d;

  if (strcmp(st->model, "custom") == 0)
    return st->desc.n_layers;
  return model_preset(st->model, &d) == 0 ? d.n_layers : 0;
}

/* Reads the required layer index at key of o into *out: 0-based in the
 * layer list of a model with count layers, which whose describes for the
 * message. count 0 means only the run knows the model: any index a model
 * may have is taken. */
static int spec_layer_index(const spec_obj_t *o, const char *key,
                            const char *whose, int count, int *out) {
  if (spec_required(o, key, "a 0-based index into the model's layer list") ||
      spec_int(o, key, 0, MODEL_MAX_LAYERS - 1, out))
    return -EINVAL;
  if (count > 0 && *out >= count)
    return spec_fail(o, key,
                     "is %d, but %s has %d layers: the index must be from "
                     "0 to %d.",
                     *out, whose, count, count - 1);
  return 0;
}

/* Reads student.representation, a hint between a layer of the first
 * teacher and a layer of the student. A teacher from a checkpoint has
 * layers only the run knows, so its index is checked then. */
static int spec_hint(const spec_obj_t *student, pipeline_spec_t *s) {
  static const spec_range_t beta = {0, 1e6, 1, 0};
  const pipeline_teacher_spec_t *t = &s->teachers[0];
  char teacher[64], own[64];
  spec_obj_t o;

  if (!json_object_get(student->obj, "representation"))
    return 0;
  snprintf(teacher, sizeof teacher, "the first teacher's model \"%s\"",
           t->stage.model);
  snprintf(own, sizeof own, "the student's model \"%s\"", s->student.model);
  if (spec_child(student, "representation", hint_keys, &o) ||
      spec_layer_index(&o, "teacher_layer", teacher,
                       t->checkpoint[0] ? 0 : spec_layer_count(&t->stage),
                       &s->hint_teacher_layer) ||
      spec_layer_index(&o, "student_layer", own, spec_layer_count(&s->student),
                       &s->hint_student_layer) ||
      spec_num(&o, "beta", &beta, &s->hint_beta))
    return -EINVAL;
  s->has_hint = 1;
  return 0;
}

static int spec_student(const spec_obj_t *root, pipeline_spec_t *s) {
  static const spec_range_t alpha = {0, 1, 0, 0};
  static const spec_range_t temperature = {0, 100, 1, 0};
  spec_obj_t o, kd;

  if (spec_child(root, "student", student_keys, &o) ||
      spec_stage(&o, &s->student) || spec_child(&o, "kd", kd_keys, &kd) ||
      spec_num(&kd, "alpha", &alpha, &s->kd_alpha) ||
      spec_num(&kd, "temperature", &temperature, &s->kd_temperature) ||
      spec_enum(&o, "spl_weights", student_weights, &s->student_weights) ||
      spec_enum(&o, "weights_from", weights_froms, &s->weights_from) ||
      spec_hint(&o, s))
    return -EINVAL;
  return 0;
}

static int spec_layer_equal(const layer_desc_t *a, const layer_desc_t *b) {
  return a->kind == b->kind && a->units == b->units &&
         a->filters == b->filters && a->kernel == b->kernel &&
         a->stride == b->stride && a->pad == b->pad && a->rate == b->rate;
}

/* Returns the first layer where the custom models a and b differ, the
 * shorter one's length when one extends the other, or -1 when they are
 * the same. */
static int spec_layers_differ(const model_desc_t *a, const model_desc_t *b) {
  int n = a->n_layers < b->n_layers ? a->n_layers : b->n_layers;

  for (int i = 0; i < n; i++)
    if (!spec_layer_equal(&a->layers[i], &b->layers[i]))
      return i;
  return a->n_layers == b->n_layers ? -1 : n;
}

/* The baseline measures what the pipeline gained, so it must train the
 * student's architecture for the student's epochs: the same preset, or
 * a custom model with the same layers. */
static int spec_baseline_match(const spec_obj_t *o, const pipeline_spec_t *s) {
  static const char why[] = "the baseline trains the student's architecture "
                            "for the same epochs without the pipeline.";
  const pipeline_stage_spec_t *b = &s->baseline, *st = &s->student;
  int at;

  if (strcmp(b->model, st->model) != 0)
    return spec_fail(o, "model", "must be the student's model (\"%s\"): %s",
                     st->model, why);
  at = b->desc.n_layers ? spec_layers_differ(&b->desc, &st->desc) : -1;
  if (at >= 0)
    return spec_fail(o, "model",
                     "must list the student's layers (%d of them), but "
                     "differs at layers[%d]: %s",
                     st->desc.n_layers, at, why);
  if (s->baseline.epochs != s->student.epochs)
    return spec_fail(o, "epochs", "must equal student.epochs (%d): %s",
                     s->student.epochs, why);
  return 0;
}

/* Reads baseline: absent or null means none; an object means a baseline
 * like the student, whose optimizer it may override. */
static int spec_baseline(const spec_obj_t *root, pipeline_spec_t *s) {
  json_t *v = json_object_get(root->obj, "baseline");
  spec_obj_t o;

  memcpy(s->baseline.model, s->student.model, sizeof s->baseline.model);
  s->baseline.desc = s->student.desc;
  s->baseline.epochs = s->student.epochs;
  s->has_baseline = v && !json_is_null(v);
  if (!s->has_baseline)
    return 0;
  if (!json_is_object(v))
    return spec_fail(root, "baseline", "must be an object or null, not %s.",
                     spec_type_name(v));
  if (spec_child(root, "baseline", stage_keys, &o) ||
      spec_stage(&o, &s->baseline) || spec_baseline_match(&o, s))
    return -EINVAL;
  return 0;
}

/* Reads the whole document into s, which holds the defaults. The job-wide
 * optimizer is read before any stage, whatever the order of the text; the
 * step schedule's settings get their defaults here where the engine's
 * leave them unset. */
static int spec_root(json_t *doc, spec_error_t *err, pipeline_spec_t *s) {
  spec_obj_t root = {.err = err};
  optim_config_t job = s->spl.optim;
  int priority = 0; /* the queue's business: checked here, read apart */

  if (job.step_epochs == 0)
    job.step_epochs = SPEC_STEP_EPOCHS;
  if (job.gamma == 0)
    job.gamma = SPEC_STEP_GAMMA;

  if (!json_is_object(doc))
    return spec_fail_at(err, "", "The spec must be a JSON object, not %s.",
                        spec_type_name(doc));
  if (spec_open(doc, root_keys, &root) ||
      spec_name(&root, "name", s->name, sizeof s->name) ||
      spec_seed(&root, "seed", &s->seed) ||
      spec_int(&root, "threads", 1, 64, &s->threads) ||
      spec_bool(&root, "parallel_stages", &s->parallel_stages) ||
      spec_int(&root, "priority", SPEC_PRIORITY_MIN, SPEC_PRIORITY_MAX,
               &priority) ||
      spec_dataset(&root, s) || spec_optimizer(&root, &job))
    return -EINVAL;

  s->spl.optim = s->teachers[0].stage.optim = job;
  s->student.optim = s->baseline.optim = job;
  if (spec_spl(&root, s) || spec_teachers(&root, s) ||
      spec_enum(&root, "combine", combines, &s->combine) ||
      spec_student(&root, s) || spec_baseline(&root, s))
    return -EINVAL;
  return 0;
}

/* One level of the JSON being walked by spec_path_at. */
typedef struct {
  int is_object;
  int want_key;    /* object: the next string is a key */
  size_t index;    /* array: the element being read */
  const char *key; /* object: the key whose value is being read */
  size_t key_len;
} spec_frame_t;

/* Skips the string opening at text[i], recording it as top's key when top
 * expects one. Returns the index of the closing quote (or pos). */
static size_t spec_scan_string(const char *text, size_t i, size_t pos,
                               spec_frame_t *top) {
  size_t start = ++i;

  while (i < pos && text[i] != '"')
    i += text[i] == '\\' ? 2 : 1;
  if (i > pos)
    i = pos;
  if (top && top->is_object && top->want_key) {
    top->key = text + start;
    top->key_len = i - start;
    top->want_key = 0;
  }
  return i;
}

/* Writes the dotted path of the innermost value of st into path. */
static void spec_path_build(const spec_frame_t *st, int depth, char *path) {
  size_t n = 0;
  int w = 0;

  path[0] = '\0';
  for (int d = 0; d < depth && n < SPEC_PATH_MAX && w >= 0; d++) {
    if (st[d].is_object)
      w = snprintf(path + n, SPEC_PATH_MAX - n, "%s%.*s", n ? "." : "",
                   (int)st[d].key_len, st[d].key ? st[d].key : "");
    else
      w = snprintf(path + n, SPEC_PATH_MAX - n, "[%zu]", st[d].index);
    n += w > 0 ? (size_t)w : 0;
  }
  spec_utf8_trim(path);
}

/* Writes into path the dotted path of the value the parser was reading at
 * byte pos, which it reached without a syntax error (keys as written,
 * escapes included; levels past SPEC_SCAN_DEPTH are left out). */
static void spec_path_at(const char *text, size_t pos, char *path) {
  spec_frame_t st[SPEC_SCAN_DEPTH];
  spec_frame_t *top = NULL;
  int depth = 0;

  for (size_t i = 0; i < pos; i++) {
    top = depth > 0 && depth <= SPEC_SCAN_DEPTH ? &st[depth - 1] : NULL;
    if (text[i] == '"') {
      i = spec_scan_string(text, i, pos, top);
    } else if (text[i] == '{' || text[i] == '[') {
      if (depth < SPEC_SCAN_DEPTH)
        st[depth] = (spec_frame_t){text[i] == '{', text[i] == '{', 0, NULL, 0};
      depth++;
    } else if ((text[i] == '}' || text[i] == ']') && depth > 0) {
      depth--;
    } else if (text[i] == ',' && top) {
      top->want_key = top->is_object;
      top->index++;
    }
  }
  spec_path_build(st, depth < SPEC_SCAN_DEPTH ? depth : SPEC_SCAN_DEPTH, path);
}

/* Turns a parser failure into err. A repeated key and a number too large
 * are valid JSON syntax refused at a path; the rest is malformed text. */
static int spec_load_error(const char *text, const json_error_t *je,
                           spec_error_t *err) {
  enum json_error_code code = json_error_code(je);
  char path[SPEC_PATH_MAX];

  if (code == json_error_duplicate_key) {
    spec_path_at(text, (size_t)je->position, path);
    return spec_fail_at(err, path,
                        "is given twice (line %d, column %d); "
                        "each key may appear once.",
                        je->line, je->column);
  }
  if (code == json_error_numeric_overflow) {
    spec_path_at(text, (size_t)je->position, path);
    return spec_fail_at(err, path,
                        "holds a number too large to represent "
                        "(line %d, column %d).",
                        je->line, je->column);
  }
  err->malformed = 1;
  return spec_fail_at(err, "",
                      "The spec is not valid JSON: %s (line %d, "
                      "column %d).",
                      je->text, je->line, je->column);
}

int spec_parse(const char *text, size_t len, pipeline_spec_t *out,
               spec_error_t *err) {
  pipeline_spec_t spec;
  json_error_t je;
  json_t *doc;
  int rc;

  memset(err, 0, sizeof *err);
  if (len > SPEC_TEXT_MAX)
    return spec_fail_at(err, "",
                        "The spec is %zu bytes; at most 1 MiB (%d "
                        "bytes) is accepted.",
                        len, SPEC_TEXT_MAX);
  /* Any JSON value loads, so that a document which is valid JSON but not
   * an object is refused as a spec, not as malformed text. */
  doc = json_loadb(text, len,
                   JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                   &je);
  if (!doc)
    return spec_load_error(text, &je, err);

  pipeline_spec_defaults(&spec);
  rc = spec_root(doc, err, &spec);
  json_decref(doc);
  if (rc == 0)
    *out = spec;
  return rc;
}

int spec_priority(const char *text, size_t len, int *out) {
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_t *v = json_object_get(doc, "priority");
  json_int_t x = v ? json_integer_value(v) : 0;
  int rc = 0;

  *out = 0;
  if (!json_is_object(doc) || (v && !json_is_integer(v)) ||
      x < SPEC_PRIORITY_MIN || x > SPEC_PRIORITY_MAX)
    rc = -EINVAL;
  else
    *out = (int)x;
  json_decref(doc);
  return rc;
}
