"""--static never serves a path outside its folder: every way out a request target can try
(``..`` raw and percent-encoded, encoded slashes, backslashes, NUL, absolute paths,
symlinks out, dotfiles, FIFOs, files the server may not read), over raw HTTP/1.1 sockets
and raw HTTP/2 streams (clients normalise ``..`` away; these send the target as given)."""

from __future__ import annotations

import os
import sys

import pytest

from tests.static_site import ASGI, SECRET, build_site, fetch, h2_fetch, static_server
from tests.support import need
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("static-paths"))


@pytest.fixture(scope="module")
def srv(site):
    with static_server(site) as server:
        yield server


REFUSED = [  # 400: the path itself is refused
    "/assets/../outside/secret.txt",
    "/assets/sub/../../outside/secret.txt",
    "/assets/%2e%2e/outside/secret.txt",
    "/assets/%2E%2E/outside/secret.txt",
    "/assets/.%2e/outside/secret.txt",
    "/assets/%2e./outside/secret.txt",
    "/assets/..%2foutside%2fsecret.txt",
    "/assets/%2e%2e%2foutside%2fsecret.txt",
    "/assets%2f..%2foutside/secret.txt",  # the router matches /assets decoded
    "/assets/%2fetc%2fpasswd",
    "/assets/..%5coutside%5csecret.txt",
    "/assets/%5c..%5coutside%5csecret.txt",
    "/assets/style.css%00.png",
    "/assets/%00",
    "/assets/..",
    "/assets/sub/..",
]
NOT_FOUND = [  # 404: no such file inside the folder (or one that is never served)
    "/assets//etc/passwd",  # an absolute path is a path inside the folder
    "/assets///outside/secret.txt",
    "/assets/%252e%252e/outside/secret.txt",  # double encoding names a file "%2e%2e"
    "/assets/link-out",
    "/assets/link-relative-out",
    "/assets/linkdir-out/secret.txt",
    "/assets/linkdir-out/",
    "/assets/loop",
    "/assets/fifo",
    "/assets/.secret",
    "/assets/.git/config",
    "/assets/.git/",
    "/assets/...",
    "/assets/sub/.hidden",
    "/assets/" + "a" * 5000,  # a name too long for the file system
    "/assets/style.css/..%2e",
]


@pytest.mark.parametrize("target", REFUSED)
def test_escapes_are_refused(srv, target):
    reply = fetch(srv, target)
    assert reply.status == 400, (target, reply.status, reply.body)
    assert SECRET not in reply.body


@pytest.mark.parametrize("target", NOT_FOUND)
def test_outside_or_hidden_is_not_found(srv, target):
    reply = fetch(srv, target)
    assert reply.status == 404, (target, reply.status, reply.body)
    assert SECRET not in reply.body


@pytest.mark.parametrize("target", [
    "/assets/../outside/secret.txt", "/assets/%2e%2e/outside/secret.txt",
    "/assets/%2e%2e%2foutside%2fsecret.txt", "/assets/style.css%00", "/assets/link-out",
    "/assets/linkdir-out/secret.txt", "/assets//etc/passwd", "/assets/.secret",
])
def test_escapes_over_http2(srv, target):
    reply = h2_fetch(srv, target)
    assert reply.status in (400, 404), (target, reply.status)
    assert SECRET not in reply.body


def test_absolute_form_targets_are_checked_too(srv):
    for target in ("http://127.0.0.1/assets/../outside/secret.txt",
                   "http://127.0.0.1/assets/%2e%2e/outside/secret.txt"):
        reply = fetch(srv, target)
        assert reply.status == 400 and SECRET not in reply.body
    assert fetch(srv, "http://127.0.0.1/assets/style.css").status == 200


def test_a_raw_backslash_never_reaches_a_file(srv):
    reply = fetch(srv, "/assets/..\\outside\\secret.txt")
    assert reply.status == 400 and SECRET not in reply.body


def test_what_is_inside_is_served(srv, site):
    assert fetch(srv, "/assets/link-in").body == site.file("style.css")  # a link inside
    assert fetch(srv, "/assets/linkdir-in/page.html").body == site.file("sub/page.html")
    assert fetch(srv, "/assets/.well-known/acme.txt").body == b"acme token\n"  # RFC 8615
    assert fetch(srv, "/assets/sub/./page.html").body == site.file("sub/page.html")


def test_a_folder_at_the_root_redirects_only_inside(serve, tmp_path):
    """Redirect targets are built from the checked segments: "//evil.example" (a
    protocol-relative URL) cannot come out of one."""
    folder = tmp_path / "pub"
    (folder / "evil.example").mkdir(parents=True)
    server = serve("--mount", f"/api={ASGI}", "--static", f"/={folder}")
    for target in ("//evil.example", "///evil.example", "/.//evil.example"):
        reply = fetch(server, target)
        assert reply.status == 301 and reply.headers["location"] == "/evil.example/", target
    assert fetch(server, "/%2fevil.example").status == 400


def test_a_file_the_server_may_not_read_is_403(tmp_path):
    """A file with mode 000 (the server is run without CAP_DAC_OVERRIDE when the tests run
    as root, so that the mode holds)."""
    folder = tmp_path / "pub"
    folder.mkdir()
    (folder / "locked.txt").write_bytes(b"locked")
    (folder / "locked.txt").chmod(0)
    (folder / "open.txt").write_bytes(b"open")
    command = [sys.executable, "-m", "betula"]
    if os.geteuid() == 0:
        setpriv = need.program("setpriv", "apt-get install util-linux")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    server = ServerProcess([ASGI, "--static", f"/s={folder}", "--port", "0"],
                           command=command).start()
    try:
        reply = fetch(server, "/s/locked.txt")
        assert reply.status == 403 and reply.body == b"403 Forbidden\n"
        assert fetch(server, "/s/open.txt").body == b"open"
        assert h2_fetch(server, "/s/locked.txt").status == 403
    finally:
        server.stop()
    assert "Traceback" not in server.log
