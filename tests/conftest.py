"""Fixtures for the black-box suite: the real ``betula`` CLI in a subprocess, talked to
over real sockets. The helpers themselves live in ``tests/support/``, one of each."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.need import IN_CI
from tests.support.server import ServerProcess


@pytest.fixture
def serve() -> Iterator:
    """``serve("tests.apps.basic:app", "--flag", ...)`` starts the CLI on a free port."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True,
              port: bool = True, cwd: str | Path | None = None) -> ServerProcess:
        argv = list(args)
        if port and "--port" not in argv and "--uds" not in argv and "--fd" not in argv:
            argv += ["--port", "0"]
        server = ServerProcess(argv, env=env, cwd=cwd)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGINT)


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> tuple[Path, bytes]:
    """A 3 MiB file of random bytes (not a multiple of any block size): (path, its bytes)."""
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    data = os.urandom(3 * 1024 * 1024 + 12345)
    path.write_bytes(data)
    return path, data


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``) a skipped test is a failed one: every test in the suite must run
    there, so a missing program or package can never pass unnoticed as a skip."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every test must run: {reason}"



@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same in CI for a whole module skipped while it is collected (``importorskip``,
    ``pytest.skip(allow_module_level=True)``): never a silent skip there."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"module skipped in CI, where every test must run: {reason}"
