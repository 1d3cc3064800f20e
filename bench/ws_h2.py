"""Compressed WebSocket echo over HTTP/2 (RFC 8441) against the same over HTTP/1.1, by the
server's CPU time per message (the measure that stays fair when the client is the
bottleneck), in one run:

    python bench/ws_h2.py [--duration 8] [--repeat 3]

- ``betula-h2``: Betula, extended CONNECT streams (``--streams`` per connection, over
  ``--connections`` h2c connections) from this script's client (asyncio, h2 and
  websockets' client framing with permessage-deflate, on CPU 0);
- ``betula-h1`` and ``uvicorn-h1``: the same echo over HTTP/1.1 from ``bench/wsload.c``
  (C) with ``deflate``, as ``bench/run.py``'s ``wsecho-deflate``.

Every message is 1 KiB of JSON-like text that changes each time (an id, a counter, item
lines), compressed with context takeover both ways, as a browser's. The server (one
worker) is pinned to CPU 1. Prints msg/s and server CPU µs per message per round, then
the medians and Betula's CPU ratio to uvicorn (uvicorn µs ÷ Betula µs: > 1, Betula
cheaper). uvicorn has no WebSocket over HTTP/2, hence the HTTP/1.1 baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from bench.procs import HOST, cpu_of_group, start_pinned, stop  # noqa: E402
from bench.run import ensure_wsload, run_wsload  # noqa: E402

VENV = BENCH / ".venv-peers"


def message(conn: int, count: int, size: int = 1024) -> str:
    head = json.dumps({"id": conn, "seq": count, "user": f"user{conn}"})[:-1]
    items = []
    n = 0
    while len(head) + sum(len(i) for i in items) + 20 < size:
        items.append(f',"item{n}":"value {count * 7 + n} of {conn}"')
        n += 1
    text = head + "".join(items)
    return (text + "," + '"pad":"' + "x" * max(0, size - len(text) - 10) + '"}')[:size]


class H2Echo(asyncio.Protocol):
    """One h2c connection with ``streams`` WebSocket streams echoing until ``stop``."""

    def __init__(self, streams: int, counter: list[int], stop: float, done: asyncio.Future):
        self.streams = streams
        self.counter = counter
        self.stop = stop
        self.done = done
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.ws: dict[int, ClientProtocol] = {}
        self.sent: dict[int, int] = {}
        self.open = 0

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(2**30)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def start_streams(self) -> None:
        for _ in range(self.streams):
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, [
                (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
                (b":path", b"/ws"), (b":authority", b"bench"),
                (b"sec-websocket-version", b"13"),
                (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")])
        self.flush()

    def send_next(self, sid: int) -> None:
        proto = self.ws[sid]
        self.sent[sid] += 1
        proto.send_text(message(sid, self.sent[sid]).encode())
        self.conn.send_data(sid, b"".join(proto.data_to_send()))

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and not self.ws:
                self.start_streams()
            elif isinstance(event, h2.events.ResponseReceived):
                fields = dict(event.headers)
                assert fields[b":status"] == b"200", fields
                proto = ClientProtocol(parse_uri("ws://bench/ws"),
                                       extensions=[ClientPerMessageDeflateFactory()])
                proto.extensions = proto.process_extensions(Headers(
                    [(n.decode(), v.decode()) for n, v in event.headers
                     if not n.startswith(b":")]))
                assert proto.extensions, "the server did not take permessage-deflate"
                proto.state = OPEN
                proto.parser = proto.parse()
                next(proto.parser)
                self.ws[event.stream_id] = proto
                self.sent[event.stream_id] = 0
                self.send_next(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
                proto = self.ws[event.stream_id]
                proto.receive_data(event.data)
                for frame in proto.events_received():
                    if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT:
                        self.counter[0] += 1
                        if time.monotonic() < self.stop:
                            self.send_next(event.stream_id)
                        elif not self.done.done():
                            self.done.set_result(None)
        self.flush()


async def h2_client(port: int, connections: int, streams: int, duration: float) -> int:
    import uvloop  # noqa: F401 - the client's loop is uvloop's (set in main)
    loop = asyncio.get_running_loop()
    counter = [0]
    warm_stop = time.monotonic() + 1.0
    # warm-up: one connection for a second
    done = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: H2Echo(streams, [0], warm_stop, done), HOST, port)
    await asyncio.wait_for(done, 10)
    transport.close()
    stop = time.monotonic() + duration
    futures = []
    transports = []
    for _ in range(connections):
        fut = loop.create_future()
        futures.append(fut)
        tr, _ = await loop.create_connection(
            lambda fut=fut: H2Echo(streams, counter, stop, fut), HOST, port)
        transports.append(tr)
    await asyncio.wait_for(asyncio.gather(*futures), duration + 20)
    for tr in transports:
        tr.close()
    return counter[0]


BETULA = [sys.executable, "-m", "betula", "bench.app_asgi:app", "--host", HOST,
          "--port", "{port}", "--no-access-log", "--log-level", "warning"]
UVICORN = [str(VENV / "bin" / "uvicorn"), "bench.app_asgi:app", "--host", HOST, "--port",
           "{port}", "--http", "httptools", "--loop", "uvloop",
           "--no-access-log", "--log-level", "warning"]


def one(name: str, args) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    proc, port = start_pinned(UVICORN if name == "uvicorn-h1" else BETULA, ROOT)
    try:
        if name == "betula-h2":
            cmd = [sys.executable, __file__, "--client", str(port), "--duration",
                   str(args.duration), "--connections", str(args.connections),
                   "--streams", str(args.streams)]
            subprocess.run(["taskset", "-c", "0", *cmd[:2], "--client", str(port),
                            "--duration", "1", "--connections", "1", "--streams", "4"],
                           check=True, capture_output=True)  # warm-up
            before = cpu_of_group(proc.pid)
            out = subprocess.run(["taskset", "-c", "0", *cmd], check=True,
                                 capture_output=True, text=True).stdout
            used = cpu_of_group(proc.pid) - before
            messages = int(out.split()[0])
        else:
            run_wsload(port, "/ws", 1, args.connections * args.streams, 0, deflate=True)
            before = cpu_of_group(proc.pid)
            result, text = run_wsload(port, "/ws", args.duration,
                                      args.connections * args.streams, 0, deflate=True)
            used = cpu_of_group(proc.pid) - before
            assert result is not None, text
            messages = result["requests"]
    finally:
        stop(proc)
    return messages / args.duration, used / messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--client", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:  # the h2 client, in its own process on CPU 0
        import uvloop
        uvloop.install()
        print(asyncio.run(h2_client(args.client, args.connections, args.streams,
                                    args.duration)))
        return 0
    ensure_wsload()
    names = ["betula-h2", "betula-h1", "uvicorn-h1"]
    rows: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for n in range(args.repeat):
        for name in names:
            rate, cpu = one(name, args)
            rows[name].append((rate, cpu))
            print(f"round {n + 1} {name}: {rate:,.0f} msg/s, server CPU {cpu:.1f} us/message",
                  flush=True)
    print("\n| server | msg/s (median) | server CPU µs/message (median) |\n|---|---:|---:|")
    medians = {}
    for name in names:
        rate = statistics.median(r for r, _ in rows[name])
        medians[name] = statistics.median(c for _, c in rows[name])
        print(f"| {name} | {rate:,.0f} | {medians[name]:.1f} |")
    for name in ("betula-h2", "betula-h1"):
        print(f"CPU per message, uvicorn-h1 / {name}: "
              f"{medians['uvicorn-h1'] / medians[name]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
