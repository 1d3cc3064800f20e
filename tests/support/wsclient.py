"""WebSocket clients for the tests: ``RawWS`` (the RFC 6455 handshake over a plain socket,
then frames both ways, permessage-deflate by hand) and the few helpers around the
``websockets`` library's sync client (``ws_url``, ``ws_connect``, ``closed_by_server``).
The client's frames themselves are built by ``tests.support.ws``."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .wire import read_head, read_until_closed
from .ws import (
    BINARY,
    CLOSE,
    CONT,
    DEFLATE_TAIL,
    GUID,
    PING,
    PONG,
    RSV1,
    TEXT,
    close_payload,
    frame,
)

Headers = Iterable[tuple[str, str]]


# -- the websockets client -----------------------------------------------------------------

def ws_url(server, target: str, scheme: str = "ws") -> str:
    return f"{scheme}://{server.host}:{server.port}{target}"


def ws_connect(server, target: str, *, scheme: str = "ws", **kwargs) -> ClientConnection:
    """A ``websockets`` sync client (its keyword arguments as given); the default open and
    close timeouts of 10 s are only hang guards."""
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    return connect(ws_url(server, target, scheme), **kwargs)


def closed_by_server(ws: ClientConnection, timeout: float = 10.0) -> ConnectionClosed:
    """The next thing from the server is its close: the ``ConnectionClosed`` that says how
    (``rcvd``: the server's close frame). A message before it is a failure."""
    try:
        message = ws.recv(timeout=timeout)
    except ConnectionClosed as exc:
        return exc
    raise AssertionError(f"a message where the server's close was expected: {message!r:.200}")


# -- the opening handshake -----------------------------------------------------------------

def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept the server owes for ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode()


def handshake(target: str, key: str, extra: Headers = (), method: str = "GET",
              version: str | None = "13", host: str = "127.0.0.1") -> bytes:
    """An upgrade request's bytes; no key header when ``key`` is empty, no version header
    when ``version`` is None; ``extra`` headers come last, in order."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- raw frames ----------------------------------------------------------------------------

@dataclass
class Frame:
    """A server frame as it came."""

    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    def close_code(self) -> int | None:
        assert self.opcode == CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


def extension_params(header: str) -> list[str]:
    return [part.strip() for part in header.split(";")]


def strict_inflate(inflater: zlib._Decompress, data: bytes) -> bytes:
    """Inflate ``data`` 64 bytes of output at a time. zlib checks a match's distance against
    its window only where the match reaches back past the current call's output, so this is
    what makes ``decompressobj(wbits=-N)`` refuse ("invalid distance too far back") data
    that reaches more than 2**N + 64 bytes back."""
    out = []
    while True:
        piece = inflater.decompress(data, 64)
        out.append(piece)
        data = inflater.unconsumed_tail
        if not data and len(piece) < 64:
            return b"".join(out)


class RawWS:
    """A WebSocket client over a plain socket: frames both ways after the handshake.

    ``RawWS.connect`` makes the handshake itself (and checks the 101 and its accept);
    ``RawWS(sock, rest, headers)`` takes over a socket a test upgraded by hand, ``rest``
    being what it read past the 101 head."""

    def __init__(self, sock: socket.socket, rest: bytes = b"", headers: Headers = (),
                 key: str | None = None) -> None:
        self.sock = sock
        self.buf = bytearray(rest)
        self.key = key
        self.header_list: list[tuple[str, str]] = list(headers)  # the 101's, in order
        self.headers = dict(self.header_list)
        self.inflater: zlib._Decompress | None = None
        self.deflater: zlib._Compress | None = None
        self.own_inflater: zlib._Decompress | None = None
        # The negotiated permessage-deflate parameters (None: not in use).
        self.deflate: dict[str, str | None] | None = None
        if "sec-websocket-extensions" in self.headers:
            params = extension_params(self.headers["sec-websocket-extensions"])
            assert params[0] == "permessage-deflate", params
            self.deflate = {}
            for param in params[1:]:
                name, sep, value = param.partition("=")
                self.deflate[name] = value if sep else None

    @classmethod
    def connect(cls, server, target: str, *, headers: Headers = (),
                extensions: str | None = None, rcvbuf: int | None = None,
                sndbuf: int | None = None, tail: bytes = b"", timeout: float = 10.0
                ) -> RawWS:
        """Open a connection to ``server`` and upgrade it: ``headers`` added to the request,
        then Sec-WebSocket-Extensions when ``extensions`` is given; ``tail``: bytes (frames)
        sent in the same write as the request; ``rcvbuf``/``sndbuf``: the socket's buffer
        sizes, set before connecting."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.settimeout(timeout)
            sock.connect((server.host, server.port))
            key = new_key()
            extra = list(headers)
            if extensions is not None:
                extra.append(("Sec-WebSocket-Extensions", extensions))
            sock.sendall(handshake(target, key, extra, host=f"{server.host}:{server.port}")
                         + tail)
            status, head, rest = read_head(sock, timeout=timeout)
            assert status == 101, (status, head, rest[:300])
            conn = cls(sock, rest, head, key)
            assert conn.headers.get("sec-websocket-accept") == accept_for(key), head
        except BaseException:
            sock.close()
            raise
        return conn

    def window_bits(self, side: str) -> int:
        """The LZ77 window ``side`` ("server" or "client") compresses with, as agreed."""
        assert self.deflate is not None
        return int(self.deflate.get(f"{side}_max_window_bits") or 15)

    def __enter__(self) -> RawWS:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- reading -----------------------------------------------------------------------
    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def exact(self, n: int) -> bytes:
        """The next ``n`` bytes off the wire, whatever they are."""
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def recv_frame(self, timeout: float = 10.0) -> Frame:
        self.sock.settimeout(timeout)
        b0, b1 = self.exact(2)
        assert not b1 & 0x80, "a server frame must not be masked (RFC 6455 §5.1)"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.exact(8))[0]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, self.exact(n))

    def inflate(self, payload: bytes) -> bytes:
        """A compressed message from the server, inflated with exactly the window it agreed
        to: one that reaches further back fails here ("invalid distance too far back")."""
        params = self.deflate
        assert params is not None, "RSV1 on a connection without permessage-deflate"
        if self.inflater is None or "server_no_context_takeover" in params:
            self.inflater = zlib.decompressobj(wbits=-self.window_bits("server"))
        return strict_inflate(self.inflater, payload + DEFLATE_TAIL)

    def recv_message(self, timeout: float = 10.0, answer_pings: bool = True
                     ) -> tuple[int, bytes]:
        """The next data message (opcode, payload), decompressed when RSV1 says so; pings
        are answered, pongs skipped, a close frame is an error."""
        opcode = None
        compressed = False
        parts: list[bytes] = []
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == PING:
                if answer_pings:
                    self.send(PONG, f.payload)
                continue
            if f.opcode == PONG:
                continue
            assert f.opcode != CLOSE, f"unexpected close {f.close_code()} {f.payload[2:]!r}"
            if opcode is None:
                assert f.opcode in (TEXT, BINARY), f
                opcode, compressed = f.opcode, bool(f.rsv & RSV1)
            else:
                assert f.opcode == CONT, f
            parts.append(f.payload)
            if f.fin:
                break
        data = b"".join(parts)
        return opcode, self.inflate(data) if compressed else data

    def recv_text(self, timeout: float = 10.0) -> str:
        opcode, data = self.recv_message(timeout)
        assert opcode == TEXT
        return data.decode("utf-8")

    def expect_close(self, timeout: float = 10.0) -> tuple[Frame, int]:
        """Read up to the server's close frame (pings are counted, not answered; any data
        frame is an error); returns the close frame and how many pings came before it."""
        pings = 0
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == PING:
                pings += 1
                continue
            if f.opcode == PONG:
                continue
            assert f.opcode == CLOSE, f"expected a close frame, got {f}"
            assert f.fin and f.rsv == 0
            return f, pings

    def read_until_eof(self, timeout: float = 10.0) -> tuple[bytes, bool]:
        """Everything until the server closes TCP; (data, closed). closed is False when the
        hang guard ran out first."""
        data = bytes(self.buf)
        self.buf.clear()
        rest, closed = read_until_closed(self.sock, timeout)
        return data + rest, closed

    def close_handshake(self, code: int = 1000, reason: bytes = b"") -> tuple[int | None, bytes]:
        """Send a close frame; the server's close frame comes back, as (code, reason), and
        then the end of TCP with nothing after it."""
        self.send(CLOSE, close_payload(code, reason))
        close, _ = self.expect_close()
        rest, closed = self.read_until_eof()
        assert closed, "the server kept TCP open after the closing handshake"
        assert rest == b"", f"bytes after the server's close frame: {rest[:100]!r}"
        return close.close_code(), close.payload[2:]

    # -- writing -----------------------------------------------------------------------
    def send(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_text(self, text: str) -> None:
        self.send(TEXT, text.encode("utf-8"))

    def send_compressed(self, opcode: int, data: bytes) -> int:
        """Send ``data`` compressed as agreed: within the client window, the context kept
        across messages unless client_no_context_takeover; returns the compressed size.
        zlib cannot compress with 8 bits (it takes 9), so every message is checked to
        inflate with the agreed window before it goes out."""
        assert self.deflate is not None
        bits = self.window_bits("client")
        if self.deflater is None or "client_no_context_takeover" in self.deflate:
            self.deflater = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
            self.own_inflater = zlib.decompressobj(wbits=-bits)
        out = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(DEFLATE_TAIL)
        assert strict_inflate(self.own_inflater, out) == data, "reaches past the window"
        self.send(opcode, out[:-4], rsv=RSV1)
        return len(out) - 4
