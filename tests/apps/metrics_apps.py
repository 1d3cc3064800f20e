"""Apps for the metrics tests (tests/test_metrics.py). ``/hello``: 5 bytes; ``/missing``:
404; ``/echo`` (POST): the body back; ``/slow``: answers once the file named by the
``METRICS_RELEASE`` environment variable exists; ``/die``: the worker exits at once (a
crash); ``/ws``: a WebSocket echo."""

from __future__ import annotations

import asyncio
import os

from tests.apps.lifespan_stub import serve_lifespan


async def _body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    body = await _body(receive)
    path = scope["path"]
    if path == "/die":
        os._exit(1)
    if path == "/slow":
        release = os.environ["METRICS_RELEASE"]
        for _ in range(600):  # at most 30 s
            if os.path.exists(release):
                break
            await asyncio.sleep(0.05)
    status = 404 if path == "/missing" else 200
    answer = body if path == "/echo" else b"hello"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": answer})


def wsgi(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    path = environ["PATH_INFO"]
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [body if path == "/echo" else b"hello"]
