// A real graphql-ws client (protocol `graphql-transport-ws`) for the gateway's
// integration tests: subscribes once, prints what it gets, cancels after COUNT
// results. Spawned by Rust tests with the node_modules of this directory
// (installed by scripts/test.sh, `npm ci`).
//
// Environment:
//   URL                ws:// URL of the GraphQL WebSocket endpoint (required)
//   QUERY              the subscription document (required)
//   VARIABLES          JSON object of variables (optional)
//   OPERATION_NAME     operation name (optional)
//   COUNT              cancel after this many results (optional; unset, empty
//                      or 0 means never: wait for the server to complete)
//   HEADERS            JSON object of extra HTTP headers for the upgrade
//                      request (optional)
//   CONNECTION_PARAMS  JSON for the connection_init payload (optional)
//   TIMEOUT_MS         overall time limit, default 15000
//
// Standard output, one line per event:
//   NEXT <json>        each `next` payload (GraphQL errors included), as JSON
//   CANCELLED          COUNT results seen; the subscription was cancelled (a
//                      `complete` message sent to the server)
//   DONE               200 ms after CANCELLED, the client was disposed; exit 0
//   COMPLETE           the server completed the subscription first; exit 0
//   ERROR <json>       the connection failed or closed while subscribed, or
//                      the server sent an `error` message; exit 2. The JSON is
//                      {"code","reason"} for a close (plus "message" when a
//                      socket error preceded it, e.g. ECONNREFUSED or
//                      "Unexpected server response: 401"), {"message"} for an
//                      error with no close, {"errors":[...]} for an `error`
//                      message from the server.
//   TIMEOUT            TIMEOUT_MS passed first; exit 3
// Bad usage (missing URL/QUERY, unparsable JSON) exits 1 with a message on
// standard error. Lifecycle diagnostics also go to standard error.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

function usage(message) {
  process.stderr.write(`graphql_subscribe.mjs: ${message}\n`);
  process.exit(1);
}

function jsonEnv(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch (err) {
    usage(`${name} is not valid JSON: ${err.message}`);
  }
}

const url = process.env.URL;
const query = process.env.QUERY;
if (!url) usage('URL is required (e.g. ws://127.0.0.1:1234/graphql)');
if (!query) usage('QUERY is required');
const variables = jsonEnv('VARIABLES');
const headers = jsonEnv('HEADERS') ?? {};
const connectionParams = jsonEnv('CONNECTION_PARAMS');
const operationName = process.env.OPERATION_NAME || undefined;

let count = Infinity;
if (process.env.COUNT) {
  count = Number(process.env.COUNT);
  if (!Number.isInteger(count) || count < 0) usage(`COUNT must be a non-negative integer, got ${process.env.COUNT}`);
  if (count === 0) count = Infinity;
}
let timeoutMs = 15000;
if (process.env.TIMEOUT_MS) {
  timeoutMs = Number(process.env.TIMEOUT_MS);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage(`TIMEOUT_MS must be a positive number, got ${process.env.TIMEOUT_MS}`);
}

const out = (line) => process.stdout.write(`${line}\n`);
const log = (line) => process.stderr.write(`graphql_subscribe.mjs: ${line}\n`);

// graphql-ws constructs `new WebSocketImpl(url, 'graphql-transport-ws')`; this
// subclass adds the extra upgrade headers through ws's options.
class HeaderWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers });
  }
}

// 'active' until COUNT results (then 'cancelled') or an end ('finished').
let state = 'active';
let lastClose; // { code, reason } of the most recent close
let lastSocketError; // message of the most recent socket error
let closeWaiters = [];

function isLikeCloseEvent(val) {
  return val !== null && typeof val === 'object' && 'code' in val && 'reason' in val;
}

function describe(err) {
  if (Array.isArray(err)) return { errors: err };
  if (isLikeCloseEvent(err)) return { code: err.code, reason: String(err.reason ?? '') };
  if (err && typeof err === 'object' && 'message' in err) return { message: String(err.message) };
  return { message: String(err) };
}

function finish(line, code) {
  clearTimeout(timer);
  out(line);
  process.exit(code);
}

async function fail(err) {
  if (state === 'finished') return;
  state = 'finished';
  const info = describe(err);
  if (!info.errors && info.code === undefined) {
    // A socket error comes before its close: give the close a moment to
    // arrive so that its code can be reported too.
    if (!lastClose) {
      await new Promise((resolve) => {
        closeWaiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
    if (lastClose) Object.assign(info, lastClose);
  }
  if (info.code !== undefined && info.message === undefined && lastSocketError) {
    info.message = lastSocketError;
  }
  finish(`ERROR ${JSON.stringify(info)}`, 2);
}

const timer = setTimeout(() => {
  state = 'finished';
  finish('TIMEOUT', 3);
}, timeoutMs);

const client = createClient({
  url,
  webSocketImpl: HeaderWebSocket,
  lazy: true,
  retryAttempts: 0,
  ...(connectionParams !== undefined ? { connectionParams } : {}),
});

client.on('connecting', () => log(`connecting to ${url}`));
client.on('opened', () => log('socket open'));
client.on('connected', (_socket, payload) => log(`connection acknowledged ${JSON.stringify(payload ?? null)}`));
client.on('error', (err) => {
  lastSocketError = String(err?.message ?? err);
  log(`socket error: ${lastSocketError}`);
});
client.on('closed', (event) => {
  lastClose = isLikeCloseEvent(event)
    ? { code: event.code, reason: String(event.reason ?? '') }
    : { code: undefined, reason: String(event) };
  log(`socket closed ${JSON.stringify(lastClose)}`);
  closeWaiters.forEach((resolve) => resolve());
  closeWaiters = [];
  // A close while subscribed is an error for this test peer, whatever the code
  // (graphql-ws itself would reconnect and resubscribe after a 1000 close).
  // This listener was registered before graphql-ws's own, so it runs first and
  // exits before any reconnect. A server `complete` sent before the close has
  // already been handled by now (it settles in microtasks; a close is a later
  // I/O event), so it is not mistaken for an error.
  if (state === 'active') fail(event);
});

let seen = 0;
const payload = { query };
if (variables !== undefined) payload.variables = variables;
if (operationName !== undefined) payload.operationName = operationName;

const unsubscribe = client.subscribe(payload, {
  next(result) {
    if (state !== 'active') return;
    out(`NEXT ${JSON.stringify(result)}`);
    seen += 1;
    if (seen >= count) {
      state = 'cancelled';
      unsubscribe(); // sends `complete` for this operation id
      out('CANCELLED');
      setTimeout(async () => {
        try {
          await client.dispose();
        } catch (err) {
          log(`dispose failed: ${err?.message ?? err}`);
        }
        state = 'finished';
        finish('DONE', 0);
      }, 200);
    }
  },
  error(err) {
    if (state !== 'active') return;
    fail(err);
  },
  complete() {
    // Also called after our own cancel; only a server-side completion counts.
    if (state !== 'active') return;
    state = 'finished';
    finish('COMPLETE', 0);
  },
});
