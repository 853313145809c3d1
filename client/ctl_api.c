/* SPDX-License-Identifier: MIT */
/* Calls to spkd: a request through http_client_fetch, the answer
 * parsed with jansson, and an error answer reduced to one line for a
 * person to read on stderr. */
#include "ctl_api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void ctl_api_error_format(int status, const char *body, char *err,
                          size_t errlen) {
  json_t *root = body ? json_loads(body, 0, NULL) : NULL;
  const char *code = NULL, *message = NULL, *field;
  json_t *fieldj = NULL;

  if (json_unpack(root, "{s:{s:s, s:s, s?:o}}", "error", "code", &code,
                  "message", &message, "field", &fieldj) == 0) {
    field = json_string_value(fieldj); /* NULL for JSON null */
    snprintf(err, errlen, "HTTP %d %s: %s%s%s%s", status, code, message,
             field ? " (field " : "", field ? field : "", field ? ")" : "");
  } else {
    /* Not spkd's error format: libmicrohttpd's own page, a proxy. */
    size_t n = body ? strcspn(body, "\r\n") : 0;
    snprintf(err, errlen, "HTTP %d%s%.*s", status, n ? ": " : "",
             (int)(n > 200 ? 200 : n), body ? body : "");
  }
  json_decref(root);
}

int ctl_api_call(const ctl_server_t *s, ctl_call_t *call, char *err,
                 size_t errlen) {
  http_client_opts_t opts = {CTL_CONNECT_S * 1000, CTL_ANSWER_S * 1000, -1};
  http_client_req_t req = {.method = call->method,
                           .path = call->path,
                           .token = s->token,
                           .headers = call->headers,
                           .body = call->body,
                           .body_len = call->body_len};
  http_client_resp_t resp;
  json_error_t jerr;
  int rc;

  call->json = NULL;
  call->status = 0;
  rc = http_client_fetch(&s->url, &opts, &req, &resp, err, errlen);
  if (rc < 0)
    return rc;
  call->status = resp.status;
  if (resp.status < 200 || resp.status > 299) {
    ctl_api_error_format(resp.status, resp.body, err, errlen);
    rc = -EREMOTEIO;
  } else if (resp.len > 0) {
    call->json = json_loadb(resp.body, resp.len, 0, &jerr);
    if (!call->json) {
      snprintf(err, errlen, "%s %s answered %d with bad JSON: %s", call->method,
               call->path, resp.status, jerr.text);
      rc = -EPROTO;
    }
  }
  http_client_resp_deinit(&resp);
  return rc;
}
