"""The bundled example serves over the real CLI: the Quickstart's promise."""

import httpx

from .conftest import read_response


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
    assert "Stopped" in server.log
