/* SPDX-License-Identifier: MIT */
/* The HTTP API under /v1 and the static dashboard, served by
 * libmicrohttpd from its own thread with its own database connection. */
#ifndef SPK_SERVER_HTTP_H
#define SPK_SERVER_HTTP_H

#include <stddef.h>

#include "log.h"
#include "runner.h"

typedef struct http_server http_server_t;

typedef struct {
  const char *host; /* numeric IPv4 address, loopback only */
  int port;
  const char *db_path;
  const char *data_root;
  const char *web_root; /* directory holding index.html */
  runner_t *runner;
  const log_t *log;
} http_config_t;

/* Starts serving; the strings in cfg must outlive the server. Returns 0 or
 * a negative errno code with err set (address in use, say). */
int http_start(const http_config_t *cfg, http_server_t **out, char *err,
               size_t errlen);

/* Stops serving and frees the server; accepts NULL. */
void http_stop(http_server_t *srv);

#endif
