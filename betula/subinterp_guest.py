"""The part of ``--worker-mode subinterpreter`` that runs inside each sub-interpreter
(``subinterp.py`` is the host's): it imports the app (WSGI, or ASGI with its lifespan
startup run here on the interpreter's own loop) and answers one request a call.

Loaded by path, not as ``betula.subinterp_guest``, so that the guest imports nothing of the
server (its C extension is single-phase and cannot load in an isolated interpreter): only
the standard library and the app. What crosses between the interpreters is plain shareable
data (str, bytes, int, None and tuples of them): a WSGI request is ``(environ items,
body)``, an ASGI one ``(scope items, header pairs, body)``; an answer is ``(status, header
pairs, body)``, or ``(None, error text, traceback)`` when the app raised.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import sys
import traceback
from typing import Any

import _interpqueues  # (CPython 3.13: the interpreters' own queues)

_APP: Any = None
FILE_WRAPPER_CHUNK = 8192
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_LOOP: asyncio.AbstractEventLoop | None = None  # an ASGI app's loop (it runs per request)
_STATE: dict[str, Any] = {}  # the lifespan state, copied into each request's scope
_LIFESPAN: Any = None  # the app's lifespan task, waiting for a shutdown that never comes


class FileWrapper:
    """``wsgi.file_wrapper``: the file is read here and answered as the body."""

    def __init__(self, filelike: Any, blksize: int = FILE_WRAPPER_CHUNK) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Any:
        while True:
            data = self.filelike.read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def load(spec: str, app_dir: str, path: tuple[str, ...]) -> None:
    """Import ``module:attr`` with the host's sys.path (``app_dir`` first)."""
    global _APP
    sys.path[:] = [app_dir, *path]
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if "subinterpreter" not in str(exc):
            raise
        # An extension that cannot load in an isolated interpreter (single-phase init,
        # PyO3...): CPython's message names it; else the ImportError's name does.
        text = str(exc)
        if exc.name and exc.name not in text:
            text = f"{exc.name}: {text}"
        raise ImportError(f"cannot load in a sub-interpreter: {text}") from None
    app = module
    for part in (attr or "application").split("."):
        app = getattr(app, part)
    _APP = app


def load_asgi(spec: str, app_dir: str, path: tuple[str, ...], lifespan: str) -> None:
    """Import an ASGI app and run its lifespan startup here ('auto': an app without
    lifespan support is served anyway; 'on': it must answer; 'off': skipped)."""
    global _LOOP
    load(spec, app_dir, path)
    _LOOP = asyncio.new_event_loop()
    if lifespan != "off":
        _LOOP.run_until_complete(_startup(lifespan == "on"))


async def _startup(required: bool) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not answer.done():
            answer.set_result(message)

    async def run() -> None:
        try:
            await _APP({"type": "lifespan", "asgi": _ASGI, "state": _STATE}, inbox.get, send)
        except BaseException as exc:  # noqa: BLE001 - 'auto': no lifespan support
            if not answer.done():
                answer.set_exception(exc)
    inbox.put_nowait({"type": "lifespan.startup"})
    global _LIFESPAN
    _LIFESPAN = asyncio.get_running_loop().create_task(run())  # (kept: a loop holds tasks
    try:                                                         # weakly)
        message = await answer
    except BaseException:
        if required:
            raise
        return
    if message["type"] == "lifespan.startup.failed":
        raise RuntimeError(f"lifespan startup failed: {message.get('message', '')}")


def serve_asgi(reply: int, request: tuple[Any, ...]) -> None:
    """Run the ASGI app for one request (scope items, headers, body); the answer (status,
    header pairs, body) goes to the ``reply`` queue."""
    try:
        assert _LOOP is not None
        answer = _LOOP.run_until_complete(_exchange(*request))
    except BaseException as exc:  # noqa: BLE001 - the host reports it as the app's error
        answer = (None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    _interpqueues.put(reply, answer, 0, 1)


async def _exchange(items: tuple[tuple[str, Any], ...], headers: tuple[tuple[bytes, bytes], ...],
                    body: bytes) -> tuple[Any, ...]:
    scope = dict(items)
    scope["asgi"] = dict(_ASGI)
    scope["headers"] = list(headers)
    scope["extensions"] = {}
    scope["state"] = dict(_STATE)
    given = [False]
    start: list[Any] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not given[0]:
            given[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}  # (the whole request was read before the call)

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if start:
                raise RuntimeError("http.response.start sent twice")
            start[:] = [int(message["status"]),
                        tuple((bytes(n), bytes(v)) for n, v in message.get("headers", ()))]
        elif kind == "http.response.body":
            if not start:
                raise RuntimeError("http.response.body sent before http.response.start")
            chunks.append(bytes(message.get("body", b"")))

    await _APP(scope, receive, send)
    if not start:
        raise RuntimeError("ASGI callable returned without starting a response")
    return start[0], start[1], b"".join(chunks)


def serve(reply: int, request: tuple[tuple[tuple[str, Any], ...], bytes]) -> None:
    """Run the app for one request; the answer goes to the ``reply`` queue."""
    items, body = request
    environ = dict(items)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.errors"] = sys.stderr
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.multithread"] = False  # one request at a time in this interpreter
    environ["wsgi.multiprocess"] = True
    environ["wsgi.run_once"] = False
    environ["wsgi.file_wrapper"] = FileWrapper
    environ["wsgi.input_terminated"] = True
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Any:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    chunks: list[bytes] = []
    try:
        result = _APP(environ, start_response)
        try:
            for chunk in result:
                if chunk:
                    chunks.append(bytes(chunk))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
        status, headers = started
        answer: tuple[Any, ...] = (str(status), tuple((str(n), str(v)) for n, v in headers),
                                   b"".join(chunks))
    except BaseException as exc:  # noqa: BLE001 - the host reports it as the app's error
        answer = (None, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    _interpqueues.put(reply, answer, 0, 1)


def run(requests: int, reply: int, wake: int, done: int, kind: str) -> None:
    """The interpreter's loop, in the host thread that stays inside it: a byte on ``wake``
    says a request waits in ``requests`` (None: stop); its answer goes to ``reply`` and a
    byte to ``done``."""
    serve_one = serve if kind == "wsgi" else serve_asgi
    while True:
        os.read(wake, 1)
        request = _interpqueues.get(requests)[0]
        if request is None:
            return
        serve_one(reply, request)
        os.write(done, b"\0")
