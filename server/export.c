/* SPDX-License-Identifier: MIT */
/* `spkd export`: parses its options, opens an existing database, and
 * writes one job's per-epoch records (JSON Lines) or its stages' dynamics
 * summary (CSV) to a buffered stdout, one records row in memory at a time,
 * all read in one snapshot. What is stored and how is storage/'s. */
#include "export.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/db.h"

/* Room for one output line: a JSON line is under 300 bytes. */
#define LINE_MAX_BYTES 512

/* Bytes of stdout's buffer. */
#define OUT_BUFFER (1 << 16)

typedef struct {
  const char *db_path;
  long long job; /* 0 until given */
  int csv;       /* 1: --format csv */
} export_opts_t;

/* What every writer needs: the job, its training samples in ascending
 * index order, whether it injected label noise, the output stream and
 * the caller's error buffer. */
typedef struct {
  db_t *db;
  int64_t job;
  const db_train_sample_t *samples;
  int n;
  int noisy; /* 1: some sample's observed label differs from its clean */
  FILE *out;
  int write_errno; /* errno of the failed write, 0 while none failed */
  char *err;
  size_t errlen;
} export_t;

static void usage(FILE *f) {
  fprintf(f, "usage: spkd export --db FILE --job ID [--format jsonl|csv]\n"
             "  --db      the database the job is in (must exist)\n"
             "  --job     the job's id\n"
             "  --format  jsonl (default): one JSON object per sample, stage\n"
             "            and epoch; csv: one row per stage and sample with\n"
             "            the stage's training dynamics\n"
             "Writes to standard output. Exit code 0 when done (also when\n"
             "the reader closes the pipe early), 1 for a runtime error, 2 for\n"
             "bad options.\n");
}

/* ---- Options. ---- */

static int parse_job(const char *v, export_opts_t *o) {
  char *end;
  long long id;

  errno = 0;
  id = strtoll(v, &end, 10);
  if (errno || end == v || *end || id < 1) {
    fprintf(stderr,
            "spkd export: --job must be a positive integer, "
            "not '%s'\n",
            v);
    return -1;
  }
  o->job = id;
  return 0;
}

/* Applies one "--flag value" pair; -1 with a message on a bad one. */
static int parse_flag(const char *flag, const char *v, export_opts_t *o) {
  if (strcmp(flag, "--db") == 0 && *v) {
    o->db_path = v;
    return 0;
  }
  if (strcmp(flag, "--job") == 0)
    return parse_job(v, o);
  if (strcmp(flag, "--format") == 0 &&
      (strcmp(v, "jsonl") == 0 || strcmp(v, "csv") == 0)) {
    o->csv = strcmp(v, "csv") == 0;
    return 0;
  }
  if (strcmp(flag, "--format") == 0)
    fprintf(stderr, "spkd export: --format must be jsonl or csv, not '%s'\n",
            v);
  else
    fprintf(stderr, "spkd export: --db needs a file name\n");
  return -1;
}

/* 0 to go on, 1 after --help, -1 with a message on a bad command line. */
static int parse_args(int argc, char **argv, export_opts_t *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 1;
    }
    if (strcmp(a, "--db") && strcmp(a, "--job") && strcmp(a, "--format")) {
      fprintf(stderr,
              "spkd export: unknown option '%s' "
              "(see spkd export --help)\n",
              a);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "spkd export: %s needs a value\n", a);
      return -1;
    }
    if (parse_flag(a, argv[++i], o) < 0)
      return -1;
  }
  if (!o->db_path || !o->job) {
    fprintf(stderr, "spkd export: %s is required (see spkd export --help)\n",
            !o->db_path ? "--db FILE" : "--job ID");
    return -1;
  }
  return 0;
}

/* ---- Writing. ---- */

/* Writes len bytes of line; on failure remembers errno and returns
 * -EPIPE or -EIO (the caller reports it, EPIPE quietly). */
static int out_write(export_t *x, const char *line, int len) {
  if (len < 0 || len >= LINE_MAX_BYTES) {
    snprintf(x->err, x->errlen, "an output line is too long");
    return -EIO;
  }
  errno = 0;
  if (fwrite(line, 1, (size_t)len, x->out) == (size_t)len)
    return 0;
  x->write_errno = errno ? errno : EIO;
  return x->write_errno == EPIPE ? -EPIPE : -EIO;
}

/* v as the shortest decimal that reads back as the same float, or none
 * (e.g. "null") when v is not finite. */
static void num_format(char *buf, size_t len, float v, const char *none) {
  if (!isfinite(v)) {
    snprintf(buf, len, "%s", none);
    return;
  }
  for (int digits = 6; digits <= 9; digits++) {
    snprintf(buf, len, "%.*g", digits, (double)v);
    if (strtof(buf, NULL) == v)
      return;
  }
}

/* Checks that every sample's position fits arrays of n values, n being
 * the number of training samples, so rows of that length can be read. */
static int samples_check(const export_t *x) {
  for (int i = 0; i < x->n; i++)
    if (x->samples[i].pos < 0 || x->samples[i].pos >= x->n) {
      snprintf(x->err, x->errlen,
               "training sample %d has position %d, not "
               "below %d",
               (int)x->samples[i].index, x->samples[i].pos, x->n);
      return -EIO;
    }
  return 0;
}

/* -EIO when an array of n values read for what does not cover the job's
 * training samples. */
static int length_check(const export_t *x, int n, const char *what) {
  if (n == x->n)
    return 0;
  snprintf(x->err, x->errlen, "%s holds %d values for %d training samples",
           what, n, x->n);
  return -EIO;
}

/* ---- JSON Lines: one line per sample, stage and epoch. ---- */

static int jsonl_line(export_t *x, const db_epoch_key_t *k,
                      const db_epoch_records_t *rec,
                      const db_train_sample_t *s) {
  char line[LINE_MAX_BYTES], num[4][32], pred[8], clean[32] = "";
  int p = s->pos, len;

  num_format(num[0], sizeof num[0], rec->prob[p], "null");
  num_format(num[1], sizeof num[1], rec->loss[p], "null");
  num_format(num[2], sizeof num[2], rec->margin[p], "null");
  num_format(num[3], sizeof num[3], rec->weight[p], "null");
  if (rec->pred[p] == DB_PRED_NONE)
    snprintf(pred, sizeof pred, "null");
  else
    snprintf(pred, sizeof pred, "%d", rec->pred[p]);
  if (x->noisy)
    snprintf(clean, sizeof clean, ",\"clean_label\":%d", s->clean);
  len = snprintf(line, sizeof line,
                 "{\"index\":%d,\"stage\":\"%s\",\"epoch\":%d,\"label\":%d%s,"
                 "\"p_label\":%s,\"loss\":%s,\"margin\":%s,\"predicted\":%s,"
                 "\"weight\":%s,\"easy\":%s}\n",
                 (int)s->index, k->stage, k->epoch, s->observed, clean, num[0],
                 num[1], num[2], pred, num[3], rec->easy[p] ? "true" : "false");
  return out_write(x, line, len);
}

/* Writes the lines of one (stage, epoch), reading its records row. */
static int jsonl_epoch(export_t *x, const db_epoch_key_t *k) {
  db_epoch_records_t rec;
  char what[64];
  int r;

  r = db_epoch_records_read(x->db, x->job, k->stage, k->epoch, &rec, x->err,
                            x->errlen);
  if (r)
    return r;
  snprintf(what, sizeof what, "stage %s epoch %d", k->stage, k->epoch);
  r = length_check(x, rec.n, what);
  for (int i = 0; !r && i < x->n; i++)
    r = jsonl_line(x, k, &rec, &x->samples[i]);
  db_epoch_records_deinit(&rec);
  return r;
}

static int jsonl_write(export_t *x) {
  db_epoch_key_t *keys = NULL;
  int count = 0, r;

  r = db_epoch_keys_list(x->db, x->job, &keys, &count, x->err, x->errlen);
  for (int i = 0; !r && i < count; i++)
    r = jsonl_epoch(x, &keys[i]);
  free(keys);
  return r;
}

/* ---- CSV: one row per finished stage and sample. ---- */

#define CSV_HEADER                                                             \
  "stage,index,label,clean_label,confidence,variability,correctness,"          \
  "forgetting,aum\n"

static int csv_line(export_t *x, const char *stage,
                    const db_stage_dynamics_t *d, const db_train_sample_t *s) {
  char line[LINE_MAX_BYTES], num[4][32], clean[16] = "";
  int p = s->pos, len;

  num_format(num[0], sizeof num[0], d->confidence[p], "");
  num_format(num[1], sizeof num[1], d->variability[p], "");
  num_format(num[2], sizeof num[2], d->correctness[p], "");
  num_format(num[3], sizeof num[3], d->aum[p], "");
  if (x->noisy)
    snprintf(clean, sizeof clean, "%d", s->clean);
  len = snprintf(line, sizeof line, "%s,%d,%d,%s,%s,%s,%s,%d,%s\n", stage,
                 (int)s->index, s->observed, clean, num[0], num[1], num[2],
                 (int)d->forgetting[p], num[3]);
  return out_write(x, line, len);
}

static int csv_stage(export_t *x, const char *stage) {
  db_stage_dynamics_t d;
  char what[48];
  int r;

  r = db_stage_dynamics_read(x->db, x->job, stage, &d, x->err, x->errlen);
  if (r)
    return r;
  snprintf(what, sizeof what, "dynamics of stage %s", stage);
  r = length_check(x, d.n, what);
  for (int i = 0; !r && i < x->n; i++)
    r = csv_line(x, stage, &d, &x->samples[i]);
  db_stage_dynamics_deinit(&d);
  return r;
}

static int csv_write(export_t *x) {
  db_stage_name_t *stages = NULL;
  int count = 0, r;

  r = db_dynamics_stages_list(x->db, x->job, &stages, &count, x->err,
                              x->errlen);
  if (!r)
    r = out_write(x, CSV_HEADER, (int)strlen(CSV_HEADER));
  for (int i = 0; !r && i < count; i++)
    r = csv_stage(x, stages[i].name);
  free(stages);
  return r;
}

/* ---- The export. ---- */

/* 1 when some training sample's observed label differs from its clean
 * one: the job injected label noise. */
static int samples_noisy(const db_train_sample_t *s, int n) {
  for (int i = 0; i < n; i++)
    if (s[i].observed != s[i].clean)
      return 1;
  return 0;
}

/* Reads the job and its samples, then writes the chosen format, all in
 * one snapshot of the database. */
static int export_job(export_t *x, const export_opts_t *o) {
  db_train_sample_t *samples = NULL;
  db_job_t job;
  int r;

  r = db_snapshot_begin(x->db, x->err, x->errlen);
  if (r)
    return r;
  r = db_job_get(x->db, x->job, &job, x->err, x->errlen);
  if (r == -ENOENT)
    snprintf(x->err, x->errlen, "job %lld not found in %s", o->job, o->db_path);
  if (!r) {
    db_job_deinit(&job);
    r = db_train_samples_list(x->db, x->job, &samples, &x->n, x->err,
                              x->errlen);
  }
  x->samples = samples;
  x->noisy = samples_noisy(samples, x->n);
  if (!r)
    r = samples_check(x);
  if (!r)
    r = o->csv ? csv_write(x) : jsonl_write(x);
  free(samples);
  db_snapshot_end(x->db);
  return r;
}

/* Opens the database, exports, and flushes stdout; the exit code. */
static int export_run(const export_opts_t *o) {
  char err[512] = "";
  export_t x = {.job = o->job, .out = stdout, .err = err, .errlen = sizeof err};
  int r, failed;

  r = db_open_existing(o->db_path, &x.db, err, sizeof err);
  if (!r)
    r = export_job(&x, o);
  db_close(x.db);

  /* A failure other than a write's is reported first, whatever flushing
   * the lines before it finds. */
  failed = r != 0 && !x.write_errno;
  errno = 0;
  if (fflush(x.out) != 0 && !x.write_errno)
    x.write_errno = errno ? errno : EIO;
  if (failed) {
    fprintf(stderr, "spkd export: %s\n", err);
    return 1;
  }
  if (x.write_errno == EPIPE)
    return 0; /* the reader has all it wanted */
  if (x.write_errno) {
    fprintf(stderr, "spkd export: writing the export: %s\n",
            strerror(x.write_errno));
    return 1;
  }
  return 0;
}

int export_main(int argc, char **argv) {
  export_opts_t o = {NULL, 0, 0};
  int r = parse_args(argc, argv, &o);

  if (r != 0)
    return r > 0 ? 0 : 2;

  /* A reader that stops early (head) makes writes fail with EPIPE
   * instead of killing the process. */
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOFBF, OUT_BUFFER);
  return export_run(&o);
}
