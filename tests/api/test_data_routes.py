# SPDX-License-Identifier: MIT
# The read-only data routes: a finished stage's samples sorted and paged,
# its data map, model downloads against the bytes storage holds, exports
# against `spkd export`, and the datasets of a data root with single
# samples compared with the bytes of their IDX files, read here.
import gzip
import hashlib
import http.client
import json
import math
import os
import sqlite3
import struct
import subprocess
import zlib

import pytest
import requests

from conftest import (DATA_ROOT, SPKD, DaemonFactory, long_spec,
                      wait_finished, wait_for)
from spkapi import check_response, expect_error

STATS = ('confidence', 'variability', 'correctness', 'forgetting', 'aum')
# The order that lists the hardest samples first, by statistic.
HARDEST_DESCENDS = {'confidence': False, 'variability': True,
                    'correctness': False, 'forgetting': True, 'aum': False}
STAGES = ('spl', 'teacher', 'student', 'baseline')
FMNIST = os.path.join(DATA_ROOT, 'fashion-mnist')


def stage_epochs(quick, stage):
    spec = quick.spec['teachers'][0] if stage == 'teacher' else \
        quick.spec[stage]
    return spec['epochs']


def samples_path(quick, stage='spl'):
    return f"/v1/jobs/{quick.job['id']}/stages/{stage}/samples"


def walk(quick, stage='spl', limit=1000, **params):
    """Every page of a stage's samples: (pages, items in order)."""
    pages = quick.client.get_all(samples_path(quick, stage), limit=limit,
                                 params=params)
    return pages, [i for p in pages for i in p['items']]


@pytest.fixture(scope='module')
def datamaps(quick):
    """Each stage's data map of the quick job."""
    return {s: quick.client.get_json(
        f"/v1/jobs/{quick.job['id']}/stages/{s}/datamap") for s in STAGES}


def sort_key(item, stat, descending):
    """The order the route promises: numbers first (ascending or
    descending), non-numbers last, ties by ascending index."""
    v = item[stat]
    if v is None:
        return (1, 0, item['index'])
    return (0, -v if descending else v, item['index'])


# ---- A stage's samples, sorted and paged. ----

@pytest.mark.parametrize('stat', STATS)
@pytest.mark.parametrize('order', ['asc', 'desc', None])
def test_samples_are_sorted(quick, stat, order):
    params = {'sort': stat}
    if order:
        params['order'] = order
    pages, items = walk(quick, **params)
    descending = HARDEST_DESCENDS[stat] if order is None else order == 'desc'
    for p in pages:
        assert (p['stage'], p['sort'], p['order']) == \
            ('spl', stat, 'desc' if descending else 'asc')
        assert p['epoch'] == quick.spec['spl']['epochs']
    keys = [sort_key(i, stat, descending) for i in items]
    assert keys == sorted(keys)
    values = [i[stat] for i in items if i[stat] is not None]
    assert values[0] != values[-1]


def test_default_is_hardest_first_by_confidence(quick):
    page = quick.client.get_json(samples_path(quick), params={'limit': 50})
    assert (page['sort'], page['order']) == ('confidence', 'asc')
    both = quick.client.get_json(samples_path(quick), params={
        'limit': 50, 'sort': 'confidence', 'order': 'asc'})
    assert page['items'] == both['items']


@pytest.mark.parametrize('stage,limit,stat', [
    ('spl', 1000, 'confidence'), ('student', 777, 'aum'),
    ('baseline', 1, 'forgetting')])
def test_paging_lists_every_sample_once(quick, datamaps, stage, limit, stat):
    n = datamaps[stage]['total']
    if limit == 1:  # a page a sample: walk the first and last few only
        first = quick.client.get_json(samples_path(quick, stage), params={
            'limit': 1, 'sort': stat})
        assert len(first['items']) == 1 and first['next_cursor'] == '1'
        last = quick.client.get_json(samples_path(quick, stage), params={
            'limit': 1, 'sort': stat, 'cursor': str(n - 1)})
        assert len(last['items']) == 1 and last['next_cursor'] is None
        return
    pages, items = walk(quick, stage, limit=limit, sort=stat)
    assert len(pages) == math.ceil(n / limit)
    assert all(len(p['items']) == limit for p in pages[:-1])
    assert all(p['total'] == n for p in pages)
    assert pages[-1]['next_cursor'] is None
    indices = [i['index'] for i in items]
    assert len(indices) == len(set(indices)) == n
    assert sorted(indices) == datamaps[stage]['index']


def test_a_cursor_at_the_end_gives_an_empty_last_page(quick, datamaps):
    n = datamaps['spl']['total']
    page = quick.client.get_json(samples_path(quick),
                                 params={'cursor': str(n)})
    assert page['items'] == [] and page['next_cursor'] is None
    assert page['total'] == n


def test_samples_agree_with_each_sample_history(quick):
    """The dynamics and the last epoch's prediction and probability equal
    what the sample route gives for the same samples."""
    items = quick.client.get_json(samples_path(quick, 'student'),
                                  params={'limit': 20})['items']
    last = quick.spec['student']['epochs']
    for item in items:
        s = quick.client.get_json(
            f"/v1/jobs/{quick.job['id']}/samples/{item['index']}")
        d = s['dynamics']['student']
        for stat in STATS:
            assert item[stat] == pytest.approx(d[stat], rel=1e-6, abs=1e-9)
        rec = [h for h in s['history']
               if h['stage'] == 'student' and h['epoch'] == last]
        assert len(rec) == 1
        assert item['predicted'] == rec[0]['predicted']
        assert item['prob'] == pytest.approx(rec[0]['prob'], rel=1e-6)
        assert item['observed_label'] == s['observed_label']
        assert item['clean_label'] == s['clean_label']
        assert item['corrupted'] == (s['clean_label'] != s['observed_label'])


@pytest.mark.parametrize('params,field', [
    ({'limit': '0'}, 'limit'), ({'limit': '1001'}, 'limit'),
    ({'limit': '-5'}, 'limit'), ({'limit': 'ten'}, 'limit'),
    ({'limit': ''}, 'limit'), ({'limit': '1.5'}, 'limit'),
    ({'cursor': 'abc'}, 'cursor'), ({'cursor': '-1'}, 'cursor'),
    ({'cursor': '99999999999'}, 'cursor'), ({'cursor': ''}, 'cursor'),
    ({'sort': 'loss'}, 'sort'), ({'sort': ''}, 'sort'),
    ({'order': 'up'}, 'order'), ({'order': 'ASC'}, 'order'),
    ({'page': '2'}, 'page'),
])
def test_bad_sample_queries_are_refused(quick, params, field):
    expect_error(quick.client.get(samples_path(quick), params=params), 400,
                 'invalid_parameter', field)


def test_a_cursor_beyond_the_end_is_refused(quick, datamaps):
    n = datamaps['spl']['total']
    expect_error(quick.client.get(samples_path(quick),
                                  params={'cursor': str(n + 1)}),
                 400, 'invalid_parameter', 'cursor')


@pytest.mark.parametrize('route', ['samples', 'datamap'])
@pytest.mark.parametrize('job,stage', [
    ('999999', 'spl'), ('zero', 'spl'), (None, 'nope'),
    (None, 'teacher0'), (None, 'SPL')])
def test_unknown_jobs_and_stages_answer_404(quick, route, job, stage):
    job = job or quick.job['id']
    err = expect_error(quick.client.get(
        f'/v1/jobs/{job}/stages/{stage}/{route}'), 404, 'not_found')
    assert stage in err['message'] or str(job) in err['message']


# ---- Data maps. ----

def test_datamap_columns_cover_the_training_samples(quick, datamaps):
    n_train = round(quick.spec['dataset']['limit'] *
                    (1 - quick.spec['dataset']['validation_fraction']))
    for stage, m in datamaps.items():
        assert m['stage'] == stage and m['total'] == n_train
        for col in ('index', 'observed_label', 'confidence', 'variability',
                    'correctness', 'corrupted'):
            assert len(m[col]) == n_train, (stage, col)
        assert m['index'] == sorted(set(m['index']))
    assert all(m['index'] == datamaps['spl']['index']
               for m in datamaps.values())
    assert all(m['corrupted'] == datamaps['spl']['corrupted']
               for m in datamaps.values())
    rate = sum(datamaps['spl']['corrupted']) / n_train
    assert 0.35 < rate < 0.45  # the job's 40 % symmetric noise


def test_datamap_agrees_with_the_samples_route(quick, datamaps):
    _, items = walk(quick, 'teacher')
    by_index = {i['index']: i for i in items}
    m = datamaps['teacher']
    assert len(by_index) == m['total']
    for k, index in enumerate(m['index']):
        item = by_index[index]
        assert m['observed_label'][k] == item['observed_label']
        assert m['corrupted'][k] == item['corrupted']
        for stat in ('confidence', 'variability', 'correctness'):
            # Rounded to 4 decimals (and a float32's last bits).
            assert m[stat][k] == pytest.approx(item[stat], abs=5.1e-5)
            assert m[stat][k] == round(m[stat][k], 4)


def test_datamap_is_compact(quick):
    resp = quick.client.get(
        f"/v1/jobs/{quick.job['id']}/stages/spl/datamap")
    assert resp.status_code == 200
    assert resp.headers['Content-Type'] == 'application/json'
    assert b' ' not in resp.content and b'\n' not in resp.content
    m = resp.json()
    assert len(resp.content) < 40 * m['total']
    expect_error(quick.client.get(
        f"/v1/jobs/{quick.job['id']}/stages/spl/datamap",
        params={'limit': '5'}), 400, 'invalid_parameter', 'limit')


# ---- Models. ----

def stored_checkpoint(quick, stage):
    """The stage's stored state (kind, epoch, bytes, weights hash), read
    from the daemon's database file."""
    conn = sqlite3.connect(f'file:{quick.daemon.db}?mode=ro', uri=True)
    try:
        row = conn.execute(
            "SELECT kind, epoch, data, sha256 FROM checkpoints "
            "WHERE job_id = ? AND stage = ? ORDER BY kind = 'final' DESC",
            (quick.job['id'], stage)).fetchone()
    finally:
        conn.close()
    return row


def state_sections(data):
    """The sections of a resume state (engine/state.c framing): a dict of
    tag to a list of byte strings, the CRC checked."""
    assert data[:8] == b'SPKSTATE'
    assert struct.unpack('<I', data[-4:])[0] == zlib.crc32(data[:-4])
    sections, pos = {}, 12
    while pos < len(data) - 4:
        tag, length = struct.unpack('<4sQ', data[pos:pos + 12])
        sections.setdefault(tag, []).append(data[pos + 12:pos + 12 + length])
        pos += 12 + length
    assert pos == len(data) - 4
    return sections


def model_path(quick, stage):
    return f"/v1/jobs/{quick.job['id']}/models/{stage}"


@pytest.mark.parametrize('stage', STAGES)
def test_model_download_is_the_stored_model(quick, stage):
    resp = quick.client.get(model_path(quick, stage))
    assert resp.status_code == 200, resp.text
    body = resp.content
    kind, epoch, data, weights = stored_checkpoint(quick, stage)
    assert kind == 'final'
    assert body == state_sections(data)[b'MODL'][0]

    # A whole checkpoint file: magic, version, length and CRC.
    assert body[:8] == b'SPKCKPT\0'
    version, total = struct.unpack('<IQ', body[8:20])
    assert version == 1 and total == len(body)
    assert struct.unpack('<I', body[-4:])[0] == zlib.crc32(body[:-4])

    h = resp.headers
    assert h['Content-Type'] == 'application/octet-stream'
    assert h['Content-Disposition'] == \
        f"attachment; filename=\"job-{quick.job['id']}-{stage}.ckpt\""
    assert h['ETag'] == '"%s"' % hashlib.sha256(body).hexdigest()
    assert h['X-Checkpoint-Kind'] == 'final'
    assert int(h['X-Checkpoint-Epoch']) == epoch == stage_epochs(quick, stage)
    assert h['X-Weights-SHA256'] == weights


def test_model_etag_revalidates(quick):
    first = quick.client.get(model_path(quick, 'spl'))
    etag = first.headers['ETag']
    again = quick.client.get(model_path(quick, 'spl'),
                             headers={'If-None-Match': etag})
    assert again.status_code == 304 and again.content == b''
    assert again.headers['ETag'] == etag
    other = quick.client.get(model_path(quick, 'spl'),
                             headers={'If-None-Match': '"0000"'})
    assert other.status_code == 200 and other.content == first.content
    assert quick.client.get(model_path(quick, 'student')).headers['ETag'] \
        != etag


@pytest.mark.parametrize('job,stage', [
    ('999999', 'spl'), ('x', 'spl'), (None, 'teacher0'), (None, 'nope')])
def test_missing_models_answer_404(quick, job, stage):
    job = job or quick.job['id']
    expect_error(quick.client.get(f'/v1/jobs/{job}/models/{stage}'), 404,
                 'not_found')


def test_models_take_no_query(quick):
    expect_error(quick.client.get(model_path(quick, 'spl'),
                                  params={'kind': 'final'}),
                 400, 'invalid_parameter', 'kind')


# ---- A job still running. ----

def test_a_running_job_has_models_and_exports_but_no_dynamics(client):
    """While spl trains: its latest model downloads, the export holds the
    epochs stored so far, and its dynamics answer 404 until it ends."""
    job = client.submit(long_spec())
    jid = job['id']

    def spl_epochs():
        page = client.get_json(f'/v1/jobs/{jid}/metrics')
        return [m for m in page['items'] if m['stage'] == 'spl']
    wait_for('the first spl epoch', spl_epochs, 120)

    resp = client.get(f'/v1/jobs/{jid}/models/spl')
    assert resp.status_code == 200
    assert resp.headers['X-Checkpoint-Kind'] == 'latest'
    assert int(resp.headers['X-Checkpoint-Epoch']) >= 1
    assert 'X-Weights-SHA256' not in resp.headers
    assert resp.content[:8] == b'SPKCKPT\0'

    for route in ('samples', 'datamap'):
        err = expect_error(client.get(f'/v1/jobs/{jid}/stages/spl/{route}'),
                           404, 'not_found')
        assert 'no dynamics of stage spl' in err['message']
    expect_error(client.get(f'/v1/jobs/{jid}/models/student'), 404,
                 'not_found')

    n = round(long_spec()['dataset']['limit'] * 0.9)
    lines = client.get(f'/v1/jobs/{jid}/export').content.splitlines()
    assert lines and len(lines) % n == 0
    assert {json.loads(line)['stage'] for line in lines} == {'spl'}
    csv = client.get(f'/v1/jobs/{jid}/export', params={'format': 'csv'})
    assert csv.content.decode().splitlines() == [
        'stage,index,label,clean_label,confidence,variability,correctness,'
        'forgetting,aum']

    assert client.post(f'/v1/jobs/{jid}/cancel').status_code == 200
    assert wait_finished(client, jid, 60)['state'] == 'cancelled'


# ---- Exports. ----

def cli_export(quick, fmt):
    res = subprocess.run([SPKD, 'export', '--db', quick.daemon.db, '--job',
                          str(quick.job['id']), '--format', fmt],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_export_jsonl_streams_what_spkd_export_writes(quick, datamaps):
    resp = quick.client.get(f"/v1/jobs/{quick.job['id']}/export",
                            params={'format': 'jsonl'}, timeout=120)
    assert resp.status_code == 200
    assert resp.headers['Content-Type'] == 'application/x-ndjson'
    assert resp.headers['Transfer-Encoding'] == 'chunked'
    assert resp.headers['Content-Disposition'] == \
        f"attachment; filename=\"job-{quick.job['id']}.jsonl\""
    assert resp.content == cli_export(quick, 'jsonl')

    lines = resp.content.decode().splitlines()
    epochs = sum(stage_epochs(quick, s) for s in STAGES)
    n = datamaps['spl']['total']
    assert len(lines) == epochs * n
    first = [json.loads(line) for line in lines[:n]]
    assert [r['index'] for r in first] == datamaps['spl']['index']
    assert {(r['stage'], r['epoch']) for r in first} == {('spl', 1)}
    assert all('clean_label' in r for r in first)
    last = json.loads(lines[-1])
    assert (last['stage'], last['epoch']) == \
        ('baseline', quick.spec['baseline']['epochs'])


def test_export_csv_streams_what_spkd_export_writes(quick, datamaps):
    resp = quick.client.get(f"/v1/jobs/{quick.job['id']}/export",
                            params={'format': 'csv'}, timeout=120)
    assert resp.status_code == 200
    assert resp.headers['Content-Type'] == 'text/csv; charset=utf-8'
    assert resp.content == cli_export(quick, 'csv')
    lines = resp.content.decode().splitlines()
    assert lines[0].startswith('stage,index,label,clean_label,confidence')
    assert len(lines) == 1 + len(STAGES) * datamaps['spl']['total']


def test_default_export_is_jsonl(quick):
    with quick.client.session.get(
            quick.client.base_url + f"/v1/jobs/{quick.job['id']}/export",
            stream=True, timeout=60) as resp:
        check_response('GET', resp.url, resp)
        assert resp.status_code == 200
        assert resp.headers['Content-Type'] == 'application/x-ndjson'
        line = next(resp.iter_lines())
        assert json.loads(line)['stage'] == 'spl'
    # The client left after a line; the daemon carries on.
    assert quick.client.get_json('/healthz')['status'] == 'ok'


@pytest.mark.parametrize('params,field', [
    ({'format': 'xml'}, 'format'), ({'format': ''}, 'format'),
    ({'format': 'JSONL'}, 'format'), ({'stage': 'spl'}, 'stage')])
def test_bad_export_queries_are_refused(quick, params, field):
    expect_error(quick.client.get(f"/v1/jobs/{quick.job['id']}/export",
                                  params=params),
                 400, 'invalid_parameter', field)


@pytest.mark.parametrize('job', ['999999', 'abc', '0'])
def test_exports_of_unknown_jobs_answer_404(quick, job):
    expect_error(quick.client.get(f'/v1/jobs/{job}/export'), 404,
                 'not_found')


# ---- Datasets. ----

def idx_bytes(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        return f.read()


def idx_sample(directory, split, index):
    """(label, pixels) of a sample, read from the IDX files here."""
    prefix = 'train' if split == 'train' else 't10k'
    names = os.listdir(directory)
    img = next(n for n in names if n.startswith(prefix + '-images'))
    lab = next(n for n in names if n.startswith(prefix + '-labels'))
    images = idx_bytes(os.path.join(directory, img))
    count, h, w = struct.unpack('>III', images[4:16])
    assert index < count
    pixels = images[16 + index * h * w:16 + (index + 1) * h * w]
    return idx_bytes(os.path.join(directory, lab))[8 + index], list(pixels)


def sample_path(name, index):
    return f'/v1/datasets/{name}/samples/{index}'


def test_fashion_mnist_is_listed(quick):
    page = quick.client.get_json('/v1/datasets')
    fm = [d for d in page['items'] if d['name'] == 'fashion-mnist']
    assert fm == [{
        'name': 'fashion-mnist', 'format': 'idx',
        'files': sorted(f'fashion-mnist/{n}' for n in os.listdir(FMNIST)
                        if n.startswith('train')) +
        sorted(f'fashion-mnist/{n}' for n in os.listdir(FMNIST)
               if n.startswith('t10k')),
        'train_samples': 60000, 'test_samples': 10000, 'classes': 10,
        'channels': 1, 'height': 28, 'width': 28, 'error': None}]


@pytest.mark.parametrize('split,index', [
    ('train', 0), ('train', 31337), ('train', 59999), ('test', 0),
    ('test', 9999)])
def test_fashion_mnist_samples_are_the_file_bytes(quick, split, index):
    params = {} if split == 'train' and index == 0 else {'split': split}
    s = quick.client.get_json(sample_path('fashion-mnist', index),
                              params=params)
    label, pixels = idx_sample(FMNIST, split, index)
    assert s == {'dataset': 'fashion-mnist', 'split': split, 'index': index,
                 'label': label, 'width': 28, 'height': 28, 'channels': 1,
                 'pixels': pixels}


def raw_get(port, path, unrouted=False):
    """GETs path exactly as written (no client-side normalisation of dot
    segments) and checks the answer against the contract."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        conn.request('GET', path)
        r = conn.getresponse()
        resp = requests.models.Response()
        resp.status_code = r.status
        resp.headers = requests.structures.CaseInsensitiveDict(
            r.getheaders())
        resp._content = r.read()
        resp.url = f'http://127.0.0.1:{port}{path}'
    finally:
        conn.close()
    check_response('GET', resp.url, resp, unrouted=unrouted)
    return resp


@pytest.mark.parametrize('name,says', [
    ('..', 'not a plain name'), ('%2e%2e', 'not a plain name'),
    ('%2E%2e', 'not a plain name'), ('.hidden', 'not a plain name'),
    ('nope', "unknown dataset 'nope'"), ('a%20b', 'not a plain name')])
def test_bad_dataset_names_answer_404(quick, name, says):
    resp = raw_get(quick.daemon.port, sample_path(name, 0))
    err = expect_error(resp, 404, 'not_found')
    assert says in err['message']


@pytest.mark.parametrize('path,unrouted,says', [
    ('/v1/datasets/..%2F..%2Fetc/samples/0', False, 'not a plain name'),
    ('/v1/datasets/../../etc/passwd/samples/0', True, 'no such route')])
def test_paths_out_of_the_root_are_not_routes(quick, path, unrouted, says):
    """An escaped slash is never decoded, so it names no plain dataset; a
    plain one splits the path into more segments than any route has."""
    resp = raw_get(quick.daemon.port, path, unrouted=unrouted)
    err = expect_error(resp, 404, 'not_found')
    assert says in err['message']



@pytest.mark.parametrize('index,params,status,field', [
    ('60000', {}, 404, None), ('10000', {'split': 'test'}, 404, None),
    ('-1', {}, 404, None), ('x', {}, 404, None), ('1e3', {}, 404, None),
    ('0', {'split': 'validation'}, 400, 'split'),
    ('0', {'split': ''}, 400, 'split'), ('0', {'raw': '1'}, 400, 'raw')])
def test_bad_sample_requests(quick, index, params, status, field):
    resp = quick.client.get(sample_path('fashion-mnist', index),
                            params=params)
    err = expect_error(resp, status,
                       'not_found' if status == 404 else 'invalid_parameter',
                       field)
    if index in ('60000', '10000'):
        assert 'holds' in err['message']


@pytest.mark.parametrize('params,field', [
    ({'limit': '0'}, 'limit'), ({'limit': 'x'}, 'limit'),
    ({'cursor': 'x'}, 'cursor'), ({'cursor': '5'}, 'cursor'),
    ({'name': 'x'}, 'name')])
def test_bad_dataset_list_queries(quick, params, field):
    expect_error(quick.client.get('/v1/datasets', params=params), 400,
                 'invalid_parameter', field)


# ---- A data root of our own. ----

TINY = {'train': (11, 3, 5), 'test': (4, 3, 5)}  # count, height, width


def tiny_pixel(split, i, k):
    return (i * 41 + k * 13 + (7 if split == 'test' else 0)) % 256


def write_idx(directory, gz, labels_short=False, magic=0x803):
    os.makedirs(directory)
    for split, prefix in (('train', 'train'), ('test', 't10k')):
        n, h, w = TINY[split]
        images = struct.pack('>IIII', magic, n, h, w) + bytes(
            tiny_pixel(split, i, k) for i in range(n) for k in range(h * w))
        nl = n - 1 if labels_short else n
        labels = struct.pack('>II', 0x801, nl) + bytes(
            (i * 3) % 5 for i in range(nl))
        for name, data in ((f'{prefix}-images-idx3-ubyte', images),
                           (f'{prefix}-labels-idx1-ubyte', labels)):
            path = os.path.join(directory, name + ('.gz' if gz else ''))
            with (gzip.open if gz else open)(path, 'wb') as f:
                f.write(data)


@pytest.fixture(scope='module')
def own_root(tmp_path_factory):
    """A daemon whose data root holds tiny IDX datasets (raw and
    gzipped), a broken one, a directory that is no dataset, a hidden one,
    and a link to a dataset outside the root."""
    base = tmp_path_factory.mktemp('own-root')
    root = base / 'data'
    root.mkdir()
    write_idx(str(root / 'tiny'), gz=False)
    write_idx(str(root / 'tinygz'), gz=True)
    write_idx(str(root / 'broken'), gz=False, magic=0x804)
    write_idx(str(root / 'short'), gz=True, labels_short=True)
    write_idx(str(root / '.hidden'), gz=False)
    (root / 'empty').mkdir()
    (root / 'notes.txt').write_text('not a dataset\n')
    os.symlink(FMNIST, root / 'escape')
    os.symlink(root / 'tiny', root / 'alias')
    factory = DaemonFactory(str(base))
    try:
        yield factory.start(args=['--data-root', str(root)])
    finally:
        factory.close()


def test_own_root_lists_its_datasets(own_root):
    c = own_root.client
    items = [i for p in c.get_all('/v1/datasets', limit=2)
             for i in p['items']]
    assert [i['name'] for i in items] == \
        ['alias', 'broken', 'escape', 'short', 'tiny', 'tinygz']
    by = {i['name']: i for i in items}
    for name in ('tiny', 'tinygz', 'alias'):
        assert by[name]['error'] is None
        assert (by[name]['train_samples'], by[name]['test_samples'],
                by[name]['classes'], by[name]['channels'],
                by[name]['height'], by[name]['width']) == (11, 4, 5, 1, 3, 5)
    assert by['tinygz']['files'][0] == 'tinygz/train-images-idx3-ubyte.gz'
    assert by['tiny']['files'] == [
        'tiny/train-images-idx3-ubyte', 'tiny/train-labels-idx1-ubyte',
        'tiny/t10k-images-idx3-ubyte', 'tiny/t10k-labels-idx1-ubyte']
    assert 'not an IDX unsigned-byte file' in by['broken']['error']
    assert by['broken']['train_samples'] is None
    assert '10 labels for 11 images' in by['short']['error']
    # A link out of the root is listed with why it cannot be used.
    assert 'leads outside the data root' in by['escape']['error']
    assert by['escape']['files'] == []


@pytest.mark.parametrize('name', ['tiny', 'tinygz', 'alias'])
def test_own_root_samples_are_the_file_bytes(own_root, name):
    for split, (n, h, w) in TINY.items():
        for i in range(n):
            s = own_root.client.get_json(sample_path(name, i),
                                         params={'split': split})
            assert s['label'] == (i * 3) % 5
            assert (s['height'], s['width'], s['channels']) == (h, w, 1)
            assert s['pixels'] == [tiny_pixel(split, i, k)
                                   for k in range(h * w)]
        expect_error(own_root.client.get(sample_path(name, n),
                                         params={'split': split}),
                     404, 'not_found')


@pytest.mark.parametrize('name,status,says', [
    ('escape', 404, 'leads outside the data root'),
    ('empty', 404, "unknown dataset 'empty'"),
    ('notes.txt', 404, "unknown dataset 'notes.txt'"),
    ('.hidden', 404, 'not a plain name'),
    ('broken', 500, 'not an IDX unsigned-byte file'),
    ('short', 500, '10 labels for 11 images')])
def test_own_root_refusals(own_root, name, status, says):
    err = expect_error(own_root.client.get(sample_path(name, 0)), status,
                       'not_found' if status == 404 else 'internal')
    assert says in err['message']


def test_datasets_list_pages_end(own_root):
    c = own_root.client
    last = c.get_json('/v1/datasets', params={'cursor': '6'})
    assert last == {'items': [], 'next_cursor': None}
    expect_error(c.get('/v1/datasets', params={'cursor': '7'}), 400,
                 'invalid_parameter', 'cursor')
