/* SPDX-License-Identifier: MIT */
/* The schema as numbered migrations. Migration i + 1 is migrations[i]; a
 * database records each one it has applied in schema_migrations, and a
 * change to the schema is a new entry at the end, never an edit. */
#include "db_internal.h"

#include <errno.h>
#include <stdio.h>

#define STAGE_CHECK "stage IN ('spl', 'teacher', 'student', 'baseline')"

/* From migration 4 on: also teacher0 to teacher7, one per teacher of a
 * job with several. */
#define STAGE_CHECK_4 "(" STAGE_CHECK " OR stage GLOB 'teacher[0-7]')"

static const char *const migrations[] = {
    /* 1: jobs, the samples each job uses, per-epoch metrics and records. */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  spec_json TEXT NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  error TEXT,"
    "  provenance_json TEXT,"
    "  stage TEXT CHECK (stage IS NULL OR " STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs (state, id);"

    "CREATE TABLE job_samples ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),"
    "  split INTEGER NOT NULL CHECK (split IN (0, 1)),"
    "  pos INTEGER NOT NULL,"
    "  observed INTEGER NOT NULL,"
    "  clean INTEGER NOT NULL,"
    "  CHECK ((split = 0 AND pos >= 0) OR (split = 1 AND pos = -1)),"
    "  PRIMARY KEY (job_id, idx)) WITHOUT ROWID;"

    "CREATE TABLE epoch_metrics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  train_loss REAL, train_acc REAL, val_acc REAL, test_acc REAL,"
    "  easy_size INTEGER NOT NULL, easy_fraction REAL,"
    "  lr REAL, seconds REAL, samples_per_s REAL,"
    "  PRIMARY KEY (job_id, stage, epoch)) WITHOUT ROWID;"

    /* A rowid table: sqlite3_blob_open reads its arrays by rowid. */
    "CREATE TABLE epoch_records ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" STAGE_CHECK "),"
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK (length(loss) = 4 * n),"
    "  prob BLOB NOT NULL CHECK (length(prob) = 4 * n),"
    "  weight BLOB NOT NULL CHECK (length(weight) = 4 * n),"
    "  easy BLOB NOT NULL CHECK (length(easy) = n),"
    "  PRIMARY KEY (job_id, stage, epoch));",

    /* 2: how well each epoch's easy set separates clean from corrupted
     * labels (NULL when no noise was injected), and each sample's logit
     * margin and predicted class. Rows written before this migration hold
     * NULL there: not recorded. */
    "ALTER TABLE epoch_metrics ADD COLUMN noise_precision REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_recall REAL;"
    "ALTER TABLE epoch_metrics ADD COLUMN noise_auroc REAL;"
    "ALTER TABLE epoch_records ADD COLUMN margin BLOB"
    "  CHECK (margin IS NULL OR length(margin) = 4 * n);"
    "ALTER TABLE epoch_records ADD COLUMN pred BLOB"
    "  CHECK (pred IS NULL OR length(pred) = n);",

    /* 3: each finished stage's training dynamics, one row per job and
     * stage with n values per array in position order: float32 except
     * forgetting, an int32 count; all little-endian. A rowid table, like
     * epoch_records, so one sample's values are read in place. */
    "CREATE TABLE stage_dynamics ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK (" STAGE_CHECK "),"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  confidence BLOB NOT NULL CHECK (length(confidence) = 4 * n),"
    "  variability BLOB NOT NULL CHECK (length(variability) = 4 * n),"
    "  correctness BLOB NOT NULL CHECK (length(correctness) = 4 * n),"
    "  forgetting BLOB NOT NULL CHECK (length(forgetting) = 4 * n),"
    "  aum BLOB NOT NULL CHECK (length(aum) = 4 * n),"
    "  PRIMARY KEY (job_id, stage));",

    /* 4: the stage names of a job with several teachers. SQLite cannot
     * change a CHECK in place, so each table naming a stage is rebuilt
     * the documented way: create the new table, copy every row, drop the
     * old one, rename the new one, recreate its indexes. Columns,
     * constraints and rowid choice stay as migrations 1-3 left them; the
     * copies keep every rowid, and the jobs id counter in sqlite_sequence
     * moves to the new table so no job id is ever handed out twice.
     * db_migrate runs this with foreign keys off, so dropping jobs does
     * not cascade, and checks them before committing. */
    "CREATE TABLE jobs_new ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  spec_json TEXT NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  error TEXT,"
    "  provenance_json TEXT,"
    "  stage TEXT CHECK (stage IS NULL OR " STAGE_CHECK_4 "),"
    "  epoch INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO jobs_new (id, name, state, spec_json, created_at,"
    "  started_at, finished_at, error, provenance_json, stage, epoch)"
    "  SELECT id, name, state, spec_json, created_at, started_at,"
    "  finished_at, error, provenance_json, stage, epoch FROM jobs;"
    "DELETE FROM sqlite_sequence WHERE name = 'jobs_new';"
    "INSERT INTO sqlite_sequence (name, seq)"
    "  SELECT 'jobs_new', seq FROM sqlite_sequence WHERE name = 'jobs';"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_new RENAME TO jobs;"
    "CREATE INDEX jobs_state ON jobs (state, id);"

    "CREATE TABLE epoch_metrics_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  train_loss REAL, train_acc REAL, val_acc REAL, test_acc REAL,"
    "  easy_size INTEGER NOT NULL, easy_fraction REAL,"
    "  lr REAL, seconds REAL, samples_per_s REAL,"
    "  noise_precision REAL, noise_recall REAL, noise_auroc REAL,"
    "  PRIMARY KEY (job_id, stage, epoch)) WITHOUT ROWID;"
    "INSERT INTO epoch_metrics_new (job_id, stage, epoch, train_loss,"
    "  train_acc, val_acc, test_acc, easy_size, easy_fraction, lr, seconds,"
    "  samples_per_s, noise_precision, noise_recall, noise_auroc)"
    "  SELECT job_id, stage, epoch, train_loss, train_acc, val_acc,"
    "  test_acc, easy_size, easy_fraction, lr, seconds, samples_per_s,"
    "  noise_precision, noise_recall, noise_auroc FROM epoch_metrics;"
    "DROP TABLE epoch_metrics;"
    "ALTER TABLE epoch_metrics_new RENAME TO epoch_metrics;"

    "CREATE TABLE epoch_records_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK (length(loss) = 4 * n),"
    "  prob BLOB NOT NULL CHECK (length(prob) = 4 * n),"
    "  weight BLOB NOT NULL CHECK (length(weight) = 4 * n),"
    "  easy BLOB NOT NULL CHECK (length(easy) = n),"
    "  margin BLOB CHECK (margin IS NULL OR length(margin) = 4 * n),"
    "  pred BLOB CHECK (pred IS NULL OR length(pred) = n),"
    "  PRIMARY KEY (job_id, stage, epoch));"
    "INSERT INTO epoch_records_new (rowid, job_id, stage, epoch, n, loss,"
    "  prob, weight, easy, margin, pred)"
    "  SELECT rowid, job_id, stage, epoch, n, loss, prob, weight, easy,"
    "  margin, pred FROM epoch_records;"
    "DROP TABLE epoch_records;"
    "ALTER TABLE epoch_records_new RENAME TO epoch_records;"

    "CREATE TABLE stage_dynamics_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " STAGE_CHECK_4 ","
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  confidence BLOB NOT NULL CHECK (length(confidence) = 4 * n),"
    "  variability BLOB NOT NULL CHECK (length(variability) = 4 * n),"
    "  correctness BLOB NOT NULL CHECK (length(correctness) = 4 * n),"
    "  forgetting BLOB NOT NULL CHECK (length(forgetting) = 4 * n),"
    "  aum BLOB NOT NULL CHECK (length(aum) = 4 * n),"
    "  PRIMARY KEY (job_id, stage));"
    "INSERT INTO stage_dynamics_new (rowid, job_id, stage, n, confidence,"
    "  variability, correctness, forgetting, aum)"
    "  SELECT rowid, job_id, stage, n, confidence, variability,"
    "  correctness, forgetting, aum FROM stage_dynamics;"
    "DROP TABLE stage_dynamics;"
    "ALTER TABLE stage_dynamics_new RENAME TO stage_dynamics;",

    /* 5: epoch records in half precision. format says how a row's arrays
     * are packed: 1 as migrations 1-4 stored them (float32, one byte per
     * easy flag), 2 in binary16 with one bit per easy flag (bit i % 8 of
     * byte i / 8); every row stored before is format 1. The CHECKs on the
     * arrays' lengths now depend on the format, so epoch_records is
     * rebuilt the way migration 4 rebuilt it, keeping every rowid. */
    "CREATE TABLE epoch_records_new ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " STAGE_CHECK_4 ","
    "  epoch INTEGER NOT NULL,"
    "  n INTEGER NOT NULL CHECK (n >= 0),"
    "  loss BLOB NOT NULL CHECK ((format = 1 AND length(loss) = 4 * n) OR"
    "    (format = 2 AND length(loss) = 2 * n)),"
    "  prob BLOB NOT NULL CHECK ((format = 1 AND length(prob) = 4 * n) OR"
    "    (format = 2 AND length(prob) = 2 * n)),"
    "  weight BLOB NOT NULL CHECK ((format = 1 AND length(weight) = 4 * n)"
    "    OR (format = 2 AND length(weight) = 2 * n)),"
    "  easy BLOB NOT NULL CHECK ((format = 1 AND length(easy) = n) OR"
    "    (format = 2 AND length(easy) = (n + 7) / 8)),"
    "  margin BLOB CHECK (margin IS NULL OR"
    "    (format = 1 AND length(margin) = 4 * n) OR"
    "    (format = 2 AND length(margin) = 2 * n)),"
    "  pred BLOB CHECK (pred IS NULL OR length(pred) = n),"
    "  format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2)),"
    "  PRIMARY KEY (job_id, stage, epoch));"
    "INSERT INTO epoch_records_new (rowid, job_id, stage, epoch, n, loss,"
    "  prob, weight, easy, margin, pred, format)"
    "  SELECT rowid, job_id, stage, epoch, n, loss, prob, weight, easy,"
    "  margin, pred, 1 FROM epoch_records;"
    "DROP TABLE epoch_records;"
    "ALTER TABLE epoch_records_new RENAME TO epoch_records;",

    /* 6: a job's priority and owner (a free label); each stage's model
     * checkpoints, the newest epoch's and the finished stage's, with
     * the SHA-256 of their bytes; and an append-only log of events,
     * numbered in the order they were stored. Every row about a job goes
     * when the job does. */
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN owner TEXT;"
    "CREATE TABLE checkpoints ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL CHECK " STAGE_CHECK_4 ","
    "  kind TEXT NOT NULL CHECK (kind IN ('latest', 'final')),"
    "  epoch INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  sha256 TEXT,"
    "  PRIMARY KEY (job_id, stage, kind));"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER REFERENCES jobs (id) ON DELETE CASCADE,"
    "  at REAL NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  data TEXT NOT NULL);"
    "CREATE INDEX events_job ON events (job_id, seq);",

    /* 7: the queue in the order jobs start (highest priority, then
     * oldest), and the idempotency keys of submissions: the job each key
     * created and the SHA-256 of the body it came with. A key goes when
     * its job does. */
    "CREATE INDEX jobs_queue ON jobs (state, priority DESC, id);"
    "CREATE TABLE idempotency_keys ("
    "  key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),"
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  body_sha256 TEXT NOT NULL CHECK (length(body_sha256) = 64),"
    "  created_at REAL NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int db_migrated_version(db_t *db, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db,
                 "SELECT coalesce(max(version), 0) FROM "
                 "schema_migrations",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = sqlite3_column_int(st, 0);
  else
    r = db_fail(db, rc, "read schema version", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* 1 when migration version is recorded, 0 when not, or a negative code. */
static int migration_applied(db_t *db, int version, char *err, size_t errlen) {
  return db_row_exists(db, "SELECT 1 FROM schema_migrations WHERE version = ?",
                       version, "read schema_migrations", err, errlen);
}

static int migration_record(db_t *db, int version, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r;

  r = db_prepare(db,
                 "INSERT INTO schema_migrations (version, applied_at) "
                 "VALUES (?, ?)",
                 &st, err, errlen);
  if (r)
    return r;
  if (sqlite3_bind_int(st, 1, version) != SQLITE_OK ||
      sqlite3_bind_double(st, 2, db_now()) != SQLITE_OK)
    r = db_fail(db, SQLITE_ERROR, "bind", err, errlen);
  else
    r = db_step_done(db, st, "record migration", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Fails with -EIO when a row refers to a parent row that does not exist:
 * what a migration run with foreign keys off must not leave behind. */
static int migration_fk_check(db_t *db, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  const unsigned char *child, *parent;
  int r, rc;

  r = db_prepare(db, "PRAGMA foreign_key_check", &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    child = sqlite3_column_text(st, 0);
    parent = sqlite3_column_text(st, 2);
    r = db_msg(-EIO, err, errlen, "a row of %s refers to a missing row of %s",
               child ? (const char *)child : "?",
               parent ? (const char *)parent : "?");
  } else if (rc != SQLITE_DONE) {
    r = db_fail(db, rc, "check foreign keys", err, errlen);
  }
  sqlite3_finalize(st);
  return r;
}

/* Applies one migration in its own transaction. The check runs inside the
 * transaction so two connections opening a new file at once cannot both
 * apply it. */
static int migration_apply(db_t *db, int version, char *err, size_t errlen) {
  int r, rc;

  r = db_tx_begin(db, err, errlen);
  if (r)
    return r;
  r = migration_applied(db, version, err, errlen);
  if (r == 1) {
    r = 0;
  } else if (r == 0) {
    rc = sqlite3_exec(db->conn, migrations[version - 1], NULL, NULL, NULL);
    if (rc != SQLITE_OK)
      r = db_fail(db, rc, "apply", err, errlen);
    if (!r)
      r = migration_fk_check(db, err, errlen);
    if (!r)
      r = migration_record(db, version, err, errlen);
  }
  r = db_tx_end(db, r, err, errlen);
  if (r) {
    char what[32];
    snprintf(what, sizeof what, "migration %d", version);
    db_err_prefix(err, errlen, what);
  }
  return r;
}

/* Reads whether foreign keys are enforced on this connection into *on. */
static int foreign_keys_read(db_t *db, int *on, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db, "PRAGMA foreign_keys", &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *on = sqlite3_column_int(st, 0) != 0;
  else
    r = db_fail(db, rc, "read foreign_keys", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Switches foreign key enforcement on or off and checks that it took:
 * inside a transaction PRAGMA foreign_keys silently does nothing, and a
 * migration dropping jobs with enforcement on would delete every row that
 * refers to a job. */
static int foreign_keys_set(db_t *db, int on, char *err, size_t errlen) {
  int now = !on, r;

  r = db_exec(db, on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF",
              err, errlen);
  if (!r)
    r = foreign_keys_read(db, &now, err, errlen);
  if (!r && now != on)
    r = db_msg(-EIO, err, errlen, "cannot switch foreign keys %s",
               on ? "on" : "off");
  return r;
}

/* Applies migrations current + 1 to the last with foreign keys off, then
 * puts enforcement back as it was, whatever the outcome. */
static int migrations_run(db_t *db, int current, char *err, size_t errlen) {
  int was_on = 0, r, r_restore;

  r = foreign_keys_read(db, &was_on, err, errlen);
  if (r)
    return r;
  r = foreign_keys_set(db, 0, err, errlen);
  for (int v = current + 1; !r && v <= N_MIGRATIONS; v++)
    r = migration_apply(db, v, err, errlen);
  r_restore = foreign_keys_set(db, was_on, r ? NULL : err, r ? 0 : errlen);
  return r ? r : r_restore;
}

int db_migrate(db_t *db, char *err, size_t errlen) {
  int current, r;

  r = db_exec(db,
              "CREATE TABLE IF NOT EXISTS schema_migrations ("
              "  version INTEGER PRIMARY KEY,"
              "  applied_at REAL NOT NULL)",
              err, errlen);
  if (r)
    return r;
  current = db_migrated_version(db, err, errlen);
  if (current < 0)
    return current;
  if (current > N_MIGRATIONS)
    return db_msg(-EIO, err, errlen,
                  "database schema version %d is newer than this "
                  "program's %d",
                  current, N_MIGRATIONS);
  if (current == N_MIGRATIONS)
    return 0;
  return migrations_run(db, current, err, errlen);
}
