/* SPDX-License-Identifier: MIT */
/* A parser of Server-Sent Events (text/event-stream): fed the decoded
 * body as it arrives, in pieces of any size, it hands each complete
 * event to a callback. It does no I/O and knows nothing of spkd. */
#ifndef SPK_CLIENT_SSE_H
#define SPK_CLIENT_SSE_H

#include <stddef.h>

/* One event, valid only during the callback. */
typedef struct {
  const char *id;    /* the last id the stream set, "" if none */
  const char *event; /* "message" when the stream named no kind */
  const char *data;  /* data lines joined by '\n', NUL-terminated */
  size_t data_len;
} sse_event_t;

/* Called for each event; a non-zero return stops the feed, which then
 * returns that value. */
typedef int (*sse_event_fn)(void *ctx, const sse_event_t *ev);

typedef struct {
  sse_event_fn on_event;
  void *ctx;
  char *line; /* the line being read */
  size_t len, cap;
  char *data; /* the event's data so far */
  size_t dlen, dcap;
  char event[64];
  char id[128];  /* persists from event to event, as the format says */
  long retry_ms; /* the last "retry:" the stream sent, -1 before one */
  long comments; /* comment lines seen (spkd's heartbeats) */
  int after_cr;  /* the last byte was a CR, so an LF next ends nothing */
  int bom_done;  /* a leading byte order mark has been looked for */
} sse_parser_t;

/* Sets up a parser that calls on_event(ctx, ...) for each event. */
void sse_parser_init(sse_parser_t *p, sse_event_fn on_event, void *ctx);

/* Frees what the parser holds; the struct may be initialised again. */
void sse_parser_deinit(sse_parser_t *p);

/* Parses n bytes of the stream. Lines end with LF, CR or CRLF; a line
 * longer than 1 MiB gives -EMSGSIZE. Returns 0, the callback's non-zero
 * value (the rest of buf is then left unread), -ENOMEM or -EMSGSIZE with
 * err saying why. */
int sse_parser_feed(sse_parser_t *p, const char *buf, size_t n, char *err,
                    size_t errlen);

#endif
