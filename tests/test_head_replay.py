"""Replayed request heads (betula.protocols.h1.connection, data_received).

A head byte for byte equal to one llhttp parsed before, arriving whole with its whole
Content-Length body in one read, is not parsed again: its parse is replayed. Seen from
outside that must change nothing: each request gets its own body, every dynamic rule
(--limit-concurrency, graceful stop, Connection: close, HTTP/1.0) still applies, reads that
hold part of a message or more than one go through the parser, and heads the parser might
end elsewhere than at their first blank line (any line break that is not CRLF) are never
kept. The servers run with ``--log-level trace``, which logs each head kept for replay and
each replayed one: so the tests also see which path every request took.

A head is kept the second time it is seen (betula/cache.py, ``admit``): a head that never
repeats is never stored. These servers run without the C scanner (BETULA_PURE_PYTHON=1),
so that what is kept is what llhttp parsed; tests/test_h1scan.py keeps scanned heads.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import socket

import pytest

from tests.support.logs import new_id
from tests.support.tcp import wait_server_read
from tests.support.wire import read_response, read_until_closed, recv_until_closed

pytestmark = pytest.mark.timeout(60)

TRACE = ("--log-level", "trace")
PURE = {"BETULA_PURE_PYTHON": "1"}
APPS = {
    "asgi": ("tests.apps.replay_apps:replay_asgi", "--lifespan", "off", *TRACE),
    "wsgi": ("tests.apps.replay_apps:replay_wsgi", "--interface", "wsgi", *TRACE),
}
H1 = ("tests.apps.h1_apps:app", *TRACE)
HEAD = "POST /echo?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-A: 1"
# The README's bounds: 1024 heads of up to 2 KiB (request line and fields) in each of two
# generations (betula/cache.py): a head not replayed for a whole generation is dropped.
REPLAY_MAX = 1024
REPLAY_HEAD_BYTES = 2048
TRACE_LINE = re.compile(r" TRACE (?:(\S+) - head (kept for replay|replayed): (b.*)"
                        r"|(\d+) heads kept for replay aged: .*)$")


@pytest.fixture
def serve(serve):
    """conftest's ``serve``, with llhttp parsing every head not replayed (PURE)."""
    def start(*args, env=None, **kwargs):
        return serve(*args, env={**PURE, **(env or {})}, **kwargs)
    return start


def _events(srv) -> list[tuple[str, int, str]]:
    """What the server traced, in order, up to a marker head sent now (so nothing traced for
    the requests before it can still be on its way): (what, client port, head), what being
    "kept", "replayed" or "aged" (a generation of kept heads ended)."""
    marker = f"GET /marker/{new_id()} HTTP/1.1\r\nHost: t"
    with srv.connect() as sock:
        for _ in range(2):  # kept (and so traced) the second time
            sock.sendall(marker.encode() + b"\r\n\r\n")
            assert read_response(sock)[0] == 200
    assert srv.wait_for_log(re.escape(repr(marker.encode())), 10), srv.log[-3000:]
    events = []
    for line in list(srv.lines):
        match = TRACE_LINE.search(line)
        if match is None:
            continue
        if match.group(4):
            events.append(("aged", 0, match.group(4)))
            continue
        head = ast.literal_eval(match.group(3)).decode("latin-1")
        if head == marker:
            return events
        what = "kept" if match.group(2) == "kept for replay" else "replayed"
        events.append((what, int(match.group(1).rpartition(":")[2]), head))
    raise AssertionError("the marker's trace line went missing")


def _of(events, head: str) -> list[tuple[str, int]]:
    return [(what, port) for what, port, h in events if h == head]


def _port(sock: socket.socket) -> int:
    return sock.getsockname()[1]


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
        one = _port(sock)
        seen = [_post(sock, body) for body in bodies]
    with srv.connect() as sock:  # another connection: the same head, kept per server
        two = _port(sock)
        seen += [_post(sock, body) for body in reversed(bodies)]
    assert [s["body"].encode("latin-1") for s in seen] == bodies + bodies[::-1]
    for s in seen:
        assert (s["method"], s["path"], s["query"], s["version"]) == ("POST", "/echo", "q=1",
                                                                       "1.1")
    assert seen[0]["headers"] == seen[-1]["headers"]
    # parsed twice (kept the second time), replayed for every later request, on either
    # connection
    assert _of(_events(srv), HEAD) == [("kept", one)] + [("replayed", one)] * 3 \
        + [("replayed", two)] * 5


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_bodyless_requests_replay_too(serve, iface):
    srv = serve(*APPS[iface])
    head = "GET /a?b=c HTTP/1.1\r\nHost: t\r\nAccept: */*"
    with srv.connect() as sock:
        seen = [_post(sock, b"", head) for _ in range(3)]
        port = _port(sock)
    assert all((s["path"], s["query"], s["body"]) == ("/a", "b=c", "") for s in seen)
    assert _of(_events(srv), head) == [("kept", port), ("replayed", port)]


def test_parts_and_pipelines_of_a_kept_head_go_through_the_parser(serve):
    srv = serve(*APPS["asgi"])
    whole = HEAD.encode() + b"\r\n\r\n"
    with srv.connect() as sock:
        port = _port(sock)
        assert _post(sock, b"seen!")["body"] == "seen!"
        assert _post(sock, b"keep!")["body"] == "keep!"  # kept from here on
        # the head in two reads
        sock.sendall(whole[:20])
        wait_server_read(sock)
        sock.sendall(whole[20:] + b"split")
        status, _, _, out = read_response(sock)
        assert json.loads(out)["body"] == "split"
        # the body in two reads
        sock.sendall(whole + b"ab")
        wait_server_read(sock)
        sock.sendall(b"cde")
        status, _, _, out = read_response(sock)
        assert json.loads(out)["body"] == "abcde"
        # two messages in one read, then one with a partial third
        sock.sendall(whole + b"one.." + whole + b"two.." + whole + b"th")
        assert json.loads(read_response(sock)[3])["body"] == "one.."
        assert json.loads(read_response(sock)[3])["body"] == "two.."
        wait_server_read(sock)
        sock.sendall(b"ree")
        assert json.loads(read_response(sock)[3])["body"] == "three"
        # and the plain repeat still works after all that
        assert _post(sock, b"again")["body"] == "again"
    # only the second (kept) and the last (replayed) request were whole messages alone, of
    # a head seen before
    assert _of(_events(srv), HEAD) == [("kept", port), ("replayed", port)]


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
    assert _of(_events(srv), head) == []


def test_a_head_after_blank_lines_is_not_kept_with_them(serve):
    srv = serve(*APPS["asgi"])
    head = "GET /lead HTTP/1.1\r\nHost: t"
    for _ in range(2):
        with srv.connect() as sock:
            # llhttp skips empty lines before a request line: the key would hold them
            assert _post(sock, b"", "\r\n" + head)["path"] == "/lead"
    assert not [event for event in _events(srv) if event[2].endswith(head)]


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
    assert not [event for event in _events(srv) if "Host: t\n" in event[2]
                or "Host: t\r" in event[2].replace("\r\n", "")]


def _head_of(size: int, path: str) -> str:
    """A GET head of exactly ``size`` bytes (request line and fields, no blank line)."""
    head = f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Big: "
    return head + "b" * (size - len(head))


def test_kept_heads_are_bounded_in_count_and_size(serve):
    srv = serve(*APPS["asgi"])
    longest, too_long = _head_of(REPLAY_HEAD_BYTES, "/at"), _head_of(REPLAY_HEAD_BYTES + 1, "/over")
    hot, cold = "GET /hot HTTP/1.1\r\nHost: t", "GET /cold HTTP/1.1\r\nHost: t"

    def twice(sock, head: str, path: str) -> None:  # seen, then kept
        for _ in range(2):
            assert _post(sock, b"", head)["path"] == path

    with srv.connect() as sock:
        twice(sock, hot, "/hot")
        twice(sock, cold, "/cold")
        # More distinct heads than a generation holds: the generation ends ("aged") ...
        for i in range(REPLAY_MAX):
            twice(sock, f"GET /n/{i} HTTP/1.1\r\nHost: t", f"/n/{i}")
        # ... and a head in use is still replayed from the generation before (not parsed
        # again, as it would be if a full set were emptied whole) ...
        assert _post(sock, b"", hot)["path"] == "/hot"
        # ... while one unused for a whole generation is dropped when the next one ends.
        for i in range(REPLAY_MAX):
            twice(sock, f"GET /m/{i} HTTP/1.1\r\nHost: t", f"/m/{i}")
        assert _post(sock, b"", hot)["path"] == "/hot"
        twice(sock, cold, "/cold")
        for _ in range(3):  # a head at the size bound and one past it, three times each
            assert _post(sock, b"", longest)["path"] == "/at"
            assert _post(sock, b"", too_long)["path"] == "/over"
    events = _events(srv)
    kinds = [what for what, _, head in events
             if head.startswith(("GET /n/", "GET /m/")) or what == "aged"]
    # 2 + 1023 heads fill the first generation; the 1024th /n/ head starts the second,
    # which the recalled hot head and 1022 /m/ heads fill; the next /m/ starts the third.
    assert kinds == (["kept"] * (REPLAY_MAX - 2) + ["aged"] + ["kept"] * 2
                     + ["kept"] * (REPLAY_MAX - 3) + ["aged"] + ["kept"] * 3)
    assert [what for what, _ in _of(events, hot)] == ["kept", "replayed", "replayed"]
    assert [what for what, _ in _of(events, cold)] == ["kept", "kept"]
    assert [what for what, _ in _of(events, longest)] == ["kept", "replayed"]
    assert _of(events, too_long) == []


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_replayed_http10_and_connection_close_requests_end_the_connection(serve, iface):
    srv = serve(*APPS[iface])
    ports = {}
    for head in ("GET /ten HTTP/1.0", "GET /close HTTP/1.1\r\nHost: t\r\nConnection: close"):
        ports[head] = []
        for _ in range(3):
            with srv.connect() as sock:
                ports[head].append(_port(sock))
                sock.sendall(head.encode() + b"\r\n\r\n")
                data, closed = read_until_closed(sock)
            assert closed
            assert data.count(b"HTTP/1.1 200 ") == 1, data
            assert b"connection: close" in data.lower()
    with srv.connect() as sock:  # HTTP/1.0 with keep-alive, replayed: kept open
        ka_port = _port(sock)
        for _ in range(3):
            reply = _post(sock, b"", "GET /ten-ka HTTP/1.0\r\nConnection: keep-alive")
            assert reply["version"] == "1.0"
    events = _events(srv)
    for head, (_, second, third) in ports.items():
        assert _of(events, head) == [("kept", second), ("replayed", third)]
    assert _of(events, "GET /ten-ka HTTP/1.0\r\nConnection: keep-alive") == \
        [("kept", ka_port), ("replayed", ka_port)]


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
@pytest.mark.parametrize("head", [
    "GET /pc HTTP/1.1\r\nHost: t\r\nProxy-Connection: close",  # llhttp reads it
    "GET /ka HTTP/1.0\r\nConnection: keep-alivex",  # not the keep-alive token
], ids=["http11-proxy-connection-close", "http10-keep-alivex"])
def test_a_request_llhttp_ends_the_connection_after_ends_it_replayed_or_not(serve, iface, head):
    # llhttp refuses every byte after a request it does not keep alive; the connection must
    # end there too, or a replayed head (which llhttp never sees) would be served after it.
    srv = serve(*APPS[iface])
    other = "GET /other HTTP/1.1\r\nHost: t"
    with srv.connect() as sock:  # the follow-up request, kept for replay
        first = _port(sock)
        for _ in range(2):
            assert _post(sock, b"", other)["path"] == "/other"
    ports = []
    for _ in range(3):  # parsed, parsed and kept, then replayed
        with srv.connect() as sock:
            ports.append(_port(sock))
            sock.sendall(head.encode() + b"\r\n\r\n")
            status, headers, _, _ = read_response(sock)
            assert status == 200 and headers.get("connection") == "close", headers
            try:
                sock.sendall(other.encode() + b"\r\n\r\n")
            except OSError:
                pass  # already closed: as it should be
            data, closed = read_until_closed(sock)
            assert closed and data == b"", data
    events = _events(srv)
    assert _of(events, head) == [("kept", ports[1]), ("replayed", ports[2])]
    assert _of(events, other) == [("kept", first)]  # never replayed after a closing request


def test_proxy_connection_keep_alive_does_not_make_http10_a_11_request(serve):
    srv = serve(*APPS["asgi"])
    head = "GET /v HTTP/1.0\r\nProxy-Connection: keep-alive"  # and no Host: fine for 1.0
    ports = []
    for _ in range(3):
        with srv.connect() as sock:
            ports.append(_port(sock))
            assert _post(sock, b"", head)["version"] == "1.0"
    assert _of(_events(srv), head) == [("kept", ports[1]), ("replayed", ports[2])]


def test_limit_concurrency_applies_to_a_replayed_head(serve):
    srv = serve(*H1, "--limit-concurrency", "2")
    head = "GET /again HTTP/1.1\r\nHost: t"
    for _ in range(3):  # parsed, parsed and kept, then replayed: all served
        with srv.connect() as sock:
            sock.sendall(head.encode() + b"\r\n\r\n")
            assert read_response(sock)[0] == 200
    with srv.connect() as holder:  # a connection and its app task: the limit is reached
        # the app waits for a body that never comes (until the holder goes)
        holder.sendall(b"POST /await-body?r HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n")
        assert srv.wait_for_log(r"await-body r: reading", 10), srv.log
        with srv.connect() as sock:
            refused = _port(sock)
            sock.sendall(head.encode() + b"\r\n\r\n")
            data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 503 "), data
        # traced before the refusal was written (no marker: it would be refused too)
        assert srv.wait_for_log(rf"TRACE 127\.0\.0\.1:{refused} - head replayed: "
                                + re.escape(repr(head.encode())), 10), srv.log[-3000:]


def test_graceful_stop_makes_a_replayed_request_the_last(serve):
    srv = serve(*H1, "--timeout-graceful-shutdown", "5")
    head = "GET /last HTTP/1.1\r\nHost: t"
    with srv.connect() as sock:  # parsed, parsed and kept, then replayed
        for _ in range(3):
            sock.sendall(head.encode() + b"\r\n\r\n")
            assert read_response(sock)[0] == 200
    # A fresh connection may still send its request for a moment after a stop begins.
    with srv.connect() as late:
        srv.send_signal(signal.SIGINT)
        assert srv.wait_for_log(r"shutting down gracefully", 5)
        late.sendall(head.encode() + b"\r\n\r\n")
        port = _port(late)
        data = recv_until_closed(late)
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b"connection: close" in data.lower()
    assert srv.wait_exit() == 0
    assert srv.wait_for_log(r"\bStopped\b", 5)  # every line before it has been read
    assert re.search(rf"TRACE 127\.0\.0\.1:{port} - head replayed: "
                     + re.escape(repr(head.encode())), srv.log), srv.log[-3000:]
