/* SPDX-License-Identifier: MIT */
/* spkd, the daemon: parses its flags, starts the job runner and the HTTP
 * server on one libuv loop, and stops both cleanly on SIGINT or SIGTERM.
 * Everything it runs lives in runner.c, http.c and the layers below. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "../engine/blas.h"
#include "boot.h"
#include "export.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "run.h"
#include "runner.h"
#include "train.h"
#include "version.h"

#ifndef SPK_WEB_DIR
#define SPK_WEB_DIR "web"
#endif

typedef struct {
  char host[64];
  int port;
  const char *db_path;
  const char *data_root;
  const char *web_root;
  int jobs;
  int threads_per_job; /* 0: each spec's own */
  int max_connections;
  int timeout_s;
  const char *token_file;
  char token[256]; /* read from token_file; "" without one */
  log_t log;
} options_t;

/* Raised by SIGINT or SIGTERM during `spkd run`: the job stops at its
 * next batch. The only process-wide state, as a signal handler needs. */
static atomic_int run_stop;

static void on_run_signal(int signum) {
  (void)signum;
  atomic_store(&run_stop, JOB_STOP_SHUTDOWN);
}

/* Everything the loop's callbacks reach. */
typedef struct {
  options_t opt;
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  runner_t *runner;
  http_server_t *http;
  hub_t *hub;
  metrics_t *metrics;
  pixcache_t *pixcache;
} daemon_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: spkd [--listen ADDR:PORT] [--db FILE] [--data-root DIR]\n"
          "            [--jobs N] [--threads-per-job N] [--token-file FILE]\n"
          "            [--max-connections N] [--timeout SECONDS]\n"
          "            [--web-root DIR]\n"
          "            [--log-level debug|info|warn|error]\n"
          "  --listen           address to serve HTTP on (default\n"
          "                     127.0.0.1:8080); another than loopback\n"
          "                     only with --token-file\n"
          "  --db               SQLite database file (default spkd.db)\n"
          "  --data-root        directory holding the datasets, looked up\n"
          "                     by name (default /usr/share/datasets)\n"
          "  --jobs             jobs that may run at once (default 1)\n"
          "  --threads-per-job  threads of a job whose spec names none,\n"
          "                     and the most any job gets (default: the\n"
          "                     spec's own, 2 when it names none)\n"
          "  --token-file       file holding the bearer token that POST\n"
          "                     and DELETE requests must carry\n"
          "  --max-connections  HTTP connections at once, event streams\n"
          "                     included (default 512)\n"
          "  --timeout          seconds an idle connection is kept, and\n"
          "                     twice that for sending a request (default\n"
          "                     30)\n"
          "  --web-root         directory of the dashboard's files\n"
          "  --log-level        least severe level logged (default info)\n"
          "Routes: see api-spec/openapi.yaml and the README.\n"
          "Environment: SPKD_SSE_HEARTBEAT_MS, the event streams'\n"
          "heartbeat interval (10 to 3600000 ms, default 15000).\n"
          "Subcommands, in the foreground without HTTP:\n"
          "  spkd train --dataset NAME ...      train one model\n"
          "  spkd run JOB.json [--db FILE] ...  run one job\n"
          "  spkd export --db FILE --job ID [--format jsonl|csv]\n"
          "                                     write a job's training\n"
          "                                     dynamics to stdout\n");
}

static int parse_listen(const char *s, options_t *o) {
  const char *colon = strrchr(s, ':');
  char *end;
  long port;

  if (!colon || colon == s || (size_t)(colon - s) >= sizeof o->host)
    return -1;
  errno = 0;
  port = strtol(colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
    return -1;
  memcpy(o->host, s, (size_t)(colon - s));
  o->host[colon - s] = '\0';
  o->port = (int)port;
  return 0;
}

/* The flags that take a whole number from 1 to hi. */
static const struct {
  const char *name;
  size_t offset;
  long hi;
} int_flags[] = {
    {"--jobs", offsetof(options_t, jobs), 64},
    {"--threads-per-job", offsetof(options_t, threads_per_job), 64},
    {"--max-connections", offsetof(options_t, max_connections), 100000},
    {"--timeout", offsetof(options_t, timeout_s), 3600},
};

/* Applies one "--flag value" pair; -1 with a message on a bad one. */
static int parse_flag(const char *flag, const char *val, options_t *o) {
  char *end;

  if (strcmp(flag, "--listen") == 0 && parse_listen(val, o) == 0)
    return 0;
  if (strcmp(flag, "--db") == 0 && *val) {
    o->db_path = val;
    return 0;
  }
  if (strcmp(flag, "--data-root") == 0 && *val) {
    o->data_root = val;
    return 0;
  }
  if (strcmp(flag, "--web-root") == 0 && *val) {
    o->web_root = val;
    return 0;
  }
  if (strcmp(flag, "--token-file") == 0 && *val) {
    o->token_file = val;
    return 0;
  }
  for (size_t i = 0; i < sizeof int_flags / sizeof int_flags[0]; i++) {
    long n = strtol(val, &end, 10);
    if (strcmp(flag, int_flags[i].name) == 0 && *val && !*end && n >= 1 &&
        n <= int_flags[i].hi) {
      *(int *)((char *)o + int_flags[i].offset) = (int)n;
      return 0;
    }
  }
  if (strcmp(flag, "--log-level") == 0 &&
      (o->log.level = log_level_parse(val)) >= 0)
    return 0;
  fprintf(stderr, "spkd: bad value '%s' for %s\n", val, flag);
  return -1;
}

static int parse_args(int argc, char **argv, options_t *o) {
  static const char *const flags[] = {
      "--listen",       "--db",          "--data-root",
      "--web-root",     "--jobs",        "--log-level",
      "--token-file",   "--threads-per-job", "--max-connections",
      "--timeout"};

  for (int i = 1; i < argc; i++) {
    int known = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("spkd %s\n", SPK_VERSION);
      exit(0);
    }
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
      known |= strcmp(argv[i], flags[k]) == 0;
    if (!known) {
      fprintf(stderr, "spkd: unknown option '%s' (see spkd --help)\n",
              argv[i]);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "spkd: %s needs a value\n", argv[i]);
      return -1;
    }
    if (parse_flag(argv[i], argv[i + 1], o) < 0)
      return -1;
    i++;
  }
  return 0;
}

/* Called by the runner once no job runs any more after a shutdown. */
static void on_idle(void *ctx) {
  daemon_t *d = ctx;

  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  if (!d->http)
    return;
  http_stop(d->http);
  d->http = NULL;
  LOG(&d->opt.log, LOG_INFO, "main", "stopped");
}

static void on_signal(uv_signal_t *h, int signum) {
  daemon_t *d = h->data;

  LOG(&d->opt.log, LOG_INFO, "main", "stopping signal=%s",
      signum == SIGINT ? "SIGINT" : "SIGTERM");
  http_quiesce(d->http);
  runner_shutdown(d->runner);
}

/* The event streams' heartbeat interval: SPKD_SSE_HEARTBEAT_MS (10 to
 * 3600000 milliseconds) or the hub's default; -1 with a message for
 * another value. */
static int heartbeat_ms(void) {
  const char *v = getenv("SPKD_SSE_HEARTBEAT_MS");
  char *end;
  long ms;

  if (!v)
    return HUB_HEARTBEAT_DEFAULT_MS;
  ms = strtol(v, &end, 10);
  if (*v && !*end && ms >= 10 && ms <= 3600000)
    return (int)ms;
  fprintf(stderr, "spkd: SPKD_SSE_HEARTBEAT_MS must be 10 to 3600000 "
          "(milliseconds), not '%s'\n", v);
  return -1;
}

/* Reads the bearer token: the file's first line, which must not be
 * empty. Warns when others may read the file. */
static int token_read(options_t *o) {
  FILE *f = fopen(o->token_file, "r");
  struct stat st;
  size_t n;

  if (!f) {
    fprintf(stderr, "spkd: cannot read token file %s: %s\n", o->token_file,
            strerror(errno));
    return -1;
  }
  if (!fgets(o->token, sizeof o->token, f))
    o->token[0] = '\0';
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
    LOG(&o->log, LOG_WARN, "main",
        "token file may be read by others file=%s mode=%03o", o->token_file,
        (unsigned)(st.st_mode & 0777));
  fclose(f);
  n = strcspn(o->token, "\r\n");
  o->token[n] = '\0';
  if (n < 16 || n == sizeof o->token - 1) {
    fprintf(stderr, "spkd: the token in %s must be one line of 16 to %zu "
            "characters\n", o->token_file, sizeof o->token - 2);
    return -1;
  }
  return 0;
}

/* Warns about a data root that is no directory and a web root without
 * the dashboard: the daemon still runs (the API works), but every job
 * would fail to find its dataset, or / would answer 404. */
static void roots_check(const options_t *o) {
  char page[4096];
  struct stat st;

  if (stat(o->data_root, &st) != 0 || !S_ISDIR(st.st_mode))
    LOG(&o->log, LOG_WARN, "main", "data root is not a directory; jobs "
        "will not find their datasets data_root=%s", o->data_root);
  snprintf(page, sizeof page, "%s/index.html", o->web_root);
  if (stat(page, &st) != 0)
    LOG(&o->log, LOG_WARN, "main", "no dashboard in the web root; / will "
        "answer 404 web_root=%s", o->web_root);
}

static int start(daemon_t *d) {
  runner_config_t run = {.loop = &d->loop,
                         .db_path = d->opt.db_path,
                         .data_root = d->opt.data_root,
                         .max_jobs = d->opt.jobs,
                         .threads_max = d->opt.threads_per_job,
                         .metrics = d->metrics,
                         .hub = d->hub,
                         .log = &d->opt.log,
                         .on_idle = on_idle,
                         .ctx = d};
  http_config_t hc = {.host = d->opt.host,
                      .port = d->opt.port,
                      .db_path = d->opt.db_path,
                      .data_root = d->opt.data_root,
                      .web_root = d->opt.web_root,
                      .log = &d->opt.log,
                      .token = d->opt.token[0] ? d->opt.token : NULL,
                      .max_connections = d->opt.max_connections,
                      .timeout_s = d->opt.timeout_s,
                      .hub = d->hub,
                      .metrics = d->metrics,
                      .pixcache = d->pixcache};
  char err[512], core[64];
  int rc;

  if (runner_new(&run, &d->runner, err, sizeof err) != 0) {
    fprintf(stderr, "spkd: %s\n", err);
    return -1;
  }
  hc.runner = d->runner;
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  d->sigint.data = d->sigterm.data = d;
  rc = http_start(&hc, &d->http, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "spkd: %s\n", err);
    runner_shutdown(d->runner);
    return rc;
  }
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  /* Only a daemon that listens takes jobs: one that failed to start
   * must not touch the database's jobs. */
  if (runner_start(d->runner, err, sizeof err) != 0) {
    fprintf(stderr, "spkd: %s\n", err);
    runner_shutdown(d->runner);
    return -1;
  }
  blas_corename(core, sizeof core);
  roots_check(&d->opt);
  LOG(&d->opt.log, LOG_INFO, "main",
      "listening version=%s addr=%s:%d db=%s data_root=%s jobs=%d "
      "threads_per_job=%d auth=%s blas=%s",
      SPK_VERSION, d->opt.host, d->opt.port, d->opt.db_path,
      d->opt.data_root, d->opt.jobs, d->opt.threads_per_job,
      d->opt.token[0] ? "token" : "none", core);
  return 0;
}

int main(int argc, char **argv) {
  daemon_t d = {.opt = {.host = "127.0.0.1",
                        .port = 8080,
                        .db_path = "spkd.db",
                        .data_root = "/usr/share/datasets",
                        .web_root = SPK_WEB_DIR,
                        .jobs = 1,
                        .log = {LOG_INFO}}};
  char pool[16];
  int rc, beat_ms;

  if (argc > 1 && strcmp(argv[1], "train") == 0) {
    boot_blas(argv, &d.opt.log);
    return train_main(argc - 1, argv + 1);
  }
  if (argc > 1 && strcmp(argv[1], "export") == 0)
    return export_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "run") == 0) {
    boot_blas(argv, &d.opt.log);
    signal(SIGINT, on_run_signal);
    signal(SIGTERM, on_run_signal);
    return run_main(argc - 1, argv + 1, &run_stop);
  }
  if (parse_args(argc, argv, &d.opt) < 0)
    return 2;
  /* boot_blas may execute the program again: what follows runs once. */
  boot_blas(argv, &d.opt.log);
  if ((d.opt.token_file && token_read(&d.opt) < 0) ||
      (beat_ms = heartbeat_ms()) < 0)
    return 2;
  if (hub_new(beat_ms, &d.hub) != 0 || metrics_new(&d.metrics) != 0 ||
      pixcache_new(&d.pixcache) != 0) {
    fprintf(stderr, "spkd: out of memory\n");
    return 1;
  }
  /* libuv sizes its worker pool once, at first use: one thread per job
   * that may run at once. */
  snprintf(pool, sizeof pool, "%d", d.opt.jobs);
  setenv("UV_THREADPOOL_SIZE", pool, 1);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&d.loop);

  rc = start(&d);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  runner_free(d.runner);
  uv_loop_close(&d.loop);
  hub_free(d.hub);
  metrics_free(d.metrics);
  pixcache_free(d.pixcache);
  /* A refused listen address is a usage error, like a bad flag. */
  return rc == -EINVAL ? 2 : rc < 0 ? 1 : 0;
}
