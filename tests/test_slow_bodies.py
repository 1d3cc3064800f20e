"""Request bodies that arrive slowly or stop (issue 14): a stalled upload holds no WSGI
thread, and ``--timeout-request-body`` ends one that stops arriving with a 408.

Real servers, real sockets on 127.0.0.1; every wait is bounded and no assertion is about
how long something took.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket

import pytest

from tests.support.logs import new_id
from tests.support.server import betula
from tests.support.wire import read_response, read_until_closed, request

WSGI_APP = "tests.apps.slow_body_apps:wsgi_app"
ASGI_APP = "tests.apps.slow_body_apps:asgi_app"


def post_head(path: str, length: int) -> bytes:
    return (b"POST %b HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" % (path.encode(), length))


@pytest.fixture(scope="module")
def wsgi_two_threads():
    server = betula(WSGI_APP, "--interface", "wsgi", "--threads", "2", "--port", "0").start()
    yield server
    assert server.stop() == 0


def test_stalled_uploads_hold_no_wsgi_thread(wsgi_two_threads):
    """Eight clients send a head and part of a small body, then nothing (a rate-limited
    uploader, or an attacker), against two app threads: other requests are still served,
    and each stalled body, once it comes, reaches its app whole."""
    server = wsgi_two_threads
    with contextlib.ExitStack() as stack:
        stalled = []
        for _ in range(8):
            sock = stack.enter_context(server.connect())
            sock.sendall(post_head("/echo", 1000) + b"a" * 10)
            stalled.append(sock)
        with server.connect() as sock:  # answered although eight uploads are pending
            status, _, _, body = read_response(_send(sock, request("/")))
        assert (status, body) == (200, b"hello")
        for sock in stalled:
            sock.sendall(b"a" * 990)
            status, _, _, body = read_response(sock)
            assert (status, body) == (200, b"1000 " +
                                      hashlib.sha256(b"a" * 1000).hexdigest().encode())


def test_a_large_body_starts_the_app_before_it_is_all_here(wsgi_two_threads):
    """Past the first 64 KiB the app runs and reads the body as it arrives."""
    server = wsgi_two_threads
    tag = new_id()
    with server.connect() as sock:
        sock.sendall(post_head(f"/announce?{tag}", 300_000) + b"b" * 100_000)
        assert server.wait_for_log(rf"app started for {tag}", timeout=10) is not None
        sock.sendall(b"b" * 200_000)
        status, _, _, body = read_response(sock)
    assert (status, body) == (200, b"300000")


def test_a_small_body_is_received_before_the_app_runs(wsgi_two_threads):
    server = wsgi_two_threads
    tag = new_id()
    with server.connect() as sock:
        sock.sendall(post_head(f"/announce?{tag}", 2000) + b"c" * 1000)
        # The app has not run: the next request on another connection shows the log has
        # moved past this point without it.
        with server.connect() as other:
            assert read_response(_send(other, request("/")))[0] == 200
        assert not any(f"app started for {tag}" in line for line in server.lines)
        sock.sendall(b"c" * 1000)
        status, _, _, body = read_response(sock)
    assert (status, body) == (200, b"2000")
    # (the app's log line may reach the reader just after the response: waited for)
    assert server.wait_for_log(rf"app started for {tag}", 10), server.log


def _send(sock: socket.socket, data: bytes) -> socket.socket:
    sock.sendall(data)
    return sock


@pytest.mark.parametrize("interface, app", [("wsgi", WSGI_APP), ("asgi", ASGI_APP)])
def test_a_body_that_stops_arriving_gets_408_and_a_close(interface, app):
    server = betula(app, "--interface", interface, "--port", "0",
                    "--timeout-request-body", "1").start()
    try:
        with server.connect(timeout=30) as sock:
            port = sock.getsockname()[1]
            sock.sendall(post_head("/echo", 100_000) + b"d" * 70_000)  # the app may run
            data, closed = read_until_closed(sock, timeout=30)
        assert closed
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert b"connection: close" in data.lower()
        assert server.wait_for_log(rf"127\.0\.0\.1:{port} - bad request answered 408",
                                   timeout=10) is not None
        with server.connect() as sock:  # and the server goes on serving
            sock.sendall(post_head("/echo", 5) + b"hello")
            assert read_response(sock)[0] == 200
    finally:
        assert server.stop() == 0


def test_a_body_that_keeps_coming_slowly_is_not_cut():
    """Gaps shorter than the timeout, however many, are a slow client, not a stalled one."""
    import time

    server = betula(WSGI_APP, "--interface", "wsgi", "--port", "0",
                    "--timeout-request-body", "3").start()
    try:
        with server.connect(timeout=30) as sock:
            sock.sendall(post_head("/echo", 6))
            for _ in range(6):  # bounded: six bytes, 0.5 s apart (the timeout is 3 s)
                time.sleep(0.5)
                sock.sendall(b"e")
            status, _, _, body = read_response(sock)
        assert (status, body[:2]) == (200, b"6 ")
    finally:
        assert server.stop() == 0
