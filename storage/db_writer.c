/* SPDX-License-Identifier: MIT */
/* The writer thread: one connection that makes every write of a process.
 * Callers queue a function and wait; the thread takes all that is queued,
 * runs it in one transaction, each call in a savepoint of its own, commits
 * once and wakes the callers with their results. */
#include "db_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Log size past which the writer restarts the write-ahead log. */
#define WAL_RESTART_BYTES (8ll << 20)

/* One queued call; lives on its caller's stack until done is set. */
typedef struct call {
  db_write_fn fn;
  void *ctx;
  int rc;
  int done;
  char err[512];
  struct call *next;
} call_t;

struct db_writer {
  db_t *db;
  long long wal_restart_frames; /* WAL_RESTART_BYTES in pages */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  call_t *head, *tail;
  int stopping;
  db_commit_fn on_commit; /* under lock */
  void *on_commit_ctx;
};

/* Runs one call inside the open transaction, rolled back alone on
 * failure. Returns 1 when the failure took the whole transaction with it
 * (SQLite rolls back by itself on a full disk, say). */
static int call_run(db_writer_t *w, call_t *c) {
  c->rc = db_exec(w->db, "SAVEPOINT call", c->err, sizeof c->err);
  if (c->rc == 0)
    c->rc = c->fn(w->db, c->ctx, c->err, sizeof c->err);
  if (sqlite3_get_autocommit(w->db->conn))
    return 1;
  if (c->rc)
    (void)db_exec(w->db, "ROLLBACK TO call", NULL, 0);
  (void)db_exec(w->db, "RELEASE call", NULL, 0);
  return 0;
}

/* Keeps the write-ahead log bounded. The automatic checkpoints copy its
 * pages back, but while readers keep arriving one is nearly always
 * inside it and the log never starts over: it would grow as long as the
 * job writes. Past WAL_RESTART_BYTES the writer waits (the busy timeout
 * at most) for the readers of the old log to finish and truncates it. */
static void wal_bound(db_writer_t *w) {
  int frames = 0, done = 0;

  if (sqlite3_wal_checkpoint_v2(w->db->conn, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                &frames, &done) != SQLITE_OK)
    return;
  if (frames > w->wal_restart_frames)
    (void)sqlite3_wal_checkpoint_v2(w->db->conn, NULL,
                                    SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

/* The database's page size (4096 when it cannot be read). */
static int page_size(db_t *db) {
  sqlite3_stmt *st;
  int page = 0;

  if (sqlite3_prepare_v2(db->conn, "PRAGMA page_size", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    page = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return page > 0 ? page : 4096;
}

/* Every call of batch whose work was lost gets rc and err. */
static void batch_fail(call_t *batch, const call_t *upto, int rc,
                       const char *err) {
  for (call_t *c = batch; c && c != upto; c = c->next)
    if (c->rc == 0) {
      c->rc = rc;
      snprintf(c->err, sizeof c->err, "%s", err);
    }
}

/* One transaction for every call of batch; 0 when it committed. */
static int batch_run(db_writer_t *w, call_t *batch) {
  char err[512] = "";
  int rc = db_tx_begin(w->db, err, sizeof err);
  call_t *c = batch;

  for (; rc == 0 && c; c = c->next)
    if (call_run(w, c)) {
      rc = c->rc ? c->rc : -EIO;
      snprintf(err, sizeof err, "%s", c->err[0] ? c->err
                                               : "the transaction was lost");
      c = c->next;
      break;
    }
  if (rc == 0) {
    rc = db_tx_end(w->db, 0, err, sizeof err);
    c = NULL;
  } else if (!sqlite3_get_autocommit(w->db->conn)) {
    (void)db_exec(w->db, "ROLLBACK", NULL, 0);
  }
  if (rc)
    batch_fail(batch, c, rc, err);
  else
    wal_bound(w);
  for (; c; c = c->next) { /* calls never started */
    c->rc = rc;
    snprintf(c->err, sizeof c->err, "%s", err);
  }
  return rc;
}

static void *writer_main(void *arg) {
  db_writer_t *w = arg;

  pthread_mutex_lock(&w->lock);
  for (;;) {
    call_t *batch;
    db_commit_fn hook;
    void *hook_ctx;
    while (!w->head && !w->stopping)
      pthread_cond_wait(&w->work, &w->lock);
    if (!w->head)
      break;
    batch = w->head;
    w->head = w->tail = NULL;
    hook = w->on_commit;
    hook_ctx = w->on_commit_ctx;
    pthread_mutex_unlock(&w->lock);

    if (batch_run(w, batch) == 0 && hook)
      hook(hook_ctx);

    pthread_mutex_lock(&w->lock);
    for (call_t *c = batch, *next; c; c = next) {
      next = c->next;
      c->done = 1; /* c may be gone once its caller sees this */
    }
    pthread_cond_broadcast(&w->done);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int db_writer_new(const char *path, db_writer_t **out, char *err,
                  size_t errlen) {
  db_writer_t *w = calloc(1, sizeof *w);
  int rc;

  *out = NULL;
  if (!w)
    return db_msg(-ENOMEM, err, errlen, "out of memory for the writer");
  rc = db_open(path, &w->db, err, errlen);
  if (rc) {
    free(w);
    return rc;
  }
  w->wal_restart_frames = WAL_RESTART_BYTES / page_size(w->db);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->done, NULL);
  rc = -pthread_create(&w->thread, NULL, writer_main, w);
  if (rc) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    db_close(w->db);
    free(w);
    return db_msg(rc, err, errlen, "cannot start the writer thread");
  }
  *out = w;
  return 0;
}

void db_writer_free(db_writer_t *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->done);
  db_close(w->db);
  free(w);
}

int db_writer_call(db_writer_t *w, db_write_fn fn, void *ctx, char *err,
                   size_t errlen) {
  call_t c = {fn, ctx, 0, 0, "", NULL};

  pthread_mutex_lock(&w->lock);
  if (w->stopping) {
    pthread_mutex_unlock(&w->lock);
    return db_msg(-ESHUTDOWN, err, errlen, "the database writer has stopped");
  }
  if (w->tail)
    w->tail->next = &c;
  else
    w->head = &c;
  w->tail = &c;
  pthread_cond_signal(&w->work);
  while (!c.done)
    pthread_cond_wait(&w->done, &w->lock);
  pthread_mutex_unlock(&w->lock);
  if (c.rc && err && errlen)
    snprintf(err, errlen, "%s", c.err);
  return c.rc;
}

void db_writer_on_commit(db_writer_t *w, db_commit_fn fn, void *ctx) {
  pthread_mutex_lock(&w->lock);
  w->on_commit = fn;
  w->on_commit_ctx = ctx;
  pthread_mutex_unlock(&w->lock);
}
