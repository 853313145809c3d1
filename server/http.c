/* SPDX-License-Identifier: MIT */
/* HTTP plumbing over libmicrohttpd: listening, reading bounded bodies,
 * splitting paths, routing to the handlers of api.c, serving the static
 * dashboard files, and writing JSON replies. What each route answers is
 * api.c's business. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http_internal.h"

#define POOL_MAX 8
#define THREADS 4
/* Bodies declared larger than this are refused before they are read;
 * smaller ones over HTTP_BODY_MAX are read and dropped, so that the
 * client, still sending, sees the 413 instead of a reset. */
#define BODY_DISCARD_MAX (16 * 1024 * 1024)
#define CONNECTIONS_DEFAULT 512
#define TIMEOUT_DEFAULT_S 30
#define STREAM_BLOCK (32 * 1024)

struct http_server {
  http_config_t cfg;
  struct MHD_Daemon *daemon;
  uv_mutex_t lock;
  int npool;
  db_t *pool[POOL_MAX];
};

/* One connection's request in progress. */
typedef struct {
  char *body;
  size_t len, cap;
  int too_large;
  double started; /* monotonic seconds at the first byte */
} upload_t;

/* One route: a path pattern of segments ('*' matches any one), the
 * handler of each method, and the route's name in the API description
 * (the label of its request counts). */
typedef struct {
  const char *pattern;
  const char *method;
  api_handler_fn handler;
  const char *name;
} route_t;

static const route_t routes[] = {
    {"healthz", "GET", api_health, "/healthz"},
    {"metrics", "GET", api_prometheus, "/metrics"},
    {"v1/jobs", "GET", api_jobs_list, "/v1/jobs"},
    {"v1/jobs", "POST", api_jobs_create, "/v1/jobs"},
    {"v1/jobs/*", "GET", api_job_get, "/v1/jobs/{id}"},
    {"v1/jobs/*", "DELETE", api_job_delete, "/v1/jobs/{id}"},
    {"v1/jobs/*/cancel", "POST", api_job_cancel, "/v1/jobs/{id}/cancel"},
    {"v1/jobs/*/metrics", "GET", api_job_metrics, "/v1/jobs/{id}/metrics"},
    {"v1/jobs/*/events", "GET", api_job_events, "/v1/jobs/{id}/events"},
    {"v1/jobs/*/stages/*/epochs/*/samples", "GET", api_epoch_samples,
     "/v1/jobs/{id}/stages/{stage}/epochs/{epoch}/samples"},
    {"v1/jobs/*/stages/*/samples", "GET", api_stage_samples,
     "/v1/jobs/{id}/stages/{stage}/samples"},
    {"v1/jobs/*/stages/*/datamap", "GET", api_stage_datamap,
     "/v1/jobs/{id}/stages/{stage}/datamap"},
    {"v1/jobs/*/samples/*", "GET", api_sample_get,
     "/v1/jobs/{id}/samples/{index}"},
    {"v1/jobs/*/models/*", "GET", api_job_model,
     "/v1/jobs/{id}/models/{stage}"},
    {"v1/jobs/*/export", "GET", api_job_export, "/v1/jobs/{id}/export"},
    {"v1/datasets", "GET", api_datasets_list, "/v1/datasets"},
    {"v1/datasets/*/samples/*", "GET", api_dataset_sample,
     "/v1/datasets/{name}/samples/{index}"},
};

static double now_monotonic(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Connection pool: a request borrows one and gives it back. */
static db_t *pool_get(http_server_t *s, char *err, size_t errlen) {
  db_t *db = NULL;

  uv_mutex_lock(&s->lock);
  if (s->npool > 0)
    db = s->pool[--s->npool];
  uv_mutex_unlock(&s->lock);
  if (!db && db_open(s->cfg.db_path, &db, err, errlen) != 0)
    return NULL;
  return db;
}

static void pool_put(http_server_t *s, db_t *db) {
  uv_mutex_lock(&s->lock);
  if (db && s->npool < POOL_MAX) {
    s->pool[s->npool++] = db;
    db = NULL;
  }
  uv_mutex_unlock(&s->lock);
  db_close(db);
}

static void reply_send(api_req_t *req, int status, struct MHD_Response *r,
                       const char *type) {
  if (!r)
    return;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  for (int i = 0; i < req->nhdr; i++)
    MHD_add_response_header(r, req->hdr_name[i], req->hdr_value[i]);
  MHD_queue_response(req->conn, (unsigned)status, r);
  MHD_destroy_response(r);
  req->status = status;
}

void api_reply_json(api_req_t *req, int status, json_t *body) {
  size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
  char *text = body ? json_dumps(body, flags) : NULL;
  struct MHD_Response *r;

  json_decref(body);
  if (!text) {
    static const char oom[] = "{\"error\":{\"code\":\"internal\","
                              "\"message\":\"out of memory\","
                              "\"field\":null}}";
    r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
                                        MHD_RESPMEM_PERSISTENT);
    reply_send(req, 500, r, "application/json");
    return;
  }
  r = MHD_create_response_from_buffer(strlen(text), text,
                                      MHD_RESPMEM_MUST_FREE);
  reply_send(req, status, r, "application/json");
}

/* Replaces every byte that does not belong to a whole, valid UTF-8
 * sequence with '?': messages quote what clients sent (and may cut it),
 * and JSON strings must be valid UTF-8. */
static void utf8_scrub(char *s) {
  unsigned char *p = (unsigned char *)s;

  while (*p) {
    int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3
              : (*p >> 3) == 30 ? 4 : 0;
    int ok = len > 0;
    for (int i = 1; ok && i < len; i++)
      ok = (p[i] & 0xC0) == 0x80;
    if (!ok) {
      *p++ = '?';
      continue;
    }
    p += len;
  }
}

void api_reply_error(api_req_t *req, int status, const char *code,
                     const char *field, const char *fmt, ...) {
  char msg[512], fld[128];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  utf8_scrub(msg);
  if (field) {
    snprintf(fld, sizeof fld, "%s", field);
    utf8_scrub(fld);
    field = fld;
  }
  api_reply_json(req, status,
                 json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code,
                           "message", msg, "field", field));
}

void api_reply_text(api_req_t *req, int status, const char *type,
                    char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), text, MHD_RESPMEM_MUST_FREE);

  if (!r) {
    free(text);
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  reply_send(req, status, r, type);
}

void api_reply_stream(api_req_t *req, int status, const char *type,
                      MHD_ContentReaderCallback fn, void *ctx,
                      MHD_ContentReaderFreeCallback free_fn) {
  struct MHD_Response *r = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, STREAM_BLOCK, fn, ctx, free_fn);

  if (!r) {
    free_fn(ctx);
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  reply_send(req, status, r, type);
}

db_t *http_db_get(http_server_t *srv, char *err, size_t errlen) {
  return pool_get(srv, err, errlen);
}

void http_db_put(http_server_t *srv, db_t *db) { pool_put(srv, db); }

void api_reply_header(api_req_t *req, const char *name, const char *value) {
  if (req->nhdr >= 4)
    return;
  snprintf(req->hdr_name[req->nhdr], sizeof req->hdr_name[0], "%s", name);
  snprintf(req->hdr_value[req->nhdr], sizeof req->hdr_value[0], "%s",
           value);
  req->nhdr++;
}

const char *api_query(api_req_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
  const char *const *allowed;
  const char *bad;
} query_scan_t;

static enum MHD_Result query_visit(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value) {
  query_scan_t *q = cls;

  (void)kind;
  (void)value;
  for (int i = 0; q->allowed[i]; i++)
    if (strcmp(key, q->allowed[i]) == 0)
      return MHD_YES;
  q->bad = key;
  return MHD_NO;
}

int api_query_check(api_req_t *req, const char *const *allowed) {
  query_scan_t q = {allowed, NULL};

  MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_visit,
                            &q);
  if (!q.bad)
    return 0;
  api_reply_error(req, 400, "invalid_parameter", q.bad,
                  "unknown query parameter '%.64s'", q.bad);
  return -1;
}

/* Splits path (which it modifies) into at most HTTP_MAX_SEGMENTS
 * non-empty segments; -1 when there are more. */
static int path_split(char *path, api_req_t *req) {
  char *save = NULL;

  req->nseg = 0;
  for (char *s = strtok_r(path, "/", &save); s;
       s = strtok_r(NULL, "/", &save)) {
    if (req->nseg == HTTP_MAX_SEGMENTS)
      return -1;
    req->seg[req->nseg++] = s;
  }
  return 0;
}

static int pattern_match(const char *pattern, const api_req_t *req) {
  char buf[128], *save = NULL;
  int i = 0;

  snprintf(buf, sizeof buf, "%s", pattern);
  for (char *p = strtok_r(buf, "/", &save); p;
       p = strtok_r(NULL, "/", &save), i++)
    if (i >= req->nseg || (strcmp(p, "*") != 0 && strcmp(p, req->seg[i])))
      return 0;
  return i == req->nseg;
}

/* A file of the dashboard: plain names only, so nothing outside web_root
 * can be named. */
static int static_name_ok(const char *name) {
  if (name[0] == '.' || strlen(name) > 64)
    return 0;
  for (const char *c = name; *c; c++)
    if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
        !(*c >= '0' && *c <= '9') && *c != '.' && *c != '_' && *c != '-')
      return 0;
  return 1;
}

static const char *static_type(const char *name) {
  const char *dot = strrchr(name, '.');

  if (!dot)
    return "application/octet-stream";
  if (strcmp(dot, ".html") == 0)
    return "text/html; charset=utf-8";
  if (strcmp(dot, ".js") == 0)
    return "text/javascript; charset=utf-8";
  if (strcmp(dot, ".css") == 0)
    return "text/css; charset=utf-8";
  if (strcmp(dot, ".svg") == 0)
    return "image/svg+xml";
  if (strcmp(dot, ".png") == 0)
    return "image/png";
  if (strcmp(dot, ".json") == 0)
    return "application/json";
  return "application/octet-stream";
}

/* The file under web_root that a path outside the API names, into buf;
 * NULL when none may be named. The dashboard's pages (/, /jobs/ID,
 * /jobs/ID/samples/INDEX, /compare) are all index.html, whose script
 * reads the address; its own files are plain names, and the chart
 * library's sit in vendor/. */
static const char *static_file(const api_req_t *req, char *buf,
                               size_t len) {
  const char *const *g = req->seg;
  int n = req->nseg;

  if (n == 0 || (n == 1 && strcmp(g[0], "compare") == 0) ||
      (n == 2 && strcmp(g[0], "jobs") == 0) ||
      (n == 4 && strcmp(g[0], "jobs") == 0 && strcmp(g[2], "samples") == 0))
    return "index.html";
  if (n == 1 && static_name_ok(g[0]))
    return g[0];
  if (n == 2 && strcmp(g[0], "vendor") == 0 && static_name_ok(g[1])) {
    snprintf(buf, len, "vendor/%s", g[1]);
    return buf;
  }
  return NULL;
}

static void serve_static(api_req_t *req) {
  char path[4096], buf[128];
  const char *name = static_file(req, buf, sizeof buf);
  struct stat st;
  int fd = -1;

  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    api_reply_header(req, "Allow", "GET, HEAD");
    api_reply_error(req, 405, "method_not_allowed", NULL,
                    "%s is not allowed here", req->method);
    return;
  }
  if (name)
    snprintf(path, sizeof path, "%s/%s", req->cfg->web_root, name);
  if (name && (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0 &&
      fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    reply_send(req, 200,
               MHD_create_response_from_fd((uint64_t)st.st_size, fd),
               static_type(name));
    return;
  }
  if (fd >= 0)
    close(fd);
  api_reply_error(req, 404, "not_found", NULL, "no such page");
}

/* Compares a presented token with the configured one in a time that
 * depends only on the configured one's length. */
static int token_equal(const char *given, const char *token) {
  size_t ng = strlen(given), nt = strlen(token);
  unsigned char diff = ng != nt;

  for (size_t i = 0; i < nt; i++)
    diff |= (unsigned char)((i < ng ? given[i] : 0) ^ token[i]);
  return diff == 0;
}

/* With a token configured, a request that changes anything must carry
 * it as "Authorization: Bearer TOKEN"; answers 401 and returns -1 when
 * it does not. */
static int auth_check(api_req_t *req) {
  const char *h, *prefix = "Bearer ";

  if (!req->cfg->token || strcmp(req->method, "GET") == 0 ||
      strcmp(req->method, "HEAD") == 0)
    return 0;
  h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                  MHD_HTTP_HEADER_AUTHORIZATION);
  if (h && strncasecmp(h, prefix, strlen(prefix)) == 0 &&
      token_equal(h + strlen(prefix) + strspn(h + strlen(prefix), " "),
                  req->cfg->token))
    return 0;
  api_reply_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                   "Bearer realm=\"spkd\"");
  api_reply_error(req, 401, "unauthorized", NULL,
                  h ? "the bearer token is not the one this server expects"
                    : "this server needs \"Authorization: Bearer TOKEN\" "
                      "on requests that change anything");
  return -1;
}

/* Finds the route for the request: runs its handler, or answers 405 with
 * the methods the path allows, or 404. */
static void route(api_req_t *req) {
  char allow[64] = "";

  req->route = "unrouted";
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (!pattern_match(routes[i].pattern, req))
      continue;
    req->route = routes[i].name;
    if (strcmp(routes[i].method, req->method) == 0) {
      if (auth_check(req) == 0)
        routes[i].handler(req);
      return;
    }
    snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
             allow[0] ? ", " : "", routes[i].method);
  }
  if (allow[0]) {
    api_reply_header(req, "Allow", allow);
    api_reply_error(req, 405, "method_not_allowed", NULL,
                    "%s is not allowed on this path; allowed: %s",
                    req->method, allow);
  } else if (req->nseg == 0 || (strcmp(req->seg[0], "v1") != 0 &&
                                 strcmp(req->seg[0], "healthz") != 0 &&
                                 strcmp(req->seg[0], "metrics") != 0)) {
    req->route = "static";
    serve_static(req);
  } else {
    api_reply_error(req, 404, "not_found", NULL, "no such route");
  }
}

/* Handles a complete request: borrows a connection, routes, logs. */
static void dispatch(http_server_t *s, struct MHD_Connection *conn,
                     const char *url, const char *method, upload_t *up) {
  api_req_t req = {.cfg = &s->cfg, .srv = s, .conn = conn,
                   .method = method, .route = "unrouted"};
  char path[2048], err[256];

  req.body = up->body ? up->body : "";
  req.body_len = up->len;
  snprintf(path, sizeof path, "%s", url);
  if (strlen(url) >= sizeof path || path_split(path, &req) < 0) {
    api_reply_error(&req, 404, "not_found", NULL, "no such route");
  } else if (!(req.db = pool_get(s, err, sizeof err))) {
    api_reply_error(&req, 500, "internal", NULL, "database: %s", err);
  } else {
    route(&req);
    pool_put(s, req.db);
  }
  metrics_http_observe(s->cfg.metrics, req.route, req.status,
                       now_monotonic() - up->started);
  LOG(s->cfg.log, LOG_DEBUG, "http", "request method=%s path=%s status=%d",
      method, url, req.status);
}

/* Appends a chunk of the body, or only counts it past HTTP_BODY_MAX. */
static int upload_append(upload_t *up, const char *data, size_t n) {
  if (up->too_large || up->len + n > HTTP_BODY_MAX) {
    up->too_large = 1;
    return 0;
  }
  if (up->len + n + 1 > up->cap) {
    size_t cap = up->cap ? up->cap : 4096;
    char *p;
    while (cap < up->len + n + 1)
      cap *= 2;
    p = realloc(up->body, cap);
    if (!p)
      return -1;
    up->body = p;
    up->cap = cap;
  }
  memcpy(up->body + up->len, data, n);
  up->len += n;
  up->body[up->len] = '\0';
  return 0;
}

static void reply_too_large(http_server_t *s, struct MHD_Connection *conn,
                            const char *method, const upload_t *up) {
  api_req_t req = {.cfg = &s->cfg, .srv = s, .conn = conn,
                   .method = method};

  api_reply_error(&req, 413, "payload_too_large", NULL,
                  "request body is larger than %d bytes", HTTP_BODY_MAX);
  metrics_http_observe(s->cfg.metrics, "unrouted", 413,
                       now_monotonic() - up->started);
}

/* Seconds an idle connection is kept. */
static int request_timeout(const http_config_t *cfg) {
  return cfg->timeout_s > 0 ? cfg->timeout_s : TIMEOUT_DEFAULT_S;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
  http_server_t *s = cls;
  upload_t *up = *con_cls;
  const char *clen;

  (void)version;
  if (!up) {
    up = calloc(1, sizeof *up);
    if (!up)
      return MHD_NO;
    *con_cls = up;
    up->started = now_monotonic();
    clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen && strtoull(clen, NULL, 10) > BODY_DISCARD_MAX) {
      up->too_large = 1;
      reply_too_large(s, conn, method, up);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    /* A client that sends its request slowly enough never goes idle:
     * past twice the idle timeout its connection is closed. */
    if (now_monotonic() - up->started > 2.0 * request_timeout(&s->cfg)) {
      LOG(s->cfg.log, LOG_DEBUG, "http", "request too slow, closed "
          "method=%s path=%s", method, url);
      return MHD_NO;
    }
    if (upload_append(up, upload_data, *upload_size) < 0)
      return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  if (up->too_large)
    reply_too_large(s, conn, method, up);
  else
    dispatch(s, conn, url, method, up);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode t) {
  upload_t *up = *con_cls;

  (void)cls;
  (void)conn;
  (void)t;
  if (up) {
    free(up->body);
    free(up);
    *con_cls = NULL;
  }
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes %XX escapes of a path or a query value in place, returning the
 * new length, except two that would change what the text means to the
 * router: %00 would end the C string early (/v1/jobs/7%00/x naming job
 * 7) and %2F would add a path separator. Both stay as written, so such
 * a path names nothing and such a value is refused as it stands. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  char *out = s;

  (void)cls;
  (void)conn;
  for (const char *in = s; *in; out++) {
    int hi = in[0] == '%' ? hex_value(in[1]) : -1;
    int lo = hi >= 0 ? hex_value(in[2]) : -1;
    int v = hi * 16 + lo;
    if (lo < 0 || v == 0 || v == '/') {
      *out = *in++;
      continue;
    }
    *out = (char)v;
    in += 3;
  }
  *out = '\0';
  return (size_t)(out - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  http_server_t *s = cls;
  char msg[512];
  size_t n;

  /* Clients that drop or stall connections make libmicrohttpd talk a
   * lot; what it says is for debugging, not for every day's log. */
  if (LOG_DEBUG < s->cfg.log->level)
    return;
  vsnprintf(msg, sizeof msg, fmt, ap);
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  LOG(s->cfg.log, LOG_DEBUG, "http", "libmicrohttpd: %s", msg);
}

/* Resolves the listen host to an IPv4 address: a loopback one unless
 * there is a token. */
static int listen_addr(const http_config_t *cfg, struct sockaddr_in *sa,
                       char *err, size_t errlen) {
  const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1"
                                                         : cfg->host;

  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)cfg->port);
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
    snprintf(err, errlen, "listen address '%s' is not a numeric IPv4 "
             "address", cfg->host);
    return -EINVAL;
  }
  if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127 && !cfg->token) {
    snprintf(err, errlen, "refusing to listen on %s without a token: it "
             "is not a loopback address, so anyone who can reach it could "
             "submit, cancel and delete jobs (give --token-file)",
             cfg->host);
    return -EINVAL;
  }
  return 0;
}

int http_start(const http_config_t *cfg, http_server_t **out, char *err,
               size_t errlen) {
  struct sockaddr_in sa;
  http_server_t *s;
  int rc = listen_addr(cfg, &sa, err, errlen);

  *out = NULL;
  if (rc)
    return rc;
  s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  s->cfg = *cfg;
  uv_mutex_init(&s->lock);
  s->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
          MHD_ALLOW_SUSPEND_RESUME,
      0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
      s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)THREADS, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, s,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)request_timeout(cfg),
      MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(cfg->max_connections > 0 ? cfg->max_connections
                                          : CONNECTIONS_DEFAULT),
      MHD_OPTION_END);
  if (!s->daemon) {
    snprintf(err, errlen, "cannot listen on %s:%d (is the port in use?)",
             cfg->host, cfg->port);
    uv_mutex_destroy(&s->lock);
    free(s);
    return -EADDRINUSE;
  }
  *out = s;
  return 0;
}

void http_quiesce(http_server_t *s) {
  if (s)
    (void)MHD_quiesce_daemon(s->daemon);
}

void http_stop(http_server_t *s) {
  if (!s)
    return;
  hub_close(s->cfg.hub);
  MHD_stop_daemon(s->daemon);
  for (int i = 0; i < s->npool; i++)
    db_close(s->pool[i]);
  uv_mutex_destroy(&s->lock);
  free(s);
}
