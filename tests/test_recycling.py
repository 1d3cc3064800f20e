"""Worker recycling (--limit-max-requests with jitter, --limit-max-rss) and the stuck-worker
kill (--timeout-worker), through the real CLI with a master and real sockets.
Apps: tests/apps/recycle_apps.py (every answer starts with the worker's pid)."""

import re
import socket
import time

from tests.support.procs import alive, children, wait_until
from tests.support.wire import read_response
from tests.support.workers import answer_pid, assert_replaced_in_turn, get, pids_answering

APP = "tests.apps.recycle_apps:app"


def drive(server, until, timeout=30.0):
    """Send requests (new connection each) until ``until(pids)`` holds; ``timeout`` is the
    hang guard (a worker checks its limits once a second, so a count of requests would be
    no bound on time). Returns (pids that answered, in order, failures)."""
    pids: list[int] = []
    failures = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = get(server.port)
            assert status == 200, (status, body)
            pids.append(answer_pid(body))
        except (OSError, ValueError, AssertionError):
            failures += 1
        if until(pids):
            break
    return pids, failures


def two_workers(server, without: int | None = None) -> set[int]:
    """The master's two live workers (once it has two, none of them ``without``)."""
    def workers():
        now = children(server.proc.pid)
        return now if len(now) == 2 and without not in now else None

    now = wait_until(workers, 10)
    assert now, (children(server.proc.pid), server.log)
    return now


def test_max_requests_recycles_with_zero_failures(serve):
    server = serve(APP, "--workers", "2", "--limit-max-requests", "20",
                   "--limit-max-requests-jitter", "5", "--lifespan", "off")
    first = two_workers(server)
    # Keep going until two replacements have answered.
    pids, failures = drive(server, lambda pids: len(set(pids) - first) >= 2)
    assert failures == 0
    assert len(set(pids) - first) >= 2, server.log  # replacements served
    # Every worker that answered and is no longer one of the two asked to be recycled, and
    # its process exited.
    gone = set(pids) - two_workers(server)
    assert len(gone) >= 2, (gone, server.log)
    for pid in gone:
        assert re.search(rf"Worker {pid} served \d+ requests \(limit \d+\): asking the master "
                         r"for a replacement", server.log), server.log
        assert not alive(pid)
    assert "died" not in server.log  # a recycle is not a death


def test_max_requests_without_master_stops_the_process(serve):
    server = serve(APP, "--limit-max-requests", "3", "--lifespan", "off")
    for _ in range(3):
        assert get(server.port)[0] == 200
    assert server.wait_exit(15) == 0
    assert "no master to replace this process" in server.log


def test_max_rss_recycles_a_growing_worker(serve):
    server = serve(APP, "--workers", "2", "--limit-max-rss", "100", "--lifespan", "off")
    before = two_workers(server)
    start = len(server.lines)
    # On one keep-alive connection, so one worker: 512 MiB of address space never touched
    # (resident memory stays as it was: no recycle for it), then 160 MiB written in one
    # request, so the worker's resident memory is the same whenever its next check runs.
    with server.connect() as sock:
        answered = []
        for path in ("/map", "/grow?mib=160"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, _, body = read_response(sock)
            assert status == 200
            answered.append(body.decode())
    grown = answer_pid(answered[0])
    assert answer_pid(answered[1]) == grown
    resident = int(answered[1].split()[1]) / 1024  # VmRSS (MiB) right after the growth
    (other,) = before - {grown}
    line = server.wait_for_log(rf"Worker {grown} memory \d+ MiB over --limit-max-rss 100", 15)
    assert line is not None, server.log
    # The figure it acted on is resident memory as the kernel counts it (VmRSS), not the
    # address space (VmSize is more than 512 MiB above it here).
    logged = int(re.search(r"memory (\d+) MiB", line).group(1))
    assert abs(logged - resident) <= 20, (logged, resident, line)
    assert server.wait_for_log(rf"Recycling worker \d+ \(pid {grown}\)", 10), server.log
    # The grown worker's process exits, a replacement takes its place and serves.
    assert wait_until(lambda: not alive(grown), 15), server.log
    now = two_workers(server, without=grown)
    assert other in now, (now, server.log)
    (new,) = now - before
    assert pids_answering(server.port, want={new}) >= {new}
    # "the replacement serving first": it said serving before the grown one was stopped.
    assert assert_replaced_in_turn(server, start, {grown})[0] == new


def test_stuck_worker_is_killed_and_its_request_path_logged(serve):
    server = serve(APP, "--workers", "2", "--timeout-worker", "2", "--lifespan", "off")
    before = two_workers(server)
    sock = socket.create_connection((server.host, server.port), timeout=30)
    try:
        sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        line = server.wait_for_log(r"Worker \d+ stuck on request: GET /block", 20)
        assert line is not None, server.log
        stuck = int(re.search(r"Worker (\d+) stuck", line).group(1))
        assert stuck in before
        assert server.wait_for_log(rf"\(pid {stuck}\) killed after being stuck; starting a new "
                                   "one", 10), server.log
        sock.settimeout(10)
        try:
            data = sock.recv(1024)
        except ConnectionError:
            data = b""
        assert data == b""  # the stuck worker's connection ended with it
    finally:
        sock.close()
    assert not alive(stuck)
    now = two_workers(server, without=stuck)
    # The other worker and the replacement keep serving.
    assert pids_answering(server.port, want=now) == now


def test_jitter_makes_workers_recycle_at_different_counts(serve):
    server = serve(APP, "--workers", "2", "--limit-max-requests", "10",
                   "--limit-max-requests-jitter", "50", "--lifespan", "off")
    drive(server, lambda pids: len(re.findall(r"\(limit \d+\)", server.log)) >= 4)
    limits = [int(m) for m in re.findall(r"\(limit (\d+)\)", server.log)]
    assert len(limits) >= 4, server.log
    assert all(10 <= value <= 60 for value in limits)
    assert len(set(limits)) > 1  # each worker draws its own limit
