/* SPDX-License-Identifier: MIT */
/* Routes for operating the daemon rather than its jobs: GET /metrics in
 * the Prometheus text format. The counters and their rendering live in
 * metrics.c; this file only answers the request. */
#include "http_internal.h"

#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

void api_prometheus(api_req_t *req) {
  static const char *const none[] = {NULL};
  char err[256], *text = NULL;

  if (api_query_check(req, none) < 0)
    return;
  if (!req->cfg->metrics) {
    api_reply_error(req, 500, "internal", NULL, "metrics are not kept");
    return;
  }
  if (metrics_render(req->cfg->metrics, req->db, &text, err, sizeof err)) {
    api_reply_error(req, 500, "internal", NULL, "metrics: %s", err);
    return;
  }
  api_reply_text(req, 200, PROMETHEUS_TYPE, text);
}
