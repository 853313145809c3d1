# SPDX-License-Identifier: MIT
"""PyTorch on the CPU with the models of spkd's bench (mlp, cnn), batch 128,
random data, held to the same limits spkbench measured in this run
(build/bench-limits.txt). Tries 1 and 2 intra-op threads and reports the
better, as the fairest 2-thread setting."""
import time

import torch
import torch.nn as nn

BATCH = 128


def limits():
    out = {}
    with open('build/bench-limits.txt') as f:
        for line in f:
            key, value = line.strip().split('=')
            out[key] = float(value)
    return out


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                         nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def step_seconds(make, steps):
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps + 5):
        if i == 5:
            start = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def best(make, steps):
    times = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times.append((step_seconds(make, steps), threads))
    return min(times)


def main():
    lim = limits()
    t, threads = best(mlp, 300)
    print(f'torch mlp training: {BATCH / t:10.1f} samples/s '
          f'{100 * lim["mlp_bound_seconds"] / t:5.1f} % of the GEMM-only '
          f'bound ({threads} thread(s), torch {torch.__version__})')
    t, threads = best(cnn, 40)
    print(f'torch cnn training: {BATCH / t:10.1f} samples/s '
          f'{100 * BATCH * 22.3e-3 / t / lim["peak_gflops"]:5.1f} % of the '
          f'sgemm peak ({threads} thread(s))')


if __name__ == '__main__':
    main()
