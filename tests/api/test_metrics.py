# SPDX-License-Identifier: MIT
# GET /metrics: the Prometheus text a real scraper's parser reads, every
# family's HELP and TYPE once, request counts and latency histograms that
# follow the requests made between two scrapes exactly, and job and epoch
# figures after a tiny job has run to its end.
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import QUICK_DEADLINE, tiny_spec, wait_finished
from spkapi import REPO, expect_error

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
FAMILIES = {
    'spkd_build_info': 'gauge',
    'spkd_start_time_seconds': 'gauge',
    'spkd_jobs': 'gauge',
    'spkd_epochs_total': 'counter',
    'spkd_samples_total': 'counter',
    'spkd_http_requests_total': 'counter',
    'spkd_http_request_duration_seconds': 'histogram',
    'process_cpu_seconds_total': 'counter',
    'process_resident_memory_bytes': 'gauge',
}
STATES = ('queued', 'running', 'succeeded', 'failed', 'cancelled')
DURATION = 'spkd_http_request_duration_seconds'


def scrape(client):
    """GETs /metrics and returns (raw text, {sample name: {labels: value}})
    with labels as a sorted tuple of pairs."""
    resp = client.get('/metrics')
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers['Content-Type'] == CONTENT_TYPE
    text = resp.content.decode('utf-8')
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = tuple(sorted(s.labels.items()))
            assert key not in samples.setdefault(s.name, {}), s
            samples[s.name][key] = s.value
    return text, samples


def value(samples, name, **labels):
    """The sample's value, 0 when the scrape does not have it (yet)."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def comment_names(text, kind):
    """The metric names of every '# HELP' or '# TYPE' line, in order."""
    prefix = f'# {kind} '
    return [line[len(prefix):].split(' ', 1)[0]
            for line in text.splitlines() if line.startswith(prefix)]


def test_metrics_format(client):
    health = client.get_json('/healthz')
    text, samples = scrape(client)

    helps, types = comment_names(text, 'HELP'), comment_names(text, 'TYPE')
    assert sorted(helps) == sorted(set(helps)), helps
    assert sorted(types) == sorted(set(types)), types
    assert set(helps) == set(types) == set(FAMILIES)
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ')
            assert FAMILIES[name] == kind, line
    assert text.endswith('\n')

    assert value(samples, 'spkd_build_info',
                 version=health['version']) == 1.0
    started = value(samples, 'spkd_start_time_seconds')
    assert time.time() - 600 < started <= time.time()
    assert value(samples, 'process_resident_memory_bytes') > 1 << 20
    for state in STATES:
        assert value(samples, 'spkd_jobs', state=state) == 0.0
    assert value(samples, 'spkd_epochs_total') == 0.0
    assert value(samples, 'spkd_samples_total') == 0.0
    # The readiness check before this test was answered and counted.
    assert value(samples, 'spkd_http_requests_total', route='/healthz',
                 code='200') >= 2.0


def test_metrics_refuses_query(client):
    resp = client.get('/metrics', params={'format': 'json'})
    expect_error(resp, 400, 'invalid_parameter', 'format')


def histogram_of(samples, route):
    """(cumulative buckets in bound order, sum, count) of one route."""
    buckets = sorted(
        (float(dict(k)['le']), v)
        for k, v in samples.get(f'{DURATION}_bucket', {}).items()
        if dict(k)['route'] == route)
    return (buckets, value(samples, f'{DURATION}_sum', route=route),
            value(samples, f'{DURATION}_count', route=route))


def test_metrics_count_requests(client):
    _, before = scrape(client)
    for _ in range(3):
        client.get_json('/healthz')
    client.get_json('/v1/jobs')
    client.get_json('/v1/jobs', params={'limit': 5})
    expect_error(client.get('/v1/jobs/987654'), 404, 'not_found')
    expect_error(client.get('/v1/nothing/here', unrouted=True), 404,
                 'not_found')
    expect_error(client.get('/metrics', params={'x': '1'}), 400,
                 'invalid_parameter', 'x')
    _, after = scrape(client)

    # The first scrape is counted by the second; the second is not yet.
    want = {('/healthz', '200'): 3, ('/v1/jobs', '200'): 2,
            ('/v1/jobs/{id}', '404'): 1, ('unrouted', '404'): 1,
            ('/metrics', '400'): 1, ('/metrics', '200'): 1}
    got = {}
    for key, v in after['spkd_http_requests_total'].items():
        labels = dict(key)
        diff = v - value(before, 'spkd_http_requests_total', **labels)
        if diff:
            got[(labels['route'], labels['code'])] = diff
    assert got == want
    for key in after['spkd_http_requests_total']:
        assert '987654' not in dict(key)['route']

    for route in ('/healthz', '/v1/jobs', '/v1/jobs/{id}', 'unrouted',
                  '/metrics'):
        buckets, total, count = histogram_of(after, route)
        _, total0, count0 = histogram_of(before, route)
        assert [le for le, _ in buckets][-1] == float('inf')
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (route, buckets)
        assert counts[-1] == count
        assert count - count0 == sum(n for (r, _), n in want.items()
                                     if r == route)
        assert 0 <= total - total0 < 10 * (count - count0)


def epoch_add_wired():
    """Whether the job runner reports its epochs to the counters."""
    with open(os.path.join(REPO, 'server', 'job.c'), encoding='utf-8') as f:
        return 'metrics_epoch_add' in f.read()


def test_metrics_after_job(client):
    spec = tiny_spec(name='metrics')
    job = client.submit(spec)
    job = wait_finished(client, job['id'], QUICK_DEADLINE)
    assert job['state'] == 'succeeded', job
    _, samples = scrape(client)

    for state in STATES:
        want = 1.0 if state == 'succeeded' else 0.0
        assert value(samples, 'spkd_jobs', state=state) == want, state
    if not epoch_add_wired():
        pytest.skip('server/job.c does not call metrics_epoch_add yet, so '
                    'spkd_epochs_total stays 0 whatever the job trains')
    epochs = [m for page in client.get_all(
        f"/v1/jobs/{job['id']}/metrics", limit=1000) for m in page['items']]
    planned = (spec['spl']['epochs'] + spec['teachers'][0]['epochs'] +
               spec['student']['epochs'] + spec['baseline']['epochs'])
    assert len(epochs) == planned == 5
    assert value(samples, 'spkd_epochs_total') == planned
    # 900 training samples: the spl warm-up epoch, the student and the
    # baseline train on all of them, the other spl epoch and the teacher
    # on an easy subset only.
    assert 3 * 900 < value(samples, 'spkd_samples_total') < planned * 900
