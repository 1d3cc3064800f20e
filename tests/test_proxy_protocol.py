"""--proxy-protocol / --proxy-allow-ips: the real CLI and raw sockets that speak HAProxy's
PROXY protocol (v1 and v2) before HTTP/1.1, HTTP/2, WebSocket and TLS; and the header
parser on its own (betula/protocols/proxy_protocol.py) with the spec's vectors."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events
import pytest
import trustme
import websockets.sync.client

from betula.protocols.proxy_protocol import (
    V1_MAX,
    V2_MAX_PAYLOAD,
    V2_SIGNATURE,
    ProxyHeaderParser,
    ProxyProtocolError,
    looks_like_header,
)
from tests.support.server import ServerProcess, one_error_line, run_cli
from tests.support.tcp import wait_server_read
from tests.support.wire import read_response, read_until_closed, request

ASGI = "tests.apps.proxy_apps:app"
WSGI = "tests.apps.proxy_apps:wsgi"
GET = request("/", headers=("Host: test",))


# -- headers ------------------------------------------------------------------------------
def v1(family: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(src: str | None = None, dst: str | None = None, sport: int = 0, dport: int = 0,
       tlvs: bytes = b"", command: int = 0x1, family: int | None = None) -> bytes:
    """A v2 header: PROXY over TCP for the addresses given (their family), LOCAL with
    ``command=0``; ``family`` overrides the family/transport byte."""
    if src is None:
        block, fam = b"", 0x00
    elif ":" in src:
        block = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(
            socket.AF_INET6, dst or "::") + struct.pack("!HH", sport, dport)
        fam = 0x21
    else:
        block = socket.inet_aton(src) + socket.inet_aton(dst or "0.0.0.0") + \
            struct.pack("!HH", sport, dport)
        fam = 0x11
    payload = block + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, fam if family is None else family]) + \
        struct.pack("!H", len(payload)) + payload


# TLVs as HAProxy sends them: ALPN, authority, a unique id, and SSL with a version sub-TLV.
TLVS = (tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x05, b"\x01" * 32)
        + tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3")))


# -- clients ------------------------------------------------------------------------------
def connect(server, header: bytes = b"") -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    if header:
        sock.sendall(header)
    return sock


def seen_over(sock: socket.socket, data: bytes = GET) -> dict:
    sock.sendall(data)
    status, _, _, body = read_response(sock)
    assert status == 200, body
    return json.loads(body)


def seen(server, header: bytes) -> dict:
    with connect(server, header) as sock:
        return seen_over(sock)


def send_one_by_one(sock: socket.socket, data: bytes) -> None:
    """Each byte in a read of the server's own (it has read one before the next goes)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in data:
        sock.send(bytes([byte]))
        wait_server_read(sock)


def refused(server, data: bytes) -> None:
    """The connection is closed with not one byte sent."""
    with connect(server) as sock:
        sock.sendall(data)
        got, closed = read_until_closed(sock)
    assert closed and got == b""


def h2_get(sock: socket.socket, scheme: str = "http", one_by_one: int = 0
           ) -> tuple[int, dict]:
    """One GET over HTTP/2 on ``sock`` (prior knowledge, or after ALPN h2); the first
    ``one_by_one`` bytes of the preface are sent a write each."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", scheme),
                            (":authority", "test")], end_stream=True)
    data = conn.data_to_send()
    send_one_by_one(sock, data[:one_by_one])
    sock.sendall(data[one_by_one:])
    status, body = 0, b""
    while True:
        data = sock.recv(65536)
        assert data, "closed before the response ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.StreamEnded):
                return status, json.loads(body)
        sock.sendall(conn.data_to_send())


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("proxy-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return str(directory / "server.pem"), context


# -- the client the header names ----------------------------------------------------------
HEADERS = {
    "v1-tcp4": (v1("TCP4", "203.0.113.7", "192.0.2.1", 51234, 443), ["203.0.113.7", 51234]),
    "v1-tcp6": (v1("TCP6", "2001:db8::7", "2001:db8::1", 40000, 443), ["2001:db8::7", 40000]),
    "v2-tcp4": (v2("198.51.100.9", "192.0.2.1", 61000, 80), ["198.51.100.9", 61000]),
    "v2-tcp6": (v2("2001:db8:0:0::9", "::1", 1, 80), ["2001:db8::9", 1]),
    "v2-tcp4-tlvs": (v2("198.51.100.10", "192.0.2.1", 2000, 80, TLVS), ["198.51.100.10", 2000]),
    "v2-tcp6-tlvs": (v2("2001:db8::a", "::1", 3000, 80, TLVS), ["2001:db8::a", 3000]),
}


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
@pytest.mark.parametrize("name", list(HEADERS))
def test_the_header_names_the_client(serve, app, name):
    header, client = HEADERS[name]
    server = serve(app, "--proxy-protocol", "auto")
    assert seen(server, header)["client"] == client
    # ... and the access log says so
    host, port = client
    assert server.wait_for_log(rf"{re.escape(host)}:{port} - \"GET / HTTP/1.1\" 200")


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
@pytest.mark.parametrize("header", [b"PROXY UNKNOWN\r\n",
                                    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                                    v2(command=0x0), v2("192.0.2.9", "192.0.2.1", 1, 2,
                                                        command=0x0),
                                    v2(), v2(tlvs=TLVS)],
                         ids=["v1-unknown", "v1-unknown-addresses", "v2-local",
                              "v2-local-addresses", "v2-unspec", "v2-unspec-tlvs"])
def test_local_and_unknown_keep_the_socket_peer(serve, app, header):
    server = serve(app, "--proxy-protocol", "auto")
    with connect(server, header) as sock:
        got = seen_over(sock)
        assert got["client"] == list(sock.getsockname())


@pytest.mark.parametrize("header", [HEADERS["v1-tcp4"][0], HEADERS["v2-tcp6-tlvs"][0]],
                         ids=["v1", "v2"])
def test_the_header_may_come_byte_by_byte(serve, header):
    server = serve(ASGI, "--proxy-protocol", "auto")
    with connect(server) as sock:
        send_one_by_one(sock, header)
        assert seen_over(sock)["client"][0] in ("203.0.113.7", "2001:db8::a")


def test_the_header_and_the_request_in_one_write(serve):
    server = serve(ASGI, "--proxy-protocol", "v1")
    with connect(server) as sock:
        assert seen_over(sock, HEADERS["v1-tcp4"][0] + GET)["client"] == \
            ["203.0.113.7", 51234]


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
def test_every_request_of_a_keep_alive_connection_has_the_client(serve, app):
    server = serve(app, "--proxy-protocol", "v2")
    with connect(server, HEADERS["v2-tcp4"][0]) as sock:
        assert seen_over(sock)["client"] == ["198.51.100.9", 61000]
        assert seen_over(sock)["client"] == ["198.51.100.9", 61000]


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
def test_thread_mode_threads_read_the_header(serve, app):
    """--worker-mode thread: each thread's server reads the header on its own accepted
    connections (--allow-gil: the listener's wiring, not parallelism, is what is tested)."""
    server = serve(app, "--proxy-protocol", "auto", "--worker-mode", "thread",
                   "--workers", "2", "--allow-gil")
    assert server.wait_for_log(r"All \d+ worker threads serving", 30), server.log
    for name in ("v1-tcp4", "v2-tcp6-tlvs", "v2-tcp4"):  # several connections: both threads
        header, client = HEADERS[name]
        for _ in range(3):
            assert seen(server, header)["client"] == client
    refused(server, MALFORMED["bad-v1-signature"][0])


def test_http2_prior_knowledge_after_the_header(serve):
    server = serve(ASGI, "--proxy-protocol", "v1")
    with connect(server, HEADERS["v1-tcp6"][0]) as sock:
        status, got = h2_get(sock)
    assert status == 200 and got["client"] == ["2001:db8::7", 40000]


def test_a_websocket_after_the_header(serve):
    server = serve(ASGI, "--proxy-protocol", "v2")
    sock = connect(server, HEADERS["v2-tcp4-tlvs"][0])
    url = f"ws://{server.host}:{server.port}/"
    with websockets.sync.client.connect(url, sock=sock, proxy=None) as ws:
        got = json.loads(ws.recv(timeout=10))
    assert got["client"] == ["198.51.100.10", 2000] and got["scheme"] == "ws"


@pytest.mark.parametrize("alpn", ["http/1.1", "h2"])
@pytest.mark.parametrize("name", ["v1-tcp4", "v2-tcp6-tlvs"])
def test_tls_after_the_header(serve, certs, alpn, name):
    pem, context = certs
    header, client = HEADERS[name]
    server = serve(ASGI, "--proxy-protocol", "auto", "--ssl-certfile", pem)
    assert server.base_url.startswith("https://")
    context.set_alpn_protocols([alpn])
    # The header and the ClientHello in one segment, as a proxy sends them: the server
    # must read the header and not one byte of the handshake.
    raw = socket.create_connection((server.host, server.port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    raw.sendall(header)
    with context.wrap_socket(raw, server_hostname="localhost",
                             do_handshake_on_connect=False) as sock:
        sock.setblocking(False)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        sock.settimeout(10)
        sock.do_handshake()
        assert sock.selected_alpn_protocol() == alpn
        if alpn == "h2":
            status, got = h2_get(sock, "https")
            assert status == 200
        else:
            got = seen_over(sock)
    assert got["client"] == client and got["scheme"] == "https"


def test_tls_from_an_untrusted_peer_without_a_header_is_served(serve, certs):
    pem, context = certs
    server = serve(ASGI, "--proxy-protocol", "v2", "--proxy-allow-ips", "10.9.9.9",
                   "--ssl-certfile", pem)
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((server.host, server.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        got = seen_over(sock)
        assert got["client"] == list(sock.getsockname()) and got["scheme"] == "https"


def test_a_unix_socket_peer_is_trusted(serve, tmp_path):
    path = str(tmp_path / "pp.sock")
    serve(ASGI, "--uds", path, "--proxy-protocol", "v1", "--proxy-allow-ips", "10.9.9.9")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(HEADERS["v1-tcp4"][0])
        assert seen_over(sock)["client"] == ["203.0.113.7", 51234]


@pytest.mark.parametrize("allow, client", [
    ("127.0.0.1", ["198.51.100.7", 0]),  # the socket's peer is trusted: its X-F-F counts
    ("10.9.9.9", ["203.0.113.7", 51234]),  # it is not: the header's client stays
])
def test_proxy_headers_are_trusted_on_the_socket_peer(serve, allow, client):
    server = serve(ASGI, "--proxy-protocol", "v1", "--forwarded-allow-ips", allow)
    with connect(server, HEADERS["v1-tcp4"][0]) as sock:
        got = seen_over(sock, request("/", headers=("Host: test",
                                                    "X-Forwarded-For: 198.51.100.7")))
    assert got["client"] == client


# -- refused ------------------------------------------------------------------------------
MALFORMED = {
    "no-header": (GET, "not a PROXY header"),
    "bad-v1-signature": (b"PROXY\tTCP4 1.2.3.4 1.2.3.4 1 2\r\n", "bad signature"),
    "bad-v2-signature": (b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + b"\x00" * 12,
                         "bad signature"),
    "v1-too-long": (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n", "longer than 107"),
    "v1-no-crlf": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"),
    "v1-cr-alone": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rGET", "CR without LF"),
    "v1-bad-address": (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "not TCP4"),
    "v1-wrong-family": (b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", "not TCP4"),
    "v1-ipv6-scope": (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "not TCP6"),
    "v1-bad-port": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "not 0 to 65535"),
    "v1-fields": (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "fields"),
    "v1-protocol": (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"),
    "v2-version": (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1"),
    "v2-command": (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "command"),
    "v2-too-long": (V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", V2_MAX_PAYLOAD + 1),
                    "over 4096"),
    "v2-family": (v2("1.2.3.4", family=0x41), "family"),
    "v2-datagram": (v2("1.2.3.4", family=0x12), "not STREAM"),
    "v2-short-addresses": (v2("1.2.3.4", family=0x21), "need 36 bytes"),
    "v2-bad-tlv": (v2("1.2.3.4", tlvs=b"\x04\x00\x09abc"), "TLV"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_header_closes_with_nothing_sent(serve, name):
    data, reason = MALFORMED[name]
    server = serve(ASGI, "--proxy-protocol", "auto")
    refused(server, data)
    line = server.wait_for_log(r"bad PROXY header")
    assert line is not None and "WARNING" in line and reason in line, line
    assert "127.0.0.1:" in line  # names the peer


@pytest.mark.parametrize("setting, header, reason", [
    ("v1", HEADERS["v2-tcp4"][0], "only version 1"),
    ("v2", HEADERS["v1-tcp4"][0], "only version 2"),
])
def test_one_version_refuses_the_other(serve, setting, header, reason):
    server = serve(ASGI, "--proxy-protocol", setting)
    refused(server, header + GET)
    line = server.wait_for_log(r"bad PROXY header")
    assert line is not None and reason in line, line


@pytest.mark.parametrize("header", [HEADERS["v1-tcp4"][0], HEADERS["v2-tcp4"][0]],
                         ids=["v1", "v2"])
def test_an_untrusted_peer_with_a_header_is_closed(serve, header):
    server = serve(ASGI, "--proxy-protocol", "auto", "--proxy-allow-ips", "10.9.9.9")
    refused(server, header + GET)
    assert server.wait_for_log(r"WARNING 127\.0\.0\.1:\d+ - PROXY header from a peer not "
                               r"in --proxy-allow-ips: closed")


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
def test_an_untrusted_peer_without_a_header_is_served_as_it_is(serve, app):
    server = serve(app, "--proxy-protocol", "v1", "--proxy-allow-ips", "10.9.9.9")
    with connect(server) as sock:
        assert seen_over(sock)["client"] == list(sock.getsockname())


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
def test_an_untrusted_request_that_begins_like_a_header_byte_by_byte(serve, app):
    """"P" (of POST) may begin "PROXY ": the server takes it to see more, then gives it
    to HTTP/1.1 before the rest."""
    server = serve(app, "--proxy-protocol", "auto", "--proxy-allow-ips", "10.9.9.9")
    post = request("/", "POST", ("Host: test", "Content-Length: 2"), b"hi")
    with connect(server) as sock:
        send_one_by_one(sock, post[:1])  # then "O": not a header, and served
        assert seen_over(sock, post[1:])["client"] == list(sock.getsockname())


def test_an_untrusted_h2_preface_byte_by_byte(serve):
    """"PR" of "PRI * HTTP/2.0" begins "PROXY " too."""
    server = serve(ASGI, "--proxy-protocol", "v1", "--proxy-allow-ips", "10.9.9.9")
    with connect(server) as sock:
        status, got = h2_get(sock, one_by_one=3)
        assert status == 200 and got["client"] == list(sock.getsockname())


@pytest.mark.parametrize("partial", [b"", b"PROXY TCP4 1.2.", V2_SIGNATURE[:5]],
                         ids=["nothing", "half-v1", "half-v2"])
def test_a_header_that_never_comes_is_timed_out(serve, partial):
    server = serve(ASGI, "--proxy-protocol", "auto", "--timeout-request-header", "0.5")
    with connect(server, partial) as sock:
        got, closed = read_until_closed(sock, timeout=30)
    assert closed and got == b""
    line = server.wait_for_log(r"no PROXY header within 0\.5s")
    assert line is not None and "127.0.0.1:" in line


def test_a_peer_that_leaves_mid_header_is_logged(serve):
    server = serve(ASGI, "--proxy-protocol", "v1", "--log-level", "debug")
    with connect(server):  # a connect-only health check: not worth a warning
        pass
    assert server.wait_for_log(r"DEBUG 127\.0\.0\.1:\d+ - closed before sending anything")
    with connect(server, b"PROXY TCP4 "):
        pass
    assert server.wait_for_log(r"WARNING 127\.0\.0\.1:\d+ - closed before its PROXY header "
                               r"was complete")


def test_out_of_file_descriptors_pauses_accepting_then_serves():
    launcher = ["sh", "-c", 'ulimit -n 64 && exec "$0" -m betula "$@"', sys.executable]
    server = ServerProcess([ASGI, "--port", "0", "--proxy-protocol", "v1"],
                           command=launcher).start()
    held: list[socket.socket] = []
    try:
        while server.wait_for_log(r"pausing accepts", 0.05) is None:
            assert len(held) < 200, "never ran out of file descriptors"
            held.append(connect(server))
        line = server.wait_for_log(r"pausing accepts")
        assert line is not None and "ERROR cannot accept a connection: Too many open" in line
        for sock in held:
            sock.close()
        assert seen(server, HEADERS["v1-tcp4"][0])["client"] == ["203.0.113.7", 51234]
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_a_stop_closes_connections_still_sending_their_header(serve):
    server = serve(ASGI, "--proxy-protocol", "v1", "--timeout-graceful-shutdown", "60")
    with connect(server, b"PROXY TCP4 1.2.3.4 ") as sock:
        assert seen(server, HEADERS["v1-tcp4"][0])["client"][0] == "203.0.113.7"
        server.send_signal(signal.SIGINT)
        got, closed = read_until_closed(sock, timeout=30)
        assert closed and got == b""
    assert server.wait_exit() == 0


def test_off_is_the_default_and_sends_the_header_to_http(serve):
    server = serve(ASGI)
    with connect(server, HEADERS["v1-tcp4"][0] + GET) as sock:
        status, _, _, _ = read_response(sock)
    assert status in (400, 501)  # "PROXY TCP4 ..." is no request line (PROXY no method)


@pytest.mark.parametrize("args, env, setting", [
    (["--proxy-protocol", "v3"], None, "proxy-protocol"),
    ([], {"BETULA_PROXY_PROTOCOL": "yes"}, "proxy_protocol"),
    (["--proxy-allow-ips", "10.0.0.0/33"], None, "proxy_allow_ips"),
    (["--proxy-allow-ips", "proxy.example"], None, "proxy_allow_ips"),
], ids=["flag", "env", "cidr", "name"])
def test_bad_settings_are_one_error_line(args, env, setting):
    code, out = run_cli(ASGI, *args, env=env)
    assert code != 0
    assert setting in one_error_line(out)


# -- the parser on its own ----------------------------------------------------------------
FULL6 = ":".join(["ffff"] * 8)
# The spec's own examples (section 2.1) and its longest lines.
SPEC_V1 = [
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     ("255.255.255.255", 65535), ("255.255.255.255", 65535)),
    (f"PROXY TCP6 {FULL6} {FULL6} 65535 65535\r\n".encode(),
     (FULL6, 65535), (FULL6, 65535)),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
     ("192.168.0.1", 56324), ("192.168.0.11", 443)),
    (b"PROXY UNKNOWN\r\n", None, None),
    (f"PROXY UNKNOWN {FULL6} {FULL6} 65535 65535\r\n".encode(), None, None),
]


@pytest.mark.parametrize("line, client, server", SPEC_V1)
def test_parser_v1_vectors(line, client, server):
    parser = ProxyHeaderParser()
    info = parser.feed(line + b"GET /")
    assert info is not None and info.version == 1
    assert (info.client, info.server) == (client, server)
    assert parser.rest == b"GET /"


def test_parser_v1_longest_line_is_107_bytes():
    longest = f"PROXY UNKNOWN {FULL6} {FULL6} 65535 65535\r\n".encode()
    assert len(longest) == V1_MAX == 107
    assert ProxyHeaderParser().feed(longest) is not None
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        ProxyHeaderParser().feed(longest[:-2] + b"5\r\n")
    with pytest.raises(ProxyProtocolError, match="longer than 107"):  # no CRLF in sight
        ProxyHeaderParser().feed(b"PROXY UNKNOWN " + b"1" * 93)


def test_parser_v2_spec_layout():
    # PROXY, TCP over IPv4: 127.0.0.1:56324 -> 127.0.0.2:443, then a NOOP TLV
    header = (b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a" b"\x21" b"\x11"
              b"\x00\x10" b"\x7f\x00\x00\x01" b"\x7f\x00\x00\x02" b"\xdc\x04" b"\x01\xbb"
              b"\x04\x00\x01\x00")
    parser = ProxyHeaderParser()
    info = parser.feed(header + b"\x16\x03\x01")
    assert info is not None and info.version == 2
    assert info.client == ("127.0.0.1", 56324) and info.server == ("127.0.0.2", 443)
    assert parser.rest == b"\x16\x03\x01"


def test_parser_v2_unix_addresses_keep_the_peer():
    header = V2_SIGNATURE + b"\x21\x31" + struct.pack("!H", 216) + b"/a".ljust(108, b"\0") \
        + b"/b".ljust(108, b"\0")
    info = ProxyHeaderParser().feed(header)
    assert info is not None and info.client is None


@pytest.mark.parametrize("header", [h for h, _ in HEADERS.values()] + [r[0] for r in SPEC_V1])
def test_parser_never_reads_past_the_header(header):
    """A reader that peeks at most ``room`` bytes and takes what ``feed`` took ends exactly
    at the header's end, however the bytes arrive (the rest is a TLS handshake)."""
    stream = header + b"\x16\x03\x01\x02\x00" * 40
    rng = random.Random(header)
    for _ in range(20):
        parser = ProxyHeaderParser()
        at, arrived, info = 0, 0, None
        while info is None:
            arrived = min(len(stream), arrived + rng.randint(1, 40))
            peeked = stream[at:min(arrived, at + parser.room)]
            assert peeked
            info = parser.feed(peeked)
            at += len(peeked) - len(parser.rest)
        assert at == len(header)


def test_parser_byte_by_byte_is_the_same():
    for header, _ in HEADERS.values():
        whole = ProxyHeaderParser().feed(header)
        parser = ProxyHeaderParser()
        results = [parser.feed(header[i:i + 1]) for i in range(len(header))]
        assert results[:-1] == [None] * (len(header) - 1)
        assert repr(results[-1]) == repr(whole)


@pytest.mark.parametrize("data", [b"G", b"\x16", b"\r\n\r\n\x00\r\nQ\x00", b"PROXZ"])
def test_parser_refuses_at_the_first_wrong_byte(data):
    with pytest.raises(ProxyProtocolError):
        ProxyHeaderParser().feed(data)


def test_looks_like_header():
    assert looks_like_header(b"PROXY ") and looks_like_header(V2_SIGNATURE + b"!")
    assert looks_like_header(b"PRO") is None and looks_like_header(b"\r\n") is None
    assert looks_like_header(b"PRI") is False and looks_like_header(b"\x16\x03") is False
    assert looks_like_header(b"GET") is False and looks_like_header(b"\r\n\r\nX") is False


# -- TLS that does not follow -------------------------------------------------------------
def test_a_header_then_no_tls_handshake_is_closed(serve, certs):
    pem, context = certs
    server = serve(ASGI, "--proxy-protocol", "v1", "--ssl-certfile", pem,
                   "--log-level", "debug")
    refused(server, HEADERS["v1-tcp4"][0] + GET)  # plain HTTP where TLS must begin
    assert server.wait_for_log(r"127\.0\.0\.1:\d+ - connection not set up: .*SSL")
    context.set_alpn_protocols(["http/1.1"])
    with context.wrap_socket(connect(server, HEADERS["v1-tcp4"][0]),
                             server_hostname="localhost") as sock:
        assert seen_over(sock)["client"] == ["203.0.113.7", 51234]  # and it still serves


def test_an_untrusted_peer_that_begins_like_a_header_on_tls_is_closed(serve, certs):
    pem, _ = certs
    server = serve(ASGI, "--proxy-protocol", "auto", "--proxy-allow-ips", "10.9.9.9",
                   "--ssl-certfile", pem, "--log-level", "debug")
    with connect(server) as sock:
        send_one_by_one(sock, b"PR")  # may begin "PROXY ", cannot begin a TLS handshake
        sock.sendall(b"I * HTTP/2.0\r\n\r\n")
        got, closed = read_until_closed(sock)
    assert closed and got == b""
    assert server.wait_for_log(r"127\.0\.0\.1:\d+ - not a TLS handshake: closed")
