"""A WebSocket on HTTP/1.1 (RFC 6455 §4): the opening handshake's answers and the pipe after.

``HTTP1WebSocket`` is the ``ws_stream.WebSocketStream`` of one upgrade request
(``HTTP1Connection.upgrade_to``): it checks the handshake with websockets, and answers it in
Betula's framing: the 101 Switching Protocols (with the server's Date/Server lines), the
refusal of an invalid handshake, the app's denial response (``connection: close``), the 403
or 500 when the app closes or fails before accepting. On accept the connection's transport
becomes an ``HTTP1Pipe``, the ``BytePipe`` that ``protocols/websocket.py`` frames over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from ..flow import WRITE_HIGH_WATER, WRITE_LOW_WATER, WriteFlow
from ..websocket import WebSocketConnection, WebSocketMessages, handshake_protocol
from .framing import STATUS_LINES, closing_text_response, encode_headers, status_line

if TYPE_CHECKING:  # pragma: no cover
    from .connection import HTTP1Connection

__all__ = ["HTTP1Pipe", "HTTP1WebSocket", "open_handshake"]

# Headers of the 101 answer that the handshake owns; an app's own copies are dropped.
_HANDSHAKE_HEADERS = frozenset({
    "upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions",
    "sec-websocket-protocol", "content-length", "transfer-encoding", "date", "server",
})
# What websockets puts in a refusal that the server's own framing provides.
_REFUSAL_OWN = ("date", "server", "connection", "content-length", "content-type")


def open_handshake(protocol: ServerProtocol, method: str, path: str, http_version: str,
                   headers: tuple[tuple[bytes, bytes], ...]) -> tuple[Request, Response | None]:
    """Check a handshake request; returns the request and, when it is not a valid WebSocket
    handshake, the HTTP response that refuses it (400, 405, 426, 505 ...)."""
    request = Request(path, Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                     for k, v in headers]),
                      method=method, protocol="HTTP/" + http_version)
    try:
        protocol.process_request(request)
    except Exception:  # the same checks accept() runs; let it build the refusal
        response = protocol.accept(request)
        versions = request.headers.get_all("Sec-WebSocket-Version")
        if response.status_code == 400 and versions and versions != ["13"]:
            # RFC 6455 §4.4: an unsupported version gets 426 and the versions we speak.
            response = protocol.reject(426, "Unsupported WebSocket version; this server "
                                       "speaks version 13.\n")
            response.headers["Sec-WebSocket-Version"] = "13"
        return request, response
    return request, None


def render_refusal(response: Response, defaults: bytes) -> bytes:
    """websockets' refusal (status, reason text, its hints such as ``Allow`` or
    ``Sec-WebSocket-Version``) in the server's own framing: Date and Server as the settings
    say (``defaults``), then the connection closes."""
    hints = b"".join(
        b"%s: %s\r\n" % (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.raw_items()
        if name.lower() not in _REFUSAL_OWN)
    return closing_text_response(response.status_code, response.body or b"", defaults, hints)


class HTTP1WebSocket(WebSocketMessages):
    """The WebSocket stream of one HTTP/1.1 upgrade request, from the handshake to the close."""

    accept_status = 101  # Switching Protocols

    __slots__ = ("conn", "handler", "scheme", "client", "proxy", "sockname", "handshake_error",
                 "protocol", "ws", "_take_over", "_request", "_refusal", "_subprotocol",
                 "_shutdown", "_deny_head", "_deny_length", "_deny_body")

    def __init__(self, conn: HTTP1Connection, take_over: Callable[[Any], None], handler: Any,
                 method: bytes, url: bytes, headers: tuple[tuple[bytes, bytes], ...],
                 http_version: str) -> None:
        self.conn = conn
        self.handler = handler  # the adapter's (ws_stream.WebSocketHandler)
        self._take_over = take_over  # hands the transport to a protocol, with early bytes
        self.scheme = conn.scheme
        self.client = conn.client
        self.proxy = conn.proxy
        self.sockname = conn.sockname
        self._subprotocol: str | None = None
        self.protocol = handshake_protocol(conn.config, self._selected_subprotocol)
        target = url.decode("latin-1") if url[:1] == b"/" else "/"
        self._request, self._refusal = open_handshake(
            self.protocol, method.decode("ascii", "replace"), target, http_version, headers)
        self.handshake_error = 0 if self._refusal is None else self._refusal.status_code
        self.ws: WebSocketConnection | None = None
        self._shutdown = False
        self._deny_head = b""
        self._deny_length: int | None = None
        self._deny_body: list[bytes] = []

    def _selected_subprotocol(self) -> str | None:
        return self._subprotocol

    # -- the handshake's answer ------------------------------------------------------------
    def reject_handshake(self) -> None:
        conn = self.conn
        conn.write(render_refusal(self._refusal, conn.shared.default_headers))  # type: ignore[arg-type]
        conn.close()

    def accept(self, subprotocol: str | None, headers: Any) -> bool:
        self._subprotocol = subprotocol
        protocol = self.protocol
        conn = self.conn
        response = protocol.accept(self._request)
        if response.status_code != 101:  # pragma: no cover - checked in open_handshake
            conn.write(render_refusal(response, conn.shared.default_headers))
            conn.close()
            return False
        fields = response.headers
        del fields["Date"]
        for name, value in headers or ():
            name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            if name.lower() not in _HANDSHAKE_HEADERS:
                fields[name] = value.decode("latin-1") if isinstance(value, bytes) \
                    else str(value)
        protocol.send_response(response)  # state OPEN
        # The HTTP/1.1 connection parsed the request, not websockets: restart its parser,
        # which now (state OPEN) reads frames instead of waiting for a request.
        protocol.parser = protocol.parse()
        next(protocol.parser)
        head = protocol.data_to_send()[0]
        # The server's Date and Server lines, from the once-a-second cache.
        first_line_end = head.index(b"\r\n") + 2
        head = head[:first_line_end] + conn.shared.default_headers + head[first_line_end:]
        ws = self.ws = WebSocketConnection(conn.state, protocol, self.handler)
        conn.write(head)
        self._take_over(HTTP1Pipe(ws))
        if self._shutdown:
            ws.shutdown()
        return True

    def deny(self, status: int, headers: Any) -> None:
        block, length, flags, _trailer = encode_headers(headers)
        self._deny_length = length
        self._deny_head = (STATUS_LINES.entries.get(status) or status_line(status)) + \
            self.conn.shared.defaults_for(flags) + block

    def deny_body(self, body: bytes, more: bool) -> None:
        """Bodies of denials are short: collected, then sent whole with their
        Content-Length."""
        self._deny_body.append(body)
        if more:
            return
        body = b"".join(self._deny_body)
        length = self._deny_length
        conn = self.conn
        if length is None:
            head = self._deny_head + b"content-length: %d\r\n" % len(body)
        elif length == len(body):
            head = self._deny_head  # the app's own Content-Length is right
        else:
            conn.close()
            raise RuntimeError(f"denial response body is {len(body)} bytes, its "
                               f"Content-Length says {length}")
        conn.write(head + b"connection: close\r\n\r\n" + body)
        conn.close()

    def refuse(self, status: int, reason: str) -> None:
        conn = self.conn
        conn.write(conn.shared.error_response(status, reason))
        conn.close()

    def cut_short(self) -> None:
        self.conn.close()

    def shutdown(self) -> None:
        if self.ws is not None:
            self.ws.shutdown()
        else:
            self._shutdown = True


class HTTP1Pipe(WriteFlow, asyncio.Protocol):
    """The HTTP/1.1 transport after the 101: its protocol from now on, and the WebSocket
    connection's ``BytePipe``. Bytes read go to the connection's ``feed``."""

    __slots__ = ("ws", "loop", "transport", "data_received", "write", "writelines",
                 "write_paused", "_closed", "_drain_waiters", "_drain_callbacks")

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        # asyncio.Protocol.data_received is the connection's own feed: no call in between.
        self.data_received = ws.feed
        self.loop = ws.loop
        self.transport: Any = None
        self.write_paused = False
        self._closed = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._drain_callbacks: list[Callable[[], None]] = []

    def attach(self, transport: Any, data: bytes) -> None:
        """Take the transport over (reading paused); ``data`` was read past the handshake."""
        self.transport = transport
        # The transport's own methods: a frame's write costs no call of ours.
        self.write = transport.write
        self.writelines = transport.writelines
        transport.set_protocol(self)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        self.ws.open(self, data)  # resumes reading

    # -- asyncio.Protocol ------------------------------------------------------------------
    def eof_received(self) -> bool | None:
        self.ws.feed_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.ws.pipe_lost()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # -- BytePipe --------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self.transport.close()

    def abort(self) -> None:
        self._closed = True
        self.transport.abort()

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()
