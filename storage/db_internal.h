/* SPDX-License-Identifier: MIT */
/* What the storage files share and nobody outside storage/ sees: the
 * connection struct, error reporting, statement and transaction helpers,
 * the pipeline's stage names and the packing of per-sample arrays. */
#ifndef SPK_STORAGE_DB_INTERNAL_H
#define SPK_STORAGE_DB_INTERNAL_H

#include "db.h"

#include <sqlite3.h>
#include <stdint.h>

struct db {
  sqlite3 *conn;
  int nested; /* db_tx_begin levels opened as savepoints */
};

/* How long a statement waits for another connection's write lock. */
#define DB_BUSY_TIMEOUT_MS 10000

/* The stages a job can have: spl, teacher (a job's only teacher) or
 * teacher0 to teacher7 (one per teacher of a job with several), student
 * and baseline. */
#define DB_STAGE_COUNT 12

/* ORDER BY expression putting stages in pipeline order, the teachers of
 * a job with several by number. */
#define DB_STAGE_ORDER                                                         \
  "CASE stage WHEN 'spl' THEN 0 WHEN 'teacher' THEN 1 "                        \
  "WHEN 'teacher0' THEN 2 WHEN 'teacher1' THEN 3 WHEN 'teacher2' THEN 4 "      \
  "WHEN 'teacher3' THEN 5 WHEN 'teacher4' THEN 6 WHEN 'teacher5' THEN 7 "      \
  "WHEN 'teacher6' THEN 8 WHEN 'teacher7' THEN 9 "                             \
  "WHEN 'student' THEN 10 WHEN 'baseline' THEN 11 ELSE 12 END"

/* Writes a formatted message into err (which may be NULL) and returns
 * code. */
int db_msg(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Puts "prefix: " in front of the message already in err. */
void db_err_prefix(char *err, size_t errlen, const char *prefix);

/* Reports a failed sqlite3 call rc on db: err gets "what: <sqlite's
 * message>"; returns -ENOSPC (disk full), -ENOMEM or -EIO. */
int db_fail(db_t *db, int rc, const char *what, char *err, size_t errlen);

/* Seconds since the Unix epoch, with sub-second precision. */
double db_now(void);

/* 1 when stage is one of spl, teacher, teacher0 to teacher7, student,
 * baseline; 0 otherwise (NULL included). */
int db_stage_valid(const char *stage);

/* Compiles sql into *st; -EIO with err set on failure. */
int db_prepare(db_t *db, const char *sql, sqlite3_stmt **st, char *err,
               size_t errlen);

/* Steps a statement that must finish without returning rows. */
int db_step_done(db_t *db, sqlite3_stmt *st, const char *what, char *err,
                 size_t errlen);

/* Runs sql, a query with one integer parameter bound to key: 1 when it
 * returns a row, 0 when it returns none, or a negative code with err
 * saying "what: <sqlite's message>". */
int db_row_exists(db_t *db, const char *sql, int64_t key, const char *what,
                  char *err, size_t errlen);

/* Runs SQL text without parameters (schema, transaction control). */
int db_exec(db_t *db, const char *sql, char *err, size_t errlen);

/* BEGIN IMMEDIATE: takes the write lock now, waiting up to the busy
 * timeout for another writer. */
int db_tx_begin(db_t *db, char *err, size_t errlen);

/* Ends the transaction db_tx_begin opened: commits when r is 0, rolls back
 * otherwise, keeping the first error's message. Returns the final code. */
int db_tx_end(db_t *db, int r, char *err, size_t errlen);

/* Applies every migration the database lacks (migrations.c), each in its
 * own transaction, and refuses (-EIO) a database whose schema is newer
 * than this program's. Must run outside a transaction: foreign key
 * enforcement is switched off while migrations run and restored after. A
 * database already at the last version costs one query. */
int db_migrate(db_t *db, char *err, size_t errlen);

/* The highest applied migration, or a negative code. */
int db_migrated_version(db_t *db, char *err, size_t errlen);

/* Space of deleted rows (db_space.c). A database gives freed pages back
 * to the file system only in auto_vacuum = INCREMENTAL mode, and only
 * when db_space_reclaim runs. db_space_mode_set asks for that mode; it
 * must run before the connection first writes, so a new file starts in
 * it at no cost. db_space_convert then rewrites (VACUUM) an existing
 * file still in another mode, once, outside any transaction, and only
 * when no other connection has the file open; otherwise it leaves the
 * file as it is for a later open to convert. */
int db_space_mode_set(db_t *db, char *err, size_t errlen);
int db_space_convert(db_t *db, char *err, size_t errlen);

/* Truncates the free pages off the end of the file (PRAGMA
 * incremental_vacuum); inside or outside a transaction. */
int db_space_reclaim(db_t *db, char *err, size_t errlen);

/* Appends to s->dynamics the training dynamics at position pos of every
 * stage of job that stored them, in pipeline order (db_dynamics.c). The
 * array is heap, for db_sample_deinit to free, also after a failure.
 * -EIO when a stored row is shorter than pos. */
int db_sample_dynamics_read(db_t *db, int64_t job, int pos, db_sample_t *s,
                            char *err, size_t errlen);

/* Little-endian float32 packing of per-sample arrays: n values. */
void db_f32_pack(uint8_t *dst, const float *src, int n);
float db_f32_unpack(const uint8_t *src);

/* The little-endian int32 at src. */
int32_t db_i32_unpack(const uint8_t *src);

/* Little-endian binary16 packing of per-sample arrays: n values, 2 bytes
 * each, rounded as db_half_round says. */
void db_f16_pack(uint8_t *dst, const float *src, int n);
float db_f16_unpack(const uint8_t *src);

/* The per-sample array columns of epoch_records. Those from REC_OPTIONAL
 * on may be NULL in a row. */
enum {
  REC_LOSS,
  REC_PROB,
  REC_WEIGHT,
  REC_EASY,
  REC_MARGIN,
  REC_PRED,
  REC_COLUMNS,
  REC_OPTIONAL = REC_MARGIN
};

/* How a row's arrays are packed (its format column). Format 1: loss,
 * prob, weight and margin little-endian float32, one byte per easy flag.
 * Format 2: those four binary16, one bit per easy flag (bit i % 8 of byte
 * i / 8). Both: one byte per predicted class, DB_PRED_NONE when not
 * recorded. */
enum { REC_FORMAT_F32 = 1, REC_FORMAT_HALF = 2 };

/* Decoding whole columns of an epoch_records row (db_epochs.c); fmt must
 * be REC_FORMAT_F32 or REC_FORMAT_HALF. db_rec_bytes: the bytes column c
 * (REC_*) of n samples takes. db_rec_floats_unpack: n values of loss,
 * prob, weight or margin from src (db_rec_bytes of them) into dst (n).
 * db_rec_easy_unpack: n easy flags from src into dst (n), 0 or 1 each. */
int64_t db_rec_bytes(int fmt, int c, int64_t n);
void db_rec_floats_unpack(int fmt, const uint8_t *src, int n, float *dst);
void db_rec_easy_unpack(int fmt, const uint8_t *src, int n, uint8_t *dst);

/* The "state" events storage writes beside each change of a job's state,
 * in the caller's transaction (db_events.c). db_event_state: one about
 * job, data {"state", "error" (null when NULL)} and "reason" when reason
 * is not NULL. db_event_state_running: one about every job still running,
 * as it moves to state with error; call it before the update. Errors as
 * db_event_append. */
int db_event_state(db_t *db, int64_t job, const char *state,
                   const char *error, const char *reason, char *err,
                   size_t errlen);
int db_event_state_running(db_t *db, const char *state, const char *error,
                           char *err, size_t errlen);

#endif
