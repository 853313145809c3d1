/* SPDX-License-Identifier: MIT */
/* The job runner. A fixed set of slots, one per job allowed to run at
 * once; the loop thread claims queued jobs into free slots and hands each
 * to libuv's thread pool, where job_run does the work. Only the slots'
 * ids and stop flags are shared with other threads, under one mutex. */
#include "runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../storage/db.h"
#include "dblock.h"
#include "job.h"

typedef struct {
  runner_t *runner;
  uv_work_t work;
  int64_t id; /* 0 when the slot is free */
  atomic_int stop;
  int rc;
  char state[16];
  char err[512];
} slot_t;

struct runner {
  runner_config_t cfg;
  int lock_fd; /* shared lock on the database's lock file */
  db_t *db; /* the loop thread's connection, for reading */
  db_writer_t *writer; /* every write of the process */
  db_t *hook_db; /* the commit hook's connection, on the writer thread */
  uv_async_t wake;
  uv_mutex_t lock;
  slot_t *slots;
  int running;
  int stopping;
};

static void schedule(runner_t *r);

/* The runner's writes, made on the writer thread. */
enum { RW_FINISH, RW_START, RW_REQUEUE };

typedef struct {
  int kind;
  int64_t id;
  const char *error; /* RW_FINISH */
} runner_write_t;

static int runner_write_run(db_t *db, void *ctx, char *err, size_t errlen) {
  const runner_write_t *w = ctx;

  if (w->kind == RW_FINISH)
    return db_job_finish(db, w->id, "failed", w->error, err, errlen);
  if (w->kind == RW_START)
    return db_job_start(db, w->id, NULL, err, errlen);
  return db_job_requeue(db, w->id, err, errlen);
}

static int runner_write(runner_t *r, int kind, int64_t id, const char *error,
                        char *err, size_t errlen) {
  runner_write_t w = {kind, id, error};
  return db_writer_call(r->writer, runner_write_run, &w, err, errlen);
}

/* Events the commit hook reads from the log at a time. */
#define HOOK_EVENTS_BATCH 256

/* Hands the hub the events stored since the last it holds: this
 * batch's, and any another process stored meanwhile. Reading by seq over
 * all jobs walks the primary key on from where it stopped. */
static int hook_events_read(runner_t *r, char *err, size_t errlen) {
  int64_t last = hub_events_last(r->cfg.hub);
  int n = 0, rc;

  if (last < 0) { /* not started, or stopped by a failed read */
    rc = db_event_last(r->hook_db, &last, err, errlen);
    if (rc == 0)
      hub_events_start(r->cfg.hub, last);
    return rc;
  }
  do {
    db_event_t *ev = NULL;
    rc = db_event_list(r->hook_db, 0, last, HOOK_EVENTS_BATCH, &ev, &n, err,
                       errlen);
    if (rc == 0 && n > 0) {
      last = ev[n - 1].seq;
      hub_events_publish(r->cfg.hub, ev, n);
    }
    db_events_free(ev, n);
  } while (rc == 0 && n == HOOK_EVENTS_BATCH);
  return rc;
}

/* The writer's commit hook, on the writer thread: the events a batch
 * stored go to the hub, which wakes the streams of their jobs only. When
 * they cannot be read, the hub forgets its ring and wakes every stream,
 * and the streams read the database until the next commit starts the
 * ring again. */
static void on_commit(void *ctx) {
  runner_t *r = ctx;
  char err[256];

  if (hook_events_read(r, err, sizeof err) != 0) {
    LOG(r->cfg.log, LOG_ERROR, "runner", "cannot read new events "
        "error=\"%s\"", err);
    hub_events_stop(r->cfg.hub);
  }
}

/* Opens the hook's connection and starts the hub's ring at the log's
 * end before any commit calls the hook, so that the ring then holds
 * every event stored after it. */
static int hook_open(runner_t *r, char *err, size_t errlen) {
  int64_t last = 0;
  int rc = db_open(r->cfg.db_path, &r->hook_db, err, errlen);

  if (rc == 0)
    rc = db_event_last(r->hook_db, &last, err, errlen);
  if (rc == 0) {
    hub_events_start(r->cfg.hub, last);
    db_writer_on_commit(r->writer, on_commit, r);
  }
  return rc;
}

/* Training threads yield to the HTTP threads: a job's worker and the
 * helpers it starts (which inherit it) run at a lower priority, so the
 * API answers promptly on a machine the job keeps busy. */
#define JOB_NICE 5

static void slot_work(uv_work_t *w) {
  slot_t *s = w->data;
  runner_t *r = s->runner;
  job_run_t job = {.db_path = r->cfg.db_path,
                   .writer = r->writer,
                   .data_root = r->cfg.data_root,
                   .log = r->cfg.log,
                   .id = s->id,
                   .stop = &s->stop,
                   .threads_max = r->cfg.threads_max,
                   .metrics = r->cfg.metrics};

  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), JOB_NICE);
  s->rc = job_run(&job, s->state, s->err, sizeof s->err);
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
}

/* Back on the loop thread: a job whose final state could not be stored by
 * its worker is marked failed here, then the slot is freed. */
static void slot_done(uv_work_t *w, int status) {
  slot_t *s = w->data;
  runner_t *r = s->runner;
  char err[256];

  (void)status;
  if (s->rc) {
    LOG(r->cfg.log, LOG_ERROR, "runner", "job could not end job=%lld "
        "error=\"%s\"", (long long)s->id, s->err);
    if (runner_write(r, RW_FINISH, s->id, s->err, err, sizeof err))
      LOG(r->cfg.log, LOG_ERROR, "runner", "job state lost job=%lld "
          "error=\"%s\"", (long long)s->id, err);
  } else if (strcmp(s->state, "interrupted") == 0) {
    /* Stopped by a shutdown: back in the queue, to resume after its
     * last stored epoch. */
    if (runner_write(r, RW_REQUEUE, s->id, NULL, err, sizeof err))
      LOG(r->cfg.log, LOG_ERROR, "runner", "cannot requeue job=%lld "
          "error=\"%s\"", (long long)s->id, err);
    LOG(r->cfg.log, LOG_INFO, "runner", "job requeued job=%lld",
        (long long)s->id);
  } else if (strcmp(s->state, "failed") == 0) {
    LOG(r->cfg.log, LOG_WARN, "runner", "job ended job=%lld state=failed "
        "error=\"%s\"", (long long)s->id, s->err);
  } else {
    LOG(r->cfg.log, LOG_INFO, "runner", "job ended job=%lld state=%s",
        (long long)s->id, s->state);
  }
  dblock_job_release(r->lock_fd, s->id);
  uv_mutex_lock(&r->lock);
  s->id = 0;
  uv_mutex_unlock(&r->lock);
  r->running--;
  schedule(r);
}

static slot_t *slot_free_find(runner_t *r) {
  for (int i = 0; i < r->cfg.max_jobs; i++)
    if (r->slots[i].id == 0)
      return &r->slots[i];
  return NULL;
}

/* Puts id in slot s (0: empties it), under the lock cancel reads. */
static void slot_set(runner_t *r, slot_t *s, int64_t id) {
  uv_mutex_lock(&r->lock);
  s->id = id;
  atomic_store(&s->stop, JOB_STOP_NONE);
  uv_mutex_unlock(&r->lock);
}

/* Claims the queued job of highest priority, oldest first, into slot s;
 * 0 in *id when none is left. The slot holds the job before storage
 * says it runs, so a cancel never finds it running and nowhere. A job
 * cancelled between the lookup and the claim is skipped. */
static int claim_next(runner_t *r, slot_t *s, int64_t *id) {
  char err[256];
  int rc;

  for (;;) {
    rc = db_job_next_queued(r->db, id, err, sizeof err);
    if (rc || *id == 0)
      break;
    slot_set(r, s, *id);
    rc = runner_write(r, RW_START, *id, NULL, err, sizeof err);
    if (rc)
      slot_set(r, s, 0);
    if (rc != -EBUSY)
      break;
  }
  if (rc) {
    LOG(r->cfg.log, LOG_ERROR, "runner", "cannot claim a job error=\"%s\"",
        err);
    *id = 0;
  }
  return rc;
}

static void launch(runner_t *r, slot_t *s, int64_t id) {
  int rc;

  /* The claim tells other processes on the database that this job is
   * alive; the kernel drops it if this process dies. */
  if (dblock_job_claim(r->lock_fd, id) != 0)
    LOG(r->cfg.log, LOG_WARN, "runner", "cannot claim job=%lld; another "
        "process may resume it while it runs", (long long)id);

  s->work.data = s;
  rc = uv_queue_work(r->cfg.loop, &s->work, slot_work, slot_done);
  if (rc) {
    char err[256];
    LOG(r->cfg.log, LOG_ERROR, "runner", "cannot start a worker "
        "job=%lld error=\"%s\"", (long long)id, uv_strerror(rc));
    runner_write(r, RW_FINISH, id, "could not start a worker thread", err,
                 sizeof err);
    dblock_job_release(r->lock_fd, id);
    slot_set(r, s, 0);
    return;
  }
  r->running++;
  LOG(r->cfg.log, LOG_INFO, "runner", "job started job=%lld",
      (long long)id);
}

/* Fills free slots with queued jobs, by priority then oldest first; when
 * stopping and
 * nothing runs any more, closes the wake-up handle and reports idle. */
static void schedule(runner_t *r) {
  slot_t *s;
  int64_t id;

  if (r->stopping) {
    if (r->running == 0) {
      if (r->cfg.on_idle)
        r->cfg.on_idle(r->cfg.ctx);
      uv_close((uv_handle_t *)&r->wake, NULL);
    }
    return;
  }
  while ((s = slot_free_find(r)) != NULL) {
    if (claim_next(r, s, &id) != 0 || id == 0)
      break;
    launch(r, s, id);
  }
}

static void on_wake(uv_async_t *a) {
  schedule(a->data);
}

/* Jobs left running by a dead process (nobody holds their claim) go
 * back to the queue, to resume after their last stored epoch; a running
 * job whose claim a live process holds is that process's. */
static int recover(runner_t *r, char *err, size_t errlen) {
  int64_t *ids = NULL;
  int n = 0, alone = 0, rc;

  r->lock_fd = dblock_take(r->cfg.db_path, &alone, err, errlen);
  if (r->lock_fd < 0)
    return -EIO;
  dblock_share(r->lock_fd);
  rc = db_jobs_running(r->db, &ids, &n, err, errlen);
  for (int i = 0; rc == 0 && i < n; i++) {
    if (dblock_job_claim(r->lock_fd, ids[i]) != 0)
      continue;
    rc = runner_write(r, RW_REQUEUE, ids[i], NULL, err, errlen);
    dblock_job_release(r->lock_fd, ids[i]);
    if (rc == -EBUSY)
      rc = 0; /* it ended meanwhile */
    else if (rc == 0)
      LOG(r->cfg.log, LOG_WARN, "runner", "job left running by a stopped "
          "process requeued to resume job=%lld", (long long)ids[i]);
  }
  free(ids);
  return rc;
}

int runner_new(const runner_config_t *cfg, runner_t **out, char *err,
               size_t errlen) {
  runner_t *r = calloc(1, sizeof *r);
  int rc;

  *out = NULL;
  if (!r || cfg->max_jobs < 1) {
    free(r);
    snprintf(err, errlen, cfg->max_jobs < 1 ? "at least one job must be "
             "allowed to run" : "out of memory");
    return cfg->max_jobs < 1 ? -EINVAL : -ENOMEM;
  }
  r->cfg = *cfg;
  r->lock_fd = -1;
  r->slots = calloc((size_t)cfg->max_jobs, sizeof *r->slots);
  rc = r->slots ? db_open(cfg->db_path, &r->db, err, errlen) : -ENOMEM;
  if (rc == 0)
    rc = db_writer_new(cfg->db_path, &r->writer, err, errlen);
  if (rc == 0 && cfg->hub)
    rc = hook_open(r, err, errlen);
  if (rc) {
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory");
    db_writer_free(r->writer);
    db_close(r->hook_db);
    db_close(r->db);
    free(r->slots);
    free(r);
    return rc;
  }
  for (int i = 0; i < cfg->max_jobs; i++)
    r->slots[i].runner = r;
  uv_mutex_init(&r->lock);
  uv_async_init(cfg->loop, &r->wake, on_wake);
  r->wake.data = r;
  *out = r;
  return 0;
}

int runner_start(runner_t *r, char *err, size_t errlen) {
  int rc = recover(r, err, errlen);

  if (rc == 0)
    schedule(r);
  return rc;
}

db_writer_t *runner_writer(runner_t *r) {
  return r->writer;
}

void runner_notify(runner_t *r) {
  uv_async_send(&r->wake);
}

/* Finds the slot running id; call with the lock held. */
static slot_t *slot_find(runner_t *r, int64_t id) {
  for (int i = 0; i < r->cfg.max_jobs; i++)
    if (r->slots[i].id == id)
      return &r->slots[i];
  return NULL;
}

int runner_cancel(runner_t *r, int64_t id) {
  slot_t *s;

  uv_mutex_lock(&r->lock);
  s = slot_find(r, id);
  if (s)
    atomic_store(&s->stop, JOB_STOP_CANCEL);
  uv_mutex_unlock(&r->lock);
  return s ? 0 : -ENOENT;
}

int runner_cancelling(runner_t *r, int64_t id) {
  slot_t *s;
  int yes;

  uv_mutex_lock(&r->lock);
  s = slot_find(r, id);
  yes = s && atomic_load(&s->stop) != JOB_STOP_NONE;
  uv_mutex_unlock(&r->lock);
  return yes;
}

void runner_shutdown(runner_t *r) {
  if (r->stopping)
    return;
  r->stopping = 1;
  uv_mutex_lock(&r->lock);
  for (int i = 0; i < r->cfg.max_jobs; i++)
    if (r->slots[i].id != 0)
      atomic_store(&r->slots[i].stop, JOB_STOP_SHUTDOWN);
  uv_mutex_unlock(&r->lock);
  schedule(r);
}

void runner_free(runner_t *r) {
  if (!r)
    return;
  uv_mutex_destroy(&r->lock);
  db_writer_free(r->writer);
  db_close(r->hook_db);
  db_close(r->db);
  if (r->lock_fd >= 0)
    close(r->lock_fd);
  free(r->slots);
  free(r);
}
