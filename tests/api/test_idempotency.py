# SPDX-License-Identifier: MIT
# Idempotency-Key on POST /v1/jobs: a retry with the same key and body
# answers 200 with the job the first request made (also after a restart,
# also when the requests arrive together), another body with the key is
# 409, a bad key is 400, and a refused request does not use its key up.
import json
import os
import shutil
import threading

import pytest

from conftest import (DATA_ROOT, long_spec, tiny_spec, wait_finished,
                      wait_state)
from spkapi import ApiClient, expect_error

DEADLINE = 60.0
KEY = 'Idempotency-Key'


@pytest.fixture
def busy(spkd):
    """A daemon with one slot held by a long job that is running, so
    jobs submitted in a test stay queued."""
    client = spkd.client
    long_job = client.submit(long_spec())
    running = wait_state(client, long_job['id'], ('running',), DEADLINE)
    return client, running


def post(client, body, key=None):
    """POSTs body (a dict, or text sent as is) with key (None: none)."""
    headers = {KEY: key} if key is not None else {}
    if isinstance(body, dict):
        return client.post('/v1/jobs', json_body=body, headers=headers)
    return client.post('/v1/jobs', data=body, headers=headers)


def created(resp):
    assert resp.status_code == 201, resp.text
    assert KEY not in resp.headers and \
        'Idempotent-Replayed' not in resp.headers
    job = resp.json()
    assert resp.headers['Location'] == f"/v1/jobs/{job['id']}"
    return job


def replayed(resp, job_id):
    assert resp.status_code == 200, resp.text
    assert resp.headers['Idempotent-Replayed'] == 'true'
    assert resp.headers['Location'] == f'/v1/jobs/{job_id}'
    assert resp.json()['id'] == job_id
    return resp.json()


def job_ids(client):
    return [j['id'] for j in client.jobs()]


def cancel_all(client, ids):
    for job_id in ids:
        resp = client.post(f'/v1/jobs/{job_id}/cancel')
        assert resp.status_code == 200, resp.text
    for job_id in ids:
        assert wait_finished(client, job_id, DEADLINE)['state'] == \
            'cancelled'


def test_same_key_same_body_makes_one_job(busy):
    client, running = busy
    spec = tiny_spec(name='once', priority=3)
    first = created(post(client, spec, 'order-1'))
    after_first = job_ids(client)
    assert after_first == [first['id'], running['id']]

    again = replayed(post(client, spec, 'order-1'), first['id'])
    assert again == client.get_json(f"/v1/jobs/{first['id']}")
    assert again['spec'] == spec and again['priority'] == 3
    # The same document written otherwise is the same body.
    text = json.dumps(spec, sort_keys=True, indent=3)
    replayed(post(client, text, 'order-1'), first['id'])
    assert job_ids(client) == after_first

    # Another key, or none, makes another job from the same body.
    other = created(post(client, spec, 'order-2'))
    plain = created(post(client, spec))
    assert job_ids(client) == [plain['id'], other['id']] + after_first
    replayed(post(client, spec, 'order-2'), other['id'])
    cancel_all(client, [first['id'], other['id'], plain['id'],
                        running['id']])
    # A finished job still answers its key.
    done = replayed(post(client, spec, 'order-1'), first['id'])
    assert done['state'] == 'cancelled'


def test_same_key_other_body_is_a_conflict(busy):
    client, running = busy
    spec = tiny_spec(name='first')
    job = created(post(client, spec, 'k-1'))
    before = client.jobs()
    for other in (tiny_spec(name='second'), tiny_spec(name='first', seed=4),
                  tiny_spec(name='first', priority=1)):
        err = expect_error(post(client, other, 'k-1'), 409, 'conflict')
        assert f"job {job['id']}" in err['message'], err
        assert 'another body' in err['message'], err
    # Nothing stored changed; the first body still replays.
    after = client.jobs()
    assert [j['id'] for j in after] == [j['id'] for j in before]
    assert after[0] == before[0]
    replayed(post(client, spec, 'k-1'), job['id'])
    cancel_all(client, [job['id'], running['id']])


@pytest.mark.parametrize('key', ['', 'k' * 256, 'tab\there',
                                 'caf\u00e9', 'x' * 300])
def test_bad_keys_are_refused(client, key):
    before = job_ids(client)
    resp = post(client, tiny_spec(), key)
    err = expect_error(resp, 400, 'invalid_parameter', KEY)
    assert '255' in err['message'], err
    assert job_ids(client) == before


def test_key_bounds_and_characters(busy):
    client, running = busy
    made = []
    for key in ('k' * 255, 'a', '!"#$%&()*+,-./09:;<=>?@AZ[\\]^_`az{|} ~',
                '550e8400-e29b-41d4-a716-446655440000'):
        job = created(post(client, tiny_spec(name='bounds'), key))
        replayed(post(client, tiny_spec(name='bounds'), key), job['id'])
        made.append(job['id'])
    # Keys differ by case.
    made.append(created(post(client, tiny_spec(name='bounds'), 'A'))['id'])
    assert len(set(made)) == 5
    cancel_all(client, made + [running['id']])


def test_refused_request_does_not_use_its_key(busy):
    client, running = busy
    before = job_ids(client)
    expect_error(post(client, tiny_spec(threads=0), 'retry-me'), 400,
                 'invalid_spec', 'threads')
    expect_error(post(client, b'{"dataset": ', 'retry-me'), 400,
                 'malformed_json')
    resp = client.post('/v1/jobs', json_body=tiny_spec(),
                       params={'x': '1'}, headers={KEY: 'retry-me'})
    expect_error(resp, 400, 'invalid_parameter', 'x')
    assert job_ids(client) == before
    job = created(post(client, tiny_spec(name='good'), 'retry-me'))
    replayed(post(client, tiny_spec(name='good'), 'retry-me'), job['id'])
    cancel_all(client, [job['id'], running['id']])


def test_requests_at_once_make_one_job(busy):
    client, running = busy
    body = json.dumps(tiny_spec(name='racing'))
    n = 8
    gate = threading.Barrier(n)
    results = [None] * n

    def send(i):
        c = ApiClient(client.base_url)
        gate.wait()
        resp = c.post('/v1/jobs', data=body, headers={KEY: 'race'})
        results[i] = (resp.status_code, resp.json()['id'],
                      resp.headers.get('Idempotent-Replayed'))
    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert None not in results
    assert sorted(r[0] for r in results) == [200] * (n - 1) + [201]
    assert len({r[1] for r in results}) == 1
    assert sorted(str(r[2]) for r in results) == ['None'] + ['true'] * (n - 1)
    job_id = results[0][1]
    assert job_ids(client) == [job_id, running['id']]
    cancel_all(client, [job_id, running['id']])


def test_key_survives_a_restart(spkd_factory):
    daemon = spkd_factory.start()
    client = daemon.client
    spec = long_spec(name='kept')
    job = created(post(client, spec, 'across-restarts'))
    wait_state(client, job['id'], ('running',), DEADLINE)
    assert daemon.stop() == 0

    daemon = spkd_factory.restart(daemon)
    client = daemon.client
    replayed(post(client, spec, 'across-restarts'), job['id'])
    expect_error(post(client, tiny_spec(), 'across-restarts'), 409,
                 'conflict')
    assert job_ids(client) == [job['id']]
    cancel_all(client, [job['id']])


def test_replay_comes_before_the_checks(spkd_factory, tmp_path):
    """A retry answers with its job even when the data root no longer
    holds the job's dataset; a new submission is checked as ever."""
    root = tmp_path / 'data'
    copy = root / 'fashion-mnist'
    shutil.copytree(os.path.join(DATA_ROOT, 'fashion-mnist'), copy)
    daemon = spkd_factory.start(args=['--data-root', str(root)])
    spec = tiny_spec(name='checked-once')
    job = created(post(daemon.client, spec, 'before-the-move'))
    cancel_all(daemon.client, [job['id']])
    assert daemon.stop() == 0

    shutil.rmtree(copy)
    client = spkd_factory.restart(daemon).client
    replayed(post(client, spec, 'before-the-move'), job['id'])
    expect_error(post(client, spec, 'after-the-move'), 400, 'invalid_spec',
                 'dataset.name')
    assert job_ids(client) == [job['id']]


def test_deleting_the_job_forgets_its_key(busy):
    client, running = busy
    spec = tiny_spec(name='forgotten')
    job = created(post(client, spec, 'one-off'))
    cancel_all(client, [job['id']])
    resp = client.delete(f"/v1/jobs/{job['id']}")
    assert resp.status_code == 200, resp.text
    # The key now names nothing: the same request makes a new job.
    again = created(post(client, spec, 'one-off'))
    assert again['id'] > job['id']
    replayed(post(client, spec, 'one-off'), again['id'])
    cancel_all(client, [again['id'], running['id']])
