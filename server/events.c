/* SPDX-License-Identifier: MIT */
/* Placeholder routes: answer 501 until written. */
#include "http_internal.h"

void api_job_events(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

