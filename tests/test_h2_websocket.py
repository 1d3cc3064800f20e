"""WebSocket over HTTP/2 (RFC 8441): the extended CONNECT through the same ASGI websocket
adapter and framing as HTTP/1.1, permessage-deflate included.

Client: the ``h2`` library at the frame level (tests/support/h2client.py) with websockets'
own client framing over the stream (tests/support/h2ws.py). The apps are the HTTP/1.1
WebSocket suite's (tests/apps/ws_apps.py): what only the app sees is printed as
``WSREC <id> <json>``.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import trustme
from h2.settings import SettingCodes
from websockets.frames import Opcode

from tests.support import need
from tests.support.h2client import H2Client
from tests.support.h2ws import H2WebSocket
from tests.support.logs import new_id
from tests.support.procs import stop_browser
from tests.support.server import ServerProcess

APP = "tests.apps.ws_apps:app"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server():
    """One server for the module: each test uses its own ids, so the log lines never mix."""
    srv = ServerProcess([APP, "--port", "0", "--timeout-graceful-shutdown", "2"]).start()
    yield srv
    srv.stop()


def connect(srv: ServerProcess) -> H2Client:
    client = H2Client(srv.host, srv.port)
    client.read_until(lambda: client.conn.remote_settings.enable_connect_protocol == 1 or
                      client.closed, 5)
    return client


def record(srv: ServerProcess, rid: str) -> dict:
    line = srv.wait_for_log(rf"WSREC {rid} ", 10)
    assert line is not None, srv.log
    return json.loads(line.split(f"WSREC {rid} ", 1)[1])


def test_the_server_announces_extended_connect(server) -> None:
    with connect(server) as client:
        assert client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


def test_without_websockets_extended_connect_is_not_announced(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP, "--ws", "none")
    with H2Client(srv.host, srv.port) as client:
        client.read_until(lambda: client.conn.remote_settings.max_concurrent_streams < 2**32)
        assert client.conn.remote_settings.enable_connect_protocol == 0
        ws = H2WebSocket(client, "/echo")
        assert ws.status == 501 and ws.result.ended


def test_echo_text_and_binary_then_the_clients_close(server) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}")
        assert ws.status == 200
        ws.send("hello over h2")
        frame = ws.recv()
        assert frame.opcode is Opcode.TEXT and frame.data == b"hello over h2"
        ws.send(bytes(range(256)) * 300)  # over one DATA frame's worth
        frame = ws.recv()
        assert frame.opcode is Opcode.BINARY and frame.data == bytes(range(256)) * 300
        ws.close(1000, "done")
        frame = ws.recv()
        assert frame.opcode is Opcode.CLOSE
        result = ws.wait_ended()  # the server ends the stream after the closing handshake
        assert result.ended and result.reset is None
    assert record(server, rid) == {
        "disconnect": {"code": 1000, "reason": "done", "type": "websocket.disconnect"},
        "messages": 2}
    assert f'"WebSocket /echo?id={rid}" 200' in server.log


def test_the_scope_says_http_2_and_carries_the_request(server) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/scope?id={rid}&x=1", headers=(
            ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat, superchat"),
            ("cookie", "a=1")))
        assert ws.status == 200
        scope = json.loads(ws.recv().data)
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope" and scope["query_string"] == f"id={rid}&x=1"
    assert scope["subprotocols"] == ["chat", "superchat"]
    headers = scope["headers"]
    assert ["host", "test"] in headers and ["cookie", "a=1"] in headers
    assert not any(name.startswith(":") for name, _ in headers)
    assert scope["first_event"] == "websocket.connect"


def test_accept_sends_the_subprotocol_and_the_apps_headers(server) -> None:
    with connect(server) as client:
        ws = H2WebSocket(client, "/accept-with?sub=chat", headers=(
            ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat")))
        assert ws.status == 200
        assert ws.result.header(b"sec-websocket-protocol") == [b"chat"]
        assert ws.result.header(b"x-ws-extra") == [b"yes"]
        assert ws.result.header(b"set-cookie") == [b"a=1", b"b=2"]
        assert not ws.result.header(b"sec-websocket-accept")  # RFC 8441: no key, no accept
        assert ws.recv().data == b"accepted"
        assert not ws.result.ended  # the stream stays open for the WebSocket


def test_permessage_deflate_is_negotiated_and_used(server) -> None:
    rid = new_id()
    message = "compressible " * 500
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}", compress=True)
        assert ws.status == 200
        offered = ws.result.header(b"sec-websocket-extensions")
        assert offered and offered[0].startswith(b"permessage-deflate")
        before = len(ws.result.body)
        ws.send(message)
        frame = ws.recv()
        assert frame.data.decode() == message
        # the echo came compressed: far fewer bytes on the stream than the message
        assert len(ws.result.body) - before < len(message) // 10
        ws.close()
        ws.recv()
    assert record(server, rid)["messages"] == 1


def test_other_streams_run_while_a_websocket_is_open(server) -> None:
    with connect(server) as client:
        ws = H2WebSocket(client, "/echo")
        assert ws.status == 200
        sid = client.request("GET", "/plain")
        response = client.wait(sid)
        assert response.status == 200 and json.loads(response.body)["type"] == "http"
        ws.send("still here")
        assert ws.recv().data == b"still here"
        second = H2WebSocket(client, "/echo")
        second.send("two")
        assert second.recv().data == b"two"


def test_the_apps_close_reaches_the_client_and_ends_the_stream(server) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}")
        ws.send("close:4001:app says bye")
        frame = ws.recv()
        assert frame.opcode is Opcode.CLOSE and frame.data[:2] == (4001).to_bytes(2, "big")
        assert frame.data[2:] == b"app says bye"
        # (websockets answered the close frame as it came: the handshake is complete)
        assert ws.wait_ended().ended
    assert record(server, rid) == {"closed": 4001}


def test_a_reset_stream_is_an_abnormal_close_for_the_app(server) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}")
        ws.send("one")
        ws.recv()
        client.reset(ws.sid)
        assert record(server, rid) == {
            "disconnect": {"code": 1006, "reason": "", "type": "websocket.disconnect"},
            "messages": 1}
        # the connection goes on
        sid = client.request("GET", "/after")
        assert client.wait(sid).status == 200


def test_the_clients_end_stream_without_a_close_frame_is_1006(server) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}")
        ws.end()
        assert ws.wait_ended().ended
    assert record(server, rid)["disconnect"]["code"] == 1006


def test_a_denial_is_an_ordinary_response_on_the_stream(server) -> None:
    with connect(server) as client:
        ws = H2WebSocket(client, "/deny?parts=3")
        assert ws.status == 418
        result = ws.wait_ended()
        assert result.body == b"part0;part1;part2;"
        assert result.header(b"x-denied") == [b"because", b"twice"]
        denied = H2WebSocket(client, "/deny?parts=2&cl=1")
        assert denied.wait_ended().body == b"part0;part1;"
        assert denied.result.header(b"content-length") == [b"12"]


@pytest.mark.parametrize(("route", "status"), [
    ("close-before-accept", 403), ("raise-before", 500), ("return-before", 500)])
def test_closing_or_failing_before_accept_is_an_error_status(server, route, status) -> None:
    with connect(server) as client:
        ws = H2WebSocket(client, f"/{route}?id={new_id()}")
        assert ws.status == status
        assert ws.wait_ended().ended
        sid = client.request("GET", "/after")  # the connection is not harmed
        assert client.wait(sid).status == 200


@pytest.mark.parametrize(("headers", "status", "hint"), [
    ((), 400, None),
    ((("sec-websocket-version", "8"),), 426, [b"13"]),
    ((("sec-websocket-version", "13"), ("sec-websocket-version", "13")), 426, [b"13"]),
])
def test_an_invalid_handshake_is_refused_before_the_app(server, headers, status, hint) -> None:
    rid = new_id()
    with connect(server) as client:
        ws = H2WebSocket(client, f"/echo?id={rid}", headers=headers)
        assert ws.status == status
        result = ws.wait_ended()
        assert result.header(b"sec-websocket-version") == (hint or [])
        assert str(status).encode() in result.body
    assert f"WSREC {rid} " not in server.log  # the app never ran


def test_an_extended_connect_to_a_wsgi_mount_is_not_run_as_http(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve("--mount", f"/ws={APP}", "--mount", "/=tests.apps.ws_apps:wsgi_app")
    with connect(srv) as client:
        ws = H2WebSocket(client, "/ws/echo")  # the ASGI mount: a WebSocket
        ws.send("mounted")
        assert ws.recv().data == b"mounted"
        wsgi = H2WebSocket(client, "/echo")  # the WSGI mount: its 200 would read as open
        assert wsgi.status == 501
        assert b"No WebSocket endpoint" in wsgi.wait_ended().body
        sid = client.request("GET", "/page")
        assert client.wait(sid).body.startswith(b"wsgi GET")
    assert "wsgi CONNECT" not in srv.log


def test_connect_without_a_websocket_protocol_is_not_served(server) -> None:
    with connect(server) as client:
        other = H2WebSocket(client, "/echo", protocol="webtransport")
        assert other.status == 501
        assert b"Unsupported :protocol" in other.wait_ended().body


def test_the_server_waits_for_the_clients_window(server) -> None:
    """The app's messages wait in the stream's outbox while the client grants no window;
    the rest comes once it does, in order (the later messages queued behind the first)."""
    with H2Client(server.host, server.port, window=1024, auto_credit=False) as client:
        client.read_until(lambda: client.conn.remote_settings.enable_connect_protocol == 1)
        ws = H2WebSocket(client, "/echo")
        assert ws.status == 200
        ws.send("x" * 4000)
        client.read_until(lambda: len(ws.result.body) >= 1024)
        ws.send("y" * 10)
        ws.send("z" * 3000)
        assert len(ws.result.body) == 1024  # exactly the window, then nothing
        client.credit(100_000, ws.sid)
        client.credit(100_000)
        assert [ws.recv().data for _ in range(3)] == [b"x" * 4000, b"y" * 10, b"z" * 3000]


def test_graceful_stop_closes_open_websockets_with_1001(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP, "--timeout-graceful-shutdown", "5")
    rid = new_id()
    with connect(srv) as client:
        ws = H2WebSocket(client, f"/shutdown?id={rid}")
        assert ws.recv().data == b"ready"
        srv.proc.send_signal(signal.SIGTERM)
        frame = ws.recv()
        assert frame.opcode is Opcode.CLOSE and frame.data[:2] == (1001).to_bytes(2, "big")
        client.read_until(lambda: client.goaway is not None or client.closed)
    assert record(srv, rid)["disconnect"]["code"] == 1001
    assert srv.proc.wait(10) == 0


# -- headless Chromium over TLS ---------------------------------------------------------------
@pytest.mark.timeout(120)
def test_chromium_loads_a_page_over_h2_and_opens_a_websocket_on_it(serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ALPN h2 for the page (``nextHopProtocol``), and the page's WebSocket goes over the
    same HTTP/2 connection when Chromium takes the server's extended CONNECT."""
    chromium = need.program("chromium", "apt-get install chromium; .ci/run installs it")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(keyfile)
    cert.cert_chain_pems[0].write_to_path(certfile)
    srv = serve("tests.apps.h2_browser:app", "--ssl-certfile", str(certfile),
                "--ssl-keyfile", str(keyfile))
    tag = new_id()
    profile = tmp_path / "profile"
    profile.mkdir()
    browser_log = tmp_path / "chromium.log"
    with open(browser_log, "wb") as log:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--ignore-certificate-errors", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}",
             f"https://127.0.0.1:{srv.port}/?tag={tag}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        line = srv.wait_for_log(rf"H2B result {tag} ", 60)
        closed = srv.wait_for_log(rf"H2B ws-closed {tag} ", 10) if line else None
    finally:
        stop_browser(proc)
    if line is None:
        pytest.fail(f"the page never reported back.\nserver log:\n{srv.log}\n"
                    f"chromium output (tail):\n{browser_log.read_text(errors='replace')[-3000:]}")
    result = json.loads(line.split(f"H2B result {tag} ", 1)[1])
    assert result["nextHopProtocol"] == "h2"
    assert result["http_version"] == "2"
    assert result["echo"] == "hello over h2 from chromium"
    assert result["extensions"].startswith("permessage-deflate")
    opened = srv.wait_for_log(rf"H2B ws {tag} ", 1)
    assert json.loads(opened.split(f"H2B ws {tag} ", 1)[1]) == {
        "http_version": "2", "scheme": "wss"}
    assert closed is not None and '"code": 1000' in closed
