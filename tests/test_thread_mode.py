"""--worker-mode thread: the real CLI on a free-threaded CPython (tools/free_threaded_env.sh
builds it; CI fails when it is missing), black-box over real sockets.

Parallelism is shown by the CPU the app's threads used against the wall time both requests
took: two requests that each burn CPU in pure Python and overlap use nearly twice their
shared wall time in CPU when they run in parallel, and at most about that wall time when
they take turns on a GIL. The same measure on a build with the GIL (``--allow-gil``) is the
control that shows the test can fail.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import need
from tests.support.procs import alive, children, wait_until
from tests.support.server import ServerProcess, one_error_line, run_cli

ASGI = "tests.apps.thread_apps:app"
WSGI = "tests.apps.thread_apps:wsgi"
ROOT = Path(__file__).resolve().parent.parent


def free_threaded_python() -> str:
    return need.built_program(
        "python3.13t", "BETULA_FT_PYTHON", "python-3.1*t/bin/python3.1*t",
        "tools/free_threaded_env.sh", ready="python-3.13.5t/.built")


def start(python: str, *args: str, workers: int = 2, env: dict | None = None
          ) -> ServerProcess:
    server = ServerProcess(["--worker-mode", "thread", "--workers", str(workers), "--port", "0",
                            *args], command=[python, "-m", "betula"], env=env)
    server.start(wait=False)
    assert server.wait_for_log(r"All \d+ worker threads serving", 60), server.log
    server.wait_ready()
    return server


def get(server: ServerProcess, path: str, timeout: float = 30.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def pid_of(body: str) -> int:
    return int(body.split()[0].split("=")[1])


def burn_pair(server: ServerProcess, rounds: int) -> list[dict]:
    """Two /burn requests on two connections, the second sent once the first is burning
    (so another loop takes it: the first loop is busy in the app)."""
    results: list[dict] = []

    def one() -> None:
        status, body = get(server, f"/burn?rounds={rounds}", timeout=120)
        assert status == 200, body
        results.append(json.loads(body))

    before = int(get(server, "/started")[1])
    first = threading.Thread(target=one)
    first.start()
    assert wait_until(lambda: int(get(server, "/started")[1]) > before, 30)
    second = threading.Thread(target=one)
    second.start()
    first.join(120)
    second.join(120)
    assert len(results) == 2
    return results


def parallelism(results: list[dict]) -> float:
    """CPU the two requests used over the wall time they took together (2: in parallel)."""
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return sum(r["cpu"] for r in results) / wall


def windows_overlap(results: list[dict]) -> bool:
    first, second = sorted(results, key=lambda r: r["start"])
    return second["start"] < first["end"]


def assert_runs_in_parallel(server: ServerProcess) -> None:
    """The best of three pairs overlaps and uses well over one CPU: another process may
    take the second CPU for a moment; with a GIL no pair can pass (the control below)."""
    tries = [burn_pair(server, 3_000_000) for _ in range(3)]
    best = max(tries, key=parallelism)
    assert windows_overlap(best), tries
    ratio = parallelism(best)
    assert ratio > 1.3, f"CPU over wall {ratio:.2f}: the workers took turns"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_threads_run_python_in_parallel(app):
    python = free_threaded_python()
    server = start(python, app)
    try:
        assert_runs_in_parallel(server)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_with_the_gil_threads_take_turns_the_control():
    # This interpreter has the GIL: the same measure stays near 1, so the test above fails
    # when the threads do not run in parallel.
    server = start(sys.executable, ASGI, "--allow-gil")
    try:
        tries = [burn_pair(server, 3_000_000) for _ in range(3)]
        assert max(parallelism(results) for results in tries) < 1.15, tries
    finally:
        server.stop(signal.SIGTERM)


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_serves_from_threads_of_one_process_and_survives_an_app_error(app):
    server = start(free_threaded_python(), app)
    try:
        status, body = get(server, "/")
        assert status == 200 and "thread=" in body
        pid = pid_of(body)
        assert get(server, "/boom")[0] == 500
        status, body = get(server, "/")
        assert status == 200 and pid_of(body) == pid
        assert "Exception in" in server.log
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def stop_with_a_request_in_flight(server: ServerProcess) -> None:
    """SIGTERM while a 1.5 s request runs: it is answered, then the server exits 0. (The
    request has half a second to reach the app; one that has not yet is answered too: a
    just-accepted connection gets 1 s to send its request.)"""
    answer: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: answer.append(get(server, "/sleep?s=1.5")))
    thread.start()
    assert wait_until(lambda: "GET /sleep" in server.log, 0.5) is False  # (not answered yet)
    server.send_signal(signal.SIGTERM)
    thread.join(30)
    assert answer and answer[0][0] == 200, server.log
    assert server.wait_exit(30) == 0, server.log


def test_graceful_stop_finishes_the_request_in_flight():
    stop_with_a_request_in_flight(start(free_threaded_python(), WSGI))


def test_hup_replaces_the_process_with_a_new_one():
    server = start(free_threaded_python(), ASGI)
    try:
        old = pid_of(get(server, "/")[1])
        server.send_signal(signal.SIGHUP)
        assert wait_until(lambda: pid_of(get(server, "/")[1]) != old, 60), server.log
        assert wait_until(lambda: not alive(old), 30), server.log
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_a_recycled_thread_is_replaced_in_the_same_process():
    server = start(free_threaded_python(), ASGI, "--limit-max-requests", "3")
    try:
        pid = pid_of(get(server, "/")[1])

        def new_thread_serves() -> bool:
            body = get(server, "/")[1]
            assert pid_of(body) == pid  # the process stays
            return not body.endswith(("worker-1", "worker-2"))
        assert wait_until(new_thread_serves, 30), server.log
        assert "Recycling worker thread" in server.log
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_a_stuck_thread_gets_the_process_replaced():
    # A thread blocked in the app stops the heartbeats: the master replaces the process
    # (a thread cannot be killed), after logging what it was stuck on.
    server = start(free_threaded_python(), ASGI, "--timeout-worker", "2")
    try:
        old = pid_of(get(server, "/")[1])
        threading.Thread(target=lambda: _quiet_get(server, "/sleep?s=30"), daemon=True).start()
        assert server.wait_for_log(r"has not answered", 30), server.log
        assert server.wait_for_log(r"stuck on request: GET /sleep", 10), server.log
        assert wait_until(lambda: _pid_or_zero(server) not in (0, old), 60), server.log
    finally:
        server.stop(signal.SIGTERM)


def _quiet_get(server: ServerProcess, path: str) -> None:
    try:
        get(server, path, timeout=40)
    except OSError:
        pass


def _pid_or_zero(server: ServerProcess) -> int:
    try:
        return pid_of(get(server, "/", timeout=5)[1])
    except OSError:
        return 0


def test_shared_state_is_one_for_all_threads():
    server = start(free_threaded_python(), WSGI, workers=2)
    try:
        counts = [int(get(server, "/count")[1]) for _ in range(6)]
        assert counts == [1, 2, 3, 4, 5, 6]
        assert len(children(server.proc.pid)) == 1  # one worker process
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_refused_on_a_build_with_the_gil():
    code, out = run_cli("--worker-mode", "thread", "--workers", "2", ASGI)
    assert code == 1
    line = one_error_line(out)
    assert "needs a free-threaded CPython" in line and "--worker-mode process" in line


def test_refused_when_the_apps_import_turns_the_gil_back_on(tmp_path):
    python = free_threaded_python()
    include = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['include'], sysconfig.get_config_var('EXT_SUFFIX'))"],
                             capture_output=True, text=True, check=True).stdout.split()
    compiler = need.program("cc", "apt-get install gcc")
    subprocess.run([compiler, "-shared", "-fPIC", "-I", include[0], "-o",
                    str(tmp_path / f"gil_ext{include[1]}"),
                    str(ROOT / "tests" / "apps" / "gil_ext.c")], check=True)
    (tmp_path / "gil_app.py").write_text(
        "import gil_ext\nfrom tests.apps.thread_apps import app\n")
    server = ServerProcess(["--worker-mode", "thread", "--workers", "2", "--port", "0",
                            "--app-dir", str(tmp_path), "gil_app:app"],
                           command=[python, "-m", "betula"])
    server.start(wait=False)
    assert server.wait_exit(60) == 3, server.log
    assert "importing gil_ext re-enabled the GIL" in server.log, server.log
    assert "Traceback" not in server.log, server.log
    # --allow-gil runs it anyway.
    forced = start(python, "--app-dir", str(tmp_path), "gil_app:app", "--allow-gil")
    try:
        assert get(forced, "/")[0] == 200
    finally:
        forced.stop(signal.SIGTERM)


def pubsub_across_workers(server: ServerProcess) -> None:
    """A subscriber in one worker gets what another worker publishes."""
    received: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: received.append(get(server, "/sub")))
    thread.start()

    def published() -> bool:
        return int(get(server, "/pub?hello-modes")[1]) >= 1
    assert wait_until(published, 20), server.log
    thread.join(30)
    assert received and received[0] == (200, '"hello-modes"'), (received, server.log)


def test_pubsub_reaches_a_subscriber_in_another_thread():
    server = start(free_threaded_python(), ASGI)
    try:
        pubsub_across_workers(server)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log
