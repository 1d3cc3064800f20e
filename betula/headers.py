"""Response header rules every protocol shares (RFC 9110): what a valid field name and
value are, which fields describe one connection rather than the message, and what a
Content-Length says. Serialising fields is each protocol's own (HTTP/1:
``protocols/h1/framing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .cache import BoundedCache

__all__ = ["FIELD_LISTS", "HOP_BY_HOP", "NO_BODY_STATUS", "checked_fields", "checked_name",
           "checked_value", "content_length", "is_token", "response_length"]

Pairs = tuple[tuple[bytes, bytes], ...]

# Headers that describe one connection, not the message (RFC 9110 §7.6.1). The server owns
# them: an app's Connection: close is honoured, the rest are dropped and re-derived.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer",
    b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
})

# Responses that never carry a body (RFC 9110 §6.4.1), besides 1xx and those to HEAD.
NO_BODY_STATUS = frozenset({204, 304})

_VALID_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Field name as the app wrote it -> lowered, once checked (apps repeat their names).
_CHECKED_NAMES: BoundedCache[bytes, bytes] = BoundedCache(1024)


def as_bytes(item: Any) -> bytes:
    """A name or value as the app gave it (bytes, or str as latin-1)."""
    if item.__class__ is bytes:
        return item
    return item.encode("latin-1") if isinstance(item, str) else bytes(item)


def is_token(value: bytes) -> bool:
    """A token (RFC 9110 §5.6.2): a field name, a method."""
    return _VALID_NAME.match(value) is not None


def checked_name(name: bytes) -> bytes:
    """The lowered name; RuntimeError when it is not a token."""
    lowered = _CHECKED_NAMES.lookup(name)
    if lowered is None:
        if not _VALID_NAME.match(name):
            raise RuntimeError(f"invalid response header name {name!r}")
        lowered = _CHECKED_NAMES.keep(name, name.lower())
    return lowered


def checked_value(name: bytes, value: bytes) -> bytes:
    """RuntimeError for a value with CR, LF, NUL or another control byte (response
    splitting)."""
    if _INVALID_VALUE.search(value):
        raise RuntimeError(f"invalid response header value for {name!r}: {value!r}")
    return value


def content_length(value: bytes) -> int:
    try:
        length = int(value)
    except ValueError:
        raise RuntimeError(f"invalid Content-Length {value!r}") from None
    if length < 0:
        raise RuntimeError(f"invalid Content-Length {value!r}")
    return length


def response_length(headers: Iterable[Any]) -> int | None:
    """Check an app's response fields by the rules above (RuntimeError for a bad one) and
    return its Content-Length or None: for an adapter that must know the length before
    the protocol frames the response (WSGI's app thread)."""
    length = None
    for name, value in headers:
        name = as_bytes(name)
        value = as_bytes(value)
        lowered = checked_name(name)
        checked_value(name, value)
        if lowered == b"content-length":
            given = content_length(value)
            if length is not None and length != given:
                raise RuntimeError(f"conflicting Content-Length values {length} and {given}")
            length = given
    return length


# Header lists seen before (apps answer with the same ones over and over), keyed by the
# tuple of the app's pairs -> (the checked pairs, the Content-Length or None).
FIELD_LISTS: BoundedCache[tuple[Any, ...], tuple[Pairs, int | None]] = BoundedCache(1024)


def checked_fields(headers: Iterable[Any]) -> tuple[Pairs, int | None]:
    """An app's fields checked by the HTTP/1 rules (RuntimeError for a bad one): the pairs
    as bytes, names lowered, hop-by-hop fields left out; and the Content-Length or None."""
    key = None
    if headers.__class__ is list and headers and headers[0].__class__ is tuple:  # type: ignore[attr-defined]
        try:
            key = tuple(headers)
            cached = FIELD_LISTS.entries.get(key) or FIELD_LISTS.recall(key)
        except TypeError:  # an unhashable pair further on: checked one by one
            key = cached = None
        if cached is not None:
            return cached
    pairs = []
    length: int | None = None
    for name, value in headers if key is None else key:
        name = as_bytes(name)
        value = as_bytes(value)
        lowered = checked_name(name)
        checked_value(name, value)
        if lowered in HOP_BY_HOP:
            continue
        if lowered == b"content-length":
            given = content_length(value)
            if length is not None and length != given:
                raise RuntimeError(f"conflicting Content-Length values {length} and {given}")
            length = given
        pairs.append((lowered, value))
    result = (tuple(pairs), length)
    if key is not None:
        FIELD_LISTS.keep(key, result)
    return result
