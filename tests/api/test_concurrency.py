# SPDX-License-Identifier: MIT
# Jobs side by side: with --jobs 2 --threads-per-job 1 two jobs run at
# once on no more threads than that allows, and each gives exactly the
# numbers it gives when it runs alone.
import os

from conftest import tiny_spec, wait_finished, wait_for

DEADLINE = 120.0


def thread_count(pid):
    return len(os.listdir(f'/proc/{pid}/task'))


def metrics_of(client, job_id):
    items = client.get_json(f'/v1/jobs/{job_id}/metrics',
                            params={'limit': 1000})['items']
    return [(m['stage'], m['epoch'], m['train_loss'], m['train_acc'],
             m['val_acc'], m['test_acc'], m['easy_size']) for m in items]


def spec_without_threads(name, seed):
    spec = tiny_spec(name=name, seed=seed)
    del spec['threads']
    spec['dataset']['limit'] = 2000
    spec['spl']['epochs'] = 3
    return spec


def test_two_jobs_at_once_match_each_alone(spkd_factory):
    together = spkd_factory.start(
        db_name='together.db', jobs=2, args=('--threads-per-job', '1'))
    pid = together.proc.pid
    idle = thread_count(pid)
    specs = [spec_without_threads('a', 11), spec_without_threads('b', 12)]
    ids = [together.client.submit(s)['id'] for s in specs]

    # While both run, the process holds at most one thread per job more
    # than when idle (each job's libuv worker; a job of one thread starts
    # no helpers, and OpenBLAS none of its own).
    seen = []

    def both_running():
        states = [together.client.get_json(f'/v1/jobs/{i}')['state']
                  for i in ids]
        seen.append(thread_count(pid))
        return states == ['running', 'running']
    wait_for('both jobs to run at once', both_running, DEADLINE)
    for _ in range(20):
        seen.append(thread_count(pid))
    assert max(seen) <= idle + 2, (idle, seen)

    done = [wait_finished(together.client, i, DEADLINE) for i in ids]
    assert [j['state'] for j in done] == ['succeeded', 'succeeded'], done
    for j in done:
        assert j['provenance']['threads'] == 1, j['provenance']

    alone = spkd_factory.start(db_name='alone.db', jobs=1)
    for spec, jid in zip(specs, ids):
        spec = dict(spec, threads=1)
        solo = alone.client.submit(spec)['id']
        assert wait_finished(alone.client, solo, DEADLINE)['state'] == \
            'succeeded'
        assert metrics_of(alone.client, solo) == \
            metrics_of(together.client, jid)


def test_threads_per_job_bounds_a_spec(spkd_factory):
    d = spkd_factory.start(args=('--threads-per-job', '1'))
    spec = tiny_spec(name='asks-for-four', threads=4)
    job = d.client.submit(spec)
    done = wait_finished(d.client, job['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
    assert done['provenance']['threads'] == 1
    assert done['spec']['threads'] == 4
