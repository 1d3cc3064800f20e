"""Plain ASGI apps for the flow-control tests (tests/test_flow_control.py).

One app, routed on the path:
- ``POST /slow-upload``: reads the body slowly (after each ``receive()`` it sleeps 1 ms, or
  longer for big messages: it consumes at most ``UPLOAD_RATE`` bytes per second) and answers
  with the exact number of body bytes it got and how many messages carried them.
- ``GET /download?size=N&token=T``: sends N bytes (with a Content-Length) in 64 KiB chunks
  with ``more_body``; the bytes are the repeating pattern ``PATTERN``.
- ``GET /forever?token=T``: sends 64 KiB chunks with ``more_body`` until ``FOREVER_LIMIT``
  (more than any socket buffer) went out or the client left.
- ``GET /count?token=T``: how the /download or /forever app's ``send()`` calls went, as JSON
  ``{"sent": body bytes whose send() returned, "pending": a send() has not returned,
  "witnessed": how many /count requests were answered during that same pending send(),
  "ended": "limit" | "done" | "disconnected" | null}``. The server answering other requests
  while one send() stays pending is what shows that send() waits (for the client), rather
  than returning as soon as the loop gets round to it.
- ``POST /stalled-upload?token=T``: takes the first body message, then stops calling
  ``receive()`` until ``GET /release?token=T``; then reads the rest and answers with the byte
  count like /slow-upload. ``GET /received?token=T``: ``{"bytes", "messages", "stalled"}``
  so far.

Every chunk sent is a fresh bytes object, as a real app's would be: a server that buffers
without bound then really holds the bytes (resending one object would only hold references).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)  # one 64 KiB chunk, reused for every send
FOREVER_LIMIT = 256 * 1024 * 1024
UPLOAD_RATE = 200 * 1024 * 1024  # bytes per second /slow-upload consumes at most


class Progress:
    """One streaming response's send() calls, as its app saw them (see /count)."""

    def __init__(self) -> None:
        self.sent = 0
        self.pending = False
        self.witnessed = 0
        self.ended: str | None = None

    async def send(self, send: Any, message: dict[str, Any]) -> None:
        self.pending = True
        self.witnessed = 0
        try:
            await send(message)
        finally:
            self.pending = False
        self.sent += len(message.get("body", b""))


PROGRESS: dict[str, Progress] = {}
RECEIVED: dict[str, dict[str, Any]] = {}
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
    token = _query(scope)["token"]
    release = RELEASES.setdefault(token, asyncio.Event())
    state = RECEIVED[token] = {"bytes": 0, "messages": 0, "stalled": False}
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        state["bytes"] += len(message.get("body", b""))
        state["messages"] += 1
        if not message.get("more_body", False):
            break
        if not release.is_set():
            state["stalled"] = True
            await asyncio.wait_for(release.wait(), 60)  # not consuming the body meanwhile
            state["stalled"] = False
    body = json.dumps({"bytes": state["bytes"], "messages": state["messages"]}).encode()
    await _plain(send, 200, body, b"application/json")


async def received(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps(RECEIVED.get(_query(scope)["token"])).encode()
    await _plain(send, 200, body, b"application/json")


async def release(scope: dict[str, Any], receive: Any, send: Any) -> None:
    RELEASES.setdefault(_query(scope)["token"], asyncio.Event()).set()
    await _plain(send, 200, b"released")


def _progress(scope: dict[str, Any]) -> Progress:
    token = _query(scope).get("token", "-")
    progress = PROGRESS[token] = Progress()
    return progress


async def download(scope: dict[str, Any], receive: Any, send: Any) -> None:
    size = int(_query(scope)["size"])
    progress = _progress(scope)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size).encode())]})
    left = size
    while left > 0:
        part = fresh(PATTERN if left >= CHUNK else PATTERN[:left])
        left -= len(part)
        await progress.send(send, {"type": "http.response.body", "body": part,
                                   "more_body": left > 0})
    if size == 0:
        await send({"type": "http.response.body", "body": b""})
    progress.ended = "done"


async def forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    progress = _progress(scope)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    try:
        while progress.sent < FOREVER_LIMIT:
            await progress.send(send, {"type": "http.response.body", "body": fresh(PATTERN),
                                       "more_body": True})
        progress.ended = "limit"
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # ASGI 2.4: send() raises an OSError subclass once the client left
        progress.ended = "disconnected"


async def count(scope: dict[str, Any], receive: Any, send: Any) -> None:
    progress = PROGRESS.get(_query(scope)["token"])
    if progress is None:
        body = b"null"
    else:
        if progress.pending:
            progress.witnessed += 1
        body = json.dumps({"sent": progress.sent, "pending": progress.pending,
                           "witnessed": progress.witnessed, "ended": progress.ended}).encode()
    await _plain(send, 200, body, b"application/json")


ROUTES = {"/slow-upload": slow_upload, "/stalled-upload": stalled_upload, "/release": release,
          "/received": received, "/download": download, "/forever": forever, "/count": count}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _plain(send, 404, b"not found")
        return
    await handler(scope, receive, send)
