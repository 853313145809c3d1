/* SPDX-License-Identifier: MIT */
/* Wakes the readers of live events: each stored batch of writes
 * publishes, a heartbeat ticks on a thread of the hub's own, and every
 * event stream waiting for news looks again. The streams themselves
 * (Server-Sent Events) live in events.c; the hub knows nothing of HTTP. */
#ifndef SPK_SERVER_HUB_H
#define SPK_SERVER_HUB_H

#include <stdint.h>

typedef struct hub hub_t;

/* What a reader last saw: how many publishes and heartbeats there were. */
typedef struct {
  uint64_t news;
  uint64_t beats;
} hub_mark_t;

/* A reader waiting for news, owned by the reader and linked into the
 * hub while it waits. sleep and wake run under the hub's lock, so they
 * must be quick and must not call the hub: sleep when the waiter is
 * linked, wake once when a publish, a heartbeat or the close unlinks it.
 * The hub's fields are for the hub alone; zero them before first use. */
typedef struct hub_waiter {
  void (*sleep)(void *ctx);
  void (*wake)(void *ctx);
  void *ctx;
  struct hub_waiter *prev, *next;
  int linked;
} hub_waiter_t;

/* The heartbeat interval when none is configured, and the longest
 * hub_close waits for readers to go, in milliseconds. */
#define HUB_HEARTBEAT_DEFAULT_MS 15000
#define HUB_CLOSE_WAIT_MS 2000

/* Creates a hub with no waiters. With heartbeat_ms > 0 a thread wakes
 * every waiter each heartbeat_ms milliseconds (their streams send a
 * heartbeat); with 0 there are no heartbeats. Returns 0, -EINVAL for a
 * negative interval, -ENOMEM, or another negative errno code when the
 * thread cannot start. */
int hub_new(int heartbeat_ms, hub_t **out);

/* Stops the heartbeat and frees a hub that no stream waits on any more;
 * accepts NULL. */
void hub_free(hub_t *h);

/* Thread-safe: something new was committed; wakes every waiter. */
void hub_publish(hub_t *h);

/* Thread-safe: the server is stopping; wakes every waiter for the last
 * time and lets none wait again, so their streams end. Then waits, at
 * most HUB_CLOSE_WAIT_MS, until every reader has been removed, so that
 * streams end whole rather than cut when the server stops next. Must
 * not run on a thread that readers need in order to end. */
void hub_close(hub_t *h);

/* Thread-safe: copies the counts of publishes and heartbeats so far into
 * *mark, to be read before looking for news. Returns 0, or -ESHUTDOWN
 * once the hub is closed. */
int hub_mark(hub_t *h, hub_mark_t *mark);

/* Thread-safe: links w and calls w->sleep, unless a publish or a
 * heartbeat came after *mark was taken (so no wake-up is ever lost
 * between looking and sleeping). Returns 0 when w waits, 1 when there
 * was news since *mark (look again), -ESHUTDOWN once the hub is closed,
 * -EALREADY when w waits already. */
int hub_wait(hub_t *h, hub_waiter_t *w, const hub_mark_t *mark);

/* Thread-safe: counts a reader in (a stream that starts), to be counted
 * out by hub_reader_remove with its waiter once it is over. */
void hub_reader_add(hub_t *h);

/* Thread-safe: counts a reader out and unlinks its waiter w without
 * waking it, if it still waits (a stream that ends, its client gone
 * included). */
void hub_reader_remove(hub_t *h, hub_waiter_t *w);

#endif
