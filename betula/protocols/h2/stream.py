"""One HTTP/2 request stream: the ``Stream`` (``protocols/stream.py``) an adapter answers
through, as it answers through an HTTP/1 connection.

The response goes out as HEADERS and DATA frames through the connection's h2 state
machine. Body bytes wait in the stream's outbox until the client's windows (this stream's
and the connection's) let them go; ``write_paused`` is set while more than OUTBOX_HIGH
bytes wait or the transport is paused, so the adapter's ``send()`` waits (``drain``).
Request body: the connection credits the client's window as the app takes the body; a
paused stream (the adapter holds enough) gets no credit until it resumes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from ...cache import BoundedCache
from ...headers import NO_BODY_STATUS, as_bytes, checked_fields
from ...http_common import phrase
from ..flow import WriteFlow
from .websocket import H2WebSocket

if TYPE_CHECKING:  # pragma: no cover
    from .connection import HTTP2Connection

__all__ = ["H2Stream"]

logger = logging.getLogger("betula.error")

# Response bytes a stream may hold for the client's window before send() waits.
OUTBOX_HIGH = 64 * 1024
FILE_CHUNK = 64 * 1024
_STATUS = {}  # status -> its :status field
# (status, checked pairs, Date/Server fields) -> the HEADERS fields (h2 only reads them)
_FIELDS: BoundedCache[tuple[Any, ...], tuple[tuple[bytes, bytes], ...]] = BoundedCache(1024)


def _status_field(status: int) -> tuple[bytes, bytes]:
    field = _STATUS.get(status)
    if field is None:
        field = _STATUS[status] = (b":status", str(status).encode("ascii"))
    return field


def _trailer_fields(headers: Any) -> list[tuple[bytes, bytes]]:
    """The app's ``Trailer`` fields (``checked_fields`` leaves them out with the hop-by-hop
    ones: they go only where trailers follow)."""
    return [(b"trailer", as_bytes(value)) for name, value in headers
            if as_bytes(name).lower() == b"trailer"]


class H2Stream(WriteFlow):
    """A request stream of an ``HTTP2Connection``."""

    __slots__ = ("conn", "h2", "stream_id", "cycle", "loop", "scheme", "client", "sockname",
                 "proxy",
                 "iface_cache", "response_status", "response_bytes", "response_headers",
                 "trailers_pending",
                 "write_paused", "_closed", "_drain_waiters", "_drain_callbacks", "_out",
                 "_out_bytes", "_end", "ended", "_trailers", "_length", "_no_body",
                 "_head_sent", "_paused", "_unacked", "body_bytes", "done",
                 "body_since", "websocket")

    def __init__(self, conn: HTTP2Connection, stream_id: int) -> None:
        self.conn = conn
        self.h2 = conn.h2
        self.stream_id = stream_id
        self.cycle: Any = None
        self.loop = conn.loop
        self.scheme = conn.scheme
        self.client = conn.client
        self.proxy = conn.proxy
        self.sockname = conn.sockname
        self.iface_cache: Any = None
        self.response_status = 0
        self.response_bytes = 0
        self.response_headers: Any = None
        self.trailers_pending = False
        self.write_paused = conn.transport_paused
        self._closed = False  # reset (either side), or the connection is gone: nothing goes out
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._drain_callbacks: list[Callable[[], None]] = []
        self._out: deque[memoryview] = deque()  # body bytes waiting for window
        self._out_bytes = 0
        self._end = False  # the body is complete (END_STREAM once the outbox is empty)
        self.ended = False  # END_STREAM sent
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._length: int | None = None  # the app's Content-Length
        self._no_body = False
        self._head_sent = False
        self._paused = False  # the adapter holds enough request body: no credit
        self._unacked = 0  # request body bytes received and not yet credited back
        self.body_bytes = 0  # request body bytes received
        self.body_since = conn.state.clock  # when body bytes last came (see check_timeouts)
        self.done = False  # the response is complete (or given up)
        self.websocket: H2WebSocket | None = None  # an extended CONNECT's (RFC 8441)

    # -- response --------------------------------------------------------------------------
    def _fields(self, status: int, headers: Any) -> tuple[tuple[bytes, bytes], ...]:
        """The response's HEADERS fields: :status, the app's (checked), Date and Server
        where the app gave none; worked out once per (status, field list, defaults)."""
        pairs, length = checked_fields(headers)
        self._length = length
        defaults = self.conn.shared.default_fields
        key = (status, pairs, defaults)
        fields = _FIELDS.entries.get(key)
        if fields is None:
            have = {name for name, _ in pairs}
            fields = (_status_field(status), *pairs,
                      *(field for field in defaults if field[0] not in have))
            _FIELDS.keep(key, fields)
        return fields

    def send_informational(self, status: int, headers: Any) -> None:
        if self._closed or self._head_sent:
            return
        pairs = checked_fields(headers)[0] if headers else ()
        self._call(self.h2.send_headers, self.stream_id, [_status_field(status), *pairs])

    def respond(self, status: int, headers: Any, body: bytes, reason: str | None = None
                ) -> None:
        self.start_response(status, headers, False, reason)
        self.send_data(body, True)

    def start_response(self, status: int, headers: Any, trailers: bool = False,
                       reason: str | None = None) -> None:
        """The head goes out now (HTTP/2 has no reason phrase: ``reason`` is dropped)."""
        cycle = self.cycle
        fields = self._fields(status, headers)
        self.response_status = status
        self.response_headers = headers
        self.response_bytes = 0
        self._no_body = (cycle is not None and cycle.is_head) or status in NO_BODY_STATUS
        self.trailers_pending = trailers
        if self._closed:
            return
        if trailers:  # the app's Trailer field announces them (end to end: RFC 9110 §6.6.2)
            fields = (*fields, *_trailer_fields(headers))
        self._head_sent = True
        self._call(self.h2.send_headers, self.stream_id, fields)

    def send_data(self, body: bytes, end: bool) -> None:
        length = len(body)
        if not end and not self._out and body.__class__ is bytes and not self._no_body \
                and (self._length is None or self.response_bytes + length <= self._length) \
                and not self._closed and not self._end \
                and self.h2.try_data_frame(self.stream_id, body):
            # Nothing queued and the frame within the windows: out at once (data_frames.py)
            self.response_bytes += length
            self.conn.mark_dirty()
            return
        if length and not self._no_body:
            expected = self._length
            if expected is not None and self.response_bytes + length > expected:
                raise RuntimeError("response body longer than its Content-Length")
            self.response_bytes += length
            if not self._closed:
                # (a bytearray the app may reuse is copied: the view goes to the socket)
                self._out.append(memoryview(body if body.__class__ is bytes else bytes(body)))
                self._out_bytes += length
        if end:
            expected = self._length
            if expected is not None and self.response_bytes < expected and not self._no_body:
                logger.error("response body shorter than its Content-Length (%d < %d)",
                             self.response_bytes, expected)
                self.cut_short()
                return
            if not self.trailers_pending:
                self._end = True
        if not self._closed:
            self.pump()
            if self._out_bytes > OUTBOX_HIGH:
                self.write_paused = True

    def send_trailers(self, headers: Any, end: bool = True) -> None:
        pairs = checked_fields(headers)[0]
        trailers = self._trailers
        if trailers is None:
            trailers = self._trailers = []
        trailers.extend(pairs)
        if end:
            self.trailers_pending = False
            self._end = True
            if not self._closed:
                self.pump()

    async def send_file(self, fd: int, offset: int, count: int, end: bool) -> int:
        """No sendfile on HTTP/2 (the bytes go in DATA frames): read and send in chunks,
        waiting for the client's window."""
        sent = 0
        while sent < count and not self._closed:
            chunk = os.pread(fd, min(FILE_CHUNK, count - sent), offset + sent)
            if not chunk:
                break
            sent += len(chunk)
            self.send_data(chunk, end and sent == count)
            if self.write_paused:
                await self.drain()
        if sent < count and not self._closed:
            self.cut_short()
        elif end and count == 0:
            self.send_data(b"", True)
        return sent

    def fail_response(self, status: int = 500, reason: str = "Internal Server Error") -> None:
        body = f"{status} {phrase(status)}: {reason}\n".encode()
        self.response_status = status
        cycle = self.cycle
        is_head = cycle is not None and cycle.is_head
        fields = [(b"content-type", b"text/plain; charset=utf-8"),
                  (b"content-length", str(len(body)).encode("ascii"))]
        self.start_response(status, fields)
        self.send_data(b"" if is_head else body, True)
        self.response_bytes = 0
        self._finished()

    def cut_short(self) -> None:
        """The response cannot complete: reset this stream (the others go on)."""
        self.reset(ErrorCodes.INTERNAL_ERROR)

    def end_for_shutdown(self) -> None:
        """A graceful stop ends a streaming response: cleanly where its length allows."""
        if self._length is None or self.response_bytes == self._length:
            self.trailers_pending = False
            self._end = True
            self.pump()
        else:
            self.reset(ErrorCodes.CANCEL)

    def upgrade_to(self, handler: Any, method: bytes, url: bytes,
                   headers: tuple[tuple[bytes, bytes], ...], http_version: str) -> H2WebSocket:
        """The WebSocket stream (``ws_stream.WebSocketStream``) of this extended CONNECT,
        which the adapter's ``handler`` answers; from now on the connection gives this
        stream's DATA and END_STREAM to it (``H2WebSocket.data``, ``end``)."""
        websocket = self.websocket = H2WebSocket(self, handler, headers)
        return websocket

    @property
    def unsent(self) -> int:
        """Body bytes given and still waiting for the client's window."""
        return self._out_bytes

    # -- sending ---------------------------------------------------------------------------
    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except H2Error:  # the stream closed under us (the client reset it)
            self.lost()
            return
        self.conn.mark_dirty()

    def pump(self) -> None:
        """Send what the windows allow; END_STREAM (or the trailers) once all is out."""
        out = self._out
        h2 = self.h2
        sid = self.stream_id
        try:
            if out:
                window = h2.local_flow_control_window(sid)
                frame = h2.max_outbound_frame_size
                while out and window > 0:
                    chunk = out[0]
                    size = min(len(chunk), window, frame)
                    if size == len(chunk):
                        out.popleft()
                    else:
                        out[0] = chunk[size:]
                        chunk = chunk[:size]
                    last = not out and self._end and self._trailers is None
                    # A whole body goes as the bytes it is (h2 copies a view): with the
                    # connection's buffered output (output.py) it reaches the socket uncopied.
                    data = chunk.obj if len(chunk) == len(chunk.obj) else chunk.tobytes()
                    if last:
                        h2.send_data(sid, data, end_stream=True)
                    else:
                        h2.send_data_frame(sid, data)
                    window -= size
                    self._out_bytes -= size
                    if last:
                        self.ended = True
                self.conn.mark_dirty()
                if out:
                    self.conn.blocked[sid] = self
            if not out and self._end and not self.ended:
                self.ended = True
                if self._trailers is not None:
                    h2.send_headers(sid, self._trailers, end_stream=True)
                else:
                    h2.end_stream(sid)
                self.conn.mark_dirty()
        except H2Error:
            self.lost()
            return
        if self.write_paused and self._out_bytes <= OUTBOX_HIGH \
                and not self.conn.transport_paused:
            self.write_paused = False
            self._wake_drain()
        if self.ended:
            if self.websocket is not None:
                self.websocket.lost()  # END_STREAM: the pipe is closed
            self.conn.stream_sent(self)

    # -- request body flow control --------------------------------------------------------
    def received(self, size: int) -> None:
        """``size`` bytes of request body arrived (the connection credited its window)."""
        self.body_bytes += size
        self.body_since = self.conn.state.clock
        self._unacked += size
        if not self._paused and self._unacked >= self.conn.shared.window // 2:
            self._credit()

    def _credit(self) -> None:
        unacked, self._unacked = self._unacked, 0
        if unacked and not self._closed:
            try:
                self.h2.increment_flow_control_window(unacked, stream_id=self.stream_id)
            except H2Error:  # the stream closed meanwhile: nothing to credit
                return
            self.conn.mark_dirty()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self.body_since = self.conn.state.clock  # our pause is not the client's delay
            self._credit()

    @property
    def waits_for_body(self) -> bool:
        """The app reads a body the client has not finished sending (and we are not holding
        it back)."""
        cycle = self.cycle
        return cycle is not None and not cycle.body_complete and not self._paused \
            and not self.done

    # -- the exchange's end ----------------------------------------------------------------
    def cycle_done(self, handler: Any) -> None:
        self.done = True
        self._finished()

    def body_finished(self, handler: Any) -> None:
        self._finished()

    def _finished(self) -> None:
        self.done = True
        self.conn.stream_finished(self)

    def release(self) -> None:
        """The exchange is over and the connection has let go of this stream: so does the
        stream of its adapter's cycle. The two hold each other (``cycle.conn`` is this
        stream); without this each request would wait for the garbage collector (6.9% of
        the worker's time on h2load POSTs over TLS, py-spy), not be freed by reference
        counting when the app is done."""
        self.cycle = None

    def reset(self, code: int) -> None:
        """End this stream with RST_STREAM ``code``; the app is told the client left."""
        if not self._closed:
            if not self.ended:
                try:
                    self.h2.reset_stream(self.stream_id, code)
                except H2Error:
                    pass
                self.conn.mark_dirty()
        self.lost()

    @property
    def closed(self) -> bool:
        """Reset (by either side) or the connection gone: nothing more goes out."""
        return self._closed

    def transport_resumed(self) -> None:
        """The client reads again: a stream paused with nothing waiting may send again."""
        if self.write_paused and not self._out_bytes:
            self.pump()

    def lost(self) -> None:
        """The stream is over for the app: reset (by either side) or the connection gone."""
        self._closed = True
        self._out.clear()
        self._out_bytes = 0
        self._wake_drain()
        cycle = self.cycle
        if cycle is not None and not cycle.disconnected:
            cycle.connection_lost()
        if self.websocket is not None:
            self.websocket.lost()
        self.done = True
        self.conn.stream_finished(self)
