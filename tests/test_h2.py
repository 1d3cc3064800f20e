"""HTTP/2 (issue 15, first slice): prior knowledge and ALPN on the HTTP/1.1 port, the same
ASGI and WSGI adapters, concurrent streams, flow control both ways, resets, graceful stop.

Clients: the ``h2`` library at the frame level (tests/support/h2client.py), ``httpx`` with
HTTP/2 over TLS (ALPN), ``curl --http2-prior-knowledge``.
"""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess

import hpack
import httpx
import pytest
import trustme
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, StreamEnded
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame

from betula.protocols.h2.connection import CONTROL_BURST, RESET_BURST
from tests.support.h2client import H2Client
from tests.support.memory import MIB, PeakRSS
from tests.support.need import program
from tests.support.tcp import wait_server_read
from tests.support.wire import recv_until, recv_until_closed, request

APP = "tests.apps.h2_apps:app"
WSGI = ("tests.apps.h2_apps:wsgi_app", "--interface", "wsgi")

pytestmark = pytest.mark.timeout(60)


def client(srv, **kwargs) -> H2Client:  # type: ignore[no-untyped-def]
    return H2Client(srv.host, srv.port, **kwargs)


def test_prior_knowledge_and_http11_share_the_port(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with client(srv) as h2:
        result = h2.wait(h2.request("GET", "/scope?a=1"))
    assert result.status == 200
    scope = json.loads(result.body)
    assert scope["http_version"] == "2"
    assert (scope["method"], scope["scheme"], scope["path"], scope["query_string"]) == \
        ("GET", "http", "/scope", "a=1")
    assert scope["headers"][0] == ["host", "test"]  # from :authority, first (ASGI spec)
    assert recv_until_closed_http11(srv).startswith(b"HTTP/1.1 200")


def recv_until_closed_http11(srv) -> bytes:  # type: ignore[no-untyped-def]
    with srv.connect() as sock:
        sock.sendall(request("/fast", headers=("Host: t", "Connection: close")))
        return recv_until_closed(sock)


def test_without_http2_the_preface_is_http11s(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP, "--no-http2")
    with srv.connect() as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 505") or data.startswith(b"HTTP/1.1 400"), data


def test_a_preface_split_across_reads_is_taken(serve) -> None:  # type: ignore[no-untyped-def]
    """The preface in two reads (the server sees a first read of 5 bytes: it waits for the
    second before reading its first bytes as TCP_NODELAY sends them)."""
    srv = serve(APP)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    data = conn.data_to_send()
    with srv.connect() as sock:
        sock.sendall(data[:5])
        wait_server_read(sock)  # the 5 bytes are read by the server before the rest comes
        sock.sendall(data[5:])
        conn.send_headers(1, [(b":method", b"GET"), (b":path", b"/cookies"),
                              (b":scheme", b"http"), (b":authority", b"t")], end_stream=True)
        sock.sendall(conn.data_to_send())
        body, ended = b"", False
        sock.settimeout(10)
        while not ended:
            chunk = sock.recv(65536)
            assert chunk, "closed"
            for event in conn.receive_data(chunk):
                if isinstance(event, DataReceived):
                    body += event.data
                elif isinstance(event, StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    assert body == b"ok"


def test_repeated_response_fields_arrive_intact(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with client(srv) as h2:
        result = h2.wait(h2.request("GET", "/cookies"))
    assert result.header(b"set-cookie") == [b"a=1", b"b=2; Path=/", b"c=3"]
    assert result.header(b"x-multi") == [b"one", b"two"]
    assert result.header(b"date") and result.header(b"server") == [b"betula"]


def test_request_bodies_reach_the_app(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    body = bytes(range(256)) * 2000  # 512 KB: more than the stream's first window
    with client(srv) as h2:
        sid = h2.request("POST", "/echo", body=body)
        result = h2.wait(sid)
    assert result.status == 200 and result.body == body


def test_streams_of_one_connection_run_concurrently(serve) -> None:  # type: ignore[no-untyped-def]
    """Stream 1 waits until stream 3 has been answered: served one after the other, it
    would never end."""
    srv = serve(APP)
    with client(srv) as h2:
        held = h2.request("GET", "/hold?id=c1")
        release = h2.request("GET", "/release?id=c1")
        assert h2.wait(release).body == b"released"
        assert h2.wait(held).body == b"held c1"


def test_responses_wait_for_the_clients_window(serve) -> None:  # type: ignore[no-untyped-def]
    """A client granting 1000 bytes a stream gets 1000 until it credits more (h2 itself
    fails the client on a window violation), then the rest; two streams share the
    connection's window and both finish."""
    srv = serve(APP)
    with client(srv, window=1000, auto_credit=False) as h2:
        one = h2.request("GET", "/big?n=100000")
        two = h2.request("GET", "/big?n=50000")
        h2.read_until(lambda: len(h2.results[one].body) == 1000
                      and len(h2.results[two].body) == 1000)
        h2.credit(4000, one)
        h2.read_until(lambda: len(h2.results[one].body) == 5000)
        assert len(h2.results[two].body) == 1000
        for sid, size in ((one, 100000), (two, 50000)):
            h2.credit(size, sid)
        h2.credit(200000)  # the connection's window too
        assert h2.wait(one).body == b"x" * 100000
        assert h2.wait(two).body == b"x" * 50000
    assert srv.wait_for_log(r"big: sent 100000")


def test_a_reset_stream_tells_the_app_and_spares_the_others(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with client(srv) as h2:
        sid = h2.request("GET", "/wait-disconnect?id=r1")
        h2.read_until(lambda: h2.results[sid].body == b"first")
        h2.reset(sid)
        assert srv.wait_for_log(r"disconnect r1")
        assert h2.wait(h2.request("GET", "/cookies")).status == 200


def test_data_for_a_finished_stream_does_no_harm(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with client(srv) as h2:
        sid = h2.request("GET", "/cookies")
        h2.wait(sid)
        frame = DataFrame(sid)
        frame.data = b"late"
        frame.flags.add("END_STREAM")
        h2.sock.sendall(frame.serialize())
        assert h2.wait(h2.request("GET", "/cookies")).status == 200


def test_graceful_stop_sends_goaway_ends_the_stream_then_closes(serve) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM while a stream streams: GOAWAY names it as the last stream taken, its app
    is told the client is gone (as on HTTP/1.1), the stream ends, the connection closes."""
    srv = serve(APP, "--timeout-graceful-shutdown", "10")
    with client(srv) as h2:
        sid = h2.request("GET", "/wait-disconnect?id=g1")
        h2.read_until(lambda: h2.results[sid].body == b"first")
        srv.send_signal(signal.SIGTERM)
        h2.read_until(lambda: h2.goaway is not None)
        assert h2.goaway.last_stream_id == sid and h2.goaway.error_code == 0
        result = h2.results[sid]
        h2.read_until(lambda: h2.closed)
        assert result.ended or result.reset is not None
    assert srv.wait_for_log(r"disconnect g1")
    assert srv.wait_exit() == 0


def test_a_stream_over_the_limit_is_refused_alone(serve) -> None:  # type: ignore[no-untyped-def]
    """--h2-max-concurrent-streams 2: the SETTINGS say 2; a third open stream gets
    REFUSED_STREAM (RFC 9113 §5.1.2) and the two go on; then a new stream is served."""
    srv = serve(APP, "--h2-max-concurrent-streams", "2")
    with client(srv) as h2:
        h2.ignore_stream_limit()
        assert h2.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 2
        one = h2.request("GET", "/hold?id=l1")
        two = h2.request("GET", "/hold?id=l2")
        assert srv.wait_for_log(r"holding l2")
        three = h2.request("GET", "/release?id=l1")
        h2.read_until(lambda: h2.results[three].reset is not None)
        assert h2.results[three].reset == ErrorCodes.REFUSED_STREAM
        assert not h2.results[one].ended and not h2.results[two].ended
    with client(srv) as other:  # releases them from another connection
        assert other.wait(other.request("GET", "/release?id=l1")).body == b"released"
        assert other.wait(other.request("GET", "/release?id=l2")).body == b"released"


def test_rapid_reset_ends_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    """CVE-2023-44487: streams opened and reset at once, over and over, end with GOAWAY
    ENHANCE_YOUR_CALM (the server stops starting work it never finishes); a client that
    resets a few streams is served as before."""
    srv = serve(APP)
    with client(srv) as calm:  # a few resets: fine
        for _ in range(20):
            calm.reset(calm.request("GET", "/wait-disconnect?id=calm"))
        assert calm.wait(calm.request("GET", "/cookies")).status == 200
    with client(srv) as attacker:
        for _ in range(RESET_BURST + 100):  # far faster than RESET_RATE refills
            if attacker.closed or attacker.goaway is not None:
                break
            sid = attacker.conn.get_next_available_stream_id()
            attacker.conn.send_headers(sid, [(b":method", b"GET"),
                                             (b":path", b"/wait-disconnect?id=x"),
                                             (b":scheme", b"http"), (b":authority", b"t")],
                                       end_stream=True)
            attacker.conn.reset_stream(sid, ErrorCodes.CANCEL)
            try:
                attacker.sock.sendall(attacker.conn.data_to_send())
            except OSError:
                break
        attacker.read_until(lambda: attacker.goaway is not None or attacker.closed)
        assert attacker.goaway is not None
        assert attacker.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert srv.wait_for_log(r"rapid reset")
    with client(srv) as after:  # the server is fine
        assert after.wait(after.request("GET", "/cookies")).status == 200


@pytest.mark.parametrize("frame", ["ping", "settings", "empty-data"])
def test_control_frame_floods_end_the_connection(serve, frame: str) -> None:  # type: ignore[no-untyped-def]
    """PING and SETTINGS floods (each makes the server answer) and empty DATA frames (each
    makes it do nothing) end with GOAWAY ENHANCE_YOUR_CALM; a few are fine."""
    srv = serve(APP)
    with client(srv) as h2:
        sid = h2.request("POST", "/echo", end=False)
        for n in range(CONTROL_BURST + 500):
            if frame == "ping":
                h2.conn.ping(n.to_bytes(8, "big"))
            elif frame == "settings":
                h2.conn.update_settings({SettingCodes.MAX_HEADER_LIST_SIZE: 65536 + n % 2})
            else:
                h2.conn.send_data(sid, b"")
            if n == 10:  # a few: the connection still serves
                h2.sock.sendall(h2.conn.data_to_send())
                assert h2.wait(h2.request("GET", "/cookies")).status == 200
            data = h2.conn.data_to_send()
            try:
                h2.sock.sendall(data)
            except OSError:
                break
        h2.read_until(lambda: h2.goaway is not None or h2.closed)
        assert h2.goaway is not None and h2.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert srv.wait_for_log(r"\(flood\)")


def test_a_continuation_flood_ends_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    """HEADERS without END_HEADERS, then CONTINUATION frames without end (CVE-2024-27316's
    kind): the connection ends early (h2 counts them) and nothing is buffered past that;
    other clients are served."""
    srv = serve(APP)
    with client(srv) as h2:
        encoder = hpack.Encoder()
        frame = HeadersFrame(1)
        frame.data = encoder.encode([(b":method", b"GET"), (b":path", b"/cookies"),
                                     (b":scheme", b"http"), (b":authority", b"t")])
        frame.flags.add("END_STREAM")
        h2.sock.sendall(frame.serialize())
        sent = 0
        for _ in range(2000):  # 32 MB if all were taken
            more = ContinuationFrame(1)
            more.data = encoder.encode([(b"x-pad", b"a" * 16000)])
            try:
                h2.sock.sendall(more.serialize())
            except OSError:
                break
            sent += 1
        assert sent < 2000
        h2.read_until(lambda: h2.goaway is not None or h2.closed)
    assert srv.wait_for_log(r"HTTP/2 protocol error: Too many continuation frames")
    with client(srv) as other:
        assert other.wait(other.request("GET", "/cookies")).status == 200


def test_a_stalled_request_body_times_out_alone(serve) -> None:  # type: ignore[no-untyped-def]
    """--timeout-request-body: a stream whose body stops arriving gets a 408 (and the app
    is told the client left); the connection and its other streams go on."""
    srv = serve(APP, "--timeout-request-body", "1")
    with client(srv) as h2:
        sid = h2.request("POST", "/echo", (("content-length", "10"),), body=b"12345",
                         end=False)
        result = h2.wait(sid, timeout=15)
        assert result.status == 408, result
        assert h2.wait(h2.request("GET", "/cookies")).status == 200
    assert srv.wait_for_log(r"request body timed out")


@pytest.mark.parametrize("split", [False, True], ids=["whole-header", "header-across-reads"])
def test_a_frame_over_the_size_limit_ends_the_connection_at_its_header(serve, split) -> None:  # type: ignore[no-untyped-def]
    """A DATA frame declaring 16 MiB: GOAWAY FRAME_SIZE_ERROR as soon as its 9-byte header
    is read, without waiting for (and buffering) its bytes."""
    srv = serve(APP)
    with client(srv) as h2:
        assert h2.wait(h2.request("GET", "/cookies")).status == 200  # frames before: fine
        sid = h2.request("POST", "/echo", end=False)
        header = (16 * MIB - 1).to_bytes(3, "big") + b"\x00\x00" + sid.to_bytes(4, "big")
        if split:
            h2.sock.sendall(header[:4])
            wait_server_read(h2.sock)
            h2.sock.sendall(header[4:] + b"x" * 100)
        else:
            h2.sock.sendall(header + b"x" * 100)
        h2.read_until(lambda: h2.goaway is not None)
        assert h2.goaway.error_code == ErrorCodes.FRAME_SIZE_ERROR


def _upgrade_request(settings: bytes, path: str = "/scope", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            f"Upgrade: h2c\r\nHTTP2-Settings: {settings.decode()}\r\n{extra}\r\n").encode()


def test_upgrade_h2c_answers_the_request_on_stream_1(serve) -> None:  # type: ignore[no-untyped-def]
    """RFC 7540 §3.2: 101, then the first request's answer on stream 1 over HTTP/2, and
    the connection goes on as HTTP/2."""
    srv = serve(APP)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    settings = conn.initiate_upgrade_connection()
    with srv.connect() as sock:
        sock.sendall(_upgrade_request(settings))
        head = recv_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
        rest = head.partition(b"\r\n\r\n")[2]
        sock.sendall(conn.data_to_send())  # the preface and SETTINGS
        streams: dict[int, bytes] = {}
        ended: set[int] = set()

        def feed(data: bytes) -> None:
            for event in conn.receive_data(data):
                if isinstance(event, DataReceived):
                    streams[event.stream_id] = streams.get(event.stream_id, b"") + event.data
                elif isinstance(event, StreamEnded):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())

        if rest:
            feed(rest)
        sock.settimeout(10)
        while 1 not in ended:
            feed(sock.recv(65536))
        scope = json.loads(streams[1])
        assert scope["http_version"] == "2" and scope["path"] == "/scope"
        names = [name for name, _ in scope["headers"]]
        assert "upgrade" not in names and "http2-settings" not in names
        assert "connection" not in names and names[0] == "host"
        sid = conn.get_next_available_stream_id()  # the connection is HTTP/2 now
        conn.send_headers(sid, [(b":method", b"GET"), (b":path", b"/cookies"),
                                (b":scheme", b"http"), (b":authority", b"t")], end_stream=True)
        sock.sendall(conn.data_to_send())
        while sid not in ended:
            feed(sock.recv(65536))
        assert streams[sid] == b"ok"


@pytest.mark.parametrize("settings, extra", [
    (b"!!not base64!!", ""),  # HTTP2-Settings that do not decode
    (b"AAMAAABkAAQAAP__", "Content-Length: 2\r\n"),  # a body: answered as HTTP/1.1
], ids=["bad-settings", "with-body"])
def test_an_upgrade_that_cannot_be_done_is_answered_as_http11(serve, settings, extra) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with srv.connect() as sock:
        sock.sendall(_upgrade_request(settings, "/echo", extra) + (b"hi" if extra else b""))
        data = recv_until(sock, b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data


def test_curl_upgrades_with_h2c(serve) -> None:  # type: ignore[no-untyped-def]
    curl = program("curl", "apt-get install curl")
    srv = serve(APP)
    out = subprocess.run([curl, "-s", "--http2", f"http://{srv.host}:{srv.port}/cookies",
                          "-w", "\n%{http_version}"], capture_output=True, text=True,
                         timeout=20, check=True).stdout
    assert out == "ok\n2"


@pytest.mark.parametrize("upgrade", [True, False], ids=["h2c-upgrade", "prior-knowledge"])
def test_nghttp_gets_early_hints_the_body_and_trailers(serve, upgrade) -> None:  # type: ignore[no-untyped-def]
    nghttp = program("nghttp", "apt-get install nghttp2-client")
    srv = serve(APP)
    argv = [nghttp, "-v", f"http://{srv.host}:{srv.port}/trailers"]
    if upgrade:
        argv.insert(1, "-u")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout
    if upgrade:
        assert "HTTP/1.1 101 Switching Protocols" in out and "HTTP Upgrade success" in out
    else:
        assert "HTTP Upgrade" not in out
    # (the request's stream: 1 after an upgrade, nghttp's next free id otherwise)
    received = [line.split(") ", 1)[1] for line in out.splitlines()
                if re.search(r"recv \(stream_id=\d+\) ", line)]
    assert received[:3] == [":status: 103", "link: </style.css>; rel=preload; as=style",
                            ":status: 200"]
    assert received[-1] == "x-digest: sha-256=abc"  # the trailing HEADERS, last
    assert "trailer: x-digest" in received  # the app's announcement of them, kept
    assert "with trailers" in out
    assert "SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1" in out


def test_wsgi_over_http2(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(*WSGI)
    with client(srv) as h2:
        env = json.loads(h2.wait(h2.request("GET", "/environ?q=1")).body)
        posted = h2.wait(h2.request("POST", "/echo", body=b"w" * 300000))
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) \
        == ("GET", "/environ", "q=1", "test")
    assert posted.body == b"w" * 300000
    assert posted.header(b"set-cookie") == [b"w=1", b"v=2"]


def test_curl_prior_knowledge(serve) -> None:  # type: ignore[no-untyped-def]
    curl = program("curl", "apt-get install curl")
    srv = serve(APP)
    out = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-d", "curl body",
                          f"http://{srv.host}:{srv.port}/echo", "-w", "\\n%{http_version}"],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    assert out == "curl body\n2"


def test_alpn_h2_over_tls_with_httpx(serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(keyfile)
    cert.cert_chain_pems[0].write_to_path(certfile)
    srv = serve(APP, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(http2=True, verify=context) as http:
        response = http.get(f"https://127.0.0.1:{srv.port}/scope")
        assert response.http_version == "HTTP/2"
        assert json.loads(response.content)["scheme"] == "https"
    with httpx.Client(http2=False, verify=context) as http:  # ALPN http/1.1 still served
        assert http.get(f"https://127.0.0.1:{srv.port}/scope").http_version == "HTTP/1.1"


FLOW = "tests.apps.flow_apps:app"


def test_a_large_upload_to_a_slow_app_keeps_memory_flat(serve) -> None:  # type: ignore[no-untyped-def]
    """64 MiB up one stream to an app that reads slowly: the stream's window is credited
    only as the app takes the body, so the server holds about a window and its high-water
    mark, never the upload (peak RSS, as for HTTP/1.1)."""
    srv = serve(FLOW)
    with client(srv) as h2:  # warm-up: first-use allocations go into the baseline
        assert h2.wait(h2.request("POST", "/slow-upload", body=b"x" * 300_000)).status == 200
    peak = PeakRSS(srv.proc.pid)
    size = 64 * MIB
    with client(srv) as h2:
        sid = h2.request("POST", "/slow-upload", (("content-length", str(size)),),
                         body=None, end=False)
        block = b"u" * MIB
        for i in range(size // MIB):
            h2.send_data(sid, block, end=i == size // MIB - 1)
        result = h2.wait(sid, timeout=60)
    assert result.status == 200, result
    assert json.loads(result.body)["bytes"] == size
    growth = peak.growth()
    assert growth < 6 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB"


def test_a_stalled_upload_does_not_hold_the_other_streams(serve) -> None:  # type: ignore[no-untyped-def]
    """One stream's app stops reading: its client may send a window and the adapter's
    high-water mark, then no more (no credit comes), while the connection's window
    (credited as bytes arrive) lets the other streams go on."""
    srv = serve(FLOW)
    token = "st1"
    window = 256 * 1024  # --h2-initial-window-size's default, and BODY_HIGH_WATER
    with client(srv) as h2:
        sid = h2.request("POST", f"/stalled-upload?token={token}",
                         (("content-length", str(8 * MIB)),), body=None, end=False)
        total = 0
        for _ in range(6):  # send whatever the stream's window allows, round after round
            allowed = h2.conn.local_flow_control_window(sid)
            if allowed:
                h2.send_data(sid, b"s" * allowed)
                total += allowed
            h2.wait(h2.request("GET", f"/received?token={token}"))  # the server has read it
        assert h2.conn.local_flow_control_window(sid) == 0
        assert window <= total <= 3 * window, total
        other = h2.request("POST", "/slow-upload", body=b"o" * (2 * MIB))
        assert json.loads(h2.wait(other, timeout=30).body)["bytes"] == 2 * MIB
        h2.reset(sid)  # (the app then sees the client leave)
        h2.wait(h2.request("GET", f"/release?token={token}"))


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_streams_leave_no_reference_cycles(serve, interface) -> None:  # type: ignore[no-untyped-def]
    """Each stream's objects are freed by reference counting once its exchange is over, as
    HTTP/1.1's are (test_request_objects.py): a stream and its adapter's cycle holding each
    other left every request to the garbage collector (6.9% of the worker's time on h2load
    POSTs over TLS, py-spy)."""
    srv = serve(f"tests.apps.gc_apps:{interface}", "--interface", interface,
                "--lifespan", "off")
    rounds = 30
    with client(srv) as h2:
        for i in range(rounds):  # ten streams at once, with and without a body
            sids = [h2.request("GET", f"/r/{i}/{j}") for j in range(5)]
            sids += [h2.request("POST", f"/p/{i}/{j}", body=b"x" * (j + 1)) for j in range(5)]
            results = [h2.wait(sid) for sid in sids]
            assert [r.status for r in results] == [200] * 10
            assert [r.body for r in results[5:]] == [b"x" * (j + 1) for j in range(5)]
        state = json.loads(h2.wait(h2.request("GET", "/check")).body)
    requests = 10 * rounds
    assert state["made"]["scope"] == requests, state
    assert state["collected"] == 0, f"stream objects freed only by the collector: {state}"
    assert state["alive"] == 0, f"finished streams' objects still alive: {state}"
