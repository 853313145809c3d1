# SPDX-License-Identifier: MIT
# The contract itself: api-spec/openapi.yaml is OpenAPI 3.1 with valid
# JSON Schema 2020-12 schemas whose $refs all resolve, its examples pass
# their own schemas, and the example job specs of examples/ are JobSpecs;
# a spec using the engine's optimizers, custom models, pair noise and
# scaling is a JobSpec the daemon accepts and runs.
import copy
import glob
import json
import os

import jsonschema
import pytest

from conftest import tiny_spec, wait_finished
from spkapi import (REPO, METHODS, component_schema, jobspec_errors,
                    load_spec, match_route, schema_errors, _pointer)


def walk(node, path='#'):
    """Yields (path, node) for every dict inside node."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, f'{path}/{k}')
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f'{path}/{i}')


def test_openapi_version_and_info():
    spec = load_spec()
    assert spec['openapi'] == '3.1.0'
    assert spec['info']['license']['identifier'] == 'MIT'


def test_every_ref_resolves():
    spec = load_spec()
    refs = [(p, n['$ref']) for p, n in walk(spec) if '$ref' in n]
    assert refs
    for where, ref in refs:
        assert _pointer(spec, ref) is not None, where


def test_schemas_are_valid_2020_12():
    for name, schema in load_spec()['components']['schemas'].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        for example in schema.get('examples', []):
            assert not schema_errors(component_schema(name), example), name


def test_every_operation_declares_responses():
    spec = load_spec()
    for template, item in spec['paths'].items():
        assert match_route(template.replace('{', 'x').replace('}', '')) \
            in (template, '/{file}')
        for method in METHODS:
            if method in item:
                assert item[method]['responses'], f'{method} {template}'
                assert item[method]['operationId']


def test_lists_share_the_page_shape():
    schemas = load_spec()['components']['schemas']
    for name in ('JobPage', 'MetricPage', 'SampleSet'):
        assert {'items', 'next_cursor'} <= set(schemas[name]['required'])
        assert schemas[name]['additionalProperties'] is False


@pytest.mark.parametrize('path', sorted(glob.glob(
    os.path.join(REPO, 'examples', '*.json'))))
def test_examples_are_job_specs(path):
    with open(path, encoding='utf-8') as f:
        spec = json.load(f)
    assert jobspec_errors(spec) == []


def test_jobspec_accepts_the_smallest_and_boundary_specs():
    assert jobspec_errors({'dataset': {'name': 'fashion-mnist'}}) == []
    edge = {
        'name': 'x' * 100, 'seed': 2 ** 53 - 1, 'threads': 64,
        'dataset': {'name': '_a.b-c', 'limit': 0, 'validation_fraction': 0.5,
                    'label_noise': None},
        'optimizer': {'kind': 'sgd', 'lr': 10, 'momentum': 0,
                      'weight_decay': 1, 'batch_size': 4096,
                      'schedule': 'constant'},
        'spl': {'model': 'mlp', 'epochs': 1000, 'warmup_epochs': 0,
                'optimizer': {}, 'pace': {'kind': 'fraction', 'start': 1,
                                          'end': 1}},
        'teachers': [{}],
        'student': {'kd': {'alpha': 0, 'temperature': 100}},
        'baseline': None,
    }
    assert jobspec_errors(edge) == []


# A spec of the engine's issue-3 keys: Adam with a step schedule after a
# warm-up, a small custom CNN in every stage (each layer type once, for
# 28 x 28 x 1 images and ten classes), pair noise, inputs scaled to [0, 1].
SMALL_CNN = {'layers': [
    {'type': 'conv2d', 'filters': 4, 'kernel': 3, 'stride': 1, 'pad': 1},
    {'type': 'relu'},
    {'type': 'maxpool', 'size': 2},
    {'type': 'flatten'},
    {'type': 'dropout', 'rate': 0.1},
    {'type': 'dense', 'units': 10},
]}


def engine_spec(model=SMALL_CNN):
    spec = tiny_spec(name='adam-cnn')
    spec['dataset'].update(normalize='scale', limit=600)
    spec['dataset']['label_noise']['kind'] = 'pair'
    spec['optimizer'] = {
        'kind': 'adam', 'lr': 0.002, 'beta1': 0.85, 'beta2': 0.995,
        'eps': 1e-7, 'weight_decay': 1e-4, 'decay_bias': False,
        'batch_size': 64, 'schedule': 'step', 'warmup_epochs': 0.5,
        'step_epochs': 1, 'gamma': 0.5}
    spec['spl']['optimizer'] = {'kind': 'adamw', 'schedule': 'cosine'}
    spec['teachers'][0]['optimizer'] = {'kind': 'sgd', 'nesterov': True,
                                        'lr': 0.05}
    for stage in (spec['spl'], spec['teachers'][0], spec['student'],
                  spec['baseline']):
        stage['model'] = copy.deepcopy(model)
    spec['student']['epochs'] = spec['baseline']['epochs'] = 2
    return spec


def test_jobspec_takes_the_engine_keys():
    assert jobspec_errors(engine_spec()) == []
    presets = load_spec()['components']['schemas']['ModelName']['enum']
    assert {'mlp', 'mlp-small', 'cnn'} <= set(presets)
    edge = {'dataset': {'name': 'd', 'normalize': 'standardize'},
            'optimizer': {'kind': 'adamw', 'nesterov': False, 'beta1': 0,
                          'beta2': 0.999999, 'eps': 1, 'warmup_epochs': 1000,
                          'step_epochs': 1000, 'gamma': 1,
                          'decay_bias': True},
            'student': {'model': {'layers': [
                {'type': 'conv2d', 'filters': 4096, 'kernel': 64,
                 'stride': 64, 'pad': 64},
                {'type': 'maxpool', 'size': 64, 'stride': 64},
                {'type': 'dropout', 'rate': 0},
                {'type': 'dense', 'units': 65536}] +
                [{'type': 'relu'}] * 20}}}
    assert jobspec_errors(edge) == []


def test_jobspec_refuses_nesterov_with_adam():
    for kind in ('adam', 'adamw'):
        assert jobspec_errors({'dataset': {'name': 'd'}, 'optimizer': {
            'kind': kind, 'nesterov': True}})
    assert not jobspec_errors({'dataset': {'name': 'd'}, 'optimizer': {
        'kind': 'sgd', 'nesterov': True}})


def test_engine_keys_are_accepted_and_run(client):
    spec = engine_spec()
    job = client.submit(spec)
    assert job['spec'] == spec
    job = wait_finished(client, job['id'], 180)
    assert job['state'] == 'succeeded', job
    assert set(job['stages']) == {'spl', 'teacher', 'student', 'baseline'}

    # Each stage's optimizer reached the engine: the step schedule halves
    # the student's rate after its first epoch (nine batches an epoch, so
    # each epoch's last batch lies past the half-epoch warm-up), and the
    # teacher runs SGD at its own rate.
    lr = {(m['stage'], m['epoch']): m['lr']
          for page in client.get_all(f"/v1/jobs/{job['id']}/metrics",
                                     limit=1000)
          for m in page['items']}
    assert lr[('student', 1)] == pytest.approx(0.002)
    assert lr[('student', 2)] == pytest.approx(0.001)
    assert lr[('baseline', 2)] == pytest.approx(0.001)
    assert lr[('teacher', 1)] == pytest.approx(0.05)
    assert 0 < lr[('spl', 2)] < 0.002


def test_custom_model_that_does_not_fit_fails_the_job(client):
    # A 9 x 9 window fits no 2 x 2 input: accepted as a spec, refused by
    # the engine when the first stage builds its model.
    model = {'layers': [{'type': 'maxpool', 'size': 14},
                        {'type': 'conv2d', 'filters': 2, 'kernel': 9},
                        {'type': 'flatten'}, {'type': 'dense', 'units': 10}]}
    job = client.submit(engine_spec(model))
    job = wait_finished(client, job['id'], 60)
    assert job['state'] == 'failed', job
    assert 'layers[1]' in job['error'], job['error']
