"""Lifecycle hooks from the settings registry, and systemd socket activation (LISTEN_FDS)."""

import os
import re
import signal
import socket
import sys

import httpx
import pytest

from tests.support.procs import children, wait_until
from tests.support.server import ServerProcess
from tests.support.workers import answer_pid, get, pids_answering, serving_pids

APP = "tests.apps.hook_apps:app"
HOOKS = ["--on-starting", "tests.apps.hook_apps:on_starting",
         "--when-ready", "tests.apps.hook_apps:when_ready",
         "--on-worker-boot", "tests.apps.hook_apps:on_worker_boot",
         "--on-worker-exit", "tests.apps.hook_apps:on_worker_exit",
         "--on-exit", "tests.apps.hook_apps:on_exit"]


def read_calls(path, wait_for=None, timeout=10.0):
    """The hook calls recorded so far (once one named ``wait_for`` is among them)."""
    def calls():
        lines = path.read_text().splitlines() if path.exists() else []
        found = [line.split() for line in lines]
        return found if wait_for is None or any(c[0] == wait_for for c in found) else None

    return wait_until(calls, timeout) or calls() or []


# A launcher as systemd is one: the listening sockets on fds 3, 4, ..., LISTEN_FDS their
# count, LISTEN_PID the pid that will exec betula (exec keeps the pid), or "parent" for a pid
# that is not betula's (the variables are then someone else's).
LAUNCHER = """\
import fcntl, os, sys
fds = [int(fd) for fd in sys.argv[1].split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]  # out of the way of 3, 4, ...
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)  # inheritable: exec keeps it
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getppid() if sys.argv[2] == "parent" else os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "betula", *sys.argv[3:]])
"""


def listening(server):
    """The ports of every "Listening on" line (one per socket; a master's workers each log
    theirs)."""
    return {int(m.group(1)) for line in server.lines
            if (m := re.search(r"Listening on http://127\.0\.0\.1:(\d+)", line))}


@pytest.fixture
def activate():
    """``activate(n, *args, listen_pid=...)``: n listening sockets handed to betula as
    systemd hands them; returns (server, the sockets' ports). Each is stopped afterwards."""
    started = []

    def start(n, *args, listen_pid="self"):
        listeners = []
        for _ in range(n):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            listeners.append(listener)
        fds = tuple(sock.fileno() for sock in listeners)
        server = ServerProcess([APP, "--lifespan", "off", *args],
                               command=[sys.executable, "-c", LAUNCHER,
                                        ",".join(map(str, fds)), listen_pid])
        started.append((server, listeners))
        server.start(pass_fds=fds)
        return server, [sock.getsockname()[1] for sock in listeners]

    yield start
    for server, listeners in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        for sock in listeners:
            sock.close()


def children_env(port):
    """The LISTEN_* variables a child process of the worker answering on ``port`` gets."""
    status, body = get(port, "/env")
    assert status == 200, body
    return body.split()[1:]


def test_hooks_with_a_master(serve, tmp_path):
    log = tmp_path / "hooks.log"
    server = serve("tests.apps.hook_apps:app", "--workers", "2", "--lifespan", "off", *HOOKS,
                   env={"BETULA_TEST_HOOK_LOG": str(log)})
    master = server.proc.pid
    calls = read_calls(log, "when_ready")
    names = [c[0] for c in calls]
    assert names[0] == "on_starting" and int(calls[0][1]) == master
    boots = [int(c[1]) for c in calls if c[0] == "on_worker_boot"]
    assert len(boots) == 2 and master not in boots
    ready = [c for c in calls if c[0] == "when_ready"]
    assert len(ready) == 1 and int(ready[0][1]) == master
    assert httpx.get(server.base_url + "/").status_code == 200
    assert server.stop() == 0
    calls = read_calls(log)
    exited = {int(c[1]) for c in calls if c[0] == "on_worker_exit"}
    assert exited == set(boots)
    assert calls[-1][0] == "on_exit" and int(calls[-1][1]) == master


def test_hooks_single_process(serve, tmp_path):
    log = tmp_path / "hooks.log"
    server = serve("tests.apps.hook_apps:app", "--lifespan", "off", *HOOKS,
                   env={"BETULA_TEST_HOOK_LOG": str(log)})
    pid = server.proc.pid
    calls = read_calls(log, "when_ready")
    assert [c[0] for c in calls] == ["on_starting", "when_ready"]
    assert server.stop() == 0
    calls = read_calls(log)
    assert calls[-1] == ["on_exit", str(pid)]


def test_failing_on_starting_stops_the_start(serve):
    server = serve("tests.apps.hook_apps:app", "--on-starting", "tests.apps.hook_apps:failing",
                   wait=False)
    assert server.wait_exit(15) != 0
    assert "hook on_starting" in server.log and "hook says no" in server.log


def test_systemd_socket_activation_on_fd_3(activate):
    """A socket handed over as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<its pid> is served."""
    server, (port,) = activate(1)
    assert listening(server) == {port}, server.log
    status, body = get(port)
    assert status == 200 and answer_pid(body) == server.proc.pid  # the process systemd started
    assert children_env(port) == []  # the app's own children do not inherit the variables
    assert server.stop() == 0, server.log


def test_systemd_socket_activation_under_a_master(activate):
    """--workers 2: the master takes the activated socket and both workers serve on it."""
    server, (port,) = activate(1, "--workers", "2")
    master = server.proc.pid
    assert wait_until(lambda: len(set(serving_pids(server))) == 2, 20), server.log
    workers = children(master)
    assert len(workers) == 2 and master not in workers
    assert listening(server) == {port}, server.log
    assert pids_answering(port, want=workers) == workers
    assert children_env(port) == []
    assert server.stop() == 0, server.log


def test_systemd_socket_activation_with_two_sockets(activate):
    """LISTEN_FDS=2: fds 3 and 4 are both served."""
    server, ports = activate(2)
    assert listening(server) == set(ports), server.log
    for port in ports:
        status, body = get(port)
        assert status == 200 and answer_pid(body) == server.proc.pid
    assert children_env(ports[1]) == []
    assert server.stop() == 0, server.log


def test_systemd_variables_for_another_pid_are_ignored(activate):
    """LISTEN_PID names another process (as sd_listen_fds says, the fds are not ours): the
    fds are not taken, a warning says why, betula listens on its --port as configured, and
    the variables still leave the environment."""
    server, (passed,) = activate(1, "--port", "0", listen_pid="parent")
    assert server.wait_for_log(r"ignoring LISTEN_FDS=1: LISTEN_PID \d+ is not this process",
                               1), server.log
    assert server.port != passed and listening(server) == {server.port}, server.log
    status, body = get(server.port)
    assert status == 200 and answer_pid(body) == server.proc.pid
    assert children_env(server.port) == []
    assert server.stop() == 0, server.log


def test_ctrl_c_to_the_process_group_stops_workers_once():
    """A terminal's Ctrl-C signals the master and every worker at once: the master's
    graceful stop runs, no worker counts as died, nothing is respawned."""
    server = ServerProcess([APP, "--workers", "2", "--port", "0", "--lifespan", "off"],
                           new_session=True)
    try:
        server.start()
        assert wait_until(lambda: len(set(serving_pids(server))) == 2, 20), server.log
        os.killpg(server.proc.pid, signal.SIGINT)  # to the whole group, as a terminal does
        code = server.wait_exit(20)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
    log = server.log
    assert code == 0, log
    assert "Master received SIGINT" in log
    assert "died" not in log and log.count("Booting worker") == 2, log
