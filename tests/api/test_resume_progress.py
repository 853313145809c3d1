# SPDX-License-Identifier: MIT
# A job's progress right after it resumes: a daemon stopped while the
# self-paced stage trains puts the job back in the queue, and once the
# next daemon resumes the stage, the job shows the stage with the epochs
# it had completed (never epoch 0) in its row and in GET /v1/jobs/{id}.
import json

from conftest import db_rows, tiny_spec, wait_finished, wait_for

DEADLINE = 120.0


def spl_epochs(client, job_id):
    return [m['epoch'] for page in client.get_all(
        f'/v1/jobs/{job_id}/metrics', limit=1000)
        for m in page['items'] if m['stage'] == 'spl']


def spl_started(db, job_id):
    """How many times the job's spl stage started, from its log events."""
    rows = db_rows(db, "SELECT data FROM events WHERE job_id = ? AND "
                   "kind = 'log'", job_id)
    return sum(json.loads(d)['message'] == 'stage spl started'
               for (d,) in rows)


def test_resumed_stage_shows_its_completed_epochs(spkd_factory):
    first = spkd_factory.start()
    spec = tiny_spec(name='resume-progress')
    spec['dataset']['limit'] = 6000
    spec['spl']['epochs'] = 8
    del spec['baseline']
    job_id = first.client.submit(spec)['id']
    wait_for('two spl epochs', lambda: len(spl_epochs(first.client,
                                                      job_id)) >= 2,
             DEADLINE, interval=0.02)
    assert first.stop() == 0
    (done,), = db_rows(first.db, "SELECT max(epoch) FROM epoch_metrics "
                       "WHERE job_id = ? AND stage = 'spl'", job_id)
    assert done < 8, 'the spl stage ended before the daemon stopped'

    second = spkd_factory.restart(first)
    wait_for('the spl stage to start again',
             lambda: spl_started(second.db, job_id) == 2, DEADLINE,
             interval=0.01)
    (stage, epoch), = db_rows(second.db, 'SELECT stage, epoch FROM jobs '
                              'WHERE id = ?', job_id)
    assert stage == 'spl' and epoch >= done, (stage, epoch, done)
    job = second.client.get_json(f'/v1/jobs/{job_id}')
    if job['stage'] == 'spl':
        assert job['epoch'] == job['stages']['spl']['completed_epochs']
        assert job['epoch'] >= done, job
    job = wait_finished(second.client, job_id, DEADLINE)
    assert job['state'] == 'succeeded', job
