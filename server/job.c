/* SPDX-License-Identifier: MIT */
/* One job from start to end on the calling thread: spec, dataset,
 * provenance, the pipeline with hooks that store each epoch, and the final
 * state. It opens its own database connection and shares nothing. */
#include "job.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/blas.h"
#include "../engine/checkpoint.h"
#include "../engine/dataset.h"
#include "../engine/pipeline.h"
#include "../storage/db.h"
#include "spec.h"
#include "version.h"

/* What the pipeline hooks need: the job's reading connection, the
 * process's writer and the job's id. */
typedef struct {
  db_t *db;
  db_writer_t *writer;
  int64_t id;
  const log_t *log;
  int echo;
  double *estimated_noise_rate;
  metrics_t *metrics; /* may be NULL */
  /* Per stage, the epoch its stored state resumes after; 0 for a stage
   * that starts fresh. */
  int resumed[PIPELINE_STAGE_COUNT];
} job_ctx_t;

/* Hashes one file with SHA-256 into 64 lowercase hex digits. */
static int file_sha256(const char *path, char hex[65], char *err,
                       size_t errlen) {
  unsigned char buf[1 << 16], digest[32];
  gnutls_hash_hd_t h;
  FILE *f = fopen(path, "rb");
  size_t n;
  int rc = 0;

  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
    fclose(f);
    snprintf(err, errlen, "cannot start a SHA-256 hash");
    return -EIO;
  }
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    gnutls_hash(h, buf, n);
  if (ferror(f)) {
    snprintf(err, errlen, "%s: read error", path);
    rc = -EIO;
  }
  gnutls_hash_deinit(h, digest);
  fclose(f);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return rc;
}

/* SHA-256 of a model's parameter values, tensor after tensor as float32
 * in the machine's byte order (little-endian here), in 64 hex digits:
 * two runs agree on it exactly when their weights are bit-identical. */
static int weights_sha256(const model_t *m, char hex[65]) {
  unsigned char digest[32];
  gnutls_hash_hd_t h;

  if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
    return -EIO;
  for (int i = 0; i < m->n_params; i++)
    gnutls_hash(h, m->params[i]->value, m->params[i]->n * sizeof(float));
  gnutls_hash_deinit(h, digest);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return 0;
}

/* The job's writes, each a call on the writer thread: the arguments of
 * one storage call, by kind. */
enum { W_SPLIT, W_PROGRESS, W_EVENT, W_EPOCH, W_DYNAMICS, W_PROVENANCE,
       W_FINISH };

typedef struct {
  int kind;
  int64_t id;
  const char *stage; /* W_PROGRESS, W_DYNAMICS */
  int epoch;         /* W_PROGRESS: the stage's last completed epoch */
  const char *text;  /* W_EVENT data, W_PROVENANCE json, W_FINISH state */
  const char *text2; /* W_EVENT kind, W_FINISH error */
  const void *a;     /* W_SPLIT split, W_EPOCH metrics, W_DYNAMICS */
  const void *b;     /* W_EPOCH records */
  const void *c;     /* W_EPOCH state, may be NULL */
} job_write_t;

static int job_write_run(db_t *db, void *ctx, char *err, size_t errlen) {
  const job_write_t *w = ctx;

  switch (w->kind) {
  case W_SPLIT:
    return db_split_insert(db, w->id, w->a, err, errlen);
  case W_PROGRESS:
    return db_job_progress(db, w->id, w->stage, w->epoch, err, errlen);
  case W_EVENT:
    return db_event_append(db, w->id, w->text2, w->text, NULL, err, errlen);
  case W_EPOCH:
    return db_epoch_insert_state(db, w->id, w->a, w->b, w->c, err, errlen);
  case W_DYNAMICS:
    return db_dynamics_insert(db, w->id, w->stage, w->a, err, errlen);
  case W_PROVENANCE:
    return db_job_provenance_set(db, w->id, w->text, err, errlen);
  default:
    return db_job_finish(db, w->id, w->text, w->text2, err, errlen);
  }
}

/* Makes write w through the process's writer thread. */
static int job_write(db_writer_t *writer, job_write_t w, char *err,
                     size_t errlen) {
  return db_writer_call(writer, job_write_run, &w, err, errlen);
}

static int job_log(job_ctx_t *j, const char *level, char *err, size_t errlen,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Appends a "log" event, a line for people following the job: data
 * {"level", "message"}. */
static int job_log(job_ctx_t *j, const char *level, char *err, size_t errlen,
                   const char *fmt, ...) {
  char msg[256], *text = NULL;
  json_t *data;
  va_list ap;
  int rc;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  data = json_pack("{s:s, s:s}", "level", level, "message", msg);
  if (data)
    text = json_dumps(data, JSON_COMPACT);
  json_decref(data);
  if (!text) {
    snprintf(err, errlen, "cannot encode the log line '%s'", msg);
    return -ENOMEM;
  }
  rc = job_write(j->writer,
                 (job_write_t){W_EVENT, j->id, .text = text, .text2 = "log"},
                 err, errlen);
  free(text);
  return rc;
}

static int provenance_hashes(const char *data_root, const char *dataset,
                             json_t *obj, char *err, size_t errlen) {
  dataset_files_t files;
  json_t *hashes = json_object();
  int rc = dataset_files_find(data_root, dataset, &files, err, errlen);

  for (int i = 0; rc == 0 && i < files.count; i++) {
    char hex[65];
    const char *base = strrchr(files.path[i], '/');
    rc = file_sha256(files.path[i], hex, err, errlen);
    if (rc == 0)
      json_object_set_new(hashes, base ? base + 1 : files.path[i],
                          json_string(hex));
  }
  json_object_set_new(obj, "dataset_sha256", hashes);
  return rc;
}

int job_provenance(const char *data_root, const char *dataset, int threads,
                   char **out, char *err, size_t errlen) {
  char host[256] = "unknown", config[256], core[64];
  json_t *obj = json_object();
  int rc;

  *out = NULL;
  if (!obj)
    return -ENOMEM;
  gethostname(host, sizeof host - 1);
  blas_config(config, sizeof config);
  blas_corename(core, sizeof core);
  json_object_set_new(obj, "spkd_version", json_string(SPK_VERSION));
  json_object_set_new(obj, "blas", json_string(config));
  json_object_set_new(obj, "blas_core", json_string(core));
  json_object_set_new(obj, "threads", json_integer(threads));
  json_object_set_new(obj, "host", json_string(host));
  json_object_set_new(obj, "dataset", json_string(dataset));
  rc = provenance_hashes(data_root, dataset, obj, err, errlen);
  if (rc == 0) {
    *out = json_dumps(obj, JSON_COMPACT);
    if (!*out)
      rc = -ENOMEM;
  }
  json_decref(obj);
  return rc;
}

/* Cuts s before a final UTF-8 sequence that a truncation left
 * incomplete, so that the message stays valid UTF-8 for JSON. */
static void utf8_end_trim(char *s) {
  size_t n = strlen(s), i = n, need;

  while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
    i--;
  if (i == 0 || (unsigned char)s[i - 1] < 0xC0)
    return;
  need = (unsigned char)s[i - 1] >= 0xF0   ? 4
         : (unsigned char)s[i - 1] >= 0xE0 ? 3
                                           : 2;
  if (n - (i - 1) < need)
    s[i - 1] = '\0';
}

/* Fills err for teacher k's checkpoint and returns rc. */
static int checkpoint_fail(spec_error_t *err, int k, int rc, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

static int checkpoint_fail(spec_error_t *err, int k, int rc, const char *fmt,
                           ...) {
  va_list ap;
  int n;

  memset(err, 0, sizeof *err);
  snprintf(err->field, sizeof err->field, "teachers[%d].checkpoint", k);
  n = snprintf(err->message, sizeof err->message, "%s ", err->field);
  va_start(ap, fmt);
  vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
  va_end(ap);
  utf8_end_trim(err->message);
  return rc;
}

/* Resolves teacher k's checkpoint inside root_real (the data root with
 * its links resolved) into t->path. */
static int checkpoint_find(const char *root_real, int k,
                           pipeline_teacher_spec_t *t, spec_error_t *err) {
  char joined[PATH_MAX], real[PATH_MAX];
  size_t n = strlen(root_real);
  struct stat st;

  if (snprintf(joined, sizeof joined, "%s/%s", root_real, t->checkpoint) >=
      (int)sizeof joined)
    return checkpoint_fail(err, k, -ENAMETOOLONG, "'%s': path too long.",
                           t->checkpoint);
  if (!realpath(joined, real)) {
    int e = errno;
    return checkpoint_fail(err, k, e == ENOENT || e == ENOTDIR ? -ENOENT : -e,
                           "'%s' is not a file in the data root %s: %s.",
                           t->checkpoint, root_real, strerror(e));
  }
  if (strncmp(real, root_real, n) != 0 ||
      (real[n] != '/' && root_real[n - 1] != '/'))
    return checkpoint_fail(err, k, -EPERM,
                           "'%s' leads outside the data root %s.",
                           t->checkpoint, root_real);
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
    return checkpoint_fail(err, k, -EINVAL,
                           "'%s' in the data root %s is not a regular file.",
                           t->checkpoint, root_real);
  snprintf(t->path, sizeof t->path, "%s", real);
  return 0;
}

int job_checkpoints_find(const char *data_root, pipeline_spec_t *spec,
                         spec_error_t *err) {
  char root_real[PATH_MAX] = "";
  int rc = 0;

  memset(err, 0, sizeof *err);
  for (int k = 0; k < spec->n_teachers && rc == 0; k++) {
    pipeline_teacher_spec_t *t = &spec->teachers[k];
    t->path[0] = '\0';
    if (!t->checkpoint[0])
      continue;
    if (!root_real[0] && !realpath(data_root, root_real)) {
      int e = errno;
      return checkpoint_fail(err, k, -e,
                             "cannot be found: data root '%s': %s.",
                             data_root, strerror(e));
    }
    rc = checkpoint_find(root_real, k, t, err);
  }
  return rc;
}

/* The problem in a message of the checkpoint loader, which opens with
 * the file's path. */
static const char *checkpoint_reason(const char *why, const char *path) {
  size_t n = strlen(path);

  if (n > 0 && strncmp(why, path, n) == 0 && why[n] == ':' && why[n + 1])
    return why + n + 2;
  return why;
}

/* 1 when a model for meta's inputs and classes takes the samples of a
 * dataset of this shape (0 fields unknown). */
static int checkpoint_fits(const checkpoint_meta_t *meta,
                           const dataset_shape_t *shape) {
  return (!shape->channels || meta->in.c == shape->channels) &&
         (!shape->height || meta->in.h == shape->height) &&
         (!shape->width || meta->in.w == shape->width) &&
         (!shape->classes || meta->classes == shape->classes);
}

/* What the dataset's shape says, for a message: "1x28x28 inputs and 10
 * classes", leaving out what is unknown. */
static const char *shape_words(const dataset_shape_t *shape, char *buf,
                               size_t cap) {
  int n = 0;

  buf[0] = '\0';
  if (shape->channels && shape->height && shape->width)
    n = snprintf(buf, cap, "%dx%dx%d inputs%s", shape->channels, shape->height,
                 shape->width, shape->classes ? " and " : "");
  if (shape->classes && n >= 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, "%d classes", shape->classes);
  return buf;
}

/* Fills err for a hint on a layer the first teacher's checkpoint, of
 * `layers` layers, does not have; returns -EINVAL. */
static int hint_layer_fail(const pipeline_spec_t *spec, int layers,
                           spec_error_t *err) {
  memset(err, 0, sizeof *err);
  snprintf(err->field, sizeof err->field,
           "student.representation.teacher_layer");
  if (snprintf(err->message, sizeof err->message,
               "%s is %d, but the first teacher's checkpoint '%s' has %d "
               "layers: the index must be from 0 to %d.",
               err->field, spec->hint_teacher_layer,
               spec->teachers[0].checkpoint, layers,
               layers - 1) >= (int)sizeof err->message)
    utf8_end_trim(err->message);
  return -EINVAL;
}

/* Teacher k's checkpoint, found already: a whole checkpoint with finite
 * weights, which fits shape (NULL: not checked) and, for the first
 * teacher, has the layer the student's hint reads. */
static int checkpoint_check(const pipeline_spec_t *spec, int k,
                            const dataset_shape_t *shape, spec_error_t *err) {
  const pipeline_teacher_spec_t *t = &spec->teachers[k];
  checkpoint_meta_t meta;
  char why[512];
  int rc = checkpoint_verify(t->path, &meta, why, sizeof why);

  if (rc)
    return checkpoint_fail(err, k, rc, "'%s' cannot be loaded: %s.",
                           t->checkpoint, checkpoint_reason(why, t->path));
  if (shape && !checkpoint_fits(&meta, shape))
    return checkpoint_fail(err, k, -EINVAL,
                           "'%s' holds a model for %dx%dx%d inputs and %d "
                           "classes; the dataset '%s' has %s.",
                           t->checkpoint, meta.in.c, meta.in.h, meta.in.w,
                           meta.classes, spec->dataset,
                           shape_words(shape, why, sizeof why));
  if (k == 0 && spec->has_hint &&
      spec->hint_teacher_layer >= meta.desc.n_layers)
    return hint_layer_fail(spec, meta.desc.n_layers, err);
  return 0;
}

int job_checkpoints_check(const pipeline_spec_t *spec,
                          const dataset_shape_t *shape, int *teacher,
                          spec_error_t *err) {
  int rc = 0;

  memset(err, 0, sizeof *err);
  *teacher = -1;
  for (int k = 0; k < spec->n_teachers && rc == 0; k++)
    if (spec->teachers[k].checkpoint[0] &&
        (rc = checkpoint_check(spec, k, shape, err)) != 0)
      *teacher = k;
  return rc;
}

/* Stores which samples the job uses: training samples with their
 * position in the per-epoch arrays, validation samples with -1. Both
 * index lists are sorted, so a merge keeps the rows in index order. */
static int hook_data(void *ctx, const pipeline_data_t *d, char *err,
                     size_t errlen) {
  job_ctx_t *j = ctx;
  int n = d->n_train + d->n_val, t = 0, v = 0, rc = -ENOMEM;
  int32_t *index = malloc(sizeof(int32_t) * (size_t)n);
  int32_t *pos = malloc(sizeof(int32_t) * (size_t)n);
  uint8_t *split = malloc((size_t)n), *obs = malloc((size_t)n);
  uint8_t *clean = malloc((size_t)n);

  if (!index || !pos || !split || !obs || !clean) {
    snprintf(err, errlen, "out of memory storing the job's samples");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    int take_train = v >= d->n_val ||
                     (t < d->n_train && d->train_index[t] < d->val_index[v]);
    index[i] = take_train ? d->train_index[t] : d->val_index[v];
    pos[i] = take_train ? t : -1;
    split[i] = take_train ? DB_SPLIT_TRAIN : DB_SPLIT_VAL;
    obs[i] = d->observed[index[i]];
    clean[i] = d->clean[index[i]];
    if (take_train)
      t++;
    else
      v++;
  }
  rc = job_write(j->writer,
                 (job_write_t){W_SPLIT, j->id, .a = &(db_split_t){n, index,
                               split, pos, obs, clean}},
                 err, errlen);
  if (rc == 0)
    rc = job_log(j, "info", err, errlen,
                 "%d training and %d validation samples, %d labels "
                 "corrupted", d->n_train, d->n_val, d->n_corrupted);
out:
  free(index);
  free(pos);
  free(split);
  free(obs);
  free(clean);
  return rc;
}

/* A stage starts, fresh or after the epochs its stored state holds: the
 * job shows the stage with those epochs completed. */
static int hook_stage(void *ctx, int stage, char *err, size_t errlen) {
  job_ctx_t *j = ctx;
  int epoch =
      stage >= 0 && stage < PIPELINE_STAGE_COUNT ? j->resumed[stage] : 0;
  int rc;

  LOG(j->log, LOG_INFO, "job", "stage started job=%lld stage=%s epoch=%d",
      (long long)j->id, pipeline_stage_name(stage), epoch);
  rc = job_write(j->writer,
                 (job_write_t){W_PROGRESS, j->id,
                               .stage = pipeline_stage_name(stage),
                               .epoch = epoch},
                 err, errlen);
  if (rc == 0)
    rc = job_log(j, "info", err, errlen, "stage %s started",
                 pipeline_stage_name(stage));
  return rc;
}

/* One key=value line per epoch on stdout, for `spkd run`; the noise
 * detection fields only when noise was injected. */
static void echo_epoch(const pipeline_epoch_t *m, const char *stage) {
  printf("stage=%s epoch=%d loss=%.4f train_acc=%.4f val_acc=%.4f "
         "test_acc=%.4f easy=%d seconds=%.2f samples_per_s=%.0f",
         stage, m->epoch, m->train_loss, m->train_acc, m->val_acc,
         m->test_acc, m->easy_size, m->seconds, m->samples_per_s);
  if (isfinite(m->noise_auroc))
    printf(" noise_precision=%.4f noise_recall=%.4f noise_auroc=%.4f",
           m->noise_precision, m->noise_recall, m->noise_auroc);
  if (isfinite(m->estimated_noise_rate))
    printf(" estimated_noise_rate=%.4f", m->estimated_noise_rate);
  printf("\n");
  fflush(stdout);
}

static int epoch_store_state(job_ctx_t *j, const db_metrics_t *dm,
                             const db_records_t *dr,
                             const pipeline_state_t *ps, char *err,
                             size_t errlen);

/* The samples an epoch trained on, for the daemon's counters: every one
 * in the student and baseline stages (the student weighs each in its
 * loss, zero included), elsewhere those that weighed anything; none in
 * an epoch that only evaluated (a teacher loaded from a checkpoint). */
static long long epoch_samples(const pipeline_epoch_t *m,
                               const pipeline_records_t *rec) {
  long long n = 0;

  if (!(m->samples_per_s > 0))
    return 0;
  if (m->stage == PIPELINE_STAGE_STUDENT ||
      m->stage == PIPELINE_STAGE_BASELINE)
    return rec->n;
  for (int i = 0; i < rec->n; i++)
    n += rec->weight[i] > 0;
  return n;
}

/* A number for an event's JSON: null when not finite. */
static json_t *num_or_null(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/* The spl epoch's noise-rate estimates as a "noise_estimate" event:
 * {"epoch", "rate" and "estimated_rate" (the best estimator's),
 * "estimates" {name: rate}, "per_class" [rate of each observed class]}.
 * Kept where a resumed run, which skips the finished spl stage, and a
 * summary find them. Returns 0 or -EIO (-ENOMEM) with err set. */
static int noise_event(job_ctx_t *j, const pipeline_epoch_t *m, char *err,
                       size_t errlen) {
  json_t *est = json_object(), *pc = json_array(), *doc;
  char *text = NULL;
  int rc = -ENOMEM;

  if (j->estimated_noise_rate)
    *j->estimated_noise_rate = m->estimated_noise_rate;
  for (int k = 0; est && k < PIPELINE_ESTIMATORS; k++)
    json_object_set_new(est, pipeline_estimator_name(k),
                        num_or_null(m->noise_estimates[k]));
  for (int c = 0; pc && c < m->noise_classes; c++)
    json_array_append_new(pc, num_or_null(m->noise_per_class[c]));
  doc = json_pack("{s:i, s:f, s:f, s:O, s:O}", "epoch", m->epoch, "rate",
                  m->estimated_noise_rate, "estimated_rate",
                  m->estimated_noise_rate, "estimates", est, "per_class", pc);
  text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
  if (!text)
    snprintf(err, errlen, "out of memory for the noise estimate event");
  else if (job_write(j->writer,
                     (job_write_t){W_EVENT, j->id, .text = text,
                                   .text2 = "noise_estimate"},
                     err, errlen) != 0)
    rc = -EIO;
  else
    rc = 0;
  free(text);
  json_decref(doc);
  json_decref(est);
  json_decref(pc);
  return rc;
}

static int hook_epoch(void *ctx, const pipeline_epoch_t *m,
                      const pipeline_records_t *rec, char *err,
                      size_t errlen) {
  job_ctx_t *j = ctx;
  int rc;

  if (isfinite(m->estimated_noise_rate) &&
      noise_event(j, m, err, errlen) != 0)
    return -EIO;
  db_metrics_t dm = {.epoch = m->epoch,
                     .train_loss = m->train_loss,
                     .train_acc = m->train_acc,
                     .val_acc = m->val_acc,
                     .test_acc = m->test_acc,
                     .easy_size = m->easy_size,
                     .easy_fraction = m->easy_fraction,
                     .lr = m->lr,
                     .seconds = m->seconds,
                     .samples_per_s = m->samples_per_s,
                     .noise_precision = m->noise_precision,
                     .noise_recall = m->noise_recall,
                     .noise_auroc = m->noise_auroc};
  db_records_t dr = {rec->n,      rec->loss,   rec->prob, rec->weight,
                     rec->easy,   rec->margin, rec->pred};

  snprintf(dm.stage, sizeof dm.stage, "%s", pipeline_stage_name(m->stage));
  LOG(j->log, LOG_INFO, "job",
      "epoch done job=%lld stage=%s epoch=%d/%d loss=%.4f train_acc=%.4f "
      "val_acc=%.4f test_acc=%.4f easy=%d seconds=%.2f samples_per_s=%.0f",
      (long long)j->id, dm.stage, m->epoch, m->epochs, m->train_loss,
      m->train_acc, m->val_acc, m->test_acc, m->easy_size, m->seconds,
      m->samples_per_s);
  /* Stored first: a line on stdout means the epoch survives a kill. */
  rc = rec->state ? epoch_store_state(j, &dm, &dr, rec->state, err, errlen)
                  : job_write(j->writer,
                              (job_write_t){W_EPOCH, j->id, .a = &dm,
                                            .b = &dr},
                              err, errlen);
  if (rc == 0)
    metrics_epoch_add(j->metrics, epoch_samples(m, rec));
  if (rc == 0 && j->echo)
    echo_epoch(m, dm.stage);
  return rc;
}

/* The stage's state beside its epoch; a finished stage's carries the
 * hash of its weights. */
static int epoch_store_state(job_ctx_t *j, const db_metrics_t *dm,
                             const db_records_t *dr,
                             const pipeline_state_t *ps, char *err,
                             size_t errlen) {
  db_state_t st = {.data = ps->data};

  snprintf(st.info.stage, sizeof st.info.stage, "%s", dm->stage);
  snprintf(st.info.kind, sizeof st.info.kind, ps->final ? "final" : "latest");
  st.info.epoch = ps->epoch;
  st.info.size = ps->size;
  if (ps->final && ps->model && weights_sha256(ps->model, st.info.sha256)) {
    snprintf(err, errlen, "cannot hash the weights of stage %s", dm->stage);
    return -EIO;
  }
  return job_write(j->writer,
                   (job_write_t){W_EPOCH, j->id, .a = dm, .b = dr, .c = &st},
                   err, errlen);
}

/* The stage's stored state, final before latest, for the pipeline. */
static int hook_load_state(void *ctx, int stage, uint8_t **data,
                           size_t *size, char *err, size_t errlen) {
  static const char *const kinds[] = {"final", "latest"};
  job_ctx_t *j = ctx;
  db_checkpoint_t c;
  int rc = -ENOENT;

  *data = NULL;
  *size = 0;
  for (int k = 0; k < 2 && rc == -ENOENT; k++)
    rc = db_checkpoint_get(j->db, j->id, pipeline_stage_name(stage),
                           kinds[k], &c, err, errlen);
  if (rc == -ENOENT)
    return 0;
  if (rc)
    return rc;
  if (stage >= 0 && stage < PIPELINE_STAGE_COUNT)
    j->resumed[stage] = c.info.epoch;
  LOG(j->log, LOG_INFO, "job", "stage resumed job=%lld stage=%s epoch=%d "
      "kind=%s", (long long)j->id, c.info.stage, c.info.epoch, c.info.kind);
  rc = strcmp(c.info.kind, "final") == 0
           ? job_log(j, "info", err, errlen, "stage %s restored: it had "
                     "finished after epoch %d", c.info.stage, c.info.epoch)
           : job_log(j, "info", err, errlen, "stage %s resumed after epoch "
                     "%d", c.info.stage, c.info.epoch);
  if (rc) {
    db_checkpoint_deinit(&c);
    return rc;
  }
  *data = c.data;
  *size = c.info.size;
  c.data = NULL;
  db_checkpoint_deinit(&c);
  return 0;
}

static int hook_dynamics(void *ctx, const pipeline_dynamics_t *d, char *err,
                         size_t errlen) {
  job_ctx_t *j = ctx;
  db_dynamics_t dd = {d->n,           d->confidence, d->variability,
                      d->correctness, d->forgetting, d->aum};
  int rc = job_write(j->writer,
                     (job_write_t){W_DYNAMICS, j->id,
                                   .stage = pipeline_stage_name(d->stage),
                                   .a = &dd},
                     err, errlen);

  if (rc == 0)
    rc = job_log(j, "info", err, errlen,
                 "stage %s: training dynamics recorded",
                 pipeline_stage_name(d->stage));
  return rc;
}

/* Applies the daemon's --threads-per-job: the threads of a spec that
 * names none, and the most any job gets. */
static void job_threads_bound(const job_run_t *job, const char *spec_json,
                              pipeline_spec_t *spec) {
  json_t *root;

  if (job->threads_max <= 0)
    return;
  root = json_loads(spec_json, 0, NULL);
  if (!json_object_get(root, "threads") || spec->threads > job->threads_max)
    spec->threads = job->threads_max;
  json_decref(root);
}

/* Reads and parses the stored spec, then records the provenance. */
static int job_prepare(job_ctx_t *j, const job_run_t *job,
                       pipeline_spec_t *spec, char *err, size_t errlen) {
  db_job_t row;
  spec_error_t se;
  char *prov = NULL;
  int rc = db_job_get(j->db, job->id, &row, err, errlen);

  if (rc)
    return rc;
  rc = spec_parse(row.spec_json, strlen(row.spec_json), spec, &se);
  if (rc)
    snprintf(err, errlen, "stored spec is invalid: %s%s%s", se.field,
             se.field[0] ? ": " : "", se.message);
  else
    job_threads_bound(job, row.spec_json, spec);
  db_job_deinit(&row);
  if (rc == 0)
    rc = job_provenance(job->data_root, spec->dataset, spec->threads, &prov,
                        err, errlen);
  if (rc == 0)
    rc = job_write(j->writer,
                   (job_write_t){W_PROVENANCE, job->id, .text = prov}, err,
                   errlen);
  free(prov);
  return rc;
}

/* The stage of teacher k, as the pipeline numbers it. */
static int teacher_stage(const pipeline_spec_t *spec, int k) {
  return spec->n_teachers == 1 ? PIPELINE_STAGE_TEACHER
                               : PIPELINE_STAGE_TEACHER0 + k;
}

/* Shows the job at teacher k's stage, before its first epoch: where it
 * failed when the teacher's checkpoint could not be loaded. */
static void teacher_failed(job_ctx_t *j, const pipeline_spec_t *spec, int k) {
  const char *stage = pipeline_stage_name(teacher_stage(spec, k));
  char err[256];

  if (k < 0 || k >= spec->n_teachers)
    return;
  if (job_write(j->writer, (job_write_t){W_PROGRESS, j->id, .stage = stage},
                err, sizeof err) != 0)
    LOG(j->log, LOG_ERROR, "job",
        "cannot record the failed stage job=%lld error=\"%s\"",
        (long long)j->id, err);
}

/* Finds the teachers' checkpoints before anything is loaded, so that a
 * missing file fails the job at its start. */
static int job_checkpoints_resolve(job_ctx_t *j, const job_run_t *job,
                                   pipeline_spec_t *spec, char *err,
                                   size_t errlen) {
  spec_error_t se;
  int k = -1;
  int rc = job_checkpoints_find(job->data_root, spec, &se);

  if (rc == 0)
    return 0;
  snprintf(err, errlen, "%s", se.message);
  if (sscanf(se.field, "teachers[%d]", &k) == 1)
    teacher_failed(j, spec, k);
  return rc;
}

/* Checks the teachers' checkpoints against the loaded training split
 * before any stage trains: a file changed since the job was submitted
 * fails the job now, at its teacher's stage, not after the stages
 * before it trained. */
static int job_checkpoints_fit(job_ctx_t *j, const pipeline_spec_t *spec,
                               const dataset_t *train, char *err,
                               size_t errlen) {
  dataset_shape_t shape = {.channels = train->channels,
                           .height = train->height,
                           .width = train->width,
                           .classes = train->classes};
  spec_error_t se;
  int k;
  int rc = job_checkpoints_check(spec, &shape, &k, &se);

  if (rc == 0)
    return 0;
  snprintf(err, errlen, "%s", se.message);
  teacher_failed(j, spec, k);
  return rc;
}

/* The teacher whose checkpoint a failed pipeline could not load, or -1:
 * the loader's message opens with the file's path, the pipeline's own
 * check with the teacher's field. A message of the first kind is
 * rewritten to name the teacher as the checks before the run do. */
static int pipeline_failed_teacher(const pipeline_spec_t *spec, char *err,
                                   size_t errlen) {
  for (int k = 0; k < spec->n_teachers; k++) {
    const pipeline_teacher_spec_t *t = &spec->teachers[k];
    size_t n = strlen(t->path);
    char field[64], *why;
    snprintf(field, sizeof field, "teachers[%d].checkpoint", k);
    if (!t->checkpoint[0])
      continue;
    if (strncmp(err, field, strlen(field)) == 0)
      return k;
    if (n == 0 || strncmp(err, t->path, n) != 0 || err[n] != ':')
      continue;
    why = strdup(checkpoint_reason(err, t->path));
    if (why)
      snprintf(err, errlen, "%s '%s' cannot be loaded: %s.", field,
               t->checkpoint, why);
    free(why);
    return k;
  }
  return -1;
}

/* The run itself; returns the pipeline's code with err set. */
static int job_execute(job_ctx_t *j, const job_run_t *job, char *err,
                       size_t errlen) {
  pipeline_spec_t spec;
  dataset_t train = {0}, test = {0};
  pipeline_hooks_t hooks = {j,          hook_data,     hook_stage,
                            hook_epoch, job->stop,     hook_dynamics,
                            hook_load_state};
  int rc = job_prepare(j, job, &spec, err, errlen);

  if (rc == 0)
    rc = job_checkpoints_resolve(j, job, &spec, err, errlen);
  if (rc == 0)
    rc = dataset_load(job->data_root, spec.dataset, spec.norm, &train,
                      &test, err, errlen);
  if (rc == 0)
    rc = job_checkpoints_fit(j, &spec, &train, err, errlen);
  if (rc == 0)
    rc = job_log(j, "info", err, errlen, "dataset %s loaded: %d training "
                 "and %d test samples (threads: %d)", spec.dataset, train.n,
                 test.n, spec.threads);
  if (rc == 0) {
    rc = pipeline_run(&spec, &train, &test, &hooks, err, errlen);
    if (rc && rc != -ECANCELED)
      teacher_failed(j, &spec, pipeline_failed_teacher(&spec, err, errlen));
  }
  dataset_deinit(&train);
  dataset_deinit(&test);
  return rc;
}

int job_run(const job_run_t *job, char state_out[16], char *err,
            size_t errlen) {
  job_ctx_t j = {NULL,     job->writer, job->id, job->log, job->echo,
                 job->estimated_noise_rate, job->metrics};
  char why[512] = "";
  const char *state = "succeeded", *error = NULL;
  int rc = db_open(job->db_path, &j.db, why, sizeof why);

  if (rc == 0)
    rc = job_execute(&j, job, why, sizeof why);
  if (rc == -ECANCELED && atomic_load(job->stop) == JOB_STOP_CANCEL) {
    state = "cancelled";
  } else if (rc == -ECANCELED) {
    /* Stopped with its process: it stays running, and the next process
     * on the database resumes it after its last stored epoch. */
    snprintf(state_out, 16, "interrupted");
    db_close(j.db);
    return 0;
  } else if (rc) {
    state = "failed";
    error = why;
  }
  snprintf(state_out, 16, "%s", state);
  if (!j.db) {
    snprintf(err, errlen, "%s", why);
    return rc;
  }
  rc = job_write(j.writer,
                 (job_write_t){W_FINISH, job->id, .text = state,
                               .text2 = error},
                 err, errlen);
  if (rc == 0 && error)
    snprintf(err, errlen, "%s", error);
  db_close(j.db);
  return rc;
}
