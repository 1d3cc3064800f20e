"""ASGI 3.0 / spec version 2.4 ``http`` interface, checked against the spec text.

https://asgi.readthedocs.io/en/latest/specs/www.html and .../extensions.html. The app is
tests/apps/asgi_apps.py; it reports its scope as JSON, and prints ``RECORD <id> <json>``
lines for what only the app can see (exceptions raised by send(), the disconnect event).
"""

from __future__ import annotations

import json
import signal
import socket
import struct
from urllib.parse import quote

import httpx
import pytest

from tests.support.client import get_json
from tests.support.logs import assert_logged_with_traceback, new_id, wait_record
from tests.support.server import ServerProcess
from tests.support.syscalls import (
    assert_resumed,
    assert_sent_by_sendfile,
    traced_server,
    write_stall_file,
)
from tests.support.wire import (
    dechunk,
    exchange,
    read_head,
    read_response,
    recv_until,
    recv_until_closed,
    request,
    split_head,
)

APP = "tests.apps.asgi_apps:app"
SERVER_ARGS = ["--port", "0", "--timeout-keep-alive", "2", "--timeout-graceful-shutdown", "2"]


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """One server for the module: each test uses its own ids, so the log lines never mix."""
    srv = ServerProcess([APP, *SERVER_ARGS]).start()
    yield srv
    srv.stop()


def raw_json(srv: ServerProcess, data: bytes) -> tuple[dict, dict]:
    with srv.connect() as sock:
        sock.sendall(data)
        status, headers, _, body = read_response(sock)
    assert status == 200, body
    return json.loads(body), headers


# -- the http scope ------------------------------------------------------------------------------
def test_scope_is_complete_and_typed(server):
    with server.connect() as sock:
        client = sock.getsockname()
        sock.sendall(b"GET /scope/caf%C3%A9%20x?a=1&b=%20%2F HTTP/1.1\r\nHost: example.test\r\n"
                     b"X-Dup: first\r\nX-Mixed-CASE: Value Kept\r\nX-Dup: second\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert status == 200
    scope = json.loads(body)
    types = scope["types"]
    assert scope["type"] == "http" and types["type"] == "str"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert types["asgi.version"] == types["asgi.spec_version"] == "str"
    assert scope["http_version"] == "1.1" and types["http_version"] == "str"
    assert scope["method"] == "GET" and types["method"] == "str"
    assert scope["scheme"] == "http" and types["scheme"] == "str"
    # path: percent-decoded (UTF-8) str; raw_path: the bytes as sent, without the query.
    assert scope["path"] == "/scope/café x" and types["path"] == "str"
    assert scope["raw_path"].encode("latin-1") == b"/scope/caf%C3%A9%20x"
    assert types["raw_path"] == "bytes"
    assert scope["query_string"].encode("latin-1") == b"a=1&b=%20%2F"
    assert types["query_string"] == "bytes"
    assert scope["root_path"] == "" and types["root_path"] == "str"
    # headers: an iterable of [name, value] byte pairs, names lower-cased, in arrival order,
    # repeated names kept as separate pairs, values untouched.
    assert scope["headers"] == [["host", "example.test"], ["x-dup", "first"],
                                ["x-mixed-case", "Value Kept"], ["x-dup", "second"]]
    assert types["header_item"] == ["bytes"]
    assert types["header_pair_len"] == [2]
    assert set(types["header_pair"]) <= {"list", "tuple"}
    # client / server: (host, port) with the real addresses of this connection.
    assert scope["client"] == [client[0], client[1]]
    assert types["client"] in ("tuple", "list")
    assert (types["client_host"], types["client_port"]) == ("str", "int")
    assert scope["server"] == [server.host, server.port]
    assert types["server"] in ("tuple", "list")
    assert (types["server_host"], types["server_port"]) == ("str", "int")
    # state and extensions
    assert types["state"] == "dict"
    assert types["extensions"] == "dict"
    for name in ("http.response.early_hint", "http.response.pathsend",
                 "http.response.zerocopysend", "http.response.trailers"):
        assert scope["extensions"].get(name) == "dict", (name, scope["extensions"])
    for key in ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
                "query_string", "root_path", "headers", "client", "server", "state",
                "extensions"):
        assert key in scope["keys"], key


def test_scope_method_and_percent_decoding_with_httpx(server):
    response = httpx.request("PATCH", server.base_url + "/scope/a%2Fb/%E2%82%AC?x=%E2%82%AC",
                             content=b"ignored", timeout=10)
    assert response.status_code == 200
    scope = response.json()
    assert scope["method"] == "PATCH"
    assert scope["path"] == "/scope/a/b/€"
    assert scope["raw_path"].encode("latin-1") == b"/scope/a%2Fb/%E2%82%AC"
    assert scope["query_string"].encode("latin-1") == b"x=%E2%82%AC"


def test_scope_empty_query_string_is_empty_bytes(server):
    scope, _ = raw_json(server, b"GET /scope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert scope["query_string"] == "" and scope["types"]["query_string"] == "bytes"
    assert scope["raw_path"] == "/scope" and scope["types"]["raw_path"] == "bytes"


def test_scope_http_1_0(server):
    data = exchange(server, b"GET /scope HTTP/1.0\r\n\r\n")
    status_line, _, body = split_head(data)
    assert status_line.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    scope = json.loads(body)
    assert scope["http_version"] == "1.0"
    assert scope["headers"] == []


def test_scope_root_path(serve):
    srv = serve(APP, "--root-path", "/api")
    scope = get_json(srv, "/scope/x%20y?q=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope/x y"
    assert scope["raw_path"].encode("latin-1") == b"/api/scope/x%20y"
    assert scope["query_string"] == "q=1"


def test_scope_state_is_a_shallow_copy_per_request(server):
    rid = new_id()
    first = get_json(server, f"/state-mutate?id={rid}")
    assert "started_at_startup" in first["before"]
    scope = get_json(server, "/scope")
    # values set at lifespan startup are visible ...
    assert scope["state"]["started_at_startup"] == "yes"
    assert scope["state"]["answer"] == 42
    # ... but what one request did to its copy is not.
    assert "leaked_from_request" not in scope["state"]


# -- receive() -----------------------------------------------------------------------------------
def _app_has(srv: ServerProcess, rid: str, sent: int) -> None:
    """The app has received all ``sent`` bytes of the body so far (its record says so)."""
    wait_record(srv, rid, pred=lambda rec: rec["total"] >= sent)


def test_receive_streams_a_large_body_sent_slowly(server):
    piece = b"x" * 65536
    pieces = 6
    total = len(piece) * pieces
    rid = new_id()
    with server.connect() as sock:
        sock.sendall(request(f"/body?id={rid}", "POST", ("Host: x", f"Content-Length: {total}")))
        for n in range(1, pieces + 1):
            sock.sendall(piece)
            # Streamed, not buffered whole: the app has each piece before the next is sent.
            _app_has(server, rid, n * len(piece))
        status, _, _, body = read_response(sock)
    assert status == 200
    result = json.loads(body)
    messages = result["messages"]
    assert sum(size for size, _ in messages) == total == result["total"]
    assert len(messages) >= pieces, messages
    assert messages[-1][1] is False
    assert all(more is True for _, more in messages[:-1]), messages


def test_receive_streams_a_chunked_body(server):
    pieces = [b"a" * 1000, b"b" * 20000, b"c" * 7]
    rid = new_id()
    sent = 0
    with server.connect() as sock:
        sock.sendall(request(f"/body?id={rid}", "POST", ("Host: x", "Transfer-Encoding: chunked")))
        for part in pieces:
            sock.sendall(b"%x\r\n%b\r\n" % (len(part), part))
            sent += len(part)
            _app_has(server, rid, sent)  # each chunk reaches the app before the next is sent
        sock.sendall(b"0\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert status == 200
    messages = json.loads(body)["messages"]
    assert sum(size for size, _ in messages) == sum(map(len, pieces))
    assert len(messages) >= len(pieces) + 1, messages  # the last one: the end, no bytes
    assert messages[-1][1] is False
    assert all(more is True for _, more in messages[:-1]), messages


def test_receive_never_buffers_a_big_body_whole(server):
    total = 8 * 1024 * 1024
    response = httpx.post(server.base_url + "/body?delay=0.005", content=b"z" * total,
                          timeout=30)
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert sum(size for size, _ in messages) == total
    assert max(size for size, _ in messages) < total // 2, messages


@pytest.mark.parametrize("request_bytes", [
    b"GET /body HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
], ids=["no-body", "content-length-0"])
def test_receive_empty_body_is_one_final_message(server, request_bytes):
    result, _ = raw_json(server, request_bytes)
    assert result["messages"] == [[0, False]]


def _close(sock: socket.socket, how: str) -> None:
    if how == "reset":  # abortive close: the server gets an RST
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # "fin": an ordinary close, what browsers and httpx do


@pytest.mark.parametrize("how", [
    "fin",
    "reset",
])
def test_receive_waits_after_the_body_then_gets_disconnect(server, how):
    rid = new_id()
    sock = server.connect()
    try:
        sock.sendall(b"POST /wait-disconnect?id=%b HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 5\r\n\r\nhello" % rid.encode())
        got = wait_record(server, rid + "-body")
        assert got["body"] == "hello" and got["messages"][-1] == [5, False]
        # The client is still there: receive() must block, not return anything yet. A whole
        # other request is served meanwhile; the app's record says whether receive() had
        # returned before it.
        assert get_json(server, f"/mark?id={rid}") == {"marked": rid}
    finally:
        _close(sock, how)
    after = wait_record(server, rid + "-after", timeout=3)
    assert after == {"type": "http.disconnect", "marked": True}, after
    # send() once the client has left raises an OSError subclass (spec 2.4).
    sent = wait_record(server, rid + "-send", timeout=3)
    assert sent["oserror"] is True, sent


def test_shutdown_tells_an_app_waiting_in_receive_and_closes(serve):
    srv = serve(APP, "--timeout-graceful-shutdown", "5")
    rid = new_id()
    with srv.connect() as sock:
        sock.sendall(b"POST /wait-disconnect?id=%b HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 2\r\n\r\nhi" % rid.encode())
        wait_record(srv, rid + "-body")
        srv.send_signal(signal.SIGINT)
        after = wait_record(srv, rid + "-after", timeout=5)
        assert after["type"] == "http.disconnect"
        recv_until_closed(sock, timeout=10)  # the server ends the connection
        code = srv.wait_exit(15)
    assert code == 0
    assert "graceful shutdown timed out" not in srv.log, srv.log


def test_receive_after_the_response_returns_disconnect(server):
    rid = new_id()
    with server.connect() as sock:  # the client stays connected (keep-alive)
        sock.sendall(b"POST /receive-after-response?id=%b HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 3\r\n\r\nabc" % rid.encode())
        status, _, _, body = read_response(sock)
        assert status == 200 and body == b"done"
        got = wait_record(server, rid, timeout=8)
    assert got["type"] == "http.disconnect"


def test_disconnect_reaches_a_streaming_app(server):
    rid = new_id()
    sock = server.connect()
    try:
        sock.sendall(b"GET /sse?id=%b HTTP/1.1\r\nHost: x\r\n\r\n" % rid.encode())
        seen = recv_until(sock, b"data: 2\n\n")
        assert b"text/event-stream" in seen
    finally:
        sock.close()
    got = wait_record(server, rid, timeout=5)
    assert got["disconnect"] is True, got
    assert got["events"] < 400, got  # it stopped because of the disconnect, not the bound


def test_send_after_client_left_raises_oserror(server):
    rid = new_id()
    sock = server.connect()
    try:
        sock.sendall(b"GET /stream-until-error?id=%b HTTP/1.1\r\nHost: x\r\n\r\n"
                     % rid.encode())
        recv_until(sock, b"line 1\n")
    finally:
        sock.close()
    got = wait_record(server, rid, timeout=10)
    assert got["error"] is not None, got
    assert got["oserror"] is True, got


# -- send(): message order -----------------------------------------------------------------------
def test_body_before_start_raises_runtime_error(server):
    result = get_json(server, "/misuse?kind=body-before-start")
    assert result["error"] == "RuntimeError"


def test_start_twice_raises_runtime_error(server):
    response = httpx.get(server.base_url + "/misuse?kind=start-twice", timeout=10)
    assert response.status_code == 200  # the first start is the one that counts
    assert response.json()["error"] == "RuntimeError"


def test_anything_after_the_final_body_raises_runtime_error(server):
    rid = new_id()
    response = httpx.get(server.base_url + f"/misuse?kind=after-final&id={rid}", timeout=10)
    assert response.status_code == 200 and response.json() == {"done": True}
    got = wait_record(server, rid)
    assert got == {"body": "RuntimeError", "empty-body": "RuntimeError", "start": "RuntimeError"}


def test_exception_before_start_gives_500_and_logs_traceback(server):
    marker = new_id()
    response = httpx.get(server.base_url + f"/error?kind=before-start&marker={marker}",
                         timeout=10)
    assert response.status_code == 500
    assert marker not in response.text  # no traceback or message leaked to the client
    assert_logged_with_traceback(server, f"ValueError: exploded before start {marker}")


@pytest.mark.parametrize("kind", ["after-start-chunked", "after-start-length"])
def test_exception_after_start_closes_the_connection(server, kind):
    marker = new_id()
    data = exchange(server, f"GET /error?kind={kind}&marker={marker} HTTP/1.1\r\n"
                            f"Host: x\r\n\r\n".encode())
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200")
    names = dict(headers)
    if kind == "after-start-length":
        assert names["content-length"] == "100"
        assert rest == b"0123456789"  # truncated: 10 of 100 bytes, then the close
    else:
        assert names.get("transfer-encoding") == "chunked"
        assert b"partial-" in rest
        assert not rest.endswith(b"0\r\n\r\n")  # no last-chunk: the client sees it incomplete
    assert_logged_with_traceback(server, f"ValueError: exploded after start {marker}")


def test_app_returning_without_response_gives_500(server):
    response = httpx.get(server.base_url + "/error?kind=no-response", timeout=10)
    assert response.status_code == 500


# -- extensions on the wire ----------------------------------------------------------------------
def test_early_hint_extension_sends_103_before_the_response(server):
    data = exchange(server, b"GET /early-hint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status_line, headers, rest = split_head(data)
    assert status_line == b"HTTP/1.1 103 Early Hints"
    links = [value for name, value in headers if name == "link"]
    assert links == ["</style.css>; rel=preload; as=style",
                     "</script.js>; rel=preload; as=script"]
    status_line, headers, body = split_head(rest)
    assert status_line.startswith(b"HTTP/1.1 200")
    assert dict(headers)["content-length"] == str(len(body))
    assert body == b"<html>final</html>"


def test_early_hint_link_with_a_line_break_is_refused(server):
    # Links are header values like any other: a CR/LF in one is the app's error (a 500),
    # never a header field of its own on the wire.
    data = exchange(server, b"GET /early-hint-split HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 "), data[:300]
    assert b"x-injected" not in data.lower() and b" 103 " not in data
    assert_logged_with_traceback(server, "invalid response header value")


def test_informational_start_then_final_start(server):
    data = exchange(server, b"GET /informational HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 103")
    assert [v for n, v in headers if n == "link"] == [
        "</style.css>; rel=preload; as=style", "</font.woff2>; rel=preload; as=font"]
    # an interim response has no framing headers
    assert not {"content-length", "transfer-encoding"} & {n for n, _ in headers}
    status_line, headers, rest = split_head(rest)
    assert status_line.startswith(b"HTTP/1.1 200")
    names = dict(headers)
    assert names["content-type"] == "text/html"
    if "content-length" in names:
        assert rest == b"<html>...</html>"
    else:
        assert dechunk(rest).body == b"<html>...</html>"


@pytest.mark.parametrize("target", [b"/early-hint", b"/informational"])
def test_no_1xx_to_an_http_1_0_client(server, target):
    # RFC 9110 section 15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
    data = exchange(server, b"GET %b HTTP/1.0\r\n\r\n" % target)
    status_line, _, body = split_head(data)
    assert status_line.split(b" ")[1] == b"200", data[:300]
    assert b" 103 " not in data
    assert body.startswith(b"<html>")


def test_early_hint_and_response_keep_the_connection_usable(server):
    with server.connect() as sock:
        for _ in range(2):
            sock.sendall(b"GET /early-hint HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _, body = read_response(sock)  # skips the 103
            assert status == 200 and body == b"<html>final</html>"


# -- pathsend / zerocopysend: the file goes out through sendfile(2) ------------------------------
@pytest.fixture(scope="module")
def traced():
    """A server of its own under strace, its sendfile calls seen."""
    with traced_server([APP, *SERVER_ARGS], lambda path: "/pathsend?path=" + quote(path)) as srv:
        yield srv


@pytest.fixture(scope="module")
def stall_file(tmp_path_factory):
    """(path, bytes) of a file larger than a connection can hold (syscalls.stall_size)."""
    return write_stall_file(tmp_path_factory.mktemp("stall"))


def test_pathsend_serves_the_file_through_sendfile(traced, big_file):
    path, data = big_file
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request("/pathsend?path=" + quote(str(path))))
        status, headers, _, body = read_response(sock, timeout=30)
    assert status == 200
    assert headers["content-length"] == str(len(data))
    assert body == data
    assert_sent_by_sendfile(traced.sendfiles_on(port), path, [(0, len(data))])


def test_a_held_response_goes_before_a_pipelined_file(traced, big_file):
    """An ASGI response's end is held for the end of the loop turn; a pipelined pathsend
    after it goes through sendfile(2), beside the transport: the held bytes still go first
    (the file's head is written through the transport, behind them), and the response
    after the file follows it."""
    path, data = big_file
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request("/scope?first=1") + request("/pathsend?path=" + quote(str(path)))
                     + request("/scope?third=3"))
        first = read_response(sock, timeout=30)
        second = read_response(sock, timeout=30)
        third = read_response(sock, timeout=30)
    assert first[0] == 200 and json.loads(first[3])["query_string"] == "first=1"
    assert second[0] == 200 and second[3] == data
    assert third[0] == 200 and json.loads(third[3])["query_string"] == "third=3"
    assert_sent_by_sendfile(traced.sendfiles_on(port), path, [(0, len(data))])


def test_pathsend_head_sends_headers_only(traced, big_file):
    path, data = big_file
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request("/pathsend?path=" + quote(str(path)), "HEAD"))
        status, headers, rest = read_head(sock)
        assert status == 200
        assert dict(headers).get("content-length") == str(len(data))
        # no body bytes: the next response on this connection starts right away
        sock.sendall(request("/scope", headers=("Host: x", "Connection: close")))
        rest += recv_until_closed(sock)
    assert rest.startswith(b"HTTP/1.1 200"), rest[:200]
    assert traced.sendfiles_on(port) == []


@pytest.mark.parametrize("query,ranges", [
    ("mode=whole", lambda size: [(0, size)]),
    ("mode=range&offset=1000&count=5000", lambda size: [(1000, 5000)]),
    ("mode=position&offset=777&count=100", lambda size: [(777, 100)]),
    ("mode=two", lambda size: [(0, size // 2), (size // 2, size - size // 2)]),
], ids=["whole", "offset-count", "current-position", "more-body"])
def test_zerocopysend(traced, big_file, query, ranges):
    path, data = big_file
    ranges = ranges(len(data))
    want = b"".join(data[offset:offset + count] for offset, count in ranges)
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        for _ in range(2):  # twice on one connection: the framing must be exact
            sock.sendall(request(f"/zerocopy?{query}&path=" + quote(str(path))))
            status, headers, _, body = read_response(sock, timeout=30)
            assert status == 200
            assert len(body) == len(want) and body == want
            if "content-length" in headers:
                assert headers["content-length"] == str(len(want))
    assert_sent_by_sendfile(traced.sendfiles_on(port), path, ranges * 2)


def test_no_sendfile_for_a_body_from_memory(traced):
    with traced.connect() as sock:
        port = sock.getsockname()[1]
        sock.sendall(request("/scope"))
        assert read_response(sock)[0] == 200
    assert traced.sendfiles_on(port) == []


@pytest.mark.parametrize("target", ["/pathsend?path=", "/zerocopy?mode=whole&path="],
                         ids=["pathsend", "zerocopysend"])
def test_sendfile_resumes_after_the_socket_buffer_fills(traced, stall_file, target):
    """A client that reads nothing until a sendfile call found the socket's buffer full: the
    server waits for it (one chunk through the transport), then goes on with sendfile from
    where it stopped, and the body arrives exactly."""
    path, data = stall_file
    status, headers, body, calls = traced.stalled_download(target + quote(str(path)))
    assert status == 200
    assert len(body) == len(data) and body == data
    if "content-length" in headers:
        assert headers["content-length"] == str(len(data))
    assert_resumed(calls, path)
    assert_sent_by_sendfile(calls, path, [(0, len(data))])


# -- trailers ------------------------------------------------------------------------------------
def _trailers_then_next(srv: ServerProcess, te_trailers: bool) -> bytes:
    """GET /trailers, then, once its last data chunk came, GET /scope on the same connection
    (Connection: close): every byte the server sent, in order."""
    headers = ("Host: x", "TE: trailers") if te_trailers else ("Host: x",)
    with srv.connect() as sock:
        sock.sendall(request("/trailers", headers=headers))
        data = recv_until(sock, b"trailers\r\n")
        sock.sendall(request("/scope", headers=("Host: x", "Connection: close")))
        return data + recv_until_closed(sock)


def _first_response_then_next(data: bytes) -> tuple[dict[str, str], bytes, bytes]:
    """The chunked /trailers response: (its headers, its trailer section, its body as on the
    wire); the next response must start right after it."""
    status_line, headers, rest = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200")
    names = dict(headers)
    assert names.get("transfer-encoding") == "chunked" and "content-length" not in names
    chunked = dechunk(rest)
    assert chunked.complete and chunked.body == b"hello trailers"
    status_line, _, body = split_head(chunked.rest)
    assert status_line.startswith(b"HTTP/1.1 200"), chunked.rest[:200]
    assert json.loads(body)["path"] == "/scope"
    return names, chunked.trailers, rest[:len(rest) - len(chunked.rest)]


def test_trailers_sent_when_client_accepts_them(server):
    names, trailers, body = _first_response_then_next(_trailers_then_next(server, True))
    assert names.get("trailer", "").lower() == "x-checksum"  # announced in the head
    assert trailers.lower() == b"x-checksum: sha256=abc123"
    assert body.lower().endswith(b"trailers\r\n0\r\nx-checksum: sha256=abc123\r\n\r\n"), \
        body[-80:]
    with server.connect() as sock:  # and a client reading it as one response gets the field
        sock.sendall(request("/trailers", headers=("Host: x", "TE: trailers")))
        fields: list[tuple[str, str]] = []
        status, _, _, content = read_response(sock, trailers=fields)
    assert (status, content) == (200, b"hello trailers")
    assert fields == [("x-checksum", "sha256=abc123")]


def test_trailers_dropped_without_te_trailers(server):
    # RFC 9110 6.5: without "TE: trailers" the fields are dropped, and the body still ends
    # well-formed: the last chunk, then an empty trailer section.
    names, trailers, body = _first_response_then_next(_trailers_then_next(server, False))
    assert trailers == b"", trailers
    assert body.endswith(b"trailers\r\n0\r\n\r\n"), body[-80:]
    assert "x-checksum" not in names


def test_repeated_set_cookie_kept_and_values_as_given(server):
    data = exchange(server, b"GET /cookies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status_line, headers, body = split_head(data)
    assert status_line.startswith(b"HTTP/1.1 200")
    assert [v for n, v in headers if n == "set-cookie"] == [
        "a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Max-Age=60; SameSite=Lax"]
    raw_head = data.split(b"\r\n\r\n", 1)[0]
    assert b"x-custom: MiXeD Case,  two  spaces;\tand a tab\r\n" in raw_head
    assert body == b"cookies"
