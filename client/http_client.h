/* SPDX-License-Identifier: MIT */
/* A small HTTP/1.1 client over plain sockets, enough for spkctl: http://
 * URLs only, one request per connection, bodies sized by Content-Length,
 * chunked transfer encoding or the end of the connection. It knows
 * nothing of JSON or of spkd's routes. */
#ifndef SPK_CLIENT_HTTP_CLIENT_H
#define SPK_CLIENT_HTTP_CLIENT_H

#include <stddef.h>

/* Where a server is, from "http://HOST[:PORT][/PREFIX]". */
typedef struct {
  char host[256];      /* name or address, IPv6 without brackets */
  char port[8];        /* "80" when the URL gives none */
  char authority[272]; /* the Host header: host[:port] as written */
  char prefix[256];    /* path put before every request's, "" or "/x" */
} http_client_url_t;

/* How long to wait, and for what besides the server. */
typedef struct {
  int connect_ms; /* longest wait for the connection, -1 forever */
  int io_ms;      /* longest wait for each read or write, -1 forever */
  int wake_fd;    /* -1, or a descriptor whose becoming readable ends any
                     wait with -EINTR (spkctl passes a signalfd) */
} http_client_opts_t;

/* One request. A method other than GET and HEAD always sends a
 * Content-Length (0 without a body). */
typedef struct {
  const char *method;         /* "GET", "POST", ... */
  const char *path;           /* after the URL's prefix: "/v1/jobs?x=1" */
  const char *token;          /* NULL, or sent as "Bearer TOKEN" */
  const char *accept;         /* NULL for application/json */
  const char *const *headers; /* NULL, or more "Name: value" lines,
                                 the list ending with NULL */
  const char *body;           /* NULL or body_len bytes of JSON */
  size_t body_len;
} http_client_req_t;

/* A whole response: status code and body, NUL-terminated for
 * convenience (len excludes the NUL). */
typedef struct {
  int status;
  char *body;
  size_t len;
} http_client_resp_t;

typedef struct http_client_conn http_client_conn_t;

/* Parses url into out. Returns 0, or -EINVAL with err saying what is
 * wrong (not http://, no host, a bad port, parts too long). */
int http_client_url_parse(const char *url, http_client_url_t *out, char *err,
                          size_t errlen);

/* Resolves the URL's host and connects to the first address that
 * answers within opts->connect_ms. On success *out owns the socket.
 * Returns 0, -EHOSTUNREACH (name not resolved), -ECONNREFUSED,
 * -ETIMEDOUT, -EINTR (wake_fd readable), -ENOMEM or another negative
 * errno code, each with err in words. */
int http_client_conn_new(const http_client_url_t *url,
                         const http_client_opts_t *opts,
                         http_client_conn_t **out, char *err, size_t errlen);

/* Closes the connection and frees it; accepts NULL. */
void http_client_conn_free(http_client_conn_t *c);

/* Writes the request line, the headers (Host, Connection: close,
 * Accept, and the optional ones) and the body. Returns 0, -EINVAL for a
 * path with a blank or a header holding CR or LF (or, among the extra
 * ones, no colon), or the errors of a write (-EPIPE, -ETIMEDOUT,
 * -EINTR, ...). */
int http_client_request_send(http_client_conn_t *c,
                             const http_client_req_t *req, char *err,
                             size_t errlen);

/* Reads the status line and headers of the response (skipping any
 * 1xx interim ones) into *status and chooses how the body is framed.
 * Returns 0, -EPROTO for what is not an HTTP/1.x response (a bad status
 * line, a bad Content-Length, a transfer coding other than chunked, a
 * head over 64 KiB), -ECONNRESET when the server closes first, or the
 * errors of a read. */
int http_client_head_read(http_client_conn_t *c, int *status, char *err,
                          size_t errlen);

/* Reads up to cap bytes of the decoded body into buf and sets *got;
 * *got is 0 only at the body's end. Call after http_client_head_read.
 * Returns 0, -EPROTO for a malformed chunk, -ECONNRESET for a body cut
 * short, or the errors of a read. */
int http_client_body_read(http_client_conn_t *c, char *buf, size_t cap,
                          size_t *got, char *err, size_t errlen);

/* Connects, sends req, reads the whole response into *resp (caller
 * frees it with http_client_resp_deinit) and closes. Bodies over
 * 64 MiB give -EMSGSIZE. Returns 0 or an error of the steps above. */
int http_client_fetch(const http_client_url_t *url,
                      const http_client_opts_t *opts,
                      const http_client_req_t *req, http_client_resp_t *resp,
                      char *err, size_t errlen);

/* Frees the body of a response; accepts one never filled. */
void http_client_resp_deinit(http_client_resp_t *resp);

#endif
