"""The PROXY protocol header (HAProxy's ``proxy-protocol.txt``, versions 1 and 2), sans I/O.

A proxy that opens a connection to us on a client's behalf sends one header before
anything else: who the client is (its address and port) and which address it reached.
``ProxyHeaderParser`` is fed the connection's first bytes, as they arrive, and gives a
``ProxyInfo`` once the header is complete, or raises ``ProxyProtocolError`` as soon as
the bytes cannot be a header (the first byte that is neither of a signature fails).

Version 1 is a text line: ``PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n`` or ``PROXY
UNKNOWN ...\\r\\n``, at most 107 bytes with its CRLF. Version 2 is binary: a 12-byte
signature, a version/command byte, a family/transport byte, a 2-byte length, then the
addresses and TLVs (type-length-value extensions, walked to check their framing and
otherwise skipped). ``LOCAL`` (v2) and ``UNKNOWN`` (v1) say the connection is the proxy's
own (a health check): the info has no client, the socket's peer stays the client.

The parser never asks for a byte past the header: ``room`` is the most bytes the header
may still need, so a caller that peeks at most that many and consumes only what ``feed``
took leaves the bytes after the header (a TLS handshake) in the socket.
"""

from __future__ import annotations

import ipaddress
import struct

__all__ = [
    "V1_MAX",
    "V2_MAX_PAYLOAD",
    "V2_SIGNATURE",
    "ProxyHeaderParser",
    "ProxyInfo",
    "ProxyProtocolError",
    "looks_like_header",
]

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The longest v1 line, CRLF included (the spec's "PROXY UNKNOWN" with two full IPv6
# addresses and ports: 107 bytes).
V1_MAX = 107
# The most bytes of addresses and TLVs a v2 header may carry after its 16 fixed bytes
# (the spec asks a receiver to take at least 216, the UNIX addresses; TLVs come on top:
# the SSL and authority ones a proxy adds stay well under this).
V2_MAX_PAYLOAD = 4096
_V2_FIXED = 16
_V2_ADDRESSES = {0x1: 12, 0x2: 36, 0x3: 216}  # INET, INET6, UNIX: bytes of the addresses
_V2_FAMILY_NAMES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}


class ProxyProtocolError(ValueError):
    """The bytes are not a PROXY header of an accepted version; the message says why."""


class ProxyInfo:
    """What a PROXY header said: ``client`` and ``server`` as (host, port), None for a
    ``LOCAL``/``UNKNOWN`` header (or an address family without IP addresses): then the
    socket's own peer is the client. ``version`` is 1 or 2."""

    __slots__ = ("version", "client", "server")

    def __init__(self, version: int, client: tuple[str, int] | None,
                 server: tuple[str, int] | None) -> None:
        self.version = version
        self.client = client
        self.server = server

    def __repr__(self) -> str:
        return f"ProxyInfo(version={self.version}, client={self.client}, server={self.server})"


def looks_like_header(prefix: bytes) -> bool | None:
    """Whether a connection's first bytes begin a PROXY header: True once a whole
    signature is there, False as soon as they cannot, None while they still might."""
    for signature in (V1_SIGNATURE, V2_SIGNATURE):
        size = min(len(prefix), len(signature))
        if prefix[:size] == signature[:size]:
            return True if size == len(signature) else None
    return False


class ProxyHeaderParser:
    """Incremental: ``feed`` the bytes as they come; it returns the ``ProxyInfo`` once the
    header is whole (``rest``: the bytes of that feed past the header), None while more is
    needed, or raises ``ProxyProtocolError``. ``versions``: the versions accepted."""

    __slots__ = ("versions", "rest", "_buffer", "_need")

    def __init__(self, versions: tuple[int, ...] = (1, 2)) -> None:
        self.versions = versions
        self.rest = b""
        self._buffer = b""
        self._need = 0  # a v2 header's whole length, once its fixed part is in

    @property
    def begun(self) -> bool:
        """Some of the header has been fed."""
        return bool(self._buffer)

    @property
    def room(self) -> int:
        """The most bytes the header may still take: what a caller may peek at (it then
        consumes only what ``feed`` took, so nothing past the header is read)."""
        have = len(self._buffer)
        if self._need:
            return self._need - have
        if have and self._buffer[0] == 0x0D:  # a v2 signature: its fixed part first
            return _V2_FIXED - have
        return (V1_MAX if 1 in self.versions else _V2_FIXED) - have

    def feed(self, data: bytes) -> ProxyInfo | None:
        if not data:
            return None
        start = len(self._buffer)
        buffer = self._buffer = self._buffer + data
        if self._need:
            return self._v2_ready()
        first = buffer[:1]
        if first == b"P":
            if 1 not in self.versions:
                raise ProxyProtocolError("a version 1 header where only version 2 is accepted")
            self._check_signature(V1_SIGNATURE)
            return self._v1(start)
        if first == b"\r":
            if 2 not in self.versions:
                raise ProxyProtocolError("a version 2 header where only version 1 is accepted")
            self._check_signature(V2_SIGNATURE)
            if len(buffer) < _V2_FIXED:
                return None
            self._v2_fixed()
            return self._v2_ready()
        raise ProxyProtocolError(f"not a PROXY header (it begins {bytes(buffer[:8])!r})")

    # -- version 1 -----------------------------------------------------------------------
    def _check_signature(self, signature: bytes) -> None:
        size = min(len(self._buffer), len(signature))
        if self._buffer[:size] != signature[:size]:
            raise ProxyProtocolError(
                f"bad signature (it begins {bytes(self._buffer[:len(signature)])!r})")

    def _v1(self, start: int) -> ProxyInfo | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n", max(0, start - 1))
        lf = buffer.find(b"\n", start)
        if 0 <= lf and (lf == 0 or buffer[lf - 1] != 0x0D):
            raise ProxyProtocolError("version 1 line: LF without CR")
        if end < 0:
            cr = buffer.find(b"\r", max(0, start - 1))
            if 0 <= cr < len(buffer) - 1:
                raise ProxyProtocolError("version 1 line: CR without LF")
            if len(buffer) >= V1_MAX:
                raise ProxyProtocolError(f"version 1 line longer than {V1_MAX} bytes")
            return None
        if end + 2 > V1_MAX:
            raise ProxyProtocolError(f"version 1 line longer than {V1_MAX} bytes")
        self._done(end + 2)
        return _v1_line(buffer[:end])

    # -- version 2 -----------------------------------------------------------------------
    def _v2_fixed(self) -> None:
        buffer = self._buffer
        version, command = buffer[12] >> 4, buffer[12] & 0x0F
        if version != 2:
            raise ProxyProtocolError(f"version 2 signature with version {version}")
        if command not in (0x0, 0x1):
            raise ProxyProtocolError(f"version 2 command {command:#x} (LOCAL or PROXY only)")
        (length,) = struct.unpack_from("!H", buffer, 14)
        if length > V2_MAX_PAYLOAD:
            raise ProxyProtocolError(
                f"version 2 header of {length} bytes after its fixed part, over {V2_MAX_PAYLOAD}")
        self._need = _V2_FIXED + length

    def _v2_ready(self) -> ProxyInfo | None:
        if len(self._buffer) < self._need:
            return None
        self._done(self._need)
        return _v2_block(self._buffer)

    def _done(self, size: int) -> None:
        """The header is the buffer's first ``size`` bytes. (Until it was whole, every
        byte fed was the header's: what is past it came in this feed.)"""
        self.rest = self._buffer[size:]
        self._buffer = self._buffer[:size]


def _v1_line(line: bytes) -> ProxyInfo:
    """``line``: a v1 header without its CRLF."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("version 1 line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyInfo(1, None, None)  # the rest of the line is to be ignored
    if len(parts) != 6:
        raise ProxyProtocolError(f"version 1 line has {len(parts)} fields, not 6: {text!r}")
    _, family, src, dst, sport, dport = parts
    kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
    if family == "TCP4":
        kind = ipaddress.IPv4Address
    elif family == "TCP6":
        kind = ipaddress.IPv6Address
    else:
        raise ProxyProtocolError(f"version 1 protocol {family!r} (TCP4, TCP6 or UNKNOWN)")
    client = (_v1_address(kind, src, family), _v1_port(sport))
    server = (_v1_address(kind, dst, family), _v1_port(dport))
    return ProxyInfo(1, client, server)


def _v1_address(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str,
                family: str) -> str:
    try:
        if "%" in text:  # (an IPv6 scope: ipaddress takes one, the spec has none)
            raise ValueError(text)
        return str(kind(text))
    except ValueError:
        raise ProxyProtocolError(f"version 1 address {text!r} is not {family}") from None


def _v1_port(text: str) -> int:
    if not (text.isdigit() and len(text) <= 5) or int(text) > 65535:
        raise ProxyProtocolError(f"version 1 port {text!r} is not 0 to 65535")
    return int(text)


def _v2_block(header: bytes) -> ProxyInfo:
    """``header``: a whole v2 header whose fixed part has been checked."""
    if header[12] & 0x0F == 0x0:  # LOCAL: the proxy's own connection; its block is ignored
        return ProxyInfo(2, None, None)
    family, transport = header[13] >> 4, header[13] & 0x0F
    if family not in _V2_FAMILY_NAMES or transport > 0x2:
        raise ProxyProtocolError(f"version 2 address family/transport {header[13]:#04x}")
    if family == 0x0:  # UNSPEC: no addresses given (the spec: ignore the block)
        return ProxyInfo(2, None, None)
    if transport != 0x1:
        raise ProxyProtocolError(f"version 2 transport of {header[13]:#04x} is not STREAM")
    payload = memoryview(header)[_V2_FIXED:]
    size = _V2_ADDRESSES[family]
    if len(payload) < size:
        raise ProxyProtocolError(f"version 2 {_V2_FAMILY_NAMES[family]} addresses need "
                                 f"{size} bytes, the header has {len(payload)}")
    _check_tlvs(payload[size:])
    if family == 0x1:
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", payload)
        return ProxyInfo(2, (str(ipaddress.IPv4Address(src)), sport),
                         (str(ipaddress.IPv4Address(dst)), dport))
    if family == 0x2:
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", payload)
        return ProxyInfo(2, (str(ipaddress.IPv6Address(src)), sport),
                         (str(ipaddress.IPv6Address(dst)), dport))
    return ProxyInfo(2, None, None)  # UNIX: paths, no IP address to give


def _check_tlvs(block: memoryview) -> None:
    """TLVs (type, 2-byte length, value) fill the rest of the header exactly; their
    values are not used (at most V2_MAX_PAYLOAD bytes, so the walk is bounded)."""
    at = 0
    while at < len(block):
        if len(block) - at < 3:
            raise ProxyProtocolError("version 2 TLV cut short")
        (length,) = struct.unpack_from("!H", block, at + 1)
        at += 3 + length
        if at > len(block):
            raise ProxyProtocolError("version 2 TLV longer than the header")
