"""A WebSocket on an HTTP/2 stream (RFC 8441): the extended CONNECT's answers and the pipe.

``H2WebSocket`` is the ``ws_stream.WebSocketStream`` of one request stream whose HEADERS
were ``:method CONNECT`` with ``:protocol websocket`` (the connection announces
SETTINGS_ENABLE_CONNECT_PROTOCOL when the worker serves WebSockets). The same adapter
(``asgi/websocket.py``) answers it as it answers an HTTP/1.1 upgrade, and the same framing
(``protocols/websocket.py``, permessage-deflate included) runs over it; what differs is the
handshake and the pipe:

- RFC 8441 §5: no Sec-WebSocket-Key and no Accept; accepting is a 200 HEADERS frame (with
  the subprotocol and extensions) that leaves the stream open, a denial or a refusal is an
  ordinary response on the stream, and an invalid handshake gets 400 (426 with the
  version we speak for another Sec-WebSocket-Version).
- The pipe is the stream's DATA frames, both ways, under HTTP/2 flow control: writes wait
  in the stream's outbox for the client's window (``write_paused`` as for a response
  body), and reading paused withholds the stream's window credit. Closing the pipe is
  END_STREAM (the TCP close of RFC 6455 §7.1.1), aborting it RST_STREAM CANCEL; the client's
  END_STREAM is its EOF, and a reset of the stream (or the connection's loss) is the pipe's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.protocol import OPEN

from ..websocket import WebSocketConnection, WebSocketMessages, handshake_protocol

if TYPE_CHECKING:  # pragma: no cover
    from .stream import H2Stream

__all__ = ["H2WebSocket"]

# Response fields the handshake owns (an app's own copies are dropped), RFC 8441 §5 and the
# connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2).
_HANDSHAKE_FIELDS = frozenset({
    b"sec-websocket-accept", b"sec-websocket-extensions", b"sec-websocket-protocol",
    b"content-length", b"transfer-encoding", b"upgrade", b"connection", b"keep-alive",
    b"proxy-connection",
})
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class H2WebSocket(WebSocketMessages):
    """The WebSocket stream of one extended CONNECT, from the handshake to the close; once
    accepted, also the ``BytePipe`` its ``WebSocketConnection`` writes through."""

    accept_status = 200  # RFC 8441 §5: a 2xx opens the WebSocket

    __slots__ = ("stream", "handler", "scheme", "client", "proxy", "sockname",
                 "handshake_error",
                 "protocol", "ws", "_headers", "_refusal", "_hints", "_extensions_field",
                 "_early", "_eof", "_shutdown", "_deny_body", "_over")

    def __init__(self, stream: H2Stream, handler: Any,
                 headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.stream = stream
        self.handler = handler  # the adapter's (ws_stream.WebSocketHandler)
        self.scheme = stream.scheme
        self.client = stream.client
        self.proxy = stream.proxy
        self.sockname = stream.sockname
        self.protocol = handshake_protocol(stream.conn.config, _no_subprotocol)
        self.ws: WebSocketConnection | None = None
        self._headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                 for k, v in headers])
        self._refusal = ""
        self._hints: tuple[tuple[bytes, bytes], ...] = ()
        self._extensions_field: str | None = None
        self.handshake_error = self._check()
        self._early: list[bytes] = []  # DATA that came before the app accepted
        self._eof = False  # the client ended its side before the app accepted
        self._shutdown = False
        self._deny_body: list[bytes] = []
        self._over = False  # the pipe is gone (pipe_lost given)
        # Until accepted, the stream's window is not credited: early DATA is bounded by it.
        stream.pause_reading()

    def _check(self) -> int:
        """The handshake's checks (RFC 8441 §5, RFC 6455 §4.2.1 less what HTTP/2 drops):
        0, or the status that refuses it (its reason in ``_refusal``)."""
        versions = self._headers.get_all("Sec-WebSocket-Version")
        if not versions:
            self._refusal = "Missing Sec-WebSocket-Version header"
            return 400
        if versions != ["13"]:
            # RFC 6455 §4.4: an unsupported version gets 426 and the versions we speak.
            self._refusal = "Unsupported WebSocket version; this server speaks version 13."
            self._hints = ((b"sec-websocket-version", b"13"),)
            return 426
        try:
            self._extensions_field, self.protocol.extensions = \
                self.protocol.process_extensions(self._headers)
        except InvalidHandshake as exc:
            self._refusal = f"Invalid Sec-WebSocket-Extensions header: {exc}"
            return 400
        return 0

    # -- the handshake's answer ------------------------------------------------------------
    def reject_handshake(self) -> None:
        body = f"{self.handshake_error} {self._refusal}\n".encode("utf-8")
        self._respond(self.handshake_error, (_TEXT, *self._hints), body)

    def accept(self, subprotocol: str | None, headers: Any) -> bool:
        stream = self.stream
        if stream.closed:
            return False
        fields: list[tuple[Any, Any]] = []
        if subprotocol:
            fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        if self._extensions_field:
            fields.append((b"sec-websocket-extensions",
                           self._extensions_field.encode("latin-1")))
        for name, value in headers or ():
            key = name.lower() if isinstance(name, bytes) else str(name).lower().encode()
            if key not in _HANDSHAKE_FIELDS:
                fields.append((name, value))
        stream.start_response(200, fields)
        protocol = self.protocol
        protocol.subprotocol = subprotocol
        protocol.state = OPEN
        # The stream parsed the request, not websockets: restart its parser, which now
        # (state OPEN) reads frames.
        protocol.parser = protocol.parse()
        next(protocol.parser)
        ws = self.ws = WebSocketConnection(stream.conn.state, protocol, self.handler)
        early, self._early = b"".join(self._early), []
        ws.open(_Pipe(self), early)  # resumes reading: the stream's window is credited again
        if self._eof:
            ws.feed_eof()
        if self._shutdown:
            ws.shutdown()
        return True

    def deny(self, status: int, headers: Any) -> None:
        self.stream.start_response(status, headers)

    def deny_body(self, body: bytes, more: bool) -> None:
        stream = self.stream
        stream.send_data(body, not more)  # RuntimeError when longer than its Content-Length
        if not more:
            stream.cycle_done(self.handler)

    def refuse(self, status: int, reason: str) -> None:
        self.stream.fail_response(status, reason)

    def cut_short(self) -> None:
        self.stream.reset(ErrorCodes.CANCEL)

    def shutdown(self) -> None:
        if self.ws is not None:
            self.ws.shutdown()
        else:
            self._shutdown = True

    def _respond(self, status: int, fields: tuple[tuple[bytes, bytes], ...],
                 body: bytes) -> None:
        stream = self.stream
        stream.start_response(status, (*fields, (b"content-length", b"%d" % len(body))))
        stream.send_data(body, True)
        stream.cycle_done(self.handler)

    # -- the stream's side (its connection routes the stream's events here) ----------------
    def data(self, data: bytes) -> None:
        """DATA from the client (the stream counted it against its window)."""
        if self.ws is not None:
            self.ws.feed(data)
        elif not self.stream.done:
            self._early.append(data)

    def end(self) -> None:
        """The client's END_STREAM: it sends no more."""
        if self.ws is not None:
            self.ws.feed_eof()
        else:
            self._eof = True

    def lost(self) -> None:
        """The stream is gone: ended both ways, reset, or its connection lost."""
        if not self._over:
            self._over = True
            if self.ws is not None:
                self.ws.pipe_lost()


class _Pipe:
    """The ``BytePipe`` of an accepted ``H2WebSocket``: the stream's DATA frames."""

    __slots__ = ("socket", "stream")

    def __init__(self, socket: H2WebSocket) -> None:
        self.socket = socket
        self.stream = socket.stream

    @property
    def write_paused(self) -> bool:
        return self.stream.write_paused

    def write(self, data: bytes) -> None:
        # The outbox keeps a view of what it is given: a bytearray must not change under it.
        self.stream.send_data(data if data.__class__ is bytes else bytes(data), False)

    def writelines(self, parts: Any) -> None:
        send = self.stream.send_data
        for part in parts:
            send(part if part.__class__ is bytes else bytes(part), False)

    def close(self) -> None:
        """END_STREAM once what waits for the client's window is out."""
        stream = self.stream
        stream.done = True  # (nothing more is to come from the app)
        stream.send_data(b"", True)

    def abort(self) -> None:
        self.stream.reset(ErrorCodes.CANCEL)

    def write_buffer_size(self) -> int:
        return self.stream.unsent

    def pause_reading(self) -> None:
        self.stream.pause_reading()

    def resume_reading(self) -> None:
        self.stream.resume_reading()

    def add_drain_callback(self, callback: Callable[[], None]) -> None:
        self.stream.add_drain_callback(callback)


def _no_subprotocol() -> str | None:
    return None  # (accept() takes the app's choice itself)
