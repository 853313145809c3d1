// SPDX-License-Identifier: MIT
// What the dashboard's browser tests share: a live spkd on a free port with
// a database in a temporary directory, a small client for its API, the job
// specs the tests submit, Debian's chromium driven by playwright-core, and
// a wait that polls a condition until it holds.

import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHOTS = join(REPO, 'build', 'web-test');
const SPKD = join(REPO, 'build', 'spkd');
const DATA_ROOT = '/usr/share/datasets';
const START_MS = 30000;
const STOP_MS = 20000;
const POLL_MS = 50;

// Calls check until it returns a true value, which it returns; throws an
// error naming what after ms milliseconds.
export async function waitFor(what, check, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// One spkd process serving the repository's web/ on 127.0.0.1, with its
// database and log in a directory of its own that stop() removes.
export class Daemon {
  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'spkd-web-'));
    this.logPath = join(this.dir, 'spkd.log');
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      this.url = `http://127.0.0.1:${this.port}`;
      this.spawn();
      if (await this.healthy()) {
        return this;
      }
      if (!/in use/i.test(this.log())) {
        break;
      }
    }
    throw new Error(`spkd did not become healthy:\n${this.log()}`);
  }

  spawn() {
    const log = openSync(this.logPath, 'a');
    this.exited = false;
    this.proc = spawn(SPKD, ['--listen', `127.0.0.1:${this.port}`,
      '--db', join(this.dir, 'spkd.db'), '--data-root', DATA_ROOT,
      '--web-root', join(REPO, 'web'), '--jobs', '1'],
    { stdio: ['ignore', log, log], cwd: this.dir });
    this.proc.on('exit', () => {
      this.exited = true;
    });
  }

  async healthy() {
    const end = Date.now() + START_MS;
    while (Date.now() < end && !this.exited) {
      try {
        const res = await fetch(`${this.url}/healthz`);
        return res.status === 200;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
    return false;
  }

  // Sends SIGTERM, waits for the exit (SIGKILL after STOP_MS) and removes
  // the directory.
  async stop() {
    if (this.proc && !this.exited) {
      const gone = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_MS);
      await gone;
      clearTimeout(timer);
    }
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-40)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }

  // Sends a request to the API; returns { status, body } with the body
  // parsed as JSON when it is JSON.
  async request(method, path, body) {
    const res = await fetch(this.url + path, {
      method, headers: { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined
        : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: the text stays.
    }
    return { status: res.status, body: parsed };
  }

  // A GET that must answer 200; returns the JSON body.
  async get(path) {
    const res = await this.request('GET', path);
    if (res.status !== 200) {
      throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  async submit(spec) {
    const res = await this.request('POST', '/v1/jobs', spec);
    if (res.status !== 201) {
      throw new Error(`submit: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  async cancel(id) {
    const res = await this.request('POST', `/v1/jobs/${id}/cancel`);
    if (res.status !== 200) {
      throw new Error(`cancel ${id}: ${res.status}`);
    }
  }

  // Waits until the job reaches one of states; returns the job.
  waitState(id, states, ms = 60000) {
    return waitFor(`job ${id} to reach ${states}`, async () => {
      const job = await this.get(`/v1/jobs/${id}`);
      return states.includes(job.state) ? job : null;
    }, ms);
  }
}

// A job that trains in a few seconds on 1500 Fashion-MNIST samples with a
// share noise of the labels flipped, so every chart of the job page,
// detection included, has several epochs to draw.
export function smallSpec(name, noise = 0.3) {
  return {
    name, seed: 3, threads: 2,
    dataset: {
      name: 'fashion-mnist', limit: 1500, validation_fraction: 0.1,
      label_noise: { kind: 'symmetric', rate: noise, seed: 5 },
    },
    spl: {
      model: 'mlp', epochs: 4, warmup_epochs: 1,
      pace: { kind: 'fraction', start: 0.6, end: 0.8 },
    },
    teachers: [{ model: 'mlp', epochs: 2 }],
    student: { model: 'mlp', epochs: 3 },
    baseline: { model: 'mlp', epochs: 3 },
  };
}

// A job that would train for minutes: it holds the daemon's one job slot
// so that the job queued behind it starts only when a test cancels it.
export function blockerSpec() {
  const spec = smallSpec('blocker');
  spec.dataset.label_noise = null;
  spec.spl.epochs = 1000;
  delete spec.baseline;
  return spec;
}

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu',
  '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run'];

// Debian's chromium, headless; playwright-core never downloads a browser.
export function launchBrowser() {
  return chromium.launch({ executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS });
}

// A tab of its own size in a fresh context; errors thrown by the page's
// scripts and failed requests collect in page.problems.
export async function openTab(browser, width = 1280, height = 900) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A stream the page closes when it moves on is no failure.
    if (!r.url().endsWith('/events') && !r.url().includes('/events?')) {
      page.problems.push(`request failed: ${r.url()}`);
    }
  });
  return page;
}

// Closes the tab's context.
export async function closeTab(page) {
  await page.context().close();
}
