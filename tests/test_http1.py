"""HTTP/1.1 on the wire: every protocol edge and bad-input rule of issue 2, in raw bytes.

The real CLI serves ``tests.apps.h1_apps:app``; the tests talk to it over plain sockets so
they see exactly what goes out (framing, headers, closes). Servers with default settings are
shared by the module (one per flag set) to keep the file fast; every test that sends bad
input also checks that the server still answers a good request afterwards.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import pytest

from tests.support.procs import wait_until
from tests.support.server import ROOT, betula
from tests.support.tcp import wait_server_read
from tests.support.wire import parse_head, read_head, read_response, read_until_closed, request

APP = "tests.apps.h1_apps:app"

pytestmark = pytest.mark.timeout(60)


# -- helpers ------------------------------------------------------------------------------

def _start(*flags: str):
    return betula(APP, "--port", "0", *flags).start()


@pytest.fixture(scope="module")
def h1():
    """A server with every setting at its default."""
    server = _start()
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def limits():
    """Small limits, so each one can be crossed with a few bytes (and only that one)."""
    server = _start(
        "--limit-request-line", "200",
        "--limit-request-field-size", "300",
        "--limit-request-fields", "10",
        "--limit-request-header-size", "1000",
        "--limit-request-body", "1000",
        "--timeout-request-header", "2",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def header_timeout():
    """A short header-read timeout, a keep-alive timeout far longer than any test: whatever
    closes within a test's hang guard was closed by the header timeout."""
    server = _start("--timeout-request-header", "1", "--timeout-keep-alive", "60")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idle_timeout():
    """The other way round: only the keep-alive (idle) timeout can fire during a test."""
    server = _start("--timeout-keep-alive", "1", "--timeout-request-header", "60")
    yield server
    server.stop()


def read_until_head(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Read until a response head is complete or the peer closes: (data, closed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def read_more(sock: socket.socket, buf: bytes, size: int) -> bytes:
    """Read until ``buf`` holds at least ``size`` bytes."""
    while len(buf) < size:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {buf!r}")
        buf += data
    return buf


def roundtrip(sock: socket.socket, data: bytes):
    """Send one request on an open connection and read its response."""
    sock.sendall(data)
    return read_response(sock)


def assert_healthy(server) -> None:
    with server.connect() as sock:
        status, _, _, body = roundtrip(sock, request("/healthy"))
    assert (status, body) == (200, b"GET /healthy")


def assert_rejected(server, payload: bytes | list[bytes], status: int,
                    reason: str | None = None) -> bytes:
    """Send bad input: one complete error response with a body, then a closed connection.

    Also checks the refusal is logged for this client and the server still serves.
    Returns the error body.
    """
    with server.connect() as sock:
        port = sock.getsockname()[1]
        for part in ([payload] if isinstance(payload, bytes) else payload):
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server already answered and closed: read that answer
        data, closed = read_until_head(sock)
        assert data, "the server closed without answering (silent close)"
        assert data.startswith(b"HTTP/1.1 %d " % status), data  # fail fast on a wrong answer
        if not closed:
            more, closed = read_until_closed(sock)
            data += more
    assert closed, f"the connection was left open after the error response: {data!r}"
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"incomplete response: {data!r}"
    got, headers = parse_head(head)
    assert got == status, data
    header_map = dict(headers)
    assert header_map.get("connection") == "close", data
    assert "transfer-encoding" not in header_map
    assert int(header_map["content-length"]) == len(body) > 0, data
    assert str(status).encode() in body
    if reason is not None:
        assert reason.lower().encode() in body.lower(), body
    # exactly one response for this request: nothing after the announced body
    assert data.count(b"HTTP/1.") == 1, data
    line = server.wait_for_log(rf"127\.0\.0\.1:{port} .*\b{status}\b", timeout=5)
    assert line is not None, f"no log line for the refused request:\n{server.log[-2000:]}"
    assert_healthy(server)
    return body


# -- keep-alive, pipelining, HTTP/1.0 ---------------------------------------------------

def test_keep_alive_several_requests_on_one_connection(h1):
    with h1.connect() as sock:
        for i in range(5):
            status, headers, _, body = roundtrip(sock, request(f"/ka/{i}"))
            assert status == 200
            assert body == f"GET /ka/{i}".encode()
            assert headers.get("connection") != "close"
        status, _, _, body = roundtrip(
            sock, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert (status, body) == (200, b"abc")
        status, _, _, body = roundtrip(sock, request("/after-post"))
        assert (status, body) == (200, b"GET /after-post")


def test_pipelined_requests_answered_in_order(h1):
    requests = (
        request("/first")
        + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 14\r\n\r\npipelined-body"
        + b"GET /third?q=3 HTTP/1.1\r\nHost: t\r\n\r\n"
        + request("/stream")
        + b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n"
        + request("/last")
    )
    expected = [b"GET /first", b"pipelined-body", b"GET /third?q=3", b"abcdef", b"chunked",
                b"GET /last"]
    with h1.connect() as sock:
        sock.sendall(requests)
        bodies = []
        for _ in expected:
            status, _, _, body = read_response(sock)
            assert status == 200
            bodies.append(body)
        assert bodies == expected
        # nothing more: the connection is idle and still usable
        status, _, _, body = roundtrip(sock, request("/after"))
        assert (status, body) == (200, b"GET /after")


def test_http10_without_keep_alive_closes(h1):
    with h1.connect() as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data, closed = read_until_closed(sock)
    assert closed, "HTTP/1.0 without keep-alive must end with the connection closed"
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    assert status == 200 and body == b"GET /old"
    assert dict(headers).get("connection", "close").lower() == "close"
    assert "transfer-encoding" not in dict(headers)


def test_http10_keep_alive_kept_open(h1):
    ka10 = b"GET /ka10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with h1.connect() as sock:
        for _ in range(3):
            status, headers, _, body = roundtrip(sock, ka10)
            assert status == 200 and body == b"GET /ka10"
            assert headers["connection"].lower() == "keep-alive"
            assert headers["content-length"] == str(len(body))
            assert "transfer-encoding" not in headers
        # without the keep-alive token the next one closes
        sock.sendall(b"GET /bye HTTP/1.0\r\n\r\n")
        data, closed = read_until_closed(sock)
    assert closed and data.endswith(b"GET /bye")


def test_http10_keep_alive_streamed_body_is_close_delimited(h1):
    # HTTP/1.0 has no chunked coding: a body of unknown length ends with the connection.
    with h1.connect() as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data, closed = read_until_closed(sock)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    assert status == 200 and body == b"abcdef"
    assert "transfer-encoding" not in dict(headers)
    assert dict(headers).get("connection", "close").lower() == "close"


def test_http11_connection_close(h1):
    with h1.connect() as sock:
        sock.sendall(request("/closing", headers=("Host: t", "Connection: close")))
        data, closed = read_until_closed(sock)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    assert status == 200 and body == b"GET /closing"
    assert dict(headers)["connection"] == "close"


def test_data_after_connection_close_request_is_ignored(h1):
    # RFC 9112 §9.6: after a request with "close" the server answers it and stops; the
    # request behind it is neither processed nor answered.
    with h1.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request("/first", headers=("Host: t", "Connection: close"))
                     + request("/behind-close"))
        data, closed = read_until_closed(sock)
    assert closed
    assert data.count(b"HTTP/1.1 ") == 1, data
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"GET /first"), data
    assert not re.search(rf"127\.0\.0\.1:{port} .*behind-close", h1.log)


# -- Expect: 100-continue ---------------------------------------------------------------

def test_expect_100_continue_sent_when_app_reads_body(h1):
    with h1.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, rest = read_head(sock)
        assert status == 100 and headers == [] and rest == b""
        sock.sendall(b"hello world")
        status, headers, _, body = read_response(sock)
        assert (status, body) == (200, b"hello world")
        # the connection goes on; a request without Expect gets no 100
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
        status, _, rest = read_head(sock)
        assert status == 200 and read_more(sock, rest, 2) == b"ok"


def test_expect_100_continue_ignored_for_http10(h1):
    with h1.connect() as sock:
        tag = f"e{sock.getsockname()[1]}"
        sock.sendall(f"POST /await-body?{tag} HTTP/1.0\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        # The app logs this line, then asks for the body in the same step: a (wrong) 100
        # would be written then, before the body below can even be read.
        assert h1.wait_for_log(rf"await-body {tag}: reading", 10), h1.log[-2000:]
        sock.sendall(b"hello")
        data, closed = read_until_closed(sock)
    assert closed
    assert data.startswith(b"HTTP/1.1 200 "), f"not the final response first: {data!r}"
    assert data.endswith(b"hello") and data.count(b"HTTP/1.1 ") == 1, data


def test_expect_100_continue_not_sent_when_app_does_not_read(h1):
    with h1.connect() as sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, rest = read_head(sock)
        assert status == 200, "the final response comes without a 100 Continue first"
        expected = b"answered without reading"
        assert dict(headers)["content-length"] == str(len(expected))
        rest = read_more(sock, rest, len(expected))
        assert rest == expected
        # a client may still send the announced body: it is discarded, the connection lives
        sock.sendall(b"hello" + request("/next"))
        status, _, _, body = read_response(sock)
        assert (status, body) == (200, b"GET /next")


# -- chunked bodies and response framing ------------------------------------------------

def test_chunked_request_body_with_extensions_and_trailers(h1):
    with h1.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5;name=value\r\nhello\r\n"
                     b"7;quoted=\"a b\";flag\r\n, world\r\n"
                     b"A\r\n0123456789\r\n"
                     b"0;last=1\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n")
        status, _, _, body = read_response(sock)
        assert (status, body) == (200, b"hello, world0123456789")
        # the trailers were consumed: the connection is in sync
        status, _, _, body = roundtrip(sock, request("/after"))
        assert (status, body) == (200, b"GET /after")


def test_chunked_request_body_split_across_packets(h1):
    pieces = [b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3",
              b"\r\nabc\r", b"\n2\r\nde", b"\r\n0\r\n", b"\r\n"]
    with h1.connect() as sock:
        for piece in pieces:
            sock.sendall(piece)
            wait_server_read(sock)  # so the next piece arrives in a read of its own
        status, _, _, body = read_response(sock)
    assert (status, body) == (200, b"abcde")


def test_chunked_response_exact_framing(h1):
    with h1.connect() as sock:
        sock.sendall(request("/stream"))
        status, headers, rest = read_head(sock)
        header_map = dict(headers)
        assert status == 200
        assert names(headers).count("transfer-encoding") == 1
        assert header_map["transfer-encoding"] == "chunked"
        assert "content-length" not in header_map
        end = b"0\r\n\r\n"
        for _ in range(100):
            if rest.endswith(end):
                break
            data = sock.recv(65536)
            assert data, "closed mid-body"
            rest += data
        assert rest == b"2\r\nab\r\n3\r\ncde\r\n1\r\nf\r\n0\r\n\r\n"
        status, _, _, body = roundtrip(sock, request("/after"))
        assert (status, body) == (200, b"GET /after")


def test_single_message_body_gets_content_length(h1):
    with h1.connect() as sock:
        status, headers, header_list, body = roundtrip(sock, request("/one-message"))
    assert status == 200 and body == b"GET /one-message"
    assert names(header_list).count("content-length") == 1
    assert headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in headers


@pytest.mark.parametrize("path, length", [("/head-me", b"13"), ("/stream", None)])
def test_head_has_headers_but_no_body(h1, path, length):
    with h1.connect() as sock:
        # HEAD and a GET in one write: whatever follows the HEAD's head must be the GET's
        # response, so a leaked body would show up right there.
        sock.sendall(b"HEAD " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n" + request("/after"))
        status, headers, rest = read_head(sock)
        assert status == 200
        header_map = dict(headers)
        if length is not None:
            assert header_map["content-length"].encode() == length  # len(b"HEAD /head-me")
        status, _, rest = read_head(sock, rest)
        assert status == 200 and rest.startswith(b"GET /after")




@pytest.mark.parametrize("route", [
    "/status",
    "/status-body",
    "/status-stream",
])
@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_have_no_body(h1, code, route):
    # /status: the app sends an empty body; /status-body and /status-stream: it sends bytes
    # anyway (in one message, in two), which the server must not put on the wire.
    with h1.connect() as sock:
        sock.sendall(request(f"{route}/{code}") + request("/after"))
        status, headers, rest = read_head(sock)
        assert status == code
        assert "transfer-encoding" not in names(headers)
        if code == 204:
            assert "content-length" not in names(headers)
        # what follows the head must be the next response, nothing of the app's body
        rest = read_more(sock, rest, 9)
        assert rest.startswith(b"HTTP/1.1 "), f"the app's body went out with a {code}: {rest!r}"
        status, _, rest = read_head(sock, rest)
        assert status == 200 and rest.startswith(b"GET /after")


def test_date_and_server_headers(h1):
    with h1.connect() as sock:
        _, headers, header_list, _ = roundtrip(sock, request("/"))
    assert headers["server"] == "betula"
    assert names(header_list).count("server") == 1
    assert names(header_list).count("date") == 1
    date = parsedate_to_datetime(headers["date"])
    assert headers["date"].endswith(" GMT")
    assert abs(date.timestamp() - time.time()) < 3600  # a real, current date


def test_no_server_header_flag(serve):
    server = serve(APP, "--no-server-header")
    with server.connect() as sock:
        _, headers, _, body = roundtrip(sock, request("/"))
        assert "server" not in headers and "date" in headers
        sock.sendall(b"BAD\r\n\r\n")  # error responses too
        data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400") and b"\r\nserver:" not in data.lower()


def test_no_date_header_flag(serve):
    server = serve(APP, "--no-date-header")
    with server.connect() as sock:
        _, headers, _, body = roundtrip(sock, request("/"))
        assert "date" not in headers and headers["server"] == "betula"
        sock.sendall(b"BAD\r\n\r\n")
        data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400") and b"\r\ndate:" not in data.lower()


# -- bad input ----------------------------------------------------------------------------

BAD_INPUT = [
    # (id, payload, status, words expected in the explanation)
    ("malformed-request-line", b"GARBAGE\r\n\r\n", 400, None),
    ("request-line-extra-token", b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400, None),
    ("request-line-no-target", b"GET HTTP/1.1\r\nHost: t\r\n\r\n", 400, None),
    ("invalid-method-chars", b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, "method"),
    # RFC 9110 §9.1: a method the server does not know is 501, bytes that are no method 400
    ("unknown-method", b"FROBNICATE / HTTP/1.1\r\nHost: t\r\n\r\n", 501, "method"),
    # refused on purpose (see the README): chunk extensions are a smuggling vector
    ("chunk-ext-whitespace-before-semicolon",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5 ;a=b\r\nhello\r\n0\r\n\r\n", 400, None),
    ("method-not-a-token", b"GE\x01T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, "method"),
    ("content-length-and-transfer-encoding",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400, "content-length"),
    ("duplicate-differing-content-length",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!", 400, "content-length"),
    ("content-length-not-a-number",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello", 400, None),
    ("invalid-chunk-size",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n", 400, "chunk"),
    ("chunk-size-overflow",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400, "chunk"),
    ("transfer-encoding-gzip",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     "transfer-encoding"),
    ("transfer-encoding-gzip-chunked",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     501, "transfer-encoding"),
    ("transfer-encoding-chunked-gzip",
     b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
     400, "transfer-encoding"),
    ("control-char-in-header-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n", 400,
     "header"),
    ("nul-in-header-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400,
     "header"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400, None),
    ("space-in-header-name", b"GET / HTTP/1.1\r\nHost: t\r\nX A: a\r\n\r\n", 400, "header"),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n", 400, "header"),
    ("http11-without-host", b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400, "host"),
    ("http11-two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"),
    ("http2-request-line", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "version"),
    # RFC 9112 §3.2: a Host value is uri-host [":" port]; HTTP/1.0 may omit it, not repeat it
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "host"),
    ("host-with-userinfo", b"GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", 400, "host"),
    ("host-with-path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "host"),
    ("host-unclosed-ip-literal", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "host"),
    ("http10-two-hosts", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"),
    ("http10-invalid-host", b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400, "host"),
    # RFC 9112 §6.1: Transfer-Encoding from HTTP/1.0 is faulty framing
    ("http10-transfer-encoding",
     b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     400, "transfer-encoding"),
    # request targets (RFC 9112 §3.2): llhttp takes these, the server must not pass them on
    ("asterisk-form-get", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, "asterisk"),
    ("connect-authority-form", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
     501, "connect"),
    ("connect-ipv6-authority", b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", 501,
     "connect"),
    ("connect-plus", b"CONNECT + HTTP/1.1\r\nHost: t\r\n\r\n", 501, "connect"),
    ("absolute-form-comma-host", b"GET http://127,0.0.1/ HTTP/1.1\r\nHost: t\r\n\r\n", 400,
     "target"),
    ("absolute-form-no-host", b"GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "target"),
    # llhttp keeps an HTTP/2.0 request alive for Proxy-Connection: it is still not 1.1
    ("http2-proxy-connection-keep-alive",
     b"GET / HTTP/2.0\r\nHost: t\r\nProxy-Connection: keep-alive\r\n\r\n", 505, "version"),
]


@pytest.mark.parametrize("payload, status, reason",
                         [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_rejected_and_closed(h1, payload, status, reason):
    assert_rejected(h1, payload, status, reason)


def test_transfer_encoding_over_two_header_lines_is_501(h1):
    # "gzip" then "chunked" on two lines is the list "gzip, chunked": unsupported, as above.
    assert_rejected(
        h1, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501)


@pytest.mark.parametrize("when", ["same-packet", "while-app-runs"])
def test_bad_request_after_good_one_is_answered_after_it(h1, when):
    with h1.connect() as sock:
        bad = b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n"
        if when == "same-packet":
            sock.sendall(request("/good") + bad)
            first = b"GET /good"
        else:
            port = sock.getsockname()[1]
            tag = f"g{port}"
            sock.sendall(request(f"/gate?{tag}"))
            assert h1.wait_for_log(rf"gate {tag}: waiting", 5)
            sock.sendall(bad)
            # the refusal is logged when the bad head is read; only then is the app let go
            assert h1.wait_for_log(rf"127\.0\.0\.1:{port} - bad request answered 400", 5)
            with h1.connect() as other:
                assert roundtrip(other, request(f"/release?{tag}"))[::3] == (200, b"released")
            first = b"held"
        data, closed = read_until_closed(sock)
    assert closed
    assert data.count(b"HTTP/1.1 ") == 2, data
    assert data.startswith(b"HTTP/1.1 200 "), data
    head, _, rest = data.partition(b"\r\n\r\n")
    assert rest.startswith(first + b"HTTP/1.1 400 "), data


# -- limits -------------------------------------------------------------------------------

def test_request_line_over_limit_is_414(limits):
    assert_rejected(limits, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414)


def test_header_field_over_limit_is_431(limits):
    # name + value = 301 bytes > 300
    assert_rejected(limits, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 296 + b"\r\n\r\n",
                    431)


def test_header_field_at_limit_passes(limits):
    with limits.connect() as sock:
        status, _, _, _ = roundtrip(sock, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: "
                                         + b"v" * 295 + b"\r\n\r\n")
    assert status == 200


def test_too_many_header_fields_is_431(limits):
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(10))  # + Host = 11 > 10
    assert_rejected(limits, b"GET / HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n", 431)


def test_header_fields_at_count_limit_pass(limits):
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(9))  # + Host = 10
    with limits.connect() as sock:
        status, _, _, _ = roundtrip(sock, b"GET / HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
    assert status == 200


def test_header_section_over_limit_is_431(limits):
    # five fields of 250 bytes each: every one under the field limit, their sum over 1000
    fields = b"".join(b"X-%d: " % i + b"v" * 246 + b"\r\n" for i in range(5))
    assert_rejected(limits, b"GET / HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n", 431)


def test_body_over_limit_with_content_length_is_413(limits):
    body = b"b" * 1500
    assert_rejected(limits, [b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1500\r\n\r\n",
                             body], 413)


def test_body_at_limit_passes(limits):
    with limits.connect() as sock:
        status, _, _, body = roundtrip(
            sock, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"b" * 1000)
    assert status == 200 and len(body) == 1000


def test_chunked_body_over_limit_is_413(limits):
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    assert_rejected(limits, [b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\n", chunks], 413)


def test_declared_content_length_over_limit_refused_before_body(limits):
    # The server knows from the head alone that the body is too large: it must answer 413
    # instead of 100 Continue (RFC 9110 §10.1.1) and not wait for the body.
    with limits.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        data, closed = read_until_closed(sock)  # nothing else comes: only the answer ends it
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert closed


def test_unfinished_oversized_header_refused_without_waiting_for_its_end(limits):
    # 64 KiB of one header value and no end of line: over the 300-byte field limit long
    # before the line ends; the server must refuse (431), not buffer until the timeout.
    with limits.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Huge: " + b"h" * 65536)
        data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 "), data  # not the 408 of the 2 s header timeout
    assert closed


def test_documented_limit_defaults():
    """The defaults the issue asks to document are in the registry and in --help."""
    from betula.config import BY_NAME

    expected = {
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "limit_request_header_size": 64 * 1024,
        "limit_request_body": 1024 ** 3,
        "timeout_keep_alive": 5.0,
        "timeout_request_header": 10.0,
        "limit_concurrency": 0,
    }
    for name, value in expected.items():
        assert BY_NAME[name].default == value, name
    help_text = subprocess.run([sys.executable, "-m", "betula", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30).stdout
    help_text = re.sub(r"\s+", " ", help_text)
    for name, value in expected.items():
        flag = "--" + name.replace("_", "-")
        assert flag in help_text, flag
        assert re.search(re.escape(flag) + r" [^\[]*\[env BETULA_" + name.upper()
                         + r"; default " + re.escape(str(value)) + r"\]", help_text), name


def test_default_request_line_limit_is_the_whole_line(h1):
    def line_of(size: int) -> bytes:
        target = b"/" + b"l" * (size - len(b"GET / HTTP/1.1"))
        line = b"GET " + target + b" HTTP/1.1"
        assert len(line) == size
        return line

    with h1.connect() as sock:
        status, _, _, body = roundtrip(sock, line_of(8190) + b"\r\nHost: t\r\n\r\n")
    assert status == 200 and len(body) == 8190 - len(b" HTTP/1.1")
    assert_rejected(h1, line_of(8191) + b"\r\nHost: t\r\n\r\n", 414)


def test_default_request_target_limit(h1):
    # well inside the 8190-byte line either way; far over it
    with h1.connect() as sock:
        status, _, _, body = roundtrip(sock, request("/" + "t" * 8000))
    assert status == 200 and len(body) == len("GET /") + 8000
    assert_rejected(h1, request("/" + "t" * 9000), 414)


def test_default_header_field_size_limit(h1):
    value = "f" * (8190 - len("X-Field"))
    with h1.connect() as sock:
        status, _, _, _ = roundtrip(sock, request("/", headers=("Host: t", "X-Field: " + value)))
    assert status == 200
    assert_rejected(h1, request("/", headers=("Host: t", "X-Field: " + value + "f")), 431)


def test_default_header_count_limit(h1):
    ninety_nine = ("Host: t", *(f"X-{i}: v" for i in range(99)))  # Host + 99 = 100
    with h1.connect() as sock:
        status, _, _, _ = roundtrip(sock, request("/", headers=ninety_nine))
    assert status == 200
    assert_rejected(h1, request("/", headers=(*ninety_nine, "X-One-More: v")), 431)


def test_default_header_section_limit(h1):
    # ten 6000-byte fields (60 000 bytes) fit in 64 KiB; twelve (72 000) do not
    def fields(n: int) -> tuple[str, ...]:
        return ("Host: t", *(f"X-{i}: " + "s" * 6000 for i in range(n)))

    with h1.connect() as sock:
        status, _, _, _ = roundtrip(sock, request("/", headers=fields(10)))
    assert status == 200
    assert_rejected(h1, request("/", headers=fields(12)), 431)


def test_default_body_limit_allows_large_bodies(h1):
    body = b"0123456789abcdef" * 131072  # 2 MiB, far under the 1 GiB default
    with h1.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        status, _, _, echoed = read_response(sock)
    assert status == 200 and echoed == body


# -- timeouts -----------------------------------------------------------------------------
# README: "slow headers -> 408; idle keep-alive -> closed". A request head that has begun and
# not ended within --timeout-request-header gets a 408 and a close; a connection with no
# request under way (idle between requests, or not sent anything yet) is closed after
# --timeout-keep-alive, silently: there is no request to answer.

def assert_408(sock: socket.socket) -> None:
    """The server answers 408 (one complete response, connection: close) and closes."""
    data, closed = read_until_closed(sock)
    assert data, "the server closed without the 408 the README promises"
    assert closed, f"the connection stayed open after {data!r}"
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    status, headers = parse_head(head)
    assert status == 408, data
    assert dict(headers)["connection"] == "close"
    assert int(dict(headers)["content-length"]) == len(body), data
    assert data.count(b"HTTP/1.1 ") == 1, data


@pytest.mark.parametrize("partial", [b"GET /slo", b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 1\r\n"],
                         ids=["partial-request-line", "partial-headers"])
def test_header_read_timeout_answers_408(header_timeout, partial):
    with header_timeout.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(partial)
        assert_408(sock)  # within the hang guard: the 60 s keep-alive timeout cannot be it
    assert header_timeout.wait_for_log(rf"127\.0\.0\.1:{port} .*\b408\b", 5), \
        header_timeout.log[-2000:]
    assert_healthy(header_timeout)


def test_header_read_timeout_on_a_kept_alive_connection(header_timeout):
    # A second request's head that stalls is a slow head too, not an idle connection.
    with header_timeout.connect() as sock:
        status, _, _, body = roundtrip(sock, request("/first"))
        assert (status, body) == (200, b"GET /first")
        sock.sendall(b"GET /second HTTP/1.1\r\nHost: t\r\n")
        assert_408(sock)


def test_header_read_timeout_counts_from_first_byte_not_last(header_timeout):
    # slowloris: one byte of header every 0.2 s keeps the line alive but must not keep the
    # connection: the 408 comes about 1 s after the first byte (hang guard: 40 drips, 8 s)
    with header_timeout.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Drip: ")
        ended = False
        for _ in range(40):
            sock.settimeout(0.2)
            try:
                sock.recv(1, socket.MSG_PEEK)  # the answer (or the close) came: read below
                ended = True
                break
            except TimeoutError:
                pass
            except ConnectionResetError:
                ended = True
                break
            try:
                sock.sendall(b"d")
            except (BrokenPipeError, ConnectionResetError):
                ended = True  # closed between two drips: what it sent first is read below
                break
        assert ended, "the server kept a dripping request head open for 8 s with a 1 s timeout"
        assert_408(sock)


def test_header_timeout_spares_an_idle_connection(header_timeout):
    # Ordering instead of waiting: the idle connection opens first, so once the later one's
    # head has timed out, the idle one has been open longer than the header timeout.
    with header_timeout.connect() as idle, header_timeout.connect() as slow:
        status, _, _, _ = roundtrip(idle, request("/before"))
        assert status == 200
        slow.sendall(b"GET /slo")
        assert_408(slow)
        status, _, _, body = roundtrip(idle, request("/still-open"))
        assert (status, body) == (200, b"GET /still-open")


def test_keep_alive_idle_timeout_closes_silently(idle_timeout):
    with idle_timeout.connect() as sock:
        status, _, _, body = roundtrip(sock, request("/once"))
        assert (status, body) == (200, b"GET /once")
        data, closed = read_until_closed(sock)
    assert closed and data == b"", data


def test_connection_that_never_sends_is_closed_silently(idle_timeout):
    with idle_timeout.connect() as sock:
        data, closed = read_until_closed(sock)
    assert closed and data == b"", data


def test_idle_timeout_spares_a_head_under_way(idle_timeout):
    # The slow head starts first; once the idle connection opened after it has been closed,
    # the head has been under way longer than the keep-alive timeout: it is still read.
    with idle_timeout.connect() as slow:
        slow.sendall(b"GET /slow-head HTTP/1.1\r\n")
        wait_server_read(slow)
        with idle_timeout.connect() as idle:
            data, closed = read_until_closed(idle)
        assert closed and data == b""
        status, _, _, body = roundtrip(slow, b"Host: t\r\n\r\n")
    assert (status, body) == (200, b"GET /slow-head")


def test_slow_body_is_not_cut_by_header_timeout(header_timeout):
    # The header timeout covers reading the head, not the body nor the app's work. Ordering
    # again: the body is held back until a head begun after this request's has timed out.
    with header_timeout.connect() as sock:
        tag = f"s{sock.getsockname()[1]}"
        sock.sendall(f"POST /await-body?{tag} HTTP/1.1\r\nHost: t\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".encode())
        assert header_timeout.wait_for_log(rf"await-body {tag}: reading", 10)
        with header_timeout.connect() as later:
            later.sendall(b"GET /slo")
            assert_408(later)
        sock.sendall(b"0\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert (status, body) == (200, b"abc")


# -- response headers from the app --------------------------------------------------------

def test_repeated_set_cookie_all_sent_in_order(h1):
    with h1.connect() as sock:
        _, _, header_list, body = roundtrip(sock, request("/cookies"))
    cookies = [value for name, value in header_list if name == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2; HttpOnly", "c=3"]
    assert body == b"cookies"


HOP_NAMES = {"keep-alive", "upgrade", "te", "trailer", "proxy-connection",
             "proxy-authenticate"}


@pytest.mark.parametrize("path, body", [("/hop", b"hop"), ("/hop-stream", b"xy")])
def test_hop_by_hop_headers_from_app_not_forwarded_blindly(h1, path, body):
    with h1.connect() as sock:
        for _ in range(2):  # twice: the connection stays in sync and reusable
            status, headers, header_list, got = roundtrip(sock, request(path))
            assert (status, got) == (200, body)
            header_names = names(header_list)
            assert headers["x-kept"] == "yes"
            assert not HOP_NAMES & set(header_names), header_list
            framing = header_names.count("content-length") + header_names.count(
                "transfer-encoding")
            assert framing == 1, header_list  # exactly one framing header, the server's own
            assert header_names.count("connection") <= 1
            assert headers.get("connection", "keep-alive") != "close"
            if "transfer-encoding" in headers:
                assert headers["transfer-encoding"] == "chunked"
            else:
                assert headers["content-length"] == str(len(body))


def test_app_connection_close_closes_after_response(h1):
    with h1.connect() as sock:
        sock.sendall(request("/close"))
        data, closed = read_until_closed(sock)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    assert status == 200 and body == b"closing"
    assert names(headers).count("connection") == 1
    assert dict(headers)["connection"] == "close"


def test_crlf_in_app_header_value_gives_500_not_split_response(h1):
    with h1.connect() as sock:
        sock.sendall(request("/crlf"))
        data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 500 "), data
    assert b"x-injected" not in data.lower()
    assert b"split" not in data
    assert data.count(b"HTTP/1.1 ") == 1
    assert closed
    assert h1.wait_for_log(r"RuntimeError: invalid response header value", 5), h1.log[-2000:]
    assert_healthy(h1)


# -- request smuggling ----------------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
SMUGGLING = [
    ("cl-te", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-cl", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 4\r\n\r\n5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n"),
    ("te-obfuscated-case", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                           b"transfer-ENCODING: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-space-before-colon", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n"
                              b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-folded", b"POST /echo HTTP/1.1\r\nHost: t\r\nX-A: b\r\n Transfer-Encoding: chunked"
                  b"\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("te-xchunked", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n"
                    b"0\r\n\r\n" + SMUGGLED),
    ("te-chunked-identity", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                            b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED),
    ("cl-cl", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 37\r\n"
              b"\r\n" + SMUGGLED),
    ("cl-comma-list", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 37\r\n\r\n"
                      + SMUGGLED),
    ("cl-negative", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n" + SMUGGLED),
    ("bare-lf-headers", b"POST /echo HTTP/1.1\nHost: t\nContent-Length: 37\n\n" + SMUGGLED),
    ("bare-cr-header", b"POST /echo HTTP/1.1\r\nHost: t\rContent-Length: 37\r\n\r\n" + SMUGGLED),
    ("chunk-size-space", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0 \r\n\r\n" + SMUGGLED),
    ("chunk-missing-crlf", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabcX\r\n0\r\n\r\n" + SMUGGLED),
    ("chunk-ext-bare-lf", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3;x\nabc\r\n0\r\n\r\n" + SMUGGLED),
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLED),
]


@pytest.mark.parametrize("payload", [case[1] for case in SMUGGLING],
                         ids=[case[0] for case in SMUGGLING])
def test_smuggling_attempt_gets_one_error_response(h1, payload):
    with h1.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(payload)
        data, closed = read_until_closed(sock)
    assert closed
    assert data.count(b"HTTP/1.1 ") == 1, f"more than one response: {data!r}"
    status = int(data[9:12])
    assert status in (400, 501), data
    assert h1.wait_for_log(rf"127\.0\.0\.1:{port} .*\b{status}\b", 5)
    assert not re.search(rf"127\.0\.0\.1:{port} .*/smuggled", h1.log)
    assert_healthy(h1)


# -- --limit-concurrency ------------------------------------------------------------------

def test_limit_concurrency_answers_503(serve):
    server = serve(APP, "--limit-concurrency", "2")
    with server.connect() as holder:
        # The holder is a connection plus an app task that waits for the body the test sends
        # only after the refusal: with it open, one more connection is over the limit of 2.
        tag = f"c{holder.getsockname()[1]}"
        holder.sendall(f"POST /await-body?{tag} HTTP/1.1\r\nHost: t\r\n"
                       "Content-Length: 4\r\n\r\n".encode())
        assert server.wait_for_log(rf"await-body {tag}: reading", 10), server.log
        with server.connect() as sock:
            port = sock.getsockname()[1]
            sock.sendall(request("/over"))
            data, closed = read_until_closed(sock)
        head, _, got = data.partition(b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 503 "), data
        assert got and b"503" in got  # the refusal explains itself
        assert closed
        assert server.wait_for_log(rf"127\.0\.0\.1:{port} .*503", 5)
        holder.sendall(b"held")  # the held request itself is served
        status, _, _, body = read_response(holder)
        assert (status, body) == (200, b"held")

    def served() -> bool:
        with server.connect() as sock:
            return roundtrip(sock, request("/again"))[::3] == (200, b"GET /again")

    # once the holder is gone (the server learns it from the close) the server serves again
    assert wait_until(served, 10), server.log[-2000:]


def test_shutdown_closes_a_connection_whose_app_waits_for_disconnect(serve):
    # Both the app's own wait and the graceful timeout are far beyond the hang guard: only
    # the server telling the app the client is gone ends the wait in time.
    server = serve(APP, "--timeout-graceful-shutdown", "60")
    with server.connect() as sock:
        sock.sendall(request("/hold?s&60"))
        assert server.wait_for_log(r"hold s: waiting", 5)
        server.send_signal(signal.SIGINT)
        assert server.wait_for_log(r"hold s: disconnect", 10), server.log
        data, closed = read_until_closed(sock, timeout=10)
        assert closed
        assert server.wait_exit() == 0
    assert "graceful shutdown timed out" not in server.log, server.log


# -- request targets and Host values that are fine (RFC 9112 §3.2) ------------------------

@pytest.mark.parametrize("line, host, expected", [
    (b"OPTIONS * HTTP/1.1", b"t", b"OPTIONS *"),
    (b"GET http://example.com/abs?q=1 HTTP/1.1", b"example.com", b"GET /abs?q=1"),
    (b"GET / HTTP/1.1", b"[::1]:8000", b"GET /"),
    (b"GET / HTTP/1.1", b"example.com:80", b"GET /"),
    (b"GET / HTTP/1.1", b"", b"GET /"),  # empty: a target with no authority
], ids=["options-asterisk", "absolute-form", "ipv6-literal-host", "host-with-port",
        "empty-host"])
def test_valid_targets_and_hosts_reach_the_app(h1, line, host, expected):
    with h1.connect() as sock:
        status, _, _, body = roundtrip(sock, line + b"\r\nHost: " + host + b"\r\n\r\n")
    assert (status, body) == (200, expected)


def test_http10_without_host_is_served(h1):
    with h1.connect() as sock:
        sock.sendall(b"GET /plain HTTP/1.0\r\n\r\n")
        data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"GET /plain"), data


def test_trailing_whitespace_of_a_field_value_is_not_part_of_it(h1):
    """RFC 9110 §5.5 (llhttp drops the leading whitespace, the server the trailing)."""
    with h1.connect() as sock:
        status, _, _, body = roundtrip(
            sock, b"GET /headers HTTP/1.1\r\nHost: t \t\r\nX-Value: \tabc\t \r\n"
                  b"X-Inner: a  b\r\n\r\n")
    assert status == 200
    assert body.splitlines() == [b"host: t", b"x-value: abc", b"x-inner: a  b"]


def _head_only(sock: socket.socket) -> tuple[int, dict, bytes]:
    data, closed = read_until_closed(sock)
    assert closed
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    status, headers = parse_head(head)
    return status, dict(headers), rest


def test_a_refused_head_request_gets_no_body(h1):
    """The server's own answers to HEAD carry no body (RFC 9110 §9.3.2), with the length
    a GET would have had."""
    with h1.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n")
        status, headers, rest = _head_only(sock)
    assert status == 400 and headers["connection"] == "close"
    assert int(headers["content-length"]) > 0 and rest == b""
    with h1.connect() as sock:  # a GET gets the body the HEAD's length announced
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
        status, get_headers, body = _head_only(sock)
    assert status == 400 and len(body) == int(get_headers["content-length"])


def test_a_head_request_whose_app_fails_gets_a_500_without_body(h1):
    with h1.connect() as sock:
        sock.sendall(b"HEAD /raise HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, rest = _head_only(sock)
    assert status == 500 and int(headers["content-length"]) > 0 and rest == b""
    assert h1.wait_for_log(r"h1_apps /raise: raised on purpose", timeout=5) is not None
    assert_healthy(h1)

