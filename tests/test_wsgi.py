"""WSGI (PEP 3333) interface, black box: the real CLI, real sockets, apps in
tests/apps/wsgi_apps.py.

Every app runs through ``wsgiref.validate.validator`` (see that module's docstring); a PEP
3333 violation by the server raises AssertionError inside the app, so every test also
checks that the server log gained no ``AssertionError`` (and no "garbage collected without
being closed" from the validator's iterator wrapper). What only the app can see is printed
as ``RECORD <id> <json>`` lines; waits on those are bounded. Ordering is checked with flag
files the apps wait on (bounded), never with timing asserts. The validator speaks from its
iterator's ``__del__``, after the response: ``settle`` has every server thread meet in
/barrier first, so its words are in the log before the check. What the server does while the
test waits (not reading a body, an app thread held back) is read off the kernel's state of
its sockets and threads (tests/support/syscalls.py), not off a pause in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import struct
import threading
import time
from urllib.parse import quote

import httpx
import pytest

from tests.support.client import get_json
from tests.support.logs import (
    assert_clean,
    assert_logged_with_traceback,
    new_id,
    records,
    wait_record,
)
from tests.support.memory import PeakRSS
from tests.support.procs import wait_until
from tests.support.server import ServerProcess
from tests.support.syscalls import (
    assert_resumed,
    assert_sent_by_sendfile,
    server_fd,
    traced_server,
    waiting_untimed,
    watched_for_reading,
    write_stall_file,
)
from tests.support.tcp import tcp_ends
from tests.support.wire import (
    RawReader,
    dechunk,
    exchange,
    read_response,
    recv_until,
    recv_until_closed,
    request,
    split_head,
)

APP = "tests.apps.wsgi_apps:app"
MIB = 1024 * 1024
# The startup line says which interface auto chose ("serving app (WSGI, auto-detected)";
# earlier wording: "Interface: WSGI (detected; ...)").
DETECTED_WSGI = r"WSGI(, auto-| \()detected"
VIOLATIONS = ("AssertionError", "garbage collected without being closed")
THREADS = re.compile(r"(\d+) WSGI threads")
# betula/wsgi/http.py BODY_HIGH_WATER (the BodyBuffer's high water, betula/wsgi/io.py): the
# server pauses reading once more body bytes than this wait for the app. It may hold one
# more read on top (asyncio reads up to 256 KiB at a time): HELD_MAX leaves about 1 MiB.
BODY_HIGH_WATER = 256 * 1024
HELD_MAX = BODY_HIGH_WATER + MIB
# Peak RSS growth allowed while a 128 MiB body streams through to the app.
MAX_RSS_GROWTH = 16 * MIB


# -- helpers -------------------------------------------------------------------------------------
def settle(srv: ServerProcess) -> None:
    """Return once every WSGI thread of ``srv`` is done with what it ran before. The
    validator's complaint about an iterable the server never closed comes from its
    ``__del__``, when the thread lets go of it, after the response went out: one request per
    thread meets in /barrier (so each thread has finished its earlier work), and each records
    there before answering, so that complaint would be in the log ahead of these records."""
    line = srv.wait_for_log(THREADS.pattern, 5)
    assert line is not None, srv.log[-3000:]
    threads = int(THREADS.search(line).group(1))
    rid = new_id()
    socks = [srv.connect() for _ in range(threads)]
    try:
        for sock in socks:
            sock.sendall(request(f"/barrier?id={rid}&n={threads}"))
        for sock in socks:
            status = read_response(sock, timeout=20)[0]
            assert status == 200, f"the {threads} WSGI threads never met (one still busy):\n" \
                + srv.log[-3000:]
    finally:
        for sock in socks:
            sock.close()
    assert wait_until(lambda: len(records(srv, rid)) == threads, 10), srv.log[-3000:]


def assert_settled_clean(srv: ServerProcess, start: int = 0) -> None:
    """No PEP 3333 violation reported from line ``start`` on, the last requests included."""
    settle(srv)
    assert_clean(srv, start, VIOLATIONS)


def loop_turn(srv: ServerProcess) -> None:
    """One request on a connection of its own, answered, its record in the log: the event loop
    has run every callback the app threads handed it before (it runs them in order), and the
    log holds every line written before."""
    rid = new_id()
    data = exchange(srv, request(f"/close?id={rid}&chunks=0",
                                 headers=("Host: t", "Connection: close")))
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    wait_record(srv, rid)


@pytest.fixture(scope="module")
def module_server():
    srv = ServerProcess([APP, "--port", "0", "--threads", "4", "--timeout-keep-alive", "3",
                         "--timeout-graceful-shutdown", "2"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(module_server):
    """The shared server; after the test, no validator complaint may have reached its log."""
    start = len(module_server.lines)
    yield module_server
    assert_settled_clean(module_server, start)


def flag_path(tmp_path, name: str = "flag") -> tuple[str, str]:
    path = str(tmp_path / name)
    return path, quote(path, safe="")


# -- interface selection -------------------------------------------------------------------------
def test_auto_detects_a_wsgi_function_and_says_so(server):
    assert server.wait_for_log(DETECTED_WSGI, 1) is not None, server.log
    response = httpx.get(server.base_url + "/fast", timeout=10)
    assert response.status_code == 200 and response.text == "fast done"


def test_interface_wsgi_forced(serve):
    # validator(app) has the signature (*args, **kw): nothing to detect, so it is forced.
    srv = serve("tests.apps.wsgi_apps:lint_app", "--interface", "wsgi")
    response = httpx.get(srv.base_url + "/fast", timeout=10)
    assert response.status_code == 200 and response.text == "fast done"
    environ = get_json(srv, "/anything")
    assert environ["values"]["wsgi.version"] == [1, 0]
    line = srv.wait_for_log(r"serving", 1)
    assert line is not None and "WSGI" in line and "ASGI" not in line, srv.log
    assert_settled_clean(srv)


def test_flask_like_instance_is_detected_as_wsgi(serve):
    srv = serve("tests.apps.wsgi_apps:flask_like")
    assert srv.wait_for_log(DETECTED_WSGI, 1) is not None, srv.log
    response = httpx.get(srv.base_url + "/who", timeout=10)
    assert response.status_code == 200 and response.text == "flask-like"
    assert get_json(srv, "/x")["values"]["PATH_INFO"] == "/x"
    assert_settled_clean(srv)


# -- environ -------------------------------------------------------------------------------------
def test_environ_complete_and_typed(server):
    with server.connect() as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(request("/env/x?a=1&b=%20x&c", headers=(
            "Host: example.test", "X-Multi: a", "Cookie: a=1", "X-Multi: b",
            "Cookie: b=2", "X-Under: real", "X_Under: spoofed", "Only_Underscore: v",
            "User-Agent: t/1")))
        status, _, _, body = read_response(sock)
    assert status == 200, body
    env = json.loads(body)
    values, types = env["values"], env["types"]
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
                "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
                "wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors",
                "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
                "wsgi.input_terminated", "wsgi.file_wrapper", "wsgi.early_hints"):
        assert key in values, key
    # Every CGI-style key (no dot) is a native str.
    assert {k: t for k, t in types.items() if "." not in k and t != "str"} == {}
    assert values["REQUEST_METHOD"] == "GET"
    assert values["SCRIPT_NAME"] == ""
    assert values["PATH_INFO"] == "/env/x"
    assert values["QUERY_STRING"] == "a=1&b=%20x&c"
    assert values.get("CONTENT_LENGTH", "") == "" and values.get("CONTENT_TYPE", "") == ""
    assert values["SERVER_NAME"]
    assert values["SERVER_PORT"] == str(server.port)
    assert values["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert values["REMOTE_ADDR"] == "127.0.0.1"
    assert values["REMOTE_PORT"] == str(client_port)
    assert values["HTTP_HOST"] == "example.test"
    assert values["HTTP_USER_AGENT"] == "t/1"
    assert values["HTTP_X_MULTI"] == "a, b"
    assert values["HTTP_COOKIE"] == "a=1; b=2"
    assert values["HTTP_X_UNDER"] == "real"  # X_Under (underscore) dropped, not merged
    assert not any("ONLY" in k for k in values)
    assert "HTTP_CONTENT_LENGTH" not in values and "HTTP_CONTENT_TYPE" not in values
    assert values["wsgi.version"] == [1, 0] and types["wsgi.version"] == "tuple"
    assert values["wsgi.url_scheme"] == "http"
    assert env["input_attrs"] == ["read", "readline", "readlines", "__iter__"]
    assert env["errors_attrs"] == ["write", "writelines", "flush"]
    assert values["wsgi.multithread"] is True  # --threads 4
    assert values["wsgi.multiprocess"] is False
    assert values["wsgi.run_once"] is False
    assert values["wsgi.input_terminated"] is True
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
                "wsgi.input_terminated"):
        assert types[key] == "bool", key
    assert env["callables"] == {"wsgi.file_wrapper": True, "wsgi.early_hints": True}


def test_underscore_fields_are_dropped_every_time(server):
    # The name is remembered as "dropped" after the first head that carries it: later,
    # different heads with it must drop it too (not give the app an environ key "").
    for n in range(3):
        with server.connect() as sock:
            sock.sendall(request(f"/env/u{n}", headers=(
                "Host: t", f"X-N: {n}", "X_Spoof: evil", "Also_Under: v")))
            status, _, _, body = read_response(sock)
        assert status == 200, body
        values = json.loads(body)["values"]
        assert "" not in values, n
        assert "evil" not in values.values() and "v" not in values.values(), n


def test_status_reason_phrases_are_the_apps_and_checked(serve):
    srv = serve("tests.apps.wsgi_apps:raw_status", "--interface", "wsgi")
    for status, line in (("200 OK", b"HTTP/1.1 200 OK"), ("299 Fine Thanks",
                         b"HTTP/1.1 299 Fine Thanks"), ("404 Gone Fishing",
                         b"HTTP/1.1 404 Gone Fishing")):
        with srv.connect() as sock:
            sock.sendall(request("/?" + quote(status)))
            assert RawReader(sock).line() == line
    # A line break in the phrase would start a header of its own: the app's error (500).
    data = exchange(srv, request("/?" + quote("200 OK\r\nX-Injected: 1"),
                                 headers=("Host: t", "Connection: close")))
    assert data.startswith(b"HTTP/1.1 500 "), data[:300]
    assert b"x-injected" not in data.lower()
    assert_logged_with_traceback(srv, "invalid WSGI status")


def test_environ_post_http_1_0(server):
    data = exchange(server, request(
        "/env/post", "POST", ("Content-Type: application/x-www-form-urlencoded",
                              "Content-Length: 5"), b"a=b&c", version="1.0"))
    status_line, _, body = split_head(data)
    assert b" 200 " in status_line, data[:300]
    values = json.loads(body)["values"]
    assert values["REQUEST_METHOD"] == "POST"
    assert values["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert values["CONTENT_LENGTH"] == "5"
    assert values["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert values["QUERY_STRING"] == ""


def test_environ_header_values_are_latin1_str(server):
    with server.connect() as sock:
        sock.sendall(b"GET /env HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert status == 200
    env = json.loads(body)
    assert env["values"]["HTTP_X_LATIN"] == "caf\xe9" and env["types"]["HTTP_X_LATIN"] == "str"


def test_multithread_false_with_one_thread(serve):
    srv = serve(APP, "--threads", "1")
    assert get_json(srv, "/env")["values"]["wsgi.multithread"] is False
    assert_settled_clean(srv)


@pytest.fixture(scope="module")
def list_server():
    srv = ServerProcess(["tests.apps.wsgi_apps:list_app", "--port", "0"]).start()
    yield srv
    assert_settled_clean(srv)
    srv.stop()


def read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, list[str], bytes]]:
    """``count`` Content-Length-framed responses: (status line, header lines, body)."""
    data = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(out)} responses: {data!r}"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        while len(data) < length:
            data += sock.recv(65536)
        out.append((lines[0].encode(), [line.lower() for line in lines[1:]], data[:length]))
        data = data[length:]
    return out


@pytest.mark.parametrize("query, expect, closes", [
    ("", [], False),
    ("?date=1", ["date: mon, 01 jan 2001 00:00:00 gmt"], False),
    ("?server=1", ["server: own"], False),
    ("?length=8", ["content-length: 8"], False),
    ("?close=1", ["connection: close"], True),
    ("?status=201%20Created", [], False),
])
def test_list_response_headers_each_time(list_server, query, expect, closes):
    # Three times on one connection: the first response with a status takes the general
    # path, the next ones the short path for known statuses; all must agree.
    count = 1 if closes else 3
    with list_server.connect() as sock:
        sock.sendall(request(f"/own{query}") * count)
        responses = read_responses(sock, count)
        if closes:
            assert recv_until_closed(sock, 5) == b""
    for status, lines, body in responses:
        assert status == (b"HTTP/1.1 201 Created" if "201" in query else b"HTTP/1.1 200 OK")
        assert body == b"own:body"
        for line in expect:
            assert line in lines
        assert sum(line.startswith("date:") for line in lines) == 1
        assert sum(line.startswith("server:") for line in lines) == 1
        assert sum(line.startswith("content-length:") for line in lines) == 1
        assert ("connection: close" in lines) == closes


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")
def test_app_threads_run_under_sched_batch_unless_turned_off(server, serve):
    # The default: a woken app thread does not preempt the event loop (see wsgi/pool.py).
    assert get_json(server, "/sched") == {"batch": True, "other": False}
    srv = serve(APP, "--no-threads-batch")
    assert get_json(srv, "/sched") == {"batch": False, "other": True}
    assert_settled_clean(srv)


def test_environ_path_info_percent_decoded_as_latin1(server):
    env = get_json(server, "/caf%C3%A9")
    # PEP 3333: native str whose latin-1 encoding is the raw (UTF-8) bytes.
    assert env["values"]["PATH_INFO"] == "/cafÃ©"
    assert bytes.fromhex(env["path_info_latin1_hex"]) == "/café".encode()
    env = get_json(server, "/a%2Fb%20c/%E2%82%AC")
    assert bytes.fromhex(env["path_info_latin1_hex"]).decode("utf-8") == "/a/b c/€"


@pytest.mark.parametrize("target, script_name, path_info", [
    ("/app/x/y?q=1", "/app", "/x/y"),
    ("/app", "/app", ""),
    ("/app/", "/app", "/"),
    ("/other/x", "/app", "/other/x"),
    ("/application", "/app", "/application"),
])
def test_root_path_sets_script_name(serve, target, script_name, path_info):
    srv = serve(APP, "--root-path", "/app")
    with srv.connect() as sock:
        sock.sendall(request(target))
        status, _, _, body = read_response(sock)
    assert status == 200, body
    values = json.loads(body)["values"]
    assert values["SCRIPT_NAME"] == script_name
    assert values["PATH_INFO"] == path_info
    assert_settled_clean(srv)


def test_wsgi_errors_writes_to_the_log(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/errors?id={rid}", timeout=10)
    assert response.status_code == 200
    for word in ("one", "two", "three"):
        assert server.wait_for_log(f"ERRLINE {word} {rid}", 5) is not None, server.log[-3000:]


# -- wsgi.input ----------------------------------------------------------------------------------
BODY = b"hello\nworld, this is\nline three\nlast-no-newline"


def post_input(srv: ServerProcess, op: str, body: bytes, chunked: bool | str = False,
               extra: str = "") -> dict:
    """POST ``body``: with Content-Length in one write (the whole body is there when the app
    starts: it reads from memory), chunked in 5-byte pieces, or ``"late"``: Content-Length
    with Expect: 100-continue, the body sent in pieces only once the app asked for it (it
    reads while the body is still arriving)."""
    with srv.connect() as sock:
        if chunked == "late":
            sock.sendall(request(f"/input?op={op}{extra}", "POST",
                                 ("Host: t", f"Content-Length: {len(body)}",
                                  "Expect: 100-continue")))
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += sock.recv(1)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            for i in range(0, len(body), 5):
                sock.sendall(body[i:i + 5])
        elif chunked:
            sock.sendall(request(f"/input?op={op}{extra}", "POST",
                                 ("Host: t", "Transfer-Encoding: chunked")))
            for i in range(0, len(body), 5):
                piece = body[i:i + 5]
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(request(f"/input?op={op}{extra}", "POST",
                                 ("Host: t", f"Content-Length: {len(body)}"), body))
        status, _, _, data = read_response(sock)
    assert status == 200, data
    return json.loads(data)


@pytest.mark.parametrize("chunked", [False, True, "late"],
                         ids=["content-length", "chunked", "after-100-continue"])
def test_input_read_in_pieces(server, chunked):
    out = post_input(server, "pieces", BODY, chunked, "&n=7")
    assert out["data"].encode("latin-1") == BODY
    assert out["sizes"] == [7] * (len(BODY) // 7) + [len(BODY) % 7]
    assert out["after"] == ["", "", "", 0]


@pytest.mark.parametrize("chunked", [False, True, "late"],
                         ids=["content-length", "chunked", "after-100-continue"])
def test_input_read_all(server, chunked):
    out = post_input(server, "readall", BODY, chunked)
    assert out["data"].encode("latin-1") == BODY and out["type"] == "bytes"
    assert out["after"] == ["", "", ""]


@pytest.mark.parametrize("chunked", [False, True, "late"],
                         ids=["content-length", "chunked", "after-100-continue"])
def test_input_readline_limit_and_readlines(server, chunked):
    out = post_input(server, "lines", BODY, chunked)
    assert out["lines"] == ["hell", "o\n", "world, this is\n", "line three\n"]
    assert out["rest"] == ["last-no-newline"]
    assert out["after"] == ["", ""]


@pytest.mark.parametrize("op", ["iter", "validator-iter"])
def test_input_iteration(server, op):
    out = post_input(server, op, BODY, chunked=True)
    assert out["lines"] == ["hello\n", "world, this is\n", "line three\n", "last-no-newline"]
    if op == "iter":
        assert out["after"] == [""]


def test_input_mixed_reads(server):
    out = post_input(server, "mixed", b"abcdef\nrest of it")
    assert out == {"first": "abc", "line": "def\n", "rest": "rest of it"}


def test_input_empty_body(server):
    out = post_input(server, "readall", b"")
    assert out["data"] == "" and out["after"] == ["", "", ""]
    data = exchange(server, request("/input?op=pieces&n=3", "POST",
                                    ("Host: t", "Connection: close")))
    assert json.loads(split_head(data)[2])["sizes"] == []


@pytest.mark.parametrize("chunked", [False, True, "late"],
                         ids=["content-length", "chunked", "after-100-continue"])
def test_unread_body_is_skipped_for_the_next_request(server, chunked):
    body = os.urandom(300 * 1024)
    with server.connect() as sock:
        if chunked:
            sock.sendall(request("/fast", "POST", ("Host: t", "Transfer-Encoding: chunked"))
                         + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))
        else:
            sock.sendall(request("/fast", "POST", ("Host: t", f"Content-Length: {len(body)}"),
                                 body))
        status, _, _, data = read_response(sock)
        assert status == 200 and data == b"fast done"
        sock.sendall(request("/input?op=readall", "POST", ("Host: t", "Content-Length: 3"),
                             b"abc"))
        status, _, _, data = read_response(sock)
    assert status == 200 and json.loads(data)["data"] == "abc"


class Accepted:
    """Body bytes the client's kernel took from send(): exact while ``lock`` is held (no
    send() is in progress then)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0


def _send_accounted(sock: socket.socket, data: bytes, accepted: Accepted,
                    timeout: float = 60.0) -> None:
    """Send ``data`` on the non-blocking ``sock``, counting each byte the kernel takes."""
    view = memoryview(data)
    deadline = time.monotonic() + timeout
    while view:
        if time.monotonic() > deadline:
            raise TimeoutError("the server took no body bytes for too long")
        select.select([], [sock], [], 1.0)
        with accepted.lock:
            try:
                n = sock.send(view)
            except BlockingIOError:
                continue
            accepted.count += n
        view = view[n:]
        deadline = time.monotonic() + timeout


def _send_big_body(sock: socket.socket, size_mib: int, chunked: bool,
                   accepted: Accepted | None = None) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    for i in range(size_mib):
        piece = struct.pack(">I", i) + block[4:]
        digest.update(piece)
        data = b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece
        if accepted is None:
            sock.sendall(data)
        else:
            _send_accounted(sock, data, accepted)
    if chunked:
        sock.sendall(b"0\r\n\r\n")
    return digest.hexdigest()


def test_large_body_to_a_slow_reader_arrives_exactly_with_bounded_memory(serve, tmp_path):
    """128 MiB to an app that first reads nothing, then reads in small pieces, slowly: the
    server stops reading the connection and holds no more than its body buffer (the rest
    waits in the kernel's socket buffers or is never accepted from the client), the body
    arrives exactly, and the server's peak RSS stays far below the body's size."""
    srv = serve(APP, "--threads", "4")
    pid = srv.proc.pid
    assert httpx.get(srv.base_url + "/fast", timeout=10).status_code == 200
    peak = PeakRSS(pid)
    rid = new_id()
    flag, qflag = flag_path(tmp_path)
    size_mib = 128  # bigger than the allowance: a server buffering the body would exceed it
    accepted = Accepted()
    result: dict = {}
    with srv.connect(timeout=60) as sock:
        sock.sendall(request(f"/slow-sha?id={rid}&flag={qflag}&piece=65536&pause=0.001",
                             "POST", ("Host: t", f"Content-Length: {size_mib * MIB}")))

        def sender():
            try:
                result["sha"] = _send_big_body(sock, size_mib, chunked=False, accepted=accepted)
            except OSError as exc:
                result["error"] = exc

        sock.setblocking(False)  # each send() takes what the kernel can: counted exactly
        thread = threading.Thread(target=sender)
        thread.start()
        try:
            wait_record(srv, rid, pred=lambda r: r.get("event") == "waiting")
            # The app reads nothing: the server must stop reading the connection (its event
            # loop no longer watches it for input; it resumes only once the app reads).
            fd = server_fd(pid, sock)
            assert fd is not None
            wait_until(lambda: not watched_for_reading(pid, fd) or bool(result), 30)
            stopped = not watched_for_reading(pid, fd)
            # What the server took into its own memory: the bytes the client's kernel
            # accepted, less those still in the two kernels' socket buffers.
            with accepted.lock:
                client_end, server_end = tcp_ends(sock)
                held = accepted.count - client_end.unacked - server_end.unread
        finally:
            open(flag, "w").close()
        thread.join(60)
        assert "error" not in result, result
        status, _, _, body = read_response(sock, timeout=60)
    print(f"held by the server for an app reading nothing: {held / 1024:.0f} KiB; "
          f"peak RSS growth: {peak.growth() / MIB:.1f} MiB")
    assert stopped, f"the server read all {size_mib} MiB for an app that read nothing"
    assert held <= HELD_MAX, (
        f"the server held {held / MIB:.2f} MiB of body for an app that read nothing "
        f"(its body buffer is {BODY_HIGH_WATER // 1024} KiB)")
    assert status == 200, body
    assert json.loads(body) == {"sha256": result["sha"], "size": size_mib * MIB}
    growth = peak.growth()
    assert growth < MAX_RSS_GROWTH, \
        f"server peak RSS grew {growth / MIB:.1f} MiB for a streamed {size_mib} MiB body"
    assert_settled_clean(srv)


def test_chunked_body_streams_exactly(server):
    with server.connect(timeout=30) as sock:
        sock.sendall(request("/slow-sha?piece=4096&pause=0", "POST",
                             ("Host: t", "Transfer-Encoding: chunked")))
        expected = _send_big_body(sock, 8, chunked=True)
        status, _, _, body = read_response(sock, timeout=30)
    assert status == 200, body
    assert json.loads(body) == {"sha256": expected, "size": 8 * MIB}


def test_expect_100_continue_sent_when_the_app_reads(server):
    with server.connect() as sock:
        sock.sendall(request("/expect-read", "POST", ("Host: t", "Content-Length: 5",
                                                      "Expect: 100-continue")))
        head = recv_until(sock, b"\r\n\r\n")
        assert head == b"HTTP/1.1 100 Continue\r\n\r\n", head
        sock.sendall(b"hello")
        status, _, _, body = read_response(sock)
    assert status == 200 and body == b"got:hello"


def test_expect_100_continue_not_sent_when_the_app_does_not_read(server):
    with server.connect() as sock:
        sock.sendall(request("/expect-noread", "POST", ("Host: t", "Content-Length: 5",
                                                        "Expect: 100-continue")))
        data = recv_until(sock, b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 403 "), data[:200]
        assert b"100 Continue" not in data


# -- start_response, write(), exc_info -----------------------------------------------------------
def test_headers_held_until_the_first_non_empty_chunk(server, tmp_path):
    rid = new_id()
    flag, qflag = flag_path(tmp_path)
    with server.connect() as sock:
        sock.sendall(request(f"/hold?id={rid}&flag={qflag}"))
        try:
            # The generator resumed after the server handled its b"": whatever the server
            # made of it was handed to the event loop before; once the loop has run that, it
            # is here.
            wait_record(server, rid, pred=lambda r: r.get("event") == "after-empty")
            loop_turn(server)
            sock.setblocking(False)  # (with a timeout, recv would wait for bytes first)
            try:
                early = sock.recv(65536, socket.MSG_PEEK)
            except BlockingIOError:
                early = None
            sock.settimeout(10)
            assert early is None, f"bytes sent before the first non-empty chunk: {early!r}"
        finally:
            open(flag, "w").close()
        status, headers, _, body = read_response(sock)
    assert status == 200 and headers["x-held"] == "yes"
    assert body == b"data-after-flag"
    assert wait_record(server, rid, pred=lambda r: r.get("event") == "flag")["seen"] is True


def test_exc_info_after_headers_sent_reraises(server):
    rid = new_id()
    data = exchange(server, request(f"/exc-after?id={rid}"))
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200 "), data[:300]
    assert b"first-chunk;" in rest and b"never-sent" not in rest
    if dict(headers).get("transfer-encoding") == "chunked":
        chunked = dechunk(rest)
        assert chunked.body == b"first-chunk;" and not chunked.complete, \
            "a failed response must not end cleanly"
    rec = wait_record(server, rid)
    assert rec == {"raised": "ValueError", "same": True}
    assert_logged_with_traceback(server, f"late failure {rid}")


def test_exc_info_before_headers_replaces_the_status(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/exc-before?id={rid}", timeout=10)
    assert response.status_code == 503
    assert response.text == "app error page"
    assert response.headers.get("x-replaced") == "1" and "x-first" not in response.headers
    assert wait_record(server, rid) == {"write_callable": True}


def test_start_response_twice_without_exc_info_raises_assertion_error(server):
    response = httpx.get(server.base_url + "/twice", timeout=10)
    assert response.status_code == 200
    assert response.text == "raised AssertionError"


def test_write_callable_data_in_order_before_the_iterable(server):
    response = httpx.get(server.base_url + "/write", timeout=10)
    assert response.status_code == 200
    assert response.content == b"one;two;three;four"


def test_write_callable_sends_immediately(server, tmp_path):
    rid = new_id()
    flag, qflag = flag_path(tmp_path)
    with server.connect() as sock:
        sock.sendall(request(f"/write-wait?id={rid}&flag={qflag}",
                             headers=("Host: t", "Connection: close")))
        first = recv_until(sock, b"written-first;")
        assert records(server, rid) == [], "the app went on before the client got write()'s data"
        open(flag, "w").close()
        data = first + recv_until_closed(sock)
    _, headers, rest = split_head(data)
    if dict(headers).get("transfer-encoding") == "chunked":
        chunked = dechunk(rest)
        assert chunked.complete
        rest = chunked.body
    assert rest == b"written-first;returned-after"
    assert wait_record(server, rid) == {"seen": True}


# -- close() -------------------------------------------------------------------------------------
def test_close_called_after_success(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/close?id={rid}&chunks=3", timeout=10)
    assert response.status_code == 200
    assert response.content == b"".join((b"chunk%06d;" % n).ljust(16, b".") for n in (1, 2, 3))
    assert wait_record(server, rid) == {"closed": True, "produced": 3}


def test_close_called_after_exception_mid_body(server):
    rid = new_id()
    data = exchange(server, request(f"/close?id={rid}&chunks=5&fail=1"))
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert b"chunk000001;" in rest and b"chunk000002" not in rest
    if dict(headers).get("transfer-encoding") == "chunked":
        assert not dechunk(rest).complete, "a failed response must not end cleanly"
    assert wait_record(server, rid) == {"closed": True, "produced": 1}
    assert_logged_with_traceback(server, f"iteration failure {rid}")


def test_close_called_after_exception_before_any_body(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/close?id={rid}&chunks=5&fail=0", timeout=10)
    assert response.status_code == 500
    assert wait_record(server, rid) == {"closed": True, "produced": 0}
    assert_logged_with_traceback(server, f"iteration failure {rid}")


def test_close_called_when_the_client_disconnects_mid_stream(server):
    rid = new_id()
    sock = server.connect()
    try:
        sock.sendall(request(f"/close?id={rid}&chunks=100000&pause=0.005&size=1024"))
        recv_until(sock, b"chunk000002;")
    finally:
        sock.close()
    rec = wait_record(server, rid, timeout=10)
    assert rec["closed"] is True and rec["produced"] < 100000


# -- streaming -----------------------------------------------------------------------------------
def test_generator_chunks_reach_the_client_as_yielded_sse(server, tmp_path):
    rid = new_id()
    flag, qflag = flag_path(tmp_path)
    with server.connect() as sock:
        sock.sendall(request(f"/sse?id={rid}&flag={qflag}",
                             headers=("Host: t", "Connection: close")))
        first = recv_until(sock, b"data: event-1\n\n")
        assert b"event-2" not in first
        # The app is still waiting for the flag: it cannot have produced event 2 yet.
        assert not any(r.get("event") == "flag" for r in records(server, rid))
        open(flag, "w").close()
        data = first + recv_until_closed(sock)
    status_line, header_list, rest = split_head(data)
    headers = dict(header_list)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert headers["content-type"] == "text/event-stream"
    assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
    chunked = dechunk(rest)
    assert chunked.complete
    assert chunked.body == b"data: event-1\n\ndata: event-2\n\ndata: event-3\n\n"
    assert wait_record(server, rid, pred=lambda r: r.get("event") == "flag")["seen"] is True


def test_slow_client_gives_backpressure_to_the_generator(server):
    rid = new_id()
    chunks, size = 400, 256 * 1024  # 100 MiB
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # no autotuning
    sock.settimeout(30)
    try:
        sock.connect((server.host, server.port))
        sock.sendall(request(f"/big-stream?id={rid}&chunks={chunks}&size={size}"))
        # Read nothing, until the generator's thread waits for the client: asleep in an
        # untimed wait, and not woken once while the event loop ran everything handed to it
        # before (a thread waiting for the loop would have been woken by then).
        tid = wait_record(server, rid)["tid"]
        pid = server.proc.pid

        def waits_for_the_client() -> bool:
            before = waiting_untimed(pid, tid)
            if before is None:
                return False
            loop_turn(server)  # also: every record it wrote before is in the log now
            return waiting_untimed(pid, tid) == before

        assert wait_until(waits_for_the_client, 20), server.log[-3000:]
        produced = records(server, rid)
        last = max((r.get("produced", 0) for r in produced), default=0)
        assert not any(r.get("finished") for r in produced), \
            f"the generator ran to its end for a client that read nothing: {last} chunks"
        assert 0 < last < chunks, f"generator ran ahead of a client that read nothing: {last}"
        assert last * size <= 32 * MIB, f"{last} chunks ({last * size // MIB} MiB) produced"
        status, headers, _, body = read_response(sock, timeout=30)
    finally:
        sock.close()
    assert status == 200 and len(body) == chunks * size
    assert headers.get("transfer-encoding") == "chunked"
    assert wait_record(server, rid, pred=lambda r: r.get("finished")) == {"finished": True}


def test_http_1_0_streamed_response_is_delimited_by_close(server):
    rid = new_id()
    data = exchange(server, request(f"/close?id={rid}&chunks=3", version="1.0"))
    status_line, headers, rest = split_head(data)
    assert b" 200 " in status_line
    assert "transfer-encoding" not in dict(headers)
    assert rest == b"".join((b"chunk%06d;" % n).ljust(16, b".") for n in (1, 2, 3))
    assert wait_record(server, rid) == {"closed": True, "produced": 3}


# -- wsgi.file_wrapper ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "bytesio"])
def test_file_wrapper(server, big_file, kind):
    path, data = big_file
    with server.connect() as sock:
        sock.sendall(request(f"/file?kind={kind}&path={quote(str(path), safe='')}"))
        status, headers, _, body = read_response(sock, timeout=20)
        assert status == 200
        assert headers["content-length"] == str(len(data))
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
        # the connection is still usable
        sock.sendall(request("/fast"))
        assert read_response(sock)[3] == b"fast done"


@pytest.fixture(scope="module")
def sendfile_server():
    """sendfile_app on a server of its own under strace, its sendfile calls seen. Two
    threads: the tests here need no more."""
    with traced_server(["tests.apps.wsgi_apps:sendfile_app", "--port", "0", "--threads", "2",
                        "--timeout-keep-alive", "1"],
                       lambda path: "/?path=" + quote(path, safe="")) as srv:
        yield srv


@pytest.fixture
def traced(sendfile_server):
    start = len(sendfile_server.lines)
    yield sendfile_server
    assert_settled_clean(sendfile_server, start)


@pytest.fixture(scope="module")
def stall_file(tmp_path_factory):
    """(path, bytes) of a file larger than a connection can hold (syscalls.stall_size)."""
    return write_stall_file(tmp_path_factory.mktemp("stall"))


@pytest.mark.parametrize("query, ranges", [
    ("&length={size}", lambda size: [(0, size)]),
    ("", lambda size: [(0, size)]),
    ("&length=1000", lambda size: [(0, 1000)]),
    pytest.param("&skip=100&length={rest}", lambda size: [(100, size - 100)],
                 id="from-current-position"),
], ids=["content-length", "no-length", "shorter-content-length", None])
def test_file_wrapper_sendfile_path(traced, big_file, query, ranges):
    """The unwrapped file_wrapper goes out through sendfile(2); PEP 3333 says transmission
    begins at the file's current position and stops at Content-Length."""
    path, data = big_file
    target = f"/?path={quote(str(path), safe='')}"
    ranges = ranges(len(data))
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request(target + query.format(size=len(data), rest=len(data) - 100)))
        status, headers, _, body = read_response(sock, timeout=20)
        assert status == 200
        want = b"".join(data[offset:offset + count] for offset, count in ranges)
        assert len(body) == len(want)
        assert body == want
        sock.sendall(request(target + "&length=10"))
        assert read_response(sock)[3] == data[:10]
    assert_sent_by_sendfile(traced.sendfiles_on(port), path, [*ranges, (0, 10)])


def test_file_wrapper_from_memory_is_not_sent_by_sendfile(traced, big_file):
    path, data = big_file
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request(f"/?kind=bytesio&length={len(data)}&path="
                             + quote(str(path), safe="")))
        status, _, _, body = read_response(sock, timeout=20)
    assert status == 200 and body == data
    assert traced.sendfiles_on(port) == []


def _assert_short_file_closes_the_connection(srv: ServerProcess, target: str,
                                             data: bytes, second: str) -> int:
    """The app declares 10 bytes more than the file holds: after the file's bytes the
    server must close the connection (RFC 9112 6.3), not answer a next request on it, which
    the client would read as the missing body bytes. Returns the client's port."""
    with srv.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request(target))
        got = recv_until(sock, b"\r\n\r\n")
        status_line, headers, rest = split_head(got)
        assert status_line.startswith(b"HTTP/1.1 200 ")
        assert dict(headers)["content-length"] == str(len(data) + 10)
        for _ in range(10_000):
            if len(rest) >= len(data):
                break
            chunk = sock.recv(65536)
            assert chunk, "closed before the file's bytes arrived"
            rest += chunk
        assert rest[:len(data)] == data
        try:
            sock.sendall(request(second))
        except OSError:
            pass
        tail = rest[len(data):] + recv_until_closed(sock, timeout=10)
    assert b"HTTP/1.1" not in tail, f"the connection was reused after a short body: {tail[:200]!r}"
    return port


def test_file_wrapper_shorter_than_content_length_closes(server, big_file):
    path, data = big_file
    _assert_short_file_closes_the_connection(
        server, f"/file?kind=file&extra=10&path={quote(str(path), safe='')}", data, "/fast")


def test_file_wrapper_sendfile_shorter_than_content_length_closes(traced, big_file):
    path, data = big_file
    target = f"/?path={quote(str(path), safe='')}"
    port = _assert_short_file_closes_the_connection(
        traced, f"{target}&length={len(data) + 10}", data, f"{target}&length=10")
    assert_sent_by_sendfile(traced.sendfiles_on(port), path, [(0, len(data))])


def test_file_wrapper_sendfile_resumes_after_the_socket_buffer_fills(traced, stall_file):
    """A client that reads nothing until a sendfile call found the socket's buffer full: the
    server waits for it (one chunk through the transport), then goes on with sendfile from
    where it stopped, and the body arrives exactly."""
    path, data = stall_file
    status, headers, body, calls = traced.stalled_download(
        f"/?path={quote(str(path), safe='')}&length={len(data)}")
    assert status == 200
    assert headers["content-length"] == str(len(data))
    assert len(body) == len(data) and body == data
    assert_resumed(calls, path)
    assert_sent_by_sendfile(calls, path, [(0, len(data))])


# -- early hints ---------------------------------------------------------------------------------
def test_early_hints_sends_103_before_the_response(server):
    data = exchange(server, request("/hints", headers=("Host: t", "Connection: close")))
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n"), data[:300]
    hint_head, _, rest = data.partition(b"\r\n\r\n")
    assert b"link: </a.css>; rel=preload" in hint_head.lower()
    status_line, headers, body = split_head(rest)
    assert status_line.startswith(b"HTTP/1.1 200 ")
    assert body == b"final body"


def test_early_hints_not_sent_to_http_1_0(server):
    data = exchange(server, request("/hints", version="1.0"))
    assert data.startswith(b"HTTP/1.1 200 "), data[:300]
    assert b" 103 " not in data


# -- errors --------------------------------------------------------------------------------------
def test_exception_before_start_response_gives_500_and_traceback(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/raise?id={rid}", timeout=10)
    assert response.status_code == 500
    assert f"{rid}" not in response.text  # no traceback to the client
    assert_logged_with_traceback(server, f"failure before start_response {rid}")


def test_app_returning_without_start_response_gives_500(server):
    response = httpx.get(server.base_url + "/no-start", timeout=10)
    assert response.status_code == 500
    # and the server goes on serving
    assert httpx.get(server.base_url + "/fast", timeout=10).text == "fast done"


# -- execution, no-body responses ----------------------------------------------------------------
def test_slow_request_does_not_block_a_fast_one(server, tmp_path):
    rid = new_id()
    flag, qflag = flag_path(tmp_path)
    result: dict = {}

    def slow_client():
        result["slow"] = httpx.get(server.base_url + f"/slow?id={rid}&flag={qflag}", timeout=20)

    thread = threading.Thread(target=slow_client)
    thread.start()
    try:
        wait_record(server, rid, pred=lambda r: r.get("event") == "slow-started")
        fast = httpx.get(server.base_url + "/fast", timeout=10)
        assert fast.status_code == 200 and fast.text == "fast done"
        # the slow app is still running: it has not seen the flag yet
        assert not any(r.get("event") == "slow-done" for r in records(server, rid))
    finally:
        open(flag, "w").close()
        thread.join(20)
    assert result["slow"].status_code == 200 and result["slow"].text == "slow done"
    assert wait_record(server, rid, pred=lambda r: r.get("event") == "slow-done")["seen"] is True


@pytest.mark.parametrize("target", ["/env", "/write", "/close?id=head&chunks=3"])
def test_head_gets_no_body(server, target):
    data = exchange(server, request(target, "HEAD", ("Host: t", "Connection: close")))
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200 "), data[:300]
    assert rest == b"", f"HEAD response carried a body: {rest[:200]!r}"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_for_204_and_304(server, code):
    with server.connect() as sock:
        sock.sendall(request(f"/status?code={code}"))
        head = recv_until(sock, b"\r\n\r\n")
        status_line, header_list, rest = split_head(head)
        headers = dict(header_list)
        assert status_line.startswith(b"HTTP/1.1 %d " % code)
        assert headers.get("x-code") == str(code)
        assert "transfer-encoding" not in headers
        # the next response on the connection follows the head directly
        sock.sendall(request("/fast", headers=("Host: t", "Connection: close")))
        data = rest + recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 "), f"bytes after a {code} head: {data[:200]!r}"
    assert data.endswith(b"fast done")


def test_iterated_body_whole_in_its_first_block(serve):
    """An iterator whose first block is the whole body its Content-Length declares (what
    Flask and Django return) is answered as a whole response. Data after that block is the
    app's error, logged and never sent: the client already has the response it was
    promised, so the connection goes on to the next request."""
    srv = serve("tests.apps.wsgi_length_apps:iterated", "--interface", "wsgi")
    with srv.connect() as sock:
        sock.sendall(b"GET /5/hello/ HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /5/hello/extra HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /tail-write HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /3/abc/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(sock)
    assert b"EVIL" not in data and b"extra" not in data
    responses = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == 4, data
    assert [r.partition(b"\r\n\r\n")[2] for r in responses] == \
        [b"hello", b"hello", b"hello", b"abc"]
    assert all(b"content-length: " in r.lower() for r in responses)
    assert srv.wait_for_log("longer than its Content-Length", 5)
    # the app thread refused the write(): no chunk reached the loop for a finished response
    assert_clean(srv, violations=("Exception in callback", "AttributeError"))


def test_whole_first_block_is_sent_before_the_iterator_ends(serve):
    """PEP 3333: no block is delayed. The first block completes the body, and the iterator
    then waits until /release comes from another connection: the client has the
    response before that, and the connection goes on to its next request."""
    srv = serve("tests.apps.wsgi_length_apps:iterated", "--interface", "wsgi")
    with srv.connect() as sock, srv.connect() as other:
        sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        head = recv_until(sock, b"\r\n\r\n")
        body = head.partition(b"\r\n\r\n")[2]
        while len(body) < 4:
            body += sock.recv(100)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"held"
        other.sendall(b"GET /release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_until_closed(other).endswith(b"released")
        sock.sendall(b"GET /2/ok/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_until_closed(sock).endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("declared,body,sent", [("3", "abcdef", b"abc"), ("10", "abc", b"abc")])
def test_list_body_disagreeing_with_content_length_closes(serve, declared, body, sent):
    """A list body longer or shorter than the app's Content-Length: at most the declared bytes
    go out and the connection closes, so the client never misreads the next response."""
    srv = serve("tests.apps.wsgi_length_apps:app")
    with srv.connect() as sock:
        sock.sendall(f"GET /{declared}/{body} HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET /1/z HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = recv_until_closed(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in head.lower()
    assert rest == sent  # nothing more: the pipelined request behind it is not answered
    assert srv.wait_for_log("does not match its Content-Length", 5)
