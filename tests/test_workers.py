"""The process model (issue 4, first part): ``--workers N`` runs a master that forks the
workers, supervises them and turns signals into lifecycle actions. Black-box: the real CLI in
a subprocess, real signals to the master's pid, real sockets to 127.0.0.1.
Apps: tests/apps/worker_apps.py.

Every wait is bounded; the timeouts are safety nets, never what a test measures.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from tests.support.procs import alive, children, wait_until
from tests.support.wire import read_until_closed, recv_until
from tests.support.workers import (
    BOOTING_RE,
    answer_pid,
    assert_replaced_in_turn,
    get,
    pids_answering,
    serving_pids,
)

APPS = "tests.apps.worker_apps:"
ACCESS_RE = re.compile(r'\[(\d+)\] INFO \S+ - "GET ')
BACKOFF_RE = re.compile(r"dying in a loop: waiting ([0-9.]+) s before the next")
BACKED_OFF_RE = re.compile(r"backed off ([0-9.]+) s: starting the next worker")
TTIN_RE = re.compile(r"Master received SIGTTIN: \d+ workers")
TTOU_RE = re.compile(r"Master received SIGTTOU: \d+ workers")


# -- helpers ---------------------------------------------------------------------------------
def start_workers(serve, *args: str, n: int = 2, app: str = "app", env=None):
    """Start ``--workers n`` and wait until all n workers have logged that they serve."""
    srv = serve(APPS + app, "--workers", str(n), *args, env=env)
    assert wait_until(lambda: len(set(serving_pids(srv))) >= n, 20), srv.log
    assert wait_until(lambda: len(children(srv.proc.pid)) == n, 10), srv.log
    return srv


@dataclass
class Result:
    start: float
    end: float
    status: int | None = None
    body: str = ""
    error: str = ""
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200


class Load:
    """Clients sending requests one after the other, each on a new connection, until stopped
    (bounded: at most ``max_seconds`` and ``max_requests`` per client). ``threads`` clients
    send the request as soon as they are connected; ``remote`` more wait ``latency`` seconds
    between connecting and sending, as a client across a network does (its request arrives
    after the server accepted the connection)."""

    def __init__(self, port: int, threads: int = 2, remote: int = 0, latency: float = 0.02,
                 max_seconds: float = 20.0, max_requests: int = 20000) -> None:
        self.port = port
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client,
                             args=(0.0 if i < threads else latency, max_seconds, max_requests))
            for i in range(threads + remote)]

    def _client(self, latency: float, max_seconds: float, max_requests: int) -> None:
        deadline = time.monotonic() + max_seconds
        for _ in range(max_requests):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            result = Result(time.monotonic(), 0.0, latency=latency)
            try:
                result.status, result.body = get(self.port, latency=latency)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                result.error = f"{type(exc).__name__}: {exc}"
            result.end = time.monotonic()
            with self._lock:
                self.results.append(result)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> list[Result]:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return self.results

    def started_after(self, moment: float) -> list[Result]:
        with self._lock:
            return [r for r in self.results if r.start >= moment]


def wait_for_new_line(srv, pattern: re.Pattern[str], start: int, timeout: float
                      ) -> tuple[int, re.Match[str] | None]:
    """The first log line at index >= ``start`` matching ``pattern``: (index, match), or
    (start, None) when the hang guard runs out."""
    found = wait_until(lambda: next(((i, m) for i, line in enumerate(srv.lines[start:], start)
                                     if (m := pattern.search(line))), None), timeout, 0.01)
    return found or (start, None)


def hold_request(port: int) -> socket.socket:
    """Open a request that the app holds for 30 s (the app prints HOLDING <pid>)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"GET /hold?s=30 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    return sock


# -- the master and its workers --------------------------------------------------------------
def test_one_worker_is_the_default_and_needs_no_master(serve):
    srv = serve(APPS + "app")
    status, body = get(srv.port)
    assert status == 200 and answer_pid(body) == srv.proc.pid
    assert "Master" not in srv.log
    assert srv.stop(signal.SIGTERM) == 0


def test_two_workers_serve_and_the_master_does_not(serve):
    srv = start_workers(serve)
    master = srv.proc.pid
    log = srv.log
    assert f"Master {master} starting 2 workers" in log
    workers = set(serving_pids(srv))
    assert len(workers) == 2 and master not in workers
    assert children(master) == workers
    assert pids_answering(srv.port, want=2) == workers
    assert srv.stop(signal.SIGTERM) == 0
    access = [int(m.group(1)) for line in srv.log.splitlines() if (m := ACCESS_RE.search(line))]
    assert access and set(access) <= workers
    assert master not in access  # the master never serves HTTP


def test_a_killed_worker_is_replaced_under_load(serve):
    srv = start_workers(serve)
    master = srv.proc.pid
    before = children(master)
    victim, survivor = sorted(before)
    with Load(srv.port, threads=2) as load:
        assert wait_until(lambda: len(load.results) >= 20, 10)
        os.kill(victim, signal.SIGKILL)
        died = srv.wait_for_log(rf"\(pid {victim}\) died: killed by SIGKILL", 10)
        assert died is not None and "starting a new one" in died, srv.log

        def replacement():
            fresh = [p for p in serving_pids(srv) if p not in before]
            return fresh[0] if fresh else None

        new = wait_until(replacement, 20)
        assert new is not None, srv.log
        ready = time.monotonic()  # the new worker's "serving" line has been seen
        assert wait_until(lambda: len(load.started_after(ready)) >= 20, 15), srv.log
    after_ready = load.started_after(ready)
    failed = [r for r in after_ready if not r.ok]
    assert not failed, failed[:5]
    assert srv.wait_for_log(rf"Booting worker \d+ \(pid {new}\)", 1) is not None
    assert children(master) == {survivor, new}
    assert pids_answering(srv.port, want=2) == {survivor, new}
    assert srv.stop(signal.SIGTERM) == 0


def test_hup_rolling_restart_under_load_fails_nothing_and_reimports(serve, tmp_path):
    # Two clients send at once after connecting, six more 20 ms later (as across a network):
    # every request must be answered while the workers are replaced one by one.
    text = tmp_path / "text.txt"
    text.write_text("old-text-41a\n")
    srv = start_workers(serve, env={"BETULA_TEST_TEXT_FILE": str(text)})
    master = srv.proc.pid
    old = children(master)
    assert {answer_pid(get(srv.port)[1]) for _ in range(3)} <= old
    with Load(srv.port, threads=2, remote=6) as load:
        assert wait_until(lambda: len(load.results) >= 20, 10)
        text.write_text("new-text-41b\n")  # only a re-import of the app module reads it
        start = len(srv.lines)
        hup = time.monotonic()
        srv.send_signal(signal.SIGHUP)
        assert srv.wait_for_log(r"Rolling restart done", 30) is not None, srv.log
        # the old workers drain and exit; after that only new workers can answer
        assert wait_until(lambda: not (children(master) & old), 15), srv.log
        drained = time.monotonic()
        assert wait_until(lambda: len(load.started_after(drained)) >= 20, 10), srv.log
    # Zero failures alone cannot tell a rolling restart from "stop all, then start all" (the
    # master keeps the socket, so clients only wait), nor from a surge (all new workers
    # booted, then all old ones stopped): the order of the log lines can. Each new worker
    # said "serving" before the master stopped an old one, and the master booted the next
    # new worker only after that stop.
    booted = assert_replaced_in_turn(srv, start, old)
    results = load.results
    failed = [r for r in results if not r.ok]
    assert not failed, (len(failed), len(results), failed[:5])
    assert len([r for r in results if hup <= r.start < drained]) > 0  # load during the HUP
    new = children(master)
    assert len(new) == 2 and not (new & old) and new == set(booted)  # every pid changed
    for r in results:
        if r.end < hup:
            assert r.body.endswith("old-text-41a")
    late = load.started_after(drained)
    assert late
    for r in late:
        assert r.body.endswith("new-text-41b"), r
        assert answer_pid(r.body) in new
    for pid in old:
        # The pid leaves the process table a moment before the master logs its exit.
        assert srv.wait_for_log(rf"\(pid {pid}\) exited: exit status 0", 10), srv.log
    assert srv.stop(signal.SIGTERM) == 0


def test_hup_with_a_broken_app_keeps_the_old_workers_serving(serve, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("v1-text\n")
    srv = start_workers(serve, env={"BETULA_TEST_TEXT_FILE": str(text)})
    master = srv.proc.pid
    old = children(master)
    text.write_text("raise-on-import\n")
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_for_log(r"rolling restart abandoned", 20) is not None, srv.log
    assert "import-marker-9d4" in srv.log  # the new worker's error, so the user knows why
    assert srv.proc.poll() is None  # the master keeps running...
    assert wait_until(lambda: children(master) == old, 10), srv.log
    for _ in range(5):  # ...and the old workers keep serving the old code
        status, body = get(srv.port)
        assert status == 200 and body.endswith("v1-text") and answer_pid(body) in old
    text.write_text("v2-text\n")  # the fix is deployed: the next HUP goes through
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_for_log(r"Rolling restart done", 30) is not None, srv.log
    assert wait_until(lambda: not (children(master) & old), 15), srv.log
    status, body = get(srv.port)
    assert status == 200 and body.endswith("v2-text")
    assert srv.stop(signal.SIGTERM) == 0


def test_term_with_an_open_sse_stream(serve, tmp_path):
    marker = tmp_path / "disconnect.txt"
    srv = start_workers(serve, "--timeout-graceful-shutdown", "3",
                        env={"BETULA_TEST_DISCONNECT_FILE": str(marker)})
    workers = children(srv.proc.pid)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: test\r\n\r\n")
        head = recv_until(sock, b"data: ", 10)
        assert b"200" in head.split(b"\r\n", 1)[0]
        srv.send_signal(signal.SIGTERM)
        code = srv.wait_exit(15)
        _, closed = read_until_closed(sock, 5)
    finally:
        sock.close()
    assert code == 0, srv.log
    assert marker.exists() and marker.read_text() == "disconnect\n", srv.log
    assert closed  # the stream was ended, not left hanging
    log = srv.log
    assert "Master received SIGTERM" in log
    for pid in workers:
        assert re.search(rf"\(pid {pid}\) exited: exit status 0", log), log
        assert not alive(pid)
    assert "did not stop in time" not in log


def test_ttin_and_ttou_add_and_remove_a_worker(serve):
    srv = start_workers(serve)
    master = srv.proc.pid
    assert len(children(master)) == 2
    srv.send_signal(signal.SIGTTIN)
    assert srv.wait_for_log(r"SIGTTIN: 3 workers", 10) is not None, srv.log
    assert wait_until(lambda: len(children(master)) == 3, 10), srv.log
    assert wait_until(lambda: len(set(serving_pids(srv))) == 3, 20), srv.log
    three = children(master)
    srv.send_signal(signal.SIGTTOU)
    assert srv.wait_for_log(r"SIGTTOU: 2 workers", 10) is not None, srv.log
    assert wait_until(lambda: len(children(master)) == 2, 15), srv.log
    (gone,) = three - children(master)
    # The pid leaves the process table a moment before the master logs its exit.
    assert srv.wait_for_log(rf"\(pid {gone}\) exited: exit status 0", 10), srv.log
    assert get(srv.port)[0] == 200
    assert srv.stop(signal.SIGTERM) == 0


def backoff_at_least(srv, seconds: float) -> tuple[int, list[float]]:
    """Wait for the master to announce a backoff of at least ``seconds``: (the index of the
    line after that announcement, every delay announced until then)."""
    index, delays = 0, []
    while not delays or delays[-1] < seconds:
        index, match = wait_for_new_line(srv, BACKOFF_RE, index, 30)
        assert match is not None, f"no backoff of {seconds} s announced:\n{srv.log}"
        delays.append(float(match.group(1)))
        index += 1
    return index, delays


def test_workers_dying_in_a_loop_are_restarted_with_backoff(serve):
    srv = serve(APPS + "crashing", "--workers", "2", wait=False)
    assert srv.wait_for_log(r"died: exit status 1; starting a new one", 20) is not None, srv.log
    # The master says the delay it chose and, when it starts the next worker, how long it
    # actually waited: the backoff is read from its own account, not from the test's clock.
    index, delays = backoff_at_least(srv, 2.0)
    assert delays[0] >= 0.5 and delays == sorted(delays), delays  # it grows with the deaths
    delay = delays[-1]
    # "Signals still handled" during the backoff: the master is now waiting >= 2 s. Two
    # signals, the second sent only once the master has said it handled the first, must both
    # be handled before that wait ends. One would not tell: a master that blocked in
    # time.sleep() for the backoff would take a signal queued meanwhile as soon as it woke,
    # still before it started the next worker; the second cannot be sent before that.
    srv.send_signal(signal.SIGTTIN)
    ttin, match = wait_for_new_line(srv, TTIN_RE, index, delay + 20)
    assert match is not None, srv.log
    srv.send_signal(signal.SIGTTOU)  # back to 2 workers
    ttou, match = wait_for_new_line(srv, TTOU_RE, ttin + 1, delay + 20)
    assert match is not None, srv.log
    done, waited = wait_for_new_line(srv, BACKED_OFF_RE, index, delay + 20)
    assert waited is not None, f"no worker was started after the backoff:\n{srv.log}"
    assert float(waited.group(1)) >= delay, waited.group(0)
    during = srv.lines[index:done]
    assert ttou < done, f"the signals were handled only after the backoff:\n{srv.log}"
    assert not [x for x in during if BOOTING_RE.search(x)], "\n".join(during)
    _, boot = wait_for_new_line(srv, BOOTING_RE, done + 1, 10)  # ...and then one is started
    assert boot is not None, srv.log
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(30) == 0, srv.log


def test_term_during_the_crash_loop_backoff_boots_no_more_workers(serve):
    srv = serve(APPS + "crashing", "--workers", "2", wait=False)
    index, _ = backoff_at_least(srv, 2.0)
    srv.send_signal(signal.SIGTERM)  # sent at once: the master is waiting >= 2 s
    code = srv.wait_exit(30)
    lines = srv.lines[index:]
    term = next((i for i, x in enumerate(lines) if "Master received SIGTERM" in x), None)
    assert term is not None, srv.log
    # The master handled the TERM within its backoff (it had not started a worker) and
    # started none after it.
    started = [x for x in lines if BOOTING_RE.search(x) or BACKED_OFF_RE.search(x)]
    assert not started, "\n".join(lines)
    assert code == 0, srv.log


# -- workers that cannot boot ----------------------------------------------------------------
def test_a_missing_module_makes_the_master_exit_3(serve):
    srv = serve("tests.apps.no_such_module_b7f:app", "--workers", "2", wait=False)
    code = srv.wait_exit(20)
    log = srv.log
    assert code == 3, log
    assert any("no_such_module_b7f" in line and "error" in line.lower()
               for line in log.splitlines()), log
    assert "failed to boot" in log
    assert "Booting worker 3" not in log  # not respawned
    assert "serving" not in log


def test_a_lifespan_startup_failure_makes_the_master_exit_3(serve):
    srv = serve(APPS + "failing_startup", "--workers", "2", wait=False)
    code = srv.wait_exit(20)
    log = srv.log
    assert code == 3, log
    assert "cache cluster unreachable: worker-boot-marker-5c2" in log
    assert "failed to boot" in log
    assert "Booting worker 3" not in log
    assert "serving" not in log


# -- pid file, fast stops --------------------------------------------------------------------
def test_pid_file_holds_the_master_pid_and_is_removed(serve, tmp_path):
    pidfile = tmp_path / "betula.pid"
    srv = start_workers(serve, "--pid", str(pidfile))
    assert int(pidfile.read_text().strip()) == srv.proc.pid
    assert srv.stop(signal.SIGTERM) == 0
    assert not pidfile.exists()


def test_quit_stops_without_waiting_for_requests(serve):
    # graceful timeout 30 s and a request held 30 s: only a fast stop ends before them
    srv = start_workers(serve, "--timeout-graceful-shutdown", "30")
    workers = children(srv.proc.pid)
    sock = hold_request(srv.port)
    try:
        assert srv.wait_for_log(r"HOLDING \d+", 10) is not None, srv.log
        srv.send_signal(signal.SIGQUIT)
        srv.wait_exit(10)  # safety net, far below the 30 s a graceful stop would take
        data, _ = read_until_closed(sock, 5)
    finally:
        sock.close()
    log = srv.log
    assert "Master received SIGQUIT" in log
    assert b"200" not in data.split(b"\r\n", 1)[0]  # the held request was not waited for
    for pid in workers:
        assert not alive(pid)


def test_a_second_sigint_stops_a_slow_graceful_stop_at_once(serve):
    srv = start_workers(serve, "--timeout-graceful-shutdown", "30")
    workers = children(srv.proc.pid)
    sock = hold_request(srv.port)
    try:
        line = srv.wait_for_log(r"HOLDING \d+", 10)
        assert line is not None, srv.log
        holder = int(line.split()[-1])
        srv.send_signal(signal.SIGINT)
        assert srv.wait_for_log(r"Master received SIGINT", 10) is not None, srv.log
        assert srv.wait_for_log(rf"\[{holder}\] INFO Received SIGTERM", 10) is not None
        # the graceful stop is waiting for the held request (its worker has the TERM)
        assert srv.proc.poll() is None and alive(holder)
        srv.send_signal(signal.SIGINT)
        srv.wait_exit(10)  # safety net, far below the 30 s the graceful stop would take
    finally:
        sock.close()
    assert "second interrupt" in srv.log
    for pid in workers:
        assert not alive(pid)


@pytest.mark.parametrize("when", ["serving", "booting"])
def test_workers_stop_when_their_master_is_killed(serve, when):
    """A SIGKILLed master cannot stop its workers: each sees its parent gone at its next
    tick and stops, instead of serving on with nobody to supervise it; also when the
    master dies before the workers have started (they compare with the master's pid taken
    before the fork, not with their parent at start)."""
    srv = serve(APPS + "app", "--workers", "2", wait=when == "serving")
    workers = wait_until(lambda: children(srv.proc.pid) if len(children(srv.proc.pid)) == 2
                         else None, 20)
    srv.proc.kill()
    srv.proc.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in workers), 15)
    assert srv.wait_for_log(r"the master \(pid \d+\) is gone: stopping", 5) is not None
