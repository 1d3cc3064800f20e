"""ASGI 3 ``http`` interface (spec 2.4): one ``HTTPCycle`` per request.

The cycle builds the scope from a per-connection template, runs the app in a task, turns
``receive``/``send`` into protocol calls, and enforces the message order the spec asks.

Hot-path notes (measured with bench/micro.py and bench/run.py):
- attributes that rarely change are class-level defaults, so ``__init__`` sets only what
  differs per request;
- the response head waits for the first body message so head and body leave in one write;
  if the app suspends in between, the server flushes all waiting heads once per loop turn
  (one callback for the whole batch, not one per request);
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
    CLOSE,
    LAST_CHUNK,
    METHODS,
    STATUS_LINES,
    TARGET_CACHE_MAX,
    encode_headers,
    error_response,
    method_name,
    remember_target,
    split_target,
    status_line,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..protocols.http1 import HTTP1Connection
    from ..server import Endpoint, ServerState

__all__ = ["HTTPCycle", "ClientDisconnected", "ASGI_EXTENSIONS"]

logger = logging.getLogger("betula.error")

ASGI_EXTENSIONS: dict[str, dict[str, Any]] = {
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
    "http.response.trailers": {},
}

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_NO_BODY_STATUS = frozenset({204, 304})
# Head and body up to this size are joined into one buffer; larger bodies go out with
# writelines (one writev, no copy).
_JOIN_LIMIT = 16 * 1024
# Request body buffered for the app before reading from the socket pauses.
BODY_HIGH_WATER = 256 * 1024


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI spec 2.4: a subclass of OSError)."""


def _decode_path(raw_path: bytes) -> str:
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")


# Request target -> (path, raw_path, query_string), before any --root-path prefix.
_TARGETS: BoundedCache[bytes, tuple[str, bytes, bytes]] = BoundedCache(TARGET_CACHE_MAX)


def _parse_target(url: bytes) -> tuple[str, bytes, bytes]:
    recalled = _TARGETS.recall(url)
    if recalled is not None:
        return recalled
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


def connection_scope(conn: HTTP1Connection, endpoint: Endpoint) -> dict[str, Any]:
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


class HTTPCycle:
    """One request/response exchange between an HTTP/1 connection and an ASGI app."""

    # Per-request state that starts the same for every request (class-level defaults).
    started = False
    response_started = False
    response_complete = False
    disconnected = False
    task: asyncio.Task[None] | None = None
    _chunks: list[bytes] | None = None
    _buffered = 0
    _final_delivered = False
    _waiter: asyncio.Future[None] | None = None
    _head: bytes | None = None
    _chunked = False
    _expected_length: int | None = None
    _sent_length = 0
    _trailers_wanted = False
    _sent_continue = False
    _discarding = False
    _status = 0
    _start_time = 0.0
    _shutdown = False
    _body_done = False
    _no_body = False  # HEAD, 204, 304: the head goes out, body bytes never do

    def __init__(
        self,
        server: ServerState,
        endpoint: Endpoint,
        conn: HTTP1Connection,
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
        self.server = server
        self.endpoint = endpoint
        cache = conn.iface_cache
        if cache is None or cache[0] is not endpoint:
            cache = conn.iface_cache = (endpoint, connection_scope(conn, endpoint))
        scope = cache[1].copy()
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
        state = endpoint.lifespan_state
        if state is not None:
            scope["state"] = state.copy()
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.te_trailers = te_trailers
        self.body_complete = not has_body
        self._is_head = name == "HEAD"
        if server.access_log:
            self._start_time = perf_counter()

    # -- events from the connection ------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
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
            if self._chunked:
                self.conn.write(LAST_CHUNK)  # end the stream cleanly for the client
            self.conn.close()
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
        server = self.server
        # Tracked in a set from here to the end of run_asgi, not by a done-callback (which
        # would cost a loop callback per request).
        server.active.add(self)
        server.requests += 1
        self.task = server.new_task(self.run_asgi(self.endpoint.app))

    async def run_asgi(self, app: Any) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.server.active.discard(self)
            self._app_failed(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        self.server.active.discard(self)
        if self.response_complete:
            if result is not None:
                logger.error("ASGI callable returned a non-None value: %r", result)
            return
        if not self.response_started:
            if self.disconnected:
                self._abandon()
            else:
                logger.error("ASGI callable returned without starting a response")
                self._send_500()
        else:
            if not self.disconnected:
                logger.error("ASGI callable returned without completing the response")
            self._cut_short()

    def _abandon(self) -> None:
        """The client is gone (or the server is stopping) and the app has finished."""
        self.response_complete = True
        self.conn.close()

    def _cut_short(self) -> None:
        """The response started but cannot be completed: end the connection."""
        self.flush_head()
        self.response_complete = True
        self.conn.close()
        self.conn.cycle_done(self)

    def _app_failed(self, exc: BaseException) -> None:
        if self.disconnected and caused_by_disconnect(exc):
            # The app stopped because the client left (frameworks re-raise our error as
            # their own, e.g. Starlette's ClientDisconnect): nothing to report.
            logger.debug("request ended by client disconnect: %r", exc)
            self._abandon()
            return
        if isinstance(exc, asyncio.CancelledError):
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
        if not self.disconnected:
            self.conn.write(error_response(500, "Internal Server Error", self.server))
            self.server.access(self, 500, 0)
        self.conn.close()
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
                self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            waiter = self.server.loop.create_future()
            self._waiter = waiter
            await waiter

    # -- send ----------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            head = self._head
            if head is not None and not self._no_body and not self._trailers_wanted \
                    and not message.get("more_body", False):
                # The whole body in one message, right after start (most responses): head
                # and body leave in one write and the response completes here.
                body = message.get("body", b"")
                length = len(body)
                expected = self._expected_length
                if expected is None or expected == length:
                    self._head = None
                    conn = self.conn
                    head += self._framing(length)
                    if length <= _JOIN_LIMIT:
                        conn.write(head + body)
                    else:
                        conn.writelines((head, body))
                    self._sent_length = length
                    self._body_done = True
                    self._complete()
                    if conn._write_paused:
                        await conn.drain()
                    if self.disconnected:
                        raise ClientDisconnected("client disconnected")
                    return
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._body_done:
                raise RuntimeError("http.response.body sent after the response completed")
            self._write_body(message.get("body", b""), message.get("more_body", False))
            conn = self.conn
            if conn.write_paused:
                await conn.drain()
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
        elif kind == "http.response.start":
            self._start_response(message)
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
        block, length, flags, trailer = encode_headers(message.get("headers", ()))
        if status < 200:
            if status == 101:
                raise RuntimeError("status 101 needs a protocol upgrade (use websocket)")
            # Informational response (103 Early Hints and friends): goes out now; the final
            # http.response.start follows.
            if self.scope["http_version"] != "1.0":
                self.conn.write(status_line(status) + block + b"\r\n")
            return
        self.response_started = True
        self._status = status
        if self._is_head or status in _NO_BODY_STATUS:
            self._no_body = True
        if flags & CLOSE:
            self.keep_alive = False
        self._expected_length = length
        server = self.server
        defaults = server.default_blocks[(flags >> 1) & 3] if flags else server.default_headers
        head = (STATUS_LINES.entries.get(status) or status_line(status)) + defaults + block
        if message.get("trailers", False):
            self._trailers_wanted = True
            if self.te_trailers and trailer:
                head += b"trailer: %b\r\n" % trailer
        self._head = head
        held = server.held_heads  # flushed once per loop turn if the app suspends
        if not held:
            server.loop.call_soon(server.flush_heads)
        held.append(self)

    def _framing(self, body_len: int | None) -> bytes:
        """The framing headers and the blank line, decided with the first body bytes."""
        status = self._status
        if status in _NO_BODY_STATUS:
            self._expected_length = 0
            return b"\r\n" if self.keep_alive else b"connection: close\r\n\r\n"
        tail = b""
        if self._expected_length is None:
            if body_len is not None and not (self._trailers_wanted and self.te_trailers):
                self._expected_length = body_len
                tail = b"content-length: %d\r\n" % body_len
            elif self.scope["http_version"] == "1.0":
                self.keep_alive = False  # HTTP/1.0 has no chunking: the close ends the body
            else:
                self._chunked = True
                tail = b"transfer-encoding: chunked\r\n"
        elif self._trailers_wanted and self.te_trailers:
            self._trailers_wanted = False  # Content-Length framing has no room for trailers
        if not self.keep_alive:
            return tail + b"connection: close\r\n\r\n"
        if self.scope["http_version"] == "1.0":
            return tail + b"connection: keep-alive\r\n\r\n"
        return tail + b"\r\n"

    def flush_head(self) -> None:
        """The app suspended between start and body: send the head without knowing the body."""
        head = self._head
        if head is None or self.disconnected:
            return
        self._head = None
        self.conn.write(head + self._framing(None))

    def _write_body(self, body: bytes, more: bool) -> None:
        head = self._head
        length = len(body)
        conn = self.conn
        if head is not None:
            self._head = None
            head += self._framing(None if more else length)
            if self._no_body or not length:
                conn.write(head)
            elif self._chunked:
                conn.write(b"%b%x\r\n%b\r\n" % (head, length, body))
            elif length <= _JOIN_LIMIT:
                conn.write(head + body)
            else:
                conn.writelines((head, body))
        elif length and not self._no_body:
            if self._chunked:
                conn.write(b"%x\r\n%b\r\n" % (length, body))
            else:
                conn.write(body)
        self._sent_length += length
        expected = self._expected_length
        if expected is not None and self._sent_length > expected and not self._no_body:
            self.keep_alive = False
            raise RuntimeError("response body longer than its Content-Length")
        if not more:
            self._finish_body()

    def _finish_body(self) -> None:
        expected = self._expected_length
        if expected is not None and self._sent_length < expected and not self._no_body:
            logger.error("response body shorter than its Content-Length (%d < %d)",
                         self._sent_length, expected)
            self.keep_alive = False
        self._body_done = True
        if self._trailers_wanted:
            return  # the response completes with the last http.response.trailers
        if self._chunked and not self._no_body:
            self.conn.write(LAST_CHUNK)
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        server = self.server
        if server.access_log:
            server.access(self, self._status, self._sent_length)
        if self._waiter is not None:
            self._wake()
        self.conn.cycle_done(self)

    async def _send_other(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "http.response.trailers":
            if not self._trailers_wanted:
                raise RuntimeError("http.response.trailers without trailers=True in start")
            if not self._body_done or self.response_complete:
                raise RuntimeError("http.response.trailers sent before the body completed")
            block = encode_headers(message.get("headers", ()))[0]
            pending = self._trailer_block + block
            if message.get("more_trailers", False):
                self._trailer_block = pending  # HTTP/1.1 sends the trailer section at once
                return
            if self._chunked:
                # Without "TE: trailers" from the client the fields are dropped (RFC 9110 §6.5).
                self.conn.write(b"0\r\n" + (pending if self.te_trailers else b"") + b"\r\n")
            self._trailers_wanted = False
            self._complete()
            return
        if kind == "http.response.early_hint":
            if self.response_started:
                raise RuntimeError("http.response.early_hint sent after http.response.start")
            links = message.get("links", ())
            if links and self.scope["http_version"] != "1.0" and not self.disconnected:
                block = b"".join(b"link: %b\r\n" % _bytes(link) for link in links)
                self.conn.write(status_line(103) + block + b"\r\n")
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

    _trailer_block = b""

    async def _send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self.conn.write(head + self._framing(None if more else count))
        if self._no_body:
            if not more:
                self._finish_body()
            return
        if self._chunked and count:
            self.conn.write(b"%x\r\n" % count)
        sent = await self.conn.sendfile(fd, offset, count)
        self._sent_length += sent
        if sent < count:
            self.keep_alive = False
            if self.disconnected:
                raise ClientDisconnected("client disconnected during sendfile")
            raise RuntimeError("file shorter than the count to send")
        if self._chunked and count:
            self.conn.write(b"\r\n")
        if not more:
            self._finish_body()


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
