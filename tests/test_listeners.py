"""Listeners and TLS (issue 2): TCP over IPv4/IPv6, --uds (with permissions), --fd, HTTPS,
an encrypted key, mutual TLS, and clear errors when a listener cannot be set up.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support import need
from tests.support.client import get_json
from tests.support.server import betula, one_error_line, run_cli
from tests.support.tcp import server_end
from tests.support.wire import read_response, read_until_closed, request

APP = "tests.apps.cli_apps:app"


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory path: Unix socket paths are limited to ~107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="btl", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- TCP ----------------------------------------------------------------------------------------
def test_ipv4_tcp(serve):
    server = serve(APP, "--host", "127.0.0.1")
    assert server.base_url.startswith("http://127.0.0.1:")
    scope = get_json(server, "/v4")
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_ipv6_tcp(serve):
    need.ipv6()
    server = serve(APP, "--host", "::1")
    assert server.base_url.startswith("http://[::1]:")
    scope = get_json(server, "/v6")
    assert scope["server"] == ["::1", server.port]
    assert scope["client"][0] == "::1"
    assert scope["path"] == "/v6"


def test_port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, output = run_cli(APP, "--host", "127.0.0.1", "--port", str(port))
    assert code != 0
    line = one_error_line(output)
    assert str(port) in line
    assert "in use" in line.lower()


# -- Unix domain sockets ------------------------------------------------------------------------
def uds_get(path: Path, target: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
        return client.get("http://localhost" + target)


def test_uds_serves_with_default_perms(serve, short_dir):
    path = short_dir / "b.sock"
    server = serve(APP, "--uds", str(path))
    assert server.wait_for_log(r"Listening on unix:" + str(path), 5) is not None, server.log
    response = uds_get(path, "/over-unix?a=b")
    assert response.status_code == 200
    assert response.json()["path"] == "/over-unix"
    assert response.json()["query_string"] == "a=b"
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o666


@pytest.mark.parametrize("perms,expected", [("600", 0o600), ("640", 0o640)])
def test_uds_perms(serve, short_dir, perms, expected):
    path = short_dir / "p.sock"
    serve(APP, "--uds", str(path), "--uds-perms", perms)
    assert stat.S_IMODE(os.stat(path).st_mode) == expected
    assert uds_get(path, "/perm").status_code == 200


def test_uds_replaces_stale_socket(serve, short_dir):
    path = short_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the socket file stays behind, nobody listens on it
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    serve(APP, "--uds", str(path))
    assert uds_get(path, "/fresh").json()["path"] == "/fresh"


def test_uds_does_not_delete_a_regular_file(short_dir):
    path = short_dir / "data.txt"
    path.write_text("precious")
    code, output = run_cli(APP, "--uds", str(path))
    assert code != 0
    line = one_error_line(output)
    assert str(path) in line
    assert path.read_text() == "precious"


# -- inherited file descriptor ------------------------------------------------------------------
def test_fd_serves_on_inherited_socket():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    server = betula(APP, "--fd", str(fd))
    try:
        server.start(pass_fds=(fd,))
        assert server.port == port, server.log
        scope = httpx.get(f"http://127.0.0.1:{port}/via-fd", timeout=10).json()
        assert scope["path"] == "/via-fd"
        assert scope["server"] == ["127.0.0.1", port]
    finally:
        code = server.stop()
        listener.close()
    assert code == 0, server.log


def test_fd_that_is_not_a_socket(tmp_path):
    path = tmp_path / "plain"
    path.write_text("x")
    with open(path) as fh:
        fd = fh.fileno()
        code, output = run_cli(APP, "--fd", str(fd), pass_fds=(fd,))
    assert code != 0
    line = one_error_line(output)
    assert str(fd) in line


# -- TLS ----------------------------------------------------------------------------------------
class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = directory / "server.pem"
        self.key = directory / "server.key"
        server_cert.cert_chain_pems[0].write_to_path(str(self.cert))
        for extra in server_cert.cert_chain_pems[1:]:
            extra.write_to_path(str(self.cert), append=True)
        server_cert.private_key_pem.write_to_path(str(self.key))
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        # the same key, encrypted with a password
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(server_cert.private_key_pem.bytes(), None)
        self.encrypted_key = directory / "server-encrypted.key"
        self.encrypted_key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret-pass")))
        self.client_cert = self.ca.issue_cert("client@example.org")
        self.other_ca = trustme.CA()
        self.foreign_client_cert = self.other_ca.issue_cert("intruder@example.org")

    def client_context(self, cert=None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        if cert is not None:
            cert.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def test_https(serve, certs):
    server = serve(APP, "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key))
    assert server.base_url.startswith("https://127.0.0.1:")
    with httpx.Client(verify=certs.client_context(), timeout=10) as client:
        response = client.get(server.base_url + "/secure?x=1")
    assert response.status_code == 200
    scope = response.json()
    assert scope["scheme"] == "https"
    assert scope["path"] == "/secure"
    # a client that does not trust the CA refuses the server's certificate
    with httpx.Client(verify=ssl.create_default_context(), timeout=10) as client, \
            pytest.raises(httpx.ConnectError):
        client.get(server.base_url + "/")


def test_https_port_does_not_speak_plain_http(serve, certs):
    server = serve(APP, "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key))
    with server.connect() as sock:
        sock.sendall(request("/"))
        data, closed = read_until_closed(sock)
    # cleartext is not a TLS handshake: the connection ends, with nothing or a TLS alert
    # record (content type 21), never an HTTP answer
    assert closed and (data == b"" or data[:1] == b"\x15"), data
    with httpx.Client(verify=certs.client_context(), timeout=10) as client:
        assert client.get(server.base_url + "/after").status_code == 200


def test_https_with_encrypted_key(serve, certs):
    server = serve(APP, "--ssl-certfile", str(certs.cert),
                   "--ssl-keyfile", str(certs.encrypted_key),
                   "--ssl-keyfile-password", "s3cret-pass")
    with httpx.Client(verify=certs.client_context(), timeout=10) as client:
        response = client.get(server.base_url + "/enc")
    assert response.status_code == 200 and response.json()["scheme"] == "https"


def test_encrypted_key_wrong_password(certs):
    code, output = run_cli(APP, "--port", "0", "--lifespan", "off",
                           "--ssl-certfile", str(certs.cert),
                           "--ssl-keyfile", str(certs.encrypted_key),
                           "--ssl-keyfile-password", "wrong")
    assert code != 0
    line = one_error_line(output)
    assert "key" in line.lower() or "password" in line.lower()


def mtls_server(serve, certs, reqs: str = "required"):
    # A keep-alive timeout past every hang guard: a connection the server accepted stays
    # open, so a close within the test is the refusal, never the idle timeout.
    return serve(APP, "--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key),
                 "--ssl-ca-certs", str(certs.ca_file), "--ssl-cert-reqs", reqs,
                 "--timeout-keep-alive", "60")


# How a refused client certificate shows: the alert OpenSSL sends for it (certificate required,
# TLS 1.3 / handshake failure, TLS 1.2; unknown CA), or, as the asyncio and uvloop TLS
# transports do today, the connection closed mid-TLS without the alert they drop (CPython
# gh-98078): an EOF in violation of the protocol. Never a timeout, a reset or HTTP bytes.
NO_CERT = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE",
           "UNEXPECTED_EOF_WHILE_READING"}
UNKNOWN_CA = {"TLSV1_ALERT_UNKNOWN_CA", "UNEXPECTED_EOF_WHILE_READING"}


def tls_refusal(server, ctx: ssl.SSLContext) -> ssl.SSLError:
    """Connect with ``ctx`` and wait for the server's first bytes (sending none: a request
    the server leaves unread could turn its close into a reset). The TLS layer must fail."""
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                 suppress_ragged_eofs=False) as tls:
                data = tls.recv(65536)  # TLS 1.3: the client's handshake ends before the check
        except ssl.SSLError as exc:
            return exc
    raise AssertionError(f"the server accepted the client: {data!r}")


def assert_serves(server, ctx: ssl.SSLContext, target: str) -> dict:
    with httpx.Client(verify=ctx, timeout=10) as client:
        response = client.get(server.base_url + target)
    assert response.status_code == 200
    scope = response.json()
    assert scope["scheme"] == "https" and scope["path"] == target
    return scope


def test_mutual_tls_client_with_cert_gets_through(serve, certs):
    server = mtls_server(serve, certs)
    assert_serves(server, certs.client_context(certs.client_cert), "/mtls")


def test_mutual_tls_client_without_cert_refused(serve, certs):
    server = mtls_server(serve, certs)
    refusal = tls_refusal(server, certs.client_context())
    assert refusal.reason in NO_CERT, repr(refusal)
    # the server survives the failed handshake and still serves a proper client
    assert_serves(server, certs.client_context(certs.client_cert), "/after")


def test_mutual_tls_client_cert_from_other_ca_refused(serve, certs):
    server = mtls_server(serve, certs)
    refusal = tls_refusal(server, certs.client_context(certs.foreign_client_cert))
    assert refusal.reason in UNKNOWN_CA, repr(refusal)
    assert_serves(server, certs.client_context(certs.client_cert), "/after")


def test_optional_client_cert(serve, certs):
    server = mtls_server(serve, certs, "optional")
    assert_serves(server, certs.client_context(), "/without")  # no certificate: welcome
    assert_serves(server, certs.client_context(certs.client_cert), "/with")
    # a certificate that is presented is verified all the same
    refusal = tls_refusal(server, certs.client_context(certs.foreign_client_cert))
    assert refusal.reason in UNKNOWN_CA, repr(refusal)
    assert_serves(server, certs.client_context(), "/after")


# -- TCP_NODELAY ----------------------------------------------------------------------------------
@pytest.mark.parametrize("listener", ["ipv4", "ipv6", "tls"])
def test_accepted_connections_have_tcp_nodelay(serve, certs, listener):
    # The README lists TCP_NODELAY: read it on the server's own socket for the connection.
    if listener == "ipv6":
        need.ipv6()
    args = {"ipv4": ["--host", "127.0.0.1"], "ipv6": ["--host", "::1"],
            "tls": ["--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key)]}
    server = serve(APP, *args[listener])
    sock = server.connect()
    if listener == "tls":
        sock = certs.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(request("/nodelay"))
        assert read_response(sock)[0] == 200  # the connection is the server's now
        with server_end(server.proc.pid, sock) as theirs:
            assert theirs.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def bad_tls_args(certs, missing: Path, which: str) -> list[str]:
    files = {"certfile": str(certs.cert), "keyfile": str(certs.key), "ca-certs": None}
    files[which] = str(missing)
    args = ["--port", "0", "--ssl-certfile", files["certfile"], "--ssl-keyfile", files["keyfile"]]
    if files["ca-certs"]:
        args += ["--ssl-ca-certs", files["ca-certs"], "--ssl-cert-reqs", "required"]
    return args


WHICH = ["certfile", "keyfile", "ca-certs"]


@pytest.mark.parametrize("which", WHICH)
def test_bad_tls_path_is_a_clear_error(certs, tmp_path, which):
    missing = tmp_path / f"missing-{which}.pem"
    code, output = run_cli(APP, "--lifespan", "off", *bad_tls_args(certs, missing, which))
    assert code != 0
    line = one_error_line(output)
    assert "tls" in line.lower() or "ssl" in line.lower() or "cert" in line.lower(), line


@pytest.mark.parametrize("which", WHICH)
def test_bad_tls_path_with_lifespan_app_is_one_line(certs, tmp_path, which):
    missing = tmp_path / f"missing-{which}.pem"
    code, output = run_cli(APP, *bad_tls_args(certs, missing, which))
    assert code != 0
    one_error_line(output)


@pytest.mark.parametrize("which", WHICH)
def test_bad_tls_path_error_names_the_file(certs, tmp_path, which):
    missing = tmp_path / f"missing-{which}.pem"
    code, output = run_cli(APP, "--lifespan", "off", *bad_tls_args(certs, missing, which))
    assert code != 0
    assert str(missing) in one_error_line(output)
