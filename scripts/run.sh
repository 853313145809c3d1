#!/bin/sh
# SPDX-License-Identifier: MIT
# `make run`: starts the daemon on 127.0.0.1:8080 with its database under
# ./var in the foreground, and from the background submits
# examples/auto.json (the recommended recipe, at 40 % symmetric noise)
# once it answers and prints how to follow the job.
# Ctrl-C stops the daemon cleanly.
set -eu

addr=${SPKD_LISTEN:-127.0.0.1:8080}
url="http://$addr"
mkdir -p var

submit() {
  # Wait for the daemon to answer, for at most 30 s.
  tries=0
  until curl -fsS "$url/healthz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 300 ]; then
      echo "run: spkd did not answer on $url within 30 s" >&2
      return 1
    fi
    sleep 0.1
  done
  job=$(curl -sS -X POST -H 'Content-Type: application/json' \
    --data-binary @examples/auto.json "$url/v1/jobs")
  id=$(printf '%s' "$job" | sed -n 's/^{"id":\([0-9]*\).*/\1/p')
  if [ -z "$id" ]; then
    echo "run: submitting examples/auto.json failed: $job" >&2
    return 1
  fi
  cat >&2 <<MSG

  Submitted examples/auto.json as job $id: $url/v1/jobs/$id

  Dashboard: $url/jobs/$id   (all jobs: $url/)

  Follow it with:
    build/spkctl --server $url events $id
    curl -s $url/v1/jobs/$id
    curl -s $url/v1/jobs/$id/metrics
    curl -s '$url/v1/jobs/$id/stages/spl/samples?limit=20'
    curl -s $url/v1/jobs/$id/samples/0
  Ctrl-C stops the daemon (the job resumes at the next start).

MSG
}

# In a subshell of its own, so that init, not the daemon, reaps it.
(submit &)
exec ./build/spkd --listen "$addr" --db var/spkd.db
