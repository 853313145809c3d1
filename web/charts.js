// SPDX-License-Identifier: MIT
// Line charts over epochs, drawn by uPlot (the global `uPlot` that
// index.html loads from /vendor). A chart fills the width of its container,
// follows its resizes, and marks the container with data-points, the number
// of x values it drew, after every redraw.

const HEIGHT = 210;

// Colours that stay distinguishable for most colour-blind readers.
export const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7',
  '#e69f00', '#56b4e9', '#555555', '#f0e442'];

// Draws a line chart into el, which must already be in the document.
// spec: { title, y: 'fraction' | 'fraction-auto' | 'auto',
//         series: [{ label, color, dash (optional [on, off] pixels),
//                    step (optional, draw as steps) }] }.
// Returns { draw(columns), destroy() }: columns holds one Map per series
// from x (an epoch) to y (null for a gap); draw lines the series up on the
// union of their x values.
export function lineChart(el, spec) {
  const plot = new uPlot(chartOptions(spec, widthOf(el)),
    alignColumns(spec.series.map(() => new Map())), el);
  let width = widthOf(el);
  const watcher = new ResizeObserver(() => {
    if (widthOf(el) !== width) {
      width = widthOf(el);
      plot.setSize({ width, height: HEIGHT });
    }
  });
  watcher.observe(el);
  el.dataset.points = '0';
  return {
    draw(columns) {
      const data = alignColumns(columns);
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
    destroy() {
      watcher.disconnect();
      plot.destroy();
    },
  };
}

function widthOf(el) {
  return Math.max(240, Math.floor(el.clientWidth));
}

// Lines up several x -> y maps on the sorted union of their x values, in
// uPlot's column layout: [xs, ys of series 1, ys of series 2, ...].
function alignColumns(columns) {
  const xs = new Set();
  for (const col of columns) {
    for (const x of col.keys()) {
      xs.add(x);
    }
  }
  const x = [...xs].sort((a, b) => a - b);
  const ys = columns.map((col) => x.map((v) => col.get(v) ?? null));
  return [x, ...ys];
}

function chartOptions(spec, width) {
  return {
    title: spec.title,
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false }, y: { range: yRange(spec.y) } },
    axes: [
      { label: spec.xLabel ?? 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100],
        size: 36, labelSize: 18 },
      { size: 48 },
    ],
    series: [{ label: spec.xLabel ?? 'epoch' }, ...spec.series.map(line)],
    legend: { live: true },
  };
}

function line(s) {
  return {
    label: s.label,
    stroke: s.color,
    width: 1.5,
    dash: s.dash,
    spanGaps: true,
    paths: s.step ? uPlot.paths.stepped({ align: 1 }) : undefined,
    value: (u, v) => v === null || v === undefined ? '–' : valueText(v),
  };
}

// A value for the legend: three decimals for the usual range.
function valueText(v) {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1)
    : a >= 0.01 || a === 0 ? Number(v.toFixed(3)).toString()
    : v.toExponential(1);
}

// The y scale's range: shares fixed to [0, 1], shares zoomed to their data
// inside [0, 1], or whatever the data spans from 0 up.
function yRange(kind) {
  if (kind === 'fraction') {
    return [0, 1];
  }
  if (kind === 'fraction-auto') {
    return (u, min, max) => padded(min, max, 0, 1);
  }
  return (u, min, max) => padded(Math.min(0, min), max, -Infinity, Infinity);
}

function padded(min, max, lo, hi) {
  if (min === null || max === null) {
    return [Math.max(lo, 0), Math.min(hi, 1)];
  }
  const pad = Math.max((max - min) * 0.08, 0.01);
  return [Math.max(lo, min - pad), Math.min(hi, max + pad)];
}
