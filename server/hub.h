/* SPDX-License-Identifier: MIT */
/* Feeds the readers of live events: the events each stored batch of
 * writes added are handed in, kept in a bounded ring and wake only the
 * readers of their jobs; a heartbeat ticks on a thread of the hub's own.
 * The streams themselves (Server-Sent Events) live in events.c, reading
 * the database is the publisher's; the hub knows nothing of HTTP. */
#ifndef SPK_SERVER_HUB_H
#define SPK_SERVER_HUB_H

#include <stdint.h>

#include "../storage/db.h"

typedef struct hub hub_t;

/* What a reader last saw: the last event the ring held (-1 while it
 * holds none), how many heartbeats and how many (re)starts of the ring
 * there were. */
typedef struct {
  int64_t seq;
  uint64_t beats;
  uint64_t starts;
} hub_mark_t;

/* A reader waiting for news of job (0: of any job), owned by the reader
 * and linked into the hub while it waits. sleep and wake run under the
 * hub's lock, so they must be quick and must not call the hub: sleep
 * when the waiter is linked, wake once when an event of its job, a
 * heartbeat, a (re)start of the ring or the close unlinks it. The hub's
 * fields (prev, next, linked) are for the hub alone; zero them before
 * first use. */
typedef struct hub_waiter {
  void (*sleep)(void *ctx);
  void (*wake)(void *ctx);
  void *ctx;
  int64_t job;
  struct hub_waiter *prev, *next;
  int linked;
} hub_waiter_t;

/* The heartbeat interval when none is configured, and the longest
 * hub_close waits for readers to go, in milliseconds. */
#define HUB_HEARTBEAT_DEFAULT_MS 15000
#define HUB_CLOSE_WAIT_MS 2000

/* The ring keeps the most recent events, at most this many and, beyond
 * the newest one, at most this many bytes of kind and data text. */
#define HUB_RING_EVENTS 4096
#define HUB_RING_BYTES (4 << 20)

/* Creates a hub with no waiters and a ring not started (it answers no
 * read until hub_events_start). With heartbeat_ms > 0 a thread wakes
 * every waiter each heartbeat_ms milliseconds (their streams send a
 * heartbeat); with 0 there are no heartbeats. Returns 0, -EINVAL for a
 * negative interval, -ENOMEM, or another negative errno code when the
 * thread cannot start. */
int hub_new(int heartbeat_ms, hub_t **out);

/* Stops the heartbeat and frees a hub that no stream waits on any more;
 * accepts NULL. */
void hub_free(hub_t *h);

/* Thread-safe: the events log's last seq is seq (0: empty). Empties the
 * ring, which from now on holds every event after seq as
 * hub_events_publish hands them in, and wakes every waiter (what it
 * waits for may have come before seq). */
void hub_events_start(hub_t *h, int64_t seq);

/* Thread-safe: the seq of the last event handed in (or given to
 * hub_events_start), where the publisher reads on from; -1 while the
 * ring is not started. */
int64_t hub_events_last(hub_t *h);

/* Thread-safe: events[0, n) are the log's next events, every event
 * stored after hub_events_last, in seq order (those at or below it are
 * skipped). Moves their kind and data strings into the ring (leaving
 * NULL behind; the array stays the caller's), drops the oldest events
 * past HUB_RING_EVENTS or HUB_RING_BYTES, and wakes the waiters of the
 * events' jobs. Does nothing while the ring is not started. */
void hub_events_publish(hub_t *h, db_event_t *events, int n);

/* Thread-safe: the publisher lost track of the log (a failed read):
 * empties the ring, stops it until the next hub_events_start, and
 * wakes every waiter, whose readers then read the database. */
void hub_events_stop(hub_t *h);

/* Thread-safe: copies into *out (a heap array of *count for
 * db_events_free; NULL when empty) the first max events of job numbered
 * above after that the ring holds, in order, and sets *upto to the seq
 * up to which the ring was looked through: every event of job in
 * (after, *upto] is in *out. Returns 0, -ERANGE when the ring does not
 * reach back to after (events after it may have been dropped, or the
 * ring is not started: read the database), -ENOMEM. */
int hub_events_read(hub_t *h, int64_t job, int64_t after, int max,
                    db_event_t **out, int *count, int64_t *upto);

/* Thread-safe: the server is stopping; wakes every waiter for the last
 * time and lets none wait again, so their streams end. Then waits, at
 * most HUB_CLOSE_WAIT_MS, until every reader has been removed, so that
 * streams end whole rather than cut when the server stops next. Must
 * not run on a thread that readers need in order to end. */
void hub_close(hub_t *h);

/* Thread-safe: copies the ring's last seq and the counts of heartbeats
 * and starts so far into *mark, to be read before looking for news.
 * Returns 0, or -ESHUTDOWN once the hub is closed. */
int hub_mark(hub_t *h, hub_mark_t *mark);

/* Thread-safe: links w and calls w->sleep, unless something w waits for
 * came after *mark was taken: an event of w->job, a heartbeat, a
 * (re)start or stop of the ring, or the ring dropping events after
 * mark->seq (so no wake-up is ever lost between looking and sleeping).
 * Returns 0 when w waits, 1 when there was news since *mark (look
 * again), -ESHUTDOWN once the hub is closed, -EALREADY when w waits
 * already. */
int hub_wait(hub_t *h, hub_waiter_t *w, const hub_mark_t *mark);

/* Thread-safe: counts a reader in (a stream that starts), to be counted
 * out by hub_reader_remove with its waiter once it is over. */
void hub_reader_add(hub_t *h);

/* Thread-safe: counts a reader out and unlinks its waiter w without
 * waking it, if it still waits (a stream that ends, its client gone
 * included). */
void hub_reader_remove(hub_t *h, hub_waiter_t *w);

#endif
