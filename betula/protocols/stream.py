"""The stream seam: what an interface adapter (ASGI, WSGI) may ask of the protocol that
carries one request/response exchange, and what the protocol tells the adapter.

The adapter speaks only to a ``Stream``; the protocol owns every byte of its framing. On
HTTP/1.1 the connection is the stream of its current exchange (``protocols/h1/connection.py``,
response side in ``protocols/h1/response.py``); ``protocols/memory.py`` offers the same
calls in memory, for embedded calls and adapter tests; an HTTP/2 stream is to offer them
too. Every argument is plain data (ints, bytes, tuples of byte pairs), so the calls can
also travel as messages through a queue, for a worker mode where the protocols run in one
interpreter and the adapters in another.

Where the adapters stand on it today, and what is still to move, is in the README's
architecture section.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Headers", "Stream", "StreamHandler"]

# Response header fields as the app gave them: (name, value) pairs of bytes or str. The
# protocol validates them (a RuntimeError for a bad name or value) and serializes them.
Headers = Iterable[tuple[Any, Any]]


class Stream(Protocol):
    """One exchange, as the adapter sees it."""

    scheme: str  # "http" or "https"
    client: tuple[str, int] | None  # the peer's address (None for a Unix socket)
    # A trusted proxy's connection (--proxy-headers): its ProxyTrust, for the adapters to
    # read the request's proxy headers with (proxy.py); None otherwise.
    proxy: Any
    sockname: tuple[str, int] | None  # the listener's address
    iface_cache: Any  # what the adapter keeps per connection (its scope template)
    response_status: int  # the status of the current response (for the access log)
    response_bytes: int  # body bytes of the current response sent so far
    # The current response's fields as the adapter gave them (None for the server's own
    # error answer): for the access log's {name}o atoms.
    response_headers: Any
    trailers_pending: bool  # after the last body bytes: trailers are still to come

    # -- response --------------------------------------------------------------------------
    def send_informational(self, status: int, headers: Headers) -> None:
        """A 1xx response (100 Continue, 103 Early Hints), sent at once where the
        protocol version has them."""

    def respond(self, status: int, headers: Headers, body: bytes,
                reason: str | None = None) -> None:
        """A whole response in one call (head and body in one write): the fast path."""

    def start_response(self, status: int, headers: Headers, trailers: bool = False,
                       reason: str | None = None) -> None:
        """The final status and headers; the protocol may hold them until the first body
        bytes so both leave together. ``trailers``: the app will send trailer fields.
        ``reason``: a phrase of the app's own (WSGI), where the protocol has one."""

    def send_data(self, body: bytes, end: bool) -> None:
        """Body bytes; ``end`` marks the last (trailers, if pending, follow). Raises
        RuntimeError when the body outgrows its Content-Length."""

    def send_trailers(self, headers: Headers, end: bool = True) -> None:
        """Trailer fields, gathered until ``end``."""

    async def send_file(self, fd: int, offset: int, count: int, end: bool) -> int:
        """Part of a file as body (zero copy where the transport allows); the bytes sent,
        fewer than ``count`` when the file is short or the client left."""

    def fail_response(self, status: int = 500, reason: str = "Internal Server Error") -> None:
        """Nothing was sent and nothing will be: answer ``status`` and end the exchange."""

    def cut_short(self) -> None:
        """Abort: the response started and will not complete (HTTP/1.1 closes the
        connection; HTTP/2 resets this stream only)."""

    def end_for_shutdown(self) -> None:
        """A graceful stop ends a streaming response as cleanly as the framing allows."""

    # -- flow control ----------------------------------------------------------------------
    write_paused: bool  # the client is not reading: wait in drain() before sending more

    async def drain(self) -> None:
        """Wait until the client reads again (or left)."""

    def add_drain_callback(self, callback: Any) -> None:
        """Call ``callback`` once the client reads again (at once if it does): for an
        adapter waiting outside the loop (a WSGI app thread)."""

    def pause_reading(self) -> None:
        """Hold the request body back (HTTP/1.1 stops reading; HTTP/2 withholds credit)."""

    def resume_reading(self) -> None:
        """The adapter consumed what it holds: more request body may come."""

    # -- the exchange's end ----------------------------------------------------------------
    def cycle_done(self, handler: Any) -> None:
        """The response is complete (or given up): the protocol moves on."""

    def body_finished(self, handler: Any) -> None:
        """The request body the adapter chose to discard has ended."""


class StreamHandler(Protocol):
    """The adapter's side: what the protocol calls on it (a "cycle")."""

    # What the protocol reads of its request (written by the protocol alone).
    http_version: str
    is_head: bool
    te_trailers: bool
    keep_alive: bool
    started: bool
    body_complete: bool
    response_started: bool
    response_complete: bool
    disconnected: bool

    def start(self) -> None:
        """Run the app: this exchange's turn has come."""

    def feed_body(self, data: bytes) -> None:
        """Request body bytes."""

    def end_body(self) -> None:
        """The request body is complete."""

    def discard_body(self) -> None:
        """The response is done before the body was read: drop the rest."""

    def connection_lost(self) -> None:
        """The client left (or the exchange was reset)."""

    def server_shutdown(self) -> None:
        """A graceful stop began."""
