"""Replayed request heads (betula.protocols.http1, data_received).

A head byte for byte equal to one llhttp parsed before, arriving whole with its whole
Content-Length body in one read, is not parsed again: its parse is replayed. Seen from
outside that must change nothing: each request gets its own body, every dynamic rule
(--limit-concurrency, graceful stop, Connection: close, HTTP/1.0) still applies, reads that
hold part of a message or more than one go through the parser, and heads the parser might
end elsewhere than at their first blank line (any line break that is not CRLF) are never
kept. The ``/replays`` route of the apps lists what the server keeps, so the tests also
see that the replay path is the one taken.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from tests.support.wire import read_response, recv_until_closed

pytestmark = pytest.mark.timeout(60)

APPS = {
    "asgi": ("tests.apps.target_apps:replay_asgi", "--lifespan", "off"),
    "wsgi": ("tests.apps.target_apps:replay_wsgi", "--interface", "wsgi"),
}
HEAD = "POST /echo?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-A: 1"


def _replays(srv) -> list[str]:
    with srv.connect() as sock:
        sock.sendall(b"GET /replays HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert status == 200
    return json.loads(body)


def _post(sock: socket.socket, body: bytes, head: str = HEAD) -> dict:
    sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
    status, _, _, out = read_response(sock)
    assert status == 200, out
    return json.loads(out)


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_a_repeated_head_gives_each_request_its_own_body(serve, iface):
    srv = serve(*APPS[iface])
    bodies = [b"first", b"2nd..", b"\r\n\r\nx", b"12345", b"last!"]
    with srv.connect() as sock:
        seen = [_post(sock, body) for body in bodies]
    with srv.connect() as sock:  # another connection: the same head, kept per server
        seen += [_post(sock, body) for body in reversed(bodies)]
    assert [s["body"].encode("latin-1") for s in seen] == bodies + bodies[::-1]
    for s in seen:
        assert (s["method"], s["path"], s["query"], s["version"]) == ("POST", "/echo", "q=1",
                                                                       "1.1")
    assert seen[0]["headers"] == seen[-1]["headers"]
    assert HEAD in _replays(srv)


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_bodyless_requests_replay_too(serve, iface):
    srv = serve(*APPS[iface])
    head = "GET /a?b=c HTTP/1.1\r\nHost: t\r\nAccept: */*"
    with srv.connect() as sock:
        seen = [_post(sock, b"", head) for _ in range(3)]
    assert all((s["path"], s["query"], s["body"]) == ("/a", "b=c", "") for s in seen)
    assert head in _replays(srv)


def test_parts_and_pipelines_of_a_kept_head_go_through_the_parser(serve):
    srv = serve(*APPS["asgi"])
    whole = HEAD.encode() + b"\r\n\r\n"
    with srv.connect() as sock:
        assert _post(sock, b"keep!")["body"] == "keep!"  # kept from here on
        # the head in two reads
        sock.sendall(whole[:20])
        time.sleep(0.05)
        sock.sendall(whole[20:] + b"split")
        status, _, _, out = read_response(sock)
        assert json.loads(out)["body"] == "split"
        # the body in two reads
        sock.sendall(whole + b"ab")
        time.sleep(0.05)
        sock.sendall(b"cde")
        status, _, _, out = read_response(sock)
        assert json.loads(out)["body"] == "abcde"
        # two messages in one read, then one with a partial third
        sock.sendall(whole + b"one.." + whole + b"two.." + whole + b"th")
        assert json.loads(read_response(sock)[3])["body"] == "one.."
        assert json.loads(read_response(sock)[3])["body"] == "two.."
        sock.sendall(b"ree")
        assert json.loads(read_response(sock)[3])["body"] == "three"
        # and the plain repeat still works after all that
        assert _post(sock, b"again")["body"] == "again"


@pytest.mark.parametrize("head, body", [
    # a chunked body: framed by the parser, every time
    ("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked", b"3\r\nabc\r\n0\r\n\r\n"),
    # an Upgrade field (not a WebSocket one): the parser hands over the connection
    ("GET /u HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: foo", b""),
])
def test_heads_the_parser_must_see_are_not_kept(serve, head, body):
    srv = serve(*APPS["asgi"])
    for _ in range(2):
        with srv.connect() as sock:
            sock.sendall(head.encode() + b"\r\n\r\n" + body)
            status, _, _, out = read_response(sock)
            assert status == 200, out
    assert head not in _replays(srv)


def test_a_head_after_blank_lines_is_not_kept_with_them(serve):
    srv = serve(*APPS["asgi"])
    head = "GET /lead HTTP/1.1\r\nHost: t"
    for _ in range(2):
        with srv.connect() as sock:
            # llhttp skips empty lines before a request line: the key would hold them
            assert _post(sock, b"", "\r\n" + head)["path"] == "/lead"
    kept = _replays(srv)
    assert not [key for key in kept if key.endswith(head)]


@pytest.mark.parametrize("head", [
    "POST /lf HTTP/1.1\r\nHost: t\nContent-Length: 5",  # a bare LF ends a field
    "POST /cr HTTP/1.1\r\nHost: t\rContent-Length: 5",  # a bare CR inside one
])
def test_heads_with_bare_line_breaks_are_refused_and_never_kept(serve, head):
    # The replay key is the head up to its first CRLF CRLF: a parser that ended such a head
    # at a bare line break would frame the body elsewhere. llhttp refuses them, every time.
    srv = serve(*APPS["asgi"])
    for _ in range(2):
        with srv.connect() as sock:
            sock.sendall(head.encode() + b"\r\n\r\nab\r\n\r\nGET /smuggled HTTP/1.1\r\n")
            data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert data.count(b"HTTP/1.1 ") == 1
    assert not [key for key in _replays(srv) if "Host: t\n" in key or "Host: t\r" in key]


def test_kept_heads_are_bounded_in_count_and_size(serve):
    from betula.protocols.http1 import REPLAY_HEAD_BYTES, REPLAY_MAX

    srv = serve(*APPS["asgi"])
    long_head = "GET /long HTTP/1.1\r\nHost: t\r\nX-Big: " + "b" * REPLAY_HEAD_BYTES
    with srv.connect() as sock:
        for i in range(REPLAY_MAX + 50):  # more distinct heads than it keeps
            assert _post(sock, b"", f"GET /n/{i} HTTP/1.1\r\nHost: t")["path"] == f"/n/{i}"
        for _ in range(2):  # a head too long to keep, twice
            assert _post(sock, b"", long_head)["path"] == "/long"
    kept = _replays(srv)
    assert 0 < len(kept) <= REPLAY_MAX
    assert long_head not in kept
    assert max(map(len, kept)) <= REPLAY_HEAD_BYTES


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_replayed_http10_and_connection_close_requests_end_the_connection(serve, iface):
    srv = serve(*APPS[iface])
    for head in ("GET /ten HTTP/1.0", "GET /close HTTP/1.1\r\nHost: t\r\nConnection: close"):
        for _ in range(3):
            with srv.connect() as sock:
                # bytes after a request that ends the connection are not answered
                sock.sendall(head.encode() + b"\r\n\r\n")
                data = recv_until_closed(sock)
            assert data.count(b"HTTP/1.1 200 ") == 1, data
            assert b"connection: close" in data.lower()
        assert head in _replays(srv)
    with srv.connect() as sock:  # HTTP/1.0 with keep-alive, replayed: kept open
        for _ in range(3):
            reply = _post(sock, b"", "GET /ten-ka HTTP/1.0\r\nConnection: keep-alive")
            assert reply["version"] == "1.0"


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
@pytest.mark.parametrize("head", [
    "GET /pc HTTP/1.1\r\nHost: t\r\nProxy-Connection: close",  # llhttp reads it
    "GET /ka HTTP/1.0\r\nConnection: keep-alivex",  # not the keep-alive token
], ids=["http11-proxy-connection-close", "http10-keep-alivex"])
def test_a_request_llhttp_ends_the_connection_after_ends_it_replayed_or_not(serve, iface, head):
    # llhttp refuses every byte after a request it does not keep alive; the connection must
    # end there too, or a replayed head (which llhttp never sees) would be served after it.
    srv = serve(*APPS[iface])
    other = b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n"
    with srv.connect() as sock:  # the follow-up request, kept for replay
        assert _post(sock, b"", other.decode()[:-4])["path"] == "/other"
    for _ in range(3):  # parsed, then replayed
        with srv.connect() as sock:
            sock.sendall(head.encode() + b"\r\n\r\n")
            status, headers, _, _ = read_response(sock)
            assert status == 200 and headers.get("connection") == "close", headers
            time.sleep(0.05)
            try:
                sock.sendall(other)
            except OSError:
                pass  # already closed: as it should be
            assert recv_until_closed(sock) == b""
    assert head in _replays(srv)


def test_proxy_connection_keep_alive_does_not_make_http10_a_11_request(serve):
    srv = serve(*APPS["asgi"])
    head = "GET /v HTTP/1.0\r\nProxy-Connection: keep-alive"  # and no Host: fine for 1.0
    for _ in range(2):
        with srv.connect() as sock:
            assert _post(sock, b"", head)["version"] == "1.0"


def test_limit_concurrency_applies_to_a_replayed_head(serve):
    srv = serve("tests.apps.h1_apps:app", "--limit-concurrency", "2")
    request = b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n"
    for _ in range(2):  # parsed, then replayed: both served
        with srv.connect() as sock:
            sock.sendall(request)
            assert read_response(sock)[0] == 200
    with srv.connect() as holder:  # a connection and its app task: the limit is reached
        holder.sendall(b"GET /hold?r&5 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert srv.wait_for_log(r"hold r: waiting", 5), srv.log
        with srv.connect() as sock:
            sock.sendall(request)
            data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 503 "), data


def test_graceful_stop_makes_a_replayed_request_the_last(serve):
    srv = serve("tests.apps.h1_apps:app", "--timeout-graceful-shutdown", "5")
    request = b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n"
    with srv.connect() as sock:  # parsed, then replayed
        for _ in range(2):
            sock.sendall(request)
            assert read_response(sock)[0] == 200
    # A fresh connection may still send its request for a moment after a stop begins.
    with srv.connect() as late:
        srv.send_signal(signal.SIGINT)
        assert srv.wait_for_log(r"shutting down gracefully", 5)
        late.sendall(request)
        data = recv_until_closed(late)
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b"connection: close" in data.lower()
    assert srv.wait_exit() == 0
