#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs every Debian and npm package spkd builds, runs and tests with.
# Idempotent: when everything is present it only checks and returns.
set -eu

DEB_PACKAGES="build-essential pkg-config libopenblas-dev libmicrohttpd-dev
libjansson-dev libsqlite3-dev libuv1-dev zlib1g-dev libgnutls28-dev libcmocka-dev dataset-fashion-mnist
curl python3-pytest python3-requests python3-jsonschema python3-yaml"

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
