"""Per-request bookkeeping, seen from outside.

Request targets are split and decoded once and then remembered (a bounded cache per
interface): every request must still see exactly its own target, whether it repeats an
earlier one, comes after the cache was emptied for being full, or is too long to keep.
A finished request must be freed by reference counting, not left in a cycle nor kept by an
idle thread (watched by the app through weak references to what the server handed it). And
the analysed request heads are kept in a bounded cache: endless distinct heads cost the
server bounded memory (its peak RSS)."""

from __future__ import annotations

import json

import pytest

from tests.support.memory import MIB, PeakRSS
from tests.support.wire import read_response, recv_until

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
# request (and hold the GIL while the WSGI threads wait). The app watches, through weak
# references, the objects the server hands it (tests/apps/gc_apps.py).
ROUNDS = 100
OVERLAPPING = 4  # requests running at once: in as many WSGI threads


def _continue_head(sock, body: bytes) -> None:
    """Send a POST head with Expect: 100-continue; return once the 100 came (the app is
    running and waiting for the body)."""
    sock.sendall(b"POST /c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    assert recv_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")


def _continue_body(sock, body: bytes) -> None:
    sock.sendall(body)
    status, _, _, data = read_response(sock)
    assert (status, data) == (200, body)


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_requests_leave_no_reference_cycles(serve, interface):
    srv = serve(f"tests.apps.gc_apps:{interface}", "--interface", interface,
                "--lifespan", "off")
    with srv.connect() as sock:
        for i in range(ROUNDS):
            _ask(sock, f"/r/{i}")
            body = b"x" * (i + 1)
            sock.sendall(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b"
                         % (len(body), body))
            assert read_response(sock)[3] == body
            # the app starts before its body arrived: a streamed wsgi.input
            _continue_head(sock, body)
            _continue_body(sock, body)
    socks = [srv.connect() for _ in range(OVERLAPPING)]
    try:
        for other in socks:  # all running at once, so each in its own thread
            _continue_head(other, b"overlap")
        for other in socks:
            _continue_body(other, b"overlap")
    finally:
        for other in socks:
            other.close()
    with srv.connect() as sock:
        state = json.loads(_ask(sock, "/check"))
    requests = 3 * ROUNDS + OVERLAPPING
    # every request's scope or environ was watched, its callables and its body stream
    callables = {"asgi": 2, "wsgi": 1}[interface]
    assert state["made"] == {
        "scope": requests, "callables": requests * callables,
        "input": (2 * ROUNDS + OVERLAPPING) if interface == "wsgi" else 0}, state
    assert state["collected"] == 0, f"request objects freed only by the collector: {state}"
    # and nothing keeps a finished request (a thread waiting for work neither)
    assert state["alive"] == 0, f"finished requests' objects still alive: {state}"


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


# The analysed heads are kept in a bounded cache: a client sending endless distinct header
# lists must not make the server grow. Seen from outside: its peak RSS over thousands of
# distinct heads, against what keeping each one's analysis would cost.
HEAD_GROWTH_MAX = 16 * MIB


def _pipeline(sock, heads: list[bytes], batch: int = 100) -> None:
    """Send each head as a GET (``batch`` at a time, pipelined) and read every answer."""
    for at in range(0, len(heads), batch):
        part = heads[at:at + batch]
        sock.sendall(b"".join(b"GET /h HTTP/1.1\r\n" + head + b"\r\n" for head in part))
        for _ in part:
            status, _, _, body = read_response(sock)
            assert status == 200, body


def _head_cache_growth(serve, heads: list[bytes]) -> int:
    srv = serve("tests.apps.target_apps:asgi", "--lifespan", "off")
    with srv.connect() as sock:
        _pipeline(sock, heads[:50])  # first-use allocations, and the client's own
        peak = PeakRSS(srv.proc.pid)
        _pipeline(sock, heads)
    return peak.growth()


def test_head_cache_is_bounded_in_count(serve):
    """12000 distinct header lists of 20 short fields (a small head, the kind that is kept):
    keeping each costs a few KiB, so an unbounded cache grows by tens of MiB."""
    fields = b"".join(b"X-F%d: v\r\n" % j for j in range(18))
    heads = [b"Host: t\r\nX-N: %d\r\n%b" % (i, fields) for i in range(12000)]
    growth = _head_cache_growth(serve, heads)
    print(f"peak RSS growth over 12000 distinct small heads: {growth / MIB:.2f} MiB")
    assert growth < HEAD_GROWTH_MAX, f"peak RSS grew by {growth / MIB:.1f} MiB"


def test_long_heads_are_not_kept(serve):
    """1100 distinct 56 KiB header sections (within the 64 KiB limit, far longer than a
    kept head): kept, they would hold over 60 MiB."""
    fields = b"".join(b"X-B%d: %b\r\n" % (j, b"b" * 8000) for j in range(7))
    heads = [b"Host: t\r\nX-N: %d\r\n%b" % (i, fields) for i in range(1100)]
    growth = _head_cache_growth(serve, heads)
    print(f"peak RSS growth over 1100 distinct long heads: {growth / MIB:.2f} MiB")
    assert growth < HEAD_GROWTH_MAX, f"peak RSS grew by {growth / MIB:.1f} MiB"
