"""HTTP/1.1 to HTTP/2 in the clear: the preface of prior knowledge, and ``Upgrade: h2c``
(RFC 7540 §3.2; RFC 9113 deprecates it, curl and nghttp still send it): which requests
qualify, the 101, and the request as stream 1 sees it.

A request qualifies when it has no body, comes first on its connection (nothing
pipelined), over plain TCP, with the ``h2c`` token in Upgrade, ``Upgrade`` and
``HTTP2-Settings`` named in Connection and exactly one valid HTTP2-Settings field
(base64url of a SETTINGS payload). Anything else is answered as HTTP/1.1, as if there were
no Upgrade field (a server that does not switch answers as usual, RFC 9110 §7.8).
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["PREFACE", "SWITCHING", "Upgrade", "h2c_upgrade"]

# The HTTP/2 connection preface (RFC 9113 §3.4): a client with prior knowledge opens with it
# (HTTP1Connection.data_received hands such a connection over).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"

# What stream 1 does not get of the HTTP/1.1 head: the fields of that connection.
_CONNECTION_FIELDS = frozenset({b"connection", b"upgrade", b"http2-settings", b"keep-alive",
                                b"proxy-connection", b"transfer-encoding"})


class Upgrade:
    """An upgrade to do: the request for stream 1 and the client's settings."""

    __slots__ = ("method", "url", "headers", "settings")

    def __init__(self, method: bytes, url: bytes, headers: tuple[tuple[bytes, bytes], ...],
                 settings: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.settings = settings  # the HTTP2-Settings value, as sent (base64url)


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",")]


def h2c_upgrade(method: bytes, url: bytes, headers: tuple[tuple[bytes, bytes], ...]
                ) -> Upgrade | None:
    """The Upgrade to do for this head (checked as the module says), or None."""
    upgrade = False
    connection: set[bytes] = set()
    settings = []
    for name, value in headers:
        if name == b"upgrade" and b"h2c" in _tokens(value):
            upgrade = True
        elif name == b"connection":
            connection.update(_tokens(value))
        elif name == b"http2-settings":
            settings.append(value.strip())
    # (Connection must name Upgrade too: llhttp then stops at the head, as the switch needs)
    if not (upgrade and {b"upgrade", b"http2-settings"} <= connection and len(settings) == 1):
        return None
    value = settings[0]
    try:
        payload = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:  # SETTINGS entries are 6 bytes each
        return None
    kept = []
    for name, value in headers:
        if name in _CONNECTION_FIELDS or (name == b"te" and value.strip().lower() != b"trailers"):
            continue
        kept.append((name, value))
    return Upgrade(method, url, tuple(kept), settings[0])
