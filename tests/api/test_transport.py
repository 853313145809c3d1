# SPDX-License-Identifier: MIT
# Requests as slow or odd clients send them: a job spec dribbled one byte
# per write, with a Content-Length or in 1-byte chunks, arrives intact;
# the connection limit holds and /healthz still answers.
import json
import socket
import time

from conftest import tiny_spec, wait_for


def raw_request(port, head, pieces, pause=0.0):
    """Sends head, then each piece in its own write (Nagle off), and
    returns (status, headers, body) of the answer."""
    with socket.create_connection(('127.0.0.1', port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head)
        for p in pieces:
            s.sendall(p)
            if pause:
                time.sleep(pause)
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head_text, _, body = data.partition(b'\r\n\r\n')
    lines = head_text.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (ln.split(':', 1) for ln in lines[1:])}
    if headers.get('transfer-encoding') == 'chunked':
        body = dechunk(body)
    return status, headers, body


def dechunk(body):
    out = b''
    while True:
        size_line, _, rest = body.partition(b'\r\n')
        size = int(size_line.split(b';')[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2:]


def stored_spec(client, job_id):
    return client.get_json(f'/v1/jobs/{job_id}')['spec']


def test_body_in_one_byte_writes(spkd):
    spec = tiny_spec(name='dribbled \u00e9t\u00e9')
    body = json.dumps(spec, ensure_ascii=False).encode()
    head = (f'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
            f'Content-Type: application/json\r\n'
            f'Content-Length: {len(body)}\r\n\r\n').encode()
    status, headers, answer = raw_request(
        spkd.port, head, [body[i:i + 1] for i in range(len(body))])
    assert status == 201, answer
    job = json.loads(answer)
    assert headers['location'] == f"/v1/jobs/{job['id']}"
    assert stored_spec(spkd.client, job['id']) == spec


def test_body_in_one_byte_chunks(spkd):
    spec = tiny_spec(name='chunked')
    body = json.dumps(spec).encode()
    head = (b'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
            b'Content-Type: application/json\r\n'
            b'Transfer-Encoding: chunked\r\n\r\n')
    pieces = [b'1\r\n' + body[i:i + 1] + b'\r\n' for i in range(len(body))]
    status, _, answer = raw_request(spkd.port, head, pieces + [b'0\r\n\r\n'])
    assert status == 201, answer
    assert stored_spec(spkd.client, json.loads(answer)['id']) == spec


def test_headers_in_one_byte_writes(spkd):
    request = (b'GET /healthz HTTP/1.1\r\nHost: x\r\n'
               b'Connection: close\r\n\r\n')
    status, _, body = raw_request(
        spkd.port, b'', [request[i:i + 1] for i in range(len(request))])
    assert status == 200 and json.loads(body)['status'] == 'ok'


def test_connection_limit_holds(spkd_factory):
    """Past --max-connections a new connection is not served (the kernel
    may queue it, the daemon closes it or leaves it waiting), and once
    the idle ones leave the daemon answers again."""
    d = spkd_factory.start(args=('--max-connections', '8'))
    idle = [socket.create_connection(('127.0.0.1', d.port), timeout=10)
            for _ in range(8)]
    try:
        with socket.create_connection(('127.0.0.1', d.port),
                                      timeout=2) as extra:
            extra.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
            try:
                got = extra.recv(100)
            except (ConnectionResetError, TimeoutError):
                got = b''
            assert got == b'', got
    finally:
        for s in idle:
            s.close()

    def healthy():
        try:
            return d.client.get('/healthz', timeout=2).status_code == 200
        except Exception:  # noqa: BLE001 - refused while slots free up
            return False
    wait_for('healthz after the idle connections left', healthy, 10)


def test_nul_and_slash_escapes_name_nothing(spkd):
    """%00 would end the path early and %2F add a separator: neither is
    decoded, so such a path names no job and such a value is refused."""
    client = spkd.client
    job = client.submit(tiny_spec(name='kept'))
    jid = job['id']
    for path in (f'/v1/jobs/{jid}%00', f'/v1/jobs/{jid}%00abc',
                 '/v1/jobs/%00', f'/v1%2Fjobs%2F{jid}'):
        status, _, body = raw_request(
            spkd.port, f'GET {path} HTTP/1.1\r\nHost: x\r\n'
            f'Connection: close\r\n\r\n'.encode(), [])
        assert status == 404, (path, body)
        assert json.loads(body)['error']['code'] == 'not_found'
    status, _, body = raw_request(
        spkd.port, f'DELETE /v1/jobs/{jid}%00/x HTTP/1.1\r\nHost: x\r\n'
        f'Connection: close\r\n\r\n'.encode(), [])
    assert status == 404, body
    status, _, body = raw_request(
        spkd.port, b'GET /v1/jobs?state=queued%00x HTTP/1.1\r\nHost: x\r\n'
        b'Connection: close\r\n\r\n', [])
    assert status == 400 and json.loads(body)['error']['field'] == 'state'
    # Other escapes still decode; the job is still there.
    assert client.get_json(f'/v1/jobs/%{ord(str(jid)[0]):02X}'
                           f'{str(jid)[1:]}')['id'] == jid


def test_a_request_sent_too_slowly_is_closed(spkd_factory):
    """With --timeout 1 a body that dribbles in, never idle for a second,
    is cut off after two seconds, and the daemon stays healthy."""
    d = spkd_factory.start(args=('--timeout', '1'))
    body = json.dumps(tiny_spec()).encode()
    head = (f'POST /v1/jobs HTTP/1.1\r\nHost: x\r\n'
            f'Content-Length: {len(body)}\r\n\r\n').encode()
    started = time.monotonic()
    with socket.create_connection(('127.0.0.1', d.port), timeout=10) as s:
        s.sendall(head)
        closed = False
        for i in range(len(body)):
            try:
                s.sendall(body[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > 8:
                break
        if not closed:
            s.settimeout(5)
            try:
                closed = s.recv(100) == b''
            except (ConnectionResetError, TimeoutError):
                closed = True
    assert closed
    assert time.monotonic() - started < 8
    assert d.client.jobs() == []
    assert d.client.get_json('/healthz')['status'] == 'ok'
