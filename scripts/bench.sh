#!/bin/sh
# SPDX-License-Identifier: MIT
# `make bench`: the engine's speed against this machine's own limits
# (build/spkbench), the peak memory of a cnn training run on the full
# Fashion-MNIST, and PyTorch on the same models when Debian's python3-torch
# is installed (BENCH_TORCH=1 installs it: about 1 GB).
set -eu
cd "$(dirname "$0")/.."

echo "== engine against this machine's limits"
./build/spkbench
echo; echo "== per-sample epoch records in SQLite"; ./build/spkrecbench

echo
echo "== peak resident memory of 'spkd train --model cnn --epochs 1' (full set)"
/usr/bin/python3 tests/bench/maxrss.py ./build/spkd train \
  --dataset fashion-mnist --model cnn --epochs 1 --threads 2

echo
echo "== examples/quick.json and examples/sym40.json with spkd run"
tmp=$(mktemp -d)
start=$(date +%s%N)
./build/spkd run examples/quick.json --db "$tmp/bench.db" >/dev/null
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
echo "quick: $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (target <= 15 s)"
./build/spkd run examples/sym40.json --db "$tmp/bench.db" \
  --summary "$tmp/sym40.json" >/dev/null
/usr/bin/python3 tests/bench/sym40_ratio.py "$tmp/bench.db" 2 "$tmp/sym40.json"
rm -rf "$tmp"

echo
echo "== the daemon: latency under load, event streams, throughput"
/usr/bin/python3 tests/bench/daemon_bench.py

if [ "${BENCH_TORCH:-0}" = 1 ] && ! /usr/bin/python3 -c 'import torch' 2>/dev/null
then
  apt-get install -y --no-install-recommends python3-torch
fi
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo
  echo "== PyTorch on the CPU, same models, batch 128, 2 threads"
  /usr/bin/python3 tests/bench/torch_bench.py
else
  echo
  echo "(PyTorch comparison skipped: python3-torch is not installed;"
  echo " run 'BENCH_TORCH=1 make bench' to install it)"
fi
