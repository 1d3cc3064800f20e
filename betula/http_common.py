"""HTTP/1.x response framing shared by the interface adapters.

Everything here is computed once and reused: status lines, the Date/Server header block
(refreshed once a second by the server), the hop-by-hop header set.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CHUNK_END",
    "HOP_BY_HOP",
    "LAST_CHUNK",
    "ProtocolError",
    "chunk",
    "encode_headers",
    "error_response",
    "status_line",
]

CHUNK_END = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"

# Headers that describe one connection, not the message (RFC 9110 §7.6.1). The server owns
# them: an app's Connection: close is honoured, the rest are dropped and re-derived.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer",
    b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
})

_VALID_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CHECKED_NAMES: dict[bytes, bytes] = {}


class ProtocolError(Exception):
    """A request the server must refuse with ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} {_phrase(status)}\r\n".encode("latin-1")
        if len(_STATUS_LINES) < 1000:
            _STATUS_LINES[status] = line
    return line


for _code in http.HTTPStatus:
    status_line(_code.value)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def error_response(status: int, reason: str, server: Any) -> bytes:
    """A complete, self-contained error response that ends with the connection."""
    body = f"{status} {_phrase(status) or 'Error'}: {reason}\n".encode("latin-1", "replace")
    return b"".join((
        status_line(status),
        server.default_headers,
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        body,
    ))


def _checked_name(name: bytes) -> bytes:
    lowered = _CHECKED_NAMES.get(name)
    if lowered is None:
        if not _VALID_NAME.match(name):
            raise RuntimeError(f"invalid response header name {name!r}")
        lowered = name.lower()
        if len(_CHECKED_NAMES) < 1024:
            _CHECKED_NAMES[name] = lowered
    return lowered


class EncodedHeaders:
    """An app's response headers, validated and split into what goes out and what frames."""

    __slots__ = ("block", "close", "content_length", "trailer_names")

    def __init__(self) -> None:
        self.block = b""
        self.content_length: int | None = None
        self.close = False
        self.trailer_names: bytes | None = None


def encode_headers(headers: Iterable[Any]) -> EncodedHeaders:
    """Validate and serialise app headers (bytes or str pairs) in the order given.

    Repeated names are all kept. Hop-by-hop headers are held back: framing is the server's.
    Raises RuntimeError for a name that is not a token or a value with CR, LF or NUL
    (response splitting).
    """
    result = EncodedHeaders()
    parts: list[bytes] = []
    for name, value in headers:
        if name.__class__ is not bytes:
            name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        if value.__class__ is not bytes:
            value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        lowered = _checked_name(name)
        if _INVALID_VALUE.search(value):
            raise RuntimeError(f"invalid response header value for {name!r}: {value!r}")
        if lowered in HOP_BY_HOP:
            if lowered == b"connection" and b"close" in value.lower():
                result.close = True
            elif lowered == b"trailer":
                result.trailer_names = value
            continue
        if lowered == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise RuntimeError(f"invalid Content-Length {value!r}") from None
            if length < 0 or (result.content_length is not None
                              and result.content_length != length):
                raise RuntimeError(f"invalid Content-Length {value!r}")
            if result.content_length is not None:
                continue  # an identical repeat: send it once
            result.content_length = length
        parts.append(b"%b: %b\r\n" % (name, value))
    result.block = b"".join(parts)
    return result
