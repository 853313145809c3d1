# SPDX-License-Identifier: MIT
# The job queue: jobs start by priority (highest first, oldest first
# within a priority), never more at once than --jobs, the job list filters
# by state and pages through a large queue exactly once, and finished
# jobs can be deleted while queued and running ones cannot.
import concurrent.futures
import json

import pytest

from conftest import long_spec, tiny_spec, wait_finished, wait_for, wait_state
from spkapi import ApiClient, expect_error

DEADLINE = 60.0
STATES = ('queued', 'running', 'succeeded', 'failed', 'cancelled')


@pytest.fixture
def busy(spkd):
    """A daemon with one slot held by a long job that is running."""
    client = spkd.client
    long_job = client.submit(long_spec())
    running = wait_state(client, long_job['id'], ('running',), DEADLINE)
    return client, running


def ids_in(client, state, limit=1000):
    """The ids of every job in state, over all pages, newest first."""
    pages = client.get_all('/v1/jobs', limit=limit, params={'state': state})
    for page in pages:
        assert all(j['state'] == state for j in page['items']), page
    return [j['id'] for p in pages for j in p['items']]


def cancel(client, job_id):
    resp = client.post(f'/v1/jobs/{job_id}/cancel')
    assert resp.status_code == 200, resp.text


def cancel_all(client, ids, threads=4):
    """Cancels every job of ids, several requests at a time in about
    their order (give a running job last, so no queued one gets its slot
    and runs), and waits until each has ended."""
    def one(job_id):
        return ApiClient(client.base_url).post(
            f'/v1/jobs/{job_id}/cancel').status_code
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        assert set(pool.map(one, ids)) <= {200}
    for job_id in ids:
        assert wait_finished(client, job_id, DEADLINE)['state'] == \
            'cancelled'


# ---- Priorities. ----

@pytest.mark.parametrize('value', [-101, 101, 2 ** 31, '1', 1.5, True, None,
                                   [1], {}])
def test_bad_priority_is_refused(client, value):
    before = client.jobs()
    resp = client.post('/v1/jobs', json_body=tiny_spec(priority=value))
    err = expect_error(resp, 400, 'invalid_spec', 'priority')
    assert 'from -100 to 100' in err['message'], err
    after = client.jobs()
    assert [j['id'] for j in after] == [j['id'] for j in before]


def test_priority_is_stored_and_shown(busy):
    client, running = busy
    assert running['priority'] == 0
    jobs = [client.submit(tiny_spec(name=f'p{p}', priority=p))
            for p in (-100, 100, 0, 7)]
    jobs.append(client.submit(tiny_spec(name='default')))
    assert [j['priority'] for j in jobs] == [-100, 100, 0, 7, 0]
    for job in jobs:
        got = client.get_json(f"/v1/jobs/{job['id']}")
        assert got['priority'] == job['priority']
        assert got['state'] == 'queued'
    assert jobs[0]['spec']['priority'] == -100
    assert 'priority' not in jobs[-1]['spec']
    listed = {j['id']: j['priority'] for j in client.jobs()}
    assert [listed[j['id']] for j in jobs] == [-100, 100, 0, 7, 0]
    cancel_all(client, [j['id'] for j in jobs] + [running['id']])


def test_highest_priority_starts_first_fifo_within(busy):
    """With the only slot busy, jobs queued low, high, normal, high, low
    start high, high, normal, low, low: each is cancelled once it runs,
    which frees the slot for the next."""
    client, running = busy
    queue = [('low-1', -5), ('high-1', 10), ('normal', 0), ('high-2', 10),
             ('low-2', -5)]
    jobs = {}
    for name, priority in queue:
        job = client.submit(long_spec(name=name, priority=priority))
        assert job['state'] == 'queued' and job['priority'] == priority
        jobs[name] = job['id']

    order = ['high-1', 'high-2', 'normal', 'low-1', 'low-2']
    current = running['id']
    for i, name in enumerate(order):
        cancel(client, current)
        assert wait_finished(client, current, DEADLINE)['state'] == \
            'cancelled'
        # The one slot runs this job; the rest wait in their order.
        started = wait_for('a queued job to start',
                           lambda: ids_in(client, 'running'), DEADLINE)
        current = jobs[name]
        assert started == [current], (name, started, jobs)
        assert sorted(ids_in(client, 'queued')) == \
            sorted(jobs[n] for n in order[i + 1:])
    cancel(client, current)
    wait_finished(client, current, DEADLINE)

    started = [client.get_json(f'/v1/jobs/{jobs[n]}')['started_at']
               for n in order]
    assert None not in started
    assert started == sorted(started) and len(set(started)) == len(started)


# ---- Jobs at once. ----

def test_never_more_jobs_running_than_slots(spkd_factory):
    daemon = spkd_factory.start(jobs=2)
    client = daemon.client
    ids = [client.submit(long_spec(name=f'bound-{i}'))['id']
           for i in range(3)]

    def running_when(want):
        """A check for wait_for: true once exactly want run; fails the
        test at any poll that sees more than two running."""
        def check():
            states = {j['id']: j['state'] for j in client.jobs()}
            now = sorted(i for i in ids if states[i] == 'running')
            assert len(now) <= 2, states
            assert len(ids_in(client, 'running')) <= 2
            return now == want
        return check

    wait_for('the first two jobs to run', running_when(ids[:2]), DEADLINE)
    # The third stays queued while both slots are busy: checked at every
    # poll until the first two have each completed an epoch.
    def both_progressed():
        running_when(ids[:2])()
        assert client.get_json(f'/v1/jobs/{ids[2]}')['state'] == 'queued'
        return all(client.get_json(f'/v1/jobs/{i}')['epoch'] >= 1
                   for i in ids[:2])
    wait_for('both running jobs to complete an epoch', both_progressed,
             DEADLINE)

    cancel(client, ids[0])
    wait_for('the third job to take the free slot',
             running_when(ids[1:]), DEADLINE)
    assert client.get_json(f'/v1/jobs/{ids[0]}')['state'] == 'cancelled'
    cancel_all(client, ids[1:])
    assert ids_in(client, 'running') == []


# ---- Listing. ----

def test_state_filter_and_bad_list_parameters(busy):
    client, running = busy
    queued = client.submit(tiny_spec(name='waits'))
    gone = client.submit(tiny_spec(name='gone'))
    cancel(client, gone['id'])
    assert ids_in(client, 'running') == [running['id']]
    assert ids_in(client, 'queued') == [queued['id']]
    assert ids_in(client, 'cancelled') == [gone['id']]
    assert ids_in(client, 'succeeded') == [] and ids_in(client, 'failed') == []

    before = [j['id'] for j in client.jobs()]
    bad = [({'state': s}, 'state')
           for s in ('', 'QUEUED', 'done', 'queued,running', 'queued ')]
    bad += [({'state': 'queued', 'limit': v}, 'limit')
            for v in ('0', '-1', '1001', 'x', '1.5', '')]
    bad += [({'state': 'queued', 'cursor': 'nope'}, 'cursor'),
            ({'state': 'queued', 'owner': 'me'}, 'owner')]
    for params, field in bad:
        expect_error(client.get('/v1/jobs', params=params), 400,
                     'invalid_parameter', field)
    assert [j['id'] for j in client.jobs()] == before
    cancel_all(client, [queued['id'], running['id']])


def submit_many(client, n, threads=4):
    """Submits n tiny jobs, several requests at a time; returns their
    ids."""
    body = json.dumps(tiny_spec(name='many'))

    def batch(count):
        c = ApiClient(client.base_url)
        out = []
        for _ in range(count):
            resp = c.post('/v1/jobs', data=body)
            assert resp.status_code == 201, resp.text
            out.append(resp.json()['id'])
        return out
    sizes = [n // threads + (i < n % threads) for i in range(threads)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return [i for ids in pool.map(batch, sizes) for i in ids]


def test_paging_1234_jobs_reads_each_once(busy):
    client, running = busy
    ids = submit_many(client, 1233) + [running['id']]
    assert len(set(ids)) == 1234
    newest_first = sorted(ids, reverse=True)

    for limit, sizes in ((100, [100] * 12 + [34]), (1000, [1000, 234]),
                         (7, [7] * 176 + [2])):
        pages = client.get_all('/v1/jobs', limit=limit)
        assert [len(p['items']) for p in pages] == sizes
        assert [j['id'] for p in pages for j in p['items']] == newest_first
    assert ids_in(client, 'queued', limit=100) == newest_first[:1233] and \
        ids_in(client, 'running') == [running['id']]

    # Jobs submitted while a client pages come before its cursor: the
    # walk still reads each job it started with exactly once, and ends.
    seen, params = [], {'limit': 250}
    while True:
        page = client.get_json('/v1/jobs', params=params)
        seen += [j['id'] for j in page['items']]
        if page['next_cursor'] is None:
            break
        params['cursor'] = page['next_cursor']
        ids.append(client.submit(tiny_spec(name='late'))['id'])
    assert seen == newest_first

    # A third of the queue cancelled: the two states split it exactly.
    queued = [i for i in ids if i != running['id']]
    cancelled = queued[::3]
    cancel_all(client, cancelled, threads=4)
    assert ids_in(client, 'cancelled', limit=100) == \
        sorted(cancelled, reverse=True)
    assert ids_in(client, 'queued', limit=333) == \
        sorted(set(queued) - set(cancelled), reverse=True)
    rest = sorted(set(ids) - set(cancelled) - {running['id']})
    cancel_all(client, rest + [running['id']], threads=4)


# ---- Deleting. ----

def job_ids(client):
    return [j['id'] for j in client.jobs()]


def test_delete_refuses_queued_running_and_unknown(busy):
    client, running = busy
    queued = client.submit(tiny_spec(name='stays'))
    before = job_ids(client)
    for job_id in (running['id'], queued['id']):
        err = expect_error(client.delete(f'/v1/jobs/{job_id}'), 409,
                           'conflict')
        assert 'cancel it first' in err['message'], err
    for path in (f"/v1/jobs/{queued['id'] + 1}", '/v1/jobs/abc',
                 '/v1/jobs/0', '/v1/jobs/99999999999999999999999'):
        expect_error(client.delete(path), 404, 'not_found')
    expect_error(client.delete(f"/v1/jobs/{queued['id']}",
                               params={'force': '1'}),
                 400, 'invalid_parameter', 'force')

    # Nothing changed: both jobs are there, in their states.
    assert job_ids(client) == before
    assert client.get_json(f"/v1/jobs/{queued['id']}") == queued
    assert client.get_json(f"/v1/jobs/{running['id']}")['state'] == \
        'running'
    cancel_all(client, [queued['id'], running['id']])


def test_delete_finished_jobs(spkd):
    client = spkd.client
    done = client.submit(tiny_spec(name='done'))
    never = client.submit(tiny_spec(name='never-ran'))
    cancel(client, never['id'])
    done = wait_finished(client, done['id'], DEADLINE)
    assert done['state'] == 'succeeded', done
    did = done['id']
    assert client.get_json(f'/v1/jobs/{did}/metrics')['items']
    easy = client.get_json(f'/v1/jobs/{did}/stages/spl/epochs/1/samples',
                           params={'limit': 1})['items'][0]
    assert client.get_json(f'/v1/jobs/{did}/samples/{easy}')['index'] == easy

    for job_id in (did, never['id']):
        resp = client.delete(f'/v1/jobs/{job_id}')
        assert resp.status_code == 200, resp.text
        assert resp.json() == {'id': job_id, 'deleted': True}
        expect_error(client.get(f'/v1/jobs/{job_id}'), 404, 'not_found')
        expect_error(client.get(f'/v1/jobs/{job_id}/metrics'), 404,
                     'not_found')
        expect_error(client.get(f'/v1/jobs/{job_id}/samples/{easy}'), 404,
                     'not_found')
        expect_error(client.post(f'/v1/jobs/{job_id}/cancel'), 404,
                     'not_found')
        expect_error(client.delete(f'/v1/jobs/{job_id}'), 404, 'not_found')
    assert client.jobs() == []

    # Ids are never handed out again.
    again = client.submit(tiny_spec(name='after'))
    assert again['id'] > max(did, never['id'])
    cancel(client, again['id'])
    wait_finished(client, again['id'], DEADLINE)
