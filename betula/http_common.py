"""Request-side helpers every protocol and adapter shares: the protocol error, method
names, request targets, log labels. (No framing: HTTP/1 bytes live in ``protocols/h1/``.)
"""

from __future__ import annotations

import http
from typing import Any

from .cache import BoundedCache

__all__ = ["ProtocolError", "method_name", "phrase", "remember_target", "split_target"]


class ProtocolError(Exception):
    """A request the server must refuse with ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def phrase(status: int) -> str:
    """The standard reason phrase of a status ("" for one without)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# Request method bytes -> str (a miss in ``METHODS.get`` comes here).
METHODS: BoundedCache[bytes, str] = BoundedCache(64)


def method_name(raw: bytes) -> str:
    return METHODS.recall(raw) or METHODS.keep(raw, raw.decode("ascii"))


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
    """Keep ``parts`` for ``url`` (from its second miss on: ``admit``) and return it. Long
    targets are not kept."""
    if len(url) <= TARGET_CACHE_LEN and cache.admit(url):  # cache.keep(url, parts), inline
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
