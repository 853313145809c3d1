/* SPDX-License-Identifier: MIT */
/* The hub: a list of waiting readers and two counters (publishes and
 * heartbeats) under one mutex. Readers compare the counters with what
 * they saw before sleeping, so a publish between their look and their
 * sleep is never lost. A thread of its own ticks the heartbeat. */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
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
  hub_mark_t mark;
  hub_waiter_t *head; /* the waiters, most recent first */
};

/* Unlinks w (lock held). */
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

/* Unlinks and wakes every waiter (lock held). */
static void waiters_wake(hub_t *h) {
  while (h->head) {
    hub_waiter_t *w = h->head;
    waiter_unlink(h, w);
    w->wake(w->ctx);
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

int hub_new(int heartbeat_ms, hub_t **out) {
  hub_t *h;
  int rc;

  *out = NULL;
  if (heartbeat_ms < 0)
    return -EINVAL;
  h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->heartbeat_ms = heartbeat_ms;
  pthread_mutex_init(&h->lock, NULL);
  rc = cond_init(&h->tick);
  if (rc == 0 && (rc = cond_init(&h->gone)) != 0)
    pthread_cond_destroy(&h->tick);
  if (rc == 0 && heartbeat_ms > 0) {
    rc = -pthread_create(&h->thread, NULL, heartbeat_main, h);
    h->has_thread = rc == 0;
    if (rc) {
      pthread_cond_destroy(&h->tick);
      pthread_cond_destroy(&h->gone);
    }
  }
  if (rc) {
    pthread_mutex_destroy(&h->lock);
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
  pthread_cond_destroy(&h->tick);
  pthread_cond_destroy(&h->gone);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

void hub_publish(hub_t *h) {
  pthread_mutex_lock(&h->lock);
  h->mark.news++;
  waiters_wake(h);
  pthread_mutex_unlock(&h->lock);
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
  else if (h->mark.news != mark->news || h->mark.beats != mark->beats)
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
