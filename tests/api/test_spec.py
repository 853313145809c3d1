# SPDX-License-Identifier: MIT
# The contract itself: api-spec/openapi.yaml is OpenAPI 3.1 with valid
# JSON Schema 2020-12 schemas whose $refs all resolve, its examples pass
# their own schemas, and the example job specs of examples/ are JobSpecs;
# a spec using the engine's optimizers, custom models, pair noise and
# scaling is a JobSpec the daemon accepts and runs; so is one with several
# teachers, a teacher loaded from a checkpoint in the data root, the
# student's weights and its representation hint, and each of those keys
# is refused, naming its field, when it is wrong.
import copy
import glob
import json
import os
import shutil
import subprocess

import jsonschema
import pytest

from conftest import (DATA_ROOT, SPKD, long_spec, spec_with, tiny_spec,
                      wait_finished, wait_state)
from spkapi import (REPO, METHODS, component_schema, expect_error,
                    jobspec_errors, load_spec, match_route, schema_errors,
                    _pointer)


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


# ---- Several teachers, checkpoints, the student's weights and its hint.

CHECKPOINT = 'models/mlp.ckpt'


def link_dataset(root, name='fashion-mnist'):
    """Gives root a copy of the system's dataset name: hard links where
    the file system allows them, copies elsewhere."""
    (root / name).mkdir(parents=True)
    src = os.path.join(DATA_ROOT, name)
    for f in os.listdir(src):
        try:
            os.link(os.path.join(src, f), root / name / f)
        except OSError:
            shutil.copyfile(os.path.join(src, f), root / name / f)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """A data root holding fashion-mnist, models/mlp.ckpt (an mlp that
    `spkd train` trained for an epoch), a link to it inside the root and
    one leading out of it."""
    root = tmp_path_factory.mktemp('data')
    link_dataset(root)
    (root / 'models').mkdir()
    res = subprocess.run(
        [SPKD, 'train', '--data-root', str(root), '--dataset',
         'fashion-mnist', '--model', 'mlp', '--limit', '600', '--epochs',
         '1', '--save', str(root / CHECKPOINT)],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    os.symlink(root / CHECKPOINT, root / 'alias.ckpt')
    outside = tmp_path_factory.mktemp('outside') / 'mlp.ckpt'
    shutil.copyfile(root / CHECKPOINT, outside)
    os.symlink(outside, root / 'escape.ckpt')
    return root


def refused_spec(client, spec, field):
    """Submits spec, which must be refused at field; returns the error."""
    before = client.jobs()
    err = expect_error(client.post('/v1/jobs', json_body=spec), 400,
                       'invalid_spec', field)
    assert client.jobs() == before
    return err


# Refused by the contract's JobSpec and by the daemon alike.
SCHEMA_REFUSALS = [
    (spec_with(teachers=[{}] * 9), 'teachers', '1 to 8'),
    (spec_with(teachers=[{'checkpoint': CHECKPOINT, 'epochs': 2}]),
     'teachers[0].epochs', 'does not apply to a teacher loaded from a '
     'checkpoint'),
    (spec_with(teachers=[{}, {'model': 'cnn', 'checkpoint': CHECKPOINT}]),
     'teachers[1].model', 'does not apply'),
    (spec_with(teachers=[{'checkpoint': CHECKPOINT, 'seed': 4}]),
     'teachers[0].seed', 'does not apply'),
    (spec_with(teachers=[{}, {'checkpoint': '../x.ckpt'}]),
     'teachers[1].checkpoint', '".."'),
    (spec_with(teachers=[{'checkpoint': 'models/../../x.ckpt'}]),
     'teachers[0].checkpoint', '".."'),
    (spec_with(teachers=[{'checkpoint': '/etc/hostname'}]),
     'teachers[0].checkpoint', 'relative'),
    (spec_with(teachers=[{'checkpoint': 'a\nb'}]), 'teachers[0].checkpoint',
     'control'),
    (spec_with(teachers=[{'checkpoint': 'x' * 101}]),
     'teachers[0].checkpoint', '1 to 100'),
    (spec_with(teachers=[{'seed': -1}]), 'teachers[0].seed', 'integer'),
    (spec_with(combine='max'), 'combine', '"mean", "confidence"'),
    (spec_with({'spl_weights': 'bogus'}), 'student.spl_weights',
     '"ce", "all", "none"'),
    (spec_with({'weights_from': 'teacher'}), 'student.weights_from',
     '"spl", "self"'),
    (spec_with({'representation': {'teacher_layer': 1}}),
     'student.representation.student_layer', 'required'),
    (spec_with({'representation': {'teacher_layer': 1, 'student_layer': 1,
                                    'beta': 0}}),
     'student.representation.beta', '(0, 1e+06]'),
]


@pytest.mark.parametrize('spec,field,words', SCHEMA_REFUSALS,
                         ids=[f'{i}-{c[1]}'
                              for i, c in enumerate(SCHEMA_REFUSALS)])
def test_new_keys_refused(rooted, spec, field, words):
    assert jobspec_errors(spec), 'the OpenAPI JobSpec must refuse it too'
    err = refused_spec(rooted.client, spec, field)
    assert words in err['message'], err


# Allowed by the contract's JobSpec, refused by the daemon: layers that a
# model does not have, and checkpoints that are no file of the data root.
DAEMON_REFUSALS = [
    (spec_with({'representation': {'teacher_layer': 5, 'student_layer': 0}}),
     'student.representation.teacher_layer', 'has 5 layers'),
    (spec_with({'model': 'mlp-small',
                'representation': {'teacher_layer': 0, 'student_layer': 3}}),
     'student.representation.student_layer', 'has 3 layers'),
    (spec_with({'representation': {'teacher_layer': 9, 'student_layer': 0}},
               teachers=[{'model': 'mlp-small'}, {'model': 'cnn'}]),
     'student.representation.teacher_layer', '"mlp-small" has 3 layers'),
    (spec_with(teachers=[{}, {'checkpoint': 'models/missing.ckpt'}]),
     'teachers[1].checkpoint', 'models/missing.ckpt'),
    (spec_with(teachers=[{'checkpoint': 'models'}]),
     'teachers[0].checkpoint', 'not a regular file'),
    (spec_with(teachers=[{'checkpoint': 'escape.ckpt'}]),
     'teachers[0].checkpoint', 'outside the data root'),
    (spec_with(teachers=[{'checkpoint': CHECKPOINT + '/x'}]),
     'teachers[0].checkpoint', CHECKPOINT + '/x'),
]


@pytest.mark.parametrize('spec,field,words', DAEMON_REFUSALS,
                         ids=[f'{i}-{c[1]}'
                              for i, c in enumerate(DAEMON_REFUSALS)])
def test_new_keys_refused_by_the_daemon(rooted, spec, field, words):
    assert not jobspec_errors(spec)
    err = refused_spec(rooted.client, spec, field)
    assert words in err['message'], err


def test_checkpoint_outside_the_daemons_data_root(client):
    """The system's data root holds no models/mlp.ckpt: refused there."""
    spec = spec_with(teachers=[{'checkpoint': CHECKPOINT}])
    err = refused_spec(client, spec, 'teachers[0].checkpoint')
    assert DATA_ROOT in err['message'], err


def test_stages_follow_the_spec(rooted):
    """Stages listed at submission: teacher or teacher0.., a teacher from
    a checkpoint planning one epoch, a baseline only for an object."""
    c = rooted.client
    cases = [
        (spec_with(), {'spl': 2, 'teacher': 1, 'student': 1}),
        (spec_with(baseline=None), {'spl': 2, 'teacher': 1, 'student': 1}),
        (spec_with(baseline={}),
         {'spl': 2, 'teacher': 1, 'student': 1, 'baseline': 1}),
        (spec_with(teachers=[{'checkpoint': 'alias.ckpt'}]),
         {'spl': 2, 'teacher': 1, 'student': 1}),
        (spec_with(teachers=[{'epochs': 3}, {'checkpoint': CHECKPOINT},
                             {}]),
         {'spl': 2, 'teacher0': 3, 'teacher1': 1, 'teacher2': 15,
          'student': 1}),
        (spec_with(teachers=[{}] * 8),
         dict({f'teacher{k}': 15 for k in range(8)}, spl=2, student=1)),
    ]
    # A long job holds the daemon so that the others stay queued.
    holder = c.submit(long_spec(name='holder'))
    jobs = [c.submit(spec) for spec, _ in cases]
    for job, (spec, want) in zip(jobs, cases):
        assert job['spec'] == spec
        assert {k: v['epochs'] for k, v in job['stages'].items()} == want
    for job in jobs + [holder]:
        assert c.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    for job in jobs + [holder]:
        assert wait_finished(c, job['id'], 60)['state'] == 'cancelled'


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def test_several_teachers_with_a_checkpoint_run(rooted):
    """A checkpoint teacher beside a trained one, combined by confidence,
    a hint on the first teacher's features and self-chosen weights on the
    whole loss: the job runs every stage and serves each one's sets."""
    c = rooted.client
    spec = spec_with(
        {'spl_weights': 'all', 'weights_from': 'self',
         'representation': {'teacher_layer': 3, 'student_layer': 1,
                            'beta': 0.5}},
        teachers=[{'checkpoint': CHECKPOINT},
                  {'model': 'mlp-small', 'epochs': 1, 'seed': 9}],
        combine='confidence')
    job = wait_finished(c, c.submit(spec)['id'], 180)
    assert job['state'] == 'succeeded', job
    assert set(job['stages']) == {'spl', 'teacher0', 'teacher1', 'student'}
    for stage, summary in job['stages'].items():
        assert summary['completed_epochs'] == summary['epochs'], stage
        assert 0.1 < summary['test_acc'] <= 1, (stage, summary)

    metrics = metrics_of(c, job['id'])
    assert [(m['stage'], m['epoch']) for m in metrics] == [
        ('spl', 1), ('spl', 2), ('teacher0', 1), ('teacher1', 1),
        ('student', 1)]
    # The loaded teacher trains nothing: no training loss.
    assert metrics[2]['train_loss'] is None
    assert metrics[3]['train_loss'] > 0

    base = f"/v1/jobs/{job['id']}/stages"
    for stage in ('teacher0', 'teacher1', 'student'):
        page = c.get_json(f'{base}/{stage}/epochs/1/samples')
        assert page['stage'] == stage and page['total'] > 0
    for stage in ('teacher', 'teacher2', 'teacher7', 'baseline'):
        err = expect_error(c.get(f'{base}/{stage}/epochs/1/samples'), 404,
                           'not_found')
        assert stage in err['message']
    expect_error(c.get(f'{base}/teacher8/epochs/1/samples'), 404,
                 'not_found')


def test_checkpoint_gone_at_start_fails_the_job(rooted, data_root):
    """A checkpoint removed while its job waits fails the job when it
    starts, naming the teacher and the file."""
    c = rooted.client
    shutil.copyfile(data_root / CHECKPOINT, data_root / 'models/gone.ckpt')
    holder = c.submit(long_spec(name='holder'))
    wait_state(c, holder['id'], ('running',), 60)
    job = c.submit(spec_with(teachers=[{}, {'checkpoint': 'models/gone.ckpt'}]))
    os.remove(data_root / 'models/gone.ckpt')
    assert c.post(f"/v1/jobs/{holder['id']}/cancel").status_code == 200
    job = wait_finished(c, job['id'], 60)
    assert job['state'] == 'failed', job
    assert 'teachers[1].checkpoint' in job['error'], job['error']
    assert 'models/gone.ckpt' in job['error'], job['error']
