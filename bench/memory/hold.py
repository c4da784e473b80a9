"""Opens COUNT connections to the gateway and holds them, for bench/memory/run.sh.

    hold.py PORT idle|sse COUNT

idle: each connection sends one `GET /v1/users/1` (keep-alive), reads the
answer, then stays open and silent. sse: each sends `GET
/v1/users/1/orders:watch` with `Accept: text/event-stream` and reads until
its first event, then holds the stream. Prints "ready N" once all are open,
then waits until stdin closes.
"""

import asyncio
import sys


async def open_one(port, kind, held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "idle":
        writer.write(b"GET /v1/users/1 HTTP/1.1\r\nHost: a\r\n\r\n")
        marker = b"}"
    else:
        writer.write(
            b"GET /v1/users/1/orders:watch HTTP/1.1\r\nHost: a\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        marker = b"\n\n"
    await writer.drain()
    seen = b""
    while marker not in seen.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in seen:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError("closed before answering: %r" % seen[:200])
        seen += chunk
    if b" 200 " not in seen.split(b"\r\n", 1)[0]:
        raise RuntimeError("not a 200: %r" % seen[:200])
    held.append((reader, writer))


async def main():
    port, kind, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    held = []
    # Opened in batches, so the listener's backlog is never the limit.
    for start in range(0, count, 200):
        await asyncio.gather(*(open_one(port, kind, held) for _ in range(start, min(count, start + 200))))
    print("ready", len(held), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
