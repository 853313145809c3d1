/* SPDX-License-Identifier: MIT */
/* Giving the space of deleted rows back to the file system: every
 * database runs in auto_vacuum = INCREMENTAL mode, an older file is
 * converted once when it is opened alone, and db_space_reclaim truncates
 * the free pages after a deletion. Which rows go is the caller's choice. */
#include "db_internal.h"

#include <errno.h>

/* The auto_vacuum mode that lets db_space_reclaim shrink the file. */
#define AUTO_VACUUM_INCREMENTAL 2

int db_space_mode_set(db_t *db, char *err, size_t errlen) {
  return db_exec(db, "PRAGMA auto_vacuum=INCREMENTAL", err, errlen);
}

/* Reads the file's auto_vacuum mode (0 none, 1 full, 2 incremental). */
static int space_mode_read(db_t *db, int *mode, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  r = db_prepare(db, "PRAGMA auto_vacuum", &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *mode = sqlite3_column_int(st, 0);
  else
    r = db_fail(db, rc, "read auto_vacuum", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Takes an exclusive lock on the file without waiting and keeps it
 * (locking_mode = EXCLUSIVE) until space_unlock. In WAL mode every open
 * connection holds a shared lock on the file, idle or not, so the lock
 * is granted only to a connection that has the file to itself: *alone
 * says whether it was. A file db_open has just switched to WAL opens its
 * log at the next read; that read must come first, in normal locking
 * mode, or the log would be opened without shared memory and the lock
 * could never be given back. */
static int space_lock(db_t *db, int *alone, char *err, size_t errlen) {
  int r, rc;

  *alone = 0;
  r = db_exec(db, "SELECT count(*) FROM sqlite_master", err, errlen);
  if (!r)
    r = db_exec(db, "PRAGMA locking_mode=EXCLUSIVE", err, errlen);
  if (r)
    return r;
  sqlite3_busy_timeout(db->conn, 0);
  rc = sqlite3_exec(db->conn, "BEGIN EXCLUSIVE", NULL, NULL, NULL);
  sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS);
  if (rc == SQLITE_OK) {
    *alone = 1;
    return db_exec(db, "COMMIT", err, errlen);
  }
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    return 0;
  return db_fail(db, rc, "lock the database", err, errlen);
}

/* Back to normal locking: the exclusive lock goes at the next read of
 * the file, which this makes at once. */
static int space_unlock(db_t *db, char *err, size_t errlen) {
  int r = db_exec(db, "PRAGMA locking_mode=NORMAL", err, errlen);

  if (!r)
    r = db_exec(db, "SELECT count(*) FROM sqlite_master", err, errlen);
  return r;
}

/* Rewrites the file in incremental mode. A full disk (VACUUM needs room
 * for a copy) leaves the file as it was, still usable: a later open
 * tries again. */
static int space_vacuum(db_t *db, char *err, size_t errlen) {
  int r, rc;

  r = db_space_mode_set(db, err, errlen);
  if (r)
    return r;
  rc = sqlite3_exec(db->conn, "VACUUM", NULL, NULL, NULL);
  if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_FULL)
    return 0;
  return db_fail(db, rc, "convert to incremental auto_vacuum", err, errlen);
}

int db_space_convert(db_t *db, char *err, size_t errlen) {
  int mode = 0, alone = 0, r, r_unlock;

  r = space_mode_read(db, &mode, err, errlen);
  if (r || mode == AUTO_VACUUM_INCREMENTAL)
    return r;

  /* VACUUM rewrites the whole file under the write lock: done while
   * another connection waits, it could keep that one's writes waiting
   * past their busy timeout. */
  r = space_lock(db, &alone, err, errlen);
  if (!r && alone)
    r = space_vacuum(db, err, errlen);
  r_unlock = space_unlock(db, r ? NULL : err, r ? 0 : errlen);
  return r ? r : r_unlock;
}

int db_space_reclaim(db_t *db, char *err, size_t errlen) {
  return db_exec(db, "PRAGMA incremental_vacuum", err, errlen);
}
