"""The part of ``--worker-mode subinterpreter`` that runs inside each sub-interpreter
(``subinterp.py`` is the host's): it imports the WSGI app and answers one request a call.

Loaded by path, not as ``betula.subinterp_guest``, so that the guest imports nothing of the
server (its C extension is single-phase and cannot load in an isolated interpreter): only
the standard library and the app. What crosses between the interpreters is plain shareable
data (str, bytes, int, None and tuples of them): a request is ``(environ items, body)``,
an answer is ``(status, header pairs, body)``, or ``(None, error text, traceback)`` when
the app raised.
"""

from __future__ import annotations

import importlib
import io
import sys
import traceback
from typing import Any

import _interpqueues  # (CPython 3.13: the interpreters' own queues)

_APP: Any = None
FILE_WRAPPER_CHUNK = 8192


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
    module = importlib.import_module(module_name)
    app = module
    for part in (attr or "application").split("."):
        app = getattr(app, part)
    _APP = app


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
