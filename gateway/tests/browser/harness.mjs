// What every browser test script shares: headless Chromium (playwright-core,
// `$SWITCHYARD_CHROMIUM`, else /usr/bin/chromium) on a page of the gateway,
// with everything that would make the page wrong collected as a problem: a
// console error, an uncaught exception, a CSP violation, a failed or non-2xx
// request, or a request to any host but the page's own 127.0.0.1 (pages
// must work with no CDN). The whole run is bounded by DEADLINE_MS.
//
//   const { page, fail, finish } = await open(url, 'the console', 'text/html');
//   ... drive the page; `await fail(message)` ends the run with exit 1 ...
//   await finish(output);   // exit 0 printing `output`, or 1 if any problem was seen
//
// Used by docs.mjs, graphiql.mjs and console.mjs; scripts/test.sh installs
// Chromium and this directory's node_modules (npm ci).

import { chromium } from 'playwright-core';

export const DEADLINE_MS = 30_000;
export const STEP_MS = 15_000;

/// Opens `url` (which must be on 127.0.0.1) in a new page; fails unless it
/// answers 2xx with a `contentType` document.
export async function open(url, what, contentType = 'text/html') {
  const origin = new URL(url);
  if (origin.hostname !== '127.0.0.1') {
    console.error(`the page must be on 127.0.0.1, not ${origin.hostname}`);
    process.exit(2);
  }
  const problems = [];
  const problem = (text) => {
    problems.push(text);
    console.error(`problem: ${text}`);
  };
  let browser;
  const fail = async (message) => {
    console.error(`FAIL: ${message}`);
    if (problems.length) console.error(`problems seen:\n  ${problems.join('\n  ')}`);
    await browser?.close().catch(() => {});
    process.exit(1);
  };
  const deadline = setTimeout(() => fail(`gave up after ${DEADLINE_MS} ms`), DEADLINE_MS);
  // Whether the page may fetch `target`: only its own origin (and inline data).
  const allowed = (target) => {
    const u = new URL(target);
    if (u.protocol === 'data:' || u.protocol === 'blob:') return true;
    return u.protocol === origin.protocol && u.hostname === '127.0.0.1' && u.port === origin.port;
  };
  try {
    browser = await chromium.launch({
      executablePath: process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium',
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
    if (!type.startsWith(contentType)) await fail(`GET ${url} is ${type}, not ${what}`);
    const finish = async (output) => {
      await browser.close();
      browser = undefined;
      if (problems.length) await fail(`${problems.length} problem(s) on ${what}`);
      clearTimeout(deadline);
      console.log(output);
      process.exit(0);
    };
    return { page, fail, finish };
  } catch (e) {
    return fail(e?.stack ?? String(e));
  }
}
