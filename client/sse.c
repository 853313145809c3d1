/* SPDX-License-Identifier: MIT */
/* Server-Sent Events, parsed as the HTML standard describes the format:
 * lines of "field: value", a blank line ending each event, ':' opening a
 * comment. Bytes are gathered into the current line; each finished line
 * is interpreted at once. */
#include "sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (1u << 20)

void sse_parser_init(sse_parser_t *p, sse_event_fn on_event, void *ctx) {
  memset(p, 0, sizeof *p);
  p->on_event = on_event;
  p->ctx = ctx;
  p->retry_ms = -1;
}

void sse_parser_deinit(sse_parser_t *p) {
  free(p->line);
  free(p->data);
  p->line = p->data = NULL;
  p->len = p->cap = p->dlen = p->dcap = 0;
}

/* Makes room for need more bytes and a NUL in *buf. */
static int room(char **buf, size_t *cap, size_t len, size_t need) {
  size_t want = *cap ? *cap : 256;
  char *p;

  if (len + need + 1 <= *cap)
    return 0;
  while (want < len + need + 1)
    want *= 2;
  p = realloc(*buf, want);
  if (!p)
    return -ENOMEM;
  *buf = p;
  *cap = want;
  return 0;
}

/* Hands the gathered event to the callback, then starts the next one.
 * An event without data lines is dropped, as the format says. */
static int dispatch(sse_parser_t *p) {
  sse_event_t ev;
  int rc = 0;

  if (p->dlen > 0) {
    p->data[--p->dlen] = '\0'; /* the LF after the last data line */
    ev.id = p->id;
    ev.event = p->event[0] ? p->event : "message";
    ev.data = p->data;
    ev.data_len = p->dlen;
    rc = p->on_event(p->ctx, &ev);
  }
  p->dlen = 0;
  p->event[0] = '\0';
  return rc;
}

/* Applies one "field: value" line. */
static int field_apply(sse_parser_t *p, const char *field, const char *value) {
  size_t n = strlen(value);

  if (strcmp(field, "event") == 0) {
    snprintf(p->event, sizeof p->event, "%s", value);
  } else if (strcmp(field, "data") == 0) {
    if (room(&p->data, &p->dcap, p->dlen, n + 1) < 0)
      return -ENOMEM;
    memcpy(p->data + p->dlen, value, n);
    p->dlen += n;
    p->data[p->dlen++] = '\n';
  } else if (strcmp(field, "id") == 0 && n < sizeof p->id) {
    memcpy(p->id, value, n + 1);
  } else if (strcmp(field, "retry") == 0 && n > 0 && n < 10 &&
             strspn(value, "0123456789") == n) {
    p->retry_ms = strtol(value, NULL, 10);
  }
  return 0;
}

/* Interprets the finished line in p->line. */
static int line_end(sse_parser_t *p) {
  char *line = p->line, *colon, *value;

  p->len = 0;
  if (!p->bom_done) {
    p->bom_done = 1;
    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0)
      line += 3;
  }
  if (line[0] == '\0')
    return dispatch(p);
  if (line[0] == ':') {
    p->comments++;
    return 0;
  }
  colon = strchr(line, ':');
  value = colon ? colon + 1 : line + strlen(line);
  if (colon)
    *colon = '\0';
  if (*value == ' ')
    value++;
  return field_apply(p, line, value);
}

int sse_parser_feed(sse_parser_t *p, const char *buf, size_t n, char *err,
                    size_t errlen) {
  size_t i = 0;

  while (i < n) {
    size_t run = 0;
    int rc;

    /* An LF right after a CR belongs to the CR's line end. */
    if (p->after_cr && buf[i] == '\n') {
      p->after_cr = 0;
      i++;
      continue;
    }
    p->after_cr = 0;
    while (i + run < n && buf[i + run] != '\r' && buf[i + run] != '\n')
      run++;
    if (p->len + run > LINE_MAX_BYTES) {
      snprintf(err, errlen, "an event stream line exceeds 1 MiB");
      return -EMSGSIZE;
    }
    if (room(&p->line, &p->cap, p->len, run) < 0) {
      snprintf(err, errlen, "out of memory");
      return -ENOMEM;
    }
    memcpy(p->line + p->len, buf + i, run);
    p->len += run;
    p->line[p->len] = '\0';
    i += run;
    if (i == n)
      break;

    /* buf[i] ends the line. */
    p->after_cr = buf[i++] == '\r';
    rc = line_end(p);
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory");
    if (rc != 0)
      return rc;
  }
  return 0;
}
