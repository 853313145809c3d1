/* SPDX-License-Identifier: MIT */
/* Teams on pthreads. A run bumps a generation counter under the lock and
 * wakes the workers; each runs the function once for that generation and
 * counts itself done; the caller waits until all have. Workers spin
 * briefly before sleeping, since a training step hands out work every
 * few hundred microseconds. */
#include "team.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_ROUNDS 20000

typedef struct {
  struct team *team;
  int member;
  pthread_t thread;
} worker_t;

struct team {
  int size;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  atomic_long generation; /* bumped once per run */
  atomic_int pending;     /* workers still running this generation */
  atomic_int stopping;
  team_fn fn;
  void *ctx;
  atomic_int arrived;   /* members at the current barrier */
  atomic_long barriers; /* barriers passed */
  worker_t *workers; /* size - 1 */
};

/* Waits for a generation after seen; returns it, or -1 when stopping. */
static long worker_wait(struct team *t, long seen) {
  long g;

  for (int i = 0; i < SPIN_ROUNDS; i++) {
    g = atomic_load_explicit(&t->generation, memory_order_acquire);
    if (g != seen)
      return g;
  }
  pthread_mutex_lock(&t->lock);
  while ((g = atomic_load(&t->generation)) == seen && !t->stopping)
    pthread_cond_wait(&t->wake, &t->lock);
  pthread_mutex_unlock(&t->lock);
  return g == seen ? -1 : g;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  struct team *t = w->team;
  long seen = 0;

  for (;;) {
    long g = worker_wait(t, seen);
    if (g < 0 || t->stopping)
      return NULL;
    seen = g;
    t->fn(t->ctx, w->member, t->size);
    if (atomic_fetch_sub(&t->pending, 1) == 1) {
      pthread_mutex_lock(&t->lock);
      pthread_cond_signal(&t->done);
      pthread_mutex_unlock(&t->lock);
    }
  }
}

int team_new(int threads, team_t **out) {
  struct team *t;
  int rc = 0;

  *out = NULL;
  if (threads < 1 || threads > 256)
    return -EINVAL;
  t = calloc(1, sizeof *t);
  if (!t || !(t->workers = calloc((size_t)threads, sizeof *t->workers))) {
    free(t);
    return -ENOMEM;
  }
  t->size = threads;
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->wake, NULL);
  pthread_cond_init(&t->done, NULL);
  for (int i = 1; i < threads && rc == 0; i++) {
    worker_t *w = &t->workers[i - 1];
    w->team = t;
    w->member = i;
    rc = -pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
      t->size = i; /* the workers started so far are stopped below */
  }
  if (rc) {
    team_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

void team_free(team_t *t) {
  if (!t)
    return;
  pthread_mutex_lock(&t->lock);
  atomic_store(&t->stopping, 1);
  pthread_cond_broadcast(&t->wake);
  pthread_mutex_unlock(&t->lock);
  for (int i = 1; i < t->size; i++)
    pthread_join(t->workers[i - 1].thread, NULL);
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->wake);
  pthread_cond_destroy(&t->done);
  free(t->workers);
  free(t);
}

void team_sync(team_t *t) {
  long seen;

  if (!t || t->size == 1)
    return;
  seen = atomic_load_explicit(&t->barriers, memory_order_acquire);
  if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) ==
      t->size - 1) {
    atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->barriers, 1, memory_order_release);
    return;
  }
  for (long i = 0;
       atomic_load_explicit(&t->barriers, memory_order_acquire) == seen; i++)
    if (i > SPIN_ROUNDS)
      sched_yield();
}

int team_size(const team_t *t) {
  return t ? t->size : 1;
}

void team_run(team_t *t, team_fn fn, void *ctx) {
  if (!t || t->size == 1) {
    fn(ctx, 0, 1);
    return;
  }
  t->fn = fn;
  t->ctx = ctx;
  atomic_store(&t->pending, t->size - 1);
  pthread_mutex_lock(&t->lock);
  atomic_fetch_add_explicit(&t->generation, 1, memory_order_release);
  pthread_cond_broadcast(&t->wake);
  pthread_mutex_unlock(&t->lock);

  fn(ctx, 0, t->size);

  for (int i = 0; i < SPIN_ROUNDS && atomic_load(&t->pending) > 0; i++)
    ;
  pthread_mutex_lock(&t->lock);
  while (atomic_load(&t->pending) > 0)
    pthread_cond_wait(&t->done, &t->lock);
  pthread_mutex_unlock(&t->lock);
}
