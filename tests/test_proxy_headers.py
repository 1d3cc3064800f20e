"""--proxy-headers / --forwarded-allow-ips: the real CLI, real clients (httpx over HTTP/1.1
and HTTP/2, websockets), ASGI and WSGI; and the chain rules on their own (proxy.py)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from betula.proxy import ProxyTrust, forwarded
from tests.support.server import one_error_line, run_cli

ASGI = "tests.apps.proxy_apps:app"
WSGI = "tests.apps.proxy_apps:wsgi"
CHAIN = {"X-Forwarded-For": "203.0.113.5, 10.0.0.1", "X-Forwarded-Proto": "https",
         "X-Forwarded-Host": "example.com"}


def seen(server, headers: dict[str, str], http2: bool = False) -> dict:
    with httpx.Client(http1=not http2, http2=http2, timeout=10) as client:
        response = client.get(server.base_url + "/", headers=headers)
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    return response.json()


@pytest.mark.parametrize("app", [ASGI, WSGI])
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_a_trusted_peer_sets_client_scheme_and_host(serve, app, http2):
    server = serve(app)
    got = seen(server, CHAIN, http2)
    # 10.0.0.1 is not trusted (the default trusts loopback only): the right-most untrusted.
    assert got["client"] == ["10.0.0.1", 0]
    assert got["scheme"] == "https" and got["host"] == "example.com"
    if app == WSGI:
        assert got["server"] == ["example.com", "443"]


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_the_chain_is_walked_past_trusted_proxies(serve, app):
    server = serve(app, "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8")
    assert seen(server, CHAIN)["client"] == ["203.0.113.5", 0]


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_rfc7239_forwarded_wins(serve, app):
    server = serve(app)
    got = seen(server, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=ex.org',
                        "X-Forwarded-For": "198.51.100.9"})
    assert got["client"] == ["2001:db8::1", 4711]
    assert got["scheme"] == "https" and got["host"] == "ex.org"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_an_untrusted_peer_is_not_believed(serve, app):
    server = serve(app, "--forwarded-allow-ips", "10.9.9.9")
    got = seen(server, CHAIN)
    assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http"
    assert got["host"].startswith("127.0.0.1:")


def test_no_proxy_headers_turns_it_off(serve):
    server = serve(ASGI, "--no-proxy-headers")
    assert seen(server, CHAIN)["client"][0] == "127.0.0.1"


def test_a_unix_socket_peer_is_trusted(serve, tmp_path):
    path = tmp_path / "b.sock"
    serve(ASGI, "--uds", str(path), "--forwarded-allow-ips", "10.9.9.9")
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, timeout=10) as client:
        got = client.get("http://localhost/", headers=CHAIN).json()
    assert got["client"] == ["10.0.0.1", 0] and got["scheme"] == "https"


def test_websocket_scheme_becomes_wss(serve):
    server = serve(ASGI)

    async def talk() -> dict:
        url = f"ws://{server.host}:{server.port}/"
        async with websockets.connect(url, additional_headers=CHAIN) as ws:
            return json.loads(await ws.recv())
    got = asyncio.run(talk())
    assert got["scheme"] == "wss" and got["client"] == ["10.0.0.1", 0]


def test_a_bad_allow_list_is_refused_with_one_line():
    code, out = run_cli("--forwarded-allow-ips", "10.0.0.0/33", ASGI)
    assert code != 0
    assert "forwarded_allow_ips" in one_error_line(out)


@pytest.mark.parametrize("header, expected", [
    ("203.0.113.5", ("203.0.113.5", 0)),
    ("203.0.113.5, 127.0.0.1", ("203.0.113.5", 0)),  # the trusted hop is skipped
    ("127.0.0.1, ::1", ("127.0.0.1", 0)),  # every hop trusted: the left-most
    ("unknown", None),  # RFC 7239 §6.3: no address to give
    ("198.51.100.1, bogus, 127.0.0.1", ("bogus", 0)),  # not an address: untrusted
])
def test_chains(header, expected):
    found = forwarded([(b"x-forwarded-for", header.encode())], ProxyTrust("127.0.0.1,::1"))
    assert found is not None and found.client == expected


def test_no_proxy_header_is_no_change():
    assert forwarded([(b"host", b"x")], ProxyTrust("*")) is None
