"""ASGI 3.0 (spec 2.4) test app for tests/test_asgi.py: one ``app`` routing on the path.

Routes are matched on the path with the root_path removed, so the same app serves behind
``--root-path``. Observations the test cannot see on the wire are printed to stdout as
``RECORD <id> <json>`` (the server's log captures stdout); ``<id>`` comes from ``?id=``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs

JSON = [(b"content-type", b"application/json")]


def record(rid: str, payload: dict) -> None:
    print(f"RECORD {rid} {json.dumps(payload, sort_keys=True)}", flush=True)


def _query(scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def _json(send, payload, status: int = 200) -> None:
    body = json.dumps(payload, sort_keys=True).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": JSON + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> tuple[list[tuple[int, bool]], bytes]:
    messages: list[tuple[int, bool]] = []
    parts: list[bytes] = []
    for _ in range(100_000):
        message = await receive()
        assert message["type"] == "http.request", message
        body = message.get("body", b"")
        more = message.get("more_body", False)
        messages.append((len(body), more))
        parts.append(body)
        if not more:
            break
    return messages, b"".join(parts)


def _tname(value) -> str:
    return type(value).__name__


def _b(value):
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value


def describe_scope(scope) -> dict:
    """The scope as JSON, bytes as latin-1 text, with the Python type of every part."""
    headers = scope.get("headers")
    client = scope.get("client")
    server = scope.get("server")
    state = scope.get("state")
    return {
        "keys": sorted(scope),
        "type": scope.get("type"),
        "asgi": scope.get("asgi"),
        "http_version": scope.get("http_version"),
        "method": scope.get("method"),
        "scheme": scope.get("scheme"),
        "path": scope.get("path"),
        "raw_path": _b(scope.get("raw_path")),
        "query_string": _b(scope.get("query_string")),
        "root_path": scope.get("root_path"),
        "headers": [[_b(n), _b(v)] for n, v in headers] if headers is not None else None,
        "client": list(client) if client is not None else None,
        "server": list(server) if server is not None else None,
        "state": {k: v for k, v in state.items() if isinstance(v, (str, int, float, bool))}
        if isinstance(state, dict) else None,
        "extensions": {k: _tname(v) for k, v in (scope.get("extensions") or {}).items()},
        "types": {
            "type": _tname(scope.get("type")),
            "asgi": _tname(scope.get("asgi")),
            "asgi.version": _tname((scope.get("asgi") or {}).get("version")),
            "asgi.spec_version": _tname((scope.get("asgi") or {}).get("spec_version")),
            "http_version": _tname(scope.get("http_version")),
            "method": _tname(scope.get("method")),
            "scheme": _tname(scope.get("scheme")),
            "path": _tname(scope.get("path")),
            "raw_path": _tname(scope.get("raw_path")),
            "query_string": _tname(scope.get("query_string")),
            "root_path": _tname(scope.get("root_path")),
            "headers": _tname(headers),
            "header_pair": sorted({_tname(p) for p in headers or ()}),
            "header_item": sorted({_tname(x) for p in headers or () for x in p}),
            "header_pair_len": sorted({len(p) for p in headers or ()}),
            "client": _tname(client),
            "client_host": _tname(client[0]) if client else None,
            "client_port": _tname(client[1]) if client else None,
            "server": _tname(server),
            "server_host": _tname(server[0]) if server else None,
            "server_port": _tname(server[1]) if server else None,
            "state": _tname(state),
            "extensions": _tname(scope.get("extensions")),
        },
    }


# -- lifespan: the state the requests must see -----------------------------------------------
async def lifespan(scope, receive, send) -> None:
    for _ in range(10):
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at_startup"] = "yes"
            scope["state"]["answer"] = 42
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# -- routes ----------------------------------------------------------------------------------
async def r_scope(scope, receive, send, q) -> None:
    await _read_body(receive)
    await _json(send, describe_scope(scope))


async def r_state_mutate(scope, receive, send, q) -> None:
    """Mutate this request's state; the next request must not see it."""
    state = scope["state"]
    before = sorted(state)
    state["leaked_from_request"] = q.get("id", "x")
    state["answer"] = -1
    await _json(send, {"before": before})


async def r_body(scope, receive, send, q) -> None:
    """Answer the sizes of the http.request messages; with ``?id=``, record the bytes received
    so far at each message (the test sends the next piece only once the app has the last)."""
    delay = float(q.get("delay", "0"))
    rid = q.get("id")
    messages: list[tuple[int, bool]] = []
    total = 0
    for _ in range(100_000):
        message = await receive()
        if message["type"] != "http.request":
            messages.append((-1, False))
            break
        body = message.get("body", b"")
        more = message.get("more_body", False)
        messages.append((len(body), more))
        total += len(body)
        if rid is not None:
            record(rid, {"total": total, "more": more})
        if not more:
            break
        if delay:
            await asyncio.sleep(delay)
    await _json(send, {"messages": messages, "total": total,
                       "types": sorted({_tname(m) for m in messages})})


MARKS: set[str] = set()


async def r_mark(scope, receive, send, q) -> None:
    """Note that this request was served (a request in /wait-disconnect asks later)."""
    await _read_body(receive)
    MARKS.add(q["id"])
    await _json(send, {"marked": q["id"]})


async def r_wait_disconnect(scope, receive, send, q) -> None:
    """Read the body, then wait in receive() for the disconnect, then try to send. The record
    says whether /mark?id= was served before receive() returned."""
    rid = q["id"]
    messages, body = await _read_body(receive)
    record(rid + "-body", {"messages": messages, "body": body.decode("latin-1")})
    message = await asyncio.wait_for(receive(), 20)
    record(rid + "-after", {"type": message["type"], "marked": rid in MARKS})
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"too late"})
    except BaseException as exc:  # recorded for the test
        record(rid + "-send", {"error": _tname(exc), "oserror": isinstance(exc, OSError)})
        raise
    record(rid + "-send", {"error": None, "oserror": False})


async def r_sse(scope, receive, send, q) -> None:
    """Server-sent events every 50 ms while a task listens for http.disconnect."""
    rid = q["id"]
    disconnected = asyncio.Event()

    async def listen() -> None:
        for _ in range(100_000):
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                return

    listener = asyncio.ensure_future(listen())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache")]})
    sent = 0
    send_error = None
    try:
        while not disconnected.is_set() and sent < 400:  # bounded: 20 s at most
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % sent,
                        "more_body": True})
            sent += 1
            try:
                await asyncio.wait_for(disconnected.wait(), 0.05)
            except TimeoutError:
                pass
    except OSError as exc:
        send_error = _tname(exc)
    try:
        await asyncio.wait_for(listener, 5)
    except TimeoutError:
        listener.cancel()
    record(rid, {"disconnect": disconnected.is_set(), "events": sent, "send_error": send_error})


async def r_stream_until_error(scope, receive, send, q) -> None:
    """Stream body parts until send() raises (the client left); record what it raised."""
    rid = q["id"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    error = None
    try:
        for i in range(400):  # bounded: 20 s at most
            await send({"type": "http.response.body", "body": b"line %d\n" % i,
                        "more_body": True})
            await asyncio.sleep(0.05)
    except BaseException as exc:  # noqa: BLE001 - recorded for the test
        error = exc
    record(rid, {"error": _tname(error) if error else None,
                 "oserror": isinstance(error, OSError),
                 "mro": [c.__name__ for c in type(error).__mro__] if error else []})
    if error is not None and not isinstance(error, Exception):
        raise error


async def r_misuse(scope, receive, send, q) -> None:
    kind = q["kind"]
    rid = q.get("id", "misuse")
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json")]}
    if kind == "body-before-start":
        try:
            await send({"type": "http.response.body", "body": b"nope"})
            error = None
        except Exception as exc:  # noqa: BLE001
            error = _tname(exc)
        await _json(send, {"error": error})
    elif kind == "start-twice":
        await send(start)
        try:
            await send(dict(start, status=201))
            error = None
        except Exception as exc:  # noqa: BLE001
            error = _tname(exc)
        await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})
    elif kind == "after-final":
        await send(start)
        await send({"type": "http.response.body", "body": b'{"done": true}'})
        errors = {}
        for name, message in (
                ("body", {"type": "http.response.body", "body": b"extra"}),
                ("empty-body", {"type": "http.response.body", "body": b""}),
                ("start", dict(start, status=202))):
            try:
                await send(message)
                errors[name] = None
            except Exception as exc:  # noqa: BLE001
                errors[name] = _tname(exc)
        record(rid, errors)
    else:  # pragma: no cover
        raise ValueError(kind)


async def r_error(scope, receive, send, q) -> None:
    kind = q["kind"]
    marker = q.get("marker", "boom")
    if kind == "before-start":
        raise ValueError(f"exploded before start {marker}")
    if kind == "after-start-chunked":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial-", "more_body": True})
        await asyncio.sleep(0.05)
        raise ValueError(f"exploded after start {marker}")
    if kind == "after-start-length":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
        await asyncio.sleep(0.05)
        raise ValueError(f"exploded after start {marker}")
    if kind == "no-response":
        await _read_body(receive)
        return
    raise ValueError(kind)  # pragma: no cover


async def r_early_hint(scope, receive, send, q) -> None:
    await send({"type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style",
                          b"</script.js>; rel=preload; as=script"]})
    body = b"<html>final</html>"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def r_early_hint_split(scope, receive, send, q) -> None:
    # A link value with a line break: it would start a header of its own (response splitting)
    await send({"type": "http.response.early_hint",
                "links": [b"</a.css>; rel=preload\r\nX-Injected: 1"]})


async def r_informational(scope, receive, send, q) -> None:
    await send({"type": "http.response.start", "status": 103,
                "headers": [[b"link", b"</style.css>; rel=preload; as=style"],
                            [b"link", b"</font.woff2>; rel=preload; as=font"]]})
    await send({"type": "http.response.start", "status": 200,
                "headers": [[b"content-type", b"text/html"]]})
    await send({"type": "http.response.body", "body": b"<html>...</html>"})


async def r_pathsend(scope, receive, send, q) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.pathsend", "path": q["path"]})


async def r_zerocopy(scope, receive, send, q) -> None:
    mode = q["mode"]
    with open(q["path"], "rb") as fh:  # noqa: ASYNC230 - a test app
        size = os.fstat(fh.fileno()).st_size
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if mode == "whole":
            await send({"type": "http.response.zerocopysend", "file": fh})
        elif mode == "range":
            await send({"type": "http.response.zerocopysend", "file": fh,
                        "offset": int(q["offset"]), "count": int(q["count"])})
        elif mode == "position":
            fh.seek(int(q["offset"]))
            await send({"type": "http.response.zerocopysend", "file": fh,
                        "count": int(q["count"])})
        elif mode == "two":
            half = size // 2
            await send({"type": "http.response.zerocopysend", "file": fh,
                        "offset": 0, "count": half, "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": fh,
                        "offset": half, "more_body": False})
        else:  # pragma: no cover
            raise ValueError(mode)


async def r_trailers(scope, receive, send, q) -> None:
    await _read_body(receive)
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum")]})
    await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
    await send({"type": "http.response.body", "body": b"trailers", "more_body": False})
    await send({"type": "http.response.trailers",
                "headers": [(b"x-checksum", b"sha256=abc123")], "more_trailers": False})


async def r_cookies(scope, receive, send, q) -> None:
    body = b"cookies"
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/; HttpOnly"),
        (b"x-custom", b"MiXeD Case,  two  spaces;\tand a tab"),
        (b"set-cookie", b"c=3; Max-Age=60; SameSite=Lax"),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


async def r_receive_after_response(scope, receive, send, q) -> None:
    """Spec: receive() after the response has been sent returns http.disconnect."""
    rid = q["id"]
    await _read_body(receive)
    body = b"done"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": body})
    try:
        message = await asyncio.wait_for(receive(), 5)
        record(rid, {"type": message["type"]})
    except TimeoutError:
        record(rid, {"type": "timeout: receive() did not return"})


ROUTES = {
    "/receive-after-response": r_receive_after_response,
    "/scope": r_scope,
    "/state-mutate": r_state_mutate,
    "/body": r_body,
    "/wait-disconnect": r_wait_disconnect,
    "/mark": r_mark,
    "/sse": r_sse,
    "/stream-until-error": r_stream_until_error,
    "/misuse": r_misuse,
    "/error": r_error,
    "/early-hint": r_early_hint,
    "/early-hint-split": r_early_hint_split,
    "/informational": r_informational,
    "/pathsend": r_pathsend,
    "/zerocopy": r_zerocopy,
    "/trailers": r_trailers,
    "/cookies": r_cookies,
}


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    prefix = "/" + path.split("/", 2)[1] if path.startswith("/") else path
    handler = ROUTES.get(prefix)
    if handler is None:
        await _json(send, {"error": "no route", "path": scope["path"]}, status=404)
        return
    await handler(scope, receive, send, _query(scope))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("serve with: python -m betula tests.apps.asgi_apps:app")
