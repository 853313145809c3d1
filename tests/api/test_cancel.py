# SPDX-License-Identifier: MIT
# Cancelling with one job slot: a long job runs while others wait queued;
# a queued job is cancelled at once, the running one at its next batch.
import pytest

from conftest import long_spec, tiny_spec, wait_finished, wait_state
from spkapi import expect_error

DEADLINE = 60.0


@pytest.fixture
def busy(spkd):
    """A daemon with one slot held by a long job that is running."""
    client = spkd.client
    long_job = client.submit(long_spec())
    assert long_job['state'] in ('queued', 'running')
    running = wait_state(client, long_job['id'], ('running',), DEADLINE)
    return client, running


def test_cancel_queued_then_running(busy):
    client, running = busy
    queued = client.submit(tiny_spec(name='waits'))
    assert queued['state'] == 'queued'
    assert queued['started_at'] is None and queued['provenance'] is None
    assert queued['stage'] is None and queued['epoch'] == 0
    assert all(s['completed_epochs'] == 0 and s['test_acc'] is None
               for s in queued['stages'].values())
    assert [j['id'] for j in client.jobs()] == [queued['id'], running['id']]

    # Nothing of a job that has not started can be read yet.
    qid = queued['id']
    assert client.get_json(f'/v1/jobs/{qid}/metrics')['items'] == []
    expect_error(client.get(f'/v1/jobs/{qid}/samples/0'), 404, 'not_found')
    expect_error(client.get(f'/v1/jobs/{qid}/stages/spl/epochs/1/samples'),
                 404, 'not_found')

    resp = client.post(f'/v1/jobs/{qid}/cancel')
    assert resp.status_code == 200, resp.text
    assert resp.json()['state'] == 'cancelled'
    assert client.get_json(f'/v1/jobs/{qid}')['state'] == 'cancelled'
    expect_error(client.post(f'/v1/jobs/{qid}/cancel'), 409, 'conflict')

    rid = running['id']
    resp = client.post(f'/v1/jobs/{rid}/cancel')
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job['state'] == 'running' and job['cancel_requested'] is True
    done = wait_finished(client, rid, DEADLINE)
    assert done['state'] == 'cancelled', done
    assert done['finished_at'] is not None
    # Cancelled while it loaded its data or in its first stage.
    assert done['stage'] in (None, 'spl')
    assert done['epoch'] < done['stages']['spl']['epochs']
    expect_error(client.post(f'/v1/jobs/{rid}/cancel'), 409, 'conflict')

    # The cancelled queued job never ran, even once the slot was free.
    still = client.get_json(f'/v1/jobs/{qid}')
    assert still['state'] == 'cancelled' and still['started_at'] is None


def test_boundary_spec_is_accepted(busy):
    client, running = busy
    spec = {
        'name': 'x' * 100, 'seed': 2 ** 53 - 1, 'threads': 64,
        'dataset': {'name': 'fashion-mnist', 'limit': 60000,
                    'validation_fraction': 0.5, 'label_noise': None},
        'optimizer': {'kind': 'sgd', 'lr': 10, 'momentum': 0,
                      'weight_decay': 1, 'batch_size': 4096,
                      'schedule': 'constant'},
        'spl': {'model': 'mlp', 'epochs': 1000, 'warmup_epochs': 1000,
                'optimizer': {'lr': 1e-9},
                'pace': {'kind': 'fraction', 'start': 1, 'end': 1}},
        'teachers': [{'model': 'mlp', 'epochs': 1000}],
        'student': {'model': 'mlp', 'epochs': 1,
                    'kd': {'alpha': 0, 'temperature': 100}},
        'baseline': None,
    }
    job = client.submit(spec)
    assert job['state'] == 'queued'
    assert job['spec'] == spec
    assert job['name'] == spec['name']
    assert set(job['stages']) == {'spl', 'teacher', 'student'}
    assert job['stages']['spl']['epochs'] == 1000
    assert job['stages']['student']['epochs'] == 1
    smallest = client.submit({'dataset': {'name': 'fashion-mnist'}})
    assert smallest['name'] is None
    assert set(smallest['stages']) == {'spl', 'teacher', 'student'}
    compared = client.submit({'dataset': {'name': 'fashion-mnist'},
                              'baseline': {}})
    assert compared['stages']['baseline']['epochs'] == \
        compared['stages']['student']['epochs'] == 20
    for j in (smallest, compared, job, running):
        assert client.post(f"/v1/jobs/{j['id']}/cancel").status_code == 200
    for j in (smallest, compared, job, running):
        assert wait_finished(client, j['id'], DEADLINE)['state'] == \
            'cancelled'


def test_job_list_pages_newest_first(busy):
    client, running = busy
    ids = [running['id']]
    for n in range(4):
        ids.append(client.submit(tiny_spec(name=f'page-{n}'))['id'])
    ids.reverse()
    pages = client.get_all('/v1/jobs', limit=2)
    assert [len(p['items']) for p in pages] == [2, 2, 1]
    assert [j['id'] for p in pages for j in p['items']] == ids
    assert [j['id'] for j in client.jobs()] == ids
    for job_id in ids:
        assert client.post(f'/v1/jobs/{job_id}/cancel').status_code == 200
    for job_id in ids:
        assert wait_finished(client, job_id, DEADLINE)['state'] == \
            'cancelled'
