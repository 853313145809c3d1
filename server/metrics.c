/* SPDX-License-Identifier: MIT */
/* The daemon's counters behind GET /metrics and their rendering in the
 * Prometheus text exposition format (version 0.0.4). One mutex guards
 * every counter; rendering copies them under it and formats the copy.
 * Serving the text over HTTP is api_ops.c's business. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "version.h"

/* Upper bounds of the latency histogram's finite buckets, in seconds. */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

/* Routes and statuses are fixed sets in the daemon, far smaller than
 * these; should they ever overflow, the last slot collects the rest
 * under route "other" or code "other". */
#define ROUTES_MAX 64
#define CODES_MAX 32
#define CODE_OTHER -1

typedef struct {
  int code; /* HTTP status, or CODE_OTHER */
  uint64_t n;
} code_count_t;

/* One route's requests: per status, and their latencies. bucket[i]
 * counts the requests that took more than bucket_le[i - 1] and at most
 * bucket_le[i]; those over the last bound are count minus the rest. */
typedef struct {
  const char *name;
  uint64_t bucket[BUCKETS];
  uint64_t count;
  double sum;
  int ncodes;
  code_count_t codes[CODES_MAX];
} route_stats_t;

typedef struct {
  uint64_t epochs, samples;
  int nroutes;
  route_stats_t routes[ROUTES_MAX];
} metrics_counts_t;

struct metrics {
  uv_mutex_t lock;
  double started; /* seconds since the Unix epoch */
  metrics_counts_t c;
};

int metrics_new(metrics_t **out) {
  metrics_t *m = calloc(1, sizeof *m);
  struct timespec ts;

  *out = NULL;
  if (!m)
    return -ENOMEM;
  if (uv_mutex_init(&m->lock) != 0) {
    free(m);
    return -ENOMEM;
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  m->started = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
  *out = m;
  return 0;
}

void metrics_free(metrics_t *m) {
  if (!m)
    return;
  uv_mutex_destroy(&m->lock);
  free(m);
}

/* The stats of route, created on first sight (lock held). */
static route_stats_t *route_slot(metrics_counts_t *c, const char *route) {
  route_stats_t *r;

  for (int i = 0; i < c->nroutes; i++)
    if (c->routes[i].name == route || strcmp(c->routes[i].name, route) == 0)
      return &c->routes[i];
  if (c->nroutes == ROUTES_MAX)
    return &c->routes[ROUTES_MAX - 1];
  r = &c->routes[c->nroutes++];
  r->name = c->nroutes == ROUTES_MAX ? "other" : route;
  return r;
}

/* The counter of status within r, created on first sight (lock held). */
static code_count_t *code_slot(route_stats_t *r, int status) {
  code_count_t *k;

  for (int i = 0; i < r->ncodes; i++)
    if (r->codes[i].code == status)
      return &r->codes[i];
  if (r->ncodes == CODES_MAX)
    return &r->codes[CODES_MAX - 1];
  k = &r->codes[r->ncodes++];
  k->code = r->ncodes == CODES_MAX ? CODE_OTHER : status;
  return k;
}

void metrics_http_observe(metrics_t *m, const char *route, int status,
                          double seconds) {
  route_stats_t *r;
  size_t b = 0;

  if (!m)
    return;
  if (!route)
    route = "unrouted";
  if (!(seconds >= 0)) /* negative or NaN: a clock step */
    seconds = 0;
  while (b < BUCKETS && seconds > bucket_le[b])
    b++;

  uv_mutex_lock(&m->lock);
  r = route_slot(&m->c, route);
  code_slot(r, status)->n++;
  if (b < BUCKETS)
    r->bucket[b]++;
  r->count++;
  r->sum += seconds;
  uv_mutex_unlock(&m->lock);
}

void metrics_epoch_add(metrics_t *m, long long samples) {
  if (!m)
    return;
  uv_mutex_lock(&m->lock);
  m->c.epochs++;
  m->c.samples += samples > 0 ? (uint64_t)samples : 0;
  uv_mutex_unlock(&m->lock);
}

/* Writes s as a label value: backslash, double quote and newline
 * escaped as the exposition format requires. */
static void label_write(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      fputs("\\\\", f);
    else if (*s == '"')
      fputs("\\\"", f);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

static void family_head(FILE *f, const char *name, const char *type,
                        const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Process figures: build, start time, CPU time and resident memory. */
static void render_process(FILE *f, double started) {
  struct rusage ru;
  long rss_pages = -1;
  FILE *statm;

  family_head(f, "spkd_build_info", "gauge",
              "Always 1; the label names the spkd version.");
  fprintf(f, "spkd_build_info{version=\"");
  label_write(f, SPK_VERSION);
  fprintf(f, "\"} 1\n");
  family_head(f, "spkd_start_time_seconds", "gauge",
              "When the daemon started, in seconds since the Unix epoch.");
  fprintf(f, "spkd_start_time_seconds %.3f\n", started);

  family_head(f, "process_cpu_seconds_total", "counter",
              "User and system CPU time the daemon spent, in seconds.");
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    fprintf(f, "process_cpu_seconds_total %.6f\n",
            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6);
  family_head(f, "process_resident_memory_bytes", "gauge",
              "The daemon's resident memory, in bytes.");
  statm = fopen("/proc/self/statm", "re");
  if (statm && fscanf(statm, "%*s %ld", &rss_pages) == 1 && rss_pages >= 0)
    fprintf(f, "process_resident_memory_bytes %lld\n",
            (long long)rss_pages * sysconf(_SC_PAGESIZE));
  if (statm)
    fclose(statm);
}

static void render_jobs(FILE *f, const db_job_counts_t *n) {
  family_head(f, "spkd_jobs", "gauge",
              "Jobs stored in the database, by state.");
  fprintf(f, "spkd_jobs{state=\"queued\"} %" PRId64 "\n", n->queued);
  fprintf(f, "spkd_jobs{state=\"running\"} %" PRId64 "\n", n->running);
  fprintf(f, "spkd_jobs{state=\"succeeded\"} %" PRId64 "\n", n->succeeded);
  fprintf(f, "spkd_jobs{state=\"failed\"} %" PRId64 "\n", n->failed);
  fprintf(f, "spkd_jobs{state=\"cancelled\"} %" PRId64 "\n", n->cancelled);
}

static void render_training(FILE *f, const metrics_counts_t *c) {
  family_head(f, "spkd_epochs_total", "counter",
              "Epochs trained by this daemon's jobs, every stage counted.");
  fprintf(f, "spkd_epochs_total %" PRIu64 "\n", c->epochs);
  family_head(f, "spkd_samples_total", "counter",
              "Training samples of the epochs trained, summed.");
  fprintf(f, "spkd_samples_total %" PRIu64 "\n", c->samples);
}

static void render_requests(FILE *f, const metrics_counts_t *c) {
  family_head(f, "spkd_http_requests_total", "counter",
              "HTTP requests answered, by route and status code.");
  for (int i = 0; i < c->nroutes; i++) {
    const route_stats_t *r = &c->routes[i];
    for (int k = 0; k < r->ncodes; k++) {
      fputs("spkd_http_requests_total{route=\"", f);
      label_write(f, r->name);
      if (r->codes[k].code == CODE_OTHER)
        fputs("\",code=\"other\"}", f);
      else
        fprintf(f, "\",code=\"%d\"}", r->codes[k].code);
      fprintf(f, " %" PRIu64 "\n", r->codes[k].n);
    }
  }
}

/* One route's histogram: cumulative buckets, then +Inf, sum and count. */
static void render_histogram(FILE *f, const route_stats_t *r) {
  const char *name = "spkd_http_request_duration_seconds";
  uint64_t below = 0;

  for (size_t b = 0; b < BUCKETS; b++) {
    below += r->bucket[b];
    fprintf(f, "%s_bucket{route=\"", name);
    label_write(f, r->name);
    fprintf(f, "\",le=\"%g\"} %" PRIu64 "\n", bucket_le[b], below);
  }
  fprintf(f, "%s_bucket{route=\"", name);
  label_write(f, r->name);
  fprintf(f, "\",le=\"+Inf\"} %" PRIu64 "\n", r->count);
  fprintf(f, "%s_sum{route=\"", name);
  label_write(f, r->name);
  fprintf(f, "\"} %.15g\n", r->sum);
  fprintf(f, "%s_count{route=\"", name);
  label_write(f, r->name);
  fprintf(f, "\"} %" PRIu64 "\n", r->count);
}

static void render_latency(FILE *f, const metrics_counts_t *c) {
  family_head(f, "spkd_http_request_duration_seconds", "histogram",
              "Time from a request's first byte to its answer, by route.");
  for (int i = 0; i < c->nroutes; i++)
    render_histogram(f, &c->routes[i]);
}

/* Writes every family into a new string *out; -ENOMEM when memory ran
 * out on the way. */
static int render_text(double started, const db_job_counts_t *jobs,
                       const metrics_counts_t *c, char **out) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  int bad;

  if (!f)
    return -ENOMEM;
  render_process(f, started);
  render_jobs(f, jobs);
  render_training(f, c);
  render_requests(f, c);
  render_latency(f, c);
  bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    free(text);
    return -ENOMEM;
  }
  *out = text;
  return 0;
}

int metrics_render(metrics_t *m, db_t *db, char **out, char *err,
                   size_t errlen) {
  metrics_counts_t *snap = malloc(sizeof *snap);
  db_job_counts_t jobs;
  int r;

  *out = NULL;
  if (!snap) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  r = db_job_count_by_state(db, &jobs, err, errlen);
  if (r)
    goto out;

  /* Format a copy, so that requests are not held up meanwhile. */
  uv_mutex_lock(&m->lock);
  *snap = m->c;
  uv_mutex_unlock(&m->lock);
  r = render_text(m->started, &jobs, snap, out);
  if (r)
    snprintf(err, errlen, "out of memory writing the metrics");

out:
  free(snap);
  return r;
}
