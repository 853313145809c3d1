/* SPDX-License-Identifier: MIT */
/* Job specs: strict parsing and validation of the JSON a user submits into
 * a pipeline_spec_t. Every refusal names the field as a dotted path. */
#ifndef SPK_SERVER_SPEC_H
#define SPK_SERVER_SPEC_H

#include <stddef.h>

#include "../engine/pipeline.h"

typedef struct {
  int malformed;      /* 1: the text is not JSON at all */
  char field[128];    /* e.g. "spl.pace.end", "teachers[0].epochs"; "" */
  char message[256];  /* a sentence naming the problem */
} spec_error_t;

/* Parses len bytes of text into out (defaults first, then every key the
 * text gives). Unknown keys, wrong types and out-of-range values fail.
 * Returns 0 or -EINVAL with err filled. */
int spec_parse(const char *text, size_t len, pipeline_spec_t *out,
               spec_error_t *err);

/* The bounds of a spec's optional top-level "priority". */
#define SPEC_PRIORITY_MIN (-100)
#define SPEC_PRIORITY_MAX 100

/* The queue priority a spec asks for in *out: its "priority", from
 * SPEC_PRIORITY_MIN to SPEC_PRIORITY_MAX (higher starts sooner), 0
 * without one. spec_parse checks the value; this reads it back from text
 * spec_parse accepted. Returns 0, or -EINVAL when the text holds no such
 * value. */
int spec_priority(const char *text, size_t len, int *out);

#endif
