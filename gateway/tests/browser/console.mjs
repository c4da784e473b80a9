// Opens the admin console in headless Chromium, waits until it shows the
// route ROUTE with traffic and the upstream UPSTREAM in service, and saves
// a screenshot.
//
//   SWITCHYARD_CHROMIUM=/usr/bin/chromium node console.mjs http://127.0.0.1:PORT/console ROUTE UPSTREAM SHOT.png
//
// Prints readiness and the route's and the upstream's rows (cells joined
// by ` | `) and exits 0. Exits 1 with a message on anything wrong (see
// harness.mjs).
//
// Used by gateway/tests/admin_console.rs.

import { open } from './harness.mjs';

const [url, routeName, upstreamName, shot] = process.argv.slice(2);
if (!url || !routeName || !upstreamName || !shot) {
  console.error('usage: node console.mjs http://127.0.0.1:PORT/console ROUTE UPSTREAM SHOT.png');
  process.exit(2);
}

const { page, fail, finish } = await open(url, 'the console');
try {
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

  await finish(`ready: ${ready}\nroute: ${route}\nupstream: ${upstream}`);
} catch (e) {
  await fail(e?.stack ?? String(e));
}
