# SPDX-License-Identifier: MIT
# The bearer token: with --token-file every request that changes anything
# must carry it, reads need none, and a refused request stores nothing.
# Without a token the daemon listens on loopback addresses only.
import os
import subprocess

import pytest
import requests

from conftest import SPKD, DATA_ROOT, free_port, tiny_spec, wait_for
from spkapi import expect_error

TOKEN = 'k3y-for-tests-0123456789abcdef'


def write_token(tmp_path, text, mode=0o600):
    path = tmp_path / 'token'
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.fixture
def guarded(spkd_factory, tmp_path):
    """A daemon that asks for TOKEN on mutating requests."""
    path = write_token(tmp_path, TOKEN + '\n')
    return spkd_factory.start(args=('--token-file', path))


def bearer(token):
    return {'Authorization': f'Bearer {token}'}


def test_mutations_need_the_token(guarded):
    client = guarded.client
    spec = tiny_spec(name='guarded')
    for headers in ({}, bearer('wrong-token'), bearer(TOKEN[:-1]),
                    bearer(TOKEN + 'x'), {'Authorization': TOKEN},
                    {'Authorization': f'Basic {TOKEN}'}):
        resp = client.post('/v1/jobs', json_body=spec, headers=headers)
        expect_error(resp, 401, 'unauthorized')
        assert resp.headers['WWW-Authenticate'].startswith('Bearer')
    # Nothing was stored by the refused requests.
    assert client.jobs() == []

    resp = client.post('/v1/jobs', json_body=spec, headers=bearer(TOKEN))
    assert resp.status_code == 201, resp.text
    job = resp.json()
    # Reads need no token.
    assert client.get_json(f"/v1/jobs/{job['id']}")['name'] == 'guarded'
    assert client.get_json('/healthz')['status'] == 'ok'

    expect_error(client.post(f"/v1/jobs/{job['id']}/cancel"), 401,
                 'unauthorized')
    after = client.get_json(f"/v1/jobs/{job['id']}")
    assert after['cancel_requested'] is False
    assert after['state'] in ('queued', 'running', 'succeeded')


def test_routing_errors_come_before_the_token(guarded):
    client = guarded.client
    expect_error(client.post('/v1/nothing-here', unrouted=True), 404, 'not_found')
    resp = client.post('/healthz')
    expect_error(resp, 405, 'method_not_allowed')


def run_daemon(tmp_path, *args):
    """Runs spkd with args until it exits on its own (a refusal)."""
    argv = [SPKD, '--db', str(tmp_path / 'x.db'), '--data-root', DATA_ROOT]
    return subprocess.run(argv + list(args), capture_output=True,
                          timeout=20, cwd=tmp_path)


@pytest.mark.parametrize('text, why', [
    ('', 'must be one line'),
    ('short\n', 'must be one line'),
    ('x' * 400 + '\n', 'must be one line'),
])
def test_bad_token_files_are_refused(tmp_path, text, why):
    path = write_token(tmp_path, text)
    proc = run_daemon(tmp_path, '--token-file', path, '--listen',
                      f'127.0.0.1:{free_port()}')
    assert proc.returncode == 2, proc
    assert why in proc.stderr.decode(), proc.stderr


def test_missing_token_file_is_refused(tmp_path):
    proc = run_daemon(tmp_path, '--token-file', str(tmp_path / 'none'),
                      '--listen', f'127.0.0.1:{free_port()}')
    assert proc.returncode == 2, proc
    assert 'cannot read token file' in proc.stderr.decode(), proc.stderr
    assert not (tmp_path / 'x.db').exists()


def test_any_address_with_a_token(tmp_path):
    """0.0.0.0 is refused without a token and served with one."""
    path = write_token(tmp_path, TOKEN)
    port = free_port()
    argv = [SPKD, '--db', str(tmp_path / 'any.db'), '--data-root', DATA_ROOT,
            '--listen', f'0.0.0.0:{port}', '--token-file', path]
    log = open(tmp_path / 'any.log', 'wb')
    proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=tmp_path)
    try:
        def healthy():
            try:
                return requests.get(f'http://127.0.0.1:{port}/healthz',
                                    timeout=2).status_code == 200
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / 'any.log').read_text()
                return False
        wait_for('the daemon on 0.0.0.0', healthy, 30)
        resp = requests.post(f'http://127.0.0.1:{port}/v1/jobs',
                             json=tiny_spec(), timeout=10)
        assert resp.status_code == 401, resp.text
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        log.close()
    text = (tmp_path / 'any.log').read_text()
    assert 'auth=token' in text, text
    assert TOKEN not in text
