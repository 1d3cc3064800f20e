"""ASGI ``websocket`` (spec 2.4) test apps for tests/test_websocket.py.

``app`` routes on the first path segment after ``root_path`` (so it works behind
``--root-path`` and under a ``--mount`` prefix). What only the app can see (exception types
raised by ``send()``, the ``websocket.disconnect`` event) is printed as
``WSREC <id> <json>`` (stdout is in the server's log); ``<id>`` comes from ``?id=``.

An ``http`` request to ``app`` (``--ws none``, a pipelined request) is answered with JSON
saying the scope type, method, path and whether the request carried an ``Upgrade`` header.
``wsgi_app`` is a WSGI app for ``--interface wsgi`` and WSGI mounts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import parse_qs


def record(rid: str, payload: dict) -> None:
    # One write per line: with --workers the processes share the log pipe.
    sys.stdout.write(f"WSREC {rid} {json.dumps(payload, sort_keys=True)}\n")
    sys.stdout.flush()


def _query(scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _b(value):
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value


def describe_scope(scope, first_event: str) -> dict:
    state = scope.get("state")
    return {
        "keys": sorted(scope),
        "type": scope.get("type"),
        "asgi": scope.get("asgi"),
        "http_version": scope.get("http_version"),
        "scheme": scope.get("scheme"),
        "path": scope.get("path"),
        "path_type": type(scope.get("path")).__name__,
        "raw_path": _b(scope.get("raw_path")),
        "raw_path_type": type(scope.get("raw_path")).__name__,
        "query_string": _b(scope.get("query_string")),
        "query_string_type": type(scope.get("query_string")).__name__,
        "root_path": scope.get("root_path"),
        "headers": [[_b(n), _b(v)] for n, v in scope.get("headers") or ()],
        "header_types": sorted({type(x).__name__ for h in scope.get("headers") or ()
                                for x in h}),
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "subprotocols": scope.get("subprotocols"),
        "state": {k: v for k, v in state.items() if isinstance(v, (str, int, float, bool))}
        if isinstance(state, dict) else None,
        "extensions": sorted(scope.get("extensions") or {}),
        "first_event": first_event,
    }


async def _lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["ws_token"] = "from-lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope, receive, send) -> None:
    for _ in range(100_000):
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    headers = dict(scope["headers"])
    payload = {"type": scope["type"], "method": scope["method"], "path": scope["path"],
               "root_path": scope.get("root_path"),
               "upgrade": _b(headers.get(b"upgrade"))}
    body = json.dumps(payload, sort_keys=True).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive) -> dict:
    for _ in range(100_000):
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return message
    raise AssertionError("no websocket.disconnect")


async def app(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if kind == "http":
        await _http(scope, receive, send)
        return
    assert kind == "websocket", kind
    root = scope.get("root_path") or ""
    path = scope["path"]
    route_path = path[len(root):] if root and path.startswith(root) else path
    route = route_path.lstrip("/").split("/", 1)[0]
    query = _query(scope)
    rid = query.get("id", "-")
    handler = ROUTES.get(route, _echo)
    await handler(scope, receive, send, rid, query)


# -- routes --------------------------------------------------------------------------------------
async def _scope(scope, receive, send, rid, query) -> None:
    """Accept, send the scope (and the first event's type) as JSON; mark the state copy."""
    first = await receive()
    described = describe_scope(scope, first["type"])
    if isinstance(scope.get("state"), dict):
        scope["state"]["touched_" + rid] = True  # must not leak into the next connection
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(described, sort_keys=True)})
    message = await _until_disconnect(receive)
    record(rid, {"disconnect": message})


async def _echo(scope, receive, send, rid, query) -> None:
    """Echo text as text and bytes as bytes; ``close:CODE:REASON`` makes the app close;
    the disconnect event (code, reason) is recorded."""
    first = await receive()
    assert first["type"] == "websocket.connect", first
    await send({"type": "websocket.accept"})
    count = 0
    for _ in range(100_000):
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(rid, {"disconnect": message, "messages": count})
            return
        count += 1
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            record(rid, {"closed": int(code)})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _accept_with(scope, receive, send, rid, query) -> None:
    """Accept with the subprotocol given in ``?sub=`` and extra headers."""
    await receive()
    message = {"type": "websocket.accept",
               "headers": [(b"x-ws-extra", b"yes"), (b"set-cookie", b"a=1"),
                           (b"set-cookie", b"b=2")]}
    if "sub" in query:
        message["subprotocol"] = query["sub"]
    await send(message)
    await send({"type": "websocket.send", "text": "accepted"})
    await _until_disconnect(receive)


async def _close_before_accept(scope, receive, send, rid, query) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1000})


async def _deny(scope, receive, send, rid, query) -> None:
    """A denial response: 418 with headers, the body in ``?parts=`` chunks (``?cl=1``: with
    the app's own content-length)."""
    await receive()
    parts = int(query.get("parts", "1"))
    headers = [(b"content-type", b"text/plain"), (b"x-denied", b"because"),
               (b"x-denied", b"twice")]
    if "cl" in query:  # the app states the length itself
        headers.append((b"content-length", str(6 * parts).encode()))
    await send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
    for i in range(parts):
        await send({"type": "websocket.http.response.body", "body": f"part{i};".encode(),
                    "more_body": i < parts - 1})


async def _raise_before(scope, receive, send, rid, query) -> None:
    await receive()
    raise RuntimeError(f"ws boom before accept {rid}")


async def _return_before(scope, receive, send, rid, query) -> None:
    await receive()


async def _raise_after(scope, receive, send, rid, query) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "about to fail"})
    raise RuntimeError(f"ws boom after accept {rid}")


async def _return_after(scope, receive, send, rid, query) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})


async def _send_after_close(scope, receive, send, rid, query) -> None:
    """Wait for the client's close, then send: the error's type is recorded."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "ready"})
    message = await _until_disconnect(receive)
    outcome: dict = {"disconnect": message}
    for attempt in range(2):
        try:
            await send({"type": "websocket.send", "text": "too late"})
            outcome[f"error{attempt}"] = None
        except BaseException as exc:  # noqa: BLE001 - reported, not handled
            outcome[f"error{attempt}"] = type(exc).__name__
            outcome[f"oserror{attempt}"] = isinstance(exc, OSError)
    record(rid, outcome)


async def _send_before_accept(scope, receive, send, rid, query) -> None:
    await receive()
    try:
        await send({"type": "websocket.send", "text": "too early"})
        error = None
    except BaseException as exc:  # noqa: BLE001 - reported, not handled
        error = type(exc).__name__
    record(rid, {"error": error})
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": f"error={error}"})
    await _until_disconnect(receive)


async def _accept_twice(scope, receive, send, rid, query) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    try:
        await send({"type": "websocket.accept"})
        error = None
    except BaseException as exc:  # noqa: BLE001 - reported, not handled
        error = type(exc).__name__
    record(rid, {"error": error})
    await send({"type": "websocket.send", "text": f"error={error}"})
    await _until_disconnect(receive)


async def _wait_before_accept(scope, receive, send, rid, query) -> None:
    """Receive again before deciding: a client that leaves now must show as a disconnect."""
    first = await receive()
    record(rid, {"first": first["type"]})
    message = await receive()
    record(rid + "-second", {"second": message})
    if message["type"] != "websocket.disconnect":
        await send({"type": "websocket.close"})


async def _shutdown(scope, receive, send, rid, query) -> None:
    """Accept, say ready, then wait for the disconnect (the server's graceful stop)."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "ready"})
    message = await _until_disconnect(receive)
    record(rid, {"disconnect": message})
    await asyncio.sleep(0)


ROUTES = {
    "scope": _scope,
    "echo": _echo,
    "accept-with": _accept_with,
    "close-before-accept": _close_before_accept,
    "deny": _deny,
    "raise-before": _raise_before,
    "return-before": _return_before,
    "raise-after": _raise_after,
    "return-after": _return_after,
    "send-after-close": _send_after_close,
    "send-before-accept": _send_before_accept,
    "accept-twice": _accept_twice,
    "shutdown": _shutdown,
    "wait-before-accept": _wait_before_accept,
}


def wsgi_app(environ, start_response):
    """A WSGI app: answers every request (a WebSocket handshake too) with plain text."""
    body = (f"wsgi {environ['REQUEST_METHOD']} {environ.get('SCRIPT_NAME', '')}"
            f"|{environ.get('PATH_INFO', '')} upgrade={environ.get('HTTP_UPGRADE', '')}"
            ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
