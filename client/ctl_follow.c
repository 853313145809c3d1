/* SPDX-License-Identifier: MIT */
/* One job's event stream, read through the HTTP client and the SSE
 * parser. Each connection starts where the last one stopped (the id of
 * the last event seen goes out as Last-Event-ID); a connection that
 * ends before the job's terminal state is retried after the stream's
 * retry delay until the caller's patience runs out. Patience counts the
 * time without a working stream since the last connection that brought
 * a new event: a server that answers and closes without one cannot keep
 * a follower forever, while a quiet stream held open costs none. */
#include "ctl_follow.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "sse.h"

#define RETRY_DEFAULT_MS 1000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 30000

/* What one follow has learnt so far, across its connections. */
typedef struct {
  const ctl_follow_opts_t *o;
  char last_id[128];     /* of the last event seen, "" before one */
  const char *final;     /* the terminal state once seen */
  long retry_ms;         /* the stream's reconnection delay */
  int answered;          /* the last connection was answered 200 */
  long long answered_at; /* when, on the monotonic clock in ms */
  int progressed;        /* the last connection brought a new event */
} follow_t;

static long long now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *terminal_state(const char *state) {
  static const char *const ends[] = {"succeeded", "failed", "cancelled"};

  for (size_t i = 0; state && i < sizeof ends / sizeof ends[0]; i++)
    if (strcmp(state, ends[i]) == 0)
      return ends[i];
  return NULL;
}

/* A string field of an event's data, or "?" when it has none. */
static const char *text(json_t *data, const char *key) {
  const char *v = json_string_value(json_object_get(data, key));

  return v ? v : "?";
}

/* A metric as the progress lines show it: 4 decimals, "-" for null. */
static const char *metric(json_t *data, const char *key, char *buf,
                          size_t cap) {
  json_t *v = json_object_get(data, key);

  if (!json_is_number(v))
    return "-";
  snprintf(buf, cap, "%.4f", json_number_value(v));
  return buf;
}

/* One epoch as spkd run prints it: "stage=spl epoch=3 loss=...". */
static void epoch_print(const follow_t *f, json_t *data) {
  char a[32], b[32], c[32], d[32];

  fprintf(f->o->out,
          "job %lld: stage=%s epoch=%lld loss=%s train_acc=%s val_acc=%s "
          "test_acc=%s\n",
          f->o->job, text(data, "stage"),
          (long long)json_integer_value(json_object_get(data, "epoch")),
          metric(data, "train_loss", a, sizeof a),
          metric(data, "train_acc", b, sizeof b),
          metric(data, "val_acc", c, sizeof c),
          metric(data, "test_acc", d, sizeof d));
}

/* Progress lines: states, epochs and log messages; the rest is left
 * to `spkctl events`. */
static void progress_print(const follow_t *f, const char *kind, json_t *data) {
  const char *error = json_string_value(json_object_get(data, "error"));

  if (strcmp(kind, "state") == 0)
    fprintf(f->o->out, "job %lld: %s%s%s\n", f->o->job, text(data, "state"),
            error ? ": " : "", error ? error : "");
  else if (strcmp(kind, "epoch") == 0)
    epoch_print(f, data);
  else if (strcmp(kind, "log") == 0)
    fprintf(f->o->out, "job %lld: [%s] %s\n", f->o->job, text(data, "level"),
            text(data, "message"));
}

/* An event as one line, "ID KIND DATA", data lines joined by blanks. */
static void raw_print(const follow_t *f, const sse_event_t *ev) {
  fprintf(f->o->out, "%s %s ", ev->id[0] ? ev->id : "-", ev->event);
  for (size_t i = 0; i < ev->data_len; i++)
    fputc(ev->data[i] == '\n' ? ' ' : ev->data[i], f->o->out);
  fputc('\n', f->o->out);
}

/* The parser's callback: prints the event, notes its id, and stops the
 * stream at the job's terminal state. */
static int on_event(void *ctx, const sse_event_t *ev) {
  follow_t *f = ctx;
  json_t *data = json_loadb(ev->data, ev->data_len, 0, NULL);
  int stop = 0;

  /* An event sent again under the id already seen is no progress. */
  f->progressed |= !ev->id[0] || strcmp(ev->id, f->last_id) != 0;
  if (ev->id[0])
    snprintf(f->last_id, sizeof f->last_id, "%s", ev->id);
  if (f->o->raw)
    raw_print(f, ev);
  else if (json_is_object(data))
    progress_print(f, ev->event, data);
  if (strcmp(ev->event, "state") == 0) {
    f->final =
        terminal_state(json_string_value(json_object_get(data, "state")));
    stop = f->final != NULL;
  }
  fflush(f->o->out);
  json_decref(data);
  return stop;
}

/* Reads an error answer's body (its first 4 KiB) into err in words. */
static void error_answer_read(http_client_conn_t *c, int status, char *err,
                              size_t errlen) {
  char body[4096];
  size_t len = 0, got = 1;

  while (got > 0 && len < sizeof body - 1 &&
         http_client_body_read(c, body + len, sizeof body - 1 - len, &got, err,
                               errlen) == 0)
    len += got;
  body[len] = '\0';
  ctl_api_error_format(status, body, err, errlen);
}

/* Feeds the body of an answered stream to the parser until it ends, the
 * job ends or a read fails. */
static int stream_read(http_client_conn_t *c, follow_t *f, char *err,
                       size_t errlen) {
  sse_parser_t p;
  char buf[4096];
  size_t got = 0;
  int rc;

  sse_parser_init(&p, on_event, f);
  do {
    rc = http_client_body_read(c, buf, sizeof buf, &got, err, errlen);
    if (rc == 0 && got > 0)
      rc = sse_parser_feed(&p, buf, got, err, errlen);
  } while (rc == 0 && got > 0);
  if (p.retry_ms >= 0)
    f->retry_ms = p.retry_ms;
  sse_parser_deinit(&p);
  return rc > 0 ? 0 : rc;
}

/* One connection to the stream, from its request to its end. */
static int stream_once(const ctl_server_t *s, follow_t *f, char *err,
                       size_t errlen) {
  http_client_opts_t opts = {CTL_CONNECT_S * 1000, CTL_STREAM_IDLE_S * 1000,
                             s->wake_fd};
  http_client_req_t req = {
      .method = "GET", .token = s->token, .accept = "text/event-stream"};
  http_client_conn_t *c = NULL;
  char path[64], last[160];
  const char *const headers[] = {last, NULL};
  int rc, status = 0;

  snprintf(path, sizeof path, "/v1/jobs/%lld/events", f->o->job);
  snprintf(last, sizeof last, "Last-Event-ID: %s", f->last_id);
  req.path = path;
  req.headers = f->last_id[0] ? headers : NULL;
  rc = http_client_conn_new(&s->url, &opts, &c, err, errlen);
  if (rc == 0)
    rc = http_client_request_send(c, &req, err, errlen);
  if (rc == 0)
    rc = http_client_head_read(c, &status, err, errlen);
  if (rc == 0 && status != 200) {
    error_answer_read(c, status, err, errlen);
    rc = -EREMOTEIO;
  }
  if (rc == 0) {
    f->answered = 1;
    f->answered_at = now_ms();
    rc = stream_read(c, f, err, errlen);
  }
  http_client_conn_free(c);
  return rc;
}

/* Sleeps ms milliseconds unless wake_fd becomes readable (-EINTR). */
static int pause_ms(int wake_fd, long ms) {
  struct pollfd p = {.fd = wake_fd, .events = POLLIN};
  int n;

  do
    n = poll(&p, wake_fd >= 0 ? 1 : 0, (int)ms);
  while (n < 0 && errno == EINTR);
  return n > 0 ? -EINTR : 0;
}

int ctl_follow(const ctl_server_t *s, const ctl_follow_opts_t *o,
               const char **state, char *err, size_t errlen) {
  follow_t f = {.o = o, .retry_ms = RETRY_DEFAULT_MS};
  long long give_up = -1;
  int rc, ever = 0;

  for (;;) {
    f.answered = f.progressed = 0;
    rc = stream_once(s, &f, err, errlen);
    if (f.final) {
      *state = f.final;
      err[0] = '\0'; /* what a dropped stream said is past */
      return 0;
    }
    if (rc == 0)
      snprintf(err, errlen, "the event stream ended before the job did");
    ever |= f.answered;
    if (rc == -EINTR || rc == -EREMOTEIO || !ever)
      return rc ? rc : -ECONNRESET;

    /* Patience counts from the first drop, and again from each drop of
     * a connection that brought new events; the time a connection
     * without any stayed open is given back. */
    if (f.answered && !f.progressed && give_up >= 0)
      give_up += now_ms() - f.answered_at;
    if (f.progressed || give_up < 0) {
      give_up = now_ms() + (long long)o->reconnect_s * 1000;
      if (o->notes)
        fprintf(o->notes, "spkctl: job %lld: %s; reconnecting\n", o->job, err);
    }
    if (now_ms() >= give_up)
      return rc ? rc : -ECONNRESET;
    f.retry_ms = f.retry_ms < RETRY_MIN_MS   ? RETRY_MIN_MS
                 : f.retry_ms > RETRY_MAX_MS ? RETRY_MAX_MS
                                             : f.retry_ms;
    if (pause_ms(s->wake_fd, f.retry_ms) < 0)
      return -EINTR;
  }
}
