/* SPDX-License-Identifier: MIT */
/* Structured log lines on stderr, one write per line so lines from
 * different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0)
      return i;
  return -1;
}

void log_write(const log_t *log, int level, const char *component,
               const char *fmt, ...) {
  char line[2048];
  struct timeval tv;
  struct tm tm;
  size_t n;
  va_list ap;

  (void)log;
  if (level < LOG_DEBUG || level > LOG_ERROR)
    level = LOG_ERROR;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s %s: ",
                        (long)(tv.tv_usec / 1000), level_names[level],
                        component);

  va_start(ap, fmt);
  if (n < sizeof line)
    n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);

  if (n > sizeof line - 2)
    n = sizeof line - 2;
  line[n++] = '\n';
  if (write(STDERR_FILENO, line, n) < 0)
    return;
}
