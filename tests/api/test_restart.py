# SPDX-License-Identifier: MIT
# A daemon killed with SIGKILL while a job runs: the next daemon on the same
# database requeues that job, resumes it after its last stored epoch (the
# epochs stored before the kill stay as they were, none is run twice) and
# then runs the job queued behind it. A second daemon started beside a live
# one leaves the first one's running job alone.
import os
import subprocess

from conftest import (DATA_ROOT, SPKD, tiny_spec, wait_finished, wait_for)

DEADLINE = 90.0
REQUEUED = 'requeued to resume job='


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def by_epoch(items):
    """The metrics keyed by (stage, epoch); fails on a pair seen twice."""
    keyed = {(m['stage'], m['epoch']): m for m in items}
    assert len(keyed) == len(items), sorted((m['stage'], m['epoch'])
                                            for m in items)
    return keyed


def assert_all_epochs_once(job, items):
    """Every planned epoch of every stage of job is in items, once."""
    keyed = by_epoch(items)
    want = {(stage, e) for stage, s in job['stages'].items()
            for e in range(1, s['epochs'] + 1)}
    assert set(keyed) == want


def test_kill_while_running_then_restart(spkd_factory):
    first = spkd_factory.start()
    c1 = first.client
    spec = tiny_spec(name='victim')
    spec['spl']['epochs'] = 4  # time to see an epoch and kill mid-job
    spec['student']['epochs'] = 2
    spec['baseline']['epochs'] = 2
    victim = c1.submit(spec)
    waiting = c1.submit(tiny_spec(name='waiting'))

    def one_epoch_done():
        job = c1.get_json(f"/v1/jobs/{victim['id']}")
        if job['state'] != 'running':
            return None
        items = metrics_of(c1, victim['id'])
        return (job, items) if items else None

    running, seen = wait_for('a completed epoch of the running job',
                             one_epoch_done, DEADLINE)
    assert c1.get_json(f"/v1/jobs/{waiting['id']}")['state'] == 'queued'
    first.kill9()

    second = spkd_factory.restart(first)
    c2 = second.client
    again = c2.get_json(f"/v1/jobs/{victim['id']}")
    assert again['state'] in ('queued', 'running'), again
    assert again['finished_at'] is None and again['error'] is None

    done = wait_finished(c2, victim['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
    assert done['error'] is None and done['cancel_requested'] is False
    assert all(s['completed_epochs'] == s['epochs']
               for s in done['stages'].values()), done['stages']
    kept = metrics_of(c2, victim['id'])
    assert_all_epochs_once(done, kept)
    # The epochs stored before the kill were not run again: their rows,
    # timings included, are those the first daemon wrote.
    final = by_epoch(kept)
    for key, m in by_epoch(seen).items():
        assert final[key] == m, key
    assert f"{REQUEUED}{victim['id']}" in second.tail(200)

    behind = wait_finished(c2, waiting['id'], DEADLINE)
    assert behind['state'] == 'succeeded', behind
    assert all(s['completed_epochs'] == s['epochs']
               for s in behind['stages'].values())
    assert_all_epochs_once(behind, metrics_of(c2, waiting['id']))
    # The resumed job, the older one, had the only slot first.
    assert behind['started_at'] >= done['finished_at']
    assert [j['id'] for j in c2.jobs()] == [waiting['id'], victim['id']]


def test_second_daemon_leaves_running_jobs_alone(spkd_factory):
    """A second daemon on the same database, whether it fails to start
    (its port is taken) or starts on another port, never takes the first
    daemon's running job over (the first holds its claim): the job is not
    requeued, keeps the start time the first gave it, runs each epoch
    once and ends succeeded under the first."""
    first = spkd_factory.start()
    c1 = first.client
    spec = tiny_spec(name='owned')
    spec['dataset']['limit'] = 3000
    spec['spl']['epochs'] = 40  # several seconds: long enough to look at
    job = c1.submit(spec)
    running = wait_for(
        'the job to run',
        lambda: (lambda j: j if j['state'] == 'running' else None)(
            c1.get_json(f"/v1/jobs/{job['id']}")), DEADLINE)

    clash = subprocess.run(
        [SPKD, '--listen', f'127.0.0.1:{first.port}', '--db', first.db,
         '--data-root', DATA_ROOT], capture_output=True, text=True,
        timeout=60)
    assert clash.returncode != 0
    assert REQUEUED not in clash.stdout + clash.stderr
    assert c1.get_json(f"/v1/jobs/{job['id']}")['state'] == 'running'

    second = spkd_factory.start(os.path.basename(first.db))
    seen = second.client.get_json(f"/v1/jobs/{job['id']}")
    assert seen['state'] == 'running'
    assert seen['started_at'] == running['started_at']
    done = wait_finished(c1, job['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
    assert done['started_at'] == running['started_at']
    assert_all_epochs_once(done, metrics_of(c1, job['id']))
    assert REQUEUED not in second.tail(200)
    assert REQUEUED not in first.tail(200)
    # The second daemon saw the job end and never ran it.
    assert second.client.get_json(f"/v1/jobs/{job['id']}") == done
    assert f"job started job={job['id']}" not in second.tail(200)
