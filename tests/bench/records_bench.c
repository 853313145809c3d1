/* SPDX-License-Identifier: MIT */
/* make bench: what per-sample epoch records cost. Fills a scratch database
 * under /tmp (about 250 MB, removed at the end) with JOBS jobs of SAMPLES
 * training samples, each STAGES stages of EPOCHS epochs, through
 * storage's own API, and prints the time to store one epoch, the bytes on
 * disk per sample-epoch (the file's growth over the epochs alone) and the
 * median time to read one random sample's whole history, each beside its
 * target. */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../storage/db.h"

#define JOBS 5
#define SAMPLES 60000
#define STAGES 3
#define EPOCHS 30
#define READS 1000

static const char *const stage_names[STAGES] = {"spl", "teacher", "student"};

/* One epoch's records and the job's samples, refilled per epoch. */
typedef struct {
  int32_t index[SAMPLES], pos[SAMPLES];
  uint8_t split[SAMPLES], observed[SAMPLES], clean[SAMPLES];
  float loss[SAMPLES], prob[SAMPLES], weight[SAMPLES], margin[SAMPLES];
  uint8_t easy[SAMPLES], pred[SAMPLES];
} bench_data_t;

/* What one run measured. */
typedef struct {
  double write_s[JOBS * STAGES * EPOCHS];
  int writes;
  double read_s[READS];
  long long bytes_before, bytes_after;
  long long dbstat_bytes; /* epoch_records pages, -1 without dbstat */
} bench_result_t;

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A uniform draw in [0, 1) from a 64-bit xorshift state. */
static double uniform(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (double)(*s >> 11) * 0x1.0p-53;
}

/* Removes the database file and the files SQLite keeps beside it. */
static void files_remove(const char *path) {
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  char name[96];

  for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(name, sizeof name, "%s%s", path, suffix[i]);
    unlink(name);
  }
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "records_bench: %s: %s\n", what, err);
  exit(1);
}

/* Every sample trains, at the position of its index. */
static void samples_fill(bench_data_t *d) {
  for (int i = 0; i < SAMPLES; i++) {
    d->index[i] = d->pos[i] = i;
    d->split[i] = DB_SPLIT_TRAIN;
    d->observed[i] = (uint8_t)(i % 10);
    d->clean[i] = (uint8_t)((i * 7) % 10);
  }
}

/* Values in the ranges a training run produces. */
static void records_fill(bench_data_t *d, uint64_t *rng) {
  for (int i = 0; i < SAMPLES; i++) {
    d->loss[i] = (float)(8.0 * uniform(rng) * uniform(rng));
    d->prob[i] = (float)uniform(rng);
    d->weight[i] = uniform(rng) < 0.7 ? 1.0f : 0.0f;
    d->margin[i] = (float)(20.0 * uniform(rng) - 10.0);
    d->easy[i] = d->weight[i] != 0.0f;
    d->pred[i] = (uint8_t)(uniform(rng) * 10.0);
  }
}

/* The database file's size once the WAL has been folded into it. */
static long long file_size_checkpointed(const char *path) {
  sqlite3 *conn = NULL;
  struct stat st;

  if (sqlite3_open(path, &conn) != SQLITE_OK ||
      sqlite3_exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) !=
          SQLITE_OK)
    die(path, sqlite3_errmsg(conn));
  sqlite3_close(conn);
  if (stat(path, &st) != 0)
    die(path, strerror(errno));
  return (long long)st.st_size;
}

/* Bytes of the pages epoch_records occupies, or -1 when this SQLite has
 * no dbstat table. */
static long long dbstat_bytes(const char *path) {
  sqlite3 *conn = NULL;
  sqlite3_stmt *st = NULL;
  long long v = -1;

  if (sqlite3_open(path, &conn) != SQLITE_OK)
    die(path, sqlite3_errmsg(conn));
  if (sqlite3_prepare_v2(conn,
                         "SELECT sum(pgsize) FROM dbstat "
                         "WHERE name = 'epoch_records'",
                         -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return v;
}

static void jobs_create(db_t *db, bench_data_t *d, int64_t *jobs) {
  db_split_t split = {SAMPLES, d->index,    d->split,
                      d->pos,  d->observed, d->clean};
  char err[256];

  samples_fill(d);
  for (int j = 0; j < JOBS; j++) {
    if (db_job_insert_running(db, "bench", "{}", &jobs[j], err, sizeof err) ||
        db_split_insert(db, jobs[j], &split, err, sizeof err))
      die("create job", err);
  }
}

/* Stores every epoch of every job, timing each. */
static void epochs_write(db_t *db, bench_data_t *d, const int64_t *jobs,
                         bench_result_t *res) {
  db_records_t rec = {SAMPLES, d->loss,   d->prob, d->weight,
                      d->easy, d->margin, d->pred};
  uint64_t rng = 0x9e3779b97f4a7c15u;
  char err[256];
  double t0;

  for (int j = 0; j < JOBS; j++)
    for (int s = 0; s < STAGES; s++)
      for (int e = 1; e <= EPOCHS; e++) {
        db_metrics_t m = {.epoch = e, .easy_size = SAMPLES / 2};
        snprintf(m.stage, sizeof m.stage, "%s", stage_names[s]);
        records_fill(d, &rng);
        t0 = now_s();
        if (db_epoch_insert(db, jobs[j], &m, &rec, err, sizeof err))
          die("store epoch", err);
        res->write_s[res->writes++] = now_s() - t0;
      }
}

/* Reads READS random samples of random jobs, timing each. */
static void samples_read(db_t *db, const int64_t *jobs, bench_result_t *res) {
  uint64_t rng = 0x2545f4914f6cdd1du;
  char err[256];
  db_sample_t s;
  double t0;

  for (int i = 0; i < READS; i++) {
    int64_t job = jobs[(int)(uniform(&rng) * JOBS)];
    int32_t index = (int32_t)(uniform(&rng) * SAMPLES);
    t0 = now_s();
    if (db_sample_get(db, job, index, &s, err, sizeof err))
      die("read sample", err);
    res->read_s[i] = now_s() - t0;
    if (s.n_epochs != STAGES * EPOCHS)
      die("read sample", "wrong number of epochs");
    db_sample_deinit(&s);
  }
}

static int double_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* The median of n values; sorts them. */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, double_cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void report(bench_result_t *res) {
  double sample_epochs = (double)JOBS * STAGES * EPOCHS * SAMPLES;
  double per = (double)(res->bytes_after - res->bytes_before) / sample_epochs;
  double write_median = median(res->write_s, res->writes);

  /* median() sorted the times: the last is the slowest. */
  printf("%d jobs x %d stages x %d epochs x %d samples\n", JOBS, STAGES, EPOCHS,
         SAMPLES);
  printf("store one epoch of %d records: median %.1f ms, max %.1f ms "
         "(target <= 30 ms)\n",
         SAMPLES, 1e3 * write_median, 1e3 * res->write_s[res->writes - 1]);
  printf("disk per sample-epoch: %.3f bytes from the file's growth "
         "(target <= 16)\n",
         per);
  if (res->dbstat_bytes >= 0)
    printf("disk per sample-epoch: %.3f bytes in epoch_records' pages "
           "(dbstat)\n",
           (double)res->dbstat_bytes / sample_epochs);
  printf("read one sample's %d epochs: median %.3f ms of %d random "
         "samples (target <= 1 ms)\n",
         STAGES * EPOCHS, 1e3 * median(res->read_s, READS), READS);
}

int main(void) {
  char path[] = "/tmp/spk-records-bench-XXXXXX";
  bench_data_t *d = malloc(sizeof *d);
  bench_result_t *res = calloc(1, sizeof *res);
  int64_t jobs[JOBS];
  char err[256];
  db_t *db = NULL;
  int fd;

  if (!d || !res)
    die("memory", "out of memory");
  fd = mkstemp(path);
  if (fd < 0)
    die(path, strerror(errno));
  close(fd);
  if (db_open(path, &db, err, sizeof err))
    die(path, err);

  jobs_create(db, d, jobs);
  res->bytes_before = file_size_checkpointed(path);
  epochs_write(db, d, jobs, res);
  res->bytes_after = file_size_checkpointed(path);
  res->dbstat_bytes = dbstat_bytes(path);
  samples_read(db, jobs, res);
  report(res);

  db_close(db);
  files_remove(path);
  free(d);
  free(res);
  return 0;
}
