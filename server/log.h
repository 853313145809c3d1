/* SPDX-License-Identifier: MIT */
/* Structured one-line logs on stderr: time, level, component, message and
 * key=value fields. The level is checked before anything is formatted. */
#ifndef SPK_SERVER_LOG_H
#define SPK_SERVER_LOG_H

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* A logger: only its minimum level, so it can be shared read-only by every
 * thread. */
typedef struct {
  int level;
} log_t;

/* Parses "debug", "info", "warn" or "error"; -1 when it is none. */
int log_level_parse(const char *name);

/* Writes one line: `2026-12-04T05:07:14.123Z info http: message k=v`.
 * fmt formats the message and its fields; values with spaces should be
 * quoted by the caller. Use the LOG macro so the level is checked first. */
void log_write(const log_t *log, int level, const char *component,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define LOG(lg, lvl, component, ...)                                         \
  do {                                                                       \
    if ((lvl) >= (lg)->level)                                                \
      log_write((lg), (lvl), (component), __VA_ARGS__);                      \
  } while (0)

#endif
