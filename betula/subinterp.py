"""``--worker-mode subinterpreter``: the host interpreter does the I/O (event loop, parsing,
framing: the worker as in process mode), and a WSGI app runs in ``--workers N``
sub-interpreters of the same process, each with its own GIL (CPython 3.13: PEP 684), so N
requests run their Python in parallel.

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

import queue
import sys
from pathlib import Path
from typing import Any

__all__ = ["InterpreterApp", "SubinterpreterError", "subinterpreter_problem"]

GUEST = Path(__file__).with_name("subinterp_guest.py")
_PLAIN = (str, bytes, int, float, bool, type(None))
_BOOT = """\
import importlib.util as _util
_spec = _util.spec_from_file_location("_betula_guest", guest)
_betula_guest = _util.module_from_spec(_spec)
_spec.loader.exec_module(_betula_guest)
_betula_guest.load(spec, app_dir, path)
"""
_SERVE = "_betula_guest.serve(reply, request)"


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
    __slots__ = ("id", "reply")

    def __init__(self, interp_id: int, reply: int) -> None:
        self.id = interp_id
        self.reply = reply  # the queue its answers come back on


def _describe(error: Any) -> str:
    """One line for a guest's exception snapshot."""
    return getattr(error, "formatted", None) or str(error)


class InterpreterApp:
    """A WSGI app that runs ``spec`` in ``count`` isolated sub-interpreters."""

    def __init__(self, spec: str, app_dir: str, count: int) -> None:
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
                                      _interpqueues.create(0, 0, 1))
                self._all.append(interp)
                error = _interpreters.exec(interp.id, _BOOT, shared={
                    "guest": str(GUEST), "spec": spec, "app_dir": app_dir, "path": path})
                if error is not None:
                    raise SubinterpreterError(self._load_error(error))
                self._free.put(interp)
        except BaseException:
            self.close()
            raise

    def _load_error(self, error: Any) -> str:
        text = _describe(error)
        if "does not support loading in subinterpreters" in text:
            return (f"{self.spec} cannot run in a sub-interpreter: {text} (a C extension "
                    "without multi-phase init); use --worker-mode process")
        return f"cannot import {self.spec} in a sub-interpreter: {text}"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        items = tuple((key, value) for key, value in environ.items()
                      if value.__class__ in _PLAIN and not key.startswith("wsgi."))
        items += (("wsgi.url_scheme", environ["wsgi.url_scheme"]),)
        body = environ["wsgi.input"].read()
        interp = self._free.get()  # (waits while every interpreter is busy)
        try:
            error = self._interpreters.exec(interp.id, _SERVE, shared={
                "reply": interp.reply, "request": (items, body)})
            if error is not None:  # the guest itself failed (not the app: that is answered)
                raise RuntimeError(f"sub-interpreter failed: {_describe(error)}")
            answer = self._queues.get(interp.reply)[0]
        finally:
            self._free.put(interp)
        status, headers, content = answer
        if status is None:  # the app raised: its error, with the guest's traceback
            raise RuntimeError(f"{headers} (in a sub-interpreter)\n{content}")
        start_response(status, list(headers))
        return [content]

    def close(self) -> None:
        for interp in self._all:
            try:
                self._interpreters.destroy(interp.id)
            except Exception:  # noqa: BLE001 - still running (a thread left in the app)
                pass
            try:
                self._queues.destroy(interp.reply)
            except Exception:  # noqa: BLE001
                pass
        self._all = []
