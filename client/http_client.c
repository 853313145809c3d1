/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 over a non-blocking socket: every wait is a poll() bounded by
 * the caller's timeout and cut short by its wake descriptor. Reading
 * goes through one buffer, so the head's lines and the body's bytes
 * share it; chunked bodies are decoded as they are read. */
#include "http_client.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_BUF 16384
#define HEAD_MAX 65536
#define FETCH_MAX (64u << 20)

typedef enum {
  BODY_NONE,    /* no body: HEAD, 204, 304 */
  BODY_LENGTH,  /* Content-Length bytes */
  BODY_CHUNKED, /* chunked transfer encoding */
  BODY_CLOSE    /* everything until the server closes */
} body_mode_t;

struct http_client_conn {
  int fd;
  http_client_opts_t opts;
  char authority[272];
  char prefix[256];
  int head_only; /* the request was HEAD */
  char buf[CONN_BUF];
  size_t pos, end; /* unread bytes are buf[pos..end) */
  body_mode_t mode;
  unsigned long long left; /* of the body or of the current chunk */
  int chunk_seen;          /* a chunk's data precedes, so a CRLF is due */
  int done;
};

/* ---- URLs. */

static int url_port_parse(const char *s, size_t n, char *out, size_t cap) {
  unsigned long v = 0;

  if (n == 0 || n >= cap)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > 65535)
      return -1;
  }
  if (v == 0)
    return -1;
  memcpy(out, s, n);
  out[n] = '\0';
  return 0;
}

/* Splits "host[:port]" or "[v6][:port]" (n bytes at a) into out. */
static int url_authority_parse(const char *a, size_t n, http_client_url_t *out,
                               char *err, size_t errlen) {
  const char *host = a, *colon = NULL, *end = a + n;
  size_t hlen;

  if (n > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', n);
    if (!close || (close + 1 < end && close[1] != ':')) {
      snprintf(err, errlen, "a bracketed IPv6 host needs a closing ']'");
      return -EINVAL;
    }
    host = a + 1;
    hlen = (size_t)(close - host);
    colon = close + 1 < end ? close + 1 : NULL;
  } else {
    colon = memchr(a, ':', n);
    hlen = colon ? (size_t)(colon - a) : n;
  }
  if (hlen == 0 || hlen >= sizeof out->host || n >= sizeof out->authority) {
    snprintf(err, errlen, "the URL's host is empty or too long");
    return -EINVAL;
  }
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  memcpy(out->authority, a, n);
  out->authority[n] = '\0';
  snprintf(out->port, sizeof out->port, "80");
  if (colon && url_port_parse(colon + 1, (size_t)(end - colon - 1), out->port,
                              sizeof out->port) < 0) {
    snprintf(err, errlen, "the URL's port must be a number from 1 to 65535");
    return -EINVAL;
  }
  return 0;
}

int http_client_url_parse(const char *url, http_client_url_t *out, char *err,
                          size_t errlen) {
  const char *rest, *slash;
  size_t plen;

  memset(out, 0, sizeof *out);
  if (strncasecmp(url, "http://", 7) != 0) {
    snprintf(err, errlen, "%s: only http:// URLs are supported", url);
    return -EINVAL;
  }
  rest = url + 7;
  if (strpbrk(rest, "@?# \t\r\n")) {
    snprintf(err, errlen,
             "%s: a server URL has no user, query, fragment "
             "or blanks",
             url);
    return -EINVAL;
  }
  slash = strchr(rest, '/');
  if (url_authority_parse(rest, slash ? (size_t)(slash - rest) : strlen(rest),
                          out, err, errlen) < 0)
    return -EINVAL;

  /* The prefix keeps its leading '/' and loses any trailing ones. */
  plen = slash ? strlen(slash) : 0;
  while (plen > 0 && slash[plen - 1] == '/')
    plen--;
  if (plen >= sizeof out->prefix) {
    snprintf(err, errlen, "the URL's path is too long");
    return -EINVAL;
  }
  if (plen)
    memcpy(out->prefix, slash, plen);
  out->prefix[plen] = '\0';
  return 0;
}

/* ---- Waiting. */

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events, timeout_ms passes (-ETIMEDOUT) or
 * wake_fd becomes readable (-EINTR). */
static int fd_wait(int fd, short events, int timeout_ms, int wake_fd) {
  long long end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  struct pollfd p[2] = {{.fd = fd, .events = events},
                        {.fd = wake_fd, .events = POLLIN}};

  for (;;) {
    int left = end < 0 ? -1 : (int)(end - now_ms());
    int n;

    if (end >= 0 && left < 0)
      left = 0;
    n = poll(p, wake_fd >= 0 ? 2 : 1, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n > 0 && wake_fd >= 0 && p[1].revents)
      return -EINTR;
    if (n > 0)
      return 0;
    return -ETIMEDOUT;
  }
}

/* ---- Connecting. */

/* Connects fd to ai within the timeout; returns 0 or a negative errno. */
static int sock_connect(int fd, const struct addrinfo *ai,
                        const http_client_opts_t *opts) {
  int soerr = 0, rc;
  socklen_t len = sizeof soerr;

  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return 0;
  if (errno != EINPROGRESS)
    return -errno;
  rc = fd_wait(fd, POLLOUT, opts->connect_ms, opts->wake_fd);
  if (rc < 0)
    return rc;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
    return -errno;
  return -soerr;
}

/* Tries each resolved address in turn; returns a connected socket or a
 * negative errno of the last attempt. */
static int addrs_connect(const struct addrinfo *list,
                         const http_client_opts_t *opts) {
  int rc = -ECONNREFUSED;

  for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      rc = -errno;
      continue;
    }
    rc = sock_connect(fd, ai, opts);
    if (rc == 0)
      return fd;
    close(fd);
    if (rc == -EINTR)
      break;
  }
  return rc;
}

int http_client_conn_new(const http_client_url_t *url,
                         const http_client_opts_t *opts,
                         http_client_conn_t **out, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *list = NULL;
  http_client_conn_t *c;
  int rc, fd;

  *out = NULL;
  rc = getaddrinfo(url->host, url->port, &hints, &list);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", url->host, gai_strerror(rc));
    return -EHOSTUNREACH;
  }
  fd = addrs_connect(list, opts);
  freeaddrinfo(list);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to %s: %s", url->authority,
             fd == -EINTR ? "interrupted" : strerror(-fd));
    return fd;
  }
  c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  c->fd = fd;
  c->opts = *opts;
  snprintf(c->authority, sizeof c->authority, "%s", url->authority);
  snprintf(c->prefix, sizeof c->prefix, "%s", url->prefix);
  *out = c;
  return 0;
}

void http_client_conn_free(http_client_conn_t *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

/* ---- Sending. */

static int send_all(http_client_conn_t *c, const char *p, size_t n, char *err,
                    size_t errlen) {
  while (n > 0) {
    ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
    int rc = 0;

    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      rc = fd_wait(c->fd, POLLOUT, c->opts.io_ms, c->opts.wake_fd);
    else if (k < 0 && errno != EINTR)
      rc = -errno;
    if (rc < 0) {
      snprintf(err, errlen, "cannot send to %s: %s", c->authority,
               rc == -EINTR ? "interrupted" : strerror(-rc));
      return rc;
    }
    if (k > 0) {
      p += k;
      n -= (size_t)k;
    }
  }
  return 0;
}

static int header_value_ok(const char *v) {
  return !v || !strpbrk(v, "\r\n");
}

/* The request line and headers, in a buffer the caller frees; sets
 * *len. Returns NULL when out of memory. */
static char *head_format(const http_client_conn_t *c,
                         const http_client_req_t *req, size_t *len) {
  int sized =
      strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
  char *head = NULL;
  FILE *f = open_memstream(&head, len);
  int bad;

  if (!f)
    return NULL;
  fprintf(f, "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n",
          req->method, c->prefix, req->path, c->authority);
  fprintf(f, "Accept: %s\r\nUser-Agent: spkctl\r\n",
          req->accept ? req->accept : "application/json");
  if (req->token)
    fprintf(f, "Authorization: Bearer %s\r\n", req->token);
  for (const char *const *h = req->headers; h && *h; h++)
    fprintf(f, "%s\r\n", *h);
  if (req->body_len > 0)
    fprintf(f, "Content-Type: application/json\r\n");
  if (sized)
    fprintf(f, "Content-Length: %zu\r\n", req->body_len);
  fputs("\r\n", f);
  bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    free(head);
    return NULL;
  }
  return head;
}

int http_client_request_send(http_client_conn_t *c,
                             const http_client_req_t *req, char *err,
                             size_t errlen) {
  size_t len = 0;
  char *head;
  int rc;

  int ok = header_value_ok(req->method) && header_value_ok(req->path) &&
           header_value_ok(req->token) && header_value_ok(req->accept) &&
           !strchr(req->path, ' ');

  for (const char *const *h = req->headers; ok && h && *h; h++)
    ok = header_value_ok(*h) && strchr(*h, ':');
  if (!ok) {
    snprintf(err, errlen, "a request's path or header is malformed");
    return -EINVAL;
  }
  head = head_format(c, req, &len);
  if (!head) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  c->head_only = strcmp(req->method, "HEAD") == 0;
  rc = send_all(c, head, len, err, errlen);
  if (rc == 0 && req->body_len > 0)
    rc = send_all(c, req->body, req->body_len, err, errlen);
  free(head);
  return rc;
}

/* ---- Reading. */

/* Reads more into the buffer. Returns the bytes read, 0 when the server
 * closed, or a negative errno (with err) when the wait failed. */
static ssize_t buf_fill(http_client_conn_t *c, char *err, size_t errlen) {
  if (c->pos > 0) {
    memmove(c->buf, c->buf + c->pos, c->end - c->pos);
    c->end -= c->pos;
    c->pos = 0;
  }
  for (;;) {
    ssize_t k = recv(c->fd, c->buf + c->end, sizeof c->buf - c->end, 0);
    int rc;

    if (k >= 0) {
      c->end += (size_t)k;
      return k;
    }
    if (errno == EINTR)
      continue;
    rc = errno == EAGAIN || errno == EWOULDBLOCK
             ? fd_wait(c->fd, POLLIN, c->opts.io_ms, c->opts.wake_fd)
             : -errno;
    if (rc < 0) {
      snprintf(err, errlen, "cannot read from %s: %s", c->authority,
               rc == -EINTR ? "interrupted" : strerror(-rc));
      return rc;
    }
  }
}

/* Takes one line from the input, without its LF or CRLF, into line
 * (NUL-terminated; cap bytes at most). Returns its length, or -EPROTO
 * for a longer line, -ECONNRESET when the server closes first, or the
 * error of a read. */
static long line_read(http_client_conn_t *c, char *line, size_t cap, char *err,
                      size_t errlen) {
  for (;;) {
    char *nl = memchr(c->buf + c->pos, '\n', c->end - c->pos);
    ssize_t k;

    if (nl) {
      size_t n = (size_t)(nl - (c->buf + c->pos));
      size_t keep = n > 0 && nl[-1] == '\r' ? n - 1 : n;
      if (keep >= cap) {
        snprintf(err, errlen, "%s sent a line too long", c->authority);
        return -EPROTO;
      }
      memcpy(line, c->buf + c->pos, keep);
      line[keep] = '\0';
      c->pos += n + 1;
      return (long)keep;
    }
    if (c->end - c->pos >= cap || (c->pos == 0 && c->end == sizeof c->buf)) {
      snprintf(err, errlen, "%s sent a line too long", c->authority);
      return -EPROTO;
    }
    k = buf_fill(c, err, errlen);
    if (k < 0)
      return (long)k;
    if (k == 0) {
      snprintf(err, errlen, "%s closed the connection mid-response",
               c->authority);
      return -ECONNRESET;
    }
  }
}

/* Parses "HTTP/1.x NNN[ reason]" into *status. */
static int status_parse(const char *line, int *status) {
  if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
      line[8] != ' ')
    return -1;
  for (int i = 9; i < 12; i++)
    if (!isdigit((unsigned char)line[i]))
      return -1;
  if (line[12] != '\0' && line[12] != ' ')
    return -1;
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  return *status >= 100 ? 0 : -1;
}

/* Parses a Content-Length value: digits only, at most 2^53. */
static int length_parse(const char *v, unsigned long long *out) {
  unsigned long long n = 0;

  if (!*v)
    return -1;
  for (; *v; v++) {
    if (!isdigit((unsigned char)*v) || n > (1ull << 53) / 10)
      return -1;
    n = n * 10 + (unsigned long long)(*v - '0');
  }
  *out = n;
  return 0;
}

/* What the head's framing headers said. */
typedef struct {
  int chunked;
  int has_length;
  unsigned long long length;
} framing_t;

/* Notes one header line's framing, if it has any; -1 for a bad one. */
static int header_note(char *line, framing_t *f) {
  char *colon = strchr(line, ':'), *v, *end;
  unsigned long long n;

  if (!colon || colon == line)
    return -1;
  *colon = '\0';
  for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
    ;
  end = v + strlen(v);
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    *--end = '\0';
  if (strcasecmp(line, "Transfer-Encoding") == 0) {
    if (strcasecmp(v, "chunked") != 0)
      return -1;
    f->chunked = 1;
  } else if (strcasecmp(line, "Content-Length") == 0) {
    if (length_parse(v, &n) < 0 || (f->has_length && n != f->length))
      return -1;
    f->has_length = 1;
    f->length = n;
  }
  return 0;
}

/* Reads one head (status line and headers) into *status and *f. */
static int head_read_one(http_client_conn_t *c, int *status, framing_t *f,
                         char *err, size_t errlen) {
  char line[4096];
  size_t total = 0;
  long n = line_read(c, line, sizeof line, err, errlen);

  if (n < 0)
    return (int)n;
  if (status_parse(line, status) < 0) {
    snprintf(err, errlen, "%s did not answer with HTTP/1.x", c->authority);
    return -EPROTO;
  }
  memset(f, 0, sizeof *f);
  while ((n = line_read(c, line, sizeof line, err, errlen)) > 0) {
    total += (size_t)n;
    if (total > HEAD_MAX || header_note(line, f) < 0) {
      snprintf(err, errlen, "%s sent a bad or unsupported header: %.80s",
               c->authority, line);
      return -EPROTO;
    }
  }
  return (int)n;
}

int http_client_head_read(http_client_conn_t *c, int *status, char *err,
                          size_t errlen) {
  framing_t f;
  int rc;

  do {
    rc = head_read_one(c, status, &f, err, errlen);
    if (rc < 0)
      return rc;
  } while (*status < 200);

  c->done = 0;
  c->chunk_seen = 0;
  c->left = 0;
  if (c->head_only || *status == 204 || *status == 304)
    c->mode = BODY_NONE;
  else if (f.chunked)
    c->mode = BODY_CHUNKED;
  else if (f.has_length) {
    c->mode = BODY_LENGTH;
    c->left = f.length;
  } else
    c->mode = BODY_CLOSE;
  c->done = c->mode == BODY_NONE || (c->mode == BODY_LENGTH && !c->left);
  return 0;
}

/* Copies up to want buffered bytes (reading more when none are) into
 * buf. Returns the bytes copied, 0 when the server closed, or an error. */
static ssize_t bytes_take(http_client_conn_t *c, char *buf, size_t want,
                          char *err, size_t errlen) {
  size_t n;

  if (c->pos == c->end) {
    ssize_t k = buf_fill(c, err, errlen);
    if (k <= 0)
      return k;
  }
  n = c->end - c->pos < want ? c->end - c->pos : want;
  memcpy(buf, c->buf + c->pos, n);
  c->pos += n;
  return (ssize_t)n;
}

/* Parses a chunk-size line: hex digits, then optional extensions. */
static int chunk_size_parse(const char *line, unsigned long long *out) {
  static const char hex[] = "0123456789abcdef";
  unsigned long long n = 0;
  const char *p = line;

  for (; isxdigit((unsigned char)*p); p++) {
    if (n > (1ull << 53) / 16)
      return -1;
    n = n * 16 +
        (unsigned long long)(strchr(hex, tolower((unsigned char)*p)) - hex);
  }
  while (*p == ' ' || *p == '\t')
    p++;
  if (p == line || (*p != '\0' && *p != ';'))
    return -1;
  *out = n;
  return 0;
}

/* Reads the next chunk's size line (after the previous chunk's CRLF);
 * at the last chunk also its trailer, and marks the body done. */
static int chunk_next(http_client_conn_t *c, char *err, size_t errlen) {
  char line[1024];
  long n;

  if (c->chunk_seen) {
    n = line_read(c, line, sizeof line, err, errlen);
    if (n != 0)
      goto bad;
  }
  n = line_read(c, line, sizeof line, err, errlen);
  if (n < 0)
    return (int)n;
  if (chunk_size_parse(line, &c->left) < 0)
    goto bad;
  c->chunk_seen = 1;
  if (c->left > 0)
    return 0;

  /* The last chunk: skip the trailer's fields up to its blank line. */
  while ((n = line_read(c, line, sizeof line, err, errlen)) > 0)
    ;
  c->done = n == 0;
  return (int)n;

bad:
  if (n < 0)
    return (int)n;
  snprintf(err, errlen, "%s sent a malformed chunk", c->authority);
  return -EPROTO;
}

int http_client_body_read(http_client_conn_t *c, char *buf, size_t cap,
                          size_t *got, char *err, size_t errlen) {
  size_t want = cap;
  ssize_t k;

  *got = 0;
  if (c->mode == BODY_CHUNKED && !c->done && c->left == 0) {
    int rc = chunk_next(c, err, errlen);
    if (rc < 0)
      return rc;
  }
  if (c->done || cap == 0)
    return 0;
  if (c->mode != BODY_CLOSE && c->left < want)
    want = (size_t)c->left;
  k = bytes_take(c, buf, want, err, errlen);
  if (k < 0)
    return (int)k;
  if (k == 0 && c->mode == BODY_CLOSE) {
    c->done = 1;
    return 0;
  }
  if (k == 0) {
    snprintf(err, errlen, "%s closed the connection mid-body", c->authority);
    return -ECONNRESET;
  }
  *got = (size_t)k;
  if (c->mode != BODY_CLOSE) {
    c->left -= (unsigned long long)k;
    c->done = c->mode == BODY_LENGTH && c->left == 0;
  }
  return 0;
}

/* Reads the rest of the body into resp, growing its buffer. */
static int body_slurp(http_client_conn_t *c, http_client_resp_t *resp,
                      char *err, size_t errlen) {
  size_t cap = 0, got;
  int rc;

  do {
    if (cap - resp->len < 4096) {
      char *p;
      cap = cap ? cap * 2 : 8192;
      if (cap > FETCH_MAX) {
        snprintf(err, errlen, "the answer of %s exceeds 64 MiB", c->authority);
        return -EMSGSIZE;
      }
      p = realloc(resp->body, cap);
      if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
      }
      resp->body = p;
    }
    rc = http_client_body_read(c, resp->body + resp->len, cap - resp->len - 1,
                               &got, err, errlen);
    resp->len += got;
    resp->body[resp->len] = '\0';
  } while (rc == 0 && got > 0);
  return rc;
}

int http_client_fetch(const http_client_url_t *url,
                      const http_client_opts_t *opts,
                      const http_client_req_t *req, http_client_resp_t *resp,
                      char *err, size_t errlen) {
  http_client_conn_t *c = NULL;
  int rc;

  memset(resp, 0, sizeof *resp);
  rc = http_client_conn_new(url, opts, &c, err, errlen);
  if (rc == 0)
    rc = http_client_request_send(c, req, err, errlen);
  if (rc == 0)
    rc = http_client_head_read(c, &resp->status, err, errlen);
  if (rc == 0)
    rc = body_slurp(c, resp, err, errlen);
  http_client_conn_free(c);
  if (rc < 0)
    http_client_resp_deinit(resp);
  return rc;
}

void http_client_resp_deinit(http_client_resp_t *resp) {
  free(resp->body);
  resp->body = NULL;
  resp->len = 0;
}
