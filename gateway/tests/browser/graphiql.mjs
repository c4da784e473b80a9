// Drives the gateway's GraphiQL page in headless Chromium and runs a query
// from it, as a user would: type it into the query editor, press the execute
// button, read the result pane.
//
//   SWITCHYARD_CHROMIUM=/usr/bin/chromium node graphiql.mjs http://127.0.0.1:PORT/graphql
//
// Prints the result JSON and exits 0. Exits 1 with a message on anything
// wrong (see harness.mjs): the page not coming up, the result not
// arriving, or any problem the harness watches for.
//
// Used by gateway/tests/graphiql_browser.rs.

import { STEP_MS, open } from './harness.mjs';

const QUERY = '{ order(id: "1") { id user { name } items { sku stock { available } } } }';
const EXPECT = 'Ada Lovelace';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphiql.mjs http://127.0.0.1:PORT/graphql');
  process.exit(2);
}

const { page, fail, finish } = await open(url, 'the GraphiQL page');
try {
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

  await finish(JSON.stringify(json, null, 2));
} catch (e) {
  await fail(e?.stack ?? String(e));
}
