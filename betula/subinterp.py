"""``--worker-mode subinterpreter``: the host interpreter does the I/O (event loop, parsing,
framing: the worker as in process mode), and the app runs in ``--workers N``
sub-interpreters of the same process, each with its own GIL (CPython 3.13: PEP 684), so N
requests run their Python in parallel. ``InterpreterApp`` serves a WSGI app,
``InterpreterASGIApp`` an ASGI one (below).

``InterpreterApp`` is the WSGI callable the host's WSGI adapter calls in its thread pool:
it takes a free interpreter (waiting while all N are busy), hands it the request as plain
shareable data (the environ's str/bytes/int items and the body), and gives the adapter the
answer the guest (``subinterp_guest.py``) put in the interpreter's queue: status, header
pairs, body. The host's adapter does everything else as for any WSGI app (validation,
framing, the 500 and its logged traceback when the app raised).

What does not cross: ``wsgi.input`` is read whole before the call and a response is
collected whole (a streamed response reaches the client when it is complete); the environ
keeps only its plain values (``wsgi.early_hints`` stays in the host). A module that cannot
load in an isolated interpreter (a single-phase C extension) is a startup error naming it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from .embed import read_body

logger = logging.getLogger("betula.error")

__all__ = ["InterpreterApp", "InterpreterASGIApp", "SubinterpreterError",
           "subinterpreter_problem"]

GUEST = Path(__file__).with_name("subinterp_guest.py")
_PLAIN = (str, bytes, int, float, bool, type(None))
_BOOT = """\
import importlib.util as _util
_spec = _util.spec_from_file_location("_betula_guest", guest)
_betula_guest = _util.module_from_spec(_spec)
_spec.loader.exec_module(_betula_guest)
"""
_LOAD = {"wsgi": "_betula_guest.load(spec, app_dir, path)",
         "asgi": "_betula_guest.load_asgi(spec, app_dir, path, lifespan)"}
_RUN = "_betula_guest.run(requests, reply, wake, done, kind)"
# The ASGI scope's keys that cross (plain values; headers, state and extensions are rebuilt).
_SCOPE_KEYS = ("type", "http_version", "method", "scheme", "path", "raw_path", "query_string",
               "root_path", "client", "server")


class SubinterpreterError(Exception):
    """The app cannot run in a sub-interpreter (one line, said at startup)."""


def subinterpreter_problem() -> str | None:
    """Why this interpreter cannot run the sub-interpreter mode, or None."""
    try:
        import _interpqueues  # noqa: F401
        import _interpreters  # noqa: F401
    except ImportError:
        version = ".".join(map(str, sys.version_info[:2]))
        return (f"--worker-mode subinterpreter needs CPython 3.13 or newer (sub-interpreters "
                f"with their own GIL and their queues); this is {version}: use "
                "--worker-mode process")
    return None


class _Interpreter:
    """One sub-interpreter, served by a thread of its own that stays inside it (its guest
    loop): a call hands it a request through ``requests`` and a byte on the ``wake`` pipe,
    and waits on the ``done`` pipe for the answer in ``reply``. (An exec per request would
    cost a new thread state each time: about 35 us a call on 3.13, measured.)"""

    __slots__ = ("id", "requests", "reply", "wake_r", "wake_w", "done_r", "done_w", "thread")

    def __init__(self, interp_id: int, requests: int, reply: int) -> None:
        self.id = interp_id
        self.requests = requests
        self.reply = reply  # the queue its answers come back on
        self.wake_r, self.wake_w = os.pipe()
        self.done_r, self.done_w = os.pipe()
        self.thread: threading.Thread | None = None

    def close_pipes(self) -> None:
        for fd in (self.wake_r, self.wake_w, self.done_r, self.done_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _describe(error: Any) -> str:
    """One line for a guest's exception snapshot."""
    return getattr(error, "formatted", None) or str(error)


class _Pool:
    """``count`` isolated sub-interpreters, each running ``spec``: one request at a time
    each, taken by whichever caller finds it free."""

    def __init__(self, spec: str, app_dir: str, count: int, kind: str, lifespan: str) -> None:
        import _interpqueues
        import _interpreters

        self._interpreters = _interpreters
        self._queues = _interpqueues
        self.spec = spec
        self._free: queue.SimpleQueue[_Interpreter] = queue.SimpleQueue()
        self._all: list[_Interpreter] = []
        path = tuple(p for p in sys.path if isinstance(p, str))
        try:
            for _ in range(count):
                interp = _Interpreter(_interpreters.create(_interpreters.new_config("isolated")),
                                      _interpqueues.create(0, 0, 1),
                                      _interpqueues.create(0, 0, 1))
                self._all.append(interp)
                error = _interpreters.exec(interp.id, _BOOT + _LOAD[kind], shared={
                    "guest": str(GUEST), "spec": spec, "app_dir": app_dir, "path": path,
                    "lifespan": lifespan})
                if error is not None:
                    raise SubinterpreterError(self._load_error(error))
                interp.thread = threading.Thread(target=self._guest_loop, args=(interp, kind),
                                                 name="betula-subinterpreter", daemon=True)
                interp.thread.start()
                self._free.put(interp)
        except BaseException:
            self.close()
            raise

    def _guest_loop(self, interp: _Interpreter, kind: str) -> None:
        """The interpreter's own thread: inside it until close() (or the guest ends)."""
        try:
            error = self._interpreters.exec(interp.id, _RUN, shared={
                "requests": interp.requests, "reply": interp.reply, "wake": interp.wake_r,
                "done": interp.done_w, "kind": kind})
            if error is not None:
                logger.error("sub-interpreter %d ended: %s", interp.id, _describe(error))
        finally:
            os.close(interp.done_w)  # a caller still waiting reads the end
            interp.done_w = -1

    def call(self, request: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        """One request through a free interpreter (waiting while all are busy): the
        answer, or RuntimeError with the guest's traceback when the app raised."""
        interp = self._free.get()
        try:
            self._queues.put(interp.requests, request, 0, 1)
            os.write(interp.wake_w, b"\0")
            if not os.read(interp.done_r, 1):
                raise RuntimeError("the sub-interpreter's loop has ended")
            answer = self._queues.get(interp.reply)[0]
        finally:
            self._free.put(interp)
        if answer[0] is None:  # the app raised: its error, with the guest's traceback
            raise RuntimeError(f"{answer[1]} (in a sub-interpreter)\n{answer[2]}")
        return answer

    def _load_error(self, error: Any) -> str:
        text = _describe(error)
        if "cannot load in a sub-interpreter" in text:
            reason = text.splitlines()[-1].split("cannot load in a sub-interpreter: ")[-1]
            return (f"{self.spec} cannot run in a sub-interpreter: {reason} (a C extension "
                    "that does not support sub-interpreters); use --worker-mode process")
        return f"cannot import {self.spec} in a sub-interpreter: {text}"

    def close(self) -> None:
        for interp in self._all:
            if interp.thread is not None:
                try:
                    self._queues.put(interp.requests, None, 0, 1)  # the guest loop's end
                    os.write(interp.wake_w, b"\0")
                except Exception:  # noqa: BLE001 - already gone
                    pass
                interp.thread.join(5.0)
            for handle, destroy in ((interp.id, self._interpreters.destroy),
                                    (interp.requests, self._queues.destroy),
                                    (interp.reply, self._queues.destroy)):
                try:
                    destroy(handle)
                except Exception:  # noqa: BLE001 - still running (a thread left in the app)
                    pass
            interp.close_pipes()
        self._all = []


class InterpreterApp:
    """A WSGI app that runs ``spec`` in ``count`` isolated sub-interpreters (the host's
    WSGI adapter calls it in its thread pool)."""

    def __init__(self, spec: str, app_dir: str, count: int) -> None:
        self.pool = _Pool(spec, app_dir, count, "wsgi", "off")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        items = tuple((key, value) for key, value in environ.items()
                      if value.__class__ in _PLAIN and not key.startswith("wsgi."))
        items += (("wsgi.url_scheme", environ["wsgi.url_scheme"]),)
        status, headers, content = self.pool.call((items, environ["wsgi.input"].read()))
        start_response(status, list(headers))
        return [content]

    def close(self) -> None:
        self.pool.close()


class InterpreterASGIApp:
    """An ASGI app that runs ``spec`` in ``count`` isolated sub-interpreters: the host's
    ASGI adapter awaits it; the body is read whole, the interpreter runs in a thread of the
    loop's executor, and the answer is sent. The app's lifespan runs in each interpreter at
    startup (``lifespan`` as --lifespan); WebSocket requests are refused (403)."""

    def __init__(self, spec: str, app_dir: str, count: int, lifespan: str) -> None:
        self.pool = _Pool(spec, app_dir, count, "asgi", lifespan)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":  # (run in each interpreter already)
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = await read_body(receive)
        if body is None:
            return
        items = tuple((key, scope[key]) for key in _SCOPE_KEYS if key in scope)
        headers = tuple((bytes(n), bytes(v)) for n, v in scope["headers"])
        request = (items, headers, body)
        loop = asyncio.get_running_loop()
        status, fields, content = await loop.run_in_executor(None, self.pool.call, request)
        await send({"type": "http.response.start", "status": status, "headers": list(fields)})
        await send({"type": "http.response.body", "body": content})

    def close(self) -> None:
        self.pool.close()
