"""ASGI ``websocket`` interface (spec 2.4) over HTTP/1.1 upgrade, black box.

https://asgi.readthedocs.io/en/latest/specs/www.html#websocket and RFC 6455 §4 (the opening
handshake). The real CLI serves tests/apps/ws_apps.py; clients are the ``websockets``
library (``websockets.sync.client``) for ordinary use and raw sockets where the bytes on the
wire matter (``RawWS``, tests/support/wsclient.py). What only the app can see (the
disconnect event, exceptions raised by ``send()``) it prints as ``WSREC <id> <json>``; the
server's log carries stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
from pathlib import Path

import pytest
import trustme
from websockets.exceptions import InvalidStatus

from tests.support.logs import assert_logged_with_traceback, new_id, wait_record
from tests.support.server import ServerProcess
from tests.support.wire import RawReader, read_head, read_response, read_until_closed
from tests.support.ws import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame
from tests.support.wsclient import (
    RawWS,
    accept_for,
    closed_by_server,
    handshake,
    new_key,
    ws_connect,
)

APP = "tests.apps.ws_apps:app"
WSGI_APP = "tests.apps.ws_apps:wsgi_app"
MARKER = "WSREC"  # the app's records: ``WSREC <id> <json>``


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """One server for the module: each test uses its own ids, so the log lines never mix."""
    srv = ServerProcess([APP, "--port", "0", "--timeout-graceful-shutdown", "2"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mounted():
    """``/ws`` is the ASGI app, ``/`` the WSGI app."""
    srv = ServerProcess(["--mount", f"/ws={APP}", "--mount", f"/={WSGI_APP}", "--port", "0",
                         "--timeout-graceful-shutdown", "2"]).start()
    yield srv
    srv.stop()


def refused(srv: ServerProcess, target: str, **kwargs):
    """Connect expecting an HTTP answer instead of 101: the client's view of it."""
    with pytest.raises(InvalidStatus) as info:
        with ws_connect(srv, target, **kwargs):
            pass
    return info.value.response


def next_head(reader: RawReader) -> tuple[int, list[tuple[str, str]]]:
    """The next response head on ``reader``'s socket, a 101 too (``RawReader.head`` skips
    1xx heads): status and [(lower name, value)] in order; the reader keeps what follows."""
    status, headers, reader.buf = read_head(reader.sock, reader.buf)
    return status, headers


def http_exchange(srv: ServerProcess, request: bytes) -> tuple[int, dict[str, str],
                                                               list[tuple[str, str]], bytes]:
    """Send one request; read its response, then see the server close the connection."""
    with srv.connect() as sock:
        sock.sendall(request)
        status, headers, headers_list, body = read_response(sock)
        rest, closed = read_until_closed(sock, 10)
        assert closed, "the connection stayed open"
        assert rest == b"", f"bytes after the response: {rest[:100]!r}"
    return status, headers, headers_list, body


# -- the opening handshake -------------------------------------------------------------------------
def test_handshake_is_101_with_accept_date_and_server(server):
    with RawWS.connect(server, "/echo") as conn:
        headers, key = conn.header_list, conn.key
        names = [name for name, _ in headers]
        values = dict(headers)
        assert values["upgrade"].lower() == "websocket"
        assert "upgrade" in values["connection"].lower()
        assert values["sec-websocket-accept"] == accept_for(key)
        assert values["server"] == "betula"
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", values["date"])
        for name in ("date", "server", "upgrade", "connection", "sec-websocket-accept"):
            assert names.count(name) == 1, headers
        assert "content-length" not in values and "transfer-encoding" not in values
        assert "sec-websocket-protocol" not in values  # none offered, none chosen
        conn.send(TEXT, b"ping?")
        assert conn.recv_message() == (TEXT, b"ping?")
        assert conn.close_handshake() == (1000, b"")


def test_websockets_client_completes_the_handshake(server):
    with ws_connect(server, "/echo") as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["Server"] == "betula"
        assert "Date" in ws.response.headers
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"


def test_connection_header_with_several_tokens(server):
    """Firefox sends ``Connection: keep-alive, Upgrade``."""
    key = new_key()
    request = handshake("/echo", key, host=f"127.0.0.1:{server.port}").replace(
        b"Connection: Upgrade", b"Connection: keep-alive, Upgrade")
    with server.connect() as sock:
        sock.sendall(request)
        status, headers, rest = read_head(sock)
        assert status == 101, headers
        assert dict(headers)["sec-websocket-accept"] == accept_for(key)
        conn = RawWS(sock, rest, headers)
        conn.send(TEXT, b"firefox")
        assert conn.recv_message() == (TEXT, b"firefox")
        conn.close_handshake()


def test_ws_websockets_setting_upgrades_like_auto(serve):
    srv = serve(APP, "--ws", "websockets")
    with ws_connect(srv, "/echo") as ws:
        ws.send("same as auto")
        assert ws.recv(timeout=10) == "same as auto"


REFUSAL_HEADER_CASES = [
    ("/echo", "13", 101),
    ("/close-before-accept", "13", 403),
    ("/deny", "13", 418),
    ("/echo", None, 400),
    ("/echo", "8", 426),
]


@pytest.mark.parametrize(("target", "version", "status"), REFUSAL_HEADER_CASES)
def test_every_handshake_answer_has_date_and_server(server, target, version, status):
    key = new_key() if version else ""
    with server.connect() as sock:
        sock.sendall(handshake(target, key, version=version or "13",
                               host=f"127.0.0.1:{server.port}"))
        got, headers, _ = read_head(sock)
    assert got == status, headers
    names = [name for name, _ in headers]
    assert names.count("server") == 1 and dict(headers)["server"] == "betula", headers
    assert names.count("date") == 1, headers


@pytest.fixture(scope="module")
def bare():
    """--no-date-header --no-server-header."""
    srv = ServerProcess([APP, "--port", "0", "--no-date-header", "--no-server-header",
                         "--timeout-graceful-shutdown", "2"]).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(("target", "version", "status"), REFUSAL_HEADER_CASES)
def test_header_settings_apply_to_every_handshake_answer(bare, target, version, status):
    key = new_key() if version else ""
    with bare.connect() as sock:
        sock.sendall(handshake(target, key, version=version or "13",
                               host=f"127.0.0.1:{bare.port}"))
        got, headers, _ = read_head(sock)
    assert got == status, headers
    names = [name for name, _ in headers]
    assert "date" not in names and "server" not in names, headers


def test_ws_none_answers_an_upgrade_request_as_plain_http(serve):
    srv = serve(APP, "--ws", "none")
    status, headers, _, body = http_exchange(
        srv, handshake("/echo", new_key(), host=f"127.0.0.1:{srv.port}"))
    assert status == 200, body
    seen = json.loads(body)
    assert seen == {"type": "http", "method": "GET", "path": "/echo", "root_path": "",
                    "upgrade": "websocket"}
    assert "sec-websocket-accept" not in headers
    # the library client sees a plain HTTP answer, not a hang
    assert refused(srv, "/echo").status_code == 200


def test_wsgi_app_answers_a_websocket_request_as_plain_http(serve):
    srv = serve(WSGI_APP, "--interface", "wsgi")
    status, _, _, body = http_exchange(
        srv, handshake("/echo", new_key(), host=f"127.0.0.1:{srv.port}"))
    assert (status, body) == (200, b"wsgi GET |/echo upgrade=websocket")
    response = refused(srv, "/chat")
    assert (response.status_code, response.body) == (200, b"wsgi GET |/chat upgrade=websocket")


def test_missing_key_is_400(server):
    status, headers, _, body = http_exchange(
        server, handshake("/echo", "", host=f"127.0.0.1:{server.port}"))
    assert status == 400, body
    assert b"Sec-WebSocket-Key" in body
    assert "sec-websocket-accept" not in headers


def test_unsupported_version_is_426_naming_version_13(server):
    status, headers, _, body = http_exchange(
        server, handshake("/echo", new_key(), version="8", host=f"127.0.0.1:{server.port}"))
    assert status == 426, body
    assert headers["sec-websocket-version"] == "13"
    assert "sec-websocket-accept" not in headers


def test_post_with_upgrade_headers_is_an_http_error(server):
    rid = new_id()
    request = handshake(f"/echo?id={rid}", new_key(), [("Content-Length", "0")], method="POST",
                        host=f"127.0.0.1:{server.port}")
    status, headers, _, body = http_exchange(server, request)  # answered and closed: no hang
    assert status == 405, body
    assert headers.get("allow") == "GET", headers
    assert "sec-websocket-accept" not in headers
    assert server.wait_for_log(rf'"WebSocket /echo\?id={rid}" 405', 10), server.log
    assert f"WSREC {rid} " not in server.log  # the app never ran


# -- the websocket scope ---------------------------------------------------------------------------
def test_scope_is_complete_over_a_raw_handshake(server):
    rid = new_id()
    target = f"/scope/caf%C3%A9%20x?id={rid}&b=%20%2F"
    extra = [("X-Dup", "first"), ("X-Mixed-CASE", "Value Kept"),
             ("Sec-WebSocket-Protocol", "chat, superchat"), ("X-Dup", "second"),
             ("Sec-WebSocket-Protocol", "v2")]
    with RawWS.connect(server, target, headers=extra) as conn:
        key = conn.key
        client = conn.sock.getsockname()
        opcode, payload = conn.recv_message()
        assert opcode == TEXT
        scope = json.loads(payload)
        conn.close_handshake()
    required = {"type", "asgi", "http_version", "scheme", "path", "raw_path", "query_string",
                "root_path", "headers", "client", "server", "subprotocols", "state",
                "extensions"}
    assert required <= set(scope["keys"]), scope["keys"]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert (scope["path"], scope["path_type"]) == ("/scope/caf\u00e9 x", "str")
    assert (scope["raw_path"], scope["raw_path_type"]) == ("/scope/caf%C3%A9%20x", "bytes")
    assert (scope["query_string"], scope["query_string_type"]) == (f"id={rid}&b=%20%2F",
                                                                   "bytes")
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        ["host", f"127.0.0.1:{server.port}"], ["upgrade", "websocket"],
        ["connection", "Upgrade"], ["sec-websocket-key", key],
        ["sec-websocket-version", "13"], ["x-dup", "first"], ["x-mixed-case", "Value Kept"],
        ["sec-websocket-protocol", "chat, superchat"], ["x-dup", "second"],
        ["sec-websocket-protocol", "v2"]]
    assert scope["header_types"] == ["bytes"]
    assert scope["client"] == [client[0], client[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["subprotocols"] == ["chat", "superchat", "v2"]
    assert scope["state"] == {"ws_token": "from-lifespan"}
    assert "websocket.http.response" in scope["extensions"]
    assert scope["first_event"] == "websocket.connect"


def test_scope_through_the_websockets_client(server):
    rid = new_id()
    with ws_connect(server, f"/scope?id={rid}", subprotocols=["chat", "superchat"],
                    additional_headers={"X-Extra": "1"}) as ws:
        scope = json.loads(ws.recv(timeout=10))
        assert ws.subprotocol is None  # the app accepted without choosing one
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert ["x-extra", "1"] in scope["headers"]
    assert scope["path"] == "/scope" and scope["query_string"] == f"id={rid}"
    assert wait_record(server, rid, MARKER)["disconnect"]["type"] == "websocket.disconnect"


def test_scope_without_subprotocols_is_an_empty_list(server):
    with RawWS.connect(server, f"/scope?id={new_id()}") as conn:
        scope = json.loads(conn.recv_message()[1])
        conn.close_handshake()
    assert scope["subprotocols"] == []


def test_scope_state_is_a_copy_per_connection(server):
    """The app writes into its scope's state; the next connection starts from the lifespan's."""
    first, second = new_id(), new_id()
    with ws_connect(server, f"/scope?id={first}") as ws:
        one = json.loads(ws.recv(timeout=10))
    with ws_connect(server, f"/scope?id={second}") as ws:
        two = json.loads(ws.recv(timeout=10))
    assert one["state"] == two["state"] == {"ws_token": "from-lifespan"}


def test_scope_root_path_from_the_setting(serve):
    srv = serve(APP, "--root-path", "/proxy")
    with ws_connect(srv, "/scope/x%20y?q=1") as ws:
        scope = json.loads(ws.recv(timeout=10))
    assert scope["root_path"] == "/proxy"
    assert scope["path"] == "/proxy/scope/x y"
    assert scope["raw_path"] == "/proxy/scope/x%20y"
    assert scope["query_string"] == "q=1"


def test_scheme_is_wss_over_tls(serve, tmp_path: Path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.private_key_pem.write_to_path(str(keyfile))
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(certfile), append=i > 0)
    srv = serve(APP, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    with ws_connect(srv, "/scope/tls", scheme="wss", ssl=ctx) as ws:
        scope = json.loads(ws.recv(timeout=10))
        ws.send("x")
    assert scope["scheme"] == "wss"
    assert scope["type"] == "websocket" and scope["path"] == "/scope/tls"
    with ws_connect(srv, "/echo", scheme="wss", ssl=ctx) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=10) == "over tls"


# -- events after accept ---------------------------------------------------------------------------
def test_accept_with_subprotocol_and_headers(server):
    with ws_connect(server, "/accept-with?sub=superchat",
                    subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "superchat"
        headers = ws.response.headers
        assert headers["Sec-WebSocket-Protocol"] == "superchat"
        assert headers["X-WS-Extra"] == "yes"
        assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert headers["Server"] == "betula"
        assert ws.recv(timeout=10) == "accepted"


def test_accept_headers_on_the_wire(server):
    with RawWS.connect(server, "/accept-with?sub=v2",
                       headers=[("Sec-WebSocket-Protocol", "v1, v2")]) as conn:
        headers = conn.header_list
        assert ("sec-websocket-protocol", "v2") in headers
        assert ("x-ws-extra", "yes") in headers
        assert [v for n, v in headers if n == "set-cookie"] == ["a=1", "b=2"]
        assert conn.recv_message() == (TEXT, b"accepted")
        conn.close_handshake()


def test_text_and_bytes_both_ways(server):
    rid = new_id()
    big = os.urandom(1024 * 1024)
    with ws_connect(server, f"/echo?id={rid}", max_size=None) as ws:
        ws.send("h\u00e9llo \u2603")
        reply = ws.recv(timeout=10)
        assert (reply, type(reply)) == ("h\u00e9llo \u2603", str)
        ws.send(b"\x00\xffbin")
        reply = ws.recv(timeout=10)
        assert (reply, type(reply)) == (b"\x00\xffbin", bytes)
        ws.send("")
        assert ws.recv(timeout=10) == ""
        ws.send(b"")
        assert ws.recv(timeout=10) == b""
        ws.send(big)
        assert ws.recv(timeout=30) == big
    assert wait_record(server, rid, MARKER)["messages"] == 5


def test_fragmented_messages_arrive_whole(server):
    rid = new_id()
    with ws_connect(server, f"/echo?id={rid}") as ws:
        ws.send(["frag", "men", "ted \u00e9"])
        assert ws.recv(timeout=10) == "fragmented \u00e9"
        ws.send([b"\x01\x02", b"", b"\x03"])
        assert ws.recv(timeout=10) == b"\x01\x02\x03"
    assert wait_record(server, rid, MARKER)["messages"] == 2  # one receive event per message


def test_raw_fragments_with_a_ping_between_them(server):
    """A text message split inside a UTF-8 sequence, a ping between its frames (§5.4)."""
    rid = new_id()
    with RawWS.connect(server, f"/echo?id={rid}") as conn:
        data = "ab\u20acd".encode()  # the euro sign is 3 bytes: split it
        conn.sock.sendall(frame(TEXT, data[:3], fin=False) + frame(PING, b"p1")
                     + frame(CONT, data[3:4], fin=False) + frame(CONT, data[4:]))
        f = conn.recv_frame()
        assert (f.fin, f.opcode, f.payload) == (True, PONG, b"p1")
        assert conn.recv_message() == (TEXT, data)
        assert conn.close_handshake(4000)[0] == 4000
    record = wait_record(server, rid, MARKER)
    assert record["messages"] == 1
    assert record["disconnect"]["code"] == 4000


def test_disconnect_carries_the_clients_code_and_reason(server):
    rid = new_id()
    with ws_connect(server, f"/echo?id={rid}") as ws:
        ws.send("one")
        assert ws.recv(timeout=10) == "one"
        ws.close(4001, "bye now \u00e9")
    record = wait_record(server, rid, MARKER)
    assert record["disconnect"] == {"type": "websocket.disconnect", "code": 4001,
                                    "reason": "bye now \u00e9"}
    assert record["messages"] == 1


def test_disconnect_when_the_client_drops_is_1006(server):
    rid = new_id()
    conn = RawWS.connect(server, f"/echo?id={rid}")
    conn.send(TEXT, b"x")
    assert conn.recv_message() == (TEXT, b"x")
    conn.close()
    assert wait_record(server, rid, MARKER)["disconnect"]["code"] == 1006


def test_app_close_code_and_reason_reach_the_client(server):
    rid = new_id()
    with ws_connect(server, f"/echo?id={rid}") as ws:
        ws.send("close:4321:see you \u00e9")
        exc = closed_by_server(ws)
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (4321, "see you \u00e9")
    assert wait_record(server, rid, MARKER) == {"closed": 4321}


def test_app_close_over_raw_socket_is_a_close_frame(server):
    with RawWS.connect(server, "/echo") as conn:
        conn.send(TEXT, b"close:1000:done")
        f = conn.recv_frame()
        assert (f.fin, f.opcode) == (True, CLOSE)
        assert f.payload == close_payload(1000, b"done")
        conn.send(CLOSE, f.payload[:2])
        rest, closed = conn.read_until_eof()
        assert closed, "the server kept TCP open after the closing handshake"
        assert rest == b""


# -- the app refuses ---------------------------------------------------------------------------
def test_close_before_accept_is_403(server):
    status, headers, _, body = http_exchange(
        server, handshake("/close-before-accept", new_key(), host=f"127.0.0.1:{server.port}"))
    assert status == 403, body
    assert "sec-websocket-accept" not in headers
    assert headers["server"] == "betula" and "date" in headers
    assert refused(server, "/close-before-accept").status_code == 403


@pytest.mark.parametrize("parts", [1, 3])
def test_denial_response_is_sent_as_given(server, parts):
    status, headers, headers_list, body = http_exchange(
        server, handshake(f"/deny?parts={parts}", new_key(), host=f"127.0.0.1:{server.port}"))
    assert status == 418
    assert body == b"".join(f"part{i};".encode() for i in range(parts))
    assert [v for n, v in headers_list if n == "x-denied"] == ["because", "twice"]
    assert headers["content-type"] == "text/plain"
    assert "sec-websocket-accept" not in headers and "upgrade" not in headers
    response = refused(server, f"/deny?parts={parts}")
    assert response.status_code == 418
    assert response.headers.get_all("x-denied") == ["because", "twice"]
    assert response.body == body


def test_denial_response_with_the_apps_content_length_has_one(server):
    status, _, headers_list, body = http_exchange(
        server, handshake("/deny?parts=2&cl=1", new_key(), host=f"127.0.0.1:{server.port}"))
    assert (status, body) == (418, b"part0;part1;")
    assert [v for n, v in headers_list if n == "content-length"] == ["12"], headers_list


def test_exception_before_accept_is_500_and_logged(server):
    rid = new_id()
    status, headers, _, body = http_exchange(
        server, handshake(f"/raise-before?id={rid}", new_key(),
                          host=f"127.0.0.1:{server.port}"))
    assert status == 500, body
    assert "sec-websocket-accept" not in headers
    assert_logged_with_traceback(server, f"RuntimeError: ws boom before accept {rid}")


def test_returning_without_accept_is_500(server):
    rid = new_id()
    status, _, _, body = http_exchange(
        server, handshake(f"/return-before?id={rid}", new_key(),
                          host=f"127.0.0.1:{server.port}"))
    assert status == 500, body
    assert server.wait_for_log(rf'"WebSocket /return-before\?id={rid}" 500', 10), server.log


def test_exception_after_accept_closes_with_1011(server):
    rid = new_id()
    with ws_connect(server, f"/raise-after?id={rid}") as ws:
        assert ws.recv(timeout=10) == "about to fail"
        exc = closed_by_server(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1011
    assert_logged_with_traceback(server, f"RuntimeError: ws boom after accept {rid}")


def test_returning_after_accept_closes_with_1000(server):
    with ws_connect(server, "/return-after") as ws:
        assert ws.recv(timeout=10) == "bye"
        exc = closed_by_server(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1000


def test_client_leaving_before_accept_is_a_disconnect(server):
    rid = new_id()
    with server.connect() as sock:
        sock.sendall(handshake(f"/wait-before-accept?id={rid}", new_key(),
                               host=f"127.0.0.1:{server.port}"))
        assert wait_record(server, rid, MARKER) == {"first": "websocket.connect"}
    # the client is gone (FIN sent); the app, waiting in receive(), must hear of it
    record = wait_record(server, rid + "-second", MARKER)
    assert record["second"]["type"] == "websocket.disconnect", record


# -- errors the app sees -------------------------------------------------------------------------
def test_send_after_the_client_closed_raises_an_oserror(server):
    rid = new_id()
    with ws_connect(server, f"/send-after-close?id={rid}") as ws:
        assert ws.recv(timeout=10) == "ready"
        ws.close(1000, "done")
    record = wait_record(server, rid, MARKER)
    assert record["disconnect"]["code"] == 1000
    assert record["oserror0"] is True, record
    assert record["oserror1"] is True, record


def test_send_before_accept_raises_runtime_error(server):
    rid = new_id()
    with ws_connect(server, f"/send-before-accept?id={rid}") as ws:
        assert ws.recv(timeout=10) == "error=RuntimeError"
    assert wait_record(server, rid, MARKER) == {"error": "RuntimeError"}


def test_accept_twice_raises_runtime_error(server):
    rid = new_id()
    with ws_connect(server, f"/accept-twice?id={rid}") as ws:
        assert ws.recv(timeout=10) == "error=RuntimeError"
    assert wait_record(server, rid, MARKER) == {"error": "RuntimeError"}


# -- server shutdown -----------------------------------------------------------------------------
def test_sigterm_closes_with_1001_and_the_app_sees_the_disconnect(serve):
    srv = serve(APP)
    rid = new_id()
    with ws_connect(srv, f"/shutdown?id={rid}") as ws:
        assert ws.recv(timeout=10) == "ready"
        srv.send_signal(signal.SIGTERM)
        exc = closed_by_server(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1001
    record = wait_record(srv, rid, MARKER)
    assert record["disconnect"]["type"] == "websocket.disconnect"
    assert record["disconnect"]["code"] == 1001
    assert srv.wait_exit(15) == 0, srv.log
    assert "Traceback" not in srv.log, srv.log


def test_websocket_through_workers_and_their_graceful_stop(serve):
    srv = serve(APP, "--workers", "2")
    rid = new_id()
    with ws_connect(srv, f"/shutdown?id={rid}") as ws:
        assert ws.recv(timeout=10) == "ready"
        srv.send_signal(signal.SIGTERM)
        exc = closed_by_server(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1001
    assert wait_record(srv, rid, MARKER)["disconnect"]["code"] == 1001
    assert srv.wait_exit(20) == 0, srv.log


# -- mounts ----------------------------------------------------------------------------------------
def test_mount_routes_websocket_by_prefix(mounted):
    with ws_connect(mounted, "/ws/scope/a%20b?x=1") as ws:
        scope = json.loads(ws.recv(timeout=10))
    assert scope["type"] == "websocket"
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/ws", "/ws/scope/a b", "/ws/scope/a%20b")
    assert scope["query_string"] == "x=1"
    with ws_connect(mounted, "/w%73/scope") as ws:  # routed by the decoded path
        scope = json.loads(ws.recv(timeout=10))
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/ws", "/ws/scope", "/w%73/scope")  # raw_path: as received
    with ws_connect(mounted, "/ws") as ws:  # the prefix itself: the app's echo
        ws.send("at the prefix")
        assert ws.recv(timeout=10) == "at the prefix"


@pytest.mark.parametrize("target", ["/other", "/wsx/echo", "/"])
def test_websocket_to_a_wsgi_mount_is_plain_http(mounted, target):
    status, _, _, body = http_exchange(
        mounted, handshake(target, new_key(), host=f"127.0.0.1:{mounted.port}"))
    assert (status, body) == (200, f"wsgi GET |{target} upgrade=websocket".encode())
    assert refused(mounted, target).status_code == 200


def test_plain_http_under_the_websocket_mount(mounted):
    with mounted.connect() as sock:
        sock.sendall(b"GET /ws/page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, _, body = read_response(sock)
    assert status == 200
    assert json.loads(body) == {"type": "http", "method": "GET", "path": "/ws/page",
                                "root_path": "/ws", "upgrade": None}


def test_unmatched_mount_prefix_is_404(serve):
    srv = serve("--mount", f"/ws={APP}", "--mount", f"/plain={WSGI_APP}")
    status, _, _, body = http_exchange(
        srv, handshake("/nowhere/echo", new_key(), host=f"127.0.0.1:{srv.port}"))
    assert status == 404, body
    assert refused(srv, "/nowhere").status_code == 404
    with ws_connect(srv, "/ws/echo") as ws:  # the mounted prefix still upgrades
        ws.send("ok")
        assert ws.recv(timeout=10) == "ok"


# -- bytes that arrive together ----------------------------------------------------------------
def test_http_request_then_upgrade_in_one_write(server):
    key = new_key()
    host = f"127.0.0.1:{server.port}"
    request = f"GET /plain HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() + handshake(
        "/echo", key, host=host)
    with server.connect() as sock:
        sock.sendall(request)
        reader = RawReader(sock)
        status, headers = next_head(reader)
        body = reader.exact(int(dict(headers)["content-length"]))
        assert status == 200
        assert json.loads(body)["type"] == "http"
        status, headers = next_head(reader)
        assert status == 101, headers
        assert dict(headers)["sec-websocket-accept"] == accept_for(key)
        conn = RawWS(sock, reader.buf, headers)
        conn.send(TEXT, b"after pipelining")
        assert conn.recv_message() == (TEXT, b"after pipelining")
        conn.close_handshake()


def test_first_frames_in_the_same_write_as_the_handshake(server):
    rid = new_id()
    tail = frame(TEXT, b"early") + frame(BINARY, b"\x00early") + frame(TEXT, b"ear", fin=False)
    with RawWS.connect(server, f"/echo?id={rid}", tail=tail) as conn:
        assert conn.headers["sec-websocket-accept"] == accept_for(conn.key)
        assert conn.recv_message() == (TEXT, b"early")
        assert conn.recv_message() == (BINARY, b"\x00early")
        conn.send(CONT, b"lier")
        assert conn.recv_message() == (TEXT, b"earlier")
        conn.close_handshake()
    assert wait_record(server, rid, MARKER)["messages"] == 3


# -- logging ---------------------------------------------------------------------------------------
def test_access_log_line_for_the_handshake(server):
    rid = new_id()
    with ws_connect(server, f"/echo?id={rid}") as ws:
        ws.send("x")
        ws.recv(timeout=10)
        line = server.wait_for_log(rf'"WebSocket /echo\?id={rid}" 101', 10)
    assert line is not None, server.log
    assert re.search(r"127\.0\.0\.1:\d+ - ", line), line
    refused(server, f"/deny?parts=1&id={rid}")
    assert server.wait_for_log(rf'"WebSocket /deny\?parts=1&id={rid}" 418', 10), server.log
    refused(server, f"/close-before-accept?id={rid}")
    assert server.wait_for_log(rf'"WebSocket /close-before-accept\?id={rid}" 403', 10), \
        server.log
