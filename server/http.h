/* SPDX-License-Identifier: MIT */
/* The HTTP API under /v1, /healthz and the static dashboard, served by
 * libmicrohttpd from its own threads. Each request borrows a database
 * connection from a small pool; jobs are handed to the runner. */
#ifndef SPK_SERVER_HTTP_H
#define SPK_SERVER_HTTP_H

#include <stddef.h>

#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "pixcache.h"
#include "runner.h"

typedef struct http_server http_server_t;

/* The largest request body accepted; a larger one gets 413. */
#define HTTP_BODY_MAX (1024 * 1024)

typedef struct {
  const char *host; /* numeric IPv4 address or "localhost" */
  int port;
  const char *db_path;
  const char *data_root;
  const char *web_root; /* directory holding index.html */
  runner_t *runner;
  const log_t *log;
  /* The bearer token every mutating request must carry, or NULL for
   * none; without one only a loopback address is accepted. */
  const char *token;
  int max_connections; /* at once, streams included; 0: the default */
  int timeout_s;       /* idle connections are closed; 0: the default */
  hub_t *hub;          /* wakes event streams; required */
  metrics_t *metrics;  /* counts requests; may be NULL */
  pixcache_t *pixcache; /* dataset images for the dashboard; may be NULL */
} http_config_t;

/* Starts serving; the strings in cfg must outlive the server. Returns 0,
 * -EINVAL for an address that is not numeric IPv4, or not loopback while
 * there is no token, or another negative errno code with err set
 * (address in use, say). */
int http_start(const http_config_t *cfg, http_server_t **out, char *err,
               size_t errlen);

/* Stops accepting connections; those open are still answered. */
void http_quiesce(http_server_t *srv);

/* Stops serving, waiting for requests in flight, and frees the server;
 * accepts NULL. */
void http_stop(http_server_t *srv);

#endif
