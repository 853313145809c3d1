// SPDX-License-Identifier: MIT
// The jobs page: every job with its state, stage, progress and test
// accuracies, refreshed every two seconds from GET /v1/jobs without reloading;
// cancel buttons for queued and running jobs; and a form that submits a job
// spec and shows the API's validation error next to the field it names.

import { api, h, pct, navigate, errorText, ApiError } from './app.js';

const POLL_MS = 2000;

// What the form holds at first: a small job that finishes in seconds.
const TEMPLATE = {
  name: 'fmnist-quick', seed: 1, threads: 2,
  dataset: {
    name: 'fashion-mnist', limit: 6000, validation_fraction: 0.1,
    label_noise: { kind: 'symmetric', rate: 0.4, seed: 7 },
  },
  optimizer: {
    kind: 'sgd', lr: 0.05, momentum: 0.9, weight_decay: 5e-4,
    batch_size: 128, schedule: 'cosine',
  },
  spl: {
    model: 'mlp', epochs: 4, warmup_epochs: 2,
    optimizer: { schedule: 'constant' },
    pace: { kind: 'fraction', start: 0.5, end: 0.8 },
  },
  teachers: [{ model: 'mlp', epochs: 3 }],
  student: { model: 'mlp', epochs: 4, kd: { alpha: 0.7, temperature: 2 } },
  baseline: { model: 'mlp', epochs: 4 },
};

const COLUMNS = [
  ['id', 'Id'], ['name', 'Name'], ['state', 'State'], ['stage', 'Stage'],
  ['progress', 'Progress'], ['student', 'Student test'],
  ['baseline', 'Baseline test'], ['created', 'Submitted'], ['actions', ''],
];

// Renders the jobs page into main; returns the function that stops its
// polling.
export function renderJobs(main) {
  document.title = 'spkd jobs';
  const status = h('p', { class: 'muted', id: 'jobs-status',
    text: 'Loading…' });
  const body = h('tbody');
  main.append(
    h('h1', { text: 'Jobs' }), status,
    h('div', { class: 'table-wrap' }, h('table', { id: 'jobs-table' },
      h('thead', {}, h('tr', {}, COLUMNS.map(([key, title]) =>
        h('th', { 'data-col': key, text: title })))),
      body)),
    submitForm());
  const rows = new Map();
  let timer = null;
  const poll = async () => {
    await refresh(body, rows, status);
    if (main.isConnected) {
      timer = setTimeout(poll, POLL_MS);
    }
  };
  poll();
  return () => clearTimeout(timer);
}

async function refresh(body, rows, status) {
  try {
    const page = await api('/v1/jobs?limit=100');
    showJobs(body, rows, page.items);
    const more = page.next_cursor ? ' (the newest 100)' : '';
    status.textContent = `${page.items.length} jobs${more}, updated ` +
      new Date().toLocaleTimeString();
    status.classList.remove('error');
  } catch (e) {
    status.textContent = errorText(e);
    status.classList.add('error');
  }
}

// Updates the table in place so buttons and scroll stay put: one row per
// job, newest first, rows of vanished jobs removed.
function showJobs(body, rows, jobs) {
  const seen = new Set();
  body.querySelector('tr:not([data-job-id])')?.remove();
  for (const job of jobs) {
    let row = rows.get(job.id);
    if (!row) {
      row = newRow(job.id);
      rows.set(job.id, row);
    }
    fillRow(row, job);
    body.append(row);
    seen.add(job.id);
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  if (jobs.length === 0) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: COLUMNS.length,
      class: 'muted', text: 'No jobs yet: submit one below.' })));
  }
}

function newRow(id) {
  const row = h('tr', { 'data-job-id': id });
  for (const [key] of COLUMNS) {
    row.append(h('td', { 'data-col': key }));
  }
  return row;
}

function fillRow(row, job) {
  const cell = (key) => row.querySelector(`[data-col=${key}]`);
  setChildren(cell('id'), h('a', { href: `/jobs/${job.id}`,
    text: `#${job.id}` }));
  setChildren(cell('name'), h('a', { href: `/jobs/${job.id}`,
    text: job.name ?? '(unnamed)' }));
  cell('state').textContent = job.state;
  cell('state').className = `state ${job.state}`;
  cell('state').title = job.error ?? '';
  cell('stage').textContent = stageText(job);
  setChildren(cell('progress'), progress(job));
  cell('student').textContent = pct(job.stages.student?.test_acc);
  cell('baseline').textContent = baselineText(job);
  cell('created').textContent = new Date(job.created_at).toLocaleString();
  setChildren(cell('actions'), cancelButton(job));
}

// Replaces an element's children only when their text changed, so a focused
// button survives the refresh.
function setChildren(el, node) {
  const text = node ? node.outerHTML : '';
  if (el.dataset.html !== text) {
    el.replaceChildren(...(node ? [node] : []));
    el.dataset.html = text;
  }
}

// The stage running now (or last run), its epoch and test accuracy.
function stageText(job) {
  const s = job.stages[job.stage];
  if (!s) {
    return '–';
  }
  const acc = s.test_acc === null ? '' : ` · ${pct(s.test_acc)}`;
  return `${job.stage} ${job.epoch}/${s.epochs}${acc}`;
}

function progress(job) {
  let done = 0;
  let total = 0;
  for (const s of Object.values(job.stages)) {
    done += s.completed_epochs;
    total += s.epochs;
  }
  return h('span', { class: 'progress' },
    h('progress', { max: total, value: done }), ` ${done}/${total}`);
}

function baselineText(job) {
  const b = job.stages.baseline?.test_acc;
  const s = job.stages.student?.test_acc;
  if (b === null || b === undefined) {
    return '–';
  }
  if (s === null || s === undefined) {
    return pct(b);
  }
  const diff = 100 * (s - b);
  return `${pct(b)} (student ${diff >= 0 ? '+' : ''}${diff.toFixed(1)})`;
}

function cancelButton(job) {
  if (job.state !== 'queued' && job.state !== 'running') {
    return null;
  }
  return h('button', {
    'data-action': 'cancel', 'data-job-id': job.id, type: 'button',
    disabled: job.cancel_requested,
    text: job.cancel_requested ? 'Cancelling…' : 'Cancel',
    onclick: (ev) => cancelJob(job.id, ev.target),
  });
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    await api(`/v1/jobs/${id}/cancel`, { method: 'POST' });
  } catch (e) {
    button.disabled = false;
    button.title = errorText(e);
    button.closest('td').append(h('span', { class: 'error',
      text: ` ${e.message}` }));
  }
}

// The submit form: the spec as editable JSON, its errors under it.
function submitForm() {
  const text = h('textarea', { id: 'submit-json', rows: 14,
    spellcheck: 'false', 'aria-label': 'Job spec (JSON)',
    value: JSON.stringify(TEMPLATE, null, 2) });
  const errors = h('div', { class: 'field-errors', 'aria-live': 'polite' });
  const button = h('button', { id: 'submit-button', type: 'submit',
    text: 'Submit job' });
  const form = h('form', { class: 'submit', onsubmit: (ev) => {
    ev.preventDefault();
    submit(text, errors, button);
  } },
  h('h2', { text: 'Submit a job' }),
  h('p', { class: 'muted', text: 'Edit the spec (see api-spec/openapi.yaml ' +
    'for every key); the daemon checks it and says which field it refuses.' }),
  text, errors, h('div', { class: 'buttons' }, button));
  return form;
}

async function submit(text, errors, button) {
  errors.replaceChildren();
  text.classList.remove('invalid');
  button.disabled = true;
  try {
    const job = await api('/v1/jobs', {
      method: 'POST', body: text.value,
      headers: { 'Content-Type': 'application/json' },
    });
    navigate(`/jobs/${job.id}`);
  } catch (e) {
    showSubmitError(text, errors, e);
  } finally {
    button.disabled = false;
  }
}

// Shows the API's message as it came (the stylesheet puts the field's path
// before it) and selects the field, or the place a JSON error names.
function showSubmitError(text, errors, e) {
  const field = e instanceof ApiError ? e.field ?? '_' : '_';
  const message = e instanceof ApiError ? e.message : errorText(e);
  errors.append(h('p', { class: 'field-error', 'data-field': field,
    text: message }));
  text.classList.add('invalid');
  const where = /line (\d+), column (\d+)/.exec(message);
  if (field !== '_') {
    selectField(text, field);
  } else if (where) {
    const lines = text.value.split('\n').slice(0, Number(where[1]) - 1);
    const at = lines.reduce((n, l) => n + l.length + 1, 0) +
      Number(where[2]) - 1;
    showRange(text, at, at);
  }
}

// Selects the key a dotted path (`spl.pace.end`, `teachers[0].epochs`)
// names in the textarea, finding each name in turn after the previous one,
// so the refused field is shown where it is written.
function selectField(text, field) {
  const names = field.split(/[.[\]]+/).filter((p) => p && !/^\d+$/.test(p));
  let at = 0;
  let found = -1;
  for (const name of names) {
    found = text.value.indexOf(`"${name}"`, at);
    if (found < 0) {
      return;
    }
    at = found + name.length + 2;
  }
  if (found >= 0) {
    showRange(text, found, at);
  }
}

// Selects text[from, to) in the textarea and scrolls it into view.
function showRange(text, from, to) {
  text.focus({ preventScroll: true });
  text.setSelectionRange(from, to);
  const line = text.value.slice(0, from).split('\n').length - 1;
  const height = parseFloat(getComputedStyle(text).lineHeight) || 18;
  text.scrollTop = Math.max(0, (line - 3) * height);
}
