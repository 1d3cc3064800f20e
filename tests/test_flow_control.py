"""Flow control both ways, with the server's memory kept flat (issue 2, "Flow control").

- Upload: reading from the socket pauses while the app is not consuming the body, so a large
  body sent to a slow (or stalled) app never piles up in the server.
- Download: ``send()`` waits while the client is not reading (the transport's buffer is
  bounded), so a large response to a slow (or absent) reader never piles up either.

Memory is the server process's peak RSS (``VmHWM`` in /proc/PID/status), compared with its
peak right before the transfer. Each test starts its own server so the peak is its own.
Sizes are 256 MiB here to stay fast; ``bench/memory.py`` does the full 1 GiB both ways.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.support.wire import read_response

APP = "tests.apps.flow_apps:app"
MIB = 1024 * 1024
CHUNK = 64 * 1024  # what the /download and /forever apps send per send()
BIG = 256 * MIB
# Allowed growth of the server's peak RSS during a transfer: far below the bytes moved.
MAX_GROWTH = 120 * MIB
# Bytes that may sit in kernel socket buffers (loopback autotuning: up to 32 MiB receive
# + 4 MiB send here) plus the transport's bounded buffer. Anything near the full size
# means nothing pushed back.
MAX_IN_FLIGHT = 128 * MIB
# The byte stream /download sends: 0..255 repeated.
STREAM = bytes(range(256)) * (2 * MIB // 256 + 1)

pytestmark = pytest.mark.timeout(120)


def vm(server, field: str) -> int:
    """A ``Vm*`` line of the server's /proc/PID/status, in bytes."""
    with open(f"/proc/{server.proc.pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{server.proc.pid}/status")


def warm_up(server) -> None:
    """Touch the code paths once so their first-use allocations are in the baseline."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post("/slow-upload", content=b"x" * 300_000).json()["bytes"] == 300_000
        assert len(client.get("/download", params={"size": 300_000}).content) == 300_000


def get_json(server, path: str, **params: str) -> dict:
    response = httpx.get(server.base_url + path, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def settled(read, timeout: float = 10.0) -> int:
    """Poll ``read()`` until two readings 0.25 s apart agree (the buffers in between are
    full), at most ``timeout`` seconds; return the last reading."""
    last = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now == last:
            return now
        last = now
    return last


def read_head(sock) -> tuple[bytes, bytes]:
    """Read a response head from a raw socket; return (head, body bytes already read)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "connection closed before the response head"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def test_large_upload_to_slow_app_keeps_memory_flat(serve):
    server = serve(APP)
    warm_up(server)
    base = vm(server, "VmHWM")
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
    assert result["messages"] > 64  # streamed in many http.request messages, not buffered whole
    growth = vm(server, "VmHWM") - base
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB for a 256 MiB upload"


def test_chunked_upload_to_slow_app_keeps_memory_flat(serve):
    """Same with Transfer-Encoding: chunked (no Content-Length to plan with)."""
    server = serve(APP)
    warm_up(server)
    base = vm(server, "VmHWM")
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
    growth = vm(server, "VmHWM") - base
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB for a 128 MiB upload"


def test_reading_pauses_while_app_does_not_consume_body(serve):
    """An app that stops calling receive(): the server stops reading, so the client's
    sends stall after a bounded amount; once the app reads again, every byte arrives."""
    server = serve(APP)
    warm_up(server)
    base = vm(server, "VmHWM")
    token = uuid.uuid4().hex
    accepted = [0]  # bytes the client's kernel took so far
    errors: list[BaseException] = []
    result: dict = {}
    sock = server.connect(timeout=60)

    def upload() -> None:
        block = b"s" * MIB
        try:
            sock.sendall(b"POST /stalled-upload?token=%b HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % (token.encode(), BIG))
            for _ in range(BIG // MIB):
                sock.sendall(block)
                accepted[0] += MIB
            status, _, _, body = read_response(sock, timeout=60)
            result.update(status=status, body=body)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    try:
        time.sleep(1.0)
        first = settled(lambda: accepted[0])
        time.sleep(1.0)
        second = accepted[0]
        assert not errors, errors
        assert second == first, f"the client could keep sending ({first} -> {second} bytes) " \
            "while the app was not reading: the server did not pause reading"
        assert first < MAX_IN_FLIGHT, f"{first / MIB:.0f} MiB accepted while the app stalled"
        growth = vm(server, "VmHWM") - base
        assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB while stalled"
    finally:
        httpx.get(server.base_url + "/release", params={"token": token}, timeout=10)
        sender.join(60)
        sock.close()
    assert not sender.is_alive(), "upload did not finish after the app resumed reading"
    assert not errors, errors
    assert result["status"] == 200, result
    assert json.loads(result["body"])["bytes"] == BIG
    growth = vm(server, "VmHWM") - base
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB for a 256 MiB upload"


def test_large_download_to_slow_client_keeps_memory_flat(serve):
    server = serve(APP)
    warm_up(server)
    base = vm(server, "VmHWM")
    with server.connect(timeout=60) as sock:
        sock.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % BIG)
        time.sleep(1.0)  # a slow client: reads nothing for a second
        stalled_growth = vm(server, "VmHWM") - base
        head, body = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"\r\ncontent-length: %d" % BIG in head.lower(), head
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
    growth = vm(server, "VmHWM") - base
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB for a 256 MiB download"


def test_send_blocks_while_client_never_reads(serve):
    """An app streaming forever (up to 1 GiB) to a client that never reads: after the buffers
    fill, its send() stays blocked, so the chunk count stops growing; memory stays low; and
    once the client leaves, send() raises and the app ends."""
    server = serve(APP)
    warm_up(server)
    base = vm(server, "VmHWM")
    token = uuid.uuid4().hex
    with server.connect(timeout=10) as sock:
        sock.sendall(b"GET /forever?token=%b HTTP/1.1\r\nHost: x\r\n\r\n" % token.encode())
        time.sleep(1.0)
        settled(lambda: get_json(server, "/count", token=token)["sent"])
        first = get_json(server, "/count", token=token)
        time.sleep(1.0)
        second = get_json(server, "/count", token=token)
        assert first["sent"] is not None, "the app did not start streaming"
        assert first["ended"] is None and second["ended"] is None, second
        assert second["sent"] == first["sent"], \
            f"send() kept returning for a client that reads nothing: {first} -> {second}"
        assert first["sent"] * CHUNK < MAX_IN_FLIGHT, \
            f"{first['sent'] * CHUNK / MIB:.0f} MiB sent to a client that reads nothing"
        growth = vm(server, "VmHWM") - base
        assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB"
    # The client is gone: the blocked send() must wake up and raise (ASGI 2.4: OSError).
    deadline = time.monotonic() + 10
    state = get_json(server, "/count", token=token)
    while state["ended"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
        state = get_json(server, "/count", token=token)
    assert state["ended"] == "disconnected", state
