"""The apps behind tests/adapter_cases.py: one ASGI and one WSGI dispatcher, each picking
its behaviour from the first segment of the request path (``/scope/...`` -> ``scope``).

The same two callables serve every runner: the real server (``python -m betula``, one per
interface) and the in-memory stream (``betula.protocols.memory``). What the app saw is
reported as JSON in the body, so a case compares data, not log lines. What only shows
after the response (an iterable's ``close()``, an error raised by a ``send()`` after the
response completed) is kept in this module under the request's ``?id=`` and read back by
a second request to ``/recall?id=`` (bounded waits, never a timing assertion).

The well-behaved WSGI routes run through ``wsgiref.validate.validator``: a PEP 3333
violation by the server is an AssertionError in the app (a 500, and the case fails). The
routes that test the server's handling of a misbehaving app are not wrapped, so the
validator's own checks do not answer first.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Callable
from urllib.parse import parse_qs
from wsgiref import validate

from tests.apps.lifespan_stub import serve_lifespan

# id -> what the app noted after its response had gone (see the module docstring).
NOTES: dict[str, dict] = {}
_NOTED: dict[str, threading.Event] = {}
_NOTES_LOCK = threading.Lock()
PAYLOAD = bytes(range(256)) * 40 + b"end of file"  # what the file routes send
BLOCK = bytes(range(256)) * 256  # 64 KiB: the /big routes send 16 of them
RECALL_WAIT = 10.0  # hang guard of /recall (seconds); the note is usually there already


def _noted(rid: str) -> threading.Event:
    with _NOTES_LOCK:
        event = _NOTED.get(rid)
        if event is None:
            event = _NOTED[rid] = threading.Event()
        return event


def note(rid: str, **facts) -> None:
    with _NOTES_LOCK:
        NOTES.setdefault(rid, {}).update(facts)
    _noted(rid).set()


def _text(value):
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value


def _query(query: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _dumps(payload) -> bytes:
    return json.dumps(payload, sort_keys=True).encode()


# =========================================================================================
# ASGI
# =========================================================================================
TEXT = [(b"content-type", b"text/plain")]
JSON = [(b"content-type", b"application/json")]


async def _start(send, status: int = 200, headers=TEXT, **extra) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers, **extra})


async def _body(send, body: bytes = b"", more: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _json(send, payload, status: int = 200) -> None:
    await _start(send, status, JSON)
    await _body(send, _dumps(payload))


async def _read(receive) -> tuple[list[dict], bytes]:
    """Every http.request message of the body (type, length, more_body) and the body."""
    messages, parts = [], []
    while True:
        message = await receive()
        body = message.get("body", b"")
        messages.append({"type": message["type"], "more": message.get("more_body", False),
                         "len": len(body), "body_type": type(body).__name__})
        if message["type"] != "http.request":
            break
        parts.append(body)
        if not message.get("more_body", False):
            break
    return messages, b"".join(parts)


def _error_name(exc: BaseException) -> str:
    return type(exc).__name__


async def asgi_scope(scope, receive, send) -> None:
    headers = scope["headers"]
    await _json(send, {
        "type": scope["type"],
        "asgi": scope.get("asgi"),
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": _text(scope["raw_path"]),
        "raw_path_type": type(scope["raw_path"]).__name__,
        "query_string": _text(scope["query_string"]),
        "query_string_type": type(scope["query_string"]).__name__,
        "root_path": scope["root_path"],
        # Only the client's own x-* fields: Host/:authority and framing fields differ
        # from one HTTP version to another.
        "x_headers": [[_text(n), _text(v)] for n, v in headers if n.startswith(b"x-")],
        "headers_are_byte_pairs": all(
            len(pair) == 2 and type(pair[0]) is bytes and type(pair[1]) is bytes
            for pair in headers),
        "header_names_lowered": all(n == n.lower() for n, _ in headers),
        "extensions": sorted(scope.get("extensions") or {}),
    })


async def asgi_echo(scope, receive, send) -> None:
    """The request body, and how it came: the last message ends it, every one before
    says more_body (how many messages there are is the protocol's business)."""
    messages, body = await _read(receive)
    await _json(send, {
        "body": body.decode("latin-1"),
        "all_http_request": all(m["type"] == "http.request" for m in messages),
        "all_bytes": all(m["body_type"] == "bytes" for m in messages),
        "last_more": messages[-1]["more"],
        "earlier_more": all(m["more"] for m in messages[:-1]),
        "content_length": _text(dict(scope["headers"]).get(b"content-length")),
    })


async def asgi_echo_size(scope, receive, send) -> None:
    _, body = await _read(receive)
    await _json(send, {"size": len(body), "sum": sum(body) % 65521})


async def asgi_whole(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"x-custom", b"yes")])
    await _body(send, b"hello, world")


async def asgi_streamed(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"x-streamed", b"1")])
    for part in (b"one ", b"two ", b"three"):
        await _body(send, part, more=True)
    await _body(send, b"")


async def asgi_big(scope, receive, send) -> None:
    await _start(send)
    for _ in range(15):
        await _body(send, BLOCK, more=True)
    await _body(send, BLOCK)


async def asgi_empty(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"x-empty", b"1")])
    await _body(send, b"")


async def asgi_no_body_key(scope, receive, send) -> None:
    await _start(send)
    await send({"type": "http.response.body"})


async def asgi_status(scope, receive, send) -> None:
    """``/status/<code>``: that status, the body ``body`` (which 204/304/HEAD drop)."""
    code = int(scope["path"].split("/")[2])
    headers = [(b"x-code", str(code).encode())]
    if code not in (204, 304):
        headers += TEXT
    else:
        headers.append((b"etag", b'"v1"'))
    await _start(send, code, headers)
    await _body(send, b"body")


async def asgi_app_length(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"content-length", b"11")])
    await _body(send, b"hello", more=True)
    await _body(send, b" world")


async def asgi_repeated(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"set-cookie", b"a=1"), (b"x-one", b"1"),
                                    (b"set-cookie", b"b=2")])
    await _body(send, b"ok")


async def asgi_trailers(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"trailer", b"x-checksum")], trailers=True)
    await _body(send, b"part one, ", more=True)
    await _body(send, b"part two")
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})


async def asgi_trailers_split(scope, receive, send) -> None:
    await _start(send, 200, TEXT, trailers=True)
    await _body(send, b"data")
    await send({"type": "http.response.trailers", "headers": [(b"x-first", b"1")],
                "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-second", b"2")]})


async def asgi_early_hint(scope, receive, send) -> None:
    await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
    await _start(send)
    await _body(send, b"hinted")


async def asgi_pathsend(scope, receive, send) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile() as fh:
        fh.write(PAYLOAD)
        fh.flush()
        await _start(send, 200, TEXT + [(b"x-file", b"1")])
        await send({"type": "http.response.pathsend", "path": fh.name})


async def asgi_raise_before(scope, receive, send) -> None:
    raise ValueError("adapter case: failure before the response")


async def asgi_return_nothing(scope, receive, send) -> None:
    return None


async def asgi_raise_after(scope, receive, send) -> None:
    await _start(send)
    await _body(send, b"partial", more=True)
    raise ValueError("adapter case: failure after the head")


async def asgi_return_unfinished(scope, receive, send) -> None:
    await _start(send)
    await _body(send, b"partial", more=True)


async def _caught(coro) -> str | None:
    try:
        await coro
    except RuntimeError as exc:
        return _error_name(exc)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return "unexpected " + _error_name(exc)
    return None


async def asgi_body_before_start(scope, receive, send) -> None:
    error = await _caught(_body(send, b"too soon"))
    await _json(send, {"error": error})


async def asgi_start_twice(scope, receive, send) -> None:
    await _start(send, 200, JSON)
    error = await _caught(_start(send, 201, JSON))
    await _body(send, _dumps({"error": error}))


async def asgi_trailers_unannounced(scope, receive, send) -> None:
    await _start(send, 200, JSON)
    error = await _caught(send({"type": "http.response.trailers", "headers": []}))
    await _body(send, _dumps({"error": error}))


async def asgi_hint_after_start(scope, receive, send) -> None:
    await _start(send, 200, JSON)
    error = await _caught(send({"type": "http.response.early_hint", "links": [b"</x>"]}))
    await _body(send, _dumps({"error": error}))


async def asgi_unknown_message(scope, receive, send) -> None:
    await _start(send, 200, JSON)
    error = await _caught(send({"type": "http.response.nonsense"}))
    await _body(send, _dumps({"error": error}))


async def asgi_send_after_complete(scope, receive, send) -> None:
    rid = _query(scope["query_string"].decode())["id"]
    await _start(send)
    await _body(send, b"done")
    note(rid, error=await _caught(_body(send, b"late")))


async def asgi_bad_header_name(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"bad name", b"x")])
    await _body(send, b"never")


async def asgi_bad_header_value(scope, receive, send) -> None:
    await _start(send, 200, TEXT + [(b"x-split", b"a\r\nx-injected: 1")])
    await _body(send, b"never")


async def asgi_bad_status(scope, receive, send) -> None:
    await _start(send, "200", TEXT)  # a str: the spec asks for an int
    await _body(send, b"never")


async def asgi_recall(scope, receive, send) -> None:
    rid = _query(scope["query_string"].decode())["id"]
    seen = _noted(rid)
    for _ in range(int(RECALL_WAIT / 0.01)):  # bounded; the loop must stay free meanwhile
        if seen.is_set():
            break
        await asyncio.sleep(0.01)
    await _json(send, NOTES.get(rid, {"noted": False}))


ASGI_ROUTES: dict[str, Callable] = {
    name[len("asgi_"):].replace("_", "-"): func
    for name, func in list(globals().items()) if name.startswith("asgi_")
}


async def asgi_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    route = ASGI_ROUTES.get(scope["path"].split("/")[1])
    if route is None:
        await _start(send, 404, TEXT)
        await _body(send, b"no such route")
        return
    await route(scope, receive, send)


# =========================================================================================
# WSGI
# =========================================================================================
WTEXT = [("Content-Type", "text/plain")]
WJSON = [("Content-Type", "application/json")]


def _wjson(start_response, payload, status: str = "200 OK") -> list[bytes]:
    start_response(status, list(WJSON))
    return [_dumps(payload)]


_CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
             "CONTENT_LENGTH", "SERVER_PROTOCOL")


def wsgi_environ(environ, start_response):
    return _wjson(start_response, {
        **{key: environ.get(key) for key in _CGI_KEYS},
        "has": {key: key in environ for key in (
            "SERVER_NAME", "SERVER_PORT", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE",
            "HTTP_X_UNDER_SCORE")},
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_X_")},
        "cookie": environ.get("HTTP_COOKIE"),
        "url_scheme": environ["wsgi.url_scheme"],
        "version": list(environ["wsgi.version"]),
        "input_terminated": environ.get("wsgi.input_terminated"),
        "native_strings": sorted(k for k, v in environ.items()
                                 if k.isupper() and not isinstance(v, str)),
    })


def wsgi_read_n(environ, start_response):
    stream = environ["wsgi.input"]
    pieces = []
    while piece := stream.read(4):
        pieces.append(piece.decode("latin-1"))
        if len(pieces) > 1000:
            break
    return _wjson(start_response, {"pieces": pieces, "after": stream.read(4).decode()})


def wsgi_readline(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.readline(3)  # a limit: part of the first line
    lines = [first] + [stream.readline() for _ in range(4)]
    return _wjson(start_response, {"lines": [line.decode("latin-1") for line in lines]})


def wsgi_readlines(environ, start_response):
    lines = environ["wsgi.input"].readlines()
    return _wjson(start_response, {"lines": [line.decode("latin-1") for line in lines]})


def wsgi_iterate(environ, start_response):
    lines = [line.decode("latin-1") for line in environ["wsgi.input"]]
    return _wjson(start_response, {"lines": lines})


def wsgi_whole(environ, start_response):
    start_response("200 OK", WTEXT + [("X-Custom", "yes")])
    return [b"hello, ", b"world"]


def wsgi_generator(environ, start_response):
    start_response("200 OK", WTEXT + [("X-Generated", "1")])

    def parts():
        yield b"one "
        yield b"two "
        yield b"three"
    return parts()


def wsgi_big(environ, start_response):
    start_response("200 OK", list(WTEXT))
    return (BLOCK for _ in range(16))


def wsgi_write(environ, start_response):
    write = start_response("200 OK", WTEXT + [("X-Written", "1")])
    write(b"written ")
    write(b"then ")
    return [b"returned"]


def wsgi_empty(environ, start_response):
    start_response("200 OK", WTEXT + [("X-Empty", "1")])
    return []


def wsgi_empty_chunks(environ, start_response):
    start_response("200 OK", list(WTEXT))
    return iter([b"", b""])


def wsgi_status(environ, start_response):
    code = int(environ["PATH_INFO"].rsplit("/", 1)[1])
    headers = [("X-Code", str(code))]
    if code not in (204, 304):
        headers += WTEXT
    else:
        headers.append(("ETag", '"v1"'))
    start_response(f"{code} Whatever", headers)
    return [b"body"] if code not in (204, 304) else []


def wsgi_app_length(environ, start_response):
    start_response("200 OK", WTEXT + [("Content-Length", "11")])
    return iter([b"hello", b" world"])


def wsgi_app_length_list(environ, start_response):
    start_response("200 OK", WTEXT + [("Content-Length", "11")])
    return [b"hello", b" world"]


def wsgi_repeated(environ, start_response):
    start_response("200 OK", WTEXT + [("Set-Cookie", "a=1"), ("X-One", "1"),
                                      ("Set-Cookie", "b=2")])
    return [b"ok"]


def wsgi_early_hint(environ, start_response):
    environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
    start_response("200 OK", list(WTEXT))
    return [b"hinted"]


def wsgi_held_then_data(environ, start_response):
    """Empty chunks before the first data: the head waits for the data (PEP 3333)."""
    start_response("200 OK", list(WTEXT))
    return iter([b"", b"", b"late data"])


class _Closing:
    """An iterable with close(), noting that it was called (PEP 3333: the server must)."""

    def __init__(self, rid: str, parts: list[bytes], fail: bool = False) -> None:
        self.rid = rid
        self.parts = parts
        self.fail = fail

    def __iter__(self):
        yield from self.parts
        if self.fail:
            raise ValueError("adapter case: iterable failed")

    def close(self) -> None:
        note(self.rid, closed=True)


def wsgi_closing(environ, start_response):
    start_response("200 OK", list(WTEXT))
    return _Closing(_query(environ["QUERY_STRING"])["id"], [b"closing ", b"body"])


def wsgi_recall(environ, start_response):
    rid = _query(environ["QUERY_STRING"])["id"]
    _noted(rid).wait(RECALL_WAIT)
    return _wjson(start_response, NOTES.get(rid, {"noted": False}))


DIRECT = {name[len("wsgi_"):].replace("_", "-"): func
          for name, func in list(globals().items()) if name.startswith("wsgi_")}
VALIDATED = {name: validate.validator(func) for name, func in DIRECT.items()}


def plain_direct(environ, start_response):
    """``/direct/<route>``: the route without the validator. The validator wraps every
    body in an iterator of its own, so a list body only reaches the adapter as a list (its
    whole-response path, one call to the stream) this way."""
    route = DIRECT[environ["PATH_INFO"].split("/")[2]]
    return route(environ, start_response)


def _payload_file():
    import tempfile

    fh = tempfile.TemporaryFile()
    fh.write(PAYLOAD)
    fh.seek(0)
    return fh


def plain_file_wrapper(environ, start_response):
    start_response("200 OK", WTEXT + [("X-File", "1")])
    return environ["wsgi.file_wrapper"](_payload_file(), 4096)


# -- not wrapped in the validator: read() without a size (the validator's InputWrapper
# insists on one; PEP 3333 with wsgi.input_terminated allows it), and misbehaving apps ----
def plain_read(environ, start_response):
    body = environ["wsgi.input"].read()
    return _wjson(start_response, {"body": body.decode("latin-1"),
                                   "again": environ["wsgi.input"].read().decode("latin-1"),
                                   "content_length": environ.get("CONTENT_LENGTH")})


def plain_read_size(environ, start_response):
    body = environ["wsgi.input"].read()
    return _wjson(start_response, {"size": len(body), "sum": sum(body) % 65521})


def bad_raise_before(environ, start_response):
    raise ValueError("adapter case: failure before start_response")


def bad_raise_after_start(environ, start_response):
    start_response("200 OK", list(WTEXT))
    raise ValueError("adapter case: failure after start_response, before the body")


def bad_raise_after_head(environ, start_response):
    start_response("200 OK", list(WTEXT))

    def parts():
        yield b"partial"
        raise ValueError("adapter case: failure after the head")
    return parts()


def bad_held_then_raise(environ, start_response):
    """Only empty chunks before the failure: the head never went, so a 500 still can."""
    start_response("200 OK", list(WTEXT))

    def parts():
        yield b""
        raise ValueError("adapter case: failure before the first data")
    return parts()


def bad_closing_failure(environ, start_response):
    start_response("200 OK", list(WTEXT))
    return _Closing(_query(environ["QUERY_STRING"])["id"], [b"partial"], fail=True)


def bad_no_start(environ, start_response):
    return [b"no start_response"]


def bad_no_start_generator(environ, start_response):
    return iter([b"no start_response"])


def bad_start_twice(environ, start_response):
    start_response("200 OK", list(WJSON))
    try:
        start_response("201 Created", list(WJSON))
    except Exception:  # noqa: BLE001 - PEP 3333 names no type: any error will do
        return [_dumps({"raised": True})]
    return [_dumps({"raised": False})]


def bad_exc_info_replaces(environ, start_response):
    start_response("200 OK", list(WTEXT))
    try:
        raise ValueError("adapter case: replaced by an error page")
    except ValueError:
        start_response("500 Internal Server Error", WTEXT + [("X-Replaced", "yes")],
                       sys.exc_info())
    return [b"error page"]


def bad_exc_info_after_head(environ, start_response):
    write = start_response("200 OK", list(WTEXT))
    write(b"partial")
    try:
        raise ValueError("adapter case: error after the head")
    except ValueError:
        start_response("500 Internal Server Error", list(WTEXT), sys.exc_info())
    return [b"never"]


def bad_header_name(environ, start_response):
    start_response("200 OK", WTEXT + [("Bad Name", "x")])
    return [b"never"]


def bad_header_value(environ, start_response):
    start_response("200 OK", WTEXT + [("X-Split", "a\r\nX-Injected: 1")])
    return [b"never"]


def bad_header_name_streamed(environ, start_response):
    start_response("200 OK", WTEXT + [("Bad Name", "x")])
    return iter([b"never"])


def bad_first_chunk_too_long(environ, start_response):
    start_response("200 OK", WTEXT + [("Content-Length", "3")])
    return iter([b"longer than three"])


def bad_invalid_status(environ, start_response):
    start_response("200", list(WTEXT))  # no reason phrase: not a WSGI status
    return [b"never"]


def bad_headers_tuple(environ, start_response):
    start_response("200 OK", tuple(WTEXT))  # PEP 3333: a list
    return [b"never"]


def bad_str_chunk(environ, start_response):
    start_response("200 OK", list(WTEXT))
    return ["text, not bytes"]


WSGI_ROUTES: dict[str, Callable] = {
    **VALIDATED,
    **{name.split("_", 1)[1].replace("_", "-"): func
       for name, func in list(globals().items()) if name.startswith(("bad_", "plain_"))},
}


def wsgi_app(environ, start_response):
    route = WSGI_ROUTES.get(environ["PATH_INFO"].split("/")[1])
    if route is None:
        start_response("404 Not Found", list(WTEXT))
        return [b"no such route"]
    return route(environ, start_response)
