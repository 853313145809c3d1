# SPDX-License-Identifier: MIT
# A teacher loaded from a checkpoint is checked when the job is submitted:
# a file that is not a checkpoint, empty, random, truncated, corrupt,
# patched behind a valid CRC, holding weights that are not finite, made
# for other inputs or classes than the dataset's, or lacking the layer
# the student's hint reads is refused with 400 naming the teacher's
# field. Checked again when the job starts, before any stage trains: a
# file spoilt after submission fails the job at once, shown at its
# teacher's stage, and the daemon's log line says why. One spoilt while
# the self-paced stage trains fails the job at the teacher's stage too.
import os
import random
import shutil
import struct
import subprocess
import zlib

import pytest

from conftest import (DATA_ROOT, SPKD, long_spec, spec_with, wait_finished,
                      wait_for, wait_state)
from spkapi import expect_error, jobspec_errors

GOOD = 'models/mlp.ckpt'
LABELS = 'fashion-mnist/train-labels-idx1-ubyte.gz'

# Offsets of the checkpoint format, version 1 (engine/checkpoint.c): a
# 20-byte header, the model section with 52 bytes a layer, the optimizer
# (88 bytes), the training state (48 bytes and 36 a layer generator),
# then the tensors.
OFF_VERSION = 8
OFF_CLASSES = 32
OFF_N_LAYERS = 68
OFF_LAYERS = 72


def u32(b, off):
    return struct.unpack_from('<I', b, off)[0]


def crc_fixed(b):
    """b with its closing CRC-32 made right again."""
    b = bytearray(b)
    struct.pack_into('<I', b, len(b) - 4, zlib.crc32(bytes(b[:-4])))
    return bytes(b)


def first_weight(b):
    """The offset of the first parameter value of checkpoint b."""
    state = OFF_LAYERS + 52 * u32(b, OFF_N_LAYERS) + 88
    tensors = state + 48 + 36 * u32(b, state + 44)
    return tensors + 4 + 8


def patched(b, off, fmt, value, fix_crc=True):
    b = bytearray(b)
    struct.pack_into(fmt, b, off, value)
    return crc_fixed(b) if fix_crc else bytes(b)


def link_dataset(root, name='fashion-mnist'):
    """A copy of the system's dataset name in root, by hard links where
    the file system allows them."""
    (root / name).mkdir(parents=True)
    src = os.path.join(DATA_ROOT, name)
    for f in os.listdir(src):
        try:
            os.link(os.path.join(src, f), root / name / f)
        except OSError:
            shutil.copyfile(os.path.join(src, f), root / name / f)


def blobs_dataset(root):
    """A tabular dataset of 8 features and 3 classes, 'blobs'."""
    rng = random.Random(4)
    (root / 'blobs').mkdir()
    for split, n in (('train', 300), ('test', 90)):
        lines = []
        for i in range(n):
            label = i % 3
            cells = [f'{label + rng.gauss(0, 0.3):.4f}' for _ in range(8)]
            lines.append(','.join(cells + [str(label)]))
        (root / 'blobs' / f'{split}.csv').write_text('\n'.join(lines) + '\n')


def train(root, dataset, path, limit=None):
    args = [SPKD, 'train', '--data-root', str(root), '--dataset', dataset,
            '--model', 'mlp', '--epochs', '1', '--save', str(root / path)]
    if limit:
        args += ['--limit', str(limit)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """fashion-mnist, blobs, an mlp trained on each (models/mlp.ckpt,
    models/blobs.ckpt) and the spoilt files of BAD_FILES."""
    root = tmp_path_factory.mktemp('data')
    link_dataset(root)
    blobs_dataset(root)
    (root / 'models').mkdir()
    train(root, 'fashion-mnist', GOOD, limit=600)
    train(root, 'blobs', 'models/blobs.ckpt')
    good = (root / GOOD).read_bytes()
    for name, make in BAD_FILES.items():
        (root / 'models' / name).write_bytes(make(good))
    return root


# Spoilt files, made from the good checkpoint's bytes.
BAD_FILES = {
    'empty.ckpt': lambda g: b'',
    'random.ckpt': lambda g: random.Random(7).randbytes(4096),
    'nans.ckpt': lambda g: struct.pack('<f', float('nan')) * 4096,
    'truncated.ckpt': lambda g: g[:len(g) // 2],
    'bad-crc.ckpt': lambda g: patched(g, OFF_CLASSES, '<I', 7, False),
    'classes.ckpt': lambda g: patched(g, OFF_CLASSES, '<I', 7),
    'newer.ckpt': lambda g: patched(g, OFF_VERSION, '<I', 2),
    'nan-weight.ckpt': lambda g: patched(g, first_weight(g) + 4 * 9, '<f',
                                         float('nan')),
    'inf-weight.ckpt': lambda g: patched(g, first_weight(g), '<f',
                                         float('-inf')),
}


def loaded(path):
    return [{'checkpoint': path}]


REFUSALS = [
    (spec_with(teachers=loaded(LABELS)), 'teachers[0].checkpoint',
     f"'{LABELS}' cannot be loaded: not a spkd checkpoint (no SPKCKPT "
     "magic)"),
    (spec_with(teachers=loaded('models/empty.ckpt')),
     'teachers[0].checkpoint', 'empty file, not a checkpoint'),
    (spec_with(teachers=loaded('models/random.ckpt')),
     'teachers[0].checkpoint', 'not a spkd checkpoint'),
    (spec_with(teachers=loaded('models/nans.ckpt')),
     'teachers[0].checkpoint', 'not a spkd checkpoint'),
    (spec_with(teachers=loaded('models/truncated.ckpt')),
     'teachers[0].checkpoint', 'truncated'),
    (spec_with(teachers=loaded('models/bad-crc.ckpt')),
     'teachers[0].checkpoint', 'checksum mismatch: the file is corrupt'),
    (spec_with(teachers=loaded('models/classes.ckpt')),
     'teachers[0].checkpoint', 'layers[4] (dense) tensor 0: 2560 values in '
     'the file, its description needs 1792'),
    (spec_with(teachers=loaded('models/newer.ckpt')),
     'teachers[0].checkpoint', 'format version 2 is newer'),
    (spec_with(teachers=loaded('models/nan-weight.ckpt')),
     'teachers[0].checkpoint', 'layers[0] (dense) tensor 0: value 9 of '
     '401408 is NaN'),
    (spec_with(teachers=[{}, {'checkpoint': 'models/inf-weight.ckpt'}]),
     'teachers[1].checkpoint', 'value 0 of 401408 is infinite'),
    (spec_with(teachers=loaded('models/blobs.ckpt')),
     'teachers[0].checkpoint', "'models/blobs.ckpt' holds a model for "
     "1x1x8 inputs and 3 classes; the dataset 'fashion-mnist' has 1x28x28 "
     "inputs and 10 classes"),
    (spec_with({'representation': {'teacher_layer': 5, 'student_layer': 0}},
               teachers=loaded(GOOD)),
     'student.representation.teacher_layer',
     f"is 5, but the first teacher's checkpoint '{GOOD}' has 5 layers: the "
     "index must be from 0 to 4"),
]


@pytest.mark.parametrize('spec,field,words', REFUSALS,
                         ids=[f'{i}-{c[1]}' for i, c in enumerate(REFUSALS)])
def test_bad_checkpoints_refused_at_submit(rooted, spec, field, words):
    c = rooted.client
    assert not jobspec_errors(spec), 'the contract allows it'
    before = c.jobs()
    err = expect_error(c.post('/v1/jobs', json_body=spec), 400,
                       'invalid_spec', field)
    assert words in err['message'], err
    assert c.jobs() == before


def test_good_checkpoint_accepted(rooted):
    c = rooted.client
    holder = c.submit(long_spec(name='holder'))
    job = c.submit(spec_with(
        {'representation': {'teacher_layer': 4, 'student_layer': 0}},
        teachers=loaded(GOOD)))
    assert job['state'] == 'queued'
    for j in (job, holder):
        assert c.post(f"/v1/jobs/{j['id']}/cancel").status_code == 200
    for j in (job, holder):
        assert wait_finished(c, j['id'], 60)['state'] == 'cancelled'


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def log_line(daemon, job_id):
    """The daemon's log line of the job's end."""
    def find():
        with open(daemon.log_path, encoding='utf-8', errors='replace') as f:
            return [line for line in f
                    if f'job ended job={job_id} ' in line]
    return wait_for(f'the end of job {job_id} in the log', find, 10)[0]


def test_checkpoint_spoilt_before_the_start_fails_at_once(rooted,
                                                          data_root):
    """Accepted, then the file is cut while the job waits in the queue:
    the job fails when it starts, before the self-paced stage or the
    first teacher trains, at the stage of the teacher at fault."""
    c = rooted.client
    shutil.copyfile(data_root / GOOD, data_root / 'models' / 'swap.ckpt')
    holder = c.submit(long_spec(name='holder'))
    wait_state(c, holder['id'], ('running',), 60)
    job = c.submit(spec_with(teachers=[{'epochs': 1},
                                       {'checkpoint': 'models/swap.ckpt'}]))
    good = (data_root / GOOD).read_bytes()
    (data_root / 'models' / 'swap.ckpt').write_bytes(good[:1000])
    assert c.post(f"/v1/jobs/{holder['id']}/cancel").status_code == 200

    job = wait_finished(c, job['id'], 120)
    assert job['state'] == 'failed', job
    assert job['error'].startswith(
        "teachers[1].checkpoint 'models/swap.ckpt' cannot be loaded: "
        f"truncated: 1000 bytes of the {len(good)} the header announces"), job
    assert (job['stage'], job['epoch']) == ('teacher1', 0)
    assert metrics_of(c, job['id']) == []
    line = log_line(rooted, job['id'])
    assert (f'state=failed error="teachers[1].checkpoint '
            "'models/swap.ckpt' cannot be loaded: truncated") in line, line


def test_checkpoint_for_other_samples_fails_at_the_start(rooted):
    """A CSV dataset's shape is known only once it is loaded: the job is
    accepted and fails at its start, before any stage trains."""
    c = rooted.client
    spec = spec_with(teachers=loaded(GOOD))
    spec['dataset'] = {'name': 'blobs', 'validation_fraction': 0.1}
    job = wait_finished(c, c.submit(spec)['id'], 120)
    assert job['state'] == 'failed', job
    assert job['error'] == (
        f"teachers[0].checkpoint '{GOOD}' holds a model for 1x28x28 inputs "
        "and 10 classes; the dataset 'blobs' has 1x1x8 inputs and 3 "
        "classes."), job
    assert (job['stage'], job['epoch']) == ('teacher', 0)
    assert metrics_of(c, job['id']) == []


def test_checkpoint_spoilt_while_spl_trains(rooted, data_root):
    """The file is cut after the job started: the teacher's load fails
    when its turn comes, and the job shows the teacher's stage."""
    c = rooted.client
    path = data_root / 'models' / 'late.ckpt'
    shutil.copyfile(data_root / GOOD, path)
    spec = spec_with(teachers=loaded('models/late.ckpt'))
    spec['dataset']['limit'] = 6000
    spec['spl']['epochs'] = 8
    job = c.submit(spec)
    wait_for('the first spl epoch',
             lambda: metrics_of(c, job['id']), 60, interval=0.02)
    path.write_bytes(b'')

    job = wait_finished(c, job['id'], 120)
    assert job['state'] == 'failed', job
    assert job['error'].startswith(
        "teachers[0].checkpoint 'models/late.ckpt' cannot be loaded: "), job
    assert 'empty' in job['error'], job
    assert (job['stage'], job['epoch']) == ('teacher', 0)
    assert {m['stage'] for m in metrics_of(c, job['id'])} == {'spl'}
