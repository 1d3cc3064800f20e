"""Apps for tests/test_h2.py (HTTP/2 through the same adapters as HTTP/1.1).

ASGI ``app``:
- ``/scope``: the scope's http_version, method, scheme, path, raw_path, query_string and
  headers, as JSON.
- ``/cookies``: three ``set-cookie`` fields and a repeated ``x-multi``.
- ``/echo``: the request body back.
- ``/big?n=N``: N bytes (``x``), in 16 KiB ``more_body`` messages; records "sent I" per
  message in the log line ``big: sent N`` once all went out.
- ``/hold?id=X``: answers once ``/release?id=X`` has been asked (any connection);
  ``/release?id=X`` answers at once.
- ``/wait-disconnect?id=X``: one chunk, then waits for ``http.disconnect`` and logs
  ``disconnect X``.
- ``/stall``: reads nothing of its body until the log says so (never): the client's stream
  window is the only credit.

WSGI ``wsgi_app``: ``/environ`` (SERVER_PROTOCOL, REQUEST_METHOD, PATH_INFO, QUERY_STRING,
HTTP_HOST as JSON), ``/echo``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan

log = logging.getLogger("betula.error")
_RELEASED: dict[str, asyncio.Event] = {}


def _event(name: str) -> asyncio.Event:
    event = _RELEASED.get(name)
    if event is None:
        event = _RELEASED[name] = asyncio.Event()
    return event


def _query(scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _body(receive) -> bytes:  # type: ignore[no-untyped-def]
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _answer(send, body: bytes, headers=()) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    query = _query(scope)
    if path == "/scope":
        await _answer(send, json.dumps({
            "http_version": scope["http_version"], "method": scope["method"],
            "scheme": scope["scheme"], "path": scope["path"],
            "raw_path": scope["raw_path"].decode(), "query_string": scope["query_string"].decode(),
            "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
        }).encode())
    elif path == "/cookies":
        await _answer(send, b"ok", [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2; Path=/"),
                                    (b"set-cookie", b"c=3"), (b"x-multi", b"one"),
                                    (b"x-multi", b"two")])
    elif path == "/echo":
        await _answer(send, await _body(receive))
    elif path == "/h2spec":
        # h2spec's target: the whole body read (its length checks come first), then
        # ``?wait=`` seconds (its stream-limit case needs streams that stay open while it
        # opens one past the limit); never an empty answer (its flow-control cases need
        # response bytes).
        body = await _body(receive)
        if "wait" in query:
            await asyncio.sleep(float(query["wait"]))
        await _answer(send, body or b"h2spec target\n")
    elif path == "/big":
        n = int(query["n"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent = 0
        while sent < n:
            size = min(16384, n - sent)
            await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
            sent += size
        await send({"type": "http.response.body", "body": b""})
        log.info("big: sent %d", sent)
    elif path == "/hold":
        log.info("holding %s", query["id"])
        await _event(query["id"]).wait()
        await _answer(send, b"held " + query["id"].encode())
    elif path == "/release":
        _event(query["id"]).set()
        await _answer(send, b"released")
    elif path == "/trailers":  # early hints, a body, then trailers
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style"]})
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-digest")]})
        await send({"type": "http.response.body", "body": b"with trailers"})
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-digest", b"sha-256=abc")]})
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        log.info("disconnect %s", query["id"])
    else:
        await _answer(send, b"not found")


def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ["PATH_INFO"]
    if path == "/environ":
        body = json.dumps({key: environ.get(key) for key in (
            "SERVER_PROTOCOL", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_HOST",
            "wsgi.url_scheme")}).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    else:
        body = b"not found"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "w=1"),
                              ("Set-Cookie", "v=2")])
    return [body]
