"""ASGI 3 ``websocket`` interface (spec 2.4): one ``WebSocketCycle`` per connection.

The cycle speaks to a WebSocket stream (``protocols/ws_stream.py``), which its HTTP stream
hands out (``upgrade_to``): it writes no protocol bytes. Until the app answers
``websocket.connect`` the cycle stands in the protocol like an HTTP request cycle (it is
answered in pipeline order, it is told of a disconnect). The app then either accepts, or
refuses: ``websocket.close`` gives 403, a denial response (``websocket.http.response.*``)
gives the app's own HTTP response, an exception gives 500.
After accept: messages reach ``receive()`` from a bounded queue (reading pauses past
``--ws-max-queue``), ``send()`` waits while the client is not reading, an app exception
closes with 1011 and the server's graceful stop with 1001.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ..http_common import client_label
from ..protocols.ws_stream import INTERNAL_ERROR, NORMAL, ConnectionClosed
from ..proxy import apply_to_scope
from .http import ClientDisconnected, caused_by_disconnect, target_parts

if TYPE_CHECKING:  # pragma: no cover
    from ..endpoint import Endpoint
    from ..protocols.ws_stream import WebSocketStream
    from ..worker_state import WorkerState

__all__ = ["WebSocketCycle", "WS_EXTENSIONS"]

logger = logging.getLogger("betula.error")

WS_EXTENSIONS: dict[str, dict[str, Any]] = {"websocket.http.response": {}}
_ASGI = {"version": "3.0", "spec_version": "2.4"}

# Cycle states.
_CONNECTING, _OPEN, _CLOSED, _RESPONDING = range(4)


class WebSocketCycle:
    """One WebSocket connection between a client and an ASGI app."""

    # What the protocol reads of a request cycle.
    is_websocket = True  # (the metrics tell WebSocket sessions from requests in flight)
    started = False
    response_started = False
    response_complete = False
    disconnected = False
    body_complete = True
    is_head = False
    keep_alive = False  # if the app does not accept, the connection ends with its answer
    task: asyncio.Task[None] | None = None

    def __init__(self, state: WorkerState, endpoint: Endpoint, http_stream: Any,
                 method: bytes, url: bytes, headers: tuple[tuple[bytes, bytes], ...],
                 http_version: str, *_rest: Any) -> None:
        self.state = state
        self.endpoint = endpoint
        stream: WebSocketStream = http_stream.upgrade_to(self, method, url, headers,
                                                         http_version)
        self.stream = stream
        path, raw_path, query = target_parts(url, endpoint)
        subprotocols = [p.strip() for name, value in headers
                        if name == b"sec-websocket-protocol"
                        for p in value.decode("latin-1").split(",") if p.strip()]
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": _ASGI,
            "http_version": http_version,
            "scheme": "wss" if stream.scheme == "https" else "ws",
            "server": stream.sockname,
            "client": stream.client,
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
        if stream.proxy is not None:  # a trusted proxy: the client, scheme, host it says
            apply_to_scope(scope, stream.proxy)
        self.scope = scope
        self._state = _CONNECTING
        self._queue: deque[dict[str, Any]] = deque()
        self._max_queue = state.config.ws_max_queue
        self._paused = False  # the stream was told to read no more (queue full)
        self._waiter: asyncio.Future[None] | None = None
        self._connect_delivered = False
        self._close_code = 1006
        self._close_reason = ""
        self._deny_status = 0

    # -- the protocol's side (before the handshake completes) --------------------------------
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
        self.stream.shutdown()

    # -- running the app -------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        status = self.stream.handshake_error
        if status:
            # Not a valid WebSocket handshake: the protocol's answer (400, 405, 426 ...).
            self.response_started = self.response_complete = True
            self.stream.reject_handshake()
            self._access(status)
            return
        state = self.state
        state.active.add(self)
        state.requests += 1
        self.task = state.new_task(self.run_asgi(self.endpoint.app))

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
            self.stream.close(NORMAL, "")
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
            self.stream.close(INTERNAL_ERROR, "")
        elif state == _RESPONDING:
            self._finish_denial(cut_short=True)

    def _end(self) -> None:
        if self._state == _CONNECTING or self._state == _RESPONDING:
            self.response_complete = True
            self.stream.cut_short()
        elif self._state == _OPEN:
            self.stream.close(NORMAL, "")
        self._state = _CLOSED

    def _refuse(self, status: int) -> None:
        """Answer the handshake with an HTTP error and close (403 for websocket.close)."""
        self._state = _CLOSED
        self.response_started = self.response_complete = True
        if self.disconnected:
            self.stream.cut_short()
            return
        reason = "WebSocket connection refused" if status == 403 else "Internal Server Error"
        self.stream.refuse(status, reason)
        self._access(status)

    # -- events from the WebSocket stream (ws_stream.WebSocketHandler) ----------------------
    def on_message(self, data: str | bytes) -> None:
        metrics = self.state.metrics
        if metrics is not None:
            metrics.ws_messages_in += 1
        queue = self._queue
        if data.__class__ is str:
            queue.append({"type": "websocket.receive", "text": data})
        else:
            queue.append({"type": "websocket.receive", "bytes": data})
        if len(queue) >= self._max_queue:
            self._paused = True
            self.stream.pause_reading()
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
                if not queue and self._paused:
                    self._paused = False
                    self.stream.resume_reading()
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
            if self._state != _OPEN:
                if self._state == _CONNECTING:
                    raise RuntimeError("websocket.send before websocket.accept")
                raise ClientDisconnected("the WebSocket connection is closed")
            text = message.get("text")
            data = message.get("bytes") if text is None else text
            if data is None:
                raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            stream = self.stream
            try:
                paused = stream.send(data)
            except ConnectionClosed:
                raise ClientDisconnected("the WebSocket connection is closed") from None
            metrics = self.state.metrics
            if metrics is not None:
                metrics.ws_messages_out += 1
            if paused:
                await stream.drain()
                if stream.closed:
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
        self.response_started = self.response_complete = True
        # OPEN first: bytes that came with the handshake reach on_message during accept.
        self._state = _OPEN
        accepted = self.stream.accept(message.get("subprotocol"), message.get("headers") or ())
        if not accepted:  # pragma: no cover - the handshake was checked before the app ran
            self._state = _CLOSED
            return
        metrics = self.state.metrics
        if metrics is not None:
            metrics.ws_opened += 1
        self._access(self.stream.accept_status)

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
            self.stream.close(code, reason)
        except Exception as exc:  # an invalid close code (websockets checks RFC 6455 §7.4)
            self.stream.close(INTERNAL_ERROR, "")
            raise RuntimeError(f"websocket.close: {exc}") from None

    # -- denial response (the websocket.http.response extension) -------------------------
    def _deny_start(self, message: dict[str, Any]) -> None:
        if self._state != _CONNECTING:
            raise RuntimeError("websocket.http.response.start after accept, close or start")
        status = message["status"]
        if status.__class__ is not int or not 200 <= status <= 999:
            raise RuntimeError(f"invalid denial response status {status!r}")
        self.stream.deny(status, message.get("headers", ()))
        self._deny_status = status
        self._state = _RESPONDING
        self.response_started = True

    def _deny_body_part(self, message: dict[str, Any]) -> None:
        if self._state != _RESPONDING:
            raise RuntimeError("websocket.http.response.body without a started response")
        body = message.get("body", b"")
        if message.get("more_body", False):
            self.stream.deny_body(body, True)
        else:
            self._finish_denial(body)

    def _finish_denial(self, body: bytes = b"", cut_short: bool = False) -> None:
        """The last body part ends the denial; an app that fails half-way (or a client that
        left) ends the stream without it."""
        self._state = _CLOSED
        self.response_complete = True
        if cut_short or self.disconnected:
            self.stream.cut_short()
            return
        self.stream.deny_body(body, False)  # RuntimeError: the body and its length disagree
        self._access(self._deny_status)

    def _access(self, status: int) -> None:
        access = self.state.access_log
        if access is not None:
            access.websocket(self.scope, status, None)
