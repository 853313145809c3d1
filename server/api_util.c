/* SPDX-License-Identifier: MIT */
/* Small pieces the route handlers share: reading numbers from paths and
 * query strings, writing numbers into JSON, answering storage failures.
 * The handlers themselves live in api.c, api_data.c and events.c. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "http_internal.h"

int api_parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  long long v;

  if (!s || !*s || *s == '+' || *s == '-' || *s == ' ')
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

json_t *api_number(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

void api_reply_storage(api_req_t *req, int rc, const char *err) {
  if (rc == -ENOENT)
    api_reply_error(req, 404, "not_found", NULL, "%s", err);
  else
    api_reply_error(req, 500, "internal", NULL, "storage: %s", err);
}
