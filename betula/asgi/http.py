"""ASGI 3 ``http`` interface (spec 2.4): one ``HTTPCycle`` per request.

The cycle builds the scope from a per-connection template, runs the app in a task, turns
``receive``/``send`` into calls on its stream (``protocols/stream.py``: the protocol owns
every byte of framing), and enforces the message order the spec asks.

Hot-path notes (measured with bench/micro.py and bench/run.py):
- attributes that rarely change are class-level defaults, so ``__init__`` sets only what
  differs per request;
- the stream holds the response head for the first body message, so head and body leave
  in one write;
- a task per request: on this machine an eager, task-less first step measured slower (and
  would break ``asyncio.current_task()`` for anyio-based frameworks).
"""

from __future__ import annotations

import asyncio
import logging
import os
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ..cache import BoundedCache
from ..http_common import (
    METHODS,
    TARGET_CACHE_MAX,
    method_name,
    remember_target,
    split_target,
)
from ..proxy import apply_to_scope

if TYPE_CHECKING:  # pragma: no cover
    from ..endpoint import Endpoint
    from ..protocols.stream import Stream
    from ..worker_state import WorkerState

__all__ = ["HTTPCycle", "ClientDisconnected", "ASGI_EXTENSIONS"]

logger = logging.getLogger("betula.error")

ASGI_EXTENSIONS: dict[str, dict[str, Any]] = {
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
    "http.response.trailers": {},
}

_ASGI = {"version": "3.0", "spec_version": "2.4"}
# Request body buffered for the app before reading from the socket pauses.
BODY_HIGH_WATER = 256 * 1024


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI spec 2.4: a subclass of OSError)."""


def _decode_path(raw_path: bytes) -> str:
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")


# Request target -> (path, raw_path, query_string), before any --root-path prefix.
_TARGETS: BoundedCache[bytes, tuple[str, bytes, bytes]] = BoundedCache(TARGET_CACHE_MAX)


def _parse_target(url: bytes) -> tuple[str, bytes, bytes]:
    if url in _TARGETS.previous:
        return _TARGETS.recall(url)  # type: ignore[return-value]
    raw_path, query = split_target(url)
    # find(), not "in": on 3.11 `bytes in bytes` first tries the needle as an int and
    # raises and clears a TypeError (~2k instructions a request, callgrind).
    if raw_path.find(b"%") >= 0 or not raw_path.isascii():
        path = _decode_path(raw_path)
    else:
        path = raw_path.decode("ascii")
    return remember_target(_TARGETS, url, (path, raw_path, query))


def target_parts(url: bytes, endpoint: Endpoint) -> tuple[str, bytes, bytes]:
    """The scope's ``path`` (decoded), ``raw_path`` and ``query_string`` of a request
    target, with the ``--root-path`` prefix a proxy stripped put back."""
    parts = _TARGETS.entries.get(url) or _parse_target(url)
    prefix = endpoint.path_prefix
    if prefix:
        path, raw_path, query = parts
        return prefix + path, prefix.encode("utf-8") + raw_path, query
    return parts


def connection_scope(conn: Stream, endpoint: Endpoint) -> dict[str, Any]:
    """The part of the scope shared by every request to one app on one connection."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "scheme": conn.scheme,
        "server": conn.sockname,
        "client": conn.client,
        "root_path": endpoint.root_path,
        "extensions": ASGI_EXTENSIONS,
    }


class ScopeTemplate:
    """What the adapter keeps on a stream (``iface_cache``): the scope's part shared by
    every request to one app on one connection."""

    __slots__ = ("endpoint", "scope")

    def __init__(self, endpoint: Endpoint, scope: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.scope = scope


class HTTPCycle:
    """One request/response exchange between an HTTP/1 connection and an ASGI app."""

    # Per-request state that starts the same for every request (class-level defaults).
    # What the connection reads of its request: http_version, is_head, te_trailers,
    # keep_alive (written by the connection alone).
    http_version = "1.1"
    is_head = False
    started = False
    response_started = False
    response_complete = False
    disconnected = False
    task: asyncio.Task[None] | None = None
    _chunks: list[bytes] | None = None
    _buffered = 0
    _final_delivered = False
    _waiter: asyncio.Future[None] | None = None
    _trailers_wanted = False
    _sent_continue = False
    _discarding = False
    _status = 0
    _start_time = 0.0
    _shutdown = False
    _body_done = False
    log_errors = True  # False (embedded): an app's error is kept in app_error, not logged
    app_error: BaseException | None = None  # the app's error, when not logged
    keep_alive = True
    expect_continue = False
    te_trailers = False

    def __init__(
        self,
        state: WorkerState,
        endpoint: Endpoint,
        conn: Stream,
        method: bytes,
        url: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        http_version: str,
        keep_alive: bool,
        has_body: bool,
        expect_continue: bool,
        te_trailers: bool,
    ) -> None:
        self.conn = conn
        self.state = state
        self.endpoint = endpoint
        template = conn.iface_cache
        if template is None or template.endpoint is not endpoint:
            template = conn.iface_cache = ScopeTemplate(endpoint, connection_scope(conn, endpoint))
        scope = template.scope.copy()
        parts = _TARGETS.entries.get(url)  # target_parts' cache hit, inline (no call per request)
        if parts is None or endpoint.path_prefix:
            parts = target_parts(url, endpoint)
        path, raw_path, query = parts
        name = METHODS.entries.get(method) or method_name(method)
        scope["method"] = name
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = list(headers)  # the app's own copy (the connection's is shared)
        # Middleware may add to extensions: each request gets its own dict.
        scope["extensions"] = ASGI_EXTENSIONS.copy()
        if http_version != "1.1":
            scope["http_version"] = http_version
            self.http_version = http_version
        lifespan = endpoint.lifespan_state
        if lifespan is not None:
            scope["state"] = lifespan.copy()
        if conn.proxy is not None:  # a trusted proxy: the client, scheme, host it says
            apply_to_scope(scope, conn.proxy)
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.te_trailers = te_trailers
        self.body_complete = not has_body
        self.is_head = name == "HEAD"
        if state.timed:  # an access log or metrics
            self._start_time = perf_counter()
        # What a request reads before it writes (see from_scope).
        self._chunks = None
        self._final_delivered = False
        self.response_started = False
        self.disconnected = False
        self._body_done = False
        self._waiter = None

    @classmethod
    def from_scope(cls, state: WorkerState, endpoint: Endpoint | None, conn: Stream,
                   scope: dict[str, Any], body: bytes | None = None,
                   log_errors: bool = True, expect_continue: bool = False,
                   te_trailers: bool = False) -> HTTPCycle:
        """A cycle for a complete scope built elsewhere (the embedding API's
        ``build_scope``), not from a request head; the scope is the app's as given.
        ``body``: the whole request body, already there (None: it comes with
        ``feed_body``/``end_body``). ``endpoint`` None: the caller runs the app itself,
        ``await cycle.run_asgi(app)`` in its own task, instead of ``start()``.
        ``log_errors`` False: the app's error is only kept in ``app_error`` (the
        embedding API raises it to its caller)."""
        # The attributes in __init__'s order (instances share their attribute keys).
        cycle = cls.__new__(cls)
        cycle.conn = conn
        cycle.state = state
        cycle.endpoint = endpoint  # type: ignore[assignment]
        version = scope.get("http_version", "1.1")
        if version != "1.1":
            cycle.http_version = version
        cycle.scope = scope
        if expect_continue:
            cycle.expect_continue = True
        if te_trailers:
            cycle.te_trailers = True
        cycle.body_complete = body is not None
        cycle.is_head = scope.get("method") == "HEAD"
        if state.timed:
            cycle._start_time = perf_counter()
        # What the exchange reads before it writes, as the instance's own: on 3.11 a
        # class-level default read through an instance is not specialised (~270
        # instructions a read, ~55 for the instance's own; a store ~80: callgrind).
        cycle._chunks = [body] if body else None
        cycle._final_delivered = False
        cycle.response_started = False
        cycle.disconnected = False
        cycle._body_done = False
        cycle._waiter = None
        cycle.app_error = None
        if not log_errors:
            cycle.log_errors = False
        return cycle

    # -- events from the connection ------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        metrics = self.state.metrics
        if metrics is not None:
            metrics.bytes_in += len(data)
        if self._discarding or self.disconnected:
            return
        chunks = self._chunks
        if chunks is None:
            self._chunks = [data]
        else:
            chunks.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH_WATER:
            self.conn.pause_reading()
        if self._waiter is not None:
            self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        if self._discarding:
            self.conn.body_finished(self)
        elif self._waiter is not None:
            self._wake()

    def connection_lost(self) -> None:
        self.disconnected = True
        self._wake()

    def server_shutdown(self) -> None:
        """Graceful stop: a long-lived response (SSE) or a request waiting on receive() for
        the disconnect is told the client is gone; a request still computing may finish."""
        self._shutdown = True
        if self.response_started or self._waiter is not None:
            self._end_stream_for_shutdown()

    def _end_stream_for_shutdown(self) -> None:
        if self.response_started and not self.response_complete:
            self.conn.end_for_shutdown()
        self.disconnected = True
        self._wake()

    def discard_body(self) -> None:
        self._discarding = True
        self._chunks = None
        self._buffered = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- running the app -----------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        state = self.state
        # Tracked in a set from here to the end of run_asgi, not by a done-callback (which
        # would cost a loop callback per request).
        state.active.add(self)
        state.requests += 1
        self.task = state.new_task(self.run_asgi(self.endpoint.app))

    async def run_asgi(self, app: Any) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.state.active.discard(self)
            self.app_raised(exc)
            return
        self.state.active.discard(self)
        if result is not None or not self.response_complete:
            self.app_returned(result)

    # What follows the app's call, for whoever awaits the app (run_asgi above, or the
    # embedding API in its caller's task: one coroutine less a call).
    def app_returned(self, result: Any) -> None:
        """The app returned ``result``: whatever the response still lacks is settled."""
        if self.response_complete:
            if result is not None:
                logger.error("ASGI callable returned a non-None value: %r", result)
            return
        if not self.response_started:
            if self.disconnected:
                self._abandon()
            else:
                self._misbehaved("ASGI callable returned without starting a response")
                self._send_500()
        else:
            if not self.disconnected:
                self._misbehaved("ASGI callable returned without completing the response")
            self._cut_short()

    def app_raised(self, exc: BaseException) -> None:
        """The app raised ``exc``: reported, and the response ended; KeyboardInterrupt and
        SystemExit go on up."""
        self._app_failed(exc)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc

    def _misbehaved(self, what: str) -> None:
        if self.log_errors:
            logger.error(what)
        else:
            self.app_error = RuntimeError(what)

    def _abandon(self) -> None:
        """The client is gone (or the server is stopping) and the app has finished."""
        self.response_complete = True
        self.conn.cut_short()

    def _cut_short(self) -> None:
        """The response started but cannot be completed: end the connection."""
        self.response_complete = True
        self.conn.cut_short()
        self.conn.cycle_done(self)

    def _app_failed(self, exc: BaseException) -> None:
        if self.disconnected and caused_by_disconnect(exc):
            # The app stopped because the client left (frameworks re-raise our error as
            # their own, e.g. Starlette's ClientDisconnect): nothing to report.
            logger.debug("request ended by client disconnect: %r", exc)
            self._abandon()
            return
        if not self.log_errors:
            self.app_error = exc  # (kept only here: a traceback holds the request's frames)
        elif isinstance(exc, asyncio.CancelledError):
            logger.warning("request cancelled: %s %s", self.scope["method"], self.scope["path"])
        else:
            logger.error("Exception in ASGI application", exc_info=exc)
        if not self.response_started:
            self._send_500()
        elif not self.response_complete:
            self._cut_short()

    def _send_500(self) -> None:
        self.response_started = True
        self.response_complete = True
        self._status = 500
        if self.state.timed and not self.disconnected:
            self._observed(500, 0, None)
        self.conn.fail_response(500)
        self._wake()

    # -- receive -------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = None
                self._buffered = 0
                self.conn.resume_reading()
                more = not self.body_complete
                if not more:
                    self._final_delivered = True
                return {"type": "http.request", "body": data, "more_body": more}
            if self.body_complete and not self._final_delivered:
                self._final_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self._shutdown and self.body_complete:
                self._end_stream_for_shutdown()
                return {"type": "http.disconnect"}
            if self.expect_continue and not self._sent_continue and not self.response_started:
                self._sent_continue = True
                self.conn.send_informational(100, ())
            waiter = self.state.loop.create_future()
            self._waiter = waiter
            await waiter

    # -- send ----------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._body_done:
                raise RuntimeError("http.response.body sent after the response completed")
            conn = self.conn
            if message.get("more_body", False):
                conn.send_data(message.get("body", b""), False)
            else:
                conn.send_data(message.get("body", b""), True)
                self._body_done = True
                if conn.trailers_pending:
                    self._trailers_wanted = True  # completed by the last trailers message
                else:  # _complete(), inline (once a request)
                    self._trailers_wanted = False
                    self.response_complete = True
                    if self.state.timed:  # an access log or metrics
                        self._observed(self._status, conn.response_bytes,
                                       conn.response_headers)
                    if self._waiter is not None:
                        self._wake()
                    conn.cycle_done(self)
            if conn.write_paused:
                await conn.drain()
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
        elif kind == "http.response.start":
            status = message["status"]
            if status.__class__ is not int or not 200 <= status <= 999 \
                    or self.response_started or self.disconnected or message.get("trailers"):
                self._start_response(message)  # the checks, 1xx, trailers
                return
            # The usual start, inline (no call for it).
            self.conn.start_response(status, message.get("headers", ()))
            self.response_started = True
            self._status = status
        else:
            await self._send_other(kind, message)

    def _start_response(self, message: dict[str, Any]) -> None:
        if self.response_started:
            raise RuntimeError("http.response.start sent twice")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        status = message["status"]
        if status.__class__ is not int or not 100 <= status <= 999:
            raise RuntimeError(f"invalid status {status!r}")
        if status < 200:
            if status == 101:
                raise RuntimeError("status 101 needs a protocol upgrade (use websocket)")
            # Informational response (103 Early Hints and friends): goes out now; the final
            # http.response.start follows.
            self.conn.send_informational(status, message.get("headers", ()))
            return
        trailers = bool(message.get("trailers", False))
        self.conn.start_response(status, message.get("headers", ()), trailers)
        self.response_started = True
        self._status = status
        self._trailers_wanted = trailers

    def _complete(self) -> None:
        self.response_complete = True
        if self.state.timed:
            conn = self.conn
            self._observed(self._status, conn.response_bytes, conn.response_headers)
        if self._waiter is not None:
            self._wake()
        self.conn.cycle_done(self)

    def _observed(self, status: int, size: int, headers: Any) -> None:
        """The response is over: its access-log line and its metrics."""
        state = self.state
        access = state.access_log
        if access is not None:
            access.log(self.scope, status, size, self._start_time, headers)
        metrics = state.metrics
        if metrics is not None:
            # (a HEAD response's body, counted by the stream against its length, is not sent)
            metrics.response(self.scope["method"], status, 0 if self.is_head else size,
                             self._start_time)

    async def _send_other(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "http.response.trailers":
            if not self._trailers_wanted:
                raise RuntimeError("http.response.trailers without trailers=True in start")
            if not self._body_done or self.response_complete:
                raise RuntimeError("http.response.trailers sent before the body completed")
            more = message.get("more_trailers", False)
            self.conn.send_trailers(message.get("headers", ()), not more)
            if not more:
                self._trailers_wanted = False
                self._complete()
            return
        if kind == "http.response.early_hint":
            if self.response_started:
                raise RuntimeError("http.response.early_hint sent after http.response.start")
            links = message.get("links", ())
            if links and not self.disconnected:
                self.conn.send_informational(103, [(b"link", _bytes(link)) for link in links])
            return
        if kind == "http.response.pathsend":
            if not self.response_started or self._body_done:
                raise RuntimeError("http.response.pathsend needs a started, open response")
            with open(message["path"], "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                await self._send_file(fh.fileno(), 0, size, more=False)
            return
        if kind == "http.response.zerocopysend":
            if not self.response_started or self._body_done:
                raise RuntimeError("http.response.zerocopysend needs a started, open response")
            fd = message["file"].fileno()
            offset = message.get("offset")
            if offset is None:
                offset = os.lseek(fd, 0, os.SEEK_CUR)
            count = message.get("count")
            if count is None:
                count = os.fstat(fd).st_size - offset
            await self._send_file(fd, offset, count, more=message.get("more_body", False))
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} on an http connection")

    async def _send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        conn = self.conn
        sent = await conn.send_file(fd, offset, count, not more)
        if sent < count:
            if self.disconnected:
                raise ClientDisconnected("client disconnected during sendfile")
            raise RuntimeError("file shorter than the count to send")
        if not more:
            self._body_done = True
            self._trailers_wanted = conn.trailers_pending
            if not self._trailers_wanted:
                self._complete()


def caused_by_disconnect(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        # Frameworks re-raise a disconnect as their own: Starlette's ClientDisconnect
        # (HTTP) and WebSocketDisconnect.
        if isinstance(exc, ClientDisconnected) or \
                type(exc).__name__ in ("ClientDisconnect", "WebSocketDisconnect"):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")
