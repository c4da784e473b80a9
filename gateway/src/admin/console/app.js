// The Switchyard admin console: reads the admin API every REFRESH_MS and
// renders routes (with request rate, error share and p99 from /metrics),
// upstream endpoints, the events outbox and the reload history. Built into
// the binary; fetches nothing but the admin listener's own endpoints. Data
// is put in the page as text (textContent), never as markup.
'use strict';

const REFRESH_MS = 2000;
const TOKEN_KEY = 'switchyard-admin-token';

let previous = null; // the last /metrics scrape: { at, routes }

// --- the admin API ---------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, { text = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return text ? res.text() : res.json();
}

async function readiness() {
  const res = await fetch('/readyz', { cache: 'no-store' });
  return { ready: res.ok, text: await res.text() };
}

// --- Prometheus text -------------------------------------------------------

// Per route: requests and 5xx so far, and the latency histogram's
// cumulative bucket counts (summed over methods), by upper bound.
function parseMetrics(text) {
  const routes = new Map();
  const route = (name) => {
    if (!routes.has(name)) routes.set(name, { total: 0, errors: 0, buckets: new Map() });
    return routes.get(name);
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const m = /^switchyard_(http_requests_total|http_request_duration_seconds_bucket)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    const value = Number(m[3]);
    const r = route(labels.route);
    if (m[1] === 'http_requests_total') {
      r.total += value;
      if (labels.status && labels.status.startsWith('5')) r.errors += value;
    } else {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      r.buckets.set(le, (r.buckets.get(le) || 0) + value);
    }
  }
  return routes;
}

// The 99th percentile (seconds) of cumulative `buckets`, the upper bound of
// the bucket it falls in; null without observations.
function p99(buckets) {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const count = buckets.get(Infinity) || 0;
  if (!count) return null;
  const rank = count * 0.99;
  for (const le of bounds) {
    if (buckets.get(le) >= rank) return le;
  }
  return Infinity;
}

// Rates over the last refresh (or the totals when this is the first scrape
// or nothing moved), per route.
function routeFigures(now) {
  const figures = new Map();
  for (const [name, cur] of now.routes) {
    const before = previous?.routes.get(name);
    const seconds = previous ? (now.at - previous.at) / 1000 : 0;
    const moved = before && cur.total > before.total;
    let rate = 0;
    let errors = cur.total ? cur.errors / cur.total : null;
    let buckets = cur.buckets;
    if (moved && seconds > 0) {
      const delta = cur.total - before.total;
      rate = delta / seconds;
      errors = (cur.errors - before.errors) / delta;
      buckets = new Map([...cur.buckets].map(([le, n]) => [le, n - (before.buckets.get(le) || 0)]));
    }
    figures.set(name, { rate, errors, p99: p99(buckets), total: cur.total });
  }
  return figures;
}

// --- rendering -------------------------------------------------------------

function cell(row, value, className) {
  const td = document.createElement('td');
  if (value instanceof Node) td.append(value);
  else td.textContent = value ?? '—';
  if (className) td.className = className;
  row.append(td);
  return td;
}

function pill(text, kind) {
  const span = document.createElement('span');
  span.className = `pill ${kind}`;
  span.textContent = text;
  return span;
}

function tags(names) {
  const frag = document.createDocumentFragment();
  for (const name of names) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = name;
    frag.append(tag);
  }
  if (!names.length) frag.append('—');
  return frag;
}

function fill(table, rows, empty) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = cell(tr, empty, 'empty');
    td.colSpan = document.querySelectorAll(`#${table} thead th`).length;
    body.append(tr);
  }
}

function seconds(s) {
  if (s === null || s === undefined) return '—';
  if (s === Infinity) return '> 10 s';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`;
}

function renderRoutes(routes, figures) {
  const bindings = new Map();
  for (const b of routes.bindings) bindings.set(b.route, (bindings.get(b.route) || 0) + 1);
  fill('routes', routes.routes.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.route = r.name;
    const f = figures.get(r.name);
    cell(tr, r.name);
    cell(tr, r.service);
    cell(tr, r.upstream);
    cell(tr, tags(r.plugins));
    cell(tr, String(bindings.get(r.name) || 0), 'num');
    cell(tr, f ? f.rate.toFixed(1) : '0.0', 'num');
    cell(tr, f && f.errors !== null ? `${(f.errors * 100).toFixed(1)} %` : '—', 'num');
    cell(tr, f ? seconds(f.p99) : '—', 'num');
    return tr;
  }), 'no routes');
}

function renderUpstreams(upstreams) {
  const rows = [];
  for (const u of upstreams.upstreams) {
    for (const e of u.endpoints) {
      const tr = document.createElement('tr');
      tr.dataset.upstream = u.name;
      cell(tr, u.critical ? `${u.name} (critical)` : u.name);
      cell(tr, e.address);
      let state;
      if (e.in_service) state = pill('in service', 'ok');
      else if (e.ejected_for_ms) state = pill(`ejected ${seconds(e.ejected_for_ms / 1000)}`, 'bad');
      else if (!e.healthy) state = pill('unhealthy', 'bad');
      else state = pill('out of service', 'warn');
      cell(tr, state);
      cell(tr, e.healthy ? 'passing' : 'failing');
      cell(tr, String(e.ejections), 'num');
      cell(tr, String(e.consecutive_failures), 'num');
      cell(tr, String(e.in_flight), 'num');
      rows.push(tr);
    }
  }
  fill('upstreams', rows, 'no upstreams');
}

function renderEvents(events) {
  document.getElementById('events-section').hidden = !events;
  if (!events) return;
  fill('sinks', events.sinks.map((s) => {
    const tr = document.createElement('tr');
    cell(tr, s.name);
    cell(tr, String(s.waiting ?? '—'), 'num');
    cell(tr, seconds(s.oldest_age_seconds), 'num');
    cell(tr, String(s.dead_lettered ?? '—'), 'num');
    return tr;
  }), 'no sinks');
}

function renderConfig(config) {
  document.getElementById('version').textContent = config.version;
  document.getElementById('loaded-at').textContent = config.loaded_at;
  const lastError = document.getElementById('last-error');
  const newest = config.history[0];
  lastError.hidden = !(newest && newest.result === 'error');
  if (!lastError.hidden) {
    const e = newest.error;
    lastError.textContent = `The last reload was refused; still serving ${config.version}.\n`
      + `${e.file}:${e.line}:${e.column}: at ${e.key}: ${e.message}`;
  }
  fill('reloads', config.history.map((a) => {
    const tr = document.createElement('tr');
    cell(tr, a.at);
    cell(tr, a.trigger);
    cell(tr, pill(a.result, a.result === 'ok' ? 'ok' : 'bad'));
    cell(tr, a.version);
    cell(tr, a.error ? `${a.error.key ? `${a.error.key}: ` : ''}${a.error.message}` : '');
    return tr;
  }), 'none yet');
}

function renderReady({ ready, text }) {
  const el = document.getElementById('ready');
  el.className = `pill ${ready ? 'ok' : 'bad'}`;
  el.textContent = ready ? 'ready' : 'not ready';
  el.title = text.trim();
}

// --- the loop --------------------------------------------------------------

function askToken() {
  const dialog = document.getElementById('token-dialog');
  if (!dialog.open) dialog.showModal();
}

async function refresh() {
  const problem = document.getElementById('problem');
  try {
    const [config, routes, upstreams, metrics, ready] = await Promise.all([
      api('/admin/config'),
      api('/admin/routes'),
      api('/admin/upstreams'),
      api('/metrics', { text: true }),
      readiness(),
    ]);
    const events = config.config.events ? await api('/admin/events') : null;
    const now = { at: Date.now(), routes: parseMetrics(metrics) };
    renderReady(ready);
    renderConfig(config);
    renderRoutes(routes, routeFigures(now));
    renderUpstreams(upstreams);
    renderEvents(events);
    previous = now;
    problem.hidden = true;
    document.getElementById('updated').textContent = new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof Unauthorized) {
      askToken();
      return;
    }
    problem.hidden = false;
    problem.textContent = `Cannot read the admin API: ${e.message}`;
  }
}

document.getElementById('token-form').addEventListener('submit', () => {
  sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value);
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
