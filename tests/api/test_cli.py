# SPDX-License-Identifier: MIT
# The command line beside the daemon: `spkd train` on real Fashion-MNIST
# subsets (accuracy bounds for mlp and cnn, the line format, refusals),
# `spkd run` with its exit codes and summary, and the OpenBLAS kernel spkd
# runs with.
import gzip
import json
import os
import re
import subprocess

import pytest
import requests

from conftest import DATA_ROOT, SPKD, message_lines

GENERIC_CORES = {'katmai', 'coppermine', 'northwood', 'prescott', 'banias',
                 'yonah', 'core2', 'penryn', 'dunnington', 'nehalem', 'atom',
                 'sandybridge', 'unknown'}
EPOCH_LINE = re.compile(
    r'^epoch=(\d+) loss=([0-9.]+) train_acc=([0-9.]+) val_acc=([0-9.]+|nan) '
    r'test_acc=([0-9.]+) '
    r'samples_per_s=(\d+) lr=[0-9.]+ seconds=[0-9.]+$')


def train(*args, timeout=300):
    return subprocess.run([SPKD, 'train', '--data-root', DATA_ROOT, *args],
                          capture_output=True, text=True, timeout=timeout)


def parse(out):
    """Epoch lines, then the last epoch's per-class accuracy and confusion
    matrix, then test_acc; returns the epochs' test accuracies."""
    lines = out.strip().splitlines()
    epochs = [EPOCH_LINE.match(line) for line in lines[:-3]]
    assert all(epochs), lines
    per_class = [float(v) for v in
                 re.fullmatch(r'class_acc=(.*)', lines[-3]).group(1).split(',')]
    rows = [[int(v) for v in row.split(',')] for row in
            re.fullmatch(r'confusion=(.*)', lines[-2]).group(1).split(';')]
    last = re.fullmatch(r'test_acc=([0-9.]+)', lines[-1])
    assert last, lines[-1]
    assert float(last.group(1)) == float(epochs[-1].group(5))
    # The matrix covers the 10 000 test images, 1 000 a class, and agrees
    # with both accuracies.
    assert len(rows) == 10 and all(len(r) == 10 for r in rows)
    assert [sum(r) for r in rows] == [1000] * 10
    diag = sum(rows[k][k] for k in range(10))
    assert abs(diag / 10000 - float(last.group(1))) < 1e-4
    for k in range(10):
        assert abs(per_class[k] - rows[k][k] / 1000) < 1e-4
    return [float(m.group(5)) for m in epochs]


@pytest.mark.parametrize('model,limit,epochs,bound', [
    ('mlp', 6000, 2, 0.80),
    ('mlp-small', 6000, 2, 0.78),
    ('cnn', 6000, 1, 0.72),
])
def test_train_learns_fashion_mnist(model, limit, epochs, bound):
    res = train('--dataset', 'fashion-mnist', '--model', model, '--limit',
                str(limit), '--epochs', str(epochs), '--lr', '0.05')
    assert res.returncode == 0, res.stderr
    accs = parse(res.stdout)
    assert len(accs) == epochs
    assert accs[-1] >= bound, (model, accs)


@pytest.mark.parametrize('model', ['mlp', 'cnn'])
def test_train_is_deterministic(model, tmp_path):
    """Same seed and threads: bit-identical weights, optimizer state and
    RNG state (the checkpoints are equal byte for byte)."""
    args = ('--dataset', 'fashion-mnist', '--model', model, '--limit', '1000',
            '--epochs', '2', '--threads', '2', '--seed', '5')
    a = train(*args, '--save', str(tmp_path / 'a.ckpt'))
    b = train(*args, '--save', str(tmp_path / 'b.ckpt'))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    strip = lambda out: re.sub(r' samples_per_s=\d+| seconds=[0-9.]+', '',
                               out)
    assert strip(a.stdout) == strip(b.stdout)
    assert (tmp_path / 'a.ckpt').read_bytes() == \
        (tmp_path / 'b.ckpt').read_bytes()
    c = train(*args[:-1], '6', '--save', str(tmp_path / 'c.ckpt'))
    assert c.returncode == 0, c.stderr
    assert (tmp_path / 'c.ckpt').read_bytes() != \
        (tmp_path / 'a.ckpt').read_bytes()


@pytest.mark.parametrize('args,message', [
    (['--model', 'resnet'], "--model 'resnet' is not one of"),
    (['--epochs', '0'], '--epochs must be an integer from 1 to 1000'),
    (['--epochs', '2.5'], '--epochs must be an integer'),
    (['--lr', 'fast'], '--lr must be a number'),
    (['--threads', '65'], '--threads must be an integer from 1 to 64'),
    (['--bogus', '1'], "unknown option '--bogus'"),
    (['--epochs'], '--epochs needs a value'),
    (['--schedule', 'wavy'], "--schedule 'wavy' is not one of"),
    (['--lr', 'nan'], '--lr must be a number'),
    (['--momentum', 'inf'], '--momentum must be a number'),
    (['--validation', 'nan'], '--validation must be a number'),
])
def test_train_refuses_bad_options(args, message):
    res = train('--dataset', 'fashion-mnist', *args)
    assert res.returncode == 2
    assert res.stdout == ''
    assert len(message_lines(res.stderr)) == 1, res.stderr
    assert message in res.stderr


@pytest.mark.parametrize('args,message', [
    (['--dataset', 'no-such-set'], "unknown dataset 'no-such-set'"),
    (['--dataset', '../etc'], 'not a plain name'),
    (['--dataset', 'fashion-mnist', '--limit', '70000'],
     '--limit 70000 exceeds the 60000 samples'),
    (['--dataset', 'fashion-mnist', '--save', '/no/such/dir/m.ckpt'],
     'cannot write /no/such/dir/m.ckpt'),
    (['--dataset', 'fashion-mnist', '--save', '/tmp'], '/tmp is a directory'),
    (['--dataset', 'fashion-mnist', '--save', ''], 'an empty path'),
])
def test_train_refuses_missing_files(args, message):
    res = train(*args)
    assert res.returncode == 1
    assert len(message_lines(res.stderr)) == 1, res.stderr
    assert message in res.stderr


def cpu_flags():
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    return set()


def test_daemon_runs_a_fast_kernel(spkd_factory):
    """Whatever OpenBLAS detects by itself, spkd never runs a pre-AVX2
    kernel on a processor with AVX2 and FMA (unless told to)."""
    if os.environ.get('OPENBLAS_CORETYPE'):
        pytest.skip('the environment chose the kernel')
    flags = cpu_flags()
    daemon = spkd_factory.start()
    core = daemon.client.get_json('/healthz')['blas_core']
    if {'avx2', 'fma'} <= flags:
        assert core.lower() not in GENERIC_CORES, core


def test_daemon_keeps_the_kernel_the_environment_sets(spkd_factory):
    daemon = spkd_factory.start(env={'OPENBLAS_CORETYPE': 'Haswell'})
    assert daemon.client.get_json('/healthz')['blas_core'] == 'Haswell'


def test_daemon_leaves_blas_to_its_own_threads(spkd_factory):
    """OpenBLAS starts no threads of its own: spkd re-executes itself with
    OPENBLAS_NUM_THREADS=1 unless the environment set it."""
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_NUM_THREADS'}
    daemon = spkd_factory.start()
    if 'OPENBLAS_NUM_THREADS' in os.environ:
        pytest.skip('the environment set OPENBLAS_NUM_THREADS')
    with open(f'/proc/{daemon.proc.pid}/environ', 'rb') as f:
        seen = dict(item.split(b'=', 1) for item in f.read().split(b'\0')
                    if b'=' in item)
    assert seen.get(b'OPENBLAS_NUM_THREADS') == b'1', env.keys()


TINY_SPEC = {
    'name': 'tiny', 'dataset': {'name': 'fashion-mnist', 'limit': 600,
                                'label_noise': {'kind': 'symmetric',
                                                'rate': 0.2, 'seed': 3}},
    'spl': {'epochs': 2, 'warmup_epochs': 1},
    'teachers': [{'epochs': 1}],
    'student': {'epochs': 1},
    'baseline': {},
}


def spkd_run(tmp_path, spec, *args, data_root=DATA_ROOT):
    path = tmp_path / 'job.json'
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return subprocess.run(
        [SPKD, 'run', str(path), '--db', str(tmp_path / 'run.db'),
         '--data-root', data_root, *args],
        capture_output=True, text=True, timeout=300)


def test_run_succeeds_and_summarises(tmp_path):
    res = spkd_run(tmp_path, TINY_SPEC, '--summary',
                   str(tmp_path / 'summary.json'))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    stages = [re.match(r'stage=(\w+) epoch=(\d+) loss=', l).groups()
              for l in lines]
    # The baseline trains on a lane of its own beside the pipeline, so its
    # lines may come between the others'.
    assert [s for s in stages if s[0] != 'baseline'] == [
        ('spl', '1'), ('spl', '2'), ('teacher', '1'), ('student', '1')]
    assert [s for s in stages if s[0] == 'baseline'] == [('baseline', '1')]
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['state'] == 'succeeded' and summary['id'] == 1
    assert set(summary['stages']) == {'spl', 'teacher', 'student',
                                      'baseline'}
    for stage in summary['stages'].values():
        acc = stage['test_accuracy']
        assert 0.1 < acc['last'] <= 1 and 0.1 < acc['best'] <= 1
    noise = summary['noise']
    assert noise['rate'] == 0.2
    # The spl stage's estimate from its training dynamics: every estimator
    # by name, the best one's overall and per class (of the 10 classes).
    assert set(noise['estimates']) == {'confident', 'beta', 'gmm_class',
                                       'gmm'}
    assert noise['estimated_rate'] == noise['estimates']['confident']
    assert 0 <= noise['estimated_rate'] <= 1
    assert len(noise['per_class']) == 10
    assert all(0 <= r <= 1 for r in noise['per_class'])
    # Every spl epoch from the last warm-up epoch on prints the estimate.
    assert [l.split(' ')[:2] for l in lines
            if 'estimated_noise_rate=' in l] == [
        ['stage=spl', 'epoch=1'], ['stage=spl', 'epoch=2']]
    assert summary['wall_seconds'] > 0
    assert summary['provenance']['dataset'] == 'fashion-mnist'
    # The job is in the database like a daemon's: the same spec again finds
    # job 1 ended and trains nothing; --fresh adds job 2.
    again = spkd_run(tmp_path, TINY_SPEC)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ''
    assert 'job 1 with this spec already ended succeeded' in again.stderr
    fresh = spkd_run(tmp_path, TINY_SPEC, '--fresh')
    assert fresh.returncode == 0, fresh.stderr
    assert 'job 2' in fresh.stderr
    assert len(fresh.stdout.strip().splitlines()) == len(lines)


@pytest.mark.parametrize('spec,message', [
    ('{"dataset": ', 'line 1'),
    ({'dataset': {'name': 'fashion-mnist'}, 'spl': {'epochs': 0}},
     'spl.epochs'),
    ({'dataset': {'name': 'nope'}}, "unknown dataset 'nope'"),
    ({'dataset': {'name': 'fashion-mnist', 'limit': 70000}},
     'dataset.limit'),
    ({'dataset': {'name': 'fashion-mnist'},
      'teachers': [{}, {'checkpoint': 'models/none.ckpt'}]},
     "teachers[1].checkpoint: teachers[1].checkpoint 'models/none.ckpt' is "
     'not a file in the data root'),
    ({'dataset': {'name': 'fashion-mnist'},
      'teachers': [{'checkpoint': '../x.ckpt'}]}, 'teachers[0].checkpoint'),
])
def test_run_refuses_bad_specs(tmp_path, spec, message):
    res = spkd_run(tmp_path, spec)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert not (tmp_path / 'run.db').exists()


def test_run_fails_on_a_broken_dataset(tmp_path):
    """A dataset whose headers look right but whose pixels are cut short
    passes the spec check and fails the job: exit 1, recorded as failed."""
    root = tmp_path / 'data'
    (root / 'broken').mkdir(parents=True)
    src = os.path.join(DATA_ROOT, 'fashion-mnist')
    for name in os.listdir(src):
        data = open(os.path.join(src, name), 'rb').read()
        if name.startswith('train-images'):
            data = gzip.compress(gzip.decompress(data)[:100000])
        (root / 'broken' / name).write_bytes(data)
    spec = dict(TINY_SPEC, dataset={'name': 'broken', 'limit': 600})
    res = spkd_run(tmp_path, spec, '--summary', str(tmp_path / 's.json'),
                   data_root=str(root))
    assert res.returncode == 1, res.stderr
    summary = json.loads((tmp_path / 's.json').read_text())
    assert summary['state'] == 'failed'
    assert 'truncated' in summary['error']


def test_run_refuses_bad_options(tmp_path):
    res = subprocess.run([SPKD, 'run'], capture_output=True, text=True)
    assert res.returncode == 2 and 'usage: spkd run' in res.stderr
    res = spkd_run(tmp_path, TINY_SPEC, '--bogus', 'x')
    assert res.returncode == 2 and "unknown option '--bogus'" in res.stderr


def test_run_checks_the_summary_path_first(tmp_path):
    """A summary that could not be written is refused before the job runs:
    exit 2 and no job stored."""
    res = spkd_run(tmp_path, TINY_SPEC, '--summary', str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert 'is a directory' in res.stderr
    assert not (tmp_path / 'run.db').exists()


def test_run_refuses_a_model_too_big_for_memory(tmp_path):
    """A spec whose model would need tens of gigabytes fails its job with
    an error naming the layer, before allocating anything."""
    spec = dict(TINY_SPEC, spl={'epochs': 1, 'warmup_epochs': 1, 'model': {
        'layers': [{'type': 'dense', 'units': 65536}, {'type': 'relu'},
                   {'type': 'dense', 'units': 65536}, {'type': 'relu'},
                   {'type': 'dense', 'units': 10}]}})
    res = spkd_run(tmp_path, spec, '--summary', str(tmp_path / 's.json'))
    assert res.returncode == 1, res.stderr
    error = json.loads((tmp_path / 's.json').read_text())['error']
    assert re.search(r'layers\[\d\] \(dense\)', error), error
    assert 'parameters' in error, error
