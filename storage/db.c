/* SPDX-License-Identifier: MIT */
/* Opening and closing a connection, and the helpers every storage file
 * uses: error reporting, statements, transactions, time and packing. The
 * schema itself lives in migrations.c, the space of deleted rows in
 * db_space.c, the queries in db_jobs.c, db_epochs.c, db_dynamics.c,
 * db_checkpoints.c, db_events.c and db_queries.c. */
#include "db_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int db_msg(int code, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

void db_err_prefix(char *err, size_t errlen, const char *prefix) {
  char why[256];

  if (!err || errlen == 0)
    return;
  snprintf(why, sizeof why, "%s", err);
  snprintf(err, errlen, "%s: %s", prefix, why);
}

int db_fail(db_t *db, int rc, const char *what, char *err, size_t errlen) {
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return db_msg(-ENOSPC, err, errlen, "%s: the disk or the database is full",
                  what);
  case SQLITE_NOMEM:
    return db_msg(-ENOMEM, err, errlen, "%s: out of memory", what);
  default:
    return db_msg(-EIO, err, errlen, "%s: %s", what,
                  sqlite3_errmsg(db->conn));
  }
}

double db_now(void) {
  struct timespec ts;

  if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
    return (double)time(NULL);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int db_stage_valid(const char *stage) {
  static const char *const names[] = {"spl", "teacher", "student",
                                      "baseline"};

  if (!stage)
    return 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(stage, names[i]) == 0)
      return 1;

  /* teacher0 to teacher7: one of a job's several teachers. */
  return strncmp(stage, "teacher", 7) == 0 && stage[7] >= '0' &&
         stage[7] <= '7' && stage[8] == '\0';
}

int db_prepare(db_t *db, const char *sql, sqlite3_stmt **st, char *err,
               size_t errlen) {
  int rc = sqlite3_prepare_v2(db->conn, sql, -1, st, NULL);

  if (rc != SQLITE_OK) {
    *st = NULL;
    return db_fail(db, rc, "prepare", err, errlen);
  }
  return 0;
}

int db_step_done(db_t *db, sqlite3_stmt *st, const char *what, char *err,
                 size_t errlen) {
  int rc = sqlite3_step(st);

  if (rc != SQLITE_DONE)
    return db_fail(db, rc, what, err, errlen);
  return 0;
}

int db_row_exists(db_t *db, const char *sql, int64_t key, const char *what,
                  char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db, sql, &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_int64(st, 1, key);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = 1;
  else if (rc == SQLITE_DONE)
    r = 0;
  else
    r = db_fail(db, rc, what, err, errlen);
  sqlite3_finalize(st);
  return r;
}

int db_exec(db_t *db, const char *sql, char *err, size_t errlen) {
  int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    return db_fail(db, rc, sql, err, errlen);
  return 0;
}

/* Inside a transaction already open (the writer thread's batch), a
 * transaction is a savepoint of it. */
int db_tx_begin(db_t *db, char *err, size_t errlen) {
  int r;

  if (sqlite3_get_autocommit(db->conn))
    return db_exec(db, "BEGIN IMMEDIATE", err, errlen);
  r = db_exec(db, "SAVEPOINT tx", err, errlen);
  if (r == 0)
    db->nested++;
  return r;
}

int db_tx_end(db_t *db, int r, char *err, size_t errlen) {
  if (db->nested > 0) {
    db->nested--;
    if (r == 0)
      r = db_exec(db, "RELEASE tx", err, errlen);
    if (r != 0 && !sqlite3_get_autocommit(db->conn)) {
      (void)db_exec(db, "ROLLBACK TO tx", NULL, 0);
      (void)db_exec(db, "RELEASE tx", NULL, 0);
    }
    return r;
  }
  if (r == 0)
    r = db_exec(db, "COMMIT", err, errlen);

  /* A failed statement or COMMIT may leave the transaction open; SQLite
   * may also have rolled it back itself (disk full, out of memory). The
   * first error's message is the one worth keeping. */
  if (r != 0 && !sqlite3_get_autocommit(db->conn))
    (void)db_exec(db, "ROLLBACK", NULL, 0);
  return r;
}

void db_f32_pack(uint8_t *dst, const float *src, int n) {
  for (int i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], sizeof u);
    dst[4 * i] = (uint8_t)u;
    dst[4 * i + 1] = (uint8_t)(u >> 8);
    dst[4 * i + 2] = (uint8_t)(u >> 16);
    dst[4 * i + 3] = (uint8_t)(u >> 24);
  }
}

float db_f32_unpack(const uint8_t *src) {
  uint32_t u = (uint32_t)src[0] | (uint32_t)src[1] << 8 |
               (uint32_t)src[2] << 16 | (uint32_t)src[3] << 24;
  float f;

  memcpy(&f, &u, sizeof f);
  return f;
}

/* The largest finite half-precision value. */
#define HALF_MAX 65504.0f

/* x as binary16 bits, rounded to nearest even; finite values beyond the
 * half range and infinities become +-HALF_MAX, NaN stays NaN. Clamping
 * first also keeps the conversion itself from overflowing. */
static uint16_t half_from_float(float x) {
  _Float16 h;
  uint16_t u;

  if (x > HALF_MAX)
    x = HALF_MAX;
  else if (x < -HALF_MAX)
    x = -HALF_MAX;
  h = (_Float16)x;
  memcpy(&u, &h, sizeof u);
  return u;
}

/* The float a binary16 value stands for: exact, every half is a float. */
static float half_to_float(uint16_t u) {
  _Float16 h;

  memcpy(&h, &u, sizeof h);
  return (float)h;
}

float db_half_round(float x) {
  return half_to_float(half_from_float(x));
}

void db_f16_pack(uint8_t *dst, const float *src, int n) {
  for (int i = 0; i < n; i++) {
    uint16_t u = half_from_float(src[i]);
    dst[2 * i] = (uint8_t)u;
    dst[2 * i + 1] = (uint8_t)(u >> 8);
  }
}

float db_f16_unpack(const uint8_t *src) {
  return half_to_float((uint16_t)(src[0] | src[1] << 8));
}

/* Checks that the journal really switched to WAL: some file systems (and
 * in-memory databases) refuse, and concurrent readers depend on it. */
static int db_wal_enable(db_t *db, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  const char *mode;
  int r, rc;

  r = db_prepare(db, "PRAGMA journal_mode=WAL", &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    r = db_fail(db, rc, "PRAGMA journal_mode", err, errlen);
    goto out;
  }
  mode = (const char *)sqlite3_column_text(st, 0);
  if (!mode || strcmp(mode, "wal") != 0)
    r = db_msg(-EIO, err, errlen, "journal mode is %s, not wal",
               mode ? mode : "unknown");
out:
  sqlite3_finalize(st);
  return r;
}

/* The page size of a new file, and how much of the file is read through
 * a memory map. One sample's history is read at its offset in each
 * records row, and SQLite reaches an offset by following the row's chain
 * of overflow pages one page at a time: 64 KiB pages (SQLite's largest)
 * make that chain 16 times shorter than its default 4 KiB ones, and the
 * map turns each step into a memory access instead of a read() of a
 * whole page. SQLite cuts the map to its compiled limit (2 GiB in
 * Debian's build) and reads pages beyond it as usual. The page size only
 * takes on a new file, before its first write. */
#define DB_PAGE_SIZE "65536"
#define DB_MMAP_SIZE "2147418112"

/* The write-ahead log is folded back into the file whenever it holds
 * this many bytes: SQLite's default of 1000 pages at 4 KiB. */
#define DB_WAL_CHECKPOINT_BYTES (4000 * 1024)

/* Reads the integer a PRAGMA without argument returns into *v. */
static int pragma_int_read(db_t *db, const char *sql, int *v, char *err,
                           size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db, sql, &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *v = sqlite3_column_int(st, 0);
  else
    r = db_fail(db, rc, sql, err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Checkpoints the WAL every DB_WAL_CHECKPOINT_BYTES whatever the file's
 * page size: 1000 pages of 64 KiB would let it grow to 64 MiB and stall
 * the commit that checkpoints it. */
static int db_wal_checkpoint_set(db_t *db, char *err, size_t errlen) {
  int page = 0, r, rc;

  r = pragma_int_read(db, "PRAGMA page_size", &page, err, errlen);
  if (r)
    return r;
  if (page <= 0)
    return db_msg(-EIO, err, errlen, "page size %d", page);
  rc = sqlite3_wal_autocheckpoint(db->conn, DB_WAL_CHECKPOINT_BYTES / page);
  if (rc != SQLITE_OK)
    return db_fail(db, rc, "wal_autocheckpoint", err, errlen);
  return 0;
}

/* Connection settings, then the schema. */
static int db_configure(db_t *db, char *err, size_t errlen) {
  int rc, r;

  rc = sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS);
  if (rc != SQLITE_OK)
    return db_fail(db, rc, "busy timeout", err, errlen);
  rc = sqlite3_extended_result_codes(db->conn, 1);
  if (rc != SQLITE_OK)
    return db_fail(db, rc, "extended result codes", err, errlen);

  /* The page size first: setting auto_vacuum fixes it. */
  r = db_exec(db, "PRAGMA page_size=" DB_PAGE_SIZE, err, errlen);
  if (r)
    return r;
  r = db_space_mode_set(db, err, errlen);
  if (r)
    return r;

  r = db_exec(db, "PRAGMA mmap_size=" DB_MMAP_SIZE, err, errlen);
  if (!r)
    r = db_wal_enable(db, err, errlen);
  if (!r)
    r = db_wal_checkpoint_set(db, err, errlen);
  if (!r)
    r = db_exec(db, "PRAGMA synchronous=NORMAL", err, errlen);
  if (!r)
    r = db_exec(db, "PRAGMA foreign_keys=ON", err, errlen);
  if (!r)
    r = db_space_convert(db, err, errlen);
  if (!r)
    r = db_migrate(db, err, errlen);
  return r;
}

/* Why sqlite3_open_v2 could not open a file, in words: its own message
 * says only "unable to open database file". sys is the system error it
 * met (sqlite3_system_errno, 0 when none); buf holds the words when
 * they are the system's. */
static const char *open_failure_why(int sys, char *buf, size_t len) {
  switch (sys) {
  case 0:
    return "no reason given";
  case ENOENT:
    return "a directory on its path does not exist";
  case EISDIR:
    return "it is a directory";
  default:
    return strerror_r(sys, buf, len);
  }
}

/* The error of a failed sqlite3_open_v2 of path on db, with why. */
static int open_failure(db_t *db, const char *path, char *err, size_t errlen) {
  char buf[128];
  const char *why;

  if (!db->conn)
    return db_msg(-ENOMEM, err, errlen, "%s: out of memory", path);
  why = open_failure_why(sqlite3_system_errno(db->conn), buf, sizeof buf);
  return db_msg(-EIO, err, errlen, "%s: %s: %s", path, sqlite3_errmsg(db->conn),
                why);
}

/* Puts path in front of the message db_configure left in err. A file
 * that is not a database, or a damaged one, gets SQLite's words for that
 * alone: which setting first met it would only mislead the reader. */
static void configure_failure_explain(db_t *db, const char *path, char *err,
                                      size_t errlen) {
  int rc = sqlite3_errcode(db->conn) & 0xff;

  if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
    (void)db_msg(0, err, errlen, "%s: %s", path, sqlite3_errstr(rc));
  else
    db_err_prefix(err, errlen, path);
}

int db_open(const char *path, db_t **out, char *err, size_t errlen) {
  db_t *db;
  int rc, r;

  *out = NULL;
  if (!path)
    return db_msg(-EINVAL, err, errlen, "no database path");
  db = calloc(1, sizeof *db);
  if (!db)
    return db_msg(-ENOMEM, err, errlen, "out of memory");

  rc = sqlite3_open_v2(path, &db->conn,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    r = open_failure(db, path, err, errlen);
    goto out;
  }
  r = db_configure(db, err, errlen);
  if (r)
    configure_failure_explain(db, path, err, errlen);

out:
  if (r) {
    db_close(db);
    return r;
  }
  *out = db;
  return 0;
}

void db_close(db_t *db) {
  if (!db)
    return;
  /* Every statement is finalized before its function returns, so close
   * cannot find one still open; close_v2 would defer if it did. */
  (void)sqlite3_close_v2(db->conn);
  free(db);
}

int db_schema_version(db_t *db) {
  if (!db)
    return -EINVAL;
  return db_migrated_version(db, NULL, 0);
}

int32_t db_i32_unpack(const uint8_t *src) {
  uint32_t u = (uint32_t)src[0] | (uint32_t)src[1] << 8 |
               (uint32_t)src[2] << 16 | (uint32_t)src[3] << 24;
  int32_t v;

  memcpy(&v, &u, sizeof v);
  return v;
}
