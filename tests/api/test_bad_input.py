# SPDX-License-Identifier: MIT
# Bad input of every kind the contract names, sent to the daemon that ran
# examples/quick.json: each gets its status and error body (code and
# field), and the job list is the same afterwards.
import copy
import json

import pytest

from conftest import tiny_spec, wait_finished
from spkapi import expect_error, jobspec_errors

MiB = 1048576


def refused(client, method, path, status, code, field=None, **kw):
    """Sends one request that must be refused; checks the error body and
    that the job list did not change. Returns the error object."""
    before = client.jobs()
    resp = client.request(method, path, **kw)
    if isinstance(field, tuple):
        err = expect_error(resp, status, code, resp.json()['error']['field'])
        assert err['field'] in field, err
    else:
        err = expect_error(resp, status, code, field)
    assert client.jobs() == before, 'a refused request changed the job list'
    return err


def with_value(path, value):
    """tiny_spec() with the dotted path set to value (a path of a key that
    is absent is created; '[n]' indexes a list)."""
    spec = tiny_spec()
    node = spec
    keys = path.replace('[', '.[').split('.')
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if key.startswith('['):
            key = int(key[1:-1])
        elif not last and key not in node:
            node[key] = {}
        if last:
            node[key] = value
        else:
            node = node[key]
    return spec


def without(path):
    spec = tiny_spec()
    node = spec
    keys = path.split('.')
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return spec


MALFORMED = [
    b'{"dataset": ',
    b'',
    b'{"dataset": {"name": "fashion-mnist"},}',
    b'{"dataset": {"name": "fashion-mnist"}} trailing',
    b'{dataset: {name: "fashion-mnist"}}',
    b"{'dataset': {'name': 'fashion-mnist'}}",
    b'\xff\xfe{}',
    b'nul',
]


@pytest.mark.parametrize('body', MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json(quick, body):
    refused(quick.client, 'POST', '/v1/jobs', 400, 'malformed_json',
            data=body)


@pytest.mark.parametrize('body', ['[]', '"fashion-mnist"', '42', 'null',
                                  'true', json.dumps([tiny_spec()])])
def test_top_level_not_an_object(quick, body):
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec',
            data=body)
    assert jobspec_errors(json.loads(body))


# (spec, field the daemon must name). Each is refused by the contract's
# JobSpec schema too, so the spec file is as strict as the daemon.
INVALID_SPECS = [
    # Unknown keys.
    (dict(tiny_spec(), bogus=1), 'bogus'),
    (with_value('spl.bogus', 1), 'spl.bogus'),
    (with_value('teachers[0].bogus', 1), 'teachers[0].bogus'),
    (with_value('dataset.label_noise.bogus', 1), 'dataset.label_noise.bogus'),
    (with_value('optimizer.nesterow', True), 'optimizer.nesterow'),
    (with_value('dataset.normalise', 'scale'), 'dataset.normalise'),
    (with_value('spl.pace.bogus', 1), 'spl.pace.bogus'),
    (with_value('student.kd.beta', 1), 'student.kd.beta'),
    (with_value('baseline.kd', {}), 'baseline.kd'),
    # Wrong types.
    (with_value('seed', '1'), 'seed'),
    (with_value('seed', True), 'seed'),
    (with_value('threads', 2.5), 'threads'),
    (with_value('name', 5), 'name'),
    (with_value('dataset', 'fashion-mnist'), 'dataset'),
    (with_value('dataset.name', 5), 'dataset.name'),
    (with_value('dataset.limit', '1000'), 'dataset.limit'),
    (with_value('dataset.label_noise', 0.4), 'dataset.label_noise'),
    (with_value('spl.epochs', '4'), 'spl.epochs'),
    (with_value('spl.pace', None), 'spl.pace'),
    (with_value('teachers', {'model': 'mlp'}), 'teachers'),
    (with_value('teachers[0]', 5), 'teachers[0]'),
    (with_value('student.kd', None), 'student.kd'),
    (with_value('baseline', 5), 'baseline'),
    (with_value('optimizer.lr', '0.1'), 'optimizer.lr'),
    (with_value('optimizer', []), 'optimizer'),
    # Out of range.
    (with_value('spl.pace.end', 1.5), 'spl.pace.end'),
    (with_value('spl.pace.start', 0), 'spl.pace.start'),
    (with_value('teachers[0].epochs', 0), 'teachers[0].epochs'),
    (with_value('dataset.label_noise.rate', 0.96), 'dataset.label_noise.rate'),
    (with_value('dataset.label_noise.seed', -1), 'dataset.label_noise.seed'),
    (with_value('dataset.validation_fraction', 0.6),
     'dataset.validation_fraction'),
    (with_value('dataset.limit', -1), 'dataset.limit'),
    (with_value('dataset.limit', 10000001), 'dataset.limit'),
    (with_value('optimizer.lr', 0), 'optimizer.lr'),
    (with_value('optimizer.lr', 10.5), 'optimizer.lr'),
    (with_value('spl.optimizer.momentum', 1.0), 'spl.optimizer.momentum'),
    (with_value('optimizer.weight_decay', 1.5), 'optimizer.weight_decay'),
    (with_value('optimizer.batch_size', 0), 'optimizer.batch_size'),
    (with_value('optimizer.batch_size', 4097), 'optimizer.batch_size'),
    (with_value('name', ''), 'name'),
    (with_value('name', 'x' * 101), 'name'),
    (with_value('seed', -1), 'seed'),
    (with_value('seed', 2 ** 53), 'seed'),
    (with_value('threads', 0), 'threads'),
    (with_value('threads', 65), 'threads'),
    (with_value('spl.epochs', 0), 'spl.epochs'),
    (with_value('spl.epochs', 1001), 'spl.epochs'),
    (with_value('spl.warmup_epochs', -1), 'spl.warmup_epochs'),
    (with_value('student.epochs', 0), 'student.epochs'),
    (with_value('student.kd.alpha', 1.1), 'student.kd.alpha'),
    (with_value('student.kd.temperature', 0), 'student.kd.temperature'),
    (with_value('student.kd.temperature', 101), 'student.kd.temperature'),
    (with_value('baseline.epochs', 0), 'baseline.epochs'),
    (with_value('teachers', []), 'teachers'),
    (dict(tiny_spec(), teachers=[{'model': 'mlp'}] * 9), 'teachers'),
    (dict(tiny_spec(), teachers=[{'model': 'mlp'}, {'epochs': 0}]),
     'teachers[1].epochs'),
    # Values outside an enum.
    (with_value('optimizer.kind', 'rmsprop'), 'optimizer.kind'),
    (with_value('optimizer.schedule', 'linear'), 'optimizer.schedule'),
    (with_value('spl.model', 'mlp-large'), 'spl.model'),
    (with_value('teachers[0].model', 'resnet'), 'teachers[0].model'),
    (with_value('student.model', 'custom'), 'student.model'),
    (with_value('dataset.label_noise.kind', 'asymmetric'),
     'dataset.label_noise.kind'),
    (with_value('dataset.normalize', 'minmax'), 'dataset.normalize'),
    (with_value('spl.pace.kind', 'lambda'), 'spl.pace.kind'),
    # Missing requirements and names that are paths.
    (without('dataset'), ('dataset', 'dataset.name')),
    (without('dataset.name'), 'dataset.name'),
    (with_value('dataset.name', '../fashion-mnist'), 'dataset.name'),
    (with_value('dataset.name', '..'), 'dataset.name'),
    (with_value('dataset.name', 'fashion-mnist/../fashion-mnist'),
     'dataset.name'),
    (with_value('dataset.name', '/usr/share/datasets/fashion-mnist'),
     'dataset.name'),
    (with_value('dataset.name', ''), 'dataset.name'),
    (with_value('dataset.name', '.hidden'), 'dataset.name'),
    (with_value('dataset.name', 'a' * 65), 'dataset.name'),
    (with_value('dataset.name', 'fashion-mnist\u0000'), 'dataset.name'),
    # The optimizer's keys of issue 3.
    (with_value('optimizer.nesterov', 'yes'), 'optimizer.nesterov'),
    (with_value('optimizer.decay_bias', 1), 'optimizer.decay_bias'),
    (with_value('optimizer.beta1', 1.0), 'optimizer.beta1'),
    (with_value('optimizer.beta2', -0.1), 'optimizer.beta2'),
    (with_value('optimizer.eps', 0), 'optimizer.eps'),
    (with_value('optimizer.eps', 1.5), 'optimizer.eps'),
    (with_value('optimizer.warmup_epochs', -1), 'optimizer.warmup_epochs'),
    (with_value('optimizer.warmup_epochs', 1001), 'optimizer.warmup_epochs'),
    (with_value('optimizer.step_epochs', 0), 'optimizer.step_epochs'),
    (with_value('optimizer.step_epochs', 2.5), 'optimizer.step_epochs'),
    (with_value('optimizer.gamma', 0), 'optimizer.gamma'),
    (with_value('spl.optimizer.gamma', 1.5), 'spl.optimizer.gamma'),
    (with_value('optimizer', {'kind': 'adam', 'nesterov': True}),
     'optimizer.nesterov'),
    (with_value('teachers[0].optimizer', {'kind': 'adamw', 'nesterov': True}),
     'teachers[0].optimizer.nesterov'),
    (with_value('dataset.normalize', None), 'dataset.normalize'),
    # Custom models and their layers.
    (with_value('student.model', 5), 'student.model'),
    (with_value('student.model', {}), 'student.model.layers'),
    (with_value('student.model', {'layers': []}), 'student.model.layers'),
    (with_value('student.model', {'layers': [{'type': 'relu'}] * 25}),
     'student.model.layers'),
    (with_value('student.model', {'layers': [{'type': 'relu'}], 'name': 'x'}),
     'student.model.name'),
    (with_value('spl.model', {'layers': ['relu']}), 'spl.model.layers[0]'),
    (with_value('spl.model', {'layers': [{'units': 10}]}),
     'spl.model.layers[0].type'),
    (with_value('spl.model', {'layers': [{'type': 'softmax'}]}),
     'spl.model.layers[0].type'),
    (with_value('student.model', {'layers': [
        {'type': 'relu'}, {'type': 'flatten'},
        {'type': 'conv2d', 'filters': 8, 'kernel': 3, 'size': 3}]}),
     'student.model.layers[2].size'),
    (with_value('student.model', {'layers': [
        {'type': 'maxpool', 'size': 2, 'pad': 1}]}),
     'student.model.layers[0].pad'),
    (with_value('student.model', {'layers': [{'type': 'dense'}]}),
     'student.model.layers[0].units'),
    (with_value('student.model', {'layers': [{'type': 'dense', 'units': 0}]}),
     'student.model.layers[0].units'),
    (with_value('teachers[0].model', {'layers': [
        {'type': 'conv2d', 'filters': 4097, 'kernel': 3}]}),
     'teachers[0].model.layers[0].filters'),
    (with_value('student.model', {'layers': [
        {'type': 'conv2d', 'filters': 8, 'kernel': 65}]}),
     'student.model.layers[0].kernel'),
    (with_value('student.model', {'layers': [
        {'type': 'conv2d', 'filters': 8, 'kernel': 3, 'pad': -1}]}),
     'student.model.layers[0].pad'),
    (with_value('student.model', {'layers': [
        {'type': 'maxpool', 'size': 2, 'stride': 0}]}),
     'student.model.layers[0].stride'),
    (with_value('student.model', {'layers': [
        {'type': 'dropout', 'rate': 1}]}),
     'student.model.layers[0].rate'),
]


def _case_id(case):
    field = case[1]
    return field if isinstance(field, str) else '|'.join(field)


@pytest.mark.parametrize('spec,field', INVALID_SPECS,
                         ids=[f'{i}-{_case_id(c)}'
                              for i, c in enumerate(INVALID_SPECS)])
def test_invalid_spec(quick, spec, field):
    assert jobspec_errors(spec), 'the OpenAPI JobSpec must refuse it too'
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec', field,
            json_body=spec)


# A custom model every stage may use: one layer of each type, for
# 28 x 28 x 1 images and ten classes.
SMALL_CNN = {'layers': [
    {'type': 'conv2d', 'filters': 4, 'kernel': 3, 'pad': 1},
    {'type': 'relu'},
    {'type': 'maxpool', 'size': 2},
    {'type': 'flatten'},
    {'type': 'dropout', 'rate': 0.1},
    {'type': 'dense', 'units': 10},
]}


def custom_student(baseline_model):
    spec = with_value('student.model', SMALL_CNN)
    spec['baseline']['model'] = baseline_model
    return spec


# Refusals across objects, which one JSON Schema object cannot express:
# the contract's schema allows them, the daemon does not.
@pytest.mark.parametrize('spec,field', [
    (dict(tiny_spec(), optimizer={'nesterov': True},
          spl=dict(tiny_spec()['spl'], optimizer={'kind': 'adam'})),
     'spl.optimizer.kind'),
    (dict(tiny_spec(), optimizer={'kind': 'adamw'},
          teachers=[{'optimizer': {'nesterov': True}}]),
     'teachers[0].optimizer.nesterov'),
    (custom_student('mlp'), 'baseline.model'),
    (custom_student({'layers': SMALL_CNN['layers'][:-1] +
                     [{'type': 'dense', 'units': 11}]}), 'baseline.model'),
    (custom_student({'layers': SMALL_CNN['layers'][:2]}), 'baseline.model'),
], ids=['nesterov-then-adam', 'adamw-then-nesterov', 'baseline-preset',
        'baseline-units', 'baseline-shorter'])
def test_invalid_across_objects(quick, spec, field):
    assert not jobspec_errors(spec)
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec', field,
            json_body=spec)


# Refusals that need the data root: the contract's schema allows them.
@pytest.mark.parametrize('path,value,field', [
    ('dataset.name', 'no-such-dataset', 'dataset.name'),
    ('dataset.name', 'Fashion-MNIST', 'dataset.name'),
    ('dataset.limit', 60001, 'dataset.limit'),
    ('dataset.limit', 10000000, 'dataset.limit'),
])
def test_dataset_checked_against_data_root(quick, path, value, field):
    spec = with_value(path, value)
    assert not jobspec_errors(spec)
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec', field,
            json_body=spec)


# A name is at most 100 characters and, stored in 127 bytes, at most 127
# bytes of UTF-8: the message names the limit the name broke.
@pytest.mark.parametrize('name,words', [
    ('x' * 101, 'name must be 1 to 100 characters long; got 101.'),
    ('\u00e9' * 101, 'name must be 1 to 100 characters long; got 101.'),
    ('\u00e9' * 100, 'name must be at most 127 bytes of UTF-8; got 200 '
     'bytes (100 characters, within the 100 allowed).'),
    ('\u20ac' * 43, 'got 129 bytes (43 characters'),
], ids=['ascii-101', 'two-byte-101', 'two-byte-100', 'three-byte-43'])
def test_name_limits_named(quick, name, words):
    err = refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec',
                  'name', json_body=with_value('name', name))
    assert words in err['message'], err


def test_name_of_127_bytes_accepted(client):
    """42 three-byte characters and a letter: 127 bytes, accepted."""
    job = client.submit(with_value('name', '\u20ac' * 42 + 'x'))
    assert job['name'] == '\u20ac' * 42 + 'x'
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert wait_finished(client, job['id'], 60)['state'] == 'cancelled'


def padded(spec, size):
    """spec as JSON padded with spaces to exactly size bytes."""
    text = json.dumps(spec).encode()
    assert len(text) <= size
    return text + b' ' * (size - len(text))


def test_body_over_one_mib(quick):
    refused(quick.client, 'POST', '/v1/jobs', 413, 'payload_too_large',
            data=padded(tiny_spec(), MiB + 1))


def test_streamed_body_over_one_mib(quick):
    # Chunked, with no Content-Length: the daemon counts what arrives.
    def chunks():
        body = padded(tiny_spec(), 5 * MiB)
        for at in range(0, len(body), 65536):
            yield body[at:at + 65536]
    refused(quick.client, 'POST', '/v1/jobs', 413, 'payload_too_large',
            data=chunks())


def test_body_of_exactly_one_mib_is_read(quick):
    # At the limit the body is parsed: the unknown key proves it.
    spec = dict(tiny_spec(), bogus=1)
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_spec', 'bogus',
            data=padded(spec, MiB))


def test_unknown_query_parameter_on_submit(quick):
    refused(quick.client, 'POST', '/v1/jobs', 400, 'invalid_parameter', 'x',
            params={'x': '1'}, json_body=tiny_spec())


def query_cases(job, spl_epoch):
    samples = f'/v1/jobs/{job}/stages/spl/epochs/{spl_epoch}/samples'
    lists = ('/v1/jobs', f'/v1/jobs/{job}/metrics', samples)
    cases = []
    for path in lists:
        for limit in ('0', '1001', '-1', 'abc', '1.5', '10x'):
            cases.append((path, {'limit': limit}, 'limit'))
        for cursor in ('garbage!', 'not-a-cursor', '%%%'):
            cases.append((path, {'cursor': cursor}, 'cursor'))
    for which in ('medium', 'EASY', 'all'):
        cases.append((samples, {'set': which}, 'set'))
    cases += [
        ('/v1/jobs', {'state': 'finished'}, 'state'),
        (f'/v1/jobs/{job}', {'verbose': '1'}, 'verbose'),
        (f'/v1/jobs/{job}/metrics', {'stage': 'spl'}, 'stage'),
        (samples, {'foo': '1'}, 'foo'),
        (f'/v1/jobs/{job}/samples/0', {'x': ''}, 'x'),
        ('/healthz', {'x': '1'}, 'x'),
        (f'/v1/jobs/{job}/metrics', {'limit': '5', 'lim': '5'}, 'lim'),
    ]
    return cases


def test_bad_query_parameters(quick):
    job = quick.job['id']
    for path, params, field in query_cases(job, 1):
        refused(quick.client, 'GET', path, 400, 'invalid_parameter', field,
                params=params)


def test_limit_bounds_are_accepted(quick):
    job = quick.job['id']
    for limit in (1, 1000):
        page = quick.client.get_json(f'/v1/jobs/{job}/metrics',
                                     params={'limit': limit})
        assert 1 <= len(page['items']) <= limit


@pytest.mark.parametrize('method,path', [
    ('PUT', '/v1/jobs'),
    ('DELETE', '/v1/jobs'),
    ('PATCH', '/v1/jobs/{job}'),
    ('PUT', '/v1/jobs/{job}'),
    ('GET', '/v1/jobs/{job}/cancel'),
    ('POST', '/v1/jobs/{job}/metrics'),
    ('DELETE', '/v1/jobs/{job}/samples/0'),
    ('POST', '/v1/jobs/{job}/stages/spl/epochs/1/samples'),
    ('POST', '/healthz'),
])
def test_wrong_method(quick, method, path):
    path = path.format(job=quick.job['id'])
    kw = {'json_body': tiny_spec()} if method in ('PUT', 'PATCH') else {}
    refused(quick.client, method, path, 405, 'method_not_allowed', **kw)


@pytest.mark.parametrize('method,path', [
    ('GET', '/v1'),
    ('GET', '/v1/'),
    ('GET', '/v1/nope'),
    ('GET', '/v1/job'),
    ('GET', '/v1/jobs/{job}/nope'),
    ('GET', '/v1/jobs/{job}/stages'),
    ('GET', '/v1/jobs/{job}/stages/spl'),
    ('GET', '/v1/jobs/{job}/stages/spl/epochs/1'),
    ('GET', '/v1/jobs/{job}/samples'),
    ('POST', '/v1/nope'),
    ('DELETE', '/v1/nope/1'),
])
def test_unknown_route(quick, method, path):
    path = path.format(job=quick.job['id'])
    refused(quick.client, method, path, 404, 'not_found', unrouted=True)


def test_unknown_ids_are_not_found(quick):
    job = quick.job['id']
    for path in (f'/v1/jobs/{job + 1}', '/v1/jobs/abc', '/v1/jobs/1e3',
                 '/v1/jobs/99999999999999999999999'):
        refused(quick.client, 'GET', path, 404, 'not_found')
    refused(quick.client, 'POST', f'/v1/jobs/{job + 1}/cancel', 404,
            'not_found')
    refused(quick.client, 'POST', '/v1/jobs/abc/cancel', 404, 'not_found')


def test_delete_refusals(quick):
    # DELETE /v1/jobs/{id} exists: an unknown job is 404, a bad query
    # parameter 400, and the quick job (which other tests read) stays.
    job = quick.job['id']
    for path in (f'/v1/jobs/{job + 1}', '/v1/jobs/abc', '/v1/jobs/0'):
        refused(quick.client, 'DELETE', path, 404, 'not_found')
    refused(quick.client, 'DELETE', f'/v1/jobs/{job}', 400,
            'invalid_parameter', 'x', params={'x': '1'})
    assert quick.client.get_json(f'/v1/jobs/{job}')['state'] == 'succeeded'


def test_deeply_nested_body_is_refused(quick):
    # A hostile body must not crash the parser; it is not a spec.
    deep = b'{"dataset": ' + b'[' * 100000 + b']' * 100000 + b'}'
    resp = quick.client.post('/v1/jobs', data=deep)
    assert resp.status_code == 400, resp.text
    assert resp.json()['error']['code'] in ('malformed_json', 'invalid_spec')
    assert quick.client.get_json('/healthz')['status'] == 'ok'


def test_many_refusals_leave_the_daemon_serving(quick):
    before = copy.deepcopy(quick.client.jobs())
    for body in MALFORMED:
        quick.client.post('/v1/jobs', data=body)
    assert quick.client.jobs() == before
    assert quick.daemon.alive()


def test_non_utf8_in_urls_gets_a_clean_error(client):
    """Bytes that are not UTF-8, or multi-byte characters cut by the echo
    in the message, still give a JSON error of the right kind."""
    for path, status in (('/v1/jobs/%ff', 404),
                         ('/v1/jobs/' + 'a%C3%A9' * 20, 404),
                         ('/v1/jobs?%ff=1', 400)):
        resp = client.get(path)
        assert resp.status_code == status, (path, resp.text)
        body = resp.json()
        assert body['error']['code'] in ('not_found', 'invalid_parameter')
