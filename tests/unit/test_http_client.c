/* SPDX-License-Identifier: MIT */
/* Unit tests of spkctl's HTTP client (client/http_client.c) and its
 * Server-Sent Events parser (client/sse.c). A tiny server thread on a
 * loopback port reads one request and answers with canned bytes, so
 * status lines, framing, chunked bodies, timeouts and the wake
 * descriptor are checked over a real socket; the parser on buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../client/http_client.h"
#include "../../client/sse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- A one-request server. */

typedef struct {
  int lfd;
  char url[64];
  const char *reply; /* sent once the request has been read */
  int hold_ms;       /* waited before replying */
  char request[8192];
  size_t request_len;
  pthread_t thread;
} server_t;

static void ms_sleep(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

  nanosleep(&ts, NULL);
}

/* Reads the request head and as many body bytes as it announces. */
static void request_read(server_t *s, int fd) {
  const char *end = NULL, *cl;
  size_t want = 0;
  ssize_t k;

  while (s->request_len < sizeof s->request - 1) {
    if (end && s->request_len >= want)
      break;
    k = recv(fd, s->request + s->request_len,
             sizeof s->request - 1 - s->request_len, 0);
    if (k <= 0)
      break;
    s->request_len += (size_t)k;
    s->request[s->request_len] = '\0';
    end = strstr(s->request, "\r\n\r\n");
    if (end) {
      cl = strstr(s->request, "Content-Length: ");
      want = (size_t)(end + 4 - s->request) +
             (cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0);
    }
  }
}

/* Sends the reply in small pieces, so that the client's reads end in
 * the middle of lines and chunks. */
static void *server_main(void *arg) {
  server_t *s = arg;
  int fd = accept(s->lfd, NULL, NULL);
  size_t n = s->reply ? strlen(s->reply) : 0;

  if (fd < 0)
    return NULL;
  request_read(s, fd);
  ms_sleep(s->hold_ms);
  for (size_t off = 0; off < n; off += 5) {
    send(fd, s->reply + off, n - off < 5 ? n - off : 5, MSG_NOSIGNAL);
    ms_sleep(off % 50 == 0);
  }
  close(fd);
  return NULL;
}

static void server_start(server_t *s, const char *reply, int hold_ms) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;

  memset(s, 0, sizeof *s);
  s->reply = reply;
  s->hold_ms = hold_ms;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 1), 0);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
  snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/base/",
           ntohs(a.sin_port));
  assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_join(server_t *s) {
  pthread_join(s->thread, NULL);
  close(s->lfd);
}

static const http_client_opts_t OPTS = {2000, 2000, -1};

/* Fetches GET /x from a server answering reply; returns the result. */
static int fetch_reply(const char *reply, http_client_resp_t *resp, char *err) {
  http_client_req_t req = {.method = "GET", .path = "/x"};
  http_client_url_t url;
  server_t s;
  int rc;

  server_start(&s, reply, 0);
  assert_int_equal(http_client_url_parse(s.url, &url, err, 256), 0);
  rc = http_client_fetch(&url, &OPTS, &req, resp, err, 256);
  server_join(&s);
  return rc;
}

/* ---- URLs. */

static void test_url_parse(void **state) {
  http_client_url_t u;
  char err[256];
  const char *bad[] = {"https://h",    "h:80",           "http://",
                       "http://h:0",   "http://h:65536", "http://h:8x",
                       "http://u@h",   "http://h/?q",    "http://[::1",
                       "http://[::1]x"};

  (void)state;
  assert_int_equal(
      http_client_url_parse("http://127.0.0.1:8080", &u, err, sizeof err), 0);
  assert_string_equal(u.host, "127.0.0.1");
  assert_string_equal(u.port, "8080");
  assert_string_equal(u.authority, "127.0.0.1:8080");
  assert_string_equal(u.prefix, "");

  assert_int_equal(
      http_client_url_parse("HTTP://[::1]/spkd//", &u, err, sizeof err), 0);
  assert_string_equal(u.host, "::1");
  assert_string_equal(u.port, "80");
  assert_string_equal(u.authority, "[::1]");
  assert_string_equal(u.prefix, "/spkd");

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_int_equal(http_client_url_parse(bad[i], &u, err, sizeof err),
                     -EINVAL);
    assert_true(err[0] != '\0');
  }
}

/* ---- Requests and whole responses. */

static void test_request_and_length_body(void **state) {
  const char *body = "{\"name\":\"x\"}";
  const char *const headers[] = {"Last-Event-ID: 41", "X-B: 2", NULL};
  http_client_req_t req = {.method = "POST",
                           .path = "/v1/jobs",
                           .token = "secret-token-0123",
                           .headers = headers,
                           .body = body,
                           .body_len = strlen(body)};
  http_client_resp_t resp;
  http_client_url_t url;
  server_t s;
  char err[256];

  (void)state;
  server_start(&s,
               "HTTP/1.1 201 Created\r\ncontent-length:  7 \r\n"
               "X-Other: a:b\r\n\r\n{\"id\":4}",
               0);
  assert_int_equal(http_client_url_parse(s.url, &url, err, sizeof err), 0);
  assert_int_equal(http_client_fetch(&url, &OPTS, &req, &resp, err, sizeof err),
                   0);
  server_join(&s);

  /* The body stops at its length, whatever follows. */
  assert_int_equal(resp.status, 201);
  assert_int_equal(resp.len, 7);
  assert_string_equal(resp.body, "{\"id\":4");
  http_client_resp_deinit(&resp);

  assert_non_null(strstr(s.request, "POST /base/v1/jobs HTTP/1.1\r\n"));
  assert_non_null(strstr(s.request, "\r\nHost: 127.0.0.1:"));
  assert_non_null(
      strstr(s.request, "\r\nAuthorization: Bearer secret-token-0123\r\n"));
  assert_non_null(strstr(s.request, "\r\nLast-Event-ID: 41\r\nX-B: 2\r\n"));
  assert_non_null(strstr(s.request, "\r\nContent-Length: 12\r\n"));
  assert_non_null(strstr(s.request, "\r\nConnection: close\r\n"));
  assert_string_equal(strstr(s.request, "\r\n\r\n") + 4, body);
}

static void test_chunked_body(void **state) {
  http_client_resp_t resp;
  char err[256];

  (void)state;
  assert_int_equal(fetch_reply("HTTP/1.1 200 OK\r\n"
                               "Transfer-Encoding: Chunked\r\n\r\n"
                               "5\r\nhello\r\n"
                               "1;name=value\r\n,\r\n"
                               "A \r\n0123456789\r\n"
                               "0\r\nX-Trailer: t\r\n\r\n",
                               &resp, err),
                   0);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.len, 16);
  assert_string_equal(resp.body, "hello,0123456789");
  http_client_resp_deinit(&resp);
}

static void test_interim_empty_and_close_bodies(void **state) {
  http_client_resp_t resp;
  char err[256];

  (void)state;
  /* A 1xx answer is skipped; 204 has no body whatever it says. */
  assert_int_equal(fetch_reply("HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 204 No Content\r\n\r\nignored",
                               &resp, err),
                   0);
  assert_int_equal(resp.status, 204);
  assert_int_equal(resp.len, 0);
  http_client_resp_deinit(&resp);

  /* Without framing headers the body runs to the close; no reason. */
  assert_int_equal(fetch_reply("HTTP/1.0 404\nA: b\n\nto the end", &resp, err),
                   0);
  assert_int_equal(resp.status, 404);
  assert_string_equal(resp.body, "to the end");
  http_client_resp_deinit(&resp);
}

static void test_malformed_answers(void **state) {
  struct {
    const char *reply;
    int rc;
  } cases[] = {
      {"HTTP/2 200 OK\r\n\r\n", -EPROTO},
      {"HTTP/1.1 20 OK\r\n\r\n", -EPROTO},
      {"HTTP/1.1 2000 OK\r\n\r\n", -EPROTO},
      {"SSH-2.0-OpenSSH\r\n\r\n", -EPROTO},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", -EPROTO},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
       -EPROTO},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -EPROTO},
      {"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", -EPROTO},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
       -EPROTO},
      /* Cut short: in the head, in a chunk, before the length. */
      {"HTTP/1.1 200 OK\r\nA: b", -ECONNRESET},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc",
       -ECONNRESET},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", -ECONNRESET},
      {"", -ECONNRESET},
  };
  http_client_resp_t resp;
  char err[256];

  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = '\0';
    assert_int_equal(fetch_reply(cases[i].reply, &resp, err), cases[i].rc);
    assert_true(err[0] != '\0');
    assert_null(resp.body);
  }
}

/* ---- Waiting: refused, timed out, woken. */

static void test_refused_and_timeout(void **state) {
  http_client_req_t req = {.method = "GET", .path = "/"};
  http_client_opts_t quick = {2000, 100, -1};
  http_client_resp_t resp;
  http_client_url_t url;
  server_t s;
  char err[256];

  (void)state;
  /* A port nothing listens on: the listener is closed first. */
  server_start(&s, NULL, 0);
  assert_int_equal(http_client_url_parse(s.url, &url, err, sizeof err), 0);
  shutdown(s.lfd, SHUT_RDWR);
  server_join(&s);
  assert_int_equal(http_client_fetch(&url, &OPTS, &req, &resp, err, sizeof err),
                   -ECONNREFUSED);
  assert_non_null(strstr(err, "refused"));

  /* A server that answers after the read timeout. */
  server_start(&s, "HTTP/1.1 200 OK\r\n\r\n", 600);
  assert_int_equal(http_client_url_parse(s.url, &url, err, sizeof err), 0);
  assert_int_equal(
      http_client_fetch(&url, &quick, &req, &resp, err, sizeof err),
      -ETIMEDOUT);
  server_join(&s);
}

static void test_wake_fd_interrupts(void **state) {
  const char *const bad_headers[] = {"X-Fine: 1", "no colon", NULL};
  http_client_req_t req = {.method = "GET", .path = "/events"};
  http_client_conn_t *c = NULL;
  http_client_opts_t opts = {2000, -1, -1};
  http_client_url_t url;
  server_t s;
  char err[256];
  int pipefd[2], status = 0;

  (void)state;
  assert_int_equal(pipe(pipefd), 0);
  opts.wake_fd = pipefd[0];
  server_start(&s, "HTTP/1.1 200 OK\r\n\r\n", 500);
  assert_int_equal(http_client_url_parse(s.url, &url, err, sizeof err), 0);
  assert_int_equal(http_client_conn_new(&url, &opts, &c, err, sizeof err), 0);

  /* Headers that would split the request are refused, nothing sent. */
  req.headers = bad_headers;
  assert_int_equal(http_client_request_send(c, &req, err, sizeof err), -EINVAL);
  req.headers = NULL;
  req.token = "a\r\nX-Injected: 1";
  assert_int_equal(http_client_request_send(c, &req, err, sizeof err), -EINVAL);
  req.token = NULL;
  assert_int_equal(http_client_request_send(c, &req, err, sizeof err), 0);

  /* No timeout: only the wake descriptor ends the wait. */
  assert_int_equal(write(pipefd[1], "x", 1), 1);
  assert_int_equal(http_client_head_read(c, &status, err, sizeof err), -EINTR);
  http_client_conn_free(c);
  server_join(&s);
  assert_true(strncmp(s.request, "GET /base/events HTTP/1.1\r\n", 27) == 0);
  close(pipefd[0]);
  close(pipefd[1]);
}

/* ---- Server-Sent Events. */

typedef struct {
  char log[1024]; /* "id|event|data\n" per event */
  int stop_after; /* the callback returns 7 after this many, 0: never */
  int count;
} events_t;

static int event_note(void *ctx, const sse_event_t *ev) {
  events_t *e = ctx;
  size_t n = strlen(e->log);

  assert_int_equal(strlen(ev->data), ev->data_len);
  snprintf(e->log + n, sizeof e->log - n, "%s|%s|%s\n", ev->id, ev->event,
           ev->data);
  e->count++;
  return e->stop_after && e->count >= e->stop_after ? 7 : 0;
}

static const char STREAM[] =
    "\xEF\xBB\xBF: heartbeat\n"
    "retry: 2500\n"
    "id: 1\r\nevent: state\r\ndata: {\"state\":\"running\"}\r\n\r\n"
    "data:first\rdata\rdata:  third\r\r"
    "event: lonely\n\n"
    "id: 3\nevent: epoch\ndata: {\"epoch\":1}\nunknown: x\n\n"
    ":another\n"
    "id: 4\nevent: state\ndata: {\"state\":\"succeeded\"}\n\n";

static const char STREAM_EVENTS[] = "1|state|{\"state\":\"running\"}\n"
                                    "1|message|first\n\n third\n"
                                    "3|epoch|{\"epoch\":1}\n"
                                    "4|state|{\"state\":\"succeeded\"}\n";

static void test_sse_in_any_pieces(void **state) {
  const size_t pieces[] = {sizeof STREAM, 3, 1}, n = sizeof STREAM - 1;
  char err[128];

  (void)state;
  /* Whole, in pieces of 3 and byte by byte: the same events. */
  for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
    events_t e = {.stop_after = 0};
    size_t piece = pieces[k];
    sse_parser_t p;

    sse_parser_init(&p, event_note, &e);
    for (size_t off = 0; off < n; off += piece)
      assert_int_equal(sse_parser_feed(&p, STREAM + off,
                                       n - off < piece ? n - off : piece, err,
                                       sizeof err),
                       0);
    assert_string_equal(e.log, STREAM_EVENTS);
    assert_int_equal(p.retry_ms, 2500);
    assert_int_equal(p.comments, 2);
    sse_parser_deinit(&p);
  }
}

static void test_sse_stop_and_limits(void **state) {
  events_t e = {.stop_after = 2};
  char err[128], *big;
  sse_parser_t p;

  (void)state;
  sse_parser_init(&p, event_note, &e);
  assert_int_equal(
      sse_parser_feed(&p, STREAM, sizeof STREAM - 1, err, sizeof err), 7);
  assert_int_equal(e.count, 2);
  sse_parser_deinit(&p);

  /* A line over 1 MiB is refused. */
  big = malloc((1 << 20) + 16);
  assert_non_null(big);
  memset(big, 'a', (1 << 20) + 16);
  sse_parser_init(&p, event_note, &e);
  assert_int_equal(sse_parser_feed(&p, big, (1 << 20) + 16, err, sizeof err),
                   -EMSGSIZE);
  sse_parser_deinit(&p);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url_parse),
      cmocka_unit_test(test_request_and_length_body),
      cmocka_unit_test(test_chunked_body),
      cmocka_unit_test(test_interim_empty_and_close_bodies),
      cmocka_unit_test(test_malformed_answers),
      cmocka_unit_test(test_refused_and_timeout),
      cmocka_unit_test(test_wake_fd_interrupts),
      cmocka_unit_test(test_sse_in_any_pieces),
      cmocka_unit_test(test_sse_stop_and_limits),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
