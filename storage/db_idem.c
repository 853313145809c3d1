/* SPDX-License-Identifier: MIT */
/* The idempotency_keys table: which job a client's Idempotency-Key
 * created and the hash of the body it came with, so that a retried
 * submission finds its job again, also after a restart. What a key may
 * hold and how the body is hashed is the server's business. */
#include "db_internal.h"

#include <errno.h>
#include <string.h>

/* 1 when key has 1 to DB_IDEM_KEY_MAX bytes. */
static int idem_key_valid(const char *key) {
  size_t n = key ? strlen(key) : 0;

  return n >= 1 && n <= DB_IDEM_KEY_MAX;
}

/* 1 when s is 64 lowercase hex digits. */
static int idem_hash_valid(const char *s) {
  return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Copies the row's job and hash into the caller's places. */
static void idem_from_row(sqlite3_stmt *st, int64_t *job, char sha256[65]) {
  const unsigned char *hash = sqlite3_column_text(st, 1);

  *job = sqlite3_column_int64(st, 0);
  if (hash && strlen((const char *)hash) == 64)
    memcpy(sha256, hash, 65);
}

int db_idem_find(db_t *db, const char *key, int64_t *job, char sha256[65],
                 char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  *job = 0;
  sha256[0] = '\0';
  if (!idem_key_valid(key))
    return db_msg(-EINVAL, err, errlen,
                  "an idempotency key has 1 to %d "
                  "bytes",
                  DB_IDEM_KEY_MAX);
  r = db_prepare(db,
                 "SELECT job_id, body_sha256 FROM idempotency_keys "
                 "WHERE key = ?1",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    idem_from_row(st, job, sha256);
  else if (rc != SQLITE_DONE)
    r = db_fail(db, rc, "find idempotency key", err, errlen);
  sqlite3_finalize(st);
  return r;
}

/* Reports a failed insert: a key taken or a job missing by name. */
static int idem_insert_fail(db_t *db, int rc, const char *key, int64_t job,
                            char *err, size_t errlen) {
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return db_msg(-EEXIST, err, errlen, "idempotency key '%s' is taken", key);
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
    return db_msg(-ENOENT, err, errlen, "no job %lld", (long long)job);
  return db_fail(db, rc, "record idempotency key", err, errlen);
}

int db_idem_insert(db_t *db, const char *key, int64_t job, const char *sha256,
                   char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int r, rc;

  if (!idem_key_valid(key))
    return db_msg(-EINVAL, err, errlen,
                  "an idempotency key has 1 to %d "
                  "bytes",
                  DB_IDEM_KEY_MAX);
  if (!idem_hash_valid(sha256))
    return db_msg(-EINVAL, err, errlen,
                  "a body hash is 64 lowercase hex "
                  "digits");
  r = db_prepare(db,
                 "INSERT INTO idempotency_keys (key, job_id, body_sha256, "
                 "created_at) VALUES (?1, ?2, ?3, ?4)",
                 &st, err, errlen);
  if (r)
    return r;
  rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, job);
  rc = rc ? rc : sqlite3_bind_text(st, 3, sha256, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_double(st, 4, db_now());
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    r = idem_insert_fail(db, rc, key, job, err, errlen);
  sqlite3_finalize(st);
  return r;
}
