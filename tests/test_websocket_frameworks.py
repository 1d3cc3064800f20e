"""Real Starlette and FastAPI WebSocket endpoints served by the real CLI, and a real browser.

The clients are the ``websockets`` library's (sync API) and, in one test, headless Chromium
loading a page that Betula serves. What only the app can see (the close code it was given,
the handshake's request headers) it prints as a ``WSFW ...`` line that the test reads from
the server's output; every test passes a fresh ``tag`` so the lines it waits for are its own.

Apps: tests/apps/wsfw_starlette.py, tests/apps/wsfw_fastapi.py, tests/apps/wsfw_browser.py.
One server per app for the whole module (started lazily). No TestClient anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.support import need
from tests.support.logs import new_id
from tests.support.procs import stop_browser
from tests.support.server import ServerProcess
from tests.support.wire import RawReader
from tests.support.wsclient import closed_by_server, handshake, new_key, ws_connect

APPS = {
    "starlette": "tests.apps.wsfw_starlette:app",
    "fastapi": "tests.apps.wsfw_fastapi:app",
    "browser": "tests.apps.wsfw_browser:app",
}
RECV_TIMEOUT = 10.0  # hang guard for one message
LOG_TIMEOUT = 10.0  # hang guard for one line from the app

pytestmark = pytest.mark.timeout(60)


class Served:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        assert server.port is not None
        self.http = server.base_url

    def connect(self, path: str, **kwargs) -> ClientConnection:
        return ws_connect(self.server, path, **kwargs)

    def report(self, *words: str) -> str:
        """Wait for the app's ``WSFW word word ...`` line; the rest of the line."""
        prefix = "WSFW " + " ".join(words)
        line = self.server.wait_for_log(re.escape(prefix) + r"(\s|$)", LOG_TIMEOUT)
        assert line is not None, f"the app never printed {prefix!r}:\n{self.server.log}"
        return line[line.index(prefix) + len(prefix):].strip()


@pytest.fixture(scope="module")
def servers() -> Iterator:
    started: dict[str, Served] = {}

    def get(name: str) -> Served:
        if name not in started:
            server = ServerProcess([APPS[name], "--host", "127.0.0.1", "--port", "0"])
            server.start()
            started[name] = Served(server)
        return started[name]

    yield get
    for served in started.values():
        served.server.stop(signal.SIGINT)


@pytest.fixture
def starlette(servers) -> Served:
    return servers("starlette")


@pytest.fixture
def fastapi(servers) -> Served:
    return servers("fastapi")


def recv(ws: ClientConnection):
    return ws.recv(timeout=RECV_TIMEOUT)


def recv_json(ws: ClientConnection):
    return json.loads(recv(ws))


# -- Starlette: WebSocketEndpoint echoes ----------------------------------------------------------
def test_endpoint_text_bytes_json_echo(starlette):
    t = new_id()
    with starlette.connect(f"/echo/text?tag={t}-text") as ws:
        ws.send("héllo ✓")
        assert recv(ws) == "text:héllo ✓"
        big = "websocket " * 50_000  # 500 kB
        ws.send(big)
        assert recv(ws) == "text:" + big
    assert starlette.report("connect", f"{t}-text") == "text"
    assert starlette.report("endpoint-disconnect", f"{t}-text") == "1000"

    payload = bytes(range(256)) + os.urandom(300_000)
    with starlette.connect(f"/echo/bytes?tag={t}-bytes") as ws:
        ws.send(payload)
        assert recv(ws) == b"bytes:" + payload
        ws.send(b"")
        assert recv(ws) == b"bytes:"
    assert starlette.report("endpoint-disconnect", f"{t}-bytes") == "1000"

    document = {"name": "Zoë", "list": [1, 2.5, None, True], "nested": {"k": "v"}}
    with starlette.connect(f"/echo/json?tag={t}-json") as ws:
        ws.send(json.dumps(document))
        assert recv_json(ws) == {"echo": document, "type": "dict"}
        ws.send(json.dumps([1, 2, 3]))
        assert recv_json(ws) == {"echo": [1, 2, 3], "type": "list"}
        ws.close(4005, "json done")
    assert starlette.report("endpoint-disconnect", f"{t}-json") == "4005"


def test_endpoint_raw_messages_keep_text_and_bytes_apart(starlette):
    t = new_id()
    with starlette.connect(f"/echo/any?tag={t}") as ws:
        ws.send("text that looks like bytes")
        ws.send(b"bytes that look like text")
        ws.send("")
        assert recv(ws) == "text that looks like bytes"
        assert recv(ws) == b"bytes that look like text"
        assert recv(ws) == ""
        # a message the client sends in fragments reaches the app whole
        ws.send(["frag", "mented ", "text"])
        assert recv(ws) == "fragmented text"
    assert starlette.report("endpoint-disconnect", t) == "1000"


# -- Starlette: a receive_text loop ending in WebSocketDisconnect ---------------------------------
def test_receive_loop_sees_the_clients_close_code_and_reason(starlette):
    t = new_id()
    with starlette.connect(f"/upper?tag={t}") as ws:
        for word in ("one", "two", "three"):
            ws.send(word)
            assert recv(ws) == word.upper()
        ws.close(4001, "client says bye ✓")
    assert starlette.report("loop-disconnect", t) == \
        "code=4001 reason='client says bye ✓' count=3"


def test_receive_loop_sees_a_normal_close_without_reason(starlette):
    t = new_id()
    with starlette.connect(f"/upper?tag={t}") as ws:
        ws.send("x")
        assert recv(ws) == "X"
    assert starlette.report("loop-disconnect", t) == "code=1000 reason='' count=1"


def test_receive_loop_sees_1006_when_the_client_just_drops(starlette):
    t = new_id()
    with starlette.connect(f"/upper?tag={t}") as ws:
        ws.send("x")
        assert recv(ws) == "X"
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection ends
    assert starlette.report("loop-disconnect", t) == "code=1006 reason='' count=1"


# -- Starlette: subprotocols, closing from the app ------------------------------------------------
def test_app_picks_a_subprotocol(starlette):
    with starlette.connect("/subprotocols", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
        assert recv_json(ws) == {"offered": ["chat.v1", "chat.v2"], "chosen": "chat.v2"}
    with starlette.connect("/subprotocols", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert recv_json(ws) == {"offered": ["chat.v1"], "chosen": "chat.v1"}
    with starlette.connect("/subprotocols") as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        assert recv_json(ws) == {"offered": [], "chosen": None}


def test_app_closes_with_code_and_reason(starlette):
    t = new_id()
    with starlette.connect(f"/close?tag={t}") as ws:
        ws.send(json.dumps({"code": 4321, "reason": "app says bye ✓"}))
        assert recv(ws) == "closing"
        closed = closed_by_server(ws)
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4321, "app says bye ✓")
    # the app's receive() after its own close: the end of the closing handshake
    assert starlette.report("after-close", t) == "websocket.disconnect"

    with starlette.connect(f"/close?tag={t}-normal") as ws:
        ws.send(json.dumps({"code": 1000, "reason": ""}))
        assert recv(ws) == "closing"
        closed = closed_by_server(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1000


# -- Starlette: refusing the handshake ------------------------------------------------------------
def test_close_in_on_connect_is_a_403(starlette):
    t = new_id()
    with pytest.raises(InvalidStatus) as info:
        starlette.connect(f"/guarded?tag={t}&key=wrong")
    assert info.value.response.status_code == 403
    assert starlette.report("refused", t) == ""
    # the same endpoint with the right key accepts
    with starlette.connect(f"/guarded?tag={t}-ok&key=sesame") as ws:
        ws.send("friend")
        assert recv(ws) == "welcome:friend"
    assert starlette.report("guarded-disconnect", f"{t}-ok") == "1000"
    # the server kept serving plain HTTP beside it
    assert httpx.get(starlette.http + "/state", timeout=10).status_code == 200


def raw_handshake(served: Served, target: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A WebSocket handshake over a plain socket; the answer's status, headers and body
    (read until the server closes: a refused handshake ends the connection)."""
    with served.server.connect() as sock:
        sock.sendall(handshake(target, new_key(), host=f"127.0.0.1:{served.server.port}"))
        reader = RawReader(sock)
        status, headers = reader.head()
        return status, headers, reader.rest()


def denial_via_client(served: Served, path: str):
    """The websockets client's view of a refused handshake: the response it parsed."""
    try:
        served.connect(path)
    except InvalidStatus as exc:
        return exc.response
    except InvalidMessage as exc:  # the response could not be parsed
        pytest.fail(f"the denial response is not valid HTTP: {exc!r} ({exc.__cause__!r})")
    pytest.fail("the handshake was accepted")


def test_starlette_denial_response(starlette):
    t = new_id()
    # On the wire: exactly one Content-Length, equal to the body's length.
    status, headers, body = raw_handshake(starlette, f"/denied?tag={t}")
    assert status == 401
    assert body == b"token required\n"
    lengths = [value for name, value in headers if name == "content-length"]
    assert lengths == [str(len(body))], headers
    assert starlette.report("denied", t) == ""
    # and the websockets client reads it as the 401 it is
    response = denial_via_client(starlette, f"/denied?tag={t}-client")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ws"'
    assert response.headers["x-denied-by"] == "starlette"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert bytes(response.body) == b"token required\n"


def test_starlette_streaming_denial_response(starlette):
    # No Content-Length from the app, the body in three parts: the server frames it.
    t = new_id()
    status, headers, body = raw_handshake(starlette, f"/denied/streaming?tag={t}")
    assert status == 429
    assert body == b"slow down please\n"
    assert [v for n, v in headers if n == "content-length"] == [str(len(body))], headers
    assert ("retry-after", "7") in headers
    assert "upgrade" not in dict(headers)
    assert starlette.report("denied-streaming", t) == ""
    response = denial_via_client(starlette, f"/denied/streaming?tag={t}-client")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert bytes(response.body) == b"slow down please\n"


def test_http_exception_before_accept_becomes_a_denial_response(starlette):
    # Starlette answers an HTTPException raised in a websocket route with a PlainTextResponse
    # sent through the denial extension.
    t = new_id()
    response = denial_via_client(starlette, f"/denied/exception?tag={t}")
    assert starlette.report("raising", t) == ""
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Basic"
    assert bytes(response.body) == b"who are you?"


# -- Starlette: scope and lifespan state ----------------------------------------------------------
def test_starlette_sees_the_websocket_scope(starlette):
    with starlette.connect("/scope/caf%C3%A9%20noir?x=1&y=%20") as ws:
        info = recv_json(ws)
    assert info["type"] == "websocket"
    assert info["scheme"] == "ws"
    assert info["path"] == "/scope/café noir"
    assert info["raw_path"] == "/scope/caf%C3%A9%20noir"
    assert info["query_string"] == "x=1&y=%20"
    assert info["path_params"] == {"name": "café noir"}
    assert info["url"].startswith(f"ws://127.0.0.1:{starlette.server.port}/scope/")
    assert "websocket.http.response" in info["extensions"]
    assert info["http_version"] == "1.1"
    assert info["headers"]["sec-websocket-version"] == "13"
    assert info["headers"]["upgrade"].lower() == "websocket"
    assert info["client_is_loopback"] is True


def test_lifespan_state_reaches_websockets(starlette):
    with starlette.connect("/state?overwrite=1") as ws:
        first = recv_json(ws)
    with starlette.connect("/state") as ws:
        second = recv_json(ws)
    http = httpx.get(starlette.http + "/state", timeout=10).json()
    # the greeting came from the lifespan, and a connection's overwrite stayed its own
    assert first["greeting"] == first["scope_greeting"] == "hello from lifespan"
    assert second["greeting"] == "hello from lifespan"
    assert http["greeting"] == "hello from lifespan"
    # the shared mutable object is the same one for websockets and HTTP requests
    assert second["hits"] == first["hits"] + 1
    assert http["hits"] == second["hits"] + 1


def test_permessage_deflate_with_the_websockets_client(starlette):
    text = "compress me please " * 20_000  # 380 kB, very compressible
    with starlette.connect("/echo/text") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate")
        assert [type(ext).__name__ for ext in ws.protocol.extensions] == ["PerMessageDeflate"]
        ws.send(text)
        assert recv(ws) == "text:" + text
    with starlette.connect("/echo/text", compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        ws.send(text)
        assert recv(ws) == "text:" + text


# -- FastAPI --------------------------------------------------------------------------------------
def test_fastapi_path_query_and_dependency(fastapi):
    with fastapi.connect("/items/42?q=hey%20there&token=user-ann") as ws:
        assert recv_json(ws) == {"item_id": 42, "q": "hey there", "limit": 3, "user": "ann"}
        for n in range(3):
            ws.send(f"m{n}")
            assert recv(ws) == f"42/{n}:m{n}"
        closed = closed_by_server(ws)
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1000, "limit reached")
    # the dependency also takes the token from a header; query parameters are typed
    with fastapi.connect("/items/7?limit=1", additional_headers={"X-Token": "user-bob"}) as ws:
        assert recv_json(ws) == {"item_id": 7, "q": None, "limit": 1, "user": "bob"}
        ws.send("only")
        assert recv(ws) == "7/0:only"
        assert closed_by_server(ws).rcvd.code == 1000


@pytest.mark.parametrize("path", [
    "/items/42",  # the dependency finds no token: WebSocketException(1008) before accept
    "/items/42?token=intruder",  # a token the dependency refuses
    "/items/not-a-number?token=user-ann",  # path parameter validation
    "/items/42?token=user-ann&limit=many",  # query parameter validation
    "/chat/lobby",  # required query parameter missing
])
def test_fastapi_refusals_before_accept_are_403(fastapi, path):
    with pytest.raises(InvalidStatus) as info:
        fastapi.connect(path)
    assert info.value.response.status_code == 403
    # and the server is fine afterwards
    assert httpx.get(fastapi.http + "/health", timeout=10).json() == {"ok": "yes"}


def test_fastapi_chat_room_broadcasts_between_clients(fastapi):
    room = "room-" + new_id()
    with fastapi.connect(f"/chat/{room}?name=alice") as alice:
        assert recv_json(alice) == {"event": "joined", "name": "alice", "members": ["alice"]}
        with fastapi.connect(f"/chat/{room}?name=bob") as bob:
            joined = {"event": "joined", "name": "bob", "members": ["alice", "bob"]}
            assert recv_json(bob) == joined
            assert recv_json(alice) == joined  # alice knows bob is in the room
            alice.send(json.dumps({"text": "hi bob ✓"}))
            said = {"event": "message", "from": "alice", "text": "hi bob ✓"}
            assert recv_json(bob) == said
            assert recv_json(alice) == said  # the sender gets the broadcast too
            bob.send(json.dumps({"text": "hello alice"}))
            said = {"event": "message", "from": "bob", "text": "hello alice"}
            assert recv_json(alice) == said
            assert recv_json(bob) == said
            bob.close(4002, "bob goes")
        assert recv_json(alice) == {"event": "left", "name": "bob", "code": 4002}
        assert fastapi.report("chat-left", room, "bob") == "4002"
        # another room does not hear this one
        other = "room-" + new_id()
        with fastapi.connect(f"/chat/{other}?name=carol") as carol:
            assert recv_json(carol)["members"] == ["carol"]
            alice.send(json.dumps({"text": "anyone?"}))
            assert recv_json(alice)["text"] == "anyone?"
            carol.send(json.dumps({"text": "only me"}))
            assert recv_json(carol)["text"] == "only me"
    assert fastapi.report("chat-left", room, "alice") == "1000"
    assert fastapi.report("chat-left", other, "carol") == "1000"


def test_fastapi_lifespan_state(fastapi):
    with fastapi.connect("/state") as ws:
        before = recv_json(ws)
    assert before["greeting"] == before["scope_greeting"] == "hello from fastapi lifespan"
    room = "room-" + new_id()
    with fastapi.connect(f"/chat/{room}?name=dave") as dave:
        recv_json(dave)
        with fastapi.connect("/state") as ws:
            during = recv_json(ws)
    # the room counter lives in the lifespan state's shared dict
    assert during["rooms_opened"] == before["rooms_opened"] + 1


# -- headless Chromium ----------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_chromium_page_talks_to_betula_over_websocket(servers, tmp_path):
    chromium = need.program("chromium", "apt-get install chromium; .ci/run installs it")
    served = servers("browser")
    t = new_id()
    profile = tmp_path / "profile"
    profile.mkdir()
    browser_log = tmp_path / "chromium.log"
    url = f"{served.http}/?tag={t}"
    started = time.monotonic()
    with open(browser_log, "wb") as log:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             url],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        line = served.server.wait_for_log(r"WSFW result " + t + r" ", 60)
        elapsed = time.monotonic() - started
    finally:
        stop_browser(proc)
        shutil.rmtree(profile, ignore_errors=True)
    if line is None:
        tail = browser_log.read_text(errors="replace")[-3000:]
        pytest.fail(f"the page never reported back.\nserver log:\n{served.server.log}\n"
                    f"chromium output (tail):\n{tail}")
    print(f"chromium round trip: {elapsed:.1f} s")
    result = json.loads(line.split(f"WSFW result {t} ", 1)[1])
    assert "error" not in result, result
    assert result["got"] == "hello from chromium"
    assert result["big_ok"] == "true" and result["big_length"] == "200000"
    assert result["bin"] == "0,1,2,255"
    assert result["protocol"] == "betula.echo"
    # Chromium offered permessage-deflate and the server's answer was taken
    offered = json.loads(served.report("browser-connect", t))
    assert "HeadlessChrome" in offered["user_agent"]
    assert offered["origin"] == served.http
    assert offered["subprotocols"] == ["betula.echo"]
    assert offered["extensions"].startswith("permessage-deflate")
    assert result["extensions"].startswith("permessage-deflate")
    # the page closed with 1000 "done", and the app saw exactly that
    assert served.report("browser-disconnect", t) == "code=1000 reason='done'"
