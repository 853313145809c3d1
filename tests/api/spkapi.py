# SPDX-License-Identifier: MIT
# The API tests' view of spkd: the OpenAPI contract loaded once, a checker
# that validates every response against the schema the contract gives for
# its route, method and status, and an HTTP client that runs it on every
# response it receives.
import functools
import json
import os
import re
import urllib.parse

import jsonschema
import requests
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SPEC_PATH = os.path.join(REPO, 'api-spec', 'openapi.yaml')
METHODS = ('get', 'put', 'post', 'delete', 'options', 'head', 'patch',
           'trace')


class ContractError(AssertionError):
    """A response that api-spec/openapi.yaml does not allow."""


@functools.lru_cache(maxsize=None)
def load_spec():
    """Returns the parsed OpenAPI document, read once per session."""
    with open(SPEC_PATH, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _pointer(doc, ref):
    """Follows a local JSON pointer such as '#/components/schemas/Job'."""
    if not ref.startswith('#/'):
        raise ContractError(f'only local $refs are used, not {ref}')
    node = doc
    for part in ref[2:].split('/'):
        part = part.replace('~1', '/').replace('~0', '~')
        node = node[part]
    return node


def _deref(doc, node):
    """Returns node, or what its $ref names (OpenAPI objects, not schemas)."""
    while isinstance(node, dict) and '$ref' in node:
        node = _pointer(doc, node['$ref'])
    return node


_VALIDATORS = {}


def _make_validator(schema):
    """A Draft 2020-12 validator whose $refs resolve inside the spec.

    Debian 12's jsonschema (4.10) resolves through RefResolver with the
    whole spec as the referring document; newer releases through a
    referencing registry holding it."""
    key = json.dumps(schema, sort_keys=True)
    if key in _VALIDATORS:
        return _VALIDATORS[key]
    doc = load_spec()
    cls = jsonschema.Draft202012Validator
    try:
        import referencing
        from referencing.jsonschema import DRAFT202012
    except ImportError:
        resolver = jsonschema.RefResolver(base_uri='', referrer=doc)
        validator = cls(schema, resolver=resolver)
    else:
        res = referencing.Resource(contents=doc, specification=DRAFT202012)
        registry = referencing.Registry().with_resource('spkd:openapi', res)
        validator = cls(_rebase(schema), registry=registry)
    _VALIDATORS[key] = validator
    return validator


def _rebase(schema):
    """Points local '#/...' refs at the registered spec document."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == '$ref' and isinstance(v, str) and v.startswith('#/'):
                out[k] = 'spkd:openapi' + v
            else:
                out[k] = _rebase(v)
        return out
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def schema_errors(schema, instance):
    """Lists the messages of every way instance breaks schema."""
    v = _make_validator(schema)
    errs = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
    return ['/'.join(str(p) for p in e.absolute_path) + ': ' + e.message
            for e in errs]


def component_schema(name):
    """The schema components/schemas/NAME, as a $ref schema."""
    if name not in load_spec()['components']['schemas']:
        raise ContractError(f'no schema {name} in the spec')
    return {'$ref': f'#/components/schemas/{name}'}


def jobspec_errors(spec):
    """The reasons the contract's JobSpec refuses spec (empty: accepted)."""
    return schema_errors(component_schema('JobSpec'), spec)


def _template_regex(template):
    parts = []
    for seg in template.strip('/').split('/'):
        parts.append('[^/]+' if re.fullmatch(r'\{[^}]+\}', seg)
                     else re.escape(seg))
    return re.compile('^/' + '/'.join(parts) + '$')


def match_route(path):
    """Returns the spec's path template that serves path, or None.

    Literal segments win over templated ones. Paths outside /v1 and
    /healthz are static files: the spec's '/{file}' entry stands for all of
    them, whatever their depth."""
    paths = load_spec()['paths']
    under_v1 = path == '/v1' or path.startswith('/v1/')
    best, best_literal = None, -1
    for template in paths:
        if template == '/':
            if path == '/':
                return '/'
            continue
        if template == '/{file}' and under_v1:
            continue
        if not _template_regex(template).match(path):
            continue
        literal = sum(1 for s in template.split('/') if s and '{' not in s)
        if literal > best_literal:
            best, best_literal = template, literal
    if best is None and path != '/' and '/{file}' in paths and not under_v1:
        best = '/{file}'
    return best


def _media_type(resp):
    ctype = resp.headers.get('Content-Type', '')
    return ctype.split(';')[0].strip().lower()


def _pick_content(content, mtype):
    if mtype in content:
        return content[mtype]
    major = mtype.split('/')[0] + '/*'
    if major in content:
        return content[major]
    return content.get('*/*')


def _check_headers(spec, resp_spec, resp, where):
    for name, hdr in (resp_spec.get('headers') or {}).items():
        hdr = _deref(spec, hdr)
        value = resp.headers.get(name)
        if value is None:
            if hdr.get('required'):
                raise ContractError(f'{where}: header {name} is missing')
            continue
        errs = schema_errors(hdr.get('schema', {}), value)
        if errs:
            raise ContractError(f'{where}: header {name}={value!r}: {errs}')


def _check_body(resp_spec, resp, where):
    content = resp_spec.get('content')
    if not content:
        if resp.content:
            raise ContractError(f'{where}: the spec gives no body, got '
                                f'{resp.content[:200]!r}')
        return
    mtype = _media_type(resp)
    media = _pick_content(content, mtype)
    if media is None:
        raise ContractError(f'{where}: content type {mtype!r} is not one of '
                            f'{sorted(content)}')
    if mtype != 'application/json':
        return
    try:
        body = json.loads(resp.content)
    except ValueError as e:
        raise ContractError(f'{where}: body is not JSON ({e}): '
                            f'{resp.content[:200]!r}') from None
    errs = schema_errors(media.get('schema', {}), body)
    if errs:
        raise ContractError(f'{where}: body breaks the schema:\n  ' +
                            '\n  '.join(errs[:20]) +
                            f'\nbody: {json.dumps(body)[:2000]}')


def _check_allow(path_item, resp, where):
    allowed = {m.upper() for m in path_item if m in METHODS}
    header = resp.headers.get('Allow', '')
    got = {m.strip().upper() for m in header.split(',') if m.strip()}
    extra = got - allowed - ({'HEAD', 'OPTIONS'} if 'GET' in allowed
                             else {'OPTIONS'})
    if not allowed <= got or extra:
        raise ContractError(f'{where}: Allow {header!r}, the spec lists '
                            f'{sorted(allowed)}')


def check_response(method, url, resp, unrouted=False):
    """Raises ContractError unless the spec allows resp to method url.

    With unrouted, the caller states that no route serves url: the spec
    must indeed have none, and the answer must be its NotFound response."""
    spec = load_spec()
    path = urllib.parse.urlsplit(url).path
    where = f'{method.upper()} {path} -> {resp.status_code}'
    template = match_route(path)
    if unrouted:
        if template is not None:
            raise ContractError(f'{where}: the spec routes it to {template}')
        resp_spec = _deref(spec, spec['components']['responses']['NotFound'])
        if resp.status_code != 404:
            raise ContractError(f'{where}: an unknown route must answer 404')
        _check_body(resp_spec, resp, where)
        return
    if template is None:
        raise ContractError(f'{where}: no path of the spec matches {path}')
    path_item = _deref(spec, spec['paths'][template])
    where = f'{method.upper()} {template} -> {resp.status_code}'
    op = path_item.get(method.lower())
    if op is None:
        if resp.status_code != 405:
            raise ContractError(f'{where}: the spec has no {method.upper()} '
                                f'for {template}')
        resp_spec = _deref(spec,
                           spec['components']['responses']['MethodNotAllowed'])
        _check_headers(spec, resp_spec, resp, where)
        _check_allow(path_item, resp, where)
        _check_body(resp_spec, resp, where)
        return
    resp_spec = op['responses'].get(str(resp.status_code))
    if resp_spec is None:
        raise ContractError(f'{where}: status {resp.status_code} is not in '
                            f'the spec (body {resp.content[:300]!r})')
    resp_spec = _deref(spec, resp_spec)
    _check_headers(spec, resp_spec, resp, where)
    _check_body(resp_spec, resp, where)


def check_request_body(method, url, body):
    """Raises ContractError when body breaks the operation's request schema."""
    spec = load_spec()
    path = urllib.parse.urlsplit(url).path
    template = match_route(path)
    op = spec['paths'].get(template, {}).get(method.lower(), {}) \
        if template else {}
    rb = _deref(spec, op.get('requestBody') or {})
    media = (rb.get('content') or {}).get('application/json')
    if media is None:
        return
    errs = schema_errors(media.get('schema', {}), body)
    if errs:
        raise ContractError(f'{method.upper()} {template}: the daemon '
                            f'accepted a body the spec refuses: {errs}')


class ApiClient:
    """Talks to one daemon; every response is checked against the spec."""

    def __init__(self, base_url, daemon=None):
        self.base_url = base_url.rstrip('/')
        self.daemon = daemon
        self.session = requests.Session()

    def request(self, method, path, *, json_body=None, data=None,
                params=None, headers=None, unrouted=False, timeout=30):
        """Sends one request and returns the checked response.

        json_body is encoded as JSON; data is sent as is (bytes or str)."""
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body)
        if data is not None:
            hdrs.setdefault('Content-Type', 'application/json')
        resp = self.session.request(method, self.base_url + path,
                                    params=params, data=data, headers=hdrs,
                                    timeout=timeout, allow_redirects=False)
        check_response(method, resp.url, resp, unrouted=unrouted)
        if (method.upper() == 'POST' and resp.status_code == 201 and
                json_body is not None):
            check_request_body(method, resp.url, json_body)
        return resp

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, **kw):
        return self.request('POST', path, **kw)

    def put(self, path, **kw):
        return self.request('PUT', path, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)

    def get_json(self, path, status=200, **kw):
        """GETs path, asserts the status and returns the decoded body."""
        resp = self.get(path, **kw)
        assert resp.status_code == status, \
            f'GET {path}: {resp.status_code} {resp.text[:500]}'
        return resp.json()

    def get_all(self, path, limit=None, params=None):
        """Follows next_cursor from the first page to the last; returns the
        list of pages."""
        params = dict(params or {})
        if limit is not None:
            params['limit'] = limit
        pages = []
        while True:
            page = self.get_json(path, params=params)
            pages.append(page)
            assert len(pages) < 100000, 'pagination does not end'
            if page['next_cursor'] is None:
                return pages
            params['cursor'] = page['next_cursor']

    def jobs(self):
        """Every job, newest first, over all pages."""
        out = []
        for page in self.get_all('/v1/jobs', limit=1000):
            out.extend(page['items'])
        return out

    def submit(self, spec):
        """POSTs a spec that must be accepted; returns the job object."""
        resp = self.post('/v1/jobs', json_body=spec)
        assert resp.status_code == 201, \
            f'POST /v1/jobs: {resp.status_code} {resp.text[:500]}'
        job = resp.json()
        assert resp.headers['Location'] == f"/v1/jobs/{job['id']}"
        return job


def expect_error(resp, status, code, field=None):
    """Asserts resp is an error answer with that status, code and field."""
    assert resp.status_code == status, \
        f'expected {status} {code}, got {resp.status_code}: {resp.text[:500]}'
    err = resp.json()['error']
    assert err['code'] == code, err
    assert err['field'] == field, err
    assert err['message'].strip(), err
    return err
