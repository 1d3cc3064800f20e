"""HTTP/1.x response framing shared by the interface adapters.

Everything here is computed once and reused: status lines, the Date/Server header block
(refreshed once a second by the server), the hop-by-hop header set.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Any

from .cache import BoundedCache

__all__ = [
    "CHUNK_END",
    "HOP_BY_HOP",
    "LAST_CHUNK",
    "ProtocolError",
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
_CHECKED_NAMES: BoundedCache[bytes, bytes] = BoundedCache(1024)


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


STATUS_LINES: BoundedCache[int, bytes] = BoundedCache(1000)


def status_line(status: int) -> bytes:
    line = STATUS_LINES.lookup(status)
    if line is None:
        line = STATUS_LINES.keep(status, f"HTTP/1.1 {status} {_phrase(status)}\r\n".encode(
            "latin-1"))
    return line


for _code in http.HTTPStatus:
    status_line(_code.value)


# Request method bytes -> str (a miss in ``METHODS.get`` comes here).
METHODS: BoundedCache[bytes, str] = BoundedCache(64)


def method_name(raw: bytes) -> str:
    return METHODS.recall(raw) or METHODS.keep(raw, raw.decode("ascii"))


def error_response(status: int, reason: str, server: Any) -> bytes:
    """A complete, self-contained error response that ends with the connection."""
    body = f"{status} {_phrase(status) or 'Error'}: {reason}\n".encode("latin-1", "replace")
    return closing_text_response(status, body, server)


def closing_text_response(status: int, body: bytes, server: Any, extra: bytes = b"") -> bytes:
    """A plain-text response (``extra``: more header lines) that ends with the connection."""
    return b"".join((
        status_line(status),
        server.default_headers,
        extra,
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        body,
    ))


def _checked_name(name: bytes) -> bytes:
    lowered = _CHECKED_NAMES.lookup(name)
    if lowered is None:
        if not _VALID_NAME.match(name):
            raise RuntimeError(f"invalid response header name {name!r}")
        lowered = _CHECKED_NAMES.keep(name, name.lower())
    return lowered


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
    if name.__class__ is not bytes:
        name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
    if value.__class__ is not bytes:
        value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
    lowered = _checked_name(name)
    if _INVALID_VALUE.search(value):
        raise RuntimeError(f"invalid response header value for {name!r}: {value!r}")
    if lowered in HOP_BY_HOP:
        if lowered == b"connection" and b"close" in value.lower():
            return b"", _CLOSE, None
        if lowered == b"trailer":
            return b"", _TRAILER, value
        return b"", _DROP, None
    line = b"%b: %b\r\n" % (name, value)
    if lowered == b"content-length":
        try:
            length = int(value)
        except ValueError:
            raise RuntimeError(f"invalid Content-Length {value!r}") from None
        if length < 0:
            raise RuntimeError(f"invalid Content-Length {value!r}")
        return line, _LENGTH, length
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


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """The raw path and the query of a request target: origin form ("/a?b=1"), absolute
    form (proxy style, RFC 9112 §3.2.2) or "*"."""
    if url[:1] == b"/":
        raw_path, _, query = url.partition(b"?")
        return raw_path, query
    if url == b"*":
        return b"*", b""
    import httptools

    parsed = httptools.parse_url(url)
    return parsed.path or b"/", parsed.query or b""


# Request targets seen recently ("/", "/api/items?page=2"): the interface adapters split and
# decode each once and keep the result in a BoundedCache of this many (see remember_target).
TARGET_CACHE_MAX = 1024
TARGET_CACHE_LEN = 256


def remember_target(cache: BoundedCache[bytes, Any], url: bytes, parts: Any) -> Any:
    """Keep ``parts`` for ``url`` and return it. Long targets are not kept."""
    if len(url) <= TARGET_CACHE_LEN:  # cache.keep(url, parts), inline: once a new target
        entries = cache.entries
        if len(entries) >= cache.limit:
            cache.rotate()
        entries[url] = parts
    return parts


def client_label(scope: dict[str, Any]) -> str:
    """``host:port`` of the scope's client for log lines ("-" when unknown)."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def request_target(scope: dict[str, Any]) -> str:
    """The raw path and query of a scope, for log lines."""
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    return target
