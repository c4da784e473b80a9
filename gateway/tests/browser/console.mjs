// Opens the admin console in headless Chromium, waits until it shows the
// route ROUTE with traffic and the upstream UPSTREAM in service, and saves
// a screenshot.
//
//   SWITCHYARD_CHROMIUM=/usr/bin/chromium node console.mjs http://127.0.0.1:PORT/console ROUTE UPSTREAM SHOT.png
//
// Prints the route's and the upstream's rows (cells joined by ` | `) and
// exits 0. Exits 1 with a message on anything
// wrong: the page not coming up, the result not arriving, a console error,
// an uncaught exception, a CSP violation, a failed or non-2xx request, or a
// request to any host but the page's own 127.0.0.1 (the page must work with
// no CDN). The whole run is bounded by DEADLINE_MS.
//
// Used by gateway/tests/admin_console.rs; scripts/test.sh installs
// Chromium and this directory's node_modules (npm ci).

import { chromium } from 'playwright-core';

const DEADLINE_MS = 30_000;
const STEP_MS = 15_000;

const [url, routeName, upstreamName, shot] = process.argv.slice(2);
const executablePath = process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium';
if (!url || !routeName || !upstreamName || !shot) {
  console.error('usage: node console.mjs http://127.0.0.1:PORT/console ROUTE UPSTREAM SHOT.png');
  process.exit(2);
}
const origin = new URL(url);
if (origin.hostname !== '127.0.0.1') {
  console.error(`the page must be on 127.0.0.1, not ${origin.hostname}`);
  process.exit(2);
}

let browser;
const problems = [];
const problem = (what) => {
  problems.push(what);
  console.error(`problem: ${what}`);
};

async function fail(message) {
  console.error(`FAIL: ${message}`);
  if (problems.length) console.error(`problems seen:\n  ${problems.join('\n  ')}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}

const deadline = setTimeout(
  () => fail(`gave up after ${DEADLINE_MS} ms`),
  DEADLINE_MS,
);

// Whether the page may fetch `target`: only its own origin (and inline data).
function allowed(target) {
  const u = new URL(target);
  if (u.protocol === 'data:' || u.protocol === 'blob:') return true;
  return u.protocol === origin.protocol && u.hostname === '127.0.0.1' && u.port === origin.port;
}

try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox'],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
  // Nothing leaves the machine: anything off-origin is refused and reported.
  await context.route('**/*', (route) => {
    const target = route.request().url();
    if (allowed(target)) return route.continue();
    problem(`request to another host: ${target}`);
    return route.abort('blockedbyclient');
  });
  // CSP violations also reach the console in Chromium; this names them plainly.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`);
    });
  });

  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'assert') {
      const where = msg.location()?.url ? ` (${msg.location().url})` : '';
      problem(`console ${msg.type()}: ${msg.text()}${where}`);
    }
  });
  page.on('pageerror', (err) => problem(`uncaught exception: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (allowed(req.url())) problem(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problem(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });

  const response = await page.goto(url, { waitUntil: 'load' });
  if (!response?.ok()) await fail(`GET ${url}: HTTP ${response?.status()}`);
  const type = response.headers()['content-type'] ?? '';
  if (!type.startsWith('text/html')) await fail(`GET ${url} is ${type}, not the console`);

  const row = (selector) => page.locator(selector).first();
  const routeRow = row(`#routes tr[data-route="${routeName}"]`);
  const upstreamRow = row(`#upstreams tr[data-upstream="${upstreamName}"]`);
  // The route shows traffic once two scrapes saw requests, or the totals
  // from the first; either way its request rate cell becomes non-zero or
  // its p99 a figure.
  try {
    await routeRow.waitFor({ state: 'visible' });
    await page.waitForFunction(
      (name) => {
        const cells = document.querySelector(`#routes tr[data-route="${name}"]`)?.cells;
        return cells && cells[7].textContent !== '—';
      },
      routeName,
    );
    await upstreamRow.waitFor({ state: 'visible' });
    await upstreamRow.locator('.pill.ok').waitFor({ state: 'visible' });
    await page.locator('#reloads tbody tr').first().waitFor({ state: 'visible' });
  } catch (e) {
    const body = await page.locator('main').innerText().catch(() => '?');
    await fail(`the console did not show ${routeName} and ${upstreamName}: ${e.message}\npage text: ${body.slice(0, 800)}`);
  }
  const cells = (locator) => locator.locator('td').allInnerTexts();
  const route = (await cells(routeRow)).join(' | ');
  const upstream = (await cells(upstreamRow)).join(' | ');
  const ready = await page.locator('#ready').innerText();
  await page.screenshot({ path: shot, fullPage: true });

  await browser.close();
  browser = undefined;
  if (problems.length) await fail(`${problems.length} problem(s) while loading the page`);
  clearTimeout(deadline);
  console.log(`ready: ${ready}`);
  console.log(`route: ${route}`);
  console.log(`upstream: ${upstream}`);
  process.exit(0);
} catch (e) {
  await fail(e?.stack ?? String(e));
}
