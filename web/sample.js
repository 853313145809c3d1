// SPDX-License-Identifier: MIT
// Samples as pictures: drawing a dataset sample from its pixels, the
// hardest-samples grid of a job page (paged through a finished stage's
// samples sorted by difficulty), the box that opens a sample by index, and
// the sample page: the image, its labels and its history over every stage.

import {
  api, h, num, navigate, labelName, errorText, stageNames, stageChooser,
} from './app.js';
import { lineChart, PALETTE } from './charts.js';

const PAGE_SIZE = 24;
const PIXEL_READS = 3;
const SORTS = ['confidence', 'variability', 'correctness', 'forgetting',
  'aum'];

// Reads one sample's pixels from the dataset's training file.
function fetchPixels(dataset, index) {
  return api(`/v1/datasets/${encodeURIComponent(dataset)}/samples/${index}`);
}

// Returns draw(canvas, index), which queues a sample's picture: at most
// PIXEL_READS reads at once, so the page's other requests still get through
// (the daemon inflates the file up to each sample), none for a canvas no
// longer on the page, and each index read once.
function pixelQueue(dataset) {
  const cache = new Map();
  const waiting = [];
  let running = 0;
  const read = (index) => {
    if (!cache.has(index)) {
      cache.set(index, fetchPixels(dataset, index).catch((e) => {
        cache.delete(index);
        throw e;
      }));
    }
    return cache.get(index);
  };
  const pump = () => {
    while (running < PIXEL_READS && waiting.length) {
      const { canvas, index } = waiting.shift();
      if (!canvas.isConnected) {
        continue;
      }
      running++;
      read(index).then((s) => drawPixels(canvas, s),
        () => canvas.classList.add('missing')).finally(() => {
        running--;
        pump();
      });
    }
  };
  return (canvas, index) => {
    waiting.push({ canvas, index });
    queueMicrotask(pump);
  };
}

// Draws a DatasetSample's pixels into canvas at their own size (the canvas
// takes the image's width and height; CSS may scale it): one channel as
// grey, three as RGB.
export function drawPixels(canvas, s) {
  canvas.width = s.width;
  canvas.height = s.height;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(s.width, s.height);
  const n = s.width * s.height;
  const colour = s.channels >= 3;
  for (let p = 0; p < n; p++) {
    const base = p * s.channels;
    for (let c = 0; c < 3; c++) {
      img.data[p * 4 + c] = s.pixels[base + (colour ? c : 0)];
    }
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// An input #goto-sample: typing a sample index and Enter opens its page.
export function gotoSample(jobId) {
  const input = h('input', { id: 'goto-sample', type: 'number', min: 0,
    placeholder: 'index', 'aria-label': 'Sample index' });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && /^\d+$/.test(input.value)) {
      navigate(`/jobs/${jobId}/samples/${Number(input.value)}`);
    }
  });
  return h('p', { class: 'goto' }, h('label', {}, 'Open sample ', input),
    h('span', { class: 'muted', text: ' (its dataset index, then Enter)' }));
}

// Builds the hardest-samples section of job's page. Returns { el,
// setStages(stages) }: setStages offers the finished stages and shows the
// first page of the chosen one.
export function hardestSection(job) {
  const view = {
    job, stage: null, failed: false, cursors: [null], page: 0,
    picture: pixelQueue(job.spec.dataset.name),
    grid: h('div', { id: 'hardest', class: 'sample-grid' }),
    note: h('p', { class: 'muted',
      text: 'Available when a stage has finished.' }),
    prev: h('button', { id: 'hardest-prev', type: 'button', disabled: true,
      text: '← Previous' }),
    next: h('button', { id: 'hardest-next', type: 'button', disabled: true,
      text: 'Next →' }),
    sort: h('select', { id: 'hardest-sort' }, SORTS.map((s) =>
      h('option', { value: s, text: s }))),
  };
  view.chooser = stageChooser('hardest-stage', (s) => restart(view, s));
  view.sort.addEventListener('change', () => restart(view, view.stage));
  view.prev.addEventListener('click', () => turn(view, -1));
  view.next.addEventListener('click', () => turn(view, 1));
  const el = h('section', { class: 'hardest' },
    h('h2', { text: 'Hardest samples' }),
    h('p', { class: 'controls' },
      h('label', {}, 'Stage ', view.chooser.el), ' ',
      h('label', {}, 'sorted by ', view.sort), ' ', view.prev, ' ',
      view.next),
    view.note, view.grid);
  return { el, setStages: (stages) => offerStages(view, stages) };
}

function offerStages(view, stages) {
  const pick = view.chooser.set(stages);
  if (pick) {
    restart(view, pick);
  } else if (view.failed) {
    restart(view, view.stage);
  }
}

function restart(view, stage) {
  if (!stage) {
    return;
  }
  view.stage = stage;
  view.cursors = [null];
  view.page = 0;
  showPage(view);
}

function turn(view, step) {
  view.page = Math.max(0, view.page + step);
  showPage(view);
}

async function showPage(view) {
  const { stage, page } = view;
  const sort = view.sort.value;
  const cursor = view.cursors[page];
  const q = `sort=${sort}&limit=${PAGE_SIZE}` +
    (cursor ? `&cursor=${encodeURIComponent(cursor)}` : '');
  view.prev.disabled = true;
  view.next.disabled = true;
  view.failed = false;
  try {
    const res = await api(
      `/v1/jobs/${view.job.id}/stages/${stage}/samples?${q}`);
    if (view.stage !== stage || view.page !== page) {
      return;
    }
    view.cursors[page + 1] = res.next_cursor;
    showItems(view, res, sort);
  } catch (e) {
    view.failed = view.stage === stage && view.page === page;
    view.note.textContent = e.status === 404
      ? `The ${stage} samples are not ready yet.` : errorText(e);
  }
}

function showItems(view, res, sort) {
  const from = view.page * PAGE_SIZE;
  view.note.textContent = res.total === 0 ? 'No samples.'
    : `${res.stage} samples ${from + 1}–${from + res.items.length} of ` +
      `${res.total}, hardest first by ${sort} (${res.order}), labels after ` +
      `epoch ${res.epoch ?? '–'}.`;
  view.grid.replaceChildren(...res.items.map((it) => card(view, it, sort)));
  view.prev.disabled = view.page === 0;
  view.next.disabled = !res.next_cursor;
}

// One sample of the grid: its picture (drawn once the pixels arrive), the
// observed and predicted labels and the statistic it was sorted by.
function card(view, it, sort) {
  const dataset = view.job.spec.dataset.name;
  const canvas = h('canvas', { class: 'sample-img', width: 28, height: 28,
    'data-index': it.index, 'data-label': it.observed_label,
    'data-pred': it.predicted ?? '' });
  view.picture(canvas, it.index);
  const wrong = it.predicted !== null && it.predicted !== it.observed_label;
  return h('figure', { class: 'sample-card' },
    h('a', { href: `/jobs/${view.job.id}/samples/${it.index}`,
      title: `Open sample ${it.index}` }, canvas),
    h('figcaption', {},
      h('b', { text: `#${it.index}` }), ` ${sort} ${score(it[sort])}`,
      h('br'), `label ${labelName(dataset, it.observed_label)}`,
      it.corrupted ? h('span', { class: 'bad', text: ' (corrupted)' }) : null,
      h('br'), h('span', { class: wrong ? 'bad' : null,
        text: `predicted ${it.predicted === null ? '–'
          : labelName(dataset, it.predicted)}` })));
}

// A statistic for a card: counts as they are, tiny shares in powers of
// ten so the hardest samples do not all read 0.000.
function score(v) {
  if (v === null || Number.isInteger(v)) {
    return v ?? '–';
  }
  return Math.abs(v) < 0.001 && v !== 0 ? v.toExponential(1) : num(v);
}

// Renders sample params.index of job params.id into main: its image and
// labels, its dynamics per stage and its loss, probability, weight and
// easy flag over the epochs of every stage. Returns the cleanup function.
export function renderSample(main, params) {
  const view = { main, id: params.id, index: params.index, charts: [] };
  document.title = `spkd job ${view.id} sample ${view.index}`;
  main.append(h('p', { class: 'crumbs' },
    h('a', { href: `/jobs/${view.id}`, text: `← Job #${view.id}` })),
  h('h1', { text: `Sample ${view.index}` }));
  loadSample(view);
  return () => view.charts.forEach((c) => c.destroy());
}

async function loadSample(view) {
  let job = null;
  let sample = null;
  try {
    [job, sample] = await Promise.all([api(`/v1/jobs/${view.id}`),
      api(`/v1/jobs/${view.id}/samples/${view.index}`)]);
  } catch (e) {
    view.main.append(h('p', { class: 'error',
      text: e.status === 404 ? `${e.message}.` : errorText(e) }),
    gotoSample(view.id));
    return;
  }
  if (!view.main.isConnected) {
    return;
  }
  const canvas = h('canvas', { id: 'sample-image', width: 28, height: 28 });
  view.main.append(
    h('div', { class: 'sample-head' }, canvas, labels(job, sample)),
    gotoSample(view.id), historyCharts(), dynamicsTable(job, sample));
  drawHistory(view, job, sample);
  fetchPixels(job.spec.dataset.name, view.index).then(
    (s) => drawPixels(canvas, s), () => canvas.classList.add('missing'));
}

function labels(job, s) {
  const dataset = job.spec.dataset.name;
  const row = (k, v) => [h('dt', { text: k }), h('dd', {}, v)];
  const last = lastPredictions(job, s);
  return h('dl', { id: 'sample-labels' },
    row('split', s.split),
    row('observed label', labelName(dataset, s.observed_label)),
    row('clean label', s.clean_label === null ? 'no noise injected'
      : labelName(dataset, s.clean_label)),
    row('corrupted', s.corrupted === null ? '–'
      : h('span', { class: s.corrupted ? 'bad' : null,
        text: s.corrupted ? 'yes' : 'no' })),
    row('predicted (last epoch)', last.length ? last.join(' · ') : '–'));
}

function lastPredictions(job, s) {
  const dataset = job.spec.dataset.name;
  const last = new Map();
  for (const r of s.history) {
    last.set(r.stage, r);
  }
  return stageNames(job).filter((st) => last.has(st)).map((st) => {
    const p = last.get(st).predicted;
    return `${st} ${p === null ? '–' : labelName(dataset, p)}`;
  });
}

const QUANTITIES = [
  { chart: 'loss', title: 'Loss of the observed label', y: 'auto' },
  { chart: 'prob', title: 'Probability of the observed label',
    y: 'fraction' },
  { chart: 'weight', title: 'Weight in training', y: 'fraction' },
  { chart: 'easy', title: 'In the easy set', y: 'fraction', step: true },
];

function historyCharts() {
  return h('section', { class: 'charts' },
    h('h2', { text: 'History over the epochs of every stage' }),
    h('div', { class: 'chart-grid' }, QUANTITIES.map((q) => h('div', {
      class: 'chart', 'data-chart': q.chart, 'data-stage': 'all' }))));
}

// One chart per quantity, one series per stage the sample has records of.
function drawHistory(view, job, s) {
  const stages = stageNames(job).filter((st) =>
    s.history.some((r) => r.stage === st));
  for (const q of QUANTITIES) {
    const el = view.main.querySelector(`.chart[data-chart="${q.chart}"]`);
    const chart = lineChart(el, { title: q.title, y: q.y,
      series: stages.map((st, i) => ({ label: st, step: q.step,
        color: PALETTE[i % PALETTE.length] })) });
    chart.draw(stages.map((st) => historyColumn(s, st, q.chart)));
    view.charts.push(chart);
  }
  if (s.history.length === 0) {
    view.main.querySelector('.charts h2').after(h('p', { class: 'muted',
      text: 'A validation sample: held out, so it has no training history.' }));
  }
}

function historyColumn(s, stage, key) {
  const out = new Map();
  for (const r of s.history) {
    if (r.stage === stage) {
      out.set(r.epoch, key === 'easy' ? Number(r.easy) : r[key]);
    }
  }
  return out;
}

function dynamicsTable(job, s) {
  const stages = stageNames(job).filter((st) => s.dynamics[st]);
  const keys = ['confidence', 'variability', 'correctness', 'forgetting',
    'aum'];
  if (stages.length === 0) {
    return h('p', { class: 'muted',
      text: 'Training dynamics appear once a stage has finished.' });
  }
  return h('section', {}, h('h2', { text: 'Training dynamics per stage' }),
    h('div', { class: 'table-wrap' }, h('table', { id: 'dynamics-table' },
      h('thead', {}, h('tr', {}, h('th', { text: 'stage' }),
        keys.map((k) => h('th', { text: k })))),
      h('tbody', {}, stages.map((st) => h('tr', { 'data-stage': st },
        h('td', { text: st }), keys.map((k) => h('td', {
          text: k === 'forgetting' ? String(s.dynamics[st][k])
            : num(s.dynamics[st][k]) }))))))));
}
