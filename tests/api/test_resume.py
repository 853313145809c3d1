# SPDX-License-Identifier: MIT
# Exact resume. `spkd run` killed (SIGKILL, SIGTERM) at chosen epochs and run
# again with the same spec and database, and daemons stopped or killed
# while their job runs then restarted, all end with each stage's weights
# bit-identical to an uninterrupted run of the same spec (same seed and
# threads), every epoch stored once and a database that passes
# PRAGMA integrity_check. A finished job's spec run again trains nothing.
import json
import random
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import (DATA_ROOT, SPKD, TERMINAL, db_rows, wait_finished,
                      wait_for, wait_state)

DEADLINE = 60.0
# Small enough to run in about 3 s, with every kind of stage: a self-paced
# stage, a teacher and a distilled student of several epochs each, and a
# baseline (as many epochs as the student).
RESUME_SPEC = {
    'name': 'resume', 'seed': 11, 'threads': 2,
    'dataset': {'name': 'fashion-mnist', 'limit': 600,
                'validation_fraction': 0.1,
                'label_noise': {'kind': 'symmetric', 'rate': 0.2,
                                'seed': 3}},
    'spl': {'model': 'mlp', 'epochs': 3, 'warmup_epochs': 1},
    'teachers': [{'model': 'mlp', 'epochs': 2}],
    'student': {'model': 'mlp', 'epochs': 3},
    'baseline': {},
}
PLANNED = {'spl': 3, 'teacher': 2, 'student': 3, 'baseline': 3}
ALL_EPOCHS = {(s, e) for s, n in PLANNED.items() for e in range(1, n + 1)}
LINE = re.compile(r'^stage=(\w+) epoch=(\d+) loss=')
REQUEUED = 'requeued to resume job='


def epoch_of(line):
    """(stage, epoch) of an epoch line of `spkd run`."""
    m = LINE.match(line)
    assert m, line
    return m.group(1), int(m.group(2))


def assert_intact(db):
    assert db_rows(db, 'PRAGMA integrity_check') == [('ok',)]


def stored_epochs(db, job_id=1):
    """The (stage, epoch) pairs stored for a job; fails on a repeat."""
    rows = db_rows(db, 'SELECT stage, epoch FROM epoch_metrics '
                   'WHERE job_id = ?', job_id)
    assert len(set(rows)) == len(rows), rows
    return set(rows)


def final_hashes(db, job_id):
    """Each stage's SHA-256 of its final weights, from the checkpoints."""
    return dict(db_rows(db, "SELECT stage, sha256 FROM checkpoints "
                        "WHERE job_id = ? AND kind = 'final'", job_id))


class Run:
    """`spkd run` on the spec file and database of one directory, its
    stdout read line by line as it comes; killed if it outlives DEADLINE."""

    def __init__(self, directory, *args):
        self.directory = directory
        self.db = directory / 'run.db'
        self.summary = directory / 'summary.json'
        spec = directory / 'job.json'
        if not spec.exists():
            spec.write_text(json.dumps(RESUME_SPEC))
        runs = len(list(directory.glob('run-*.stderr')))
        self.stderr_path = directory / f'run-{runs}.stderr'
        with open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen(
                [SPKD, 'run', str(spec), '--db', str(self.db), '--data-root',
                 DATA_ROOT, '--summary', str(self.summary), *args],
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.guard = threading.Timer(DEADLINE, self.proc.kill)
        self.guard.start()
        self.lines = []

    def until(self, stop):
        """Reads epoch lines until stop(stage, epoch) holds for one;
        fails if the run ends first."""
        for line in self.proc.stdout:
            self.lines.append(line)
            if stop(*epoch_of(line)):
                return
        pytest.fail(f'spkd run ended before the kill point: {self.lines}')

    def finish(self, sig=None):
        """Sends sig (when given), reads the rest of stdout, waits;
        returns the exit code."""
        if sig is not None:
            self.proc.send_signal(sig)
        self.lines += self.proc.stdout.readlines()
        self.proc.wait()
        self.guard.cancel()
        return self.proc.returncode

    def stderr(self):
        return self.stderr_path.read_text()

    def epochs(self):
        return [epoch_of(line) for line in self.lines]

    def summary_json(self):
        return json.loads(self.summary.read_text())


def summary_hashes(summary):
    return {name: s['weights_sha256']
            for name, s in summary['stages'].items()}


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """The spec run once without interruption: its Run, summary and
    hashes."""
    run = Run(tmp_path_factory.mktemp('reference'))
    assert run.finish() == 0, run.stderr()
    assert sorted(run.epochs()) == sorted(ALL_EPOCHS)
    summary = run.summary_json()
    hashes = summary_hashes(summary)
    assert set(hashes) == set(PLANNED)
    assert all(re.fullmatch('[0-9a-f]{64}', h) for h in hashes.values())
    assert final_hashes(run.db, 1) == hashes
    return run, summary, hashes


def assert_resumed(db, before, run, hashes):
    """run resumed job 1 of db, stored before (the epochs the interrupted
    run left), trained only what was missing and ended like the
    reference."""
    assert 'resuming job 1' in run.stderr(), run.stderr()
    assert sorted(run.epochs()) == sorted(ALL_EPOCHS - before)
    assert_intact(db)
    assert stored_epochs(db) == ALL_EPOCHS
    summary = run.summary_json()
    assert summary['id'] == 1 and summary['state'] == 'succeeded'
    assert summary_hashes(summary) == hashes


# When to kill: at the first epoch line; in the middle of the teacher and
# of the student (whose resume restores the finished teacher); right after
# the self-paced stage's last epoch, while its final state may be being
# committed.
KILL_POINTS = {
    'first-epoch': lambda stage, epoch: True,
    'mid-teacher': lambda stage, epoch: (stage, epoch) == ('teacher', 1),
    'mid-student': lambda stage, epoch: (stage, epoch) == ('student', 2),
    'spl-last-epoch': lambda stage, epoch: (stage, epoch) == ('spl', 3),
}


@pytest.mark.parametrize('point', list(KILL_POINTS))
def test_run_killed_then_resumed(tmp_path, reference, point):
    first = Run(tmp_path)
    first.until(KILL_POINTS[point])
    assert first.finish(signal.SIGKILL) == -signal.SIGKILL
    assert_intact(first.db)
    before = stored_epochs(first.db)
    assert before < ALL_EPOCHS
    assert db_rows(first.db, 'SELECT state FROM jobs') == [('running',)]

    again = Run(tmp_path)
    assert again.finish() == 0, again.stderr()
    assert_resumed(first.db, before, again, reference[2])
    assert db_rows(first.db, 'SELECT id, state FROM jobs') == [
        (1, 'succeeded')]


def test_finished_spec_is_not_run_again(reference):
    run, summary, hashes = reference
    again = Run(run.directory)
    assert again.finish() == 0, again.stderr()
    assert again.lines == []
    assert 'job 1 with this spec already ended succeeded' in again.stderr()
    repeat = again.summary_json()
    # The same job, read back: only the wall time is computed otherwise
    # (from the stored start and end instead of this process's clock).
    assert 0 < repeat.pop('wall_seconds') <= summary['wall_seconds'] + 1
    assert repeat == {k: v for k, v in summary.items()
                      if k != 'wall_seconds'}

    fresh = Run(run.directory, '--fresh')
    assert fresh.finish() == 0, fresh.stderr()
    assert 'job 2 in' in fresh.stderr() and 'resuming' not in fresh.stderr()
    assert sorted(fresh.epochs()) == sorted(ALL_EPOCHS)
    assert fresh.summary_json()['id'] == 2
    assert summary_hashes(fresh.summary_json()) == hashes
    assert stored_epochs(run.db, 2) == ALL_EPOCHS


def test_run_sigterm_then_resumed(tmp_path, reference):
    first = Run(tmp_path)
    first.until(lambda stage, epoch: (stage, epoch) == ('spl', 2))
    assert first.finish(signal.SIGTERM) == 1, first.stderr()
    assert 'job 1 interrupted' in first.stderr(), first.stderr()
    assert_intact(first.db)
    assert db_rows(first.db, 'SELECT state, finished_at, error FROM jobs') \
        == [('running', None, None)]
    before = stored_epochs(first.db)
    assert ('spl', 2) in before and before < ALL_EPOCHS

    again = Run(tmp_path)
    assert again.finish() == 0, again.stderr()
    assert_resumed(first.db, before, again, reference[2])


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def wait_stored(client, job_id, count):
    """Polls until at least count epochs of the job are stored; returns
    its metrics, or None when the job ended first."""
    def check():
        items = metrics_of(client, job_id)
        if len(items) >= count:
            return (items,)
        state = client.get_json(f'/v1/jobs/{job_id}')['state']
        return (None,) if state in TERMINAL else None
    return wait_for(f'{count} stored epochs of job {job_id}', check,
                    DEADLINE)[0]


def assert_daemon_job_exact(daemon, job_id, hashes):
    """The daemon's job ended succeeded with every epoch once and the
    reference's final weights."""
    done = wait_finished(daemon.client, job_id, DEADLINE)
    assert done['state'] == 'succeeded', done
    assert done['error'] is None
    assert {s: v['completed_epochs'] for s, v in done['stages'].items()} \
        == PLANNED
    items = metrics_of(daemon.client, job_id)
    assert sorted((m['stage'], m['epoch']) for m in items) == \
        sorted(ALL_EPOCHS)
    assert_intact(daemon.db)
    assert final_hashes(daemon.db, job_id) == hashes
    return done, items


def test_daemon_sigterm_then_restart_resumes(spkd_factory, reference):
    first = spkd_factory.start()
    job = first.client.submit(RESUME_SPEC)
    seen = wait_stored(first.client, job['id'], 1)
    assert seen, 'the job ended before the daemon was stopped'
    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < 10.0
    # Stopped at its next batch, the job went back to the queue.
    assert db_rows(first.db, 'SELECT state, finished_at, error FROM jobs') \
        == [('queued', None, None)]
    assert_intact(first.db)
    before = stored_epochs(first.db, job['id'])

    second = spkd_factory.restart(first)
    state = second.client.get_json(f"/v1/jobs/{job['id']}")['state']
    assert state in ('queued', 'running'), state
    wait_state(second.client, job['id'], ('running',), DEADLINE)
    done, items = assert_daemon_job_exact(second, job['id'], reference[2])
    # What was stored before the stop was kept, not trained again.
    final = {(m['stage'], m['epoch']): m for m in items}
    for m in seen:
        assert final[(m['stage'], m['epoch'])] == m
    assert before <= set(final)


def test_daemon_killed_repeatedly_ends_exact(spkd_factory, reference):
    """kill -9 at seeded moments: each time once a seeded number of
    epochs (counted over all stages) is stored, always at least one more
    than at the previous kill, so that every kill follows fresh work."""
    points = sorted(random.Random(20).sample(range(1, len(ALL_EPOCHS) - 2),
                                             3))
    daemon = spkd_factory.start()
    job = daemon.client.submit(RESUME_SPEC)
    stored, kills = 0, 0
    for point in points:
        items = wait_stored(daemon.client, job['id'], max(point, stored + 1))
        if items is None:
            break
        daemon.kill9()
        kills += 1
        assert_intact(daemon.db)
        now = stored_epochs(daemon.db, job['id'])
        assert len(now) >= len(items) > stored
        stored = len(now)
        assert db_rows(daemon.db, 'SELECT state FROM jobs') == [('running',)]
        daemon = spkd_factory.restart(daemon)
        # The requeue is logged once the daemon has started its runner,
        # just after it answers.
        wait_for('the requeue in the log',
                 lambda: f"{REQUEUED}{job['id']}" in daemon.tail(200),
                 DEADLINE)
    assert kills >= 2, (points, stored)
    assert_daemon_job_exact(daemon, job['id'], reference[2])
