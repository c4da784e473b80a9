// A call of a route method over a WebSocket (`routes[].websocket`), made
// with the `ws` package for the gateway's integration tests: sends each
// message as a JSON text frame, then (END=1) an empty text frame to end the
// client's messages, and prints what comes back until the server closes.
//
// Environment:
//   URL         ws://host:port/{package.Service}/{Method} (required)
//   MESSAGES    JSON array of request messages (required)
//   END         "1": send the empty end frame after the messages
//   TIMEOUT_MS  overall time limit, default 15000
//
// Standard output, one line per event:
//   MESSAGE <json>        each text frame from the server
//   CLOSE <code> <reason> the server's close frame; exit 0
//   ERROR <message>       the connection failed; exit 2
//   TIMEOUT               TIMEOUT_MS passed first; exit 3

import WebSocket from 'ws';

const url = process.env.URL;
const messages = JSON.parse(process.env.MESSAGES ?? 'null');
if (!url || !Array.isArray(messages)) {
  process.stderr.write('method_call.mjs: URL and MESSAGES (a JSON array) are required\n');
  process.exit(1);
}
const timeout = Number(process.env.TIMEOUT_MS ?? 15000);
setTimeout(() => {
  console.log('TIMEOUT');
  process.exit(3);
}, timeout).unref();

const ws = new WebSocket(url);
ws.on('open', () => {
  for (const message of messages) {
    ws.send(JSON.stringify(message));
  }
  if (process.env.END === '1') {
    ws.send('');
  }
});
ws.on('message', (data, isBinary) => {
  console.log(`MESSAGE ${isBinary ? '<binary>' : data.toString()}`);
});
ws.on('close', (code, reason) => {
  console.log(`CLOSE ${code} ${reason.toString()}`);
  process.exit(0);
});
ws.on('error', (error) => {
  console.log(`ERROR ${error.message}`);
  process.exit(2);
});
