"""Streaming apps for tests/test_streaming.py.

- ``/burst?n=N``: N chunks ``data: I\\n\\n`` sent without the app suspending in between.
- ``/race?id=X&n=N``: waits until two /race responses have started, then streams N chunks
  without suspending, recording (X, I) for each chunk sent; ``/order`` answers the record
  (JSON) and clears it.
- ``/held``: one chunk, then waits (for the client to go) before sending anything else.
- WSGI ``wsgi_app``: ``/burst?n=N`` as a generator.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan

_SSE = [(b"content-type", b"text/event-stream")]
_ORDER: list[tuple[str, int]] = []
_STARTED: list[asyncio.Event] = []


def _query(scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    query = _query(scope)
    if path == "/order":
        body = json.dumps(_ORDER).encode()
        _ORDER.clear()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    if path == "/burst":
        for i in range(int(query["n"])):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i,
                        "more_body": True})
    elif path == "/race":
        if not _STARTED or _STARTED[-1].is_set():
            _STARTED.append(asyncio.Event())
            await _STARTED[-1].wait()
        else:
            _STARTED[-1].set()
        name = query["id"]
        for i in range(int(query["n"])):
            _ORDER.append((name, i))
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i,
                        "more_body": True})
    elif path == "/held":
        await send({"type": "http.response.body", "body": b"data: first\n\n",
                    "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    await send({"type": "http.response.body", "body": b""})


def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
    n = int(parse_qs(environ["QUERY_STRING"])["n"][0])
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    return (b"data: %d\n\n" % i for i in range(n))
