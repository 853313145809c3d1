/* SPDX-License-Identifier: MIT */
/* The only code that calls sqlite3. One database file in WAL mode holds
 * jobs, per-epoch metrics, per-epoch per-sample records (packed arrays, one
 * row per job, stage and epoch), each job's samples with their noise
 * truth, its stages' model checkpoints and a log of events. A db_t is one
 * connection: a thread opens its own and never shares it. Functions
 * return 0 or a negative errno code and write a message into the caller's
 * err buffer; storage never prints. */
#ifndef SPK_STORAGE_DB_H
#define SPK_STORAGE_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;

/* Opens (creating if needed) the database at path, switches it to WAL,
 * sets a busy timeout and applies every migration not yet recorded in it.
 * A new file starts in auto_vacuum = INCREMENTAL mode, so deleted jobs
 * give their space back; an older file is rewritten (VACUUM) into that
 * mode the first time a connection opens it while no other connection
 * has it open, costing time and temporary room in proportion to its
 * size, once. Until then it keeps working, only without shrinking.
 * On success *out is a connection the caller closes with db_close. Errors:
 * -EIO (cannot open, not a database, migration failed). */
int db_open(const char *path, db_t **out, char *err, size_t errlen);

/* Closes a connection; accepts NULL. */
void db_close(db_t *db);

/* The schema version the database is at (number of the last migration). */
int db_schema_version(db_t *db);

/* A job as stored. Strings are heap copies owned by the struct, freed by
 * db_job_deinit; absent values are NULL (strings), 0 (times) or -1
 * (epoch). Times are seconds since the Unix epoch. */
typedef struct {
  int64_t id;
  char *name;
  char *state; /* queued, running, succeeded, failed, cancelled */
  char *spec_json;
  double created_at, started_at, finished_at;
  char *error;
  char *provenance_json;
  char *stage; /* stage running now or last run, NULL before the first */
  int epoch;   /* last completed epoch of that stage, 0 before the first */
  /* 0 unless set; what it means is the scheduler's call. */
  int priority;
  /* A free label, NULL when not set. */
  char *owner;
} db_job_t;

void db_job_deinit(db_job_t *job);

/* Frees an array of n jobs from db_job_list; accepts NULL. */
void db_jobs_free(db_job_t *jobs, int n);

/* Stores a new queued job with its spec as submitted. */
int db_job_insert(db_t *db, const char *name, const char *spec_json,
                  int64_t *id_out, char *err, size_t errlen);

/* Stores a new job already running (started now), for a process that
 * runs it itself: no daemon sharing the database can claim it. */
int db_job_insert_running(db_t *db, const char *name, const char *spec_json,
                          int64_t *id_out, char *err, size_t errlen);

/* Reads one job. -ENOENT when there is no such job. */
int db_job_get(db_t *db, int64_t id, db_job_t *out, char *err,
               size_t errlen);

/* Lists up to limit jobs, newest (highest id) first, with id < before
 * (before <= 0: from the newest). *out is a heap array of *count jobs. */
int db_job_list(db_t *db, int64_t before, int limit, db_job_t **out,
                int *count, char *err, size_t errlen);

/* Which jobs db_job_find lists: those in state (NULL: any state) with id
 * < before (before <= 0: from the newest), newest first, at most limit.
 * To page, pass the last id of a page as the next page's before. */
typedef struct {
  const char *state;
  int64_t before;
  int limit;
} db_job_filter_t;

/* Lists the jobs filter selects; *out is a heap array of *count jobs for
 * db_jobs_free. -EINVAL for an unknown state or a negative limit. */
int db_job_find(db_t *db, const db_job_filter_t *filter, db_job_t **out,
                int *count, char *err, size_t errlen);

/* Records a job's priority and owner label (owner may be NULL: none).
 * -ENOENT when there is no such job. */
int db_job_label_set(db_t *db, int64_t id, int priority, const char *owner,
                     char *err, size_t errlen);

/* Deletes a finished job (succeeded, failed or cancelled) with every row
 * about it: samples, metrics, records, dynamics, checkpoints, events.
 * The pages freed go back to the file system before it returns. -EBUSY
 * when the job is queued or running, -ENOENT when there is no such job.
 * Job ids are never handed out again. */
int db_job_delete(db_t *db, int64_t id, char *err, size_t errlen);

/* The queued job to start next in *id, or 0 when none is queued: the
 * highest priority first, the oldest (lowest id) of a priority first. */
int db_job_next_queued(db_t *db, int64_t *id, char *err, size_t errlen);

/* Moves a queued job to running, recording started_at and provenance
 * (which may be NULL and set later with db_job_provenance_set).
 * -EBUSY when the job is no longer queued (cancelled meanwhile). */
int db_job_start(db_t *db, int64_t id, const char *provenance_json,
                 char *err, size_t errlen);

/* Records a running job's provenance (a JSON object as text). */
int db_job_provenance_set(db_t *db, int64_t id, const char *provenance_json,
                          char *err, size_t errlen);

/* Records the stage a running job is in and its last completed epoch. */
int db_job_progress(db_t *db, int64_t id, const char *stage, int epoch,
                    char *err, size_t errlen);

/* Ends a job: state is succeeded, failed or cancelled; error may be NULL.
 * Records finished_at. */
int db_job_finish(db_t *db, int64_t id, const char *state,
                  const char *error, char *err, size_t errlen);

/* Cancels a job only if it is still queued: -EBUSY when it is not,
 * -ENOENT when there is no such job. */
int db_job_cancel_queued(db_t *db, int64_t id, char *err, size_t errlen);

/* Puts a running job back in the queue (a job whose process died, to be
 * resumed). -EBUSY when it is not running. */
int db_job_requeue(db_t *db, int64_t id, char *err, size_t errlen);

/* The ids of the running jobs, oldest first, in a heap array *ids of
 * *count that the caller frees. */
int db_jobs_running(db_t *db, int64_t **ids, int *count, char *err,
                    size_t errlen);

/* Marks every running job failed with the given error; *count says how
 * many (may be NULL). */
int db_jobs_fail_running(db_t *db, const char *error, int *count,
                         char *err, size_t errlen);

/* How many jobs are in each state (db_stats.c). */
typedef struct {
  int64_t queued, running, succeeded, failed, cancelled;
} db_job_counts_t;

/* Counts the jobs by state into *out in one query. */
int db_job_count_by_state(db_t *db, db_job_counts_t *out, char *err,
                          size_t errlen);

/* Stores which samples a job uses, once, before its first epoch: n rows of
 * the training file with index[i], split[i] (DB_SPLIT_*), the observed
 * label and the clean label. pos[i] is the sample's position in the
 * per-epoch record arrays (training samples) or -1. A job that already
 * has a split of n samples (a resumed job) keeps it: 0, nothing written;
 * one of another size gives -EEXIST. */
enum { DB_SPLIT_TRAIN = 0, DB_SPLIT_VAL = 1 };
typedef struct {
  int n;
  const int32_t *index;
  const uint8_t *split;
  const int32_t *pos;
  const uint8_t *observed;
  const uint8_t *clean;
} db_split_t;

int db_split_insert(db_t *db, int64_t job, const db_split_t *split,
                    char *err, size_t errlen);

/* One stage's metrics for one epoch. Stages are named spl, teacher (a
 * job's only teacher), teacher0 to teacher7 (one per teacher of a job
 * with several), student and baseline; storage refuses any other name. */
typedef struct {
  char stage[16];
  int epoch;
  double train_loss, train_acc, val_acc, test_acc;
  int easy_size;
  double easy_fraction;
  double lr, seconds, samples_per_s;
  double noise_precision, noise_recall, noise_auroc; /* NaN: no noise */
} db_metrics_t;

/* The per-sample records of one epoch: n values each, in position order.
 * Loss, prob, weight and margin are stored in IEEE half precision
 * (binary16, rounded to nearest even) and read back as the float
 * db_half_round gives: within a relative error of 2^-11 for
 * |x| >= 2^-14 (the normal range) and an absolute error of 2^-25 below,
 * so a probability under 2^-14 (about 6e-5) keeps few significant bits.
 * Values beyond +-65504 (the largest half), infinities included, are
 * stored as +-65504, never as infinity; NaN stays NaN. Easy flags are
 * one bit per sample, predicted classes one byte: both exact. Epochs
 * stored before migration 5 keep their float32 values and read back
 * exactly. */
typedef struct {
  int n;
  const float *loss;
  const float *prob;
  const float *weight;
  const uint8_t *easy;
  const float *margin; /* may be NULL: not recorded (reads back NaN) */
  const uint8_t *pred; /* may be NULL: not recorded (reads back -1) */
} db_records_t;

/* The value a record field x reads back as (see db_records_t): x
 * rounded to the nearest half-precision value, clamped to +-65504, NaN
 * kept. Pure; for callers that need to know exactly what is stored. */
float db_half_round(float x);

/* Stores one completed epoch of a stage, its metrics and its per-sample
 * records, in one transaction, and records it as the job's progress. */
int db_epoch_insert(db_t *db, int64_t job, const db_metrics_t *metrics,
                    const db_records_t *records, char *err, size_t errlen);

/* Every stored epoch's metrics of a job, ordered by stage (spl, teacher,
 * teacher0 to teacher7, student, baseline) then epoch; *out is a heap
 * array of *count. */
int db_metrics_list(db_t *db, int64_t job, db_metrics_t **out, int *count,
                    char *err, size_t errlen);

/* The dataset indices of a stage's epoch that are easy (want_easy = 1) or
 * hard (0), ascending, only those > after (after < 0: from the start), at
 * most limit. *out is a heap array of *count. -ENOENT when the job, stage
 * or epoch has no records. */
int db_epoch_set(db_t *db, int64_t job, const char *stage, int epoch,
                 int want_easy, int32_t after, int limit, int32_t **out,
                 int *count, char *err, size_t errlen);

/* The size of that set in *total, counted from the flags alone. Errors as
 * db_epoch_set. */
int db_epoch_set_size(db_t *db, int64_t job, const char *stage, int epoch,
                      int want_easy, int *total, char *err, size_t errlen);

/* One sample of a job: its split, labels and records in every epoch, the
 * floats as precise as db_records_t says. */
typedef struct {
  char stage[16];
  int epoch;
  float loss, prob, weight, margin;
  int easy;
  int pred; /* predicted class, -1 when not recorded */
} db_sample_epoch_t;

/* One sample's training dynamics in one finished stage. */
typedef struct {
  char stage[16];
  float confidence, variability, correctness, aum;
  int forgetting;
} db_sample_dynamics_t;

typedef struct {
  int32_t index;
  int split; /* DB_SPLIT_* */
  int observed, clean;
  int n_epochs;
  db_sample_epoch_t *epochs; /* heap, ordered like db_metrics_list */
  int n_dynamics;
  db_sample_dynamics_t *dynamics; /* heap, one per finished stage */
} db_sample_t;

void db_sample_deinit(db_sample_t *s);

/* A stage's per-sample training dynamics once it has finished, n values
 * each in position order (see pipeline_dynamics_t). */
typedef struct {
  int n;
  const float *confidence;
  const float *variability;
  const float *correctness;
  const int32_t *forgetting;
  const float *aum;
} db_dynamics_t;

/* Stores one stage's dynamics of a job, n equal to its training samples
 * (once per job and stage: a second insert is -EEXIST; -EINVAL for a bad
 * stage or n, -ENOENT for no such job). */
int db_dynamics_insert(db_t *db, int64_t job, const char *stage,
                       const db_dynamics_t *d, char *err, size_t errlen);

/* Reads one sample's history. -ENOENT when the job does not use it. */
int db_sample_get(db_t *db, int64_t job, int32_t index, db_sample_t *out,
                  char *err, size_t errlen);

/* ---- The writer thread (db_writer.c). ---- */

/* A process makes every write through one writer: a thread with its own
 * connection that runs queued calls in batches, one transaction per
 * batch and a savepoint per call, so a failing call is rolled back alone
 * and many small writes cost one commit. Readers keep their own
 * connections; in WAL mode they never block the writer. */
typedef struct db_writer db_writer_t;

/* A write to run on the writer's connection: the storage calls it makes
 * (db_epoch_insert, db_job_finish, ...) become part of the batch. */
typedef int (*db_write_fn)(db_t *db, void *ctx, char *err, size_t errlen);

/* Opens path (as db_open) for a new writer thread. *out is freed with
 * db_writer_free, which runs what is queued first. */
int db_writer_new(const char *path, db_writer_t **out, char *err,
                  size_t errlen);

void db_writer_free(db_writer_t *w);

/* Runs fn(db, ctx) on the writer thread and waits until its batch has
 * committed. Returns fn's result, or the error that lost the batch (a
 * full disk: -ENOSPC), with err set; -ESHUTDOWN once the writer stops. */
int db_writer_call(db_writer_t *w, db_write_fn fn, void *ctx, char *err,
                   size_t errlen);

/* Called on the writer thread after each batch that committed, before
 * its callers are woken; it must be quick and must not call the writer. */
typedef void (*db_commit_fn)(void *ctx);

/* Thread-safe: sets the hook every later commit calls (fn NULL: none),
 * replacing the one set before. A batch that failed as a whole (nothing
 * committed) calls nothing. */
void db_writer_on_commit(db_writer_t *w, db_commit_fn fn, void *ctx);

/* ---- Checkpoints (db_checkpoints.c). ---- */

/* One stored checkpoint of a job's stage: kind "latest" is the newest
 * epoch's (replaced as training goes on), "final" the finished stage's.
 * sha256 is a SHA-256 the caller chose to record as 64 lowercase hex
 * digits, or "" when none; storage keeps it, never computes it (spkd
 * records the hash of a finished stage's weights). */
typedef struct {
  char stage[16];
  char kind[8];
  int epoch;
  size_t size; /* bytes of data */
  char sha256[65];
} db_checkpoint_info_t;

/* A checkpoint read back: its description and a heap copy of its bytes,
 * both freed by db_checkpoint_deinit. */
typedef struct {
  db_checkpoint_info_t info;
  uint8_t *data;
} db_checkpoint_t;

void db_checkpoint_deinit(db_checkpoint_t *c);

/* A stage's resume state to store with an epoch: its description (kind
 * "latest" while the stage runs, "final" once it has finished) and bytes. */
typedef struct {
  db_checkpoint_info_t info;
  const void *data;
} db_state_t;

/* db_epoch_insert, and in the same transaction the stage's state (NULL:
 * none): a "final" state replaces the stage's "latest" one. So a job
 * killed at any moment has, for each stage, a state matching its last
 * stored epoch exactly. */
int db_epoch_insert_state(db_t *db, int64_t job, const db_metrics_t *metrics,
                          const db_records_t *records, const db_state_t *state,
                          char *err, size_t errlen);

/* Stores info->size bytes of data as the checkpoint of kind info->kind
 * of stage info->stage of job, replacing one stored before. data is
 * copied. -EINVAL for an unknown stage or kind, a negative epoch, no
 * bytes, or a sha256 that is not 64 hex digits (upper case is stored in
 * lower case); -ENOENT for no such job; -EFBIG beyond SQLite's largest
 * BLOB; -ENOSPC when the disk or database is full. */
int db_checkpoint_put(db_t *db, int64_t job, const db_checkpoint_info_t *info,
                      const void *data, char *err, size_t errlen);

/* Reads the checkpoint of kind ("latest" or "final") of a job's stage
 * into *out, for db_checkpoint_deinit. -ENOENT when the job has no such
 * checkpoint (err says whether the job itself is missing), -EINVAL for
 * an unknown stage or kind. */
int db_checkpoint_get(db_t *db, int64_t job, const char *stage,
                      const char *kind, db_checkpoint_t *out, char *err,
                      size_t errlen);

/* Describes every checkpoint of a job without reading its bytes, in
 * pipeline order of stages, "latest" before "final". *out is a heap
 * array of *count (NULL and 0 when there are none). -ENOENT when there
 * is no such job. */
int db_checkpoint_list(db_t *db, int64_t job, db_checkpoint_info_t **out,
                       int *count, char *err, size_t errlen);

/* ---- Events (db_events.c). ---- */

/* One stored event. seq numbers events in the order they were stored,
 * from 1, never reused; job is 0 for an event about no job. Strings are
 * heap copies freed by db_events_free. */
typedef struct {
  int64_t seq;
  int64_t job;
  double at; /* seconds since the Unix epoch */
  char *kind;
  char *data_json;
} db_event_t;

/* Storage appends two kinds itself, in the transaction of the change
 * they describe, so a reader following the log never misses one:
 * "state", {"state", "error"} and for a requeued job "reason":
 * "resumed", from db_job_insert, db_job_insert_running, db_job_start,
 * db_job_finish, db_job_cancel_queued, db_job_requeue and
 * db_jobs_fail_running; "epoch", the stored metrics ({"stage", "epoch",
 * "train_loss", "train_acc", "val_acc", "test_acc", "easy_fraction",
 * "easy_size", "seconds", "samples_per_s", "noise_precision",
 * "noise_recall", "noise_auroc"}, null where not finite), from
 * db_epoch_insert and db_epoch_insert_state. */

/* Frees an array of n events from db_event_list; accepts NULL. */
void db_events_free(db_event_t *events, int n);

/* Appends an event about job (0: about no job) stamped now; kind is a
 * non-empty name, data_json JSON text (an object, usually). *seq (may be
 * NULL) gets its number. -EINVAL for a negative job, an empty kind or
 * data that is not JSON; -ENOENT for no such job. */
int db_event_append(db_t *db, int64_t job, const char *kind,
                    const char *data_json, int64_t *seq, char *err,
                    size_t errlen);

/* Lists up to limit events numbered above after (after <= 0: from the
 * first) in order: those of job, or every event when job is 0. *out is a
 * heap array of *count for db_events_free. To follow the log, pass the
 * last seq seen as the next after: numbers are handed out in commit
 * order, so none is skipped. -ENOENT when there is no such job, -EINVAL
 * for a negative job or limit. */
int db_event_list(db_t *db, int64_t job, int64_t after, int limit,
                  db_event_t **out, int *count, char *err, size_t errlen);

/* Sets *seq to the number of the last stored event (0 when there is
 * none): a reader that follows the log from now on passes it as its
 * first after. */
int db_event_last(db_t *db, int64_t *seq, char *err, size_t errlen);

/* ---- Idempotency keys (db_idem.c). ---- */

/* The longest idempotency key storage keeps, in bytes. */
#define DB_IDEM_KEY_MAX 255

/* Looks up key, a name a client gave a submission so that it can retry
 * it safely: *job gets the job the key created and sha256 (65 bytes) the
 * hash recorded with it; *job is 0 and sha256 "" when the key is unknown
 * (never used, or its job was deleted, which forgets its keys). -EINVAL
 * for a key that is empty or longer than DB_IDEM_KEY_MAX bytes. */
int db_idem_find(db_t *db, const char *key, int64_t *job, char sha256[65],
                 char *err, size_t errlen);

/* Records that key created job from a body whose SHA-256, as 64
 * lowercase hex digits, is sha256 (the caller computes it; storage only
 * compares text). -EEXIST when the key is recorded already, -ENOENT for
 * no such job, -EINVAL for a bad key (as db_idem_find) or hash. */
int db_idem_insert(db_t *db, const char *key, int64_t job,
                   const char *sha256, char *err, size_t errlen);

/* ---- Queries across samples (db_queries.c). ---- */

/* A training sample whose easy/hard status differs between two epochs. */
typedef struct {
  int32_t index;   /* in the training file, as db_epoch_set gives */
  int became_easy; /* 1: hard in epoch_a, easy in epoch_b; 0: the reverse */
} db_easy_change_t;

/* Which changes db_epoch_changes lists: between epoch_a and epoch_b of
 * stage, samples with index > after (after < 0: from the start),
 * ascending, at most limit. To page, pass the last index of a page as
 * the next page's after. */
typedef struct {
  const char *stage;
  int epoch_a, epoch_b;
  int32_t after;
  int limit;
} db_change_query_t;

/* Lists the samples whose easy flag differs between two epochs of a
 * stage. *out is a heap array of *count. Errors as db_epoch_set for
 * either epoch (-ENOENT for a missing job, stage or epoch), -EINVAL for
 * a negative limit. */
int db_epoch_changes(db_t *db, int64_t job, const db_change_query_t *q,
                     db_easy_change_t **out, int *count, char *err,
                     size_t errlen);

/* The statistics of a stage's training dynamics, to sort by. */
typedef enum {
  DB_DYN_CONFIDENCE,
  DB_DYN_VARIABILITY,
  DB_DYN_CORRECTNESS,
  DB_DYN_FORGETTING,
  DB_DYN_AUM
} db_dyn_stat_t;

/* The statistic called name ("confidence", "variability",
 * "correctness", "forgetting", "aum"), or -EINVAL. */
int db_dyn_stat_parse(const char *name);

/* Which rows db_dynamics_list gives: the training samples of stage
 * sorted by stat, ascending or descending, NaN last either way, ties by
 * ascending index; limit rows from offset. */
typedef struct {
  const char *stage;
  db_dyn_stat_t stat;
  int descending;
  int offset, limit;
} db_dynamics_query_t;

/* One training sample's dynamics with its labels. */
typedef struct {
  int32_t index; /* in the training file */
  int observed, clean;
  float confidence, variability, correctness, aum;
  int forgetting;
} db_dynamics_row_t;

/* A page of rows: count of them in a heap array, out of total training
 * samples. Freed by db_dynamics_page_deinit. */
typedef struct {
  db_dynamics_row_t *rows;
  int count, total;
} db_dynamics_page_t;

void db_dynamics_page_deinit(db_dynamics_page_t *page);

/* Reads one page of a stage's dynamics sorted as q says into *page, for
 * db_dynamics_page_deinit. An offset equal to the total gives an empty
 * page; beyond it, -ERANGE. -EINVAL for an unknown statistic or a
 * negative offset or limit; -ENOENT for an unknown stage, or when the
 * job or its dynamics of that stage are missing; -EIO when the stored
 * arrays and the job's samples disagree. */
int db_dynamics_list(db_t *db, int64_t job, const db_dynamics_query_t *q,
                     db_dynamics_page_t *page, char *err, size_t errlen);

/* ---- Exporting a job (db_export.c). ---- */

/* As db_open, for a database that must already exist: never creates
 * one. -ENOENT when path does not exist, -EINVAL when it is not a
 * regular file or not an SQLite database (an empty file included), -EIO
 * as db_open (unreadable, corrupt, a newer schema). */
int db_open_existing(const char *path, db_t **out, char *err, size_t errlen);

/* Starts a read transaction: every read until db_snapshot_end sees the
 * database as it was at the first of them, whatever other connections
 * write meanwhile (they are not blocked). db_snapshot_end ends it;
 * calling it without a snapshot open does nothing. */
int db_snapshot_begin(db_t *db, char *err, size_t errlen);
void db_snapshot_end(db_t *db);

/* One training sample of a job: its index in the training file, its
 * position in the per-epoch record and dynamics arrays, its observed
 * (possibly noisy) and clean labels. */
typedef struct {
  int32_t index;
  int pos;
  int observed, clean;
} db_train_sample_t;

/* The job's training samples in ascending index order: *out is a heap
 * array of *count for free() (NULL and 0 before the job stored its
 * split). -ENOENT when there is no such job. */
int db_train_samples_list(db_t *db, int64_t job, db_train_sample_t **out,
                          int *count, char *err, size_t errlen);

/* A (stage, epoch) of a job that has per-sample records. */
typedef struct {
  char stage[16];
  int epoch;
} db_epoch_key_t;

/* Every (stage, epoch) with records of the job, in pipeline order of
 * stages (as db_metrics_list) then by epoch: *out is a heap array of
 * *count for free() (NULL and 0 when there are none). -ENOENT when there
 * is no such job. */
int db_epoch_keys_list(db_t *db, int64_t job, db_epoch_key_t **out,
                       int *count, char *err, size_t errlen);

/* The predicted-class byte of a sample whose prediction was not
 * recorded. */
enum { DB_PRED_NONE = 255 };

/* All per-sample records of one epoch, n values each in position order,
 * in heap arrays the struct owns (freed by db_epoch_records_deinit). The
 * floats are as precise as db_records_t says (exact for rows stored
 * before migration 5); margin is NaN and pred DB_PRED_NONE where not
 * recorded; easy is 0 or 1. */
typedef struct {
  int n;
  float *loss, *prob, *weight, *margin;
  uint8_t *easy, *pred;
} db_epoch_records_t;

void db_epoch_records_deinit(db_epoch_records_t *rec);

/* Reads the records of epoch of a job's stage into *out, one row and no
 * more in memory. -ENOENT when the job has no such records (err names
 * what is missing), -EINVAL for an unknown stage, -EIO for a row whose
 * arrays do not have the length its format says. */
int db_epoch_records_read(db_t *db, int64_t job, const char *stage, int epoch,
                          db_epoch_records_t *out, char *err, size_t errlen);

/* A stage's name, as db_metrics_t holds it. */
typedef struct {
  char name[16];
} db_stage_name_t;

/* The stages of a job that stored their training dynamics (the finished
 * ones), in pipeline order: *out is a heap array of *count for free()
 * (NULL and 0 when none). -ENOENT when there is no such job. */
int db_dynamics_stages_list(db_t *db, int64_t job, db_stage_name_t **out,
                            int *count, char *err, size_t errlen);

/* A stage's training dynamics, n values each in position order, in heap
 * arrays the struct owns (freed by db_stage_dynamics_deinit), stored as
 * db_dynamics_insert was given them (float32, exact). */
typedef struct {
  int n;
  float *confidence, *variability, *correctness, *aum;
  int32_t *forgetting;
} db_stage_dynamics_t;

void db_stage_dynamics_deinit(db_stage_dynamics_t *d);

/* Reads the dynamics of a job's stage into *out. -ENOENT when the job or
 * its dynamics of that stage are missing, -EINVAL for an unknown stage,
 * -EIO for arrays shorter or longer than n values. */
int db_stage_dynamics_read(db_t *db, int64_t job, const char *stage,
                           db_stage_dynamics_t *out, char *err,
                           size_t errlen);

#endif
