// SPDX-License-Identifier: MIT
// The data map of a finished stage: every training sample as a point of
// mean confidence (y) against variability (x), drawn with fillRect on one
// 2D canvas, coloured by corrupted/clean when the job injected noise, else
// by correctness. A grid of screen cells finds the point under the pointer
// for the tooltip and for clicks, which open the sample.

import { api, h, num, labelName, errorText, stageChooser } from './app.js';

const MARGIN = { left: 46, right: 22, top: 10, bottom: 36 };
const CELL = 8;
const PICK_RADIUS = 6;
const X_STEPS = [0.01, 0.02, 0.025, 0.05, 0.1, 0.2];

// Colours by class of point, drawn in this order (the last on top).
const NOISE_CLASSES = [
  { name: 'clean label', color: 'rgba(0, 114, 178, 0.45)' },
  { name: 'corrupted label', color: 'rgba(213, 94, 0, 0.75)' },
];
const CORRECTNESS_CLASSES = [
  { name: 'correct < 0.2', color: 'rgba(213, 94, 0, 0.7)' },
  { name: '0.2–0.4', color: 'rgba(230, 159, 0, 0.6)' },
  { name: '0.4–0.6', color: 'rgba(140, 140, 140, 0.5)' },
  { name: '0.6–0.8', color: 'rgba(86, 180, 233, 0.5)' },
  { name: '≥ 0.8', color: 'rgba(0, 114, 178, 0.45)' },
];

// Builds the data-map section of job's page; onPick(index) runs when a
// point is clicked. Returns { el, setStages(stages), destroy() }:
// setStages offers the finished stages and loads the chosen one.
export function dataMapSection(job, onPick) {
  const view = {
    job, onPick, map: null, screen: null, stage: null, failed: false,
    canvas: h('canvas', { id: 'datamap', 'data-points': 0 }),
    tip: h('div', { id: 'datamap-tip', hidden: true }),
    mark: h('div', { class: 'datamap-mark', hidden: true }),
    note: h('p', { class: 'muted',
      text: 'Available when a stage has finished.' }),
    legend: h('p', { class: 'legend' }),
  };
  view.chooser = stageChooser('datamap-stage', (s) => load(view, s));
  view.wrap = h('div', { class: 'datamap-wrap' }, view.canvas, view.mark,
    view.tip);
  listen(view);
  const el = h('section', { class: 'datamap' },
    h('h2', { text: 'Data map' }),
    h('p', { class: 'controls' }, h('label', {}, 'Stage ', view.chooser.el),
      ' confidence (mean probability of the observed label) against ' +
      'variability (its spread over the epochs); click a point for ' +
      'its sample.'),
    view.note, view.wrap, view.legend);
  return {
    el,
    setStages: (stages) => offerStages(view, stages),
    destroy: () => view.watcher.disconnect(),
  };
}

function offerStages(view, stages) {
  const pick = view.chooser.set(stages);
  if (pick) {
    load(view, pick);
  } else if (view.failed) {
    load(view, view.stage);
  }
}

async function load(view, stage) {
  view.stage = stage;
  view.failed = false;
  view.note.textContent = `Loading the ${stage} data map…`;
  try {
    const map = await api(`/v1/jobs/${view.job.id}/stages/${stage}/datamap`);
    if (view.stage !== stage) {
      return;
    }
    view.map = prepare(map);
    view.note.textContent = `${map.total} training samples of ${stage}.`;
    draw(view);
  } catch (e) {
    view.failed = view.stage === stage;
    view.note.textContent = e.status === 404
      ? `The ${stage} data map is not ready yet.` : errorText(e);
  }
}

// Turns the route's column arrays into typed arrays and a colour class per
// sample; samples whose coordinates are not numbers are left out.
function prepare(map) {
  const noise = Array.isArray(map.corrupted);
  const keep = [];
  for (let i = 0; i < map.total; i++) {
    if (map.confidence[i] !== null && map.variability[i] !== null) {
      keep.push(i);
    }
  }
  const n = keep.length;
  const out = {
    n, noise, index: new Int32Array(n), label: new Int32Array(n),
    conf: new Float32Array(n), vari: new Float32Array(n),
    corr: new Float32Array(n), cls: new Uint8Array(n),
    corrupted: new Uint8Array(n),
  };
  keep.forEach((i, k) => {
    out.index[k] = map.index[i];
    out.label[k] = map.observed_label[i];
    out.conf[k] = map.confidence[i];
    out.vari[k] = map.variability[i];
    out.corr[k] = map.correctness[i] ?? 0;
    out.corrupted[k] = noise && map.corrupted[i] ? 1 : 0;
    out.cls[k] = noise ? out.corrupted[k]
      : Math.min(4, Math.floor(out.corr[k] * 5));
  });
  return out;
}

function classes(map) {
  return map.noise ? NOISE_CLASSES : CORRECTNESS_CLASSES;
}

// Sizes the canvas to its box at the screen's pixel ratio, then draws the
// axes and every point, a colour class at a time.
function draw(view) {
  const map = view.map;
  const width = Math.max(200, view.wrap.clientWidth);
  const height = Math.round(Math.min(520, Math.max(260, width * 0.6)));
  const ratio = window.devicePixelRatio || 1;
  const c = view.canvas;
  c.width = Math.round(width * ratio);
  c.height = Math.round(height * ratio);
  c.style.width = `${width}px`;
  c.style.height = `${height}px`;
  const ctx = c.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  view.screen = place(map, width, height);
  drawAxes(ctx, view.screen);
  drawPoints(ctx, map, view.screen);
  c.dataset.points = String(map.n);
  view.legend.replaceChildren(...classes(map).map((k) => h('span', {},
    h('i', { style: `background:${k.color}` }), k.name)));
}

// Screen positions of the points and the plot's frame; x runs from 0 to
// the first tick at or above the largest variability, y from 0 to 1.
function place(map, width, height) {
  let top = 0.01;
  for (let i = 0; i < map.n; i++) {
    top = Math.max(top, map.vari[i]);
  }
  const xStep = X_STEPS.find((s) => top / s <= 6) ?? 0.2;
  const xMax = Math.ceil(top / xStep - 1e-9) * xStep;
  const frame = {
    x0: MARGIN.left, x1: width - MARGIN.right,
    y0: height - MARGIN.bottom, y1: MARGIN.top, xMax, xStep, width, height,
  };
  const sx = (frame.x1 - frame.x0) / xMax;
  const sy = frame.y0 - frame.y1;
  const px = new Float32Array(map.n);
  const py = new Float32Array(map.n);
  for (let i = 0; i < map.n; i++) {
    px[i] = frame.x0 + map.vari[i] * sx;
    py[i] = frame.y0 - map.conf[i] * sy;
  }
  return { frame, px, py, grid: buildGrid(px, py, width, height) };
}

function drawAxes(ctx, screen) {
  const f = screen.frame;
  ctx.strokeStyle = '#bbb';
  ctx.fillStyle = '#555';
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.textAlign = 'right';
  for (let k = 0; k <= 4; k++) {
    const y = f.y0 + (f.y1 - f.y0) * k / 4;
    ctx.moveTo(f.x0, y);
    ctx.lineTo(f.x1, y);
    ctx.fillText((k / 4).toFixed(2), f.x0 - 6, y + 4);
  }
  ctx.textAlign = 'center';
  const ticks = Math.round(f.xMax / f.xStep);
  for (let k = 0; k <= ticks; k++) {
    const x = f.x0 + (f.x1 - f.x0) * k / ticks;
    ctx.moveTo(x, f.y0);
    ctx.lineTo(x, f.y0 + 4);
    ctx.fillText(Number((k * f.xStep).toFixed(3)).toString(), x, f.y0 + 16);
  }
  ctx.stroke();
  ctx.fillText('variability', (f.x0 + f.x1) / 2, f.height - 4);
  ctx.save();
  ctx.translate(12, (f.y0 + f.y1) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('confidence', 0, 0);
  ctx.restore();
}

// One fillRect per point, grouped by colour so the fill style changes only
// a few times; a counting sort gives the order.
function drawPoints(ctx, map, screen) {
  const order = byClass(map.cls, classes(map).length);
  const list = classes(map);
  let k = 0;
  for (let c = 0; c < list.length; c++) {
    ctx.fillStyle = list[c].color;
    for (; k < order.start[c + 1]; k++) {
      const i = order.items[k];
      ctx.fillRect(screen.px[i] - 1.5, screen.py[i] - 1.5, 3, 3);
    }
  }
}

// Groups ids 0..n-1 by key (0..nkeys-1): items lists the ids of key c from
// start[c] to start[c + 1].
function byClass(keys, nkeys) {
  const start = new Int32Array(nkeys + 1);
  for (const k of keys) {
    start[k + 1]++;
  }
  for (let c = 0; c < nkeys; c++) {
    start[c + 1] += start[c];
  }
  const fill = start.slice(0, nkeys);
  const items = new Int32Array(keys.length);
  keys.forEach((k, i) => {
    items[fill[k]++] = i;
  });
  return { start, items };
}

// Buckets the points by CELL-sized squares of the screen for picking.
function buildGrid(px, py, width, height) {
  const cols = Math.ceil(width / CELL) + 1;
  const rows = Math.ceil(height / CELL) + 1;
  const cell = new Int32Array(px.length);
  for (let i = 0; i < px.length; i++) {
    cell[i] = cellOf(px[i], py[i], cols, rows);
  }
  return { cols, rows, ...byClass(cell, cols * rows) };
}

function cellOf(x, y, cols, rows) {
  const cx = Math.min(cols - 1, Math.max(0, Math.floor(x / CELL)));
  const cy = Math.min(rows - 1, Math.max(0, Math.floor(y / CELL)));
  return cy * cols + cx;
}

// The point nearest to (x, y) in CSS pixels within PICK_RADIUS, or -1.
function pick(screen, x, y) {
  const g = screen.grid;
  let best = -1;
  let bestD = PICK_RADIUS * PICK_RADIUS;
  const cx = Math.floor(x / CELL);
  const cy = Math.floor(y / CELL);
  for (let gy = cy - 1; gy <= cy + 1; gy++) {
    for (let gx = cx - 1; gx <= cx + 1; gx++) {
      if (gx < 0 || gy < 0 || gx >= g.cols || gy >= g.rows) {
        continue;
      }
      const c = gy * g.cols + gx;
      for (let k = g.start[c]; k < g.start[c + 1]; k++) {
        const i = g.items[k];
        const d = (screen.px[i] - x) ** 2 + (screen.py[i] - y) ** 2;
        if (d <= bestD) {
          best = i;
          bestD = d;
        }
      }
    }
  }
  return best;
}

function pointAt(view, ev) {
  if (!view.screen) {
    return -1;
  }
  const box = view.canvas.getBoundingClientRect();
  return pick(view.screen, ev.clientX - box.left, ev.clientY - box.top);
}

// Pointer moves show the tooltip, clicks open the sample, and a resize
// of the box redraws at the new width.
function listen(view) {
  view.canvas.addEventListener('mousemove', (ev) => showTip(view, ev));
  view.canvas.addEventListener('mouseleave', () => {
    view.tip.hidden = true;
    view.mark.hidden = true;
  });
  view.canvas.addEventListener('click', (ev) => {
    const i = pointAt(view, ev);
    if (i >= 0) {
      view.onPick(view.map.index[i]);
    }
  });
  view.watcher = new ResizeObserver(() => {
    if (view.map && view.screen?.frame.width !== view.wrap.clientWidth) {
      draw(view);
    }
  });
  view.watcher.observe(view.wrap);
}

function showTip(view, ev) {
  const i = pointAt(view, ev);
  view.canvas.style.cursor = i >= 0 ? 'pointer' : 'default';
  if (i < 0) {
    view.tip.hidden = true;
    view.mark.hidden = true;
    return;
  }
  const m = view.map;
  const dataset = view.job.spec.dataset.name;
  view.tip.textContent = `#${m.index[i]} · label ` +
    `${labelName(dataset, m.label[i])} · confidence ${num(m.conf[i])} · ` +
    `variability ${num(m.vari[i])} · correct ${num(m.corr[i], 2)}` +
    (m.noise && m.corrupted[i] ? ' · corrupted' : '');
  view.tip.dataset.index = String(m.index[i]);
  view.tip.hidden = false;
  const x = view.screen.px[i];
  const y = view.screen.py[i];
  const right = x > view.screen.frame.width * 0.6;
  view.tip.style.left = right ? '' : `${x + 10}px`;
  view.tip.style.right = right
    ? `${view.screen.frame.width - x + 10}px` : '';
  view.tip.style.top = `${Math.max(0, y - 30)}px`;
  view.mark.style.left = `${x}px`;
  view.mark.style.top = `${y}px`;
  view.mark.hidden = false;
}
