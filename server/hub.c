/* SPDX-License-Identifier: MIT */
/* The hub: a ring of the most recent events, a list of waiting readers
 * and the counts they compare (the ring's last seq, heartbeats, starts)
 * under one mutex. A reader compares them with what it saw before
 * sleeping, so news between its look and its sleep is never lost; an
 * event wakes only the waiters of its job. A thread of its own ticks the
 * heartbeat. */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hub {
  pthread_mutex_t lock;
  pthread_cond_t tick; /* signalled when the heartbeat thread must stop */
  pthread_cond_t gone; /* signalled when a reader is removed */
  pthread_t thread;
  int has_thread;
  int heartbeat_ms;
  int closed;
  int readers;
  hub_mark_t mark;  /* mark.seq: the ring's last event, -1: not started */
  int64_t floor;    /* the ring holds every event in (floor, mark.seq] */
  db_event_t *ring; /* HUB_RING_EVENTS slots, the oldest at ring[first] */
  int first, count;
  size_t bytes;       /* kind and data text in the ring */
  hub_waiter_t *head; /* the waiters, most recent first */
};

/* ---- The ring (lock held). ---- */

/* The i-th oldest event of the ring. */
static db_event_t *ring_at(hub_t *h, int i) {
  return &h->ring[(h->first + i) % HUB_RING_EVENTS];
}

static size_t event_bytes(const db_event_t *e) {
  return strlen(e->kind) + strlen(e->data_json);
}

/* Drops the oldest event; the ring now starts after it. */
static void ring_drop(hub_t *h) {
  db_event_t *e = ring_at(h, 0);

  h->floor = e->seq;
  h->bytes -= event_bytes(e);
  free(e->kind);
  free(e->data_json);
  memset(e, 0, sizeof *e);
  h->first = (h->first + 1) % HUB_RING_EVENTS;
  h->count--;
}

/* Empties the ring, which then holds every event after seq (-1: it is
 * stopped and holds nothing). */
static void ring_reset(hub_t *h, int64_t seq) {
  while (h->count > 0)
    ring_drop(h);
  h->first = 0;
  h->floor = h->mark.seq = seq;
  h->mark.starts++;
}

/* Moves e's strings in as the newest event, dropping the oldest past
 * the ring's bounds (the newest always stays). */
static void ring_push(hub_t *h, db_event_t *e) {
  db_event_t *slot;

  if (h->count == HUB_RING_EVENTS)
    ring_drop(h);
  slot = ring_at(h, h->count++);
  *slot = *e;
  e->kind = e->data_json = NULL;
  h->bytes += event_bytes(slot);
  h->mark.seq = slot->seq;
  while (h->bytes > HUB_RING_BYTES && h->count > 1)
    ring_drop(h);
}

/* The index of the ring's oldest event numbered above after (count when
 * there is none). */
static int ring_find(hub_t *h, int64_t after) {
  int lo = 0, hi = h->count;

  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (ring_at(h, mid)->seq > after)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* 1 when the event concerns what w waits for. */
static int waiter_wants(const hub_waiter_t *w, const db_event_t *e) {
  return w->job == 0 || w->job == e->job;
}

/* 1 when the ring holds an event numbered above after that w wants. */
static int ring_has_news(hub_t *h, const hub_waiter_t *w, int64_t after) {
  for (int i = ring_find(h, after); i < h->count; i++)
    if (waiter_wants(w, ring_at(h, i)))
      return 1;
  return 0;
}

/* ---- The waiters (lock held). ---- */

/* Unlinks w. */
static void waiter_unlink(hub_t *h, hub_waiter_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    h->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->linked = 0;
}

/* Unlinks and wakes every waiter. */
static void waiters_wake(hub_t *h) {
  while (h->head) {
    hub_waiter_t *w = h->head;
    waiter_unlink(h, w);
    w->wake(w->ctx);
  }
}

/* Unlinks and wakes the waiters that want one of events[0, n) numbered
 * above after. */
static void waiters_wake_news(hub_t *h, const db_event_t *events, int n,
                              int64_t after) {
  hub_waiter_t *w = h->head, *next;

  for (; w; w = next) {
    int wants = 0;
    next = w->next;
    for (int i = 0; i < n && !wants; i++)
      wants = events[i].seq > after && waiter_wants(w, &events[i]);
    if (wants) {
      waiter_unlink(h, w);
      w->wake(w->ctx);
    }
  }
}

/* now + ms on the monotonic clock. */
static struct timespec deadline_after(int ms) {
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

/* The heartbeat: every heartbeat_ms until the hub closes, one more beat
 * and every waiter woken. */
static void *heartbeat_main(void *arg) {
  hub_t *h = arg;

  pthread_mutex_lock(&h->lock);
  while (!h->closed) {
    struct timespec until = deadline_after(h->heartbeat_ms);
    int rc = 0;
    while (!h->closed && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&h->tick, &h->lock, &until);
    if (h->closed)
      break;
    h->mark.beats++;
    waiters_wake(h);
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

/* A condition variable on the monotonic clock. */
static int cond_init(pthread_cond_t *cond) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);

  if (rc)
    return -rc;
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (!rc)
    rc = pthread_cond_init(cond, &attr);
  pthread_condattr_destroy(&attr);
  return -rc;
}

/* The mutex, the condition variables and the heartbeat thread of a
 * zeroed h. */
static int hub_sync_init(hub_t *h) {
  int rc;

  pthread_mutex_init(&h->lock, NULL);
  rc = cond_init(&h->tick);
  if (rc == 0 && (rc = cond_init(&h->gone)) != 0)
    pthread_cond_destroy(&h->tick);
  if (rc == 0 && h->heartbeat_ms > 0) {
    rc = -pthread_create(&h->thread, NULL, heartbeat_main, h);
    h->has_thread = rc == 0;
    if (rc) {
      pthread_cond_destroy(&h->tick);
      pthread_cond_destroy(&h->gone);
    }
  }
  if (rc)
    pthread_mutex_destroy(&h->lock);
  return rc;
}

int hub_new(int heartbeat_ms, hub_t **out) {
  hub_t *h;
  int rc = -ENOMEM;

  *out = NULL;
  if (heartbeat_ms < 0)
    return -EINVAL;
  h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->heartbeat_ms = heartbeat_ms;
  h->floor = h->mark.seq = -1;
  h->ring = calloc(HUB_RING_EVENTS, sizeof *h->ring);
  if (h->ring)
    rc = hub_sync_init(h);
  if (rc) {
    free(h->ring);
    free(h);
    return rc;
  }
  *out = h;
  return 0;
}

void hub_free(hub_t *h) {
  if (!h)
    return;
  hub_close(h);
  if (h->has_thread)
    pthread_join(h->thread, NULL);
  while (h->count > 0)
    ring_drop(h);
  free(h->ring);
  pthread_cond_destroy(&h->tick);
  pthread_cond_destroy(&h->gone);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

void hub_events_start(hub_t *h, int64_t seq) {
  pthread_mutex_lock(&h->lock);
  ring_reset(h, seq < 0 ? 0 : seq);
  waiters_wake(h);
  pthread_mutex_unlock(&h->lock);
}

int64_t hub_events_last(hub_t *h) {
  int64_t seq;

  pthread_mutex_lock(&h->lock);
  seq = h->mark.seq;
  pthread_mutex_unlock(&h->lock);
  return seq;
}

void hub_events_publish(hub_t *h, db_event_t *events, int n) {
  int64_t last;

  pthread_mutex_lock(&h->lock);
  last = h->mark.seq;
  if (last >= 0) { /* started */
    for (int i = 0; i < n; i++)
      if (events[i].seq > h->mark.seq && events[i].kind && events[i].data_json)
        ring_push(h, &events[i]);
    waiters_wake_news(h, events, n, last);
  }
  pthread_mutex_unlock(&h->lock);
}

void hub_events_stop(hub_t *h) {
  pthread_mutex_lock(&h->lock);
  ring_reset(h, -1);
  waiters_wake(h);
  pthread_mutex_unlock(&h->lock);
}

/* Copies the first max (> 0) events of job in the ring from index i on
 * into *out (NULL when there are none); *upto as for hub_events_read
 * (lock held). */
static int ring_copy(hub_t *h, int i, int64_t job, int max, db_event_t **out,
                     int *count, int64_t *upto) {
  db_event_t *list = NULL;
  int n = 0, want = 0;

  *upto = h->mark.seq;
  for (int j = i; j < h->count && want < max; j++)
    if (ring_at(h, j)->job == job && ++want == max)
      *upto = ring_at(h, j)->seq;
  if (want > 0 && !(list = calloc((size_t)want, sizeof *list)))
    return -ENOMEM;
  for (; n < want; i++) {
    const db_event_t *e = ring_at(h, i);
    if (e->job != job)
      continue;
    list[n] = *e;
    list[n].kind = strdup(e->kind);
    list[n].data_json = strdup(e->data_json);
    if (!list[n].kind || !list[n].data_json) {
      db_events_free(list, n + 1);
      return -ENOMEM;
    }
    n++;
  }
  *out = list;
  *count = n;
  return 0;
}

int hub_events_read(hub_t *h, int64_t job, int64_t after, int max,
                    db_event_t **out, int *count, int64_t *upto) {
  int rc = -ERANGE;

  *out = NULL;
  *count = 0;
  *upto = after;
  pthread_mutex_lock(&h->lock);
  if (h->mark.seq >= 0 && after >= h->floor)
    rc = max > 0 ? ring_copy(h, ring_find(h, after), job, max, out, count, upto)
                 : 0;
  pthread_mutex_unlock(&h->lock);
  return rc;
}

void hub_close(hub_t *h) {
  struct timespec until = deadline_after(HUB_CLOSE_WAIT_MS);
  int rc = 0;

  pthread_mutex_lock(&h->lock);
  h->closed = 1;
  waiters_wake(h);
  pthread_cond_signal(&h->tick);
  while (h->readers > 0 && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&h->gone, &h->lock, &until);
  pthread_mutex_unlock(&h->lock);
}

int hub_mark(hub_t *h, hub_mark_t *mark) {
  int closed;

  pthread_mutex_lock(&h->lock);
  *mark = h->mark;
  closed = h->closed;
  pthread_mutex_unlock(&h->lock);
  return closed ? -ESHUTDOWN : 0;
}

int hub_wait(hub_t *h, hub_waiter_t *w, const hub_mark_t *mark) {
  int rc = 0;

  pthread_mutex_lock(&h->lock);
  if (h->closed)
    rc = -ESHUTDOWN;
  else if (w->linked)
    rc = -EALREADY;
  else if (h->mark.beats != mark->beats || h->mark.starts != mark->starts)
    rc = 1;
  else if (h->mark.seq >= 0 &&
           (h->floor > mark->seq || ring_has_news(h, w, mark->seq)))
    rc = 1;
  if (rc == 0) {
    w->prev = NULL;
    w->next = h->head;
    if (h->head)
      h->head->prev = w;
    h->head = w;
    w->linked = 1;
    w->sleep(w->ctx);
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

void hub_reader_add(hub_t *h) {
  pthread_mutex_lock(&h->lock);
  h->readers++;
  pthread_mutex_unlock(&h->lock);
}

void hub_reader_remove(hub_t *h, hub_waiter_t *w) {
  pthread_mutex_lock(&h->lock);
  if (w->linked)
    waiter_unlink(h, w);
  h->readers--;
  pthread_cond_broadcast(&h->gone);
  pthread_mutex_unlock(&h->lock);
}
