"""A master and its workers seen from outside: which pid answers, which pid logged what.

Apps that answer ``"<pid>"`` or ``"<pid> <text>"`` (tests/apps/worker_apps.py,
recycle_apps.py, hook_apps.py) tell which worker served each request; the log lines of the
master and the workers carry pids too.
"""

from __future__ import annotations

import re
import socket
import threading
import time

from tests.support.procs import wait_until
from tests.support.wire import read_response

SERVING_RE = re.compile(r"serving .*\bpid (\d+)\]")
BOOTING_RE = re.compile(r"Booting worker \d+ \(pid (\d+)\)")
STOPPING_RE = re.compile(r"Stopping worker \d+ \(pid (\d+)\)")


def get(port: int, path: str = "/", timeout: float = 5.0, latency: float = 0.0,
        host: str = "127.0.0.1") -> tuple[int, str]:
    """One request on a new connection (``Connection: close``): (status, body text).
    ``latency``: wait that long between connecting and sending the request, as a client
    across a network does (load shaping, never a verdict)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if latency:
            time.sleep(latency)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                     .encode())
        status, _, _, body = read_response(sock, timeout)
    return status, body.decode()


def answer_pid(body: str) -> int:
    """The worker pid an app put first in its answer."""
    return int(body.split(" ", 1)[0])


def serving_pids(srv, start: int = 0) -> list[int]:
    """Pids of the processes that logged their "serving" line (from line ``start``), in order."""
    return [int(m.group(1)) for line in srv.lines[start:] if (m := SERVING_RE.search(line))]


def answers(port: int, want: int | set[int], max_requests: int = 300) -> dict[int, str]:
    """Send requests (each on a new connection, 4 at a time so that an idle worker gets its
    share) until ``want`` different worker pids have answered (a number, or a set of pids
    that must all have answered), or ``max_requests`` are sent. Every answer must be 200.
    Returns each answering pid's last answer."""
    seen: dict[int, str] = {}
    lock = threading.Lock()
    sent = [0]
    errors: list[str] = []

    def done() -> bool:
        return (want <= seen.keys()) if isinstance(want, set) else len(seen) >= want

    def client() -> None:
        while True:
            with lock:
                if done() or sent[0] >= max_requests or errors:
                    return
                sent[0] += 1
            try:
                status, body = get(port)
                assert status == 200, (status, body)
            except Exception as exc:  # noqa: BLE001 - reported by the caller's thread
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                seen[answer_pid(body)] = body

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return seen


def pids_answering(port: int, want: int | set[int], max_requests: int = 300) -> set[int]:
    """The pids that answered ``answers(port, want, max_requests)``."""
    return set(answers(port, want, max_requests))


def assert_replaced_in_turn(srv, start: int, old: set[int], timeout: float = 15.0
                            ) -> list[int]:
    """From log line ``start`` on, every worker in ``old`` was replaced in turn: the k-th new
    worker was booted, logged "serving", and only then was the k-th old worker stopped; the
    next new worker was booted only after that stop (one at a time, never a surge of new
    workers with the old ones stopped at the end). Returns the new workers' pids in boot
    order.

    Why the log order decides it: "Booting worker" and "Stopping worker" are the master's
    own lines, written in the order it acts; a worker writes its "serving" line before it
    tells the master it is ready, and the master stops the old worker only after that. All
    of them write to the one pipe the test reads, so these causal orders are the orders of
    the lines. (Which new worker stands for which old one is not logged: the k-th stop must
    follow the k-th new "serving" line.) Each old worker must also have logged "Received
    SIGTERM" (it began to drain); ``timeout`` is the hang guard for those lines."""
    marks = {pid: f"[{pid}] INFO Received SIGTERM" for pid in old}

    def drained() -> list[str] | None:  # once every old worker has begun to drain
        lines = srv.lines[start:]
        return lines if all(any(m in line for line in lines) for m in marks.values()) else None

    lines = wait_until(drained, timeout) or srv.lines[start:]
    text = "\n".join(lines)
    for pid, mark in marks.items():
        assert any(mark in line for line in lines), (
            f"old worker {pid} never began to drain:\n{srv.log[-4000:]}")
    boots = [(i, int(m.group(1))) for i, line in enumerate(lines)
             if (m := BOOTING_RE.search(line)) and int(m.group(1)) not in old]
    stops = [(i, int(m.group(1))) for i, line in enumerate(lines)
             if (m := STOPPING_RE.search(line)) and int(m.group(1)) in old]
    serving = {}
    for i, line in enumerate(lines):
        m = SERVING_RE.search(line)
        if m:
            serving.setdefault(int(m.group(1)), i)
    assert sorted(pid for _, pid in stops) == sorted(old), (
        f"not every old worker was stopped, once:\n{text}")
    assert len(boots) >= len(old), f"fewer new workers than old ones:\n{text}"
    for k, (stop, gone) in enumerate(stops):
        index, pid = boots[k]
        assert pid in serving, f"new worker {pid} never logged serving:\n{text}"
        assert index < serving[pid] < stop, (
            f"old worker {gone} was stopped (line {stop}) before new worker {pid} served "
            f"(line {serving[pid]}):\n{text}")
        if k + 1 < len(boots):
            assert stop < boots[k + 1][0], (
                f"worker {boots[k + 1][1]} was booted (line {boots[k + 1][0]}) before old "
                f"worker {gone} was stopped (line {stop}): not one at a time:\n{text}")
    return [pid for _, pid in boots]
