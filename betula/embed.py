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

Every call runs the server's own adapters, ``HTTPCycle`` and ``WSGICycle``, over an
in-memory stream (``protocols/memory.py``): one implementation of each spec, so a rule an
app breaks (a body before the start, a second start, a bad header...) is the same error
embedded as served. Served, the adapter logs an app's error and answers 500; embedded, the
caller gets the exception itself. ASGI runs in the calling task (``run_asgi``: on a loop
kept per thread, the first step taken eagerly, ``eager.py``); WSGI in the calling thread,
the adapter's loop-side calls run inline (``INLINE``).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import threading
from collections.abc import Mapping
from typing import Any

from .asgi.http import HTTPCycle
from .asgi.lifespan import LifespanFailure, LifespanManager
from .eager import EagerLoop, LoopRunning
from .headers import HOP_BY_HOP
from .http_common import phrase
from .importer import import_from_string
from .protocols.memory import MemoryStream
from .worker_state import WorkerState
from .wsgi.environ import ERRORS, FileWrapper
from .wsgi.http import INLINE, WSGICycle
from .wsgi.io import EMPTY_INPUT

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
    base = scope if scope.__class__ is _BuiltScope else build_scope(scope)
    result = base.copy()  # a plain dict (its subscripts are the fast ones)
    # The header list and nested dicts of the template are the template's: an app (or
    # its middleware) writing to them must not change later calls: each call has its own.
    headers = result["headers"]
    result["headers"] = headers.copy() if headers.__class__ is list else list(headers)
    asgi = result["asgi"]
    result["asgi"] = asgi.copy() if asgi.__class__ is dict else dict(asgi)
    extensions = result["extensions"]
    if extensions:
        result["extensions"] = {k: (dict(v) if isinstance(v, dict) else v)
                                for k, v in extensions.items()}
    else:
        result["extensions"] = {}
    if state is None:
        state = result.get("state")
        if state is None:
            return result
    result["state"] = state.copy() if state.__class__ is dict else dict(state)
    return result


# -- ASGI ---------------------------------------------------------------------------------
# Per thread: the loop run_asgi runs on, and the WorkerState of the loop last used.
_LOCAL = threading.local()
# Embedded WSGI calls run in their caller's thread, with no loop: one state for them all.
_WSGI_STATE = WorkerState(None, None)


_from_scope = HTTPCycle.from_scope
_from_environ = WSGICycle.from_environ
_running_loop = asyncio.get_running_loop


def _loop_state(loop: asyncio.AbstractEventLoop) -> WorkerState:
    """The embedded calls' WorkerState of ``loop`` (one per thread, for its loop last used)."""
    global _LAST_STATE
    state = getattr(_LOCAL, "state", None)
    if state is None or state.loop is not loop:
        state = _LOCAL.state = WorkerState(None, loop)
    _LAST_STATE = state
    return state


_LAST_STATE = _WSGI_STATE  # the state last used, by any thread: checked first


def _exchange(scope: Scope, body: bytes) -> tuple[MemoryStream, HTTPCycle]:
    stream = MemoryStream()
    state = _LAST_STATE
    loop = _running_loop()
    if state.loop is not loop:
        state = _loop_state(loop)
    cycle = _from_scope(state, None, stream, scope, body, False)
    stream.handler = cycle
    return stream, cycle


def _outcome(stream: MemoryStream, cycle: HTTPCycle) -> tuple[
        int, list[tuple[bytes, bytes]], bytes]:
    stream.handler = None  # no reference cycle left: freed now, not by the collector
    error = cycle.app_error
    if error is not None:
        raise error
    response = stream.response
    return response.status, response.headers, response.body


async def default_asgi_handler(app: Any, scope: Scope, body: bytes = b"") -> tuple[
        int, list[tuple[bytes, bytes]], bytes]:
    """Run an ASGI app for one request, in the calling task, through the server's ASGI
    adapter (``HTTPCycle``) over an in-memory stream: the whole response, streamed or not,
    collected. The app's exception is raised here; so is a RuntimeError for an app that
    returns without completing its response."""
    stream, cycle = _exchange(scope, body if body.__class__ is bytes else bytes(body))
    await cycle.run_asgi(app)
    return _outcome(stream, cycle)


async def arun_asgi(app: Any, scope: Mapping[str, Any], body: bytes = b"", *,
                    runner: Any = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Async form of run_asgi, for callers already in an event loop."""
    target = app if app.__class__ is not str and callable(app) else _resolve_app(app)
    if body.__class__ is not bytes:
        if not isinstance(body, (bytearray, memoryview)):
            raise ValueError(f"body must be bytes, got {type(body).__name__}")
        body = bytes(body)
    request_scope = _request_scope(scope)
    if runner is not None:
        runner_obj = load_runner(runner)
        if hasattr(runner_obj, "run_asgi"):
            return await runner_obj.run_asgi(target, request_scope, body)
    # _exchange, default_asgi_handler and _outcome, inline: a coroutine and two calls less
    # (~1.5k instructions of ~38k a call, callgrind)
    stream = MemoryStream()
    state = _LAST_STATE
    loop = _running_loop()
    if state.loop is not loop:
        state = _loop_state(loop)
    cycle = _from_scope(state, None, stream, request_scope, body, False)
    stream.handler = cycle
    try:  # cycle.run_asgi's work, inline: one coroutine less a call
        result = await target(request_scope, cycle.receive, cycle.send)
    except BaseException as exc:
        cycle.app_raised(exc)
    else:
        if result is not None or not cycle.response_complete:
            cycle.app_returned(result)
    stream.handler = None  # (see _outcome)
    error = cycle.app_error
    if error is not None:
        raise error
    response = stream.response
    return response.status, response.headers, response.body


def _thread_loop() -> EagerLoop:
    loop = getattr(_LOCAL, "loop", None)
    if loop is None or loop.is_closed():
        loop = _LOCAL.loop = EagerLoop()
    return loop


def run_asgi(app: Any, scope: Mapping[str, Any], body: bytes = b"", *,
             runner: Any = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run one request through an ASGI app: ``(status, headers, body)``. On this thread's
    own loop, kept from call to call; the app's first step is taken at once (``eager.py``)."""
    try:  # (EagerLoop.run checks for a running loop: not checked twice)
        return _thread_loop().run(arun_asgi(app, scope, body, runner=runner))
    except LoopRunning:
        raise RuntimeError("run_asgi() called from a running event loop: "
                           "await arun_asgi()") from None


# -- WSGI ---------------------------------------------------------------------------------
_HOP_BY_HOP_TEXT = frozenset(name.decode("latin-1") for name in HOP_BY_HOP)
# Status code -> the WSGI status line of its standard phrase ("200 OK").
_STATUS_TEXT: dict[int, str] = {}


def _status_text(code: int, reason: str | None) -> str:
    if reason is not None:
        return f"{code} {reason}"
    text = _STATUS_TEXT.get(code)
    if text is None:  # (at most one per status code: bounded)
        text = _STATUS_TEXT[code] = f"{code} {phrase(code)}"
    return text


_ENVIRON_REQUIRED = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME",
                     "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme", "wsgi.input")
_ENVIRON_TEXT = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                 "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
                 "wsgi.url_scheme")


_ENVIRON_DEFAULTS: dict[str, Any] = {
    "QUERY_STRING": "", "CONTENT_TYPE": "", "CONTENT_LENGTH": "", "wsgi.version": (1, 0),
    "wsgi.errors": ERRORS, "wsgi.multithread": True, "wsgi.multiprocess": True,
    "wsgi.run_once": False, "wsgi.input_terminated": True, "wsgi.file_wrapper": FileWrapper,
}
_ENVIRON_REQUIRED_SET = frozenset(_ENVIRON_REQUIRED)
_ENVIRON_TEXT_SET = frozenset(_ENVIRON_TEXT)


# The key under which an environ made by build_environ with a bytes body carries what
# makes it a template (PEP 3333: a server's own keys are prefixed with its name). The
# environ stays a plain dict, as PEP 3333 asks; run_wsgi copies it without validating
# again and gives each call a fresh wsgi.input over the body, unless the caller replaced
# the stream (then that stream is the body).
TEMPLATE_KEY = "betula.template"


class _Template:
    __slots__ = ("body", "stream")

    def __init__(self, body: bytes, stream: Any) -> None:
        self.body = body
        self.stream = stream  # the wsgi.input build_environ made


def build_environ(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A complete, validated WSGI environ from the guide's Environ Fields. Given to
    ``run_wsgi`` again and again, it is a template: validated once, copied per call, with a
    fresh ``wsgi.input`` over its body each time."""
    return _build_environ(fields, True)


def _build_environ(fields: Mapping[str, Any], template: bool) -> dict[str, Any]:
    if fields.__class__ is not dict:
        if not isinstance(fields, Mapping):
            raise ValueError(f"environ must be a mapping, got {type(fields).__name__}")
        fields = dict(fields)
    if not fields.keys() >= _ENVIRON_REQUIRED_SET:
        for name in _ENVIRON_REQUIRED:
            if name not in fields:
                raise ValueError(f"environ field {name!r} is required")
    environ = _ENVIRON_DEFAULTS | fields
    for key, value in fields.items():  # (the defaults are valid: only the given are checked)
        if value.__class__ is not str:
            if key in _ENVIRON_TEXT_SET:
                environ[key] = _environ_text(key, value)
            elif value.__class__ is bytes and key.startswith("HTTP_"):
                environ[key] = value.decode("latin-1")
    body = environ["wsgi.input"]
    if isinstance(body, (bytes, bytearray, memoryview)):
        body = bytes(body)
        if body:
            environ["wsgi.input"] = io.BytesIO(body)
            if "CONTENT_LENGTH" not in fields:
                environ["CONTENT_LENGTH"] = str(len(body))
        else:
            environ["wsgi.input"] = EMPTY_INPUT  # shared: an empty stream has no state
        if template:
            environ[TEMPLATE_KEY] = _Template(body, environ["wsgi.input"])
        else:
            environ.pop(TEMPLATE_KEY, None)
    elif not hasattr(body, "read"):
        raise ValueError("environ field 'wsgi.input' must be bytes or a readable stream")
    return environ


def _request_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The environ of one call: a copy of a template from build_environ (its body read
    afresh), else ``environ`` built and validated."""
    template = environ.get(TEMPLATE_KEY) if environ.__class__ is dict else None
    if template is None:
        return _build_environ(environ, False)
    result = environ.copy()  # type: ignore[attr-defined]
    del result[TEMPLATE_KEY]
    if result["wsgi.input"] is template.stream:  # (not replaced by the caller)
        body = template.body
        result["wsgi.input"] = io.BytesIO(body) if body else EMPTY_INPUT
    return result


def _environ_text(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif name == "SERVER_PORT" and isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"environ field {name!r} must be a str, got {type(value).__name__}")
    return value


def default_wsgi_handler(app: Any, environ: dict[str, Any]) -> tuple[
        str, list[tuple[str, str]], bytes]:
    """Run a WSGI app for one request, in the calling thread, through the server's WSGI
    adapter (``WSGICycle``, its loop-side calls inline) over an in-memory stream: the
    whole response collected. The app's exception is raised here; so is a RuntimeError
    for an app that returns without calling start_response."""
    stream = MemoryStream()
    cycle = _from_environ(_WSGI_STATE, None, stream, environ, INLINE, False)
    stream.handler = cycle
    cycle.run_inline(app)
    stream.handler = None  # no reference cycle left: freed now, not by the collector
    error = cycle.app_error
    if error is not None:
        raise error
    response = stream.response
    if not response.complete or response.failed:  # pragma: no cover - errors raise above
        raise RuntimeError("the WSGI app's response did not complete")
    reason = response.reason
    status = _STATUS_TEXT.get(response.status) if reason is None else None
    if status is None:
        status = _status_text(response.status, reason)
    given = stream.app_headers
    if len(given) == len(response.headers) and given.__class__ is list:
        # None left out (no hop-by-hop field): the app's pairs as it gave them, their
        # types checked by the stream (checked_fields).
        return status, given.copy(), response.body
    return status, [(str(name), str(value)) for name, value in given
                    if name.lower() not in _HOP_BY_HOP_TEXT], response.body


def run_wsgi(app: Any, environ: Mapping[str, Any], *, runner: Any = None) -> tuple[
        str, list[tuple[str, str]], bytes]:
    """Run one request through a WSGI app: ``(status, headers, body)``."""
    target = app if app.__class__ is not str and callable(app) else _resolve_app(app)
    full = _request_environ(environ)
    if runner is not None:
        runner_obj = load_runner(runner)
        if hasattr(runner_obj, "run_wsgi"):
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
        self._loop: EagerLoop | None = None
        self._started = False

    def _get_loop(self) -> EagerLoop:
        if self._loop is None:
            self._loop = EagerLoop()
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
        self._get_loop().run(self.astart())

    async def arun_asgi(self, scope: Mapping[str, Any], body: bytes = b"") -> tuple[
            int, list[tuple[bytes, bytes]], bytes]:
        await self.astart()
        state = self._manager.state if self._manager is not None else None
        request_scope = _request_scope(scope, state)
        if body.__class__ is not bytes:
            body = bytes(body)
        if self.runner is not None and hasattr(self.runner, "run_asgi"):
            return await self.runner.run_asgi(self.app, request_scope, body)
        return await default_asgi_handler(self.app, request_scope, body)

    def run_asgi(self, scope: Mapping[str, Any], body: bytes = b"") -> tuple[
            int, list[tuple[bytes, bytes]], bytes]:
        return self._get_loop().run(self.arun_asgi(scope, body))

    def run_wsgi(self, environ: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        full = _request_environ(environ)
        if self.runner is not None and hasattr(self.runner, "run_wsgi"):
            return self.runner.run_wsgi(self.app, full)
        return default_wsgi_handler(self.app, full)

    async def aclose(self) -> None:
        if self._manager is not None:
            await self._manager.shutdown()
            self._manager = None

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run(self.aclose())
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Embedded:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- served traffic through a runner -------------------------------------------------------
async def read_body(receive: Any) -> bytes | None:
    """An ASGI request's whole body (None: the client left first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


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
        whole = await read_body(receive)
        if whole is None:
            return
        status, headers, body = await self.runner.run_asgi(self.app, scope, whole)
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
