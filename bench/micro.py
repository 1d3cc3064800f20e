"""Per-request Python cost of the HTTP/1 + ASGI (or WSGI) path, without sockets or syscalls.

Feeds requests into real ``HTTP1Connection`` objects whose transport only counts bytes, 64
connections per loop turn (like wrk -c64), and reports microseconds per request. Use it to
A/B hot-path changes; confirm with bench/run.py.

    python bench/micro.py [--requests 200000] [--path /] [--post 4096] [--wsgi]

With --wsgi the WSGI app (bench/app_wsgi.py) runs inline in the loop thread instead of
the thread pool: the cost measured is the adapter's, without the hand-off between threads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.app_asgi import app  # noqa: E402
from bench.app_wsgi import app as wsgi_app  # noqa: E402
from betula.config import Config  # noqa: E402
from betula.server import Worker, new_event_loop  # noqa: E402


class CountingTransport:
    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)
        self.writes += 1

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.write(part)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


BROWSER_HEADERS = (
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
)


class InlineExecutor:
    """Runs each WSGI task at once, in the calling thread."""

    size = 1

    def submit(self, task) -> None:  # type: ignore[no-untyped-def]
        task()

    def shutdown(self) -> None:
        pass


def unique_requests(count: int) -> list[bytes]:
    """``count`` browser-like GETs, each head different (as bench/unique.lua sends)."""
    random = __import__("random").Random(14)
    out = []
    for n in range(count):
        rid = b"%08x%08x" % (n, random.randrange(0x7FFFFFFF))
        out.append(
            b"GET /?page=%d&q=%s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
            b"Gecko) Chrome/131.0 Safari/537.36\r\n"
            b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            b"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
            b"Cookie: session=%s; theme=dark; seen=%d\r\nX-Request-Id: %s\r\n"
            b"Sec-Fetch-Mode: navigate\r\nSec-Fetch-Site: same-origin\r\n\r\n"
            % (n, rid, rid, n, rid))
    return out


async def drive(total: int, request: bytes | list[bytes], conns: int,
                wsgi: bool = False, metrics: bool = False) -> float:
    loop = asyncio.get_running_loop()
    # --metrics: the worker counts for Prometheus (metrics.py; no listener is opened here)
    extra = {"metrics_port": 9100} if metrics else {}
    if wsgi:
        config = Config.load({"app": "bench.app_wsgi:app", "access_log": False,
                              "interface": "wsgi", **extra})
        worker = Worker(config, wsgi_app, loop, interface="wsgi")
        worker.state.pool = InlineExecutor()  # type: ignore[assignment]
    else:
        config = Config.load({"app": "bench.app_asgi:app", "access_log": False, **extra})
        worker = Worker(config, app, loop)
    connections = []
    for _ in range(conns):
        conn = worker.connection()
        conn.connection_made(CountingTransport())
        connections.append(conn)
    done = 0
    requests = request if isinstance(request, list) else [request] * conns
    at = 0
    start = time.perf_counter()
    while done < total:
        for conn in connections:
            conn.data_received(requests[at])
            at = at + 1 if at + 1 < len(requests) else 0
        for _ in range(3):
            await asyncio.sleep(0)
        done += conns
    elapsed = time.perf_counter() - start
    written = sum(c.transport.writes for c in connections)
    assert written >= done, (written, done)
    return elapsed / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--path", default="/")
    parser.add_argument("--post", type=int, default=0, help="POST a body of N bytes to /echo")
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--wsgi", action="store_true", help="bench/app_wsgi.py, run inline")
    parser.add_argument("--browser", action="store_true",
                        help="send a browser's headers (User-Agent, Accept..., 9 in all)")
    parser.add_argument("--unique", action="store_true",
                        help="heads that never repeat (bench/unique.lua's traffic: a new "
                        "query, Cookie and X-Request-Id per request)")
    parser.add_argument("--metrics", action="store_true",
                        help="with --metrics-port's counting on (what it costs a request)")
    args = parser.parse_args()
    if args.post:
        request = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % args.post
                   + b"x" * args.post)
    else:
        request = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % args.path.encode()
    if args.browser:
        request = request.replace(b"Host: x\r\n", b"Host: x\r\n" + BROWSER_HEADERS)
    if args.unique:
        request = unique_requests(50_000)  # type: ignore[assignment]
    loop, name = new_event_loop()
    rounds = [loop.run_until_complete(drive(args.requests // 5, request, args.conns, args.wsgi,
                                               args.metrics))
              for _ in range(5)]
    print(f"{name}: best {min(rounds):.2f} us/request, median {sorted(rounds)[2]:.2f} "
          "(python side only)")


if __name__ == "__main__":
    main()
