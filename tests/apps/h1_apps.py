"""ASGI apps for the raw-socket HTTP/1.1 tests (tests/test_http1.py).

One router, ``app``; every route is small and deterministic:

- ``/`` and anything unknown: ``method path?query`` as the body, one message, no Content-Length
  from the app (the server must add it).
- ``/echo``: reads the whole body and answers it unchanged; ``x-body-messages`` says how many
  ``http.request`` messages carried it.
- ``/headers``: the request headers, one ``name: value`` line each, in arrival order.
- ``/noread``: answers 200 without reading the request body.
- ``/stream``: no Content-Length, three body messages (``ab``, ``cde``, ``f``) then an empty
  final one: chunked framing on HTTP/1.1.
- ``/status/NNN``: that status, an empty body.
- ``/status-body/NNN``: that status, and the app tries to send a body (for 204/304 the
  server must drop it).
- ``/status-stream/NNN``: the same, the body sent in two messages with ``more_body``.
- ``/cookies``: three ``set-cookie`` headers in a known order.
- ``/hop``: the app sets every hop-by-hop header; body ``hop``.
- ``/hop-stream``: the same headers, the body streamed (``x``, ``y``).
- ``/close``: the app asks for ``connection: close``.
- ``/crlf``: a header value with CR LF (response splitting); the send() error propagates.
- ``/hold?ID&SECONDS``: waits for ``http.disconnect`` (at most SECONDS, default 5), prints
  ``hold ID: waiting`` then ``hold ID: disconnect`` or ``hold ID: timeout``, answers ``held``.
- ``/await-body?ID``: prints ``await-body ID: reading`` and only then asks for the body (so a
  test that sees the line knows the app is running and a 100 Continue, if any, went out
  first); answers the body unchanged. The client's body is what releases it.
- ``/gate?ID``: prints ``gate ID: waiting`` and answers ``held`` once ``/release?ID`` came
  (on another connection); ``/release?ID`` answers ``released``.
"""

from __future__ import annotations

import asyncio

from tests.apps.lifespan_stub import serve_lifespan

_GATES: dict[str, asyncio.Event] = {}


async def _read_body(receive) -> tuple[bytes, int]:
    chunks = []
    count = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        count += 1
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks), count


async def _answer(send, status: int, body: bytes, headers=(), content_length: bool = False):
    headers = list(headers)
    if content_length:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


HOP_HEADERS = [
    (b"connection", b"keep-alive"),
    (b"keep-alive", b"timeout=5"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"foo"),
    (b"te", b"trailers"),
    (b"trailer", b"x-checksum"),
    (b"proxy-connection", b"keep-alive"),
    (b"proxy-authenticate", b"Basic realm=x"),
    (b"x-kept", b"yes"),
]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    path = scope["path"]
    plain = [(b"content-type", b"text/plain")]

    if path == "/echo":
        body, count = await _read_body(receive)
        await _answer(send, 200, body, plain + [(b"x-body-messages", str(count).encode())])
    elif path == "/headers":
        lines = b"".join(name + b": " + value + b"\n" for name, value in scope["headers"])
        await _answer(send, 200, lines, plain)
    elif path == "/noread":
        await _answer(send, 200, b"answered without reading", plain)
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": plain})
        for part in (b"ab", b"cde", b"f"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/status/"):
        await _answer(send, int(path.rsplit("/", 1)[1]), b"")
    elif path.startswith("/status-body/"):
        await _answer(send, int(path.rsplit("/", 1)[1]), b"must-not-be-sent")
    elif path.startswith("/status-stream/"):
        status = int(path.rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"must-not", "more_body": True})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"-be-sent"})
    elif path == "/cookies":
        await _answer(send, 200, b"cookies", [
            (b"set-cookie", b"a=1; Path=/"),
            (b"x-between", b"1"),
            (b"set-cookie", b"b=2; HttpOnly"),
            (b"Set-Cookie", b"c=3"),
        ])
    elif path == "/hop":
        await _answer(send, 200, b"hop", HOP_HEADERS)
    elif path == "/hop-stream":
        await send({"type": "http.response.start", "status": 200, "headers": HOP_HEADERS})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"y"})
    elif path == "/close":
        await _answer(send, 200, b"closing", [(b"connection", b"close")])
    elif path == "/crlf":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-evil", b"a\r\nx-injected: yes")]})
        await send({"type": "http.response.body", "body": b"split"})
    elif path == "/await-body":
        print(f"await-body {scope['query_string'].decode()}: reading", flush=True)
        body, _ = await _read_body(receive)
        await _answer(send, 200, body, plain)
    elif path in ("/gate", "/release"):
        gate = _GATES.setdefault(scope["query_string"].decode(), asyncio.Event())
        if path == "/release":
            gate.set()
            await _answer(send, 200, b"released", plain)
        else:
            print(f"gate {scope['query_string'].decode()}: waiting", flush=True)
            await gate.wait()
            await _answer(send, 200, b"held", plain)
    elif path == "/raise":
        raise RuntimeError("h1_apps /raise: raised on purpose")
    elif path == "/hold":
        # /hold?ID&SECONDS: wait for http.disconnect at most SECONDS; say what happened on
        # stdout (the test reads the server's log) and answer "held" when still possible.
        tag, _, seconds = scope["query_string"].decode().partition("&")
        seconds = float(seconds or 5)
        first = await receive()
        print(f"hold {tag}: waiting", flush=True)
        outcome = "disconnect" if first["type"] == "http.disconnect" else "timeout"
        if outcome == "timeout":
            try:
                while (await asyncio.wait_for(receive(), seconds))["type"] != "http.disconnect":
                    pass
                outcome = "disconnect"
            except TimeoutError:
                pass
        print(f"hold {tag}: {outcome}", flush=True)
        await _answer(send, 200, b"held")
    else:
        target = scope["method"].encode() + b" " + scope["raw_path"]
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        await _answer(send, 200, target, plain)
