"""ASGI 3 ``websocket`` interface (spec 2.4): one ``WebSocketCycle`` per connection.

Until the app answers ``websocket.connect`` the cycle stands in the HTTP/1.1 connection like
an HTTP request cycle (it is answered in pipeline order, it is told of a disconnect). The
app then either accepts, and the cycle hands the transport to a ``WebSocketConnection``
(framing), or refuses: ``websocket.close`` gives 403, a denial response
(``websocket.http.response.*``) gives the app's own HTTP response, an exception gives 500.
After accept: messages reach ``receive()`` from a bounded queue (reading pauses past
``--ws-max-queue``), ``send()`` waits while the client is not reading, an app exception
closes with 1011 and the server's graceful stop with 1001.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ..http_common import client_label, request_target
from ..protocols.h1.framing import (
    STATUS_LINES,
    closing_text_response,
    encode_headers,
    status_line,
)
from ..protocols.websocket import (
    INTERNAL_ERROR,
    NORMAL,
    ConnectionClosed,
    WebSocketConnection,
    handshake_protocol,
    open_handshake,
)
from .http import ClientDisconnected, caused_by_disconnect, target_parts

if TYPE_CHECKING:  # pragma: no cover
    from ..protocols.h1 import HTTP1Connection
    from ..routing import Endpoint
    from ..state import WorkerState

__all__ = ["WebSocketCycle", "WS_EXTENSIONS"]

logger = logging.getLogger("betula.error")
access_logger = logging.getLogger("betula.access")

WS_EXTENSIONS: dict[str, dict[str, Any]] = {"websocket.http.response": {}}
_ASGI = {"version": "3.0", "spec_version": "2.4"}
# Headers of the 101 answer that the handshake owns; an app's own copies are dropped.
_HANDSHAKE_HEADERS = frozenset({
    "upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions",
    "sec-websocket-protocol", "content-length", "transfer-encoding", "date", "server",
})

# Cycle states.
_CONNECTING, _OPEN, _CLOSED, _RESPONDING = range(4)


class WebSocketCycle:
    """One WebSocket connection between a client and an ASGI app."""

    # What the HTTP/1.1 connection reads of a request cycle.
    started = False
    response_started = False
    response_complete = False
    disconnected = False
    body_complete = True
    keep_alive = False  # if the app does not accept, the connection ends with its answer
    task: asyncio.Task[None] | None = None

    def __init__(self, state: WorkerState, endpoint: Endpoint, conn: HTTP1Connection,
                 method: bytes, url: bytes, headers: tuple[tuple[bytes, bytes], ...],
                 http_version: str, *_rest: Any) -> None:
        self.state = state
        self.endpoint = endpoint
        self.conn = conn
        path, raw_path, query = target_parts(url, endpoint)
        subprotocols = [p.strip() for name, value in headers
                        if name == b"sec-websocket-protocol"
                        for p in value.decode("latin-1").split(",") if p.strip()]
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": _ASGI,
            "http_version": http_version,
            "scheme": "wss" if conn.scheme == "https" else "ws",
            "server": conn.sockname,
            "client": conn.client,
            "root_path": endpoint.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": list(headers),  # the app's own copy (the connection's is shared)
            "subprotocols": subprotocols,
            "extensions": WS_EXTENSIONS.copy(),
        }
        if endpoint.lifespan_state is not None:
            scope["state"] = endpoint.lifespan_state.copy()
        self.scope = scope
        self._state = _CONNECTING
        self._subprotocol: str | None = None
        self.protocol = handshake_protocol(state.config, lambda: self._subprotocol)
        target = url.decode("latin-1") if url[:1] == b"/" else "/"
        self._request, self._refusal = open_handshake(
            self.protocol, method.decode("ascii", "replace"), target, http_version, headers)
        self.ws: WebSocketConnection | None = None
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queue = state.config.ws_max_queue
        self._waiter: asyncio.Future[None] | None = None
        self._connect_delivered = False
        self._close_code = 1006
        self._close_reason = ""
        self._shutdown = False
        self._deny_status = 0
        self._deny_headers = b""
        self._deny_length: int | None = None
        self._deny_body: list[bytes] = []

    # -- the HTTP/1.1 connection's side (before the handshake completes) -----------------
    def feed_body(self, data: bytes) -> None:
        """A handshake request has no body; bytes given as one are dropped."""

    def end_body(self) -> None:
        pass

    def discard_body(self) -> None:
        pass

    def connection_lost(self) -> None:
        self.disconnected = True
        if self._state != _CLOSED:
            self._close_code, self._close_reason = 1006, ""
        self._wake()

    def server_shutdown(self) -> None:
        # Still in the handshake: once accepted, the connection closes with 1001 at once.
        self._shutdown = True

    # -- running the app -------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        refusal = self._refusal
        if refusal is not None:
            # Not a valid WebSocket handshake: websockets' answer (400, 405, 426 ...).
            self.response_started = self.response_complete = True
            self.conn.write(self._render_refusal(refusal))
            self._access(refusal.status_code)
            self.conn.close()
            return
        state = self.state
        state.active.add(self)
        state.requests += 1
        self.task = state.new_task(self.run_asgi(self.endpoint.app))

    def _render_refusal(self, response: Any) -> bytes:
        """websockets' refusal (status, reason text, its hints such as ``Allow`` or
        ``Sec-WebSocket-Version``) in the server's own framing: Date and Server as the
        settings say, then the connection closes."""
        hints = b"".join(
            b"%s: %s\r\n" % (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.raw_items()
            if name.lower() not in ("date", "server", "connection", "content-length",
                                    "content-type"))
        return closing_text_response(response.status_code, response.body or b"",
                                     self.conn.shared.default_headers, hints)

    async def run_asgi(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.state.active.discard(self)
            self._app_failed(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        self.state.active.discard(self)
        state = self._state
        if state == _CONNECTING:
            if not self.disconnected:
                logger.error("ASGI callable returned without accepting or closing the "
                             "WebSocket")
                self._refuse(500)
        elif state == _OPEN:
            self.ws.close(NORMAL)  # type: ignore[union-attr]
            self._state = _CLOSED
        elif state == _RESPONDING:
            logger.error("ASGI callable returned without completing the denial response")
            self._finish_denial(cut_short=True)

    def _app_failed(self, exc: BaseException) -> None:
        if self.disconnected and (caused_by_disconnect(exc) or
                                  isinstance(exc, asyncio.CancelledError)):
            logger.debug("WebSocket ended by client disconnect: %r", exc)
            self._end()
            return
        if isinstance(exc, asyncio.CancelledError):
            logger.warning("WebSocket cancelled: %s", self.scope["path"])
        else:
            logger.error("Exception in ASGI application", exc_info=exc)
        state = self._state
        if state == _CONNECTING:
            self._refuse(500)
        elif state == _OPEN:
            self._state = _CLOSED
            self.ws.close(INTERNAL_ERROR)  # type: ignore[union-attr]
        elif state == _RESPONDING:
            self._finish_denial(cut_short=True)

    def _end(self) -> None:
        if self._state == _CONNECTING or self._state == _RESPONDING:
            self.response_complete = True
            self.conn.close()
        elif self._state == _OPEN and self.ws is not None:
            self.ws.close(NORMAL)
        self._state = _CLOSED

    def _refuse(self, status: int) -> None:
        """Answer the handshake with an HTTP error and close (403 for websocket.close)."""
        self._state = _CLOSED
        self.response_started = self.response_complete = True
        if not self.disconnected:
            reason = "WebSocket connection refused" if status == 403 else \
                "Internal Server Error"
            self.conn.write(self.conn.shared.error_response(status, reason))
            self._access(status)
        self.conn.close()

    # -- events from the WebSocket connection --------------------------------------------
    def on_message(self, data: str | bytes) -> None:
        queue = self._queue
        if data.__class__ is str:
            queue.append({"type": "websocket.receive", "text": data})
        else:
            queue.append({"type": "websocket.receive", "bytes": data})
        if len(queue) >= self._max_queue:
            self.ws.pause_reading()  # type: ignore[union-attr]
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_close(self, code: int, reason: str) -> None:
        self.disconnected = True
        if self._state == _OPEN:
            self._close_code, self._close_reason = code, reason
            self._state = _CLOSED
        self._wake()

    def client_label(self) -> str:
        return client_label(self.scope)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- receive -------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        while True:
            queue = self._queue
            if queue:
                message = queue.popleft()
                if not queue and self.ws is not None and self.ws._read_paused:
                    self.ws.resume_reading()
                return message
            if not self._connect_delivered:
                self._connect_delivered = True
                return {"type": "websocket.connect"}
            if self._state == _CLOSED or self.disconnected:
                return {"type": "websocket.disconnect", "code": self._close_code,
                        "reason": self._close_reason}
            waiter = self.state.loop.create_future()
            self._waiter = waiter
            await waiter

    # -- send ----------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            ws = self.ws
            if self._state != _OPEN or ws is None:
                if self._state == _CONNECTING:
                    raise RuntimeError("websocket.send before websocket.accept")
                raise ClientDisconnected("the WebSocket connection is closed")
            text = message.get("text")
            data = message.get("bytes") if text is None else text
            if data is None:
                raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            try:
                ws.send(data)
            except ConnectionClosed:
                raise ClientDisconnected("the WebSocket connection is closed") from None
            if ws.write_paused:
                await ws.drain()
                if ws._closed:
                    raise ClientDisconnected("the WebSocket connection is closed")
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close(message)
        elif kind == "websocket.http.response.start":
            self._deny_start(message)
        elif kind == "websocket.http.response.body":
            self._deny_body_part(message)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on a websocket "
                               "connection")

    def _accept(self, message: dict[str, Any]) -> None:
        if self._state != _CONNECTING:
            raise RuntimeError("websocket.accept sent twice or after close")
        if self.disconnected:
            self._state = _CLOSED
            raise ClientDisconnected("client disconnected during the handshake")
        self._subprotocol = message.get("subprotocol")
        protocol = self.protocol
        response = protocol.accept(self._request)
        if response.status_code != 101:  # pragma: no cover - checked in open_handshake
            self._state = _CLOSED
            self.response_started = self.response_complete = True
            self.conn.write(self._render_refusal(response))
            self.conn.close()
            return
        headers = response.headers
        del headers["Date"]
        for name, value in message.get("headers") or ():
            name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            if name.lower() not in _HANDSHAKE_HEADERS:
                headers[name] = value.decode("latin-1") if isinstance(value, bytes) \
                    else str(value)
        protocol.send_response(response)  # state OPEN
        # The HTTP/1.1 connection parsed the request, not websockets: restart its parser,
        # which now (state OPEN) reads frames instead of waiting for a request.
        protocol.parser = protocol.parse()
        next(protocol.parser)
        head = protocol.data_to_send()[0]
        # The server's Date and Server lines, from the once-a-second cache.
        first_line_end = head.index(b"\r\n") + 2
        head = head[:first_line_end] + self.conn.shared.default_headers + head[first_line_end:]
        self.response_started = self.response_complete = True
        self._state = _OPEN
        self._access(101)
        ws = self.ws = WebSocketConnection(self.state, protocol, self)
        conn = self.conn
        conn.write(head)
        conn.upgrade_to(ws)
        if self._shutdown:
            ws.shutdown()

    def _close(self, message: dict[str, Any]) -> None:
        state = self._state
        if state == _CONNECTING:
            self._refuse(403)  # closing before accept: the spec's 403
            return
        if state == _RESPONDING:
            raise RuntimeError("websocket.close during a denial response")
        if state == _CLOSED:
            return  # already closed (by the client or before): nothing to send
        code = message.get("code") or NORMAL
        reason = message.get("reason") or ""
        encoded = reason.encode("utf-8")
        if len(encoded) > 123:  # a close frame's payload is at most 125 bytes
            reason = encoded[:123].decode("utf-8", "ignore")
        self._state = _CLOSED
        self._close_code, self._close_reason = code, reason
        try:
            self.ws.close(code, reason)  # type: ignore[union-attr]
        except Exception as exc:  # an invalid close code (websockets checks RFC 6455 §7.4)
            self.ws.close(INTERNAL_ERROR)  # type: ignore[union-attr]
            raise RuntimeError(f"websocket.close: {exc}") from None

    # -- denial response (the websocket.http.response extension) -------------------------
    def _deny_start(self, message: dict[str, Any]) -> None:
        if self._state != _CONNECTING:
            raise RuntimeError("websocket.http.response.start after accept, close or start")
        status = message["status"]
        if status.__class__ is not int or not 200 <= status <= 999:
            raise RuntimeError(f"invalid denial response status {status!r}")
        block, length, flags, _trailer = encode_headers(message.get("headers", ()))
        self._deny_length = length
        self._deny_status = status
        self._deny_headers = (STATUS_LINES.entries.get(status) or status_line(status)) + \
            self.conn.shared.defaults_for(flags) + block
        self._state = _RESPONDING
        self.response_started = True

    def _deny_body_part(self, message: dict[str, Any]) -> None:
        if self._state != _RESPONDING:
            raise RuntimeError("websocket.http.response.body without a started response")
        self._deny_body.append(message.get("body", b""))
        if not message.get("more_body", False):
            self._finish_denial()

    def _finish_denial(self, cut_short: bool = False) -> None:
        """Send the denial response whole (bodies are short: collected, then sent with their
        Content-Length); an app that fails half-way ends the connection instead."""
        self._state = _CLOSED
        self.response_complete = True
        if not cut_short and not self.disconnected:
            body = b"".join(self._deny_body)
            length = self._deny_length
            if length is None:
                head = self._deny_headers + b"content-length: %d\r\n" % len(body)
            elif length == len(body):
                head = self._deny_headers  # the app's own Content-Length is right
            else:
                self.conn.close()
                raise RuntimeError(f"denial response body is {len(body)} bytes, its "
                                   f"Content-Length says {length}")
            self.conn.write(head + b"connection: close\r\n\r\n" + body)
            self._access(self._deny_status)
        self.conn.close()

    def _access(self, status: int) -> None:
        if self.state.access_log is not None:
            access_logger.info('%s - "WebSocket %s" %d', client_label(self.scope),
                               request_target(self.scope), status)
