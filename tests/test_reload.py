"""--reload: a changed source file rolls the workers; a change that does not import is
logged and the old code keeps serving until the next change fixes it. The app answers
"<pid> <version>", so which workers serve which code is seen by pid."""

import re

import httpx

from tests.support.procs import children, wait_until
from tests.support.workers import answers, assert_replaced_in_turn

APP = '''import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%%d %s" %% os.getpid()})
'''


def version(server):
    """The version the next answer comes from (None while no worker answers)."""
    try:
        return httpx.get(server.base_url + "/", timeout=5).text.split(" ", 1)[1]
    except httpx.HTTPError:
        return None


def wait_for_version(server, expected, timeout=15.0):
    """Poll until an answer comes from ``expected`` (hang guard ``timeout``); the last seen."""
    seen = []

    def arrived():
        seen.append(version(server))
        return seen[-1] == expected

    wait_until(arrived, timeout, 0.1)
    return seen[-1]


def workers(server, n=2):
    """The master's workers, once there are ``n`` and every one of them answers."""
    assert wait_until(lambda: len(children(server.proc.pid)) == n, 15), server.log
    now = children(server.proc.pid)
    return now, answers(server.port, want=now)


def test_reload_rolls_workers_and_survives_a_syntax_error(serve, tmp_path):
    source = tmp_path / "reload_app.py"
    source.write_text(APP % "v1")
    server = serve("reload_app:app", "--app-dir", str(tmp_path), "--reload", "--reload-dir",
                   str(tmp_path), "--workers", "2", "--lifespan", "off")
    first, said = workers(server)
    assert {body.split()[1] for body in said.values()} == {"v1"}

    start = len(server.lines)
    source.write_text(APP % "v2")
    assert server.wait_for_log(r"Changed: .*reload_app\.py: reloading", 15), server.log
    assert server.wait_for_log(r"Rolling restart done", 15), server.log
    # Every worker was replaced, each new one serving before an old one drained.
    booted = assert_replaced_in_turn(server, start, first)
    assert wait_until(lambda: not (children(server.proc.pid) & first), 15), server.log
    second, said = workers(server)
    assert second == set(booted[:2]), (second, booted)
    assert {body.split()[1] for body in said.values()} == {"v2"}

    source.write_text(APP % "v3" + "\ndef broken(:\n")
    assert server.wait_for_log(r"SyntaxError", 15), server.log
    assert server.wait_for_log(r"rolling restart abandoned", 15), server.log
    # The old workers keep serving the old code; the broken new one is gone.
    now, said = workers(server)
    assert now == second, (now, second, server.log)
    assert {body.split()[1] for body in said.values()} == {"v2"}
    assert server.proc.poll() is None

    source.write_text(APP % "v4")  # the fix
    assert wait_for_version(server, "v4") == "v4"
    assert wait_until(lambda: not (children(server.proc.pid) & second), 15), server.log
    _, said = workers(server)
    assert {body.split()[1] for body in said.values()} == {"v4"}
    assert server.stop() == 0


def test_reload_include_and_exclude(serve, tmp_path):
    source = tmp_path / "reload_app2.py"
    source.write_text(APP % "a")
    (tmp_path / "notes.txt").write_text("x")
    server = serve("reload_app2:app", "--app-dir", str(tmp_path), "--reload", "--reload-dir",
                   str(tmp_path), "--reload-include", "*.txt", "--reload-exclude",
                   "reload_app2.py", "--lifespan", "off")
    assert wait_for_version(server, "a") == "a"
    source.write_text(APP % "b")  # excluded: no reload
    (tmp_path / "notes.txt").write_text("y")  # included: reload, which picks up "b"
    assert wait_for_version(server, "b") == "b"
    changed = [line for line in server.lines if re.search(r"Changed: ", line)]
    assert changed and all("notes.txt" in line and "reload_app2.py" not in line
                           for line in changed), server.log
