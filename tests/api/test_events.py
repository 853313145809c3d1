# SPDX-License-Identifier: MIT
# GET /v1/jobs/{id}/events, the Server-Sent Events stream of a job: the
# whole history of a finished job ending at its terminal state, resuming
# after Last-Event-ID, following a live job, heartbeats, clients that
# vanish mid-stream, refusals, and a daemon stopped with streams open.
# Streams are read with a small SSE parser of this file's own.
import codecs
import json
import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import (DaemonFactory, long_spec, tiny_spec, wait_finished,
                      wait_for, wait_state)
from spkapi import check_response, component_schema, expect_error, \
    schema_errors

DEADLINE = 90.0
READ_TIMEOUT = 30.0
TERMINAL = ('succeeded', 'failed', 'cancelled')
DATA_SCHEMAS = {'state': 'EventState', 'epoch': 'EventEpoch',
                'log': 'EventLog'}


class EventStream:
    """One client of a job's event stream, read item by item: events as
    {'id', 'event', 'data'}, comment lines as {'comment'}, the reconnect
    delay as {'retry'}."""

    def __init__(self, daemon, job_id, last_id=None, params=None,
                 timeout=READ_TIMEOUT):
        headers = {'Accept': 'text/event-stream'}
        if last_id is not None:
            headers['Last-Event-ID'] = str(last_id)
        self.resp = requests.get(
            f'{daemon.client.base_url}/v1/jobs/{job_id}/events',
            params=params, headers=headers, stream=True,
            timeout=(5, timeout))
        check_response('GET', self.resp.url, self.resp)
        self._chunks = self.resp.iter_content(chunk_size=None)
        self._decode = codecs.getincrementaldecoder('utf-8')()
        self._buf = ''
        self._fields = {}
        self.ended = False

    def close(self):
        self.resp.close()

    def _line(self):
        """The next line without its newline, or None at the end."""
        while '\n' not in self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                assert self._buf == '', f'stream cut mid-line: {self._buf!r}'
                self.ended = True
                return None
            self._buf += self._decode.decode(chunk)
        line, self._buf = self._buf.split('\n', 1)
        return line

    def _dispatch(self):
        fields, self._fields = self._fields, {}
        if 'data' not in fields:
            return None
        assert len(fields['data']) == 1, f'data on several lines: {fields}'
        return {'id': int(fields['id'][0]), 'event': fields['event'][0],
                'data': json.loads(fields['data'][0])}

    def next_item(self):
        """The next item, or None once the daemon ended the stream."""
        while True:
            line = self._line()
            if line is None:
                return None
            if line == '':
                item = self._dispatch()
            elif line.startswith(':'):
                item = {'comment': line[1:].strip()}
            else:
                name, _, value = line.partition(':')
                value = value[1:] if value.startswith(' ') else value
                if name == 'retry':
                    item = {'retry': int(value)}
                else:
                    self._fields.setdefault(name, []).append(value)
                    item = None
            if item is not None:
                return item

    def next_event(self):
        """The next event, skipping comments; None at the end."""
        while True:
            item = self.next_item()
            if item is None or 'id' in item:
                return item

    def events_to_end(self):
        """Every event left until the daemon ends the stream."""
        out = []
        while (ev := self.next_event()) is not None:
            out.append(ev)
        return out


def assert_valid(ev):
    """Checks an event's data against its kind's schema in the spec."""
    name = DATA_SCHEMAS.get(ev['event'])
    if name:
        errs = schema_errors(component_schema(name), ev['data'])
        assert not errs, (ev, errs)


def assert_history(events):
    """A whole stream: each id once, increasing, from the job's first
    state event to its terminal one and no further."""
    ids = [e['id'] for e in events]
    assert ids == sorted(set(ids)), ids
    for ev in events:
        assert_valid(ev)
    states = [e['data']['state'] for e in events if e['event'] == 'state']
    assert states[0] == 'queued' and states[-1] in TERMINAL, states
    assert events[-1]['event'] == 'state'
    return states


def metrics_of(client, job_id):
    return [m for page in client.get_all(f'/v1/jobs/{job_id}/metrics',
                                         limit=1000)
            for m in page['items']]


def fd_counts(daemon):
    """The daemon's open file descriptors: (all, sockets)."""
    fd_dir = f'/proc/{daemon.proc.pid}/fd'
    links = []
    for name in os.listdir(fd_dir):
        try:
            links.append(os.readlink(os.path.join(fd_dir, name)))
        except OSError:
            pass  # closed while listed
    return len(links), sum(1 for t in links if t.startswith('socket:'))


def raw_stream_open(daemon, job_id):
    """A bare socket that asked for the job's stream and got its start."""
    s = socket.create_connection(('127.0.0.1', daemon.port), timeout=10)
    s.sendall(f'GET /v1/jobs/{job_id}/events HTTP/1.1\r\n'
              f'Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n'
              .encode())
    got = b''
    while b'retry:' not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b'HTTP/1.1 200'), got[:200]
    return s


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """A daemon whose tiny job has succeeded: (daemon, job, events)."""
    factory = DaemonFactory(str(tmp_path_factory.mktemp('events')))
    try:
        daemon = factory.start(env={'SPKD_SSE_HEARTBEAT_MS': '200'})
        job = daemon.client.submit(tiny_spec())
        job = wait_finished(daemon.client, job['id'], DEADLINE)
        assert job['state'] == 'succeeded', job
        stream = EventStream(daemon, job['id'])
        assert stream.resp.headers['Content-Type'].startswith(
            'text/event-stream')
        assert stream.next_item() == {'retry': 3000}
        events = stream.events_to_end()
        assert stream.ended
        yield daemon, job, events
    finally:
        factory.close()


def test_history_of_finished_job(finished):
    daemon, job, events = finished
    states = assert_history(events)
    assert states == ['queued', 'running', 'succeeded']
    assert events[-1]['data'] == {'state': 'succeeded', 'error': None}

    # One epoch event per stored epoch, saying what /metrics says.
    epochs = [e['data'] for e in events if e['event'] == 'epoch']
    metrics = metrics_of(daemon.client, job['id'])
    assert sorted((e['stage'], e['epoch']) for e in epochs) == \
        sorted((m['stage'], m['epoch']) for m in metrics)
    assert len(epochs) == sum(s['epochs'] for s in job['stages'].values())
    stored = {(m['stage'], m['epoch']): m for m in metrics}
    for e in epochs:
        m = stored[(e['stage'], e['epoch'])]
        for key in ('train_loss', 'train_acc', 'test_acc', 'easy_size',
                    'noise_auroc'):
            assert e[key] == pytest.approx(m[key], rel=1e-12), (key, e, m)

    # Lines for people, among them each stage's start.
    logs = [e['data']['message'] for e in events if e['event'] == 'log']
    for stage in job['stages']:
        assert f'stage {stage} started' in logs, logs
    assert any(m.startswith('dataset fashion-mnist loaded') for m in logs)

    # The same history again, identically.
    again = EventStream(daemon, job['id'])
    assert again.events_to_end() == events

    # The daemon counted each epoch and the samples it trained on: all
    # of them in warm-up, student and baseline epochs, the easy set the
    # previous spl epoch chose, the final easy set for the teacher.
    by = {(e['stage'], e['epoch']): e for e in epochs}
    n_train = by[('baseline', 1)]['easy_size']
    want = (n_train + by[('spl', 1)]['easy_size'] +
            by[('teacher', 1)]['easy_size'] + n_train + n_train)
    text = daemon.client.get('/metrics').text
    counters = dict(line.split() for line in text.splitlines()
                    if line.startswith(('spkd_epochs_total ',
                                        'spkd_samples_total ')))
    assert counters == {'spkd_epochs_total': str(len(epochs)),
                        'spkd_samples_total': str(want)}, counters


def test_resume_after_last_event_id(finished):
    daemon, job, events = finished
    ids = [e['id'] for e in events]
    for n in (0, ids[0], ids[1], ids[len(ids) // 2], ids[-2]):
        stream = EventStream(daemon, job['id'], last_id=n)
        got = stream.events_to_end()
        assert got == [e for e in events if e['id'] > n], n
        # ?after= does the same for clients that cannot set headers.
        by_query = EventStream(daemon, job['id'], params={'after': n})
        assert by_query.events_to_end() == got

    # After the terminal event nothing will come: 204, no body, so that a
    # browser stops reconnecting.
    for n in (ids[-1], ids[-1] + 1000):
        resp = daemon.client.get(f"/v1/jobs/{job['id']}/events",
                                 headers={'Last-Event-ID': str(n)})
        assert resp.status_code == 204 and resp.content == b''


def test_refusals(finished):
    daemon, job, _ = finished
    client = daemon.client
    path = f"/v1/jobs/{job['id']}/events"
    for bad in ('abc', '-1', '1.5', '3x', '99999999999999999999'):
        expect_error(client.get(path, headers={'Last-Event-ID': bad}), 400,
                     'invalid_parameter', 'Last-Event-ID')
    expect_error(client.get(path, params={'after': 'x'}), 400,
                 'invalid_parameter', 'after')
    expect_error(client.get(path, params={'since': '1'}), 400,
                 'invalid_parameter', 'since')
    for other in (str(job['id'] + 100), 'nine', '0'):
        expect_error(client.get(f'/v1/jobs/{other}/events'), 404,
                     'not_found')
    assert client.get('/healthz').status_code == 200


def test_live_job_streams_epochs_as_they_happen(spkd_factory):
    daemon = spkd_factory.start()
    client = daemon.client
    blocker = client.submit(long_spec())
    wait_state(client, blocker['id'], ('running',), DEADLINE)
    spec = tiny_spec(name='live')
    spec['spl']['epochs'] = 4
    job = client.submit(spec)

    # Connected while the job waits: its only event so far is queued.
    stream = EventStream(daemon, job['id'])
    first = stream.next_event()
    assert first['data'] == {'state': 'queued', 'error': None}
    assert client.post(f"/v1/jobs/{blocker['id']}/cancel").status_code == 200

    events = [first]
    seen_running = None
    while (ev := stream.next_event()) is not None:
        events.append(ev)
        if ev['event'] == 'epoch' and seen_running is None:
            # Delivered while the job still trains, not at its end.
            seen_running = client.get_json(f"/v1/jobs/{job['id']}")
    assert stream.ended
    assert seen_running['state'] == 'running', seen_running
    states = assert_history(events)
    assert states == ['queued', 'running', 'succeeded']
    done = wait_finished(client, job['id'], DEADLINE)
    assert done['state'] == 'succeeded'
    epochs = [(e['data']['stage'], e['data']['epoch']) for e in events
              if e['event'] == 'epoch']
    assert len(epochs) == len(metrics_of(client, job['id'])) == 7

    # The cancelled blocker's stream also ends at its terminal state.
    tail = EventStream(daemon, blocker['id']).events_to_end()
    assert tail[-1]['data']['state'] == 'cancelled'


def test_heartbeats_while_waiting(spkd_factory):
    daemon = spkd_factory.start(env={'SPKD_SSE_HEARTBEAT_MS': '100'})
    client = daemon.client
    blocker = client.submit(long_spec())
    wait_state(client, blocker['id'], ('running',), DEADLINE)
    queued = client.submit(tiny_spec(name='waits'))

    stream = EventStream(daemon, queued['id'], timeout=5)
    assert stream.next_item() == {'retry': 3000}
    assert stream.next_event()['data']['state'] == 'queued'
    started = time.monotonic()
    beats = 0
    while beats < 5:
        item = stream.next_item()
        assert item is not None and 'id' not in item, item
        assert item == {'comment': 'heartbeat'}, item
        beats += 1
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 3.0, elapsed

    # Cancelling the queued job ends its stream with that state.
    assert client.post(f"/v1/jobs/{queued['id']}/cancel").status_code == 200
    rest = stream.events_to_end()
    assert rest[-1]['data'] == {'state': 'cancelled', 'error': None}
    assert client.post(f"/v1/jobs/{blocker['id']}/cancel").status_code == 200


def test_vanished_clients_are_reaped(spkd_factory):
    daemon = spkd_factory.start(env={'SPKD_SSE_HEARTBEAT_MS': '100'})
    client = daemon.client
    job = client.submit(long_spec())
    wait_state(client, job['id'], ('running',), DEADLINE)

    # A few streams come and go first, so that the pool of database
    # connections holds what it will hold.
    for _ in range(3):
        raw_stream_open(daemon, job['id']).close()
    time.sleep(0.5)
    fds, sockets = fd_counts(daemon)

    clients = [raw_stream_open(daemon, job['id']) for _ in range(100)]
    during_fds, during_sockets = fd_counts(daemon)
    assert during_sockets >= sockets + 100, (sockets, during_sockets)
    for i, s in enumerate(clients):
        if i % 2:  # half reset, half closed politely
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b'\x01\x00\x00\x00\x00\x00\x00\x00')
        s.close()

    wait_for('the daemon to close the vanished streams',
             lambda: fd_counts(daemon)[1] <= sockets, 20)
    after_fds, _ = fd_counts(daemon)
    assert after_fds <= fds + 8, (fds, during_fds, after_fds)
    t0 = time.monotonic()
    assert client.get('/healthz', timeout=5).status_code == 200
    assert time.monotonic() - t0 < 1.0
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200


def test_sigterm_with_open_streams(spkd_factory):
    daemon = spkd_factory.start()
    client = daemon.client
    job = client.submit(long_spec())
    wait_state(client, job['id'], ('running',), DEADLINE)
    socks = [raw_stream_open(daemon, job['id']) for _ in range(5)]
    stream = EventStream(daemon, job['id'])
    first_epoch = None
    while first_epoch is None:
        ev = stream.next_event()
        if ev['event'] == 'epoch':
            first_epoch = ev

    # Each raw client reads until the daemon closes its connection.
    tails = [b''] * len(socks)

    def drain(i):
        socks[i].settimeout(15)
        while chunk := socks[i].recv(65536):
            tails[i] = (tails[i] + chunk)[-64:]

    readers = [threading.Thread(target=drain, args=(i,))
               for i in range(len(socks))]
    for t in readers:
        t.start()
    t0 = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0, daemon.tail()
    assert time.monotonic() - t0 < 10
    for t in readers:
        t.join(timeout=5)
        assert not t.is_alive()
    # Every stream ended as a whole chunked body, not cut.
    for tail in tails:
        assert tail.endswith(b'0\r\n\r\n'), tail
    rest = stream.events_to_end()
    # The stop put the job back in the queue, and said so.
    assert rest and rest[-1]['data'] == {'state': 'queued', 'error': None,
                                         'reason': 'resumed'}, rest
    last_seen = rest[-1]['id']
    for s in socks:
        s.close()

    # The next daemon resumes the job; a client reconnecting with the
    # last id it saw gets what follows, starting with the start.
    again = spkd_factory.restart(daemon)
    follow = EventStream(again, job['id'], last_id=last_seen)
    ev = follow.next_event()
    assert ev['id'] > last_seen
    assert ev['data']['state'] == 'running'
    while True:  # the job tells where it resumed
        ev = follow.next_event()
        assert ev is not None and ev['event'] != 'state', ev
        if ev['event'] == 'log' and ev['data']['message'].startswith(
                'stage spl resumed after epoch'):
            break
    assert again.client.post(
        f"/v1/jobs/{job['id']}/cancel").status_code == 200
    rest = follow.events_to_end()
    assert rest[-1]['data'] == {'state': 'cancelled', 'error': None}
