# SPDX-License-Identifier: MIT
# spkctl, the command-line client: its commands against live daemons
# (submit, status, list, cancel, delete, events), its exit codes for a job
# that succeeds, fails or is cancelled while it waits, a SIGTERM or SIGINT
# that leaves the job running, an unreachable server and a daemon that
# wants a token; and against a small fake server written here, following
# pages of jobs and reconnecting a dropped event stream with
# Last-Event-ID.
import copy
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import (free_port, long_spec, tiny_spec, wait_finished,
                      wait_for, wait_state)
from spkapi import REPO

SPKCTL = os.path.join(REPO, 'build', 'spkctl')
DEADLINE = 120.0
TOKEN = 'a-token-of-24-characters'

# A model that passes the spec check and fails in the engine: a 9 x 9
# window cannot fit the 2 x 2 maps left after pooling by 14.
BAD_MODEL = {'layers': [{'type': 'maxpool', 'size': 14},
                        {'type': 'conv2d', 'filters': 2, 'kernel': 9},
                        {'type': 'flatten'}, {'type': 'dense', 'units': 10}]}


def run(*args, server=None, token=None, timeout=DEADLINE, stdin=None):
    """Runs spkctl to its end with SPKD_SERVER and SPKD_TOKEN set only
    when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('SPKD_')}
    if server:
        env['SPKD_SERVER'] = server
    if token:
        env['SPKD_TOKEN'] = token
    return subprocess.run([SPKCTL, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, input=stdin)


def start(*args, server):
    """Starts spkctl in the background; its output is read as it comes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('SPKD_')}
    env['SPKD_SERVER'] = server
    return subprocess.Popen([SPKCTL, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def url_of(daemon):
    return f'http://127.0.0.1:{daemon.port}'


def spec_file(tmp_path, spec, name='spec.json'):
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


def failing_spec():
    spec = tiny_spec(name='doomed')
    for stage in (spec['spl'], spec['teachers'][0], spec['student'],
                  spec['baseline']):
        stage['model'] = copy.deepcopy(BAD_MODEL)
    return spec


@pytest.fixture(scope='module', autouse=True)
def built():
    if not os.access(SPKCTL, os.X_OK):
        pytest.fail(f'{SPKCTL} is missing: run make first')


# ---- Against a live daemon.

def test_submit_status_list_cancel_delete(spkd, tmp_path):
    client, server = spkd.client, url_of(spkd)
    res = run('submit', spec_file(tmp_path, tiny_spec()), server=server)
    assert res.returncode == 0, res.stderr
    job_id = int(res.stdout)
    assert client.get_json(f'/v1/jobs/{job_id}')['name'] == 'tiny'
    job = wait_finished(client, job_id, DEADLINE)
    assert job['state'] == 'succeeded', job

    # Status in words: state, stage and epoch, each stage's test accuracy.
    res = run('status', str(job_id), server=server)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f'job {job_id} "tiny": succeeded'
    assert lines[1] == f"stage {job['stage']}, epoch {job['epoch']} of 1"
    for name, st in job['stages'].items():
        want = (f"{st['completed_epochs']}/{st['epochs']} epochs  "
                f"test_acc {st['test_acc']:.4f}")
        assert any(re.fullmatch(rf'\s+{name}\s+{re.escape(want)}', line)
                   for line in lines), (name, want, res.stdout)

    # --json is the job as the API gives it.
    res = run('status', str(job_id), '--json', server=server)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == client.get_json(f'/v1/jobs/{job_id}')

    # A second job, running: list shows both and filters by state.
    second = client.submit(long_spec())
    wait_state(client, second['id'], ('running',), DEADLINE)
    res = run('list', server=server)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[1:]]
    assert [(int(r[0]), r[1]) for r in rows] == \
        [(second['id'], 'running'), (job_id, 'succeeded')]
    res = run('list', '--state', 'succeeded', '--json', server=server)
    assert res.returncode == 0, res.stderr
    assert [j['id'] for j in json.loads(res.stdout)] == [job_id]

    # Cancelling: a running job is asked to stop; a finished one is a
    # conflict, reported as the API said it.
    res = run('cancel', str(second['id']), server=server)
    assert res.returncode == 0, res.stderr
    assert 'cancel requested' in res.stdout
    assert wait_finished(client, second['id'], DEADLINE)['state'] == \
        'cancelled'
    res = run('cancel', str(job_id), server=server)
    assert res.returncode == 3
    assert res.stderr.startswith('spkctl: HTTP 409 conflict: '), res.stderr

    # Deleting: the job is gone, and asking for it says so.
    res = run('delete', str(job_id), server=server)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f'job {job_id}: deleted\n'
    assert client.get(f'/v1/jobs/{job_id}').status_code == 404
    res = run('status', str(job_id), server=server)
    assert res.returncode == 3
    assert res.stderr.startswith('spkctl: HTTP 404 not_found: '), res.stderr


def test_wait_for_a_job_that_succeeds(spkd, tmp_path):
    spec = spec_file(tmp_path, tiny_spec())
    res = run('submit', spec, '--wait', server=url_of(spkd))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    job_id = int(lines[0])
    assert lines[-1] == f'job {job_id}: succeeded'
    assert f'job {job_id}: running' in lines

    # One line per epoch, with the accuracies the API stores.
    metrics = spkd.client.get_json(f'/v1/jobs/{job_id}/metrics')['items']
    printed = [line for line in lines if ' stage=' in line]
    assert len(printed) == len(metrics) == 5
    for m in metrics:
        assert any(f"stage={m['stage']} epoch={m['epoch']} " in line and
                   line.endswith(f"test_acc={m['test_acc']:.4f}")
                   for line in printed), (m, printed)

    # events prints the same history, one event a line, ending with the
    # terminal state.
    res = run('events', str(job_id), server=url_of(spkd))
    assert res.returncode == 0, res.stderr
    events = [line.split(' ', 2) for line in res.stdout.splitlines()]
    assert sum(kind == 'epoch' for _, kind, _ in events) == 5
    assert [int(seq) for seq, _, _ in events] == \
        sorted(int(seq) for seq, _, _ in events)
    assert events[-1][1] == 'state'
    assert json.loads(events[-1][2])['state'] == 'succeeded'


def test_wait_for_a_job_that_fails(spkd, tmp_path):
    res = run('submit', spec_file(tmp_path, failing_spec()), '--wait',
              server=url_of(spkd))
    assert res.returncode == 1, (res.stdout, res.stderr)
    job_id = int(res.stdout.splitlines()[0])
    last = res.stdout.splitlines()[-1]
    assert last.startswith(f'job {job_id}: failed: '), last
    assert 'layers[1]' in last
    assert spkd.client.get_json(f'/v1/jobs/{job_id}')['state'] == 'failed'


def test_idempotency_key_finds_the_first_job(spkd, tmp_path):
    """A batch job that Slurm requeues submits again with the same key
    and follows the job its first run made."""
    spec = spec_file(tmp_path, tiny_spec())
    first = run('submit', spec, '--idempotency-key', 'slurm-123',
                server=url_of(spkd))
    assert first.returncode == 0, first.stderr
    again = run('submit', spec, '--wait', '--idempotency-key', 'slurm-123',
                server=url_of(spkd))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == first.stdout.strip()
    assert again.stdout.splitlines()[-1].endswith(': succeeded')
    assert [j['id'] for j in spkd.client.jobs()] == [int(first.stdout)]


def read_job_id(proc):
    """The first line spkctl submit prints: the job's id."""
    line = proc.stdout.readline()
    assert line.strip().isdigit(), (line, proc.stderr.read())
    return int(line)


def test_wait_for_a_job_that_is_cancelled(spkd, tmp_path):
    proc = start('submit', spec_file(tmp_path, long_spec()), '--wait',
                 server=url_of(spkd))
    try:
        job_id = read_job_id(proc)
        wait_state(spkd.client, job_id, ('running',), DEADLINE)
        res = run('cancel', str(job_id), server=url_of(spkd))
        assert res.returncode == 0, res.stderr
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 4, err
    assert out.splitlines()[-1] == f'job {job_id}: cancelled'


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_the_job_running(spkd, tmp_path, sig):
    proc = start('submit', spec_file(tmp_path, long_spec()), '--wait',
                 server=url_of(spkd))
    try:
        job_id = read_job_id(proc)
        wait_state(spkd.client, job_id, ('running',), DEADLINE)
        # It follows the stream: it has printed that the job runs.
        assert proc.stdout.readline() == f'job {job_id}: queued\n'
        assert proc.stdout.readline() == f'job {job_id}: running\n'
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 5, err
    assert err == f'spkctl: interrupted; job {job_id} keeps running\n'
    job = spkd.client.get_json(f'/v1/jobs/{job_id}')
    assert job['state'] == 'running' and not job['cancel_requested'], job


def test_unreachable_server(tmp_path):
    server = f'http://127.0.0.1:{free_port()}'
    for args in (('list',), ('status', '1'), ('cancel', '1'),
                 ('submit', spec_file(tmp_path, tiny_spec()), '--wait'),
                 ('events', '1')):
        res = run(*args, server=server)
        assert res.returncode == 3, (args, res.stderr)
        assert 'cannot connect to 127.0.0.1:' in res.stderr
        assert 'Connection refused' in res.stderr


def test_token(spkd_factory, tmp_path):
    token_file = tmp_path / 'token'
    token_file.write_text(TOKEN + '\n')
    token_file.chmod(0o600)
    daemon = spkd_factory.start(args=['--token-file', str(token_file)])
    server, spec = url_of(daemon), spec_file(tmp_path, tiny_spec())

    res = run('submit', spec, server=server)
    assert res.returncode == 3
    assert res.stderr == (
        'spkctl: HTTP 401 unauthorized: this server needs '
        '"Authorization: Bearer TOKEN" on requests that change anything\n')
    res = run('submit', spec, '--token', 'not-' + TOKEN, server=server)
    assert res.returncode == 3
    assert res.stderr == ('spkctl: HTTP 401 unauthorized: the bearer token '
                          'is not the one this server expects\n')
    assert daemon.client.jobs() == []

    # The option or the environment: both reach the server.
    res = run('submit', spec, '--token', TOKEN, server=server)
    assert res.returncode == 0, res.stderr
    res = run('submit', spec, token=TOKEN, server=server)
    assert res.returncode == 0, res.stderr
    assert len(daemon.client.jobs()) == 2

    # Reading needs no token; changing does.
    res = run('list', server=server)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 3
    job_id = res.stdout.splitlines()[1].split()[0]
    res = run('cancel', job_id, server=server)
    assert res.returncode == 3 and 'HTTP 401 unauthorized' in res.stderr
    res = run('cancel', job_id, server=server, token=TOKEN)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize('args,message', [
    ((), 'no command given'),
    (('frobnicate',), 'unknown command frobnicate'),
    (('status',), 'status takes ID'),
    (('status', '1', '2'), 'status takes ID'),
    (('list', 'x'), 'list takes no argument'),
    (('status', '0'), '0 is not a job id'),
    (('cancel', '3x'), '3x is not a job id'),
    (('status', '1', '--wait'), 'status does not take --wait'),
    (('cancel', '1', '--json'), 'cancel does not take --json'),
    (('list', '--state', 'done'), '--state takes queued, running'),
    (('list', '--server'), '--server needs a value'),
    (('list', '--verbose'), 'unknown option --verbose'),
    (('list', '--server', 'https://127.0.0.1'), 'only http:// URLs'),
    (('list', '--server=http://h:99999'), 'port must be a number'),
    (('submit', '/nonexistent/spec.json'), 'cannot read /nonexistent'),
    (('events', '1', '--reconnect-for', '-1'), '--reconnect-for takes'),
    (('submit', 'f', '--idempotency-key', 'a\tb'), '--idempotency-key takes'),
    (('submit', 'f', '--idempotency-key', 'k' * 256),
     '--idempotency-key takes'),
    (('list', '--idempotency-key', 'k'), 'list does not take --idem'),
])
def test_usage_errors(args, message):
    res = run(*args, server='http://127.0.0.1:9')
    assert res.returncode == 2, res.stderr
    first = res.stderr.splitlines()[0]
    assert first.startswith('spkctl: ') and message in first, res.stderr
    assert res.stdout == ''


def test_help_lists_the_exit_codes():
    res = run('--help')
    assert res.returncode == 0 and res.stderr == ''
    assert res.stdout.startswith('Usage: spkctl ')
    codes = re.findall(r'^  (\d)  ', res.stdout, re.M)
    assert codes == ['0', '1', '2', '3', '4', '5']


# ---- The Slurm example, run by bash as sbatch would.

SBATCH = os.path.join(REPO, 'examples', 'slurm', 'spkd-job.sbatch')


def sbatch(spec, daemon, slurm_job_id):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SPKD_')}
    env.update(SPKD_SERVER=url_of(daemon), SPKCTL=SPKCTL,
               SLURM_JOB_ID=str(slurm_job_id), SLURM_CLUSTER_NAME='test')
    return subprocess.Popen(['bash', SBATCH, spec], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize('make_spec,code,says', [
    (tiny_spec, 0, 'the job succeeded'), (failing_spec, 1, 'the job failed')])
def test_slurm_script_passes_the_exit_code_on(spkd, tmp_path, make_spec,
                                               code, says):
    proc = sbatch(spec_file(tmp_path, make_spec()), spkd, 42)
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == code, (out, err)
    assert out.splitlines()[-1] == f'spkd-job: {says}'


def test_slurm_script_stopped_then_requeued(spkd, tmp_path):
    """SIGTERM to the batch shell alone leaves the job running (exit 5);
    the requeued batch job follows the same job to its end."""
    spec = spec_file(tmp_path, long_spec())
    proc = sbatch(spec, spkd, 43)
    try:
        job = wait_for('the job to run',
                       lambda: [j for j in spkd.client.jobs()
                                if j['state'] == 'running'], DEADLINE)[0]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 5, (out, err)
    assert 'the spkd job keeps running' in out
    assert spkd.client.get_json(f"/v1/jobs/{job['id']}")['state'] == \
        'running'

    proc = sbatch(spec, spkd, 43)
    try:
        assert proc.stdout.readline().startswith('spkd-job: ')
        assert proc.stdout.readline() == f"{job['id']}\n"
        assert run('cancel', str(job['id']),
                   server=url_of(spkd)).returncode == 0
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 4, (out, err)
    assert out.splitlines()[-1] == 'spkd-job: the job was cancelled'
    assert len(spkd.client.jobs()) == 1


# ---- Against a fake server that plays a script.

class FakeSpkd(http.server.ThreadingHTTPServer):
    """Answers POST /v1/jobs with job 7, GET /v1/jobs with self.pages
    (keyed by cursor) and each GET /v1/jobs/7/events with the next of
    self.streams: a list of byte strings written one by one, chunked or
    (chunked False) up to the closing of the connection, then self.endless
    (when set) to every later one. Records every request as (method,
    path, headers)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), FakeHandler)
        self.requests = []
        self.pages = {}
        self.streams = []
        self.endless = None
        self.stream_ended = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f'http://127.0.0.1:{self.server_address[1]}'

    def stop(self):
        self.shutdown()
        self.server_close()


class FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def reply_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self):
        self.server.requests.append((self.command, self.path,
                                     dict(self.headers)))

    def do_POST(self):
        self.record()
        length = int(self.headers.get('Content-Length', 0))
        json.loads(self.rfile.read(length))
        self.reply_json(201, {'id': 7})

    def do_GET(self):
        self.record()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == '/v1/jobs':
            cursor = query.get('cursor', [None])[0]
            items, nxt = self.server.pages[cursor]
            self.reply_json(200, {'items': items, 'next_cursor': nxt})
        elif url.path == '/v1/jobs/7/events' and self.server.streams:
            self.stream(*self.server.streams.pop(0))
        elif url.path == '/v1/jobs/7/events' and self.server.endless:
            self.stream(*self.server.endless)
        else:
            self.reply_json(404, {'error': {'code': 'not_found',
                                            'message': 'no job 8',
                                            'field': None}})

    def stream(self, chunked, pieces):
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        if chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Connection', 'close')
        self.end_headers()
        for piece in pieces:
            if chunked:
                piece = b'%x\r\n%s\r\n' % (len(piece), piece)
            self.wfile.write(piece)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b'0\r\n\r\n')
        self.close_connection = True
        self.server.stream_ended.set()


@pytest.fixture
def fake():
    server = FakeSpkd()
    yield server
    server.stop()


def event(seq, kind, data):
    return f'id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n'.encode()


def test_wait_reconnects_where_the_stream_dropped(fake, tmp_path):
    epoch = {'stage': 'spl', 'epoch': 1, 'train_loss': 0.5, 'train_acc': 0.8,
             'val_acc': None, 'test_acc': 0.75}
    running = event(2, 'state', {'state': 'running'})
    fake.streams = [
        # Cut after two events (one split mid-line) and part of a third.
        (True, [b': hello\nretry: 200\n',
                event(1, 'state', {'state': 'queued'}), running[:10],
                running[10:], b'id: 3\nevent: ep']),
        (False, [event(3, 'epoch', epoch), b':\n',
                 event(4, 'noise_estimate', {'rate': 0.3}),
                 event(5, 'state', {'state': 'failed', 'error': 'boom'})]),
    ]
    res = run('submit', spec_file(tmp_path, tiny_spec()), '--wait',
              server=fake.url + '/')
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == [
        '7', 'job 7: queued', 'job 7: running',
        'job 7: stage=spl epoch=1 loss=0.5000 train_acc=0.8000 val_acc=- '
        'test_acc=0.7500',
        'job 7: failed: boom']
    assert 'reconnecting' in res.stderr
    streams = [r for r in fake.requests if r[1].endswith('/events')]
    assert [r[2].get('Last-Event-ID') for r in streams] == [None, '2']
    assert all(r[2]['Accept'] == 'text/event-stream' for r in streams)


@pytest.mark.parametrize('state,code', [('succeeded', 0), ('failed', 1),
                                         ('cancelled', 4)])
def test_events_and_wait_exit_codes(fake, tmp_path, state, code):
    script = [b'retry: 5000\n', event(10, 'log', {'level': 'info',
                                                  'message': 'hi'}),
              event(11, 'state', {'state': state, 'error': None})]
    fake.streams = [(True, script), (True, script)]
    res = run('submit', spec_file(tmp_path, tiny_spec()), '--wait',
              server=fake.url)
    assert res.returncode == code, res.stderr
    assert res.stdout.splitlines()[1:] == ['job 7: [info] hi',
                                           f'job 7: {state}']
    res = run('events', '7', server=fake.url)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        '10 log {"level": "info", "message": "hi"}',
        f'11 state {{"state": "{state}", "error": null}}']


def test_wait_gives_up_on_a_stream_lost_for_good(fake):
    fake.streams = [(True, [b'retry: 1500\n',
                            event(1, 'state', {'state': 'running'})])]
    proc = start('events', '7', '--reconnect-for', '1', server=fake.url)
    try:
        assert fake.stream_ended.wait(DEADLINE)
        fake.stop()
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 3, err
    assert out.splitlines() == ['1 state {"state": "running"}']
    assert err.splitlines()[-1].startswith('spkctl: cannot connect to '), err


@pytest.mark.parametrize('again', [
    [b': heartbeat\n'],
    # A server that ignores Last-Event-ID sends the same event again.
    [event(1, 'state', {'state': 'running'})]], ids=['empty', 'replayed'])
def test_wait_gives_up_on_streams_that_end_without_news(fake, again):
    """The server answers every reconnection and ends the stream at once
    with nothing new: --reconnect-for counts from the first drop."""
    fake.streams = [(True, [b'retry: 100\n',
                            event(1, 'state', {'state': 'running'})])]
    fake.endless = (True, [b'retry: 100\n'] + again)
    started = time.monotonic()
    res = run('events', '7', '--reconnect-for', '1', server=fake.url,
              timeout=30)
    elapsed = time.monotonic() - started
    assert res.returncode == 3, res.stderr
    assert 1.0 <= elapsed < 5.0, elapsed
    assert res.stdout.splitlines()[0] == '1 state {"state": "running"}'
    assert res.stderr.splitlines()[-1] == (
        'spkctl: the event stream ended before the job did'), res.stderr
    assert res.stderr.count('reconnecting') == 1, res.stderr
    streams = [r for r in fake.requests if r[1].endswith('/events')]
    assert 3 <= len(streams) <= 15, len(streams)
    assert {r[2].get('Last-Event-ID') for r in streams[1:]} == {'1'}


def test_wait_keeps_patience_while_events_arrive(fake, tmp_path):
    """Each stream ends after one new event: patience starts again with
    each, so a follow longer than --reconnect-for reaches the job's end."""
    states = ['queued', 'running', 'running', 'running', 'running',
              'running', 'succeeded']
    fake.streams = [(True, [b'retry: 300\n',
                            event(i + 1, 'state', {'state': s})])
                    for i, s in enumerate(states)]
    started = time.monotonic()
    res = run('submit', spec_file(tmp_path, tiny_spec()), '--wait',
              '--reconnect-for', '1', server=fake.url, timeout=30)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started > 1.5
    assert res.stdout.splitlines() == ['7'] + [f'job 7: {s}'
                                               for s in states]
    streams = [r for r in fake.requests if r[1].endswith('/events')]
    assert [r[2].get('Last-Event-ID') for r in streams] == \
        [None] + [str(i) for i in range(1, len(states))]


def test_events_of_an_unknown_job(fake):
    res = run('events', '8', server=fake.url)
    assert res.returncode == 3
    assert res.stderr == 'spkctl: HTTP 404 not_found: no job 8\n'


def test_list_follows_every_page(fake):
    job = {'id': 0, 'state': 'succeeded', 'stage': 'baseline', 'epoch': 1,
           'created_at': '2026-01-01T00:00:00.000Z', 'name': None}
    fake.pages = {None: ([dict(job, id=5), dict(job, id=4)], 'a b/4'),
                  'a b/4': ([dict(job, id=3)], '3'),
                  '3': ([dict(job, id=2, name='x')], None)}
    res = run('list', '--state', 'succeeded', server=fake.url)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0] == ['ID', 'STATE', 'STAGE', 'EPOCH', 'CREATED', 'NAME']
    assert [r[0] for r in rows[1:]] == ['5', '4', '3', '2']
    assert rows[4][-1] == 'x' and rows[1][-1] == '-'
    paths = [r[1] for r in fake.requests]
    assert paths == ['/v1/jobs?limit=1000&state=succeeded',
                     '/v1/jobs?limit=1000&state=succeeded&cursor=a%20b%2F4',
                     '/v1/jobs?limit=1000&state=succeeded&cursor=3']
