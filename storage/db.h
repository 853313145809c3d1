/* SPDX-License-Identifier: MIT */
/* The only code that calls sqlite3. One database file in WAL mode holds
 * jobs, per-epoch metrics, per-epoch per-sample records (packed arrays, one
 * row per job, stage and epoch) and each job's samples with their noise
 * truth. A db_t is one connection: a thread opens its own and never shares
 * it. Functions return 0 or a negative errno code and write a message into
 * the caller's err buffer; storage never prints. */
#ifndef SPK_STORAGE_DB_H
#define SPK_STORAGE_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;

/* Opens (creating if needed) the database at path, switches it to WAL,
 * sets a busy timeout and applies every migration not yet recorded in it.
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

/* The oldest queued job's id in *id, or 0 when none is queued. */
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

/* Marks every running job failed with the given error; *count says how
 * many (may be NULL). */
int db_jobs_fail_running(db_t *db, const char *error, int *count,
                         char *err, size_t errlen);

/* Stores which samples a job uses, once, before its first epoch: n rows of
 * the training file with index[i], split[i] (DB_SPLIT_*), the observed
 * label and the clean label. pos[i] is the sample's position in the
 * per-epoch record arrays (training samples) or -1. */
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

/* The per-sample records of one epoch: n values each, in position order. */
typedef struct {
  int n;
  const float *loss;
  const float *prob;
  const float *weight;
  const uint8_t *easy;
  const float *margin; /* may be NULL: not recorded (reads back NaN) */
  const uint8_t *pred; /* may be NULL: not recorded (reads back -1) */
} db_records_t;

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

/* One sample of a job: its split, labels and records in every epoch. */
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

#endif
