"""ASGI apps for the RFC 6455 / RFC 7692 wire tests (tests/test_websocket_protocol.py).

One router, ``app``. What only the app can see is printed to stdout (the server's log) as
``wsproto <id> <event>``, ``<id>`` taken from ``?id=``:

- ``/echo``: accepts and echoes every message with its type (text stays text; a ``send()``
  that raises ``OSError`` is printed as ``wsproto ID send failed: NAME``); with
  ``?describe=1`` answers ``"<text|bytes> <length> <sha256>"`` instead. On
  ``websocket.disconnect`` prints ``wsproto ID disconnect code=CODE reason=REPR``; with
  ``?log=1`` also prints ``wsproto ID got text|bytes REPR`` (first 40) for each message.
- ``/close?code=C&reason=R``: accepts, prints ``wsproto ID accepted``, sends
  ``websocket.close`` with that code and reason, then waits for ``websocket.disconnect`` and
  prints it as ``/echo`` does.
- ``/send?count=N&size=S``: accepts and sends N binary messages of S random bytes (the same
  payload each time), printing ``wsproto ID sent=K read=R`` after each ``send()`` returns (R:
  the count the client last reported through ``GET /progress``, 0 before any); a ``send()``
  that raises prints ``wsproto ID send failed after K: ExceptionName``; then waits for the
  disconnect and prints it.
- ``/hold``: accepts, prints ``wsproto ID holding`` and does not call ``receive()`` until an
  HTTP ``GET /release?id=ID`` arrives; then receives binary messages (each starts with its
  4-byte big-endian index) until the text ``end``, and answers
  ``"count=N inorder=True|False"``.

``GET /release?id=ID`` (http) sets that id's event and answers ``released``;
``GET /progress?id=ID&read=R`` records R for ``/send`` and answers ``ok``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan

_events: dict[str, asyncio.Event] = {}
_reads: dict[str, int] = {}  # /send: the messages the client says it has read


def _event(rid: str) -> asyncio.Event:
    event = _events.get(rid)
    if event is None:
        event = _events[rid] = asyncio.Event()
    return event


def _say(rid: str, text: str) -> None:
    print(f"wsproto {rid} {text}", flush=True)


def _query(scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def _wait_disconnect(rid: str, receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _say(rid, f"disconnect code={message.get('code')} "
                      f"reason={message.get('reason', '')!r}")
            return


async def _echo(rid: str, query, receive, send) -> None:
    await send({"type": "websocket.accept"})
    describe = query.get("describe") == "1"
    log = query.get("log") == "1"
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _say(rid, f"disconnect code={message.get('code')} "
                      f"reason={message.get('reason', '')!r}")
            return
        text = message.get("text")
        data = message.get("bytes")
        if log:
            _say(rid, f"got {'text' if text is not None else 'bytes'} "
                      f"{(text if text is not None else data)[:40]!r}")
        if describe:
            if text is not None:
                raw = text.encode("utf-8")
                reply = {"text": f"text {len(text)} {hashlib.sha256(raw).hexdigest()}"}
            else:
                reply = {"text": f"bytes {len(data)} {hashlib.sha256(data).hexdigest()}"}
        elif text is not None:
            reply = {"text": text}
        else:
            reply = {"bytes": data}
        try:
            await send({"type": "websocket.send", **reply})
        except OSError as exc:  # the connection is closing: keep receiving until disconnect
            _say(rid, f"send failed: {type(exc).__name__}")


async def _close(rid: str, query, receive, send) -> None:
    await send({"type": "websocket.accept"})
    _say(rid, "accepted")
    await send({"type": "websocket.close", "code": int(query.get("code", "1000")),
                "reason": query.get("reason", "")})
    await _wait_disconnect(rid, receive)


async def _send(rid: str, query, receive, send) -> None:
    await send({"type": "websocket.accept"})
    count = int(query.get("count", "100"))
    payload = os.urandom(int(query.get("size", "1048576")))
    for i in range(count):
        try:
            await send({"type": "websocket.send", "bytes": payload})
        except Exception as exc:  # the connection went away while sending
            _say(rid, f"send failed after {i}: {type(exc).__name__}")
            break
        _say(rid, f"sent={i + 1} read={_reads.get(rid, 0)}")
    await _wait_disconnect(rid, receive)


async def _hold(rid: str, query, receive, send) -> None:
    await send({"type": "websocket.accept"})
    _say(rid, "holding")
    await _event(rid).wait()
    _say(rid, "released")
    count = 0
    in_order = True
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _say(rid, f"disconnect code={message.get('code')} before end")
            return
        if message.get("text") == "end":
            break
        data = message.get("bytes") or b""
        if int.from_bytes(data[:4], "big") != count:
            in_order = False
        count += 1
    await send({"type": "websocket.send", "text": f"count={count} inorder={in_order}"})
    await _wait_disconnect(rid, receive)


_ROUTES = {"/echo": _echo, "/close": _close, "/send": _send, "/hold": _hold}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await serve_lifespan(receive, send)
        return
    query = _query(scope)
    rid = query.get("id", "-")
    if kind == "http":
        if scope["path"] == "/release":
            _event(rid).set()
            body = b"released"
        elif scope["path"] == "/progress":
            _reads[rid] = int(query["read"])
            body = b"ok"
        else:
            body = b"wsproto"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
        return
    first = await receive()
    assert first["type"] == "websocket.connect", first
    handler = _ROUTES.get(scope["path"], _echo)
    await handler(rid, query, receive, send)
