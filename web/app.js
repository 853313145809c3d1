// SPDX-License-Identifier: MIT
// The dashboard's entry point: the router that picks a page by the address,
// the fetch helper every page uses (it adds the bearer token and asks for
// one when the daemon answers 401), and small DOM and number helpers shared
// by the page modules. The pages themselves live in their own modules.

const TOKEN_KEY = 'spkd-token';

// Each page: the address it answers, its name in data-page, its module and
// the function that renders it into a fresh <main id="page">.
const ROUTES = [
  { re: /^\/$/, page: 'jobs', mod: './jobs.js', fn: 'renderJobs' },
  { re: /^\/jobs\/(\d+)$/, page: 'job', mod: './job.js', fn: 'renderJob' },
  {
    re: /^\/jobs\/(\d+)\/samples\/(\d+)$/, page: 'sample',
    mod: './sample.js', fn: 'renderSample',
  },
  {
    re: /^\/compare$/, page: 'compare', mod: './compare.js',
    fn: 'renderCompare',
  },
];

// The Fashion-MNIST class names, to show next to label numbers.
const CLASS_NAMES = {
  'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
    'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
};

let leavePage = null;
let tokenPrompt = null;

// An answer of the API that is not 2xx: the HTTP status and the body's
// error code, message and field (null when the error names none).
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.field = error.field ?? null;
  }
}

// Fetches an API path and returns its JSON body (null for 204). opts are
// fetch's options. The stored token rides along; a 401 asks the user for a
// token and retries until the daemon takes it or the user gives up. Throws
// ApiError for any other 4xx or 5xx and TypeError when the daemon cannot
// be reached.
export async function api(path, opts = {}) {
  for (;;) {
    const res = await fetch(path, withToken(opts));
    if (res.status === 401 && await askToken(hasToken())) {
      continue;
    }
    return readBody(res);
  }
}

function withToken(opts) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(opts.headers || {});
  if (token) {
    headers.set('Authorization', `Bearer ${token}`);
  }
  return { ...opts, headers };
}

function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

async function readBody(res) {
  if (res.status === 204) {
    return null;
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const error = body?.error ??
      { code: 'internal', message: `HTTP ${res.status}`, field: null };
    throw new ApiError(res.status, error);
  }
  return body;
}

// Shows the token form once, however many requests wait on it; resolves
// true when the user gave a token (now stored) and false on cancel.
function askToken(refused) {
  if (!tokenPrompt) {
    tokenPrompt = showTokenDialog(refused).finally(() => {
      tokenPrompt = null;
    });
  }
  return tokenPrompt;
}

function showTokenDialog(refused) {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-reason').textContent = refused
    ? 'The daemon refused the token this tab had. Enter the right one.'
    : 'This daemon asks for a bearer token to change anything. ' +
      'It is kept for this browser tab only.';
  input.value = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'ok' && input.value !== '';
      if (ok) {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      }
      resolve(ok);
    }, { once: true });
  });
}

// Builds an element: props sets `text` (textContent), `value`, `on<event>`
// listeners and plain attributes (true for a bare attribute; null, undefined
// and false are skipped); children are nodes or strings, nested arrays fine.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, val] of Object.entries(props)) {
    if (val === null || val === undefined || val === false) {
      continue;
    }
    if (key === 'text') {
      el.textContent = val;
    } else if (key === 'value') {
      el.value = val;
    } else if (key.startsWith('on')) {
      el.addEventListener(key.slice(2), val);
    } else {
      el.setAttribute(key, val === true ? '' : val);
    }
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null &&
    c !== undefined && c !== false));
  return el;
}

// A share as a percentage with one decimal, or a dash for null.
export function pct(x) {
  return x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`;
}

// A number with d decimals, or a dash for null.
export function num(x, d = 3) {
  return x === null || x === undefined ? '–' : Number(x).toFixed(d);
}

// A label number with its class name when the dataset's names are known.
export function labelName(dataset, label) {
  const name = CLASS_NAMES[dataset]?.[label];
  return name ? `${label} ${name}` : String(label);
}

// The stages of a job in pipeline order, as its `stages` object lists them.
export function stageNames(job) {
  const rank = (s) => s === 'spl' ? 0 : s.startsWith('teacher') ? 1
    : s === 'student' ? 2 : 3;
  return Object.keys(job.stages).sort((a, b) => rank(a) - rank(b) ||
    a.localeCompare(b));
}

// Whether the job's spec injects label noise.
export function hasNoise(job) {
  return (job.spec.dataset.label_noise?.rate ?? 0) > 0;
}

// A <select id=id> of stages that calls onChange(stage) when the user picks
// one. set(stages) replaces the options and keeps the choice when it is
// still offered; it picks the first stage when nothing was chosen yet and
// then returns that stage (else null), so the caller can load it.
export function stageChooser(id, onChange) {
  const el = h('select', { id, onchange: () => onChange(el.value) });
  const set = (stages) => {
    const had = el.value;
    el.replaceChildren(...stages.map((s) => h('option', { value: s,
      text: s })));
    el.disabled = stages.length === 0;
    if (stages.includes(had)) {
      el.value = had;
      return null;
    }
    return stages[0] ?? null;
  };
  return { el, set };
}

// Goes to a dashboard address without reloading the page.
export function navigate(url) {
  history.pushState(null, '', url);
  route();
}

// Renders the page the address names into a new <main id="page">, after
// letting the previous page stop its timers and streams. A stale page keeps
// only a detached element, so its late answers change nothing on screen.
async function route() {
  if (leavePage) {
    leavePage();
    leavePage = null;
  }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const found = ROUTES.map((r) => ({ r, m: path.match(r.re) }))
    .find((x) => x.m);
  const main = freshMain(found ? found.r.page : 'missing');
  markNav(found?.r.page);
  if (!found) {
    main.append(h('h1', { text: 'No such page' }),
      h('p', {}, h('a', { href: '/', text: 'Back to the jobs' })));
    return;
  }
  const params = {
    id: found.m[1] ? Number(found.m[1]) : null,
    index: found.m[2] ? Number(found.m[2]) : null,
    query: new URLSearchParams(location.search),
  };
  await renderInto(main, found.r, params);
}

function freshMain(page) {
  const main = h('main', { id: 'page', 'data-page': page });
  document.getElementById('page').replaceWith(main);
  window.scrollTo(0, 0);
  return main;
}

function markNav(page) {
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', a.dataset.nav === page);
  }
}

async function renderInto(main, r, params) {
  let mod = null;
  try {
    mod = await import(r.mod);
  } catch (e) {
    main.append(h('p', { class: 'error', text:
      `The ${r.page} page is not available yet (${e.message}).` }));
    return;
  }
  try {
    const leave = await mod[r.fn](main, params);
    if (typeof leave === 'function') {
      if (main.isConnected) {
        leavePage = leave;
      } else {
        leave();
      }
    }
  } catch (e) {
    main.append(h('p', { class: 'error', text: errorText(e) }));
  }
}

// A sentence for an error thrown by api() or by the network.
export function errorText(e) {
  if (e instanceof ApiError) {
    return `${e.message} (HTTP ${e.status}, ${e.code})`;
  }
  return `Cannot reach spkd: ${e.message}`;
}

// Same-origin links to dashboard pages navigate in place; API links (files
// to download) and modified clicks keep the browser's behaviour.
function onLinkClick(ev) {
  const a = ev.target.closest('a');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey ||
      ev.ctrlKey || ev.shiftKey || ev.altKey || a.hasAttribute('download') ||
      a.target) {
    return;
  }
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) {
    return;
  }
  ev.preventDefault();
  navigate(url.pathname + url.search);
}

document.addEventListener('click', onLinkClick);
window.addEventListener('popstate', route);
route();
