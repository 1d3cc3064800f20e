"""Plain ASGI apps for the flow-control tests (tests/test_flow_control.py).

One app, routed on the path:
- ``POST /slow-upload``: reads the body slowly (after each ``receive()`` it sleeps 1 ms, or
  longer for big messages: it consumes at most ``UPLOAD_RATE`` bytes per second) and answers
  with the exact number of body bytes it got and how many messages carried them.
- ``GET /download?size=N``: sends N bytes (with a Content-Length) in 64 KiB chunks with
  ``more_body``; the bytes are the repeating pattern ``PATTERN``.
- ``GET /forever?token=T``: sends 64 KiB chunks with ``more_body`` until 1 GiB went out or the
  client left, counting the ``send()`` calls that returned in ``COUNTS[T]``.

Every chunk sent is a fresh bytes object, as a real app's would be: a server that buffers
without bound then really holds the bytes (resending one object would only hold references).
- ``GET /count?token=T``: JSON ``{"sent": chunks, "ended": reason or null}`` for /forever.
- ``POST /stalled-upload?token=T``: takes the first body message, then stops calling
  ``receive()`` until ``GET /release?token=T``; then reads the rest and answers with the byte
  count like /slow-upload.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)  # one 64 KiB chunk, reused for every send
FOREVER_LIMIT = 1024 ** 3
UPLOAD_RATE = 200 * 1024 * 1024  # bytes per second /slow-upload consumes at most

COUNTS: dict[str, int] = {}
ENDED: dict[str, str] = {}
RELEASES: dict[str, asyncio.Event] = {}


def fresh(data: bytes) -> bytes:
    """A new bytes object with the same content (copied, not the same object)."""
    return bytes(memoryview(data))


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _plain(send: Any, status: int, body: bytes,
                 content_type: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def slow_upload(scope: dict[str, Any], receive: Any, send: Any) -> None:
    total = 0
    messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        messages += 1
        if not message.get("more_body", False):
            break
        await asyncio.sleep(max(0.001, len(message.get("body", b"")) / UPLOAD_RATE))
    await _plain(send, 200, json.dumps({"bytes": total, "messages": messages}).encode(),
                 b"application/json")


async def stalled_upload(scope: dict[str, Any], receive: Any, send: Any) -> None:
    release = RELEASES.setdefault(_query(scope)["token"], asyncio.Event())
    total = 0
    messages = 0
    stalled = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        messages += 1
        if not message.get("more_body", False):
            break
        if not stalled:
            stalled = True
            await asyncio.wait_for(release.wait(), 60)  # not consuming the body meanwhile
    await _plain(send, 200, json.dumps({"bytes": total, "messages": messages}).encode(),
                 b"application/json")


async def release(scope: dict[str, Any], receive: Any, send: Any) -> None:
    RELEASES.setdefault(_query(scope)["token"], asyncio.Event()).set()
    await _plain(send, 200, b"released")


async def download(scope: dict[str, Any], receive: Any, send: Any) -> None:
    size = int(_query(scope)["size"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size).encode())]})
    left = size
    while left > 0:
        part = fresh(PATTERN if left >= CHUNK else PATTERN[:left])
        left -= len(part)
        await send({"type": "http.response.body", "body": part, "more_body": left > 0})
    if size == 0:
        await send({"type": "http.response.body", "body": b""})


async def forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    token = _query(scope)["token"]
    COUNTS[token] = 0
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    try:
        while COUNTS[token] * CHUNK < FOREVER_LIMIT:
            await send({"type": "http.response.body", "body": fresh(PATTERN),
                        "more_body": True})
            COUNTS[token] += 1
        ENDED[token] = "limit"
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # ASGI 2.4: send() raises an OSError subclass once the client left
        ENDED[token] = "disconnected"


async def count(scope: dict[str, Any], receive: Any, send: Any) -> None:
    token = _query(scope)["token"]
    body = json.dumps({"sent": COUNTS.get(token), "ended": ENDED.get(token)}).encode()
    await _plain(send, 200, body, b"application/json")


ROUTES = {"/slow-upload": slow_upload, "/stalled-upload": stalled_upload, "/release": release,
          "/download": download, "/forever": forever, "/count": count}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _plain(send, 404, b"not found")
        return
    await handler(scope, receive, send)
