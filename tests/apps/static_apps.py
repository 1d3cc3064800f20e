"""Apps behind ``--static`` (tests/test_static.py): each answers ``app <path>`` and counts
the requests it saw; ``/calls`` answers that count (itself not counted), so a test can show
the app was never called for a static path."""

from __future__ import annotations

import threading

from tests.apps.lifespan_stub import serve_lifespan

_lock = threading.Lock()
_calls = [0]


def _note(path: str) -> bytes:
    with _lock:
        if path == "/calls":
            return str(_calls[0]).encode()
        _calls[0] += 1
    return f"app {path}".encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    body = _note(scope["path"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def wsgi(environ, start_response):
    body = _note(environ.get("SCRIPT_NAME", "") + environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
