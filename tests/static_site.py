"""The folder ``tests/test_static*.py`` serve with ``--static``, and the clients they read it
with: raw HTTP/1.1 sockets (the exact target as given: no client normalises ``..``) and
raw HTTP/2 streams (``tests/support/h2client.py``)."""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import wire
from tests.support.h2client import H2Client
from tests.support.server import ServerProcess

ASGI = "tests.apps.static_apps:app"
WSGI = "tests.apps.static_apps:wsgi"
APPS = {"asgi": ASGI, "wsgi": WSGI}
SECRET = b"TOP SECRET outside the folder"


@dataclass
class Site:
    """A folder to serve (``root``) and one beside it that must never be served."""

    root: Path
    outside: Path
    big: bytes = b""

    def file(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def etag(self, name: str) -> str:
        st = os.stat(self.root / name)
        return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


@contextmanager
def static_server(site: Site) -> Iterator[ServerProcess]:
    """The ASGI app with /assets served from ``site``; no traceback in its log at the end."""
    server = ServerProcess([ASGI, "--static", f"/assets={site.root}", "--port", "0",
                            "--timeout-graceful-shutdown", "2"]).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


def build_site(base: Path) -> Site:
    root, outside = base / "public", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "style.css").write_bytes(b"body { color: red }\n")
    (root / "app.js").write_bytes(b"console.log(1)\n")
    (root / "data.json").write_bytes(b'{"a": 1}')
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "README").write_bytes(b"no extension\n")
    (root / "archive.tar.gz").write_bytes(gzip.compress(b"tar bytes"))
    (root / "empty.txt").write_bytes(b"")
    (root / "ranged.txt").write_bytes(b"".join(b"%04d" % i for i in range(500)))  # 2000 B
    big = os.urandom(3 * 1024 * 1024 + 12345)
    (root / "big.bin").write_bytes(big)
    # Precompressed siblings (their bytes tell which one was sent).
    (root / "pre.js").write_bytes(b"plain javascript\n" * 10)
    (root / "pre.js.br").write_bytes(b"BROTLI BYTES")
    (root / "pre.js.gz").write_bytes(gzip.compress(b"plain javascript\n" * 10))
    (root / "gz.css").write_bytes(b"only gzip next to me\n")
    (root / "gz.css.gz").write_bytes(gzip.compress(b"only gzip next to me\n"))
    (root / "esc.js").write_bytes(b"sibling escapes\n")
    os.symlink(outside / "secret.txt", root / "esc.js.br")  # a sibling pointing out
    # Directories, dotfiles, links.
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (root / "sub" / "page.html").write_bytes(b"<p>page</p>\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "file.txt").write_bytes(b"file in noindex\n")
    (root / ".secret").write_bytes(b"dotfile\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "acme.txt").write_bytes(b"acme token\n")
    (root / "space name.txt").write_bytes(b"spaced\n")
    (root / "caf\u00e9.txt").write_bytes(b"accented\n")
    os.symlink("style.css", root / "link-in")
    os.symlink("sub", root / "linkdir-in")
    os.symlink(outside / "secret.txt", root / "link-out")
    os.symlink(outside, root / "linkdir-out")
    os.symlink("../outside/secret.txt", root / "link-relative-out")
    os.symlink("loop", root / "loop")
    os.mkfifo(root / "fifo")
    return Site(root, outside, big)


# -- clients ---------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    fields: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def field_values(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]


def fetch(srv, target: str, method: str = "GET", headers: tuple[str, ...] = (),
          body: bytes = b"", timeout: float = 20.0) -> Reply:
    """One request on its own connection, the target exactly as given (``Connection:
    close``): the whole answer is what arrives before the close, so a body that should
    not be there (HEAD, 304) cannot hide."""
    lines = [f"Host: 127.0.0.1:{srv.port}", "Connection: close", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with srv.connect(timeout) as sock:
        sock.sendall(wire.request(target, method, tuple(lines), body))
        data, closed = wire.read_until_closed(sock, timeout)
    assert closed, f"the server did not close after {target!r}: {data[:300]!r}"
    status_line, fields, rest = wire.split_head(data)
    reply = Reply(int(status_line.split(b" ")[1]), dict(fields), fields, rest)
    if "content-length" in reply.headers and method != "HEAD" and reply.status != 304:
        assert len(rest) == int(reply.headers["content-length"]), (target, reply.headers)
    return reply


def keep_alive(sock: socket.socket, target: str, method: str = "GET",
               headers: tuple[str, ...] = (), body: bytes = b"") -> Reply:
    """One request on a kept-alive connection; its answer framed by its Content-Length."""
    lines = ["Host: test", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(wire.request(target, method, tuple(lines), body))
    status, fields, rest = wire.read_head(sock)
    length = int(dict(fields).get("content-length", "0"))
    if method == "HEAD" or status == 304:
        length = 0
    data = rest
    while len(data) < length:
        more = sock.recv(65536)
        assert more, "closed mid-body"
        data += more
    assert len(data) == length, f"bytes past the body of {target}: {data[length:length + 80]!r}"
    return Reply(status, dict(fields), fields, data)


def h2_fetch(srv, target: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = ()
             ) -> Reply:
    """One request on an HTTP/2 connection (prior knowledge), ``:path`` exactly as given."""
    with H2Client(srv.host, srv.port) as client:
        sid = client.request(method, target, headers)
        result = client.wait(sid, timeout=30)
    assert result.ended and result.reset is None, result
    fields = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in result.headers]
    return Reply(result.status, dict(fields), fields, result.body)
