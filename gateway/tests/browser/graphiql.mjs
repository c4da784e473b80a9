// Drives the gateway's GraphiQL page in headless Chromium and runs a query
// from it, as a user would: type it into the query editor, press the execute
// button, read the result pane.
//
//   SWITCHYARD_CHROMIUM=/usr/bin/chromium node graphiql.mjs http://127.0.0.1:PORT/graphql
//
// Prints the result JSON and exits 0. Exits 1 with a message on anything
// wrong: the page not coming up, the result not arriving, a console error,
// an uncaught exception, a CSP violation, a failed or non-2xx request, or a
// request to any host but the page's own 127.0.0.1 (the page must work with
// no CDN). The whole run is bounded by DEADLINE_MS.
//
// Used by gateway/tests/graphiql_browser.rs; scripts/test.sh installs
// Chromium and this directory's node_modules (npm ci).

import { chromium } from 'playwright-core';

const DEADLINE_MS = 30_000;
const STEP_MS = 15_000;
const QUERY = '{ order(id: "1") { id user { name } items { sku stock { available } } } }';
const EXPECT = 'Ada Lovelace';

const url = process.argv[2];
const executablePath = process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium';
if (!url) {
  console.error('usage: node graphiql.mjs http://127.0.0.1:PORT/graphql');
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
  if (!type.startsWith('text/html')) await fail(`GET ${url} is ${type}, not the GraphiQL page`);

  // The editor is up once GraphiQL has rendered its CodeMirror instances.
  const editor = page.locator('.graphiql-query-editor .CodeMirror');
  try {
    await editor.first().waitFor({ state: 'visible' });
  } catch (e) {
    const body = await page.locator('body').innerText().catch(() => '?');
    await fail(`the GraphiQL query editor did not appear: ${e.message}\npage text: ${body.slice(0, 500)}`);
  }

  // Replace the query with the keyboard: focus, select all, type. The text is
  // inserted as one input (as from a paste or an IME), so the editor's
  // bracket auto-closing and completion pop-ups cannot garble it.
  await editor.first().click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(QUERY);
  const typed = await editor.first().evaluate((el) => el.CodeMirror.getValue());
  if (typed.trim() !== QUERY) await fail(`the query editor holds ${JSON.stringify(typed)}, not the query typed`);

  await page.locator('.graphiql-execute-button').click();

  // The result pane is a read-only CodeMirror; read its whole value (it
  // renders only the visible lines).
  const result = page.locator('.graphiql-response .CodeMirror').first();
  try {
    await page.waitForFunction(
      (expect) => {
        const cm = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror;
        return cm && cm.getValue().includes(expect);
      },
      EXPECT,
      { timeout: STEP_MS },
    );
  } catch (e) {
    const shown = await result.evaluate((el) => el.CodeMirror.getValue()).catch(() => '?');
    await fail(`the result pane never showed ${JSON.stringify(EXPECT)}: ${e.message}\nresult pane: ${shown}`);
  }
  const text = await result.evaluate((el) => el.CodeMirror.getValue());
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    await fail(`the result pane is not JSON (${e.message}):\n${text}`);
  }
  if (json.errors) await fail(`the result has errors:\n${text}`);

  await browser.close();
  browser = undefined;
  if (problems.length) await fail(`${problems.length} problem(s) while running the query`);
  clearTimeout(deadline);
  console.log(JSON.stringify(json, null, 2));
  process.exit(0);
} catch (e) {
  await fail(e?.stack ?? String(e));
}
