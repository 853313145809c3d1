# SPDX-License-Identifier: MIT
# Fixtures of the API tests: live spkd daemons on free ports with databases
# in pytest's temporary directories, a client per daemon that checks every
# response against api-spec/openapi.yaml, and the quick example job shared
# by the tests that read its results.
import copy
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time

import pytest
import requests

from spkapi import REPO, ApiClient

SPKD = os.path.join(REPO, 'build', 'spkd')
DATA_ROOT = '/usr/share/datasets'
START_DEADLINE = 30.0
STOP_DEADLINE = 20.0
QUICK_DEADLINE = 240.0
POLL = 0.05
TERMINAL = ('succeeded', 'failed', 'cancelled')

# Every daemon started in this session, in order, so that a failing test's
# report can show the logs of those it started.
STARTED = []


# A structured log line of spkd's (time, level, message), such as the
# one saying which BLAS kernel it chose on a CPU OpenBLAS misdetects.
LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\dT[\d:.]+Z (debug|info|warn|error) ')


def message_lines(stderr):
    """The lines of a command's stderr that are not log lines: what it
    says to the person who ran it."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode()
    return [ln for ln in stderr.splitlines()
            if ln.strip() and not LOG_LINE.match(ln)]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(what, check, deadline, interval=POLL):
    """Calls check until it returns a true value, which it returns; fails
    the test with what when deadline seconds pass first."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f'timed out after {deadline:.0f} s waiting for {what}')
        time.sleep(interval)


class Daemon:
    """One spkd process; its stdout and stderr go to log_path."""

    def __init__(self, db, log_path, jobs=1, args=(), env=None):
        self.db = str(db)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.log_path = str(log_path)
        self.jobs = jobs
        self.args = list(args)
        self.proc = None
        self.port = None
        self.client = None

    def start(self):
        """Starts the daemon and waits until /healthz answers 200."""
        STARTED.append(self)
        if not os.access(SPKD, os.X_OK):
            pytest.fail(f'{SPKD} is missing: run make first')
        for _ in range(3):
            self.port = free_port()
            self._spawn()
            if self._wait_healthy():
                return self
            if 'in use' not in self.tail().lower():
                break
        pytest.fail(f'spkd did not become healthy; log tail:\n{self.tail()}')

    def _spawn(self):
        argv = [SPKD, '--listen', f'127.0.0.1:{self.port}', '--db', self.db,
                '--data-root', DATA_ROOT, '--jobs', str(self.jobs)]
        log = open(self.log_path, 'ab')
        try:
            # The environment passes through whole, OPENBLAS_CORETYPE
            # included, so a kernel the caller chose is respected.
            self.proc = subprocess.Popen(
                argv + self.args, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, cwd=os.path.dirname(self.db), env=self.env)
        finally:
            log.close()
        self.client = ApiClient(f'http://127.0.0.1:{self.port}', daemon=self)

    def _wait_healthy(self):
        end = time.monotonic() + START_DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                resp = self.client.get('/healthz', timeout=2)
            except requests.ConnectionError:
                time.sleep(POLL)
                continue
            assert resp.status_code == 200, resp.text
            return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        """Kills the daemon at once, as a crash would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def tail(self, lines=60):
        """The last lines the daemon wrote."""
        try:
            with open(self.log_path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            return '(no log)'
        return '\n'.join(text.splitlines()[-lines:])


class DaemonFactory:
    """Starts daemons in one directory and stops them all at the end."""

    def __init__(self, directory):
        self.directory = directory
        self.daemons = []

    def start(self, db_name='spkd.db', jobs=1, args=(), env=None):
        """Starts a daemon on directory/db_name (a restart when an earlier
        daemon used the same name); env adds to the environment."""
        n = len(self.daemons)
        d = Daemon(os.path.join(self.directory, db_name),
                   os.path.join(self.directory, f'spkd-{n}.stderr'),
                   jobs=jobs, args=args, env=env)
        self.daemons.append(d)
        return d.start()

    def restart(self, daemon):
        """Starts another daemon on the database daemon used (stop or kill
        the old one first)."""
        return self.start(os.path.basename(daemon.db), jobs=daemon.jobs,
                          args=daemon.args)

    def close(self):
        for d in self.daemons:
            d.stop()


@pytest.fixture
def spkd_factory(tmp_path):
    """Starts daemons for one test; each one's database is in tmp_path."""
    factory = DaemonFactory(str(tmp_path))
    yield factory
    factory.close()


@pytest.fixture(scope='module')
def rooted(tmp_path_factory, data_root):
    """A daemon whose data root is the module's data_root fixture, running
    one job at a time."""
    factory = DaemonFactory(str(tmp_path_factory.mktemp('rooted')))
    try:
        yield factory.start(args=('--data-root', str(data_root)))
    finally:
        factory.close()


@pytest.fixture
def spkd(spkd_factory):
    """A fresh daemon with an empty database, running one job at a time."""
    return spkd_factory.start()


@pytest.fixture
def client(spkd):
    return spkd.client


def load_example(name):
    """A spec from examples/, as a dict."""
    path = os.path.join(REPO, 'examples', name)
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def tiny_spec(**over):
    """A spec that trains in seconds: 1000 samples, 1-2 epochs a stage."""
    spec = {
        'name': 'tiny', 'seed': 3, 'threads': 1,
        'dataset': {'name': 'fashion-mnist', 'limit': 1000,
                    'validation_fraction': 0.1,
                    'label_noise': {'kind': 'symmetric', 'rate': 0.2,
                                    'seed': 5}},
        'spl': {'model': 'mlp', 'epochs': 2, 'warmup_epochs': 1,
                'pace': {'kind': 'fraction', 'start': 0.6, 'end': 0.8}},
        'teachers': [{'model': 'mlp', 'epochs': 1}],
        'student': {'model': 'mlp', 'epochs': 1},
        'baseline': {'model': 'mlp', 'epochs': 1},
    }
    spec.update(copy.deepcopy(over))
    return spec


def spec_with(student=None, **over):
    """tiny_spec() without a baseline (unless over gives one), over's keys
    replacing its own and student's added to its student."""
    spec = tiny_spec(**over)
    if 'baseline' not in over:
        del spec['baseline']
    spec['student'].update(copy.deepcopy(student or {}))
    return spec


def db_rows(db, sql, *args):
    """Rows of a query on a read-only connection of its own."""
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def long_spec(**over):
    """A spec that trains for minutes: it is there to be cancelled or
    interrupted, and never runs to its end in a test."""
    spec = tiny_spec(name='long')
    spec['dataset']['limit'] = 4000
    spec['spl']['epochs'] = 400
    spec.update(copy.deepcopy(over))
    return spec


def wait_state(client, job_id, states, deadline):
    """Polls the job until its state is one of states; returns it."""
    def check():
        job = client.get_json(f'/v1/jobs/{job_id}')
        return job if job['state'] in states else None
    return wait_for(f'job {job_id} to reach {states}', check, deadline)


def wait_finished(client, job_id, deadline):
    """Polls the job until it ends; returns it whatever state it ends in."""
    return wait_state(client, job_id, TERMINAL, deadline)


class QuickRun:
    """examples/quick.json run to its end on a daemon of its own."""

    def __init__(self, daemon, spec, job):
        self.daemon = daemon
        self.client = daemon.client
        self.spec = spec
        self.job = job
        self._sets = {}
        self._metrics = None

    def metrics(self):
        if self._metrics is None:
            self._metrics = [m for page in
                             self.client.get_all(
                                 f"/v1/jobs/{self.job['id']}/metrics",
                                 limit=1000)
                             for m in page['items']]
        return self._metrics

    def sample_set(self, stage, epoch, which='easy', limit=1000):
        """Every page of a set: (total of each page, indices in order)."""
        key = (stage, epoch, which, limit)
        if key not in self._sets:
            path = (f"/v1/jobs/{self.job['id']}/stages/{stage}/epochs/"
                    f"{epoch}/samples")
            pages = self.client.get_all(path, limit=limit,
                                        params={'set': which})
            for p in pages:
                assert (p['stage'], p['epoch'], p['set']) == \
                    (stage, epoch, which)
                assert len(p['items']) <= limit
            self._sets[key] = ([p['total'] for p in pages],
                               [i for p in pages for i in p['items']])
        return self._sets[key]


@pytest.fixture(scope='session')
def quick(tmp_path_factory):
    """examples/quick.json, submitted once and awaited until it succeeds."""
    factory = DaemonFactory(str(tmp_path_factory.mktemp('quick')))
    try:
        daemon = factory.start()
        spec = load_example('quick.json')
        job = daemon.client.submit(spec)
        job = wait_finished(daemon.client, job['id'], QUICK_DEADLINE)
        assert job['state'] == 'succeeded', job
        yield QuickRun(daemon, spec, job)
    finally:
        factory.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.spkd_first_started = len(STARTED)


def _daemons_of(item):
    found = list(STARTED[getattr(item, 'spkd_first_started', len(STARTED)):])
    for value in getattr(item, 'funcargs', {}).values():
        if isinstance(value, Daemon):
            found.append(value)
        elif isinstance(value, DaemonFactory):
            found.extend(value.daemons)
        elif isinstance(getattr(value, 'daemon', None), Daemon):
            found.append(value.daemon)
    unique = []
    for d in found:
        if d not in unique:
            unique.append(d)
    return unique


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the tail of each daemon's log to the report of a failed test."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in _daemons_of(item):
            rep.sections.append((f'spkd log {d.log_path}', d.tail()))
