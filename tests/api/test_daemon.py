# SPDX-License-Identifier: MIT
# The daemon as a process: health, the dashboard and static files, an empty
# job list, refusal of a non-loopback address, and a clean stop on SIGTERM
# and SIGINT.
import os
import signal
import subprocess

from conftest import DATA_ROOT, SPKD, free_port, message_lines
from spkapi import expect_error


def test_health(client):
    health = client.get_json('/healthz')
    assert health['status'] == 'ok'
    if os.environ.get('OPENBLAS_CORETYPE'):
        # A kernel the environment chose is never overridden by spkd.
        assert health['blas_core'].lower() == \
            os.environ['OPENBLAS_CORETYPE'].lower()


def test_empty_job_list(client):
    assert client.get_json('/v1/jobs') == {'items': [], 'next_cursor': None}
    assert client.get_json('/v1/jobs', params={'limit': 1}) == \
        {'items': [], 'next_cursor': None}


def test_dashboard_and_static_files(client):
    resp = client.get('/')
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers['Content-Type'].startswith('text/html')
    assert '<html' in resp.text.lower()
    expect_error(client.get('/no-such-file.txt'), 404, 'not_found')
    expect_error(client.get('/no/such/dir/file.js'), 404, 'not_found')


def test_static_files_stay_inside_web_root(client):
    for path in ('/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd',
                 '/..%2f..%2f..%2fetc%2fpasswd', '/%2e%2e%2f%2e%2e%2fetc'):
        resp = client.get(path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert 'root:' not in resp.text


def run_refused(tmp_path, listen):
    db = tmp_path / 'refused.db'
    proc = subprocess.run([SPKD, '--listen', listen, '--db', str(db),
                           '--data-root', DATA_ROOT],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=20, cwd=tmp_path)
    return proc


def test_non_loopback_listen_is_refused(tmp_path):
    for host in ('0.0.0.0', '192.0.2.1'):
        proc = run_refused(tmp_path, f'{host}:{free_port()}')
        assert proc.returncode == 2, proc
        lines = message_lines(proc.stderr)
        assert len(lines) == 1, lines
        assert host in lines[0] or 'loopback' in lines[0].lower(), lines


def test_sigterm_and_sigint_stop_cleanly(spkd_factory):
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = spkd_factory.start(db_name=f'{int(sig)}.db')
        d.proc.send_signal(sig)
        assert d.proc.wait(timeout=20) == 0, d.tail()
