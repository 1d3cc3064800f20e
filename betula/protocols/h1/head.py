"""What one HTTP/1 request head means, worked out once per distinct field list.

``analyse_head`` checks a head's fields against the limits and returns a ``HeadInfo``:
the fields with lowered names and what framing and keep-alive depend on. Clients repeat
their field list request after request, so the connection caches the result per worker
(``HTTP1Shared.head_cache``) and a ``Replay`` (the parse of a whole head, byte for byte)
for heads it may replay without llhttp.
"""

from __future__ import annotations

import os
import re

from ...cache import BoundedCache
from ...http_common import ProtocolError

__all__ = ["HEAD_CACHE_BYTES", "SCAN", "HeadInfo", "Replay", "analyse_head", "header_limit"]

# The C scanner of whole strict heads (betula/_h1scan.c; None where it was not built, or
# with BETULA_PURE_PYTHON=1 in the environment: then llhttp parses every head).
try:
    from ..._h1scan import configure as _configure_scan
    from ..._h1scan import scan as SCAN
except ImportError:  # pragma: no cover - built by pip install on every supported platform
    SCAN = None
if os.environ.get("BETULA_PURE_PYTHON"):
    SCAN = None

# A head of at most this many bytes of fields is cached (a longer one, with big cookies
# say, is analysed each time).
HEAD_CACHE_BYTES = 2048

_HEADER_NAMES: BoundedCache[bytes, bytes] = BoundedCache(512)

_H_HOST, _H_CONTENT_LENGTH, _H_CONNECTION, _H_TRANSFER_ENCODING, _H_EXPECT, _H_TE, \
    _H_UPGRADE, _H_PROXY_CONNECTION, _H_FORWARDED = range(9)
_SPECIAL_HEADERS = {
    b"host": _H_HOST, b"content-length": _H_CONTENT_LENGTH, b"connection": _H_CONNECTION,
    b"transfer-encoding": _H_TRANSFER_ENCODING, b"expect": _H_EXPECT, b"te": _H_TE,
    b"upgrade": _H_UPGRADE, b"proxy-connection": _H_PROXY_CONNECTION,
    b"forwarded": _H_FORWARDED, b"x-forwarded-for": _H_FORWARDED,
    b"x-forwarded-proto": _H_FORWARDED, b"x-forwarded-host": _H_FORWARDED,
}
_CLOSE = b"close"
_KEEP_ALIVE = b"keep-alive"
# A Host field value (RFC 9112 §3.2, RFC 3986 §3.2.2): uri-host [ ":" port ], where
# uri-host is an IP literal in brackets or a reg-name (empty allowed: no authority).
# Userinfo ("user@"), paths, spaces and the like are not a host.
_VALID_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
    rb"|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?\Z")


class HeadInfo:
    """One analysed field list (shared by every request with it: read-only)."""

    __slots__ = (
        "headers",  # tuple of (lowered name, value): an adapter gives the app its own copy
        "plain",  # no Connection or Proxy-Connection field
        "error",  # (status, reason) of a framing error, or None
        "host_error",  # (status, reason): two Host fields, or one that is not a host
        "host_missing",  # no Host field (an error for HTTP/1.1 only)
        "keep_alive_11",  # the connection stays open, for HTTP/1.1
        "keep_alive_10",  # ... for HTTP/1.0
        "too_large",  # Content-Length over --limit-request-body
        "has_body",
        "expect_continue",  # Expect: 100-continue
        "te_trailers",  # TE: trailers (the client takes trailer fields)
        "upgrade",  # an Upgrade field
        "size",  # bytes of the field section (trailer fields count on from here)
        "fields",  # number of fields
        "chunked",  # a Transfer-Encoding field
        "length",  # the Content-Length, or 0
        "forwarded",  # a proxy header (Forwarded, X-Forwarded-*: read from trusted peers)
    )

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...], plain: bool,
                 error: tuple[int, str] | None, host_error: tuple[int, str] | None,
                 host_missing: bool, keep_alive_11: bool, keep_alive_10: bool,
                 too_large: bool, has_body: bool,
                 expect_continue: bool, te_trailers: bool, upgrade: bool, size: int,
                 fields: int, chunked: bool, length: int, forwarded: bool = False) -> None:
        self.headers = headers
        self.plain = plain
        self.error = error
        self.host_error = host_error
        self.host_missing = host_missing
        self.keep_alive_11 = keep_alive_11
        self.keep_alive_10 = keep_alive_10
        self.too_large = too_large
        self.has_body = has_body
        self.expect_continue = expect_continue
        self.te_trailers = te_trailers
        self.upgrade = upgrade
        self.size = size
        self.fields = fields
        self.chunked = chunked
        self.length = length
        self.forwarded = forwarded


class Replay:
    """A whole head llhttp parsed, kept to be replayed when the same bytes come again."""

    __slots__ = ("method", "url", "head", "version", "keep_alive")

    def __init__(self, method: bytes, url: bytes, head: HeadInfo, version: str,
                 keep_alive: bool) -> None:
        self.method = method
        self.url = url
        self.head = head
        self.version = version
        self.keep_alive = keep_alive  # llhttp's own verdict


def _lower_name(name: bytes) -> bytes:
    """A field name lowered (after a miss in ``_HEADER_NAMES.get``): the common ones are
    kept, so each is lowered once."""
    return _HEADER_NAMES.recall(name) or _HEADER_NAMES.keep(name, name.lower())


def header_limit(size: int, total: int, limits: tuple[int, int, int]) -> None:
    """Raise the 431 for the limit (field size, section size, field count) passed."""
    if size > limits[0]:
        raise ProtocolError(431, "Request Header Field Too Large")
    if total > limits[1]:
        raise ProtocolError(431, "Request Header Fields Too Large")
    raise ProtocolError(431, "Too Many Request Header Fields")


def analyse_head(raw: list[tuple[bytes, bytes]], limits: tuple[int, int, int],
                 body_limit: int) -> HeadInfo:
    """Check a head's fields against the limits (field size, section size, field count:
    ProtocolError 431) and return what the connection decides from the fields alone."""
    field_max, section_max, count_max = limits
    headers = []
    total = 0
    host_count = 0
    has_cl = has_te = expect_continue = te_trailers = upgrade = proxy = forwarded = False
    length = 0
    te_value = tokens = host = b""
    for name, value in raw:
        size = len(name) + len(value)
        total += size + 4
        if size > field_max or total > section_max or len(headers) >= count_max:
            header_limit(size, total, limits)
        if value and (value[-1] == 32 or value[-1] == 9):
            # RFC 9110 §5.5: whitespace around a value is not part of it (llhttp drops the
            # leading, not the trailing)
            value = value.rstrip(b" \t")
        lowered = _HEADER_NAMES.entries.get(name) or _lower_name(name)
        special = _SPECIAL_HEADERS.get(lowered)
        if special is not None:
            if special == _H_HOST:
                host_count += 1
                host = value
            elif special == _H_CONTENT_LENGTH:
                if not has_cl:  # llhttp refuses differing repeats
                    length = int(value)
                has_cl = True
            elif special == _H_CONNECTION:
                tokens += b"," + value.lower()
            elif special == _H_TRANSFER_ENCODING:
                has_te = True
                te_value += b"," + value.lower()
            elif special == _H_EXPECT:
                if value.lower() == b"100-continue":
                    expect_continue = True
            elif special == _H_TE:
                if value.lower().find(b"trailers") >= 0:
                    te_trailers = True
            elif special == _H_UPGRADE:
                upgrade = True
            elif special == _H_FORWARDED:
                forwarded = True
            else:  # Proxy-Connection: llhttp reads it like Connection (see plain)
                proxy = True
        headers.append((lowered, value))
    error = None
    if has_te:
        if has_cl:
            error = (400, "Both Content-Length and Transfer-Encoding")
        elif te_value.replace(b" ", b"").replace(b"\t", b"") != b",chunked":
            error = (501, "Unsupported Transfer-Encoding")
    host_error = None
    if host_count > 1:
        host_error = (400, "Multiple Host headers")
    elif host_count and not _VALID_HOST.match(host):
        host_error = (400, "Invalid Host header")
    # find(), not "in": see the ASGI adapter's _parse_target.
    keep_alive_11 = not tokens or tokens.find(_CLOSE) < 0
    keep_alive_10 = bool(tokens) and tokens.find(_KEEP_ALIVE) >= 0 and tokens.find(_CLOSE) < 0
    return HeadInfo(tuple(headers), not tokens and not proxy, error, host_error,
                    not host_count, keep_alive_11,
                    keep_alive_10, length > body_limit > 0, has_te or length > 0,
                    expect_continue, te_trailers, upgrade, total, len(headers), has_te, length,
                    forwarded)


# SCAN returns its reading as a Replay of a HeadInfo, the records built in C (what llhttp's
# parse and analyse_head give for the same bytes: tests/test_h1scan.py holds them equal).
if SCAN is not None:
    _configure_scan(HeadInfo, Replay)
