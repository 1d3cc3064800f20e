"""Per-request bookkeeping, seen from outside.

Request targets are split and decoded once and then remembered (a bounded cache per
interface): every request must still see exactly its own target, whether it repeats an
earlier one, comes after the cache was emptied for being full, or is too long to keep.
And a finished request must be freed by reference counting, not left in a cycle."""

from __future__ import annotations

import pytest

from .conftest import read_response

# More distinct targets than the cache keeps (betula.http_common.TARGET_CACHE_MAX), so it
# fills, empties and fills again during the test.
DISTINCT = 1100


def _targets() -> list[tuple[str, str, str, str]]:
    """(target as sent, decoded path, raw path, query)."""
    out = []
    for i in range(DISTINCT):
        out.append((f"/t/{i}?n={i}", f"/t/{i}", f"/t/{i}", f"n={i}"))
        if i % 97 == 0:  # earlier targets again, after others pushed them out
            out.append(("/caf%C3%A9/x%20y?q=%20", "/café/x y", "/caf%C3%A9/x%20y", "q=%20"))
            out.append(("/", "/", "/", ""))
    long_path = "/long/" + "a" * 400  # longer than any kept target
    out.append((long_path + "?z=1", long_path, long_path, "z=1"))
    out.append((long_path + "?z=1", long_path, long_path, "z=1"))
    return out


def _ask(sock, target: str) -> bytes:
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode("latin-1"))
    status, _, _, body = read_response(sock)
    assert status == 200, (target, status, body)
    return body


@pytest.mark.parametrize("root_path", ["", "/pre"])
def test_asgi_sees_each_target_through_the_cache(serve, root_path):
    args = ["tests.apps.target_apps:asgi", "--lifespan", "off"]
    if root_path:
        args += ["--root-path", root_path]
    srv = serve(*args)
    with srv.connect() as sock:
        for target, path, raw_path, query in _targets():
            assert _ask(sock, target) == "|".join(
                [root_path, root_path + path, root_path + raw_path, query]).encode(), target


def test_wsgi_sees_each_target_through_the_cache(serve):
    srv = serve("tests.apps.target_apps:wsgi", "--interface", "wsgi")
    with srv.connect() as sock:
        for target, path, _raw_path, query in _targets():
            # PEP 3333: PATH_INFO is the decoded path carried as latin-1.
            path_info = path.encode("utf-8").decode("latin-1")
            assert _ask(sock, target) == "|".join(
                ["", path_info, query, target]).encode("latin-1"), target


def test_mounts_see_each_target_through_the_cache(serve):
    srv = serve("--mount", "/a=tests.apps.target_apps:asgi",
                "--mount", "/w=tests.apps.target_apps:wsgi", "--lifespan", "off")
    with srv.connect() as sock:
        for i in range(DISTINCT // 4):
            assert _ask(sock, f"/a/x/{i}?i={i}") == f"/a|/a/x/{i}|/a/x/{i}|i={i}".encode()
            assert _ask(sock, f"/w/x/{i}?i={i}") == f"/w|/x/{i}|i={i}|/w/x/{i}?i={i}".encode()


# Requests must be freed by reference counting: a cycle between a request's objects leaves
# each request to the garbage collector, whose runs cost more than the rest of a small
# request (and hold the GIL while the WSGI threads wait).
@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_requests_leave_no_reference_cycles(serve, interface):
    srv = serve(f"tests.apps.gc_apps:{interface}", "--interface", interface,
                "--lifespan", "off")
    with srv.connect() as sock:
        _ask(sock, "/count")  # what startup left behind
        for i in range(50):
            _ask(sock, f"/r/{i}")
            body = b"x" * (i + 1)
            sock.sendall(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                         % (len(body), body))
            assert read_response(sock)[3] == body
        assert _ask(sock, "/count") == b"WSGICycle=0,HTTPCycle=0,BodyBuffer=0,InputStream=0"
