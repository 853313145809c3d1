# SPDX-License-Identifier: MIT
# `make bench`, the daemon's part: request latency at a held rate while a
# job trains (hey -q), the highest rate (wrk), /healthz latency with 200
# event streams open, and a job's training speed through the daemon
# against the same job run by `spkd run`, all measured in this one run.
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SPKD = os.path.join(REPO, 'build', 'spkd')
RATE = 500          # requests per second hey holds
HEY_WORKERS = 10    # hey -c; each holds RATE / HEY_WORKERS per second
SECONDS = 10
SSE_CLIENTS = 200


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def await_true(what, check, deadline=120.0):
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            sys.exit(f'bench: timed out waiting for {what}')
        time.sleep(0.05)


class Daemon:
    def __init__(self, tmp):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = open(os.path.join(tmp, 'spkd.log'), 'wb')
        self.proc = subprocess.Popen(
            [SPKD, '--listen', f'127.0.0.1:{self.port}', '--db',
             os.path.join(tmp, 'daemon.db'), '--max-connections', '1024'],
            stdout=self.log, stderr=self.log, cwd=tmp)
        await_true('the daemon', self.healthy, 30)

    def healthy(self):
        try:
            return get_json(self.url + '/healthz')['status'] == 'ok'
        except OSError:
            return False

    def run_job(self, spec):
        """Submits spec and waits for its end on the job's event stream,
        which ends after the last state: polling would take CPU from
        the job it measures."""
        job = post_json(self.url + '/v1/jobs', spec)
        with urllib.request.urlopen(f"{self.url}/v1/jobs/{job['id']}/events",
                                    timeout=600) as r:
            while r.read(65536):
                pass
        done = get_json(f"{self.url}/v1/jobs/{job['id']}")
        if done['state'] != 'succeeded':
            sys.exit(f"bench: job {job['id']} ended {done['state']}")
        return job['id']

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def stage_rates(metrics):
    """Training samples per second of each stage: samples over seconds,
    summed over the stage's epochs."""
    out = {}
    for m in metrics:
        if m['seconds'] and m['samples_per_s']:
            s = out.setdefault(m['stage'], [0.0, 0.0])
            s[0] += m['samples_per_s'] * m['seconds']
            s[1] += m['seconds']
    return {k: v[0] / v[1] for k, v in out.items()}


def daemon_metrics(d, job_id):
    return get_json(f'{d.url}/v1/jobs/{job_id}/metrics?limit=1000')['items']


def run_metrics(tmp, spec_path, n):
    """Runs the spec with `spkd run` and reads its epochs' figures from
    the database it wrote."""
    db = os.path.join(tmp, f'run{n}.db')
    subprocess.run([SPKD, 'run', spec_path, '--db', db], check=True,
                   stdout=subprocess.DEVNULL, cwd=tmp)
    con = sqlite3.connect(db)
    rows = con.execute('SELECT stage, seconds, samples_per_s '
                       'FROM epoch_metrics').fetchall()
    con.close()
    return [{'stage': s, 'seconds': sec, 'samples_per_s': r}
            for s, sec, r in rows]


def throughput(tmp, d):
    """The quick example twice each way, alternating, so drift of the
    machine falls on both sides."""
    spec_path = os.path.join(REPO, 'examples', 'quick.json')
    with open(spec_path, encoding='utf-8') as f:
        spec = json.load(f)
    ways = {'daemon': [], 'run': []}
    for n in range(2):
        ways['run'].append(stage_rates(run_metrics(tmp, spec_path, n)))
        ways['daemon'].append(stage_rates(
            daemon_metrics(d, d.run_job(spec))))
    print('training samples/s per stage (mean of 2 runs each):')
    ratios = []
    for stage in ways['run'][0]:
        r = sum(x[stage] for x in ways['run']) / 2
        dm = sum(x[stage] for x in ways['daemon']) / 2
        ratios.append(dm / r)
        print(f'  {stage:9s} spkd run {r:9.0f}  daemon {dm:9.0f}  '
              f'ratio {dm / r:.3f}')
    total = sum(ratios) / len(ratios)
    print(f'daemon / spkd run throughput: {total:.3f} '
          f'(target >= 0.95)')


def hey(url, seconds=SECONDS):
    """Holds RATE requests/s on url; returns (p50, p99, rps, errors)."""
    out = subprocess.run(
        ['hey', '-z', f'{seconds}s', '-c', str(HEY_WORKERS), '-q',
         str(RATE // HEY_WORKERS), url], capture_output=True, text=True,
        check=True).stdout
    p = {k: float(v) * 1000 for k, v in
         re.findall(r'\s(\d+)% in ([0-9.]+) secs', out)}
    rps = float(re.search(r'Requests/sec:\s+([0-9.]+)', out).group(1))
    codes = dict(re.findall(r'\[(\d+)\]\s+(\d+) responses', out))
    bad = sum(int(v) for k, v in codes.items() if k != '200')
    return p['50'], p['99'], rps, bad


def wrk(url):
    out = subprocess.run(['wrk', '-t2', '-c16', '-d5s', '--latency', url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r'Requests/sec:\s+([0-9.]+)', out).group(1))


def long_job(d):
    spec = json.load(open(os.path.join(REPO, 'examples', 'quick.json')))
    spec['name'] = 'bench-load'
    spec['spl']['epochs'] = 400
    job = post_json(d.url + '/v1/jobs', spec)
    await_true('the load job to run', lambda: get_json(
        f"{d.url}/v1/jobs/{job['id']}")['state'] == 'running')
    return job['id']


def sse_clients(d, job_id, n):
    """Opens n event streams on a running job and reads them in threads;
    returns the sockets (close them to end)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(('127.0.0.1', d.port), timeout=30)
        s.sendall(f'GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n'
                  f'Accept: text/event-stream\r\n\r\n'.encode())
        socks.append(s)
    for s in socks:
        threading.Thread(target=drain, args=(s,), daemon=True).start()
    return socks


def drain(s):
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def main():
    if not shutil.which('hey') or not shutil.which('wrk'):
        sys.exit('bench: hey and wrk are needed (make setup installs them)')
    tmp = tempfile.mkdtemp(prefix='spkd-bench-')
    d = Daemon(tmp)
    try:
        throughput(tmp, d)
        jid = long_job(d)
        job_url = f'{d.url}/v1/jobs/{jid}'
        p50, p99, rps, bad = hey(job_url)
        print(f'GET /v1/jobs/{{id}} at {RATE}/s held by hey while a job '
              f'trains: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target <= 10), '
              f'{rps:.0f} req/s, {bad} non-200')
        print(f'GET /v1/jobs/{{id}} highest rate (wrk, 16 connections, '
              f'job training): {wrk(job_url):.0f} req/s')
        h50, h99, _, hbad = hey(d.url + '/healthz')
        socks = sse_clients(d, jid, SSE_CLIENTS)
        s50, s99, _, sbad = hey(d.url + '/healthz')
        print(f'/healthz at {RATE}/s: p99 {h99:.2f} ms without streams, '
              f'{s99:.2f} ms with {SSE_CLIENTS} event streams open '
              f'(target <= 10; p50 {h50:.2f} / {s50:.2f} ms; '
              f'{hbad + sbad} non-200)')
        for s in socks:
            s.close()
        urllib.request.urlopen(urllib.request.Request(
            job_url + '/cancel', method='POST'), timeout=10).close()
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
