/* SPDX-License-Identifier: MIT */
/* Following a job's event stream (GET /v1/jobs/{id}/events, Server-Sent
 * Events) until the job ends, reconnecting with Last-Event-ID when the
 * connection drops, for spkctl's `submit --wait` and `events`. */
#ifndef SPK_CLIENT_CTL_FOLLOW_H
#define SPK_CLIENT_CTL_FOLLOW_H

#include <stdio.h>

#include "ctl_api.h"

/* A stream silent this long (no event, no heartbeat) counts as lost. */
#define CTL_STREAM_IDLE_S 120

typedef struct {
  long long job;
  int raw;         /* 1: every event as "ID KIND DATA"; 0: progress lines
                      for states, epochs and log messages only */
  int reconnect_s; /* how long to keep reconnecting: seconds without a
                      working stream since the last drop of one that
                      brought new events */
  FILE *out;       /* where the lines go */
  FILE *notes;     /* NULL, or where reconnecting is mentioned */
} ctl_follow_opts_t;

/* Reads the job's events from its first (or, after a drop, from the
 * last one seen) and writes them to o->out until the job's terminal
 * state event. Then sets *state to "succeeded", "failed" or "cancelled"
 * (static strings) and returns 0. Otherwise returns -EINTR when
 * s->wake_fd became readable, -EREMOTEIO when the server answered with
 * an error (no such job, say), or another negative errno when the
 * server could not be reached at first or the stream stayed lost for
 * o->reconnect_s seconds; err says which. */
int ctl_follow(const ctl_server_t *s, const ctl_follow_opts_t *o,
               const char **state, char *err, size_t errlen);

#endif
