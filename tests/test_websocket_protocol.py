"""WebSocket on the wire: RFC 6455 framing rules and RFC 7692 permessage-deflate.

The real CLI serves ``tests.apps.wsproto_apps:app``; the tests speak raw frames over plain
sockets (``RawWS`` from tests/support/wsclient.py sends masked client frames with any opcode,
FIN and RSV bits, built by tests/support/ws.py, and reads the server's frames) or use the
``websockets`` client. What only the app sees (the ``websocket.disconnect`` code, how many
messages ``send()`` let through) comes back through the server's log (the app prints
``wsproto <id> ...``). Servers are shared by the module, one per flag set; timeouts are hang
guards only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import re
import select
import socket
import struct
import threading
import zlib

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode

from tests.support.logs import new_id
from tests.support.memory import MIB, PeakRSS
from tests.support.server import betula
from tests.support.wire import read_response
from tests.support.ws import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    close_payload,
    deflate,
    frame,
)
from tests.support.wsclient import RawWS, extension_params, ws_connect

APP = "tests.apps.wsproto_apps:app"
SMALL_MAX_SIZE = 65536
# The windows the server offers on its own (betula/protocols/websocket.py: 4 KiB each).
SERVER_WINDOW_BITS = 12

pytestmark = pytest.mark.timeout(90)


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
    """Pings every 0.3 s, 0.5 s for the pong: for tests whose verdict is "closed" (a short
    deadline only makes them quick). A close timeout far beyond any hang guard, so a test
    that sees a connection dropped knows the close timeout did not do it."""
    server = _start("--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.5",
                    "--ws-close-timeout", "60")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keepalive_patient():
    """Pings every 0.2 s, 10 s for the pong: for tests whose verdict is "stays open". A
    pong that comes late on a loaded machine (the test's thread, or the websockets client's,
    not scheduled for a while) must not fail them; a pong that never counts still does,
    as the server sends no new ping while one is unanswered."""
    server = _start("--ws-ping-interval", "0.2", "--ws-ping-timeout", "10",
                    "--ws-close-timeout", "60")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lingering():
    """No keepalive, and a close timeout far beyond any hang guard."""
    server = _start("--ws-ping-interval", "0", "--ws-close-timeout", "60")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nodeflate():
    server = _start("--no-ws-per-message-deflate")
    yield server
    server.stop()


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
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(b"".join(frames))
        assert_failed_with(ws, conn, ident, 1002)


def test_protocol_error_after_good_messages(ws):
    """Messages before the bad frame are delivered; the bad frame then fails the connection."""
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}&log=1") as conn:
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
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(b"".join(frames))
        assert_failed_with(ws, conn, ident, 1007)


def test_valid_utf8_split_inside_characters(ws):
    """Multi-byte characters cut at every byte offset across fragments are valid text."""
    text = "aé€😀z" * 3
    raw = text.encode("utf-8")
    with RawWS.connect(ws, f"/echo?id={new_id()}") as conn:
        conn.send(TEXT, raw[:1], fin=False)
        for i in range(1, len(raw) - 1):
            conn.send(CONT, raw[i:i + 1], fin=False)
        conn.send(CONT, raw[-1:])
        assert conn.recv_text() == text


def test_message_at_max_size_is_accepted(small):
    payload = os.urandom(SMALL_MAX_SIZE)
    with RawWS.connect(small, f"/echo?id={new_id()}") as conn:
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
    ident = new_id()
    with RawWS.connect(small, f"/echo?id={ident}") as conn:
        try:
            conn.sock.sendall(b"".join(frames))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it has read everything
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_message_over_max_size_closes_1009(small):
    """A small compressed frame that inflates past --ws-max-size (a zip bomb) is refused."""
    ident = new_id()
    with RawWS.connect(small, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        assert conn.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        bomb = deflate(b"a" * (4 * SMALL_MAX_SIZE))
        assert len(bomb) < 2000
        conn.send(TEXT, bomb, rsv=RSV1)
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_fragmented_message_over_max_size_closes_1009(small):
    ident = new_id()
    with RawWS.connect(small, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        bomb = deflate(b"b" * (2 * SMALL_MAX_SIZE))
        half = len(bomb) // 2
        conn.send(BINARY, bomb[:half], rsv=RSV1, fin=False)
        conn.send(CONT, bomb[half:])
        assert_failed_with(small, conn, ident, 1009)


def test_compressed_message_with_websockets_client_over_max_size(small):
    ident = new_id()
    with ws_connect(small, f"/echo?id={ident}", ping_interval=None) as client:
        client.send("a" * (3 * SMALL_MAX_SIZE))
        with pytest.raises(ConnectionClosed) as info:
            client.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert "code=1009 " in disconnect_line(small, ident)


def test_rsv1_on_continuation_with_deflate_closes_1002(ws):
    """RFC 7692 §6.1: RSV1 marks only the first frame of a compressed message."""
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        data = deflate(b"hello hello hello")
        conn.send(TEXT, data[:3], rsv=RSV1, fin=False)
        conn.send(CONT, data[3:], rsv=RSV1)
        assert_failed_with(ws, conn, ident, 1002)


def test_rsv1_on_control_frame_with_deflate_closes_1002(ws):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(PING, b"x", rsv=RSV1)
        assert_failed_with(ws, conn, ident, 1002)


def test_rsv2_with_deflate_closes_1002(ws):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(TEXT, deflate(b"hi"), rsv=RSV1 | RSV2)
        assert_failed_with(ws, conn, ident, 1002)


# -- closing handshake --------------------------------------------------------------------

@pytest.mark.parametrize("code,reason", [(1000, "bye"), (1001, ""), (4001, "custom é")])
def test_client_close_is_echoed_then_tcp_closed(ws, code, reason):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
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
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.send(CLOSE)
        close, _ = conn.expect_close()
        # The echo carries no status code either (RFC 6455 §5.5.1: the body is optional).
        assert close.close_code() in (None, 1000)
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert "code=1005 " in disconnect_line(ws, ident)


def test_data_after_client_close_is_ignored(ws):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"too late"))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert "code=1000 " in disconnect_line(ws, ident)


@pytest.mark.parametrize("after", [b"", frame(CONT, b"more")], ids=["alone", "then-fragment"])
def test_close_inside_fragmented_message_is_a_clean_close(ws, after):
    """RFC 6455 §5.4 lets control frames come between fragments: a close there is echoed
    (1000), the unfinished message is dropped, and a fragment after the close is ignored
    (Autobahn 7.1.5); the app sees the code the connection closed with."""
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.sock.sendall(frame(TEXT, b"part", fin=False) +
                          frame(CLOSE, close_payload(1000, b"bye")) + after)
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""
    assert "code=1000 " in disconnect_line(ws, ident)


def test_server_close_waits_for_client_close(ws):
    """The app's websocket.close sends a close frame; the server then waits (close timeout
    5 s here) for the client's close before it closes TCP, and sends nothing more."""
    ident = new_id()
    with RawWS.connect(ws, f"/close?id={ident}&code=4000&reason=done") as conn:
        close, _ = conn.expect_close()
        assert close.close_code() == 4000
        assert close.close_reason() == "done"
        # Still open and reading: a ping after the server's close gets its pong (RFC 6455
        # §5.5.2: a pong is owed until the peer's close frame has come), not an EOF.
        conn.send(PING, b"still there?")
        try:
            f = conn.recv_frame()
        except ConnectionError:
            pytest.fail("the server closed TCP before the client's close frame")
        assert (f.opcode, f.payload) == (PONG, b"still there?"), f
        conn.send(CLOSE, close_payload(4000, b"done"))
        rest, closed = conn.read_until_eof()
        assert closed, "the server kept TCP open after the closing handshake"
        assert rest == b"", f"frames after the server's close: {rest[:100]!r}"
    disconnect_line(ws, ident)


def test_server_close_then_client_data_then_close(ws):
    """Data frames the client sent before it saw the server's close are not an error."""
    ident = new_id()
    with RawWS.connect(ws, f"/close?id={ident}&code=1000") as conn:
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
        conn.sock.sendall(frame(TEXT, b"in flight") + frame(CLOSE, close_payload(1000)))
        rest, closed = conn.read_until_eof()
        assert closed and rest == b""


def test_client_that_never_answers_close_is_dropped(small):
    """--ws-close-timeout 0.5: no close frame back, so the server drops the connection."""
    ident = new_id()
    with RawWS.connect(small, f"/close?id={ident}&code=1000&reason=timeout") as conn:
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
    with RawWS.connect(ws, f"/echo?id={new_id()}") as conn:
        conn.send(PING, payload)
        f = conn.recv_frame()
        assert (f.opcode, f.fin, f.rsv, f.payload) == (PONG, True, 0, payload)


def test_ping_between_fragments(ws):
    """RFC 6455 §5.4: control frames may come between the fragments of a message."""
    with RawWS.connect(ws, f"/echo?id={new_id()}") as conn:
        conn.send(TEXT, b"frag", fin=False)
        conn.send(PING, b"mid")
        conn.send(CONT, b"ment", fin=False)
        conn.send(PONG, b"unsolicited")
        conn.send(CONT, b"ed")
        f = conn.recv_frame()
        assert (f.opcode, f.payload) == (PONG, b"mid")
        assert conn.recv_message() == (TEXT, b"fragmented")


def test_unsolicited_pong_is_ignored(ws):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
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
    ident = new_id()
    with RawWS.connect(keepalive, f"/echo?id={ident}") as conn:
        close, pings = conn.expect_close(timeout=15)
        # One ping only, though the interval (0.3 s) passed again before the deadline
        # (0.5 s): the server sends no new ping while one is unanswered (both are timers of
        # the server's own loop, so their order is fixed). This is what lets the "stays"
        # tests take each new ping as proof that their last pong counted.
        assert pings == 1, f"{pings} pings before the keepalive close"
        assert close.close_code() == 1011
        rest, closed = conn.read_until_eof()
        assert closed, "TCP still open after the keepalive close"
        assert rest == b""
    assert "code=1011 " in disconnect_line(keepalive, ident)
    assert keepalive.wait_for_log(r"keepalive", 5) is not None


def test_keepalive_client_answering_pings_stays(keepalive_patient):
    """A raw client that answers each ping with its payload gets ping after ping (each one
    new: the server sends the next only once the last one's pong is in) and stays open. A
    server that did not count the pongs would send no second ping and close with 1011 after
    its 10 s ping timeout, which the 15 s hang guard lets this test see."""
    ident = new_id()
    with RawWS.connect(keepalive_patient, f"/echo?id={ident}") as conn:
        payloads = set()
        for _ in range(6):
            f = conn.recv_frame(timeout=15)
            assert f.opcode == PING, f"expected a ping, got {f}"
            payloads.add(f.payload)
            conn.send(PONG, f.payload)
        assert len(payloads) == 6, "the server repeated a ping: our pong did not count"
        conn.send_text("alive")
        assert conn.recv_text() == "alive"


class _PingsSeen(logging.Handler):
    """What a ``websockets`` client's debug log says: the distinct pings it received, and
    whether the connection has started to close."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.payloads: set[bytes] = set()
        self.closing = False
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            if record.msg == "< %s" and getattr(record.args[0], "opcode", None) is Opcode.PING:
                self.payloads.add(bytes(record.args[0].data))
            elif record.msg == "= connection is %s" and record.args[0] in ("CLOSING", "CLOSED"):
                self.closing = True
            self.cond.notify_all()


def test_keepalive_websockets_client_stays(keepalive_patient):
    """The websockets client answers pings on its own: ping after ping comes (the server
    sends the next one only once the last one's pong is in; without it, it closes after its
    10 s ping timeout, within the 15 s hang guard), and the connection still echoes after
    four."""
    ident = new_id()
    seen = _PingsSeen()
    client_log = logging.getLogger(f"tests.ws-keepalive.{ident}")
    client_log.setLevel(logging.DEBUG)
    client_log.propagate = False
    client_log.addHandler(seen)
    with ws_connect(keepalive_patient, f"/echo?id={ident}", ping_interval=None,
                    logger=client_log) as client:
        with seen.cond:
            seen.cond.wait_for(lambda: len(seen.payloads) >= 4 or seen.closing, 15)
            assert len(seen.payloads) >= 4 and not seen.closing, (seen.payloads, seen.closing)
        client.send("tick")
        assert client.recv(timeout=10) == "tick"
    line = disconnect_line(keepalive_patient, ident)
    assert "code=1000 " in line


@pytest.mark.parametrize("how", ["ping-timeout", "protocol-error"])
def test_failed_connection_to_non_reading_client_is_dropped(keepalive, lingering, how):
    """A client that stops reading while the app streams to it, then either never answers
    pings (keepalive) or sends a bad frame: the server fails the connection, so it must drop
    it (not wait forever for its buffered output to drain) and the app's blocked send()
    must return."""
    server = keepalive if how == "ping-timeout" else lingering
    ident = new_id()
    with RawWS.connect(server, f"/send?id={ident}&count=100&size={MIB}", rcvbuf=65536) as conn:
        assert server.wait_for_log(rf"wsproto {ident} sent=1\b", 10)
        if how == "protocol-error":
            conn.send(0x3, b"bad")
        # Both servers' close timeout is 60 s: only dropping the connection at once wakes
        # the app within the hang guard.
        line = server.wait_for_log(rf"wsproto {ident} (send failed|disconnect)", 10)
        assert line is not None, "the app is still blocked in send() to a failed connection"


def test_abrupt_tcp_close_gives_1006(ws):
    ident = new_id()
    conn = RawWS.connect(ws, f"/echo?id={ident}")
    conn.send_text("hi")
    assert conn.recv_text() == "hi"
    conn.close()
    assert "code=1006 " in disconnect_line(ws, ident)


def test_half_close_without_close_frame_gives_1006(ws):
    """TCP EOF from the client without a close frame: the server closes, the app gets 1006."""
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}") as conn:
        conn.sock.shutdown(socket.SHUT_WR)
        rest, closed = conn.read_until_eof()
        assert closed
    assert "code=1006 " in disconnect_line(ws, ident)


# Peak RSS growth the server may show while a client does not read: its write buffer
# (256 KiB high water), a message or two in flight and the allocator's slack. Measured here
# at about 1 MiB; a server that buffers what the client does not read grows by 30 MiB or more.
PEAK_GROWTH = 8 * MIB


def _flood(sock: socket.socket, unit: bytes, limit: int) -> tuple[int, bool]:
    """Send ``unit`` over and over, ``limit`` bytes at most, until the server stops reading
    (1 s without room in the socket: only when to stop trying, never a verdict) or drops
    the connection; returns (bytes sent, dropped)."""
    blob = unit * (MIB // len(unit))
    view = memoryview(blob)
    sent = 0
    sock.setblocking(False)
    try:
        while sent < limit:
            try:
                sent += sock.send(view[sent % len(blob):])
            except BlockingIOError:
                if not select.select([], [sock], [], 1.0)[1]:
                    break
            except (BrokenPipeError, ConnectionResetError):
                return sent, True
    finally:
        sock.setblocking(True)
    return sent, False


def test_ping_flood_from_non_reading_client_is_bounded(serve):
    """A client that sends pings but never reads the pongs: the server must stop reading (or
    drop the client) instead of buffering every pong. Once the client reads again every ping
    has its pong, and the server's peak RSS over the whole flood stayed within a few MiB
    (32 MiB of pings: about 31 MiB of pongs if the server buffered them all)."""
    server = serve(APP, "--timeout-graceful-shutdown", "2")
    ping = frame(PING, b"p" * 125)
    with RawWS.connect(server, f"/echo?id={new_id()}", rcvbuf=65536) as conn:
        peak = PeakRSS(server.proc.pid).reset()
        sent, dropped = _flood(conn.sock, ping, 32 * MIB)
        if not dropped:  # read every pong, up to the one for a last, different ping
            pongs: list[int] = [0]
            failure: list[BaseException] = []

            def read_pongs() -> None:
                try:
                    while True:
                        f = conn.recv_frame(timeout=30)
                        assert f.opcode == PONG, f
                        if f.payload == b"last":
                            return
                        assert f.payload == b"p" * 125, f
                        pongs[0] += 1
                except BaseException as exc:  # reported by the main thread
                    failure.append(exc)

            reader = threading.Thread(target=read_pongs, daemon=True)
            reader.start()
            partial = sent % len(ping)  # the flood may have stopped inside a frame
            conn.sock.settimeout(30)
            conn.sock.sendall(ping[partial:] * bool(partial) + frame(PING, b"last"))
            reader.join(30)
            assert not reader.is_alive() and not failure, failure
            assert pongs[0] == math.ceil(sent / len(ping)), (pongs[0], sent / len(ping))
        grown = peak.growth()
        assert grown < PEAK_GROWTH, f"server RSS peaked {grown // 1024} KiB up buffering pongs"


# -- flow control -------------------------------------------------------------------------

def _messages_in_buffers(sock: socket.socket, size: int) -> int:
    """How many ``size``-byte messages the buffers between the app and a client that has
    not read them can hold: the client's receive buffer, the server's send buffer (at most
    the kernel's autotuning limit), the server's write buffer (256 KiB high water), one
    message the client is reading and one the app is writing."""
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    with open("/proc/sys/net/ipv4/tcp_wmem") as fh:
        sndbuf = int(fh.read().split()[2])
    return math.ceil((rcvbuf + sndbuf + 256 * 1024) / size) + 2


def test_send_blocks_when_client_does_not_read(serve):
    """100 x 1 MiB to a client that reads one message at a time and tells the app (over
    HTTP) how many it has read: every ``send()`` returns at most as many messages ahead of
    the client as the buffers between them hold, the server's peak RSS stays within a few
    MiB, and every message arrives whole."""
    server = serve(APP, "--timeout-graceful-shutdown", "2")
    ident = new_id()
    total, size = 100, MIB
    target = f"/send?id={ident}&count={total}&size={size}"
    with RawWS.connect(server, target, rcvbuf=65536) as conn, server.connect() as http:
        ahead = _messages_in_buffers(conn.sock, size)
        assert ahead < total // 4, ahead
        peak = PeakRSS(server.proc.pid).reset()
        # A server whose send() does not wait lets the app send all 100 before it can even
        # read a report; a waiting one cannot get past the buffers before the client reads.
        assert server.wait_for_log(rf"wsproto {ident} sent=1 ", 10), server.log[-2000:]
        first = None
        for i in range(1, total + 1):
            opcode, data = conn.recv_message(timeout=20)
            assert opcode == BINARY and len(data) == size
            if first is None:
                first = data
            assert data == first
            http.sendall(f"GET /progress?id={ident}&read={i} HTTP/1.1\r\nHost: x\r\n\r\n"
                         .encode())
            assert read_response(http)[0] == 200
        grown = peak.growth()
        conn.send(CLOSE, close_payload(1000))
        close, _ = conn.expect_close()
        assert close.close_code() == 1000
    disconnect_line(server, ident)
    progress = [(int(m.group(1)), int(m.group(2))) for m in
                re.finditer(rf"wsproto {ident} sent=(\d+) read=(\d+)", server.log)]
    assert [sent for sent, _ in progress] == list(range(1, total + 1))
    over = [(sent, read) for sent, read in progress if sent - read > ahead]
    assert not over, f"send() returned more than {ahead} messages ahead of the client: {over}"
    assert grown < PEAK_GROWTH, \
        f"server RSS peaked {grown // 1024} KiB up, the client not reading"


def _numbered(i: int, size: int) -> bytes:
    return i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4)


def test_server_stops_reading_while_app_does_not_receive(small):
    """--ws-max-queue 4: while the app does not call receive() the server stops reading, so
    the client's sends block once the buffers between them are full (2 s without room: when
    to stop trying); released, the app gets every message, in order."""
    ident = new_id()
    size, cap = 32 * 1024, 4096  # cap: 128 MiB, far more than the socket buffers hold
    with open("/proc/sys/net/ipv4/tcp_rmem") as fh:
        server_rcvbuf = int(fh.read().split()[2])  # the kernel's autotuning limit
    with RawWS.connect(small, f"/hold?id={ident}", sndbuf=65536) as conn:
        # What may be taken before the server stops: the client's send buffer, the server's
        # receive buffer, one read (256 KiB) and the queue of 4 (plus one in the reading).
        room = (conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + server_rcvbuf
                + 256 * 1024) // size + 4 + 2
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
        assert blocked and sent <= room, \
            f"the server read {sent} messages (room for {room}) for an app that is not receiving"
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

def _periodic(rng: random.Random, period: int, size: int) -> bytes:
    """Random bytes repeating every ``period`` bytes: nothing compresses unless the window
    reaches ``period`` back."""
    block = rng.randbytes(period)
    return (block * (size // period + 1))[:size]


def test_deflate_negotiated_with_websockets_client(ws):
    ident = new_id()
    text = "hello deflate " * 2000
    with ws_connect(ws, f"/echo?id={ident}&describe=1", ping_interval=None) as client:
        # The client offers client_max_window_bits (no value): both windows are the
        # server's 4 KiB, and the client inflates with exactly that.
        params = extension_params(client.response.headers["Sec-WebSocket-Extensions"])
        assert params[0] == "permessage-deflate"
        assert sorted(params[1:]) == [f"client_max_window_bits={SERVER_WINDOW_BITS}",
                                      f"server_max_window_bits={SERVER_WINDOW_BITS}"]
        client.send(text)
        expected = f"text {len(text)} {hashlib.sha256(text.encode()).hexdigest()}"
        assert client.recv(timeout=10) == expected
        client.send(text.encode())
        expected = f"bytes {len(text)} {hashlib.sha256(text.encode()).hexdigest()}"
        assert client.recv(timeout=10) == expected


def test_deflate_raw_frames_both_ways(ws):
    """A raw client compresses by hand; the app sees the plain text; the server's answers
    are compressed (RSV1) and keep their context across messages."""
    with RawWS.connect(ws, f"/echo?id={new_id()}", extensions="permessage-deflate") as conn:
        assert conn.deflate is not None
        shared = random.Random(5).randbytes(1000).hex()  # 2000 characters, half compressible
        sizes = []
        for i in range(5):
            text = f"message {i}: {shared} " + "compressible text " * 50
            conn.send(TEXT, deflate(text.encode()), rsv=RSV1)
            f = conn.recv_frame()
            assert f.opcode == TEXT and f.fin and f.rsv == RSV1, f
            assert conn.inflate(f.payload) == text.encode()
            sizes.append(len(f.payload))
        assert sizes[0] < 0.7 * len(text), sizes
        # The later messages are mostly the first one again: with the context kept, tiny.
        assert max(sizes[1:]) < sizes[0] // 10, f"no context kept across messages: {sizes}"
        # An uncompressed message (RSV1 clear) is allowed on a deflate connection too.
        conn.send(TEXT, b"plain")
        assert conn.recv_text() == "plain"


def test_no_deflate_setting(nodeflate):
    with ws_connect(nodeflate, f"/echo?id={new_id()}", ping_interval=None) as client:
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        text = "not compressed " * 500
        client.send(text)
        assert client.recv(timeout=10) == text
    with RawWS.connect(nodeflate, f"/echo?id={new_id()}", extensions="permessage-deflate") as conn:
        assert "sec-websocket-extensions" not in conn.headers
        conn.send_text("raw")
        f = conn.recv_frame()
        assert (f.opcode, f.rsv, f.payload) == (TEXT, 0, b"raw")


def test_rsv1_without_negotiated_deflate_closes_1002(nodeflate):
    ident = new_id()
    with RawWS.connect(nodeflate, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send(TEXT, deflate(b"hello"), rsv=RSV1)
        assert_failed_with(nodeflate, conn, ident, 1002)


# An offer's window parameters and the exact ones the server must answer with (RFC 7692
# §7.1.2): its own windows are 4 KiB (2**12), so it always limits server_max_window_bits
# to 12 and, when the client allows a value, client_max_window_bits too; a smaller window
# the client asks for is taken as asked.
WINDOW_OFFERS = {
    "no-parameters": ("", ["server_max_window_bits=12"]),
    "client-bits-without-value": ("client_max_window_bits",
                                  ["server_max_window_bits=12", "client_max_window_bits=12"]),
    "client-bits-15": ("client_max_window_bits=15",
                       ["server_max_window_bits=12", "client_max_window_bits=12"]),
    "client-bits-10": ("client_max_window_bits=10",
                       ["server_max_window_bits=12", "client_max_window_bits=10"]),
    "client-bits-8": ("client_max_window_bits=8",
                      ["server_max_window_bits=12", "client_max_window_bits=8"]),
    "server-bits-14": ("server_max_window_bits=14", ["server_max_window_bits=12"]),
    "server-bits-9": ("server_max_window_bits=9", ["server_max_window_bits=9"]),
    "server-bits-10-client-bits-9": ("server_max_window_bits=10; client_max_window_bits=9",
                                     ["server_max_window_bits=10", "client_max_window_bits=9"]),
}


@pytest.mark.parametrize(("offer", "reply"), list(WINDOW_OFFERS.values()),
                         ids=list(WINDOW_OFFERS))
def test_deflate_window_bits_negotiated_and_honoured(ws, offer, reply):
    """The reply carries exactly the agreed windows, and both sides keep to them. The client
    sends random bytes, then the same bytes again: one reference back into the last message,
    as far as its window reaches (a server inflating with a smaller window fails it). Then
    data that repeats one and a half times the server's window back: the server's answers
    are inflated here with exactly its agreed window, which fails on a larger one."""
    extensions = "permessage-deflate" + (f"; {offer}" if offer else "")
    with RawWS.connect(ws, f"/echo?id={new_id()}", extensions=extensions) as conn:
        params = extension_params(conn.headers["sec-websocket-extensions"])
        assert params[0] == "permessage-deflate"
        assert sorted(params[1:]) == sorted(reply), params
        client_bits, server_bits = conn.window_bits("client"), conn.window_bits("server")
        rng = random.Random(client_bits * 100 + server_bits)
        # As far back as zlib reaches with the client's window (the window less 262 bytes;
        # 9 bits for 8): past half of it from 10 bits on.
        block = rng.randbytes((1 << max(client_bits, 9)) - 262)
        conn.send_compressed(BINARY, block)
        assert conn.recv_message() == (BINARY, block)
        assert conn.send_compressed(BINARY, block) < len(block) // 10  # the context was used
        assert conn.recv_message() == (BINARY, block)
        far = 3 << (server_bits - 1)  # within 32 KiB: a 15-bit window would reach it
        data = _periodic(rng, far, 4 * far)
        conn.send(BINARY, data)
        f = conn.recv_frame()
        assert (f.opcode, f.rsv) == (BINARY, RSV1), f
        assert conn.inflate(f.payload) == data


def test_deflate_server_window_of_8_bits_is_declined(ws):
    """zlib cannot compress with a 256-byte window, so an offer that requires one is declined
    (RFC 7692 §7.1.2.1 lets the server decline) and the connection is not compressed; with a
    second offer in the header, that one is taken instead."""
    with RawWS.connect(ws, f"/echo?id={new_id()}",
               extensions="permessage-deflate; server_max_window_bits=8") as conn:
        assert "sec-websocket-extensions" not in conn.headers, conn.headers
        conn.send_text("plain " * 100)
        f = conn.recv_frame()
        assert (f.opcode, f.rsv, f.payload) == (TEXT, 0, b"plain " * 100)
    offers = "permessage-deflate; server_max_window_bits=8, permessage-deflate; " \
             "server_max_window_bits=9"
    with RawWS.connect(ws, f"/echo?id={new_id()}", extensions=offers) as conn:
        assert extension_params(conn.headers["sec-websocket-extensions"]) == [
            "permessage-deflate", "server_max_window_bits=9"]
        data = _periodic(random.Random(9), 768, 4 * 768)
        conn.send_compressed(BINARY, data)
        assert conn.recv_message() == (BINARY, data)


def test_deflate_parameters_honoured(ws):
    """The websockets client asks for a 1 KiB server window and no context takeover either
    way: the reply agrees, and messages of every size and kind round-trip (that the server
    keeps to the window is checked with raw frames, test_deflate_window_bits_...)."""
    ident = new_id()
    factory = ClientPerMessageDeflateFactory(
        client_no_context_takeover=True, server_no_context_takeover=True,
        server_max_window_bits=10)
    with ws_connect(ws, f"/echo?id={ident}", ping_interval=None,
                    compression=None, extensions=[factory], max_size=None) as client:
        params = extension_params(client.response.headers["Sec-WebSocket-Extensions"])
        assert params[0] == "permessage-deflate"
        assert sorted(params[1:]) == [
            f"client_max_window_bits={SERVER_WINDOW_BITS}", "client_no_context_takeover",
            "server_max_window_bits=10", "server_no_context_takeover"], params
        rng = random.Random(7)
        for i in range(200):
            text = f"{i} " + "same words again " * rng.randint(1, 300) + "é€😀" * (i % 7)
            client.send(text)
            assert client.recv(timeout=10) == text
            data = _periodic(rng, 1536, 1536 * rng.randint(2, 8))
            client.send(data)
            assert client.recv(timeout=10) == data


def test_deflate_raw_offer_parameters(ws):
    """The response to a hand-written offer: window bits lowered, no-context-takeover kept;
    without context takeover each server message inflates on its own, with a 1 KiB window."""
    offer = ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
             "server_max_window_bits=10")
    with RawWS.connect(ws, f"/echo?id={new_id()}", extensions=offer) as conn:
        params = extension_params(conn.headers["sec-websocket-extensions"])
        assert params[0] == "permessage-deflate"
        assert sorted(params[1:]) == ["client_no_context_takeover", "server_max_window_bits=10",
                                      "server_no_context_takeover"], params
        rng = random.Random(10)
        for i in range(20):
            text = (f"round {i} " + "the same sentence again and again " * 50).encode()
            conn.send(TEXT, deflate(text), rsv=RSV1)
            f = conn.recv_frame()
            assert f.rsv == RSV1 and f.opcode == TEXT
            assert len(f.payload) < len(text) // 4
            assert conn.inflate(f.payload) == text  # a fresh context for every message
            data = _periodic(rng, 1536, 4 * 1536)
            conn.send(BINARY, deflate(data), rsv=RSV1)
            f = conn.recv_frame()
            assert (f.opcode, f.rsv) == (BINARY, RSV1)
            assert conn.inflate(f.payload) == data


def test_deflate_large_messages_round_trip(ws):
    rng = random.Random(11)
    words = ["alpha", "beta", "gamma", "delta", "é", "€", "😀", "\n"]
    text = "".join(rng.choice(words) for _ in range(1_000_000))
    data = os.urandom(MIB) + b"\x00" * (2 * MIB)
    with ws_connect(ws, f"/echo?id={new_id()}", ping_interval=None,
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
    with ws_connect(ws, f"/echo?id={new_id()}", ping_interval=None,
                    compression=None, max_size=None) as client:
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        client.send(data)
        assert client.recv(timeout=30) == data
        client.send(text)
        assert client.recv(timeout=30) == text


def test_large_binary_raw_64bit_length(ws):
    data = os.urandom(MIB)
    with RawWS.connect(ws, f"/echo?id={new_id()}") as conn:
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
    with RawWS.connect(ws, f"/echo?id={new_id()}&describe=1") as conn:
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
    with RawWS.connect(ws, f"/echo?id={new_id()}", tail=extra) as conn:
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
    with RawWS.connect(ws, f"/echo?id={new_id()}") as conn:
        for n in (0, 125, 126, 65535, 65536):
            conn.send(BINARY, b"q" * n)
            conn.sock.settimeout(10)
            b0, b1 = conn.exact(2)
            assert b0 == 0x80 | BINARY and not b1 & 0x80
            length = b1 & 0x7F
            if n < 126:
                assert length == n
            elif n < 65536:
                assert length == 126 and struct.unpack("!H", conn.exact(2))[0] == n
            else:
                assert length == 127 and struct.unpack("!Q", conn.exact(8))[0] == n
            assert conn.exact(n) == b"q" * n


# -- permessage-deflate on the fast path (betula/protocols/ws_deflate.py) -----------------

def test_corrupt_compressed_data_closes_1002(ws):
    ident = new_id()
    with RawWS.connect(ws, f"/echo?id={ident}", extensions="permessage-deflate") as conn:
        conn.send_text("fine first")
        assert conn.recv_text() == "fine first"
        conn.send(TEXT, b"\xff\xfe\xfd not deflate data", rsv=RSV1)
        assert_failed_with(ws, conn, ident, 1002)


def test_fragmented_and_whole_compressed_messages_share_one_context(ws):
    """A fragmented compressed message (websockets inflates it) between whole ones (the
    fast path inflates them) on one connection with context takeover: every message comes
    out right, so both paths read the same zlib stream; the echoes keep one context too."""
    with RawWS.connect(ws, f"/echo?id={new_id()}", extensions="permessage-deflate") as conn:
        assert "client_no_context_takeover" not in conn.deflate
        words = random.Random(9).randbytes(600).hex()
        for i in range(6):
            text = f"{i} {words} " + "again and again " * 40
            data = text.encode()
            if i % 2:  # fragmented: the compressed bytes cut in three frames
                bits = conn.window_bits("client")
                if conn.deflater is None:
                    conn.deflater = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
                out = conn.deflater.compress(data) + conn.deflater.flush(zlib.Z_SYNC_FLUSH)
                out = out[:-4]
                third = len(out) // 3
                conn.send(TEXT, out[:third], fin=False, rsv=RSV1)
                conn.send(CONT, out[third:2 * third], fin=False)
                conn.send(CONT, out[2 * third:])
            else:
                conn.send_compressed(TEXT, data)
            f = conn.recv_frame()
            assert f.opcode == TEXT and f.rsv == RSV1
            assert conn.inflate(f.payload) == data, i


@pytest.mark.parametrize("level", [1, 9])
def test_deflate_level_setting_is_what_compresses(serve, level):
    server = serve(APP, "--ws-deflate-level", str(level))
    text = (" ".join(f"item-{i % 37}:{(i * 7919) % 1000}" for i in range(3000))).encode()
    with RawWS.connect(server, f"/echo?id={new_id()}", extensions="permessage-deflate") as conn:
        conn.send_compressed(TEXT, text)
        f = conn.recv_frame()
        assert conn.inflate(f.payload) == text
    expected = zlib.compressobj(level, zlib.DEFLATED, -SERVER_WINDOW_BITS, 5)
    wanted = expected.compress(text) + expected.flush(zlib.Z_SYNC_FLUSH)
    assert f.payload == wanted[:-4]  # byte for byte: zlib at that level, the server's window
