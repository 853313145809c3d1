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

echo
echo "== peak resident memory of 'spkd train --model cnn --epochs 1' (full set)"
/usr/bin/python3 tests/bench/maxrss.py ./build/spkd train \
  --dataset fashion-mnist --model cnn --epochs 1 --threads 2

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
