"""WebSocket on the wire: RFC 6455 framing rules and RFC 7692 permessage-deflate.

The real CLI serves ``tests.apps.wsproto_apps:app``; the tests speak raw frames over plain
sockets (``RawWS`` below builds masked client frames with any opcode, FIN and RSV bits and
reads the server's frames) or use the ``websockets`` client. What only the app sees (the
``websocket.disconnect`` code, how many messages ``send()`` let through) comes back through
the server's log (the app prints ``wsproto <id> ...``). Servers are shared by the module, one
per flag set; timeouts are hang guards only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import select
import socket
import struct
import time
import uuid
import zlib
from dataclasses import dataclass

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

from tests.support.server import betula
from tests.support.wire import read_response

APP = "tests.apps.wsproto_apps:app"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MIB = 1024 * 1024
SMALL_MAX_SIZE = 65536

pytestmark = pytest.mark.timeout(90)

# Opcodes and RSV bits (RFC 6455 §5.2).
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


# -- servers ------------------------------------------------------------------------------

def _start(*flags: str):
    return betula(APP, "--port", "0", "--timeout-graceful-shutdown", "3", *flags).start()


@pytest.fixture(scope="module")
def ws():
    """Every WebSocket setting at its default (16 MiB messages, deflate on, 5 s close)."""
    server = _start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small():
    """A 64 KiB message limit, a 4-message queue and a 0.5 s close timeout."""
    server = _start("--ws-max-size", str(SMALL_MAX_SIZE), "--ws-max-queue", "4",
                    "--ws-close-timeout", "0.5")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keepalive():
    server = _start("--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.5")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nodeflate():
    server = _start("--no-ws-per-message-deflate")
    yield server
    server.stop()


# -- raw frames ---------------------------------------------------------------------------

def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bool = True) -> bytes:
    """One client frame: masked unless told otherwise, any opcode / FIN / RSV bits."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _mask(payload, key)


def close_payload(code: int | None = None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def deflate(data: bytes) -> bytes:
    """A whole message compressed as permessage-deflate sends it (fresh context)."""
    comp = zlib.compressobj(wbits=-15)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(_DEFLATE_TAIL)
    return out[:-4]


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    def close_code(self) -> int | None:
        assert self.opcode == CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


class RawWS:
    """A WebSocket client over a plain socket: the handshake, then frames both ways."""

    def __init__(self, server, path: str, *, extensions: str | None = None,
                 rcvbuf: int | None = None, sndbuf: int | None = None, extra: bytes = b"",
                 timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.settimeout(timeout)
        sock.connect((server.host, server.port))
        self.sock = sock
        self.buf = bytearray()
        self.inflater: zlib._Decompress | None = None
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}:{server.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + extra)
        self.status, self.headers = self._head()
        assert self.status == 101, (self.status, self.headers)
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == expected

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

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(head[0].split(" ", 2)[1]), headers

    def recv_frame(self, timeout: float = 10.0) -> Frame:
        self.sock.settimeout(timeout)
        b0, b1 = self._exact(2)
        assert not b1 & 0x80, "a server frame must not be masked (RFC 6455 §5.1)"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, self._exact(n))

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
        if compressed:
            if self.inflater is None:
                self.inflater = zlib.decompressobj(wbits=-15)
            data = self.inflater.decompress(data + _DEFLATE_TAIL)
        return opcode, data

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return data, True
            except TimeoutError:
                return data, False
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def still_open(self, wait: float = 0.5) -> bool:
        """True when nothing arrives and the server has not closed within ``wait``."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return True
        except ConnectionResetError:
            return False
        return False  # data, or b"" for a closed connection

    # -- writing -----------------------------------------------------------------------
    def send(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_text(self, text: str) -> None:
        self.send(TEXT, text.encode("utf-8"))


def rid() -> str:
    return uuid.uuid4().hex[:12]


def disconnect_line(server, ident: str, timeout: float = 10.0) -> str:
    line = server.wait_for_log(rf"wsproto {ident} disconnect ", timeout)
    assert line is not None, f"the app never saw websocket.disconnect:\n{server.log}"
    return line


def assert_failed_with(server, conn: RawWS, ident: str, code: int) -> None:
    """The server sent a close frame with ``code``, closed TCP, and the app saw ``code``."""
    close, _ = conn.expect_close()
    assert close.close_code() == code, (close, server.log[-2000:])
    rest, closed = conn.read_until_eof()
    assert closed, "the server did not close the TCP connection after failing it"
    assert rest == b"", f"bytes after the close frame: {rest[:100]!r}"
    assert f"code={code} " in disconnect_line(server, ident)


def rss_kib(server) -> int:
    with open(f"/proc/{server.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def ws_url(server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def extension_params(header: str) -> list[str]:
    return [part.strip() for part in header.split(";")]


# -- protocol errors: close 1002 / 1007 / 1009 ------------------------------------------

PROTOCOL_ERRORS = {
    "unmasked-client-frame": [frame(TEXT, b"hello", mask=False)],
    "rsv1-without-extension": [frame(TEXT, b"hello", rsv=RSV1)],
    "rsv2": [frame(TEXT, b"hello", rsv=RSV2)],
    "rsv3": [frame(BINARY, b"hello", rsv=RSV3)],
    "rsv-on-ping": [frame(PING, b"x", rsv=RSV1)],
    "reserved-opcode-0x3": [frame(0x3, b"x")],
    "reserved-opcode-0x7": [frame(0x7)],
    "reserved-opcode-0xB": [frame(0xB, b"x")],
    "reserved-opcode-0xF": [frame(0xF)],
    "fragmented-ping": [frame(PING, b"x", fin=False)],
    "fragmented-close": [frame(CLOSE, close_payload(1000), fin=False)],
    "ping-payload-126": [frame(PING, b"p" * 126)],
    "pong-payload-126": [frame(PONG, b"p" * 126)],
    "close-payload-126": [frame(CLOSE, close_payload(1000, b"r" * 124))],
    "continuation-without-message": [frame(CONT, b"orphan")],
    "final-continuation-without-message": [frame(CONT, b"orphan", fin=True)],
    "text-while-fragmented": [frame(TEXT, b"one", fin=False), frame(TEXT, b"two")],
    "binary-while-fragmented": [frame(BINARY, b"one", fin=False), frame(BINARY, b"two")],
    "text-while-fragmented-binary": [frame(BINARY, b"1", fin=False), frame(TEXT, b"2")],
    "close-payload-1-byte": [frame(CLOSE, b"\x03")],
    "close-code-999": [frame(CLOSE, close_payload(999))],
    "close-code-1004": [frame(CLOSE, close_payload(1004))],
    "close-code-1005-on-wire": [frame(CLOSE, close_payload(1005))],
    "close-code-1006-on-wire": [frame(CLOSE, close_payload(1006))],
    "close-code-1015-on-wire": [frame(CLOSE, close_payload(1015))],
    "close-code-5000": [frame(CLOSE, close_payload(5000))],
}


@pytest.mark.parametrize("frames", list(PROTOCOL_ERRORS.values()), ids=list(PROTOCOL_ERRORS))
def test_protocol_error_closes_1002(ws, frames):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(b"".join(frames))
        assert_failed_with(ws, conn, ident, 1002)


def test_protocol_error_after_good_messages(ws):
    """Messages before the bad frame are delivered; the bad frame then fails the connection."""
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}&log=1") as conn:
        conn.sock.sendall(frame(TEXT, b"first") + frame(BINARY, b"second") +
                          frame(0x3, b"bad"))
        assert_failed_with(ws, conn, ident, 1002)
    got = re.findall(rf"wsproto {ident} (got .*|disconnect .*)", ws.log)
    assert got[:2] == ["got text 'first'", "got bytes b'second'"], got
    assert got[-1].startswith("disconnect code=1002 "), got


INVALID_UTF8 = {
    "single-frame-0xff": [frame(TEXT, b"abc\xff")],
    "overlong-encoding": [frame(TEXT, b"\xc0\xaf")],
    "utf16-surrogate": [frame(TEXT, b"\xed\xa0\x80")],
    "above-u10ffff": [frame(TEXT, b"\xf4\x90\x80\x80")],
    "truncated-sequence": [frame(TEXT, b"ok\xe2\x82")],
    "split-across-fragments": [frame(TEXT, b"ok\xe2\x82", fin=False), frame(CONT, b"(")],
    "bad-in-middle-fragment": [frame(TEXT, b"fine ", fin=False),
                               frame(CONT, b"\xce", fin=False), frame(CONT, b"\xffend")],
    "truncated-at-final-fragment": [frame(TEXT, b"ok\xe2\x82", fin=False), frame(CONT, b"")],
    "close-reason": [frame(CLOSE, close_payload(1000, b"bad \xff reason"))],
}


@pytest.mark.parametrize("frames", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
def test_invalid_utf8_closes_1007(ws, frames):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(b"".join(frames))
        assert_failed_with(ws, conn, ident, 1007)


def test_valid_utf8_split_inside_characters(ws):
    """Multi-byte characters cut at every byte offset across fragments are valid text."""
    text = "aé€😀z" * 3
    raw = text.encode("utf-8")
    with RawWS(ws, f"/echo?id={rid()}") as conn:
        conn.send(TEXT, raw[:1], fin=False)
        for i in range(1, len(raw) - 1):
            conn.send(CONT, raw[i:i + 1], fin=False)
        conn.send(CONT, raw[-1:])
        assert conn.recv_text() == text


def test_message_at_max_size_is_accepted(small):
    payload = os.urandom(SMALL_MAX_SIZE)
    with RawWS(small, f"/echo?id={rid()}") as conn:
        conn.send(BINARY, payload)
        assert conn.recv_message() == (BINARY, payload)
        conn.send(BINARY, payload[:30000], fin=False)
        conn.send(CONT, payload[30000:])
        assert conn.recv_message() == (BINARY, payload)


TOO_BIG = {
    "single-frame": [frame(BINARY, b"x" * (SMALL_MAX_SIZE + 1))],
    "single-text-frame": [frame(TEXT, b"x" * (SMALL_MAX_SIZE + 1))],
    "fragmented": [frame(BINARY, b"x" * 40000, fin=False), frame(CONT, b"y" * 40000)],
    "many-small-fragments": [frame(TEXT, b"z" * 1000, fin=False)] +
    [frame(CONT, b"z" * 1000, fin=False) for _ in range(70)] + [frame(CONT, b"")],
}


@pytest.mark.parametrize("frames", list(TOO_BIG.values()), ids=list(TOO_BIG))
def test_message_over_max_size_closes_1009(small, frames):
    ident = rid()
    with RawWS(small, f"/echo?id={ident}") as conn:
        try:
            conn.sock.sendall(b"".join(frames))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it has read everything
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_message_over_max_size_closes_1009(small):
    """A small compressed frame that inflates past --ws-max-size (a zip bomb) is refused."""
    ident = rid()
    with RawWS(small, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        assert conn.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        bomb = deflate(b"a" * (4 * SMALL_MAX_SIZE))
        assert len(bomb) < 2000
        conn.send(TEXT, bomb, rsv=RSV1)
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_fragmented_message_over_max_size_closes_1009(small):
    ident = rid()
    with RawWS(small, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        bomb = deflate(b"b" * (2 * SMALL_MAX_SIZE))
        half = len(bomb) // 2
        conn.send(BINARY, bomb[:half], rsv=RSV1, fin=False)
        conn.send(CONT, bomb[half:])
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_message_with_websockets_client_over_max_size(small):
    ident = rid()
    with connect(ws_url(small, f"/echo?id={ident}"), ping_interval=None,
                 open_timeout=10) as client:
        client.send("a" * (3 * SMALL_MAX_SIZE))
        with pytest.raises(ConnectionClosed) as info:
            client.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert "code=1009 " in disconnect_line(small, ident)


def test_rsv1_on_continuation_with_deflate_closes_1002(ws):
    """RFC 7692 §6.1: RSV1 marks only the first frame of a compressed message."""
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        data = deflate(b"hello hello hello")
        conn.send(TEXT, data[:3], rsv=RSV1, fin=False)
        conn.send(CONT, data[3:], rsv=RSV1)
        assert_failed_with(ws, conn, ident, 1002)


def test_rsv1_on_control_frame_with_deflate_closes_1002(ws):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(PING, b"x", rsv=RSV1)
        assert_failed_with(ws, conn, ident, 1002)


def test_rsv2_with_deflate_closes_1002(ws):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(TEXT, deflate(b"hi"), rsv=RSV1 | RSV2)
        assert_failed_with(ws, conn, ident, 1002)


# -- closing handshake --------------------------------------------------------------------

@pytest.mark.parametrize("code,reason", [(1000, "bye"), (1001, ""), (4001, "custom é")])
def test_client_close_is_echoed_then_tcp_closed(ws, code, reason):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.send_text("before close")
        assert conn.recv_text() == "before close"
        conn.send(CLOSE, close_payload(code, reason.encode("utf-8")))
        close, _ = conn.expect_close()
        assert close.close_code() == code
        assert close.close_reason() == reason
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    line = disconnect_line(ws, ident)
    assert f"code={code} reason={reason!r}" in line


def test_empty_close_frame_gives_1005(ws):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.send(CLOSE)
        close, _ = conn.expect_close()
        # The echo carries no status code either (RFC 6455 §5.5.1: the body is optional).
        assert close.close_code() in (None, 1000)
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert "code=1005 " in disconnect_line(ws, ident)


def test_data_after_client_close_is_ignored(ws):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"too late"))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert "code=1000 " in disconnect_line(ws, ident)


def test_close_inside_fragmented_message_code_is_consistent(ws):
    """RFC 6455 §5.4 lets control frames come between fragments. Whichever way the server
    takes a close there (echo 1000, or fail with 1002), the app must see the code the
    connection actually closed with."""
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(frame(TEXT, b"part", fin=False) +
                          frame(CLOSE, close_payload(1000, b"bye")))
        close, _ = conn.expect_close()
        sent = close.close_code()
        assert sent in (1000, 1002)
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert f"code={sent} " in disconnect_line(ws, ident)


def test_server_close_waits_for_client_close(ws):
    """The app's websocket.close sends a close frame; the server then waits (close timeout
    5 s here) for the client's close before it closes TCP, and sends nothing more."""
    ident = rid()
    with RawWS(ws, f"/close?id={ident}&code=4000&reason=done") as conn:
        close, _ = conn.expect_close()
        assert close.close_code() == 4000
        assert close.close_reason() == "done"
        assert conn.still_open(0.5), "the server closed TCP before the client's close frame"
        conn.send(CLOSE, close_payload(4000, b"done"))
        rest, closed = conn.read_until_eof()
        assert closed, "the server kept TCP open after the closing handshake"
        assert rest == b"", f"frames after the server's close: {rest[:100]!r}"
    disconnect_line(ws, ident)


def test_server_close_then_client_data_then_close(ws):
    """Data frames the client sent before it saw the server's close are not an error."""
    ident = rid()
    with RawWS(ws, f"/close?id={ident}&code=1000") as conn:
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        conn.sock.sendall(frame(TEXT, b"in flight") + frame(CLOSE, close_payload(1000)))
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""


def test_client_that_never_answers_close_is_dropped(small):
    """--ws-close-timeout 0.5: no close frame back, so the server drops the connection."""
    ident = rid()
    with RawWS(small, f"/close?id={ident}&code=1000&reason=timeout") as conn:
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        rest, closed = conn.read_until_eof(timeout=15)
        assert closed, "the server never dropped a client that did not answer its close"
        assert rest == b""
    disconnect_line(small, ident)


# -- ping / pong --------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"hello", b"", b"\x00\xff" * 62 + b"!"],
                         ids=["hello", "empty", "125-bytes"])
def test_ping_gets_pong_with_same_payload(ws, payload):
    with RawWS(ws, f"/echo?id={rid()}") as conn:
        conn.send(PING, payload)
        f = conn.recv_frame()
        assert (f.opcode, f.fin, f.rsv, f.payload) == (PONG, True, 0, payload)


def test_ping_between_fragments(ws):
    """RFC 6455 §5.4: control frames may come between the fragments of a message."""
    with RawWS(ws, f"/echo?id={rid()}") as conn:
        conn.send(TEXT, b"frag", fin=False)
        conn.send(PING, b"mid")
        conn.send(CONT, b"ment", fin=False)
        conn.send(PONG, b"unsolicited")
        conn.send(CONT, b"ed")
        f = conn.recv_frame()
        assert (f.opcode, f.payload) == (PONG, b"mid")
        assert conn.recv_message() == (TEXT, b"fragmented")


def test_unsolicited_pong_is_ignored(ws):
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.send(PONG, b"nobody asked")
        conn.send(PONG)
        conn.send_text("still open")
        f = conn.recv_frame()
        assert (f.opcode, f.payload) == (TEXT, b"still open")
        conn.send(CLOSE, close_payload(1000))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
    assert "code=1000 " in disconnect_line(ws, ident)


# -- keepalive ----------------------------------------------------------------------------

def test_keepalive_closes_client_that_never_pongs(keepalive):
    ident = rid()
    with RawWS(keepalive, f"/echo?id={ident}") as conn:
        close, pings = conn.expect_close(timeout=15)
        assert pings >= 1, "no ping before the keepalive close"
        assert close.close_code() == 1011
        rest, closed = conn.read_until_eof()
        assert closed, "TCP still open after the keepalive close"
        assert rest == b""
    assert "code=1011 " in disconnect_line(keepalive, ident)
    assert keepalive.wait_for_log(r"keepalive", 5) is not None


def test_keepalive_client_answering_pings_stays(keepalive):
    """A raw client that answers each ping with its payload survives many intervals."""
    ident = rid()
    with RawWS(keepalive, f"/echo?id={ident}") as conn:
        payloads = set()
        for _ in range(6):
            f = conn.recv_frame(timeout=10)
            assert f.opcode == PING, f"expected a ping, got {f}"
            payloads.add(f.payload)
            conn.send(PONG, f.payload)
        assert len(payloads) > 1, "the server repeated one ping: our pongs did not count"
        conn.send_text("alive")
        assert conn.recv_text() == "alive"


def test_keepalive_websockets_client_stays(keepalive):
    """The websockets client answers pings on its own: several intervals pass, no close."""
    ident = rid()
    with connect(ws_url(keepalive, f"/echo?id={ident}"), ping_interval=None,
                 open_timeout=10) as client:
        for i in range(4):
            time.sleep(0.5)
            client.send(f"tick {i}")
            assert client.recv(timeout=10) == f"tick {i}"
    line = disconnect_line(keepalive, ident)
    assert "code=1000 " in line


@pytest.mark.parametrize("how", ["ping-timeout", "protocol-error"])
def test_failed_connection_to_non_reading_client_is_dropped(keepalive, ws, how):
    """A client that stops reading while the app streams to it, then either never answers
    pings (keepalive) or sends a bad frame: the server fails the connection, so it must drop
    it (not wait forever for its buffered output to drain) and the app's blocked send()
    must return."""
    server = keepalive if how == "ping-timeout" else ws
    ident = rid()
    with RawWS(server, f"/send?id={ident}&count=100&size={MIB}", rcvbuf=65536) as conn:
        assert server.wait_for_log(rf"wsproto {ident} sent=1\b", 10)
        if how == "protocol-error":
            conn.send(0x3, b"bad")
        line = server.wait_for_log(rf"wsproto {ident} (send failed|disconnect)", 4)
        assert line is not None, "the app is still blocked in send() to a failed connection"


def test_abrupt_tcp_close_gives_1006(ws):
    ident = rid()
    conn = RawWS(ws, f"/echo?id={ident}")
    conn.send_text("hi")
    assert conn.recv_text() == "hi"
    conn.close()
    assert "code=1006 " in disconnect_line(ws, ident)


def test_half_close_without_close_frame_gives_1006(ws):
    """TCP EOF from the client without a close frame: the server closes, the app gets 1006."""
    ident = rid()
    with RawWS(ws, f"/echo?id={ident}") as conn:
        conn.sock.shutdown(socket.SHUT_WR)
        rest, closed = conn.read_until_eof()
        assert closed
    assert "code=1006 " in disconnect_line(ws, ident)


def test_ping_flood_from_non_reading_client_is_bounded(serve):
    """A client that sends pings but never reads the pongs: the server must stop reading (or
    drop the client) instead of buffering every pong; its RSS must stay bounded."""
    server = serve(APP, "--timeout-graceful-shutdown", "2")
    ping = frame(PING, b"p" * 125)
    blob = ping * (MIB // len(ping))
    cap = 32  # MiB of pings: ~31 MiB of pongs if the server buffered them all
    with RawWS(server, f"/echo?id={rid()}", rcvbuf=65536) as conn:
        baseline = rss_kib(server)
        conn.sock.settimeout(5)
        blocked = False
        for _ in range(cap):
            try:
                conn.sock.sendall(blob)
            except TimeoutError:
                blocked = True
                break
            except (BrokenPipeError, ConnectionResetError):
                blocked = True  # dropped: bounded too
                break
        if not blocked:
            # Let the server work through what it read, then weigh it.
            last, stable = -1, 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and stable < 4:
                time.sleep(0.25)
                now = rss_kib(server)
                stable = stable + 1 if abs(now - last) < 1024 else 0
                last = now
            grown = rss_kib(server) - baseline
            assert grown < 16 * 1024, f"server RSS grew {grown} KiB buffering pongs"


# -- flow control -------------------------------------------------------------------------

def _max_sent(server, ident: str) -> int:
    counts = [int(m.group(1)) for m in re.finditer(rf"wsproto {ident} sent=(\d+)", server.log)]
    return max(counts, default=0)


def test_send_blocks_when_client_does_not_read(ws):
    """100 x 1 MiB to a client that does not read: send() waits, the server's RSS stays
    flat; once the client reads, every message arrives whole."""
    ident = rid()
    total, size = 100, MIB
    baseline = rss_kib(ws)
    with RawWS(ws, f"/send?id={ident}&count={total}&size={size}", rcvbuf=65536) as conn:
        # Wait until the app stops making progress (hang guard: 20 s).
        last, stable = -1, 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stable < 6:
            time.sleep(0.25)
            count = _max_sent(ws, ident)
            stable = stable + 1 if count == last and count > 0 else 0
            last = count
        sent = _max_sent(ws, ident)
        grown = rss_kib(ws) - baseline
        assert 0 < sent < total // 3, f"send() let {sent} of {total} MiB through"
        assert grown < 40 * 1024, f"server RSS grew {grown} KiB with the client not reading"
        first = None
        for _ in range(total):
            opcode, data = conn.recv_message(timeout=20)
            assert opcode == BINARY and len(data) == size
            if first is None:
                first = data
            assert data == first
        conn.send(CLOSE, close_payload(1000))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
    assert _max_sent(ws, ident) == total
    disconnect_line(ws, ident)


def _numbered(i: int, size: int) -> bytes:
    return i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4)


def test_server_stops_reading_while_app_does_not_receive(small):
    """--ws-max-queue 4: while the app does not call receive() the server stops reading, so
    the client's sends block; released, the app gets every message, in order."""
    ident = rid()
    size, cap = 32 * 1024, 4096  # cap: 128 MiB, far more than the socket buffers hold
    with RawWS(small, f"/hold?id={ident}", sndbuf=65536) as conn:
        assert small.wait_for_log(rf"wsproto {ident} holding", 10)
        sock = conn.sock
        sock.setblocking(False)
        sent = 0
        pending = memoryview(b"")
        blocked = False
        while sent < cap:
            if not pending:
                pending = memoryview(frame(BINARY, _numbered(sent, size)))
            try:
                n = sock.send(pending)
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], 2.0)
                if not writable:
                    blocked = True
                    break
                continue
            pending = pending[n:]
            if not pending:
                sent += 1
        assert blocked, f"the server read all {sent} messages for an app that is not receiving"
        # Release the app over a second (HTTP) connection.
        with socket.create_connection((small.host, small.port), timeout=10) as http:
            http.sendall(f"GET /release?id={ident} HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n".encode())
            status, _, _, body = read_response(http)
            assert (status, body) == (200, b"released")
        sock.settimeout(30)
        if pending:
            sock.sendall(pending)
            sent += 1
        for _ in range(8):
            sock.sendall(frame(BINARY, _numbered(sent, size)))
            sent += 1
        conn.send_text("end")
        assert conn.recv_text(timeout=30) == f"count={sent} inorder=True"
        conn.send(CLOSE, close_payload(1000))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000


# -- permessage-deflate ------------------------------------------------------------------

def test_deflate_negotiated_with_websockets_client(ws):
    ident = rid()
    text = "hello deflate " * 2000
    with connect(ws_url(ws, f"/echo?id={ident}&describe=1"), ping_interval=None,
                 open_timeout=10) as client:
        header = client.response.headers.get("Sec-WebSocket-Extensions")
        assert header is not None and extension_params(header)[0] == "permessage-deflate"
        client.send(text)
        expected = f"text {len(text)} {hashlib.sha256(text.encode()).hexdigest()}"
        assert client.recv(timeout=10) == expected
        client.send(text.encode())
        expected = f"bytes {len(text)} {hashlib.sha256(text.encode()).hexdigest()}"
        assert client.recv(timeout=10) == expected


def test_deflate_raw_frames_both_ways(ws):
    """A raw client compresses by hand; the app sees the plain text; the server's answers
    are compressed (RSV1) and keep their context across messages."""
    with RawWS(ws, f"/echo?id={rid()}", extensions="permessage-deflate") as conn:
        params = extension_params(conn.headers["sec-websocket-extensions"])
        assert params[0] == "permessage-deflate"
        for i in range(5):
            text = f"message {i}: " + "compressible text " * 200
            conn.send(TEXT, deflate(text.encode()), rsv=RSV1)
            f = conn.recv_frame()
            assert f.opcode == TEXT and f.fin and f.rsv == RSV1, f
            assert len(f.payload) < len(text) // 4
            if conn.inflater is None:
                conn.inflater = zlib.decompressobj(wbits=-15)
            assert conn.inflater.decompress(f.payload + _DEFLATE_TAIL) == text.encode()
        # An uncompressed message (RSV1 clear) is allowed on a deflate connection too.
        conn.send(TEXT, b"plain")
        assert conn.recv_text() == "plain"


def test_no_deflate_setting(nodeflate):
    with connect(ws_url(nodeflate, f"/echo?id={rid()}"), ping_interval=None,
                 open_timeout=10) as client:
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        text = "not compressed " * 500
        client.send(text)
        assert client.recv(timeout=10) == text
    with RawWS(nodeflate, f"/echo?id={rid()}", extensions="permessage-deflate") as conn:
        assert "sec-websocket-extensions" not in conn.headers
        conn.send_text("raw")
        f = conn.recv_frame()
        assert (f.opcode, f.rsv, f.payload) == (TEXT, 0, b"raw")


def test_rsv1_without_negotiated_deflate_closes_1002(nodeflate):
    ident = rid()
    with RawWS(nodeflate, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(TEXT, deflate(b"hello"), rsv=RSV1)
        assert_failed_with(nodeflate, conn, ident, 1002)


def test_deflate_parameters_honoured(ws):
    ident = rid()
    factory = ClientPerMessageDeflateFactory(
        client_no_context_takeover=True, server_no_context_takeover=True,
        server_max_window_bits=10)
    with connect(ws_url(ws, f"/echo?id={ident}"), ping_interval=None, open_timeout=10,
                 compression=None, extensions=[factory], max_size=None) as client:
        params = extension_params(client.response.headers["Sec-WebSocket-Extensions"])
        assert params[0] == "permessage-deflate"
        assert "server_no_context_takeover" in params
        assert "client_no_context_takeover" in params
        assert "server_max_window_bits=10" in params
        rng = random.Random(7)
        for i in range(200):
            text = f"{i} " + "same words again " * rng.randint(1, 300) + "é€😀" * (i % 7)
            client.send(text)
            assert client.recv(timeout=10) == text
            data = bytes(rng.getrandbits(8) for _ in range(50)) * rng.randint(1, 100)
            client.send(data)
            assert client.recv(timeout=10) == data


def test_deflate_raw_offer_parameters(ws):
    """The response to a hand-written offer: window bits lowered, no-context-takeover kept;
    without context takeover each server message decompresses on its own."""
    offer = ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
             "server_max_window_bits=10")
    with RawWS(ws, f"/echo?id={rid()}", extensions=offer) as conn:
        params = extension_params(conn.headers["sec-websocket-extensions"])
        assert params[0] == "permessage-deflate"
        assert {"server_no_context_takeover", "client_no_context_takeover",
                "server_max_window_bits=10"} <= set(params)
        for i in range(20):
            text = (f"round {i} " + "the same sentence again and again " * 50).encode()
            conn.send(TEXT, deflate(text), rsv=RSV1)
            f = conn.recv_frame()
            assert f.rsv == RSV1 and f.opcode == TEXT
            fresh = zlib.decompressobj(wbits=-10)  # a new context every message
            assert fresh.decompress(f.payload + _DEFLATE_TAIL) == text


def test_deflate_large_messages_round_trip(ws):
    rng = random.Random(11)
    words = ["alpha", "beta", "gamma", "delta", "é", "€", "😀", "\n"]
    text = "".join(rng.choice(words) for _ in range(1_000_000))
    data = os.urandom(MIB) + b"\x00" * (2 * MIB)
    with connect(ws_url(ws, f"/echo?id={rid()}"), ping_interval=None, open_timeout=10,
                 max_size=None) as client:
        assert client.response.headers.get("Sec-WebSocket-Extensions")
        client.send(text)
        assert client.recv(timeout=30) == text
        client.send(data)
        assert client.recv(timeout=30) == data


# -- large and fragmented messages -------------------------------------------------------

def test_large_messages_round_trip_uncompressed(ws):
    data = os.urandom(MIB)
    text = os.urandom(2 * MIB).hex()[: 4 * MIB] + "é€😀" * (MIB // 9 + 1)
    assert len(text.encode()) >= 5 * MIB
    with connect(ws_url(ws, f"/echo?id={rid()}"), ping_interval=None, open_timeout=10,
                 compression=None, max_size=None) as client:
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        client.send(data)
        assert client.recv(timeout=30) == data
        client.send(text)
        assert client.recv(timeout=30) == text


def test_large_binary_raw_64bit_length(ws):
    data = os.urandom(MIB)
    with RawWS(ws, f"/echo?id={rid()}") as conn:
        conn.send(BINARY, data)
        f = conn.recv_frame(timeout=30)
        assert (f.opcode, f.fin, f.rsv) == (BINARY, True, 0)
        assert f.payload == data


def test_many_fragments_reassembled(ws):
    rng = random.Random(3)
    text = "".join(rng.choice("ab é€😀") for _ in range(20000))
    raw = text.encode("utf-8")
    cuts = sorted(rng.sample(range(1, len(raw)), 999))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    binary = os.urandom(300 * 1024)
    with RawWS(ws, f"/echo?id={rid()}&describe=1") as conn:
        stream = [frame(TEXT, pieces[0], fin=False)]
        stream += [frame(CONT, p, fin=False) for p in pieces[1:-1]]
        stream.append(frame(CONT, pieces[-1]))
        conn.sock.sendall(b"".join(stream))
        assert conn.recv_text() == f"text {len(text)} {hashlib.sha256(raw).hexdigest()}"
        stream = [frame(BINARY, binary[:1024], fin=False)]
        stream += [frame(CONT, binary[i:i + 1024], fin=False)
                   for i in range(1024, len(binary) - 1024, 1024)]
        stream.append(frame(CONT, binary[len(binary) - 1024:]))
        conn.sock.sendall(b"".join(stream))
        assert conn.recv_text() == f"bytes {len(binary)} {hashlib.sha256(binary).hexdigest()}"
        # Empty fragments are legal, even an empty first one.
        conn.sock.sendall(frame(TEXT, b"", fin=False) + frame(CONT, b"", fin=False) +
                          frame(CONT, b"x") + frame(BINARY, b"") + frame(TEXT, b""))
        assert conn.recv_text() == f"text 1 {hashlib.sha256(b'x').hexdigest()}"
        assert conn.recv_text() == f"bytes 0 {hashlib.sha256(b'').hexdigest()}"
        assert conn.recv_text() == f"text 0 {hashlib.sha256(b'').hexdigest()}"


def test_frames_sent_with_the_handshake(ws):
    """Frames the client sends right behind the handshake request (same write) are kept."""
    extra = frame(TEXT, b"early one") + frame(BINARY, b"early two") + frame(PING, b"p")
    with RawWS(ws, f"/echo?id={rid()}", extra=extra) as conn:
        f = conn.recv_frame()
        assert (f.opcode, f.payload) in ((PONG, b"p"), (TEXT, b"early one"))
        seen = [f]
        while len(seen) < 3:
            seen.append(conn.recv_frame())
        data = [(x.opcode, x.payload) for x in seen if x.opcode != PONG]
        assert data == [(TEXT, b"early one"), (BINARY, b"early two")]
        assert (PONG, b"p") in [(x.opcode, x.payload) for x in seen]


def test_server_frames_are_unmasked_and_minimal(ws):
    """Server frames: no mask, RSV clear without extensions, shortest length encoding."""
    with RawWS(ws, f"/echo?id={rid()}") as conn:
        for n in (0, 125, 126, 65535, 65536):
            conn.send(BINARY, b"q" * n)
            conn.sock.settimeout(10)
            b0, b1 = conn._exact(2)
            assert b0 == 0x80 | BINARY and not b1 & 0x80
            length = b1 & 0x7F
            if n < 126:
                assert length == n
            elif n < 65536:
                assert length == 126 and struct.unpack("!H", conn._exact(2))[0] == n
            else:
                assert length == 127 and struct.unpack("!Q", conn._exact(8))[0] == n
            assert conn._exact(n) == b"q" * n
