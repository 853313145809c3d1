/* SPDX-License-Identifier: MIT */
/* The read-only data routes: a stage's per-sample training dynamics
 * sorted and paged, its data map in one compact response, a stage's
 * trained model, a job's export streamed, and the datasets under the
 * data root with single samples read from their files. Storage and the
 * dataset readers do the reading; this file shapes the answers. */
#include <dirent.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/dataset.h"
#include "../engine/pipeline.h"
#include "../engine/state.h"
#include "export.h"
#include "http_internal.h"
#include "spec.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

/* The section of a stage's resume state that holds its model as a
 * checkpoint file (engine/pipeline.c writes it; engine/checkpoint.c
 * reads such files). */
#define STATE_MODEL_SECTION STATE_TAG('M', 'O', 'D', 'L')

/* ---- Shared by the routes. ---- */

/* Reads ?limit= and ?cursor= (an offset, as a decimal string); answers
 * 400 and returns -1 when either is bad. *offset is 0 without one. */
static int page_read(api_req_t *req, int *limit, int *offset) {
  const char *l = api_query(req, "limit"), *c = api_query(req, "cursor");
  long long v = PAGE_DEFAULT, off = 0;

  if (l && api_parse_int(l, 1, PAGE_MAX, &v) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "limit",
                    "limit must be an integer from 1 to %d", PAGE_MAX);
    return -1;
  }
  if (c && api_parse_int(c, 0, INT_MAX, &off) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "cursor",
                    "cursor is not one this server handed out");
    return -1;
  }
  *limit = (int)v;
  *offset = (int)off;
  return 0;
}

/* The next page's cursor: the offset after this page, or null at the
 * end. */
static json_t *cursor_next(int offset, int count, int total) {
  char buf[16];

  if (offset + count >= total)
    return json_null();
  snprintf(buf, sizeof buf, "%d", offset + count);
  return json_string(buf);
}

/* The job named by path segment 2: its id and whether it injected label
 * noise (then its clean labels mean something). Answers 404 and returns
 * -1 when there is no such job. */
static int job_find(api_req_t *req, int64_t *id, int *noisy) {
  pipeline_spec_t spec;
  spec_error_t se;
  db_job_t job;
  long long v;
  char err[256];
  int rc;

  if (api_parse_int(req->seg[2], 1, LLONG_MAX, &v) < 0) {
    api_reply_error(req, 404, "not_found", NULL, "no job '%.32s'", req->seg[2]);
    return -1;
  }
  rc = db_job_get(req->db, v, &job, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    return -1;
  }
  *id = job.id;
  if (noisy)
    *noisy =
        spec_parse(job.spec_json, strlen(job.spec_json), &spec, &se) == 0 &&
        spec.noise_kind != PIPELINE_NOISE_NONE;
  db_job_deinit(&job);
  return 0;
}

/* Checks the stage named by path segment 4; answers 404 and returns -1
 * when no job can have it. */
static int stage_check(api_req_t *req) {
  if (pipeline_stage_from_name(req->seg[4]) >= 0)
    return 0;
  api_reply_error(req, 404, "not_found", NULL,
                  "no stage '%.32s'; stages are spl, teacher (teacher0 to "
                  "teacher7 when a job has several), student, baseline",
                  req->seg[4]);
  return -1;
}

/* A header for reply_bytes. */
typedef struct {
  const char *name, *value;
} header_t;

/* Answers with status and len bytes of body (heap, taken over; NULL for
 * no body) of content type type, with headers (NULL-terminated list,
 * may be NULL). */
static void reply_bytes(api_req_t *req, int status, const char *type,
                        char *body, size_t len, const header_t *headers) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      body ? len : 0, body ? body : (void *)"",
      body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

  if (!r) {
    free(body);
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  if (type)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  for (int i = 0; headers && headers[i].name; i++)
    MHD_add_response_header(r, headers[i].name, headers[i].value);
  MHD_queue_response(req->conn, (unsigned)status, r);
  MHD_destroy_response(r);
  req->status = status;
}

/* JSON text written by hand into a growing buffer: a data map has
 * hundreds of thousands of numbers, too many to build as jansson nodes
 * first. A failed allocation is remembered and reported at the end. */
typedef struct {
  char *p;
  size_t len, cap;
  int failed;
} text_t;

/* Makes room for n more bytes. */
static int text_room(text_t *t, size_t n) {
  size_t cap = t->cap ? t->cap : 4096;
  char *p;

  if (t->failed)
    return -1;
  if (t->len + n <= t->cap)
    return 0;
  while (cap < t->len + n)
    cap *= 2;
  p = realloc(t->p, cap);
  if (!p) {
    t->failed = 1;
    return -1;
  }
  t->p = p;
  t->cap = cap;
  return 0;
}

static void text_put(text_t *t, const char *s) {
  size_t n = strlen(s);

  if (text_room(t, n) == 0) {
    memcpy(t->p + t->len, s, n);
    t->len += n;
  }
}

/* Writes v in decimal. */
static void text_int(text_t *t, long long v) {
  char buf[24];
  int n = 0;
  unsigned long long u =
      v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

  do {
    buf[sizeof buf - 1 - n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    buf[sizeof buf - 1 - n++] = '-';
  if (text_room(t, (size_t)n) == 0) {
    memcpy(t->p + t->len, buf + sizeof buf - n, (size_t)n);
    t->len += (size_t)n;
  }
}

/* Writes v rounded to 4 decimals without trailing zeros ("0.25", "1",
 * "-0.0312"), or null when it is not finite. */
static void text_fixed4(text_t *t, float v) {
  long long q, frac;
  char digits[6];
  int n = 4;

  if (!isfinite(v)) {
    text_put(t, "null");
    return;
  }
  if (fabsf(v) >= 1e14f) { /* beyond exact rounding; never a statistic */
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", (double)v);
    text_put(t, buf);
    return;
  }
  q = llround((double)v * 10000.0);
  if (q < 0)
    text_put(t, "-");
  q = q < 0 ? -q : q;
  text_int(t, q / 10000);
  frac = q % 10000;
  if (frac == 0)
    return;
  for (int i = 3; i >= 0; i--, frac /= 10)
    digits[1 + i] = (char)('0' + frac % 10);
  while (digits[n] == '0')
    n--;
  digits[0] = '.';
  digits[n + 1] = '\0';
  text_put(t, digits);
}

/* ---- GET /v1/jobs/{id}/stages/{stage}/samples ---- */

/* The order that lists the hardest samples first: least confident,
 * least often correct, smallest margin; most forgotten, most variable. */
static int order_hardest_descends(db_dyn_stat_t stat) {
  return stat == DB_DYN_FORGETTING || stat == DB_DYN_VARIABILITY;
}

/* Reads ?sort= and ?order= into q; answers 400 and returns -1 when
 * either is bad. */
static int sort_read(api_req_t *req, db_dynamics_query_t *q) {
  const char *sort = api_query(req, "sort"), *order = api_query(req, "order");
  int stat = db_dyn_stat_parse(sort ? sort : "confidence");

  if (stat < 0) {
    api_reply_error(req, 400, "invalid_parameter", "sort",
                    "sort must be confidence, variability, correctness, "
                    "forgetting or aum");
    return -1;
  }
  if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
    api_reply_error(req, 400, "invalid_parameter", "order",
                    "order must be asc or desc");
    return -1;
  }
  q->stat = (db_dyn_stat_t)stat;
  q->descending =
      order ? strcmp(order, "desc") == 0 : order_hardest_descends(q->stat);
  return 0;
}

/* What the stage's last epoch recorded, to show beside each sample: its
 * records and the training samples (ascending index) that give each
 * index its position in them. */
typedef struct {
  int epoch; /* 0: none recorded */
  db_epoch_records_t rec;
  db_train_sample_t *samples;
  int n;
} last_epoch_t;

static void last_epoch_deinit(last_epoch_t *l) {
  db_epoch_records_deinit(&l->rec);
  free(l->samples);
  memset(l, 0, sizeof *l);
}

/* Reads the stage's last recorded epoch into l. */
static int last_epoch_read(db_t *db, int64_t job, const char *stage,
                           last_epoch_t *l, char *err, size_t errlen) {
  db_epoch_key_t *keys = NULL;
  int count = 0, rc;

  memset(l, 0, sizeof *l);
  rc = db_epoch_keys_list(db, job, &keys, &count, err, errlen);
  for (int i = 0; !rc && i < count; i++)
    if (strcmp(keys[i].stage, stage) == 0 && keys[i].epoch > l->epoch)
      l->epoch = keys[i].epoch;
  free(keys);
  if (!rc && l->epoch > 0)
    rc = db_epoch_records_read(db, job, stage, l->epoch, &l->rec, err, errlen);
  if (!rc && l->epoch > 0)
    rc = db_train_samples_list(db, job, &l->samples, &l->n, err, errlen);
  return rc;
}

/* The position of a training sample in the records, or -1. */
static int last_epoch_pos(const last_epoch_t *l, int32_t index) {
  int lo = 0, hi = l->n - 1;

  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (l->samples[mid].index == index) {
      int pos = l->samples[mid].pos;
      return pos >= 0 && pos < l->rec.n ? pos : -1;
    }
    if (l->samples[mid].index < index)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

static json_t *dynamics_row_json(const db_dynamics_row_t *r, int noisy,
                                 const last_epoch_t *l) {
  int pos = last_epoch_pos(l, r->index);
  int pred =
      pos >= 0 && l->rec.pred[pos] != DB_PRED_NONE ? l->rec.pred[pos] : -1;

  return json_pack(
      "{s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o}", "index",
      (int)r->index, "observed_label", r->observed, "clean_label",
      noisy ? json_integer(r->clean) : json_null(), "corrupted",
      noisy ? json_boolean(r->clean != r->observed) : json_null(), "confidence",
      api_number(r->confidence), "variability", api_number(r->variability),
      "correctness", api_number(r->correctness), "forgetting", r->forgetting,
      "aum", api_number(r->aum), "predicted",
      pred >= 0 ? json_integer(pred) : json_null(), "prob",
      pos >= 0 ? api_number(l->rec.prob[pos]) : json_null());
}

static json_t *dynamics_page_json(const db_dynamics_query_t *q,
                                  const db_dynamics_page_t *page, int noisy,
                                  const last_epoch_t *l) {
  static const char *const stats[] = {"confidence", "variability",
                                      "correctness", "forgetting", "aum"};
  json_t *items = json_array();

  for (int i = 0; items && i < page->count; i++)
    json_array_append_new(items, dynamics_row_json(&page->rows[i], noisy, l));
  return json_pack("{s:s, s:s, s:s, s:o, s:i, s:o, s:o}", "stage", q->stage,
                   "sort", stats[q->stat], "order",
                   q->descending ? "desc" : "asc", "epoch",
                   l->epoch > 0 ? json_integer(l->epoch) : json_null(), "total",
                   page->total, "items", items, "next_cursor",
                   cursor_next(q->offset, page->count, page->total));
}

void api_stage_samples(api_req_t *req) {
  static const char *const params[] = {"sort", "order", "limit", "cursor",
                                       NULL};
  db_dynamics_query_t q = {.stage = req->seg[4]};
  db_dynamics_page_t page = {0};
  last_epoch_t last = {0};
  int64_t id;
  char err[256];
  int noisy, rc;

  if (api_query_check(req, params) < 0 || sort_read(req, &q) < 0 ||
      page_read(req, &q.limit, &q.offset) < 0 ||
      job_find(req, &id, &noisy) < 0 || stage_check(req) < 0)
    return;
  rc = db_dynamics_list(req->db, id, &q, &page, err, sizeof err);
  if (rc == -ERANGE) {
    api_reply_error(req, 400, "invalid_parameter", "cursor",
                    "cursor is not one this server handed out (%s)", err);
    return;
  }
  if (!rc)
    rc = last_epoch_read(req->db, id, q.stage, &last, err, sizeof err);
  if (rc)
    api_reply_storage(req, rc == -ENOENT && page.rows ? -EIO : rc, err);
  else
    api_reply_json(req, 200, dynamics_page_json(&q, &page, noisy, &last));
  last_epoch_deinit(&last);
  db_dynamics_page_deinit(&page);
}

/* ---- GET /v1/jobs/{id}/stages/{stage}/datamap ---- */

/* The data map's columns: one value per training sample, by index. */
typedef struct {
  const db_train_sample_t *s; /* ascending index */
  int n;
  const db_stage_dynamics_t *d;
} datamap_t;

enum { COL_INDEX, COL_LABEL, COL_CONF, COL_VAR, COL_CORRECT, COL_CORRUPT };

/* Writes column c of m as a JSON array. */
static void datamap_column(text_t *t, const datamap_t *m, int c) {
  text_put(t, "[");
  for (int i = 0; i < m->n; i++) {
    const db_train_sample_t *s = &m->s[i];
    if (i > 0)
      text_put(t, ",");
    if (c == COL_INDEX)
      text_int(t, s->index);
    else if (c == COL_LABEL)
      text_int(t, s->observed);
    else if (c == COL_CONF)
      text_fixed4(t, m->d->confidence[s->pos]);
    else if (c == COL_VAR)
      text_fixed4(t, m->d->variability[s->pos]);
    else if (c == COL_CORRECT)
      text_fixed4(t, m->d->correctness[s->pos]);
    else
      text_put(t, s->observed != s->clean ? "true" : "false");
  }
  text_put(t, "]");
}

/* Writes the whole data map of stage as one JSON object. */
static void datamap_write(text_t *t, const datamap_t *m, const char *stage,
                          int noisy) {
  static const char *const names[] = {"index",       "observed_label",
                                      "confidence",  "variability",
                                      "correctness", "corrupted"};

  text_put(t, "{\"stage\":\"");
  text_put(t, stage);
  text_put(t, "\",\"total\":");
  text_int(t, m->n);
  for (int c = COL_INDEX; c <= COL_CORRUPT; c++) {
    text_put(t, ",\"");
    text_put(t, names[c]);
    text_put(t, "\":");
    if (c == COL_CORRUPT && !noisy)
      text_put(t, "null");
    else
      datamap_column(t, m, c);
  }
  text_put(t, "}");
}

/* -EIO unless the dynamics hold one value per training sample and every
 * position fits them. */
static int datamap_check(const datamap_t *m, char *err, size_t errlen) {
  if (m->d->n != m->n) {
    snprintf(err, errlen, "%d dynamics for %d training samples", m->d->n, m->n);
    return -EIO;
  }
  for (int i = 0; i < m->n; i++)
    if (m->s[i].pos < 0 || m->s[i].pos >= m->n) {
      snprintf(err, errlen, "sample %d has position %d of %d",
               (int)m->s[i].index, m->s[i].pos, m->n);
      return -EIO;
    }
  return 0;
}

void api_stage_datamap(api_req_t *req) {
  static const char *const none[] = {NULL};
  db_train_sample_t *samples = NULL;
  db_stage_dynamics_t d = {0};
  text_t t = {0};
  datamap_t m;
  int64_t id;
  char err[256];
  int n = 0, noisy, rc;

  if (api_query_check(req, none) < 0 || job_find(req, &id, &noisy) < 0 ||
      stage_check(req) < 0)
    return;
  rc = db_stage_dynamics_read(req->db, id, req->seg[4], &d, err, sizeof err);
  if (!rc)
    rc = db_train_samples_list(req->db, id, &samples, &n, err, sizeof err);
  m = (datamap_t){samples, n, &d};
  if (!rc)
    rc = datamap_check(&m, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    goto out;
  }
  text_room(&t, (size_t)n * 48 + 256);
  datamap_write(&t, &m, req->seg[4], noisy);
  if (t.failed) {
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    goto out;
  }
  reply_bytes(
      req, 200, "application/json", t.p, t.len,
      (header_t[]){{MHD_HTTP_HEADER_CACHE_CONTROL, "no-store"}, {NULL, NULL}});
  t.p = NULL; /* the reply owns it */

out:
  free(t.p);
  free(samples);
  db_stage_dynamics_deinit(&d);
}

/* ---- GET /v1/jobs/{id}/models/{stage} ---- */

/* The stage's final state, else its latest, into c. */
static int checkpoint_find(db_t *db, int64_t job, const char *stage,
                           db_checkpoint_t *c, char *err, size_t errlen) {
  int rc = db_checkpoint_get(db, job, stage, "final", c, err, errlen);

  if (rc == -ENOENT)
    rc = db_checkpoint_get(db, job, stage, "latest", c, err, errlen);
  if (rc == -ENOENT)
    snprintf(err, errlen,
             "job %lld has no model of stage %s: the job does not run "
             "that stage, or it has not finished an epoch yet",
             (long long)job, stage);
  return rc;
}

/* Moves the model section of the state c holds to the front of its
 * bytes, *len long. -ENOENT when the stage trained no model (a teacher
 * loaded from a file), -EIO for a damaged state. */
static int checkpoint_model(db_checkpoint_t *c, size_t *len, char *err,
                            size_t errlen) {
  state_reader_t r;
  const uint8_t *p;
  size_t n;

  if (state_reader_init(&r, c->data, c->info.size, err, errlen) != 0)
    return -EIO;
  if (state_get(&r, STATE_MODEL_SECTION, &p, &n) != 0 || n == 0) {
    snprintf(err, errlen,
             "stage %s trained no model: its model was loaded "
             "from a checkpoint file",
             c->info.stage);
    return -ENOENT;
  }
  memmove(c->data, p, n);
  *len = n;
  return 0;
}

/* The quoted SHA-256 of len bytes, as an entity tag. */
static int etag_make(const void *data, size_t len, char etag[67]) {
  unsigned char digest[32];

  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, digest) < 0)
    return -EIO;
  etag[0] = '"';
  for (int i = 0; i < 32; i++)
    snprintf(etag + 1 + 2 * i, 3, "%02x", digest[i]);
  etag[65] = '"';
  etag[66] = '\0';
  return 0;
}

/* 1 when the request's If-None-Match names etag (or "*"). */
static int etag_matches(api_req_t *req, const char *etag) {
  const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_IF_NONE_MATCH);

  return h && (strcmp(h, "*") == 0 || strstr(h, etag) != NULL);
}

/* Sends the model bytes (taken over) with their description. */
static void model_send(api_req_t *req, int64_t id, db_checkpoint_t *c,
                       size_t len, const char *etag) {
  char name[96], epoch[16];
  header_t h[] = {
      {MHD_HTTP_HEADER_CONTENT_DISPOSITION, name},
      {MHD_HTTP_HEADER_ETAG, etag},
      {MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache"},
      {"X-Checkpoint-Kind", c->info.kind},
      {"X-Checkpoint-Epoch", epoch},
      /* The last one; without a hash it ends the list. */
      {c->info.sha256[0] ? "X-Weights-SHA256" : NULL, c->info.sha256},
      {NULL, NULL}};

  snprintf(name, sizeof name, "attachment; filename=\"job-%lld-%s.ckpt\"",
           (long long)id, c->info.stage);
  snprintf(epoch, sizeof epoch, "%d", c->info.epoch);
  if (etag_matches(req, etag)) {
    reply_bytes(req, 304, NULL, NULL, 0, h + 1);
    return;
  }
  reply_bytes(req, 200, "application/octet-stream", (char *)c->data, len, h);
  c->data = NULL;
}

void api_job_model(api_req_t *req) {
  static const char *const none[] = {NULL};
  db_checkpoint_t c = {0};
  char err[256], etag[67];
  size_t len = 0;
  int64_t id;
  int rc;

  if (api_query_check(req, none) < 0 || job_find(req, &id, NULL) < 0 ||
      stage_check(req) < 0)
    return;
  rc = checkpoint_find(req->db, id, req->seg[4], &c, err, sizeof err);
  if (!rc)
    rc = checkpoint_model(&c, &len, err, sizeof err);
  if (!rc && etag_make(c.data, len, etag) != 0) {
    snprintf(err, sizeof err, "cannot hash the model");
    rc = -EIO;
  }
  if (rc)
    api_reply_storage(req, rc, err);
  else
    model_send(req, id, &c, len, etag);
  db_checkpoint_deinit(&c);
}

/* ---- GET /v1/jobs/{id}/export ---- */

/* One export being streamed: its own borrowed connection, given back
 * when the stream ends. */
typedef struct {
  http_server_t *srv;
  const log_t *log;
  db_t *db;
  export_stream_t *s;
  int64_t job;
} export_reply_t;

static ssize_t export_reply_read(void *cls, uint64_t pos, char *buf,
                                 size_t max) {
  export_reply_t *x = cls;
  char err[512];
  long n = export_stream_read(x->s, buf, max, err, sizeof err);

  (void)pos;
  if (n > 0)
    return (ssize_t)n;
  if (n == 0)
    return MHD_CONTENT_READER_END_OF_STREAM;
  LOG(x->log, LOG_ERROR, "api", "export cut job=%lld error=\"%s\"",
      (long long)x->job, err);
  return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void export_reply_free(void *cls) {
  export_reply_t *x = cls;

  export_stream_free(x->s);
  http_db_put(x->srv, x->db);
  free(x);
}

/* Reads ?format=; answers 400 and returns -1 when it is bad. */
static int format_read(api_req_t *req, export_format_t *format) {
  const char *f = api_query(req, "format");

  if (!f || strcmp(f, "jsonl") == 0) {
    *format = EXPORT_JSONL;
    return 0;
  }
  if (strcmp(f, "csv") == 0) {
    *format = EXPORT_CSV;
    return 0;
  }
  api_reply_error(req, 400, "invalid_parameter", "format",
                  "format must be jsonl or csv");
  return -1;
}

/* Starts the stream on a connection of its own. */
static int export_open(api_req_t *req, int64_t id, export_format_t format,
                       export_reply_t **out, char *err, size_t errlen) {
  export_reply_t *x = calloc(1, sizeof *x);
  int rc;

  *out = NULL;
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  *x = (export_reply_t){req->srv, req->cfg->log, NULL, NULL, id};
  x->db = http_db_get(req->srv, err, errlen);
  rc = x->db ? export_stream_new(x->db, id, format, &x->s, err, errlen) : -EIO;
  if (rc) {
    http_db_put(req->srv, x->db);
    free(x);
    return rc;
  }
  *out = x;
  return 0;
}

void api_job_export(api_req_t *req) {
  static const char *const params[] = {"format", NULL};
  export_format_t format;
  export_reply_t *x;
  int64_t id;
  char err[512], name[96];
  int csv, rc;

  if (api_query_check(req, params) < 0 || format_read(req, &format) < 0 ||
      job_find(req, &id, NULL) < 0)
    return;
  rc = export_open(req, id, format, &x, err, sizeof err);
  if (rc) {
    api_reply_storage(req, rc, err);
    return;
  }
  csv = format == EXPORT_CSV;
  snprintf(name, sizeof name, "attachment; filename=\"job-%lld.%s\"",
           (long long)id, csv ? "csv" : "jsonl");
  api_reply_header(req, MHD_HTTP_HEADER_CONTENT_DISPOSITION, name);
  api_reply_stream(req, 200,
                   csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
                   export_reply_read, x, export_reply_free);
}

/* ---- GET /v1/datasets ---- */

static void names_free(char **names, int n) {
  for (int i = 0; names && i < n; i++)
    free(names[i]);
  free(names);
}

/* The names of the entries of root that hold a dataset spkd can read,
 * or one whose files lead outside root, sorted: a heap array of *count
 * heap strings, for names_free. */
static int datasets_find(const char *root, char ***out, int *count, char *err,
                         size_t errlen) {
  struct dirent **ents = NULL;
  dataset_files_t files;
  char msg[512], **names;
  int n = scandir(root, &ents, NULL, alphasort), k = 0, rc = 0;

  *out = NULL;
  *count = 0;
  if (n < 0) {
    snprintf(err, errlen, "data root %.300s: %s", root, strerror(errno));
    return -EIO;
  }
  names = calloc((size_t)n + 1, sizeof *names);
  rc = names ? 0 : -ENOMEM;
  for (int i = 0; i < n; i++) {
    const char *name = ents[i]->d_name;
    int found = name[0] == '.' ? -EINVAL
                               : dataset_files_find(root, name, &files, msg,
                                                    sizeof msg);
    /* One whose files lead outside the root is listed, with why it
     * cannot be used. */
    if (!rc && (found == 0 || found == -EPERM))
      rc = (names[k++] = strdup(name)) ? 0 : -ENOMEM;
    free(ents[i]);
  }
  free(ents);
  if (rc) {
    names_free(names, k);
    snprintf(err, errlen, "out of memory listing datasets");
    return rc;
  }
  *out = names;
  *count = k;
  return 0;
}

static const char *format_name(dataset_format_t f) {
  switch (f) {
  case DATASET_FORMAT_IDX:
    return "idx";
  case DATASET_FORMAT_CIFAR10:
    return "cifar10";
  case DATASET_FORMAT_CIFAR100:
    return "cifar100";
  default:
    return "csv";
  }
}

/* The dataset's files, relative to the data root (root with its links
 * resolved, as the paths are). */
static json_t *dataset_files_json(const dataset_files_t *files,
                                  const char *root) {
  json_t *a = json_array();
  size_t n = strlen(root);

  for (int i = 0; a && i < files->count; i++) {
    const char *p = files->path[i];
    if (strncmp(p, root, n) == 0 && p[n] == '/')
      p += n + 1;
    json_array_append_new(a, json_string(p));
  }
  return a;
}

/* What the format alone or a cheap read tells: sizes, shape, classes
 * (0 where unknown). CIFAR files have a fixed shape and class count;
 * a CSV file's are not known without reading all of it. */
static int dataset_shape_read(const char *root, const char *name,
                              const dataset_files_t *files,
                              dataset_shape_t *shape, char *err,
                              size_t errlen) {
  memset(shape, 0, sizeof *shape);
  if (files->format == DATASET_FORMAT_IDX)
    return dataset_idx_describe(files, shape, err, errlen);
  if (files->format != DATASET_FORMAT_CSV) {
    shape->channels = 3;
    shape->height = shape->width = 32;
    shape->classes = files->format == DATASET_FORMAT_CIFAR10 ? 10 : 100;
  }
  return dataset_probe(root, name, &shape->n_train, &shape->n_test, err,
                       errlen);
}

static json_t *count_json(int v) {
  return v > 0 ? json_integer(v) : json_null();
}

/* One dataset's description; a dataset whose files cannot be read is
 * listed with the reason. */
static json_t *dataset_json(const char *root, const char *name) {
  dataset_files_t files;
  dataset_shape_t sh = {0};
  char err[512];
  int rc = dataset_files_find(root, name, &files, err, sizeof err);

  if (rc == 0)
    rc = dataset_shape_read(root, name, &files, &sh, err, sizeof err);
  return json_pack(
      "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s?}", "name", name,
      "format", format_name(files.format), "files",
      dataset_files_json(&files, root), "train_samples", count_json(sh.n_train),
      "test_samples", count_json(sh.n_test), "classes", count_json(sh.classes),
      "channels", count_json(sh.channels), "height", count_json(sh.height),
      "width", count_json(sh.width), "error", rc ? err : NULL);
}

void api_datasets_list(api_req_t *req) {
  static const char *const params[] = {"limit", "cursor", NULL};
  const char *root = req->cfg->data_root;
  char root_real[PATH_MAX], err[512], **names = NULL;
  int limit, offset, n = 0;
  json_t *items;

  if (api_query_check(req, params) < 0 || page_read(req, &limit, &offset) < 0)
    return;
  if (!realpath(root, root_real)) {
    api_reply_error(req, 500, "internal", NULL, "data root %s: %s", root,
                    strerror(errno));
    return;
  }
  if (datasets_find(root_real, &names, &n, err, sizeof err) != 0) {
    api_reply_error(req, 500, "internal", NULL, "%s", err);
    return;
  }
  if (offset > n) {
    api_reply_error(req, 400, "invalid_parameter", "cursor",
                    "cursor is not one this server handed out");
    names_free(names, n);
    return;
  }
  items = json_array();
  for (int i = offset; i < n && i < offset + limit; i++)
    json_array_append_new(items, dataset_json(root_real, names[i]));
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:o}", "items", items, "next_cursor",
                cursor_next(offset, (int)json_array_size(items), n)));
  names_free(names, n);
}

/* ---- GET /v1/datasets/{name}/samples/{index} ---- */

/* The pixels as one array in row-major order, channels last (h, w, c):
 * the files hold them channel-major. */
static json_t *pixels_json(const dataset_sample_t *s) {
  size_t plane = (size_t)s->height * s->width;
  json_t *a = json_array();

  for (size_t k = 0; a && k < plane; k++)
    for (int c = 0; c < s->channels; c++)
      json_array_append_new(a, json_integer(s->pixels[c * plane + k]));
  return a;
}

/* Finds the dataset of path segment 2 in the data root; answers 404
 * naming the problem and returns -1 when there is none it can serve. */
static int dataset_from_path(api_req_t *req, dataset_files_t *files) {
  char err[512];
  int rc = dataset_files_find(req->cfg->data_root, req->seg[2], files, err,
                              sizeof err);

  if (rc == 0 && files->format != DATASET_FORMAT_IDX) {
    snprintf(err, sizeof err,
             "dataset '%s' is in %s format; single "
             "samples are served from IDX datasets only",
             req->seg[2], format_name(files->format));
    rc = -ENOENT;
  }
  if (rc == 0)
    return 0;
  if (rc == -ENOENT || rc == -EINVAL || rc == -EPERM)
    api_reply_error(req, 404, "not_found", NULL, "%s", err);
  else
    api_reply_error(req, 500, "internal", NULL, "%s", err);
  return -1;
}

void api_dataset_sample(api_req_t *req) {
  static const char *const params[] = {"split", NULL};
  const char *split = api_query(req, "split");
  dataset_files_t files;
  dataset_sample_t s;
  long long index;
  char err[512];
  int test, rc;

  if (api_query_check(req, params) < 0)
    return;
  if (split && strcmp(split, "train") != 0 && strcmp(split, "test") != 0) {
    api_reply_error(req, 400, "invalid_parameter", "split",
                    "split must be train or test");
    return;
  }
  test = split && strcmp(split, "test") == 0;
  if (dataset_from_path(req, &files) < 0)
    return;
  if (api_parse_int(req->seg[4], 0, INT_MAX, &index) < 0) {
    api_reply_error(req, 404, "not_found", NULL,
                    "no sample '%.32s'; samples are numbered from 0",
                    req->seg[4]);
    return;
  }
  rc = pixcache_sample_read(req->cfg->pixcache, &files, test, (int)index, &s,
                            err, sizeof err);
  if (rc) {
    api_reply_error(req, rc == -ERANGE ? 404 : 500,
                    rc == -ERANGE ? "not_found" : "internal", NULL, "%s", err);
    return;
  }
  api_reply_json(
      req, 200,
      json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:o}", "dataset",
                req->seg[2], "split", test ? "test" : "train", "index",
                (int)index, "label", s.label, "width", s.width, "height",
                s.height, "channels", s.channels, "pixels", pixels_json(&s)));
  dataset_sample_deinit(&s);
}
