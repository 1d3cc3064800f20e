"""A bounded fuzz of the HTTP/1.1 parser and framing (issue 14): random mutations of valid
requests (request lines, fields, Content-Length and chunked bodies), each over a fresh
connection to a real server.

Whatever comes in, the server answers with a status of its own choosing that is never a
500 (it is not the server's fault), or closes; it never hangs past its timeouts, never
logs a traceback, and its memory stays bounded. The mutations come from a fixed seed, so
a failure is the same on every run; the first failing request is printed.
"""

from __future__ import annotations

import random
import selectors
import socket
import time

from tests.support.procs import vm_kib
from tests.support.server import betula
from tests.support.wire import request

APP = "tests.apps.h1_apps:app"
SEED = 20261201
CASES = 600
BATCH = 60  # connections open at once
# The server's timeouts are 1 s: an incomplete request ends within a tick or two of that.
DEADLINE = 15.0

BASES = [
    request("/fuzz?x=1", headers=("Host: t", "User-Agent: fuzz/1.0", "Accept: */*",
                                  "Cookie: a=b; c=d")),
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
    b"hello world",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    b"GET /headers HTTP/1.0\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n",
    request("/") + request("/plain"),  # pipelined
    b"GET http://example.com:80/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
]
INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b":", b";", b"0", b"9",
               b"\xff", b"-", b"HTTP/1.1", b"Transfer-Encoding: chunked\r\n",
               b"Content-Length: 3\r\n", b"\r\n\r\n", b"Host: x\r\n", b"http://", b"*",
               b",", b"@", b"[", b"/", b"CONNECT ", b"HEAD "]


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(data) + 1) if data else 0
        if kind == 0 and data:  # flip a byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:  # insert something that matters to a parser
            data[pos:pos] = rng.choice(INTERESTING)
        elif kind == 2 and data:  # delete a run
            del data[pos:pos + rng.randint(1, 8)]
        elif kind == 3:  # truncate
            del data[pos:]
        elif kind == 4:  # repeat a line
            lines = bytes(data).split(b"\r\n")
            if lines:
                line = rng.choice(lines)
                lines.insert(rng.randrange(len(lines) + 1), line)
                data = bytearray(b"\r\n".join(lines))
        else:  # a different number where a number was
            text = bytes(data)
            digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
            if digits:
                i = rng.choice(digits)
                data[i:i + 1] = str(rng.choice([0, 1, 7, 99, 2**31, 2**64])).encode()
    return bytes(data)


def run_batch(port: int, payloads: list[bytes]) -> list[bytes]:
    """Send each payload on its own connection; return what came back by the time the
    server closed each one (AssertionError for one still open at the deadline)."""
    sel = selectors.DefaultSelector()
    received: dict[socket.socket, bytearray] = {}
    for payload in payloads:
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.setblocking(False)
        received[sock] = bytearray()
        sel.register(sock, selectors.EVENT_READ)
    order = list(received)
    deadline = time.monotonic() + DEADLINE
    open_ = set(order)
    while open_ and time.monotonic() < deadline:  # bounded by the deadline
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""  # closed (with unread bytes of ours: a reset)
            if chunk:
                received[sock] += chunk
            else:
                sel.unregister(sock)
                open_.discard(sock)
    try:
        stuck = [bytes(payloads[order.index(s)]) for s in open_]
        assert not stuck, f"{len(stuck)} connection(s) still open after {DEADLINE}s: {stuck[:3]}"
        return [bytes(received[s]) for s in order]
    finally:
        for sock in order:
            sock.close()
        sel.close()


def test_mutated_requests_never_get_a_500_a_hang_or_a_traceback():
    server = betula(APP, "--port", "0", "--timeout-request-header", "1",
                    "--timeout-request-body", "1", "--timeout-keep-alive", "1",
                    "--limit-request-body", "100000").start()
    try:
        rng = random.Random(SEED)
        payloads = [mutate(rng, rng.choice(BASES)) for _ in range(CASES)]
        rss_before = vm_kib(server.proc.pid)
        statuses: dict[int, int] = {}
        for start in range(0, CASES, BATCH):
            batch = payloads[start:start + BATCH]
            for payload, answer in zip(batch, run_batch(server.port, batch), strict=True):
                for line in answer.split(b"\r\n"):
                    if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit():
                        status = int(line[9:12])
                        statuses[status] = statuses.get(status, 0) + 1
                        assert status != 500, f"500 for {payload!r}:\n{answer!r}"
        rss_after = vm_kib(server.proc.pid)
        log = "\n".join(server.lines)
        assert "Traceback" not in log, log[-4000:]
        assert "error while parsing request" not in log
        # Both kinds came back: the fuzz reached the app and the refusals.
        assert statuses.get(200, 0) > 0 and sum(
            n for s, n in statuses.items() if 400 <= s < 500) > 0, statuses
        assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
    finally:
        assert server.stop() == 0
