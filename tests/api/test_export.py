# SPDX-License-Identifier: MIT
# `spkd export`: two tiny jobs run with `spkd run` (one with label noise,
# one clean with two teachers), exported as JSON Lines and CSV: line
# counts, order, labels, dataset cartography's statistics recomputed from
# the per-epoch lines against the stored per-stage summary, float32 rows
# of older databases, closed pipes, failed writes and the refusals.
import csv
import io
import json
import math
import re
import shutil
import sqlite3
import struct
import subprocess

import pytest

from conftest import DATA_ROOT, SPKD, message_lines

STAGES = (['spl', 'teacher'] + ['teacher%d' % i for i in range(8)] +
          ['student', 'baseline'])
CSV_HEADER = ('stage,index,label,clean_label,confidence,variability,'
              'correctness,forgetting,aum')
JSONL_KEYS = ['index', 'stage', 'epoch', 'label', 'p_label', 'loss',
              'margin', 'predicted', 'weight', 'easy']

# Records are stored in half precision: a relative error of at most 2^-11
# in the normal range, an absolute one of 2^-25 below it. Dynamics are
# float32 (a relative 2^-24), computed from the unrounded values.
HALF_REL = 2.0 ** -11
HALF_ABS = 2.0 ** -25
F32_REL = 2.0 ** -23

NOISY_SPEC = {
    'name': 'export-noisy',
    'dataset': {'name': 'fashion-mnist', 'limit': 600,
                'label_noise': {'kind': 'symmetric', 'rate': 0.2,
                                'seed': 3}},
    'spl': {'epochs': 2, 'warmup_epochs': 1},
    'teachers': [{'epochs': 1}],
    'student': {'epochs': 1},
    'baseline': {},
}
CLEAN_SPEC = {
    'name': 'export-clean',
    'dataset': {'name': 'fashion-mnist', 'limit': 400},
    'spl': {'epochs': 2, 'warmup_epochs': 1},
    'teachers': [{'epochs': 1}, {'epochs': 2}],
    'student': {'epochs': 1},
    'baseline': {'epochs': 1},
}


def export(db, *args, **kw):
    return subprocess.run([SPKD, 'export', '--db', str(db), *args],
                          capture_output=True, text=True, timeout=120, **kw)


def spkd_run(directory, spec):
    """Runs spec into directory/run.db; returns the job id and its epochs
    as (stage, epoch) pairs from the run's lines."""
    path = directory / ('%s.json' % spec['name'])
    path.write_text(json.dumps(spec))
    res = subprocess.run(
        [SPKD, 'run', str(path), '--db', str(directory / 'run.db'),
         '--data-root', DATA_ROOT], capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr
    job = int(re.search(r'job (\d+)', res.stderr).group(1))
    epochs = [(m.group(1), int(m.group(2))) for m in
              re.finditer(r'^stage=(\w+) epoch=(\d+) ', res.stdout, re.M)]
    return job, epochs


class Job:
    def __init__(self, db, job, epochs):
        self.db, self.id, self.epochs = db, job, epochs
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                'SELECT idx, observed, clean FROM job_samples '
                'WHERE job_id = ? AND split = 0 ORDER BY idx',
                (job,)).fetchall()
        conn.close()
        self.index = [r[0] for r in rows]
        self.labels = {r[0]: (r[1], r[2]) for r in rows}
        self.noisy = any(o != c for o, c in self.labels.values())
        self.stages = sorted({s for s, _ in epochs}, key=STAGES.index)

    def jsonl(self, db=None):
        res = export(db or self.db, '--job', str(self.id))
        assert res.returncode == 0, res.stderr
        assert res.stderr == ''
        return res.stdout

    def rows(self):
        return [json.loads(line) for line in self.jsonl().splitlines()]

    def csv(self):
        res = export(self.db, '--job', str(self.id), '--format', 'csv')
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture(scope='module')
def jobs(tmp_path_factory):
    directory = tmp_path_factory.mktemp('export')
    noisy = spkd_run(directory, NOISY_SPEC)
    clean = spkd_run(directory, CLEAN_SPEC)
    db = directory / 'run.db'
    return {'noisy': Job(db, *noisy), 'clean': Job(db, *clean)}


@pytest.mark.parametrize('which', ['noisy', 'clean'])
def test_jsonl_has_a_line_per_sample_stage_and_epoch_in_order(jobs, which):
    job = jobs[which]
    rows = job.rows()
    assert len(job.index) > 300
    assert len(rows) == len(job.index) * len(job.epochs)

    # Stages in pipeline order (teacher0 before teacher1 before student,
    # baseline last), then epochs, then ascending training index.
    blocks = [rows[i:i + len(job.index)]
              for i in range(0, len(rows), len(job.index))]
    keys = [(b[0]['stage'], b[0]['epoch']) for b in blocks]
    assert keys == sorted(job.epochs, key=lambda k: (STAGES.index(k[0]),
                                                     k[1]))
    for block, (stage, epoch) in zip(blocks, keys):
        assert [r['index'] for r in block] == job.index
        assert all(r['stage'] == stage and r['epoch'] == epoch
                   for r in block)


@pytest.mark.parametrize('which', ['noisy', 'clean'])
def test_jsonl_values_are_the_observed_labels_records(jobs, which):
    job = jobs[which]
    for r in job.rows():
        keys = JSONL_KEYS[:4] + (['clean_label'] if job.noisy else []) + \
            JSONL_KEYS[4:]
        assert list(r) == keys
        observed, clean = job.labels[r['index']]
        assert r['label'] == observed
        assert r.get('clean_label', observed) == clean
        assert 0 <= r['p_label'] <= 1 and 0 <= r['predicted'] <= 9
        assert r['weight'] >= 0 and isinstance(r['easy'], bool)
        # p_label is the probability of the observed label: the loss is
        # its cross-entropy, and the margin is positive exactly when the
        # observed label is the one predicted.
        if r['p_label'] >= 2.0 ** -14:
            assert abs(r['loss'] + math.log(r['p_label'])) <= \
                HALF_REL * (r['loss'] + 2) + 1e-6, r
        if r['margin'] != 0:
            assert (r['margin'] > 0) == (r['predicted'] == observed), r


def test_clean_label_appears_exactly_when_noise_was_injected(jobs):
    noisy, clean = jobs['noisy'], jobs['clean']
    assert noisy.noisy and not clean.noisy
    rows = noisy.rows()
    assert all('clean_label' in r for r in rows)
    flipped = {r['index'] for r in rows if r['label'] != r['clean_label']}
    assert flipped == {i for i, (o, c) in noisy.labels.items() if o != c}
    assert 0.1 < len(flipped) / len(noisy.index) < 0.3
    assert all('clean_label' not in r for r in clean.rows())

    table = list(csv.DictReader(io.StringIO(noisy.csv())))
    assert all(int(t['clean_label']) == noisy.labels[int(t['index'])][1]
               for t in table)
    table = list(csv.DictReader(io.StringIO(clean.csv())))
    assert all(t['clean_label'] == '' for t in table)


def f32(x):
    """The float32 a printed value stands for: the export prints the
    shortest decimal that reads back as the same float32."""
    return struct.unpack('<f', struct.pack('<f', x))[0]


def recompute(rows):
    """Dataset cartography's statistics per (stage, index) from the
    per-epoch lines: confidence, variability, correctness, forgetting
    and AUM, with the error bounds half precision allows."""
    series = {}
    for r in rows:
        series.setdefault((r['stage'], r['index']), []).append(r)
    stats = {}
    for key, seq in series.items():
        p = [f32(r['p_label']) for r in seq]
        m = [f32(r['margin']) for r in seq]
        ok = [r['predicted'] == r['label'] for r in seq]
        mean = sum(p) / len(p)
        stats[key] = {
            'confidence': (mean, HALF_REL * mean + HALF_ABS),
            'variability': (math.sqrt(sum((x - mean) ** 2 for x in p) /
                                      len(p)),
                            HALF_REL * max(p) + HALF_ABS),
            'correctness': (sum(ok) / len(ok), 0),
            'forgetting': (sum(1 for a, b in zip(ok, ok[1:]) if a and not b),
                           0),
            'aum': (sum(m) / len(m),
                    HALF_REL * sum(abs(x) for x in m) / len(m) + HALF_ABS),
        }
    return stats


@pytest.mark.parametrize('which', ['noisy', 'clean'])
def test_csv_summary_matches_statistics_recomputed_from_jsonl(jobs, which):
    job = jobs[which]
    text = job.csv()
    assert text.splitlines()[0] == CSV_HEADER
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(job.index) * len(job.stages)
    assert [(t['stage'], int(t['index'])) for t in table] == \
        [(s, i) for s in job.stages for i in job.index]

    stats = recompute(job.rows())
    assert len(stats) == len(table)
    worst = 0.0
    for t in table:
        want = stats[(t['stage'], int(t['index']))]
        assert int(t['label']) == job.labels[int(t['index'])][0]
        for name, (value, bound) in want.items():
            got = f32(float(t[name]))
            assert abs(got - value) <= bound + F32_REL * abs(got) + 1e-12, \
                (t, name, value, bound)
            if bound:
                worst = max(worst, abs(got - value) / bound)
    # The records really are rounded: the bound is not vacuous.
    assert worst > 0


def half_to_f32(blob, n):
    return struct.pack('<%df' % n, *struct.unpack('<%de' % n, blob))


def test_float32_rows_of_older_databases_export_the_same(jobs, tmp_path):
    """Rows stored before migration 5 hold float32 arrays and one byte per
    easy flag (format 1): rewritten that way, the export is unchanged."""
    job = jobs['noisy']
    db = tmp_path / 'old.db'
    shutil.copy(job.db, db)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT rowid, n, loss, prob, weight, easy, margin FROM epoch_records "
        "WHERE job_id = ? AND stage IN ('spl', 'student')", (job.id,)
    ).fetchall()
    assert len(rows) == 3
    for rowid, n, loss, prob, weight, easy, margin in rows:
        flags = bytes((easy[i // 8] >> (i % 8)) & 1 for i in range(n))
        conn.execute(
            'UPDATE epoch_records SET format = 1, loss = ?, prob = ?, '
            'weight = ?, easy = ?, margin = ? WHERE rowid = ?',
            (half_to_f32(loss, n), half_to_f32(prob, n),
             half_to_f32(weight, n), flags, half_to_f32(margin, n), rowid))
    conn.commit()
    assert conn.execute('SELECT count(*) FROM epoch_records WHERE format = 1'
                        ).fetchone()[0] == 3
    conn.close()
    assert job.jsonl(db) == job.jsonl()


def test_a_reader_closing_the_pipe_ends_the_export_quietly(jobs):
    job = jobs['noisy']
    proc = subprocess.Popen([SPKD, 'export', '--db', str(job.db), '--job',
                             str(job.id)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b''
    proc.stderr.close()
    assert [json.loads(line)['index'] for line in first] == job.index[:3]


def test_a_failed_write_is_reported(jobs):
    job = jobs['noisy']
    with open('/dev/full', 'w') as full:
        res = subprocess.run([SPKD, 'export', '--db', str(job.db), '--job',
                              str(job.id)], stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip() == \
        'spkd export: writing the export: No space left on device'


def test_help_documents_the_subcommand():
    res = subprocess.run([SPKD, 'export', '--help'], capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stderr == ''
    assert res.stdout.startswith(
        'usage: spkd export --db FILE --job ID [--format jsonl|csv]')
    res = subprocess.run([SPKD, '--help'], capture_output=True, text=True)
    assert 'spkd export --db FILE --job ID' in res.stdout


@pytest.mark.parametrize('args,code,message', [
    (['--job', '1'], 2, '--db FILE is required'),
    (['--db', 'DB'], 2, '--job ID is required'),
    (['--db', 'DB', '--job'], 2, '--job needs a value'),
    (['--db', 'DB', '--job', 'one'], 2,
     "--job must be a positive integer, not 'one'"),
    (['--db', 'DB', '--job', '0'], 2, '--job must be a positive integer'),
    (['--db', 'DB', '--job', '1', '--format', 'xml'], 2,
     "--format must be jsonl or csv, not 'xml'"),
    (['--db', 'DB', '--job', '1', '--bogus', 'x'], 2,
     "unknown option '--bogus'"),
    (['--db', 'DB', '--job', '99'], 1, 'job 99 not found in DB'),
])
def test_bad_command_lines_are_refused(jobs, args, code, message):
    db = str(jobs['noisy'].db)
    args = [db if a == 'DB' else a for a in args]
    res = subprocess.run([SPKD, 'export', *args], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == code
    assert res.stdout == ''
    assert len(message_lines(res.stderr)) == 1, res.stderr
    assert message.replace('DB', db) in res.stderr


def damage(kind, good, path):
    """Writes a damaged or foreign file of the given kind at path."""
    data = good.read_bytes()
    if kind == 'text':
        path.write_text('{"not": "a database"}\n')
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'header':
        path.write_bytes(data[:16])
    elif kind == 'corrupt':
        # Page 1's b-tree header and cells (after the 100-byte file
        # header) overwritten: the schema is unreadable.
        path.write_bytes(data[:100] + bytes(4096) + data[4196:])
    elif kind == 'newer':
        shutil.copy(good, path)
        with sqlite3.connect(path) as conn:
            conn.execute('INSERT INTO schema_migrations VALUES (999, 0)')
        conn.close()


@pytest.mark.parametrize('kind,message', [
    ('missing', 'No such file or directory'),
    ('directory', 'is not a regular file'),
    ('text', 'is not an SQLite database'),
    ('empty', 'is not an SQLite database (it is empty)'),
    ('truncated', 'database disk image is malformed'),
    ('header', 'file is not a database'),
    ('corrupt', 'database disk image is malformed'),
    ('newer', "database schema version 999 is newer than this program's"),
])
def test_unreadable_databases_are_refused(jobs, tmp_path, kind, message):
    path = tmp_path / 'x.db'
    if kind == 'directory':
        path.mkdir()
    elif kind != 'missing':
        damage(kind, jobs['noisy'].db, path)
    for fmt in ('jsonl', 'csv'):
        res = export(path, '--job', '1', '--format', fmt)
        assert res.returncode == 1, (kind, res.stderr)
        assert res.stdout == ''
        assert len(message_lines(res.stderr)) == 1, res.stderr
        assert res.stderr.startswith('spkd export: ')
        assert message in res.stderr, res.stderr
    # Exporting never creates a database.
    assert path.exists() == (kind != 'missing')


def test_a_records_row_of_the_wrong_length_is_an_error(jobs, tmp_path):
    """A row whose arrays disagree with its count (which the schema's
    CHECKs keep out unless switched off) stops the export with a message
    naming the row, after the rows before it."""
    job = jobs['noisy']
    db = tmp_path / 'short.db'
    shutil.copy(job.db, db)
    conn = sqlite3.connect(db)
    conn.execute('PRAGMA ignore_check_constraints = ON')
    conn.execute("UPDATE epoch_records SET loss = substr(loss, 3) "
                 "WHERE job_id = ? AND stage = 'spl' AND epoch = 2",
                 (job.id,))
    conn.commit()
    conn.close()
    n = len(job.index)
    res = export(db, '--job', str(job.id))
    assert res.returncode == 1
    assert res.stderr == ('spkd export: records of stage spl epoch 2: loss '
                          'holds %d bytes, not %d\n' % (2 * n - 2, 2 * n))
    assert res.stdout == job.jsonl()[:len(res.stdout)]
    assert len(res.stdout.splitlines()) == n
