"""WebSocket connection protocol (RFC 6455, RFC 7692): frames in, whole messages out.

A ``WebSocketConnection`` frames messages over a *byte pipe* (``BytePipe`` below) that
does not care who owns the transport: its owner feeds it bytes (``feed``), tells it when the
peer stopped sending (``feed_eof``) and when the pipe is gone (``pipe_lost``); it writes
through the pipe. On HTTP/1.1 the pipe is the connection's transport after the 101
(``h1/upgrade.py``); on HTTP/2 it is to be one stream's DATA frames (RFC 8441).

Framing, masking, control frames, the close handshake, the message size limit and
permessage-deflate are websockets' sans-I/O ``ServerProtocol``: it measured 6.5x faster than
wsproto on the echo step (bench/ws_framing.py: 8.3 vs 53 us per 1 KiB message), so it is the
framing library. This module wires it to the pipe: message reassembly and UTF-8 checks,
keepalive pings, flow control both ways, the close timeout and the server's graceful stop.
It knows nothing of ASGI or of HTTP: a *handler* (``ws_stream.WebSocketHandler``) gets
``on_message(data)`` (str or bytes) and, once, ``on_close(code, reason)``.

One fast path of our own, because the echo benchmark's profile put websockets' generator
parser and frame objects at a third of the server's time: when no extension is in use, or
permessage-deflate alone, a complete, unfragmented, masked text or binary frame within the
size limit is unmasked (with websockets' C ``apply_mask``), inflated when compressed
(``ws_deflate.py``, on websockets' own zlib streams) and delivered here, and outgoing
messages are compressed and framed here (bench/ws_framing.py: 1.6 us against 8.3 us per
echoed message without compression). Every other frame (control
frames, fragments, anything invalid or over the limit) goes to websockets, and only ever as
whole frames, so its parser never holds a partial frame when the fast path takes the next.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from .ws_deflate import Deflate
from .ws_stream import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    INVALID_DATA,
    MESSAGE_TOO_BIG,
    NORMAL,
    PROTOCOL_ERROR,
    ConnectionClosed,
)

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

if TYPE_CHECKING:  # pragma: no cover
    from ..worker_state import WorkerState

__all__ = ["BytePipe", "WebSocketConnection", "WebSocketMessages", "ConnectionClosed",
           "handshake_protocol"]

logger = logging.getLogger("betula.error")
# websockets logs every open and close at INFO: keep its per-connection chatter out of ours.
_frames_logger = logging.getLogger("betula.websocket.frames")
_frames_logger.setLevel(logging.WARNING)

# Bytes of its own output (pongs) the protocol may add while the client is not reading.
CONTROL_BUDGET = 64 * 1024

_TEXT, _BINARY, _CONT, _CLOSE, _PONG = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT,
                                        Opcode.CLOSE, Opcode.PONG)
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")
# Outgoing payloads up to this size are joined with their header (one buffer, one write).
_JOIN_LIMIT = 16 * 1024


def handshake_protocol(config: Any, select: Callable[[], str | None]) -> ServerProtocol:
    """A websockets protocol for one handshake, configured from the settings; ``select``
    returns the subprotocol the app accepted (asked once the app has answered)."""
    extensions = []
    if config.ws_per_message_deflate:
        # websockets' recommended server settings: 4 KiB windows and memLevel 5 keep a
        # compressed connection near 64 KiB of zlib state instead of about 320 KiB.
        extensions.append(ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12,
            compress_settings={"memLevel": 5, "level": config.ws_deflate_level}))
    return _ServerProtocol(extensions=extensions, max_size=config.ws_max_size,
                           select_subprotocol=lambda _proto, _offered: select(),
                           logger=_frames_logger)


class _ServerProtocol(ServerProtocol):
    """websockets' server protocol with one reading of RFC 6455 changed: a close frame in
    the middle of a fragmented message (control frames may come between fragments, §5.4)
    is a clean close that drops the unfinished message, where websockets fails the
    connection with 1002 ("incomplete fragmented message"). Autobahn's case 7.1.5 (a
    fragment, a close, the next fragment) expects the clean close; so do browsers, which
    close a socket whatever was in flight."""

    def recv_frame(self, frame: Any) -> None:
        if frame.opcode is _CLOSE and self.current_size is not None:
            self.current_size = None  # (websockets' count of the unfinished message)
        super().recv_frame(frame)


class BytePipe(Protocol):
    """What a ``WebSocketConnection`` writes through: one WebSocket's bytes, both ways.

    The pipe's owner (the HTTP/1.1 transport after a 101; an HTTP/2 stream's DATA frames)
    calls the connection's ``open(pipe, data)`` once, then ``feed(data)`` for each read,
    ``feed_eof()`` when the peer stops sending and ``pipe_lost()`` when the pipe is gone.
    Write backpressure: ``write_paused`` is true while the peer is not reading (the owner's
    buffer is past its high-water mark); ``add_drain_callback`` says when it reads again.
    """

    write_paused: bool

    def write(self, data: bytes) -> None:
        """Send bytes (buffered by the owner while the peer is not reading)."""

    def writelines(self, parts: Iterable[bytes]) -> None:
        """Send several buffers in order, without joining them first."""

    def close(self) -> None:
        """End the pipe once what is buffered has been sent."""

    def abort(self) -> None:
        """End the pipe now; buffered bytes are dropped."""

    def write_buffer_size(self) -> int:
        """Bytes written and not sent yet."""

    def pause_reading(self) -> None:
        """Stop delivering bytes (``feed``) until ``resume_reading``."""

    def resume_reading(self) -> None:
        """Deliver bytes again."""

    def add_drain_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the peer reads again (``write_paused`` false) or the pipe
        is gone; at once when neither is pending."""


class WebSocketMessages:
    """The message half of ``ws_stream.WebSocketStream``, for a protocol's WebSocket stream
    whose ``ws`` is its accepted ``WebSocketConnection`` (None until accepted): the same
    on HTTP/1.1 (``h1/upgrade.py``) and HTTP/2 (``h2/websocket.py``)."""

    __slots__ = ()

    ws: WebSocketConnection | None

    def send(self, message: str | bytes) -> bool:
        return self.ws.send(message)  # type: ignore[union-attr]

    async def drain(self) -> None:
        await self.ws.drain()  # type: ignore[union-attr]

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    def close(self, code: int, reason: str) -> None:
        self.ws.close(code, reason)  # type: ignore[union-attr]

    def pause_reading(self) -> None:
        self.ws.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        self.ws.resume_reading()  # type: ignore[union-attr]


class WebSocketConnection:
    """One WebSocket connection in the OPEN state and after, over a ``BytePipe``; its
    ``handler`` (``ws_stream.WebSocketHandler``) gets the messages and the close."""

    metrics_protocol = "websocket"  # (its label in the metrics' connection counts)

    def __init__(self, state: WorkerState, protocol: ServerProtocol, handler: Any) -> None:
        self.state = state
        self.loop = state.loop
        self.config = state.config
        self.proto = protocol  # websockets' ServerProtocol, in the OPEN state
        self.handler = handler
        self.pipe: BytePipe | None = None
        self.closed = False  # the pipe is closed or closing
        self._notified = False  # the handler got on_close
        self._fragments: list[Any] | None = None  # a fragmented message being reassembled
        self._fragment_text = False
        self._decoder: Any = None
        self._read_paused = False  # the handler's queue is full
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._resume_pending = False  # a drain callback is registered with the pipe
        self._read_held = False  # reading held: the client is not reading our pongs
        self._unread_output = 0  # protocol output written while the client is not reading
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_handle: asyncio.TimerHandle | None = None
        self._pong_payload: bytes | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        # The fast path (see the module docstring) takes a connection without extensions,
        # or with permessage-deflate alone (ws_deflate.py compresses for it).
        self._deflate = Deflate.of(protocol.extensions)
        self._fast = not protocol.extensions or self._deflate is not None
        self._max_size = protocol.max_message_size or (1 << 62)
        self._buf = bytearray()  # an incomplete frame (fast path)
        self._need = 0  # bytes self._buf must hold before parsing is worth retrying

    # -- the pipe's owner's side ------------------------------------------------------------
    def open(self, pipe: BytePipe, data: bytes) -> None:
        """Start on ``pipe`` (its reading paused); ``data`` was read past the handshake."""
        self.pipe = pipe
        self.state.connections.add(self)
        self._schedule_ping()
        if data:
            self.feed(data)
        if not self.closed and not self._read_paused:
            pipe.resume_reading()

    def feed(self, data: bytes) -> None:
        """Bytes from the client."""
        if self.closed:
            return
        if not self._fast:
            self._receive_frames(data)
            return
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return
            data = bytes(buf)
            buf.clear()
        end = len(data)
        pos = self._fast_frames(data, end)
        if pos < end and not self.closed:
            if self._fast:
                self._buf += memoryview(data)[pos:]
            else:  # gave up the fast path (an oversized frame): websockets reads the rest
                self._receive_frames(data[pos:])

    def _fast_frames(self, data: bytes, end: int) -> int:
        """Deliver the complete simple frames at the start of ``data``, hand every other
        complete frame to websockets; return where the unconsumed bytes start."""
        pos = 0
        self._need = 0
        handler = self.handler
        while end - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if end - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                start += 4
            if length > self._max_size:
                # Over the limit: websockets refuses it (1009) from its header alone.
                self._fast = False
                return pos
            stop = start + length
            if stop > end:
                self._need = stop - pos
                break
            if (b0 == 0x81 or b0 == 0x82 or ((b0 == 0xC1 or b0 == 0xC2) and self._deflate)) \
                    and b1 & 0x80 and self._fragments is None and self.proto.state is OPEN:
                payload = apply_mask(data[start:stop], data[start - 4:start])
                if b0 & 0x40:  # RSV1: a compressed message
                    try:
                        payload = self._deflate.inflate(payload, self._max_size)
                    except PayloadTooBig as exc:
                        self._fail(MESSAGE_TOO_BIG, str(exc))
                        return end
                    except ProtocolError:
                        self._fail(PROTOCOL_ERROR, "decompression failed")
                        return end
                if b0 & 0x0F == 1:
                    try:
                        handler.on_message(payload.decode())
                    except UnicodeDecodeError:
                        self._fail(INVALID_DATA, "invalid UTF-8 in a text message")
                        return end
                else:
                    handler.on_message(payload)
            else:
                self._receive_frames(data[pos:stop])
                if self.closed or self.proto.state is not OPEN:
                    self._fast = False  # websockets discards what follows a close
                    return stop
            pos = stop
        return pos

    def _receive_frames(self, data: bytes) -> None:
        """websockets parses ``data``: every frame on a connection with extensions, else
        the frames the fast path leaves to it (control frames, fragments, errors)."""
        proto = self.proto
        proto.receive_data(data)
        for frame in proto.events_received():
            opcode = frame.opcode
            if opcode is _TEXT and frame.fin:
                try:
                    text = frame.data.decode()
                except UnicodeDecodeError:
                    self._fail(INVALID_DATA, "invalid UTF-8 in a text message")
                    return
                self.handler.on_message(text)
            elif opcode is _BINARY and frame.fin:
                self.handler.on_message(frame.data)
            elif opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                if not self._fragment(frame):
                    return
            elif opcode is _PONG:
                if frame.data == self._pong_payload:
                    self._got_pong()
            # PING: websockets queued the PONG. CLOSE: it queued the answer and the EOF.
        self._flush()

    def _fragment(self, frame: Any) -> bool:
        """Reassemble a fragmented message; text is checked as it arrives (fail fast)."""
        if frame.opcode is not _CONT:
            self._fragments = []
            self._fragment_text = frame.opcode is _TEXT
            if self._fragment_text:
                self._decoder = _utf8_decoder()
        parts = self._fragments
        assert parts is not None  # websockets refuses a continuation without a start
        if self._fragment_text:
            try:
                parts.append(self._decoder.decode(frame.data, frame.fin))
            except UnicodeDecodeError:
                self._fail(INVALID_DATA, "invalid UTF-8 in a text message")
                return False
        else:
            parts.append(frame.data)
        if frame.fin:
            message = "".join(parts) if self._fragment_text else b"".join(parts)
            self._fragments = self._decoder = None
            self.handler.on_message(message)
        return True

    def feed_eof(self) -> None:
        """The client sends no more."""
        if not self.closed:
            self.proto.receive_eof()
            self._flush()

    def pipe_lost(self) -> None:
        """The pipe is gone (the connection dropped or was closed)."""
        self.closed = True
        self.state.connections.discard(self)
        for handle in (self._ping_handle, self._pong_handle, self._close_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = self._close_handle = None
        self._wake_drain()
        self._notify()

    # Reading goes on while the client does not read what we write (a bad frame or a close
    # from it is still seen), but what the protocol writes on its own meanwhile (pongs) is
    # budgeted: past CONTROL_BUDGET bytes reading is held until the client reads again, so
    # a client flooding pings and never reading the pongs cannot grow our buffer.
    def _await_resume(self) -> None:
        if not self._resume_pending:
            self._resume_pending = True
            self.pipe.add_drain_callback(self._writing_resumed)  # type: ignore[union-attr]

    def _writing_resumed(self) -> None:
        """The client reads again (or the pipe is gone)."""
        self._resume_pending = False
        self._unread_output = 0
        if self._read_held:
            self._read_held = False
            if not self._read_paused and not self.closed:
                self.pipe.resume_reading()  # type: ignore[union-attr]
        self._wake_drain()

    async def drain(self) -> None:
        """Wait until the client reads again, or the connection closes."""
        if not self.pipe.write_paused or self.closed:  # type: ignore[union-attr]
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        self._await_resume()
        await waiter

    def _wake_drain(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- output ------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what the protocol produced; its EOF marker (b"") means: close the pipe
        (the server closes the TCP connection first, RFC 6455 §7.1.1)."""
        pipe: Any = self.pipe
        for data in self.proto.data_to_send():
            if self.closed:
                break
            if data:
                pipe.write(data)
                if pipe.write_paused:
                    self._unread_output += len(data)
                    self._await_resume()
                    if self._unread_output > CONTROL_BUDGET and not self._read_held:
                        self._read_held = True
                        if not self._read_paused:
                            pipe.pause_reading()
            else:
                self.closed = True
                pipe.close()
                if pipe.write_buffer_size() and self._close_handle is None:
                    # close() waits for the buffer to drain; a client that stopped
                    # reading gets --ws-close-timeout, then the connection is dropped.
                    self._close_handle = self.loop.call_later(
                        self.config.ws_close_timeout, self._close_timed_out)
        if self.proto.state is not OPEN:
            self._notify()
            self._wake_drain()  # a send() waiting for the client to read gives up

    def _notify(self) -> None:
        """Tell the handler, once, that the connection is closing: with the client's code
        when it sent a close frame, the code we sent when we failed the connection, else
        1006 (the connection dropped)."""
        if self._notified:
            return
        self._notified = True
        proto = self.proto
        sent, received = proto.close_sent, proto.close_rcvd
        if sent is not None and (received is None or proto.parser_exc is not None):
            # We failed the connection (a protocol error, even one inside a close frame)
            # or closed it first: the code on the wire is ours.
            code, reason = sent.code, sent.reason
        elif received is not None:
            code, reason = received.code, received.reason
        else:
            code, reason = ABNORMAL, ""
        self.handler.on_close(code, reason)

    def send(self, message: str | bytes) -> bool:
        """Send one message; raises ConnectionClosed once the connection is closing. True
        when the client is not reading (``drain()`` before sending more)."""
        proto = self.proto
        if proto.state is not OPEN or self.closed:
            raise ConnectionClosed("the WebSocket connection is closed")
        if self._fast:
            if message.__class__ is str:
                payload = message.encode()  # type: ignore[union-attr]
                first = 0x81
            else:
                payload = message  # type: ignore[assignment]
                first = 0x82
            if self._deflate is not None:
                payload = self._deflate.deflate(payload)
                first |= 0x40  # RSV1: compressed
            length = len(payload)
            if length < 126:
                head = bytes((first, length))
            elif length < 65536:
                head = _HEAD16.pack(first, 126, length)
            else:
                head = _HEAD64.pack(first, 127, length)
            pipe: Any = self.pipe
            if length <= _JOIN_LIMIT:
                # An attribute load, not a method lookup: a pipe may hold its transport's
                # own write (h1/upgrade.py), which a method call could not specialise.
                write = pipe.write
                write(head + payload)
            else:
                pipe.writelines((head, payload))
            return pipe.write_paused
        if message.__class__ is str:
            proto.send_text(message.encode())  # type: ignore[union-attr]
        else:
            proto.send_binary(message)  # type: ignore[arg-type]
        writes = proto.data_to_send()
        pipe = self.pipe
        if len(writes) == 1:
            pipe.write(writes[0])
        else:  # pragma: no cover - one message is one frame
            pipe.writelines(writes)
        return pipe.write_paused

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the client has ``--ws-close-timeout`` to answer."""
        if self.proto.state is not OPEN or self.closed:
            return
        self.proto.send_close(code, reason)
        self._flush()
        if not self.closed:
            self._close_handle = self.loop.call_later(self.config.ws_close_timeout,
                                                      self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_handle = None
        self.abort()

    def _fail(self, code: int, reason: str) -> None:
        self.proto.fail(code, reason)
        self._flush()

    # -- input flow control (the handler's queue) ----------------------------------------
    def pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            if not self._read_held:
                self.pipe.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if self._read_paused and not self.closed:
            self._read_paused = False
            if not self._read_held:
                self.pipe.resume_reading()  # type: ignore[union-attr]

    # -- keepalive -----------------------------------------------------------------------
    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval > 0 and not self.closed:
            self._ping_handle = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_handle = None
        if self.closed or self.proto.state is not OPEN:
            return
        if self._pong_payload is None:  # else the last ping is still waiting (timeout)
            self._pong_payload = os.urandom(4)
            self.proto.send_ping(self._pong_payload)
            self._flush()
            timeout = self.config.ws_ping_timeout
            if timeout > 0:
                self._pong_handle = self.loop.call_later(timeout, self._ping_timed_out)
        self._schedule_ping()

    def _got_pong(self) -> None:
        self._pong_payload = None
        if self._pong_handle is not None:
            self._pong_handle.cancel()
            self._pong_handle = None

    def _ping_timed_out(self) -> None:
        self._pong_handle = None
        if self.closed:
            return
        client = self.handler.client_label()
        logger.info("%s - WebSocket keepalive: no pong in %.1f s, closing", client,
                    self.config.ws_ping_timeout)
        self._fail(INTERNAL_ERROR, "keepalive ping timeout")

    # -- server-wide sweeps ----------------------------------------------------------------
    def check_timeouts(self, now: float) -> None:
        """Timers of their own (pings, close); nothing for the server's sweep."""

    def shutdown(self) -> None:
        """Graceful stop: close with 1001 (going away); the app sees the disconnect now."""
        if self.proto.state is OPEN and not self.closed:
            self.close(GOING_AWAY, "server shutting down")
        self._notify()

    def abort(self) -> None:
        if self.pipe is not None:
            self.closed = True
            self.pipe.abort()
