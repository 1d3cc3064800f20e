"""HTTP/1.x bytes computed once and reused: status lines, header blocks, error responses.

The server's Date/Server block is the connection's (``shared.py``, refreshed once a
second); the field rules are protocol-neutral (``betula/headers.py``).
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from typing import Any

from ...cache import BoundedCache
from ...headers import HOP_BY_HOP, as_bytes, checked_name, checked_value, content_length
from ...http_common import phrase

__all__ = [
    "CLOSE", "HAS_DATE", "HAS_SERVER", "LAST_CHUNK", "STATUS_LINES", "closing_text_response",
    "encode_headers", "error_response", "status_line",
]

LAST_CHUNK = b"0\r\n\r\n"


STATUS_LINES: BoundedCache[int, bytes] = BoundedCache(1000)


def status_line(status: int) -> bytes:
    line = STATUS_LINES.lookup(status)
    if line is None:
        line = STATUS_LINES.keep(status, f"HTTP/1.1 {status} {phrase(status)}\r\n".encode(
            "latin-1"))
    return line


for _code in http.HTTPStatus:
    status_line(_code.value)


def error_response(status: int, reason: str, defaults: bytes, head: bool = False) -> bytes:
    """A complete, self-contained error response that ends with the connection
    (``defaults``: the server's Date/Server lines; ``head``: the answer to a HEAD request,
    which has no body, RFC 9110 §9.3.2)."""
    body = f"{status} {phrase(status) or 'Error'}: {reason}\n".encode("latin-1", "replace")
    return closing_text_response(status, body, defaults, head=head)


def closing_text_response(status: int, body: bytes, defaults: bytes, extra: bytes = b"",
                          head: bool = False) -> bytes:
    """A plain-text response (``extra``: more header lines) that ends with the connection
    (``head``: its head alone, for a HEAD request)."""
    return b"".join((
        status_line(status),
        defaults,
        extra,
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        b"" if head else body,
    ))


# What one (name, value) pair means for the response, cached per pair: apps send the same
# pairs over and over (content-type, server-wide headers), so each is validated once.
_PLAIN, _LENGTH, _CLOSE, _DROP, _TRAILER, _DATE, _SERVER = 0, 1, 2, 3, 4, 5, 6
# Flags returned by encode_headers.
CLOSE, HAS_DATE, HAS_SERVER = 1, 2, 4
_PAIRS: BoundedCache[tuple[Any, Any], tuple[bytes, int, Any]] = BoundedCache(4096)
# Whole header lists seen before (apps often answer with the same headers: static files,
# fixed-size bodies, module-level lists), keyed by the tuple of pairs: one lookup instead
# of one per pair. Bounded; a miss falls through to the per-pair path.
_LISTS: BoundedCache[tuple[Any, ...], tuple[bytes, int | None, int, bytes | None]] = \
    BoundedCache(1024)


def _classify(name: Any, value: Any) -> tuple[bytes, int, Any]:
    name = as_bytes(name)
    value = as_bytes(value)
    lowered = checked_name(name)
    checked_value(name, value)
    if lowered in HOP_BY_HOP:
        if lowered == b"connection" and b"close" in value.lower():
            return b"", _CLOSE, None
        if lowered == b"trailer":
            return b"", _TRAILER, value
        return b"", _DROP, None
    line = b"%b: %b\r\n" % (name, value)
    if lowered == b"content-length":
        return line, _LENGTH, content_length(value)
    if lowered == b"date":
        return line, _DATE, None
    if lowered == b"server":
        return line, _SERVER, None
    return line, _PLAIN, None


def encode_headers(headers: Iterable[Any]) -> tuple[bytes, int | None, int, bytes | None]:
    """Validate and serialise app headers (bytes or str pairs) in the order given.

    Returns (header block, Content-Length or None, flags, Trailer value); flags has CLOSE
    when the app asked to close, HAS_DATE / HAS_SERVER when it gave its own (the server's
    then stay out: one Date field, RFC 9110 §6.6.1).
    Repeated names are all kept. Hop-by-hop headers are held back: framing is the server's.
    Raises RuntimeError for a name that is not a token or a value with CR, LF or NUL
    (response splitting), or an invalid or conflicting Content-Length.
    """
    key = None
    if headers.__class__ is list and headers and headers[0].__class__ is tuple:  # type: ignore[attr-defined]
        try:
            key = tuple(headers)
            cached = _LISTS.entries.get(key) or _LISTS.recall(key)
        except TypeError:  # an unhashable pair further on: the per-pair path copes
            key = cached = None
        if cached is not None:
            return cached
    result = _encode_headers(headers if key is None else key)
    if key is not None:
        _LISTS.keep(key, result)
    return result


def _encode_headers(headers: Iterable[Any]) -> tuple[bytes, int | None, int, bytes | None]:
    parts: list[bytes] = []
    length: int | None = None
    flags = 0
    trailer = None
    pairs = _PAIRS
    for name, value in headers:
        key = (name, value)
        try:
            entry = pairs.entries.get(key) or pairs.recall(key)
        except TypeError:  # unhashable (bytearray): validate without caching
            entry = _classify(name, value)
        if entry is None:
            entry = pairs.keep(key, _classify(name, value))
        kind = entry[1]
        if kind == _PLAIN:
            parts.append(entry[0])
        elif kind == _LENGTH:
            if length is None:
                length = entry[2]
                parts.append(entry[0])
            elif length != entry[2]:
                raise RuntimeError(f"conflicting Content-Length values {length} and {entry[2]}")
        elif kind == _CLOSE:
            flags |= CLOSE
        elif kind == _TRAILER:
            trailer = entry[2]
        else:  # _DATE, _SERVER: sent as given, and the server's own stays out
            parts.append(entry[0])
            flags |= HAS_DATE if kind == _DATE else HAS_SERVER
    return b"".join(parts), length, flags, trailer
