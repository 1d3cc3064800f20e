"""What the HTTP/2 connections of one worker share: the h2 configuration, the settings they
announce, the Date/Server fields, and the connections with output to write at the end of
the loop turn (one write per connection per turn, however many streams sent)."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from h2.config import H2Configuration
from h2.settings import SettingCodes

__all__ = ["H2Shared"]

# The connection-level receive window the server grants at once (the RFC's 65535 is a
# stream's worth): a stream whose app is not reading holds back only its own window.
CONNECTION_WINDOW = 16 * 1024 * 1024


class H2Shared:
    """Per worker: h2's configuration (shared, read-only), the settings values, the
    Date/Server fields (refreshed by the worker's tick) and the dirty connections.
    ``websocket``: the worker answers WebSockets (SETTINGS_ENABLE_CONNECT_PROTOCOL)."""

    __slots__ = ("config", "loop", "h2_config", "settings", "max_streams", "window",
                 "default_fields", "dirty")

    def __init__(self, config: Any, loop: Any, websocket: bool = False) -> None:
        self.config = config
        self.loop = loop
        # Bytes in and out (no str decoding); fields checked by Betula both ways: inbound
        # by fields.py (h2's rules, in one pass), outbound by headers.checked_fields (once
        # per cached list). h2 still joins the client's cookie crumbs.
        self.h2_config = H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, split_outbound_cookies=False,
            validate_inbound_headers=False, normalize_inbound_headers=True)
        self.max_streams = config.h2_max_concurrent_streams
        self.window = config.h2_initial_window_size
        self.settings = {
            SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: self.window,
            SettingCodes.MAX_FRAME_SIZE: config.h2_max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
            SettingCodes.ENABLE_PUSH: 0,
        }
        if websocket:  # WebSocket by extended CONNECT (RFC 8441 §3)
            self.settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self.dirty: list[Any] = []
        self.refresh_date()

    def refresh_date(self) -> None:
        config = self.config
        fields: list[tuple[bytes, bytes]] = []
        if config.date_header:
            fields.append((b"date", formatdate(usegmt=True).encode("ascii")))
        if config.server_header:
            fields.append((b"server", b"betula"))
        self.default_fields = tuple(fields)

    def mark_dirty(self, conn: Any) -> None:
        """``conn`` has output: written at the end of this loop turn."""
        dirty = self.dirty
        if not dirty:
            self.loop.call_soon(self.flush_dirty)
        dirty.append(conn)

    def flush_dirty(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()
