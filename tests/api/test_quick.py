# SPDX-License-Identifier: MIT
# examples/quick.json run to its end once (the session's `quick` fixture),
# then read back: the job object, every stage's metrics, the easy and hard
# sets page by page, training and validation samples with their histories
# and training dynamics, and the 404s of results that do not exist.
import gzip
import hashlib
import math
import os
import random

import pytest

from conftest import DATA_ROOT
from spkapi import expect_error

STAGES = ('spl', 'teacher', 'student', 'baseline')
N_CLASSES = 10


def planned_epochs(spec):
    """Epochs per stage that the spec names (stages it leaves to the
    defaults are absent)."""
    out = {}
    if 'epochs' in spec.get('spl', {}):
        out['spl'] = spec['spl']['epochs']
    if spec.get('teachers') and 'epochs' in spec['teachers'][0]:
        out['teacher'] = spec['teachers'][0]['epochs']
    if 'epochs' in spec.get('student', {}):
        out['student'] = spec['student']['epochs']
    if spec.get('baseline') and 'epochs' in spec['baseline']:
        out['baseline'] = spec['baseline']['epochs']
    return out


def job_stages(quick):
    """The job's stages in pipeline order."""
    return [s for s in STAGES if s in quick.job['stages']]


def train_set(quick):
    """Every training sample of the job: the baseline's first easy set."""
    assert 'baseline' in quick.job['stages'], \
        'examples/quick.json must keep its baseline stage'
    totals, items = quick.sample_set('baseline', 1, 'easy')
    return items


def last_epoch(quick, stage):
    return quick.job['stages'][stage]['epochs']


def file_labels():
    path = os.path.join(DATA_ROOT, 'fashion-mnist',
                        'train-labels-idx1-ubyte.gz')
    with gzip.open(path, 'rb') as f:
        data = f.read()
    assert int.from_bytes(data[4:8], 'big') == len(data) - 8
    return data[8:]


def test_quick_spec_matches_contract(quick):
    # The job echoes the spec as submitted; quick.json has noise and all
    # four stages, which the checks below rely on.
    assert quick.job['spec'] == quick.spec
    assert quick.spec['dataset']['name'] == 'fashion-mnist'
    assert quick.spec['dataset'].get('label_noise'), \
        'examples/quick.json injects label noise'


def test_job_object_after_success(quick):
    job = quick.job
    spec = quick.spec
    assert job['name'] == spec.get('name')
    assert job['error'] is None
    assert job['cancel_requested'] is False
    assert job['created_at'] <= job['started_at'] <= job['finished_at']
    assert set(job['stages']) == set(STAGES)
    for stage, epochs in planned_epochs(spec).items():
        assert job['stages'][stage]['epochs'] == epochs, stage
    for stage, summary in job['stages'].items():
        assert summary['completed_epochs'] == summary['epochs'], stage
    # The baseline trains on a lane of its own beside spl and the teachers:
    # the job ends with the student or the baseline, whichever ends last.
    assert job['stage'] in [s for s in ('student', 'baseline')
                            if s in job['stages']]
    assert job['epoch'] == job['stages'][job['stage']]['epochs']
    metrics = quick.metrics()
    for stage, summary in job['stages'].items():
        final = [m for m in metrics if m['stage'] == stage][-1]
        assert summary['test_acc'] == final['test_acc'], stage
    # The same object comes back from GET and from the list.
    assert quick.client.get_json(f"/v1/jobs/{job['id']}") == job
    assert [j for j in quick.client.jobs() if j['id'] == job['id']] == [job]


def test_provenance(quick):
    prov = quick.job['provenance']
    health = quick.client.get_json('/healthz')
    assert prov['spkd_version'] == health['version']
    assert prov['blas_core'] == health['blas_core']
    assert prov['threads'] == quick.spec.get('threads', prov['threads'])
    assert prov['dataset'] == 'fashion-mnist'
    directory = os.path.join(DATA_ROOT, 'fashion-mnist')
    files = sorted(os.listdir(directory))
    assert sorted(prov['dataset_sha256']) == files
    for name, digest in prov['dataset_sha256'].items():
        with open(os.path.join(directory, name), 'rb') as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_metrics_of_every_stage(quick):
    metrics = quick.metrics()
    order = [(m['stage'], m['epoch']) for m in metrics]
    expected = [(s, e) for s in job_stages(quick)
                for e in range(1, quick.job['stages'][s]['epochs'] + 1)]
    assert order == expected
    n_train = len(train_set(quick))
    for m in metrics:
        where = f"{m['stage']} epoch {m['epoch']}"
        assert math.isfinite(m['train_loss']), where
        assert m['lr'] > 0, where
        assert m['seconds'] > 0, where
        assert m['samples_per_s'] > 0, where
        assert m['val_acc'] is not None, where
        assert 0 <= m['easy_size'] <= n_train, where
        assert m['easy_fraction'] == pytest.approx(m['easy_size'] / n_train,
                                                   abs=1e-6), where
    for stage in ('baseline', 'student'):
        final = [m for m in metrics if m['stage'] == stage][-1]
        assert final['test_acc'] > 0.6, final
    assert all(m['easy_size'] == n_train for m in metrics
               if m['stage'] == 'baseline')
    # The teacher trains on the final easy set, `end` of each class.
    end = quick.spec['spl']['pace']['end']
    for m in metrics:
        if m['stage'] == 'teacher':
            assert m['easy_fraction'] == pytest.approx(end, abs=0.01), m


NOISE_KEYS = ('noise_precision', 'noise_recall', 'noise_auroc')


def test_noise_detection_metrics(quick):
    # quick.json injects noise, so every epoch of every stage measures how
    # its easy set and score separate corrupted labels from clean ones.
    metrics = quick.metrics()
    for m in metrics:
        where = f"{m['stage']} epoch {m['epoch']}"
        for key in NOISE_KEYS:
            assert isinstance(m[key], float), (where, key, m[key])
            assert 0 <= m[key] <= 1, (where, key)
    by_stage = {s: [m for m in metrics if m['stage'] == s]
                for s in job_stages(quick)}
    # The baseline's easy set is every sample: all clean ones are in it,
    # and its precision is the share of clean labels.
    rate = quick.spec['dataset']['label_noise'].get('rate', 0.4)
    clean_share = by_stage['baseline'][0]['noise_precision']
    assert clean_share == pytest.approx(1 - rate, abs=0.05)
    for m in by_stage['baseline']:
        assert m['noise_recall'] == 1.0, m
        assert m['noise_precision'] == clean_share, m
    # The teacher trains on one fixed set: the same figures every epoch.
    teacher = by_stage['teacher']
    for m in teacher:
        assert (m['noise_precision'], m['noise_recall']) == \
            (teacher[0]['noise_precision'], teacher[0]['noise_recall']), m
    # After self-paced training the easy set is purer than the data and
    # the loss ranks corrupted samples far better than chance.
    final = by_stage['spl'][-1]
    assert final['noise_precision'] > clean_share + 0.05, final
    assert final['noise_auroc'] > 0.75, final


def test_metrics_pages_join_up(quick):
    whole = quick.metrics()
    path = f"/v1/jobs/{quick.job['id']}/metrics"
    pages = quick.client.get_all(path, limit=4)
    assert len(pages) == math.ceil(len(whole) / 4)
    assert all(len(p['items']) <= 4 for p in pages)
    assert [m for p in pages for m in p['items']] == whole
    assert quick.client.get_json(path)['items'] == whole[:100]


def test_easy_set_paged_by_500(quick):
    epoch = last_epoch(quick, 'spl')
    totals, items = quick.sample_set('spl', epoch, 'easy', limit=500)
    metric = [m for m in quick.metrics()
              if (m['stage'], m['epoch']) == ('spl', epoch)][0]
    assert len(totals) == max(1, math.ceil(len(items) / 500))
    assert all(t == metric['easy_size'] for t in totals)
    assert len(items) == metric['easy_size']
    assert items == sorted(set(items)), 'indices ascending and unique'
    # The default page size and a larger one list the same set.
    assert quick.sample_set('spl', epoch, 'easy', limit=1000)[1] == items
    path = f"/v1/jobs/{quick.job['id']}/stages/spl/epochs/{epoch}/samples"
    page = quick.client.get_json(path)
    assert page['set'] == 'easy'
    assert page['items'] == items[:100]


def test_hard_and_easy_sets_split_the_training_set(quick):
    everything = train_set(quick)
    assert everything == sorted(set(everything))
    limit = quick.spec['dataset'].get('limit', 0)
    vf = quick.spec['dataset'].get('validation_fraction', 0.1)
    if limit:
        assert abs(len(everything) - limit * (1 - vf)) <= 1
    metrics = {(m['stage'], m['epoch']): m for m in quick.metrics()}
    for (stage, epoch), m in metrics.items():
        easy = quick.sample_set(stage, epoch, 'easy')[1]
        totals, hard = quick.sample_set(stage, epoch, 'hard')
        where = f'{stage} epoch {epoch}'
        assert all(t == len(hard) for t in totals), where
        assert hard == sorted(set(hard)), where
        assert not set(easy) & set(hard), where
        assert sorted(easy + hard) == everything, where
        assert len(easy) == m['easy_size'], where


def test_training_sample_history(quick):
    epoch = last_epoch(quick, 'spl')
    easy = quick.sample_set('spl', epoch, 'easy')[1]
    hard = quick.sample_set('spl', epoch, 'hard')[1]
    assert easy and hard, 'quick.json keeps part of the data, not all'
    expected = [(m['stage'], m['epoch']) for m in quick.metrics()]
    for index in (easy[len(easy) // 2], hard[len(hard) // 2]):
        sample = quick.client.get_json(
            f"/v1/jobs/{quick.job['id']}/samples/{index}")
        assert sample['index'] == index
        assert sample['split'] == 'train'
        hist = sample['history']
        keys = [(r['stage'], r['epoch']) for r in hist]
        assert sorted(keys) == sorted(expected), 'one record a stage-epoch'
        teacher_easy = None
        for r in hist:
            where = f"sample {index} {r['stage']} epoch {r['epoch']}"
            history_margin_agrees(r, sample['observed_label'], where)
            in_set = index in set(quick.sample_set(r['stage'], r['epoch'],
                                                   'easy')[1])
            assert r['easy'] == in_set, where
            if r['stage'] in ('spl', 'teacher', 'baseline') and \
                    r['prob'] >= 2 ** -14:
                assert r['loss'] == pytest.approx(-math.log(r['prob']),
                                                  rel=2 ** -10,
                                                  abs=2 ** -10), where
            if r['stage'] == 'spl':
                assert r['weight'] in (0, 1), where
            if r['stage'] == 'teacher':
                teacher_easy = r['easy']
                assert r['weight'] == (1 if r['easy'] else 0), where
            if r['stage'] == 'baseline':
                assert r['weight'] == 1 and r['easy'] is True, where
        for r in hist:
            if r['stage'] == 'student':
                # w_i is 1 in the final easy set (the teacher's training
                # set) and 0 outside it.
                assert r['weight'] == (1 if teacher_easy else 0), r


def history_margin_agrees(r, observed, where):
    """The record's margin (observed label's logit minus the largest other)
    and predicted class tell the same story as its probability."""
    assert isinstance(r['margin'], float), where
    assert isinstance(r['predicted'], int), where
    assert 0 <= r['predicted'] < N_CLASSES, where
    if r['margin'] > 0:
        assert r['predicted'] == observed, where
    elif r['margin'] < 0:
        assert r['predicted'] != observed, where
    if r['prob'] > 0.5:
        assert r['margin'] > 0, where


def test_history_margins_and_predictions(quick):
    # Samples of every kind of outcome: among a few hundred training
    # samples, some are predicted as their observed label in the last spl
    # epoch and some are not.
    train = train_set(quick)
    picks = random.Random(5).sample(train, min(200, len(train)))
    right = wrong = 0
    for index in picks:
        sample = quick.client.get_json(
            f"/v1/jobs/{quick.job['id']}/samples/{index}")
        for r in sample['history']:
            where = f"sample {index} {r['stage']} epoch {r['epoch']}"
            history_margin_agrees(r, sample['observed_label'], where)
        last = [r for r in sample['history'] if r['stage'] == 'spl'][-1]
        if last['predicted'] == sample['observed_label']:
            right += 1
        else:
            wrong += 1
    assert right > 0 and wrong > 0, (right, wrong)


def dynamics_from_history(records, observed):
    """One stage's training dynamics worked out from the sample's history
    records of that stage, in epoch order."""
    n = len(records)
    probs = [r['prob'] for r in records]
    mean = sum(probs) / n
    correct = [r['predicted'] == observed for r in records]
    return {
        'confidence': mean,
        'variability': math.sqrt(sum((p - mean) ** 2 for p in probs) / n),
        'correctness': sum(correct) / n,
        'forgetting': sum(1 for a, b in zip(correct, correct[1:])
                          if a and not b),
        'aum': sum(r['margin'] for r in records) / n,
        'aum_scale': sum(abs(r['margin']) for r in records) / n,
    }


def dynamics_agree(d, want, epochs, where):
    """Checks one stage's dynamics: types, ranges, and the values its
    history gives."""
    for key in ('confidence', 'variability', 'correctness', 'aum'):
        assert isinstance(d[key], float), (where, key, d[key])
    assert isinstance(d['forgetting'], int), where
    assert not isinstance(d['forgetting'], bool), where
    assert 0 <= d['confidence'] <= 1, where
    assert 0 <= d['variability'] <= 0.5 + 1e-6, where
    assert 0 <= d['correctness'] <= 1, where
    # A forgetting event needs a correct epoch before it, so there are at
    # most epochs // 2 of them, and never more than epochs - 1.
    assert 0 <= d['forgetting'] <= epochs // 2 <= max(epochs - 1, 0), where
    assert d['forgetting'] == want['forgetting'], where
    assert d['correctness'] == pytest.approx(want['correctness'],
                                             abs=1e-6), where
    assert d['confidence'] == pytest.approx(want['confidence'],
                                            abs=2 ** -11 + 1e-6), where
    assert d['variability'] == pytest.approx(want['variability'],
                                             abs=2 ** -10 + 1e-5), where
    assert abs(d['aum'] - want['aum']) <= \
        2 ** -11 * want['aum_scale'] + 1e-5, where


def test_training_dynamics(quick):
    # Every stage of the quick job has finished, so every training sample
    # carries the dynamics of each one, and they agree with its history.
    train = train_set(quick)
    picks = random.Random(17).sample(train, min(150, len(train)))
    stages = job_stages(quick)
    confidence = {True: [], False: []}
    for index in picks:
        sample = quick.client.get_json(
            f"/v1/jobs/{quick.job['id']}/samples/{index}")
        dynamics = sample['dynamics']
        assert sorted(dynamics) == sorted(stages), (index, dynamics)
        for stage in stages:
            where = f'sample {index} {stage}'
            records = [r for r in sample['history'] if r['stage'] == stage]
            epochs = quick.job['stages'][stage]['epochs']
            assert [r['epoch'] for r in records] == \
                list(range(1, epochs + 1)), where
            want = dynamics_from_history(records, sample['observed_label'])
            dynamics_agree(dynamics[stage], want, epochs, where)
        confidence[sample['corrupted']].append(
            dynamics['spl']['confidence'])
    # Corrupted labels are the ones the self-paced model believes least:
    # the point of a data map.
    assert confidence[True] and confidence[False]
    mean = {k: sum(v) / len(v) for k, v in confidence.items()}
    assert mean[True] < mean[False] - 0.2, mean


def test_validation_sample_and_unused_indices(quick):
    # Walks the indices the training set does not hold until it has met a
    # validation sample and, since quick.json takes a subset, an index the
    # job does not use at all.
    dataset = quick.spec['dataset']
    assert dataset.get('validation_fraction', 0.1) > 0
    assert 0 < dataset.get('limit', 0) < 60000
    train = set(train_set(quick))
    job = quick.job['id']
    found, unused = None, None
    for index in range(0, 60000):
        if found is not None and unused is not None:
            break
        if index in train:
            continue
        resp = quick.client.get(f'/v1/jobs/{job}/samples/{index}')
        if resp.status_code == 404:
            expect_error(resp, 404, 'not_found')
            unused = index
            continue
        assert resp.status_code == 200, resp.text
        if found is None:
            found = resp.json()
            assert found['index'] == index
    assert found is not None and unused is not None
    assert found['split'] == 'validation'
    assert found['history'] == []
    assert found['dynamics'] == {}
    if found['clean_label'] is not None:
        assert found['corrupted'] == \
            (found['clean_label'] != found['observed_label'])
    assert found['clean_label'] == file_labels()[found['index']]


def test_labels_agree_with_the_file_and_the_noise(quick):
    labels = file_labels()
    train = train_set(quick)
    rng = random.Random(11)
    picks = rng.sample(train, min(300, len(train)))
    corrupted = 0
    for index in picks:
        s = quick.client.get_json(f"/v1/jobs/{quick.job['id']}/samples/"
                                  f"{index}")
        assert 0 <= s['observed_label'] < N_CLASSES, s
        assert s['clean_label'] == labels[index], s
        assert s['corrupted'] == (s['clean_label'] != s['observed_label']), s
        corrupted += s['corrupted']
    rate = quick.spec['dataset']['label_noise'].get('rate', 0.4)
    assert corrupted / len(picks) == pytest.approx(rate, abs=0.1)


def test_results_that_do_not_exist(quick):
    c = quick.client
    job = quick.job['id']
    missing = job + 1000
    for path in (f'/v1/jobs/{missing}', f'/v1/jobs/{missing}/metrics',
                 f'/v1/jobs/{missing}/samples/0',
                 f'/v1/jobs/{missing}/stages/spl/epochs/1/samples',
                 '/v1/jobs/abc', '/v1/jobs/0', '/v1/jobs/-1',
                 '/v1/jobs/1.5', '/v1/jobs/abc/metrics'):
        expect_error(c.get(path), 404, 'not_found')
    expect_error(c.post(f'/v1/jobs/{missing}/cancel'), 404, 'not_found')
    expect_error(c.post('/v1/jobs/abc/cancel'), 404, 'not_found')
    spl_epochs = quick.job['stages']['spl']['epochs']
    for stage, epoch in (('nope', 1), ('SPL', 1), ('spl', 0),
                         ('spl', spl_epochs + 1), ('spl', 'x'),
                         ('teacher', 100000)):
        resp = c.get(f'/v1/jobs/{job}/stages/{stage}/epochs/{epoch}/samples')
        expect_error(resp, 404, 'not_found')
    for index in (60000, 10 ** 12, -1, 'x'):
        expect_error(c.get(f'/v1/jobs/{job}/samples/{index}'), 404,
                     'not_found')


def test_cancelling_a_finished_job_conflicts(quick):
    before = quick.client.jobs()
    resp = quick.client.post(f"/v1/jobs/{quick.job['id']}/cancel")
    expect_error(resp, 409, 'conflict')
    assert quick.client.jobs() == before
