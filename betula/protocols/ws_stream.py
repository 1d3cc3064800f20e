"""The WebSocket stream seam: what an interface adapter may ask of the protocol that carries
one WebSocket, from its opening handshake to its close, and what the protocol tells it.

The adapter (``asgi/websocket.py``) knows neither the handshake's bytes nor the framing: the
HTTP stream of a handshake request gives it a ``WebSocketStream`` (``upgrade_to``); that
stream answers the handshake (accept, deny, refuse) in the protocol's own terms, then carries
the messages (``protocols/websocket.py`` frames them over a byte pipe). On HTTP/1.1 the stream
is ``protocols/h1/upgrade.py``'s: a 101 response, then the connection's transport becomes
the pipe. An HTTP/2 stream (RFC 8441) is to offer the same calls: accept is a 200 HEADERS
frame, a denial is an ordinary response on the stream, the pipe is the stream's DATA frames.
As in ``stream.py``, every argument is plain data (ints, str, bytes, tuples of pairs), so the
calls can also travel as messages between interpreters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = [
    "ABNORMAL", "GOING_AWAY", "INTERNAL_ERROR", "INVALID_DATA", "MESSAGE_TOO_BIG", "NORMAL",
    "PROTOCOL_ERROR", "ConnectionClosed",
    "WebSocketHandler", "WebSocketStream",
]

# Close codes (RFC 6455 §7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, ABNORMAL, INVALID_DATA = 1000, 1001, 1002, 1006, 1007
MESSAGE_TOO_BIG, INTERNAL_ERROR = 1009, 1011

# Response header fields as the app gave them: (name, value) pairs of bytes or str.
Headers = Iterable[tuple[Any, Any]]


class ConnectionClosed(Exception):
    """A message was sent on a connection that is closing or closed."""


class WebSocketStream(Protocol):
    """One WebSocket, as the adapter sees it.

    The HTTP stream whose request is an opening handshake hands it out:
    ``stream.upgrade_to(handler, method, url, headers, http_version)`` (the request as the
    protocol gave it to the adapter's factory; ``handler`` is a ``WebSocketHandler``)."""

    scheme: str  # "http" or "https" (the adapter's "ws" or "wss")
    proxy: Any  # a trusted proxy's ProxyTrust, or None (see protocols/stream.py)
    client: tuple[str, int] | None  # the peer's address (None for a Unix socket)
    sockname: tuple[str, int] | None  # the listener's address
    handshake_error: int  # 0, or the status that refuses an invalid handshake (400, 426 ...)
    accept_status: int  # the status accepting answers with (HTTP/1.1: 101; HTTP/2: 200)

    # -- the handshake's answer (once) -------------------------------------------------------
    def reject_handshake(self) -> None:
        """The handshake is invalid (``handshake_error``): answer with the protocol's refusal
        (its hints too, such as ``Allow`` or ``Sec-WebSocket-Version``) and end."""

    def accept(self, subprotocol: str | None, headers: Headers) -> bool:
        """Open the WebSocket with the app's subprotocol and extra response headers (the
        ones the handshake owns are dropped). From now on the handler gets messages.
        False: the handshake failed after all (it was answered and the stream ended)."""

    def deny(self, status: int, headers: Headers) -> None:
        """Start an HTTP response instead of accepting (raises RuntimeError for invalid
        headers); its body follows in ``deny_body``."""

    def deny_body(self, body: bytes, more: bool) -> None:
        """Body of the denial response; the last part (``more`` False) ends the stream.
        Raises RuntimeError when the body disagrees with the app's Content-Length."""

    def refuse(self, status: int, reason: str) -> None:
        """Answer the handshake with an error (403: the app closed before accepting, 500:
        it failed) and end."""

    def cut_short(self) -> None:
        """End without a (complete) answer: the client left, or the app failed half-way
        through a denial (HTTP/1.1 closes the connection; HTTP/2 resets the stream)."""

    def shutdown(self) -> None:
        """Graceful stop: an open WebSocket closes with 1001, one still in its handshake as
        soon as it is accepted."""

    # -- messages (after accept) ---------------------------------------------------------------
    def send(self, message: str | bytes) -> bool:
        """Send one message (str as text, bytes as binary); raises ConnectionClosed once the
        connection is closing. True when the client is not reading: ``drain()`` first."""

    async def drain(self) -> None:
        """Wait until the client reads again, or the connection closes."""

    closed: bool  # the connection is closed or closing: nothing more goes out

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (raises for a code RFC 6455 forbids)."""

    def pause_reading(self) -> None:
        """The handler holds enough messages: read no more for now."""

    def resume_reading(self) -> None:
        """The handler consumed what it held: messages may come again."""


class WebSocketHandler(Protocol):
    """The adapter's side: what the WebSocket stream calls on it once accepted."""

    def on_message(self, data: str | bytes) -> None:
        """A whole message: str for text, bytes for binary."""

    def on_close(self, code: int, reason: str) -> None:
        """Once: the connection is closing (the client's code, ours when we failed it, or
        1006 when it dropped)."""

    def client_label(self) -> str:
        """``host:port`` of the client, for log lines."""
