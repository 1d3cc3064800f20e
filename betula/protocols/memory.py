"""The stream seam in memory (see ``protocols/stream.py``): one exchange with no socket.

``MemoryStream`` offers every call an adapter makes of its stream and collects the response
into a ``MemoryResponse`` record: the embedding API (``embed.py``) runs the real adapters
(``HTTPCycle``, ``WSGICycle``) over it, so embedded calls and served traffic share one ASGI
and one WSGI implementation, and adapter tests run without sockets (``run_exchange``).

The response is checked by the rules HTTP/1 applies (``betula/headers.py``: a RuntimeError
for a bad field name or value, an invalid or conflicting Content-Length); hop-by-hop
fields are kept out, as the HTTP/1 stream keeps them out of its head; HEAD, 204 and 304
carry no body; a body that disagrees with its Content-Length is logged (longer: cut to it,
and ``send_data`` raises); HTTP/1.0 gets no 1xx. What HTTP/1 adds of its own (Date,
Server, framing fields) is not added: the record holds what the app gave.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..headers import FIELD_LISTS, NO_BODY_STATUS, checked_fields
from ..http_common import phrase

__all__ = ["MemoryResponse", "MemoryStream"]

logger = logging.getLogger("betula.error")

FILE_CHUNK = 256 * 1024
Pairs = tuple[tuple[bytes, bytes], ...]


class MemoryResponse:
    """What a client would have received, as data.

    ``status`` 0: no final status came (the exchange was cut short first). ``reason``: the
    app's own phrase (WSGI), None for the standard one. ``headers`` / ``trailers``: (name,
    value) bytes pairs as the app gave them, names lowered, hop-by-hop fields left out.
    ``informational``: the 1xx responses (100 Continue, 103 Early Hints) as (status,
    fields). ``complete``: a whole response was given (the server's own 500 answer from
    ``fail_response`` included: ``failed`` tells it apart); ``aborted``: it started and was
    cut short (``body`` holds what came before the cut).
    """

    # Class-level defaults and no __init__: a record is made without a Python call (one
    # per embedded request). The sequences are empty tuples until something is added.
    status = 0
    reason: str | None = None
    headers: Sequence[tuple[bytes, bytes]] = ()
    body = b""
    trailers: Sequence[tuple[bytes, bytes]] = ()
    informational: Sequence[tuple[int, list[tuple[bytes, bytes]]]] = ()
    complete = False
    aborted = False
    failed = False

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 80 else self.body[:80] + b"..."
        return (f"MemoryResponse(status={self.status}, headers={self.headers}, body={body!r}, "
                f"trailers={self.trailers}, informational={self.informational}, "
                f"complete={self.complete}, aborted={self.aborted}, failed={self.failed})")


class MemoryStream:
    """One exchange in memory: the ``Stream`` of ``protocols/stream.py``, collecting the
    response into ``response``.

    ``handler`` is the adapter's cycle (set by whoever drives the exchange, before the app
    runs): the stream reads its ``is_head`` and ``http_version``, and tells it the client
    left when the exchange ends early (``fail_response``, ``cut_short``, ``disconnect``).
    ``on_end`` is called once when the exchange is over (complete, failed or cut short).
    Nothing here needs an event loop: an embedded WSGI call runs over it in the caller's
    thread.
    """

    # Per-exchange state that starts the same for every exchange (class-level defaults:
    # __init__ sets only what differs).
    scheme = "http"
    client: tuple[str, int] | None = None
    sockname: tuple[str, int] | None = None
    iface_cache: Any = None
    proxy: Any = None  # (no proxy in front of an in-memory exchange)
    handler: Any = None
    response_status = 0
    response_bytes = 0  # body bytes collected (or, for HEAD/204/304, given) so far
    trailers_pending = False
    write_paused = False  # memory is always writable
    reading_paused = False  # the adapter asked to hold the request body back
    body_discarded = False  # the adapter dropped the rest of the request body
    app_headers: Any = None  # the response fields exactly as the app passed them
    ended = False
    _on_end: Callable[[], None] | None = None
    _chunks: list[bytes] | None = None
    _length: int | None = None
    _no_body = False

    def __init__(self, scheme: str = "http", client: tuple[str, int] | None = None,
                 sockname: tuple[str, int] | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        self.response = MemoryResponse()
        # What every exchange reads, set here: on 3.11 reading a class-level default
        # through an instance is not specialised (~270 instructions a read against ~55
        # for an attribute of the instance, callgrind), a store costs ~80.
        self.handler = None
        self.trailers_pending = False
        self.write_paused = False
        self.ended = False
        self._on_end = on_end
        self._chunks = None
        if scheme != "http":
            self.scheme = scheme
        if client is not None:
            self.client = client
        if sockname is not None:
            self.sockname = sockname

    @property
    def response_headers(self) -> Any:
        """The fields as the adapter gave them (the ``Stream`` attribute)."""
        return self.app_headers

    # -- response --------------------------------------------------------------------------
    def send_informational(self, status: int, headers: Any) -> None:
        pairs = checked_fields(headers)[0] if headers else ()
        if self.handler.http_version != "1.0" and not self.ended:
            response = self.response
            response.informational = [*response.informational, (status, list(pairs))]

    def respond(self, status: int, headers: Any, body: bytes, reason: str | None = None
                ) -> None:
        """A whole response in one call."""
        self.start_response(status, headers, False, reason)
        response = self.response
        size = len(body)
        length = self._length
        if self._no_body:
            body = b""
        elif length is not None and length != size:
            logger.error("response body length %d does not match its Content-Length %d",
                         size, length)
            if size > length:
                body = body[:length]
                size = length
        response.body = body if body.__class__ is bytes else bytes(body)
        self.response_bytes = size
        response.complete = True

    def start_response(self, status: int, headers: Any, trailers: bool = False,
                       reason: str | None = None) -> None:
        """Record the final status and the app's checked fields."""
        cached = None
        if headers.__class__ is list and headers and headers[0].__class__ is tuple:
            try:  # checked_fields' cache hit, inline (once a request)
                cached = FIELD_LISTS.entries.get(tuple(headers))
            except TypeError:
                pass
        pairs, length = cached or checked_fields(headers)
        response = self.response
        response.status = self.response_status = status
        if reason is not None:
            response.reason = reason
        response.headers = list(pairs)
        self.app_headers = headers
        self._no_body = self.handler.is_head or status in NO_BODY_STATUS or status < 200
        self._length = length
        if trailers:
            self.trailers_pending = True

    def send_data(self, body: bytes, end: bool) -> None:
        if end and self._chunks is None and not self.trailers_pending and not self._no_body \
                and (self._length is None or self._length == len(body)):
            # The whole body in one message (most responses): no joining, nothing to check.
            response = self.response
            response.body = body if body.__class__ is bytes else bytes(body)
            self.response_bytes = len(body)
            response.complete = True
            return
        if body:
            self._collect(body)
        if end:
            self._finish_body()

    def send_trailers(self, headers: Any, end: bool = True) -> None:
        response = self.response
        response.trailers = [*response.trailers, *checked_fields(headers)[0]]
        if end:
            self.trailers_pending = False
            self.response.complete = True

    async def send_file(self, fd: int, offset: int, count: int, end: bool) -> int:
        if self._no_body:
            if end:
                self._finish_body()
            return count
        sent = 0
        while sent < count:
            data = os.pread(fd, min(FILE_CHUNK, count - sent), offset + sent)
            if not data:
                return sent  # the file is shorter than count
            self._collect(data)
            sent += len(data)
        if end:
            self._finish_body()
        return sent

    def fail_response(self, status: int = 500, reason: str = "Internal Server Error") -> None:
        """The server's own answer in place of the app's: what HTTP/1 sends."""
        response = self.response
        response.status = self.response_status = status
        response.reason = None
        response.headers = [(b"content-type", b"text/plain; charset=utf-8")]
        response.body = f"{status} {phrase(status) or 'Error'}: {reason}\n".encode(
            "latin-1", "replace")
        response.trailers = ()
        response.complete = response.failed = True
        self.response_bytes = 0
        self._chunks = None
        self._end()
        self.disconnect()  # HTTP/1 closes the connection after it

    def cut_short(self) -> None:
        response = self.response
        if not response.complete:
            response.aborted = True
            self._join_body()
        self._end()
        self.disconnect()

    def end_for_shutdown(self) -> None:
        self._join_body()
        self._end()
        self.disconnect()

    # -- flow control ----------------------------------------------------------------------
    async def drain(self) -> None:
        return None

    def add_drain_callback(self, callback: Callable[[], None]) -> None:
        callback()  # never paused

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    # -- the exchange's end ----------------------------------------------------------------
    def cycle_done(self, handler: Any) -> None:
        if not self.ended:  # _end(), inline
            self.ended = True
            if self._on_end is not None:
                self._on_end()

    def body_finished(self, handler: Any) -> None:
        self.body_discarded = True

    # -- the client's side (what a protocol would tell the handler) ----------------------
    def disconnect(self) -> None:
        """The client leaves."""
        handler = self.handler
        if handler is not None and not handler.disconnected:
            handler.connection_lost()

    def shutdown(self) -> None:
        """A graceful stop begins."""
        self.handler.server_shutdown()

    # -- inside ----------------------------------------------------------------------------
    def _collect(self, data: bytes) -> None:
        if self._no_body:
            self.response_bytes += len(data)
            return
        length = self._length
        over = length is not None and self.response_bytes + len(data) > length
        if over:  # what the Content-Length promised is kept, then the app's error
            data = data[:length - self.response_bytes]  # type: ignore[operator]
        if data:
            chunks = self._chunks
            if chunks is None:
                self._chunks = [data]
            else:
                chunks.append(data)
            self.response_bytes += len(data)
        if over:
            raise RuntimeError("response body longer than its Content-Length")

    def _finish_body(self) -> None:
        length = self._length
        if length is not None and self.response_bytes < length and not self._no_body:
            logger.error("response body shorter than its Content-Length (%d < %d)",
                         self.response_bytes, length)
        self._join_body()
        if not self.trailers_pending:
            self.response.complete = True

    def _join_body(self) -> None:
        chunks = self._chunks
        if chunks:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.response.body = body if body.__class__ is bytes else bytes(body)
            self._chunks = None

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            if self._on_end is not None:
                self._on_end()
