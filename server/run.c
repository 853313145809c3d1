/* SPDX-License-Identifier: MIT */
/* `spkd run`: reads and validates a job spec, stores it as a job, runs it
 * with job_run on this thread (one line per epoch on stdout), and writes
 * a JSON summary when asked. */
#include "run.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../engine/dataset.h"
#include "../engine/pipeline.h"
#include "../storage/db.h"
#include "dblock.h"
#include "http.h"
#include "job.h"
#include "outpath.h"
#include "spec.h"

typedef struct {
  const char *spec_path;
  const char *db_path;
  const char *summary_path;
  const char *data_root;
  log_t log;
  int fresh; /* 1: a new job even when the same spec ran before */
} run_opts_t;

static int parse_args(int argc, char **argv, run_opts_t *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] != '-' && !o->spec_path) {
      o->spec_path = a;
      continue;
    }
    if (strcmp(a, "--fresh") == 0) {
      o->fresh = 1;
      continue;
    }
    if (!v || (strcmp(a, "--db") && strcmp(a, "--summary") &&
               strcmp(a, "--data-root") && strcmp(a, "--log-level"))) {
      fprintf(stderr, v ? "spkd run: unknown option '%s'\n"
                        : "spkd run: '%s' needs a value or is unknown\n", a);
      return -1;
    }
    if (strcmp(a, "--db") == 0)
      o->db_path = v;
    else if (strcmp(a, "--summary") == 0)
      o->summary_path = v;
    else if (strcmp(a, "--data-root") == 0)
      o->data_root = v;
    else if ((o->log.level = log_level_parse(v)) < 0) {
      fprintf(stderr, "spkd run: bad --log-level '%s'\n", v);
      return -1;
    }
    i++;
  }
  if (!o->spec_path) {
    fprintf(stderr, "usage: spkd run JOB.json [--db FILE] [--summary FILE] "
            "[--data-root DIR] [--log-level LEVEL] [--fresh]\n");
    return -1;
  }
  return 0;
}

/* Reads the spec file (at most HTTP_BODY_MAX bytes) into a new string. */
static char *spec_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *text = malloc(HTTP_BODY_MAX + 2);

  if (!f || !text) {
    fprintf(stderr, "spkd run: %s: %s\n", path,
            f ? "out of memory" : strerror(errno));
    if (f)
      fclose(f);
    free(text);
    return NULL;
  }
  *len = fread(text, 1, HTTP_BODY_MAX + 1, f);
  fclose(f);
  if (*len > HTTP_BODY_MAX) {
    fprintf(stderr, "spkd run: %s: larger than %d bytes\n", path,
            HTTP_BODY_MAX);
    free(text);
    return NULL;
  }
  text[*len] = '\0';
  return text;
}

/* Parses the spec and checks its dataset and the teachers' checkpoints;
 * prints why when it fails. */
static int spec_check(const run_opts_t *o, const char *text, size_t len,
                      pipeline_spec_t *spec) {
  spec_error_t se;
  int n_train, n_test;
  char err[512];

  if (spec_parse(text, len, spec, &se) != 0) {
    fprintf(stderr, "spkd run: %s: %s%s%s\n", o->spec_path, se.field,
            se.field[0] ? ": " : "", se.message);
    return -1;
  }
  if (dataset_probe(o->data_root, spec->dataset, &n_train, &n_test, err,
                    sizeof err) != 0) {
    fprintf(stderr, "spkd run: %s: dataset.name: %s\n", o->spec_path, err);
    return -1;
  }
  if (spec->limit > n_train) {
    fprintf(stderr, "spkd run: %s: dataset.limit: %d exceeds the %d "
            "samples of the training file\n", o->spec_path, spec->limit,
            n_train);
    return -1;
  }
  if (job_checkpoints_find(o->data_root, spec, &se) != 0) {
    fprintf(stderr, "spkd run: %s: %s: %s\n", o->spec_path, se.field,
            se.message);
    return -1;
  }
  return 0;
}

/* Per stage: the last epoch's test accuracy, and the test accuracy at
 * the epoch of best validation accuracy (the first such epoch; the last
 * epoch when the job has no validation split). Metrics come grouped by
 * stage, epochs ascending. */
static json_t *summary_stages(const db_metrics_t *m, int n) {
  json_t *stages = json_object();

  for (int i = 0; i < n;) {
    int k = i, best = -1;
    for (; k < n && strcmp(m[k].stage, m[i].stage) == 0; k++)
      if (isfinite(m[k].val_acc) &&
          (best < 0 || m[k].val_acc > m[best].val_acc))
        best = k;
    if (best < 0)
      best = k - 1;
    json_object_set_new(stages, m[i].stage,
                        json_pack("{s:{s:f, s:f}, s:i}", "test_accuracy",
                                  "last", m[k - 1].test_acc, "best",
                                  m[best].test_acc, "best_epoch",
                                  m[best].epoch));
    i = k;
  }
  return stages;
}

static json_t *num_or_null(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/* How the final easy set (the self-paced stage's last epoch) separates
 * corrupted from clean labels; nulls without injected noise. */
static json_t *summary_detection(const db_metrics_t *m, int n) {
  const db_metrics_t *last = NULL;

  for (int i = 0; i < n; i++)
    if (strcmp(m[i].stage, "spl") == 0)
      last = &m[i];
  return json_pack("{s:o, s:o, s:o}", "auroc",
                   num_or_null(last ? last->noise_auroc : NAN), "precision",
                   num_or_null(last ? last->noise_precision : NAN), "recall",
                   num_or_null(last ? last->noise_recall : NAN));
}

/* Adds weights_sha256 to each stage of stages that has a final state. */
static void summary_hashes(db_t *db, int64_t id, json_t *stages) {
  db_checkpoint_info_t *c = NULL;
  char err[256];
  int n = 0;

  if (db_checkpoint_list(db, id, &c, &n, err, sizeof err) != 0)
    return;
  for (int i = 0; i < n; i++) {
    json_t *st = json_object_get(stages, c[i].stage);
    if (st && strcmp(c[i].kind, "final") == 0 && c[i].sha256[0])
      json_object_set_new(st, "weights_sha256", json_string(c[i].sha256));
  }
  free(c);
}

/* The data of the job's last "noise_estimate" event, or NULL. */
static json_t *summary_last_estimate(db_t *db, int64_t id) {
  db_event_t *ev = NULL;
  json_t *last = NULL;
  char err[256];
  int n = 0;

  if (db_event_list(db, id, 0, 100000, &ev, &n, err, sizeof err) != 0)
    return NULL;
  for (int i = 0; i < n; i++)
    if (strcmp(ev[i].kind, "noise_estimate") == 0) {
      json_decref(last);
      last = json_loads(ev[i].data_json, 0, NULL);
    }
  db_events_free(ev, n);
  return last;
}

/* The job's noise section: the injected rate and the spl stage's last
 * estimate, "estimated_rate" (the best estimator's; "rate" in events of
 * older runs), "estimates" {name: rate} and "per_class"; null, {} and []
 * without one. */
static json_t *summary_noise(db_t *db, int64_t id,
                             const pipeline_spec_t *spec) {
  json_t *last = summary_last_estimate(db, id), *noise;
  json_t *rate = json_object_get(last, "estimated_rate");
  json_t *est = json_object_get(last, "estimates");
  json_t *pc = json_object_get(last, "per_class");

  if (!json_is_number(rate))
    rate = json_object_get(last, "rate");
  noise = json_pack(
      "{s:f, s:o, s:o, s:o}", "rate", spec->noise_kind ? spec->noise_rate : 0.0,
      "estimated_rate",
      num_or_null(json_is_number(rate) ? json_number_value(rate) : NAN),
      "estimates", json_is_object(est) ? json_deep_copy(est) : json_object(),
      "per_class", json_is_array(pc) ? json_deep_copy(pc) : json_array());
  json_decref(last);
  return noise;
}

/* Writes the summary of job id; seconds is the wall time to report. */
static int summary_write(const run_opts_t *o, db_t *db, int64_t id,
                         const pipeline_spec_t *spec, double seconds) {
  db_metrics_t *m = NULL;
  db_job_t job;
  json_t *sum, *stages;
  char err[256];
  int n = 0, rc;

  rc = db_metrics_list(db, id, &m, &n, err, sizeof err);
  if (rc == 0)
    rc = db_job_get(db, id, &job, err, sizeof err);
  if (rc) {
    fprintf(stderr, "spkd run: summary: %s\n", err);
    free(m);
    return rc;
  }
  stages = summary_stages(m, n);
  summary_hashes(db, id, stages);
  sum = json_pack("{s:I, s:s, s:s?, s:o, s:o, s:o, s:f, s:o}", "id",
                  (json_int_t)id, "state", job.state, "error", job.error,
                  "stages", stages, "noise", summary_noise(db, id, spec),
                  "detection", summary_detection(m, n), "wall_seconds", seconds,
                  "provenance",
                  job.provenance_json ? json_loads(job.provenance_json, 0, NULL)
                                      : json_null());
  rc = sum && json_dump_file(sum, o->summary_path,
                             JSON_INDENT(2) | JSON_REAL_PRECISION(6)) == 0
           ? 0
           : -EIO;
  if (rc)
    fprintf(stderr, "spkd run: cannot write %s\n", o->summary_path);
  json_decref(sum);
  db_job_deinit(&job);
  free(m);
  return rc;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The spec as runs compare it: keys sorted, no spaces; NULL when text is
 * not JSON (it was checked before, so only out of memory). */
static char *spec_normal(const char *text) {
  json_t *doc = json_loads(text, 0, NULL);
  char *s = doc ? json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

  json_decref(doc);
  return s;
}

/* 1 when job's spec normalises to norm. */
static int spec_same(const db_job_t *job, const char *norm) {
  char *mine = spec_normal(job->spec_json);
  int same = mine && strcmp(mine, norm) == 0;

  free(mine);
  return same;
}

/* The newest job with the same spec that is running (left by a process
 * that stopped) or finished, into *id (0: none) and state. Queued jobs
 * belong to a daemon's queue and are not looked at. */
static int job_same_find(db_t *db, const char *norm, int64_t *id,
                         char state[16], char *err, size_t errlen) {
  int64_t before = 0;

  *id = 0;
  for (;;) {
    db_job_t *jobs = NULL;
    int n = 0, rc = db_job_list(db, before, 200, &jobs, &n, err, errlen);
    if (rc)
      return rc;
    for (int i = 0; i < n && *id == 0; i++)
      if (strcmp(jobs[i].state, "queued") != 0 && spec_same(&jobs[i], norm)) {
        *id = jobs[i].id;
        snprintf(state, 16, "%s", jobs[i].state);
      }
    before = n > 0 ? jobs[n - 1].id : 0;
    db_jobs_free(jobs, n);
    if (*id || n < 200)
      return 0;
  }
}

/* The new job's row, written by the writer thread. */
typedef struct {
  const char *name, *text;
  int64_t id;
} job_new_t;

static int job_new_write(db_t *db, void *ctx, char *err, size_t errlen) {
  job_new_t *n = ctx;
  return db_job_insert_running(db, n->name, n->text, &n->id, err, errlen);
}

/* A job to run: the unfinished one with the same spec (claimed), a
 * finished one (*finished set, nothing to run), or a new one. */
static int job_pick(const run_opts_t *o, db_t *db, db_writer_t *writer,
                    int lock_fd, const char *text, const pipeline_spec_t *spec,
                    int64_t *id, int *finished, char *err, size_t errlen) {
  job_new_t fresh = {spec->name[0] ? spec->name : NULL, text, 0};
  char state[16] = "", *norm = o->fresh ? NULL : spec_normal(text);
  int rc = 0;

  *id = 0;
  *finished = 0;
  if (norm)
    rc = job_same_find(db, norm, id, state, err, errlen);
  free(norm);
  if (rc == 0 && *id && strcmp(state, "running") != 0) {
    *finished = 1;
    fprintf(stderr, "spkd run: job %lld with this spec already ended %s; "
            "--fresh runs it again\n", (long long)*id, state);
    return 0;
  }
  if (rc == 0 && *id) {
    if (dblock_job_claim(lock_fd, *id) != 0) {
      snprintf(err, errlen, "job %lld with this spec is being run by "
               "another process", (long long)*id);
      return -EBUSY;
    }
    fprintf(stderr, "spkd run: resuming job %lld in %s\n", (long long)*id,
            o->db_path);
    return 0;
  }
  if (rc == 0)
    rc = db_writer_call(writer, job_new_write, &fresh, err, errlen);
  *id = fresh.id;
  if (rc == 0 && dblock_job_claim(lock_fd, *id) != 0)
    rc = -EIO;
  if (rc == 0)
    fprintf(stderr, "spkd run: job %lld in %s\n", (long long)*id, o->db_path);
  return rc;
}

/* The wall time of a job that ended before this run: started to
 * finished, as stored. */
static double job_wall(db_t *db, int64_t id) {
  db_job_t job;
  char err[256];
  double s = NAN;

  if (db_job_get(db, id, &job, err, sizeof err) == 0) {
    s = job.finished_at - job.started_at;
    db_job_deinit(&job);
  }
  return s;
}

/* The exit code of a job in state: 0 only for succeeded. */
static int job_state_code(db_t *db, int64_t id, char state[16]) {
  db_job_t job;
  char err[256];

  if (db_job_get(db, id, &job, err, sizeof err) != 0)
    return 1;
  snprintf(state, 16, "%s", job.state);
  db_job_deinit(&job);
  return strcmp(state, "succeeded") == 0 ? 0 : 1;
}

/* Finds or stores the job, runs it unless it has ended, and reports. */
static int run_job(const run_opts_t *o, const char *text,
                   const pipeline_spec_t *spec, atomic_int *stop) {
  db_t *db = NULL;
  db_writer_t *writer = NULL;
  int64_t id = 0;
  char err[512], state[16] = "";
  double t0 = now_s();
  int lock_fd = -1, alone = 0, finished = 0, code;
  int rc = db_open(o->db_path, &db, err, sizeof err);

  if (rc == 0)
    rc = db_writer_new(o->db_path, &writer, err, sizeof err);
  if (rc == 0) {
    lock_fd = dblock_take(o->db_path, &alone, err, sizeof err);
    rc = lock_fd < 0 ? -EIO : 0;
    if (lock_fd >= 0)
      dblock_share(lock_fd);
  }
  if (rc == 0)
    rc = job_pick(o, db, writer, lock_fd, text, spec, &id, &finished, err,
                  sizeof err);
  if (rc == 0 && !finished) {
    job_run_t job = {.db_path = o->db_path,
                     .writer = writer,
                     .data_root = o->data_root,
                     .log = &o->log,
                     .id = id,
                     .stop = stop,
                     .echo = 1};
    rc = job_run(&job, state, err, sizeof err);
  }
  if (rc == 0 && o->summary_path)
    rc = summary_write(o, db, id, spec,
                       finished ? job_wall(db, id) : now_s() - t0);
  if (rc)
    fprintf(stderr, "spkd run: %s\n", err);
  else if (strcmp(state, "interrupted") == 0)
    fprintf(stderr, "spkd run: job %lld interrupted; the same command "
            "resumes it\n", (long long)id);
  code = rc ? 1 : job_state_code(db, id, state);
  if (rc == 0 && code && strcmp(state, "running") != 0)
    fprintf(stderr, "spkd run: job %lld %s\n", (long long)id, state);
  db_writer_free(writer);
  db_close(db);
  if (lock_fd >= 0)
    close(lock_fd);
  return code;
}

int run_main(int argc, char **argv, atomic_int *stop) {
  run_opts_t o = {NULL, "spkd.db", NULL, "/usr/share/datasets", {LOG_WARN}};
  pipeline_spec_t spec;
  size_t len;
  char *text, err[512];
  int rc;

  if (parse_args(argc, argv, &o) < 0)
    return 2;
  if (o.summary_path && outpath_check(o.summary_path, err, sizeof err) < 0) {
    fprintf(stderr, "spkd run: --summary: %s\n", err);
    return 2;
  }
  text = spec_read(o.spec_path, &len);
  if (!text)
    return 2;
  rc = spec_check(&o, text, len, &spec) < 0 ? 2
                                             : run_job(&o, text, &spec, stop);
  free(text);
  return rc;
}
