"""Per-request bookkeeping, seen from outside.

Request targets are split and decoded once and then remembered (a bounded cache per
interface): every request must still see exactly its own target, whether it repeats an
earlier one, comes after the cache was emptied for being full, or is too long to keep.
And a finished request must be freed by reference counting, not left in a cycle."""

from __future__ import annotations

import json

import pytest

from tests.support.wire import read_response

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


# -- request heads: analysed once per distinct header list, cached per server ---------------
HEADS = [
    ("Host: t", "X-One: 1"),
    ("Host: t", "X-One: 2"),  # same names, another value
    ("Host: t", "x-one: 1"),  # the first list but for the name's case
    ("Host: t", "X-Rep: a", "X-Rep: b", "Cookie: a=1", "Cookie: b=2"),
    ("Host: t", "X-Big: " + "b" * 3000),  # longer than a cached head may be
]


def _send(sock, head: tuple[str, ...], body: bytes = b"") -> bytes:
    lines = ["POST / HTTP/1.1" if body else "GET / HTTP/1.1", *head]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    status, _, _, data = read_response(sock)
    assert status == 200, (head, status, data)
    return data


def test_asgi_header_lists_each_request_its_own(serve):
    srv = serve("tests.apps.target_apps:asgi_headers", "--lifespan", "off")
    with srv.connect() as sock:
        for _ in range(3):  # the first time analysed, then from the cache
            for head in HEADS:
                seen = _send(sock, head).decode("latin-1").split("\n")
                expected = [f"{n.strip().lower()}: {v.strip()}"
                            for n, v in (field.split(":", 1) for field in head)]
                assert seen == expected  # in order, lowered names, no x-added-by-the-app


def test_wsgi_header_entries_each_request_its_own(serve):
    srv = serve("tests.apps.target_apps:wsgi_headers", "--interface", "wsgi")
    expected = [
        ["HTTP_HOST=t", "HTTP_X_ONE=1"],
        ["HTTP_HOST=t", "HTTP_X_ONE=2"],
        ["HTTP_HOST=t", "HTTP_X_ONE=1"],
        ["HTTP_COOKIE=a=1; b=2", "HTTP_HOST=t", "HTTP_X_REP=a, b"],
        ["HTTP_HOST=t", "HTTP_X_BIG=" + "b" * 3000],
    ]
    with srv.connect() as sock:
        for _ in range(3):
            for head, entries in zip(HEADS, expected, strict=True):
                seen = _send(sock, head).decode("latin-1").split("\n")
                assert seen == ["CONTENT_LENGTH=", "CONTENT_TYPE=", *entries]
            seen = _send(sock, HEADS[0], b"xyz").decode("latin-1").split("\n")
            assert seen == ["CONTENT_LENGTH=3", "CONTENT_TYPE=", *expected[0]]


def _chunked_with_trailer(sock, fields: list[str]) -> tuple[int, bytes]:
    sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n0\r\n" + "".join(f + "\r\n" for f in fields).encode() + b"\r\n")
    status, _, _, data = read_response(sock)
    return status, data


def test_trailer_fields_are_not_request_headers(serve):
    srv = serve("tests.apps.target_apps:asgi_headers", "--lifespan", "off")
    with srv.connect() as sock:
        for _ in range(2):
            status, data = _chunked_with_trailer(sock, ["X-Checksum: 1", "X-Other: 2"])
            assert status == 200
            assert data == b"host: t\ntransfer-encoding: chunked"


def test_trailer_fields_count_against_the_field_limit(serve):
    srv = serve("tests.apps.target_apps:asgi_headers", "--lifespan", "off",
                "--limit-request-fields", "4")
    with srv.connect() as sock:  # 2 header fields + 2 trailer fields: within the limit
        assert _chunked_with_trailer(sock, ["X-A: 1", "X-B: 2"])[0] == 200
    with srv.connect() as sock:  # 2 + 3: over it
        status, data = _chunked_with_trailer(sock, ["X-A: 1", "X-B: 2", "X-C: 3"])
        assert status == 431 and b"Too Many Request Header Fields" in data


def test_head_cache_is_bounded_in_count_and_size(serve):
    from betula.protocols.http1 import HEAD_CACHE_BYTES, HEAD_CACHE_MAX

    srv = serve("tests.apps.target_apps:head_cache", "--lifespan", "off")
    with srv.connect() as sock:
        for i in range(HEAD_CACHE_MAX + 100):  # more distinct heads than it keeps
            _send(sock, ("Host: t", f"X-N: {i}"))
        for _ in range(3):  # a head too long to keep, again and again
            state = json.loads(_send(sock, ("Host: t", "X-Big: " + "b" * 3000)))
    assert 0 < state["count"] <= HEAD_CACHE_MAX
    assert state["largest"] <= HEAD_CACHE_BYTES
