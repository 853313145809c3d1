# SPDX-License-Identifier: MIT
# A daemon killed with SIGKILL while a job runs: the next daemon on the same
# database marks that job failed, keeps the epochs it completed, and runs
# the job that was queued behind it.
import os
import subprocess

from conftest import (DATA_ROOT, SPKD, long_spec, tiny_spec, wait_finished,
                      wait_for)

DEADLINE = 90.0
STOPPED = 'daemon stopped while the job was running'


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def test_kill_while_running_then_restart(spkd_factory):
    first = spkd_factory.start()
    c1 = first.client
    victim = c1.submit(long_spec(name='victim'))
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
    failed = c2.get_json(f"/v1/jobs/{victim['id']}")
    assert failed['state'] == 'failed', failed
    assert STOPPED in failed['error'], failed['error']
    assert failed['finished_at'] is not None
    assert failed['cancel_requested'] is False
    kept = metrics_of(c2, victim['id'])
    assert len(kept) >= len(seen)
    assert kept[:len(seen)] == seen
    assert failed['stages']['spl']['completed_epochs'] == len(
        [m for m in kept if m['stage'] == 'spl'])
    # The easy set of a completed epoch is still there.
    epoch = kept[-1]['epoch']
    page = c2.get_json(f"/v1/jobs/{victim['id']}/stages/spl/epochs/{epoch}"
                       "/samples", params={'limit': 1000})
    assert page['total'] == kept[-1]['easy_size']

    done = wait_finished(c2, waiting['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
    assert all(s['completed_epochs'] == s['epochs']
               for s in done['stages'].values())
    # The failed job stays failed: it is not run again.
    assert c2.get_json(f"/v1/jobs/{victim['id']}") == failed
    assert [j['id'] for j in c2.jobs()] == [waiting['id'], victim['id']]


def test_second_daemon_leaves_running_jobs_alone(spkd_factory):
    """A second daemon on the same database, whether it fails to start
    (its port is taken) or starts on another port, never marks the first
    daemon's running job failed: it is still the first's, and ends
    succeeded."""
    first = spkd_factory.start()
    c1 = first.client
    spec = tiny_spec(name='owned')
    spec['dataset']['limit'] = 3000
    spec['spl']['epochs'] = 40  # several seconds: long enough to look at
    job = c1.submit(spec)
    wait_for('the job to run',
             lambda: c1.get_json(f"/v1/jobs/{job['id']}")['state']
             == 'running', DEADLINE)

    clash = subprocess.run(
        [SPKD, '--listen', f'127.0.0.1:{first.port}', '--db', first.db,
         '--data-root', DATA_ROOT], capture_output=True, text=True,
        timeout=60)
    assert clash.returncode != 0
    assert c1.get_json(f"/v1/jobs/{job['id']}")['state'] == 'running'

    second = spkd_factory.start(os.path.basename(first.db))
    assert second.client.get_json(f"/v1/jobs/{job['id']}")['state'] == \
        'running'
    done = wait_finished(c1, job['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
