// SPDX-License-Identifier: MIT
// The compare page: a picker of jobs kept in the address (?jobs=ID,ID), a
// table of each picked job's per-stage test accuracies, student minus
// baseline and the self-paced stage's noise detection, and one chart of
// every picked job's test accuracy per epoch. Jobs still running are
// reread every few seconds.

import { api, h, pct, num, stageNames, errorText } from './app.js';
import { lineChart, PALETTE } from './charts.js';

const POLL_MS = 5000;

// Line styles that tell a job's stages apart on the shared chart; colours
// tell the jobs apart.
const STAGE_DASH = {
  spl: undefined, teacher: [2, 3], student: [9, 4], baseline: [4, 2, 1, 2],
};

const DETECTION = [
  ['auroc', 'AUROC', 'noise_auroc'],
  ['precision', 'Precision', 'noise_precision'],
  ['recall', 'Recall', 'noise_recall'],
];

// Renders the compare page into main; params.query holds the address's
// query. Returns the function that stops its polling.
export async function renderCompare(main, params) {
  document.title = 'spkd compare';
  const state = {
    ids: pickedIds(params.query), loaded: new Map(), chart: null,
    timer: null, results: h('div', { class: 'compare-results' }),
  };
  const picker = h('fieldset', { class: 'job-picker' },
    h('legend', { text: 'Jobs to compare' }),
    h('p', { class: 'muted', text: 'Loading the jobs…' }));
  main.append(h('h1', { text: 'Compare jobs' }), picker, state.results);
  fillPicker(picker, state, main);
  await showResults(state, main);
  return () => leave(state);
}

function leave(state) {
  clearTimeout(state.timer);
  state.chart?.destroy();
  state.chart = null;
}

// The job ids of ?jobs=, ascending, without repeats or non-numbers.
function pickedIds(query) {
  const ids = (query.get('jobs') ?? '').split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  return [...new Set(ids)].sort((a, b) => a - b);
}

// Lists the newest jobs, and any picked job older than them, as
// checkboxes; ticking one updates the address and the results.
async function fillPicker(picker, state, main) {
  let jobs = [];
  try {
    jobs = (await api('/v1/jobs?limit=100')).items;
  } catch (e) {
    picker.lastChild.replaceWith(h('p', { class: 'error',
      text: errorText(e) }));
    return;
  }
  const listed = new Set(jobs.map((j) => j.id));
  const older = state.ids.filter((id) => !listed.has(id))
    .map((id) => ({ id, name: null, state: '' }));
  const onchange = () => pick(picker, state, main);
  picker.lastChild.replaceWith(h('div', { class: 'pick-list' },
    [...jobs, ...older].map((job) => pickBox(job, state.ids, onchange))));
}

function pickBox(job, ids, onchange) {
  return h('label', { class: 'pick' },
    h('input', { type: 'checkbox', 'data-pick-job': job.id,
      checked: ids.includes(job.id), onchange }),
    ` #${job.id} ${job.name ?? ''} `,
    h('span', { class: `state ${job.state}`, text: job.state }));
}

async function pick(picker, state, main) {
  state.ids = [...picker.querySelectorAll('input[data-pick-job]:checked')]
    .map((box) => Number(box.dataset.pickJob))
    .sort((a, b) => a - b);
  const query = state.ids.length ? `?jobs=${state.ids.join(',')}` : '';
  history.replaceState(null, '', `/compare${query}`);
  await showResults(state, main);
}

// Reads what the picked jobs need (jobs already finished only once),
// redraws the table and the chart, and rereads again later while one of
// them is still queued or running.
async function showResults(state, main) {
  clearTimeout(state.timer);
  const ids = state.ids;
  const runs = await Promise.all(ids.map((id) => loadRun(state, id)));
  if (!main.isConnected || ids !== state.ids) {
    return;
  }
  drawResults(state, runs);
  if (runs.some((r) => r.job && !finished(r.job))) {
    state.timer = setTimeout(() => showResults(state, main), POLL_MS);
  }
}

function finished(job) {
  return ['succeeded', 'failed', 'cancelled'].includes(job.state);
}

async function loadRun(state, id) {
  const kept = state.loaded.get(id);
  if (kept?.job && finished(kept.job)) {
    return kept;
  }
  let run;
  try {
    const [job, metrics] = await Promise.all([api(`/v1/jobs/${id}`),
      allMetrics(id)]);
    run = { id, job, stages: summarize(job, metrics), error: null };
  } catch (e) {
    run = { id, job: null, stages: new Map(), error: errorText(e) };
  }
  state.loaded.set(id, run);
  return run;
}

// Every metric of a job, following the pages to the last.
async function allMetrics(id) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: '1000' });
    if (cursor) {
      query.set('cursor', cursor);
    }
    const page = await api(`/v1/jobs/${id}/metrics?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

// Per stage, in pipeline order: its epochs' metrics in order, the last
// one, and the best one (see bestEpoch).
function summarize(job, metrics) {
  const stages = new Map();
  for (const stage of stageNames(job)) {
    const epochs = metrics.filter((m) => m.stage === stage)
      .sort((a, b) => a.epoch - b.epoch);
    stages.set(stage, { epochs, last: epochs.at(-1) ?? null,
      best: bestEpoch(epochs) });
  }
  return stages;
}

// The epoch a careful reader would keep: the one with the highest
// validation accuracy (the earliest of equals), or, when the job holds out
// no validation split, the one with the highest test accuracy.
function bestEpoch(epochs) {
  const withVal = epochs.filter((m) => m.val_acc !== null);
  const pool = withVal.length ? withVal : epochs;
  const key = withVal.length ? 'val_acc' : 'test_acc';
  let best = null;
  for (const m of pool) {
    if (best === null || m[key] > best[key]) {
      best = m;
    }
  }
  return best;
}

function drawResults(state, runs) {
  state.chart?.destroy();
  state.chart = null;
  if (runs.length === 0) {
    state.results.replaceChildren(h('p', { class: 'muted',
      text: 'Tick two or more jobs above to compare them.' }));
    return;
  }
  const stages = allStages(runs);
  const chartEl = h('div', { class: 'chart', 'data-chart':
    'compare-test_acc', 'data-stage': stages.join('+') });
  state.results.replaceChildren(
    h('div', { class: 'table-wrap' }, table(runs, stages)),
    h('p', { class: 'muted', text: 'Per stage: the test accuracy of the ' +
      'last epoch and, under it, of the best epoch, the one with the ' +
      'highest validation accuracy (highest test accuracy when the job ' +
      'holds out no validation split). Detection: the self-paced stage\'s ' +
      'last epoch; precision and recall of clean labels in its easy set.' }),
    h('h2', { text: 'Test accuracy per epoch' }), chartEl);
  state.chart = testAccChart(chartEl, runs);
}

// The stages of every run, in pipeline order, each named once.
function allStages(runs) {
  const names = new Set();
  for (const run of runs) {
    for (const stage of run.stages.keys()) {
      names.add(stage);
    }
  }
  return stageNames({ stages: Object.fromEntries([...names]
    .map((s) => [s, null])) });
}

function table(runs, stages) {
  const head = h('tr', {}, h('th', { text: 'Job' }),
    h('th', { text: 'State' }),
    stages.map((s) => h('th', { text: s })),
    h('th', { text: 'Student − baseline' }),
    DETECTION.map(([, title]) => h('th', { text: title })));
  return h('table', { id: 'compare-table' }, h('thead', {}, head),
    h('tbody', {}, runs.map((run) => runRow(run, stages))));
}

function runRow(run, stages) {
  const row = h('tr', { 'data-job-id': run.id },
    h('td', { 'data-col': 'job' }, h('a', { href: `/jobs/${run.id}`,
      text: `#${run.id} ${run.job?.name ?? ''}` })));
  if (!run.job) {
    row.append(h('td', { class: 'error', colspan: stages.length + 5,
      text: run.error }));
    return row;
  }
  row.append(h('td', { 'data-col': 'state', class: `state ${run.job.state}`,
    text: run.job.state }));
  for (const stage of stages) {
    row.append(stageCell(run.stages.get(stage), stage));
  }
  row.append(gapCell(run.stages), ...detectionCells(run.stages.get('spl')));
  return row;
}

// An element that shows text and keeps the raw number in data-value
// (empty when there is none) for scripts and tests.
function valueCell(col, value, text, tag = 'td') {
  return h(tag, { 'data-col': col, 'data-value': value ?? '', text });
}

// A stage's final test accuracy and, under it, the best epoch's.
function stageCell(summary, stage) {
  const last = summary?.last ?? null;
  const best = summary?.best ?? null;
  return h('td', { 'data-stage': stage },
    valueCell(`final-${stage}`, last?.test_acc, pct(last?.test_acc), 'div'),
    best ? h('small', { class: 'muted', title: `best epoch ${best.epoch} ` +
      `of ${summary.epochs.length}` }, `best e${best.epoch}: `,
    valueCell(`best-${stage}`, best.test_acc, pct(best.test_acc), 'span'))
      : null);
}

// The student's final test accuracy minus the baseline's, in percentage
// points.
function gapCell(stages) {
  const s = stages.get('student')?.last?.test_acc;
  const b = stages.get('baseline')?.last?.test_acc;
  if (s === undefined || b === undefined) {
    return valueCell('student-baseline', null, '–');
  }
  const pp = 100 * (s - b);
  return valueCell('student-baseline', s - b,
    `${pp >= 0 ? '+' : ''}${pp.toFixed(1)} pp`);
}

function detectionCells(spl) {
  const last = spl?.last ?? null;
  return DETECTION.map(([col, , key]) => valueCell(col, last?.[key],
    col === 'auroc' ? num(last?.[key]) : pct(last?.[key])));
}

// One series per run and stage: the run's colour, the stage's dash.
function testAccChart(el, runs) {
  const series = [];
  const columns = [];
  runs.forEach((run, i) => {
    for (const [stage, summary] of run.stages) {
      series.push({ label: `#${run.id} ${stage}`,
        color: PALETTE[i % PALETTE.length],
        dash: STAGE_DASH[stage.replace(/[0-9]+$/, '')] });
      columns.push(new Map(summary.epochs.map((m) => [m.epoch,
        m.test_acc])));
    }
  });
  const chart = lineChart(el, { title: 'Test accuracy', y: 'fraction-auto',
    series });
  chart.draw(columns);
  return chart;
}
