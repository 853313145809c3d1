# SPDX-License-Identifier: MIT
# The one recipe for every regime: examples/auto.json and the files
# derived from it differ only where a regime may differ (the injected
# noise; for memorise also the optimizer and the epochs; the name, which
# is only a label), examples/cnn-sym40.json is sym40-auto.json with
# every model a cnn, and the daemon accepts every one of them.
import glob
import json
import os

import pytest

from conftest import long_spec, wait_state
from spkapi import REPO

EXAMPLES = os.path.join(REPO, 'examples')
DERIVED = sorted(glob.glob(os.path.join(EXAMPLES, '*-auto.json')))
REGIMES = ['clean', 'memorise', 'pair45', 'sym20', 'sym40', 'sym60']

ALLOWED = {'name', 'dataset.label_noise'}
MEMORISE = ALLOWED | {'optimizer.weight_decay', 'optimizer.schedule',
                      'spl.epochs', 'teachers[0].epochs', 'student.epochs',
                      'baseline.epochs'}


def load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def differences(a, b, where=''):
    """The dotted paths at which two JSON documents differ: a key present
    in one only, or different leaves."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = set()
        for k in set(a) | set(b):
            path = f'{where}.{k}' if where else k
            if k not in a or k not in b:
                out.add(path)
            else:
                out |= differences(a[k], b[k], path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = set()
        for i, (x, y) in enumerate(zip(a, b)):
            out |= differences(x, y, f'{where}[{i}]')
        return out
    return set() if a == b else {where}


def test_every_regime_has_its_file():
    names = [os.path.basename(p)[:-len('-auto.json')] for p in DERIVED]
    assert names == REGIMES


@pytest.mark.parametrize('path', DERIVED, ids=os.path.basename)
def test_derived_differs_only_where_allowed(path):
    base = load(os.path.join(EXAMPLES, 'auto.json'))
    spec = load(path)
    memorise = os.path.basename(path) == 'memorise-auto.json'
    allowed = MEMORISE if memorise else ALLOWED
    diff = differences(base, spec)
    outside = {d for d in diff
               if not any(d == a or d.startswith(a + '.') for a in allowed)}
    assert not outside, outside
    assert base['spl']['pace'] == {'kind': 'auto'}
    if memorise:
        assert spec['optimizer']['weight_decay'] == 0
        assert spec['optimizer']['schedule'] == 'constant'
        assert spec['optimizer']['lr'] == 0.05
        assert (spec['spl']['epochs'], spec['teachers'][0]['epochs'],
                spec['student']['epochs'], spec['baseline']['epochs']) == \
            (10, 30, 60, 60)
        assert spec['dataset']['label_noise']['rate'] == 0.4


def test_cnn_recipe_changes_only_the_models():
    base = load(os.path.join(EXAMPLES, 'sym40-auto.json'))
    cnn = load(os.path.join(EXAMPLES, 'cnn-sym40.json'))
    models = {'spl.model', 'teachers[0].model', 'student.model',
              'baseline.model'}
    assert differences(base, cnn) == models | {'name'}
    assert {cnn['spl']['model'], cnn['teachers'][0]['model'],
            cnn['student']['model'], cnn['baseline']['model']} == {'cnn'}


def test_the_daemon_accepts_every_recipe(spkd):
    """Each file passes the daemon's own validation (and its dataset
    check); a long job holds the only slot, so none of them runs."""
    client = spkd.client
    holder = client.submit(long_spec())
    wait_state(client, holder['id'], ('running',), 60)
    for path in [os.path.join(EXAMPLES, name)
                 for name in ('auto.json', 'cnn-sym40.json')] + DERIVED:
        job = client.submit(load(path))
        assert job['state'] == 'queued', path
        resp = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert resp.json()['state'] == 'cancelled', resp.text
    client.post(f"/v1/jobs/{holder['id']}/cancel")
