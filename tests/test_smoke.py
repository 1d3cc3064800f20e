"""The bundled example serves over the real CLI: the Quickstart's promise."""

import httpx
import pytest

from tests.support.wire import read_response


def test_example_app_serves_hello(serve):
    server = serve("examples.hello:app")
    response = httpx.get(server.base_url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["server"] == "betula"
    assert "date" in response.headers


def test_keep_alive_reuses_connection(serve):
    server = serve("examples.hello:app")
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _, body = read_response(sock)
            assert status == 200 and body == b"Hello, world!"


def test_stop_on_sigint_exits_zero(serve):
    server = serve("examples.hello:app")
    assert server.stop() == 0
    assert server.wait_for_log(r"\bStopped\b", 5), server.log


def test_example_app_websocket_echo(serve):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server = serve("examples.hello:app")
    base = f"ws://{server.host}:{server.port}"
    with connect(base + "/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo: hi"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=10) == b"\x00\xff"
    with pytest.raises(InvalidStatus) as refused:
        connect(base + "/elsewhere")
    assert refused.value.response.status_code == 403
    page = httpx.get(server.base_url + "/ws.html")
    assert page.status_code == 200 and b"new WebSocket" in page.content
