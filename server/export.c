/* SPDX-License-Identifier: MIT */
/* A job's export as a stream of text and the `spkd export` subcommand
 * around it: per-epoch records (JSON Lines) or the stages' dynamics
 * summary (CSV), produced a line at a time with one records row in
 * memory; the subcommand reads the stream in one snapshot onto a
 * buffered stdout. What is stored and how is storage/'s. */
#include "export.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for one output line: a JSON line is under 300 bytes. */
#define LINE_MAX_BYTES 512

/* Bytes of stdout's buffer, and of each piece read from the stream. */
#define OUT_BUFFER (1 << 16)

#define CSV_HEADER                                                             \
  "stage,index,label,clean_label,confidence,variability,correctness,"          \
  "forgetting,aum\n"

/* The export's parts are the job's records rows (JSON Lines) or its
 * finished stages (CSV), each giving one line per training sample, in
 * ascending index order. The part being written is loaded; its lines are
 * made one at a time into line and handed out from there. */
struct export_stream {
  db_t *db;
  int64_t job;
  export_format_t format;
  db_train_sample_t *samples; /* ascending index */
  int n;
  int noisy; /* 1: some sample's observed label differs from its clean */
  db_epoch_key_t *keys;    /* JSON Lines: the records rows */
  db_stage_name_t *stages; /* CSV: the finished stages */
  int parts, part;         /* how many, which is next */
  int loaded, sample;      /* the part in memory, its next sample */
  int header_done;         /* CSV: the header line is out */
  db_epoch_records_t rec;
  db_stage_dynamics_t dyn;
  char line[LINE_MAX_BYTES];
  int line_len, line_off; /* the line being handed out */
  int failed;             /* the error to report once drained */
  char fail_msg[512];
};

/* ---- Lines. ---- */

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

/* Records the length snprintf gave for the line; -EIO when it did not
 * fit. */
static int line_set(export_stream_t *s, int len, char *err, size_t errlen) {
  if (len < 0 || len >= LINE_MAX_BYTES) {
    snprintf(err, errlen, "an output line is too long");
    return -EIO;
  }
  s->line_len = len;
  s->line_off = 0;
  return 0;
}

static int jsonl_line(export_stream_t *s, const db_train_sample_t *t, char *err,
                      size_t errlen) {
  const db_epoch_key_t *k = &s->keys[s->part];
  const db_epoch_records_t *rec = &s->rec;
  char num[4][32], pred[8], clean[32] = "";
  int p = t->pos;

  num_format(num[0], sizeof num[0], rec->prob[p], "null");
  num_format(num[1], sizeof num[1], rec->loss[p], "null");
  num_format(num[2], sizeof num[2], rec->margin[p], "null");
  num_format(num[3], sizeof num[3], rec->weight[p], "null");
  if (rec->pred[p] == DB_PRED_NONE)
    snprintf(pred, sizeof pred, "null");
  else
    snprintf(pred, sizeof pred, "%d", rec->pred[p]);
  if (s->noisy)
    snprintf(clean, sizeof clean, ",\"clean_label\":%d", t->clean);
  return line_set(
      s,
      snprintf(s->line, sizeof s->line,
               "{\"index\":%d,\"stage\":\"%s\",\"epoch\":%d,\"label\":%d%s,"
               "\"p_label\":%s,\"loss\":%s,\"margin\":%s,\"predicted\":%s,"
               "\"weight\":%s,\"easy\":%s}\n",
               (int)t->index, k->stage, k->epoch, t->observed, clean, num[0],
               num[1], num[2], pred, num[3], rec->easy[p] ? "true" : "false"),
      err, errlen);
}

static int csv_line(export_stream_t *s, const db_train_sample_t *t, char *err,
                    size_t errlen) {
  const db_stage_dynamics_t *d = &s->dyn;
  char num[4][32], clean[16] = "";
  int p = t->pos;

  num_format(num[0], sizeof num[0], d->confidence[p], "");
  num_format(num[1], sizeof num[1], d->variability[p], "");
  num_format(num[2], sizeof num[2], d->correctness[p], "");
  num_format(num[3], sizeof num[3], d->aum[p], "");
  if (s->noisy)
    snprintf(clean, sizeof clean, "%d", t->clean);
  return line_set(
      s,
      snprintf(s->line, sizeof s->line, "%s,%d,%d,%s,%s,%s,%s,%d,%s\n",
               s->stages[s->part].name, (int)t->index, t->observed, clean,
               num[0], num[1], num[2], (int)d->forgetting[p], num[3]),
      err, errlen);
}

/* ---- Parts. ---- */

/* -EIO when an array of n values read for what does not cover the job's
 * training samples. */
static int length_check(const export_stream_t *s, int n, const char *what,
                        char *err, size_t errlen) {
  if (n == s->n)
    return 0;
  snprintf(err, errlen, "%s holds %d values for %d training samples", what, n,
           s->n);
  return -EIO;
}

/* Reads the next part's row: a (stage, epoch)'s records or a stage's
 * dynamics. */
static int part_load(export_stream_t *s, char *err, size_t errlen) {
  char what[64];
  int r, n;

  if (s->format == EXPORT_JSONL) {
    const db_epoch_key_t *k = &s->keys[s->part];
    r = db_epoch_records_read(s->db, s->job, k->stage, k->epoch, &s->rec, err,
                              errlen);
    snprintf(what, sizeof what, "stage %s epoch %d", k->stage, k->epoch);
    n = s->rec.n;
  } else {
    const char *stage = s->stages[s->part].name;
    r = db_stage_dynamics_read(s->db, s->job, stage, &s->dyn, err, errlen);
    snprintf(what, sizeof what, "dynamics of stage %s", stage);
    n = s->dyn.n;
  }
  s->loaded = 1;
  s->sample = 0;
  return r ? r : length_check(s, n, what, err, errlen);
}

static void part_unload(export_stream_t *s) {
  db_epoch_records_deinit(&s->rec);
  db_stage_dynamics_deinit(&s->dyn);
  s->loaded = 0;
}

/* Makes the next line: 1 when there is one, 0 at the end, or a negative
 * code. */
static int line_next(export_stream_t *s, char *err, size_t errlen) {
  int r;

  if (s->format == EXPORT_CSV && !s->header_done) {
    s->header_done = 1;
    memcpy(s->line, CSV_HEADER, sizeof CSV_HEADER - 1);
    s->line_len = (int)sizeof CSV_HEADER - 1;
    s->line_off = 0;
    return 1;
  }
  while (s->part < s->parts) {
    if (!s->loaded && (r = part_load(s, err, errlen)) != 0)
      return r;
    if (s->sample < s->n) {
      const db_train_sample_t *t = &s->samples[s->sample++];
      r = s->format == EXPORT_JSONL ? jsonl_line(s, t, err, errlen)
                                    : csv_line(s, t, err, errlen);
      return r ? r : 1;
    }
    part_unload(s);
    s->part++;
  }
  return 0;
}

/* ---- The stream. ---- */

/* 1 when some training sample's observed label differs from its clean
 * one: the job injected label noise. */
static int samples_noisy(const db_train_sample_t *t, int n) {
  for (int i = 0; i < n; i++)
    if (t[i].observed != t[i].clean)
      return 1;
  return 0;
}

/* Checks that every sample's position fits arrays of n values, n being
 * the number of training samples, so rows of that length can be read. */
static int samples_check(const export_stream_t *s, char *err, size_t errlen) {
  for (int i = 0; i < s->n; i++)
    if (s->samples[i].pos < 0 || s->samples[i].pos >= s->n) {
      snprintf(err, errlen, "training sample %d has position %d, not below %d",
               (int)s->samples[i].index, s->samples[i].pos, s->n);
      return -EIO;
    }
  return 0;
}

/* Lists the parts: the records rows or the finished stages. */
static int parts_list(export_stream_t *s, char *err, size_t errlen) {
  if (s->format == EXPORT_JSONL)
    return db_epoch_keys_list(s->db, s->job, &s->keys, &s->parts, err, errlen);
  return db_dynamics_stages_list(s->db, s->job, &s->stages, &s->parts, err,
                                 errlen);
}

int export_stream_new(db_t *db, int64_t job, export_format_t format,
                      export_stream_t **out, char *err, size_t errlen) {
  export_stream_t *s = calloc(1, sizeof *s);
  int r;

  *out = NULL;
  if (!s) {
    snprintf(err, errlen, "out of memory for an export");
    return -ENOMEM;
  }
  s->db = db;
  s->job = job;
  s->format = format;
  r = db_train_samples_list(db, job, &s->samples, &s->n, err, errlen);
  if (!r)
    r = samples_check(s, err, errlen);
  if (!r)
    r = parts_list(s, err, errlen);
  if (r) {
    export_stream_free(s);
    return r;
  }
  s->noisy = samples_noisy(s->samples, s->n);
  *out = s;
  return 0;
}

long export_stream_read(export_stream_t *s, char *buf, size_t max, char *err,
                        size_t errlen) {
  size_t done = 0;
  int r = 0;

  while (done < max && !s->failed) {
    size_t left = (size_t)(s->line_len - s->line_off);
    if (left > 0) {
      size_t take = left < max - done ? left : max - done;
      memcpy(buf + done, s->line + s->line_off, take);
      s->line_off += (int)take;
      done += take;
      continue;
    }
    r = line_next(s, s->fail_msg, sizeof s->fail_msg);
    if (r == 0)
      break;
    if (r < 0)
      s->failed = r;
  }
  if (done > 0 || !s->failed)
    return (long)done;
  snprintf(err, errlen, "%s", s->fail_msg);
  return s->failed;
}

void export_stream_free(export_stream_t *s) {
  if (!s)
    return;
  part_unload(s);
  free(s->samples);
  free(s->keys);
  free(s->stages);
  free(s);
}

/* ---- The subcommand's options. ---- */

typedef struct {
  const char *db_path;
  long long job; /* 0 until given */
  int csv;       /* 1: --format csv */
} export_opts_t;

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

/* ---- The subcommand. ---- */

/* Copies the stream to stdout through buf (OUT_BUFFER bytes). Returns
 * 0, storage's error (err set), or -EPIPE / -EIO for a failed write with
 * *write_errno set. */
static int stream_copy(export_stream_t *s, char *buf, int *write_errno,
                       char *err, size_t errlen) {
  long n;

  while ((n = export_stream_read(s, buf, OUT_BUFFER, err, errlen)) > 0) {
    errno = 0;
    if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
      *write_errno = errno ? errno : EIO;
      return *write_errno == EPIPE ? -EPIPE : -EIO;
    }
  }
  return (int)n;
}

/* Exports the job in one snapshot of the database. */
static int export_job(db_t *db, const export_opts_t *o, int *write_errno,
                      char *err, size_t errlen) {
  export_stream_t *s = NULL;
  char *buf = malloc(OUT_BUFFER);
  int r;

  if (!buf) {
    snprintf(err, errlen, "out of memory for an output buffer");
    return -ENOMEM;
  }
  r = db_snapshot_begin(db, err, errlen);
  if (r)
    goto out;
  r = export_stream_new(db, o->job, o->csv ? EXPORT_CSV : EXPORT_JSONL, &s, err,
                        errlen);
  if (r == -ENOENT)
    snprintf(err, errlen, "job %lld not found in %s", o->job, o->db_path);
  if (!r)
    r = stream_copy(s, buf, write_errno, err, errlen);
  export_stream_free(s);
  db_snapshot_end(db);

out:
  free(buf);
  return r;
}

/* Opens the database, exports, and flushes stdout; the exit code. */
static int export_run(const export_opts_t *o) {
  char err[512] = "";
  int write_errno = 0, r, failed;
  db_t *db = NULL;

  r = db_open_existing(o->db_path, &db, err, sizeof err);
  if (!r)
    r = export_job(db, o, &write_errno, err, sizeof err);
  db_close(db);

  /* A failure other than a write's is reported first, whatever flushing
   * the lines before it finds. */
  failed = r != 0 && !write_errno;
  errno = 0;
  if (fflush(stdout) != 0 && !write_errno)
    write_errno = errno ? errno : EIO;
  if (failed) {
    fprintf(stderr, "spkd export: %s\n", err);
    return 1;
  }
  if (write_errno == EPIPE)
    return 0; /* the reader has all it wanted */
  if (write_errno) {
    fprintf(stderr, "spkd export: writing the export: %s\n",
            strerror(write_errno));
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
