"""--static PREFIX=DIRECTORY, black box: the real CLI, raw HTTP/1.1 sockets, raw HTTP/2
streams and httpx. Files are served by the server (the app behind, ASGI or WSGI, counts its
requests: it is never called for a static path), with their validators (304), one byte
range (206/416), precompressed siblings, index files and redirects; the startup refuses bad
settings in one line. The path-escape cases are in test_static_paths.py; the decisions on
their own (static.py's functions) are at the end."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
from email.utils import formatdate
from urllib.parse import quote

import httpx
import pytest

from betula.static import (
    UNSATISFIABLE,
    byte_range,
    choose_encoding,
    content_type,
    parse_static_dirs,
    static_problem,
)
from tests.static_site import (
    APPS,
    ASGI,
    WSGI,
    build_site,
    fetch,
    h2_fetch,
    keep_alive,
    static_server,
)
from tests.support.server import one_error_line, run_cli
from tests.support.syscalls import assert_sent_by_sendfile, traced_server, write_stall_file
from tests.support.wire import read_response, read_until_closed, request

ETAG = re.compile(r'^"[0-9a-f]+-[0-9a-f]+"$')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def srv(site):
    """An ASGI app with /assets served from the site (most tests read this one)."""
    with static_server(site) as server:
        yield server


# -- served, the app never called ------------------------------------------------------------
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_files_are_served_and_the_app_is_not_called(serve, site, kind, http2):
    server = serve(APPS[kind], "--static", f"/assets={site.root}")
    with httpx.Client(http1=not http2, http2=http2, timeout=30) as client:
        for name in ("style.css", "index.html", "big.bin", "sub/page.html"):
            response = client.get(f"{server.base_url}/assets/{name}")
            assert response.status_code == 200, name
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert response.content == site.file(name), name
        assert client.get(f"{server.base_url}/assets/missing.txt").status_code == 404
        assert client.head(f"{server.base_url}/assets/big.bin").status_code == 200
        assert client.get(f"{server.base_url}/calls").text == "0"  # never for /assets
        # Everything else is the app's, mounted or not.
        assert client.get(f"{server.base_url}/other").text == "app /other"
        assert client.get(f"{server.base_url}/assetsx").text == "app /assetsx"
        assert client.get(f"{server.base_url}/calls").text == "2"


def test_the_fields_of_a_file(srv, site):
    reply = fetch(srv, "/assets/style.css")
    st = os.stat(site.root / "style.css")
    assert reply.status == 200 and reply.body == site.file("style.css")
    assert reply.headers["content-type"] == "text/css; charset=utf-8"
    assert reply.headers["content-length"] == str(st.st_size)
    assert reply.headers["etag"] == site.etag("style.css")
    assert ETAG.match(reply.headers["etag"])
    assert reply.headers["last-modified"] == formatdate(int(st.st_mtime), usegmt=True)
    assert reply.headers["accept-ranges"] == "bytes"
    assert "vary" not in reply.headers  # no precompressed sibling
    assert "content-encoding" not in reply.headers


@pytest.mark.parametrize("name,kind", [
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json"),
    ("logo.png", "image/png"),
    ("README", "application/octet-stream"),
    ("archive.tar.gz", "application/gzip"),  # a .gz asked for as itself: not decoded
    ("empty.txt", "text/plain; charset=utf-8"),
])
def test_content_type_by_extension(srv, site, name, kind):
    reply = fetch(srv, "/assets/" + name)
    assert reply.status == 200 and reply.body == site.file(name)
    assert reply.headers["content-type"] == kind
    assert "content-encoding" not in reply.headers


def test_a_large_file_arrives_whole_through_sendfile(site, tmp_path):
    """The file leaves by sendfile(2) (strace sees the calls), over one kept-alive
    connection twice, whole and as a range."""
    args = ["tests.apps.asgi_apps:app", "--static", f"/assets={site.root}", "--port", "0"]
    with traced_server(args, lambda path: "/pathsend?path=" + quote(path)) as traced:
        with traced.connect() as sock:
            port = sock.getsockname()[1]
            sock.sendall(request("/assets/big.bin"))
            status, headers, _, body = read_response(sock, timeout=30)
            assert status == 200 and body == site.big
            sock.sendall(request("/assets/big.bin", headers=("Host: x", "Range: bytes=1000-")))
            status, headers, _, body = read_response(sock, timeout=30)
            assert status == 206 and body == site.big[1000:]
        assert_sent_by_sendfile(traced.sendfiles_on(port), site.root / "big.bin",
                                [(0, len(site.big)), (1000, len(site.big) - 1000)])


def test_head_has_the_fields_and_no_body(srv, site):
    for name in ("style.css", "big.bin"):
        get, head = fetch(srv, "/assets/" + name), fetch(srv, "/assets/" + name, "HEAD")
        assert head.status == 200 and head.body == b""  # nothing before the close
        assert head.headers["content-length"] == str(len(site.file(name)))
        for key in ("content-type", "etag", "last-modified", "accept-ranges"):
            assert head.headers[key] == get.headers[key]
        h2 = h2_fetch(srv, "/assets/" + name, "HEAD")
        assert h2.status == 200 and h2.body == b""
        assert h2.headers["content-length"] == str(len(site.file(name)))


def test_one_connection_serves_answers_of_every_kind(srv, site):
    """Keep-alive: each answer's framing is exact, so the next one reads right."""
    etag = site.etag("style.css")
    with srv.connect() as sock:
        for _ in range(2):
            assert keep_alive(sock, "/assets/style.css").body == site.file("style.css")
            assert keep_alive(sock, "/assets/nope").status == 404
            assert keep_alive(sock, "/assets/style.css",
                              headers=(f"If-None-Match: {etag}",)).status == 304
            assert keep_alive(sock, "/assets/big.bin", "HEAD").body == b""
            assert keep_alive(sock, "/assets/ranged.txt",
                              headers=("Range: bytes=4-7",)).body == b"0001"
            assert keep_alive(sock, "/assets/big.bin",
                              headers=("Range: bytes=-100",)).body == site.big[-100:]
            reply = keep_alive(sock, "/assets/style.css", "POST", body=b"x" * 5000)
            assert reply.status == 405  # its body was read past: the next request reads
            assert keep_alive(sock, "/assets/index.html", body=b"a body with GET").status == 200
            assert keep_alive(sock, "/other").body == b"app /other"


def test_not_found_and_methods(srv):
    reply = fetch(srv, "/assets/missing.txt")
    assert reply.status == 404 and reply.body == b"404 Not Found\n"
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        reply = fetch(srv, "/assets/style.css", method, body=b"data")
        assert reply.status == 405, method
        assert reply.headers["allow"] == "GET, HEAD"
    assert h2_fetch(srv, "/assets/style.css", "DELETE").status == 405


def test_a_websocket_upgrade_to_a_static_path_is_answered_as_http(srv, site):
    reply = fetch(srv, "/assets/style.css", headers=(
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
    assert reply.status == 200 and reply.body == site.file("style.css")


def test_a_client_leaving_mid_download_harms_nothing(srv, site):
    start = len(srv.lines)
    for _ in range(3):
        with socket.create_connection((srv.host, srv.port)) as sock:
            sock.sendall(request("/assets/big.bin"))
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    assert fetch(srv, "/assets/big.bin").body == site.big
    assert h2_fetch(srv, "/assets/big.bin").body == site.big
    assert "Traceback" not in "\n".join(srv.lines[start:])


def test_a_download_in_flight_completes_in_a_graceful_stop(serve, tmp_path):
    """A file larger than the connection's buffers can hold (syscalls.stall_size): when the
    stop comes the server is still sending it, and it goes on to the end."""
    path, data = write_stall_file(tmp_path)
    server = serve(ASGI, "--static", f"/s={tmp_path}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connect
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        sock.sendall(request("/s/" + path.name))
        first = sock.recv(1024)
        assert first.startswith(b"HTTP/1.1 200")
        server.send_signal(signal.SIGTERM)
        assert server.wait_for_log("shutting down", 10)
        rest, closed = read_until_closed(sock, 60)
    body = (first + rest).partition(b"\r\n\r\n")[2]
    assert closed and len(body) == len(data) and body == data  # then the connection closed
    assert server.wait_exit() == 0


def test_the_access_log_has_static_answers(srv):
    start = len(srv.lines)
    fetch(srv, "/assets/style.css?v=3")
    fetch(srv, "/assets/missing")
    h2_fetch(srv, "/assets/ranged.txt", headers=(("range", "bytes=0-9"),))
    assert srv.wait_for_log(r'"GET /assets/ranged.txt HTTP/2" 206 10 ', 5), srv.log[-2000:]
    lines = "\n".join(srv.lines[start:])
    assert re.search(r'"GET /assets/style.css\?v=3 HTTP/1.1" 200 20 ', lines), lines
    assert re.search(r'"GET /assets/missing HTTP/1.1" 404 14 ', lines), lines


# -- conditional requests ------------------------------------------------------------------------
@pytest.mark.parametrize("headers,status", [
    (("If-None-Match: {etag}",), 304),
    (("If-None-Match: W/{etag}",), 304),  # weak comparison
    (('If-None-Match: "other", {etag}',), 304),  # a list
    (("If-None-Match: *",), 304),
    (('If-None-Match: "other"',), 200),
    (("If-Modified-Since: {lm}",), 304),
    (("If-Modified-Since: Thu, 01 Jan 2015 00:00:00 GMT",), 200),
    (("If-Modified-Since: not a date",), 200),
    (('If-None-Match: "other"', "If-Modified-Since: {lm}"), 200),  # If-None-Match wins
    (("If-Match: {etag}",), 200),
    (('If-Match: "other"',), 412),
    (("If-Match: W/{etag}",), 412),  # If-Match compares strongly
    (("If-Unmodified-Since: Thu, 01 Jan 2015 00:00:00 GMT",), 412),
    (("If-Unmodified-Since: {lm}",), 200),
])
def test_preconditions(srv, site, headers, status):
    first = fetch(srv, "/assets/style.css")
    etag, lm = first.headers["etag"], first.headers["last-modified"]
    given = tuple(h.format(etag=etag, lm=lm) for h in headers)
    reply = fetch(srv, "/assets/style.css", headers=given)
    assert reply.status == status, given
    if status == 304:
        assert reply.body == b""  # nothing before the close
        assert reply.headers["etag"] == etag and reply.headers["last-modified"] == lm
        fields = tuple((name.lower(), value) for name, value in (h.split(": ", 1) for h in given))
        assert h2_fetch(srv, "/assets/style.css", headers=fields).status == 304
        assert fetch(srv, "/assets/style.css", "HEAD", headers=given).status == 304
    elif status == 200:
        assert reply.body == site.file("style.css")


def test_a_changed_file_has_a_new_etag(serve, tmp_path):
    folder = tmp_path / "pub"
    folder.mkdir()
    (folder / "f.txt").write_bytes(b"one")
    server = serve(ASGI, "--static", f"/s={folder}")
    etag = fetch(server, "/s/f.txt").headers["etag"]
    (folder / "f.txt").write_bytes(b"two!")
    reply = fetch(server, "/s/f.txt", headers=(f"If-None-Match: {etag}",))
    assert reply.status == 200 and reply.body == b"two!" and reply.headers["etag"] != etag


# -- ranges --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-9", 0, 9), ("bytes=10-", 10, 1999), ("bytes=-5", 1995, 1999),
    ("bytes=1990-5000", 1990, 1999), ("bytes=-5000", 0, 1999), ("BYTES = 3 - 3", 3, 3),
])
def test_one_range_is_206(srv, site, spec, first, last):
    data = site.file("ranged.txt")
    for reply in (fetch(srv, "/assets/ranged.txt", headers=(f"Range: {spec}",)),
                  h2_fetch(srv, "/assets/ranged.txt", headers=(("range", spec),))):
        assert reply.status == 206, spec
        assert reply.headers["content-range"] == f"bytes {first}-{last}/2000"
        assert reply.headers["content-length"] == str(last - first + 1)
        assert reply.body == data[first:last + 1]


def test_a_range_of_a_large_file(srv, site):
    spec = "bytes=1000000-2999999"
    for reply in (fetch(srv, "/assets/big.bin", headers=(f"Range: {spec}",)),
                  h2_fetch(srv, "/assets/big.bin", headers=(("range", spec),))):
        assert reply.status == 206
        assert reply.headers["content-range"] == f"bytes 1000000-2999999/{len(site.big)}"
        assert reply.body == site.big[1000000:3000000]


@pytest.mark.parametrize("spec", ["bytes=2000-", "bytes=5000-6000", "bytes=-0"])
def test_an_unsatisfiable_range_is_416(srv, spec):
    reply = fetch(srv, "/assets/ranged.txt", headers=(f"Range: {spec}",))
    assert reply.status == 416
    assert reply.headers["content-range"] == "bytes */2000"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-",
                                  "bytes=-"])
def test_ranges_not_served_as_one_give_the_whole_file(srv, site, spec):
    reply = fetch(srv, "/assets/ranged.txt", headers=(f"Range: {spec}",))
    assert reply.status == 200 and reply.body == site.file("ranged.txt")


def test_range_edges(srv, site):
    # An empty file: the whole (empty) file, whatever the range.
    reply = fetch(srv, "/assets/empty.txt", headers=("Range: bytes=0-",))
    assert reply.status == 200 and reply.body == b""
    # HEAD ignores Range; a 304 comes before the range.
    reply = fetch(srv, "/assets/ranged.txt", "HEAD", headers=("Range: bytes=0-9",))
    assert reply.status == 200 and reply.headers["content-length"] == "2000"
    etag = site.etag("ranged.txt")
    reply = fetch(srv, "/assets/ranged.txt", headers=("Range: bytes=0-9",
                                                      f"If-None-Match: {etag}"))
    assert reply.status == 304


@pytest.mark.parametrize("if_range,status", [
    ("{etag}", 206), ('"stale"', 200), ("W/{etag}", 200), ("{lm}", 206),
    ("Thu, 01 Jan 2015 00:00:00 GMT", 200),
])
def test_if_range(srv, site, if_range, status):
    first = fetch(srv, "/assets/ranged.txt")
    value = if_range.format(etag=first.headers["etag"], lm=first.headers["last-modified"])
    reply = fetch(srv, "/assets/ranged.txt", headers=("Range: bytes=0-3", f"If-Range: {value}"))
    assert reply.status == status
    assert reply.body == (b"0000" if status == 206 else site.file("ranged.txt"))


# -- precompressed siblings ------------------------------------------------------------------
@pytest.mark.parametrize("accept,coding", [
    ("br, gzip", "br"), ("gzip, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"),
    ("gzip;q=1, br;q=0.5", "gzip"), ("*", "br"), ("deflate", None), ("identity", None),
    (None, None), ("br;q=0, gzip;q=0", None), ("*, br;q=0", "gzip"),
])
def test_precompressed_selection(srv, site, accept, coding):
    headers = (f"Accept-Encoding: {accept}",) if accept is not None else ()
    reply = fetch(srv, "/assets/pre.js", headers=headers)
    assert reply.status == 200
    assert reply.headers["vary"] == "Accept-Encoding"  # every answer: a sibling exists
    assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
    if coding is None:
        assert "content-encoding" not in reply.headers
        assert reply.body == site.file("pre.js")
        assert reply.headers["etag"] == site.etag("pre.js")
    else:
        suffix = {"br": ".br", "gzip": ".gz"}[coding]
        assert reply.headers["content-encoding"] == coding
        assert reply.body == site.file("pre.js" + suffix)
        assert reply.headers["etag"] == site.etag("pre.js" + suffix)[:-1] + suffix.replace(
            ".", "-") + '"'
    h2 = h2_fetch(srv, "/assets/pre.js", headers=(("accept-encoding", accept),) if accept
                  else ())
    assert h2.headers.get("content-encoding") == coding and h2.body == reply.body


def test_precompressed_details(srv, site):
    # Only a .gz next to it: br is not on offer.
    reply = fetch(srv, "/assets/gz.css", headers=("Accept-Encoding: br, gzip",))
    assert reply.headers["content-encoding"] == "gzip"
    assert gzip.decompress(reply.body) == site.file("gz.css")
    # A 304 for the encoded body keeps Vary; its ETag is not the plain file's.
    etag = reply.headers["etag"]
    assert etag != site.etag("gz.css")
    again = fetch(srv, "/assets/gz.css", headers=("Accept-Encoding: gzip",
                                                  f"If-None-Match: {etag}"))
    assert again.status == 304 and again.headers["vary"] == "Accept-Encoding"
    plain = fetch(srv, "/assets/gz.css", headers=(f"If-None-Match: {etag}",))
    assert plain.status == 200 and plain.body == site.file("gz.css")
    # A range request gets the plain file (ranges never apply to an encoded body).
    ranged = fetch(srv, "/assets/pre.js", headers=("Accept-Encoding: br", "Range: bytes=0-4"))
    assert ranged.status == 206 and ranged.body == b"plain"
    assert "content-encoding" not in ranged.headers and ranged.headers["vary"]
    # HEAD tells the encoded body's length.
    head = fetch(srv, "/assets/pre.js", "HEAD", headers=("Accept-Encoding: br",))
    assert head.headers["content-length"] == str(len(site.file("pre.js.br")))
    # A sibling that is a symlink out of the folder is not offered.
    reply = fetch(srv, "/assets/esc.js", headers=("Accept-Encoding: br",))
    assert reply.body == site.file("esc.js") and "content-encoding" not in reply.headers
    assert "vary" not in reply.headers


# -- directories -----------------------------------------------------------------------------
def test_directories(srv, site):
    assert fetch(srv, "/assets/").body == site.file("index.html")
    assert fetch(srv, "/assets/sub/").body == site.file("sub/index.html")
    assert fetch(srv, "/assets/linkdir-in/").body == site.file("sub/index.html")
    for target, location in [("/assets", "/assets/"), ("/assets/sub", "/assets/sub/"),
                             ("/assets/sub?x=1&y=%20", "/assets/sub/?x=1&y=%20"),
                             ("/assets/noindex", "/assets/noindex/")]:
        reply = fetch(srv, target)
        assert reply.status == 301, target
        assert reply.headers["location"] == location
        assert h2_fetch(srv, target).headers["location"] == location
    assert fetch(srv, "/assets/noindex/").status == 404  # no index, no listing
    assert fetch(srv, "/assets/noindex/file.txt").status == 200
    assert fetch(srv, "/assets/style.css/").status == 404  # a file is not a directory
    # Empty and "." segments are dropped.
    assert fetch(srv, "/assets//sub/./page.html").body == site.file("sub/page.html")


def test_redirects_keep_the_root_path_and_encode_names(serve, site, tmp_path):
    folder = tmp_path / "pub"
    (folder / "a b").mkdir(parents=True)
    server = serve(ASGI, "--static", f"/s={folder}", "--root-path", "/base")
    assert fetch(server, "/s/a%20b").headers["location"] == "/base/s/a%20b/"
    assert fetch(server, "/s").headers["location"] == "/base/s/"


def test_encoded_names(srv, site):
    assert fetch(srv, "/assets/space%20name.txt").body == b"spaced\n"
    assert fetch(srv, "/assets/caf%C3%A9.txt").body == b"accented\n"


# -- prefixes, with mounts ---------------------------------------------------------------------
def test_the_longest_of_static_and_mount_prefixes_wins(serve, site):
    server = serve("--mount", f"/assets/api={ASGI}", "--mount", f"/app={WSGI}",
                   "--static", f"/assets={site.root}", "--static", f"/app/files={site.root}",
                   "--static", f"/={site.root / 'sub'}")
    assert fetch(server, "/assets/style.css").body == site.file("style.css")
    assert fetch(server, "/assets/api/x").body == b"app /assets/api/x"
    assert fetch(server, "/app/x").body == b"app /app/x"
    assert fetch(server, "/app/files/style.css").body == site.file("style.css")
    assert fetch(server, "/app/filesx").body == b"app /app/filesx"
    assert fetch(server, "/").body == site.file("sub/index.html")  # static at the root
    assert fetch(server, "/page.html").body == site.file("sub/page.html")
    assert fetch(server, "/nothing").status == 404
    # Prefixes match the decoded path (as for mounts); a static path refuses an encoded "/".
    assert fetch(server, "/assets%2Fapi/x").body == b"app /assets/api/x"
    assert fetch(server, "/assets%2Fstyle.css").status == 400


def test_no_static_keeps_the_routers_fast_path():
    """Without --static the protocols get the app's own exchange factory (no matching)."""
    from betula.endpoint import Endpoint
    from betula.routing import Router
    from betula.worker_state import WorkerState

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    plain = Router([Endpoint(app, "asgi", "app")], WorkerState(None, None))
    assert plain.http.func.__name__ == "HTTPCycle"
    routed = Router([Endpoint(app, "asgi", "app")], WorkerState(None, None),
                    static=[("/s", ".")])
    assert routed.http == routed._route_http


# -- worker modes ------------------------------------------------------------------------------
def test_with_a_master_and_two_workers(serve, site):
    server = serve(WSGI, "--workers", "2", "--static", f"/assets={site.root}")
    for _ in range(4):
        assert fetch(server, "/assets/big.bin").body == site.big
    assert h2_fetch(server, "/assets/pre.js", headers=(("accept-encoding", "br"),)).body == \
        site.file("pre.js.br")


def test_thread_mode(site):
    from tests.test_thread_mode import free_threaded_python, start

    server = start(free_threaded_python(), ASGI, "--static", f"/assets={site.root}")
    try:
        assert fetch(server, "/assets/big.bin").body == site.big
        assert h2_fetch(server, "/assets/style.css").body == site.file("style.css")
        assert fetch(server, "/assets/ranged.txt", headers=("Range: bytes=0-3",)).body == b"0000"
        assert fetch(server, "/calls").body == b"0"
    finally:
        server.stop()


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_subinterpreter_mode(site, app):
    from tests.test_subinterpreter_mode import start

    server = start(app, "--static", f"/assets={site.root}")
    try:
        assert fetch(server, "/assets/big.bin").body == site.big
        assert h2_fetch(server, "/assets/style.css").body == site.file("style.css")
        assert fetch(server, "/other").body == b"app /other"
    finally:
        server.stop()


# -- settings ------------------------------------------------------------------------------------
def refused(*args: str, env: dict[str, str] | None = None, cwd=None) -> str:
    code, out = run_cli(ASGI, *args, "--port", "0", env=env, cwd=cwd)
    assert code != 0, out
    return one_error_line(out)


def test_startup_refuses_bad_static_settings(site, tmp_path):
    assert "must start with '/'" in refused("--static", f"assets={site.root}")
    assert "must not end with '/'" in refused("--static", f"/assets/={site.root}")
    assert "expected PREFIX=DIRECTORY" in refused("--static", "/assets")
    assert "given twice" in refused("--static", f"/a={site.root}", "--static", f"/a={site.root}")
    line = refused("--static", f"/a={tmp_path / 'missing'}")
    assert "does not exist" in line and "missing" in line
    line = refused("--static", f"/a={site.root / 'style.css'}")
    assert "is not a directory" in line
    assert "same prefix" in refused("--mount", f"/a={WSGI}", "--static", f"/a={site.root}")
    assert "claim the root" in refused("--static", f"/={site.root}")
    assert "does not exist" in refused(env={"BETULA_STATIC": f"/a={tmp_path / 'nope'}"})
    config = tmp_path / "betula.toml"
    config.write_text('static = ["/a=relative-missing"]\n')
    assert "does not exist" in refused("--config", str(config), cwd=tmp_path)


def test_env_toml_and_relative_directories(serve, site, tmp_path):
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "r.txt").write_bytes(b"relative\n")
    config = tmp_path / "betula.toml"
    config.write_text(f'[static]\n"/t" = "{site.root}"\n"/r" = "rel"\n')
    server = serve(ASGI, "--config", str(config), cwd=tmp_path)
    assert fetch(server, "/t/style.css").body == site.file("style.css")
    assert fetch(server, "/r/r.txt").body == b"relative\n"  # relative to the current directory
    server = serve(ASGI, env={"BETULA_STATIC": f"/e={site.root}, /f={site.root / 'sub'}"})
    assert fetch(server, "/e/style.css").body == site.file("style.css")
    assert fetch(server, "/f/page.html").body == site.file("sub/page.html")


def test_print_config_gives_a_config_file_with_the_same_folders(serve, site, tmp_path):
    code, out = run_cli(ASGI, "--static", f"/a={site.root}", "--print-config")
    assert code == 0, out
    assert f'static = [["/a", {json.dumps(str(site.root))}]]' in out
    config = tmp_path / "printed.toml"
    config.write_text("\n".join(line for line in out.splitlines()
                                if line.startswith(("static", "app"))) + "\n")
    server = serve(ASGI, "--config", str(config))
    assert fetch(server, "/a/style.css").body == site.file("style.css")


# -- the decisions on their own ----------------------------------------------------------------
def test_byte_range():
    assert (byte_range(b"bytes=0-0", 10).first, byte_range(b"bytes=0-0", 10).last) == (0, 0)
    r = byte_range(b"bytes=-3", 10)
    assert (r.first, r.last) == (7, 9)
    r = byte_range(b"bytes=8-100", 10)
    assert (r.first, r.last) == (8, 9)
    assert byte_range(b"bytes=10-", 10) is UNSATISFIABLE
    assert byte_range(b"bytes=-0", 10) is UNSATISFIABLE
    for ignored in (b"bytes=1-2,4-5", b"bytes=5-1", b"chars=0-1", b"bytes=", b"bytes=-"):
        assert byte_range(ignored, 10) is None, ignored
    assert byte_range(b"bytes=0-1", 0) is None


def test_choose_encoding():
    both = [0, 1]
    assert choose_encoding(b"gzip, deflate, br", both) == 0
    assert choose_encoding(b"gzip, deflate, br", [1]) == 1
    assert choose_encoding(b"br;q=0.1, gzip;q=0.2", both) == 1
    assert choose_encoding(b"br;q=bad, gzip", both) == 1
    assert choose_encoding(b"identity", both) == -1
    assert choose_encoding(None, both) == -1
    assert choose_encoding(b"br", []) == -1


def test_content_type_and_settings_parsing(tmp_path):
    assert content_type(b"/x/a.HTML") == b"text/html; charset=utf-8"
    assert content_type(b"/x.d/noext") == b"application/octet-stream"
    assert content_type(b"/x/a.svg") == b"image/svg+xml; charset=utf-8"
    assert content_type(b"/x/a.woff2") == b"font/woff2"
    assert parse_static_dirs({"/a": str(tmp_path)}) == (("/a", str(tmp_path)),)
    assert parse_static_dirs([["/a", str(tmp_path)]]) == (("/a", str(tmp_path)),)
    assert parse_static_dirs(f"/a={tmp_path},/b={tmp_path}")[1] == ("/b", str(tmp_path))
    with pytest.raises(ValueError):
        parse_static_dirs(["/a"])
    assert static_problem((("/s", "d"),), (("/m", "x:y"),), "app:app") is None
    assert static_problem((("/", "d"),), (("/m", "x:y"),), None) is None
    assert static_problem((("/", "d"),), (), "app:app") is not None
