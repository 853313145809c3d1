/* SPDX-License-Identifier: MIT */
/* GET /v1/jobs/{id}/events: a job's events as Server-Sent Events, its
 * history first, then live until its terminal state. Live events come
 * from the hub's ring (hub.c); the stream borrows a database connection
 * only to read what the ring does not reach back to, and at heartbeats.
 * With nothing new it suspends its connection and waits in the hub,
 * which resumes it on its job's next event, a heartbeat or shutdown.
 * What the events say is storage's and job.c's business. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "hub.h"

/* Events read from storage at a time, and what a client waits before
 * reconnecting (the stream's opening "retry:" line). */
#define EVENTS_BATCH 256
#define EVENTS_RETRY_MS 3000

/* What stream_fill left to do; FILL_MISS: the ring cannot tell, read
 * the database. */
enum { FILL_DATA, FILL_WAIT, FILL_END, FILL_ERROR, FILL_MISS };

/* One client's stream. The reader runs on the server's threads, one call
 * at a time; the waiter is the hub's while it is linked. */
typedef struct {
  http_server_t *srv;
  const http_config_t *cfg;
  struct MHD_Connection *conn;
  hub_waiter_t waiter;
  int64_t job;
  int64_t after;  /* the last seq sent */
  int64_t seen;   /* every event of the job up to it was looked at */
  uint64_t beats; /* the hub's heartbeat count when one was last sent */
  int opened;     /* the retry line is out */
  int done;       /* the terminal state event is queued: end after it */
  char *buf;      /* bytes not yet handed over: buf[off, len) */
  size_t off, len, cap;
} stream_t;

/* Parses a decimal number in [0, INT64_MAX] with nothing around it. */
static int seq_parse(const char *s, int64_t *out) {
  int64_t v = 0;

  if (!s || !*s)
    return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
      return -1;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 0;
}

/* Appends n bytes to the stream's buffer. */
static int buf_add(stream_t *s, const char *p, size_t n) {
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    char *grown;
    while (cap < s->len + n)
      cap *= 2;
    grown = realloc(s->buf, cap);
    if (!grown)
      return -ENOMEM;
    s->buf = grown;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

static int buf_str(stream_t *s, const char *str) {
  return buf_add(s, str, strlen(str));
}

/* Appends str with line breaks turned into spaces: a field's value must
 * stay on one line, and in JSON text a line break can only be white
 * space between tokens. */
static int buf_line(stream_t *s, const char *str) {
  size_t start = s->len;
  int rc = buf_str(s, str);

  for (size_t i = start; rc == 0 && i < s->len; i++)
    if (s->buf[i] == '\n' || s->buf[i] == '\r')
      s->buf[i] = ' ';
  return rc;
}

/* 1 when state is one a job never leaves. */
static int state_is_final(const char *state) {
  return state &&
         (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
          strcmp(state, "cancelled") == 0);
}

/* 1 when e is the state event of a job's end. */
static int event_is_terminal(const db_event_t *e) {
  json_t *data;
  int yes;

  if (strcmp(e->kind, "state") != 0)
    return 0;
  data = json_loads(e->data_json, 0, NULL);
  yes = state_is_final(json_string_value(json_object_get(data, "state")));
  json_decref(data);
  return yes;
}

/* Appends one event: its id, kind and data lines and the blank line
 * that dispatches it. */
static int event_add(stream_t *s, const db_event_t *e) {
  char id[40];
  int rc;

  snprintf(id, sizeof id, "id: %" PRId64 "\nevent: ", e->seq);
  rc = buf_str(s, id);
  rc = rc ? rc : buf_line(s, e->kind);
  rc = rc ? rc : buf_str(s, "\ndata: ");
  rc = rc ? rc : buf_line(s, e->data_json);
  rc = rc ? rc : buf_str(s, "\n\n");
  if (rc == 0) {
    s->after = e->seq;
    s->done = event_is_terminal(e);
  }
  return rc;
}

/* Reads the job's state and its events after s->after in one snapshot;
 * *finished says whether the job is in a final state. */
static int events_read(db_t *db, stream_t *s, db_event_t **ev, int *n,
                       int *finished, char *err, size_t errlen) {
  db_job_t job;
  int rc = db_snapshot_begin(db, err, errlen);

  if (rc)
    return rc;
  rc = db_job_get(db, s->job, &job, err, errlen);
  if (rc == 0) {
    *finished = state_is_final(job.state);
    db_job_deinit(&job);
    rc = db_event_list(db, s->job, s->after, EVENTS_BATCH, ev, n, err, errlen);
  }
  db_snapshot_end(db);
  return rc;
}

/* Logs a failed read and says so. */
static int load_fail(stream_t *s, const char *err) {
  LOG(s->cfg->log, LOG_ERROR, "events", "stream failed job=%lld error=\"%s\"",
      (long long)s->job, err);
  return FILL_ERROR;
}

/* Loads the job's next events from the database into the buffer, up to
 * the terminal one. The read began after *mark was taken, so it saw
 * every event up to mark->seq. Returns FILL_DATA when it added some,
 * FILL_END when the job is over (or gone) and nothing is left,
 * FILL_WAIT when there is nothing new yet, FILL_ERROR on a storage
 * failure or out of memory. */
static int db_load(stream_t *s, const hub_mark_t *mark) {
  db_event_t *ev = NULL;
  char err[256] = "";
  int n = 0, finished = 0, rc = -EIO;
  db_t *db = http_db_get(s->srv, err, sizeof err);

  if (db)
    rc = events_read(db, s, &ev, &n, &finished, err, sizeof err);
  http_db_put(s->srv, db);
  for (int i = 0; rc == 0 && i < n && !s->done; i++)
    if ((rc = event_add(s, &ev[i])) != 0)
      snprintf(err, sizeof err, "out of memory");
  db_events_free(ev, n);
  if (rc == -ENOENT)
    return FILL_END; /* deleted while followed */
  if (rc)
    return load_fail(s, err);
  if (n < EVENTS_BATCH && mark->seq > s->seen)
    s->seen = mark->seq; /* read to the end, past the mark */
  if (n > 0)
    return FILL_DATA;
  return finished ? FILL_END : FILL_WAIT;
}

/* Loads the job's next events from the hub's ring into the buffer, up
 * to the terminal one; FILL_DATA, FILL_WAIT, FILL_ERROR as db_load, or
 * FILL_MISS when the ring does not reach back to what the stream last
 * looked at, or holds the job's terminal event at or below the id the
 * client started after (only the database can then tell the job is
 * over). */
static int ring_load(stream_t *s) {
  db_event_t *ev = NULL;
  int64_t upto = 0;
  int n = 0, added = 0, miss = 0, rc;

  rc = hub_events_read(s->cfg->hub, s->job, s->seen, EVENTS_BATCH, &ev, &n,
                       &upto);
  if (rc == -ERANGE)
    return FILL_MISS;
  for (int i = 0; rc == 0 && i < n && !s->done && !miss; i++) {
    if (ev[i].seq <= s->after) {
      miss = event_is_terminal(&ev[i]);
      continue;
    }
    rc = event_add(s, &ev[i]);
    added++;
  }
  db_events_free(ev, n);
  if (rc)
    return load_fail(s, "out of memory");
  if (miss)
    return FILL_MISS;
  if (upto > s->seen)
    s->seen = upto;
  return added > 0 ? FILL_DATA : FILL_WAIT;
}

/* Fills the empty buffer: events when there are any, else a heartbeat
 * when one is due, else waits in the hub (the connection suspended).
 * Events come from the ring, or from the database when the ring cannot
 * tell, a heartbeat is due (what other processes stored reaches the
 * stream then) or the hub is closed. Once the hub is closed it still
 * sends what was stored before, so the last words of a stopping daemon
 * (a job put back in the queue) reach every stream, then ends. */
static int stream_fill(stream_t *s) {
  hub_mark_t mark;
  int rc, closed, beat;

  s->off = s->len = 0;
  for (;;) {
    closed = hub_mark(s->cfg->hub, &mark) < 0;
    beat = mark.beats != s->beats;
    rc = closed || beat ? FILL_MISS : ring_load(s);
    if (rc == FILL_MISS)
      rc = db_load(s, &mark);
    if (closed && rc == FILL_WAIT)
      return FILL_END;
    if (rc != FILL_WAIT)
      return rc;
    if (beat) {
      s->beats = mark.beats;
      return buf_str(s, ": heartbeat\n\n") ? FILL_ERROR : FILL_DATA;
    }
    rc = hub_wait(s->cfg->hub, &s->waiter, &mark);
    if (rc == 0)
      return FILL_WAIT;
    if (rc < 0)
      return FILL_END;
  }
}

/* The content reader: hands over buffered bytes, refilling the buffer
 * when it is empty; 0 with the connection suspended when there is
 * nothing to send yet. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
  stream_t *s = cls;
  char retry[32];
  size_t n;
  int rc = FILL_DATA;

  (void)pos;
  if (!s->opened) {
    s->opened = 1;
    snprintf(retry, sizeof retry, "retry: %d\n\n", EVENTS_RETRY_MS);
    if (buf_str(s, retry))
      return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (s->off == s->len && s->done)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (s->off == s->len)
    rc = stream_fill(s);
  if (rc == FILL_WAIT)
    return 0;
  if (rc == FILL_END)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (rc == FILL_ERROR)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  n = s->len - s->off < max ? s->len - s->off : max;
  memcpy(out, s->buf + s->off, n);
  s->off += n;
  return (ssize_t)n;
}

/* The waiter's callbacks, run under the hub's lock. */
static void stream_sleep(void *ctx) {
  stream_t *s = ctx;
  MHD_suspend_connection(s->conn);
}

static void stream_wake(void *ctx) {
  stream_t *s = ctx;
  MHD_resume_connection(s->conn);
}

/* Runs once the stream is over, however it ended (a client gone
 * included). */
static void stream_free(void *cls) {
  stream_t *s = cls;

  hub_reader_remove(s->cfg->hub, &s->waiter);
  free(s->buf);
  free(s);
}

/* Reads where the client wants to start: Last-Event-ID (a reconnecting
 * client), else ?after=, else 0. Answers 400 and returns -1 when the one
 * given is not a number. */
static int after_read(api_req_t *req, int64_t *after) {
  const char *h =
      MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
  const char *q = api_query(req, "after");

  *after = 0;
  if (h && seq_parse(h, after) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "Last-Event-ID",
                    "Last-Event-ID must be an event id (a number >= 0), "
                    "not '%.32s'",
                    h);
    return -1;
  }
  if (!h && q && seq_parse(q, after) < 0) {
    api_reply_error(req, 400, "invalid_parameter", "after",
                    "after must be an event id (a number >= 0), not "
                    "'%.32s'",
                    q);
    return -1;
  }
  return 0;
}

/* 1 when the job is over and has no event after after (its stream
 * would be empty), 0 otherwise, or a negative code with err set. */
static int stream_empty(api_req_t *req, const db_job_t *job, int64_t after,
                        char *err, size_t errlen) {
  db_event_t *ev = NULL;
  int n = 0, rc;

  if (!state_is_final(job->state))
    return 0;
  rc = db_event_list(req->db, job->id, after, 1, &ev, &n, err, errlen);
  db_events_free(ev, n);
  return rc < 0 ? rc : n == 0;
}

/* Answers 204 without a body, which tells a browser's EventSource not
 * to reconnect. The JSON replies of http.c always carry a body, so this
 * one is made here. */
static void reply_no_content(api_req_t *req) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

  if (!r) {
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_queue_response(req->conn, MHD_HTTP_NO_CONTENT, r);
  MHD_destroy_response(r);
  req->status = MHD_HTTP_NO_CONTENT;
}

/* Answers with a new stream of the job's events after after. */
static void stream_start(api_req_t *req, int64_t job, int64_t after) {
  stream_t *s = calloc(1, sizeof *s);
  hub_mark_t mark = {-1, 0, 0};

  if (!s) {
    api_reply_error(req, 500, "internal", NULL, "out of memory");
    return;
  }
  s->srv = req->srv;
  s->cfg = req->cfg;
  s->conn = req->conn;
  s->job = job;
  s->after = after;
  (void)hub_mark(req->cfg->hub, &mark);
  s->seen = after < mark.seq ? after : mark.seq;
  s->beats = mark.beats;
  s->waiter.job = job;
  s->waiter.sleep = stream_sleep;
  s->waiter.wake = stream_wake;
  s->waiter.ctx = s;
  hub_reader_add(req->cfg->hub);
  api_reply_stream(req, 200, "text/event-stream", stream_read, s, stream_free);
}

void api_job_events(api_req_t *req) {
  static const char *const params[] = {"after", NULL};
  int64_t id = 0, after = 0;
  db_job_t job;
  char err[256];
  int rc;

  if (api_query_check(req, params) < 0)
    return;
  if (seq_parse(req->seg[2], &id) < 0 || id < 1) {
    api_reply_error(req, 404, "not_found", NULL, "no job '%.32s'", req->seg[2]);
    return;
  }
  rc = db_job_get(req->db, id, &job, err, sizeof err);
  if (rc) {
    if (rc == -ENOENT)
      api_reply_error(req, 404, "not_found", NULL, "%s", err);
    else
      api_reply_error(req, 500, "internal", NULL, "storage: %s", err);
    return;
  }
  if (after_read(req, &after) == 0) {
    rc = stream_empty(req, &job, after, err, sizeof err);
    if (rc < 0)
      api_reply_error(req, 500, "internal", NULL, "storage: %s", err);
    else if (rc == 1)
      reply_no_content(req);
    else
      stream_start(req, id, after);
  }
  db_job_deinit(&job);
}
