/* SPDX-License-Identifier: MIT */
/* Placeholder routes: answer 501 until written. */
#include "http_internal.h"

void api_stage_samples(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

void api_stage_datamap(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

void api_job_model(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

void api_job_export(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

void api_datasets_list(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

void api_dataset_sample(api_req_t *req) {
  api_reply_error(req, 501, "not_implemented", NULL, "not yet");
}

