// SPDX-License-Identifier: MIT
// The dashboard end to end: Debian's headless chromium (playwright-core)
// against a live spkd with a temporary database and small real
// Fashion-MNIST jobs. Two long "blocker" jobs hold the daemon's one job
// slot so that each live test opens its page while its job is still queued
// and then lets it run. Screenshots go to build/web-test/.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Daemon, SHOTS, blockerSpec, closeTab, launchBrowser, openTab, smallSpec,
} from './spkd.mjs';

const JOB_MS = 60000;
const UI_MS = 30000;

// Per chart group of smallSpec's job page, the epochs it draws.
const GROUP_EPOCHS = { spl: 4, teacher: 2, 'student+baseline': 3 };
const METRIC_CHARTS = ['train_loss', 'accuracy', 'easy_fraction',
  'detection'];

// In the page: the chart element's data-points and how many pixels of its
// uPlot canvas are coloured (the series' lines; axes and grid are grey).
function chartInk(selector) {
  const el = document.querySelector(selector);
  const canvas = el?.querySelector('canvas');
  if (!canvas) {
    return null;
  }
  const { data } = canvas.getContext('2d')
    .getImageData(0, 0, canvas.width, canvas.height);
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    const spread = Math.max(data[i], data[i + 1], data[i + 2]) -
      Math.min(data[i], data[i + 1], data[i + 2]);
    if (data[i + 3] > 128 && spread > 60) {
      ink++;
    }
  }
  return { points: Number(el.dataset.points), ink };
}

function chartSelector(chart, group) {
  return `.chart[data-chart="${chart}"][data-stage="${group}"]`;
}

// Marks the document so a later check can tell it was never reloaded.
function markDocument(page) {
  return page.evaluate(() => {
    window.spkdTestMark = 'same document';
  });
}

async function assertSameDocument(page) {
  assert.equal(await page.evaluate(() => window.spkdTestMark),
    'same document', 'the page was reloaded');
}

function shot(page, name) {
  return page.screenshot({ path: join(SHOTS, `${name}.png`),
    fullPage: true });
}

async function textOf(page, selector) {
  return (await page.locator(selector).textContent()).trim();
}

// Waits until the canvas is drawn (every pixel opaque) and returns its
// pixels as one grey value each, read in the same task so that a redraw
// cannot come between; a pixel that is not grey fails the test.
async function canvasGrey(page, selector) {
  const handle = await page.waitForFunction((sel) => {
    const c = document.querySelector(sel);
    if (!c) {
      return false;
    }
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const grey = [];
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] !== 255) {
        return false;
      }
      if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) {
        return `pixel ${i / 4} is not grey: ${d.slice(i, i + 4)}`;
      }
      grey.push(d[i]);
    }
    return grey;
  }, selector, { timeout: UI_MS });
  return handle.jsonValue();
}

// In the page: whether the hardest-samples grid shows images, all drawn.
function allHardestDrawn() {
  const all = [...document.querySelectorAll('#hardest canvas.sample-img')];
  return all.length > 0 && all.every((c) => c.getContext('2d')
    .getImageData(0, 0, 1, 1).data[3] === 255);
}

// Waits for the hardest-samples grid's first page; returns its stage.
async function firstHardest(page) {
  await page.waitForSelector('#hardest canvas.sample-img',
    { timeout: UI_MS });
  return page.inputValue('#hardest-stage');
}

// The grid shows items (a page of the stage's samples from the API) in
// order, with their labels, each image pixel for pixel as the dataset's.
async function checkHardestPage(page, spkd, items) {
  const shown = await page.$$eval('#hardest canvas.sample-img', (cs) =>
    cs.map((c) => ({ index: Number(c.dataset.index),
      label: Number(c.dataset.label), pred: c.dataset.pred,
      size: [c.width, c.height] })));
  assert.deepEqual(shown, items.map((it) => ({ index: it.index,
    label: it.observed_label, pred: String(it.predicted ?? ''),
    size: [28, 28] })));
  for (const it of items.slice(0, 6)) {
    const sel = `#hardest canvas.sample-img[data-index="${it.index}"]`;
    const want = await spkd.get(
      `/v1/datasets/fashion-mnist/samples/${it.index}`);
    assert.equal(want.label, it.clean_label ?? it.observed_label);
    assert.deepEqual(await canvasGrey(page, sel), want.pixels,
      `sample ${it.index}`);
  }
}

// Job id's row of the compare table holds what its metrics say: per stage
// the last epoch's test accuracy and that of the epoch with the best
// validation accuracy, student minus baseline, and the spl stage's last
// detection figures.
async function checkCompareRow(page, spkd, id) {
  const { items } = await spkd.get(`/v1/jobs/${id}/metrics?limit=1000`);
  const last = (stage) => items.filter((m) => m.stage === stage).at(-1);
  const bestVal = (stage) => items.filter((m) => m.stage === stage)
    .reduce((a, b) => b.val_acc > a.val_acc ? b : a);
  const row = `#compare-table tr[data-job-id="${id}"]`;
  const value = async (col) => Number(await page.getAttribute(
    `${row} [data-col="${col}"]`, 'data-value'));
  for (const stage of ['spl', 'teacher', 'student', 'baseline']) {
    assert.equal(await value(`final-${stage}`), last(stage).test_acc);
    assert.equal(await value(`best-${stage}`), bestVal(stage).test_acc);
  }
  assert.ok(Math.abs(await value('student-baseline') -
    (last('student').test_acc - last('baseline').test_acc)) < 1e-12);
  assert.equal(await value('auroc'), last('spl').noise_auroc);
  assert.equal(await value('precision'), last('spl').noise_precision);
  assert.equal(await value('recall'), last('spl').noise_recall);
}

describe('dashboard', () => {
  const spkd = new Daemon();
  let browser;
  let blockers;
  let jobA;
  let jobB;

  // The queue, in the order the daemon runs it: blocker 0 (running), job A,
  // blocker 1, job B.
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    await spkd.start();
    browser = await launchBrowser();
    blockers = [await spkd.submit(blockerSpec())];
    await spkd.waitState(blockers[0].id, ['running']);
    jobA = await spkd.submit(smallSpec('web-a', 0.2));
    blockers.push(await spkd.submit(blockerSpec()));
    jobB = await spkd.submit(smallSpec('web-b', 0.4));
  });

  after(async () => {
    await browser?.close();
    await spkd.stop();
  });

  test('the jobs page shows a state change without reloading',
    async () => {
      const page = await openTab(browser);
      await page.goto(`${spkd.url}/`);
      const stateA = `#jobs-table tr[data-job-id="${jobA.id}"] ` +
        '[data-col=state]';
      const rowB0 = `#jobs-table tr[data-job-id="${blockers[0].id}"]`;
      await page.waitForFunction((sel) =>
        document.querySelector(sel)?.textContent.trim() === 'queued',
      stateA, { timeout: UI_MS });
      assert.equal(await textOf(page, `${rowB0} [data-col=state]`),
        'running');
      await markDocument(page);

      // Cancelling the blocker from its row lets job A run to its end.
      await page.click(`${rowB0} button[data-action=cancel]`);
      await page.waitForFunction((sel) =>
        document.querySelector(sel)?.textContent.trim() === 'succeeded',
      stateA, { timeout: JOB_MS });
      await page.waitForFunction((sel) =>
        document.querySelector(sel)?.textContent.trim() === 'cancelled',
      `${rowB0} [data-col=state]`, { timeout: UI_MS });
      await assertSameDocument(page);
      await shot(page, 'jobs');
      assert.deepEqual(page.problems, []);
      await closeTab(page);
    });

  test('the job page draws its charts and each new epoch as it comes',
    async () => {
      await spkd.waitState(blockers[1].id, ['running']);
      const page = await openTab(browser);
      await page.goto(`${spkd.url}/jobs/${jobB.id}`);
      await page.waitForFunction(() => document.querySelector('#job-state')
        ?.textContent.trim() === 'queued', null, { timeout: UI_MS });
      const spl = chartSelector('accuracy', 'spl');
      await page.waitForSelector(`${spl} canvas`, { timeout: UI_MS });
      assert.deepEqual(await page.evaluate(chartInk, spl),
        { points: 0, ink: 0 });
      await markDocument(page);

      // Every value data-points takes from now on, in order.
      await page.evaluate((sel) => {
        const el = document.querySelector(sel);
        window.spkdPointsSeen = [];
        new MutationObserver(() => window.spkdPointsSeen
          .push(Number(el.dataset.points)))
          .observe(el, { attributeFilter: ['data-points'] });
      }, spl);
      await spkd.cancel(blockers[1].id);
      await page.waitForFunction(() => document.querySelector('#job-state')
        ?.textContent.trim() === 'succeeded', null, { timeout: JOB_MS });
      for (const [group, epochs] of Object.entries(GROUP_EPOCHS)) {
        for (const chart of METRIC_CHARTS) {
          const sel = chartSelector(chart, group);
          await page.waitForFunction(([s, n]) => Number(document
            .querySelector(s)?.dataset.points) === n, [sel, epochs],
          { timeout: UI_MS });
          const { ink } = await page.evaluate(chartInk, sel);
          assert.ok(ink > 30, `${sel} draws no line (${ink} pixels)`);
        }
      }

      // Epochs arrived while the page watched: data-points only grew, up
      // to the stage's last epoch.
      const seen = (await page.evaluate(() => window.spkdPointsSeen))
        .filter((n, i, all) => i === 0 || n !== all[i - 1]);
      assert.ok(seen.length >= 1 && seen.at(-1) === GROUP_EPOCHS.spl, seen);
      assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
      await page.waitForSelector('[data-page=job] button[data-action=cancel]',
        { state: 'detached', timeout: UI_MS });
      await page.waitForFunction(allHardestDrawn, null, { timeout: UI_MS });
      await assertSameDocument(page);
      await shot(page, 'job');
      assert.deepEqual(page.problems, []);
      await closeTab(page);
    });

  test('the data map has one point per training sample', async () => {
    const page = await openTab(browser);
    await page.goto(`${spkd.url}/jobs/${jobB.id}`);
    await page.waitForFunction(() => Number(document
      .querySelector('#datamap')?.dataset.points) > 0, null,
    { timeout: UI_MS });
    const stage = await page.inputValue('#datamap-stage');
    const map = await spkd.get(`/v1/jobs/${jobB.id}/stages/${stage}/datamap`);
    assert.equal(map.total, 1350);
    assert.equal(map.index.length, map.total);
    assert.equal(Number(await page.getAttribute('#datamap', 'data-points')),
      map.total);

    // The canvas holds the points in both colours of a noisy job: clean
    // (blue) and corrupted (orange).
    const colours = await page.evaluate(() => {
      const c = document.querySelector('#datamap');
      const { data } = c.getContext('2d').getImageData(0, 0, c.width,
        c.height);
      let blue = 0;
      let orange = 0;
      for (let i = 0; i < data.length; i += 4) {
        blue += data[i + 2] - data[i] > 60 ? 1 : 0;
        orange += data[i] - data[i + 2] > 60 ? 1 : 0;
      }
      return { blue, orange };
    });
    assert.ok(colours.blue > 200 && colours.orange > 50,
      JSON.stringify(colours));

    // Hovering a corrupted sample's point names it; clicking opens it. The
    // point is the first (from the top) whole 3x3 square of orange.
    await page.locator('#datamap').scrollIntoViewIfNeeded();
    const at = await page.evaluate(() => {
      const c = document.querySelector('#datamap');
      const { data } = c.getContext('2d').getImageData(0, 0, c.width,
        c.height);
      const orange = (x, y) => {
        const i = 4 * (y * c.width + x);
        return data[i] - data[i + 2] > 60 && data[i + 3] > 128;
      };
      for (let y = 1; y < c.height - 1; y++) {
        for (let x = 1; x < c.width - 1; x++) {
          if ([-1, 0, 1].every((dy) => [-1, 0, 1].every((dx) =>
            orange(x + dx, y + dy)))) {
            const box = c.getBoundingClientRect();
            const scale = box.width / c.width;
            return { x: box.left + (x + 0.5) * scale,
              y: box.top + (y + 0.5) * scale };
          }
        }
      }
      return null;
    });
    await page.mouse.move(at.x, at.y);
    await page.locator('#datamap-tip').waitFor({ timeout: UI_MS });
    const index = Number(await page.getAttribute('#datamap-tip',
      'data-index'));
    const k = map.index.indexOf(index);
    assert.ok(k >= 0 && map.corrupted[k] === true, `sample ${index}`);
    assert.ok((await textOf(page, '#datamap-tip')).includes(String(index)));
    await page.mouse.click(at.x, at.y);
    await page.waitForURL(`${spkd.url}/jobs/${jobB.id}/samples/${index}`,
      { timeout: UI_MS });
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });

  test('the job page links its models and exports', async () => {
    const page = await openTab(browser);
    await page.goto(`${spkd.url}/jobs/${jobB.id}`);
    const names = ['model-spl', 'model-teacher', 'model-student',
      'model-baseline', 'export-jsonl', 'export-csv'];
    for (const name of names) {
      const link = page.locator(`a[data-download="${name}"]`);
      await link.waitFor({ timeout: UI_MS });
      const href = await link.getAttribute('href');
      const res = await fetch(new URL(href, spkd.url));
      assert.equal(res.status, 200, `${name}: ${href}`);
      assert.match(res.headers.get('content-disposition'), /^attachment;/);
      await res.arrayBuffer();
    }
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });

  test('the hardest samples are drawn from the dataset\'s pixels',
    async () => {
      const page = await openTab(browser);
      await page.goto(`${spkd.url}/jobs/${jobB.id}`);
      const stage = await firstHardest(page);
      const sort = await page.inputValue('#hardest-sort');
      const base = `/v1/jobs/${jobB.id}/stages/${stage}/samples?sort=${sort}`;
      const first = await spkd.get(`${base}&limit=24`);
      await checkHardestPage(page, spkd, first.items);

      await page.click('#hardest-next');
      const second = await spkd.get(`${base}&limit=24&cursor=` +
        encodeURIComponent(first.next_cursor));
      await page.waitForFunction((i) => document
        .querySelector('#hardest canvas.sample-img')?.dataset.index ===
        String(i), second.items[0].index, { timeout: UI_MS });
      await checkHardestPage(page, spkd, second.items);
      assert.deepEqual(page.problems, []);
      await closeTab(page);
    });

  test('the sample view shows the history of the index typed', async () => {
    const page = await openTab(browser);
    await page.goto(`${spkd.url}/jobs/${jobB.id}`);
    await markDocument(page);
    const [index] = (await spkd.get(`/v1/jobs/${jobB.id}/stages/spl/` +
      'samples?limit=1')).items.map((it) => it.index);
    await page.fill('#goto-sample', String(index));
    await page.press('#goto-sample', 'Enter');
    await page.waitForURL(`${spkd.url}/jobs/${jobB.id}/samples/${index}`,
      { timeout: UI_MS });
    await assertSameDocument(page);

    const sample = await spkd.get(`/v1/jobs/${jobB.id}/samples/${index}`);
    const epochs = new Set(sample.history.map((r) => r.epoch)).size;
    assert.equal(epochs, GROUP_EPOCHS.spl);
    for (const chart of ['loss', 'prob', 'weight', 'easy']) {
      const sel = `[data-page=sample] .chart[data-chart="${chart}"]`;
      await page.waitForFunction(([s, n]) => Number(document
        .querySelector(s)?.dataset.points) === n, [sel, epochs],
      { timeout: UI_MS });
      const { ink } = await page.evaluate(chartInk, sel);
      assert.ok(ink > 30, `${sel} draws no line (${ink} pixels)`);
    }
    const labels = await textOf(page, '#sample-labels');
    assert.ok(labels.includes(String(sample.observed_label)), labels);
    const pixels = await spkd.get(
      `/v1/datasets/fashion-mnist/samples/${index}`);
    assert.deepEqual(await canvasGrey(page, '#sample-image'), pixels.pixels);
    await shot(page, 'sample');
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });

  test('the compare page puts the jobs side by side', async () => {
    const page = await openTab(browser);
    await page.goto(`${spkd.url}/compare?jobs=${jobA.id},${jobB.id}`);
    const chart = '.chart[data-chart="compare-test_acc"]';
    await page.waitForFunction((s) => Number(document.querySelector(s)
      ?.dataset.points) === 4, chart, { timeout: UI_MS });
    assert.ok((await page.evaluate(chartInk, chart)).ink > 30);
    for (const job of [jobA, jobB]) {
      await checkCompareRow(page, spkd, job.id);
    }
    await shot(page, 'compare');

    // Unticking job A leaves job B alone, in the table and the address.
    await page.uncheck(`input[data-pick-job="${jobA.id}"]`);
    await page.waitForFunction((id) => document.querySelector(
      `#compare-table tr[data-job-id="${id}"]`) === null, jobA.id,
    { timeout: UI_MS });
    assert.equal(new URL(page.url()).search,
      `?jobs=${encodeURIComponent(String(jobB.id))}`);
    assert.equal(await page.locator('#compare-table tbody tr').count(), 1);
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });

  test('the job page fits a phone\'s width', async () => {
    const page = await openTab(browser, 390, 844);
    await page.goto(`${spkd.url}/jobs/${jobB.id}`);
    await page.waitForFunction(() => Number(document
      .querySelector('#datamap')?.dataset.points) > 0, null,
    { timeout: UI_MS });
    await page.waitForFunction(allHardestDrawn, null, { timeout: UI_MS });
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      chart: document.querySelector('.chart canvas').getBoundingClientRect()
        .right,
      datamap: document.querySelector('#datamap').getBoundingClientRect()
        .right,
    }));
    assert.ok(Object.values(widths).every((w) => w <= 390),
      JSON.stringify(widths));

    // The top of the page as a phone shows it, and the hardest samples.
    await page.screenshot({ path: join(SHOTS, 'job-phone.png') });
    await page.locator('section.hardest').screenshot(
      { path: join(SHOTS, 'job-phone-hardest.png') });
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });

  test('an invalid job shows the API error next to its field', async () => {
    const page = await openTab(browser);
    await page.goto(`${spkd.url}/`);
    const spec = smallSpec('too-big');
    spec.dataset.limit = 10000000;
    const refused = await spkd.request('POST', '/v1/jobs', spec);
    assert.equal(refused.status, 400);
    const { field, message } = refused.body.error;
    assert.equal(field, 'dataset.limit');

    await page.fill('#submit-json', JSON.stringify(spec, null, 2));
    await page.click('#submit-button');
    const shown = page.locator(`.field-error[data-field="${field}"]`);
    await shown.waitFor({ timeout: UI_MS });
    assert.equal((await shown.textContent()).trim(), message);
    const near = await page.evaluate((sel) => {
      const error = document.querySelector(sel).getBoundingClientRect();
      const area = document.querySelector('#submit-json')
        .getBoundingClientRect();
      return error.top >= area.top && error.top - area.bottom < 120;
    }, `.field-error[data-field="${field}"]`);
    assert.ok(near, 'the error is not right under the spec');
    assert.equal(new URL(page.url()).pathname, '/');
    const jobs = await spkd.get('/v1/jobs');
    assert.ok(!jobs.items.some((j) => j.name === 'too-big'));
    await shot(page, 'jobs-invalid');
    assert.deepEqual(page.problems, []);
    await closeTab(page);
  });
});
