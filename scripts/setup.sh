#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs every Debian and npm package spkd builds, runs and tests with.
# Idempotent: when everything is present it only checks and returns.
set -eu

DEB_PACKAGES="build-essential pkg-config libopenblas-dev libmicrohttpd-dev
libjansson-dev libsqlite3-dev libuv1-dev zlib1g-dev libgnutls28-dev libcmocka-dev dataset-fashion-mnist
curl python3-pytest python3-requests python3-jsonschema python3-yaml
python3-prometheus-client hey wrk chromium"

missing=""
for p in $DEB_PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"
  then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages:$missing (run as root)" >&2
    exit 1
  fi
  echo "setup: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
  fi
fi

# Node.js and npm come from Debian only when the machine has none.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm" >&2
  apt-get install -y --no-install-recommends nodejs npm || {
    apt-get update
    apt-get install -y --no-install-recommends nodejs npm
  }
fi

# The npm packages pinned in package-lock.json (the OpenAPI linter, uPlot,
# playwright-core), into ./node_modules; skipped when they are already there
# and up to date. Playwright never downloads a browser: the tests drive
# Debian's chromium.
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
