"""Hooks that append a line per call to the file named by BETULA_TEST_HOOK_LOG, and an app
for tests/test_hooks_systemd.py."""

import os
import subprocess


def _record(*parts):
    with open(os.environ["BETULA_TEST_HOOK_LOG"], "a") as fh:
        fh.write(" ".join(str(p) for p in parts) + "\n")


def on_starting(config):
    _record("on_starting", os.getpid())


def when_ready(config):
    _record("when_ready", os.getpid())


def on_worker_boot(config):
    _record("on_worker_boot", os.getpid())


def on_worker_exit(config, pid):
    _record("on_worker_exit", pid)


def on_exit(config):
    _record("on_exit", os.getpid())


def failing(config):
    raise RuntimeError("hook says no")


def _children_listen_env() -> str:
    """The LISTEN_* variables a child process of this worker gets (socket activation's
    must not reach it): its environment as ``env`` prints it."""
    out = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    return " ".join(sorted(line for line in out.splitlines() if line.startswith("LISTEN_")))


async def app(scope, receive, send):
    """Answers the worker's pid; ``/env``: the pid, then what _children_listen_env finds."""
    if scope["type"] != "http":
        return
    body = str(os.getpid())
    if scope["path"] == "/env":
        body += " " + _children_listen_env()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})
