# SPDX-License-Identifier: MIT
# The contract itself: api-spec/openapi.yaml is OpenAPI 3.1 with valid
# JSON Schema 2020-12 schemas whose $refs all resolve, its examples pass
# their own schemas, and the example job specs of examples/ are JobSpecs.
import glob
import json
import os

import jsonschema
import pytest

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
