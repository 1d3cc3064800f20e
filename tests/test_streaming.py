"""Streamed responses (issue 14): many small chunks are cheap and shared fairly.

- Chunks an app sends within one loop turn leave in one write at the end of the turn (seen
  in the server's own system calls, under strace), not a send() each.
- A chunk is never held past that turn: a client gets the first event while the app still
  waits for something else.
- One response streaming without suspending sends at most HELD_CHUNKS chunks a turn, then
  waits for the next: two such responses interleave (the app records its order).
"""

from __future__ import annotations

import json
import re

import pytest

from betula.protocols.h1.response import HELD_CHUNKS
from tests.support.syscalls import TracedServer
from tests.support.wire import dechunk, read_response, recv_until, recv_until_closed, request

APP = "tests.apps.stream_apps:app"
CLOSE = ("Host: t", "Connection: close")
WRITES = "write,writev,sendto,sendmsg"  # every way the loop may write to a socket


def _events(n: int) -> bytes:
    return b"".join(b"data: %d\n\n" % i for i in range(n))


def _get(srv, target: str) -> bytes:  # type: ignore[no-untyped-def]
    with srv.connect() as sock:
        sock.sendall(request(target, headers=CLOSE))
        return recv_until_closed(sock)


@pytest.mark.parametrize("iface", ["asgi", "wsgi"])
def test_chunks_of_one_turn_leave_in_one_write(iface: str) -> None:
    args = [APP] if iface == "asgi" else ["tests.apps.stream_apps:wsgi_app", "--interface",
                                          "wsgi"]
    srv = TracedServer([*args, "--port", "0"], lambda path: "/", calls=WRITES)
    try:
        srv.start()
        with srv.connect() as sock:
            port = sock.getsockname()[1]
            sock.sendall(request("/burst?n=300", headers=CLOSE))
            data = recv_until_closed(sock)
        srv.stop()  # every line of the trace is written by then
        calls = [line for line in srv.trace_lines()
                 if re.search(rf"->127\.0\.0\.1:{port}\]>", line)]
    finally:
        srv.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert dechunk(body).body == _events(300)
    # 300 chunks (and the head and last chunk): a few writes, not 300. ASGI: the app sends
    # them all without suspending, HELD_CHUNKS a turn, one write a turn. (WSGI: the app
    # thread hands over what the loop has not taken yet in one batch: how many batches
    # depends on how the two threads run, so only the body is checked; 6 writes here.)
    assert calls, "strace saw no write on the connection"
    if iface == "asgi":
        assert len(calls) <= 300 // HELD_CHUNKS + 2, (len(calls), calls[:5])


def test_a_chunk_is_not_held_past_its_turn(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with srv.connect() as sock:
        sock.sendall(request("/held", headers=("Host: t",)))
        got = recv_until(sock, b"data: first\n\n", timeout=10)
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"data: first\n\n\r\n")


def test_streams_that_never_suspend_share_the_worker(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    n = 10 * HELD_CHUNKS
    socks = []
    for name in ("a", "b"):
        sock = srv.connect()
        sock.sendall(request(f"/race?id={name}&n={n}", headers=CLOSE))
        socks.append(sock)
    bodies = [recv_until_closed(sock) for sock in socks]
    for sock in socks:
        sock.close()
    for data in bodies:
        assert dechunk(data.partition(b"\r\n\r\n")[2]).body == _events(n)
    order = json.loads(_get(srv, "/order").partition(b"\r\n\r\n")[2])
    assert len(order) == 2 * n
    runs, run = [], 1
    for before, now in zip(order, order[1:], strict=False):
        if now[0] == before[0]:
            run += 1
        else:
            runs.append(run)
            run = 1
    runs.append(run)
    # each stream sends HELD_CHUNKS, then the other its HELD_CHUNKS, and so on
    assert max(runs) <= HELD_CHUNKS, runs
    assert len(runs) >= 2 * n // HELD_CHUNKS - 1, runs


def test_pipelined_requests_after_a_stream_keep_their_order(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    with srv.connect() as sock:
        sock.sendall(request("/burst?n=5", headers=("Host: t",))
                     + request("/order", headers=("Host: t",)))
        first = read_response(sock)
        second = read_response(sock)
    assert first[0] == 200 and first[3] == _events(5)
    assert second[0] == 200


