/* SPDX-License-Identifier: MIT */
/* What the HTTP plumbing (http.c) shares with the route handlers (api.c):
 * one request as the handlers see it, and the ways to answer it. */
#ifndef SPK_SERVER_HTTP_INTERNAL_H
#define SPK_SERVER_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

#include "../storage/db.h"
#include "http.h"

#define HTTP_MAX_SEGMENTS 10

/* One request: its path split at '/', its body, and a borrowed database
 * connection. The handler answers with exactly one api_reply_* call. */
typedef struct {
  const http_config_t *cfg;
  http_server_t *srv;
  struct MHD_Connection *conn;
  const char *method;
  int nseg;
  const char *seg[HTTP_MAX_SEGMENTS];
  const char *body;
  size_t body_len;
  db_t *db;
  int status; /* what the handler answered, for the access log */
  const char *route; /* the matched route as the API names it */
  int nhdr;
  char hdr_name[4][32];
  char hdr_value[4][256];
} api_req_t;

typedef void (*api_handler_fn)(api_req_t *req);

/* Answers with status and a JSON body; takes the reference to body. */
void api_reply_json(api_req_t *req, int status, json_t *body);

/* Answers {"error": {"code", "message", "field"}}; field may be NULL. */
void api_reply_error(api_req_t *req, int status, const char *code,
                     const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Answers with status and text (heap, NUL-terminated, taken over) as a
 * body of the given content type. */
void api_reply_text(api_req_t *req, int status, const char *type,
                    char *text);

/* Answers with status and a body that fn produces as the client reads
 * it (chunked): fn(ctx, pos, buf, max) returns the bytes it wrote into
 * buf, MHD_CONTENT_READER_END_OF_STREAM at the end or
 * MHD_CONTENT_READER_END_WITH_ERROR to cut the stream. It runs on the
 * server's threads after the handler returned, so it must not touch
 * req; it may suspend the connection (MHD_suspend_connection) and
 * return 0 when it has nothing yet. free_fn(ctx) runs once the stream
 * is over, however it ended, also when the reply could not be made. */
void api_reply_stream(api_req_t *req, int status, const char *type,
                      MHD_ContentReaderCallback fn, void *ctx,
                      MHD_ContentReaderFreeCallback free_fn);

/* Borrows a database connection from the server's pool, for a stream
 * that reads now and then; NULL with err set when none can be opened.
 * Give it back with http_db_put. */
db_t *http_db_get(http_server_t *srv, char *err, size_t errlen);
void http_db_put(http_server_t *srv, db_t *db);

/* Parses a decimal integer in [lo, hi] with nothing around it (no sign,
 * no spaces) into *out; -1 when s is anything else. */
int api_parse_int(const char *s, long long lo, long long hi,
                  long long *out);

/* A finite number as JSON, or null (NaN and infinities are not JSON). */
json_t *api_number(double v);

/* Answers a storage failure: 404 naming err for -ENOENT, else 500. */
void api_reply_storage(api_req_t *req, int rc, const char *err);

/* Adds a header to the next reply (Location, Allow). */
void api_reply_header(api_req_t *req, const char *name, const char *value);

/* The value of query parameter name, or NULL. */
const char *api_query(api_req_t *req, const char *name);

/* Checks that every query parameter is one of allowed (NULL-terminated);
 * answers 400 naming the first other one and returns -1. */
int api_query_check(api_req_t *req, const char *const *allowed);

/* The route handlers of api.c. */
void api_health(api_req_t *req);
void api_jobs_list(api_req_t *req);
void api_jobs_create(api_req_t *req);
void api_job_get(api_req_t *req);
void api_job_cancel(api_req_t *req);
void api_job_metrics(api_req_t *req);
void api_epoch_samples(api_req_t *req);
void api_sample_get(api_req_t *req);
void api_job_delete(api_req_t *req);

/* events.c: the Server-Sent Events stream of a job. */
void api_job_events(api_req_t *req);

/* api_data.c: samples, data maps, models, exports and datasets. */
void api_stage_samples(api_req_t *req);
void api_stage_datamap(api_req_t *req);
void api_job_model(api_req_t *req);
void api_job_export(api_req_t *req);
void api_datasets_list(api_req_t *req);
void api_dataset_sample(api_req_t *req);

/* api_ops.c: GET /metrics in Prometheus text format. */
void api_prometheus(api_req_t *req);

#endif
