"""Framing cost of the WebSocket echo step with each candidate library (issue 5).

Measures, per 1 KiB text message: parse one masked client frame into a message event, then
frame the same text back (unmasked). That is the whole per-message work the server asks of
the framing library in the echo benchmark; the rest (ASGI, event loop) is the same for all.
"betula" is betula.protocols.websocket's own fast path for plain data frames (the frames it
does not take still go through websockets).

    python bench/ws_framing.py [messages]
"""

from __future__ import annotations

import sys
import time

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
TEXT = "x" * 1024


def client_frames(n: int) -> list[bytes]:
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN)
    out = []
    for _ in range(n):
        client.send_text(TEXT.encode())
        out.append(b"".join(client.data_to_send()))
    return out


def bench_websockets(frames: list[bytes]) -> float:
    server = ServerProtocol(state=State.OPEN, max_size=1 << 20)
    start = time.perf_counter()
    for data in frames:
        server.receive_data(data)
        for event in server.events_received():
            if event.opcode is Opcode.TEXT:
                server.send_text(event.data)
        server.data_to_send()
    return time.perf_counter() - start


def bench_betula(frames: list[bytes]) -> float:
    """Betula's WebSocketConnection (its fast path over websockets) over a pipe that only
    collects what would be written."""
    from types import SimpleNamespace

    from betula.protocols.websocket import WebSocketConnection

    class Collecting:
        write_paused = False

        def __init__(self) -> None:
            self.out: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.out.append(data)

        def writelines(self, parts) -> None:
            self.out.extend(parts)

    class Echo:
        def on_message(self, data) -> None:
            conn.send(data)

        def on_close(self, code: int, reason: str) -> None:
            pass

    config = SimpleNamespace(ws_ping_interval=0, ws_close_timeout=5)
    server = SimpleNamespace(loop=None, config=config, connections=set())
    conn = WebSocketConnection(server, ServerProtocol(state=State.OPEN, max_size=1 << 20),
                               Echo())
    conn.pipe = pipe = Collecting()
    start = time.perf_counter()
    for data in frames:
        conn.feed(data)
        pipe.out.clear()
    return time.perf_counter() - start


def bench_wsproto(frames: list[bytes]) -> float:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage

    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n")
    for event in server.events():
        assert isinstance(event, Request)
    server.send(AcceptConnection())
    start = time.perf_counter()
    for data in frames:
        server.receive_data(data)
        for event in server.events():
            if isinstance(event, TextMessage):
                server.send(TextMessage(data=event.data))
    return time.perf_counter() - start


def main() -> None:
    frames = client_frames(N)
    for name, fn in (("websockets", bench_websockets), ("wsproto", bench_wsproto),
                     ("betula", bench_betula)):
        try:
            best = min(fn(frames) for _ in range(3))
        except ImportError as exc:  # wsproto is a peer, not a dependency
            print(f"{name:10s} not run ({exc})")
            continue
        print(f"{name:10s} {best / N * 1e6:6.2f} us/message  ({N / best:,.0f} messages/s)")


if __name__ == "__main__":
    main()
