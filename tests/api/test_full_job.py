# SPDX-License-Identifier: MIT
# A whole job on a small Fashion-MNIST subset as a user drives it through
# the API: submit, follow the event stream until it succeeds, read the
# metrics and one sample's history, download the student's model.
import hashlib
import json

import requests

from conftest import tiny_spec


def sse_events(url):
    """Every event of a stream that ends by itself, as dicts."""
    events, current = [], {}
    with requests.get(url, stream=True, timeout=120) as resp:
        assert resp.status_code == 200, resp.text
        assert resp.headers['Content-Type'].startswith('text/event-stream')
        for line in resp.iter_lines(decode_unicode=True):
            if line == '':
                if 'data' in current:
                    events.append(current)
                current = {}
            elif not line.startswith(':'):
                key, _, value = line.partition(':')
                current[key] = value.lstrip(' ')
    return [{'id': int(e['id']), 'event': e['event'],
             'data': json.loads(e['data'])} for e in events]


def test_submit_follow_read_download(spkd):
    client = spkd.client
    spec = tiny_spec(name='whole')
    job = client.submit(spec)
    jid = job['id']

    events = sse_events(f'{client.base_url}/v1/jobs/{jid}/events')
    ids = [e['id'] for e in events]
    assert ids == sorted(set(ids))
    states = [e['data']['state'] for e in events if e['event'] == 'state']
    assert states[0] == 'queued' and states[-1] == 'succeeded', states
    assert events[-1]['event'] == 'state'

    # Every epoch the stream announced is in the metrics, with its values.
    metrics = client.get_json(f'/v1/jobs/{jid}/metrics',
                              params={'limit': 1000})['items']
    announced = {(e['data']['stage'], e['data']['epoch']): e['data']
                 for e in events if e['event'] == 'epoch'}
    assert set(announced) == {(m['stage'], m['epoch']) for m in metrics}
    for m in metrics:
        assert announced[(m['stage'], m['epoch'])]['test_acc'] == \
            m['test_acc']
    planned = (spec['spl']['epochs'] + spec['teachers'][0]['epochs'] +
               spec['student']['epochs'] + spec['baseline']['epochs'])
    assert len(metrics) == planned

    # One training sample's history: an entry per epoch of every stage.
    first = client.get_json(f'/v1/jobs/{jid}/stages/spl/samples',
                            params={'limit': 1})['items'][0]
    sample = client.get_json(f"/v1/jobs/{jid}/samples/{first['index']}")
    assert sample['observed_label'] == first['observed_label']
    assert len(sample['history']) == planned
    assert set(sample['dynamics']) == {'spl', 'teacher', 'student',
                                       'baseline'}

    # The student's model: a checkpoint whose ETag is its SHA-256.
    resp = client.get(f'/v1/jobs/{jid}/models/student')
    assert resp.status_code == 200
    assert resp.content.startswith(b'SPKCKPT')
    assert resp.headers['ETag'].strip('"') == \
        hashlib.sha256(resp.content).hexdigest()
