"""Lifecycle hooks from the settings registry, and systemd socket activation (LISTEN_FDS)."""

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support.server import ROOT

HOOKS = ["--on-starting", "tests.apps.hook_apps:on_starting",
         "--when-ready", "tests.apps.hook_apps:when_ready",
         "--on-worker-boot", "tests.apps.hook_apps:on_worker_boot",
         "--on-worker-exit", "tests.apps.hook_apps:on_worker_exit",
         "--on-exit", "tests.apps.hook_apps:on_exit"]


def read_calls(path, wait_for=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        calls = [line.split() for line in lines]
        if wait_for is None or any(c[0] == wait_for for c in calls) or \
                time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


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


def test_systemd_socket_activation_on_fd_3():
    """A socket handed over as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<our pid> is served."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    # A tiny launcher: put the socket on fd 3, set LISTEN_PID to the pid that will exec
    # betula (exec keeps the pid), as systemd does.
    launcher = (
        "import os, sys\n"
        "fd = int(sys.argv[1])\n"
        "os.dup2(fd, 3)\n"
        "os.environ['LISTEN_FDS'] = '1'\n"
        "os.environ['LISTEN_PID'] = str(os.getpid())\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'betula', "
        "'tests.apps.hook_apps:app', '--lifespan', 'off'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", launcher, str(listener.fileno())],
                            pass_fds=(listener.fileno(),), cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener.close()
    try:
        body = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and body is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.1)
        assert body == str(proc.pid)  # served by the process systemd would have started
    finally:
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out


def test_ctrl_c_to_the_process_group_stops_workers_once(tmp_path):
    """A terminal's Ctrl-C signals the master and every worker at once: the master's
    graceful stop runs, no worker counts as died, nothing is respawned."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "betula", "tests.apps.hook_apps:app", "--workers", "2",
         "--port", "0", "--lifespan", "off"],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while sum("serving" in line for line in lines) < 2 and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
        os.killpg(proc.pid, 2)  # SIGINT to the whole group, as a terminal does
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    log = "".join(lines) + out
    assert proc.returncode == 0, log
    assert "Master received SIGINT" in log
    assert "died" not in log and log.count("Booting worker") == 2, log
