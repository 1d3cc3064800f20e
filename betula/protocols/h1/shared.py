"""What the HTTP/1 connections of one worker share: their caches and the server's lines."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from ...cache import BoundedCache
from ...proxy import ProxyTrust
from .framing import error_response

__all__ = ["HTTP1Shared", "HEAD_CACHE_MAX", "REPLAY_MAX"]

# Analysed heads kept per worker (on_headers_complete): at most this many.
HEAD_CACHE_MAX = 1024
# Heads kept for replay per worker (data_received): at most this many.
REPLAY_MAX = 1024


class HTTP1Shared:
    """Per worker: the analysed heads and the heads kept for replay (``connection.py``),
    the Date/Server lines (refreshed by the worker's tick), the connections holding a head
    for the first body bytes or streamed chunks (flushed once per loop turn)."""

    __slots__ = ("config", "loop", "head_cache", "replay_cache", "default_blocks",
                 "default_headers", "held", "proxy_trust")

    def __init__(self, config: Any, loop: Any) -> None:
        self.config = config
        self.loop = loop
        # Request heads analysed (header list -> HeadInfo, head.py).
        self.head_cache: BoundedCache[tuple[tuple[bytes, bytes], ...], Any] = \
            BoundedCache(HEAD_CACHE_MAX)
        # Whole heads as bytes -> Replay (connection.py, data_received).
        self.replay_cache: BoundedCache[bytes, Any] = BoundedCache(REPLAY_MAX)
        self.held: list[Any] = []
        # --proxy-headers: whose proxy headers count (proxy.py); None: off.
        self.proxy_trust = ProxyTrust(config.forwarded_allow_ips) \
            if config.proxy_headers else None
        self.refresh_date()

    def refresh_date(self) -> None:
        config = self.config
        date = (b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n"
                if config.date_header else b"")
        server = b"server: betula\r\n" if config.server_header else b""
        # Indexed by encode_headers' HAS_DATE | HAS_SERVER bits: what the app left to us.
        self.default_blocks = (date + server, server, date, b"")
        self.default_headers = self.default_blocks[0]

    def defaults_for(self, flags: int) -> bytes:
        """The server's lines the app did not give itself (``encode_headers`` flags)."""
        return self.default_blocks[(flags >> 1) & 3]

    def error_response(self, status: int, reason: str, head: bool = False) -> bytes:
        return error_response(status, reason, self.default_headers, head)

    def hold(self, conn: Any) -> None:
        """``conn`` holds output (a head, streamed chunks) for the end of this loop turn."""
        held = self.held
        if not held:
            self.loop.call_soon(self.flush_held)
        held.append(conn)

    def flush_held(self) -> None:
        """Send what responses hold back until the end of the loop turn: the heads of
        responses whose app suspended between start and body (a response holds its head so
        head and first body leave in one write), streamed chunks and ended responses (sent
        one after the other: see ``HTTP1Response.hold_out``); once per loop turn for the
        whole batch."""
        held, self.held = self.held, []
        for conn in held:
            if conn.held_head is not None or conn.turn_paused:
                conn.flush_held()
            elif conn.held_out:  # most: an ended response (or streamed chunks) to send
                conn.flush_out()
