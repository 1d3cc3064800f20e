"""--worker-mode subinterpreter: the real CLI on CPython 3.13 (tools/subinterpreter_env.sh
finds it and installs the dependencies; CI fails when it is missing), black-box over real
sockets. Parallelism is measured as in test_thread_mode.py: the CPU two overlapping
requests used against the wall time they took together."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import need
from tests.support.procs import alive, children, wait_until
from tests.support.server import ServerProcess, one_error_line, run_cli
from tests.test_thread_mode import (
    assert_runs_in_parallel,
    get,
    pid_of,
    pubsub_across_workers,
    stop_with_a_request_in_flight,
)

WSGI = "tests.apps.thread_apps:wsgi"
ASGI = "tests.apps.thread_apps:app"
ROOT = Path(__file__).resolve().parent.parent


def python313() -> str:
    path = os.environ.get("BETULA_SUBINTERP_PYTHON")
    if path:
        return path
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        for found in sorted(Path(root, "versions").glob("3.13.*"), reverse=True):
            if not found.name.endswith("t") and (found / "bin" / "python3").exists():
                return str(found / "bin" / "python3")
    need.missing("CPython 3.13", "tools/subinterpreter_env.sh")
    raise AssertionError


def start(app: str, *args: str, workers: int = 2) -> ServerProcess:
    server = ServerProcess(["--worker-mode", "subinterpreter", "--workers", str(workers),
                            "--port", "0", app, *args], command=[python313(), "-m", "betula"])
    server.start(wait=True, timeout=60)
    return server


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_requests_run_in_parallel_in_two_interpreters(app):
    server = start(app)
    try:
        assert_runs_in_parallel(server)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_serves_and_survives_an_app_error_with_its_traceback_logged(app):
    server = start(app)
    try:
        status, body = get(server, "/")
        assert status == 200 and "pid=" in body
        assert "in 2 sub-interpreters" in server.log
        assert get(server, "/boom")[0] == 500
        assert server.wait_for_log(r"RuntimeError: boom \(in a sub-interpreter\)", 10)
        assert 'thread_apps.py", line' in server.log  # the guest's own traceback
        assert get(server, "/")[0] == 200
        assert len(children(server.proc.pid)) == 1  # one process: the interpreters are in it
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_a_flask_app_runs_in_the_interpreters():
    server = start("tests.apps.flask_app:app")
    try:
        status, body = get(server, "/")
        assert status == 200, body
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_shared_state_is_one_for_all_interpreters():
    server = start(WSGI)
    try:
        assert [int(get(server, "/count")[1]) for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_graceful_stop_finishes_the_request_in_flight():
    stop_with_a_request_in_flight(start(WSGI))


def test_graceful_stop_and_hup():
    server = start(WSGI)
    old = pid_of(get(server, "/")[1])
    server.send_signal(signal.SIGHUP)
    assert wait_until(lambda: pid_of(get(server, "/")[1]) != old, 60), server.log
    assert wait_until(lambda: not alive(old), 30), server.log
    assert server.stop(signal.SIGTERM) == 0, server.log


def test_a_starlette_app_runs_in_the_interpreters_with_its_lifespan():
    server = start("tests.apps.starlette_app:app")
    try:
        status, body = get(server, "/users/5")
        assert status == 200 and '"user_id":5' in body, body
        status, body = get(server, "/state")  # what the lifespan yielded, in the interpreter
        assert status == 200 and "hello from lifespan" in body, body
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_fastapi_is_refused_naming_pydantic_core():
    # pydantic-core (PyO3) cannot load in an isolated interpreter: one line names it.
    server = ServerProcess(["--worker-mode", "subinterpreter", "--port", "0",
                            "tests.apps.fastapi_app:app"], command=[python313(), "-m", "betula"])
    server.start(wait=False)
    assert server.wait_exit(60) == 3, server.log
    assert "cannot run in a sub-interpreter: module pydantic_core" in server.log, server.log
    assert "use --worker-mode process" in server.log
    assert "Traceback" not in server.log


def test_a_module_that_cannot_load_in_a_subinterpreter_is_named(tmp_path):
    python = python313()
    include, suffix = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'], "
         "sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run([need.program("cc", "apt-get install gcc"), "-shared", "-fPIC", "-I", include,
                    "-o", str(tmp_path / f"gil_ext{suffix}"),
                    str(ROOT / "tests" / "apps" / "gil_ext.c")], check=True)
    (tmp_path / "single_phase_app.py").write_text(
        "import gil_ext\nfrom tests.apps.thread_apps import wsgi\n")
    server = ServerProcess(["--worker-mode", "subinterpreter", "--port", "0", "--app-dir",
                            str(tmp_path), "single_phase_app:wsgi"],
                           command=[python, "-m", "betula"])
    server.start(wait=False)
    assert server.wait_exit(60) == 3, server.log
    assert "does not support loading in subinterpreters" in server.log, server.log
    assert "use --worker-mode process" in server.log
    assert "Traceback" not in server.log


def test_refused_before_python_3_13():
    code, out = run_cli("--worker-mode", "subinterpreter", WSGI)
    assert code == 1
    line = one_error_line(out)
    assert "needs CPython 3.13 or newer" in line and "--worker-mode process" in line


def test_pubsub_reaches_a_subscriber_in_another_interpreter():
    server = start(ASGI)
    try:
        pubsub_across_workers(server)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_a_django_project_runs_in_the_interpreters(tmp_path):
    python = python313()
    env = {"DJANGO_SETTINGS_MODULE": "tests.apps.djangoproj.settings",
           "BETULA_DJANGO_DB": str(tmp_path / "db.sqlite3"),
           "PYTHONPATH": str(ROOT)}
    subprocess.run([python, "-m", "django", "migrate", "--noinput", "-v", "0"],
                   env={**os.environ, **env}, cwd=ROOT, check=True, timeout=120)
    server = ServerProcess(["--worker-mode", "subinterpreter", "--workers", "2", "--port", "0",
                            "tests.apps.djangoproj.wsgi:application"],
                           command=[python, "-m", "betula"], env=env)
    server.start(wait=True, timeout=60)
    try:
        status, body = get(server, "/notes/")
        assert status == 200 and "<h1>Notes</h1>" in body, body
        assert "in 2 sub-interpreters" in server.log
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log
