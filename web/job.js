// SPDX-License-Identifier: MIT
// The job page: the job's state and stages, per-stage charts of its epoch
// metrics kept live from the job's event stream, the data map and hardest
// samples of its finished stages (datamap.js, sample.js), download links,
// a sample index box and the job's log. The stream replays the job's
// history, so every update is keyed by stage and epoch and may repeat.

import {
  api, h, pct, navigate, errorText, stageNames, hasNoise,
} from './app.js';
import { lineChart, PALETTE } from './charts.js';
import { dataMapSection } from './datamap.js';
import { hardestSection, gotoSample } from './sample.js';

const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const REFRESH_MS = 1000;

// Renders job params.id into main; returns the function that closes its
// event stream and timers.
export function renderJob(main, params) {
  const page = {
    id: params.id, main, job: null, metrics: new Map(), charts: [],
    ready: new Set(), stream: null, drawQueued: false, refreshTimer: null,
    parts: null,
  };
  document.title = `spkd job ${page.id}`;
  start(page);
  return () => leave(page);
}

async function start(page) {
  try {
    page.job = await api(`/v1/jobs/${page.id}`);
    await loadMetrics(page);
  } catch (e) {
    page.main.append(h('h1', { text: `Job #${page.id}` }),
      h('p', { class: 'error', text: errorText(e) }));
    return;
  }
  if (!page.main.isConnected) {
    return;
  }
  build(page);
  noteReadyStages(page);
  showJob(page);
  drawCharts(page);
  follow(page);
}

function leave(page) {
  page.stream?.close();
  clearTimeout(page.refreshTimer);
  for (const c of page.charts) {
    c.chart.destroy();
  }
  page.parts?.datamap.destroy();
}

// Reads every stored epoch of every stage, a page at a time.
async function loadMetrics(page) {
  let cursor = null;
  do {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res = await api(`/v1/jobs/${page.id}/metrics?limit=1000${q}`);
    for (const m of res.items) {
      storeEpoch(page, m);
    }
    cursor = res.next_cursor;
  } while (cursor);
}

function storeEpoch(page, m) {
  if (!page.metrics.has(m.stage)) {
    page.metrics.set(m.stage, new Map());
  }
  page.metrics.get(m.stage).set(m.epoch, m);
}

// Lays the page out once; later updates fill the parts it keeps.
function build(page) {
  const job = page.job;
  const parts = {
    state: h('span', { id: 'job-state', class: `state ${job.state}` }),
    title: h('h1', {}),
    meta: h('p', { class: 'muted' }),
    error: h('p', { class: 'error' }),
    actions: h('span', { class: 'actions' }),
    live: h('span', { id: 'stream-status', class: 'muted' }),
    stages: h('tbody'),
    log: h('ol', { class: 'log' }),
    noise: h('p', { class: 'muted' }),
    datamap: dataMapSection(job, (i) => openSample(page, i)),
    hardest: hardestSection(job),
  };
  page.parts = parts;
  page.main.append(
    h('div', { class: 'job-head' }, parts.title, parts.state, parts.actions,
      parts.live),
    parts.meta, parts.error,
    stageTable(parts.stages), downloads(job), gotoSample(page.id),
    h('section', { class: 'charts' }, h('h2', { text: 'Training curves' }),
      parts.noise, chartSections(page)),
    parts.datamap.el, parts.hardest.el,
    h('details', { class: 'log-box' }, h('summary', { text: 'Log' }),
      parts.log),
    h('details', {}, h('summary', { text: 'Spec' }),
      h('pre', { text: JSON.stringify(job.spec, null, 2) })));
  makeCharts(page);
}

function stageTable(body) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'stage-table' },
    h('thead', {}, h('tr', {}, [['stage', 'Stage'], ['epochs', 'Epochs'],
      ['last', 'Last test acc'], ['best', 'Best test acc'],
      ['model', 'Model']].map(([col, t]) => h('th', { 'data-col': col,
      text: t })))),
    body));
}

function downloads(job) {
  const link = (format) => h('a', {
    'data-download': `export-${format}`, download: true,
    href: `/v1/jobs/${job.id}/export?format=${format}`,
    text: `job-${job.id}.${format}`,
  });
  return h('p', { class: 'downloads' }, 'Export every sample\'s records: ',
    link('jsonl'), ' · stage dynamics: ', link('csv'));
}

function openSample(page, index) {
  navigate(`/jobs/${page.id}/samples/${index}`);
}

// The chart groups: each stage alone, except the baseline, drawn beside the
// student in the same charts (dashed) so the two compare at a glance.
function chartGroups(job) {
  const names = stageNames(job);
  const groups = names.filter((s) => s !== 'student' && s !== 'baseline')
    .map((s) => ({ key: s, stages: [s] }));
  groups.push(job.stages.baseline
    ? { key: 'student+baseline', stages: ['student', 'baseline'] }
    : { key: 'student', stages: ['student'] });
  return groups;
}

// What each chart of a group draws: per stage a series for each metric key.
function chartKinds(job) {
  const kinds = [
    { chart: 'train_loss', title: 'Train loss', y: 'auto',
      keys: [['train_loss', 'loss']] },
    { chart: 'accuracy', title: 'Accuracy', y: 'fraction-auto',
      keys: [['train_acc', 'train'], ['val_acc', 'val'],
        ['test_acc', 'test']] },
    { chart: 'easy_fraction', title: 'Easy-set fraction (pace)',
      y: 'fraction', keys: [['easy_fraction', 'easy']], step: true },
  ];
  if (hasNoise(job)) {
    kinds.push({ chart: 'detection', title: 'Noise detection',
      y: 'fraction', keys: [['noise_precision', 'precision'],
        ['noise_recall', 'recall'], ['noise_auroc', 'AUROC']] });
  }
  return kinds;
}

function chartSections(page) {
  return chartGroups(page.job).map((g) => h('section',
    { class: 'stage-charts', 'data-group': g.key },
    h('h3', { text: g.stages.join(' + ') }),
    h('div', { class: 'chart-grid' }, chartKinds(page.job).map((k) =>
      h('div', { class: 'chart', 'data-chart': k.chart,
        'data-stage': g.key })))));
}

// Fills each chart container with its uPlot chart and remembers which
// stage and metric key every series reads.
function makeCharts(page) {
  const kinds = chartKinds(page.job);
  for (const g of chartGroups(page.job)) {
    for (const k of kinds) {
      const el = page.main.querySelector(
        `.chart[data-chart="${k.chart}"][data-stage="${g.key}"]`);
      const series = seriesOf(g, k);
      const chart = lineChart(el, { title: k.title, y: k.y,
        series: series.map((s) => s.look) });
      page.charts.push({ chart, series });
    }
  }
}

function seriesOf(group, kind) {
  const out = [];
  group.stages.forEach((stage, si) => {
    kind.keys.forEach(([key, name], ki) => {
      const label = group.stages.length > 1 ? `${stage} ${name}` : name;
      out.push({ stage, key, look: { label, color: PALETTE[ki],
        dash: si > 0 ? [6, 4] : undefined, step: kind.step } });
    });
  });
  return out;
}

// Redraws every chart at the next frame, once however many epochs came.
function drawCharts(page) {
  if (page.drawQueued) {
    return;
  }
  page.drawQueued = true;
  requestAnimationFrame(() => {
    page.drawQueued = false;
    if (!page.main.isConnected) {
      return;
    }
    for (const c of page.charts) {
      c.chart.draw(c.series.map((s) => column(page, s.stage, s.key)));
    }
  });
}

function column(page, stage, key) {
  const out = new Map();
  for (const [epoch, m] of page.metrics.get(stage) ?? []) {
    out.set(epoch, m[key] ?? null);
  }
  return out;
}

// Follows the job's event stream. EventSource reconnects by itself with
// Last-Event-ID; the daemon answers a finished job's reconnect with 204,
// which ends the retries.
function follow(page) {
  const live = page.parts.live;
  const stream = new EventSource(`/v1/jobs/${page.id}/events`);
  page.stream = stream;
  stream.onopen = () => {
    live.textContent = '● live';
  };
  stream.onerror = () => {
    live.textContent = stream.readyState === EventSource.CLOSED
      ? '' : '○ reconnecting…';
  };
  stream.addEventListener('epoch', (ev) => onEpoch(page, JSON.parse(ev.data)));
  stream.addEventListener('state', (ev) => onState(page, JSON.parse(ev.data)));
  stream.addEventListener('log', (ev) => onLog(page, JSON.parse(ev.data)));
  stream.addEventListener('noise_estimate', (ev) => {
    page.parts.noise.textContent = 'The spl stage estimates the label ' +
      `noise rate at ${pct(JSON.parse(ev.data).rate)}.`;
  });
}

function onEpoch(page, m) {
  storeEpoch(page, m);
  drawCharts(page);
  refreshSoon(page);
}

function onState(page, ev) {
  page.parts.state.textContent = ev.state;
  page.parts.state.className = `state ${ev.state}`;
  if (TERMINAL.includes(ev.state)) {
    page.stream.close();
    page.parts.live.textContent = '';
  }
  refreshSoon(page);
}

function onLog(page, ev) {
  page.parts.log.append(h('li', { class: ev.level, text: ev.message }));
  const done = /^stage (\w+): training dynamics recorded/.exec(ev.message);
  if (done) {
    page.ready.add(done[1]);
    showReadyStages(page);
  }
}

// Reads the job again a moment after the latest event, so a burst of
// events costs one request.
function refreshSoon(page) {
  clearTimeout(page.refreshTimer);
  page.refreshTimer = setTimeout(async () => {
    try {
      page.job = await api(`/v1/jobs/${page.id}`);
      noteReadyStages(page);
      showJob(page);
    } catch (e) {
      page.parts.error.textContent = errorText(e);
    }
  }, REFRESH_MS);
}

// A stage that ran all its epochs has its dynamics (or will in a moment:
// the log event says when), except a stage still running in a live job.
function noteReadyStages(page) {
  const job = page.job;
  for (const [name, s] of Object.entries(job.stages)) {
    const running = job.state === 'running' && job.stage === name;
    if (s.completed_epochs >= s.epochs && (!running ||
        TERMINAL.includes(job.state))) {
      page.ready.add(name);
    }
  }
  showReadyStages(page);
}

function showReadyStages(page) {
  const ready = stageNames(page.job).filter((s) => page.ready.has(s));
  page.parts.datamap.setStages(ready);
  page.parts.hardest.setStages(ready);
}

// Writes the job's header and stage table from page.job.
function showJob(page) {
  const job = page.job;
  const p = page.parts;
  p.title.textContent = `Job #${job.id}${job.name ? ` ${job.name}` : ''}`;
  p.state.textContent = job.state;
  p.state.className = `state ${job.state}`;
  p.meta.textContent = metaText(job);
  p.error.textContent = job.error ?? '';
  p.actions.replaceChildren(...cancelButton(page));
  p.stages.replaceChildren(...stageNames(job).map((s) => stageRow(page, s)));
}

function metaText(job) {
  const t = (x) => x ? new Date(x).toLocaleString() : null;
  const parts = [`submitted ${t(job.created_at)}`];
  if (job.started_at) {
    parts.push(`started ${t(job.started_at)}`);
  }
  if (job.finished_at) {
    parts.push(`finished ${t(job.finished_at)}`);
  }
  if (job.stage && !TERMINAL.includes(job.state)) {
    parts.push(`now ${job.stage} epoch ${job.epoch}`);
  }
  const noise = job.spec.dataset.label_noise;
  if (hasNoise(job)) {
    parts.push(`${noise.kind ?? 'symmetric'} label noise ${pct(noise.rate)}`);
  }
  return `${parts.join(' · ')} · dataset ${job.spec.dataset.name}`;
}

function cancelButton(page) {
  const job = page.job;
  if (TERMINAL.includes(job.state)) {
    return [];
  }
  const button = h('button', { type: 'button', 'data-action': 'cancel',
    disabled: job.cancel_requested,
    text: job.cancel_requested ? 'Cancelling…' : 'Cancel job' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      page.job = await api(`/v1/jobs/${job.id}/cancel`, { method: 'POST' });
      showJob(page);
    } catch (e) {
      button.disabled = false;
      page.parts.error.textContent = errorText(e);
    }
  });
  return [button];
}

function stageRow(page, stage) {
  const s = page.job.stages[stage];
  const tests = [...(page.metrics.get(stage)?.values() ?? [])]
    .map((m) => m.test_acc).filter((x) => x !== null);
  const best = tests.length ? Math.max(...tests) : null;
  return h('tr', { 'data-stage': stage },
    h('td', { text: stage }),
    h('td', {}, h('progress', { max: s.epochs, value: s.completed_epochs }),
      ` ${s.completed_epochs}/${s.epochs}`),
    h('td', { text: pct(s.test_acc) }),
    h('td', { 'data-col': 'best', text: best === null ? '–' : pct(best) }),
    h('td', {}, modelLink(page.job, stage)));
}

// A link to the stage's model once it has trained an epoch; a teacher
// loaded from a checkpoint has none to give.
function modelLink(job, stage) {
  const s = job.stages[stage];
  const index = stage === 'teacher' ? 0 : Number(stage.slice(7));
  const loaded = stage.startsWith('teacher') &&
    job.spec.teachers?.[index]?.checkpoint;
  if (s.completed_epochs === 0 || loaded) {
    return '–';
  }
  return h('a', { 'data-download': `model-${stage}`, download: true,
    href: `/v1/jobs/${job.id}/models/${stage}`,
    text: `job-${job.id}-${stage}.ckpt` });
}
