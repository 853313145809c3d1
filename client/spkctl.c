/* SPDX-License-Identifier: MIT */
/* spkctl, the command-line client of spkd: reads the command line, turns
 * each command into calls to the HTTP API (ctl_api.c) or a walk along a
 * job's event stream (ctl_follow.c), and prints what came back for a
 * person, or as JSON with --json. Its exit code tells a script how the
 * command, or with --wait the job, ended. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ctl_api.h"
#include "ctl_follow.h"

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define RECONNECT_DEFAULT_S 60
#define SPEC_MAX (16 << 20)

enum {
  CTL_EXIT_OK = 0,          /* done; with --wait the job succeeded */
  CTL_EXIT_FAILED = 1,      /* the job failed */
  CTL_EXIT_USAGE = 2,       /* a bad command line or an unreadable FILE */
  CTL_EXIT_SERVER = 3,      /* unreachable server, or an API error */
  CTL_EXIT_CANCELLED = 4,   /* the job was cancelled */
  CTL_EXIT_INTERRUPTED = 5, /* SIGINT or SIGTERM while waiting */
};

/* Options; a command accepts some of them (--server, --token and
 * --help go with any). */
enum {
  OPT_SERVER = 1 << 0,
  OPT_TOKEN = 1 << 1,
  OPT_HELP = 1 << 2,
  OPT_WAIT = 1 << 3,
  OPT_JSON = 1 << 4,
  OPT_STATE = 1 << 5,
  OPT_RECONNECT = 1 << 6,
  OPT_KEY = 1 << 7,
  OPT_ANY = OPT_SERVER | OPT_TOKEN | OPT_HELP,
};

typedef struct {
  const char *name;
  unsigned flag;
  int takes_value;
} option_t;

static const option_t options[] = {
    {"--server", OPT_SERVER, 1},       {"--token", OPT_TOKEN, 1},
    {"--help", OPT_HELP, 0},           {"-h", OPT_HELP, 0},
    {"--wait", OPT_WAIT, 0},           {"--json", OPT_JSON, 0},
    {"--state", OPT_STATE, 1},         {"--reconnect-for", OPT_RECONNECT, 1},
    {"--idempotency-key", OPT_KEY, 1},
};

/* The command line, as read. */
typedef struct {
  const char *command;
  const char *arg; /* the command's FILE or ID */
  int nargs;
  const char *server, *token, *state, *key;
  int reconnect_s;
  unsigned given; /* OPT_* flags that appeared */
} opts_t;

/* Everything a command needs. */
typedef struct {
  opts_t opt;
  ctl_server_t server;
  long long id; /* the job, for commands that take an ID */
} ctl_t;

typedef int (*command_fn)(ctl_t *c, char *err, size_t errlen);

typedef struct {
  const char *name;
  const char *arg; /* "FILE", "ID" or NULL */
  unsigned opts;   /* OPT_* flags it accepts */
  command_fn run;
} command_t;

static void usage_print(FILE *f) {
  fputs("Usage: spkctl [--server URL] [--token TOKEN] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n"
        "  submit FILE [--wait] [--idempotency-key KEY]\n"
        "                        submit the job spec in FILE (JSON; - reads\n"
        "                        stdin) and print the job's id; --wait then\n"
        "                        follows the job until it ends, a line per\n"
        "                        state, epoch and log message; submitting\n"
        "                        again with the same KEY and spec gives the\n"
        "                        first submission's job\n"
        "  status ID [--json]    the job's state, stage, epoch and test\n"
        "                        accuracies; --json prints the job as JSON\n"
        "  list [--state S] [--json]\n"
        "                        every job, newest first; S is queued,\n"
        "                        running, succeeded, failed or cancelled\n"
        "  cancel ID             cancel a queued or running job\n"
        "  events ID             print the job's events, one \"ID KIND DATA\"\n"
        "                        line each, until the job ends\n"
        "  delete ID             delete a finished job and everything it\n"
        "                        recorded\n"
        "\n"
        "Options:\n"
        "  --server URL          the daemon, http:// only (default:\n"
        "                        $SPKD_SERVER, else " DEFAULT_SERVER ")\n"
        "  --token TOKEN         bearer token for a daemon started with\n"
        "                        --token-file (default: $SPKD_TOKEN)\n"
        "  --reconnect-for SECS  how long --wait and events keep reconnecting\n"
        "                        a lost event stream (default 60)\n"
        "  -h, --help            this text\n"
        "\n"
        "Exit codes:\n"
        "  0  done; with --wait, the job succeeded\n"
        "  1  with --wait, the job failed\n"
        "  2  usage error: a bad command line or an unreadable FILE\n"
        "  3  the server cannot be reached or answered with an error\n"
        "  4  with --wait, the job was cancelled\n"
        "  5  SIGINT or SIGTERM while waiting; the job keeps running\n",
        f);
}

/* ---- Reading the command line. */

/* Reads "--reconnect-for SECS". */
static int reconnect_parse(opts_t *o, const char *v, char *err, size_t errlen) {
  char *end;
  long n = strtol(v, &end, 10);

  if (!*v || *end || n < 0 || n > 86400) {
    snprintf(err, errlen, "--reconnect-for takes seconds, 0 to 86400");
    return -EINVAL;
  }
  o->reconnect_s = (int)n;
  return 0;
}

/* Records one option and its value (NULL for a flag). */
static int option_apply(opts_t *o, unsigned flag, const char *v, char *err,
                        size_t errlen) {
  o->given |= flag;
  if (flag == OPT_SERVER)
    o->server = v;
  else if (flag == OPT_TOKEN)
    o->token = v;
  else if (flag == OPT_STATE)
    o->state = v;
  else if (flag == OPT_KEY)
    o->key = v;
  else if (flag == OPT_RECONNECT)
    return reconnect_parse(o, v, err, errlen);
  return 0;
}

/* Reads the option at argv[*i], "--name value" or "--name=value",
 * moving *i past its value. */
static int option_read(opts_t *o, char **argv, int argc, int *i, char *err,
                       size_t errlen) {
  const char *arg = argv[*i], *eq = strchr(arg, '=');
  size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
  const option_t *opt = NULL;
  const char *v = eq ? eq + 1 : NULL;

  for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
    if (strlen(options[k].name) == n && strncmp(options[k].name, arg, n) == 0)
      opt = &options[k];
  if (!opt || (eq && !opt->takes_value)) {
    snprintf(err, errlen, "unknown option %s", arg);
    return -EINVAL;
  }
  if (opt->takes_value && !v && *i + 1 < argc)
    v = argv[++*i];
  if (opt->takes_value && !v) {
    snprintf(err, errlen, "%s needs a value", opt->name);
    return -EINVAL;
  }
  return option_apply(o, opt->flag, v, err, errlen);
}

static int opts_parse(int argc, char **argv, opts_t *o, char *err,
                      size_t errlen) {
  memset(o, 0, sizeof *o);
  o->reconnect_s = RECONNECT_DEFAULT_S;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1] != '\0') {
      if (option_read(o, argv, argc, &i, err, errlen) < 0)
        return -EINVAL;
    } else if (!o->command) {
      o->command = argv[i];
    } else if (o->nargs++ == 0) {
      o->arg = argv[i];
    }
  }
  return 0;
}

/* ---- Helpers of the commands. */

/* Doubles *buf (from 64 KiB) up to SPEC_MAX; -1 with err when not. */
static int buf_grow(char **buf, size_t *cap, const char *path, char *err,
                    size_t errlen) {
  size_t want = *cap ? *cap * 2 : 65536;
  char *p;

  if (want > SPEC_MAX) {
    snprintf(err, errlen, "%s is larger than 16 MiB", path);
    return -1;
  }
  p = realloc(*buf, want);
  if (!p) {
    snprintf(err, errlen, "out of memory reading %s", path);
    return -1;
  }
  *buf = p;
  *cap = want;
  return 0;
}

/* Reads a whole file ("-" for stdin) into a buffer the caller frees. */
static char *file_read(const char *path, size_t *len, char *err,
                       size_t errlen) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0;
  int ok = 1;

  *len = 0;
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  while (ok && !feof(f) && !ferror(f)) {
    ok = *len < cap || buf_grow(&buf, &cap, path, err, errlen) == 0;
    if (ok)
      *len += fread(buf + *len, 1, cap - *len, f);
  }
  if (ok && ferror(f)) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    ok = 0;
  }
  if (f != stdin)
    fclose(f);
  if (!ok) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* A string field, or "-" for null or missing. */
static const char *text(json_t *obj, const char *key) {
  const char *v = json_string_value(json_object_get(obj, key));

  return v ? v : "-";
}

static long long integer(json_t *obj, const char *key) {
  return (long long)json_integer_value(json_object_get(obj, key));
}

/* Follows the job's events until it ends and turns how it ended, or why
 * following stopped, into the exit code. raw: `events` output. */
static int job_follow(ctl_t *c, long long id, int raw, char *err,
                      size_t errlen) {
  ctl_follow_opts_t fo = {id, raw, c->opt.reconnect_s, stdout, stderr};
  const char *state = NULL;
  int rc = ctl_follow(&c->server, &fo, &state, err, errlen);

  if (rc == -EINTR) {
    snprintf(err, errlen, "interrupted; job %lld keeps running", id);
    return CTL_EXIT_INTERRUPTED;
  }
  if (rc < 0)
    return CTL_EXIT_SERVER;
  if (raw || strcmp(state, "succeeded") == 0)
    return CTL_EXIT_OK;
  return strcmp(state, "failed") == 0 ? CTL_EXIT_FAILED : CTL_EXIT_CANCELLED;
}

/* ---- The commands. */

static int cmd_submit(ctl_t *c, char *err, size_t errlen) {
  ctl_call_t call = {.method = "POST", .path = "/v1/jobs"};
  char key[300];
  const char *const headers[] = {key, NULL};
  char *body;
  long long id;
  int rc;

  /* With a key, submitting again (a requeued batch job) finds the job
   * the first submission made instead of making another. */
  snprintf(key, sizeof key, "Idempotency-Key: %s", c->opt.key);
  call.headers = c->opt.key ? headers : NULL;
  body = file_read(c->opt.arg, &call.body_len, err, errlen);
  if (!body)
    return CTL_EXIT_USAGE;
  call.body = body;
  rc = ctl_api_call(&c->server, &call, err, errlen);
  free(body);
  if (rc < 0)
    return CTL_EXIT_SERVER;
  id = integer(call.json, "id");
  json_decref(call.json);
  printf("%lld\n", id);
  fflush(stdout);
  if (!(c->opt.given & OPT_WAIT))
    return CTL_EXIT_OK;
  return job_follow(c, id, 0, err, errlen);
}

/* One line per stage: completed and planned epochs, test accuracy. */
static void stages_print(json_t *stages) {
  const char *name;
  json_t *st;

  json_object_foreach(stages, name, st) {
    json_t *acc = json_object_get(st, "test_acc");
    char a[32] = "-", epochs[48];

    if (json_is_number(acc))
      snprintf(a, sizeof a, "%.4f", json_number_value(acc));
    snprintf(epochs, sizeof epochs, "%lld/%lld",
             integer(st, "completed_epochs"), integer(st, "epochs"));
    printf("  %-9s %7s epochs  test_acc %s\n", name, epochs, a);
  }
}

/* A job for a person: a few lines. */
static void job_print(json_t *job) {
  json_t *stage = json_object_get(job, "stage");
  json_t *error = json_object_get(job, "error");
  int cancelling = json_is_true(json_object_get(job, "cancel_requested"));
  char name[300] = "";

  if (json_is_string(json_object_get(job, "name")))
    snprintf(name, sizeof name, " \"%s\"", text(job, "name"));
  printf("job %lld%s: %s%s\n", integer(job, "id"), name, text(job, "state"),
         cancelling ? " (cancel requested)" : "");
  if (json_is_string(stage))
    printf("stage %s, epoch %lld of %lld\n", json_string_value(stage),
           integer(job, "epoch"),
           integer(json_object_get(json_object_get(job, "stages"),
                                   json_string_value(stage)),
                   "epochs"));
  else
    printf("no stage started yet\n");
  printf("created %s, started %s, finished %s\n", text(job, "created_at"),
         text(job, "started_at"), text(job, "finished_at"));
  stages_print(json_object_get(job, "stages"));
  if (json_is_string(error))
    printf("error: %s\n", json_string_value(error));
}

static int cmd_status(ctl_t *c, char *err, size_t errlen) {
  char path[64];
  ctl_call_t call = {.method = "GET", .path = path};

  snprintf(path, sizeof path, "/v1/jobs/%lld", c->id);
  if (ctl_api_call(&c->server, &call, err, errlen) < 0)
    return CTL_EXIT_SERVER;
  if (c->opt.given & OPT_JSON) {
    json_dumpf(call.json, stdout, JSON_INDENT(2));
    putchar('\n');
  } else {
    job_print(call.json);
  }
  json_decref(call.json);
  return CTL_EXIT_OK;
}

/* One row of `list`. */
static void job_row_print(json_t *job) {
  printf("%-6lld %-9s %-9s %5lld  %-24s %s\n", integer(job, "id"),
         text(job, "state"), text(job, "stage"), integer(job, "epoch"),
         text(job, "created_at"), text(job, "name"));
}

/* The path of one page of jobs; cursor is NULL for the first page and
 * is percent-encoded (it is opaque, though spkd's are digits). */
static int page_path(const ctl_t *c, const char *cursor, char *path,
                     size_t cap) {
  int n = snprintf(path, cap, "/v1/jobs?limit=1000%s%s%s",
                   c->opt.state ? "&state=" : "",
                   c->opt.state ? c->opt.state : "", cursor ? "&cursor=" : "");

  for (; cursor && *cursor && n >= 0 && (size_t)n < cap; cursor++) {
    unsigned char ch = (unsigned char)*cursor;

    if (isalnum(ch) || strchr("-._~", ch))
      n += snprintf(path + n, cap - (size_t)n, "%c", ch);
    else
      n += snprintf(path + n, cap - (size_t)n, "%%%02X", ch);
  }
  return n >= 0 && (size_t)n < cap ? 0 : -1;
}

static int cmd_list(ctl_t *c, char *err, size_t errlen) {
  json_t *all = json_array(), *item;
  char path[512], cursor[256] = "";
  int json = c->opt.given & OPT_JSON, code = CTL_EXIT_OK;
  size_t i;

  do {
    ctl_call_t call = {.method = "GET", .path = path};
    const char *next;

    if (page_path(c, cursor[0] ? cursor : NULL, path, sizeof path) < 0 ||
        ctl_api_call(&c->server, &call, err, errlen) < 0) {
      if (!err[0])
        snprintf(err, errlen, "the server's cursor is too long");
      code = CTL_EXIT_SERVER;
      break;
    }
    if (!json && !cursor[0])
      printf("%-6s %-9s %-9s %5s  %-24s %s\n", "ID", "STATE", "STAGE", "EPOCH",
             "CREATED", "NAME");
    json_array_foreach(json_object_get(call.json, "items"), i, item) {
      if (json)
        json_array_append(all, item);
      else
        job_row_print(item);
    }
    next = json_string_value(json_object_get(call.json, "next_cursor"));
    snprintf(cursor, sizeof cursor, "%s", next ? next : "");
    json_decref(call.json);
  } while (cursor[0]);
  if (json && code == CTL_EXIT_OK) {
    json_dumpf(all, stdout, JSON_INDENT(2));
    putchar('\n');
  }
  json_decref(all);
  return code;
}

static int cmd_cancel(ctl_t *c, char *err, size_t errlen) {
  char path[64];
  ctl_call_t call = {.method = "POST", .path = path};

  snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", c->id);
  if (ctl_api_call(&c->server, &call, err, errlen) < 0)
    return CTL_EXIT_SERVER;
  if (strcmp(text(call.json, "state"), "cancelled") == 0)
    printf("job %lld: cancelled\n", c->id);
  else
    printf("job %lld: cancel requested; it stops after its current batch\n",
           c->id);
  json_decref(call.json);
  return CTL_EXIT_OK;
}

static int cmd_events(ctl_t *c, char *err, size_t errlen) {
  return job_follow(c, c->id, 1, err, errlen);
}

static int cmd_delete(ctl_t *c, char *err, size_t errlen) {
  char path[64];
  ctl_call_t call = {.method = "DELETE", .path = path};

  snprintf(path, sizeof path, "/v1/jobs/%lld", c->id);
  if (ctl_api_call(&c->server, &call, err, errlen) < 0)
    return CTL_EXIT_SERVER;
  json_decref(call.json);
  printf("job %lld: deleted\n", c->id);
  return CTL_EXIT_OK;
}

static const command_t commands[] = {
    {"submit", "FILE", OPT_WAIT | OPT_RECONNECT | OPT_KEY, cmd_submit},
    {"status", "ID", OPT_JSON, cmd_status},
    {"list", NULL, OPT_STATE | OPT_JSON, cmd_list},
    {"cancel", "ID", 0, cmd_cancel},
    {"events", "ID", OPT_RECONNECT, cmd_events},
    {"delete", "ID", 0, cmd_delete},
};

/* ---- Setting up. */

static int id_parse(const char *s, long long *id) {
  char *end;

  errno = 0;
  *id = strtoll(s, &end, 10);
  return *s && !*end && !errno && *id > 0 ? 0 : -1;
}

/* An Idempotency-Key as spkd takes it: 1 to 255 of ' ' to '~'. */
static int key_ok(const char *key) {
  size_t n = strlen(key);

  for (size_t i = 0; i < n; i++)
    if (key[i] < 0x20 || key[i] > 0x7e)
      return 0;
  return n >= 1 && n <= 255;
}

/* Checks the command's arguments and options against what it takes. */
static int command_check(const command_t *cmd, ctl_t *c, char *err,
                         size_t errlen) {
  static const char *const states[] = {"queued", "running", "succeeded",
                                       "failed", "cancelled"};
  const opts_t *o = &c->opt;
  unsigned extra = o->given & ~(cmd->opts | OPT_ANY);
  int known = 0;

  if (o->nargs != (cmd->arg ? 1 : 0)) {
    snprintf(err, errlen, "%s takes %s", cmd->name,
             cmd->arg ? cmd->arg : "no argument");
    return -EINVAL;
  }
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (extra & options[i].flag) {
      snprintf(err, errlen, "%s does not take %s", cmd->name, options[i].name);
      return -EINVAL;
    }
  if (cmd->arg && strcmp(cmd->arg, "ID") == 0 && id_parse(o->arg, &c->id)) {
    snprintf(err, errlen, "%s is not a job id (a positive number)", o->arg);
    return -EINVAL;
  }
  for (size_t i = 0; o->state && i < sizeof states / sizeof states[0]; i++)
    known |= strcmp(o->state, states[i]) == 0;
  if (o->key && !key_ok(o->key)) {
    snprintf(err, errlen,
             "--idempotency-key takes 1 to 255 printable "
             "ASCII characters");
    return -EINVAL;
  }
  if (o->state && !known) {
    snprintf(err, errlen,
             "--state takes queued, running, succeeded, "
             "failed or cancelled");
    return -EINVAL;
  }
  return 0;
}

/* Server and token: options first, then the environment. */
static int server_setup(ctl_t *c, char *err, size_t errlen) {
  const char *url = c->opt.server ? c->opt.server : getenv("SPKD_SERVER");
  const char *token = c->opt.token ? c->opt.token : getenv("SPKD_TOKEN");

  if (!url || !*url)
    url = DEFAULT_SERVER;
  c->server.token = token && *token ? token : NULL;
  c->server.wake_fd = -1;
  if (c->server.token && strpbrk(c->server.token, "\r\n")) {
    snprintf(err, errlen, "the token holds a line break");
    return -EINVAL;
  }
  return http_client_url_parse(url, &c->server.url, err, errlen);
}

/* Blocks SIGINT and SIGTERM and returns a descriptor that becomes
 * readable when one arrives, so that waiting can end with exit code 5
 * and the job untouched; -1 with err on failure. */
static int signals_catch(char *err, size_t errlen) {
  sigset_t set;
  int fd;

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
      (fd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
    snprintf(err, errlen, "cannot catch signals: %s", strerror(errno));
    return -1;
  }
  return fd;
}

/* Reads the command line into c; returns the command to run, or NULL
 * with *code set (CTL_EXIT_OK after --help, CTL_EXIT_USAGE). */
static const command_t *ctl_setup(ctl_t *c, int argc, char **argv, int *code,
                                  char *err, size_t errlen) {
  const command_t *cmd = NULL;
  const char *name;

  memset(c, 0, sizeof *c);
  *code = CTL_EXIT_USAGE;
  if (opts_parse(argc, argv, &c->opt, err, errlen) < 0)
    return NULL;
  if (c->opt.given & OPT_HELP) {
    usage_print(stdout);
    *code = CTL_EXIT_OK;
    return NULL;
  }
  name = c->opt.command;
  if (!name) {
    snprintf(err, errlen, "no command given");
    return NULL;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(name, commands[i].name) == 0)
      cmd = &commands[i];
  if (!cmd) {
    snprintf(err, errlen, "unknown command %s", name);
    return NULL;
  }
  if (command_check(cmd, c, err, errlen) < 0 ||
      server_setup(c, err, errlen) < 0)
    return NULL;
  return cmd;
}

/* Runs the command; one that waits on a job catches SIGINT and SIGTERM
 * for the time it runs. */
static int command_run(ctl_t *c, const command_t *cmd, char *err,
                       size_t errlen) {
  int code;

  if (cmd->run == cmd_events || (c->opt.given & OPT_WAIT)) {
    c->server.wake_fd = signals_catch(err, errlen);
    if (c->server.wake_fd < 0)
      return CTL_EXIT_SERVER;
  }
  code = cmd->run(c, err, errlen);
  if (c->server.wake_fd >= 0)
    close(c->server.wake_fd);
  return code;
}

int main(int argc, char **argv) {
  char err[2048] = "";
  const command_t *cmd;
  ctl_t c;
  int code;

  /* Progress lines reach a log file or a pipe as they happen. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  cmd = ctl_setup(&c, argc, argv, &code, err, sizeof err);
  if (cmd)
    code = command_run(&c, cmd, err, sizeof err);
  if (err[0])
    fprintf(stderr, "spkctl: %s\n", err);
  if (!cmd && code == CTL_EXIT_USAGE)
    fprintf(stderr, "Try 'spkctl --help'.\n");
  return code;
}
