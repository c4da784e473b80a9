// Opens the gateway's API docs page (Swagger UI on the generated OpenAPI
// document) in headless Chromium and reads the operations it lists.
//
//   SWITCHYARD_CHROMIUM=/usr/bin/chromium node docs.mjs http://127.0.0.1:PORT/docs
//
// Prints the listed operations (`METHOD path`, one per line) and exits 0.
// Exits 1 with a message on anything wrong (see harness.mjs): the page not
// coming up, no operation listed, or any problem the harness watches for.
//
// Used by gateway/tests/openapi_browser.rs.

import { open } from './harness.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node docs.mjs http://127.0.0.1:PORT/docs');
  process.exit(2);
}

const { page, fail, finish } = await open(url, 'the docs page');
try {
  // Swagger UI renders one `.opblock` per operation once the document loaded.
  try {
    await page.locator('.opblock').first().waitFor({ state: 'visible' });
  } catch (e) {
    const body = await page.locator('body').innerText().catch(() => '?');
    await fail(`no operation appeared: ${e.message}\npage text: ${body.slice(0, 500)}`);
  }
  const operations = await page.locator('.opblock-summary').evaluateAll((blocks) =>
    blocks.map((b) => {
      const method = b.querySelector('.opblock-summary-method')?.textContent?.trim();
      const path = b.querySelector('.opblock-summary-path')?.getAttribute('data-path')
        ?? b.querySelector('.opblock-summary-path')?.textContent?.trim();
      return `${method} ${path}`;
    }),
  );
  if (!operations.length) await fail('the page lists no operation');
  await finish(operations.join('\n'));
} catch (e) {
  await fail(e?.stack ?? String(e));
}
