/* SPDX-License-Identifier: MIT */
/* What the storage tests share: a fresh database file under /tmp for
 * each test, and removing it with the files SQLite keeps beside it. */
#ifndef SPK_TESTS_DBFIX_H
#define SPK_TESTS_DBFIX_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../storage/db.h"

/* Removes a database file and the files SQLite keeps beside it. */
static inline void db_files_remove(const char *path) {
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char name[96];

  for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(name, sizeof name, "%s%s", path, suffix[i]);
    unlink(name);
  }
}

/* Makes an empty file /tmp/spk-test-<tag>-XXXXXX and writes its name
 * into path (64 bytes). Returns 0 or -1. */
static inline int db_file_make(char path[64], const char *tag) {
  int fd;

  snprintf(path, 64, "/tmp/spk-test-%s-XXXXXX", tag);
  fd = mkstemp(path);
  if (fd < 0)
    return -1;
  close(fd);
  return 0;
}

/* One test's database: its file and an open connection. */
typedef struct {
  char path[64];
  db_t *db;
  char err[256];
} db_fixture_t;

/* A cmocka setup: a new database file opened into a db_fixture_t. */
static inline int db_fixture_setup(void **state, const char *tag) {
  db_fixture_t *f = calloc(1, sizeof *f);

  if (!f || db_file_make(f->path, tag) != 0) {
    free(f);
    return -1;
  }
  if (db_open(f->path, &f->db, f->err, sizeof f->err) != 0) {
    db_files_remove(f->path);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

/* The matching teardown. */
static inline int db_fixture_teardown(void **state) {
  db_fixture_t *f = *state;

  db_close(f->db);
  db_files_remove(f->path);
  free(f);
  return 0;
}

/* A database with the process's writer on it and a reader beside it,
 * for tests of the writer and what hangs on it. */
typedef struct {
  char path[64];
  db_writer_t *w;
  db_t *reader;
  char err[256];
} writer_fix_t;

/* Makes a new database file /tmp/spk-test-<tag>-* and opens f on it.
 * Returns 0 or -1. */
static inline int writer_fix_open(writer_fix_t *f, const char *tag) {
  if (db_file_make(f->path, tag) != 0)
    return -1;
  if (db_writer_new(f->path, &f->w, f->err, sizeof f->err) != 0 ||
      db_open(f->path, &f->reader, f->err, sizeof f->err) != 0) {
    db_writer_free(f->w);
    db_files_remove(f->path);
    return -1;
  }
  return 0;
}

/* Stops the writer, closes the reader and removes the files. */
static inline void writer_fix_close(writer_fix_t *f) {
  db_writer_free(f->w);
  db_close(f->reader);
  db_files_remove(f->path);
}

#endif
