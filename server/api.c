/* SPDX-License-Identifier: MIT */
/* The routes of the /v1 API and /healthz: each reads what the request
 * names from storage, builds the JSON object the OpenAPI description
 * (api-spec/openapi.yaml) promises, and answers. Plumbing is http.c's. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/blas.h"
#include "../engine/dataset.h"
#include "../engine/pipeline.h"
#include "http_internal.h"
#include "job.h"
#include "spec.h"
#include "version.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

static const char *const page_params[] = {"limit", "cursor", NULL};

/* RFC 3339 UTC with milliseconds, or JSON null for 0. */
static json_t *json_time(double t) {
  char buf[40];
  time_t sec = (time_t)t;
  struct tm tm;
  size_t n;

  if (t <= 0.0)
    return json_null();
  gmtime_r(&sec, &tm);
  n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ",
           (int)((t - (double)sec) * 1000.0) % 1000);
  return json_string(buf);
}

/* Reads ?limit= and ?cursor= (a decimal number >= 0); answers 400 and
 * returns -1 when either is bad. *cursor is -1 without one. */
static int page_params_read(api_req_t *req, int *limit, long long *cursor) {
  const char *l = api_query(req, "limit"), *c = api_query(req, "cursor");
  long long v = PAGE_DEFAULT;

  if (l && api_parse_int(l, 1, PAGE_MAX, &v) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "limit",
                    "limit must be an integer from 1 to %d", PAGE_MAX);
    return -1;
  }
  *limit = (int)v;
  *cursor = -1;
  if (c && api_parse_int(c, 0, LLONG_MAX, cursor) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "cursor",
                    "cursor is not one this server handed out");
    return -1;
  }
  return 0;
}

static json_t *page_new(json_t *items, int more, long long next) {
  char buf[32];

  snprintf(buf, sizeof buf, "%lld", next);
  return json_pack("{s:o, s:s?}", "items", items, "next_cursor",
                   more ? buf : NULL);
}

void api_health(api_req_t *req) {
  static const char *const none[] = {NULL};
  char core[64];

  if (api_query_check(req, none) < 0)
    return;
  blas_corename(core, sizeof core);
  api_reply_json(req, 200,
                 json_pack("{s:s, s:s, s:s}", "status", "ok", "version",
                           SPK_VERSION, "blas_core", core));
}

/* The stages a job runs, in order, with what each plans: spl, the
 * teacher ("teacher") or the teachers ("teacher0", "teacher1", ...),
 * the student and, when the spec has one, the baseline. Fills stage and
 * plan (PIPELINE_STAGE_COUNT entries each) and returns how many. */
static int job_stage_list(const pipeline_spec_t *spec, int *stage,
                          const pipeline_stage_spec_t **plan) {
  int n = 0;

  stage[n] = PIPELINE_STAGE_SPL;
  plan[n++] = &spec->spl;
  for (int k = 0; k < spec->n_teachers; k++) {
    stage[n] = spec->n_teachers == 1 ? PIPELINE_STAGE_TEACHER
                                     : PIPELINE_STAGE_TEACHER0 + k;
    plan[n++] = &spec->teachers[k].stage;
  }
  stage[n] = PIPELINE_STAGE_STUDENT;
  plan[n++] = &spec->student;
  if (spec->has_baseline) {
    stage[n] = PIPELINE_STAGE_BASELINE;
    plan[n++] = &spec->baseline;
  }
  return n;
}

/* The last completed epoch of stage name in m (n rows) and its test
 * accuracy (NaN before the first). */
static int stage_progress(const db_metrics_t *m, int n, const char *name,
                          double *acc) {
  int done = 0;

  *acc = NAN;
  for (int i = 0; i < n; i++)
    if (strcmp(m[i].stage, name) == 0) {
      done = m[i].epoch > done ? m[i].epoch : done;
      *acc = m[i].test_acc;
    }
  return done;
}

/* The per-stage summary of a job: planned and completed epochs and the
 * last completed epoch's test accuracy. */
static json_t *job_stages(api_req_t *req, const db_job_t *job,
                          const pipeline_spec_t *spec) {
  const pipeline_stage_spec_t *plan[PIPELINE_STAGE_COUNT];
  int stage[PIPELINE_STAGE_COUNT];
  int count = job_stage_list(spec, stage, plan);
  json_t *out = json_object();
  db_metrics_t *m = NULL;
  char err[256];
  int n = 0;

  if (db_metrics_list(req->db, job->id, &m, &n, err, sizeof err) != 0)
    n = 0;
  for (int s = 0; s < count; s++) {
    const char *name = pipeline_stage_name(stage[s]);
    double acc;
    int done = stage_progress(m, n, name, &acc);
    json_object_set_new(out, name,
                        json_pack("{s:i, s:i, s:o}", "epochs", plan[s]->epochs,
                                  "completed_epochs", done, "test_acc",
                                  api_number(acc)));
  }
  free(m);
  return out;
}

/* The last completed epoch of the job's stage: the job's row, or more
 * when the stage's stored epochs say so (the row's progress lags the
 * epochs, as in a stage that resumed after stored epochs). */
static json_int_t job_epoch(const db_job_t *job, json_t *stages) {
  json_t *s = job->stage ? json_object_get(stages, job->stage) : NULL;
  json_int_t done = json_integer_value(json_object_get(s, "completed_epochs"));

  return done > job->epoch ? done : job->epoch;
}

static json_t *job_json(api_req_t *req, const db_job_t *job) {
  json_t *spec_obj = json_loads(job->spec_json, 0, NULL);
  json_t *prov =
      job->provenance_json ? json_loads(job->provenance_json, 0, NULL) : NULL;
  pipeline_spec_t spec;
  spec_error_t se;
  json_t *o;

  o = json_pack(
      "{s:I, s:s?, s:s, s:i, s:o, s:o, s:o, s:s?, s:i, s:s?, s:b}", "id",
      (json_int_t)job->id, "name", job->name, "state", job->state, "priority",
      job->priority, "created_at", json_time(job->created_at), "started_at",
      json_time(job->started_at), "finished_at", json_time(job->finished_at),
      "stage", job->stage, "epoch", job->epoch, "error", job->error,
      "cancel_requested", runner_cancelling(req->cfg->runner, job->id));
  if (!o)
    return NULL;
  json_object_set_new(o, "spec", spec_obj ? spec_obj : json_object());
  json_object_set_new(o, "provenance", prov ? prov : json_null());
  if (spec_parse(job->spec_json, strlen(job->spec_json), &spec, &se) == 0)
    json_object_set_new(o, "stages", job_stages(req, job, &spec));
  else
    json_object_set_new(o, "stages", json_object());
  json_object_set_new(
      o, "epoch", json_integer(job_epoch(job, json_object_get(o, "stages"))));
  return o;
}

/* Reads the job named by path segment i; answers 404 and returns -1 when
 * there is none. */
static int job_from_path(api_req_t *req, int i, db_job_t *job) {
  long long id;
  char err[256];
  int rc;

  if (api_parse_int(req->seg[i], 1, LLONG_MAX, &id) < 0) {
    api_reply_error(req, 404, "not_found", NULL, "no job '%.32s'", req->seg[i]);
    return -1;
  }
  rc = db_job_get(req->db, id, job, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    return -1;
  }
  return 0;
}

/* Checks ?state= (NULL: absent); answers 400 and returns -1 when it
 * names no state a job can be in. */
static int job_state_param_check(api_req_t *req, const char *state) {
  static const char *const states[] = {"queued", "running", "succeeded",
                                       "failed", "cancelled"};

  for (size_t i = 0; state && i < sizeof states / sizeof states[0]; i++)
    if (strcmp(state, states[i]) == 0)
      return 0;
  if (!state)
    return 0;
  api_reply_error(req, 400, "invalid_parameter", "state",
                  "state must be one of queued, running, succeeded, failed, "
                  "cancelled");
  return -1;
}

/* Jobs newest first, those in ?state= only when given; the cursor is the
 * id of the last job of the previous page, so jobs submitted while a
 * client pages never shift what it has still to read. */
void api_jobs_list(api_req_t *req) {
  static const char *const params[] = {"state", "limit", "cursor", NULL};
  db_job_filter_t filter = {api_query(req, "state"), 0, 0};
  db_job_t *jobs = NULL;
  json_t *items;
  long long cursor;
  char err[256];
  int limit, n = 0, rc;

  if (api_query_check(req, params) < 0 ||
      page_params_read(req, &limit, &cursor) < 0 ||
      job_state_param_check(req, filter.state) < 0)
    return;
  /* One row more than asked tells whether another page follows. */
  filter.before = cursor;
  filter.limit = limit + 1;
  rc = db_job_find(req->db, &filter, &jobs, &n, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  items = json_array();
  for (int i = 0; i < n && i < limit; i++)
    json_array_append_new(items, job_json(req, &jobs[i]));
  api_reply_json(req, 200,
                 page_new(items, n > limit,
                          n > limit ? (long long)jobs[limit - 1].id : 0));
  db_jobs_free(jobs, n);
}

/* Checks what only the data root can tell: the dataset exists and holds
 * enough samples for the limit. Answers 400 and returns -1 when not. */
static int spec_check_dataset(api_req_t *req, const pipeline_spec_t *spec) {
  int n_train, n_test;
  char err[512];

  if (dataset_probe(req->cfg->data_root, spec->dataset, &n_train, &n_test, err,
                    sizeof err) != 0) {
    api_reply_error(req, 400, "invalid_spec", "dataset.name", "%s", err);
    return -1;
  }
  if (spec->limit > n_train) {
    api_reply_error(req, 400, "invalid_spec", "dataset.limit",
                    "limit %d exceeds the %d samples of the training file",
                    spec->limit, n_train);
    return -1;
  }
  return 0;
}

/* What the data root tells of the dataset's samples without loading
 * them: an IDX dataset's image shape and classes from its headers and
 * training labels, a CIFAR one's fixed image shape; zeros where unknown
 * (a CSV file, a dataset that cannot be read), left to the job's start. */
static void spec_dataset_shape(api_req_t *req, const pipeline_spec_t *spec,
                               dataset_shape_t *shape) {
  dataset_files_t *files = malloc(sizeof *files);
  char err[512];

  memset(shape, 0, sizeof *shape);
  if (!files || dataset_files_find(req->cfg->data_root, spec->dataset, files,
                                   err, sizeof err) != 0) {
    free(files);
    return;
  }
  if (files->format == DATASET_FORMAT_IDX &&
      dataset_idx_describe(files, shape, err, sizeof err) != 0)
    memset(shape, 0, sizeof *shape);
  if (files->format == DATASET_FORMAT_CIFAR10 ||
      files->format == DATASET_FORMAT_CIFAR100) {
    shape->channels = 3;
    shape->height = shape->width = 32;
  }
  free(files);
}

/* Checks that every teacher's checkpoint is a file in the data root that
 * loads as a model for the dataset's samples and classes, so that a bad
 * file is refused now rather than after the stages before its teacher
 * trained. Answers 400 naming the teacher's field and returns -1 when
 * not. */
static int spec_check_checkpoints(api_req_t *req, pipeline_spec_t *spec) {
  dataset_shape_t shape;
  spec_error_t se;
  int any = 0, k;

  for (int i = 0; i < spec->n_teachers; i++)
    any |= spec->teachers[i].checkpoint[0] != '\0';
  if (!any)
    return 0;
  if (job_checkpoints_find(req->cfg->data_root, spec, &se) == 0) {
    spec_dataset_shape(req, spec, &shape);
    if (job_checkpoints_check(spec, &shape, &k, &se) == 0)
      return 0;
  }
  api_reply_error(req, 400, "invalid_spec", se.field, "%s", se.message);
  return -1;
}

/* The API's writes, made on the process's writer thread. */
enum { AW_INSERT, AW_CANCEL, AW_DELETE };

typedef struct {
  int kind;
  int64_t id;                   /* AW_CANCEL, AW_DELETE */
  const char *name, *spec_json; /* AW_INSERT, the spec as submitted */
  int priority;                 /* AW_INSERT */
  const char *key, *sha256;     /* AW_INSERT: Idempotency-Key, or NULL */
  int64_t new_id;               /* AW_INSERT: the job made or replayed */
  int replayed;                 /* AW_INSERT: the key named a job */
} api_write_t;

/* Stores a new queued job with its priority and its key. A key stored
 * before names the job to answer with instead, when it came with the
 * same body: else -EEXIST with replayed set. All of it happens in one
 * savepoint on the one writer, so two requests with one key never both
 * insert; a key taken anyway (the table's primary key) is -EEXIST with
 * replayed 0 and nothing stored. */
static int api_write_insert(db_t *db, api_write_t *w, char *err,
                            size_t errlen) {
  char sha[65];
  int r = 0;

  if (w->key)
    r = db_idem_find(db, w->key, &w->new_id, sha, err, errlen);
  if (r || w->new_id) {
    w->replayed = w->new_id != 0;
    if (r || strcmp(sha, w->sha256) == 0)
      return r;
    snprintf(err, errlen,
             "this Idempotency-Key was first sent with "
             "another body, which made job %lld; resend that body or "
             "choose a new key",
             (long long)w->new_id);
    return -EEXIST;
  }
  r = db_job_insert(db, w->name, w->spec_json, &w->new_id, err, errlen);
  if (!r && w->priority != 0)
    r = db_job_label_set(db, w->new_id, w->priority, NULL, err, errlen);
  if (!r && w->key)
    r = db_idem_insert(db, w->key, w->new_id, w->sha256, err, errlen);
  return r;
}

static int api_write_run(db_t *db, void *ctx, char *err, size_t errlen) {
  api_write_t *w = ctx;

  if (w->kind == AW_INSERT)
    return api_write_insert(db, w, err, errlen);
  if (w->kind == AW_DELETE)
    return db_job_delete(db, w->id, err, errlen);
  return db_job_cancel_queued(db, w->id, err, errlen);
}

/* Makes write w on the writer thread and returns its result. */
static int api_write(api_req_t *req, api_write_t *w, char *err, size_t errlen) {
  return db_writer_call(runner_writer(req->cfg->runner), api_write_run, w, err,
                        errlen);
}

/* Reads the Idempotency-Key header into *key (NULL without one): 1 to
 * DB_IDEM_KEY_MAX printable ASCII characters. Answers 400 naming the
 * header and returns -1 when it is not one. */
static int idem_key_read(api_req_t *req, const char **key) {
  const char *k = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                              "Idempotency-Key");
  size_t n = k ? strlen(k) : 0;
  int ok = n >= 1 && n <= DB_IDEM_KEY_MAX;

  for (size_t i = 0; ok && i < n; i++)
    ok = k[i] >= 0x20 && k[i] <= 0x7e;
  *key = k;
  if (!k || ok)
    return 0;
  api_reply_error(req, 400, "invalid_parameter", "Idempotency-Key",
                  "Idempotency-Key must be 1 to %d printable ASCII "
                  "characters",
                  DB_IDEM_KEY_MAX);
  return -1;
}

/* The SHA-256 of a JSON body in 64 lowercase hex digits, taken over the
 * document with sorted keys and no spaces: two bodies that differ only
 * in key order or layout hash alike. -EINVAL when the body is not JSON
 * (a repeated key included), -ENOMEM. */
static int spec_digest(const char *body, size_t len, char hex[65]) {
  json_t *doc = json_loadb(
      body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
      NULL);
  char *text =
      doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
          : NULL;
  unsigned char digest[32];
  int rc = doc ? -ENOMEM : -EINVAL;

  if (text &&
      gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), digest) == 0) {
    for (int i = 0; i < 32; i++)
      snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    rc = 0;
  }
  free(text);
  json_decref(doc);
  return rc;
}

/* Stores the job w describes. A key taken between this request's look-up
 * and its insert (another process on the database) is looked up again,
 * once. Answers the failures and returns -1; 0 with w->new_id set. */
static int job_submit_write(api_req_t *req, api_write_t *w) {
  char err[256];
  int rc = api_write(req, w, err, sizeof err);

  if (rc == -EEXIST && !w->replayed) {
    w->new_id = 0;
    rc = api_write(req, w, err, sizeof err);
  }
  if (rc == -EEXIST) {
    api_reply_error(req, 409, "conflict", NULL, "%s", err);
    return -1;
  }
  if (rc) {
    api_reply_storage(req, rc == -ENOENT ? -EIO : rc, err);
    return -1;
  }
  return 0;
}

/* Answers with the job w stored: 201 for a new one, 200 with
 * Idempotent-Replayed for the job a key named. */
static void job_submit_reply(api_req_t *req, const api_write_t *w) {
  db_job_t job;
  char err[256], where[64];
  int rc = db_job_get(req->db, w->new_id, &job, err, sizeof err);

  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  LOG(req->cfg->log, LOG_INFO, "api", "job %s job=%lld name=\"%s\" priority=%d",
      w->replayed ? "replayed" : "queued", (long long)job.id,
      job.name ? job.name : "", job.priority);
  snprintf(where, sizeof where, "/v1/jobs/%lld", (long long)w->new_id);
  api_reply_header(req, MHD_HTTP_HEADER_LOCATION, where);
  if (w->replayed)
    api_reply_header(req, "Idempotent-Replayed", "true");
  api_reply_json(req, w->replayed ? 200 : 201, job_json(req, &job));
  db_job_deinit(&job);
}

/* With a key, sets w->sha256 to the body's hash in sha (NULL when the
 * body is not JSON) and, when the key names a job made from this body,
 * w->new_id to that job and w->replayed. A failed read is left to the
 * writer, which looks the key up again before it inserts. */
static void job_replay_find(api_req_t *req, api_write_t *w, char sha[65]) {
  char known[65], err[256];
  int64_t id = 0;

  w->sha256 = NULL;
  if (!w->key || spec_digest(req->body, req->body_len, sha) != 0)
    return;
  w->sha256 = sha;
  if (db_idem_find(req->db, w->key, &id, known, err, sizeof err) == 0 &&
      id != 0 && strcmp(known, sha) == 0) {
    w->new_id = id;
    w->replayed = 1;
  }
}

/* Validates a spec, stores it as a queued job with its priority and
 * wakes the runner. With an Idempotency-Key a retry answers with the
 * job the key made, before any check (the data root may have changed
 * since); see api-spec/openapi.yaml. */
void api_jobs_create(api_req_t *req) {
  static const char *const none[] = {NULL};
  api_write_t w = {.kind = AW_INSERT, .spec_json = req->body};
  pipeline_spec_t spec;
  spec_error_t se;
  char sha[65];

  if (api_query_check(req, none) < 0 || idem_key_read(req, &w.key) < 0)
    return;
  job_replay_find(req, &w, sha);
  if (w.replayed) {
    job_submit_reply(req, &w);
    return;
  }
  if (spec_parse(req->body, req->body_len, &spec, &se) != 0) {
    api_reply_error(req, 400, se.malformed ? "malformed_json" : "invalid_spec",
                    se.field[0] ? se.field : NULL, "%s", se.message);
    return;
  }
  if (spec_check_dataset(req, &spec) < 0 ||
      spec_check_checkpoints(req, &spec) < 0)
    return;
  if (spec_priority(req->body, req->body_len, &w.priority) != 0 ||
      (w.key && !w.sha256)) {
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  w.name = spec.name[0] ? spec.name : NULL;
  if (job_submit_write(req, &w) < 0)
    return;
  if (!w.replayed)
    runner_notify(req->cfg->runner);
  job_submit_reply(req, &w);
}

void api_job_get(api_req_t *req) {
  static const char *const none[] = {NULL};
  db_job_t job;

  if (api_query_check(req, none) < 0 || job_from_path(req, 2, &job) < 0)
    return;
  api_reply_json(req, 200, job_json(req, &job));
  db_job_deinit(&job);
}

/* Answers 409 for a cancel of job, which is not queued and not running
 * in this daemon: it ended, or another process runs it. */
static void cancel_refuse(api_req_t *req, const db_job_t *job) {
  int here = strcmp(job->state, "running") != 0;

  api_reply_error(req, 409, "conflict", NULL,
                  "job %lld is %s%s; only queued or running jobs can be "
                  "cancelled",
                  (long long)job->id, job->state,
                  here ? "" : " in another process");
}

/* The write of kind (AW_CANCEL, AW_DELETE) on the job named by path
 * segment 2, for a request that takes no query parameters: *id gets the
 * job's id and *rc the write's result. Returns -1 when the request was
 * answered already (bad parameter, no such job). */
static int job_write_from_path(api_req_t *req, int kind, int64_t *id, int *rc,
                               char *err, size_t errlen) {
  static const char *const none[] = {NULL};
  db_job_t job;

  if (api_query_check(req, none) < 0 || job_from_path(req, 2, &job) < 0)
    return -1;
  *id = job.id;
  db_job_deinit(&job);
  *rc = api_write(req, &(api_write_t){.kind = kind, .id = *id}, err, errlen);
  return 0;
}

/* A queued job is cancelled in storage at once; a running one is asked
 * to stop and ends as cancelled at its next batch. The state read first
 * may be stale by the time the writer runs (the runner may just have
 * started the job), so a job no longer queued is asked to stop whatever
 * the first read said, and a refusal names the state read after it. */
void api_job_cancel(api_req_t *req) {
  db_job_t job;
  int64_t id;
  char err[256];
  int rc;

  if (job_write_from_path(req, AW_CANCEL, &id, &rc, err, sizeof err) < 0)
    return;
  if (rc == -EBUSY && runner_cancel(req->cfg->runner, id) == 0)
    rc = 0;
  if (rc && rc != -EBUSY) {
    api_reply_storage(req, rc, err);
    return;
  }
  if (job_from_path(req, 2, &job) < 0)
    return;
  if (rc == -EBUSY) {
    cancel_refuse(req, &job);
  } else {
    LOG(req->cfg->log, LOG_INFO, "api", "job cancel requested job=%lld",
        (long long)id);
    api_reply_json(req, 200, job_json(req, &job));
  }
  db_job_deinit(&job);
}

/* One epoch's metrics; the noise-detection figures are null when the job
 * injected no noise. */
static json_t *metric_json(const db_metrics_t *m) {
  return json_pack(
      "{s:s, s:i, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
      "stage", m->stage, "epoch", m->epoch, "train_loss",
      api_number(m->train_loss), "train_acc", api_number(m->train_acc),
      "val_acc", api_number(m->val_acc), "test_acc", api_number(m->test_acc),
      "easy_size", m->easy_size, "easy_fraction", api_number(m->easy_fraction),
      "lr", api_number(m->lr), "seconds", api_number(m->seconds),
      "samples_per_s", api_number(m->samples_per_s), "noise_precision",
      api_number(m->noise_precision), "noise_recall",
      api_number(m->noise_recall), "noise_auroc", api_number(m->noise_auroc));
}

void api_job_metrics(api_req_t *req) {
  db_metrics_t *m = NULL;
  db_job_t job;
  json_t *items;
  long long cursor;
  int64_t id;
  char err[256];
  int limit, n = 0, first, rc;

  if (api_query_check(req, page_params) < 0 ||
      page_params_read(req, &limit, &cursor) < 0 ||
      job_from_path(req, 2, &job) < 0)
    return;
  id = job.id;
  db_job_deinit(&job);
  rc = db_metrics_list(req->db, id, &m, &n, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc == -ENOENT ? -EIO : rc, err);
    return;
  }
  first = cursor < 0 ? 0 : (cursor > n ? n : (int)cursor);
  items = json_array();
  for (int i = first; i < n && i < first + limit; i++)
    json_array_append_new(items, metric_json(&m[i]));
  api_reply_json(req, 200, page_new(items, first + limit < n, first + limit));
  free(m);
}

/* Validates the stage and epoch segments; answers 404 and returns -1
 * when either names nothing. Whether this job ran the stage is for
 * storage to say. */
static int stage_epoch_from_path(api_req_t *req, const char **stage,
                                 int *epoch) {
  long long e;

  *stage = req->seg[4];
  if (pipeline_stage_from_name(*stage) < 0) {
    api_reply_error(req, 404, "not_found", NULL,
                    "no stage '%.32s'; stages are spl, teacher (teacher0 "
                    "to teacher7 when a job has several), student, baseline",
                    *stage);
    return -1;
  }
  if (api_parse_int(req->seg[6], 1, INT_MAX, &e) < 0) {
    api_reply_error(req, 404, "not_found", NULL,
                    "no epoch '%.32s'; epochs "
                    "count from 1",
                    req->seg[6]);
    return -1;
  }
  *epoch = (int)e;
  return 0;
}

void api_epoch_samples(api_req_t *req) {
  static const char *const params[] = {"set", "limit", "cursor", NULL};
  const char *set = api_query(req, "set"), *stage;
  int32_t *idx = NULL;
  db_job_t job;
  json_t *items, *page;
  long long cursor;
  int64_t id;
  char err[256];
  int limit, epoch, n = 0, total = 0, last, rc, easy;

  if (api_query_check(req, params) < 0 ||
      page_params_read(req, &limit, &cursor) < 0)
    return;
  if (set && strcmp(set, "easy") != 0 && strcmp(set, "hard") != 0) {
    api_reply_error(req, 400, "invalid_parameter", "set",
                    "set must be 'easy' or 'hard'");
    return;
  }
  easy = !set || strcmp(set, "easy") == 0;
  if (job_from_path(req, 2, &job) < 0)
    return;
  id = job.id;
  db_job_deinit(&job);
  if (stage_epoch_from_path(req, &stage, &epoch) < 0)
    return;
  /* One row more than asked tells whether another page follows. */
  rc = db_epoch_set_size(req->db, id, stage, epoch, easy, &total, err,
                         sizeof err);
  if (rc == 0)
    rc = db_epoch_set(req->db, id, stage, epoch, easy,
                      cursor > INT32_MAX ? INT32_MAX : (int32_t)cursor,
                      limit + 1, &idx, &n, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  last = n > limit ? limit : n;
  items = json_array();
  for (int i = 0; i < last; i++)
    json_array_append_new(items, json_integer(idx[i]));
  page = page_new(items, n > limit, last > 0 ? idx[last - 1] : 0);
  json_object_set_new(page, "stage", json_string(stage));
  json_object_set_new(page, "epoch", json_integer(epoch));
  json_object_set_new(page, "set", json_string(easy ? "easy" : "hard"));
  json_object_set_new(page, "total", json_integer(total));
  api_reply_json(req, 200, page);
  free(idx);
}

/* One epoch of a sample's history; margin and predicted class are null
 * where the epoch did not record them. */
static json_t *history_record_json(const db_sample_epoch_t *e) {
  json_t *pred = e->pred >= 0 ? json_integer(e->pred) : json_null();

  return json_pack("{s:s, s:i, s:o, s:o, s:o, s:b, s:o, s:o}", "stage",
                   e->stage, "epoch", e->epoch, "loss", api_number(e->loss),
                   "prob", api_number(e->prob), "weight", api_number(e->weight),
                   "easy", e->easy, "margin", api_number(e->margin),
                   "predicted", pred);
}

static json_t *history_json(const db_sample_t *s) {
  json_t *h = json_array();

  for (int i = 0; i < s->n_epochs; i++)
    json_array_append_new(h, history_record_json(&s->epochs[i]));
  return h;
}

/* One stage's training dynamics of a sample; a non-finite statistic is
 * null. */
static json_t *stage_dynamics_json(const db_sample_dynamics_t *d) {
  return json_pack("{s:o, s:o, s:o, s:i, s:o}", "confidence",
                   api_number(d->confidence), "variability",
                   api_number(d->variability), "correctness",
                   api_number(d->correctness), "forgetting", d->forgetting,
                   "aum", api_number(d->aum));
}

/* The dynamics of every stage that stored them, keyed by stage name; an
 * empty object when none did (validation samples, unfinished stages). */
static json_t *dynamics_json(const db_sample_t *s) {
  json_t *o = json_object();

  for (int i = 0; o && i < s->n_dynamics; i++)
    json_object_set_new(o, s->dynamics[i].stage,
                        stage_dynamics_json(&s->dynamics[i]));
  return o;
}

void api_sample_get(api_req_t *req) {
  static const char *const none[] = {NULL};
  pipeline_spec_t spec;
  spec_error_t se;
  db_sample_t s;
  db_job_t job;
  long long index;
  char err[256];
  int rc, noisy;

  if (api_query_check(req, none) < 0 || job_from_path(req, 2, &job) < 0)
    return;
  noisy = spec_parse(job.spec_json, strlen(job.spec_json), &spec, &se) == 0 &&
          spec.noise_kind != PIPELINE_NOISE_NONE;
  if (api_parse_int(req->seg[4], 0, INT32_MAX, &index) < 0) {
    db_job_deinit(&job);
    api_reply_error(req, 404, "not_found", NULL, "no sample '%.32s'",
                    req->seg[4]);
    return;
  }
  rc = db_sample_get(req->db, job.id, (int32_t)index, &s, err, sizeof err);
  db_job_deinit(&job);
  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  api_reply_json(
      req, 200,
      json_pack("{s:i, s:s, s:i, s:o, s:o, s:o, s:o}", "index", s.index,
                "split", s.split == DB_SPLIT_TRAIN ? "train" : "validation",
                "observed_label", s.observed, "clean_label",
                noisy ? json_integer(s.clean) : json_null(), "corrupted",
                noisy ? json_boolean(s.clean != s.observed) : json_null(),
                "history", history_json(&s), "dynamics", dynamics_json(&s)));
  db_sample_deinit(&s);
}

/* Deletes a finished job with everything stored about it (its
 * Idempotency-Keys included) and answers {"id", "deleted": true}; a job
 * still queued or running answers 409 and stays. */
void api_job_delete(api_req_t *req) {
  int64_t id;
  char err[256];
  int rc;

  if (job_write_from_path(req, AW_DELETE, &id, &rc, err, sizeof err) < 0)
    return;
  if (rc == -EBUSY) {
    api_reply_error(req, 409, "conflict", NULL,
                    "%s; only succeeded, failed or cancelled jobs can be "
                    "deleted (cancel it first)",
                    err);
    return;
  }
  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  LOG(req->cfg->log, LOG_INFO, "api", "job deleted job=%lld", (long long)id);
  api_reply_json(req, 200,
                 json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
}
