# SPDX-License-Identifier: MIT
"""Holds a finished job's wall time to the GEMM-only time of all the work
it did: every training sample at the mlp step's GEMM-only time per sample
(from build/bench-limits.txt, measured in the same bench run), every
forward-only sample (scoring, validation, test, the teacher's soft labels)
at its share of a training step's GEMMs. Usage: sym40_ratio.py DB JOB_ID
SUMMARY.json"""
import json
import sqlite3
import sys

BATCH = 128
# Forward GEMM FLOPs of the mlp against a whole training step's (forward,
# weight gradients, input gradients but the first layer's).
DIMS = [784, 512, 256, 10]
FWD = sum(DIMS[i] * DIMS[i + 1] for i in range(3))
STEP = 2 * FWD + sum(DIMS[i] * DIMS[i + 1] for i in range(1, 3))
FORWARD_SHARE = FWD / STEP


def limits():
    with open('build/bench-limits.txt') as f:
        return dict((k, float(v)) for k, v in
                    (line.strip().split('=') for line in f))


def main():
    db, job, summary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    wall = json.load(open(summary))['wall_seconds']
    con = sqlite3.connect(db)
    n_train = con.execute('SELECT count(*) FROM job_samples WHERE job_id = ? '
                          'AND split = 0', (job,)).fetchone()[0]
    n_val = con.execute('SELECT count(*) FROM job_samples WHERE job_id = ? '
                        'AND split = 1', (job,)).fetchone()[0]
    rows = con.execute('SELECT stage, epoch, easy_size FROM epoch_metrics '
                       'WHERE job_id = ? ORDER BY stage, epoch',
                       (job,)).fetchall()
    trained = forward = 0
    previous_easy = {}
    for stage, epoch, easy in rows:
        if stage == 'spl':
            trained += previous_easy.get(stage, n_train) if epoch > 1 \
                else n_train
        elif stage == 'teacher':
            trained += easy
        else:
            trained += n_train
        previous_easy[stage] = easy
        forward += n_train + n_val + 10000  # scoring, validation, test
    forward += n_train  # the teacher's soft labels, once
    per_sample = limits()['mlp_bound_seconds'] / BATCH
    gemm = (trained + FORWARD_SHARE * forward) * per_sample
    print(f'sym40: {trained} training and {forward} forward-only samples; '
          f'GEMM-only time {gemm:.1f} s, wall {wall:.1f} s, ratio '
          f'{wall / gemm:.2f} (target <= 1.35)'
          f'{"" if wall / gemm <= 1.35 else "  MISSED"}')


if __name__ == '__main__':
    main()
