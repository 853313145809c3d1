/* SPDX-License-Identifier: MIT */
/* spkctl's view of spkd's HTTP API: one request with its JSON answer,
 * and spkd's error bodies turned into one readable line. Commands and
 * output live in spkctl.c, the event stream in ctl_follow.c. */
#ifndef SPK_CLIENT_CTL_API_H
#define SPK_CLIENT_CTL_API_H

#include <jansson.h>

#include "http_client.h"

/* Which daemon to talk to, and how. */
typedef struct {
  http_client_url_t url;
  const char *token; /* NULL, or sent as "Authorization: Bearer TOKEN" */
  int wake_fd;       /* -1, or a descriptor that interrupts waiting for
                        the event stream (spkctl's signalfd) */
} ctl_server_t;

/* One call: what to send, and what came back. */
typedef struct {
  const char *method;
  const char *path;           /* "/v1/jobs/3" */
  const char *const *headers; /* NULL, or "Name: value" lines, NULL last */
  const char *body;           /* NULL, or body_len bytes of JSON */
  size_t body_len;
  int status;   /* out: the HTTP status */
  json_t *json; /* out: the parsed 2xx body (NULL when empty); the
                   caller releases it with json_decref */
} ctl_call_t;

/* Seconds spkctl waits to connect, and for any answer to a request. */
#define CTL_CONNECT_S 10
#define CTL_ANSWER_S 60

/* Sends the call and reads its answer. Returns 0 for a 2xx status,
 * -EREMOTEIO for any other (err then holds the API's error in words,
 * see ctl_api_error_format), -EPROTO for a 2xx body that is not JSON,
 * or the error of http_client_fetch when the server cannot be reached. */
int ctl_api_call(const ctl_server_t *s, ctl_call_t *call, char *err,
                 size_t errlen);

/* Writes an error answer as one line into err: "HTTP 401 unauthorized:
 * MESSAGE" with " (field F)" when the error names one; a body that is
 * not spkd's error shows its first line. body may be NULL. */
void ctl_api_error_format(int status, const char *body, char *err,
                          size_t errlen);

#endif
