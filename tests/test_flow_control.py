"""Flow control both ways, with the server's memory kept flat (issue 2, "Flow control").

- Upload: reading from the socket pauses while the app is not consuming the body, so a large
  body sent to a slow (or stalled) app never piles up in the server.
- Download: ``send()`` waits while the client is not reading (the transport's buffer is
  bounded), so a large response to a slow (or absent) reader never piles up either.

Two measures, each against what a server that buffered the transfer would show:

- the server process's peak RSS (``VmHWM``), compared with its peak right before the
  transfer: it may grow by ``MAX_GROWTH``, a few MiB more than measured (about 1.3 MiB) and
  far below the 128 or 256 MiB each test moves. ``bench/memory.py`` does 1 GiB both ways for
  the README's figure (within 2 MiB of idle);
- while a side stalls, the bytes the server took in and has not passed on: what one end put
  into the connection minus what the other end got minus what the kernel holds in the two
  socket buffers (/proc/net/tcp). That is the server's own buffer, whatever the machine's
  socket buffer sizes are; it may be ``HELD_MAX``, derived from the server's documented limits
  (256 KiB each way) and how far past them one read or one send() can take it.

No verdict waits on a clock. A stall is established by events: the client's kernel probing
a closed window (the server stopped reading), or one ``send()`` of the app staying pending
while the server answers ``WITNESSES`` other requests (the server's loop runs on, and that
send() waits for the client). Each test starts its own server so the peak is its own.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import uuid

import httpx
import pytest

from tests.support.memory import MIB, PeakRSS
from tests.support.procs import wait_until
from tests.support.tcp import tcp_ends
from tests.support.wire import read_head, read_response

APP = "tests.apps.flow_apps:app"
CHUNK = 64 * 1024  # what the /download and /forever apps send per send()
BIG = 256 * MIB
# The server's documented limits: request body buffered for the app before reading pauses
# (BODY_HIGH_WATER, betula/asgi/http.py) and response bytes in the transport before send()
# waits (WRITE_HIGH_WATER, betula/protocols/flow.py).
HIGH_WATER = 256 * 1024
# The most one socket read takes in (asyncio's selector transport: max_size).
READ_MAX = 256 * 1024
# Bytes the server may hold for a stalled connection beyond the kernel's socket buffers. It
# crosses the high-water mark by at most one socket read on upload, or one 64 KiB send() on
# download, so it holds at most 512 KiB; measured 290 to 500 KiB up and 200 KiB down. Twice
# that bound leaves room for the head and loop internals; limits of 3 MiB instead of 256 KiB
# hold about 3 MiB each way and fail it.
HELD_MAX = 2 * (HIGH_WATER + READ_MAX)
# Peak RSS growth allowed for one transfer: measured 1.4 to 1.9 MiB for an upload and under
# 0.1 MiB for a download (the held bytes plus allocator slack); high-water marks of 3 MiB
# instead of 256 KiB grow an upload by about 12 MiB, a buffering server by far more.
MAX_GROWTH = 6 * MIB
# Requests the server answers while one send() of the app stays pending.
WITNESSES = 20
# The byte stream /download sends: 0..255 repeated.
STREAM = bytes(range(256)) * (2 * MIB // 256 + 1)

pytestmark = pytest.mark.timeout(120)


def warm_up(server) -> PeakRSS:
    """Touch the code paths once so their first-use allocations are in the baseline; the
    peak RSS from here on."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post("/slow-upload", content=b"x" * 300_000).json()["bytes"] == 300_000
        assert len(client.get("/download", params={"size": 300_000}).content) == 300_000
    return PeakRSS(server.proc.pid)


def ask(sock: socket.socket, target: str):
    """GET ``target`` on a kept-alive raw connection; the JSON answer."""
    sock.sendall(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
    status, _, _, body = read_response(sock)
    assert status == 200, body
    return json.loads(body)


def check_growth(peak: PeakRSS, what: str) -> None:
    growth = peak.growth()
    print(f"peak RSS growth, {what}: {growth / MIB:.2f} MiB")
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB for {what}"


def test_large_upload_to_slow_app_keeps_memory_flat(serve):
    server = serve(APP)
    peak = warm_up(server)
    block = b"u" * MIB
    with server.connect(timeout=60) as sock:
        sock.sendall(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % BIG)
        for _ in range(BIG // MIB):
            sock.sendall(block)
        status, _, _, body = read_response(sock, timeout=60)
    assert status == 200, body
    result = json.loads(body)
    assert result["bytes"] == BIG  # every byte reached the app, exactly once
    check_growth(peak, "a 256 MiB upload to a slow app")
    assert result["messages"] > 64  # streamed in many http.request messages, not buffered whole


def test_chunked_upload_to_slow_app_keeps_memory_flat(serve):
    """Same with Transfer-Encoding: chunked (no Content-Length to plan with)."""
    server = serve(APP)
    peak = warm_up(server)
    size = 128 * MIB
    frame = b"%x\r\n%b\r\n" % (MIB, b"c" * MIB)
    with server.connect(timeout=60) as sock:
        sock.sendall(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(size // MIB):
            sock.sendall(frame)
        sock.sendall(b"0\r\n\r\n")
        status, _, _, body = read_response(sock, timeout=60)
    assert status == 200, body
    assert json.loads(body)["bytes"] == size
    check_growth(peak, "a 128 MiB chunked upload to a slow app")


class Uploader(threading.Thread):
    """Sends a request head and ``size`` body bytes as fast as the kernel takes them, then
    reads the response. ``accepted`` (under ``lock``) is exact: no send() is in progress
    while the lock is free."""

    def __init__(self, sock: socket.socket, head: bytes, size: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.head, self.size = sock, head, size
        self.lock = threading.Lock()
        self.accepted = 0  # bytes (head included) the client's kernel took
        self.body_sent = False
        self.response: tuple | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._send(self.head)
            block = memoryview(b"s" * MIB)
            for _ in range(self.size // MIB):
                self._send(block)
            self.body_sent = True
            self.sock.settimeout(60)
            self.response = read_response(self.sock, timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def _send(self, data) -> None:
        view = memoryview(data)
        self.sock.setblocking(False)
        while view:
            select.select([], [self.sock], [], 1.0)
            with self.lock:
                try:
                    n = self.sock.send(view)
                except BlockingIOError:
                    continue
                self.accepted += n
            view = view[n:]


def test_reading_pauses_while_app_does_not_consume_body(serve):
    """An app that stops calling receive(): the server stops reading, so its receive window
    closes with a bounded amount taken; once the app reads again, every byte arrives."""
    server = serve(APP)
    peak = warm_up(server)
    token = uuid.uuid4().hex
    sock = server.connect(timeout=60)
    uploader = Uploader(sock, b"POST /stalled-upload?token=%b HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: %d\r\n\r\n" % (token.encode(), BIG), BIG)
    uploader.start()
    try:
        # The client's kernel probes a closed window: the server's receive buffer is full,
        # so the server is not reading. A server reading on takes the whole body instead.
        closed = wait_until(lambda: uploader.body_sent or uploader.error
                            or tcp_ends(sock)[0].zero_window, timeout=60)
        assert not uploader.error, uploader.error
        assert not uploader.body_sent, \
            "the client sent the whole 256 MiB body while the app was not reading"
        assert closed, "the server's receive window never closed while the app was stalled"
        # The server goes on serving (and would go on reading, if it did not pause) ...
        with server.connect() as other:
            for _ in range(WITNESSES):
                state = ask(other, f"/received?token={token}")
                assert state["stalled"] and state["messages"] == 1, state
        # ... and what it took from the connection is its bounded buffer plus what the
        # app got: the rest sits in the kernel's buffers or was never accepted.
        with uploader.lock:
            client_end, server_end = tcp_ends(sock)
            held = uploader.accepted - client_end.unacked - server_end.unread - state["bytes"]
        print(f"held by the server while the app stalled: {held / 1024:.0f} KiB "
              f"(the app took {state['bytes'] / 1024:.0f} KiB)")
        assert held < HELD_MAX, \
            f"the server took {held / MIB:.1f} MiB more than the stalled app read"
        assert state["bytes"] < HELD_MAX, f"the app's first message held {state['bytes']} bytes"
    finally:
        httpx.get(server.base_url + "/release", params={"token": token}, timeout=10)
        uploader.join(60)
        sock.close()
    assert not uploader.is_alive(), "upload did not finish after the app resumed reading"
    assert not uploader.error, uploader.error
    status, _, _, body = uploader.response
    assert status == 200, body
    assert json.loads(body)["bytes"] == BIG
    check_growth(peak, "a 256 MiB upload to an app that stalled")


def wait_send_blocked(server, token: str) -> dict:
    """The /count record once one send() of the app stayed pending while the server
    answered ``WITNESSES`` requests: the server runs on, that send() waits for the client."""
    with server.connect() as sock:
        while True:
            state = ask(sock, f"/count?token={token}")
            assert state is not None, "the app did not start streaming"
            assert state["ended"] is None, \
                f"the app got through send() to the end for a client reading nothing: {state}"
            if state["witnessed"] >= WITNESSES:
                return state


def held_by_server(state: dict, sock: socket.socket) -> int:
    """Body bytes handed to send() (the pending one included) that are neither with the
    client nor in the kernel's socket buffers: the server's own buffer."""
    client_end, server_end = tcp_ends(sock)
    return state["sent"] + CHUNK - server_end.unacked - client_end.unread


def test_large_download_to_slow_client_keeps_memory_flat(serve):
    server = serve(APP)
    peak = warm_up(server)
    token = uuid.uuid4().hex
    with server.connect(timeout=60) as sock:
        sock.sendall(b"GET /download?size=%d&token=%b HTTP/1.1\r\nHost: x\r\n\r\n"
                     % (BIG, token.encode()))
        # A slow client: reads nothing until the app's send() waits for it.
        held = held_by_server(wait_send_blocked(server, token), sock)
        print(f"held by the server while the client did not read: {held / 1024:.0f} KiB")
        assert held < HELD_MAX, f"the server held {held / MIB:.1f} MiB for a client not reading"
        stalled_growth = peak.growth()
        status, headers, body = read_head(sock)
        assert status == 200, headers
        assert ("content-length", str(BIG)) in headers, headers
        received = 0
        pending = body
        buf = bytearray(MIB)
        view = memoryview(buf)
        while True:
            if pending:
                data, pending = pending, b""
            else:
                n = sock.recv_into(buf)
                if not n:
                    break
                data = view[:n]
            start = received % 256
            assert data == STREAM[start:start + len(data)], f"wrong bytes at offset {received}"
            received += len(data)
            if received >= BIG:
                break
    assert received == BIG
    assert stalled_growth < MAX_GROWTH, \
        f"peak RSS grew by {stalled_growth / MIB:.1f} MiB while the client was not reading"
    check_growth(peak, "a 256 MiB download to a slow client")


def test_send_blocks_while_client_never_reads(serve):
    """An app streaming 256 MiB to a client that never reads: after the buffers fill, its
    send() stays pending while the server serves others; memory stays low; and once the
    client leaves, send() raises and the app ends."""
    server = serve(APP)
    peak = warm_up(server)
    token = uuid.uuid4().hex
    with server.connect(timeout=10) as sock:
        sock.sendall(b"GET /forever?token=%b HTTP/1.1\r\nHost: x\r\n\r\n" % token.encode())
        held = held_by_server(wait_send_blocked(server, token), sock)
        print(f"held by the server for a client that never reads: {held / 1024:.0f} KiB")
        assert held < HELD_MAX, f"the server held {held / MIB:.1f} MiB for a client not reading"
        check_growth(peak, "a stream to a client that never reads")
    # The client is gone: the blocked send() must wake up and raise (ASGI 2.4: OSError).
    with server.connect() as sock:
        state = wait_until(lambda: ask(sock, f"/count?token={token}")["ended"], timeout=10)
    assert state == "disconnected", state
