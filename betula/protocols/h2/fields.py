"""An HTTP/2 request's header block, checked and read in one pass (RFC 9113 §8.2, §8.3).

h2 can validate inbound headers itself (``validate_inbound_headers``), as a chain of seven
Python generators with a loop over every byte of every name and value: profiled on the
``h2-hello`` bench it was about a tenth of the worker's time. Betula turns it off and checks
the same rules here, with C-speed byte operations (``bytes.translate``, one regex over each
value), in the pass that already picks out the pseudo-header fields. A block that breaks a
rule is malformed (``Malformed``): the connection resets that stream with PROTOCOL_ERROR
(§8.1.1), the others go on. h2spec's cases for malformed requests run in the suite.

The rules, as h2 checks them: names non-empty, no uppercase, nothing in 0x00-0x20 or
0x7f-0xff, no colon past the first byte; values without NUL, CR or LF and not starting or
ending with SP or HTAB; no connection-specific field (connection, keep-alive,
proxy-connection, transfer-encoding, upgrade), ``te`` only ``trailers``; pseudo-header
fields first, known, for requests, not repeated; ``:method`` always, ``:scheme`` and
``:path`` except for a plain CONNECT (which must have neither), ``:protocol`` only with
CONNECT; ``:path`` not empty; ``:authority`` or ``host`` (one ``host`` at most, equal to
``:authority`` when both are there). Trailers: the same name and value rules, no
pseudo-header fields.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Malformed", "RequestHead", "check_trailers", "request_head"]

# Bytes a regular field name may hold (h2's rule): 0x21-0x7e less A-Z and ':'.
_NAME_BYTES = bytes(c for c in range(0x21, 0x7F) if not 0x41 <= c <= 0x5A and c != 0x3A)
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_CONNECTION = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                         b"transfer-encoding", b"upgrade"})
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


class Malformed(Exception):
    """A malformed header block (its reason in the message)."""


class RequestHead:
    """What the connection takes from a request's header block."""

    __slots__ = ("method", "path", "authority", "protocol", "fields", "expect_continue")

    def __init__(self, method: bytes, path: bytes, authority: bytes, protocol: bytes,
                 fields: list[tuple[bytes, bytes]], expect_continue: bool) -> None:
        self.method = method
        self.path = path
        self.authority = authority
        self.protocol = protocol
        self.fields = fields  # the regular fields, in order (host first, from :authority)
        self.expect_continue = expect_continue


def _check_regular(name: bytes, value: bytes) -> None:
    if not name or name.translate(None, _NAME_BYTES):
        raise Malformed(f"invalid field name {name!r}")
    if name in _CONNECTION:
        raise Malformed(f"connection-specific field {name!r}")
    if value and _BAD_VALUE.search(value):
        raise Malformed(f"invalid value of {name!r}")


def request_head(headers: Any) -> RequestHead:
    """Check a request header block (h2's decoded (name, value) pairs) and read it."""
    method = path = authority = protocol = None
    scheme = False
    fields: list[tuple[bytes, bytes]] = []
    host = None
    expect = False
    for field in headers:
        name, value = field[0], field[1]
        if name[:1] == b":":
            if fields:
                raise Malformed(f"pseudo-header field {name!r} after a regular field")
            if name not in _PSEUDO:
                raise Malformed(f"pseudo-header field {name!r} not allowed in a request")
            if value and _BAD_VALUE.search(value):
                raise Malformed(f"invalid value of {name!r}")
            if name == b":method":
                if method is not None:
                    raise Malformed("repeated :method")
                method = value
            elif name == b":path":
                if path is not None:
                    raise Malformed("repeated :path")
                path = value
            elif name == b":authority":
                if authority is not None:
                    raise Malformed("repeated :authority")
                authority = value
            elif name == b":scheme":
                if scheme:
                    raise Malformed("repeated :scheme")
                scheme = True
            else:
                if protocol is not None:
                    raise Malformed("repeated :protocol")
                protocol = value
            continue
        _check_regular(name, value)
        if name == b"host":
            if host is not None:
                raise Malformed("more than one host field")
            host = value
        elif name == b"te":
            if value.lower() != b"trailers":
                raise Malformed("te other than trailers")
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        fields.append((name, value))
    if method is None:
        raise Malformed("no :method")
    if method == b"CONNECT" and protocol is None:
        if scheme or path is not None:
            raise Malformed("a plain CONNECT with :scheme or :path")
    else:
        if not scheme or path is None:
            raise Malformed("no :scheme or no :path")
        if protocol is not None and method != b"CONNECT":
            raise Malformed(":protocol without CONNECT")
    if path is not None and not path:
        raise Malformed("empty :path")
    if authority is None and host is None:
        raise Malformed("neither :authority nor host")
    if authority is not None and host is not None and authority != host:
        raise Malformed(":authority and host differ")
    if authority is not None and host is None:
        fields.insert(0, (b"host", authority))  # the ASGI spec: host from :authority
    return RequestHead(method, path or b"", authority or b"", protocol or b"", fields, expect)


def check_trailers(headers: Any) -> None:
    """Check a trailing header block (RFC 9113 §8.1: no pseudo-header fields)."""
    for field in headers:
        name = field[0]
        if name[:1] == b":":
            raise Malformed(f"pseudo-header field {name!r} in trailers")
        _check_regular(name, field[1])
