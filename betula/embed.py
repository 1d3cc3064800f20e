"""Run one request through an app without a socket.

    status, headers, body = run_asgi("myapp:app", {"type": "http", "path": "/"}, b"")
    status, headers, body = run_wsgi(wsgi_app, {"REQUEST_METHOD": "GET", ...})

The field tables of erlang_python's web-frameworks guide are the contract: the minimal
fields are required, the rest get defaults, a missing or mistyped field is a ValueError that
names it. ``build_scope`` validates once and returns a template that later calls copy cheaply.

Custom runners: a module (or object) with ``async run_asgi(app, scope, body)`` and/or
``run_wsgi(app, environ)`` returning the same tuples; they usually wrap
``default_asgi_handler`` / ``default_wsgi_handler``. ``betula --runner MODULE`` sends served
traffic through the same runner (``RunnerApp``), so the server and the embedding API share
one path.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import threading
from collections.abc import Mapping
from typing import Any

from .asgi.lifespan import LifespanFailure, LifespanManager
from .importer import import_from_string
from .wsgi.http import FileWrapper
from .wsgi.io import ErrorStream

__all__ = [
    "build_scope", "build_environ", "run_asgi", "arun_asgi", "run_wsgi",
    "default_asgi_handler", "default_wsgi_handler", "Embedded", "RunnerApp", "load_runner",
]

Scope = dict
_APPS: dict[str, Any] = {}
_APPS_LOCK = threading.Lock()
_ASGI = {"version": "3.0", "spec_version": "2.4"}


class _BuiltScope(dict):
    """A scope validated by build_scope: run_asgi copies it without validating again."""


def _resolve_app(app: Any) -> Any:
    if isinstance(app, str):
        cached = _APPS.get(app)
        if cached is None:
            with _APPS_LOCK:
                cached = _APPS.get(app)
                if cached is None:
                    cached = _APPS[app] = import_from_string(app)
        return cached
    if not callable(app):
        raise ValueError(f"app must be a callable or a 'module:attr' string, got {app!r}")
    return app


def load_runner(runner: Any) -> Any:
    """A runner module name, module or object with run_asgi and/or run_wsgi."""
    if runner is None:
        return None
    obj = importlib.import_module(runner) if isinstance(runner, str) else runner
    if not hasattr(obj, "run_asgi") and not hasattr(obj, "run_wsgi"):
        raise ValueError(f"runner {runner!r} has neither run_asgi nor run_wsgi")
    return obj


# -- scope -------------------------------------------------------------------------------
def _text(fields: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = fields.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        raise ValueError(f"scope field {name!r} must be a str, got {type(value).__name__}")
    return value


def _raw(fields: Mapping[str, Any], name: str, default: bytes) -> bytes:
    value = fields.get(name, default)
    if isinstance(value, str):
        value = value.encode("latin-1")
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"scope field {name!r} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _address(fields: Mapping[str, Any], name: str) -> Any:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2 or \
            not isinstance(value[1], int):
        raise ValueError(f"scope field {name!r} must be a (host, port) pair, got {value!r}")
    host = value[0].decode("latin-1") if isinstance(value[0], bytes) else value[0]
    return (str(host), value[1])


def _headers(value: Any) -> list[tuple[bytes, bytes]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = list(value.items())
    if not isinstance(value, (list, tuple)):
        raise ValueError("scope field 'headers' must be a list of [name, value] pairs")
    result = []
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"scope field 'headers' has a malformed pair: {pair!r}")
        name, val = pair
        if isinstance(name, str):
            name = name.encode("latin-1")
        if isinstance(val, str):
            val = val.encode("latin-1")
        if not isinstance(name, bytes) or not isinstance(val, bytes):
            raise ValueError(f"scope field 'headers' has a non-bytes pair: {pair!r}")
        result.append((name.lower(), val))
    return result


def build_scope(fields: Mapping[str, Any]) -> Scope:
    """A complete, validated ASGI scope from the minimal fields (type and path required)."""
    if not isinstance(fields, Mapping):
        raise ValueError(f"scope must be a mapping, got {type(fields).__name__}")
    if "type" not in fields:
        raise ValueError("scope field 'type' is required")
    kind = _text(fields, "type")
    if kind not in ("http", "websocket"):
        raise ValueError(f"scope field 'type' must be 'http' or 'websocket', got {kind!r}")
    if "path" not in fields:
        raise ValueError("scope field 'path' is required")
    path = _text(fields, "path")
    if not path.startswith("/") and path != "*":
        raise ValueError(f"scope field 'path' must start with '/', got {path!r}")
    asgi = fields.get("asgi", _ASGI)
    if not isinstance(asgi, Mapping) or "version" not in asgi:
        raise ValueError("scope field 'asgi' must be a mapping with a 'version'")
    http_version = _text(fields, "http_version", "1.1")
    if http_version not in ("1.0", "1.1", "2", "3"):
        raise ValueError(f"scope field 'http_version' is not an HTTP version: {http_version!r}")
    scheme = _text(fields, "scheme", "http" if kind == "http" else "ws")
    state = fields.get("state")
    if state is not None and not isinstance(state, dict):
        raise ValueError("scope field 'state' must be a dict")
    extensions = fields.get("extensions", {})
    if not isinstance(extensions, Mapping):
        raise ValueError("scope field 'extensions' must be a mapping")
    scope = _BuiltScope(
        type=kind,
        asgi=dict(asgi),
        http_version=http_version,
        method=_text(fields, "method", "GET").upper(),
        scheme=scheme,
        path=path,
        raw_path=_raw(fields, "raw_path", path.encode("utf-8")),
        query_string=_raw(fields, "query_string", b""),
        root_path=_text(fields, "root_path", ""),
        headers=_headers(fields.get("headers")),
        server=_address(fields, "server"),
        client=_address(fields, "client"),
        extensions=dict(extensions),
    )
    scope["state"] = state if state is not None else {}
    if kind == "websocket":
        scope.pop("method")
        scope["subprotocols"] = list(fields.get("subprotocols", []))
    for key, value in fields.items():  # extra keys are the caller's business
        scope.setdefault(key, value)
    return scope


def _request_scope(scope: Mapping[str, Any], state: dict[str, Any] | None = None) -> Scope:
    base = scope if isinstance(scope, _BuiltScope) else build_scope(scope)
    result = dict(base)
    result["headers"] = list(base["headers"])
    # Nested dicts of the template are the template's: an app writing to them must not
    # change later calls.
    result["asgi"] = dict(base["asgi"])
    result["extensions"] = {k: (dict(v) if isinstance(v, dict) else v)
                            for k, v in base["extensions"].items()}
    if state is not None:
        result["state"] = dict(state)
    elif "state" in base:
        result["state"] = dict(base["state"])
    return result


# -- ASGI ---------------------------------------------------------------------------------
async def default_asgi_handler(app: Any, scope: Scope, body: bytes = b"") -> tuple[
        int, list[tuple[bytes, bytes]], bytes]:
    """Run an ASGI app for one request; the whole response, streamed or not, collected."""
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    done = asyncio.Event()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        kind = message["type"]
        if done.is_set():
            raise RuntimeError(f"{kind} sent after the response completed")
        if kind == "http.response.start":
            code = message["status"]
            if 100 <= code < 200:
                return  # informational responses have no place in a collected response
            if status is not None:
                raise RuntimeError("http.response.start sent twice")
            status = code
            headers.extend((bytes(n), bytes(v)) for n, v in message.get("headers", ()))
            return
        if status is None:
            if kind == "http.response.early_hint":
                return
            raise RuntimeError(f"{kind} sent before http.response.start")
        if kind == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()
        elif kind == "http.response.pathsend":
            with open(message["path"], "rb") as fh:
                chunks.append(fh.read())
            done.set()
        elif kind == "http.response.zerocopysend":
            file = message["file"]
            if message.get("offset") is not None:
                file.seek(message["offset"])
            count = message.get("count")
            chunks.append(file.read() if count is None else file.read(count))
            if not message.get("more_body", False):
                done.set()
        elif kind not in ("http.response.trailers", "http.response.early_hint"):
            raise RuntimeError(f"unexpected ASGI message type {kind!r}")

    await app(scope, receive, send)
    if status is None:
        raise RuntimeError("the ASGI app returned without starting a response")
    if not done.is_set():
        raise RuntimeError("the ASGI app returned without completing the response")
    return status, headers, b"".join(chunks)


async def arun_asgi(app: Any, scope: Mapping[str, Any], body: bytes = b"", *,
                    runner: Any = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Async form of run_asgi, for callers already in an event loop."""
    target = _resolve_app(app)
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ValueError(f"body must be bytes, got {type(body).__name__}")
    request_scope = _request_scope(scope)
    runner_obj = load_runner(runner)
    if runner_obj is not None and hasattr(runner_obj, "run_asgi"):
        return await runner_obj.run_asgi(target, request_scope, bytes(body))
    return await default_asgi_handler(target, request_scope, bytes(body))


_LOOPS = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_LOOPS, "loop", None)
    if loop is None or loop.is_closed():
        loop = _LOOPS.loop = asyncio.new_event_loop()
    return loop


def run_asgi(app: Any, scope: Mapping[str, Any], body: bytes = b"", *,
             runner: Any = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run one request through an ASGI app: ``(status, headers, body)``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().run_until_complete(arun_asgi(app, scope, body, runner=runner))
    raise RuntimeError("run_asgi() called from a running event loop: await arun_asgi()")


# -- WSGI ---------------------------------------------------------------------------------
_ENVIRON_REQUIRED = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME",
                     "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme", "wsgi.input")
_ENVIRON_TEXT = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                 "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
                 "wsgi.url_scheme")


def build_environ(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A complete, validated WSGI environ from the guide's Environ Fields."""
    if not isinstance(fields, Mapping):
        raise ValueError(f"environ must be a mapping, got {type(fields).__name__}")
    for name in _ENVIRON_REQUIRED:
        if name not in fields:
            raise ValueError(f"environ field {name!r} is required")
    environ = dict(fields)
    for name in _ENVIRON_TEXT:
        if name in environ:
            value = environ[name]
            if isinstance(value, bytes):
                value = environ[name] = value.decode("latin-1")
            if name == "SERVER_PORT" and isinstance(value, int):
                value = environ[name] = str(value)
            if not isinstance(value, str):
                raise ValueError(f"environ field {name!r} must be a str, got "
                                 f"{type(value).__name__}")
    for key, value in list(environ.items()):
        if key.startswith("HTTP_") and isinstance(value, bytes):
            environ[key] = value.decode("latin-1")
    body = environ["wsgi.input"]
    if isinstance(body, (bytes, bytearray, memoryview)):
        environ["wsgi.input"] = io.BytesIO(bytes(body))
        environ.setdefault("CONTENT_LENGTH", str(len(body)) if body else "")
    elif not hasattr(body, "read"):
        raise ValueError("environ field 'wsgi.input' must be bytes or a readable stream")
    environ.setdefault("QUERY_STRING", "")
    environ.setdefault("CONTENT_TYPE", "")
    environ.setdefault("CONTENT_LENGTH", "")
    environ.setdefault("wsgi.version", (1, 0))
    environ.setdefault("wsgi.errors", ErrorStream())
    environ.setdefault("wsgi.multithread", True)
    environ.setdefault("wsgi.multiprocess", True)
    environ.setdefault("wsgi.run_once", False)
    environ.setdefault("wsgi.input_terminated", True)
    environ.setdefault("wsgi.file_wrapper", FileWrapper)
    return environ


def default_wsgi_handler(app: Any, environ: dict[str, Any]) -> tuple[
        str, list[tuple[str, str]], bytes]:
    """Run a WSGI app for one request per PEP 3333; the whole response collected."""
    state: dict[str, Any] = {"status": None, "headers": None, "sent": False}
    chunks: list[bytes] = []

    def write(data: bytes) -> None:
        if state["status"] is None:
            raise AssertionError("write() before start_response()")
        state["sent"] = True
        chunks.append(bytes(data))

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if not isinstance(status, str):
            raise TypeError(f"WSGI status must be a str, got {type(status).__name__}")
        state["status"] = status
        state["headers"] = list(headers)
        return write

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                state["sent"] = True
                chunks.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if state["status"] is None:
        raise RuntimeError("the WSGI app returned without calling start_response")
    return state["status"], [(str(n), str(v)) for n, v in state["headers"]], b"".join(chunks)


def run_wsgi(app: Any, environ: Mapping[str, Any], *, runner: Any = None) -> tuple[
        str, list[tuple[str, str]], bytes]:
    """Run one request through a WSGI app: ``(status, headers, body)``."""
    target = _resolve_app(app)
    full = build_environ(environ)
    runner_obj = load_runner(runner)
    if runner_obj is not None and hasattr(runner_obj, "run_wsgi"):
        return runner_obj.run_wsgi(target, full)
    return default_wsgi_handler(target, full)


# -- a reusable app with its lifespan ------------------------------------------------------
class Embedded:
    """An app kept for many calls; with ``lifespan=True`` its startup runs once (first call
    or ``start()``) and its shutdown on ``close()``; its state reaches every scope."""

    def __init__(self, app: Any, *, lifespan: bool = False, runner: Any = None) -> None:
        self.app = _resolve_app(app)
        self.runner = load_runner(runner)
        self.lifespan = lifespan
        self._manager: LifespanManager | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    async def astart(self) -> None:
        if self._started:
            return
        self._started = True
        if self.lifespan:
            self._manager = LifespanManager(self.app, "on")
            try:
                await self._manager.startup()
            except LifespanFailure as exc:
                raise RuntimeError(str(exc)) from None

    def start(self) -> None:
        self._get_loop().run_until_complete(self.astart())

    async def arun_asgi(self, scope: Mapping[str, Any], body: bytes = b"") -> tuple[
            int, list[tuple[bytes, bytes]], bytes]:
        await self.astart()
        state = self._manager.state if self._manager is not None else None
        request_scope = _request_scope(scope, state)
        if self.runner is not None and hasattr(self.runner, "run_asgi"):
            return await self.runner.run_asgi(self.app, request_scope, bytes(body))
        return await default_asgi_handler(self.app, request_scope, bytes(body))

    def run_asgi(self, scope: Mapping[str, Any], body: bytes = b"") -> tuple[
            int, list[tuple[bytes, bytes]], bytes]:
        return self._get_loop().run_until_complete(self.arun_asgi(scope, body))

    def run_wsgi(self, environ: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        full = build_environ(environ)
        if self.runner is not None and hasattr(self.runner, "run_wsgi"):
            return self.runner.run_wsgi(self.app, full)
        return default_wsgi_handler(self.app, full)

    async def aclose(self) -> None:
        if self._manager is not None:
            await self._manager.shutdown()
            self._manager = None

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self.aclose())
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Embedded:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- served traffic through a runner -------------------------------------------------------
class RunnerApp:
    """``--runner``: served ASGI requests go through ``runner.run_asgi`` (whole body in,
    whole response out), the same path embedded calls take."""

    def __init__(self, app: Any, runner: Any) -> None:
        self.app = app
        self.runner = runner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not hasattr(self.runner, "run_asgi"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, headers, body = await self.runner.run_asgi(self.app, scope, b"".join(chunks))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RunnerWSGIApp:
    """``--runner`` for WSGI apps: served requests go through ``runner.run_wsgi``."""

    def __init__(self, app: Any, runner: Any) -> None:
        self.app = app
        self.runner = runner

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, headers, body = self.runner.run_wsgi(self.app, environ)
        start_response(status, headers)
        return [body]
